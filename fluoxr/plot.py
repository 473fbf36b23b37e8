"""Matplotlib figures of fluoxr results. Functions return the Figure; saving is the caller's."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import xarray as xr


def _pyplot() -> Any:
    import matplotlib.pyplot as plt

    return plt


def show_images(
    images: Sequence[Any],
    *,
    titles: Sequence[str] | None = None,
    ncols: int | None = None,
    cmap: str = "gray",
    percentile: tuple[float, float] = (0.5, 99.5),
    size: float = 3.0,
) -> Any:
    """Show 2-D images side by side, each scaled to its own percentile range.

    Lazy DataArrays are computed here (each image is small).

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr.plot import show_images
    >>> fig = show_images([np.eye(4), np.ones((4, 4))], titles=["a", "b"])
    >>> len(fig.axes)
    2
    """
    plt = _pyplot()
    n = len(images)
    if n == 0:
        raise ValueError("images must hold at least one image")
    if titles is not None and len(titles) != n:
        raise ValueError(f"titles must have one entry per image ({n}), got {len(titles)}")
    ncols = min(n, ncols or n)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(size * ncols, size * nrows), squeeze=False)
    for i, ax in enumerate(axes.ravel()):
        ax.set_axis_off()
        if i >= n:
            continue
        img = images[i]
        img = np.asarray(img.values if isinstance(img, xr.DataArray) else img, dtype=np.float64)
        if img.ndim != 2:
            raise ValueError(f"images[{i}] must be 2-D, got shape {img.shape}")
        finite = img[np.isfinite(img)]
        lo, hi = np.percentile(finite, percentile) if finite.size else (0.0, 1.0)
        ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi if hi > lo else lo + 1, interpolation="nearest")
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    fig.tight_layout()
    return fig


# --------------------------------------------------------------------------------------------
# traces and ROIs


def _axes(ax: Any, figsize: tuple[float, float]) -> tuple[Any, Any]:
    if ax is None:
        fig, ax = _pyplot().subplots(figsize=figsize)
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


def show_traces(
    traces: Any,
    *,
    fps: float | None = None,
    labels: Sequence[str] | None = None,
    colors: Sequence[Any] | None = None,
    offset: float = 0.0,
    ax: Any = None,
    **kwargs: Any,
) -> Any:
    """Plot traces against time (seconds when the frame rate is known, else frames).

    Parameters
    ----------
    traces : DataArray or array
        ``("roi", "time")`` (or ``("time",)``) DataArray; a NumPy array is
        ``(n_rois, n_frames)`` or 1-D (fluoxr's orientation; optimap's
        ``(T, N)`` arrays need ``.T``). Lazy traces are computed here.
    fps : float, optional
        Frame rate; default ``traces.attrs["fps"]`` or the ``time`` coord.
    labels, colors : sequence, optional
        One per trace; labels add a legend.
    offset : float
        Vertical shift between consecutive traces (0: overlaid).
    ax : matplotlib Axes, optional
    **kwargs
        Passed to ``Axes.plot``.

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from fluoxr.plot import show_traces
    >>> tr = xr.DataArray(np.random.default_rng(0).random((3, 50)), dims=("roi", "time"), attrs={"fps": 10})
    >>> fig = show_traces(tr, labels=["a", "b", "c"])
    >>> fig.axes[0].get_xlabel()
    'time (s)'
    """
    if isinstance(traces, xr.DataArray):
        if "time" not in traces.dims:
            raise ValueError(f"traces must have a 'time' dim, got dims {traces.dims}")
        tr = traces.transpose(..., "time")
    else:
        arr = np.asarray(traces)
        if arr.ndim not in (1, 2):
            raise ValueError(f"traces must be 1-D or (n_rois, n_frames), got shape {arr.shape}")
        tr = xr.DataArray(arr, dims=("roi", "time")[2 - arr.ndim:])
    x, xlabel = _time_axis(tr, fps)
    values = np.asarray(tr.values, np.float64).reshape(-1, tr.sizes["time"])
    n = values.shape[0]
    if labels is not None and len(labels) != n:
        raise ValueError(f"labels must have one entry per trace ({n}), got {len(labels)}")
    if colors is not None and len(colors) != n:
        raise ValueError(f"colors must have one entry per trace ({n}), got {len(colors)}")
    fig, ax = _axes(ax, (8, 3))
    for i in range(n):
        kw = dict(kwargs)
        if colors is not None:
            kw["color"] = colors[i]
        if labels is not None:
            kw["label"] = labels[i]
        ax.plot(x, values[i] + i * offset, **kw)
    if n and x.size:
        ax.set_xlim(x[0], x[-1] if x[-1] > x[0] else x[0] + 1)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(str(tr.name) if tr.name is not None else "intensity")
    if labels is not None:
        ax.legend(fontsize=8)
    return fig


def compare_traces(
    videos: Sequence[Any],
    positions: Any,
    *,
    labels: Sequence[str] | None = None,
    size: int = 5,
    window: str | None = None,
    fps: float | None = None,
    colors: Sequence[Any] | None = None,
) -> Any:
    """Traces of several videos at the same positions, one panel per position (optimap's ``compare_traces``).

    Every trace is computed in one ``dask.compute`` call (each video read once).

    Parameters
    ----------
    videos : sequence of videos
        Same frame shape (e.g. raw, filtered, motion-corrected).
    positions : array-like ``(n, 2)``
        ``(y, x)`` rows.
    labels : sequence of str, optional
        One per video.
    size, window
        As :func:`fluoxr.traces`.

    Returns
    -------
    matplotlib.figure.Figure

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

    videos = list(videos)
    if not videos:
        raise ValueError("videos must hold at least one video")
    if labels is not None and len(labels) != len(videos):
        raise ValueError(f"labels must have one entry per video ({len(videos)}), got {len(labels)}")
    lazy = [_traces(v, positions, size=size, window=window) for v in videos]
    computed = dask.compute(*lazy)
    n_pos = computed[0].sizes["roi"]
    plt = _pyplot()
    fig, axes = plt.subplots(n_pos, 1, sharex=True, figsize=(6, 2.2 * n_pos), squeeze=False)
    for i in range(n_pos):
        ax = axes[i, 0]
        for j, tr in enumerate(computed):
            kw: dict[str, Any] = {}
            if colors is not None:
                kw["color"] = colors[j]
            if labels is not None:
                kw["label"] = labels[j]
            show_traces(tr.isel(roi=i), fps=fps, ax=ax, **kw)
        y, x = float(computed[0]["y"][i]), float(computed[0]["x"][i])
        ax.set_title(f"(y={y:g}, x={x:g})", fontsize=9)
        if i < n_pos - 1:
            ax.set_xlabel("")
    if labels is not None:
        axes[0, 0].legend(fontsize=8, ncols=len(labels))
    fig.tight_layout()
    return fig


def show_positions(
    positions: Any,
    image: Any = None,
    *,
    size: float | None = None,
    color: Any = None,
    cmap: str = "gray",
    annotate: bool = False,
    ax: Any = None,
    **kwargs: Any,
) -> Any:
    """Mark ``(y, x)`` positions, optionally on an image (optimap's ``show_positions``).

    optimap scatters ``pos[0]`` as x; fluoxr positions are ``(y, x)`` rows.

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr.plot import show_positions
    >>> fig = show_positions([(2, 3), (5, 1)], np.zeros((8, 8)), annotate=True)
    >>> len(fig.axes[0].collections)
    1
    """
    pos = np.asarray(positions, dtype=np.float64)
    if pos.ndim == 1 and pos.size == 2:
        pos = pos[None]
    if pos.ndim != 2 or pos.shape[1] != 2:
        raise ValueError(f"positions must be (n, 2) rows of (y, x), got shape {pos.shape}")
    fig, ax = _axes(ax, (4, 4))
    if image is not None:
        img = np.asarray(image.values if isinstance(image, xr.DataArray) else image, dtype=np.float64)
        if img.ndim != 2:
            raise ValueError(f"image must be 2-D, got shape {img.shape}")
        ax.imshow(img, cmap=cmap, interpolation="nearest")
        ax.set_axis_off()
    ax.scatter(pos[:, 1], pos[:, 0], s=size, c=color, **kwargs)
    if annotate:
        for i, (y, x) in enumerate(pos):
            ax.annotate(str(i), (x, y), color="yellow", fontsize=8, xytext=(3, 3), textcoords="offset points")
    if image is None:
        ax.invert_yaxis()
        ax.set_aspect("equal")
    return fig


def show_rois(
    rois: Any,
    image: Any = None,
    *,
    neuropil: Any = None,
    alpha: float = 0.45,
    cmap: str = "gray",
    annotate: bool = False,
    seed: int = 0,
    ax: Any = None,
) -> Any:
    """ROIs as coloured regions over an image (e.g. the mean image), neuropil optionally hatched in grey.

    Parameters
    ----------
    rois : ROISet
        Planar ROIs.
    image : 2-D array or DataArray, optional
        Background (lazy DataArrays are computed); its shape must be the ROIs' frame shape.
    neuropil : ROISet, optional
        Neuropil regions (e.g. :func:`fluoxr.neuropil_masks`), drawn in grey under the cells.
    annotate : bool
        Write each ROI's index at its centroid.

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
    fig, ax = _axes(ax, (5, 5))
    if image is not None:
        img = np.asarray(image.values if isinstance(image, xr.DataArray) else image, dtype=np.float64)
        if img.shape != rois.shape:
            raise ValueError(f"image must have the ROIs' frame shape {rois.shape}, got {img.shape}")
        finite = img[np.isfinite(img)]
        lo, hi = np.percentile(finite, (0.5, 99.5)) if finite.size else (0.0, 1.0)
        ax.imshow(img, cmap=cmap, vmin=lo, vmax=hi if hi > lo else lo + 1, interpolation="nearest")
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
            ax.text(x, y, str(i), color="white", fontsize=7, ha="center", va="center")
    ax.set_axis_off()
    return fig


def show_orders(
    stack: xr.DataArray,
    *,
    mean_image: Any = None,
    root: bool = True,
    label: str | None = None,
    **kwargs: Any,
) -> Any:
    """SOFI images of several orders side by side (one panel per ``order``).

    Each image is flipped in sign when its largest magnitude is negative
    (cumulants of some orders are negative at the emitters). With ``root``,
    order ``n`` is then shown as ``max(x, 0)^(1/n)`` (the usual SOFI display:
    brightness linear in the emitters' brightness). Order 1
    (zero by definition for central moments and cumulants) is replaced by
    ``mean_image`` when given, else left out. Other keywords go to
    :func:`show_images`.

    Examples
    --------
    >>> import numpy as np, xarray as xr
    >>> from fluoxr.plot import show_orders
    >>> stack = xr.DataArray(np.random.default_rng(0).random((3, 5, 5)), dims=("order", "y", "x"),
    ...                      coords={"order": [2, 3, 4]})
    >>> len(show_orders(stack).axes)
    3
    """
    if not isinstance(stack, xr.DataArray) or "order" not in stack.dims:
        raise ValueError("stack must be a DataArray with an 'order' dim (e.g. fluoxr.cumulants(...))")
    stack = stack.compute()
    name = label or str(stack.name or "order")
    images, titles = [], []
    if mean_image is None and "mean_image" in stack.coords:
        mean_image = stack.coords["mean_image"]
    for order in stack.order.values.tolist():
        if order == 1:
            if mean_image is not None:
                images.append(np.asarray(mean_image))
                titles.append("mean image")
            continue
        img = np.asarray(stack.sel(order=order).values, dtype=np.float64)
        finite = img[np.isfinite(img)]
        if finite.size and finite.flat[np.argmax(np.abs(finite))] < 0:
            img = -img
        if root:
            img = np.clip(img, 0, None) ** (1.0 / order)
        images.append(img)
        titles.append(f"{name} {order}" + (f" (^1/{order})" if root else ""))
    return show_images(images, titles=titles, **kwargs)


# -- oscillations -----------------------------------------------------------------------------


def oscillation_overlay(
    frames: Any,
    labels: Any,
    *,
    titles: Sequence[str] | None = None,
    alpha: float = 0.55,
    percentile: tuple[float, float] = (0.5, 99.5),
    size: float = 3.0,
) -> Any:
    """Influx (red) and efflux (blue) pixels over the gray frames, one panel per frame.

    ``frames`` and ``labels`` are ``(y, x)`` or ``(n, y, x)`` (labels from
    :func:`fluoxr.oscillations.detect`: 0 none, 1 influx, 2 efflux); lazy
    DataArrays are computed here, so pass a few frames only.

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr.plot import oscillation_overlay
    >>> fig = oscillation_overlay(np.ones((2, 4, 4)), np.array([np.eye(4), 2 * np.eye(4)], np.int8))
    >>> len(fig.axes)
    2
    """
    from matplotlib.colors import ListedColormap
    from matplotlib.patches import Patch

    plt = _pyplot()
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
    fig, axes = plt.subplots(1, n, figsize=(size * n, size + 0.4), squeeze=False)
    colours = ListedColormap(["#d62728", "#1f77b4"])
    for i, ax in enumerate(axes[0]):
        finite = img[i][np.isfinite(img[i])]
        lo, hi = np.percentile(finite, percentile) if finite.size else (0.0, 1.0)
        ax.imshow(img[i], cmap="gray", vmin=lo, vmax=hi if hi > lo else lo + 1, interpolation="nearest")
        over = np.ma.masked_where((lab[i] != 1) & (lab[i] != 2), lab[i].astype(float) - 1)
        ax.imshow(over, cmap=colours, vmin=0, vmax=1, alpha=alpha, interpolation="nearest")
        ax.set_axis_off()
        if titles is not None:
            ax.set_title(titles[i], fontsize=9)
    fig.legend(handles=[Patch(color="#d62728", label="influx"), Patch(color="#1f77b4", label="efflux")],
               loc="lower center", ncol=2, fontsize=8, frameon=False)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    return fig
