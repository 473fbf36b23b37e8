"""Argument types and the options shared by subcommands (argparse only: ``--help`` imports nothing else)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any, NoReturn

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (and exit code 2), like every other CLI error.

    It also accepts old spellings of options (:func:`_add_hidden_alias`), which ``--help`` does not show.
    """

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        aliases: dict[str, str] = getattr(self, "_hidden_aliases", {})
        if aliases and args is not None:
            args = [_rename_option(a, aliases) for a in args]
        return super().parse_known_args(args, namespace)

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _rename_option(token: str, aliases: dict[str, str]) -> str:
    name, eq, value = token.partition("=")
    return aliases[name] + eq + value if name in aliases else token


def _add_hidden_alias(p: argparse.ArgumentParser, alias: str, option: str) -> None:
    """Accept ``alias`` as an old spelling of ``option`` (same destination), left out of ``--help``.

    The alias is renamed before parsing rather than added as a second argument with the same ``dest``:
    argparse's check of a required option counts only the option itself, so ``--out X`` would be refused
    as "-o/--output is required".

    Examples
    --------
    >>> p = _Parser(prog="demo")
    >>> _ = p.add_argument("-o", "--output", required=True)
    >>> _add_hidden_alias(p, "--out", "--output")
    >>> p.parse_args(["--out", "/tmp/a.zarr"]).output, p.parse_args(["-o", "/tmp/b.zarr"]).output
    ('/tmp/a.zarr', '/tmp/b.zarr')
    >>> "--out " in p.format_help()
    False
    """
    p.__dict__.setdefault("_hidden_aliases", {})[alias] = option


def _number(kind: type, *, ge: float | None = None, gt: float | None = None,
            lt: float | None = None) -> Callable[[str], Any]:
    """An argparse type: an int or float within bounds, refused at once (exit 2) otherwise."""
    def parse(text: str) -> Any:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'an integer' if kind is int else 'a number'}, "
                                             f"got {text!r}") from None
        if kind is float and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
        if ge is not None and value < ge:
            raise argparse.ArgumentTypeError(f"must be at least {ge:g}, got {text}")
        if gt is not None and value <= gt:
            raise argparse.ArgumentTypeError(f"must be greater than {gt:g}, got {text}")
        if lt is not None and value >= lt:
            raise argparse.ArgumentTypeError(f"must be less than {lt:g}, got {text}")
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


_POSITIVE = _number(float, gt=0)
_COUNT = _number(int, ge=1)
_INDEX = _number(int, ge=0)


def _add_output_args(p: argparse.ArgumentParser, what: str = "outputs") -> None:
    """``--overwrite`` and ``--resume`` for subcommands that write zarr stores."""
    g = p.add_mutually_exclusive_group()
    g.add_argument("--overwrite", action="store_true", help=f"replace existing {what}")
    g.add_argument("--resume", action="store_true",
                   help=f"finish an interrupted run: chunks of {what} already written are kept, not recomputed")


def _add_scheduler_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="dask scheduler address (tcp://host:port), 'threads' for threads in this process, or "
                        "'local' for a local cluster of worker processes (default: threads when the inputs are "
                        "under 1 GB, where worker processes only cost start-up time, else local)")
    p.add_argument("--workers", type=_COUNT, default=None, help="workers of the local cluster (default: cores, at most 4)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress output (step labels; the progress bars appear only when stderr is a terminal)")


def _add_format_arg(p: argparse.ArgumentParser) -> None:
    """``--format`` of the image results a subcommand writes (``-o``): plain zarr or OME-Zarr.

    Examples
    --------
    >>> p = _Parser(prog="demo")
    >>> _add_format_arg(p)
    >>> p.parse_args([]).format, p.parse_args(["--format", "ome-zarr"]).format
    (None, 'ome-zarr')
    """
    p.add_argument("--format", choices=("zarr", "ome-zarr"), default=None,
                   help="store format of -o: 'ome-zarr' writes OME-NGFF 0.5 images and labels that napari, Fiji "
                        "and Neuroglancer open (default: ome-zarr when -o ends in .ome.zarr, else zarr)")

