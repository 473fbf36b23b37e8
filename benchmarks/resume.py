#!/usr/bin/env python
"""What a resume saves: an interrupted save killed half-way, resumed, against a full run.

Writes a TIFF recording (``--frames`` frames of 256 x 256 uint16, an
oscillating sheet from ``fluoxr.datasets``), then times three cases of
``fluoxr oscillations``' work, ``save(detect(open_video(tif)), out)``, each in a
fresh process (so its wall time includes reading the input and its peak RSS is
its own):

- ``full run``: the save from scratch.
- ``killed at half``: the same save, SIGKILLed once half of the chunks are
  marked written (this row's time is until the kill).
- ``resume``: ``save(..., resume=True)`` on what the kill left.

The resumed store is compared with the full run's, file by file (it must be
byte-identical), and the resume must take clearly less than the full run
(target: at most 0.7x). None of the five peer tools resumes an interrupted
write: their rerun after a crash is the full run, shown in the last column.

Usage::

    python benchmarks/resume.py                 # 4000 frames (524 MB) in $TMPDIR
    python benchmarks/resume.py --quick         # 400 frames, seconds
    python benchmarks/resume.py --frames 8000 --dir /data/tmp
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time

CHILD = """
import json, resource, sys, time
import dask, fluoxr
tif, out, resume = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
video = fluoxr.open_video(tif, fps=0.5, chunks=CHUNK)
labels = fluoxr.oscillations.detect(video, period_s=60, interval_s=2, min_cluster_size=5)
t0 = time.perf_counter()
with dask.config.set(scheduler="threads"):
    fluoxr.save(labels, out, resume=resume, overwrite=not resume)
wall = time.perf_counter() - t0
print(json.dumps({"wall": wall, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "nbytes": video.nbytes}))
"""


def _digest(folder: str) -> dict[str, str]:
    out = {}
    for root, _, names in os.walk(folder):
        for n in names:
            full = os.path.join(root, n)
            with open(full, "rb") as fh:
                out[os.path.relpath(full, folder)] = hashlib.sha256(fh.read()).hexdigest()
    return out


def _run(code: str, tif: str, out: str, resume: bool) -> dict:
    r = subprocess.run([sys.executable, "-c", code, tif, out, "1" if resume else "0"],
                       capture_output=True, text=True, timeout=3600)
    if r.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{r.stderr[-3000:]}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def _kill_at_half(code: str, tif: str, out: str, n_chunks: int) -> dict:
    """Start the save and SIGKILL it once half of its chunks are marked written."""
    done = os.path.join(out + ".partial", "done", "oscillations")
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", code, tif, out, "0"], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    while True:
        n = len(os.listdir(done)) if os.path.isdir(done) else 0
        if n >= n_chunks // 2:
            break
        if proc.poll() is not None:
            raise SystemExit(f"the save finished before half of it was written:\n{proc.stderr.read()[-2000:]}")
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    return {"wall": time.perf_counter() - t0, "written": len(os.listdir(done)), "chunks": n_chunks}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=4000, help="frames of the recording (default 4000)")
    ap.add_argument("--chunk", type=int, default=100, help="frames per chunk (default 100)")
    ap.add_argument("--quick", action="store_true", help="400 frames of 128 x 128, seconds")
    ap.add_argument("--dir", default=None, help="where to write (default: a temporary folder, removed after)")
    args = ap.parse_args(argv)

    import numpy as np
    import tifffile

    import fluoxr

    frames, shape, chunk = (400, (128, 128), 20) if args.quick else (args.frames, (256, 256), args.chunk)
    work = args.dir or tempfile.mkdtemp(prefix="fluoxr-resume-")
    os.makedirs(work, exist_ok=True)
    try:
        tif = os.path.join(work, "sheet.tif")
        video, _ = fluoxr.datasets.oscillating_sheet(n_frames=frames, shape=shape, seed=1)
        def blocks():  # one block of frames in memory at a time
            for t0 in range(0, frames, 200):
                yield from np.asarray(video.isel(time=slice(t0, t0 + 200)).values)

        with tifffile.TiffWriter(tif, bigtiff=True) as w:
            w.write(blocks(), shape=(frames,) + shape, dtype=video.dtype, photometric="minisblack")
        code = CHILD.replace("CHUNK", str(chunk))
        n_chunks = -(-frames // chunk)
        full_out, cut_out = os.path.join(work, "full.zarr"), os.path.join(work, "cut.zarr")
        full = _run(code, tif, full_out, resume=False)
        killed = _kill_at_half(code, tif, cut_out, n_chunks)
        resumed = _run(code, tif, cut_out, resume=True)
        same = _digest(full_out) == _digest(cut_out)
        mb = full["nbytes"] / 1e6

        print(f"# {platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, "
              f"fluoxr {fluoxr.__version__}")
        print(f"# recording: {frames} frames of {shape[0]}x{shape[1]} uint16 = {mb:.0f} MB, {n_chunks} chunks of "
              f"{chunk} frames; work: save(detect(video)) to zarr, threaded scheduler")
        print(f"{'case':<34}{'wall s':>9}{'MB/s of input':>15}{'peak RSS MB':>13}{'peer rerun s':>14}")
        print(f"{'full run':<34}{full['wall']:>9.2f}{mb / full['wall']:>15.0f}{full['rss_mb']:>13.0f}"
              f"{full['wall']:>14.2f}")
        print(f"{'killed at half (' + str(killed['written']) + '/' + str(n_chunks) + ' chunks)':<34}"
              f"{killed['wall']:>9.2f}{'':>15}{'':>13}{'':>14}")
        print(f"{'resume':<34}{resumed['wall']:>9.2f}{mb / resumed['wall']:>15.0f}{resumed['rss_mb']:>13.0f}"
              f"{full['wall']:>14.2f}")
        ratio = resumed["wall"] / full["wall"]
        print(f"resume / full run: {ratio:.2f}x (target <= 0.7x): {'met' if ratio <= 0.7 else 'MISSED'}")
        print(f"resumed store equals the full run's, file by file: {'yes' if same else 'NO'}")
        print("peers: none of pysofi, suite2p, optimap, Cellects or cellector resumes an interrupted write; "
              "their rerun after a crash is the full run")
        return 0 if same else 1
    finally:
        if args.dir is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
