"""NWB output (fluoxr.to_nwb) and input (open_video, read_nwb_rois).

Every file written here is checked by nwbinspector (no CRITICAL or
BEST_PRACTICE_VIOLATION message) and pynwb's validator, and read back with
pynwb: masks equal to the ROISet, data equal to the traces, time first, rate
right.
"""

from __future__ import annotations

import datetime
import os
import sys

import numpy as np
import pytest
import xarray as xr

import fluoxr
from fluoxr import ROISet
from fluoxr.datasets import calcium_neurons

pynwb = pytest.importorskip("pynwb")
nwbinspector = pytest.importorskip("nwbinspector")

FPS = 20.0
META = {
    "session_description": "synthetic calcium imaging (fluoxr.datasets.calcium_neurons)",
    "identifier": "fluoxr-test-session",
    "session_start_time": datetime.datetime(2024, 5, 6, 10, 30, tzinfo=datetime.timezone.utc),
    "experimenter": ["Doe, Jane"],
    "subject": {"subject_id": "mouse-1", "species": "Mus musculus", "sex": "F", "age": "P90D",
                "description": "wild type"},
    "device": {"name": "2p-scope", "description": "resonant scanner", "manufacturer": "Thorlabs"},
    "imaging_plane": {"name": "plane0", "description": "layer 2/3", "indicator": "GCaMP6f", "location": "VISp",
                      "excitation_lambda": 920.0,
                      "optical_channel": {"name": "green", "description": "GCaMP", "emission_lambda": 510.0}},
}


@pytest.fixture(scope="module")
def session():
    video, truth = calcium_neurons(n_frames=80, shape=(40, 48), n_cells=6, fps=FPS)
    video = video.chunk({"time": 16})
    video.attrs["pixel_size"] = 1.5
    rois = ROISet.from_suite2p(truth.stat, (40, 48))
    ds = fluoxr.extract(video, rois, neuropil={"min_neuropil_pixels": 50})
    ds["Fc"] = fluoxr.subtract_neuropil(ds.F, ds.Fneu)
    ds["dff"] = fluoxr.dff(ds.F, window_s=2.0, sigma_frames=2, fps=FPS)
    ds["spikes"] = fluoxr.oasis(ds.Fc, tau_s=1.0, fps=FPS)
    features = fluoxr.roi_features(rois, video.mean("time"), width=6)
    return video, rois, ds, features


def _inspect(path: str) -> None:
    bad = [m for m in nwbinspector.inspect_nwbfile(nwbfile_path=path)
           if m.importance.name in ("CRITICAL", "BEST_PRACTICE_VIOLATION", "ERROR", "PYNWB_VALIDATION")]
    assert not bad, [(m.importance.name, m.check_function_name, m.message) for m in bad]
    with pynwb.NWBHDF5IO(path, "r") as io:
        errors = pynwb.validate(io=io)
    assert not errors, errors


def _manufacturer(device):
    model = getattr(device, "model", None)
    return model.manufacturer if model is not None else device.manufacturer


def _masks(seg, rois: ROISet) -> None:
    assert len(seg) == len(rois)
    for i in range(len(rois)):
        px = rois.pixels(i)
        got = np.asarray(seg["pixel_mask"][i].tolist())
        np.testing.assert_array_equal(got[:, 0], px["x"])  # NWB x: column
        np.testing.assert_array_equal(got[:, 1], px["y"])
        np.testing.assert_array_equal(got[:, 2].astype(np.float32), px["weight"])


def test_to_nwb_full_session(session, tmp_path):
    video, rois, ds, features = session
    path = fluoxr.to_nwb(ds, tmp_path / "s.nwb", rois=rois, metadata=META, video=video, features=features)
    assert path == str(tmp_path / "s.nwb")
    _inspect(path)
    expected = ds.compute()
    table = features.compute()
    with pynwb.NWBHDF5IO(path, "r") as io:
        nwb = io.read()
        assert nwb.subject.species == "Mus musculus" and _manufacturer(nwb.devices["2p-scope"]) == "Thorlabs"
        plane = nwb.imaging_planes["plane0"]
        assert plane.location == "VISp" and plane.excitation_lambda == 920.0 and plane.imaging_rate == FPS
        np.testing.assert_allclose(plane.grid_spacing[:], [1.5e-6, 1.5e-6])
        ophys = nwb.processing["ophys"]
        seg = ophys["ImageSegmentation"]["PlaneSegmentation"]
        _masks(seg, rois)
        for col in table.columns:
            np.testing.assert_array_equal(seg[col][:], table[col].to_numpy())
        assert set(ophys["Fluorescence"].roi_response_series) == {"F", "Fneu", "Fc", "spikes"}
        assert set(ophys["DfOverF"].roi_response_series) == {"dff"}
        for name in ("F", "Fneu", "Fc", "spikes", "dff"):
            container = "DfOverF" if name == "dff" else "Fluorescence"
            series = ophys[container][name]
            assert series.data.shape == (ds.sizes["time"], len(rois))  # time first
            np.testing.assert_array_equal(series.data[:], expected[name].values.T)
            assert series.rate == FPS and series.starting_time == 0.0
            assert list(series.rois.data[:]) == list(range(len(rois)))
        tps = nwb.acquisition["TwoPhotonSeries"]
        assert tps.rate == FPS and tps.data.shape == (80, 48, 40)  # (frame, x, y)
        np.testing.assert_array_equal(tps.data[:], video.values.transpose(0, 2, 1))


def test_round_trips_open_video_and_read_nwb_rois(session, tmp_path):
    video, rois, ds, features = session
    path = fluoxr.to_nwb(ds[["F"]], tmp_path / "r.nwb", rois=rois, metadata=META, video=video, features=features)
    for text in (path, path + "::/acquisition/TwoPhotonSeries", path + "::TwoPhotonSeries"):
        back = fluoxr.open_video(text)
        assert back.dims == ("time", "y", "x") and back.attrs["fps"] == FPS
        assert back.attrs["pixel_size"] == pytest.approx(1.5)
        xr.testing.assert_equal(back.drop_vars(list(back.coords)), video.drop_vars(list(video.coords)))
    back = fluoxr.open_video(path, chunks=7)
    assert back.chunks[0][0] == 7
    np.testing.assert_array_equal(back.values, video.values)
    got = fluoxr.read_nwb_rois(path)
    assert got.shape == rois.shape  # from the TwoPhotonSeries on the same imaging plane
    for a in ("roi", "y", "x", "weight"):
        np.testing.assert_array_equal(getattr(got, a), getattr(rois, a))
    np.testing.assert_array_equal(got.meta["dot_product"], features.compute()["dot_product"])
    # without a recording the frame shape is given, or the smallest that holds every ROI
    bare = fluoxr.to_nwb(ds[["F"]], tmp_path / "bare.nwb", rois=rois, metadata=META)
    assert fluoxr.read_nwb_rois(bare, shape=rois.shape).shape == rois.shape
    small = fluoxr.read_nwb_rois(bare + "::/processing/ophys/ImageSegmentation/PlaneSegmentation")
    assert fluoxr.read_nwb_rois(bare + "::PlaneSegmentation").shape == small.shape
    assert small.shape == (int(rois.y.max()) + 1, int(rois.x.max()) + 1)


def test_open_video_is_picklable_and_lazy(session, tmp_path):
    import pickle

    from fluoxr.testing import raise_if_dask_computes

    video, rois, ds, _ = session
    path = fluoxr.to_nwb(ds[["F"]], tmp_path / "p.nwb", rois=rois, metadata=META, video=video)
    with raise_if_dask_computes():
        back = fluoxr.open_video(path)
    again = pickle.loads(pickle.dumps(back))
    np.testing.assert_array_equal(again.isel(time=slice(3, 9)).values, video.values[3:9])
    from fluoxr.io.safety import graph_inputs

    assert graph_inputs(back) == {path}


@pytest.mark.parametrize("chunks", [{"time": 1}, {"time": 7}, {"time": 30, "roi": 2}, {"time": -1, "roi": 1}])
def test_lazy_chunked_write_equals_in_memory(session, tmp_path, chunks):
    _, rois, ds, _ = session
    mem = ds.compute()
    lazy = mem.chunk(chunks)
    a = fluoxr.to_nwb(mem, tmp_path / "mem.nwb", rois=rois, metadata=META)
    b = fluoxr.to_nwb(lazy, tmp_path / "lazy.nwb", rois=rois, metadata=META)
    _inspect(b)
    import h5py

    with h5py.File(a, "r") as fa, h5py.File(b, "r") as fb:
        for name in ("F", "Fneu", "Fc", "spikes"):
            key = f"processing/ophys/Fluorescence/{name}/data"
            np.testing.assert_array_equal(fa[key][()], fb[key][()])
        np.testing.assert_array_equal(fa["processing/ophys/DfOverF/dff/data"][()],
                                      fb["processing/ophys/DfOverF/dff/data"][()])


def test_blocks_are_computed_one_batch_at_a_time(monkeypatch, tmp_path):
    """A lazy trace is never computed whole: each dask.compute sees at most one batch of time."""
    import dask
    import dask.array as da

    from fluoxr.io import nwb as nwb_mod

    monkeypatch.setattr(nwb_mod, "_BATCH_BYTES", 3 * 10 * 4 * 10)  # three 10-frame chunks of 10 ROIs
    seen = []
    real = dask.compute

    def counting(*args, **kwargs):
        seen.append(max(a.shape[0] for a in args))
        return real(*args, **kwargs)

    monkeypatch.setattr(dask, "compute", counting)
    F = xr.DataArray(da.random.random((10, 100), chunks=(10, 10)).astype(np.float32), dims=("roi", "time"),
                     attrs={"fps": 5.0})
    rois = ROISet.from_positions([(i, i) for i in range(10)], (12, 12), size=1)
    path = fluoxr.to_nwb(F.rename("F"), tmp_path / "b.nwb", rois=rois, metadata=META)
    assert seen and max(seen) == 30 and sum(seen) == 100
    with pynwb.NWBHDF5IO(path, "r") as io:
        np.testing.assert_array_equal(io.read().processing["ophys"]["Fluorescence"]["F"].data[:], F.values.T)


def test_starting_time_and_plain_dataarray(tmp_path):
    rois = ROISet.from_labels(np.array([[1, 1, 0], [0, 2, 2]]))
    t = 3.0 + np.arange(40) / 8.0
    F = xr.DataArray(np.random.default_rng(0).random((2, 40), dtype=np.float32), dims=("roi", "time"),
                     coords={"time": ("time", t, {"units": "s"})}, name="traces")
    path = fluoxr.to_nwb(F, tmp_path / "t.nwb", rois=rois, metadata=META)  # fps from the time coordinate
    _inspect(path)
    with pynwb.NWBHDF5IO(path, "r") as io:
        series = io.read().processing["ophys"]["Fluorescence"]["traces"]
        assert series.rate == 8.0 and series.starting_time == 3.0


def test_volumetric_and_image_masks(tmp_path):
    masks = np.zeros((2, 3, 5, 6), bool)
    masks[0, 1, 1:3, 2:4] = True
    masks[1, 2, 3, 1:5] = True
    rois = ROISet.from_masks(masks)
    F = xr.DataArray(np.ones((2, 10), np.float32), dims=("roi", "time"), attrs={"fps": 2.0}, name="F")
    path = fluoxr.to_nwb(F, tmp_path / "v.nwb", rois=rois, metadata=META)
    got = fluoxr.read_nwb_rois(path, shape=(3, 5, 6))
    np.testing.assert_array_equal(got.to_masks(), masks)
    # a file written by pynwb itself with image masks (dims roi, x, y)
    from pynwb.ophys import ImageSegmentation, OpticalChannel

    nwb = pynwb.NWBFile(session_description="d", identifier="x", session_start_time=META["session_start_time"])
    dev = nwb.create_device(name="d")
    plane = nwb.create_imaging_plane(name="p", optical_channel=OpticalChannel(name="c", description="c",
                                                                              emission_lambda=500.0),
                                     description="p", device=dev, excitation_lambda=900.0, imaging_rate=10.0,
                                     indicator="GCaMP", location="VISp")
    seg = ImageSegmentation().create_plane_segmentation(description="s", imaging_plane=plane)
    image = np.zeros((6, 5), np.float32)  # (x, y)
    image[1, 2] = 0.5
    image[4, 3] = 2.0
    seg.add_roi(image_mask=image)
    mod = nwb.create_processing_module("ophys", "o")
    mod.add(seg.parent if seg.parent is not None else seg)
    with pynwb.NWBHDF5IO(str(tmp_path / "im.nwb"), "w") as io:
        io.write(nwb)
    got = fluoxr.read_nwb_rois(tmp_path / "im.nwb")
    assert got.shape == (5, 6)
    np.testing.assert_array_equal(got.to_masks(weighted=True)[0], image.T)


def test_open_video_one_photon_with_timestamps(tmp_path):
    from pynwb.ophys import OnePhotonSeries, OpticalChannel

    nwb = pynwb.NWBFile(session_description="d", identifier="x", session_start_time=META["session_start_time"])
    dev = nwb.create_device(name="d")
    plane = nwb.create_imaging_plane(name="p", optical_channel=OpticalChannel(name="c", description="c",
                                                                              emission_lambda=500.0),
                                     description="p", device=dev, excitation_lambda=470.0, imaging_rate=4.0,
                                     indicator="GCaMP", location="VISp", grid_spacing=[2.0, 2.0],
                                     grid_spacing_unit="micrometers")
    frames = np.arange(12 * 4 * 3, dtype=np.uint16).reshape(12, 4, 3)  # (frame, x, y)
    nwb.add_acquisition(OnePhotonSeries(name="miniscope", data=frames, imaging_plane=plane,
                                        timestamps=0.5 + np.arange(12) / 4.0, unit="n.a."))
    with pynwb.NWBHDF5IO(str(tmp_path / "one.nwb"), "w") as io:
        io.write(nwb)
    v = fluoxr.open_video(tmp_path / "one.nwb")
    assert v.shape == (12, 3, 4) and v.attrs["fps"] == 4.0 and v.attrs["pixel_size"] == 2.0
    np.testing.assert_array_equal(v.values, frames.transpose(0, 2, 1))


def test_cli_extract_nwb(session, tmp_path, unchanged):
    import tifffile

    from fluoxr.cli import main

    video, rois, _, _ = session
    tif = str(tmp_path / "rec.tif")
    tifffile.imwrite(tif, video.values.astype(np.float32))
    np.save(tmp_path / "lab.npy", rois.to_label_image())
    unchanged(tif, str(tmp_path / "lab.npy"))
    import json

    meta = {k: v for k, v in META.items() if k != "session_start_time"} | {"session_start_time": "2024-05-06T10:30:00+00:00"}
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    argv = ["extract", tif, "--labels", str(tmp_path / "lab.npy"), "--fps", str(FPS), "--neuropil",
            "--nwb", str(tmp_path / "cli.nwb"), "--nwb-metadata", str(tmp_path / "meta.json"),
            "--scheduler", "threads", "--no-progress"]
    assert main(argv) == 0
    _inspect(str(tmp_path / "cli.nwb"))
    assert main(argv + ["-o", str(tmp_path / "t.zarr"), "--overwrite"]) == 0
    stored = fluoxr.open_result(tmp_path / "t.zarr")
    with pynwb.NWBHDF5IO(str(tmp_path / "cli.nwb"), "r") as io:
        nwb = io.read()
        assert nwb.session_start_time == META["session_start_time"]
        np.testing.assert_array_equal(nwb.processing["ophys"]["Fluorescence"]["F"].data[:], stored.F.values.T)
        _masks(nwb.processing["ophys"]["ImageSegmentation"]["PlaneSegmentation"],
               ROISet.from_labels(rois.to_label_image()))


# --------------------------------------------------------------------------------------------
# data safety and bad input


def _small():
    rois = ROISet.from_labels(np.array([[1, 1, 0], [0, 2, 2]]))
    F = xr.DataArray(np.ones((2, 10), np.float32), dims=("roi", "time"), attrs={"fps": 10.0}, name="F")
    return F, rois


def test_refuses_inputs_and_existing_files(tmp_path, unchanged):
    import tifffile

    F, rois = _small()
    tif = str(tmp_path / "rec.tif")
    tifffile.imwrite(tif, np.zeros((10, 2, 3), np.uint16), photometric="minisblack")
    unchanged(tif)
    video = fluoxr.open_video(tif, fps=10)
    with pytest.raises(ValueError, match="is an input"):
        fluoxr.to_nwb(F, tif, rois=rois, video=video, overwrite=True)
    link = tmp_path / "link.nwb"
    link.symlink_to(tif)
    with pytest.raises(ValueError, match="is an input"):
        fluoxr.to_nwb(F, link, rois=rois, video=video, overwrite=True)
    # traces from the recording name it as their source: refused even without video=
    traces = fluoxr.traces(video, [(0, 0)], size=1)
    with pytest.raises(ValueError, match="is an input"):
        fluoxr.to_nwb(traces, tif, rois=ROISet.from_positions([(0, 0)], (2, 3), size=1), overwrite=True)
    out = fluoxr.to_nwb(F, tmp_path / "o.nwb", rois=rois)
    with pytest.raises(ValueError, match="already exists"):
        fluoxr.to_nwb(F, out, rois=rois)
    # a link at the output is replaced, never written through
    other = tmp_path / "other.txt"
    other.write_text("keep me")
    (tmp_path / "l2.nwb").symlink_to(other)
    fluoxr.to_nwb(F, tmp_path / "l2.nwb", rois=rois, overwrite=True)
    assert other.read_text() == "keep me" and not os.path.islink(tmp_path / "l2.nwb")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["l2.nwb", "link.nwb", "o.nwb", "other.txt", "rec.tif"]


def test_failed_write_leaves_nothing(tmp_path, monkeypatch):
    from fluoxr.io import nwb as nwb_mod

    F, rois = _small()

    def boom(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(nwb_mod, "_fill", boom)
    with pytest.raises(RuntimeError):
        fluoxr.to_nwb(F, tmp_path / "x.nwb", rois=rois)
    assert list(tmp_path.iterdir()) == []


def test_locked_output_is_refused(tmp_path):
    from fluoxr.io.safety import OutputLock

    F, rois = _small()
    lock = OutputLock(str(tmp_path / "x.nwb")).acquire()
    try:
        with pytest.raises(ValueError, match="being written"):
            fluoxr.to_nwb(F, tmp_path / "x.nwb", rois=rois)
    finally:
        lock.release()


def test_without_pynwb_the_error_names_the_extra(monkeypatch, tmp_path):
    F, rois = _small()
    monkeypatch.setitem(sys.modules, "pynwb", None)
    with pytest.raises(ImportError, match=r"fluoxr\[nwb\]"):
        fluoxr.to_nwb(F, tmp_path / "x.nwb", rois=rois)


def test_default_metadata_say_they_are_defaults(tmp_path, caplog):
    F, rois = _small()
    with caplog.at_level("WARNING", logger="fluoxr.io.nwb"):
        path = fluoxr.to_nwb(F, tmp_path / "d.nwb", rois=rois)
    assert "session_start_time" in caplog.text and "no metadata['subject']" in caplog.text
    caplog.clear()
    with caplog.at_level("WARNING", logger="fluoxr.io.nwb"):
        fluoxr.to_nwb(F, tmp_path / "m.nwb", rois=rois, metadata={"subject": {"species": "Mus musculus"}})
    assert "no age" in caplog.text and "Allen atlas" in caplog.text
    with pynwb.NWBHDF5IO(path, "r") as io:
        nwb = io.read()
        assert nwb.session_description == "default: not given"
        assert nwb.imaging_planes["ImagingPlane"].indicator == "default: not given"
        assert nwb.session_start_time.tzinfo is not None and nwb.subject is None


def test_readme_snippet_runs_as_written(tmp_path, monkeypatch):
    import re

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    text = open(os.path.join(root, "README.md"), encoding="utf-8").read()
    section = text[text.index("## NWB ("):]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(code, "README.md (NWB)", "exec"), namespace)
    _inspect(str(tmp_path / "session.nwb"))
    assert namespace["again"].sizes["time"] == 300 and len(namespace["rois_again"]) == 8


@pytest.mark.parametrize("compression", ["gzip", None])
def test_chunks_compressed_on_threads_read_back_equal(tmp_path, monkeypatch, compression):
    """Blocks covering whole HDF5 chunks are compressed by fluoxr (shuffle + deflate) and written as stored;
    h5py must read them back equal, edge chunks (ROIs not a multiple of 64, frames of the chunk) included."""
    import dask.array as da
    import h5py

    from fluoxr.io import nwb as nwb_mod

    encoded = []
    real = nwb_mod._encode
    monkeypatch.setattr(nwb_mod, "_encode", lambda *a: encoded.append(1) or real(*a))
    values = np.random.default_rng(3).standard_normal((70, 95)).astype(np.float32)
    F = xr.DataArray(da.from_array(values, chunks=(70, 20)), dims=("roi", "time"), attrs={"fps": 5.0}, name="F")
    rois = ROISet.from_positions([(i // 10, i % 10) for i in range(70)], (8, 10), size=1)
    path = fluoxr.to_nwb(F, tmp_path / "c.nwb", rois=rois, metadata=META, compression=compression)
    with h5py.File(path, "r") as f:
        d = f["processing/ophys/Fluorescence/F/data"]
        assert d.chunks == (20, 64) and d.compression == compression
        np.testing.assert_array_equal(d[()], values.T)
    assert bool(encoded) == (compression == "gzip")
    _inspect(path)
