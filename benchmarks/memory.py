#!/usr/bin/env python
"""Peak memory that does not grow with the recording: fluoxr at two lengths, side by side.

Writes two zarr recordings of 256 x 256 uint16 frames with ``fluoxr.save``
(``--frames``, default 1,500 and 6,000; blinking emitters for SOFI, an
oscillating sheet for oscillation detection), then runs each case in a fresh
process (so that its peak RSS, ``VmHWM`` from ``/proc/self/status``, belongs
to that case alone) with default chunks and the default threaded scheduler:

- ``read``: ``open_video(zarr).sum().compute()`` (the floor: one read);
- ``moments(6)``: ``fluoxr.moments(video, 6).compute()``;
- ``moments(6) -> save``: ``fluoxr.save(fluoxr.moments(video, 6), out)``;
- ``detect -> save``: ``fluoxr.save(fluoxr.oscillations.detect(video, ...), out)``
  (what ``fluoxr oscillations`` does).

For each case it prints peak RSS at both lengths, their ratio, wall time and
MB/s of input at the long length. Targets (issue 12): ratio <= 1.2 and peak
RSS at the long length under half its size (393 MB for 6,000 frames). There is
no peer for this benchmark: the other tools do not stream these analyses from
a store, so their peak memory is the recording's size by construction.

Numba kernels are compiled (and cached) before timing, so that compilation is
not counted. Files are read from the page cache.

Usage::

    python benchmarks/memory.py                 # 1,500 and 6,000 frames (about 1 min)
    python benchmarks/memory.py --quick         # 150 and 600 frames of 128 x 128, seconds
    python benchmarks/memory.py --dir /data/tmp   # keeps the recordings there for the next run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

# (recording, timed code); V is the opened video, O an output path
CASES = {
    "read": ("emitters", "r = int(V.sum().compute())"),
    "moments(6)": ("emitters", "r = fluoxr.moments(V, 6).compute().shape"),
    "moments(6) -> save": ("emitters", "r = fluoxr.save(fluoxr.moments(V, 6), O)"),
    "detect -> save": ("sheet", "r = fluoxr.save(fluoxr.oscillations.detect(V, period_s=60, min_cluster_size=4), O)"),
}

_CHILD = """\
import json, os, time
import fluoxr, fluoxr.oscillations
V = fluoxr.open_video({path!r})
O = {out!r}
t0 = time.perf_counter()
{code}
secs = time.perf_counter() - t0
hwm = [int(l.split()[1]) / 1024 for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]
print(json.dumps({{'secs': secs, 'peak_mb': hwm, 'input_mb': V.nbytes / 1e6}}))
"""


def write_recordings(work: str, n_frames: int, shape: tuple[int, int]) -> dict[str, str]:
    """The two recordings of ``n_frames`` frames, written to zarr by ``fluoxr.save``."""
    import fluoxr

    paths = {}
    for kind, make in (("emitters", lambda: fluoxr.datasets.blinking_emitters(n_frames=n_frames, shape=shape)[0]),
                       ("sheet", lambda: fluoxr.datasets.oscillating_sheet(n_frames=n_frames, shape=shape)[0])):
        paths[kind] = os.path.join(work, f"{kind}-{n_frames}x{shape[0]}x{shape[1]}.zarr")
        # resume=True: a recording already written in --dir (by an earlier run) is kept as is
        fluoxr.save(make(), paths[kind], resume=True)
    return paths


def run_case(code: str, path: str, out: str) -> dict:
    shutil.rmtree(out, ignore_errors=True)
    script = _CHILD.format(path=path, out=out, code=code)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"case failed:\n{script}\n{proc.stderr[-3000:]}")
    shutil.rmtree(out, ignore_errors=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, nargs=2, default=(1500, 6000), metavar=("SHORT", "LONG"))
    ap.add_argument("--size", type=int, default=256, help="frame side in pixels (default 256)")
    ap.add_argument("--dir", default=None,
                    help="where to write the recordings, kept there for the next run (default: a temp folder, removed)")
    ap.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES), metavar="CASE")
    ap.add_argument("--quick", action="store_true", help="150 and 600 frames of 128 x 128: checks that it runs")
    args = ap.parse_args(argv)
    if args.quick:
        args.frames, args.size = (150, 600), 128
    shape = (args.size, args.size)

    work = args.dir or tempfile.mkdtemp(prefix="fluoxr-bench-memory-")
    os.makedirs(work, exist_ok=True)
    try:
        t0 = time.perf_counter()
        warm = write_recordings(work, 64, shape)
        for code_kind in {k for k, _ in CASES.values()}:
            for name, (kind, code) in CASES.items():  # compile and cache the numba kernels once
                if kind == code_kind and name in args.cases:
                    run_case(code, warm[kind], os.path.join(work, "warm-out.zarr"))
        recordings = [write_recordings(work, n, shape) for n in args.frames]
        frame_mb = shape[0] * shape[1] * 2 / 1e6
        print(f"# wrote {args.frames[0]} and {args.frames[1]} frames of {shape[0]} x {shape[1]} uint16 "
              f"({args.frames[0] * frame_mb:.0f} and {args.frames[1] * frame_mb:.0f} MB) as zarr in "
              f"{time.perf_counter() - t0:.0f} s under {work}")
        print(f"# {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
              "default chunks, threaded scheduler, warm page cache, each case in a fresh process")
        print("# no peer: pysofi, Cellects and the others load the whole recording, so their peak is its size")
        limit = args.frames[1] * frame_mb / 2
        short_h, long_h = f"peak MB @{args.frames[0]}", f"peak MB @{args.frames[1]}"
        print(f"{'case':<22}{short_h:>16}{long_h:>16}{'ratio':>8}{'limit MB':>10}"
              f"{'wall s':>9}{'MB/s of input':>15}  verdict")
        failed = []
        for name in args.cases:
            kind, code = CASES[name]
            out = os.path.join(work, "out.zarr")
            short, long_ = (run_case(code, rec[kind], out) for rec in recordings)
            ratio = long_["peak_mb"] / short["peak_mb"]
            ok = ratio <= 1.2 and long_["peak_mb"] < limit  # --quick: tiny files, the limit is not meant
            failed += [] if ok else [name]
            print(f"{name:<22}{short['peak_mb']:>16.0f}{long_['peak_mb']:>16.0f}{ratio:>8.2f}{limit:>10.0f}"
                  f"{long_['secs']:>9.2f}{long_['input_mb'] / long_['secs']:>15.0f}  {'ok' if ok else 'OVER'}")
        print(f"# targets (issue 12): ratio <= 1.2 and peak < {limit:.0f} MB (half the long recording): "
              + ("all met" if not failed else f"not met by {', '.join(failed)}"))
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
