"""The suffix of -o chooses the format written (.tif -> TIFF, .ome.zarr -> OME-Zarr), on every subcommand;
``fluoxr sofi --tiff``; an unsupported suffix is one line and exit code 2, before anything is written."""

from __future__ import annotations

import os

import numpy as np
import pytest
import tifffile

import fluoxr
from fluoxr.cli import main


@pytest.fixture
def movie(tmp_path):
    video, _ = fluoxr.datasets.blinking_emitters(80, (20, 22), n_emitters=2, sigma_px=1.5, seed=4)
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, video.values)
    return path


def _one_line(capsys, *words):
    err = capsys.readouterr().err.strip()
    assert all(w in err for w in words) and "Traceback" not in err and len(err.splitlines()) == 1, err


def test_sofi_output_tif_writes_a_tiff(movie, tmp_path, capsys, unchanged):
    unchanged(movie)
    out = tmp_path / "res.tif"
    argv = ["sofi", str(movie), "-o", str(out), "--order", "3", "--cumulants", "--scheduler", "threads",
            "--no-progress"]
    assert main(argv) == 0
    assert "TIFF:" in capsys.readouterr().out
    assert out.is_file() and os.path.exists(tmp_path / "res.png")
    ref = fluoxr.sofi_images(fluoxr.open_video(movie), 3).compute()
    with tifffile.TiffFile(out) as t:
        assert t.is_imagej and t.series[0].shape == (3, 20, 22)
        np.testing.assert_allclose(t.asarray(), ref.cumulants.values, rtol=1e-5, atol=1e-6 * abs(ref.cumulants).max())
    assert main(argv) == 2
    _one_line(capsys, "already exists")
    assert main(argv + ["--overwrite"]) == 0


def test_sofi_tiff_flag_writes_both(movie, tmp_path, capsys):
    out = tmp_path / "res.zarr"
    assert main(["sofi", str(movie), "-o", str(out), "--order", "2", "--tiff", "--scheduler", "threads",
                 "--no-progress"]) == 0
    stack = tifffile.imread(tmp_path / "res.tif")
    np.testing.assert_allclose(stack, fluoxr.open_result(out).moments.values, rtol=1e-6)


@pytest.mark.parametrize("name", ["res.png", "res.h5", "res.csv"])
def test_unsupported_suffix_is_refused_before_any_work(movie, tmp_path, capsys, name):
    assert main(["sofi", str(movie), "-o", str(tmp_path / name), "--scheduler", "threads"]) == 2
    _one_line(capsys, "-o", os.path.splitext(name)[1], "TIFF (.tif, .tiff)")
    assert os.listdir(tmp_path) == ["movie.tif"]


def test_tif_output_with_format_is_refused(movie, tmp_path, capsys):
    assert main(["sofi", str(movie), "-o", str(tmp_path / "r.tif"), "--format", "ome-zarr",
                 "--scheduler", "threads"]) == 2
    _one_line(capsys, "--format ome-zarr")


def test_oscillations_output_tif(tmp_path, capsys):
    video, truth = fluoxr.datasets.oscillating_sheet(n_frames=30, shape=(24, 26), seed=1)
    tifffile.imwrite(tmp_path / "sheet.tif", video.values)
    out = tmp_path / "labels.tif"
    assert main(["oscillations", str(tmp_path / "sheet.tif"), "--period", "60", "--interval", "2",
                 "--min-cluster-size", "10", "-o", str(out), "--tracks", str(tmp_path / "t.csv"),
                 "--scheduler", "threads", "--no-progress"]) == 0
    assert "influx" in capsys.readouterr().out
    expected = fluoxr.oscillations.detect(video, period_s=60, interval_s=2, min_cluster_size=10)
    with tifffile.TiffFile(out) as t:
        np.testing.assert_array_equal(t.asarray(), expected.values)
        assert t.imagej_metadata["finterval"] == pytest.approx(2.0)
    assert os.path.exists(tmp_path / "t.csv")


def test_oscillations_tracks_with_compat_cellects_are_cellects_table(tmp_path, capsys):
    # --compat cellects: the --tracks table is Cellects' cluster flux table (the specimen from --mask),
    # the same as track_clusters(labels, compat="cellects", mask=...)
    import pandas as pd

    video, truth = fluoxr.datasets.oscillating_sheet(n_frames=30, shape=(24, 26), seed=1)
    tifffile.imwrite(tmp_path / "sheet.tif", video.values)
    tifffile.imwrite(tmp_path / "mask.tif", truth.mask.astype(np.uint8))
    assert main(["oscillations", str(tmp_path / "sheet.tif"), "--period", "60", "--interval", "2",
                 "--min-cluster-size", "10", "-o", str(tmp_path / "labels.zarr"), "--mask", str(tmp_path / "mask.tif"),
                 "--compat", "cellects", "--tracks", str(tmp_path / "t.csv"), "--scheduler", "threads",
                 "--no-progress"]) == 0
    assert "Cellects' cluster flux table" in capsys.readouterr().out
    labels = fluoxr.oscillations.detect(video, period_s=60, interval_s=2, min_cluster_size=10, mask=truth.mask,
                                        compat="cellects")
    want = fluoxr.oscillations.track_clusters(labels, compat="cellects", mask=truth.mask).compute()
    got = pd.read_csv(tmp_path / "t.csv")
    assert len(want) > 0
    pd.testing.assert_frame_equal(got, want.reset_index(drop=True), check_dtype=False, check_categorical=False)


def test_extract_refuses_a_tif_output(tmp_path, capsys):
    video, truth = fluoxr.datasets.calcium_neurons(n_frames=30, shape=(24, 28), n_cells=2, seed=3)
    tifffile.imwrite(tmp_path / "rec.tif", video.values)
    labels = fluoxr.ROISet.from_suite2p(truth.stat, (24, 28)).to_label_image().astype(np.uint16)
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    assert main(["extract", str(tmp_path / "rec.tif"), "--labels", str(tmp_path / "labels.tif"), "-o",
                 str(tmp_path / "traces.tif"), "--scheduler", "threads"]) == 2
    _one_line(capsys, "-o", "cannot write TIFF", "zarr")
    assert not os.path.exists(tmp_path / "traces.tif")


def test_register_suffixes(tmp_path, capsys):
    import pandas as pd

    video, truth = fluoxr.datasets.calcium_neurons(n_frames=40, shape=(32, 32), n_cells=3, seed=3, motion="rigid")
    tifffile.imwrite(tmp_path / "moving.tif", video.values)
    given = tmp_path / "given.csv"
    pd.DataFrame({"dy": truth.motion.shifts.dy.values, "dx": truth.motion.shifts.dx.values}).to_csv(given,
                                                                                                   index=False)
    # the shifts cannot be a TIFF; a .png is no output format at all
    for name, words in (("shifts.tif", "cannot write TIFF"), ("shifts.png", "'.png'")):
        assert main(["register", str(tmp_path / "moving.tif"), "--shifts", str(given), "-o", str(tmp_path / name),
                     "--scheduler", "threads"]) == 2
        _one_line(capsys, "-o", words)
    # the registered recording as a TIFF
    reg = tmp_path / "registered.tif"
    assert main(["register", str(tmp_path / "moving.tif"), "--shifts", str(given), "-o", str(tmp_path / "s.csv"),
                 "--save-video", str(reg), "--scheduler", "threads", "--no-progress"]) == 0
    expected = fluoxr.apply_motion(fluoxr.as_video(video.values), truth.motion.shifts)
    np.testing.assert_allclose(tifffile.imread(reg), expected.values, rtol=1e-6, atol=1e-3)
