"""TIFF, PNG and movie export: values, metadata and colours read back; data safety; chunk-by-chunk writing."""

from __future__ import annotations

import os
import shutil

import dask
import dask.array as da
import numpy as np
import pytest
import tifffile
import xarray as xr
from dask.callbacks import Callback

import fluoxr
import fluoxr.plot
from fluoxr.io import export
from fluoxr.testing.references import colour_map as ref_colour_map


@pytest.fixture
def video():
    data = np.random.default_rng(3).integers(0, 4000, (23, 6, 9)).astype(np.uint16)
    return fluoxr.as_video(data, fps=8.0, pixel_size=0.16).chunk({"time": 5})


def _leftovers(folder):
    return sorted(n for n in os.listdir(folder) if n.startswith(".") or n.endswith(".lock"))


# ------------------------------------------------------------------------------------------- TIFF


def test_tiff_round_trip_video_values_and_imagej_metadata(video, tmp_path):
    path = tmp_path / "movie.tif"
    assert fluoxr.save_tiff(video, path) == str(path)
    with tifffile.TiffFile(path) as t:
        assert t.is_imagej and not t.is_bigtiff
        assert t.series[0].axes == "TYX"
        np.testing.assert_array_equal(t.asarray(), video.values)
        assert t.imagej_metadata["finterval"] == pytest.approx(1 / 8.0)
        assert t.imagej_metadata["unit"] == "um"
        assert t.pages[0].resolution == pytest.approx((1 / 0.16, 1 / 0.16))
    # fluoxr reads it back with its frame rate
    back = fluoxr.open_video(path)
    assert back.attrs["fps"] == pytest.approx(8.0)
    np.testing.assert_array_equal(back.values, video.values)
    assert _leftovers(tmp_path) == []


def test_tiff_float64_image_and_order_stack(tmp_path):
    v = fluoxr.as_video(np.random.default_rng(0).random((40, 7, 5)) * 100)
    ds = fluoxr.sofi_images(v, 3).compute()
    fluoxr.save_tiff(ds.cumulants, tmp_path / "k.tif")
    with tifffile.TiffFile(tmp_path / "k.tif") as t:
        assert t.series[0].axes == "TYX" and t.series[0].dtype == np.float32  # ImageJ reads no float64
        np.testing.assert_allclose(t.asarray(), ds.cumulants.values, rtol=1e-6)
    fluoxr.save_tiff(ds.mean_image.values, tmp_path / "mean.tif")
    np.testing.assert_allclose(tifffile.imread(tmp_path / "mean.tif"), ds.mean_image.values, rtol=1e-6)


def test_tiff_hyperstack_axes_in_imagej_order(tmp_path):
    data = np.arange(4 * 2 * 3 * 5, dtype=np.uint16).reshape(4, 2, 3, 5)
    arr = xr.DataArray(data, dims=("channel", "time", "y", "x"))  # ImageJ wants T before C
    fluoxr.save_tiff(arr, tmp_path / "h.tif")
    with tifffile.TiffFile(tmp_path / "h.tif") as t:
        assert t.series[0].axes == "TCYX"
        np.testing.assert_array_equal(t.asarray(), data.transpose(1, 0, 2, 3))


def test_tiff_bigtiff(video, tmp_path):
    fluoxr.save_tiff(video, tmp_path / "big.tif", bigtiff=True)
    with tifffile.TiffFile(tmp_path / "big.tif") as t:
        assert t.is_bigtiff
        np.testing.assert_array_equal(t.asarray(), video.values)
        assert t.imagej_metadata["finterval"] == pytest.approx(1 / 8.0)


@pytest.mark.parametrize("contrast", [None, (500.0, 3000.0), ("2%", "98%"), ("0%", 2500)])
def test_tiff_colour_mapped_rgb(video, tmp_path, contrast):
    path = tmp_path / "rgb.tif"
    fluoxr.save_tiff(video, path, colormap="pink", contrast=contrast)
    lo, hi = export.contrast_range(video.values, contrast)
    with tifffile.TiffFile(path) as t:
        assert t.series[0].axes == "TYXS" and t.series[0].dtype == np.uint8
        got = t.asarray()
    np.testing.assert_array_equal(got, ref_colour_map(video.values, "pink", lo, hi))
    if contrast is None:
        assert (lo, hi) == (video.values.min(), video.values.max())


def test_contrast_range_percentiles():
    x = np.arange(1001.0)
    assert export.contrast_range(x, ("1%", "99.5%")) == pytest.approx((10.0, 995.0))
    lazy = fluoxr.as_video(np.arange(200 * 4.0).reshape(200, 2, 2)).chunk({"time": 7})
    lo, hi = export.contrast_range(lazy.data)
    assert (lo, hi) == (0.0, 799.0)  # min and max are exact, whatever the sampling of frames
    assert export.contrast_range(lazy.data, ("50%", "100%"))[0] == pytest.approx(399.5, abs=8)


def test_tiff_of_a_lazy_video_is_computed_a_few_chunks_at_a_time(tmp_path, monkeypatch):
    monkeypatch.setattr(export, "_batch", lambda: 2)
    seen: list[list[int]] = []

    class PerCompute(Callback):
        def _start(self, dsk):
            seen.append([])

    def mark(block, block_info=None):
        seen[-1].append(block_info[0]["chunk-location"][0])
        return block

    data = da.from_array(np.random.default_rng(1).random((30, 4, 5)), chunks=(3, 4, 5))
    lazy = fluoxr.as_video(data.map_blocks(mark, dtype=data.dtype))
    with dask.config.set(scheduler="sync"), PerCompute():
        fluoxr.save_tiff(lazy, tmp_path / "v.tif")
    chunks_per_compute = [len(s) for s in seen if s]
    assert sum(chunks_per_compute) == 10 and max(chunks_per_compute) <= 2  # never the whole video
    np.testing.assert_allclose(tifffile.imread(tmp_path / "v.tif"), data.compute(), rtol=1e-6)


def test_tiff_data_safety(video, tmp_path, unchanged):
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, video.values)
    unchanged(src)
    opened = fluoxr.open_video(src)
    with pytest.raises(ValueError, match="input"):
        fluoxr.save_tiff(opened, src, overwrite=True)  # never onto an input
    with pytest.raises(ValueError, match="input"):
        fluoxr.save_tiff(fluoxr.fourier_interpolate(opened, 2), src, overwrite=True)
    out = tmp_path / "out.tif"
    fluoxr.save_tiff(opened, out)
    with pytest.raises(ValueError, match="already exists"):
        fluoxr.save_tiff(opened, out)
    fluoxr.save_tiff(opened[:3], out, overwrite=True)
    assert tifffile.imread(out).shape == (3, 6, 9)
    (tmp_path / "folder.tif").mkdir()
    with pytest.raises(ValueError, match="folder"):
        fluoxr.save_tiff(opened, tmp_path / "folder.tif", overwrite=True)
    assert _leftovers(tmp_path) == []


def test_tiff_failure_midway_leaves_nothing(tmp_path):
    def boom(block, block_info=None):
        if block_info[0]["chunk-location"][0] == 3:
            raise RuntimeError("disk on fire")
        return block

    data = da.zeros((20, 4, 4), chunks=(2, 4, 4)).map_blocks(boom, dtype=float)
    path = tmp_path / "half.tif"
    with pytest.raises(RuntimeError, match="disk on fire"):
        fluoxr.save_tiff(fluoxr.as_video(data), path)
    assert not path.exists() and _leftovers(tmp_path) == []
    # an existing file survives a failed overwrite
    fluoxr.save_tiff(np.ones((3, 3)), path)
    with pytest.raises(RuntimeError):
        fluoxr.save_tiff(fluoxr.as_video(data), path, overwrite=True)
    np.testing.assert_array_equal(tifffile.imread(path), np.ones((3, 3)))


# ------------------------------------------------------------------------------------------- PNG


def test_png_colours_and_scale(tmp_path):
    from PIL import Image

    img = np.random.default_rng(5).random((7, 11))
    img[2, 3] = np.nan
    fluoxr.plot.save_png(img, tmp_path / "a.png", cmap="magma", contrast=(0.2, 0.8))
    got = np.asarray(Image.open(tmp_path / "a.png").convert("RGB"))
    np.testing.assert_array_equal(got, ref_colour_map(img, "magma", 0.2, 0.8))
    fluoxr.plot.save_png(img, tmp_path / "b.png", scale=3)
    got = np.asarray(Image.open(tmp_path / "b.png").convert("RGB"))
    assert got.shape == (21, 33, 3)
    np.testing.assert_array_equal(got[::3, ::3], ref_colour_map(img, "pink", np.nanmin(img), np.nanmax(img)))
    with pytest.raises(ValueError, match="already exists"):
        fluoxr.plot.save_png(img, tmp_path / "b.png")


# ------------------------------------------------------------------------------------------- movies


def test_gif_frames_are_the_colour_mapped_frames(video, tmp_path):
    from PIL import Image

    path = tmp_path / "m.gif"
    fluoxr.plot.save_movie(video, path, cmap="viridis", contrast=(100, 3900))
    g = Image.open(path)
    assert g.n_frames == video.sizes["time"] and g.info["duration"] == 130  # 8 fps, in 10 ms steps
    for i in (0, 7, 22):
        g.seek(i)
        np.testing.assert_array_equal(np.asarray(g.convert("RGB")),
                                      ref_colour_map(video.values[i], "viridis", 100, 3900))


def test_mp4_frames_size_and_rate(video, tmp_path):
    pytest.importorskip("imageio_ffmpeg")
    import imageio_ffmpeg

    path = tmp_path / "m.mp4"
    fluoxr.plot.save_movie(video, path, fps=12, scale=2)  # 12 x 18, even
    reader = imageio_ffmpeg.read_frames(str(path))
    meta = next(reader)
    frames = [np.frombuffer(f, np.uint8).reshape(12, 18, 3) for f in reader]
    assert meta["size"] == (18, 12) and meta["fps"] == pytest.approx(12) and len(frames) == 23
    ref = ref_colour_map(video.values[5], "pink", video.values.min(), video.values.max())
    assert np.abs(frames[5][::2, ::2].astype(int) - ref).mean() < 12  # H.264 is lossy
    # odd sizes are padded to even ones
    fluoxr.plot.save_movie(video[:, :5, :7], tmp_path / "odd.mp4")
    meta = next(imageio_ffmpeg.read_frames(str(tmp_path / "odd.mp4")))
    assert meta["size"] == (8, 6)


def test_mp4_without_ffmpeg_names_the_extra(video, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "imageio_ffmpeg", None)
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ImportError, match=r"fluoxr\[movie\]"):
        fluoxr.plot.save_movie(video, tmp_path / "m.mp4")
    assert not (tmp_path / "m.mp4").exists()


def test_movie_data_safety(tmp_path, unchanged):
    src = tmp_path / "in.tif"
    tifffile.imwrite(src, np.zeros((4, 6, 6), np.uint16), photometric="minisblack")
    unchanged(src)
    with pytest.raises(ValueError, match="must end in .mp4 or .gif"):
        fluoxr.plot.save_movie(fluoxr.open_video(src), src, overwrite=True)
    gif = tmp_path / "in.gif"
    fluoxr.plot.save_movie(fluoxr.open_video(src), gif)
    with pytest.raises(ValueError, match="already exists"):
        fluoxr.plot.save_movie(fluoxr.open_video(src), gif)
    assert _leftovers(tmp_path) == []
