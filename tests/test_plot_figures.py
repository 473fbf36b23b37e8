"""What a figure must show, checked on the artists: axis labels with units, colorbars named, signed data
on a zero-centred diverging map that covers its minimum, legends outside the data, scale bars in
micrometres when the pixel size is known, the channel named."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import xarray as xr

from fluoxr import ROISet
from fluoxr.plot import (
    DIVERGING_CMAP,
    add_scale_bar,
    compare_traces,
    oscillation_overlay,
    show_images,
    show_orders,
    show_positions,
    show_rois,
    show_traces,
)
from fluoxr.testing import tiny_video


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def scale_bars(ax):
    return [a for a in ax.artists if a.get_gid() == "scale-bar"]


def colorbar_of(ax):
    return ax.images[0].colorbar


def outside(fig, inner, outer):
    """``inner``'s box does not overlap ``outer``'s (after drawing)."""
    fig.canvas.draw()
    a, b = inner.get_window_extent(), outer.get_window_extent()
    return a.x0 >= b.x1 - 1 or a.x1 <= b.x0 + 1 or a.y0 >= b.y1 - 1 or a.y1 <= b.y0 + 1


def test_images_colorbar_named_scale_bar_in_micrometres_and_channel():
    video = xr.DataArray(np.random.default_rng(0).random((2, 16, 24)) * 100, dims=("channel", "y", "x"),
                         coords={"channel": [0, 1]}, name="F", attrs={"units": "photons", "pixel_size": 0.5})
    one = video.sel(channel=1)
    one.attrs = dict(video.attrs)
    fig = show_images([one, np.ones((16, 24))], titles=["calcium: mean", "flat"])
    ax0, ax1 = fig.axes[:2]
    assert ax0.get_title() == "calcium: mean (channel 1)" and ax1.get_title() == "flat"
    assert colorbar_of(ax0).ax.get_ylabel() == "F (photons)"
    assert colorbar_of(ax1).ax.get_ylabel() == "intensity (a.u.)"
    assert scale_bars(ax0)[0].label == "2 µm"  # 24 px * 0.5 µm, a fifth of it rounded down to 1-2-5
    assert scale_bars(ax1)[0].label == "2 px"
    # robust contrast: the percentiles, and the colorbar says that both ends clip
    lo, hi = np.percentile(one.values, (0.5, 99.5))
    np.testing.assert_allclose(ax0.images[0].get_clim(), (lo, hi))
    assert colorbar_of(ax0).extend == "both"
    with pytest.raises(ValueError, match="labels"):
        show_images([one, one], labels=["a"])


def test_bimodal_mean_image_is_not_saturated_at_the_background():
    img = np.full((40, 40), 100.0)
    img[10:30, 10:30] = 2000 + np.random.default_rng(0).normal(0, 5, (20, 20))
    fig = show_images([img])
    vmin, vmax = fig.axes[0].images[0].get_clim()
    assert vmin <= 100 and 2000 < vmax <= img.max()


def test_signed_images_diverging_centred_and_never_clipped():
    rng = np.random.default_rng(1)
    img = rng.normal(size=(20, 20))
    img[5, 5] = -40  # a strongly negative pixel must stay visible
    fig = show_images([img, np.abs(img)])
    signed, unsigned = fig.axes[0].images[0], fig.axes[1].images[0]
    assert signed.get_cmap().name == DIVERGING_CMAP and unsigned.get_cmap().name == "gray"
    assert signed.norm.vmin == -signed.norm.vmax and signed.norm.vmin <= img.min()
    assert signed.norm.vmax >= img.max()
    assert show_images([np.abs(img)], signed=True).axes[0].images[0].norm.vmin < 0


def test_show_orders_keeps_negative_cumulants():
    rng = np.random.default_rng(2)
    stack = xr.DataArray(rng.normal(size=(4, 12, 12)), dims=("order", "y", "x"),
                         coords={"order": [1, 2, 3, 4]}, name="cumulants", attrs={"pixel_size": 0.1})
    stack[2, 4, 4] = -27.0  # order 3, strongly negative
    stack[1] = np.abs(stack[1])
    fig = show_orders(stack, mean_image=np.ones((12, 12)) * 5)
    mean_ax, k2, k3, k4 = fig.axes[:4]
    assert mean_ax.get_title() == "mean image"
    im3 = k3.images[0]
    data3 = im3.get_array()
    assert data3.min() == pytest.approx(-3.0)  # signed cube root of -27, not clipped to 0
    assert im3.get_cmap().name == DIVERGING_CMAP and im3.norm.vmin == -im3.norm.vmax <= data3.min()
    assert k2.images[0].get_cmap().name == "gray"  # order 2 is non-negative here
    assert "root" in colorbar_of(k3).ax.get_ylabel() and "(a.u.)" in colorbar_of(k3).ax.get_ylabel()
    assert scale_bars(k3)[0].label.endswith("µm")
    raw = show_orders(stack, root=False)  # order 1 left out without a mean image
    assert raw.axes[1].images[0].get_array().min() == pytest.approx(-27.0)


def test_scale_bar_contrasts_with_pale_background():
    fig = show_images([np.random.default_rng(0).normal(0, 0.01, (20, 20))])  # signed, white at 0
    bar = scale_bars(fig.axes[0])[0]
    assert bar.get_child().get_children()[1].get_children()[0].get_facecolor()[:3] == (0.0, 0.0, 0.0)
    with pytest.raises(ValueError, match="pixel_size"):
        add_scale_bar(fig.axes[0], pixel_size=-1)


def test_traces_axes_in_seconds_and_units_legend_outside():
    tr = xr.DataArray(np.random.default_rng(3).random((3, 40)), dims=("roi", "time"), coords={"roi": [4, 7, 9]},
                      name="F", attrs={"fps": 20.0, "units": "photons"})
    fig = show_traces(tr, labels=["a", "b", "c"])
    ax = fig.axes[0]
    assert ax.get_xlabel() == "time (s)" and ax.get_ylabel() == "F (photons)"
    assert outside(fig, ax.get_legend(), ax)


def test_offset_traces_name_rows_and_show_an_amplitude_bar():
    tr = xr.DataArray(np.random.default_rng(3).random((3, 40)), dims=("roi", "time"), coords={"roi": [4, 7, 9]},
                      name="dF/F", attrs={"fps": 20.0, "units": "ΔF/F"})
    fig = show_traces(tr, offset=2.0)
    ax = fig.axes[0]
    # no raw values under offsets: the ticks name the rows, at their baselines
    assert [t.get_text() for t in ax.get_yticklabels()] == ["roi 4", "roi 7", "roi 9"]
    np.testing.assert_allclose(ax.get_yticks(), np.median(tr.values, axis=1) + [0, 2, 4])
    bars = [p for p in ax.patches if p.get_gid() == "scale-bar"]
    assert len(bars) == 1 and bars[0].label == "1 ΔF/F" and bars[0].get_height() == 1.0
    assert ax.get_legend() is None and "offset" in ax.get_ylabel()


def test_traces_numpy_is_optimaps_time_by_traces_and_x():
    arr = np.arange(30.0).reshape(10, 3)  # (T, N)
    ax = show_traces(arr, np.linspace(0, 9, 10) * 0.5, ax=plt.subplots()[1])
    lines = ax.get_lines()
    assert len(lines) == 3
    np.testing.assert_allclose(lines[1].get_ydata(), arr[:, 1])
    np.testing.assert_allclose(lines[1].get_xdata(), np.arange(10) * 0.5)
    assert show_traces(arr, fps=2.0).axes[0].get_lines()[0].get_xdata()[-1] == 4.5
    with pytest.raises(ValueError, match="x and fps"):
        show_traces(arr, np.arange(10), fps=2)
    with pytest.raises(ValueError, match="one value per frame"):
        show_traces(arr, np.arange(9))


def test_compare_traces_legend_outside_panels():
    v = tiny_video((12, 8, 8))
    fig = compare_traces([v, v + 1], [(1, 1), (4, 5)], labels=["raw", "plus one"], size=3)
    legend = fig.legends[0]
    assert all(outside(fig, legend, ax) for ax in fig.axes)
    assert fig.axes[-1].get_xlabel() == "time (s)"


def test_positions_vmin_vmax_go_to_the_image_and_ax_is_returned():
    fig, ax = plt.subplots()
    out = show_positions([(1, 2)], np.arange(16.0).reshape(4, 4), vmin=3, vmax=9, ax=ax, annotate=True)
    assert out is ax and ax.images[0].get_clim() == (3, 9)
    assert ax.texts[0].get_path_effects()  # outlined numbers
    assert scale_bars(ax)


def test_rois_numbers_outlined_canvas_tight_and_scale_bar():
    labels = np.zeros((30, 90), int)
    labels[5:9, 5:9] = 1
    labels[20:25, 70:80] = 2
    rois = ROISet.from_labels(labels)
    img = xr.DataArray(np.random.default_rng(0).random((30, 90)), dims=("y", "x"), coords={"channel": 0},
                       attrs={"pixel_size": 2.0})
    fig = show_rois(rois, img, annotate=True)
    ax = fig.axes[0]
    assert all(t.get_path_effects() for t in ax.texts)
    assert ax.get_title() == "ROIs on channel 0"
    assert scale_bars(ax)[0].label == "20 µm"
    assert colorbar_of(ax).ax.get_ylabel() == "intensity (a.u.)"
    # the canvas follows the frame's aspect: the image fills most of the figure's area
    fig.canvas.draw()
    box = ax.get_window_extent()
    w, h = fig.canvas.get_width_height()
    assert box.width * box.height > 0.55 * w * h
    fig2, ax2 = plt.subplots()
    assert show_rois(rois, ax=ax2) is ax2


def test_oscillation_titles_in_seconds_and_scale_bar():
    frames = xr.DataArray(np.ones((2, 6, 6)), dims=("time", "y", "x"),
                          coords={"time": xr.Variable("time", [20.0, 40.0], {"units": "s"})},
                          attrs={"pixel_size": 1.5})
    labels = np.zeros((2, 6, 6), np.int8)
    fig = oscillation_overlay(frames, labels)
    assert [ax.get_title() for ax in fig.axes] == ["t = 20 s", "t = 40 s"]
    assert scale_bars(fig.axes[0])[0].label == "1 µm"
    assert all(outside(fig, fig.legends[0], ax) for ax in fig.axes)
    with pytest.raises(ValueError, match="times"):
        oscillation_overlay(frames, labels, times=[1.0])


def test_show_motion_shifts_in_seconds_and_images_with_scale_bars():
    import fluoxr
    from fluoxr import datasets
    from fluoxr.plot import show_motion

    video, truth = datasets.calcium_neurons(n_frames=30, shape=(40, 40), n_cells=3, motion="rigid", seed=1)
    video = video.assign_attrs(pixel_size=0.5)
    motion = fluoxr.estimate_motion(video, n_reference_frames=10)
    fig = show_motion(motion, video)
    shift_ax = fig.axes[0]
    assert shift_ax.get_xlabel() == "time (s)" and shift_ax.get_ylabel() == "shift (px)"
    # the time axis is in seconds: 30 frames at 30 Hz end before 1 s
    shifts = [line for line in shift_ax.lines if line.get_label() in ("dy", "dx")]
    assert len(shifts) == 2 and max(np.max(line.get_xdata()) for line in shifts) < 1.0
    assert outside(fig, shift_ax.get_legend(), shift_ax)
    titles = [ax.get_title() for ax in fig.axes]
    assert {"reference", "mean before", "mean after"} <= set(titles)
    for ax in fig.axes:
        if ax.get_title() in ("reference", "mean before", "mean after"):
            assert scale_bars(ax)[0].label.endswith("µm")
            assert colorbar_of(ax).ax.get_ylabel().startswith("mean intensity")
    # on a given Axes: only the shifts, and that Axes back; frames when no frame rate is known
    fig2, ax = plt.subplots()
    table = {"dy": truth.motion.shifts.dy.values, "dx": truth.motion.shifts.dx.values}
    assert show_motion(table, ax=ax) is ax and ax.get_xlabel() == "frame"
    np.testing.assert_allclose(ax.lines[0].get_ydata(), table["dy"])


def test_show_motion_nonrigid_blocks_shaded():
    import xarray as xr

    from fluoxr.plot import show_motion

    t = np.arange(20)
    ds = xr.Dataset({"dy": ("time", np.sin(t / 3)), "dx": ("time", np.cos(t / 3)),
                     "dy_block": (("time", "block"), np.sin(t / 3)[:, None] + np.linspace(-1, 1, 4)),
                     "dx_block": (("time", "block"), np.cos(t / 3)[:, None] + np.zeros(4))},
                    attrs={"fps": 5.0})
    fig = show_motion(ds)
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert "dy of blocks (range)" in labels and fig.axes[0].get_xlabel() == "time (s)"
