"""SOFI on lazy videos: moments and cumulants of every order from one pass, lags, XC-SOFI, bleaching blocks.

Super-resolution optical fluctuation imaging (SOFI) builds images from the
temporal statistics of each pixel. Here every statistic is a tree reduction
of small mergeable states over time chunks (:mod:`fluoxr.kernels.moments`):
all moment and cumulant orders and the mean image come from one read of the
data, in float64, exact for data with a large offset, in memory that does not
grow with the number of frames. Per-frame and per-image steps (Fourier
interpolation, the temporal noise filter, shrinking-kernel deconvolution,
ldrc) are in :mod:`fluoxr.sofi_image` and re-exported here.

What each pysofi 0.1.1 function is in fluoxr:

=====================================================  ======================================================
pysofi                                                 fluoxr
=====================================================  ======================================================
``average_image``, ``min_image``                       :func:`mean_image`, :func:`min_image`
``calc_moment_im``, ``calc_moments``                   :func:`moments` (float64, not truncated to int64)
``PysofiData.calc_moments_set``                        :func:`moments` (``bleach_correction=True``: block average)
``calc_cumulants_from_moments``, ``cumulants_images``  :func:`cumulants`; kernel ``kernels.moments.cumulants_from_moments``
``calc_moments_with_lag``                              :func:`lag_moments`
``calc_cumulants_from_moments_with_lag``               :func:`lag_cumulants`
``calc_xc_im``                                         :func:`cross_cumulants`; assembled image :func:`xc_image`
``calc_total_signal``                                  :func:`total_signal`
``med_smooth``, ``cut_frames``                         :func:`bleach_blocks` (kernels ``med_smooth``, ``cut_frames``)
``calc_block_moments``, ``moments_all_blocks``         :func:`block_moments` (also gives ``cumulants_all_blocks``)
``block_ave_moments``, ``block_ave_cumulants``         :func:`moments`, :func:`cumulants` with ``bleach_correction=True``
``correct_bleaching``, ``PysofiData.bleach_correct``   :func:`bleach_correct` (a lazy video, nothing written)
``fourier_interp_array``, ``interpolate_image``        :func:`fourier_interpolate` (images or videos, lazy per frame)
``moment_im_with_finterp``                             ``moments(fourier_interpolate(video, f), ...)``
``noise_filter1d``, ``filter1d_same``                  :func:`noise_filter`
``deconvsk``, ``richardson_lucy``, ``psf2otf`` ...     :func:`deconvsk`; kernels in :mod:`fluoxr.kernels.sofi`
``ldrc``                                               :func:`ldrc`
``gauss1d_mask``, ``gauss2d_mask``                     :func:`gauss1d_mask`, :func:`gauss2d_mask`
``PysofiData`` pipeline                                :func:`reconstruct`
=====================================================  ======================================================

pysofi's ``frames=[start, end]`` argument is ``video.isel(time=slice(start, end))``.

Videos with ``channel`` or ``z`` dims: moments, cumulants, lag moments,
cross-cumulants, Fourier interpolation and the noise filter reduce over time
only and keep the other dims. Bleaching correction, block moments,
:func:`xc_image` and :func:`reconstruct` need a plain ``("time", "y", "x")``
video (select one with ``video.isel(channel=0)``): their blocks are cut on the
total signal of a frame, which is ambiguous across channels.

Reads of the data per result: one for moments, cumulants, the mean image and
cross-cumulants; two with ``bleach_correction=True`` (the total signal first,
then the blocks) and for lag moments (the mean first, then the lagged
products); three for :func:`bleach_correct` (total signal, block statistics,
corrected frames). A second read re-reads the input rather than keeping the
first read's chunks in memory.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from functools import partial
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr
from dask.base import tokenize
from dask.graph_manipulation import bind
from dask.highlevelgraph import HighLevelGraph

from . import _backend
from ._validate import check_int, check_number, check_video, check_whole_frames
from ._video import as_video
from .device import host
from .kernels import gpu as kg
from .kernels import moments as km
from .kernels import sofi as ks
from .sofi_image import _check_filter, _check_window_size, deconvsk, fourier_interpolate, gauss1d_mask, gauss2d_mask
from .sofi_image import ldrc, noise_filter

logger = logging.getLogger(__name__)

__all__ = [
    "moments",
    "cumulants",
    "sofi_images",
    "mean_image",
    "min_image",
    "lag_moments",
    "lag_cumulants",
    "cross_cumulants",
    "xc_image",
    "total_signal",
    "bleach_blocks",
    "block_moments",
    "bleach_correct",
    "reconstruct",
    "psf_width",
    # per-image steps, from fluoxr.sofi_image
    "fourier_interpolate",
    "noise_filter",
    "deconvsk",
    "ldrc",
    "gauss1d_mask",
    "gauss2d_mask",
]

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


def _flatten(obj: Any) -> list:
    if isinstance(obj, list):
        return [s for o in obj for s in _flatten(o)]
    return [obj]


# --------------------------------------------------------------------------------------------
# the one-pass moment reduction
#
# The same (chunk, combine, aggregate) steps serve both backends: the states have one layout, and
# `backend` (a name: modules do not pickle) picks the kernels, the numba ones for NumPy chunks or
# their array-module twins (fluoxr.kernels.gpu) for CuPy chunks.


def _backend_of(data: Any) -> str:
    return "gpu" if _backend.is_device_array(data) else "cpu"


def _kernels(backend: str) -> Any:
    return kg if backend == "gpu" else km


def _chunk_moment_state(x: np.ndarray, axis: Any = None, keepdims: Any = None, *, max_order: int,
                        backend: str = "cpu", **kwargs: Any) -> tuple:
    if x.ndim and not any(x.shape):
        # dask infers the chunk step's meta from an all-empty array: a state is no array, so refuse
        # (dask then falls back to the reduction's meta)
        raise ValueError("a moment state is not an array")
    return _kernels(backend).moment_state(x, max_order)


def _combine_moment_state(states: Any, axis: Any = None, keepdims: Any = None, *, backend: str = "cpu",
                          **kwargs: Any) -> tuple:
    return _kernels(backend).merge_all(_flatten(states))


def _aggregate_moment_state(states: Any, axis: Any = None, keepdims: Any = None, *, backend: str = "cpu",
                            **kwargs: Any) -> np.ndarray:
    K = _kernels(backend)
    return K.state_to_stats(K.merge_all(_flatten(states)))


def _moment_stats(data: da.Array, max_order: int) -> da.Array:
    """``(max_order + 1, ...)``: row 0 the mean, row k the central moment of order k; one tree reduction."""
    backend = _backend_of(data)
    return da.reduction(
        data, partial(_chunk_moment_state, max_order=max_order, backend=backend),
        partial(_aggregate_moment_state, backend=backend),
        combine=partial(_combine_moment_state, backend=backend), axis=0, keepdims=True, concatenate=False,
        output_size=max_order + 1, dtype=np.float64, meta=_backend.meta_like(data, data.ndim, np.float64),
        name="fluoxr-sofi-moments",
    )


def _cumulant_rows(moment_rows: da.Array) -> da.Array:
    """Cumulants of orders 1..p from central moments of orders 1..p (axis 0, one chunk)."""
    K = _kernels(_backend_of(moment_rows))
    return moment_rows.map_blocks(K.cumulants_from_moments, dtype=np.float64,
                                  meta=_backend.meta_like(moment_rows, moment_rows.ndim, np.float64))


# --------------------------------------------------------------------------------------------
# segmented reductions: moments of blocks of frames (bleaching correction, windows)


def _settle(state: dict) -> dict:
    """Move complete segments out of ``parts``: to ``done`` (per block) or into running sums (average)."""
    edges = state["edges"]
    K = _kernels(state["backend"])
    for k in sorted(state["parts"]):
        part = state["parts"][k]
        if part[0] != int(edges[k + 1] - edges[k]):
            continue
        del state["parts"][k]
        stats = K.state_to_stats(part)
        if state["mode"] == "blocks":
            state["done"][k] = stats
        else:
            xp = _backend.array_module(stats)
            cum = xp.concatenate([stats[:1], K.cumulants_from_moments(stats[1:])])
            if state["sum_stats"] is None:
                state["sum_stats"], state["sum_cum"] = stats, cum
            else:
                state["sum_stats"] = state["sum_stats"] + stats
                state["sum_cum"] = state["sum_cum"] + cum
            state["count"] += 1
    return state


def _segment_chunk(x: np.ndarray, t: np.ndarray, edges: np.ndarray, *, max_order: int, mode: str,
                   backend: str = "cpu") -> dict:
    t0 = int(t[0]) if t.size else 0
    edges = _backend.to_numpy(edges)
    state = {"mode": mode, "backend": backend, "edges": edges,
             "parts": _kernels(backend).segment_states(x, t0, edges, max_order),
             "done": {}, "sum_stats": None, "sum_cum": None, "count": 0}
    return _settle(state)


def _pass_state(x: Any, axis: Any = None, keepdims: Any = None, **kwargs: Any) -> Any:
    return x


def _segment_combine(states: Any, axis: Any = None, keepdims: Any = None, **kwargs: Any) -> dict:
    states = _flatten(states)
    out = {"mode": states[0]["mode"], "backend": states[0]["backend"], "edges": states[0]["edges"], "parts": {},
           "done": {}, "sum_stats": None, "sum_cum": None, "count": 0}
    K = _kernels(out["backend"])
    for s in states:
        for k, part in s["parts"].items():
            out["parts"][k] = K.merge_states(out["parts"][k], part) if k in out["parts"] else part
        out["done"].update(s["done"])
        if s["sum_stats"] is not None:
            if out["sum_stats"] is None:
                out["sum_stats"], out["sum_cum"] = s["sum_stats"], s["sum_cum"]
            else:
                out["sum_stats"] = out["sum_stats"] + s["sum_stats"]
                out["sum_cum"] = out["sum_cum"] + s["sum_cum"]
        out["count"] += s["count"]
    return _settle(out)


def _segment_aggregate(states: Any, axis: Any = None, keepdims: Any = None, *, n_blocks: int, max_order: int,
                       **kwargs: Any) -> np.ndarray:
    state = _segment_combine(states)
    if state["parts"]:  # pragma: no cover - every frame belongs to exactly one segment
        raise RuntimeError(f"segments {sorted(state['parts'])} are incomplete after the reduction")
    shape = None
    if state["mode"] == "blocks":
        some = next(iter(state["done"].values()), None)
        shape = some.shape[1:] if some is not None else ()
        xp = _backend.array_module(some) if some is not None else np
        out = xp.full((n_blocks, max_order + 1) + shape, np.nan)
        for k, stats in state["done"].items():
            out[k] = stats
        return out.reshape((n_blocks * (max_order + 1),) + shape)
    xp = _backend.array_module(state["sum_stats"])
    return xp.concatenate([state["sum_stats"] / state["count"], state["sum_cum"] / state["count"]])


def _segment_reduce(data: da.Array, edges: da.Array, max_order: int, mode: str) -> da.Array:
    """One pass over ``data`` (time, y, x) grouping frames by ``edges`` (a dask array of block edges).

    For edges computed from the data (bleaching blocks), which are unknown while the graph is built:
    every state of the tree carries every block, so its memory is bounded by the number of blocks
    (``ceil(1 / fbc)``, a few dozen), not by the number of frames. Edges known in advance go to
    :func:`_known_segment_stats` instead, which keeps the blocks apart.

    ``mode="blocks"``: ``(n_blocks * (max_order + 1), y, x)``, the stats of each block (NaN for an empty
    block), in one chunk. ``mode="average"``: ``(2 * (max_order + 1), y, x)``, the average over non-empty
    blocks of the stats, then of ``[mean, cumulants 1..p]`` (running sums: one block's worth of memory).
    """
    n_blocks = edges.shape[0] - 1
    backend = _backend_of(data)
    meta = _backend.meta_like(data, 3, np.float64)
    t = da.arange(data.shape[0], chunks=(data.chunks[0],))
    parts = da.blockwise(
        _segment_chunk, "tyx", data, "tyx", t, "t", edges, "e", concatenate=True, max_order=max_order, mode=mode,
        backend=backend, dtype=np.float64, meta=meta, name="fluoxr-sofi-segments",
    )
    size = n_blocks * (max_order + 1) if mode == "blocks" else 2 * (max_order + 1)
    return da.reduction(
        parts, _pass_state, partial(_segment_aggregate, n_blocks=n_blocks, max_order=max_order),
        combine=_segment_combine, axis=0, keepdims=True, concatenate=False, output_size=size, dtype=np.float64,
        meta=meta, name="fluoxr-sofi-segment-reduce",
    )


# states merged by one task when a segment spans many chunks (a tree, as dask's reductions)
_SEGMENT_SPLIT = 8


def _segment_parts(x: np.ndarray, t0: int, bounds: np.ndarray, first: int, *, max_order: int,
                   backend: str = "cpu") -> dict:
    """States of the parts of chunk ``x`` (frames ``t0 ..``) in segments ``first ..`` (edges ``bounds``)."""
    parts = _kernels(backend).segment_states(x, t0, bounds, max_order)
    return {first + k: state for k, state in parts.items()}


def _merge_segment(items: list, k: int, *, backend: str = "cpu") -> tuple:
    """State of segment ``k`` from chunk parts (dicts by segment) and partial merges (states)."""
    return _kernels(backend).merge_all([item[k] if isinstance(item, dict) else item for item in items])


def _segment_stats_block(items: list, k: int, *, backend: str = "cpu") -> np.ndarray:
    K = _kernels(backend)
    return K.state_to_stats(_merge_segment(items, k, backend=backend))[None]


def _known_segment_stats(data: da.Array, edges: np.ndarray, max_order: int) -> da.Array:
    """``(n_segments, max_order + 1, ...)`` stats of the frames in each segment ``[edges[k], edges[k+1])``.

    Row 0 of a segment is its mean, row ``j`` its central moment of order
    ``j``; NaN for an empty segment. The edges are known while the graph is
    built, so each segment is reduced over only the chunks it intersects and
    the result has one chunk per segment along axis 0 (and the input's
    chunks along the others): no task holds more than one chunk's parts and
    ``_SEGMENT_SPLIT`` states, however many segments there are. Only
    segments that straddle chunk boundaries need a merge. One read of the
    data.
    """
    edges = np.asarray(edges, np.int64)
    backend = _backend_of(data)
    n_seg = len(edges) - 1
    token = tokenize(data.name, edges, max_order)
    pname = f"fluoxr-sofi-segment-parts-{token}"
    mname = f"fluoxr-sofi-segment-merge-{token}"
    name = f"fluoxr-sofi-segment-stats-{token}"
    bounds = np.cumsum((0,) + tuple(data.chunks[0]))
    spatial = list(np.ndindex(*data.numblocks[1:]))
    dsk: dict = {}
    seg_chunks: list[list[int]] = [[] for _ in range(n_seg)]
    parts = partial(_segment_parts, max_order=max_order, backend=backend)
    for i in range(len(data.chunks[0])):
        c0, c1 = int(bounds[i]), int(bounds[i + 1])
        if c0 == c1:
            continue
        # segments k0 .. k1-1 start before the chunk ends; those that end after it starts meet it
        k0 = int(np.searchsorted(edges, c0, side="right")) - 1
        k1 = int(np.searchsorted(edges, c1, side="left"))
        for k in range(k0, k1):
            if max(int(edges[k]), c0) < min(int(edges[k + 1]), c1):
                seg_chunks[k].append(i)
        local = edges[k0 : k1 + 1]
        for s in spatial:
            dsk[(pname, i) + s] = (parts, (data.name, i) + s, c0, local, k0)
    merge = partial(_merge_segment, backend=backend)
    final = partial(_segment_stats_block, backend=backend)
    for k, chunks in enumerate(seg_chunks):
        for s in spatial:
            if not chunks:
                shape = (1, max_order + 1) + tuple(data.chunks[d + 1][j] for d, j in enumerate(s))
                dsk[(name, k, 0) + s] = (np.full, shape, np.nan)
                continue
            items = [(pname, i) + s for i in chunks]
            level = 0
            while len(items) > _SEGMENT_SPLIT:
                groups = [items[g : g + _SEGMENT_SPLIT] for g in range(0, len(items), _SEGMENT_SPLIT)]
                items = []
                for g, group in enumerate(groups):
                    key = (mname, k, level, g) + s
                    dsk[key] = (merge, group, k)
                    items.append(key)
                level += 1
            dsk[(name, k, 0) + s] = (final, items, k)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[data])
    chunks = ((1,) * n_seg, (max_order + 1,)) + tuple(data.chunks[1:])
    return da.Array(graph, name, chunks=chunks, meta=_backend.meta_like(data, data.ndim + 1, np.float64))


def _fbc_edges(video: xr.DataArray, fbc: float, smooth_kernel: int) -> da.Array:
    signal = total_signal(video).data.rechunk(-1)
    if _backend.is_device_array(signal):
        # one number per frame: the blocks are cut on the host
        signal = signal.map_blocks(_backend.to_numpy, dtype=np.float64, meta=np.empty((0,), np.float64))
    n_blocks = math.ceil(1 / fbc)
    return signal.map_blocks(ks.block_bounds, fbc=fbc, smooth_kernel=smooth_kernel, chunks=((n_blocks + 1,),),
                             dtype=np.int64, meta=np.empty((0,), np.int64))


def _check_edges(edges: Any, n_frames: int) -> np.ndarray:
    try:
        arr = np.asarray(edges)
    except Exception:  # pragma: no cover
        raise TypeError(f"edges must be a sequence of frame indices, got {edges!r}") from None
    if arr.ndim != 1 or arr.size < 2 or arr.dtype.kind not in "iuf" or not np.all(arr == np.round(arr)):
        raise ValueError(f"edges must be a 1-D sequence of at least 2 integer frame indices, got {edges!r}")
    arr = arr.astype(np.int64)
    if arr[0] != 0 or arr[-1] != n_frames or np.any(np.diff(arr) < 0):
        raise ValueError(f"edges must rise from 0 to the number of frames ({n_frames}), got {arr.tolist()}")
    return arr


# --------------------------------------------------------------------------------------------
# moments and cumulants


def _sofi_core(video: xr.DataArray, max_order: int, bleach_correction: bool, fbc: float,
               smooth_kernel: int) -> tuple[da.Array, da.Array, da.Array]:
    """(mean, central moments of orders 1..p, cumulants of orders 1..p) as dask arrays."""
    if not bleach_correction:
        stats = _moment_stats(video.data, max_order)
        return stats[0], stats[1:], _cumulant_rows(stats[1:])
    edges = _fbc_edges(video, fbc, smooth_kernel)
    # the blocks read the data again once the edges are known, instead of keeping the first read
    out = _segment_reduce(bind(video.data, edges), edges, max_order, "average")
    p1 = max_order + 1
    return out[0], out[1:p1], out[p1 + 1 :]


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


def _bleach_args(bleach_correction: Any, fbc: Any, smooth_kernel: Any) -> tuple[bool, float, int]:
    if not isinstance(bleach_correction, (bool, np.bool_)):
        raise TypeError(f"bleach_correction must be True or False, got {bleach_correction!r}")
    return bool(bleach_correction), _check_fbc(fbc), _check_kernel(smooth_kernel)


def moments(video: Any, orders: int | Sequence[int] = 6, *, bleach_correction: bool = False, fbc: float = 0.04,
            smooth_kernel: int = 251) -> xr.DataArray:
    """Central moment images ``mean_t((x - mean_t x) ** n)`` of every requested order, from one pass.

    pysofi's ``calc_moments`` / ``PysofiData.calc_moments_set``. All orders
    and the mean image come from one read of the data: each time chunk is
    reduced to a float64 state (mean and central power sums, with the chunk's
    mean subtracted first) and states are merged by Pébay's pairwise update,
    so the result does not depend on the chunking and stays exact for data
    with a large offset.

    Differences from pysofi: the result is float64; pysofi's ``calc_moments``
    truncates every moment to int64 (and overflows at order 6 on bright data).
    Order 1 is 0 by definition, as in pysofi.

    Parameters
    ----------
    video : xarray.DataArray
        Lazy video ``("time", [z], [channel], "y", "x")``; extra dims are kept.
    orders : int or sequence of int
        ``N`` for orders ``1..N``, or the orders wanted (each 1 to 20).
    bleach_correction : bool
        Average the moments of blocks of frames with equal bleaching
        (pysofi ``block_ave_moments``): blocks are cut where the median-smoothed
        total signal (:func:`bleach_blocks`) falls by a fraction ``fbc`` of its
        total decrease; each block's moments use that block's mean, and blocks
        are averaged with equal weight. Reads the data twice. Needs a
        ``("time", "y", "x")`` video.
    fbc : float
        Fraction of the total signal decrease per block, in (0, 1).
    smooth_kernel : int
        Window (frames, odd) of the median filter of the total signal.

    Returns
    -------
    xarray.DataArray
        ``("order", ..., "y", "x")`` float64 with the non-dimension coordinate
        ``mean_image`` (``(..., "y", "x")``; the block-averaged mean image with
        ``bleach_correction``).

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> video = fluoxr.as_video(np.random.default_rng(0).poisson(100, (200, 8, 8)).astype(np.uint16))
    >>> m = fluoxr.moments(video, 4)
    >>> m.dims, m.order.values.tolist()
    (('order', 'y', 'x'), [1, 2, 3, 4])
    >>> bool(abs(float(m.sel(order=2).mean()) / 100 - 1) < 0.1)   # Poisson: variance = mean
    True
    """
    return _moments_or_cumulants(video, orders, bleach_correction, fbc, smooth_kernel, cumulant=False)


def cumulants(video: Any, orders: int | Sequence[int] = 6, *, bleach_correction: bool = False,
              fbc: float = 0.04, smooth_kernel: int = 251) -> xr.DataArray:
    """Cumulant images of every requested order (SOFI), from the same single pass as :func:`moments`.

    pysofi's ``calc_cumulants_from_moments`` / ``PysofiData.cumulants_images``:
    the moment-cumulant recursion ``k_n = m_n - sum_{i<n} C(n-1, i) k_{n-i} m_i``
    on the central moments, so ``k_1 = 0`` (the mean is the
    ``mean_image`` coordinate), ``k_2 = m_2``, ``k_4 = m_4 - 3 m_2^2``.

    Differences from pysofi: computed from float64 moments; pysofi applies the
    recursion to moments truncated to int64, which for order 6 can overflow.

    Parameters
    ----------
    video, orders, bleach_correction, fbc, smooth_kernel
        As :func:`moments`. With ``bleach_correction`` the cumulants of each
        block are averaged (pysofi ``block_ave_cumulants``).

    Returns
    -------
    xarray.DataArray
        ``("order", ..., "y", "x")`` float64, coordinate ``mean_image``.

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> rng = np.random.default_rng(0)
    >>> video = fluoxr.as_video(rng.normal(1000, 5, (500, 4, 4)))
    >>> k = fluoxr.cumulants(video, [2, 4])
    >>> bool(np.all(np.abs(k.sel(order=4)) < 0.5 * k.sel(order=2) ** 2))  # Gaussian noise: small k4
    True
    """
    return _moments_or_cumulants(video, orders, bleach_correction, fbc, smooth_kernel, cumulant=True)


def _moments_or_cumulants(video: Any, orders: int | Sequence[int], bleach_correction: bool, fbc: float,
                          smooth_kernel: int, *, cumulant: bool) -> xr.DataArray:
    """The one-pass result behind :func:`moments` and :func:`cumulants`."""
    orders = _check_orders(orders)
    bleach_correction, fbc, smooth_kernel = _bleach_args(bleach_correction, fbc, smooth_kernel)
    video = _as_lazy_video(video, plain=bleach_correction, what="bleach_correction", device_ok=True)
    mean, rows, cum = _sofi_core(video, max(orders), bleach_correction, fbc, smooth_kernel)
    extra = {"bleach_correction": int(bleach_correction)}
    if bleach_correction:
        extra.update(fbc=fbc, smooth_kernel=smooth_kernel)
    name, long_name = ("cumulants", "cumulant") if cumulant else ("moments", "central moment")
    return _orders_dataarray(_orders_array(cum if cumulant else rows, orders), mean, video, orders, name,
                             long_name, **extra)


def sofi_images(video: Any, orders: int | Sequence[int] = 6, *, bleach_correction: bool = False,
                fbc: float = 0.04, smooth_kernel: int = 251) -> xr.Dataset:
    """Mean image, moments and cumulants of every requested order as one Dataset, from one pass.

    The three share one reduction, so computing the Dataset reads the data
    once (twice with ``bleach_correction``).

    Parameters
    ----------
    video, orders, bleach_correction, fbc, smooth_kernel
        As :func:`moments`.

    Returns
    -------
    xarray.Dataset
        ``mean_image`` ``(..., "y", "x")``, ``moments`` and ``cumulants``
        ``("order", ..., "y", "x")``, all float64.

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> video = fluoxr.as_video(np.random.default_rng(0).poisson(50, (100, 6, 6)).astype(np.uint16))
    >>> ds = fluoxr.sofi_images(video, 3).compute()
    >>> sorted(ds.data_vars), ds.moments.shape
    (['cumulants', 'mean_image', 'moments'], (3, 6, 6))
    """
    orders = _check_orders(orders)
    bleach_correction, fbc, smooth_kernel = _bleach_args(bleach_correction, fbc, smooth_kernel)
    video = _as_lazy_video(video, plain=bleach_correction, what="bleach_correction", device_ok=True)
    mean, rows, cum = _sofi_core(video, max(orders), bleach_correction, fbc, smooth_kernel)
    dims = video.dims[1:]
    coords = _frame_coords(video)
    coords["order"] = np.asarray(orders)
    extra = {"bleach_correction": int(bleach_correction)}
    if bleach_correction:
        extra.update(fbc=fbc, smooth_kernel=smooth_kernel)
    return xr.Dataset(
        {"mean_image": (dims, mean, {"long_name": "mean image"}),
         "moments": (("order",) + dims, _orders_array(rows, orders), {"long_name": "central moment"}),
         "cumulants": (("order",) + dims, _orders_array(cum, orders), {"long_name": "cumulant"})},
        coords=coords, attrs=_result_attrs(video, **extra),
    )


def mean_image(video: Any) -> xr.DataArray:
    """Mean over time in float64 (pysofi ``average_image``).

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> float(fluoxr.sofi.mean_image(np.arange(8, dtype=np.uint16).reshape(2, 2, 2))[0, 0])
    2.0
    """
    video = _as_lazy_video(video, device_ok=True)
    out = video.mean("time", dtype=np.float64)
    out.attrs = _result_attrs(video, long_name="mean image")
    return out.rename("mean_image")


def min_image(video: Any) -> xr.DataArray:
    """Minimum over time, in the video's dtype (pysofi ``min_image``).

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> int(fluoxr.sofi.min_image(np.arange(8, dtype=np.uint16).reshape(2, 2, 2))[1, 1])
    3
    """
    video = _as_lazy_video(video, device_ok=True)
    out = video.min("time")
    out.attrs = _result_attrs(video, long_name="minimum image")
    return out.rename("min")


# --------------------------------------------------------------------------------------------
# time lags


def _check_lags(lags: Any, n_frames: int) -> tuple[int, ...]:
    if isinstance(lags, (str, bytes)) or not hasattr(lags, "__iter__"):
        raise TypeError(f"lags must be a sequence of integer frame lags, got {lags!r}")
    out = tuple(check_int(v, "lags", min_value=0) for v in lags)
    if len(out) < 2:
        raise ValueError(f"lags must hold at least two lags (the first 0), got {list(out)}")
    if len(out) > 12:
        raise ValueError(f"lags must hold at most 12 lags (the number of lag moments grows as 2**len), got {len(out)}")
    if out[0] != 0:
        raise ValueError(f"lags must start with 0 (the reference frame), got {list(out)}")
    if max(out) >= n_frames:
        raise ValueError(f"lags must be shorter than the recording: the largest lag is {max(out)} frames "
                         f"but the video has {n_frames}")
    return out


def _lag_chunk(block: np.ndarray, mean: np.ndarray, *, starts: Sequence[int], lengths: Sequence[int],
               n_starts: int, lags: Sequence[int], subsets: Sequence[tuple], block_id: Any = None) -> np.ndarray:
    i = block_id[0]
    # products starting in this chunk's own frames, and only where every lagged frame exists
    own = max(0, min(lengths[i], n_starts - starts[i]))
    out = km.lag_product_sums(block, mean[0], lags, own, subsets)
    return out[None]


def lag_moments(video: Any, lags: Sequence[int]) -> xr.DataArray:
    """Moments of products of mean-subtracted frames at time lags (pysofi ``calc_moments_with_lag``).

    For each subset ``S`` of the lag series, the image
    ``mean_t prod_{j in S} (x[t + lags[j]] - mean)`` over the starts
    ``t < n_frames - max(lags)``, with the mean of all frames. As pysofi:
    with more than 3 lags every subset of 2 .. ``len(lags) - 2`` lags plus the
    first ``len(lags) - 1`` and all lags; else the prefixes of 2 .. all lags.

    Products of frames in different chunks are exact: each chunk is extended
    by the next ``max(lags)`` frames and owns the products that start in it.
    Reads the data twice (the mean, then the products).

    Parameters
    ----------
    video : xarray.DataArray
        Lazy video; extra dims are kept.
    lags : sequence of int
        Frame lags, the first 0 (at most 12).

    Returns
    -------
    xarray.DataArray
        ``("subset", ..., "y", "x")`` float64; coordinate ``subset`` labels
        each subset by its lag indices (``"0,1,2"``), ``order`` its size.

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> video = fluoxr.as_video(np.random.default_rng(0).normal(size=(50, 3, 3)))
    >>> m = fluoxr.lag_moments(video, [0, 1, 2])
    >>> m.subset.values.tolist(), m.order.values.tolist()
    (['0,1', '0,1,2'], [2, 3])
    """
    video = _as_lazy_video(video, what="lag_moments")
    n = video.sizes["time"]
    lags = _check_lags(lags, n)
    maxlag = max(lags)
    n_starts = n - maxlag
    subsets = km.lag_subsets(len(lags))
    data = video.data
    mean = data.mean(axis=0, dtype=np.float64)
    # the second read depends on the mean, so the first read's chunks need not stay in memory
    data = bind(data, mean)
    if maxlag:
        data = data.rechunk({0: da.overlap.ensure_minimum_chunksize(maxlag, data.chunks[0])})
        ext = da.overlap.overlap(data, depth={i: ((0, maxlag) if i == 0 else 0) for i in range(data.ndim)},
                                 boundary="none")
    else:  # pragma: no cover - lags (0, 0, ...) only
        ext = data
    starts = np.concatenate([[0], np.cumsum(data.chunks[0])[:-1]]).tolist()
    lengths = list(data.chunks[0])
    parts = da.map_blocks(
        _lag_chunk, ext, mean[None], starts=starts, lengths=lengths, n_starts=n_starts, lags=lags,
        subsets=subsets, new_axis=[1], chunks=((1,) * ext.numblocks[0], (len(subsets),)) + ext.chunks[1:],
        dtype=np.float64, meta=np.empty((0,) * (data.ndim + 1), np.float64), name="fluoxr-sofi-lag-products",
    )
    out = parts.sum(axis=0) / n_starts
    coords = _frame_coords(video)
    coords["subset"] = [",".join(map(str, s)) for s in subsets]
    coords["order"] = ("subset", [len(s) for s in subsets])
    return xr.DataArray(out, dims=("subset",) + video.dims[1:], coords=coords, name="lag_moments",
                        attrs=_result_attrs(video, lags=list(lags), long_name="lag moment"))


def _moment_lags(m: xr.DataArray, lags: Any) -> tuple[int, ...]:
    """The lags of lag moments ``m``: from its attrs, else (xarray operations can drop attrs) from ``lags``."""
    have = m.attrs.get("lags")
    if lags is not None:
        if isinstance(lags, (str, bytes)) or not hasattr(lags, "__iter__"):
            raise TypeError(f"lags must be a sequence of integer frame lags, got {lags!r}")
        lags = tuple(check_int(v, "lags", min_value=0) for v in lags)
        if len(lags) < 2 or lags[0] != 0:
            raise ValueError(f"lags must hold at least two lags, the first 0, got {list(lags)}")
    if have is None:
        if lags is None:
            raise ValueError("lags is required: these lag moments have no 'lags' attribute (xarray operations can "
                             "drop attrs); pass the lags given to lag_moments, e.g. lags=[0, 1, 2]")
    else:
        have = tuple(int(v) for v in have)
        if lags is not None and lags != have:
            raise ValueError(f"lags {list(lags)} differ from the lags the moments were computed with {list(have)}")
        lags = have
    subsets = [tuple(int(v) for v in s.split(",")) for s in m.subset.values.tolist()]
    if subsets != km.lag_subsets(len(lags)):
        raise ValueError(f"lags {list(lags)} ({len(lags)} lags) do not match the subsets of the moments "
                         f"{m.subset.values.tolist()}")
    return lags


def lag_cumulants(video_or_moments: Any, lags: Sequence[int] | None = None) -> xr.DataArray:
    """Cumulant images of orders 2 .. ``len(lags)`` with time lags (pysofi ``calc_cumulants_from_moments_with_lag``).

    The joint cumulant of the mean-subtracted frames ``x[t + lags[0]], ..,
    x[t + lags[n-1]]``: the sum over partitions of the first ``n`` lags into
    blocks of at least two of ``(-1)^(b-1) (b-1)! prod m_block`` (singleton
    blocks vanish because every frame has mean zero). pysofi computes the same
    but calls ``np.math.factorial``, which NumPy 2 removed, so it fails there.

    Parameters
    ----------
    video_or_moments : xarray.DataArray
        A video (then ``lags`` is required) or the result of :func:`lag_moments`.
    lags : sequence of int, optional
        As :func:`lag_moments`. With lag moments, optional: taken from their
        ``lags`` attribute; needed when that attribute was lost (xarray
        operations can drop attrs, e.g. arithmetic with
        ``keep_attrs=False``), and must agree with it when both exist.

    Returns
    -------
    xarray.DataArray
        ``("order", ..., "y", "x")`` float64, orders 2 .. ``len(lags)``.

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> video = fluoxr.as_video(np.random.default_rng(0).normal(size=(60, 3, 3)))
    >>> fluoxr.lag_cumulants(video, [0, 1, 2, 3]).order.values.tolist()
    [2, 3, 4]
    """
    if isinstance(video_or_moments, xr.DataArray) and "subset" in video_or_moments.dims:
        m = video_or_moments
        lags = _moment_lags(m, lags)
    else:
        if lags is None:
            raise TypeError("lags is required when video_or_moments is a video")
        m = lag_moments(video_or_moments, lags)
        lags = tuple(m.attrs["lags"])
    subsets = [tuple(int(v) for v in s.split(",")) for s in m.subset.values.tolist()]
    data = m.data if isinstance(m.data, da.Array) else da.asarray(m.data)
    data = data.rechunk({0: -1})
    k = len(lags)
    out = data.map_blocks(km.lag_cumulants_from_moments, subsets=subsets, n_lags=k,
                          chunks=((k - 1,),) + data.chunks[1:], dtype=np.float64)
    coords = {name: c.variable for name, c in m.coords.items() if "subset" not in c.dims}
    coords["order"] = np.arange(2, k + 1)
    attrs = dict(m.attrs)
    attrs["lags"] = list(lags)
    attrs["long_name"] = "lag cumulant"
    return xr.DataArray(out, dims=("order",) + m.dims[1:], coords=coords, name="lag_cumulants", attrs=attrs)


# --------------------------------------------------------------------------------------------
# cross-cumulants (XC-SOFI)


def _pair_chunk(x: np.ndarray, axis: Any = None, keepdims: Any = None, *, pairs: np.ndarray, **kw: Any) -> tuple:
    return km.pair_comoment_state(x, pairs)


def _pair_combine(states: Any, axis: Any = None, keepdims: Any = None, *, pairs: np.ndarray, **kw: Any) -> tuple:
    states = _flatten(states)
    out = states[0]
    for s in states[1:]:
        out = km.merge_pair_states(out, s, pairs)
    return out


def _pair_aggregate(states: Any, axis: Any = None, keepdims: Any = None, *, pairs: np.ndarray, **kw: Any) -> np.ndarray:
    n, mean, C = _pair_combine(states, pairs=pairs)
    return C / n


def _pair_comoments(data: da.Array, pairs: np.ndarray) -> da.Array:
    """``(len(pairs), ..., H, W)`` co-moments of pixel pairs over time; one tree reduction."""
    pairs = np.asarray(pairs, np.int64).reshape(-1, 4)
    return da.reduction(
        data, partial(_pair_chunk, pairs=pairs), partial(_pair_aggregate, pairs=pairs),
        combine=partial(_pair_combine, pairs=pairs), axis=0, keepdims=True, concatenate=False,
        output_size=len(pairs), dtype=np.float64, meta=np.empty((0,) * data.ndim, np.float64),
        name="fluoxr-sofi-pairs",
    )


def _xc_shifts(ri_range: int) -> list[tuple[int, int]]:
    """pysofi's ``ri_series``: half of the shifts with ``max(|dy|, |dx|) <= ri_range``, without 0."""
    r = ri_range
    return [(i, j) for i in range(-r, 0) for j in range(-r, r + 1)] + [(0, i) for i in range(-r, 0)]


def cross_cumulants(video: Any, ri_range: int = 1) -> xr.DataArray:
    """Second-order cross-cumulant images of pixel pairs (XC-SOFI; pysofi ``calc_xc_im``).

    For each shift ``s = (dy, dx)`` of pysofi's series (``((2 r + 1)^2 - 1) / 2``
    shifts with ``max(|dy|, |dx|) <= r``), the image at ``q`` is
    ``mean_t (x[q + s] - mean) (x[q - s] - mean)``: the correlation of two
    pixels ``2 s`` apart, placed at their midpoint. Free of the shot-noise
    bias of the auto-cumulant. Images cover the interior
    ``[r, H - r) x [r, W - r)``, as in pysofi. One pass: per-chunk pair
    co-moments are merged exactly across chunks.

    Parameters
    ----------
    video : xarray.DataArray
        Lazy video with whole frames in every chunk; extra dims are kept.
    ri_range : int
        Largest pixel shift ``r`` (>= 1).

    Returns
    -------
    xarray.DataArray
        ``("shift", ..., "y", "x")`` float64 with coordinates ``dy``, ``dx``
        (per shift) and the interior ``y``, ``x``.

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> video = fluoxr.as_video(np.random.default_rng(0).normal(size=(40, 6, 7)))
    >>> xc = fluoxr.cross_cumulants(video, 1)
    >>> xc.shape, xc.dy.values.tolist(), xc.dx.values.tolist()
    ((4, 4, 5), [-1, -1, -1, 0], [-1, 0, 1, -1])
    """
    video = _as_lazy_video(video, what="cross_cumulants")
    check_whole_frames(video)
    r = check_int(ri_range, "ri_range", min_value=1)
    H, W = video.sizes["y"], video.sizes["x"]
    if H <= 2 * r or W <= 2 * r:
        raise ValueError(f"ri_range={r} leaves no interior pixels in a {H} x {W} frame; "
                         f"it must be below {min(H, W) / 2:g}")
    shifts = _xc_shifts(r)
    pairs = np.array([(dy, dx, -dy, -dx) for dy, dx in shifts], np.int64)
    out = _pair_comoments(video.data, pairs)[..., r : H - r, r : W - r]
    coords = _frame_coords(video)
    coords["y"] = video.y.values[r : H - r]
    coords["x"] = video.x.values[r : W - r]
    coords = {k: v for k, v in coords.items() if not ({"y", "x"} & set(getattr(v, "dims", ()))) or k in ("y", "x")}
    coords["dy"] = ("shift", [s[0] for s in shifts])
    coords["dx"] = ("shift", [s[1] for s in shifts])
    return xr.DataArray(out, dims=("shift",) + video.dims[1:], coords=coords, name="cross_cumulants",
                        attrs=_result_attrs(video, ri_range=r, long_name="cross-cumulant (order 2)"))


# pairs for the assembled XC image: (dy1, dx1, dy2, dx2) relative to the grid position p
_XC_PAIRS = np.array([
    (0, 0, 0, 0),     # 0 auto-cumulant at p
    (0, 0, 0, 1),     # 1 horizontal neighbours, midpoint p + (0, 1/2), distance 1
    (0, 0, 1, 0),     # 2 vertical neighbours, midpoint p + (1/2, 0)
    (0, 0, 1, 1),     # 3 diagonal, midpoint p + (1/2, 1/2), distance sqrt 2
    (0, 1, 1, 0),     # 4 anti-diagonal, same midpoint
    (0, -1, 0, 1),    # 5 distance 2 around p, horizontal
    (-1, 0, 1, 0),    # 6 distance 2 around p, vertical
    (-1, -1, 1, 1),   # 7 distance 2 sqrt 2 around p
    (-1, 1, 1, -1),   # 8 distance 2 sqrt 2 around p
], np.int64)


def _nanmean2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(a), b, np.where(np.isnan(b), a, (a + b) / 2))


def _assemble_xc(c: np.ndarray, *, sigma_px: float | None) -> np.ndarray:
    """Interleave pair co-moments into a ``(2H - 1, 2W - 1)`` XC2 image; last row/col: the sigma used."""
    _, H, W = c.shape
    c = c.copy()
    # mark positions where a pair leaves the frame
    for q, (dy1, dx1, dy2, dx2) in enumerate(_XC_PAIRS):
        valid = np.zeros((H, W), bool)
        valid[max(0, -dy1, -dy2) : min(H, H - dy1, H - dy2), max(0, -dx1, -dx2) : min(W, W - dx1, W - dx2)] = True
        c[q][~valid] = np.nan
    d4 = _nanmean2(c[5], c[6])
    d8 = _nanmean2(c[7], c[8])
    if sigma_px is None:
        ok = np.isfinite(d4) & np.isfinite(d8)
        a, b = d8[ok], d4[ok]
        den = float(np.sum(b * b))
        ratio = float(np.sum(a * b)) / den if den > 0 else np.nan
        if not 0 < ratio < 1:
            raise ValueError(
                "sigma_px could not be estimated from the data (the cross-cumulants of pixels 2 and 2*sqrt(2) "
                f"apart have ratio {ratio:.3g}, outside (0, 1)); pass sigma_px=... (PSF standard deviation in pixels)"
            )
        sigma = math.sqrt(-1.0 / math.log(ratio))
    else:
        sigma = float(sigma_px)
    # XC of two pixels d apart at their midpoint = AC * exp(-d^2 / (4 sigma^2)): undo that factor
    g = lambda d2: math.exp(d2 / (4 * sigma * sigma))  # noqa: E731
    out = np.full((2 * H - 1 + 1, 2 * W - 1), np.nan)
    img = out[:-1]
    even = d4 * g(4.0)
    img[0::2, 0::2] = np.where(np.isnan(even), c[0], even)
    img[0::2, 1::2] = (c[1] * g(1.0))[:, : W - 1]
    img[1::2, 0::2] = (c[2] * g(1.0))[: H - 1, :]
    img[1::2, 1::2] = (_nanmean2(c[3], c[4]) * g(2.0))[: H - 1, : W - 1]
    out[-1] = sigma
    return out


def xc_image(video: Any, *, sigma_px: float | None = None) -> xr.DataArray:
    """Second-order XC-SOFI image on a grid twice as fine, assembled from pixel-pair cross-cumulants.

    Each position of the ``(2H - 1, 2W - 1)`` grid takes the cross-cumulant of
    pixel pairs whose midpoint it is: neighbours (distance 1) for positions
    between pixels, diagonal pairs (distance sqrt 2, averaged) for the
    centres of pixel squares, and the pairs 2 pixels apart around a pixel
    for the pixel itself (the auto-cumulant only at the four corners). The
    cross-cumulant of pixels ``d`` apart is the auto-cumulant damped by
    ``exp(-d^2 / (4 sigma^2))`` for a Gaussian PSF of standard deviation
    ``sigma``; that distance factor is divided out. One pass over the data.

    Parameters
    ----------
    video : xarray.DataArray
        Lazy ``("time", "y", "x")`` video with whole frames in every chunk.
    sigma_px : float, optional
        PSF standard deviation in pixels. Default: estimated from the data, by
        least squares on the ratio of cross-cumulants of pairs ``2 sqrt 2`` and
        ``2`` pixels apart around the same pixel (``exp(-1 / sigma^2)``), which
        carries no shot noise.

    Returns
    -------
    xarray.DataArray
        ``("y", "x")`` float64 on fractional pixel coordinates, with the
        ``sigma_px`` used as a (lazy) scalar coordinate.

    Examples
    --------
    >>> import fluoxr
    >>> video, truth = fluoxr.datasets.blinking_emitters(300, (16, 16), n_emitters=1, seed=2)
    >>> xc = fluoxr.xc_image(video, sigma_px=truth.sigma_px)
    >>> xc.shape
    (31, 31)
    """
    video = _as_lazy_video(video, min_frames=2, plain=True, what="xc_image")
    check_whole_frames(video)
    if sigma_px is not None:
        sigma_px = check_number(sigma_px, "sigma_px", gt=0)
    H, W = video.sizes["y"], video.sizes["x"]
    if H < 2 or W < 2:
        raise ValueError(f"video frames must be at least 2 x 2 for xc_image, got {H} x {W}")
    pairs = _pair_comoments(video.data, _XC_PAIRS)
    out = pairs.map_blocks(_assemble_xc, sigma_px=sigma_px, chunks=((2 * H,), (2 * W - 1,)), drop_axis=[0],
                           dtype=np.float64, meta=np.empty((0, 0), np.float64))
    y = np.interp(np.arange(2 * H - 1) / 2, np.arange(H), video.y.values.astype(np.float64))
    x = np.interp(np.arange(2 * W - 1) / 2, np.arange(W), video.x.values.astype(np.float64))
    attrs = _result_attrs(video, long_name="XC-SOFI image (order 2)")
    if "pixel_size" in attrs:
        attrs["pixel_size"] = attrs["pixel_size"] / 2
    return xr.DataArray(out[:-1], dims=("y", "x"), coords={"y": y, "x": x, "sigma_px": ((), out[-1, 0])},
                        name="xc_image", attrs=attrs)


# --------------------------------------------------------------------------------------------
# bleaching correction


def total_signal(video: Any) -> xr.DataArray:
    """Sum of every frame, float64 (pysofi ``calc_total_signal``), lazily.

    Differs from pysofi for integer data: pysofi adds a uint16 frame with
    Python's ``sum`` over its rows, in uint16 arithmetic, so its total wraps
    around modulo 65536 (for nearly every real recording, and so do the
    bleaching blocks cut from it); here the sum is exact.

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> fluoxr.total_signal(np.ones((3, 2, 2), np.uint16)).values.tolist()
    [4.0, 4.0, 4.0]
    """
    video = _as_lazy_video(video, device_ok=True)
    out = video.sum([d for d in video.dims if d != "time"], dtype=np.float64)
    out.attrs = {"long_name": "total signal per frame"}
    return out.rename("total_signal")


def bleach_blocks(video: Any, *, fbc: float = 0.04, smooth_kernel: int = 251) -> xr.DataArray:
    """Frame edges of blocks with equal signal decrease (pysofi ``med_smooth`` + ``cut_frames``), lazily.

    The total signal per frame is median-smoothed (window ``smooth_kernel``,
    mirrored ends) and cut into ``ceil(1 / fbc)`` blocks; see
    :func:`fluoxr.kernels.sofi.cut_frames` for how cuts are placed and how
    they differ from pysofi's. Blocks that find no cut are empty at the end
    (their edges equal the number of frames).

    Returns
    -------
    xarray.DataArray
        ``("edge",)`` int64, ``ceil(1 / fbc) + 1`` frame indices from 0 to
        the number of frames.

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> decay = (1000 * np.exp(-np.arange(100) / 30))[:, None, None] * np.ones((1, 2, 2))
    >>> fluoxr.bleach_blocks(decay, fbc=0.25, smooth_kernel=5).values.tolist()
    [0, 10, 21, 40, 100]
    """
    fbc = _check_fbc(fbc)
    smooth_kernel = _check_kernel(smooth_kernel)
    video = _as_lazy_video(video, plain=True, what="bleach_blocks", device_ok=True)
    edges = _fbc_edges(video, fbc, smooth_kernel)
    return xr.DataArray(edges, dims=("edge",), name="bleach_blocks",
                        attrs={"fbc": fbc, "smooth_kernel": smooth_kernel, "long_name": "block edges (frames)"})


def block_moments(video: Any, orders: int | Sequence[int] = 6, *, fbc: float = 0.04, smooth_kernel: int = 251,
                  edges: Sequence[int] | None = None) -> xr.Dataset:
    """Mean, moments and cumulants of each block of frames (pysofi ``moments_all_blocks``, ``cumulants_all_blocks``).

    Blocks come from :func:`bleach_blocks` (``fbc``, ``smooth_kernel``; two
    reads of the data) or from explicit frame ``edges`` (one read). Each
    block's moments use the block's own mean (pysofi ``calc_block_moments``);
    blocks need not align with chunks.

    Memory: with explicit ``edges`` each block is reduced over only the
    chunks it meets and the result has one chunk per block, so no task holds
    more than a chunk's worth of block states, however many blocks there
    are. With blocks from the data (no ``edges``) the block boundaries are
    only known once the total signal is computed, so every state of the
    reduction carries the statistics of all ``ceil(1 / fbc)`` blocks
    (``(max(orders) + 1)`` images each) and the result is one chunk: memory
    grows with the number of blocks, never with the number of frames.

    Parameters
    ----------
    video : xarray.DataArray
        Lazy ``("time", "y", "x")`` video.
    orders : int or sequence of int
        As :func:`moments`.
    fbc, smooth_kernel
        As :func:`bleach_blocks`; validated always, used without ``edges``.
    edges : sequence of int, optional
        Frame edges of the blocks, rising from 0 to the number of frames
        (repeated edges give empty blocks).

    Returns
    -------
    xarray.Dataset
        ``mean_image`` ``("block", "y", "x")``, ``moments`` and ``cumulants``
        ``("block", "order", "y", "x")`` float64 (NaN for an empty block),
        ``start`` and ``stop`` ``("block",)`` frame indices.

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> video = fluoxr.as_video(np.random.default_rng(0).poisson(20, (60, 4, 4)).astype(np.uint16), chunks=7)
    >>> ds = fluoxr.block_moments(video, 2, edges=[0, 25, 60])
    >>> ds.moments.shape, ds.start.values.tolist()
    ((2, 2, 4, 4), [0, 25])
    """
    orders = _check_orders(orders)
    fbc = _check_fbc(fbc)
    smooth_kernel = _check_kernel(smooth_kernel)
    video = _as_lazy_video(video, plain=True, what="block_moments")
    n = video.sizes["time"]
    p = max(orders)
    if edges is None:
        edge_arr = _fbc_edges(video, fbc, smooth_kernel)
        n_blocks = edge_arr.shape[0] - 1
        # the edges come from the data: every state carries all ceil(1 / fbc) blocks (see _segment_reduce)
        out = _segment_reduce(bind(video.data, edge_arr), edge_arr, p, "blocks")
        out = out.reshape((n_blocks, p + 1) + video.data.shape[1:])
        attrs = {"fbc": fbc, "smooth_kernel": smooth_kernel}
    else:
        edge_arr = _check_edges(edges, n)
        out = _known_segment_stats(video.data, edge_arr, p)
        attrs = {}
    cum = out[:, 1:].map_blocks(_block_cumulants, dtype=np.float64)
    idx = list(orders)
    dims = video.dims[1:]
    coords = _frame_coords(video)
    coords["order"] = np.asarray(orders)
    return xr.Dataset(
        {"mean_image": (("block",) + dims, out[:, 0]),
         "moments": (("block", "order") + dims, out[:, idx]),
         "cumulants": (("block", "order") + dims, cum[:, [o - 1 for o in idx]]),
         "start": (("block",), edge_arr[:-1]),
         "stop": (("block",), edge_arr[1:])},
        coords=coords, attrs=_result_attrs(video, **attrs),
    )


def _block_cumulants(rows: np.ndarray) -> np.ndarray:
    """Cumulants of each block: ``rows`` is ``(block, order 1..p, ...)`` central moments."""
    out = np.empty_like(rows, dtype=np.float64)
    for i in range(rows.shape[0]):
        out[i] = km.cumulants_from_moments(rows[i])
    return out


def _meanmin_chunk(x: np.ndarray, t: np.ndarray, edges: np.ndarray) -> dict:
    # block sums, not means: sums of integer frames are exact in float64, so the block means (and the
    # rounding of x - mean, which can sit exactly on a half) do not depend on the chunking
    t0 = int(t[0]) if t.size else 0
    t1 = t0 + x.shape[0]
    parts = {}
    for k in range(len(edges) - 1):
        a, b = max(int(edges[k]), t0), min(int(edges[k + 1]), t1)
        if a < b:
            seg = x[a - t0 : b - t0]
            parts[k] = (b - a, seg.sum(axis=0, dtype=np.float64), seg.min(axis=0).astype(np.float64))
    return {"edges": np.asarray(edges), "parts": parts}


def _meanmin_combine(states: Any, axis: Any = None, keepdims: Any = None, **kw: Any) -> dict:
    states = _flatten(states)
    parts: dict[int, tuple] = {}
    for s in states:
        for k, (n, total, mn) in s["parts"].items():
            if k in parts:
                n0, total0, mn0 = parts[k]
                parts[k] = (n0 + n, total0 + total, np.minimum(mn0, mn))
            else:
                parts[k] = (n, total, mn)
    return {"edges": states[0]["edges"], "parts": parts}


def _meanmin_aggregate(states: Any, axis: Any = None, keepdims: Any = None, *, n_blocks: int, **kw: Any) -> np.ndarray:
    s = _meanmin_combine(states)
    some = next(iter(s["parts"].values()))
    out = np.full((2, n_blocks) + some[1].shape, np.nan)
    for k, (n, total, mn) in s["parts"].items():
        out[0, k], out[1, k] = total / n, mn
    return out.reshape((2 * n_blocks,) + some[1].shape)


def _corrected_block(x: np.ndarray, t: np.ndarray, edges: np.ndarray, stats: np.ndarray, *,
                     out_dtype: np.dtype) -> np.ndarray:
    n_blocks = len(edges) - 1
    means, mins = stats[:n_blocks], stats[n_blocks:]
    # min over all frames of rint(x - block mean) = min over blocks of rint(block min - block mean)
    with np.errstate(invalid="ignore"):
        gmin = np.nanmin(np.rint(mins - means), axis=0)
    block = np.searchsorted(edges, t, side="right") - 1
    out = np.empty(x.shape, out_dtype)
    for k in np.unique(block):
        sel = block == k
        out[sel] = (np.rint(x[sel] - means[k]) - gmin).astype(out_dtype)
    return out


def bleach_correct(video: Any, *, fbc: float = 0.04, smooth_kernel: int = 251) -> xr.DataArray:
    """Bleaching-corrected video, lazily (pysofi ``correct_bleaching``).

    Frames are cut into blocks of equal bleaching (:func:`bleach_blocks`);
    each frame has its block's mean image subtracted and is rounded to an
    integer (half to even, as ``np.around``); the minimum over all frames is
    then subtracted pixel by pixel, so the result is non-negative. pysofi
    writes temporary TIFFs next to the input and re-reads them; here nothing
    is written: the result is a lazy video that reads the data a third time
    when computed (total signal, block statistics, frames).

    Differences from pysofi: ``smooth_kernel`` is used (pysofi's
    ``correct_bleaching`` always smooths with 251 frames, whatever it is
    given), and the total signal is exact (see :func:`total_signal`). Given
    the same blocks, the frames are identical to pysofi's.

    Returns
    -------
    xarray.DataArray
        A video like the input: int32 for integer inputs of up to 16 bits, int64 for wider integers,
        float64 (rounded values; NaN pixels stay NaN) for float inputs.

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> video = fluoxr.as_video(np.random.default_rng(0).poisson(50, (40, 3, 3)).astype(np.uint16))
    >>> bc = fluoxr.bleach_correct(video, fbc=0.5, smooth_kernel=5)
    >>> bc.dtype, int(bc.min())
    (dtype('int32'), 0)
    """
    fbc = _check_fbc(fbc)
    smooth_kernel = _check_kernel(smooth_kernel)
    video = _as_lazy_video(video, plain=True, what="bleach_correct")
    edges = _fbc_edges(video, fbc, smooth_kernel)
    n_blocks = edges.shape[0] - 1
    data = bind(video.data, edges)
    t = da.arange(data.shape[0], chunks=(data.chunks[0],))
    parts = da.blockwise(_meanmin_chunk, "tyx", data, "tyx", t, "t", edges, "e", concatenate=True,
                         dtype=np.float64, meta=np.empty((0, 0, 0), np.float64), name="fluoxr-sofi-bleach-parts")
    stats = da.reduction(parts, _pass_state, partial(_meanmin_aggregate, n_blocks=n_blocks),
                         combine=_meanmin_combine, axis=0, keepdims=True, concatenate=False,
                         output_size=2 * n_blocks, dtype=np.float64, meta=np.empty((0, 0, 0), np.float64),
                         name="fluoxr-sofi-bleach-stats")
    dt = video.dtype
    # integers as pysofi (rounded); float input stays float so that NaN pixels stay NaN
    out_dtype = np.dtype(np.float64) if dt.kind == "f" else (
        np.dtype(np.int32) if dt.itemsize <= 2 else np.dtype(np.int64))
    data3 = bind(video.data, stats)
    t3 = da.arange(data3.shape[0], chunks=(data3.chunks[0],))
    out = da.blockwise(_corrected_block, "tyx", data3, "tyx", t3, "t", edges, "e", stats, "syx",
                       concatenate=True, out_dtype=out_dtype, dtype=out_dtype,
                       meta=np.empty((0, 0, 0), out_dtype), name="fluoxr-sofi-bleach-correct")
    result = xr.DataArray(out, dims=video.dims, coords=video.coords, attrs=dict(video.attrs), name=video.name)
    result.attrs.update(bleach_correction_fbc=fbc, bleach_correction_smooth_kernel=smooth_kernel)
    return result


# --------------------------------------------------------------------------------------------
# the PysofiData pipeline


def reconstruct(
    video: Any,
    order: int = 6,
    *,
    cumulant: bool = False,
    finterp: int = 1,
    window: int | None = None,
    bleach_correction: bool = False,
    fbc: float = 0.04,
    smooth_kernel: int = 251,
    filter: Any = None,
    psf: Any = None,
    deconv_lambda: float = 1.5,
    deconv_iter: int = 20,
    ldrc_window: Sequence[int] = (25, 25),
) -> xr.Dataset:
    """The PysofiData pipeline: Fourier interpolation, moments or cumulants, noise filter, deconvsk, noise filter, ldrc.

    With ``window`` the recording is cut into consecutive windows of
    ``window`` frames (the last may be shorter) and each window gives one
    SOFI image, all from one pass; the noise filter then smooths the series
    of images pixel by pixel (pysofi ``noise_filter1d`` over a set of
    movies). With one image (``window=None``) the noise filter has no series
    to smooth and is skipped. Everything is lazy; the 2-D steps run image by
    image when computed.

    Parameters
    ----------
    video : xarray.DataArray
        Lazy ``("time", "y", "x")`` video.
    order : int
        SOFI order (moment or cumulant), >= 1.
    cumulant : bool
        Cumulant instead of moment images.
    finterp : int
        Fourier interpolation factor (1: none); frames grow to ``(n-1)*f+1``.
    window : int, optional
        Frames per SOFI image.
    bleach_correction, fbc, smooth_kernel
        Block-averaged moments/cumulants, as :func:`moments` (whole
        recording only, not with ``window``).
    filter : array-like or False, optional
        1-D noise-filter kernel along the image series (default
        ``gauss1d_mask((1, 21), 2)``); False skips it.
    psf : array-like, optional
        PSF estimate for :func:`deconvsk` (default ``gauss2d_mask((51, 51), 2)``).
    deconv_lambda, deconv_iter
        Shrinking-kernel deconvolution parameters.
    ldrc_window : (int, int)
        :func:`ldrc` window; the mask is the mean image of the same window.

    Returns
    -------
    xarray.Dataset
        ``mean_image``, ``sofi``, ``filtered``, ``deconvolved``,
        ``deconvolved_filtered`` and ``ldrc``, each ``("window", "y", "x")``,
        coordinates ``start``, ``stop`` (frames of each window).

    Examples
    --------
    >>> import fluoxr
    >>> video, _ = fluoxr.datasets.blinking_emitters(200, (32, 32), n_emitters=3, seed=0)
    >>> ds = fluoxr.reconstruct(video, 4, cumulant=True, deconv_iter=3, ldrc_window=(9, 9))
    >>> list(ds.data_vars), ds.ldrc.shape
    (['mean_image', 'sofi', 'filtered', 'deconvolved', 'deconvolved_filtered', 'ldrc'], (1, 32, 32))
    """
    order = check_int(order, "order", min_value=1, max_value=MAX_ORDER)
    if not isinstance(cumulant, (bool, np.bool_)):
        raise TypeError(f"cumulant must be True or False, got {cumulant!r}")
    finterp = check_int(finterp, "finterp", min_value=1)
    bleach_correction, fbc, smooth_kernel = _bleach_args(bleach_correction, fbc, smooth_kernel)
    if filter is not False:
        filter = _check_filter(filter, "filter")
    deconv_lambda = check_number(deconv_lambda, "deconv_lambda", gt=1)
    deconv_iter = check_int(deconv_iter, "deconv_iter", min_value=1)
    video = _as_lazy_video(video, plain=True, what="reconstruct")
    n = video.sizes["time"]
    if window is not None:
        window = check_int(window, "window", min_value=1, max_value=n)
        if bleach_correction:
            raise ValueError("bleach_correction works on the whole recording; use window=None with it")
    # the sizes of the images that ldrc sees, so that its window is checked (and named) before any work
    out_h, out_w = (ks.interp_size(video.sizes[d], finterp) for d in ("y", "x"))
    ldrc_window = _check_window_size(ldrc_window, out_h, out_w, "ldrc_window")
    if finterp > 1:
        video = fourier_interpolate(video, finterp)
    if window is None:
        mean, rows, cum = _sofi_core(video, order, bleach_correction, fbc, smooth_kernel)
        sofi = (cum if cumulant else rows)[order - 1][None]
        mean = mean[None]
        starts, stops = [0], [n]
    else:
        edges = np.unique(np.r_[np.arange(0, n, window), n])
        stats = _known_segment_stats(video.data, edges, order)
        mean = stats[:, 0]
        if cumulant:
            sofi = stats[:, 1:].map_blocks(_block_cumulants, dtype=np.float64)[:, order - 1]
        else:
            sofi = stats[:, order]
        starts, stops = edges[:-1].tolist(), edges[1:].tolist()
    coords = {"y": video.y.variable, "x": video.x.variable, "start": ("window", starts), "stop": ("window", stops)}
    dims = ("window", "y", "x")
    mean_da = xr.DataArray(mean, dims=dims, coords=coords, name="mean_image")
    sofi_da = xr.DataArray(sofi, dims=dims, coords=coords, name="sofi")
    use_filter = filter is not False and len(starts) > 1
    filtered = noise_filter(sofi_da, filter, dim="window") if use_filter else sofi_da
    deconv = deconvsk(filtered, psf, deconv_lambda=deconv_lambda, deconv_iter=deconv_iter)
    deconv_f = noise_filter(deconv, filter, dim="window") if use_filter else deconv
    compressed = ldrc(deconv_f, mean_da, window_size=ldrc_window)
    attrs = _result_attrs(video, order=order, cumulant=int(cumulant), finterp=finterp,
                          noise_filter=int(use_filter), deconv_lambda=float(deconv_lambda),
                          deconv_iter=int(deconv_iter), ldrc_window=list(ldrc_window))
    attrs["n_frames"] = n
    return xr.Dataset({"mean_image": mean_da, "sofi": sofi_da, "filtered": filtered, "deconvolved": deconv,
                       "deconvolved_filtered": deconv_f, "ldrc": compressed}, attrs=attrs)


# --------------------------------------------------------------------------------------------
# checking resolution


def _fit_width(sub: np.ndarray, yy: np.ndarray, xx: np.ndarray, y0: float, x0: float) -> float:
    from scipy.optimize import curve_fit

    def gauss(c: tuple, a: float, yc: float, xc: float, s: float, off: float) -> np.ndarray:
        return a * np.exp(-((c[0] - yc) ** 2 + (c[1] - xc) ** 2) / (2 * s * s)) + off

    p0 = [float(sub.max() - np.median(sub)), y0, x0, 1.0, float(np.median(sub))]
    try:
        p, _ = curve_fit(gauss, (yy.ravel(), xx.ravel()), sub.ravel(), p0=p0, maxfev=5000)
    except (RuntimeError, ValueError):
        return float("nan")
    return float(abs(p[3]))


def psf_width(image: Any, positions: Any, *, radius_px: int = 5) -> np.ndarray:
    """Width (Gaussian standard deviation) of the spot at each position of an image.

    A 2-D Gaussian with offset is fitted in a ``(2 r + 1)^2`` window around
    each position. SOFI images of order ``n`` of a Gaussian PSF of width
    ``sigma`` have spots of width ``sigma / sqrt(n)``; the sign of each spot
    (odd and some even cumulants are negative) is taken from its centre.
    Eager: a lazy image is computed.

    Parameters
    ----------
    image : xarray.DataArray or 2-D array
        Image ``("y", "x")``; with a DataArray, positions and widths are in
        its coordinate units (pixels of the recording for an interpolated
        image), else in pixels.
    positions : array-like
        ``(n, 2)`` spot centres ``(y, x)``.
    radius_px : int
        Half-size of the fitting window, in pixels of ``image``.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` widths; NaN where the fit fails or the window leaves the image.

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr.sofi import psf_width
    >>> yy, xx = np.mgrid[0:21, 0:21]
    >>> img = np.exp(-((yy - 10.3) ** 2 + (xx - 9.6) ** 2) / (2 * 1.7**2))
    >>> np.round(psf_width(img, [(10.3, 9.6)]), 3).tolist()
    [1.7]
    """
    r = check_int(radius_px, "radius_px", min_value=1)
    if isinstance(image, xr.DataArray):
        if image.dims != ("y", "x"):
            raise ValueError(f"image must have dims ('y', 'x'), got {image.dims}")
        ycoord = image.y.values.astype(np.float64) if "y" in image.coords else np.arange(image.sizes["y"], dtype=float)
        xcoord = image.x.values.astype(np.float64) if "x" in image.coords else np.arange(image.sizes["x"], dtype=float)
        img = np.asarray(image.values, dtype=np.float64)
    else:
        img = np.asarray(image, dtype=np.float64)
        if img.ndim != 2:
            raise ValueError(f"image must be 2-D, got shape {img.shape}")
        ycoord, xcoord = np.arange(img.shape[0], dtype=float), np.arange(img.shape[1], dtype=float)
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    scale = np.array([ycoord[1] - ycoord[0] if len(ycoord) > 1 else 1.0, xcoord[1] - xcoord[0] if len(xcoord) > 1 else 1.0])
    out = np.full(len(pos), np.nan)
    for i, (y0, x0) in enumerate(pos):
        fy = np.interp(y0, ycoord, np.arange(len(ycoord)))
        fx = np.interp(x0, xcoord, np.arange(len(xcoord)))
        yi, xi = int(round(fy)), int(round(fx))
        if yi - r < 0 or xi - r < 0 or yi + r >= img.shape[0] or xi + r >= img.shape[1]:
            continue
        sub = img[yi - r : yi + r + 1, xi - r : xi + r + 1]
        sub = sub * (np.sign(sub[r, r]) or 1.0)
        yy, xx = np.mgrid[yi - r : yi + r + 1, xi - r : xi + r + 1].astype(np.float64)
        out[i] = _fit_width(sub, yy, xx, fy, fx) * float(np.sqrt(abs(scale[0] * scale[1])))
    return out
