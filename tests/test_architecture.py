"""The architecture's rules, checked on the source: no import cycle, graph primitives only in the drivers.

See ARCHITECTURE.md. These read the code (``ast``), so they fail the moment a
module imports in a circle or builds a halo or a reduction graph by hand.
"""

from __future__ import annotations

import ast
import os

import pytest

import fluoxr

ROOT = os.path.dirname(fluoxr.__file__)

# the dask graph primitives that only the two drivers may call (issue 12)
PRIMITIVES = ("map_overlap", "overlap", "ensure_minimum_chunksize", "HighLevelGraph", "reduction")
DRIVERS = {"fluoxr.drivers.temporal", "fluoxr.drivers.reduction", "fluoxr.drivers.gather"}


def _modules() -> dict[str, str]:
    found = {}
    for folder, _, names in os.walk(ROOT):
        for n in names:
            if n.endswith(".py"):
                path = os.path.join(folder, n)
                rel = os.path.relpath(path, os.path.dirname(ROOT))[:-3].replace(os.sep, ".")
                found[rel[: -len(".__init__")] if rel.endswith(".__init__") else rel] = path
    return found


MODULES = _modules()


def _resolve(module: str, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    package = module if os.path.basename(MODULES[module]) == "__init__.py" else module.rsplit(".", 1)[0]
    parts = package.split(".")
    base = ".".join(parts[: len(parts) - node.level + 1])
    return f"{base}.{node.module}" if node.module else base


def _top_level_imports(module: str) -> set[str]:
    """fluoxr modules imported when ``module`` is imported (imports inside functions are lazy, not counted)."""
    tree = ast.parse(open(MODULES[module]).read())
    out = set()
    for node in tree.body:
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, node)
            targets = [base] + [f"{base}.{a.name}" for a in node.names]
        elif isinstance(node, ast.If) and "TYPE_CHECKING" in ast.dump(node.test):
            continue
        for t in targets:
            while t and t not in MODULES:
                t = t.rsplit(".", 1)[0] if "." in t else ""
            if t and t != module and t.startswith("fluoxr"):
                out.add(t)
    return out


def test_no_import_cycle():
    graph = {m: _top_level_imports(m) for m in MODULES}
    # a package importing its own submodules (re-exports) is how packages work; a submodule importing
    # its package back is a cycle only if the package's __init__ imports that submodule at import time
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for n in sorted(graph[m]):
            if state.get(n) == 1:
                cycle = stack[stack.index(n):] + [n]
                if not all(b.startswith(a + ".") for a, b in zip(cycle, cycle[1:])):
                    pytest.fail("import cycle: " + " -> ".join(cycle))
            elif n not in state:
                visit(n)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


@pytest.mark.parametrize("module", sorted(set(MODULES) - DRIVERS))
def test_graph_primitives_only_in_the_drivers(module):
    tree = ast.parse(open(MODULES[module]).read())
    used = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in PRIMITIVES:
            base = ast.unparse(node.value)
            if base in ("da", "dask.array", "da.overlap", "dask.array.overlap", "overlap", "dask.highlevelgraph"):
                used.add(f"{base}.{node.attr}")
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("dask"):
            used |= {f"{node.module}.{a.name}" for a in node.names if a.name in PRIMITIVES}
    assert not used, f"{module} builds dask graphs by hand ({sorted(used)}); use fluoxr.drivers"


def test_the_rules_see_the_drivers():
    # guard the guard: the drivers do use the primitives, so the scan above would find them
    tree = ast.parse(open(MODULES["fluoxr.drivers.temporal"]).read())
    assert "HighLevelGraph" in ast.dump(tree)
    assert {"fluoxr.drivers.temporal", "fluoxr.sofi.lags", "fluoxr.io.store"} <= set(MODULES)


def test_architecture_examples_run_and_are_right():
    """The two ten-line examples of ARCHITECTURE.md, run as written, give the NumPy answers for any chunking."""
    import re

    import numpy as np

    text = open(os.path.join(os.path.dirname(ROOT), "ARCHITECTURE.md")).read()
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert len(blocks) == 2
    names: dict = {}
    for block in blocks:
        exec(compile(block, "ARCHITECTURE.md", "exec"), names)
    frames = np.random.default_rng(0).random((40, 5, 6))
    padded = np.pad(frames, ((2, 2), (0, 0), (0, 0)), mode="edge")
    expected = np.stack([padded[t : t + 5].mean(0) for t in range(40)])
    for chunks in (40, 7, 1, (3, 30, 7)):
        v = fluoxr.as_video(frames).chunk({"time": chunks})
        out = names["moving_mean"](v, 5)
        assert out.chunks == v.chunks
        np.testing.assert_allclose(out.values, expected, rtol=1e-12)
        np.testing.assert_array_equal(names["peak_image"](v).compute(), frames.max(0))
