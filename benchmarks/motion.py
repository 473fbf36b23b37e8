#!/usr/bin/env python3
"""Motion correction: fluoxr's estimate + apply from a zarr on disk against suite2p's registration, side by side.

Cases (each in a fresh subprocess; the child reports its own timings and peak RSS):

- fluoxr: ``open_video(zarr)``, ``register(video, return_motion=True)`` and
  ``dask.compute(registered.mean("time"), motion)``: the reference from 300
  frames, every frame's shifts, every frame registered (and averaged, so that
  it is really computed), nothing written;
- suite2p 1.1.0 (peer venv, CPU torch): the same frames read from the same
  zarr (int16, as its binary files hold them), ``compute_reference`` from the
  same 300 frames (``nimg_init``), then ``register_frames`` (batch 100), which
  writes the registered movie (its way of working) to a temporary ``.npy`` in
  the work folder, deleted afterwards.

Both rigid and nonrigid (suite2p's default, 128 px blocks), for 2,000 and
8,000 frames of 512 x 512 uint16 (``--quick``: 120 frames of 128 x 128, 32 px blocks).
Targets (issue 13): fluoxr at least suite2p's frames/s, peak RSS flat in the
number of frames, nothing written by fluoxr (checked: the work folder is
listed before and after).

Usage::

    python benchmarks/motion.py            # 2,000 and 8,000 frames (writes 2.1 + 4.2 GB of zarr once)
    python benchmarks/motion.py --quick    # seconds (run by the tests)
    python benchmarks/motion.py --frames 2000 --no-peers
"""

from __future__ import annotations

import argparse
import json
import os
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


def _listing(folder: str) -> dict[str, int]:
    out = {}
    for root, _, names in os.walk(folder):
        for n in names:
            p = os.path.join(root, n)
            out[p] = os.path.getsize(p)
    return out


# ----------------------------------------------------------------------------------------------
# data: a textured field of view (cells on texture) moving by a random walk, Poisson noise


def write_movie(path: str, T: int, H: int, W: int, seed: int = 0) -> None:
    import numpy as np

    import fluoxr
    from fluoxr.testing import textured_image

    rng = np.random.default_rng(seed)
    pad = 24
    big = textured_image((H + 2 * pad, W + 2 * pad), seed=seed, n_cells=H * W // 300)
    walk = np.clip(np.cumsum(rng.normal(0, 0.7, (T, 2)), axis=0), -3 * pad, 3 * pad) / 3.0
    block = max(1, int(16e6 // (H * W * 2)))  # fluoxr's default chunks, about 16 MB (open_video keeps the store's)

    def frames(t0: int, t1: int) -> np.ndarray:
        out = np.empty((t1 - t0, H, W), np.uint16)
        for i, t in enumerate(range(t0, t1)):
            a, b = (int(round(v)) for v in walk[t])
            out[i] = rng.poisson(big[pad + a:pad + a + H, pad + b:pad + b + W]).astype(np.uint16)
        return out

    import dask
    import dask.array as da

    parts = [da.from_delayed(dask.delayed(frames)(t0, min(T, t0 + block)), (min(T, t0 + block) - t0, H, W),
                             dtype=np.uint16) for t0 in range(0, T, block)]
    video = fluoxr.as_video(da.concatenate(parts), fps=30.0)
    fluoxr.save(video, path)


# ----------------------------------------------------------------------------------------------
# children


def child_fluoxr(a):
    import dask
    import numpy as np

    import fluoxr

    tiny = fluoxr.as_video(np.random.default_rng(0).random((6, 64, 64)).astype(np.float32))
    dask.compute(*fluoxr.register(tiny, return_motion=True, nonrigid=a["nonrigid"], block_size=(32, 32),
                                  bidiphase=0, n_reference_frames=6))  # load the cached numba kernels
    before = _listing(a["workdir"])
    setup = _setup_done()
    t0 = time.perf_counter()
    video = fluoxr.open_video(a["zarr"])
    reg, motion = fluoxr.register(video, return_motion=True, nonrigid=a["nonrigid"], n_reference_frames=300,
                                  bidiphase=0, block_size=(a["block"], a["block"]))
    mean, motion = dask.compute(reg.mean("time"), motion)
    dt = time.perf_counter() - t0
    written = sorted(set(_listing(a["workdir"]).items()) ^ set(before.items()))
    np.save(a["out"], np.c_[motion.dy.values, motion.dx.values])
    return dict(compute_s=dt, setup_MB=setup, in_MB=video.nbytes / 1e6, frames=video.sizes["time"],
                written=len(written), note=f"open_video + register + mean, {video.chunks[0][0]}-frame chunks, "
                                           f"threads; files written: {len(written)}")


def child_suite2p(a):
    import numpy as np
    import torch
    import zarr
    from suite2p import default_settings
    from suite2p.registration import register as s2p

    class Int16Frames:
        """The zarr read by slices, as int16 (what suite2p's binary files hold)."""

        def __init__(self, arr):
            self.arr = arr
            self.shape = arr.shape

        def __getitem__(self, idx):
            if isinstance(idx, np.ndarray):  # a list of frames (the reference sample)
                return np.stack([np.asarray(self.arr[int(i)]) for i in idx]).astype(np.int16)
            return np.asarray(self.arr[idx]).astype(np.int16)

    group = zarr.open_group(a["zarr"], mode="r")
    name = [k for k in group.array_keys() if group[k].ndim == 3][0]  # the video, not its coords
    frames_in = Int16Frames(group[name])
    settings = dict(default_settings()["registration"])
    settings.update(nimg_init=300, batch_size=100, nonrigid=a["nonrigid"], do_bidiphase=False,
                    block_size=(a["block"], a["block"]))
    cpu = torch.device("cpu")
    setup = _setup_done()
    t0 = time.perf_counter()
    n = frames_in.shape[0]
    idx = np.linspace(0, n, 1 + min(settings["nimg_init"], n), dtype=int)[:-1]
    ref = s2p.compute_reference(frames_in[idx], settings=settings, device=cpu)
    tref = time.perf_counter() - t0
    out = np.lib.format.open_memmap(a["scratch"], mode="w+", dtype=np.int16, shape=frames_in.shape)
    res = s2p.register_frames(frames_in, ref, f_align_out=out, batch_size=settings["batch_size"],
                              nonrigid=a["nonrigid"], block_size=settings["block_size"], device=cpu)
    dt = time.perf_counter() - t0
    yoff, xoff = res[3][0], res[3][1]
    del out
    os.remove(a["scratch"])
    np.save(a["out"], np.c_[yoff, xoff])
    return dict(compute_s=dt, setup_MB=setup, in_MB=n * frames_in.shape[1] * frames_in.shape[2] * 2 / 1e6,
                frames=n, note=f"compute_reference ({tref:.1f} s) + register_frames(cpu, batch 100), "
                               f"registered copy written to .npy")


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


HEADER = (f"  {'case':28s} {'time_s':>8s} {'frames/s':>9s} {'MB/s':>7s} {'peakMB':>8s} {'+dataMB':>8s}   notes\n"
          f"  {'':28s} {'(timed)':>8s} {'':>9s} {'input':>7s} {'(RSS)':>8s} {'(>setup)':>8s}")


def _row(name: str, res: dict | None) -> str:
    if res is None:
        return f"  {name:28s} failed"
    return (f"  {name:28s} {res['compute_s']:8.2f} {res['frames'] / res['compute_s']:9.1f} "
            f"{res['in_MB'] / res['compute_s']:7.1f} {res['peak_MB']:8.0f} {res['peak_MB'] - res['setup_MB']:8.0f}"
            f"   {res['note']}")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="tiny sizes (seconds)")
    p.add_argument("--no-peers", action="store_true", help="skip suite2p even when installed")
    p.add_argument("--frames", type=int, nargs="+", default=None, help="movie lengths (default 2000 8000)")
    p.add_argument("--size", type=int, default=None, help="frame side in pixels (default 512)")
    p.add_argument("--modes", nargs="+", default=["rigid", "nonrigid"], choices=["rigid", "nonrigid"])
    p.add_argument("--workdir", default=None, help="where to write the movies (default: a temporary folder)")
    p.add_argument("--child", nargs=2, metavar=("CASE", "JSON"), help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        _child_main(*a.child)
        return 0

    import numpy as np

    lengths = a.frames or ([120] if a.quick else [2000, 8000])
    side = a.size or (128 if a.quick else 512)
    peers = (not a.no_peers) and os.path.exists(PEER_PY)
    tmp = a.workdir or tempfile.mkdtemp(prefix="fluoxr_bench_motion_")
    os.makedirs(tmp, exist_ok=True)
    print(f"fluoxr benchmark: motion correction  ({os.cpu_count()} cores; suite2p: "
          f"{PEER_PY if peers else 'not run'}; data in {tmp})", flush=True)
    results = {}
    ok = True
    for T in lengths:
        path = os.path.join(tmp, f"movie_T{T}_{side}.zarr")
        if not os.path.exists(path):
            t0 = time.perf_counter()
            write_movie(path, T, side, side)
            print(f"  [prep] wrote {path} in {time.perf_counter() - t0:.1f} s", flush=True)
        for mode in a.modes:
            nonrigid = mode == "nonrigid"
            print(f"\n{mode}, {T} frames of {side} x {side} uint16 ({T * side * side * 2 / 1e6:.0f} MB), "
                  f"reference from 300 frames")
            print(HEADER)
            base = {"zarr": path, "nonrigid": nonrigid, "workdir": tmp, "block": 32 if a.quick else 128}
            r = run_case("fluoxr", base | {"out": os.path.join(tmp, f"shifts_fluoxr_{T}_{mode}.npy")},
                         sys.executable)
            print(_row("fluoxr estimate+apply", r), flush=True)
            results[("fluoxr", T, mode)] = r
            if r is not None and r["written"]:
                ok = False
                print("  [FAIL] fluoxr wrote files")
            if peers:
                s = run_case("suite2p", base | {"out": os.path.join(tmp, f"shifts_s2p_{T}_{mode}.npy"),
                                                "scratch": os.path.join(tmp, "s2p_registered.npy")}, PEER_PY)
                print(_row("suite2p registration", s), flush=True)
                results[("suite2p", T, mode)] = s
                if r is not None and s is not None:
                    ours = np.load(os.path.join(tmp, f"shifts_fluoxr_{T}_{mode}.npy"))
                    theirs = np.load(os.path.join(tmp, f"shifts_s2p_{T}_{mode}.npy"))
                    d = np.abs(np.round(ours) - theirs)
                    print(f"  agreement: rounded fluoxr shifts equal suite2p's on {np.mean(d.max(1) == 0):.1%} of "
                          f"frames; fluoxr/suite2p frames/s = {s['compute_s'] / r['compute_s']:.2f}")
    if not a.quick and len(lengths) > 1:
        for mode in a.modes:
            rs = [results.get(("fluoxr", T, mode)) for T in lengths]
            if all(rs):
                grow = rs[-1]["peak_MB"] - rs[0]["peak_MB"]
                print(f"  {mode}: fluoxr peak RSS {rs[0]['peak_MB']:.0f} MB at {lengths[0]} frames, "
                      f"{rs[-1]['peak_MB']:.0f} MB at {lengths[-1]} ({grow:+.0f} MB)")
    print("\ndone" if ok else "\nfailed")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
