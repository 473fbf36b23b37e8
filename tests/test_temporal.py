"""Operations along time: kernels against NumPy/SciPy statements, chunk invariance (chunks shorter than halos), laziness."""

import numpy as np
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import gaussian_filter1d
from scipy.stats import theilslopes

import fluoxr
from fluoxr import baseline, detrend, dff, normalize, subtract_neuropil
from fluoxr.kernels import detrend as kd
from fluoxr.kernels.temporal import gaussian_reflect, maximin, maximin_halo, maximin_window
from fluoxr.testing import assert_chunk_invariant, raise_if_dask_computes
from fluoxr.testing.references import maximin as _maximin_ref


def _traces(rng, n=3, t=120, fps=10.0):
    x = 100 + np.cumsum(rng.standard_normal((n, t)), 1) + 20 * (rng.random((n, t)) < 0.05)
    return xr.DataArray(x.astype(np.float32), dims=("roi", "time"),
                        coords={"roi": np.arange(n), "time": xr.Variable("time", np.arange(t) / fps, {"units": "s"})},
                        attrs={"fps": fps})


@pytest.mark.parametrize("window_s,sig", [(1.0, 2.0), (2.5, 0.7), (0.1, 3.0), (30.0, 1.0)])
def test_maximin_kernel_matches_reference(rng, window_s, sig):
    f = _traces(rng).values
    got = maximin(f, sig, maximin_window(window_s, 10.0))
    np.testing.assert_allclose(got, _maximin_ref(f, window_s, sig, 10.0), rtol=2e-6)
    assert got.dtype == np.float32


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 40), sigma=st.floats(0.3, 6), seed=st.integers(0, 99))
def test_gaussian_reflect_equals_scipy(n, sigma, seed):
    x = np.random.default_rng(seed).random((2, n))
    np.testing.assert_array_equal(gaussian_reflect(x, sigma), gaussian_filter1d(x, sigma, axis=-1))


@pytest.mark.parametrize("n, sigma, seed", [(38, 5.094960545692529, 63), (5, 4.451983194831511, 15),
                                            (18, 1.2887775386017144, 79)])
def test_gaussian_weights_as_scipy_writes_them(n, sigma, seed):
    # sigmas where sigma ** 2 and sigma * sigma differ in the last bit (found by the property test above)
    x = np.random.default_rng(seed).random((2, n))
    np.testing.assert_array_equal(gaussian_reflect(x, sigma), gaussian_filter1d(x, sigma, axis=-1))


def test_baseline_maximin_chunk_invariant_with_chunks_shorter_than_halo(rng):
    tr = _traces(rng, t=150)
    halo = maximin_halo(2.0, maximin_window(1.3, 10.0))
    assert halo > 10
    ref = assert_chunk_invariant(lambda t: baseline(t, window_s=1.3, sigma_frames=2.0), tr, halo=halo)
    np.testing.assert_allclose(ref.values, _maximin_ref(tr.values, 1.3, 2.0, 10.0), rtol=2e-6)
    # chunks of 3 frames, far below the halo; the input's chunks are kept
    lazy = baseline(tr.chunk({"time": 3}), window_s=1.3, sigma_frames=2.0)
    assert lazy.chunks[1] == (3,) * 50
    np.testing.assert_array_equal(lazy.values, ref.values)


def test_baseline_constant_and_prctile(rng):
    tr = _traces(rng)
    sm = gaussian_filter1d(tr.values.astype(np.float64), 4.0, axis=1)
    b = assert_chunk_invariant(lambda t: baseline(t, method="constant", sigma_frames=4.0), tr, halo=16)
    np.testing.assert_allclose(b.values, np.broadcast_to(sm.min(1, keepdims=True), sm.shape), rtol=1e-6)
    g = baseline(tr, method="constant", sigma_frames=4.0, global_min=True)
    np.testing.assert_allclose(g.values, sm.min(), rtol=1e-6)
    p = assert_chunk_invariant(lambda t: baseline(t, method="prctile", percentile=8), tr)
    np.testing.assert_allclose(p.values, np.broadcast_to(np.percentile(tr.values, 8, axis=1, keepdims=True), sm.shape),
                               rtol=1e-6)
    assert p.dtype == np.float32 and p.dims == ("roi", "time")


def test_baseline_time_first_and_channel_dims(rng):
    tr = _traces(rng)
    both = xr.concat([tr, tr * 2], dim="channel").transpose("time", "channel", "roi")
    b = baseline(both, window_s=1.0, sigma_frames=1.0)
    assert b.dims == both.dims
    np.testing.assert_allclose(b.sel(channel=1).values, 2 * baseline(tr, window_s=1.0, sigma_frames=1.0).values.T,
                               rtol=1e-5)


def test_baseline_fps_from_time_coord_and_errors(rng):
    tr = _traces(rng)
    stripped = tr.copy()
    stripped.attrs = {}
    xr.testing.assert_allclose(baseline(stripped, window_s=1.0), baseline(tr, window_s=1.0))
    frames = xr.DataArray(tr.values, dims=("roi", "time"))
    with pytest.raises(ValueError, match="fps is required"):
        baseline(frames, window_s=1.0)
    with pytest.raises(ValueError, match="method must be one of"):
        baseline(tr, method="median")
    with pytest.raises(ValueError, match="sigma_frames must be >= 0"):
        baseline(tr, sigma_frames=-1)
    with pytest.raises(ValueError, match="must have a 'time' dim"):
        baseline(xr.DataArray(np.zeros((2, 3)), dims=("roi", "frame")))
    with pytest.raises(TypeError, match="traces must be an xarray.DataArray"):
        baseline(np.zeros((2, 3)))


def test_subtract_neuropil_and_dff(rng):
    F, N = _traces(rng), _traces(rng) / 3
    ds = xr.Dataset({"F": F, "Fneu": N})
    with raise_if_dask_computes():
        fc = subtract_neuropil(ds, coeff=0.5)
    np.testing.assert_allclose(fc.values, F.values - 0.5 * N.values, rtol=1e-6)
    assert fc.dtype == np.float32 and fc.name == "Fc"
    d = dff(F, method="prctile", percentile=10)
    f0 = np.percentile(F.values, 10, axis=1, keepdims=True)
    np.testing.assert_allclose(d.values, (F.values - f0) / f0, rtol=1e-5)
    np.testing.assert_allclose(dff(F, f0=F * 0 + 50).values, (F.values - 50) / 50, rtol=1e-5)
    with pytest.raises(ValueError, match="same dims and sizes"):
        subtract_neuropil(F, N.isel(roi=[0]))
    with pytest.raises(TypeError, match="Fneu is required"):
        subtract_neuropil(F)


def _optimap_normalize(a, ymin=0, ymax=1.0, vmin=None, vmax=None, clip=True):
    do_clip = clip and (vmin is not None or vmax is not None)
    if not np.issubdtype(a.dtype, np.floating):
        a = a.astype(np.float32)
    vmin = np.nanmin(a, axis=0) if vmin is None else vmin
    vmax = np.nanmax(a, axis=0) if vmax is None else vmax
    out = (a - vmin) / (vmax - vmin + np.finfo(a.dtype).eps) * (ymax - ymin) + ymin
    return (np.clip(out, ymin, ymax) if do_clip else out).astype(np.float32)


def test_normalize_equals_optimap_statement(rng):
    tr = _traces(rng)
    got = assert_chunk_invariant(lambda t: normalize(t), tr)
    np.testing.assert_array_equal(got.values.T, _optimap_normalize(tr.values.T))
    got = normalize(tr, vmin=100, vmax=110, ymin=-1, ymax=2)
    np.testing.assert_array_equal(got.values.T, _optimap_normalize(tr.values.T, -1, 2.0, 100, 110))
    ints = tr.astype(np.uint16)
    np.testing.assert_array_equal(normalize(ints).values.T, _optimap_normalize(ints.values.T))
    assert normalize(tr, dtype=np.uint8).values.max() == 255


INT_DTYPES = [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64]


@pytest.mark.parametrize("dtype", INT_DTYPES)
@pytest.mark.parametrize("data_dtype", [np.float32, np.float64, np.uint16])
def test_normalize_to_integers_hits_the_extremes_exactly(dtype, data_dtype):
    info = np.iinfo(dtype)
    tr = xr.DataArray(np.array([[2, 4, 6, 3], [7, 0, 5, 1]], data_dtype), dims=("roi", "time"))
    got = normalize(tr, dtype=dtype)
    assert got.dtype == dtype
    np.testing.assert_array_equal(got.values.min(axis=1), [0, 0])
    np.testing.assert_array_equal(got.values.max(axis=1), [info.max, info.max])
    full = normalize(tr, ymin=int(info.min), dtype=dtype).values
    np.testing.assert_array_equal(full.min(axis=1), [info.min] * 2)
    np.testing.assert_array_equal(full.max(axis=1), [info.max] * 2)
    # the whole map against a float64 reference where float64 holds the dtype's integers exactly
    if info.bits <= 32:
        x = tr.values.astype(np.float32 if data_dtype == np.uint16 else data_dtype)
        eps = np.finfo(x.dtype).eps
        unit = ((x - x.min(1, keepdims=True)) / (x.max(1, keepdims=True) - x.min(1, keepdims=True) + eps))
        ref = np.rint(unit.astype(np.float64) * float(info.max))
        np.testing.assert_array_equal(got.values, ref.astype(dtype))
    # clipped with vmin/vmax: saturates at the bounds, never wraps
    clipped = normalize(tr, vmin=3, vmax=5, dtype=dtype).values
    assert clipped[0, 0] == clipped[0, 3] == 0 and clipped[0, 2] == info.max
    assert abs(int(clipped[0, 1]) - int(info.max) // 2) <= int(info.max) * 1e-6 + 1


def test_round_to_int_against_python_rounding():
    from fluoxr.kernels.temporal import round_to_int

    y = np.array([-1e20, -129.5, -128.5, -0.5, 0.5, 1.5, 2.5, 126.5, 127.49, 127.5, 1e20, np.inf, -np.inf, np.nan])
    ref = [int(min(max(round(v), -128), 127)) if np.isfinite(v) else (127 if v > 0 else -128) for v in y]
    np.testing.assert_array_equal(round_to_int(y, np.int8, -1000, 1000), ref)
    np.testing.assert_array_equal(round_to_int(y, np.uint16, -5, 3.7), [0, 0, 0, 0, 0, 2, 2, 3, 3, 3, 3, 3, 0, 0])
    big = round_to_int(np.array([2.0**64, 2.0**64 - 2048, -1.0]), np.uint64, 0, 2.0**64)
    assert big.tolist() == [2**64 - 1, 2**64 - 2048, 0]


def test_normalize_to_integers_nan_bounds_and_chunks():
    tr = xr.DataArray(np.array([[2.0, np.nan, 6.0, 4.0]]), dims=("roi", "time"))
    np.testing.assert_array_equal(normalize(tr, dtype=np.int32).values, [[0, 0, 2147483647, 1073741824]])
    np.testing.assert_array_equal(normalize(tr, ymin=10, ymax=20, dtype=np.uint8).values, [[10, 10, 20, 15]])
    # an inverted range maps the maximum to ymax all the same
    np.testing.assert_array_equal(normalize(tr, ymin=255, ymax=0, dtype=np.uint8).values, [[255, 0, 0, 128]])
    with pytest.raises(ValueError, match="^ymax must be within the range of uint8"):
        normalize(tr, ymax=256, dtype=np.uint8)
    with pytest.raises(ValueError, match="^ymin must be within the range of uint16"):
        normalize(tr, ymin=-1, dtype=np.uint16)
    rng = np.random.default_rng(0)
    traces = _traces(rng)
    got = assert_chunk_invariant(lambda t: normalize(t, dtype=np.int64), traces)
    assert got.dtype == np.int64 and (got.values.max(axis=1) == np.iinfo(np.int64).max).all()


def test_theil_sen_equals_scipy_and_selection_path(rng):
    for n in (2, 3, 10, 57):
        y = np.round(rng.standard_normal(n) * 3)  # ties in y change the interval
        res = theilslopes(y)
        got = kd.theil_sen(y)
        np.testing.assert_array_equal(got, (res.slope, res.low_slope, res.high_slope))
    y = rng.standard_normal(300)
    slopes = np.sort(kd._all_slopes(y))
    ranks = np.array([0, 7, slopes.size // 2, slopes.size - 1])
    # a tiny cap and few bins force several histogram passes
    np.testing.assert_array_equal(kd._select_ranks(y, ranks, 4, 50), slopes[ranks])
    y = np.repeat([1.0, 2.0], 100)  # many equal slopes
    slopes = np.sort(kd._all_slopes(y))
    ranks = np.array([0, 7, slopes.size // 2, slopes.size - 1])
    np.testing.assert_array_equal(kd._select_ranks(y, ranks, 8, 20), slopes[ranks])
    with pytest.raises(ValueError, match="ranks"):
        kd._select_ranks(y, np.array([slopes.size]), 8, 20)


def test_trend_filters_against_plain_loops(rng):
    x = rng.standard_normal(40)
    w = 7
    mean_ref, med_ref = x.copy(), x.copy()
    for i in range(w // 2, 40 - w // 2):
        mean_ref[i] = x[i - w // 2 : i + w // 2 + 1].mean()
        med_ref[i] = np.median(x[i - w // 2 : i + w // 2 + 1])
    np.testing.assert_allclose(kd.mean_filter(x, w), mean_ref, rtol=1e-12)
    np.testing.assert_array_equal(kd.median_filter(x, w), med_ref)
    line = 3.0 + 0.5 * np.arange(60)
    for kind in ("mean", "median", "line", "spline"):
        np.testing.assert_allclose(kd.fit_trend(line, kind=kind, period=6), line, atol=1e-9)
    t = np.arange(400)
    periodic = np.sin(2 * np.pi * t / 20) + 0.01 * t
    assert abs(kd.guess_period(periodic) - 20) <= 1


def test_detrend_lazy_chunk_invariant(rng):
    t = np.arange(200)
    x = np.stack([0.05 * t + np.sin(2 * np.pi * t / 20), 0.1 * t + np.cos(2 * np.pi * t / 25)]).astype(np.float32)
    tr = xr.DataArray(x, dims=("roi", "time"))
    for kind in ("spline", "line", "mean", "median", None):
        ref = assert_chunk_invariant(lambda a: detrend(a, kind=kind, period=20), tr)
        row = x[0].astype(np.float64)
        trend = kd.fit_trend(row, kind=kind, period=20)
        np.testing.assert_allclose(ref.values[0], row - trend + trend.mean(), rtol=1e-6, atol=1e-5)
        np.testing.assert_allclose(detrend(tr, kind=kind, period=20, return_trend=True).values[0], trend, rtol=1e-6)
        np.testing.assert_allclose(detrend(tr, kind=kind, period=20, retain_baseline=False).values[0], row - trend,
                                   rtol=1e-5, atol=1e-5)
    est = detrend(tr.chunk({"time": 7}))
    assert est.chunks[1] == tr.chunk({"time": 7}).chunks[1] and est.dtype == np.float32


def test_detrend_bad_input():
    tr = xr.DataArray(np.zeros((1, 30), np.float32), dims=("roi", "time"))
    with pytest.raises(ValueError, match="kind must be one of"):
        detrend(tr, kind="poly")
    with pytest.raises(ValueError, match="at least 4 frames"):
        detrend(tr, period=1)
    with pytest.raises(ValueError, match="longer"):
        detrend(tr, period=20)
    with pytest.raises(ValueError, match="at least 12 frames"):
        detrend(tr.isel(time=slice(0, 8)))
    with pytest.raises(ValueError, match="period must be > 0"):
        detrend(tr, period=-3)


@pytest.mark.peer
def test_preprocess_equals_suite2p(rng):
    torch = pytest.importorskip("torch")
    dcnv = pytest.importorskip("suite2p.extraction.dcnv")
    tr = _traces(rng, n=6, t=300)
    F = tr.values.copy()
    ref = dcnv.preprocess(F.copy(), "maximin", 3.0, 2.0, 10.0, device=torch.device("cpu"))
    np.testing.assert_allclose((tr - baseline(tr.chunk({"time": 7}), window_s=3.0, sigma_frames=2.0)).values, ref,
                               rtol=1e-5, atol=1e-3)
    ref = dcnv.preprocess(F.copy(), "constant", 3.0, 2.0, 10.0, device=torch.device("cpu"))
    np.testing.assert_allclose((tr - baseline(tr, method="constant", sigma_frames=2.0, global_min=True)).values, ref,
                               rtol=1e-6)
    ref = dcnv.preprocess(F.copy(), "prctile", 3.0, 2.0, 10.0, prctile_baseline=8, device=torch.device("cpu"))
    np.testing.assert_allclose((tr - baseline(tr, method="prctile", percentile=8)).values, ref, rtol=1e-6)


@pytest.mark.peer
def test_normalize_and_detrend_equal_optimap(rng):
    ot = pytest.importorskip("optimap.trace")
    tr = _traces(rng, n=3, t=300).astype(np.float64)
    x = tr + 10 * np.sin(np.arange(300) / 7.0)
    np.testing.assert_array_equal(normalize(tr).values.T, ot.normalize(tr.values.T))
    for kind in ("spline", "line", "mean", "median"):
        for period in (None, 30):
            ref = np.stack([ot.detrend_timeseries(r, kind=kind, period=period) for r in x.values])
            np.testing.assert_allclose(detrend(x, kind=kind, period=period).values, ref, rtol=1e-12, atol=1e-9)


def test_accessor_methods(rng):
    tr = _traces(rng)
    xr.testing.assert_identical(tr.fluo.baseline(window_s=1.0), baseline(tr, window_s=1.0))
    xr.testing.assert_identical(tr.fluo.normalize(), normalize(tr))
    xr.testing.assert_identical(tr.fluo.detrend(period=20), detrend(tr, period=20))
    xr.testing.assert_identical(tr.fluo.dff(method="prctile"), dff(tr, method="prctile"))
    xr.testing.assert_identical(tr.fluo.subtract_neuropil(tr / 2), subtract_neuropil(tr, tr / 2))
    xr.testing.assert_identical(tr.fluo.preprocess(win_baseline=2.0), fluoxr.preprocess(tr, win_baseline=2.0))
    assert fluoxr.baseline is baseline


def test_neuropil_and_f0_must_share_coordinates():
    import xarray as xr

    F = xr.DataArray(np.ones((2, 20), np.float32), dims=("roi", "time"), coords={"time": np.arange(20) / 10})
    Fneu = F.assign_coords(time=np.arange(20))
    with pytest.raises(ValueError, match="Fneu must have the same"):
        fluoxr.subtract_neuropil(F, Fneu)
    with pytest.raises(ValueError, match="f0 must have the same"):
        fluoxr.dff(F, f0=Fneu)
    with pytest.raises(ValueError, match="Fneu must have the same"):
        fluoxr.subtract_neuropil(F.assign_coords(roi=[0, 1]), F.assign_coords(roi=[5, 6]))
    assert fluoxr.subtract_neuropil(F, F).shape == (2, 20)


def test_preprocess_is_suite2p_preprocess_restated(rng):
    from scipy.ndimage import gaussian_filter, maximum_filter1d, minimum_filter1d

    tr = _traces(rng, n=4, t=200)
    F = tr.values.astype(np.float64)
    # "constant": one global minimum of the smoothed traces for every ROI, suite2p's np.amin(gaussian_filter(F))
    got = fluoxr.preprocess(tr.chunk({"time": 9}), baseline="constant", sig_baseline=3.0)
    np.testing.assert_allclose(got.values, F - gaussian_filter(F, [0.0, 3.0]).min(), rtol=1e-6, atol=1e-4)
    # "prctile": each trace's own percentile
    got = fluoxr.preprocess(tr, baseline="prctile", prctile_baseline=20)
    np.testing.assert_allclose(got.values, F - np.percentile(F, 20, axis=1, keepdims=True), rtol=1e-6, atol=1e-4)
    # "maximin": smoothing, then min and max filters of int(win * fs) frames made odd, edges replicated
    win = int(2.0 * tr.attrs["fps"]) | 1
    smooth = gaussian_filter(F, [0.0, 2.0], mode="nearest", truncate=3.0)
    low = maximum_filter1d(minimum_filter1d(smooth, win, axis=1, mode="nearest"), win, axis=1, mode="nearest")
    got = fluoxr.preprocess(tr.chunk({"time": 7}), win_baseline=2.0, sig_baseline=2.0)
    np.testing.assert_allclose(got.values, F - low, rtol=1e-5, atol=1e-3)
    assert got.dtype == np.float32 and got.dims == tr.dims and got.attrs["baseline_method"] == "maximin"
    assert_chunk_invariant(lambda t: fluoxr.preprocess(t, win_baseline=2.0, sig_baseline=2.0), tr, dim="time")
    # suite2p's defaults: maximin, 60 s window, 10 frames
    np.testing.assert_array_equal(fluoxr.preprocess(tr).values,
                                  (tr - fluoxr.baseline(tr, window_s=60.0, sigma_frames=10.0)).values)
    # the settings["dcnv_preprocess"] section can be passed as keywords
    dcnv = {"baseline": "prctile", "win_baseline": 60.0, "sig_baseline": 10.0, "prctile_baseline": 8.0}
    np.testing.assert_array_equal(fluoxr.preprocess(tr, **dcnv).values,
                                  fluoxr.preprocess(tr, baseline="prctile").values)
    with pytest.raises(ValueError, match="baseline must be one of"):
        fluoxr.preprocess(tr, baseline="minimum")


@pytest.mark.peer
def test_fluoxr_preprocess_equals_suite2p_preprocess(rng):
    torch = pytest.importorskip("torch")
    dcnv = pytest.importorskip("suite2p.extraction.dcnv")
    params = pytest.importorskip("suite2p.parameters")
    tr = _traces(rng, n=6, t=900)
    for method in ("maximin", "constant", "prctile"):
        settings = params.default_settings()["dcnv_preprocess"] | {"baseline": method, "win_baseline": 20.0}
        ref = dcnv.preprocess(tr.values.copy(), fs=tr.attrs["fps"], device=torch.device("cpu"), **settings)
        got = fluoxr.preprocess(tr.chunk({"time": 50}), **settings)
        np.testing.assert_allclose(got.values, ref, rtol=1e-5, atol=1e-3)
