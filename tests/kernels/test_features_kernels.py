"""Kernels of the ROI features against slow, obvious NumPy/SciPy statements on tiny arrays."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import binary_dilation, generate_binary_structure

from fluoxr.kernels import features as K


def _dilate_each(center, iterations, ndim):
    """scipy's dilation of every patch alone (the patch edge is background)."""
    c = np.asarray(center, bool)
    flat = c.reshape((-1,) + c.shape[c.ndim - ndim:])
    cross = generate_binary_structure(ndim, 1)
    out = np.stack([binary_dilation(p, cross, iterations=iterations) if p.any() else np.zeros_like(p) for p in flat])
    return out.reshape(c.shape)


@settings(max_examples=60, deadline=None)
@given(
    n=st.integers(1, 3), nz=st.integers(1, 4), ny=st.integers(1, 9), nx=st.integers(1, 9),
    iterations=st.integers(1, 9), density=st.floats(0.0, 0.3), seed=st.integers(0, 2**16),
)
def test_surround_equals_scipy_dilation_with_the_cross(n, nz, ny, nx, iterations, density, seed):
    rng = np.random.default_rng(seed)
    c2 = rng.random((n, ny, nx)) < density
    np.testing.assert_array_equal(K.surround(c2, iterations, 2), _dilate_each(c2, iterations, 2))
    c3 = rng.random((n, nz, ny, nx)) < density
    np.testing.assert_array_equal(K.surround(c3, iterations, 3), _dilate_each(c3, iterations, 3))
    # 2-D patches of a 4-D stack: the leading axes are batch, no dilation along them
    np.testing.assert_array_equal(K.surround(c3, iterations, 2), _dilate_each(c3, iterations, 2))


def test_scatter_patches_against_a_loop(rng):
    width, n = 2, 3
    roi = np.array([0, 0, 0, 1, 2, 2])
    y = np.array([0, 1, 5, 3, 7, 7])
    x = np.array([0, 0, 0, 3, 6, 7])
    z = np.array([0, 1, 1, 0, 2, 2])
    w = rng.random(6).astype(np.float32)
    centers = np.array([[1, 0], [3, 3], [7, 6]])
    got = K.scatter_patches(roi, (y, x), w, centers, n, width, -1.0)
    exp = np.full((n, 5, 5), -1.0, np.float32)
    got3 = K.scatter_patches(roi, (y, x), w, centers, n, width, 0.0, planes=3, z=z)
    exp3 = np.zeros((n, 3, 5, 5), np.float32)
    for r, yy, xx, zz, ww in zip(roi, y, x, z, w):
        dy, dx = yy - centers[r, 0] + width, xx - centers[r, 1] + width
        if 0 <= dy < 5 and 0 <= dx < 5:  # (5, 0) of ROI 0 is 4 rows from its centre: dropped
            exp[r, dy, dx] = ww
            exp3[r, zz, dy, dx] = ww
    assert got.dtype == np.float32
    np.testing.assert_array_equal(got, exp)
    np.testing.assert_array_equal(got3, exp3)
    assert exp[0].max() > -1 and np.count_nonzero(exp[0] != -1) == 2


@pytest.mark.parametrize("volumetric", [False, True])
def test_gather_patches_against_padded_slices(rng, volumetric):
    ref = rng.random((3, 6, 7)).astype(np.float32)
    width, fill = 2, 9.0
    centers = np.array([[0, 0, 0], [2, 5, 6], [1, 3, 3], [1, -40, 2], [2, 2, 100]])
    got = K.gather_patches(K.pad_reference(ref, width, fill), centers, width, volumetric=volumetric)
    big = np.pad(ref, ((0, 0), (60, 120), (60, 120)), constant_values=fill)
    for i, (cz, cy, cx) in enumerate(centers):
        sl = big[:, 60 + cy - width : 60 + cy + width + 1, 60 + cx - width : 60 + cx + width + 1]
        np.testing.assert_array_equal(got[i], sl if volumetric else sl[cz])
    assert got.shape == ((5, 3, 5, 5) if volumetric else (5, 5, 5))
    assert np.all(got[3] == fill) and np.all(got[4] == fill)


def test_in_out_sums_are_literal_products(rng):
    ref = rng.random((4, 5, 5))
    c = rng.random((4, 5, 5)) < 0.3
    s = c | (rng.random((4, 5, 5)) < 0.4)
    inside, outside = K.in_out_sums(c, s, ref)
    np.testing.assert_allclose(inside, (c * ref).sum((1, 2)))
    np.testing.assert_allclose(outside, (s * ref).sum((1, 2)))
    ref[0, 0, 0] = np.nan  # outside the centre: 0 * NaN is NaN, as in cellector's product
    c[0, 0, 0] = False
    assert np.isnan(K.in_out_sums(c, s, ref)[0][0])


def _nan_corr(m, r):
    """cellector's compute_correlation, written out with NumPy's nan-functions in float64."""
    m = m.astype(np.float64)
    r = r.astype(np.float64)
    ax = (-2, -1)
    um, ur = np.nanmean(m, ax, keepdims=True), np.nanmean(r, ax, keepdims=True)
    n = np.sum(~np.isnan(m), ax)
    return np.nansum((r - ur) * (m - um), ax) / n / np.nanstd(r, ax) / np.nanstd(m, ax)


def test_masked_correlation_matches_nan_statistics(rng):
    m = rng.random((6, 5, 5))
    r = rng.random((6, 5, 5)) + 0.5 * m
    keep = rng.random((6, 5, 5)) < 0.7
    m_nan, r_nan = np.where(keep, m, np.nan), np.where(keep, r, np.nan)
    r_nan[2, keep[2]] = np.where(rng.random(keep[2].sum()) < 0.2, np.nan, r_nan[2, keep[2]])  # NaN in r only
    with np.errstate(all="ignore"):
        exp = _nan_corr(m_nan, r_nan)
    np.testing.assert_allclose(K.masked_correlation(m_nan, r_nan), exp, rtol=1e-12)
    # keep= gives the same as NaN-filling
    np.testing.assert_allclose(K.masked_correlation(m, np.where(np.isnan(r_nan) & keep, np.nan, r), keep), exp,
                               rtol=1e-12)
    # a patch with nothing kept is NaN; a constant patch has no correlation
    keep[0] = False
    m[1] = 1.0
    with np.errstate(all="ignore"):
        got = K.masked_correlation(m, r, keep)
    assert np.isnan(got[0]) and not np.isfinite(got[1])


@pytest.mark.parametrize("shape,axes", [((3, 7, 7), (-2, -1)), ((2, 6, 8), (-2, -1)), ((2, 3, 5, 4), (-3, -2, -1))])
@pytest.mark.parametrize("eps", [0.0, 1e-8, 1.0, 1e6])
def test_phase_correlation_zero_equals_mean_of_full_spectrum(rng, shape, axes, eps):
    a, b = rng.random(shape), rng.random(shape)
    r = np.fft.fftn(a, axes=axes) * np.conj(np.fft.fftn(b, axes=axes))
    exp = (r / (eps + np.abs(r))).mean(axis=axes).real
    np.testing.assert_allclose(K.phase_correlation_zero(a, b, eps, axes), exp, rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(K.phase_correlation_zero(a, b, eps, axes, single=True), exp, rtol=0,
                               atol=1e-5 * np.abs(exp).max())
    np.testing.assert_allclose(K.cross_power_spectrum(a, b, eps, axes), r / (eps + np.abs(r)), rtol=1e-10, atol=1e-15)
    # broadcasting one reference against a stack
    for single in (False, True):
        np.testing.assert_allclose(K.phase_correlation_zero(a, b[:1], eps, axes, single),
                                   K.phase_correlation_zero(a, np.broadcast_to(b[:1], a.shape), eps, axes, single),
                                   rtol=1e-12)


def test_single_precision_is_insensitive_to_a_bright_background(rng):
    # a patch of small contrast on a large mean: plain float32 FFTs round its Fourier terms to the
    # scale of the mean; without the mean they keep about 1e-7 of the contrast
    m = (rng.random((50, 31, 31)) * (rng.random((50, 31, 31)) < 0.1)).astype(np.float32)
    r = (1e5 + rng.random((50, 31, 31)) * 10).astype(np.float32)
    for eps in (1e6, 1e-8):
        exact = K.phase_correlation_zero(m, r, eps, (-2, -1))  # float64 FFTs of the same float32 patches
        got = K.phase_correlation_zero(m, r, eps, (-2, -1), single=True)
        fa = np.fft.rfft2(m).astype(np.complex128)
        fb = np.fft.rfft2(r).astype(np.complex128)
        rr = fa * np.conj(fb)
        w = np.r_[1.0, np.full(15, 2.0)]
        plain = ((rr.real / (eps + np.abs(rr))) * w).sum((1, 2)) / 961
        scale = np.abs(exact).max()
        assert np.abs(got - exact).max() < 1e-6 * scale
        assert np.abs(got - exact).max() < 0.1 * np.abs(plain - exact).max()


def _cellector_bpf(image, lowcut, highcut, order):
    """cellector.filters.butterworth_bpf written out (fftshift, full complex FFT)."""
    ny, nx = image.shape[-2:]
    yf = np.fft.fftshift(np.fft.fftfreq(2 * ny + 1, 1 / ny))
    xf = np.fft.fftshift(np.fft.fftfreq(2 * nx + 1, 1 / nx))
    f = np.sqrt(yf[:, None] ** 2 + xf[None] ** 2)
    g = np.ones_like(f)
    if lowcut is not None:
        g *= 1 - 1 / (1 + (f / lowcut) ** (2 * order))
    if highcut is not None:
        g *= 1 / (1 + (f / highcut) ** (2 * order))
    spec = np.fft.fftshift(np.fft.fft2(image, (2 * ny + 1, 2 * nx + 1)), axes=(-2, -1))
    return np.fft.ifft2(np.fft.ifftshift(g * spec, axes=(-2, -1)), axes=(-2, -1))[..., :ny, :nx].real


@pytest.mark.parametrize("lowcut,highcut,order", [(2.0, 6.0, 3.0), (3.0, None, 1.0), (None, 4.0, 2.0)])
def test_butterworth_bandpass_matches_the_shifted_formula(rng, lowcut, highcut, order):
    img = rng.random((2, 9, 12))
    np.testing.assert_allclose(K.butterworth_bandpass(img, lowcut, highcut, order),
                               _cellector_bpf(img, lowcut, highcut, order), atol=1e-12)


def test_weighted_dot_against_a_loop(rng):
    roi = np.array([0, 0, 1, 1, 1, 2])
    values = rng.random(6)
    w = rng.random(6)
    w[5] = 0.0
    with np.errstate(all="ignore"):
        got = K.weighted_dot(roi, values, w, 3)
    for i in range(2):
        sel = roi == i
        assert got[i] == pytest.approx(values[sel] @ w[sel] / np.linalg.norm(w[sel]))
    assert np.isnan(got[2])  # all weights 0


def test_window_2d_is_numpys_outer_product():
    np.testing.assert_array_equal(K.window_2d((5, 7), "hanning"), np.outer(np.hanning(5), np.hanning(7)))


def test_roc_auc_counts_pairs_with_ties_as_half(rng):
    s = rng.integers(0, 5, 40).astype(float)
    lab = rng.random(40) < 0.4
    pos, neg = s[lab], s[~lab]
    exp = ((pos[:, None] > neg[None]).sum() + 0.5 * (pos[:, None] == neg[None]).sum()) / (pos.size * neg.size)
    assert K.roc_auc(s, lab) == pytest.approx(exp)
