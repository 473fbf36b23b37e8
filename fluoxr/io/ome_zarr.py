"""OME-Zarr (OME-NGFF 0.5, zarr v3): images and labels that napari, Fiji and Neuroglancer open.

:func:`fluoxr.save` with ``format="ome-zarr"`` (or a path ending in
``.ome.zarr``) writes through the same machinery as a plain zarr store
(:mod:`.store`: refused paths, the lock, chunk markers in ``PATH.partial``,
resume, the completeness record in the root ``zarr.json``); only the layout
differs, and it is described here by :class:`OmeLayout`.

Layout
------
* Every variable with ``y`` and ``x`` dims is an image: one multiscale image
  group with arrays ``0``, ``1``, ... (level 0 is the data, each further level
  halves ``y`` and ``x``), axes in NGFF order (``t``, ``c``, ``z``, ``y``,
  ``x`` as present) and ``scale``/``translation`` transforms from the
  coordinates, ``fps`` (time in ``second``) and ``pixel_size``
  (``micrometer``). A Fourier-interpolated image (fractional ``y``/``x``
  coordinates in original pixels) gets scale = coordinate step x original
  pixel size (its ``pixel_size`` x ``finterp_factor``), which is its own
  ``pixel_size``; translation = first coordinate x original pixel size. Any one dim other
  than time, z, y, x (``channel``, a SOFI stack's ``order``) becomes the
  channel axis ``c``: napari then shows one layer per order.
* Integer label images and videos (an integer or boolean variable whose name
  contains ``label`` or that carries CF ``flag_meanings``, like
  :func:`fluoxr.oscillations.detect`'s) are written as NGFF ``labels`` of the
  image with the same dims and sizes (``IMAGE/labels/NAME``, with
  ``image-label`` colours: influx red, efflux blue, others from a fixed
  palette). A label variable with no such image is written as an image.
* One image (a DataArray, or a Dataset with one image and its labels): the
  store's root is that image, so ``napari out.ome.zarr`` opens it. Several
  images: one group per variable name (``out.ome.zarr/NAME``).
* What xarray needs for a faithful round trip (dims, every coordinate, attrs,
  variables that are not images) is kept in the root attribute ``fluoxr_ome``
  and the plain xarray group ``fluoxr/``; :func:`fluoxr.open_result` reads
  the store back to the same object.

Pyramid: a level is added while the smaller of ``y``, ``x`` of the last level
is at least :data:`PYRAMID_MIN_SIDE` (256) pixels, so an image of 256 px a
side or more has at least two levels; at most :data:`PYRAMID_MAX_LEVELS`.
Each level is ``ceil(n / 2)`` in ``y`` and ``x``: intensities are the mean of
each 2x2 block (NaN-aware; the last row or column of an odd side averages
what there is; integers rounded back to their dtype), labels take every second
pixel (nearest), so label values are never mixed. Level ``k`` is computed from
level ``k - 1`` as written in the store, never by computing the result again.

The metadata are written by fluoxr itself (plain JSON through zarr-python):
no runtime dependency, and fluoxr controls what ome-zarr-py 0.21's
``write_labels`` gets wrong (``version`` missing from the ``labels`` group's
``ome`` block, which ome-zarr-models rejects). ome-zarr-models and ome-zarr-py
validate and read every store in the tests.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from .readers import PathLike

logger = logging.getLogger(__name__)

NGFF_VERSION = "0.5"
OME_SUFFIX = ".ome.zarr"
FORMATS = ("zarr", "ome-zarr")
PYRAMID_MIN_SIDE = 256
PYRAMID_MAX_LEVELS = 8
_META_ATTR = "fluoxr_ome"
_CHUNK_BYTES = 16 << 20  # chunks of in-memory images (dask data keep their own chunks)
_XARRAY_GROUP = "fluoxr"
_SPACE = ("z", "y", "x")
# label colours (RGBA); oscillation labels: 1 influx, 2 efflux (fluoxr.oscillations.detect)
_NAMED_COLOURS = {"influx": [228, 26, 28, 255], "efflux": [55, 126, 184, 255]}
_PALETTE = [[77, 175, 74, 255], [152, 78, 163, 255], [255, 127, 0, 255], [255, 255, 51, 255],
            [166, 86, 40, 255], [247, 129, 191, 255]]
_UNIT_TO_SECOND = {"second": 1.0, "millisecond": 1e-3, "microsecond": 1e-6, "nanosecond": 1e-9, "minute": 60.0,
                   "hour": 3600.0}
_UNIT_TO_MICROMETER = {"micrometer": 1.0, "nanometer": 1e-3, "millimeter": 1e3, "centimeter": 1e4, "meter": 1e6,
                       "angstrom": 1e-4}


def resolve_format(format: str | None, path: PathLike) -> str:
    """The store format: ``format`` if given, else ``"ome-zarr"`` for a path ending in ``.ome.zarr``.

    Examples
    --------
    >>> resolve_format(None, "/tmp/out.ome.zarr"), resolve_format(None, "/tmp/o.zarr"), resolve_format("ome-zarr", "x")
    ('ome-zarr', 'zarr', 'ome-zarr')
    """
    if format is None:
        text = os.fspath(path) if isinstance(path, (str, os.PathLike)) else ""
        return "ome-zarr" if str(text).rstrip("/\\").lower().endswith(OME_SUFFIX) else "zarr"
    if not isinstance(format, str) or format.lower() not in FORMATS:
        raise ValueError(f"format must be one of {list(FORMATS)} (or None to tell from the path), got {format!r}")
    return format.lower()


# --------------------------------------------------------------------------------------------
# the downsampling kernels (pure NumPy)


def _pair_sum(a: np.ndarray, ax: int) -> np.ndarray:
    """Sums of neighbouring pairs along ``ax`` (an odd last sample stands alone)."""
    first = a[(slice(None),) * ax + (slice(0, None, 2),)].copy()
    second = a[(slice(None),) * ax + (slice(1, None, 2),)]
    first[(slice(None),) * ax + (slice(0, second.shape[ax]),)] += second
    return first


def downsample_mean(block: np.ndarray, axes: Sequence[int]) -> np.ndarray:
    """Mean of 2-blocks along ``axes`` (NaN-aware), ``ceil(n / 2)`` long; integers rounded to their dtype.

    Examples
    --------
    >>> downsample_mean(np.array([[1, 3, 5], [3, 5, 7]], np.uint8), (0, 1)).tolist()
    [[3, 6]]
    """
    block = np.asarray(block)
    x = block.astype(np.float64)
    nan = np.isnan(x) if block.dtype.kind in "fc" else None
    if nan is not None and nan.any():
        x[nan] = 0.0
        counts = (~nan).astype(np.float64)
    else:  # no NaN: the counts are 2 (or 1 for an odd last sample) along each axis
        counts = None
    for ax in axes:
        x = _pair_sum(x, ax)
        if counts is not None:
            counts = _pair_sum(counts, ax)
    if counts is None:
        shape = [1] * x.ndim
        counts = np.ones((), np.float64)
        for ax in axes:
            n = block.shape[ax]
            c = np.full((n + 1) // 2, 2.0)
            if n % 2:
                c[-1] = 1.0
            shape_ax = list(shape)
            shape_ax[ax] = c.size
            counts = counts * c.reshape(shape_ax)
    with np.errstate(invalid="ignore", divide="ignore"):
        x /= counts  # an all-NaN block: 0 / 0 = NaN
    if block.dtype.kind in "iub":
        x = np.rint(x)
        if block.dtype.kind != "b":
            info = np.iinfo(block.dtype)
            x = np.clip(x, info.min, info.max)
    return x.astype(block.dtype)


def downsample_nearest(block: np.ndarray, axes: Sequence[int]) -> np.ndarray:
    """Every second sample along ``axes`` (labels: values are never mixed), ``ceil(n / 2)`` long.

    Examples
    --------
    >>> downsample_nearest(np.arange(6).reshape(2, 3), (0, 1)).tolist()
    [[0, 2]]
    """
    index = [slice(None)] * np.ndim(block)
    for ax in axes:
        index[ax] = slice(None, None, 2)
    return np.asarray(block)[tuple(index)]


# --------------------------------------------------------------------------------------------
# the layout of a Dataset in OME-Zarr


def _is_image(var: xr.DataArray) -> bool:
    return "y" in var.dims and "x" in var.dims and var.ndim >= 2


def _is_label(name: str, var: xr.DataArray) -> bool:
    return var.dtype.kind in "iub" and ("label" in name.lower() or "flag_meanings" in var.attrs)


def _ngff_order(name: str, dims: Sequence[Hashable]) -> tuple[list[str], list[dict[str, Any]]]:
    """Original dims in NGFF order and the axis name of each (``t``, ``c``, ``z``, ``y``, ``x``)."""
    dims = [str(d) for d in dims]
    extra = [d for d in dims if d not in ("time", *_SPACE)]
    if len(extra) > 1:
        raise ValueError(f"obj: variable {name!r} has dims {tuple(dims)}; OME-Zarr allows time, one channel-like "
                         f"dim, z, y and x, so {extra} cannot all be stored. Select or stack them first, or save "
                         "with format='zarr'")
    order = [d for d in ("time", *extra, *_SPACE) if d in dims]
    names = {"time": "t", "z": "z", "y": "y", "x": "x"} | {d: "c" for d in extra}
    return order, [{"dim": d, "name": names[d]} for d in order]


def _step_and_origin(coord: np.ndarray | None, n: int) -> tuple[float, float]:
    """Step and first value of a 1-D numeric coordinate (1, 0 when absent, not numeric or not uniform)."""
    if coord is None or coord.dtype.kind not in "iuf" or n == 0:
        return 1.0, 0.0
    c = np.asarray(coord, dtype=np.float64)
    if not np.all(np.isfinite(c)):
        return 1.0, 0.0
    step = float(c[1] - c[0]) if n > 1 else 1.0
    if n > 2 and not np.allclose(np.diff(c), step, rtol=1e-6, atol=0):
        logger.info("coordinate is not evenly spaced; its OME-Zarr scale is the first step (%g)", step)
    if step <= 0:
        step = 1.0
    return step, float(c[0])


@dataclass
class _Image:
    """One multiscale image (or label image) of the store."""

    var: str                    # variable name
    group: str                  # group path in the store ("" is the root)
    dims: list[str]             # the variable's dims
    order: list[str]            # its dims in NGFF order
    axes: list[dict[str, Any]]  # NGFF axes
    scale: list[float]          # level 0
    translation: list[float]
    shapes: list[tuple[int, ...]] = field(default_factory=list)
    chunks: list[tuple[int, ...]] = field(default_factory=list)
    label: bool = False
    labels: list[str] = field(default_factory=list)  # label variable names (of a parent image)
    colours: list[dict[str, Any]] = field(default_factory=list)
    properties: list[dict[str, Any]] = field(default_factory=list)

    def path(self, level: int) -> str:
        return f"{self.group}/{level}" if self.group else str(level)

    @property
    def spatial_axes(self) -> tuple[int, int]:
        return self.order.index("y"), self.order.index("x")

    def transforms(self, level: int) -> list[dict[str, Any]]:
        scale = list(self.scale)
        translation = list(self.translation)
        for ax in self.spatial_axes:
            scale[ax] = self.scale[ax] * 2 ** level
            if not self.label:  # a mean's sample sits at the centre of the block it averages
                translation[ax] = self.translation[ax] + (2 ** level - 1) / 2 * self.scale[ax]
        out: list[dict[str, Any]] = [{"type": "scale", "scale": scale}]
        if any(t != 0 for t in translation):
            out.append({"type": "translation", "translation": translation})
        return out

    def multiscales(self) -> list[dict[str, Any]]:
        return [{
            "name": self.var,
            "axes": [{k: v for k, v in a.items() if k != "dim"} for a in self.axes],
            "datasets": [{"path": str(k), "coordinateTransformations": self.transforms(k)}
                         for k in range(len(self.shapes))],
            "type": "nearest (every second pixel)" if self.label else "mean of 2x2 blocks",
            "metadata": {"method": "fluoxr.io.ome_zarr." + ("downsample_nearest" if self.label
                                                               else "downsample_mean")},
        }]


def _label_colours(var: xr.DataArray) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    values = var.attrs.get("flag_values")
    meanings = var.attrs.get("flag_meanings")
    if not (isinstance(values, (list, tuple)) and isinstance(meanings, str)):
        return [], []
    words = meanings.split()
    if len(words) != len(values):
        return [], []
    colours, properties = [], []
    for i, (value, word) in enumerate(zip(values, words)):
        if int(value) == 0:
            continue
        rgba = _NAMED_COLOURS.get(word, _PALETTE[i % len(_PALETTE)])
        colours.append({"label-value": int(value), "rgba": list(rgba)})
        properties.append({"label-value": int(value), "name": word})
    return colours, properties


def _pyramid(shape: tuple[int, ...], chunks: tuple[int, ...], spatial: tuple[int, int]) -> tuple[list, list]:
    shapes, chunkings = [tuple(shape)], [tuple(chunks)]
    while (len(shapes) < PYRAMID_MAX_LEVELS
           and min(shapes[-1][a] for a in spatial) >= PYRAMID_MIN_SIDE):
        s = list(shapes[-1])
        for a in spatial:
            s[a] = (s[a] + 1) // 2
        shapes.append(tuple(s))
        chunkings.append(tuple(max(1, min(c, n)) for c, n in zip(chunks, s)))
    return shapes, chunkings


@dataclass
class OmeLayout:
    """How :func:`fluoxr.save` lays a prepared Dataset out as OME-Zarr: metadata and write tasks."""

    ds: xr.Dataset
    images: list[_Image]
    dataarray: str | None
    attrs: dict[str, Any]

    @classmethod
    def plan(cls, ds: xr.Dataset) -> "OmeLayout":
        """Sort the variables of a Dataset prepared by :mod:`.store` into images, labels and the rest."""
        from .store import _ragged_spec

        attrs = dict(ds.attrs)
        dataarray = attrs.pop("fluoxr_dataarray", None)
        if _ragged_spec(ds) is not None:
            raise ValueError("obj: tables of unknown length cannot be stored in OME-Zarr; save them with "
                             "format='zarr'")
        names = [str(n) for n, v in ds.data_vars.items() if _is_image(v)]
        if not names:
            raise ValueError(
                f"obj holds nothing image-like (no variable with 'y' and 'x' dims; variables "
                f"{[str(n) for n in ds.data_vars]}); OME-Zarr stores images and videos, save it with format='zarr'")
        parents = [n for n in names if not _is_label(n, ds[n])]
        labels: dict[str, str] = {}
        for n in names:
            if n in parents:
                continue
            match = [p for p in parents if ds[p].sizes == ds[n].sizes]
            if match:
                labels[n] = match[0]
            else:
                parents.append(n)  # a label image of its own: an image downsampled by nearest
        images = []
        root = len(parents) == 1
        clash = [n for n in parents if not root and (n in (_XARRAY_GROUP, "labels") or n.isdigit())]
        if clash:
            raise ValueError(f"obj: the variable name(s) {clash} cannot name image groups of an OME-Zarr store "
                             f"({_XARRAY_GROUP!r}, 'labels' and level numbers are taken); rename them first")
        for p in parents:
            img = cls._image(ds, p, "" if root else p, label=_is_label(p, ds[p]))
            img.labels = [n for n, q in labels.items() if q == p]
            images.append(img)
            for n in img.labels:
                images.append(cls._image(ds, n, f"{img.group + '/' if img.group else ''}labels/{n}", label=True))
        return cls(ds, images, dataarray, attrs)

    @staticmethod
    def _image(ds: xr.Dataset, name: str, group: str, *, label: bool) -> _Image:
        var = ds[name]
        order, axes = _ngff_order(name, var.dims)
        fps = var.attrs.get("fps", ds.attrs.get("fps"))
        pixel_size = var.attrs.get("pixel_size", ds.attrs.get("pixel_size"))
        factor = var.attrs.get("finterp_factor", ds.attrs.get("finterp_factor"))
        if isinstance(pixel_size, (int, float)) and isinstance(factor, (int, float)) and factor > 0:
            # fourier_interpolate keeps y/x in the original pixels and divides pixel_size by its factor:
            # the coordinates' unit is the original pixel
            pixel_size = pixel_size * factor
        scale, translation = [], []
        for ax in axes:
            d = ax["dim"]
            coord = ds[d].values if d in ds.coords and ds[d].ndim == 1 else None
            step, origin = _step_and_origin(coord, var.sizes[d])
            if d == "time":
                ax["type"] = "time"
                if isinstance(fps, (int, float)) and fps > 0:
                    ax["unit"] = "second"
                    step = 1.0 / float(fps) if coord is None else step
            elif d in _SPACE:
                ax["type"] = "space"
                if isinstance(pixel_size, (int, float)) and pixel_size > 0 and d != "z":
                    ax["unit"] = "micrometer"
                    step, origin = step * float(pixel_size), origin * float(pixel_size)
            else:
                ax["type"] = "channel"
                step, origin = 1.0, 0.0
            scale.append(step)
            translation.append(origin)
        data = var.data
        shape = tuple(var.sizes[d] for d in order)
        if isinstance(data, da.Array):
            chunks = tuple(data.chunksize[var.dims.index(d)] for d in order)
        else:  # in memory: whole planes, about _CHUNK_BYTES per chunk along the first other dim
            chunks = tuple(n if d in _SPACE else 1 for d, n in zip(order, shape))
            lead = next((i for i, d in enumerate(order) if d not in _SPACE), None)
            if lead is not None:
                plane = max(1, int(np.prod(chunks)) * var.dtype.itemsize)
                chunks = chunks[:lead] + (max(1, min(shape[lead], _CHUNK_BYTES // plane)),) + chunks[lead + 1:]
        img = _Image(var=name, group=group, dims=[str(d) for d in var.dims], order=order, axes=axes, scale=scale,
                     translation=translation, label=label)
        img.shapes, img.chunks = _pyramid(shape, chunks, img.spatial_axes)
        if label:
            img.colours, img.properties = _label_colours(var)
        return img

    # -- what the store needs from a layout ---------------------------------------------------

    def fingerprint_plan(self) -> dict[str, Any]:
        """What the write looks like (part of the fingerprint that ``resume`` compares)."""
        return json.loads(json.dumps({
            "layout": "ome-zarr-" + NGFF_VERSION,
            "images": {i.var: {"group": i.group, "shapes": i.shapes, "chunks": i.chunks, "label": i.label}
                       for i in self.images},
        }))

    def _dtype(self, img: _Image) -> np.dtype:
        dtype = self.ds[img.var].dtype
        return np.dtype(np.uint8) if dtype.kind == "b" else dtype

    def _extra(self) -> xr.Dataset:
        """Every coordinate and the variables that are not images, as a plain xarray Dataset."""
        image_names = {i.var for i in self.images}
        return self.ds.drop_vars(list(image_names))

    def write_metadata(self, path: str, record: Mapping[str, Any]) -> None:
        """Create the store: xarray group, image groups and empty arrays, then the root attributes last."""
        import zarr

        from .store import _WRITE_ATTR

        root = zarr.open_group(path, mode="w", zarr_format=3)
        extra = self._extra()
        extra.attrs = {}
        extra.to_zarr(path, group=_XARRAY_GROUP, mode="w", compute=False, consolidated=False, zarr_format=3)
        groups: dict[str, dict[str, Any]] = {}
        for img in self.images:
            for level, (shape, chunks) in enumerate(zip(img.shapes, img.chunks)):
                zarr.create_array(store=path, name=img.path(level), shape=shape, chunks=chunks,
                                  dtype=self._dtype(img), dimension_names=[a["name"] for a in img.axes],
                                  fill_value=0, overwrite=True)
            ome: dict[str, Any] = {"version": NGFF_VERSION, "multiscales": img.multiscales()}
            if img.label:
                label_meta: dict[str, Any] = {"version": NGFF_VERSION}
                if img.colours:
                    label_meta["colors"] = img.colours
                    label_meta["properties"] = img.properties
                if "/labels/" in "/" + img.group:
                    label_meta["source"] = {"image": "../../"}
                    ome["image-label"] = label_meta
            groups[img.group] = {"ome": ome}
            if img.labels:
                # "version" in the labels group's own ome block: ome-zarr-models requires it
                groups[(img.group + "/" if img.group else "") + "labels"] = {
                    "ome": {"version": NGFF_VERSION, "labels": list(img.labels)}}
        description = {
            "format": 1,
            "dataarray": self.dataarray,
            "attrs": self.attrs,
            "xarray_group": _XARRAY_GROUP,
            "variables": [str(n) for n in self.ds.data_vars],
            "images": {i.var: {"group": i.group, "path": i.path(0), "dims": i.dims, "order": i.order,
                               "attrs": dict(self.ds[i.var].attrs), "dtype": str(self.ds[i.var].dtype),
                               "levels": len(i.shapes), "label": i.label} for i in self.images},
        }
        for gpath, attrs in sorted(groups.items(), key=lambda kv: -kv[0].count("/")):
            if gpath:
                zarr.open_group(path, path=gpath, mode="a", zarr_format=3).attrs.update(attrs)
        root = zarr.open_group(path, mode="a", zarr_format=3)
        root.attrs.update({**groups.get("", {}), _META_ATTR: description, _WRITE_ATTR: dict(record)})

    def tasks(self, path: str, partial: str) -> list:
        """The delayed chunk writes not yet marked done: level 0 from the result, each further level from the last."""
        from .store import _block_key, _gather_tree, _write_block

        tasks = []
        for img in self.images:
            var = self.ds[img.var]
            data = var.data
            if not isinstance(data, da.Array):
                data = da.from_array(np.asarray(data), chunks=tuple(img.chunks[0][img.order.index(d)]
                                                                       for d in var.dims))
            data = data.transpose([var.dims.index(d) for d in img.order])
            if data.dtype.kind == "b":
                data = data.astype(np.uint8)
            level_tasks = []
            folder = os.path.join(partial, "done", img.path(0))
            os.makedirs(folder, exist_ok=True)
            blocks = data.to_delayed(optimize_graph=True)
            starts = [np.cumsum((0,) + c) for c in data.chunks]
            for index in np.ndindex(*blocks.shape):
                marker = os.path.join(folder, _block_key(index))
                if os.path.exists(marker):
                    continue
                region = tuple(slice(int(s[i]), int(s[i + 1])) for s, i in zip(starts, index))
                level_tasks.append(dask.delayed(_write_block, pure=False)(blocks[index], path, img.path(0), region,
                                                                          marker))
            for level in range(1, len(img.shapes)):
                barrier = _gather_tree(level_tasks)
                tasks += level_tasks
                level_tasks = []
                folder = os.path.join(partial, "done", img.path(level))
                os.makedirs(folder, exist_ok=True)
                shape, chunks = img.shapes[level], img.chunks[level]
                counts = [math.ceil(n / c) for n, c in zip(shape, chunks)]
                for index in np.ndindex(*counts):
                    marker = os.path.join(folder, _block_key(index))
                    if os.path.exists(marker):
                        continue
                    region = tuple(slice(i * c, min((i + 1) * c, n)) for i, c, n in zip(index, chunks, shape))
                    level_tasks.append(dask.delayed(_write_level_block, pure=False)(
                        barrier, path, img.path(level - 1), img.path(level), region, img.spatial_axes, img.label,
                        marker))
            tasks += level_tasks
        return tasks


def _write_level_block(after: Any, store: str, source: str, target: str, region: tuple[slice, ...],
                       spatial: tuple[int, ...], label: bool, marker: str) -> int:
    """Read the part of level ``source`` under ``region`` of the next level, downsample it, write it."""
    import zarr

    from .store import _write_block

    src = zarr.open_array(store=store, path=source, mode="r")
    read = tuple(slice(2 * r.start, min(2 * r.stop, n)) if ax in spatial else r
                 for ax, (r, n) in enumerate(zip(region, src.shape)))
    block = src[read]
    small = downsample_nearest(block, spatial) if label else downsample_mean(block, spatial)
    return _write_block(small, store, target, region, marker)


# --------------------------------------------------------------------------------------------
# reading


def _group_attrs(path: str) -> dict[str, Any]:
    """Attributes of a zarr v3 group (``zarr.json``) or v2 group (``.zattrs``) at ``path``."""
    try:
        with open(os.path.join(path, "zarr.json")) as fh:
            return dict(json.load(fh).get("attributes") or {})
    except (OSError, ValueError):
        pass
    try:
        with open(os.path.join(path, ".zattrs")) as fh:
            return dict(json.load(fh))
    except (OSError, ValueError):
        return {}


def _ome_block(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """The OME metadata of a group: 0.5's ``ome`` block, or 0.4's attributes themselves."""
    ome = attrs.get("ome")
    return dict(ome) if isinstance(ome, Mapping) else dict(attrs)


def split_ome_path(text: str) -> tuple[str, str]:
    """``(store, group)`` of ``"store.ome.zarr::labels/NAME"`` (group ``""`` without ``::``).

    Examples
    --------
    >>> split_ome_path("/tmp/a.ome.zarr::labels/cells/"), split_ome_path("/tmp/a.ome.zarr")
    (('/tmp/a.ome.zarr', 'labels/cells'), ('/tmp/a.ome.zarr', ''))
    """
    store, _, group = text.partition("::")
    return store, group.strip("/")


def is_ome_zarr(text: str) -> bool:
    """Whether ``text`` (optionally with ``::GROUP``) is an OME-Zarr image or a store fluoxr wrote as OME-Zarr."""
    store, group = split_ome_path(text)
    if not os.path.isdir(store):
        return False
    root = _group_attrs(store)
    if _META_ATTR in root:
        return True
    ome = _ome_block(_group_attrs(os.path.join(store, group)) if group else root)
    return "multiscales" in ome


def _check_parents_complete(path: str) -> None:
    """Refuse a group inside a store whose write fluoxr has not finished (checked up to the store's root)."""
    from .store import check_complete

    here = os.path.abspath(path)
    while True:
        if os.path.exists(os.path.join(here, "zarr.json")):
            check_complete(here)
        parent = os.path.dirname(here)
        if parent == here or not os.path.exists(os.path.join(parent, "zarr.json")):
            return
        here = parent


def open_ome_result(path: str, *, chunks: Mapping[Hashable, Any] | None = None) -> xr.DataArray | xr.Dataset:
    """The xarray object :func:`fluoxr.save` wrote to ``path`` as OME-Zarr (lazy): what ``open_result`` returns.

    Examples
    --------
    >>> import numpy as np, xarray as xr, fluoxr
    >>> img = xr.DataArray(np.ones((4, 5), np.float32), dims=("y", "x"), name="mean")
    >>> fluoxr.save(img, "/tmp/doc_mean.ome.zarr", overwrite=True)
    '/tmp/doc_mean.ome.zarr'
    >>> open_ome_result("/tmp/doc_mean.ome.zarr").dims, is_ome_zarr("/tmp/doc_mean.ome.zarr")
    (('y', 'x'), True)
    """
    import zarr

    desc = _group_attrs(path).get(_META_ATTR)
    if not isinstance(desc, Mapping):
        raise ValueError(f"path {path!r} is an OME-Zarr store fluoxr did not write; open it with fluoxr.open_video")
    ds = xr.open_zarr(path, group=desc.get("xarray_group", _XARRAY_GROUP), chunks={}, consolidated=False)
    ds.attrs = dict(desc.get("attrs") or {})
    for name, img in desc["images"].items():
        arr = zarr.open_array(store=path, path=img["path"], mode="r")
        data = da.from_zarr(arr)
        if data.dtype != np.dtype(img["dtype"]):
            data = data.astype(img["dtype"])  # booleans are stored as uint8 (labels)
        order = list(img["order"])
        data = data.transpose([order.index(d) for d in img["dims"]])
        ds[name] = xr.Variable(img["dims"], data, dict(img.get("attrs") or {}))
    order = [n for n in desc.get("variables") or [] if n in ds.data_vars]
    if order:
        ds = ds[order + [str(n) for n in ds.data_vars if n not in order]]
    if chunks:
        ds = ds.chunk(chunks)
    name = desc.get("dataarray")
    if name is not None:
        out = ds[name]
        out.attrs = dict(ds.attrs)
        return out
    return ds


def _image_group(store: str, group: str, root: Mapping[str, Any]) -> str:
    """The group of the image to open: ``group``, or the root, or the store's only image."""
    if group:
        return group
    if "multiscales" in _ome_block(root):
        return ""
    desc = root.get(_META_ATTR)
    if isinstance(desc, Mapping):
        tops = [i["group"] for i in desc["images"].values() if "/labels/" not in "/" + i["group"]]
        if len(tops) == 1:
            return tops[0]
        raise ValueError(f"path {store!r} holds several images {tops}; open one with "
                         f"'{store}::{tops[0]}' (or its labels with '::NAME/labels/LABEL')")
    raise ValueError(f"path {store!r} is not an OME-Zarr image (no multiscales metadata)")


def open_ome_video(text: str, *, level: int = 0, chunks: Any = None, fps: float | None = None,
                   pixel_size: float | None = None) -> xr.DataArray:
    """Open one level of an OME-Zarr image lazily (``"store::GROUP"`` picks an image or a label image)."""
    import zarr

    from .._video import as_video, normalize_chunks_arg
    from .._validate import check_int

    level = check_int(level, "level", min_value=0)
    store, group = split_ome_path(text)
    store = os.path.abspath(store)
    _check_parents_complete(os.path.join(store, group) if group else store)
    root = _group_attrs(store)
    group = _image_group(store, group, root)
    gpath = os.path.join(store, group) if group else store
    if not os.path.isdir(gpath):
        raise ValueError(f"path {text!r}: the store has no group {group!r}")
    ome = _ome_block(_group_attrs(gpath))
    multiscales = ome.get("multiscales")
    if not isinstance(multiscales, list) or not multiscales:
        raise ValueError(f"path {text!r}: group {group or '/'!r} is not an OME-Zarr image (no multiscales)")
    ms = multiscales[0]
    datasets = ms.get("datasets") or []
    if level >= len(datasets):
        raise ValueError(f"level must be below the image's {len(datasets)} pyramid level(s) (0 to "
                         f"{len(datasets) - 1}), got {level}")
    desc = root.get(_META_ATTR)
    own = None
    if isinstance(desc, Mapping):
        own = next((n for n, i in desc["images"].items() if i["group"] == group), None)
    axes = ms.get("axes") or []
    names = [a["name"] if isinstance(a, Mapping) else str(a) for a in axes]  # 0.3 axes were plain names
    types = [a.get("type") if isinstance(a, Mapping) else None for a in axes]
    units = [a.get("unit") if isinstance(a, Mapping) else None for a in axes]
    scale = _scale(ms, datasets[level], len(names))
    source = store + (f"::{group}" if group else "")

    if own is not None and level == 0:
        result = open_ome_result(store)
        var = result[own] if isinstance(result, xr.Dataset) else result
        meta_fps, meta_px = _units(names, types, units, scale)
        var.attrs.setdefault("source", source)
        if "time" in var.dims:
            return as_video(var, fps=fps, chunks=chunks, pixel_size=pixel_size or var.attrs.get("pixel_size")
                            or meta_px, source=var.attrs["source"])
        return var

    arr = zarr.open_array(store=gpath, path=datasets[level]["path"], mode="r")
    dims = []
    for n, t in zip(names, types):
        if t == "time" or (t is None and n == "t"):
            dims.append("time")
        elif t == "channel" or (t is None and n == "c"):
            dims.append("channel")
        else:
            dims.append(n)
    if own is not None:  # fluoxr's own store at a coarser level: its own dim names
        info = desc["images"][own]
        dims = list(info["order"])
    meta_fps, meta_px = _units(names, types, units, scale)
    dchunks = normalize_chunks_arg(chunks, tuple(dims), arr.shape, arr.dtype.itemsize, base=arr.chunks) \
        if "time" in dims else arr.chunks
    data = da.from_zarr(arr, chunks=dchunks)
    attrs: dict[str, Any] = {}
    if own is not None:
        attrs = {k: v for k, v in (desc["images"][own].get("attrs") or {}).items() if k not in ("fps", "pixel_size")}
    out = xr.DataArray(data, dims=dims, name=own or ms.get("name") or "image", attrs=attrs)
    px = pixel_size or meta_px
    if "time" in dims:
        video = as_video(out, fps=fps or meta_fps, pixel_size=px, source=source)
        return video
    out = out.assign_coords({d: np.arange(out.sizes[d]) for d in ("y", "x") if d in dims})
    if px:
        out.attrs["pixel_size"] = float(px)
    out.attrs["source"] = source
    return out


def _scale(ms: Mapping[str, Any], dataset: Mapping[str, Any], ndim: int) -> list[float]:
    scale = [1.0] * ndim
    for transforms in (dataset.get("coordinateTransformations") or [], ms.get("coordinateTransformations") or []):
        for t in transforms:
            if t.get("type") == "scale" and isinstance(t.get("scale"), list) and len(t["scale"]) == ndim:
                scale = [a * float(b) for a, b in zip(scale, t["scale"])]
    return scale


def _units(names: Sequence[str], types: Sequence[Any], units: Sequence[Any],
           scale: Sequence[float]) -> tuple[float | None, float | None]:
    """Frame rate (Hz) and pixel size (µm, of x) from the axes' scale and units."""
    fps = px = None
    for n, t, u, s in zip(names, types, units, scale):
        if (t == "time" or n == "t") and u in _UNIT_TO_SECOND and s > 0:
            fps = 1.0 / (s * _UNIT_TO_SECOND[u])
        if n == "x" and u in _UNIT_TO_MICROMETER and s > 0:
            px = s * _UNIT_TO_MICROMETER[u]
    return fps, px
