"""Motion-correction kernels against plain NumPy/SciPy statements (fluoxr.testing.references) on tiny arrays."""

from __future__ import annotations

import numpy as np
import pytest

from fluoxr.kernels import motion as K
from fluoxr.testing.references import bilinear_remap, phase_correlation_map


def _frames(seed=0, shape=(5, 20, 24)):
    return (np.random.default_rng(seed).random(shape) * 100).astype(np.float32)


@pytest.mark.parametrize("func", [K.shift_rigid, K.shift_rigid_xp])
def test_rigid_shift_matches_map_coordinates(func):
    f = _frames(1)
    dy = np.array([0.0, 2.0, -1.5, 0.25, 25.0])
    dx = np.array([0.0, -3.0, 0.5, 30.0, -0.125])
    np.testing.assert_allclose(func(f, dy, dx), bilinear_remap(f, dy, dx), atol=1e-4)
    np.testing.assert_array_equal(func(f, np.zeros(5), np.zeros(5)), f)  # no shift is a copy


@pytest.mark.parametrize("func", [K.shift_rigid, K.shift_rigid_xp, K.remap_bilinear, K.remap_bilinear_xp])
def test_channels_share_their_frame_shift(func):
    f = np.stack([_frames(2), 2 * _frames(2)], axis=1)  # (t, c, y, x)
    dy, dx = np.linspace(-2, 2, 5), np.linspace(1, -1, 5)
    if func in (K.remap_bilinear, K.remap_bilinear_xp):
        dy, dx = np.broadcast_to(dy[:, None, None], (5, 20, 24)), np.broadcast_to(dx[:, None, None], (5, 20, 24))
    out = func(f, dy, dx)
    np.testing.assert_allclose(out[:, 1], 2 * out[:, 0], rtol=1e-5)


def test_remap_twins_match_the_reference():
    f = _frames(3)
    yy, xx = np.mgrid[:20, :24]
    fy = np.stack([np.sin(yy / 4 + k) * 3 for k in range(5)]).astype(np.float32)
    fx = np.stack([np.cos(xx / 3 - k) * 2 - 1 for k in range(5)]).astype(np.float32)
    ref = bilinear_remap(f, fy, fx)
    np.testing.assert_allclose(K.remap_bilinear(f, fy, fx), ref, atol=1e-4)
    np.testing.assert_allclose(K.remap_bilinear_xp(f, fy, fx), ref, atol=1e-4)


def test_correlation_window_is_the_reference_map():
    f = _frames(4, (3, 16, 18))
    ref = f[0] + 5
    mask = K.spatial_taper(3.45, 16, 18)
    offset = (ref.astype(np.float64).mean() * (1 - mask)).astype(np.float32)
    cc = K.correlation_windows(f, K.reference_fft(ref, 1.15), mask, offset, 9)  # wider than half: wraps
    d = np.arange(-9, 10)
    for i in range(3):
        full = phase_correlation_map(f[i], ref, clip=False)
        np.testing.assert_allclose(cc[i], full[np.ix_(d % 16, d % 18)], atol=2e-5)


def test_whitening_in_one_pass_equals_numpy():
    rng = np.random.default_rng(5)
    f = (rng.normal(size=(3, 4, 7)) + 1j * rng.normal(size=(3, 4, 7))).astype(np.complex64)
    cf = (rng.normal(size=(4, 7)) + 1j * rng.normal(size=(4, 7))).astype(np.complex64)
    expected = f / (K.EPS + np.abs(f)) * cf
    np.testing.assert_allclose(K.whiten_multiply(f.copy(), cf), expected, rtol=1e-5, atol=1e-6)


def test_kriging_peak_of_a_sampled_gaussian():
    # a Gaussian peak (sigma 1.2 px, like a smoothed phase correlation) sampled on the integer grid
    lcorr, lpad = 4, K.LPAD
    d = np.arange(-(lcorr + lpad), lcorr + lpad + 1)
    errs = []
    for py, px in [(0.3, -1.45), (-2.2, 0.05), (1.4, -0.6)]:
        cc = np.exp(-((d[:, None] - py) ** 2 + (d[None, :] - px) ** 2) / (2 * 1.2**2))[None].astype(np.float32)
        dy, dx, c = K.peak_subpixel(cc, lcorr, K.kriging_matrix(10), 10)
        errs += [float(dy[0]) - py, float(dx[0]) - px]
        iy, ix, ci = K.peak_subpixel(cc, lcorr, None, 1)
        assert (float(iy[0]), float(ix[0])) == (np.round(py), np.round(px))  # subpixel=1: the whole-pixel peak
    assert np.abs(errs).max() <= 0.1


def test_kriging_matrix_is_identity_without_upsampling():
    np.testing.assert_allclose(K.kriging_matrix(1), np.eye(49), atol=1e-5)


def test_blocks_follow_suite2p():
    b = K.make_blocks(100, 60, (32, 32))
    ny, nx = int(np.ceil(1.5 * 100 / 32)), int(np.ceil(1.5 * 60 / 32))
    assert len(b.ystart) == ny and len(b.xstart) == nx
    np.testing.assert_array_equal(b.ystart, np.linspace(0, 100 - 32, ny).astype(int))
    assert b.smoothing.shape == (ny * nx, ny * nx)
    np.testing.assert_allclose(b.smoothing.sum(axis=1), 1, rtol=1e-6)
    # the weight between blocks depends on their grid distance only, in row-major block order
    iy, ix = np.divmod(np.arange(ny * nx), nx)
    dist = (iy[:, None] - iy[None]) ** 2 + (ix[:, None] - ix[None]) ** 2
    w = np.exp(-dist)
    np.testing.assert_allclose(b.smoothing, w / w.sum(axis=1, keepdims=True), rtol=1e-6)
    assert K.make_blocks(40, 40, (64, 64)).size == (40, 40)  # a block larger than a side is the side


def test_snr_is_peak_over_the_rest():
    cc = np.full((2, 13, 13), 0.1, np.float32)
    cc[0, 6, 6] = 1.0
    cc[1, 6, 6], cc[1, 2, 11] = 1.0, 0.5  # a second peak far away
    np.testing.assert_allclose(K.snr(cc, 3), [10.0, 2.0], rtol=1e-6)


@pytest.mark.parametrize("phase", [-3, 2])
def test_bidiphase_estimate_and_shift_undo_each_other(phase):
    rng = np.random.default_rng(6)
    from scipy import ndimage as ndi

    base = ndi.gaussian_filter(rng.random((6, 40, 64)), (0, 1, 1)).astype(np.float32)
    scanned = base.copy()
    scanned[:, 1::2] = np.roll(base[:, 1::2], phase, axis=2)
    est = K.bidiphase_estimate(scanned)
    assert est == -phase
    fixed = K.bidiphase_shift(scanned, est)
    inner = slice(abs(phase), 64 - abs(phase))
    np.testing.assert_array_equal(fixed[:, :, inner], base[:, :, inner])


def test_reference_is_a_sharp_mean():
    from fluoxr.testing import moving_video

    video, truth = moving_video(n_frames=30, shape=(64, 64), max_shift=2.0, seed=8)
    ref = K.compute_reference(video.values, max_shift=0.1, smooth_sigma=1.15, spatial_taper_slope=3.45)
    # the reference is the image up to a whole-pixel position: its correlation with a shift of it is near 1
    img = truth.image.values
    best = max(np.corrcoef(np.roll(img, (a, b), (0, 1))[8:-8, 8:-8].ravel(), ref[8:-8, 8:-8].ravel())[0, 1]
               for a in range(-3, 4) for b in range(-3, 4))
    assert best > 0.97
