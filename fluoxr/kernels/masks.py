"""Cell and neuropil mask kernels (suite2p ``create_masks`` semantics), vectorised or numba.

Everything here works on flat pixel indices of one frame of shape
``(Ly, Lx)`` (C order), so that a whole ROI set is a handful of arrays:
``indptr`` (start of each ROI), ``flat`` (pixel indices) and ``weight``.
suite2p loops over ROIs in Python and allocates a full frame per ROI; these
kernels touch only the pixels around each ROI.

References in the tests: ``tests/kernels/test_extraction_masks.py`` compares each
kernel with a plain NumPy statement of suite2p's loop on tiny frames (and
with suite2p itself when it is importable).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = [
    "lam_map",
    "percentile_rank",
    "percentile_filter_at",
    "cell_pixels",
    "neuropil_pixels",
    "EXTEND_BY",
    "MAX_STEPS",
]

# suite2p grows the neuropil region by 5 pixels per step, at most 100 steps
EXTEND_BY = 5
MAX_STEPS = 100


def lam_map(flat: np.ndarray, weight: np.ndarray, n_pixels: int) -> np.ndarray:
    """Per pixel, the largest weight of any ROI there, 0 elsewhere (float64, ``(n_pixels,)``).

    suite2p's ``create_cell_pix`` builds the same map ROI by ROI with
    ``np.maximum``; starting from zeros, negative weights never show.

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr.kernels.masks import lam_map
    >>> lam_map(np.array([0, 2, 2]), np.array([0.5, 0.2, 0.9]), 4).tolist()
    [0.5, 0.0, 0.9, 0.0]
    """
    out = np.zeros(n_pixels, np.float64)
    np.maximum.at(out, np.asarray(flat, np.int64), np.asarray(weight, np.float64))
    return out


def percentile_rank(filter_size: int, percentile: float) -> int:
    """Rank (0-based) that ``scipy.ndimage.percentile_filter`` takes in a window of ``filter_size`` values.

    Examples
    --------
    >>> from fluoxr.kernels.masks import percentile_rank
    >>> percentile_rank(9, 50.0), percentile_rank(9, 100.0)
    (4, 8)
    """
    if percentile < 0.0:
        percentile += 100.0
    if percentile == 100.0:
        return filter_size - 1
    return int(float(filter_size) * percentile / 100.0)


@njit(cache=True, nogil=True)
def _reflect(i: int, n: int) -> int:
    # scipy.ndimage mode="reflect" (d c b a | a b c d | d c b a), periodic with period 2n
    if n == 1:
        return 0
    j = i % (2 * n)
    if j < 0:
        j += 2 * n
    if j >= n:
        j = 2 * n - 1 - j
    return j


@njit(cache=True, nogil=True)
def _kth_smallest(buf: np.ndarray, n: int, k: int) -> float:
    # Hoare quickselect on buf[:n] (modified in place)
    lo = 0
    hi = n - 1
    while lo < hi:
        pivot = buf[(lo + hi) // 2]
        i = lo
        j = hi
        while i <= j:
            while buf[i] < pivot:
                i += 1
            while buf[j] > pivot:
                j -= 1
            if i <= j:
                t = buf[i]
                buf[i] = buf[j]
                buf[j] = t
                i += 1
                j -= 1
        if k <= j:
            hi = j
        elif k >= i:
            lo = i
        else:
            return buf[k]
    return buf[k]


@njit(cache=True, nogil=True)
def percentile_filter_at(image: np.ndarray, size: int, rank: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """The ``size x size`` rank filter of ``image`` at the given pixels only.

    Equals ``scipy.ndimage.rank_filter(image, rank, size=size)[rows, cols]``
    (mode "reflect", origin 0: the window spans offsets ``-(size // 2)`` to
    ``size - size // 2 - 1``) for an ``image`` of values >= 0. Zeros are
    counted rather than sorted: suite2p's weight map is mostly zeros, and
    only the k-th smallest *positive* value needs a selection.
    """
    ly, lx = image.shape
    lo = -(size // 2)
    out = np.empty(rows.size, np.float64)
    buf = np.empty(size * size, np.float64)
    ry = np.empty(size, np.int64)
    rx = np.empty(size, np.int64)
    # summed-area table of positive pixels: a window away from the borders whose zeros
    # outnumber the rank has the answer 0 without looking at its values
    sat = np.zeros((ly + 1, lx + 1), np.int64)
    for y in range(ly):
        acc = 0
        for x in range(lx):
            if image[y, x] > 0.0:
                acc += 1
            sat[y + 1, x + 1] = sat[y, x + 1] + acc
    for p in range(rows.size):
        r = rows[p]
        c = cols[p]
        y0 = r + lo
        x0 = c + lo
        if y0 >= 0 and x0 >= 0 and y0 + size <= ly and x0 + size <= lx:
            n_pos = sat[y0 + size, x0 + size] - sat[y0, x0 + size] - sat[y0 + size, x0] + sat[y0, x0]
            if rank < size * size - n_pos:
                out[p] = 0.0
                continue
        for a in range(size):
            ry[a] = _reflect(r + lo + a, ly)
            rx[a] = _reflect(c + lo + a, lx)
        n_pos = 0
        for a in range(size):
            for b in range(size):
                v = image[ry[a], rx[b]]
                if v > 0.0:
                    buf[n_pos] = v
                    n_pos += 1
        n_zero = size * size - n_pos
        if rank < n_zero:
            out[p] = 0.0
        else:
            out[p] = _kth_smallest(buf, n_pos, rank - n_zero)
    return out


@njit(cache=True, nogil=True)
def at_or_above_percentile(image: np.ndarray, size: int, rank: int, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """``image[rows, cols] >= rank_filter(image, rank, size)[rows, cols]`` for positive pixels, by counting.

    A value is at least the window's ``rank``-th smallest (0-based) exactly
    when at least ``rank + 1`` window values are <= it; counting needs no
    selection. Zeros are <= every positive value; a window away from the
    borders gets its count of zeros from a summed-area table.
    """
    ly, lx = image.shape
    lo = -(size // 2)
    out = np.empty(rows.size, np.bool_)
    ry = np.empty(size, np.int64)
    rx = np.empty(size, np.int64)
    sat = np.zeros((ly + 1, lx + 1), np.int64)
    for y in range(ly):
        acc = 0
        for x in range(lx):
            if image[y, x] > 0.0:
                acc += 1
            sat[y + 1, x + 1] = sat[y, x + 1] + acc
    for p in range(rows.size):
        r = rows[p]
        c = cols[p]
        v = image[r, c]
        y0 = r + lo
        x0 = c + lo
        if y0 >= 0 and x0 >= 0 and y0 + size <= ly and x0 + size <= lx:
            n_pos = sat[y0 + size, x0 + size] - sat[y0, x0 + size] - sat[y0 + size, x0] + sat[y0, x0]
            if size * size - n_pos > rank:
                out[p] = True
                continue
            count = size * size - n_pos
            for y in range(y0, y0 + size):
                for x in range(x0, x0 + size):
                    w = image[y, x]
                    if w > 0.0 and w <= v:
                        count += 1
        else:
            for a in range(size):
                ry[a] = _reflect(r + lo + a, ly)
                rx[a] = _reflect(c + lo + a, lx)
            count = 0
            for a in range(size):
                for b in range(size):
                    if image[ry[a], rx[b]] <= v:
                        count += 1
        out[p] = count >= rank + 1
    return out


def cell_pixels(flat: np.ndarray, weight: np.ndarray, shape: tuple[int, int], radius: float,
                lam_percentile: float) -> np.ndarray:
    """suite2p's ``create_cell_pix``: bool image of the pixels that count as cell (excluded from neuropil).

    A pixel is a cell pixel when its largest ROI weight is positive and not
    below the ``lam_percentile`` percentile of the weight map in a
    ``int(radius * 5)`` square around it (``radius``: median ROI radius;
    scipy's ``percentile_filter``, mode "reflect"). With
    ``lam_percentile == 0`` every pixel with a positive weight counts.
    suite2p would fail on ``int(radius * 5) == 0``; the window is at least 1.
    """
    ly, lx = shape
    lmap = lam_map(flat, weight, ly * lx)
    if lam_percentile <= 0.0:
        return (lmap > 0.0).reshape(shape)
    size = max(1, int(radius * 5))
    rank = percentile_rank(size * size, float(lam_percentile))
    idx = np.flatnonzero(lmap > 0.0)
    out = np.zeros(ly * lx, bool)
    # cell_pix = ~((lammap < filt) | (lammap == 0)); zero pixels are never cell pixels
    out[idx] = at_or_above_percentile(lmap.reshape(shape), size, rank, idx // lx, idx % lx)
    return out.reshape(shape)


@njit(cache=True, nogil=True)
def _grow(buf: np.ndarray, n: int) -> np.ndarray:
    new = np.empty(max(2 * buf.size, n), buf.dtype)
    new[: buf.size] = buf
    return new


@njit(cache=True, nogil=True)
def _expand(queue: np.ndarray, head: int, tail: int, dist: np.ndarray, stamp: np.ndarray, mark: int, limit: int,
            ly: int, lx: int, valid: np.ndarray) -> tuple[int, int, int]:
    """Breadth-first search on the 4-connected grid until every queued pixel is at distance ``limit``.

    Returns the new (head, tail) and how many valid pixels were queued.
    """
    added = 0
    while head < tail and dist[queue[head]] < limit:
        p = queue[head]
        head += 1
        y = p // lx
        x = p - y * lx
        d = dist[p] + 1
        for k in range(4):
            if k == 0:
                if y == 0:
                    continue
                q = p - lx
            elif k == 1:
                if y == ly - 1:
                    continue
                q = p + lx
            elif k == 2:
                if x == 0:
                    continue
                q = p - 1
            else:
                if x == lx - 1:
                    continue
                q = p + 1
            if stamp[q] != mark:
                stamp[q] = mark
                dist[q] = d
                queue[tail] = q
                tail += 1
                if valid[q]:
                    added += 1
    return head, tail, added


@njit(cache=True, nogil=True)
def neuropil_pixels(indptr: np.ndarray, flat: np.ndarray, valid: np.ndarray, ly: int, lx: int,
                    inner_radius: int, min_pixels: int, circular: bool) -> tuple[np.ndarray, np.ndarray]:
    """Neuropil pixels of every ROI, suite2p's ``create_neuropil_masks`` without its per-ROI frames.

    Parameters
    ----------
    indptr, flat : int64 arrays
        ROI ``i`` has pixels ``flat[indptr[i]:indptr[i + 1]]`` (raveled, C order).
    valid : bool array ``(ly * lx,)``
        Pixels that may be neuropil (not cell pixels).
    inner_radius : int
        The ROI dilated ``inner_radius`` times with the 4-connected cross
        (pixels within city-block distance ``inner_radius``) is excluded.
    min_pixels : int
        The region grows by 5 pixels per step (a bounding rectangle, or a
        city-block dilation when ``circular``) until it holds more than
        ``min_pixels`` valid pixels outside the excluded ring, at most 100
        steps.

    Returns
    -------
    out_indptr, out_flat : int64 arrays
        Neuropil pixels of ROI ``i``: in increasing raveled order for
        rectangles (as ``np.nonzero`` on suite2p's per-ROI mask gives them),
        in breadth-first order when ``circular`` (sort each ROI's segment).

    Notes
    -----
    A dilation clipped to the frame after every step (suite2p's
    ``extendROI``) equals the set of in-frame pixels within city-block
    distance ``d`` of the ROI, because the frame is a rectangle; a
    breadth-first search on the 4-connected grid gives those distances.
    Rectangle growth counts valid pixels with a summed-area table, so each
    step costs O(1).
    """
    n_rois = indptr.size - 1
    npx = ly * lx
    stamp = np.full(npx, -1, np.int64)
    dist = np.zeros(npx, np.int64)
    queue = np.empty(npx, np.int64)
    # summed-area table of valid pixels
    sat = np.zeros((ly + 1, lx + 1), np.int64)
    for y in range(ly):
        row = 0
        for x in range(lx):
            if valid[y * lx + x]:
                row += 1
            sat[y + 1, x + 1] = sat[y, x + 1] + row
    out_ptr = np.zeros(n_rois + 1, np.int64)
    out = np.empty(max(16, flat.size * 4), np.int64)
    n_out = 0
    for i in range(n_rois):
        # breadth-first search from the ROI's pixels, layer by layer
        head = 0
        tail = 0
        for k in range(indptr[i], indptr[i + 1]):
            p = flat[k]
            if stamp[p] != i:
                stamp[p] = i
                dist[p] = 0
                queue[tail] = p
                tail += 1
        # excluded ring: city-block distance <= inner_radius
        head, tail, _ = _expand(queue, head, tail, dist, stamp, i, inner_radius, ly, lx, valid)
        n_ring = tail
        nring_valid = 0
        y0 = ly
        y1 = -1
        x0 = lx
        x1 = -1
        for q in range(n_ring):
            p = queue[q]
            if valid[p]:
                nring_valid += 1
            y = p // lx
            x = p - y * lx
            y0 = min(y0, y)
            y1 = max(y1, y)
            x0 = min(x0, x)
            x1 = max(x1, x)
        if not circular:
            # rectangle k = ring's bounding box grown by 5k, clipped; suite2p stops at the
            # first k >= 1 with more than min_pixels valid pixels outside the ring, or k = 100
            steps = 0
            ry0 = y0
            ry1 = y1
            rx0 = x0
            rx1 = x1
            if min_pixels >= 0:
                for k in range(1, MAX_STEPS + 1):
                    steps = k
                    ry0 = max(0, y0 - EXTEND_BY * k)
                    ry1 = min(ly - 1, y1 + EXTEND_BY * k)
                    rx0 = max(0, x0 - EXTEND_BY * k)
                    rx1 = min(lx - 1, x1 + EXTEND_BY * k)
                    cnt = sat[ry1 + 1, rx1 + 1] - sat[ry0, rx1 + 1] - sat[ry1 + 1, rx0] + sat[ry0, rx0]
                    if cnt - nring_valid > min_pixels:
                        break
                    if ry0 == 0 and rx0 == 0 and ry1 == ly - 1 and rx1 == lx - 1:
                        break  # the whole frame: more steps change nothing
            if steps > 0:
                need = n_out + (ry1 - ry0 + 1) * (rx1 - rx0 + 1)
                if need > out.size:
                    out = _grow(out, need)
                for y in range(ry0, ry1 + 1):
                    for x in range(rx0, rx1 + 1):
                        p = y * lx + x
                        if valid[p] and stamp[p] != i:
                            out[n_out] = p
                            n_out += 1
        else:
            # city-block dilation by 5 per step: continue the search layer by layer
            steps = 0
            total_valid = nring_valid
            if min_pixels >= 0:
                for k in range(1, MAX_STEPS + 1):
                    steps = k
                    limit = inner_radius + EXTEND_BY * k
                    head, tail, added = _expand(queue, head, tail, dist, stamp, i, limit, ly, lx, valid)
                    total_valid += added
                    if total_valid - nring_valid > min_pixels:
                        break
                    if head == tail:
                        break  # the whole frame is reached
            if steps > 0:
                m = tail - n_ring
                need = n_out + m
                if need > out.size:
                    out = _grow(out, need)
                # in search order; sorted per ROI by the caller (numba's sort is slow to compile)
                for q in range(n_ring, tail):
                    p = queue[q]
                    if valid[p]:
                        out[n_out] = p
                        n_out += 1
        out_ptr[i + 1] = n_out
    return out_ptr, out[:n_out].copy()
