#!/usr/bin/env python
"""Writing a long session's traces to NWB in flat memory: fluoxr.to_nwb on a lazy traces Dataset.

Builds a lazy ``("roi", "time")`` float32 Dataset (dask random numbers,
chunked along time, ``--chunk-frames`` frames per chunk) of ``--rois`` ROIs x
``--frames`` frames, with one small window ROI per trace, and writes it with
:func:`fluoxr.to_nwb` in a fresh process, so that its peak RSS (``VmHWM`` from
``/proc/self/status``) belongs to the write alone. Prints the traces' size,
wall time, MB/s of traces written and peak RSS against the 1 GB target
(issue 14: 10,000 ROIs x 100,000 frames, 4 GB of float32, under 1 GB).

There is no peer: suite2p's NWB export (``suite2p.io.nwb.save_nwb``) loads
``F.npy``, ``Fneu.npy`` and ``spks.npy`` whole and hands them to pynwb, so its
peak memory is the traces' size by construction.

Usage::

    python benchmarks/nwb.py                        # 10,000 ROIs x 100,000 frames, gzip (minutes)
    python benchmarks/nwb.py --frames 10000         # a tenth of it
    python benchmarks/nwb.py --compression none     # without gzip: disk speed
    python benchmarks/nwb.py --quick                # 200 ROIs x 2,000 frames, seconds
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile

_CHILD = """\
import json, time, datetime
import numpy as np, dask.array as da, xarray as xr, fluoxr
n, T, c = {rois}, {frames}, {chunk}
side = int(np.ceil(np.sqrt(n))) * 4
pos = [(4 * (i // (side // 4)) + 2, 4 * (i % (side // 4)) + 2) for i in range(n)]
rois = fluoxr.ROISet.from_positions(pos, (side, side), size=3)
F = da.random.default_rng(0).random((n, T), chunks=(n, c), dtype=np.float32)
ds = xr.Dataset({{"F": (("roi", "time"), F)}}, attrs={{"fps": 30.0}})
meta = {{"session_start_time": datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc),
        "subject": {{"subject_id": "bench", "species": "Mus musculus", "sex": "U", "age": "P90D"}},
        "imaging_plane": {{"location": "VISp", "indicator": "GCaMP6f", "excitation_lambda": 920.0}}}}
t0 = time.perf_counter()
fluoxr.to_nwb(ds, {out!r}, rois=rois, metadata=meta, compression={compression!r}, overwrite=True)
secs = time.perf_counter() - t0
hwm = [int(l.split()[1]) / 1024 for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]
import os
print(json.dumps({{'secs': secs, 'peak_mb': hwm, 'traces_mb': F.nbytes / 1e6, 'file_mb': os.path.getsize({out!r}) / 1e6}}))
"""


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rois", type=int, default=10_000)
    p.add_argument("--frames", type=int, default=100_000)
    p.add_argument("--chunk-frames", type=int, default=1_000, help="frames per dask chunk (1,000: 40 MB at 10,000 ROIs)")
    p.add_argument("--compression", choices=("gzip", "none"), default="gzip")
    p.add_argument("--quick", action="store_true", help="200 ROIs x 2,000 frames")
    p.add_argument("--dir", default=None, help="folder for the NWB file (default: a temporary folder, removed)")
    args = p.parse_args(argv)
    if args.quick:
        args.rois, args.frames, args.chunk_frames = 200, 2_000, 250
    limit_mb = 1024.0
    with tempfile.TemporaryDirectory(dir=args.dir) as work:
        out = os.path.join(work, "bench.nwb")
        script = _CHILD.format(rois=args.rois, frames=args.frames, chunk=args.chunk_frames, out=out,
                               compression=None if args.compression == "none" else "gzip")
        env = dict(os.environ)
        root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
        if r.returncode != 0:
            print(r.stdout + r.stderr, file=sys.stderr)
            return 1
        res = json.loads(r.stdout.strip().splitlines()[-1])
    print(f"fluoxr.to_nwb: {args.rois:,} ROIs x {args.frames:,} frames, float32, lazy (dask, "
          f"{args.chunk_frames:,} frames per chunk), compression {args.compression}")
    print(f"  {'traces MB':>10} {'file MB':>10} {'wall s':>8} {'MB/s':>8} {'peak RSS MB':>12} {'limit MB':>9}")
    print(f"  {res['traces_mb']:>10.0f} {res['file_mb']:>10.0f} {res['secs']:>8.1f} "
          f"{res['traces_mb'] / res['secs']:>8.1f} {res['peak_mb']:>12.0f} {limit_mb:>9.0f}")
    print(f"  peak RSS {'under' if res['peak_mb'] < limit_mb else 'OVER'} the limit; no peer (suite2p's NWB export "
          "holds the traces in memory)")
    print(f"  {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}")
    return 0 if res["peak_mb"] < limit_mb else 2


if __name__ == "__main__":
    sys.exit(main())
