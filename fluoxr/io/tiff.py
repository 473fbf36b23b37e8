"""TIFF / BigTIFF (ImageJ and OME hyperstacks): axes, metadata, and the reader of each series.

Contiguous uncompressed series are read as raw bytes (:class:`.raw._RawReader`);
compressed, tiled or scattered pages one by one, from IFD offsets recorded once
when the file is opened.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import Any

import numpy as np

from .._video import default_dims
from .raw import _RawReader
from .readers import _FileReader, _Reader, _bad_fps, _bad_pixel_size, _corrupt, _frames_text, _positive

logger = logging.getLogger(__name__)

TIFF_SUFFIXES = (".tif", ".tiff", ".btf", ".tf8", ".tf2")
_AXIS_DIMS = {"T": "time", "I": "time", "Q": "time", "Z": "z", "C": "channel", "S": "channel", "Y": "y", "X": "x"}

class _TiffPagesReader(_FileReader):
    """TIFF pages read one by one (compressed, tiled or scattered pages).

    The IFD offset of every page is recorded once when the file is opened,
    so a task seeks straight to its pages instead of walking the IFD chain
    from the start of the file (which makes reading quadratic in the number
    of frames).
    """

    def __init__(self, path: str, keyframe_offset: int, ifd_offsets: np.ndarray,
                 page_shape: Sequence[int], dtype: np.dtype, out_perm: Sequence[int],
                 stat: os.stat_result | None = None) -> None:
        super().__init__(path, stat)
        self.keyframe_offset = int(keyframe_offset)
        # ifd_offsets: leading (page) axes, already moved so that time is axis 0
        self.ifd_offsets = np.asarray(ifd_offsets, dtype=np.int64)
        self.page_shape = tuple(page_shape)
        self.dtype = np.dtype(dtype)
        self.out_perm = tuple(out_perm)
        full = self.ifd_offsets.shape + self.page_shape
        self.shape = tuple(full[p] for p in self.out_perm)

    def _read(self, t0: int, t1: int) -> np.ndarray:
        import tifffile

        sel = self.ifd_offsets[t0:t1]
        out = np.empty(sel.shape + self.page_shape, self.dtype)
        flat = out.reshape((-1,) + self.page_shape)
        per_frame = max(1, int(np.prod(sel.shape[1:], dtype=np.int64)))
        where = _frames_text(t0, t1)
        with self._open_checked() as fh:
            try:
                tif = tifffile.TiffFile(fh)
            except MemoryError:
                raise
            except Exception as exc:
                raise _corrupt(self.path, where, exc) from exc
            with tif:
                keyframe = None
                for i, off in enumerate(sel.ravel()):
                    try:
                        if keyframe is None:
                            tif.filehandle.seek(self.keyframe_offset)
                            keyframe = tifffile.TiffPage(tif, index=0)
                        if int(off) == self.keyframe_offset:
                            page = keyframe
                        else:
                            page = tifffile.TiffFrame(tif, index=i, offset=int(off), keyframe=keyframe)
                        flat[i] = page.asarray().reshape(self.page_shape)
                    except MemoryError:
                        raise
                    except Exception as exc:
                        # zlib.error, struct.error, TiffFileError, ValueError (a short strip cannot
                        # be reshaped), OSError, EOFError...: any of them means these bytes are not
                        # the page the file's directory describes
                        raise _corrupt(self.path, f"frame {t0 + i // per_frame}", exc) from exc
        return np.ascontiguousarray(out.transpose(self.out_perm))

def _output_perm(axes: Sequence[str], path: str = "") -> tuple[tuple[str, ...], tuple[int, ...]]:
    """Dims in fluoxr order for file ``axes`` (tifffile letters), and the permutation file->output."""
    text = "".join(axes)
    where = f"path {path!r}" if path else "path"
    dims = []
    for i, a in enumerate(axes):
        if a not in _AXIS_DIMS:
            raise ValueError(
                f"{where}: TIFF axis {a!r} (of axes {text!r}) is not supported; "
                "fluoxr reads time (T, or I/Q first), z (Z), channel (C/S), y and x"
            )
        if a in "QI" and i > 0:
            # tifffile writes Q (unknown) and I (image sequence) for axes nothing names; first they
            # can only be the frame sequence, elsewhere they could as well be z or channels
            raise ValueError(
                f"{where}: TIFF axis {a!r} at position {i} of axes {text!r} is tifffile's "
                f"{'generic' if a == 'Q' else 'image-sequence'} axis, which fluoxr reads as time only when "
                "it is the first axis; its meaning here is unknown. Write the file with named axes, e.g. "
                "tifffile.imwrite(path, data, metadata={'axes': 'TCYX'})"
            )
        dims.append(_AXIS_DIMS[a])
    # several axes can map to the same dim (e.g. 'C' and 'S'); only one of each is readable
    if dims.count("time") > 1 or dims.count("channel") > 1 or dims.count("z") > 1:
        raise ValueError(f"{where}: TIFF axes {text!r} have several time, z or channel axes; "
                         "fluoxr cannot tell which is which")
    if "time" not in dims:
        if "z" in dims:
            # ImageJ stacks saved as 'slices' are usually time series
            logger.info("TIFF axes %r have no time axis; reading the Z axis as time", text)
            dims[dims.index("z")] = "time"
        else:
            raise ValueError(
                f"{where} holds a single image (axes {text!r}), not a video; "
                "fluoxr needs a stack of frames along time"
            )
    order = [d for d in ("time", "z", "channel", "y", "x") if d in dims]
    return tuple(order), tuple(dims.index(d) for d in order)


# tifffile's own letters for an array written without axes: leading Q axes, then the page
_PLAIN_SHAPED = re.compile(r"^Q*(S?YX|YXS)$")


def _n_pages(tif: Any) -> int | None:
    """How many pages the file's IFD chain holds (None if the chain is broken)."""
    try:
        return len(tif.pages)
    except MemoryError:
        raise
    except Exception:
        return None


def _ome_pixels(xml: str, index: int) -> Any:
    """The ``Pixels`` element of OME image ``index`` (None if the XML cannot be parsed)."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError:
        return None
    images = [el for el in root if el.tag.endswith("Image")]
    if not images:
        return None
    image = images[index] if index < len(images) else images[0]
    return next((el for el in image.iter() if el.tag.endswith("Pixels")), None)


def _promised_pages(tif: Any, s: Any, series: int, path: str) -> tuple[int, str] | None:
    """Pages the file's metadata promises for series ``s``, and which metadata says so."""
    kinds = [x.kind for x in tif.series]
    index = kinds[:series].count(s.kind)
    if s.kind == "imagej" or (tif.is_imagej and "imagej" not in kinds):
        ij = tif.imagej_metadata or {}
        try:
            if ij.get("images"):
                return int(ij["images"]), f"ImageJ metadata (images={ij['images']})"
            counts = {k: int(ij.get(k, 1) or 1) for k in ("frames", "slices", "channels")}
        except (TypeError, ValueError):
            return None
        n = counts["frames"] * counts["slices"] * counts["channels"]
        return n, "ImageJ metadata (" + " x ".join(f"{k}={v}" for k, v in counts.items()) + ")"
    if s.kind == "ome" or (tif.is_ome and "ome" not in kinds):
        pix = _ome_pixels(tif.ome_metadata or "", index)
        if pix is None:
            return None
        planes = [el for el in pix if el.tag.endswith("Plane")]
        try:
            sizes = {k: int(pix.get(k, 1)) for k in ("SizeT", "SizeZ", "SizeC")}
            channels = [el for el in pix if el.tag.endswith("Channel")]
            spp = int(channels[0].get("SamplesPerPixel", 1)) if channels else 1
        except (TypeError, ValueError):
            return None
        n = sizes["SizeT"] * sizes["SizeZ"] * sizes["SizeC"] // max(1, spp)
        text = " x ".join(f"{k}={v}" for k, v in sizes.items()) + (f" / SamplesPerPixel={spp}" if spp > 1 else "")
        if planes and len(planes) > n:
            return len(planes), f"OME metadata ({len(planes)} planes listed)"
        return n, f"OME metadata ({text})"
    if s.kind == "shaped" or (tif.is_shaped and "shaped" not in kinds):
        shaped = tif.shaped_metadata or ()
        if index >= len(shaped) or "shape" not in shaped[index]:
            return None
        want = [int(n) for n in shaped[index]["shape"]]
        page = int(np.prod(s.keyframe.shape, dtype=np.int64)) or 1
        return int(np.prod(want, dtype=np.int64)) // page, f"tifffile shape metadata (shape={tuple(want)})"
    return None


# tifffile's warnings of a damaged file: it logs them and opens what it can (fewer pages, a
# generic series instead of the OME/ImageJ one whose description lay past the end of the file)
_TIFF_DAMAGE = re.compile(r"invalid (page|value) offset|invalid offset to|corrupt|failed to reshape|circular "
                          r"reference|missing data|incorrect strip|metadata invalid|invalid .*metadata", re.I)


class _TiffDamage(logging.Handler):
    """Collects tifffile's warnings of a damaged file that this thread logs while it is installed."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.thread = threading.get_ident()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        # other threads may open other files at the same time: their warnings are not ours
        if record.thread == self.thread:
            message = record.getMessage()
            if _TIFF_DAMAGE.search(message):
                self.messages.append(message)

    def __enter__(self) -> _TiffDamage:
        logging.getLogger("tifffile").addHandler(self)
        return self

    def __exit__(self, *exc: Any) -> None:
        logging.getLogger("tifffile").removeHandler(self)


def _tiff_reader(path: str, series: int) -> tuple[_Reader, tuple[str, ...], dict[str, Any]]:
    import tifffile

    try:
        fh = open(path, "rb")
    except OSError as exc:
        raise ValueError(f"path {path!r} cannot be opened: {exc}") from exc
    with fh, _TiffDamage() as damage:
        # the fingerprint of the bytes parsed here is what every later read is checked against
        st = os.fstat(fh.fileno())
        try:
            tif = tifffile.TiffFile(fh)
        except MemoryError:
            raise
        except Exception as exc:
            raise ValueError(f"path {path!r} is not a readable TIFF file, or it is truncated or corrupt "
                             f"({type(exc).__name__}: {exc})") from exc
        with tif:
            try:
                result = _tiff_series_reader(tif, path, series, st)
            except ValueError as exc:
                if damage.messages and "truncated or corrupt" not in str(exc) and "is truncated" not in str(exc):
                    # the damage explains whatever else went wrong (e.g. no time axis in the generic
                    # series tifffile fell back to); a check that saw the damage itself says more
                    raise _corrupt(path, "its TIFF structure", f"tifffile: {damage.messages[0]}") from exc
                raise
    if damage.messages:
        raise _corrupt(path, "its TIFF structure", f"tifffile: {damage.messages[0]}")
    return result


def _tiff_series_reader(tif: Any, path: str, series: int, st: os.stat_result
                        ) -> tuple[_Reader, tuple[str, ...], dict[str, Any]]:
    size = int(st.st_size)
    try:
        # everything tifffile parses lazily is touched here, so that a corrupt directory
        # surfaces as one error naming the file
        n_series = len(tif.series)
        if not n_series or series >= n_series:
            raise IndexError(series)
        s = tif.series[series]
        axes = s.axes.upper()
        shape = tuple(int(n) for n in s.shape)
        keyframe = s.keyframe
        page_shape = tuple(int(n) for n in keyframe.shape)
        dataoffset = s.dataoffset
        contiguous = dataoffset is not None and len(s.pages) > 0 and keyframe.is_contiguous
        promised = _promised_pages(tif, s, series, path)
        shaped_axes = None
        if s.kind == "shaped":
            index = [x.kind for x in tif.series][:series].count("shaped")
            shaped_meta = tif.shaped_metadata or ()
            shaped_axes = shaped_meta[index].get("axes") if index < len(shaped_meta) else None
        meta = _tiff_metadata(tif, s, path, series)
        dtype = np.dtype(s.dtype).newbyteorder(tif.byteorder)
    except IndexError:
        raise ValueError(f"series: {path!r} has {n_series} image series, asked for index {series}") from None
    except MemoryError:
        raise
    except Exception as exc:
        raise _corrupt(path, "its TIFF directory", exc) from exc

    page_size = int(np.prod(page_shape, dtype=np.int64)) or 1
    held = int(np.prod(shape, dtype=np.int64)) // page_size
    if promised is not None and held < promised[0]:
        # tifffile opens what it finds: a truncated hyperstack would read as a shorter recording
        in_file = _n_pages(tif)
        holds = min(held, in_file) if in_file is not None else held
        raise ValueError(f"path {path!r}: its {promised[1]} promises {promised[0]} pages, the file holds "
                         f"{holds}: the file is truncated or corrupt")
    if shaped_axes is None and s.kind == "shaped" and not _PLAIN_SHAPED.match(axes):
        # written by tifffile without axes, and its letters are shifted (trailing length-1 axes
        # of e.g. a (T, Y, 1) array cannot be a page): read it as the array written, like a .npy
        if not 3 <= len(shape) <= 5:
            raise ValueError(f"path {path!r} holds an array of shape {shape}, not a video")
        dims, perm = default_dims(len(shape)), tuple(range(len(shape)))
    else:
        dims, perm = _output_perm(axes, path)

    if contiguous:
        end = dataoffset + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if end > size:
            frame = ""
            if perm[0] == 0 and shape[0]:
                frame_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize
                frame = f"; frame {max(0, size - dataoffset) // max(1, frame_bytes)} is the first incomplete one"
            raise ValueError(f"path {path!r} is truncated: its frames end at byte {end}, the file has {size}{frame}")
        return _RawReader(path, dtype, dataoffset, shape, perm, stat=st), dims, meta

    # scattered or compressed pages: remember every page's IFD offset once
    n_lead = len(shape) - len(page_shape)
    if n_lead < 1 or tuple(shape[n_lead:]) != page_shape:
        raise ValueError(f"path {path!r}: cannot map TIFF series of shape {shape} onto its pages of shape "
                         f"{page_shape} (several frames in one compressed page cannot be read lazily)")
    time_axis = perm[0]
    if time_axis >= n_lead:
        raise ValueError(f"path {path!r}: the time axis lies inside each TIFF page; fluoxr cannot read it lazily")
    lead_shape = shape[:n_lead]
    offsets = []
    for i, p in enumerate(s.pages):
        frame = int(np.unravel_index(i, lead_shape)[time_axis]) if i < int(np.prod(lead_shape)) else i
        if p is None:
            raise ValueError(f"path {path!r}: frame {frame} has no TIFF page: the file is truncated or corrupt")
        try:
            parent = p.parent
            ends = [int(o) + int(n) for o, n in zip(p.dataoffsets, p.databytecounts)]
            offset = int(p.offset)
        except MemoryError:
            raise
        except Exception as exc:
            raise _corrupt(path, f"frame {frame}", exc) from exc
        if parent is not tif:
            raise ValueError(f"path {path!r}: this OME series spans several files; open the files as a list instead")
        if ends and max(ends) > size:
            raise _corrupt(path, f"frame {frame}", f"its data end at byte {max(ends)}, the file has {size} bytes")
        offsets.append(offset)
    if len(offsets) != int(np.prod(lead_shape, dtype=np.int64)):
        raise ValueError(f"path {path!r}: the TIFF series of shape {shape} has {len(offsets)} pages: "
                         "the file is truncated or corrupt")
    lead = np.moveaxis(np.asarray(offsets, np.int64).reshape(lead_shape), time_axis, 0)
    # axes of the array the reader builds: lead axes (time first), then page axes
    built = [time_axis] + [a for a in range(n_lead) if a != time_axis] + list(range(n_lead, len(shape)))
    out_perm = tuple(built.index(p) for p in perm)
    reader = _TiffPagesReader(path, keyframe.offset, lead, page_shape, s.dtype, out_perm, stat=st)
    return reader, dims, meta


_TIME_UNITS = {"s": 1.0, "sec": 1.0, "second": 1.0, "seconds": 1.0, "ms": 1e-3, "msec": 1e-3,
               "millisecond": 1e-3, "milliseconds": 1e-3, "us": 1e-6, "µs": 1e-6, "\\u00b5s": 1e-6,
               "microsecond": 1e-6, "microseconds": 1e-6, "min": 60.0, "minute": 60.0, "minutes": 60.0,
               "h": 3600.0, "hour": 3600.0, "hours": 3600.0}
_LENGTH_UNITS = {"µm": 1.0, "um": 1.0, "micron": 1.0, "microns": 1.0, "\\u00b5m": 1.0, "nm": 1e-3, "mm": 1e3}

def _tiff_metadata(tif: Any, series: Any, path: str = "", index: int = 0) -> dict[str, Any]:
    """fps and pixel size (µm) from ImageJ or OME metadata, when present.

    Malformed values are not guessed around: they are returned as messages
    under ``fps_error`` / ``pixel_size_error``, which :func:`open_video`
    raises unless the caller gave the value itself.
    """
    path = path or str(tif.filename)
    meta: dict[str, Any] = {}
    ij = tif.imagej_metadata or {}
    fps = None
    if "finterval" in ij:
        # finterval is the acquisition interval in `tunit` (seconds unless said otherwise)
        unit = str(ij.get("tunit", "sec")).strip().lower()
        interval = _positive(ij["finterval"])
        if interval is None:
            meta["fps_error"] = _bad_fps(path, "ImageJ metadata", "finterval", ij["finterval"], "a frame interval")
        elif unit not in _TIME_UNITS:
            logger.info("%s: ImageJ time unit %r is not known; frame interval ignored", path, unit)
        else:
            fps = 1.0 / (interval * _TIME_UNITS[unit])
    if fps is None and "fps_error" not in meta and "fps" in ij:
        # ImageJ's 'fps' is the animation speed, not always the acquisition rate: last resort
        rate = _positive(ij["fps"])
        if rate is None:
            meta["fps_error"] = _bad_fps(path, "ImageJ metadata", "fps", ij["fps"])
        else:
            logger.info("%s: frame rate taken from ImageJ's animation speed (fps=%s); pass fps= if it differs",
                        path, ij["fps"])
            fps = rate
    if fps is not None:
        meta["fps"] = float(fps)
    unit = str(ij.get("unit", "")).lower()
    if unit in ("micron", "um", "µm", "\\u00b5m", "microns"):
        try:
            xres = series.keyframe.tags["XResolution"].value
        except (KeyError, AttributeError):
            xres = None
        if xres is not None:
            try:
                size = _positive(float(xres[1]) / float(xres[0]))
            except (TypeError, ValueError, IndexError, ZeroDivisionError):
                size = None
            if size is None:
                meta["pixel_size_error"] = _bad_pixel_size(path, "ImageJ metadata", "XResolution", xres)
            else:
                meta["pixel_size"] = size
    if tif.is_ome and tif.ome_metadata:
        pix = _ome_pixels(tif.ome_metadata, index)
        if pix is None:
            logger.debug("could not parse OME metadata of %s", path)
        else:
            value = pix.get("PhysicalSizeX")
            if value is not None and "pixel_size" not in meta:
                unit = pix.get("PhysicalSizeXUnit", "µm")
                size = _positive(value)
                if size is None:
                    meta["pixel_size_error"] = _bad_pixel_size(path, "OME metadata", "PhysicalSizeX", value)
                elif unit not in _LENGTH_UNITS:
                    logger.info("%s: OME PhysicalSizeXUnit %r is not known; pixel size ignored", path, unit)
                else:
                    meta["pixel_size"] = size * _LENGTH_UNITS[unit]
            value = pix.get("TimeIncrement")
            if value is not None and "fps" not in meta:
                unit = pix.get("TimeIncrementUnit", "s")
                interval = _positive(value)
                if interval is None:
                    meta["fps_error"] = _bad_fps(path, "OME metadata", "TimeIncrement", value, "a frame interval")
                elif unit not in _TIME_UNITS:
                    logger.info("%s: OME TimeIncrementUnit %r is not known; frame interval ignored", path, unit)
                else:
                    meta["fps"] = 1.0 / (interval * _TIME_UNITS[unit])
    return meta
