"""Data safety of the readers: files that change, truncated or corrupt files, ambiguous axes,
malformed metadata, and float16 videos.

Every test works in its own ``tmp_path``, and every test that opens an input checks that
the input's bytes are unchanged afterwards (fluoxr opens inputs read-only).
"""

from __future__ import annotations

import hashlib
import os
import pickle

import cloudpickle
import dask
import numpy as np
import pytest
import tifffile
import xarray as xr

import fluoxr
from fluoxr.io import _RawReader


def _sha256(path: os.PathLike | str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@pytest.fixture
def frames() -> np.ndarray:
    rng = np.random.default_rng(7)
    return rng.integers(0, 60000, (12, 16, 20), dtype=np.uint16)


def _cut(src, dst, n_bytes: int) -> None:
    """Copy the first ``n_bytes`` of ``src`` to ``dst`` (a truncated copy; ``src`` is kept)."""
    with open(src, "rb") as fh:
        data = fh.read(n_bytes)
    with open(dst, "wb") as fh:
        fh.write(data)


# -- paths and fingerprints --------------------------------------------------------------------


def test_relative_path_reads_the_same_file_after_chdir(tmp_path, monkeypatch, frames):
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    tifffile.imwrite(here / "a.tif", frames)
    # a different file of the same name where the worker would run
    tifffile.imwrite(elsewhere / "a.tif", frames[::-1].copy())
    digest = _sha256(here / "a.tif")
    monkeypatch.chdir(here)
    v = fluoxr.open_video("a.tif", chunks=5)
    assert v.attrs["source"] == str(here / "a.tif")
    monkeypatch.chdir(elsewhere)
    np.testing.assert_array_equal(v.values, frames)
    # the graph as a process-based worker receives it
    graph = cloudpickle.loads(cloudpickle.dumps(dict(v.data.__dask_graph__())))
    got = dask.get(graph, list(dask.core.flatten(v.data.__dask_keys__())))
    np.testing.assert_array_equal(np.concatenate(got), frames)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(v)).values, frames)
    assert _sha256(here / "a.tif") == digest


def test_files_fingerprint_every_input(tmp_path, frames):
    a, b = tmp_path / "a.tif", tmp_path / "b.tif"
    tifffile.imwrite(a, frames)
    tifffile.imwrite(b, frames, compression="zlib")
    digests = [_sha256(a), _sha256(b)]
    v = fluoxr.open_video([a, b])
    reader = next(x for x in v.data.__dask_graph__().values() if hasattr(x, "files"))
    files = reader.files()
    assert [f[0] for f in files] == [str(a), str(b)]
    for (path, size, mtime), p in zip(files, (a, b)):
        assert (size, mtime) == (os.stat(p).st_size, os.stat(p).st_mtime_ns)
    assert reader.paths == (str(a), str(b))
    # small and picklable: no handle, no pixel data
    assert len(pickle.dumps(reader)) < 4000
    assert [_sha256(a), _sha256(b)] == digests


def _write(kind: str, path, frames: np.ndarray) -> str:
    if kind == "tif":
        tifffile.imwrite(path, frames)
    elif kind == "tif-zlib":
        tifffile.imwrite(path, frames, compression="zlib")
    elif kind == "npy":
        np.save(path, frames)
    elif kind == "h5":
        import h5py

        with h5py.File(path, "w") as f:
            f["video"] = frames
    else:
        frames.astype(np.int16).tofile(path)
    return str(path)


_SUFFIX = {"tif": ".tif", "tif-zlib": ".tif", "npy": ".npy", "h5": ".h5", "bin": ".bin"}
_KINDS = ["tif", "tif-zlib", "npy", "h5", "bin"]


def _open(kind: str, path: str) -> xr.DataArray:
    return fluoxr.open_video(path, chunks=4, **({"shape": (16, 20)} if kind == "bin" else {}))


@pytest.mark.parametrize("kind", _KINDS)
def test_file_rewritten_with_same_size_is_refused(tmp_path, frames, kind):
    if kind == "h5":
        pytest.importorskip("h5py")
    path = _write(kind, tmp_path / f"v{_SUFFIX[kind]}", frames)
    v = _open(kind, path)
    # new content of the same size, as a second acquisition saved under the same name
    _write(kind, tmp_path / f"w{_SUFFIX[kind]}", frames[::-1].copy())
    with open(tmp_path / f"w{_SUFFIX[kind]}", "rb") as src:
        data = src.read()
    before = os.stat(path)
    with open(path, "r+b") as fh:
        fh.write(data[: before.st_size])
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns + 5_000_000_000))
    assert os.path.getsize(path) == before.st_size
    digest = _sha256(path)
    with pytest.raises(ValueError, match=rf"{os.path.basename(path)}.*changed since it was opened \(modified"):
        v.values
    assert _sha256(path) == digest


@pytest.mark.parametrize("kind", _KINDS)
def test_file_rewritten_with_other_size_is_refused(tmp_path, frames, kind):
    if kind == "h5":
        pytest.importorskip("h5py")
    path = _write(kind, tmp_path / f"v{_SUFFIX[kind]}", frames)
    v = _open(kind, path)
    v.isel(time=0).values  # readable as opened
    size = os.path.getsize(path)
    _write(kind, path, np.concatenate([frames, frames]))
    digest = _sha256(path)
    with pytest.raises(ValueError, match=rf"{os.path.basename(path)}.*changed since it was opened "
                                         rf"\(size {size} -> \d+ bytes.*open it again with fluoxr.open_video"):
        v.values
    assert _sha256(path) == digest


def test_deleted_file_is_named(tmp_path, frames):
    path = _write("tif", tmp_path / "gone.tif", frames)
    v = fluoxr.open_video(path)
    os.remove(path)
    with pytest.raises(ValueError, match="gone.tif.*no longer exists"):
        v.values


def test_short_raw_read_names_file_and_frames(tmp_path, frames):
    path = _write("bin", tmp_path / "data.bin", frames)
    digest = _sha256(path)
    # a reader whose layout promises more frames than the file has (as a file truncated in a
    # way its size check could not see would)
    reader = _RawReader(path, np.int16, 0, (20, 16, 20), (0, 1, 2))
    np.testing.assert_array_equal(reader[0:2], frames[:2].astype(np.int16))
    with pytest.raises(ValueError, match=r"data\.bin': frames 10\.\.14 cannot be read \(wanted .* bytes .* "
                                         r"got .*\): the file is truncated or corrupt"):
        reader[10:15]
    assert _sha256(path) == digest


# -- truncated and corrupt TIFF files ----------------------------------------------------------

_TIFF_VARIANTS = {
    "contiguous": dict(),
    "bigtiff": dict(bigtiff=True),
    "zlib": dict(compression="zlib"),
    "ome": dict(ome=True, metadata={"axes": "TYX"}),
    "ome-zlib": dict(ome=True, metadata={"axes": "TYX"}, compression="zlib"),
    "ome-hyperstack": dict(ome=True, metadata={"axes": "TCYX"}),
    "imagej": dict(imagej=True, metadata={"axes": "TYX"}),
    "imagej-hyperstack": dict(imagej=True, metadata={"axes": "TCYX"}),
    "imagej-hyperstack-zlib": dict(imagej=True, metadata={"axes": "TCYX"}, compression="zlib"),
}


@pytest.mark.parametrize("variant", list(_TIFF_VARIANTS))
def test_truncated_tiff_never_opens_short_or_wrong(tmp_path, frames, variant):
    kwargs = dict(_TIFF_VARIANTS[variant])
    data = frames.reshape(6, 2, 16, 20) if "TCYX" in str(kwargs.get("metadata")) else frames
    full = tmp_path / "full.tif"
    tifffile.imwrite(full, data, **kwargs)
    size = os.path.getsize(full)
    cut = tmp_path / "cut.tif"
    refused = 0
    for n_bytes in np.linspace(0.03, 0.995, 25).__mul__(size).astype(int):
        _cut(full, cut, int(n_bytes))
        digest = _sha256(cut)
        try:
            v = fluoxr.open_video(cut, chunks=3)
        except ValueError as exc:
            assert "cut.tif" in str(exc) and ("truncated" in str(exc) or "corrupt" in str(exc)), str(exc)
            refused += 1
        else:
            try:
                got = v.values
            except ValueError as exc:
                assert "cut.tif" in str(exc) and "frame" in str(exc), str(exc)
                refused += 1
            else:
                # only a cut past every pixel (trailing directory bytes) may read, and then exactly
                expected = fluoxr.open_video(full).values
                np.testing.assert_array_equal(got, expected)
        assert _sha256(cut) == digest
    assert refused >= 20


@pytest.mark.parametrize("variant", ["ome-hyperstack", "imagej-hyperstack"])
def test_truncated_hyperstack_says_how_many_pages_its_metadata_promises(tmp_path, frames, variant):
    full = tmp_path / "full.tif"
    tifffile.imwrite(full, frames.reshape(6, 2, 16, 20), **_TIFF_VARIANTS[variant])
    with tifffile.TiffFile(full) as tif:
        # cut inside the pixels of page 7 of 12, keeping every directory tifffile needs for the first
        offset = tif.pages[7].dataoffsets[0] if variant.startswith("ome") else None
    cut = tmp_path / "cut.tif"
    if offset is None:
        # ImageJ: one block of pixels after the header
        offset = os.path.getsize(full) // 2
    _cut(full, cut, int(offset) + 10)
    digest = _sha256(cut)
    with pytest.raises(ValueError, match=r"cut\.tif.*(truncated|corrupt)") as info:
        fluoxr.open_video(cut)
    message = str(info.value)
    if variant.startswith("imagej"):
        assert "ImageJ metadata (images=12) promises 12 pages" in message
    assert _sha256(cut) == digest


def test_imagej_page_count_checked_against_metadata(tmp_path, frames):
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, frames.reshape(6, 2, 16, 20), imagej=True, metadata={"axes": "TCYX"})
    _cut(path, tmp_path / "cut.tif", os.path.getsize(path) - 4000)
    with pytest.raises(ValueError, match=r"cut\.tif': its ImageJ metadata \(images=12\) promises 12 pages, "
                                         r"the file holds \d+: the file is truncated or corrupt"):
        fluoxr.open_video(tmp_path / "cut.tif")


def test_truncated_contiguous_tiff_names_first_incomplete_frame(tmp_path, frames):
    full = tmp_path / "full.tif"
    tifffile.imwrite(full, frames, metadata=None)  # no description: nothing but the IFDs says 12 frames
    with tifffile.TiffFile(full) as tif:
        start = tif.series[0].dataoffset
    cut = tmp_path / "cut.tif"
    _cut(full, cut, os.path.getsize(full))
    with open(cut, "r+b") as fh:
        fh.truncate(start + 5 * 16 * 20 * 2 + 100)
    digest = _sha256(cut)
    with pytest.raises(ValueError, match=r"cut\.tif.*(frame 5 is the first incomplete one|truncated or corrupt)"):
        fluoxr.open_video(cut)
    assert _sha256(cut) == digest


@pytest.mark.parametrize("kwargs", [dict(), dict(ome=True, metadata={"axes": "TYX"}),
                                    dict(imagej=True, metadata={"axes": "TYX"})])
@pytest.mark.parametrize("where", ["start", "middle"])
def test_corrupt_compressed_page_names_file_and_frame(tmp_path, frames, kwargs, where):
    full = tmp_path / "full.tif"
    tifffile.imwrite(full, frames, compression="zlib", **kwargs)
    with tifffile.TiffFile(full) as tif:
        page = tif.pages[5]
        offset, count = page.dataoffsets[0], page.databytecounts[0]
    data = bytearray(full.read_bytes())
    pos = offset if where == "start" else offset + count // 2
    data[pos:pos + 4] = b"\xff\x00\xaa\x55"
    bad = tmp_path / "bad.tif"
    bad.write_bytes(bytes(data))
    digest = _sha256(bad)
    v = fluoxr.open_video(bad, chunks=4)  # the directory is intact: opens
    np.testing.assert_array_equal(v.isel(time=slice(0, 4)).values, frames[:4])
    with pytest.raises(ValueError, match=r"bad\.tif': frame 5 cannot be read \(zlib\.error: .*\): "
                                         r"the file is truncated or corrupt"):
        v.values
    assert _sha256(bad) == digest


def test_corrupt_tiff_header_is_refused_at_open(tmp_path, frames):
    path = tmp_path / "bad.tif"
    tifffile.imwrite(path, frames)
    data = bytearray(path.read_bytes())
    data[4:8] = (10**9).to_bytes(4, "little")  # first IFD beyond the end of the file
    path.write_bytes(bytes(data))
    digest = _sha256(path)
    with pytest.raises(ValueError, match=r"bad\.tif.*(truncated or corrupt|not a readable TIFF)"):
        fluoxr.open_video(path)
    assert _sha256(path) == digest


# -- axes ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(7, 9, 1), (7, 1, 1), (7, 1, 9), (7, 5, 6)])
def test_thin_frames_open_as_time_y_x(tmp_path, shape):
    data = np.arange(np.prod(shape), dtype=np.uint16).reshape(shape)
    path = tmp_path / "thin.tif"
    tifffile.imwrite(path, data)
    digest = _sha256(path)
    v = fluoxr.open_video(path, chunks=3)
    assert v.dims == ("time", "y", "x") and v.shape == shape
    np.testing.assert_array_equal(v.values, data)
    np.testing.assert_array_equal(v.isel(time=4).values, data[4])
    assert _sha256(path) == digest


@pytest.mark.parametrize("compression", [None, "zlib"])
def test_planar_rgb_opens_as_time_channel_y_x(tmp_path, compression):
    data = np.arange(5 * 3 * 4 * 6, dtype=np.uint16).reshape(5, 3, 4, 6)
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, data, photometric="rgb", planarconfig="separate", compression=compression)
    digest = _sha256(path)
    v = fluoxr.open_video(path, chunks=2)
    assert v.dims == ("time", "channel", "y", "x") and v.shape == data.shape
    np.testing.assert_array_equal(v.values, data)
    assert _sha256(path) == digest


def test_contiguous_rgb_moves_samples_to_channel(tmp_path):
    data = np.arange(5 * 4 * 6 * 3, dtype=np.uint8).reshape(5, 4, 6, 3)
    path = tmp_path / "rgb.tif"
    tifffile.imwrite(path, data, photometric="rgb")
    v = fluoxr.open_video(path)
    assert v.dims == ("time", "channel", "y", "x")
    np.testing.assert_array_equal(v.values, data.transpose(0, 3, 1, 2))


@pytest.mark.parametrize("axes", ["QYX", "IYX"])
def test_generic_axis_first_is_time(tmp_path, frames, axes):
    path = tmp_path / "q.tif"
    tifffile.imwrite(path, frames, metadata={"axes": axes})
    digest = _sha256(path)
    v = fluoxr.open_video(path)
    assert v.dims == ("time", "y", "x")
    np.testing.assert_array_equal(v.values, frames)
    assert _sha256(path) == digest


def test_image_sequence_without_metadata_is_time(tmp_path, frames):
    path = tmp_path / "i.tif"
    tifffile.imwrite(path, frames, metadata=None)
    with tifffile.TiffFile(path) as tif:
        assert tif.series[0].axes[0] == "I"
    np.testing.assert_array_equal(fluoxr.open_video(path).values, frames)


@pytest.mark.parametrize("axes", ["TQYX", "TIYX", "IQYX", "QQYX"])
def test_generic_axis_elsewhere_is_refused(tmp_path, frames, axes):
    path = tmp_path / "q.tif"
    tifffile.imwrite(path, frames.reshape(6, 2, 16, 20), metadata={"axes": axes})
    digest = _sha256(path)
    with pytest.raises(ValueError, match=rf"q\.tif': TIFF axis '[QI]' at position 1 of axes '{axes}'.*"
                                         r"time only when it is the first axis"):
        fluoxr.open_video(path)
    assert _sha256(path) == digest


# -- metadata ------------------------------------------------------------------------------------


@pytest.mark.parametrize("meta, shown", [({"fps": "abc"}, "fps='abc'"), ({"fps": -5}, "fps=-5"),
                                          ({"fps": 0}, "fps=0"), ({"finterval": "soon"}, "finterval='soon'"),
                                          ({"finterval": -0.1}, "finterval=-0.1")])
def test_imagej_bad_frame_rate_is_refused_unless_fps_given(tmp_path, frames, meta, shown, caplog):
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, frames, imagej=True, metadata={"axes": "TYX", **meta})
    digest = _sha256(path)
    with pytest.raises(ValueError, match=rf"ij\.tif': its ImageJ metadata says {shown}, which is not a frame "
                                         r"(rate|interval); pass fps= to open_video to set it"):
        fluoxr.open_video(path)
    with caplog.at_level("INFO", logger="fluoxr.io"):
        v = fluoxr.open_video(path, fps=20)
    assert v.attrs["fps"] == 20.0
    assert "ignored" in caplog.text
    np.testing.assert_array_equal(v.values, frames)
    assert _sha256(path) == digest


def test_ome_bad_time_increment_and_pixel_size(tmp_path, frames):
    path = tmp_path / "o.ome.tif"
    tifffile.imwrite(path, frames, ome=True, metadata={"axes": "TYX", "TimeIncrement": -2.0,
                                                       "PhysicalSizeX": -0.5})
    digest = _sha256(path)
    with pytest.raises(ValueError, match=r"o\.ome\.tif': its OME metadata says TimeIncrement='-2\.0', which is "
                                         r"not a frame interval; pass fps="):
        fluoxr.open_video(path, pixel_size=0.3)
    with pytest.raises(ValueError, match=r"o\.ome\.tif': its OME metadata says PhysicalSizeX='-0\.5', which is "
                                         r"not a pixel size; pass pixel_size="):
        fluoxr.open_video(path, fps=5)
    v = fluoxr.open_video(path, fps=5, pixel_size=0.3)
    assert (v.attrs["fps"], v.attrs["pixel_size"]) == (5.0, 0.3)
    assert _sha256(path) == digest


def test_ome_time_increment_in_ms(tmp_path, frames):
    path = tmp_path / "o.ome.tif"
    tifffile.imwrite(path, frames, ome=True, metadata={"axes": "TYX", "TimeIncrement": 50,
                                                       "TimeIncrementUnit": "ms"})
    assert fluoxr.open_video(path).attrs["fps"] == pytest.approx(20.0)


def test_imagej_bad_pixel_size_is_refused_unless_given(tmp_path, frames):
    path = tmp_path / "ij.tif"
    tifffile.imwrite(path, frames, imagej=True, resolution=(0.0, 1.0), metadata={"axes": "TYX", "unit": "um"})
    digest = _sha256(path)
    with pytest.raises(ValueError, match=r"ij\.tif': its ImageJ metadata says XResolution=.*not a pixel size; "
                                         r"pass pixel_size="):
        fluoxr.open_video(path)
    assert fluoxr.open_video(path, pixel_size=0.4).attrs["pixel_size"] == 0.4
    assert _sha256(path) == digest


@pytest.mark.parametrize("fs", [0, -1.5, "fast", float("nan")])
def test_suite2p_bad_fs_is_refused_unless_fps_given(tmp_path, frames, fs):
    frames.astype(np.int16).tofile(tmp_path / "data.bin")
    np.save(tmp_path / "ops.npy", {"Ly": 16, "Lx": 20, "fs": fs}, allow_pickle=True)
    digests = [_sha256(tmp_path / "data.bin"), _sha256(tmp_path / "ops.npy")]
    with pytest.raises(ValueError, match=r"ops\.npy': its suite2p ops dict says fs=.*, which is not a frame rate; "
                                         r"pass fps= to open_video"):
        fluoxr.open_video(tmp_path / "data.bin")
    v = fluoxr.open_video(tmp_path / "data.bin", fps=30)
    assert v.attrs["fps"] == 30.0
    np.testing.assert_array_equal(v.values, frames.astype(np.int16))
    assert [_sha256(tmp_path / "data.bin"), _sha256(tmp_path / "ops.npy")] == digests


def test_h5_bad_fps_attribute(tmp_path, frames):
    h5py = pytest.importorskip("h5py")
    path = tmp_path / "v.h5"
    with h5py.File(path, "w") as f:
        f["video"] = frames
        f["video"].attrs["fps"] = -3.0
    digest = _sha256(path)
    with pytest.raises(ValueError, match=r"v\.h5': its HDF5 dataset '/?video' says fps=.*pass fps="):
        fluoxr.open_video(path)
    assert fluoxr.open_video(path, fps=4).attrs["fps"] == 4.0
    assert _sha256(path) == digest


# -- float16 -------------------------------------------------------------------------------------


@pytest.fixture
def half_and_single() -> tuple[xr.DataArray, xr.DataArray]:
    rng = np.random.default_rng(3)
    t = np.arange(120)[:, None, None]
    values = (200 + 40 * np.sin(t / 9.0) + 30 * rng.random((120, 16, 20))).astype(np.float16)
    return (fluoxr.as_video(values, fps=10, chunks=25),
            fluoxr.as_video(values.astype(np.float32), fps=10, chunks=25))


def test_float16_extract_equals_float32(half_and_single):
    v16, v32 = half_and_single
    rois = fluoxr.ROISet.from_positions([(4, 5), (10, 12), (8, 3)], shape=(16, 20), size=3)
    a, b = fluoxr.extract(v16, rois, neuropil=None), fluoxr.extract(v32, rois, neuropil=None)
    assert a.F.dtype == np.float32
    np.testing.assert_array_equal(a.F.values, b.F.values)
    a, b = fluoxr.extract(v16, rois, batch=7), fluoxr.extract(v32, rois, batch=7)
    np.testing.assert_array_equal(a.Fneu.values, b.Fneu.values)


def test_float16_traces_equal_float32(half_and_single):
    v16, v32 = half_and_single
    for window in ("rect", "disc", "pixel"):
        a = fluoxr.traces(v16, [(4, 5), (10, 12)], size=3, window=window)
        b = fluoxr.traces(v32, [(4, 5), (10, 12)], size=3, window=window)
        np.testing.assert_array_equal(a.values, b.values)


@pytest.mark.parametrize("method", ["maximin", "constant", "prctile"])
def test_float16_baseline_and_dff_equal_float32(half_and_single, method):
    v16, _ = half_and_single
    tr16 = v16.isel(y=slice(0, 3)).stack(roi=("y", "x")).transpose("roi", "time").drop_vars(["roi", "y", "x"])
    tr32 = tr16.astype(np.float32)
    kw = dict(method=method, window_s=2.0, sigma_frames=2)
    a, b = fluoxr.baseline(tr16, **kw), fluoxr.baseline(tr32, **kw)
    assert a.dtype == np.float32
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(fluoxr.dff(tr16, f0=a).values, fluoxr.dff(tr32, f0=b).values)


def test_float16_dff_default_baseline_equals_float32(half_and_single):
    v16, _ = half_and_single
    tr16 = fluoxr.traces(v16, [(4, 5), (10, 12)], size=3).astype(np.float16)
    np.testing.assert_array_equal(fluoxr.dff(tr16).values, fluoxr.dff(tr16.astype(np.float32)).values)


def test_float16_video_from_file(tmp_path, half_and_single):
    v16, v32 = half_and_single
    path = tmp_path / "half.npy"
    np.save(path, v16.values)
    digest = _sha256(path)
    video = fluoxr.open_video(path, fps=10, chunks=25)
    assert video.dtype == np.float16
    a = fluoxr.traces(video, [(4, 5)], size=3)
    np.testing.assert_array_equal(a.values, fluoxr.traces(v32, [(4, 5)], size=3).values)
    assert _sha256(path) == digest
