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
