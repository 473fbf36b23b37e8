"""``fluoxr extract``: cell/neuropil traces (suite2p ROIs, label images) or position traces, optional spikes."""

from __future__ import annotations

import argparse
from typing import Any

from .args import _COUNT, _INDEX, _POSITIVE, _add_output_args, _add_scheduler_args, _number
from .run import Runner, _check_output, scheduler


def run(args: argparse.Namespace) -> int:
    import xarray as xr

    from .. import io
    from ..extraction import extract, traces
    from ..rois import ROISet
    from ..spikes import oasis
    from ..temporal import baseline, subtract_neuropil

    sources = [a for a in (args.stat, args.labels, args.positions) if a is not None]
    if len(sources) != 1:
        raise ValueError("give exactly one of --stat stat.npy, --labels LABELS.tif or --positions P.csv")
    if args.positions is not None and args.neuropil:
        raise ValueError("--neuropil needs cell ROIs (--stat or --labels), not --positions")
    if args.tau is not None and not args.spikes:
        raise ValueError("--tau is used with --spikes")
    if args.spikes and args.tau is None:  # refused before any reading: --tau is required with --spikes
        raise ValueError("--spikes requires --tau: --tau must be a positive indicator decay time in seconds, "
                         "e.g. --tau 1.0")
    _check_output(args.output, args, "-o")
    kwargs: dict[str, Any] = {}
    if args.fps is not None:
        kwargs["fps"] = args.fps
    if args.shape is not None:
        kwargs["shape"] = tuple(args.shape)
    video = io.open_video(args.input if len(args.input) > 1 else args.input[0], **kwargs)
    frame = (video.sizes["y"], video.sizes["x"])
    out = xr.Dataset()
    if args.positions is not None:
        pos = io.read_positions(args.positions)
        out["F"] = traces(video, pos, size=args.size, window=args.window)
        what = f"{len(pos)} positions ({args.window or 'rect'} windows of {args.size} px)"
    else:
        if args.stat is not None:
            rois = ROISet.from_suite2p(io.read_suite2p_stat(args.stat), frame)
            what = f"{len(rois)} suite2p ROIs"
        else:
            rois = ROISet.from_labels(io.read_image(args.labels))
            what = f"{len(rois)} labelled ROIs"
        out = extract(video, rois, neuropil="auto" if args.neuropil else None)
    F = out["F"]
    if args.spikes:
        f = F.isel(channel=args.channel) if "channel" in F.dims else F
        if "Fneu" in out:
            fneu = out["Fneu"].isel(channel=args.channel) if "channel" in F.dims else out["Fneu"]
            f = subtract_neuropil(f, fneu, coeff=args.coeff)
            out["Fc"] = f
        fps = args.fps or video.attrs.get("fps")
        if not fps:
            raise ValueError("--spikes needs the frame rate: the recording has none; pass --fps")
        b = baseline(f, window_s=args.window_s, sigma_frames=args.sigma, fps=fps)
        out["spikes"] = oasis(f - b, tau_s=args.tau, fps=fps)
    out.attrs.update({k: v for k, v in video.attrs.items() if k in ("fps", "source")})
    if not args.no_progress:
        print(f"fluoxr extract: {what} from {dict(video.sizes)} -> {args.output}", flush=True)
    with scheduler(args.scheduler, workers=args.workers) as client:
        runner = Runner(client=client, progress=not args.no_progress)
        write = io.save(out, args.output, overwrite=args.overwrite, resume=args.resume, compute=False)
        runner.compute(write, label="extracting traces", nbytes=video.nbytes)
    print(f"wrote {', '.join(map(str, out.data_vars))} to {args.output} ({runner.throughput('extracting traces')})")
    return 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("extract", help="cell/neuropil traces (suite2p) or position traces (optimap), optional spikes",
                       description="Extract traces in one read of the recording and write them to zarr "
                                   "(variables F, Fneu, Fc, spikes; dims roi, time).")
    p.add_argument("input", nargs="+", help="recording: TIFF(s), zarr, .bin, .npy or file.h5::/dataset")
    src = p.add_argument_group("ROIs (exactly one)")
    src.add_argument("--stat", default=None, help="suite2p stat.npy (ypix, xpix, lam per ROI)")
    src.add_argument("--labels", default=None, help="label image (TIFF/.npy/zarr; 0 = background)")
    src.add_argument("--positions", default=None,
                     help="CSV of positions with columns y,x (row, column; header optional, order y then x)")
    p.add_argument("-o", "--output", required=True, help="output zarr store")
    p.add_argument("--neuropil", action="store_true", help="also extract suite2p neuropil traces (Fneu)")
    p.add_argument("--coeff", type=_number(float, ge=0), default=0.7, help="neuropil coefficient for Fc = F - coeff*Fneu (0.7)")
    p.add_argument("--spikes", action="store_true",
                   help="deconvolve spikes (maximin baseline, then OASIS); requires --tau, "
                        "and --fps if the recording has no frame rate")
    p.add_argument("--tau", type=_POSITIVE, default=None, help="indicator decay time in seconds (required with --spikes)")
    p.add_argument("--window-s", type=_POSITIVE, default=60.0, help="maximin baseline window in seconds (60)")
    p.add_argument("--sigma", type=_number(float, ge=0), default=10.0, help="maximin Gaussian width in frames (10)")
    p.add_argument("--channel", type=_INDEX, default=0, help="functional channel for spikes in multi-channel input")
    p.add_argument("--size", type=_COUNT, default=5, help="window size for --positions (5)")
    p.add_argument("--window", choices=("rect", "disc", "pixel"), default=None, help="window for --positions")
    p.add_argument("--fps", type=_POSITIVE, default=None,
                   help="frame rate, if the file does not say (required then with --spikes)")
    p.add_argument("--shape", type=_COUNT, nargs=2, default=None, metavar=("LY", "LX"),
                   help="frame shape of a raw .bin (required unless suite2p's ops.npy lies beside it)")
    _add_output_args(p, "output store")
    _add_scheduler_args(p)
    p.set_defaults(func=run)
