"""benchmarks/drift.py --quick runs (so that the benchmark cannot rot) and shows what drift correction gives."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_drift_benchmark_quick(tmp_path):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "drift.py"), "--quick", "--tmp",
                        str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "failed" not in r.stdout, r.stdout
    rows = {line[:26].strip(): line[26:].split() for line in r.stdout.splitlines() if not line.startswith("#")}
    plain = rows["sofi"]
    for case in ("drift_correct + sofi", "drift first, then sofi"):
        fixed = rows[case]
        assert float(fixed[3]) < 0.15  # drift RMS against the truth, px
        assert abs(float(fixed[4]) - 1) < 0.15 < float(plain[4]) - 1  # sharp only when corrected
