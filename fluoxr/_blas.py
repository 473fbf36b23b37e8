"""One BLAS thread inside kernels that dask runs on its worker threads.

NumPy's OpenBLAS starts as many threads as there are cores for every large
enough matrix product. When dask already runs one kernel per core, each of
those kernels' products would start its own team of BLAS threads, and the
machine runs cores x cores threads that wait on each other
(oversubscription: Fourier interpolation ran 2 to 3 times slower on 2 cores).
:func:`single_blas_thread` sets OpenBLAS's *thread-local* thread count
(``openblas_set_num_threads_local``, OpenBLAS >= 0.3.27), in NumPy's and in
SciPy's OpenBLAS (numba kernels call the latter), to one inside a
kernel run off the main thread, and puts it back after; the main thread
(an eager call on an in-memory image) keeps every BLAS thread. The setting
is per thread, so no other thread is affected.

Where NumPy's BLAS is not an OpenBLAS with that entry point (an MKL or
Accelerate build, or a platform without ``/proc/self/maps``), the context
manager does nothing.

Examples
--------
>>> import numpy as np
>>> with single_blas_thread():
...     float((np.ones((3, 3)) @ np.ones(3))[0])
3.0
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import threading
from collections.abc import Callable, Iterator

logger = logging.getLogger(__name__)

__all__ = ["single_blas_thread"]


@functools.lru_cache(maxsize=1)
def _set_local_threads() -> Callable[[int], int] | None:
    """``openblas_set_num_threads_local`` of every OpenBLAS NumPy and SciPy loaded, as one function, or None.

    NumPy's and SciPy's wheels each bring an OpenBLAS (NumPy's with 64-bit
    integers): NumPy's matrix products use the first, the numba kernels'
    ``np.dot`` (through ``scipy.linalg.cython_blas``) the second.
    """
    import numpy  # noqa: F401  (loads NumPy's BLAS, so that it is in the process's maps)

    try:
        import scipy.linalg.cython_blas  # noqa: F401  (loads SciPy's, which numba's np.dot calls)
    except ImportError:  # pragma: no cover - SciPy is a dependency
        pass
    try:
        with open("/proc/self/maps") as fh:
            paths = sorted({line.split()[-1] for line in fh if "openblas" in line.rsplit("/", 1)[-1].lower()})
    except OSError:
        return None
    funcs = []
    for path in paths:
        try:
            func = ctypes.CDLL(path).openblas_set_num_threads_local
        except (OSError, AttributeError):
            continue
        func.restype = ctypes.c_int
        func.argtypes = [ctypes.c_int]
        logger.debug("BLAS threads set per thread through %s", path)
        funcs.append(func)
    if not funcs:
        return None

    def set_all(n: int) -> int:
        # each library returns its own previous setting; they are always set together, so the first stands
        # for all
        return [func(n) for func in funcs][0]

    return set_all


@contextlib.contextmanager
def single_blas_thread() -> Iterator[None]:
    """Run the block with one BLAS thread when it runs off the main thread (a dask worker thread).

    Returns the thread's previous setting on exit. A no-op on the main
    thread and where NumPy's BLAS offers no per-thread setting.
    """
    func = None if threading.current_thread() is threading.main_thread() else _set_local_threads()
    if func is None:
        yield
        return
    old = func(1)
    try:
        yield
    finally:
        func(old)
