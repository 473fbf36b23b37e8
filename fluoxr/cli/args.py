"""Argument types and the options shared by subcommands (argparse only: ``--help`` imports nothing else)."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any, NoReturn

EXIT_BAD_INPUT = 2


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line (and exit code 2), like every other CLI error."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


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
                   help="dask scheduler address (tcp://host:port), 'threads' for in-process threads, "
                        "or 'local' (default) to start a local cluster of worker processes")
    p.add_argument("--workers", type=_COUNT, default=None, help="workers of the local cluster (default: cores, at most 4)")
    p.add_argument("--no-progress", action="store_true", help="do not show progress bars")
