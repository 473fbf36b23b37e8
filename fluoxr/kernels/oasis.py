"""OASIS without sparsity penalty (Friedrich, Zhou & Paninski 2017), as suite2p's ``dcnv.oasis``.

The pool-adjacent-violators loop keeps, per pool, its value ``v``, weight
``w``, start ``t`` and length ``l`` in float32 buffers, with the same mixed
float32/float64 arithmetic as suite2p's numba code, so the spikes are equal
to suite2p's bit for bit (``tests/test_spikes.py`` checks a pure-Python pool
algorithm and, when installed, suite2p itself).

The kernel is serial and releases the GIL: dask runs blocks of ROIs on
parallel threads (a ``prange`` inside a dask task would oversubscribe the
cores, and numba's default "workqueue" layer must not be entered from
several threads at once).
"""

from __future__ import annotations

import numpy as np
from numba import njit

__all__ = ["oasis_rows", "decay_exponent"]


def decay_exponent(tau_s: float, fps: float) -> float:
    """``g = -1 / (tau * fs)`` as suite2p's numba signature computes it (product in float32)."""
    return -1.0 / float(np.float32(tau_s) * np.float32(fps))


@njit(cache=True, nogil=True)
def _oasis_trace(f: np.ndarray, g: float, v: np.ndarray, w: np.ndarray, t: np.ndarray, l: np.ndarray,
                 s: np.ndarray) -> None:
    nt = f.shape[0]
    ip = 0
    for it in range(nt):
        v[ip] = f[it]
        w[ip] = 1.0
        t[ip] = it
        l[ip] = 1.0
        while ip > 0:
            # float32 length times a float64 exponent: as suite2p
            if v[ip - 1] * np.exp(g * l[ip - 1]) > v[ip]:
                f1 = np.exp(g * l[ip - 1])
                f2 = np.exp(2 * g * l[ip - 1])
                wnew = w[ip - 1] + w[ip] * f2
                v[ip - 1] = (v[ip - 1] * w[ip - 1] + v[ip] * w[ip] * f1) / wnew
                w[ip - 1] = wnew
                l[ip - 1] = l[ip - 1] + l[ip]
                ip -= 1
            else:
                break
        ip += 1
    for i in range(nt):
        s[i] = 0.0
    for j in range(1, ip):
        s[t[j]] = v[j] - v[j - 1] * np.exp(g * l[j - 1])


@njit(cache=True, nogil=True)
def _oasis_rows(f: np.ndarray, g: float, out: np.ndarray) -> None:
    nt = f.shape[1]
    v = np.empty(nt, np.float32)
    w = np.empty(nt, np.float32)
    t = np.empty(nt, np.int64)
    l = np.empty(nt, np.float32)
    for n in range(f.shape[0]):
        _oasis_trace(f[n], g, v, w, t, l, out[n])


def oasis_rows(f: np.ndarray, tau_s: float, fps: float) -> np.ndarray:
    """Deconvolved activity of each row of ``f`` (``(n, n_frames)``), float32.

    ``s[t]`` is the jump of the fitted calcium at the start ``t`` of each
    pool after the first (it can be negative, as in suite2p); other frames
    are 0.

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr.kernels.oasis import oasis_rows
    >>> c = np.float32(0.5) ** np.arange(6, dtype=np.float32)
    >>> f = np.concatenate([[0, 0], c]).astype(np.float32)[None]
    >>> np.round(oasis_rows(f, tau_s=1 / np.log(2), fps=1.0), 3).tolist()
    [[0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]]
    """
    f32 = np.ascontiguousarray(f, dtype=np.float32)
    if f32.ndim != 2:
        raise ValueError(f"f must be 2-D (rows, frames), got shape {f32.shape}")
    out = np.empty_like(f32)
    # NaN policy: pools cannot be formed across a missing frame, so a row with
    # any NaN (or inf) gives NaN everywhere rather than silently wrong spikes
    bad = ~np.isfinite(f32).all(axis=1)
    if bad.any():
        f32 = np.where(bad[:, None], np.float32(0), f32)
    if f32.shape[1]:
        _oasis_rows(f32, decay_exponent(tau_s, fps), out)
    out[bad] = np.nan
    return out
