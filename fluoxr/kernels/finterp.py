"""The element loops of the CPU Fourier interpolation (:func:`fluoxr.kernels.sofi.interpolate_real`).

pysofi's interpolation operators are real and centro-symmetric: the frame is
mirrored before it is transformed, so reflecting a frame reflects its
interpolation (``A[hn-1-i, h-1-j] == A[i, j]``, and the same for ``B``).
A centro-symmetric matrix maps the even part of a vector (``x + reversed x``)
to an even vector and the odd part to an odd one, so each half-size product
gives half of the result: :func:`interpolate_batches` multiplies by the
``(n/2 x n/2)`` halves, half the arithmetic of the full products, between
folds before the products and an unfolding after them that writes each
output row once, in order, with its modulus.

A whole chunk is one call that releases the GIL: the products are BLAS GEMMs
called from numba (``np.dot``, into SciPy's BLAS), so two dask threads
interpolate two chunks at once instead of taking turns at the interpreter
for every small batch (measured on 64 x 64 frames, one thread: 53-58 us per
frame against 65-68 us for the same steps driven from Python, and 227-247
against 174-177 MB/s of input on two threads).

Array layouts (``m`` frames of a batch, side by side so that one product
serves them all):

* ``frames`` ``(m, h, w)``, the recording's own samples (uint16, float32 or
  float64: numba compiles one version per type);
* ``u``, ``v`` ``(ceil(h/2), m, w)``, ``(h//2, m, w)``: sums and differences of
  mirrored rows (``u`` ends with the middle row when ``h`` is odd);
* ``ys``, ``ya`` ``(ceil(nr/2), m, w)``: the even and odd parts of the first
  half of the ``nr`` fractional rows (in position order);
* ``ru``, ``rv`` ``(h + nr, m, ceil(w/2))``, ``(h + nr, m, w//2)``: sums and
  differences of mirrored columns of every row, the frame's rows first;
* ``pu``, ``pv`` ``(h + nr, m, ceil(nc/2))``: the two parts of the first half
  of the ``nc`` fractional columns of every row.
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["interpolate_batches", "fold_frames", "fold_rows", "unfold_into"]


@njit(cache=True, nogil=True)
def fold_frames(frames, u, v, ru, rv):  # pragma: no cover - numba
    """Row folds ``u``, ``v`` of the frames and column folds ``ru[:h]``, ``rv[:h]`` of their rows."""
    m, h, w = frames.shape
    hv, wv = h // 2, w // 2
    for fr in range(m):
        for r in range(hv):
            a = frames[fr, r]
            b = frames[fr, h - 1 - r]
            for q in range(w):
                x = np.float64(a[q])
                y = np.float64(b[q])
                u[r, fr, q] = x + y
                v[r, fr, q] = x - y
        if h % 2:
            a = frames[fr, hv]
            for q in range(w):
                u[hv, fr, q] = a[q]
        for r in range(h):
            a = frames[fr, r]
            for q in range(wv):
                x = np.float64(a[q])
                y = np.float64(a[w - 1 - q])
                ru[r, fr, q] = x + y
                rv[r, fr, q] = x - y
            if w % 2:
                ru[r, fr, wv] = a[wv]


@njit(cache=True, nogil=True)
def fold_rows(ys, ya, h, nr, ru, rv):  # pragma: no cover - numba
    """Column folds ``ru[h:]``, ``rv[h:]`` of the ``nr`` fractional rows ``ys + ya`` (first half) and
    ``ys - ya`` (second half, mirrored)."""
    tr, m, w = ys.shape
    wv = w // 2
    for t in range(tr):
        for half in range(2):
            k = t if half == 0 else nr - 1 - t
            if half == 1 and k == t:  # the middle row of an odd count is its own mirror
                break
            sg = 1.0 if half == 0 else -1.0
            for fr in range(m):
                s = ys[t, fr]
                d = ya[t, fr]
                ou = ru[h + k, fr]
                ov = rv[h + k, fr]
                for q in range(wv):
                    x = s[q] + sg * d[q]
                    y = s[w - 1 - q] + sg * d[w - 1 - q]
                    ou[q] = x + y
                    ov[q] = x - y
                if w % 2:
                    ou[wv] = s[wv] + sg * d[wv]


@njit(cache=True, nogil=True)
def unfold_into(frames, ys, ya, pu, pv, f, out):  # pragma: no cover - numba
    """``out`` ``(m, hn, wn)``: every output row once, in order, as the modulus of its values.

    Row ``i`` is the frame's row ``i / f`` when ``f`` divides ``i``, else a
    fractional row (from ``ys``, ``ya``); in it, column ``j`` is the row's
    pixel ``j / f`` when ``f`` divides ``j``, else a fractional column (from
    ``pu``, ``pv``).
    """
    m, h, w = frames.shape
    tr = ys.shape[0]
    hc = pu.shape[2]
    nr = (h - 1) * (f - 1)
    nc = (w - 1) * (f - 1)
    hn = out.shape[1]
    g = np.empty(w)    # the row's values at the frame's columns
    p = np.empty(nc)   # and at the fractional columns, in position order
    for fr in range(m):
        for i in range(hn):
            r0 = i // f
            ph = i - r0 * f
            if ph == 0:
                k = r0
                a = frames[fr, r0]
                for q in range(w):
                    g[q] = a[q]
            else:
                t = r0 * (f - 1) + ph - 1
                k = h + t
                if t < tr:
                    s = ys[t, fr]
                    d = ya[t, fr]
                    for q in range(w):
                        g[q] = s[q] + d[q]
                else:
                    s = ys[nr - 1 - t, fr]
                    d = ya[nr - 1 - t, fr]
                    for q in range(w):
                        g[q] = s[q] - d[q]
            a2 = pu[k, fr]
            b2 = pv[k, fr]
            for c in range(hc):
                p[c] = a2[c] + b2[c]
            for c in range(hc, nc):
                p[c] = a2[nc - 1 - c] - b2[nc - 1 - c]
            o = out[fr, i]
            if f == 2:
                for q in range(w - 1):
                    o[2 * q] = abs(g[q])
                    o[2 * q + 1] = abs(p[q])
            else:
                for q in range(w - 1):
                    o[q * f] = abs(g[q])
                    for c in range(1, f):
                        o[q * f + c] = abs(p[q * (f - 1) + c - 1])
            o[(w - 1) * f] = abs(g[w - 1])


@njit(cache=True, nogil=True)
def _products(frames, S, D, Sc, Dc, nr, f, u, v, ys, ya, ru, rv, pu, pv, out):  # pragma: no cover - numba
    m, h, w = frames.shape
    hh, hv, wh, wv = S.shape[1], D.shape[1], Sc.shape[0], Dc.shape[0]
    tr, hc = S.shape[0], Sc.shape[1]
    H = h + nr
    fold_frames(frames, u, v, ru, rv)
    if tr > 0:   # no fractional rows (a frame one pixel high): nothing to multiply
        np.dot(S, u.reshape((hh, m * w)), ys.reshape((tr, m * w)))
        np.dot(D, v.reshape((hv, m * w)), ya.reshape((tr, m * w)))
    fold_rows(ys, ya, h, nr, ru, rv)
    if hc > 0:
        np.dot(ru.reshape((H * m, wh)), Sc, pu.reshape((H * m, hc)))
        np.dot(rv.reshape((H * m, wv)), Dc, pv.reshape((H * m, hc)))
    unfold_into(frames, ys, ya, pu, pv, f, out)


@njit(cache=True, nogil=True)
def _buffers(m, h, w, S, D, Sc, Dc, nr):  # pragma: no cover - numba
    hh, hv, wh, wv = S.shape[1], D.shape[1], Sc.shape[0], Dc.shape[0]
    tr, hc = S.shape[0], Sc.shape[1]
    H = h + nr
    return (np.empty((hh, m, w)), np.empty((hv, m, w)), np.empty((tr, m, w)), np.empty((tr, m, w)),
            np.empty((H, m, wh)), np.empty((H, m, wv)), np.empty((H, m, hc)), np.empty((H, m, hc)))


@njit(cache=True, nogil=True)
def interpolate_batches(frames, S, D, Sc, Dc, nr, f, batch, out):  # pragma: no cover - numba
    """``out`` ``(n, hn, wn)``: the interpolation of every frame of ``frames`` ``(n, h, w)``, ``batch`` at a time.

    ``S``, ``D`` (rows) and ``Sc``, ``Dc`` (columns) are the half-size
    operators of :func:`fluoxr.kernels.sofi._centro_plan`, ``nr`` the number
    of fractional rows, ``f`` the factor (>= 2).
    """
    n, h, w = frames.shape
    m = min(batch, n)
    u, v, ys, ya, ru, rv, pu, pv = _buffers(m, h, w, S, D, Sc, Dc, nr)
    full = n - n % m if m > 0 else 0
    for i in range(0, full, m):
        _products(frames[i : i + m], S, D, Sc, Dc, nr, f, u, v, ys, ya, ru, rv, pu, pv, out[i : i + m])
    if full < n:
        k = n - full
        u, v, ys, ya, ru, rv, pu, pv = _buffers(k, h, w, S, D, Sc, Dc, nr)
        _products(frames[full:], S, D, Sc, Dc, nr, f, u, v, ys, ya, ru, rv, pu, pv, out[full:])
