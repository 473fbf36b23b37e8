"""``fluoxr info PATH``: shape, dtype, chunks, fps and size of a recording, reading metadata only."""

from __future__ import annotations

import argparse
from typing import Any

from .args import _COUNT, _POSITIVE


def add_parser(sub: Any) -> None:
    p = sub.add_parser("info", help="shape, dtype, chunks, fps and size of a recording (reads metadata only)")
    p.add_argument("path", nargs="+", help="recording: TIFF(s), zarr, .bin, .npy or file.h5::/dataset")
    p.add_argument("--fps", type=_POSITIVE, default=None, help="frame rate, if the file does not say")
    p.add_argument("--shape", type=_COUNT, nargs=2, default=None, metavar=("LY", "LX"), help="frame shape of a raw .bin")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..io import info

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
