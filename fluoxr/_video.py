"""The video data model: a lazy, dask-backed ``xr.DataArray`` chunked along time.

A video has dims ``("time", [z], [channel], "y", "x")``; frames (``y``, ``x``)
are always last and, by default, whole in every chunk. ``time`` holds seconds
when the frame rate is known (attribute ``fps``) and frame indices otherwise.

Everything that knows what a video is lives here: wrapping arrays
(:func:`as_video`), default dims and chunks, and the checks that every public
function runs once on the video, traces or image it is given
(:func:`check_video`, :func:`check_traces`, :func:`check_image`). Checks of
plain values (numbers, choices) are in :mod:`fluoxr._validate`, which does not
import this module, so the two form no cycle.
"""

from __future__ import annotations

import logging
from collections.abc import Hashable, Iterable, Mapping, Sequence
from typing import Any

import dask.array as da
import numpy as np
import xarray as xr

from ._memory import return_freed_chunks
from ._options import get_options
from ._validate import check_fps, check_int, check_number

logger = logging.getLogger(__name__)

VIDEO_DIMS = ("time", "y", "x")
SPATIAL_DIMS = ("y", "x")
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
    # every video enters through here: from now on freed chunks go back to the OS (see fluoxr._memory)
    return_freed_chunks()
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
        Frames along the first axis: ``(time, y, x)`` or ``(time, z, channel,
        y, x)``; pass ``dims`` for other layouts. A 4-D array needs ``dims``
        (a ValueError names the choices), as its layout cannot be guessed:
        ``(time, y, x, channel)`` (Cellects, OpenCV), ``(time, channel, y,
        x)`` or ``(time, z, y, x)``.
    fps : float, optional
        Frame rate in Hz. With it, the ``time`` coordinate is in seconds.
    chunks : int, tuple, mapping or "auto", optional
        Frames per chunk (int), a dask chunks tuple or a ``{dim: size}``
        mapping. Default: whole frames, about 16 MB per chunk (option
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
        if data.ndim == 4:
            # colour videos come as (t, c, y, x) (ImageJ hyperstacks) as often as (t, y, x, c) (Cellects,
            # OpenCV, imageio) or (t, z, y, x): read one as another and every result is silently wrong
            raise ValueError(
                f"{name or 'array'} is a 4-D array of shape {tuple(data.shape)}, whose layout is ambiguous: pass "
                "dims=('time', 'y', 'x', 'channel') (colour frames last: Cellects, OpenCV, imageio), "
                "dims=('time', 'channel', 'y', 'x') (an ImageJ hyperstack) or dims=('time', 'z', 'y', 'x') "
                "(to fluoxr.as_video, then pass the video)")
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


# --------------------------------------------------------------------------------------------
# checks of what a public function is given: a video, traces or an image


def require_fps(obj: xr.DataArray | xr.Dataset, fps: Any = None, *, name: str = "fps") -> float:
    """The frame rate from the argument, else from ``obj.attrs['fps']``; raise if neither is known."""
    if fps is not None:
        return check_number(fps, name, gt=0)
    value = obj.attrs.get("fps")
    if value is None:
        raise ValueError(
            f"{name} is required: the input has no 'fps' attribute, so durations in seconds "
            f"cannot be converted to frames; pass {name}=... (frames per second)"
        )
    return check_number(value, f"{name} (from attrs['fps'])", gt=0)


def check_dataarray(obj: Any, name: str) -> xr.DataArray:
    if not isinstance(obj, xr.DataArray):
        raise TypeError(
            f"{name} must be an xarray.DataArray, got {type(obj).__name__}"
            + ("; wrap arrays with fluoxr.as_video(...)" if isinstance(obj, np.ndarray) or hasattr(obj, "dask") else "")
        )
    return obj


def check_video(
    video: Any,
    name: str = "video",
    *,
    min_frames: int = 1,
    whole_frames: bool = False,
    allowed_extra_dims: Iterable[str] = ("channel", "z"),
) -> xr.DataArray:
    """Return ``video`` as a fluoxr video DataArray or raise naming ``name``.

    A NumPy or dask array is wrapped with :func:`fluoxr.as_video`. A video has
    dims ``time``, ``y`` and ``x`` (with ``y``, ``x`` last) and optionally
    ``channel`` or ``z``.
    """
    if not isinstance(video, xr.DataArray):
        if isinstance(video, np.ndarray) or type(video).__module__.startswith(("dask", "cupy")):
            video = as_video(video, name=name)
        else:
            raise TypeError(
                f"{name} must be a video (xarray.DataArray with dims ('time', 'y', 'x')), "
                f"got {type(video).__name__}"
            )
    dims = video.dims
    if len(dims) < 3 or "time" not in dims:
        raise ValueError(
            f"{name} must be a video with dims ('time', 'y', 'x'); got dims {dims} "
            f"(shape {video.shape}); a single image needs a time axis, e.g. image.expand_dims('time')"
        )
    if not set(SPATIAL_DIMS) <= set(dims):
        raise ValueError(f"{name} must have 'y' and 'x' dims, got dims {dims}")
    extra = set(dims) - {"time", "y", "x"} - set(allowed_extra_dims)
    if extra:
        raise ValueError(f"{name} has unsupported dims {sorted(extra)}; expected ('time', 'y', 'x') "
                         f"plus optional {tuple(allowed_extra_dims)}")
    canonical = tuple(d for d in ("time", "z", "channel", "y", "x") if d in dims)
    if dims != canonical:
        # kernels index axis 0 as time and the last two as the frame (xr.concat along
        # channel, for one, puts channel first): reorder, which is free for a lazy array
        video = video.transpose(*canonical)
    if video.sizes["time"] < min_frames:
        raise ValueError(f"{name} must have at least {min_frames} frame(s) along 'time', got {video.sizes['time']}")
    if video.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers (int, uint or float), got dtype {video.dtype}")
    if whole_frames:
        check_whole_frames(video, name)
    return video


def check_whole_frames(video: xr.DataArray, name: str = "video") -> None:
    """Raise unless every chunk holds whole frames (one chunk along ``y`` and ``x``)."""
    chunks = video.chunksizes if video.chunks is not None else {}
    split = [d for d in SPATIAL_DIMS if d in chunks and len(chunks[d]) > 1]
    if split:
        raise ValueError(
            f"{name} is chunked along {split}, but this operation needs whole frames in every chunk; "
            f"rechunk along time only, e.g. {name}.chunk({{'y': -1, 'x': -1}}) "
            f"or fluoxr.as_video({name}) for the default chunks"
        )


def check_traces(traces: Any, name: str = "traces", *, min_frames: int = 1) -> xr.DataArray:
    """Return ``traces`` (a DataArray with a ``time`` dim) or raise naming ``name``."""
    if not isinstance(traces, xr.DataArray):
        raise TypeError(f"{name} must be an xarray.DataArray with a 'time' dim, got {type(traces).__name__}")
    if "time" not in traces.dims:
        raise ValueError(f"{name} must have a 'time' dim, got dims {traces.dims}")
    if traces.sizes["time"] < min_frames:
        raise ValueError(f"{name} must have at least {min_frames} frame(s), got {traces.sizes['time']}")
    if traces.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {traces.dtype}")
    return traces


def check_image(image: Any, name: str, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """An in-memory 2-D (or N-D) array, optionally of a given shape."""
    if isinstance(image, xr.DataArray):
        image = image.data
    if hasattr(image, "compute") and not isinstance(image, np.ndarray):
        image = image.compute()
    try:
        arr = np.asarray(image)
    except Exception as exc:  # pragma: no cover - exotic objects
        raise TypeError(f"{name} must be array-like, got {type(image).__name__}") from exc
    if arr.dtype == object:
        raise TypeError(f"{name} must be a numeric array, got dtype object")
    if shape is not None and arr.shape != tuple(shape):
        raise ValueError(f"{name} must have shape {tuple(shape)}, got {arr.shape}")
    return arr
