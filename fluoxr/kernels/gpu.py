"""GPU kernels: the same computations as the CPU (numba) kernels, written against an array module.

Every function takes its array module ``xp`` from its input
(:func:`fluoxr._backend.array_module`: ``cupy`` for CuPy arrays, ``numpy``
for NumPy arrays) and uses only operations that NumPy and CuPy both have,
with the SciPy twins from :func:`fluoxr._backend.ndimage_module` and
:func:`fluoxr._backend.sparse_module` (``cupyx.scipy.*`` on the GPU). So
every line here also runs on NumPy: the tests run these kernels with NumPy
standing in for CuPy and compare them with the CPU kernels
(``tests/test_gpu_emulated.py``); ``tests/test_gpu.py`` does the same on a
GPU. Arrays in, arrays out; no dask, no xarray.

Contents, each the twin of a CPU kernel:

- moment states (:mod:`fluoxr.kernels.moments`): the same ``(n, mean, M)``
  layout, float64, Pébay merges vectorised over pixels, so the reductions
  in :mod:`fluoxr.sofi` combine them with the same steps;
- Fourier interpolation (:func:`fluoxr.kernels.sofi.interpolate_frames`):
  the operators ``A``, ``B`` of :func:`fluoxr.kernels.sofi.finterp_operators`
  (the mirror, DFT and interpolating inverse DFT folded into one complex
  matrix per axis), applied as batched matrix products on the device;
- oscillation detection (:mod:`fluoxr.kernels.oscillations`): the gradient
  sign, the 8-neighbour vote by shifted sums of edge-padded frames,
  8-connected components with ``ndimage.label`` (one call for a batch of
  frames; the structuring element connects nothing across frames) and the
  size filter by ``bincount``;
- trace extraction (:func:`fluoxr.kernels.extract.weighted_sums`): one
  sparse CSR matrix product per batch of frames, CuPy's (cuSPARSE) or
  torch's, accumulating in float64;
- baseline filters (:mod:`fluoxr.kernels.temporal`): suite2p's maximin
  (Gaussian, minimum and maximum filters with edge replication), the
  reflecting Gaussian and the percentile, with the same halos.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._backend import array_module, import_torch, ndimage_module, sparse_module, to_xp, xp_by_name
from . import sofi as _ksofi
from . import temporal as _ktemporal

__all__ = [
    "moment_state",
    "empty_state",
    "merge_states",
    "merge_all",
    "state_to_stats",
    "cumulants_from_moments",
    "segment_states",
    "finterp_operator",
    "interpolate_frames",
    "gradient_sign",
    "neighbour_vote",
    "vote_and_filter",
    "sparse_weights",
    "weighted_sums",
    "maximin",
    "gaussian_reflect",
    "percentile_rows",
]

# bytes of one float64 temporary of a batch of frames (moments, extraction): large enough that a
# typical chunk (96 MB of uint16 samples, 384 MB as float64) is one batch, so no merges inside a chunk
_BATCH_BYTES = 2**29

State = tuple  # (n: int, mean: ndarray, M: ndarray (max_order - 1, ...)), as fluoxr.kernels.moments


# --------------------------------------------------------------------------------------------
# moment states (twins of fluoxr.kernels.moments)


def empty_state(shape: Sequence[int], max_order: int, xp: Any = np) -> State:
    """The state of no frames (the identity of :func:`merge_states`)."""
    return (0, xp.zeros(tuple(shape)), xp.zeros((max(max_order - 1, 0),) + tuple(shape)))


def moment_state(block: Any, max_order: int, *, frames_per_batch: int | None = None) -> State:
    """Moment state ``(n, mean, M)`` of the frames of ``block`` (axis 0), float64, as :func:`fluoxr.kernels.moments.moment_state`.

    Frames are taken in batches (``frames_per_batch``, default: float64
    temporaries of about 512 MB); per batch the batch mean is subtracted
    first (so a large offset costs no precision), the central power sums of
    orders 2..``max_order`` are summed from one running product, and batch
    states are merged exactly (:func:`merge_states`).

    Examples
    --------
    >>> import numpy as np
    >>> n, mean, M = moment_state(np.arange(8.0).reshape(4, 2), 2)
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
        state = part if state is None else merge_states(state, part)
    return state


def merge_states(a: State, b: State) -> State:
    """Exact state of the union of two disjoint sets of frames: Pébay's update, vectorised over pixels.

    The formula and the order of its operations are those of
    :func:`fluoxr.kernels.moments.merge_states`. Inputs are not modified.
    """
    na, ma, Ma = a
    nb, mb, Mb = b
    if nb == 0:
        return a
    if na == 0:
        return b
    n = na + nb
    delta = mb - ma
    mean = ma + delta * (nb / n)
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


def merge_all(states: Sequence[State]) -> State:
    """Merge a sequence of states (left to right)."""
    states = list(states)
    if not states:
        raise ValueError("states must hold at least one state")
    out = states[0]
    for s in states[1:]:
        out = merge_states(out, s)
    return out


def state_to_stats(state: State) -> Any:
    """``(max_order + 1, ...)`` float64: row 0 the mean, row k the central moment of order k (NaN for no frames)."""
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
    """Cumulants of orders ``1..p`` from moments of orders ``1..p`` (axis 0), as :func:`fluoxr.kernels.moments.cumulants_from_moments`."""
    xp = array_module(m)
    m = m.astype(xp.float64, copy=False)
    k = xp.empty_like(m)
    for n in range(1, m.shape[0] + 1):
        acc = m[n - 1].copy()
        for i in range(1, n):
            acc -= math.comb(n - 1, i) * k[n - i - 1] * m[i - 1]
        k[n - 1] = acc
    return k


def segment_states(block: Any, t0: int, bounds: Any, max_order: int) -> dict[int, State]:
    """Moment states of the parts of ``block`` (frames ``t0 ..``) in each segment ``[bounds[k], bounds[k+1])``."""
    bounds = np.asarray(bounds)
    t1 = t0 + block.shape[0]
    out: dict[int, State] = {}
    for k in range(len(bounds) - 1):
        a, b = max(int(bounds[k]), t0), min(int(bounds[k + 1]), t1)
        if a < b:
            out[k] = moment_state(block[a - t0 : b - t0], max_order)
    return out


# --------------------------------------------------------------------------------------------
# Fourier interpolation (twin of fluoxr.kernels.sofi.interpolate_frames)


def finterp_operator(h: int, w: int, factor: int, which: int, xp_name: str) -> Any:
    """Operator ``A`` (``which=0``) or ``B`` (``which=1``) of :func:`fluoxr.kernels.sofi.finterp_operators`, on the device of ``xp_name``."""
    return to_xp(_ksofi.finterp_operators(h, w, factor)[which], xp_name)


def interpolate_frames(frames: Any, A: Any, B: Any, *, batch: int = 64) -> Any:
    """``|A @ frame @ B|`` for every frame (last two axes) of ``frames``, float64 (pysofi's interpolation).

    ``A`` and ``B`` are the complex operators of
    :func:`fluoxr.kernels.sofi.finterp_operators` as arrays of the frames'
    module. Frames are processed ``batch`` at a time to bound the complex
    temporaries.
    """
    xp = array_module(frames)
    lead = tuple(frames.shape[:-2])
    h, w = frames.shape[-2:]
    flat = frames.reshape((-1, h, w))
    out = xp.empty((flat.shape[0], A.shape[0], B.shape[1]))
    for i in range(0, flat.shape[0], batch):
        chunk = flat[i : i + batch].astype(xp.float64)
        out[i : i + batch] = xp.abs(A @ chunk @ B)
    return out.reshape(lead + tuple(out.shape[1:]))


# --------------------------------------------------------------------------------------------
# oscillation detection (twins of fluoxr.kernels.oscillations)


def gradient_sign(block: Any, first: int, core: tuple[int, int], n_frames: int, *, k: int = 1,
                  spacing: float | None = 2, lowmem: bool = False, mask: Any = None,
                  batch_bytes: float = 2**28) -> Any:
    """Sign (int8) of the temporal gradient of the mean-normalised frames ``core``; see :func:`fluoxr.kernels.oscillations.gradient_sign`.

    The operations of the CPU kernel's NumPy reference
    (``_gradient_sign_numpy``), in the same order and dtypes: the frame mean
    (``mean`` over the last two axes: float64 for integer videos, whose sums
    are exact, so the means equal the CPU's bit for bit), the division, the
    difference, the division by ``spacing * (b - a)``; NaN gives 0.
    """
    xp = array_module(block)
    c0, c1 = int(core[0]), int(core[1])
    k = int(k)
    out = xp.zeros((max(c1 - c0, 0),) + tuple(block.shape[1:]), xp.int8)
    if c1 <= c0:
        return out
    if n_frames < 2:
        raise ValueError(f"n_frames must be at least 2 to take a temporal gradient, got {n_frames}")
    lo_all, hi_all = max(c0 - k, 0), min(c1 - 1 + k, n_frames - 1)
    if lo_all < first or hi_all - first >= block.shape[0]:
        raise ValueError(f"block holds frames {first}..{first + block.shape[0] - 1} but frames "
                         f"{lo_all}..{hi_all} are needed")
    frame_px = int(np.prod(block.shape[1:], dtype=np.int64))
    step = max(1, int(batch_bytes // max(frame_px * 8 * 3, 1)))
    for u0 in range(c0, c1, step):
        u1 = min(c1, u0 + step)
        lo, hi = max(u0 - k, 0), min(u1 - 1 + k, n_frames - 1)
        part = block[lo - first : hi - first + 1]
        means = part.mean(axis=(-2, -1))
        f = part / means[..., None, None]
        t = np.arange(u0, u1)
        a = np.maximum(t - k, 0)
        b = np.minimum(t + k, n_frames - 1)
        diff = f[xp.asarray(b - lo)] - f[xp.asarray(a - lo)]
        if spacing is not None:
            span = b - a
            if np.all(span == span[0]):
                diff = diff / (float(spacing) * int(span[0]))
            else:
                for i in range(diff.shape[0]):
                    diff[i] = diff[i] / (float(spacing) * int(span[i]))
        if lowmem:
            diff = xp.round(diff, 3).astype(xp.float16)
        s = (diff > 0).astype(xp.int8) - (diff < 0).astype(xp.int8)
        if mask is not None:
            m = mask[u0 - c0 : u1 - c0] if mask.ndim == s.ndim else mask
            s = xp.where(xp.broadcast_to(m, s.shape) == 0, xp.int8(0), s)
        out[u0 - c0 : u1 - c0] = s
    return out


def neighbour_vote(sign: Any) -> Any:
    """Vote of each pixel of ``(n, y, x)`` int8 signs: 1 when more than 4 of its 8 neighbours are > 0, 2 when < 0.

    Neighbours outside the frame are the nearest edge pixel, as
    :func:`fluoxr.kernels.oscillations.neighbour_vote`: the counts are 3 x 3
    box sums of the edge-padded frames (shifted slices) minus the pixel itself.
    """
    xp = array_module(sign)
    votes = []
    for cond in (sign > 0, sign < 0):
        c = cond.astype(xp.int8)
        p = xp.pad(c, ((0, 0), (1, 1), (1, 1)), mode="edge")
        rows = p[:, :-2] + p[:, 1:-1] + p[:, 2:]
        box = rows[:, :, :-2] + rows[:, :, 1:-1] + rows[:, :, 2:]
        votes.append(box - c > 4)
    return votes[0].astype(xp.int8) + xp.int8(2) * votes[1].astype(xp.int8)


# 8-connected within a frame, nothing across frames: a batch of frames is labelled in one call
_FRAME_STRUCTURE = np.zeros((3, 3, 3), bool)
_FRAME_STRUCTURE[1] = True


def vote_and_filter(sign: Any, min_size: int, n_skip: int = 0) -> Any:
    """Influx/efflux labels (int8: 0, 1, 2) of ``(frames, planes, y, x)`` signs; see :func:`fluoxr.kernels.oscillations.vote_and_filter`.

    The vote (:func:`neighbour_vote`), then for influx and for efflux the
    8-connected components of every frame (``ndimage.label`` over the whole
    batch with a structure that links nothing across frames), kept when they
    have at least ``min_size`` pixels (``bincount`` of the labels). This is
    the default rule; Cellects' ``compat`` rule runs on the CPU only.
    """
    if sign.ndim != 4:
        raise ValueError(f"sign must be (frames, planes, y, x), got shape {sign.shape}")
    xp = array_module(sign)
    ndi = ndimage_module(xp)
    shape = sign.shape
    vote = neighbour_vote(sign.reshape((-1,) + tuple(shape[-2:])))
    out = xp.zeros(vote.shape, xp.int8)
    for kind in (1, 2):
        labels, n = ndi.label(vote == kind, structure=_FRAME_STRUCTURE)
        if not n:
            continue
        area = xp.bincount(labels.ravel(), minlength=int(n) + 1)
        keep = area >= int(min_size)
        keep[0] = False
        # influx and efflux pixels are disjoint (8 neighbours cannot hold 5 of each)
        out = xp.where(keep[labels], xp.int8(kind), out)
    out = out.reshape(shape)
    if n_skip:
        out[:n_skip] = 0
    return out


# --------------------------------------------------------------------------------------------
# trace extraction (twin of fluoxr.kernels.extract.weighted_sums)

ENGINES = ("cupy", "torch")


def sparse_weights(indptr: np.ndarray, indices: np.ndarray, weights: np.ndarray, n_pixels: int, *,
                   xp_name: str, engine: str = "cupy") -> Any:
    """The CSR weights ``(n_rows, n_pixels)`` as a sparse matrix on the device of ``xp_name``.

    ``engine="cupy"``: ``cupyx.scipy.sparse.csr_matrix`` (``scipy.sparse``
    for NumPy); ``"torch"``: a ``torch.sparse_csr_tensor`` on ``cuda``
    (``cpu`` for NumPy). float64 weights.
    """
    n_rows = int(len(indptr) - 1)
    # canonical CSR (sorted, distinct column indices per row; duplicates summed): torch and cuSPARSE
    # assume it, the numba gather loop does not need it
    import scipy.sparse

    # copies: canonicalising works in place, and the caller's arrays must not change
    canon = scipy.sparse.csr_matrix((np.array(weights, np.float64), np.array(indices, np.int64),
                                     np.array(indptr, np.int64)), shape=(n_rows, int(n_pixels)))
    canon.sum_duplicates()
    canon.sort_indices()
    indptr, indices, weights = canon.indptr, canon.indices, canon.data
    # int32 indices where they fit: every CuPy version's cuSPARSE path takes them
    itype = np.int32 if max(int(n_pixels), int(len(indices))) < 2**31 - 1 else np.int64
    if engine == "torch":
        torch = import_torch()
        device = "cuda" if xp_name == "cupy" else "cpu"
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
            # made once per graph, so the structure is checked (cheap next to the products)
            return torch.sparse_csr_tensor(
                torch.as_tensor(np.asarray(indptr, np.int64)), torch.as_tensor(np.asarray(indices, np.int64)),
                torch.as_tensor(np.asarray(weights, np.float64)), size=(n_rows, int(n_pixels)), device=device,
                check_invariants=True)
    if engine != "cupy":
        raise ValueError(f"engine must be one of {ENGINES}, got {engine!r}")
    xp = xp_by_name(xp_name)
    sp = sparse_module(xp)
    return sp.csr_matrix((xp.asarray(np.asarray(weights, np.float64)), xp.asarray(np.asarray(indices, itype)),
                          xp.asarray(np.asarray(indptr, itype))), shape=(n_rows, int(n_pixels)))


def _is_torch(obj: Any) -> bool:
    return type(obj).__module__.split(".")[0] == "torch"


def weighted_sums(W: Any, frames: Any, *, batch: int | None = None) -> Any:
    """``W @ frames.T`` for a sparse ``W`` of :func:`sparse_weights` and raveled ``(n_frames, n_pixels)`` frames.

    Frames are converted to float64 a batch at a time (default: temporaries
    of about 512 MB) and multiplied by ``W``; the result is float32
    ``(n_rows, n_frames)``, like :func:`fluoxr.kernels.extract.weighted_sums`.
    """
    xp = array_module(frames)
    n_t = int(frames.shape[0])
    out = xp.empty((int(W.shape[0]), n_t), xp.float32)
    step = int(batch) if batch else max(1, _BATCH_BYTES // max(8 * int(frames.shape[1]), 1))
    torch = import_torch() if _is_torch(W) else None
    for t0 in range(0, n_t, step):
        x = frames[t0 : t0 + step].astype(xp.float64)
        if torch is not None:
            # zero-copy exchange through DLPack; the product is a dense (n_rows, b) tensor
            y = W @ torch.from_dlpack(x).T.contiguous()
            out[:, t0 : t0 + x.shape[0]] = xp.from_dlpack(y.contiguous())
        else:
            out[:, t0 : t0 + x.shape[0]] = W @ x.T
    return out


# --------------------------------------------------------------------------------------------
# baseline filters (twins of fluoxr.kernels.temporal)


def _pad_edge(x: Any, r: int, left: bool, right: bool) -> Any:
    if r == 0 or not (left or right):
        return x
    xp = array_module(x)
    return xp.pad(x, [(0, 0)] * (x.ndim - 1) + [(r if left else 0, r if right else 0)], mode="edge")


def _valid(y: Any, r: int) -> Any:
    return y[..., r : y.shape[-1] - r] if r else y


def maximin(x: Any, sigma: float, win: int, *, pad_left: bool = True, pad_right: bool = True) -> Any:
    """suite2p's maximin baseline of each row (float32); see :func:`fluoxr.kernels.temporal.maximin`.

    The same stages with ``ndimage.correlate1d``, ``minimum_filter1d`` and
    ``maximum_filter1d`` of the array's module, edge-replicated at the true
    ends, the same halo (:func:`fluoxr.kernels.temporal.maximin_halo`).
    """
    xp = array_module(x)
    ndi = ndimage_module(xp)
    kern = _ktemporal.maximin_gaussian(sigma).astype(np.float64)
    g = kern.size // 2
    h = win // 2
    y = x.astype(xp.float64)
    missing = xp.isnan(y)
    has_missing = bool(missing.any())
    if has_missing:
        # the CPU kernel's NaN policy: an output frame is NaN when a NaN lies within its support
        # (g + 2h frames either side); the filters themselves see finite values
        y = xp.where(missing, 0.0, y)
    if g:
        y = _valid(ndi.correlate1d(_pad_edge(y, g, pad_left, pad_right), xp.asarray(kern), axis=-1,
                                   mode="nearest"), g)
    if h:
        y = _valid(ndi.minimum_filter1d(_pad_edge(y, h, pad_left, pad_right), win, axis=-1), h)
        y = _valid(ndi.maximum_filter1d(_pad_edge(y, h, pad_left, pad_right), win, axis=-1), h)
    if has_missing:
        r = g + 2 * h
        near = missing.astype(xp.uint8)
        if r:
            near = _valid(ndi.maximum_filter1d(_pad_edge(near, r, pad_left, pad_right), 2 * r + 1, axis=-1), r)
        y = xp.where(near.astype(bool), np.nan, y)
    return y.astype(xp.float32)


def gaussian_reflect(x: Any, sigma: float, *, pad_left: bool = True, pad_right: bool = True,
                     truncate: float = 4.0) -> Any:
    """``gaussian_filter1d(x, sigma, axis=-1)`` (mode "reflect"), float64, halo-aware; see :func:`fluoxr.kernels.temporal.gaussian_reflect`."""
    xp = array_module(x)
    ndi = ndimage_module(xp)
    w = _ktemporal.gaussian_weights(sigma, truncate)
    r = w.size // 2
    y = x.astype(xp.float64)
    if r == 0:
        return y
    n = y.shape[-1]
    idx = np.arange(-r if pad_left else 0, n + r if pad_right else n)
    if pad_left and pad_right:
        idx = _ktemporal._reflect_index(idx, n)
    else:
        idx = np.where(idx < 0, -idx - 1, idx) if pad_left else idx
        idx = np.where(idx >= n, 2 * n - 1 - idx, idx) if pad_right else idx
    padded = y[..., xp.asarray(idx)]
    return _valid(ndi.correlate1d(padded, xp.asarray(w), axis=-1, mode="nearest"), r)


def percentile_rows(block: Any, q: float) -> Any:
    """The ``q`` percentile of each row along the last axis (keepdims), float32 (linear interpolation, as NumPy's default)."""
    xp = array_module(block)
    if block.dtype == xp.float16:
        # interpolate as for float32 input, not in float16's 3 significant digits
        block = block.astype(xp.float32)
    out = xp.percentile(block, q, axis=-1, keepdims=True).astype(xp.float32)
    # NumPy's percentile is NaN for a row with a NaN; a sort-based one need not be: make it so
    return xp.where(xp.isnan(block).any(axis=-1, keepdims=True), xp.float32(np.nan), out)
