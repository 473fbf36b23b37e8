"""Motion correction as a lazy view: suite2p's rigid and piecewise-rigid registration, nothing written.

:func:`estimate_motion` gives a small lazy table of shifts (one row per
frame) and the reference image; :func:`apply_motion` gives the registered
video as a lazy view of the raw one, computed chunk by chunk as it is read;
:func:`register` does both. ``fluoxr.save`` writes a registered video only
when asked; extraction, SOFI or oscillation detection read it directly.

How the graph is built (see ARCHITECTURE.md):

- the reference (and everything derived from it: taper, whitened spectrum,
  block spectra, Kriging matrices, the bidirectional phase) is *one* task,
  fed by ``n_reference_frames`` frames gathered by
  :func:`fluoxr.drivers.gather.gather_frames` (narrow reads of those
  frames only), and every chunk's task takes it as a small shared input;
- the video's reads wait for the reference (:func:`fluoxr.drivers.gather.after`),
  so no chunk is read, and held, while the reference is being computed; the
  estimate and the application of a chunk's shifts share that read;
- shifts are estimated chunk by chunk through the temporal driver
  (:func:`fluoxr.drivers.apply_temporal`), with a halo of frames only when
  the correlation maps are smoothed along time (``smooth_sigma_time``), so
  the table does not depend on the chunking.

suite2p 1.1.0 settings, name by name (``ops``/``settings`` key = argument):

=====================  ===========================  ==================================================
suite2p                fluoxr                       note
=====================  ===========================  ==================================================
``maxregshift``        ``max_shift``                < 1: fraction of the smaller side; >= 1: pixels
``nimg_init``          ``n_reference_frames``       evenly spaced frames, as suite2p picks them
``maxregshiftNR``      ``max_shift_nonrigid``       pixels
``block_size``         ``block_size``
``nonrigid``           ``nonrigid``
``smooth_sigma``       ``smooth_sigma``
``smooth_sigma_time``  ``smooth_sigma_time``        over the whole recording (suite2p: per batch)
``snr_thresh``         ``snr_thresh``
``subpixel``           ``subpixel``                 suite2p: blocks only; fluoxr: rigid too (1: whole pixels)
``spatial_taper``      ``spatial_taper``
``do_bidiphase``,      ``bidiphase``                None: estimated from the reference frames;
``bidiphase``                                       an int: that offset (0: none)
``norm_frames``        always on                    frames clipped to the reference's 1st-99th percentiles
``refImg``             ``reference``
``align_by_chan2``     ``channel``                  the channel estimated on; shifts applied to all
=====================  ===========================  ==================================================

The sign is suite2p's (``yoff``, ``xoff``): ``dy``, ``dx`` are the
displacement of a frame's content relative to the reference; registering
moves it by ``(-dy, -dx)``: ``registered(y, x) = frame(y + dy, x + dx)``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from . import _backend
from ._validate import check_int, check_number
from ._video import check_video
from .drivers import TemporalFilter, apply_temporal
from .drivers.gather import after, gather_frames
from .kernels import motion as K

logger = logging.getLogger(__name__)

__all__ = ["apply_motion", "estimate_motion", "register"]

#: suite2p's default spatial taper slope (``spatial_taper``)
SPATIAL_TAPER = 3.45


# --------------------------------------------------------------------------------------------
# tasks (module-level: they pickle for distributed workers and tokenize stably)


def _estimate_chunk(window: np.ndarray, prep: K.MotionPrep, *, before: int, after: int,
                    smooth_sigma_time: float) -> np.ndarray:
    rows = K.estimate_shifts(window, prep, before=before, after=after)
    return rows[:, None, :]


def _time_halo(smooth_sigma_time: float) -> tuple[int, int]:
    h = K.time_halo(smooth_sigma_time)
    return h, h


_ESTIMATE = TemporalFilter(_estimate_chunk, halo=_time_halo, edge="reflect", name="fluoxr-motion-estimate")


def _bidiphase_of(frames: np.ndarray, given: int | None) -> int:
    return K.bidiphase_estimate(frames) if given is None else int(given)


def _reference_of(frames: np.ndarray, bidiphase: int, settings: dict[str, Any]) -> np.ndarray:
    return K.compute_reference(frames, bidiphase=bidiphase, max_shift=settings["max_shift"],
                               smooth_sigma=settings["smooth_sigma"],
                               spatial_taper_slope=settings["spatial_taper_slope"])


def _prepare(reference: np.ndarray, bidiphase: int, settings: dict[str, Any]) -> K.MotionPrep:
    return K.prepare(np.asarray(reference), bidiphase=int(bidiphase), **settings)


def _apply_chunk(frames: Any, shifts: Any, bidiphase: Any, *, kernels: _backend.Kernels, nonrigid: bool,
                 centre_y: np.ndarray | None, centre_x: np.ndarray | None) -> Any:
    xp = _backend.array_module(frames)
    data = xp.asarray(frames, dtype=xp.float32)
    b = int(bidiphase)
    if b:
        data = K.bidiphase_shift(data, b)
    if shifts.shape[0] == 0:
        return data
    if not nonrigid:
        return kernels.shift_rigid(data, shifts[:, 0], shifts[:, 1])
    ny, nx = len(centre_y), len(centre_x)
    nb = ny * nx
    ly, lx = data.shape[-2:]
    dyb = xp.asarray(shifts[:, 3:3 + nb]).reshape(-1, ny, nx)
    dxb = xp.asarray(shifts[:, 3 + nb:3 + 2 * nb]).reshape(-1, ny, nx)
    out = []
    for k in range(0, data.shape[0], K.BATCH):  # per-pixel fields of a batch, not of the whole chunk
        fy = kernels.block_field(dyb[k:k + K.BATCH], centre_y, centre_x, ly, lx)
        fx = kernels.block_field(dxb[k:k + K.BATCH], centre_y, centre_x, ly, lx)
        out.append(kernels.remap_bilinear(data[k:k + K.BATCH], fy, fx))
    return out[0] if len(out) == 1 else xp.concatenate(out)


# --------------------------------------------------------------------------------------------
# checks


def _check_settings(ly: int, lx: int, *, nonrigid: bool, block_size: Any, max_shift: Any, max_shift_nonrigid: Any,
                    smooth_sigma: Any, smooth_sigma_time: Any, subpixel: Any, snr_thresh: Any,
                    n_reference_frames: Any, bidiphase: Any, spatial_taper: Any) -> dict[str, Any]:
    max_shift = check_number(max_shift, "max_shift", gt=0)
    half = min(ly, lx) // 2
    if max_shift < 1 and max_shift > 0.5:
        raise ValueError(f"max_shift must be a fraction of the frame in (0, 0.5] or pixels in [1, {half}], "
                         f"got {max_shift!r}")
    if max_shift >= 1 and max_shift > half:
        raise ValueError(f"max_shift must be at most half the smaller side of the frame ({half} pixels for "
                         f"{ly}x{lx} frames), got {max_shift!r}")
    if K.max_shift_pixels(max_shift, ly, lx) < 1:
        raise ValueError(f"max_shift={max_shift!r} allows no shift at all on {ly}x{lx} frames "
                         f"(a fraction of the smaller side, rounded); give pixels (>= 1) instead")
    if isinstance(block_size, (int, np.integer)) and not isinstance(block_size, bool):
        block_size = (int(block_size), int(block_size))
    if not isinstance(block_size, (tuple, list)) or len(block_size) != 2:
        raise TypeError(f"block_size must be (height, width) in pixels, got {block_size!r}")
    block_size = (check_int(block_size[0], "block_size[0]", min_value=1),
                  check_int(block_size[1], "block_size[1]", min_value=1))
    max_shift_nonrigid = check_number(max_shift_nonrigid, "max_shift_nonrigid", gt=0)
    if nonrigid:
        if block_size[0] > ly or block_size[1] > lx:
            raise ValueError(f"block_size {block_size} is larger than the frames ({ly}, {lx}); "
                             f"nonrigid registration needs blocks that fit in a frame")
        room = min(block_size) // 2 - K.LPAD
        if room < 1:
            raise ValueError(f"block_size {block_size} is too small: blocks need at least {2 * (K.LPAD + 1)} "
                             f"pixels a side to search a shift")
    settings = dict(
        max_shift=max_shift,
        smooth_sigma=check_number(smooth_sigma, "smooth_sigma", ge=0),
        spatial_taper_slope=check_number(spatial_taper, "spatial_taper", gt=0),
        subpixel=check_int(subpixel, "subpixel", min_value=1, max_value=100),
        smooth_sigma_time=check_number(smooth_sigma_time, "smooth_sigma_time", ge=0),
        nonrigid=bool(nonrigid),
        block_size=block_size,
        max_shift_nonrigid=max_shift_nonrigid,
        snr_thresh=check_number(snr_thresh, "snr_thresh", ge=0),
    )
    n_ref = check_int(n_reference_frames, "n_reference_frames", min_value=1)
    if bidiphase is not None:
        bidiphase = check_int(bidiphase, "bidiphase", min_value=-lx // 2, max_value=lx // 2)
    return {"settings": settings, "n_reference_frames": n_ref, "bidiphase": bidiphase}


def _select_channel(video: xr.DataArray, channel: Any) -> xr.DataArray:
    if "channel" not in video.dims:
        if channel is not None:
            raise ValueError(f"channel={channel!r} given, but the video has no 'channel' dim (dims {video.dims})")
        return video
    if channel is None:
        if video.sizes["channel"] == 1:
            return video.isel(channel=0)
        raise ValueError(f"the video has {video.sizes['channel']} channels: say which one to register on, "
                         f"e.g. channel=0 (the shifts are applied to all)")
    if "channel" in video.coords and channel in video.coords["channel"].values.tolist():
        return video.sel(channel=channel)
    if isinstance(channel, (int, np.integer)) and not isinstance(channel, bool) \
            and -video.sizes["channel"] <= channel < video.sizes["channel"]:
        return video.isel(channel=int(channel))
    raise ValueError(f"channel must be a channel label or index of the video "
                     f"({video.sizes['channel']} channels), got {channel!r}")


def _computed_from(reference: da.Array, data: da.Array) -> bool:
    """Whether ``reference``'s graph reads ``data`` (a reference estimate_motion built from this recording)."""
    return data.name in reference.__dask_graph__().layers


def _reference_input(reference: Any, ly: int, lx: int) -> da.Array:
    """The given reference as a one-chunk dask array of float32 ``(ly, lx)``, lazy if it was."""
    if isinstance(reference, xr.DataArray):
        reference = reference.data
    if isinstance(reference, da.Array):
        ref = reference
    else:
        try:
            arr = np.asarray(reference)
        except Exception as exc:  # noqa: BLE001 -- anything numpy cannot take
            raise TypeError(f"reference must be an image array, got {type(reference).__name__}") from exc
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"reference must be a numeric image, got dtype {arr.dtype}")
        ref = da.from_array(arr, chunks=-1)
    if ref.shape != (ly, lx):
        raise ValueError(f"reference must have the frame's shape ({ly}, {lx}), got {ref.shape}")
    if ref.dtype.kind not in "biuf":
        raise TypeError(f"reference must be a numeric image, got dtype {ref.dtype}")
    return ref.astype(np.float32).rechunk(-1)


# --------------------------------------------------------------------------------------------
# estimate


def estimate_motion(
    video: xr.DataArray,
    *,
    reference: Any = None,
    nonrigid: bool = False,
    block_size: tuple[int, int] = (128, 128),
    max_shift: float = 0.1,
    max_shift_nonrigid: float = 5.0,
    smooth_sigma: float = 1.15,
    smooth_sigma_time: float = 0.0,
    subpixel: int = 10,
    snr_thresh: float = 1.2,
    n_reference_frames: int = 300,
    bidiphase: int | None = None,
    channel: Any = None,
    spatial_taper: float = SPATIAL_TAPER,
) -> xr.Dataset:
    """Rigid (and piecewise-rigid) motion of every frame against a reference, lazily: suite2p's registration.

    Each frame, tapered at its borders and clipped to the reference's 1st-99th
    percentiles, is phase-correlated with the reference (both spectra
    whitened, the reference's smoothed by a Gaussian of ``smooth_sigma``
    pixels); the peak within ``max_shift`` gives the rigid shift, to
    ``1 / subpixel`` pixel by Kriging interpolation of the correlation around
    it. With ``nonrigid=True``, the frame rolled by its whole-pixel rigid shift
    is cut into overlapping blocks (``block_size``), each correlated with the
    reference's block; a block whose peak is weak (``snr_thresh``) takes the
    correlation of its neighbours, smoothed once or twice; block peaks are
    subpixel too. Settings map to suite2p's as in :mod:`fluoxr.motion`.

    Parameters
    ----------
    video : DataArray
        ``(time, [channel,] y, x)``, whole frames in every chunk.
    reference : array, optional
        ``(y, x)`` image to register to. Default: computed from
        ``n_reference_frames`` evenly spaced frames (the mean of the most
        correlated ones, refined 8 times), in one task.
    nonrigid : bool
        Also estimate block displacements.
    block_size : (int, int)
        Block height and width in pixels (``ceil(1.5 L / size)`` overlapping blocks per side).
    max_shift : float
        Largest rigid shift: a fraction of the smaller side when < 1, pixels otherwise.
    max_shift_nonrigid : float
        Largest block shift beyond the rigid one, pixels.
    smooth_sigma : float
        Gaussian smoothing of the reference spectrum, pixels.
    smooth_sigma_time : float
        Gaussian smoothing of the correlation maps along time, frames (0: none).
    subpixel : int
        Peaks to ``1 / subpixel`` pixel; 1 gives whole pixels (suite2p's rigid step).
    snr_thresh : float
        Blocks with a peak-to-background ratio below it borrow their neighbours' correlation.
    n_reference_frames : int
        Frames the reference is computed from (suite2p's ``nimg_init``).
    bidiphase : int, optional
        x offset of odd lines (bidirectional scanning): None estimates it from
        the reference frames, 0 means none.
    channel : label or int, optional
        The channel to estimate on, for a video with a ``channel`` dim.
    spatial_taper : float
        Slope of the border taper, pixels (suite2p's ``spatial_taper``).

    Returns
    -------
    Dataset
        ``dy``, ``dx`` (pixels, float32) and ``corr`` (peak correlation) along
        ``time``; ``reference`` ``(y, x)``; ``bidiphase`` (0-d, the offset used);
        with ``nonrigid``, ``dy_block`` and ``dx_block`` ``(time, block)`` (total
        displacements, suite2p's ``yoff + yoff1``) with the block centres
        ``block_y``, ``block_x`` (pixels) as coords. The attrs record the
        settings. Everything is lazy.

    Examples
    --------
    >>> import fluoxr
    >>> from fluoxr.testing import moving_video
    >>> video, truth = moving_video(n_frames=8, shape=(64, 64), seed=0)
    >>> motion = fluoxr.estimate_motion(video, n_reference_frames=8, bidiphase=0)
    >>> sorted(motion.data_vars)
    ['bidiphase', 'corr', 'dx', 'dy', 'reference']
    >>> err = motion.dy - truth.dy          # the computed reference sits at the frames' mean position
    >>> bool(abs(err - err.mean()).max() < 0.2)
    True
    """
    video = check_video(video, allowed_extra_dims=("channel",), whole_frames=True)
    frames = _select_channel(video, channel)
    n, ly, lx = frames.shape
    checked = _check_settings(ly, lx, nonrigid=nonrigid, block_size=block_size, max_shift=max_shift,
                              max_shift_nonrigid=max_shift_nonrigid, smooth_sigma=smooth_sigma,
                              smooth_sigma_time=smooth_sigma_time, subpixel=subpixel, snr_thresh=snr_thresh,
                              n_reference_frames=n_reference_frames, bidiphase=bidiphase,
                              spatial_taper=spatial_taper)
    settings = checked["settings"]
    given_bidi = checked["bidiphase"]
    n_ref = min(checked["n_reference_frames"], n)
    data = frames.data
    if not isinstance(data, da.Array):
        data = da.from_array(data, chunks=(video.chunks[0] if video.chunks else -1, -1, -1))

    # the sample, the bidirectional phase, the reference and its constants: one small chain of tasks
    ref_input = None if reference is None else _reference_input(reference, ly, lx)
    sample = None
    if ref_input is None or given_bidi is None:
        idx = np.linspace(0, n, 1 + n_ref, dtype=int)[:-1]
        # optimize_graph=False: a fused copy of the input graph would clash with the unfused one the chunks use
        # in the recording's dtype (uint16: half of float32); the kernels convert batch by batch
        sample = gather_frames(data, idx).rechunk(-1).to_delayed(optimize_graph=False).ravel()[0]
    bidi = dask.delayed(_bidiphase_of, pure=True)(sample, given_bidi) if given_bidi is None else given_bidi
    ref_settings = {k: settings[k] for k in ("max_shift", "smooth_sigma", "spatial_taper_slope")}
    if ref_input is None:
        ref_task = dask.delayed(_reference_of, pure=True)(sample, bidi, ref_settings)
        ref = da.from_delayed(ref_task, (ly, lx), dtype=np.float32, meta=np.empty((0, 0), np.float32))
    else:
        ref = ref_input
        ref_task = ref.to_delayed(optimize_graph=False).ravel()[0]
    # the Delayed, not the array: a dask array given to a delayed call is optimised into a renamed copy,
    # and the reference would be computed twice
    prep = dask.delayed(_prepare, pure=True)(ref_task, bidi, settings)

    blocks = K.make_blocks(ly, lx, settings["block_size"]) if settings["nonrigid"] else None
    nb = len(blocks.ystart) * len(blocks.xstart) if blocks is not None else 0
    ncols = 3 + 2 * nb
    # the reads wait for a reference computed from the recording (else dask reads every chunk while it runs);
    # a given reference is ready at once, and binding a derived recording to an unrelated barrier would clone
    # its whole graph for nothing
    bound = after(data, ref) if ref_input is None else data
    rows = apply_temporal(bound, _ESTIMATE, dtype=np.float32, shared=[prep],
                          chunks=(bound.chunks[0], (1,), (ncols,)),
                          meta=np.empty((0, 0, 0), np.float32), smooth_sigma_time=settings["smooth_sigma_time"])
    rows = rows[:, 0, :]

    time = frames.coords["time"] if "time" in frames.coords else None
    coords: dict[str, Any] = {}
    if time is not None:
        coords["time"] = time
    for d in ("y", "x"):
        if d in frames.coords:
            coords[d] = frames.coords[d]
    out = xr.Dataset(
        {
            "dy": (("time",), rows[:, 0]),
            "dx": (("time",), rows[:, 1]),
            "corr": (("time",), rows[:, 2]),
            "reference": (("y", "x"), ref),
            "bidiphase": ((), da.from_delayed(dask.delayed(int)(bidi), (), dtype=np.int64)
                          if given_bidi is None else da.from_array(np.int64(given_bidi))),
        },
        coords=coords,
    )
    if blocks is not None:
        gy, gx = np.meshgrid(blocks.centre_y, blocks.centre_x, indexing="ij")
        out["dy_block"] = (("time", "block"), rows[:, 3:3 + nb])
        out["dx_block"] = (("time", "block"), rows[:, 3 + nb:3 + 2 * nb])
        out = out.assign_coords(block_y=("block", gy.ravel()), block_x=("block", gx.ravel()))
        out.attrs["n_blocks"] = [len(blocks.ystart), len(blocks.xstart)]
        out.attrs["block_size"] = list(blocks.size)
    else:
        out.attrs["block_size"] = list(settings["block_size"])
    out["dy"].attrs = {"units": "pixels", "long_name": "displacement of the frame's content along y"}
    out["dx"].attrs = {"units": "pixels", "long_name": "displacement of the frame's content along x"}
    out.attrs.update({
        "nonrigid": settings["nonrigid"],
        "max_shift": settings["max_shift"],
        "max_shift_pixels": K.max_shift_pixels(settings["max_shift"], ly, lx),
        "max_shift_nonrigid": settings["max_shift_nonrigid"],
        "smooth_sigma": settings["smooth_sigma"],
        "smooth_sigma_time": settings["smooth_sigma_time"],
        "subpixel": settings["subpixel"],
        "snr_thresh": settings["snr_thresh"],
        "spatial_taper": settings["spatial_taper_slope"],
        "n_reference_frames": n_ref,
        "reference_given": ref_input is not None,
        "bidiphase": "estimated" if given_bidi is None else given_bidi,
        "channel": None if channel is None else (channel if isinstance(channel, (int, str)) else str(channel)),
        "frame_shape": [ly, lx],
        "sign": "suite2p yoff/xoff: registered(y, x) = frame(y + dy, x + dx)",
    })
    return out


# --------------------------------------------------------------------------------------------
# apply


def _motion_table(motion: Any, n: int) -> tuple[Any, dict[str, Any]]:
    """``(table, info)``: an ``(n, ncols)`` array (dask or NumPy) of dy, dx, corr[, blocks] and how to apply it."""
    import pandas as pd

    info: dict[str, Any] = {"nonrigid": False, "centre_y": None, "centre_x": None, "bidiphase": 0,
                            "reference": None}
    if isinstance(motion, (str, os.PathLike)):
        path = os.fspath(motion)
        if not os.path.exists(path):
            raise ValueError(f"motion file {path!r} does not exist")
        if os.path.isdir(path):
            from .io import open_result

            motion = open_result(path)
        else:
            try:
                motion = pd.read_csv(path)
            except Exception as exc:  # noqa: BLE001 -- any unreadable table
                raise ValueError(f"motion file {path!r} is not a CSV table of dy, dx: {exc}") from exc
    if isinstance(motion, xr.Dataset):
        missing = [v for v in ("dy", "dx") if v not in motion]
        if missing:
            raise ValueError(f"motion must have variables 'dy' and 'dx', missing {missing}")
        length = motion["dy"].shape[0]
        if length != n:
            raise ValueError(f"motion has shifts for {length} frames, the video has {n}")
        cols = [motion["dy"].data, motion["dx"].data,
                motion["corr"].data if "corr" in motion else da.zeros(n, dtype=np.float32)]
        if "dy_block" in motion and "dx_block" in motion:
            by = np.asarray(motion["block_y"].values, np.float64)
            bx = np.asarray(motion["block_x"].values, np.float64)
            cy, cx = np.unique(by), np.unique(bx)
            if cy.size * cx.size != by.size:
                raise ValueError("motion's block centres (block_y, block_x) are not a grid")
            info.update(nonrigid=True, centre_y=cy, centre_x=cx)
            cols += [motion["dy_block"].data, motion["dx_block"].data]
        if "bidiphase" in motion:
            info["bidiphase"] = motion["bidiphase"].data
        if "reference" in motion and isinstance(motion["reference"].data, da.Array):
            info["reference"] = motion["reference"].data
        parts = [c if isinstance(c, da.Array) else da.from_array(np.asarray(c)) for c in cols]
        parts = [p.astype(np.float32).reshape(n, -1) for p in parts]
        return da.concatenate(parts, axis=1), info
    if isinstance(motion, Mapping) and not isinstance(motion, pd.DataFrame):
        motion = pd.DataFrame({k: np.asarray(v).ravel() for k, v in motion.items() if k in ("dy", "dx")}) \
            if all(k in motion for k in ("dy", "dx")) else motion
    if isinstance(motion, pd.DataFrame):
        missing = [c for c in ("dy", "dx") if c not in motion.columns]
        if missing:
            raise ValueError(f"motion must have columns 'dy' and 'dx', missing {missing}")
        if len(motion) != n:
            raise ValueError(f"motion has shifts for {len(motion)} frames, the video has {n}")
        table = np.zeros((n, 3), np.float32)
        for j, c in enumerate(("dy", "dx")):
            v = pd.to_numeric(motion[c], errors="coerce").to_numpy(np.float64)
            if not np.isfinite(v).all():
                raise ValueError(f"motion column {c!r} must hold finite numbers")
            table[:, j] = v
        return table, info
    if isinstance(motion, Mapping):
        raise ValueError(f"motion must have 'dy' and 'dx', got keys {sorted(map(str, motion))}")
    raise TypeError("motion must be the Dataset of estimate_motion (or a saved one), a DataFrame or dict with "
                    f"'dy' and 'dx', or a CSV path; got {type(motion).__name__}")


def apply_motion(video: xr.DataArray, motion: Any) -> xr.DataArray:
    """The registered video, lazily: every frame moved by ``(-dy, -dx)`` (or its block field), float32.

    Rigid shifts are applied by bilinear interpolation (subpixel; a whole-pixel
    shift copies pixels exactly): for a shift that is the same over the frame
    it is two separable passes, far cheaper than a Fourier shift, and it
    neither wraps content around the frame nor rings. Nonrigid motion is
    interpolated from the block centres to every pixel (bilinear, constant
    beyond the outer centres, as suite2p) and the frame resampled
    bilinearly at ``(y + dy(y, x), x + dx(y, x))``. Samples beyond the frame
    take the nearest border pixel. The bidirectional offset, when there is
    one, is corrected first. A video with channels gets the same shifts on
    every channel.

    Parameters
    ----------
    video : DataArray
        ``(time, [channel,] y, x)``, whole frames in every chunk.
    motion : Dataset, DataFrame, dict or path
        :func:`estimate_motion`'s Dataset (or one saved with ``fluoxr.save``
        and its path, or ``fluoxr.open_result`` of it), or rigid shifts of
        your own: a DataFrame or dict with ``dy`` and ``dx`` (one row per frame),
        or the path of a CSV file with those columns.

    Returns
    -------
    DataArray
        Same dims, coords and attrs as ``video``, float32, chunked like it.

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> v = fluoxr.as_video(np.arange(2 * 4 * 4, dtype=np.uint16).reshape(2, 4, 4))
    >>> r = fluoxr.apply_motion(v, {"dy": [0, 1], "dx": [0, 0]})
    >>> r.dtype, r[1, 0].values.tolist()
    (dtype('float32'), [20.0, 21.0, 22.0, 23.0])
    """
    video = check_video(video, allowed_extra_dims=("channel",), whole_frames=True)
    n = video.sizes["time"]
    table, info = _motion_table(motion, n)
    data = video.data
    if not isinstance(data, da.Array):
        data = da.from_array(data, chunks=-1)
    if info["reference"] is not None and _computed_from(info["reference"], data):
        data = after(data, info["reference"])  # the estimate's keys: one read of a chunk serves both
    tchunks = data.chunks[0]
    if isinstance(table, da.Array):
        table = table.rechunk({0: tchunks, 1: -1})
    else:
        table = da.from_array(table, chunks=(tchunks, -1))
    bidi = info["bidiphase"]
    bidi = bidi if isinstance(bidi, da.Array) else da.from_array(np.int64(bidi))
    kernels = _backend.dispatch_for(data)
    ind = tuple(range(data.ndim))
    out = da.blockwise(
        _apply_chunk, ind, data, ind, table, (0, data.ndim), bidi, (),
        concatenate=True, dtype=np.float32, meta=_backend.meta_like(data, data.ndim, np.float32),
        kernels=kernels, nonrigid=info["nonrigid"], centre_y=info["centre_y"], centre_x=info["centre_x"],
        name="fluoxr-motion-apply-" + dask.base.tokenize(data.name, table.name, bidi.name, kernels, info["nonrigid"],
                                                          info["centre_y"], info["centre_x"]),
    )
    return video.copy(data=out)


def register(video: xr.DataArray, *, return_motion: bool = False, **estimate_kwargs: Any) -> Any:
    """The registered video (:func:`estimate_motion` then :func:`apply_motion`), lazily.

    Parameters
    ----------
    video : DataArray
    return_motion : bool
        Also return the motion Dataset: ``(registered, motion)``.
    **estimate_kwargs
        Passed to :func:`estimate_motion` (``nonrigid``, ``channel``, ...).

    Returns
    -------
    DataArray, or (DataArray, Dataset) with ``return_motion=True``
        Computing both together (``dask.compute(registered, motion)``) reads
        each chunk once.

    Examples
    --------
    >>> import fluoxr
    >>> from fluoxr.testing import moving_video
    >>> video, truth = moving_video(n_frames=6, shape=(48, 48), seed=1)
    >>> registered, motion = fluoxr.register(video, return_motion=True, bidiphase=0)
    >>> registered.shape == video.shape, registered.dtype
    (True, dtype('float32'))
    """
    motion = estimate_motion(video, **estimate_kwargs)
    registered = apply_motion(video, motion)
    return (registered, motion) if return_motion else registered
