"""Command-line options shared by every subcommand: --version, one output flag (-o/--output), required options
named in the help, ``info`` on a result store, and input files checked by content (issue 16)."""

import subprocess
import sys

import numpy as np
import pytest
import tifffile

from fluoxr.cli import build_parser, main


def _one_line_error(capsys, *words):
    err = capsys.readouterr().err
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    for w in words:
        assert w in err, err
    return err


def test_version_prints_and_exits_0_without_heavy_imports():
    import fluoxr

    code = ("import sys; from fluoxr.cli import main; rc = main(['--version']); "
            "heavy = [m for m in ('dask', 'xarray', 'numpy', 'zarr') if m in sys.modules]; "
            "print('HEAVY', heavy); sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert f"fluoxr {fluoxr.__version__}" in r.stdout
    assert "HEAVY []" in r.stdout


@pytest.mark.parametrize("command, extra", [
    ("sofi", []),
    ("extract", ["--labels", "l.tif"]),
    ("oscillations", ["--period", "10", "--min-cluster-size", "3"]),
    ("demo", None),
])
def test_one_output_flag_everywhere(command, extra):
    parser = build_parser()
    inputs = [] if extra is None else ["m.tif", *extra]
    for flag in ("-o", "--output"):
        assert parser.parse_args([command, *inputs, flag, "x.zarr"]).output == "x.zarr"
    help_text = parser._subparsers._group_actions[0].choices[command].format_help()
    assert "-o OUTPUT, --output OUTPUT" in help_text
    assert "--out " not in help_text and "--out\n" not in help_text


@pytest.mark.parametrize("command, extra", [
    ("oscillations", ["m.tif", "--period", "10", "--min-cluster-size", "3"]),
    ("demo", []),
])
def test_old_out_spelling_still_works(command, extra):
    parser = build_parser()
    assert parser.parse_args([command, *extra, "--out", "old.zarr"]).output == "old.zarr"
    assert parser.parse_args([command, *extra, "--out=old2.zarr"]).output == "old2.zarr"


def test_demo_errors_name_the_output_flag(tmp_path, capsys):
    notes = tmp_path / "notes.txt"
    notes.write_text("keep me")
    assert main(["demo", "--out", str(notes), "--scheduler", "threads", "--no-progress"]) == 2
    _one_line_error(capsys, "-o ")
    assert notes.read_text() == "keep me"


def _help(command):
    parser = build_parser()
    return " ".join(parser._subparsers._group_actions[0].choices[command].format_help().split())


def test_conditionally_required_options_are_named_in_the_help():
    text = _help("extract")
    assert "requires --tau" in text and "(required with --spikes)" in text
    assert "--fps if the recording has no frame rate" in text
    assert "required if it has none" in _help("oscillations")
    assert "required unless suite2p's ops.npy" in _help("info")


def test_spikes_without_tau_is_refused_before_reading(tmp_path, capsys):
    # the recording does not exist: the missing --tau is reported first, without reading anything
    argv = ["extract", str(tmp_path / "missing.tif"), "--labels", str(tmp_path / "l.tif"), "-o",
            str(tmp_path / "t.zarr"), "--spikes", "--scheduler", "threads", "--no-progress"]
    assert main(argv) == 2
    _one_line_error(capsys, "--spikes requires --tau")
    assert not (tmp_path / "t.zarr").exists()


def _result_store(path):
    import xarray as xr

    import fluoxr

    ds = xr.Dataset({"F": (("roi", "time"), np.zeros((3, 50), np.float32)),
                     "mean_image": (("y", "x"), np.ones((8, 9)))}, attrs={"fps": 10.0})
    fluoxr.save(ds, str(path), overwrite=True)
    return path


def test_info_lists_every_variable_of_a_result_store(tmp_path, capsys):
    path = _result_store(tmp_path / "r.zarr")
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    assert "complete" in out and "variables    2" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert "(roi, time)" in lines["F"] and "(3, 50)" in lines["F"] and "float32" in lines["F"]
    assert "(y, x)" in lines["mean_image"] and "(8, 9)" in lines["mean_image"] and "float64" in lines["mean_image"]


def test_info_refuses_an_incomplete_store_and_says_to_resume(tmp_path, capsys):
    import json

    path = _result_store(tmp_path / "r.zarr")
    meta = json.loads((path / "zarr.json").read_text())
    meta["attributes"]["fluoxr_write"]["complete"] = False
    (path / "zarr.json").write_text(json.dumps(meta))
    assert main(["info", str(path)]) == 2
    _one_line_error(capsys, "incomplete", "--resume")


def test_info_of_a_saved_video_keeps_the_recording_summary(tmp_path, capsys):
    import xarray as xr

    import fluoxr

    video = xr.DataArray(np.zeros((6, 4, 5), np.uint16), dims=("time", "y", "x"), name="video")
    fluoxr.save(video, str(tmp_path / "v.zarr"), overwrite=True)
    assert main(["info", str(tmp_path / "v.zarr")]) == 0
    out = capsys.readouterr().out
    assert "(6, 4, 5)" in out and "uint16" in out and "variables" not in out


@pytest.fixture
def movie(tmp_path):
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, np.random.default_rng(0).integers(0, 1000, (10, 32, 32), dtype=np.uint16))
    return path


def _extract(movie, tmp_path, *source):
    return main(["extract", str(movie), *source, "-o", str(tmp_path / "t.zarr"), "--scheduler", "threads",
                 "--no-progress"])


def test_stat_given_a_tiff_is_refused_in_one_line(movie, tmp_path, capsys):
    assert _extract(movie, tmp_path, "--stat", str(movie)) == 2
    _one_line_error(capsys, "--stat must be suite2p's stat.npy", "TIFF")
    assert not (tmp_path / "t.zarr").exists()


def test_stat_given_another_npy_is_refused_in_one_line(movie, tmp_path, capsys):
    np.save(tmp_path / "image.npy", np.zeros((32, 32)))
    assert _extract(movie, tmp_path, "--stat", str(tmp_path / "image.npy")) == 2
    _one_line_error(capsys, "--stat must be suite2p's stat.npy")


@pytest.mark.parametrize("image, words", [
    (np.random.default_rng(1).random((32, 32)).astype(np.float32), "not integers"),
    (np.random.default_rng(2).integers(0, 4000, (32, 32), dtype=np.uint16), "distinct values"),
])
def test_labels_given_an_intensity_image_is_refused_with_a_hint(image, words, movie, tmp_path, capsys):
    tifffile.imwrite(tmp_path / "image.tif", image)
    assert _extract(movie, tmp_path, "--labels", str(tmp_path / "image.tif")) == 2
    _one_line_error(capsys, "looks like an intensity image, not a label image", words)
    assert not (tmp_path / "t.zarr").exists()


def test_a_real_label_image_is_accepted(movie, tmp_path, capsys):
    labels = np.zeros((32, 32), np.uint16)
    labels[2:8, 2:8], labels[10:16, 20:26] = 1, 2
    tifffile.imwrite(tmp_path / "labels.tif", labels)
    assert _extract(movie, tmp_path, "--labels", str(tmp_path / "labels.tif")) == 0
