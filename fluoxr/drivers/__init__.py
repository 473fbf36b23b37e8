"""The drivers: the only code that builds dask graphs for halos along time and for reductions along time.

Domain modules declare *what* to compute (a :class:`TemporalFilter`, a
reduction) next to their kernels, and call a driver for *how*.
"""

from __future__ import annotations

from .temporal import EDGES, WHOLE, TemporalFilter, apply_temporal

__all__ = ["EDGES", "WHOLE", "TemporalFilter", "apply_temporal"]
