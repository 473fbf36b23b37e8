#!/usr/bin/env python
"""Oscillation detection: fluoxr against Cellects 1.1.0 on the same TIFF, side by side.

Writes an ``oscillating_sheet`` recording (``--frames`` x 256 x 256 uint16,
a travelling wave on a blob, period 60 s, 2 s between frames) as a TIFF,
chunk by chunk, and a ``--long-factor`` times longer one (the same frames
repeated), then times, each in a fresh process (peak RSS = that process's
VmHWM):

- ``fluoxr``: ``open_video(tif)`` -> ``oscillations.detect(..., compat="cellects")``
  -> ``fluoxr.save`` to zarr (threaded scheduler, all cores), with fluoxr's
  default chunks and with ``--chunk-frames`` frames per chunk;
- ``Cellects 1.1.0``: ``tifffile.imread`` + ``detect_oscillations_dynamics``
  (``binary`` = ones, as its pipeline passes for a full arena), run with the
  peer venv's Python and ``PYTHONPATH=<cache>/fluoxr-peers/alt/cellects-1.1.0``
  when that exists; its labels are compared with fluoxr's, pixel for pixel.

Parameters of both: period 60 s, interval 2 s, minimal cluster 50 pixels.
Files are read from the page cache (warm). Targets (issue 8): fluoxr >= 100x
faster than Cellects, peak RSS <= a tenth of Cellects' and flat in the number
of frames.

Usage::

    python benchmarks/oscillations.py                 # 2000 and 8000 frames
    python benchmarks/oscillations.py --quick         # tiny, seconds
    python benchmarks/oscillations.py --frames 2000 --long-factor 4 --chunk-frames 64 --dir /data/tmp
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

import numpy as np

PERIOD_S, INTERVAL_S, MIN_SIZE = 60.0, 2.0, 50
CACHE = os.path.join(os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "fluoxr-peers")
PEER_PY = os.path.join(CACHE, "venv", "bin", "python")
CELLECTS_110 = os.path.join(CACHE, "alt", "cellects-1.1.0")

# VmHWM, not ru_maxrss: after exec ru_maxrss still holds the parent's peak
_PEAK = "hwm = [int(l.split()[1]) / 1024 for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"

FLUOXR = (
    "import json, time, fluoxr\n"
    "from fluoxr import oscillations as O\n"
    "t0 = time.perf_counter()\n"
    "v = fluoxr.open_video(P, fps=1 / {interval}, chunks={chunks})\n"
    "lab = O.detect(v, period_s={period}, min_cluster_size={size}, compat='cellects')\n"
    "fluoxr.save(lab, OUT, overwrite=True)\n"
    "dt = time.perf_counter() - t0\n" + _PEAK +
    "print(json.dumps({{'secs': dt, 'peak_mb': hwm, 'chunks': lab.chunks[0][0], 'nbytes': v.nbytes}}))\n"
)

CELLECTS = (
    "import json, time, numpy as np, tifffile\n"
    "from cellects.video.oscillations_functions import detect_oscillations_dynamics\n"
    "import cellects\n"
    "assert cellects.__file__.startswith({root!r}), cellects.__file__\n"
    "t0 = time.perf_counter()\n"
    "v = tifffile.imread(P)\n"
    "b = np.ones(v.shape, np.uint8)\n"
    "t1 = time.perf_counter()\n"
    "r = detect_oscillations_dynamics(v, b, 1, 0, {period}, {interval}, {size}, "
    "save_coord_thickening_slimming=False)\n"
    "dt = time.perf_counter() - t0\n" + _PEAK +
    "np.save(OUT, r)\n"
    "print(json.dumps({{'secs': dt, 'compute_secs': time.perf_counter() - t1, 'peak_mb': hwm, 'nbytes': v.nbytes}}))\n"
)


def write_tiff(path: str, n_frames: int, shape: tuple[int, int]) -> None:
    """The sheet recording, generated and written chunk by chunk."""
    import tifffile

    import fluoxr

    video, _ = fluoxr.datasets.oscillating_sheet(n_frames=n_frames, shape=shape, period_s=PERIOD_S,
                                                 interval_s=INTERVAL_S, wavelength_px=shape[1] / 3, seed=0,
                                                 chunks=64)

    def frames():
        for block in video.data.blocks:
            yield from block.compute()

    with tifffile.TiffWriter(path, bigtiff=n_frames * shape[0] * shape[1] * 2 > 3.9e9) as tw:
        tw.write(frames(), shape=(n_frames,) + shape, dtype=np.uint16, photometric="minisblack")


def repeat_tiff(source: str, path: str, repeat: int) -> None:
    """``source``'s frames ``repeat`` times over, streamed from a memory map."""
    import tifffile

    frames = tifffile.memmap(source)

    def stream():
        for _ in range(repeat):
            yield from frames

    n = frames.shape[0] * repeat
    with tifffile.TiffWriter(path, bigtiff=n * frames[0].nbytes > 3.9e9) as tw:
        tw.write(stream(), shape=(n,) + frames.shape[1:], dtype=frames.dtype, photometric="minisblack")


def run(python: str, script: str, env: dict | None = None) -> dict:
    out = subprocess.run([python, "-c", script], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"benchmark case failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--size", type=int, default=256, help="frame height and width")
    ap.add_argument("--long-factor", type=int, default=4, help="the long recording has this many times the frames")
    ap.add_argument("--chunk-frames", type=int, default=64, help="frames per chunk of the small-chunk runs")
    ap.add_argument("--dir", default=None, help="where to write the test files (default: a temp folder)")
    ap.add_argument("--no-peer", action="store_true", help="skip Cellects even if it is installed")
    ap.add_argument("--quick", action="store_true", help="tiny recordings, seconds")
    args = ap.parse_args(argv)
    if args.quick:
        args.frames, args.size, args.long_factor, args.chunk_frames = 60, 64, 2, 16

    work = tempfile.mkdtemp(prefix="fluoxr-bench-osc-", dir=args.dir)
    shape = (args.size, args.size)
    short, long_ = os.path.join(work, "sheet.tif"), os.path.join(work, "sheet_long.tif")
    t0 = time.perf_counter()
    write_tiff(short, args.frames, shape)
    repeat_tiff(short, long_, args.long_factor)
    print(f"# wrote {args.frames} and {args.frames * args.long_factor} frames of {shape} uint16 in "
          f"{time.perf_counter() - t0:.0f} s under {work}")
    print(f"# {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"warm page cache; period {PERIOD_S:.0f} s, interval {INTERVAL_S:.0f} s, min cluster {MIN_SIZE} px")

    params = dict(period=PERIOD_S, interval=INTERVAL_S, size=MIN_SIZE)
    rows = []
    for path, n in ((short, args.frames), (long_, args.frames * args.long_factor)):
        for chunks in ("None", str(args.chunk_frames)):
            out = os.path.join(work, "labels.zarr")
            r = run(sys.executable, f"P, OUT = {path!r}, {out!r}\n" + FLUOXR.format(chunks=chunks, **params))
            label = "default chunks" if chunks == "None" else f"{chunks}-frame chunks"
            rows.append((f"fluoxr ({label}, {r['chunks']} fr)", n, r))
            if path == short and chunks == "None":
                shutil.copytree(out, os.path.join(work, "fluoxr_short.zarr"), dirs_exist_ok=True)

    peer = None
    if args.no_peer:
        print("# Cellects skipped (--no-peer)")
    elif not (os.path.exists(PEER_PY) and os.path.isdir(CELLECTS_110)):
        print(f"# Cellects 1.1.0 not found ({PEER_PY}, {CELLECTS_110}); fluoxr only")
    else:
        out = os.path.join(work, "cellects.npy")
        env = dict(os.environ, PYTHONPATH=CELLECTS_110)
        peer = run(PEER_PY, f"P, OUT = {short!r}, {out!r}\n" + CELLECTS.format(root=CELLECTS_110, **params), env)
        rows.append(("Cellects 1.1.0", args.frames, peer))

    print(f"{'case':<36}{'frames':>7}{'input MB':>10}{'wall s':>9}{'MB/s':>9}{'peak RSS MB':>13}")
    for name, n, r in rows:
        print(f"{name:<36}{n:>7}{r['nbytes'] / 1e6:>10.0f}{r['secs']:>9.2f}{r['nbytes'] / 1e6 / r['secs']:>9.0f}"
              f"{r['peak_mb']:>13.0f}")
    fl = [r for name, n, r in rows if name.startswith("fluoxr") and n == args.frames]
    fl_long = [r for name, n, r in rows if name.startswith("fluoxr") and n != args.frames]
    for a, b in zip(fl, fl_long):
        print(f"# peak RSS {a['peak_mb']:.0f} MB at {args.frames} frames, {b['peak_mb']:.0f} MB at "
              f"{args.frames * args.long_factor} frames ({a['chunks']}-frame chunks)")
    if peer is not None:
        import fluoxr

        ours = fluoxr.open_result(os.path.join(work, "fluoxr_short.zarr")).values
        theirs = np.load(os.path.join(work, "cellects.npy"))
        differ = int(np.sum(ours != theirs))
        frames = int(np.sum(np.any(ours != theirs, axis=(1, 2))))
        print(f"# Cellects 1.1.0 (compute only {peer['compute_secs']:.1f} s) vs fluoxr compat='cellects': "
              f"{np.mean(ours == theirs):.6f} of pixels agree ({differ} differ, in {frames} of {len(ours)} frames)")
        for r in fl:
            print(f"# fluoxr ({r['chunks']}-frame chunks): {peer['secs'] / r['secs']:.0f}x faster than Cellects "
                  f"(target >= 100x), peak RSS {r['peak_mb'] / peer['peak_mb']:.3f} of Cellects' (target <= 0.1)")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
