"""The temporal-filter driver: one way to run a kernel that needs frames before and after each chunk.

A filter along time is declared as data, a :class:`TemporalFilter`: its
kernel (a function of in-memory arrays), its halo as a function of its
parameters (``(before, after)`` frames of context one chunk needs), and its
edge policy (what the kernel sees beyond the recording's first and last
frame). :func:`apply_temporal` runs it on a dask array chunk by chunk:

- the halo of a chunk is made of *copies* of the edge frames of its
  neighbours (small tasks that copy the first or last ``k`` frames of a
  chunk), so a chunk's task never keeps whole neighbouring chunks alive, as
  the views of ``dask.array.overlap`` do; when the input is a plain read
  from a store (``open_video``), the halo frames are instead read again by
  small reads of their own, so that a chunk's task does not depend on its
  neighbours' reads at all (see :func:`_halo_reader`). A halo longer than the
  neighbouring chunk reaches further back (or on): chunks shorter than the
  halo, one-frame chunks included, are never merged;
- the result has exactly the input's chunks (no rechunk before or after);
- edge policies, beyond the recording's ends: ``"reflect"`` (``d c b a | a b
  c d``, scipy.ndimage's "reflect", NumPy's "symmetric"), ``"edge"`` (the
  first/last frame repeated), ``"zeros"``, and ``"none"`` (the window is cut
  at the ends and the kernel is told how much context it got, for kernels
  that treat the ends themselves, e.g. suite2p's maximin pads every stage);
- a filter whose output at every frame depends on the whole recording
  (detrending, OASIS) declares the halo :data:`WHOLE`: copying the whole
  recording into every chunk's task would repeat the work once per chunk,
  so the driver runs it once on one chunk along time per block of the other
  axes, and splits the result back into the input's chunks.

The kernel contract: ``kernel(window, *others, before=b, after=a, **params)``
gets the chunk with ``b`` frames of context ahead of it and ``a`` behind
(both equal to the declared halo, except with edge ``"none"`` at the
recording's ends) along ``axis``, plus the chunk's blocks of ``others``
(arrays chunked like the input, no halo), and returns the chunk's own frames.
With ``split=True`` it gets ``(context_before, chunk, context_after, *others)``
instead, so that a kernel that works near the chunk's edges need not copy
the whole chunk into one window. With ``position=True`` it also gets
``t0`` (the chunk's first frame in the recording) and ``n_frames``.

This module and the reduction driver are the only places that build halo
graphs (``HighLevelGraph``); domain modules declare filters and call
:func:`apply_temporal`.

Examples
--------
A new temporal filter in ten lines: a centred moving average of ``width``
frames, the recording's ends repeated.

>>> import numpy as np, dask.array as da
>>> from fluoxr.drivers import TemporalFilter, apply_temporal
>>> def _moving_mean(window, *, before, after, width):
...     c = np.cumsum(np.insert(window, 0, 0.0, axis=0), axis=0)
...     return (c[width:] - c[:-width]) / width
>>> moving_mean = TemporalFilter(_moving_mean, halo=lambda width: (width // 2, width // 2), edge="edge")
>>> x = da.from_array(np.arange(6.0), chunks=2)
>>> y = apply_temporal(x, moving_mean, width=3)
>>> y.chunks, y.compute().tolist()
(((2, 2, 2),), [0.3333333333333333, 1.0, 2.0, 3.0, 4.0, 4.666666666666667])
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask.highlevelgraph import HighLevelGraph

from .. import _backend

logger = logging.getLogger(__name__)

__all__ = ["EDGES", "WHOLE", "TemporalFilter", "apply_temporal"]

EDGES = ("reflect", "edge", "zeros", "none")

#: The halo of a filter whose every output frame depends on the whole recording.
WHOLE = "whole"


@dataclass(frozen=True)
class TemporalFilter:
    """A filter along time: kernel, halo and edge policy (see the module docstring for the kernel contract).

    Parameters
    ----------
    kernel : callable
        ``kernel(window, *others, before=, after=, **params)`` (or, with
        ``split``, ``kernel(context_before, chunk, context_after, *others,
        **params)``) returning the chunk's own frames. Module-level, so that
        distributed workers can unpickle it.
    halo : callable or tuple
        ``halo(**params) -> (before, after)`` frames of context, or
        :data:`WHOLE`; a constant ``(before, after)`` is accepted too.
    edge : {"reflect", "edge", "zeros", "none"}
        What the kernel sees beyond the recording's first and last frame.
    split : bool
        Give the kernel its context and its chunk as three arrays.
    position : bool
        Also give the kernel ``t0`` and ``n_frames``.
    name : str, optional
        Prefix of the graph's task names; default the kernel's name.

    Examples
    --------
    >>> from fluoxr.drivers import TemporalFilter
    >>> f = TemporalFilter(lambda w, *, before, after: w, halo=(0, 2), edge="zeros")
    >>> f.halo_of()
    (0, 2)
    """

    kernel: Callable[..., Any]
    halo: Callable[..., Any] | tuple[int, int] | str
    edge: str = "none"
    split: bool = False
    position: bool = False
    name: str | None = None

    def __post_init__(self) -> None:
        if not callable(self.kernel):
            raise TypeError(f"kernel must be callable, got {type(self.kernel).__name__}")
        if self.edge not in EDGES:
            raise ValueError(f"edge must be one of {EDGES}, got {self.edge!r}")

    def halo_of(self, **params: Any) -> tuple[int, int] | str:
        """The halo for ``params``: ``(before, after)`` non-negative ints, or :data:`WHOLE`."""
        h = self.halo(**params) if callable(self.halo) else self.halo
        if isinstance(h, str):
            if h != WHOLE:
                raise ValueError(f"halo must be (before, after) or {WHOLE!r}, got {h!r}")
            return h
        try:
            before, after = (int(v) for v in h)
        except (TypeError, ValueError):
            raise ValueError(f"halo must be (before, after) frames or {WHOLE!r}, got {h!r}") from None
        if before < 0 or after < 0:
            raise ValueError(f"halo must be non-negative frames, got (before, after) = ({before}, {after})")
        return before, after

    @property
    def label(self) -> str:
        return self.name or getattr(self.kernel, "__name__", "temporal-filter").strip("_<>") or "temporal-filter"


# --------------------------------------------------------------------------------------------
# what one chunk's task needs: pure functions of the chunking, computed while the graph is built


@dataclass(frozen=True)
class _Plan:
    """One chunk's window: ``lo .. hi`` (may pass the recording's ends), its sources and context counts."""

    axis: int
    edge: str
    n_frames: int
    t0: int
    n: int  # frames of the chunk
    lo: int
    hi: int
    src_lo: int  # the real frames gathered: src_lo .. src_hi, contiguous, the chunk inside
    src_hi: int
    split: bool
    position: bool

    @property
    def mapped(self) -> bool:
        """Whether the window passes an end of the recording (padding needed)."""
        return self.edge != "none" and (self.lo < 0 or self.hi > self.n_frames)


def _reflect(i: np.ndarray, n: int) -> np.ndarray:
    if n == 1:
        return np.zeros_like(i)
    j = np.mod(i, 2 * n)
    return np.where(j >= n, 2 * n - 1 - j, j)


def _sources(i: np.ndarray, n: int, edge: str) -> np.ndarray:
    """Recording frame of each window index (-1: a zero frame)."""
    if edge == "reflect":
        return _reflect(i, n)
    if edge == "edge":
        return np.clip(i, 0, n - 1)
    return np.where((i < 0) | (i >= n), -1, i)


def _plan(t0: int, n: int, n_frames: int, before: int, after: int, filt: TemporalFilter, axis: int) -> _Plan:
    lo, hi = t0 - before, t0 + n + after
    if filt.edge == "none":
        lo, hi = max(lo, 0), min(hi, n_frames)
    src = _sources(np.arange(lo, hi), n_frames, filt.edge)
    src = src[src >= 0]
    src_lo = min(int(src.min()), t0) if src.size else t0
    src_hi = max(int(src.max()) + 1, t0 + n) if src.size else t0 + n
    return _Plan(axis, filt.edge, n_frames, t0, n, lo, hi, src_lo, src_hi, filt.split, filt.position)


# --------------------------------------------------------------------------------------------
# tasks


def _take(block: Any, axis: int, a: int, b: int) -> Any:
    return block[(slice(None),) * axis + (slice(a, b),)]


def _copy_frames(block: Any, axis: int, a: int, b: int) -> Any:
    # a copy: a view would keep the whole neighbouring chunk in memory
    return _take(block, axis, a, b).copy()


def _concat(parts: Sequence[Any], axis: int) -> Any:
    parts = [p for p in parts if p.shape[axis]] or list(parts[:1])
    if len(parts) == 1:
        return parts[0]
    return _backend.array_module(parts[0]).concatenate(parts, axis=axis)


def _gather(src: Any, plan: _Plan, a: int, b: int) -> Any:
    """Window frames ``a .. b`` (recording indices, may pass the ends) from the real frames ``src``."""
    idx = _sources(np.arange(a, b), plan.n_frames, plan.edge)
    if not (idx < 0).any() and (idx.size == 0 or np.array_equal(idx, np.arange(idx[0], idx[0] + idx.size))):
        return _take(src, plan.axis, int(idx[0]) - plan.src_lo, int(idx[0]) - plan.src_lo + idx.size) \
            if idx.size else _take(src, plan.axis, 0, 0)
    xp = _backend.array_module(src)
    if (idx < 0).any():
        # zeros beyond the ends: one zero frame appended to the sources
        shape = list(src.shape)
        shape[plan.axis] = 1
        src = xp.concatenate([src, xp.zeros(shape, src.dtype)], axis=plan.axis)
        idx = np.where(idx < 0, plan.src_hi, idx)
    return xp.take(src, xp.asarray(idx - plan.src_lo), axis=plan.axis)


def _run_chunk(chunk: Any, before: list, after: list, others: list, *, kernel: Callable[..., Any], plan: _Plan,
               params: dict[str, Any]) -> Any:
    axis, t0, n = plan.axis, plan.t0, plan.n
    extra = {"t0": t0, "n_frames": plan.n_frames} if plan.position else {}
    if not plan.mapped:
        if plan.split:
            empty = _take(chunk, axis, 0, 0)
            return kernel(_concat(before, axis) if before else empty, chunk,
                          _concat(after, axis) if after else empty, *others, **extra, **params)
        window = _concat([*before, chunk, *after], axis)
        return kernel(window, *others, before=t0 - plan.lo, after=plan.hi - t0 - n, **extra, **params)
    # the window passes an end of the recording: gather it by index (only the first and last chunks)
    src = _concat([*before, chunk, *after], axis)
    if plan.split:
        return kernel(_gather(src, plan, plan.lo, t0), chunk, _gather(src, plan, t0 + n, plan.hi), *others,
                      **extra, **params)
    window = _gather(src, plan, plan.lo, plan.hi)
    return kernel(window, *others, before=t0 - plan.lo, after=plan.hi - t0 - n, **extra, **params)


def _run_whole(chunk: Any, *others: Any, kernel: Callable[..., Any], axis: int, split: bool, position: bool,
               params: dict[str, Any]) -> Any:
    extra = {"t0": 0, "n_frames": chunk.shape[axis]} if position else {}
    if split:
        empty = _take(chunk, axis, 0, 0)
        return kernel(empty, chunk, empty, *others, **extra, **params)
    return kernel(chunk, *others, before=0, after=0, **extra, **params)


def _halo_reader(data: da.Array, axis: int) -> Callable[[Any, Any, int, int], Any] | None:
    """Halo tasks that read a neighbour's frames again from the store, when ``data`` is a plain read.

    A halo copied from a neighbouring chunk ties every chunk's task to its
    neighbours' reads: the graph is a ladder, and dask's ordering walks it
    from several places at once (it starts where its tree of writes or sums
    starts, not at chunk 0), holding 4 to 6 whole input chunks while the tasks
    that need them wait for their other neighbour (e.g. on 13 chunks of
    16 MB, 65 MB held with one thread, 81 MB with two, against 32 MB for a
    walk in time order). When each chunk of ``data`` is one ``getter`` call
    on a store array (what ``open_video`` makes, and ``dask.array.from_array``
    of a store array) the halo is read again instead, by the same call on a
    narrower slice: a chunk's task then depends on its own chunk and on
    small reads of its own, the graph falls apart into independent columns,
    and a chunk's memory is freed as soon as its own task ends. The frames are the same
    bytes, so the result is too; the cost is decoding the neighbour's storage
    chunk again (transiently) for a few frames. Returns ``None`` (copies are
    used) for any other graph.
    """
    from dask._task_spec import DataNode, Task, TaskRef
    from dask.array.core import getter, getter_inline, getter_nofancy

    layer = data.dask.layers.get(data.name)
    deps = data.dask.dependencies.get(data.name, set())
    if layer is None or len(deps) != 1:
        return None
    tasks: dict[Any, Any] = {}

    def task_of(k: Any) -> Any:
        if k not in tasks:
            try:
                tasks[k] = layer[k]
            except Exception:  # noqa: BLE001 -- any layer that cannot give one task: not a plain read
                tasks[k] = None
        return tasks[k]

    def read(chunk_key: Any, new_key: Any, a: int, b: int) -> Any:
        t = task_of(chunk_key)
        if not (isinstance(t, Task) and t.func in (getter, getter_nofancy, getter_inline) and len(t.args) == 2
                and isinstance(t.args[0], TaskRef) and t.args[0].key in deps and isinstance(t.args[1], DataNode)):
            return None
        index = t.args[1].value
        if not (isinstance(index, tuple) and len(index) == data.ndim
                and all(isinstance(s, slice) and s.step in (None, 1) for s in index)):
            return None
        start = index[axis].start or 0
        narrow = index[:axis] + (slice(start + a, start + b),) + index[axis + 1:]
        return Task(new_key, t.func, t.args[0], DataNode(None, narrow), **t.kwargs)

    return read


# --------------------------------------------------------------------------------------------
# the driver


def apply_temporal(
    data: da.Array,
    filt: TemporalFilter,
    *,
    axis: int = 0,
    dtype: Any = None,
    meta: Any = None,
    others: Sequence[da.Array] = (),
    whole_chunks: dict[int, Any] | None = None,
    chunks: tuple | None = None,
    new_axis: Sequence[int] = (),
    shared: Sequence[Any] = (),
    **params: Any,
) -> da.Array:
    """Apply the temporal filter ``filt`` along ``axis`` of ``data``, chunk by chunk, lazily.

    The result equals the kernel applied to the whole recording at once, for
    every chunking, and has exactly the chunks of ``data``. Building it
    computes nothing.

    Parameters
    ----------
    data : dask.array.Array
        Any chunking, along ``axis`` and the other axes.
    filt : TemporalFilter
        The filter (kernel, halo, edge policy).
    axis : int
        The time axis.
    dtype : dtype, optional
        Of the result; default the input's.
    meta : array, optional
        Empty array of the result's type; default of ``dtype`` and of the
        input's array module (NumPy or CuPy).
    others : sequence of dask arrays
        Passed to the kernel block by block without a halo; each must have
        the chunks of ``data``.
    whole_chunks : dict, optional
        For a :data:`WHOLE` halo: chunks of the other axes while time is in
        one chunk (default ``"auto"``: blocks of dask's default size).
    chunks, new_axis : optional
        For a kernel whose output is not the chunk's frames (e.g. per-chunk
        partial sums of lag products, ``halo=(0, maxlag)``, summed
        afterwards): the result's chunks (one block per input block) and the
        positions of the axes it adds, as in ``dask.array.map_blocks``.
        Default: the input's chunks.
    shared : sequence of dask collections
        Results every chunk's task takes whole, after ``others`` (e.g. a
        reference image and the constants derived from it, computed once):
        each a ``dask.delayed`` object or a dask array of one chunk. Not with
        a :data:`WHOLE` halo.
    **params
        Passed to the kernel and to the halo function.

    Returns
    -------
    dask.array.Array

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> from fluoxr.drivers import TemporalFilter, apply_temporal
    >>> def _next_minus_this(window, *, before, after):
    ...     return np.diff(window, axis=0) if after else np.diff(window, axis=0, append=window[-1:])
    >>> lead = TemporalFilter(_next_minus_this, halo=(0, 1), edge="none")
    >>> apply_temporal(da.from_array(np.array([1, 4, 9, 16]), chunks=1), lead).compute().tolist()
    [3, 5, 7, 0]
    """
    if not isinstance(data, da.Array):
        raise TypeError(f"data must be a dask array, got {type(data).__name__}")
    if not isinstance(filt, TemporalFilter):
        raise TypeError(f"filt must be a TemporalFilter, got {type(filt).__name__}")
    if not -data.ndim <= axis < data.ndim:
        raise ValueError(f"axis must be an axis of data (ndim {data.ndim}), got {axis}")
    axis %= data.ndim
    others = list(others)
    for j, o in enumerate(others):
        if not isinstance(o, da.Array) or o.chunks != data.chunks:
            raise ValueError(f"others[{j}] must be a dask array with the chunks of data {data.chunks}, "
                             f"got {getattr(o, 'chunks', type(o).__name__)}")
    dtype = np.dtype(data.dtype if dtype is None else dtype)
    shared = list(shared)
    shared_keys = [_single_key(s, j) for j, s in enumerate(shared)]
    halo = filt.halo_of(**params)
    n_frames = data.shape[axis]
    new_axis = sorted(int(a) for a in new_axis)
    out_ndim = data.ndim + len(new_axis)
    if meta is None:
        meta = _backend.meta_like(data, out_ndim, dtype)
    if halo == WHOLE:
        if shared:
            raise ValueError("shared results are not supported with a WHOLE halo")
        return _whole(data, filt, axis, dtype, meta, others, whole_chunks, params, chunks, new_axis)
    before, after = halo
    out_chunks = data.chunks if chunks is None else tuple(tuple(c) for c in chunks)
    if len(out_chunks) != out_ndim:
        raise ValueError(f"chunks must have {out_ndim} dims (data's and new_axis), got {len(out_chunks)}")

    label = filt.label
    token = dask.base.tokenize(data.name, [o.name for o in others], filt, axis, dtype, params, chunks, new_axis,
                               shared_keys)
    name = f"{label}-{token}"
    head_name, tail_name = f"{label}-head-{token}", f"{label}-tail-{token}"
    reread_name = f"{label}-halo-read-{token}"
    reads = _halo_reader(data, axis) or (lambda *_: None)
    tchunks = data.chunks[axis]
    starts = np.concatenate([[0], np.cumsum(tchunks)[:-1]]).astype(int).tolist()
    plans = [_plan(starts[i], tchunks[i], n_frames, before, after, filt, axis) for i in range(len(tchunks))]
    run = {i: functools.partial(_run_chunk, kernel=filt.kernel, plan=p, params=params) for i, p in enumerate(plans)}
    dsk: dict[Any, Any] = {}
    other_blocks = [r for r in np.ndindex(*data.numblocks[:axis], *data.numblocks[axis + 1:])]
    for rest in other_blocks:
        def key(src: str, i: int, rest: tuple = rest) -> tuple:
            return (src,) + rest[:axis] + (i,) + rest[axis:]

        for i, p in enumerate(plans):
            pieces_before, pieces_after = [], []
            # earlier chunks, nearest last: a whole chunk is referenced, a part of one copied
            j = i - 1
            while j >= 0 and starts[j] + tchunks[j] > p.src_lo:
                a = max(p.src_lo - starts[j], 0)
                reread = reads(key(data.name, j), key(reread_name, j) + (a, tchunks[j]), a, tchunks[j])
                if reread is not None:
                    dsk.setdefault(reread.key, reread)
                    pieces_before.insert(0, reread.key)
                elif a == 0:
                    pieces_before.insert(0, key(data.name, j))
                else:
                    k = key(tail_name, j) + (a,)
                    dsk.setdefault(k, (_copy_frames, key(data.name, j), axis, a, tchunks[j]))
                    pieces_before.insert(0, k)
                j -= 1
            j = i + 1
            while j < len(tchunks) and starts[j] < p.src_hi:
                b = min(p.src_hi - starts[j], tchunks[j])
                reread = reads(key(data.name, j), key(reread_name, j) + (0, b), 0, b)
                if reread is not None:
                    dsk.setdefault(reread.key, reread)
                    pieces_after.append(reread.key)
                elif b == tchunks[j]:
                    pieces_after.append(key(data.name, j))
                else:
                    k = key(head_name, j) + (b,)
                    dsk.setdefault(k, (_copy_frames, key(data.name, j), axis, 0, b))
                    pieces_after.append(k)
                j += 1
            out_key = list(key(name, i))
            for a in new_axis:
                out_key.insert(a + 1, 0)
            dsk[tuple(out_key)] = (run[i], key(data.name, i), pieces_before, pieces_after,
                                 [key(o.name, i) for o in others] + shared_keys)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[data, *others, *shared])
    return da.Array(graph, name, chunks=out_chunks, dtype=dtype, meta=meta)


def _single_key(collection: Any, j: int) -> Any:
    """The one output key of a shared collection (a Delayed, or a dask array of one chunk)."""
    keys = collection.__dask_keys__() if dask.is_dask_collection(collection) else None
    flat = keys
    while isinstance(flat, list) and len(flat) == 1:
        flat = flat[0]
    if keys is None or isinstance(flat, list):
        raise ValueError(f"shared[{j}] must be a dask.delayed object or a dask array of one chunk, "
                         f"got {type(collection).__name__}")
    return flat


def _whole(data: da.Array, filt: TemporalFilter, axis: int, dtype: Any, meta: Any, others: list,
           whole_chunks: dict[int, Any] | None, params: dict[str, Any], chunks: tuple | None,
           new_axis: list[int]) -> da.Array:
    """The kernel once per block of the other axes, on one chunk along time; split back into the input's chunks."""
    run = functools.partial(_run_whole, kernel=filt.kernel, axis=axis, split=filt.split, position=filt.position,
                            params=params)
    target = {i: "auto" for i in range(data.ndim)} if whole_chunks is None else dict(whole_chunks)
    target[axis] = -1
    whole = data.rechunk(target)
    rest = [o.rechunk(whole.chunks) for o in others]
    if chunks is not None or new_axis:
        # a kernel with its own output shape: its blocks are the caller's business
        return da.map_blocks(run, whole, *rest, dtype=dtype, meta=meta, chunks=chunks, new_axis=new_axis or None,
                             name=f"{filt.label}-whole-" + dask.base.tokenize(whole.name, [o.name for o in rest],
                                                                              filt, axis, dtype, params, chunks))
    out = da.map_blocks(run, whole, *rest, dtype=dtype, meta=meta,
                        name=f"{filt.label}-whole-" + dask.base.tokenize(whole.name, [o.name for o in rest], filt,
                                                                         axis, dtype, params))
    # the whole-recording result is split back into the input's chunks
    return out.rechunk(data.chunks) if out.chunks != data.chunks else out
