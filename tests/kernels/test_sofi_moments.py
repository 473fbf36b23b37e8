"""Moment-state kernels against plain NumPy two-pass references on tiny arrays."""

from __future__ import annotations

import itertools
import math
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluoxr.kernels import moments as km
from fluoxr.testing.references import central_sums as ref_central
from fluoxr.testing.references import lag_product_sum as ref_lag_moment
from fluoxr.testing.references import pair_comoment_sums as ref_pairs


@pytest.mark.parametrize("dtype", [np.uint16, np.float64, np.float32, np.int16, np.uint8, np.int8, np.int32, bool])
def test_central_sums_matches_two_pass(dtype):
    rng = np.random.default_rng(0)
    x = (rng.random((37, 1100)) * 100).astype(dtype)  # more pixels than one tile, odd sizes
    mean, M = km.central_sums(x, 6)
    rmean, rM = ref_central(x, 6)
    np.testing.assert_allclose(mean, rmean, rtol=1e-12)
    for k in range(5):
        np.testing.assert_allclose(M[k], rM[k], rtol=1e-9, atol=1e-9 * np.abs(rM[k]).max())


@pytest.mark.parametrize("max_order", [1, 2, 3, 4, 5, 6, 7, 8, 9, 12])
@pytest.mark.parametrize("block", [None, 1, 7, 40])
def test_central_sums_every_order_and_frame_block(max_order, block):
    """Unrolled (even orders <= 8) and generic kernels; frames in blocks merged exactly inside the kernel."""
    rng = np.random.default_rng(max_order)
    x = (rng.exponential(50.0, (45, 530)) + 1e4).astype(np.float64)
    mean, M = km.central_sums(x, max_order, frames_per_block=block)
    rmean, rM = ref_central(x, max(max_order, 2))
    np.testing.assert_allclose(mean, rmean, rtol=1e-13)
    assert M.shape == (max(max_order - 1, 0), 530)
    var = rM[0] / 45
    for k in range(2, max_order + 1):
        scale = 45 * var ** (k / 2)
        np.testing.assert_allclose(M[k - 2] / scale, rM[k - 2] / scale, atol=1e-9)


def test_central_sums_order_one_and_empty():
    x = np.arange(12.0).reshape(4, 3)
    mean, M = km.central_sums(x, 1)
    assert M.shape == (0, 3)
    np.testing.assert_allclose(mean, x.mean(0))
    mean, M = km.central_sums(np.empty((0, 3)), 4)
    assert M.shape == (3, 3) and not M.any()


def test_offset_stability():
    """A +1e6 offset on uint16-range data costs no precision (chunk mean subtracted first)."""
    rng = np.random.default_rng(1)
    base = rng.integers(0, 65535, (200, 50)).astype(np.float64)
    _, M0 = km.central_sums(base, 6)
    _, M1 = km.central_sums(base + 1e6, 6)
    np.testing.assert_allclose(M1, M0, rtol=1e-9)


def test_merge_equals_whole():
    rng = np.random.default_rng(2)
    x = rng.normal(5.0, 3.0, (60, 4, 5)) ** 2
    whole = km.moment_state(x, 7)
    parts = [km.moment_state(x[a:b], 7) for a, b in [(0, 1), (1, 17), (17, 18), (18, 60)]]
    merged = km.merge_all(parts)
    assert merged[0] == whole[0]
    np.testing.assert_allclose(merged[1], whole[1], rtol=1e-13)
    np.testing.assert_allclose(merged[2], whole[2], rtol=1e-10)
    # the empty state is the identity on both sides
    empty = km.empty_state((4, 5), 7)
    assert km.merge_states(empty, whole) is whole and km.merge_states(whole, empty) is whole


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(2, 40),
    cuts=st.lists(st.integers(1, 39), max_size=5),
    order=st.integers(1, 8),
    offset=st.sampled_from([0.0, 1e3, 1e6]),
    seed=st.integers(0, 2**16),
)
def test_merge_property(n, cuts, order, offset, seed):
    x = np.random.default_rng(seed).exponential(10.0, (n, 3)) + offset
    edges = sorted({0, n, *[c for c in cuts if c < n]})
    merged = km.merge_all([km.moment_state(x[a:b], order) for a, b in zip(edges[:-1], edges[1:])])
    rmean, rM = ref_central(x, max(order, 2))
    np.testing.assert_allclose(merged[1], rmean, rtol=1e-12)
    if order >= 2:
        # natural scale of the order-k sum: n * variance^(k/2) (odd sums of symmetric data are ~0)
        var = rM[0] / n
        scale = np.stack([n * var ** (k / 2) for k in range(2, order + 1)]) + 1e-300
        np.testing.assert_allclose(merged[2] / scale, rM[: order - 1] / scale, atol=1e-9)


def test_state_to_stats():
    x = np.array([[1.0], [2.0], [6.0]])
    stats = km.state_to_stats(km.moment_state(x, 3))
    d = x[:, 0] - 3.0
    np.testing.assert_allclose(stats[:, 0], [3.0, 0.0, np.mean(d**2), np.mean(d**3)])
    assert np.isnan(km.state_to_stats(km.empty_state((1,), 3))).all()


def test_cumulants_from_moments_formulas():
    rng = np.random.default_rng(3)
    m = np.vstack([np.zeros((1, 5)), rng.random((7, 5))])  # central moments of orders 1..8
    k = km.cumulants_from_moments(m)
    m2, m3, m4, m5, m6 = m[1], m[2], m[3], m[4], m[5]
    np.testing.assert_allclose(k[0], 0)
    np.testing.assert_allclose(k[1], m2)
    np.testing.assert_allclose(k[2], m3)
    np.testing.assert_allclose(k[3], m4 - 3 * m2**2)
    np.testing.assert_allclose(k[4], m5 - 10 * m3 * m2)
    np.testing.assert_allclose(k[5], m6 - 15 * m4 * m2 - 10 * m3**2 + 30 * m2**3)
    # order 8 against the generic recursion written with a different index
    kk = {}
    mm = {n + 1: m[n] for n in range(8)}
    for n in range(1, 9):
        kk[n] = mm[n] - sum(math.comb(n - 1, j - 1) * kk[j] * mm[n - j] for j in range(1, n))
    np.testing.assert_allclose(k[7], kk[8])


def test_cumulants_of_known_distributions():
    # Gaussian: central moments (0, s^2, 0, 3 s^4, 0, 15 s^6, 0, 105 s^8) -> cumulants 0 beyond order 2
    s2 = 2.5
    m = np.array([0, s2, 0, 3 * s2**2, 0, 15 * s2**3, 0, 105 * s2**4])
    k = km.cumulants_from_moments(m)
    np.testing.assert_allclose(k[2:], 0, atol=1e-9)
    # Bernoulli(p) raw moments are all p; raw cumulants: p, p(1-p), p(1-p)(1-2p), p(1-p)(1-6p(1-p))
    p = 0.3
    k = km.cumulants_from_moments(np.full(4, p))
    q = p * (1 - p)
    np.testing.assert_allclose(k, [p, q, q * (1 - 2 * p), q * (1 - 6 * q)])


def test_segment_states_match_slices():
    rng = np.random.default_rng(4)
    x = rng.random((10, 3, 2))
    edges = np.array([0, 4, 4, 13, 20])
    got = km.segment_states(x, 7, edges, 3)  # frames 7..16
    assert sorted(got) == [2, 3]  # block 1 is empty, block 0 ends before the chunk
    np.testing.assert_allclose(got[2][1], x[0:6].mean(0))
    np.testing.assert_allclose(got[3][2], km.moment_state(x[6:], 3)[2])


# -------------------------------------------------------------------------------------------- lags


def test_lag_subsets_like_pysofi():
    assert km.lag_subsets(2) == [(0, 1)]
    assert km.lag_subsets(3) == [(0, 1), (0, 1, 2)]
    subs = km.lag_subsets(5)
    assert len(subs) == 10 + 10 + 2 and subs[-2:] == [(0, 1, 2, 3), (0, 1, 2, 3, 4)]
    assert set(itertools.combinations(range(5), 3)) <= set(subs)


def test_lag_product_sums():
    rng = np.random.default_rng(5)
    x = rng.random((20, 3, 600))  # > one tile of pixels
    mean = x.mean(0)
    lags = (0, 1, 3, 4, 6)
    subs = km.lag_subsets(len(lags))
    got = km.lag_product_sums(x, mean, lags, 14, subs)
    for i, s in enumerate(subs):
        np.testing.assert_allclose(got[i], ref_lag_moment(x, mean, lags, s), rtol=1e-12, atol=1e-12)
    assert not km.lag_product_sums(x, mean, lags, 0, subs).any()
    with pytest.raises(ValueError, match="too short"):
        km.lag_product_sums(x, mean, lags, 15, subs)


def test_lag_partitions_counts():
    # set partitions of n elements without singletons (OEIS A000296), minus the one-block partition
    assert [len(km.lag_partitions(n)) for n in range(2, 8)] == [0, 0, 3, 10, 40, 161]
    for part in km.lag_partitions(6):
        assert sorted(i for b in part for i in b) == list(range(6)) and min(map(len, part)) >= 2


def test_lag_cumulants_formulas():
    rng = np.random.default_rng(6)
    subs = km.lag_subsets(5)
    m = {s: rng.random(4) for s in subs}
    k = km.lag_cumulants_from_moments(np.stack([m[s] for s in subs]), subs, 5)
    np.testing.assert_allclose(k[0], m[(0, 1)])
    np.testing.assert_allclose(k[1], m[(0, 1, 2)])
    k4 = m[(0, 1, 2, 3)] - m[(0, 1)] * m[(2, 3)] - m[(0, 2)] * m[(1, 3)] - m[(0, 3)] * m[(1, 2)]
    np.testing.assert_allclose(k[2], k4)
    pairs = list(itertools.combinations(range(5), 2))
    k5 = m[(0, 1, 2, 3, 4)] - sum(m[p] * m[tuple(sorted(set(range(5)) - set(p)))] for p in pairs)
    np.testing.assert_allclose(k[3], k5)


def test_lag_cumulants_vanish_for_gaussian_white_noise():
    """Joint cumulants of order >= 3 of independent Gaussian frames are ~0; order 2 ~0 at nonzero lag."""
    rng = np.random.default_rng(7)
    x = rng.normal(0, 1, (20000, 1))
    lags = (0, 1, 2, 3)
    subs = km.lag_subsets(4)
    sums = km.lag_product_sums(x, x.mean(0), lags, x.shape[0] - 3, subs) / (x.shape[0] - 3)
    k = km.lag_cumulants_from_moments(sums, subs, 4)
    assert np.all(np.abs(k) < 0.05)


# -------------------------------------------------------------------------------------------- pairs


def test_pair_comoments_and_merge():
    rng = np.random.default_rng(8)
    x = rng.integers(0, 1000, (30, 6, 7)).astype(np.uint16)
    pairs = np.array([(0, 0, 0, 0), (-1, -1, 1, 1), (0, -2, 0, 2), (0, 0, 1, 0), (-2, 1, 2, -1)])
    whole = km.pair_comoment_state(x, pairs)
    np.testing.assert_allclose(whole[2], ref_pairs(x, pairs), rtol=1e-10, atol=1e-8)
    merged = whole
    parts = [km.pair_comoment_state(x[a:b], pairs) for a, b in [(0, 1), (1, 12), (12, 30)]]
    merged = parts[0]
    for p in parts[1:]:
        merged = km.merge_pair_states(merged, p, pairs)
    np.testing.assert_allclose(merged[2], whole[2], rtol=1e-10, atol=1e-7)
    np.testing.assert_allclose(merged[1], whole[1])


@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.float64])
def test_pair_comoments_every_sample_type_and_pairs_without_overlap(dtype):
    # pairs farther apart than the frame is wide or high have no positions: their sums stay 0
    rng = np.random.default_rng(10)
    x = (rng.random((25, 6, 7)) * 900).astype(dtype)
    pairs = np.array([(-1, 2, 1, -2), (0, -4, 0, 4), (-3, 0, 3, 0), (2, 3, -2, -3), (0, 0, 0, 0)])
    n, mean, C = km.pair_comoment_state(x, pairs)
    np.testing.assert_allclose(C, ref_pairs(x.astype(np.float64), pairs), rtol=1e-10, atol=1e-8)
    assert not C[1].any() and not C[2].any()


def test_pair_comoments_lead_dims():
    rng = np.random.default_rng(9)
    x = rng.random((8, 2, 5, 5))
    pairs = np.array([(0, 0, 1, 1)])
    n, mean, C = km.pair_comoment_state(x, pairs)
    assert C.shape == (1, 2, 5, 5) and mean.shape == (2, 5, 5)
    for c in range(2):
        np.testing.assert_allclose(C[:, c], ref_pairs(x[:, c], pairs))


# -------------------------------------------------------------------------------------------- threading layer

_MANY_THREADS = """
import numba, numpy as np, dask, fluoxr
from fluoxr.kernels import moments as km
from fluoxr.testing.references import central_sums as ref_central
from fluoxr.testing.references import lag_product_sum as ref_lag_moment
from fluoxr.testing.references import pair_comoment_sums as ref_pairs
x = np.random.default_rng(0).random((64, 40, 40))  # 1600 pixels: more than one tile, the parallel path
with dask.config.set(scheduler="threads", num_workers=8):
    m = fluoxr.moments(fluoxr.as_video(x, chunks=2), 4).compute()
d = x - x.mean(0)
for k in (2, 3, 4):
    np.testing.assert_allclose(m.sel(order=k).values, np.mean(d**k, axis=0), rtol=1e-9, atol=1e-15)
print(km._parallel_is_safe())
"""


def test_workqueue_layer_from_many_dask_threads():
    """numba's workqueue layer aborts on concurrent parallel launches: fluoxr must never make one."""
    env = dict(os.environ, NUMBA_THREADING_LAYER="workqueue")
    run = subprocess.run([sys.executable, "-c", _MANY_THREADS], env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.split()[-1] == "False"  # serial kernel under workqueue


def test_parallel_decision_is_made_once_behind_a_lock(monkeypatch):
    calls = []

    def slow_decision():
        calls.append(threading.get_ident())
        time.sleep(0.05)  # wide window: without the lock every thread would decide (and launch) at once
        return True

    monkeypatch.setattr(km, "_parallel_safe", None)
    monkeypatch.setattr(km, "_decide_parallel", slow_decision)
    results = []
    threads = [threading.Thread(target=lambda: results.append(km._parallel_is_safe())) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(calls) == 1 and results == [True] * 8
