"""fluoxr.oscillations: exact against the NumPy reference and Cellects, for every chunking; tracking; tables."""

from __future__ import annotations

import importlib
import os
import subprocess
import sys

import dask
import numpy as np
import pandas as pd
import pytest
import tifffile
import xarray as xr

import fluoxr
from fluoxr import oscillations as O
from fluoxr.cli import main as cli_main
from fluoxr.testing import assert_chunk_invariant, default_chunkings, raise_if_dask_computes
from fluoxr.testing import wavy_video as _wavy
from fluoxr.testing.references import detect_oscillations as ref_detect
from fluoxr.testing.references import track_clusters as ref_tracks

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


CASES = [(None, None), ("period", None), (None, "cellects"), ("period", "cellects"), (None, "cellects-lowmem")]


@pytest.mark.parametrize("lag, compat", CASES)
def test_detect_equals_reference_for_every_chunking(lag, compat):
    video = _wavy()
    mask = np.ones(video.shape[1:], bool)
    mask[:3, :4] = False
    kw = dict(period_s=18.0, interval_s=2.0, min_cluster_size=4, start=2, lag=lag, compat=compat)
    expected = ref_detect(video.values, mask=mask, **kw)
    halo = O.detection_halo(period_s=18.0, interval_s=2.0, lag=lag)
    got = assert_chunk_invariant(lambda v: O.detect(v, mask=mask, **kw), video, halo=halo)
    np.testing.assert_array_equal(got.values, expected)
    assert got.dtype == np.int8 and set(np.unique(got.values)) <= {0, 1, 2}
    assert (got.values == 1).any() and (got.values == 2).any() and not got.values[:2].any()


def test_compat_differs_from_plain_components():
    # Cellects' background swap matters on these waves: the default must not silently equal it
    video = _wavy(seed=1)
    kw = dict(period_s=18.0, interval_s=2.0, min_cluster_size=4)
    plain = O.detect(video, **kw).values
    cellects = O.detect(video, compat="cellects", **kw).values
    assert (plain != cellects).any()
    np.testing.assert_array_equal(cellects, ref_detect(video.values, compat="cellects", **kw))


def test_period_changes_nothing_by_default_but_matters_in_lowmem_and_lag():
    video = _wavy(seed=2)
    kw = dict(interval_s=2.0, min_cluster_size=3)
    a, b = (O.detect(video, period_s=p, **kw).values for p in (4.0, 40.0))
    np.testing.assert_array_equal(a, b)
    assert (O.detect(video, period_s=4.0, lag="period", **kw).values
            != O.detect(video, period_s=40.0, lag="period", **kw).values).any()


@pytest.mark.parametrize("chunks", [1, 4, 23])
def test_detect_with_a_lazy_mask_video(chunks):
    video = _wavy(seed=3)
    rng = np.random.default_rng(0)
    binary = (rng.random(video.shape) > 0.2).astype(np.uint8)
    binary[5:9, :, :6] = 0
    lazy = xr.DataArray(dask.array.from_array(binary, chunks=(5, -1, -1)), dims=("time", "y", "x"))
    kw = dict(period_s=12.0, interval_s=2.0, min_cluster_size=3)
    got = O.detect(video.chunk({"time": chunks}), mask=lazy, **kw).values
    np.testing.assert_array_equal(got, ref_detect(video.values, mask=binary, **kw))


def test_colour_video_uses_first_channel_and_z_planes_are_independent():
    video = _wavy(seed=4)
    kw = dict(period_s=12.0, interval_s=2.0, min_cluster_size=3)
    other = _wavy(seed=5)
    colour = fluoxr.as_video(np.stack([video.values, other.values], axis=1), fps=0.5,
                             dims=("time", "channel", "y", "x"))
    assert colour.dims == ("time", "channel", "y", "x")
    got = O.detect(colour, **kw)
    assert got.dims == ("time", "y", "x")
    np.testing.assert_array_equal(got.values, O.detect(video, **kw).values)
    stack = fluoxr.as_video(np.stack([video.values, other.values], axis=1), dims=("time", "z", "y", "x"), fps=0.5)
    got = O.detect(stack.chunk({"time": 5}), **kw)
    assert got.dims == ("time", "z", "y", "x")
    for z, v in enumerate((video, other)):
        np.testing.assert_array_equal(got.isel(z=z).values, O.detect(v, **kw).values)


def test_detect_of_videos_chunked_along_z_and_channel():
    """One plane per chunk along z (and channel): the halos must exist for every plane's blocks."""
    video, other = _wavy(seed=4), _wavy(seed=5)
    kw = dict(period_s=12.0, interval_s=2.0, min_cluster_size=3)
    planes = np.stack([video.values, other.values], axis=1)
    halo = O.detection_halo(period_s=12.0, interval_s=2.0)
    stack = fluoxr.as_video(planes, dims=("time", "z", "y", "x"), fps=0.5, chunks={"time": 23, "z": 1})
    assert stack.chunks[1] == (1, 1)
    got = assert_chunk_invariant(lambda v: O.detect(v, **kw), stack, halo=halo)
    for z, v in enumerate((video, other)):
        np.testing.assert_array_equal(got.isel(z=z).values, ref_detect(v.values, **kw))
    # z and channel both chunked: the first channel of each plane
    both = fluoxr.as_video(np.stack([planes, planes[:, ::-1]], axis=2), dims=("time", "z", "channel", "y", "x"),
                           fps=0.5, chunks={"time": 5, "z": 1, "channel": 1})
    labels = O.detect(both, **kw)
    assert labels.dims == ("time", "z", "y", "x") and labels.chunks[1] == (1, 1)
    np.testing.assert_array_equal(labels.values, got.values)


def test_detect_is_lazy_and_labelled():
    video = _wavy().chunk({"time": 6})
    with raise_if_dask_computes():
        labels = O.detect(video, period_s=60, min_cluster_size=5, start=1)
        via_accessor = video.fluo.oscillations(period_s=60, min_cluster_size=5, start=1)
    assert labels.dims == video.dims and labels.shape == video.shape and labels.dtype == np.int8
    assert labels.chunks == video.chunks
    assert labels.attrs["interval_s"] == 2.0 and labels.attrs["compat"] == "none"
    assert labels.attrs["flag_meanings"] == "none influx efflux"
    np.testing.assert_array_equal(labels.time.values, video.time.values)
    xr.testing.assert_identical(labels.compute(), via_accessor.compute())


def test_detect_agrees_with_the_wave_phase_of_the_oscillating_sheet():
    video, truth = fluoxr.datasets.oscillating_sheet(n_frames=150, shape=(64, 64), seed=7)
    on_sheet = truth.expected.values > 0
    for lag, floor in ((None, 0.88), ("period", 0.92)):
        labels = O.detect(video, period_s=truth.period_s, min_cluster_size=20, mask=truth.mask, lag=lag)
        agree = (labels.values == truth.expected.values)[on_sheet].mean()
        assert agree > floor, (lag, agree)
        assert (labels.values[:, ~truth.mask] == 0).all()


@pytest.mark.peer
def test_compat_equals_cellects_itself():
    for module in ("cellects.video.oscillations_functions", "cellects.image_analysis.oscillations_functions"):
        try:
            peer = importlib.import_module(module).detect_oscillations_dynamics
            break
        except (ImportError, AttributeError):
            continue
    else:
        pytest.skip("cellects with detect_oscillations_dynamics (0.4.x to 1.1.0) is not importable")
    video = _wavy(shape=(40, 20, 24), seed=8)
    v = video.values
    binary = np.ones(v.shape, np.uint8)
    binary[:, :4, :5] = 0
    # 0.4.x returns None for 3-D input: give it (t, y, x, 1) as Cellects' own pipeline does
    expected = peer(v[..., None], binary, 1, 3, 18, 2, 4, save_coord_thickening_slimming=False)
    for chunks in default_chunkings(v.shape[0]):
        got = O.detect(video.chunk({"time": chunks}), mask=binary, period_s=18, interval_s=2, min_cluster_size=4,
                       start=3, compat="cellects")
        np.testing.assert_array_equal(got.values, expected)


def test_detect_rejects_bad_videos():
    with pytest.raises(ValueError, match="video.*2 frame"):
        O.detect(fluoxr.as_video(np.ones((1, 4, 4)), fps=1), period_s=10, min_cluster_size=1)
    with pytest.raises(ValueError, match="interval_s is required"):
        O.detect(fluoxr.as_video(np.ones((3, 4, 4))), period_s=10, min_cluster_size=1)
    with pytest.raises(ValueError, match="whole frames"):
        O.detect(_wavy().chunk({"x": 7}), period_s=10, min_cluster_size=1)
    with pytest.raises(TypeError, match="video"):
        O.detect([[1]], period_s=10, min_cluster_size=1)


# -- tracking --------------------------------------------------------------------------------


def _sheet_labels(n=70, chunks=None):
    video, truth = fluoxr.datasets.oscillating_sheet(n_frames=n, shape=(40, 48), period_s=30, wavelength_px=24,
                                                     seed=2)
    return O.detect(video, period_s=truth.period_s, min_cluster_size=8, mask=truth.mask, start=3).compute()


@pytest.mark.parametrize("min_overlap", [1, 6])
def test_track_clusters_equals_reference_and_is_chunk_invariant(min_overlap):
    labels = _sheet_labels()
    expected = ref_tracks(labels.values, interval_s=2.0, start=3, min_overlap=min_overlap)
    got = assert_chunk_invariant(lambda lab: O.track_clusters(lab, min_overlap=min_overlap, compute=False),
                                 labels.chunk({"time": 70}), rtol=1e-12)
    assert len(got) == len(expected) > 5 and got["period_n"].sum() > 0
    assert list(got["cluster"]) == list(range(len(got)))
    pd.testing.assert_frame_equal(got.drop(columns="cluster").astype({"kind": str}), expected, check_dtype=False,
                                  rtol=1e-12)
    assert np.nanmedian(got["period_s"]) == pytest.approx(30, abs=4)


def test_track_clusters_on_noise_equals_reference():
    rng = np.random.default_rng(3)
    labels = xr.DataArray(rng.choice(np.array([0, 1, 2], np.int8), size=(30, 9, 10), p=[0.5, 0.25, 0.25]),
                          dims=("time", "y", "x"), attrs={"interval_s": 0.5})
    expected = ref_tracks(labels.values, interval_s=0.5, min_overlap=2)
    for chunks in [(30,), (1,) * 30, (7, 1, 13, 9)]:
        got = O.track_clusters(labels.chunk({"time": chunks}), min_overlap=2).compute()
        pd.testing.assert_frame_equal(got.drop(columns="cluster").astype({"kind": str}), expected,
                                      check_dtype=False, rtol=1e-12)


def test_track_clusters_splits_merges_and_periods():
    labels = np.zeros((9, 7, 12), np.int8)
    labels[0, 1:3, 1:3] = 1            # A
    labels[0, 1:3, 8:10] = 1           # B
    labels[1, 1:3, 1:10] = 1           # A and B merge ...
    labels[2, 1:3, 1:3] = 1            # ... and split again: still one cluster
    labels[2, 1:3, 8:10] = 1
    labels[3, 1:3, 1:3] = 2            # efflux where A was: a new cluster, of the other kind
    labels[1, 4:6, 1:3] = 1            # C: influx at 1, efflux at 2-3, influx again at 5: one period of
    labels[2:4, 4:6, 1:3] = 2          # 4 frames at each of its 4 pixels, credited to the cluster of frame 5
    labels[5, 4:6, 1:3] = 1
    labels[8, 5:7, 10:12] = 2          # touches the last frame
    da_labels = xr.DataArray(labels, dims=("time", "y", "x"), attrs={"fps": 4.0})
    for chunks in [(9,), (1,) * 9, (2, 3, 4)]:
        table = O.track_clusters(da_labels.chunk({"time": chunks})).compute()
        assert table["kind"].tolist() == ["influx", "influx", "efflux", "efflux", "influx", "efflux"]
        first = table.iloc[0]
        assert (first.first_frame, first.last_frame, first.n_frames, first.area_max) == (0, 2, 3, 18)
        assert first.duration_s == 0.75 and first.truncated and np.isnan(first.period_s)
        assert first.area_mean == pytest.approx((8 + 18 + 8) / 3)
        assert (first.y_start, first.x_start) == (1.5, 5.0)
        assert (table.iloc[2].first_frame, table.iloc[2].n_frames) == (2, 2)
        assert table.iloc[4].period_s == 1.0 and table.iloc[4].period_n == 4   # 4 frames at 4 fps
        assert table["period_n"].sum() == 4
        assert not table.iloc[4].truncated and table.iloc[5].truncated


def test_track_clusters_is_lazy_and_checks_input():
    labels = _sheet_labels(n=30).chunk({"time": 7})
    with raise_if_dask_computes():
        delayed = O.track_clusters(labels, compute=False)
    assert isinstance(delayed.compute(), pd.DataFrame)
    with pytest.raises(TypeError, match="labels"):
        O.track_clusters(labels.values)
    with pytest.raises(ValueError, match="min_overlap"):
        O.track_clusters(labels, min_overlap=0)
    with pytest.raises(ValueError, match="isel"):
        O.track_clusters(labels.expand_dims(z=2).transpose("time", "z", "y", "x"))
    with pytest.raises(ValueError, match="interval_s"):
        O.track_clusters(xr.DataArray(np.zeros((3, 4, 4), np.int8), dims=("time", "y", "x")))
    with pytest.raises(TypeError, match="integers"):
        O.track_clusters(labels.astype(float))
    empty = O.track_clusters(xr.DataArray(np.zeros((3, 4, 4), np.int8), dims=("time", "y", "x")), interval_s=1).compute()
    assert len(empty) == 0 and "period_s" in empty.columns


# -- coordinates table -----------------------------------------------------------------------


def test_coordinates_table_is_lazy_exact_and_savable(tmp_path, monkeypatch):
    labels = _sheet_labels(n=40)
    t, y, x = np.nonzero(labels.values)
    for chunks in default_chunkings(40):
        with raise_if_dask_computes():
            table = O.oscillation_coordinates(labels.chunk({"time": chunks}))
        df = table.compute()
        assert list(df.columns) == ["t", "y", "x", "kind"] and df.attrs["interval_s"] == 2.0
        np.testing.assert_array_equal(df[["t", "y", "x"]].to_numpy(), np.stack([t, y, x], 1))
        np.testing.assert_array_equal(df["kind"].to_numpy(), labels.values[t, y, x])
    # written block by block; an interrupted write is resumed without recomputing written blocks
    table = O.oscillation_coordinates(labels.chunk({"time": 9}))
    path = str(tmp_path / "coords.zarr")
    import fluoxr.io.store as io

    real = io._concat_ragged

    def crash(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(io, "_concat_ragged", crash)
    with pytest.raises(RuntimeError):
        fluoxr.save(table, path)
    assert len(os.listdir(tmp_path / "coords.zarr.partial" / "done" / "pixel")) == 5
    monkeypatch.setattr(io, "_concat_ragged", real)
    calls = []
    monkeypatch.setattr(O, "_coords_block", lambda *a: calls.append(1) or np.zeros((0, 4), np.int32))
    fluoxr.save(table, path, resume=True)
    assert not calls and not os.path.exists(path + ".partial")
    back = fluoxr.open_result(path)
    assert back.dims == ("pixel", "field") and list(back.field.values) == ["t", "y", "x", "kind"]
    np.testing.assert_array_equal(back.to_pandas().to_numpy(), np.stack([t, y, x, labels.values[t, y, x]], 1))
    assert back.attrs["fps"] == 0.5


@pytest.mark.parametrize("bad", [3, -1])
def test_coordinates_and_tracks_reject_values_other_than_0_1_2(bad):
    frames = np.zeros((4, 5, 5), np.int8)
    frames[1:3, 1:3, 1:3] = 1
    frames[0, 4, 4] = bad
    labels = xr.DataArray(frames, dims=("time", "y", "x"), attrs={"fps": 2.0}).chunk({"time": 2})
    with raise_if_dask_computes():
        table = O.oscillation_coordinates(labels)  # the values are known only when computed
    with pytest.raises(ValueError, match="^labels must hold only 0 .none., 1 .influx. and 2 .efflux."):
        table.compute()
    with pytest.raises(ValueError, match="^labels must hold only 0 .none., 1 .influx. and 2 .efflux."):
        O.track_clusters(labels).compute()
    frames[0, 4, 4] = 0
    assert len(O.oscillation_coordinates(xr.DataArray(frames, dims=("time", "y", "x"))).compute()) == 8


def test_coordinates_of_z_planes_and_of_nothing(tmp_path):
    labels = xr.DataArray(np.zeros((3, 2, 4, 5), np.int8), dims=("time", "z", "y", "x"))
    labels[1, 1, 2, 3] = 2
    df = O.oscillation_coordinates(labels).compute()
    assert df.columns.tolist() == ["t", "z", "y", "x", "kind"] and df.values.tolist() == [[1, 1, 2, 3, 2]]
    empty = O.oscillation_coordinates(labels * 0)
    assert len(empty.compute()) == 0
    fluoxr.save(empty, str(tmp_path / "e.zarr"))
    assert fluoxr.open_result(str(tmp_path / "e.zarr")).shape == (0, 5)


# -- command line, figure, benchmark ---------------------------------------------------------


def test_cli_oscillations(tmp_path, capsys):
    video, truth = fluoxr.datasets.oscillating_sheet(n_frames=40, shape=(32, 36), seed=1)
    tifffile.imwrite(tmp_path / "sheet.tif", video.values)
    tifffile.imwrite(tmp_path / "mask.tif", truth.mask.astype(np.uint8))
    out, tracks, coords = tmp_path / "osc.zarr", tmp_path / "tracks.csv", tmp_path / "coords.zarr"
    argv = ["oscillations", str(tmp_path / "sheet.tif"), "--mask", str(tmp_path / "mask.tif"), "--period", "60",
            "--interval", "2", "--min-cluster-size", "10", "-o", str(out), "--tracks", str(tracks),
            "--coordinates", str(coords), "--scheduler", "threads", "--no-progress"]
    assert cli_main(argv) == 0
    text = capsys.readouterr().out
    assert "influx" in text and "clusters" in text
    labels = fluoxr.open_result(str(out))
    expected = O.detect(video, period_s=60, interval_s=2, min_cluster_size=10, mask=truth.mask)
    np.testing.assert_array_equal(labels.values, expected.values)
    pd.testing.assert_frame_equal(pd.read_csv(tracks), O.track_clusters(expected).compute().astype({"kind": str}),
                                  check_dtype=False)
    assert fluoxr.open_result(str(coords)).shape[0] == int((expected.values > 0).sum())
    # existing outputs are kept unless --overwrite
    assert cli_main(argv) == 2
    assert "already exists" in capsys.readouterr().err
    assert cli_main(argv + ["--overwrite"]) == 0


@pytest.mark.parametrize("extra, words", [(["--interval", "1", "--min-cluster-size", "0"], "--min-cluster-size"),
                                          (["--interval", "1", "--mask", "{bad}"], "mask"),
                                          (["--interval", "0"], "--interval"),
                                          ([], "--interval")])
def test_cli_oscillations_bad_input(tmp_path, capsys, extra, words):
    tifffile.imwrite(tmp_path / "v.tif", np.ones((6, 8, 9), np.uint16))
    np.save(tmp_path / "bad.npy", np.ones((3, 3)))
    argv = ["oscillations", str(tmp_path / "v.tif"), "--period", "10", "--min-cluster-size", "3",
            "-o", str(tmp_path / "o.zarr"), "--scheduler", "threads"]
    argv += [a.format(bad=tmp_path / "bad.npy") for a in extra]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and len(err.splitlines()) == 1


def test_overlay_figure():
    import matplotlib

    matplotlib.use("Agg")
    from fluoxr.plot import oscillation_overlay

    labels = _sheet_labels(n=10)
    fig = oscillation_overlay(np.ones(labels.shape[1:]), labels.isel(time=5), titles=["t=5"])
    assert len(fig.axes) == 1
    with pytest.raises(ValueError, match="shape"):
        oscillation_overlay(np.ones((4, 4)), np.ones((5, 5), np.int8))


@pytest.mark.slow
def test_benchmark_quick_runs():
    r = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "oscillations.py"), "--quick"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "fluoxr" in r.stdout and "MB/s" in r.stdout


def test_detect_reads_a_raw_4d_array_as_cellects_t_y_x_c():
    # Cellects' colour videos are (t, y, x, c); detect documents that layout and uses the first channel
    video = _wavy()
    rgb = np.stack([video.values, video.values[::-1] * 0.5 + 3, np.zeros(video.shape)], axis=-1)
    kw = dict(period_s=18.0, interval_s=1.0, min_cluster_size=4)
    got = O.detect(rgb, **kw)
    assert got.dims == ("time", "y", "x") and got.shape == video.shape
    expected = O.detect(xr.DataArray(video.values, dims=("time", "y", "x")), **kw)
    np.testing.assert_array_equal(got.values, expected.values)
    # a dask array of the same layout too, and lazily
    import dask.array as dask_array

    with raise_if_dask_computes():
        lazy = O.detect(dask_array.from_array(rgb, chunks=(5, -1, -1, -1)), **kw)
    np.testing.assert_array_equal(lazy.values, expected.values)
