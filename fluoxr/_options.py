"""Settings that change fluoxr's defaults, scoped with a context manager.

Options live in a :class:`contextvars.ContextVar`, not in a module-level dict,
so a ``with fluoxr.set_options(...)`` block affects only the code (thread or
task) that runs inside it. Options are read while a graph is *built*, in the
caller's thread; dask workers never need them.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

__all__ = ["set_options", "get_options"]

_WINDOWS = ("rect", "disc", "pixel")

# name -> (default, validator returning an error message or None)
_DEFAULTS: Mapping[str, Any] = MappingProxyType(
    {
        # window used by `traces(...)` when the caller gives none (optimap's
        # `set_default_trace_window`)
        "trace_window": "rect",
        # target size of one time chunk, in MB, when fluoxr picks chunks. 16 MB: with ~250 MB of
        # libraries and numba loaded and a few chunks alive per thread (the chunk, its decoded store
        # chunk, the result), peak RSS on 2 cores stays ~100 MB above that floor; 96 MB chunks
        # peaked at 0.5-1 GB (benchmarks/memory.py), and 16 MB costs no throughput there
        "chunk_mb": 16.0,
    }
)


def _check(name: str, value: Any) -> None:
    if name == "trace_window":
        if value not in _WINDOWS:
            raise ValueError(f"set_options: trace_window must be one of {_WINDOWS}, got {value!r}")
    elif name == "chunk_mb":
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
            raise ValueError(f"set_options: chunk_mb must be a positive number, got {value!r}")


_current: contextvars.ContextVar[Mapping[str, Any]] = contextvars.ContextVar(
    "fluoxr_options", default=_DEFAULTS
)


def get_options() -> Mapping[str, Any]:
    """Return the options in effect (read-only mapping).

    Examples
    --------
    >>> import fluoxr
    >>> fluoxr.get_options()["trace_window"]
    'rect'
    """
    return _current.get()


class set_options:
    """Set fluoxr options for a ``with`` block, or until reset.

    Parameters
    ----------
    trace_window : {"rect", "disc", "pixel"}
        Default window of :func:`fluoxr.traces` (optimap's default is "rect").
    chunk_mb : float
        Target size in MB of one time chunk when fluoxr chooses chunks
        (default 16: peak memory a small multiple of it per thread, see
        ``benchmarks/memory.py``; larger chunks mean fewer, longer tasks).

    Examples
    --------
    >>> import fluoxr
    >>> with fluoxr.set_options(trace_window="disc"):
    ...     fluoxr.get_options()["trace_window"]
    'disc'
    >>> fluoxr.get_options()["trace_window"]
    'rect'
    """

    def __init__(self, **kwargs: Any) -> None:
        unknown = sorted(set(kwargs) - set(_DEFAULTS))
        if unknown:
            raise ValueError(
                f"set_options: unknown option(s) {unknown}; valid options are {sorted(_DEFAULTS)}"
            )
        for name, value in kwargs.items():
            _check(name, value)
        new = dict(_current.get())
        new.update(kwargs)
        self._token = _current.set(MappingProxyType(new))

    def __enter__(self) -> "set_options":
        return self

    def __exit__(self, *exc: object) -> None:
        self.reset()

    def reset(self) -> None:
        """Restore the options that were in effect before this call."""
        if self._token is not None:
            _current.reset(self._token)
            self._token = None
