"""Every docstring example of every module of fluoxr and fluoxr.kernels runs and gives what it shows.

The modules are discovered (pkgutil), so a new module's examples run without
being listed here. A module with public functions or classes must have at
least one example, unless it is in :data:`NO_EXAMPLES` (which must then
really have none, so that the list does not rot). Examples may write files
only under ``/tmp``; they run from a temporary working folder besides.
"""

from __future__ import annotations

import doctest
import importlib
import inspect
import pkgutil
import re

import matplotlib
import pytest

import fluoxr

matplotlib.use("Agg")

FLAGS = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE

# modules with public functions but no examples, and why
NO_EXAMPLES = {
    "fluoxr._backend": "private array-module helpers, exercised by every device-aware function",
    "fluoxr._validate": "private argument checks, exercised by tests/test_bad_input.py",
    "fluoxr.cli": "the command line (main), run subcommand by subcommand in tests/cli/",
    "fluoxr.cli.demo": "the `fluoxr demo` pipeline, run by tests/cli/test_cli.py and tests/test_scale.py",
    "fluoxr.cli.info": "the `fluoxr info` subcommand, run by tests/cli/test_cli.py",
    "fluoxr.cli.oscillations": "the `fluoxr oscillations` subcommand, run by tests/test_oscillations.py",
    "fluoxr.cli.register": "the `fluoxr register` subcommand, run by tests/cli/test_register_cli.py",
    "fluoxr.cli.sofi": "the `fluoxr sofi` subcommand, run by tests/cli/test_sofi_cli.py",
}

# modules whose examples need an optional extra (skipped without it)
NEEDS = {"fluoxr.io.nwb": "pynwb", "fluoxr.io.nwb_input": "pynwb"}

# a quoted string that names a file (an extension a fluoxr example could write)
_PATH = re.compile(r"""["']([^"'\s]+\.(?:tif|tiff|zarr|npy|npz|h5|hdf5|csv|bin|png|svg|pdf|json|nc|txt|nwb))["']""")


def _module_names() -> list[str]:
    # every module of every subpackage (fluoxr.io, fluoxr.cli, fluoxr.kernels, ...); not ``__main__``,
    # which runs the command line when imported as a program
    names = {"fluoxr"} | {m.name for m in pkgutil.walk_packages(fluoxr.__path__, "fluoxr.")}
    return sorted(n for n in names if not n.endswith(".__main__"))


MODULES = _module_names()


def _public_members(mod) -> list[str]:
    """Public functions and classes defined in ``mod`` itself (not re-exported)."""
    names = getattr(mod, "__all__", None)
    if names is None:
        names = [n for n in vars(mod) if not n.startswith("_")]
    out = []
    for n in names:
        obj = getattr(mod, n, None)
        if (inspect.isfunction(obj) or inspect.isclass(obj)) and getattr(obj, "__module__", None) == mod.__name__:
            out.append(n)
    return out


def test_discovery_finds_the_modules():
    assert {"fluoxr.sofi", "fluoxr.io", "fluoxr.kernels.moments", "fluoxr.device",
            "fluoxr.sofi.moments", "fluoxr.drivers.reduction", "fluoxr.drivers.temporal"} <= set(MODULES)
    assert {"fluoxr.io.store", "fluoxr.io.tiff", "fluoxr.io.safety", "fluoxr.cli.demo", "fluoxr.cli.run"} <= set(MODULES)
    assert set(NO_EXAMPLES) <= set(MODULES)


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative path in an example would land here, not in the checkout
    if name in NEEDS:
        pytest.importorskip(NEEDS[name])
    mod = importlib.import_module(name)
    for test in doctest.DocTestFinder().find(mod):
        for example in test.examples:
            for path in _PATH.findall(example.source):
                assert path.startswith("/tmp/"), f"{test.name} writes or reads {path!r}: examples use /tmp only"
    res = doctest.testmod(mod, optionflags=FLAGS, report=True)
    assert res.failed == 0, f"{res.failed} of {res.attempted} examples of {name} failed (see the output above)"
    if name in NO_EXAMPLES:
        assert res.attempted == 0, f"{name} has examples now: remove it from NO_EXAMPLES"
        assert _public_members(mod), f"{name} has no public functions: remove it from NO_EXAMPLES"
    elif _public_members(mod):
        assert res.attempted > 0, f"{name} has public functions {_public_members(mod)[:5]} but no example"
