"""numba's cache: a per-user folder that survives reinstalls, the user's NUMBA_CACHE_DIR kept, nothing compiled
at import, and the cold-cache check the command line's notice relies on (issue 16, item 1)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import fluoxr

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fluoxr.__file__)))


def _run(code: str, **env_changes: str | None) -> dict:
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", "")}
    for key, value in env_changes.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


def test_default_cache_is_a_per_user_folder_outside_the_package(tmp_path):
    code = ("import json, sys, fluoxr.kernels.moments as m, numba, numpy as np; "
            "from fluoxr.kernels._cache import cold_modules, _module_cache_path; "
            "from numba.core.caching import UserProvidedCacheLocator as L; "
            "cold = cold_modules(('moments',)); m.central_sums(np.ones((3, 4)), 3); "
            "loc = L(m._central_sums_serial.py_func, m.__file__).get_cache_path(); "
            "print(json.dumps({'dir': numba.config.CACHE_DIR, 'cold_before': cold, "
            "'cold_after': cold_modules(('moments',)), 'ours': _module_cache_path(numba.config.CACHE_DIR, m.__file__), "
            "'numbas': loc}))")
    got = _run(code, NUMBA_CACHE_DIR=None, XDG_CACHE_HOME=str(tmp_path))
    assert got["dir"] == str(tmp_path / "fluoxr" / "numba")
    assert got["ours"] == got["numbas"]  # the cold check looks where numba writes
    assert got["cold_before"] == ["moments"] and got["cold_after"] == []
    written = [f for _, _, files in os.walk(got["dir"]) for f in files]
    assert any(f.startswith("moments._central_sums_serial") and f.endswith(".nbi") for f in written)


def test_the_users_numba_cache_dir_wins(tmp_path):
    mine = str(tmp_path / "mine")
    code = "import json, fluoxr.kernels.moments, numba; print(json.dumps(numba.config.CACHE_DIR))"
    assert _run(code, NUMBA_CACHE_DIR=mine) == mine
    # set in code, before fluoxr's kernels are imported
    code = ("import json, numba; numba.config.CACHE_DIR = %r; import fluoxr.kernels.moments, os; "
            "print(json.dumps([numba.config.CACHE_DIR, os.environ.get('NUMBA_CACHE_DIR')]))" % mine)
    assert _run(code, NUMBA_CACHE_DIR=None, XDG_CACHE_HOME=str(tmp_path / "x")) == [mine, None]


def test_numba_imported_before_fluoxr_still_uses_the_user_folder(tmp_path):
    code = ("import json, numba, fluoxr.kernels.moments; "
            "print(json.dumps(numba.config.CACHE_DIR))")
    assert _run(code, NUMBA_CACHE_DIR=None, XDG_CACHE_HOME=str(tmp_path)) == str(tmp_path / "fluoxr" / "numba")


def test_importing_the_kernels_compiles_nothing_and_import_fluoxr_loads_no_numba(tmp_path):
    # no signature lists: a kernel compiles on its first call, for that call's types only
    code = ("import json, sys, fluoxr, fluoxr.kernels; before = 'numba' in sys.modules; "
            "import importlib, numba; from fluoxr.kernels._cache import KERNEL_MODULES; "
            "mods = [importlib.import_module('fluoxr.kernels.' + n) for n in KERNEL_MODULES]; "
            "from numba.core.registry import CPUDispatcher; "
            "ds = {m.__name__ + '.' + k: len(v.signatures) for m in mods for k, v in vars(m).items() "
            "if isinstance(v, CPUDispatcher)}; print(json.dumps([before, ds]))")
    before, dispatchers = _run(code, NUMBA_CACHE_DIR=str(tmp_path))
    assert before is False
    assert len(dispatchers) >= 20  # every numba kernel module was found
    assert {k: n for k, n in dispatchers.items() if n} == {}


def test_a_module_whose_source_changed_is_cold(tmp_path):
    from fluoxr.kernels import _cache

    source = os.path.join(os.path.dirname(_cache.__file__), "oasis.py")
    where = _cache._module_cache_path(str(tmp_path), source)
    os.makedirs(where)
    index = os.path.join(where, "oasis._oasis-28.py311.nbi")
    open(index, "w").close()
    assert _cache.cold_modules(("oasis",), directory=str(tmp_path)) == []
    old = os.path.getmtime(source) - 10
    os.utime(index, (old, old))  # an index older than the source: numba recompiles
    assert _cache.cold_modules(("oasis",), directory=str(tmp_path)) == ["oasis"]
    assert _cache.cold_modules(("oasis",), directory=str(tmp_path / "missing")) == ["oasis"]


def test_every_numba_kernel_module_is_listed():
    # the cold-cache check and `fluoxr warmup`'s report cover KERNEL_MODULES: a new numba module must be in it
    from fluoxr.kernels import _cache

    here = os.path.dirname(_cache.__file__)
    using = sorted(f[:-3] for f in os.listdir(here) if f.endswith(".py") and not f.startswith("_")
                   and "from numba import" in open(os.path.join(here, f)).read())
    assert using == sorted(_cache.KERNEL_MODULES)
