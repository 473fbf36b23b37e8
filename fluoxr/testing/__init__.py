"""Test helpers shared by every fluoxr module (and usable by downstream code).

- :func:`assert_chunk_invariant`: a lazy operation gives the same answer for
  several chunkings along time (whole, one frame, uneven, smaller than a halo).
- :func:`raise_if_dask_computes`: building a graph must not compute anything.
- :func:`tiny_video`: small deterministic videos.
- :func:`moving_video`: a textured field of view moved by known (subpixel,
  optionally nonrigid) shifts, for motion correction.
- :mod:`fluoxr.testing.references`: the plain NumPy reference of every kernel
  and lazy operation, written once, with how to call fluoxr on the same input
  (:data:`~fluoxr.testing.references.COMPARISONS`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr

from .._video import as_video

__all__ = [
    "assert_chunk_invariant",
    "assert_results_close",
    "default_chunkings",
    "moving_video",
    "textured_image",
    "raise_if_dask_computes",
    "tiny_video",
    "wavy_video",
]


class _CountingScheduler:
    """A dask scheduler that counts computations and raises past ``max_computes``."""

    def __init__(self, max_computes: int = 0) -> None:
        self.total_computes = 0
        self.max_computes = max_computes

    def __call__(self, dsk: Any, keys: Any, **kwargs: Any) -> Any:
        self.total_computes += 1
        if self.total_computes > self.max_computes:
            raise RuntimeError(
                f"Too many computes. Total: {self.total_computes} > max: {self.max_computes}."
            )
        return dask.get(dsk, keys, **kwargs)


@contextlib.contextmanager
def raise_if_dask_computes(max_computes: int = 0) -> Iterator[_CountingScheduler]:
    """Fail if dask computes more than ``max_computes`` times inside the block.

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> from fluoxr.testing import raise_if_dask_computes
    >>> v = fluoxr.as_video(np.ones((4, 3, 3)))
    >>> with raise_if_dask_computes():
    ...     m = v.mean("time")   # lazy: fine
    """
    scheduler = _CountingScheduler(max_computes)
    with dask.config.set(scheduler=scheduler):
        yield scheduler


def tiny_video(
    shape: Sequence[int] = (24, 7, 9),
    *,
    dtype: Any = np.uint16,
    seed: int = 0,
    chunks: Any = 5,
    fps: float | None = 10.0,
    offset: float = 100.0,
    scale: float = 50.0,
) -> xr.DataArray:
    """A small deterministic video of random values ``offset + scale * U(0, 1)``.

    ``shape`` may be 3-D ``(time, y, x)`` or 4-D ``(time, channel, y, x)``.

    Examples
    --------
    >>> from fluoxr.testing import tiny_video
    >>> tiny_video((6, 4, 5)).shape
    (6, 4, 5)
    """
    rng = np.random.default_rng(seed)
    data = offset + scale * rng.random(tuple(shape))
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        data = np.rint(data)
    # a raw 4-D array has no default layout (fluoxr.as_video refuses to guess): this one is (t, c, y, x)
    dims = ("time", "channel", "y", "x") if data.ndim == 4 else None
    return as_video(data.astype(dtype), fps=fps, chunks=chunks, dims=dims)


def wavy_video(
    shape: Sequence[int] = (23, 12, 14),
    *,
    seed: int = 0,
    dtype: Any = np.uint16,
    chunks: Any = None,
) -> xr.DataArray:
    """Noisy travelling waves at 0.5 fps: plenty of influx and efflux, clusters that touch the borders.

    The oscillation tests, the bad-input catalogue and the reference registry
    share it. ``chunks`` defaults to one chunk along time.

    Examples
    --------
    >>> from fluoxr.testing import wavy_video
    >>> wavy_video().shape
    (23, 12, 14)
    """
    rng = np.random.default_rng(seed)
    t, y, x = np.meshgrid(*(np.arange(n) for n in shape), indexing="ij")
    v = 1000 + 300 * np.sin(2 * np.pi * (t / 9 - (x + 0.5 * y) / 11)) + rng.normal(0, 40, tuple(shape))
    return as_video(np.clip(v, 0, None).astype(dtype), fps=0.5, chunks=shape[0] if chunks is None else chunks)


def textured_image(shape: Sequence[int] = (64, 64), *, seed: int = 0, n_cells: int | None = None) -> np.ndarray:
    """A periodic field of view with texture at every scale: smoothed noise, soft cell bodies, a slow wave.

    Periodic (every filter wraps around), so a Fourier shift of it is exact,
    without the ringing a non-periodic image gets from its wrapped edges.

    Examples
    --------
    >>> from fluoxr.testing import textured_image
    >>> textured_image((32, 40)).shape
    (32, 40)
    """
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    ly, lx = (int(v) for v in shape)
    img = 40 * ndi.gaussian_filter(rng.normal(size=(ly, lx)), 1.5, mode="wrap") + 20 * ndi.gaussian_filter(
        rng.normal(size=(ly, lx)), 6, mode="wrap")
    yy, xx = np.mgrid[:ly, :lx]
    n_cells = max(4, ly * lx // 150) if n_cells is None else n_cells
    for cy, cx, r, a in zip(rng.uniform(0, ly, n_cells), rng.uniform(0, lx, n_cells), rng.uniform(2, 4, n_cells),
                            rng.uniform(50, 150, n_cells)):
        ddy = (yy - cy + ly / 2) % ly - ly / 2
        ddx = (xx - cx + lx / 2) % lx - lx / 2
        img += a * np.exp(-(ddy**2 + ddx**2) / (2 * r**2))
    return img + 200 + 30 * np.sin(2 * np.pi * xx / lx)


def moving_video(
    n_frames: int = 40,
    shape: Sequence[int] = (64, 64),
    *,
    max_shift: float = 3.0,
    nonrigid: float = 0.0,
    noise: float = 0.0,
    seed: int = 0,
    chunks: Any = 7,
    dtype: Any = np.float32,
) -> tuple[xr.DataArray, xr.Dataset]:
    """A textured field of view moved by known shifts, and the truth: ``(video, truth)``.

    Frame ``t`` is the image displaced by ``(dy_t, dx_t)`` (suite2p's sign:
    ``frame(y + dy, x + dx) = image(y, x)``), uniform in ``±max_shift`` pixels,
    applied exactly by a Fourier shift of an image twice the size (so no
    content wraps around into the frame). With ``nonrigid > 0`` a smooth warp
    of up to ``nonrigid`` pixels (one period of a sine across the frame,
    different every frame) is added, applied by cubic interpolation; the truth
    then has ``dy_field``/``dx_field`` ``(time, y, x)``, the total displacement
    at every pixel. ``noise`` adds Gaussian noise of that standard deviation.

    Examples
    --------
    >>> from fluoxr.testing import moving_video
    >>> video, truth = moving_video(n_frames=5, shape=(32, 32))
    >>> video.shape, sorted(truth.data_vars)
    ((5, 32, 32), ['dx', 'dy', 'image'])
    """
    from scipy import ndimage as ndi

    rng = np.random.default_rng(seed)
    ly, lx = (int(v) for v in shape)
    big = textured_image((2 * ly, 2 * lx), seed=seed)
    oy, ox = ly // 2, lx // 2
    dy = rng.uniform(-max_shift, max_shift, n_frames)
    dx = rng.uniform(-max_shift, max_shift, n_frames)
    spectrum = np.fft.fft2(big)
    yy, xx = np.mgrid[:ly, :lx].astype(np.float64)
    frames = np.empty((n_frames, ly, lx))
    fields_y = np.zeros((n_frames, ly, lx)) if nonrigid > 0 else None
    fields_x = np.zeros((n_frames, ly, lx)) if nonrigid > 0 else None
    for t in range(n_frames):
        moved = np.real(np.fft.ifft2(ndi.fourier_shift(spectrum, (dy[t], dx[t]))))
        if nonrigid > 0:
            ay, ax, py, px = rng.uniform(-1, 1, 4)
            u = nonrigid * ay * np.sin(2 * np.pi * (xx / lx + py))
            v = nonrigid * ax * np.sin(2 * np.pi * (yy / ly + px))
            # content displaced by (u, v): frame(y, x) = moved(y - u, x - v), to first order in the warp
            frames[t] = ndi.map_coordinates(moved, [yy + oy - u, xx + ox - v], order=3, mode="nearest")
            fields_y[t], fields_x[t] = dy[t] + u, dx[t] + v
        else:
            frames[t] = moved[oy:oy + ly, ox:ox + lx]
    if noise > 0:
        frames += rng.normal(0, noise, frames.shape)
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        frames = np.clip(np.rint(frames), 0, np.iinfo(dtype).max)
    video = as_video(frames.astype(dtype), fps=10.0, chunks=chunks)
    truth = xr.Dataset({"dy": ("time", dy), "dx": ("time", dx),
                        "image": (("y", "x"), big[oy:oy + ly, ox:ox + lx])},
                       coords={"time": video.coords["time"]})
    if fields_y is not None:
        truth["dy_field"] = (("time", "y", "x"), fields_y)
        truth["dx_field"] = (("time", "y", "x"), fields_x)
    return video, truth


def default_chunkings(n: int, *, halo: int | None = None, seed: int = 0) -> list[tuple[int, ...]]:
    """Chunkings of ``n`` frames: one chunk, one-frame chunks, uneven chunks, and chunks smaller than ``halo``.

    Examples
    --------
    >>> from fluoxr.testing import default_chunkings
    >>> default_chunkings(5)[:2]
    [(5,), (1, 1, 1, 1, 1)]
    """
    out: list[tuple[int, ...]] = [(n,), (1,) * n]
    rng = np.random.default_rng(seed)
    sizes: list[int] = []
    while sum(sizes) < n:
        sizes.append(int(rng.integers(1, max(2, n // 3) + 1)))
    sizes[-1] -= sum(sizes) - n
    out.append(tuple(s for s in sizes if s > 0))
    half = max(1, n // 2)
    out.append((half, n - half) if n - half > 0 else (n,))
    if halo is not None and halo > 1:
        step = max(1, halo - 1)
        out.append(tuple([step] * (n // step) + ([n % step] if n % step else [])))
    unique: list[tuple[int, ...]] = []
    for c in out:
        if c not in unique:
            unique.append(c)
    return unique


def _as_comparable(obj: Any) -> Any:
    if isinstance(obj, (xr.DataArray, xr.Dataset)):
        return obj.compute()
    if hasattr(obj, "compute") and not isinstance(obj, (pd.DataFrame, pd.Series, np.ndarray)):
        return obj.compute()
    return obj


def assert_results_close(actual: Any, expected: Any, *, rtol: float = 1e-7, atol: float = 0.0,
                         where: str = "result") -> None:
    """Compare two results of any fluoxr kind (arrays, DataArrays, Datasets, DataFrames, tuples, dicts)."""
    actual, expected = _as_comparable(actual), _as_comparable(expected)
    if isinstance(expected, xr.Dataset):
        assert isinstance(actual, xr.Dataset), f"{where}: expected a Dataset, got {type(actual).__name__}"
        xr.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)
        assert actual.attrs == expected.attrs, f"{where}: attrs differ"
    elif isinstance(expected, xr.DataArray):
        assert isinstance(actual, xr.DataArray), f"{where}: expected a DataArray, got {type(actual).__name__}"
        assert actual.dims == expected.dims, f"{where}: dims {actual.dims} != {expected.dims}"
        if expected.dtype.kind in "biu":
            xr.testing.assert_identical(actual, expected)
        else:
            xr.testing.assert_allclose(actual, expected, rtol=rtol, atol=atol)
    elif isinstance(expected, pd.DataFrame):
        pd.testing.assert_frame_equal(actual, expected, rtol=rtol, atol=atol)
    elif isinstance(expected, pd.Series):
        pd.testing.assert_series_equal(actual, expected, rtol=rtol, atol=atol)
    elif isinstance(expected, Mapping):
        assert set(actual) == set(expected), f"{where}: keys differ"
        for k in expected:
            assert_results_close(actual[k], expected[k], rtol=rtol, atol=atol, where=f"{where}[{k!r}]")
    elif isinstance(expected, (tuple, list)):
        assert len(actual) == len(expected), f"{where}: lengths differ"
        for i, (a, e) in enumerate(zip(actual, expected)):
            assert_results_close(a, e, rtol=rtol, atol=atol, where=f"{where}[{i}]")
    else:
        a, e = np.asarray(actual), np.asarray(expected)
        if e.dtype.kind in "biuSUO":
            np.testing.assert_array_equal(a, e, err_msg=where)
        else:
            np.testing.assert_allclose(a, e, rtol=rtol, atol=atol, err_msg=where)


def assert_chunk_invariant(
    func: Callable[[xr.DataArray], Any],
    video: xr.DataArray,
    *,
    chunkings: Sequence[Any] | None = None,
    dim: str = "time",
    halo: int | None = None,
    rtol: float = 1e-7,
    atol: float = 0.0,
    check_lazy: bool = True,
) -> Any:
    """Assert that ``func(video)`` gives the same answer for every chunking along ``dim``.

    The default chunkings are one chunk, one-frame chunks, uneven chunks, two
    halves and (with ``halo``) chunks smaller than the halo. With
    ``check_lazy``, calling ``func`` must not compute anything (only
    computing its result may). Returns the result of the one-chunk run.

    Examples
    --------
    >>> from fluoxr.testing import assert_chunk_invariant, tiny_video
    >>> _ = assert_chunk_invariant(lambda v: v.cumsum("time"), tiny_video())
    """
    n = video.sizes[dim]
    if chunkings is None:
        chunkings = default_chunkings(n, halo=halo)
    reference = None
    for chunks in chunkings:
        rechunked = video.chunk({dim: chunks})
        if check_lazy:
            with raise_if_dask_computes():
                result = func(rechunked)
        else:
            result = func(rechunked)
        result = _as_comparable(result)
        if reference is None:
            reference = result
        else:
            assert_results_close(result, reference, rtol=rtol, atol=atol, where=f"chunks={chunks}")
    return reference
