"""``fluoxr demo``: every analysis on synthetic recordings, scored against their ground truth.

Each analysis contributes one step (:data:`DEMO_STEPS`) that computes its
results on the recordings, writes them and a figure, and reports how close
they are to the truth with the metrics defined here.
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .args import _add_hidden_alias, _add_scheduler_args, _number
from .run import Runner, _save_figure, _write_table, scheduler

DEMO_MARKER = ".fluoxr-demo"


@dataclass
class DemoContext:
    """What every demo step sees: where to write, the recordings, and how to compute.

    A step records every file it writes with :meth:`wrote`; the summary lists
    exactly those, so it says only what the demo wrote.
    """

    out: str
    frames: int | None
    runner: Runner
    videos: dict[str, Any] = field(default_factory=dict)
    truths: dict[str, Any] = field(default_factory=dict)
    report: list[str] = field(default_factory=list)
    written: dict[str, str] = field(default_factory=dict)

    def path(self, name: str) -> str:
        return os.path.join(self.out, name)

    def wrote(self, name: str, what: str) -> None:
        """Record that the step wrote ``name`` (one of :data:`DEMO_FILES`), holding ``what``."""
        if name not in DEMO_FILES:
            # DEMO_FILES is how a later run recognises this folder as the demo's own: keep the two in step
            raise ValueError(f"demo output {name!r} is not in DEMO_FILES; add it there")
        if not os.path.lexists(self.path(name)):
            raise FileNotFoundError(f"demo output {name!r} was recorded but not written")
        self.written[name] = what


def _demo_recordings(ctx: DemoContext) -> None:
    """Generate the synthetic recordings to zarr, then reopen them from disk like a user would."""
    from .. import datasets
    from ..io import open_video, save

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
    what = {"blinking": "blinking emitters (SOFI)", "calcium": "calcium imaging, 2 channels (traces, ROI features)",
            "sheet": "oscillating sheet (Cellects' influx/efflux)"}
    for name in recordings:
        ctx.videos[name] = open_video(ctx.path(f"{name}.zarr"))
        v = ctx.videos[name]
        ctx.wrote(f"{name}.zarr", f"synthetic recording: {what[name]}, {dict(v.sizes)} {v.dtype}, "
                                  f"{v.nbytes / 1e6:.0f} MB")
    ctx.report.append(f"generated {total / 1e6:.0f} MB in {ctx.runner.throughput('writing synthetic recordings to zarr')}")


def _demo_overview(ctx: DemoContext) -> None:
    """Mean image of every recording, one pass each, as a figure (the sheet's first frame: its mean is flat)."""
    from ..plot import show_images

    first = {name: v.isel(channel=0) if "channel" in v.dims else v for name, v in ctx.videos.items()}
    # the sheet is uniform but for its travelling wave, which a mean over whole periods averages away
    images = {name: v.isel(time=0) if name == "sheet" else v.mean("time") for name, v in first.items()}
    nbytes = sum(v.nbytes for v in ctx.videos.values())
    computed = ctx.runner.compute(list(images.values()), label="mean images", nbytes=nbytes)
    titles = [f"{k}: first frame" if k == "sheet" else f"{k}: mean" for k in images]
    fig = show_images(computed, titles=titles)
    _save_figure(fig, ctx.path("recordings.png"))
    ctx.wrote("recordings.png", "figure: mean image of the blinking and calcium recordings, first frame of the sheet")
    ctx.report.append(f"overview images in {ctx.runner.throughput('mean images')}")


# -- SOFI ---------------------------------------------------------------------------------------


def _demo_sofi(ctx: DemoContext) -> None:
    """SOFI cumulants of the blinking recording, plain and bleach-corrected, one pass each; PSF widths vs truth."""
    import numpy as np

    from ..io import save
    from ..plot import show_orders
    from ..sofi import psf_width, sofi_images, xc_image

    video, truth = ctx.videos["blinking"], ctx.truths["blinking"]
    order = 6
    plain = sofi_images(video, order)
    corrected = sofi_images(video, order, bleach_correction=True, fbc=0.1,
                            smooth_kernel=min(251, 2 * (video.sizes["time"] // 4) + 1))
    xc = xc_image(video, sigma_px=truth.sigma_px)
    label = f"SOFI: cumulants to order {order}, bleach-corrected cumulants, XC2 image"
    plain, corrected, xc = ctx.runner.compute([plain, corrected, xc], label=label, nbytes=video.nbytes)
    save(plain, ctx.path("sofi.zarr"), overwrite=True)
    ctx.wrote("sofi.zarr", f"SOFI: mean image, moments and cumulants of orders 1-{order}")
    save(plain, ctx.path("sofi.ome.zarr"), overwrite=True)
    ctx.wrote("sofi.ome.zarr", "the same SOFI images as OME-Zarr (napari, Fiji): one image group per variable")
    save(corrected, ctx.path("sofi_bleach_corrected.zarr"), overwrite=True)
    ctx.wrote("sofi_bleach_corrected.zarr", "SOFI images averaged over bleaching blocks (fbc=0.1)")
    save(xc.to_dataset(name="xc2"), ctx.path("sofi_xc2.zarr"), overwrite=True)
    ctx.wrote("sofi_xc2.zarr", "XC2 image (second-order cross-cumulants) on the 2x finer grid")
    fig = show_orders(plain.cumulants, mean_image=plain.mean_image, ncols=order)
    _save_figure(fig, ctx.path("sofi.png"))
    ctx.wrote("sofi.png", f"figure: mean image and cumulants of orders 2-{order}")
    import warnings

    ratios = []
    with warnings.catch_warnings():  # a very short recording can leave every fit undefined (NaN)
        warnings.simplefilter("ignore", RuntimeWarning)
        for n in range(2, order + 1):
            w = psf_width(plain.cumulants.sel(order=n), truth.positions)
            ratios.append(float(np.nanmedian(w)) / (truth.sigma_px / np.sqrt(n)))
        xw = float(np.nanmedian(psf_width(xc, truth.positions, radius_px=8))) / (truth.sigma_px / np.sqrt(2))
    ctx.report.append(
        f"SOFI: mean, moments and cumulants to order {order} (one read), bleach-corrected "
        f"cumulants (two reads) and the XC2 image (one read) in {ctx.runner.throughput(label)}; PSF width / "
        f"(sigma/sqrt n) for n=2..{order}: " + " ".join(f"{r:.2f}" for r in ratios) + f", XC2: {xw:.2f} (truth: 1)"
    )


# -- traces -------------------------------------------------------------------------------------


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

    from ..extraction import extract, neuropil_masks
    from ..io import save
    from ..plot import show_rois, show_traces
    from ..rois import ROISet
    from ..spikes import oasis
    from ..temporal import baseline, subtract_neuropil

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
    ctx.wrote("calcium_traces.zarr", f"traces of {len(rois)} ROIs: F, Fneu (2 channels), Fc = F - 0.7 Fneu and "
                                     "OASIS spikes (channel 0)")
    from ..io import open_result

    res = open_result(ctx.path("calcium_traces.zarr")).compute()
    fc, tf = res.Fc.values, truth.fluorescence.values
    r = _row_corr(fc, tf)
    corr, f1 = _spike_scores(res.spikes.values, truth.spikes.values)
    red = res.F.sel(channel=1).mean("time").values
    fig = show_rois(rois, mean_img, neuropil=neuropil_masks(rois[[0]]), annotate=True)
    _save_figure(fig, ctx.path("calcium_rois.png"))
    ctx.wrote("calcium_rois.png", "figure: the ROIs and the neuropil region of ROI 0 over the mean image (channel 0)")
    import matplotlib.pyplot as plt

    best = np.argsort(-np.nanstd(fc, axis=1))[:4]
    fig, axes = plt.subplots(2, 1, figsize=(9, 5), sharex=True)
    show_traces(res.Fc.isel(roi=best), offset=float(np.ptp(fc[best])) * 0.6, labels=[f"ROI {i}" for i in best],
                ax=axes[0], ylabel="Fc, channel 0 (offset per trace)")
    axes[0].set_xlabel("")  # shared with the panel below
    one = res.spikes.isel(roi=int(best[0]))
    show_traces(one, ax=axes[1], label=f"OASIS, ROI {best[0]}")
    true = truth.spikes.isel(roi=int(best[0])).values
    times = res.time.values[true > 0]
    axes[1].plot(times, np.full(times.size, -0.1 * float(one.max())), "r|", ms=8, label="true spikes")
    axes[1].legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))  # outside: spikes fill the axes
    fig.tight_layout()
    _save_figure(fig, ctx.path("calcium_traces.png"))
    ctx.wrote("calcium_traces.png", "figure: Fc of the 4 most active ROIs, OASIS spikes of one against the true spikes")
    plt.close("all")
    ctx.report.append(
        f"calcium: {len(rois)} ROIs, F/Fneu/Fc/spikes in one read ({ctx.runner.throughput('calcium traces')}); "
        f"F - 0.7 Fneu vs true fluorescence r = {np.median(r):.3f} median, "
        f"{r.min():.3f} min" if r.size else f"calcium: {len(rois)} ROIs extracted (no activity to compare)")
    ctx.report.append(f"calcium: OASIS spikes vs true spikes: r = {corr:.2f} (median over cells, 2-frame Gaussian), "
                      f"detection F1 = {f1:.2f} (+-2 frames); red channel mean F: "
                      f"{red[truth.red].mean():.0f} (red cells) vs {red[~truth.red].mean():.0f} (others)"
                      if truth.red is not None else
                      f"calcium: OASIS spikes vs true spikes: r = {corr:.2f}, detection F1 = {f1:.2f}")
    _demo_nwb(ctx, res, rois, video.isel(channel=0))


def _demo_nwb(ctx: DemoContext, traces: Any, rois: Any, video: Any) -> None:
    """The traces, ROIs and green channel as an NWB file (needs pynwb, the ``nwb`` extra; skipped without it)."""
    import datetime
    import logging

    from ..io import to_nwb

    metadata = {
        "session_description": "fluoxr demo: synthetic calcium imaging with known spikes",
        "session_start_time": datetime.datetime(2000, 1, 1, tzinfo=datetime.timezone.utc),
        "subject": {"subject_id": "synthetic", "species": "Mus musculus", "sex": "U", "age": "P90D",
                    "description": "no animal: synthetic neurons"},
        "imaging_plane": {"location": "VISp", "description": "synthetic frames, no microscope"},
    }
    one = traces.isel(channel=0) if "channel" in traces.dims else traces
    try:
        t0 = time.perf_counter()
        to_nwb(one, ctx.path("calcium_traces.nwb"), rois=rois, video=video, overwrite=True, metadata=metadata)
    except ImportError as exc:
        logging.getLogger(__name__).warning("calcium_traces.nwb not written: %s", exc)
        return
    ctx.wrote("calcium_traces.nwb", "NWB file: the channel-0 traces, ROIs and recording (pynwb)")
    ctx.report.append(f"NWB export of traces, ROIs and the channel-0 recording in {time.perf_counter() - t0:.1f} s")


# -- motion correction --------------------------------------------------------------------------


def _offset_removed(motion: Any, true_dy: Any, true_dx: Any) -> tuple[Any, float]:
    """``motion`` with the reference's constant offset from the motionless frame removed, and the RMS error
    (px, both axes) of its shifts against the truth: the estimate is relative to a reference built from
    the moving frames, the truth to the motionless recording."""
    import numpy as np

    ey, ex = np.asarray(motion.dy) - true_dy, np.asarray(motion.dx) - true_dx
    oy, ox = float(ey.mean()), float(ex.mean())
    rms = float(np.sqrt(np.mean((ey - oy) ** 2 + (ex - ox) ** 2)))
    return motion.assign(dy=motion.dy - oy, dx=motion.dx - ox), rms


def _active_corr(traces: Any, truth: Any) -> Any:
    """:func:`_row_corr` over the cells whose true trace varies (a cell without a spike in a short recording
    is constant up to float32 rounding, and its correlation is noise)."""
    import numpy as np

    truth = np.asarray(truth, np.float64)
    active = truth.std(-1) > 1e-3 * np.abs(truth).mean(-1)
    return _row_corr(np.asarray(traces)[active], truth[active])


def _demo_motion(ctx: DemoContext) -> None:
    """Registration of a calcium recording moving rigidly (jitter and jumps), scored against the true shifts,
    and the traces of the registered recording against those of the same recording without motion."""
    import numpy as np

    from .. import apply_motion, datasets, estimate_motion
    from ..extraction import extract
    from ..io import open_result, open_video, save
    from ..plot import show_motion
    from ..rois import ROISet

    # small: jumps need a few seconds of recording, registration a few hundred frames
    kw = dict(n_frames=max(min(ctx.frames or 600, 600), 60), shape=(96, 96), n_cells=16, seed=4)
    moving, truth = datasets.calcium_neurons(motion="rigid", **kw)
    still, _ = datasets.calcium_neurons(**kw)
    ctx.runner.compute(save(moving, ctx.path("calcium_moving.zarr"), overwrite=True, compute=False),
                       label="motion: writing a moving calcium recording", nbytes=moving.nbytes)
    ctx.wrote("calcium_moving.zarr", f"synthetic recording: calcium neurons moving rigidly (jitter and jumps), "
                                     f"{dict(moving.sizes)} {moving.dtype}")
    video = open_video(ctx.path("calcium_moving.zarr"))
    label = "motion: estimating the shifts (rigid, subpixel)"
    # reference from 100 frames: suite2p's 300 would be half of this short recording (0.8 s more, same result)
    ctx.runner.compute(save(estimate_motion(video, n_reference_frames=100), ctx.path("motion.zarr"), overwrite=True,
                            compute=False), label=label, nbytes=video.nbytes)
    motion = open_result(ctx.path("motion.zarr")).compute()
    ctx.wrote("motion.zarr", "rigid shifts (dy, dx, corr) of every frame of calcium_moving.zarr and its reference")
    true = truth.motion.shifts
    aligned, rms = _offset_removed(motion, true.dy.values, true.dx.values)
    rois = ROISet.from_suite2p(truth.stat, (video.sizes["y"], video.sizes["x"]))
    # traces of the lazily registered view: no registered copy is written
    lazy = [extract(v, rois).F for v in (apply_motion(video, aligned), video, still)]
    f_reg, f_raw, f_still = ctx.runner.compute(lazy, label="motion: traces registered, raw and motionless",
                                               nbytes=3 * video.nbytes)
    tf = truth.fluorescence.values
    r = [float(np.median(_active_corr(f.values, tf))) if (tf.std(-1) > 1e-3 * tf.mean(-1)).any() else float("nan")
         for f in (f_reg, f_raw, f_still)]
    _save_figure(show_motion(motion, video), ctx.path("motion.png"))
    ctx.wrote("motion.png", "figure: shifts over time, the reference, the mean image before and after")
    ctx.report.append(
        f"motion: rigid shifts of a moving calcium recording ({ctx.runner.throughput(label)}): "
        f"{rms:.3f} px RMS from the truth (true motion {np.ptp(true.dy.values):.1f} x {np.ptp(true.dx.values):.1f} "
        f"px); traces vs true fluorescence r = {r[0]:.3f} registered, {r[1]:.3f} raw, {r[2]:.3f} without motion "
        "(medians)"
    )


# -- ROI features -------------------------------------------------------------------------------


def _demo_features(ctx: DemoContext) -> None:
    """cellector's ROI features of the synthetic neurons against the anatomical channel, and how well each
    separates the cells that are bright in it (ROC AUC)."""
    from ..features import FEATURES, reference_image, roc_auc, roi_features
    from ..rois import ROISet

    video, truth = ctx.videos["calcium"], ctx.truths["calcium"]
    rois = ROISet.from_suite2p(truth.stat, (video.sizes["y"], video.sizes["x"]))
    label = "anatomical reference (mean of channel 1)"
    reference = ctx.runner.compute(reference_image(video, channel=1), label=label,
                                   nbytes=video.nbytes / video.sizes["channel"])
    t0 = time.perf_counter()
    table = roi_features(rois, reference).compute()
    secs = time.perf_counter() - t0
    _write_table(table.assign(red=truth.red), ctx.path("roi_features.csv"))
    ctx.wrote("roi_features.csv", "table: cellector's four features per ROI, and whether the ROI is truly red")
    aucs = ", ".join(f"{k} {roc_auc(table[k], truth.red):.2f}" for k in FEATURES)
    ctx.report.append(
        f"ROI features of {len(rois)} cells against the red channel ({int(truth.red.sum())} bright; reference "
        f"{ctx.runner.throughput(label)}, features {secs:.2f} s): ROC AUC {aucs}"
    )


# -- oscillations --------------------------------------------------------------------------------


def _demo_oscillations(ctx: DemoContext) -> None:
    """Cellects' influx/efflux detection on the oscillating sheet, scored against the known wave phase."""
    import dask

    from ..io import open_result, save
    from ..oscillations import detect, track_clusters
    from ..plot import oscillation_overlay

    video, truth = ctx.videos["sheet"], ctx.truths["sheet"]
    params = dict(period_s=truth.period_s, interval_s=truth.interval_s, min_cluster_size=20, mask=truth.mask)
    labels = detect(video, **params)
    write = save(labels, ctx.path("oscillations.zarr"), overwrite=True, compute=False)
    label = "oscillations: detect influx/efflux (Cellects) -> zarr"
    ctx.runner.compute(write, label=label, nbytes=video.nbytes)
    ctx.wrote("oscillations.zarr", "influx (1) / efflux (2) labels of every frame of the sheet")
    saved = open_result(ctx.path("oscillations.zarr"))
    # the recording with its labels, for napari (the labels layer over the video)
    import xarray as xr

    ome = save(xr.Dataset({"video": video, "oscillations": saved}), ctx.path("oscillations.ome.zarr"), overwrite=True,
               compute=False)
    ctx.runner.compute(ome, label="oscillations: recording and labels -> OME-Zarr", nbytes=video.nbytes)
    ctx.wrote("oscillations.ome.zarr", "the sheet recording with its influx/efflux labels as OME-Zarr (napari)")
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
    ctx.wrote("oscillation_tracks.csv", "table: one row per oscillating cluster (fluoxr's tracker)")
    n = saved.sizes["time"]
    frames = [n // 4, n // 2, (3 * n) // 4]
    # DataArrays, so that the panels are titled by their time in seconds
    fig = oscillation_overlay(video.isel(time=frames), saved.isel(time=frames))
    _save_figure(fig, ctx.path("oscillations.png"))
    ctx.wrote("oscillations.png", "figure: influx (red) and efflux (blue) over three frames of the sheet")
    periods = table["period_s"].dropna()
    ctx.report.append(
        f"oscillations: influx/efflux agree with the true wave phase on {float(agree):.1%} of sheet "
        f"pixel-frames ({float(agree_lag):.1%} with lag='period') ({ctx.runner.throughput(label)})"
    )
    ctx.report.append(
        f"oscillations: {len(table)} oscillating clusters, median local period "
        f"{periods.median():.0f} s (true {truth.period_s:.0f} s)"
        if len(periods) else f"oscillations: {len(table)} oscillating clusters"
    )


# -- the pipeline ---------------------------------------------------------------------------------

# `fluoxr demo` runs these in order; each analysis contributes one step.
DEMO_STEPS: list[Callable[[DemoContext], None]] = [
    _demo_recordings, _demo_overview, _demo_sofi, _demo_calcium, _demo_motion, _demo_features, _demo_oscillations,
]


# every file `fluoxr demo` may write: each step records what it wrote (DemoContext.wrote, which refuses a
# name missing here) and the summary lists those; a folder holding only these is an earlier demo run
DEMO_FILES = frozenset({
    "blinking.zarr", "calcium.zarr", "sheet.zarr", "recordings.png",
    "sofi.zarr", "sofi.ome.zarr", "sofi_bleach_corrected.zarr", "sofi_xc2.zarr", "sofi.png",
    "calcium_traces.zarr", "calcium_traces.nwb", "calcium_traces.png", "calcium_rois.png", "roi_features.csv",
    "calcium_moving.zarr", "motion.zarr", "motion.png",
    "oscillations.zarr", "oscillations.ome.zarr", "oscillations.png", "oscillation_tracks.csv",
})


def _only_demo_files(names: Sequence[str]) -> bool:
    def base(name: str) -> str:
        for suffix in (".partial.done", ".partial", ".lock"):
            if name.endswith(suffix):
                return name[: -len(suffix)]
        return name

    return all(base(n) in DEMO_FILES for n in names)


def add_parser(sub: Any) -> None:
    p = sub.add_parser("demo", help="run every analysis on synthetic recordings and write results and figures")
    p.add_argument("-o", "--output", default="fluoxr-demo", help="output folder (default ./fluoxr-demo)")
    _add_hidden_alias(p, "--out", "--output")
    p.add_argument("--frames", type=_number(int, ge=10), default=None, help="frames per synthetic recording (default: per recording)")
    _add_scheduler_args(p)
    p.set_defaults(func=run, input_bytes=_demo_input_bytes)


def _demo_input_bytes(args: argparse.Namespace) -> int:
    """Bytes of the synthetic recordings (uint16): what decides the default scheduler (``choose_scheduler``)."""
    n = args.frames
    moving = max(min(n or 600, 600), 60) * 96 * 96 * 2  # _demo_motion: a moving and a still recording
    return 2 * ((n or 2000) * 64 * 64 + (n or 1500) * 2 * 128 * 128 + (n or 300) * 128 * 128) + 2 * moving


def run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from ..io.safety import check_output_path

    out = check_output_path(args.output, name="-o")
    if os.path.exists(out) and not os.path.isdir(out):
        raise ValueError(f"-o {out!r} exists and is not a folder")
    # the demo replaces its own results on every run; it never writes into a folder it did not make
    marker = os.path.join(out, DEMO_MARKER)
    if os.path.isdir(out) and not os.path.exists(marker) and not _only_demo_files(os.listdir(out)):
        raise ValueError(f"-o {out!r} is a folder with other files in it; the demo writes only into a new "
                         f"folder or one of its own earlier runs (give another -o)")
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
    print(f"What it wrote in {out}:")
    width = max(map(len, ctx.written))
    for name, what in ctx.written.items():
        print(f"  {name:<{width}}  {what}")
    return 0
