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

    # -- ROI features -------------------------------------------------------------------------
    def roi_features(self, rois: Any, *, channel: Any = None, **kwargs: Any) -> Any:
        """cellector's features of ``rois`` against the mean over time of ``channel``; see :func:`fluoxr.features.roi_features` (reference from :func:`fluoxr.features.reference_image`)."""
        from .features import reference_image, roi_features

        return roi_features(rois, reference_image(self._obj, channel=channel), **kwargs)
