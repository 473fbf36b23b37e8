"""Bleaching blocks: block edges, block moments, bleaching correction.

Blocks of frames with equal bleaching are cut on the median-smoothed total
signal (:func:`bleach_blocks`); their statistics are segment reductions
(:func:`fluoxr.drivers.reduce_time` with ``segments``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import dask.array as da
import numpy as np
import xarray as xr
from dask.graph_manipulation import bind

from ..drivers import TimeReduction, reduce_time
from ._common import _as_lazy_video, _check_edges, _check_fbc, _check_kernel, _check_orders, _frame_coords
from ._common import _result_attrs
from .moments import _block_cumulants, _fbc_edges, _segment_stats

def bleach_blocks(video: Any, *, fbc: float = 0.04, smooth_kernel: int = 251) -> xr.DataArray:
    """Frame edges of blocks with equal signal decrease (pysofi ``med_smooth`` + ``cut_frames``), lazily.

    The total signal per frame is median-smoothed (window ``smooth_kernel``,
    mirrored ends) and cut into ``ceil(1 / fbc)`` blocks; see
    :func:`fluoxr.kernels.sofi.cut_frames` for how cuts are placed and how
    they differ from pysofi's. Blocks that find no cut are empty at the end
    (their edges equal the number of frames). A recording whose smoothed
    signal does not fall clear of its noise (see
    :func:`fluoxr.kernels.sofi.block_bounds`) is one block, with a
    UserWarning naming ``fbc`` and the fall seen, emitted when the edges are
    computed (they depend on the data, so nothing is decided before).

    Returns
    -------
    xarray.DataArray
        ``("edge",)`` int64, ``ceil(1 / fbc) + 1`` frame indices from 0 to
        the number of frames.

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> decay = (1000 * np.exp(-np.arange(100) / 30))[:, None, None] * np.ones((1, 2, 2))
    >>> fluoxr.bleach_blocks(decay, fbc=0.25, smooth_kernel=5).values.tolist()
    [0, 10, 21, 40, 100]
    """
    fbc = _check_fbc(fbc)
    smooth_kernel = _check_kernel(smooth_kernel)
    video = _as_lazy_video(video, plain=True, what="bleach_blocks", device_ok=True)
    edges = _fbc_edges(video, fbc, smooth_kernel)
    return xr.DataArray(edges, dims=("edge",), name="bleach_blocks",
                        attrs={"fbc": fbc, "smooth_kernel": smooth_kernel, "long_name": "block edges (frames)"})


def block_moments(video: Any, orders: int | Sequence[int] = 6, *, fbc: float = 0.04, smooth_kernel: int = 251,
                  edges: Sequence[int] | None = None) -> xr.Dataset:
    """Mean, moments and cumulants of each block of frames (pysofi ``moments_all_blocks``, ``cumulants_all_blocks``).

    Blocks come from :func:`bleach_blocks` (``fbc``, ``smooth_kernel``; two
    reads of the data) or from explicit frame ``edges`` (one read). Each
    block's moments use the block's own mean (pysofi ``calc_block_moments``);
    blocks need not align with chunks.

    Memory: with explicit ``edges`` each block is reduced over only the
    chunks it meets and the result has one chunk per block, so no task holds
    more than a chunk's worth of block states, however many blocks there
    are. With blocks from the data (no ``edges``) the block boundaries are
    only known once the total signal is computed, so every state of the
    reduction carries the statistics of all ``ceil(1 / fbc)`` blocks
    (``(max(orders) + 1)`` images each) and the result is one chunk: memory
    grows with the number of blocks, never with the number of frames.

    Parameters
    ----------
    video : xarray.DataArray
        Lazy ``("time", "y", "x")`` video.
    orders : int or sequence of int
        As :func:`moments`.
    fbc, smooth_kernel
        As :func:`bleach_blocks`; validated always, used without ``edges``.
    edges : sequence of int, optional
        Frame edges of the blocks, rising from 0 to the number of frames
        (repeated edges give empty blocks).

    Returns
    -------
    xarray.Dataset
        ``mean_image`` ``("block", "y", "x")``, ``moments`` and ``cumulants``
        ``("block", "order", "y", "x")`` float64 (NaN for an empty block),
        ``start`` and ``stop`` ``("block",)`` frame indices.

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> video = fluoxr.as_video(np.random.default_rng(0).poisson(20, (60, 4, 4)).astype(np.uint16), chunks=7)
    >>> ds = fluoxr.block_moments(video, 2, edges=[0, 25, 60])
    >>> ds.moments.shape, ds.start.values.tolist()
    ((2, 2, 4, 4), [0, 25])
    """
    orders = _check_orders(orders)
    fbc = _check_fbc(fbc)
    smooth_kernel = _check_kernel(smooth_kernel)
    video = _as_lazy_video(video, plain=True, what="block_moments")
    n = video.sizes["time"]
    p = max(orders)
    if edges is None:
        edge_arr = _fbc_edges(video, fbc, smooth_kernel)
        # the edges come from the data: every state carries the open ones of the ceil(1 / fbc) blocks
        out = _segment_stats(video.data, edge_arr, p)
        attrs = {"fbc": fbc, "smooth_kernel": smooth_kernel}
    else:
        edge_arr = _check_edges(edges, n)
        out = _segment_stats(video.data, edge_arr, p)
        attrs = {}
    cum = out[:, 1:].map_blocks(_block_cumulants, dtype=np.float64)
    idx = list(orders)
    dims = video.dims[1:]
    coords = _frame_coords(video)
    coords["order"] = np.asarray(orders)
    return xr.Dataset(
        {"mean_image": (("block",) + dims, out[:, 0]),
         "moments": (("block", "order") + dims, out[:, idx]),
         "cumulants": (("block", "order") + dims, cum[:, [o - 1 for o in idx]]),
         "start": (("block",), edge_arr[:-1]),
         "stop": (("block",), edge_arr[1:])},
        coords=coords, attrs=_result_attrs(video, **attrs),
    )



class MeanMinState(NamedTuple):
    """Frames, float64 sum and minimum of a run of frames."""

    frames: int
    total: np.ndarray
    minimum: np.ndarray


def _meanmin_chunk(block: np.ndarray) -> MeanMinState:
    # sums, not means: sums of integer frames are exact in float64, so the block means (and the
    # rounding of x - mean, which can sit exactly on a half) do not depend on the chunking
    return MeanMinState(block.shape[0], block.sum(axis=0, dtype=np.float64), block.min(axis=0).astype(np.float64))


def _meanmin_combine(states: Sequence[MeanMinState]) -> MeanMinState:
    out = states[0]
    for s in states[1:]:
        out = MeanMinState(out.frames + s.frames, out.total + s.total, np.minimum(out.minimum, s.minimum))
    return out


def _meanmin_finalize(state: MeanMinState) -> np.ndarray:
    return np.stack([state.total / state.frames, state.minimum])


# rows: the mean and the minimum of a block
MEAN_MIN = TimeReduction("fluoxr-sofi-bleach-stats", chunk=_meanmin_chunk, combine=_meanmin_combine,
                         finalize=_meanmin_finalize, rows=2)


def _corrected_block(x: np.ndarray, t: np.ndarray, edges: np.ndarray, stats: np.ndarray, *,
                     out_dtype: np.dtype) -> np.ndarray:
    n_blocks = len(edges) - 1
    means, mins = stats[:n_blocks], stats[n_blocks:]
    # min over all frames of rint(x - block mean) = min over blocks of rint(block min - block mean)
    with np.errstate(invalid="ignore"):
        gmin = np.nanmin(np.rint(mins - means), axis=0)
    block = np.searchsorted(edges, t, side="right") - 1
    out = np.empty(x.shape, out_dtype)
    for k in np.unique(block):
        sel = block == k
        out[sel] = (np.rint(x[sel] - means[k]) - gmin).astype(out_dtype)
    return out


def bleach_correct(video: Any, *, fbc: float = 0.04, smooth_kernel: int = 251) -> xr.DataArray:
    """Bleaching-corrected video, lazily (pysofi ``correct_bleaching``).

    Frames are cut into blocks of equal bleaching (:func:`bleach_blocks`);
    each frame has its block's mean image subtracted and is rounded to an
    integer (half to even, as ``np.around``); the minimum over all frames is
    then subtracted pixel by pixel, so the result is non-negative. pysofi
    writes temporary TIFFs next to the input and re-reads them; here nothing
    is written: the result is a lazy video that reads the data a third time
    when computed (total signal, block statistics, frames).

    Differences from pysofi: ``smooth_kernel`` is used (pysofi's
    ``correct_bleaching`` always smooths with 251 frames, whatever it is
    given), and the total signal is exact (see :func:`total_signal`). Given
    the same blocks, the frames are identical to pysofi's.

    Returns
    -------
    xarray.DataArray
        A video like the input: int32 for integer inputs of up to 16 bits, int64 for wider integers,
        float64 (rounded values; NaN pixels stay NaN) for float inputs.

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> video = fluoxr.as_video(np.random.default_rng(0).poisson(50, (40, 3, 3)).astype(np.uint16))
    >>> bc = fluoxr.bleach_correct(video, fbc=0.5, smooth_kernel=5)
    >>> bc.dtype, int(bc.min())
    (dtype('int32'), 0)
    """
    fbc = _check_fbc(fbc)
    smooth_kernel = _check_kernel(smooth_kernel)
    video = _as_lazy_video(video, plain=True, what="bleach_correct")
    edges = _fbc_edges(video, fbc, smooth_kernel)
    n_blocks = edges.shape[0] - 1
    # (block, [mean, min], y, x) -> [means of the blocks, minima of the blocks], as _corrected_block takes them
    stats = reduce_time(video.data, MEAN_MIN, segments=edges)
    stats = stats.transpose((1, 0) + tuple(range(2, stats.ndim))).reshape((2 * n_blocks,) + video.data.shape[1:])
    dt = video.dtype
    # integers as pysofi (rounded); float input stays float so that NaN pixels stay NaN
    out_dtype = np.dtype(np.float64) if dt.kind == "f" else (
        np.dtype(np.int32) if dt.itemsize <= 2 else np.dtype(np.int64))
    data3 = bind(video.data, stats)
    t3 = da.arange(data3.shape[0], chunks=(data3.chunks[0],))
    out = da.blockwise(_corrected_block, "tyx", data3, "tyx", t3, "t", edges, "e", stats, "syx",
                       concatenate=True, out_dtype=out_dtype, dtype=out_dtype,
                       meta=np.empty((0, 0, 0), out_dtype), name="fluoxr-sofi-bleach-correct")
    result = xr.DataArray(out, dims=video.dims, coords=video.coords, attrs=dict(video.attrs), name=video.name)
    result.attrs.update(bleach_correction_fbc=fbc, bleach_correction_smooth_kernel=smooth_kernel)
    return result

