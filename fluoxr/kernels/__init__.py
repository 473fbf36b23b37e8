"""Pure block functions: arrays in, arrays out.

No dask, no xarray, no I/O, no logging of progress. Loops that NumPy cannot
vectorise are numba ``@njit(cache=True)`` functions. Each kernel is tested
against a plain NumPy reference on tiny arrays (``tests/kernels/``).
"""
