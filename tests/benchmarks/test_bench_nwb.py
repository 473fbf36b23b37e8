"""benchmarks/nwb.py --quick runs (so that the benchmark cannot rot)."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_nwb_benchmark_quick(tmp_path):
    pytest.importorskip("pynwb")
    r = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "nwb.py"), "--quick", "--dir", str(tmp_path)],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    for words in ("200 ROIs x 2,000 frames", "wall s", "MB/s", "peak RSS MB", "limit MB", "under the limit"):
        assert words in r.stdout, r.stdout
    assert os.listdir(tmp_path) == []
