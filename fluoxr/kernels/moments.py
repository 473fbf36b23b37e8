"""Mergeable moment states: the kernels behind fluoxr's one-pass SOFI moments and cumulants.

A *moment state* of some frames (axis 0 of a block) is a tuple ``(n, mean, M)``:
the number of frames, the per-pixel mean (float64) and the per-pixel central
power sums ``M[k - 2] = sum((x - mean) ** k)`` for ``k = 2 .. max_order``.
States of disjoint sets of frames merge exactly (Pébay 2008, "Formulas for
robust, one-pass parallel computation of covariances and arbitrary-order
statistical moments", eq. 3.1 generalised to any order), so moments of every
order come from one pass over the data in any order of chunks.

Numerical and speed choices (guarded by ``tests/kernels/test_sofi_moments.py``):

- the kernel works on tiles of 512 pixels and blocks of frames of about
  512 KB; within a block the block's mean is subtracted first (two passes,
  the second from cache), so a large offset (``1e6 + uint16``) costs no
  precision (``test_offset_stability``); blocks and chunks are merged with
  Pébay's update, which only multiplies by differences of means;
- the powers are accumulated in one fused loop into arrays allocated inside
  the kernel, which LLVM vectorises (see ``_tile_sums``).

Beside each numba kernel of the moment states stands its array-module
version (suffix ``_xp``: the same layout, float64, Pébay's merge
vectorised over pixels), which :data:`fluoxr._backend.GPU_KERNELS` runs on
CuPy chunks; the kernels without a loop (:func:`state_to_stats`,
:func:`cumulants_from_moments`, :func:`empty_state`) serve both backends.

Also here: time-lagged frame products (pysofi ``calc_moments_with_lag``) and
pixel-pair co-moments (XC-SOFI), merged the same way. No dask, no xarray:
arrays in, arrays out.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numba
import numpy as np
from numba import njit, prange

from .._backend import array_module

__all__ = [
    "central_sums",
    "moment_state",
    "moment_state_xp",
    "empty_state",
    "merge_states",
    "merge_states_xp",
    "merge_all",
    "merge_all_xp",
    "state_to_stats",
    "cumulants_from_moments",
    "segment_states",
    "segment_states_xp",
    "lag_subsets",
    "lag_product_sums",
    "lag_partitions",
    "lag_cumulants_from_moments",
    "pair_comoment_state",
    "merge_pair_states",
]

# pixels handled together by one inner loop (measured best of 256..4096 on a
# 256 x 256 recording); the tile's accumulators stay in L1/L2
_TILE = 512
# frames of one tile processed together: about 512 KB of samples, so that the
# second pass over them reads from L2 (chunks of thousands of frames would
# otherwise be read from memory twice); sub-block states are merged exactly
_BLOCK_BYTES = 2**19
# sample types the numba kernels are compiled for; others are converted (exactly) first
_NATIVE = {np.dtype(np.uint16), np.dtype(np.float32), np.dtype(np.float64)}
_TO_FLOAT32 = {np.dtype(t) for t in (np.bool_, np.uint8, np.int8, np.int16)}
# binomial coefficients for the merges, up to the largest order (fluoxr.sofi.MAX_ORDER)
_COMB = np.array([[math.comb(p, k) for k in range(21)] for p in range(21)], np.float64)


@njit(cache=True, nogil=True)
def _merge_tile(n_a, mean_a, M_a, n_b, mean_b, M_b, w, P, comb):  # pragma: no cover - numba
    # Pebay's update of (n_a, mean_a, M_a) with (n_b, mean_b, M_b), pixel by pixel, in place
    n = n_a + n_b
    tmp = np.empty(P + 1)
    pa = np.empty(P + 1)
    pb = np.empty(P + 1)
    for j in range(w):
        delta = mean_b[j] - mean_a[j]
        ca = -n_b / n * delta
        cb = n_a / n * delta
        pa[0] = 1.0
        pb[0] = 1.0
        for k in range(1, P + 1):
            pa[k] = pa[k - 1] * ca
            pb[k] = pb[k - 1] * cb
        for p in range(2, P + 1):
            s = M_a[p - 2, j] + M_b[p - 2, j] + pa[p] * n_a + pb[p] * n_b  # k = p: M_0 = n
            for k in range(1, p - 1):  # p - k >= 2 (M_1 = 0)
                s += comb[p, k] * (pa[k] * M_a[p - k - 2, j] + pb[k] * M_b[p - k - 2, j])
            tmp[p] = s
        for p in range(2, P + 1):
            M_a[p - 2, j] = tmp[p]
        mean_a[j] += delta * (n_b / n)


@njit(cache=True, nogil=True)
def _tile_sums(x, p0, p1, P, F, comb, mean_out, out):  # pragma: no cover - numba
    # Mean and central power sums of orders 2..P of pixels p0..p1 over all frames of x, frames in
    # blocks of F: per block, the block mean, then sum((x - block mean) ** k) in one fused loop, then
    # Pebay's merge into the running state.
    #
    # The accumulators are arrays allocated here, not arguments: LLVM then knows that they alias
    # neither x nor each other and vectorises the fused loop; with argument arrays it needs a runtime
    # alias check per pair, gives up beyond a few, and the loop runs scalar (2-3x slower).
    t = x.shape[0]
    w = p1 - p0
    rows = max(P - 1, 1)
    mean = np.zeros(w)
    M = np.zeros((rows, w))
    mb = np.zeros(w)
    acc = np.zeros((rows, w))
    a2 = np.zeros(w)
    a3 = np.zeros(w)
    a4 = np.zeros(w)
    a5 = np.zeros(w)
    a6 = np.zeros(w)
    a7 = np.zeros(w)
    a8 = np.zeros(w)
    d = np.zeros(w)
    pw = np.zeros(w)
    n = 0
    for f0 in range(0, t, F):
        f1 = min(t, f0 + F)
        mb[:] = 0.0
        for i in range(f0, f1):
            row = x[i, p0:p1]
            for j in range(w):
                mb[j] += row[j]
        for j in range(w):
            mb[j] /= f1 - f0
        a2[:] = 0.0
        a3[:] = 0.0
        a4[:] = 0.0
        a5[:] = 0.0
        a6[:] = 0.0
        a7[:] = 0.0
        a8[:] = 0.0
        # one loop per order range (the branch is outside the loops); an odd order computes the next one too
        if P == 2:
            for i in range(f0, f1):
                row = x[i, p0:p1]
                for j in range(w):
                    e = row[j] - mb[j]
                    a2[j] += e * e
        elif P <= 4:
            for i in range(f0, f1):
                row = x[i, p0:p1]
                for j in range(w):
                    e = row[j] - mb[j]
                    q = e * e
                    a2[j] += q
                    q *= e
                    a3[j] += q
                    a4[j] += q * e
        elif P <= 6:
            for i in range(f0, f1):
                row = x[i, p0:p1]
                for j in range(w):
                    e = row[j] - mb[j]
                    q = e * e
                    a2[j] += q
                    q *= e
                    a3[j] += q
                    q *= e
                    a4[j] += q
                    q *= e
                    a5[j] += q
                    a6[j] += q * e
        elif P >= 7:
            for i in range(f0, f1):
                row = x[i, p0:p1]
                for j in range(w):
                    e = row[j] - mb[j]
                    q = e * e
                    a2[j] += q
                    q *= e
                    a3[j] += q
                    q *= e
                    a4[j] += q
                    q *= e
                    a5[j] += q
                    q *= e
                    a6[j] += q
                    q *= e
                    a7[j] += q
                    a8[j] += q * e
        if P >= 2:
            acc[0] = a2
        if P >= 3:
            acc[1] = a3
        if P >= 4:
            acc[2] = a4
        if P >= 5:
            acc[3] = a5
        if P >= 6:
            acc[4] = a6
        if P >= 7:
            acc[5] = a7
        if P >= 8:
            acc[6] = a8
        if P > 8:  # orders above 8: one pass per order over the block (rare)
            for k in range(7, P - 1):
                acc[k] = 0.0
            for i in range(f0, f1):
                row = x[i, p0:p1]
                for j in range(w):
                    d[j] = row[j] - mb[j]
                    e2 = d[j] * d[j]
                    e4 = e2 * e2
                    pw[j] = e4 * e4
                for k in range(7, P - 1):
                    a = acc[k]
                    for j in range(w):
                        pw[j] *= d[j]
                        a[j] += pw[j]
        if n == 0:
            mean[:] = mb
            M[:, :] = acc
        else:
            _merge_tile(n, mean, M, f1 - f0, mb, acc, w, P, comb)
        n += f1 - f0
    mean_out[p0:p1] = mean
    for k in range(out.shape[0]):
        out[k, p0:p1] = M[k]


@njit(cache=True, nogil=True)
def _central_sums_serial(x, P, F, comb, mean, out):  # pragma: no cover - numba
    n = x.shape[1]
    for p0 in range(0, n, _TILE):
        _tile_sums(x, p0, min(n, p0 + _TILE), P, F, comb, mean, out)


@njit(cache=True, nogil=True, parallel=True)
def _central_sums_parallel(x, P, F, comb, mean, out):  # pragma: no cover - numba
    n = x.shape[1]
    for it in prange((n + _TILE - 1) // _TILE):
        p0 = it * _TILE
        _tile_sums(x, p0, min(n, p0 + _TILE), P, F, comb, mean, out)


@njit(parallel=True, cache=True)
def _probe(x):  # pragma: no cover - numba
    s = 0.0
    for i in prange(x.size):
        s += x[i]
    return s


# the answer of _parallel_is_safe, decided once under the lock (a property of the installation)
_PARALLEL_LOCK = threading.Lock()
_parallel_safe: bool | None = None


def _decide_parallel() -> bool:
    layer = str(numba.config.THREADING_LAYER).lower()
    if layer == "workqueue":
        # chosen explicitly: not thread-safe, and nothing needs launching to know it
        return False
    try:
        # already loaded by earlier parallel code: ask, without launching anything
        return numba.threading_layer() != "workqueue"
    except ValueError:
        pass
    try:
        # numba loads its threading layer on the first parallel launch; only this thread launches
        # parallel code now (every parallel kernel here waits for this answer behind the lock)
        _probe(np.zeros(4))
        return numba.threading_layer() != "workqueue"
    except Exception:  # pragma: no cover - exotic installations
        return False


def _parallel_is_safe() -> bool:
    """True when numba's threading layer may be entered from several threads at once.

    dask calls kernels from many threads; numba's fallback ``workqueue`` layer
    aborts the process on concurrent parallel launches, so the serial kernel is
    used then. The answer is a property of the installation, decided once and
    without ever launching parallel code from two threads: from
    ``numba.config.THREADING_LAYER`` when it names ``workqueue``, from the
    loaded layer when there is one, else by one launch of a tiny parallel
    function behind a lock that every caller waits on.
    """
    global _parallel_safe
    if _parallel_safe is None:
        with _PARALLEL_LOCK:
            if _parallel_safe is None:
                _parallel_safe = _decide_parallel()
    return _parallel_safe


def _native(x: np.ndarray) -> np.ndarray:
    """``x`` as a C-contiguous array of a dtype the kernels are compiled for (exact conversion)."""
    if x.dtype in _NATIVE:
        return np.ascontiguousarray(x)
    return x.astype(np.float32 if x.dtype in _TO_FLOAT32 else np.float64)


def central_sums(x: np.ndarray, max_order: int, *, frames_per_block: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-column mean and central power sums of a 2-D array ``(frames, pixels)``.

    Returns ``mean`` (pixels,) and ``M`` (max_order - 1, pixels) with
    ``M[k - 2] = sum((x - mean) ** k, axis=0)``, all float64, from one fused
    kernel: pixels in tiles, frames in blocks of about 512 KB per tile (each
    block's mean subtracted first, block states merged exactly), so that every
    sample is read from memory once. ``frames_per_block`` overrides the block
    length (for tests).

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr.kernels.moments import central_sums
    >>> mean, M = central_sums(np.array([[1.0], [3.0]]), 3)
    >>> mean.tolist(), M.ravel().tolist()
    ([2.0], [2.0, 0.0])
    """
    x = np.asarray(x)
    if x.ndim != 2:
        raise ValueError(f"x must be 2-D (frames, pixels), got shape {x.shape}")
    x = _native(x)
    mean = np.zeros(x.shape[1])
    out = np.zeros((max(max_order - 1, 0), x.shape[1]))
    if x.shape[0] == 0 or x.shape[1] == 0:
        return mean, out
    P = max(int(max_order), 1)
    F = frames_per_block or max(16, _BLOCK_BYTES // (_TILE * x.dtype.itemsize))
    if _parallel_is_safe() and x.shape[1] > _TILE:
        # tiles handed out one at a time: with dask's threads (or other processes) on the same cores,
        # a static split would wait for the slowest thread
        with numba.parallel_chunksize(1):
            _central_sums_parallel(x, P, int(F), _COMB, mean, out)
    else:
        _central_sums_serial(x, P, int(F), _COMB, mean, out)
    return mean, out


State = tuple  # (n: int, mean: ndarray, M: ndarray (max_order - 1, ...))

# bytes of one float64 temporary of a batch of frames of moment_state_xp: large enough that a typical
# chunk (96 MB of uint16 samples, 384 MB as float64) is one batch, so no merges inside a chunk
_BATCH_BYTES = 2**29


def empty_state(shape: Sequence[int], max_order: int, xp: Any = np) -> State:
    """The state of no frames (the identity of :func:`merge_states`), with arrays of the module ``xp``."""
    return (0, xp.zeros(tuple(shape)), xp.zeros((max(max_order - 1, 0),) + tuple(shape)))


def moment_state(block: np.ndarray, max_order: int) -> State:
    """Moment state of the frames of ``block`` (axis 0); other axes are pixels.

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr.kernels.moments import moment_state
    >>> n, mean, M = moment_state(np.arange(8.0).reshape(4, 2), 2)
    >>> n, mean.tolist(), M[0].tolist()
    (4, [3.0, 4.0], [20.0, 20.0])
    """
    block = np.asarray(block)
    rest = block.shape[1:]
    mean, M = central_sums(block.reshape(block.shape[0], -1), max_order)
    return (int(block.shape[0]), mean.reshape(rest), M.reshape((M.shape[0],) + rest))


def moment_state_xp(block: Any, max_order: int, *, frames_per_batch: int | None = None) -> State:
    """:func:`moment_state` with array-module operations (the GPU's: numba cannot run there), float64.

    Frames are taken in batches (``frames_per_batch``, default: float64
    temporaries of about 512 MB); per batch the batch mean is subtracted
    first (so a large offset costs no precision), the central power sums of
    orders 2..``max_order`` are summed from one running product, and batch
    states are merged exactly (:func:`merge_states_xp`).

    Examples
    --------
    >>> import numpy as np
    >>> n, mean, M = moment_state_xp(np.arange(8.0).reshape(4, 2), 2)
    >>> n, mean.tolist(), M[0].tolist()
    (4, [3.0, 4.0], [20.0, 20.0])
    """
    xp = array_module(block)
    rest = tuple(block.shape[1:])
    rows = max(int(max_order) - 1, 0)
    t = int(block.shape[0])
    if t == 0:
        return empty_state(rest, max_order, xp)
    npx = max(int(np.prod(rest, dtype=np.int64)), 1)
    step = int(frames_per_batch) if frames_per_batch else max(1, _BATCH_BYTES // (8 * npx))
    state = None
    for f0 in range(0, t, step):
        x = block[f0 : f0 + step].astype(xp.float64)  # a copy: changed in place below
        mean = x.mean(axis=0)
        x -= mean
        M = xp.empty((rows,) + rest)
        if rows:
            q = x * x
            M[0] = q.sum(axis=0)
            for r in range(1, rows):
                q *= x
                M[r] = q.sum(axis=0)
        part = (int(x.shape[0]), mean, M)
        state = part if state is None else merge_states_xp(state, part)
    return state


def merge_states(a: State, b: State) -> State:
    """Exact state of the union of two disjoint sets of frames (Pébay's pairwise update).

    With ``delta = mean_b - mean_a`` and ``n = n_a + n_b``::

        M_p = sum_{k=0}^{p} C(p, k) delta^k [(-n_b/n)^k M_{p-k,a} + (n_a/n)^k M_{p-k,b}]

    where ``M_0 = n`` and ``M_1 = 0`` for each side. The inputs are not modified.
    """
    na, ma, Ma = a
    nb, mb, Mb = b
    if nb == 0:
        return a
    if na == 0:
        return b
    shape = ma.shape
    P = Ma.shape[0] + 1
    mean = np.array(ma, dtype=np.float64).reshape(-1)
    M = np.array(Ma, dtype=np.float64).reshape((max(P - 1, 0), mean.size))
    if P >= 2:
        _merge_tile(na, mean, M, nb, np.ascontiguousarray(mb, dtype=np.float64).reshape(-1),
                    np.ascontiguousarray(Mb, dtype=np.float64).reshape(P - 1, -1), mean.size, P, _COMB)
    else:
        mean += (np.asarray(mb).reshape(-1) - mean) * (nb / (na + nb))
    return (na + nb, mean.reshape(shape), M.reshape(Ma.shape))


def _merged_mean(na: int, ma: Any, nb: int, mb: Any) -> tuple[int, Any, Any]:
    """Frame count, difference of means and mean of two merged states (Chan's update; both non-empty)."""
    n = na + nb
    delta = mb - ma
    return n, delta, ma + delta * (nb / n)


def merge_states_xp(a: State, b: State) -> State:
    """:func:`merge_states` with array-module operations, vectorised over pixels (the GPU's).

    The formula and the order of its operations are those of the numba
    kernel. Inputs are not modified.
    """
    na, ma, Ma = a
    nb, mb, Mb = b
    if nb == 0:
        return a
    if na == 0:
        return b
    n, delta, mean = _merged_mean(na, ma, nb, mb)
    P = Ma.shape[0] + 1
    if P < 2:
        return (n, mean, Ma.copy())
    ca = delta * (-nb / n)
    cb = delta * (na / n)
    pa, pb = [None, ca], [None, cb]
    for _ in range(2, P + 1):
        pa.append(pa[-1] * ca)
        pb.append(pb[-1] * cb)
    M = array_module(Ma).empty_like(Ma)
    for p in range(2, P + 1):
        s = Ma[p - 2] + Mb[p - 2] + pa[p] * na + pb[p] * nb  # k = p: M_0 = n
        for k in range(1, p - 1):  # p - k >= 2 (M_1 = 0)
            s += math.comb(p, k) * (pa[k] * Ma[p - k - 2] + pb[k] * Mb[p - k - 2])
        M[p - 2] = s
    return (n, mean, M)


def merge_all(states: Sequence[State], *, merge: Callable[[State, State], State] = merge_states) -> State:
    """Merge a sequence of states (left to right) with ``merge``."""
    states = list(states)
    if not states:
        raise ValueError("states must hold at least one state")
    out = states[0]
    for s in states[1:]:
        out = merge(out, s)
    return out


def merge_all_xp(states: Sequence[State]) -> State:
    """:func:`merge_all` with :func:`merge_states_xp` (the GPU's)."""
    return merge_all(states, merge=merge_states_xp)


def state_to_stats(state: State) -> Any:
    """``(max_order + 1, ...)`` float64: row 0 the mean, row k the central moment of order k.

    Row 1 (the first central moment) is 0 by definition. A state of no frames
    gives NaN. Arrays of the state's module (NumPy or CuPy).
    """
    n, mean, M = state
    xp = array_module(mean)
    out = xp.empty((M.shape[0] + 2,) + tuple(mean.shape))
    if n == 0:
        out[...] = np.nan
        return out
    out[0] = mean
    out[1] = 0.0
    out[2:] = M / n
    return out


def cumulants_from_moments(m: Any) -> Any:
    """Cumulants of orders ``1..p`` from moments of orders ``1..p`` (axis 0), in ``m``'s array module.

    The moment-cumulant recursion of pysofi's ``calc_cumulants_from_moments``::

        k_n = m_n - sum_{i=1}^{n-1} C(n-1, i) k_{n-i} m_i

    With central moments (``m_1 = 0``) it gives ``k_1 = 0``, ``k_2 = m_2``,
    ``k_4 = m_4 - 3 m_2^2`` and ``k_6 = m_6 - 15 m_4 m_2 - 10 m_3^2 + 30 m_2^3``.

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr.kernels.moments import cumulants_from_moments
    >>> cumulants_from_moments(np.array([0.0, 2.0, 0.0, 12.0]))[3]   # Gaussian: k4 = 0
    np.float64(0.0)
    """
    xp = array_module(m)
    m = xp.asarray(m, dtype=xp.float64)
    k = xp.empty_like(m)
    for n in range(1, m.shape[0] + 1):
        acc = m[n - 1].copy()
        for i in range(1, n):
            acc -= math.comb(n - 1, i) * k[n - i - 1] * m[i - 1]
        k[n - 1] = acc
    return k


# --------------------------------------------------------------------------------------------
# segmented states: frames grouped in blocks given by boundaries along time


def segment_states(block: Any, t0: int, bounds: Any, max_order: int, *,
                   state: Callable[[Any, int], State] = moment_state) -> dict[int, State]:
    """Moment states (by ``state``) of the parts of ``block`` (frames ``t0 ..``) in each segment ``[bounds[k], bounds[k+1])``.

    Only segments that overlap the block appear in the result.
    """
    bounds = np.asarray(bounds)
    t1 = t0 + block.shape[0]
    out: dict[int, State] = {}
    for k in range(len(bounds) - 1):
        a, b = max(int(bounds[k]), t0), min(int(bounds[k + 1]), t1)
        if a < b:
            out[k] = state(block[a - t0 : b - t0], max_order)
    return out


def segment_states_xp(block: Any, t0: int, bounds: Any, max_order: int) -> dict[int, State]:
    """:func:`segment_states` with :func:`moment_state_xp` (the GPU's)."""
    return segment_states(block, t0, bounds, max_order, state=moment_state_xp)


# --------------------------------------------------------------------------------------------
# time-lagged products (pysofi calc_moments_with_lag)


def lag_subsets(n_lags: int) -> list[tuple[int, ...]]:
    """The index subsets of the lag series whose moments pysofi computes, parents first.

    For ``n_lags > 3``: every combination of 2 .. ``n_lags - 2`` indices plus the
    prefixes of ``n_lags - 1`` and ``n_lags`` indices; else the prefixes
    ``(0, 1)`` .. ``(0, .., n_lags - 1)``. These are exactly the moments the
    lag cumulants up to order ``n_lags`` need.
    """
    import itertools

    if n_lags > 3:
        subs = [c for size in range(2, n_lags - 1) for c in itertools.combinations(range(n_lags), size)]
        subs += [tuple(range(n_lags - 1)), tuple(range(n_lags))]
    else:
        subs = [tuple(range(size)) for size in range(2, n_lags + 1)]
    return subs


def _product_plan(subsets: Sequence[tuple[int, ...]], n_lags: int) -> tuple[np.ndarray, np.ndarray, list]:
    """Every product a subset needs, each computed from its prefix with one multiply.

    Returns ``parent`` and ``last`` (per node: the node holding the product of
    all but the last index, -1 for a single index; and that last index) and,
    per subset, its node.
    """
    nodes: dict[tuple[int, ...], int] = {}
    parent: list[int] = []
    last: list[int] = []

    def node(sub: tuple[int, ...]) -> int:
        if sub in nodes:
            return nodes[sub]
        p = node(sub[:-1]) if len(sub) > 1 else -1
        nodes[sub] = len(parent)
        parent.append(p)
        last.append(sub[-1])
        return nodes[sub]

    for j in range(n_lags):
        node((j,))
    which = [node(tuple(s)) for s in subsets]
    return np.asarray(parent, np.int64), np.asarray(last, np.int64), which


@njit(cache=True, nogil=True)
def _lag_products(x, mean, lags, n_starts, parent, last, which, out):  # pragma: no cover - numba
    # x (t, P), mean (P,), out (n_subsets, P) accumulates sum over starts r < n_starts
    # of prod_{j in subset} (x[r + lags[j]] - mean)
    P = x.shape[1]
    nn = parent.shape[0]
    for p0 in range(0, P, _TILE):
        p1 = min(P, p0 + _TILE)
        w = p1 - p0
        prod = np.empty((nn, w))
        acc = np.zeros((which.shape[0], w))
        for r in range(n_starts):
            for q in range(nn):
                row = x[r + lags[last[q]], p0:p1]
                pq = prod[q]
                if parent[q] < 0:
                    for j in range(w):
                        pq[j] = row[j] - mean[p0 + j]
                else:
                    pp = prod[parent[q]]
                    for j in range(w):
                        pq[j] = pp[j] * (row[j] - mean[p0 + j])
            for s in range(which.shape[0]):
                src = prod[which[s]]
                a = acc[s]
                for j in range(w):
                    a[j] += src[j]
        out[:, p0:p1] += acc


def lag_product_sums(block: np.ndarray, mean: np.ndarray, lags: Sequence[int], n_starts: int,
                     subsets: Sequence[tuple[int, ...]]) -> np.ndarray:
    """``sum_{r < n_starts} prod_{j in S} (block[r + lags[j]] - mean)`` for each subset ``S``.

    ``block`` holds frames along axis 0 (it must reach frame ``n_starts - 1 +
    max(lags)``); returns ``(len(subsets),) + block.shape[1:]`` float64.
    """
    block = np.asarray(block)
    rest = block.shape[1:]
    x = _native(block.reshape(block.shape[0], -1))
    out = np.zeros((len(subsets), x.shape[1]))
    if n_starts > 0 and len(subsets):
        if n_starts - 1 + max(lags) >= x.shape[0]:
            raise ValueError(f"block of {x.shape[0]} frames is too short for {n_starts} starts at lags {list(lags)}")
        parent, last, which = _product_plan(subsets, len(lags))
        _lag_products(x, np.ascontiguousarray(mean, dtype=np.float64).reshape(-1), np.asarray(lags, np.int64),
                      int(n_starts), parent, last, np.asarray(which, np.int64), out)
    return out.reshape((len(subsets),) + rest)


def lag_partitions(order: int) -> list[list[tuple[int, ...]]]:
    """Partitions of ``range(order)`` into at least two blocks, each of at least two elements.

    These are the terms of the joint cumulant of ``order`` zero-mean
    variables (partitions with a singleton vanish because each variable has
    mean zero).
    """
    out: list[list[tuple[int, ...]]] = []

    def rec(i: int, blocks: list[list[int]]) -> None:
        if i == order:
            if len(blocks) >= 2 and all(len(b) >= 2 for b in blocks):
                out.append([tuple(b) for b in blocks])
            return
        for b in blocks:
            b.append(i)
            rec(i + 1, blocks)
            b.pop()
        blocks.append([i])
        rec(i + 1, blocks)
        blocks.pop()

    rec(0, [])
    return out


def lag_cumulants_from_moments(m: np.ndarray, subsets: Sequence[tuple[int, ...]], n_lags: int) -> np.ndarray:
    """Lag cumulants of orders ``2 .. n_lags`` from the lag moments of ``subsets`` (axis 0).

    ``k_n = sum over partitions P of {0..n-1} into blocks of >= 2 elements of
    (-1)^(|P|-1) (|P|-1)! prod_{B in P} m_B`` (pysofi's
    ``calc_cumulants_from_moments_with_lag``, with ``math.factorial`` where
    pysofi calls ``np.math.factorial``, which NumPy 2 removed).
    """
    index = {tuple(s): i for i, s in enumerate(subsets)}
    m = np.asarray(m, dtype=np.float64)
    out = np.empty((n_lags - 1,) + m.shape[1:])
    for order in range(2, n_lags + 1):
        acc = m[index[tuple(range(order))]].copy()
        for part in lag_partitions(order):
            coef = (-1) ** (len(part) - 1) * math.factorial(len(part) - 1)
            term = m[index[part[0]]].copy()
            for b in part[1:]:
                term *= m[index[b]]
            acc += coef * term
        out[order - 2] = acc
    return out


# --------------------------------------------------------------------------------------------
# pixel-pair co-moments (XC-SOFI), merged like second-order moment states


@njit(cache=True, nogil=True)
def _pair_sums(x, mean, pairs, out):  # pragma: no cover - numba
    # x (t, H, W); pairs (n, 4) = (dy1, dx1, dy2, dx2); out (n, H, W) accumulates
    # sum_t (x[t, p + u] - mean[p + u]) * (x[t, p + v] - mean[p + v]) where both are inside.
    #
    # Frames outside, pairs inside: each frame is read from memory once and centred once (d), and the
    # pairs' products run over it while it sits in L1 (the other order read the whole chunk once per
    # pair). The rows are sliced to the pair's overlap first, so the inner loop's indices are loop
    # counters (never negative: no wrap-around check per element) and the loop is vectorised. Every sum
    # still adds the frames in order, so the result is the same to the bit as the plain loop's.
    t, H, W = x.shape
    n = pairs.shape[0]
    d = np.empty((H, W))
    for i in range(t):
        for yy in range(H):
            xr_ = x[i, yy]
            mr = mean[yy]
            dr = d[yy]
            for xx in range(W):
                dr[xx] = xr_[xx] - mr[xx]
        for q in range(n):
            dy1, dx1, dy2, dx2 = pairs[q, 0], pairs[q, 1], pairs[q, 2], pairs[q, 3]
            y0 = max(0, -dy1, -dy2)
            y1 = min(H, H - dy1, H - dy2)
            x0 = max(0, -dx1, -dx2)
            x1 = min(W, W - dx1, W - dx2)
            for yy in range(y0, y1):
                r1 = d[yy + dy1, x0 + dx1 : x1 + dx1]
                r2 = d[yy + dy2, x0 + dx2 : x1 + dx2]
                o = out[q, yy, x0:x1]
                for j in range(x1 - x0):
                    o[j] += r1[j] * r2[j]


def pair_comoment_state(block: np.ndarray, pairs: np.ndarray) -> State:
    """State ``(n, mean, C)`` of pixel-pair co-moments of the frames in ``block`` ``(t, [...], H, W)``.

    ``C[q, ..., y, x] = sum_t (block[t, y+dy1, x+dx1] - mean) * (block[t, y+dy2, x+dx2] - mean)``
    for ``pairs[q] = (dy1, dx1, dy2, dx2)``; positions where a pixel of the
    pair falls outside the frame hold 0.
    """
    block = np.asarray(block)
    t = block.shape[0]
    lead = block.shape[1:-2]
    H, W = block.shape[-2:]
    x = _native(block.reshape((t, -1, H, W)))
    mean, _ = central_sums(x.reshape(t, -1), 1)
    mean = mean.reshape(x.shape[1:])
    pairs = np.ascontiguousarray(pairs, dtype=np.int64).reshape(-1, 4)
    C = np.zeros((pairs.shape[0], x.shape[1], H, W))
    if t:
        for c in range(x.shape[1]):
            _pair_sums(np.ascontiguousarray(x[:, c]), mean[c], pairs, C[:, c])
    return (t, mean.reshape(lead + (H, W)), C.reshape((pairs.shape[0],) + lead + (H, W)))


def _pair_view(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """``img[..., y + dy, x + dx]`` on the full grid (zeros outside)."""
    out = np.zeros_like(img)
    H, W = img.shape[-2:]
    ys, yd = slice(max(0, dy), min(H, H + dy)), slice(max(0, -dy), min(H, H - dy))
    xs, xd = slice(max(0, dx), min(W, W + dx)), slice(max(0, -dx), min(W, W - dx))
    out[..., yd, xd] = img[..., ys, xs]
    return out


def merge_pair_states(a: State, b: State, pairs: np.ndarray) -> State:
    """Exact merge of two pair co-moment states: ``C = C_a + C_b + n_a n_b / n * d(p+u) d(p+v)``."""
    na, ma, Ca = a
    nb, mb, Cb = b
    if nb == 0:
        return a
    if na == 0:
        return b
    n, delta, mean = _merged_mean(na, ma, nb, mb)
    C = Ca + Cb
    f = na * nb / n
    for q, (dy1, dx1, dy2, dx2) in enumerate(np.asarray(pairs).reshape(-1, 4)):
        C[q] += f * _pair_view(delta, int(dy1), int(dx1)) * _pair_view(delta, int(dy2), int(dx2))
    return (n, mean, C)
