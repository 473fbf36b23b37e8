"""``track_clusters(compat="cellects")``: Cellects' cluster flux study, equal to the oracle that runs Cellects' own code.

The oracle (``tests/oracles/oracle_cluster_flux.py``, driving Cellects'
``ClusterFluxStudy``) needs OpenCV, Cellects' helpers and the
ClusterFluxStudy source, which is in no Cellects release and is GPL-3.0, so
it is not kept in this BSD repository: ``benchmarks/peers/setup.sh`` fetches
it from Cellects' git history into the peers' cache
(``~/.cache/fluoxr-peers/oracle/``, or the folder named by
``FLUOXR_PEER_ORACLES``). It runs in the peers' environment only (``peer``
tests, skipped when any of these is missing). Its tables on the label videos of ``tests/data/cellects_cluster_flux.npz``
were stored there by :func:`build_golden` (run with the peers' environment:
``python tests/test_cluster_flux.py``), so the comparison also runs
everywhere, for several chunkings; the peer tests check that the stored
tables are still the oracle's and compare fresh videos too.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import xarray as xr

from fluoxr.kernels import cluster_flux as CF
from fluoxr.oscillations import track_clusters
from fluoxr.testing import assert_chunk_invariant

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "data", "cellects_cluster_flux.npz")
CHUNKINGS = None   # fluoxr.testing.default_chunkings: one chunk, one-frame chunks, uneven chunks, two halves


# -- label videos ----------------------------------------------------------------------------------


def smooth_labels(seed: int, shape=(30, 24, 28), thresh=0.5, sigma=(1.0, 1.5, 1.5)) -> np.ndarray:
    """Smooth random influx/efflux patches that drift, merge and split."""
    from scipy import ndimage

    x = ndimage.gaussian_filter(np.random.default_rng(seed).standard_normal(shape), sigma)
    labels = np.zeros(shape, np.int8)
    labels[x > thresh * x.std()] = 1
    labels[x < -thresh * x.std()] = 2
    return labels


def noisy_labels(seed: int, shape=(20, 16, 15)) -> np.ndarray:
    """Salt-and-pepper labels: hundreds of tiny clusters, many ties in cc()'s ranking."""
    return np.random.default_rng(seed).choice(np.array([0, 1, 2], np.int8), size=shape, p=[0.6, 0.2, 0.2])


def blob_labels(seed: int, shape=(36, 44, 52)) -> np.ndarray:
    """Large discs that come and go: clusters of more than 200 pixel records (Cellects marks only their border)."""
    rng = np.random.default_rng(seed)
    t, ny, nx = shape
    yy, xx = np.mgrid[:ny, :nx]
    labels = np.zeros(shape, np.int8)
    for _ in range(14):
        t0 = rng.integers(0, t - 3)
        dur = rng.integers(2, 9)
        # most discs stay clear of the specimen's contour (then Cellects measures their distance to it)
        cy, cx, r = rng.integers(12, ny - 12), rng.integers(12, nx - 12), rng.integers(4, 11)
        vy, vx = rng.normal(0, 0.7, 2)
        kind = rng.integers(1, 3)
        for k in range(dur):
            if t0 + k < t:
                disc = (yy - cy - vy * k) ** 2 + (xx - cx - vx * k) ** 2 <= r * r
                labels[t0 + k][disc] = kind
    return labels


def cases() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Name -> (labels, mask) of the stored cases."""
    def margin(shape, top, bottom, left, right):
        m = np.zeros(shape, np.uint8)
        m[top:shape[0] - bottom, left:shape[1] - right] = 1
        return m

    out = {}
    for seed in range(3):
        lab = smooth_labels(seed)
        out[f"smooth{seed}"] = lab, margin(lab.shape[1:], 2, 2, 1, 3)
    lab = smooth_labels(10, shape=(40, 36, 40), thresh=0.1, sigma=(1.5, 4, 4))
    out["smooth_wide"] = lab, margin(lab.shape[1:], 3, 1, 2, 4)
    for seed in range(2):
        lab = noisy_labels(seed)
        out[f"noisy{seed}"] = lab, margin(lab.shape[1:], 1, 2, 2, 1)
    out["noisy_nocontour"] = noisy_labels(5), np.ones((16, 15), np.uint8)
    for seed in range(3):
        lab = blob_labels(seed)
        out[f"blobs{seed}"] = lab, margin(lab.shape[1:], 4, 3, 5, 2)
    return out


def _load_golden() -> dict[str, dict[str, np.ndarray]]:
    z = np.load(GOLDEN)
    names = sorted({k.split("/")[0] for k in z.files})
    return {n: {k.split("/")[1]: z[k] for k in z.files if k.startswith(n + "/")} for n in names}


def _as_labels(labels: np.ndarray) -> xr.DataArray:
    return xr.DataArray(labels, dims=("time", "y", "x"))


def _assert_table_equals(df, table: np.ndarray, kind: np.ndarray) -> None:
    """The fluoxr table equals the oracle's ``clusters_final_data`` (float32) and ``kind`` rows, exactly."""
    assert len(df) == table.shape[0]
    np.testing.assert_array_equal(df["mean_pixel_period"].to_numpy(), table[:, 0])
    np.testing.assert_array_equal(df["archive_frame"].to_numpy(), table[:, 1])
    np.testing.assert_array_equal(df["size"].to_numpy(), table[:, 2])
    np.testing.assert_array_equal(df["edge_distance"].to_numpy(), table[:, 3])
    np.testing.assert_array_equal(df["centroid_x"].to_numpy(), table[:, 4])
    np.testing.assert_array_equal(df["centroid_y"].to_numpy(), table[:, 5])
    np.testing.assert_array_equal(np.where(df["kind"].to_numpy() == "influx", 1, 2), kind)


# -- runs everywhere: the stored oracle tables --------------------------------------------------------


GOLDEN_CASES = sorted(_load_golden()) if os.path.exists(GOLDEN) else []


def test_golden_cases_cover_every_path():
    golden = _load_golden()
    assert set(golden) == set(cases())
    tables = np.concatenate([g["table"] for g in golden.values()])
    assert (tables[:, 2] > 200).sum() >= 5             # the border-only marking of large clusters
    assert np.isinf(tables[:, 3]).any()                 # no contour pixel in the reduced image
    assert (tables[:, 3] == 1).any() and (tables[:, 3] > 1).any()
    assert sum(int(g["stalls"]) for g in golden.values()) >= 5   # Cellects' endless quadrant loop
    assert sum(int((g["kind"] == 1).sum()) for g in golden.values()) > 100
    assert sum(int((g["kind"] == 2).sum()) for g in golden.values()) > 100


@pytest.mark.parametrize("name", GOLDEN_CASES)
def test_cellects_table_equals_the_oracle_for_every_chunking(name):
    g = _load_golden()[name]
    labels = _as_labels(g["labels"])
    df = assert_chunk_invariant(lambda lab: track_clusters(lab, compat="cellects", mask=g["mask"]), labels,
                                chunkings=CHUNKINGS, rtol=0, atol=0)
    _assert_table_equals(df, g["table"], g["kind"])
    # the same contour given directly
    df2 = track_clusters(labels.chunk({"time": 4}), compat="cellects", contours=g["contours"]).compute()
    _assert_table_equals(df2, g["table"], g["kind"])


def test_cellects_table_with_a_mask_per_frame():
    g = _load_golden()["smooth1"]
    labels = _as_labels(g["labels"])
    masks = np.broadcast_to(g["mask"], g["labels"].shape)
    df = track_clusters(labels.chunk({"time": 3}), compat="cellects", mask=masks).compute()
    _assert_table_equals(df, g["table"], g["kind"])
    # a contour that changes in time: frame by frame, the same as the kernel run frame by frame with it
    moving = np.zeros(g["labels"].shape, np.uint8)
    for t in range(moving.shape[0]):
        moving[t, 1 + t % 3 : -2, 2 : -1 - t % 4] = 1
    df = track_clusters(labels.chunk({"time": 7}), compat="cellects", mask=moving).compute()
    contours = np.stack([CF.contours_from_mask(m) for m in moving])
    _, rows, kinds = CF.flux_frames(g["labels"], contours, CF.initial_state(moving.shape[1:]))
    _assert_table_equals(df, rows, kinds)


def test_cellects_table_with_lazy_masks_computes_nothing_while_built():
    import dask.array as dask_array

    from fluoxr.testing import raise_if_dask_computes

    g = _load_golden()["smooth2"]
    labels = _as_labels(g["labels"]).chunk({"time": 6})
    lazy2d = dask_array.from_array(g["mask"], chunks=-1)
    lazy3d = dask_array.from_array(np.broadcast_to(g["mask"], g["labels"].shape), chunks=(5, -1, -1))
    with raise_if_dask_computes():
        tables = [track_clusters(labels, compat="cellects", mask=lazy2d),
                  track_clusters(labels, compat="cellects", mask=lazy3d),
                  track_clusters(labels, compat="cellects", contours=dask_array.from_array(g["contours"]))]
    for table in tables:
        _assert_table_equals(table.compute(), g["table"], g["kind"])


def test_cellects_table_is_lazy_and_has_its_columns():
    g = _load_golden()["noisy0"]
    table = track_clusters(_as_labels(g["labels"]).chunk({"time": 5}), compat="cellects", mask=g["mask"])
    assert table.npartitions == 4
    assert table.columns.tolist() == ["mean_pixel_period", "archive_frame", "size", "edge_distance", "centroid_y",
                                      "centroid_x", "kind"]
    df = table.compute()
    assert df.index.tolist() == list(range(len(df)))
    assert str(df["kind"].dtype) == "category"


def test_default_tracker_unchanged_by_compat_names():
    g = _load_golden()["smooth0"]
    labels = _as_labels(g["labels"]).assign_attrs(fps=2.0)
    a = track_clusters(labels).compute()
    b = track_clusters(labels, compat="fluoxr").compute()
    assert a.equals(b)
    with pytest.raises(ValueError, match="compat='cellects'"):
        track_clusters(labels, mask=g["mask"])
    with pytest.raises(ValueError, match="compat"):
        track_clusters(labels, compat="suite2p")


def test_kernel_pieces_by_hand():
    # cc(): the background (item 0) ranked first; equal areas: the later OpenCV label first
    img = np.zeros((4, 6), np.uint8)
    img[0, 0] = img[0, 4] = img[3, 2] = 1
    # OpenCV numbers (0,0) 1, (0,4) 2, (3,2) 3 (block rows first); reversed stable order: 3, 2, 1
    got = CF.cellects_cc(img)
    assert got[3, 2] == 1 and got[0, 4] == 2 and got[0, 0] == 3 and got[1, 1] == 0
    # a cluster touching three borders and larger than the background: swapped with it
    big = np.ones((5, 5), np.uint8)
    big[2, 2] = 0
    swapped = CF.cellects_cc(big)
    assert swapped[2, 2] == 1 and swapped[0, 0] == 0
    # the reduced image: two diagonal quadrants stall, and the distance is taken in the unchanged image
    stall = np.zeros((8, 8), np.uint8)
    stall[0, 0], stall[1, 1], stall[7, 7], stall[6, 5] = 1, 2, 1, 2
    sub, stalled = CF.reduce_quadrants(stall)
    assert stalled and sub.shape == (8, 8)
    assert CF.minimal_distance(stall) == np.sqrt(2)


# -- peer: the oracle itself --------------------------------------------------------------------------


def _oracle(monkeypatch: pytest.MonkeyPatch):
    """The oracle module; with cellects 1.1.0 only, its helpers under 0.4's name for as long as the test runs."""
    pytest.importorskip("cv2")
    try:
        import cellects.image_analysis.morphological_operations  # noqa: F401  (cellects 0.4.x)
    except ImportError:
        mo = pytest.importorskip("cellects.image.morphological_operations")   # 1.1.0: the same three helpers
        import types

        import cellects
        if not hasattr(mo, "cc") or not hasattr(mo, "reduce_image_size_for_speed"):
            pytest.skip("this cellects has no cc()/reduce_image_size_for_speed")
        pkg = types.ModuleType("cellects.image_analysis")
        pkg.morphological_operations = mo
        monkeypatch.setitem(sys.modules, "cellects.image_analysis", pkg)
        monkeypatch.setitem(sys.modules, "cellects.image_analysis.morphological_operations", mo)
        monkeypatch.setattr(cellects, "image_analysis", pkg, raising=False)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    source = os.environ.get("FLUOXR_PEER_ORACLES") or os.path.join(cache, "fluoxr-peers", "oracle")
    if not os.path.isfile(os.path.join(source, "cellects_cluster_flux_study.py")):
        pytest.skip(f"Cellects' ClusterFluxStudy source is not in {source} (bash benchmarks/peers/setup.sh fetches it)")
    for folder in (source, os.path.join(HERE, "oracles")):
        if folder not in sys.path:
            sys.path.insert(0, folder)
    import oracle_cluster_flux

    return oracle_cluster_flux


def build_golden(path: str = GOLDEN) -> None:
    """Run the oracle on :func:`cases` and store labels, masks, contours and its tables (peers' environment)."""
    with pytest.MonkeyPatch.context() as mp:
        _build_golden(_oracle(mp), path)


def _build_golden(oracle, path: str) -> None:
    out = {}
    for name, (labels, mask) in cases().items():
        contours = oracle.contours_from_mask(mask)
        res = oracle.tables(labels, contours)
        out.update({f"{name}/labels": labels, f"{name}/mask": mask, f"{name}/contours": contours,
                    f"{name}/table": res["table"], f"{name}/kind": res["kind"],
                    f"{name}/stalls": np.int64(res["stalls"])})
    np.savez_compressed(path, **out)


@pytest.mark.peer
@pytest.mark.parametrize("name", sorted(cases()))
def test_peer_stored_tables_are_the_oracles(name, monkeypatch):
    oracle = _oracle(monkeypatch)
    g = _load_golden()[name]
    np.testing.assert_array_equal(oracle.contours_from_mask(g["mask"]), g["contours"])
    np.testing.assert_array_equal(CF.contours_from_mask(g["mask"]), g["contours"])
    res = oracle.tables(g["labels"], g["contours"])
    np.testing.assert_array_equal(res["table"], g["table"])
    np.testing.assert_array_equal(res["kind"], g["kind"])


@pytest.mark.peer
@pytest.mark.parametrize("seed", range(4))
def test_peer_fresh_videos_equal_the_oracle(seed, monkeypatch):
    oracle = _oracle(monkeypatch)
    rng = np.random.default_rng(100 + seed)
    for labels in (smooth_labels(100 + seed, shape=(24, 20, 23)), noisy_labels(100 + seed, shape=(14, 13, 17)),
                   blob_labels(100 + seed, shape=(25, 37, 31))):
        mask = (rng.random(labels.shape[1:]) < 0.97).astype(np.uint8)    # holes: contour pixels inside too
        contours = oracle.contours_from_mask(mask)
        res = oracle.tables(labels, contours)
        for chunks in (1, 4, -1):
            df = track_clusters(_as_labels(labels).chunk({"time": chunks}), compat="cellects", mask=mask).compute()
            _assert_table_equals(df, res["table"], res["kind"])


@pytest.mark.peer
def test_peer_cc_and_quadrants_equal_cellects(monkeypatch):
    oracle = _oracle(monkeypatch)
    from cellects.image_analysis import morphological_operations as mo

    cc = oracle.cc_function("stable")
    rng = np.random.default_rng(7)
    for i in range(300):
        shape = tuple(rng.integers(3, 19, 2))
        img = (rng.random(shape) < rng.uniform(0.1, 0.9)).astype(np.uint8)
        ref, _, _ = cc(img)
        np.testing.assert_array_equal(CF.cellects_cc(img), ref.astype(np.uint32))
        two = np.zeros(shape, np.uint8)
        two[rng.random(shape) < 0.1] = 1
        two[rng.random(shape) < 0.05] = 2
        sub, stalled = CF.reduce_quadrants(two)
        if (two == 1).any() and (two == 2).any() and not stalled:
            r1, r2 = mo.reduce_image_size_for_speed(two)
            assert all(np.array_equal(a, b) for a, b in zip(r1 + r2, np.nonzero(sub == 1) + np.nonzero(sub == 2)))
            assert CF.minimal_distance(two) == mo.get_minimal_distance_between_2_shapes(two)


if __name__ == "__main__":   # regenerate the stored oracle tables (peers' environment)
    build_golden()
    print("wrote", GOLDEN)
