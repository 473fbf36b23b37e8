"""Bad-input catalogue: every public entry point rejects bad input with a clear error that names the argument.

Each case gives the call, the exception type, and the argument name the
message must contain; every case runs with real input files in a temp folder
whose contents are hashed before and after, so no case may change an input.
CLI cases must exit with code 2 and a one-line message, not a traceback.

What is not here, and why: checks whose message is matched by a pattern
rather than a word (``test_oscillations.py``: ``detect`` on too-short videos,
``track_clusters``); command-line cases that must run from a temporary
working directory (``cli/test_cli.py``); and the data-safety cases of
``test_data_safety.py``, which each build their own files, links, locks or
processes (outputs that are inputs, stale locks, changed or truncated files).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest
import tifffile
import xarray as xr

import fluoxr
from fluoxr import ROISet, datasets
from fluoxr.cli import main as cli_main
from fluoxr.testing import wavy_video


@dataclass(frozen=True)
class Inputs:
    dir: str
    tif: str
    zarr: str
    npy: str
    video: xr.DataArray
    rois: ROISet


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> Inputs:
    d = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    stack = rng.integers(100, 200, (12, 16, 18)).astype(np.uint16)
    tif = str(d / "movie.tif")
    tifffile.imwrite(tif, stack)
    npy = str(d / "movie.npy")
    np.save(npy, stack)
    zarr_path = str(d / "movie.zarr")
    fluoxr.save(fluoxr.as_video(stack, fps=10), zarr_path)
    (d / "notes.txt").write_text("not a recording")
    tifffile.imwrite(str(d / "image.tif"), stack[0])
    tifffile.imwrite(str(d / "small_mask.tif"), np.ones((5, 5), np.uint8))
    (d / "raw").mkdir()
    np.zeros((6, 5, 4), np.int16).tofile(d / "raw" / "data.bin")
    try:
        import h5py

        with h5py.File(d / "rec.h5", "w") as f:
            f.create_dataset("frames", data=np.zeros((4, 5, 6)))
    except ImportError:
        pass
    video = fluoxr.open_video(tif, fps=10, chunks=4)
    rois = ROISet.from_positions([(3, 3), (10, 12)], (16, 18), size=3)
    return Inputs(str(d), tif, zarr_path, npy, video, rois)


# (id, call(inputs), exception type, words the message must contain)
Case = tuple[str, Callable[[Inputs], object], type, str]

CASES: list[Case] = [
    # -- opening -----------------------------------------------------------------------------
    ("open: missing file", lambda i: fluoxr.open_video(os.path.join(i.dir, "missing.tif")), ValueError, "path"),
    ("open: unknown extension", lambda i: fluoxr.open_video(os.path.join(i.dir, "notes.txt")), ValueError, "path"),
    ("open: 2-D image", lambda i: fluoxr.open_video(os.path.join(i.dir, "image.tif")), ValueError, "path"),
    ("open: fps <= 0", lambda i: fluoxr.open_video(i.tif, fps=0), ValueError, "fps"),
    ("open: fps not a number", lambda i: fluoxr.open_video(i.tif, fps="30"), TypeError, "fps"),
    ("open: negative pixel size", lambda i: fluoxr.open_video(i.tif, pixel_size=-2), ValueError, "pixel_size"),
    ("open: chunks=0", lambda i: fluoxr.open_video(i.tif, chunks=0), ValueError, "chunks"),
    ("open: chunks unknown dim", lambda i: fluoxr.open_video(i.tif, chunks={"frame": 3}), ValueError, "chunks"),
    ("open: path of wrong type", lambda i: fluoxr.open_video(3.5), TypeError, "path"),
    ("open: empty list", lambda i: fluoxr.open_video([]), ValueError, "path"),
    ("open: mixed formats", lambda i: fluoxr.open_video([i.tif, i.npy]), ValueError, "path"),
    ("open: unmatched glob", lambda i: fluoxr.open_video(os.path.join(i.dir, "*.nothing.tif")), ValueError, "path"),
    ("open: bin without shape", lambda i: fluoxr.open_video(_bin(i)), ValueError, "shape"),
    ("open: bin shape not dividing", lambda i: fluoxr.open_video(_bin(i), shape=(7, 7)), ValueError, "shape"),
    ("open: h5 missing dataset", lambda i: fluoxr.open_video(_h5(i) + "::/nothing"), ValueError, "path"),
    # -- wrapping ------------------------------------------------------------------------------
    ("as_video: 2-D image", lambda i: fluoxr.as_video(np.zeros((5, 5))), ValueError, "array"),
    ("as_video: 6-D", lambda i: fluoxr.as_video(np.zeros((1,) * 6)), ValueError, "array"),
    ("as_video: strings", lambda i: fluoxr.as_video(np.array([[["a"]]])), TypeError, "array"),
    ("as_video: not an array", lambda i: fluoxr.as_video({"a": 1}), TypeError, "array"),
    ("as_video: dims mismatch", lambda i: fluoxr.as_video(np.zeros((2, 3, 4)), dims=("time", "y")), ValueError, "dims"),
    ("as_video: no frames", lambda i: fluoxr.as_video(np.zeros((0, 3, 4))), ValueError, "array"),
    # -- saving --------------------------------------------------------------------------------
    ("save: onto existing store", lambda i: fluoxr.save(i.video, i.zarr), ValueError, "path"),
    ("save: onto its own input", lambda i: fluoxr.save(i.video.mean("time"), i.tif, overwrite=True), ValueError, "path"),
    ("save: into its zarr input", lambda i: fluoxr.save(fluoxr.open_video(i.zarr) + 1, i.zarr, overwrite=True),
     ValueError, "path"),
    ("save: non-zarr folder", lambda i: fluoxr.save(i.video, i.dir, overwrite=True), ValueError, "path"),
    ("save: not xarray", lambda i: fluoxr.save(np.zeros(3), os.path.join(i.dir, "x.zarr")), TypeError, "obj"),
    ("save: bad path type", lambda i: fluoxr.save(i.video, 12), TypeError, "path"),
    ("open_result: interrupted/missing", lambda i: fluoxr.open_result(os.path.join(i.dir, "none.zarr")), ValueError, "path"),
    # -- ROIs ----------------------------------------------------------------------------------
    ("rois: position outside frame", lambda i: ROISet.from_positions([(40, 2)], (16, 18)), ValueError, "positions"),
    ("rois: window not in list", lambda i: ROISet.from_positions([(4, 2)], (16, 18), window="oval"), ValueError, "window"),
    ("rois: empty ROI", lambda i: ROISet.from_suite2p([{"ypix": [], "xpix": []}], (16, 18)), ValueError, "stat"),
    ("rois: zero ROIs", lambda i: ROISet.from_suite2p([], (16, 18)), ValueError, "stat"),
    ("rois: label image all zero", lambda i: ROISet.from_labels(np.zeros((4, 4), int)), ValueError, "labels"),
    ("rois: empty mask", lambda i: ROISet.from_masks(np.zeros((1, 4, 4), bool)), ValueError, "masks"),
    ("rois: bad shape", lambda i: ROISet.from_suite2p([{"ypix": [1], "xpix": [1]}], (4,)), ValueError, "shape"),
    ("rois: empty selection", lambda i: i.rois[np.zeros(2, bool)], ValueError, "selection"),
    ("options: unknown window", lambda i: fluoxr.set_options(trace_window="hex"), ValueError, "trace_window"),
    # -- ROI features ---------------------------------------------------------------------
    ("features: reference shape", lambda i: fluoxr.roi_features(i.rois, np.zeros((4, 4))), ValueError, "reference"),
    ("features: reference is a video", lambda i: fluoxr.roi_features(i.rois, i.video), ValueError, "reference"),
    ("features: width 0", lambda i: fluoxr.roi_features(i.rois, i.video.mean("time"), width=0), ValueError, "width"),
    ("features: iterations 0", lambda i: fluoxr.roi_features(i.rois, i.video.mean("time"), iterations=0), ValueError,
     "iterations"),
    ("features: centroid method", lambda i: fluoxr.roi_features(i.rois, i.video.mean("time"), centroid_method="mean"),
     ValueError, "centroid_method"),
    ("features: rois as stat list", lambda i: fluoxr.roi_features([{"ypix": [1], "xpix": [1]}], i.video.mean("time")),
     TypeError, "rois"),
    ("features: channel without channel dim", lambda i: i.video.fluo.roi_features(i.rois, channel=1), ValueError,
     "channel"),
    # -- traces ------------------------------------------------------------------------------
    ("traces: position outside frame", lambda i: fluoxr.traces(i.video, [(16, 2)]), ValueError, "positions"),
    ("traces: window not in list", lambda i: fluoxr.traces(i.video, [(3, 3)], window="oval"), ValueError, "window"),
    ("extract: ROI shape differs from frame", lambda i: fluoxr.extract(i.video, ROISet.from_labels(np.eye(8, dtype=int))),
     ValueError, "rois"),
    ("extract: rois as stat list", lambda i: fluoxr.extract(i.video, [{"ypix": [1], "xpix": [1]}]), TypeError, "rois"),
    ("extract: neuropil name", lambda i: fluoxr.extract(i.video, i.rois, neuropil="ring"), ValueError, "neuropil"),
    ("extract: spatial chunks", lambda i: fluoxr.extract(i.video.chunk({"x": 5}), i.rois), ValueError, "video"),
    ("extract: unknown suite2p setting", lambda i: fluoxr.extract(i.video, i.rois, settings={"circular": True}),
     ValueError, "settings"),
    ("extract: suite2p setting out of range", lambda i: fluoxr.extract(i.video, i.rois,
                                                                       settings={"lam_percentile": -1}),
     ValueError, "lam_percentile"),
    ("ROISet.from_suite2p_masks: pixel outside the frame",
     lambda i: ROISet.from_suite2p_masks([np.array([0, 10_000])], (16, 18)), ValueError, "masks[0]"),
    ("preprocess: baseline name", lambda i: fluoxr.preprocess(fluoxr.traces(i.video, [(4, 4)]), baseline="min"),
     ValueError, "baseline"),
    ("neuropil: negative minimum", lambda i: fluoxr.neuropil_masks(i.rois, min_neuropil_pixels=-1), ValueError,
     "min_neuropil_pixels"),
    ("oasis: tau_s <= 0", lambda i: fluoxr.oasis(fluoxr.traces(i.video, [(3, 3)]), tau_s=0), ValueError, "tau_s"),
    ("oasis: no fps", lambda i: fluoxr.oasis(xr.DataArray(np.zeros((1, 5)), dims=("roi", "time")), tau_s=1),
     ValueError, "fps"),
    ("baseline: no fps for window_s", lambda i: fluoxr.baseline(xr.DataArray(np.zeros((1, 5)), dims=("roi", "time"))),
     ValueError, "fps"),
    ("baseline: traces without time", lambda i: fluoxr.baseline(xr.DataArray(np.zeros((1, 5)), dims=("roi", "t"))),
     ValueError, "traces"),
    ("detrend: unknown kind", lambda i: fluoxr.detrend(fluoxr.traces(i.video, [(3, 3)]), kind="poly"), ValueError,
     "kind"),
    ("positions: too many", lambda i: fluoxr.random_positions((2, 2), 5), ValueError, "n must be at most"),
    ("positions: fractional collage position", lambda i: fluoxr.collage_positions([[(1.5, 2.7)]], (10, 10)),
     ValueError, "positions[0]"),
    ("positions: collage image_shape of one int", lambda i: fluoxr.collage_positions([[(1, 2)]], 10), ValueError,
     "image_shape"),
    # -- oscillations (moved from tests/test_oscillations.py) ---------------------------------
    ("detect on waves: mask shape", lambda i: _detect_waves(mask=np.ones((3, 3))), ValueError, "mask"),
    ("detect on waves: mask video shape", lambda i: _detect_waves(mask=np.ones((5, 12, 14))), ValueError, "mask"),
    ("detect on waves: interval 0", lambda i: _detect_waves(interval_s=0), ValueError, "interval_s"),
    ("detect on waves: interval < 0", lambda i: _detect_waves(interval_s=-2), ValueError, "interval_s"),
    ("detect on waves: period 0", lambda i: _detect_waves(period_s=0), ValueError, "period_s"),
    ("detect on waves: min size 0", lambda i: _detect_waves(min_cluster_size=0), ValueError, "min_cluster_size"),
    ("detect on waves: min size float", lambda i: _detect_waves(min_cluster_size=2.5), ValueError, "min_cluster_size"),
    ("detect on waves: start beyond", lambda i: _detect_waves(start=23), ValueError, "start"),
    ("detect on waves: start < 0", lambda i: _detect_waves(start=-1), ValueError, "start"),
    ("detect on waves: lag", lambda i: _detect_waves(lag="frame"), ValueError, "lag"),
    ("detect on waves: compat", lambda i: _detect_waves(compat="cellects-1.1"), ValueError, "compat"),
    ("detect on waves: lowmem with lag", lambda i: _detect_waves(compat="cellects-lowmem", lag="period"), ValueError, "lag"),
    ("detect on waves: mask strings", lambda i: _detect_waves(mask=np.full((12, 14), "a")), TypeError, "mask"),
    # -- SOFI ----------------------------------------------------------------------------------
    ("sofi: order 0", lambda i: fluoxr.moments(i.video, 0), ValueError, "orders"),
    ("sofi: non-integer order", lambda i: fluoxr.cumulants(i.video, 2.5), ValueError, "orders"),
    ("sofi: order as text", lambda i: fluoxr.moments(i.video, "6"), TypeError, "orders"),
    ("sofi: lags longer than the recording", lambda i: fluoxr.lag_moments(i.video, [0, 1, 12]), ValueError, "lags"),
    ("sofi: lags not from 0", lambda i: fluoxr.lag_cumulants(i.video, [1, 2, 3]), ValueError, "lags"),
    ("sofi: lag moments without attrs and no lags",
     lambda i: fluoxr.lag_cumulants(fluoxr.lag_moments(i.video, [0, 1]).drop_attrs()), ValueError, "lags"),
    ("sofi: fbc 0", lambda i: fluoxr.moments(i.video, 4, bleach_correction=True, fbc=0), ValueError, "fbc"),
    ("sofi: fbc 1", lambda i: fluoxr.bleach_correct(i.video, fbc=1.0), ValueError, "fbc"),
    ("sofi: even smooth kernel", lambda i: fluoxr.bleach_blocks(i.video, smooth_kernel=250), ValueError, "smooth_kernel"),
    ("sofi: interpolation factor 0", lambda i: fluoxr.fourier_interpolate(i.video, 0), ValueError, "factor"),
    ("sofi: 2-D image for moments", lambda i: fluoxr.moments(np.zeros((16, 18))), ValueError, "video"),
    ("sofi: 2-D image for sofi_images", lambda i: fluoxr.sofi_images(i.video.mean("time")), ValueError, "video"),
    ("sofi: ri_range too large", lambda i: fluoxr.cross_cumulants(i.video, 9), ValueError, "ri_range"),
    ("sofi: block edges not rising", lambda i: fluoxr.block_moments(i.video, 2, edges=[0, 8, 4, 12]), ValueError,
     "edges"),
    ("sofi: ldrc window too large", lambda i: fluoxr.ldrc(np.zeros((5, 5)), mask=np.zeros((5, 5)), window_size=(9, 9)),
     ValueError, "window_size"),
    ("sofi: deconv_iter 0", lambda i: fluoxr.deconvsk(np.zeros((30, 30)), deconv_iter=0), ValueError, "deconv_iter"),
    ("sofi: ldrc in pysofi's order (mask first)", lambda i: fluoxr.ldrc(np.ones((5, 5)), np.zeros((5, 5))), TypeError,
     "ldrc(mask_im, input_im"),
    ("sofi: deconvsk in pysofi's order (psf first)",
     lambda i: fluoxr.deconvsk(fluoxr.gauss2d_mask((9, 9), 1), np.zeros((30, 30))), TypeError,
     "deconvsk(est_psf, input_im"),
    ("save_tiff: contrast without colormap",
     lambda i: fluoxr.save_tiff(np.zeros((4, 4)), os.path.join(i.dir, "c.tif"), contrast=(0, 1)), ValueError,
     "colormap"),
    ("save_tiff: unknown colormap",
     lambda i: fluoxr.save_tiff(np.zeros((4, 4)), os.path.join(i.dir, "c.tif"), colormap="nope"), ValueError,
     "colormap"),
    ("save_tiff: percentile above 100",
     lambda i: fluoxr.save_tiff(np.zeros((4, 4)), os.path.join(i.dir, "c.tif"), colormap="pink",
                                contrast=("1%", "120%")), ValueError, "contrast"),
    ("save_tiff: a Dataset", lambda i: fluoxr.save_tiff(fluoxr.sofi_images(i.video, 2), os.path.join(i.dir, "d.tif")),
     TypeError, "obj"),
    ("save_tiff: onto the input", lambda i: fluoxr.save_tiff(fluoxr.open_video(i.tif), i.tif, overwrite=True),
     ValueError, "input"),
    ("save_movie: .avi", lambda i: __import__("fluoxr.plot").plot.save_movie(i.video, os.path.join(i.dir, "m.avi")),
     ValueError, ".mp4 or .gif"),
    ("save_png: a video", lambda i: __import__("fluoxr.plot").plot.save_png(i.video, os.path.join(i.dir, "m.png")),
     ValueError, "image"),
    ("sofi: ldrc without mask", lambda i: fluoxr.ldrc(np.zeros((5, 5))), TypeError, "mask"),
    ("sofi: noise filter dim", lambda i: fluoxr.noise_filter(i.video, dim="order"), ValueError, "dim"),
    ("sofi: block_moments fbc 0 with edges", lambda i: fluoxr.block_moments(i.video, 2, fbc=0, edges=[0, 12]),
     ValueError, "fbc"),
    ("sofi: block_moments even smooth kernel with edges",
     lambda i: fluoxr.block_moments(i.video, 2, smooth_kernel=4, edges=[0, 12]), ValueError, "smooth_kernel"),
    ("sofi: reconstruct cumulant as text", lambda i: fluoxr.reconstruct(i.video, 2, cumulant="yes"), TypeError,
     "cumulant"),
    ("sofi: reconstruct ldrc_window of 3", lambda i: fluoxr.reconstruct(i.video, 2, ldrc_window=(3, 3, 3)),
     ValueError, "ldrc_window"),
    ("sofi: reconstruct ldrc_window 0", lambda i: fluoxr.reconstruct(i.video, 2, ldrc_window=(0, 3)), ValueError,
     "ldrc_window"),
    ("sofi: reconstruct ldrc_window larger than the images",
     lambda i: fluoxr.reconstruct(i.video, 2, finterp=2, ldrc_window=(32, 3)), ValueError, "ldrc_window"),
    ("sofi: reconstruct 2-D filter", lambda i: fluoxr.reconstruct(i.video, 2, window=4, filter=np.ones((2, 2))),
     ValueError, "filter"),
    ("sofi: reconstruct deconv_iter 0", lambda i: fluoxr.reconstruct(i.video, 2, deconv_iter=0), ValueError,
     "deconv_iter"),
    ("sofi: gauss2d_mask shape of 1", lambda i: fluoxr.gauss2d_mask((3,), 1.0), ValueError, "shape"),
    ("sofi: gauss2d_mask shape 0", lambda i: fluoxr.gauss2d_mask((0, 3), 1.0), ValueError, "shape"),
    ("sofi: gauss1d_mask fractional taps", lambda i: fluoxr.gauss1d_mask((1, 2.5), 1.0), ValueError, "shape"),
    ("sofi: gauss2d_mask sigma 0", lambda i: fluoxr.gauss2d_mask((3, 3), 0), ValueError, "sigma"),
    ("sofi: gauss1d_mask sigma as text", lambda i: fluoxr.gauss1d_mask((1, 3), "2"), TypeError, "sigma"),
    # -- oscillations -------------------------------------------------------------------------
    ("detect: mask shape", lambda i: _detect(i, mask=np.ones((5, 5), bool)), ValueError, "mask"),
    ("detect: interval_s <= 0", lambda i: _detect(i, interval_s=0), ValueError, "interval_s"),
    ("detect: min_cluster_size 0", lambda i: _detect(i, min_cluster_size=0), ValueError, "min_cluster_size"),
    ("detect: start beyond the end", lambda i: _detect(i, start=12), ValueError, "start"),
    ("detect: single frame", lambda i: _detect(i, video=i.video.isel(time=[0])), ValueError, "video"),
    ("detect: period_s <= 0", lambda i: _detect(i, period_s=-1), ValueError, "period_s"),
    ("detect: unknown compat", lambda i: _detect(i, compat="matlab"), ValueError, "compat"),
    ("track_clusters: a video, not labels", lambda i: fluoxr.oscillations.track_clusters(i.video).compute(), ValueError,
     "labels"),
    ("track_clusters: float labels", lambda i: fluoxr.oscillations.track_clusters(i.video.astype(float)), TypeError,
     "labels"),
    ("oscillation_coordinates: a video, not labels",
     lambda i: fluoxr.oscillations.oscillation_coordinates(i.video).compute(), ValueError, "labels"),
    ("track_clusters cellects: mask shape", lambda i: fluoxr.oscillations.track_clusters(
        i.video, compat="cellects", mask=np.ones((5, 5), bool)), ValueError, "mask"),
    ("track_clusters cellects: contours and mask", lambda i: fluoxr.oscillations.track_clusters(
        i.video, compat="cellects", mask=np.ones((16, 18)), contours=np.ones((16, 18))), ValueError, "contours"),
    ("track_clusters cellects: mask of text", lambda i: fluoxr.oscillations.track_clusters(
        i.video, compat="cellects", mask=np.full((16, 18), "x")), TypeError, "mask"),
    ("track_clusters cellects: contours per frame, wrong length", lambda i: fluoxr.oscillations.track_clusters(
        i.video, compat="cellects", contours=np.ones((3, 16, 18))), ValueError, "contours"),
    ("track_clusters: mask without compat='cellects'", lambda i: fluoxr.oscillations.track_clusters(
        i.video, mask=np.ones((16, 18))), ValueError, "mask"),
    ("track_clusters: unknown compat", lambda i: fluoxr.oscillations.track_clusters(i.video, compat="matlab"),
     ValueError, "compat"),
    ("as_video: ambiguous 4-D array", lambda i: fluoxr.as_video(np.zeros((4, 3, 16, 18))), ValueError, "dims"),
    ("moments: ambiguous raw 4-D array", lambda i: fluoxr.moments(np.zeros((4, 3, 16, 18)), 2), ValueError,
     "video"),
    ("detect: raw (t, y, x, c) array of one frame", lambda i: _detect(i, video=np.zeros((1, 16, 18, 3))), ValueError,
     "video"),
    # -- synthetic data ---------------------------------------------------------------------
    ("datasets: n_frames 0", lambda i: datasets.calcium_neurons(n_frames=0), ValueError, "n_frames"),
    ("datasets: bad fps", lambda i: datasets.blinking_emitters(fps=-1), ValueError, "fps"),
    ("datasets: shape of 3", lambda i: datasets.oscillating_sheet(shape=(4, 4, 4)), ValueError, "shape"),
    ("datasets: unknown motion preset", lambda i: datasets.calcium_neurons(n_frames=5, motion="wobbly"), ValueError,
     "motion"),
    ("datasets: motion path of another length", lambda i: datasets.calcium_neurons(n_frames=5, motion=np.zeros((4, 2))),
     ValueError, "motion"),
    ("datasets: drift a number", lambda i: datasets.blinking_emitters(n_frames=5, drift=3.0), TypeError, "drift"),
    ("datasets: negative Motion step", lambda i: datasets.Motion(step_px=-1), ValueError, "step_px"),
    # -- drift correction --------------------------------------------------------------------
    ("drift_correct: block_frames 0", lambda i: fluoxr.drift_correct(i.video, block_frames=0), ValueError,
     "block_frames"),
    ("drift_correct: unknown interpolation", lambda i: fluoxr.drift_correct(i.video, block_frames=4,
                                                                            interpolation="spline"), ValueError,
     "interpolation"),
    ("estimate_drift: unknown reference", lambda i: fluoxr.estimate_drift(i.video, block_frames=4, reference="last"),
     ValueError, "reference"),
    ("estimate_drift: not a video", lambda i: fluoxr.estimate_drift([1, 2, 3]), TypeError, "video"),
    # -- GPU ---------------------------------------------------------------------------------
    ("gpu: unknown device", lambda i: fluoxr.to_device(i.video, "gpu"), ValueError, "device"),
    ("gpu: to_device of a list", lambda i: fluoxr.to_device([1, 2], "cpu"), TypeError, "obj"),
    ("gpu: unknown backend", lambda i: fluoxr.open_video(i.tif, backend="jax"), ValueError, "backend"),
    ("gpu: cupy engine on a host video", lambda i: fluoxr.extract(i.video, i.rois, engine="cupy"), ValueError,
     "engine"),
    ("gpu: unknown engine", lambda i: fluoxr.traces(i.video, [(3, 3)], engine="jax"), ValueError, "engine"),
    # -- NWB ---------------------------------------------------------------------------------
    ("to_nwb: traces a list", lambda i: _to_nwb(i, traces=[1, 2]), TypeError, "traces"),
    ("to_nwb: no (roi, time) variable", lambda i: _to_nwb(i, traces=xr.Dataset({"a": ("x", [1])})), ValueError,
     "traces"),
    ("to_nwb: traces with a channel dim", lambda i: _to_nwb(i, traces=_nwb_traces(i).expand_dims(channel=2)),
     ValueError, "traces"),
    ("to_nwb: rois not a ROISet", lambda i: _to_nwb(i, rois=[1, 2]), TypeError, "rois"),
    ("to_nwb: rois of another count", lambda i: _to_nwb(i, rois=i.rois[:1]), ValueError, "rois"),
    ("to_nwb: no frame rate", lambda i: _to_nwb(i, traces=_nwb_traces(i).assign_attrs(fps=None)), ValueError, "fps"),
    ("to_nwb: unknown metadata key", lambda i: _to_nwb(i, metadata={"sessions": "x"}), ValueError, "metadata"),
    ("to_nwb: naive session_start_time",
     lambda i: _to_nwb(i, metadata={"session_start_time": datetime.datetime(2024, 1, 1)}), ValueError,
     "session_start_time"),
    ("to_nwb: excitation_lambda in µm",
     lambda i: _to_nwb(i, metadata={"imaging_plane": {"excitation_lambda": 0.92}}), ValueError, "excitation_lambda"),
    ("to_nwb: unknown subject key", lambda i: _to_nwb(i, metadata={"subject": {"name": "m"}}), ValueError, "subject"),
    ("to_nwb: subject sex", lambda i: _to_nwb(i, metadata={"subject": {"sex": "male"}}), ValueError, "sex"),
    ("to_nwb: subject age not ISO 8601", lambda i: _to_nwb(i, metadata={"subject": {"age": "90 days"}}), ValueError,
     "age"),
    ("to_nwb: features of another length", lambda i: _to_nwb(i, features=pd.DataFrame({"a": [1.0]})), ValueError,
     "features"),
    ("to_nwb: features column id", lambda i: _to_nwb(i, features=pd.DataFrame({"id": [1, 2]})), ValueError,
     "features"),
    ("to_nwb: unknown compression", lambda i: _to_nwb(i, compression="lzf"), ValueError, "compression"),
    ("to_nwb: video of another frame shape", lambda i: _to_nwb(i, video=i.video.isel(x=slice(0, 5))), ValueError,
     "video"),
    ("to_nwb: output is the input", lambda i: _to_nwb(i, path=i.tif, overwrite=True, video=i.video), ValueError,
     "path"),
    ("open: NWB series that is not there", lambda i: fluoxr.open_video(_nwb_file(i) + "::/acquisition/nothing"),
     ValueError, "path"),
    ("read_nwb_rois: missing file", lambda i: fluoxr.read_nwb_rois(os.path.join(i.dir, "missing.nwb")), ValueError,
     "path"),
    ("read_nwb_rois: HDF5 without PlaneSegmentation", lambda i: fluoxr.read_nwb_rois(_h5(i)), ValueError, "path"),
    ("read_nwb_rois: shape of 1", lambda i: fluoxr.read_nwb_rois(_nwb_file(i), shape=(3,)), ValueError, "shape"),
]


def _detect(i: Inputs, **kwargs):
    args = dict(video=i.video, period_s=10.0, interval_s=0.1, min_cluster_size=3) | kwargs
    return fluoxr.oscillations.detect(args.pop("video"), **args)


# -- OME-Zarr (fluoxr.io.ome_zarr) ---------------------------------------------------------------
def _ome_store() -> str:
    """A small OME-Zarr video written once, outside the inputs folder (whose contents must not change)."""
    import tempfile

    path = os.path.join(tempfile.gettempdir(), f"fluoxr-bad-input-{os.getpid()}.ome.zarr")
    if not os.path.exists(path):
        fluoxr.save(fluoxr.as_video(np.zeros((3, 6, 5), np.uint16), fps=2.0), path)
    return path


CASES += [
    ("save: unknown format", lambda i: fluoxr.save(i.video, os.path.join(i.dir, "o.zarr"), format="tiff"),
     ValueError, "format"),
    ("save ome-zarr: nothing image-like", lambda i: fluoxr.save(xr.Dataset({"t": ("time", np.arange(3.0))}),
                                                                os.path.join(i.dir, "o.ome.zarr")), ValueError, "obj"),
    ("save ome-zarr: two channel-like dims", lambda i: fluoxr.save(
        xr.DataArray(np.zeros((2, 2, 4, 4)), dims=("block", "order", "y", "x")), os.path.join(i.dir, "o.ome.zarr")),
     ValueError, "obj"),
    ("open: level of a plain zarr store", lambda i: fluoxr.open_video(i.zarr, level=1), ValueError, "level"),
    ("open ome-zarr: level out of range", lambda i: fluoxr.open_video(_ome_store(), level=3), ValueError, "level"),
    ("open ome-zarr: negative level", lambda i: fluoxr.open_video(_ome_store(), level=-1), ValueError, "level"),
    ("open ome-zarr: no such group", lambda i: fluoxr.open_video(_ome_store() + "::labels/none"), ValueError, "path"),
]


def _two_channels(i: Inputs) -> xr.DataArray:
    return xr.concat([i.video, i.video], dim="channel").transpose("time", "channel", "y", "x")


CASES += [
    # -- motion correction --------------------------------------------------------------------
    ("estimate_motion: frames smaller than a block", lambda i: fluoxr.estimate_motion(
        i.video, nonrigid=True, block_size=(32, 32)), ValueError, "block_size"),
    ("estimate_motion: blocks too small to search", lambda i: fluoxr.estimate_motion(
        i.video, nonrigid=True, block_size=(6, 6)), ValueError, "block_size"),
    ("estimate_motion: block_size not a pair", lambda i: fluoxr.estimate_motion(i.video, block_size="big"),
     TypeError, "block_size"),
    ("estimate_motion: max_shift 0", lambda i: fluoxr.estimate_motion(i.video, max_shift=0), ValueError,
     "max_shift"),
    ("estimate_motion: max_shift fraction above half", lambda i: fluoxr.estimate_motion(i.video, max_shift=0.7),
     ValueError, "max_shift"),
    ("estimate_motion: max_shift beyond half the frame", lambda i: fluoxr.estimate_motion(i.video, max_shift=40),
     ValueError, "max_shift"),
    ("estimate_motion: max_shift that rounds to nothing", lambda i: fluoxr.estimate_motion(i.video, max_shift=0.01),
     ValueError, "max_shift"),
    ("estimate_motion: max_shift_nonrigid negative", lambda i: fluoxr.estimate_motion(
        i.video, max_shift_nonrigid=-1), ValueError, "max_shift_nonrigid"),
    ("estimate_motion: reference of the wrong shape", lambda i: fluoxr.estimate_motion(
        i.video, reference=np.zeros((5, 5))), ValueError, "reference"),
    ("estimate_motion: reference of text", lambda i: fluoxr.estimate_motion(
        i.video, reference=np.full((16, 18), "a")), TypeError, "reference"),
    ("estimate_motion: subpixel 0", lambda i: fluoxr.estimate_motion(i.video, subpixel=0), ValueError, "subpixel"),
    ("estimate_motion: n_reference_frames 0", lambda i: fluoxr.estimate_motion(i.video, n_reference_frames=0),
     ValueError, "n_reference_frames"),
    ("estimate_motion: smooth_sigma_time negative", lambda i: fluoxr.estimate_motion(
        i.video, smooth_sigma_time=-1), ValueError, "smooth_sigma_time"),
    ("estimate_motion: bidiphase a float", lambda i: fluoxr.estimate_motion(i.video, bidiphase=1.5), ValueError,
     "bidiphase"),
    ("estimate_motion: channel without channels", lambda i: fluoxr.estimate_motion(i.video, channel=1),
     ValueError, "channel"),
    ("estimate_motion: two channels, none chosen", lambda i: fluoxr.estimate_motion(_two_channels(i)),
     ValueError, "channel"),
    ("estimate_motion: unknown channel", lambda i: fluoxr.estimate_motion(_two_channels(i), channel=5),
     ValueError, "channel"),
    ("estimate_motion: frames split in chunks", lambda i: fluoxr.estimate_motion(i.video.chunk({"y": 4})),
     ValueError, "video"),
    ("apply_motion: shifts for fewer frames", lambda i: fluoxr.apply_motion(i.video, {"dy": [0.0] * 5,
                                                                                     "dx": [0.0] * 5}),
     ValueError, "motion"),
    ("apply_motion: a table without dx", lambda i: fluoxr.apply_motion(i.video, pd.DataFrame({"dy": np.zeros(12)})),
     ValueError, "dx"),
    ("apply_motion: a CSV that is not a table of shifts", lambda i: fluoxr.apply_motion(
        i.video, os.path.join(i.dir, "notes.txt")), ValueError, "motion"),
    ("apply_motion: no such file", lambda i: fluoxr.apply_motion(i.video, os.path.join(i.dir, "none.csv")),
     ValueError, "motion"),
    ("apply_motion: shifts of text", lambda i: fluoxr.apply_motion(i.video, {"dy": ["a"] * 12, "dx": [0] * 12}),
     ValueError, "dy"),
    ("apply_motion: a number", lambda i: fluoxr.apply_motion(i.video, 3), TypeError, "motion"),
    ("apply_motion: a Dataset without shifts", lambda i: fluoxr.apply_motion(
        i.video, xr.Dataset({"corr": ("time", np.zeros(12))})), ValueError, "motion"),
]


def _bin(i: Inputs) -> str:
    return os.path.join(i.dir, "raw", "data.bin")


def _h5(i: Inputs) -> str:
    pytest.importorskip("h5py")
    return os.path.join(i.dir, "rec.h5")


def _nwb_traces(i: Inputs) -> xr.Dataset:
    return xr.Dataset({"F": xr.DataArray(np.ones((2, 12), np.float32), dims=("roi", "time"))}, attrs={"fps": 10.0})


def _to_nwb(i: Inputs, **kwargs):
    pytest.importorskip("pynwb")
    args = dict(traces=_nwb_traces(i), rois=i.rois) | kwargs
    path = args.pop("path", os.path.join(os.path.dirname(i.dir), "bad_input_out.nwb"))
    return fluoxr.to_nwb(args.pop("traces"), path, **args)


def _nwb_file(i: Inputs) -> str:
    # written beside the inputs folder (whose contents the cases must not change), once
    path = os.path.join(os.path.dirname(i.dir), "bad_input_session.nwb")
    if not os.path.exists(path):
        _to_nwb(i, path=path, video=i.video)
    return path


def _detect_waves(**kwargs):
    # fluoxr.oscillations.detect on the oscillation tests' waves (23 frames of 12 x 14), one argument changed
    kw = dict(period_s=18.0, min_cluster_size=4)
    kw.update(kwargs)
    return fluoxr.oscillations.detect(wavy_video(), **kw)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_bad_input(case, inputs, unchanged):
    _, call, exc, words = case
    unchanged(inputs.dir)
    with pytest.raises(exc) as info:
        call(inputs)
    assert words in str(info.value), f"message {str(info.value)!r} does not name {words!r}"


CLI_CASES = [
    ("info: missing file", ["info", "/nonexistent/x.tif"], "path"),
    ("info: unknown extension", ["info", "{dir}/notes.txt"], "path"),
    ("demo: too few frames", ["demo", "--frames", "2", "--scheduler", "threads", "-o", "{dir}/demo"], "--frames"),
    ("demo: out is a file", ["demo", "-o", "{dir}/notes.txt", "--scheduler", "threads"], "-o"),
    ("extract: no ROI source", ["extract", "{dir}/movie.tif", "-o", "{dir}/t.zarr", "--scheduler", "threads"], "--stat"),
    ("extract: spikes without tau", ["extract", "{dir}/movie.tif", "--labels", "{dir}/image.tif", "-o", "{dir}/t.zarr",
                                     "--spikes", "--scheduler", "threads", "--no-progress"], "--tau"),
    ("sofi: order 0", ["sofi", "{dir}/movie.tif", "-o", "{dir}/sofi.zarr", "--order", "0"], "--order"),
    ("sofi: fbc 2", ["sofi", "{dir}/movie.tif", "-o", "{dir}/sofi.zarr", "--fbc", "2"], "--fbc"),
    ("sofi: 2-D image", ["sofi", "{dir}/image.tif", "-o", "{dir}/sofi.zarr", "--scheduler", "threads"], "path"),
    ("sofi: output exists", ["sofi", "{dir}/movie.tif", "-o", "{dir}/movie.zarr", "--scheduler", "threads"], "-o"),
    ("oscillations: output exists", ["oscillations", "{dir}/movie.tif", "--period", "10", "--interval", "1",
                                     "--min-cluster-size", "3", "-o", "{dir}/movie.zarr", "--scheduler", "threads"], "-o"),
    ("oscillations: no frame rate", ["oscillations", "{dir}/movie.tif", "--period", "10", "--min-cluster-size", "3",
                                     "-o", "{dir}/o.zarr", "--scheduler", "threads"], "--interval"),
    ("oscillations: mask shape", ["oscillations", "{dir}/movie.tif", "--period", "10", "--interval", "1",
                                  "--min-cluster-size", "3", "--mask", "{dir}/small_mask.tif", "-o", "{dir}/o.zarr",
                                  "--scheduler", "threads", "--no-progress"], "mask"),
    ("sofi: unknown --format", ["sofi", "{dir}/movie.tif", "-o", "{dir}/sofi.zarr", "--format", "tiff"], "--format"),
    ("extract: labels of another shape", ["extract", "{dir}/movie.tif", "--labels", "{dir}/small_mask.tif",
                                          "-o", "{dir}/t.zarr", "--scheduler", "threads", "--no-progress"], "rois"),
    ("extract: neither -o nor --nwb", ["extract", "{dir}/movie.tif", "--labels", "{dir}/image.tif",
                                       "--scheduler", "threads"], "--nwb"),
    ("extract: --nwb is the input", ["extract", "{dir}/movie.tif", "--labels", "{dir}/image.tif", "--nwb",
                                     "{dir}/movie.tif", "--overwrite", "--scheduler", "threads"], "--nwb"),
    ("extract: --nwb-metadata not JSON", ["extract", "{dir}/movie.tif", "--labels", "{dir}/image.tif", "--nwb",
                                          "{dir}/../cli_out.nwb", "--nwb-metadata", "{dir}/notes.txt",
                                          "--scheduler", "threads"], "--nwb-metadata"),
    ("register: output exists", ["register", "{dir}/movie.tif", "-o", "{dir}/movie.zarr", "--scheduler", "threads"],
     "-o"),
    ("register: --shifts not a table of dy, dx", ["register", "{dir}/movie.tif", "--shifts", "{dir}/notes.txt", "-o",
                                                  "{dir}/s.zarr", "--scheduler", "threads", "--no-progress"],
     "--shifts"),
    ("register: --shifts missing", ["register", "{dir}/movie.tif", "--shifts", "{dir}/none.csv", "-o",
                                    "{dir}/s.zarr", "--scheduler", "threads", "--no-progress"], "--shifts"),
    ("register: nonrigid to CSV", ["register", "{dir}/movie.tif", "--nonrigid", "-o", "{dir}/s.csv",
                                   "--scheduler", "threads"], "-o"),
    ("register: --shifts is the output", ["register", "{dir}/movie.tif", "--shifts", "{dir}/notes.txt", "-o",
                                          "{dir}/notes.txt", "--overwrite", "--scheduler", "threads"], "-o"),
    ("extract: unknown --register", ["extract", "{dir}/movie.tif", "--labels", "{dir}/image.tif", "-o",
                                     "{dir}/t.zarr", "--register", "affine", "--scheduler", "threads"], "--register"),
    ("extract: --nwb-metadata without --nwb", ["extract", "{dir}/movie.tif", "--labels", "{dir}/image.tif", "-o",
                                               "{dir}/t.zarr", "--nwb-metadata", "{dir}/notes.txt",
                                               "--scheduler", "threads"], "--nwb-metadata"),
]


@pytest.mark.parametrize("case", CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_cli_bad_input(case, inputs, unchanged, capsys):
    _, argv, words = case
    unchanged(inputs.dir)
    argv = [a.format(dir=inputs.dir) for a in argv]
    assert cli_main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert words in err and "Traceback" not in err and len(err.splitlines()) == 1, err


def test_catalogue_is_large_enough():
    assert len(CASES) + len(CLI_CASES) >= 40


@pytest.mark.parametrize(
    "argv, flag",
    [
        (["sofi", "{tif}", "-o", "{dir}/out.zarr", "--png", "{tif}", "--scheduler", "threads"], "--png"),
        (["oscillations", "{tif}", "--period", "10", "--interval", "1", "--min-cluster-size", "3", "-o",
          "{dir}/o.zarr", "--tracks", "{tif}", "--overwrite", "--scheduler", "threads"], "--tracks"),
        (["extract", "{tif}", "--labels", "{dir}/image.tif", "-o", "{dir}/image.tif", "--overwrite",
          "--scheduler", "threads"], "-o"),
    ],
)
def test_cli_never_writes_onto_an_input(argv, flag, inputs, unchanged, capsys):
    unchanged(inputs.dir)
    assert cli_main([a.format(dir=inputs.dir, tif=inputs.tif) for a in argv]) == 2
    err = capsys.readouterr().err
    assert flag in err and "input" in err


PLOT_CASES = [
    ("show_traces: x and fps", lambda p: p.show_traces(np.zeros((5, 2)), np.arange(5), fps=2), ValueError, "x and fps"),
    ("show_traces: x of wrong length", lambda p: p.show_traces(np.zeros((5, 2)), np.arange(4)), ValueError, "x must"),
    ("show_traces: 3-D array", lambda p: p.show_traces(np.zeros((2, 2, 2))), ValueError, "traces"),
    ("show_images: 3-D image", lambda p: p.show_images([np.zeros((2, 2, 2))]), ValueError, "images[0]"),
    ("show_positions: (n, 3)", lambda p: p.show_positions(np.zeros((2, 3))), ValueError, "positions"),
    ("add_scale_bar: pixel_size 0", lambda p: p.add_scale_bar(__import__("matplotlib.pyplot").pyplot.gca(),
                                                               pixel_size=0), ValueError, "pixel_size"),
    ("select_traces: 2-D array", lambda p: p.select_traces(np.zeros((4, 4))), ValueError, "video"),
    ("select_traces: ref_frame", lambda p: p.select_traces(np.zeros((3, 4, 4)), ref_frame=5), ValueError, "ref_frame"),
    ("compare_traces: colors", lambda p: p.compare_traces([np.zeros((3, 4, 4))], [(1, 1)], colors=["r", "b"]),
     ValueError, "colors"),
    ("oscillation_overlay: times", lambda p: p.oscillation_overlay(np.ones((2, 4, 4)), np.zeros((2, 4, 4), np.int8),
                                                                   times=[1]), ValueError, "times"),
    ("show_motion: a list", lambda p: p.show_motion([1, 2]), TypeError, "motion"),
    ("show_motion: no dx", lambda p: p.show_motion({"dy": [0.0, 1.0]}), ValueError, "motion"),
    ("show_motion: video of another length", lambda p: p.show_motion({"dy": [0.0] * 3, "dx": [0.0] * 3},
                                                                     np.zeros((4, 5, 5))), ValueError, "video"),
]


@pytest.mark.parametrize("case", PLOT_CASES, ids=[c[0] for c in PLOT_CASES])
def test_plot_bad_input(case):
    import re

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    import fluoxr.plot

    _, call, exc, words = case
    try:
        with pytest.raises(exc, match=re.escape(words)):
            call(fluoxr.plot)
    finally:
        plt.close("all")
