"""ROISet: constructors against plain NumPy statements, selection, conversions, bad input."""

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fluoxr import ROISet
from fluoxr.rois import as_roiset, check_frame_shape


def _stat(rng, n=6, shape=(20, 24)):
    stat = []
    for _ in range(n):
        cy, cx = rng.integers(2, shape[0] - 2), rng.integers(2, shape[1] - 2)
        yy, xx = np.mgrid[cy - 2 : cy + 3, cx - 2 : cx + 3]
        keep = (yy - cy) ** 2 + (xx - cx) ** 2 <= 4
        stat.append(dict(ypix=yy[keep], xpix=xx[keep], lam=rng.random(keep.sum()).astype(np.float32) + 0.1,
                         radius=2.0, med=[cy, cx]))
    return stat


def test_from_suite2p_flat_arrays_and_overlap(rng):
    stat = _stat(rng)
    rois = ROISet.from_suite2p(stat, (20, 24))
    assert len(rois) == 6 and rois.roi.size == sum(s["ypix"].size for s in stat)
    for i, s in enumerate(stat):
        p = rois.pixels(i)
        np.testing.assert_array_equal(p["y"], s["ypix"])
        np.testing.assert_array_equal(p["x"], s["xpix"])
        np.testing.assert_allclose(p["weight"], s["lam"])
    count = np.zeros((20, 24), int)
    for s in stat:
        count[s["ypix"], s["xpix"]] += 1
    np.testing.assert_array_equal(rois.overlap, count[rois.y, rois.x] > 1)
    assert rois.meta["radius"].tolist() == [2.0] * 6
    # a given overlap flag is kept as is
    for s in stat:
        s["overlap"] = np.zeros(s["ypix"].size, bool)
    assert not ROISet.from_suite2p(stat, (20, 24)).overlap.any()


def test_to_sparse_and_masks_match_dense(rng):
    stat = _stat(rng, n=4, shape=(10, 12))
    rois = ROISet.from_suite2p(stat, (10, 12))
    dense = np.zeros((4, 10, 12))
    for i, s in enumerate(stat):
        dense[i, s["ypix"], s["xpix"]] += s["lam"]
    np.testing.assert_allclose(rois.to_sparse().toarray(), dense.reshape(4, -1), rtol=1e-6)
    norm = rois.to_sparse(normalize=True).toarray()
    np.testing.assert_allclose(norm.sum(1), 1, rtol=1e-6)
    np.testing.assert_array_equal(rois.to_masks(), dense > 0)
    lab = rois.to_label_image()
    assert lab.max() == 4 and set(np.unique(lab)) <= {0, 1, 2, 3, 4}


def test_from_labels_and_masks_roundtrip():
    labels = np.array([[0, 3, 3, 0], [7, 7, 0, 0], [0, 0, 0, 3]])
    rois = ROISet.from_labels(labels)
    assert len(rois) == 2 and rois.meta["label"].tolist() == [3, 7]
    np.testing.assert_array_equal(rois.to_label_image() > 0, labels > 0)
    assert rois.npix.tolist() == [3, 2]
    again = ROISet.from_masks(rois.to_masks())
    np.testing.assert_array_equal(again.to_masks(), rois.to_masks())
    weighted = ROISet.from_masks(np.stack([labels == 3, (labels == 7) * 0.5]))
    assert weighted.weight.tolist() == [1, 1, 1, 0.5, 0.5]


def test_volumetric_labels_and_stat():
    lab = np.zeros((2, 4, 5), int)
    lab[0, 1, 1:3] = 1
    lab[1, 2:4, 4] = 2
    rois = ROISet.from_labels(lab)
    assert rois.ndim == 3 and rois.z.tolist() == [0, 0, 1, 1]
    np.testing.assert_array_equal(rois.to_label_image(), lab)
    np.testing.assert_allclose(rois.centroids(), [[0, 1, 1.5], [1, 2.5, 4]])
    stat = rois.to_suite2p()
    assert "zpix" in stat[0]
    back = ROISet.from_suite2p(stat, (2, 4, 5))
    np.testing.assert_array_equal(back.to_label_image(), lab)


def test_centroids_weighted_and_median():
    stat = [dict(ypix=np.array([0, 0, 4]), xpix=np.array([0, 2, 2]), lam=np.array([1.0, 1.0, 2.0]))]
    rois = ROISet.from_suite2p(stat, (5, 5))
    np.testing.assert_allclose(rois.centroids(), [[2.0, 1.5]])
    np.testing.assert_allclose(rois.centroids(method="median"), [[0.0, 2.0]])
    with pytest.raises(ValueError, match="method"):
        rois.centroids(method="mode")


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(1, 9), min_size=1, max_size=8), st.integers(0, 2**16))
def test_median_centroid_matches_numpy(npix, seed):
    rng = np.random.default_rng(seed)
    stat = [dict(ypix=rng.integers(0, 30, n), xpix=rng.integers(0, 30, n)) for n in npix]
    rois = ROISet.from_suite2p(stat, (30, 30))
    ref = np.array([[np.median(s["ypix"]), np.median(s["xpix"])] for s in stat])
    np.testing.assert_allclose(rois.centroids(method="median"), ref)


def test_selection_and_concat(rng):
    rois = ROISet.from_suite2p(_stat(rng), (20, 24))
    sub = rois[[4, 1]]
    assert len(sub) == 2
    np.testing.assert_array_equal(sub.pixels(0)["y"], rois.pixels(4)["y"])
    np.testing.assert_array_equal(sub.pixels(1)["x"], rois.pixels(1)["x"])
    mask = np.zeros(6, bool)
    mask[[0, 5]] = True
    assert len(rois[mask]) == 2 and len(rois[2:5]) == 3 and len(rois[-1]) == 1
    both = ROISet.concat([rois[:2], rois[2:]])
    np.testing.assert_array_equal(both.to_masks(), rois.to_masks())
    with pytest.raises(ValueError, match="no ROI"):
        rois[np.zeros(6, bool)]
    with pytest.raises(ValueError, match="one entry per ROI"):
        rois[np.zeros(3, bool)]
    with pytest.raises(IndexError):
        rois[[7]]


def _optimap_rect(cy, cx, size, shape):
    ys, ye = max(0, cy - size // 2), min(shape[0], cy + size // 2 + size % 2)
    xs, xe = max(0, cx - size // 2), min(shape[1], cx + size // 2 + size % 2)
    m = np.zeros(shape, bool)
    m[ys:ye, xs:xe] = True
    return m


@pytest.mark.parametrize("size", [1, 2, 4, 5, 6])
def test_positions_rect_like_optimap(size):
    shape = (12, 15)
    pos = np.array([[0, 0], [11, 14], [5, 7], [1, 13]])
    rois = ROISet.from_positions(pos, shape, size=size, window="rect")
    masks = rois.to_masks()
    for i, (y, x) in enumerate(pos):
        np.testing.assert_array_equal(masks[i], _optimap_rect(y, x, size, shape))


@pytest.mark.parametrize("size", [2, 3, 5, 8])
def test_positions_disc_and_pixel(size):
    shape = (14, 13)
    pos = np.array([[7, 6], [0, 12]])
    rois = ROISet.from_positions(pos, shape, size=size, window="disc")
    yy, xx = np.mgrid[0:14, 0:13]
    for i, (y, x) in enumerate(pos):
        np.testing.assert_array_equal(rois.to_masks()[i], (yy - y) ** 2 + (xx - x) ** 2 <= (size / 2) ** 2)
    pix = ROISet.from_positions(pos, shape, size=size, window="pixel")
    assert pix.npix.tolist() == [1, 1] and pix.y.tolist() == [7, 0] and pix.x.tolist() == [6, 12]


def test_positions_default_window_from_options():
    import fluoxr

    with fluoxr.set_options(trace_window="pixel"):
        assert ROISet.from_positions([(3, 3)], (8, 8)).npix.tolist() == [1]
    assert ROISet.from_positions([(3, 3)], (8, 8)).npix.tolist() == [25]


@pytest.mark.parametrize(
    "call, exc, words",
    [
        (lambda: ROISet.from_positions([(3, 20)], (10, 10)), ValueError, r"positions\[0\].*outside the frame"),
        (lambda: ROISet.from_positions([(-1, 2)], (10, 10)), ValueError, "outside the frame"),
        (lambda: ROISet.from_positions([(1, 2)], (10, 10), window="square"), ValueError, "window"),
        (lambda: ROISet.from_positions([(1, 2, 3)], (10, 10)), ValueError, "positions"),
        (lambda: ROISet.from_positions([(1, 2)], (10, 10), size=-1), ValueError, "size"),
        (lambda: ROISet.from_suite2p([dict(ypix=np.array([], int), xpix=np.array([], int))], (5, 5)), ValueError, "empty ROI"),
        (lambda: ROISet.from_suite2p([dict(ypix=np.array([9]), xpix=np.array([1]))], (5, 5)), ValueError, "outside the frame"),
        (lambda: ROISet.from_suite2p([], (5, 5)), ValueError, "no ROI"),
        (lambda: ROISet.from_suite2p("stat.npy", (5, 5)), TypeError, "stat"),
        (lambda: ROISet.from_suite2p([dict(ypix=[1])], (5, 5)), ValueError, "xpix"),
        (lambda: ROISet.from_labels(np.zeros((4, 4), int)), ValueError, "no ROI"),
        (lambda: ROISet.from_labels(np.zeros(4, int)), ValueError, "labels"),
        (lambda: ROISet.from_masks(np.zeros((2, 4, 4), bool)), ValueError, "empty"),
        (lambda: ROISet(roi=[0, 2], y=[0, 1], x=[0, 1], weight=[1, 1], shape=(3, 3)), ValueError, "no pixels"),
        (lambda: ROISet(roi=[0], y=[0], x=[0], weight=[np.nan], shape=(3, 3)), ValueError, "finite"),
        (lambda: ROISet(roi=[0], y=[0], x=[0], weight=[1], shape=(3,)), ValueError, "shape"),
        (lambda: as_roiset([{"ypix": 1}]), TypeError, "from_suite2p"),
    ],
)
def test_bad_input(call, exc, words):
    with pytest.raises(exc, match=words):
        call()


def test_check_frame_shape():
    rois = ROISet.from_labels(np.ones((3, 4), int))
    check_frame_shape(rois, (3, 4))
    with pytest.raises(ValueError, match=r"shape \(3, 4\).*\(4, 4\)"):
        check_frame_shape(rois, (4, 4))


def test_immutable():
    rois = ROISet.from_labels(np.ones((3, 4), int))
    with pytest.raises(ValueError):
        rois.y[0] = 2
    assert isinstance(rois.meta, pd.DataFrame)


def test_a_roiset_cannot_be_empty():
    with pytest.raises(ValueError, match="at least one ROI"):
        ROISet(roi=[], y=[], x=[], weight=[], shape=(7, 9))
