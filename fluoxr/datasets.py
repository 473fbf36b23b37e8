"""Synthetic recordings with ground truth, generated lazily chunk by chunk.

Every recording is a function of its parameters and ``seed`` alone: frame
``t`` draws its noise from a random generator seeded with ``(seed, stream,
t)``, so the pixels do not depend on the chunking, and any frame range can be
generated on its own. A 50 GB recording can be written to zarr with
:func:`fluoxr.save` in a few hundred MB of memory.

Each function returns ``(video, truth)``: a lazy video in fluoxr's data model
and a frozen dataclass with the ground truth.

Examples
--------
>>> from fluoxr import datasets
>>> video, truth = datasets.blinking_emitters(n_frames=50, shape=(32, 32), n_emitters=4)
>>> video.dims, truth.states.shape
(('time', 'y', 'x'), (4, 50))
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from ._video import ChunksLike, as_video, normalize_chunks_arg
from ._validate import check_int, check_number

__all__ = [
    "blinking_emitters",
    "calcium_neurons",
    "Motion",
    "MotionTruth",
    "MOTION_PRESETS",
    "oscillating_sheet",
    "BlinkingTruth",
    "CalciumTruth",
    "SheetTruth",
]

# independent random streams of one seed
_NOISE, _SPIKES, _RED = 1, 2, 3
_MOTION = 6  # (seed, 5) is the neuropil modulation's


def _frame_rng(seed: int, stream: int, t: int) -> np.random.Generator:
    return np.random.default_rng((int(seed), stream, int(t)))


def _noisy(expected: np.ndarray, read_noise: float, rng: np.random.Generator, dtype: np.dtype) -> np.ndarray:
    """Poisson shot noise plus Gaussian read noise, rounded and clipped to the dtype's range."""
    counts = rng.poisson(np.maximum(expected, 0)).astype(np.float64)
    if read_noise > 0:
        counts += rng.normal(0.0, read_noise, size=counts.shape)
    if np.dtype(dtype).kind in "iu":
        info = np.iinfo(dtype)
        counts = np.clip(np.rint(counts), info.min, info.max)
    return counts.astype(dtype)


def _time_blocks(n_frames: int, frame_shape: tuple[int, ...], dtype: np.dtype, chunks: ChunksLike) -> da.Array:
    """A dask array of frame indices, chunked along time as the video will be."""
    dims = ("time",) + tuple(f"_{i}" for i in range(len(frame_shape)))
    if isinstance(chunks, Mapping):
        chunks = {"time": chunks["time"]} if "time" in chunks else None
    spec = normalize_chunks_arg(chunks, dims, (n_frames,) + tuple(frame_shape), np.dtype(dtype).itemsize)
    return da.arange(n_frames, chunks=(spec[0],))


def _gauss_psf(yy: np.ndarray, xx: np.ndarray, y0: float, x0: float, sigma: float) -> np.ndarray:
    """Gaussian PSF integrating to 1, sampled at pixel centres."""
    return np.exp(-((yy - y0) ** 2 + (xx - x0) ** 2) / (2 * sigma**2)) / (2 * np.pi * sigma**2)


def _packing_limit(width: float, height: float, min_dist: float) -> float:
    """Upper bound on the number of points ``min_dist`` apart in a ``width`` x ``height`` box.

    Discs of radius ``min_dist / 2`` around the points do not overlap and lie in
    the box grown by ``min_dist / 2`` on every side; no packing of equal discs
    is denser than the hexagonal one (``pi / sqrt(12)``), so at most
    ``(width + d) * (height + d) * 2 / (sqrt(3) * d**2)`` points fit; along a
    line (a box of zero width or height) at most ``length / d + 1``.
    """
    if min_dist <= 0:
        return math.inf
    if width <= 0 or height <= 0:
        return max(width, height, 0.0) / min_dist + 1
    return (width + min_dist) * (height + min_dist) * 2 / (math.sqrt(3) * min_dist**2)


def _lattice(width: float, height: float, min_dist: float) -> np.ndarray:
    """The largest of a few lattices (hexagonal either way, square) of ``min_dist`` spacing in the box, centred."""
    best = np.empty((0, 2))
    eps = 1e-9  # a lattice that fits exactly must not lose a row to rounding
    for rows_along_x, hexagonal in ((True, True), (False, True), (True, False)):
        w, h = (width, height) if rows_along_x else (height, width)
        dy = min_dist * (math.sqrt(3) / 2 if hexagonal else 1.0)
        n_rows = int(math.floor(h / dy + eps)) + 1 if dy > 0 else 1
        pts = []
        for r in range(n_rows):
            shift = min_dist / 2 if hexagonal and r % 2 else 0.0
            n_cols = int(math.floor((w - shift) / min_dist + eps)) + 1 if w >= shift else 0
            pts += [(r * dy, shift + c * min_dist) for c in range(n_cols)]
        if not pts:
            continue
        arr = np.array(pts, dtype=np.float64)
        arr += (np.array([h, w]) - arr.max(axis=0)) / 2  # centre the lattice: share the slack at both ends
        if not rows_along_x:
            arr = arr[:, ::-1]
        if len(arr) > len(best):
            best = arr
    return best


def _place(rng: np.random.Generator, n: int, shape: tuple[int, int], margin: float, min_dist: float, *,
           names: tuple[str, str] = ("n", "min_dist")) -> np.ndarray:
    """``n`` random (y, x) positions at least ``min_dist`` apart and ``margin`` from the border.

    Random sequential placement first (it is what the recordings made so far
    were drawn with, so they stay the same); where it jams before ``n``
    points, ``n`` sites of the densest lattice that fits are drawn and then
    shaken (random moves kept only while every distance stays at least
    ``min_dist``), so any request that a lattice holds succeeds, deterministic
    per ``rng``. ``names`` are the caller's argument names for ``n`` and
    ``min_dist``, for the errors.
    """
    lo = np.array([margin, margin])
    hi = np.array([shape[0] - 1 - margin, shape[1] - 1 - margin])
    if np.any(hi < lo):
        raise ValueError(f"shape {shape} is too small for objects of this size (margin {margin:.1f} px)")
    height, width = (hi - lo).tolist()
    limit = _packing_limit(width, height, min_dist)
    if n > limit:
        raise ValueError(
            f"cannot place {names[0]}={n} objects {names[1]}={min_dist:.1f} px apart in a shape={shape} frame "
            f"(centres {margin:.1f} px from the border): no more than {int(limit)} fit there; "
            f"use fewer objects, a smaller {names[1]} or a larger shape"
        )
    pts = np.empty((0, 2))
    tries = 0
    while len(pts) < n and tries <= 200 * n + 1000:
        p = lo + rng.random(2) * (hi - lo)
        if not len(pts) or np.hypot(*(pts - p).T).min() >= min_dist:
            pts = np.vstack([pts, p])
        tries += 1
    if len(pts) == n:
        return pts
    sites = _lattice(width, height, min_dist)
    if len(sites) < n:
        raise ValueError(
            f"cannot place {names[0]}={n} objects {names[1]}={min_dist:.1f} px apart in a shape={shape} frame "
            f"(centres {margin:.1f} px from the border): the densest lattice there holds {len(sites)} "
            f"(and no arrangement more than {int(limit)}); use fewer objects, a smaller {names[1]} or a larger shape"
        )
    pts = sites[np.sort(rng.choice(len(sites), size=n, replace=False))] + lo
    # shake the lattice so that it does not show; a move is kept only if it keeps every distance
    tol = min_dist * (1 - 1e-9)
    # sweeps bounded so that a large request stays well under a second (each move checks n distances)
    for _ in range(int(np.clip(2_000_000 // max(n * n, 1), 1, 50))):
        steps = rng.normal(0.0, min_dist / 4, size=(n, 2))
        for i in range(n):
            q = np.clip(pts[i] + steps[i], lo, hi)
            d = np.hypot(*(pts - q).T)
            d[i] = np.inf
            if d.min() >= tol:
                pts[i] = q
    return pts


# --------------------------------------------------------------------------------------------
# motion of the field of view (shared by every recording that moves)


@dataclass(frozen=True)
class Motion:
    """How the field of view of a synthetic recording moves.

    The rigid displacement ``(dy, dx)`` of frame ``t`` is a mean-reverting
    random walk (an AR(1) process: each frame keeps ``exp(-1 / (tau_s *
    fps))`` of the last displacement and adds a Gaussian step of
    ``step_px``; ``tau_s=None`` is a plain random walk), with jumps of
    ``jump_px`` (Gaussian, per axis) at ``jump_rate_hz`` on average, clipped
    to ``±max_px`` per axis, plus a constant drift ``velocity_px_per_s``.
    Frame 0 is not displaced (apart from the warp).

    With ``warp_px > 0`` a smooth nonrigid warp is added: each component
    is the sum of two waves of amplitude ``warp_px`` spanning the frame once
    (one along ``y``, one along ``x``, so the warp averages to zero over the
    frame and the rigid part is the frame's mean displacement), each
    oscillating with period ``warp_period_s`` and its own phase.

    Sign convention (suite2p's ``yoff``, ``xoff``, that of
    :func:`fluoxr.estimate_motion`): the content seen at ``(y, x)`` in the
    motionless recording is seen at ``(y + dy, x + dx)`` in the moving one,
    so registration moves every frame by ``(-dy, -dx)``.

    Examples
    --------
    >>> from fluoxr.datasets import Motion
    >>> Motion(step_px=0.2, jump_rate_hz=0.5).warp_px
    0.0
    """

    step_px: float = 0.1
    tau_s: float | None = 2.0
    jump_rate_hz: float = 0.0
    jump_px: float = 2.0
    max_px: float = 8.0
    velocity_px_per_s: tuple[float, float] = (0.0, 0.0)
    warp_px: float = 0.0
    warp_period_s: float = 4.0

    def __post_init__(self) -> None:
        check_number(self.step_px, "Motion.step_px", ge=0)
        if self.tau_s is not None:
            check_number(self.tau_s, "Motion.tau_s", gt=0)
        check_number(self.jump_rate_hz, "Motion.jump_rate_hz", ge=0)
        check_number(self.jump_px, "Motion.jump_px", ge=0)
        if not (isinstance(self.max_px, (int, float)) and self.max_px == math.inf):
            check_number(self.max_px, "Motion.max_px", ge=0)
        if not isinstance(self.velocity_px_per_s, (tuple, list)) or len(self.velocity_px_per_s) != 2:
            raise ValueError(f"Motion.velocity_px_per_s must be a (dy, dx) pair, got {self.velocity_px_per_s!r}")
        object.__setattr__(self, "velocity_px_per_s", (
            check_number(self.velocity_px_per_s[0], "Motion.velocity_px_per_s[0]"),
            check_number(self.velocity_px_per_s[1], "Motion.velocity_px_per_s[1]")))
        check_number(self.warp_px, "Motion.warp_px", ge=0)
        check_number(self.warp_period_s, "Motion.warp_period_s", gt=0)


#: named motions: ``"rigid"`` (brain-like jitter with a jump of ~2.5 px every ~3 s), ``"nonrigid"`` (the same
#: plus a warp of up to ±2 px), ``"drift"`` (a slow, steady drift with a faint wobble, as a SOFI acquisition)
MOTION_PRESETS: Mapping[str, Motion] = {
    # within ±5 px: inside estimate_motion's default max_shift (a tenth of the frame) from 64 px frames up
    "rigid": Motion(step_px=0.2, tau_s=2.0, jump_rate_hz=0.3, jump_px=2.5, max_px=5.0),
    "nonrigid": Motion(step_px=0.2, tau_s=2.0, jump_rate_hz=0.3, jump_px=2.5, max_px=5.0, warp_px=1.0),
    "drift": Motion(step_px=0.003, tau_s=None, velocity_px_per_s=(0.2, -0.15), max_px=math.inf),
}


def _warp_phases(seed: int) -> np.ndarray:
    """``(4, 2)`` phases (space, time) of the warp's waves: dy along x, dy along y, dx along y, dx along x."""
    return np.random.default_rng((seed, _MOTION, 1)).uniform(0, 2 * np.pi, (4, 2))


def _warp(t: np.ndarray, y: np.ndarray, x: np.ndarray, *, shape: tuple[int, int], warp_px: float,
          period_frames: float, phases: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The warp ``(wy, wx)`` at frames ``t`` and points ``(y, x)`` (broadcast together)."""
    space = (x, y, y, x)
    size = (shape[1], shape[0], shape[0], shape[1])
    waves = [np.sin(2 * np.pi * t / period_frames + phases[k, 1]) * np.sin(2 * np.pi * space[k] / size[k] + phases[k, 0])
             for k in range(4)]
    return warp_px * (waves[0] + waves[1]), warp_px * (waves[2] + waves[3])


def _rigid_path(n_frames: int, spec: Motion, fps: float, seed: int) -> np.ndarray:
    """``(n_frames, 2)`` rigid displacement of every frame (eager: two numbers per frame)."""
    from scipy.signal import lfilter

    rng = np.random.default_rng((seed, _MOTION, 0))
    steps = rng.normal(0.0, spec.step_px, (n_frames, 2)) if spec.step_px > 0 else np.zeros((n_frames, 2))
    if spec.jump_rate_hz > 0 and spec.jump_px > 0:
        jump = rng.random(n_frames) < spec.jump_rate_hz / fps
        steps += jump[:, None] * rng.normal(0.0, spec.jump_px, (n_frames, 2))
    steps[0] = 0.0
    keep = math.exp(-1.0 / (spec.tau_s * fps)) if spec.tau_s is not None else 1.0
    walk = np.clip(lfilter([1.0], [1.0, -keep], steps, axis=0), -spec.max_px, spec.max_px)
    return walk + np.arange(n_frames)[:, None] / fps * np.asarray(spec.velocity_px_per_s)


@dataclass(frozen=True)
class MotionTruth:
    """The true motion of a synthetic recording (``truth.motion``).

    Attributes
    ----------
    shifts : xarray.Dataset
        ``dy``, ``dx`` along ``time`` (pixels, in memory): the rigid
        displacement of every frame, in :func:`fluoxr.estimate_motion`'s sign
        convention (the content is moved by ``(dy, dx)``; registration moves
        it back), so ``fluoxr.apply_motion(video, truth.motion.shifts)``
        registers a rigidly moving recording. With a warp this is the frame's
        mean displacement.
    spec : Motion or None
        The motion drawn (None when the path was given as an array).

    Examples
    --------
    >>> from fluoxr import datasets
    >>> video, truth = datasets.calcium_neurons(n_frames=20, shape=(32, 32), n_cells=2, motion="nonrigid")
    >>> truth.motion.shifts.dy.shape, truth.motion.displacement([8.0, 24.0], [16.0, 16.0]).dy.shape
    ((20,), (20, 2))
    """

    shifts: xr.Dataset
    spec: Motion | None
    shape: tuple[int, int]
    fps: float
    phases: np.ndarray = field(repr=False)

    @property
    def warp_px(self) -> float:
        return 0.0 if self.spec is None else self.spec.warp_px

    def displacement(self, y: Any, x: Any) -> xr.Dataset:
        """True total displacement (rigid plus warp) at points ``(y, x)`` of the motionless frame.

        For block-wise (nonrigid) registration, pass the block centres: the
        content of the block centred on ``(y, x)`` moves by ``(dy, dx)``
        (suite2p's rigid plus block shift, ``yoff + yoff1``).

        Returns
        -------
        xarray.Dataset
            ``dy``, ``dx`` with dims ``("time", "point")``.
        """
        y = np.atleast_1d(np.asarray(y, np.float64))
        x = np.atleast_1d(np.asarray(x, np.float64))
        if y.ndim != 1 or y.shape != x.shape:
            raise ValueError(f"y and x must be 1-D and of the same length, got shapes {y.shape} and {x.shape}")
        dy = self.shifts.dy.values[:, None] + np.zeros(y.size)
        dx = self.shifts.dx.values[:, None] + np.zeros(y.size)
        if self.warp_px > 0:
            wy, wx = _warp(np.arange(dy.shape[0])[:, None], y[None], x[None], shape=self.shape, warp_px=self.warp_px,
                           period_frames=self.spec.warp_period_s * self.fps, phases=self.phases)
            dy, dx = dy + wy, dx + wx
        coords = {"time": self.shifts.time, "y": ("point", y), "x": ("point", x)}
        return xr.Dataset({"dy": (("time", "point"), dy), "dx": (("time", "point"), dx)}, coords=coords)


def _with_time(mt: MotionTruth | None, video: xr.DataArray) -> MotionTruth | None:
    """``mt`` with the video's own ``time`` coordinate on its shifts."""
    if mt is None:
        return None
    return MotionTruth(mt.shifts.assign_coords(time=video.time.values), mt.spec, mt.shape, mt.fps, mt.phases)


def _motion_truth(motion: Any, name: str, n_frames: int, shape: tuple[int, int], fps: float,
                  seed: int) -> MotionTruth | None:
    """Check ``motion`` (None, a preset name, a :class:`Motion` or an ``(n_frames, 2)`` path) and draw it."""
    if motion is None:
        return None
    if isinstance(motion, str):
        if motion not in MOTION_PRESETS:
            raise ValueError(f"{name} must be one of {sorted(MOTION_PRESETS)}, a datasets.Motion or an "
                             f"(n_frames, 2) array of (dy, dx), got {motion!r}")
        motion = MOTION_PRESETS[motion]
    if isinstance(motion, Motion):
        spec, path = motion, _rigid_path(n_frames, motion, fps, seed)
    elif isinstance(motion, (np.ndarray, list, tuple)):
        path = np.asarray(motion, dtype=np.float64)
        if path.shape != (n_frames, 2):
            raise ValueError(f"{name} as an array must have shape (n_frames, 2) = ({n_frames}, 2), "
                             f"got {path.shape}")
        if not np.isfinite(path).all():
            raise ValueError(f"{name} must be finite")
        spec = None
    else:
        raise TypeError(f"{name} must be None, a preset name, a datasets.Motion or an (n_frames, 2) array, "
                        f"got {type(motion).__name__}")
    time = np.arange(n_frames) / fps
    shifts = xr.Dataset({"dy": ("time", path[:, 0].copy()), "dx": ("time", path[:, 1].copy())},
                        coords={"time": time}, attrs={"units": "px", "sign": "content displacement (suite2p yoff, xoff)"})
    return MotionTruth(shifts, spec, shape, fps, _warp_phases(seed) if spec is not None else np.zeros((4, 2)))


def _source_points(path: np.ndarray, t: np.ndarray, shape: tuple[int, int], warp: dict[str, Any] | None,
                   qy: np.ndarray, qx: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where each pixel ``(qy, qx)`` of moving frames ``t`` looks in the motionless frame.

    The motionless point ``p`` is seen at ``q = p + d(p)``; with a warp ``d``
    depends on ``p``, so ``p = q - d(p)`` is solved by fixed-point iteration
    (a contraction: the warp's gradient is ``2 pi warp_px / size`` << 1).
    """
    py = qy[None] - path[:, 0, None, None]
    px = qx[None] - path[:, 1, None, None]
    if warp is None:
        return py, px
    tt = np.asarray(t, np.float64)[:, None, None]
    for _ in range(4):  # the error shrinks by the gradient (< 0.1) each time
        wy, wx = _warp(tt, py, px, shape=shape, **warp)
        py = qy[None] - path[:, 0, None, None] - wy
        px = qx[None] - path[:, 1, None, None] - wx
    return py, px


def _move_image(image: np.ndarray, py: np.ndarray, px: np.ndarray) -> np.ndarray:
    """``image`` sampled at ``(py, px)`` (cubic spline; outside the frame, the nearest edge pixel)."""
    from scipy.ndimage import map_coordinates

    return map_coordinates(image, [py, px], order=3, mode="nearest")


def _warp_kwargs(mt: MotionTruth | None) -> dict[str, Any] | None:
    if mt is None or mt.warp_px == 0:
        return None
    return dict(warp_px=mt.warp_px, period_frames=mt.spec.warp_period_s * mt.fps, phases=mt.phases)


def _path_array(mt: MotionTruth, t: da.Array) -> da.Array:
    path = np.stack([mt.shifts.dy.values, mt.shifts.dx.values], axis=1)
    return da.from_array(path, chunks=(t.chunks[0], -1))


# --------------------------------------------------------------------------------------------
# blinking emitters (SOFI)


@dataclass(frozen=True)
class BlinkingTruth:
    """Ground truth of :func:`blinking_emitters`.

    Attributes
    ----------
    states : xarray.DataArray
        ``("emitter", "time")`` bool, True where the emitter is on.
    positions : numpy.ndarray
        ``(n_emitters, 2)`` sub-pixel ``(y, x)`` positions.
    sigma_px : float
        PSF standard deviation in pixels.
    on_fraction, p_on, p_off : float
        Stationary on-probability and the per-frame switching probabilities
        (off->on, on->off) of the telegraph process.
    photons, background, read_noise : float
        Photons per frame of an on emitter (integrated over its PSF),
        background photons per pixel per frame, read-noise std.
    bleach_tau_s : float or None
        Exponential photobleaching time constant of the emitters.
    fps : float
        Frame rate, Hz.
    motion : MotionTruth or None
        The drift of the field of view (``drift=``); ``positions`` are those
        of frame 0 without drift, each frame shows them moved by
        ``motion.displacement(*positions.T)``.
    """

    states: xr.DataArray
    positions: np.ndarray
    sigma_px: float
    on_fraction: float
    p_on: float
    p_off: float
    photons: float
    background: float
    read_noise: float
    bleach_tau_s: float | None
    fps: float
    motion: MotionTruth | None = field(default=None, repr=False)


def _blink_block(t: np.ndarray, states: np.ndarray, *, positions: np.ndarray, shape: tuple[int, int], sigma: float,
                 photons: float, background: float, read_noise: float, bleach_frames: float | None, seed: int,
                 out_dtype: np.dtype) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    psf = np.stack([_gauss_psf(yy, xx, y0, x0, sigma) for y0, x0 in positions]) if len(positions) else np.zeros((0,) + shape)
    out = np.empty((t.size,) + shape, out_dtype)
    for i, ti in enumerate(t):
        bright = photons * (np.exp(-ti / bleach_frames) if bleach_frames else 1.0)
        expected = background + bright * np.tensordot(states[i].astype(np.float64), psf, axes=1)
        out[i] = _noisy(expected, read_noise, _frame_rng(seed, _NOISE, ti), out_dtype)
    return out


def _blink_block_moving(t: np.ndarray, states: np.ndarray, path: np.ndarray, *, positions: np.ndarray,
                        shape: tuple[int, int], sigma: float, photons: float, background: float, read_noise: float,
                        bleach_frames: float | None, seed: int, out_dtype: np.dtype,
                        warp: dict[str, Any] | None) -> np.ndarray:
    """:func:`_blink_block` with every emitter moved by the drift of its frame (exactly: no resampling)."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    out = np.empty((t.size,) + shape, out_dtype)
    for i, ti in enumerate(t):
        moved = positions + path[i]
        if warp is not None and len(positions):
            wy, wx = _warp(float(ti), positions[:, 0], positions[:, 1], shape=shape, **warp)
            moved = moved + np.stack([wy, wx], axis=1)
        bright = photons * (np.exp(-ti / bleach_frames) if bleach_frames else 1.0)
        expected = np.full(shape, float(background))
        for k in np.flatnonzero(states[i]):
            expected += bright * _gauss_psf(yy, xx, moved[k, 0], moved[k, 1], sigma)
        out[i] = _noisy(expected, read_noise, _frame_rng(seed, _NOISE, ti), out_dtype)
    return out


def blinking_emitters(
    n_frames: int = 2000,
    shape: tuple[int, int] = (64, 64),
    *,
    n_emitters: int = 20,
    sigma_px: float = 1.5,
    on_fraction: float = 0.3,
    mean_on_frames: float = 3.0,
    photons: float = 2000.0,
    background: float = 100.0,
    read_noise: float = 2.0,
    bleach_tau_s: float | None = None,
    min_separation_px: float | None = None,
    fps: float = 100.0,
    drift: Any = None,
    dtype: Any = np.uint16,
    seed: int = 0,
    chunks: ChunksLike = None,
) -> tuple[xr.DataArray, BlinkingTruth]:
    """Blinking point emitters for SOFI, with their on/off states as ground truth.

    Each emitter is a two-state (telegraph) Markov chain: off->on with
    probability ``p_on`` and on->off with probability ``p_off`` per frame,
    chosen so that it is on a fraction ``on_fraction`` of the time and stays
    on ``mean_on_frames`` frames on average. Its image is a Gaussian PSF of
    standard deviation ``sigma_px`` holding ``photons`` photons per frame,
    optionally bleaching as ``exp(-t / bleach_tau_s)``; a uniform
    ``background`` is added, then Poisson shot noise and Gaussian read noise.

    Parameters
    ----------
    n_frames, shape : int, (int, int)
        Recording size.
    n_emitters : int
        Number of emitters, placed at random, ``min_separation_px`` apart
        (default ``8 * sigma_px``, so that their PSFs do not overlap) and
        ``3 * sigma_px`` from the border. Where random placement jams, sites of
        a hexagonal lattice are drawn and shaken, so every request that such a
        lattice holds succeeds; otherwise ValueError says how many fit.
    sigma_px, on_fraction, mean_on_frames, photons, background, read_noise : float
        See above.
    bleach_tau_s : float, optional
        Photobleaching time constant in seconds (None: no bleaching).
    fps : float
        Frame rate, Hz.
    drift : str, Motion or array, optional
        Moves the field of view: a name of :data:`MOTION_PRESETS`
        (``"drift"``: a slow steady drift of 0.25 px/s with a faint wobble),
        a :class:`Motion`, or the ``(n_frames, 2)`` displacements ``(dy, dx)``
        themselves; the emitters are drawn at their moved positions (exact
        subpixel motion, no resampling), with a warp each at the warp's value
        at its position. ``truth.motion`` holds the true shifts. None (the
        default): no motion, and the recording is the same as without this
        option.
    dtype, seed, chunks
        Sample type, random seed, and the video's chunks (default: fluoxr's).

    Returns
    -------
    video : xarray.DataArray
        Lazy ``("time", "y", "x")`` video.
    truth : BlinkingTruth

    Examples
    --------
    >>> from fluoxr.datasets import blinking_emitters
    >>> video, truth = blinking_emitters(n_frames=100, shape=(32, 32), n_emitters=3, seed=1)
    >>> video.shape, truth.positions.shape
    ((100, 32, 32), (3, 2))
    """
    n_frames = check_int(n_frames, "n_frames", min_value=1)
    shape = _check_shape(shape)
    n_emitters = check_int(n_emitters, "n_emitters", min_value=0)
    sigma_px = check_number(sigma_px, "sigma_px", gt=0)
    on_fraction = check_number(on_fraction, "on_fraction", gt=0, lt=1)
    mean_on_frames = check_number(mean_on_frames, "mean_on_frames", ge=1)
    photons = check_number(photons, "photons", ge=0)
    background = check_number(background, "background", ge=0)
    read_noise = check_number(read_noise, "read_noise", ge=0)
    fps = check_number(fps, "fps", gt=0)
    if bleach_tau_s is not None:
        bleach_tau_s = check_number(bleach_tau_s, "bleach_tau_s", gt=0)
    seed = check_int(seed, "seed", min_value=0)
    dtype = np.dtype(dtype)
    motion = _motion_truth(drift, "drift", n_frames, shape, fps, seed)

    p_off = 1.0 / mean_on_frames
    p_on = p_off * on_fraction / (1.0 - on_fraction)
    if p_on > 1:
        raise ValueError(
            f"on_fraction={on_fraction} with mean_on_frames={mean_on_frames} needs an off->on probability "
            f"{p_on:.2f} > 1; lower on_fraction or raise mean_on_frames"
        )
    rng = np.random.default_rng((seed, 0))
    sep = 8 * sigma_px if min_separation_px is None else check_number(min_separation_px, "min_separation_px", ge=0)
    positions = _place(rng, n_emitters, shape, margin=3 * sigma_px, min_dist=sep,
                       names=("n_emitters", "min_separation_px"))
    # the telegraph chains are generated eagerly: one bit per emitter and frame
    states = np.empty((n_frames, n_emitters), bool)
    s = rng.random(n_emitters) < on_fraction
    for t0 in range(0, n_frames, 4096):
        u = rng.random((min(4096, n_frames - t0), n_emitters))
        for i in range(u.shape[0]):
            s = np.where(s, u[i] >= p_off, u[i] < p_on)
            states[t0 + i] = s

    t = _time_blocks(n_frames, shape, dtype, chunks)
    st = da.from_array(states, chunks=(t.chunks[0], -1))
    common = dict(positions=positions, shape=shape, sigma=sigma_px, photons=photons, background=background,
                  read_noise=read_noise, bleach_frames=None if bleach_tau_s is None else bleach_tau_s * fps, seed=seed,
                  out_dtype=dtype)
    if motion is None:
        data = da.blockwise(
            _blink_block, "tyx", t, "t", st, "te", new_axes={"y": shape[0], "x": shape[1]}, concatenate=True,
            dtype=dtype, meta=np.empty((0, 0, 0), dtype), **common,
        )
    else:
        data = da.blockwise(
            _blink_block_moving, "tyx", t, "t", st, "te", _path_array(motion, t), "tc",
            new_axes={"y": shape[0], "x": shape[1]}, concatenate=True, dtype=dtype, meta=np.empty((0, 0, 0), dtype),
            warp=_warp_kwargs(motion), **common,
        )
    video = as_video(data, fps=fps, name="video", source="fluoxr.datasets.blinking_emitters")
    truth_states = xr.DataArray(states.T, dims=("emitter", "time"), coords={"time": video.time})
    return video, BlinkingTruth(truth_states, positions, sigma_px, on_fraction, p_on, p_off, photons, background,
                                read_noise, bleach_tau_s, fps, _with_time(motion, video))


# --------------------------------------------------------------------------------------------
# calcium imaging


@dataclass(frozen=True)
class CalciumTruth:
    """Ground truth of :func:`calcium_neurons`.

    Attributes
    ----------
    stat : list of dict
        suite2p-like footprints: ``ypix``, ``xpix``, ``lam``, ``med``,
        ``npix``, ``radius``, ``overlap`` per cell.
    spikes : xarray.DataArray
        ``("roi", "time")`` spike counts per frame (lazy).
    calcium : xarray.DataArray
        ``("roi", "time")`` indicator trace: spikes convolved with
        ``exp(-t / tau_s)``, truncated after ``16 * tau_s`` (lazy).
    fluorescence : xarray.DataArray
        ``("roi", "time")`` somatic fluorescence ``F0 * (1 + amplitude *
        calcium)`` at peak weight, without neuropil or noise (lazy).
    red : numpy.ndarray or None
        Per cell, True when it is bright in the second (anatomical)
        channel; None without a second channel.
    tau_s, fps, spike_rate_hz, amplitude : float
        Indicator decay, frame rate, mean firing rate and dF/F per spike.
    motion : MotionTruth or None
        The motion of the field of view (``motion=``); ``stat`` are the
        footprints in the motionless frame (where registration brings them).
    """

    stat: list[dict[str, Any]]
    spikes: xr.DataArray
    calcium: xr.DataArray
    fluorescence: xr.DataArray
    red: np.ndarray | None
    tau_s: float
    fps: float
    spike_rate_hz: float
    amplitude: float
    baseline: np.ndarray = field(repr=False)
    motion: MotionTruth | None = field(default=None, repr=False)


def _spikes(t0: int, t1: int, n_cells: int, rate_per_frame: float, seed: int) -> np.ndarray:
    """Spike counts ``(t1 - t0, n_cells)``; frames before 0 have none."""
    out = np.zeros((t1 - t0, n_cells), np.float64)
    for i, t in enumerate(range(t0, t1)):
        if t >= 0:
            out[i] = _frame_rng(seed, _SPIKES, t).poisson(rate_per_frame, n_cells)
    return out


def _calcium(t: np.ndarray, n_cells: int, rate_per_frame: float, decay: float, k_len: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(spikes, calcium) for frames ``t`` (contiguous), calcium from a ``k_len``-frame exponential kernel."""
    t0, t1 = int(t[0]), int(t[-1]) + 1
    s = _spikes(t0 - k_len + 1, t1, n_cells, rate_per_frame, seed)
    kernel = decay ** np.arange(k_len)
    c = np.empty((t1 - t0, n_cells))
    for j in range(n_cells):
        c[:, j] = np.convolve(s[:, j], kernel, mode="valid")
    return s[k_len - 1 :], c


def _calcium_truth_block(t: np.ndarray, *, what: str, n_cells: int, rate: float, decay: float, k_len: int,
                         seed: int, f0: np.ndarray, amplitude: float) -> np.ndarray:
    s, c = _calcium(t, n_cells, rate, decay, k_len, seed)
    if what == "spikes":
        out = s
    elif what == "calcium":
        out = c
    else:
        out = f0[None, :] * (1.0 + amplitude * c)
    return np.ascontiguousarray(out.T.astype(np.float32))


def _neuropil_modulation(t: np.ndarray, fps: float, fluct: float, seed: int) -> np.ndarray:
    """Slow, smooth fluctuation ``1 + fluct * sum of sines`` (a deterministic function of t)."""
    rng = np.random.default_rng((seed, 5))
    freqs = rng.uniform(0.02, 0.3, 4)
    phases = rng.uniform(0, 2 * np.pi, 4)
    secs = np.asarray(t, np.float64)[:, None] / fps
    return 1.0 + fluct * np.sin(2 * np.pi * freqs * secs + phases).mean(1)


def _calcium_block(t: np.ndarray, table: np.ndarray, neuropil: np.ndarray, path: np.ndarray | None = None, *,
                   shape: tuple[int, int], n_cells: int, rate: float, decay: float, k_len: int, seed: int,
                   f0: np.ndarray, amplitude: float, fps: float, neuropil_fluct: float, read_noise: float,
                   red: np.ndarray | None, red_levels: tuple[float, float, float], out_dtype: np.dtype,
                   warp: dict[str, Any] | None = None) -> np.ndarray:
    import scipy.sparse as sp

    cell, ypix, xpix, lam = table[:, 0].astype(np.int64), table[:, 1].astype(np.int64), table[:, 2].astype(np.int64), table[:, 3]
    npix = shape[0] * shape[1]
    foot = sp.csr_matrix((lam, (ypix * shape[1] + xpix, cell)), shape=(npix, n_cells))
    _, c = _calcium(t, n_cells, rate, decay, k_len, seed)
    cell_f = f0[None, :] * (1.0 + amplitude * c)  # (time, cell)
    mod = _neuropil_modulation(t, fps, neuropil_fluct, seed)
    out = np.empty((t.size,) + ((2,) if red is not None else ()) + shape, out_dtype)
    if red is not None:
        dim, bright, bg = red_levels
        red_img = (foot @ np.where(red, bright, dim)).reshape(shape) + bg
    if path is not None:
        qy, qx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    for i, ti in enumerate(t):
        # one frame at a time: memory stays at a few frames whatever the chunk length
        expected = (foot @ cell_f[i]).reshape(shape) + mod[i] * neuropil
        red_i = red_img if red is not None else None
        if path is not None:
            # the noiseless scene moved, then the noise of the moving frame (noise does not move with the tissue)
            py, px = _source_points(path[i : i + 1], t[i : i + 1], shape, warp, qy, qx)
            expected = _move_image(expected, py[0], px[0])
            if red is not None:
                red_i = _move_image(red_img, py[0], px[0])
        rng = _frame_rng(seed, _NOISE, ti)
        if red is None:
            out[i] = _noisy(expected, read_noise, rng, out_dtype)
        else:
            out[i, 0] = _noisy(expected, read_noise, rng, out_dtype)
            out[i, 1] = _noisy(red_i, read_noise, _frame_rng(seed, _RED, ti), out_dtype)
    return out


def _disc_footprint(rng: np.random.Generator, cy: float, cx: float, radius: float, shape: tuple[int, int]) -> dict[str, Any]:
    R = int(np.ceil(radius)) + 1
    yy, xx = np.mgrid[int(cy) - R : int(cy) + R + 1, int(cx) - R : int(cx) + R + 1]
    d2 = (yy - cy) ** 2 + (xx - cx) ** 2
    inside = (d2 <= radius**2) & (yy >= 0) & (xx >= 0) & (yy < shape[0]) & (xx < shape[1])
    ypix, xpix = yy[inside].astype(np.int32), xx[inside].astype(np.int32)
    lam = np.exp(-d2[inside] / (2 * (radius / 1.5) ** 2)) * rng.uniform(0.9, 1.1, ypix.size)
    lam = (lam / lam.max()).astype(np.float32)
    return dict(ypix=ypix, xpix=xpix, lam=lam, med=[float(np.median(ypix)), float(np.median(xpix))],
                npix=int(ypix.size), radius=float(radius))


def calcium_neurons(
    n_frames: int = 3000,
    shape: tuple[int, int] = (128, 128),
    *,
    n_cells: int = 30,
    radius_px: float = 5.0,
    fps: float = 30.0,
    tau_s: float = 1.0,
    spike_rate_hz: float = 0.5,
    amplitude: float = 1.0,
    baseline: float = 400.0,
    neuropil: float = 150.0,
    neuropil_fluct: float = 0.3,
    read_noise: float = 3.0,
    overlap_fraction: float = 0.1,
    red_fraction: float = 0.0,
    motion: Any = None,
    dtype: Any = np.uint16,
    seed: int = 0,
    chunks: ChunksLike = None,
) -> tuple[xr.DataArray, CalciumTruth]:
    """Calcium-imaging recording: cell footprints, neuropil and spiking activity.

    Each cell is a disc of radius about ``radius_px`` with a bell-shaped
    weight profile (suite2p's ``lam``). Spikes are Poisson at
    ``spike_rate_hz``; the indicator is their convolution with
    ``exp(-t / tau_s)`` (truncated after ``16 * tau_s``, so that any frame
    range can be generated alone); the cell's fluorescence is
    ``F0 * (1 + amplitude * calcium)`` spread over its footprint. A smooth
    neuropil image whose brightness fluctuates slowly is added, then Poisson
    and read noise. About ``overlap_fraction`` of the cells are placed so that
    they overlap a neighbour (suite2p's ``overlap`` flags are set).

    With ``red_fraction > 0`` the video gains a ``channel`` dim: channel 1 is
    a static anatomical channel in which a known random subset of cells
    (``truth.red``) is bright and the others are dim.

    ``motion`` moves the field of view: a name of :data:`MOTION_PRESETS`
    (``"rigid"``: jitter of a few tenths of a pixel with jumps of ~2.5 px every
    ~3 s, within ±5 px; ``"nonrigid"``: the same plus a smooth warp of up to ±2 px), a
    :class:`Motion`, or the ``(n_frames, 2)`` displacements ``(dy, dx)``. The
    noiseless frame is moved (cubic-spline resampling, subpixel; content
    entering at the border repeats the edge pixels), then the noise is drawn,
    so the noise does not move; both channels move together. The true shifts
    are ``truth.motion`` (:class:`MotionTruth`). None (the default): no
    motion, and the recording is the same as without this option.

    Returns
    -------
    video : xarray.DataArray
        Lazy ``("time", "y", "x")`` video, or ``("time", "channel", "y", "x")``.
    truth : CalciumTruth

    Examples
    --------
    >>> from fluoxr.datasets import calcium_neurons
    >>> video, truth = calcium_neurons(n_frames=60, shape=(48, 48), n_cells=4, red_fraction=0.5)
    >>> video.dims, len(truth.stat), truth.red.dtype
    (('time', 'channel', 'y', 'x'), 4, dtype('bool'))
    """
    n_frames = check_int(n_frames, "n_frames", min_value=1)
    shape = _check_shape(shape)
    n_cells = check_int(n_cells, "n_cells", min_value=0)
    radius_px = check_number(radius_px, "radius_px", ge=1)
    fps = check_number(fps, "fps", gt=0)
    tau_s = check_number(tau_s, "tau_s", gt=0)
    spike_rate_hz = check_number(spike_rate_hz, "spike_rate_hz", ge=0)
    amplitude = check_number(amplitude, "amplitude", ge=0)
    baseline = check_number(baseline, "baseline", ge=0)
    neuropil = check_number(neuropil, "neuropil", ge=0)
    neuropil_fluct = check_number(neuropil_fluct, "neuropil_fluct", ge=0, lt=1)
    read_noise = check_number(read_noise, "read_noise", ge=0)
    overlap_fraction = check_number(overlap_fraction, "overlap_fraction", ge=0, le=1)
    red_fraction = check_number(red_fraction, "red_fraction", ge=0, le=1)
    seed = check_int(seed, "seed", min_value=0)
    dtype = np.dtype(dtype)
    moving = _motion_truth(motion, "motion", n_frames, shape, fps, seed)

    rng = np.random.default_rng((seed, 0))
    n_overlap = int(round(overlap_fraction * n_cells)) if n_cells > 1 else 0
    centres = _place(rng, n_cells - n_overlap, shape, margin=radius_px + 1, min_dist=2.6 * radius_px,
                     names=("non-overlapping n_cells", "2.6 * radius_px"))
    extra = []
    for i in range(n_overlap):
        # a cell centred 1.2 radii from another one: their discs overlap
        base_c = centres[i % len(centres)] if len(centres) else np.array(shape) / 2
        ang = rng.uniform(0, 2 * np.pi)
        p = base_c + 1.2 * radius_px * np.array([np.sin(ang), np.cos(ang)])
        extra.append(np.clip(p, radius_px + 1, np.array(shape) - radius_px - 2))
    if extra:
        centres = np.vstack([centres, np.array(extra)])
    stat = [_disc_footprint(rng, cy, cx, radius_px * rng.uniform(0.85, 1.15), shape) for cy, cx in centres]
    count = np.zeros(shape, np.int32)
    for s in stat:
        count[s["ypix"], s["xpix"]] += 1
    for s in stat:
        s["overlap"] = count[s["ypix"], s["xpix"]] > 1
    f0 = baseline * rng.uniform(0.7, 1.3, n_cells)
    red = (rng.random(n_cells) < red_fraction) if red_fraction > 0 else None
    if red is not None and n_cells >= 2 and 0 < red_fraction < 1:
        # a known subset that is neither empty nor everything
        if not red.any():
            red[0] = True
        if red.all():
            red[-1] = False
    # smooth neuropil image: a few wide Gaussian blobs
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    npil = np.zeros(shape)
    for _ in range(6):
        cy, cx = rng.uniform(0, shape[0]), rng.uniform(0, shape[1])
        w = rng.uniform(0.25, 0.6) * max(shape)
        npil += np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * w**2))
    npil = neuropil * npil / npil.mean() if npil.mean() > 0 else npil

    decay = float(np.exp(-1.0 / (tau_s * fps)))
    k_len = int(np.ceil(16 * tau_s * fps)) + 1
    rate = spike_rate_hz / fps
    table = np.concatenate(
        [np.stack([np.full(s["npix"], i), s["ypix"], s["xpix"], s["lam"]], 1) for i, s in enumerate(stat)]
    ) if stat else np.zeros((0, 4))
    frame_shape = shape if red is None else (2,) + shape
    t = _time_blocks(n_frames, frame_shape, dtype, chunks)
    tab = da.from_array(table, chunks=-1)
    out_ind = "tyx" if red is None else "tcyx"
    # frame-sized inputs enter the graph once (as one-chunk arrays), not once per task
    npil_da = da.from_array(npil, chunks=-1)
    moved = () if moving is None else (_path_array(moving, t), "tm")
    extra = {} if moving is None else {"warp": _warp_kwargs(moving)}
    data = da.blockwise(
        _calcium_block, out_ind, t, "t", tab, "pq", npil_da, "yx", *moved, new_axes={} if red is None else {"c": 2},
        concatenate=True, dtype=dtype,
        meta=np.empty((0,) * len(out_ind), dtype), shape=shape, n_cells=n_cells, rate=rate, decay=decay,
        k_len=k_len, seed=seed, f0=f0, amplitude=amplitude, fps=fps, neuropil_fluct=neuropil_fluct,
        read_noise=read_noise, red=red, red_levels=(0.15 * baseline, 1.5 * baseline, 0.3 * neuropil), out_dtype=dtype,
        **extra,
    )
    dims = ("time", "y", "x") if red is None else ("time", "channel", "y", "x")
    video = as_video(data, dims=dims, fps=fps, name="video", source="fluoxr.datasets.calcium_neurons")

    def truth_array(what: str) -> xr.DataArray:
        arr = da.map_blocks(
            _calcium_truth_block, t, what=what, n_cells=n_cells, rate=rate, decay=decay, k_len=k_len, seed=seed,
            f0=f0, amplitude=amplitude, new_axis=0, chunks=((n_cells,), t.chunks[0]), dtype=np.float32,
            meta=np.empty((0, 0), np.float32),
        )
        return xr.DataArray(arr, dims=("roi", "time"), coords={"roi": np.arange(n_cells), "time": video.time},
                            name=what, attrs={"fps": fps})

    truth = CalciumTruth(stat, truth_array("spikes"), truth_array("calcium"), truth_array("fluorescence"), red,
                         tau_s, fps, spike_rate_hz, amplitude, f0, _with_time(moving, video))
    return video, truth


# --------------------------------------------------------------------------------------------
# oscillating sheet (Cellects)


@dataclass(frozen=True)
class SheetTruth:
    """Ground truth of :func:`oscillating_sheet`.

    Attributes
    ----------
    mask : numpy.ndarray
        ``(y, x)`` bool, True on the sheet.
    phase : xarray.DataArray
        ``("time", "y", "x")`` wave phase in radians (lazy); the intensity on
        the sheet is ``base * (1 + amplitude * sin(phase))``.
    expected : xarray.DataArray
        ``("time", "y", "x")`` int8 (lazy): 1 where the intensity rises
        (influx, ``cos(phase) > 0``), 2 where it falls (efflux), 0 off the sheet.
    period_s, interval_s, wavelength_px, direction_deg : float
        Wave period, time between frames, wavelength and direction of travel.
    """

    mask: np.ndarray
    phase: xr.DataArray
    expected: xr.DataArray
    period_s: float
    interval_s: float
    wavelength_px: float
    direction_deg: float


def _sheet_phase(t: np.ndarray, shape: tuple[int, int], period_s: float, interval_s: float,
                 wavelength_px: float, direction_deg: float) -> np.ndarray:
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    a = np.deg2rad(direction_deg)
    along = yy * np.sin(a) + xx * np.cos(a)
    secs = np.asarray(t, np.float64)[:, None, None] * interval_s
    return 2 * np.pi * (secs / period_s - along[None] / wavelength_px)


def _sheet_block(t: np.ndarray, mask: np.ndarray, *, shape: tuple[int, int], period_s: float, interval_s: float,
                 wavelength_px: float, direction_deg: float, base: float, amplitude: float, background: float,
                 read_noise: float, seed: int, out_dtype: np.dtype) -> np.ndarray:
    out = np.empty((t.size,) + shape, out_dtype)
    for i, ti in enumerate(t):
        phase = _sheet_phase(np.array([ti]), shape, period_s, interval_s, wavelength_px, direction_deg)[0]
        expected = np.where(mask, base * (1 + amplitude * np.sin(phase)), background)
        out[i] = _noisy(expected, read_noise, _frame_rng(seed, _NOISE, ti), out_dtype)
    return out


def _sheet_truth_block(t: np.ndarray, mask: np.ndarray, *, what: str, **kw: Any) -> np.ndarray:
    phase = _sheet_phase(t, mask.shape, **kw)
    if what == "phase":
        return phase
    rising = np.cos(phase) > 0
    return np.where(mask[None], np.where(rising, 1, 2), 0).astype(np.int8)


def _sheet_mask(rng: np.random.Generator, shape: tuple[int, int], coverage: float) -> np.ndarray:
    """A smooth blob: an ellipse with a randomly perturbed outline, covering about ``coverage``."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float64)
    cy, cx = (shape[0] - 1) / 2, (shape[1] - 1) / 2
    ang = np.arctan2(yy - cy, xx - cx)
    r = np.hypot((yy - cy) / shape[0], (xx - cx) / shape[1])
    wobble = 1 + sum(rng.uniform(0, 0.08) * np.cos(k * ang + rng.uniform(0, 2 * np.pi)) for k in (2, 3, 5))
    # radius that gives the wanted area for an ellipse spanning the frame
    r0 = np.sqrt(coverage / np.pi)
    return r <= r0 * wobble


def oscillating_sheet(
    n_frames: int = 400,
    shape: tuple[int, int] = (96, 96),
    *,
    period_s: float = 60.0,
    interval_s: float = 2.0,
    wavelength_px: float = 40.0,
    direction_deg: float = 30.0,
    base: float = 2000.0,
    amplitude: float = 0.25,
    background: float = 100.0,
    read_noise: float = 2.0,
    coverage: float = 0.5,
    dtype: Any = np.uint16,
    seed: int = 0,
    chunks: ChunksLike = None,
) -> tuple[xr.DataArray, SheetTruth]:
    """A sheet (e.g. a Physarum network) crossed by travelling intensity waves.

    On the sheet (a smooth blob covering about ``coverage`` of the frame) the
    intensity is ``base * (1 + amplitude * sin(2 pi (t / period_s - d /
    wavelength_px)))``, ``d`` the distance along ``direction_deg``; off it,
    a constant ``background``; then Poisson and read noise. Frames are
    ``interval_s`` seconds apart (``fps = 1 / interval_s``).

    Returns
    -------
    video : xarray.DataArray
        Lazy ``("time", "y", "x")`` video.
    truth : SheetTruth

    Examples
    --------
    >>> from fluoxr.datasets import oscillating_sheet
    >>> video, truth = oscillating_sheet(n_frames=20, shape=(32, 32))
    >>> video.attrs["fps"], truth.mask.dtype
    (0.5, dtype('bool'))
    """
    n_frames = check_int(n_frames, "n_frames", min_value=1)
    shape = _check_shape(shape)
    period_s = check_number(period_s, "period_s", gt=0)
    interval_s = check_number(interval_s, "interval_s", gt=0)
    wavelength_px = check_number(wavelength_px, "wavelength_px", gt=0)
    direction_deg = check_number(direction_deg, "direction_deg")
    base = check_number(base, "base", ge=0)
    amplitude = check_number(amplitude, "amplitude", ge=0, lt=1)
    background = check_number(background, "background", ge=0)
    read_noise = check_number(read_noise, "read_noise", ge=0)
    coverage = check_number(coverage, "coverage", gt=0, le=1)
    seed = check_int(seed, "seed", min_value=0)
    dtype = np.dtype(dtype)

    mask = _sheet_mask(np.random.default_rng((seed, 0)), shape, coverage)
    wave = dict(period_s=period_s, interval_s=interval_s, wavelength_px=wavelength_px, direction_deg=direction_deg)
    t = _time_blocks(n_frames, shape, dtype, chunks)
    mask_da = da.from_array(mask, chunks=-1)  # one graph key, not a copy per task
    data = da.blockwise(
        _sheet_block, "tyx", t, "t", mask_da, "yx", dtype=dtype, meta=np.empty((0, 0, 0), dtype), shape=shape,
        base=base, amplitude=amplitude, background=background, read_noise=read_noise, seed=seed, out_dtype=dtype,
        **wave,
    )
    video = as_video(data, fps=1.0 / interval_s, name="video", source="fluoxr.datasets.oscillating_sheet")

    def truth_array(what: str, out_dtype: Any) -> xr.DataArray:
        arr = da.blockwise(_sheet_truth_block, "tyx", t, "t", mask_da, "yx", what=what, dtype=out_dtype,
                           meta=np.empty((0, 0, 0), out_dtype), **wave)
        return xr.DataArray(arr, dims=("time", "y", "x"), coords=video.coords, name=what)

    truth = SheetTruth(mask, truth_array("phase", np.float64), truth_array("expected", np.int8), period_s,
                       interval_s, wavelength_px, direction_deg)
    return video, truth


def _check_shape(shape: Any) -> tuple[int, int]:
    if not isinstance(shape, (tuple, list)) or len(shape) != 2:
        raise ValueError(f"shape must be a (height, width) pair, got {shape!r}")
    return (check_int(shape[0], "shape[0]", min_value=4), check_int(shape[1], "shape[1]", min_value=4))
