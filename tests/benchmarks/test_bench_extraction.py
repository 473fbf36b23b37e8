"""benchmarks/extraction.py --quick runs (so that the benchmark cannot rot)."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.slow
def test_extraction_benchmark_quick(tmp_path):
    r = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "extraction.py"), "--quick", "--no-peers",
                        "--workdir", str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    for words in ("fluoxr extract (+masks)", "fluoxr cell_masks+neuropil_masks", "fluoxr spikes.oasis", "MB/s"):
        assert words in r.stdout, r.stdout
    assert "failed" not in r.stdout
