"""OME-Zarr (NGFF 0.5) results: every store fluoxr writes is validated by ome-zarr-models and read by ome-zarr-py.

Each test writes with ``fluoxr.save(..., format="ome-zarr")`` (or a ``.ome.zarr`` path), then checks the store
with both validators (:func:`_check_store`), and round trips through ``open_result`` and ``open_video``.
"""

from __future__ import annotations

import json
import os

import dask
import numpy as np
import pytest
import xarray as xr
import zarr

import fluoxr
from fluoxr import io as fio
from fluoxr.io.ome_zarr import PYRAMID_MIN_SIDE, downsample_mean, downsample_nearest
from fluoxr.testing import raise_if_dask_computes

# -- the validators -----------------------------------------------------------------------------


def _ome_groups(path: str) -> dict[str, dict]:
    """Every group of the store with an ``ome`` block: relative path -> that block."""
    found = {}
    for root, _, names in os.walk(path):
        if "zarr.json" not in names:
            continue
        with open(os.path.join(root, "zarr.json")) as fh:
            meta = json.load(fh)
        if meta.get("node_type") == "group" and "ome" in (meta.get("attributes") or {}):
            found[os.path.relpath(root, path).replace(os.sep, "/").removeprefix(".")] = meta["attributes"]["ome"]
    return found


def _check_store(path, *, images: int = 1, labels: int = 0) -> dict[str, dict]:
    """Validate every OME group with ome-zarr-models (v0.5) and read the store with ome-zarr-py's reader."""
    models_image = pytest.importorskip("ome_zarr_models.v05.image")
    models_labels = pytest.importorskip("ome_zarr_models.v05.labels")
    models_label = pytest.importorskip("ome_zarr_models.v05.image_label")
    pytest.importorskip("ome_zarr.reader")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Label, Multiscales, Reader

    path = os.fspath(path)
    groups = _ome_groups(path)
    n_images = n_labels = 0
    for rel, ome in groups.items():
        assert ome["version"] == "0.5", (rel, ome)
        group = zarr.open_group(path, path=rel or None, mode="r") if rel else zarr.open_group(path, mode="r")
        if "image-label" in ome:
            models_label.ImageLabel.from_zarr(group)
            n_labels += 1
        elif "multiscales" in ome:
            models_image.Image.from_zarr(group)  # validates its labels group too
            n_images += 1
        elif "labels" in ome:
            models_labels.Labels.from_zarr(group)
    assert (n_images, n_labels) == (images, labels), groups.keys()

    # ome-zarr-py's reader: axes, scale and levels of each image, and the labels it finds
    for rel, ome in groups.items():
        if "multiscales" not in ome or "image-label" in ome:
            continue
        nodes = list(Reader(parse_url(os.path.join(path, rel) if rel else path))())
        image = nodes[0]
        assert image.load(Multiscales) is not None
        ms = ome["multiscales"][0]
        assert image.metadata["axes"] == ms["axes"]
        assert len(image.data) == len(ms["datasets"])
        for level, arr in enumerate(image.data):
            assert arr.shape == zarr.open_array(path, path=f"{rel + '/' if rel else ''}{level}", mode="r").shape
        assert image.metadata["coordinateTransformations"] == [d["coordinateTransformations"] for d in ms["datasets"]]
        found_labels = [n for n in nodes if n.load(Label) is not None]
        n_own = len((groups.get(f"{rel}/labels" if rel else "labels") or {}).get("labels", []))
        assert len(found_labels) == n_own
    return groups


def _scale(ome: dict, level: int = 0) -> list[float]:
    return ome["multiscales"][0]["datasets"][level]["coordinateTransformations"][0]["scale"]


def _translation(ome: dict, level: int = 0) -> list[float] | None:
    t = ome["multiscales"][0]["datasets"][level]["coordinateTransformations"]
    return t[1]["translation"] if len(t) > 1 else None


def _axes(ome: dict) -> list[tuple]:
    return [(a["name"], a["type"], a.get("unit")) for a in ome["multiscales"][0]["axes"]]


def _levels(ome: dict) -> int:
    return len(ome["multiscales"][0]["datasets"])


# -- the downsampling kernels against plain loops ------------------------------------------------


def _mean_reference(a: np.ndarray) -> np.ndarray:
    """2x2 block means of the last two axes by explicit loops (odd sides: the partial block's mean)."""
    a = np.asarray(a, np.float64)
    ny, nx = (a.shape[-2] + 1) // 2, (a.shape[-1] + 1) // 2
    out = np.empty(a.shape[:-2] + (ny, nx))
    for i in range(ny):
        for j in range(nx):
            out[..., i, j] = np.nanmean(a[..., 2 * i : 2 * i + 2, 2 * j : 2 * j + 2], axis=(-2, -1))
    return out


@pytest.mark.parametrize("shape", [(4, 6), (5, 7), (3, 5, 4), (1, 1)])
def test_downsample_kernels_against_loops(shape):
    rng = np.random.default_rng(0)
    a = rng.normal(size=shape)
    axes = (a.ndim - 2, a.ndim - 1)
    np.testing.assert_allclose(downsample_mean(a, axes), _mean_reference(a))
    ints = rng.integers(0, 60000, shape).astype(np.uint16)
    np.testing.assert_array_equal(downsample_mean(ints, axes), np.rint(_mean_reference(ints)).astype(np.uint16))
    np.testing.assert_array_equal(downsample_nearest(ints, axes), ints[..., ::2, ::2])


def test_downsample_mean_ignores_nan():
    a = np.array([[np.nan, 1.0], [3.0, np.nan]])
    assert downsample_mean(a, (0, 1)).tolist() == [[2.0]]
    assert np.isnan(downsample_mean(np.full((2, 2), np.nan), (0, 1))).all()


# -- images -------------------------------------------------------------------------------------


def test_image_with_pyramid_round_trips(tmp_path):
    rng = np.random.default_rng(1)
    img = xr.DataArray(rng.normal(size=(300, 270)).astype(np.float32), dims=("y", "x"), name="mean",
                       coords={"y": np.arange(300), "x": np.arange(270)}, attrs={"pixel_size": 0.2, "note": "x"})
    path = fluoxr.save(img, tmp_path / "img.ome.zarr")  # the suffix picks the format
    groups = _check_store(path)
    ome = groups[""]
    assert _axes(ome) == [("y", "space", "micrometer"), ("x", "space", "micrometer")]
    assert _levels(ome) == 2  # 300 x 270 -> 150 x 135, below 256: two levels
    assert _scale(ome, 0) == pytest.approx([0.2, 0.2]) and _scale(ome, 1) == pytest.approx([0.4, 0.4])
    assert _translation(ome, 0) is None and _translation(ome, 1) == pytest.approx([0.1, 0.1])
    back = fluoxr.open_result(path)
    xr.testing.assert_identical(back.compute(), img)
    opened = fluoxr.open_video(path)
    np.testing.assert_array_equal(opened.values, img.values)
    small = fluoxr.open_video(path, level=1)
    assert small.dims == ("y", "x") and small.attrs["pixel_size"] == pytest.approx(0.4)
    np.testing.assert_allclose(small.values, _mean_reference(img.values).astype(np.float32))


@pytest.mark.parametrize("side,levels", [(PYRAMID_MIN_SIDE - 1, 1), (PYRAMID_MIN_SIDE, 2), (2 * PYRAMID_MIN_SIDE, 3)])
def test_pyramid_levels(tmp_path, side, levels):
    img = xr.DataArray(np.ones((side, side + 3), np.uint16), dims=("y", "x"), name="img")
    path = fluoxr.save(img, tmp_path / "p.zarr", format="ome-zarr")
    assert _levels(_check_store(path)[""]) == levels


def test_sofi_stack_orders_are_channels(tmp_path):
    video, _ = fluoxr.datasets.oscillating_sheet(n_frames=12, shape=(40, 36), chunks=4, seed=1)
    stack = fluoxr.sofi.cumulants(video, orders=3)  # ('order', 'y', 'x') with a lazy mean_image coordinate
    path = fluoxr.save(stack, tmp_path / "sofi.ome.zarr")
    ome = _check_store(path)[""]
    assert _axes(ome) == [("c", "channel", None), ("y", "space", None), ("x", "space", None)]
    assert _scale(ome) == [1.0, 1.0, 1.0]
    back = fluoxr.open_result(path)
    xr.testing.assert_identical(back.compute(), stack.compute())
    opened = fluoxr.open_video(path)
    assert opened.dims == ("order", "y", "x")
    np.testing.assert_array_equal(opened.values, stack.values)


def test_fourier_interpolated_image_scale_and_translation(tmp_path):
    rng = np.random.default_rng(2)
    crop = xr.DataArray(rng.normal(size=(20, 24)), dims=("y", "x"), name="sofi",
                        coords={"y": np.arange(10, 30), "x": np.arange(5, 29)}, attrs={"pixel_size": 0.1})
    fine = fluoxr.sofi.image.fourier_interpolate(crop, 2)
    assert fine.y.values[1] - fine.y.values[0] == 0.5
    path = fluoxr.save(fine, tmp_path / "fine.ome.zarr")
    ome = _check_store(path)[""]
    assert _scale(ome) == pytest.approx([0.05, 0.05])  # coordinate step x pixel size
    assert _translation(ome) == pytest.approx([1.0, 0.5])  # first coordinate x pixel size
    xr.testing.assert_identical(fluoxr.open_result(path).compute(), fine.compute())


# -- videos and labels --------------------------------------------------------------------------


def test_video_with_fps_and_pixel_size(tmp_path):
    data = np.random.default_rng(3).integers(0, 4000, (9, 24, 20)).astype(np.uint16)
    video = fluoxr.as_video(data, fps=20.0, pixel_size=0.65, chunks=2)
    path = fluoxr.save(video, tmp_path / "v.zarr", format="ome-zarr")
    ome = _check_store(path)[""]
    assert _axes(ome) == [("t", "time", "second"), ("y", "space", "micrometer"), ("x", "space", "micrometer")]
    assert _scale(ome) == pytest.approx([0.05, 0.65, 0.65])
    assert zarr.open_array(path, path="0", mode="r").chunks == (2, 24, 20)
    xr.testing.assert_identical(fluoxr.open_result(path).compute(), video.compute())
    with raise_if_dask_computes():
        opened = fluoxr.open_video(path)
    assert opened.attrs["fps"] == 20.0 and opened.attrs["pixel_size"] == 0.65
    xr.testing.assert_equal(opened.compute(), video.compute())


def test_five_dim_video_in_ngff_order(tmp_path):
    data = np.random.default_rng(9).normal(size=(4, 3, 2, 10, 12)).astype(np.float32)
    video = fluoxr.as_video(data, fps=2.0, pixel_size=1.5)  # ("time", "z", "channel", "y", "x")
    path = fluoxr.save(video, tmp_path / "5d.ome.zarr")
    ome = _check_store(path)[""]
    assert _axes(ome) == [("t", "time", "second"), ("c", "channel", None), ("z", "space", None),
                          ("y", "space", "micrometer"), ("x", "space", "micrometer")]
    assert _scale(ome) == pytest.approx([0.5, 1.0, 1.0, 1.5, 1.5])
    assert zarr.open_array(path, path="0", mode="r").shape == (4, 2, 3, 10, 12)
    xr.testing.assert_identical(fluoxr.open_result(path).compute(), video.compute())
    opened = fluoxr.open_video(path, chunks=1)
    assert opened.dims == video.dims and opened.chunks[0] == (1, 1, 1, 1)
    np.testing.assert_array_equal(opened.values, data)

def test_video_and_its_oscillation_labels_are_one_image(tmp_path):
    video, truth = fluoxr.datasets.oscillating_sheet(n_frames=16, shape=(32, 30), chunks=4, seed=4)
    labels = fluoxr.oscillations.detect(video, period_s=truth.period_s, min_cluster_size=3)
    ds = xr.Dataset({"video": video, "oscillations": labels})
    path = fluoxr.save(ds, tmp_path / "osc.ome.zarr")
    groups = _check_store(path, images=1, labels=1)
    assert groups["labels"] == {"version": "0.5", "labels": ["oscillations"]}
    label = groups["labels/oscillations"]["image-label"]
    assert label["version"] == "0.5" and label["source"] == {"image": "../../"}
    assert {c["label-value"]: c["rgba"] for c in label["colors"]} == {1: [228, 26, 28, 255], 2: [55, 126, 184, 255]}
    assert {p["label-value"]: p["name"] for p in label["properties"]} == {1: "influx", 2: "efflux"}
    assert _axes(groups["labels/oscillations"]) == _axes(groups[""])
    assert zarr.open_array(path, path="labels/oscillations/0", mode="r").dtype == np.int8
    back = fluoxr.open_result(path)
    xr.testing.assert_identical(back.compute(), ds.compute())
    opened = fluoxr.open_video(f"{path}::labels/oscillations")
    np.testing.assert_array_equal(opened.values, labels.values)
    np.testing.assert_array_equal(fluoxr.open_video(path).values, video.values)


def test_roi_label_image_of_a_sofi_image_and_a_lone_label_image(tmp_path):
    rng = np.random.default_rng(5)
    image = xr.DataArray(rng.normal(size=(30, 28)), dims=("y", "x"))
    roi_labels = xr.DataArray(rng.integers(0, 4, (30, 28)).astype(np.int32), dims=("y", "x"))
    ds = xr.Dataset({"sofi": image, "roi_labels": roi_labels})
    path = fluoxr.save(ds, tmp_path / "rois.ome.zarr")
    groups = _check_store(path, images=1, labels=1)
    assert "colors" not in groups["labels/roi_labels"]["image-label"]  # no flag meanings: the viewer's colours
    xr.testing.assert_identical(fluoxr.open_result(path).compute(), ds)
    lone = xr.DataArray(np.tile(np.arange(300, dtype=np.uint8) % 5, (260, 1)), dims=("y", "x"), name="labels_img")
    path = fluoxr.save(lone, tmp_path / "lone.ome.zarr")
    ome = _check_store(path)[""]
    assert _levels(ome) == 2 and _translation(ome, 1) is None  # nearest: labels are never averaged
    np.testing.assert_array_equal(fluoxr.open_video(path, level=1).values, lone.values[::2, ::2])


def test_several_images_are_groups_of_their_own(tmp_path):
    rng = np.random.default_rng(6)
    ds = xr.Dataset({"mean": (("y", "x"), rng.normal(size=(8, 9))), "std": (("y", "x"), rng.normal(size=(8, 9))),
                     "trace": (("time",), np.arange(5.0))}, attrs={"what": "both"})
    path = fluoxr.save(ds, tmp_path / "two.ome.zarr")
    groups = _check_store(path, images=2)
    assert set(groups) == {"mean", "std"}
    xr.testing.assert_identical(fluoxr.open_result(path).compute(), ds)
    with pytest.raises(ValueError, match="several images"):
        fluoxr.open_video(path)
    np.testing.assert_array_equal(fluoxr.open_video(f"{path}::std").values, ds["std"].values)


def test_stores_other_tools_wrote(tmp_path):
    pytest.importorskip("ome_zarr.writer")
    from ome_zarr.writer import write_image, write_labels

    data = np.arange(4 * 64 * 48, dtype=np.uint16).reshape(4, 64, 48)
    group = zarr.open_group(tmp_path / "other.ome.zarr", mode="w")
    write_image(data, group, axes="tyx", scale={"t": 0.05, "y": 0.2, "x": 0.2},
                axes_units={"t": "second", "y": "micrometer", "x": "micrometer"})
    write_labels((data % 3).astype(np.uint8), group, name="cells", axes="tyx")
    path = str(tmp_path / "other.ome.zarr")
    with raise_if_dask_computes():
        video = fluoxr.open_video(path)
    assert video.dims == ("time", "y", "x") and video.attrs["fps"] == pytest.approx(20.0)
    assert video.attrs["pixel_size"] == pytest.approx(0.2)
    np.testing.assert_array_equal(video.values, data)
    assert fluoxr.open_video(path, level=1).attrs["pixel_size"] == pytest.approx(0.4)
    np.testing.assert_array_equal(fluoxr.open_video(f"{path}::labels/cells").values, data % 3)
    with pytest.raises(ValueError, match="level must be below"):
        fluoxr.open_video(path, level=9)
    with pytest.raises(ValueError, match="fluoxr did not write"):
        fluoxr.open_result(path)


def test_chunking_does_not_change_the_store(tmp_path):
    data = np.random.default_rng(7).normal(size=(7, 260, 258)).astype(np.float32)
    stores = []
    for i, chunks in enumerate([1, 3, 7]):
        path = fluoxr.save(fluoxr.as_video(data, fps=5.0, chunks=chunks), tmp_path / f"c{i}.ome.zarr")
        stores.append([zarr.open_array(path, path=str(k), mode="r")[...] for k in range(2)])
    for other in stores[1:]:
        for a, b in zip(stores[0], other):
            np.testing.assert_array_equal(a, b)


# -- resume and data safety ---------------------------------------------------------------------


def _tree(path: str) -> dict[str, bytes]:
    out = {}
    for root, _, names in os.walk(path):
        for n in names:
            full = os.path.join(root, n)
            rel = os.path.relpath(full, path)
            if n == "zarr.json":
                with open(full) as fh:
                    meta = json.load(fh)
                out[rel] = json.dumps(meta, sort_keys=True).encode()
            elif "/fluoxr/" not in "/" + rel.replace(os.sep, "/"):
                with open(full, "rb") as fh:
                    out[rel] = fh.read()
    return out


def test_resume_after_interruption_gives_the_same_store(tmp_path, monkeypatch):
    data = np.random.default_rng(8).integers(0, 500, (6, 260, 256)).astype(np.uint16)
    video = fluoxr.as_video(data, fps=4.0, chunks=1)
    labels = (video > 250).astype(np.int8).rename("labels")
    ds = xr.Dataset({"video": video, "labels": labels})
    path = str(tmp_path / "r.ome.zarr")
    original = fio.store._write_block
    calls = []

    def failing(block, store, var, region, marker):
        calls.append(var)
        if len(calls) > 5:
            raise RuntimeError("interrupted")
        return original(block, store, var, region, marker)

    monkeypatch.setattr(fio.store, "_write_block", failing)
    with pytest.raises(RuntimeError, match="interrupted"), dask.config.set(scheduler="synchronous"):
        fluoxr.save(ds, path)
    monkeypatch.setattr(fio.store, "_write_block", original)
    with pytest.raises(ValueError, match="interrupted"):
        fluoxr.open_result(path)
    written = []
    monkeypatch.setattr(fio.store, "_write_block",
                        lambda b, s, v, r, m: written.append(v) or original(b, s, v, r, m))
    fluoxr.save(ds, path, resume=True)
    total_chunks = 6 * 2 * 2  # two images of 6 one-frame chunks at two levels
    assert len(written) == total_chunks - 5
    reference = str(tmp_path / "ref.ome.zarr")
    fluoxr.save(ds, reference)
    assert _tree(path) == _tree(reference)
    _check_store(path, images=1, labels=1)
    xr.testing.assert_identical(fluoxr.open_result(path).compute(), ds.compute())
    with pytest.raises(ValueError, match="different"):
        fluoxr.save(ds, path, resume=True, format="zarr")  # another layout is another write


def test_data_safety_refusals(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    src = folder / "rec.ome.zarr"
    fluoxr.save(fluoxr.as_video(np.ones((4, 8, 8), np.uint16), fps=2.0), src)
    video = fluoxr.open_video(src)
    with pytest.raises(ValueError, match="is an input"):
        fluoxr.save(video + 1, src, overwrite=True)
    with pytest.raises(ValueError, match="input"):
        fluoxr.save(video + 1, folder, overwrite=True, format="ome-zarr")
    with pytest.raises(ValueError, match="already exists"):
        fluoxr.save(fluoxr.as_video(np.zeros((4, 8, 8), np.uint16)), src)
    # the result of a computation on the store, not only what open_video made, is an input too
    with pytest.raises(ValueError, match="is an input"):
        fluoxr.save(fluoxr.open_result(src) * 2, src, overwrite=True)
    np.testing.assert_array_equal(fluoxr.open_video(src).values, 1)


# -- the command line ---------------------------------------------------------------------------


def test_cli_writes_ome_zarr(tmp_path, capsys):
    import tifffile

    from fluoxr.cli import main

    video, _ = fluoxr.datasets.blinking_emitters(60, (20, 22), n_emitters=2, sigma_px=1.5, seed=4)
    movie = tmp_path / "movie.tif"
    tifffile.imwrite(movie, video.values)
    out = tmp_path / "res.zarr"
    assert main(["sofi", str(movie), "-o", str(out), "--order", "3", "--format", "ome-zarr",
                 "--scheduler", "threads", "--no-progress"]) == 0
    groups = _check_store(out, images=2)  # moments and mean_image: one group each
    assert _axes(groups["moments"])[0] == ("c", "channel", None)
    ref = fluoxr.sofi_images(fluoxr.open_video(movie), 3).compute()
    xr.testing.assert_allclose(fluoxr.open_result(out).moments.compute(), ref.moments)

    sheet, truth = fluoxr.datasets.oscillating_sheet(n_frames=12, shape=(24, 26), chunks=4, seed=2)
    rec = tmp_path / "sheet.tif"
    tifffile.imwrite(rec, sheet.values)
    osc = tmp_path / "osc.ome.zarr"  # the suffix picks the format
    assert main(["oscillations", str(rec), "-o", str(osc), "--period", str(truth.period_s), "--interval",
                 str(truth.interval_s), "--min-cluster-size", "3", "--scheduler", "threads", "--no-progress"]) == 0
    ome = _check_store(osc)[""]
    assert _axes(ome)[0] == ("t", "time", "second") and _scale(ome)[0] == pytest.approx(truth.interval_s)
    assert fluoxr.open_result(osc).dtype == np.int8
    assert main(["sofi", str(movie), "-o", str(tmp_path / "x.zarr"), "--format", "tiff",
                 "--scheduler", "threads"]) == 2
    assert "--format" in capsys.readouterr().err


_CALLS: list[int] = []


def _counted(block):
    _CALLS.append(block.shape[0])
    return block


def test_pyramid_levels_do_not_compute_the_result_again(tmp_path):
    data = np.random.default_rng(10).normal(size=(6, 520, 300)).astype(np.float32)
    video = fluoxr.as_video(data, fps=3.0, chunks=2)
    counted = video.copy(data=video.data.map_blocks(_counted, dtype=video.dtype))
    _CALLS.clear()
    path = fluoxr.save(counted, tmp_path / "once.ome.zarr")
    assert _levels(_check_store(path)[""]) == 2
    assert _CALLS == [2, 2, 2]  # each chunk once: level 1 is read back from level 0
    np.testing.assert_allclose(fluoxr.open_video(path, level=1).values, _mean_reference(data).astype(np.float32))
