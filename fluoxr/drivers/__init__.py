"""The drivers: the only places that build dask graphs along time.

:mod:`fluoxr.drivers.reduction` runs reductions along time declared as data
(:class:`TimeReduction`) over the whole recording, fixed segments or
segments computed from the data.
"""

from .reduction import TimeReduction, reduce_time

__all__ = ["TimeReduction", "reduce_time"]
