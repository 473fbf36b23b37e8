"""Opening recordings lazily and saving results: the only module that touches disk.

Every opener reads metadata only. Pixel data are read by small picklable
*reader* objects (a path plus the layout of the frames in the file) that each
dask task opens itself, so the graph runs on process-based distributed
workers and no open file handle ever enters it. Inputs are opened read-only.

Formats
-------
TIFF / BigTIFF (one file, a list, or a glob; ImageJ and OME hyperstacks),
zarr v2/v3 (arrays, and groups written by :func:`save`), suite2p ``data.bin``,
``.npy`` (read like a memory map) and HDF5 datasets (``"file.h5::/path"``).
"""

from __future__ import annotations

import contextlib
import glob as _glob
import json
import logging
import math
import os
import re
import shutil
import threading
import warnings
import xml.etree.ElementTree as ET
from datetime import datetime, timezone
from collections.abc import Hashable, Mapping, Sequence
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from ._video import ChunksLike, as_video, normalize_chunks_arg
from ._validate import check_choice, check_fps, check_int, check_number

logger = logging.getLogger(__name__)

__all__ = [
    "open_video",
    "open_result",
    "save",
    "info",
    "read_image",
    "read_suite2p_stat",
    "VideoFileNotFoundError",
    "IncompleteStoreError",
    "check_complete",
]

PathLike = str | os.PathLike
TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")
H5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")
_AXIS_DIMS = {"T": "time", "I": "time", "Q": "time", "Z": "z", "C": "channel", "S": "channel", "Y": "y", "X": "x"}
_PARTIAL = ".partial"


class VideoFileNotFoundError(FileNotFoundError, ValueError):
    """A path given to fluoxr does not exist (both a ``FileNotFoundError`` and a ``ValueError``)."""


# --------------------------------------------------------------------------------------------
# readers: picklable, hold no file handle, read whole frames for a range of time indices


def _frames_text(t0: int, t1: int) -> str:
    return f"frame {t0}" if t1 - t0 <= 1 else f"frames {t0}..{t1 - 1}"


def _mtime_text(ns: int) -> str:
    return datetime.fromtimestamp(ns / 1e9, tz=timezone.utc).isoformat(timespec="microseconds")


def _corrupt(path: str, what: str, exc: BaseException | str) -> ValueError:
    """The error of a file that cannot be decoded: names the file, the frame(s) and the cause."""
    if isinstance(exc, str):
        cause = exc
    else:
        # zlib.error and struct.error are both just 'error' by name
        name = type(exc).__name__
        cause = f"{type(exc).__module__ + '.' if name == 'error' else ''}{name}: {exc}"
    return ValueError(f"path {path!r}: {what} cannot be read ({cause}): the file is truncated or corrupt")


class _Reader:
    """Array-like over a file; ``reader[t0:t1, ...]`` reads frames ``t0..t1-1``.

    ``shape`` is in output order (time first, frames last); subclasses
    implement ``_read(t0, t1)`` returning whole frames in that order.
    """

    shape: tuple[int, ...]
    dtype: np.dtype
    paths: tuple[str, ...]

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def files(self) -> tuple[tuple[str, int, int], ...]:  # pragma: no cover - abstract
        """``(path, size in bytes, modification time in ns)`` of every file read, as when opened."""
        raise NotImplementedError

    def __getitem__(self, key: Any) -> np.ndarray:
        if not isinstance(key, tuple):
            key = (key,)
        key = key + (slice(None),) * (self.ndim - len(key))
        tkey = key[0]
        if isinstance(tkey, slice):
            t0, t1, step = tkey.indices(self.shape[0])
            if step != 1:
                out = self._read(t0, max(t0, t1))[::step]
            else:
                out = self._read(t0, max(t0, t1))
            return out[(slice(None),) + key[1:]]
        t = int(tkey) % self.shape[0]
        return self._read(t, t + 1)[0][key[1:]]

    def _read(self, t0: int, t1: int) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError


class _FileReader(_Reader):
    """A reader of one file, fingerprinted (size, mtime) when opened and checked at every read.

    A dask graph can run long after the video was opened: a file rewritten in
    between (a new acquisition saved under the same name, a copy still being
    written) would otherwise be read as if it were the file that was opened,
    with the old layout over new bytes.
    """

    def __init__(self, path: str, stat: os.stat_result | None = None) -> None:
        # absolute, so a worker started in another directory reads the same file
        self.path = os.path.abspath(os.fspath(path))
        self.paths = (self.path,)
        st = stat if stat is not None else os.stat(self.path)
        self.size = int(st.st_size)
        self.mtime_ns = int(st.st_mtime_ns)

    def files(self) -> tuple[tuple[str, int, int], ...]:
        return ((self.path, self.size, self.mtime_ns),)

    def _check_stat(self, st: os.stat_result) -> None:
        size, mtime = int(st.st_size), int(st.st_mtime_ns)
        if (size, mtime) == (self.size, self.mtime_ns):
            return
        changes = []
        if size != self.size:
            changes.append(f"size {self.size} -> {size} bytes")
        if mtime != self.mtime_ns:
            changes.append(f"modified {_mtime_text(self.mtime_ns)} -> {_mtime_text(mtime)}")
        raise ValueError(f"path {self.path!r} changed since it was opened ({', '.join(changes)}); "
                         "open it again with fluoxr.open_video")

    def _stat_checked(self) -> None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError as exc:
            raise VideoFileNotFoundError(f"path {self.path!r} no longer exists (it was there when the "
                                         "video was opened)") from exc
        self._check_stat(st)

    def _open_checked(self) -> Any:
        """The file opened for reading, after checking that it is the file that was opened."""
        try:
            fh = open(self.path, "rb")
        except FileNotFoundError as exc:
            raise VideoFileNotFoundError(f"path {self.path!r} no longer exists (it was there when the "
                                         "video was opened)") from exc
        try:
            # fstat of the handle itself: the bytes read below are those of the file checked
            self._check_stat(os.fstat(fh.fileno()))
        except BaseException:
            fh.close()
            raise
        return fh


class _RawReader(_FileReader):
    """Uncompressed frames stored contiguously in C order at a byte offset (TIFF, .bin, .npy)."""

    def __init__(self, path: str, dtype: np.dtype, offset: int, file_shape: Sequence[int],
                 perm: Sequence[int], stat: os.stat_result | None = None) -> None:
        super().__init__(path, stat)
        self.file_dtype = np.dtype(dtype)
        self.dtype = self.file_dtype.newbyteorder("=")
        self.offset = int(offset)
        self.file_shape = tuple(int(s) for s in file_shape)
        self.perm = tuple(int(p) for p in perm)
        self.shape = tuple(self.file_shape[p] for p in self.perm)

    def _read(self, t0: int, t1: int) -> np.ndarray:
        n = t1 - t0
        if self.perm[0] == 0:
            # time is the slowest axis: one contiguous byte range, one read call
            inner = self.file_shape[1:]
            out = np.empty((n,) + inner, self.file_dtype)
            nbytes = out.nbytes
            if nbytes:
                start = self.offset + t0 * (nbytes // n)
                with self._open_checked() as fh:
                    fh.seek(start)
                    got = fh.readinto(memoryview(out).cast("B"))
                if got != nbytes:
                    raise _corrupt(self.path, _frames_text(t0, t1),
                                   f"wanted {nbytes} bytes at offset {start}, got {got}")
            out = out.transpose((0,) + tuple(p for p in self.perm[1:]))
        else:
            with self._open_checked() as fh:
                try:
                    mm = np.memmap(fh, dtype=self.file_dtype, mode="r", offset=self.offset, shape=self.file_shape)
                except ValueError as exc:
                    raise _corrupt(self.path, _frames_text(t0, t1), exc) from exc
                out = np.array(mm.transpose(self.perm)[t0:t1])
                del mm
        out = np.ascontiguousarray(out)
        if not self.file_dtype.isnative:
            out = out.astype(self.dtype)
        return out


class _TiffPagesReader(_FileReader):
    """TIFF pages read one by one (compressed, tiled or scattered pages).

    The IFD offset of every page is recorded once when the file is opened,
    so a task seeks straight to its pages instead of walking the IFD chain
    from the start of the file (which makes reading quadratic in the number
    of frames).
    """

    def __init__(self, path: str, keyframe_offset: int, ifd_offsets: np.ndarray,
                 page_shape: Sequence[int], dtype: np.dtype, out_perm: Sequence[int],
                 stat: os.stat_result | None = None) -> None:
        super().__init__(path, stat)
        self.keyframe_offset = int(keyframe_offset)
        # ifd_offsets: leading (page) axes, already moved so that time is axis 0
        self.ifd_offsets = np.asarray(ifd_offsets, dtype=np.int64)
        self.page_shape = tuple(page_shape)
        self.dtype = np.dtype(dtype)
        self.out_perm = tuple(out_perm)
        full = self.ifd_offsets.shape + self.page_shape
        self.shape = tuple(full[p] for p in self.out_perm)

    def _read(self, t0: int, t1: int) -> np.ndarray:
        import tifffile

        sel = self.ifd_offsets[t0:t1]
        out = np.empty(sel.shape + self.page_shape, self.dtype)
        flat = out.reshape((-1,) + self.page_shape)
        per_frame = max(1, int(np.prod(sel.shape[1:], dtype=np.int64)))
        where = _frames_text(t0, t1)
        with self._open_checked() as fh:
            try:
                tif = tifffile.TiffFile(fh)
            except MemoryError:
                raise
            except Exception as exc:
                raise _corrupt(self.path, where, exc) from exc
            with tif:
                keyframe = None
                for i, off in enumerate(sel.ravel()):
                    try:
                        if keyframe is None:
                            tif.filehandle.seek(self.keyframe_offset)
                            keyframe = tifffile.TiffPage(tif, index=0)
                        if int(off) == self.keyframe_offset:
                            page = keyframe
                        else:
                            page = tifffile.TiffFrame(tif, index=i, offset=int(off), keyframe=keyframe)
                        flat[i] = page.asarray().reshape(self.page_shape)
                    except MemoryError:
                        raise
                    except Exception as exc:
                        # zlib.error, struct.error, TiffFileError, ValueError (a short strip cannot
                        # be reshaped), OSError, EOFError...: any of them means these bytes are not
                        # the page the file's directory describes
                        raise _corrupt(self.path, f"frame {t0 + i // per_frame}", exc) from exc
        return np.ascontiguousarray(out.transpose(self.out_perm))


class _H5Reader(_FileReader):
    def __init__(self, path: str, dataset: str, shape: Sequence[int], dtype: np.dtype,
                 stat: os.stat_result | None = None) -> None:
        super().__init__(path, stat)
        self.dataset = dataset
        self.shape = tuple(shape)
        self.dtype = np.dtype(dtype)

    def _read(self, t0: int, t1: int) -> np.ndarray:
        import h5py

        # stat right before opening: h5py reading through a Python file object would be slower
        self._stat_checked()
        try:
            with h5py.File(self.path, "r") as f:
                return np.asarray(f[self.dataset][t0:t1])
        except (OSError, KeyError) as exc:
            raise _corrupt(self.path, _frames_text(t0, t1), exc) from exc


class _ConcatReader(_Reader):
    """Several files with the same frame shape, one after the other along time."""

    def __init__(self, readers: Sequence[_Reader]) -> None:
        self.readers = list(readers)
        self.starts = np.cumsum([0] + [r.shape[0] for r in self.readers])
        self.shape = (int(self.starts[-1]),) + tuple(self.readers[0].shape[1:])
        self.dtype = self.readers[0].dtype
        self.paths = tuple(p for r in self.readers for p in r.paths)

    def files(self) -> tuple[tuple[str, int, int], ...]:
        return tuple(f for r in self.readers for f in r.files())

    def _read(self, t0: int, t1: int) -> np.ndarray:
        parts = []
        for i, r in enumerate(self.readers):
            a, b = max(t0, self.starts[i]), min(t1, self.starts[i + 1])
            if a < b:
                parts.append(r._read(int(a - self.starts[i]), int(b - self.starts[i])))
        if len(parts) == 1:
            return parts[0]
        if not parts:
            return np.empty((0,) + self.shape[1:], self.dtype)
        return np.concatenate(parts, axis=0)


def _reader_to_dask(reader: _Reader, chunks: tuple, name_hint: str) -> da.Array:
    # the fingerprint taken at open (path, size, mtime) makes a rewritten file a new graph
    token = dask.base.tokenize(type(reader).__name__, reader.files(), reader.shape, str(reader.dtype))
    # inline_array=False keeps the reader as one small graph key shared by all tasks
    return da.from_array(reader, chunks=chunks, name=f"fluoxr-read-{name_hint}-{token}", lock=False,
                         asarray=False, inline_array=False, meta=np.empty((0,) * reader.ndim, reader.dtype))


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


def _split_h5(text: str) -> tuple[str, str | None]:
    if "::" in text:
        f, d = text.split("::", 1)
        return f, d or None
    return text, None


def _kind(text: str) -> str:
    f, dset = _split_h5(text)
    low = f.lower()
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
        "zarr (.zarr or a zarr directory), suite2p .bin, .npy and HDF5 ('file.h5::/dataset')"
    )


def _check_exists(text: str) -> None:
    f, _ = _split_h5(text)
    if not os.path.exists(f):
        raise VideoFileNotFoundError(f"path {f!r} does not exist")


# --------------------------------------------------------------------------------------------
# TIFF


def _output_perm(axes: Sequence[str], path: str = "") -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Dims in fluoxr order for file ``axes`` (tifffile letters), and the permutation file->output."""
    text = "".join(axes)
    where = f"path {path!r}" if path else "path"
    dims = []
    for i, a in enumerate(axes):
        if a not in _AXIS_DIMS:
            raise ValueError(
                f"{where}: TIFF axis {a!r} (of axes {text!r}) is not supported; "
                "fluoxr reads time (T, or I/Q first), z (Z), channel (C/S), y and x"
            )
        if a in "QI" and i > 0:
            # tifffile writes Q (unknown) and I (image sequence) for axes nothing names; first they
            # can only be the frame sequence, elsewhere they could as well be z or channels
            raise ValueError(
                f"{where}: TIFF axis {a!r} at position {i} of axes {text!r} is tifffile's "
                f"{'generic' if a == 'Q' else 'image-sequence'} axis, which fluoxr reads as time only when "
                "it is the first axis; its meaning here is unknown. Write the file with named axes, e.g. "
                "tifffile.imwrite(path, data, metadata={'axes': 'TCYX'})"
            )
        dims.append(_AXIS_DIMS[a])
    # several axes can map to the same dim (e.g. 'C' and 'S'); only one of each is readable
    if dims.count("time") > 1 or dims.count("channel") > 1 or dims.count("z") > 1:
        raise ValueError(f"{where}: TIFF axes {text!r} have several time, z or channel axes; "
                         "fluoxr cannot tell which is which")
    if "time" not in dims:
        if "z" in dims:
            # ImageJ stacks saved as 'slices' are usually time series
            logger.info("TIFF axes %r have no time axis; reading the Z axis as time", text)
            dims[dims.index("z")] = "time"
        else:
            raise ValueError(
                f"{where} holds a single image (axes {text!r}), not a video; "
                "fluoxr needs a stack of frames along time"
            )
    order = [d for d in ("time", "z", "channel", "y", "x") if d in dims]
    return tuple(order), tuple(dims.index(d) for d in order)


# tifffile's own letters for an array written without axes: leading Q axes, then the page
_PLAIN_SHAPED = re.compile(r"^Q*(S?YX|YXS)$")


def _n_pages(tif: Any) -> int | None:
    """How many pages the file's IFD chain holds (None if the chain is broken)."""
    try:
        return len(tif.pages)
    except MemoryError:
        raise
    except Exception:
        return None


def _ome_pixels(xml: str, index: int) -> Any:
    """The ``Pixels`` element of OME image ``index`` (None if the XML cannot be parsed)."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    images = [el for el in root if el.tag.endswith("Image")]
    if not images:
        return None
    image = images[index] if index < len(images) else images[0]
    return next((el for el in image.iter() if el.tag.endswith("Pixels")), None)


def _promised_pages(tif: Any, s: Any, series: int, path: str) -> tuple[int, str] | None:
    """Pages the file's metadata promises for series ``s``, and which metadata says so."""
    kinds = [x.kind for x in tif.series]
    index = kinds[:series].count(s.kind)
    if s.kind == "imagej" or (tif.is_imagej and "imagej" not in kinds):
        ij = tif.imagej_metadata or {}
        try:
            if ij.get("images"):
                return int(ij["images"]), f"ImageJ metadata (images={ij['images']})"
            counts = {k: int(ij.get(k, 1) or 1) for k in ("frames", "slices", "channels")}
        except (TypeError, ValueError):
            return None
        n = counts["frames"] * counts["slices"] * counts["channels"]
        return n, "ImageJ metadata (" + " x ".join(f"{k}={v}" for k, v in counts.items()) + ")"
    if s.kind == "ome" or (tif.is_ome and "ome" not in kinds):
        pix = _ome_pixels(tif.ome_metadata or "", index)
        if pix is None:
            return None
        planes = [el for el in pix if el.tag.endswith("Plane")]
        try:
            sizes = {k: int(pix.get(k, 1)) for k in ("SizeT", "SizeZ", "SizeC")}
            channels = [el for el in pix if el.tag.endswith("Channel")]
            spp = int(channels[0].get("SamplesPerPixel", 1)) if channels else 1
        except (TypeError, ValueError):
            return None
        n = sizes["SizeT"] * sizes["SizeZ"] * sizes["SizeC"] // max(1, spp)
        text = " x ".join(f"{k}={v}" for k, v in sizes.items()) + (f" / SamplesPerPixel={spp}" if spp > 1 else "")
        if planes and len(planes) > n:
            return len(planes), f"OME metadata ({len(planes)} planes listed)"
        return n, f"OME metadata ({text})"
    if s.kind == "shaped" or (tif.is_shaped and "shaped" not in kinds):
        shaped = tif.shaped_metadata or ()
        if index >= len(shaped) or "shape" not in shaped[index]:
            return None
        want = [int(n) for n in shaped[index]["shape"]]
        page = int(np.prod(s.keyframe.shape, dtype=np.int64)) or 1
        return int(np.prod(want, dtype=np.int64)) // page, f"tifffile shape metadata (shape={tuple(want)})"
    return None


# tifffile's warnings of a damaged file: it logs them and opens what it can (fewer pages, a
# generic series instead of the OME/ImageJ one whose description lay past the end of the file)
_TIFF_DAMAGE = re.compile(r"invalid (page|value) offset|invalid offset to|corrupt|failed to reshape|circular "
                          r"reference|missing data|incorrect strip|metadata invalid|invalid .*metadata", re.I)


class _TiffDamage(logging.Handler):
    """Collects tifffile's warnings of a damaged file that this thread logs while it is installed."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        # other threads may open other files at the same time: their warnings are not ours
        if record.thread == self.thread:
            message = record.getMessage()
            if _TIFF_DAMAGE.search(message):
                self.messages.append(message)

    def __enter__(self) -> _TiffDamage:
        logging.getLogger("tifffile").addHandler(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        logging.getLogger("tifffile").removeHandler(self)


def _tiff_reader(path: str, series: int) -> tuple[_Reader, tuple[str, ...], dict[str, Any]]:
    import tifffile

    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise ValueError(f"path {path!r} cannot be opened: {exc}") from exc
    with fh, _TiffDamage() as damage:
        # the fingerprint of the bytes parsed here is what every later read is checked against
        st = os.fstat(fh.fileno())
        try:
            tif = tifffile.TiffFile(fh)
        except MemoryError:
            raise
        except Exception as exc:
            raise ValueError(f"path {path!r} is not a readable TIFF file, or it is truncated or corrupt "
                             f"({type(exc).__name__}: {exc})") from exc
        with tif:
            try:
                result = _tiff_series_reader(tif, path, series, st)
            except ValueError as exc:
                if damage.messages and "truncated or corrupt" not in str(exc) and "is truncated" not in str(exc):
                    # the damage explains whatever else went wrong (e.g. no time axis in the generic
                    # series tifffile fell back to); a check that saw the damage itself says more
                    raise _corrupt(path, "its TIFF structure", f"tifffile: {damage.messages[0]}") from exc
                raise
    if damage.messages:
        raise _corrupt(path, "its TIFF structure", f"tifffile: {damage.messages[0]}")
    return result


def _tiff_series_reader(tif: Any, path: str, series: int, st: os.stat_result
                        ) -> tuple[_Reader, tuple[str, ...], dict[str, Any]]:
    size = int(st.st_size)
    try:
        # everything tifffile parses lazily is touched here, so that a corrupt directory
        # surfaces as one error naming the file
        n_series = len(tif.series)
        if not n_series or series >= n_series:
            raise IndexError(series)
        s = tif.series[series]
        axes = s.axes.upper()
        shape = tuple(int(n) for n in s.shape)
        keyframe = s.keyframe
        page_shape = tuple(int(n) for n in keyframe.shape)
        dataoffset = s.dataoffset
        contiguous = dataoffset is not None and len(s.pages) > 0 and keyframe.is_contiguous
        promised = _promised_pages(tif, s, series, path)
        shaped_axes = None
        if s.kind == "shaped":
            index = [x.kind for x in tif.series][:series].count("shaped")
            shaped_meta = tif.shaped_metadata or ()
            shaped_axes = shaped_meta[index].get("axes") if index < len(shaped_meta) else None
        meta = _tiff_metadata(tif, s, path, series)
        dtype = np.dtype(s.dtype).newbyteorder(tif.byteorder)
    except IndexError:
        raise ValueError(f"series: {path!r} has {n_series} image series, asked for index {series}") from None
    except MemoryError:
        raise
    except Exception as exc:
        raise _corrupt(path, "its TIFF directory", exc) from exc

    page_size = int(np.prod(page_shape, dtype=np.int64)) or 1
    held = int(np.prod(shape, dtype=np.int64)) // page_size
    if promised is not None and held < promised[0]:
        # tifffile opens what it finds: a truncated hyperstack would read as a shorter recording
        in_file = _n_pages(tif)
        holds = min(held, in_file) if in_file is not None else held
        raise ValueError(f"path {path!r}: its {promised[1]} promises {promised[0]} pages, the file holds "
                         f"{holds}: the file is truncated or corrupt")
    if shaped_axes is None and s.kind == "shaped" and not _PLAIN_SHAPED.match(axes):
        # written by tifffile without axes, and its letters are shifted (trailing length-1 axes
        # of e.g. a (T, Y, 1) array cannot be a page): read it as the array written, like a .npy
        from ._video import default_dims

        if not 3 <= len(shape) <= 5:
            raise ValueError(f"path {path!r} holds an array of shape {shape}, not a video")
        dims, perm = default_dims(len(shape)), tuple(range(len(shape)))
    else:
        dims, perm = _output_perm(axes, path)

    if contiguous:
        end = dataoffset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if end > size:
            frame = ""
            if perm[0] == 0 and shape[0]:
                frame_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
                frame = f"; frame {max(0, size - dataoffset) // max(1, frame_bytes)} is the first incomplete one"
            raise ValueError(f"path {path!r} is truncated: its frames end at byte {end}, the file has {size}{frame}")
        return _RawReader(path, dtype, dataoffset, shape, perm, stat=st), dims, meta

    # scattered or compressed pages: remember every page's IFD offset once
    n_lead = len(shape) - len(page_shape)
    if n_lead < 1 or tuple(shape[n_lead:]) != page_shape:
        raise ValueError(f"path {path!r}: cannot map TIFF series of shape {shape} onto its pages of shape "
                         f"{page_shape} (several frames in one compressed page cannot be read lazily)")
    time_axis = perm[0]
    if time_axis >= n_lead:
        raise ValueError(f"path {path!r}: the time axis lies inside each TIFF page; fluoxr cannot read it lazily")
    lead_shape = shape[:n_lead]
    offsets = []
    for i, p in enumerate(s.pages):
        frame = int(np.unravel_index(i, lead_shape)[time_axis]) if i < int(np.prod(lead_shape)) else i
        if p is None:
            raise ValueError(f"path {path!r}: frame {frame} has no TIFF page: the file is truncated or corrupt")
        try:
            parent = p.parent
            ends = [int(o) + int(n) for o, n in zip(p.dataoffsets, p.databytecounts)]
            offset = int(p.offset)
        except MemoryError:
            raise
        except Exception as exc:
            raise _corrupt(path, f"frame {frame}", exc) from exc
        if parent is not tif:
            raise ValueError(f"path {path!r}: this OME series spans several files; open the files as a list instead")
        if ends and max(ends) > size:
            raise _corrupt(path, f"frame {frame}", f"its data end at byte {max(ends)}, the file has {size} bytes")
        offsets.append(offset)
    if len(offsets) != int(np.prod(lead_shape, dtype=np.int64)):
        raise ValueError(f"path {path!r}: the TIFF series of shape {shape} has {len(offsets)} pages: "
                         "the file is truncated or corrupt")
    lead = np.moveaxis(np.asarray(offsets, np.int64).reshape(lead_shape), time_axis, 0)
    # axes of the array the reader builds: lead axes (time first), then page axes
    built = [time_axis] + [a for a in range(n_lead) if a != time_axis] + list(range(n_lead, len(shape)))
    out_perm = tuple(built.index(p) for p in perm)
    reader = _TiffPagesReader(path, keyframe.offset, lead, page_shape, s.dtype, out_perm, stat=st)
    return reader, dims, meta


_TIME_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0, "ms": 1e-3, "msec": 1e-3,
               "millisecond": 1e-3, "milliseconds": 1e-3, "us": 1e-6, "µs": 1e-6, "\\u00b5s": 1e-6,
               "microsecond": 1e-6, "microseconds": 1e-6, "min": 60.0, "minute": 60.0, "minutes": 60.0,
               "h": 3600.0, "hour": 3600.0, "hours": 3600.0}
_LENGTH_UNITS = {"µm": 1.0, "um": 1.0, "micron": 1.0, "microns": 1.0, "\\u00b5m": 1.0, "nm": 1e-3, "mm": 1e3}


def _positive(value: Any) -> float | None:
    """``value`` as a finite positive float, or None when it is not one."""
    if isinstance(value, (bool, np.bool_)):
        return None
    try:
        x = float(value)
    except (TypeError, ValueError):
        return None
    return x if math.isfinite(x) and x > 0 else None


def _bad_fps(path: str, where: str, key: str, value: Any, what: str = "a frame rate") -> str:
    return (f"path {path!r}: its {where} says {key}={value!r}, which is not {what}; "
            "pass fps= to open_video to set it")


def _bad_pixel_size(path: str, where: str, key: str, value: Any) -> str:
    return (f"path {path!r}: its {where} says {key}={value!r}, which is not a pixel size; "
            "pass pixel_size= to open_video to set it")


def _tiff_metadata(tif: Any, series: Any, path: str = "", index: int = 0) -> dict[str, Any]:
    """fps and pixel size (µm) from ImageJ or OME metadata, when present.

    Malformed values are not guessed around: they are returned as messages
    under ``fps_error`` / ``pixel_size_error``, which :func:`open_video`
    raises unless the caller gave the value itself.
    """
    path = path or str(tif.filename)
    meta: dict[str, Any] = {}
    ij = tif.imagej_metadata or {}
    fps = None
    if "finterval" in ij:
        # finterval is the acquisition interval in `tunit` (seconds unless said otherwise)
        unit = str(ij.get("tunit", "sec")).strip().lower()
        interval = _positive(ij["finterval"])
        if interval is None:
            meta["fps_error"] = _bad_fps(path, "ImageJ metadata", "finterval", ij["finterval"], "a frame interval")
        elif unit not in _TIME_UNITS:
            logger.info("%s: ImageJ time unit %r is not known; frame interval ignored", path, unit)
        else:
            fps = 1.0 / (interval * _TIME_UNITS[unit])
    if fps is None and "fps_error" not in meta and "fps" in ij:
        # ImageJ's 'fps' is the animation speed, not always the acquisition rate: last resort
        rate = _positive(ij["fps"])
        if rate is None:
            meta["fps_error"] = _bad_fps(path, "ImageJ metadata", "fps", ij["fps"])
        else:
            logger.info("%s: frame rate taken from ImageJ's animation speed (fps=%s); pass fps= if it differs",
                        path, ij["fps"])
            fps = rate
    if fps is not None:
        meta["fps"] = float(fps)
    unit = str(ij.get("unit", "")).lower()
    if unit in ("micron", "um", "µm", "\\u00b5m", "microns"):
        try:
            xres = series.keyframe.tags["XResolution"].value
        except (KeyError, AttributeError):
            xres = None
        if xres is not None:
            try:
                size = _positive(float(xres[1]) / float(xres[0]))
            except (TypeError, ValueError, IndexError, ZeroDivisionError):
                size = None
            if size is None:
                meta["pixel_size_error"] = _bad_pixel_size(path, "ImageJ metadata", "XResolution", xres)
            else:
                meta["pixel_size"] = size
    if tif.is_ome and tif.ome_metadata:
        pix = _ome_pixels(tif.ome_metadata, index)
        if pix is None:
            logger.debug("could not parse OME metadata of %s", path)
        else:
            value = pix.get("PhysicalSizeX")
            if value is not None and "pixel_size" not in meta:
                unit = pix.get("PhysicalSizeXUnit", "µm")
                size = _positive(value)
                if size is None:
                    meta["pixel_size_error"] = _bad_pixel_size(path, "OME metadata", "PhysicalSizeX", value)
                elif unit not in _LENGTH_UNITS:
                    logger.info("%s: OME PhysicalSizeXUnit %r is not known; pixel size ignored", path, unit)
                else:
                    meta["pixel_size"] = size * _LENGTH_UNITS[unit]
            value = pix.get("TimeIncrement")
            if value is not None and "fps" not in meta:
                unit = pix.get("TimeIncrementUnit", "s")
                interval = _positive(value)
                if interval is None:
                    meta["fps_error"] = _bad_fps(path, "OME metadata", "TimeIncrement", value, "a frame interval")
                elif unit not in _TIME_UNITS:
                    logger.info("%s: OME TimeIncrementUnit %r is not known; frame interval ignored", path, unit)
                else:
                    meta["fps"] = 1.0 / (interval * _TIME_UNITS[unit])
    return meta


# --------------------------------------------------------------------------------------------
# raw binary, npy, HDF5


def _bin_reader(path: str, shape: Sequence[int] | None, dtype: Any) -> tuple[_Reader, dict[str, Any]]:
    meta: dict[str, Any] = {}
    st = os.stat(path)
    ops_path = os.path.join(os.path.dirname(os.path.abspath(path)), "ops.npy")
    if shape is None:
        if not os.path.exists(ops_path):
            raise ValueError(
                f"shape is required to open the raw binary {path!r}: pass shape=(Ly, Lx) "
                f"(or put suite2p's ops.npy beside it)"
            )
        ops = np.load(ops_path, allow_pickle=True).item()
        shape = (int(ops["Ly"]), int(ops["Lx"]))
        if ops.get("fs") is not None:
            rate = _positive(ops["fs"])
            if rate is None:
                meta["fps_error"] = _bad_fps(ops_path, "suite2p ops dict", "fs", ops["fs"])
            else:
                meta["fps"] = rate
    if len(shape) != 2 or any(int(n) < 1 for n in shape):
        raise ValueError(f"shape must be the frame shape (Ly, Lx) of positive ints, got {tuple(shape)!r}")
    dtype = np.dtype(dtype if dtype is not None else np.int16)
    frame_bytes = int(shape[0]) * int(shape[1]) * dtype.itemsize
    size = int(st.st_size)
    if size % frame_bytes:
        raise ValueError(
            f"shape {tuple(shape)} with dtype {dtype} does not divide the size of {path!r} "
            f"({size} bytes is not a whole number of {frame_bytes}-byte frames)"
        )
    n = size // frame_bytes
    if n == 0:
        raise ValueError(f"path {path!r} holds no frames")
    return _RawReader(path, dtype, 0, (n, int(shape[0]), int(shape[1])), (0, 1, 2), stat=st), meta


def _npy_reader(path: str) -> tuple[_Reader, tuple[str, ...]]:
    st = os.stat(path)
    try:
        # only the header is parsed; the map is dropped at once (tasks read the bytes themselves)
        mm = np.load(path, mmap_mode="r", allow_pickle=False)
    except ValueError as exc:
        message = str(exc)
        if "object" in message or "pickle" in message:
            raise TypeError(f"path {path!r} holds Python objects, not frames") from exc
        if "larger than" in message or "mmap length" in message or "cannot" in message:
            raise ValueError(f"path {path!r} is truncated or not a valid .npy file: {exc}") from exc
        raise ValueError(f"path {path!r} is not a valid .npy file: {exc}") from exc
    shape, dtype, offset = mm.shape, mm.dtype, mm.offset
    fortran = not mm.flags.c_contiguous and mm.flags.f_contiguous and mm.ndim > 1
    del mm
    if dtype.hasobject:
        raise TypeError(f"path {path!r} holds Python objects, not frames")
    ndim = len(shape)
    from ._video import default_dims

    dims = default_dims(ndim)
    file_shape = tuple(shape)
    perm = tuple(range(ndim))
    if fortran:
        # Fortran order is C order of the reversed shape
        file_shape = file_shape[::-1]
        perm = tuple(range(ndim))[::-1]
    expected = offset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if st.st_size < expected:
        raise ValueError(f"path {path!r} is truncated: {st.st_size} bytes, the header promises {expected}")
    return _RawReader(path, dtype, offset, file_shape, perm, stat=st), dims


def _h5_reader(text: str) -> tuple[_Reader, dict[str, Any], tuple | None]:
    try:
        import h5py
    except ImportError as exc:
        raise ImportError("reading HDF5 needs h5py: pip install 'fluoxr[h5]'") from exc
    path, dset = _split_h5(text)
    st = os.stat(path)
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"path {path!r} is not a readable HDF5 file: {exc}") from exc
    with f:
        if dset is None:
            found = []
            f.visititems(lambda n, o: found.append(n) if isinstance(o, h5py.Dataset) and o.ndim >= 3 else None)
            if len(found) != 1:
                raise ValueError(
                    f"path {path!r} holds {len(found)} datasets with >= 3 dims ({found[:10]}); "
                    f"name one as '{path}::/dataset'"
                )
            dset = found[0]
        if dset not in f or not isinstance(f[dset], h5py.Dataset):
            raise ValueError(f"path: {path!r} has no dataset {dset!r}")
        d = f[dset]
        meta: dict[str, Any] = {}
        if "fps" in d.attrs:
            rate = _positive(d.attrs["fps"])
            if rate is None:
                meta["fps_error"] = _bad_fps(path, f"HDF5 dataset {dset!r}", "fps", d.attrs["fps"])
            else:
                meta["fps"] = rate
        return _H5Reader(path, dset, d.shape, d.dtype, stat=st), meta, d.chunks


# --------------------------------------------------------------------------------------------
# zarr


def _consolidated(path: str) -> bool:
    """Whether a zarr store has consolidated metadata (v2 ``.zmetadata`` or v3 inline)."""
    if os.path.exists(os.path.join(path, ".zmetadata")):
        return True
    try:
        with open(os.path.join(path, "zarr.json")) as fh:
            return bool(json.load(fh).get("consolidated_metadata"))
    except (OSError, ValueError):
        return False


def _open_zarr_any(path: str, chunks: ChunksLike) -> xr.DataArray:
    import zarr

    check_complete(path)

    try:
        node = zarr.open(store=path, mode="r")
    except Exception as exc:
        raise ValueError(f"path {path!r} is not a readable zarr store: {exc}") from exc
    if isinstance(node, zarr.Array):
        base = node.chunks
        dims_ = None
        from ._video import default_dims

        dims_ = default_dims(node.ndim)
        dchunks = normalize_chunks_arg(chunks, dims_, node.shape, node.dtype.itemsize, base=base)
        data = da.from_zarr(node, chunks=dchunks)
        attrs = dict(node.attrs)
        return xr.DataArray(data, dims=dims_, attrs={k: attrs[k] for k in ("fps", "pixel_size") if k in attrs})
    ds = xr.open_zarr(path, chunks=None, consolidated=_consolidated(path))
    name = ds.attrs.get("fluoxr_dataarray")
    if name is None:
        if len(ds.data_vars) != 1:
            raise ValueError(
                f"path {path!r} holds several variables {list(ds.data_vars)}; use fluoxr.open_result(path) "
                "and pick one"
            )
        name = next(iter(ds.data_vars))
    var = ds[name]
    enc_chunks = var.encoding.get("chunks") or var.encoding.get("preferred_chunks")
    base = tuple(enc_chunks) if isinstance(enc_chunks, (tuple, list)) else None
    dchunks = normalize_chunks_arg(chunks, var.dims, var.shape, var.dtype.itemsize, base=base)
    with warnings.catch_warnings():
        # small coordinates stored as one chunk are split by the data's chunks; harmless
        warnings.filterwarnings("ignore", message=".*separate the stored chunks", category=UserWarning)
        ds = xr.open_zarr(path, chunks=dict(zip(var.dims, dchunks)), consolidated=_consolidated(path))
    out = ds[name]
    out.attrs = {k: v for k, v in _public_attrs(ds.attrs).items() if k != "fluoxr_dataarray"} | dict(out.attrs)
    return out


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
        ``data.bin``, a ``.npy`` file or an HDF5 dataset ``"file.h5::/path"``.
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
        from .device import to_device

        return to_device(open_video(path, fps=fps, chunks=chunks, pixel_size=pixel_size, shape=shape, dtype=dtype,
                                    series=series), "cuda")
    fps = check_fps(fps)
    if pixel_size is not None:
        pixel_size = check_number(pixel_size, "pixel_size", gt=0)
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
        else:
            r, m, h5chunks = _h5_reader(p)
            from ._video import default_dims

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


# --------------------------------------------------------------------------------------------
# saving: chunk by chunk, resumable, never into an input


# The store says itself whether it is complete: its root attribute _WRITE_ATTR holds the
# fingerprint of what it holds and "complete", set true (by an atomic rename of zarr.json) only
# after the last chunk. Progress markers live beside it in PATH.partial, and PATH.lock keeps a
# second writer out. A store written by another tool has no such attribute and counts as complete.
_WRITE_ATTR = "fluoxr_write"
_INTERNAL_ATTRS = (_WRITE_ATTR,)
_STORE_FILES = ("zarr.json", ".zgroup", ".zarray", ".zattrs", ".zmetadata")
# zarr-python's temporary files (name.<32 hex>.partial), left inside a store by a kill mid-write
_ZARR_TMP = re.compile(r".*\.[0-9a-f]{32}\.partial$")


class IncompleteStoreError(ValueError):
    """A zarr store whose write was interrupted: resume it before reading it."""


def _public_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in attrs.items() if k not in _INTERNAL_ATTRS}


def _root_metadata(path: str) -> dict[str, Any] | None:
    """The parsed root ``zarr.json`` of a v3 store (None if absent or unreadable)."""
    try:
        with open(os.path.join(path, "zarr.json")) as fh:
            return json.load(fh)
    except (OSError, ValueError):
        return None


def _store_state(path: str) -> str | None:
    """None (nothing there), "empty" (an empty folder), "complete" or "incomplete" (a fluoxr store),
    "foreign" (a zarr store without fluoxr's write record), "broken" (zarr.json unreadable) or "other"."""
    if not os.path.lexists(path):
        return None
    if not os.path.isdir(path) or os.path.islink(path):
        return "other"
    if not os.listdir(path):
        return "empty"
    if os.path.exists(os.path.join(path, "zarr.json")):
        meta = _root_metadata(path)
        if meta is None:
            return "broken"
        record = (meta.get("attributes") or {}).get(_WRITE_ATTR)
        if isinstance(record, dict):
            return "complete" if record.get("complete") is True else "incomplete"
        return "foreign"
    if any(os.path.exists(os.path.join(path, m)) for m in _STORE_FILES):
        return "foreign"
    return "other"


def _write_record(path: str) -> dict[str, Any]:
    meta = _root_metadata(path) or {}
    record = (meta.get("attributes") or {}).get(_WRITE_ATTR)
    return record if isinstance(record, dict) else {}


def check_complete(path: PathLike) -> None:
    """Raise :class:`IncompleteStoreError` if ``path`` is a store whose write did not finish.

    A store fluoxr is writing is marked complete only after its last chunk, so a
    store that was interrupted (or copied or moved before it finished) is
    refused instead of read with its unwritten chunks as zeros.
    """
    text = os.path.abspath(os.fspath(path))
    state = _store_state(text)
    legacy = state == "foreign" and os.path.exists(text + _PARTIAL)  # written by fluoxr 0.1
    if state in ("incomplete", "broken") or legacy:
        raise IncompleteStoreError(
            f"path {os.fspath(path)!r} is an incomplete store: its write was interrupted. Finish it by running the "
            "same computation again with fluoxr.save(..., resume=True) (or the same command with --resume), "
            "or write it again with overwrite=True (--overwrite)"
        )


def _paths_of(value: Any, depth: int = 0) -> set[str]:
    """Files behind an array source (kept for callers of fluoxr 0.1; see fluoxr._outputs)."""
    from ._outputs import _sources_of

    return _sources_of(value, depth)


def _graph_sources(obj: xr.DataArray | xr.Dataset) -> set[str]:
    """Absolute paths of every file the object's graph reads, plus its ``source`` attributes."""
    from ._outputs import attr_sources, graph_inputs

    return graph_inputs(obj) | attr_sources(obj)


def _json_attrs(attrs: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Attributes that zarr can store as JSON (None dropped, NumPy scalars and arrays converted)."""
    out = {}
    for k, v in attrs.items():
        if v is None or k in _INTERNAL_ATTRS:
            continue
        if isinstance(v, np.generic):
            v = v.item()
        elif isinstance(v, np.ndarray):
            v = v.tolist()
        elif isinstance(v, tuple):
            v = list(v)
        try:
            json.dumps(v)
        except TypeError as exc:
            raise TypeError(f"obj: attribute {k!r} of {where} cannot be stored ({type(v).__name__})") from exc
        out[str(k)] = v
    return out


def _check_name(name: Any) -> None:
    """Refuse a variable or coordinate name that is not a valid zarr node name."""
    text = str(name)
    if (not text or "/" in text or "\\" in text or set(text) == {"."} or text.startswith("__")
            or text in _STORE_FILES or text != text.strip()):
        raise ValueError(
            f"obj: the variable name {text!r} cannot be stored in zarr (no '/', '\\\\', names of only dots, "
            f"leading '__', surrounding spaces or zarr's own file names); rename it first, "
            f"e.g. result.rename({{{text!r}: 'dff'}})"
        )


def _uniform_chunks(arr: da.Array) -> da.Array:
    """Rechunk to the regular chunking zarr needs (all equal but the last), if not already regular."""
    target = []
    regular = True
    for c in arr.chunks:
        size = c[0] if c else 1
        if any(n != size for n in c[:-1]) or (c and c[-1] > size):
            regular = False
            size = max(c)
        target.append(size)
    return arr if regular else arr.rechunk(tuple(target))


def _prepare_dataset(obj: xr.DataArray | xr.Dataset) -> xr.Dataset:
    if isinstance(obj, xr.DataArray):
        name = obj.name if obj.name is not None else "data"
        _check_name(name)
        ds = obj.to_dataset(name=str(name))
        ds.attrs = dict(obj.attrs)
        ds[str(name)].attrs = {}
        ds.attrs["fluoxr_dataarray"] = str(name)
    elif isinstance(obj, xr.Dataset):
        ds = obj.copy()
    else:
        raise TypeError(f"obj must be an xarray DataArray or Dataset, got {type(obj).__name__}")
    ds.attrs = _json_attrs(ds.attrs, "the result")
    for name, var in ds.variables.items():
        _check_name(name)
        var.attrs = _json_attrs(var.attrs, repr(name))
        var.encoding = {}
        if not isinstance(var.data, (np.ndarray, da.Array)) and hasattr(var.data, "get"):
            var.data = var.data.get()  # an in-memory CuPy result -> host (dask blocks are moved as written)
        if isinstance(var.data, da.Array) and not _unknown_length(var.data):
            var.data = _uniform_chunks(var.data)
            var.encoding["chunks"] = tuple(c[0] for c in var.data.chunks)
        if var.dtype == object:
            raise TypeError(f"obj: variable {name!r} has dtype object, which zarr cannot store")
        if var.dtype.kind == "U" and isinstance(var.data, np.ndarray):
            # fixed-width unicode has no zarr v3 specification (other readers may not open it);
            # NumPy's variable-width strings do
            var.data = var.data.astype(np.dtypes.StringDType())
    return ds


def _unknown_length(arr: da.Array) -> bool:
    return any(math.isnan(c) for chunks in arr.chunks for c in chunks)


def _ragged_spec(ds: xr.Dataset) -> dict[str, Any] | None:
    """Variables of unknown length along their first dim (a lazily computed table): one shared dim and blocks."""
    names = [str(n) for n, v in ds.variables.items() if isinstance(v.data, da.Array) and _unknown_length(v.data)]
    if not names:
        return None
    first = {ds[n].dims[0] for n in names}
    nblocks = {ds[n].data.numblocks[0] for n in names}
    bad = [n for n in names if any(math.isnan(c) for chunks in ds[n].data.chunks[1:] for c in chunks)
           or any(len(c) != 1 for c in ds[n].data.chunks[1:])]
    if len(first) != 1 or len(nblocks) != 1 or bad:
        raise ValueError(
            f"obj: variables of unknown length {names} must share their first dim and its blocks, with every "
            f"other dim known and in one chunk (a table, like fluoxr.oscillations.oscillation_coordinates)"
        )
    dim = str(next(iter(first)))
    clash = [str(n) for n, v in ds.variables.items() if dim in v.dims and str(n) not in names]
    if clash:
        raise ValueError(f"obj: variables {clash} share the dim {dim!r} of unknown length; compute them first")
    return {"dim": dim, "nblocks": int(next(iter(nblocks))),
            "variables": {n: {"dims": [str(d) for d in ds[n].dims], "dtype": str(ds[n].dtype)} for n in names}}


def _plan(ds: xr.Dataset) -> dict[str, Any]:
    ragged = _ragged_spec(ds)
    skip = set(ragged["variables"]) if ragged else set()
    plan = {
        "format": "fluoxr-save-2",
        "variables": {
            str(n): {"shape": list(v.shape), "dtype": str(v.dtype),
                     "chunks": [list(c) for c in v.data.chunks]}
            for n, v in ds.variables.items() if isinstance(v.data, da.Array) and str(n) not in skip
        },
    }
    if ragged:
        plan["ragged"] = ragged
    return json.loads(json.dumps(plan))


# A table of unknown length is written in two steps: every block to its own
# .npy file in PATH.partial (marked when complete, so a resumed write skips it),
# then, once all lengths are known, the blocks are copied in order into zarr
# arrays. Memory: one block at a time.
_RAGGED_ROWS_PER_CHUNK = 1 << 20


def _touch_atomically(marker: str) -> None:
    with open(marker + ".tmp", "wb"):
        pass
    os.replace(marker + ".tmp", marker)


def _write_ragged_block(columns: Sequence[np.ndarray], names: Sequence[str], folder: str, index: int,
                        marker: str) -> int:
    lengths = {len(c) for c in columns}
    if len(lengths) != 1:
        raise ValueError(f"obj: the variables {list(names)} of block {index} have different lengths {sorted(lengths)}")
    for name, col in zip(names, columns):
        if hasattr(col, "get") and not isinstance(col, np.ndarray):
            col = col.get()  # CuPy -> host
        target = os.path.join(folder, f"{index}.{name}.npy")
        with open(target + ".tmp", "wb") as fh:
            np.save(fh, np.asarray(col))
        os.replace(target + ".tmp", target)
    _touch_atomically(marker)
    return lengths.pop()


def _concat_ragged(results: Sequence[int], path: str, spec: Mapping[str, Any],
                   attrs: Mapping[str, Mapping[str, Any]]) -> str:
    import zarr

    folder = os.path.join(path + _PARTIAL, "ragged")
    group = zarr.open_group(path, mode="r+")
    group_attrs = dict(group.attrs)
    data = {}
    for name, var in spec["variables"].items():
        if name in group:
            del group[name]  # a previous attempt stopped half-way
        parts = [np.load(os.path.join(folder, f"{i}.{name}.npy"), mmap_mode="r") for i in range(spec["nblocks"])]
        arr = da.concatenate([da.from_array(p, chunks=-1) for p in parts], axis=0).astype(var["dtype"])
        rows = max(1, min(_RAGGED_ROWS_PER_CHUNK, arr.shape[0]))
        arr = arr.rechunk((rows,) + arr.shape[1:])
        data[name] = xr.Variable(var["dims"], arr, dict(attrs.get(name, {})), encoding={"chunks": arr.chunksize})
    # copying memory-mapped blocks is sequential I/O; keep it in this task
    xr.Dataset(data, attrs=group_attrs).to_zarr(path, mode="a", consolidated=False, zarr_format=3,
                                                compute=False).compute(scheduler="synchronous")
    return path


def _block_key(index: Sequence[int]) -> str:
    return ".".join(str(i) for i in index) or "0"


def _write_block(block: np.ndarray, store: str, var: str, region: tuple[slice, ...], marker: str) -> int:
    import zarr

    arr = zarr.open_array(store=store, path=var, mode="r+")
    if hasattr(block, "get") and not isinstance(block, np.ndarray):
        block = block.get()  # CuPy -> host
    arr[region] = np.asarray(block)
    # the marker is written only after the chunk: a chunk without one is rewritten on resume
    _touch_atomically(marker)
    return int(np.prod(block.shape))


def _count(parts: Sequence[int]) -> int:
    return int(sum(parts))


def _gather_tree(tasks: list, split_every: int = 8) -> list:
    """Join many write tasks through a tree of small tasks, not one task that waits for all of them.

    With a single final task depending on every write, dask's ordering lets
    the threaded scheduler read and compute far ahead of the writes behind
    map_overlap halos, so memory grows with the number of chunks; a tree
    (like a tree reduction) keeps it flat.
    """
    while len(tasks) > split_every:
        tasks = [dask.delayed(_count, pure=False)(tasks[i : i + split_every])
                 for i in range(0, len(tasks), split_every)]
    return tasks


def _mark_complete(path: str) -> None:
    """Set the store's write record to complete by an atomic rename of its root ``zarr.json``."""
    from ._outputs import fsync_dir

    meta = _root_metadata(path)
    if meta is None:
        raise ValueError(f"path {path!r}: the store's zarr.json cannot be read; write it again with overwrite=True")
    record = dict((meta.get("attributes") or {}).get(_WRITE_ATTR) or {})
    record["complete"] = True
    meta.setdefault("attributes", {})[_WRITE_ATTR] = record
    target = os.path.join(path, "zarr.json")
    with open(target + ".tmp", "w") as fh:
        json.dump(meta, fh, indent=2)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(target + ".tmp", target)
    fsync_dir(path)


def _remove_zarr_leftovers(path: str) -> None:
    """Delete temporary files a killed writer left inside the store (zarr's and fluoxr's own)."""
    for root, _, names in os.walk(path):
        for n in names:
            if _ZARR_TMP.match(n) or n == "zarr.json.tmp":
                with contextlib.suppress(FileNotFoundError):
                    os.remove(os.path.join(root, n))


def _finish(results: Sequence[int], path: str, lock: str, owner: str) -> str:
    from ._outputs import release_lock

    _remove_zarr_leftovers(path)
    _mark_complete(path)  # atomic: the store counts as complete from here on
    _discard([path + _PARTIAL], path + _PARTIAL + ".done")
    release_lock(lock, owner)
    return path


def _clear_leftovers(path: str, *, progress: bool) -> None:
    """Remove the trash of a finished write, and with ``progress`` the progress folder too."""
    trash = path + _PARTIAL + ".done"
    _discard([path + _PARTIAL] if progress else [], trash)


def _refuse_different(path: str, shown: str, old: Mapping[str, Any], new: Mapping[str, Any], what: str) -> None:
    from ._outputs import describe_fingerprint_change

    reasons = describe_fingerprint_change(old, new)
    if reasons:
        raise ValueError(
            f"path {shown!r} holds {what} of a different computation, so resume=True cannot continue it: "
            + "; ".join(reasons)
            + ". To start over, pass overwrite=True (on the command line --overwrite) or choose another path"
        )


def save(
    obj: xr.DataArray | xr.Dataset,
    path: PathLike,
    *,
    overwrite: bool = False,
    resume: bool = False,
    compute: bool = True,
) -> str | Any:
    """Write a fluoxr result to zarr chunk by chunk, with bounded memory, never losing data.

    What is promised:

    * Inputs are never written: an output that is, contains, or lies inside a
      file the result reads (found from the readers in its graph, symlinks and
      hard links resolved) is refused before anything is touched, and so are an
      empty path, ``"."`` and the working directory.
    * One writer at a time: a lock file ``PATH.lock`` is taken before the
      store is touched; a second writer fails at once naming the first. The
      lock is released when the write ends or the process exits, and taken over
      when the process that held it is gone.
    * The store records a fingerprint of what it holds (the result's dask
      token and the path, size and modification time of every input file) and
      is marked complete, atomically, only after its last chunk.
      :func:`open_result` and :func:`open_video` refuse an incomplete store,
      wherever it was copied or moved.
    * ``resume=True`` continues only the same computation on the same inputs
      (anything else is a ``ValueError`` saying what differs); chunks already
      written, each marked only after it is fully written (in the sibling
      ``PATH.partial`` folder), are not recomputed.

    Parameters
    ----------
    obj : xarray.DataArray or xarray.Dataset
        Lazy or in-memory result. A DataArray is reopened as a DataArray by
        :func:`open_result` and :func:`open_video`. Variables of unknown
        length along their first dim (NaN chunks: a lazily computed table such
        as :func:`fluoxr.oscillations.oscillation_coordinates`) are written
        block by block and reopen with their length known. Other objects with
        a ``to_xarray()`` method are converted with it first. Variable names
        must be valid zarr names (no ``/``; not ``..`` or ``zarr.json``).
    path : path
        Target zarr store (a folder). Relative paths are resolved now, against
        the current working directory.
    overwrite : bool
        Replace an existing zarr store at ``path``. A path that is not a zarr
        store (or an empty folder) is never deleted.
    resume : bool
        Complete an interrupted write of the same result at ``path``; chunks
        already written are not recomputed. A completed store of the same
        result is left as is.
    compute : bool
        If False, write the metadata now and return a ``dask.delayed`` object
        that writes the data when computed (to run with a progress bar or on a
        cluster). The lock is held until that object has been computed (or
        this process exits).

    Returns
    -------
    str or dask.delayed.Delayed
        The path, or the delayed write when ``compute=False``.

    Raises
    ------
    ValueError
        If ``path`` is refused (see above), exists (and neither ``overwrite``
        nor ``resume`` is set), is being written by another process, or holds
        a write of a different computation and ``resume`` is set.

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> v = fluoxr.as_video(np.arange(24, dtype=np.uint16).reshape(6, 2, 2), fps=2.0)
    >>> fluoxr.save(v, "/tmp/doc_video.zarr", overwrite=True)
    '/tmp/doc_video.zarr'
    >>> fluoxr.open_video("/tmp/doc_video.zarr").attrs["fps"]
    2.0
    """
    from ._outputs import (LOCK_SUFFIX, OutputLock, attr_sources, check_output_path, fingerprint_inputs,
                           graph_inputs)

    if not isinstance(obj, (xr.DataArray, xr.Dataset)) and callable(getattr(obj, "to_xarray", None)):
        obj = obj.to_xarray()  # a lazy table (fluoxr.LazyTable) or a DataFrame
    if not isinstance(obj, (xr.DataArray, xr.Dataset)):
        raise TypeError(f"obj must be an xarray DataArray or Dataset, got {type(obj).__name__}")
    if overwrite and resume:
        raise ValueError("overwrite and resume exclude each other: resume continues a write, overwrite starts over")
    inputs = graph_inputs(obj)
    apath = check_output_path(path, inputs | attr_sources(obj), name="path",
                              siblings=(_PARTIAL, _PARTIAL + ".done", LOCK_SUFFIX))
    shown = os.fspath(path).rstrip("/\\") or os.fspath(path)

    ds = _prepare_dataset(obj)
    plan = _plan(ds)
    fingerprint = {"token": dask.base.tokenize(ds), "inputs": fingerprint_inputs(inputs), "plan": plan}

    partial = apath + _PARTIAL
    plan_file = os.path.join(partial, "plan.json")
    meta_done = os.path.join(partial, "metadata.done")
    lock = OutputLock(apath).acquire()
    try:
        job = _start_write(ds, apath, shown, fingerprint, lock, overwrite=overwrite, resume=resume,
                           partial=partial, plan_file=plan_file, meta_done=meta_done)
    except BaseException:
        lock.release()
        raise
    if job is None:  # resume of a complete store: nothing to write
        lock.release()
        return shown if compute else dask.delayed(lambda: shown)()
    if not compute:
        return job
    try:
        job.compute()
    finally:
        lock.release()  # already released by the last task when the write completed
    return shown


def _start_write(ds: xr.Dataset, path: str, shown: str, fingerprint: dict[str, Any], lock: Any, *,
                 overwrite: bool, resume: bool, partial: str, plan_file: str, meta_done: str) -> Any:
    """Under the lock: decide what to do with what is at ``path``, write the metadata, return the delayed write."""
    state = _store_state(path)
    has_plan = os.path.exists(plan_file)
    resuming = False
    if resume:
        if state == "complete":
            _refuse_different(path, shown, _write_record(path), fingerprint, "a complete result")
            _clear_leftovers(path, progress=True)
            logger.info("%s is already complete; nothing to resume", shown)
            return None
        if has_plan:
            try:
                with open(plan_file) as fh:
                    recorded = json.load(fh)
            except (OSError, ValueError):
                recorded = {}
            if not (isinstance(recorded, dict) and "token" in recorded):
                raise ValueError(f"path {shown!r} holds an interrupted write that fluoxr cannot identify (written by "
                                 "an older version, or damaged); pass overwrite=True to start again")
            _refuse_different(path, shown, recorded, fingerprint, "an interrupted write")
            if state in ("other", "foreign"):
                raise ValueError(f"path {shown!r} was replaced by something fluoxr did not write since the interrupted "
                                 "write; move it away or pass overwrite=True")
            resuming = True
        elif state == "incomplete":
            # the store was moved or copied without its progress folder: same computation, written again
            _refuse_different(path, shown, _write_record(path), fingerprint, "an interrupted write")
            _remove_store(path, partial)
        elif state in ("other", "foreign"):
            raise ValueError(f"path {shown!r} exists and is not an interrupted fluoxr write; "
                             "pass overwrite=True to replace it, or choose another path")
        else:  # nothing written yet (killed before the plan), an empty folder or unreadable metadata
            _remove_store(path, partial)
    elif overwrite:
        if state == "other":
            raise ValueError(f"path {shown!r} exists and is not a zarr store; fluoxr will not delete it")
        _remove_store(path, partial)
    elif state is not None:
        raise ValueError(f"path {shown!r} already exists; pass overwrite=True to replace it "
                         "(or resume=True to finish an interrupted write)")
    elif os.path.exists(partial):
        raise ValueError(f"path {shown!r} has an interrupted write ({partial} is there); pass resume=True "
                         "to finish it or overwrite=True to start again")
    _clear_leftovers(path, progress=False)

    plan = fingerprint["plan"]
    ragged = plan.get("ragged")
    table = ds[list(ragged["variables"])] if ragged else None
    if ragged:
        ds = ds.drop_vars(list(ragged["variables"]))
    if not resuming:
        _discard([partial], partial + ".done")
        os.makedirs(os.path.join(partial, "done"), exist_ok=True)
        with open(plan_file + ".tmp", "w") as fh:
            json.dump(fingerprint, fh)
        os.replace(plan_file + ".tmp", plan_file)
    if not os.path.exists(meta_done) or _store_state(path) != "incomplete":
        # metadata, coordinates and in-memory variables are written now, dask data below; a run
        # killed before the marker writes them again (no data chunk is written before it)
        for stale in _marker_folders(partial):
            shutil.rmtree(stale, ignore_errors=True)
        with contextlib.suppress(FileNotFoundError):
            os.remove(meta_done)
        ds = ds.copy()
        ds.attrs[_WRITE_ATTR] = {**fingerprint, "complete": False}
        ds.to_zarr(path, mode="w", compute=False, consolidated=False, zarr_format=3)
        _touch_atomically(meta_done)

    tasks = []
    if ragged:
        names = list(ragged["variables"])
        folder = os.path.join(partial, "ragged")
        os.makedirs(folder, exist_ok=True)
        os.makedirs(os.path.join(partial, "done", ragged["dim"]), exist_ok=True)
        # optimize_graph=False keeps the block keys: the columns of a block are computed once
        columns = [table[n].data.to_delayed(optimize_graph=False).reshape(-1) for n in names]
        for i in range(ragged["nblocks"]):
            marker = os.path.join(partial, "done", ragged["dim"], str(i))
            if os.path.exists(marker):
                continue
            tasks.append(dask.delayed(_write_ragged_block, pure=False)(
                [c[i] for c in columns], names, folder, i, marker))
        tasks = [dask.delayed(_concat_ragged, pure=False)(
            _gather_tree(tasks), path, ragged, {n: table[n].attrs for n in names})]
    for name, var in ds.variables.items():
        if not isinstance(var.data, da.Array):
            continue
        name = str(name)
        os.makedirs(os.path.join(partial, "done", name), exist_ok=True)
        blocks = var.data.to_delayed(optimize_graph=True)
        starts = [np.cumsum((0,) + c) for c in var.data.chunks]
        for index in np.ndindex(*blocks.shape):
            marker = os.path.join(partial, "done", name, _block_key(index))
            if os.path.exists(marker):
                continue
            region = tuple(slice(int(s[i]), int(s[i + 1])) for s, i in zip(starts, index))
            tasks.append(dask.delayed(_write_block, pure=False)(blocks[index], path, name, region, marker))
    if resuming:
        logger.info("resuming %s: %d chunk(s) left to write", shown, len(tasks))
    return dask.delayed(_finish, pure=False)(_gather_tree(tasks), path, lock.lock, lock.owner)


def _marker_folders(partial: str) -> list[str]:
    """Chunk-marker folders of a progress folder (cleared when the metadata is written again)."""
    done = os.path.join(partial, "done")
    return [os.path.join(done, n) for n in os.listdir(done)] if os.path.isdir(done) else []


def _discard(paths: Sequence[str], trash: str) -> None:
    """Move ``paths`` into the folder ``trash`` (one atomic rename each), then delete it.

    A kill at any point leaves each path either where it was or in the trash,
    which the next save deletes: never a half-deleted store at ``path``.
    """
    for p in paths:
        if os.path.lexists(p):
            os.makedirs(trash, exist_ok=True)
            os.replace(p, os.path.join(trash, f"{os.path.basename(p)}.{os.getpid()}.{len(os.listdir(trash))}"))
    shutil.rmtree(trash, ignore_errors=True)


def _remove_store(path: str, partial: str) -> None:
    """Delete a store fluoxr was writing (or replaces) and its progress folder."""
    _discard([path, partial], partial + ".done")


def _is_zarr_store(path: str) -> bool:
    return os.path.isdir(path) and any(os.path.exists(os.path.join(path, m)) for m in ("zarr.json", ".zgroup", ".zarray"))


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
