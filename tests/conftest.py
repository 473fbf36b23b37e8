"""Shared fixtures: temporary files, and a guard that input files are never changed."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator

import numpy as np
import pytest


def file_digest(path: str) -> str:
    """SHA-256 of a file, or of every file below a folder (names included)."""
    h = hashlib.sha256()
    if os.path.isdir(path):
        for root, dirs, files in sorted(os.walk(path)):
            dirs.sort()
            for name in sorted(files):
                full = os.path.join(root, name)
                h.update(os.path.relpath(full, path).encode())
                with open(full, "rb") as fh:
                    h.update(fh.read())
    else:
        with open(path, "rb") as fh:
            h.update(fh.read())
    return h.hexdigest()


@pytest.fixture
def unchanged() -> Iterator:
    """``unchanged(path, ...)`` registers inputs; the test fails if any changed by its end."""
    seen: dict[str, str] = {}

    def register(*paths: str) -> None:
        for p in paths:
            seen[os.fspath(p)] = file_digest(os.fspath(p))

    yield register
    for p, digest in seen.items():
        assert file_digest(p) == digest, f"input {p} was modified"


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture(scope="module")
def cli_cluster(tmp_path_factory):
    """A scheduler and two worker processes started with the ``dask`` command line (stopped afterwards)."""
    from cluster import command_line_cluster

    with command_line_cluster(2, tmpdir=str(tmp_path_factory.mktemp("cluster"))) as cluster:
        yield cluster
