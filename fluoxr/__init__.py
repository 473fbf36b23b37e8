"""fluoxr: out-of-core analysis of fluorescence microscopy recordings.

A video is a lazy, dask-backed ``xarray.DataArray`` with dims
``("time", "y", "x")`` chunked along time; every analysis maps a kernel over
chunks so that it scales past memory and onto a dask cluster unchanged.

Examples
--------
>>> import numpy as np, fluoxr
>>> video = fluoxr.as_video(np.zeros((10, 16, 16), np.uint16), fps=20)
>>> video.dims
('time', 'y', 'x')
"""

import logging

from . import accessor as _accessor  # noqa: F401  registers ``.fluo``
from . import datasets, features, oscillations, sofi
from ._options import get_options, set_options
from ._video import as_video
from .device import to_device
from .extraction import cell_masks, extract, neuropil_masks, traces
from .features import roi_features
from .io import (
    VideoFileNotFoundError,
    open_result,
    open_video,
    read_image,
    read_positions,
    read_suite2p_stat,
    save,
)
from .positions import collage_positions, positions_between, random_positions
from .rois import ROISet
from .table import LazyTable
from .sofi import (
    bleach_blocks,
    bleach_correct,
    block_moments,
    cross_cumulants,
    cumulants,
    deconvsk,
    fourier_interpolate,
    gauss1d_mask,
    gauss2d_mask,
    lag_cumulants,
    lag_moments,
    ldrc,
    moments,
    noise_filter,
    psf_width,
    reconstruct,
    sofi_images,
    total_signal,
    xc_image,
)
from .spikes import oasis
from .temporal import baseline, detrend, dff, normalize, subtract_neuropil

logging.getLogger(__name__).addHandler(logging.NullHandler())

__version__ = "0.1.0"

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
    "random_positions",
    "read_positions",
    "subtract_neuropil",
    "traces",
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
]
