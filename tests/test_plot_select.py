"""Interactive selectors (optimap's select_positions, select_traces, compare_traces(coords=None)),
driven headless by synthetic mouse events on an Agg canvas."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
from matplotlib.backend_bases import MouseButton, MouseEvent

import fluoxr
from fluoxr.plot import PositionSelector, TraceSelector, compare_traces, select_positions, select_traces
from fluoxr.testing import tiny_video


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def click(ax, y, x, button=MouseButton.LEFT):
    """Press (and release) a mouse button over data point (x, y) of ``ax``, as a backend would."""
    canvas = ax.figure.canvas
    canvas.draw()
    px, py = ax.transData.transform((x, y))
    press = MouseEvent("button_press_event", canvas, px, py, button=button)
    canvas.callbacks.process("button_press_event", press)
    canvas.callbacks.process("button_release_event", MouseEvent("button_release_event", canvas, px, py,
                                                                button=button))


def test_select_positions_click_add_right_click_remove():
    img = np.random.default_rng(0).random((20, 30))
    sel = select_positions(img)
    assert isinstance(sel, PositionSelector) and sel.positions.shape == (0, 2)
    seen = []
    sel.on_change(lambda s: seen.append(s.positions.tolist()))
    click(sel.ax, 3.2, 7.8)
    click(sel.ax, 15, 25)
    click(sel.ax, 10, 4)
    np.testing.assert_array_equal(sel.positions, [[3, 8], [15, 25], [10, 4]])  # (y, x) rows, rounded
    assert sel.positions.dtype == np.int64
    click(sel.ax, 14, 24, MouseButton.RIGHT)  # removes the nearest
    np.testing.assert_array_equal(sel.positions, [[3, 8], [10, 4]])
    click(sel.ax, 3, 8)  # clicking a selected pixel again removes it (optimap's clicker)
    np.testing.assert_array_equal(sel.positions, [[10, 4]])
    assert seen[-1] == [[10, 4]] and len(seen) == 5
    # markers drawn where the positions are, numbered with outlined text
    np.testing.assert_array_equal(sel.ax.collections[-1].get_offsets(), [[4, 10]])
    assert [t.get_text() for t in sel.ax.texts] == ["0"]


def test_select_positions_ignores_clicks_elsewhere_and_during_zoom():
    sel = select_positions(np.zeros((10, 10)))
    other = sel.figure.add_axes((0.9, 0.9, 0.05, 0.05))
    click(other, 0.5, 0.5)
    sel.figure.canvas.widgetlock(object())  # the toolbar's zoom holds the canvas
    click(sel.ax, 5, 5)
    assert sel.positions.shape == (0, 2)
    sel.figure.canvas.widgetlock.release(sel.figure.canvas.widgetlock._owner)
    click(sel.ax, 5, 5)
    assert sel.positions.tolist() == [[5, 5]]
    sel.disconnect()
    click(sel.ax, 1, 1)
    assert sel.positions.tolist() == [[5, 5]]


def test_select_positions_float_video_and_display_range():
    video = tiny_video((6, 12, 12))
    sel = select_positions(video, as_integers=False, vmin=0, vmax=10)
    assert sel.ax.images[0].get_clim() == (0, 10)
    np.testing.assert_array_equal(sel.ax.images[0].get_array(), video.isel(time=0).values)
    click(sel.ax, 2.25, 3.75)
    np.testing.assert_allclose(sel.positions, [[2.25, 3.75]], atol=1e-6)


def test_select_traces_live_traces_match_fluoxr_traces():
    video = tiny_video((30, 16, 16), seed=2)
    sel = select_traces(video, size=3, ref_frame=4)
    assert isinstance(sel, TraceSelector) and sel.traces is None
    np.testing.assert_array_equal(sel.ax.images[0].get_array(), video.isel(time=4).values)
    click(sel.ax, 5, 6)
    click(sel.ax, 12, 3)
    want = fluoxr.traces(video, [(5, 6), (12, 3)], size=3).compute()
    np.testing.assert_array_equal(sel.traces.values, want.values)
    lines = sel.trace_ax.get_lines()
    assert len(lines) == 2 and sel.trace_ax.get_xlabel() == "time (s)"
    np.testing.assert_allclose(lines[1].get_ydata(), want.values[1])
    np.testing.assert_allclose(lines[1].get_xdata(), video.time.values)
    click(sel.ax, 5, 6, MouseButton.RIGHT)
    assert sel.positions.tolist() == [[12, 3]] and len(sel.trace_ax.get_lines()) == 1
    np.testing.assert_array_equal(sel.traces.values, want.values[[1]])


def test_select_traces_numpy_is_time_y_x_and_x_axis():
    arr = np.random.default_rng(1).random((25, 9, 9)).astype(np.float32)
    x = np.linspace(0, 1, 25)
    sel = select_traces(arr, size=1, x=x)
    click(sel.ax, 4, 7)
    np.testing.assert_allclose(sel.traces.values[0], arr[:, 4, 7])
    np.testing.assert_allclose(sel.trace_ax.get_lines()[0].get_xdata(), x)
    with pytest.raises(ValueError, match="x and fps"):
        select_traces(arr, x=x, fps=3)
    with pytest.raises(ValueError, match="ref_frame"):
        select_traces(arr, ref_frame=25)
    with pytest.raises(ValueError, match="one channel"):
        select_traces(fluoxr.as_video(np.zeros((4, 2, 5, 5)), dims=("time", "channel", "y", "x")))


def test_compare_traces_interactive_single_position():
    v = tiny_video((20, 10, 10), seed=3)
    sel = compare_traces([v, v * 2], labels=["raw", "double"], size=3)
    assert isinstance(sel, TraceSelector)
    click(sel.ax, 2, 2)
    click(sel.ax, 6, 7)  # one position: each click replaces it (optimap's single point)
    assert sel.positions.tolist() == [[6, 7]]
    raw, double = sel.traces
    np.testing.assert_allclose(double.values, 2 * raw.values, rtol=1e-6)
    a, b = sel.trace_ax.get_lines()
    assert (a.get_label(), b.get_label()) == ("raw", "double")
    legend = sel.trace_ax.get_legend()
    sel.figure.canvas.draw()
    assert legend.get_window_extent().x0 >= sel.trace_ax.get_window_extent().x1 - 1  # outside the data


def test_blocking_returns_positions(monkeypatch):
    """On a desktop backend the call blocks in plt.show and returns the positions when the window closes."""
    shown = []

    def fake_show(block=None):  # the user clicks, then closes the window
        fig = plt.gcf()
        ax = fig.axes[0]
        click(ax, 1, 2)
        click(ax, 3, 4)
        shown.append(block)

    monkeypatch.setattr(plt, "show", fake_show)
    pos = select_positions(np.zeros((8, 8)), block=True)
    assert shown == [True] and pos.tolist() == [[1, 2], [3, 4]]
    traces, pos = select_traces(tiny_video((10, 8, 8)), size=1, block=True)
    assert pos.tolist() == [[1, 2], [3, 4]] and traces.sizes["roi"] == 2
    pos = compare_traces([tiny_video((10, 8, 8))], block=True)
    assert pos.tolist() == [[3, 4]]


@pytest.mark.peer
def test_selected_traces_equal_optimaps_extract_traces():
    """The traces the selector extracts at clicked pixels equal optimap's extract_traces there
    (optimap's coordinates are (x, y): the selector's (y, x) rows reversed)."""
    pytest.importorskip("optimap")
    from optimap.trace import extract_traces

    arr = np.random.default_rng(4).random((40, 24, 20)).astype(np.float32)
    for window in ("rect", "disc", "pixel"):
        for size in (3, 4, 6):
            sel = select_traces(arr, size=size, window=window)
            for y, x in ((5, 6), (0, 19), (23, 0), (12, 10)):
                click(sel.ax, y, x)
            want = extract_traces(arr, [tuple(int(v) for v in p) for p in sel.positions[:, ::-1]], size=size,
                                  window=window)
            np.testing.assert_allclose(sel.traces.values.T, want, rtol=1e-5, atol=1e-6)
            plt.close(sel.figure)


@pytest.mark.peer
def test_optimaps_select_traces_same_clicks_same_result(monkeypatch):
    """optimap's own select_traces, driven by the same clicks, returns the same traces and positions."""
    pytest.importorskip("optimap")
    import optimap.utils
    from optimap.trace import select_traces as optimap_select_traces

    optimap.utils.disable_interactive_backend_switching()
    arr = np.random.default_rng(5).random((30, 16, 18)).astype(np.float32)
    clicks = [(4, 5), (10, 15), (4, 5), (2, 2), (9, 14)]  # the third click removes the first position

    def fake_show(block=None):
        ax = plt.gcf().axes[0]
        for y, x in clicks[:-1]:
            click(ax, y, x)
        click(ax, *clicks[-1], MouseButton.RIGHT)  # removes (10, 15), the nearest

    monkeypatch.setattr(plt, "show", fake_show)
    their_traces, their_coords = optimap_select_traces(arr, size=5)
    ours, pos = select_traces(arr, size=5, block=True)
    np.testing.assert_array_equal(pos[:, ::-1], np.asarray(their_coords))
    np.testing.assert_allclose(ours.values.T, their_traces, rtol=1e-5, atol=1e-6)
