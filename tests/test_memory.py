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


# --------------------------------------------------------------------------------------------
# issue 12: with DEFAULT chunks, on zarr recordings of 1,500 and 6,000 frames of 256 x 256 uint16, peak RSS
# of moments(6) (computed, and saved) and of oscillation detection saved to zarr (what `fluoxr oscillations`
# does) grows at most 1.2x and stays under half the long recording (393 MB). Full size: at smaller frames
# the ~250 MB of loaded libraries would hide a growth of the data's part. Moments run on random frames (fast
# to write; their cost does not depend on the values), detection on an oscillating sheet (pure noise, the
# worst case for cluster labelling, peaks at 420 MB: see the report of issue 12).

_ISSUE12_CHILD = textwrap.dedent(
    """
    import json, shutil, fluoxr, fluoxr.oscillations
    video = fluoxr.open_video({path!r})
    case, out = {case!r}, {out!r}
    if case == "moments":
        assert fluoxr.moments(video, 6).compute().shape[1:] == (256, 256)
    elif case == "moments-save":
        fluoxr.save(fluoxr.moments(video, 6), out)
    else:
        fluoxr.save(fluoxr.oscillations.detect(video, period_s=60, interval_s=2, min_cluster_size=4), out)
    shutil.rmtree(out, ignore_errors=True)
    hwm = [int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmHWM:")][0] / 1024
    print(json.dumps({{"peak_mb": hwm, "input_mb": video.nbytes / 1e6, "chunks": len(video.chunks[0])}}))
    """
)


def _recording(folder, n_frames: int, kind: str) -> str:
    import dask.array as da
    import numpy as np

    import fluoxr

    path = str(folder / f"{kind}-{n_frames}.zarr")
    if kind == "sheet":
        video = fluoxr.datasets.oscillating_sheet(n_frames=n_frames, shape=(256, 256))[0]
    else:
        frames = da.random.default_rng(n_frames).integers(0, 4000, (n_frames, 256, 256), dtype=np.uint16,
                                                          chunks=(200, 256, 256))
        video = fluoxr.as_video(frames, fps=0.5, chunks="auto")
    fluoxr.save(video, path)  # default chunks, stored as they are
    return path


@pytest.fixture(scope="module")
def issue12_recordings(tmp_path_factory):
    folder = tmp_path_factory.mktemp("issue12")
    return {kind: {n: _recording(folder, n, kind) for n in (1500, 6000)} for kind in ("random", "sheet")}


@pytest.mark.parametrize("case", ["moments", "moments-save", "detect-save"])
def test_peak_rss_flat_and_under_half_the_recording_default_chunks(case, issue12_recordings, tmp_path):
    peaks = {}
    for n, path in issue12_recordings["sheet" if case.startswith("detect") else "random"].items():
        code = _ISSUE12_CHILD.format(path=path, case=case, out=str(tmp_path / "out.zarr"))
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
        assert out.returncode == 0, out.stderr[-2000:]
        peaks[n] = json.loads(out.stdout.strip().splitlines()[-1])
    short, long_ = peaks[1500], peaks[6000]
    assert long_["chunks"] >= 3 * short["chunks"] >= 30  # default chunks: both reach a steady state
    ratio = long_["peak_mb"] / short["peak_mb"]
    # 393: half the recording in MB, compared with VmHWM / 1024 as the issue's figures and the other memory
    # tests count it (strictly that is MiB: 393 MB is 375 MiB)
    limit = long_["input_mb"] / 2
    msg = f"{case}: peak RSS {short['peak_mb']:.0f} MB at 1,500 frames, {long_['peak_mb']:.0f} MB at 6,000 (x{ratio:.2f})"
    assert ratio <= 1.2, msg
    assert long_["peak_mb"] < limit, msg + f", limit {limit:.0f} MB"
