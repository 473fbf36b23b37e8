"""Operations along time on traces: neuropil subtraction, baseline, dF/F, normalisation, detrending.

All are lazy and give the same answer for any chunking along ``time``:

- local filters (:func:`baseline` "maximin", the smoothing of "constant")
  run on the temporal-filter driver (:func:`fluoxr.drivers.apply_temporal`)
  with a halo computed from their parameters (:mod:`fluoxr.kernels.temporal`);
  padding is applied only at the true start and end of the recording, never
  at chunk edges, and the result has the input's chunks, also when chunks
  are shorter than the halo;
- per-ROI statistics that are tree reductions (the "constant" minimum,
  :func:`normalize`'s min and max) never rechunk time;
- :func:`detrend` (fits and period estimate over the whole trace) is a
  whole-recording filter on the same driver: one chunk along time per block
  of ROIs, split back into the input's chunks; the "prctile" percentile, a
  per-ROI reduction that does not merge from partial states, gathers each
  trace once. Traces are small (ROIs x frames float32), so these are the
  places where time is whole in a chunk.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from . import _backend
from ._validate import check_choice, check_number
from ._video import check_traces, require_fps
from .device import host
from .drivers import WHOLE, TemporalFilter, apply_temporal
from .kernels import detrend as kdetrend
from .kernels import temporal as ktemporal

logger = logging.getLogger(__name__)

__all__ = ["subtract_neuropil", "baseline", "preprocess", "dff", "normalize", "detrend", "map_time", "traces_fps"]


# --------------------------------------------------------------------------------------------
# helpers: the two ways to map a kernel along time


def _time_last(traces: xr.DataArray) -> tuple[xr.DataArray, da.Array]:
    t = traces.transpose(..., "time")
    data = t.data
    if not isinstance(data, da.Array):
        data = da.from_array(data, chunks=(-1,) * data.ndim, asarray=False)
    return t, data


def _like(template: xr.DataArray, data: da.Array, name: str | None, attrs: dict[str, Any] | None = None) -> xr.DataArray:
    out = template.copy(data=data)
    out.name = name
    out.attrs = dict(template.attrs) if attrs is None else attrs
    return out


def _at_true_ends(window: Any, *, before: int, after: int, kernel: Callable[..., Any], halo: int,
                  **kwargs: Any) -> Any:
    """Run a ``pad_left``/``pad_right`` kernel of :mod:`fluoxr.kernels.temporal` on the driver's window.

    With the edge policy "none" the window is cut at the recording's ends, so
    less context than the halo on a side means that side is a true end: the
    kernel pads there itself (suite2p's maximin edge-replicates every stage,
    which no padding of the input reproduces) and keeps those frames, which
    are then trimmed to the chunk's own.
    """
    pad_left, pad_right = before < halo, after < halo
    out = kernel(window, pad_left=pad_left, pad_right=pad_right, **kwargs)
    lo = before if pad_left else 0
    hi = out.shape[-1] - (after if pad_right else 0)
    return out[..., lo:hi] if (lo or hi != out.shape[-1]) else out


def _symmetric_halo(*, halo: int, **_: Any) -> tuple[int, int]:
    return halo, halo


#: a kernel of :mod:`fluoxr.kernels.temporal` (or its GPU twin) that pads at the true ends itself
_TRUE_ENDS = TemporalFilter(_at_true_ends, halo=_symmetric_halo, edge="none", name="fluoxr-time")


def map_time(data: da.Array, func: Callable[..., np.ndarray], halo: int, *, dtype: Any, **kwargs: Any) -> da.Array:
    """Apply a halo-aware kernel along the last axis of ``data``, chunk-invariantly.

    ``func(block, pad_left=..., pad_right=..., **kwargs)`` receives a block
    with ``halo`` samples of context on each side that has a neighbour and
    flags saying whether it touches the true start/end, and returns the
    block's own samples (see :mod:`fluoxr.kernels.temporal`). The result
    has the chunks of ``data``; the halos come from the temporal-filter
    driver (:func:`fluoxr.drivers.apply_temporal`).
    """
    return apply_temporal(data, _TRUE_ENDS, axis=data.ndim - 1, dtype=dtype,
                          meta=_backend.meta_like(data, data.ndim, dtype), kernel=func, halo=int(halo), **kwargs)


def traces_fps(traces: xr.DataArray, fps: Any = None) -> float:
    """Frame rate: the argument, else ``attrs["fps"]``, else from a ``time`` coord in seconds.

    xarray drops attrs in arithmetic (``F - baseline``), so the ``time``
    coordinate (seconds, attr ``units="s"``, written by fluoxr when the frame
    rate is known) is the fallback: ``(n - 1) / (t[-1] - t[0])`` rounded to
    12 significant digits, so that a window of ``window_s * fps`` frames
    does not lose a frame to rounding.
    """
    if fps is None and traces.attrs.get("fps") is None and "time" in traces.coords:
        tc = traces["time"]
        if tc.attrs.get("units") == "s" and tc.size >= 2 and tc.dtype.kind == "f":
            t = np.asarray(tc.values, np.float64)
            span = t[-1] - t[0]
            if np.isfinite(span) and span > 0:
                return float(f"{(t.size - 1) / span:.12g}")
    return require_fps(traces, fps)


def _whole_time(data: da.Array) -> da.Array:
    """One chunk along time, blocks of ROIs of dask's default chunk size.

    Only for the "prctile" baseline: one percentile per ROI is a reduction
    (not a filter), and a percentile does not merge from partial states, so
    the trace of each ROI is gathered once. Traces are small (ROIs x frames).
    """
    return data.rechunk({**{i: "auto" for i in range(data.ndim - 1)}, data.ndim - 1: -1})


# --------------------------------------------------------------------------------------------
# neuropil


def subtract_neuropil(F: xr.DataArray | xr.Dataset, Fneu: xr.DataArray | None = None, *,
                      coeff: float = 0.7) -> xr.DataArray:
    """``F - coeff * Fneu`` (suite2p's neuropil correction), float32, lazy.

    Parameters
    ----------
    F : DataArray or Dataset
        Cell traces, or the Dataset of :func:`fluoxr.extract` (then ``Fneu``
        is taken from it).
    Fneu : DataArray, optional
        Neuropil traces of the same shape.
    coeff : float
        Neuropil coefficient (suite2p's default 0.7).

    Examples
    --------
    >>> import numpy as np, xarray as xr, fluoxr
    >>> F = xr.DataArray(np.full((2, 3), 10, np.float32), dims=("roi", "time"))
    >>> fluoxr.subtract_neuropil(F, F / 2, coeff=0.5).values[0].tolist()
    [7.5, 7.5, 7.5]
    """
    if isinstance(F, xr.Dataset):
        if Fneu is not None:
            raise TypeError("Fneu must not be given when F is a Dataset (it is taken from F['Fneu'])")
        if "F" not in F or "Fneu" not in F:
            raise ValueError(f"F must be the Dataset of fluoxr.extract with 'F' and 'Fneu', got variables {list(F)}")
        F, Fneu = F["F"], F["Fneu"]
    F = check_traces(F, "F")
    if Fneu is None:
        raise TypeError("Fneu is required (or pass the Dataset of fluoxr.extract as F)")
    Fneu = check_traces(Fneu, "Fneu")
    if F.sizes != Fneu.sizes:
        raise ValueError(f"F and Fneu must have the same dims and sizes, got {dict(F.sizes)} and {dict(Fneu.sizes)}")
    coeff = check_number(coeff, "coeff")
    F, Fneu = _aligned(F, Fneu, "Fneu")
    out = (F - np.float32(coeff) * Fneu).astype(np.float32)
    out.name = "Fc"
    out.attrs = dict(F.attrs)
    return out


def _aligned(a: xr.DataArray, b: xr.DataArray, name: str) -> tuple[xr.DataArray, xr.DataArray]:
    """``a`` and ``b`` whose shared coordinates must match exactly (xarray would inner-join them)."""
    try:
        return xr.align(a, b, join="exact")
    except ValueError as exc:
        bad = [d for d in set(a.dims) & set(b.dims) if d in a.indexes and d in b.indexes
               and not a.indexes[d].equals(b.indexes[d])]
        raise ValueError(f"{name} must have the same {bad or 'coordinate'} labels as the traces it is combined "
                         f"with (arithmetic would silently drop unmatched ones): {exc}") from None


# --------------------------------------------------------------------------------------------
# baseline


def baseline(
    traces: xr.DataArray,
    *,
    method: str = "maximin",
    window_s: float = 60.0,
    sigma_frames: float = 10.0,
    percentile: float = 8.0,
    fps: float | None = None,
    global_min: bool = False,
) -> xr.DataArray:
    """Baseline ``F0`` of each trace, as suite2p's ``preprocess`` estimates it (lazy, float32).

    suite2p's ``preprocess`` returns ``F - F0``; here the baseline itself is
    returned (``traces - baseline(traces)`` is suite2p's result; :func:`dff`
    divides by it).

    Parameters
    ----------
    traces : DataArray
        Traces with a ``time`` dim (e.g. :func:`subtract_neuropil`'s).
    method : {"maximin", "constant", "prctile"}
        "maximin": Gaussian smoothing (``sigma_frames``, radius
        ``round(3 sigma)``), then a minimum and a maximum filter of
        ``int(window_s * fps)`` frames (made odd), each edge-replicated at
        the true ends of the recording. Lazy with a halo of radius + 2 x
        half-window frames. "constant": the minimum of the trace smoothed by
        ``scipy.ndimage.gaussian_filter1d(sigma_frames)``, per ROI (a tree
        reduction over time). "prctile": the ``percentile`` of each trace
        (needs the whole trace per ROI: time is rechunked to one chunk).
    window_s : float
        Window of the maximin filters in seconds (needs ``fps``).
    sigma_frames : float
        Gaussian width in frames (0: no smoothing; suite2p would give NaN).
    percentile : float
        Percentile for "prctile".
    fps : float, optional
        Frame rate; default ``traces.attrs["fps"]``, else from the ``time`` coord in seconds.
    global_min : bool
        "constant" only: one minimum over every ROI, as suite2p (which
        subtracts one number from all traces). The default takes each
        ROI's own minimum.

    Notes
    -----
    suite2p's "constant" and "prctile" modify ``F`` in place; fluoxr never
    modifies its input. Its maximin smooths in float32 (torch); fluoxr in
    float64, so values differ from suite2p's by float32 rounding (about
    1e-5 relative).

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> from fluoxr.testing import tiny_video
    >>> tr = fluoxr.traces(tiny_video((40, 8, 8)), [(4, 4)], size=3)
    >>> b = fluoxr.baseline(tr, window_s=1.0, sigma_frames=2)
    >>> b.dims, b.dtype, bool((b <= tr.max()).all())
    (('roi', 'time'), dtype('float32'), True)
    """
    traces = check_traces(traces)
    check_choice(method, "method", ("maximin", "constant", "prctile"))
    sigma = check_number(sigma_frames, "sigma_frames", ge=0)
    t, data = _time_last(traces)
    # the kernels of the chunks' backend (array-module code: the same filters and halos on the GPU)
    K = _backend.dispatch_for(data)
    if method == "maximin":
        window_s = check_number(window_s, "window_s", gt=0)
        rate = traces_fps(traces, fps)
        win = ktemporal.maximin_window(window_s, rate)
        halo = ktemporal.maximin_halo(sigma, win)
        out = map_time(data, K.maximin, halo, dtype=np.float32, sigma=sigma, win=win)
    elif method == "constant":
        if not isinstance(global_min, (bool, np.bool_)):
            raise TypeError(f"global_min must be True or False, got {global_min!r}")
        halo = ktemporal.gaussian_halo(sigma)
        smooth = map_time(data, K.gaussian_reflect, halo, dtype=np.float64, sigma=sigma)
        keep = [i for i, d in enumerate(t.dims) if d == "channel"]
        axes = tuple(i for i in range(data.ndim) if i not in keep) if global_min else (data.ndim - 1,)
        low = smooth.min(axis=axes, keepdims=True).astype(np.float32)
        out = da.broadcast_to(low, data.shape, chunks=data.chunks)
    else:
        q = check_number(percentile, "percentile", ge=0, le=100)
        whole = _whole_time(data)
        low = whole.map_blocks(K.percentile_rows, q=q, dtype=np.float32, chunks=whole.chunks[:-1] + ((1,),),
                               meta=_backend.meta_like(data, data.ndim, np.float32))
        out = da.broadcast_to(low.rechunk(data.chunks[:-1] + ((1,),)), data.shape, chunks=data.chunks)
    result = _like(t, out, "baseline")
    result.attrs["baseline_method"] = method
    return result.transpose(*traces.dims)


# preprocess takes suite2p's parameter name ``baseline``, which hides the function inside it
_baseline = baseline


def preprocess(
    traces: xr.DataArray,
    *,
    baseline: str = "maximin",
    win_baseline: float = 60.0,
    sig_baseline: float = 10.0,
    prctile_baseline: float = 8.0,
    fps: float | None = None,
) -> xr.DataArray:
    """suite2p's ``preprocess``: the traces minus their baseline, with suite2p's names and defaults (lazy, float32).

    What suite2p runs before OASIS on ``F - 0.7 * Fneu``. The parameters are
    suite2p's ``settings["dcnv_preprocess"]`` keys (pass that section as
    ``**settings``), so a ported call keeps its values:

    - "maximin": Gaussian smoothing of ``sig_baseline`` frames, then a
      minimum and a maximum filter of ``int(win_baseline * fps)`` frames
      (made odd);
    - "constant": ONE number for all ROIs, the global minimum of the
      smoothed traces, as suite2p (:func:`baseline` with ``global_min=True``;
      per-ROI minima are ``baseline(..., method="constant")``);
    - "prctile": each trace's ``prctile_baseline`` percentile.

    Unlike suite2p, the input is never modified in place.

    Parameters
    ----------
    traces : DataArray
        ``("roi", "time")`` traces (e.g. :func:`subtract_neuropil`'s).
    baseline : {"maximin", "constant", "prctile"}
        suite2p's ``baseline``.
    win_baseline : float
        Window of the maximin filters in seconds.
    sig_baseline : float
        Gaussian width in frames.
    prctile_baseline : float
        Percentile for "prctile".
    fps : float, optional
        Frame rate (suite2p's ``fs``); default ``traces.attrs["fps"]``.

    Examples
    --------
    >>> import numpy as np, xarray as xr, fluoxr
    >>> F = xr.DataArray(np.array([[3., 4., 5.], [7., 6., 9.]], np.float32), dims=("roi", "time"), attrs={"fps": 1})
    >>> fluoxr.preprocess(F, baseline="constant", sig_baseline=0).values.tolist()
    [[0.0, 1.0, 2.0], [4.0, 3.0, 6.0]]
    """
    traces = check_traces(traces)
    check_choice(baseline, "baseline", ("maximin", "constant", "prctile"))
    F0 = _baseline(traces, method=baseline, window_s=win_baseline, sigma_frames=sig_baseline,
                    percentile=prctile_baseline, fps=fps, global_min=baseline == "constant")
    out = (traces - F0).astype(np.float32)
    out.name = traces.name
    out.attrs = dict(traces.attrs) | {"baseline_method": baseline}
    return out


def dff(
    traces: xr.DataArray,
    *,
    f0: xr.DataArray | None = None,
    method: str = "maximin",
    window_s: float = 60.0,
    sigma_frames: float = 10.0,
    percentile: float = 8.0,
    fps: float | None = None,
) -> xr.DataArray:
    """``(F - F0) / F0``, with ``F0`` given or from :func:`baseline` (lazy, float32).

    The baseline of neuropil-corrected traces can be near 0 or negative;
    dF/F is then meaningless. Pass raw ``F`` or a positive ``f0``.

    Examples
    --------
    >>> import numpy as np, xarray as xr, fluoxr
    >>> F = xr.DataArray(np.array([[10.0, 15.0, 10.0]], np.float32), dims=("roi", "time"))
    >>> fluoxr.dff(F, method="prctile", percentile=0).values.tolist()
    [[0.0, 0.5, 0.0]]
    """
    traces = check_traces(traces)
    if f0 is None:
        f0 = baseline(traces, method=method, window_s=window_s, sigma_frames=sigma_frames, percentile=percentile,
                      fps=fps)
    elif not isinstance(f0, xr.DataArray):
        raise TypeError(f"f0 must be an xarray.DataArray broadcastable to traces, got {type(f0).__name__}")
    else:
        traces, f0 = _aligned(traces, f0, "f0")
    out = ((traces - f0) / f0).astype(np.float32)
    out.name = "dff"
    out.attrs = dict(traces.attrs)
    return out


# --------------------------------------------------------------------------------------------
# normalize (optimap)


def normalize(
    traces: xr.DataArray,
    *,
    ymin: float = 0.0,
    ymax: float | None = None,
    vmin: Any = None,
    vmax: Any = None,
    clip: bool = True,
    dtype: Any = np.float32,
) -> xr.DataArray:
    """Scale each trace to ``[ymin, ymax]`` (optimap's ``normalize`` along time), lazy.

    ``(x - vmin) / (vmax - vmin + eps) * (ymax - ymin) + ymin`` with ``vmin``
    and ``vmax`` each trace's NaN-ignoring min and max over time (tree
    reductions) unless given (numbers, or DataArrays broadcastable to the
    traces); ``eps`` is the machine epsilon of the data (integer data is
    converted to float32 first). With ``vmin`` or ``vmax`` given and
    ``clip``, the result is clipped to ``[ymin, ymax]``. ``ymax`` defaults to
    1, or the largest value of an integer ``dtype``.

    Integer ``dtype``: the fraction ``(x - vmin) / (vmax - vmin + eps)`` is
    computed as optimap does, then mapped to ``[ymin, ymax]`` in float64,
    always clipped to ``[ymin, ymax]`` (which must lie in the dtype's range),
    rounded half to even and cast with saturation, so a trace's minimum and
    maximum land exactly on ``ymin`` and ``ymax`` for every integer dtype up
    to 64 bits (unless ``vmax - vmin`` is so small that ``eps`` counts);
    NaN samples become ``ymin``. optimap maps in float32 and truncates, so
    its ``int32``/``uint32``/``int64`` maxima wrap to negative values or 0
    and values just below an integer lose one.

    optimap normalises along axis 0 of a ``(T, N)`` array; fluoxr along the
    named ``time`` dim, whatever its position.

    Examples
    --------
    >>> import numpy as np, xarray as xr, fluoxr
    >>> tr = xr.DataArray(np.array([[2.0, 4.0, 6.0]]), dims=("roi", "time"))
    >>> np.round(fluoxr.normalize(tr).values, 6).tolist()
    [[0.0, 0.5, 1.0]]
    """
    traces = check_traces(traces)
    dtype = np.dtype(dtype)
    if dtype.kind not in "iuf":
        raise TypeError(f"dtype must be a float or integer dtype, got {dtype}")
    if ymax is None:
        ymax = float(np.iinfo(dtype).max) if dtype.kind in "iu" else 1.0
    ymin = check_number(ymin, "ymin")
    ymax = check_number(ymax, "ymax")
    do_clip = bool(clip) and (vmin is not None or vmax is not None)
    x = traces if traces.dtype.kind in "fc" else traces.astype(np.float32)
    lo = x.min("time", skipna=True) if vmin is None else vmin
    hi = x.max("time", skipna=True) if vmax is None else vmax
    for name, v in (("vmin", vmin), ("vmax", vmax)):
        if v is not None and not isinstance(v, (xr.DataArray, int, float, np.number)):
            raise TypeError(f"{name} must be a number or a DataArray, got {type(v).__name__}")
    eps = np.finfo(x.dtype).eps
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        for name, v in (("ymin", ymin), ("ymax", ymax)):
            if not float(info.min) <= v <= float(info.max):
                raise ValueError(f"{name} must be within the range of {dtype} [{info.min}, {info.max}], got {v!r}")
        # the scale in the data's precision (as optimap), the rest in float64 with a saturating cast:
        # in float32, iinfo(int32).max rounds up to 2**31, which astype wraps to the minimum
        unit = ((x - lo) / (hi - lo + eps)).astype(np.float64)
        scaled = unit * (ymax - ymin) + ymin
        out = xr.apply_ufunc(ktemporal.round_to_int, scaled, dask="parallelized", output_dtypes=[dtype],
                             kwargs=dict(dtype=dtype, lo=min(ymin, ymax), hi=max(ymin, ymax)))
    else:
        out = (x - lo) / (hi - lo + eps) * (ymax - ymin) + ymin
        if do_clip:
            out = out.clip(ymin, ymax)
        out = out.astype(dtype)
    out.name = traces.name
    out.attrs = dict(traces.attrs)
    return out.transpose(*traces.dims)


# --------------------------------------------------------------------------------------------
# detrend (optimap / seasonal)


def _detrend_rows(block: np.ndarray, *, before: int, after: int, kind: str | None, period: float | None,
                  ptimes: float, retain_baseline: bool, return_trend: bool, out_dtype: Any) -> np.ndarray:
    flat = block.reshape(-1, block.shape[-1])
    out = np.empty(flat.shape, out_dtype)
    for i, row in enumerate(flat):
        data = row.astype(np.float64)
        trend = kdetrend.fit_trend(data, kind=kind, period=period, ptimes=ptimes)
        if return_trend:
            out[i] = trend
        elif retain_baseline:
            out[i] = data - trend + np.mean(trend)
        else:
            out[i] = data - trend
    return out.reshape(block.shape)


# every frame's trend depends on the whole trace (period estimate, spline, end lines): a whole-recording
# filter, run once per block of ROIs rather than once per chunk of time
_DETREND = TemporalFilter(_detrend_rows, halo=WHOLE, name="fluoxr-detrend")


def detrend(
    traces: xr.DataArray,
    *,
    kind: str | None = "spline",
    period: float | None = None,
    ptimes: float = 2,
    retain_baseline: bool = True,
    return_trend: bool = False,
) -> xr.DataArray:
    """Remove a slow trend from each trace (optimap's ``detrend_timeseries``), lazy.

    The trend is ``seasonal.fit_trend``'s, re-derived on SciPy in
    :mod:`fluoxr.kernels.detrend` (same values, no extra dependency):
    "spline" (least-squares cubic spline), "line" (Theil-Sen line of the
    median-filtered trace, flat when not significant), "mean"/"median"
    (running filters of ``(int(period * ptimes) // 2) * 2 - 1`` frames),
    with Theil-Sen lines at the ends; None: the mean. The period (frames)
    is estimated per trace from its periodogram when None.

    Every kind needs the whole trace (period estimate, spline, end lines), so
    time is rechunked to one chunk per block of ROIs.

    Parameters
    ----------
    traces : DataArray
        Traces with a ``time`` dim.
    kind : {"spline", "line", "mean", "median", None}
    period : float, optional
        Period in frames; estimated per trace when None.
    ptimes : float
        Window = ``ptimes`` periods.
    retain_baseline : bool
        Add the trend's mean back (``x - trend + mean(trend)``).
    return_trend : bool
        Return the trend instead (optimap's ``return_trend_data``).

    Returns
    -------
    DataArray
        Same dims and chunks; float32 (float64 for float64 input).

    Examples
    --------
    >>> import numpy as np, xarray as xr, fluoxr
    >>> t = np.arange(200.0)
    >>> tr = xr.DataArray((0.05 * t + np.sin(2 * np.pi * t / 20))[None], dims=("roi", "time"))
    >>> flat = fluoxr.detrend(tr, kind="line", period=20)
    >>> bool(abs(float(flat[0, 150:].mean() - flat[0, :50].mean())) < 0.5)
    True
    """
    traces = check_traces(traces)
    check_choice(kind, "kind", ("spline", "line", "mean", "median", None))
    if period is not None:
        period = check_number(period, "period", gt=0)
    ptimes = check_number(ptimes, "ptimes", gt=0)
    if kind is not None:
        n = traces.sizes["time"]
        if period is not None:
            window = kdetrend.trend_window(period, ptimes)
            if window < 3:
                raise ValueError(f"period * ptimes must be at least 4 frames, got period={period}, ptimes={ptimes}")
            if n <= window:
                raise ValueError(f"traces must be longer ({n} frames) than the window of {window} frames "
                                 f"(period={period}, ptimes={ptimes})")
        elif n < 12:
            raise ValueError(f"traces must have at least 12 frames to estimate a period, got {n}; pass period=...")
    out_dtype = np.float64 if traces.dtype == np.float64 else np.float32
    traces = host(traces, "fluoxr.detrend")
    t, data = _time_last(traces)
    out = apply_temporal(data, _DETREND, axis=data.ndim - 1, dtype=out_dtype,
                         meta=np.empty((0,) * data.ndim, out_dtype), kind=kind, period=period, ptimes=ptimes,
                         retain_baseline=bool(retain_baseline), return_trend=bool(return_trend), out_dtype=out_dtype)
    result = _like(t, out, "trend" if return_trend else traces.name)
    return result.transpose(*traces.dims)
