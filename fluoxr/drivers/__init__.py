"""The drivers: the only code that builds dask graphs along time.

Domain modules declare *what* to compute next to their kernels and call a
driver for *how*:

- :mod:`fluoxr.drivers.temporal` applies a :class:`TemporalFilter` (a kernel
  with a halo of frames before and after, and an edge policy) with halos made
  of copied edge frames, returning the input's chunks;
- :mod:`fluoxr.drivers.reduction` runs a :class:`TimeReduction` (chunk,
  combine, finalize over a small typed state) over the whole recording, fixed
  segments or segments computed from the data.
"""

from __future__ import annotations

from .reduction import TimeReduction, reduce_time
from .temporal import EDGES, WHOLE, TemporalFilter, apply_temporal

__all__ = ["EDGES", "WHOLE", "TemporalFilter", "TimeReduction", "apply_temporal", "reduce_time"]
