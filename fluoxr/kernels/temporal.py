"""Filters along the last axis (time) of a block of traces, with their halos.

Every filter here takes a block that may carry context (a halo) from its
neighbours and two flags saying whether the block touches the *true* start
or end of the recording. At a true end the filter pads as its peer does
(edge replication for suite2p's maximin, reflection for scipy's Gaussian);
elsewhere it uses the halo and returns only the samples that the halo fully
determines ("valid" filtering). So the lazy result equals the in-memory one
for any chunking. Each filter's halo is a function of its parameters
(``*_halo``), read by the orchestration in :mod:`fluoxr.temporal`.

The filters are written against the array module of their input
(:func:`fluoxr._backend.array_module`, SciPy's or CuPy's ``ndimage``), so
the same code serves NumPy chunks and CuPy chunks.

References in ``tests/test_temporal.py``: suite2p's maximin restated with
``np.pad(mode="edge")`` and sliding windows, ``scipy.ndimage.gaussian_filter1d``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._backend import array_module, ndimage_module

__all__ = [
    "maximin_window",
    "maximin_gaussian",
    "maximin_halo",
    "maximin",
    "gaussian_weights",
    "gaussian_halo",
    "gaussian_reflect",
    "percentile_rows",
    "round_to_int",
]


def maximin_window(window_s: float, fps: float) -> int:
    """suite2p's window in frames: ``int(window_s * fps)``, made odd by adding one."""
    win = int(window_s * fps)
    return win + 1 if win % 2 == 0 else win


def maximin_gaussian(sigma: float) -> np.ndarray:
    """suite2p's maximin smoothing kernel: radius ``round(3 sigma)``, float32 like its torch code.

    ``sigma == 0`` gives the identity (suite2p would divide 0 by 0).
    """
    g = int(np.round(sigma * 3))
    if sigma == 0:
        return np.ones(1, np.float32)
    a = np.arange(-g, g + 1)
    k = np.exp(-(a.astype(np.float32) ** 2) / np.float32(2 * sigma**2)).astype(np.float32)
    return (k / k.sum(dtype=np.float32)).astype(np.float32)


def maximin_halo(sigma: float, win: int) -> int:
    """Frames of context one output sample needs on each side: Gaussian radius + min and max half-windows."""
    return maximin_gaussian(sigma).size // 2 + 2 * (win // 2)


def _pad_edge(x: Any, r: int, left: bool, right: bool) -> Any:
    if r == 0 or not (left or right):
        return x
    xp = array_module(x)
    return xp.pad(x, [(0, 0)] * (x.ndim - 1) + [(r if left else 0, r if right else 0)], mode="edge")


def _valid(y: Any, r: int) -> Any:
    return y[..., r : y.shape[-1] - r] if r else y


def maximin(x: Any, sigma: float, win: int, *, pad_left: bool = True, pad_right: bool = True) -> Any:
    """suite2p's maximin baseline ``Flow`` of each row of ``x`` (float32), in ``x``'s array module.

    Gaussian smoothing (:func:`maximin_gaussian`), then a minimum filter and
    a maximum filter of ``win`` frames, each stage edge-replicated at a true
    end (``pad_left``/``pad_right``). Where a flag is False the block must
    carry :func:`maximin_halo` frames of context on that side, and the output
    is shorter by that many frames there.

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr.kernels.temporal import maximin
    >>> maximin(np.array([[3.0, 1.0, 2.0, 5.0, 4.0]]), 0.0, 3).tolist()
    [[1.0, 1.0, 2.0, 4.0, 4.0]]
    """
    xp = array_module(x)
    ndi = ndimage_module(xp)
    k = maximin_gaussian(sigma).astype(np.float64)
    g = k.size // 2
    h = win // 2
    y = xp.asarray(x, dtype=xp.float64)
    missing = xp.isnan(y)
    has_missing = bool(missing.any())
    if has_missing:
        # NaN policy: an output frame is NaN when a NaN lies within its support
        # (g + 2h frames either side); the filters themselves see finite values
        # because the min/max filters give undefined results around NaN
        y = xp.where(missing, 0.0, y)
    if g:
        y = _valid(ndi.correlate1d(_pad_edge(y, g, pad_left, pad_right), xp.asarray(k), axis=-1, mode="nearest"), g)
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


def gaussian_weights(sigma: float, truncate: float = 4.0) -> np.ndarray:
    """``scipy.ndimage.gaussian_filter1d``'s weights (radius ``int(truncate * sigma + 0.5)``)."""
    radius = int(truncate * float(sigma) + 0.5)
    if sigma == 0:
        return np.ones(1)
    x = np.arange(-radius, radius + 1)
    # sigma * sigma, as scipy writes it: sigma ** 2 (pow) can differ in the last bit for some sigmas, and
    # then so would every filtered value (tests/test_temporal.py::test_gaussian_reflect_equals_scipy)
    sigma2 = float(sigma) * float(sigma)
    phi = np.exp(-0.5 / sigma2 * x**2)
    return phi / phi.sum()


def gaussian_halo(sigma: float, truncate: float = 4.0) -> int:
    """Context frames of :func:`gaussian_reflect`: the Gaussian's radius."""
    return gaussian_weights(sigma, truncate).size // 2


def _reflect_index(i: np.ndarray, n: int) -> np.ndarray:
    if n == 1:
        return np.zeros_like(i)
    j = np.mod(i, 2 * n)
    return np.where(j >= n, 2 * n - 1 - j, j)


def gaussian_reflect(x: Any, sigma: float, *, pad_left: bool = True, pad_right: bool = True,
                     truncate: float = 4.0) -> Any:
    """``scipy.ndimage.gaussian_filter1d(x, sigma, axis=-1)`` (mode "reflect"), float64, halo-aware, in ``x``'s array module.

    At a true end the signal is reflected (``d c b a | a b c d``) as scipy
    does; elsewhere the block must carry :func:`gaussian_halo` frames of
    context, which are trimmed from the output. A block that is both the
    true start and end gives exactly scipy's result, even when the radius
    exceeds the length.

    Examples
    --------
    >>> import numpy as np
    >>> gaussian_reflect(np.array([[1.0, 1.0, 4.0]]), 0.0).tolist()
    [[1.0, 1.0, 4.0]]
    """
    xp = array_module(x)
    ndi = ndimage_module(xp)
    w = gaussian_weights(sigma, truncate)
    r = w.size // 2
    y = xp.asarray(x, dtype=xp.float64)
    if r == 0:
        return y.copy()
    n = y.shape[-1]
    lo = -r if pad_left else 0
    hi = n + r if pad_right else n
    idx = np.arange(lo, hi)
    if pad_left and pad_right:
        idx = _reflect_index(idx, n)
    else:
        # one true end: the reflection never reaches the other side of this block (the block is
        # at least as long as the radius, see fluoxr.temporal)
        idx = np.where(idx < 0, -idx - 1, idx) if pad_left else idx
        idx = np.where(idx >= n, 2 * n - 1 - idx, idx) if pad_right else idx
    padded = y[..., xp.asarray(idx)]
    return _valid(ndi.correlate1d(padded, xp.asarray(w), axis=-1, mode="nearest"), r)


def percentile_rows(block: Any, q: float) -> Any:
    """The ``q`` percentile of each row along the last axis (keepdims), float32, in ``block``'s array module.

    Linear interpolation (NumPy's default); a row with a NaN gives NaN.

    Examples
    --------
    >>> import numpy as np
    >>> percentile_rows(np.array([[1.0, 2.0, 3.0], [4.0, np.nan, 5.0]]), 50.0).tolist()
    [[2.0], [nan]]
    """
    xp = array_module(block)
    if block.dtype == xp.float16:
        # np.percentile interpolates in the input's dtype: float16 would round the
        # baseline to 3 significant digits, unlike the float32 result of the same values
        block = block.astype(xp.float32)
    out = xp.percentile(block, q, axis=-1, keepdims=True).astype(xp.float32)
    # NumPy's percentile is NaN for a row with a NaN (and keeps that NaN's bits); a sort-based one
    # (CuPy's) need not be: make it so, leaving NaN results as they are
    lost = xp.isnan(block).any(axis=-1, keepdims=True) & ~xp.isnan(out)
    return xp.where(lost, xp.float32(np.nan), out)


def round_to_int(y: np.ndarray, dtype: Any, lo: float, hi: float) -> np.ndarray:
    """``y`` rounded (half to even) to the integer ``dtype``, saturating at ``[lo, hi]``; NaN becomes the lower bound.

    The bounds are applied to the rounded float64 values and the saturated
    samples are set to the bounds as integers, so the extremes of every
    integer dtype are exact: ``float(np.iinfo(np.int64).max)`` is ``2**63``,
    which a plain ``astype`` would wrap to the minimum. ``lo`` and ``hi`` are
    first narrowed to the integers of the dtype's range.

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr.kernels.temporal import round_to_int
    >>> round_to_int(np.array([-3.0, 0.5, 1.5, 2.0**63, np.nan]), np.int64, 0, 2.0**63).tolist()
    [0, 0, 2, 9223372036854775807, 0]
    """
    dtype = np.dtype(dtype)
    info = np.iinfo(dtype)
    lo_i = max(math.ceil(lo), int(info.min))
    hi_i = min(math.floor(hi), int(info.max))
    y = np.rint(np.asarray(y, dtype=np.float64))
    out = np.empty(y.shape, dtype)
    with np.errstate(invalid="ignore"):
        low = ~(y > lo_i)  # NaN too: an integer has no NaN
        high = y >= hi_i
    mid = ~(low | high)
    out[mid] = y[mid].astype(dtype)
    out[high] = hi_i
    out[low] = lo_i
    return out
