"""extract and traces: values against dense NumPy, one pass, chunk invariance, laziness, bad input, ground truth."""

import dask
import numpy as np
import pytest
import xarray as xr

import fluoxr
from fluoxr import ROISet, cell_masks, extract, neuropil_masks, traces
from fluoxr.kernels.extract import weighted_sums
from fluoxr.testing import assert_chunk_invariant, raise_if_dask_computes, tiny_video


def _rois(rng, shape, n=5, r=2.5):
    stat = []
    R = int(np.ceil(r))
    dy, dx = np.mgrid[-R : R + 1, -R : R + 1]
    keep = dy**2 + dx**2 <= r**2
    for _ in range(n):
        cy, cx = rng.integers(R, shape[0] - R), rng.integers(R, shape[1] - R)
        stat.append(dict(ypix=cy + dy[keep], xpix=cx + dx[keep], lam=rng.uniform(0.2, 1.0, keep.sum()), radius=r))
    return ROISet.from_suite2p(stat, shape)


@pytest.mark.parametrize("dtype", [np.uint16, np.float32, np.int16, np.uint8])
def test_weighted_sums_matches_dense(rng, dtype):
    frames = (rng.random((7, 30)) * 100).astype(dtype)
    dense = rng.random((4, 30)) * (rng.random((4, 30)) > 0.6)
    import scipy.sparse as sp

    m = sp.csr_matrix(dense)
    for batch in (None, 3):
        got = weighted_sums(m.indptr.astype(np.int64), m.indices.astype(np.int64), m.data, frames, batch=batch)
        assert got.dtype == np.float32 and got.shape == (4, 7)
        np.testing.assert_allclose(got, dense @ frames.T.astype(np.float64), rtol=1e-6)
    # strided frames (one channel of a (t, c, p) block) are read in place
    stack = np.stack([frames, frames + 1], axis=1)
    got = weighted_sums(m.indptr.astype(np.int64), m.indices.astype(np.int64), m.data, stack[:, 1])
    np.testing.assert_allclose(got, dense @ (frames.T.astype(np.float64) + 1), rtol=1e-6)


def _dense_reference(video, rois, nm):
    v = np.asarray(video.values, np.float64).reshape(video.sizes["time"], -1)
    cw = cell_masks(rois).to_sparse().toarray().astype(np.float64)
    nw = nm.to_sparse(normalize=True).toarray().astype(np.float64)
    return cw @ v.T, nw @ v.T


def test_extract_equals_dense_and_is_chunk_invariant(rng):
    video = tiny_video((23, 20, 24), chunks=4)
    rois = _rois(rng, (20, 24))
    opts = {"min_neuropil_pixels": 40}
    F_ref, N_ref = _dense_reference(video, rois, neuropil_masks(rois, **opts))
    ds = assert_chunk_invariant(lambda v: extract(v, rois, neuropil=opts), video, rtol=1e-6)
    np.testing.assert_allclose(ds.F.values, F_ref, rtol=1e-6)
    np.testing.assert_allclose(ds.Fneu.values, N_ref, rtol=1e-6)
    assert ds.F.dtype == np.float32 and ds.F.dims == ("roi", "time")
    np.testing.assert_allclose(ds.y.values, rois.centroids()[:, 0])
    assert list(ds.kind.values) == ["cell"] * len(rois) and ds.attrs["fps"] == 10.0
    assert ds.F.attrs["fps"] == 10.0


def test_extract_reads_each_chunk_once_and_keeps_time_chunks(rng):
    video = tiny_video((20, 12, 12), chunks=6)
    rois = _rois(rng, (12, 12), n=3, r=1.5)
    calls = []

    def count(block):
        calls.append(block.shape[0])
        return block

    counted = video.copy(data=video.data.map_blocks(count, dtype=video.dtype))
    with raise_if_dask_computes():
        ds = extract(counted, rois, neuropil={"min_neuropil_pixels": 10})
    assert ds.F.data.chunks == ((3,), (6, 6, 6, 2))
    dask.compute(ds.F, ds.Fneu)
    assert sorted(c for c in calls if c) == [2, 6, 6, 6]  # one read per chunk for both F and Fneu


def test_extract_channels_and_no_neuropil(rng):
    video = tiny_video((9, 2, 10, 12), chunks=4)
    rois = _rois(rng, (10, 12), n=2, r=1.5)
    ds = extract(video, rois, neuropil=None)
    assert "Fneu" not in ds and ds.F.dims == ("channel", "roi", "time")
    for c in (0, 1):
        one = extract(video.isel(channel=c), rois, neuropil=None).F
        np.testing.assert_allclose(ds.F.sel(channel=c).values, one.values, rtol=1e-6)


def test_extract_accepts_neuropil_roiset_and_allow_overlap(rng):
    video = tiny_video((6, 10, 10))
    masks = np.zeros((2, 10, 10), bool)
    masks[0, 2:5, 2:5] = True
    masks[1, 4:7, 4:7] = True  # shares pixel (4, 4)
    rois = ROISet.from_masks(masks)
    ring = ROISet.from_labels((np.arange(100).reshape(10, 10) % 7 == 0) * 1)
    ring = ROISet.concat([ring, ring])
    ds = extract(video, rois, neuropil=ring, allow_overlap=True).compute()
    v = video.values.astype(np.float64)
    np.testing.assert_allclose(ds.F.values[0], v[:, 2:5, 2:5].mean((1, 2)), rtol=1e-6)
    np.testing.assert_allclose(ds.Fneu.values[1], v[:, np.arange(100).reshape(10, 10) % 7 == 0].mean(1), rtol=1e-6)
    no_overlap = extract(video, rois, neuropil=None).F.values
    keep = np.ones((3, 3), bool)
    keep[2, 2] = False
    np.testing.assert_allclose(no_overlap[0], v[:, 2:5, 2:5][:, keep].mean(1), rtol=1e-6)


def test_extract_zero_and_nan_rows(caplog):
    video = tiny_video((5, 6, 6))
    labels = np.ones((6, 6), int)
    labels[:, 3:] = 2
    rois = ROISet.from_labels(labels)
    inside = ROISet(roi=[0, 1, 1], y=[0, 0, 1], x=[0, 0, 0], weight=[1.0, 1.0, 1.0], shape=(6, 6))
    both = ROISet.concat([rois, inside[[1]]])  # ROI 2 lies inside ROI 0: all its pixels overlap
    ds = extract(video, both, neuropil={"min_neuropil_pixels": 3, "lam_percentile": 0}).compute()
    assert np.all(ds.F.values[2] == 0)  # suite2p: a cell mask with no pixel sums to 0
    assert np.all(np.isnan(ds.Fneu.values))  # every pixel is a cell pixel: mean over nothing


def test_traces_match_optimap_windows():
    video = tiny_video((8, 9, 11), chunks=3)
    v = video.values.astype(np.float64)
    pos = np.array([(4, 5), (0, 0), (8, 10), (0, 7), (3, 1)])
    H, W = 9, 11
    for size in (1, 2, 4, 5):
        got = traces(video, pos, size=size, window="rect").values
        for i, (y, x) in enumerate(pos):
            ys, ye = max(0, y - size // 2), min(H, y + size // 2 + size % 2)
            xs, xe = max(0, x - size // 2), min(W, x + size // 2 + size % 2)
            np.testing.assert_allclose(got[i], v[:, ys:ye, xs:xe].mean((1, 2)), rtol=1e-6)
        disc = traces(video, pos, size=size, window="disc").values
        yy, xx = np.mgrid[:H, :W]
        for i, (y, x) in enumerate(pos):
            m = (yy - y) ** 2 + (xx - x) ** 2 <= (size / 2) ** 2 if size > 1 else (yy == y) & (xx == x)
            np.testing.assert_allclose(disc[i], v[:, m].mean(1), rtol=1e-6)
    px = traces(video, pos, window="pixel")
    np.testing.assert_array_equal(px.values, v[:, pos[:, 0], pos[:, 1]].T)
    assert px.dims == ("roi", "time") and list(px.kind.values) == ["pixel"] * 5
    np.testing.assert_array_equal(px.y.values, pos[:, 0])


def test_traces_default_window_option_and_roiset():
    video = tiny_video((5, 9, 9))
    with fluoxr.set_options(trace_window="pixel"):
        tr = traces(video, [(4, 4)])
    np.testing.assert_array_equal(tr.values[0], video.values[:, 4, 4])
    rois = ROISet.from_labels(np.eye(9, dtype=int))
    np.testing.assert_allclose(traces(video, rois).values[0], video.values[:, np.eye(9, dtype=bool)].mean(1), rtol=1e-6)
    assert_chunk_invariant(lambda v: traces(v, [(1, 2), (7, 7)], size=3), video)


def test_accessor_delegates(rng):
    video = tiny_video((6, 10, 10))
    rois = _rois(rng, (10, 10), n=2, r=1.5)
    xr.testing.assert_identical(video.fluo.extract(rois, neuropil=None).compute(),
                                extract(video, rois, neuropil=None).compute())
    xr.testing.assert_identical(video.fluo.traces([(2, 2)]).compute(), traces(video, [(2, 2)]).compute())


def test_bad_input(rng):
    video = tiny_video((5, 10, 12))
    rois = _rois(rng, (10, 12), n=2, r=1.5)
    with pytest.raises(ValueError, match="positions\\[0\\].*outside the frame"):
        traces(video, [(10, 3)])
    with pytest.raises(ValueError, match="window must be one of"):
        traces(video, [(1, 3)], window="square")
    with pytest.raises(ValueError, match="rois were defined on frames of shape \\(9, 9\\)"):
        extract(video, ROISet.from_labels(np.eye(9, dtype=int)))
    with pytest.raises(TypeError, match="rois must be a fluoxr.ROISet"):
        extract(video, np.eye(3))
    with pytest.raises(ValueError, match="neuropil must be one of"):
        extract(video, rois, neuropil="suite2p")
    with pytest.raises(ValueError, match="neuropil must hold one region per ROI"):
        extract(video, rois, neuropil=rois[[0]])
    with pytest.raises(TypeError, match="neuropil must be"):
        extract(video, rois, neuropil=3)
    with pytest.raises(ValueError, match="batch must be >= 1"):
        extract(video, rois, batch=0)
    with pytest.raises(ValueError, match="chunked along \\['y'\\]"):
        extract(video.chunk({"y": 5}), rois)
    with pytest.raises(ValueError, match="empty ROI"):
        ROISet.from_suite2p([dict(ypix=np.array([], int), xpix=np.array([], int))], (10, 12))
    with pytest.raises(ValueError, match="time"):
        extract(xr.DataArray(np.zeros((10, 12)), dims=("y", "x")), rois)


def test_ground_truth_fluorescence():
    from fluoxr.datasets import calcium_neurons

    video, truth = calcium_neurons(n_frames=300, shape=(80, 80), n_cells=12, seed=4, chunks=64)
    rois = ROISet.from_suite2p(truth.stat, (80, 80))
    ds = extract(video, rois, neuropil={"min_neuropil_pixels": 150})
    fc, tf = dask.compute(fluoxr.subtract_neuropil(ds), truth.fluorescence)
    r = [np.corrcoef(a, b)[0, 1] for a, b in zip(fc.values, tf.values)]
    assert min(r) >= 0.95, r


@pytest.mark.peer
def test_extract_equals_suite2p(rng):
    torch = pytest.importorskip("torch")
    s2p = pytest.importorskip("suite2p.extraction.extract")
    masks = pytest.importorskip("suite2p.extraction.masks")
    video = tiny_video((40, 30, 34), chunks=9)
    rois = _rois(rng, (30, 34), n=8)
    stat = rois.to_suite2p()
    for s in stat:
        s["radius"] = 2.5
    cm, nm = masks.create_masks(stat, 30, 34, min_neuropil_pixels=80)
    F, Fneu = s2p.extract_traces(video.values, cm, nm, batch_size=16, device=torch.device("cpu"))
    ds = extract(video, rois, neuropil={"min_neuropil_pixels": 80}).compute()
    np.testing.assert_allclose(ds.F.values, F, rtol=1e-5)
    np.testing.assert_allclose(ds.Fneu.values, Fneu, rtol=1e-5)


@pytest.mark.peer
def test_traces_equal_optimap():
    ot = pytest.importorskip("optimap.trace")
    video = tiny_video((12, 20, 26))
    pos = np.array([(0, 0), (19, 25), (7, 3), (10, 20)])
    for window in ("rect", "disc", "pixel"):
        for size in (1, 4, 5):
            ref = ot.extract_traces(video.values, [(int(x), int(y)) for y, x in pos], size=size, window=window)
            np.testing.assert_allclose(traces(video, pos, size=size, window=window).T.values, ref, rtol=1e-6)


def test_pixel_indices_above_2_24_are_exact():
    # suite2p builds its sparse indices through float32 and reads pixel 2**24 instead of 2**24 + 1
    lx = 2**24 + 8
    frame = np.zeros((1, 1, lx), np.uint16)
    frame[0, 0, 2**24 + 1] = 1000
    frame[0, 0, 2**24] = 7
    rois = ROISet(roi=[0], y=[0], x=[2**24 + 1], weight=[1.0], shape=(1, lx))
    assert extract(fluoxr.as_video(frame), rois, neuropil=None).F.values[0, 0] == 1000


def test_extract_volumetric_rois():
    v = np.random.default_rng(0).random((6, 2, 5, 7)).astype(np.float32)
    video = fluoxr.as_video(v, dims=("time", "z", "y", "x"), chunks=4)
    rois = ROISet(roi=[0, 0, 1], z=[0, 1, 1], y=[1, 1, 4], x=[2, 2, 6], weight=[1, 3, 1.0], shape=(2, 5, 7))
    ds = extract(video, rois, neuropil=None)
    np.testing.assert_allclose(ds.F.values[0], (v[:, 0, 1, 2] + 3 * v[:, 1, 1, 2]) / 4, rtol=1e-6)
    assert ds.z.values.tolist() == [0.75, 1.0]
    with pytest.raises(ValueError, match="planar"):
        extract(video, rois)


# -- suite2p's extraction settings and precomputed masks -------------------------------------


def _suite2p_snr_reference(dF):
    dF = dF.astype(np.float64)
    return 1 - 0.5 * np.diff(dF, axis=1).var(axis=1) / dF.var(axis=1)


def test_extract_with_suite2p_settings_maps_every_key(rng):
    video = tiny_video((30, 24, 26), chunks=7)
    rois = _rois(rng, (24, 26), n=6)
    settings = {"circular_neuropil": True, "min_neuropil_pixels": 60, "inner_neuropil_radius": 1,
                "lam_percentile": 30.0, "allow_overlap": True, "batch_size": 5, "neuropil_coefficient": 0.5}
    with raise_if_dask_computes():
        ds = extract(video, rois, settings=settings)
    nm = neuropil_masks(rois, min_neuropil_pixels=60, inner_neuropil_radius=1, lam_percentile=30.0, circular=True)
    v = np.asarray(video.values, np.float64).reshape(30, -1)
    F_ref = cell_masks(rois, allow_overlap=True).to_sparse().toarray().astype(np.float64) @ v.T
    N_ref = nm.to_sparse(normalize=True).toarray().astype(np.float64) @ v.T
    np.testing.assert_allclose(ds.F.values, F_ref, rtol=1e-6)
    np.testing.assert_allclose(ds.Fneu.values, N_ref, rtol=1e-6)
    np.testing.assert_allclose(ds.Fc.values, F_ref - 0.5 * N_ref, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(ds.snr.values, _suite2p_snr_reference(ds.Fc.values), rtol=1e-9)
    assert ds.Fc.dtype == np.float32 and ds.snr.dims == ("roi",)
    # the whole suite2p settings dict is accepted too (its "extraction" section is used)
    whole = extract(video, rois, settings={"extraction": settings, "tau": 1.0})
    np.testing.assert_array_equal(whole.Fneu.values, ds.Fneu.values)
    assert_chunk_invariant(lambda v: extract(v, rois, settings=settings)[["F", "Fneu", "Fc"]], video, rtol=1e-6)


def test_extract_settings_neuropil_extract_false_gives_zeros(rng):
    video = tiny_video((12, 20, 20), chunks=5)
    rois = _rois(rng, (20, 20), n=3)
    ds = extract(video, rois, settings={"neuropil_extract": False})
    assert (ds.Fneu.values == 0).all() and ds.Fneu.shape == ds.F.shape
    np.testing.assert_array_equal(ds.Fc.values, ds.F.values)
    # precomputed neuropil masks win over neuropil_extract, as suite2p's extraction_wrapper
    nm = neuropil_masks(rois, min_neuropil_pixels=20)
    ds = extract(video, rois, neuropil=nm, settings={"neuropil_extract": False})
    np.testing.assert_allclose(ds.Fneu.values, extract(video, rois, neuropil=nm).Fneu.values)


def test_extract_settings_snr_threshold_runs_suite2p_two_passes(rng):
    # a slow oscillation whose amplitude grows along x over white noise: ROIs of different, positive SNRs
    t = np.arange(40)[:, None, None]
    frames = 100 + rng.normal(0, 1, (40, 24, 24)) + np.sin(t / 4) * np.linspace(0, 3, 24)[None, None, :]
    video = fluoxr.as_video(frames.astype(np.float32), fps=10).chunk({"time": 9})
    rois = _rois(rng, (24, 24), n=6)
    first = extract(video, rois, settings={"min_neuropil_pixels": 50}).compute()
    order = np.sort(first.snr.values)
    assert order[1] > 0
    threshold = float((order[1] + order[2]) / 2)  # drops exactly two ROIs
    ds = extract(video, rois, settings={"min_neuropil_pixels": 50, "snr_threshold": threshold})
    keep = first.snr.values > threshold
    assert ds.sizes["roi"] == 4 and ds.roi.values.tolist() == np.flatnonzero(keep).tolist()
    kept = rois[keep]
    # overlaps recomputed among the ROIs that remain (suite2p's assign_overlaps)
    fresh = ROISet(roi=kept.roi, y=kept.y, x=kept.x, weight=kept.weight, shape=kept.shape)
    ref = extract(video, fresh, neuropil={"min_neuropil_pixels": 50})
    np.testing.assert_array_equal(ds.F.values, ref.F.values)
    np.testing.assert_array_equal(ds.Fneu.values, ref.Fneu.values)
    assert (ds.snr.values > threshold).sum() >= 1
    with pytest.raises(ValueError, match="removes every ROI"):
        extract(video, rois, settings={"snr_threshold": 1.0, "min_neuropil_pixels": 50})


def test_extract_settings_bad_input(rng):
    video = tiny_video((10, 20, 20))
    rois = _rois(rng, (20, 20), n=2)
    with pytest.raises(ValueError, match=r"unknown suite2p extraction setting\(s\) \['circular'\]"):
        extract(video, rois, settings={"circular": True})
    with pytest.raises(TypeError, match=r"settings\['circular_neuropil'\] must be True or False"):
        extract(video, rois, settings={"circular_neuropil": 1})
    with pytest.raises(ValueError, match=r"settings\['lam_percentile'\]"):
        extract(video, rois, settings={"lam_percentile": 120})
    with pytest.raises(ValueError, match=r"settings\['min_neuropil_pixels'\]"):
        extract(video, rois, settings={"min_neuropil_pixels": 0})
    with pytest.raises(ValueError, match=r"settings\['snr_threshold'\]"):
        extract(video, rois, settings={"snr_threshold": 1.5})
    with pytest.raises(TypeError, match="settings must be a mapping"):
        extract(video, rois, settings=[("batch_size", 3)])
    with pytest.raises(TypeError, match="allow_overlap and batch"):
        extract(video, rois, allow_overlap=True, settings={})
    with pytest.raises(TypeError, match="with settings, neuropil must be"):
        extract(video, rois, neuropil={"min_neuropil_pixels": 3}, settings={})


def test_extract_with_precomputed_suite2p_masks(rng):
    video = tiny_video((16, 20, 22), chunks=5)
    rois = _rois(rng, (20, 22), n=4)
    cm = cell_masks(rois)
    nm = neuropil_masks(rois, min_neuropil_pixels=30)
    # suite2p's create_masks output: (flat pixels, lam_normed) pairs and flat neuropil index arrays
    cell = [(cm.flat_index[cm.indptr[i]:cm.indptr[i + 1]], cm.weight[cm.indptr[i]:cm.indptr[i + 1]])
            for i in range(len(cm))]
    neu = [nm.flat_index[nm.indptr[i]:nm.indptr[i + 1]] for i in range(len(nm))]
    pre_c = ROISet.from_suite2p_masks(cell, (20, 22))
    pre_n = ROISet.from_suite2p_masks(neu, (20, 22))
    assert not pre_c.overlap.any() and (pre_n.weight == 1).all()
    ds = extract(video, pre_c, neuropil=pre_n)
    ref = extract(video, rois, neuropil={"min_neuropil_pixels": 30})
    np.testing.assert_allclose(ds.F.values, ref.F.values, rtol=1e-6)
    np.testing.assert_allclose(ds.Fneu.values, ref.Fneu.values, rtol=1e-6)


def test_from_suite2p_masks_bad_input():
    with pytest.raises(ValueError, match="outside"):
        ROISet.from_suite2p_masks([np.array([0, 40])], (4, 5))
    with pytest.raises(ValueError, match=r"masks\[1\] is empty"):
        ROISet.from_suite2p_masks([np.array([0]), np.array([], int)], (4, 5))
    with pytest.raises(ValueError, match=r"2 weights for 3 pixels"):
        ROISet.from_suite2p_masks([(np.array([0, 1, 2]), np.array([0.5, 0.5]))], (4, 5))
    with pytest.raises(ValueError, match="planar frame"):
        ROISet.from_suite2p_masks([np.array([0])], (2, 4, 5))
    with pytest.raises(TypeError, match="one entry per ROI"):
        ROISet.from_suite2p_masks(np.zeros((3, 4), int), (4, 5))


@pytest.mark.peer
def test_extraction_wrapper_with_settings_equals_suite2p(rng):
    torch = pytest.importorskip("torch")
    s2p = pytest.importorskip("suite2p.extraction.extract")
    params = pytest.importorskip("suite2p.parameters")
    video = tiny_video((40, 30, 34), chunks=9)
    rois = _rois(rng, (30, 34), n=8)
    stat = rois.to_suite2p()
    for s in stat:
        s["radius"] = 2.5
    for change in ({}, {"circular_neuropil": True, "min_neuropil_pixels": 90}, {"allow_overlap": True,
                   "lam_percentile": 10.0, "inner_neuropil_radius": 0}, {"neuropil_extract": False}):
        settings = params.default_settings()["extraction"] | {"min_neuropil_pixels": 80} | change
        F, Fneu, _, _ = s2p.extraction_wrapper(np.array(stat), video.values, settings=settings,
                                               device=torch.device("cpu"))
        ds = extract(video, rois, settings=settings).compute()
        np.testing.assert_allclose(ds.F.values, F, rtol=1e-5)
        np.testing.assert_allclose(ds.Fneu.values, Fneu, rtol=1e-5)
        np.testing.assert_allclose(ds.Fc.values, F - settings["neuropil_coefficient"] * Fneu, rtol=1e-5, atol=1e-3)


@pytest.mark.peer
def test_precomputed_suite2p_masks_equal_suite2p(rng):
    torch = pytest.importorskip("torch")
    s2p = pytest.importorskip("suite2p.extraction.extract")
    masks = pytest.importorskip("suite2p.extraction.masks")
    video = tiny_video((30, 30, 34), chunks=9)
    rois = _rois(rng, (30, 34), n=8)
    stat = rois.to_suite2p()
    for s in stat:
        s["radius"] = 2.5
    cm, nm = masks.create_masks(stat, 30, 34, min_neuropil_pixels=80, allow_overlap=True)
    F, Fneu = s2p.extract_traces(video.values, cm, nm, batch_size=16, device=torch.device("cpu"))
    ds = extract(video, ROISet.from_suite2p_masks(cm, (30, 34)),
                 neuropil=ROISet.from_suite2p_masks(nm, (30, 34))).compute()
    np.testing.assert_allclose(ds.F.values, F, rtol=1e-5)
    np.testing.assert_allclose(ds.Fneu.values, Fneu, rtol=1e-5)
