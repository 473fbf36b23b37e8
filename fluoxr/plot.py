"""Matplotlib figures of fluoxr results, drawn as a methods paper would show them.

Conventions shared by every function here:

- images carry a scale bar (micrometres when the data know their
  ``pixel_size``, else pixels) instead of pixel ticks, and a colorbar named
  after the value and its unit (``name``/``attrs["units"]`` of a DataArray,
  else "intensity (a.u.)");
- contrast is robust (percentiles) for unsigned images, and the colorbar shows
  an arrow at each clipped end; signed images (any negative value, e.g.
  cumulants of odd order) get a diverging colormap centred on 0 with
  ``vmin = -vmax`` covering the data's whole range, never clipped to 0;
- time axes are in seconds when the frame rate is known, else in frames;
- legends sit outside the data; offset traces show a scale bar for their
  amplitude and name each trace on the y axis, never raw values under offsets;
- a DataArray that holds one channel of a multi-channel recording (a scalar
  ``channel`` coordinate) says which in its title.

Functions return the Figure they made, or the Axes they were given (``ax=``,
as optimap does); saving is the caller's, except for :func:`save_png` and
:func:`save_movie`, which write colour-mapped images and movies (pysofi's
``visualization.save_png``/``save_avi``) through :mod:`fluoxr.io.export`,
under the data-safety rules of :func:`fluoxr.save`. The interactive selectors
(:func:`select_positions`, :func:`select_traces`, ``compare_traces(videos)``)
work with any interactive backend (ipympl in notebooks) and with synthetic
mouse events on a headless canvas.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import xarray as xr

logger = logging.getLogger(__name__)

DIVERGING_CMAP = "RdBu_r"  # signed quantities: red positive, blue negative, white 0


def _pyplot() -> Any:
    import matplotlib.pyplot as plt

    return plt


# --------------------------------------------------------------------------------------------
# shared pieces: values, contrast, scale bars, colorbars


def _stroke(width: float = 2.0, colour: str = "black") -> list[Any]:
    """Outline for text drawn over images, so it reads on any fill."""
    from matplotlib import patheffects

    return [patheffects.withStroke(linewidth=width, foreground=colour)]


def _image_of(img: Any, what: str) -> tuple[np.ndarray, dict[str, Any]]:
    """2-D float64 values and what the DataArray says about them (name, units, pixel size, channel)."""
    meta: dict[str, Any] = {}
    if isinstance(img, xr.DataArray):
        meta["name"] = img.name
        meta["units"] = img.attrs.get("units")
        meta["pixel_size"] = img.attrs.get("pixel_size")
        if "channel" in img.coords and img["channel"].ndim == 0:
            meta["channel"] = img["channel"].item()
        img = img.values
    arr = np.asarray(img, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{what} must be 2-D, got shape {arr.shape}")
    return arr, meta


def _value_label(name: Any, units: Any, default: str = "intensity") -> str:
    """'name (units)'; a.u. when the unit is unknown. A video's values (and their means) are intensities."""
    if name == "dff" and not units:
        return "ΔF/F"
    return f"{name if name not in (None, '', 'video') else default} ({units or 'a.u.'})"


def _with_channel(title: str | None, meta: dict[str, Any]) -> str | None:
    """Name the channel when the image is one channel of a multi-channel recording."""
    if "channel" not in meta:
        return title
    if title is None:
        return f"channel {meta['channel']}"
    return title if "channel" in title else f"{title} (channel {meta['channel']})"


def _contrast(img: np.ndarray, percentile: tuple[float, float], signed: bool | None) -> tuple[float, float, str, bool]:
    """(vmin, vmax, colorbar extend, signed) for an image.

    Signed images (auto: any finite value below 0) are centred on 0 and span
    the largest magnitude, so neither end is clipped; unsigned ones span the
    percentiles and say at which end they clip.
    """
    finite = img[np.isfinite(img)]
    if not finite.size:
        return 0.0, 1.0, "neither", bool(signed)
    lo_all, hi_all = float(finite.min()), float(finite.max())
    if signed is None:
        signed = lo_all < 0
    if signed:
        m = max(abs(lo_all), abs(hi_all)) or 1.0
        return -m, m, "neither", True
    lo, hi = (float(p) for p in np.percentile(finite, percentile))
    if hi <= lo:
        lo, hi = lo_all, (hi_all if hi_all > lo_all else lo_all + 1.0)
    extend = {(False, False): "neither", (True, False): "min", (False, True): "max", (True, True): "both"}[
        (lo_all < lo, hi_all > hi)]
    return lo, hi, extend, False


def _nice_length(target: float) -> float:
    """Largest 1, 2 or 5 x 10^k not above ``target`` (> 0)."""
    exp = 10.0 ** math.floor(math.log10(target))
    for m in (5.0, 2.0, 1.0):
        if m * exp <= target * (1 + 1e-9):
            return m * exp
    return exp


def _format_length(value: float, unit: str) -> str:
    return f"{value:g} {unit}"


def add_scale_bar(
    ax: Any,
    *,
    pixel_size: float | None = None,
    width_px: float | None = None,
    fraction: float = 0.2,
    loc: str = "lower right",
    color: str = "white",
) -> Any:
    """Add a horizontal scale bar to an image Axes drawn in pixel coordinates.

    The bar is a round length (1, 2 or 5 x 10^k) close to ``fraction`` of the
    image width, labelled in micrometres when ``pixel_size`` (µm per pixel) is
    known, else in pixels. Bar and label are outlined in black so they read on
    any background.

    Parameters
    ----------
    ax : matplotlib Axes
        Showing an image with ``imshow`` in pixel units.
    pixel_size : float, optional
        Micrometres per pixel.
    width_px : float, optional
        Image width in pixels; default: the Axes' x range.
    fraction : float
        Target length as a fraction of the width.
    loc, color
        Corner (matplotlib's ``loc`` names) and colour.

    Returns
    -------
    matplotlib.offsetbox.AnchoredOffsetbox
        The bar; ``gid`` "scale-bar", attribute ``label`` its text.

    Examples
    --------
    >>> import matplotlib.pyplot as plt, numpy as np
    >>> from fluoxr.plot import add_scale_bar
    >>> fig, ax = plt.subplots()
    >>> _ = ax.imshow(np.zeros((64, 100)))
    >>> add_scale_bar(ax, pixel_size=0.5).label
    '10 µm'
    >>> plt.close(fig)
    """
    from matplotlib.offsetbox import AnchoredOffsetbox, AuxTransformBox, TextArea, VPacker
    from matplotlib.patches import Rectangle

    if pixel_size is not None and not (isinstance(pixel_size, (int, float)) and pixel_size > 0):
        raise ValueError(f"pixel_size must be a positive number (µm per pixel), got {pixel_size!r}")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    if width_px is None:
        x0, x1 = ax.get_xlim()
        width_px = abs(x1 - x0)
    scale, unit = (float(pixel_size), "µm") if pixel_size else (1.0, "px")
    length = _nice_length(fraction * width_px * scale)
    label = _format_length(length, unit)
    outline = "white" if color == "black" else "black"
    bar = AuxTransformBox(ax.transData)
    bar.add_artist(Rectangle((0, 0), length / scale, max(width_px / 80, 0.5), facecolor=color,
                             edgecolor=outline, linewidth=0.6))
    text = TextArea(label, textprops=dict(color=color, fontsize=8, path_effects=_stroke(2.0, outline)))
    box = AnchoredOffsetbox(loc=loc, child=VPacker(children=[text, bar], align="center", pad=0, sep=2),
                            pad=0.3, borderpad=0.4, frameon=False)
    box.set_gid("scale-bar")
    box.label = label
    ax.add_artist(box)
    return box


def _bar_colour(im: Any, img: np.ndarray) -> str:
    """White scale bar on a dark lower-right corner, black on a pale one (e.g. 0 of a diverging map)."""
    ly, lx = img.shape
    corner = img[ly - max(ly // 6, 1):, lx - max(lx // 3, 1):]
    corner = corner[np.isfinite(corner)]
    if not corner.size:
        return "white"
    r, g, b, _ = im.cmap(im.norm(float(np.median(corner))))
    return "black" if 0.299 * r + 0.587 * g + 0.114 * b > 0.5 else "white"


def _colorbar(fig: Any, mappable: Any, ax: Any, label: str, extend: str) -> Any:
    cb = fig.colorbar(mappable, ax=ax, fraction=0.046, pad=0.03, extend=extend)
    cb.set_label(label, fontsize=8)
    cb.ax.tick_params(labelsize=7)
    return cb


def _draw_image(
    ax: Any,
    img: np.ndarray,
    *,
    cmap: str | None,
    percentile: tuple[float, float],
    signed: bool | None,
    pixel_size: float | None,
    colorbar_label: str | None,
    scale_bar: bool = True,
) -> Any:
    """imshow with the shared contrast rules, a scale bar and (label given) a colorbar."""
    lo, hi, extend, is_signed = _contrast(img, percentile, signed)
    im = ax.imshow(img, cmap=cmap or (DIVERGING_CMAP if is_signed else "gray"), vmin=lo, vmax=hi,
                   interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    if scale_bar:
        add_scale_bar(ax, pixel_size=pixel_size, width_px=img.shape[1], color=_bar_colour(im, img))
    if colorbar_label is not None:
        _colorbar(ax.figure, im, ax, colorbar_label, extend)
    return im


def show_images(
    images: Sequence[Any],
    *,
    titles: Sequence[str] | None = None,
    ncols: int | None = None,
    cmap: str | None = None,
    percentile: tuple[float, float] = (0.5, 99.5),
    size: float = 3.0,
    pixel_size: float | None = None,
    labels: str | Sequence[str] | None = None,
    signed: bool | None = None,
    colorbar: bool = True,
    scale_bar: bool = True,
) -> Any:
    """Show 2-D images side by side, each with its own contrast, colorbar and scale bar.

    Lazy DataArrays are computed here (each image is small).

    Parameters
    ----------
    images : sequence of 2-D arrays or DataArrays
    titles : sequence of str, optional
        One per image; default the DataArray's name. A DataArray that is one
        channel of a recording (scalar ``channel`` coord) gets "(channel c)".
    ncols : int, optional
        Panels per row (default all in one row).
    cmap : str, optional
        Default "gray", and :data:`DIVERGING_CMAP` for signed images.
    percentile : (low, high)
        Contrast range of unsigned images (robust to hot pixels and to a
        bright specimen on a dark background); the colorbar marks clipping.
    size : float
        Panel height in inches.
    pixel_size : float, optional
        µm per pixel for the scale bars; default each DataArray's
        ``attrs["pixel_size"]``, else the bar is in pixels.
    labels : str or sequence of str, optional
        Colorbar labels; default "name (units)" of each DataArray, else
        "intensity (a.u.)".
    signed : bool, optional
        Force (or forbid) the diverging, zero-centred display; default: an
        image with any negative value is signed.
    colorbar, scale_bar : bool

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr.plot import show_images
    >>> fig = show_images([np.eye(4), np.ones((4, 4))], titles=["a", "b"])
    >>> [ax.get_title() for ax in fig.axes[:2]], fig.axes[2].get_ylabel()
    (['a', 'b'], 'intensity (a.u.)')
    """
    plt = _pyplot()
    images = list(images)
    n = len(images)
    if n == 0:
        raise ValueError("images must hold at least one image")
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles must have one entry per image ({n}), got {len(titles)}")
    if labels is not None and not isinstance(labels, str) and len(labels) != n:
        raise ValueError(f"labels must be one string or one per image ({n}), got {len(labels)}")
    arrays = [_image_of(img, f"images[{i}]") for i, img in enumerate(images)]
    ncols = min(n, ncols or n)
    nrows = int(np.ceil(n / ncols))
    aspect = max(a.shape[1] / a.shape[0] for a, _ in arrays)
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * aspect * ncols * (1.3 if colorbar else 1.0),
                                                    size * nrows + 0.3), squeeze=False, layout="constrained")
    for i, ax in enumerate(axes.ravel()):
        if i >= n:
            ax.set_axis_off()
            continue
        img, meta = arrays[i]
        title = _with_channel(titles[i] if titles is not None else (str(meta["name"]) if meta.get("name") is not None
                                                                     else None), meta)
        label = labels if isinstance(labels, str) else (labels[i] if labels is not None else
                                                       _value_label(meta.get("name"), meta.get("units")))
        _draw_image(ax, img, cmap=cmap, percentile=percentile, signed=signed,
                    pixel_size=pixel_size if pixel_size is not None else meta.get("pixel_size"),
                    colorbar_label=label if colorbar else None, scale_bar=scale_bar)
        if title:
            ax.set_title(title, fontsize=9)
    return fig


# --------------------------------------------------------------------------------------------
# traces and ROIs


def _axes(ax: Any, figsize: tuple[float, float]) -> tuple[Any, Any]:
    if ax is None:
        fig, ax = _pyplot().subplots(figsize=figsize, layout="constrained")
        return fig, ax
    return ax.figure, ax


def _time_axis(tr: xr.DataArray, fps: float | None) -> tuple[np.ndarray, str]:
    n = tr.sizes["time"]
    if fps is None:
        fps = tr.attrs.get("fps")
        if fps is None and "time" in tr.coords and tr["time"].attrs.get("units") == "s":
            return np.asarray(tr["time"].values, np.float64), "time (s)"
    if fps:
        return np.arange(n) / float(fps), "time (s)"
    return np.arange(n, dtype=np.float64), "frame"


def _as_traces(traces: Any) -> xr.DataArray:
    """Traces as a ``(..., "time")`` DataArray: DataArrays by their dims, NumPy as optimap's ``(T, N)``."""
    if isinstance(traces, xr.DataArray):
        if "time" not in traces.dims:
            raise ValueError(f"traces must have a 'time' dim, got dims {traces.dims}")
        return traces.transpose(..., "time")
    arr = np.asarray(traces)
    if arr.ndim not in (1, 2):
        raise ValueError(f"traces must be 1-D or optimap's (n_frames, n_traces), got shape {arr.shape}")
    return xr.DataArray(arr.T if arr.ndim == 2 else arr, dims=("roi", "time")[2 - arr.ndim:])


def _trace_names(tr: xr.DataArray, n: int) -> list[str]:
    """Default names of the rows: the values of the non-time dim (e.g. 'roi 3')."""
    others = [d for d in tr.dims if d != "time"]
    if len(others) == 1 and others[0] in tr.coords:
        return [f"{others[0]} {v}" for v in tr[others[0]].values.tolist()]
    return [str(i) for i in range(n)]


def _offset_scale_bar(ax: Any, base: float, step: float, unit: str) -> Any:
    """Vertical amplitude bar beside offset traces (their raw values are not on the axis)."""
    from matplotlib.patches import Rectangle
    from matplotlib.transforms import blended_transform_factory

    length = _nice_length(abs(step) * 0.5)
    trans = blended_transform_factory(ax.transAxes, ax.transData)
    bar = Rectangle((1.01, base), 0.006, length, transform=trans, clip_on=False, facecolor="black",
                    edgecolor="none", gid="scale-bar")
    ax.add_patch(bar)
    label = _format_length(length, unit)
    ax.text(1.025, base + length / 2, label, transform=trans, va="center", ha="left", fontsize=8,
            gid="scale-bar-label", clip_on=False)
    bar.label = label
    return bar


def show_traces(
    traces: Any,
    x: Any = None,
    *,
    fps: float | None = None,
    labels: Sequence[str] | None = None,
    colors: Sequence[Any] | None = None,
    offset: float = 0.0,
    xlabel: str | None = None,
    ylabel: str | None = None,
    ax: Any = None,
    **kwargs: Any,
) -> Any:
    """Plot traces against time (seconds when the frame rate is known, else frames).

    Parameters
    ----------
    traces : DataArray or array
        A DataArray goes by its dim names: ``"time"`` is the x axis and the
        other dim (e.g. ``"roi"``) indexes the traces. A NumPy array is
        optimap's layout: 1-D ``(n_frames,)`` or ``(n_frames, n_traces)``
        (so ``fluoxr.traces(...)`` as NumPy is ``result.T.values``). Lazy
        traces are computed here.
    x : 1-D array, optional
        x values (optimap's ``x``), one per frame; excludes ``fps``.
    fps : float, optional
        Frame rate; default ``traces.attrs["fps"]`` or the ``time`` coord.
    labels, colors : sequence, optional
        One per trace. Without ``offset``, labels make a legend outside the data.
    offset : float
        Vertical shift between consecutive traces (0: overlaid). With an
        offset the y axis names each trace at its baseline instead of showing
        raw values, and a scale bar gives the amplitude in the traces' unit.
    xlabel, ylabel : str, optional
        Axis labels; default time (s) / frame, and "name (units)" of the
        DataArray (``attrs["units"]``, else a.u.).
    ax : matplotlib Axes, optional
        Draw there and return it (as optimap does).
    **kwargs
        Passed to ``Axes.plot``.

    Returns
    -------
    matplotlib.figure.Figure, or ``ax`` when given

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from fluoxr.plot import show_traces
    >>> tr = xr.DataArray(np.random.default_rng(0).random((3, 50)), dims=("roi", "time"), attrs={"fps": 10})
    >>> fig = show_traces(tr, labels=["a", "b", "c"])
    >>> fig.axes[0].get_xlabel()
    'time (s)'
    >>> show_traces(np.zeros((50, 2)), np.linspace(0, 1, 50), ax=fig.axes[0]) is fig.axes[0]
    True
    """
    tr = _as_traces(traces)
    n_t = tr.sizes["time"]
    if x is not None:
        if fps is not None:
            raise ValueError("x and fps cannot both be given (x are the x values, fps makes them seconds)")
        xv = np.asarray(x.values if isinstance(x, xr.DataArray) else x, dtype=np.float64)
        if xv.shape != (n_t,):
            raise ValueError(f"x must be 1-D with one value per frame ({n_t}), got shape {xv.shape}")
        default_xlabel = (_value_label(x.name, x.attrs.get("units"), "x") if isinstance(x, xr.DataArray)
                          and x.name is not None else "")
    else:
        xv, default_xlabel = _time_axis(tr, fps)
    values = np.asarray(tr.values, np.float64).reshape(-1, n_t)
    n = values.shape[0]
    if labels is not None and len(labels) != n:
        raise ValueError(f"labels must have one entry per trace ({n}), got {len(labels)}")
    if colors is not None and len(colors) != n:
        raise ValueError(f"colors must have one entry per trace ({n}), got {len(colors)}")
    given = ax is not None
    fig, ax = _axes(ax, (8, 3 if not offset else max(3.0, 0.5 * n + 1)))
    lines = []
    for i in range(n):
        kw = dict(kwargs)
        if colors is not None:
            kw["color"] = colors[i]
        if labels is not None:
            kw["label"] = labels[i]
        lines += ax.plot(xv, values[i] + i * offset, **kw)
    if n and xv.size:
        ax.set_xlim(xv[0], xv[-1] if xv[-1] > xv[0] else xv[0] + 1)
    ax.set_xlabel(default_xlabel if xlabel is None else xlabel)
    value_label = _value_label(tr.name, tr.attrs.get("units"))
    if offset and n:
        # raw values would be wrong under offsets: name each trace at its baseline, and give a scale bar
        bases = [float(np.nanmedian(values[i])) + i * offset if np.isfinite(values[i]).any() else i * offset
                 for i in range(n)]
        names = list(labels) if labels is not None else _trace_names(tr, n)
        ax.set_yticks(bases, names, fontsize=8)
        for tick, line in zip(ax.get_yticklabels(), lines):
            tick.set_color(line.get_color())
        ax.tick_params(axis="y", length=0)
        ax.spines["left"].set_visible(False)
        ax.set_ylabel(ylabel if ylabel is not None else f"{tr.name if tr.name is not None else 'intensity'}, "
                                                         "offset per trace")
        _offset_scale_bar(ax, bases[0], offset, tr.attrs.get("units") or ("ΔF/F" if tr.name == "dff" else "a.u."))
    else:
        ax.set_ylabel(value_label if ylabel is None else ylabel)
        if labels is not None:
            ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, frameon=False)
    ax.spines["top"].set_visible(False)
    ax.spines["right"].set_visible(False)
    return ax if given else fig


def _check_x_fps(fps: float | None, x: Any) -> None:
    """optimap's x and fps exclude each other."""
    if x is not None and fps is not None:
        raise ValueError("x and fps cannot both be given (x are the x values, fps makes them seconds)")


def compare_traces(
    videos: Sequence[Any],
    positions: Any = None,
    *,
    labels: Sequence[str] | None = None,
    size: int = 5,
    window: str | None = None,
    fps: float | None = None,
    x: Any = None,
    colors: Sequence[Any] | None = None,
    ref_frame: int = 0,
    block: bool | None = None,
) -> Any:
    """Traces of several videos at the same positions, one panel per position (optimap's ``compare_traces``).

    With ``positions`` every trace is computed in one ``dask.compute`` call
    (each video read once). Without them (optimap's ``coords=None``) a window
    shows ``videos[0]`` at ``ref_frame``: a click picks the position and the
    traces of every video there are drawn beside it; see :func:`select_traces`
    for blocking and the returned selector.

    Parameters
    ----------
    videos : sequence of videos
        Same frame shape (e.g. raw, filtered, motion-corrected); NumPy arrays
        are ``(time, y, x)``.
    positions : array-like ``(n, 2)``, optional
        ``(y, x)`` rows (optimap's coordinates are ``(x, y)``: pass
        ``coords[:, ::-1]``).
    labels : sequence of str, optional
        One per video (a legend above the panels, outside the data).
    size, window
        As :func:`fluoxr.traces`.
    fps, x
        As :func:`show_traces`.
    ref_frame, block
        Interactive mode only (as :func:`select_traces`).

    Returns
    -------
    matplotlib.figure.Figure, or in interactive mode what :func:`select_traces` returns

    Examples
    --------
    >>> from fluoxr.testing import tiny_video
    >>> from fluoxr.plot import compare_traces
    >>> v = tiny_video((20, 8, 8))
    >>> fig = compare_traces([v, v * 2], [(2, 2), (5, 5)], labels=["raw", "double"])
    >>> len(fig.axes)
    2
    """
    import dask

    from .extraction import traces as _traces

    videos = [_as_plot_video(v, f"videos[{i}]") for i, v in enumerate(videos)]
    if not videos:
        raise ValueError("videos must hold at least one video")
    if labels is not None and len(labels) != len(videos):
        raise ValueError(f"labels must have one entry per video ({len(videos)}), got {len(labels)}")
    if colors is not None and len(colors) != len(videos):
        raise ValueError(f"colors must have one entry per video ({len(videos)}), got {len(colors)}")
    _check_x_fps(fps, x)
    if positions is None:
        return _interactive_traces(videos, size=size, window=window, ref_frame=ref_frame, fps=fps, x=x,
                                   labels=labels, colors=colors, single=True, block=block)
    lazy = [_traces(v, positions, size=size, window=window) for v in videos]
    computed = dask.compute(*lazy)
    n_pos = computed[0].sizes["roi"]
    plt = _pyplot()
    fig, axes = plt.subplots(n_pos, 1, sharex=True, figsize=(6, 1.8 * n_pos + 0.8), squeeze=False,
                             layout="constrained")
    for i in range(n_pos):
        ax = axes[i, 0]
        for j, tr in enumerate(computed):
            kw: dict[str, Any] = {}
            if colors is not None:
                kw["color"] = colors[j]
            if labels is not None:
                kw["label"] = labels[j]
            show_traces(tr.isel(roi=i), x, fps=fps, ax=ax, **kw)
        y, xx = float(computed[0]["y"][i]), float(computed[0]["x"][i])
        ax.set_title(f"(y={y:g}, x={xx:g})", fontsize=9)
        if i < n_pos - 1:
            ax.set_xlabel("")
    if labels is not None:
        handles, names = axes[0, 0].get_legend_handles_labels()
        fig.legend(handles, names, loc="outside upper center", ncols=len(labels), fontsize=8, frameon=False)
    return fig


def show_positions(
    positions: Any,
    image: Any = None,
    *,
    size: float | None = None,
    color: Any = None,
    cmap: str = "gray",
    vmin: float | None = None,
    vmax: float | None = None,
    annotate: bool = False,
    pixel_size: float | None = None,
    ax: Any = None,
    **kwargs: Any,
) -> Any:
    """Mark ``(y, x)`` positions, optionally on an image (optimap's ``show_positions``).

    optimap scatters ``pos[0]`` as x; fluoxr positions are ``(y, x)`` rows.

    Parameters
    ----------
    positions : array-like ``(n, 2)``
        ``(y, x)`` rows.
    image : 2-D array or DataArray, optional
        Background, shown with ``cmap`` and ``vmin``/``vmax`` (default: its
        0.5 and 99.5 percentiles) and a scale bar (µm with ``pixel_size`` or
        the DataArray's ``attrs["pixel_size"]``, else px).
    size, color
        Marker size and colour (``Axes.scatter``'s ``s`` and ``c``).
    annotate : bool
        Number the positions (outlined text, readable on any background).
    ax : matplotlib Axes, optional
        Draw there and return it.
    **kwargs
        Passed to ``Axes.scatter``.

    Returns
    -------
    matplotlib.figure.Figure, or ``ax`` when given

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr.plot import show_positions
    >>> fig = show_positions([(2, 3), (5, 1)], np.zeros((8, 8)), annotate=True, vmin=0, vmax=2)
    >>> len(fig.axes[0].collections), fig.axes[0].images[0].get_clim()
    (1, (0.0, 2.0))
    """
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim == 1 and pos.size == 2:
        pos = pos[None]
    if pos.ndim != 2 or pos.shape[1] != 2:
        raise ValueError(f"positions must be (n, 2) rows of (y, x), got shape {pos.shape}")
    given = ax is not None
    fig, ax = _axes(ax, (4, 4))
    if image is not None:
        img, meta = _image_of(image, "image")
        lo, hi, _, _ = _contrast(img, (0.5, 99.5), False)
        ax.imshow(img, cmap=cmap, vmin=lo if vmin is None else vmin, vmax=hi if vmax is None else vmax,
                  interpolation="nearest")
        ax.set_axis_off()
        add_scale_bar(ax, pixel_size=pixel_size if pixel_size is not None else meta.get("pixel_size"),
                      width_px=img.shape[1])
        title = _with_channel(None, meta)
        if title:
            ax.set_title(title, fontsize=9)
    ax.scatter(pos[:, 1], pos[:, 0], s=size, c=color, **kwargs)
    if annotate:
        for i, (y, x) in enumerate(pos):
            ax.annotate(str(i), (x, y), color="white", fontsize=8, xytext=(3, 3), textcoords="offset points",
                        path_effects=_stroke())
    if image is None:
        ax.invert_yaxis()
        ax.set_aspect("equal")
        ax.set_xlabel("x (px)")
        ax.set_ylabel("y (px)")
    return ax if given else fig


def show_rois(
    rois: Any,
    image: Any = None,
    *,
    neuropil: Any = None,
    alpha: float = 0.45,
    cmap: str = "gray",
    annotate: bool = False,
    seed: int = 0,
    pixel_size: float | None = None,
    colorbar: bool = True,
    ax: Any = None,
) -> Any:
    """ROIs as coloured regions over an image (e.g. the mean image), neuropil optionally in grey.

    Parameters
    ----------
    rois : ROISet
        Planar ROIs.
    image : 2-D array or DataArray, optional
        Background (lazy DataArrays are computed); its shape must be the ROIs'
        frame shape. Robust contrast, a colorbar (``colorbar``) and a scale bar.
    neuropil : ROISet, optional
        Neuropil regions (e.g. :func:`fluoxr.neuropil_masks`), drawn in grey under the cells.
    annotate : bool
        Write each ROI's index at its centroid (white with a black outline:
        readable on pale and dark fills alike).
    pixel_size : float, optional
        µm per pixel for the scale bar; default the image's ``attrs["pixel_size"]``.
    ax : matplotlib Axes, optional
        Draw there and return it. A new figure takes the frame's aspect ratio,
        so the canvas has no empty margins.

    Returns
    -------
    matplotlib.figure.Figure, or ``ax`` when given

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr import ROISet
    >>> from fluoxr.plot import show_rois
    >>> rois = ROISet.from_labels(np.array([[1, 1, 0], [0, 2, 2]]))
    >>> fig = show_rois(rois, np.ones((2, 3)), annotate=True)
    >>> len(fig.axes[0].images)
    2
    """
    from .rois import as_roiset

    rois = as_roiset(rois)
    if rois.ndim != 2:
        raise ValueError(f"rois must be planar (frame shape (Ly, Lx)), got frame shape {rois.shape}")
    given = ax is not None
    ly, lx = rois.shape
    if ax is None:
        height = 5.0
        width = height * lx / ly + (0.9 if image is not None and colorbar else 0.0)
        fig, ax = _pyplot().subplots(figsize=(width, height + 0.2), layout="constrained")
    fig = ax.figure
    meta: dict[str, Any] = {}
    if image is not None:
        img, meta = _image_of(image, "image")
        if img.shape != rois.shape:
            raise ValueError(f"image must have the ROIs' frame shape {rois.shape}, got {img.shape}")
        _draw_image(ax, img, cmap=cmap, percentile=(0.5, 99.5), signed=False, pixel_size=None,
                    colorbar_label=_value_label(meta.get("name"), meta.get("units")) if colorbar else None,
                    scale_bar=False)
    rgba = np.zeros(rois.shape + (4,))
    if neuropil is not None:
        neuropil = as_roiset(neuropil, "neuropil")
        if neuropil.shape != rois.shape:
            raise ValueError(f"neuropil must have the ROIs' frame shape {rois.shape}, got {neuropil.shape}")
        rgba[neuropil.y, neuropil.x] = (0.6, 0.6, 0.6, alpha * 0.5)
    colours = np.random.default_rng(seed).uniform(0.2, 1.0, (len(rois), 3))
    rgba[rois.y, rois.x, :3] = colours[rois.roi]
    rgba[rois.y, rois.x, 3] = alpha
    ax.imshow(rgba, interpolation="nearest")
    if annotate:
        for i, (y, x) in enumerate(rois.centroids()):
            ax.text(x, y, str(i), color="white", fontsize=7, ha="center", va="center", path_effects=_stroke(1.8))
    ax.set_xlim(-0.5, lx - 0.5)
    ax.set_ylim(ly - 0.5, -0.5)
    ax.set_xticks([])
    ax.set_yticks([])
    for spine in ax.spines.values():
        spine.set_visible(False)
    add_scale_bar(ax, pixel_size=pixel_size if pixel_size is not None else meta.get("pixel_size"), width_px=lx)
    title = _with_channel(None, meta)
    if title:
        ax.set_title(f"ROIs on {title}", fontsize=9)
    return ax if given else fig


def show_orders(
    stack: xr.DataArray,
    *,
    mean_image: Any = None,
    root: bool = True,
    label: str | None = None,
    **kwargs: Any,
) -> Any:
    """SOFI images of several orders side by side (one panel per ``order``), signed where the data are.

    With ``root`` order ``n`` is shown as ``sign(x) |x|^(1/n)`` (the usual SOFI
    display, brightness linear in the emitters' brightness, with the sign
    kept): cumulants of orders above 2 can be negative (at the emitters or in
    the noise), and a panel with any negative value gets a diverging colormap
    centred on 0 that spans its whole range, so nothing is clipped. Order 1
    (zero by definition for central moments and cumulants) is replaced by
    ``mean_image`` when given, else left out. Other keywords go to
    :func:`show_images`.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from fluoxr.plot import show_orders
    >>> stack = xr.DataArray(np.random.default_rng(0).normal(size=(3, 5, 5)), dims=("order", "y", "x"),
    ...                      coords={"order": [2, 3, 4]}, name="cumulants")
    >>> fig = show_orders(stack)
    >>> im = fig.axes[1].images[0]
    >>> im.get_cmap().name, im.norm.vmin == -im.norm.vmax
    ('RdBu_r', True)
    """
    if not isinstance(stack, xr.DataArray) or "order" not in stack.dims:
        raise ValueError("stack must be a DataArray with an 'order' dim (e.g. fluoxr.cumulants(...))")
    stack = stack.compute()
    name = label or str(stack.name or "order")
    images, titles, labels = [], [], []
    if mean_image is None and "mean_image" in stack.coords:
        mean_image = stack.coords["mean_image"]
    units = stack.attrs.get("units") or "a.u."
    for order in stack.order.values.tolist():
        if order == 1:
            if mean_image is not None:
                img, _ = _image_of(mean_image, "mean_image")
                images.append(img)
                titles.append("mean image")
                labels.append(f"mean intensity ({units})")
            continue
        img = np.asarray(stack.sel(order=order).values, dtype=np.float64)
        if root:
            img = np.sign(img) * np.abs(img) ** (1.0 / order)
            titles.append(f"{name} {order} (signed ^1/{order})")
            labels.append(f"signed {order}th root ({units})" if order > 3 else
                          f"signed {'square' if order == 2 else 'cube'} root ({units})")
        else:
            titles.append(f"{name} {order}")
            labels.append(f"{name} {order} ({units}^{order})")
        images.append(img)
    if "pixel_size" in stack.attrs:
        kwargs.setdefault("pixel_size", stack.attrs["pixel_size"])
    return show_images(images, titles=titles, labels=labels, **kwargs)


# --------------------------------------------------------------------------------------------
# motion correction


def _check_motion(motion: Any) -> xr.Dataset:
    """A motion Dataset (``dy``, ``dx`` along time); a DataFrame or mapping of ``dy``, ``dx`` is wrapped."""
    if isinstance(motion, xr.Dataset):
        ds = motion
    elif hasattr(motion, "columns") or isinstance(motion, dict):
        cols = motion.columns if hasattr(motion, "columns") else motion.keys()
        if not {"dy", "dx"} <= set(cols):
            raise ValueError(f"motion must have dy and dx, got {sorted(map(str, cols))}")
        ds = xr.Dataset({k: ("time", np.asarray(motion[k], np.float64)) for k in ("dy", "dx")})
    else:
        raise TypeError(f"motion must be an xarray.Dataset with dy and dx along time (fluoxr.estimate_motion, "
                        f"estimate_drift, truth.motion.shifts) or a table of them, got {type(motion).__name__}")
    missing = [k for k in ("dy", "dx") if k not in ds or ds[k].dims != ("time",)]
    if missing:
        raise ValueError(f"motion must have {missing} as variables along 'time', got variables {list(ds.data_vars)}")
    return ds


def show_motion(
    motion: Any,
    video: Any = None,
    *,
    ax: Any = None,
    fps: float | None = None,
    channel: int = 0,
    size: float = 2.6,
    percentile: tuple[float, float] = (0.5, 99.5),
) -> Any:
    """Motion of a recording: shifts over time, the reference, the mean image before and after registration.

    The top panel shows ``dy`` and ``dx`` in pixels over time (seconds when
    the frame rate is known, else frames), with the range of nonrigid block
    shifts (``dy_block``, ``dx_block``) shaded when present; below, the
    ``reference`` image (when ``motion`` holds one) and, with ``video``, its
    mean image before and after :func:`fluoxr.apply_motion` (a sharper mean
    after is what registration is for), each with a scale bar and a named
    colorbar. The two means are computed together, in one read of ``video``
    and of its registered view.

    Parameters
    ----------
    motion : xarray.Dataset or table
        :func:`fluoxr.estimate_motion`, :func:`fluoxr.estimate_drift` or
        :func:`fluoxr.register` results, a saved one, ``truth.motion.shifts``
        of a synthetic recording, or a DataFrame/mapping of ``dy``, ``dx``.
    video : xarray.DataArray, optional
        The recording the motion belongs to (multi-channel: ``channel`` is shown).
    ax : matplotlib Axes, optional
        Draw only the shifts, on this Axes, and return it.
    fps : float, optional
        Frame rate, when neither ``motion`` nor ``video`` knows it.
    channel : int
        Channel shown for a multi-channel ``video``.
    size, percentile
        Image panel height (inches) and the contrast of the images.

    Returns
    -------
    matplotlib.figure.Figure, or ``ax`` when given

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from fluoxr.plot import show_motion
    >>> motion = xr.Dataset({"dy": ("time", np.sin(np.arange(50) / 5)), "dx": ("time", np.zeros(50))},
    ...                     attrs={"fps": 10.0})
    >>> fig = show_motion(motion)
    >>> fig.axes[0].get_xlabel(), fig.axes[0].get_ylabel()
    ('time (s)', 'shift (px)')
    """
    ds = _check_motion(motion)
    if fps is None:
        fps = ds.attrs.get("fps") or (video.attrs.get("fps") if isinstance(video, xr.DataArray) else None)
    if video is not None:
        video = _as_plot_video(video, "video")
        if video.sizes["time"] != ds.sizes["time"]:
            raise ValueError(f"video has {video.sizes['time']} frames but motion has {ds.sizes['time']} shifts")
    images: list[tuple[str, Any]] = []
    if ax is None:
        if "reference" in ds:
            images.append(("reference", ds["reference"]))
        if video is not None:
            images += _before_after_means(ds, video, channel)
    n_img = len(images)
    plt = _pyplot()
    if ax is None and n_img == 1:
        # the reference alone: beside the shifts, not under them in a row of its own with empty space around it
        fig = plt.figure(figsize=(6.0 + size * 1.35, max(size + 0.4, 2.8)), layout="constrained")
        grid = fig.add_gridspec(1, 2, width_ratios=[6.0, size * 1.35])
        shift_ax = fig.add_subplot(grid[0, 0])
        slots = [grid[0, 1]]
    elif ax is None:
        ncols = max(n_img, 1)
        fig = plt.figure(figsize=(max(size * 1.35 * ncols, 6.0), 2.4 + (size + 0.4 if n_img else 0)),
                         layout="constrained")
        grid = fig.add_gridspec(2 if n_img else 1, ncols, height_ratios=[2.4, size + 0.4] if n_img else None)
        shift_ax = fig.add_subplot(grid[0, :])
        slots = [grid[1, i] for i in range(n_img)]
    else:
        fig, shift_ax = ax.figure, ax
    t, xlabel = _time_axis(ds["dy"].assign_attrs(fps=fps) if fps else ds["dy"], fps)
    for name, colour in (("dy", "tab:blue"), ("dx", "tab:orange")):
        shift_ax.plot(t, np.asarray(ds[name].values, np.float64), color=colour, lw=1.0, label=name)
        block = f"{name}_block"
        if block in ds and "time" in ds[block].dims and ds[block].ndim == 2:
            b = np.asarray(ds[block].transpose("time", ...).values, np.float64)
            shift_ax.fill_between(t, b.min(1), b.max(1), color=colour, alpha=0.2, lw=0,
                                  label=f"{name} of blocks (range)")
    shift_ax.axhline(0.0, color="0.6", lw=0.6, zorder=0)
    shift_ax.set_xlabel(xlabel)
    shift_ax.set_ylabel("shift (px)")
    shift_ax.set_title("displacement of the content (registration moves it back)", fontsize=9, loc="left")
    # above the axes, right of the title: a legend beside the axes would widen the last image column under
    # constrained layout and push that image's colorbar away from it
    shift_ax.legend(loc="lower right", bbox_to_anchor=(1.0, 1.0), ncols=4, fontsize=7, frameon=False,
                    borderaxespad=0.1)
    if ax is not None:
        return ax
    pixel_size = video.attrs.get("pixel_size") if video is not None else None
    for i, (title, img) in enumerate(images):
        iax = fig.add_subplot(slots[i])
        arr, meta = _image_of(img, title)
        _draw_image(iax, arr, cmap=None, percentile=percentile, signed=False,
                    pixel_size=pixel_size or meta.get("pixel_size"),
                    colorbar_label=f"mean intensity ({meta.get('units') or 'a.u.'})")
        iax.set_title(title, fontsize=9)
    return fig


def _before_after_means(ds: xr.Dataset, video: xr.DataArray, channel: int) -> list[tuple[str, Any]]:
    import dask

    from . import apply_motion

    registered = apply_motion(video, ds)
    suffix = ""
    if "channel" in video.dims:
        video, registered = video.isel(channel=channel), registered.isel(channel=channel)
        suffix = f" (channel {video['channel'].item()})"
    before, after = dask.compute(video.mean("time"), registered.mean("time"))
    return [("mean before" + suffix, before), ("mean after" + suffix, after)]


# -- interactive selection (optimap's select_positions, select_traces, compare_traces(coords=None)) ------


def _as_plot_video(video: Any, what: str) -> xr.DataArray:
    """A DataArray video; NumPy arrays are ``(time, y, x)`` as optimap's."""
    if isinstance(video, xr.DataArray):
        return video
    arr = np.asarray(video)
    if arr.ndim != 3:
        raise ValueError(f"{what} must be a video DataArray or a (time, y, x) array, got shape {arr.shape}")
    from ._video import as_video

    return as_video(arr)


def _blocks(fig: Any, block: bool | None) -> bool:
    """Block until the window closes only on a desktop GUI backend (Qt, Tk, ...).

    Headless canvases (Agg) and notebook widgets (ipympl, inline) have no
    ``required_interactive_framework``: there the call returns a selector at once.
    """
    if block is not None:
        return bool(block)
    return getattr(fig.canvas, "required_interactive_framework", None) is not None


class PositionSelector:
    """Click on an image Axes to add a ``(y, x)`` position, right-click to remove the nearest one.

    A left click on a pixel that is already selected removes it (optimap's
    point clicker does the same). Clicks are ignored while the toolbar's zoom
    or pan holds the canvas. The selected positions are numbered on the image
    in the colours of the traces drawn for them.

    Parameters
    ----------
    ax : matplotlib Axes
        Showing an image in pixel coordinates.
    single : bool
        Keep one position only (each click replaces it).
    as_integers : bool
        Round clicks to the nearest pixel.
    on_change : callable, optional
        Called with the selector after every change.

    Attributes
    ----------
    positions : ndarray ``(n, 2)``
        ``(y, x)`` rows, updated live (int64 with ``as_integers``, else float64).

    Examples
    --------
    >>> import matplotlib.pyplot as plt, numpy as np
    >>> from fluoxr.plot import PositionSelector
    >>> fig, ax = plt.subplots()
    >>> _ = ax.imshow(np.zeros((10, 10)))
    >>> sel = PositionSelector(ax)
    >>> sel.add(3, 4); sel.add(7, 1); sel.remove(0)
    >>> sel.positions.tolist()
    [[7, 1]]
    >>> plt.close(fig)
    """

    def __init__(self, ax: Any, *, single: bool = False, as_integers: bool = True,
                 on_change: Callable[[PositionSelector], None] | None = None) -> None:
        self.ax = ax
        self.figure = ax.figure
        self.single = bool(single)
        self.as_integers = bool(as_integers)
        self._positions: list[tuple[float, float]] = []
        self._callbacks: list[Callable[[PositionSelector], None]] = [on_change] if on_change else []
        self._markers: Any = None
        self._labels: list[Any] = []
        self._cid = self.figure.canvas.mpl_connect("button_press_event", self._on_press)

    @property
    def positions(self) -> np.ndarray:
        return np.array(self._positions, dtype=np.int64 if self.as_integers else np.float64).reshape(-1, 2)

    def on_change(self, func: Callable[[PositionSelector], None]) -> None:
        """Call ``func(selector)`` after every change."""
        self._callbacks.append(func)

    def add(self, y: float, x: float) -> None:
        """Add ``(y, x)`` (replacing the position when ``single``)."""
        p = (int(round(y)), int(round(x))) if self.as_integers else (float(y), float(x))
        if self.single:
            self._positions = []
        self._positions.append(p)
        self._changed()

    def remove(self, index: int) -> None:
        """Remove the position at ``index``."""
        del self._positions[index]
        self._changed()

    def set_positions(self, positions: Any) -> None:
        """Replace every position by ``(y, x)`` rows."""
        pos = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
        self._positions = [(int(round(y)), int(round(x))) if self.as_integers else (float(y), float(x))
                           for y, x in pos]
        self._changed()

    def disconnect(self) -> None:
        """Stop listening to clicks."""
        self.figure.canvas.mpl_disconnect(self._cid)

    def _on_press(self, event: Any) -> None:
        if event.inaxes is not self.ax or event.xdata is None or event.ydata is None:
            return
        if not self.figure.canvas.widgetlock.available(self):  # zoom or pan is active
            return
        from matplotlib.backend_bases import MouseButton

        y, x = float(event.ydata), float(event.xdata)
        if event.button == MouseButton.LEFT:
            key = (int(round(y)), int(round(x))) if self.as_integers else (y, x)
            if key in self._positions:
                self.remove(self._positions.index(key))
            else:
                self.add(y, x)
        elif event.button == MouseButton.RIGHT and self._positions:
            d = np.hypot(*(np.asarray(self._positions, np.float64) - (y, x)).T)
            self.remove(int(np.argmin(d)))

    def _changed(self) -> None:
        self._redraw()
        for func in self._callbacks:
            func(self)
        self.figure.canvas.draw_idle()

    def _redraw(self) -> None:
        if self._markers is not None:
            self._markers.remove()
            self._markers = None
        for t in self._labels:
            t.remove()
        self._labels = []
        pos = self.positions
        if len(pos):
            colours = [_cycle_colour(i) for i in range(len(pos))]
            self._markers = self.ax.scatter(pos[:, 1], pos[:, 0], c=colours, s=30, edgecolors="white",
                                            linewidths=0.8, zorder=3)
            self._labels = [self.ax.annotate(str(i), (x, y), color="white", fontsize=8, xytext=(4, 4),
                                             textcoords="offset points", path_effects=_stroke())
                            for i, (y, x) in enumerate(pos)]


def _cycle_colour(i: int) -> Any:
    from matplotlib import colormaps

    return colormaps["tab10"](i % 10)


class TraceSelector(PositionSelector):
    """A :class:`PositionSelector` that draws the traces at its positions, live, on a second Axes.

    Returned by :func:`select_traces` and ``compare_traces(videos)`` when they
    do not block (notebooks, headless canvases).

    Attributes
    ----------
    positions : ndarray ``(n, 2)``
        ``(y, x)`` rows.
    traces : DataArray or list of DataArray
        ``("roi", "time")`` traces at the positions (one per video for
        ``compare_traces``), as :func:`fluoxr.traces` computes them; None
        before the first click.
    trace_ax : matplotlib Axes
    """

    def __init__(self, ax: Any, trace_ax: Any, videos: list[xr.DataArray], *, size: int, window: str | None,
                 fps: float | None, x: Any, labels: Sequence[str] | None, colors: Sequence[Any] | None,
                 single: bool) -> None:
        super().__init__(ax, single=single)
        self.trace_ax = trace_ax
        self._videos = videos
        self._size, self._window, self._fps, self._x = size, window, fps, x
        self._video_labels, self._video_colors = labels, colors
        self._traces: list[xr.DataArray] | None = None
        self._draw_traces()

    @property
    def traces(self) -> Any:
        if self._traces is None:
            return None
        return self._traces if len(self._videos) > 1 else self._traces[0]

    def _changed(self) -> None:
        self._redraw()
        self._draw_traces()
        for func in self._callbacks:
            func(self)
        self.figure.canvas.draw_idle()

    def _draw_traces(self) -> None:
        import dask

        from .extraction import traces as _traces

        ax = self.trace_ax
        ax.clear()
        pos = self.positions
        if not len(pos):
            self._traces = None
            ax.set_xlabel("time (s)" if self._fps or self._videos[0].attrs.get("fps") else "frame")
            ax.set_ylabel(_value_label(self._videos[0].name, self._videos[0].attrs.get("units")))
            ax.set_title("click the image to add a position, right-click to remove", fontsize=9)
            return
        self._traces = list(dask.compute(*[_traces(v, pos, size=self._size, window=self._window)
                                            for v in self._videos]))
        if len(self._videos) == 1:
            show_traces(self._traces[0], self._x, fps=self._fps, ax=ax,
                        colors=[_cycle_colour(i) for i in range(len(pos))],
                        labels=[f"{i}: (y={y}, x={x})" for i, (y, x) in enumerate(pos.tolist())])
        else:
            for j, tr in enumerate(self._traces):
                kw: dict[str, Any] = {}
                if self._video_colors is not None:
                    kw["color"] = self._video_colors[j]
                if self._video_labels is not None:
                    kw["label"] = self._video_labels[j]
                show_traces(tr.isel(roi=0), self._x, fps=self._fps, ax=ax, **kw)
            y, x = pos[0].tolist()
            ax.set_title(f"(y={y}, x={x})", fontsize=9)
            if self._video_labels is not None:
                ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0,
                          frameon=False)


def _reference_image(video: xr.DataArray, ref_frame: int) -> xr.DataArray:
    if "channel" in video.dims:
        raise ValueError("video must hold one channel: select it first (video.sel(channel=...))")
    n = video.sizes["time"]
    if not -n <= ref_frame < n:
        raise ValueError(f"ref_frame must index a frame of the video ({n} frames), got {ref_frame}")
    return video.isel(time=ref_frame).compute()


def _interactive_traces(videos: list[xr.DataArray], *, size: int, window: str | None, ref_frame: int,
                        fps: float | None, x: Any, labels: Sequence[str] | None, colors: Sequence[Any] | None,
                        single: bool, block: bool | None) -> Any:
    shape = (videos[0].sizes.get("y"), videos[0].sizes.get("x"))
    for i, v in enumerate(videos[1:], 1):
        if (v.sizes.get("y"), v.sizes.get("x")) != shape:
            raise ValueError(f"videos[{i}] must have the frame shape of videos[0] {shape}")
    image = _reference_image(videos[0], ref_frame)
    plt = _pyplot()
    fig, (ax, trace_ax) = plt.subplots(1, 2, figsize=(12, 5), layout="constrained",
                                       gridspec_kw={"width_ratios": (1, 1.6)})
    img, meta = _image_of(image, "image")
    _draw_image(ax, img, cmap=None, percentile=(0.5, 99.5), signed=None, pixel_size=meta.get("pixel_size"),
                colorbar_label=None)
    ax.set_title(_with_channel(f"frame {ref_frame}", meta), fontsize=9)
    selector = TraceSelector(ax, trace_ax, videos, size=size, window=window, fps=fps, x=x, labels=labels,
                             colors=colors, single=single)
    if _blocks(fig, block):
        plt.show(block=True)
        return (selector.traces, selector.positions) if not single else selector.positions
    return selector


def select_positions(
    image: Any,
    *,
    as_integers: bool = True,
    cmap: str | None = None,
    vmin: float | None = None,
    vmax: float | None = None,
    block: bool | None = None,
) -> Any:
    """Pick ``(y, x)`` positions on an image by clicking (optimap's ``select_positions``).

    Left click adds a position (clicking a selected pixel again removes it),
    right click removes the nearest one. On a desktop backend (Qt, Tk, ...)
    the call blocks until the window is closed and returns the positions; in
    a notebook (``%matplotlib widget``, ipympl) or on a headless canvas it
    returns a :class:`PositionSelector` at once, whose ``.positions`` follow
    the clicks.

    Parameters
    ----------
    image : 2-D array or DataArray
        A video (``time`` first) shows its first frame, as optimap does.
    as_integers : bool
        Round to pixels (optimap's default).
    cmap, vmin, vmax
        Display of the image (default gray, its 0.5-99.5 percentiles).
    block : bool, optional
        Force blocking (True) or the returned selector (False).

    Returns
    -------
    ndarray ``(n, 2)`` of ``(y, x)`` rows when blocking, else a :class:`PositionSelector`

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> import numpy as np
    >>> from fluoxr.plot import select_positions
    >>> sel = select_positions(np.zeros((16, 16)))   # headless: returns the selector
    >>> sel.add(2, 5)
    >>> sel.positions.tolist()
    [[2, 5]]
    """
    if isinstance(image, xr.DataArray) and "time" in image.dims:
        image = image.isel(time=0)
    elif not isinstance(image, xr.DataArray) and np.ndim(image) == 3:
        image = np.asarray(image)[0]
    img, meta = _image_of(image, "image")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 6 * img.shape[0] / img.shape[1]), layout="constrained")
    lo, hi, _, signed = _contrast(img, (0.5, 99.5), None)
    ax.imshow(img, cmap=cmap or (DIVERGING_CMAP if signed else "gray"), vmin=lo if vmin is None else vmin,
              vmax=hi if vmax is None else vmax, interpolation="nearest")
    ax.set_xticks([])
    ax.set_yticks([])
    add_scale_bar(ax, pixel_size=meta.get("pixel_size"), width_px=img.shape[1])
    ax.set_title(_with_channel("click to add a position, right-click to remove; close when done", meta),
                 fontsize=9)
    selector = PositionSelector(ax, as_integers=as_integers)
    if _blocks(fig, block):
        plt.show(block=True)
        return selector.positions
    return selector


def select_traces(
    video: Any,
    *,
    size: int = 5,
    window: str | None = None,
    ref_frame: int = 0,
    fps: float | None = None,
    x: Any = None,
    block: bool | None = None,
) -> Any:
    """Pick positions on a frame and see their traces live (optimap's ``select_traces``).

    The frame ``ref_frame`` is shown beside the traces at the selected
    positions (:func:`fluoxr.traces` with ``size`` and ``window``), redrawn at
    every click; left click adds, right click removes the nearest position.
    A lazy video is read at every change: pass ``video.compute()`` (or a
    NumPy array) when it fits in memory.

    Parameters
    ----------
    video : DataArray or ``(time, y, x)`` array
        One channel.
    size, window
        As :func:`fluoxr.traces`.
    ref_frame : int
        Frame shown for clicking.
    fps, x
        As :func:`show_traces`.
    block : bool, optional
        As :func:`select_positions`.

    Returns
    -------
    (traces, positions) when blocking
        ``("roi", "time")`` DataArray (None without positions; optimap's
        ``(T, N)`` is ``traces.T.values``) and ``(n, 2)`` ``(y, x)`` rows;
    TraceSelector otherwise
        with ``.positions`` and ``.traces`` updated live.

    Examples
    --------
    >>> import matplotlib; matplotlib.use("Agg")
    >>> from fluoxr.testing import tiny_video
    >>> from fluoxr.plot import select_traces
    >>> sel = select_traces(tiny_video((20, 8, 8)), size=3)
    >>> sel.add(4, 4)
    >>> sel.traces.sizes["roi"], sel.positions.tolist()
    (1, [[4, 4]])
    """
    video = _as_plot_video(video, "video")
    _check_x_fps(fps, x)
    return _interactive_traces([video], size=size, window=window, ref_frame=ref_frame, fps=fps, x=x,
                               labels=None, colors=None, single=False, block=block)


# -- oscillations -----------------------------------------------------------------------------


def oscillation_overlay(
    frames: Any,
    labels: Any,
    *,
    titles: Sequence[str] | None = None,
    times: Sequence[float] | None = None,
    alpha: float = 0.55,
    percentile: tuple[float, float] = (0.5, 99.5),
    size: float = 3.0,
    pixel_size: float | None = None,
) -> Any:
    """Influx (red) and efflux (blue) pixels over the gray frames, one panel per frame.

    ``frames`` and ``labels`` are ``(y, x)`` or ``(n, y, x)`` (labels from
    :func:`fluoxr.oscillations.detect`: 0 none, 1 influx, 2 efflux); lazy
    DataArrays are computed here, so pass a few frames only. Every panel has
    the same contrast (percentiles of all frames) and a scale bar; the legend
    sits below the panels.

    Parameters
    ----------
    titles : sequence of str, optional
        One per frame. Default: the frame's time, "t = 120 s", from ``times``
        or the ``time`` coordinate of DataArray frames (in seconds when the
        recording's frame rate is known, else "frame 60").
    times : sequence of float, optional
        Times of the frames in seconds.
    pixel_size : float, optional
        µm per pixel for the scale bar; default ``frames.attrs["pixel_size"]``.

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr.plot import oscillation_overlay
    >>> fig = oscillation_overlay(np.ones((2, 4, 4)), np.array([np.eye(4), 2 * np.eye(4)], np.int8), times=[0, 2.5])
    >>> [ax.get_title() for ax in fig.axes]
    ['t = 0 s', 't = 2.5 s']
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    plt = _pyplot()
    default_titles: list[str] | None = None
    if isinstance(frames, xr.DataArray):
        pixel_size = pixel_size if pixel_size is not None else frames.attrs.get("pixel_size")
        if "time" in frames.coords:
            t = np.atleast_1d(np.asarray(frames["time"].values, np.float64))
            unit_s = frames["time"].attrs.get("units") == "s"
            default_titles = [f"t = {v:g} s" if unit_s else f"frame {v:g}" for v in t]
    img = np.asarray(frames.values if isinstance(frames, xr.DataArray) else frames, dtype=np.float64)
    lab = np.asarray(labels.values if isinstance(labels, xr.DataArray) else labels)
    if img.ndim == 2:
        img, lab = img[None], lab[None] if lab.ndim == 2 else lab
    if img.ndim != 3 or lab.shape != img.shape:
        raise ValueError(f"frames and labels must both be (y, x) or (n, y, x) of one shape, got {img.shape} "
                         f"and {lab.shape}")
    n = img.shape[0]
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles must have one entry per frame ({n}), got {len(titles)}")
    if times is not None:
        if len(times) != n:
            raise ValueError(f"times must have one entry per frame ({n}), got {len(times)}")
        default_titles = [f"t = {float(v):g} s" for v in times]
    titles = titles if titles is not None else default_titles
    aspect = img.shape[2] / img.shape[1]
    fig, axes = plt.subplots(1, n, figsize=(size * aspect * n, size + 0.4), squeeze=False)
    colours = ListedColormap(["#d62728", "#1f77b4"])
    lo, hi, _, _ = _contrast(img, percentile, False)  # one contrast: the panels compare
    for i, ax in enumerate(axes[0]):
        ax.imshow(img[i], cmap="gray", vmin=lo, vmax=hi, interpolation="nearest")
        over = np.ma.masked_where((lab[i] != 1) & (lab[i] != 2), lab[i].astype(float) - 1)
        ax.imshow(over, cmap=colours, vmin=0, vmax=1, alpha=alpha, interpolation="nearest")
        ax.set_axis_off()
        add_scale_bar(ax, pixel_size=pixel_size, width_px=img.shape[2])
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    fig.legend(handles=[Patch(color="#d62728", label="influx"), Patch(color="#1f77b4", label="efflux")],
               loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig


# --------------------------------------------------------------------------------------------
# colour-mapped PNG and movies (pysofi visualization.save_png, save_avi)


def save_png(image: Any, path: Any, *, cmap: Any = "pink", contrast: Any = None, scale: int = 1,
             overwrite: bool = False) -> str:
    """Write one image as a colour-mapped RGB PNG, one PNG pixel per image pixel (pysofi ``save_png``).

    Parameters
    ----------
    image : xarray.DataArray or 2-D array
        The image ``("y", "x")`` (lazy images are computed).
    path : path
        The ``.png`` file.
    cmap : str or matplotlib.colors.Colormap
        Colormap; pysofi's default ``"pink"``.
    contrast : (low, high), optional
        Values at the colormap's two ends, as numbers or percentiles
        (``("1%", "99.5%")``); default the image's minimum and maximum.
        pysofi's ``display_contrast=c`` is ``contrast=(min, min + (max - min) / c)``.
    scale : int
        PNG pixels per image pixel along each axis (nearest neighbour).
    overwrite : bool
        Replace an existing file. Inputs of the image are never written, and
        the file is written under a temporary name and renamed into place.

    Returns
    -------
    str
        The path written.

    Examples
    --------
    >>> import numpy as np, fluoxr.plot
    >>> fluoxr.plot.save_png(np.arange(12.0).reshape(3, 4), "/tmp/doc_image.png", cmap="magma", overwrite=True)
    '/tmp/doc_image.png'
    """
    from .io.export import write_png

    return write_png(image, path, cmap=cmap, contrast=contrast, scale=scale, overwrite=overwrite)


def save_movie(video: Any, path: Any, *, fps: float | None = None, cmap: Any = "pink", contrast: Any = None,
               scale: int = 1, overwrite: bool = False) -> str:
    """Write a video (or any stack of images) as a colour-mapped .mp4 or .gif, frame by frame (pysofi ``save_avi``).

    Frames are computed and encoded a few chunks at a time, so a recording
    of any length is never in memory. ``.mp4`` is H.264 (yuv420p, read by
    every player) through ffmpeg: imageio-ffmpeg's when the ``movie`` extra is
    installed (``pip install "fluoxr[movie]"``), else an ``ffmpeg`` on the
    PATH; without either, an ImportError names the extra. ``.gif`` needs only
    Pillow (a matplotlib dependency); its palette is the colormap's 256
    colours, so no colour is quantised.

    Parameters
    ----------
    video : xarray.DataArray or 3-D array
        ``(frame, "y", "x")``: a video, SOFI orders, windows...
    path : path
        The ``.mp4`` or ``.gif`` file.
    fps : float, optional
        Frames per second of the movie; default the video's ``fps``, else 10.
    cmap, contrast, scale, overwrite
        As :func:`save_png`; the contrast is one range for the whole movie
        (the default, the minimum and maximum, costs one pass over a lazy video).

    Returns
    -------
    str
        The path written.

    Examples
    --------
    >>> import numpy as np, fluoxr, fluoxr.plot
    >>> v = fluoxr.as_video(np.random.default_rng(0).random((5, 8, 8)), fps=5)
    >>> fluoxr.plot.save_movie(v, "/tmp/doc_movie.gif", contrast=("1%", "99%"), overwrite=True)
    '/tmp/doc_movie.gif'
    """
    from .io.export import write_movie

    return write_movie(video, path, fps=fps, cmap=cmap, contrast=contrast, scale=scale, overwrite=overwrite)
