"""The NaN and overflow policy of README.md ("NaN and overflow"), operation by operation.

A float recording with one NaN pixel (frame 20) and one all-NaN frame (40);
each test states what that operation does with them, and checks it for
several chunkings.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import xarray as xr

import fluoxr
from fluoxr.testing import assert_chunk_invariant

T, NAN_PIXEL, NAN_FRAME = 60, (20, 2, 3), 40


@pytest.fixture(scope="module")
def video():
    rng = np.random.default_rng(0)
    a = (100 + 20 * rng.random((T, 8, 9))).astype(np.float32)
    a[NAN_PIXEL] = np.nan
    a[NAN_FRAME] = np.nan
    return fluoxr.as_video(a, fps=10, chunks=13)


@pytest.fixture(scope="module")
def traces():
    rng = np.random.default_rng(1)
    tr = xr.DataArray((50 + rng.random((3, 120))).astype(np.float32), dims=("roi", "time"),
                      coords={"time": np.arange(120) / 10}, attrs={"fps": 10.0})
    tr[1, 60] = np.nan
    return tr


@pytest.fixture(autouse=True)
def _quiet():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        yield


def test_time_statistics_propagate_per_pixel(video):
    # every pixel has a NaN frame (frame 40), so every pixel's moments are NaN ...
    assert np.isnan(fluoxr.moments(video, 4).values[1:]).all()
    # ... and without the NaN frame only the pixel with a NaN is NaN
    clean = video.drop_isel(time=NAN_FRAME)
    for result in (fluoxr.moments(clean, 4), fluoxr.cumulants(clean, 4), fluoxr.lag_moments(clean, [0, 2])):
        bad = np.isnan(result.values).any(axis=0)
        assert bad[NAN_PIXEL[1:]] and bad.sum() == 1, result.name


def test_total_signal_skips_nan(video):
    ts = fluoxr.total_signal(video).values
    assert np.isfinite(ts).all() and ts[NAN_FRAME] == 0
    np.testing.assert_allclose(ts[NAN_PIXEL[0]], np.nansum(video.values[NAN_PIXEL[0]].astype(np.float64)), rtol=1e-10)


def test_bleach_correct_propagates_nan_through_block_means(video):
    # each frame has its block's mean image subtracted: a pixel that is NaN in any frame of a
    # block is NaN in every frame of that block (float input gives float output)
    out = fluoxr.bleach_correct(video, fbc=0.25, smooth_kernel=5)
    assert out.dtype == np.float64
    edges = fluoxr.bleach_blocks(video, fbc=0.25, smooth_kernel=5).values
    block = np.searchsorted(edges, np.arange(T), side="right") - 1
    expected = np.zeros((T, 8, 9), bool)
    expected[block == block[NAN_FRAME]] = True
    expected[block == block[NAN_PIXEL[0]], NAN_PIXEL[1], NAN_PIXEL[2]] = True
    np.testing.assert_array_equal(np.isnan(out.values), expected)


def test_extraction_propagates_per_frame(video):
    rois = fluoxr.ROISet.from_positions([NAN_PIXEL[1:], (6, 7)], (8, 9), size=3)
    tr = assert_chunk_invariant(lambda v: fluoxr.traces(v, rois.meta[["y", "x"]].values, size=3), video)
    bad = np.isnan(tr.values)
    assert bad[0, NAN_PIXEL[0]] and bad[:, NAN_FRAME].all()
    assert bad.sum() == 3  # nothing else


def test_maximin_baseline_propagates_over_its_support(traces):
    sigma, window_s = 2.0, 1.0  # Gaussian radius 6, window 11 frames -> support 6 + 2 * 5 = 16
    out = assert_chunk_invariant(
        lambda t: fluoxr.baseline(t, window_s=window_s, sigma_frames=sigma), traces, dim="time", halo=16)
    bad = np.isnan(out.values)
    assert not bad[[0, 2]].any()
    np.testing.assert_array_equal(np.flatnonzero(bad[1]), np.arange(60 - 16, 60 + 17))


def test_whole_trace_statistics_give_nan_for_the_roi(traces):
    for method in ("constant", "prctile"):
        b = fluoxr.baseline(traces, method=method).values
        assert np.isnan(b[1]).all() and np.isfinite(b[[0, 2]]).all(), method
    d = fluoxr.detrend(traces, kind="line", period=20).values
    assert np.isnan(d[1]).all() and np.isfinite(d[[0, 2]]).all()
    s = fluoxr.oasis(traces - 50, tau_s=1.0).values
    assert np.isnan(s[1]).all() and np.isfinite(s[[0, 2]]).all()


def test_normalize_skips_nan_like_optimap(traces):
    n = fluoxr.normalize(traces).values
    assert np.isnan(n[1, 60]) and np.isnan(n).sum() == 1
    assert np.nanmin(n[1]) == 0 and np.nanmax(n[1]) == pytest.approx(1, abs=1e-6)


def test_oscillations_treat_nan_gradient_as_no_change(video):
    labels = fluoxr.oscillations.detect(video, period_s=10, interval_s=1, min_cluster_size=1).values
    # Cellects divides a frame by its mean: a frame holding a NaN is NaN everywhere, so the
    # gradients that use it (frames 19, 21, 39, 41) are NaN and nothing is labelled there
    for t in (NAN_PIXEL[0] - 1, NAN_PIXEL[0] + 1, NAN_FRAME - 1, NAN_FRAME + 1):
        assert (labels[t] == 0).all(), t
    assert labels.dtype == np.int8 and set(np.unique(labels)) <= {0, 1, 2}


def test_roi_features_propagate_nan_of_the_reference():
    ref = np.random.default_rng(2).random((30, 30)) + 10
    ref[5, 5] = np.nan
    rois = fluoxr.ROISet.from_positions([(5, 5), (25, 25)], (30, 30), size=3)
    table = fluoxr.roi_features(rois, ref, width=3, iterations=1).compute()
    # corr_coef is taken over the non-NaN pixels of the surround (cellector), so it skips the NaN
    assert table.loc[0, ["phase_corr", "dot_product", "in_vs_out"]].isna().all()
    assert np.isfinite(table.loc[0, "corr_coef"]) and table.loc[1].notna().all()


# -- overflow ------------------------------------------------------------------------------------


def test_uint16_full_range_does_not_overflow_at_order_8():
    rng = np.random.default_rng(3)
    a = np.where(rng.random((200, 4, 5)) < 0.3, 65535, 0).astype(np.uint16)
    a[:, 0, 0] = 65535
    ref = a.astype(np.float64)
    dev = ref - ref.mean(0)
    m = assert_chunk_invariant(lambda v: fluoxr.moments(v, 8), fluoxr.as_video(a, chunks=17), rtol=1e-9)
    for n in range(2, 9):
        np.testing.assert_allclose(m.sel(order=n).values, (dev**n).mean(0), rtol=1e-9, atol=1e-300)
    assert m.sel(order=8).values.max() > 1e36  # far beyond int64 (9.2e18)
    ts = fluoxr.total_signal(fluoxr.as_video(a)).values
    np.testing.assert_array_equal(ts, ref.sum((1, 2)))
    rois = fluoxr.ROISet.from_masks(np.ones((1, 4, 5), bool))
    F = fluoxr.extract(fluoxr.as_video(a), rois, neuropil=None).F.values
    np.testing.assert_allclose(F[0], ref.mean((1, 2)), rtol=1e-6)
