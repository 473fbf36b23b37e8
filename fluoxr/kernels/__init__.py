"""Pure block functions: arrays in, arrays out.

No dask, no xarray, no I/O, no logging of progress. Loops that NumPy cannot
vectorise are numba ``@njit(cache=True)`` functions, without signature lists:
each compiles on its first call, for the argument types of that call only, and
is then loaded from numba's on-disk cache, which fluoxr keeps in a per-user
directory that survives reinstalls (:mod:`fluoxr.kernels._cache`; set here,
before any kernel module is imported, and never when the user set
``NUMBA_CACHE_DIR``). Each kernel is tested against a plain NumPy reference on
tiny arrays (``tests/kernels/``).
"""

from ._cache import use_user_cache

use_user_cache()
