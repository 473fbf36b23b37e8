"""Array backends: NumPy on the CPU, CuPy on the GPU, chosen from the chunk type.

One dispatch (:func:`dispatch_for`, dask-image's ``Dispatcher`` rule): the
array type of a video's chunks (``video.data._meta``) selects a
:class:`Kernels` set, :data:`CPU_KERNELS` for NumPy chunks or
:data:`GPU_KERNELS` for CuPy chunks, and the domain modules call the
kernel of each purpose from that set while they build the graph
(``K = dispatch_for(data); K.moment_state``). CuPy's entry is registered
lazily, so CuPy is imported only when a CuPy chunk is seen.

A kernel is written once, against the array module of its input
(:func:`array_module`, with the SciPy twins from :func:`ndimage_module`
and :func:`sparse_module`), wherever the CPU can run that code as fast as
a compiled loop; then both sets name the same function. Where the CPU
kernel is a numba loop, the GPU set names its array-module version,
defined beside it in the same ``fluoxr.kernels`` module (suffix ``_xp``).

CuPy and torch are optional (extra ``gpu``); nothing here imports them
unless the GPU is asked for, and then a missing package is an
``ImportError`` that names it and the install command.

Testing without a GPU: inside ``with emulate_device():`` (private, for the
tests) NumPy chunks dispatch to :data:`GPU_KERNELS`, so the domain modules
build the GPU graphs and the GPU kernels run with NumPy (and SciPy)
standing in for CuPy (and ``cupyx.scipy``). Only the calls that name CuPy
itself are then left unexecuted; they are marked ``# cupy-only`` in the code.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib
import logging
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = [
    "CPU_KERNELS",
    "GPU_INSTALL",
    "GPU_KERNELS",
    "Dispatcher",
    "Kernels",
    "array_module",
    "device_xp_name",
    "dispatch_for",
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


class Kernels:
    """The kernels of one backend, by purpose: ``kernels.moment_state`` is its moment-state kernel.

    Each attribute is resolved on first use from ``table`` (purpose to
    ``"module:function"`` in :mod:`fluoxr.kernels`), so naming a set
    imports no kernel module (numba compiles on import) and no CuPy.
    Attributes can be replaced (the tests count calls that way), and a set
    pickles and tokenizes by its name, so it travels in dask graphs.

    Parameters
    ----------
    name : {"cpu", "gpu"}
        The backend.
    table : dict
        Purpose to ``"module:function"``, the module relative to ``fluoxr.kernels``.
    device : bool
        True for the set that runs on device (CuPy) arrays.
    """

    def __init__(self, name: str, table: dict[str, str], *, device: bool) -> None:
        self.name = name
        self.device = device
        self._table = dict(table)

    def __getattr__(self, purpose: str) -> Any:
        # only called for purposes not yet resolved (or replaced): import the kernel's module now
        table = self.__dict__.get("_table", {})
        if purpose not in table:
            raise AttributeError(f"the {self.__dict__.get('name')} kernels have no {purpose!r}")
        module, func = table[purpose].split(":")
        kernel = getattr(importlib.import_module(f"fluoxr.kernels.{module}"), func)
        setattr(self, purpose, kernel)
        return kernel

    @property
    def xp_name(self) -> str:
        """The array module this set's arrays are made with: "numpy", or "cupy" ("numpy" when emulated)."""
        if not self.device or _EMULATE.get():
            return "numpy"
        return "cupy"

    def __reduce__(self) -> tuple:
        return (_kernels_named, (self.name,))

    def __dask_tokenize__(self) -> str:
        return f"fluoxr-kernels-{self.name}"

    def __repr__(self) -> str:
        return f"Kernels({self.name!r})"


def _shared(*purposes: str, module: str) -> dict[str, str]:
    return {p: f"{module}:{p}" for p in purposes}


# one function for both backends (array-module code) unless the CPU's is a numba loop
_BOTH = {
    **_shared("empty_state", "state_to_stats", "cumulants_from_moments", module="moments"),
    **_shared("finterp_operator", module="sofi"),
    **_shared("maximin", "gaussian_reflect", "percentile_rows", module="temporal"),
    **_shared("sparse_weights", module="extract"),
    "weighted_sums": "extract:apply_weights",
    **_shared("estimate_shifts", "block_field", module="motion"),
}

CPU_KERNELS = Kernels("cpu", {
    **_BOTH,
    "interpolate_frames": "sofi:interpolate_real",  # real GEMMs; the GPU's complex products are its fast path
    **_shared("moment_state", "merge_states", "merge_all", "segment_states", module="moments"),
    **_shared("gradient_sign", "vote_and_filter", module="oscillations"),
    **_shared("remap_bilinear", "shift_rigid", module="motion"),
}, device=False)

GPU_KERNELS = Kernels("gpu", {
    **_BOTH,
    "interpolate_frames": "sofi:interpolate_with",
    **{p: f"moments:{p}_xp" for p in ("moment_state", "merge_states", "merge_all", "segment_states")},
    **{p: f"oscillations:{p}_xp" for p in ("gradient_sign", "neighbour_vote", "vote_and_filter")},
    **{p: f"motion:{p}_xp" for p in ("remap_bilinear", "shift_rigid")},
}, device=True)


def _kernels_named(name: str) -> Kernels:
    return {"cpu": CPU_KERNELS, "gpu": GPU_KERNELS}[name]


class Dispatcher:
    """A registry keyed on array type, with lazy registration (dask-image's ``Dispatcher``).

    ``register(cls, value)`` files ``value`` under ``cls``;
    ``register_lazy("cupy", func)`` defers ``func`` (which registers the
    module's types) until a type of the top-level module ``cupy`` is
    dispatched, so the module is never imported before one of its arrays
    is seen. :meth:`dispatch` walks the type's MRO; types nobody
    registered get ``default``.
    """

    def __init__(self, name: str, default: Any = None) -> None:
        self.name = name
        self.default = default
        self._lookup: dict[type, Any] = {}
        self._lazy: dict[str, Callable[[], None]] = {}

    def register(self, cls: type, value: Any) -> Any:
        """File ``value`` under ``cls`` (and its subclasses); returns ``value``."""
        self._lookup[cls] = value
        return value

    def register_lazy(self, toplevel: str, func: Callable[[], None]) -> Callable[[], None]:
        """Run ``func`` (which registers the types of module ``toplevel``) when one of them is first dispatched."""
        self._lazy[toplevel] = func
        return func

    def dispatch(self, cls: type) -> Any:
        """The value filed under ``cls`` or its nearest base, else ``default``."""
        for base in cls.__mro__:
            if base in self._lookup:
                return self._lookup[base]
        toplevel = cls.__module__.split(".")[0]
        register = self._lazy.pop(toplevel, None)
        if register is not None:
            register()
            return self.dispatch(cls)
        return self.default


# everything NumPy can take (lists, scalars, NumPy subclasses) runs on the CPU
_KERNELS_BY_TYPE = Dispatcher("kernels", default=CPU_KERNELS)
_KERNELS_BY_TYPE.register(np.ndarray, CPU_KERNELS)


def _register_cupy() -> None:
    cupy = import_cupy()  # cupy-only
    _KERNELS_BY_TYPE.register(cupy.ndarray, GPU_KERNELS)  # cupy-only


_KERNELS_BY_TYPE.register_lazy("cupy", _register_cupy)


def dispatch_for(x: Any) -> Kernels:
    """The kernels for the chunks of ``x`` (an array, a dask array or a DataArray): the one backend choice.

    :data:`GPU_KERNELS` for CuPy chunks, :data:`CPU_KERNELS` otherwise;
    inside :func:`emulate_device`, NumPy chunks get :data:`GPU_KERNELS`.
    Graph construction calls it; kernels take :func:`array_module` instead.
    """
    inner = _unwrap(x)
    if _EMULATE.get() and isinstance(inner, np.ndarray):
        return GPU_KERNELS
    return _KERNELS_BY_TYPE.dispatch(type(inner))


def is_device_array(x: Any) -> bool:
    """True when ``x`` (an array, a dask array or a DataArray) holds GPU (CuPy) chunks: ``dispatch_for(x).device``."""
    return dispatch_for(x).device


def array_module(x: Any) -> ModuleType:
    """``numpy`` or ``cupy``: the module of the chunks of ``x`` (never affected by the emulation)."""
    inner = _unwrap(x)
    if _is_cupy(inner):
        return import_cupy()  # cupy-only
    return np


def device_xp_name() -> str:
    """The module that device arrays are made with while a graph is built: "cupy", or "numpy" when emulated."""
    return GPU_KERNELS.xp_name


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
