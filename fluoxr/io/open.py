"""Public openers: recordings (lazily), results, images, suite2p ROIs and positions.

Every opener reads metadata only; pixel data are read later by the readers
(:mod:`.readers`) that the dask tasks carry. The format is told from the path
(:func:`_kind`) and each format's module builds the reader.
"""

from __future__ import annotations

import glob as _glob
import logging
import os
import re
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
import xarray as xr

from .._validate import check_choice, check_fps, check_int, check_number
from .._video import ChunksLike, as_video, default_dims, normalize_chunks_arg
from .hdf5 import H5_SUFFIXES, _h5_reader, _split_h5
from .ome_zarr import is_ome_zarr, open_ome_result, open_ome_video
from .nwb_input import NWB_SUFFIXES, _nwb_reader
from .raw import _bin_reader, _npy_reader
from .readers import PathLike, VideoFileNotFoundError, _ConcatReader, _Reader, _reader_to_dask
from .store import _public_attrs, check_complete
from .tiff import TIFF_SUFFIXES, _tiff_reader
from .zarr import _consolidated, _open_zarr_any

logger = logging.getLogger(__name__)

# --------------------------------------------------------------------------------------------
# format detection


def _natural_key(s: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", s)]


def _expand_paths(path: Any) -> list[str]:
    if isinstance(path, (str, os.PathLike)):
        text = os.fspath(path)
        if any(c in text for c in "*?[") and "::" not in text and not os.path.exists(text):
            found = sorted(_glob.glob(text), key=_natural_key)
            if not found:
                raise VideoFileNotFoundError(f"path: no file matches the pattern {text!r}")
            return found
        return [text]
    if isinstance(path, Sequence) and not isinstance(path, (bytes, bytearray)):
        if len(path) == 0:
            raise ValueError("path: the list of files is empty")
        out = []
        for p in path:
            if not isinstance(p, (str, os.PathLike)):
                raise TypeError(f"path: every entry of the list must be a path, got {type(p).__name__}")
            out.append(os.fspath(p))
        return out
    raise TypeError(f"path must be a path, a list of paths or a glob pattern, got {type(path).__name__}")

def _kind(text: str) -> str:
    f, dset = _split_h5(text)
    low = f.lower()
    if low.endswith(NWB_SUFFIXES):
        return "nwb"
    if dset is not None or low.endswith(H5_SUFFIXES):
        return "h5"
    if low.endswith(TIFF_SUFFIXES):
        return "tiff"
    if low.endswith(".npy"):
        return "npy"
    if low.endswith(".bin"):
        return "bin"
    if low.rstrip("/\\").endswith(".zarr") or (os.path.isdir(f) and any(
            os.path.exists(os.path.join(f, m)) for m in ("zarr.json", ".zgroup", ".zarray"))):
        return "zarr"
    raise ValueError(
        f"path {text!r} has an unknown extension; fluoxr opens TIFF ({', '.join(TIFF_SUFFIXES)}), "
        "zarr (.zarr or a zarr directory), suite2p .bin, .npy, HDF5 ('file.h5::/dataset') "
        "and NWB ('file.nwb', 'file.nwb::/acquisition/NAME')"
    )


def _check_exists(text: str) -> None:
    f, _ = _split_h5(text)
    if not os.path.exists(f):
        raise VideoFileNotFoundError(f"path {f!r} does not exist")

# --------------------------------------------------------------------------------------------
# public openers


def _absolute(text: str) -> str:
    """``text`` with its file made absolute (an HDF5 ``'file::/dataset'`` keeps its dataset)."""
    f, dset = _split_h5(text)
    return os.path.abspath(f) + (f"::{dset}" if dset is not None else "")


def _settle_metadata(metas: Sequence[dict[str, Any]], meta: dict[str, Any], *, fps: float | None,
                     pixel_size: float | None) -> dict[str, Any]:
    """The first file's metadata without its malformed entries; raise for those the caller did not give."""
    given = {"fps": fps, "pixel_size": pixel_size}
    for m in metas:
        for key, value in given.items():
            message = m.get(f"{key}_error")
            if message is None:
                continue
            if value is None:
                raise ValueError(message)
            # the caller's value replaces the metadata, so its fault does not matter here
            logger.info("%s (ignored: %s=%g was given)", message.split("; pass")[0], key, value)
    return {k: v for k, v in meta.items() if not k.endswith("_error")}


def open_video(
    path: PathLike | Sequence[PathLike],
    *,
    fps: float | None = None,
    chunks: ChunksLike = None,
    pixel_size: float | None = None,
    shape: Sequence[int] | None = None,
    dtype: Any = None,
    series: int = 0,
    backend: str = "numpy",
    level: int = 0,
) -> xr.DataArray:
    """Open a recording lazily as a dask-backed video.

    Only metadata are read; frames are read by the dask tasks that need them,
    each opening the file itself (the graph pickles and runs on
    process-based distributed workers).

    Parameters
    ----------
    path : path, list of paths or glob pattern
        A TIFF/BigTIFF (or several, concatenated along time in natural sort
        order, like a microscope's split stacks), a zarr store, a suite2p
        ``data.bin``, a ``.npy`` file, an HDF5 dataset ``"file.h5::/path"`` or
        an NWB file's imaging series (``"session.nwb"`` for its only
        TwoPhotonSeries or OnePhotonSeries, ``"session.nwb::/acquisition/NAME"``
        to pick one; rate from the series, pixel size from its imaging
        plane's ``grid_spacing``).
        An OME-Zarr image (NGFF 0.4 or 0.5, written by any tool) opens with
        its frame rate and pixel size from its axes' scale and units;
        ``"out.ome.zarr::labels/NAME"`` opens a label image (or another image
        group of the store). An OME-Zarr image without a time axis opens as
        an image (dims ``[c], [z], y, x``).
    fps : float, optional
        Frame rate in Hz; overrides the file's metadata. With a frame rate,
        ``time`` is in seconds.
    chunks : int, tuple, mapping or "auto", optional
        Frames per chunk or a ``{dim: size}`` mapping. Default: whole frames,
        about 96 MB per chunk, along time only.
    pixel_size : float, optional
        Pixel size in µm; overrides the file's metadata.
    shape : (Ly, Lx), optional
        Frame shape of a raw ``.bin`` file (default: from ``ops.npy`` beside it).
    dtype : dtype, optional
        Sample type of a raw ``.bin`` file (default int16, as suite2p writes).
    series : int
        TIFF image series to read (default the first).
    backend : {"numpy", "cupy"}
        Chunk type: "cupy" copies each chunk to the GPU as it is read
        (:func:`fluoxr.to_device`), so every analysis with a GPU path runs
        there. Needs the ``gpu`` extra (``pip install "fluoxr[gpu]"``).
    level : int
        Pyramid level of an OME-Zarr image (0, the default, is full
        resolution; each further level halves ``y`` and ``x``, and
        ``pixel_size`` doubles).

    Returns
    -------
    xarray.DataArray
        Dims ``("time", [z], [channel], "y", "x")``, attrs ``fps`` (when
        known), ``pixel_size`` (when known) and ``source``.

    Examples
    --------
    >>> import numpy as np, tifffile, fluoxr
    >>> tifffile.imwrite("/tmp/doc_stack.tif", np.zeros((10, 8, 8), np.uint16))
    >>> v = fluoxr.open_video("/tmp/doc_stack.tif", fps=30)
    >>> v.sizes["time"], v.attrs["fps"]
    (10, 30.0)
    """
    check_choice(backend, "backend", ("numpy", "cupy"))
    if backend == "cupy":
        from ..device import to_device

        return to_device(open_video(path, fps=fps, chunks=chunks, pixel_size=pixel_size, shape=shape, dtype=dtype,
                                    series=series, level=level), "cuda")
    fps = check_fps(fps)
    if pixel_size is not None:
        pixel_size = check_number(pixel_size, "pixel_size", gt=0)
    if isinstance(path, (str, os.PathLike)) and is_ome_zarr(os.fspath(path)):
        return open_ome_video(os.fspath(path), level=level, chunks=chunks, fps=fps, pixel_size=pixel_size)
    if level != 0:
        shown = os.fspath(path) if isinstance(path, (str, os.PathLike)) else path
        raise ValueError(f"level is the pyramid level of an OME-Zarr image; {shown!r} is not one (got level={level!r})")
    # absolute now: the readers travel to workers that may run in another directory
    paths = [_absolute(p) for p in _expand_paths(path)]
    for p in paths:
        _check_exists(p)
    kinds = {_kind(p) for p in paths}
    if len(kinds) > 1:
        raise ValueError(f"path: all files must have the same format, got {sorted(kinds)}")
    kind = kinds.pop()
    if kind != "bin" and (shape is not None or dtype is not None):
        raise ValueError(f"shape and dtype describe a raw .bin file; {kind} files carry their own "
                         f"(got shape={shape!r}, dtype={dtype!r})")
    if shape is not None:
        if not isinstance(shape, (tuple, list)) or len(shape) != 2:
            raise ValueError(f"shape must be the frame shape (Ly, Lx), got {shape!r}")
        shape = (check_int(shape[0], "shape[0]", min_value=1), check_int(shape[1], "shape[1]", min_value=1))
    if len(paths) > 1 and kind not in ("tiff", "npy", "bin", "h5"):
        raise ValueError(f"path: only TIFF, .npy, .bin and HDF5 files can be concatenated, got {kind}")

    meta: dict[str, Any] = {}
    base = None
    if kind == "zarr":
        if len(paths) != 1:
            raise ValueError("path: open one zarr store at a time")
        arr = _open_zarr_any(paths[0], chunks)
        meta = {k: arr.attrs[k] for k in ("fps", "pixel_size") if arr.attrs.get(k)}
        # only a frame rate given here replaces the stored one; as_video keeps the stored time coordinate
        video = as_video(arr, fps=fps, pixel_size=pixel_size or meta.get("pixel_size"),
                         source=os.path.abspath(paths[0]))
        return video

    readers: list[_Reader] = []
    dims: tuple[str, ...] | None = None
    metas: list[dict[str, Any]] = []
    for p in paths:
        if kind == "tiff":
            r, d, m = _tiff_reader(p, series)
        elif kind == "bin":
            (r, m), d = _bin_reader(p, shape, dtype), ("time", "y", "x")
        elif kind == "npy":
            (r, d), m = _npy_reader(p), {}
        elif kind == "nwb":
            r, d, m, base = _nwb_reader(p)
        else:
            r, m, h5chunks = _h5_reader(p)
            d = default_dims(len(r.shape))
            base = h5chunks
        metas.append(m)
        if dims is None:
            dims, meta = d, m
        elif d != dims or r.shape[1:] != readers[0].shape[1:]:
            raise ValueError(
                f"path: the files do not share a frame shape: {paths[0]!r} has dims {dims} shape "
                f"{readers[0].shape[1:]}, {p!r} has dims {d} shape {r.shape[1:]}"
            )
        elif r.dtype != readers[0].dtype:
            raise ValueError(f"path: the files differ in dtype ({readers[0].dtype} vs {r.dtype} in {p!r})")
        readers.append(r)
    assert dims is not None
    meta = _settle_metadata(metas, meta, fps=fps, pixel_size=pixel_size)
    reader = readers[0] if len(readers) == 1 else _ConcatReader(readers)
    if reader.shape[0] < 1:
        raise ValueError(f"path {paths[0]!r} holds no frames")
    dchunks = normalize_chunks_arg(chunks, dims, reader.shape, reader.dtype.itemsize, base=base)
    data = _reader_to_dask(reader, dchunks, kind)
    if fps is not None and meta.get("fps") and abs(meta["fps"] - fps) > 1e-9 * fps:
        logger.info("fps=%g overrides the file's frame rate %g", fps, meta["fps"])
    source = os.path.abspath(paths[0]) if len(paths) == 1 else [os.path.abspath(p) for p in paths]
    video = as_video(data, dims=dims, fps=fps or meta.get("fps"),
                     pixel_size=pixel_size or meta.get("pixel_size"), name="video")
    video.attrs["source"] = source if isinstance(source, str) else "; ".join(source)
    return video


def open_result(path: PathLike, *, chunks: Mapping[Hashable, Any] | None = None) -> xr.DataArray | xr.Dataset:
    """Open a result written by :func:`save`: a DataArray if one was saved, else a Dataset.

    Examples
    --------
    >>> import numpy as np, xarray as xr, fluoxr
    >>> img = xr.DataArray(np.ones((4, 5)), dims=("y", "x"), name="mean")
    >>> _ = fluoxr.save(img, "/tmp/doc_mean.zarr", overwrite=True)
    >>> fluoxr.open_result("/tmp/doc_mean.zarr").name
    'mean'
    """
    text = os.fspath(path)
    _check_exists(text)
    check_complete(text)
    if is_ome_zarr(text):
        return open_ome_result(text, chunks=chunks)
    ds = xr.open_zarr(text, chunks=chunks if chunks is not None else {}, consolidated=_consolidated(text))
    ds.attrs = _public_attrs(ds.attrs)
    name = ds.attrs.pop("fluoxr_dataarray", None)
    if name is not None and name in ds:
        out = ds[name]
        out.attrs = dict(ds.attrs)
        return out
    return ds


def read_image(path: PathLike) -> np.ndarray:
    """Read a small image (mask, label image, reference) from TIFF, .npy or zarr into memory.

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> np.save("/tmp/doc_mask.npy", np.eye(3, dtype=bool))
    >>> fluoxr.io.read_image("/tmp/doc_mask.npy").sum()
    np.int64(3)
    """
    text = os.fspath(path)
    _check_exists(text)
    low = text.lower()
    if low.endswith(TIFF_SUFFIXES):
        import tifffile

        return tifffile.imread(text)
    if low.endswith(".npy"):
        arr = np.load(text, allow_pickle=False)
        return np.asarray(arr)
    if _kind(text) == "zarr":
        import zarr

        node = zarr.open(store=text, mode="r")
        if isinstance(node, zarr.Array):
            return np.asarray(node[...])
        res = open_result(text)
        if isinstance(res, xr.Dataset):
            raise ValueError(f"path {text!r} holds several variables; cannot read it as one image")
        return np.asarray(res.values)
    raise ValueError(f"path {text!r}: images are read from TIFF, .npy or zarr")


def read_suite2p_stat(path: PathLike) -> list[dict[str, Any]]:
    """Load suite2p's ``stat.npy`` (a pickled array of per-ROI dicts) as a list of dicts.

    ``stat.npy`` is a pickle: open only files you trust.
    """
    text = os.fspath(path)
    _check_exists(text)
    arr = np.load(text, allow_pickle=True)
    stat = list(arr.tolist()) if isinstance(arr, np.ndarray) else list(arr)
    if not stat or not all(isinstance(s, dict) and "ypix" in s and "xpix" in s for s in stat):
        raise ValueError(f"path {text!r} is not a suite2p stat.npy (a list of dicts with 'ypix' and 'xpix')")
    return stat


def info(path: PathLike | Sequence[PathLike], **kwargs: Any) -> dict[str, Any]:
    """Shape, dtype, chunks, fps and size on disk of a recording, reading metadata only.

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> np.save("/tmp/doc_info.npy", np.zeros((6, 4, 4), np.int16))
    >>> fluoxr.io.info("/tmp/doc_info.npy")["shape"]
    (6, 4, 4)
    """
    video = open_video(path, **kwargs)
    paths = _expand_paths(path)
    size = 0
    for p in paths:
        f, _ = _split_h5(p)
        if os.path.isdir(f):
            size += sum(os.path.getsize(os.path.join(r, n)) for r, _, ns in os.walk(f) for n in ns)
        else:
            size += os.path.getsize(f)
    return {
        "source": video.attrs.get("source"),
        "dims": video.dims,
        "shape": tuple(video.shape),
        "dtype": str(video.dtype),
        "chunks": {d: tuple(c) for d, c in video.chunksizes.items()},
        "fps": video.attrs.get("fps"),
        "pixel_size": video.attrs.get("pixel_size"),
        "nbytes": int(video.nbytes),
        "size_on_disk": size,
    }

def read_positions(path: PathLike) -> np.ndarray:
    """Read point positions from a CSV file as an ``(n, 2)`` int array of ``(y, x)`` rows.

    The file has a header with columns ``y`` and ``x`` (any order, other
    columns ignored; ``row``/``col`` are accepted too), or no header and two
    columns in the order ``y, x``. Values must be integer pixel indices.

    Examples
    --------
    >>> import fluoxr
    >>> _ = open("/tmp/doc_positions.csv", "w").write("y,x\\n3,4\\n10,2\\n")
    >>> fluoxr.read_positions("/tmp/doc_positions.csv").tolist()
    [[3, 4], [10, 2]]
    """
    import pandas as pd

    text = os.fspath(path)
    _check_exists(text)
    with open(text) as fh:
        first = fh.readline()
    has_header = any(c.isalpha() for c in first)
    if has_header:
        table = pd.read_csv(text)
        cols = {str(c).strip().lower(): c for c in table.columns}
        pick = None
        for ny, nx in (("y", "x"), ("row", "col"), ("row", "column")):
            if ny in cols and nx in cols:
                pick = (cols[ny], cols[nx])
                break
        if pick is None:
            raise ValueError(f"path {text!r}: a positions CSV needs columns 'y' and 'x', got {list(table.columns)}")
        values = table[list(pick)].to_numpy()
    else:
        values = pd.read_csv(text, header=None).to_numpy()
        if values.ndim != 2 or values.shape[1] != 2:
            raise ValueError(f"path {text!r}: a positions CSV without header must have two columns (y, x), "
                             f"got {values.shape[1]}")
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        raise ValueError(f"path {text!r} holds no positions")
    if not np.all(np.isfinite(values)) or not np.all(np.mod(values, 1) == 0):
        raise ValueError(f"path {text!r}: positions must be integer pixel indices (y, x)")
    return values.astype(np.int64)
