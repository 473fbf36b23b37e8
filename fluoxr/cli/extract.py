"""``fluoxr extract``: cell/neuropil traces (suite2p ROIs, label images) or position traces, optional spikes.

With ``--register`` the recording is registered on the way (:func:`fluoxr.estimate_motion` then
:func:`fluoxr.apply_motion`, both lazy): the traces come from the registered frames, none of which is stored.
"""

from __future__ import annotations

import argparse
from typing import Any

from .args import _COUNT, _INDEX, _POSITIVE, _add_output_args, _add_scheduler_args, _number
from .outputs import output_format
from .run import Runner, _check_output, scheduler


_TIFF_MAGIC = (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+")
_NPY_MAGIC = b"\x93NUMPY"


def _read_stat(path: str) -> Any:
    """suite2p's ``stat.npy``, checked by content first: a TIFF or any other file is refused in one line
    (np.load would otherwise fail deep in pickle)."""
    import os
    import pickle

    from ..io import read_suite2p_stat

    what = "suite2p's stat.npy (a NumPy file of per-ROI dicts with ypix, xpix, lam)"
    if os.path.isfile(path):
        with open(path, "rb") as fh:
            head = fh.read(8)
        if head.startswith(_TIFF_MAGIC):
            raise ValueError(f"--stat must be {what}; {path!r} is a TIFF image (a label image goes to --labels)")
        if not head.startswith(_NPY_MAGIC):
            raise ValueError(f"--stat must be {what}; {path!r} is not a NumPy .npy file")
    elif os.path.isdir(path):
        raise ValueError(f"--stat must be {what}; {path!r} is a folder")
    try:
        return read_suite2p_stat(path)
    except FileNotFoundError:
        raise
    except (ValueError, TypeError, EOFError, pickle.UnpicklingError, AttributeError, ImportError) as exc:
        raise ValueError(f"--stat must be {what}; {path!r} is not one ({' '.join(str(exc).split())})") from exc


def _label_image(labels: Any, path: str) -> Any:
    """``labels`` if it looks like a label image; an intensity image given to ``--labels`` is refused with a hint.

    A label image holds integers (0 = background), and far fewer labels than pixels: a ROI spans many
    pixels, so more than one label per ten pixels means the values measure intensity.

    Examples
    --------
    >>> import numpy as np
    >>> _label_image(np.repeat(np.arange(4), 25).reshape(10, 10), "/tmp/l.tif").max()
    np.int64(3)
    >>> _label_image(np.linspace(0, 1, 100).reshape(10, 10), "/tmp/img.tif")
    Traceback (most recent call last):
    ...
    ValueError: --labels '/tmp/img.tif' looks like an intensity image, not a label image: ...
    """
    import numpy as np

    lab = np.asarray(labels)
    reason = None
    if lab.dtype.kind == "f" and not (np.all(np.isfinite(lab)) and np.all(np.mod(lab, 1) == 0)):
        reason = f"its values are not integers (dtype {lab.dtype})"
    elif lab.dtype.kind not in "iubf":
        reason = f"its dtype is {lab.dtype}, not integer"
    else:
        n = len(np.unique(lab[lab != 0])) if lab.size else 0
        if n > max(lab.size / 10, 1):
            reason = f"it has {n} distinct values in {lab.size} pixels, more than one label per 10 pixels"
    if reason is not None:
        raise ValueError(f"--labels {path!r} looks like an intensity image, not a label image: {reason}; give an "
                         "image of integer ROI labels (0 = background), e.g. cellpose or suite2p masks")
    return lab


def run(args: argparse.Namespace) -> int:
    import numpy as np
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
    if args.output is None and args.nwb is None:
        raise ValueError("-o: give an output store (-o traces.zarr), an NWB file (--nwb session.nwb) or both")
    if args.nwb_metadata is not None and args.nwb is None:
        raise ValueError("--nwb-metadata is used with --nwb")
    _check_output(args.output, args, "-o")
    if args.output is not None:
        output_format(args.output, command="extract (traces)", allowed=("zarr", "ome-zarr"))
    _check_output(args.nwb, args, "--nwb")
    nwb_meta = _read_nwb_metadata(args.nwb_metadata) if args.nwb_metadata is not None else None
    kwargs: dict[str, Any] = {}
    if args.fps is not None:
        kwargs["fps"] = args.fps
    if args.shape is not None:
        kwargs["shape"] = tuple(args.shape)
    video = io.open_video(args.input if len(args.input) > 1 else args.input[0], **kwargs)
    if args.register is not None:
        from .. import apply_motion, estimate_motion

        # registered lazily: the shifts are estimated, and each frame moved, as the extraction reads it
        motion = estimate_motion(video, nonrigid=args.register == "nonrigid",
                                 channel=args.channel if "channel" in video.dims else None)
        video = apply_motion(video, motion)
    frame = (video.sizes["y"], video.sizes["x"])
    out = xr.Dataset()
    if args.positions is not None:
        pos = io.read_positions(args.positions)
        out["F"] = traces(video, pos, size=args.size, window=args.window)
        # the ROIs the position traces average over (plain means: weight 1), for --nwb
        win = ROISet.from_positions(pos, frame, size=args.size, window=args.window or _default_window())
        rois_written = ROISet(roi=win.roi, y=win.y, x=win.x, weight=np.ones(win.roi.size, np.float32),
                              shape=win.shape, meta=win.meta)
        what = f"{len(pos)} positions ({args.window or 'rect'} windows of {args.size} px)"
    else:
        if args.stat is not None:
            rois = ROISet.from_suite2p(_read_stat(args.stat), frame)
            what = f"{len(rois)} suite2p ROIs"
        else:
            rois = ROISet.from_labels(_label_image(io.read_image(args.labels), args.labels))
            what = f"{len(rois)} labelled ROIs"
        rois_written = rois
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
    targets = " and ".join(t for t in (args.output, args.nwb) if t is not None)
    if not args.no_progress:
        print(f"fluoxr extract: {what} from {dict(video.sizes)} -> {targets}", flush=True)
    with scheduler(args.scheduler, workers=args.workers) as client:
        runner = Runner(client=client, progress=not args.no_progress)
        if args.output is not None:
            write = io.save(out, args.output, overwrite=args.overwrite, resume=args.resume, compute=False)
            runner.compute(write, label="extracting traces", nbytes=video.nbytes)
            print(f"wrote {', '.join(map(str, out.data_vars))} to {args.output} "
                  f"({runner.throughput('extracting traces')})")
            out = io.open_result(args.output)  # the NWB file is written from the stored traces, not recomputed
        if args.nwb is not None:
            nwb_traces = out.isel(channel=args.channel) if "channel" in out.dims else out
            # an NWB file cannot be resumed: --resume writes it again (from the stored traces when -o is given)
            io.to_nwb(nwb_traces, args.nwb, rois=rois_written, metadata=nwb_meta, fps=args.fps,
                      overwrite=args.overwrite or args.resume)
            print(f"wrote {', '.join(map(str, nwb_traces.data_vars))} to {args.nwb} (NWB)")
    return 0


def _default_window() -> str:
    from .._options import get_options

    return get_options()["trace_window"]


def _read_nwb_metadata(path: str) -> dict[str, Any]:
    """``--nwb-metadata``: a JSON object of :func:`fluoxr.to_nwb`'s metadata (times as ISO 8601 texts)."""
    import json

    try:
        with open(path) as fh:
            meta = json.load(fh)
    except FileNotFoundError as exc:
        raise ValueError(f"--nwb-metadata {path!r} does not exist") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"--nwb-metadata {path!r} is not a JSON file: {exc}") from exc
    if not isinstance(meta, dict):
        raise ValueError(f"--nwb-metadata {path!r} must hold a JSON object, got {type(meta).__name__}")
    from ..io.nwb import _SCHEMA, _check_metadata

    _check_metadata(meta, _SCHEMA, "--nwb-metadata")  # refused before the recording is read
    return meta


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
    p.add_argument("-o", "--output", default=None, help="output zarr store (this, --nwb or both)")
    p.add_argument("--nwb", default=None, metavar="FILE.nwb",
                   help="also (or only) write the traces and ROIs as an NWB ophys file (needs fluoxr[nwb])")
    p.add_argument("--nwb-metadata", default=None, metavar="META.json",
                   help="JSON object of NWB metadata (session_description, session_start_time, subject, device, "
                        "imaging_plane; see fluoxr.to_nwb)")
    p.add_argument("--register", nargs="?", const="rigid", choices=("rigid", "nonrigid"), default=None,
                   help="register the recording first, lazily (no registered copy is written): rigid (the default) "
                        "or nonrigid; see fluoxr register")
    p.add_argument("--neuropil", action="store_true", help="also extract suite2p neuropil traces (Fneu)")
    p.add_argument("--coeff", type=_number(float, ge=0), default=0.7, help="neuropil coefficient for Fc = F - coeff*Fneu (0.7)")
    p.add_argument("--spikes", action="store_true",
                   help="deconvolve spikes (maximin baseline, then OASIS); requires --tau, "
                        "and --fps if the recording has no frame rate")
    p.add_argument("--tau", type=_POSITIVE, default=None,
                   help="indicator decay time in seconds (required with --spikes)")
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
