"""fluoxr against pysofi 0.1.1 itself, function by function (run in the peer venv; skipped without pysofi).

Each test calls pysofi's own function on the same TIFF (pysofi reads files)
or array and compares the numbers. pysofi 0.1.1 does not run on NumPy 2 as
released: it calls ``np.int`` (``filter1d_same``, ``noise_filter1d``),
``np.float`` (``deconvsk.richardson_lucy``), ``np.alltrue``
(``deconvsk.zero_pad``) and ``np.math`` (``calc_cumulants_from_moments_with_lag``),
all removed from NumPy 2. The ``numpy2_aliases`` fixture puts those four
names back on NumPy for the length of a test (``np.int = int``, ``np.float =
float``, ``np.alltrue = np.all``, ``np.math = math``, what they meant in
NumPy 1) and patches nothing else. Where pysofi has a bug that fluoxr does
not reproduce (int64 truncation of moments, uint16 wrap-around of the total
signal, ``correct_bleaching`` ignoring its ``smooth_kernel``, NaN from flat
ldrc windows), the test says so and compares on the same footing.
"""

from __future__ import annotations

import contextlib
import inspect
import io
import math
import os

import numpy as np
import pytest
import xarray as xr

import fluoxr
from fluoxr.kernels import sofi as ks

pysofi = pytest.importorskip("pysofi")
pytestmark = pytest.mark.peer

T, H, W = 300, 16, 14  # frame sums stay below 2^16: pysofi's total signal wraps around in uint16


@pytest.fixture
def numpy2_aliases(monkeypatch):
    """The four NumPy 1 names pysofi calls, back on NumPy for the test (nothing else is patched)."""
    monkeypatch.setattr(np, "int", int, raising=False)
    monkeypatch.setattr(np, "float", float, raising=False)
    monkeypatch.setattr(np, "alltrue", np.all, raising=False)
    monkeypatch.setattr(np, "math", math, raising=False)


@pytest.fixture(scope="module")
def movie(tmp_path_factory):
    """Blinking emitters on a bleaching background: ``(folder, name, frames)`` of a uint16 TIFF."""
    import tifffile

    rng = np.random.default_rng(11)
    yy, xx = np.mgrid[0:H, 0:W]
    ys, xs = rng.uniform(2, H - 2, 5), rng.uniform(2, W - 2, 5)
    psf = np.exp(-((yy[None] - ys[:, None, None]) ** 2 + (xx[None] - xs[:, None, None]) ** 2) / (2 * 1.5**2))
    on = rng.random((T, 5)) < 0.3
    bleach = np.exp(-np.arange(T) / (T / 2.5))
    frames = 50 + 80 * bleach[:, None, None] + np.einsum("te,eyx->tyx", on * 300.0 * bleach[:, None], psf)
    frames = np.clip(frames + rng.normal(0, 4, frames.shape), 0, 65535).astype(np.uint16)
    assert frames.reshape(T, -1).sum(1).max() < 2**16
    folder = tmp_path_factory.mktemp("pysofi")
    tifffile.imwrite(folder / "movie.tif", frames)
    return str(folder), "movie.tif", frames


def quiet():
    return contextlib.redirect_stdout(io.StringIO())  # pysofi prints a progress bar per frame


def video_of(movie, chunks=37):
    folder, name, _ = movie
    return fluoxr.open_video(os.path.join(folder, name), chunks=chunks)  # chunks aligned with nothing


def rel(a, b):
    a, b = np.asarray(a, float), np.asarray(b, float)
    return float(np.nanmax(np.abs(a - b)) / max(np.nanmax(np.abs(b)), 1e-300))


# ------------------------------------------------------------------------------ blocks and bleaching


def test_block_averaged_moments_and_cumulants(movie):
    from pysofi import filtering, reconstruction as rec

    folder, name, frames = movie
    fbc, kernel = 0.2, 21
    with quiet():
        signal = rec.calc_total_signal(folder, name)
        mab = rec.moments_all_blocks(folder, name, 4, kernel, fbc)
        kab = rec.cumulants_all_blocks(mab)
        bam = rec.block_ave_moments(folder, name, 4, kernel, fbc)
        bak = rec.block_ave_cumulants(folder, name, 4, kernel, fbc)
    # the blocks: fluoxr cuts where pysofi cuts
    edges = rec.cut_frames(filtering.med_smooth(signal, kernel), fbc)[1]
    blocks = fluoxr.bleach_blocks(video_of(movie), fbc=fbc, smooth_kernel=kernel).compute()
    np.testing.assert_array_equal(np.unique(blocks.values), np.unique(edges))
    bm = fluoxr.block_moments(video_of(movie), 4, fbc=fbc, smooth_kernel=kernel).compute()
    pm = np.array([[mab[i][n] for n in range(1, 5)] for i in sorted(mab)], float)
    assert rel(bm.moments, pm) < 1e-12
    pk = np.array([[kab[i][n] for n in range(2, 5)] for i in sorted(kab)], float)
    ours_k = fluoxr.block_moments(video_of(movie), 4, edges=edges).cumulants.sel(order=slice(2, None)).compute()
    assert rel(ours_k, pk) < 1e-12
    # block-averaged: fluoxr's moments/cumulants with bleach correction are pysofi's block_ave_*
    ave_m = fluoxr.moments(video_of(movie), 4, bleach_correction=True, fbc=fbc, smooth_kernel=kernel).compute()
    ave_k = fluoxr.cumulants(video_of(movie), 4, bleach_correction=True, fbc=fbc, smooth_kernel=kernel).compute()
    assert rel(ave_m.sel(order=[2, 3, 4]), np.array([bam[n] for n in (2, 3, 4)])) < 1e-12
    assert rel(ave_k.sel(order=[2, 3, 4]), np.array([bak[n] for n in (2, 3, 4)])) < 1e-12


def test_correct_bleaching(movie):
    from pysofi import reconstruction as rec

    folder, name, frames = movie
    with quiet():
        theirs = rec.correct_bleaching(folder, name, fbc=0.2, save_option=False, return_option=True)
    # pysofi's correct_bleaching always smooths with 251 frames, whatever smooth_kernel it is given (and its
    # med_smooth drops frames when the window is longer than the recording: the movie has more than 251 frames)
    ours = fluoxr.bleach_correct(video_of(movie), fbc=0.2, smooth_kernel=251).compute()
    assert ours.shape == np.shape(theirs)
    np.testing.assert_array_equal(ours.values, np.asarray(theirs))


# ------------------------------------------------------------------------------ lags


def test_lag_moments_and_cumulants(movie, numpy2_aliases):
    from pysofi import reconstruction as rec

    folder, name, _ = movie
    lags = [0, 1, 3, 4, 6]
    with quiet():
        ml = rec.calc_moments_with_lag(folder, name, lags)
        kl = rec.calc_cumulants_from_moments_with_lag(ml, lags)  # np.math (patched)
    lm = fluoxr.lag_moments(video_of(movie), lags).compute()
    for s in lm.subset.values:
        order = len(s.split(","))
        np.testing.assert_allclose(lm.sel(subset=s).values, ml[order][tuple(int(v) for v in s.split(","))],
                                   rtol=1e-9, atol=1e-9 * np.abs(ml[order][tuple(int(v) for v in s.split(","))]).max())
    lk = fluoxr.lag_cumulants(lm).compute()
    for o in range(2, 6):
        np.testing.assert_allclose(lk.sel(order=o).values, kl[o], rtol=1e-8, atol=1e-8 * np.abs(kl[o]).max())


# ------------------------------------------------------------------------------ image steps


def test_noise_filter1d(movie, numpy2_aliases):
    from pysofi import filtering, masks

    rng = np.random.default_rng(2)
    stack = {f"im{i}": rng.random((H, W)) * 100 for i in range(9)}
    taps = masks.gauss1d_mask((1, 5), 1)
    class Data:  # noise_filter1d stores the result on one PysofiData object per image
        def add_filtered(self, image, filter_name=None):
            self.filtered = image

    with quiet():
        theirs = filtering.noise_filter1d({k: Data() for k in stack}, stack, taps, return_option=True,
                                          return_type="ndarray")  # np.int (patched)
    series = xr.DataArray(np.stack(list(stack.values())), dims=("time", "y", "x")).chunk({"time": 2})
    np.testing.assert_allclose(fluoxr.noise_filter(series, taps).values, theirs, rtol=1e-12, atol=1e-12)
    with quiet():
        default = filtering.noise_filter1d({k: Data() for k in stack}, stack, return_option=True,
                                           return_type="ndarray")
    np.testing.assert_allclose(fluoxr.noise_filter(series).values, default, rtol=1e-12, atol=1e-12)  # same default
    np.testing.assert_allclose(ks.filter1d_same(np.arange(30.0), np.arange(1.0, 8.0)),
                               filtering.filter1d_same(np.arange(30.0), np.arange(1.0, 8.0)), rtol=1e-12)


def test_deconvsk(movie, numpy2_aliases):
    from pysofi import deconvsk, masks

    img = fluoxr.cumulants(video_of(movie), [4]).sel(order=4).compute().values
    img = np.abs(img)
    psf = masks.gauss2d_mask((9, 9), 1.5)  # richardson_lucy on the image itself needs a PSF no larger than it
    theirs = deconvsk.deconvsk(psf, img, 1.5, 5)  # np.float, np.alltrue (patched)
    np.testing.assert_allclose(fluoxr.deconvsk(img, psf=psf, deconv_iter=5).values, theirs, rtol=1e-9,
                               atol=1e-12 * np.abs(theirs).max())
    P, J = deconvsk.richardson_lucy(img, psf, 3)
    ours_P, ours_J = ks.richardson_lucy(img, psf, 3)
    np.testing.assert_allclose(ours_P, P, rtol=1e-9, atol=1e-15)
    np.testing.assert_allclose(ours_J, J, rtol=1e-9, atol=1e-12 * np.abs(J).max())
    otf = deconvsk.psf2otf(psf, (40, 40))
    np.testing.assert_allclose(ks.psf2otf(psf, (40, 40)), otf, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(ks.otf2psf(otf, (9, 9)), deconvsk.otf2psf(otf, (9, 9)), rtol=1e-12, atol=1e-15)


def test_ldrc(movie):
    from pysofi import ldrc

    folder, name, frames = movie
    mean = frames.mean(0)
    k4 = fluoxr.cumulants(video_of(movie), [4]).sel(order=4).compute().values
    theirs = ldrc.ldrc(mean, k4, 1, [9, 9])
    assert not np.isnan(theirs).any()  # no flat window here (pysofi gives NaN there, fluoxr 0)
    np.testing.assert_allclose(fluoxr.ldrc(k4, mask=mean, window_size=(9, 9)).values, theirs, rtol=1e-9,
                               atol=1e-12 * np.abs(theirs).max())
    # a mask taken before Fourier interpolation by 2 is resized as pysofi resizes it
    k4_2 = fluoxr.fourier_interpolate(k4, 2).values
    theirs = ldrc.ldrc(mean, k4_2, 2, [9, 9])
    np.testing.assert_allclose(fluoxr.ldrc(k4_2, mask=mean, order=2, window_size=(9, 9)).values, theirs,
                               rtol=1e-9, atol=1e-12 * np.abs(theirs).max())


@pytest.mark.parametrize("factor", [2, 3])
def test_fourier_interpolation(movie, factor):
    from pysofi import finterp

    _, _, frames = movie
    img = frames[:10].mean(0)
    theirs = finterp.fourier_interp_array(img, [factor])[0]
    np.testing.assert_allclose(fluoxr.fourier_interpolate(img, factor).values, theirs, rtol=1e-9,
                               atol=1e-9 * np.abs(theirs).max())
    # interpolate_image with pysofi's own DFT matrices, frame by frame, against the lazy video path
    h, w = img.shape
    fx, fy = finterp.ft_matrix2d(2 * h, 2 * w)  # as fourier_interp_array builds them: the mirrored frame's spectrum
    ifx, ify = finterp.ift_matrix2d(2 * h, 2 * w, factor)
    lazy = fluoxr.fourier_interpolate(video_of(movie).isel(time=slice(0, 9)), factor).compute()
    for t in (0, 4, 8):
        theirs = finterp.interpolate_image(frames[t].astype(float), fx, fy, ifx, ify, factor)
        np.testing.assert_allclose(lazy.values[t], theirs, rtol=1e-9, atol=1e-9 * np.abs(theirs).max())


def test_moment_images_with_finterp(movie):
    from pysofi import reconstruction as rec

    folder, name, _ = movie
    with quiet():
        theirs = rec.moment_im_with_finterp(folder, name, 3, 2)
    ours = fluoxr.moments(fluoxr.fourier_interpolate(video_of(movie), 2), 3).sel(order=3).compute()
    # pysofi subtracts the interpolated mean image, not the mean of the interpolated frames (the modulus makes
    # them differ slightly; see fluoxr.fourier_interpolate): 5e-7 on this movie
    assert rel(ours, theirs) < 1e-5


# ------------------------------------------------------------------------------ defaults and argument order


def test_reconstruct_keeps_pysofis_defaults():
    from pysofi import filtering, masks, pysofi as ps

    ours = inspect.signature(fluoxr.reconstruct).parameters
    theirs = {name: inspect.signature(getattr(ps.PysofiData, name)).parameters
              for name in ("moment_image", "calc_moments_set", "deconvsk", "ldrc")}
    assert ours["order"].default == theirs["moment_image"]["order"].default == theirs["ldrc"]["order"].default
    assert ours["fbc"].default == theirs["calc_moments_set"]["fbc"].default
    assert ours["smooth_kernel"].default == theirs["calc_moments_set"]["smooth_kernel"].default
    assert ours["deconv_lambda"].default == theirs["deconvsk"]["deconv_lambda"].default
    assert ours["deconv_iter"].default == theirs["deconvsk"]["deconv_iter"].default
    assert list(ours["ldrc_window"].default) == list(theirs["ldrc"]["window_size"].default)
    assert theirs["moment_image"]["interp_num"].default == 1 and ours["finterp"].default == 1
    # the PSF and the noise filter that fluoxr uses when given none
    np.testing.assert_array_equal(theirs["deconvsk"]["est_psf"].default, ks.gauss2d_mask((51, 51), 2))
    assert inspect.signature(filtering.noise_filter1d).parameters["noise_filter"].default == []  # -> gauss1d (1, 21), 2
    np.testing.assert_allclose(masks.gauss1d_mask((1, 21), 2), ks.gauss1d_mask((1, 21), 2), rtol=1e-15)


def test_pysofi_ordered_calls_fail_with_a_message():
    from pysofi import ldrc

    img, mask = np.random.default_rng(0).random((2, 12, 12))
    # pysofi's positional order: mask (or PSF) first
    assert "mask_im" in list(inspect.signature(ldrc.ldrc).parameters)[0]
    with pytest.raises(TypeError, match=r"ldrc\(mask_im, input_im"):
        fluoxr.ldrc(mask, img)
    with pytest.raises(TypeError, match=r"deconvsk\(est_psf, input_im"):
        fluoxr.deconvsk(ks.gauss2d_mask((5, 5), 1), img)
    np.testing.assert_allclose(fluoxr.ldrc(img, mask=mask, window_size=(5, 5)).values,
                               ldrc.ldrc(mask, img, 1, [5, 5]), rtol=1e-9, atol=1e-12)
