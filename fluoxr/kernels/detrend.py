"""Trend fitting of one trace, re-derived from the ``seasonal`` package that optimap wraps.

optimap's ``detrend_timeseries`` calls ``seasonal.fit_trend`` (a small,
unmaintained package). Its pieces are SciPy's: ``LSQUnivariateSpline``,
Welch's periodogram, Theil-Sen slopes. This module restates the algorithm
on NumPy/SciPy so that fluoxr gives the same trend without the dependency:

- ``"mean"`` / ``"median"``: a centred window of ``(int(period * ptimes) //
  2) * 2 - 1`` frames (partial windows at the ends are left as data), then
  :func:`aglet` ends: the half-window at each end is replaced by a
  Theil-Sen line through the first/last window.
- ``"line"``: Theil-Sen slope of the median-filtered series (ends
  dropped); when its 95 % interval contains 0 the trend is flat at the
  median.
- ``"spline"``: least-squares cubic spline with ``len // (2 * window) + 1``
  segments, aglet ends. seasonal places the interior knots with
  ``linspace(0, n - 1, nknots + 2)[1:-2]`` (it drops the last interior
  knot); kept, so that trends match.
- ``period=None``: the period is a score-weighted mean of the periodogram
  peaks of the series minus a broad median trend (:func:`guess_period`).

Theil-Sen needs order statistics of all ``n (n - 1) / 2`` pairwise slopes;
``scipy.stats.theilslopes`` materialises ``n x n`` matrices (GBs for a
20,000-frame trace). :func:`theil_sen` selects the same order statistics
with bounded memory (a numba histogram selection once there are more than
2**22 slopes), equal to SciPy's to the last bit.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

__all__ = [
    "theil_sen",
    "median_filter",
    "mean_filter",
    "aglet",
    "line_filter",
    "spline_filter",
    "periodogram",
    "periodogram_peaks",
    "guess_period",
    "trend_window",
    "fit_trend",
]

# 95 % interval of Sen (1968), as scipy.stats.theilslopes(alpha=0.95): norm.ppf(0.025)
_Z = -1.959963984540054
_MATERIALISE = 1 << 22
_BINS = 4096


@njit(cache=True, nogil=True)
def _all_slopes(y: np.ndarray) -> np.ndarray:
    n = y.size
    out = np.empty(n * (n - 1) // 2, np.float64)
    k = 0
    for j in range(1, n):
        for i in range(j):
            out[k] = (y[j] - y[i]) / (j - i)
            k += 1
    return out


@njit(cache=True, nogil=True)
def _select_ranks(y: np.ndarray, ranks: np.ndarray, n_bins: int, cap: int) -> np.ndarray:
    # k-th smallest pairwise slopes without storing them: narrow each rank's value range with
    # histograms (bins hold their actual min/max, so ranges are sets of real slopes), then
    # collect the few slopes left in range and sort them
    n = y.size
    m = ranks.size
    for r in range(m):
        if ranks[r] < 0 or ranks[r] >= n * (n - 1) // 2:
            raise ValueError("ranks must index the pairwise slopes")
    lo = np.empty(m)
    hi = np.empty(m)
    below = np.zeros(m, np.int64)
    done = np.zeros(m, np.bool_)
    res = np.empty(m)
    vmin = np.inf
    vmax = -np.inf
    for j in range(1, n):
        for i in range(j):
            s = (y[j] - y[i]) / (j - i)
            if s < vmin:
                vmin = s
            if s > vmax:
                vmax = s
    for r in range(m):
        lo[r] = vmin
        hi[r] = vmax
    total = n * (n - 1) // 2
    inrange = np.full(m, total, np.int64)
    counts = np.zeros((m, n_bins), np.int64)
    bmin = np.empty((m, n_bins))
    bmax = np.empty((m, n_bins))
    while True:
        active = 0
        for r in range(m):
            if not done[r] and lo[r] == hi[r]:
                res[r] = lo[r]
                done[r] = True
            if not done[r]:
                active += 1
        if active == 0:
            return res
        small = True
        for r in range(m):
            if not done[r] and inrange[r] > cap:
                small = False
        if small:
            for r in range(m):
                if done[r]:
                    continue
                buf = np.empty(inrange[r])
                k = 0
                for j in range(1, n):
                    for i in range(j):
                        s = (y[j] - y[i]) / (j - i)
                        if s >= lo[r] and s <= hi[r]:
                            buf[k] = s
                            k += 1
                buf.sort()
                res[r] = buf[ranks[r] - below[r]]
                done[r] = True
            return res
        counts[:] = 0
        bmin[:] = np.inf
        bmax[:] = -np.inf
        for j in range(1, n):
            for i in range(j):
                s = (y[j] - y[i]) / (j - i)
                for r in range(m):
                    if done[r] or s < lo[r] or s > hi[r]:
                        continue
                    b = int((s - lo[r]) / (hi[r] - lo[r]) * n_bins)
                    if b >= n_bins:
                        b = n_bins - 1
                    counts[r, b] += 1
                    if s < bmin[r, b]:
                        bmin[r, b] = s
                    if s > bmax[r, b]:
                        bmax[r, b] = s
        for r in range(m):
            if done[r]:
                continue
            acc = below[r]
            # the rank always lies in one bin: the bins partition the slopes in range
            for b in range(n_bins):
                if counts[r, b] and acc + counts[r, b] > ranks[r]:
                    lo[r] = bmin[r, b]
                    hi[r] = bmax[r, b]
                    below[r] = acc
                    inrange[r] = counts[r, b]
                    break
                acc += counts[r, b]


def _repeat_term(y: np.ndarray) -> float:
    _, counts = np.unique(y, return_counts=True)
    k = counts[counts > 1].astype(np.float64)
    return float(np.sum(k * (k - 1) * (2 * k + 5)))


def theil_sen(y: np.ndarray) -> tuple[float, float, float]:
    """``(slope, low_slope, high_slope)`` of ``scipy.stats.theilslopes(y)`` (x = 0, 1, ...).

    The median and the 95 % interval are order statistics of the pairwise
    slopes; they are selected without an ``n x n`` matrix.

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr.kernels.detrend import theil_sen
    >>> theil_sen(np.array([0.0, 2.0, 4.0, 7.0]))[0]  # median of 2, 2, 2, 7/3, 5/2, 3
    2.166666666666667
    """
    y = np.ascontiguousarray(y, np.float64)
    n = y.size
    if n < 2:
        raise ValueError(f"a Theil-Sen slope needs at least 2 samples, got {n}")
    if np.isnan(y).any():
        return math.nan, math.nan, math.nan
    nt = n * (n - 1) // 2
    sigsq = 1 / 18.0 * (n * (n - 1) * (2 * n + 5) - _repeat_term(y))
    ranks = [(nt - 1) // 2, nt // 2]
    ci: list[int] | None = None
    if sigsq >= 0:
        sigma = math.sqrt(sigsq)
        ru = min(int(np.round((nt - _Z * sigma) / 2.0)), nt - 1)
        rl = max(int(np.round((nt + _Z * sigma) / 2.0)) - 1, 0)
        if 0 <= rl < nt and 0 <= ru < nt:
            ci = [rl, ru]
    want = np.array(ranks + (ci or []), np.int64)
    if nt <= _MATERIALISE:
        slopes = _all_slopes(y)
        vals = np.partition(slopes, np.unique(want))[want]
    else:
        vals = _select_ranks(y, want, _BINS, _MATERIALISE)
    slope = float((vals[0] + vals[1]) / 2.0) if nt % 2 == 0 else float(vals[1])
    if ci is None:
        return slope, math.nan, math.nan
    return slope, float(vals[2]), float(vals[3])


def median_filter(data: np.ndarray, window: int) -> np.ndarray:
    """Centred running median of an odd ``window``; partial windows at the ends keep the data."""
    from scipy.ndimage import median_filter as _mf

    out = np.array(data, np.float64)
    half = window // 2
    if data.size - 2 * half > 0:
        # an odd window's median is its middle element: the rank filter gives it exactly
        out[half : data.size - half] = _mf(np.asarray(data, np.float64), size=window, mode="nearest")[
            half : data.size - half]
    return out


def mean_filter(data: np.ndarray, window: int) -> np.ndarray:
    """Centred running mean (cumulative sums, as seasonal); partial windows at the ends keep the data."""
    out = np.array(data, np.float64)
    half = window // 2
    cum = np.concatenate(([0.0], np.cumsum(out)))
    if data.size - 2 * half > 0:
        out[half : data.size - half] = (cum[window:] - cum[:-window]) / window
    return out


def aglet(src: np.ndarray, window: int) -> np.ndarray:
    """Replace ``window // 2`` samples at each end with Theil-Sen lines through the end windows."""
    dst = np.array(src, np.float64)
    half = window // 2
    if half == 0:
        return dst
    left = theil_sen(src[:window])[0]
    right = theil_sen(src[-window:])[0]
    dst[0:half] = np.arange(-half, 0) * left + src[half]
    dst[-half:] = np.arange(1, half + 1) * right + src[-half - 1]
    return dst


def line_filter(data: np.ndarray, window: int) -> np.ndarray:
    """Theil-Sen line through the median-filtered series; flat at the median when the slope is not significant."""
    half = window // 2
    coarse = median_filter(data, window)[half : data.size - half]
    slope, lower, upper = theil_sen(coarse)
    med = float(np.median(data))
    if lower <= 0.0 and upper >= 0.0:
        return np.zeros(data.size) + med
    intercept = med - (data.size - 1) / 2 * slope
    return slope * np.arange(data.size) + intercept


def spline_filter(data: np.ndarray, nsegs: int) -> np.ndarray:
    """Least-squares cubic spline with seasonal's knots (``linspace(0, n - 1, nknots + 2)[1:-2]``)."""
    from scipy.interpolate import LSQUnivariateSpline

    index = np.arange(data.size)
    nknots = max(2, nsegs + 1)
    knots = np.linspace(index[0], index[-1], nknots + 2)[1:-2]
    return LSQUnivariateSpline(index, data, knots)(index)


MIN_FFT_CYCLES = 3.0
MAX_FFT_PERIOD = 512


def periodogram(data: np.ndarray, min_period: int = 4, max_period: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Welch spectrum per integer period (seasonal's ``periodogram``), longest period first."""
    import scipy.signal

    if max_period is None:
        max_period = int(min(len(data) / MIN_FFT_CYCLES, MAX_FFT_PERIOD))
    nperseg = min(max_period * 2, len(data) // 2)
    freqs, power = scipy.signal.welch(data, 1.0, scaling="spectrum", nperseg=nperseg)
    periods = np.array([int(round(1.0 / f)) for f in freqs[1:]])
    power = power[1:]
    # keep the largest power among frequencies that round to the same period
    keep_p: list[int] = []
    keep_w: list[float] = []
    for p, w in zip(periods.tolist(), power.tolist()):
        if keep_p and keep_p[-1] == p:
            keep_w[-1] = max(keep_w[-1], w)
        else:
            keep_p.append(p)
            keep_w.append(w)
    periods = np.array(keep_p, dtype=periods.dtype)
    power = np.array(keep_w, dtype=power.dtype)
    power[periods == nperseg] = 0
    min_i = len(periods[periods >= max_period]) - 1
    max_i = len(periods[periods < min_period])
    # seasonal's slice, including its behaviour when max_i == 0 (an empty result)
    return periods[min_i:-max_i], power[min_i:-max_i]


def periodogram_peaks(data: np.ndarray, min_period: int = 4, max_period: int | None = None,
                      thresh: float = 0.90) -> list[list[float]] | None:
    """Periods scoring at least ``thresh`` times the best score: ``[period, power, shorter, longer]`` rows."""
    periods, power = periodogram(data, min_period, max_period)
    if np.all(np.isclose(power, 0.0)):
        return None
    result = []
    keep = power.max() * thresh
    while True:
        peak = int(power.argmax())
        if power[peak] < keep:
            break
        result.append([periods[peak], power[peak], periods[min(peak + 1, len(periods) - 1)],
                       periods[max(peak - 1, 0)]])
        power[peak] = 0
    return result if result else None


def guess_period(data: np.ndarray) -> int:
    """Dominant period (frames) of trended data, seasonal's ``guess_trended_period``."""
    max_period = min(len(data) // 3, 512)
    broad = fit_trend(data, kind="median", period=max_period)
    peaks = periodogram_peaks(data - broad)
    if peaks is None:
        return max_period
    periods, scores = zip(*[(p[0], p[1]) for p in peaks])
    return int(round(np.average(periods, weights=scores)))


def trend_window(period: float, ptimes: float) -> int:
    """seasonal's odd smoothing window ``(int(period * ptimes) // 2) * 2 - 1``."""
    return (int(period * ptimes) // 2) * 2 - 1


def fit_trend(data: np.ndarray, kind: str | None = "spline", period: float | None = None,
              ptimes: float = 2) -> np.ndarray:
    """Trend of a 1-D series (float64), equal to ``seasonal.fit_trend``.

    Raises ``ValueError`` where seasonal would fail with an index or shape
    error: a window under 3 frames, or a series not longer than the window.

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr.kernels.detrend import fit_trend
    >>> x = 0.5 * np.arange(60.0) + np.tile([1.0, -1.0, 0.0], 20)
    >>> np.round(fit_trend(x, kind="mean", period=3, ptimes=4 / 3)[1:6], 6).tolist()
    [0.5, 1.0, 1.5, 2.0, 2.5]
    """
    data = np.asarray(data, np.float64)
    if kind is None:
        return np.zeros(len(data)) + np.mean(data)
    if period is None:
        if len(data) < 12:
            raise ValueError(f"period=None needs at least 12 frames to estimate a period, got {len(data)}")
        period = guess_period(data)
    window = trend_window(period, ptimes)
    if window < 3:
        raise ValueError(f"period * ptimes must be at least 4 frames (window {window}); got period={period}, "
                         f"ptimes={ptimes}")
    if len(data) <= window:
        raise ValueError(f"the trace ({len(data)} frames) must be longer than the smoothing window of {window} "
                         f"frames (period={period}, ptimes={ptimes})")
    if kind == "median":
        return aglet(median_filter(data, window), window)
    if kind == "mean":
        return aglet(mean_filter(data, window), window)
    if kind == "line":
        return line_filter(data, window)
    if kind == "spline":
        nsegs = len(data) // (window * 2) + 1
        return aglet(spline_filter(data, nsegs), window)
    raise ValueError(f"kind must be one of ('mean', 'median', 'line', 'spline', None), got {kind!r}")
