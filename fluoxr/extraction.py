"""Traces out of a lazy video: suite2p cell and neuropil masks, one-pass extraction, optimap position traces.

- :func:`cell_masks` and :func:`neuropil_masks` restate suite2p's
  ``create_masks`` on a :class:`~fluoxr.ROISet` (vectorised and numba: 10k
  ROIs in about a second, where suite2p loops over ROIs in Python).
- :func:`extract` computes cell (``F``) and neuropil (``Fneu``) traces in
  ONE read of the frames: both sets of weights are stacked into one sparse
  matrix applied to every time chunk (``map_blocks`` along time; frames
  must be whole in each chunk).
- :func:`traces` is optimap's ``extract_traces`` on the same machinery: the
  mean over a rect/disc/pixel window around each position.

Traces are ``("roi", "time")`` float32 DataArrays (``("channel", "roi",
"time")`` for a multi-channel video), chunked along time like the video,
with per-ROI coords ``y``, ``x`` (centroid, or the position), ``kind`` and
``npix``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import dask
import dask.array as da
import numpy as np
import pandas as pd
import xarray as xr

from . import _backend
from ._options import get_options
from ._validate import check_choice, check_int, check_number
from ._video import check_video
from .kernels.masks import cell_pixels, neuropil_pixels
from .rois import WINDOWS, ROISet, as_roiset, check_frame_shape

logger = logging.getLogger(__name__)

__all__ = ["cell_masks", "neuropil_masks", "extract", "suite2p_extraction_settings", "traces"]

# suite2p's ``settings["extraction"]``: key -> (default, kind, lower bound, upper bound), as its parameters.py
_SUITE2P_EXTRACTION: dict[str, tuple[Any, str, float | None, float | None]] = {
    "snr_threshold": (0.0, "float", -np.inf, 1.0),
    "batch_size": (500, "int", 1, None),
    "neuropil_extract": (True, "bool", None, None),
    "neuropil_coefficient": (0.7, "float", 0.0, None),
    "inner_neuropil_radius": (2, "int", 0, None),
    "min_neuropil_pixels": (350, "int", 1, None),
    "lam_percentile": (50.0, "float", 0.0, 100.0),
    "allow_overlap": (False, "bool", None, None),
    "circular_neuropil": (False, "bool", None, None),
}


# --------------------------------------------------------------------------------------------
# masks


def cell_masks(rois: ROISet, *, allow_overlap: bool = False) -> ROISet:
    """suite2p cell masks: each ROI's weights over its pixels, normalised to sum 1.

    With ``allow_overlap=False`` (suite2p's default) the pixels that belong
    to several ROIs (``rois.overlap``) are dropped first. A ROI whose pixels
    all overlap others keeps them with weight 0, so that its trace is 0, as
    suite2p's empty mask gives (a warning says which ROIs).

    Parameters
    ----------
    rois : ROISet
        The ROIs (e.g. ``ROISet.from_suite2p(stat, shape)``).
    allow_overlap : bool
        Keep overlapping pixels.

    Returns
    -------
    ROISet
        Same ROIs and ``meta``; ``weight`` sums to 1 per ROI.

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr import ROISet, cell_masks
    >>> rois = ROISet.from_labels(np.array([[1, 1, 2], [0, 2, 2]]))
    >>> cell_masks(rois).weight.tolist()
    [0.5, 0.5, 0.3333333333333333, 0.3333333333333333, 0.3333333333333333]
    """
    rois = as_roiset(rois)
    keep = np.ones(rois.roi.size, bool) if allow_overlap else ~rois.overlap
    n = len(rois)
    kept = np.bincount(rois.roi[keep], minlength=n)
    lost = np.flatnonzero(kept == 0)
    if lost.size:
        logger.warning("cell_masks: ROI(s) %s overlap other ROIs at every pixel; their traces will be 0 "
                       "(pass allow_overlap=True to keep overlapping pixels)", lost[:20].tolist())
        keep |= np.isin(rois.roi, lost)
    w = rois.weight.astype(np.float64)[keep]
    r = rois.roi[keep]
    w = np.where(np.isin(r, lost), 0.0, w)
    sums = np.bincount(r, weights=w, minlength=n)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(sums[r] != 0, w / np.where(sums[r] != 0, sums[r], 1.0), 0.0)
    kw: dict[str, Any] = {"z": rois.z[keep]} if rois.z is not None else {}
    return ROISet(roi=r, y=rois.y[keep], x=rois.x[keep], weight=w, shape=rois.shape,
                  overlap=rois.overlap[keep], meta=rois.meta.copy(), **kw)


def _radii(rois: ROISet) -> np.ndarray:
    if "radius" in rois.meta.columns:
        r = pd.to_numeric(rois.meta["radius"], errors="coerce").to_numpy(np.float64)
        if np.all(np.isfinite(r)):
            return r
    # ROIs without suite2p's radius (labels, masks): radius of a disc of the same area
    return np.sqrt(rois.npix / np.pi)


def neuropil_masks(
    rois: ROISet,
    *,
    inner_neuropil_radius: int = 2,
    min_neuropil_pixels: int = 350,
    circular: bool = False,
    lam_percentile: float = 50.0,
) -> ROISet:
    """suite2p neuropil masks: a surround of each ROI that avoids every cell.

    Cell pixels are those whose largest ROI weight is positive and not below
    the ``lam_percentile`` percentile of the weight map in a square of
    ``int(5 * median radius)`` pixels (suite2p's ``create_cell_pix``; ROIs
    without a ``radius`` in ``meta`` use the radius of a disc of equal
    area). Each ROI's region starts as the ROI dilated
    ``inner_neuropil_radius`` times (4-connected), which is excluded, and
    grows by 5 pixels per step (its bounding rectangle, or a city-block
    dilation when ``circular``) until it holds more than
    ``min_neuropil_pixels`` non-cell pixels outside that ring, at most 100
    steps. Pixel sets equal suite2p's ``create_masks`` (tested).

    Returns
    -------
    ROISet
        One neuropil region per ROI, weights 1 (a plain mean). A ROI with no
        neuropil pixel at all (a frame covered by cells) keeps one pixel
        with weight 0, so that its neuropil trace is NaN, as suite2p's mean
        over no pixels; a warning names it.

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr import ROISet, neuropil_masks
    >>> labels = np.zeros((40, 40), int); labels[18:22, 18:22] = 1
    >>> neuropil_masks(ROISet.from_labels(labels), min_neuropil_pixels=100).npix.tolist()
    [272]
    """
    rois = as_roiset(rois)
    inner = check_int(inner_neuropil_radius, "inner_neuropil_radius", min_value=0)
    min_px = check_int(min_neuropil_pixels, "min_neuropil_pixels", min_value=0)
    pct = check_number(lam_percentile, "lam_percentile", ge=0, le=100)
    if not isinstance(circular, (bool, np.bool_)):
        raise TypeError(f"circular must be True or False, got {circular!r}")
    if rois.ndim != 2:
        raise ValueError(f"rois: neuropil masks are defined on planar frames (Ly, Lx); these ROIs have shape "
                         f"{rois.shape}; select a plane or pass neuropil=None")
    ly, lx = rois.shape
    flat = rois.flat_index.astype(np.int64)
    radius = float(np.median(_radii(rois)))
    cells = cell_pixels(flat, rois.weight, (ly, lx), radius, pct)
    ptr, pix = neuropil_pixels(rois.indptr.astype(np.int64), flat, ~cells.ravel(), ly, lx, inner, min_px,
                               bool(circular))
    counts = np.diff(ptr)
    roi = np.repeat(np.arange(len(rois)), counts)
    if circular:
        pix = pix[np.lexsort((pix, roi))]
    weight = np.ones(pix.size, np.float32)
    empty = np.flatnonzero(counts == 0)
    if empty.size:
        logger.warning("neuropil_masks: ROI(s) %s have no neuropil pixel; their neuropil traces will be NaN",
                       empty[:20].tolist())
        first = flat[rois.indptr[empty]]
        roi = np.concatenate([roi, empty])
        pix = np.concatenate([pix, first])
        weight = np.concatenate([weight, np.zeros(empty.size, np.float32)])
    y, x = np.divmod(pix, lx)
    meta = pd.DataFrame({"inner_neuropil_radius": inner, "min_neuropil_pixels": min_px,
                         "circular": bool(circular)}, index=pd.RangeIndex(len(rois)))
    # neuropil regions of neighbours overlap by design; the flag means nothing here
    return ROISet(roi=roi, y=y, x=x, weight=weight, shape=rois.shape, meta=meta, overlap=np.zeros(roi.size, bool))


# --------------------------------------------------------------------------------------------
# suite2p's extraction settings


def suite2p_extraction_settings(settings: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """suite2p's extraction settings, validated and completed with suite2p's defaults.

    Takes suite2p's ``settings["extraction"]`` section (or the whole settings
    dict, whose ``"extraction"`` section is then used) with suite2p's key
    names; keys it leaves out get suite2p 1.x's defaults. Unknown keys are
    refused, so a misspelt setting never passes silently.

    Parameters
    ----------
    settings : mapping, optional
        ``snr_threshold``, ``batch_size``, ``neuropil_extract``,
        ``neuropil_coefficient``, ``inner_neuropil_radius``,
        ``min_neuropil_pixels``, ``lam_percentile``, ``allow_overlap``,
        ``circular_neuropil``.

    Returns
    -------
    dict
        Every key, with its value checked against suite2p's type and range.

    Examples
    --------
    >>> from fluoxr import suite2p_extraction_settings
    >>> s = suite2p_extraction_settings({"circular_neuropil": True})
    >>> s["circular_neuropil"], s["min_neuropil_pixels"], s["neuropil_coefficient"]
    (True, 350, 0.7)
    """
    if settings is None:
        settings = {}
    if not isinstance(settings, Mapping):
        raise TypeError(f"settings must be a mapping of suite2p's extraction settings, got {type(settings).__name__}")
    if isinstance(settings.get("extraction"), Mapping):
        settings = settings["extraction"]
    unknown = sorted(set(settings) - set(_SUITE2P_EXTRACTION))
    if unknown:
        raise ValueError(f"settings: unknown suite2p extraction setting(s) {unknown}; the known ones are "
                         f"{sorted(_SUITE2P_EXTRACTION)}")
    out: dict[str, Any] = {}
    for key, (default, kind, lo, hi) in _SUITE2P_EXTRACTION.items():
        value = settings.get(key, default)
        name = f"settings['{key}']"
        if kind == "bool":
            if not isinstance(value, (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {value!r}")
            out[key] = bool(value)
        elif kind == "int":
            out[key] = check_int(value, name, min_value=int(lo) if lo is not None else None)
        else:
            out[key] = float(check_number(value, name, ge=lo, le=hi))
    return out


def _suite2p_snr(Fc: xr.DataArray) -> xr.DataArray:
    """suite2p's ROI signal-to-noise ``1 - var(diff(dF)) / (2 var(dF))`` along time (lazy)."""
    dF = Fc.astype(np.float64)
    noise = dF.diff("time").var("time")
    return (1.0 - 0.5 * noise / dF.var("time")).rename("snr")


# --------------------------------------------------------------------------------------------
# extraction


def _stacked_weights(masks: list[ROISet], empty: list[float]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """CSR (indptr, indices, float64 weights) of the masks stacked row-wise, each row a weighted mean.

    A row whose weights sum to 0 (see :func:`cell_masks`, :func:`neuropil_masks`) gets the weight
    ``empty[i]`` of its mask set on each entry: 0 (a trace of 0) or NaN (a mean over no pixel).
    """
    indptrs, indices, weights = [np.zeros(1, np.int64)], [], []
    offset = 0
    for m, fill in zip(masks, empty):
        w = m.weight.astype(np.float64)
        sums = np.bincount(m.roi, weights=w, minlength=len(m))
        ok = sums != 0
        scale = np.where(ok, 1.0 / np.where(ok, sums, 1.0), 0.0)
        w = np.where(ok[m.roi], w * scale[m.roi], fill)
        indptrs.append(m.indptr[1:].astype(np.int64) + offset)
        indices.append(m.flat_index.astype(np.int64))
        weights.append(w)
        offset += m.roi.size
    return np.concatenate(indptrs), np.concatenate(indices), np.concatenate(weights)


def _extract_block(block: Any, W: Any, *, kernels: _backend.Kernels, channel_axis: int | None,
                   batch: int | None) -> Any:
    """The traces of one block: ``kernels.weighted_sums`` with the weights ``W`` of ``kernels.sparse_weights``."""
    xp = _backend.array_module(block)
    n_t = block.shape[0]
    if channel_axis is None:
        return kernels.weighted_sums(W, block.reshape(n_t, -1), batch=batch)
    out = []
    for c in range(block.shape[channel_axis]):
        # strided frames (one channel of a multi-channel block) are read in place, not copied
        frames = xp.take(block, c, axis=channel_axis) if channel_axis != 1 else block[:, c]
        out.append(kernels.weighted_sums(W, frames.reshape(n_t, -1), batch=batch))
    return xp.stack(out)


_ENGINES = (None, "numba", "cupy", "torch")


def _check_engine(engine: Any, device: bool) -> str:
    """The engine that applies the weights: numba on the host, CuPy (cuSPARSE) on the GPU, or torch on either."""
    check_choice(engine, "engine", _ENGINES)
    if engine is None:
        return "cupy" if device else "numba"
    if engine == "numba" and device:
        raise ValueError("engine='numba' runs on NumPy chunks but the video is on the GPU; use engine='cupy' "
                         "or 'torch', or move the video with fluoxr.to_device(video, 'cpu')")
    if engine == "cupy" and not device:
        raise ValueError("engine='cupy' needs a video on the GPU (CuPy chunks): move it with "
                         "fluoxr.to_device(video, 'cuda'), or use engine=None (numba) or 'torch'")
    if engine == "torch":
        _backend.import_torch()
    return engine


def _frame_dims(video: xr.DataArray) -> tuple[str, ...]:
    return tuple(d for d in video.dims if d not in ("time", "channel"))


def _apply_weights(video: xr.DataArray, csr: tuple[np.ndarray, np.ndarray, np.ndarray], n_rows: int,
                   batch: int | None, engine: Any = None) -> tuple[da.Array, tuple[str, ...]]:
    """One lazy pass: ``(n_rows, time)`` (or ``(channel, n_rows, time)``) float32, chunked like the video's time."""
    data = video.data
    if not isinstance(data, da.Array):
        data = da.from_array(data, chunks=(-1,) * data.ndim, asarray=False)
    kernels = _backend.dispatch_for(data)
    engine = _check_engine(engine, kernels.device)
    letters = {d: chr(ord("a") + i) for i, d in enumerate(video.dims)}
    in_ind = "".join(letters[d] for d in video.dims)
    has_channel = "channel" in video.dims
    out_ind = (letters["channel"] if has_channel else "") + "r" + letters["time"]
    channel_axis = video.dims.index("channel") if has_channel else None
    if engine == "numba":
        # the CSR arrays themselves, for numba's gather loop: they enter the graph once (one key)
        W = dask.delayed(csr, pure=True, traverse=False)
    else:
        # one sparse matrix on the chunks' device, made by one task and shared by all
        n_pixels = int(np.prod([video.sizes[d] for d in _frame_dims(video)], dtype=np.int64))
        W = dask.delayed(kernels.sparse_weights, pure=True)(*csr, n_pixels, xp_name=kernels.xp_name, engine=engine)
    out = da.blockwise(
        _extract_block, out_ind, data, in_ind, new_axes={"r": n_rows}, concatenate=True, dtype=np.float32,
        meta=_backend.meta_like(data, len(out_ind), np.float32), W=W, kernels=kernels, channel_axis=channel_axis,
        batch=batch,
    )
    dims = (("channel",) if has_channel else ()) + ("roi", "time")
    return out, dims


def _roi_coords(rois: ROISet, kind: Any, centres: np.ndarray | None = None) -> dict[str, Any]:
    c = rois.centroids() if centres is None else centres
    coords: dict[str, Any] = {"roi": np.arange(len(rois))}
    names = ("z", "y", "x") if rois.ndim == 3 else ("y", "x")
    for j, name in enumerate(names):
        coords[name] = ("roi", c[:, j].astype(np.float64))
    coords["kind"] = ("roi", np.asarray(kind if not isinstance(kind, str) else [kind] * len(rois), dtype=object).astype(str))
    coords["npix"] = ("roi", rois.npix.astype(np.int64))
    if "label" in rois.meta.columns:
        coords["label"] = ("roi", rois.meta["label"].to_numpy())
    return coords


def _check_rois_for(video: xr.DataArray, rois: Any, name: str = "rois") -> ROISet:
    rois = as_roiset(rois, name)
    frame = tuple(video.sizes[d] for d in _frame_dims(video))
    check_frame_shape(rois, frame, name)
    return rois


def _batch(batch: Any) -> int | None:
    return None if batch is None else check_int(batch, "batch", min_value=1)


def _base_coords(video: xr.DataArray) -> dict[str, Any]:
    coords: dict[str, Any] = {"time": video["time"].variable}
    if "channel" in video.dims:
        coords["channel"] = video["channel"].variable
    return coords


def extract(
    video: Any,
    rois: ROISet,
    *,
    neuropil: str | ROISet | Mapping[str, Any] | None = "auto",
    allow_overlap: bool = False,
    batch: int | None = None,
    engine: str | None = None,
    settings: Mapping[str, Any] | None = None,
) -> xr.Dataset:
    """Cell and neuropil traces (suite2p's ``extract_traces``) in one read of the frames.

    ``F`` is each ROI's weighted mean over its :func:`cell_masks` pixels
    (weights ``lam`` normalised to sum 1); ``Fneu`` the plain mean over its
    :func:`neuropil_masks` pixels. Cell and neuropil weights are stacked into
    one sparse matrix, applied to every time chunk by a numba gather loop
    that reads the frames in their own dtype and sums in float64 (suite2p
    sums in float32 through torch, whose sparse indices are float32 and
    wrong above 2**24 pixels; fluoxr's are int64).

    Parameters
    ----------
    video : xarray.DataArray
        ``("time", [z], [channel], "y", "x")``, chunked along time with whole
        frames in every chunk. A ``channel`` dim (e.g. functional and
        anatomical) gives traces per channel from the same read.
    rois : ROISet
        ROIs on the video's frames (``(Ly, Lx)``, or ``(Lz, Ly, Lx)`` with a
        ``z`` dim).
    neuropil : "auto", ROISet, mapping or None
        ``"auto"``: :func:`neuropil_masks` with suite2p's defaults; a mapping:
        keyword arguments for :func:`neuropil_masks`; a ROISet: one
        neuropil region per ROI (weighted mean); None: no ``Fneu``.
    allow_overlap : bool
        Keep pixels shared by several ROIs in the cell masks (suite2p's
        ``allow_overlap``).
    batch : int, optional
        Frames per inner step (suite2p's ``batch_size``). The gather loop
        needs no float copy of the frames, so memory is one chunk per thread
        whatever ``batch`` is.
    engine : {None, "numba", "cupy", "torch"}
        What applies the sparse weights. None: "numba" (the gather loop) for
        a video on the host, "cupy" (a ``cupyx.scipy.sparse`` CSR product,
        cuSPARSE) for a video on the GPU (see :func:`fluoxr.to_device`);
        "torch": a ``torch.sparse_csr_tensor`` product on the chunks' device
        (as suite2p, but float64 accumulation and int64 indices). The GPU
        engines convert a batch of frames to float64 (``batch`` frames, default
        about 512 MB) and return CuPy-backed traces.
    settings : mapping, optional
        suite2p's extraction settings (``settings["extraction"]``, or the
        whole settings dict), with its key names, validated by
        :func:`suite2p_extraction_settings`; then ``neuropil`` may only be
        "auto" or a precomputed ROISet, and ``allow_overlap`` and ``batch``
        come from the settings. The mapping: ``lam_percentile``,
        ``inner_neuropil_radius``, ``min_neuropil_pixels`` and
        ``circular_neuropil`` (-> ``circular``) are :func:`neuropil_masks`'
        options; ``allow_overlap`` is :func:`cell_masks`'; ``batch_size`` is
        ``batch``; ``neuropil_extract=False`` gives ``Fneu`` of zeros, as
        suite2p; ``neuropil_coefficient`` makes ``Fc = F - coeff * Fneu``
        (suite2p's ``dF``); ``snr`` is suite2p's per-ROI signal-to-noise of
        ``Fc``, and ``snr_threshold > 0`` runs suite2p's two passes: the
        frames are read once at this call to compute ``snr``, the ROIs at or
        below the threshold are dropped, overlaps are recomputed among the
        others, and the returned traces are the second extraction (``roi``
        keeps the indices of the kept input ROIs).

    Returns
    -------
    xarray.Dataset
        ``F`` and ``Fneu`` (``("roi", "time")`` float32, with a leading
        ``channel`` dim for multi-channel videos), lazy, chunked along time
        like the video; per-ROI coords ``y``, ``x`` (weighted centroid),
        ``kind`` ("cell"), ``npix``; attrs ``fps`` when known. With
        ``settings``, also ``Fc`` and ``snr`` (``("roi",)``).

    Examples
    --------
    >>> import fluoxr
    >>> from fluoxr.datasets import calcium_neurons
    >>> video, truth = calcium_neurons(n_frames=60, shape=(64, 64), n_cells=5)
    >>> rois = fluoxr.ROISet.from_suite2p(truth.stat, (64, 64))
    >>> ds = fluoxr.extract(video, rois, neuropil={"min_neuropil_pixels": 100})
    >>> ds.F.dims, ds.F.dtype, ds.Fneu.shape
    (('roi', 'time'), dtype('float32'), (5, 60))
    """
    video = check_video(video, whole_frames=True)
    rois = _check_rois_for(video, rois)
    if settings is not None:
        return _extract_suite2p(video, rois, neuropil=neuropil, allow_overlap=allow_overlap, batch=batch,
                                engine=engine, settings=suite2p_extraction_settings(settings))
    if not isinstance(allow_overlap, (bool, np.bool_)):
        raise TypeError(f"allow_overlap must be True or False, got {allow_overlap!r}")
    batch = _batch(batch)
    cells = cell_masks(rois, allow_overlap=bool(allow_overlap))
    masks = [cells]
    if isinstance(neuropil, str):
        check_choice(neuropil, "neuropil", ("auto",))
        masks.append(neuropil_masks(rois))
    elif isinstance(neuropil, Mapping):
        masks.append(neuropil_masks(rois, **dict(neuropil)))
    elif isinstance(neuropil, ROISet):
        check_frame_shape(neuropil, rois.shape, "neuropil")
        if len(neuropil) != len(rois):
            raise ValueError(f"neuropil must hold one region per ROI ({len(rois)}), got {len(neuropil)}")
        masks.append(neuropil)
    elif neuropil is not None:
        raise TypeError(f"neuropil must be 'auto', a ROISet, a mapping of neuropil_masks options or None, "
                        f"got {type(neuropil).__name__}")
    n = len(rois)
    # cells that lost every pixel to overlaps: trace 0 (suite2p's sum over no pixel);
    # neuropil with no pixel: NaN (suite2p's mean over no pixel)
    csr = _stacked_weights(masks, [0.0, np.nan][: len(masks)])
    out, dims = _apply_weights(video, csr, len(masks) * n, batch, engine)
    coords = _base_coords(video) | _roi_coords(rois, "cell")
    attrs = {k: video.attrs[k] for k in ("fps", "source") if k in video.attrs}
    sl_f = (slice(None),) * (len(dims) - 2) + (slice(0, n), slice(None))
    ds = xr.Dataset(attrs=attrs)
    ds["F"] = xr.DataArray(out[sl_f], dims=dims, coords=coords, attrs=attrs | {"long_name": "cell fluorescence"})
    if len(masks) == 2:
        sl_n = (slice(None),) * (len(dims) - 2) + (slice(n, 2 * n), slice(None))
        ds["Fneu"] = xr.DataArray(out[sl_n], dims=dims, coords=coords,
                                  attrs=attrs | {"long_name": "neuropil fluorescence"})
    return ds


def _extract_suite2p(video: xr.DataArray, rois: ROISet, *, neuropil: Any, allow_overlap: Any, batch: Any,
                     engine: Any, settings: dict[str, Any]) -> xr.Dataset:
    """:func:`extract` driven by suite2p's extraction settings (see its ``settings``)."""
    if allow_overlap is not False or batch is not None:
        raise TypeError("with settings, give allow_overlap and batch as settings['allow_overlap'] and "
                        "settings['batch_size'], not as arguments")
    if isinstance(neuropil, str):
        check_choice(neuropil, "neuropil", ("auto",))
        precomputed = None
    elif isinstance(neuropil, ROISet):
        precomputed = neuropil
    else:
        raise TypeError("with settings, neuropil must be 'auto' (masks from the settings) or a ROISet of "
                        f"precomputed neuropil masks, got {type(neuropil).__name__}")
    options = {"inner_neuropil_radius": settings["inner_neuropil_radius"],
               "min_neuropil_pixels": settings["min_neuropil_pixels"],
               "lam_percentile": settings["lam_percentile"], "circular": settings["circular_neuropil"]}
    # suite2p's extraction_wrapper: precomputed neuropil masks win; otherwise masks only when neuropil_extract
    wanted = precomputed if precomputed is not None else (options if settings["neuropil_extract"] else None)

    def run(rois: ROISet) -> xr.Dataset:
        ds = extract(video, rois, neuropil=wanted, allow_overlap=settings["allow_overlap"],
                     batch=settings["batch_size"], engine=engine)
        if "Fneu" not in ds:
            ds["Fneu"] = xr.zeros_like(ds["F"]).assign_attrs(
                long_name="neuropil fluorescence (not extracted: zeros, as suite2p's neuropil_extract=False)")
        ds["Fc"] = (ds["F"] - np.float32(settings["neuropil_coefficient"]) * ds["Fneu"]).astype(np.float32)
        ds["Fc"].attrs = dict(ds["F"].attrs) | {"long_name": "neuropil-corrected fluorescence",
                                                 "neuropil_coefficient": settings["neuropil_coefficient"]}
        ds["snr"] = _suite2p_snr(ds["Fc"])
        ds.attrs["suite2p_extraction"] = repr(settings)
        return ds

    ds = run(rois)
    threshold = settings["snr_threshold"]
    if threshold > 0:
        logger.info("extract: snr_threshold=%g: reading the frames once to compute each ROI's SNR (suite2p's "
                    "first extraction pass)", threshold)
        snr = ds["snr"].values
        keep = snr > threshold if snr.ndim == 1 else snr[0] > threshold
        if not keep.any():
            raise ValueError(f"settings['snr_threshold']={threshold} removes every ROI (largest SNR "
                             f"{float(np.nanmax(snr)):.3g})")
        if not keep.all():
            logger.info("extract: removing %d ROI(s) with snr <= %g and recomputing overlaps", int((~keep).sum()),
                        threshold)
            kept = rois[keep]
            # suite2p's assign_overlaps: overlaps among the ROIs that remain
            kept = ROISet(roi=kept.roi, y=kept.y, x=kept.x, weight=kept.weight, shape=kept.shape, z=kept.z,
                          meta=kept.meta)
            if precomputed is not None:
                wanted = precomputed[keep]
            ds = run(kept).assign_coords(roi=np.flatnonzero(keep))
    return ds


def traces(
    video: Any,
    positions: Any,
    *,
    size: int = 5,
    window: str | None = None,
    batch: int | None = None,
    engine: str | None = None,
) -> xr.DataArray:
    """Mean over a window around each position (optimap's ``extract_traces``), lazily, in one read.

    Parameters
    ----------
    video : xarray.DataArray
        ``("time", [channel], "y", "x")``, whole frames in every chunk.
    positions : array-like ``(n, 2)`` or ROISet
        ``(y, x)`` rows (row, column). optimap passes ``(x, y)`` pairs
        (it reads ``video[:, c1, c0]``): convert with ``positions[:, ::-1]``.
        A ROISet gives the plain mean over each ROI's pixels (overlaps kept).
    size : int
        Window size in pixels (see :meth:`fluoxr.ROISet.from_positions`).
    window : {"rect", "disc", "pixel"}, optional
        Default: option ``trace_window`` (``fluoxr.set_options(trace_window=...)``),
        "rect" unless changed. rect windows shrink at the borders and even
        sizes shift one pixel up-left, as optimap's.
    batch, engine
        As :func:`extract` (``engine="cupy"`` or ``"torch"`` on the GPU).

    Returns
    -------
    xarray.DataArray
        ``("roi", "time")`` float32 (optimap returns ``(T, N)`` float64, and
        the raw dtype for ``"pixel"``; every uint16 value is exact in
        float32). optimap's layout is ``result.T.values``.
        Coords ``y``, ``x`` (the positions), ``kind`` (the window), ``npix``.

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> video = fluoxr.as_video(np.arange(2 * 4 * 4, dtype=np.uint16).reshape(2, 4, 4))
    >>> fluoxr.traces(video, [(1, 2)], size=3).values.tolist()
    [[6.0, 22.0]]
    """
    video = check_video(video, whole_frames=True, allowed_extra_dims=("channel",))
    batch = _batch(batch)
    frame = (video.sizes["y"], video.sizes["x"])
    if isinstance(positions, ROISet):
        rois = _check_rois_for(video, positions, "positions")
        kind: Any = "roi"
        centres = None
    else:
        window = get_options()["trace_window"] if window is None else window
        check_choice(window, "window", WINDOWS)
        rois = ROISet.from_positions(positions, frame, size=size, window=window)
        kind = window
        centres = rois.meta[["y", "x"]].to_numpy(np.float64)
    plain = ROISet(roi=rois.roi, y=rois.y, x=rois.x, weight=np.ones(rois.roi.size, np.float32), shape=rois.shape,
                   overlap=rois.overlap, meta=rois.meta)
    csr = _stacked_weights([plain], [np.nan])
    out, dims = _apply_weights(video, csr, len(rois), batch, engine)
    coords = _base_coords(video) | _roi_coords(rois, kind, centres)
    attrs = {k: video.attrs[k] for k in ("fps", "source") if k in video.attrs}
    return xr.DataArray(out, dims=dims, coords=coords, name="traces", attrs=attrs)
