#!/usr/bin/env python
"""Read throughput and peak memory of fluoxr's lazy readers against plain whole-file reads.

Writes a BigTIFF of ``--size-gb`` GB (256 x 256 uint16 frames) and the same
recording as zarr (written by ``fluoxr.save``, default compression), then
times, each in a fresh process (so that peak RSS belongs to that case alone):

- ``fluoxr TIFF``: ``open_video(tiff).sum().compute()`` (threaded scheduler)
- ``fluoxr zarr``: ``open_video(zarr).sum().compute()``
- ``tifffile.imread``: ``tifffile.imread(tiff).sum()`` (whole file in memory)
- ``np.fromfile``: the raw bytes of the TIFF's pixel data, then ``.sum()``
- ``fluoxr TIFF x4``: fluoxr on a file ``--large-factor`` times larger, to
  show that peak memory does not grow with the file.

Files are read from the page cache (warm), so the figures compare the
readers' own overheads, not the disk. Targets (issue 2): fluoxr TIFF >= 0.7x
plain tifffile streaming; peak RSS under 1 GB on the 4x file.

Usage::

    python benchmarks/io.py                  # 2 GB and 8 GB files in $TMPDIR
    python benchmarks/io.py --quick          # tiny files, seconds
    python benchmarks/io.py --dir /data/tmp --size-gb 2 --large-factor 4
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time

import numpy as np

FRAME = (256, 256)

# (imports, timed code): the timed part opens the file and reads every pixel once
CASES = {
    "fluoxr TIFF": ("import fluoxr", "r = int(fluoxr.open_video(P).sum().compute())"),
    "fluoxr zarr": ("import fluoxr", "r = int(fluoxr.open_video(Z).sum().compute())"),
    "tifffile.imread": ("import tifffile", "r = int(tifffile.imread(P).sum(dtype='uint64'))"),
    "np.fromfile": (
        "import numpy as np, tifffile",
        "with tifffile.TiffFile(P) as t: off = t.series[0].dataoffset; shape = t.series[0].shape\n"
        "r = int(np.fromfile(P, dtype='<u2', offset=off, count=int(np.prod(shape))).sum(dtype='uint64'))",
    ),
}


def write_tiff(path: str, n_frames: int, seed: int = 0) -> None:
    import tifffile

    rng = np.random.default_rng(seed)

    def frames():
        for t0 in range(0, n_frames, 256):
            block = rng.integers(0, 4096, (min(256, n_frames - t0),) + FRAME, dtype=np.uint16)
            yield from block

    with tifffile.TiffWriter(path, bigtiff=True) as tw:
        tw.write(frames(), shape=(n_frames,) + FRAME, dtype=np.uint16, photometric="minisblack")


def run_case(case: tuple[str, str], tiff: str, zarr_path: str) -> dict:
    setup, code = case
    script = (
        "import json, time\n"
        f"{setup}\n"
        f"P, Z = {tiff!r}, {zarr_path!r}\n"
        "t0 = time.perf_counter()\n"
        f"{code}\n"
        "dt = time.perf_counter() - t0\n"
        # VmHWM, not ru_maxrss: after exec ru_maxrss still holds the parent's peak
        "hwm = [int(l.split()[1]) / 1024 for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
        "print(json.dumps({'secs': dt, 'result': r, 'peak_mb': hwm}))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-gb", type=float, default=2.0)
    ap.add_argument("--large-factor", type=int, default=4)
    ap.add_argument("--dir", default=None, help="where to write the test files (default: a temp folder)")
    ap.add_argument("--repeat", type=int, default=2, help="runs per case; the best is reported")
    ap.add_argument("--quick", action="store_true", help="tiny files (about 20 MB), one run")
    args = ap.parse_args(argv)
    if args.quick:
        args.size_gb, args.large_factor, args.repeat = 0.02, 2, 1

    import fluoxr

    work = tempfile.mkdtemp(prefix="fluoxr-bench-io-", dir=args.dir)
    frame_bytes = FRAME[0] * FRAME[1] * 2
    n = int(args.size_gb * 1e9 // frame_bytes)
    tiff = os.path.join(work, "small.tif")
    big = os.path.join(work, "large.tif")
    zarr_path = os.path.join(work, "small.zarr")
    t0 = time.perf_counter()
    write_tiff(tiff, n)
    write_tiff(big, n * args.large_factor, seed=1)
    fluoxr.save(fluoxr.open_video(tiff), zarr_path)
    print(f"# wrote {n} frames ({n * frame_bytes / 1e9:.2f} GB) TIFF + zarr and a {args.large_factor}x TIFF "
          f"in {time.perf_counter() - t0:.0f} s under {work}")
    print(f"# {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"warm page cache")

    expected = None
    rows = []
    for name, case in CASES.items():
        best = min((run_case(case, tiff, zarr_path) for _ in range(args.repeat)), key=lambda r: r["secs"])
        expected = best["result"] if expected is None else expected
        if best["result"] != expected:
            raise SystemExit(f"{name} summed to {best['result']}, expected {expected}")
        rows.append((name, n * frame_bytes, best))
    best = min((run_case(CASES["fluoxr TIFF"], big, zarr_path) for _ in range(args.repeat)), key=lambda r: r["secs"])
    rows.append((f"fluoxr TIFF x{args.large_factor}", n * args.large_factor * frame_bytes, best))

    print(f"{'case':<20}{'input GB':>10}{'wall s':>9}{'MB/s':>9}{'peak RSS MB':>13}")
    for name, nbytes, r in rows:
        print(f"{name:<20}{nbytes / 1e9:>10.2f}{r['secs']:>9.2f}{nbytes / 1e6 / r['secs']:>9.0f}{r['peak_mb']:>13.0f}")
    rate = {name: nbytes / r["secs"] for name, nbytes, r in rows}
    ratio = rate["fluoxr TIFF"] / rate["tifffile.imread"]
    print(f"# fluoxr TIFF / tifffile.imread throughput: {ratio:.2f}x (target >= 0.7x)")
    print(f"# peak RSS on the {args.large_factor}x file: {rows[-1][2]['peak_mb']:.0f} MB (target < 1024 MB)")
    for p in (tiff, big):
        os.remove(p)
    import shutil

    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
