"""Argument checks and helpers shared by the SOFI modules."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from .._validate import check_int, check_number
from .._video import as_video, check_video
from ..device import host
from ..drivers.reduction import check_segment_edges

MAX_ORDER = 20  # beyond this float64 power sums of typical data over/underflow


# --------------------------------------------------------------------------------------------
# argument checks


def _check_orders(orders: Any, name: str = "orders") -> tuple[int, ...]:
    """An int N (orders 1..N) or a sequence of distinct orders, each in 1..MAX_ORDER."""
    if isinstance(orders, (str, bytes)) or orders is None:
        raise TypeError(f"{name} must be an integer or a sequence of integers, got {orders!r}")
    if isinstance(orders, (int, float, np.integer, np.floating)) and not isinstance(orders, (bool, np.bool_)):
        n = check_int(orders, name, min_value=1, max_value=MAX_ORDER)
        return tuple(range(1, n + 1))
    try:
        values = list(orders)
    except TypeError:
        raise TypeError(f"{name} must be an integer or a sequence of integers, got {orders!r}") from None
    if not values:
        raise ValueError(f"{name} must name at least one order, got {orders!r}")
    out = tuple(check_int(v, name, min_value=1, max_value=MAX_ORDER) for v in values)
    if len(set(out)) != len(out):
        raise ValueError(f"{name} must not repeat an order, got {list(out)}")
    return out


def _check_fbc(fbc: Any) -> float:
    return check_number(fbc, "fbc", gt=0, lt=1)


def _check_kernel(smooth_kernel: Any) -> int:
    k = check_int(smooth_kernel, "smooth_kernel", min_value=1)
    if k % 2 == 0:
        raise ValueError(f"smooth_kernel must be odd (a median filter window), got {k}")
    return k


def _as_lazy_video(video: Any, name: str = "video", *, min_frames: int = 1, plain: bool = False,
                   what: str = "", device_ok: bool = False) -> xr.DataArray:
    if not isinstance(video, xr.DataArray) and getattr(video, "ndim", 3) < 3:
        raise ValueError(f"{name} must be a video with dims ('time', 'y', 'x'), got an array of shape "
                         f"{video.shape}; a single image needs a time axis, e.g. image[None]")
    video = check_video(video, name, min_frames=min_frames)
    if not isinstance(video.data, da.Array):
        video = as_video(video)
    if not device_ok:
        # no GPU path: a CuPy-backed video is copied to the host (and the log says so)
        video = host(video, f"fluoxr.sofi.{what or 'this function'}")
    if plain and video.dims != ("time", "y", "x"):
        extra = [d for d in video.dims if d not in ("time", "y", "x")]
        raise ValueError(
            f"{name} has dims {video.dims}, but {what} needs a ('time', 'y', 'x') video: select one "
            f"{extra[0]} first, e.g. {name}.isel({extra[0]}=0)"
        )
    return video


# --------------------------------------------------------------------------------------------
# building results


def _frame_coords(video: xr.DataArray) -> dict[str, Any]:
    """The video's coordinates that do not depend on time."""
    return {k: v.variable for k, v in video.coords.items() if "time" not in v.dims}


def _result_attrs(video: xr.DataArray, **extra: Any) -> dict[str, Any]:
    attrs = {k: video.attrs[k] for k in ("pixel_size", "source") if k in video.attrs}
    attrs["n_frames"] = int(video.sizes["time"])
    attrs.update(extra)
    return attrs



def _check_edges(edges: Any, n_frames: int) -> np.ndarray:
    return check_segment_edges(edges, n_frames, "edges")



def _bleach_args(bleach_correction: Any, fbc: Any, smooth_kernel: Any) -> tuple[bool, float, int]:
    if not isinstance(bleach_correction, (bool, np.bool_)):
        raise TypeError(f"bleach_correction must be True or False, got {bleach_correction!r}")
    return bool(bleach_correction), _check_fbc(fbc), _check_kernel(smooth_kernel)



def _orders_array(rows: da.Array, orders: Sequence[int]) -> da.Array:
    return rows[[o - 1 for o in orders]]


def _orders_dataarray(data: da.Array, mean: da.Array, video: xr.DataArray, orders: Sequence[int], name: str,
                      long_name: str, **attrs: Any) -> xr.DataArray:
    dims = ("order",) + video.dims[1:]
    coords = _frame_coords(video)
    coords["order"] = np.asarray(orders)
    coords["mean_image"] = (video.dims[1:], mean)
    return xr.DataArray(data, dims=dims, coords=coords, name=name,
                        attrs=_result_attrs(video, long_name=long_name, **attrs))


