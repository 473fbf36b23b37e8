"""Uncompressed frames at a byte offset: suite2p ``.bin``, ``.npy`` and contiguous TIFF pages."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._video import default_dims
from .readers import _FileReader, _Reader, _bad_fps, _corrupt, _frames_text, _positive

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
