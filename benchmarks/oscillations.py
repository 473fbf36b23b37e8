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

``--verify`` instead compares fluoxr's ``compat="cellects"`` and
``compat="cellects-lowmem"`` with Cellects 1.1.0 itself on several small
recordings (uint16 sheet with a time-varying ``binary``, blinking emitters,
float32 noise, uint8 frames of 9 x 11 pixels, an RGB video, ``starting_time``
> 0) for several chunkings, one-frame chunks included, and prints the
agreement.

Usage::

    python benchmarks/oscillations.py                 # 2000 and 8000 frames
    python benchmarks/oscillations.py --quick         # tiny, seconds
    python benchmarks/oscillations.py --verify        # pixel agreement with Cellects 1.1.0
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

# VmHWM, not ru_maxrss: after exec ru_maxrss still holds the parent's peak; CPU seconds of all threads
_PEAK = ("hwm = [int(l.split()[1]) / 1024 for l in open('/proc/self/status') if l.startswith('VmHWM:')][0]\n"
         "import resource\n"
         "ru = resource.getrusage(resource.RUSAGE_SELF)\n"
         "cpu = ru.ru_utime + ru.ru_stime - CPU0\n")
_CPU0 = "import resource\nru0 = resource.getrusage(resource.RUSAGE_SELF)\nCPU0 = ru0.ru_utime + ru0.ru_stime\n"

FLUOXR = (
    "import time\n"
    "s0 = time.perf_counter()\n"
    "import json, numpy as np, tifffile, zarr, fluoxr\n"
    "from fluoxr import oscillations as O\n"
    # one-time start-up outside the clock, as Cellects' imports are: the numba kernels load here
    "O.detect(fluoxr.as_video(np.ones((3, 8, 8), np.uint16), fps=1), period_s=2, min_cluster_size=1, "
    "compat='cellects').compute()\n"
    "startup = time.perf_counter() - s0\n" + _CPU0 +
    "t0 = time.perf_counter()\n"
    "v = fluoxr.open_video(P, fps=1 / {interval}, chunks={chunks})\n"
    "lab = O.detect(v, period_s={period}, min_cluster_size={size}, compat='cellects')\n"
    "fluoxr.save(lab, OUT, overwrite=True)\n"
    "dt = time.perf_counter() - t0\n" + _PEAK +
    "print(json.dumps({{'secs': dt, 'cpu': cpu, 'startup': startup, 'peak_mb': hwm, 'chunks': lab.chunks[0][0], "
    "'nbytes': v.nbytes}}))\n"
)

CELLECTS = (
    "import time\n"
    "s0 = time.perf_counter()\n"
    "import json, numpy as np, tifffile\n"
    "from cellects.video.oscillations_functions import detect_oscillations_dynamics\n"
    "import cellects\n"
    "assert cellects.__file__.startswith({root!r}), cellects.__file__\n"
    "startup = time.perf_counter() - s0\n" + _CPU0 +
    "t0 = time.perf_counter()\n"
    "v = tifffile.imread(P)\n"
    "b = np.ones(v.shape, np.uint8)\n"
    "t1 = time.perf_counter()\n"
    "r = detect_oscillations_dynamics(v, b, 1, 0, {period}, {interval}, {size}, "
    "save_coord_thickening_slimming=False)\n"
    "dt = time.perf_counter() - t0\n" + _PEAK +
    "np.save(OUT, r)\n"
    "print(json.dumps({{'secs': dt, 'cpu': cpu, 'startup': startup, 'compute_secs': dt - (t1 - t0), "
    "'peak_mb': hwm, 'nbytes': v.nbytes}}))\n"
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


VERIFY_CHILD = """
import json, sys, numpy as np
from cellects.video.oscillations_functions import detect_oscillations_dynamics as f
for case in json.load(open(sys.argv[1])):
    v, b = np.load(case["video"]), np.load(case["binary"])
    r = f(v, b, 1, case["start"], case["period"], case["interval"], case["minsize"],
          lose_accuracy_to_save_memory=case["lowmem"], save_coord_thickening_slimming=False)
    np.save(case["out"], r)
"""


def verify(work: str) -> int:
    """fluoxr's Cellects modes against Cellects 1.1.0 on small recordings, every chunking."""
    from scipy import ndimage as ndi

    import fluoxr
    from fluoxr import oscillations as O
    from fluoxr.testing import default_chunkings

    if not (os.path.exists(PEER_PY) and os.path.isdir(CELLECTS_110)):
        print(f"# Cellects 1.1.0 not found ({PEER_PY}, {CELLECTS_110}); nothing to verify")
        return 0
    rng = np.random.default_rng(5)
    cases = []

    def add(name, video, binary, start, period, interval, minsize):
        np.save(os.path.join(work, f"{name}_v.npy"), video)
        np.save(os.path.join(work, f"{name}_b.npy"), binary)
        for lowmem in (False, True):
            cases.append(dict(name=name, video=os.path.join(work, f"{name}_v.npy"),
                              binary=os.path.join(work, f"{name}_b.npy"), start=start, period=period,
                              interval=interval, minsize=minsize, lowmem=lowmem,
                              out=os.path.join(work, f"{name}_{int(lowmem)}.npy")))

    sheet, truth = fluoxr.datasets.oscillating_sheet(n_frames=150, shape=(72, 90), seed=4)
    binary = np.broadcast_to(truth.mask, sheet.shape).astype(np.uint8).copy()
    binary[40:60, :, :30] = 0  # a binary video that changes in time
    add("sheet uint16, binary video", sheet.values, binary, 0, 60, 2, 30)
    blink, _ = fluoxr.datasets.blinking_emitters(n_frames=200, shape=(64, 80), n_emitters=12, seed=3)
    add("emitters uint16, start 3", blink.values, np.ones(blink.shape, np.uint8), 3, 10, 2, 6)
    noise = ndi.gaussian_filter(rng.standard_normal((120, 40, 50)), (1, 2, 2)).astype(np.float32) + 5
    add("smooth noise float32", noise, np.ones(noise.shape, np.uint8), 10, 7, 1, 3)
    tiny = rng.integers(0, 50, (300, 9, 11)).astype(np.uint8)
    add("9 x 11 uint8 frames", tiny, np.ones(tiny.shape, np.uint8), 0, 4, 1, 2)
    rgb = np.stack([blink.values[:80], blink.values[:80][::-1], blink.values[:80] // 2], -1)
    add("RGB (t, y, x, 3)", rgb, np.ones(rgb.shape[:3], np.uint8), 5, 10, 2, 6)
    spec = os.path.join(work, "cases.json")
    with open(spec, "w") as fh:
        json.dump(cases, fh)
    child = os.path.join(work, "cellects_child.py")
    with open(child, "w") as fh:
        fh.write(VERIFY_CHILD)
    subprocess.run([PEER_PY, child, spec], check=True, env=dict(os.environ, PYTHONPATH=CELLECTS_110))
    total = differ = 0
    for c in cases:
        expected = np.load(c["out"])
        v = np.load(c["video"])
        video = fluoxr.as_video(v, dims=("time", "y", "x", "channel") if v.ndim == 4 else None)  # Cellects' colour
        compat = "cellects-lowmem" if c["lowmem"] else "cellects"
        worst = 1.0
        for chunks in default_chunkings(v.shape[0]):
            got = O.detect(video.chunk({"time": chunks}), mask=np.load(c["binary"]), period_s=c["period"],
                           interval_s=c["interval"], min_cluster_size=c["minsize"], start=c["start"],
                           compat=compat).values
            worst = min(worst, float(np.mean(got == expected)))
            total += got.size
            differ += int(np.sum(got != expected))
        print(f"{c['name']:<30} {compat:<16} {str(v.shape):<18} {len(default_chunkings(v.shape[0]))} chunkings: "
              f"agreement {worst:.6f} (worst chunking)")
    print(f"# {differ} of {total} pixel-frames differ from Cellects 1.1.0 across all cases and chunkings")
    return 0


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
    ap.add_argument("--repeat", type=int, default=3, help="runs per fluoxr case; the fastest is reported")
    ap.add_argument("--quick", action="store_true", help="tiny recordings, seconds")
    ap.add_argument("--verify", action="store_true", help="compare with Cellects 1.1.0 on small recordings instead")
    args = ap.parse_args(argv)
    if args.verify:
        work = tempfile.mkdtemp(prefix="fluoxr-verify-osc-", dir=args.dir)
        try:
            return verify(work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if args.quick:
        args.frames, args.size, args.long_factor, args.chunk_frames, args.repeat = 60, 64, 2, 16, 1

    work = tempfile.mkdtemp(prefix="fluoxr-bench-osc-", dir=args.dir)
    shape = (args.size, args.size)
    short, long_ = os.path.join(work, "sheet.tif"), os.path.join(work, "sheet_long.tif")
    t0 = time.perf_counter()
    write_tiff(short, args.frames, shape)
    repeat_tiff(short, long_, args.long_factor)
    print(f"# wrote {args.frames} and {args.frames * args.long_factor} frames of {shape} uint16 in "
          f"{time.perf_counter() - t0:.0f} s under {work}")
    print(f"# {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"warm page cache; period {PERIOD_S:.0f} s, interval {INTERVAL_S:.0f} s, min cluster {MIN_SIZE} px; "
          f"load average {os.getloadavg()[0]:.1f}")

    params = dict(period=PERIOD_S, interval=INTERVAL_S, size=MIN_SIZE)
    rows = []
    for path, n in ((short, args.frames), (long_, args.frames * args.long_factor)):
        for chunks in ("None", str(args.chunk_frames)):
            out = os.path.join(work, "labels.zarr")
            script = f"P, OUT = {path!r}, {out!r}\n" + FLUOXR.format(chunks=chunks, **params)
            r = min((run(sys.executable, script) for _ in range(args.repeat)), key=lambda x: x["secs"])
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

    print(f"# fluoxr: best of {args.repeat} runs. wall s and CPU s (user + system, all threads): from the TIFF on "
          f"disk to the labels (fluoxr: in zarr; Cellects: in memory); start-up s: imports (and fluoxr's numba "
          f"kernels loading), once per process, not in wall s")
    print(f"{'case':<36}{'frames':>7}{'input MB':>10}{'wall s':>9}{'CPU s':>8}{'MB/s':>8}{'start-up s':>12}"
          f"{'peak RSS MB':>13}")
    for name, n, r in rows:
        print(f"{name:<36}{n:>7}{r['nbytes'] / 1e6:>10.0f}{r['secs']:>9.2f}{r['cpu']:>8.2f}"
              f"{r['nbytes'] / 1e6 / r['secs']:>8.0f}{r['startup']:>12.2f}{r['peak_mb']:>13.0f}")
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
            print(f"# fluoxr ({r['chunks']}-frame chunks): {peer['secs'] / r['secs']:.0f}x faster than Cellects in "
                  f"wall time ({(peer['secs'] + peer['startup']) / (r['secs'] + r['startup']):.0f}x with start-up), "
                  f"{peer['cpu'] / r['cpu']:.0f}x less CPU time (target >= 100x); peak RSS "
                  f"{r['peak_mb'] / peer['peak_mb']:.3f} of Cellects' (target <= 0.1)")
    print(f"# load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
