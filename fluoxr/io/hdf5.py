"""HDF5 datasets (``"file.h5::/path"``), read through h5py by each task."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .readers import _FileReader, _Reader, _bad_fps, _corrupt, _frames_text, _positive

H5_SUFFIXES = (".h5", ".hdf5", ".hdf", ".he5")

def _split_h5(text: str) -> tuple[str, str | None]:
    if "::" in text:
        f, d = text.split("::", 1)
        return f, d or None
    return text, None

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
