"""Every ```python block of README.md runs as written when pasted into a script (issue 16, item 5).

Each block runs in a fresh interpreter, in a folder holding small synthetic
versions of the files the README's examples name (``recording.tif``,
``stat.npy``, ...), written here. A block that cannot run here (a GPU) is
preceded in the README by ``<!-- skip-test: reason -->``; the test checks that
those stay few and give a reason. The README also names only files that are in
the repository.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import numpy as np
import pytest
import tifffile

import fluoxr

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(fluoxr.__file__)))
README = os.path.join(ROOT, "README.md")
SKIP = re.compile(r"<!--\s*skip-test:\s*(.*?)\s*-->")


def readme_blocks() -> list[tuple[str, str, str | None]]:
    """(id, code, skip reason or None) of every ```python block, the id naming its section."""
    lines = open(README, encoding="utf-8").read().splitlines()
    blocks, section, i = [], "top", 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("#") and not line.startswith("#!"):
            section = re.sub(r"[^a-z0-9]+", "-", line.lstrip("#").strip().lower()).strip("-")
        if line.strip() == "```python":
            before = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
            skip = SKIP.search(before)
            end = lines.index("```", i + 1)
            n = sum(1 for b in blocks if b[0].startswith(section))
            blocks.append((f"{section}-{n + 1}", "\n".join(lines[i + 1:end]) + "\n", skip.group(1) if skip else None))
            i = end
        i += 1
    return blocks


BLOCKS = readme_blocks()


@pytest.fixture(scope="module")
def example_files(tmp_path_factory):
    """The input files the README's examples open, small and synthetic."""
    d = tmp_path_factory.mktemp("readme-inputs")
    calcium, truth = fluoxr.datasets.calcium_neurons(n_frames=300, shape=(64, 64), n_cells=6, red_fraction=0.5,
                                                     seed=1)
    frames = calcium.values  # (time, channel, y, x)
    green = frames[:, 0]
    tifffile.imwrite(d / "recording.tif", green)
    tifffile.imwrite(d / "recording_1.tif", green[:150])
    tifffile.imwrite(d / "recording_2.tif", green[150:])
    tifffile.imwrite(d / "rec_1.tif", green[:150])
    tifffile.imwrite(d / "rec_2.tif", green[150:])
    tifffile.imwrite(d / "two_channels.tif", frames, imagej=True, metadata={"axes": "TCYX"})
    np.save(d / "stat.npy", np.array(truth.stat, dtype=object), allow_pickle=True)
    blinking, _ = fluoxr.datasets.blinking_emitters(n_frames=600, shape=(32, 32), n_emitters=4, seed=2)
    tifffile.imwrite(d / "blinking.tif", blinking.values)
    sheet, sheet_truth = fluoxr.datasets.oscillating_sheet(n_frames=40, shape=(256, 256), seed=3)  # 2 pyramid levels
    tifffile.imwrite(d / "sheet.tif", sheet.values)
    tifffile.imwrite(d / "mask.tif", np.asarray(sheet_truth.mask, np.uint8))
    return d


def test_the_readme_has_python_blocks_and_few_are_skipped():
    assert len(BLOCKS) >= 8
    skipped = [(name, why) for name, _, why in BLOCKS if why is not None]
    assert len(skipped) <= 2, skipped
    assert all(len(why) > 10 for _, why in skipped), skipped


@pytest.mark.slow  # one interpreter per block
@pytest.mark.parametrize("name, code, skip", BLOCKS, ids=[b[0] for b in BLOCKS])
def test_readme_block_runs_as_a_script(name, code, skip, example_files, tmp_path):
    if skip is not None:
        pytest.skip(skip)
    work = tmp_path / "work"
    shutil.copytree(example_files, work)
    before = {p: os.path.getmtime(work / p) for p in os.listdir(work)}
    (work / "snippet.py").write_text(code)
    env = {**os.environ, "PYTHONPATH": ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""), "MPLBACKEND": "Agg"}
    r = subprocess.run([sys.executable, "snippet.py"], cwd=work, capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, f"README block {name} failed:\n{code}\n{r.stderr[-4000:]}"
    # the examples never write their inputs
    assert {p: os.path.getmtime(work / p) for p in before} == before


def test_the_readme_names_only_files_in_the_repository():
    text = open(README, encoding="utf-8").read()
    for outside in ("../", "DESIGN.md", "/work/", "shared/peers", "fluoxr-peers"):
        assert outside not in text, outside
    named = set(re.findall(r"`((?:benchmarks|tests|notebooks|fluoxr)/[\w./-]*\w)", text))
    named |= set(re.findall(r"`([A-Z]+\.md)`", text))
    assert len(named) > 10
    missing = sorted(p for p in named if not os.path.exists(os.path.join(ROOT, p))
                     and not os.path.exists(os.path.join(ROOT, p + ".py"))
                     and not os.path.exists(os.path.join(ROOT, p + ".ipynb")))
    assert missing == []
