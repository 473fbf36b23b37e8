"""The ``fluoxr`` command line.

``fluoxr info PATH``, ``fluoxr demo`` and one subcommand per analysis
(``extract``, ``register``, ``sofi``, ``oscillations``); each analysis adds its own
subcommand module here and a step to the demo (:mod:`.demo`). Analyses run on
a local dask cluster started here (the only place fluoxr starts one), on an
existing cluster (``--scheduler tcp://host:port``) or in-process
(``--scheduler threads``). Bad input ends with a one-line message and exit
code 2, not a traceback.

Layout
------
``args``     argument types and shared options (argparse only)
``run``      the scheduler, the Runner (progress, timings) and safe outputs
``info``, ``extract``, ``register``, ``sofi``, ``oscillations``, ``demo``, ``warmup``
             one module per subcommand: ``add_parser(sub)`` and ``run(args)``

Parsing imports only these modules and argparse: ``fluoxr --help`` and
argument errors never import dask, xarray or NumPy; a subcommand imports what
it needs when it runs.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

from .. import __version__
from . import demo, extract, info, oscillations, register, sofi, warmup
from .args import _COUNT, _INDEX, _POSITIVE, EXIT_BAD_INPUT, _add_output_args, _add_scheduler_args, _number, _Parser
from .demo import (
    DEMO_FILES,
    DEMO_MARKER,
    DEMO_STEPS,
    DemoContext,
    _demo_calcium,
    _demo_features,
    _demo_motion,
    _demo_oscillations,
    _demo_overview,
    _demo_recordings,
    _demo_sofi,
    _only_demo_files,
    _row_corr,
    _spike_scores,
)
from .oscillations import _read_mask
from .run import Runner, _check_output, _input_paths, _save_figure, _write_table, choose_scheduler, \
    notice_cold_kernels, scheduler
from .sofi import _sofi_png_path

logger = logging.getLogger(__name__)

# the subcommands in the order `fluoxr --help` lists them
SUBCOMMANDS = (info, demo, extract, register, sofi, oscillations, warmup)

# the names these functions had when the command line was one module
_cmd_info, _cmd_demo, _cmd_extract, _cmd_sofi, _cmd_oscillations, _cmd_warmup = (
    m.run for m in (info, demo, extract, sofi, oscillations, warmup))
_add_extract_parser, _add_sofi_parser, _add_oscillations_parser = extract.add_parser, sofi.add_parser, \
    oscillations.add_parser


def build_parser() -> _Parser:
    parser = _Parser(prog="fluoxr", description="Out-of-core fluorescence microscopy analysis.")
    parser.add_argument("--version", action="version", version=f"fluoxr {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0, help="more log messages (-vv for debug)")
    parser.add_argument("--chunk-mb", type=_POSITIVE, default=None, metavar="MB",
                        help="target size of one time chunk when opening recordings (default 16 MB)")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    for command in SUBCOMMANDS:
        command.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``fluoxr`` command; returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or an argument error already printed as one line
        return int(exc.code or 0) if not isinstance(exc.code, str) else EXIT_BAD_INPUT
    level = logging.WARNING - 10 * min(args.verbose, 2)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")
    # the notices ("compiling kernels (first run only)") show at the default verbosity
    logging.getLogger("fluoxr.cli.notice").setLevel(min(level, logging.INFO))
    try:
        from .._options import set_options

        if hasattr(args, "scheduler"):  # a subcommand that computes
            args.scheduler = choose_scheduler(args)
            if args.scheduler in ("threads", "sync", "synchronous", "local"):  # a remote cluster has its own caches
                notice_cold_kernels(args.command, finterp=getattr(args, "finterp", 1))

        with set_options(**({} if args.chunk_mb is None else {"chunk_mb": args.chunk_mb})):
            return int(args.func(args) or 0)
    except (ValueError, TypeError, FileNotFoundError, ImportError, OSError) as exc:
        print(f"fluoxr {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:  # pragma: no cover - interactive
        print(f"fluoxr {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        # never a traceback on the terminal: one line, and the traceback in the log with -vv
        logger.debug("fluoxr %s failed", args.command, exc_info=True)
        print(f"fluoxr {args.command}: error: {type(exc).__name__}: {_one_line(exc)} (run with -vv for details)",
              file=sys.stderr)
        return EXIT_BAD_INPUT


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__
