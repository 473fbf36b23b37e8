"""fluoxr register (shifts and a figure, the video only when asked), extract --register, the demo's motion step."""

import os

import numpy as np
import pandas as pd
import pytest
import tifffile

import fluoxr
from fluoxr.cli import main
from fluoxr.cli.demo import DemoContext, _active_corr, _demo_motion, _offset_removed
from fluoxr.cli.run import Runner


@pytest.fixture
def moving(tmp_path):
    video, truth = fluoxr.datasets.calcium_neurons(n_frames=150, shape=(64, 64), n_cells=8, seed=3, motion="rigid")
    path = tmp_path / "moving.tif"
    tifffile.imwrite(path, video.values)
    return path, video, truth


def test_register_writes_the_shifts_and_a_figure_not_the_video(moving, tmp_path, capsys, unchanged):
    path, video, truth = moving
    unchanged(path)
    out = tmp_path / "shifts.zarr"
    before = set(os.listdir(tmp_path))
    assert main(["register", str(path), "-o", str(out), "--fps", "30", "--scheduler", "threads",
                 "--no-progress"]) == 0
    assert "wrote the shifts" in capsys.readouterr().out
    assert set(os.listdir(tmp_path)) - before == {"shifts.zarr", "shifts.png"}  # no registered copy
    res = fluoxr.open_result(out)
    assert {"dy", "dx", "corr", "reference"} <= set(res.data_vars) and res.dy.sizes["time"] == 150
    _, rms = _offset_removed(res.compute(), truth.motion.shifts.dy.values, truth.motion.shifts.dx.values)
    assert rms < 0.15
    assert main(["register", str(path), "-o", str(out), "--scheduler", "threads", "--no-progress"]) == 2
    assert "--overwrite" in capsys.readouterr().err


def test_register_csv_then_apply_it_and_save_the_video(moving, tmp_path, capsys):
    path, video, truth = moving
    csv = tmp_path / "shifts.csv"
    assert main(["register", str(path), "-o", str(csv), "--scheduler", "threads", "--no-progress"]) == 0
    table = pd.read_csv(csv)
    assert list(table.columns) == ["time", "dy", "dx", "corr"] and len(table) == 150
    # the shifts of another tool (here: the truth) applied, and the registered recording written
    given = tmp_path / "given.csv"
    pd.DataFrame({"dy": truth.motion.shifts.dy.values, "dx": truth.motion.shifts.dx.values}).to_csv(given,
                                                                                                   index=False)
    out, reg = tmp_path / "applied.zarr", tmp_path / "registered.zarr"
    assert main(["register", str(path), "--shifts", str(given), "-o", str(out), "--save-video", str(reg),
                 "--scheduler", "threads", "--no-progress"]) == 0
    assert "wrote the registered recording" in capsys.readouterr().out
    written = fluoxr.open_video(reg)
    expected = fluoxr.apply_motion(fluoxr.as_video(video.values), truth.motion.shifts)
    np.testing.assert_allclose(written.values, expected.values, rtol=1e-6, atol=1e-3)
    np.testing.assert_allclose(fluoxr.open_result(out).dy.values, truth.motion.shifts.dy.values)
    # --save-video without a path: beside -o
    assert main(["register", str(path), "--shifts", str(given), "-o", str(tmp_path / "b.zarr"), "--save-video",
                 "--scheduler", "threads", "--no-progress"]) == 0
    assert os.path.isdir(tmp_path / "b_registered.zarr")


def test_register_nonrigid(moving, tmp_path):
    path, _, _ = moving
    out = tmp_path / "nr.zarr"
    assert main(["register", str(path), "-o", str(out), "--nonrigid", "--block-size", "32", "32",
                 "--scheduler", "threads", "--no-progress"]) == 0
    res = fluoxr.open_result(out)
    assert res.dy_block.dims == ("time", "block") and res.sizes["block"] > 1
    # a store of this command as --shifts: its block shifts applied as they are
    again, reg = tmp_path / "again.zarr", tmp_path / "reg.zarr"
    assert main(["register", str(path), "--shifts", str(out), "-o", str(again), "--save-video", str(reg),
                 "--scheduler", "threads", "--no-progress"]) == 0
    expected = fluoxr.apply_motion(fluoxr.open_video(path), res)
    np.testing.assert_allclose(fluoxr.open_video(reg).values, expected.values, rtol=1e-6, atol=1e-3)


@pytest.mark.parametrize("argv, words", [
    (["--shifts", "{dir}/missing.csv"], "--shifts"),
    (["--shifts", "{dir}/short.csv"], "--shifts"),
    (["--nonrigid", "-o", "{dir}/out.csv"], "-o"),
    (["--save-video", "{dir}/out.zarr"], "--save-video"),
])
def test_register_errors_are_one_line(moving, tmp_path, capsys, argv, words):
    path, _, _ = moving
    pd.DataFrame({"dy": [0.0] * 3, "dx": [0.0] * 3}).to_csv(tmp_path / "short.csv", index=False)
    argv = [a.format(dir=tmp_path) for a in argv]
    if "-o" not in argv:
        argv += ["-o", str(tmp_path / "out.zarr")]
    assert main(["register", str(path), *argv, "--scheduler", "threads", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "\n" not in err and "Traceback" not in err


def test_extract_register_gives_better_traces(moving, tmp_path):
    path, video, truth = moving
    stat = tmp_path / "stat.npy"
    np.save(stat, np.array(truth.stat, dtype=object), allow_pickle=True)
    r = {}
    for flag in ([], ["--register"]):
        out = tmp_path / f"t{len(flag)}.zarr"
        assert main(["extract", str(path), "--stat", str(stat), "-o", str(out), *flag, "--scheduler", "threads",
                     "--no-progress"]) == 0
        F = fluoxr.open_result(out).F.values
        tf = truth.fluorescence.values
        r[bool(flag)] = np.median(_active_corr(F, tf))  # cells without a spike (constant truth) skipped
    assert r[True] > r[False]


def test_demo_motion_step(tmp_path):
    ctx = DemoContext(out=str(tmp_path), frames=200, runner=Runner(progress=False))
    _demo_motion(ctx)
    assert os.path.isdir(tmp_path / "motion.zarr") and os.path.exists(tmp_path / "motion.png")
    line = ctx.report[-1]
    rms = float(line.split("): ")[1].split(" px RMS")[0])
    r_reg, r_raw, r_still = (float(line.split(f"{w}")[0].split()[-1]) for w in (" registered", " raw", " without"))
    assert rms < 0.15 and abs(r_reg - r_still) < 0.02 and r_reg >= r_raw
