"""``fluoxr sofi``: results, figure, bad input; the SOFI demo step; the benchmark's --quick run."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tifffile
import xarray as xr

import fluoxr
from fluoxr.cli import main


@pytest.fixture
def movie(tmp_path):
    video, _ = fluoxr.datasets.blinking_emitters(120, (24, 24), n_emitters=2, sigma_px=1.5, seed=4)
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, video.values)
    return path


def test_sofi_command(movie, tmp_path, capsys, unchanged):
    unchanged(str(movie))
    out = tmp_path / "res.zarr"
    argv = ["sofi", str(movie), "-o", str(out), "--order", "4", "--cumulants", "--scheduler", "threads",
            "--no-progress"]
    assert main(argv) == 0
    text = capsys.readouterr().out
    assert "MB/s" in text and str(out) in text
    assert os.path.exists(tmp_path / "res.png")
    ds = fluoxr.open_result(out).compute()
    ref = fluoxr.sofi_images(fluoxr.open_video(movie), 4).compute()
    xr.testing.assert_allclose(ds.cumulants, ref.cumulants)
    xr.testing.assert_allclose(ds.moments, ref.moments)
    np.testing.assert_allclose(ds.mean_image, ref.mean_image)
    # an existing output is not replaced without --overwrite
    assert main(argv) == 2
    assert "already exists" in capsys.readouterr().err
    # bleach correction and Fourier interpolation
    png = tmp_path / "fig.png"
    assert main(["sofi", str(movie), "-o", str(out), "--order", "3", "--overwrite", "--bleach-correction",
                 "--fbc", "0.25", "--smooth-kernel", "21", "--finterp", "2", "--png", str(png),
                 "--scheduler", "threads", "--no-progress"]) == 0
    ds = fluoxr.open_result(out)
    assert "cumulants" not in ds and ds.moments.shape == (3, 47, 47) and os.path.exists(png)
    assert ds.attrs["bleach_correction"] == 1
    # the summary names the recording's size (not the interpolated frames') and its MB/s is of the input
    text = capsys.readouterr().out
    assert "{'time': 120, 'y': 24, 'x': 24}" in text and "interpolated x2" in text and "'y': 47" not in text


@pytest.mark.parametrize("extra,words", [(["--order", "0"], "--order"), (["--fbc", "1.5"], "--fbc"),
                                         (["--finterp", "0"], "--finterp")])
def test_sofi_command_bad_input(movie, tmp_path, capsys, extra, words):
    assert main(["sofi", str(movie), "-o", str(tmp_path / "o.zarr"), "--scheduler", "threads"] + extra) == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_sofi_command_single_image(tmp_path, capsys):
    path = tmp_path / "image.tif"
    tifffile.imwrite(path, np.zeros((8, 8), np.uint16))
    assert main(["sofi", str(path), "-o", str(tmp_path / "o.zarr"), "--scheduler", "threads"]) == 2
    assert "single image" in capsys.readouterr().err


@pytest.mark.slow  # the demo pipeline again; `fluoxr sofi` itself is tested in the fast tier
def test_demo_sofi_step(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--frames", "300", "--scheduler", "threads", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "PSF width" in text
    assert os.path.exists(out / "sofi.png") and os.path.exists(out / "sofi.zarr")
    assert fluoxr.open_result(out / "sofi.zarr").cumulants.sizes["order"] == 6


@pytest.mark.slow
def test_benchmark_quick(tmp_path):
    script = pathlib.Path(__file__).parents[2] / "benchmarks" / "sofi.py"
    r = subprocess.run([sys.executable, str(script), "--quick", "--tmp", str(tmp_path)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "fluoxr" in r.stdout and "MB/s" in r.stdout and "plain read" in r.stdout


@pytest.mark.slow
def test_sofi_on_a_command_line_cluster(cli_cluster, movie, tmp_path):
    """States (tuples, dicts), partial kernels and the second reads pickle and run on process workers."""
    from distributed import Client

    video = fluoxr.open_video(movie, chunks=17)
    lazy = [fluoxr.sofi_images(video, 6), fluoxr.sofi_images(video, 4, bleach_correction=True, fbc=0.25,
                                                             smooth_kernel=21),
            fluoxr.lag_cumulants(video, [0, 1, 3]), fluoxr.xc_image(video, sigma_px=1.5)]
    expected = [obj.compute(scheduler="threads") for obj in lazy]
    with Client(cli_cluster.address) as client:
        got = client.gather(client.compute(lazy))
    for g, e in zip(got, expected):
        xr.testing.assert_allclose(g, e)
    out = tmp_path / "c.zarr"
    r = subprocess.run([sys.executable, "-m", "fluoxr.cli", "sofi", str(movie), "-o", str(out), "--order", "4",
                        "--scheduler", cli_cluster.address, "--no-progress"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    xr.testing.assert_allclose(fluoxr.open_result(out).moments.compute(), expected[0].moments.sel(order=[1, 2, 3, 4]))
