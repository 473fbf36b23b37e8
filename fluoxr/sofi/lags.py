"""Moments and cumulants of products of frames at time lags (pysofi ``calc_moments_with_lag``)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from typing import Any, NamedTuple

import dask.array as da
import numpy as np
import xarray as xr
from dask.graph_manipulation import bind

from .._validate import check_int
from ..drivers import TemporalFilter, TimeReduction, apply_temporal, reduce_time
from ..kernels import moments as km
from ._common import _as_lazy_video, _frame_coords, _result_attrs
from .moments import mean_reduction

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


def _lag_products(window: np.ndarray, mean_block: np.ndarray, *, before: int, after: int, t0: int, n_frames: int,
                  maxlag: int, n_starts: int, lags: Sequence[int], subsets: Sequence[tuple]) -> np.ndarray:
    """Sums of the lag products that start in this chunk: ``(1, subset, ...)``.

    ``window`` is the chunk followed by up to ``max(lags)`` frames (fewer at the
    recording's end); products start only in the chunk's own frames, and only
    where every lagged frame exists.
    """
    own = max(0, min(window.shape[0] - after, n_starts - t0))
    return km.lag_product_sums(window, mean_block[0], lags, own, subsets)[None]


# each chunk needs the next max(lags) frames: a one-sided halo, cut at the recording's end
LAG_PRODUCTS = TemporalFilter(_lag_products, halo=lambda maxlag, **_: (0, maxlag), edge="none", position=True,
                              name="fluoxr-sofi-lag-products")


class LagSums(NamedTuple):
    """Sums over the starts seen so far of the products of every subset."""

    sums: np.ndarray


def _lag_sums_chunk(block: np.ndarray) -> LagSums:
    return LagSums(np.sum(block, axis=0))


def _lag_sums_combine(states: Sequence[LagSums]) -> LagSums:
    # one sum over the stacked states, as dask's own sum does it
    return LagSums(np.sum(np.stack([s.sums for s in states]), axis=0))


def _lag_sums_finalize(state: LagSums, *, n_starts: int) -> np.ndarray:
    return (state.sums / n_starts)[None]


def lag_sum_reduction(n_starts: int) -> TimeReduction[LagSums]:
    """Mean over ``n_starts`` of per-chunk product sums ``(chunk, subset, ...)``: one row ``(subset, ...)``."""
    return TimeReduction("fluoxr-sofi-lag-moments", chunk=_lag_sums_chunk, combine=_lag_sums_combine,
                         finalize=partial(_lag_sums_finalize, n_starts=n_starts))


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
    mean = reduce_time(data, mean_reduction(skipna=False))[0]
    # the second read depends on the mean, so the first read's chunks need not stay in memory
    data = bind(data, mean)
    # the mean image, one view of it per chunk (no copies): the kernel subtracts it
    means = da.broadcast_to(mean[None], data.shape, chunks=data.chunks)
    parts = apply_temporal(data, LAG_PRODUCTS, others=[means], maxlag=maxlag, n_starts=n_starts, lags=lags,
                           subsets=subsets, dtype=np.float64, new_axis=[1],
                           chunks=((1,) * data.numblocks[0], (len(subsets),)) + data.chunks[1:])
    out = reduce_time(parts, lag_sum_reduction(n_starts))[0]
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
