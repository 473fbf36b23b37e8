"""ROI features: each against a plain per-ROI NumPy statement, roi_features against the composition of the
functions, laziness of the reference, ground truth on the synthetic red channel, bad input, cellector."""

import os
import subprocess
import sys
import warnings
from fractions import Fraction

import dask.array as da
import numpy as np
import pandas as pd
import pytest
import xarray as xr
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import binary_dilation, generate_binary_structure

import fluoxr
from fluoxr import ROISet
from fluoxr import features as F
from fluoxr.testing import raise_if_dask_computes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# --------------------------------------------------------------------------------------------
# tiny ROI sets and the plain statements the features must equal


def _tiny_rois(rng, shape=(20, 23)):
    """Border ROIs (all four edges), two overlapping ROIs, one-pixel ROIs, a ROI wider than the patch."""
    ly, lx = shape
    rois = [
        (np.array([0, 0, 1, 1, 2]), np.array([3, 4, 3, 4, 3])),  # top edge
        (np.array([10, 11, 12, 11]), np.array([0, 0, 0, 1])),  # left edge
        (np.array([ly - 1, ly - 1, ly - 2]), np.array([lx - 1, lx - 2, lx - 1])),  # bottom-right corner
        (np.array([8, 8, 9, 9, 10]), np.array([8, 9, 8, 9, 9])),  # overlaps the next one
        (np.array([9, 9, 10, 10]), np.array([9, 10, 9, 10])),
        (np.array([5]), np.array([15])),  # one pixel
        (np.array([ly - 1]), np.array([0])),  # one pixel in a corner
        (np.full(lx, 15), np.arange(lx)),  # a whole row: wider than a width-3 patch
    ]
    roi = np.concatenate([np.full(y.size, i) for i, (y, _) in enumerate(rois)])
    y = np.concatenate([r[0] for r in rois])
    x = np.concatenate([r[1] for r in rois])
    w = rng.uniform(0.2, 1.0, y.size).astype(np.float32)
    return ROISet(roi=roi, y=y, x=x, weight=w, shape=shape)


def _planes_rois(rng, lz=3, shape=(20, 23), volumetric=False):
    """The tiny ROIs on several planes: one plane each, or spread over planes (volumetric)."""
    r2 = _tiny_rois(rng, shape)
    if volumetric:
        z = rng.integers(0, lz, r2.roi.size)
    else:
        z = (r2.roi % lz)
    return ROISet(roi=r2.roi, y=r2.y, x=r2.x, z=z, weight=r2.weight, shape=(lz,) + shape)


def _lists(rois):
    out = []
    for i in range(len(rois)):
        p = rois.pixels(i)
        out.append((p["weight"], p.get("z"), p["y"], p["x"]))
    return out


def _ref_centroids(rois, method="weightedmean", asint=True):
    rows = []
    for lam, z, y, x in _lists(rois):
        coords = ([z] if z is not None else []) + [y, x]
        if method == "weightedmean" and asint:
            # exact rational arithmetic: the truncation of the true weighted mean
            fl = [Fraction(float(v)) for v in lam]
            c = [sum(f * int(v) for f, v in zip(fl, c_)) / sum(fl) for c_ in coords]
        elif method == "weightedmean":
            c = [np.sum(lam * c_) / np.sum(lam) for c_ in coords]
        else:
            c = [np.median(c_) for c_ in coords]
        rows.append([int(v) for v in c] if asint else c)
    return np.array(rows)


def _ref_centered_masks(rois, cents, width, fill=0.0, volumetric=False):
    p = 2 * width + 1
    lz = rois.shape[0] if volumetric else None
    out = np.full((len(rois),) + ((lz,) if volumetric else ()) + (p, p), fill, np.float32)
    for i, (lam, z, y, x) in enumerate(_lists(rois)):
        yc, xc = cents[i][-2:]
        for k in range(lam.size):
            dy, dx = y[k] - yc + width, x[k] - xc + width
            if 0 <= dy < p and 0 <= dx < p:
                if volumetric:
                    out[i, z[k], dy, dx] = lam[k]
                else:
                    out[i, dy, dx] = lam[k]
    return out


def _ref_centered_reference(ref, cents, width, fill=0.0, volumetric=False):
    ref3 = ref if ref.ndim == 3 else ref[None]
    padded = np.pad(ref3.astype(np.float32), ((0, 0), (width, width), (width, width)), constant_values=fill)
    out = []
    for c in cents:
        zc = c[0] if ref.ndim == 3 else 0
        yc, xc = c[-2:]
        sl = padded[:, yc : yc + 2 * width + 1, xc : xc + 2 * width + 1]
        out.append(sl if volumetric else sl[zc])
    return np.stack(out)


def _ref_surround(masks, iterations, volumetric):
    nd = 3 if volumetric else 2
    cross = generate_binary_structure(nd, 1)
    return np.stack([binary_dilation(m > 0, cross, iterations=iterations) for m in masks])


def _ref_features(rois, ref, width=15, iterations=7, volumetric=False, method="weightedmean", eps=1e6):
    """Every feature, one ROI at a time, with NumPy/SciPy and float64."""
    cents = _ref_centroids(rois, method)
    cm = _ref_centered_masks(rois, cents, width, volumetric=volumetric)
    cr = _ref_centered_reference(ref, cents, width, volumetric=volumetric)
    sur = _ref_surround(cm, iterations, volumetric)
    axes = (-3, -2, -1) if volumetric else (-2, -1)
    out = {k: [] for k in F.FEATURES}
    for i, (lam, z, y, x) in enumerate(_lists(rois)):
        m, r, s = cm[i].astype(np.float64), cr[i].astype(np.float64), sur[i]
        c = m > 0
        R = np.fft.fftn(m, axes=axes) * np.conj(np.fft.fftn(r, axes=axes))
        out["phase_corr"].append(np.mean(R / (eps + np.abs(R))).real)
        vals = ref[z, y, x] if ref.ndim == 3 else ref[y, x]
        out["dot_product"].append(vals.astype(np.float64) @ lam / np.linalg.norm(lam.astype(np.float64)))
        mm, rr = m[s], r[s]
        out["corr_coef"].append(np.mean((mm - mm.mean()) * (rr - rr.mean())) / mm.std() / rr.std())
        inside, around = r[c].sum(), r[s].sum()
        out["in_vs_out"].append(inside / (inside + around) if inside + around != 0 else 0.0)
    return pd.DataFrame({k: np.array(v) for k, v in out.items()})


def _assert_frame_close(df, exp, rtol=1e-5, atol=1e-9):
    assert list(df.columns) == list(F.FEATURES)
    for k in F.FEATURES:
        np.testing.assert_allclose(df[k].to_numpy(), exp[k].to_numpy(), rtol=rtol, atol=atol, err_msg=k)


# --------------------------------------------------------------------------------------------
# each function against its plain statement


@pytest.mark.parametrize("method", ["weightedmean", "median"])
@pytest.mark.parametrize("kind", ["2d", "planes", "volumetric"])
def test_centroids_truncate_like_int(rng, method, kind):
    rois = {"2d": _tiny_rois, "planes": _planes_rois,
            "volumetric": lambda r: _planes_rois(r, volumetric=True)}[kind](rng)
    got = F.centroids(rois, method=method)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, _ref_centroids(rois, method))
    np.testing.assert_allclose(F.centroids(rois, method=method, asint=False), _ref_centroids(rois, method, False))


def test_centroids_truncate_not_round():
    rois = ROISet(roi=[0, 0], y=[3, 4], x=[0, 0], weight=[0.05, 0.95], shape=(6, 2))
    assert F.centroids(rois, asint=False)[0, 0] == pytest.approx(3.95)
    assert F.centroids(rois)[0, 0] == 3


def test_centroid_of_a_roi_along_a_row_is_that_row(rng):
    # float sums of lam * 15 / sum(lam) may give 14.999999999999998; that is row 15, not 14
    for seed in range(20):
        w = np.random.default_rng(seed).uniform(0.2, 1.0, 23).astype(np.float32)
        rois = ROISet(roi=np.zeros(23, int), y=np.full(23, 15), x=np.arange(23), weight=w, shape=(20, 23))
        assert F.centroids(rois)[0, 0] == 15


@pytest.mark.parametrize("kind", ["2d", "planes", "volumetric"])
def test_centered_masks_and_reference(rng, kind):
    vol = kind == "volumetric"
    rois = _tiny_rois(rng) if kind == "2d" else _planes_rois(rng, volumetric=vol)
    ref = rng.random(rois.shape).astype(np.float32)
    cents = F.centroids(rois)
    for width, fill in [(3, 0.0), (1, -2.0), (15, 0.0)]:
        got = F.centered_masks(rois, width=width, fill_value=fill)
        np.testing.assert_array_equal(got, _ref_centered_masks(rois, cents, width, fill, vol))
        assert got.dtype == np.float32
        gref = F.centered_reference(ref, cents, width=width, fill_value=fill, volumetric=vol)
        np.testing.assert_array_equal(gref, _ref_centered_reference(ref, cents, width, fill, vol))
    # explicit centroids, e.g. the median ones
    med = F.centroids(rois, method="median")
    np.testing.assert_array_equal(F.centered_masks(rois, width=4, centroids=med),
                                  _ref_centered_masks(rois, med, 4, 0.0, vol))


def test_mask_volume_is_one_weight_image_per_roi(rng):
    for rois in (_tiny_rois(rng), _planes_rois(rng, volumetric=True)):
        mv = F.mask_volume(rois)
        assert mv.shape == (len(rois),) + rois.shape and mv.dtype == np.float32
        for i, (lam, z, y, x) in enumerate(_lists(rois)):
            exp = np.zeros(rois.shape, np.float32)
            exp[(z, y, x) if z is not None else (y, x)] = lam
            np.testing.assert_array_equal(mv[i], exp)


@pytest.mark.parametrize("volumetric", [False, True])
def test_center_surround_and_surround_filter(rng, volumetric):
    rois = _planes_rois(rng, volumetric=True) if volumetric else _tiny_rois(rng)
    cm = F.centered_masks(rois, width=5, volumetric=volumetric or None)
    cr = rng.random(cm.shape).astype(np.float32)
    for it in (1, 2, 7):
        center, surround = F.center_surround(cm, iterations=it)
        np.testing.assert_array_equal(center, cm > 0)
        np.testing.assert_array_equal(surround, _ref_surround(cm, it, volumetric))
        assert np.all(surround[center])  # the surround includes the centre
        ms, rs = F.surround_filter(cm, cr, iterations=it)
        np.testing.assert_array_equal(np.isnan(ms), ~surround)
        np.testing.assert_array_equal(rs[surround], cr[surround])
        assert ms.dtype == np.float32


@pytest.mark.parametrize("volumetric", [False, True])
def test_stack_measures_against_numpy(rng, volumetric):
    rois = _planes_rois(rng, volumetric=True) if volumetric else _tiny_rois(rng)
    ref = rng.random(rois.shape).astype(np.float32) * 100
    cents = F.centroids(rois)
    cm = F.centered_masks(rois, width=4, volumetric=volumetric or None)
    cr = F.centered_reference(ref, cents, width=4, volumetric=volumetric)
    axes = (-3, -2, -1) if volumetric else (-2, -1)
    for eps in (1e6, 1e-8):
        R = np.fft.fftn(cm.astype(np.float64), axes=axes) * np.conj(np.fft.fftn(cr.astype(np.float64), axes=axes))
        exp = (R / (eps + np.abs(R))).mean(axes).real
        np.testing.assert_allclose(F.phase_correlation_zero(cm, cr, eps=eps, precision="double"), exp,
                                   rtol=1e-9, atol=1e-15)
        # single-precision FFTs of the mean-free patches: within 1e-6 of the largest value
        np.testing.assert_allclose(F.phase_correlation_zero(cm, cr, eps=eps), exp, rtol=0,
                                   atol=1e-6 * np.abs(exp).max())
        np.testing.assert_allclose(F.cross_power_spectrum(cm, cr, eps=eps, volumetric=volumetric),
                                   R / (eps + np.abs(R)), rtol=1e-9, atol=1e-15)
    sur = _ref_surround(cm, 3, volumetric)
    inside = (cr * (cm > 0)).sum(axes, dtype=np.float64)
    around = (cr * sur).sum(axes, dtype=np.float64)
    np.testing.assert_allclose(F.in_vs_out(cm, cr, iterations=3), inside / (inside + around), rtol=1e-10)
    ms, rs = F.surround_filter(cm, cr, iterations=3)
    exp = []
    for m, r, s in zip(cm.astype(np.float64), cr.astype(np.float64), sur):
        mm, rr = m[s], r[s]
        exp.append(np.mean((mm - mm.mean()) * (rr - rr.mean())) / mm.std() / rr.std())
    np.testing.assert_allclose(F.compute_correlation(ms, rs), exp, rtol=1e-9)
    np.testing.assert_allclose(F.dot_product(rois, ref),
                               [(ref[(z, y, x) if z is not None else (y, x)].astype(np.float64) @ lam)
                                / np.linalg.norm(lam.astype(np.float64)) for lam, z, y, x in _lists(rois)], rtol=1e-10)


def test_in_vs_out_is_at_most_one_half_and_zero_on_a_zero_reference(rng):
    rois = _tiny_rois(rng)
    cm = F.centered_masks(rois, width=3)
    cr = F.centered_reference(rng.random(rois.shape), F.centroids(rois), width=3)
    assert np.all(F.in_vs_out(cm, cr) <= 0.5)
    np.testing.assert_array_equal(F.in_vs_out(cm, np.zeros_like(cr)), 0.0)


def test_phase_correlation_finds_a_shift(rng):
    a = rng.random((2, 16, 16))
    pc = F.phase_correlation(np.roll(a, (3, -2), axis=(1, 2)), a)
    assert pc.shape == a.shape
    for p in pc:
        assert np.unravel_index(np.argmax(p), p.shape) == (3, 14)


def test_eps_default_is_cellectors_1e6_not_the_documented_1e8(rng):
    rois = _tiny_rois(rng)
    cm = F.centered_masks(rois, width=4)
    cr = F.centered_reference(rng.random(rois.shape) + 1, F.centroids(rois), width=4)
    np.testing.assert_array_equal(F.phase_correlation_zero(cm, cr), F.phase_correlation_zero(cm, cr, eps=1e6))
    # with eps=1e6 the value scales with the reference; with eps -> 0 it does not (true phase correlation)
    big = F.phase_correlation_zero(cm, 10 * cr)
    assert np.all(np.abs(big / F.phase_correlation_zero(cm, cr) - 1) > 0.5)
    np.testing.assert_allclose(F.phase_correlation_zero(cm, 10 * cr, eps=1e-12),
                               F.phase_correlation_zero(cm, cr, eps=1e-12), rtol=1e-4, atol=1e-6)


def test_bandpass_filter_removes_the_mean_and_keeps_shape(rng):
    img = rng.random((32, 40)) + 5.0
    out = F.bandpass_filter(img, lowcut=2.0, highcut=12.0, order=3)
    assert out.shape == img.shape
    assert abs(out.mean()) < 0.2 * abs(img.mean())
    noise = img - 5.5
    low = F.bandpass_filter(noise, highcut=3.0)  # a low-pass removes the pixel-to-pixel noise
    assert np.std(np.diff(low, axis=1)) < 0.2 * np.std(np.diff(noise, axis=1))


# --------------------------------------------------------------------------------------------
# roi_features


@pytest.mark.parametrize("kind", ["2d", "planes", "volumetric"])
def test_roi_features_against_per_roi_numpy(rng, kind):
    vol = kind == "volumetric"
    rois = _tiny_rois(rng) if kind == "2d" else _planes_rois(rng, volumetric=vol)
    ref = (rng.random(rois.shape) * 50 + 10).astype(np.float32)
    for width, it in [(3, 2), (15, 7)]:
        df = F.roi_features(rois, ref, width=width, iterations=it).compute()
        assert df.attrs["volumetric"] is vol and df.index.name == "roi" and len(df) == len(rois)
        _assert_frame_close(df, _ref_features(rois, ref, width, it, vol))


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**16), n=st.integers(1, 6), width=st.integers(1, 6), iterations=st.integers(1, 5),
       lz=st.integers(1, 3), volumetric=st.booleans())
def test_roi_features_on_random_roi_sets(seed, n, width, iterations, lz, volumetric):
    rng = np.random.default_rng(seed)
    shape = (lz, int(rng.integers(3, 14)), int(rng.integers(3, 14)))
    roi, y, x, z = [], [], [], []
    for i in range(n):
        k = int(rng.integers(1, 12))
        cy, cx = rng.integers(0, shape[1]), rng.integers(0, shape[2])
        yy = np.clip(cy + rng.integers(-2, 3, k), 0, shape[1] - 1)
        xx = np.clip(cx + rng.integers(-2, 3, k), 0, shape[2] - 1)
        flat = np.unique(yy * shape[2] + xx)  # no pixel twice in one ROI
        roi.append(np.full(flat.size, i))
        y.append(flat // shape[2])
        x.append(flat % shape[2])
        z.append(rng.integers(0, lz, flat.size) if volumetric else np.full(flat.size, rng.integers(0, lz)))
    roi, y, x, z = map(np.concatenate, (roi, y, x, z))
    rois = ROISet(roi=roi, y=y, x=x, z=z, weight=rng.uniform(0.1, 1, roi.size), shape=shape)
    ref = rng.random(shape) * 10 + 1
    vol = volumetric and lz > 1 and bool(np.any([np.ptp(z[roi == i]) for i in range(n)]))
    df = F.roi_features(rois, ref, width=width, iterations=iterations, volumetric=vol).compute()
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an empty surround: mean of nothing
        exp = _ref_features(rois, ref, width, iterations, vol)
    for k in F.FEATURES:
        np.testing.assert_allclose(df[k].to_numpy(), exp[k].to_numpy(), rtol=1e-5, atol=1e-9, equal_nan=True,
                                   err_msg=k)


@pytest.mark.parametrize("kind", ["2d", "volumetric"])
@pytest.mark.parametrize("bandpass", [True, False])
@pytest.mark.parametrize("fill,nan_pixel", [(0.0, False), (np.nan, False), (0.3, False), (0.0, True)])
@pytest.mark.parametrize("precision", ["single", "double"])
def test_roi_features_equals_the_composed_functions_and_ignores_batching(rng, kind, bandpass, fill, nan_pixel,
                                                                         precision):
    rois = _tiny_rois(rng) if kind == "2d" else _planes_rois(rng, volumetric=True)
    ref = rng.random(rois.shape) * 3
    if nan_pixel:
        ref[..., 9, 9] = np.nan  # inside ROIs 3 and 4, near others
    band = dict(lowcut=1.0, highcut=8.0, order=2.0) if bandpass else {}
    kw = dict(width=5, iterations=2, centroid_method="median", fill_value=fill, eps=1.0, window="hanning",
              precision=precision, **band)
    with np.errstate(all="ignore"):
        df = F.roi_features(rois, ref, **kw).compute()
        vol = kind == "volumetric"
        cents = F.centroids(rois, method="median")
        cm = F.centered_masks(rois, width=5, centroids=cents, volumetric=vol, fill_value=fill)
        cr = F.centered_reference(ref, cents, width=5, volumetric=vol, fill_value=fill)
        filt = F.bandpass_filter(ref, **band) if bandpass else ref
        fcr = F.centered_reference(filt, cents, width=5, volumetric=vol, fill_value=fill)
        win = np.outer(np.hanning(11), np.hanning(11))
        exp = pd.DataFrame({
            "phase_corr": F.phase_correlation_zero(cm * win, cr * win, eps=1.0, precision=precision),
            "dot_product": F.dot_product(rois, filt),
            "corr_coef": F.compute_correlation(*F.surround_filter(cm, fcr, iterations=2)),
            "in_vs_out": F.in_vs_out(cm, cr, iterations=2),
        })
    for k in F.FEATURES:
        np.testing.assert_allclose(df[k].to_numpy(), exp[k].to_numpy(), rtol=1e-12, atol=0, equal_nan=True,
                                   err_msg=k)
    if fill == 0.0 and not nan_pixel:
        assert np.isfinite(df.to_numpy()).all()
    for batch_size in (1, 3):
        with np.errstate(all="ignore"):
            pd.testing.assert_frame_equal(F.roi_features(rois, ref, batch_size=batch_size, **kw).compute(), df)


def test_roi_features_does_not_modify_its_inputs(rng):
    rois = _tiny_rois(rng)
    ref = rng.random(rois.shape)
    before = (ref.copy(), rois.y.copy(), rois.weight.copy())
    F.roi_features(rois, ref, width=3, lowcut=1, highcut=5).compute()
    np.testing.assert_array_equal(ref, before[0])
    np.testing.assert_array_equal(rois.y, before[1])
    np.testing.assert_array_equal(rois.weight, before[2])


def test_lazy_reference_is_computed_once_and_gives_the_eager_answer():
    video, truth = fluoxr.datasets.calcium_neurons(n_frames=40, shape=(48, 48), n_cells=6, red_fraction=0.5,
                                                   seed=3, chunks=7)
    rois = ROISet.from_suite2p(truth.stat, (48, 48))
    lazy = video.sel(channel=1).mean("time")
    with raise_if_dask_computes(max_computes=1) as counter:
        df = F.roi_features(rois, lazy, width=6).compute()
    assert counter.total_computes == 1
    eager = F.roi_features(rois, lazy.values, width=6).compute()
    pd.testing.assert_frame_equal(df, eager)
    # a plain dask array too, and the accessor (mean of the channel in float64)
    with raise_if_dask_computes(max_computes=1):
        pd.testing.assert_frame_equal(F.roi_features(rois, lazy.data, width=6).compute(), eager)
    with raise_if_dask_computes(max_computes=1):
        acc = video.fluo.roi_features(rois, channel=1, width=6).compute()
    _assert_frame_close(acc, eager, rtol=1e-5)
    with raise_if_dask_computes():  # building the reference computes nothing
        ref = F.reference_image(video, channel=1)
    assert ref.dims == ("y", "x") and ref.dtype == np.float64


def test_reference_image_of_a_volume_without_channel():
    data = np.random.default_rng(0).random((6, 3, 10, 12)).astype(np.float32)
    video = fluoxr.as_video(data, dims=("time", "z", "y", "x"))
    ref = F.reference_image(video)
    assert ref.dims == ("z", "y", "x")
    np.testing.assert_allclose(ref.values, data.mean(0, dtype=np.float64))


def test_ground_truth_the_bright_subset_is_separated():
    video, truth = fluoxr.datasets.calcium_neurons(n_frames=60, shape=(96, 96), n_cells=30, red_fraction=0.3,
                                                   seed=5)
    rois = ROISet.from_suite2p(truth.stat, (96, 96))
    df = video.fluo.roi_features(rois, channel=1).compute()
    aucs = {k: F.roc_auc(df[k], truth.red) for k in F.FEATURES}
    assert 0 < truth.red.sum() < len(truth.red)
    assert max(aucs.values()) >= 0.9, aucs
    assert aucs["dot_product"] >= 0.9 and aucs["in_vs_out"] >= 0.9, aucs


# --------------------------------------------------------------------------------------------
# bad input


def test_bad_input_names_the_argument(rng):
    rois = _tiny_rois(rng)
    ref = rng.random(rois.shape)
    with pytest.raises(ValueError, match=r"reference has shape \(20, 22\).*\(20, 23\)"):
        F.roi_features(rois, ref[:, :-1])
    with pytest.raises(ValueError, match="reference has shape"):
        F.roi_features(rois, da.from_array(ref[None]))  # checked before any compute
    with pytest.raises(ValueError, match="reduce the video"):
        F.roi_features(rois, xr.DataArray(np.zeros((3,) + rois.shape), dims=("time", "y", "x")))
    with pytest.raises(ValueError, match="reference has shape"):
        F.dot_product(rois, ref.T)
    for width in (0, -3):
        with pytest.raises(ValueError, match="width must be >= 1"):
            F.roi_features(rois, ref, width=width)
        with pytest.raises(ValueError, match="width"):
            F.centered_masks(rois, width=width)
        with pytest.raises(ValueError, match="width"):
            F.centered_reference(ref, F.centroids(rois), width=width)
    with pytest.raises(ValueError, match="method must be one of"):
        F.centroids(rois, method="mean")
    with pytest.raises(ValueError, match="centroid_method must be one of"):
        F.roi_features(rois, ref, centroid_method="centre")
    with pytest.raises(ValueError, match="iterations must be >= 1"):
        F.roi_features(rois, ref, iterations=0)
    with pytest.raises(ValueError, match="window must be one of"):
        F.roi_features(rois, ref, window="gauss")
    with pytest.raises(ValueError, match="lowcut must be <= highcut"):
        F.roi_features(rois, ref, lowcut=10, highcut=2)
    with pytest.raises(TypeError, match="rois must be a fluoxr.ROISet.*from_suite2p"):
        F.roi_features([dict(ypix=[1], xpix=[1])], ref)
    with pytest.raises(ValueError, match="volumetric=True needs volumetric ROIs"):
        F.roi_features(rois, ref, volumetric=True)
    with pytest.raises(ValueError, match="centroids must be an"):
        F.centered_masks(rois, centroids=np.zeros((2, 2), int))
    with pytest.raises(ValueError, match="integer pixel positions"):
        F.centered_reference(ref, np.full((2, 2), 1.5))
    with pytest.raises(ValueError, match="references must have the same patch shape"):
        F.in_vs_out(np.zeros((2, 5, 5)), np.zeros((2, 5, 4)))


def test_an_roi_without_pixels_is_refused():
    with pytest.raises(ValueError, match=r"rois: ROI\(s\) \[1\] have no pixels"):
        ROISet(roi=[0, 2], y=[1, 2], x=[1, 2], weight=[1.0, 1.0], shape=(4, 4))
    with pytest.raises(ValueError, match="empty ROI"):
        ROISet.from_suite2p([dict(ypix=[1], xpix=[1]), dict(ypix=[], xpix=[])], (4, 4))


def test_volumetric_flag_checks(rng):
    spread = _planes_rois(rng, volumetric=True)
    ref = rng.random(spread.shape)
    with pytest.raises(ValueError, match="volumetric=False.*span several planes"):
        F.roi_features(spread, ref, volumetric=False)
    planes = _planes_rois(rng)
    assert F.roi_features(planes, ref, width=3).attrs["volumetric"] is False
    assert F.roi_features(planes, ref, width=3, volumetric=True).attrs["volumetric"] is True
    video = fluoxr.as_video(np.zeros((3, 2, 5, 5)), dims=("time", "channel", "y", "x"))
    with pytest.raises(ValueError, match="channel is required"):
        F.reference_image(video)
    with pytest.raises(ValueError, match="channel must be one of"):
        F.reference_image(video, channel=7)
    with pytest.raises(ValueError, match="no 'channel' dim"):
        F.reference_image(video.isel(channel=0), channel=1)


def test_roc_auc_checks_labels():
    assert F.roc_auc([1, 2, np.nan, 3], [0, 1, 1, 1]) == 1.0
    with pytest.raises(ValueError, match="both classes"):
        F.roc_auc([1, 2], [True, True])


# --------------------------------------------------------------------------------------------
# against cellector itself (skipped when it is not installed)


def _cellector_inputs(rois):
    lam, zpix, ypix, xpix = zip(*_lists(rois))
    return list(lam), list(zpix), list(ypix), list(xpix)


@pytest.mark.peer
@pytest.mark.parametrize("kind", ["2d", "planes", "volumetric"])
def test_against_cellector(rng, tmp_path, kind):
    pytest.importorskip("cellector")
    from cellector import utils as cu
    from cellector.roi_processor import RoiProcessor

    vol = kind == "volumetric"
    rois = _tiny_rois(rng, (40, 44)) if kind == "2d" else _planes_rois(rng, 3, (40, 44), volumetric=vol)
    ref = (rng.random(rois.shape) * 100).astype(np.float32)
    lam, zpix, ypix, xpix = _cellector_inputs(rois)
    ref3 = ref if rois.ndim == 3 else ref[None]
    if not vol:
        zpix = np.array([0 if z is None else int(z[0]) for z in zpix])
    zc, yc, xc = cu.get_roi_centroids(lam, zpix, ypix, xpix)
    ours = F.centroids(rois)
    fl = F.centroids(rois, asint=False)[:, -2:]
    integral = np.abs(fl - np.round(fl)) < 1e-9  # there cellector may truncate rounding noise to the integer below
    np.testing.assert_array_equal(ours[:, -2:][~integral], np.c_[yc, xc][~integral])
    assert np.all(np.abs(ours[:, -2:] - np.c_[yc, xc]) <= 1)
    ours[:, -2:] = np.c_[yc, xc]
    cent = dict(zc=zc, yc=yc, xc=xc)
    flat = cu.flatten_roi_data(lam, ypix, xpix, zpix if vol else None)
    cm = cu.get_centered_masks(flat, cent, width=6, num_planes=ref3.shape[0], volumetric=vol)
    cr = cu.get_centered_reference(ref3, cent, width=6, volumetric=vol)
    np.testing.assert_array_equal(
        F.centered_masks(rois, width=6, centroids=ours, volumetric=vol if rois.ndim == 3 else None), cm)
    np.testing.assert_array_equal(F.centered_reference(ref, ours, width=6, volumetric=vol), cr)
    np.testing.assert_array_equal(F.center_surround(cm, iterations=3)[1], cu.center_surround(cm, 3, vol)[1])
    np.testing.assert_allclose(F.in_vs_out(cm, cr, iterations=3), cu.in_vs_out(cm, cr, 3, vol), rtol=1e-5)
    np.testing.assert_allclose(F.phase_correlation_zero(cm, cr), cu.phase_correlation_zero(cm, cr, volumetric=vol),
                               rtol=1e-4)
    ms, rs = cu.surround_filter(cm, cr, 3, vol)
    np.testing.assert_allclose(F.compute_correlation(ms, rs), cu.compute_correlation(ms, rs, vol), rtol=1e-4,
                               atol=1e-6)
    np.testing.assert_allclose(F.dot_product(rois, ref), cu.dot_product(lam, ypix, xpix, zpix, ref3, vol), rtol=1e-5)
    # the whole RoiProcessor pipeline with its default parameters
    rp = RoiProcessor(str(tmp_path), zpix, ypix, xpix, lam, ref3, volumetric=vol, autocompute=False,
                      save_features=False)
    exp = pd.DataFrame({k: rp.feature_pipeline_methods[k](rp) for k in F.FEATURES})
    df = F.roi_features(rois, ref, volumetric=vol if rois.ndim == 3 else None, **F.CELLECTOR_DEFAULTS).compute()
    _assert_frame_close(df, exp, rtol=1e-4, atol=1e-6)


@pytest.mark.peer
@pytest.mark.parametrize("fill", [np.nan, 0.5])
def test_fill_value_semantics_match_cellector(rng, fill):
    pytest.importorskip("cellector")
    from cellector import utils as cu

    rois = _tiny_rois(rng, (30, 33))
    ref = rng.random(rois.shape).astype(np.float32)
    lam, _, ypix, xpix = _cellector_inputs(rois)
    zpix = np.zeros(len(lam), int)
    cents = F.centroids(rois, method="median")  # integral by construction: same in both
    cent = dict(zc=zpix, yc=cents[:, 0], xc=cents[:, 1])
    cm = cu.get_centered_masks(cu.flatten_roi_data(lam, ypix, xpix), cent, width=5, fill_value=fill)
    cr = cu.get_centered_reference(ref[None], cent, width=5, fill_value=fill)
    ms, rs = cu.surround_filter(cm, cr, 2)
    with np.errstate(all="ignore"):
        exp = pd.DataFrame({"phase_corr": cu.phase_correlation_zero(cm, cr),
                            "dot_product": cu.dot_product(lam, ypix, xpix, zpix, ref[None]),
                            "corr_coef": cu.compute_correlation(ms, rs), "in_vs_out": cu.in_vs_out(cm, cr, 2)})
    df = F.roi_features(rois, ref, width=5, iterations=2, centroid_method="median", fill_value=fill).compute()
    for k in F.FEATURES:
        np.testing.assert_allclose(df[k].to_numpy(), exp[k].to_numpy(), rtol=1e-4, atol=1e-7, equal_nan=True,
                                   err_msg=k)


@pytest.mark.peer
@pytest.mark.parametrize("eps", [1e6, 1e-8, 0.5])
@pytest.mark.parametrize("layout", ["2d", "stack", "broadcast", "volumetric"])
def test_cross_power_spectrum_and_phase_correlation_match_cellector(rng, eps, layout):
    # no NumPy 2 patch needed: cellector's FFT helpers run unchanged
    pytest.importorskip("cellector")
    from cellector import utils as cu

    shapes = {"2d": ((12, 15), (12, 15)), "stack": ((4, 12, 15), (4, 12, 15)),
              "broadcast": ((4, 12, 15), (1, 12, 15)), "volumetric": ((3, 5, 12, 15), (3, 5, 12, 15))}[layout]
    a = rng.random(shapes[0]) * 50
    b = np.roll(a, (2, -3), axis=(-2, -1))[: shapes[1][0]] + rng.random(shapes[1])
    vol = layout == "volumetric"
    np.testing.assert_allclose(F.cross_power_spectrum(a, b, eps=eps, volumetric=vol),
                               cu.cross_power_spectrum(a, b, eps=eps, volumetric=vol), rtol=1e-12, atol=1e-15)
    # cellector's default eps of cross_power_spectrum (1e6, not its documented 1e-8) is fluoxr's too
    np.testing.assert_allclose(F.cross_power_spectrum(a, b, volumetric=vol),
                               cu.cross_power_spectrum(a, b, volumetric=vol), rtol=1e-12, atol=1e-15)
    if not vol:  # cellector's phase_correlation is 2-D only (no volumetric argument)
        np.testing.assert_allclose(F.phase_correlation(a, b, eps=eps), cu.phase_correlation(a, b, eps=eps),
                                   rtol=1e-10, atol=1e-13)
        np.testing.assert_allclose(F.phase_correlation(a, b), cu.phase_correlation(a, b), rtol=1e-10, atol=1e-13)


@pytest.mark.peer
@pytest.mark.parametrize("kind", ["2d", "planes", "volumetric"])
def test_mask_volume_matches_cellector(rng, kind):
    # no NumPy 2 patch needed: cellector's numba kernel runs unchanged
    pytest.importorskip("cellector")
    from cellector import utils as cu

    rois = _tiny_rois(rng, (21, 26)) if kind == "2d" else _planes_rois(rng, 3, (21, 26), volumetric=kind == "volumetric")
    lam, zpix, ypix, xpix = _cellector_inputs(rois)
    flat = cu.flatten_roi_data(lam, ypix, xpix)
    ours = F.mask_volume(rois)
    if kind == "2d":
        exp = cu.get_mask_volume(flat, len(lam), rois.shape)
        assert ours.dtype == exp.dtype == np.float32
        np.testing.assert_array_equal(ours, exp)
        return
    # cellector builds one frame per ROI ignoring the plane (and raises for volumetric=True): per plane, the
    # frame of a ROI is cellector's where the ROI has pixels in that plane
    with pytest.raises(NotImplementedError):
        cu.get_mask_volume(flat, len(lam), rois.shape[1:], volumetric=True)
    for plane in range(rois.shape[0]):
        sel = [np.asarray(z) == plane for z in zpix]
        flat_k = cu.flatten_roi_data([w[s] for w, s in zip(lam, sel)], [y[s] for y, s in zip(ypix, sel)],
                                     [x[s] for x, s in zip(xpix, sel)])
        np.testing.assert_array_equal(ours[:, plane], cu.get_mask_volume(flat_k, len(lam), rois.shape[1:]))


@pytest.mark.peer
@pytest.mark.parametrize("iterations", [1, 3, 7])
@pytest.mark.parametrize("kind", ["2d", "planes", "volumetric"])
def test_surround_filter_matches_cellector(rng, kind, iterations):
    # no NumPy 2 patch needed: cellector's binary_dilation and np.where run unchanged
    pytest.importorskip("cellector")
    from cellector import utils as cu

    vol = kind == "volumetric"
    rois = _tiny_rois(rng, (30, 33)) if kind == "2d" else _planes_rois(rng, 3, (30, 33), volumetric=vol)
    ref = (rng.random(rois.shape) * 100).astype(np.float32)
    cents = F.centroids(rois)
    cm = F.centered_masks(rois, width=6, centroids=cents, volumetric=vol if rois.ndim == 3 else None)
    cr = F.centered_reference(ref, cents, width=6, volumetric=vol)
    ms, rs = F.surround_filter(cm, cr, iterations=iterations, volumetric=vol if rois.ndim == 3 else None)
    ems, ers = cu.surround_filter(cm, cr, iterations, vol)
    assert ms.dtype == ems.dtype and rs.dtype == ers.dtype
    np.testing.assert_array_equal(ms, ems)
    np.testing.assert_array_equal(rs, ers)


# --------------------------------------------------------------------------------------------
# the benchmark must keep running


@pytest.mark.slow
def test_benchmark_quick_runs():
    res = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "roi_features.py"), "--quick"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "fluoxr" in res.stdout and "ROIs/s" in res.stdout


def test_cellector_defaults_cannot_be_changed_by_a_caller():
    from fluoxr import features as F

    with pytest.raises(TypeError):
        F.CELLECTOR_DEFAULTS["width"] = 3
    assert F.CELLECTOR_DEFAULTS["width"] == 40
