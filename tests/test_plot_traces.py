"""Trace and ROI figures: they draw what they are given."""

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest
import xarray as xr

from fluoxr import ROISet, neuropil_masks
from fluoxr.plot import compare_traces, show_positions, show_rois, show_traces
from fluoxr.testing import tiny_video


def test_show_traces_seconds_frames_and_offsets():
    tr = xr.DataArray(np.arange(20.0).reshape(2, 10), dims=("roi", "time"), attrs={"fps": 5.0})
    fig = show_traces(tr, offset=100, labels=["a", "b"])
    ax = fig.axes[0]
    lines = ax.get_lines()
    assert ax.get_xlabel() == "time (s)" and len(lines) == 2
    np.testing.assert_allclose(lines[1].get_xdata(), np.arange(10) / 5)
    np.testing.assert_allclose(lines[1].get_ydata(), np.arange(10, 20) + 100)
    fig = show_traces(np.arange(5.0))
    assert fig.axes[0].get_xlabel() == "frame"
    assert tr.fluo.plot().axes[0].get_xlabel() == "time (s)"
    with pytest.raises(ValueError, match="labels"):
        show_traces(tr, labels=["a"])
    with pytest.raises(ValueError, match="time"):
        show_traces(tr.rename(time="t"))


def test_compare_traces_one_panel_per_position():
    v = tiny_video((12, 8, 8))
    fig = compare_traces([v, v + 1], [(1, 1), (4, 5), (7, 7)], labels=["raw", "plus one"], size=3)
    assert len(fig.axes) == 3
    a, b = fig.axes[1].get_lines()
    np.testing.assert_allclose(b.get_ydata() - a.get_ydata(), 1, rtol=1e-6)


def test_show_positions_and_rois():
    fig = show_positions(np.array([[2, 3], [5, 1]]), np.zeros((8, 8)))
    np.testing.assert_array_equal(fig.axes[0].collections[0].get_offsets(), [[3, 2], [1, 5]])  # (x, y) on screen
    labels = np.zeros((20, 20), int)
    labels[5:8, 5:8] = 1
    labels[12:15, 3:6] = 2
    rois = ROISet.from_labels(labels)
    fig = show_rois(rois, np.random.default_rng(0).random((20, 20)),
                    neuropil=neuropil_masks(rois, min_neuropil_pixels=20), annotate=True)
    overlay = fig.axes[0].images[-1].get_array()
    assert overlay[6, 6, 3] > 0 and overlay[0, 19, 3] == 0 and len(fig.axes[0].texts) == 2
    with pytest.raises(ValueError, match="frame shape"):
        show_rois(rois, np.zeros((5, 5)))
