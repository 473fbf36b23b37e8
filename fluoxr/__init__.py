"""fluoxr: out-of-core analysis of fluorescence microscopy recordings.

A video is a lazy, dask-backed ``xarray.DataArray`` with dims
``("time", "y", "x")`` chunked along time; every analysis maps a kernel over
chunks so that it scales past memory and onto a dask cluster unchanged.

``import fluoxr`` is light: each public name is imported from its module when
it is first used, and the ``.fluo`` accessor is registered when xarray is
imported (see :mod:`fluoxr._lazy`).

Examples
--------
>>> import numpy as np, fluoxr
>>> video = fluoxr.as_video(np.zeros((10, 16, 16), np.uint16), fps=20)
>>> video.dims
('time', 'y', 'x')
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

from . import _lazy
from ._options import get_options, set_options

logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"

# public name -> module it is imported from on first use
_LAZY: dict[str, str] = {
    "as_video": "._video",
    "to_device": ".device",
    **dict.fromkeys(("cell_masks", "extract", "neuropil_masks", "suite2p_extraction_settings", "traces"),
                   ".extraction"),
    "roi_features": ".features",
    **dict.fromkeys(("drift_correct", "estimate_drift"), ".drift"),
    **dict.fromkeys(("apply_motion", "estimate_motion", "register"), ".motion"),
    **dict.fromkeys(("VideoFileNotFoundError", "open_result", "open_video", "read_image", "read_positions",
                     "read_suite2p_stat", "save"), ".io"),
    **dict.fromkeys(("collage_positions", "positions_between", "random_positions"), ".positions"),
    "ROISet": ".rois",
    "LazyTable": ".table",
    **dict.fromkeys(("bleach_blocks", "bleach_correct", "block_moments", "cross_cumulants", "cumulants", "deconvsk",
                     "fourier_interpolate", "gauss1d_mask", "gauss2d_mask", "lag_cumulants", "lag_moments", "ldrc",
                     "moments", "noise_filter", "psf_width", "reconstruct", "sofi_images", "total_signal",
                     "xc_image"), ".sofi"),
    "oasis": ".spikes",
    **dict.fromkeys(("read_nwb_rois", "to_nwb", "save_tiff"), ".io"),
    **dict.fromkeys(("baseline", "detrend", "dff", "normalize", "preprocess", "subtract_neuropil"), ".temporal"),
}
# public submodules
_SUBMODULES = ("datasets", "features", "oscillations", "sofi")

__all__ = [
    # data model, I/O, settings
    "as_video",
    "datasets",
    "features",
    "oscillations",
    "get_options",
    "LazyTable",
    "open_result",
    "open_video",
    "read_image",
    "read_suite2p_stat",
    "ROISet",
    "roi_features",
    "save",
    "save_tiff",
    "set_options",
    "VideoFileNotFoundError",
    # traces
    "baseline",
    "cell_masks",
    "collage_positions",
    "detrend",
    "dff",
    "extract",
    "neuropil_masks",
    "normalize",
    "oasis",
    "positions_between",
    "preprocess",
    "random_positions",
    "read_positions",
    "subtract_neuropil",
    "suite2p_extraction_settings",
    "traces",
    # motion correction
    "apply_motion",
    "drift_correct",
    "estimate_drift",
    "estimate_motion",
    "register",
    # SOFI
    "sofi",
    "bleach_blocks",
    "bleach_correct",
    "block_moments",
    "cross_cumulants",
    "cumulants",
    "deconvsk",
    "fourier_interpolate",
    "gauss1d_mask",
    "gauss2d_mask",
    "lag_cumulants",
    "lag_moments",
    "ldrc",
    "moments",
    "noise_filter",
    "psf_width",
    "reconstruct",
    "sofi_images",
    "total_signal",
    "xc_image",
    # GPU
    "to_device",
    # NWB
    "read_nwb_rois",
    "to_nwb",
]


def __getattr__(name: str) -> Any:
    """Import a public name (or any submodule, e.g. ``fluoxr.io``) the first time it is used."""
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
    elif not name.startswith("__"):
        try:
            value = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise  # the submodule exists but something it imports does not
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value  # later lookups are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__) | set(_LAZY) | set(_SUBMODULES))


# DataArray.fluo: registered when xarray is imported, without importing it (or any analysis) here
_lazy.after_import("xarray", _lazy.register_accessor)
