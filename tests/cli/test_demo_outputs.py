"""``fluoxr demo`` writes what its summary says and says what it writes (issue 16, item 3; issue 14's demo lines)."""

from __future__ import annotations

import argparse
import importlib.util
import os

import pytest

import fluoxr
from fluoxr.cli import main
from fluoxr.cli.demo import DEMO_FILES, DEMO_MARKER, DemoContext
from fluoxr.cli.run import Runner


def test_a_step_records_only_declared_files_that_exist(tmp_path):
    ctx = DemoContext(out=str(tmp_path), frames=None, runner=Runner(progress=False))
    (tmp_path / "sofi.png").write_bytes(b"png")
    ctx.wrote("sofi.png", "figure")
    assert ctx.written == {"sofi.png": "figure"}
    with pytest.raises(ValueError, match="DEMO_FILES"):
        (tmp_path / "extra.png").write_bytes(b"png")
        ctx.wrote("extra.png", "a file no later run would recognise")
    with pytest.raises(FileNotFoundError, match="sofi.zarr"):
        ctx.wrote("sofi.zarr", "claimed, never written")


@pytest.mark.slow  # the whole demo on short recordings
def test_demo_writes_exactly_what_it_lists(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "-o", str(out), "--frames", "120", "--no-progress"]) == 0
    text = capsys.readouterr().out
    assert "[in-process threads]" in text  # small inputs: no cluster
    listed = text.split("What it wrote in", 1)[1].splitlines()[1:]
    listed = {line.split()[0] for line in listed if line.strip()}
    on_disk = set(os.listdir(out)) - {DEMO_MARKER}
    assert listed == on_disk
    expected = set(DEMO_FILES)
    if importlib.util.find_spec("pynwb") is None:
        expected.discard("calcium_traces.nwb")
    assert on_disk == expected
    # the SOFI results the summary names are all there and open
    corrected = fluoxr.open_result(out / "sofi_bleach_corrected.zarr")
    assert {"cumulants", "moments", "mean_image"} <= set(corrected.data_vars)
    xc2 = fluoxr.open_result(out / "sofi_xc2.zarr").xc2
    assert xc2.sizes["y"] == 2 * 64 - 1
    ome = fluoxr.open_result(out / "sofi.ome.zarr")
    assert set(ome.data_vars) == {"mean_image", "moments", "cumulants"}
    osc = fluoxr.open_result(out / "oscillations.ome.zarr")
    assert set(osc.data_vars) == {"video", "oscillations"} and osc.oscillations.sizes["time"] == 120
    if "calcium_traces.nwb" in on_disk:
        rois = fluoxr.read_nwb_rois(str(out / "calcium_traces.nwb"))
        assert len(rois) == 40


def test_demo_without_pynwb_skips_the_nwb_file_and_says_so(tmp_path, monkeypatch, caplog):
    from fluoxr.cli import demo
    from fluoxr.io import nwb

    def no_pynwb():
        raise ImportError("writing NWB files needs pynwb: pip install 'fluoxr[nwb]'")

    monkeypatch.setattr(nwb, "_require_pynwb", no_pynwb)
    import numpy as np
    import xarray as xr

    ctx = DemoContext(out=str(tmp_path), frames=None, runner=Runner(progress=False))
    traces = xr.Dataset({"F": (("roi", "time"), np.ones((1, 5), np.float32))}, attrs={"fps": 10.0})
    demo._demo_nwb(ctx, traces, fluoxr.ROISet.from_labels(np.eye(3, dtype=int)), None)
    assert ctx.written == {} and "calcium_traces.nwb not written" in caplog.text and "fluoxr[nwb]" in caplog.text
    assert not os.path.exists(tmp_path / "calcium_traces.nwb")
