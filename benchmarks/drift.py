#!/usr/bin/env python
"""SOFI of a drifting acquisition: drift correction's cost and what it gives back.

Writes a drifting blinking-emitter recording (``fluoxr.datasets.blinking_emitters(drift=...)``, a steady
drift of ``--drift`` px over the recording along both axes) to zarr, then, each in a fresh process
reading the zarr store:

- ``sofi``: ``sofi_images(video, 4)`` of the drifting recording (one read);
- ``drift_correct + sofi``: ``sofi_images(drift_correct(video, block_frames=B), 4)`` as one graph: the
  block means (one read), their shifts, then SOFI of the lazily corrected frames (a second read);
- ``drift first, then sofi``: ``estimate_drift(...).compute()`` (one read), then SOFI of
  ``apply_motion(video, drift)`` (a second read): the same result in two computations;

and prints wall time, MB/s of input, peak RSS (the process's VmHWM), the drift's RMS error against
the truth (one constant offset removed: the shifts are relative to the first block) and the median
width of the order-2 spots over the true ``sigma / sqrt(2)`` (1 is sharp). Nothing registered is
written.

Usage::

    python benchmarks/drift.py                 # 20,000 frames of 128 x 128
    python benchmarks/drift.py --quick         # 2,000 frames of 64 x 64, seconds
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


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _child(store: str, case: str, block_frames: int, truth_path: str) -> None:
    import numpy as np

    import fluoxr

    video = fluoxr.open_video(store)
    t0 = time.perf_counter()
    out: dict[str, float] = {}
    if case == "sofi":
        cum = fluoxr.sofi_images(video, 4).cumulants.sel(order=2).compute()
    else:
        drift = fluoxr.estimate_drift(video, block_frames=block_frames)
        if case == "drift first, then sofi":
            drift = drift.compute()  # a small table: the second pass then runs on known shifts
            corrected = fluoxr.apply_motion(video, drift)
        else:
            corrected = fluoxr.drift_correct(video, block_frames=block_frames)
        # the shifts and the corrected SOFI image together: the block means are computed once
        import dask

        drift, cum = dask.compute(drift, fluoxr.sofi_images(corrected, 4).cumulants.sel(order=2))
        truth = np.load(truth_path)
        err = np.stack([drift.dy.values, drift.dx.values], 1) - truth["shifts"]
        err -= err.mean(0)
        out["rms_px"] = float(np.sqrt(np.mean(err**2)))
        out["offset"] = (truth["shifts"] - np.stack([drift.dy.values, drift.dx.values], 1)).mean(0).tolist()
    out["secs"] = time.perf_counter() - t0
    out["rss_mb"] = _peak_rss_mb()
    truth = np.load(truth_path)
    offset = np.asarray(out.get("offset", truth["shifts"].mean(0)))
    widths = fluoxr.psf_width(cum, truth["positions"] + offset, radius_px=5)
    out["width_ratio"] = float(np.nanmedian(widths) / (float(truth["sigma"]) / np.sqrt(2)))
    out.pop("offset", None)
    print(json.dumps(out))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--frames", type=int, default=20000)
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--block-frames", type=int, default=500)
    p.add_argument("--drift", type=float, default=4.0, help="total drift in px along each axis (default 4)")
    p.add_argument("--quick", action="store_true", help="2,000 frames of 64 x 64, 200-frame blocks")
    p.add_argument("--tmp", default=None, help="folder for the zarr store (default: a temporary one)")
    p.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        store, case, block, truth = args.child
        _child(store, case, int(block), truth)
        return 0
    if args.quick:
        args.frames, args.size, args.block_frames = 2000, 64, 200

    import numpy as np

    import fluoxr
    from fluoxr import datasets

    fps = 100.0
    speed = args.drift * fps / args.frames
    motion = datasets.Motion(step_px=0.003, tau_s=None, velocity_px_per_s=(speed, -speed), max_px=np.inf)
    n_emitters = max(4, args.size**2 // 400)
    video, truth = datasets.blinking_emitters(args.frames, (args.size, args.size), n_emitters=n_emitters,
                                              on_fraction=0.2, photons=3000, background=50, fps=fps, drift=motion,
                                              seed=1)
    with tempfile.TemporaryDirectory(dir=args.tmp) as tmp:
        store = os.path.join(tmp, "drifting.zarr")
        t0 = time.perf_counter()
        fluoxr.save(video, store)
        truth_path = os.path.join(tmp, "truth.npz")
        np.savez(truth_path, shifts=np.stack([truth.motion.shifts.dy.values, truth.motion.shifts.dx.values], 1),
                 positions=truth.positions, sigma=truth.sigma_px)
        mb = video.nbytes / 1e6
        print(f"# {platform.node()}: {os.cpu_count()} cores, Python {platform.python_version()}, "
              f"fluoxr {fluoxr.__version__}")
        print(f"# recording: {args.frames} frames of {args.size}x{args.size} uint16 = {mb:.0f} MB, "
              f"{n_emitters} emitters, drift {args.drift:g} px per axis; written in {time.perf_counter() - t0:.1f} s")
        print(f"{'case':<26}{'wall s':>8}{'MB/s':>8}{'peak RSS MB':>13}{'drift RMS px':>14}{'width / ideal':>15}")
        for case in ("sofi", "drift_correct + sofi", "drift first, then sofi"):
            r = subprocess.run([sys.executable, __file__, "--child", store, case, str(args.block_frames), truth_path],
                               capture_output=True, text=True)
            if r.returncode != 0:
                print(f"{case:<26} failed: {r.stderr.strip().splitlines()[-1] if r.stderr.strip() else r.returncode}")
                continue
            res = json.loads(r.stdout.strip().splitlines()[-1])
            rms = f"{res['rms_px']:.3f}" if "rms_px" in res else "-"
            print(f"{case:<26}{res['secs']:>8.1f}{mb / res['secs']:>8.0f}{res['rss_mb']:>13.0f}{rms:>14}"
                  f"{res['width_ratio']:>15.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
