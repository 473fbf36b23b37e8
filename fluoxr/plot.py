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
