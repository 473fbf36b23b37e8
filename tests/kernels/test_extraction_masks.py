"""Cell and neuropil masks: kernels against plain NumPy statements of suite2p's create_masks loop."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.ndimage import percentile_filter, rank_filter

from fluoxr import ROISet, cell_masks, neuropil_masks
from fluoxr.kernels.masks import (at_or_above_percentile, cell_pixels, neuropil_pixels, percentile_filter_at,
                                  percentile_rank)


def _discs(rng, n, shape, r=3.0, edge=True):
    """suite2p-like stats: discs with bell weights; some touch the border when ``edge``."""
    stat = []
    R = int(np.ceil(r))
    dy, dx = np.mgrid[-R : R + 1, -R : R + 1]
    keep = dy**2 + dx**2 <= r**2
    for i in range(n):
        lo = 0 if edge and i % 4 == 0 else R
        cy = int(rng.integers(lo, shape[0] - (0 if edge and i % 4 == 0 else R)))
        cx = int(rng.integers(lo, shape[1] - (0 if edge and i % 4 == 0 else R)))
        y, x = cy + dy[keep], cx + dx[keep]
        inside = (y >= 0) & (y < shape[0]) & (x >= 0) & (x < shape[1])
        lam = np.exp(-(dy[keep] ** 2 + dx[keep] ** 2) / (2 * (r / 2) ** 2))[inside] * rng.uniform(0.8, 1.2, inside.sum())
        stat.append(dict(ypix=y[inside], xpix=x[inside], lam=lam.astype(np.float32), radius=r))
    return stat


# -- references: suite2p's create_masks restated with plain NumPy, ROI by ROI ------------------


def _ref_cell_pix(stat, shape, lam_percentile):
    lammap = np.zeros(shape)
    for s in stat:
        lammap[s["ypix"], s["xpix"]] = np.maximum(lammap[s["ypix"], s["xpix"]], s["lam"])
    radius = np.median([s["radius"] for s in stat])
    if lam_percentile > 0:
        filt = percentile_filter(lammap, percentile=lam_percentile, size=int(radius * 5))
        return ~np.logical_or(lammap < filt, lammap == 0)
    return lammap > 0


def _ref_extend(y, x, shape, n):
    for _ in range(n):
        yy = np.concatenate([y, y, y, y - 1, y + 1])
        xx = np.concatenate([x, x + 1, x - 1, x, x])
        keep = (yy >= 0) & (yy < shape[0]) & (xx >= 0) & (xx < shape[1])
        y, x = np.unique(np.stack([yy[keep], xx[keep]]), axis=1)
    return y, x


def _ref_neuropil(stat, cell_pix, inner, min_pix, circular):
    shape = cell_pix.shape
    out = []
    for s in stat:
        ring_y, ring_x = _ref_extend(s["ypix"], s["xpix"], shape, inner)
        nring = np.sum(~cell_pix[ring_y, ring_x])
        y1, x1 = ring_y.copy(), ring_x.copy()
        steps = 0
        while steps < 100 and np.sum(~cell_pix[y1, x1]) - nring <= min_pix:
            steps += 1
            if circular:
                y1, x1 = _ref_extend(y1, x1, shape, 5)
            else:
                yy, xx = np.meshgrid(np.arange(max(0, y1.min() - 5), min(shape[0], y1.max() + 6)),
                                     np.arange(max(0, x1.min() - 5), min(shape[1], x1.max() + 6)), indexing="ij")
                y1, x1 = yy.ravel(), xx.ravel()
        mask = np.zeros(shape, bool)
        ok = ~cell_pix[y1, x1]
        mask[y1[ok], x1[ok]] = True
        mask[ring_y, ring_x] = False
        out.append(np.flatnonzero(mask))
    return out


def _flat(stat, shape):
    flat = np.concatenate([np.ravel_multi_index((s["ypix"], s["xpix"]), shape) for s in stat]).astype(np.int64)
    w = np.concatenate([s["lam"] for s in stat])
    ptr = np.concatenate([[0], np.cumsum([s["ypix"].size for s in stat])]).astype(np.int64)
    return flat, w, ptr


# -- kernels -------------------------------------------------------------------------------------


@settings(max_examples=40, deadline=None)
@given(ly=st.integers(1, 9), lx=st.integers(1, 9), size=st.integers(1, 7), pct=st.floats(0, 100),
       zeros=st.floats(0, 1), seed=st.integers(0, 2**16))
def test_percentile_filter_at_equals_scipy(ly, lx, size, pct, zeros, seed):
    rng = np.random.default_rng(seed)
    img = rng.integers(0, 4, (ly, lx)).astype(np.float64) * (rng.random((ly, lx)) > zeros)
    rank = percentile_rank(size * size, pct)
    rows, cols = np.nonzero(np.ones_like(img, bool))
    got = percentile_filter_at(img, size, rank, rows, cols)
    np.testing.assert_array_equal(got, rank_filter(img, rank, size=size)[rows, cols])
    np.testing.assert_array_equal(got, percentile_filter(img, pct, size=size)[rows, cols])
    # the counting form used for suite2p's cell pixels: value >= its window's percentile
    pos = img[rows, cols] > 0
    above = at_or_above_percentile(img, size, rank, rows[pos], cols[pos])
    np.testing.assert_array_equal(above, img[rows, cols][pos] >= got[pos])


@pytest.mark.parametrize("pct", [0.0, 25.0, 50.0])
def test_cell_pixels_match_suite2p_statement(rng, pct):
    shape = (40, 48)
    stat = _discs(rng, 12, shape)
    flat, w, _ = _flat(stat, shape)
    got = cell_pixels(flat, w, shape, np.median([s["radius"] for s in stat]), pct)
    np.testing.assert_array_equal(got, _ref_cell_pix(stat, shape, pct))


@pytest.mark.parametrize("circular", [False, True])
@pytest.mark.parametrize("inner,min_pix,shape", [(2, 60, (36, 44)), (0, 10, (36, 44)), (3, 400, (36, 44)),
                                                 (1, 5000, (14, 17))])
def test_neuropil_pixels_match_suite2p_statement(rng, circular, inner, min_pix, shape):
    # min_pix=5000 exceeds the frame: growth stops at the whole frame (or after 100 steps in suite2p)
    stat = _discs(rng, 10 if shape[0] > 20 else 3, shape, r=3.0 if shape[0] > 20 else 1.5)
    flat, w, ptr = _flat(stat, shape)
    cp = _ref_cell_pix(stat, shape, 50.0)
    optr, opix = neuropil_pixels(ptr, flat, ~cp.ravel(), shape[0], shape[1], inner, min_pix, circular)
    ref = _ref_neuropil(stat, cp, inner, min_pix, circular)
    for i, r in enumerate(ref):
        np.testing.assert_array_equal(np.sort(opix[optr[i] : optr[i + 1]]), r, err_msg=f"ROI {i}")


def test_neuropil_pixels_one_pixel_rois_and_tiny_frame():
    shape = (5, 4)
    valid = np.ones(20, bool)
    valid[[0, 7]] = False
    flat = np.array([0, 7, 19], np.int64)
    ptr = np.array([0, 1, 2, 3], np.int64)
    stat = [dict(ypix=np.array([p // 4]), xpix=np.array([p % 4])) for p in flat]
    for circular in (False, True):
        optr, opix = neuropil_pixels(ptr, flat, valid, 5, 4, 1, 3, circular)
        ref = _ref_neuropil(stat, ~valid.reshape(shape), 1, 3, circular)
        for i, r in enumerate(ref):
            np.testing.assert_array_equal(np.sort(opix[optr[i] : optr[i + 1]]), r)


# -- domain functions ----------------------------------------------------------------------------


def test_cell_masks_drop_overlaps_and_normalise(rng, caplog):
    stat = _discs(rng, 8, (30, 30), edge=False)
    # ROI 8 lies entirely inside ROI 0: every pixel overlaps
    stat.append(dict(ypix=stat[0]["ypix"][:3], xpix=stat[0]["xpix"][:3], lam=np.ones(3, np.float32), radius=3.0))
    rois = ROISet.from_suite2p(stat, (30, 30))
    cm = cell_masks(rois)
    for i, s in enumerate(stat[:8]):
        p = rois.pixels(i)
        keep = ~p["overlap"]
        q = cm.pixels(i)
        np.testing.assert_array_equal(q["y"], p["y"][keep])
        np.testing.assert_allclose(q["weight"], p["weight"][keep] / p["weight"][keep].sum(), rtol=1e-6)
    assert np.all(cm.pixels(8)["weight"] == 0) and "overlap other ROIs at every pixel" in caplog.text
    full = cell_masks(rois, allow_overlap=True)
    assert full.roi.size == rois.roi.size
    np.testing.assert_allclose(np.bincount(full.roi, weights=full.weight), 1, rtol=1e-6)


def test_neuropil_masks_use_radius_and_defaults(rng):
    shape = (50, 60)
    stat = _discs(rng, 10, shape)
    rois = ROISet.from_suite2p(stat, shape)
    nm = neuropil_masks(rois, min_neuropil_pixels=100)
    cp = _ref_cell_pix(stat, shape, 50.0)
    ref = _ref_neuropil(stat, cp, 2, 100, False)
    for i, r in enumerate(ref):
        np.testing.assert_array_equal(nm.flat_index[nm.indptr[i] : nm.indptr[i + 1]], r)
    assert len(nm) == len(rois) and np.all(nm.weight == 1)
    # label ROIs have no radius: the radius of a disc of equal area is used
    lab = ROISet.from_labels(rois.to_label_image())
    assert len(neuropil_masks(lab, min_neuropil_pixels=50)) == len(lab)


def test_neuropil_masks_empty_region_gets_zero_weight(caplog):
    labels = np.ones((6, 6), int)
    labels[:3] = 2
    nm = neuropil_masks(ROISet.from_labels(labels), min_neuropil_pixels=5, lam_percentile=0)
    assert len(nm) == 2 and np.all(nm.weight == 0) and "no neuropil pixel" in caplog.text


def test_neuropil_masks_bad_input(rng):
    rois = ROISet.from_suite2p(_discs(rng, 3, (20, 20)), (20, 20))
    with pytest.raises(ValueError, match="min_neuropil_pixels"):
        neuropil_masks(rois, min_neuropil_pixels=-1)
    with pytest.raises(ValueError, match="inner_neuropil_radius"):
        neuropil_masks(rois, inner_neuropil_radius=-2)
    with pytest.raises(ValueError, match="lam_percentile"):
        neuropil_masks(rois, lam_percentile=120)
    with pytest.raises(TypeError, match="circular"):
        neuropil_masks(rois, circular="yes")
    with pytest.raises(TypeError, match="rois must be a fluoxr.ROISet"):
        neuropil_masks([{"ypix": [1], "xpix": [1]}])
    vol = ROISet(roi=[0], y=[1], x=[1], z=[0], weight=[1.0], shape=(2, 4, 4))
    with pytest.raises(ValueError, match="planar"):
        neuropil_masks(vol)


@pytest.mark.peer
@pytest.mark.parametrize("circular", [False, True])
def test_masks_equal_suite2p(rng, circular):
    pytest.importorskip("torch")
    masks = pytest.importorskip("suite2p.extraction.masks")
    shape = (64, 72)
    stat = _discs(rng, 40, shape)
    rois = ROISet.from_suite2p(stat, shape)
    for s, o in zip(stat, rois.to_suite2p()):
        s["overlap"] = o["overlap"]
    cm, nm = masks.create_masks(stat, *shape, min_neuropil_pixels=120, circular_neuropil=circular)
    ours = neuropil_masks(rois, min_neuropil_pixels=120, circular=circular)
    mine = cell_masks(rois)
    for i in range(len(stat)):
        np.testing.assert_array_equal(ours.flat_index[ours.indptr[i] : ours.indptr[i + 1]], nm[i])
        if cm[i][0].size:
            np.testing.assert_array_equal(mine.flat_index[mine.indptr[i] : mine.indptr[i + 1]], cm[i][0])
            np.testing.assert_allclose(mine.pixels(i)["weight"], cm[i][1], rtol=1e-6)


@pytest.mark.peer
@pytest.mark.parametrize("allow_overlap", [False, True])
@pytest.mark.parametrize("circular", [False, True])
@pytest.mark.parametrize("min_pix", [1, 120, 400])
@pytest.mark.parametrize("inner", [0, 2, 5])
@pytest.mark.parametrize("lam_percentile", [0.0, 50.0, 90.0])
def test_create_masks_every_option_equals_suite2p(lam_percentile, inner, min_pix, circular, allow_overlap):
    pytest.importorskip("torch")
    masks = pytest.importorskip("suite2p.extraction.masks")
    rng = np.random.default_rng(11)
    shape = (48, 52)
    stat = _discs(rng, 20, shape)
    rois = ROISet.from_suite2p(stat, shape)
    for s, o in zip(stat, rois.to_suite2p()):
        s["overlap"] = o["overlap"]
    cm, nm = masks.create_masks(stat, *shape, lam_percentile=lam_percentile, allow_overlap=allow_overlap,
                                inner_neuropil_radius=inner, min_neuropil_pixels=min_pix, circular_neuropil=circular)
    ours = neuropil_masks(rois, lam_percentile=lam_percentile, inner_neuropil_radius=inner,
                          min_neuropil_pixels=min_pix, circular=circular)
    mine = cell_masks(rois, allow_overlap=allow_overlap)
    for i in range(len(stat)):
        np.testing.assert_array_equal(ours.flat_index[ours.indptr[i] : ours.indptr[i + 1]], nm[i])
        if cm[i][0].size:
            np.testing.assert_array_equal(mine.flat_index[mine.indptr[i] : mine.indptr[i + 1]], cm[i][0])
            np.testing.assert_allclose(mine.pixels(i)["weight"], cm[i][1], rtol=1e-6)
        else:
            assert mine.pixels(i)["weight"].sum() == 0
