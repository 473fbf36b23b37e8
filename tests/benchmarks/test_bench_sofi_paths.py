"""benchmarks/sofi.py --paths runs every SOFI path and prints one row per path (fluoxr side only here)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow  # a benchmark script in a fresh process
def test_sofi_paths_benchmark_lists_every_path(tmp_path):
    sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
    try:
        from sofi import PATHS
    finally:
        sys.path.pop(0)
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    r = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "sofi.py"), "--paths", "--quick",
                        "--repeat", "1", "--tmp", str(tmp_path), "--peer-python", str(tmp_path / "no-python")],
                       capture_output=True, text=True, timeout=600, env=env)
    assert r.returncode == 0, r.stderr
    rows = {line.split("|")[0].strip(): line for line in r.stdout.splitlines() if line.count("|") == 2}
    assert set(PATHS) <= set(rows)
    for name in PATHS:
        secs, mbs = (float(v) for v in rows[name].split("|")[1].split()[:2])
        assert secs > 0 and mbs > 0
    assert "pysofi: not run" in r.stdout and "target: every path" in r.stdout
