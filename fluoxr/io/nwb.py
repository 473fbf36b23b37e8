"""Traces, ROIs and recordings as NWB 2.x ophys files (:func:`to_nwb`), written chunk by chunk.

What goes where (NWB's ``ophys`` conventions, as nwbinspector and DANDI expect):

==========================  ===================================================================
fluoxr                      NWB file
==========================  ===================================================================
``rois`` (ROISet)           ``processing/ophys/ImageSegmentation/PlaneSegmentation``: one
                            ``pixel_mask`` per ROI (``x`` = column, ``y`` = row, ``weight``),
                            ``voxel_mask`` for volumetric ROIs; ROI ids 0..n-1
``features`` (table)        columns of that PlaneSegmentation, one per feature
``F``, ``Fneu``, ``Fc``,    ``processing/ophys/Fluorescence/<name>``: a ``RoiResponseSeries``
``spikes``, any other       each, data ``(time, roi)``
``("roi", "time")``
``dff``                     ``processing/ophys/DfOverF/dff``
``video``                   ``acquisition/TwoPhotonSeries``, data ``(time, x, y)`` as NWB's
                            ``ImageSeries`` declares it (fluoxr's ``(time, y, x)`` transposed)
metadata                    the file's session fields, ``Subject``, ``Device``,
                            ``ImagingPlane`` with its ``OpticalChannel``
==========================  ===================================================================

Deconvolved activity (``spikes``) goes to ``Fluorescence`` beside the
fluorescence it came from, as suite2p's own NWB export and NeuroConv do: NWB
has no container of its own for inferred spike rates, and ``DfOverF`` means
normalised fluorescence.

The HDF5 datasets are created empty at their final shape (hdmf's
``H5DataIO(shape=, dtype=)``), then filled in time blocks with h5py, each
block computed from the lazy inputs when it is written: a long session's
traces never sit in memory at once. The file is written to a temporary
sibling and renamed into place when complete.
"""

from __future__ import annotations

import datetime
import logging
import math
import os
import re
import uuid
import warnings
from collections.abc import Mapping
from typing import Any

import numpy as np

from .._validate import check_choice, check_fps
from .readers import PathLike

logger = logging.getLogger(__name__)

__all__ = ["to_nwb", "NOT_GIVEN"]

#: what a metadata text that was not given says, so a reader of the file can tell it is a default
NOT_GIVEN = "default: not given"

# containers of the ophys module, by variable: dF/F is normalised; everything else is fluorescence-like
_DFF_NAMES = ("dff", "dFF", "dF_F", "DfOverF")
_DESCRIPTIONS = {
    "F": "cell fluorescence: weighted mean of each ROI's pixels (fluoxr.extract)",
    "Fneu": "neuropil fluorescence: mean of each ROI's neuropil pixels (fluoxr.extract)",
    "Fc": "neuropil-corrected fluorescence F - coeff * Fneu (fluoxr.subtract_neuropil)",
    "spikes": "deconvolved activity (fluoxr.oasis, OASIS), in units of fluorescence",
    "dff": "dF/F: (F - F0) / F0 (fluoxr.dff)",
}
_RESERVED_COLUMNS = ("id", "pixel_mask", "pixel_mask_index", "image_mask", "voxel_mask", "voxel_mask_index",
                     "imaging_plane", "reference_images")
# HDF5 chunks near 1 MiB: large enough for gzip, small enough to read one ROI's trace without the others
_CHUNK_BYTES = 1 << 20
_ROIS_PER_CHUNK = 64
# bytes of lazy results computed at once (several chunks, so dask's threads work in parallel)
_BATCH_BYTES = 128 << 20

# --------------------------------------------------------------------------------------------
# metadata: accepted keys, their checks and defaults

_TEXT = "text"
_NM = "wavelength"
_SCHEMA: dict[str, Any] = {
    "session_description": _TEXT,
    "identifier": _TEXT,
    "session_start_time": "datetime",
    "experimenter": "texts",
    "experiment_description": _TEXT,
    "institution": _TEXT,
    "lab": _TEXT,
    "keywords": "texts",
    "subject": {"subject_id": _TEXT, "species": _TEXT, "sex": _TEXT, "age": _TEXT, "description": _TEXT},
    "device": {"name": _TEXT, "description": _TEXT, "manufacturer": _TEXT},
    "imaging_plane": {"name": _TEXT, "description": _TEXT, "indicator": _TEXT, "location": _TEXT,
                      "excitation_lambda": _NM,
                      "optical_channel": {"name": _TEXT, "description": _TEXT, "emission_lambda": _NM}},
}
_SEXES = ("M", "F", "U", "O")


def _check_metadata(value: Any, schema: Mapping[str, Any], where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise TypeError(f"{where} must be a dict, got {type(value).__name__}")
    out: dict[str, Any] = {}
    for key, v in value.items():
        name = f"{where}[{key!r}]"
        if key not in schema:
            raise ValueError(f"{name} is not a metadata key fluoxr writes; known keys: {sorted(schema)}")
        kind = schema[key]
        if isinstance(kind, Mapping):
            out[key] = _check_metadata(v, kind, name)
        elif kind == _TEXT:
            if not isinstance(v, str) or not v.strip():
                raise ValueError(f"{name} must be a non-empty text, got {v!r}")
            out[key] = v
        elif kind == "texts":
            items = [v] if isinstance(v, str) else v
            if not isinstance(items, (list, tuple)) or not items or not all(isinstance(s, str) and s for s in items):
                raise ValueError(f"{name} must be a text or a list of texts, got {v!r}")
            out[key] = list(items)
        elif kind == _NM:
            if isinstance(v, bool) or not isinstance(v, (int, float, np.integer, np.floating)) \
                    or not math.isfinite(float(v)) or float(v) <= 0:
                raise ValueError(f"{name} must be a positive wavelength in nm, got {v!r}")
            if float(v) < 100:
                raise ValueError(f"{name} must be in nm (e.g. 920 for a two-photon laser), got {v!r}")
            out[key] = float(v)
        else:  # datetime
            if isinstance(v, str):
                try:
                    v = datetime.datetime.fromisoformat(v)
                except ValueError as exc:
                    raise ValueError(f"{name} must be a datetime or an ISO 8601 text, got {v!r}") from exc
            if not isinstance(v, datetime.datetime):
                raise TypeError(f"{name} must be a timezone-aware datetime, got {type(v).__name__}")
            if v.tzinfo is None or v.tzinfo.utcoffset(v) is None:
                raise ValueError(f"{name} must be timezone-aware (e.g. datetime(..., tzinfo=timezone.utc)), got {v!r}")
            out[key] = v
    subject = out.get("subject")
    if subject:
        if "sex" in subject and subject["sex"] not in _SEXES:
            raise ValueError(f"{where}['subject']['sex'] must be one of {_SEXES}, got {subject['sex']!r}")
        if "age" in subject and not re.fullmatch(r"P(?!$)(\d+Y)?(\d+M)?(\d+W)?(\d+D)?(T(?=\d)(\d+H)?(\d+M)?(\d+S)?)?"
                                                 r"(/(P.*)?)?", subject["age"]):
            raise ValueError(f"{where}['subject']['age'] must be an ISO 8601 duration such as 'P90D', "
                             f"got {subject['age']!r}")
    return out


def _resolve_metadata(metadata: Any) -> dict[str, Any]:
    """The checked metadata with every default filled in (texts that say they are defaults)."""
    m = _check_metadata(metadata, _SCHEMA, "metadata")
    if "session_start_time" not in m:
        logger.warning("to_nwb: metadata['session_start_time'] not given; the file records the time of writing")
    out = {
        "session_description": m.get("session_description", NOT_GIVEN),
        "identifier": m.get("identifier", str(uuid.uuid4())),
        "session_start_time": m.get("session_start_time",
                                    datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)),
    }
    out.update({k: m[k] for k in ("experimenter", "experiment_description", "institution", "lab", "keywords")
                if k in m})
    # what nwbinspector reports as CRITICAL or a best-practice violation, said before the file is written
    if "subject" not in m:
        logger.warning("to_nwb: no metadata['subject']; nwbinspector and DANDI require one (subject_id, species, "
                       "age, sex)")
    else:
        s = m["subject"]
        for key in ("species", "age"):
            if key not in s:
                logger.warning("to_nwb: metadata['subject'] has no %s; nwbinspector and DANDI require one", key)
        if s.get("species", "").lower() in ("mus musculus", "mouse") and "location" not in m.get("imaging_plane", {}):
            logger.warning("to_nwb: a mouse's metadata['imaging_plane']['location'] should be an Allen atlas "
                           "area (e.g. 'VISp'); nwbinspector reports a best-practice violation otherwise")
        out["subject"] = {"subject_id": NOT_GIVEN, "sex": "U", "description": NOT_GIVEN} | s
    out["device"] = {"name": "microscope", "description": NOT_GIVEN, "manufacturer": NOT_GIVEN} | m.get("device", {})
    plane = dict(m.get("imaging_plane", {}))
    channel = {"name": "OpticalChannel", "description": NOT_GIVEN, "emission_lambda": float("nan")} \
        | plane.pop("optical_channel", {})
    out["imaging_plane"] = {"name": "ImagingPlane", "description": NOT_GIVEN, "indicator": NOT_GIVEN,
                            "location": NOT_GIVEN, "excitation_lambda": float("nan")} | plane
    out["optical_channel"] = channel
    return out


# --------------------------------------------------------------------------------------------
# inputs


def _require_pynwb() -> Any:
    try:
        import pynwb
    except ImportError as exc:
        raise ImportError("writing NWB files needs pynwb: pip install 'fluoxr[nwb]'") from exc
    return pynwb


def _trace_variables(traces: Any) -> tuple[Any, list[str]]:
    """The Dataset and the names of its ``(roi, time)`` variables."""
    import xarray as xr

    if isinstance(traces, xr.DataArray):
        traces = traces.to_dataset(name=traces.name if traces.name is not None else "F")
    if not isinstance(traces, xr.Dataset):
        raise TypeError(f"traces must be an xarray Dataset (what fluoxr.extract returns) or DataArray, "
                        f"got {type(traces).__name__}")
    names = []
    for name, var in traces.data_vars.items():
        dims = set(var.dims)
        if dims == {"roi", "time"}:
            names.append(str(name))
        elif {"roi", "time"} <= dims:
            extra = sorted(str(d) for d in dims - {"roi", "time"})
            raise ValueError(f"traces[{name!r}] has dims {var.dims}; NWB series are (time, roi): select one "
                             f"{extra[0]} first, e.g. traces.isel({extra[0]}=0)")
        else:
            logger.info("to_nwb: traces[%r] (dims %s) is not a (roi, time) variable; not written", name, var.dims)
    if not names:
        raise ValueError(f"traces holds no ('roi', 'time') variable (variables: {list(traces.data_vars)})")
    return traces, names


def _traces_fps(traces: Any, names: list[str], fps: Any) -> float:
    from ..temporal import traces_fps

    fps = check_fps(fps)
    if fps is not None:
        return fps
    if traces.attrs.get("fps") is not None:
        return check_fps(traces.attrs["fps"], "traces.attrs['fps']")
    for n in names:
        try:
            return traces_fps(traces[n])
        except ValueError:
            continue
    raise ValueError("fps: the traces carry no frame rate (attrs['fps'] or a time coordinate in seconds); "
                     "pass fps=")


def _starting_time(obj: Any) -> float:
    """Time of the first frame in seconds: the ``time`` coordinate when it is in seconds, else 0."""
    if "time" in obj.coords and obj["time"].attrs.get("units") == "s" and obj.sizes["time"]:
        t0 = float(obj["time"].values[0])
        if math.isfinite(t0):
            return t0
    return 0.0


def _features_frame(features: Any, n: int) -> Any:
    import pandas as pd

    from ..table import LazyTable

    if features is None:
        return None
    if isinstance(features, LazyTable):
        features = features.compute()
    if not isinstance(features, pd.DataFrame):
        raise TypeError(f"features must be a fluoxr.LazyTable or a pandas DataFrame (fluoxr.roi_features), "
                        f"got {type(features).__name__}")
    if len(features) != n:
        raise ValueError(f"features must have one row per ROI ({n}), got {len(features)}")
    for col in features.columns:
        if not isinstance(col, str) or col in _RESERVED_COLUMNS:
            raise ValueError(f"features column {col!r} cannot be a PlaneSegmentation column "
                             f"(names must be texts other than {_RESERVED_COLUMNS})")
        if features[col].dtype.kind not in "biufO":
            raise ValueError(f"features column {col!r} has dtype {features[col].dtype}; NWB columns hold numbers, "
                             "booleans or texts")
    return features


def _as_time_chunked(data: Any, time_axis: int) -> Any:
    """A dask array of ``data`` (in-memory arrays chunked along time near ``chunk_mb``)."""
    import dask.array as da

    if isinstance(data, da.Array):
        return data
    from .._options import get_options

    arr = np.asarray(data)
    per_frame = max(1, arr.nbytes // max(arr.shape[time_axis], 1))
    step = max(1, int(get_options()["chunk_mb"] * 2**20 // per_frame))
    chunks = tuple(step if i == time_axis else -1 for i in range(arr.ndim))
    return da.from_array(arr, chunks=chunks)


def _chunk_along(length: int, base: tuple[int, ...], target: int) -> int:
    """HDF5 chunk length along the written axis: a divisor of the lazy chunks when one is near ``target``,
    so that every block written covers whole HDF5 chunks (no read-back of compressed chunks)."""
    target = max(1, min(target, length))
    c = base[0] if base else length
    if c <= target:
        return c
    for d in range(target, max(1, target // 4) - 1, -1):
        if c % d == 0:
            return d
    return target


# --------------------------------------------------------------------------------------------
# the writer


class _Item:
    """One HDF5 dataset to fill: a lazy array in the file's layout, the axis written in blocks."""

    def __init__(self, array: Any, h5path: str, axis: int) -> None:
        self.array = array
        self.h5path = h5path
        self.axis = axis

    @property
    def key(self) -> tuple[int, tuple[int, ...]]:
        return self.axis, tuple(self.array.chunks[self.axis])


def _blocked_axis(array: Any) -> int:
    """0 (time) unless the array is one chunk along time and several along ROIs (a whole-time result)."""
    if array.ndim == 2 and len(array.chunks[0]) == 1 and len(array.chunks[1]) > 1:
        return 1
    return 0


def _threads() -> int:
    return max(1, min(os.cpu_count() or 1, 8))


def _gzip_filters(dset: Any) -> tuple[bool, int] | None:
    """(shuffle, level) when the dataset's filters are exactly [shuffle,] gzip, else None."""
    if dset.compression != "gzip" or dset.fletcher32 or dset.scaleoffset is not None or dset.chunks is None:
        return None
    return bool(dset.shuffle), int(dset.compression_opts)


def _encode(chunk: np.ndarray, shuffle: bool, level: int) -> bytes:
    """One chunk as HDF5's filter pipeline stores it: byte shuffle (H5Z_FILTER_SHUFFLE), then deflate (zlib)."""
    import zlib

    raw = np.ascontiguousarray(chunk)
    if shuffle and raw.dtype.itemsize > 1:
        raw = np.ascontiguousarray(raw.reshape(-1).view(np.uint8).reshape(-1, raw.dtype.itemsize).T)
    return zlib.compress(raw.tobytes(), level)


def _write_block(dset: Any, block: np.ndarray, axis: int, start: int, pool: Any) -> None:
    """Write ``block`` at ``start`` along ``axis``. A gzip dataset whose block covers whole HDF5 chunks gets
    its chunks compressed on every thread and written as they are stored (h5py's direct chunk write): HDF5
    compresses in the writing thread only, which made gzip the slowest step of a write."""
    sl = (slice(None),) * axis + (slice(start, start + block.shape[axis]),)
    filters = _gzip_filters(dset)
    chunks = dset.chunks
    end = start + block.shape[axis]
    aligned = filters is not None and start % chunks[axis] == 0 and (end % chunks[axis] == 0 or end == dset.shape[axis])
    if not aligned or any(block.shape[d] != dset.shape[d] for d in range(block.ndim) if d != axis):
        dset[sl] = np.ascontiguousarray(block)
        return
    shuffle, level = filters
    origin = [0] * block.ndim
    origin[axis] = start
    grids = [range(0, block.shape[d], chunks[d]) for d in range(block.ndim)]
    jobs = []
    for corner in np.ndindex(*[len(g) for g in grids]):
        lo = [grids[d][corner[d]] for d in range(block.ndim)]
        piece = block[tuple(slice(lo[d], lo[d] + chunks[d]) for d in range(block.ndim))]
        if piece.shape != tuple(chunks):  # an edge chunk is stored at full size, padded with the fill value
            full = np.zeros(chunks, block.dtype)
            full[tuple(slice(0, n) for n in piece.shape)] = piece
            piece = full
        offset = tuple(origin[d] + lo[d] for d in range(block.ndim))
        jobs.append((offset, pool.submit(_encode, piece, shuffle, level)))
    for offset, job in jobs:
        dset.id.write_direct_chunk(offset, job.result())


def _fill(path: str, items: list[_Item]) -> None:
    """Fill each item's dataset block by block; items with the same chunks are computed together,
    so results from one read of a recording (F and Fneu, a video and its traces) share that read."""
    import dask
    import h5py

    groups: dict[tuple[int, tuple[int, ...]], list[_Item]] = {}
    for it in items:
        groups.setdefault(it.key, []).append(it)
    from concurrent.futures import ThreadPoolExecutor

    with h5py.File(path, "r+", rdcc_nbytes=32 << 20) as f, ThreadPoolExecutor(_threads()) as pool:
        for (axis, chunks), group in groups.items():
            per_step = sum(it.array.nbytes // max(it.array.shape[axis], 1) for it in group)
            bounds = np.concatenate([[0], np.cumsum(chunks)]).astype(int)
            i = 0
            while i < len(chunks):
                j = i + 1
                while j < len(chunks) and (bounds[j + 1] - bounds[i]) * per_step <= _BATCH_BYTES:
                    j += 1
                a, b = int(bounds[i]), int(bounds[j])
                sl = (slice(None),) * axis + (slice(a, b),)
                blocks = dask.compute(*[it.array[sl] for it in group])
                for it, block in zip(group, blocks):
                    _write_block(f[it.h5path], block, axis, a, pool)
                del blocks
                logger.debug("to_nwb: wrote %s %d..%d of %d", "frames" if axis == 0 else "ROIs", a, b, bounds[-1])
                i = j


def _pixel_columns(rois: Any) -> tuple[Any, Any]:
    from hdmf.common import VectorData, VectorIndex

    if rois.ndim == 2:
        mask = np.zeros(rois.roi.size, dtype=[("x", "<u4"), ("y", "<u4"), ("weight", "<f4")])
        name, what = "pixel_mask", "pixel masks: x = column, y = row, weight (fluoxr ROISet weights)"
    else:
        mask = np.zeros(rois.roi.size, dtype=[("x", "<u4"), ("y", "<u4"), ("z", "<u4"), ("weight", "<f4")])
        mask["z"] = rois.z
        name, what = "voxel_mask", "voxel masks: x = column, y = row, z = plane, weight (fluoxr ROISet weights)"
    mask["x"], mask["y"], mask["weight"] = rois.x, rois.y, rois.weight
    data = VectorData(name=name, description=what, data=mask)
    index = VectorIndex(name=f"{name}_index", data=rois.indptr[1:].astype(np.uint64), target=data)
    return data, index


def _device(nwb: Any, meta: dict[str, Any]) -> Any:
    """The Device; its manufacturer on a DeviceModel where pynwb has them (NWB 2.9 deprecates
    Device.manufacturer), else on the Device."""
    try:
        from pynwb.device import DeviceModel
    except ImportError:  # pynwb < 3.1
        return nwb.create_device(**meta)
    model = DeviceModel(name=f"{meta['name']} model", manufacturer=meta["manufacturer"],
                        description=f"model of {meta['name']}")
    nwb.add_device_model(model)
    return nwb.create_device(name=meta["name"], description=meta["description"], model=model)


def _build(nwb_mod: Any, *, traces: Any, names: list[str], rois: Any, meta: dict[str, Any], fps: float,
           video: Any, video_fps: float | None, features: Any, compression: str | None,
           pixel_size: float | None) -> tuple[Any, list[_Item]]:
    """The NWBFile with empty datasets of their final shapes, and what fills them."""
    from hdmf.backends.hdf5.h5_utils import H5DataIO
    from hdmf.common import VectorData
    from pynwb import NWBFile
    from pynwb.file import Subject
    from pynwb.ophys import (DfOverF, Fluorescence, ImageSegmentation, OpticalChannel, PlaneSegmentation,
                             RoiResponseSeries, TwoPhotonSeries)

    # shuffle first: float traces compress better and gzip runs ~1.7x faster (shuffle is built into every HDF5)
    gzip = {"compression": "gzip", "compression_opts": 4, "shuffle": True} if compression == "gzip" else {}
    kw = {k: meta[k] for k in ("experimenter", "experiment_description", "institution", "lab", "keywords")
          if k in meta}
    nwb = NWBFile(session_description=meta["session_description"], identifier=meta["identifier"],
                  session_start_time=meta["session_start_time"],
                  subject=Subject(**meta["subject"]) if "subject" in meta else None, **kw)
    device = _device(nwb, meta["device"])
    plane_meta = meta["imaging_plane"]
    spacing = {}
    if pixel_size is not None:
        # NWB's default unit is meters; fluoxr's pixel_size is in µm
        spacing = {"grid_spacing": [pixel_size * 1e-6, pixel_size * 1e-6], "grid_spacing_unit": "meters"}
    plane = nwb.create_imaging_plane(optical_channel=OpticalChannel(**meta["optical_channel"]), device=device,
                                     imaging_rate=float(video_fps or fps), **plane_meta, **spacing)
    ophys = nwb.create_processing_module("ophys", "optical physiology processed by fluoxr")
    columns = list(_pixel_columns(rois))
    colnames = [columns[0].name]
    if features is not None:
        for col in features.columns:
            values = features[col].to_numpy()
            if values.dtype.kind == "O":
                values = np.asarray([str(v) for v in values], dtype=object)
            columns.append(VectorData(name=col, description=f"ROI feature {col} (fluoxr.roi_features)", data=values))
            colnames.append(col)
    seg = PlaneSegmentation(name="PlaneSegmentation", description="ROIs of fluoxr (ROISet), in ROI order",
                            imaging_plane=plane, columns=columns, colnames=colnames, id=np.arange(len(rois)))
    isg = ImageSegmentation(name="ImageSegmentation")
    isg.add_plane_segmentation(seg)
    ophys.add(isg)
    region = seg.create_roi_table_region(description="every ROI, in order", region=list(range(len(rois))))
    items: list[_Item] = []
    containers: dict[str, list[Any]] = {"Fluorescence": [], "DfOverF": []}
    n = len(rois)
    for name in names:
        var = traces[name].transpose("time", "roi")
        arr = _as_time_chunked(var.data, 0)
        axis = _blocked_axis(arr)
        if axis == 0:
            rc = min(n, _ROIS_PER_CHUNK)
            tc = _chunk_along(arr.shape[0], arr.chunks[0], _CHUNK_BYTES // (rc * arr.dtype.itemsize))
        else:
            tc = min(arr.shape[0], 16384)
            rc = _chunk_along(n, arr.chunks[1], max(1, _CHUNK_BYTES // (tc * arr.dtype.itemsize)))
        where = "DfOverF" if name in _DFF_NAMES else "Fluorescence"
        description = _DESCRIPTIONS.get(name) or str(var.attrs.get("long_name") or f"fluoxr variable {name}")
        series = RoiResponseSeries(
            name=name, rois=region, rate=fps, starting_time=_starting_time(var), description=description,
            unit=str(var.attrs.get("units") or "a.u."),
            data=H5DataIO(shape=tuple(arr.shape), dtype=arr.dtype, chunks=(tc, rc), **gzip))
        containers[where].append(series)
        items.append(_Item(arr, f"processing/ophys/{where}/{name}/data", axis))
    if containers["Fluorescence"]:
        ophys.add(Fluorescence(name="Fluorescence", roi_response_series=containers["Fluorescence"]))
    if containers["DfOverF"]:
        ophys.add(DfOverF(name="DfOverF", roi_response_series=containers["DfOverF"]))
    if video is not None:
        # NWB's ImageSeries data are (frame, x, y): fluoxr's (time, y, x) transposed, lazily per chunk
        arr = _as_time_chunked(video.data, 0).transpose(0, 2, 1)
        frame = arr.dtype.itemsize * arr.shape[1] * arr.shape[2]
        tc = _chunk_along(arr.shape[0], arr.chunks[0], max(1, _CHUNK_BYTES // frame))
        tps = TwoPhotonSeries(
            name="TwoPhotonSeries", imaging_plane=plane, rate=float(video_fps or fps),
            starting_time=_starting_time(video), unit="n.a.", dimension=[arr.shape[1], arr.shape[2]],
            description=f"the recording (data: frame, x = column, y = row); source {video.attrs.get('source', '?')}",
            data=H5DataIO(shape=tuple(arr.shape), dtype=arr.dtype, chunks=(tc,) + tuple(arr.shape[1:]), **gzip))
        nwb.add_acquisition(tps)
        items.append(_Item(arr, "acquisition/TwoPhotonSeries/data", 0))
    return nwb, items


def to_nwb(
    traces: Any,
    path: PathLike,
    *,
    rois: Any,
    metadata: Mapping[str, Any] | None = None,
    video: Any = None,
    features: Any = None,
    fps: float | None = None,
    compression: str | None = "gzip",
    overwrite: bool = False,
) -> str:
    """Write traces, their ROIs (and optionally the recording) as an NWB 2.x ophys file, chunk by chunk.

    Parameters
    ----------
    traces : xarray.Dataset or DataArray
        What :func:`fluoxr.extract` returns and what follows it: every
        ``("roi", "time")`` variable (``F``, ``Fneu``, ``Fc``, ``spikes``,
        ``dff``, ...) becomes a ``RoiResponseSeries`` named after it, time
        first. Lazy variables are computed block by block as they are written.
    path : path
        The ``.nwb`` file to write. Refused when it is (or holds, or lies
        inside) an input, or exists unless ``overwrite``; written to a
        temporary sibling and renamed into place when complete.
    rois : fluoxr.ROISet
        The ROIs of the traces, in their order (one per ``roi``).
    metadata : dict, optional
        ``session_description``, ``identifier`` (default: a new UUID),
        ``session_start_time`` (timezone-aware datetime; default: the time of
        writing, with a warning), ``experimenter``, ``experiment_description``,
        ``institution``, ``lab``, ``keywords``; ``subject`` (``subject_id``,
        ``species``, ``sex`` in M/F/U/O, ``age`` as an ISO 8601 duration such
        as ``"P90D"``, ``description``); ``device`` (``name``,
        ``description``, ``manufacturer``); ``imaging_plane`` (``name``,
        ``description``, ``indicator``, ``location``, ``excitation_lambda`` in
        nm, ``optical_channel`` with ``name``, ``description``,
        ``emission_lambda`` in nm). Texts not given read
        ``"default: not given"``; wavelengths not given are NaN; no subject is
        written unless given (nwbinspector and DANDI then report the missing
        subject as critical: pass one with ``species`` and ``age``, and for a
        mouse an Allen atlas ``location`` such as ``"VISp"``; the missing
        pieces are logged as warnings). Unknown keys are refused.
    video : xarray.DataArray, optional
        The recording ``("time", "y", "x")``, written as
        ``acquisition/TwoPhotonSeries`` (so :func:`fluoxr.open_video` opens
        the file).
    features : fluoxr.LazyTable or pandas.DataFrame, optional
        One row per ROI (:func:`fluoxr.roi_features`): columns of the
        PlaneSegmentation.
    fps : float, optional
        Frame rate of the traces; default their ``fps`` attr or ``time``
        coordinate in seconds.
    compression : {"gzip", None}
        HDF5 compression of the traces and the recording: byte shuffle, then
        gzip level 4 (both in every HDF5 reader); fluoxr compresses whole
        chunks on several threads and writes them as stored. gzip is the
        slowest step (about 10-30 MB/s of float traces per core); None writes
        at disk speed.
    overwrite : bool
        Replace an existing file (never an input).

    Returns
    -------
    str
        The absolute path written.

    Examples
    --------
    >>> import numpy as np, xarray as xr, fluoxr
    >>> rois = fluoxr.ROISet.from_labels(np.array([[1, 1, 0], [0, 2, 2]]))
    >>> F = xr.DataArray(np.ones((2, 50), np.float32), dims=("roi", "time"), attrs={"fps": 10.0})
    >>> fluoxr.to_nwb(xr.Dataset({"F": F}), "/tmp/doc_traces.nwb", rois=rois, overwrite=True)
    '/tmp/doc_traces.nwb'
    """
    pynwb = _require_pynwb()
    from ..rois import ROISet
    from .safety import OutputLock, attr_sources, check_output_path, graph_inputs, write_file_atomically

    traces, names = _trace_variables(traces)
    if not isinstance(rois, ROISet):
        raise TypeError(f"rois must be a fluoxr.ROISet, got {type(rois).__name__}")
    n = traces.sizes["roi"]
    if len(rois) != n:
        raise ValueError(f"rois holds {len(rois)} ROIs but the traces have {n} (dim 'roi')")
    rate = _traces_fps(traces, names, fps)
    meta = _resolve_metadata(metadata)
    feats = _features_frame(features, n)
    check_choice(compression, "compression", ("gzip", None))
    if not isinstance(overwrite, (bool, np.bool_)):
        raise TypeError(f"overwrite must be True or False, got {overwrite!r}")
    video_fps = None
    pixel_size = traces.attrs.get("pixel_size")
    inputs = graph_inputs(traces) | attr_sources(traces)
    if video is not None:
        import xarray as xr

        if not isinstance(video, xr.DataArray) or tuple(video.dims) != ("time", "y", "x"):
            raise ValueError(f"video must be a ('time', 'y', 'x') DataArray (fluoxr.open_video), got "
                             f"{getattr(video, 'dims', type(video).__name__)}")
        if rois.ndim != 2 or (video.sizes["y"], video.sizes["x"]) != rois.shape:
            raise ValueError(f"video frames {(video.sizes['y'], video.sizes['x'])} differ from the ROIs' frame "
                             f"shape {rois.shape}")
        video_fps = check_fps(video.attrs.get("fps"), "video.attrs['fps']") or rate
        pixel_size = video.attrs.get("pixel_size") or pixel_size
        inputs |= graph_inputs(video) | attr_sources(video)
    if pixel_size is not None:
        pixel_size = float(pixel_size)
    target = check_output_path(path, inputs, name="path", siblings=(".lock",))
    if os.path.lexists(target) and not overwrite:
        raise ValueError(f"path {os.fspath(path)!r} already exists; pass overwrite=True to replace it")
    if os.path.isdir(target):
        raise ValueError(f"path {os.fspath(path)!r} is a folder; give the path of an .nwb file")

    def write(tmp: str) -> None:
        with warnings.catch_warnings():
            # the ROI table region is set on each series before the series joins the file: hdmf warns, harmlessly
            warnings.filterwarnings("ignore", message=".*does not share an ancestor.*")
            nwb, items = _build(pynwb, traces=traces, names=names, rois=rois, meta=meta, fps=rate, video=video,
                                video_fps=video_fps, features=feats, compression=compression, pixel_size=pixel_size)
            with pynwb.NWBHDF5IO(tmp, "w") as io:
                io.write(nwb)
        _fill(tmp, items)

    lock = OutputLock(target).acquire()
    try:
        write_file_atomically(target, write)
    finally:
        lock.release()
    logger.info("to_nwb: wrote %s (%s) for %d ROIs to %s", ", ".join(names), "and the recording" if video is not None
                else "traces only", n, target)
    return target
