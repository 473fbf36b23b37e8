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

    # -- ROI features -------------------------------------------------------------------------
    def roi_features(self, rois: Any, *, channel: Any = None, **kwargs: Any) -> Any:
        """cellector's features of ``rois`` against the mean over time of ``channel``; see :func:`fluoxr.features.roi_features` (reference from :func:`fluoxr.features.reference_image`)."""
        from .features import reference_image, roi_features

        return roi_features(rois, reference_image(self._obj, channel=channel), **kwargs)

    # -- oscillations -------------------------------------------------------------------------
    def oscillations(self, **kwargs: Any) -> xr.DataArray:
        """Influx/efflux clusters of every frame (Cellects); see :func:`fluoxr.oscillations.detect`."""
        from .oscillations import detect

        return detect(self._obj, **kwargs)
