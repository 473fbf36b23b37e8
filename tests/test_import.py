"""``import fluoxr`` stays light, and every public name still resolves.

Guards that do not depend on timing: which heavy modules a fresh interpreter
has imported after ``import fluoxr`` (and after ``fluoxr --help``), checked in
a subprocess so that this test process's own imports do not count.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import fluoxr

HEAVY = ("matplotlib", "distributed", "numba", "pandas", "scipy")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fluoxr.__file__)))


def _run(code: str) -> str:
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr[-3000:]
    return r.stdout.strip().splitlines()[-1]


def test_import_fluoxr_imports_no_heavy_module():
    code = ("import fluoxr; import sys; "
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))")
    assert _run(code) == "[]"


def test_import_fluoxr_imports_neither_xarray_nor_dask():
    # they are imported by the first function that needs them (xarray imports pandas)
    code = "import fluoxr, sys, json; print(json.dumps(sorted(m for m in ('xarray', 'dask') if m in sys.modules)))"
    assert json.loads(_run(code)) == []


def test_cli_help_and_argument_errors_import_no_array_library():
    code = ("import sys; from fluoxr.cli import main; main(['--help']); main(['sofi', 'x.tif']); "
            "main(['oscillations', '--help']); "
            f"print(sorted(m for m in {HEAVY + ('numpy', 'dask', 'xarray')!r} if m in sys.modules))")
    assert _run(code) == "[]"


def test_every_public_name_resolves():
    code = ("import fluoxr, sys; missing = [n for n in fluoxr.__all__ if getattr(fluoxr, n, None) is None]; "
            "print(missing, all(n in dir(fluoxr) for n in fluoxr.__all__))")
    assert _run(code) == "[] True"
    for name in fluoxr.__all__:
        assert getattr(fluoxr, name) is not None, name
    assert set(fluoxr.__all__) <= set(dir(fluoxr))


def test_accessor_is_registered_whichever_is_imported_first():
    before = ("import fluoxr, numpy as np, xarray as xr; "
              "print(type(xr.DataArray(np.zeros((2, 3, 3)), dims=('time', 'y', 'x')).fluo).__name__)")
    after = ("import numpy as np, xarray as xr, fluoxr; "
             "print(type(xr.DataArray(np.zeros((2, 3, 3)), dims=('time', 'y', 'x')).fluo).__name__)")
    assert _run(before) == "FluoAccessor"
    assert _run(after) == "FluoAccessor"


def test_accessor_waits_for_a_real_import_of_xarray():
    # looking xarray up without importing it (as pytest.importorskip or tools do) must not use up the hook
    code = ("import importlib.util, fluoxr; importlib.util.find_spec('xarray'); import sys; "
            "assert 'xarray' not in sys.modules; fluoxr.as_video; import xarray as xr, numpy as np; "
            "print(type(xr.DataArray(np.zeros((2, 3, 3)), dims=('time', 'y', 'x')).fluo).__name__)")
    assert _run(code) == "FluoAccessor"


def test_submodules_are_attributes():
    code = "import fluoxr; print(fluoxr.io.__name__, fluoxr._video.__name__, fluoxr.io.safety.__name__, fluoxr.cli.__name__)"
    assert _run(code) == "fluoxr.io fluoxr._video fluoxr.io.safety fluoxr.cli"


def test_unknown_attribute_is_an_attribute_error():
    import pytest

    with pytest.raises(AttributeError, match="no_such_name"):
        fluoxr.no_such_name  # noqa: B018
