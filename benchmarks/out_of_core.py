#!/usr/bin/env python
"""Out-of-core proof: a recording larger than this machine's RAM, analysed with a few GB.

1. Writes a synthetic calcium recording of ``--size`` (default 32 GB; 512 x 512
   uint16 frames, 1000 cells, an anatomical second channel is not added) to
   zarr with ``fluoxr.datasets`` + ``fluoxr.save``, generated chunk by chunk.
2. Opens it with ``fluoxr.open_video`` and runs, each on a fresh local cluster
   of worker processes (``--workers``, one thread each, ``--memory-limit``
   each):

   - SOFI: mean image, moments and cumulants of orders 1..6 (one read);
   - extraction: F and Fneu of the 1000 cells with suite2p neuropil masks,
     written to zarr (one read);
   - oscillation detection (Cellects' algorithm), reduced to the influx and
     efflux fraction of every frame (one read; writing the int8 labels would
     double the disk space needed).

Each step reports wall time, throughput (MB/s of input) and the peak RSS of
every process involved: the client (this process, since the step started:
its VmHWM is reset with ``/proc/self/clear_refs``) and each worker (restarted
before every step, so its VmHWM is that step's). Target (issue 6): total peak
RSS <= 4 GB for every step.

Usage::

    python benchmarks/out_of_core.py --size 32GB --dir /data/tmp
    python benchmarks/out_of_core.py --quick          # 200 MB, to check that it runs
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import shutil
import sys
import tempfile
import time

FRAME = (512, 512)


def parse_size(text: str) -> float:
    m = re.fullmatch(r"\s*([\d.]+)\s*([KMGT]?)B?\s*", text.upper())
    if not m:
        raise SystemExit(f"--size: cannot read {text!r} (e.g. 32GB, 500MB)")
    return float(m.group(1)) * {"": 1, "K": 1e3, "M": 1e6, "G": 1e9, "T": 1e12}[m.group(2)]


def vm_hwm_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def reset_hwm() -> None:
    """Reset this process's peak RSS counter (Linux: writing 5 to clear_refs)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass


def worker_peaks(client) -> dict[str, float]:
    return {addr: mb for addr, mb in client.run(vm_hwm_mb).items()}


def run_step(client, label: str, nbytes: int, func) -> dict:
    client.restart()
    reset_hwm()
    t0 = time.perf_counter()
    result = func()
    secs = time.perf_counter() - t0
    workers = worker_peaks(client)
    row = {"step": label, "secs": secs, "mb_s": nbytes / 1e6 / secs, "client_mb": vm_hwm_mb(),
           "workers_mb": sorted(workers.values()), "result": result}
    row["total_mb"] = row["client_mb"] + sum(row["workers_mb"])
    print(f"  {label}: {secs:.0f} s, {row['mb_s']:.0f} MB/s, peak RSS client {row['client_mb']:.0f} MB + workers "
          f"{' + '.join(f'{w:.0f}' for w in row['workers_mb'])} MB = {row['total_mb']:.0f} MB", flush=True)
    return row


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="32GB", help="recording size (default 32GB)")
    ap.add_argument("--dir", default=None, help="where to write (default: a temp folder); needs --size of free disk")
    ap.add_argument("--workers", type=int, default=2, help="worker processes (one thread each)")
    ap.add_argument("--memory-limit", default="1.5GB", help="memory limit of each worker")
    ap.add_argument("--cells", type=int, default=1000)
    ap.add_argument("--keep", action="store_true", help="keep the recording (reused by a later run with --dir)")
    ap.add_argument("--quick", action="store_true", help="200 MB and 100 cells, to check that it runs")
    args = ap.parse_args(argv)
    if args.quick:
        args.size, args.cells = "200MB", 100

    import dask
    import numpy as np
    from distributed import Client, LocalCluster

    import fluoxr
    from fluoxr import datasets

    size = parse_size(args.size)
    n_frames = max(10, int(size // (FRAME[0] * FRAME[1] * 2)))
    work = args.dir or tempfile.mkdtemp(prefix="fluoxr-ooc-")
    os.makedirs(work, exist_ok=True)
    rec = os.path.join(work, "recording.zarr")
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 1e9
    print(f"# {platform.node()}: {os.cpu_count()} cores, {ram:.0f} GB RAM, Python {platform.python_version()}, "
          f"dask {dask.__version__}, fluoxr {fluoxr.__version__}")
    print(f"# recording: {n_frames} frames of {FRAME[0]}x{FRAME[1]} uint16 = {n_frames * FRAME[0] * FRAME[1] * 2 / 1e9:.1f} GB, "
          f"{args.cells} cells; {args.workers} worker processes x 1 thread, memory limit {args.memory_limit} each")

    rows = []
    with LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True, memory_limit=args.memory_limit,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        video, truth = datasets.calcium_neurons(n_frames=n_frames, shape=FRAME, n_cells=args.cells, radius_px=5.0,
                                                fps=30.0, seed=0)
        nbytes = int(video.nbytes)
        if not (os.path.exists(rec) and not os.path.exists(rec + ".partial")):
            rows.append(run_step(client, "write synthetic recording to zarr", nbytes,
                                 lambda: fluoxr.save(video, rec, resume=True)))
        else:
            print(f"  reusing {rec}")
        on_disk = sum(os.path.getsize(os.path.join(r, n)) for r, _, ns in os.walk(rec) for n in ns)
        print(f"  {rec}: {on_disk / 1e9:.1f} GB on disk")

        rows.append(run_step(client, "SOFI moments + cumulants to order 6", nbytes,
                             lambda: fluoxr.sofi_images(fluoxr.open_video(rec), 6).compute()))

        rois = fluoxr.ROISet.from_suite2p(truth.stat, FRAME)
        traces_path = os.path.join(work, "traces.zarr")

        def extraction():
            ds = fluoxr.extract(fluoxr.open_video(rec), rois, neuropil="auto")
            fluoxr.save(ds, traces_path, overwrite=True)
            return fluoxr.open_result(traces_path)

        rows.append(run_step(client, f"extraction of {len(rois)} ROIs with neuropil", nbytes, extraction))

        def oscillations():
            labels = fluoxr.oscillations.detect(fluoxr.open_video(rec), period_s=60, interval_s=2,
                                                min_cluster_size=50)
            frac = xr_stack([(labels == 1).mean(("y", "x")), (labels == 2).mean(("y", "x"))])
            return frac.compute()

        def xr_stack(parts):
            import xarray as xr

            return xr.concat(parts, dim="kind")

        rows.append(run_step(client, "oscillation detection", nbytes, oscillations))

    print()
    print(f"{'step':<40}{'wall s':>8}{'MB/s':>8}{'client MB':>11}{'workers MB':>20}{'total MB':>10}")
    for r in rows:
        print(f"{r['step']:<40}{r['secs']:>8.0f}{r['mb_s']:>8.0f}{r['client_mb']:>11.0f}"
              f"{' + '.join(f'{w:.0f}' for w in r['workers_mb']):>20}{r['total_mb']:>10.0f}")
    worst = max(r["total_mb"] for r in rows)
    print(f"# largest total peak RSS: {worst / 1e3:.2f} GB (target <= 4 GB) for a {nbytes / 1e9:.1f} GB recording "
          f"on a machine with {ram:.0f} GB RAM")
    F = rows[-2]["result"]["F"]
    assert F.shape == (len(rois), n_frames) and bool(np.isfinite(F.isel(time=slice(0, 100)).values).all())
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
