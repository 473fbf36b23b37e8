"""``video.fluo.*``: one-line delegations to fluoxr's functions.

Every method here is also a plain function importable from ``fluoxr``; the
docstring of each method names the function it calls.
"""

from __future__ import annotations

from typing import Any

import xarray as xr


@xr.register_dataarray_accessor("fluo")
class FluoAccessor:
    """fluoxr methods on a video (or traces, or images) DataArray.

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> v = fluoxr.as_video(np.zeros((4, 3, 3), np.uint16))
    >>> _ = v.fluo.save("/tmp/doc_accessor.zarr", overwrite=True)
    """

    __slots__ = ("_obj",)

    def __init__(self, obj: xr.DataArray) -> None:
        self._obj = obj

    # -- foundation ---------------------------------------------------------------------------
    def save(self, path: Any, **kwargs: Any) -> Any:
        """Write to zarr; see :func:`fluoxr.save`."""
        from .io import save

        return save(self._obj, path, **kwargs)

    # -- motion correction --------------------------------------------------------------------
    def estimate_motion(self, **kwargs: Any) -> xr.Dataset:
        """Rigid (and nonrigid) shifts of every frame, lazily; see :func:`fluoxr.estimate_motion`."""
        from .motion import estimate_motion

        return estimate_motion(self._obj, **kwargs)

    def apply_motion(self, motion: Any) -> xr.DataArray:
        """The video registered with given shifts, lazily; see :func:`fluoxr.apply_motion`."""
        from .motion import apply_motion

        return apply_motion(self._obj, motion)

    def register(self, **kwargs: Any) -> Any:
        """The registered video (estimate, then apply), lazily; see :func:`fluoxr.register`."""
        from .motion import register

        return register(self._obj, **kwargs)

    # -- traces -------------------------------------------------------------------------------
    def extract(self, rois: Any, **kwargs: Any) -> xr.Dataset:
        """Cell and neuropil traces of a video; see :func:`fluoxr.extract`."""
        from .extraction import extract

        return extract(self._obj, rois, **kwargs)

    def traces(self, positions: Any, **kwargs: Any) -> xr.DataArray:
        """Mean traces around positions of a video; see :func:`fluoxr.traces`."""
        from .extraction import traces

        return traces(self._obj, positions, **kwargs)

    def subtract_neuropil(self, Fneu: xr.DataArray, **kwargs: Any) -> xr.DataArray:
        """``F - coeff * Fneu`` on cell traces; see :func:`fluoxr.subtract_neuropil`."""
        from .temporal import subtract_neuropil

        return subtract_neuropil(self._obj, Fneu, **kwargs)

    def baseline(self, **kwargs: Any) -> xr.DataArray:
        """Baseline of traces; see :func:`fluoxr.baseline`."""
        from .temporal import baseline

        return baseline(self._obj, **kwargs)

    def preprocess(self, **kwargs: Any) -> xr.DataArray:
        """Traces minus their baseline, suite2p's ``preprocess``; see :func:`fluoxr.preprocess`."""
        from .temporal import preprocess

        return preprocess(self._obj, **kwargs)

    def dff(self, **kwargs: Any) -> xr.DataArray:
        """dF/F of traces; see :func:`fluoxr.dff`."""
        from .temporal import dff

        return dff(self._obj, **kwargs)

    def normalize(self, **kwargs: Any) -> xr.DataArray:
        """Traces scaled to [ymin, ymax] along time; see :func:`fluoxr.normalize`."""
        from .temporal import normalize

        return normalize(self._obj, **kwargs)

    def detrend(self, **kwargs: Any) -> xr.DataArray:
        """Detrended traces; see :func:`fluoxr.detrend`."""
        from .temporal import detrend

        return detrend(self._obj, **kwargs)

    def oasis(self, **kwargs: Any) -> xr.DataArray:
        """Deconvolved spikes of traces; see :func:`fluoxr.spikes.oasis`."""
        from .spikes import oasis

        return oasis(self._obj, **kwargs)

    def plot(self, **kwargs: Any) -> Any:
        """Figure of traces against time; see :func:`fluoxr.plot.show_traces`."""
        from .plot import show_traces

        return show_traces(self._obj, **kwargs)
    # -- SOFI ------------------------------------------------------------------------------------
    def moments(self, orders: Any = 6, **kwargs: Any) -> xr.DataArray:
        """Central moment images; see :func:`fluoxr.moments`."""
        from .sofi import moments

        return moments(self._obj, orders, **kwargs)

    def cumulants(self, orders: Any = 6, **kwargs: Any) -> xr.DataArray:
        """Cumulant (SOFI) images; see :func:`fluoxr.cumulants`."""
        from .sofi import cumulants

        return cumulants(self._obj, orders, **kwargs)

    def sofi_images(self, orders: Any = 6, **kwargs: Any) -> xr.Dataset:
        """Mean, moments and cumulants from one pass; see :func:`fluoxr.sofi_images`."""
        from .sofi import sofi_images

        return sofi_images(self._obj, orders, **kwargs)

    def lag_moments(self, lags: Any) -> xr.DataArray:
        """Moments of time-lagged frame products; see :func:`fluoxr.lag_moments`."""
        from .sofi import lag_moments

        return lag_moments(self._obj, lags)

    def lag_cumulants(self, lags: Any = None) -> xr.DataArray:
        """Time-lagged cumulant images; see :func:`fluoxr.lag_cumulants`."""
        from .sofi import lag_cumulants

        return lag_cumulants(self._obj, lags)

    def cross_cumulants(self, ri_range: int = 1) -> xr.DataArray:
        """XC-SOFI pixel-pair images; see :func:`fluoxr.cross_cumulants`."""
        from .sofi import cross_cumulants

        return cross_cumulants(self._obj, ri_range)

    def xc_image(self, **kwargs: Any) -> xr.DataArray:
        """Assembled XC-SOFI image; see :func:`fluoxr.xc_image`."""
        from .sofi import xc_image

        return xc_image(self._obj, **kwargs)

    def total_signal(self) -> xr.DataArray:
        """Sum of each frame; see :func:`fluoxr.total_signal`."""
        from .sofi import total_signal

        return total_signal(self._obj)

    def bleach_blocks(self, **kwargs: Any) -> xr.DataArray:
        """Block edges of equal bleaching; see :func:`fluoxr.bleach_blocks`."""
        from .sofi import bleach_blocks

        return bleach_blocks(self._obj, **kwargs)

    def block_moments(self, orders: Any = 6, **kwargs: Any) -> xr.Dataset:
        """Moments and cumulants of each block of frames; see :func:`fluoxr.block_moments`."""
        from .sofi import block_moments

        return block_moments(self._obj, orders, **kwargs)

    def bleach_correct(self, **kwargs: Any) -> xr.DataArray:
        """Bleaching-corrected video; see :func:`fluoxr.bleach_correct`."""
        from .sofi import bleach_correct

        return bleach_correct(self._obj, **kwargs)

    def fourier_interpolate(self, factor: int = 2) -> xr.DataArray:
        """Fourier interpolation of each frame; see :func:`fluoxr.fourier_interpolate`."""
        from .sofi import fourier_interpolate

        return fourier_interpolate(self._obj, factor)

    def noise_filter(self, noise_filter: Any = None, **kwargs: Any) -> xr.DataArray:
        """Temporal noise filter; see :func:`fluoxr.noise_filter`."""
        from .sofi import noise_filter as _noise_filter

        return _noise_filter(self._obj, noise_filter, **kwargs)

    def deconvsk(self, psf: Any = None, **kwargs: Any) -> xr.DataArray:
        """Shrinking-kernel deconvolution of images; see :func:`fluoxr.deconvsk`."""
        from .sofi import deconvsk

        return deconvsk(self._obj, psf=psf, **kwargs)

    def ldrc(self, mask: Any, **kwargs: Any) -> xr.DataArray:
        """Local dynamic range compression; see :func:`fluoxr.ldrc`."""
        from .sofi import ldrc

        return ldrc(self._obj, mask=mask, **kwargs)

    def reconstruct(self, order: int = 6, **kwargs: Any) -> xr.Dataset:
        """The PysofiData pipeline; see :func:`fluoxr.reconstruct`."""
        from .sofi import reconstruct

        return reconstruct(self._obj, order, **kwargs)

    # -- ROI features -------------------------------------------------------------------------
    def roi_features(self, rois: Any, *, channel: Any = None, **kwargs: Any) -> Any:
        """cellector's features of ``rois`` against the mean over time of ``channel``, a lazy :class:`fluoxr.LazyTable`; see :func:`fluoxr.features.roi_features` (reference from :func:`fluoxr.features.reference_image`)."""
        from .features import reference_image, roi_features

        return roi_features(rois, reference_image(self._obj, channel=channel), **kwargs)

    # -- oscillations -------------------------------------------------------------------------
    def oscillations(self, **kwargs: Any) -> xr.DataArray:
        """Influx/efflux clusters of every frame (Cellects); see :func:`fluoxr.oscillations.detect`."""
        from .oscillations import detect

        return detect(self._obj, **kwargs)

    # -- GPU ------------------------------------------------------------------------------------
    # -- motion ------------------------------------------------------------------------------
    def estimate_drift(self, **kwargs: Any) -> xr.Dataset:
        """Slow drift from the means of blocks of frames; see :func:`fluoxr.estimate_drift`."""
        from .drift import estimate_drift

        return estimate_drift(self._obj, **kwargs)

    def drift_correct(self, **kwargs: Any) -> xr.DataArray:
        """The video with its slow drift removed, lazily; see :func:`fluoxr.drift_correct`."""
        from .drift import drift_correct

        return drift_correct(self._obj, **kwargs)

    def to_device(self, device: str = "cuda") -> xr.DataArray:
        """The same object with its chunks on the GPU ("cuda") or the host ("cpu"); see :func:`fluoxr.to_device`."""
        from .device import to_device

        return to_device(self._obj, device)
