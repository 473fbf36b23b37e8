#!/usr/bin/env python3
"""Trace extraction, masks and OASIS: fluoxr side by side with suite2p and optimap.

Cases (each in a fresh subprocess; the child reports its own timings and peak RSS):

1. extraction from disk: 500 ROIs (~80 px) with neuropil on a T x 256 x 256 uint16
   TIFF (T = 2000): fluoxr ``extract`` (masks included, lazy video, 64-frame chunks)
   vs suite2p ``create_masks`` + CPU ``extract_traces`` on ``tifffile.memmap``; and
   position traces (500 positions, rect 5) fluoxr ``traces`` vs optimap
   ``extract_traces`` (which needs the video in RAM: ``tifffile.imread``).
2. masks for 5000 ROIs on 1024 x 1024: fluoxr ``cell_masks`` + ``neuropil_masks`` vs
   suite2p ``create_masks``.
3. OASIS on 500 x 20000 float32 traces: fluoxr ``spikes.oasis`` vs suite2p ``dcnv.oasis``
   (numba warm-up excluded on both sides).

Targets (issue 4): extraction at least as fast as suite2p from disk with peak RSS (above
the process's size after imports) below a quarter of the video; masks >= 10x faster;
OASIS <= 1.2x suite2p's time. Results are also checked for agreement.

Usage::

    python benchmarks/extraction.py            # full sizes (a few minutes)
    python benchmarks/extraction.py --quick    # tiny sizes, seconds (run by the tests)
    python benchmarks/extraction.py --no-peers # fluoxr only

The peers run with ``$FLUOXR_PEERS_PYTHON`` (default ``~/.cache/fluoxr-peers/venv/bin/python``)
when it exists (``bash benchmarks/peers/setup.sh`` builds it); the data are generated in this file.
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import resource
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PEER_PY = os.environ.get("FLUOXR_PEERS_PYTHON", os.path.expanduser("~/.cache/fluoxr-peers/venv/bin/python"))


def _status_mb(key: str) -> float | None:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(key + ":"):
                    return float(line.split()[1]) / 1024.0
    except OSError:
        pass
    return None


def _rss_mb() -> float:
    """Peak RSS of this process (VmHWM; ru_maxrss would include the parent's size at fork)."""
    hwm = _status_mb("VmHWM")
    return hwm if hwm is not None else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _setup_done() -> float:
    """Current RSS, and reset the peak so that the final peak is that of the timed part."""
    now = _status_mb("VmRSS")
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass
    return now if now is not None else _rss_mb()


# ----------------------------------------------------------------------------------------------
# data


def make_rois(n, H, W, npix, seed):
    import numpy as np

    rng = np.random.default_rng(seed)
    r = np.sqrt(npix / np.pi)
    R = int(np.ceil(r))
    dy, dx = np.mgrid[-R : R + 1, -R : R + 1]
    inside = dy**2 + dx**2 <= r**2
    dy, dx = dy[inside], dx[inside]
    stats, count = [], np.zeros((H, W), np.int32)
    for _ in range(n):
        cy, cx = int(rng.integers(R, H - R)), int(rng.integers(R, W - R))
        y, x = (cy + dy).astype(np.int32), (cx + dx).astype(np.int32)
        lam = np.exp(-(dy**2 + dx**2) / (2 * (r / 2) ** 2)).astype(np.float32) * rng.uniform(0.8, 1.2, y.size).astype(np.float32)
        count[y, x] += 1
        stats.append(dict(ypix=y, xpix=x, lam=lam, radius=float(r), med=[cy, cx], npix=int(y.size)))
    for st in stats:
        st["overlap"] = count[st["ypix"], st["xpix"]] > 1
    return stats


def write_tiff(path, T, H, W, seed):
    import numpy as np
    import tifffile

    rng = np.random.default_rng(seed)

    def frames():
        for _ in range(T):
            yield (200 + 12 * rng.standard_normal((H, W))).clip(0).astype(np.uint16)

    with tifffile.TiffWriter(path) as tw:
        tw.write(frames(), shape=(T, H, W), dtype=np.uint16, photometric="minisblack")
    return path


def synthetic_traces(n, T, seed=0):
    import numpy as np

    rng = np.random.default_rng(seed)
    spikes = (rng.random((n, T)) < 0.02).astype(np.float32) * rng.uniform(0.5, 2, (n, T)).astype(np.float32)
    k = np.exp(-np.arange(60) / 10.0).astype(np.float32)
    F = np.stack([np.convolve(s, k)[:T] for s in spikes])
    F += 100 + 20 * np.sin(np.linspace(0, 3, T, dtype=np.float32))[None]
    F += rng.standard_normal((n, T)).astype(np.float32) * 0.2
    return F.astype(np.float32)


# ----------------------------------------------------------------------------------------------
# child cases: each returns a dict; "compute_s" is the timed part, "setup_MB" the RSS before it


def child_fluoxr_extract(a):
    import numpy as np

    import fluoxr

    stats = pickle.load(open(a["stats"], "rb"))
    tiny = fluoxr.as_video(np.zeros((4, 32, 32), np.uint16))  # load the cached numba kernels
    fluoxr.extract(tiny, fluoxr.ROISet.from_labels(np.eye(32, dtype=int)), neuropil={"min_neuropil_pixels": 10}).compute()
    fluoxr.open_video(a["tiff"])[:1].compute()  # and the TIFF reader's imports
    setup = _setup_done()
    t0 = time.perf_counter()
    video = fluoxr.open_video(a["tiff"], chunks=a["chunks"])
    rois = fluoxr.ROISet.from_suite2p(stats, (video.sizes["y"], video.sizes["x"]))
    ds = fluoxr.extract(video, rois).compute()
    dt = time.perf_counter() - t0
    np.save(a["out"], ds.F.values)
    np.save(a["out"].replace(".npy", "_neu.npy"), ds.Fneu.values)
    return dict(compute_s=dt, setup_MB=setup, in_MB=video.nbytes / 1e6,
                note=f"open_video(chunks={a['chunks']}) + masks + extract, threads")


def child_suite2p_extract(a):
    import numpy as np
    import tifffile
    import torch
    from suite2p.extraction.extract import extract_traces
    from suite2p.extraction.masks import create_masks

    stats = pickle.load(open(a["stats"], "rb"))
    setup = _setup_done()
    t0 = time.perf_counter()
    v = tifffile.memmap(a["tiff"], mode="r")
    cm, nm = create_masks(stats, v.shape[1], v.shape[2])
    tm = time.perf_counter() - t0
    F, Fneu = extract_traces(v, cm, nm, batch_size=500, device=torch.device("cpu"))
    dt = time.perf_counter() - t0
    np.save(a["out"], F)
    np.save(a["out"].replace(".npy", "_neu.npy"), Fneu)
    return dict(compute_s=dt, setup_MB=setup, in_MB=v.nbytes / 1e6,
                note=f"tifffile.memmap + create_masks ({tm:.2f} s) + extract_traces(cpu, batch 500)")


def child_fluoxr_traces(a):
    import numpy as np

    import fluoxr

    pos = np.load(a["positions"])
    fluoxr.traces(fluoxr.as_video(np.zeros((4, 16, 16), np.uint16)), [(3, 3)]).compute()
    fluoxr.open_video(a["tiff"])[:1].compute()
    setup = _setup_done()
    t0 = time.perf_counter()
    video = fluoxr.open_video(a["tiff"], chunks=a["chunks"])
    tr = fluoxr.traces(video, pos, size=5, window="rect").values
    dt = time.perf_counter() - t0
    np.save(a["out"], tr)
    return dict(compute_s=dt, setup_MB=setup, in_MB=video.nbytes / 1e6, note="open_video + traces(rect 5)")


def child_optimap_traces(a):
    import numpy as np
    import optimap.trace as ot
    import tifffile

    pos = np.load(a["positions"])
    setup = _setup_done()
    t0 = time.perf_counter()
    v = tifffile.imread(a["tiff"])
    tl = time.perf_counter() - t0
    tr = ot.extract_traces(v, [(int(x), int(y)) for y, x in pos], size=5, window="rect")
    dt = time.perf_counter() - t0
    np.save(a["out"], tr.T)
    return dict(compute_s=dt, setup_MB=setup, in_MB=v.nbytes / 1e6,
                note=f"tifffile.imread ({tl:.2f} s, whole video in RAM) + extract_traces(rect 5)")


def child_fluoxr_masks(a):
    import numpy as np

    import fluoxr

    stats = pickle.load(open(a["stats"], "rb"))
    shape = tuple(a["shape"])
    small = fluoxr.ROISet.from_suite2p(stats[:3], shape)  # load the cached numba kernels
    fluoxr.neuropil_masks(small, min_neuropil_pixels=5)
    setup = _setup_done()
    t0 = time.perf_counter()
    rois = fluoxr.ROISet.from_suite2p(stats, shape)
    cm = fluoxr.cell_masks(rois)
    nm = fluoxr.neuropil_masks(rois)
    dt = time.perf_counter() - t0
    with open(a["out"] + ".pkl", "wb") as fh:
        pickle.dump((nm.indptr, nm.flat_index, cm.indptr, cm.flat_index), fh)
    return dict(compute_s=dt, setup_MB=setup, in_MB=0.0, note="ROISet.from_suite2p + cell_masks + neuropil_masks")


def child_suite2p_masks(a):
    from suite2p.extraction.masks import create_masks

    stats = pickle.load(open(a["stats"], "rb"))
    setup = _setup_done()
    t0 = time.perf_counter()
    cm, nm = create_masks(stats, *a["shape"])
    dt = time.perf_counter() - t0
    with open(a["out"] + ".pkl", "wb") as fh:
        pickle.dump(([c[0] for c in cm], nm), fh)
    return dict(compute_s=dt, setup_MB=setup, in_MB=0.0, note="create_masks (neuropil, rectangles)")


def child_fluoxr_oasis(a):
    import numpy as np
    import xarray as xr

    from fluoxr.spikes import oasis

    F = np.load(a["traces"])
    tr = xr.DataArray(F, dims=("roi", "time"))
    oasis(tr[:2, :50], tau_s=1.0, fps=10.0).compute()  # load the cached kernel
    setup = _setup_done()
    best = float("inf")
    for _ in range(a["repeat"]):
        t0 = time.perf_counter()
        S = oasis(tr, tau_s=1.0, fps=10.0).values
        best = min(best, time.perf_counter() - t0)
    np.save(a["out"], S)
    return dict(compute_s=best, setup_MB=setup, in_MB=F.nbytes / 1e6,
                note=f"spikes.oasis, dask threads over ROI blocks, best of {a['repeat']}")


def child_suite2p_oasis(a):
    import numpy as np
    from suite2p.extraction import dcnv

    F = np.load(a["traces"])
    dcnv.oasis(F[:2, :50].copy(), 100, 1.0, 10.0)
    setup = _setup_done()
    best = float("inf")
    for _ in range(a["repeat"]):
        t0 = time.perf_counter()
        S = dcnv.oasis(F, batch_size=500, tau=1.0, fs=10.0)
        best = min(best, time.perf_counter() - t0)
    np.save(a["out"], S)
    return dict(compute_s=best, setup_MB=setup, in_MB=F.nbytes / 1e6,
                note=f"dcnv.oasis(batch 500), numba prange, best of {a['repeat']}")


CHILDREN = {k[len("child_"):]: v for k, v in globals().items() if k.startswith("child_")}


def _child_main(case: str, args_json: str) -> None:
    import logging
    import warnings

    logging.disable(logging.WARNING)
    warnings.filterwarnings("ignore")
    out = CHILDREN[case](json.loads(args_json))
    out["peak_MB"] = _rss_mb()
    print("RESULT " + json.dumps(out), flush=True)


# ----------------------------------------------------------------------------------------------
# parent


def run_case(case: str, args: dict, python: str) -> dict | None:
    t0 = time.perf_counter()
    env = dict(os.environ, PYTHONWARNINGS="ignore")
    r = subprocess.run([python, os.path.abspath(__file__), "--child", case, json.dumps(args)],
                       capture_output=True, text=True, env=env)
    wall = time.perf_counter() - t0
    for line in r.stdout.splitlines():
        if line.startswith("RESULT "):
            res = json.loads(line[len("RESULT "):])
            res["process_s"] = wall
            return res
    print(f"  [{case} failed]\n{r.stdout[-2000:]}\n{r.stderr[-3000:]}", flush=True)
    return None


def _row(name: str, res: dict | None) -> str:
    if res is None:
        return f"  {name:34s} failed"
    rate = f"{res['in_MB'] / res['compute_s']:8.0f}" if res["in_MB"] else "       -"
    extra = res["peak_MB"] - res["setup_MB"]
    return (f"  {name:34s} {res['compute_s']:8.2f} {rate} {res['peak_MB']:9.0f} {extra:9.0f} "
            f"{res['process_s']:8.1f}   {res['note']}")


HEADER = (f"  {'case':34s} {'time_s':>8s} {'MB/s':>8s} {'peakMB':>9s} {'+dataMB':>9s} {'proc_s':>8s}   notes\n"
          f"  {'':34s} {'(timed)':>8s} {'input':>8s} {'(RSS)':>9s} {'(>setup)':>9s} {'(wall)':>8s}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes (seconds)")
    p.add_argument("--no-peers", action="store_true", help="skip suite2p/optimap even when installed")
    p.add_argument("--T", type=int, default=None, help="frames of the extraction video (default 2000)")
    p.add_argument("--chunks", type=int, default=32,
                   help="frames per chunk for fluoxr (default 32, 4 MB: memory is a few chunks per thread)")
    p.add_argument("--workdir", default=None, help="where to write the data (default: a temporary folder)")
    p.add_argument("--child", nargs=2, metavar=("CASE", "JSON"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        _child_main(*a.child)
        return 0

    import numpy as np

    if a.quick:
        T, H, W, n_rois, n_mask, mshape, n_tr, T_tr, repeat = a.T or 200, 64, 64, 30, 300, (256, 256), 40, 2000, 1
    else:
        T, H, W, n_rois, n_mask, mshape, n_tr, T_tr, repeat = a.T or 2000, 256, 256, 500, 5000, (1024, 1024), 500, 20000, 3
    peers = (not a.no_peers) and os.path.exists(PEER_PY)
    me = sys.executable
    tmp = a.workdir or tempfile.mkdtemp(prefix="fluoxr_bench_extraction_")
    os.makedirs(tmp, exist_ok=True)
    f = lambda name: os.path.join(tmp, name)  # noqa: E731

    print(f"fluoxr benchmark: extraction, masks, OASIS  ({os.cpu_count()} cores; peers: "
          f"{PEER_PY if peers else 'not run'}; data in {tmp})", flush=True)
    tiff = f(f"video_T{T}_{H}x{W}.tif")
    if not os.path.exists(tiff):
        t0 = time.perf_counter()
        write_tiff(tiff + ".part.tif", T, H, W, seed=0)
        os.replace(tiff + ".part.tif", tiff)
        print(f"  [prep] wrote {tiff} ({os.path.getsize(tiff) / 1e6:.0f} MB) in {time.perf_counter() - t0:.1f} s")
    video_mb = T * H * W * 2 / 1e6
    stats = make_rois(n_rois, H, W, 80 if not a.quick else 40, seed=1)
    pickle.dump(stats, open(f("stats.pkl"), "wb"))
    rng = np.random.default_rng(0)
    np.save(f("positions.npy"), np.stack([rng.integers(0, H, n_rois), rng.integers(0, W, n_rois)], 1))
    mstats = make_rois(n_mask, *mshape, 80, seed=2)
    pickle.dump(mstats, open(f("mstats.pkl"), "wb"))
    np.save(f("traces.npy"), synthetic_traces(n_tr, T_tr))

    results: dict[str, dict | None] = {}
    print(f"\n1. extraction from disk: {n_rois} ROIs with neuropil, {T} x {H} x {W} uint16 TIFF ({video_mb:.0f} MB)")
    print(HEADER)
    base = {"tiff": tiff, "stats": f("stats.pkl"), "chunks": a.chunks, "positions": f("positions.npy")}
    plan = [("fluoxr extract (+masks)", "fluoxr_extract", me, {"out": f("F_fluoxr.npy")})]
    if peers:
        plan.append(("suite2p create_masks+extract_traces", "suite2p_extract", PEER_PY, {"out": f("F_s2p.npy")}))
    plan.append(("fluoxr traces (rect 5)", "fluoxr_traces", me, {"out": f("T_fluoxr.npy")}))
    if peers:
        plan.append(("optimap extract_traces (rect 5)", "optimap_traces", PEER_PY, {"out": f("T_optimap.npy")}))
    for label, case, py, extra in plan:
        results[case] = run_case(case, base | extra, py)
        print(_row(label, results[case]), flush=True)

    print(f"\n2. masks: {n_mask} ROIs (~80 px) on {mshape[0]} x {mshape[1]}")
    print(HEADER)
    margs = {"stats": f("mstats.pkl"), "shape": list(mshape)}
    results["fluoxr_masks"] = run_case("fluoxr_masks", margs | {"out": f("m_fluoxr")}, me)
    print(_row("fluoxr cell_masks+neuropil_masks", results["fluoxr_masks"]), flush=True)
    if peers:
        results["suite2p_masks"] = run_case("suite2p_masks", margs | {"out": f("m_s2p")}, PEER_PY)
        print(_row("suite2p create_masks", results["suite2p_masks"]), flush=True)

    print(f"\n3. OASIS: {n_tr} x {T_tr} float32 traces")
    print(HEADER)
    oargs = {"traces": f("traces.npy"), "repeat": repeat}
    results["fluoxr_oasis"] = run_case("fluoxr_oasis", oargs | {"out": f("S_fluoxr.npy")}, me)
    print(_row("fluoxr spikes.oasis", results["fluoxr_oasis"]), flush=True)
    if peers:
        results["suite2p_oasis"] = run_case("suite2p_oasis", oargs | {"out": f("S_s2p.npy")}, PEER_PY)
        print(_row("suite2p dcnv.oasis", results["suite2p_oasis"]), flush=True)

    print("\nagreement and targets")
    ok = True

    def check(name: str, cond: bool, text: str) -> None:
        nonlocal ok
        ok &= bool(cond)
        print(f"  [{'PASS' if cond else 'FAIL'}] {name}: {text}")

    fx = results.get("fluoxr_extract")
    if a.quick:
        print("  (--quick: sizes too small for the speed and memory targets to mean anything; agreement only)")
    if fx and not a.quick:
        check("extraction memory", fx["peak_MB"] - fx["setup_MB"] < video_mb / 4,
              f"peak RSS above setup {fx['peak_MB'] - fx['setup_MB']:.0f} MB < video/4 = {video_mb / 4:.0f} MB "
              f"(whole process {fx['peak_MB']:.0f} MB, of which {fx['setup_MB']:.0f} MB interpreter and libraries)")
    if peers and fx and results.get("suite2p_extract"):
        s2 = results["suite2p_extract"]
        F1, F2 = np.load(f("F_fluoxr.npy")), np.load(f("F_s2p.npy"))
        N1, N2 = np.load(f("F_fluoxr_neu.npy")), np.load(f("F_s2p_neu.npy"))
        rel = max(float(np.max(np.abs(F1 - F2) / np.maximum(np.abs(F2), 1e-3))),
                  float(np.max(np.abs(N1 - N2) / np.maximum(np.abs(N2), 1e-3))))
        check("extraction equals suite2p", rel < 1e-5, f"max relative difference of F, Fneu {rel:.1e}")
        if not a.quick:
            check("extraction speed", fx["compute_s"] <= s2["compute_s"],
                  f"fluoxr {fx['compute_s']:.2f} s vs suite2p {s2['compute_s']:.2f} s "
                  f"({s2['compute_s'] / fx['compute_s']:.2f}x faster)")
    if peers and results.get("fluoxr_traces") and results.get("optimap_traces"):
        d = float(np.max(np.abs(np.load(f("T_fluoxr.npy")) - np.load(f("T_optimap.npy")))))
        check("position traces equal optimap", d < 1e-3, f"max abs difference {d:.1e} (float32 vs float64)")
    fm, sm = results.get("fluoxr_masks"), results.get("suite2p_masks")
    if peers and fm and sm:
        a_np, a_flat, a_cptr, a_cflat = pickle.load(open(f("m_fluoxr") + ".pkl", "rb"))
        s_cells, s_neu = pickle.load(open(f("m_s2p") + ".pkl", "rb"))
        same = all(np.array_equal(a_flat[a_np[i] : a_np[i + 1]], s_neu[i]) for i in range(len(s_neu)))
        same_c = all(np.array_equal(a_cflat[a_cptr[i] : a_cptr[i + 1]], s_cells[i]) for i in range(len(s_cells))
                     if s_cells[i].size)
        check("masks equal suite2p", same and same_c, f"neuropil pixel sets equal: {same}, cell pixels equal: {same_c}")
        if not a.quick:
            check("masks speed", sm["compute_s"] >= 10 * fm["compute_s"],
                  f"fluoxr {fm['compute_s']:.2f} s vs suite2p {sm['compute_s']:.2f} s "
                  f"({sm['compute_s'] / fm['compute_s']:.1f}x, target >= 10x)")
    fo, so = results.get("fluoxr_oasis"), results.get("suite2p_oasis")
    if peers and fo and so:
        eq = bool(np.array_equal(np.load(f("S_fluoxr.npy")), np.load(f("S_s2p.npy"))))
        check("OASIS equals suite2p", eq, "bit-identical spikes" if eq else "spikes differ")
        if not a.quick:
            check("OASIS speed", fo["compute_s"] <= 1.2 * so["compute_s"],
                  f"fluoxr {fo['compute_s']:.2f} s vs suite2p {so['compute_s']:.2f} s "
                  f"({fo['compute_s'] / so['compute_s']:.2f}x suite2p's time, target <= 1.2x)")
    if not peers:
        print("  (peers not run: only fluoxr timings and the memory target)")
    failed = [k for k, v in results.items() if v is None]
    if failed:
        print(f"  failed cases: {failed}")
    return 0 if not failed else 1


if __name__ == "__main__":
    sys.exit(main())
