"""benchmarks/resume.py --quick runs (so that the benchmark cannot rot)."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_resume_benchmark_quick(tmp_path):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "resume.py"), "--quick", "--dir",
                        str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    for words in ("full run", "killed at half", "resume", "MB/s of input", "peak RSS MB", "peer rerun s",
                  "resumed store equals the full run's, file by file: yes"):
        assert words in r.stdout, r.stdout
