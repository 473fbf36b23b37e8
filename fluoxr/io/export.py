"""TIFF export of images and videos: plain, or colour-mapped as pysofi's pipeline and visualization save them.

:func:`save_tiff` writes a result (an image, a stack of SOFI orders, a lazy
video of any length) as a TIFF that ImageJ/Fiji, napari and tifffile open,
with ImageJ metadata: the axes, the frame interval (``1 / fps``) and the
pixel size in micrometres. A lazy video is computed and written a few chunks
at a time, so the whole video is never in memory. With ``colormap`` the
values are mapped through a matplotlib colormap over a contrast range and
written as 8-bit RGB (pysofi's ``visualization.save_png``/``save_avi``
output, and what its pipeline notebooks save).

The same data-safety rules as :func:`fluoxr.save`: an output that is an
input of the result (or lies inside one, or holds one) is refused, an
existing file is refused unless ``overwrite=True``, one writer at a time
(``PATH.lock``), and the file is written under a temporary name in the same
folder and renamed into place, so it is complete or absent.

The colour mapping itself (:func:`contrast_range`, :func:`colour_map`) is
shared with :func:`fluoxr.plot.save_png` and :func:`fluoxr.plot.save_movie`.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from .readers import PathLike
from .safety import LOCK_SUFFIX, OutputLock, attr_sources, check_output_path, graph_inputs, write_file_atomically

logger = logging.getLogger(__name__)

__all__ = ["save_tiff", "contrast_range", "colour_map", "write_png", "write_movie"]

# ImageJ reads these sample types; others are converted (float64 and wide integers to float32)
_IMAGEJ_DTYPES = (np.uint8, np.uint16, np.int16, np.float32)
# dims that name ImageJ hyperstack axes; ImageJ wants them in the order T, Z, C
_IMAGEJ_AXES = {"time": "T", "z": "Z", "channel": "C"}
# frames of a video looked at for percentiles other than 0 and 100 (min and max are exact)
_PERCENTILE_FRAMES = 64
# a classic TIFF holds 4 GB; larger files are written as BigTIFF
_CLASSIC_LIMIT = 2**32 - 2**25


def _as_images(obj: Any) -> xr.DataArray:
    """A DataArray with ``y`` and ``x`` last (a NumPy or dask array of 2 to 5 dims gets generic leading dims)."""
    if isinstance(obj, xr.Dataset):
        raise TypeError("obj must be one image, image stack or video (a DataArray), not a Dataset; "
                        f"pick a variable, e.g. obj[{next(iter(obj.data_vars), 'name')!r}]")
    if isinstance(obj, xr.DataArray):
        if obj.ndim < 2 or obj.dims[-2:] != ("y", "x"):
            raise ValueError(f"obj must have 'y' and 'x' as its last two dims, got dims {obj.dims}")
        arr = obj
    elif isinstance(obj, (np.ndarray, da.Array)) or hasattr(obj, "__array__"):
        data = obj if isinstance(obj, da.Array) else np.asarray(obj)
        if not 2 <= data.ndim <= 5:
            raise ValueError(f"obj must be an image (y, x) or a stack of them, got shape {data.shape}")
        lead = ("time", "z", "channel")[: data.ndim - 2] if data.ndim > 2 else ()
        arr = xr.DataArray(data, dims=lead + ("y", "x"))
    else:
        raise TypeError(f"obj must be an image array or a DataArray, got {type(obj).__name__}")
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"obj must hold real numbers, got dtype {arr.dtype}")
    return arr


def _imagej_axes(dims: tuple[str, ...]) -> tuple[list[str], str]:
    """The leading dims in ImageJ's order (T, Z, C) and the axes string, e.g. ``"TZCYX"``.

    ``time``, ``z`` and ``channel`` keep their meaning; any other leading dim
    (``order``, ``window``, ``block``) takes the first of T, Z, C left.
    """
    lead = list(dims[:-2])
    if len(lead) > 3:
        raise ValueError(f"obj has {len(lead)} leading dims {tuple(lead)}; a TIFF hyperstack holds at most 3 "
                         "(time, z, channel)")
    letters = {d: _IMAGEJ_AXES[d] for d in lead if d in _IMAGEJ_AXES}
    free = [a for a in "TZC" if a not in letters.values()]
    for d in lead:
        if d not in letters:
            letters[d] = free.pop(0)
    ordered = sorted(lead, key=lambda d: "TZC".index(letters[d]))
    return ordered, "".join(letters[d] for d in ordered) + "YX"


def _tiff_dtype(dtype: np.dtype) -> np.dtype:
    """The sample type written: ImageJ's own, else float32 (bool and int8 become uint8 and int16)."""
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return np.dtype(np.uint8)
    if dtype == np.int8:
        return np.dtype(np.int16)
    if any(dtype == t for t in _IMAGEJ_DTYPES):
        return dtype
    return np.dtype(np.float32)


def _parse_bound(value: Any, name: str) -> tuple[str, float]:
    """``("value", v)`` for a number, ``("percentile", p)`` for a string such as ``"99.5%"``."""
    if isinstance(value, str):
        text = value.strip()
        try:
            p = float(text[:-1]) if text.endswith("%") else float("nan")
        except ValueError:
            p = float("nan")
        if not 0 <= p <= 100:
            raise ValueError(f"{name} percentiles are strings such as '1%' or '99.5%' between 0% and 100%, "
                             f"got {value!r}")
        return "percentile", p
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)) \
            or not np.isfinite(value):
        raise TypeError(f"{name} must be (low, high): finite numbers or percentiles such as '99%', got {value!r}")
    return "value", float(value)


def contrast_range(obj: Any, contrast: Any = None, *, name: str = "contrast") -> tuple[float, float]:
    """The (low, high) values that map to the two ends of a colormap.

    ``contrast`` is ``None`` (the data's minimum and maximum), a pair of
    values, or a pair of percentiles as strings (``("1%", "99.5%")``),
    possibly mixed. The minimum and maximum (``"0%"``, ``"100%"``) of a lazy
    video are exact (one pass over it); other percentiles of a video are
    taken over at most 64 frames spread evenly along its first dim.

    Examples
    --------
    >>> import numpy as np
    >>> contrast_range(np.arange(101.0)), contrast_range(np.arange(101.0), ("10%", 50))
    ((0.0, 100.0), (10.0, 50.0))
    """
    if contrast is None:
        contrast = ("0%", "100%")
    if isinstance(contrast, (str, bytes)) or not hasattr(contrast, "__len__") or len(contrast) != 2:
        raise ValueError(f"{name} must be (low, high), values or percentiles such as ('1%', '99%'), got {contrast!r}")
    bounds = [_parse_bound(v, name) for v in contrast]
    data = obj.data if isinstance(obj, xr.DataArray) else obj
    lazy = isinstance(data, da.Array)
    out: list[Any] = []
    for kind, v in bounds:
        if kind == "value":
            out.append(v)
        elif v in (0.0, 100.0):
            out.append((da.nanmin if v == 0 else da.nanmax)(data) if lazy
                       else (np.nanmin if v == 0 else np.nanmax)(np.asarray(data, dtype=np.float64)))
        else:
            sample = data
            if lazy and data.ndim > 2 and data.shape[0] > _PERCENTILE_FRAMES:
                sample = data[np.unique(np.linspace(0, data.shape[0] - 1, _PERCENTILE_FRAMES).astype(int))]
            out.append(dask.delayed(np.nanpercentile)(sample, v) if lazy
                       else np.nanpercentile(np.asarray(data, dtype=np.float64), v))
    lo, hi = (float(x) for x in dask.compute(*out))
    if not (np.isfinite(lo) and np.isfinite(hi)):
        raise ValueError(f"{name} gives a range ({lo}, {hi}) that is not finite (all-NaN data?)")
    if hi < lo:
        raise ValueError(f"{name} must rise: low {lo:g} is above high {hi:g}")
    return lo, hi


def _lookup_table(colormap: Any) -> np.ndarray:
    """``(256, 3)`` uint8 RGB of a matplotlib colormap (a name or a Colormap), as matplotlib itself makes them."""
    import matplotlib

    if isinstance(colormap, str):
        try:
            cmap = matplotlib.colormaps[colormap]
        except KeyError:
            raise ValueError(f"colormap {colormap!r} is not a matplotlib colormap (e.g. 'pink', pysofi's "
                             "default, 'magma', 'gray')") from None
    elif isinstance(colormap, matplotlib.colors.Colormap):
        cmap = colormap
    else:
        raise TypeError(f"colormap must be a matplotlib colormap or its name, got {type(colormap).__name__}")
    return np.ascontiguousarray(cmap(np.linspace(0.0, 1.0, 256), bytes=True)[:, :3])


def colour_map(values: np.ndarray, lut: np.ndarray, low: float, high: float) -> np.ndarray:
    """RGB uint8 of ``values`` (any shape, an RGB axis appended) through a 256-colour ``lut``.

    The colours matplotlib gives (``cmap(Normalize(low, high, clip=True)(v),
    bytes=True)``, what ``imshow`` shows and ``imsave`` writes; checked
    against it in ``tests/io/test_export.py``): ``low`` and below is the
    first colour, ``high`` and above the last, the range between cut into
    256 equal bins; NaN is black.

    Examples
    --------
    >>> lut = np.stack([np.arange(256)] * 3, axis=1).astype(np.uint8)
    >>> colour_map(np.array([0.0, 5.0, 10.0, np.nan]), lut, 0, 10)[:, 0].tolist()
    [0, 128, 255, 0]
    """
    v = np.asarray(values, dtype=np.float64)
    scale = 1.0 / (high - low) if high > low else 0.0
    with np.errstate(invalid="ignore"):
        idx = np.floor(np.clip((v - low) * scale, 0.0, 1.0) * 256.0)
    nan = np.isnan(idx)
    idx = np.minimum(np.where(nan, 0, idx), 255).astype(np.intp)
    rgb = lut[idx]
    rgb[nan] = 0
    return rgb


def _frames(arr: xr.DataArray, dtype: np.dtype, lut: np.ndarray | None, low: float, high: float,
            batch: int) -> Iterator[np.ndarray]:
    """The pages of ``arr`` (leading dims flattened, C order), computed ``batch`` chunks at a time."""
    data = arr.data
    if data.ndim == 2:
        data = data[None]
    n_lead = data.ndim - 2
    flat = data.reshape((-1,) + data.shape[-2:]) if n_lead > 1 else data
    if isinstance(flat, da.Array):
        flat = flat.rechunk({1: -1, 2: -1})
        bounds = np.cumsum((0,) + flat.chunks[0])
        blocks = [flat[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    else:
        blocks = [np.asarray(flat)]
        batch = 1
    for i in range(0, len(blocks), batch):
        for block in dask.compute(*blocks[i : i + batch]):
            block = np.asarray(block)
            if lut is not None:
                yield from colour_map(block, lut, low, high)
            else:
                yield from block.astype(dtype, copy=False)


def _batch() -> int:
    """Chunks computed at once: one per thread of a local threaded scheduler, at most 4."""
    return max(1, min(4, os.cpu_count() or 1))


def save_tiff(
    obj: Any,
    path: PathLike,
    *,
    colormap: Any = None,
    contrast: Any = None,
    overwrite: bool = False,
    bigtiff: bool | None = None,
) -> str:
    """Write an image, a stack of images or a video as a TIFF with ImageJ metadata, chunk by chunk.

    Parameters
    ----------
    obj : xarray.DataArray or array
        ``("y", "x")`` or with up to three leading dims (``time``, ``z``,
        ``channel``, or any other, such as ``order`` or ``window``); lazy
        videos are written a few chunks at a time (their chunks along the
        first dim), never computed whole. A NumPy array of 3 to 5 dims is
        read as ``(time, [z], [channel], y, x)``.
    path : path
        The ``.tif`` file to write.
    colormap : str or matplotlib.colors.Colormap, optional
        Write 8-bit RGB through this colormap (pysofi's pipeline output and
        ``visualization.save_png``; pysofi's default is ``"pink"``). Without
        it the values are written as they are (float64 and wide integers as
        float32, the widest float ImageJ reads).
    contrast : (low, high), optional
        With ``colormap``: the values mapped to its two ends, as numbers or
        percentiles (``("1%", "99.5%")``, see :func:`contrast_range`);
        default the data's minimum and maximum (one extra pass over a lazy
        video). pysofi's ``display_contrast=c`` is ``contrast=(min, min +
        (max - min) / c)``.
    overwrite : bool
        Replace an existing file (never a folder).
    bigtiff : bool, optional
        Default: a classic ImageJ TIFF below 4 GB (ImageJ opens it itself),
        BigTIFF above (Fiji opens it through Bio-Formats, tifffile and
        napari directly).

    Returns
    -------
    str
        The path written.

    Notes
    -----
    ImageJ metadata: the axes (``T``, ``Z``, ``C`` from the dims, ``YX`` and
    ``S`` for RGB), ``finterval`` = ``1 / fps`` in seconds when the frame rate
    is known, and the pixel size (``resolution`` in pixels per micrometre,
    ``unit`` ``"um"``) when ``obj.attrs["pixel_size"]`` is set, as it is for
    Fourier-interpolated images (the recording's pixel size divided by the
    factor). Each chunk is computed on its own, so a video whose chunks
    share an expensive step (such as block statistics) recomputes it per
    batch of chunks; save such a result with :func:`fluoxr.save` first.

    Examples
    --------
    >>> import numpy as np, tifffile, fluoxr
    >>> v = fluoxr.as_video(np.arange(24, dtype=np.uint16).reshape(6, 2, 2), fps=4, pixel_size=0.1)
    >>> fluoxr.save_tiff(v, "/tmp/doc_video.tif", overwrite=True)
    '/tmp/doc_video.tif'
    >>> with tifffile.TiffFile("/tmp/doc_video.tif") as t:
    ...     t.series[0].axes, t.imagej_metadata["finterval"], t.asarray()[5].tolist()
    ('TYX', 0.25, [[20, 21], [22, 23]])
    >>> fluoxr.save_tiff(v.mean("time"), "/tmp/doc_image.tif", colormap="pink", overwrite=True)
    '/tmp/doc_image.tif'
    >>> tifffile.imread("/tmp/doc_image.tif").shape
    (2, 2, 3)
    """
    arr = _as_images(obj)
    if not isinstance(overwrite, (bool, np.bool_)):
        raise TypeError(f"overwrite must be True or False, got {overwrite!r}")
    if bigtiff is not None and not isinstance(bigtiff, (bool, np.bool_)):
        raise TypeError(f"bigtiff must be True, False or None, got {bigtiff!r}")
    if contrast is not None and colormap is None:
        raise ValueError("contrast sets the range of a colormap; give colormap= too (without it the values are "
                         "written as they are)")
    inputs = graph_inputs(arr) | attr_sources(arr)
    apath = check_output_path(path, inputs, name="path", siblings=(LOCK_SUFFIX,))
    shown = os.fspath(path)
    if os.path.isdir(apath):
        raise ValueError(f"path {shown!r} is a folder; give the name of a .tif file (folders are never replaced)")
    if os.path.lexists(apath) and not overwrite:
        raise ValueError(f"path {shown!r} already exists; pass overwrite=True to replace it")
    lut = None if colormap is None else _lookup_table(colormap)

    ordered, axes = _imagej_axes(arr.dims)
    arr = arr.transpose(*ordered, "y", "x")
    dtype = np.dtype(np.uint8) if lut is not None else _tiff_dtype(arr.dtype)
    low, high = contrast_range(arr, contrast) if lut is not None else (0.0, 0.0)
    shape = tuple(arr.shape) + ((3,) if lut is not None else ())
    if lut is not None:
        axes += "S"
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    big = nbytes > _CLASSIC_LIMIT if bigtiff is None else bool(bigtiff)
    metadata: dict[str, Any] = {"axes": axes}
    kwargs: dict[str, Any] = {}
    fps = arr.attrs.get("fps")
    if fps and "time" in ordered:
        metadata["finterval"] = 1.0 / float(fps)
    pixel_size = arr.attrs.get("pixel_size")
    if pixel_size:
        metadata["unit"] = "um"
        kwargs["resolution"] = (1.0 / float(pixel_size), 1.0 / float(pixel_size))
    if not ordered:  # one image: written in one go
        image = np.asarray(arr.values)
        pages: Any = colour_map(image, lut, low, high) if lut is not None else image.astype(dtype, copy=False)
        extra: dict[str, Any] = {}
    else:
        pages = _frames(arr, dtype, lut, low, high, _batch())
        extra = {"shape": shape, "dtype": dtype}

    def write(tmp: str) -> None:
        import tifffile

        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*nonconformant BigTIFF ImageJ")
            with tifffile.TiffWriter(tmp, bigtiff=big, imagej=True) as tw:
                tw.write(pages, photometric="rgb" if lut is not None else "minisblack", metadata=metadata,
                         **extra, **kwargs)

    lock = OutputLock(apath).acquire()
    try:
        write_file_atomically(apath, write)
    finally:
        lock.release()
    logger.info("wrote %s: %s %s%s", shown, shape, dtype, " (BigTIFF)" if big else "")
    return shown


# --------------------------------------------------------------------------------------------
# PNG and movies of colour-mapped images (fluoxr.plot.save_png, fluoxr.plot.save_movie)

MOVIE_INSTALL = 'pip install "fluoxr[movie]"'
_MOVIE_SUFFIXES = (".mp4", ".gif")


def _check_target(obj: xr.DataArray, path: PathLike, overwrite: bool, what: str) -> tuple[str, str]:
    """The absolute and shown path of a new file, after the same checks as :func:`save_tiff`."""
    if not isinstance(overwrite, (bool, np.bool_)):
        raise TypeError(f"overwrite must be True or False, got {overwrite!r}")
    apath = check_output_path(path, graph_inputs(obj) | attr_sources(obj), name="path", siblings=(LOCK_SUFFIX,))
    shown = os.fspath(path)
    if os.path.isdir(apath):
        raise ValueError(f"path {shown!r} is a folder; give the name of a {what} file (folders are never replaced)")
    if os.path.lexists(apath) and not overwrite:
        raise ValueError(f"path {shown!r} already exists; pass overwrite=True to replace it")
    return apath, shown


def _check_scale(scale: Any) -> int:
    if isinstance(scale, (bool, np.bool_)) or not isinstance(scale, (int, np.integer)) or scale < 1:
        raise ValueError(f"scale must be an integer >= 1 (screen pixels per image pixel), got {scale!r}")
    return int(scale)


def _upscale(rgb: np.ndarray, scale: int) -> np.ndarray:
    return rgb if scale == 1 else np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)


def write_png(image: Any, path: PathLike, *, cmap: Any = "pink", contrast: Any = None, scale: int = 1,
              overwrite: bool = False) -> str:
    """One image as a colour-mapped 8-bit RGB PNG, one PNG pixel per image pixel (times ``scale``).

    The implementation of :func:`fluoxr.plot.save_png` (see there).
    """
    arr = _as_images(image)
    if arr.ndim != 2:
        raise ValueError(f"image must be one 2-D image (y, x), got dims {arr.dims}; write stacks and videos with "
                         "save_movie or save_tiff")
    scale = _check_scale(scale)
    apath, shown = _check_target(arr, path, overwrite, "PNG")
    lut = _lookup_table(cmap)
    low, high = contrast_range(arr, contrast)
    rgb = _upscale(colour_map(np.asarray(arr.values), lut, low, high), scale)

    def write(tmp: str) -> None:
        from PIL import Image

        Image.fromarray(rgb, "RGB").save(tmp, format="PNG")

    lock = OutputLock(apath).acquire()
    try:
        write_file_atomically(apath, write)
    finally:
        lock.release()
    return shown


def _ffmpeg() -> str:
    """The ffmpeg executable: imageio-ffmpeg's (the ``movie`` extra), else one on the PATH."""
    try:
        import imageio_ffmpeg

        return imageio_ffmpeg.get_ffmpeg_exe()
    except (ImportError, RuntimeError):
        import shutil

        exe = shutil.which("ffmpeg")
        if exe is None:
            raise ImportError(f"writing an .mp4 needs ffmpeg: install the movie extra ({MOVIE_INSTALL}, which "
                              "brings imageio-ffmpeg) or put ffmpeg on the PATH; or write a .gif") from None
        return exe


def _write_mp4(tmp: str, frames: Iterator[np.ndarray], size: tuple[int, int], fps: float) -> None:
    """Pipe RGB frames to ffmpeg (H.264, yuv420p: every player reads it); ``size`` is (height, width), even."""
    import subprocess

    h, w = size
    cmd = [_ffmpeg(), "-y", "-loglevel", "error", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
           "-r", f"{fps:.6g}", "-i", "-", "-an", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "17",
           "-f", "mp4", tmp]
    proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        for frame in frames:
            proc.stdin.write(np.ascontiguousarray(frame).tobytes())
    except BrokenPipeError:
        pass
    finally:
        proc.stdin.close()
        err = proc.stderr.read().decode(errors="replace")
        proc.wait()
    if proc.returncode:
        raise RuntimeError(f"ffmpeg failed to write the movie: {err.strip()[-500:]}")


def _write_gif(tmp: str, indices: Iterator[np.ndarray], lut: np.ndarray, fps: float) -> None:
    """A looping GIF written frame by frame; the colormap's 256 colours are its palette, so nothing is quantised."""
    from PIL import GifImagePlugin, Image

    palette = lut.tobytes()
    duration = max(10, int(1000.0 / fps / 10 + 0.5) * 10)  # GIF delays are in 10 ms steps
    with open(tmp, "wb") as fh:
        first = True
        for frame in indices:
            im = Image.fromarray(frame, "P")
            im.putpalette(palette)
            if first:
                header, _ = GifImagePlugin.getheader(im, palette, {"loop": 0, "duration": duration})
                fh.writelines(header)
                first = False
            fh.writelines(GifImagePlugin.getdata(im, duration=duration))
        fh.write(b";")


def _index_frames(arr: xr.DataArray, low: float, high: float, scale: int) -> Iterator[np.ndarray]:
    """Colormap indices (uint8; NaN as 0) of each frame, computed a few chunks at a time."""
    identity = np.repeat(np.arange(256, dtype=np.uint8)[:, None], 3, axis=1)
    for rgb in _frames(arr, np.dtype(np.uint8), identity, low, high, _batch()):
        yield _upscale(rgb[..., 0], scale)


def write_movie(video: Any, path: PathLike, *, fps: float | None = None, cmap: Any = "pink", contrast: Any = None,
                scale: int = 1, overwrite: bool = False) -> str:
    """A video as a colour-mapped .mp4 or .gif, frame by frame. The implementation of :func:`fluoxr.plot.save_movie`."""
    from .._validate import check_fps

    arr = _as_images(video)
    if arr.ndim != 3:
        raise ValueError(f"video must have one dim besides y and x (time, order, ...), got dims {arr.dims}")
    suffix = os.path.splitext(os.fspath(path))[1].lower() if isinstance(path, (str, os.PathLike)) else ""
    if suffix not in _MOVIE_SUFFIXES:
        raise ValueError(f"path must end in .mp4 or .gif (the movie format), got {os.fspath(path)!r}")
    scale = _check_scale(scale)
    if fps is None:
        fps = arr.attrs.get("fps") or 10.0
    fps = check_fps(fps)
    apath, shown = _check_target(arr, path, overwrite, suffix[1:].upper())
    lut = _lookup_table(cmap)
    if suffix == ".mp4":
        _ffmpeg()  # fail before any work when there is no ffmpeg
    low, high = contrast_range(arr, contrast)
    h, w = arr.sizes["y"] * scale, arr.sizes["x"] * scale

    def write(tmp: str) -> None:
        if suffix == ".gif":
            _write_gif(tmp, _index_frames(arr, low, high, scale), lut, fps)
            return
        eh, ew = h + h % 2, w + w % 2  # H.264 in yuv420p needs even sizes: repeat the last row or column

        def rgb_frames() -> Iterator[np.ndarray]:
            for idx in _index_frames(arr, low, high, scale):
                if (eh, ew) != (h, w):
                    idx = np.pad(idx, ((0, eh - h), (0, ew - w)), mode="edge")
                yield lut[idx]

        _write_mp4(tmp, rgb_frames(), (eh, ew), fps)

    lock = OutputLock(apath).acquire()
    try:
        write_file_atomically(apath, write)
    finally:
        lock.release()
    return shown
