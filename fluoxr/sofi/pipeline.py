"""The pysofi pipeline: one-pass SOFI images and the PysofiData reconstruction."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr

from .._validate import check_int, check_number
from ..kernels import sofi as ks
from ._common import MAX_ORDER, _as_lazy_video, _bleach_args, _check_orders, _frame_coords, _orders_array
from ._common import _result_attrs
from .image import _check_filter, _check_window_size, deconvsk, fourier_interpolate, ldrc, noise_filter
from .moments import _block_cumulants, _segment_stats, _sofi_core


def sofi_images(video: Any, orders: int | Sequence[int] = 6, *, bleach_correction: bool = False,
                fbc: float = 0.04, smooth_kernel: int = 251) -> xr.Dataset:
    """Mean image, moments and cumulants of every requested order as one Dataset, from one pass.

    The three share one reduction, so computing the Dataset reads the data
    once (twice with ``bleach_correction``).

    Parameters
    ----------
    video, orders, bleach_correction, fbc, smooth_kernel
        As :func:`moments`.

    Returns
    -------
    xarray.Dataset
        ``mean_image`` ``(..., "y", "x")``, ``moments`` and ``cumulants``
        ``("order", ..., "y", "x")``, all float64.

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> video = fluoxr.as_video(np.random.default_rng(0).poisson(50, (100, 6, 6)).astype(np.uint16))
    >>> ds = fluoxr.sofi_images(video, 3).compute()
    >>> sorted(ds.data_vars), ds.moments.shape
    (['cumulants', 'mean_image', 'moments'], (3, 6, 6))
    """
    orders = _check_orders(orders)
    bleach_correction, fbc, smooth_kernel = _bleach_args(bleach_correction, fbc, smooth_kernel)
    video = _as_lazy_video(video, plain=bleach_correction, what="bleach_correction", device_ok=True)
    mean, rows, cum = _sofi_core(video, max(orders), bleach_correction, fbc, smooth_kernel)
    dims = video.dims[1:]
    coords = _frame_coords(video)
    coords["order"] = np.asarray(orders)
    extra = {"bleach_correction": int(bleach_correction)}
    if bleach_correction:
        extra.update(fbc=fbc, smooth_kernel=smooth_kernel)
    return xr.Dataset(
        {"mean_image": (dims, mean, {"long_name": "mean image"}),
         "moments": (("order",) + dims, _orders_array(rows, orders), {"long_name": "central moment"}),
         "cumulants": (("order",) + dims, _orders_array(cum, orders), {"long_name": "cumulant"})},
        coords=coords, attrs=_result_attrs(video, **extra),
    )




# --------------------------------------------------------------------------------------------
# the PysofiData pipeline


def reconstruct(
    video: Any,
    order: int = 6,
    *,
    cumulant: bool = False,
    finterp: int = 1,
    window: int | None = None,
    bleach_correction: bool = False,
    fbc: float = 0.04,
    smooth_kernel: int = 251,
    filter: Any = None,
    psf: Any = None,
    deconv_lambda: float = 1.5,
    deconv_iter: int = 20,
    ldrc_window: Sequence[int] = (25, 25),
) -> xr.Dataset:
    """The PysofiData pipeline: Fourier interpolation, moments or cumulants, noise filter, deconvsk, noise filter, ldrc.

    With ``window`` the recording is cut into consecutive windows of
    ``window`` frames (the last may be shorter) and each window gives one
    SOFI image, all from one pass; the noise filter then smooths the series
    of images pixel by pixel (pysofi ``noise_filter1d`` over a set of
    movies). With one image (``window=None``) the noise filter has no series
    to smooth and is skipped. Everything is lazy; the 2-D steps run image by
    image when computed.

    Every default is pysofi 0.1.1's where pysofi has one: ``order=6``
    (``PysofiData.moment_image`` and ``.ldrc``), no Fourier interpolation
    (``moment_image(finterp=False)``), the whole recording (``mvlength=[]``),
    ``fbc=0.04`` and ``smooth_kernel=251`` (``calc_moments_set``), the noise
    filter ``gauss1d_mask((1, 21), 2)`` (``noise_filter1d``), the PSF
    ``gauss2d_mask((51, 51), 2)``, ``deconv_lambda=1.5`` and
    ``deconv_iter=20`` (``PysofiData.deconvsk``) and the ldrc window
    ``(25, 25)``. ``cumulant=False`` and ``window=None`` choose between
    pysofi methods rather than defaults. One difference: pysofi's
    ``PysofiData.ldrc`` passes the SOFI order as the factor by which the
    mask is resized, while here the mask is the mean image of the same
    (interpolated) frames, so it needs no resizing.

    Parameters
    ----------
    video : xarray.DataArray
        Lazy ``("time", "y", "x")`` video.
    order : int
        SOFI order (moment or cumulant), >= 1.
    cumulant : bool
        Cumulant instead of moment images.
    finterp : int
        Fourier interpolation factor (1: none); frames grow to ``(n-1)*f+1``.
    window : int, optional
        Frames per SOFI image.
    bleach_correction, fbc, smooth_kernel
        Block-averaged moments/cumulants, as :func:`moments` (whole
        recording only, not with ``window``).
    filter : array-like or False, optional
        1-D noise-filter kernel along the image series (default
        ``gauss1d_mask((1, 21), 2)``); False skips it.
    psf : array-like, optional
        PSF estimate for :func:`deconvsk` (default ``gauss2d_mask((51, 51), 2)``).
    deconv_lambda, deconv_iter
        Shrinking-kernel deconvolution parameters.
    ldrc_window : (int, int)
        :func:`ldrc` window; the mask is the mean image of the same window.

    Returns
    -------
    xarray.Dataset
        ``mean_image``, ``sofi``, ``filtered``, ``deconvolved``,
        ``deconvolved_filtered`` and ``ldrc``, each ``("window", "y", "x")``,
        coordinates ``start``, ``stop`` (frames of each window).

    Examples
    --------
    >>> import fluoxr
    >>> video, _ = fluoxr.datasets.blinking_emitters(200, (32, 32), n_emitters=3, seed=0)
    >>> ds = fluoxr.reconstruct(video, 4, cumulant=True, deconv_iter=3, ldrc_window=(9, 9))
    >>> list(ds.data_vars), ds.ldrc.shape
    (['mean_image', 'sofi', 'filtered', 'deconvolved', 'deconvolved_filtered', 'ldrc'], (1, 32, 32))
    """
    order = check_int(order, "order", min_value=1, max_value=MAX_ORDER)
    if not isinstance(cumulant, (bool, np.bool_)):
        raise TypeError(f"cumulant must be True or False, got {cumulant!r}")
    finterp = check_int(finterp, "finterp", min_value=1)
    bleach_correction, fbc, smooth_kernel = _bleach_args(bleach_correction, fbc, smooth_kernel)
    if filter is not False:
        filter = _check_filter(filter, "filter")
    deconv_lambda = check_number(deconv_lambda, "deconv_lambda", gt=1)
    deconv_iter = check_int(deconv_iter, "deconv_iter", min_value=1)
    video = _as_lazy_video(video, plain=True, what="reconstruct")
    n = video.sizes["time"]
    if window is not None:
        window = check_int(window, "window", min_value=1, max_value=n)
        if bleach_correction:
            raise ValueError("bleach_correction works on the whole recording; use window=None with it")
    # the sizes of the images that ldrc sees, so that its window is checked (and named) before any work
    out_h, out_w = (ks.interp_size(video.sizes[d], finterp) for d in ("y", "x"))
    ldrc_window = _check_window_size(ldrc_window, out_h, out_w, "ldrc_window")
    if finterp > 1:
        video = fourier_interpolate(video, finterp)
    if window is None:
        mean, rows, cum = _sofi_core(video, order, bleach_correction, fbc, smooth_kernel)
        sofi = (cum if cumulant else rows)[order - 1][None]
        mean = mean[None]
        starts, stops = [0], [n]
    else:
        edges = np.unique(np.r_[np.arange(0, n, window), n])
        stats = _segment_stats(video.data, edges, order)
        mean = stats[:, 0]
        if cumulant:
            sofi = stats[:, 1:].map_blocks(_block_cumulants, dtype=np.float64)[:, order - 1]
        else:
            sofi = stats[:, order]
        starts, stops = edges[:-1].tolist(), edges[1:].tolist()
    coords = {"y": video.y.variable, "x": video.x.variable, "start": ("window", starts), "stop": ("window", stops)}
    dims = ("window", "y", "x")
    mean_da = xr.DataArray(mean, dims=dims, coords=coords, name="mean_image")
    sofi_da = xr.DataArray(sofi, dims=dims, coords=coords, name="sofi")
    use_filter = filter is not False and len(starts) > 1
    filtered = noise_filter(sofi_da, filter, dim="window") if use_filter else sofi_da
    deconv = deconvsk(filtered, psf=psf, deconv_lambda=deconv_lambda, deconv_iter=deconv_iter)
    deconv_f = noise_filter(deconv, filter, dim="window") if use_filter else deconv
    compressed = ldrc(deconv_f, mask=mean_da, window_size=ldrc_window)
    attrs = _result_attrs(video, order=order, cumulant=int(cumulant), finterp=finterp,
                          noise_filter=int(use_filter), deconv_lambda=float(deconv_lambda),
                          deconv_iter=int(deconv_iter), ldrc_window=list(ldrc_window))
    attrs["n_frames"] = n
    return xr.Dataset({"mean_image": mean_da, "sofi": sofi_da, "filtered": filtered, "deconvolved": deconv,
                       "deconvolved_filtered": deconv_f, "ldrc": compressed}, attrs=attrs)
