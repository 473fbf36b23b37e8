"""``fluoxr warmup``: compile every numba kernel ahead, into numba's on-disk cache.

fluoxr's kernels compile on first use, for the argument types of that use,
and are then loaded from the cache (:mod:`fluoxr.kernels._cache`). A first run
on a fresh machine therefore spends most of its time compiling; in a cluster
or container image, where every job may start from an empty cache, run
``fluoxr warmup`` once while the image is built (with ``NUMBA_CACHE_DIR``
pointing inside the image, if the home directory is not kept).

The warm-up runs every analysis the library has on tiny synthetic recordings
of each sample type the kernels take natively (uint16, float32, float64;
other types are converted to one of these first), in this process, so that
exactly the signatures the library uses are compiled: nothing is listed here
by hand that could drift from what the analyses call.
"""

from __future__ import annotations

import argparse
import logging
import time
from typing import Any

logger = logging.getLogger(__name__)

# sample types of recordings (the SOFI kernels take these three natively, the others convert to them) and of
# traces (extraction gives float32; float64 traces come from user arithmetic)
VIDEO_DTYPES = ("uint16", "float32", "float64")
TRACE_DTYPES = ("float32", "float64")


def warm_kernels(video_dtypes: tuple[str, ...] = VIDEO_DTYPES, trace_dtypes: tuple[str, ...] = TRACE_DTYPES) -> list[str]:
    """Run every analysis once on tiny recordings of each type, compiling the kernels they use; returns their names.

    Examples
    --------
    >>> from fluoxr.cli.warmup import warm_kernels
    >>> warm_kernels(("float64",), ())[:2]
    ['SOFI moments and cumulants (float64)', 'time-lagged cumulants (float64)']
    """
    import dask
    import numpy as np

    from .. import apply_motion, datasets, drift_correct, estimate_motion, oscillations
    from .._video import as_video
    from ..extraction import extract, traces
    from ..features import roi_features
    from ..rois import ROISet
    from ..sofi import cross_cumulants, fourier_interpolate, lag_cumulants, sofi_images, xc_image
    from ..spikes import oasis
    from ..temporal import baseline, detrend

    done = []
    blinking, _ = datasets.blinking_emitters(n_frames=40, shape=(20, 20), n_emitters=1, seed=0)
    neurons, truth = datasets.calcium_neurons(n_frames=60, shape=(48, 48), n_cells=2, red_fraction=0.5, seed=0)
    sheet, sheet_truth = datasets.oscillating_sheet(n_frames=12, shape=(24, 24), seed=0)
    rois = ROISet.from_suite2p(truth.stat, (48, 48))
    with dask.config.set(scheduler="synchronous"):
        for dtype in video_dtypes:
            v = blinking.astype(dtype)
            # the parallel moment kernel runs on frames wider than one tile (512 px); the serial one below
            wide = as_video(np.resize(v.values, (v.sizes["time"], 24, 24)).astype(dtype))
            dask.compute(sofi_images(v, 4), sofi_images(v, 4, bleach_correction=True, smooth_kernel=5),
                         sofi_images(wide, 2))
            done.append(f"SOFI moments and cumulants ({dtype})")
            dask.compute(lag_cumulants(v, [0, 1, 2]), cross_cumulants(v), xc_image(v, sigma_px=1.5))
            done.append(f"time-lagged cumulants ({dtype})")
            done.append(f"cross-cumulants and XC2 ({dtype})")
            fourier_interpolate(v, 2).compute()
            done.append(f"Fourier interpolation ({dtype})")
            n = neurons.astype(dtype)
            ds = extract(n, rois, neuropil="auto")
            dask.compute(ds, traces(n.isel(channel=0), np.array([[5, 5], [12, 12]]), size=3))
            done.append(f"masks and extraction ({dtype})")
            roi_features(rois, n.isel(channel=1).mean("time")).compute()
            done.append(f"ROI features ({dtype})")
            g = n.isel(channel=0)
            for nonrigid in (False, True):
                motion = estimate_motion(g, nonrigid=nonrigid, block_size=(24, 24), n_reference_frames=20)
                dask.compute(motion, apply_motion(g, motion))
            drift_correct(v, block_frames=10).compute()
            done.append(f"motion correction and drift correction ({dtype})")
            s = sheet.astype(dtype)
            params = dict(period_s=sheet_truth.period_s, interval_s=sheet_truth.interval_s, min_cluster_size=4,
                          mask=sheet_truth.mask)
            for kw in ({}, {"lag": "period"}, {"compat": "cellects"}):
                labels = oscillations.detect(s, **params, **kw).compute()
            oscillations.track_clusters(labels).compute()
            oscillations.track_clusters(labels, compat="cellects", mask=sheet_truth.mask).compute()
            done.append(f"oscillation detection and tracking ({dtype})")
        for dtype in trace_dtypes:
            f = extract(neurons, rois).F.isel(channel=0).astype(dtype).compute()
            dask.compute(oasis(f - baseline(f, window_s=1.0, sigma_frames=2), tau_s=truth.tau_s),
                         detrend(f), baseline(f, method="constant"), baseline(f, method="prctile"))
            done.append(f"baselines, OASIS and detrending ({dtype} traces)")
    return done


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "warmup", help="compile every kernel ahead, for cluster and container images",
        description="Compile every numba kernel of fluoxr ahead, into numba's on-disk cache, so that no later run "
                    "compiles. For cluster and container images: run it once while the image is built (set "
                    "NUMBA_CACHE_DIR to a folder inside the image when the home directory is not kept). "
                    "Default cache: a per-user folder (e.g. ~/.cache/fluoxr/numba) that survives reinstalls; "
                    "NUMBA_CACHE_DIR overrides it.")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..kernels._cache import KERNEL_MODULES, cache_dir, cold_modules

    t0 = time.perf_counter()
    cold = cold_modules()
    print(f"fluoxr warmup: compiling kernels into {cache_dir()} "
          f"({len(cold)} of {len(KERNEL_MODULES)} kernel modules not cached yet)", flush=True)
    for what in warm_kernels():
        logger.info("compiled %s", what)
    print(f"fluoxr warmup: done in {time.perf_counter() - t0:.1f} s", flush=True)
    return 0
