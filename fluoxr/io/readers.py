"""Readers: small picklable objects that read whole frames of a file for a range of time indices.

A reader holds a path and the layout of the frames in the file, never an open
file handle: each dask task opens the file itself, so a graph pickles and runs
on process-based workers. Every file reader is fingerprinted (size,
modification time) when opened and checked at every read. One module per
format builds them (:mod:`.tiff`, :mod:`.raw`, :mod:`.hdf5`); zarr stores are
read by zarr itself (:mod:`.zarr`).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

import dask
import dask.array as da
import numpy as np

PathLike = str | os.PathLike

class VideoFileNotFoundError(FileNotFoundError, ValueError):
    """A path given to fluoxr does not exist (both a ``FileNotFoundError`` and a ``ValueError``).

    Examples
    --------
    >>> import fluoxr
    >>> try:
    ...     fluoxr.open_video("/tmp/no_such_recording.tif")
    ... except FileNotFoundError as exc:
    ...     print(type(exc).__name__)
    VideoFileNotFoundError
    """

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
# metadata values read from files (shared by the format readers)

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
