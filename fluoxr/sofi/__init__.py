"""SOFI on lazy videos: moments and cumulants of every order from one pass, lags, XC-SOFI, bleaching blocks.

Super-resolution optical fluctuation imaging (SOFI) builds images from the
temporal statistics of each pixel. Here every statistic is a tree reduction
of small mergeable states over time chunks (:mod:`fluoxr.kernels.moments`):
all moment and cumulant orders and the mean image come from one read of the
data, in float64, exact for data with a large offset, in memory that does not
grow with the number of frames. Per-frame and per-image steps (Fourier
interpolation, the temporal noise filter, shrinking-kernel deconvolution,
ldrc) are in :mod:`fluoxr.sofi.image` and re-exported here.

The package, one module per concern: :mod:`~fluoxr.sofi.moments` (moments,
cumulants, mean and minimum images, total signal), :mod:`~fluoxr.sofi.blocks`
(bleaching blocks, block moments, bleaching correction),
:mod:`~fluoxr.sofi.lags` (lag moments and cumulants), :mod:`~fluoxr.sofi.xc`
(cross-cumulants, XC image), :mod:`~fluoxr.sofi.image` (Fourier
interpolation, noise filter, deconvolution, ldrc, PSF width),
:mod:`~fluoxr.sofi.pipeline` (:func:`sofi_images`, :func:`reconstruct`).
Every reduction along time is a :class:`fluoxr.drivers.TimeReduction` run
by :func:`fluoxr.drivers.reduce_time`.

What each pysofi 0.1.1 function is in fluoxr:

=====================================================  ======================================================
pysofi                                                 fluoxr
=====================================================  ======================================================
``average_image``, ``min_image``                       :func:`mean_image`, :func:`min_image`
``calc_moment_im``, ``calc_moments``                   :func:`moments` (float64, not truncated to int64)
``PysofiData.calc_moments_set``                        :func:`moments` (``bleach_correction=True``: block average)
``calc_cumulants_from_moments``, ``cumulants_images``  :func:`cumulants`; kernel ``kernels.moments.cumulants_from_moments``
``calc_moments_with_lag``                              :func:`lag_moments`
``calc_cumulants_from_moments_with_lag``               :func:`lag_cumulants`
``calc_xc_im``                                         :func:`cross_cumulants`; assembled image :func:`xc_image`
``calc_total_signal``                                  :func:`total_signal`
``med_smooth``, ``cut_frames``                         :func:`bleach_blocks` (kernels ``med_smooth``, ``cut_frames``)
``calc_block_moments``, ``moments_all_blocks``         :func:`block_moments` (also gives ``cumulants_all_blocks``)
``block_ave_moments``, ``block_ave_cumulants``         :func:`moments`, :func:`cumulants` with ``bleach_correction=True``
``correct_bleaching``, ``PysofiData.bleach_correct``   :func:`bleach_correct` (a lazy video, nothing written)
``fourier_interp_array``, ``interpolate_image``        :func:`fourier_interpolate` (images or videos, lazy per frame)
``moment_im_with_finterp``                             ``moments(fourier_interpolate(video, f), ...)``
``noise_filter1d``, ``filter1d_same``                  :func:`noise_filter`
``deconvsk``, ``richardson_lucy``, ``psf2otf`` ...     :func:`deconvsk`; kernels in :mod:`fluoxr.kernels.sofi`
``ldrc``                                               :func:`ldrc`
``gauss1d_mask``, ``gauss2d_mask``                     :func:`gauss1d_mask`, :func:`gauss2d_mask`
``PysofiData`` pipeline                                :func:`reconstruct`
``save_option`` (TIFF outputs)                         :func:`fluoxr.save_tiff` (plain or colour-mapped RGB)
``visualization.save_png``, ``save_avi``               :func:`fluoxr.plot.save_png`, :func:`fluoxr.plot.save_movie` (.mp4, .gif)
=====================================================  ======================================================

Not in fluoxr: the ``moca`` module (``fit_sigma``, ``esti_rhoeps``,
``moca``) and the bokeh viewers of ``visualization``. :func:`ldrc` and
:func:`deconvsk` take the image first and everything else by keyword (pysofi
puts the mask or PSF first; a call in pysofi's order raises a TypeError).

pysofi's ``frames=[start, end]`` argument is ``video.isel(time=slice(start, end))``.

Videos with ``channel`` or ``z`` dims: moments, cumulants, lag moments,
cross-cumulants, Fourier interpolation and the noise filter reduce over time
only and keep the other dims. Bleaching correction, block moments,
:func:`xc_image` and :func:`reconstruct` need a plain ``("time", "y", "x")``
video (select one with ``video.isel(channel=0)``): their blocks are cut on the
total signal of a frame, which is ambiguous across channels.

Reads of the data per result: one for moments, cumulants, the mean image and
cross-cumulants; two with ``bleach_correction=True`` (the total signal first,
then the blocks) and for lag moments (the mean first, then the lagged
products); three for :func:`bleach_correct` (total signal, block statistics,
corrected frames). A second read re-reads the input rather than keeping the
first read's chunks in memory.
"""

from __future__ import annotations

from ._common import MAX_ORDER
from .blocks import bleach_blocks, bleach_correct, block_moments
from .image import deconvsk, fourier_interpolate, gauss1d_mask, gauss2d_mask, ldrc, noise_filter, psf_width
from .lags import lag_cumulants, lag_moments
from .moments import cumulants, mean_image, min_image, moments, total_signal
from .pipeline import reconstruct, sofi_images
from .xc import cross_cumulants, xc_image

__all__ = [
    "moments",
    "cumulants",
    "sofi_images",
    "mean_image",
    "min_image",
    "lag_moments",
    "lag_cumulants",
    "cross_cumulants",
    "xc_image",
    "total_signal",
    "bleach_blocks",
    "block_moments",
    "bleach_correct",
    "reconstruct",
    "psf_width",
    # per-image steps, from fluoxr.sofi.image
    "fourier_interpolate",
    "noise_filter",
    "deconvsk",
    "ldrc",
    "gauss1d_mask",
    "gauss2d_mask",
]
