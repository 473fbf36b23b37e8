"""Peak memory does not grow with the recording's length (issue 6).

Each run is a fresh process that computes SOFI moments + cumulants to order 6
and a 100-ROI extraction with neuropil on a lazily generated recording of T
or 4T frames, and reports its peak RSS. ``VmHWM`` from ``/proc/self/status``
is used rather than ``getrusage(RUSAGE_CHILDREN)``: the latter also counts the
forked test process's memory before ``exec``, which would hide the growth.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import pytest

pytestmark = pytest.mark.slow

_CHILD = textwrap.dedent(
    """
    import json, numpy as np, dask, dask.array as da, fluoxr
    T = {frames}
    rng = da.random.default_rng(0)
    data = rng.integers(0, 4000, size=(T, 192, 192), chunks=(100, 192, 192), dtype=np.uint16)
    video = fluoxr.as_video(data, fps=30)
    yy, xx = np.mgrid[10:180:17, 10:180:17]
    rois = fluoxr.ROISet.from_positions(np.stack([yy.ravel(), xx.ravel()], 1), (192, 192), size=7, window="disc")
    with dask.config.set(scheduler="threads", num_workers=2):
        m, k, ds = dask.compute(fluoxr.moments(video, 6), fluoxr.cumulants(video, 6),
                                fluoxr.extract(video, rois, neuropil={{"min_neuropil_pixels": 100}}))
    assert ds.F.shape == (len(rois), T)
    hwm = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")][0] / 1024
    print(json.dumps({{"peak_mb": hwm, "input_mb": video.nbytes / 1e6}}))
    """
)


def _peak(frames: int) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD.format(frames=frames)], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_peak_rss_flat_in_number_of_frames():
    small = _peak(1000)
    large = _peak(4000)
    assert large["input_mb"] == pytest.approx(4 * small["input_mb"])
    ratio = large["peak_mb"] / small["peak_mb"]
    assert ratio < 1.3, f"peak RSS {small['peak_mb']:.0f} MB at T, {large['peak_mb']:.0f} MB at 4T (x{ratio:.2f})"
