"""How the command line computes: the default scheduler, progress bars only on a terminal, the cold-cache notice,
``fluoxr warmup``, and a local cluster that starts and stops without warnings (issue 16, items 1 and 4)."""

from __future__ import annotations

import argparse
import io
import logging
import os
import subprocess
import sys
import time

import dask
import dask.array as da
import numpy as np
import pytest
import tifffile

import fluoxr
from fluoxr.cli import main, run
from fluoxr.cli.run import Runner, choose_scheduler

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fluoxr.__file__)))


@pytest.fixture
def movie(tmp_path):
    video, _ = fluoxr.datasets.blinking_emitters(60, (24, 24), n_emitters=2, sigma_px=1.5, seed=4)
    path = tmp_path / "movie.tif"
    tifffile.imwrite(path, video.values)
    return path


def test_small_inputs_run_on_threads_large_ones_on_a_cluster(movie, monkeypatch):
    args = argparse.Namespace(scheduler=None, input=str(movie))
    assert choose_scheduler(args) == "threads"
    monkeypatch.setattr(run, "THREADS_BELOW_BYTES", os.path.getsize(movie))  # the file is now "large"
    assert choose_scheduler(args) == "local"
    assert choose_scheduler(argparse.Namespace(scheduler="threads", input=str(movie))) == "threads"
    assert choose_scheduler(argparse.Namespace(command="info")) is None


def test_the_demo_counts_its_synthetic_recordings():
    from fluoxr.cli.demo import _demo_input_bytes

    assert _demo_input_bytes(argparse.Namespace(frames=None)) < run.THREADS_BELOW_BYTES  # default demo: threads
    assert _demo_input_bytes(argparse.Namespace(frames=100_000)) > run.THREADS_BELOW_BYTES


def test_the_rule_is_in_the_help(capsys):
    assert main(["sofi", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "threads when the inputs are under 1 GB" in text


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _slow_sum() -> da.Array:
    return da.from_delayed(dask.delayed(lambda: (time.sleep(0.8), np.ones(3))[1])(), (3,), float).sum()


def test_progress_bars_only_when_stderr_is_a_terminal(monkeypatch, capsys):
    runner = Runner(progress=True)
    assert float(runner.compute(_slow_sum(), label="slow sum")) == 3.0
    captured = capsys.readouterr()
    assert "slow sum" in captured.out  # the step's label stays in logs
    assert "[#" not in captured.out + captured.err and "%" not in captured.out + captured.err
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    assert float(runner.compute(_slow_sum(), label="slow sum")) == 3.0
    assert "[#" in terminal.getvalue() and "100%" in terminal.getvalue()
    assert "[#" not in capsys.readouterr().out  # never on stdout


def test_cold_cache_notice_is_one_info_line(movie, tmp_path, monkeypatch, caplog):
    from fluoxr.kernels import _cache

    monkeypatch.setattr(_cache, "cold_modules", lambda modules=_cache.KERNEL_MODULES, directory=None: list(modules))
    with caplog.at_level(logging.INFO, logger="fluoxr.cli.notice"):
        assert main(["sofi", str(movie), "-o", str(tmp_path / "a.zarr"), "--order", "2", "--no-progress"]) == 0
    notes = [r for r in caplog.records if r.name == "fluoxr.cli.notice"]
    assert len(notes) == 1 and "compiling kernels (first run only" in notes[0].getMessage()
    caplog.clear()
    monkeypatch.setattr(_cache, "cold_modules", lambda modules=_cache.KERNEL_MODULES, directory=None: [])
    with caplog.at_level(logging.INFO, logger="fluoxr.cli.notice"):
        assert main(["sofi", str(movie), "-o", str(tmp_path / "b.zarr"), "--order", "2", "--no-progress"]) == 0
    assert not [r for r in caplog.records if r.name == "fluoxr.cli.notice"]


def test_cold_cache_notice_counts_the_interpolation_kernels_only_with_finterp(monkeypatch):
    from fluoxr.cli.run import notice_cold_kernels
    from fluoxr.kernels import _cache

    asked = []
    monkeypatch.setattr(_cache, "cold_modules",
                        lambda modules=_cache.KERNEL_MODULES, directory=None: asked.append(modules) or [])
    notice_cold_kernels("sofi")
    notice_cold_kernels("sofi", finterp=2)
    assert asked == [("moments",), ("moments", "finterp")]


def _fluoxr(*argv: str, **env: str) -> subprocess.CompletedProcess:
    environ = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), **env}
    return subprocess.run([sys.executable, "-m", "fluoxr.cli", *argv], capture_output=True, text=True, env=environ,
                          timeout=600)


@pytest.mark.slow  # compiles the moment kernels into an empty cache
def test_notice_on_stderr_when_the_cache_is_cold_and_not_after(movie, tmp_path):
    cache = str(tmp_path / "numba")
    first = _fluoxr("sofi", str(movie), "-o", str(tmp_path / "a.zarr"), "--order", "2", NUMBA_CACHE_DIR=cache)
    assert first.returncode == 0, first.stderr
    assert first.stderr.count("compiling kernels (first run only") == 1, first.stderr
    assert "[#" not in first.stdout + first.stderr  # not a terminal: no bars
    second = _fluoxr("sofi", str(movie), "-o", str(tmp_path / "b.zarr"), "--order", "2", NUMBA_CACHE_DIR=cache)
    assert second.returncode == 0 and "compiling" not in second.stderr, second.stderr


@pytest.mark.slow  # starts a local cluster of worker processes
def test_local_cluster_starts_and_stops_quietly(movie, tmp_path):
    r = _fluoxr("sofi", str(movie), "-o", str(tmp_path / "c.zarr"), "--order", "2", "--scheduler", "local",
                "--workers", "2")
    assert r.returncode == 0, r.stderr
    assert "local cluster" in r.stdout or "c.zarr" in r.stdout
    for noise in ("8787", "still alive", "killing", "Traceback", "Warning", "WARNING", "dashboard"):
        assert noise not in r.stderr, r.stderr


def test_warmup_help_names_cluster_images(capsys):
    assert main(["warmup", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "cluster and container images" in text and "NUMBA_CACHE_DIR" in text


@pytest.mark.slow  # compiles every kernel (a minute or two on 2 cores)
def test_warmup_leaves_nothing_for_the_demo_to_compile(tmp_path):
    cache = str(tmp_path / "numba")
    r = _fluoxr("warmup", NUMBA_CACHE_DIR=cache)
    assert r.returncode == 0 and "done in" in r.stdout, r.stderr
    from fluoxr.kernels._cache import cold_modules

    assert cold_modules(directory=cache) == []
    before = {f for _, _, files in os.walk(cache) for f in files}
    r = _fluoxr("demo", "-o", str(tmp_path / "demo"), "--frames", "60", "--no-progress", NUMBA_CACHE_DIR=cache)
    assert r.returncode == 0, r.stderr
    assert "compiling" not in r.stderr
    assert {f for _, _, files in os.walk(cache) for f in files} == before  # no signature left to compile


def test_slow_steps_report_their_rate_not_zero():
    runner = Runner(progress=False)
    runner.timings.append(("compiling step", 36.3, 16.4e6))
    runner.timings.append(("fast step", 0.5, 100e6))
    assert runner.throughput("compiling step") == "36.3 s, 0.45 MB/s of input"
    assert runner.throughput("fast step") == "0.5 s, 200 MB/s of input"
