"""benchmarks/memory.py --quick runs (so that the benchmark cannot rot)."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_memory_benchmark_quick(tmp_path):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "memory.py"), "--quick", "--dir",
                        str(tmp_path)], capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    for words in ("peak MB @150", "peak MB @600", "ratio", "limit MB", "wall s", "MB/s of input", "moments(6) -> save",
                  "detect -> save", "no peer"):
        assert words in r.stdout, r.stdout
