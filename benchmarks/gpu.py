#!/usr/bin/env python
"""GPU vs CPU: SOFI moments to order 6, oscillation detection and trace extraction on a 4 GB recording.

A synthetic uint16 recording (travelling waves plus noise, ``--size-gb``
of samples, default 4, 1024 x 1024 frames, the default chunks (option chunk_mb)) is
generated chunk by chunk and held in memory twice: on the host (NumPy
chunks) and on the GPU (CuPy chunks, ``fluoxr.to_device``), so that no
column times the disk. Then, each analysis computed in full
(``.compute()``, the GPU synchronised before the clock stops), in MB/s of
input:

- ``CPU``: the NumPy chunks, numba kernels, dask's threaded scheduler;
- ``GPU, data on device``: the CuPy chunks (issue 7's target: SOFI moments
  to order 6 at >= 5 GB/s on an H100-class GPU);
- ``GPU, from host``: the NumPy chunks copied to the GPU chunk by chunk
  inside the same graph (what ``open_video(..., backend="cupy")`` does).

Analyses: ``fluoxr.moments(video, 6)``; ``fluoxr.oscillations.detect``
(``period_s=60``, ``interval_s=2``, ``min_cluster_size=50``, whole frame);
``fluoxr.extract`` with ``--rois`` disc ROIs and their suite2p neuropil
masks (made once, before timing). Each case is run once after a warm-up on a
small slice (numba compilation, CuPy kernel compilation). The device is
named in the header; peak RSS of this process and the size of CuPy's memory
pool are printed at the end.

Without a GPU (or without CuPy) the script says so and exits with status 2.
``--quick`` runs tiny sizes in seconds and prints the GPU column as
"unavailable" when there is no GPU (the test suite runs it that way);
``--emulate`` runs the GPU column with NumPy standing in for CuPy, to check
the script on a machine without a GPU (its numbers are not GPU numbers).

Usage::

    python benchmarks/gpu.py                 # 4 GB, needs CuPy and a CUDA GPU
    python benchmarks/gpu.py --size-gb 8 --rois 4000
    python benchmarks/gpu.py --quick         # tiny, CPU column only without a GPU
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import resource
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import dask  # noqa: E402
import dask.array as da  # noqa: E402

import fluoxr  # noqa: E402
from fluoxr import _backend  # noqa: E402
from fluoxr import oscillations as O  # noqa: E402

SOFI_TARGET_GBS = 5.0


def gpu_status() -> tuple[bool, str]:
    """(available, device name or the reason it is not)."""
    try:
        import cupy
    except ImportError:
        return False, 'CuPy is not installed (pip install "fluoxr[gpu]")'
    try:
        n = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return False, f"CuPy finds no usable CUDA GPU ({exc})"
    if n < 1:
        return False, "CuPy finds no CUDA GPU"
    props = cupy.cuda.runtime.getDeviceProperties(0)
    name = props["name"].decode() if isinstance(props["name"], bytes) else str(props["name"])
    return True, f"{name}, {props['totalGlobalMem'] / 2**30:.0f} GiB"


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    return f"{line.split(':', 1)[1].strip()}, {os.cpu_count()} logical cores"
    except OSError:
        pass
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} logical cores"


def _wave_chunk(block_id: tuple, *, n: int, frame: tuple[int, int], chunk: int, xp_name: str, seed: int) -> object:
    """Frames of travelling waves plus noise (uint16), made directly with the target array module."""
    xp = _backend.xp_by_name(xp_name)
    t0 = block_id[0] * chunk
    t1 = min(n, t0 + chunk)
    t = xp.arange(t0, t1, dtype=xp.float32)[:, None, None]
    y = xp.arange(frame[0], dtype=xp.float32)[None, :, None]
    x = xp.arange(frame[1], dtype=xp.float32)[None, None, :]
    waves = 1000 + 300 * xp.sin(2 * np.pi * (t / 30 - (x + 0.5 * y) / 80))
    noise = xp.random.RandomState(seed + block_id[0]).standard_normal((t1 - t0,) + frame).astype(xp.float32)
    return xp.clip(waves + 30 * noise, 0, 65535).astype(xp.uint16)


def make_video(n: int, frame: tuple[int, int], xp_name: str, seed: int = 0):
    chunk = fluoxr._video.frames_per_chunk(frame[0] * frame[1] * 2, n)
    chunks = (tuple(min(chunk, n - s) for s in range(0, n, chunk)),) + tuple((s,) for s in frame)
    meta = np.empty((0, 0, 0), np.uint16) if xp_name == "numpy" else _backend.xp_by_name(xp_name).empty(
        (0, 0, 0), np.uint16)
    data = da.map_blocks(_wave_chunk, dtype=np.uint16, chunks=chunks, meta=meta, n=n, frame=frame, chunk=chunk,
                         xp_name=xp_name, seed=seed)
    return fluoxr.as_video(data, fps=0.5)


def disc_rois(frame: tuple[int, int], n_rois: int, radius: int = 6):
    """``n_rois`` discs on a grid (suite2p-sized cells)."""
    side = int(np.ceil(np.sqrt(n_rois)))
    ys = np.linspace(radius + 2, frame[0] - radius - 3, side).astype(int)
    xs = np.linspace(radius + 2, frame[1] - radius - 3, side).astype(int)
    labels = np.zeros(frame, np.int32)
    yy, xx = np.mgrid[-radius : radius + 1, -radius : radius + 1]
    disc = yy**2 + xx**2 <= radius**2
    k = 0
    for cy in ys:
        for cx in xs:
            if k == n_rois:
                break
            k += 1
            sub = labels[cy - radius : cy + radius + 1, cx - radius : cx + radius + 1]
            sub[disc & (sub == 0)] = k
    return fluoxr.ROISet.from_labels(labels)


def _sync(device: bool, emulate: bool) -> None:
    if device and not emulate:
        import cupy

        cupy.cuda.Device().synchronize()


def timed(build, *, device: bool, emulate: bool) -> float:
    ctx = _backend.emulate_device() if (device and emulate) else contextlib.nullcontext()
    with ctx:
        result = build()
    t0 = time.perf_counter()
    dask.compute(result)
    _sync(device, emulate)
    return time.perf_counter() - t0


def analyses(rois, neuropil):
    return {
        "SOFI moments, orders 1-6": lambda v: fluoxr.moments(v, 6),
        "oscillation detection": lambda v: O.detect(v, period_s=60, interval_s=2, min_cluster_size=50),
        f"trace extraction ({len(rois)} ROIs + neuropil)": lambda v: fluoxr.extract(v, rois, neuropil=neuropil),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size-gb", type=float, default=4.0, help="recording size in GB of uint16 samples")
    ap.add_argument("--frame", type=int, default=1024, help="frame side in pixels")
    ap.add_argument("--rois", type=int, default=2000, help="number of cell ROIs for the extraction")
    ap.add_argument("--quick", action="store_true", help="tiny sizes; CPU column only when there is no GPU")
    ap.add_argument("--emulate", action="store_true", help="GPU column with NumPy standing in for CuPy (no GPU)")
    args = ap.parse_args(argv)

    ok, device_name = gpu_status()
    if args.emulate:
        ok, device_name = True, "NumPy standing in for CuPy (--emulate: not a GPU measurement)"
    if not ok and not args.quick:
        print(f"benchmarks/gpu.py: no GPU to benchmark: {device_name}.\n"
              "Run it on a machine with an NVIDIA GPU and the gpu extra, or use --quick for the CPU column only.")
        return 2
    if args.quick:
        args.size_gb, args.frame, args.rois = 0.02, 128, 60
    frame = (args.frame, args.frame)
    n = max(8, int(round(args.size_gb * 1e9 / (2 * args.frame * args.frame))))
    nbytes = n * frame[0] * frame[1] * 2
    print(f"recording: {n} frames of {frame[0]} x {frame[1]} uint16 = {nbytes / 1e9:.2f} GB, "
          f"chunks of ~{fluoxr.get_options()['chunk_mb']:.0f} MB")
    print(f"CPU: {cpu_name()}")
    print(f"GPU: {device_name if ok else 'unavailable: ' + device_name}")

    host = make_video(n, frame, "numpy").persist()
    rois = disc_rois(frame, args.rois)
    neuropil = fluoxr.neuropil_masks(rois)
    cases = analyses(rois, neuropil)
    # warm-up on a slice: numba compilation (and CuPy's kernel compilation below)
    warm = host.isel(time=slice(0, 8))
    for build in cases.values():
        timed(lambda: build(warm), device=False, emulate=False)
    columns = {"CPU": {}}
    for name, build in cases.items():
        columns["CPU"][name] = timed(lambda: build(host), device=False, emulate=False)

    pool_gb = None
    if ok:
        xp_name = "numpy" if args.emulate else "cupy"
        ctx = _backend.emulate_device() if args.emulate else contextlib.nullcontext()
        with ctx:
            on_device = make_video(n, frame, xp_name).persist()
            from_host = fluoxr.to_device(host, "cuda")
            warm_dev = fluoxr.to_device(warm, "cuda")
        _sync(True, args.emulate)
        for build in cases.values():
            timed(lambda: build(warm_dev), device=True, emulate=args.emulate)
        columns["GPU, data on device"] = {name: timed(lambda: build(on_device), device=True, emulate=args.emulate)
                                          for name, build in cases.items()}
        columns["GPU, from host"] = {name: timed(lambda: build(from_host), device=True, emulate=args.emulate)
                                     for name, build in cases.items()}
        if not args.emulate:
            import cupy

            pool_gb = cupy.get_default_memory_pool().total_bytes() / 1e9

    heads = list(columns)
    width = max(len(k) for k in cases) + 2
    print()
    print(f"{'analysis':<{width}}" + "".join(f"{h + ' MB/s (s)':>30}" for h in heads)
          + ("" if ok else f"{'GPU MB/s (s)':>30}"))
    for name in cases:
        row = f"{name:<{width}}"
        for h in heads:
            secs = columns[h][name]
            row += f"{f'{nbytes / 1e6 / secs:,.0f} ({secs:.2f})':>30}"
        if not ok:
            row += f"{'unavailable':>30}"
        print(row)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\npeak RSS of this process: {rss:,.0f} MB (the host copy of the recording included)")
    if pool_gb is not None:
        print(f"CuPy memory pool: {pool_gb:.1f} GB (the device copy of the recording included)")
    if ok and not args.emulate and not args.quick:
        sofi = nbytes / 1e9 / columns["GPU, data on device"]["SOFI moments, orders 1-6"]
        verdict = "met" if sofi >= SOFI_TARGET_GBS else "NOT met"
        print(f"target: SOFI moments to order 6 with the data on the device >= {SOFI_TARGET_GBS:g} GB/s: "
              f"{sofi:.1f} GB/s, {verdict}")
    if not ok:
        print("GPU column unavailable: " + device_name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
