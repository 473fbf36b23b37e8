"""Opening recordings lazily and saving results: the only package that touches disk.

Every opener reads metadata only. Pixel data are read by small picklable
*reader* objects (a path plus the layout of the frames in the file) that each
dask task opens itself, so the graph runs on process-based distributed
workers and no open file handle ever enters it. Inputs are opened read-only.

Formats
-------
TIFF / BigTIFF (one file, a list, or a glob; ImageJ and OME hyperstacks),
zarr v2/v3 (arrays, and groups written by :func:`save`), OME-Zarr images (NGFF 0.4/0.5,
``"store.ome.zarr::labels/NAME"`` for a label image), suite2p ``data.bin``,
``.npy`` (read like a memory map), HDF5 datasets (``"file.h5::/path"``) and NWB
imaging series (``"session.nwb::/acquisition/NAME"``); NWB files are written
by :func:`to_nwb` and their ROIs read by :func:`read_nwb_rois`.

Layout
------
``readers``  the reader base classes and the dask array over a reader
``tiff``, ``raw`` (.bin, .npy), ``hdf5``, ``zarr``  one module per format
``open``     the public openers: open_video, open_result, info, read_image, ...
``nwb``      to_nwb: traces, ROIs and recordings as NWB ophys files (needs pynwb)
``nwb_input`` NWB image series and PlaneSegmentations as inputs (h5py only)
``store``    save: chunk by chunk, resumable, completeness recorded in the store
``export``   save_tiff: images and videos as ImageJ TIFF (plain or colour-mapped RGB), chunk by chunk
``ome_zarr`` the OME-Zarr (NGFF 0.5) layout save can write, and opening OME-Zarr images
``safety``   what keeps outputs away from inputs: refused paths, locks, fingerprints

Patch private functions where they are defined (``fluoxr.io.store._write_block``):
the names re-exported here are for reading, and rebinding them changes nothing.
"""

from __future__ import annotations

from .export import save_tiff
from .hdf5 import H5_SUFFIXES, _h5_reader, _H5Reader, _split_h5
from .open import (
    _check_exists,
    _expand_paths,
    _kind,
    info,
    open_result,
    open_video,
    read_image,
    read_positions,
    read_suite2p_stat,
)
from .nwb import to_nwb
from .nwb_input import read_nwb_rois
from .raw import _bin_reader, _npy_reader, _RawReader
from .readers import PathLike, VideoFileNotFoundError, _ConcatReader, _FileReader, _Reader, _reader_to_dask
from .store import (
    _PARTIAL,
    _WRITE_ATTR,
    IncompleteStoreError,
    _concat_ragged,
    _graph_sources,
    _prepare_dataset,
    _store_state,
    _write_block,
    check_complete,
    save,
)
from .tiff import TIFF_SUFFIXES, _tiff_metadata, _tiff_reader, _TiffPagesReader
from .zarr import _open_zarr_any

__all__ = [
    "open_video",
    "open_result",
    "save",
    "save_tiff",
    "info",
    "read_image",
    "read_suite2p_stat",
    "VideoFileNotFoundError",
    "IncompleteStoreError",
    "check_complete",
    "to_nwb",
    "read_nwb_rois",
]
