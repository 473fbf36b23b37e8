"""Slow drift of long recordings (SOFI, localisation microscopy), estimated from block means, corrected lazily.

A SOFI acquisition of thousands of frames drifts by pixels while each frame
holds too few photons to register alone. :func:`estimate_drift` registers
the *mean images of blocks of frames* instead:

1. the recording is cut into blocks of ``block_frames`` frames and the mean
   image of each block is computed in one read (a reduction over fixed
   segments, :func:`fluoxr.drivers.reduce_time` with ``segments``);
2. each block mean is registered against the reference (by default the
   first block's mean) with :func:`fluoxr.estimate_motion` on the small stack
   of means: whitened phase correlation, subpixel peak;
3. the block shifts, placed at the blocks' centre frames, are interpolated
   to every frame: ``"linear"`` (piecewise linear, the end segments' slopes
   continued before the first and after the last centre) or ``"cubic"`` (a
   not-a-knot cubic spline, :class:`scipy.interpolate.CubicSpline`, which
   needs four blocks; with fewer, linear).

:func:`drift_correct` applies them with :func:`fluoxr.apply_motion`
(subpixel, lazily): the corrected recording is computed as it is read, by
:func:`fluoxr.sofi_images` for example, and never stored unless saved.

The shifts follow :func:`fluoxr.estimate_motion`'s sign (suite2p's ``yoff``,
``xoff``: the content is displaced by ``(dy, dx)`` from the reference;
correction moves it by ``(-dy, -dx)``). They are relative to the reference
(the first block's mean: the drift at that block's centre is 0), so they
differ from a drift measured from frame 0 by a constant.

Examples
--------
>>> from fluoxr import datasets, drift_correct, sofi_images
>>> video, truth = datasets.blinking_emitters(n_frames=400, shape=(32, 32), n_emitters=3, drift="drift")
>>> corrected = drift_correct(video, block_frames=100)
>>> sofi_images(corrected, 2).moments.shape
(2, 32, 32)
"""

from __future__ import annotations

import logging
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from ._validate import check_choice, check_int
from ._video import as_video, check_video
from .drivers import reduce_time

logger = logging.getLogger(__name__)

__all__ = ["drift_correct", "estimate_drift"]

INTERPOLATIONS = ("linear", "cubic")


def block_edges(n_frames: int, block_frames: int) -> np.ndarray:
    """Frame edges of blocks of ``block_frames`` frames; a last block shorter than half a block joins the one before.

    Examples
    --------
    >>> block_edges(9, 4).tolist(), block_edges(11, 4).tolist(), block_edges(3, 4).tolist()
    ([0, 4, 9], [0, 4, 8, 11], [0, 3])
    """
    edges = list(range(0, n_frames, block_frames)) + [n_frames]
    if len(edges) > 2 and edges[-1] - edges[-2] < block_frames / 2:
        # a short tail would give a noisy mean, and a shift that the interpolation trusts as much as the others
        del edges[-2]
    return np.asarray(edges, np.int64)


def interpolate_shifts(frames: np.ndarray, centres: np.ndarray, shifts: np.ndarray, kind: str = "linear") -> np.ndarray:
    """Block shifts ``(n_blocks, k)`` at frame ``centres`` interpolated to ``frames``: ``(len(frames), k)``.

    ``"linear"`` continues the first and last segments beyond the end
    centres (a steady drift stays steady up to the recording's ends);
    ``"cubic"`` is a not-a-knot cubic spline (four blocks or more, else
    linear), extrapolated by its end polynomials. One block: its shift
    everywhere.

    Examples
    --------
    >>> interpolate_shifts(np.arange(5), np.array([1.0, 3.0]), np.array([[0.0], [1.0]])).ravel().tolist()
    [-0.5, 0.0, 0.5, 1.0, 1.5]
    """
    frames = np.asarray(frames, np.float64)
    centres = np.asarray(centres, np.float64)
    shifts = np.asarray(shifts, np.float64).reshape(len(centres), -1)
    if len(centres) == 1:
        return np.repeat(shifts, len(frames), axis=0)
    if kind == "cubic" and len(centres) >= 4:
        from scipy.interpolate import CubicSpline

        return CubicSpline(centres, shifts, axis=0, bc_type="not-a-knot", extrapolate=True)(frames)
    out = np.empty((len(frames), shifts.shape[1]))
    for j in range(shifts.shape[1]):
        out[:, j] = np.interp(frames, centres, shifts[:, j])
        # np.interp holds the end values: continue the end slopes instead
        lo, hi = frames < centres[0], frames > centres[-1]
        slope0 = (shifts[1, j] - shifts[0, j]) / (centres[1] - centres[0])
        slope1 = (shifts[-1, j] - shifts[-2, j]) / (centres[-1] - centres[-2])
        out[lo, j] = shifts[0, j] + slope0 * (frames[lo] - centres[0])
        out[hi, j] = shifts[-1, j] + slope1 * (frames[hi] - centres[-1])
    return out


def _interpolate_block(t: np.ndarray, block_shifts: np.ndarray, *, centres: np.ndarray, kind: str) -> np.ndarray:
    return interpolate_shifts(t, centres, block_shifts, kind)


def estimate_drift(
    video: Any,
    *,
    block_frames: int = 500,
    reference: Any = "first",
    interpolation: str = "linear",
    max_shift: float = 0.1,
    smooth_sigma: float = 1.15,
    subpixel: int = 20,
    channel: int | None = None,
) -> xr.Dataset:
    """Slow drift of every frame, from the mean images of blocks of frames (lazy).

    Parameters
    ----------
    video : xarray.DataArray
        ``("time", ["channel"], "y", "x")`` recording.
    block_frames : int
        Frames per block (the last block takes a tail shorter than half a
        block). Each block's mean must show the structure sharply enough to
        register: a few hundred frames for SOFI data. The drift within a
        block is taken as linear (or cubic) in time.
    reference : "first", "middle" or 2-D array
        What the block means are registered against: the first block's mean
        (the default: the drift is measured from the start of the
        acquisition), the middle block's mean (the largest shift is then
        about half the total drift, so less of the frame leaves the field
        of view), or an image of the frame's shape (a lazy one stays lazy).
    interpolation : {"linear", "cubic"}
        From block centres to every frame; see the module docstring.
    max_shift, smooth_sigma, subpixel, channel
        As :func:`fluoxr.estimate_motion` (the largest drift as a fraction
        of the frame when < 1, else in pixels; the Gaussian smoothing of the
        phase correlation; the subpixel factor, 20: 0.05 px steps; the
        channel registered in a multi-channel recording).

    Returns
    -------
    xarray.Dataset
        ``dy``, ``dx`` along ``time`` (lazy, chunked as the video), the
        block shifts ``block_dy``, ``block_dx`` and ``block_corr`` along
        ``block`` (coords ``block_start``, ``block_stop``, ``block_centre``
        in frames), and the ``reference`` image; ready for
        :func:`fluoxr.apply_motion` (rigid: the block shifts are not
        nonrigid ``dy_block``, which ``apply_motion`` would read as blocks of
        the frame).

    Examples
    --------
    >>> from fluoxr import datasets, estimate_drift
    >>> video, truth = datasets.blinking_emitters(n_frames=400, shape=(32, 32), n_emitters=3, drift="drift")
    >>> drift = estimate_drift(video, block_frames=100)
    >>> drift.dy.shape, drift.block_dy.shape
    ((400,), (4,))
    """
    from .sofi.moments import mean_reduction

    video = check_video(video, "video")
    if not isinstance(video.data, da.Array):
        video = as_video(video)
    block_frames = check_int(block_frames, "block_frames", min_value=1)
    interpolation = check_choice(interpolation, "interpolation", INTERPOLATIONS)
    n = video.sizes["time"]
    edges = block_edges(n, block_frames)
    n_blocks = len(edges) - 1
    if n_blocks < 2:
        logger.warning("estimate_drift: %d frames make one block of block_frames=%d; no drift is measured",
                       n, block_frames)
    if isinstance(reference, str):
        reference = check_choice(reference, "reference", ("first", "middle"))
    # (block, row, ...) -> (block, ...): the mean reduction has one row
    means = reduce_time(video.data, mean_reduction(skipna=True), segments=edges)[:, 0]
    centres = (edges[:-1] + edges[1:] - 1) / 2.0
    fps = video.attrs.get("fps")
    mean_video = xr.DataArray(means, dims=video.dims, coords={k: v for k, v in video.coords.items()
                                                              if "time" not in v.dims},
                              attrs=dict(video.attrs), name="block_mean")
    mean_video = mean_video.assign_coords(time=centres / fps if fps else centres)
    if isinstance(reference, str):
        ref = mean_video.isel(time=0 if reference == "first" else n_blocks // 2)
        if "channel" in ref.dims:
            ref = ref.isel(channel=0 if channel is None else channel)
    else:
        ref = reference
    from . import estimate_motion

    # bidiphase=0: drifting recordings are camera images, not bidirectionally scanned lines
    blocks = estimate_motion(mean_video, reference=ref, max_shift=max_shift, smooth_sigma=smooth_sigma,
                             subpixel=subpixel, n_reference_frames=n_blocks, channel=channel, bidiphase=0)
    block_shifts = da.stack([blocks.dy.data, blocks.dx.data], axis=1).rechunk(-1)
    t = da.arange(n, chunks=(video.data.chunks[0],))
    per_frame = da.blockwise(_interpolate_block, "tc", t, "t", block_shifts, "bc", concatenate=True,
                             new_axes={}, dtype=np.float64, meta=np.empty((0, 0), np.float64),
                             centres=centres, kind=interpolation)
    time = video.time
    block = {"block_start": ("block", edges[:-1]), "block_stop": ("block", edges[1:]),
             "block_centre": ("block", centres)}
    out = xr.Dataset(
        {"dy": (("time",), per_frame[:, 0], {"units": "px", "long_name": "drift along y"}),
         "dx": (("time",), per_frame[:, 1], {"units": "px", "long_name": "drift along x"}),
         "block_dy": (("block",), blocks.dy.data, {"units": "px"}),
         "block_dx": (("block",), blocks.dx.data, {"units": "px"}),
         "reference": blocks.reference.variable},
        coords={"time": time, **block},
        attrs={"block_frames": block_frames, "interpolation": interpolation,
               "reference": reference if isinstance(reference, str) else "image",
               **({"fps": fps} if fps else {})},
    )
    if "corr" in blocks:
        out["block_corr"] = (("block",), blocks.corr.data)
    return out


def drift_correct(
    video: Any,
    *,
    block_frames: int = 500,
    reference: Any = "first",
    interpolation: str = "linear",
    max_shift: float = 0.1,
    smooth_sigma: float = 1.15,
    subpixel: int = 20,
    channel: int | None = None,
) -> xr.DataArray:
    """The recording with its slow drift removed, lazily (subpixel shifts of every frame).

    :func:`estimate_drift` (its parameters) then :func:`fluoxr.apply_motion`:
    the block means are computed when the result is first read, and each
    frame is shifted as it is read, so ``sofi_images(drift_correct(video),
    6)`` reads the recording twice and writes nothing. The shifts are in
    ``result.attrs`` only as their parameters; keep ``estimate_drift``'s
    Dataset to look at them (:func:`fluoxr.plot.show_motion`).

    Memory: the second read of every chunk waits for the shifts of every
    frame (:func:`fluoxr.drivers.gather.after`), so a chunk is read only
    when it can be shifted and passed on at once; without that wait dask's
    scheduler reads the chunks ahead of their shifts and holds them (peak
    0.99 GB for 20,000 frames of 128 x 128, against 0.42 GB with it and
    0.41 GB for 5,000 frames: flat in the length, ``benchmarks/drift.py``).

    Returns
    -------
    xarray.DataArray
        Same dims, coords and attrs as ``video`` (float32 for integer input).

    Examples
    --------
    >>> from fluoxr import datasets, drift_correct
    >>> video, _ = datasets.blinking_emitters(n_frames=300, shape=(32, 32), n_emitters=3, drift="drift")
    >>> drift_correct(video, block_frames=100).dtype
    dtype('float32')
    """
    drift = estimate_drift(video, block_frames=block_frames, reference=reference, interpolation=interpolation,
                           max_shift=max_shift, smooth_sigma=smooth_sigma, subpixel=subpixel, channel=channel)
    from . import apply_motion
    from .drivers.gather import after

    video = check_video(video, "video")
    shifts = drift[["dy", "dx"]]
    # the frames are read again only once every shift is known: read, shifted and reduced chunk by chunk
    bound = video.copy(data=after(video.data if isinstance(video.data, da.Array) else as_video(video).data,
                                  shifts.dy.data + shifts.dx.data))
    out = apply_motion(bound, shifts)
    out.attrs.update(drift_block_frames=drift.attrs["block_frames"], drift_interpolation=interpolation)
    return out
