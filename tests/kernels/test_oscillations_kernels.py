"""Oscillation kernels against the plain NumPy/SciPy references, on tiny arrays."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage as ndi

from fluoxr.kernels import oscillations as K
from fluoxr.testing.references import EIGHT
from fluoxr.testing.references import gradient_sign as ref_sign
from fluoxr.testing.references import neighbour_vote as ref_vote
from fluoxr.testing.references import oscillation_labels as ref_stage2

SETTINGS = settings(max_examples=60, deadline=None)


@st.composite
def small_images(draw, values=(0, 1, 2)):
    h = draw(st.integers(1, 14))
    w = draw(st.integers(1, 14))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    img = rng.choice(np.array(values, np.int8), size=(h, w), p=rng.dirichlet(np.ones(len(values))))
    if draw(st.booleans()):
        # blobs: runs, holes, touching borders
        img = np.where(ndi.uniform_filter(img.astype(float), 3) > 0.5, img, 0).astype(np.int8)
    return img


@SETTINGS
@given(small_images())
def test_label_runs_matches_scipy_per_kind(img):
    lab, n1, n2, area = K.label_kinds(img)
    l1, m1 = ndi.label(img == 1, structure=EIGHT)
    l2, m2 = ndi.label(img == 2, structure=EIGHT)
    assert (n1, n2) == (m1, m2)
    np.testing.assert_array_equal(lab, l1 + l2)
    np.testing.assert_array_equal(area[0, : n1 + 1], np.bincount(l1.ravel(), minlength=n1 + 1))
    np.testing.assert_array_equal(area[1, : n2 + 1], np.bincount(l2.ravel(), minlength=n2 + 1))


@SETTINGS
@given(small_images(values=(-1, 0, 1)))
def test_neighbour_vote_matches_edge_padded_shifts(sign):
    vote = np.empty(sign.shape, np.int8)
    K.neighbour_vote(sign, vote)
    influx, efflux = ref_vote(sign)
    np.testing.assert_array_equal(vote, influx * 1 + efflux * 2)


@SETTINGS
@given(small_images())
def test_border_touches(img):
    runs = K.Runs(img.size)
    nr, n1, n2 = K.label_runs(img, *runs.arrays())
    lab = np.empty(img.shape, np.int32)
    K.paint_runs(nr, runs.start, runs.stop, runs.label, runs.row, lab)
    sides = np.zeros((2, img.size + 2), np.int64)
    K.border_touches(nr, runs.start, runs.stop, runs.label, runs.value, runs.row, n1, n2, *img.shape, sides)
    h, w = img.shape
    for k, n in ((0, n1), (1, n2)):
        item = np.where(img == k + 1, lab, 0)
        for c in range(n + 1):
            ys, xs = np.nonzero(item == c)
            expected = 0 if ys.size == 0 else (
                int(ys.min() == 0) + int(xs.min() == 0) + int(ys.max() == h - 1) + int(xs.max() == w - 1))
            assert sides[k, c] == expected, (k, c)


@SETTINGS
@given(st.integers(1, 4), small_images(values=(-1, 0, 1)), st.integers(1, 9), st.booleans())
def test_vote_and_filter_matches_reference(nt, frame, min_size, compat):
    rng = np.random.default_rng(frame.size)
    sign = np.stack([frame] + [rng.permutation(frame.ravel()).reshape(frame.shape) for _ in range(nt - 1)])
    out = K.vote_and_filter(sign[:, None], min_size, compat)
    np.testing.assert_array_equal(out[:, 0], ref_stage2(sign, min_size, cellects_like=compat))


def test_vote_and_filter_cellects_swap_drops_the_cluster():
    # influx everywhere but a hole: cc() keeps the hole and drops the real cluster
    sign = np.ones((1, 1, 10, 10), np.int8)
    sign[0, 0, 2:6, 2:6] = 0  # the vote leaves a hole of 12 pixels
    plain = K.vote_and_filter(sign, 1, False)[0, 0]
    compat = K.vote_and_filter(sign, 1, True)[0, 0]
    assert (plain == 0).sum() == 12 and (plain[3:5, 3:5] == 0).all()
    np.testing.assert_array_equal(compat, np.where(plain == 1, 0, 1))


def test_vote_and_filter_skips_frames_and_keeps_planes_apart():
    sign = np.ones((3, 2, 6, 6), np.int8)
    sign[:, 1] = -1
    out = K.vote_and_filter(sign, 4, False, n_skip=1)
    assert (out[0] == 0).all() and (out[1:, 0] == 1).all() and (out[1:, 1] == 2).all()


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int64, np.float16, np.float32, np.float64])
@pytest.mark.parametrize("lag", [None, "period"])
def test_gradient_sign_matches_np_gradient(dtype, lag, rng):
    v = (rng.random((17, 5, 6)) * 200 + 10).astype(dtype)
    v[4] = v[6]  # equal frames: exact zeros in the central difference
    mask = rng.random((5, 6)) > 0.3
    expected = ref_sign(v, mask=mask, period_s=13.0, interval_s=1.0, lag=lag)
    k = 1 if lag is None else K.period_lag(13.0, 1.0)
    spacing = K.cellects_spacing(13.0, 1.0) if lag is None else None
    for c0, c1 in [(0, 17), (0, 1), (5, 9), (16, 17)]:
        lo, hi = max(c0 - k, 0), min(c1 - 1 + k, 16)
        got = K.gradient_sign(v[lo : hi + 1], lo, (c0, c1), 17, k=k, spacing=spacing, mask=mask)
        np.testing.assert_array_equal(got, expected[c0:c1], err_msg=f"frames {c0}:{c1}")


@pytest.mark.parametrize("dtype", [np.uint16, np.float32])
def test_gradient_sign_lowmem_is_cellects_float16_path(dtype, rng):
    v = (1000 + rng.normal(0, 2, (30, 4, 5))).astype(dtype)
    # Cellects' loop: per pixel, np.round(np.gradient(x / means, spacing), 3).astype(float16)
    means = np.mean(v, (1, 2))
    cellects = np.zeros(v.shape, np.float16)
    for y in range(4):
        for x in range(5):
            cellects[:, y, x] = np.round(np.gradient(v[:, y, x] / means, 7), 3).astype(np.float16)
    expected = np.sign(cellects).astype(np.int8)
    got = K.gradient_sign(v, 0, (0, 30), 30, k=1, spacing=7, lowmem=True)
    np.testing.assert_array_equal(got, expected)
    fast = K.gradient_sign(v, 0, (0, 30), 30, k=1, spacing=7)
    assert (got == 0).sum() > (fast == 0).sum()  # the rounding turns small gradients into 0


def test_gradient_sign_needs_its_halo():
    v = np.ones((5, 2, 2))
    with pytest.raises(ValueError, match="frames"):
        K.gradient_sign(v[1:], 1, (1, 3), 5, k=1)


def test_period_lag_and_spacing():
    assert K.cellects_spacing(60, 2) == 30 and K.cellects_spacing(1, 2) == 2
    assert K.period_lag(60, 2) == 8 and K.period_lag(2, 2) == 1
    assert K.gradient_halo(3) == 3


def test_track_block_components_links_and_onsets():
    # pixel (0, 0): influx at 1, efflux at 2, influx at 3 -> one period sample of 2 frames
    block = np.zeros((4, 3, 4), np.int8)
    block[1, 0, 0] = 1
    block[2, 0, 0] = 2
    block[3, 0, 0] = 1
    block[0:3, 2, 1:4] = 1      # a bar that lasts three frames: linked twice
    comp, links, first_img, last_img, first_t, first_c, last_t, samples = K.track_block(
        block, np.zeros((3, 4), np.int8), False, 10, 10, 1)
    assert comp[:, 0].tolist() == [10, 11, 11, 12, 12, 13]
    assert comp[comp[:, 2] == 3, 1].tolist() == [1, 1, 1]
    assert sorted(map(tuple, links.tolist())) == [(0, 2), (2, 3)]  # frame 12: the bar (influx) comes first
    assert first_img[2, 1] == 1 and last_img[0, 0] == 6
    assert first_t[0, 0, 0] == 11 and first_t[1, 0, 0] == 12 and last_t[0, 0, 0] == 13
    assert samples.tolist() == [[5, 2]]   # credited to the component of the later onset


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int64, np.float32, np.float64])
@pytest.mark.parametrize("lowmem", [False, True])
def test_gradient_sign_numba_path_equals_numpy_path(dtype, lowmem, rng):
    v = (rng.normal(500, 3, (12, 2, 7, 6))).astype(dtype)
    v[3] = v[5]
    mask = rng.random((12, 2, 7, 6)) > 0.2
    for k, spacing in ((1, 5), (3, None)):
        if lowmem and spacing is None:
            continue
        for c0, c1 in ((0, 12), (4, 6), (11, 12)):
            lo, hi = max(c0 - k, 0), min(c1 - 1 + k, 11)
            args = (v[lo : hi + 1], lo, (c0, c1), 12)
            kw = dict(k=k, spacing=spacing, lowmem=lowmem, mask=mask[c0:c1])
            fast = K.gradient_sign(*args, **kw)
            np.testing.assert_array_equal(fast, K._gradient_sign_numpy(*args, **kw))
            np.testing.assert_array_equal(K.gradient_sign(*args, **{**kw, "mask": mask[0, 0]}),
                                          K._gradient_sign_numpy(*args, **{**kw, "mask": mask[0, 0]}))
