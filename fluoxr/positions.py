"""Point positions for :func:`fluoxr.traces` (optimap's position helpers), as ``(n, 2)`` arrays of ``(y, x)`` rows.

optimap returns lists of ``(x, y)`` pairs; fluoxr returns integer arrays of
``(y, x)`` rows (row, column), the order every other fluoxr function takes.
Convert optimap positions with ``np.asarray(positions)[:, ::-1]``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ._validate import check_int

__all__ = ["random_positions", "positions_between", "collage_positions"]


def _point(p: Any, name: str) -> np.ndarray:
    a = np.asarray(p, dtype=np.float64)
    if a.shape != (2,) or not np.all(np.isfinite(a)):
        raise ValueError(f"{name} must be one (y, x) position, got {p!r}")
    return a


def random_positions(shape_or_mask: Any, n: int = 1, *, seed: Any = None) -> np.ndarray:
    """``n`` distinct random pixel positions inside a frame or a mask.

    Parameters
    ----------
    shape_or_mask : (Ly, Lx) or 2-D array
        A frame shape (every pixel allowed) or a mask (nonzero pixels allowed).
    n : int
        Number of positions (at most the number of allowed pixels).
    seed : int or numpy.random.Generator, optional
        Random seed (optimap draws from an unseeded generator). The draw is
        optimap's (``Generator.choice`` over raveled pixels without
        replacement), so one seed gives optimap's positions, reordered to
        ``(y, x)``.

    Returns
    -------
    numpy.ndarray
        ``(n, 2)`` int64 ``(y, x)`` rows.

    Examples
    --------
    >>> from fluoxr.positions import random_positions
    >>> random_positions((64, 64), 3, seed=0).shape
    (3, 2)
    """
    if isinstance(shape_or_mask, tuple) or (isinstance(shape_or_mask, list) and np.ndim(shape_or_mask) == 1):
        if len(shape_or_mask) != 2:
            raise ValueError(f"shape_or_mask must be a frame shape (Ly, Lx) or a 2-D mask, got {shape_or_mask!r}")
        shape = tuple(check_int(s, f"shape_or_mask[{i}]", min_value=1) for i, s in enumerate(shape_or_mask))
        mask = np.ones(shape, bool)
    else:
        mask = np.asarray(shape_or_mask)
        if mask.ndim != 2:
            raise ValueError(f"shape_or_mask must be a frame shape (Ly, Lx) or a 2-D mask, got shape {mask.shape}")
        mask = mask.astype(bool)
    n = check_int(n, "n", min_value=0)
    allowed = int(mask.sum())
    if n > allowed:
        raise ValueError(f"n must be at most the number of allowed pixels ({allowed}), got {n}")
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
    if allowed == 0:
        return np.zeros((0, 2), np.int64)
    p = mask.ravel() / allowed
    idx = rng.choice(np.arange(mask.size), p=p, size=n, replace=False)
    return np.stack(np.unravel_index(idx, mask.shape), axis=1).astype(np.int64)


def positions_between(a: Sequence[float], b: Sequence[float], n: int | None = None) -> np.ndarray:
    """Positions on the straight line from ``a`` to ``b`` (both ``(y, x)``, both included).

    With ``n``, ``n`` evenly spaced points rounded to the nearest pixel
    (halves to even, as ``np.rint``); without, one point per pixel step
    (``max(|dy|, |dx|) + 1`` points), like a digital line. optimap's
    ``positions_from_A_to_B`` is not implemented in optimap itself.

    Examples
    --------
    >>> from fluoxr.positions import positions_between
    >>> positions_between((0, 0), (4, 8), 3).tolist()
    [[0, 0], [2, 4], [4, 8]]
    >>> len(positions_between((0, 0), (4, 8)))
    9
    """
    pa, pb = _point(a, "a"), _point(b, "b")
    if n is None:
        n = int(np.max(np.abs(np.rint(pb) - np.rint(pa)))) + 1
    n = check_int(n, "n", min_value=1)
    if n == 1:
        return np.rint(pa)[None].astype(np.int64)
    f = np.linspace(0.0, 1.0, n)[:, None]
    return np.rint(pa[None] + f * (pb - pa)[None]).astype(np.int64)


def collage_positions(positions: Sequence[Any], image_shape: Sequence[int], ncols: int = 6) -> np.ndarray:
    """Positions of several images mapped into their collage (images in rows of ``ncols``).

    Image ``i`` sits at row ``i // ncols`` and column ``i % ncols`` of the
    collage (optimap's ``image.collage`` / ``video.collage`` layout, no
    padding), so its ``(y, x)`` positions move by ``(row * Ly, col * Lx)``.

    optimap's ``collage_positions`` modifies its input arrays in place,
    raises ``IndexError`` when the number of images is not a multiple of
    ``ncols`` beyond the first row, and adds the column offset (a multiple
    of the image height) to the second coordinate; fluoxr returns a new
    array, accepts any number of images and offsets each axis by its own
    size.

    Parameters
    ----------
    positions : sequence of ``(n_i, 2)`` arrays
        ``(y, x)`` rows per image, integer pixel coordinates (integral floats
        such as ``3.0`` are accepted; ``1.5`` is a ValueError, not truncated).
    image_shape : (Ly, Lx)
        Shape shared by the images.
    ncols : int
        Images per collage row.

    Returns
    -------
    numpy.ndarray
        ``(sum n_i, 2)`` int64 positions in the collage.

    Examples
    --------
    >>> from fluoxr.positions import collage_positions
    >>> collage_positions([[(1, 2)], [(1, 2)], [(1, 2)]], (10, 20), ncols=2).tolist()
    [[1, 2], [1, 22], [11, 2]]
    """
    if isinstance(image_shape, (str, bytes)) or not hasattr(image_shape, "__len__") or len(image_shape) != 2:
        raise ValueError(f"image_shape must be the image shape (Ly, Lx), got {image_shape!r}")
    ly = check_int(image_shape[0], "image_shape[0]", min_value=1)
    lx = check_int(image_shape[1], "image_shape[1]", min_value=1)
    ncols = check_int(ncols, "ncols", min_value=1)
    if isinstance(positions, (str, bytes)) or not hasattr(positions, "__iter__"):
        raise TypeError(f"positions must be a sequence of (n, 2) arrays of (y, x) rows, one per image, "
                        f"got {type(positions).__name__}")
    out = []
    for i, p in enumerate(positions):
        a = np.asarray(p)
        if a.size == 0:
            continue
        if a.ndim == 1 and a.size == 2:
            a = a[None]
        if a.ndim != 2 or a.shape[1] != 2:
            raise ValueError(f"positions[{i}] must be (n, 2) rows of (y, x), got shape {a.shape}")
        # as ROISet.from_positions: integral floats are pixel positions, anything else would be truncated
        if a.dtype.kind == "f":
            with np.errstate(invalid="ignore"):
                bad = a[~(np.mod(a, 1) == 0)]  # fractions, NaN and inf
            if bad.size:
                raise ValueError(f"positions[{i}] must be integer pixel coordinates (y, x), got {float(bad[0])!r}")
        elif a.dtype.kind not in "iu":
            raise ValueError(f"positions[{i}] must be integer pixel coordinates (y, x), got dtype {a.dtype}")
        off = np.array([(i // ncols) * ly, (i % ncols) * lx])
        out.append(a.astype(np.int64) + off)
    return np.concatenate(out) if out else np.zeros((0, 2), np.int64)
