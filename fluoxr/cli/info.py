"""``fluoxr info PATH``: shape, dtype, chunks, fps and size of a recording, reading metadata only.

A result store written by :func:`fluoxr.save` with several variables (``sofi.zarr``, ``calcium_traces.zarr``)
is listed variable by variable, with whether its write completed.
"""

from __future__ import annotations

import argparse
from typing import Any

from .args import _COUNT, _POSITIVE


def add_parser(sub: Any) -> None:
    p = sub.add_parser("info", help="shape, dtype, chunks, fps and size of a recording (reads metadata only)")
    p.add_argument("path", nargs="+", help="recording: TIFF(s), zarr, .bin, .npy or file.h5::/dataset")
    p.add_argument("--fps", type=_POSITIVE, default=None, help="frame rate, if the file does not say")
    p.add_argument("--shape", type=_COUNT, nargs=2, default=None, metavar=("LY", "LX"),
                   help="frame shape of a raw .bin (required unless suite2p's ops.npy lies beside it)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..io import info

    if len(args.path) == 1 and _print_result_store(args.path[0]):
        return 0
    kwargs: dict[str, Any] = {}
    if args.fps is not None:
        kwargs["fps"] = args.fps
    if args.shape is not None:
        kwargs["shape"] = tuple(args.shape)
    d = info(args.path if len(args.path) > 1 else args.path[0], **kwargs)
    chunks = {k: (v[0] if len(set(v)) == 1 else f"{v[0]}..({len(v)} chunks)") for k, v in d["chunks"].items()}
    print(f"source       {d['source']}")
    print(f"dims         {', '.join(d['dims'])}")
    print(f"shape        {d['shape']}")
    print(f"dtype        {d['dtype']}")
    print(f"chunks       {chunks}")
    print(f"fps          {d['fps'] if d['fps'] is not None else 'unknown (time is the frame index)'}")
    if d["pixel_size"] is not None:
        print(f"pixel size   {d['pixel_size']} um")
    print(f"size         {d['nbytes'] / 1e6:.1f} MB in memory, {d['size_on_disk'] / 1e6:.1f} MB on disk")
    return 0


def _print_result_store(path: str) -> bool:
    """Print every variable of a fluoxr result store holding several of them; False if ``path`` is not one.

    An incomplete store is refused (:func:`fluoxr.io.store.check_complete`) with the message saying how to
    resume it, as when it is opened; a store holding one video keeps the recording summary.
    """
    import os

    from ..io import open_result
    from ..io.store import _store_state, check_complete

    state = _store_state(os.path.abspath(path))
    if state not in ("complete", "incomplete", "broken"):
        return False
    check_complete(path)
    ds = open_result(path)
    if not hasattr(ds, "data_vars"):  # one saved DataArray: the recording summary below
        return False
    size = sum(os.path.getsize(os.path.join(r, n)) for r, _, ns in os.walk(path) for n in ns)
    rows = []
    for name, var in ds.data_vars.items():
        stored = var.encoding.get("chunks") or var.encoding.get("preferred_chunks")
        chunks = tuple(stored) if isinstance(stored, (tuple, list)) else tuple(var.data.chunksize)
        rows.append((str(name), f"({', '.join(map(str, var.dims))})", str(tuple(var.shape)), str(var.dtype),
                     str(chunks)))
    print(f"source       {os.path.abspath(path)}")
    print("store        fluoxr result store, complete (every chunk written)")
    print(f"variables    {len(rows)}")
    widths = [max(len(r[i]) for r in rows + [("name", "dims", "shape", "dtype", "chunks")]) for i in range(5)]
    for row in [("name", "dims", "shape", "dtype", "chunks"), *rows]:
        print("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    if ds.attrs.get("fps") is not None:
        print(f"fps          {ds.attrs['fps']}")
    print(f"size         {ds.nbytes / 1e6:.1f} MB in memory, {size / 1e6:.1f} MB on disk")
    return True
