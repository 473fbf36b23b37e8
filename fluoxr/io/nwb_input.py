"""NWB files as inputs: recordings (``TwoPhotonSeries``, ``OnePhotonSeries``) and ROIs (``PlaneSegmentation``).

Read with h5py alone (no pynwb needed): an NWB 2.x file is HDF5 whose groups
carry their type in the ``neurodata_type`` attribute. ``"file.nwb"`` opens the
one imaging series under ``/acquisition``; ``"file.nwb::/acquisition/NAME"``
(or ``"file.nwb::NAME"``) picks one. NWB stores image frames as
``(frame, x, y)`` (``x`` = column): the reader gives fluoxr's
``(time, y, x)``, transposed chunk by chunk. Values are the stored ones
(``conversion`` and ``offset`` are not applied).
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from .hdf5 import _H5Reader, _split_h5
from .readers import PathLike, _Reader, _positive

logger = logging.getLogger(__name__)

NWB_SUFFIXES = (".nwb",)
_SERIES_TYPES = ("TwoPhotonSeries", "OnePhotonSeries")
# meters per unit of an NWB length
_UNITS_M = {"meters": 1.0, "meter": 1.0, "m": 1.0, "millimeters": 1e-3, "mm": 1e-3, "micrometers": 1e-6,
            "micrometer": 1e-6, "microns": 1e-6, "um": 1e-6, "µm": 1e-6, "nanometers": 1e-9, "nm": 1e-9}


class _NWBReader(_H5Reader):
    """An NWB image series: HDF5 frames ``(frame, x, y[, z])`` read as ``(time, y, x)`` / ``(time, z, y, x)``."""

    def __init__(self, path: str, dataset: str, stored_shape: Sequence[int], dtype: np.dtype,
                 stat: os.stat_result | None = None) -> None:
        # frame axes reversed: (x, y) -> (y, x), (x, y, z) -> (z, y, x)
        self.axes = (0,) + tuple(range(len(stored_shape) - 1, 0, -1))
        super().__init__(path, dataset, tuple(stored_shape[a] for a in self.axes), dtype, stat)

    def _read(self, t0: int, t1: int) -> np.ndarray:
        return np.ascontiguousarray(super()._read(t0, t1).transpose(self.axes))


def _type(obj: Any) -> str:
    t = obj.attrs.get("neurodata_type", "")
    return t.decode() if isinstance(t, bytes) else str(t)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _open_h5(path: str) -> Any:
    try:
        import h5py
    except ImportError as exc:
        raise ImportError("reading NWB files needs h5py: pip install 'fluoxr[nwb]'") from exc
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise ValueError(f"path {path!r} is not a readable NWB (HDF5) file: {exc}") from exc


def _find(f: Any, types: Sequence[str], under: str = "/") -> list[str]:
    import h5py

    found: list[str] = []
    f[under].visititems(lambda n, o: found.append(o.name) if isinstance(o, h5py.Group) and _type(o) in types
                        else None)
    return found


def _pick(f: Any, path: str, name: str | None, types: Sequence[str], under: str, what: str) -> Any:
    """The group named by ``name`` (absolute, or relative to ``under``), else the only one of ``types``."""
    if name is None:
        found = _find(f, types, under) if under in f else []
        if len(found) != 1:
            raise ValueError(f"path {path!r} holds {len(found)} {what} under {under} ({found[:10]}); "
                             f"name one as '{path}::{found[0] if found else under + '/NAME'}'")
        name = found[0]
    full = name if name.startswith("/") else f"{under.rstrip('/')}/{name}"
    if full not in f and "/" not in name:
        # a bare name: the one object of that name and type anywhere in the file
        named = [p for p in _find(f, types) if p.rsplit("/", 1)[-1] == name]
        full = named[0] if len(named) == 1 else full
    if full not in f:
        raise ValueError(f"path: {path!r} has no {full!r}")
    group = f[full]
    if _type(group) not in types:
        raise ValueError(f"path: {full!r} in {path!r} is a {_type(group) or 'plain HDF5 object'}, not one of {types}")
    return group


def _length_m(ds: Any) -> np.ndarray | None:
    unit = _text(ds.attrs.get("unit", "meters")).strip().lower()
    scale = _UNITS_M.get(unit)
    if scale is None:
        return None
    return np.asarray(ds[()], np.float64).ravel() * scale


def _pixel_size_um(group: Any, frame_xy: tuple[int, int]) -> float | None:
    """Pixel size in µm from the imaging plane's ``grid_spacing`` (or the series' ``field_of_view``),
    when x and y agree; None when the file does not say."""
    sizes = None
    plane = group.get("imaging_plane")
    if plane is not None and "grid_spacing" in plane:
        sizes = _length_m(plane["grid_spacing"])
    if sizes is None and "field_of_view" in group:
        fov = _length_m(group["field_of_view"])
        if fov is not None and fov.size >= 2:
            sizes = fov[:2] / np.asarray(frame_xy, np.float64)
    if sizes is None or sizes.size < 2 or not np.all(np.isfinite(sizes[:2])) or np.any(sizes[:2] <= 0):
        return None
    if not math.isclose(sizes[0], sizes[1], rel_tol=1e-6):
        logger.info("%s: pixels are not square (%s m); pixel_size left unset", group.name, sizes[:2].tolist())
        return None
    return float(sizes[0] * 1e6)


def _rate(group: Any, path: str) -> dict[str, Any]:
    if "starting_time" in group:
        rate = _positive(group["starting_time"].attrs.get("rate"))
        if rate is None:
            return {"fps_error": f"path {path!r}: {group.name}/starting_time has no valid rate; pass fps= "
                                 "to open_video to set it"}
        return {"fps": rate}
    if "timestamps" in group and group["timestamps"].shape[0] >= 2:
        t = np.asarray(group["timestamps"][()], np.float64)
        dt = np.diff(t)
        if np.all(dt > 0) and np.allclose(dt, dt.mean(), rtol=1e-3):
            return {"fps": float(f"{1.0 / dt.mean():.12g}")}
        logger.warning("%s: %s has irregular timestamps; fps left unset (pass fps=)", path, group.name)
    return {}


def _nwb_reader(text: str) -> tuple[_Reader, tuple[str, ...], dict[str, Any], tuple | None]:
    """Reader, dims, metadata (fps, pixel_size) and HDF5 chunks of an NWB image series."""
    from .._video import VIDEO_DIMS

    path, name = _split_h5(text)
    st = os.stat(path)
    with _open_h5(path) as f:
        group = _pick(f, path, name, _SERIES_TYPES + ("ImageSeries",), "/acquisition",
                      "imaging series (TwoPhotonSeries, OnePhotonSeries)")
        if "external_file" in group:
            files = [_text(v) for v in group["external_file"][()]]
            raise ValueError(f"path {path!r}: {group.name} keeps its frames in external files {files[:3]}; "
                             "open those files instead")
        data = group["data"]
        if data.ndim not in (3, 4):
            raise ValueError(f"path {path!r}: {group.name}/data has {data.ndim} dims; fluoxr opens (frame, x, y) "
                             "and (frame, x, y, z) series")
        reader = _NWBReader(path, data.name, data.shape, data.dtype, stat=st)
        meta = _rate(group, path)
        size = _pixel_size_um(group, (data.shape[1], data.shape[2]))
        if size is not None:
            meta["pixel_size"] = size
        chunks = data.chunks
    dims = VIDEO_DIMS if reader.ndim == 3 else ("time", "z", "y", "x")
    base = None if chunks is None else (chunks[0],) + tuple(reader.shape[1:])
    return reader, dims, meta, base


def _frame_shape(f: Any, seg: Any, path: str) -> tuple[int, ...] | None:
    """(Ly, Lx) of the plane: from an image series on the same imaging plane."""
    plane = seg.get("imaging_plane")
    if plane is None:
        return None
    for name in _find(f, _SERIES_TYPES + ("ImageSeries",)):
        g = f[name]
        if g.get("imaging_plane") == plane and "data" in g and g["data"].ndim == 3 and g["data"].shape[0] > 0:
            return (int(g["data"].shape[2]), int(g["data"].shape[1]))
        if g.get("imaging_plane") == plane and "dimension" in g:
            dim = np.asarray(g["dimension"][()]).ravel()
            if dim.size == 2:
                return (int(dim[1]), int(dim[0]))
    return None


def read_nwb_rois(path: PathLike, *, shape: Sequence[int] | None = None) -> Any:
    """The ROIs of an NWB ``PlaneSegmentation`` as a :class:`fluoxr.ROISet`.

    Pixel masks (``x`` = column, ``y`` = row, ``weight``), voxel masks and
    image masks (``(roi, x, y)``, nonzero pixels with their values as weights)
    are read. The other one-value-per-ROI columns (such as the features
    :func:`fluoxr.to_nwb` writes) become ``meta``.

    Parameters
    ----------
    path : path
        ``"file.nwb"`` (the file's only PlaneSegmentation) or
        ``"file.nwb::/processing/ophys/ImageSegmentation/NAME"``.
    shape : (Ly, Lx) or (Lz, Ly, Lx), optional
        Frame shape. Default: an image mask's shape, else the frames of an
        imaging series on the same imaging plane, else the smallest frame
        that holds every pixel (logged).

    Examples
    --------
    >>> import numpy as np, xarray as xr, fluoxr
    >>> rois = fluoxr.ROISet.from_labels(np.array([[1, 1, 0], [0, 2, 2]]))
    >>> F = xr.DataArray(np.ones((2, 5), np.float32), dims=("roi", "time"), attrs={"fps": 10.0})
    >>> p = fluoxr.to_nwb(F.rename("F"), "/tmp/doc_rois.nwb", rois=rois, overwrite=True)
    >>> fluoxr.read_nwb_rois(p, shape=(2, 3)).npix.tolist()
    [2, 2]
    """
    import pandas as pd

    from ..rois import ROISet, _frame_shape as check_shape
    from .readers import VideoFileNotFoundError

    text = os.fspath(path)
    file, name = _split_h5(text)
    if not os.path.exists(file):
        raise VideoFileNotFoundError(f"path {file!r} does not exist")
    given = check_shape(tuple(shape), "shape") if shape is not None else None
    with _open_h5(file) as f:
        seg = _pick(f, file, name, ("PlaneSegmentation",), "/", "PlaneSegmentation")
        n = int(seg["id"].shape[0])
        if "pixel_mask" in seg or "voxel_mask" in seg:
            key = "pixel_mask" if "pixel_mask" in seg else "voxel_mask"
            mask = seg[key][()]
            ends = np.asarray(seg[f"{key}_index"][()], np.int64)
            roi = np.repeat(np.arange(n), np.diff(np.concatenate([[0], ends])))
            coords = {"y": mask["y"], "x": mask["x"], "z": mask["z"] if key == "voxel_mask" else None}
            weight = np.asarray(mask["weight"], np.float32)
            frame = _frame_shape(f, seg, file) if key == "pixel_mask" else None
        elif "image_mask" in seg:
            masks = np.asarray(seg["image_mask"][()])
            # (roi, x, y[, z]) -> (roi, [z], y, x)
            masks = masks.transpose((0,) + tuple(range(masks.ndim - 1, 0, -1)))
            nz = np.nonzero(masks)
            roi, weight = nz[0], masks[nz].astype(np.float32)
            coords = {"y": nz[-2], "x": nz[-1], "z": nz[1] if masks.ndim == 4 else None}
            frame = masks.shape[1:]
        else:
            raise ValueError(f"path {file!r}: {seg.name} holds no pixel_mask, voxel_mask or image_mask")
        meta = {}
        for col in seg:
            ds = seg[col]
            if col in ("id", "pixel_mask", "voxel_mask", "image_mask") or col.endswith("_index") \
                    or f"{col}_index" in seg or not hasattr(ds, "shape") or ds.shape != (n,):
                continue
            values = ds[()]
            if values.dtype.kind in "OS":
                values = np.asarray([_text(v) for v in values], dtype=object)
            if values.dtype.kind in "biufO":
                meta[col] = values
        ids = np.asarray(seg["id"][()])
        if not np.array_equal(ids, np.arange(n)):
            meta["nwb_id"] = ids
    planar = coords["z"] is None
    if given is not None:
        frame = given
    elif frame is None:
        cs = [coords["y"], coords["x"]] if planar else [coords["z"], coords["y"], coords["x"]]
        frame = tuple(int(c.max()) + 1 for c in cs)
        logger.info("%s: frame shape not stored; using the smallest that holds every ROI, %s (pass shape=)",
                    file, frame)
    return ROISet(roi=roi, y=coords["y"], x=coords["x"], z=None if planar else coords["z"], weight=weight,
                  shape=tuple(frame), meta=pd.DataFrame(meta) if meta else None)
