"""The command line: info, demo, and one-line errors with exit code 2."""

import os
import subprocess
import sys

import numpy as np
import pytest
import tifffile

from fluoxr.cli import main


def test_info(tmp_path, capsys):
    p = tmp_path / "m.tif"
    tifffile.imwrite(p, np.zeros((12, 5, 6), np.uint16))
    assert main(["info", str(p), "--fps", "20"]) == 0
    out = capsys.readouterr().out
    assert "(12, 5, 6)" in out and "uint16" in out and "20.0" in out and "on disk" in out


@pytest.mark.parametrize(
    "argv, words",
    [
        (["info", "/nonexistent/movie.tif"], "does not exist"),
        (["demo", "--frames", "3", "--scheduler", "threads"], "--frames"),
    ],
)
def test_errors_are_one_line_with_exit_code_2(argv, words, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_unknown_extension_via_console_script(tmp_path):
    p = tmp_path / "movie.avi"
    p.write_bytes(b"x")
    r = subprocess.run([sys.executable, "-m", "fluoxr.cli", "info", str(p)], capture_output=True, text=True)
    assert r.returncode == 2 and "unknown extension" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.slow  # the whole demo pipeline; its steps are tested one by one in the fast tier
def test_demo_threads_small(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--frames", "40", "--scheduler", "threads", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "done in" in text and str(out) in text and "MB/s" in text
    for name in ("blinking.zarr", "calcium.zarr", "sheet.zarr", "recordings.png"):
        assert os.path.exists(out / name), name
    # running it again replaces its own outputs
    assert main(["demo", "-o", str(out), "--frames", "40", "--scheduler", "threads", "--no-progress"]) == 0
