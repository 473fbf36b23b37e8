#!/usr/bin/env python
"""SOFI moments + cumulants to order 6: fluoxr vs pysofi vs one plain read of the same TIFF.

Writes uncompressed TIFFs of blinking emitters (256 x 256 uint16 frames,
``--frames`` of them, default 2000 and 8000, plus ``--rss-frames`` = 16000 for
fluoxr's memory), then times, each in a fresh process (so that the peak RSS
belongs to that case alone), with the files in the page cache:

- ``plain read (readinto)``: the TIFF's pixel bytes read once, 96 MB at a
  time, into one reused buffer (the floor for any one-pass analysis);
- ``np.fromfile``: the pixel bytes read into one new array;
- ``fluoxr``: ``sofi_images(open_video(tiff), 6).compute()`` -- the mean
  image and the moments and cumulants of orders 1..6, one read of the file,
  threaded scheduler (numba kernels loaded before timing);
- ``pysofi``: ``PysofiData(...).cumulants_images(highest_order=6)``, which
  also fills ``moments_set`` (orders 1..6), run with the peer venv's python
  (``--peer-python``); only at the frame counts in ``--peer-frames`` (default
  2000), because pysofi re-reads the file once per order and re-walks the TIFF
  for every frame, so its time grows with the square of the frame count.

Targets (issue 3): fluoxr >= 100x pysofi at 2000 frames, >= 0.5x the plain
read, and the same peak RSS at 2000 and 16000 frames (within 1.3x). Each
case also reports its CPU seconds (user + system), which other processes on
the machine do not inflate.

``--agreement`` instead runs pysofi's functions on a small TIFF in the peer
venv and prints the largest relative difference to fluoxr for each one, then
the same for the tests' NumPy references (``fluoxr.testing.references``,
the registry the tests read); ``--references`` prints only those rows and
needs no peer venv.

Usage::

    python benchmarks/sofi.py                      # 2000, 8000 (+16000 for RSS) frames
    python benchmarks/sofi.py --quick              # tiny files, seconds
    python benchmarks/sofi.py --agreement          # fluoxr vs pysofi, function by function
    python benchmarks/sofi.py --paths              # every SOFI path's MB/s beside pysofi's (8000 x 64 x 64)
    python benchmarks/sofi.py --references         # fluoxr vs the tests' NumPy references, no peer
    python benchmarks/sofi.py --cold               # every read from the disk (drops the page cache; root)
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

FRAME = (256, 256)
PEER_PYTHON = os.path.expanduser("~/.cache/fluoxr-peers/venv/bin/python")

# peak RSS (VmHWM: after exec, ru_maxrss may still hold the parent's peak) and CPU seconds of the timed part
_HWM = ("hwm = [int(l.split()[1]) / 1024 for l in open('/proc/self/status') if l.startswith('VmHWM:')]\n"
        "hwm = hwm[0] if hwm else __import__('resource').getrusage(__import__('resource').RUSAGE_SELF).ru_maxrss / 1024\n"
        "c1 = __import__('os').times(); cpu = (c1.user - c0.user) + (c1.system - c0.system)\n")
_T0 = "import os as _os\nc0 = _os.times()\nt0 = time.perf_counter()\n"

PLAIN = """
import json, time, tifffile, numpy as np
with tifffile.TiffFile(P) as t:
    off = t.series[0].dataoffset
    nbytes = int(np.prod(t.series[0].shape)) * 2
buf = bytearray(96 * 2**20)
""" + _T0 + """
got = 0
with open(P, 'rb', buffering=0) as f:
    f.seek(off)
    while got < nbytes:
        n = f.readinto(memoryview(buf)[: min(len(buf), nbytes - got)])
        if not n:
            break
        got += n
dt = time.perf_counter() - t0
""" + _HWM + "print(json.dumps({'secs': dt, 'cpu': cpu, 'peak_mb': hwm, 'check': got}))\n"

FROMFILE = """
import json, time, tifffile, numpy as np
with tifffile.TiffFile(P) as t:
    off = t.series[0].dataoffset
    count = int(np.prod(t.series[0].shape))
""" + _T0 + """
a = np.fromfile(P, dtype='<u2', offset=off, count=count)
dt = time.perf_counter() - t0
""" + _HWM + "print(json.dumps({'secs': dt, 'cpu': cpu, 'peak_mb': hwm, 'check': int(a[-1])}))\n"

FLUOXR = """
import json, time, numpy as np, fluoxr
fluoxr.sofi_images(fluoxr.as_video(np.zeros((4, 600, 2), np.uint16)), 6).compute()  # load the numba kernels
""" + _T0 + """
ds = fluoxr.sofi_images(fluoxr.open_video(P), 6).compute()
dt = time.perf_counter() - t0
""" + _HWM + "print(json.dumps({'secs': dt, 'cpu': cpu, 'peak_mb': hwm, 'check': float(ds.cumulants.sel(order=2).sum())}))\n"

PYSOFI = """
import contextlib, io, json, os, time
from pysofi import pysofi as ps
""" + _T0 + """
with contextlib.redirect_stdout(io.StringIO()):
    d = ps.PysofiData(os.path.dirname(P), os.path.basename(P))
    k = d.cumulants_images(highest_order=6)     # computes moments_set (orders 1..6) on the way
    m = d.moments_set
dt = time.perf_counter() - t0
""" + _HWM + "print(json.dumps({'secs': dt, 'cpu': cpu, 'peak_mb': hwm, 'check': float(k[2].sum())}))\n"


def write_tiff(path: str, n_frames: int, shape: tuple[int, int] = FRAME, seed: int = 0, n_emitters: int = 64) -> None:
    """Blinking Gaussian emitters on a bleaching background, Gaussian read noise; written chunk by chunk."""
    import tifffile

    rng = np.random.default_rng(seed)
    h, w = shape
    ys, xs = rng.uniform(4, h - 4, n_emitters), rng.uniform(4, w - 4, n_emitters)
    amp = rng.uniform(300, 900, n_emitters).astype(np.float32)
    yy, xx = np.mgrid[0:h, 0:w]
    psf = np.exp(-((yy[None] - ys[:, None, None]) ** 2 + (xx[None] - xs[:, None, None]) ** 2) / (2 * 1.6**2))
    psf = psf.reshape(n_emitters, -1).astype(np.float32)
    state = rng.random(n_emitters) < 0.2

    def frames():
        nonlocal state
        for t0 in range(0, n_frames, 250):
            t1 = min(n_frames, t0 + 250)
            on = np.empty((t1 - t0, n_emitters), np.float32)
            for i in range(t1 - t0):
                u = rng.random(n_emitters)
                state = np.where(state, u > 0.3, u < 0.05)
                on[i] = state
            base = 200 + 100 * np.exp(-np.arange(t0, t1, dtype=np.float32) / max(n_frames, 1) * 2)
            block = (on * amp) @ psf + base[:, None]
            block += rng.standard_normal(block.shape, dtype=np.float32) * 12
            yield from np.clip(block, 0, 65535).astype(np.uint16).reshape(t1 - t0, h, w)

    with tifffile.TiffWriter(path, bigtiff=n_frames * h * w * 2 > 3.9e9) as tw:
        tw.write(frames(), shape=(n_frames, h, w), dtype=np.uint16, photometric="minisblack")


def drop_page_cache() -> None:
    """Empty the kernel's page cache so that the next read comes from the disk (needs root)."""
    os.sync()
    try:
        with open("/proc/sys/vm/drop_caches", "w") as fh:
            fh.write("1")
    except OSError as exc:
        raise SystemExit(f"--cold needs to drop the page cache (root): {exc}")


def run(code: str, path: str, python: str = sys.executable, cold: bool = False) -> dict:
    if cold:
        drop_page_cache()
    out = subprocess.run([python, "-c", f"P = {path!r}\n" + code], capture_output=True, text=True)
    if out.returncode:
        raise RuntimeError(f"benchmark case failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def best_of(code: str, path: str, repeat: int, python: str = sys.executable, cold: bool = False) -> dict:
    return min((run(code, path, python, cold) for _ in range(repeat)), key=lambda r: r["secs"])


def benchmark(args: argparse.Namespace) -> int:
    work = tempfile.mkdtemp(prefix="fluoxr-bench-sofi-", dir=args.tmp)
    shape = FRAME if not args.quick else (64, 64)
    frame_bytes = shape[0] * shape[1] * 2
    peer = os.path.exists(args.peer_python) and subprocess.run(
        [args.peer_python, "-c", "import pysofi"], capture_output=True).returncode == 0
    counts = sorted(set(args.frames) | set(args.rss_frames))
    print(f"# SOFI benchmark: mean + moments + cumulants of orders 1..6, {shape[0]}x{shape[1]} uint16 frames")
    print(f"# {platform.node()} {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
          f"{'cold page cache (dropped before every case)' if args.cold else 'warm page cache'}, fluoxr on the "
          f"threaded scheduler; best of {args.repeat} for fluoxr and the reads")
    if os.getloadavg()[0] > 0.5 * (os.cpu_count() or 1):
        print(f"# load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores: other processes compete for the "
              "CPUs, wall times are inflated (CPU seconds are not)")
    if not peer:
        print(f"# pysofi: not run (no peer venv with pysofi at {args.peer_python})")
    rows = []
    try:
        for n in counts:
            path = os.path.join(work, f"blink_{n}.tif")
            t0 = time.perf_counter()
            write_tiff(path, n, shape)
            run(PLAIN, path)  # warm the page cache
            row = {"frames": n, "mb": n * frame_bytes / 1e6, "write_s": time.perf_counter() - t0}
            row["read"] = best_of(PLAIN, path, args.repeat, cold=args.cold)
            row["fromfile"] = best_of(FROMFILE, path, args.repeat, cold=args.cold)
            row["fluoxr"] = best_of(FLUOXR, path, args.repeat, cold=args.cold)
            if peer and n in args.peer_frames:
                row["pysofi"] = run(PYSOFI, path, args.peer_python, cold=args.cold)
            rows.append(row)
            os.remove(path)
            print(f"# {n} frames done ({row['mb']:.0f} MB)", flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)

    cases = [("read", "plain read (readinto)"), ("fromfile", "np.fromfile"), ("fluoxr", "fluoxr"), ("pysofi", "pysofi")]
    print()
    print(f"{'':>15}" + "".join(f"|{label:^34}" for _, label in cases))
    print(f"{'frames':>7}{'MB':>8}" + f"|{'wall s':>8}{'MB/s':>8}{'CPU s':>9}{'RSS MB':>9}" * len(cases))
    for r in rows:
        cells = ""
        for key, _ in cases:
            c = r.get(key)
            cells += (f"|{c['secs']:>8.2f}{r['mb'] / c['secs']:>8.0f}{c['cpu']:>9.2f}{c['peak_mb']:>9.0f}" if c
                      else f"|{'-':>8}{'-':>8}{'-':>9}{'-':>9}")
        print(f"{r['frames']:>7}{r['mb']:>8.0f}{cells}")
    skipped = [r["frames"] for r in rows if "pysofi" not in r]
    base = [r for r in rows if "pysofi" in r]
    if peer and skipped and base:
        b = base[0]
        est = ", ".join(f"{n}: ~{b['pysofi']['secs'] * (n / b['frames']) ** 2:.0f} s" for n in skipped)
        print(f"# pysofi skipped at {skipped} frames: it re-reads the file once per order and re-walks the TIFF "
              f"for every frame, so its time grows with the square of the frames (extrapolated: {est})")
    print()
    for r in base:
        sp = r["pysofi"]["secs"] / r["fluoxr"]["secs"]
        print(f"# target: fluoxr >= 100x pysofi at {r['frames']} frames: {sp:.0f}x {'OK' if sp >= 100 else 'MISSED'}")
    for key, label in cases[:2]:
        ratios = [r[key]["secs"] / r["fluoxr"]["secs"] for r in rows]
        cpu = [r[key]["cpu"] / max(r["fluoxr"]["cpu"], 1e-9) for r in rows]
        print(f"# target: fluoxr >= 0.5x the throughput of one {label} pass: "
              + ", ".join(f"{r['frames']}: {x:.2f}x" for r, x in zip(rows, ratios))
              + f" {'OK' if min(ratios) >= 0.5 else 'MISSED'} (CPU seconds ratio: "
              + ", ".join(f"{x:.2f}" for x in cpu) + ")")
    lo, hi = rows[0], rows[-1]
    ratio = hi["fluoxr"]["peak_mb"] / lo["fluoxr"]["peak_mb"]
    print(f"# target: fluoxr peak RSS at {hi['frames']} / {lo['frames']} frames: {hi['fluoxr']['peak_mb']:.0f} / "
          f"{lo['fluoxr']['peak_mb']:.0f} MB = {ratio:.2f} (<= 1.3) {'OK' if ratio <= 1.3 else 'MISSED'}")
    if args.quick:
        print("# (--quick: files too small for the targets to mean anything; this run checks that the script works)")
    return 0


# --------------------------------------------------------------------------------------------
# agreement with pysofi, function by function

PEER_SIDE = r"""
import contextlib, io, math, os, sys
import numpy as np
# pysofi functions that NumPy 2 broke, patched back so that they can be compared at all
np.math = math; np.int = int; np.float = float; np.alltrue = np.all
from pysofi import pysofi as ps, reconstruction as rec, filtering, finterp, masks, deconvsk, ldrc
folder, name = os.path.dirname(P), os.path.basename(P)
res = {}
with contextlib.redirect_stdout(io.StringIO()):
    d = ps.PysofiData(folder, name)
    k = d.cumulants_images(highest_order=6)
    for n in range(1, 7):
        res[f"m{n}"], res[f"k{n}"] = d.moments_set[n], k[n]
    res["m6_float"] = rec.calc_moment_im(folder, name, 6)
    res["m3_frames"] = rec.calc_moment_im(folder, name, 3, frames=[10, 110])
    res["mean"], res["min"] = rec.average_image(folder, name), rec.min_image(folder, name)
    res["signal"] = rec.calc_total_signal(folder, name)
    res["smooth"] = filtering.med_smooth(res["signal"], 21)
    res["cut_frames"] = np.array(rec.cut_frames(res["smooth"], 0.2)[1])
    mab = rec.moments_all_blocks(folder, name, 4, 21, 0.2)
    res["block_m"] = np.array([[mab[i][n] for n in range(1, 5)] for i in sorted(mab)])
    kab = rec.cumulants_all_blocks(mab)
    res["block_k"] = np.array([[kab[i][n] for n in range(1, 5)] for i in sorted(kab)])
    bam, bak = rec.block_ave_moments(folder, name, 4, 21, 0.2), rec.block_ave_cumulants(folder, name, 4, 21, 0.2)
    res["block_ave_m"] = np.array([bam[n] for n in range(1, 5)])
    res["block_ave_k"] = np.array([bak[n] for n in range(1, 5)])
    lags = [0, 1, 3, 4, 6]
    ml = rec.calc_moments_with_lag(folder, name, lags)
    for o in ml:
        for sub, img in ml[o].items():
            res["lagm_" + ",".join(map(str, sub))] = img
    for o, img in rec.calc_cumulants_from_moments_with_lag(ml, lags).items():
        res[f"lagk{o}"] = img
    for s, img in rec.calc_xc_im(folder, name, 2).items():
        res[f"xc_{s[0]}_{s[1]}"] = img
    res["bc"] = rec.correct_bleaching(folder, name, fbc=0.2, save_option=False, return_option=True)
    res["finterp_mean"] = finterp.fourier_interp_array(res["mean"], [3])[0]
    res["m4_finterp"] = rec.moment_im_with_finterp(folder, name, 4, 2)
    im = np.abs(k[4].astype(float))
    psf = masks.gauss2d_mask((15, 15), 2)
    res["deconvsk"] = deconvsk.deconvsk(psf, im, 1.5, 5)
    res["rl_P"], res["rl_J"] = deconvsk.richardson_lucy(im, psf, 3)
    res["otf"] = deconvsk.psf2otf(psf, (40, 40))
    res["psf_back"] = deconvsk.otf2psf(res["otf"], (15, 15))
    res["ldrc"] = ldrc.ldrc(res["mean"], k[4].astype(float), 1, [9, 9])
    stack = {f"f{i}": k[n].astype(float) for i, n in enumerate((2, 3, 4, 5, 6))}
    res["noise_filter"] = filtering.noise_filter1d({f: d for f in stack}, stack, masks.gauss1d_mask((1, 5), 1),
                                                   return_option=True, return_type="ndarray")
    res["gauss2d"], res["gauss1d"] = masks.gauss2d_mask((7, 9), 1.3), masks.gauss1d_mask((1, 21), 2)
np.savez(OUT, **{key: np.asarray(v) for key, v in res.items()})
"""


# the SOFI entries of the registry the tests read, so that a reference is written once
REFERENCES = ("moments", "cumulants", "lag moments", "cross cumulants")


def reference_rows(video, raw) -> list[tuple[str, float, str]]:
    """fluoxr vs the tests' NumPy references (``fluoxr.testing.references.COMPARISONS``) on the same frames."""
    from fluoxr.testing.references import COMPARISONS

    rows = []
    for name in REFERENCES:
        c = COMPARISONS[name]
        a, b = np.asarray(c.fluoxr(video), float), np.asarray(c.reference(raw), float)
        rows.append((f"{name} (NumPy reference)", float(np.nanmax(np.abs(a - b)) / max(np.nanmax(np.abs(b)), 1e-300)),
                     "fluoxr.testing.references"))
    return rows


def references(args: argparse.Namespace) -> int:
    import tifffile

    import fluoxr

    work = tempfile.mkdtemp(prefix="fluoxr-references-sofi-", dir=args.tmp)
    path = os.path.join(work, "movie.tif")
    write_tiff(path, 300, (48, 40), seed=3, n_emitters=6)
    rows = reference_rows(fluoxr.open_video(path, chunks=37), tifffile.imread(path))
    shutil.rmtree(work, ignore_errors=True)
    _print_rows("# fluoxr vs the tests' NumPy references on a 300 x 48 x 40 uint16 TIFF (fluoxr chunks of 37 frames)",
                "operation", "max |diff| / max |reference|", rows)
    return 0


def _print_rows(title: str, what: str, measure: str, rows: list) -> None:
    print(title)
    print(f"{what:<40}{measure:>28}  note")
    for name, value, note in rows:
        print(f"{name:<40}{value:>28.2e}  {note}")


def agreement(args: argparse.Namespace) -> int:
    import tifffile
    import xarray as xr

    import fluoxr
    from fluoxr.kernels import moments as km
    from fluoxr.kernels import sofi as ks
    from fluoxr.sofi.blocks import _corrected_block

    work = tempfile.mkdtemp(prefix="fluoxr-agree-sofi-", dir=args.tmp)
    path = os.path.join(work, "movie.tif")
    write_tiff(path, 300, (48, 40), seed=3, n_emitters=6)
    out = os.path.join(work, "pysofi.npz")
    r = subprocess.run([args.peer_python, "-c", f"P, OUT = {path!r}, {out!r}\n" + PEER_SIDE],
                       capture_output=True, text=True)
    if r.returncode:
        shutil.rmtree(work, ignore_errors=True)
        raise SystemExit(f"pysofi side failed (is {args.peer_python} a venv with pysofi?):\n{r.stderr[-2000:]}")
    P = dict(np.load(out))
    raw = tifffile.imread(path)
    video = fluoxr.open_video(path, chunks=37)  # chunks not aligned with anything
    rows: list[tuple[str, float, str]] = []

    def rel(a, b) -> float:
        a, b = np.asarray(a, float), np.asarray(b, float)
        return float(np.nanmax(np.abs(a - b)) / max(np.nanmax(np.abs(b)), 1e-300))

    def add(name, a, b, note=""):
        rows.append((name, rel(a, b), note))

    ds = fluoxr.sofi_images(video, 6).compute()
    add("calc_moments (orders 2..6)", ds.moments.sel(order=slice(2, None)),
        np.stack([P[f"m{n}"] for n in range(2, 7)]), "pysofi truncates to int64")
    add("calc_moment_im (order 6, float)", ds.moments.sel(order=6), P["m6_float"])
    add("calc_moment_im frames=[10, 110]",
        fluoxr.moments(video.isel(time=slice(10, 110)), 3).sel(order=3).compute(), P["m3_frames"])
    add("cumulants_images (orders 2..6)", ds.cumulants.sel(order=slice(2, None)),
        np.stack([P[f"k{n}"] for n in range(2, 7)]), "pysofi: recursion on int64-truncated moments")
    mt = np.stack([P[f"m{n}"] for n in range(1, 7)]).astype(float)
    add("calc_cumulants_from_moments (kernel)", km.cumulants_from_moments(mt)[1:],
        np.stack([P[f"k{n}"] for n in range(2, 7)]))
    add("average_image", ds.mean_image, P["mean"])
    add("min_image", fluoxr.sofi.min_image(video).compute(), P["min"])
    sig = fluoxr.total_signal(video).compute().values
    add("calc_total_signal", sig, P["signal"], "pysofi sums uint16 with wrap-around")
    add("calc_total_signal (mod 65536)", np.mod(sig, 65536), P["signal"])
    add("med_smooth (kernel)", ks.med_smooth(P["signal"], 21), P["smooth"])
    add("cut_frames (kernel)", ks.cut_frames(P["smooth"], 0.2)[1], P["cut_frames"])
    bm = fluoxr.block_moments(video, 4, edges=P["cut_frames"]).compute()
    add("moments_all_blocks (pysofi's edges)", bm.moments, P["block_m"])
    add("cumulants_all_blocks", bm.cumulants.sel(order=slice(2, None)), P["block_k"][:, 1:])
    add("block_ave_moments", bm.moments.mean("block"), P["block_ave_m"])
    add("block_ave_cumulants", bm.cumulants.mean("block"), P["block_ave_k"])
    lags = [0, 1, 3, 4, 6]
    lm = fluoxr.lag_moments(video, lags).compute()
    add("calc_moments_with_lag (22 subsets)", np.stack([lm.sel(subset=s) for s in lm.subset.values]),
        np.stack([P["lagm_" + s] for s in lm.subset.values]))
    lk = fluoxr.lag_cumulants(lm).compute()
    add("calc_cumulants_from_moments_with_lag", lk, np.stack([P[f"lagk{o}"] for o in range(2, 6)]),
        "pysofi needs np.math (patched)")
    xc = fluoxr.cross_cumulants(video, 2).compute()
    add("calc_xc_im (ri_range 2)", xc, np.stack([P[f"xc_{int(a)}_{int(b)}"] for a, b in zip(xc.dy, xc.dx)]))
    edges = ks.cut_frames(ks.med_smooth(P["signal"], 251), 0.2)[1]  # correct_bleaching always smooths with 251
    means = np.stack([raw[a:b].mean(0) for a, b in zip(edges[:-1], edges[1:])])
    mins = np.stack([raw[a:b].min(0) for a, b in zip(edges[:-1], edges[1:])]).astype(float)
    add("correct_bleaching (pysofi's edges)", _corrected_block(raw, np.arange(raw.shape[0]), edges,
                                                               np.concatenate([means, mins]), out_dtype=np.int64),
        P["bc"])
    add("fourier_interp_array (x3)", fluoxr.fourier_interpolate(P["mean"], 3), P["finterp_mean"])
    m4f = fluoxr.moments(fluoxr.fourier_interpolate(video, 2), 4).sel(order=4).compute()
    add("moment_im_with_finterp (x2, order 4)", m4f, P["m4_finterp"], "pysofi truncates to int64")
    k4 = np.abs(P["k4"].astype(float))
    psf = ks.gauss2d_mask((15, 15), 2)
    add("deconvsk", fluoxr.deconvsk(k4, psf=psf, deconv_iter=5), P["deconvsk"], "pysofi needs np.float (patched)")
    Pp, J = ks.richardson_lucy(k4, psf, 3)
    add("richardson_lucy (psf, image)", np.r_[Pp.ravel(), J.ravel()], np.r_[P["rl_P"].ravel(), P["rl_J"].ravel()])
    add("psf2otf", ks.psf2otf(psf, (40, 40)), P["otf"])
    add("otf2psf", ks.otf2psf(P["otf"], (15, 15)), P["psf_back"])
    add("ldrc", fluoxr.ldrc(P["k4"].astype(float), mask=P["mean"], window_size=(9, 9)), P["ldrc"])
    series = xr.DataArray(np.stack([P[f"k{n}"].astype(float) for n in (2, 3, 4, 5, 6)]), dims=("time", "y", "x"))
    add("noise_filter1d / filter1d_same", fluoxr.noise_filter(series.chunk({"time": 2}), ks.gauss1d_mask((1, 5), 1)),
        P["noise_filter"], "pysofi needs np.int (patched)")
    rows += reference_rows(video, raw)
    add("gauss2d_mask, gauss1d_mask", np.r_[ks.gauss2d_mask((7, 9), 1.3).ravel(), ks.gauss1d_mask((1, 21), 2)],
        np.r_[P["gauss2d"].ravel(), P["gauss1d"]])
    shutil.rmtree(work, ignore_errors=True)
    _print_rows("# fluoxr vs pysofi 0.1.1 on a 300 x 48 x 40 uint16 TIFF (fluoxr chunks of 37 frames)",
                "pysofi function", "max |diff| / max |pysofi|", rows)
    return 0


# --------------------------------------------------------------------------------------------
# every SOFI path's throughput, fluoxr beside pysofi

# name -> (fluoxr statement on the lazy video V, pysofi statement on (folder, name)); MB/s are of the input file
PATHS = {
    "moments + cumulants, orders 1..6": (
        "fluoxr.sofi_images(V, 6).compute()",
        "ps.PysofiData(folder, name).cumulants_images(highest_order=6)"),
    "cumulants 2..4 of finterp x2 frames": (
        "fluoxr.cumulants(fluoxr.fourier_interpolate(V, 2), [2, 3, 4]).compute()",
        "[rec.moment_im_with_finterp(folder, name, n, 2) for n in (2, 3, 4)]"),
    "Fourier interpolation x2 (video)": (
        "fluoxr.fourier_interpolate(V, 2).max('time').compute()",
        "finterp.fourier_interp_tiff(folder, name[:-4], [2], [], False, True)"),
    "block-averaged cumulants (fbc 0.2)": (
        "fluoxr.cumulants(V, 4, bleach_correction=True, fbc=0.2, smooth_kernel=21).compute()",
        "rec.block_ave_cumulants(folder, name, 4, 21, 0.2)"),
    "bleach-corrected video (fbc 0.2)": (
        "fluoxr.bleach_correct(V, fbc=0.2, smooth_kernel=251).max('time').compute()",
        "rec.correct_bleaching(folder, name, fbc=0.2, save_option=False, return_option=True)"),
    "lag cumulants, lags 0 1 2 3": (
        "fluoxr.lag_cumulants(V, [0, 1, 2, 3]).compute()",
        "rec.calc_cumulants_from_moments_with_lag(rec.calc_moments_with_lag(folder, name, [0, 1, 2, 3]), "
        "[0, 1, 2, 3])"),
    "cross cumulants XC2 (ri_range 2)": (
        "fluoxr.cross_cumulants(V, 2).compute()",
        "rec.calc_xc_im(folder, name, 2)"),
}

FLUOXR_PATHS = """
import json, os, time, dask, fluoxr
dask.config.set(scheduler="threads")
V = fluoxr.open_video(P)
fluoxr.set_options(chunk_mb=16)
out = {}
for key, stmt in CASES.items():
    small = V
    V = V.isel(time=slice(0, 300))
    eval(stmt)                      # warm: numba kernels loaded, operators cached
    V = small
    best = None
    for _ in range(REPEAT):
        c0, t0 = os.times(), time.perf_counter()
        eval(stmt)
        dt, c1 = time.perf_counter() - t0, os.times()
        run = {'secs': dt, 'cpu': (c1.user - c0.user) + (c1.system - c0.system)}
        best = run if best is None or dt < best['secs'] else best
    out[key] = best
print(json.dumps(out))
"""

PYSOFI_PATHS = """
import contextlib, io, json, math, os, time
import numpy as np
np.math = math; np.int = int; np.float = float; np.alltrue = np.all   # removed in NumPy 2, called by pysofi
from pysofi import pysofi as ps, reconstruction as rec, finterp
folder, name = os.path.dirname(P), os.path.basename(P)
out = {}
for key, stmt in CASES.items():
    c0, t0 = os.times(), time.perf_counter()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            eval(stmt)
    except Exception as exc:  # pysofi fails on some inputs (e.g. correct_bleaching on fewer than 251 frames)
        out[key] = {'error': f"{type(exc).__name__}: {exc}"[:60]}
        continue
    dt, c1 = time.perf_counter() - t0, os.times()
    out[key] = {'secs': dt, 'cpu': (c1.user - c0.user) + (c1.system - c0.system)}
print(json.dumps(out))
"""


def paths(args: argparse.Namespace) -> int:
    """Each SOFI path's MB/s of input (fluoxr, warm, best of --repeat) beside pysofi's (one run, fewer frames)."""
    frame = (64, 64) if not args.quick else (32, 32)
    n, n_peer = (args.frames[0], args.peer_frames[0]) if not args.quick else (300, 100)
    work = tempfile.mkdtemp(prefix="fluoxr-bench-paths-", dir=args.tmp)
    peer = os.path.exists(args.peer_python) and subprocess.run(
        [args.peer_python, "-c", "import pysofi"], capture_output=True).returncode == 0
    try:
        path = os.path.join(work, "movie.tif")
        write_tiff(path, n, frame, n_emitters=8)
        mb = n * frame[0] * frame[1] * 2 / 1e6
        code = f"CASES = {json.dumps({k: v[0] for k, v in PATHS.items()})}\nREPEAT = {args.repeat}\n" + FLUOXR_PATHS
        r = subprocess.run([sys.executable, "-c", f"P = {path!r}\n" + code], capture_output=True, text=True)
        if r.returncode:
            raise SystemExit(f"fluoxr side failed:\n{r.stderr[-3000:]}")
        ours = json.loads(r.stdout.strip().splitlines()[-1])
        theirs: dict = {}
        mb_peer = n_peer * frame[0] * frame[1] * 2 / 1e6
        if peer:
            ppath = os.path.join(work, "peer", "movie.tif")
            os.makedirs(os.path.dirname(ppath))
            write_tiff(ppath, n_peer, frame, n_emitters=8)
            code = f"CASES = {json.dumps({k: v[1] for k, v in PATHS.items()})}\n" + PYSOFI_PATHS
            r = subprocess.run([args.peer_python, "-c", f"P = {ppath!r}\n" + code], capture_output=True, text=True)
            if r.returncode:
                raise SystemExit(f"pysofi side failed:\n{r.stderr[-3000:]}")
            theirs = json.loads(r.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(work, ignore_errors=True)
    cores = os.cpu_count() or 1
    print(f"# every SOFI path: {n} x {frame[0]} x {frame[1]} uint16 TIFF ({mb:.1f} MB) for fluoxr (threaded scheduler, "
          f"warm, best of {args.repeat}); pysofi on {n_peer} frames ({mb_peer:.1f} MB; its time grows with the square "
          f"of the frames), one run")
    print(f"# {platform.node()}, {cores} cores, load average {os.getloadavg()[0]:.1f}. MB/s are of the input file; "
          f"'MB/CPU-s x {cores}' is what {cores} idle cores would give (other processes do not inflate CPU seconds)")
    if not peer:
        print(f"# pysofi: not run (no peer venv with pysofi at {args.peer_python})")
    head = f"{'path':<38}|{'fluoxr s':>9}{'MB/s':>8}{'CPU s':>8}{f'MB/CPU-s x {cores}':>15}|{'pysofi s':>9}{'MB/s':>8}"
    print(head)
    for key in PATHS:
        o = ours[key]
        idle = mb / o["cpu"] * cores if o["cpu"] > 0 else float("nan")
        p = theirs.get(key)
        peer_cells = (f" failed: {p['error']}" if p and "error" in p else
                      f"{p['secs']:>9.2f}{mb_peer / p['secs']:>8.2f}" if p else f"{'-':>9}{'-':>8}")
        print(f"{key:<38}|{o['secs']:>9.3f}{mb / o['secs']:>8.0f}{o['cpu']:>8.2f}{idle:>15.0f}|{peer_cells}")
    slow = [k for k in PATHS if mb / ours[k]["secs"] < 100]
    print(f"# target: every path >= 100 MB/s of input on {cores} cores, warm: "
          + ("OK" if not slow else "below on this run: " + ", ".join(slow)))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, nargs="+", default=[2000, 8000])
    ap.add_argument("--rss-frames", type=int, nargs="*", default=[16000],
                    help="extra frame counts for fluoxr's time and memory only")
    ap.add_argument("--peer-frames", type=int, nargs="*", default=None,
                    help="frame counts pysofi runs at (default 2000; 300 with --paths)")
    ap.add_argument("--repeat", type=int, default=2, help="runs of fluoxr and the plain read; the best is kept")
    ap.add_argument("--peer-python", default=PEER_PYTHON, help="python of a venv with pysofi")
    ap.add_argument("--tmp", default=None, help="folder for the test files (default: the system temp folder)")
    ap.add_argument("--quick", action="store_true", help="64 x 64 frames, 200 and 800 frames, seconds")
    ap.add_argument("--cold", action="store_true",
                    help="drop the page cache before every case (needs root): every read comes from the disk, "
                         "as it does for a recording larger than memory")
    ap.add_argument("--agreement", action="store_true", help="compare with pysofi function by function")
    ap.add_argument("--paths", action="store_true",
                    help="every SOFI path's MB/s (64 x 64 frames, --frames[0] of them for fluoxr, default 8000, "
                         "--peer-frames[0] for pysofi, default 300), side by side")
    ap.add_argument("--references", action="store_true",
                    help="compare with the tests' NumPy references (fluoxr.testing.references); no peer needed")
    args = ap.parse_args(argv)
    if args.references:
        return references(args)
    if args.agreement:
        return agreement(args)
    if args.paths:
        if args.frames == [2000, 8000]:
            # four 16 MB chunks, so that both cores work (a 2000-frame file is one chunk: one core for the
            # paths that do not split chunks)
            args.frames = [8000]
        if args.peer_frames is None:
            args.peer_frames = [300]  # pysofi's quadratic re-reads: seconds per path instead of minutes
        return paths(args)
    if args.peer_frames is None:
        args.peer_frames = [2000]
    if args.quick:
        args.frames, args.rss_frames, args.peer_frames, args.repeat = [200], [800], [200], 1
    return benchmark(args)


if __name__ == "__main__":
    sys.exit(main())
