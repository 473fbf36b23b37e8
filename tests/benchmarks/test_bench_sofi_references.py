"""benchmarks/sofi.py --references runs (the benchmark reads the tests' reference registry) and agrees to 1e-12."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow  # a benchmark script in a fresh process
def test_sofi_benchmark_reads_the_reference_registry(tmp_path):
    script = os.path.join(ROOT, "benchmarks", "sofi.py")
    r = subprocess.run([sys.executable, script, "--references", "--tmp", str(tmp_path)], capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    rows = [line for line in r.stdout.splitlines() if "fluoxr.testing.references" in line]
    assert len(rows) == 4
    assert all(float(line.split()[-2]) < 1e-12 for line in rows)
