"""Shared argument checks, so that every public function words its errors the same way.

Each check raises ``TypeError`` (wrong kind of object) or ``ValueError`` (right
kind, wrong value) with a message that starts with the argument's name, says
what was expected and quotes what was given.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import xarray as xr

SPATIAL_DIMS = ("y", "x")


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def check_int(
    value: Any,
    name: str,
    *,
    min_value: int | None = None,
    max_value: int | None = None,
) -> int:
    """Return ``value`` as a Python int, or raise naming ``name``.

    Floats with an integral value (``3.0``) are accepted; ``3.5`` is a
    ``ValueError``; strings, ``None`` and booleans are a ``TypeError``.
    """
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be an integer, got {_short(value)} of type {type(value).__name__}")
    if isinstance(value, numbers.Integral):
        out = int(value)
    else:
        if not math.isfinite(float(value)) or float(value) != int(value):
            raise ValueError(f"{name} must be an integer, got {_short(value)}")
        out = int(value)
    if min_value is not None and out < min_value:
        raise ValueError(f"{name} must be >= {min_value}, got {out}")
    if max_value is not None and out > max_value:
        raise ValueError(f"{name} must be <= {max_value}, got {out}")
    return out


def check_number(
    value: Any,
    name: str,
    *,
    gt: float | None = None,
    ge: float | None = None,
    lt: float | None = None,
    le: float | None = None,
) -> float:
    """Return ``value`` as a finite float within the given bounds, or raise naming ``name``."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a number, got {_short(value)} of type {type(value).__name__}")
    out = float(value)
    if not math.isfinite(out):
        raise ValueError(f"{name} must be finite, got {value!r}")
    if gt is not None and not out > gt:
        raise ValueError(f"{name} must be > {gt}, got {value!r}")
    if ge is not None and not out >= ge:
        raise ValueError(f"{name} must be >= {ge}, got {value!r}")
    if lt is not None and not out < lt:
        raise ValueError(f"{name} must be < {lt}, got {value!r}")
    if le is not None and not out <= le:
        raise ValueError(f"{name} must be <= {le}, got {value!r}")
    return out


def check_choice(value: Any, name: str, choices: Sequence[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise naming ``name``."""
    if not isinstance(value, (str, numbers.Number, type(None))) or value not in choices:
        raise ValueError(f"{name} must be one of {tuple(choices)}, got {_short(value)}")
    return value


def check_fps(fps: Any, name: str = "fps") -> float | None:
    """``None`` (unknown) or a positive frame rate in Hz."""
    if fps is None:
        return None
    return check_number(fps, name, gt=0)


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
            from ._video import as_video

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
