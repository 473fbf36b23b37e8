"""What a subcommand uses when it runs: the scheduler, a progress-reporting Runner, and safe outputs.

The local dask cluster is started here (the only place fluoxr starts one), and
only when the inputs are large enough for worker processes to pay for
themselves (:func:`choose_scheduler`). Progress bars go to stderr, and only
when it is a terminal, so logs hold no bars. Every file a subcommand writes is
checked first (:func:`_check_output`) and written atomically.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import logging
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)
# one-line notices the command line shows at its default verbosity (INFO, where other loggers show WARNING)
notice = logging.getLogger("fluoxr.cli.notice")

# below this much input (bytes on disk, or the demo's synthetic bytes) the default scheduler is threads in
# this process: starting worker processes (and compiling the kernels again in each) costs more than it saves
THREADS_BELOW_BYTES = 1 << 30
# seconds the client and then the cluster get to close; a busy machine can take several to stop a worker
_CLOSE_TIMEOUT_S = 30


@dataclass
class Runner:
    """Computes dask collections on the chosen scheduler; a progress bar on stderr when it is a terminal.

    ``progress=False`` (``--no-progress``) also drops the one-line label of each step.
    """

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
        bars = self.progress and _stderr_is_terminal()
        if self.client is not None:
            futures = self.client.compute(obj)
            if bars:
                from distributed import progress

                # distributed's text bar writes to stdout; the bar belongs with the other terminal-only output
                with contextlib.redirect_stdout(sys.stderr):
                    progress(futures)
                    print(flush=True)
            result = self.client.gather(futures)
        elif bars:
            from dask.diagnostics import ProgressBar

            with ProgressBar(minimum=0.5, width=40, out=sys.stderr):
                (result,) = dask.compute(obj)
        else:
            (result,) = dask.compute(obj)
        self.timings.append((label, time.perf_counter() - t0, nbytes))
        return result

    def throughput(self, label: str) -> str:
        for name, secs, nbytes in reversed(self.timings):
            if name == label:
                rate = nbytes / 1e6 / secs if secs > 0 and nbytes else float("nan")
                # two significant digits at least: a first run that compiles the kernels is slow, not "0 MB/s"
                shown = f"{rate:.0f}" if rate >= 10 else f"{rate:.2g}"
                return f"{secs:.1f} s" + (f", {shown} MB/s of input" if nbytes else "")
        return "?"


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced by an object without isatty, or closed
        return False


def choose_scheduler(args: argparse.Namespace) -> str | None:
    """The scheduler a subcommand runs on: ``--scheduler`` when given, else by the size of its inputs.

    Inputs under :data:`THREADS_BELOW_BYTES` (1 GB; bytes on disk, or what
    ``args.input_bytes(args)`` says, e.g. the demo's synthetic recordings) run
    on threads in this process; larger ones on a local cluster of worker
    processes. Subcommands without ``--scheduler`` get None.

    Examples
    --------
    >>> import argparse
    >>> choose_scheduler(argparse.Namespace(scheduler=None, input_bytes=lambda a: 10**6))
    'threads'
    >>> choose_scheduler(argparse.Namespace(scheduler=None, input_bytes=lambda a: 10**10))
    'local'
    >>> choose_scheduler(argparse.Namespace(scheduler="tcp://host:8786"))
    'tcp://host:8786'
    """
    if getattr(args, "scheduler", None) is not None or not hasattr(args, "scheduler"):
        return getattr(args, "scheduler", None)  # given, or a subcommand without the option
    size = args.input_bytes(args) if callable(getattr(args, "input_bytes", None)) else _bytes_on_disk(_input_paths(args))
    chosen = "threads" if size < THREADS_BELOW_BYTES else "local"
    logger.info("inputs of %.0f MB: %s (--scheduler chooses)", size / 1e6,
                "threads in this process" if chosen == "threads" else "a local cluster of worker processes")
    return chosen


def _bytes_on_disk(paths: list[str]) -> int:
    total = 0
    for path in paths:
        if os.path.isdir(path):
            for root, _, files in os.walk(path):
                total += sum(os.path.getsize(os.path.join(root, f)) for f in files)
        elif os.path.exists(path):
            total += os.path.getsize(path)
    return total


@contextlib.contextmanager
def scheduler(address: str | None, *, workers: int | None = None) -> Iterator[Any]:
    """Yield a distributed Client (local cluster or ``address``), or None for ``threads``.

    The local cluster has no dashboard and its HTTP server (health and metrics
    routes, which distributed always starts) takes a free port, so no clash with
    another cluster on port 8787; on the way out the client closes first, then
    the cluster, each with a timeout long enough for a busy machine.
    """
    if address in ("threads", "sync", "synchronous"):
        import dask

        with dask.config.set(scheduler="threads" if address == "threads" else "synchronous"):
            yield None
        return
    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.ERROR if address in (None, "local") else logging.WARNING)
    if address in (None, "local"):
        n = workers or max(1, min(os.cpu_count() or 1, 4))
        cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, dashboard_address=None,
                               scheduler_kwargs={"dashboard": False, "dashboard_address": ":0"},
                               worker_class=_patient_nanny())
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close(timeout=_CLOSE_TIMEOUT_S)
            cluster.close(timeout=_CLOSE_TIMEOUT_S)
    else:
        with Client(address, timeout="30s") as client:
            yield client


@functools.cache
def _patient_nanny() -> type:
    """distributed's Nanny, giving its worker process :data:`_CLOSE_TIMEOUT_S` to stop when the cluster closes.

    The cluster closes its nannies with distributed's default of 5 s, of which
    the worker process gets 4 before the nanny logs "Worker process still alive
    after 4.0 seconds, killing" and kills it; on a loaded machine a worker often
    needs longer than that to finish its interpreter's shutdown.
    """
    from distributed import Nanny

    class PatientNanny(Nanny):
        async def close(self, timeout: float = _CLOSE_TIMEOUT_S, reason: str = "nanny-close") -> Any:
            return await super().close(timeout=max(timeout, _CLOSE_TIMEOUT_S), reason=reason)

    return PatientNanny


# the kernel modules (fluoxr.kernels.*) each subcommand compiles; the notice names a cold cache only for these
_KERNELS_USED = {
    "sofi": ("moments",),
    "extract": ("masks", "extract", "oasis"),
    "oscillations": ("oscillations",),
    "register": ("motion",),
}


def notice_cold_kernels(command: str, *, finterp: int = 1) -> bool:
    """Say in one line, before computing, that the kernels compile now when numba's cache does not hold them.

    Logged at INFO by the ``fluoxr.cli.notice`` logger, which the command line
    shows on stderr at its default verbosity. ``finterp`` is the subcommand's
    Fourier interpolation factor (its kernels count only above 1). Returns
    whether the cache was cold.
    """
    from ..kernels._cache import KERNEL_MODULES, cache_dir, cold_modules

    used = _KERNELS_USED.get(command, KERNEL_MODULES) + (("finterp",) if finterp > 1 else ())
    cold = cold_modules(tuple(dict.fromkeys(used)))
    if cold:
        notice.info("compiling kernels (first run only; cached in %s; `fluoxr warmup` compiles them ahead)",
                    cache_dir())
    return bool(cold)


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
