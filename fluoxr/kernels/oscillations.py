"""Kernels of Cellects-style oscillation detection and oscillating-cluster tracking.

Pure functions of in-memory arrays (NumPy and numba); the lazy orchestration
lives in :mod:`fluoxr.oscillations`.

Detection has two stages:

1. :func:`gradient_sign` (NumPy): each frame divided by its whole-frame mean,
   the temporal gradient (``np.gradient``'s formulas, or a central
   difference over ``k`` frames), its sign, zero outside the mask. The
   arithmetic is NumPy's own, element for element, so that the signs equal
   Cellects' for every input dtype (float16 and float32 included).
2. :func:`vote_and_filter` (numba): a pixel is influx (efflux) when more than
   4 of its 8 edge-replicated neighbours are positive (negative); 8-connected
   components of each map are kept when at least ``min_size`` pixels (and,
   with ``compat=True``, after Cellects' ``cc()`` "background swap").

Beside the numba kernels of both stages stand their array-module versions
(suffix ``_xp``), which :data:`fluoxr._backend.GPU_KERNELS` runs on CuPy
chunks (default rule only); :func:`gradient_sign_xp` is also the CPU's path
for the dtypes numba does not take.

Tracking (:func:`track_block`, numba) labels the clusters of every frame,
links clusters of consecutive frames by pixel overlap and records the onsets
of influx and efflux at every pixel.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from .._backend import array_module, ndimage_module

NONE, INFLUX, EFFLUX = 0, 1, 2

__all__ = [
    "NONE",
    "INFLUX",
    "EFFLUX",
    "cellects_spacing",
    "period_lag",
    "gradient_halo",
    "frame_means",
    "gradient_sign",
    "gradient_sign_xp",
    "neighbour_vote",
    "neighbour_vote_xp",
    "Runs",
    "label_runs",
    "paint_runs",
    "label_kinds",
    "border_touches",
    "kept_components",
    "vote_and_filter",
    "vote_and_filter_xp",
    "track_block",
]


# --------------------------------------------------------------------------------------------
# stage 1: frame normalisation, temporal gradient, sign (NumPy arithmetic, exactly Cellects')


def cellects_spacing(period_s: float, interval_s: float) -> int:
    """The sample spacing Cellects passes to ``np.gradient``: ``max(2, int(period_s / interval_s))``.

    It divides the gradient, so it changes no sign, except in Cellects'
    low-memory path, which rounds the gradient to 3 decimals first.
    """
    return max(2, int(period_s / interval_s))


def period_lag(period_s: float, interval_s: float) -> int:
    """Half-width ``k`` (frames) of the central difference ``x[t+k] - x[t-k]`` of ``lag="period"``.

    ``k = max(1, round(P / 4))`` with ``P = period_s / interval_s`` frames:
    the difference of a sinusoid of period ``P`` over ``2k`` frames is
    ``2 sin(2 pi k / P) cos(phase)``, largest at ``k = P / 4``; a window of
    a whole period (``k = P / 2``) or two (``k = P``) would cancel it.
    """
    return max(1, int(round(period_s / interval_s / 4.0)))


def gradient_halo(k: int) -> int:
    """Frames of context on each side that :func:`gradient_sign` needs for a difference of half-width ``k``."""
    return int(k)


def frame_means(block: np.ndarray) -> np.ndarray:
    """Whole-frame mean of every frame of ``(..., y, x)``, with NumPy's own dtype rules (as Cellects).

    ``np.mean`` over the last two axes: float64 for integers, the input's
    float type otherwise. Bitwise equal whether a frame is reduced alone or
    inside a larger block.
    """
    return block.mean(axis=(-2, -1))


# dtypes whose normalisation numba computes with NumPy's exact arithmetic (float64 work for
# integers, float32 for float32); float16 and booleans take the NumPy path
_FAST_DTYPES = frozenset(np.dtype(t) for t in (np.uint8, np.int8, np.uint16, np.int16, np.uint32, np.int32,
                                               np.uint64, np.int64, np.float32, np.float64))


def gradient_sign(
    block: np.ndarray,
    first: int,
    core: tuple[int, int],
    n_frames: int,
    *,
    k: int = 1,
    spacing: float | None = 2,
    lowmem: bool = False,
    mask: np.ndarray | None = None,
) -> np.ndarray:
    """Sign (int8: -1, 0, 1) of the temporal gradient of the mean-normalised frames ``core``.

    Parameters
    ----------
    block : numpy.ndarray
        ``(frames, ..., y, x)``: consecutive frames of a recording of
        ``n_frames`` frames, the first being global frame ``first``. It must
        hold frames ``max(c0 - k, 0)`` to ``min(c1 - 1 + k, n_frames - 1)``.
    first : int
        Global index of ``block[0]``.
    core : (int, int)
        Global frames ``[c0, c1)`` whose signs are returned.
    n_frames : int
        Frames in the whole recording: differences are one-sided only at its
        first and last frames (as ``np.gradient``), never at a block edge.
    k : int
        Half-width: the sign of ``f[b] - f[a]`` with ``a = max(t - k, 0)``,
        ``b = min(t + k, n_frames - 1)``, ``f`` the frames divided by their means.
    spacing : float or None
        ``np.gradient``'s sample spacing ``h``: the difference is divided
        by ``h * (b - a)`` (``2h`` inside, ``h`` at the ends) as NumPy does,
        so the signs equal Cellects' down to underflow. ``None``: no
        division (``lag="period"``).
    lowmem : bool
        Cellects' low-memory path: ``np.round(gradient, 3)`` cast to
        float16 before the sign (gradients below 0.0005 become 0).
    mask : numpy.ndarray, optional
        ``(y, x)``, or one per core frame; the sign is 0 where it is 0.

    Returns
    -------
    numpy.ndarray
        int8, shape ``(c1 - c0,) + block.shape[1:]``.

    Notes
    -----
    Every operation is NumPy's, in NumPy's order and dtype (the mean by
    ``np.mean``; the division, difference and scaling in float64 for
    integer videos and in the video's float type otherwise), fused in one
    numba loop for the common dtypes, so the signs equal Cellects' bit for bit.

    Examples
    --------
    >>> import numpy as np
    >>> v = np.full((4, 2, 2), 10.0)
    >>> v[:, 0, 0] = [10, 12, 14, 12]
    >>> gradient_sign(v, 0, (0, 4), 4)[:, 0, 0]
    array([ 1,  1,  0, -1], dtype=int8)
    """
    c0, c1 = int(core[0]), int(core[1])
    k = int(k)
    if c1 <= c0:
        return np.zeros((0,) + block.shape[1:], np.int8)
    if n_frames < 2:
        raise ValueError(f"n_frames must be at least 2 to take a temporal gradient, got {n_frames}")
    lo, hi = max(c0 - k, 0), min(c1 - 1 + k, n_frames - 1)
    if lo < first or hi - first >= block.shape[0]:
        raise ValueError(f"block holds frames {first}..{first + block.shape[0] - 1} but frames {lo}..{hi} are needed")
    if block.dtype not in _FAST_DTYPES or block.ndim < 3:
        return gradient_sign_xp(block, first, core, n_frames, k=k, spacing=spacing, lowmem=lowmem, mask=mask)
    frame = block.shape[-2:]
    # only the frames needed: the mean of a frame does not depend on its neighbours
    blk = np.ascontiguousarray(block[lo - first : hi - first + 1]).reshape((hi - lo + 1, -1) + frame)
    means = frame_means(blk)
    work = np.result_type(blk.dtype, means.dtype)
    div = np.array([float(spacing) * s if spacing is not None else 1.0 for s in range(2 * k + 1)], work)
    nc = c1 - c0
    if mask is None:
        m, step, has_mask = np.ones((1, 1, 1, 1), np.bool_), 0, False
    else:
        mask = np.asarray(mask)
        if mask.ndim == block.ndim and mask.shape[0] == nc and nc > 1 and mask.strides[0] != 0:
            m, step = np.ascontiguousarray(mask != 0).reshape((nc, -1) + frame), 1
        else:
            m0 = mask[0] if mask.ndim == block.ndim else mask
            m, step = np.ascontiguousarray(np.broadcast_to(m0 != 0, block.shape[1:])).reshape((1, -1) + frame), 0
        has_mask = True
    out = np.empty((nc,) + blk.shape[1:], np.int8)
    _sign_fast(blk, means.astype(work, copy=False), lo, c0, c1, n_frames, k, div, bool(lowmem), work.type(1000),
               m, step, has_mask, out)
    return out.reshape((nc,) + block.shape[1:])


@njit(cache=True, nogil=True, error_model="numpy")
def _sign_fast(blk: np.ndarray, means: np.ndarray, first: int, c0: int, c1: int, n_frames: int, k: int,
               div: np.ndarray, lowmem: bool, thousand: float, mask: np.ndarray, step: int, has_mask: bool,
               out: np.ndarray) -> None:
    npl, ny, nx = blk.shape[1], blk.shape[2], blk.shape[3]
    for t in range(c0, c1):
        a = t - k if t - k > 0 else 0
        b = t + k if t + k < n_frames - 1 else n_frames - 1
        la = a - first
        lb = b - first
        d = div[b - a]
        for p in range(npl):
            ma = means[la, p]
            mb = means[lb, p]
            fa = blk[la, p]
            fb = blk[lb, p]
            mk = mask[(t - c0) * step, p]
            o = out[t - c0, p]
            for i in range(ny):
                for j in range(nx):
                    # NumPy's order: (x_b / m_b - x_a / m_a) / (h (b - a))
                    g = (fb[i, j] / mb - fa[i, j] / ma) / d
                    if lowmem:
                        # sign(float16(round(g, 3))) == sign(rint(g * 1000)): the float16 cast keeps signs
                        g = np.rint(g * thousand)
                    r = np.int8(1) if g > 0 else (np.int8(-1) if g < 0 else np.int8(0))
                    if has_mask and not mk[i, j]:
                        r = np.int8(0)
                    o[i, j] = r


def gradient_sign_xp(
    block: Any,
    first: int,
    core: tuple[int, int],
    n_frames: int,
    *,
    k: int = 1,
    spacing: float | None = 2,
    lowmem: bool = False,
    mask: Any = None,
    batch_bytes: float = 16e6,
) -> Any:
    """:func:`gradient_sign` with array-module operations: any dtype (float16, booleans), NumPy or CuPy.

    The CPU's path for the dtypes numba does not take, the GPU's for all,
    and the reference the numba path is tested against. The operations of
    :func:`gradient_sign`, in the same order and dtypes: the frame mean
    (:func:`frame_means`, equal bit for bit whatever frames are reduced
    with it), the division, the difference, the division by
    ``spacing * (b - a)``; a NaN gradient gives 0, as in the numba loop.
    The float temporaries are limited to about ``batch_bytes`` by
    processing the core frames in batches.

    Examples
    --------
    >>> import numpy as np
    >>> v = np.full((4, 2, 2), 10.0, np.float16)
    >>> v[:, 0, 0] = [10, 12, 14, 12]
    >>> gradient_sign_xp(v, 0, (0, 4), 4)[:, 0, 0]
    array([ 1,  1,  0, -1], dtype=int8)
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
    # the work dtype of the normalised frames: float64 for integers and booleans (np.mean's)
    work = np.dtype(np.float64) if np.dtype(block.dtype).kind in "biu" else np.dtype(block.dtype)
    step = max(1, int(batch_bytes // max(frame_px * work.itemsize * 3, 1)))
    for u0 in range(c0, c1, step):
        u1 = min(c1, u0 + step)
        lo, hi = max(u0 - k, 0), min(u1 - 1 + k, n_frames - 1)
        part = block[lo - first : hi - first + 1]
        # each frame divided by its own mean: the same elementwise operation as Cellects'
        f = part / frame_means(part)[..., None, None]
        t = np.arange(u0, u1)
        a = np.maximum(t - k, 0)
        b = np.minimum(t + k, n_frames - 1)
        diff = f[xp.asarray(b - lo)] - f[xp.asarray(a - lo)]
        if spacing is not None:
            # np.gradient divides by 2h inside and by h at the ends; the
            # divisor is a Python float so float32/float16 stay as they are
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


# the name tests/test_oscillations_kernels.py compares the numba path with
_gradient_sign_numpy = gradient_sign_xp


# --------------------------------------------------------------------------------------------
# stage 2: neighbour vote and 8-connected components (numba)


@njit(cache=True, nogil=True)
def neighbour_vote(sign: np.ndarray, vote: np.ndarray) -> None:
    """``vote`` = 1 where more than 4 of the 8 neighbours are > 0, 2 where more than 4 are < 0, else 0.

    ``sign`` and ``vote`` are ``(y, x)`` int8. Neighbours outside the frame
    are the nearest edge pixel (edge replication, as Cellects'
    ``CompareNeighborsWithValue``), so at a border a pixel can count itself
    through its replicated neighbours; the pixel itself is otherwise
    excluded. Both counts cannot exceed 4 at once.
    """
    ny, nx = sign.shape
    colp = np.empty(nx + 2, np.int8)
    coln = np.empty(nx + 2, np.int8)
    for i in range(ny):
        up = sign[i - 1 if i > 0 else 0]
        mid = sign[i]
        down = sign[i + 1 if i < ny - 1 else ny - 1]
        # column sums over the three clamped rows, with the edge columns
        # replicated into colp[0] and colp[nx + 1]
        for j in range(nx):
            a = up[j]
            b = mid[j]
            c = down[j]
            colp[j + 1] = np.int8(a > 0) + np.int8(b > 0) + np.int8(c > 0)
            coln[j + 1] = np.int8(a < 0) + np.int8(b < 0) + np.int8(c < 0)
        colp[0] = colp[1]
        coln[0] = coln[1]
        colp[nx + 1] = colp[nx]
        coln[nx + 1] = coln[nx]
        out = vote[i]
        for j in range(nx):
            s = mid[j]
            # 3 x 3 clamped box minus the centre
            pos = colp[j] + colp[j + 1] + colp[j + 2] - np.int8(s > 0)
            neg = coln[j] + coln[j + 1] + coln[j + 2] - np.int8(s < 0)
            out[j] = np.int8(pos > 4) + np.int8(2) * np.int8(neg > 4)


@njit(cache=True, nogil=True)
def _find(parent: np.ndarray, x: int) -> int:
    while parent[x] != x:
        parent[x] = parent[parent[x]]
        x = parent[x]
    return x


@njit(cache=True, nogil=True)
def _union(parent: np.ndarray, a: int, b: int) -> int:
    ra = _find(parent, a)
    rb = _find(parent, b)
    # the smaller root wins, so each root stays the first label of its set
    if ra < rb:
        parent[rb] = ra
        return ra
    parent[ra] = rb
    return rb


class Runs:
    """Scratch arrays for :func:`label_runs` on frames of ``n_pixels`` pixels (allocate once, reuse)."""

    __slots__ = ("parent", "final", "start", "stop", "label", "value", "row", "area", "rowstart")

    def __init__(self, n_pixels: int) -> None:
        cap = int(n_pixels) + 2
        self.parent = np.empty(cap, np.int64)
        self.final = np.empty(cap, np.int64)
        self.start = np.empty(cap, np.int64)
        self.stop = np.empty(cap, np.int64)
        self.label = np.empty(cap, np.int64)
        self.value = np.empty(cap, np.int8)
        self.row = np.empty(cap, np.int64)
        self.area = np.empty((2, cap), np.int64)
        self.rowstart = np.empty(cap, np.int64)

    def arrays(self) -> tuple:
        return (self.parent, self.final, self.start, self.stop, self.label, self.value, self.row, self.area,
                self.rowstart)


@njit(cache=True, nogil=True)
def label_runs(img: np.ndarray, parent: np.ndarray, final: np.ndarray, rs: np.ndarray, re: np.ndarray,
               rl: np.ndarray, rv: np.ndarray, rrow: np.ndarray, area: np.ndarray, rowstart: np.ndarray) -> tuple:
    """8-connected components of the pixels equal to 1 and of those equal to 2, as horizontal runs.

    ``img`` holds only 0, 1 and 2. One scan over the rows finds the runs of
    equal value (1 or 2), a second joins each to the runs of the row above
    it touches (8-connectivity), a third numbers the components of each kind
    ``1 .. n_k`` in raster order of their first pixel (as
    ``scipy.ndimage.label`` on each map). Returns
    ``(n_runs, n1, n2)``; run ``r`` covers ``img[rrow[r], rs[r]:re[r] + 1]``,
    has value ``rv[r]`` and component number ``rl[r]``. ``area[k, c]`` gets
    the pixel count of component ``c`` of kind ``k + 1`` and ``area[k, 0]``
    that of the pixels *not* of that kind (Cellects' "background" item).
    All other arguments are scratch of at least ``img.size + 2`` (see :class:`Runs`).
    """
    ny, nx = img.shape
    # 1. runs of equal non-zero value, row by row, without data-dependent branches:
    #    the change points are compacted (always written, kept when the value
    #    changes), then every stretch between them is written and kept when not 0
    cp = np.empty(nx + 1, np.int64)
    nr = 0
    for i in range(ny):
        row = img[i]
        rowstart[i] = nr
        cp[0] = 0
        m = 1
        for j in range(1, nx):
            cp[m] = j
            m += row[j] != row[j - 1]
        cp[m] = nx
        for q in range(m):
            a = cp[q]
            v = row[a]
            rs[nr] = a
            re[nr] = cp[q + 1] - 1
            rv[nr] = v
            rrow[nr] = i
            nr += v != 0
    rowstart[ny] = nr
    # 2. join each run to the runs of the row above that touch [s - 1, e + 1] (8-connectivity)
    nxt = 1
    for i in range(ny):
        lo = rowstart[i - 1] if i > 0 else 0
        hi = rowstart[i] if i > 0 else 0
        kp = lo
        for r in range(rowstart[i], rowstart[i + 1]):
            s = rs[r]
            e = re[r]
            v = rv[r]
            # runs ending before s - 1 cannot touch any later run of this row either
            while kp < hi and re[kp] < s - 1:
                kp += 1
            lab = 0
            k = kp
            while k < hi and rs[k] <= e + 1:
                if rv[k] == v:
                    if lab == 0:
                        lab = rl[k]
                    elif rl[k] != lab:
                        lab = _union(parent, lab, rl[k])
                k += 1
            if lab == 0:
                lab = nxt
                parent[nxt] = nxt
                # the kind waits in ``final`` until the final numbering
                final[nxt] = v
                nxt += 1
            rl[r] = lab
    # final numbers per kind, in order of the roots (= raster order of first pixels):
    # a root is the smallest provisional label of its set, created at the set's first run
    n1 = 0
    n2 = 0
    for p in range(1, nxt):
        r = _find(parent, p)
        if r == p:
            if final[p] == 1:
                n1 += 1
                final[p] = n1
            else:
                n2 += 1
                final[p] = n2
        else:
            final[p] = final[r]  # r < p: already numbered
    area[0, : n1 + 1] = 0
    area[1, : n2 + 1] = 0
    for r in range(nr):
        c = final[rl[r]]
        rl[r] = c
        area[rv[r] - 1, c] += re[r] - rs[r] + 1
    npx = ny * nx
    area[0, 0] = npx
    for c in range(1, n1 + 1):
        area[0, 0] -= area[0, c]
    area[1, 0] = npx
    for c in range(1, n2 + 1):
        area[1, 0] -= area[1, c]
    return nr, n1, n2


@njit(cache=True, nogil=True)
def paint_runs(nr: int, rs: np.ndarray, re: np.ndarray, rl: np.ndarray, rrow: np.ndarray,
               lab: np.ndarray) -> None:
    """Label image of :func:`label_runs`: ``lab[y, x]`` = component number of its kind, 0 elsewhere."""
    lab[:] = 0
    for r in range(nr):
        row = lab[rrow[r]]
        c = rl[r]
        for j in range(rs[r], re[r] + 1):
            row[j] = c


def label_kinds(img: np.ndarray) -> tuple[np.ndarray, int, int, np.ndarray]:
    """Components of the pixels equal to 1 and of those equal to 2 of a ``(y, x)`` int8 image.

    Convenience wrapper of :func:`label_runs`: returns the label image
    (numbers per kind, as ``scipy.ndimage.label`` of each map with 8-connectivity),
    ``n1``, ``n2`` and the areas ``(2, max(n1, n2) + 1)`` (column 0: pixels not of that kind).

    Examples
    --------
    >>> import numpy as np
    >>> lab, n1, n2, area = label_kinds(np.array([[1, 0, 1], [0, 2, 2]], np.int8))
    >>> lab.tolist(), n1, n2
    ([[1, 0, 2], [0, 1, 1]], 2, 1)
    """
    img = np.ascontiguousarray(img, dtype=np.int8)
    runs = Runs(img.size)
    nr, n1, n2 = label_runs(img, *runs.arrays())
    lab = np.empty(img.shape, np.int32)
    paint_runs(nr, runs.start, runs.stop, runs.label, runs.row, lab)
    return lab, int(n1), int(n2), runs.area[:, : max(n1, n2) + 1].copy()


@njit(cache=True, nogil=True)
def border_touches(nr: int, rs: np.ndarray, re: np.ndarray, rl: np.ndarray, rv: np.ndarray, rrow: np.ndarray,
                   n1: int, n2: int, ny: int, nx: int, sides: np.ndarray) -> None:
    """``sides[k, c]`` = number of image borders (0..4) that item ``c`` of kind ``k + 1`` reaches.

    From the runs of :func:`label_runs`. Item 0 is the background (the
    pixels not of that kind). An item's bounding box touches a border
    exactly when the item has a pixel on it.
    """
    bits = np.zeros((2, max(n1, n2) + 1), np.int8)
    top = np.zeros(2, np.int64)       # pixels of each kind in the first row
    bottom = np.zeros(2, np.int64)    # ... in the last row
    left = np.zeros(2, np.int64)      # rows whose first pixel is of each kind
    right = np.zeros(2, np.int64)     # rows whose last pixel is of each kind
    for r in range(nr):
        k = rv[r] - 1
        c = rl[r]
        if rrow[r] == 0:
            bits[k, c] |= 1
            top[k] += re[r] - rs[r] + 1
        if rrow[r] == ny - 1:
            bits[k, c] |= 2
            bottom[k] += re[r] - rs[r] + 1
        if rs[r] == 0:
            bits[k, c] |= 4
            left[k] += 1
        if re[r] == nx - 1:
            bits[k, c] |= 8
            right[k] += 1
    for k in range(2):
        n = n1 if k == 0 else n2
        for c in range(1, n + 1):
            b = bits[k, c]
            sides[k, c] = (b & 1) + ((b >> 1) & 1) + ((b >> 2) & 1) + ((b >> 3) & 1)
        # the background reaches a border unless that kind covers all of it
        sides[k, 0] = (top[k] < nx) + (bottom[k] < nx) + (left[k] < ny) + (right[k] < ny)


@njit(cache=True, nogil=True)
def kept_components(n: int, area: np.ndarray, sides: np.ndarray, min_size: int, compat: bool,
                    keep: np.ndarray) -> None:
    """Which items of one map survive: ``keep[0..n]``; item 0 is the background (pixels not in the map).

    ``area`` and ``sides`` are one kind's rows from :func:`label_kinds` and
    :func:`border_touches` (``sides`` is read only with ``compat``).

    Default: components ``1..n`` with at least ``min_size`` pixels.

    ``compat=True``: Cellects' ``cc()`` rule. Items (the background, then
    the components) are ranked by area, largest first, ties by the later
    label first (a stable argsort, reversed). An item "touches" when its
    bounding box touches more than two image borders. If some touching item
    is not ranked first, the first-ranked item is swapped with it (exactly
    one touching item) or with the second-ranked item (several). The item
    that ends first is dropped as background; every other item with at
    least ``min_size`` pixels is kept -- which can make the real background
    a cluster and drop a real cluster.
    """
    keep[0] = False
    for it in range(1, n + 1):
        keep[it] = area[it] >= min_size
    if not compat:
        return
    r0 = 0
    for it in range(1, n + 1):
        if area[it] >= area[r0]:
            r0 = it
    r1 = -1
    for it in range(n + 1):
        if it != r0 and (r1 < 0 or area[it] >= area[r1]):
            r1 = it
    n_touch = 0
    other_touch = -1
    for it in range(n + 1):
        if area[it] > 0 and sides[it] > 2:
            n_touch += 1
            if it != r0:
                other_touch = it
    dropped = r0
    if other_touch >= 0:
        dropped = other_touch if n_touch == 1 else r1
    for it in range(n + 1):
        keep[it] = it != dropped and area[it] > 0 and area[it] >= min_size


@njit(cache=True, nogil=True)
def _vote_and_filter(sign: np.ndarray, min_size: int, compat: bool, n_skip: int, out: np.ndarray,
                     parent: np.ndarray, final: np.ndarray, rs: np.ndarray, re: np.ndarray, rl: np.ndarray,
                     rv: np.ndarray, rrow: np.ndarray, area: np.ndarray, rowstart: np.ndarray) -> None:
    nt, npl, ny, nx = sign.shape
    vote = np.empty((ny, nx), np.int8)
    cap = ny * nx + 2
    sides = np.zeros((2, cap), np.int64)
    keep = np.empty((2, cap), np.bool_)
    for t in range(nt):
        for p in range(npl):
            o = out[t, p].reshape(ny * nx)
            if t < n_skip:
                o[:] = 0
                continue
            neighbour_vote(sign[t, p], vote)
            nr, n1, n2 = label_runs(vote, parent, final, rs, re, rl, rv, rrow, area, rowstart)
            if compat:
                border_touches(nr, rs, re, rl, rv, rrow, n1, n2, ny, nx, sides)
            kept_components(n1, area[0], sides[0], min_size, compat, keep[0])
            kept_components(n2, area[1], sides[1], min_size, compat, keep[1])
            bg1 = keep[0, 0]
            bg2 = keep[1, 0]
            # influx is written first and efflux over it, as Cellects does
            # (it matters only when a "background" item is kept)
            o[:] = 2 if bg2 else (1 if bg1 else 0)
            for r in range(nr):
                c = rl[r]
                if rv[r] == 1:
                    val = 2 if bg2 else (1 if keep[0, c] else 0)
                else:
                    val = 2 if keep[1, c] else (1 if bg1 else 0)
                base = rrow[r] * nx
                o[base + rs[r] : base + re[r] + 1] = val


def vote_and_filter(sign: np.ndarray, min_size: int, compat: bool = False, n_skip: int = 0,
                    out: np.ndarray | None = None) -> np.ndarray:
    """Influx/efflux labels of sign frames: 0 none, 1 influx, 2 efflux (int8, same shape as ``sign``).

    ``sign`` is ``(frames, planes, y, x)`` int8. Per frame and plane: the
    neighbour vote (:func:`neighbour_vote`), 8-connected components of the
    influx and of the efflux map (:func:`label_runs`), the size filter
    (:func:`kept_components`); influx is written first and efflux over it.
    The first ``n_skip`` frames are set to 0 (frames before ``start``).

    Examples
    --------
    >>> import numpy as np
    >>> sign = np.ones((1, 1, 4, 5), np.int8)
    >>> vote_and_filter(sign, min_size=3)[0, 0, 0].tolist()
    [1, 1, 1, 1, 1]
    """
    if sign.ndim != 4:
        raise ValueError(f"sign must be (frames, planes, y, x), got shape {sign.shape}")
    sign = np.ascontiguousarray(sign, dtype=np.int8)
    if out is None:
        out = np.empty(sign.shape, np.int8)
    runs = Runs(sign.shape[-1] * sign.shape[-2])
    _vote_and_filter(sign, int(min_size), bool(compat), int(n_skip), out, *runs.arrays())
    return out


def neighbour_vote_xp(sign: Any) -> Any:
    """:func:`neighbour_vote` of every frame of ``(n, y, x)`` int8 signs, with array-module operations (the GPU's).

    The counts are 3 x 3 box sums of the edge-padded frames (shifted
    slices) minus the pixel itself; returns the int8 votes.

    Examples
    --------
    >>> import numpy as np
    >>> neighbour_vote_xp(np.ones((1, 3, 3), np.int8))[0].tolist()
    [[1, 1, 1], [1, 1, 1], [1, 1, 1]]
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


def vote_and_filter_xp(sign: Any, min_size: int, compat: bool = False, n_skip: int = 0) -> Any:
    """:func:`vote_and_filter` with array-module operations (the GPU's): the default rule only.

    The vote (:func:`neighbour_vote_xp`), then for influx and for efflux the
    8-connected components of every frame (``ndimage.label`` over the whole
    batch with a structure that links nothing across frames), kept when
    they have at least ``min_size`` pixels (``bincount`` of the labels).
    Cellects' ``compat`` rule ranks each frame's components one by one and
    runs on the CPU only.

    Examples
    --------
    >>> import numpy as np
    >>> vote_and_filter_xp(np.ones((1, 1, 4, 5), np.int8), min_size=3)[0, 0, 0].tolist()
    [1, 1, 1, 1, 1]
    """
    if sign.ndim != 4:
        raise ValueError(f"sign must be (frames, planes, y, x), got shape {sign.shape}")
    if compat:
        raise ValueError("compat=True (Cellects' rule) runs on the CPU only: use vote_and_filter")
    xp = array_module(sign)
    ndi = ndimage_module(xp)
    shape = sign.shape
    vote = neighbour_vote_xp(sign.reshape((-1,) + tuple(shape[-2:])))
    out = xp.zeros(vote.shape, xp.int8)
    for kind in (INFLUX, EFFLUX):
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
# tracking: clusters per frame, overlaps between consecutive frames, onsets per pixel (numba)


@njit(cache=True, nogil=True)
def _grow(a: np.ndarray, n: int) -> np.ndarray:
    if n < a.shape[0]:
        return a
    b = np.empty((max(2 * a.shape[0], 16),) + a.shape[1:], a.dtype)
    b[: a.shape[0]] = a
    return b


@njit(cache=True, nogil=True)
def _hash_slot(table_keys: np.ndarray, key: np.int64) -> int:
    mask = table_keys.shape[0] - 1
    h = (key * np.int64(-7046029254386353131)) >> np.int64(17)
    s = int(h & mask)
    while table_keys[s] != -1 and table_keys[s] != key:
        s = (s + 1) & mask
    return s


@njit(cache=True, nogil=True)
def track_block(block: np.ndarray, prev: np.ndarray, has_prev: bool, t0: int, onset_after: int,
                min_overlap: int):
    """Clusters of every frame of a block of labels, their links and the onsets at every pixel.

    Parameters
    ----------
    block : numpy.ndarray
        ``(frames, y, x)`` int8 labels (0, 1 influx, 2 efflux); global frame
        ``t0`` first.
    prev : numpy.ndarray
        ``(y, x)`` int8 labels of global frame ``t0 - 1`` (used when ``has_prev``).
    onset_after : int
        Onsets count only at global frames ``t > onset_after`` (the first
        analysed frame, whose runs have an unknown beginning).
    min_overlap : int
        Clusters of the same kind in consecutive frames are linked when they
        share at least this many pixels.

    Returns
    -------
    comp : (n, 6) int64
        One row per cluster and frame: global frame, kind, area, sum of y,
        sum of x, raster index of its first pixel.
    links : (m, 2) int64
        Pairs of linked rows of ``comp`` (frame t, frame t + 1).
    first_img, last_img : (y, x) int64
        Row of ``comp`` + 1 at every pixel of the first and last frame, 0 elsewhere.
    first_t, first_c, last_t : (2, y, x) int64
        Per kind (0 influx, 1 efflux) and pixel: the global frame and the
        ``comp`` row of the first onset in the block, and the frame of the
        last onset (-1: none).
    samples : (s, 2) int64
        Period samples found inside the block: ``comp`` row of the later
        onset and the period in frames (an onset of a kind, an onset of the
        other kind, then an onset of the first kind again at the same pixel).
    """
    nt, ny, nx = block.shape
    npx = ny * nx
    comp = np.empty((64, 6), np.int64)
    n_comp = 0
    links = np.empty((64, 2), np.int64)
    n_links = 0
    samples = np.empty((64, 2), np.int64)
    n_samples = 0
    first_t = np.full((2, ny, nx), -1, np.int64)
    first_c = np.full((2, ny, nx), -1, np.int64)
    last_t = np.full((2, ny, nx), -1, np.int64)
    lab = np.zeros((ny, nx), np.int64)
    lab_prev = np.zeros((ny, nx), np.int64)
    first_img = np.zeros((ny, nx), np.int64)
    parent = np.empty(npx + 2, np.int64)
    final = np.empty(npx + 2, np.int64)
    rs = np.empty(npx + 2, np.int64)
    re = np.empty(npx + 2, np.int64)
    rl = np.empty(npx + 2, np.int64)
    rv = np.empty(npx + 2, np.int8)
    rrow = np.empty(npx + 2, np.int64)
    area = np.empty((2, npx + 2), np.int64)
    rowstart = np.empty(ny + 1, np.int64)
    cap = 1
    while cap < 2 * npx + 2:
        cap *= 2
    hkeys = np.full(cap, -1, np.int64)
    hvals = np.zeros(cap, np.int64)
    used = np.empty(npx, np.int64)
    for t in range(nt):
        tg = t0 + t
        frame = block[t]
        base = n_comp
        nr, n1, n2 = label_runs(frame, parent, final, rs, re, rl, rv, rrow, area, rowstart)
        n_new = n1 + n2
        while n_comp + n_new >= comp.shape[0]:
            comp = _grow(comp, comp.shape[0])
        for c in range(base, base + n_new):
            comp[c, 0] = tg
            comp[c, 1] = 1 if c < base + n1 else 2
            comp[c, 2] = 0
            comp[c, 3] = 0
            comp[c, 4] = 0
            comp[c, 5] = -1
        lab[:] = 0
        for r in range(nr):
            c = base + rl[r] - 1 + (n1 if rv[r] == 2 else 0)
            i = rrow[r]
            length = re[r] - rs[r] + 1
            comp[c, 2] += length
            comp[c, 3] += i * length
            comp[c, 4] += (rs[r] + re[r]) * length // 2
            if comp[c, 5] < 0:
                # runs come in raster order: the first is the first pixel
                comp[c, 5] = i * nx + rs[r]
            row = lab[i]
            for j in range(rs[r], re[r] + 1):
                row[j] = c + 1
        n_comp += n_new
        # overlaps with the previous frame of the block (same kind only)
        if t > 0:
            n_used = 0
            for i in range(ny):
                for j in range(nx):
                    a = lab_prev[i, j]
                    b = lab[i, j]
                    if a == 0 or b == 0 or block[t - 1, i, j] != frame[i, j]:
                        continue
                    key = (a - 1) * (npx + n_comp + 1) + (b - 1)
                    s = _hash_slot(hkeys, key)
                    if hkeys[s] == -1:
                        hkeys[s] = key
                        hvals[s] = 0
                        used[n_used] = s
                        n_used += 1
                    hvals[s] += 1
            for u in range(n_used):
                s = used[u]
                if hvals[s] >= min_overlap:
                    while n_links >= links.shape[0]:
                        links = _grow(links, links.shape[0])
                    links[n_links, 0] = hkeys[s] // (npx + n_comp + 1)
                    links[n_links, 1] = hkeys[s] % (npx + n_comp + 1)
                    n_links += 1
                hkeys[s] = -1
        # onsets: a pixel enters influx or efflux
        for i in range(ny):
            for j in range(nx):
                v = frame[i, j]
                if v == 0 or tg <= onset_after:
                    continue
                if t > 0:
                    pv = block[t - 1, i, j]
                elif has_prev:
                    pv = prev[i, j]
                else:
                    continue
                if pv == v:
                    continue
                kk = v - 1
                oo = 1 - kk
                c = lab[i, j] - 1
                if last_t[kk, i, j] >= 0:
                    if last_t[oo, i, j] > last_t[kk, i, j]:
                        while n_samples >= samples.shape[0]:
                            samples = _grow(samples, samples.shape[0])
                        samples[n_samples, 0] = c
                        samples[n_samples, 1] = tg - last_t[kk, i, j]
                        n_samples += 1
                else:
                    first_t[kk, i, j] = tg
                    first_c[kk, i, j] = c
                last_t[kk, i, j] = tg
        if t == 0:
            first_img[:] = lab
        lab_prev[:] = lab
    return (comp[:n_comp].copy(), links[:n_links].copy(), first_img, lab_prev.copy(), first_t, first_c, last_t,
            samples[:n_samples].copy())
