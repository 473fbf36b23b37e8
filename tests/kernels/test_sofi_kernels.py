"""SOFI image kernels against plain references (and pysofi's own published test vectors)."""

from __future__ import annotations

import numpy as np
import pytest

from fluoxr.kernels import sofi as ks
from fluoxr.testing.references import cut_frames as ref_cut_frames
from fluoxr.testing.references import filter1d_same as ref_filter1d_same
from fluoxr.testing.references import fourier_interpolate as ref_finterp
from fluoxr.testing.references import ldrc as ref_ldrc
from fluoxr.testing.references import med_smooth as ref_med_smooth

# ---------------------------------------------------------------------------------------- masks


def test_gauss2d_mask_is_fspecial():
    m = ks.gauss2d_mask((5, 7), 1.2)
    y, x = np.mgrid[-2:3, -3:4]
    ref = np.exp(-(x**2 + y**2) / (2 * 1.2**2))
    np.testing.assert_allclose(m, ref / ref.sum())
    # MATLAB: fspecial('gaussian', [3 3], 0.5)
    np.testing.assert_allclose(ks.gauss2d_mask((3, 3), 0.5)[1], [0.0838, 0.6193, 0.0838], atol=1e-4)
    tiny = ks.gauss2d_mask((41, 41), 1.0)  # values below eps * max are zeroed before normalising
    assert tiny[0, 0] == 0 and tiny.sum() == pytest.approx(1)


def test_gauss1d_mask():
    h = ks.gauss1d_mask((1, 21), 2)
    x = np.arange(-10, 11)
    ref = np.exp(-(x**2) / 8.0)
    np.testing.assert_allclose(h, ref / ref.sum())


@pytest.mark.parametrize("fn", [ks.gauss2d_mask, ks.gauss1d_mask])
@pytest.mark.parametrize("shape,sigma,err,match", [
    ((3,), 1.0, ValueError, "shape must be two integers"),
    ((1, 3, 3), 1.0, ValueError, "shape must be two integers"),
    (5, 1.0, ValueError, "shape must be two integers"),
    ("ab", 1.0, ValueError, "shape must be two integers"),
    ((0, 3), 1.0, ValueError, "shape must hold integers >= 1"),
    ((1, -3), 1.0, ValueError, "shape must hold integers >= 1"),
    ((1, 2.5), 1.0, ValueError, "shape must hold integers >= 1"),
    ((1, "3"), 1.0, TypeError, "shape must hold integers"),
    ((1, 3), 0, ValueError, "sigma must be a finite number > 0"),
    ((1, 3), -1.0, ValueError, "sigma must be a finite number > 0"),
    ((1, 3), float("nan"), ValueError, "sigma must be a finite number > 0"),
    ((1, 3), "1", TypeError, "sigma must be a number"),
])
def test_gauss_masks_reject_bad_shape_and_sigma(fn, shape, sigma, err, match):
    with pytest.raises(err, match=match):
        fn(shape, sigma)


def test_gauss_masks_accept_integral_floats():
    np.testing.assert_array_equal(ks.gauss2d_mask((3.0, 5), 1.0), ks.gauss2d_mask((3, 5), 1.0))
    np.testing.assert_array_equal(ks.gauss1d_mask(np.array([1, 7]), 2), ks.gauss1d_mask((1, 7), 2.0))


# ---------------------------------------------------------------------------------------- filters

# pysofi test_filtering.py (MATLAB conv 'same' of this series with gauss1d_mask((1, 21), 2))
_SERIES = np.append(np.arange(1, 21), np.arange(21, 0, -1)).astype(float)
_FILTERED = np.array([
    1.38078275, 2.15655102, 3.05330466, 4.0148171, 5.00332504, 6.00059712, 7.00008513, 8.00000948, 9.00000074, 10, 11,
    11.99999851, 12.99998104, 13.99982974, 14.99880576, 15.99334993, 16.97036579, 17.89339068, 18.68689797,
    19.2384345, 19.43790566, 19.2384345, 18.68689797, 17.89339068, 16.97036579, 15.99334993, 14.99880576,
    13.99982974, 12.99998104, 11.99999851, 11, 10, 9.00000074, 8.00000948, 7.00008513, 6.00059712, 5.00332504,
    4.0148171, 3.05330466, 2.15655102, 1.38078275])


def test_filter1d_same_pysofi_vector():
    np.testing.assert_allclose(ks.filter1d_same(_SERIES, ks.gauss1d_mask((1, 21), 2)), _FILTERED, atol=1e-7)


@pytest.mark.parametrize("n", [1, 2, 5, 6, 17])
@pytest.mark.parametrize("taps", [1, 2, 3, 4, 21])
def test_filter1d_same_parities(n, taps):
    rng = np.random.default_rng(n * 31 + taps)
    x, h = rng.random(n), rng.random(taps)
    np.testing.assert_allclose(ks.filter1d_same(x, h), ref_filter1d_same(x, h))
    s = ks.filter_shift(n, taps)
    np.testing.assert_allclose(ks.correlate_same_block(x, h, s), ref_filter1d_same(x, h), atol=1e-14)
    assert ks.filter_halo(n, taps) >= max(s, taps - 1 - s)


def test_correlate_same_block_axis():
    rng = np.random.default_rng(0)
    x = rng.random((3, 9, 2))
    h = rng.random(4)
    s = ks.filter_shift(9, 4)
    out = ks.correlate_same_block(x, h, s, axis=1)
    for i in range(3):
        for j in range(2):
            np.testing.assert_allclose(out[i, :, j], ref_filter1d_same(x[i, :, j], h))


def test_med_smooth():
    # pysofi test_filtering.py
    np.testing.assert_allclose(ks.med_smooth(_SERIES, 5), [2, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                                           17, 18, 19, 20, 20, 20, 19, 18, 17, 16, 15, 14, 13, 12,
                                                           11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 2])
    rng = np.random.default_rng(1)
    for n, k in [(300, 251), (251, 251), (60, 21), (30, 1)]:
        sig = rng.random(n)
        np.testing.assert_array_equal(ks.med_smooth(sig, k), ref_med_smooth(sig, k))
    short = ks.med_smooth(rng.random(40), 251)  # pysofi returns an empty array here
    assert short.shape == (40,) and np.isfinite(short).all()


def test_cut_frames_pysofi_vector():
    bounds, frames = ks.cut_frames(np.arange(100, 0, -1), 0.2)  # pysofi test_reconstruction.py
    assert bounds.tolist() == [100, 80, 60, 40, 20, 1]
    assert frames.tolist() == [0, 21, 41, 61, 81, 100]


def test_cut_frames_integer_signal_matches_pysofi():
    rng = np.random.default_rng(2)
    t = np.arange(3000)
    sig = np.round(1e6 * np.exp(-t / 900) + rng.normal(0, 2000, t.size) + 3e5)
    sig = ks.med_smooth(sig, 251)
    for fbc in (0.04, 0.1, 0.3, 0.07):
        assert ks.cut_frames(sig, fbc)[1].tolist() == ref_cut_frames(sig, fbc)


def test_cut_frames_fractional_signal_keeps_exact_bounds():
    sig = np.linspace(0.9, 0.1, 81)  # pysofi would truncate every bound to 0 and find no cut
    bounds, frames = ks.cut_frames(sig, 0.25)
    np.testing.assert_allclose(bounds, [0.9, 0.7, 0.5, 0.3, 0.1])
    assert frames.tolist() == [0, 21, 41, 61, 81]


def test_cut_frames_rise_then_decay_and_flat():
    sig = np.r_[np.linspace(50, 100, 11), np.linspace(99, 0, 100)]
    frames = ks.cut_frames(sig, 0.5)[1]
    assert frames.tolist() == [0, 61, 111]  # frames before the maximum stay in block 0
    assert ks.cut_frames(np.full(10, 5.0), 0.25)[1].tolist() == [0, 10]  # no decrease, no cut
    assert ks.block_bounds(np.full(10, 5.0), 0.25, 3).tolist() == [0, 10, 10, 10, 10]


# ---------------------------------------------------------------------------------------- Fourier interpolation


def test_finterp_pysofi_vectors():
    im = np.array([[0, 1], [1, 2], [3, 4]], float)  # pysofi test_finterp.py
    two, three = ks.fourier_interp_array(im, [2, 3])
    np.testing.assert_allclose(two, [[0, 0.5, 1], [0.300641, 0.800641, 1.30064], [1, 1.5, 2],
                                     [2.032692, 2.53269, 3.03269], [3, 3.5, 4]], atol=1e-5)
    np.testing.assert_allclose(three[1], [0.1621098, 0.479097, 0.84512251, 1.1621098], atol=1e-6)


@pytest.mark.parametrize("shape,f", [((5, 7), 2), ((6, 4), 3), ((1, 5), 2), ((8, 8), 1), ((3, 9), 4)])
def test_finterp_matches_matrix_algorithm(shape, f):
    im = np.random.default_rng(sum(shape) + f).random(shape) * 100
    got = ks.interpolate_frames(im, f)
    assert got.shape == (ks.interp_size(shape[0], f), ks.interp_size(shape[1], f))
    np.testing.assert_allclose(got, ref_finterp(im, f), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(got[::f, ::f], im, rtol=1e-9)  # the original pixels are kept


@pytest.mark.parametrize("shape,f", [((5, 7), 2), ((6, 4), 3), ((1, 5), 2), ((5, 1), 3), ((8, 8), 1), ((3, 9), 4)])
@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.float64])
@pytest.mark.parametrize("route", ["real operators", "complex operators"])
def test_interpolate_real_matches_complex_products(shape, f, dtype, route, monkeypatch):
    # the CPU kernel (real GEMMs, fractional rows only) against the complex operators; "complex operators"
    # forces the route for operators with imaginary parts (three real products for the complex block)
    if route == "complex operators":
        monkeypatch.setattr(ks, "_REAL_OPERATORS", -1.0)
    frames = (np.random.default_rng(f).random((2, 3) + shape) * 500 - (0 if dtype == np.uint16 else 100)).astype(dtype)
    A, B = ks.finterp_operators(*shape, f)
    got = ks.interpolate_real(frames, A, B, batch=2)
    assert got.shape == (2, 3, ks.interp_size(shape[0], f), ks.interp_size(shape[1], f)) and got.dtype == np.float64
    np.testing.assert_allclose(got, ks.interpolate_with(frames, A, B), rtol=1e-10, atol=1e-10 * np.abs(frames).max())
    np.testing.assert_allclose(got[0, 1], ref_finterp(frames[0, 1].astype(float), f), rtol=1e-9, atol=1e-9)
    np.testing.assert_array_equal(got[..., ::f, ::f], np.abs(frames.astype(float)))  # original pixels exactly


def test_interpolate_real_nan_frames_are_nan_as_in_the_matrix_form():
    frames = np.random.default_rng(3).random((5, 6, 7)) * 100
    frames[2, 3, 4] = np.nan
    A, B = ks.finterp_operators(6, 7, 2)
    got = ks.interpolate_real(frames, A, B, batch=2)
    assert np.isnan(got[2]).all() and not np.isnan(got[[0, 1, 3, 4]]).any()
    np.testing.assert_allclose(got, ks.interpolate_with(frames, A, B), rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("shape,f", [((64, 64), 2), ((64, 48), 3), ((7, 5), 4), ((128, 96), 2), ((2, 2), 5)])
def test_pysofi_operators_are_real_to_rounding(shape, f):
    # why interpolate_real drops the imaginary parts: the mirrored frame is symmetric about a half pixel
    A, B = ks.finterp_operators(*shape, f)
    assert np.abs(A.imag).max() < ks._REAL_OPERATORS * np.abs(A.real).max()
    assert np.abs(B.imag).max() < ks._REAL_OPERATORS * np.abs(B.real).max()


@pytest.mark.parametrize("shape,f", [((64, 64), 2), ((64, 48), 3), ((7, 5), 4), ((128, 96), 2), ((2, 2), 5),
                                     ((1, 6), 2), ((9, 1), 3)])
def test_pysofi_operators_are_centro_symmetric(shape, f):
    # why interpolate_real multiplies by half-size operators: reflecting a frame reflects its interpolation
    A, B = ks.finterp_operators(*shape, f)
    for op in (A.real, B.real):
        np.testing.assert_allclose(op, op[::-1, ::-1], rtol=0, atol=ks._REAL_OPERATORS * np.abs(op).max())
    plan = ks._centro_plan(A, B)
    assert plan is not None and plan.f == f and plan.nr == A.shape[0] - shape[0]


def test_centro_route_equals_plain_products_of_the_fractional_rows():
    # the folded half-size products against A's fractional rows and B's fractional columns multiplied as they
    # are, for every size parity (even/odd height, width, count of fractional rows) and a factor above 2
    rng = np.random.default_rng(7)
    for (h, w), f in [((6, 8), 2), ((7, 9), 2), ((6, 7), 3), ((5, 4), 4)]:
        frames = rng.random((3, h, w)) * 1000
        A, B = ks.finterp_operators(h, w, f)
        Ar, Br = A.real, B.real
        plain = np.abs(np.einsum("ij,njk,kl->nil", Ar, frames, Br))
        np.testing.assert_allclose(ks.interpolate_real(frames, A, B, batch=2), plain, rtol=1e-12,
                                   atol=1e-12 * plain.max())


def test_operators_that_are_not_centro_symmetric_take_the_general_route():
    # interpolation-shaped operators (the integer rows and columns the identity) whose fractional rows are
    # real but not centro-symmetric
    rng = np.random.default_rng(1)
    A, B = ks.finterp_operators(5, 4, 2)
    A[1::2] += rng.random((4, 5)) * 0.1
    B[:, 1::2] += rng.random((4, 3)) * 0.1
    assert ks._centro_plan(A, B) is None
    frames = rng.random((5, 5, 4)) * 10
    np.testing.assert_allclose(ks.interpolate_real(frames, A, B, batch=2), ks.interpolate_with(frames, A, B),
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n,batch", [(7, 3), (1, 4), (5, 5), (9, 1)])
def test_interpolate_real_batch_tail(n, batch):
    # full batches, then the remaining frames in a batch of their own
    frames = (np.random.default_rng(n).random((n, 10, 9)) * 4000).astype(np.uint16)
    A, B = ks.finterp_operators(10, 9, 2)
    np.testing.assert_allclose(ks.interpolate_real(frames, A, B, batch=batch), ks.interpolate_with(frames, A, B),
                               rtol=1e-10, atol=1e-9)


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.int32, np.uint32, np.int64, bool])
def test_interpolate_real_other_sample_types(dtype):
    # types the numba loops do not take natively are converted to float64 first, with the same result
    frames = (np.random.default_rng(2).random((3, 6, 5)) * (1 if dtype is bool else 120)).astype(dtype)
    A, B = ks.finterp_operators(6, 5, 3)
    np.testing.assert_allclose(ks.interpolate_real(frames, A, B), ks.interpolate_with(frames.astype(float), A, B),
                               rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_interpolate_real_non_finite_frames(dtype, bad):
    frames = (np.random.default_rng(4).random((6, 8, 7)) * 100).astype(dtype)
    frames[4, 0, 6] = bad
    A, B = ks.finterp_operators(8, 7, 2)
    got = ks.interpolate_real(frames, A, B, batch=4)
    want = ks.interpolate_with(frames, A, B)
    assert np.isnan(got[4]).all() and np.isnan(want[4]).all()      # the whole frame, as pysofi's products
    np.testing.assert_allclose(got[[0, 1, 2, 3, 5]], want[[0, 1, 2, 3, 5]], rtol=1e-10, atol=1e-10)


def test_interpolate_real_in_worker_threads_uses_one_blas_thread():
    from concurrent.futures import ThreadPoolExecutor

    from fluoxr import _blas

    if "openblas" in str(np.show_config(mode="dicts")["Build Dependencies"]["blas"]).lower():
        assert _blas._set_local_threads() is not None  # NumPy's OpenBLAS has the per-thread setting
    frames = np.random.default_rng(0).random((40, 16, 16))
    A, B = ks.finterp_operators(16, 16, 2)
    with ThreadPoolExecutor(2) as pool:
        parts = list(pool.map(lambda i: ks.interpolate_real(frames[i : i + 10], A, B), range(0, 40, 10)))
    np.testing.assert_allclose(np.concatenate(parts), ks.interpolate_with(frames, A, B), rtol=1e-10, atol=1e-12)


def test_interpolate_frames_batches():
    frames = np.random.default_rng(0).random((2, 19, 5, 6))
    out = ks.interpolate_frames(frames, 2, batch=4)
    for i in range(2):
        for j in range(19):
            np.testing.assert_allclose(out[i, j], ks.interpolate_frames(frames[i, j], 2))


# ---------------------------------------------------------------------------------------- deconvolution


def test_zero_pad():
    im = np.array([[1, 2], [3, 4]])
    np.testing.assert_array_equal(ks.zero_pad(im, (4, 4)), [[0, 0, 0, 0], [0, 1, 2, 0], [0, 3, 4, 0], [0, 0, 0, 0]])
    np.testing.assert_array_equal(ks.zero_pad(im, (3, 3), "corner"), [[1, 2, 0], [3, 4, 0], [0, 0, 0]])
    assert ks.zero_pad(im, (2, 2)) is im
    with pytest.raises(ValueError, match="parity"):
        ks.zero_pad(im, (3, 4))
    with pytest.raises(ValueError, match="smaller"):
        ks.zero_pad(im, (1, 4))


def test_psf2otf_otf2psf():
    dirac = np.zeros((4, 4))
    dirac[2, 2] = 1
    np.testing.assert_allclose(ks.psf2otf(dirac, (4, 4)), np.ones((4, 4)))  # pysofi test_deconvsk.py
    psf = ks.gauss2d_mask((7, 5), 1.0)
    otf = ks.psf2otf(psf, (16, 12))
    assert otf.shape == (16, 12) and not np.iscomplexobj(otf)  # symmetric PSF: real OTF
    # the OTF is the DFT of the PSF with its centre moved to [0, 0]
    ref = np.zeros((16, 12))
    ref[:7, :5] = psf
    ref = np.roll(ref, (-3, -2), axis=(0, 1))
    np.testing.assert_allclose(otf, np.fft.fft2(ref).real, atol=1e-14)
    np.testing.assert_allclose(ks.otf2psf(otf, (7, 5)), psf, atol=1e-15)
    assert ks.psf2otf(np.zeros((3, 3)), (8, 8)).shape == (8, 8)


def test_corelucy_and_richardson_lucy():
    rng = np.random.default_rng(3)
    img = rng.random((16, 16)) + 0.5
    h = ks.psf2otf(ks.gauss2d_mask((5, 5), 1), img.shape)
    reblur = np.real(np.fft.ifft2(h * np.fft.fft2(img)))
    np.testing.assert_allclose(ks.corelucy(img, h), np.fft.fft2(img / reblur))
    # a Dirac PSF leaves the image as it is
    dirac = np.zeros((3, 3))
    dirac[1, 1] = 1
    _, J = ks.richardson_lucy(img, dirac, 3)
    np.testing.assert_allclose(J, img, rtol=1e-6)
    # deconvolving a blurred point sharpens it and keeps its flux
    point = np.zeros((32, 32))
    point[16, 16] = 100.0
    psf = ks.gauss2d_mask((9, 9), 1.5)
    blurred = np.real(np.fft.ifft2(np.fft.fft2(point) * ks.psf2otf(psf, point.shape))) + 1e-3
    _, J = ks.richardson_lucy(blurred, psf, 20)
    assert J[16, 16] > 1.1 * blurred[16, 16] and np.unravel_index(J.argmax(), J.shape) == (16, 16)
    assert J.sum() == pytest.approx(blurred.sum(), rel=0.05)


def test_deconvsk_sharpens():
    point = np.zeros((24, 24))
    point[10, 13] = 1.0
    psf = ks.gauss2d_mask((11, 11), 1.5)
    blurred = np.real(np.fft.ifft2(np.fft.fft2(point) * ks.psf2otf(psf, point.shape)))
    out = ks.deconvsk(psf, blurred, 1.5, 8)
    assert out.shape == blurred.shape
    assert np.unravel_index(out.argmax(), out.shape) == (10, 13)
    assert out[10, 13] / out.sum() > 1.5 * blurred[10, 13] / blurred.sum()


# ---------------------------------------------------------------------------------------- ldrc


def test_ldrc_pysofi_vector():
    im = np.append(np.arange(0, 20), np.arange(21, 1, -1)).reshape(5, 8).astype(float)  # pysofi test_ldrc.py
    out = ks.ldrc(np.ones((5, 8)), im, 1, [5, 5])
    np.testing.assert_allclose(out[0], [0, 0.02380952, 0.0484127, 0.08703008, 0.13775063, 0.17192982, 0.21052632,
                                        0.26315789], atol=1e-7)
    np.testing.assert_allclose(out[2, 4], 1.0)


@pytest.mark.parametrize("window", [(3, 3), (5, 2), (1, 1), (7, 9)])
def test_ldrc_matches_window_loop(window):
    rng = np.random.default_rng(sum(window))
    im = rng.random((7, 9)) ** 4 * 1e6
    im[:3, :3] = 5.0  # a flat patch
    mask = rng.random((7, 9))
    np.testing.assert_allclose(ks.ldrc(mask, im, 1, window), ref_ldrc(mask, im, window), rtol=1e-9, atol=1e-12)


def test_ldrc_resizes_a_smaller_mask():
    rng = np.random.default_rng(5)
    mask = rng.random((6, 5))
    im = rng.random((11, 9))
    out = ks.ldrc(mask, im, 2, (3, 3))
    resized = ks.resize_mask(mask, 2)
    np.testing.assert_allclose(resized[::2, ::2], mask, atol=1e-12)
    np.testing.assert_allclose(out, ref_ldrc(resized, im, (3, 3)), rtol=1e-9, atol=1e-12)
    with pytest.raises(ValueError, match="order=3"):
        ks.ldrc(mask, im, 3, (3, 3))
