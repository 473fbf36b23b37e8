"""Reductions along time, declared as data, and the one driver that runs them.

A :class:`TimeReduction` says what a statistic over frames is, in three
steps over a small typed state (a NamedTuple of arrays, the idea of flox's
``Aggregation``): ``chunk`` turns a block of frames into a state,
``combine`` merges a sequence of states into one, ``finalize`` turns a
state into the result rows. :func:`reduce_time` runs it as a tree reduction
of states (memory of a few states per task, never a rechunk of the time
axis) over

- the whole recording,
- fixed segments given as frame edges (windows, explicit blocks): each
  segment is reduced over only the chunks it meets, one result chunk per
  segment,
- segments whose edges are a lazy dask array computed from the data
  (bleaching blocks): every state carries the open segments, so its memory
  is bounded by the number of segments, not of frames; with ``across``,
  finished segments are folded into a second reduction as they complete.

This is the only module of fluoxr that builds reduction graphs
(``dask.array.reduction``, hand-built ``HighLevelGraph``); the analyses only
declare reductions.

Examples
--------
A running maximum image, written as a new reduction:

>>> from typing import NamedTuple
>>> import numpy as np, dask.array as da
>>> from fluoxr.drivers import TimeReduction, reduce_time
>>> class Peak(NamedTuple):
...     peak: np.ndarray
>>> peak_image = TimeReduction(
...     name="peak-image",
...     chunk=lambda block: Peak(block.max(axis=0)),
...     combine=lambda states: Peak(np.maximum.reduce([s.peak for s in states])),
...     finalize=lambda state: state.peak[None].astype(np.float64),
... )
>>> video = da.from_array(np.arange(24.0).reshape(6, 2, 2), chunks=(2, 2, 2))
>>> reduce_time(video, peak_image).compute()[0].tolist()
[[20.0, 21.0], [22.0, 23.0]]
>>> reduce_time(video, peak_image, segments=[0, 3, 6]).compute()[:, 0, 0, 0].tolist()
[8.0, 20.0]
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any, Generic, NamedTuple, TypeVar

import dask.array as da
import numpy as np
from dask.base import tokenize
from dask.graph_manipulation import bind
from dask.highlevelgraph import HighLevelGraph

from .. import _backend

logger = logging.getLogger(__name__)

__all__ = ["TimeReduction", "reduce_time"]

S = TypeVar("S")

# states merged by one task when a fixed segment spans many chunks (a tree, as dask's reductions)
SEGMENT_SPLIT = 8


@dataclass(frozen=True)
class TimeReduction(Generic[S]):
    """A reduction along time (axis 0), declared as data.

    Parameters
    ----------
    name : str
        Prefix of the task names (``"fluoxr-sofi-moments"``).
    chunk : callable
        ``block -> state``: a block of frames ``(time, ...)`` (at least one
        frame) to a state, a small NamedTuple of arrays without the time axis.
    combine : callable
        ``states -> state``: merges a non-empty sequence of states, left to
        right (the order is that of the frames).
    finalize : callable
        ``state -> array`` of shape ``(rows, ...)``.
    rows : int
        Length of the leading axis of ``finalize``'s result.
    dtype : numpy.dtype
        dtype of ``finalize``'s result.
    chunk_segments : callable, optional
        ``(block, t0, edges) -> {k: state}``: the states of the parts of a
        block (frames ``t0 ..``) in each segment ``[edges[k], edges[k+1])``
        it meets, in one call (a kernel that does it faster than slicing);
        by default ``chunk`` of each part.

    Examples
    --------
    >>> from typing import NamedTuple
    >>> import numpy as np
    >>> class Total(NamedTuple):
    ...     total: np.ndarray
    >>> total = TimeReduction("total", chunk=lambda b: Total(b.sum(0)),
    ...                       combine=lambda ss: Total(sum(s.total for s in ss)),
    ...                       finalize=lambda s: s.total[None])
    >>> total.rows, total.dtype
    (1, dtype('float64'))
    """

    name: str
    chunk: Callable[[Any], S]
    combine: Callable[[Sequence[S]], S]
    finalize: Callable[[S], Any]
    rows: int = 1
    dtype: np.dtype = np.dtype(np.float64)
    chunk_segments: Callable[[Any, int, np.ndarray], dict[int, S]] | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise TypeError(f"name must be a non-empty string, got {self.name!r}")
        for field in ("chunk", "combine", "finalize"):
            if not callable(getattr(self, field)):
                raise TypeError(f"{field} must be callable, got {getattr(self, field)!r}")
        if isinstance(self.rows, bool) or not isinstance(self.rows, (int, np.integer)) or self.rows < 1:
            raise ValueError(f"rows must be a positive integer, got {self.rows!r}")
        object.__setattr__(self, "dtype", np.dtype(self.dtype))


def reduce_time(data: da.Array, reduction: TimeReduction, *, segments: Any = None,
                across: TimeReduction | None = None, split_every: int | None = None) -> da.Array:
    """Run ``reduction`` over the time axis (axis 0) of ``data``, lazily.

    Parameters
    ----------
    data : dask.array.Array
        ``(time, ...)``, chunked along time (any chunks, also of one frame).
    reduction : TimeReduction
        What to compute.
    segments : sequence of int or dask.array.Array, optional
        Frame edges rising from 0 to the number of frames (repeated edges
        give empty segments). A sequence: fixed segments, each reduced over
        only the chunks it meets. A 1-D dask array (edges computed from the
        data, its length known): the data are read again once the edges are
        known, every state of the tree carries the open segments.
    across : TimeReduction, optional
        With ``segments``: a reduction over the non-empty segments, whose
        ``chunk`` takes one segment's ``finalize`` result; with lazy
        segments each finished segment is folded in as soon as it is
        complete (one accumulator in memory, not every segment).
    split_every : int, optional
        States merged per task (dask's default for the whole recording,
        8 for fixed segments).

    Returns
    -------
    dask.array.Array
        Whole recording: ``(rows, ...)``. Segments: ``(n_segments, rows, ...)``,
        NaN rows for an empty segment (one chunk per segment for fixed
        segments, one chunk for lazy ones). With ``across``: ``(across.rows, ...)``.

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> from fluoxr.sofi.moments import moment_reduction
    >>> x = da.from_array(np.arange(12.0).reshape(6, 2), chunks=(4, 2))
    >>> reduce_time(x, moment_reduction(2))[:2].compute().tolist()   # mean, order 1
    [[5.0, 6.0], [0.0, 0.0]]
    """
    if not isinstance(reduction, TimeReduction):
        raise TypeError(f"reduction must be a TimeReduction, got {type(reduction).__name__}")
    if across is not None and not isinstance(across, TimeReduction):
        raise TypeError(f"across must be a TimeReduction or None, got {type(across).__name__}")
    if not isinstance(data, da.Array):
        raise TypeError(f"data must be a dask array, got {type(data).__name__}")
    if data.ndim < 1:
        raise ValueError("data must have a time axis (axis 0)")
    if split_every is not None and (isinstance(split_every, bool) or int(split_every) < 2):
        raise ValueError(f"split_every must be an integer >= 2, got {split_every!r}")
    if segments is None:
        if across is not None:
            raise ValueError("across needs segments")
        return _reduce_whole(data, reduction, split_every)
    if isinstance(segments, da.Array):
        if segments.ndim != 1 or np.isnan(segments.shape[0]) or segments.shape[0] < 2:
            raise ValueError(f"segments must be a 1-D dask array of at least 2 edges of known length, "
                             f"got shape {segments.shape}")
        return _reduce_lazy_segments(data, reduction, segments, across, split_every)
    edges = check_segment_edges(segments, data.shape[0])
    out = _reduce_fixed_segments(data, reduction, edges, split_every or SEGMENT_SPLIT)
    if across is None:
        return out
    full = [k for k in range(len(edges) - 1) if edges[k] < edges[k + 1]]
    # the segments' rows end to end, one segment per chunk: across takes each chunk as one result
    per_segment = out[full].reshape((len(full) * reduction.rows,) + data.shape[1:])
    return _reduce_whole(per_segment, across, split_every)


# --------------------------------------------------------------------------------------------
# the whole recording: dask's tree reduction of states


def _flatten(obj: Any) -> list:
    if isinstance(obj, list):
        return [s for o in obj for s in _flatten(o)]
    return [obj]


def _chunk_step(x: Any, axis: Any = None, keepdims: Any = None, *, reduction: TimeReduction, **kw: Any) -> Any:
    if x.ndim and not any(x.shape):
        # dask infers the chunk step's meta from an all-empty array: a state is no array, so refuse
        # (dask then falls back to the reduction's meta)
        raise ValueError("a reduction state is not an array")
    return reduction.chunk(x)


def _combine_step(states: Any, axis: Any = None, keepdims: Any = None, *, reduction: TimeReduction,
                  **kw: Any) -> Any:
    return reduction.combine(_flatten(states))


def _aggregate_step(states: Any, axis: Any = None, keepdims: Any = None, *, reduction: TimeReduction,
                    **kw: Any) -> Any:
    return reduction.finalize(reduction.combine(_flatten(states)))


def _reduce_whole(data: da.Array, red: TimeReduction, split_every: int | None) -> da.Array:
    return da.reduction(
        data, partial(_chunk_step, reduction=red), partial(_aggregate_step, reduction=red),
        combine=partial(_combine_step, reduction=red), axis=0, keepdims=True, concatenate=False,
        output_size=red.rows, dtype=red.dtype, meta=_backend.meta_like(data, data.ndim, red.dtype),
        split_every=split_every, name=red.name,
    )


# --------------------------------------------------------------------------------------------
# segments


def check_segment_edges(edges: Any, n_frames: int, name: str = "segments") -> np.ndarray:
    """Fixed segment edges as int64, rising from 0 to ``n_frames``; errors name the argument ``name``.

    Examples
    --------
    >>> check_segment_edges([0, 4, 10], 10).tolist()
    [0, 4, 10]
    """
    try:
        arr = np.asarray(edges)
    except Exception:  # pragma: no cover
        raise TypeError(f"{name} must be a sequence of frame indices, got {edges!r}") from None
    if arr.ndim != 1 or arr.size < 2 or arr.dtype.kind not in "iuf" or not np.all(arr == np.round(arr)):
        raise ValueError(f"{name} must be a 1-D sequence of at least 2 integer frame indices, got {edges!r}")
    arr = arr.astype(np.int64)
    if arr[0] != 0 or arr[-1] != n_frames or np.any(np.diff(arr) < 0):
        raise ValueError(f"{name} must rise from 0 to the number of frames ({n_frames}), got {arr.tolist()}")
    return arr


def _meeting(edges: np.ndarray, t0: int, t1: int) -> tuple[int, int]:
    """Segments ``k0 .. k1 - 1`` start before frame ``t1`` and end after ``t0`` (or are empty in between)."""
    k0 = int(np.searchsorted(edges, t0, side="right")) - 1
    k1 = int(np.searchsorted(edges, t1, side="left"))
    return max(k0, 0), k1


def _part_states(x: Any, t0: int, local: np.ndarray, first: int, red: TimeReduction) -> dict[int, Any]:
    """States of the parts of block ``x`` (frames ``t0 ..``) in segments ``first ..`` (edges ``local``)."""
    t1 = t0 + x.shape[0]
    if red.chunk_segments is not None:
        parts = red.chunk_segments(x, t0, local)
    else:
        parts = {}
        for k in range(len(local) - 1):
            a, b = max(int(local[k]), t0), min(int(local[k + 1]), t1)
            if a < b:
                parts[k] = red.chunk(x[a - t0 : b - t0])
    return {first + k: state for k, state in parts.items()}


def _fixed_parts(x: Any, t0: int, local: np.ndarray, first: int, *, reduction: TimeReduction) -> dict[int, Any]:
    return _part_states(x, t0, local, first, reduction)


def _fixed_merge(items: list, k: int, *, reduction: TimeReduction) -> Any:
    """State of segment ``k`` from chunk parts (dicts by segment) and partial merges (states)."""
    return reduction.combine([item[k] if isinstance(item, dict) else item for item in items])


def _fixed_final(items: list, k: int, *, reduction: TimeReduction) -> Any:
    return reduction.finalize(_fixed_merge(items, k, reduction=reduction))[None]


def _reduce_fixed_segments(data: da.Array, red: TimeReduction, edges: np.ndarray, split_every: int) -> da.Array:
    """``(n_segments, rows, ...)``, one chunk per segment; each reduced over only the chunks it meets.

    No task holds more than one chunk's parts and ``split_every`` states, however many segments
    there are; only segments that straddle chunk boundaries need a merge.
    """
    n_seg = len(edges) - 1
    token = tokenize(data.name, edges, red, split_every)
    pname = f"{red.name}-segment-parts-{token}"
    mname = f"{red.name}-segment-merge-{token}"
    name = f"{red.name}-segment-stats-{token}"
    bounds = np.cumsum((0,) + tuple(data.chunks[0]))
    spatial = list(np.ndindex(*data.numblocks[1:]))
    dsk: dict = {}
    seg_chunks: list[list[int]] = [[] for _ in range(n_seg)]
    parts = partial(_fixed_parts, reduction=red)
    for i in range(len(data.chunks[0])):
        c0, c1 = int(bounds[i]), int(bounds[i + 1])
        if c0 == c1:
            continue
        k0, k1 = _meeting(edges, c0, c1)
        for k in range(k0, k1):
            if max(int(edges[k]), c0) < min(int(edges[k + 1]), c1):
                seg_chunks[k].append(i)
        for s in spatial:
            dsk[(pname, i) + s] = (parts, (data.name, i) + s, c0, edges[k0 : k1 + 1], k0)
    merge = partial(_fixed_merge, reduction=red)
    final = partial(_fixed_final, reduction=red)
    for k, chunks in enumerate(seg_chunks):
        for s in spatial:
            if not chunks:
                shape = (1, red.rows) + tuple(data.chunks[d + 1][j] for d, j in enumerate(s))
                dsk[(name, k, 0) + s] = (np.full, shape, np.nan)
                continue
            items = [(pname, i) + s for i in chunks]
            level = 0
            while len(items) > split_every:
                groups = [items[g : g + split_every] for g in range(0, len(items), split_every)]
                items = []
                for g, group in enumerate(groups):
                    key = (mname, k, level, g) + s
                    dsk[key] = (merge, group, k)
                    items.append(key)
                level += 1
            dsk[(name, k, 0) + s] = (final, items, k)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[data])
    chunks = ((1,) * n_seg, (red.rows,)) + tuple(data.chunks[1:])
    return da.Array(graph, name, chunks=chunks, meta=_backend.meta_like(data, data.ndim + 1, red.dtype))


class _Part(NamedTuple):
    """An open segment: the frames seen so far and their state."""

    frames: int
    state: Any


class _Segmented(NamedTuple):
    """A state of the lazy-segment tree: open segments, finished results, and ``across``'s accumulator."""

    edges: np.ndarray
    parts: dict[int, _Part]
    done: dict[int, Any]
    acc: Any


def _settle(s: _Segmented, red: TimeReduction, across: TimeReduction | None) -> _Segmented:
    """Finish the complete segments: to ``done``, or folded into ``across``'s accumulator."""
    parts, done, acc = dict(s.parts), dict(s.done), s.acc
    for k in sorted(parts):
        if parts[k].frames != int(s.edges[k + 1] - s.edges[k]):
            continue
        result = red.finalize(parts.pop(k).state)
        if across is None:
            done[k] = result
        else:
            new = across.chunk(result)
            acc = new if acc is None else across.combine([acc, new])
    return _Segmented(s.edges, parts, done, acc)


def _lazy_chunk(x: Any, t: np.ndarray, edges: Any, *, reduction: TimeReduction,
                across: TimeReduction | None) -> _Segmented:
    t0 = int(t[0]) if t.size else 0
    edges = np.asarray(_backend.to_numpy(edges), np.int64)
    states = {}
    if x.shape[0]:
        k0, k1 = _meeting(edges, t0, t0 + x.shape[0])
        states = _part_states(x, t0, edges[k0 : k1 + 1], k0, reduction)
    parts = {}
    for k, state in states.items():
        a, b = max(int(edges[k]), t0), min(int(edges[k + 1]), t0 + x.shape[0])
        parts[k] = _Part(b - a, state)
    return _settle(_Segmented(edges, parts, {}, None), reduction, across)


def _lazy_pass(x: Any, axis: Any = None, keepdims: Any = None, **kw: Any) -> Any:
    return x


def _lazy_combine(states: Any, axis: Any = None, keepdims: Any = None, *, reduction: TimeReduction,
                  across: TimeReduction | None, **kw: Any) -> _Segmented:
    states = _flatten(states)
    pending: dict[int, list[_Part]] = {}
    done: dict[int, Any] = {}
    accs = []
    for s in states:
        for k, part in s.parts.items():
            pending.setdefault(k, []).append(part)
        done.update(s.done)
        if s.acc is not None:
            accs.append(s.acc)
    parts = {k: ps[0] if len(ps) == 1 else _Part(sum(p.frames for p in ps), reduction.combine([p.state for p in ps]))
             for k, ps in pending.items()}
    acc = None if not accs else accs[0] if len(accs) == 1 else across.combine(accs)
    return _settle(_Segmented(states[0].edges, parts, done, acc), reduction, across)


def _lazy_aggregate(states: Any, axis: Any = None, keepdims: Any = None, *, reduction: TimeReduction,
                    across: TimeReduction | None, n_seg: int, **kw: Any) -> Any:
    s = _lazy_combine(states, reduction=reduction, across=across)
    if s.parts:  # pragma: no cover - every frame belongs to exactly one segment
        raise RuntimeError(f"segments {sorted(s.parts)} are incomplete after the reduction")
    if across is not None:
        return across.finalize(s.acc)
    some = next(iter(s.done.values()), None)
    shape = tuple(some.shape) if some is not None else (reduction.rows,)
    xp = _backend.array_module(some) if some is not None else np
    out = xp.full((n_seg,) + shape, np.nan)
    for k, result in s.done.items():
        out[k] = result
    return out.reshape((n_seg * shape[0],) + shape[1:])


def _reduce_lazy_segments(data: da.Array, red: TimeReduction, edges: da.Array, across: TimeReduction | None,
                          split_every: int | None) -> da.Array:
    n_seg = edges.shape[0] - 1
    # the segments read the data again once the edges are known, instead of keeping the first read
    data = bind(data, edges)
    meta = _backend.meta_like(data, data.ndim, red.dtype)
    t = da.arange(data.shape[0], chunks=(data.chunks[0],))
    index = "t" + "".join(chr(ord("a") + i) for i in range(data.ndim - 1))
    parts = da.blockwise(
        _lazy_chunk, index, data, index, t, "t", edges, "e", concatenate=True, reduction=red, across=across,
        dtype=red.dtype, meta=meta, name=f"{red.name}-segments",
    )
    size = across.rows if across is not None else n_seg * red.rows
    out = da.reduction(
        parts, _lazy_pass, partial(_lazy_aggregate, reduction=red, across=across, n_seg=n_seg),
        combine=partial(_lazy_combine, reduction=red, across=across), axis=0, keepdims=True, concatenate=False,
        output_size=size, dtype=red.dtype, meta=meta, split_every=split_every, name=f"{red.name}-segment-reduce",
    )
    if across is not None:
        return out
    return out.reshape((n_seg, red.rows) + data.shape[1:])
