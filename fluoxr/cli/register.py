"""``fluoxr register``: motion of a recording (rigid or piecewise rigid) to a shifts table and a figure.

By default only the shifts are written (a zarr Dataset, or a CSV table when
``-o`` ends in ``.csv``) with a figure of them and of the mean image before
and after: the registered recording is a lazy view that later analyses
compute as they read (``fluoxr extract --register``, or
:func:`fluoxr.apply_motion` on the stored shifts). ``--save-video`` also
writes it. ``--shifts`` applies shifts from an earlier run or another tool
(a CSV with ``dy``, ``dx`` columns, or a store written by this command)
instead of estimating them.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from .args import _COUNT, _INDEX, _POSITIVE, _add_output_args, _add_scheduler_args, _number
from .outputs import output_format, write_tiff
from .run import Runner, _check_output, _save_figure, _write_table, scheduler


def _base(out: str) -> str:
    base = out.rstrip("/\\")
    for suffix in (".ome.zarr", ".zarr", ".csv"):
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


def _read_shifts(path: str, n_frames: int) -> Any:
    """``--shifts``: a CSV table with ``dy``, ``dx`` columns (one row per frame) or a store of this command."""
    import pandas as pd
    import xarray as xr

    if not os.path.exists(path):
        raise ValueError(f"--shifts {path!r} does not exist")
    if os.path.isdir(path):
        from ..io import open_result

        try:
            ds = open_result(path)
        except (ValueError, TypeError, OSError, KeyError) as exc:
            raise ValueError(f"--shifts {path!r} is not a shifts store of `fluoxr register` ({exc})") from exc
        if not isinstance(ds, xr.Dataset) or not {"dy", "dx"} <= set(ds.data_vars):
            raise ValueError(f"--shifts {path!r} holds no dy and dx variables")
        motion = ds
    else:
        try:
            table = pd.read_csv(path)
        except (ValueError, UnicodeDecodeError, pd.errors.ParserError) as exc:
            raise ValueError(f"--shifts {path!r} is not a CSV table ({' '.join(str(exc).split())})") from exc
        missing = sorted({"dy", "dx"} - set(table.columns))
        if missing:
            raise ValueError(f"--shifts {path!r} must have columns dy and dx (one row per frame); missing "
                             f"{missing}, found {list(table.columns)}")
        motion = table[["dy", "dx"]]
    n = motion.sizes["time"] if isinstance(motion, xr.Dataset) else len(motion)
    if n != n_frames:
        raise ValueError(f"--shifts {path!r} has {n} rows of shifts but the recording has {n_frames} frames")
    return motion


def _shifts_table(motion: Any) -> Any:
    """One row per frame: time, dy, dx (and corr when estimated)."""
    import pandas as pd

    cols = {"time": motion["time"].values} if "time" in motion.coords else {}
    for k in ("dy", "dx", "corr"):
        if k in motion and motion[k].dims == ("time",):
            cols[k] = motion[k].values
    return pd.DataFrame(cols)


def run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    import xarray as xr

    from .. import apply_motion, estimate_motion
    from ..io import open_result, open_video, save
    from ..plot import show_motion

    out = args.output
    png = args.png or _base(out) + ".png"
    video_out = None
    if args.save_video is not None:
        video_out = args.save_video or _base(out) + "_registered.zarr"
    _check_output(out, args, "-o")
    _check_output(png, args, "--png", replace=True)  # a figure is simply redrawn
    _check_output(video_out, args, "--save-video")
    as_csv = output_format(out, command="register (shifts)", allowed=("zarr", "csv")) == "csv"
    if as_csv and args.nonrigid:
        raise ValueError(f"-o {out!r}: nonrigid block shifts do not fit a CSV table; give a .zarr output")
    video_format = (None if video_out is None else
                    output_format(video_out, command="register", allowed=("zarr", "ome-zarr", "tiff"),
                                  flag="--save-video"))
    if video_out is not None and os.path.abspath(video_out) == os.path.abspath(out):
        raise ValueError("--save-video must name another store than -o")
    kwargs: dict[str, Any] = {}
    if args.fps is not None:
        kwargs["fps"] = args.fps
    if args.shape is not None:
        kwargs["shape"] = tuple(args.shape)
    video = open_video(args.input if len(args.input) > 1 else args.input[0], **kwargs)
    if args.shifts is not None:
        motion = _read_shifts(args.shifts, video.sizes["time"])
        what = f"shifts from {args.shifts}"
    else:
        block = tuple(args.block_size) if args.block_size else (128, 128)
        motion = estimate_motion(video, nonrigid=args.nonrigid, block_size=block, max_shift=args.max_shift,
                                 channel=args.channel if "channel" in video.dims else None)
        what = ("nonrigid" if args.nonrigid else "rigid") + " motion"
    if not isinstance(motion, xr.Dataset):  # a table: as a Dataset along the video's time
        motion = xr.Dataset({k: ("time", motion[k].to_numpy(dtype="float64")) for k in ("dy", "dx")},
                            coords={"time": video.time.values})
    if not args.no_progress:
        targets = ", ".join(t for t in (out, video_out) if t)
        print(f"fluoxr register: {what} of {dict(video.sizes)} -> {targets}", flush=True)
    with scheduler(args.scheduler, workers=args.workers) as client:
        runner = Runner(client=client, progress=not args.no_progress)
        label = "estimating motion" if args.shifts is None else "reading shifts"
        if as_csv:
            motion = runner.compute(motion, label=label, nbytes=video.nbytes if args.shifts is None else 0)
            _write_table(_shifts_table(motion), out, index=False)
        else:
            runner.compute(save(motion, out, overwrite=args.overwrite, resume=args.resume, compute=False),
                           label=label, nbytes=video.nbytes if args.shifts is None else 0)
            motion = open_result(out).compute()
        print(f"wrote the shifts to {out} ({runner.throughput(label)})")
        if video_out is not None:
            registered = apply_motion(video, motion)
            vlabel = "writing the registered recording"
            if video_format == "tiff":
                write_tiff(runner, registered, video_out, args, label=vlabel, nbytes=video.nbytes)
            else:
                runner.compute(save(registered, video_out, overwrite=args.overwrite, resume=args.resume,
                                    compute=False, format=video_format), label=vlabel, nbytes=video.nbytes)
            print(f"wrote the registered recording to {video_out} ({runner.throughput(vlabel)})")
        fig = show_motion(motion, video, channel=args.channel)
    _save_figure(fig, png)
    dy, dx = motion["dy"].values, motion["dx"].values
    print(f"  shifts: dy {dy.min():+.2f}..{dy.max():+.2f} px, dx {dx.min():+.2f}..{dx.max():+.2f} px")
    print(f"  figure: {png}")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("register", help="motion correction: shifts of every frame (rigid or nonrigid) and a figure",
                       description="Estimate the motion of a recording (suite2p's phase correlation, subpixel) "
                                   "and write the shifts and a figure; the registered recording is written only "
                                   "with --save-video (later analyses register lazily, e.g. fluoxr extract "
                                   "--register).")
    p.add_argument("input", nargs="+", help="recording: TIFF(s), zarr, .bin, .npy or file.h5::/dataset")
    p.add_argument("-o", "--output", required=True,
                   help="shifts: a zarr store (dy, dx, corr, reference; nonrigid block shifts) or a .csv table")
    p.add_argument("--nonrigid", action="store_true", help="also piecewise-rigid block shifts (suite2p's nonrigid)")
    p.add_argument("--block-size", type=_COUNT, nargs=2, default=None, metavar=("BY", "BX"),
                   help="block size of --nonrigid in pixels (default 128 128)")
    p.add_argument("--max-shift", type=_number(float, gt=0), default=0.1,
                   help="largest rigid shift: a fraction of the frame when < 1, else pixels (default 0.1)")
    p.add_argument("--shifts", default=None, metavar="SHIFTS",
                   help="apply these shifts instead of estimating: a CSV with dy, dx columns (one row per frame) "
                        "or a store written by fluoxr register")
    p.add_argument("--save-video", nargs="?", const="", default=None, metavar="VIDEO.zarr",
                   help="also write the registered recording: a zarr store (default path: OUTPUT_registered.zarr), "
                        "an OME-Zarr store (.ome.zarr) or a TIFF (.tif)")
    p.add_argument("--channel", type=_INDEX, default=0, help="channel registered in multi-channel input (0)")
    p.add_argument("--fps", type=_POSITIVE, default=None, help="frame rate, if the file does not say")
    p.add_argument("--shape", type=_COUNT, nargs=2, default=None, metavar=("LY", "LX"),
                   help="frame shape of a raw .bin (required unless suite2p's ops.npy lies beside it)")
    p.add_argument("--png", default=None, help="figure of the shifts and mean images (default: OUTPUT with .png)")
    _add_output_args(p, "outputs")
    _add_scheduler_args(p)
    p.set_defaults(func=run)
