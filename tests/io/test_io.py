"""Every format opens lazily to the right pixels, dims and times; saving is safe and exact."""

from __future__ import annotations

import os
import pickle

import cloudpickle
import dask
import numpy as np
import pytest
import tifffile
import xarray as xr
import zarr

import fluoxr
from fluoxr import io as fio
from fluoxr.testing import raise_if_dask_computes


@pytest.fixture
def stack(rng):
    return rng.integers(0, 4000, (23, 9, 11)).astype(np.uint16)


def _open_and_compare(path, expected, **kwargs):
    v = fluoxr.open_video(path, **kwargs)
    assert v.shape == expected.shape
    np.testing.assert_array_equal(v.values, expected)
    return v


# -- TIFF ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("bigtiff", [False, True])
def test_tiff_contiguous(tmp_path, stack, unchanged, bigtiff):
    p = tmp_path / "movie.tif"
    tifffile.imwrite(p, stack, bigtiff=bigtiff, photometric="minisblack")
    unchanged(p)
    v = _open_and_compare(p, stack, chunks=4)
    assert v.dims == ("time", "y", "x")
    assert v.chunks[0] == (4, 4, 4, 4, 4, 3)
    assert isinstance(v.attrs["source"], str) and v.attrs["source"].endswith("movie.tif")
    assert "fps" not in v.attrs
    assert isinstance(fio._graph_sources(v), set)
    reader = next(iter(v.data.__dask_graph__().layers[f"original-{v.data.name}"].values()))
    assert isinstance(reader, fio._RawReader)


def test_tiff_compressed_pages_and_big_endian(tmp_path, stack, unchanged):
    p = tmp_path / "z.tif"
    tifffile.imwrite(p, stack, compression="zlib", photometric="minisblack")
    q = tmp_path / "be.tif"
    tifffile.imwrite(q, stack, byteorder=">", photometric="minisblack")
    unchanged(p, q)
    v = _open_and_compare(p, stack, chunks=5)
    reader = next(iter(v.data.__dask_graph__().layers[f"original-{v.data.name}"].values()))
    assert isinstance(reader, fio._TiffPagesReader)
    w = _open_and_compare(q, stack, chunks=7)
    assert w.dtype == np.dtype("uint16") and w.dtype.isnative


def test_tiff_imagej_hyperstack_dims_fps_and_pixel_size(tmp_path, rng):
    data = rng.integers(0, 255, (6, 3, 2, 8, 10)).astype(np.uint8)  # TZCYX
    p = tmp_path / "hyper.tif"
    tifffile.imwrite(p, data, imagej=True, metadata={"axes": "TZCYX", "finterval": 0.25, "unit": "um"},
                     resolution=(1 / 0.5, 1 / 0.5))
    v = fluoxr.open_video(p)
    assert v.dims == ("time", "z", "channel", "y", "x")
    np.testing.assert_array_equal(v.values, data)
    assert v.attrs["fps"] == pytest.approx(4.0)
    np.testing.assert_allclose(v.time.values, np.arange(6) * 0.25)
    assert v.attrs["pixel_size"] == pytest.approx(0.5)
    # the argument overrides the file
    assert fluoxr.open_video(p, fps=10).attrs["fps"] == 10.0


def test_tiff_imagej_channels_compressed(tmp_path, rng):
    # time is not the slowest axis of the pages here (CTYX after reordering)
    data = rng.integers(0, 60000, (2, 5, 6, 7)).astype(np.uint16)
    p = tmp_path / "ctyx.ome.tif"
    tifffile.imwrite(p, data, metadata={"axes": "CTYX", "TimeIncrement": 0.1}, ome=True, compression="zlib")
    v = fluoxr.open_video(p, chunks=2)
    assert v.dims == ("time", "channel", "y", "x")
    np.testing.assert_array_equal(v.values, data.transpose(1, 0, 2, 3))
    assert v.attrs["fps"] == pytest.approx(10.0)


def test_tiff_ome_contiguous_with_time_not_first(tmp_path, rng):
    data = rng.integers(0, 60000, (3, 5, 6, 7)).astype(np.uint16)
    p = tmp_path / "ztyx.ome.tif"
    tifffile.imwrite(p, data, metadata={"axes": "ZTYX"}, ome=True)
    v = fluoxr.open_video(p, chunks=2)
    assert v.dims == ("time", "z", "y", "x")
    np.testing.assert_array_equal(v.values, data.transpose(1, 0, 2, 3))


def test_tiff_rgb_samples_become_channel(tmp_path, rng):
    data = rng.integers(0, 255, (4, 6, 5, 3)).astype(np.uint8)
    p = tmp_path / "rgb.tif"
    tifffile.imwrite(p, data, photometric="rgb")
    v = fluoxr.open_video(p)
    assert v.dims == ("time", "channel", "y", "x")
    np.testing.assert_array_equal(v.values, data.transpose(0, 3, 1, 2))


def test_multi_file_tiff_natural_order_and_glob(tmp_path, stack, unchanged):
    parts = [stack[:7], stack[7:10], stack[10:]]
    names = ["run_2.tif", "run_10.tif", "run_1.tif"]  # natural order: 1, 2, 10
    order = {"run_1.tif": 0, "run_2.tif": 1, "run_10.tif": 2}
    for name in names:
        tifffile.imwrite(tmp_path / name, parts[order[name]], photometric="minisblack")
    unchanged(*(tmp_path / n for n in names))
    v = _open_and_compare(str(tmp_path / "run_*.tif"), stack, chunks=4)
    assert v.chunks[0] == (4, 4, 4, 4, 4, 3)  # chunks cross file boundaries
    listed = [tmp_path / "run_1.tif", tmp_path / "run_2.tif", tmp_path / "run_10.tif"]
    _open_and_compare(listed, stack)


def test_multi_file_shape_mismatch(tmp_path, stack):
    tifffile.imwrite(tmp_path / "a.tif", stack)
    tifffile.imwrite(tmp_path / "b.tif", stack[:, :5])
    with pytest.raises(ValueError, match="frame shape"):
        fluoxr.open_video([tmp_path / "a.tif", tmp_path / "b.tif"])


def test_single_image_tiff_is_rejected(tmp_path):
    tifffile.imwrite(tmp_path / "img.tif", np.zeros((8, 8), np.uint16))
    with pytest.raises(ValueError, match="single image"):
        fluoxr.open_video(tmp_path / "img.tif")


def test_opening_reads_no_pixels(tmp_path, stack, monkeypatch):
    p = tmp_path / "m.tif"
    tifffile.imwrite(p, stack, compression="zlib")
    q = tmp_path / "m2.tif"
    tifffile.imwrite(q, stack)
    calls = []
    for cls in (fio._RawReader, fio._TiffPagesReader):
        original = cls._read
        monkeypatch.setattr(cls, "_read", lambda self, a, b, _o=original: calls.append((a, b)) or _o(self, a, b))
    with raise_if_dask_computes():
        v = fluoxr.open_video(p, chunks=5)
        w = fluoxr.open_video(q, chunks=5)
        lazy = (v.astype("float64") - w).mean("time")
    assert calls == []
    lazy.compute()
    assert sorted(calls) == sorted([(i, min(i + 5, 23)) for i in range(0, 23, 5)] * 2)


@pytest.mark.slow  # starts a process pool
def test_tiff_graph_pickles_and_runs_on_process_workers(tmp_path, stack):
    distributed = pytest.importorskip("distributed")
    p = tmp_path / "m.tif"
    tifffile.imwrite(p, stack, compression="zlib")
    q = tmp_path / "n.tif"
    tifffile.imwrite(q, stack)
    v = fluoxr.open_video([p, q], chunks=6)
    graph = dict(v.data.__dask_graph__())
    cloudpickle.loads(cloudpickle.dumps(graph))
    pickle.loads(pickle.dumps(v))
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            distributed.Client(cluster) as client:
        total = client.compute(v.astype("int64").sum()).result()
        frames = client.compute(v.isel(time=[0, 30, 45])).result()
    assert int(total) == 2 * int(stack.astype(np.int64).sum())
    np.testing.assert_array_equal(frames.values, np.concatenate([stack, stack])[[0, 30, 45]])


def test_truncated_tiff_fails_clearly_when_read(tmp_path, stack):
    p = tmp_path / "t.tif"
    tifffile.imwrite(p, stack)
    with open(p, "r+b") as fh:
        fh.truncate(2000)  # inside the pixel data
    with pytest.raises(ValueError, match="truncated"):
        fluoxr.open_video(p, chunks=5)
    # a file truncated after opening fails when read, naming the file (its size no longer
    # matches the one recorded at open, so no byte of it is trusted)
    q = tmp_path / "u.tif"
    tifffile.imwrite(q, stack)
    v = fluoxr.open_video(q, chunks=5)
    with open(q, "r+b") as fh:
        fh.truncate(3000)
    with pytest.raises(ValueError, match=r"u\.tif.*changed since it was opened \(size \d+ -> 3000 bytes"):
        v.values


# -- zarr ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", [2, 3])
def test_plain_zarr_array_v2_v3(tmp_path, stack, fmt, unchanged):
    p = str(tmp_path / f"raw{fmt}.zarr")
    z = zarr.create_array(store=p, shape=stack.shape, chunks=(4, 9, 11), dtype=stack.dtype, zarr_format=fmt)
    z[:] = stack
    z.attrs["fps"] = 7.5
    unchanged(p)
    v = _open_and_compare(p, stack)
    assert v.attrs["fps"] == 7.5
    assert all(c % 4 == 0 for c in v.chunks[0][:-1])  # aligned with stored chunks


@pytest.mark.parametrize("fmt", [2, 3])
def test_xarray_zarr_groups_v2_v3(tmp_path, stack, fmt):
    p = str(tmp_path / f"g{fmt}.zarr")
    da_ = xr.DataArray(stack, dims=("time", "y", "x"), name="frames")
    da_.to_dataset().to_zarr(p, zarr_format=fmt, consolidated=(fmt == 2))
    v = _open_and_compare(p, stack, fps=3)
    assert v.attrs["fps"] == 3.0


def test_save_roundtrip_exact_coords_and_attrs(tmp_path, stack):
    v = fluoxr.as_video(stack, fps=12.5, pixel_size=0.3, chunks=(5, 9, 11))
    v.attrs["source"] = "microscope 3"
    v = v.assign_coords(label=("time", np.arange(23) * 2))
    p = tmp_path / "v.zarr"
    assert fluoxr.save(v, p) == str(p)
    assert not os.path.exists(str(p) + ".partial")
    back = fluoxr.open_video(p)
    np.testing.assert_array_equal(back.values, stack)
    for c in ("time", "y", "x", "label"):
        np.testing.assert_array_equal(back[c].values, v[c].values)
        assert back[c].dtype == v[c].dtype
    assert back.attrs["fps"] == 12.5 and back.attrs["pixel_size"] == 0.3
    res = fluoxr.open_result(p)
    assert isinstance(res, xr.DataArray) and res.name == "video"
    assert res.attrs == {"fps": 12.5, "pixel_size": 0.3, "source": "microscope 3"}
    xr.testing.assert_identical(res.compute(), v.compute())


def test_save_dataset_and_uneven_chunks(tmp_path, rng):
    a = fluoxr.as_video(rng.random((13, 4, 5)), fps=2).chunk({"time": (3, 6, 4)})
    ds = xr.Dataset({"a": a, "b": a.mean("time")}, attrs={"note": "x", "n": np.int64(3), "skip": None})
    p = tmp_path / "ds.zarr"
    fluoxr.save(ds, p)
    back = fluoxr.open_result(p)
    assert isinstance(back, xr.Dataset)
    xr.testing.assert_allclose(back.compute(), ds.compute())
    assert back.attrs == {"note": "x", "n": 3}


def test_save_refuses_existing_and_inputs(tmp_path, stack, unchanged):
    p = tmp_path / "in.tif"
    tifffile.imwrite(p, stack)
    unchanged(p)
    v = fluoxr.open_video(p)
    with pytest.raises(ValueError, match="input"):
        fluoxr.save(v, p, overwrite=True)
    with pytest.raises(ValueError, match="input"):
        fluoxr.save(v.mean("time"), p, overwrite=True)  # found in the graph, attrs are gone
    out = tmp_path / "out.zarr"
    fluoxr.save(v, out)
    with pytest.raises(ValueError, match="already exists"):
        fluoxr.save(v, out)
    fluoxr.save(v * 2, out, overwrite=True)
    np.testing.assert_array_equal(fluoxr.open_video(out).values, stack * 2)
    # a zarr input cannot be overwritten with its own derivative
    z = fluoxr.open_video(out)
    with pytest.raises(ValueError, match="input"):
        fluoxr.save(z + 1, out, overwrite=True)
    # a folder that is not a zarr store is never deleted
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "keep.txt").write_text("precious")
    with pytest.raises(ValueError, match="not a zarr store"):
        fluoxr.save(v, folder, overwrite=True)
    assert (folder / "keep.txt").read_text() == "precious"


def test_save_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="obj"):
        fluoxr.save(np.zeros(3), tmp_path / "x.zarr")
    with pytest.raises(TypeError, match="path"):
        fluoxr.save(xr.DataArray([1, 2]), 5)


def test_save_resume_skips_written_chunks(tmp_path, stack, monkeypatch):
    v = fluoxr.as_video(stack, chunks=5)
    p = str(tmp_path / "r.zarr")
    calls = []
    original = fio.store._write_block

    def failing(block, store, var, region, marker):
        calls.append(region[0].start)
        if len(calls) == 3:
            raise RuntimeError("simulated crash")
        return original(block, store, var, region, marker)

    monkeypatch.setattr(fio.store, "_write_block", failing)
    with dask.config.set(scheduler="sync"):
        with pytest.raises(RuntimeError, match="simulated crash"):
            fluoxr.save(v, p)
    assert os.path.exists(p + ".partial")
    with pytest.raises(ValueError, match="interrupted"):
        fluoxr.open_result(p)
    with pytest.raises(ValueError, match="already exists"):
        fluoxr.save(v, p)
    with pytest.raises(ValueError, match="different computation.*chunks differ"):
        fluoxr.save(fluoxr.as_video(stack, chunks=4), p, resume=True)
    monkeypatch.setattr(fio.store, "_write_block", original)
    written = []
    monkeypatch.setattr(fio.store, "_write_block", lambda b, s, var, region, m: written.append(region[0].start) or original(b, s, var, region, m))
    with dask.config.set(scheduler="sync"):
        fluoxr.save(v, p, resume=True)
    assert len(written) == 5 - 2  # two chunks were complete before the crash
    assert not os.path.exists(p + ".partial")
    np.testing.assert_array_equal(fluoxr.open_video(p).values, stack)
    # resuming a complete store does nothing
    fluoxr.save(v, p, resume=True)


def test_save_compute_false_returns_delayed(tmp_path, stack):
    p = tmp_path / "d.zarr"
    job = fluoxr.save(fluoxr.as_video(stack, chunks=6), p, compute=False)
    assert os.path.exists(str(p) + ".partial")
    job.compute()
    np.testing.assert_array_equal(fluoxr.open_video(p).values, stack)


# -- raw binary, npy, HDF5 -------------------------------------------------------------------


def test_suite2p_bin_with_ops_and_with_shape(tmp_path, rng, unchanged):
    data = rng.integers(-3000, 3000, (17, 6, 8)).astype(np.int16)
    d = tmp_path / "plane0"
    d.mkdir()
    data.tofile(d / "data.bin")
    unchanged(d / "data.bin")
    with pytest.raises(ValueError, match="shape"):
        fluoxr.open_video(d / "data.bin")
    v = _open_and_compare(d / "data.bin", data, shape=(6, 8), chunks=5)
    assert v.dtype == np.int16
    np.save(d / "ops.npy", {"Ly": 6, "Lx": 8, "fs": 15.0, "nframes": 17}, allow_pickle=True)
    v = _open_and_compare(d / "data.bin", data)
    assert v.attrs["fps"] == 15.0
    with pytest.raises(ValueError, match="shape"):
        fluoxr.open_video(d / "data.bin", shape=(5, 8))


@pytest.mark.parametrize("order", ["C", "F"])
def test_npy(tmp_path, stack, order, unchanged):
    p = tmp_path / "v.npy"
    np.save(p, np.asarray(stack, order=order))
    unchanged(p)
    _open_and_compare(p, stack, chunks=4)


def test_npy_truncated(tmp_path, stack):
    p = tmp_path / "v.npy"
    np.save(p, stack)
    with open(p, "r+b") as fh:
        fh.truncate(os.path.getsize(p) - 10)
    with pytest.raises(ValueError, match="truncated"):
        fluoxr.open_video(p)


def test_hdf5_dataset(tmp_path, stack, unchanged):
    h5py = pytest.importorskip("h5py")
    p = tmp_path / "rec.h5"
    with h5py.File(p, "w") as f:
        d = f.create_dataset("acq/frames", data=stack, chunks=(3, 9, 11))
        d.attrs["fps"] = 20.0
        f.create_dataset("other", data=np.zeros((4, 4, 4)))
    unchanged(p)
    v = _open_and_compare(f"{p}::/acq/frames", stack)
    assert v.attrs["fps"] == 20.0
    assert all(c % 3 == 0 for c in v.chunks[0][:-1])
    with pytest.raises(ValueError, match="datasets"):
        fluoxr.open_video(p)
    with pytest.raises(ValueError, match="no dataset"):
        fluoxr.open_video(f"{p}::/missing")
    cloudpickle.loads(cloudpickle.dumps(dict(v.data.__dask_graph__())))


# -- bad input -----------------------------------------------------------------------------------


def test_missing_file_and_unknown_extension(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        fluoxr.open_video(tmp_path / "nope.tif")
    with pytest.raises(FileNotFoundError):
        fluoxr.open_video(tmp_path / "nope.tif")
    with pytest.raises(ValueError, match="no file matches"):
        fluoxr.open_video(str(tmp_path / "none_*.tif"))
    (tmp_path / "movie.avi").write_bytes(b"RIFF")
    with pytest.raises(ValueError, match="unknown extension"):
        fluoxr.open_video(tmp_path / "movie.avi")
    (tmp_path / "bad.tif").write_bytes(b"not a tiff at all")
    with pytest.raises(ValueError, match="not a readable TIFF"):
        fluoxr.open_video(tmp_path / "bad.tif")
    with pytest.raises(TypeError, match="path"):
        fluoxr.open_video(42)
    with pytest.raises(ValueError, match="empty"):
        fluoxr.open_video([])


def test_bad_fps_and_pixel_size(tmp_path, stack):
    p = tmp_path / "m.tif"
    tifffile.imwrite(p, stack)
    with pytest.raises(ValueError, match="fps"):
        fluoxr.open_video(p, fps=0)
    with pytest.raises(ValueError, match="fps"):
        fluoxr.open_video(p, fps=float("nan"))
    with pytest.raises(ValueError, match="pixel_size"):
        fluoxr.open_video(p, pixel_size=-1)


def test_info_and_read_helpers(tmp_path, stack):
    p = tmp_path / "m.tif"
    tifffile.imwrite(p, stack)
    d = fio.info(p)
    assert d["shape"] == stack.shape and d["dtype"] == "uint16" and d["fps"] is None
    assert d["size_on_disk"] == os.path.getsize(p)
    np.testing.assert_array_equal(fluoxr.read_image(p), stack)
    stat = [{"ypix": np.array([1, 2]), "xpix": np.array([3, 4]), "lam": np.ones(2)}]
    np.save(tmp_path / "stat.npy", np.array(stat, dtype=object), allow_pickle=True)
    got = fluoxr.read_suite2p_stat(tmp_path / "stat.npy")
    np.testing.assert_array_equal(got[0]["xpix"], [3, 4])
    np.save(tmp_path / "notstat.npy", np.zeros(3))
    with pytest.raises(ValueError, match="stat.npy"):
        fluoxr.read_suite2p_stat(tmp_path / "notstat.npy")


def test_resume_after_a_kill_before_the_metadata_was_written(tmp_path, stack):
    v = fluoxr.as_video(stack, chunks=5)
    p = str(tmp_path / "early.zarr")
    # killed after the plan, before the store's metadata: only the plan is there
    fluoxr.save(v, p, compute=False)
    fluoxr.io.safety._HELD.clear()  # the writer is gone, as if killed: its lock is stale
    os.remove(os.path.join(p + ".partial", "metadata.done"))
    import shutil

    shutil.rmtree(p)
    with pytest.raises(ValueError, match="interrupted write"):
        fluoxr.save(v, p)
    fluoxr.save(v, p, resume=True)
    np.testing.assert_array_equal(fluoxr.open_video(p).values, stack)
    # killed even earlier: a progress folder without a plan
    q = str(tmp_path / "earlier.zarr")
    os.makedirs(q + ".partial")
    fluoxr.save(v, q, resume=True)
    np.testing.assert_array_equal(fluoxr.open_video(q).values, stack)


def test_open_video_keeps_a_saved_time_coordinate(tmp_path, stack):
    v = fluoxr.as_video(stack, fps=2.0).isel(time=slice(10, 13))
    fluoxr.save(v, tmp_path / "slice.zarr")
    back = fluoxr.open_video(tmp_path / "slice.zarr")
    np.testing.assert_allclose(back.time.values, [5.0, 5.5, 6.0])
    assert back.attrs["fps"] == 2.0
    np.testing.assert_allclose(fluoxr.open_video(tmp_path / "slice.zarr", fps=4).time.values, [0, 0.25, 0.5])


@pytest.mark.parametrize(
    "meta, fps",
    [({"finterval": 50, "tunit": "ms"}, 20.0), ({"finterval": 0.05, "fps": 7.0}, 20.0),
     ({"finterval": 2, "tunit": "min"}, 1 / 120), ({"fps": 7.0}, 7.0), ({"finterval": 1, "tunit": "fortnight"}, None)],
)
def test_imagej_frame_interval_and_unit(tmp_path, stack, meta, fps):
    p = tmp_path / "ij.tif"
    tifffile.imwrite(p, stack, imagej=True, metadata=dict(axes="TYX", **meta))
    got = fluoxr.open_video(p).attrs.get("fps")
    assert (got is None) if fps is None else got == pytest.approx(fps)


def test_shape_and_dtype_only_for_raw_binaries(tmp_path, stack):
    np.save(tmp_path / "a.npy", stack)
    with pytest.raises(ValueError, match="shape and dtype"):
        fluoxr.open_video(tmp_path / "a.npy", dtype=np.float32)
    stack.astype(np.int16).tofile(tmp_path / "data.bin")
    with pytest.raises(ValueError, match=r"shape\[0\]"):
        fluoxr.open_video(tmp_path / "data.bin", shape=(4.5, 11))
