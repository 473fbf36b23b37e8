#!/usr/bin/env python
"""ROI-versus-reference features: fluoxr against cellector, wall time and peak RSS side by side.

Makes ``--n-rois`` suite2p-like ROIs (discs of about ``--npix`` pixels with
bell-shaped weights, overlapping where they fall on each other) on a
``--size`` x ``--size`` float32 reference (smooth background, bright and dim
cells, noise), saves them, then computes the four features in fresh
processes, each case twice (``cold``: first call in the process, numba
compilation or cache loading included; ``warm``: the second call):

- ``utils defaults``: width 15, 7 surround dilations, weighted-mean centroids,
  no window, no band-pass. cellector side: ``get_roi_centroids``,
  ``flatten_roi_data``, ``get_centered_masks``, ``get_centered_reference``,
  ``phase_correlation_zero``, ``dot_product``, ``surround_filter`` +
  ``compute_correlation``, ``in_vs_out`` (the calls its pipelines make).
- ``RoiProcessor defaults``: width 40, 2 dilations, median centroids, Hanning
  window, Butterworth band-pass 12-250 (order 3). cellector side:
  ``RoiProcessor(..., autocompute=False)`` then every standard feature
  pipeline, as ``compute_features`` does (without saving to disk).
  fluoxr side: ``roi_features(rois, ref, **CELLECTOR_DEFAULTS).compute()``.

The cellector process runs with the peer venv's python (``--peer-python``,
default ``~/.cache/fluoxr-peers/venv/bin/python``) and is skipped when that
does not exist. Peak RSS is the process's high-water mark (VmHWM), data
loading included. The largest difference between the two results is printed
per feature, relative to the feature's largest value, over the ROIs that both
tools centre on the same pixel (cellector sums ``lam`` in float32, so a few
centroids within ~1e-5 px of an integer truncate to the integer below; their
number is printed). Target (issue 5): fluoxr >= 5x faster than cellector on
10,000 ROIs on 1024 x 1024.

Usage::

    python benchmarks/roi_features.py                 # 10,000 ROIs, 1024 x 1024
    python benchmarks/roi_features.py --quick         # 300 ROIs, 128 x 128, seconds
    python benchmarks/roi_features.py --n-rois 50000 --size 2048
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

FEATURES = ("phase_corr", "dot_product", "corr_coef", "in_vs_out")
CASES = {
    "utils defaults": dict(width=15, iterations=7, centroid_method="weightedmean"),
    "RoiProcessor defaults": None,  # fluoxr.features.CELLECTOR_DEFAULTS
}
DEFAULT_PEER = os.path.expanduser("~/.cache/fluoxr-peers/venv/bin/python")


# --------------------------------------------------------------------------------------------
# data


def make_data(n_rois: int, size: int, npix: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Flat ROI pixel table and a reference in which a third of the cells are bright."""
    rng = np.random.default_rng(seed)
    r = np.sqrt(npix / np.pi)
    rr = int(np.ceil(r))
    dy, dx = np.mgrid[-rr : rr + 1, -rr : rr + 1]
    inside = dy**2 + dx**2 <= r**2
    dy, dx = dy[inside], dx[inside]
    cy = rng.integers(rr, size - rr, n_rois)
    cx = rng.integers(rr, size - rr, n_rois)
    y = (cy[:, None] + dy[None]).ravel()
    x = (cx[:, None] + dx[None]).ravel()
    roi = np.repeat(np.arange(n_rois), dy.size)
    base = np.exp(-(dy**2 + dx**2) / (2 * (r / 2) ** 2))
    lam = (base[None] * rng.uniform(0.8, 1.2, (n_rois, dy.size))).ravel().astype(np.float32)
    yy, xx = np.mgrid[0:size, 0:size] / size
    ref = 100 + 50 * np.sin(3 * yy) * np.cos(2 * xx)
    bright = rng.random(n_rois) < 1 / 3
    np.add.at(ref, (y, x), np.where(bright[roi], 200.0, 20.0) * lam)
    ref += rng.normal(0, 5, ref.shape)
    return dict(roi=roi.astype(np.int64), y=y.astype(np.int32), x=x.astype(np.int32), lam=lam,
                reference=ref.astype(np.float32), bright=bright)


# --------------------------------------------------------------------------------------------
# workers (run in fresh processes)


def _peak_mb() -> float:
    # VmHWM, not ru_maxrss: after exec ru_maxrss still holds the parent's peak
    with open("/proc/self/status") as f:
        return [int(line.split()[1]) / 1024 for line in f if line.startswith("VmHWM:")][0]


def _cpu() -> float:
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        return [int(line.split()[1]) / 1024 for line in f if line.startswith("VmRSS:")][0]


def worker_fluoxr(data: str, case: str, out: str, repeat: int) -> dict:
    import fluoxr
    from fluoxr.features import CELLECTOR_DEFAULTS, centroids, roi_features

    d = np.load(data)
    ref = d["reference"]
    rois = fluoxr.ROISet(roi=d["roi"], y=d["y"], x=d["x"], weight=d["lam"], shape=ref.shape)
    kw = CASES[case] or CELLECTOR_DEFAULTS
    loaded = _rss_mb()
    times, cpus = [], []
    for _ in range(1 + repeat):
        t0, c0 = time.perf_counter(), _cpu()
        df = roi_features(rois, ref, **kw).compute()
        times.append(time.perf_counter() - t0)
        cpus.append(_cpu() - c0)
    peak = _peak_mb()
    cents = centroids(rois, method=kw["centroid_method"])
    np.save(out, np.column_stack([df[list(FEATURES)].to_numpy(), cents]))
    return dict(cold=times[0], warm=min(times[1:]), cpu=cpus[1 + int(np.argmin(times[1:]))], loaded_mb=loaded,
                peak_mb=peak)


def worker_cellector(data: str, case: str, out: str, repeat: int) -> dict:
    from cellector import utils as cu

    d = np.load(data)
    ref = d["reference"][None]
    split = np.flatnonzero(np.diff(d["roi"])) + 1
    lam = np.split(d["lam"], split)
    ypix = np.split(d["y"], split)
    xpix = np.split(d["x"], split)
    zpix = np.zeros(len(lam), int)
    loaded = _rss_mb()

    def utils_defaults() -> np.ndarray:
        zc, yc, xc = cu.get_roi_centroids(lam, zpix, ypix, xpix, method="weightedmean")
        cent = dict(zc=zc, yc=yc, xc=xc)
        cm = cu.get_centered_masks(cu.flatten_roi_data(lam, ypix, xpix), cent, width=15)
        cr = cu.get_centered_reference(ref, cent, width=15)
        ms, rs = cu.surround_filter(cm, cr, iterations=7)
        return np.column_stack([
            cu.phase_correlation_zero(cm, cr),
            cu.dot_product(lam, ypix, xpix, zpix, ref),
            cu.compute_correlation(ms, rs),
            cu.in_vs_out(cm, cr, iterations=7),
        ])

    def processor_defaults() -> np.ndarray:
        from cellector.roi_processor import RoiProcessor

        with tempfile.TemporaryDirectory() as tmp:
            rp = RoiProcessor(tmp, zpix, ypix, xpix, lam, ref, autocompute=False, save_features=False)
            return np.column_stack([rp.feature_pipeline_methods[k](rp) for k in FEATURES])

    fn = utils_defaults if case == "utils defaults" else processor_defaults
    times, cpus = [], []
    for _ in range(1 + repeat):
        t0, c0 = time.perf_counter(), _cpu()
        res = fn()
        times.append(time.perf_counter() - t0)
        cpus.append(_cpu() - c0)
    peak = _peak_mb()
    _, yc, xc = cu.get_roi_centroids(lam, zpix, ypix, xpix,
                                     method="weightedmean" if case == "utils defaults" else "median")
    np.save(out, np.column_stack([res, yc, xc]))
    return dict(cold=times[0], warm=min(times[1:]), cpu=cpus[1 + int(np.argmin(times[1:]))], loaded_mb=loaded,
                peak_mb=peak)


def run_worker(python: str, tool: str, data: str, case: str, out: str, repeat: int) -> dict:
    t0 = time.perf_counter()
    res = subprocess.run([python, os.path.abspath(__file__), "--worker", tool, "--data", data, "--case", case,
                          "--out", out, "--repeat", str(repeat)], capture_output=True, text=True)
    if res.returncode != 0:
        raise SystemExit(f"{tool} worker failed:\n{res.stderr[-3000:]}")
    info = json.loads(res.stdout.strip().splitlines()[-1])
    info["process"] = time.perf_counter() - t0
    return info


# --------------------------------------------------------------------------------------------
# driver


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-rois", type=int, default=10_000)
    ap.add_argument("--size", type=int, default=1024)
    ap.add_argument("--npix", type=int, default=80)
    ap.add_argument("--peer-python", default=os.environ.get("FLUOXR_PEER_PYTHON", DEFAULT_PEER))
    ap.add_argument("--no-peer", action="store_true", help="do not run cellector")
    ap.add_argument("--cases", default=",".join(CASES), help="comma-separated subset of: " + ", ".join(CASES))
    ap.add_argument("--repeat", type=int, default=3, help="warm runs per process; the best is reported")
    ap.add_argument("--quick", action="store_true", help="300 ROIs of 40 px on 128 x 128, one warm run")
    ap.add_argument("--worker", choices=("fluoxr", "cellector"), help=argparse.SUPPRESS)
    ap.add_argument("--data", help=argparse.SUPPRESS)
    ap.add_argument("--case", help=argparse.SUPPRESS)
    ap.add_argument("--out", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        fn = worker_fluoxr if args.worker == "fluoxr" else worker_cellector
        print(json.dumps(fn(args.data, args.case, args.out, args.repeat)))
        return 0
    if args.quick:
        args.n_rois, args.size, args.npix, args.repeat = 300, 128, 40, 1
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    for c in cases:
        if c not in CASES:
            raise SystemExit(f"--cases: unknown case {c!r}; choose from {list(CASES)}")
    peer = None if args.no_peer or not os.path.exists(args.peer_python) else args.peer_python
    if peer is not None:
        check = subprocess.run([peer, "-c", "import cellector.utils"], capture_output=True)
        peer = peer if check.returncode == 0 else None

    work = tempfile.mkdtemp(prefix="fluoxr-bench-features-")
    data = make_data(args.n_rois, args.size, args.npix)
    path = os.path.join(work, "data.npz")
    np.savez(path, **data)
    in_mb = (data["reference"].nbytes + data["y"].nbytes + data["x"].nbytes + data["lam"].nbytes) / 1e6
    print(f"# {args.n_rois} ROIs of ~{data['roi'].size / args.n_rois:.0f} px on a {args.size} x {args.size} float32 "
          f"reference ({in_mb:.1f} MB of input: reference + pixel table)")
    print(f"# {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"cellector: {'peer venv ' + peer if peer else 'not run'}")
    print(f"{'case':<22} {'tool':<10} {'cold s':>7} {'warm s':>7} {'cpu s':>6} {'ROIs/s':>9} {'MB/s':>7} "
          f"{'peak RSS MB':>12} {'speedup':>8}")
    for case in cases:
        res = {"fluoxr": run_worker(sys.executable, "fluoxr", path, case, os.path.join(work, "fluoxr.npy"), args.repeat)}
        if peer:
            res["cellector"] = run_worker(peer, "cellector", path, case, os.path.join(work, "cellector.npy"),
                                          args.repeat)
        for tool, r in res.items():
            speed = ""
            if tool == "fluoxr" and "cellector" in res:
                c = res["cellector"]
                speed = f"{c['warm'] / r['warm']:.1f}x"
                speed += f" (cold {c['cold'] / r['cold']:.1f}x)"
            print(f"{case:<22} {tool:<10} {r['cold']:7.2f} {r['warm']:7.2f} {r['cpu']:6.2f} "
                  f"{args.n_rois / r['warm']:9.0f} {in_mb / r['warm']:7.1f} {r['peak_mb']:12.0f} {speed:>8}")
        if "cellector" in res:
            a = np.load(os.path.join(work, "fluoxr.npy"))
            b = np.load(os.path.join(work, "cellector.npy"))
            # cellector sums lam in float32, so a centroid within ~1e-5 px of an integer can truncate to the
            # integer below; those ROIs get different patches and are compared apart
            same = np.all(a[:, 4:] == b[:, 4:], axis=1)
            parts = []
            for j, name in enumerate(FEATURES):
                ok = same & np.isfinite(a[:, j]) & np.isfinite(b[:, j])
                scale = np.max(np.abs(b[ok, j])) if ok.any() else 1.0
                parts.append(f"{name} {np.max(np.abs(a[ok, j] - b[ok, j])) / scale:.1e}")
                if not np.array_equal(np.isfinite(a[same, j]), np.isfinite(b[same, j])):
                    parts[-1] += " (NaN pattern differs!)"
            print(f"#   same centroid: {same.sum()} ROIs, max |fluoxr - cellector| / max |cellector|: {', '.join(parts)}")
            if not same.all():
                dj = np.abs(a[~same, 4:] - b[~same, 4:]).max()
                print(f"#   {(~same).sum()} ROIs whose centroid differs by {dj:.0f} px (cellector's float32 sum of lam)")
    print("# cold: first call in a fresh process (numba compile or cache load included); warm: best of the next "
          f"{args.repeat}.")
    print("# cpu: user + system CPU seconds of that warm call (all threads). speedup = cellector warm / fluoxr "
          "warm wall time; peak RSS includes the loaded data (VmHWM of each process)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
