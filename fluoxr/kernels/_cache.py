"""Where numba keeps the compiled kernels, and whether it already holds them.

numba's default cache lives in ``__pycache__`` beside the kernel modules, so
reinstalling fluoxr throws it away and a read-only install has none: every
first run then compiles every kernel again (most of a first ``fluoxr demo``).
fluoxr points numba at a per-user cache directory instead
(``platformdirs.user_cache_dir("fluoxr")/numba``, e.g. ``~/.cache/fluoxr/numba``)
before any kernel module is compiled; a ``NUMBA_CACHE_DIR`` the user set
(in the environment, or ``numba.config.CACHE_DIR`` before fluoxr's kernels are
imported) wins. The directory is put in the environment, so dask worker
processes started from here use it too.

This module never imports numba: :mod:`fluoxr.kernels` calls
:func:`use_user_cache` when it is imported, which is before any kernel module.
"""

from __future__ import annotations

import glob
import os
import sys

__all__ = ["ENV", "KERNEL_MODULES", "cache_dir", "cold_modules", "default_cache_dir", "use_user_cache"]

ENV = "NUMBA_CACHE_DIR"

# the kernel modules that hold numba functions (each compiles on first use, then loads from the cache)
KERNEL_MODULES = ("detrend", "extract", "features", "finterp", "masks", "moments", "motion", "oasis",
                  "oscillations")


def default_cache_dir() -> str:
    """The per-user directory fluoxr gives numba's cache when the user chose none.

    Examples
    --------
    >>> from fluoxr.kernels._cache import default_cache_dir
    >>> default_cache_dir().endswith("numba")
    True
    """
    from platformdirs import user_cache_dir

    return os.path.join(user_cache_dir("fluoxr", appauthor=False), "numba")


def use_user_cache() -> str:
    """Point numba's cache at :func:`default_cache_dir` unless the user chose a directory; return the one in use.

    Must run before the kernel modules are imported: numba picks a function's
    cache directory when the function is decorated.
    """
    chosen = os.environ.get(ENV)
    if chosen:
        return chosen
    numba = sys.modules.get("numba")
    if numba is not None and numba.config.CACHE_DIR:
        return str(numba.config.CACHE_DIR)  # set in code by the user before fluoxr's kernels were imported
    path = default_cache_dir()
    # the environment for numba imported later and for worker processes; the config for numba imported already
    os.environ[ENV] = path
    if numba is not None:
        numba.config.CACHE_DIR = path
    return path


def cache_dir() -> str:
    """The directory numba caches fluoxr's kernels in (after :func:`use_user_cache`)."""
    numba = sys.modules.get("numba")
    return os.environ.get(ENV) or (str(numba.config.CACHE_DIR) if numba is not None else "") or default_cache_dir()


def _module_cache_path(directory: str, source: str) -> str:
    # numba's layout for a user-provided cache directory (numba.core.caching._CacheLocator.
    # get_suitable_cache_subpath): the source folder's name and the SHA-1 of its absolute path;
    # tests/test_numba_cache.py checks that this matches numba's own locator
    import hashlib

    folder = os.path.dirname(os.path.abspath(source))
    return os.path.join(directory, os.path.basename(folder) + "_" + hashlib.sha1(folder.encode()).hexdigest())


def cold_modules(modules: tuple[str, ...] = KERNEL_MODULES, directory: str | None = None) -> list[str]:
    """Kernel modules whose compiled code is not in numba's cache (so their first use compiles).

    A module is warm when the cache holds at least one index (``.nbi``) of its
    functions written after the module's source last changed. This is a cheap
    look at file names and times (no numba import): it can miss a function of a
    warm module that was never used, never the other way round.

    Examples
    --------
    >>> from fluoxr.kernels._cache import cold_modules
    >>> cold_modules(("moments",), directory="/nonexistent")
    ['moments']
    """
    directory = directory or cache_dir()
    here = os.path.dirname(os.path.abspath(__file__))
    cold = []
    for name in modules:
        source = os.path.join(here, f"{name}.py")
        where = _module_cache_path(directory, source)
        try:
            changed = os.path.getmtime(source)
            warm = any(os.path.getmtime(p) >= changed for p in glob.glob(os.path.join(glob.escape(where),
                                                                                        f"{name}.*.nbi")))
        except OSError:
            warm = False
        if not warm:
            cold.append(name)
    return cold
