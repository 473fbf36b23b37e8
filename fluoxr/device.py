"""Moving videos and results between the host (NumPy chunks) and the GPU (CuPy chunks).

``to_device(video, "cuda")`` gives a video whose dask chunks are CuPy
arrays; every fluoxr operation with a GPU path then runs on the GPU and
returns CuPy-backed results, and ``to_device(result, "cpu")`` brings them
back (lazily: each chunk is copied when it is computed). Operations without
a GPU path copy the chunks to the host themselves and say so in the log
(``logging`` at INFO level). The README's "GPU" section lists both.
"""

from __future__ import annotations

import logging
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from . import _backend
from ._validate import check_choice

logger = logging.getLogger(__name__)

__all__ = ["to_device", "host"]

_DEVICES = ("cpu", "cuda")


def _target_module(device: str) -> str:
    if device == "cpu":
        return "numpy"
    name = _backend.GPU_KERNELS.xp_name
    if name == "cupy":
        cupy = _backend.import_cupy()  # cupy-only
        try:  # cupy-only
            n = cupy.cuda.runtime.getDeviceCount()  # cupy-only
        except Exception as exc:  # cupy-only: no driver, or no device
            raise RuntimeError(f"device='cuda': CuPy is installed but no CUDA GPU is usable ({exc})") from exc
        if n < 1:  # cupy-only
            raise RuntimeError("device='cuda': CuPy is installed but finds no CUDA GPU")
    return name


def _on(x: Any, name: str) -> bool:
    return _backend.array_module(x).__name__ == name


def _move(data: Any, name: str) -> Any:
    if isinstance(data, da.Array):
        if _on(data, name):
            return data
        meta = np.empty((0,) * data.ndim, data.dtype) if name == "numpy" else \
            _backend.xp_by_name(name).empty((0,) * data.ndim, data.dtype)  # cupy-only
        return data.map_blocks(_backend.to_xp, xp_name=name, dtype=data.dtype, meta=meta,
                               name=f"fluoxr-to-{name}")
    if isinstance(data, np.ndarray) or _backend._is_cupy(data):
        return data if _on(data, name) else _backend.to_xp(data, name)
    raise TypeError(f"obj must hold NumPy, CuPy or dask arrays, got {type(data).__name__}")


def _movable(v: xr.DataArray) -> bool:
    # CuPy holds numbers only: labels (strings, objects) stay on the host
    return np.dtype(v.dtype).kind in "biufc"


def _move_variables(obj: xr.DataArray | xr.Dataset, name: str) -> xr.DataArray | xr.Dataset:
    # index coordinates stay NumPy (xarray keeps them as pandas indexes); other numeric variables move
    indexed = set(obj.indexes)
    moved = {k: c.variable.copy(data=_move(c.data, name)) for k, c in obj.coords.items()
             if k not in indexed and _movable(c)}
    if isinstance(obj, xr.DataArray):
        out = obj.copy(data=_move(obj.data, name)) if _movable(obj) else obj.copy()
    else:
        out = obj.copy()
        for k, v in obj.data_vars.items():
            if _movable(v):
                out[k] = v.variable.copy(data=_move(v.data, name))
    return out.assign_coords(moved) if moved else out


def to_device(obj: Any, device: str = "cuda") -> Any:
    """Move the chunks of a video or a result to the GPU (``"cuda"``) or to the host (``"cpu"``), lazily.

    A dask-backed object stays lazy: each chunk is copied when it is
    computed, so a recording larger than the GPU's memory streams through
    it. In-memory arrays are copied now. Index coordinates (``time``, ``y``,
    ``x``) stay on the host; other coordinates (e.g. ``mean_image``) move.

    Parameters
    ----------
    obj : xarray.DataArray, xarray.Dataset, dask array or array
        A video, or any fluoxr result.
    device : {"cuda", "cpu"}
        ``"cuda"``: CuPy chunks on the current CUDA device (needs the
        ``gpu`` extra: ``pip install "fluoxr[gpu]"``); ``"cpu"``: NumPy.

    Returns
    -------
    Same type as ``obj``.

    Raises
    ------
    ImportError
        ``"cuda"`` without CuPy installed.
    RuntimeError
        ``"cuda"`` with CuPy but no usable GPU.

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> v = fluoxr.as_video(np.zeros((4, 3, 3), np.uint16))
    >>> type(fluoxr.to_device(v, "cpu").data._meta).__name__
    'ndarray'
    """
    check_choice(device, "device", _DEVICES)
    name = _target_module(device)
    if isinstance(obj, (xr.DataArray, xr.Dataset)):
        return _move_variables(obj, name)
    if isinstance(obj, da.Array) or isinstance(obj, np.ndarray) or _backend._is_cupy(obj):
        return _move(obj, name)
    raise TypeError(f"obj must be an xarray.DataArray, an xarray.Dataset or an array, got {type(obj).__name__}")


def host(obj: Any, what: str) -> Any:
    """``obj`` with its chunks on the host: for the operations that run only on the CPU.

    A device-backed ``obj`` is moved (lazily) and the log says which
    operation asked for it; a host-backed one is returned as it is.
    """
    if isinstance(obj, (xr.DataArray, xr.Dataset, da.Array)):
        arrays = [obj] if not isinstance(obj, xr.Dataset) else list(obj.data_vars.values())
        if any(_backend.dispatch_for(a).device for a in arrays):
            logger.info("%s runs on the CPU: the GPU chunks are copied to the host", what)
            return to_device(obj, "cpu")
    return obj
