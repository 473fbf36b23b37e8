"""Moments and cumulants of every order from one pass, the mean and minimum images, the total signal.

The reductions are declared here as :class:`fluoxr.drivers.TimeReduction`
values over small typed states and run by :func:`fluoxr.drivers.reduce_time`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from functools import partial
from typing import Any, NamedTuple

import dask.array as da
import numpy as np
import xarray as xr

from .. import _backend
from ..drivers import TimeReduction, reduce_time
from ..kernels import moments as km
from ..kernels import sofi as ks
from ._common import (
    _as_lazy_video,
    _bleach_args,
    _check_orders,
    _frame_coords,
    _orders_array,
    _orders_dataarray,
    _result_attrs,
)

# --------------------------------------------------------------------------------------------
# the reductions


class MomentState(NamedTuple):
    """Frames, mean and central power sums of orders 2..p of a run of frames (``kernels.moments``)."""

    frames: int
    mean: Any
    power_sums: Any


# The same reductions serve both backends: the states have one layout, and `kernels` (the set that
# fluoxr._backend.dispatch_for chose for the chunks) supplies the numba kernels for NumPy chunks or
# their array-module versions for CuPy chunks.


def _moment_chunk(block: Any, *, max_order: int, kernels: _backend.Kernels) -> MomentState:
    return MomentState(*kernels.moment_state(block, max_order))


def _moment_segments(block: Any, t0: int, edges: np.ndarray, *, max_order: int,
                     kernels: _backend.Kernels) -> dict[int, MomentState]:
    parts = kernels.segment_states(block, t0, edges, max_order)
    return {k: MomentState(*state) for k, state in parts.items()}


def _moment_combine(states: Sequence[MomentState], *, kernels: _backend.Kernels) -> MomentState:
    # Pébay's pairwise update, left to right
    return MomentState(*kernels.merge_all(states))


def _moment_finalize(state: MomentState, *, kernels: _backend.Kernels) -> Any:
    return kernels.state_to_stats(state)


def moment_reduction(max_order: int, kernels: _backend.Kernels = _backend.CPU_KERNELS) -> TimeReduction[MomentState]:
    """Rows ``0 .. max_order``: the mean, then the central moments of orders 1..max_order (float64).

    ``kernels``: the set :func:`fluoxr._backend.dispatch_for` chose for the chunks.

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> from fluoxr.drivers import reduce_time
    >>> x = da.from_array(np.array([[1.0], [3.0], [5.0], [7.0]]), chunks=(3, 1))
    >>> reduce_time(x, moment_reduction(2)).compute().ravel().tolist()
    [4.0, 0.0, 5.0]
    """
    return TimeReduction(
        "fluoxr-sofi-moments",
        chunk=partial(_moment_chunk, max_order=max_order, kernels=kernels),
        combine=partial(_moment_combine, kernels=kernels),
        finalize=partial(_moment_finalize, kernels=kernels),
        rows=max_order + 1,
        chunk_segments=partial(_moment_segments, max_order=max_order, kernels=kernels),
    )


class BlockAverage(NamedTuple):
    """Sums over finished blocks of their stats and of ``[mean, cumulants 1..p]``, and the number of blocks."""

    stats: Any
    cumulants: Any
    blocks: int


def _average_chunk(stats: Any) -> BlockAverage:
    xp = _backend.array_module(stats)
    cum = xp.concatenate([stats[:1], km.cumulants_from_moments(stats[1:])])
    return BlockAverage(stats, cum, 1)


def _average_combine(states: Sequence[BlockAverage]) -> BlockAverage:
    out = states[0]
    for s in states[1:]:
        out = BlockAverage(out.stats + s.stats, out.cumulants + s.cumulants, out.blocks + s.blocks)
    return out


def _average_finalize(state: BlockAverage) -> Any:
    xp = _backend.array_module(state.stats)
    return xp.concatenate([state.stats / state.blocks, state.cumulants / state.blocks])


def block_average(max_order: int) -> TimeReduction[BlockAverage]:
    """Over blocks of :func:`moment_reduction` results: rows ``[stats 0..p, mean, cumulants 1..p]``, equal weights."""
    return TimeReduction("fluoxr-sofi-block-average", chunk=_average_chunk,
                         combine=_average_combine, finalize=_average_finalize, rows=2 * (max_order + 1))


class MeanState(NamedTuple):
    """Per pixel: frames counted (without NaN for float data) and their float64 sum."""

    count: Any
    total: Any


def _mean_chunk(block: Any, *, skipna: bool = True) -> MeanState:
    xp = _backend.array_module(block)
    if skipna and block.dtype.kind == "f":  # NaN frames are skipped, as xarray's mean
        return MeanState((~xp.isnan(block)).sum(axis=0).astype(np.float64),
                         xp.nansum(block, axis=0, dtype=np.float64))
    return MeanState(xp.full(block.shape[1:], block.shape[0], np.float64), block.sum(axis=0, dtype=np.float64))


def _mean_combine(states: Sequence[MeanState]) -> MeanState:
    xp = _backend.array_module(states[0].total)
    return MeanState(xp.stack([s.count for s in states]).sum(axis=0),
                     xp.stack([s.total for s in states]).sum(axis=0))


def _mean_finalize(state: MeanState) -> Any:
    with np.errstate(invalid="ignore", divide="ignore"):  # a pixel NaN in every frame is NaN
        return (state.total / state.count)[None]


def mean_reduction(skipna: bool = True) -> TimeReduction[MeanState]:
    """The mean over time in float64; with ``skipna``, NaN frames of float data are skipped per pixel."""
    return TimeReduction("fluoxr-sofi-mean", chunk=partial(_mean_chunk, skipna=skipna), combine=_mean_combine,
                         finalize=_mean_finalize)


class MinState(NamedTuple):
    minimum: Any


def _nanmin0(x: Any) -> Any:
    xp = _backend.array_module(x)
    if x.dtype.kind != "f":
        return x.min(axis=0)
    with warnings.catch_warnings():  # a pixel NaN in every frame is NaN
        warnings.simplefilter("ignore", RuntimeWarning)
        return xp.nanmin(x, axis=0)


def _min_chunk(block: Any) -> MinState:
    return MinState(_nanmin0(block))


def _min_combine(states: Sequence[MinState]) -> MinState:
    xp = _backend.array_module(states[0].minimum)
    return MinState(_nanmin0(xp.stack([s.minimum for s in states])))


def _min_finalize(state: MinState) -> Any:
    return state.minimum[None]


def min_reduction(dtype: Any) -> TimeReduction[MinState]:
    """The minimum over time in ``dtype`` (NaN skipped for float data, as xarray's ``min``)."""
    return TimeReduction("fluoxr-sofi-min", chunk=_min_chunk, combine=_min_combine, finalize=_min_finalize,
                         dtype=dtype)


def _moment_stats(data: da.Array, max_order: int) -> da.Array:
    """``(max_order + 1, ...)``: row 0 the mean, row k the central moment of order k; one tree reduction."""
    return reduce_time(data, moment_reduction(max_order, _backend.dispatch_for(data)))


def _segment_stats(data: da.Array, edges: Any, max_order: int) -> da.Array:
    """``(n_segments, max_order + 1, ...)`` stats of the frames in each segment (NaN for an empty one)."""
    return reduce_time(data, moment_reduction(max_order, _backend.dispatch_for(data)), segments=edges)


def _cumulant_rows(moment_rows: da.Array) -> da.Array:
    """Cumulants of orders 1..p from central moments of orders 1..p (axis 0, one chunk)."""
    return moment_rows.map_blocks(_backend.dispatch_for(moment_rows).cumulants_from_moments, dtype=np.float64,
                                  meta=_backend.meta_like(moment_rows, moment_rows.ndim, np.float64))


def _block_cumulants(rows: np.ndarray) -> np.ndarray:
    """Cumulants of each block: ``rows`` is ``(block, order 1..p, ...)`` central moments."""
    out = np.empty_like(rows, dtype=np.float64)
    for i in range(rows.shape[0]):
        out[i] = km.cumulants_from_moments(rows[i])
    return out


# --------------------------------------------------------------------------------------------
# the total signal and the bleaching blocks cut on it


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



def _fbc_edges(video: xr.DataArray, fbc: float, smooth_kernel: int) -> da.Array:
    signal = total_signal(video).data.rechunk(-1)
    if _backend.dispatch_for(signal).device:
        # one number per frame: the blocks are cut on the host
        signal = signal.map_blocks(_backend.to_numpy, dtype=np.float64, meta=np.empty((0,), np.float64))
    n_blocks = math.ceil(1 / fbc)
    return signal.map_blocks(ks.block_bounds, fbc=fbc, smooth_kernel=smooth_kernel, chunks=((n_blocks + 1,),),
                             dtype=np.int64, meta=np.empty((0,), np.int64))


# --------------------------------------------------------------------------------------------
# moments and cumulants


def _sofi_core(video: xr.DataArray, max_order: int, bleach_correction: bool, fbc: float,
               smooth_kernel: int) -> tuple[da.Array, da.Array, da.Array]:
    """(mean, central moments of orders 1..p, cumulants of orders 1..p) as dask arrays."""
    if not bleach_correction:
        stats = _moment_stats(video.data, max_order)
        return stats[0], stats[1:], _cumulant_rows(stats[1:])
    # blocks cut on the data: one pass for the edges, one for the blocks, averaged as they complete
    kernels = _backend.dispatch_for(video.data)
    edges = _fbc_edges(video, fbc, smooth_kernel)
    out = reduce_time(video.data, moment_reduction(max_order, kernels), segments=edges,
                      across=block_average(max_order))
    p1 = max_order + 1
    return out[0], out[1:p1], out[p1 + 1 :]


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


def mean_image(video: Any) -> xr.DataArray:
    """Mean over time in float64 (pysofi ``average_image``).

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> float(fluoxr.sofi.mean_image(np.arange(8, dtype=np.uint16).reshape(2, 2, 2))[0, 0])
    2.0
    """
    video = _as_lazy_video(video, device_ok=True)
    data = reduce_time(video.data, mean_reduction())[0]
    return xr.DataArray(data, dims=video.dims[1:], coords=_frame_coords(video), name="mean_image",
                        attrs=_result_attrs(video, long_name="mean image"))


def min_image(video: Any) -> xr.DataArray:
    """Minimum over time, in the video's dtype (pysofi ``min_image``).

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> int(fluoxr.sofi.min_image(np.arange(8, dtype=np.uint16).reshape(2, 2, 2))[1, 1])
    3
    """
    video = _as_lazy_video(video, device_ok=True)
    data = reduce_time(video.data, min_reduction(video.dtype))[0]
    return xr.DataArray(data, dims=video.dims[1:], coords=_frame_coords(video), name="min",
                        attrs=_result_attrs(video, long_name="minimum image"))


