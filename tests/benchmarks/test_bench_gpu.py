"""benchmarks/gpu.py runs (so that it cannot rot): --quick (CPU column; GPU column where there is one),
--quick --emulate (the GPU column's plumbing with NumPy standing in for CuPy), and a clear exit without a GPU."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "benchmarks", "gpu.py")

# benchmarks' quick runs: subprocesses that compile and time every kernel
pytestmark = pytest.mark.slow


def _gpu_available() -> bool:
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:
        return False


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, SCRIPT, *args], capture_output=True, text=True, timeout=300)


def test_gpu_benchmark_quick():
    r = _run("--quick")
    assert r.returncode == 0, r.stderr
    for name in ("SOFI moments, orders 1-6", "oscillation detection", "trace extraction"):
        assert name in r.stdout
    assert "CPU MB/s" in r.stdout
    if not _gpu_available():
        assert "GPU column unavailable" in r.stdout


def test_gpu_benchmark_emulated_gpu_column():
    r = _run("--quick", "--emulate")
    assert r.returncode == 0, r.stderr
    assert "GPU, data on device MB/s" in r.stdout and "GPU, from host MB/s" in r.stdout
    assert "not a GPU measurement" in r.stdout


def test_gpu_benchmark_without_gpu_exits_clearly():
    if _gpu_available():
        pytest.skip("a GPU is available: the full 4 GB run takes minutes and is meant to be run by hand")
    r = _run()
    assert r.returncode == 2
    assert "no GPU to benchmark" in r.stdout and "--quick" in r.stdout
