"""Selected frames gathered into one chunk, and a barrier that makes a video's reads wait for a result.

Two small graph tools for analyses that need a sample of the recording
before they can process it chunk by chunk (motion correction builds its
reference from ``n_reference_frames`` frames spread over the recording):

- :func:`gather_frames` puts frames ``indices`` into one chunk. When the
  input is a plain read of a store (``open_video``, ``from_array``) each run
  chunk that holds requested frames is read again once, by a narrow read
  from its first to its last requested frame (the temporal driver's
  ``_halo_reader``), and only those frames are kept: one decode per storage
  chunk, however many frames it gives, and no chunk of the recording held
  once its frames are picked; otherwise the frames are copied out of their
  chunks.
- :func:`after` returns the same array whose reads wait for ``barrier``
  (``dask.graph_manipulation.bind`` with a seed fixed by both names, so two
  calls on the same pair share their keys: a chunk read once serves the
  estimate of its shifts and their application). Without it, dask reads
  every chunk of the recording while the one long task every chunk depends
  on (the reference) runs, and holds them all.

Examples
--------
>>> import numpy as np, dask.array as da
>>> from fluoxr.drivers.gather import gather_frames
>>> x = da.from_array(np.arange(10.0), chunks=3)
>>> gather_frames(x, [0, 4, 5, 9]).compute().tolist()
[0.0, 4.0, 5.0, 9.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import dask
import dask.array as da
import numpy as np
from dask.highlevelgraph import HighLevelGraph

from .. import _backend
from .temporal import _concat, _copy_frames, _halo_reader

__all__ = ["after", "gather_frames"]


def _by_chunk(indices: np.ndarray, starts: np.ndarray) -> dict[int, np.ndarray]:
    """``{chunk: sorted distinct offsets inside it}`` of the frames ``indices``, chunks in increasing order."""
    chunk = np.searchsorted(starts, indices, side="right") - 1
    return {int(c): np.unique(indices[chunk == c] - starts[c]) for c in np.unique(chunk)}


def _pick_frames(block: Any, axis: int, offsets: np.ndarray) -> Any:
    # a copy: a view would keep the whole span (up to a chunk) in memory
    return _backend.array_module(block).take(block, offsets, axis=axis)


def _concat_take(parts: Sequence[Any], axis: int, order: np.ndarray | None) -> Any:
    out = _concat(parts, axis)
    return out if order is None else _backend.array_module(out).take(out, order, axis=axis)


def gather_frames(data: da.Array, indices: Sequence[int], *, axis: int = 0) -> da.Array:
    """Frames ``indices`` of ``data`` along ``axis``, in one chunk along that axis (the other axes' chunks kept).

    Parameters
    ----------
    data : dask.array.Array
    indices : sequence of int
        Frames to take, in order, each in ``[0, data.shape[axis])``.
    axis : int
        The time axis.

    Returns
    -------
    dask.array.Array
        ``len(indices)`` frames in one chunk along ``axis``.

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> x = da.from_array(np.arange(12).reshape(6, 2), chunks=(2, 2))
    >>> gather_frames(x, [1, 2, 5]).chunks
    ((3,), (2,))
    """
    if not isinstance(data, da.Array):
        raise TypeError(f"data must be a dask array, got {type(data).__name__}")
    axis %= data.ndim
    idx = np.asarray(list(indices), dtype=np.int64)
    n = data.shape[axis]
    if idx.ndim != 1 or idx.size == 0 or (idx < 0).any() or (idx >= n).any():
        raise ValueError(f"indices must be a non-empty list of frames in [0, {n}), got {idx.tolist()[:10]}")
    tchunks = data.chunks[axis]
    starts = np.concatenate([[0], np.cumsum(tchunks)[:-1]]).astype(np.int64)
    # one read per chunk that holds requested frames (the span from its first to its last one), not one per
    # run of frames: a store decodes a whole storage chunk for any frame of it, so 300 frames spread over a
    # recording of 10 chunks cost 10 decodes, not 300
    groups = _by_chunk(idx, starts)
    wanted = np.concatenate([starts[c] + off for c, off in groups.items()])
    order = None if np.array_equal(wanted, idx) else np.searchsorted(wanted, idx)
    token = dask.base.tokenize(data.name, idx, axis)
    name, span, part = f"gather-frames-{token}", f"gather-frames-span-{token}", f"gather-frames-part-{token}"
    reads = _halo_reader(data, axis) or (lambda *_: None)
    dsk: dict[Any, Any] = {}
    for rest in np.ndindex(*data.numblocks[:axis], *data.numblocks[axis + 1:]):
        def key(src: str, i: int, rest: tuple = rest) -> tuple:
            return (src,) + rest[:axis] + (i,) + rest[axis:]

        pieces = []
        for c, off in groups.items():
            a, b = int(off[0]), int(off[-1]) + 1
            k = key(span, c)
            reread = reads(key(data.name, c), k, a, b)
            if reread is not None:
                dsk[k] = reread
            else:
                dsk[k] = (_copy_frames, key(data.name, c), axis, a, b)
            dsk[key(part, c)] = (_pick_frames, k, axis, off - a)
            pieces.append(key(part, c))
        dsk[key(name, 0)] = (_concat_take, pieces, axis, order)
    graph = HighLevelGraph.from_collections(name, dsk, dependencies=[data])
    chunks = data.chunks[:axis] + ((idx.size,),) + data.chunks[axis + 1:]
    return da.Array(graph, name, chunks=chunks, dtype=data.dtype, meta=data._meta)


def after(data: da.Array, barrier: Any) -> da.Array:
    """``data`` with every read made to wait for ``barrier`` (a dask collection); same values and chunks.

    Two calls with the same ``data`` and ``barrier`` give the same keys.

    Examples
    --------
    >>> import numpy as np, dask.array as da
    >>> x = da.from_array(np.arange(4.0), chunks=2)
    >>> ref = x.sum()
    >>> y = after(x, ref)
    >>> y.name == after(x, ref).name, y.compute().tolist()
    (True, [0.0, 1.0, 2.0, 3.0])
    """
    from dask.graph_manipulation import bind

    seed = dask.base.tokenize(data.name, dask.base.tokenize(barrier))
    # assume_layers=False: a rechunked input has layers whose keys the fast, layer-level cloning misses
    return bind(data, barrier, seed=seed, assume_layers=False)
