"""Cross-cumulants of pixel pairs (XC-SOFI) and the assembled XC image."""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import partial
from typing import Any, NamedTuple

import numpy as np
import xarray as xr

from .._validate import check_int, check_number
from .._video import check_whole_frames
from ..drivers import TimeReduction, reduce_time
from ..kernels import moments as km
from ._common import _as_lazy_video, _frame_coords, _result_attrs


class PairState(NamedTuple):
    """Frames, mean image and the co-moment sums of every pixel pair of a run of frames."""

    frames: int
    mean: np.ndarray
    comoments: np.ndarray


def _pair_chunk(block: np.ndarray, *, pairs: np.ndarray) -> PairState:
    return PairState(*km.pair_comoment_state(block, pairs))


def _pair_combine(states: Sequence[PairState], *, pairs: np.ndarray) -> PairState:
    out = states[0]
    for s in states[1:]:
        out = km.merge_pair_states(out, s, pairs)
    return PairState(*out)


def _pair_finalize(state: PairState) -> np.ndarray:
    return state.comoments / state.frames


def pair_reduction(pairs: np.ndarray) -> TimeReduction[PairState]:
    """Co-moments over time of the pixel pairs ``(dy1, dx1, dy2, dx2)``: one row per pair."""
    pairs = np.asarray(pairs, np.int64).reshape(-1, 4)
    return TimeReduction("fluoxr-sofi-pairs", chunk=partial(_pair_chunk, pairs=pairs),
                         combine=partial(_pair_combine, pairs=pairs), finalize=_pair_finalize, rows=len(pairs))


def _pair_comoments(data: Any, pairs: np.ndarray) -> Any:
    """``(len(pairs), ..., H, W)`` co-moments of pixel pairs over time; one tree reduction."""
    return reduce_time(data, pair_reduction(pairs))


def _xc_shifts(ri_range: int) -> list[tuple[int, int]]:
    """pysofi's ``ri_series``: half of the shifts with ``max(|dy|, |dx|) <= ri_range``, without 0."""
    r = ri_range
    return [(i, j) for i in range(-r, 0) for j in range(-r, r + 1)] + [(0, i) for i in range(-r, 0)]


def cross_cumulants(video: Any, ri_range: int = 1) -> xr.DataArray:
    """Second-order cross-cumulant images of pixel pairs (XC-SOFI; pysofi ``calc_xc_im``).

    For each shift ``s = (dy, dx)`` of pysofi's series (``((2 r + 1)^2 - 1) / 2``
    shifts with ``max(|dy|, |dx|) <= r``), the image at ``q`` is
    ``mean_t (x[q + s] - mean) (x[q - s] - mean)``: the correlation of two
    pixels ``2 s`` apart, placed at their midpoint. Free of the shot-noise
    bias of the auto-cumulant. Images cover the interior
    ``[r, H - r) x [r, W - r)``, as in pysofi. One pass: per-chunk pair
    co-moments are merged exactly across chunks.

    Parameters
    ----------
    video : xarray.DataArray
        Lazy video with whole frames in every chunk; extra dims are kept.
    ri_range : int
        Largest pixel shift ``r`` (>= 1).

    Returns
    -------
    xarray.DataArray
        ``("shift", ..., "y", "x")`` float64 with coordinates ``dy``, ``dx``
        (per shift) and the interior ``y``, ``x``.

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> video = fluoxr.as_video(np.random.default_rng(0).normal(size=(40, 6, 7)))
    >>> xc = fluoxr.cross_cumulants(video, 1)
    >>> xc.shape, xc.dy.values.tolist(), xc.dx.values.tolist()
    ((4, 4, 5), [-1, -1, -1, 0], [-1, 0, 1, -1])
    """
    video = _as_lazy_video(video, what="cross_cumulants")
    check_whole_frames(video)
    r = check_int(ri_range, "ri_range", min_value=1)
    H, W = video.sizes["y"], video.sizes["x"]
    if H <= 2 * r or W <= 2 * r:
        raise ValueError(f"ri_range={r} leaves no interior pixels in a {H} x {W} frame; "
                         f"it must be below {min(H, W) / 2:g}")
    shifts = _xc_shifts(r)
    pairs = np.array([(dy, dx, -dy, -dx) for dy, dx in shifts], np.int64)
    out = _pair_comoments(video.data, pairs)[..., r : H - r, r : W - r]
    coords = _frame_coords(video)
    coords["y"] = video.y.values[r : H - r]
    coords["x"] = video.x.values[r : W - r]
    coords = {k: v for k, v in coords.items() if not ({"y", "x"} & set(getattr(v, "dims", ()))) or k in ("y", "x")}
    coords["dy"] = ("shift", [s[0] for s in shifts])
    coords["dx"] = ("shift", [s[1] for s in shifts])
    return xr.DataArray(out, dims=("shift",) + video.dims[1:], coords=coords, name="cross_cumulants",
                        attrs=_result_attrs(video, ri_range=r, long_name="cross-cumulant (order 2)"))


# pairs for the assembled XC image: (dy1, dx1, dy2, dx2) relative to the grid position p
_XC_PAIRS = np.array([
    (0, 0, 0, 0),     # 0 auto-cumulant at p
    (0, 0, 0, 1),     # 1 horizontal neighbours, midpoint p + (0, 1/2), distance 1
    (0, 0, 1, 0),     # 2 vertical neighbours, midpoint p + (1/2, 0)
    (0, 0, 1, 1),     # 3 diagonal, midpoint p + (1/2, 1/2), distance sqrt 2
    (0, 1, 1, 0),     # 4 anti-diagonal, same midpoint
    (0, -1, 0, 1),    # 5 distance 2 around p, horizontal
    (-1, 0, 1, 0),    # 6 distance 2 around p, vertical
    (-1, -1, 1, 1),   # 7 distance 2 sqrt 2 around p
    (-1, 1, 1, -1),   # 8 distance 2 sqrt 2 around p
], np.int64)


def _nanmean2(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.where(np.isnan(a), b, np.where(np.isnan(b), a, (a + b) / 2))


def _assemble_xc(c: np.ndarray, *, sigma_px: float | None) -> np.ndarray:
    """Interleave pair co-moments into a ``(2H - 1, 2W - 1)`` XC2 image; last row/col: the sigma used."""
    _, H, W = c.shape
    c = c.copy()
    # mark positions where a pair leaves the frame
    for q, (dy1, dx1, dy2, dx2) in enumerate(_XC_PAIRS):
        valid = np.zeros((H, W), bool)
        valid[max(0, -dy1, -dy2) : min(H, H - dy1, H - dy2), max(0, -dx1, -dx2) : min(W, W - dx1, W - dx2)] = True
        c[q][~valid] = np.nan
    d4 = _nanmean2(c[5], c[6])
    d8 = _nanmean2(c[7], c[8])
    if sigma_px is None:
        ok = np.isfinite(d4) & np.isfinite(d8)
        a, b = d8[ok], d4[ok]
        den = float(np.sum(b * b))
        ratio = float(np.sum(a * b)) / den if den > 0 else np.nan
        if not 0 < ratio < 1:
            raise ValueError(
                "sigma_px could not be estimated from the data (the cross-cumulants of pixels 2 and 2*sqrt(2) "
                f"apart have ratio {ratio:.3g}, outside (0, 1)); pass sigma_px=... (PSF standard deviation in pixels)"
            )
        sigma = math.sqrt(-1.0 / math.log(ratio))
    else:
        sigma = float(sigma_px)
    # XC of two pixels d apart at their midpoint = AC * exp(-d^2 / (4 sigma^2)): undo that factor
    g = lambda d2: math.exp(d2 / (4 * sigma * sigma))  # noqa: E731
    out = np.full((2 * H - 1 + 1, 2 * W - 1), np.nan)
    img = out[:-1]
    even = d4 * g(4.0)
    img[0::2, 0::2] = np.where(np.isnan(even), c[0], even)
    img[0::2, 1::2] = (c[1] * g(1.0))[:, : W - 1]
    img[1::2, 0::2] = (c[2] * g(1.0))[: H - 1, :]
    img[1::2, 1::2] = (_nanmean2(c[3], c[4]) * g(2.0))[: H - 1, : W - 1]
    out[-1] = sigma
    return out


def xc_image(video: Any, *, sigma_px: float | None = None) -> xr.DataArray:
    """Second-order XC-SOFI image on a grid twice as fine, assembled from pixel-pair cross-cumulants.

    Each position of the ``(2H - 1, 2W - 1)`` grid takes the cross-cumulant of
    pixel pairs whose midpoint it is: neighbours (distance 1) for positions
    between pixels, diagonal pairs (distance sqrt 2, averaged) for the
    centres of pixel squares, and the pairs 2 pixels apart around a pixel
    for the pixel itself (the auto-cumulant only at the four corners). The
    cross-cumulant of pixels ``d`` apart is the auto-cumulant damped by
    ``exp(-d^2 / (4 sigma^2))`` for a Gaussian PSF of standard deviation
    ``sigma``; that distance factor is divided out. One pass over the data.

    Parameters
    ----------
    video : xarray.DataArray
        Lazy ``("time", "y", "x")`` video with whole frames in every chunk.
    sigma_px : float, optional
        PSF standard deviation in pixels. Default: estimated from the data, by
        least squares on the ratio of cross-cumulants of pairs ``2 sqrt 2`` and
        ``2`` pixels apart around the same pixel (``exp(-1 / sigma^2)``), which
        carries no shot noise.

    Returns
    -------
    xarray.DataArray
        ``("y", "x")`` float64 on fractional pixel coordinates, with the
        ``sigma_px`` used as a (lazy) scalar coordinate.

    Examples
    --------
    >>> import fluoxr
    >>> video, truth = fluoxr.datasets.blinking_emitters(300, (16, 16), n_emitters=1, seed=2)
    >>> xc = fluoxr.xc_image(video, sigma_px=truth.sigma_px)
    >>> xc.shape
    (31, 31)
    """
    video = _as_lazy_video(video, min_frames=2, plain=True, what="xc_image")
    check_whole_frames(video)
    if sigma_px is not None:
        sigma_px = check_number(sigma_px, "sigma_px", gt=0)
    H, W = video.sizes["y"], video.sizes["x"]
    if H < 2 or W < 2:
        raise ValueError(f"video frames must be at least 2 x 2 for xc_image, got {H} x {W}")
    pairs = _pair_comoments(video.data, _XC_PAIRS)
    out = pairs.map_blocks(_assemble_xc, sigma_px=sigma_px, chunks=((2 * H,), (2 * W - 1,)), drop_axis=[0],
                           dtype=np.float64, meta=np.empty((0, 0), np.float64))
    y = np.interp(np.arange(2 * H - 1) / 2, np.arange(H), video.y.values.astype(np.float64))
    x = np.interp(np.arange(2 * W - 1) / 2, np.arange(W), video.x.values.astype(np.float64))
    attrs = _result_attrs(video, long_name="XC-SOFI image (order 2)")
    if "pixel_size" in attrs:
        attrs["pixel_size"] = attrs["pixel_size"] / 2
    return xr.DataArray(out[:-1], dims=("y", "x"), coords={"y": y, "x": x, "sigma_px": ((), out[-1, 0])},
                        name="xc_image", attrs=attrs)
