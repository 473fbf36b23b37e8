"""The ``fluoxr`` command line.

``fluoxr info PATH`` and ``fluoxr demo``; each analysis adds its own
subcommand and a step to the demo. Analyses run on a local dask cluster
started here (the only place fluoxr starts one), on an existing cluster
(``--scheduler tcp://host:port``) or in-process (``--scheduler threads``).
Bad input ends with a one-line message and exit code 2, not a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, NoReturn

logger = logging.getLogger(__name__)

EXIT_BAD_INPUT = 2
DEMO_MARKER = ".fluoxr-demo"


# --------------------------------------------------------------------------------------------
# running graphs: scheduler and progress bar (edges only)


@dataclass
class Runner:
    """Computes dask collections on the chosen scheduler, with a progress bar."""

    client: Any = None  # distributed.Client, or None for the threaded scheduler
    progress: bool = True
    timings: list[tuple[str, float, float]] = field(default_factory=list)

    def compute(self, obj: Any, *, label: str, nbytes: float = 0.0) -> Any:
        """Compute ``obj`` (a dask collection or delayed), record wall time and input MB."""
        import dask

        t0 = time.perf_counter()
        if self.progress:
            print(f"  {label}", flush=True)
        if self.client is not None:
            futures = self.client.compute(obj)
            if self.progress:
                from distributed import progress

                progress(futures)
                print(flush=True)
            result = self.client.gather(futures)
        elif self.progress:
            from dask.diagnostics import ProgressBar

            with ProgressBar(minimum=0.5, width=40):
                (result,) = dask.compute(obj)
        else:
            (result,) = dask.compute(obj)
        self.timings.append((label, time.perf_counter() - t0, nbytes))
        return result

    def throughput(self, label: str) -> str:
        for name, secs, nbytes in reversed(self.timings):
            if name == label:
                rate = nbytes / 1e6 / secs if secs > 0 and nbytes else float("nan")
                return f"{secs:.1f} s" + (f", {rate:.0f} MB/s of input" if nbytes else "")
        return "?"


@contextlib.contextmanager
def scheduler(address: str | None, *, workers: int | None = None) -> Iterator[Any]:
    """Yield a distributed Client (local cluster or ``address``), or None for ``threads``."""
    if address in ("threads", "sync", "synchronous"):
        import dask

        with dask.config.set(scheduler="threads" if address == "threads" else "synchronous"):
            yield None
        return
    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.WARNING)
    if address in (None, "local"):
        n = workers or max(1, min(os.cpu_count() or 1, 4))
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            yield client
    else:
        with Client(address, timeout="30s") as client:
            yield client


def _add_output_args(p: argparse.ArgumentParser, what: str = "outputs") -> None:
    """``--overwrite`` and ``--resume`` for subcommands that write zarr stores."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--overwrite", action="store_true", help=f"replace existing {what}")
    g.add_argument("--resume", action="store_true",
                   help=f"finish an interrupted run: chunks of {what} already written are kept, not recomputed")


def _check_output(path: str | None, args: argparse.Namespace, flag: str, *, replace: bool = False) -> None:
    """Refuse an output that could destroy data (see :func:`fluoxr._outputs.check_output_path`), or that
    exists unless --overwrite or --resume (or ``replace``, for a figure that is simply redrawn) allows it."""
    if path is None:
        return
    from ._outputs import check_output_path

    check_output_path(path, _input_paths(args), name=flag, siblings=(".partial", ".lock"))
    if os.path.lexists(path) and not (replace or args.overwrite or getattr(args, "resume", False)):
        raise ValueError(f"{flag} {path!r} already exists; pass --overwrite to replace it "
                         "or --resume to finish an interrupted run")


def _write_table(table: Any, path: str, **kwargs: Any) -> None:
    """Write a DataFrame as CSV through a temporary file (a link at ``path`` is replaced, not written through)."""
    from ._outputs import write_file_atomically

    write_file_atomically(path, lambda tmp: table.to_csv(tmp, **kwargs))


def _input_paths(args: argparse.Namespace) -> list[str]:
    """Absolute paths of every file a subcommand reads (globs expanded, HDF5 '::' parts dropped)."""
    from .io import _expand_paths

    found = []
    for attr in ("input", "stat", "labels", "positions", "mask"):
        value = getattr(args, attr, None)
        for item in (value if isinstance(value, list) else [value] if value else []):
            try:
                expanded = _expand_paths(item)
            except (ValueError, TypeError):
                expanded = [item]
            found += [os.path.abspath(p.split("::")[0]) for p in expanded]
    return found


def _save_figure(fig: Any, path: str) -> None:
    """Write a figure as PNG through a temporary file and release it (pyplot keeps every open figure alive)."""
    import matplotlib.pyplot as plt

    from ._outputs import write_file_atomically

    try:
        write_file_atomically(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    finally:
        plt.close(fig)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (and exit code 2), like every other CLI error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _number(kind: type, *, ge: float | None = None, gt: float | None = None,
            lt: float | None = None) -> Callable[[str], Any]:
    """An argparse type: an int or float within bounds, refused at once (exit 2) otherwise."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if ge is not None and value < ge:
            raise argparse.ArgumentTypeError(f"must be at least {ge:g}, got {text}")
        if gt is not None and value <= gt:
            raise argparse.ArgumentTypeError(f"must be greater than {gt:g}, got {text}")
        if lt is not None and value >= lt:
            raise argparse.ArgumentTypeError(f"must be less than {lt:g}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


_POSITIVE = _number(float, gt=0)
_COUNT = _number(int, ge=1)
_INDEX = _number(int, ge=0)


def _add_scheduler_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="dask scheduler address (tcp://host:port), 'threads' for in-process threads, "
                        "or 'local' (default) to start a local cluster of worker processes")
    p.add_argument("--workers", type=_COUNT, default=None, help="workers of the local cluster (default: cores, at most 4)")
    p.add_argument("--no-progress", action="store_true", help="do not show progress bars")


# --------------------------------------------------------------------------------------------
# fluoxr info


def _cmd_info(args: argparse.Namespace) -> int:
    from .io import info

    kwargs: dict[str, Any] = {}
    if args.fps is not None:
        kwargs["fps"] = args.fps
    if args.shape is not None:
        kwargs["shape"] = tuple(args.shape)
    d = info(args.path if len(args.path) > 1 else args.path[0], **kwargs)
    chunks = {k: (v[0] if len(set(v)) == 1 else f"{v[0]}..({len(v)} chunks)") for k, v in d["chunks"].items()}
    print(f"source       {d['source']}")
    print(f"dims         {', '.join(d['dims'])}")
    print(f"shape        {d['shape']}")
    print(f"dtype        {d['dtype']}")
    print(f"chunks       {chunks}")
    print(f"fps          {d['fps'] if d['fps'] is not None else 'unknown (time is the frame index)'}")
    if d["pixel_size"] is not None:
        print(f"pixel size   {d['pixel_size']} um")
    print(f"size         {d['nbytes'] / 1e6:.1f} MB in memory, {d['size_on_disk'] / 1e6:.1f} MB on disk")
    return 0


# --------------------------------------------------------------------------------------------
# fluoxr demo


@dataclass
class DemoContext:
    """What every demo step sees: where to write, the recordings, and how to compute."""

    out: str
    frames: int | None
    runner: Runner
    videos: dict[str, Any] = field(default_factory=dict)
    truths: dict[str, Any] = field(default_factory=dict)
    report: list[str] = field(default_factory=list)

    def path(self, name: str) -> str:
        return os.path.join(self.out, name)


def _demo_recordings(ctx: DemoContext) -> None:
    """Generate the synthetic recordings to zarr, then reopen them from disk like a user would."""
    from . import datasets
    from .io import open_video, save

    n = ctx.frames
    recordings = {
        "blinking": datasets.blinking_emitters(n_frames=n or 2000, shape=(64, 64), n_emitters=12, seed=1, on_fraction=0.15,
                                               bleach_tau_s=60.0),
        "calcium": datasets.calcium_neurons(n_frames=n or 1500, shape=(128, 128), n_cells=40, red_fraction=0.3,
                                            seed=2),
        "sheet": datasets.oscillating_sheet(n_frames=n or 300, shape=(128, 128), seed=3),
    }
    writes, total = [], 0
    for name, (video, truth) in recordings.items():
        writes.append(save(video, ctx.path(f"{name}.zarr"), overwrite=True, compute=False))
        ctx.truths[name] = truth
        total += video.nbytes
    ctx.runner.compute(writes, label="writing synthetic recordings to zarr", nbytes=total)
    for name in recordings:
        ctx.videos[name] = open_video(ctx.path(f"{name}.zarr"))
        v = ctx.videos[name]
        ctx.report.append(f"recording {name}.zarr: {dict(v.sizes)} {v.dtype}, {v.nbytes / 1e6:.0f} MB")
    ctx.report.append(f"generated {total / 1e6:.0f} MB in {ctx.runner.throughput('writing synthetic recordings to zarr')}")


def _demo_overview(ctx: DemoContext) -> None:
    """Mean image of every recording, one pass each, as a figure."""
    from .plot import show_images

    means = {name: v.isel(channel=0) if "channel" in v.dims else v for name, v in ctx.videos.items()}
    means = {name: v.mean("time") for name, v in means.items()}
    nbytes = sum(v.nbytes for v in ctx.videos.values())
    computed = ctx.runner.compute(list(means.values()), label="mean images", nbytes=nbytes)
    fig = show_images(computed, titles=[f"{k}: mean" for k in means])
    _save_figure(fig, ctx.path("recordings.png"))
    ctx.report.append(f"figure recordings.png: mean image of each recording ({ctx.runner.throughput('mean images')})")


# -- SOFI ---------------------------------------------------------------------------------------


def _sofi_png_path(out: str) -> str:
    base = out.rstrip("/\\")
    return (base[: -len(".zarr")] if base.endswith(".zarr") else base) + ".png"


def _cmd_sofi(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from .io import open_result, open_video, save
    from .plot import show_orders
    from .sofi import fourier_interpolate, sofi_images

    out = args.output
    png = args.png or _sofi_png_path(out)
    _check_output(out, args, "-o")
    _check_output(png, args, "--png", replace=True)  # a figure is simply redrawn
    video = open_video(args.input if len(args.input) > 1 else args.input[0], fps=args.fps)
    nbytes = video.nbytes
    if args.finterp > 1:
        video = fourier_interpolate(video, args.finterp)
    ds = sofi_images(video, args.order, bleach_correction=args.bleach_correction, fbc=args.fbc,
                     smooth_kernel=args.smooth_kernel)
    if not args.cumulants:
        ds = ds.drop_vars("cumulants")
    what = "moments" + (" and cumulants" if args.cumulants else "")
    label = f"SOFI {what} to order {args.order}" + (" (bleach-corrected)" if args.bleach_correction else "")
    with scheduler(args.scheduler, workers=args.workers) as client:
        runner = Runner(client=client, progress=not args.no_progress)
        runner.compute(save(ds, out, overwrite=args.overwrite, resume=args.resume, compute=False), label=label,
                       nbytes=nbytes)
    result = open_result(out).compute()
    fig = show_orders(result["cumulants" if args.cumulants else "moments"], mean_image=result["mean_image"])
    _save_figure(fig, png)
    print(f"fluoxr sofi: {label} of {dict(video.sizes)} in {runner.throughput(label)}")
    print(f"  results: {out}  (open with fluoxr.open_result)")
    print(f"  figure:  {png}")
    return 0


def _add_sofi_parser(sub: Any) -> None:
    p = sub.add_parser("sofi", help="SOFI moment and cumulant images of every order, from one pass over a recording")
    p.add_argument("input", nargs="+", help="recording: TIFF(s), zarr, .bin, .npy or file.h5::/dataset")
    p.add_argument("-o", "--output", required=True, help="output zarr store (mean image, moments, cumulants)")
    p.add_argument("--order", type=_COUNT, default=6, help="highest order (default 6)")
    p.add_argument("--cumulants", action="store_true", help="also write cumulants (and plot them)")
    p.add_argument("--bleach-correction", action="store_true",
                   help="average the moments of blocks of equal bleaching (reads the data twice)")
    p.add_argument("--fbc", type=_number(float, gt=0, lt=1), default=0.04, help="bleaching fraction per block (default 0.04)")
    p.add_argument("--smooth-kernel", type=_COUNT, default=251, help="median window of the total signal (default 251)")
    p.add_argument("--finterp", type=_COUNT, default=1, help="Fourier interpolation factor (default 1: none)")
    p.add_argument("--fps", type=_POSITIVE, default=None, help="frame rate, if the file does not say")
    p.add_argument("--png", default=None, help="figure of the orders side by side (default: OUTPUT with .png)")
    _add_output_args(p, "output")
    _add_scheduler_args(p)
    p.set_defaults(func=_cmd_sofi)


def _demo_sofi(ctx: DemoContext) -> None:
    """SOFI cumulants of the blinking recording, plain and bleach-corrected, one pass each; PSF widths vs truth."""
    import numpy as np

    from .io import save
    from .plot import show_orders
    from .sofi import psf_width, sofi_images, xc_image

    video, truth = ctx.videos["blinking"], ctx.truths["blinking"]
    order = 6
    plain = sofi_images(video, order)
    corrected = sofi_images(video, order, bleach_correction=True, fbc=0.1,
                            smooth_kernel=min(251, 2 * (video.sizes["time"] // 4) + 1))
    xc = xc_image(video, sigma_px=truth.sigma_px)
    label = f"SOFI: cumulants to order {order}, bleach-corrected cumulants, XC2 image"
    plain, corrected, xc = ctx.runner.compute([plain, corrected, xc], label=label, nbytes=video.nbytes)
    save(plain, ctx.path("sofi.zarr"), overwrite=True)
    fig = show_orders(plain.cumulants, mean_image=plain.mean_image, ncols=order)
    _save_figure(fig, ctx.path("sofi.png"))
    import warnings

    ratios = []
    with warnings.catch_warnings():  # a very short recording can leave every fit undefined (NaN)
        warnings.simplefilter("ignore", RuntimeWarning)
        for n in range(2, order + 1):
            w = psf_width(plain.cumulants.sel(order=n), truth.positions)
            ratios.append(float(np.nanmedian(w)) / (truth.sigma_px / np.sqrt(n)))
        xw = float(np.nanmedian(psf_width(xc, truth.positions, radius_px=8))) / (truth.sigma_px / np.sqrt(2))
    ctx.report.append(
        f"sofi.zarr, sofi.png: mean, moments and cumulants to order {order} (one read), bleach-corrected "
        f"cumulants (two reads) and the XC2 image (one read) in {ctx.runner.throughput(label)}; PSF width / "
        f"(sigma/sqrt n) for n=2..{order}: " + " ".join(f"{r:.2f}" for r in ratios) + f", XC2: {xw:.2f} (truth: 1)"
    )


def _demo_features(ctx: DemoContext) -> None:
    """cellector's ROI features of the synthetic neurons against the anatomical channel, and how well each
    separates the cells that are bright in it (ROC AUC)."""
    from .features import FEATURES, reference_image, roc_auc, roi_features
    from .rois import ROISet

    video, truth = ctx.videos["calcium"], ctx.truths["calcium"]
    rois = ROISet.from_suite2p(truth.stat, (video.sizes["y"], video.sizes["x"]))
    label = "anatomical reference (mean of channel 1)"
    reference = ctx.runner.compute(reference_image(video, channel=1), label=label,
                                   nbytes=video.nbytes / video.sizes["channel"])
    t0 = time.perf_counter()
    table = roi_features(rois, reference).compute()
    secs = time.perf_counter() - t0
    _write_table(table.assign(red=truth.red), ctx.path("roi_features.csv"))
    aucs = ", ".join(f"{k} {roc_auc(table[k], truth.red):.2f}" for k in FEATURES)
    ctx.report.append(
        f"ROI features of {len(rois)} cells against the red channel ({int(truth.red.sum())} bright; reference "
        f"{ctx.runner.throughput(label)}, features {secs:.2f} s): ROC AUC {aucs}; table roi_features.csv"
    )


def _cmd_demo(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from ._outputs import check_output_path

    out = check_output_path(args.out, name="--out")
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"--out {out!r} exists and is not a folder")
    # the demo replaces its own results on every run; it never writes into a folder it did not make
    marker = os.path.join(out, DEMO_MARKER)
    if os.path.isdir(out) and os.listdir(out) and not os.path.exists(marker):
        raise ValueError(f"--out {out!r} is a folder with other files in it; the demo writes only into a new "
                         f"folder or one of its own earlier runs (give another --out)")
    os.makedirs(out, exist_ok=True)
    with open(marker, "w") as fh:
        fh.write("written by `fluoxr demo`; its results here are replaced by the next run\n")
    t0 = time.perf_counter()
    with scheduler(args.scheduler, workers=args.workers) as client:
        where = "in-process threads" if client is None else (
            f"local cluster ({len(client.scheduler_info()['workers'])} worker processes)"
            if args.scheduler in (None, "local") else f"cluster at {args.scheduler}")
        print(f"fluoxr demo: synthetic recordings -> every analysis -> {out}  [{where}]", flush=True)
        ctx = DemoContext(out=out, frames=args.frames, runner=Runner(client=client, progress=not args.no_progress))
        for step in DEMO_STEPS:
            step(ctx)
    print()
    print("fluoxr demo: done in %.1f s. What it did:" % (time.perf_counter() - t0))
    for line in ctx.report:
        print(f"  - {line}")
    print(f"Results (zarr) and figures (PNG) are in {out}")
    return 0


# --------------------------------------------------------------------------------------------
# fluoxr extract (traces) and the calcium demo step


def _cmd_extract(args: argparse.Namespace) -> int:
    import xarray as xr

    from . import io
    from .extraction import extract, traces
    from .rois import ROISet
    from .spikes import oasis
    from .temporal import baseline, subtract_neuropil

    sources = [a for a in (args.stat, args.labels, args.positions) if a is not None]
    if len(sources) != 1:
        raise ValueError("give exactly one of --stat stat.npy, --labels LABELS.tif or --positions P.csv")
    if args.positions is not None and args.neuropil:
        raise ValueError("--neuropil needs cell ROIs (--stat or --labels), not --positions")
    if args.tau is not None and not args.spikes:
        raise ValueError("--tau is used with --spikes")
    _check_output(args.output, args, "-o")
    kwargs: dict[str, Any] = {}
    if args.fps is not None:
        kwargs["fps"] = args.fps
    if args.shape is not None:
        kwargs["shape"] = tuple(args.shape)
    video = io.open_video(args.input if len(args.input) > 1 else args.input[0], **kwargs)
    frame = (video.sizes["y"], video.sizes["x"])
    out = xr.Dataset()
    if args.positions is not None:
        pos = io.read_positions(args.positions)
        out["F"] = traces(video, pos, size=args.size, window=args.window)
        what = f"{len(pos)} positions ({args.window or 'rect'} windows of {args.size} px)"
    else:
        if args.stat is not None:
            rois = ROISet.from_suite2p(io.read_suite2p_stat(args.stat), frame)
            what = f"{len(rois)} suite2p ROIs"
        else:
            rois = ROISet.from_labels(io.read_image(args.labels))
            what = f"{len(rois)} labelled ROIs"
        out = extract(video, rois, neuropil="auto" if args.neuropil else None)
    F = out["F"]
    if args.spikes:
        if args.tau is None:
            raise ValueError(f"--tau must be a positive decay time in seconds, got {args.tau}")
        f = F.isel(channel=args.channel) if "channel" in F.dims else F
        if "Fneu" in out:
            fneu = out["Fneu"].isel(channel=args.channel) if "channel" in F.dims else out["Fneu"]
            f = subtract_neuropil(f, fneu, coeff=args.coeff)
            out["Fc"] = f
        fps = args.fps or video.attrs.get("fps")
        if not fps:
            raise ValueError("--spikes needs the frame rate: the recording has none; pass --fps")
        b = baseline(f, window_s=args.window_s, sigma_frames=args.sigma, fps=fps)
        out["spikes"] = oasis(f - b, tau_s=args.tau, fps=fps)
    out.attrs.update({k: v for k, v in video.attrs.items() if k in ("fps", "source")})
    if not args.no_progress:
        print(f"fluoxr extract: {what} from {dict(video.sizes)} -> {args.output}", flush=True)
    with scheduler(args.scheduler, workers=args.workers) as client:
        runner = Runner(client=client, progress=not args.no_progress)
        write = io.save(out, args.output, overwrite=args.overwrite, resume=args.resume, compute=False)
        runner.compute(write, label="extracting traces", nbytes=video.nbytes)
    print(f"wrote {', '.join(map(str, out.data_vars))} to {args.output} ({runner.throughput('extracting traces')})")
    return 0


def _add_extract_parser(sub: Any) -> None:
    p = sub.add_parser("extract", help="cell/neuropil traces (suite2p) or position traces (optimap), optional spikes",
                       description="Extract traces in one read of the recording and write them to zarr "
                                   "(variables F, Fneu, Fc, spikes; dims roi, time).")
    p.add_argument("input", nargs="+", help="recording: TIFF(s), zarr, .bin, .npy or file.h5::/dataset")
    src = p.add_argument_group("ROIs (exactly one)")
    src.add_argument("--stat", default=None, help="suite2p stat.npy (ypix, xpix, lam per ROI)")
    src.add_argument("--labels", default=None, help="label image (TIFF/.npy/zarr; 0 = background)")
    src.add_argument("--positions", default=None,
                     help="CSV of positions with columns y,x (row, column; header optional, order y then x)")
    p.add_argument("-o", "--output", required=True, help="output zarr store")
    p.add_argument("--neuropil", action="store_true", help="also extract suite2p neuropil traces (Fneu)")
    p.add_argument("--coeff", type=_number(float, ge=0), default=0.7, help="neuropil coefficient for Fc = F - coeff*Fneu (0.7)")
    p.add_argument("--spikes", action="store_true", help="deconvolve spikes (maximin baseline, then OASIS)")
    p.add_argument("--tau", type=_POSITIVE, default=None, help="indicator decay time in seconds (with --spikes)")
    p.add_argument("--window-s", type=_POSITIVE, default=60.0, help="maximin baseline window in seconds (60)")
    p.add_argument("--sigma", type=_number(float, ge=0), default=10.0, help="maximin Gaussian width in frames (10)")
    p.add_argument("--channel", type=_INDEX, default=0, help="functional channel for spikes in multi-channel input")
    p.add_argument("--size", type=_COUNT, default=5, help="window size for --positions (5)")
    p.add_argument("--window", choices=("rect", "disc", "pixel"), default=None, help="window for --positions")
    p.add_argument("--fps", type=_POSITIVE, default=None, help="frame rate, if the file does not say")
    p.add_argument("--shape", type=_COUNT, nargs=2, default=None, metavar=("LY", "LX"), help="frame shape of a raw .bin")
    _add_output_args(p, "output store")
    _add_scheduler_args(p)
    p.set_defaults(func=_cmd_extract)


def _row_corr(a: Any, b: Any) -> Any:
    """Pearson correlation of matching rows, skipping rows that are constant in either."""
    import numpy as np

    a = np.asarray(a, np.float64) - np.mean(a, axis=-1, keepdims=True)
    b = np.asarray(b, np.float64) - np.mean(b, axis=-1, keepdims=True)
    den = np.sqrt((a * a).sum(-1) * (b * b).sum(-1))
    ok = den > 0
    return (a * b).sum(-1)[ok] / den[ok]


def _spike_scores(spikes: Any, truth: Any, *, sigma: float = 2.0, tolerance: int = 2) -> tuple[float, float]:
    """(median correlation of Gaussian-smoothed spikes with the true spikes, detection F1).

    Detections: frames whose deconvolved jump exceeds half the cell's typical
    spike jump (median of its top 1 % of jumps); a detection is right when a
    true spike lies within ``tolerance`` frames, a true spike is found when a
    detection does.
    """
    import numpy as np
    from scipy.ndimage import gaussian_filter1d, maximum_filter1d

    s = np.asarray(spikes, np.float64)
    t = np.asarray(truth, np.float64)
    corr = _row_corr(gaussian_filter1d(np.maximum(s, 0), sigma, axis=-1), gaussian_filter1d(t, sigma, axis=-1))
    hits = n_det = found = n_true = 0
    width = 2 * tolerance + 1
    for a, b in zip(s, t):
        jump = np.median(a[a >= np.percentile(a, 99)])
        det = a > 0.5 * jump if jump > 0 else np.zeros(a.shape, bool)
        hits += int((det & (maximum_filter1d((b > 0).astype(np.uint8), width) > 0)).sum())
        found += int(((b > 0) & (maximum_filter1d(det.astype(np.uint8), width) > 0)).sum())
        n_det += int(det.sum())
        n_true += int((b > 0).sum())
    precision, recall = hits / max(n_det, 1), found / max(n_true, 1)
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return (float(np.median(corr)) if corr.size else float("nan")), f1


def _demo_calcium(ctx: DemoContext) -> None:
    """Calcium pipeline on the synthetic neurons: masks, one-pass extraction, neuropil, baseline, OASIS."""
    import numpy as np
    import xarray as xr

    from .extraction import extract, neuropil_masks
    from .io import save
    from .plot import show_rois, show_traces
    from .rois import ROISet
    from .spikes import oasis
    from .temporal import baseline, subtract_neuropil

    video, truth = ctx.videos["calcium"], ctx.truths["calcium"]
    frame = (video.sizes["y"], video.sizes["x"])
    rois = ROISet.from_suite2p(truth.stat, frame)
    ds = extract(video, rois, neuropil="auto")
    F, Fneu = ds.F.sel(channel=0), ds.Fneu.sel(channel=0)
    Fc = subtract_neuropil(F, Fneu)
    window_s = min(60.0, max(2.0, video.sizes["time"] / truth.fps / 5))
    spikes = oasis(Fc - baseline(Fc, window_s=window_s, sigma_frames=3), tau_s=truth.tau_s)
    mean = video.sel(channel=0).mean("time")
    out = xr.Dataset({"F": ds.F, "Fneu": ds.Fneu, "Fc": Fc, "spikes": spikes}, attrs={"fps": truth.fps})
    write = save(out, ctx.path("calcium_traces.zarr"), overwrite=True, compute=False)
    _, mean_img = ctx.runner.compute([write, mean], label="calcium traces", nbytes=video.nbytes)
    from .io import open_result

    res = open_result(ctx.path("calcium_traces.zarr")).compute()
    fc, tf = res.Fc.values, truth.fluorescence.values
    r = _row_corr(fc, tf)
    corr, f1 = _spike_scores(res.spikes.values, truth.spikes.values)
    red = res.F.sel(channel=1).mean("time").values
    fig = show_rois(rois, mean_img, neuropil=neuropil_masks(rois[[0]]), annotate=True)
    _save_figure(fig, ctx.path("calcium_rois.png"))
    import matplotlib.pyplot as plt

    best = np.argsort(-np.nanstd(fc, axis=1))[:4]
    fig, axes = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    show_traces(res.Fc.isel(roi=best), offset=float(np.ptp(fc[best])) * 0.6, labels=[f"ROI {i}" for i in best],
                ax=axes[0])
    one = res.spikes.isel(roi=int(best[0]))
    show_traces(one, ax=axes[1], label=f"OASIS, ROI {best[0]}")
    true = truth.spikes.isel(roi=int(best[0])).values
    times = res.time.values[true > 0]
    axes[1].plot(times, np.full(times.size, -0.1 * float(one.max())), "r|", ms=8, label="true spikes")
    axes[1].legend(fontsize=8)
    fig.tight_layout()
    _save_figure(fig, ctx.path("calcium_traces.png"))
    plt.close("all")
    ctx.report.append(
        f"calcium: {len(rois)} ROIs, F/Fneu/Fc/spikes in one read ({ctx.runner.throughput('calcium traces')}) "
        f"-> calcium_traces.zarr; F - 0.7 Fneu vs true fluorescence r = {np.median(r):.3f} median, "
        f"{r.min():.3f} min" if r.size else f"calcium: {len(rois)} ROIs extracted (no activity to compare)")
    ctx.report.append(f"calcium: OASIS spikes vs true spikes: r = {corr:.2f} (median over cells, 2-frame Gaussian), "
                      f"detection F1 = {f1:.2f} (+-2 frames); red channel mean F: "
                      f"{red[truth.red].mean():.0f} (red cells) vs {red[~truth.red].mean():.0f} (others)"
                      if truth.red is not None else
                      f"calcium: OASIS spikes vs true spikes: r = {corr:.2f}, detection F1 = {f1:.2f}")
    ctx.report.append("figures calcium_rois.png (ROIs and one neuropil region), calcium_traces.png")


# --------------------------------------------------------------------------------------------
# fluoxr oscillations


def _demo_oscillations(ctx: DemoContext) -> None:
    """Cellects' influx/efflux detection on the oscillating sheet, scored against the known wave phase."""
    import dask

    from .io import open_result, save
    from .oscillations import detect, track_clusters
    from .plot import oscillation_overlay

    video, truth = ctx.videos["sheet"], ctx.truths["sheet"]
    params = dict(period_s=truth.period_s, interval_s=truth.interval_s, min_cluster_size=20, mask=truth.mask)
    labels = detect(video, **params)
    write = save(labels, ctx.path("oscillations.zarr"), overwrite=True, compute=False)
    label = "oscillations: detect influx/efflux (Cellects) -> zarr"
    ctx.runner.compute(write, label=label, nbytes=video.nbytes)
    saved = open_result(ctx.path("oscillations.zarr"))
    # agreement with the known phase (rising: influx, falling: efflux) on every sheet pixel and frame
    on_sheet = float(truth.mask.sum()) * saved.sizes["time"]
    expected = truth.expected.data
    agree = ((saved.data == expected) & (expected > 0)).sum() / on_sheet
    agree_lag = ((detect(video, lag="period", **params).data == expected) & (expected > 0)).sum() / on_sheet
    tracks = track_clusters(saved)
    agree, agree_lag, table = ctx.runner.compute(dask.delayed(tuple)([agree, agree_lag, tracks]),
                                                 label="oscillations: score against the truth, track clusters",
                                                 nbytes=video.nbytes)
    _write_table(table, ctx.path("oscillation_tracks.csv"), index=False)
    n = saved.sizes["time"]
    frames = [n // 4, n // 2, (3 * n) // 4]
    fig = oscillation_overlay(video.isel(time=frames).values, saved.isel(time=frames).values,
                              titles=[f"sheet, frame {t}" for t in frames])
    _save_figure(fig, ctx.path("oscillations.png"))
    periods = table["period_s"].dropna()
    ctx.report.append(
        f"oscillations.zarr: influx/efflux agree with the true wave phase on {float(agree):.1%} of sheet "
        f"pixel-frames ({float(agree_lag):.1%} with lag='period') ({ctx.runner.throughput(label)})"
    )
    ctx.report.append(
        f"oscillation_tracks.csv: {len(table)} oscillating clusters, median local period "
        f"{periods.median():.0f} s (true {truth.period_s:.0f} s); figure oscillations.png"
        if len(periods) else f"oscillation_tracks.csv: {len(table)} oscillating clusters; figure oscillations.png"
    )


def _read_mask(path: str) -> Any:
    """A mask video (read lazily) or a frame mask image."""
    from .io import open_video, read_image

    try:
        return open_video(path)
    except (ValueError, TypeError):
        return read_image(path)


def _cmd_oscillations(args: argparse.Namespace) -> int:
    import dask

    from .io import open_result, open_video, save
    from .oscillations import detect, oscillation_coordinates, track_clusters

    for flag, target in (("-o", args.out), ("--tracks", args.tracks), ("--coordinates", args.coordinates)):
        _check_output(target, args, flag)
    fps = None if args.interval is None else 1.0 / args.interval
    video = open_video(args.input if len(args.input) > 1 else args.input[0], fps=fps)
    if args.interval is None and not video.attrs.get("fps"):
        raise ValueError("--interval is required: the recording does not say its frame rate "
                         "(give the seconds between frames, e.g. --interval 2)")
    mask = _read_mask(args.mask) if args.mask else None
    labels = detect(video, period_s=args.period, interval_s=args.interval, min_cluster_size=args.min_cluster_size,
                    mask=mask, start=args.start, lag=None if args.lag == "gradient" else args.lag,
                    compat=None if args.compat == "none" else args.compat)
    with scheduler(args.scheduler, workers=args.workers) as client:
        runner = Runner(client=client, progress=not args.no_progress)
        label = f"detecting influx/efflux -> {args.out}"
        write = save(labels, args.out, overwrite=args.overwrite, resume=args.resume, compute=False)
        runner.compute(write, label=label, nbytes=video.nbytes)
        saved = open_result(args.out)
        influx, efflux = runner.compute(dask.delayed(tuple)([(saved == 1).mean().data, (saved == 2).mean().data]),
                                        label="counting", nbytes=saved.nbytes)
        print(f"{args.out}: {dict(saved.sizes)} int8 (0 none, 1 influx, 2 efflux); "
              f"influx {float(influx):.1%}, efflux {float(efflux):.1%} of pixel-frames ({runner.throughput(label)})")
        if args.coordinates:
            write = save(oscillation_coordinates(saved), args.coordinates, overwrite=args.overwrite,
                         resume=args.resume, compute=False)
            runner.compute(write, label=f"coordinates -> {args.coordinates}", nbytes=saved.nbytes)
            print(f"{args.coordinates}: table of influx/efflux pixels (t, y, x, kind)")
        if args.tracks:
            table = runner.compute(track_clusters(saved, min_overlap=args.min_overlap),
                                   label="tracking oscillating clusters", nbytes=saved.nbytes)
            _write_table(table, args.tracks, index=False)
            periods = table["period_s"].dropna()
            print(f"{args.tracks}: {len(table)} clusters"
                  + (f", median local period {periods.median():.1f} s" if len(periods) else ""))
    return 0


def _add_oscillations_parser(sub: Any) -> None:
    p = sub.add_parser("oscillations", help="influx/efflux detection (Cellects) to zarr, with cluster tracks")
    p.add_argument("input", nargs="+", help="recording: TIFF(s), zarr, .bin, .npy or file.h5::/dataset")
    p.add_argument("-o", "--out", required=True, help="output zarr of int8 labels (0 none, 1 influx, 2 efflux)")
    p.add_argument("--period", type=_POSITIVE, required=True, metavar="SECONDS", help="expected oscillation period")
    p.add_argument("--interval", type=_POSITIVE, default=None, metavar="SECONDS",
                   help="seconds between frames (default: from the file's frame rate)")
    p.add_argument("--min-cluster-size", type=_COUNT, required=True, metavar="PIXELS", help="smallest cluster kept")
    p.add_argument("--mask", default=None, help="frame mask image or mask video (nonzero = specimen)")
    p.add_argument("--start", type=_INDEX, default=0, help="first analysed frame (earlier frames are 0)")
    p.add_argument("--lag", choices=("gradient", "period"), default="gradient",
                   help="np.gradient over adjacent frames (Cellects, default) or a difference over P/4 frames")
    p.add_argument("--compat", choices=("none", "cellects", "cellects-lowmem"), default="none",
                   help="plain 8-connected clusters (default), or Cellects' cc() rule (and its float16 path)")
    p.add_argument("--tracks", default=None, metavar="CSV", help="write the oscillating-cluster table here")
    p.add_argument("--min-overlap", type=_COUNT, default=1, help="pixels that link clusters of consecutive frames")
    p.add_argument("--coordinates", default=None, metavar="ZARR", help="write the table of influx/efflux pixels here")
    _add_output_args(p, "outputs")
    _add_scheduler_args(p)
    p.set_defaults(func=_cmd_oscillations)


# --------------------------------------------------------------------------------------------
# entry point

# `fluoxr demo` runs these in order; each analysis contributes one step.
DEMO_STEPS: list[Callable[[DemoContext], None]] = [
    _demo_recordings, _demo_overview, _demo_sofi, _demo_calcium, _demo_features, _demo_oscillations,
]


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="fluoxr", description="Out-of-core fluorescence microscopy analysis.")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log messages (-vv for debug)")
    parser.add_argument("--chunk-mb", type=_POSITIVE, default=None, metavar="MB",
                        help="target size of one time chunk when opening recordings (default 96 MB)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    p = sub.add_parser("info", help="shape, dtype, chunks, fps and size of a recording (reads metadata only)")
    p.add_argument("path", nargs="+", help="recording: TIFF(s), zarr, .bin, .npy or file.h5::/dataset")
    p.add_argument("--fps", type=_POSITIVE, default=None, help="frame rate, if the file does not say")
    p.add_argument("--shape", type=_COUNT, nargs=2, default=None, metavar=("LY", "LX"), help="frame shape of a raw .bin")
    p.set_defaults(func=_cmd_info)

    p = sub.add_parser("demo", help="run every analysis on synthetic recordings and write results and figures")
    p.add_argument("--out", default="fluoxr-demo", help="output folder (default ./fluoxr-demo)")
    p.add_argument("--frames", type=_number(int, ge=10), default=None, help="frames per synthetic recording (default: per recording)")
    _add_scheduler_args(p)
    p.set_defaults(func=_cmd_demo)
    _add_extract_parser(sub)
    _add_sofi_parser(sub)
    _add_oscillations_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fluoxr`` command; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or an argument error already printed as one line
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_BAD_INPUT
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    try:
        from ._options import set_options

        with set_options(**({} if args.chunk_mb is None else {"chunk_mb": args.chunk_mb})):
            return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, ImportError, OSError) as exc:
        print(f"fluoxr {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # pragma: no cover - interactive
        print(f"fluoxr {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        # never a traceback on the terminal: one line, and the traceback in the log with -vv
        logger.debug("fluoxr %s failed", args.command, exc_info=True)
        print(f"fluoxr {args.command}: error: {type(exc).__name__}: {_one_line(exc)} (run with -vv for details)",
              file=sys.stderr)
        return EXIT_BAD_INPUT


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
