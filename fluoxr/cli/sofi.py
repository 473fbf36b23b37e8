"""``fluoxr sofi``: SOFI moment and cumulant images of every order from one pass, to zarr and a figure."""

from __future__ import annotations

import argparse
from typing import Any

from .args import _COUNT, _POSITIVE, _add_format_arg, _add_output_args, _add_scheduler_args, _number
from .outputs import output_format, write_tiff
from .run import Runner, _check_output, _save_figure, scheduler


def _sofi_png_path(out: str, suffix: str = ".png") -> str:
    """``out`` with its store or TIFF suffix replaced by ``suffix`` (the figure, or the ``--tiff`` file)."""
    base = out.rstrip("/\\")
    for old in (".ome.zarr", ".zarr", ".tiff", ".tif"):
        if base.lower().endswith(old):
            return base[: -len(old)] + suffix
    return base + suffix


def run(args: argparse.Namespace) -> int:
    import matplotlib

    matplotlib.use("Agg")
    from ..io import open_result, open_video, save
    from ..plot import show_orders
    from ..sofi import fourier_interpolate, sofi_images

    out = args.output
    png = args.png or _sofi_png_path(out)
    _check_output(out, args, "-o")
    fmt = output_format(out, command="sofi", allowed=("zarr", "ome-zarr", "tiff"), format=args.format)
    tiff = out if fmt == "tiff" else _sofi_png_path(out, ".tif") if args.tiff else None
    if tiff is not None and tiff != out:
        _check_output(tiff, args, "--tiff")
    _check_output(png, args, "--png", replace=True)  # a figure is simply redrawn
    video = open_video(args.input if len(args.input) > 1 else args.input[0], fps=args.fps)
    recording = video  # the summary and MB/s describe the input, not the interpolated frames
    if args.finterp > 1:
        video = fourier_interpolate(video, args.finterp)
    ds = sofi_images(video, args.order, bleach_correction=args.bleach_correction, fbc=args.fbc,
                     smooth_kernel=args.smooth_kernel)
    if not args.cumulants:
        ds = ds.drop_vars("cumulants")
    what = "moments" + (" and cumulants" if args.cumulants else "")
    label = (f"SOFI {what} to order {args.order}" + (" (bleach-corrected)" if args.bleach_correction else "")
             + (f" of frames Fourier-interpolated x{args.finterp}" if args.finterp > 1 else ""))
    shown = "cumulants" if args.cumulants else "moments"
    with scheduler(args.scheduler, workers=args.workers) as client:
        runner = Runner(client=client, progress=not args.no_progress)
        if fmt == "tiff":  # the images are small: compute them once, then write the TIFF
            result = runner.compute(ds, label=label, nbytes=recording.nbytes)
        else:
            runner.compute(save(ds, out, overwrite=args.overwrite, resume=args.resume, compute=False,
                                format=fmt), label=label, nbytes=recording.nbytes)
            result = open_result(out).compute()
        if tiff is not None:
            write_tiff(runner, result[shown], tiff, args, label=f"writing {tiff}", nbytes=0)
    fig = show_orders(result[shown], mean_image=result["mean_image"])
    _save_figure(fig, png)
    print(f"fluoxr sofi: {label} of {dict(recording.sizes)} in {runner.throughput(label)}")
    if fmt != "tiff":
        print(f"  results: {out}  (open with fluoxr.open_result)")
    if tiff is not None:
        print(f"  TIFF:    {tiff}  ({shown} of orders 1..{args.order}, one page each, float32)")
    print(f"  figure:  {png}")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("sofi", help="SOFI moment and cumulant images of every order, from one pass over a recording")
    p.add_argument("input", nargs="+", help="recording: TIFF(s), zarr, .bin, .npy or file.h5::/dataset")
    p.add_argument("-o", "--output", required=True,
                   help="output: a zarr store (mean image, moments, cumulants), an OME-Zarr store (.ome.zarr) or a "
                        "TIFF (.tif: the plotted images, one page per order)")
    p.add_argument("--tiff", action="store_true",
                   help="also write the plotted images as a TIFF beside the store (OUTPUT with .tif)")
    p.add_argument("--order", type=_COUNT, default=6, help="highest order (default 6)")
    p.add_argument("--cumulants", action="store_true", help="also write cumulants (and plot them)")
    p.add_argument("--bleach-correction", action="store_true",
                   help="average the moments of blocks of equal bleaching (reads the data twice)")
    p.add_argument("--fbc", type=_number(float, gt=0, lt=1), default=0.04, help="bleaching fraction per block (default 0.04)")
    p.add_argument("--smooth-kernel", type=_COUNT, default=251, help="median window of the total signal (default 251)")
    p.add_argument("--finterp", type=_COUNT, default=1, help="Fourier interpolation factor (default 1: none)")
    p.add_argument("--fps", type=_POSITIVE, default=None, help="frame rate, if the file does not say")
    p.add_argument("--png", default=None, help="figure of the orders side by side (default: OUTPUT with .png)")
    _add_output_args(p, "output")
    _add_format_arg(p)
    _add_scheduler_args(p)
    p.set_defaults(func=run)
