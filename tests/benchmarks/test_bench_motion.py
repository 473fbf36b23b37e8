"""benchmarks/motion.py --quick runs (so that the benchmark cannot rot)."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_motion_benchmark_quick(tmp_path):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "motion.py"), "--quick", "--no-peers",
                        "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=600,
                       env=dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")))
    assert r.returncode == 0, r.stdout + r.stderr
    for words in ("fluoxr estimate+apply", "frames/s", "files written: 0", "rigid", "nonrigid"):
        assert words in r.stdout, r.stdout
    assert "failed" not in r.stdout
