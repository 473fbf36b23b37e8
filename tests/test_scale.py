"""Scale-out and reliability: a real command-line cluster, worker faults, interrupted and resumed writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import dask
import numpy as np
import pytest
import zarr

import fluoxr
from fluoxr import io as fio

pytestmark = pytest.mark.slow


def _sleep_then_pass(block):
    # the delay is read from the environment, not captured: a slow and a fast run are the same computation
    # (the same dask token), so one may resume the other
    time.sleep(float(os.environ.get("FLUOXR_TEST_DELAY", "0")))
    return block


def _slow_video(n_frames: int = 60, delay: float = 0.05, *, resumable: bool = False):
    """A synthetic recording whose chunks (one frame each) take ``delay`` seconds to produce.

    With ``resumable`` the delay is not part of the computation (it is read from the environment of the
    process that computes), so a slow run killed mid-write can be resumed by a fast one.
    """
    video, _ = fluoxr.datasets.oscillating_sheet(n_frames=n_frames, shape=(32, 32), chunks=1, seed=7)
    if resumable:
        os.environ["FLUOXR_TEST_DELAY"] = str(delay)
        return video.copy(data=video.data.map_blocks(_sleep_then_pass, dtype=video.dtype))

    def slow(block):
        time.sleep(delay)
        return block

    return video.copy(data=video.data.map_blocks(slow, dtype=video.dtype))


def test_demo_runs_against_a_command_line_cluster(cli_cluster, tmp_path):
    out = tmp_path / "demo"
    r = subprocess.run([sys.executable, "-m", "fluoxr.cli", "demo", "--scheduler", cli_cluster.address,
                        "--frames", "60", "-o", str(out), "--no-progress"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"cluster at {cli_cluster.address}" in r.stdout
    assert (out / "recordings.png").exists()


def test_killed_worker_does_not_lose_the_result(cli_cluster):
    from distributed import Client

    video = _slow_video(80, delay=0.1)
    lazy = video.astype("float64").std("time")
    expected = lazy.compute(scheduler="threads")
    with Client(cli_cluster.address) as client:
        future = client.compute(lazy)
        time.sleep(1.5)
        victim = cli_cluster.worker_pids()[0]
        os.kill(victim, signal.SIGKILL)  # the nanny restarts it; dask reschedules its tasks
        result = future.result(timeout=300)
    np.testing.assert_allclose(result.values, expected.values)


_WRITER = textwrap.dedent(
    """
    import sys, time, dask, fluoxr
    sys.path.insert(0, {tests!r})
    from test_scale import _slow_video
    dask.config.set(scheduler="synchronous")
    fluoxr.save(_slow_video(60, delay=0.1, resumable=True), {path!r})
    """
)


def _kill_mid_write(path: str, tests: str, min_done: int = 8) -> int:
    proc = subprocess.Popen([sys.executable, "-c", _WRITER.format(tests=tests, path=path)])
    done_dir = os.path.join(path + ".partial", "done", "video")
    deadline = time.time() + 120
    try:
        while time.time() < deadline:
            if os.path.isdir(done_dir) and len(os.listdir(done_dir)) >= min_done:
                break
            if proc.poll() is not None:
                raise AssertionError("the writer finished before it could be killed")
            time.sleep(0.05)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    return len([n for n in os.listdir(done_dir) if not n.endswith(".tmp")])


def test_sigkilled_write_resumes_to_the_same_store(tmp_path, monkeypatch):
    path = str(tmp_path / "out.zarr")
    done = _kill_mid_write(path, os.path.dirname(__file__))
    assert 8 <= done < 60
    assert os.path.exists(path + ".partial")
    with pytest.raises(ValueError, match="interrupted"):
        fluoxr.open_result(path)

    written = []
    original = fio.store._write_block
    monkeypatch.setattr(fio.store, "_write_block", lambda b, s, v, r, m: written.append(r[0].start) or original(b, s, v, r, m))
    video = _slow_video(60, delay=0.0, resumable=True)
    with dask.config.set(scheduler="threads"):
        fluoxr.save(video, path, resume=True)
    assert len(written) == 60 - done  # chunks already written were not recomputed
    assert not os.path.exists(path + ".partial")
    reference = str(tmp_path / "reference.zarr")
    fluoxr.save(video, reference)
    a, b = fluoxr.open_result(path), fluoxr.open_result(reference)
    np.testing.assert_array_equal(a.values, b.values)
    assert a.attrs == b.attrs


def test_half_written_chunk_is_never_taken_as_complete(tmp_path):
    path = str(tmp_path / "out.zarr")
    done = _kill_mid_write(path, os.path.dirname(__file__), min_done=5)
    assert done >= 5
    # simulate a chunk whose write was cut short: its bytes are half there and its marker absent
    arr = zarr.open_array(store=path, path="video", mode="r")
    chunk_files = sorted(
        os.path.join(root, n) for root, _, names in os.walk(os.path.join(path, "video", "c")) for n in names
    )
    assert chunk_files
    victim = chunk_files[0]
    with open(victim, "r+b") as fh:
        size = os.path.getsize(victim)
        fh.truncate(max(1, size // 2))
    key = ".".join(os.path.relpath(victim, os.path.join(path, "video", "c")).split(os.sep))
    marker = os.path.join(path + ".partial", "done", "video", key)
    assert os.path.exists(marker)
    os.remove(marker)
    with pytest.raises(Exception):
        np.asarray(arr[:])  # the damaged chunk really is unreadable
    video = _slow_video(60, delay=0.0, resumable=True)
    fluoxr.save(video, path, resume=True)
    np.testing.assert_array_equal(fluoxr.open_result(path).values, video.values)


def test_resume_with_nothing_written_and_compute_false(tmp_path):
    path = str(tmp_path / "out.zarr")
    video = _slow_video(10, delay=0.0, resumable=True)
    fluoxr.save(video, path, compute=False)  # metadata only, like a process killed at once
    fluoxr.io.safety._HELD.clear()  # ... whose lock is then stale
    job = fluoxr.save(video, path, resume=True, compute=False)
    job.compute()
    np.testing.assert_array_equal(fluoxr.open_result(path).values, video.values)


def test_cli_resume_after_sigkill(tmp_path):
    """``fluoxr oscillations ... --resume`` finishes a run killed mid-write and equals an uninterrupted run."""
    import tifffile

    video, _ = fluoxr.datasets.oscillating_sheet(n_frames=1500, shape=(64, 64), seed=4)
    tif = tmp_path / "sheet.tif"
    tifffile.imwrite(tif, video.values, photometric="minisblack")
    args = [sys.executable, "-m", "fluoxr.cli", "--chunk-mb", "0.02", "oscillations", str(tif), "--period", "60",
            "--interval", "2", "--min-cluster-size", "5", "--scheduler", "threads", "--no-progress"]
    out = tmp_path / "labels.zarr"
    proc = subprocess.Popen(args + ["-o", str(out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = out.parent / (out.name + ".partial") / "done" / "oscillations"
    deadline = time.time() + 120
    while time.time() < deadline and not (done.is_dir() and len(os.listdir(done)) >= 20):
        assert proc.poll() is None, "the run finished before it could be killed"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    n_done = len(os.listdir(done))
    assert 20 <= n_done < 1500 // 2
    r = subprocess.run(args + ["-o", str(out)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 2 and "--resume" in r.stderr  # refuses to touch it without being told
    r = subprocess.run(args + ["-o", str(out), "--resume"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert not (out.parent / (out.name + ".partial")).exists()
    ref = tmp_path / "reference.zarr"
    r = subprocess.run(args + ["-o", str(ref)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    np.testing.assert_array_equal(fluoxr.open_result(out).values, fluoxr.open_result(ref).values)
