"""What the name of a subcommand's output says: its suffix chooses the format written.

``-o out.zarr`` (or a name without a suffix) is a zarr store, ``-o
out.ome.zarr`` an OME-Zarr store, ``-o out.tif`` (``.tiff``) a TIFF
(:func:`fluoxr.save_tiff`); any other suffix, or a format the subcommand's
result cannot take (traces as a TIFF), is refused with a one-line error
before anything is computed, instead of a zarr folder named ``out.tif``.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

FORMAT_NAMES = {"zarr": "zarr (.zarr, or no suffix)", "ome-zarr": "OME-Zarr (.ome.zarr)", "tiff": "TIFF (.tif, .tiff)",
                "csv": "a CSV table (.csv)"}


def output_format(path: str, *, command: str, allowed: tuple[str, ...], format: str | None = None,
                  flag: str = "-o") -> str:
    """The format ``path`` asks for (``"zarr"``, ``"ome-zarr"`` or ``"tiff"``), or a ValueError naming ``flag``.

    ``format`` is the subcommand's ``--format`` (zarr or ome-zarr), which
    chooses between the two stores; it cannot turn a ``.tif`` name into a store.

    Examples
    --------
    >>> output_format("/tmp/a.zarr", command="sofi", allowed=("zarr", "ome-zarr", "tiff"))
    'zarr'
    >>> output_format("/tmp/a.ome.zarr/", command="sofi", allowed=("zarr", "ome-zarr", "tiff"))
    'ome-zarr'
    >>> output_format("/tmp/a.TIF", command="sofi", allowed=("zarr", "ome-zarr", "tiff"))
    'tiff'
    >>> output_format("/tmp/a.png", command="sofi", allowed=("zarr", "ome-zarr", "tiff"))
    Traceback (most recent call last):
    ...
    ValueError: -o '/tmp/a.png': fluoxr sofi writes zarr (.zarr, or no suffix), OME-Zarr (.ome.zarr) or TIFF (.tif, .tiff); the suffix '.png' names none of them
    """
    text = path.rstrip("/\\").lower()
    names = [FORMAT_NAMES[k] for k in allowed]
    kinds = ", ".join(names[:-1]) + " or " + names[-1] if len(names) > 1 else names[0]
    if text.endswith(".ome.zarr"):
        fmt = "ome-zarr"
    elif text.endswith(".zarr"):
        fmt = "zarr"
    elif text.endswith((".tif", ".tiff")):
        fmt = "tiff"
    elif text.endswith(".csv"):
        fmt = "csv"
    else:
        suffix = os.path.splitext(os.path.basename(text))[1]
        if suffix:
            raise ValueError(f"{flag} {path!r}: fluoxr {command} writes {kinds}; the suffix {suffix!r} names none "
                             "of them")
        fmt = "zarr"
    if fmt in ("tiff", "csv") and format is not None:
        raise ValueError(f"{flag} {path!r} names {FORMAT_NAMES[fmt].split(' (')[0]}, which --format {format} "
                         "contradicts; drop --format or name a .zarr")
    if fmt in ("zarr", "ome-zarr") and format is not None:
        fmt = format
    if fmt not in allowed:
        raise ValueError(f"{flag} {path!r}: fluoxr {command} cannot write {FORMAT_NAMES[fmt]}; it writes {kinds}")
    return fmt


def write_tiff(runner: Any, obj: Any, path: str, args: argparse.Namespace, *, label: str, nbytes: float) -> None:
    """``fluoxr.save_tiff(obj, path)`` on the subcommand's scheduler, timed like ``runner.compute``.

    The TIFF is written chunk by chunk by save_tiff itself (its computes
    run on the active scheduler); ``--resume`` has nothing to resume in a
    TIFF, which is complete or absent, so it writes it again.
    """
    from ..io import save_tiff

    t0 = time.perf_counter()
    if runner.progress:
        print(f"  {label}", flush=True)
    save_tiff(obj, path, overwrite=bool(args.overwrite or getattr(args, "resume", False)))
    runner.timings.append((label, time.perf_counter() - t0, nbytes))
