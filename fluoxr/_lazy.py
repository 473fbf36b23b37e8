"""What keeps ``import fluoxr`` light: names loaded on first use, and the accessor registered with xarray.

``import fluoxr`` imports neither xarray, dask, pandas, numba nor matplotlib:
a public name is imported from its module the first time it is used (PEP 562
module ``__getattr__``), and the ``.fluo`` accessor is registered the moment
xarray is imported (at once, if it already is), so ``video.fluo`` works on
every DataArray whichever of the two was imported first.
"""

from __future__ import annotations

import importlib
import importlib.abc
import sys
from collections.abc import Callable
from typing import Any


def _finders_except(skip: object) -> list[Any]:
    return [f for f in sys.meta_path if f is not skip]


class _AfterImport(importlib.abc.MetaPathFinder):
    """Runs ``callback`` once, right after the module ``name`` has been executed by its usual loader."""

    def __init__(self, name: str, callback: Callable[[], None]) -> None:
        self.name, self.callback = name, callback

    def find_spec(self, fullname: str, path: Any, target: Any = None) -> Any:
        if fullname != self.name:
            return None
        # the spec the import would get without this finder; only its loader's exec_module is wrapped,
        # so the module keeps its own loader (importlib.resources and pickling see nothing unusual)
        for finder in _finders_except(self):
            find = getattr(finder, "find_spec", None)
            spec = find(fullname, path, target) if find is not None else None
            if spec is not None:
                break
        else:
            return None
        loader = spec.loader
        exec_module = getattr(loader, "exec_module", None)
        if exec_module is None:  # pragma: no cover - a legacy loader: register later, from fluoxr's own imports
            return None

        def exec_then_call(module: Any) -> None:
            exec_module(module)
            if self in sys.meta_path:
                sys.meta_path.remove(self)
            self.callback()

        loader.exec_module = exec_then_call  # this loader object serves this one spec only
        return spec


def after_import(name: str, callback: Callable[[], None]) -> None:
    """Call ``callback`` once module ``name`` is imported: now if it already is, else right after its import.

    Examples
    --------
    >>> from fluoxr._lazy import after_import
    >>> after_import("sys", lambda: print("sys is imported"))
    sys is imported
    """
    if name in sys.modules:
        callback()
        return
    if not any(isinstance(f, _AfterImport) and f.name == name for f in sys.meta_path):
        sys.meta_path.insert(0, _AfterImport(name, callback))


def register_accessor() -> None:
    """Register ``DataArray.fluo`` (importing :mod:`fluoxr.accessor`, which imports xarray)."""
    importlib.import_module("fluoxr.accessor")
