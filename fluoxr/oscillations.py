"""Protoplasmic oscillations: Cellects' influx/efflux detection on lazy videos, and cluster tracking.

Cellects (``detect_oscillations_dynamics``) finds where a specimen thickens
(influx) or slims (efflux) from the sign of every pixel's temporal intensity
gradient, then keeps coherent patches. :func:`detect` gives the identical
int8 labels chunk by chunk, with a halo of one frame along time, so a
recording of any length runs in the memory of a few chunks.
:func:`track_clusters` follows the oscillating clusters through time (fluoxr's
tracker, or with ``compat="cellects"`` Cellects' own cluster flux study, row
for row) and :func:`oscillation_coordinates` lists the influx/efflux pixels.

Differences from Cellects, all documented where they apply:

- ``compat=None`` (default) uses plain 8-connected components;
  ``compat="cellects"`` reproduces Cellects' ``cc()`` "background swap",
  and ``compat="cellects-lowmem"`` also its low-memory float16 path.
- Cellects switches to the low-memory path by itself when free RAM is short,
  so its output depends on the machine; fluoxr never switches by itself.
- ``lag="period"`` differences over a quarter of the expected period instead
  of adjacent frames.
"""

from __future__ import annotations

import logging
import warnings
from typing import Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from . import _backend
from ._validate import check_choice, check_int, check_number
from ._video import as_video, check_video, check_whole_frames
from .device import host
from .drivers import TemporalFilter, apply_temporal
from .kernels import oscillations as K
from .table import LazyTable

logger = logging.getLogger(__name__)

__all__ = ["detect", "track_clusters", "oscillation_coordinates", "CoordinateTable", "detection_halo", "KIND_NAMES"]

KIND_NAMES = {K.INFLUX: "influx", K.EFFLUX: "efflux"}
_COMPAT = (None, "cellects", "cellects-lowmem")
_LAG = (None, "period")


# --------------------------------------------------------------------------------------------
# detection


def detection_halo(*, period_s: float, interval_s: float, lag: str | None = None) -> int:
    """Frames of context on each side of a chunk that :func:`detect` needs (1, or ``k`` for ``lag="period"``)."""
    k = 1 if lag is None else K.period_lag(period_s, interval_s)
    return K.gradient_halo(k)


def _interval(obj: xr.DataArray, interval_s: Any, name: str = "interval_s") -> float:
    if interval_s is not None:
        return check_number(interval_s, name, gt=0)
    if obj.attrs.get("interval_s") is not None:
        return check_number(obj.attrs["interval_s"], f"{name} (from attrs['interval_s'])", gt=0)
    if obj.attrs.get("fps") is not None:
        return 1.0 / check_number(obj.attrs["fps"], f"{name} (from attrs['fps'])", gt=0)
    raise ValueError(
        f"{name} is required: the input has no 'fps' attribute, so the time between frames is unknown; "
        f"pass {name}=... (seconds between frames)"
    )


def _mask_array(mask: Any, video: xr.DataArray, chunks: tuple) -> da.Array:
    """``mask`` (2-D frame mask, or a video like Cellects' ``binary``) as a dask array shaped and chunked like ``video``."""
    dims = video.dims
    if isinstance(mask, xr.DataArray):
        mdims, data = mask.dims, mask.data
        unknown = set(mdims) - set(dims)
        if unknown:
            raise ValueError(f"mask has dims {mdims} that the video (dims {dims}) lacks: {sorted(map(str, unknown))}")
    else:
        if not hasattr(mask, "ndim"):
            mask = np.asarray(mask)
        data = mask
        if data.ndim == 2:
            mdims = ("y", "x")
        elif data.ndim == len(dims):
            mdims = dims
        else:
            raise ValueError(
                f"mask must be a frame mask of shape {tuple(video.shape[-2:])} or a video of shape "
                f"{tuple(video.shape)}; got shape {tuple(data.shape)}"
            )
    if getattr(data, "dtype", None) is not None and data.dtype.kind not in "biuf":
        raise TypeError(f"mask must hold booleans or numbers, got dtype {data.dtype}")
    for d, n in zip(mdims, data.shape):
        if n != video.sizes[d]:
            expected = tuple(video.sizes[x] for x in mdims)
            raise ValueError(
                f"mask must have the frame shape {tuple(video.shape[-2:])} (or the video's shape "
                f"{tuple(video.shape)}); got shape {tuple(data.shape)} for dims {mdims}, expected {expected}"
            )
    arr = data if isinstance(data, da.Array) else da.from_array(np.asarray(data), chunks=-1)
    order = [d for d in dims if d in mdims]
    arr = arr.transpose([mdims.index(d) for d in order])
    # missing dims become size 1 and are broadcast: the graph holds the frame mask once
    arr = arr.reshape(tuple(video.sizes[d] if d in mdims else 1 for d in dims))
    arr = da.broadcast_to(arr, video.shape, chunks=chunks) if "time" not in mdims else arr.rechunk(chunks)
    return arr


def _gradient_halo(*, k: int, **_: Any) -> tuple[int, int]:
    return k, k


def _detect_block(before: np.ndarray, block: np.ndarray, after: np.ndarray, mask: np.ndarray | None = None, *,
                  t0: int, n_frames: int, k: int, spacing: float | None, lowmem: bool, compat: bool, min_size: int,
                  start: int, batch: int = 32) -> np.ndarray:
    c0 = t0
    c1 = c0 + block.shape[0]
    n = c1 - c0
    out = np.zeros(block.shape, np.int8)
    planes = (-1,) + block.shape[-2:]
    # frames near the chunk's edges need its neighbours: only small stacks are
    # concatenated there; the inside is read from the chunk itself
    if n <= 2 * k:
        pieces = [(np.concatenate([before, block, after]), c0 - before.shape[0], c0, c1)]
    else:
        pieces = [(np.concatenate([before, block[: 2 * k]]), c0 - before.shape[0], c0, c0 + k),
                  (block, c0, c0 + k, c1 - k),
                  (np.concatenate([block[n - 2 * k :], after]), c1 - 2 * k, c1 - k, c1)]
    for frames, first, a, b in pieces:
        # a few frames at a time: the int8 signs of the whole chunk are never held at once
        for u0 in range(max(a, start), b, batch):
            u1 = min(b, u0 + batch)
            m = None if mask is None else np.asarray(mask)[u0 - c0 : u1 - c0]
            sign = K.gradient_sign(frames, first, (u0, u1), n_frames, k=k, spacing=spacing, lowmem=lowmem, mask=m)
            dest = out[u0 - c0 : u1 - c0]
            K.vote_and_filter(sign.reshape((u1 - u0,) + planes), min_size, compat,
                              out=dest.reshape((u1 - u0,) + planes))
    return out


def _detect_block_gpu(before: Any, block: Any, after: Any, mask: Any = None, *, t0: int, n_frames: int, k: int,
                      spacing: float | None, lowmem: bool, min_size: int, start: int,
                      kernels: _backend.Kernels, batch_pixels: int = 2**25) -> Any:
    """:func:`_detect_block` on the device: larger batches of frames, labelled together (default rule only)."""
    xp = _backend.array_module(block)
    c0 = t0
    c1 = c0 + block.shape[0]
    # the halos may come as empty blocks at the recording's ends
    frames = xp.concatenate([xp.asarray(before), block, xp.asarray(after)])
    first = c0 - before.shape[0]
    out = xp.zeros(block.shape, xp.int8)
    planes = (-1,) + tuple(block.shape[-2:])
    frame_px = max(int(np.prod(block.shape[1:], dtype=np.int64)), 1)
    batch = max(1, batch_pixels // frame_px)
    per_frame = mask is not None and not (mask.shape[0] > 1 and mask.strides[0] == 0)
    if mask is None:
        m_all = None
    else:
        # a frame mask broadcast along time is copied to the device once, not once per frame
        m_all = xp.asarray(mask if per_frame else mask[0])
    for u0 in range(max(c0, start), c1, batch):
        u1 = min(c1, u0 + batch)
        m = m_all[u0 - c0 : u1 - c0] if per_frame else m_all
        sign = kernels.gradient_sign(frames, first, (u0, u1), n_frames, k=k, spacing=spacing, lowmem=lowmem, mask=m,
                                     batch_bytes=2**28)
        out[u0 - c0 : u1 - c0] = kernels.vote_and_filter(sign.reshape((u1 - u0,) + planes), min_size).reshape(
            (u1 - u0,) + tuple(block.shape[1:]))
    return out


# the temporal gradient of every frame needs k frames on each side, copied from the neighbouring chunks
# (np.gradient is one-sided at the recording's ends: the kernels treat the ends themselves, edge "none");
# the kernels read the frames near the chunk's edges from small stacks, so they take the context split
_GRADIENT = TemporalFilter(_detect_block, halo=_gradient_halo, edge="none", split=True, position=True,
                           name="fluoxr-osc-detect")
_GRADIENT_GPU = TemporalFilter(_detect_block_gpu, halo=_gradient_halo, edge="none", split=True, position=True,
                               name="fluoxr-osc-detect-gpu")


def detect(
    video: xr.DataArray,
    *,
    period_s: float,
    min_cluster_size: int,
    interval_s: float | None = None,
    mask: Any = None,
    start: int = 0,
    lag: str | None = None,
    compat: str | None = None,
) -> xr.DataArray:
    """Influx (thickening) and efflux (slimming) clusters of every frame, as Cellects detects them.

    Lazy; each time chunk is computed with a halo of one frame (``k`` frames
    for ``lag="period"``) from its neighbours, so the result is identical for
    every chunking and memory does not grow with the number of frames.

    Per frame ``t`` (Cellects' ``detect_oscillations_dynamics``):

    1. every frame is divided by its whole-frame mean intensity;
    2. the temporal gradient (``np.gradient``: central differences, one-sided
       only at the recording's first and last frames), then its sign;
    3. the sign is 0 outside ``mask``;
    4. a pixel is influx (efflux) when more than 4 of its 8 neighbours are
       positive (negative), the pixel itself excluded; at the frame border
       neighbours are edge-replicated (so a border pixel can count itself);
    5. 8-connected components of the influx and of the efflux map; components
       smaller than ``min_cluster_size`` pixels are removed;
    6. frames before ``start`` are 0.

    Parameters
    ----------
    video : xarray.DataArray
        ``("time", [z], [channel], "y", "x")``, whole frames in every chunk.
        A colour video (``channel`` dim) uses its first channel, as Cellects
        does; the result then has no ``channel`` dim. ``z`` planes are
        processed independently. A raw NumPy or dask array is ``(time, y,
        x)`` or, with four dims, Cellects' colour layout ``(time, y, x,
        channel)`` (other layouts: wrap it with :func:`fluoxr.as_video` and
        its ``dims``).
    period_s : float
        Expected oscillation period in seconds. Cellects passes
        ``max(2, int(period_s / interval_s))`` to ``np.gradient`` as the
        sample *spacing*, which divides the gradient and so changes no sign:
        the default result does not depend on it (except with
        ``compat="cellects-lowmem"``). With ``lag="period"`` it sets the lag.
    min_cluster_size : int
        Smallest cluster kept, in pixels (>= 1).
    interval_s : float, optional
        Seconds between frames; default ``1 / video.attrs["fps"]``.
    mask : array-like or xarray.DataArray, optional
        Where the specimen is: a frame mask ``(y, x)``, or a video like
        Cellects' ``binary`` (``(time, y, x)``, lazy is fine). Zero means
        outside. Default: the whole frame.
    start : int
        First analysed frame (Cellects' ``starting_time``); earlier frames are 0.
    lag : {None, "period"}
        ``None``: ``np.gradient`` over adjacent frames (Cellects). ``"period"``:
        the sign of ``f[t + k] - f[t - k]`` with ``k = max(1, round(P / 4))``,
        ``P = period_s / interval_s`` frames: the central difference that
        responds most to an oscillation of the expected period (2k spans half a
        period) and averages out frame-to-frame noise -- the physically
        meaningful reading of "a gradient over the expected period". The
        window is clipped at the recording's ends.
    compat : {None, "cellects", "cellects-lowmem"}
        ``None``: plain, correct 8-connected components. ``"cellects"``:
        Cellects' ``cc()`` rule, label for label: components and the
        background are ranked by area, and a component whose bounding box
        touches more than two image borders can be taken for the background
        and dropped, the real background then becoming a cluster (see
        :func:`fluoxr.kernels.oscillations.kept_components`).
        ``"cellects-lowmem"``: also Cellects' low-memory path
        (``lose_accuracy_to_save_memory``, which Cellects also takes by itself
        when free RAM is short, so its results depend on the machine): the
        gradient, divided by the spacing, is rounded to 3 decimals and cast
        to float16 before the sign, so gradients below 0.0005 count as 0. The
        damage grows with the period: 5 % of signs change on Cellects' test
        data (spacing 5), 53 % on ``oscillating_sheet`` at 60 s / 2 s
        (spacing 30). Requires ``lag=None``.

    Returns
    -------
    xarray.DataArray
        int8, dims of ``video`` without ``channel``, with the chunks of
        ``video`` (also chunks shorter than the halo): 0 none, 1 influx,
        2 efflux. Attributes record the parameters.

    Notes
    -----
    Frames whose mean is 0 divide by zero, as in Cellects (signs from
    ``inf``/``nan``; ``nan`` gives 0). Ties in the ``compat="cellects"``
    ranking (two items of exactly equal area at a deciding rank) are broken
    as a stable sort; Cellects' own order there depends on OpenCV's label
    order and NumPy's unstable sort.

    Examples
    --------
    >>> import fluoxr
    >>> video, truth = fluoxr.datasets.oscillating_sheet(n_frames=40, shape=(48, 48))
    >>> labels = fluoxr.oscillations.detect(video, period_s=60, min_cluster_size=20, mask=truth.mask)
    >>> labels.dtype, labels.dims
    (dtype('int8'), ('time', 'y', 'x'))
    """
    if not isinstance(video, xr.DataArray) and getattr(video, "ndim", None) == 4:
        # a raw colour video in Cellects' own layout, the one documented here
        video = as_video(video, dims=("time", "y", "x", "channel"), name="video")
    video = check_video(video, "video", min_frames=2)
    check_whole_frames(video, "video")
    if "channel" in video.dims:
        logger.info("video has %d channels; using the first, as Cellects does", video.sizes["channel"])
        video = video.isel(channel=0, drop=True)
    period_s = check_number(period_s, "period_s", gt=0)
    interval_s = _interval(video, interval_s)
    min_cluster_size = check_int(min_cluster_size, "min_cluster_size", min_value=1)
    n = video.sizes["time"]
    start = check_int(start, "start", min_value=0)
    if start >= n:
        raise ValueError(f"start must be a frame index below the number of frames ({n}), got {start}")
    lag = check_choice(lag, "lag", _LAG)
    compat = check_choice(compat, "compat", _COMPAT)
    if compat == "cellects-lowmem" and lag is not None:
        raise ValueError("compat='cellects-lowmem' reproduces Cellects' np.gradient path and needs lag=None, "
                         f"got lag={lag!r}")

    if not isinstance(video.data, da.Array):
        video = as_video(video)
    if compat is not None:
        # Cellects' cc() rule ranks each frame's components one by one: CPU only
        video = host(video, f"fluoxr.oscillations.detect(compat={compat!r})")
    kernels = _backend.dispatch_for(video.data)
    device = compat is None and kernels.device
    data = video.data
    k = detection_halo(period_s=period_s, interval_s=interval_s, lag=lag)
    nd = data.ndim
    others = [] if mask is None else [_mask_array(mask, video, data.chunks)]
    spacing = K.cellects_spacing(period_s, interval_s) if lag is None else None
    if device:
        result = apply_temporal(data, _GRADIENT_GPU, axis=0, others=others, dtype=np.int8,
                                meta=_backend.meta_like(data, nd, np.int8), k=k, spacing=spacing, lowmem=False,
                                min_size=min_cluster_size, start=start, kernels=kernels)
    else:
        result = apply_temporal(data, _GRADIENT, axis=0, others=others, dtype=np.int8,
                                meta=np.empty((0,) * nd, np.int8), k=k, spacing=spacing,
                                lowmem=compat == "cellects-lowmem", compat=compat is not None,
                                min_size=min_cluster_size, start=start)
    coords = {name: c.variable for name, c in video.coords.items() if set(c.dims) <= set(video.dims)}
    attrs = {
        "long_name": "oscillation",
        "flag_values": [0, 1, 2],
        "flag_meanings": "none influx efflux",
        "fps": 1.0 / interval_s,
        "interval_s": interval_s,
        "period_s": period_s,
        "min_cluster_size": min_cluster_size,
        "start": start,
        "lag": "period" if lag else "gradient",
        "lag_frames": k,
        "compat": compat or "none",
    }
    if video.attrs.get("source"):
        attrs["source"] = video.attrs["source"]
    if video.attrs.get("pixel_size"):
        attrs["pixel_size"] = video.attrs["pixel_size"]
    return xr.DataArray(result, dims=video.dims, coords=coords, attrs=attrs, name="oscillations")


# --------------------------------------------------------------------------------------------
# labels given to tracking and coordinates


def _check_labels(labels: Any, *, allow_z: bool) -> xr.DataArray:
    if not isinstance(labels, xr.DataArray):
        raise TypeError(f"labels must be the xarray.DataArray returned by fluoxr.oscillations.detect, "
                        f"got {type(labels).__name__}")
    expected = ("time", "z", "y", "x") if allow_z else ("time", "y", "x")
    if labels.dims not in (("time", "y", "x"), expected):
        hint = "; select one plane with labels.isel(z=...)" if "z" in labels.dims and not allow_z else ""
        raise ValueError(f"labels must have dims ('time', 'y', 'x'), got {labels.dims}{hint}")
    if labels.dtype.kind not in "iu":
        raise TypeError(f"labels must hold integers (0 none, 1 influx, 2 efflux), got dtype {labels.dtype}")
    if labels.sizes["time"] < 1:
        raise ValueError("labels must have at least one frame")
    check_whole_frames(labels, "labels")
    return labels


def _dask_data(labels: xr.DataArray) -> da.Array:
    data = labels.data
    if not isinstance(data, da.Array):
        data = da.from_array(np.asarray(data), chunks=(-1,) * data.ndim)
    return data


# --------------------------------------------------------------------------------------------
# coordinates table


def _check_label_values(block: np.ndarray) -> None:
    """Labels are 0, 1 or 2: a video passed by mistake would otherwise give an empty or wrong table silently."""
    if block.size and (block.min() < 0 or block.max() > 2):
        raise ValueError(f"labels must hold only 0 (none), 1 (influx) and 2 (efflux), found values from "
                         f"{int(block.min())} to {int(block.max())}; pass the output of fluoxr.oscillations.detect")


def _coords_block(block: np.ndarray, t0: int) -> np.ndarray:
    block = np.asarray(block)
    _check_label_values(block)
    nz = np.nonzero((block == K.INFLUX) | (block == K.EFFLUX))
    out = np.empty((nz[0].size, block.ndim + 1), np.int32)
    out[:, 0] = nz[0] + t0
    for j, idx in enumerate(nz[1:], start=1):
        out[:, j] = idx
    out[:, -1] = block[nz]
    return out


def _coords_frame(block: np.ndarray, t0: int, fields: tuple[str, ...]) -> pd.DataFrame:
    """One partition of the coordinates table: the influx/efflux pixels of one time chunk."""
    df = pd.DataFrame(_coords_block(block, t0), columns=list(fields))
    return df.astype({"kind": np.int8})


#: Deprecated alias (fluoxr 0.1 had its own coordinates collection); kept for one release.
CoordinateTable = LazyTable


def oscillation_coordinates(labels: xr.DataArray) -> LazyTable:
    """The influx/efflux pixels as a lazy table: one row per pixel and frame, columns ``t, (z), y, x, kind``.

    Cellects writes these coordinates as two HDF5 files (``coord_thickening``
    and ``coord_slimming``); here one table holds both (``kind`` 1 influx,
    2 efflux), rows in time order. Its length is unknown until computed:
    ``.compute()`` gives a DataFrame, and :func:`fluoxr.save` writes it out
    of core, one time chunk at a time; the saved table reopens
    (:func:`fluoxr.open_result`) as a ``("pixel", "field")`` DataArray.

    Parameters
    ----------
    labels : xarray.DataArray
        Result of :func:`detect` (``("time", [z], "y", "x")``): 0 none,
        1 influx, 2 efflux; any other value is a ValueError when the table
        is computed (as in :func:`track_clusters`).

    Returns
    -------
    fluoxr.LazyTable
        Lazy, one partition per time chunk of ``labels``; int32 columns
        ``t`` (frame index), (``z``), ``y``, ``x`` and int8 ``kind``;
        attributes ``fps`` and ``interval_s`` when known. ``to_xarray()``
        (what :func:`fluoxr.save` writes) is one int32 ``("pixel",
        "field")`` DataArray.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from fluoxr.oscillations import oscillation_coordinates
    >>> labels = xr.DataArray(np.array([[[0, 1], [2, 0]]], np.int8), dims=("time", "y", "x"))
    >>> oscillation_coordinates(labels).compute().values.tolist()
    [[0, 0, 1, 1], [0, 1, 0, 2]]
    """
    labels = host(_check_labels(labels, allow_z=True), "fluoxr.oscillations.oscillation_coordinates")
    data = _dask_data(labels)
    fields = ("t",) + tuple(str(d) for d in labels.dims[1:]) + ("kind",)
    starts = np.cumsum((0,) + data.chunks[0])
    # one partition of rows per time chunk; its length is known only once computed
    blocks = data.to_delayed(optimize_graph=False).reshape(-1)
    parts = [dask.delayed(_coords_frame, pure=True)(block, int(starts[i]), fields) for i, block in enumerate(blocks)]
    attrs = {"long_name": "influx/efflux pixels", "kind_flag_values": [1, 2], "kind_flag_meanings": "influx efflux"}
    for key in ("fps", "interval_s", "source", "pixel_size"):
        if labels.attrs.get(key) is not None:
            attrs[key] = labels.attrs[key]
    meta = _coords_frame(np.zeros((0,) + (1,) * (len(fields) - 2), np.int8), 0, fields)
    return LazyTable(parts, meta, dim="pixel", attrs=attrs, name="oscillation_coordinates")


# --------------------------------------------------------------------------------------------
# cluster tracking: chunk-local tables, stitched in a chain of small tasks

_TABLE_COLUMNS = [
    "cluster", "kind", "first_frame", "last_frame", "n_frames", "duration_s", "area_max", "area_mean",
    "y_start", "x_start", "y_end", "x_end", "y_mean", "x_mean", "path_px", "displacement_px",
    "period_s", "period_n", "truncated",
]


def _last_frame(block: np.ndarray) -> np.ndarray:
    return np.asarray(block[-1])


def _aggregate_samples(groups: np.ndarray, periods: np.ndarray, weights: np.ndarray | None = None) -> np.ndarray:
    """``(group, period, count)`` rows, one per distinct pair."""
    if groups.size == 0:
        return np.empty((0, 3), np.int64)
    w = np.ones(groups.size, np.int64) if weights is None else weights
    key = np.stack([groups.astype(np.int64), periods.astype(np.int64)], axis=1)
    uniq, inv = np.unique(key, axis=0, return_inverse=True)
    counts = np.bincount(inv.ravel(), weights=w, minlength=len(uniq)).astype(np.int64)
    return np.column_stack([uniq, counts])


def _track_chunk(block: np.ndarray, prev: np.ndarray | None, *, t0: int, onset_after: int,
                 min_overlap: int) -> dict[str, Any]:
    """Clusters of one chunk: rows per (component, frame), local tracks, boundary images, onsets."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    block = np.asarray(block)
    _check_label_values(block)
    block = np.ascontiguousarray(block, dtype=np.int8)
    has_prev = prev is not None
    if has_prev:
        prev = np.asarray(prev)
        prev = np.where((prev == 1) | (prev == 2), prev, 0).astype(np.int8)
    else:
        prev = np.zeros(block.shape[1:], np.int8)
    comp, links, first_img, last_img, first_t, first_c, last_t, samples = K.track_block(
        block, prev, has_prev, int(t0), int(onset_after), int(min_overlap))
    n = comp.shape[0]
    if n:
        graph = coo_matrix((np.ones(len(links)), (links[:, 0], links[:, 1])), shape=(n, n))
        n_tracks, track = connected_components(graph, directed=False)
    else:
        n_tracks, track = 0, np.empty(0, np.int64)
    track = track.astype(np.int64)
    first_track = np.where(first_c >= 0, track[np.maximum(first_c, 0)] if n else -1, -1).astype(np.int32)
    return {
        "t0": int(t0),
        "t1": int(t0) + block.shape[0],
        "comp": comp,
        "track": track,
        "n_tracks": int(n_tracks),
        "first_img": first_img.astype(np.int32),
        "last_img": last_img.astype(np.int32),
        "first_t": first_t.astype(np.int32),
        "first_track": first_track,
        "last_t": last_t.astype(np.int32),
        "samples": _aggregate_samples(track[samples[:, 0]] if n else samples[:, 0], samples[:, 1]),
    }


def _find(parent: dict[int, int], x: int) -> int:
    root = x
    while parent[root] != root:
        root = parent[root]
    while parent[x] != root:
        parent[x], x = root, parent[x]
    return root


def _summarise(rows: np.ndarray, samples: np.ndarray, *, interval_s: float, onset_after: int,
               n_frames: int) -> tuple:
    """One table row from a cluster's ``(frame, kind, area, sum y, sum x, first pixel)`` rows and period samples."""
    order = np.lexsort((rows[:, 5], rows[:, 0]))
    rows = rows[order]
    frames, idx = np.unique(rows[:, 0], return_index=True)
    area = np.add.reduceat(rows[:, 2], idx)
    cy = np.add.reduceat(rows[:, 3], idx) / area
    cx = np.add.reduceat(rows[:, 4], idx) / area
    first, last = int(frames[0]), int(frames[-1])
    path = float(np.sum(np.hypot(np.diff(cy), np.diff(cx))))
    if samples.size:
        per = samples[:, 0]
        cnt = samples[:, 1]
        o = np.argsort(per, kind="stable")
        per, cnt = per[o], cnt[o]
        total = int(cnt.sum())
        cum = np.cumsum(cnt)
        lo = per[np.searchsorted(cum, (total - 1) // 2 + 1)]
        hi = per[np.searchsorted(cum, total // 2 + 1)]
        period_s = 0.5 * (lo + hi) * interval_s
    else:
        total, period_s = 0, np.nan
    kind = int(rows[0, 1])
    return (
        first, int(rows[0, 5]),  # sort key: first frame, then first pixel (clusters are disjoint)
        KIND_NAMES[kind], first, last, last - first + 1, (last - first + 1) * interval_s,
        int(area.max()), float(area.mean()),
        float(cy[0]), float(cx[0]), float(cy[-1]), float(cx[-1]), float(cy.mean()), float(cx.mean()),
        path, float(np.hypot(cy[-1] - cy[0], cx[-1] - cx[0])),
        float(period_s), total, bool(first <= onset_after or last >= n_frames - 1),
    )


def _stitch(state: dict[str, Any] | None, res: dict[str, Any], *, min_overlap: int, interval_s: float,
            onset_after: int, n_frames: int) -> tuple[dict[str, Any], list[tuple]]:
    """Add one chunk's clusters to the open clusters; return the new state and the clusters that ended.

    A cluster can only grow through its pixels in the last frame seen so
    far, so every cluster without a pixel there is complete and summarised
    now; the state holds only the open ones (new containers each step: a
    task never changes its input).
    """
    if state is None:
        state = {"next_gid": 0, "parent": {}, "open": {}, "last_img": None, "last_gid": None,
                 "last_kind": None, "carried": None}
    parent = dict(state["parent"])
    open_ = dict(state["open"])
    comp, track = res["comp"], res["track"]
    gid0 = state["next_gid"]
    # register this chunk's tracks as clusters of their own
    order = np.argsort(track, kind="stable")
    bounds = np.searchsorted(track[order], np.arange(res["n_tracks"] + 1))
    new_samples = [res["samples"]]

    # period samples whose earlier onset lies in an earlier chunk
    carried = state["carried"]
    first_t, first_track = res["first_t"], res["first_track"]
    if carried is not None:
        for kk in (0, 1):
            oo = 1 - kk
            ft = first_t[kk]
            alternated = ((first_t[oo] >= 0) & (first_t[oo] < ft)) | (carried[oo] > carried[kk])
            sel = (ft >= 0) & (carried[kk] >= 0) & alternated
            if sel.any():
                new_samples.append(_aggregate_samples(first_track[kk][sel], ft[sel] - carried[kk][sel]))
        carried = np.where(res["last_t"] >= 0, res["last_t"], carried)
    else:
        carried = res["last_t"].copy()
    samples = np.concatenate(new_samples) if len(new_samples) > 1 else new_samples[0]
    s_order = np.argsort(samples[:, 0], kind="stable")
    samples = samples[s_order]
    s_bounds = np.searchsorted(samples[:, 0], np.arange(res["n_tracks"] + 1))
    for tr in range(res["n_tracks"]):
        gid = gid0 + tr
        parent[gid] = gid
        rows = comp[order[bounds[tr] : bounds[tr + 1]]]
        open_[gid] = {"rows": [rows], "samples": [samples[s_bounds[tr] : s_bounds[tr + 1], 1:]],
                      "kind": int(rows[0, 1])}

    # links across the chunk boundary: overlap of components, counted per pair of components
    if state["last_img"] is not None:
        a = state["last_img"].ravel()
        b = res["first_img"].ravel()
        sel = (a > 0) & (b > 0)
        if sel.any():
            pa, pb = a[sel] - 1, b[sel] - 1
            same = state["last_kind"][pa] == comp[pb, 1]
            pairs = _aggregate_samples(pa[same], pb[same])
            for ca, cb, count in pairs:
                if count < min_overlap:
                    continue
                ra = _find(parent, int(state["last_gid"][ca]))
                rb = _find(parent, gid0 + int(track[cb]))
                if ra == rb:
                    continue
                keep, drop = min(ra, rb), max(ra, rb)
                parent[drop] = keep
                da_, db_ = open_.pop(drop), open_[keep]
                open_[keep] = {"rows": db_["rows"] + da_["rows"], "samples": db_["samples"] + da_["samples"],
                               "kind": db_["kind"]}

    # clusters with a pixel in this chunk's last frame stay open; all others are complete
    last_img = res["last_img"]
    in_last = np.unique(last_img[last_img > 0]) - 1
    still_open = {_find(parent, gid0 + int(track[c])) for c in in_last}
    finished = []
    for root in list(open_):
        if root in still_open:
            continue
        data = open_.pop(root)
        rows = np.concatenate(data["rows"])
        smp = np.concatenate(data["samples"]) if data["samples"] else np.empty((0, 2), np.int64)
        finished.append(_summarise(rows, smp, interval_s=interval_s, onset_after=onset_after, n_frames=n_frames))
    # forget the union-find entries of finished clusters
    alive = {g for g in parent if _find(parent, g) in still_open}
    parent = {g: _find(parent, g) for g in alive}
    new_state = {
        "next_gid": gid0 + res["n_tracks"],
        "parent": parent,
        "open": open_,
        "last_img": last_img,
        "last_gid": gid0 + track,
        "last_kind": comp[:, 1].copy(),
        "carried": carried,
    }
    return new_state, finished


def _assemble(finished: list[list[tuple]], state: dict[str, Any] | None, *, interval_s: float,
              onset_after: int, n_frames: int) -> pd.DataFrame:
    rows = [r for part in finished for r in part]
    if state is not None:
        for data in state["open"].values():  # pragma: no cover - the last chunk closes every cluster
            smp = np.concatenate(data["samples"]) if data["samples"] else np.empty((0, 2), np.int64)
            rows.append(_summarise(np.concatenate(data["rows"]), smp, interval_s=interval_s,
                                   onset_after=onset_after, n_frames=n_frames))
    rows.sort(key=lambda r: (r[0], r[1]))
    df = pd.DataFrame([r[2:] for r in rows], columns=_TABLE_COLUMNS[1:])
    df.insert(0, "cluster", np.arange(len(df), dtype=np.int64))
    dtypes = {"first_frame": np.int64, "last_frame": np.int64, "n_frames": np.int64, "area_max": np.int64,
              "period_n": np.int64, "truncated": bool}
    # every other column is float64 (also when there are no rows, which would leave them object)
    dtypes.update({c: np.float64 for c in _TABLE_COLUMNS[2:] if c not in dtypes})
    df = df.astype(dtypes)
    df["kind"] = pd.Categorical(df["kind"], categories=["influx", "efflux"])
    df.attrs.update(interval_s=interval_s, n_frames=n_frames, first_analysed_frame=onset_after)
    return df


# --------------------------------------------------------------------------------------------
# Cellects' cluster flux study: a sequential chain of chunk steps carrying Cellects' small state

_FLUX_COLUMNS = ["mean_pixel_period", "archive_frame", "size", "edge_distance", "centroid_y", "centroid_x", "kind"]


def _flux_frame(rows: np.ndarray, kinds: np.ndarray) -> pd.DataFrame:
    """One partition of the Cellects table from :func:`fluoxr.kernels.cluster_flux.flux_frames`' rows."""
    from .kernels import cluster_flux as CF

    col = {name: rows[:, i] for i, name in enumerate(CF.ROW_FIELDS)}
    df = pd.DataFrame({
        "mean_pixel_period": col["mean_pixel_period"],
        "archive_frame": col["archive_frame"].astype(np.int64),
        "size": col["size"].astype(np.int64),
        "edge_distance": col["edge_distance"],
        "centroid_y": col["centroid_y"],
        "centroid_x": col["centroid_x"],
        "kind": pd.Categorical.from_codes(np.asarray(kinds, np.int64) - 1, categories=["influx", "efflux"]),
    })
    return df


def _flux_step(state: Any, block: np.ndarray, contours: np.ndarray, *, t0: int, start: int
               ) -> tuple[Any, pd.DataFrame]:
    """One chunk of Cellects' frame loop: the state after it and the rows archived in it."""
    from .kernels import cluster_flux as CF

    block = np.asarray(block)
    _check_label_values(block)
    if state is None:
        state = CF.initial_state(block.shape[1:])
    state, rows, kinds = CF.flux_frames(block, np.asarray(contours), state, t0=t0, start=start)
    return state, _flux_frame(rows, kinds)


def _contour_mask_blocks(contours: Any, mask: Any, labels: xr.DataArray, chunks: tuple) -> list:
    """Per time chunk: the contour image(s) Cellects' loop sees (one ``(y, x)`` image, or one per frame)."""
    from .kernels import cluster_flux as CF

    if contours is not None and mask is not None:
        raise ValueError("give contours or mask, not both")
    given, name = (contours, "contours") if contours is not None else (mask, "mask")
    shape = tuple(labels.shape[1:])
    if given is None:
        # no specimen given: the whole frame is the specimen (its contour: nothing, OpenCV erodes with set borders)
        return [CF.contours_from_mask(np.ones(shape, bool))] * len(chunks)
    if isinstance(given, xr.DataArray):
        given = given.data
    ndim = getattr(given, "ndim", np.ndim(given))
    if ndim == 2 and isinstance(given, da.Array):
        # lazy: the contour is derived inside the graph, nothing is computed here
        if tuple(given.shape) != shape:
            raise ValueError(f"{name} must be one (y, x) frame of shape {shape} or a (time, y, x) video, "
                             f"got shape {tuple(given.shape)}")
        if given.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be a boolean or numeric image, got dtype {given.dtype}")
        fn = CF.contours_from_mask if name == "mask" else _ones_of
        return [dask.delayed(fn, pure=True)(given)] * len(chunks)
    if ndim == 2:
        arr = np.asarray(given)
        if arr.shape != shape:
            raise ValueError(f"{name} must be one (y, x) frame of shape {shape} or a (time, y, x) video, "
                             f"got shape {arr.shape}")
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{name} must be a boolean or numeric image, got dtype {arr.dtype}")
        image = CF.contours_from_mask(arr) if name == "mask" else (arr != 0).astype(np.uint8)
        return [image] * len(chunks)
    if ndim != 3 or tuple(given.shape) != (labels.shape[0],) + shape:
        raise ValueError(f"{name} must be one (y, x) frame of shape {shape} or a (time, y, x) video of shape "
                         f"{(labels.shape[0],) + shape}, got shape {tuple(getattr(given, 'shape', ()))}")
    data = given if isinstance(given, da.Array) else da.from_array(np.asarray(given), chunks=-1)
    if data.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be boolean or numeric, got dtype {data.dtype}")
    data = data.rechunk((chunks, -1, -1))
    fn = _mask_contours if name == "mask" else _ones_of
    return [dask.delayed(fn, pure=True)(b) for b in data.to_delayed(optimize_graph=False).reshape(-1)]


def _mask_contours(block: np.ndarray) -> np.ndarray:
    from .kernels import cluster_flux as CF

    return np.stack([CF.contours_from_mask(f) for f in np.asarray(block)]) if len(block) else \
        np.zeros(np.shape(block), np.uint8)


def _ones_of(block: np.ndarray) -> np.ndarray:
    return (np.asarray(block) != 0).astype(np.uint8)


def _track_clusters_cellects(labels: xr.DataArray, contours: Any, mask: Any, interval_s: float | None) -> LazyTable:
    data = _dask_data(labels)
    start = int(labels.attrs.get("start", 0) or 0)
    blocks = data.to_delayed(optimize_graph=False).reshape(-1)
    starts = np.cumsum((0,) + data.chunks[0])
    images = _contour_mask_blocks(contours, mask, labels, data.chunks[0])
    # Cellects' loop is sequential (each frame's names, periods and records depend on all earlier frames), so
    # the chunks run as a chain: task i takes the state left by task i - 1 -- two (y, x) uint32 images per
    # kind and the pixel records of the clusters still alive -- and gives the rows archived in its frames
    state = None
    parts = []
    for i, block in enumerate(blocks):
        state, rows = dask.delayed(_flux_step, nout=2, pure=True)(state, block, images[i], t0=int(starts[i]),
                                                                  start=start)
        parts.append(rows)
    meta = _flux_frame(np.zeros((0, 6), np.float32), np.zeros(0, np.int8))
    attrs = {"n_frames": int(data.shape[0]), "first_analysed_frame": start, "compat": "cellects"}
    if interval_s is not None:
        attrs["interval_s"] = interval_s
    meta.attrs.update(attrs)
    return LazyTable(parts, meta, dim="cluster", attrs=attrs, name="cluster_flux")


def track_clusters(
    labels: xr.DataArray,
    *,
    min_overlap: int = 1,
    interval_s: float | None = None,
    compute: bool | None = None,
    compat: str | None = None,
    contours: Any = None,
    mask: Any = None,
) -> LazyTable | pd.DataFrame:
    """Oscillating clusters followed through time: one table row per cluster (fluoxr's tracker, or Cellects').

    In every frame, the 8-connected components of the influx pixels and of
    the efflux pixels are found. Components of the same kind in consecutive
    frames that share at least ``min_overlap`` pixels are linked; a
    *cluster* is a connected set of linked components. So a **split** keeps
    both parts in the cluster and a **merge** joins the clusters involved
    (Cellects' tracker likewise keeps the name on a split and gives a merged
    cluster the smallest name). Per frame, a cluster's area and centroid are
    those of all its components in that frame. Influx and efflux clusters
    are never linked to each other: a patch that turns from influx to
    efflux ends one cluster and starts another.

    The local oscillation period comes from the alternation at each pixel: when
    a pixel enters a kind (an *onset*), and it entered that kind before
    and the other kind in between, the time since its previous onset of that
    kind is one period sample, credited to the cluster the pixel enters. The
    cluster's ``period_s`` is the median of its samples (NaN when it has
    none, e.g. in the first period of a recording).

    Computed chunk by chunk (one task per time chunk, which also carries the
    components of its first and last frames and the onsets at every pixel),
    then stitched in a chain of small tasks, so a cluster crossing chunk
    boundaries is one cluster and the table is the same for every chunking.
    Memory holds a few chunks plus the per-frame rows of the clusters still
    open.

    ``compat="cellects"`` gives instead Cellects' own cluster flux study
    (``ClusterFluxStudy.update_flux``, driven frame by frame as Cellects'
    ``MotionAnalysis`` drove it; the class ships in no Cellects release):
    one row per *archived* cluster, row for row Cellects'
    ``clusters_final_data``. Per frame that holds any cluster, the efflux
    then the influx study: pixels that left a live cluster are recorded
    (with the frames they stayed in the flux), each current component
    (Cellects' ``cc()`` ranking, background swap included) takes the
    smallest name of the clusters it overlaps (a merge) or a new name, and a
    cluster none of whose pixels is left is archived. Its row holds the mean
    of its records' periods, the frame, the number of records (a pixel
    counted once per stay), the distance to the specimen's contour (1 when
    touching) and the centroid of one of its components. This reproduces,
    on purpose, what Cellects did and fluoxr's tracker does not: both kinds
    share one period-tracking image (a pixel going straight from influx to
    efflux has its influx run counted one frame too long and its efflux run
    one frame too short); archived clusters mark the contour image for the
    later clusters of that frame, so an "edge distance" can be the distance
    to an earlier cluster; the distance is Cellects' quadrant shortcut (the
    minimum inside the quadrants holding both shapes, not the true minimal
    distance); the centroid is that of the component OpenCV numbers first,
    not of the whole cluster; frames without any cluster are skipped (no
    archiving then). Where Cellects has no defined result fluoxr takes the
    definition of the oracle driver it is tested against: components of
    equal area rank the later OpenCV label first (a stable sort; Cellects'
    unstable sort depends on the NumPy build) and where Cellects'
    quadrant loop never ends (two diagonal quadrants) the distance is taken
    in that unchanged sub-image. The default tracker stays fluoxr's: it
    follows every cluster over its whole life with areas, paths and
    per-pixel alternation periods that do not depend on the order in which
    clusters are visited, which Cellects' table does. The Cellects table is
    built by a chain of one task per time chunk carrying Cellects' small
    state (the shared period image, one name image per kind and the pixel
    records of the clusters still alive), so it is the same for every
    chunking.

    Parameters
    ----------
    labels : xarray.DataArray
        ``("time", "y", "x")`` result of :func:`detect` (0 none, 1 influx,
        2 efflux); any other value is a ValueError (when the table is
        computed, as values are only known then). Its attribute ``start`` (set by
        :func:`detect`) is the first analysed frame: onsets are not counted
        there, since runs in progress have an unknown beginning.
    min_overlap : int
        Pixels two components must share to be linked (>= 1).
    interval_s : float, optional
        Seconds between frames; default from ``labels.attrs`` (``interval_s``
        or ``fps``).
    compute : bool, optional
        Deprecated: the table is lazy, call ``.compute()`` on it.
        ``compute=True`` still returns the DataFrame (with a
        ``DeprecationWarning``), for this release only.
    compat : {None, "fluoxr", "cellects"}
        ``None``/``"fluoxr"``: fluoxr's tracker (default). ``"cellects"``:
        Cellects' cluster flux study (above); ``min_overlap`` is then not
        used.
    contours : array-like, optional
        With ``compat="cellects"``: the specimen's contour, nonzero on it,
        ``(y, x)`` or one per frame ``(time, y, x)`` (Cellects recomputes it
        from ``binary[t]`` every frame).
    mask : array-like, optional
        With ``compat="cellects"``, instead of ``contours``: the specimen
        (``(y, x)`` or ``(time, y, x)``, Cellects' ``binary``), whose contour
        is taken as Cellects takes it: ``mask - erode(mask, 3 x 3 cross)``,
        pixels outside the image counting as inside the specimen. Neither
        given: the whole frame is the specimen, which then has no contour
        pixel and an untouching cluster's distance is ``inf``.

    Returns
    -------
    fluoxr.LazyTable
        ``compat="cellects"``: one partition per time chunk, one row per
        archived cluster in Cellects' order (frame by frame, efflux before
        influx, then by name): ``mean_pixel_period`` (float32, frames),
        ``archive_frame`` (the frame it was archived in, the first without
        any of its pixels), ``size`` (pixel records), ``edge_distance``
        (float32, pixels; 1 when touching the contour), ``centroid_y`` and
        ``centroid_x`` (float32; Cellects' columns 5 and 4, whose names it
        swapped), ``kind`` ("influx"/"efflux").

        Otherwise lazy (one partition); ``.compute()`` gives the DataFrame, one row per
        cluster, ordered by first frame then first pixel:
        ``cluster`` (0, 1, ...), ``kind`` ("influx"/"efflux"), ``first_frame``,
        ``last_frame``, ``n_frames``, ``duration_s`` (``n_frames *
        interval_s``), ``area_max`` and ``area_mean`` (pixels per frame),
        centroid path: ``y_start``, ``x_start``, ``y_end``, ``x_end``,
        ``y_mean``, ``x_mean`` (mean of the per-frame centroids), ``path_px``
        (summed frame-to-frame centroid steps), ``displacement_px`` (start to
        end); ``period_s``, ``period_n`` (number of period samples);
        ``truncated`` (the cluster touches the first analysed or the last
        frame, so its duration is a lower bound).

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from fluoxr.oscillations import track_clusters
    >>> frames = np.zeros((4, 5, 5), np.int8)
    >>> frames[1:3, 1:3, 1:3] = 1
    >>> labels = xr.DataArray(frames, dims=("time", "y", "x"), attrs={"fps": 2.0})
    >>> table = track_clusters(labels).compute()
    >>> table[["kind", "first_frame", "n_frames", "duration_s", "area_max"]].values.tolist()
    [['influx', 1, 2, 1.0, 4]]

    Cellects' table needs a frame with a cluster to archive one (frame 3):

    >>> frames[3, 0, 0] = 2
    >>> mask = np.pad(np.ones((3, 3), bool), 1)
    >>> labels = xr.DataArray(frames, dims=("time", "y", "x"))
    >>> cellects = track_clusters(labels, compat="cellects", mask=mask).compute()
    >>> cellects[["kind", "archive_frame", "size", "mean_pixel_period", "edge_distance"]].values.tolist()
    [['influx', 3, 4, 2.0, 1.0]]
    """
    labels = host(_check_labels(labels, allow_z=False), "fluoxr.oscillations.track_clusters")
    compat = check_choice(compat, "compat", (None, "fluoxr", "cellects"))
    min_overlap = check_int(min_overlap, "min_overlap", min_value=1)
    if compat == "cellects":
        # Cellects' table is in frames: the frame interval is only passed on, when known
        known = interval_s is not None or labels.attrs.get("interval_s") or labels.attrs.get("fps")
        interval_s = _interval(labels, interval_s) if known else None
        table = _track_clusters_cellects(labels, contours, mask, interval_s)
        if compute:
            warnings.warn("track_clusters(..., compute=True) is deprecated and will be removed: call .compute() "
                          "on the lazy fluoxr.LazyTable it returns", DeprecationWarning, stacklevel=2)
            return table.compute()
        return table
    if contours is not None or mask is not None:
        raise ValueError("contours and mask are used only with compat='cellects' (Cellects' edge distance)")
    interval_s = _interval(labels, interval_s)
    onset_after = int(labels.attrs.get("start", 0) or 0)
    data = _dask_data(labels)
    n_frames = data.shape[0]
    blocks = data.to_delayed(optimize_graph=False).reshape(-1)
    starts = np.cumsum((0,) + data.chunks[0])
    state = None
    finished = []
    kw = dict(interval_s=interval_s, onset_after=onset_after, n_frames=n_frames)
    for i, block in enumerate(blocks):
        prev = dask.delayed(_last_frame, pure=True)(blocks[i - 1]) if i else None
        res = dask.delayed(_track_chunk, pure=True)(block, prev, t0=int(starts[i]), onset_after=onset_after,
                                                    min_overlap=min_overlap)
        state, done = dask.delayed(_stitch, nout=2, pure=True)(state, res, min_overlap=min_overlap, **kw)
        finished.append(done)
    meta = _assemble([], None, **kw)  # the columns and dtypes, from the same code as the result
    table = LazyTable([dask.delayed(_assemble, pure=True)(finished, state, **kw)], meta, attrs=meta.attrs,
                      name="cluster_tracks")
    if compute:
        warnings.warn("track_clusters(..., compute=True) is deprecated and will be removed: track_clusters returns "
                      "a lazy fluoxr.LazyTable; call .compute() on it for the DataFrame",
                      DeprecationWarning, stacklevel=2)
        return table.compute()
    return table
