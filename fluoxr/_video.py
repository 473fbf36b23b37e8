"""The video data model: a lazy, dask-backed ``xr.DataArray`` chunked along time.

A video has dims ``("time", [z], [channel], "y", "x")``; frames (``y``, ``x``)
are always last and, by default, whole in every chunk. ``time`` holds seconds
when the frame rate is known (attribute ``fps``) and frame indices otherwise.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from ._options import get_options
from ._validate import check_fps, check_int, check_number

logger = logging.getLogger(__name__)

VIDEO_DIMS = ("time", "y", "x")
_DIM_ORDER = ("time", "z", "channel", "y", "x")

ChunksLike = int | str | tuple | Mapping[Hashable, Any] | None


def frames_per_chunk(frame_nbytes: int, n_frames: int, target_mb: float | None = None) -> int:
    """Number of whole frames in one chunk of about ``target_mb`` MB (option ``chunk_mb``)."""
    target = (target_mb if target_mb is not None else get_options()["chunk_mb"]) * 1e6
    return int(max(1, min(n_frames, target // max(frame_nbytes, 1))))


def time_coord(n_frames: int, fps: float | None) -> xr.Variable:
    """Seconds from the first frame when ``fps`` is known, else frame indices."""
    if fps:
        return xr.Variable("time", np.arange(n_frames) / float(fps), {"units": "s"})
    return xr.Variable("time", np.arange(n_frames), {"units": "frame"})


def normalize_chunks_arg(chunks: ChunksLike, dims: Sequence[str], shape: Sequence[int],
                         itemsize: int, *, base: Sequence[int] | None = None) -> tuple:
    """Turn the user's ``chunks`` into a dask chunks tuple; whole frames by default.

    ``base`` is the storage chunking along time (zarr, HDF5); the default
    chunk length is then rounded to a multiple of it, so that one dask task
    never reads a stored chunk twice.
    """
    if isinstance(chunks, Mapping):
        unknown = set(chunks) - set(dims)
        if unknown:
            raise ValueError(f"chunks names unknown dims {sorted(map(str, unknown))}; the video has dims {tuple(dims)}")
        spec = {d: chunks.get(d, -1 if d != "time" else None) for d in dims}
        if spec["time"] is None:
            spec["time"] = _default_time_chunk(shape, itemsize, base)
        return tuple(spec[d] for d in dims)
    if chunks is None or chunks == "auto":
        return (_default_time_chunk(shape, itemsize, base),) + (-1,) * (len(dims) - 1)
    if isinstance(chunks, (int, np.integer)) and not isinstance(chunks, bool):
        n = check_int(chunks, "chunks", min_value=-1)
        if n == 0:
            raise ValueError("chunks must be a positive number of frames, -1 (all frames), or a mapping; got 0")
        return (n,) + (-1,) * (len(dims) - 1)
    if isinstance(chunks, tuple):
        if len(chunks) != len(dims):
            raise ValueError(f"chunks must have one entry per dim {tuple(dims)}, got {chunks!r}")
        return chunks
    raise TypeError(f"chunks must be an int (frames per chunk), a tuple, a mapping or 'auto', got {chunks!r}")


def _default_time_chunk(shape: Sequence[int], itemsize: int, base: Sequence[int] | None) -> int:
    frame_nbytes = int(np.prod(shape[1:], dtype=np.int64)) * itemsize
    n = frames_per_chunk(frame_nbytes, max(int(shape[0]), 1))
    if base:
        step = int(base[0])
        n = max(step, (n // step) * step)
    return n


def default_dims(ndim: int) -> tuple[str, ...]:
    if ndim == 3:
        return VIDEO_DIMS
    if ndim == 4:
        return ("time", "channel", "y", "x")
    if ndim == 5:
        return ("time", "z", "channel", "y", "x")
    raise ValueError(
        f"array must be a video with 3 to 5 dims ('time', ['z'], ['channel'], 'y', 'x'); got {ndim} dim(s)"
        + ("; a single image needs a time axis, e.g. image[None]" if ndim == 2 else "")
    )


def as_video(
    array: Any,
    *,
    fps: float | None = None,
    chunks: ChunksLike = None,
    pixel_size: float | None = None,
    dims: Sequence[str] | None = None,
    name: str | None = None,
    source: str | None = None,
) -> xr.DataArray:
    """Wrap an in-memory NumPy or dask array (or a DataArray) as a fluoxr video.

    Parameters
    ----------
    array : numpy.ndarray, dask.array.Array or xarray.DataArray
        Frames along the first axis: ``(time, y, x)``, ``(time, channel, y, x)``
        or ``(time, z, channel, y, x)``; pass ``dims`` for other layouts.
    fps : float, optional
        Frame rate in Hz. With it, the ``time`` coordinate is in seconds.
    chunks : int, tuple, mapping or "auto", optional
        Frames per chunk (int), a dask chunks tuple or a ``{dim: size}``
        mapping. Default: whole frames, about 96 MB per chunk (option
        ``chunk_mb``), along ``time`` only.
    pixel_size : float, optional
        Pixel size in micrometres (attribute ``pixel_size``).
    dims : sequence of str, optional
        Dim names; must include ``time``, ``y`` and ``x``.
    name, source : str, optional
        The DataArray's name and the ``source`` attribute.

    Returns
    -------
    xarray.DataArray
        Dask-backed, dims ordered ``("time", [z], [channel], "y", "x")``.

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> v = fluoxr.as_video(np.zeros((100, 32, 32), np.uint16), fps=20)
    >>> v.dims, v.attrs["fps"], float(v.time[-1])
    (('time', 'y', 'x'), 20.0, 4.95)
    """
    fps = check_fps(fps)
    if pixel_size is not None:
        pixel_size = check_number(pixel_size, "pixel_size", gt=0)
    attrs: dict[str, Any] = {}
    coords: dict[str, Any] = {}
    if isinstance(array, xr.DataArray):
        attrs.update(array.attrs)
        if dims is None:
            dims = array.dims
        coords = {k: v for k, v in array.coords.items()}
        name = name if name is not None else array.name
        data = array.data
    else:
        data = array
        if isinstance(data, (list, tuple)):
            data = np.asarray(data)
        if not hasattr(data, "ndim") or not hasattr(data, "dtype"):
            raise TypeError(f"array must be a NumPy or dask array, got {type(array).__name__}")
    if dims is None:
        dims = default_dims(data.ndim)
    dims = tuple(str(d) for d in dims)
    if len(dims) != data.ndim:
        raise ValueError(f"dims {dims} do not match the array's {data.ndim} dims (shape {data.shape})")
    missing = [d for d in VIDEO_DIMS if d not in dims]
    if missing:
        raise ValueError(
            f"array must be a video with dims ('time', 'y', 'x'); dims {dims} lack {missing}"
            + ("; a single image needs a time axis, e.g. image[None]" if data.ndim == 2 else "")
        )
    if data.dtype.kind not in "biuf":
        raise TypeError(f"array must hold real numbers, got dtype {data.dtype}")
    if data.shape[dims.index("time")] < 1:
        raise ValueError("array must have at least one frame along 'time', got 0")

    order = [d for d in _DIM_ORDER if d in dims] + [d for d in dims if d not in _DIM_ORDER]
    perm = [dims.index(d) for d in order]
    shape = tuple(data.shape[p] for p in perm)
    target = normalize_chunks_arg(chunks, order, shape, data.dtype.itemsize)
    if not isinstance(data, da.Array):
        # asarray=False keeps CuPy blocks on the GPU
        data = da.from_array(data, chunks=tuple(target[perm.index(i)] for i in range(len(perm))), asarray=False)
        rechunk = False
    else:
        # a dask input keeps its chunks unless the caller asks for others
        rechunk = chunks is not None
    if perm != list(range(len(dims))):
        data = data.transpose(perm)
    if rechunk:
        data = data.rechunk(target)
    dims = tuple(order)

    # a DataArray keeps its time coordinate (a slice of a recording keeps its
    # times) unless a new frame rate is given
    keep_time = "time" in coords and fps is None
    if fps is None and attrs.get("fps"):
        fps = check_fps(attrs["fps"], "array.attrs['fps']")
    if fps is not None:
        attrs["fps"] = fps
    else:
        attrs.pop("fps", None)
    if pixel_size is not None:
        attrs["pixel_size"] = pixel_size
    if source is not None:
        attrs["source"] = source

    new_coords: dict[str, Any] = {}
    new_coords["time"] = coords["time"].variable if keep_time else time_coord(shape[0], fps)
    for d in dims[1:]:
        if d in coords:
            new_coords[d] = coords[d].variable
        elif d in ("y", "x", "z", "channel"):
            new_coords[d] = np.arange(shape[dims.index(d)])
    for k, v in coords.items():
        if k not in new_coords and set(v.dims) <= set(dims):
            new_coords[k] = v.variable
    return xr.DataArray(data, dims=dims, coords=new_coords, attrs=attrs, name=name if name is not None else "video")
