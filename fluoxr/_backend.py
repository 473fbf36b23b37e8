"""Array backends: NumPy on the CPU, CuPy on the GPU, chosen from the chunk type.

A video whose dask chunks are CuPy arrays (``video.data._meta`` is a
``cupy.ndarray``, dask-image's dispatch rule) runs the GPU path of every
operation that has one; the domain modules ask :func:`is_device_array` while
they build the graph and pick the kernel then. Kernels take their array
module from their input with :func:`array_module`, and the SciPy twins from
:func:`ndimage_module` and :func:`sparse_module` (``scipy.*`` for NumPy,
``cupyx.scipy.*`` for CuPy), so the GPU kernels run unchanged on NumPy.

CuPy and torch are optional (extra ``gpu``); nothing here imports them
unless the GPU is asked for, and then a missing package is an
``ImportError`` that names it and the install command.

Testing without a GPU: inside ``with emulate_device():`` (private, for the
tests) NumPy chunks count as device chunks, so the domain modules build the
GPU graphs and the GPU kernels run with NumPy (and SciPy) standing in for
CuPy (and ``cupyx.scipy``). Only the calls that name CuPy itself are then
left unexecuted; they are marked ``# cupy-only`` in the code.
"""

from __future__ import annotations

import contextlib
import contextvars
import logging
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "GPU_INSTALL",
    "array_module",
    "device_xp_name",
    "emulate_device",
    "import_cupy",
    "import_torch",
    "is_device_array",
    "meta_like",
    "ndimage_module",
    "sparse_module",
    "to_numpy",
    "xp_by_name",
]

GPU_INSTALL = 'pip install "fluoxr[gpu]"'

# tests only: NumPy chunks count as device chunks while graphs are built (see the module docstring)
_EMULATE: contextvars.ContextVar[bool] = contextvars.ContextVar("fluoxr_emulate_device", default=False)


@contextlib.contextmanager
def emulate_device() -> Iterator[None]:
    """Inside the block, NumPy-backed videos take the GPU code paths, with NumPy standing in for CuPy.

    For tests on machines without a GPU: every line of the GPU paths except
    the calls that name CuPy runs, and the results can be compared with the
    CPU paths. Only graph construction reads the flag.
    """
    token = _EMULATE.set(True)
    try:
        yield
    finally:
        _EMULATE.reset(token)


def import_cupy() -> ModuleType:
    """``cupy``, or an ImportError saying how to install it."""
    try:
        import cupy  # cupy-only
    except ImportError as exc:
        raise ImportError(
            f"the GPU backend needs CuPy, which is not installed; install it with {GPU_INSTALL} "
            "(CuPy for CUDA 12 and torch)") from exc
    return cupy


def import_torch() -> ModuleType:
    """``torch``, or an ImportError saying how to install it."""
    try:
        import torch
    except ImportError as exc:
        raise ImportError(
            f"engine='torch' needs torch, which is not installed; install it with {GPU_INSTALL} "
            "(or use engine='cupy')") from exc
    return torch


def _unwrap(x: Any) -> Any:
    """The chunk type behind ``x``: a DataArray's data, a dask array's ``_meta``."""
    if hasattr(x, "variable") and hasattr(x, "dims"):  # xarray.DataArray / Variable
        x = x.data
    if hasattr(x, "dask") and hasattr(x, "_meta"):  # dask.array.Array
        x = x._meta
    return x


def _is_cupy(x: Any) -> bool:
    return type(x).__module__.split(".")[0] in ("cupy", "cupyx")


def is_device_array(x: Any) -> bool:
    """True when ``x`` (an array, a dask array or a DataArray) holds GPU (CuPy) chunks.

    Inside :func:`emulate_device`, NumPy chunks count as device chunks.
    """
    inner = _unwrap(x)
    return _is_cupy(inner) or (_EMULATE.get() and isinstance(inner, np.ndarray))


def array_module(x: Any) -> ModuleType:
    """``numpy`` or ``cupy``: the module of the chunks of ``x`` (never affected by the emulation)."""
    inner = _unwrap(x)
    if _is_cupy(inner):
        return import_cupy()  # cupy-only
    return np


def device_xp_name() -> str:
    """The module that device arrays are made with while a graph is built: "cupy", or "numpy" when emulated."""
    return "numpy" if _EMULATE.get() else "cupy"


def xp_by_name(name: str) -> ModuleType:
    """``numpy`` for "numpy", ``cupy`` for "cupy" (names travel in graphs; modules do not pickle)."""
    if name == "numpy":
        return np
    if name == "cupy":
        return import_cupy()  # cupy-only
    raise ValueError(f"array module must be 'numpy' or 'cupy', got {name!r}")


def ndimage_module(xp: ModuleType) -> ModuleType:
    """``scipy.ndimage`` for NumPy, ``cupyx.scipy.ndimage`` for CuPy."""
    if xp is np:
        import scipy.ndimage

        return scipy.ndimage
    import cupyx.scipy.ndimage  # cupy-only

    return cupyx.scipy.ndimage  # cupy-only


def sparse_module(xp: ModuleType) -> ModuleType:
    """``scipy.sparse`` for NumPy, ``cupyx.scipy.sparse`` for CuPy."""
    if xp is np:
        import scipy.sparse

        return scipy.sparse
    import cupyx.scipy.sparse  # cupy-only

    return cupyx.scipy.sparse  # cupy-only


def to_numpy(x: Any) -> np.ndarray:
    """A NumPy copy of a CuPy array; NumPy arrays (and scalars) pass through."""
    if _is_cupy(x):
        return x.get()  # cupy-only
    return np.asarray(x)


def to_xp(x: Any, xp_name: str) -> Any:
    """``x`` as an array of the module named ``xp_name`` (host to device, or device to host)."""
    if xp_name == "numpy":
        return to_numpy(x)
    return xp_by_name(xp_name).asarray(x)  # cupy-only


def meta_like(x: Any, ndim: int, dtype: Any) -> Any:
    """An empty ``ndim``-D array of ``dtype`` of the same module as the chunks of ``x`` (dask's ``meta``)."""
    inner = _unwrap(x)
    if _is_cupy(inner):
        return import_cupy().empty((0,) * ndim, dtype)  # cupy-only
    return np.empty((0,) * ndim, dtype)
