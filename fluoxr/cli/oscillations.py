"""``fluoxr oscillations``: influx/efflux detection (Cellects) to zarr, with cluster tracks and coordinates."""

from __future__ import annotations

import argparse
from typing import Any

from .args import _COUNT, _INDEX, _POSITIVE, _add_format_arg, _add_hidden_alias, _add_output_args, _add_scheduler_args
from .outputs import output_format, write_tiff
from .run import Runner, _check_output, _write_table, scheduler


def _read_mask(path: str) -> Any:
    """A mask video (read lazily) or a frame mask image."""
    from ..io import open_video, read_image

    try:
        return open_video(path)
    except (ValueError, TypeError):
        return read_image(path)


def run(args: argparse.Namespace) -> int:
    import dask

    from ..io import open_result, open_video, save
    from ..oscillations import detect, oscillation_coordinates, track_clusters

    for flag, target in (("-o", args.output), ("--tracks", args.tracks), ("--coordinates", args.coordinates)):
        _check_output(target, args, flag)
    fmt = output_format(args.output, command="oscillations", allowed=("zarr", "ome-zarr", "tiff"), format=args.format)
    fps = None if args.interval is None else 1.0 / args.interval
    video = open_video(args.input if len(args.input) > 1 else args.input[0], fps=fps)
    if args.interval is None and not video.attrs.get("fps"):
        raise ValueError("--interval is required: the recording does not say its frame rate "
                         "(give the seconds between frames, e.g. --interval 2)")
    mask = _read_mask(args.mask) if args.mask else None
    labels = detect(video, period_s=args.period, interval_s=args.interval, min_cluster_size=args.min_cluster_size,
                    mask=mask, start=args.start, lag=None if args.lag == "gradient" else args.lag,
                    compat=None if args.compat == "none" else args.compat)
    with scheduler(args.scheduler, workers=args.workers) as client:
        runner = Runner(client=client, progress=not args.no_progress)
        label = f"detecting influx/efflux -> {args.output}"
        if fmt == "tiff":
            write_tiff(runner, labels, args.output, args, label=label, nbytes=video.nbytes)
            saved = open_video(args.output, chunks=labels.chunks[0][0]).astype("int8")  # TIFF pages are int16
        else:
            write = save(labels, args.output, overwrite=args.overwrite, resume=args.resume, compute=False,
                         format=fmt)
            runner.compute(write, label=label, nbytes=video.nbytes)
            saved = open_result(args.output)
        influx, efflux = runner.compute(dask.delayed(tuple)([(saved == 1).mean().data, (saved == 2).mean().data]),
                                        label="counting", nbytes=saved.nbytes)
        print(f"{args.output}: {dict(saved.sizes)} int8 (0 none, 1 influx, 2 efflux); "
              f"influx {float(influx):.1%}, efflux {float(efflux):.1%} of pixel-frames ({runner.throughput(label)})")
        if args.coordinates:
            write = save(oscillation_coordinates(saved), args.coordinates, overwrite=args.overwrite,
                         resume=args.resume, compute=False)
            runner.compute(write, label=f"coordinates -> {args.coordinates}", nbytes=saved.nbytes)
            print(f"{args.coordinates}: table of influx/efflux pixels (t, y, x, kind)")
        if args.tracks:
            # --compat cellects: Cellects' own table (its cluster flux study, the specimen from --mask)
            cellects = args.compat != "none"
            tracks = (track_clusters(saved, compat="cellects", mask=mask) if cellects
                      else track_clusters(saved, min_overlap=args.min_overlap))
            table = runner.compute(tracks, label="tracking oscillating clusters", nbytes=saved.nbytes)
            _write_table(table, args.tracks, index=False)
            if cellects:
                print(f"{args.tracks}: {len(table)} archived clusters (Cellects' cluster flux table)")
            else:
                periods = table["period_s"].dropna()
                print(f"{args.tracks}: {len(table)} clusters"
                      + (f", median local period {periods.median():.1f} s" if len(periods) else ""))
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("oscillations", help="influx/efflux detection (Cellects) to zarr, with cluster tracks")
    p.add_argument("input", nargs="+", help="recording: TIFF(s), zarr, .bin, .npy or file.h5::/dataset")
    p.add_argument("-o", "--output", required=True,
                   help="output labels (0 none, 1 influx, 2 efflux): a zarr store (int8), an OME-Zarr store "
                        "(.ome.zarr) or a TIFF (.tif, int16 pages)")
    _add_hidden_alias(p, "--out", "--output")
    p.add_argument("--period", type=_POSITIVE, required=True, metavar="SECONDS", help="expected oscillation period")
    p.add_argument("--interval", type=_POSITIVE, default=None, metavar="SECONDS",
                   help="seconds between frames (default: from the file's frame rate; required if it has none)")
    p.add_argument("--min-cluster-size", type=_COUNT, required=True, metavar="PIXELS", help="smallest cluster kept")
    p.add_argument("--mask", default=None, help="frame mask image or mask video (nonzero = specimen)")
    p.add_argument("--start", type=_INDEX, default=0, help="first analysed frame (earlier frames are 0)")
    p.add_argument("--lag", choices=("gradient", "period"), default="gradient",
                   help="np.gradient over adjacent frames (Cellects, default) or a difference over P/4 frames")
    p.add_argument("--compat", choices=("none", "cellects", "cellects-lowmem"), default="none",
                   help="plain 8-connected clusters and fluoxr's tracks (default), or Cellects' cc() rule (and its "
                        "float16 path) and Cellects' cluster flux table for --tracks")
    p.add_argument("--tracks", default=None, metavar="CSV",
                   help="write the oscillating-cluster table here (fluoxr's tracker; with --compat cellects, "
                        "Cellects' table: one row per archived cluster)")
    p.add_argument("--min-overlap", type=_COUNT, default=1,
                   help="pixels that link clusters of consecutive frames (fluoxr's tracker)")
    p.add_argument("--coordinates", default=None, metavar="ZARR", help="write the table of influx/efflux pixels here")
    _add_output_args(p, "outputs")
    _add_format_arg(p)
    _add_scheduler_args(p)
    p.set_defaults(func=run)
