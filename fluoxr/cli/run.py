"""What a subcommand uses when it runs: the scheduler, a progress-reporting Runner, and safe outputs.

The local dask cluster is started here (the only place fluoxr starts one).
Every file a subcommand writes is checked first (:func:`_check_output`) and
written atomically.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any


@dataclass
class Runner:
    """Computes dask collections on the chosen scheduler, with a progress bar."""

    client: Any = None  # distributed.Client, or None for the threaded scheduler
    progress: bool = True
    timings: list[tuple[str, float, float]] = field(default_factory=list)

    def compute(self, obj: Any, *, label: str, nbytes: float = 0.0) -> Any:
        """Compute ``obj`` (a dask collection or delayed), record wall time and input MB.

        Examples
        --------
        >>> import dask.array as da
        >>> from fluoxr.cli.run import Runner
        >>> runner = Runner(progress=False)
        >>> float(runner.compute(da.ones(4, chunks=2).sum(), label="sum"))
        4.0
        """
        import dask

        t0 = time.perf_counter()
        if self.progress:
            print(f"  {label}", flush=True)
        if self.client is not None:
            futures = self.client.compute(obj)
            if self.progress:
                from distributed import progress

                progress(futures)
                print(flush=True)
            result = self.client.gather(futures)
        elif self.progress:
            from dask.diagnostics import ProgressBar

            with ProgressBar(minimum=0.5, width=40):
                (result,) = dask.compute(obj)
        else:
            (result,) = dask.compute(obj)
        self.timings.append((label, time.perf_counter() - t0, nbytes))
        return result

    def throughput(self, label: str) -> str:
        for name, secs, nbytes in reversed(self.timings):
            if name == label:
                rate = nbytes / 1e6 / secs if secs > 0 and nbytes else float("nan")
                return f"{secs:.1f} s" + (f", {rate:.0f} MB/s of input" if nbytes else "")
        return "?"


@contextlib.contextmanager
def scheduler(address: str | None, *, workers: int | None = None) -> Iterator[Any]:
    """Yield a distributed Client (local cluster or ``address``), or None for ``threads``."""
    if address in ("threads", "sync", "synchronous"):
        import dask

        with dask.config.set(scheduler="threads" if address == "threads" else "synchronous"):
            yield None
        return
    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.WARNING)
    if address in (None, "local"):
        n = workers or max(1, min(os.cpu_count() or 1, 4))
        with LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
                Client(cluster) as client:
            yield client
    else:
        with Client(address, timeout="30s") as client:
            yield client


def _check_output(path: str | None, args: argparse.Namespace, flag: str, *, replace: bool = False) -> None:
    """Refuse an output that could destroy data (see :func:`fluoxr.io.safety.check_output_path`), or that
    exists unless --overwrite or --resume (or ``replace``, for a figure that is simply redrawn) allows it."""
    if path is None:
        return
    from ..io.safety import check_output_path

    check_output_path(path, _input_paths(args), name=flag, siblings=(".partial", ".lock"))
    if os.path.lexists(path) and not (replace or args.overwrite or getattr(args, "resume", False)):
        raise ValueError(f"{flag} {path!r} already exists; pass --overwrite to replace it "
                         "or --resume to finish an interrupted run")


def _write_table(table: Any, path: str, **kwargs: Any) -> None:
    """Write a DataFrame as CSV through a temporary file (a link at ``path`` is replaced, not written through)."""
    from ..io.safety import write_file_atomically

    write_file_atomically(path, lambda tmp: table.to_csv(tmp, **kwargs))


def _input_paths(args: argparse.Namespace) -> list[str]:
    """Absolute paths of every file a subcommand reads (globs expanded, HDF5 '::' parts dropped)."""
    from ..io import _expand_paths

    found = []
    for attr in ("input", "stat", "labels", "positions", "mask", "nwb_metadata", "shifts"):
        value = getattr(args, attr, None)
        for item in (value if isinstance(value, list) else [value] if value else []):
            try:
                expanded = _expand_paths(item)
            except (ValueError, TypeError):
                expanded = [item]
            found += [os.path.abspath(p.split("::")[0]) for p in expanded]
    return found


def _save_figure(fig: Any, path: str) -> None:
    """Write a figure as PNG through a temporary file and release it (pyplot keeps every open figure alive)."""
    import matplotlib.pyplot as plt

    from ..io.safety import write_file_atomically

    try:
        write_file_atomically(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    finally:
        plt.close(fig)
