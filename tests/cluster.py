"""A real dask cluster started from the command line, for the scale-out tests.

``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1 with random
free ports; every process runs in its own session so that teardown can kill
it together with the worker processes its nanny spawned.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _dask_cmd() -> list[str]:
    exe = os.path.join(os.path.dirname(sys.executable), "dask")
    return [exe] if os.path.exists(exe) else [sys.executable, "-m", "dask"]


@dataclass
class CommandLineCluster:
    address: str
    procs: list[subprocess.Popen] = field(default_factory=list)
    logs: list[str] = field(default_factory=list)

    def worker_pids(self) -> list[int]:
        """PIDs of the worker processes (not their nannies), from the scheduler."""
        from distributed import Client

        with Client(self.address, timeout="10s") as c:
            return sorted(int(pid) for pid in c.run(os.getpid).values())


def _wait_for_workers(address: str, n: int, timeout: float = 60) -> None:
    from distributed import Client

    with Client(address, timeout=f"{int(timeout)}s") as c:
        c.wait_for_workers(n, timeout=timeout)


@contextlib.contextmanager
def command_line_cluster(n_workers: int = 2, *, tmpdir: str, memory_limit: str = "4GB") -> Iterator[CommandLineCluster]:
    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    env = dict(os.environ, DASK_DISTRIBUTED__WORKER__DAEMON="False")
    cluster = CommandLineCluster(address)
    log = open(os.path.join(tmpdir, "cluster.log"), "w")
    try:
        cluster.procs.append(subprocess.Popen(
            _dask_cmd() + ["scheduler", "--host", "127.0.0.1", "--port", str(port), "--no-dashboard"],
            stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env))
        deadline = time.time() + 60
        while True:
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=1):
                break
            if time.time() > deadline or cluster.procs[0].poll() is not None:
                raise RuntimeError("dask scheduler did not start; see cluster.log")
            time.sleep(0.2)
        for _ in range(n_workers):
            cluster.procs.append(subprocess.Popen(
                _dask_cmd() + ["worker", address, "--nworkers", "1", "--nthreads", "1", "--no-dashboard",
                               "--host", "127.0.0.1", "--memory-limit", memory_limit,
                               "--local-directory", tmpdir],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env))
        _wait_for_workers(address, n_workers)
        yield cluster
    finally:
        for p in reversed(cluster.procs):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGTERM)
        for p in cluster.procs:
            try:
                p.wait(timeout=20)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
        log.close()
