"""ROI-versus-reference features: cellector's measures on a :class:`~fluoxr.ROISet`, for 10k+ ROIs at once.

Which ROIs are cells that also express a second marker? cellector answers by
comparing each ROI's footprint with a reference image (typically the mean of
an anatomical, red channel): phase correlation, normalised dot product,
correlation in the surround, intensity inside versus around. This module
computes the same numbers on a :class:`~fluoxr.ROISet`, with no Python loop
per ROI. The stack functions (:func:`centered_masks`, :func:`center_surround`,
...) build all patches of a set with one fancy index and one compiled sweep;
:func:`roi_features` goes further: one compiled pass per batch of ROIs builds
each ROI's patches, its surround (only inside the box that can hold it) and
the sums of ``in_vs_out`` and ``corr_coef``, then one batched real FFT gives
the phase correlations. Memory is bounded by working through the ROIs in
batches of about 260,000 patch pixels (272 ROIs at the default
``width=15``), which run in parallel on the user's dask scheduler (threads by
default, a ``distributed`` cluster when a client is active).

The reference may be an image in memory or a lazy expression such as
``video.sel(channel=1).mean("time")``: :func:`roi_features` checks its shape
without computing it, then computes it exactly once (a tree reduction over
the recording, out of core) in the same graph as the batches that use it.

Functions and their cellector counterparts (``cellector.utils`` 2.0.3):

========================  =====================================================
fluoxr                    cellector
========================  =====================================================
``centroids``             ``get_roi_centroid(s)``
``mask_volume``           ``get_mask_volume`` (volumetric too; cellector raises)
``centered_masks``        ``get_centered_masks``
``centered_reference``    ``get_centered_reference``
``center_surround``       ``center_surround``
``surround_filter``       ``surround_filter``
``cross_power_spectrum``  ``cross_power_spectrum``
``phase_correlation``     ``phase_correlation``
``phase_correlation_zero`` ``phase_correlation_zero``
``in_vs_out``             ``in_vs_out``
``dot_product``           ``dot_product``
``compute_correlation``   ``compute_correlation``
``bandpass_filter``       ``filters.butterworth_bpf``
``roi_features``          ``RoiProcessor.features`` (the four standard pipelines)
========================  =====================================================

cellector's list helpers are not needed, because a ROISet is already flat:
``flatten_roi_data`` is the ROISet itself (``lam_flat, ypix_flat, xpix_flat,
zpix_flat, roi_idx`` are ``rois.weight, rois.y, rois.x, rois.z, rois.roi``);
``cat_planes`` is ``ROISet.concat`` (or nothing at all: ROIs of every plane
live in one set, their plane in ``z``); ``split_planes`` is a boolean
selection ``rois[plane_of_roi == k]`` (or ``df[plane == k]`` on a result);
``transpose`` is unneeded because results are arrays with one row per ROI
and named columns; ``broadcastable`` is ``numpy.broadcast_shapes``.

Quirks of cellector and what fluoxr does about each:

- Centroids are truncated with ``int()`` (not rounded) when ``asint``;
  kept. cellector divides by ``np.sum(lam)`` taken in float32, so its
  weighted mean is off by up to ~1e-5 px and a centroid that close above an
  integer truncates to the integer below (9 of 10,000 ROIs in
  ``benchmarks/roi_features.py``); fluoxr sums in float64, and a mean that is
  an integer up to rounding error is that integer (fixed). With
  ``method="median"`` cellector truncates even when ``asint=False``; fluoxr
  returns the exact (float) median then.
- ``eps`` of :func:`cross_power_spectrum` and :func:`phase_correlation_zero`
  defaults to ``1e6`` (cellector's behaviour, kept) although cellector's
  docstring says ``1e-8``. With ``1e6`` the normalisation ``R / (eps + |R|)``
  is close to ``R / eps`` for dim patches, so the feature behaves like a plain
  correlation whose scale follows the reference; ``eps=1e-8`` gives the true
  phase correlation, which ignores amplitude. :func:`phase_correlation`
  keeps its own default ``1e-8``.
- The surround is ``iterations`` dilations of the footprint with the 3x3
  cross and *includes* the centre, so :func:`in_vs_out` is
  ``inside / (inside + surround) = inside / (2 inside + ring)``, at most 0.5
  for a non-negative reference; kept.
- :func:`compute_correlation` uses population standard deviations (ddof=0)
  and divides the covariance by the mask's count of valid pixels; kept.
- :func:`dot_product` uses the ROI's own pixels and weights, not the centred
  patch (pixels farther than ``width`` from the centre count); kept.
- ``fill_value`` fills the patches outside the footprint and the image, and
  the centre is "mask > 0", so a positive ``fill_value`` makes the whole
  patch centre; kept (the default 0 is the meaningful choice).
- ``iterations=0`` makes scipy dilate until nothing changes (the whole
  patch); fluoxr requires ``iterations >= 1``.
- cellector computes the FFTs of float32 patches in single precision
  (NumPy 2), and of windowed (float64) patches in double precision. fluoxr
  takes the phase-correlation FFTs in single precision by default, after
  removing each patch's mean (exact in float64; without it the rounding
  scales with the patch's brightness, not its contrast), and accumulates
  every feature in float64: values agree with a float64 computation to
  about 1e-7 of the feature's largest value (``precision="double"`` for
  float64 FFTs).

Planar and volumetric ROIs (cellector's ``volumetric`` flag): a 2-D ROISet
goes with a ``(Ly, Lx)`` reference and 2-D patches. A 3-D ROISet (``z`` per
pixel, frame shape ``(Lz, Ly, Lx)``) goes with a ``(Lz, Ly, Lx)`` reference
and has two modes. ``volumetric=False`` is cellector's default, the
multi-plane suite2p case: every ROI lies in one plane and is compared with
that plane of the reference in 2-D patches. ``volumetric=True`` is
cellector's suite3d mode: patches ``(Lz, P, P)`` hold every plane, the
surround dilates along ``z`` too (6-connected cross) and the Fourier measures
are 3-D. The default ``volumetric=None`` chooses per-plane when every ROI lies
in one plane and volumetric otherwise.

Examples
--------
>>> import numpy as np, fluoxr
>>> from fluoxr.features import roi_features
>>> labels = np.zeros((32, 32), int); labels[5:9, 5:9] = 1; labels[20:24, 10:14] = 2
>>> reference = np.where(labels == 1, 10.0, 1.0)        # ROI 1 bright, ROI 2 not
>>> df = roi_features(fluoxr.ROISet.from_labels(labels), reference, width=6, iterations=2).compute()
>>> list(df.columns)
['phase_corr', 'dot_product', 'corr_coef', 'in_vs_out']
>>> bool(df["dot_product"][0] > df["dot_product"][1])
True
"""

from __future__ import annotations

import logging
import numbers
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

import dask
import numpy as np
import pandas as pd
import xarray as xr

from . import _backend
from ._validate import check_choice, check_int, check_number
from ._video import check_video
from .kernels import features as kern
from .rois import ROISet, as_roiset
from .table import LazyTable

logger = logging.getLogger(__name__)

__all__ = [
    "CELLECTOR_DEFAULTS",
    "FEATURES",
    "bandpass_filter",
    "center_surround",
    "centered_masks",
    "centered_reference",
    "centroids",
    "compute_correlation",
    "cross_power_spectrum",
    "dot_product",
    "in_vs_out",
    "mask_volume",
    "phase_correlation",
    "phase_correlation_zero",
    "reference_image",
    "roc_auc",
    "roi_features",
    "surround_filter",
]

#: Columns of :func:`roi_features`, named as cellector names its features.
FEATURES = ("phase_corr", "dot_product", "corr_coef", "in_vs_out")

#: Keyword arguments of :func:`roi_features` that reproduce cellector's
#: ``RoiProcessor`` with its default parameters (``DEFAULT_PARAMETERS``).
CELLECTOR_DEFAULTS: Mapping[str, Any] = MappingProxyType(dict(
    width=40, iterations=2, centroid_method="median", fill_value=0.0, eps=1e6, window="hanning",
    lowcut=12.0, highcut=250.0, order=3.0,
))

WINDOWS = ("hanning", "hamming", "blackman", "bartlett")
PRECISIONS = ("single", "double")
CENTROID_METHODS = ("weightedmean", "median")
_SNAP = 1e-9  # relative distance to an integer below which a centroid is that integer
# patch pixels per batch: ~1 MB per float32 stack. Larger batches gain nothing and
# make the allocator hand fresh pages to every batch (page faults, system time)
_BATCH_ELEMENTS = 2**18


# --------------------------------------------------------------------------------------------
# argument checks


def _check_volumetric(rois: ROISet, volumetric: Any) -> bool:
    """Resolve cellector's ``volumetric`` flag for a ROISet (see the module docstring)."""
    if volumetric is not None and not isinstance(volumetric, (bool, np.bool_)):
        raise TypeError(f"volumetric must be True, False or None, got {volumetric!r}")
    if rois.ndim == 2:
        if volumetric:
            raise ValueError(f"volumetric=True needs volumetric ROIs (frame shape (Lz, Ly, Lx)), "
                             f"but rois have frame shape {rois.shape}")
        return False
    zmin = np.full(len(rois), np.iinfo(np.int64).max)
    zmax = np.full(len(rois), -1)
    np.minimum.at(zmin, rois.roi, rois.z)
    np.maximum.at(zmax, rois.roi, rois.z)
    spans = np.flatnonzero(zmin != zmax)
    if volumetric is None:
        return bool(spans.size)
    if not volumetric and spans.size:
        raise ValueError(f"volumetric=False compares each ROI with one plane, but ROI(s) {spans[:10].tolist()} "
                         "span several planes; pass volumetric=True (or None to choose automatically)")
    return bool(volumetric)


def _patch_ndim(arr: np.ndarray, volumetric: Any, name: str) -> int:
    """Number of trailing patch axes: 3 for volumetric stacks, else 2 (None: 3 iff the stack is 4-D)."""
    if volumetric is None:
        volumetric = arr.ndim == 4
    if not isinstance(volumetric, (bool, np.bool_)):
        raise TypeError(f"volumetric must be True, False or None, got {volumetric!r}")
    k = 3 if volumetric else 2
    if arr.ndim < k:
        raise ValueError(f"{name} must have at least {k} dims ({'(..., Lz, P, P)' if k == 3 else '(..., P, P)'}), "
                         f"got shape {arr.shape}")
    return k


def _as_stack(arr: Any, name: str) -> np.ndarray:
    a = np.asarray(arr)
    if a.dtype.kind not in "biuf":
        raise TypeError(f"{name} must be a numeric array, got dtype {a.dtype}")
    return a


def _check_pair(masks: np.ndarray, references: np.ndarray, k: int) -> None:
    if masks.shape[masks.ndim - k:] != references.shape[references.ndim - k:]:
        raise ValueError(f"references must have the same patch shape as masks {masks.shape[masks.ndim - k:]}, "
                         f"got {references.shape[references.ndim - k:]}")
    try:
        np.broadcast_shapes(masks.shape, references.shape)
    except ValueError:
        raise ValueError(f"references (shape {references.shape}) do not broadcast against masks "
                         f"(shape {masks.shape})") from None


def _check_centroids(cents: Any, n: int, ndim: int, name: str = "centroids") -> np.ndarray:
    c = np.asarray(cents)
    if c.ndim != 2 or c.shape != (n, ndim):
        raise ValueError(f"{name} must be an ({n}, {ndim}) array of integer {'(z, y, x)' if ndim == 3 else '(y, x)'} "
                         f"pixel positions, got shape {c.shape}")
    if c.dtype.kind not in "iu":
        if c.dtype.kind != "f" or not np.all(np.mod(c, 1) == 0):
            raise ValueError(f"{name} must hold integer pixel positions (cellector truncates them); "
                             "use centroids(rois, asint=True)")
    return c.astype(np.int64)


def _reference_array(reference: Any, shape: tuple[int, ...], name: str = "reference") -> np.ndarray:
    """The reference as a NumPy array of frame ``shape``; a lazy one is checked first, then computed once."""
    data = _reference_data(reference, shape, name)
    if not isinstance(data, np.ndarray) and hasattr(data, "compute"):
        logger.debug("computing the lazy reference image %s", data.shape)
        data = data.compute()
    # a reference computed on the GPU (CuPy) comes to the host: the features run on the CPU
    return _backend.to_numpy(data)


def _reference_data(reference: Any, shape: tuple[int, ...], name: str = "reference") -> Any:
    """The reference's array (NumPy, or dask left lazy) after checking its shape and dtype."""
    data = reference.data if isinstance(reference, xr.DataArray) else reference
    if not hasattr(data, "shape") or not hasattr(data, "dtype"):
        data = np.asarray(data)
    got = tuple(int(s) for s in data.shape)
    if got != tuple(shape):
        hint = ""
        if isinstance(reference, xr.DataArray) and "time" in reference.dims:
            hint = "; reduce the video to one image first, e.g. video.sel(channel=1).mean('time')"
        elif isinstance(reference, xr.DataArray) and "channel" in reference.dims:
            hint = "; select one channel first, e.g. reference.sel(channel=1)"
        elif len(got) == len(shape) + 1 and got[1:] == tuple(shape):
            hint = f"; it holds {got[0]} image(s) of the right shape: pass one of them"
        raise ValueError(f"{name} has shape {got}, but the ROIs were defined on frames of shape {tuple(shape)}{hint}")
    if np.dtype(data.dtype).kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {data.dtype}")
    return data


def _check_image(image: Any, name: str) -> np.ndarray:
    data = image.data if isinstance(image, xr.DataArray) else image
    if not isinstance(data, np.ndarray) and hasattr(data, "compute"):
        data = data.compute()
    arr = np.asarray(data)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
    return arr


# --------------------------------------------------------------------------------------------
# centroids and centred stacks


def centroids(rois: ROISet, *, method: str = "weightedmean", asint: bool = True) -> np.ndarray:
    """Centre of each ROI, as cellector's ``get_roi_centroids``.

    Parameters
    ----------
    rois : ROISet
    method : {"weightedmean", "median"}
        ``"weightedmean"``: coordinates weighted by the ROI's weights
        (suite2p's ``lam``). ``"median"``: median of each coordinate alone.
    asint : bool
        Truncate to integers with ``int()`` as cellector does (not
        rounding: a weighted mean of 9.9 gives 9). A mean that is an integer
        up to floating-point rounding (within 1e-9 relative) is taken as
        that integer. cellector's ``int(sum(lam * y) / sum(lam))``, with
        ``sum(lam)`` in float32, can land one below a centre that lies
        within ~1e-5 px above an integer. With ``asint=False`` the float
        centre (also for the median, which cellector truncates anyway).

    Returns
    -------
    numpy.ndarray
        ``(n_rois, 2)`` ``(y, x)`` or ``(n_rois, 3)`` ``(z, y, x)``; int64 when
        ``asint``, else float64.

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> from fluoxr.features import centroids
    >>> rois = fluoxr.ROISet(roi=[0, 0], y=[3, 4], x=[5, 5], weight=[1.0, 3.0], shape=(8, 8))
    >>> centroids(rois).tolist(), centroids(rois, asint=False).tolist()
    ([[3, 5]], [[3.75, 5.0]])
    """
    rois = as_roiset(rois)
    check_choice(method, "method", CENTROID_METHODS)
    c = rois.centroids(method=method)
    if not asint:
        return c
    # A mean that is an integer up to rounding (a ROI symmetric about a row)
    # is that integer; truncating 14.999999999999998 to 14 would be noise.
    r = np.round(c)
    c = np.where(np.abs(c - r) <= _SNAP * np.maximum(1.0, np.abs(c)), r, c)
    # coordinates are >= 0, so astype's truncation toward zero is int()
    return c.astype(np.int64)


def mask_volume(rois: ROISet) -> np.ndarray:
    """Full-frame weight image of every ROI, ``(n_rois, *frame_shape)`` float32 (cellector's ``get_mask_volume``).

    One slice per ROI, zero outside it; volumetric ROIs give ``(n_rois, Lz,
    Ly, Lx)`` (cellector raises ``NotImplementedError`` there). The stack
    grows with ``n_rois x frame size``; the features use centred patches
    (:func:`centered_masks`) instead.

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> from fluoxr.features import mask_volume
    >>> mask_volume(fluoxr.ROISet.from_labels(np.array([[1, 0], [0, 2]]))).shape
    (2, 2, 2)
    """
    return as_roiset(rois).to_masks(weighted=True)


def _centers3(rois: ROISet, cents: np.ndarray) -> np.ndarray:
    """``(n, 3)`` ``(zc, yc, xc)``; plane 0 for planar ROIs."""
    if rois.ndim == 2:
        return np.column_stack([np.zeros(len(cents), np.int64), cents])
    return cents


def centered_masks(
    rois: ROISet,
    *,
    width: int = 15,
    fill_value: float = 0.0,
    centroids: Any = None,
    volumetric: bool | None = None,
) -> np.ndarray:
    """Each ROI's weights in a ``(2 width + 1)`` square patch centred on its centroid (cellector's ``get_centered_masks``).

    Parameters
    ----------
    rois : ROISet
    width : int
        Half size of the patch (>= 1); pixels farther than ``width`` from the
        centre are dropped.
    fill_value : float
        Value of the patch outside the ROI.
    centroids : array ``(n_rois, rois.ndim)`` of int, optional
        Centres; default :func:`fluoxr.features.centroids` (weighted mean,
        truncated).
    volumetric : bool, optional
        For volumetric ROIs: per-plane 2-D patches (False) or ``(Lz, P, P)``
        patches (True); default chooses (see the module docstring).

    Returns
    -------
    numpy.ndarray
        ``(n_rois, P, P)`` or ``(n_rois, Lz, P, P)`` float32, ``P = 2 width + 1``.

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> from fluoxr.features import centered_masks
    >>> rois = fluoxr.ROISet.from_labels(np.pad(np.ones((1, 1), int), 3))
    >>> centered_masks(rois, width=1)[0]
    array([[0., 0., 0.],
           [0., 1., 0.],
           [0., 0., 0.]], dtype=float32)
    """
    rois = as_roiset(rois)
    width = check_int(width, "width", min_value=1)
    fill_value = check_number(fill_value, "fill_value") if not _is_nan(fill_value) else np.nan
    vol = _check_volumetric(rois, volumetric)
    cents = _default_centroids(rois) if centroids is None else _check_centroids(centroids, len(rois), rois.ndim)
    c3 = _centers3(rois, cents)
    return kern.scatter_patches(
        rois.roi, (rois.y, rois.x), rois.weight, c3[:, 1:], len(rois), width, fill_value,
        planes=rois.shape[0] if vol else None, z=rois.z if vol else None,
    )


def _default_centroids(rois: ROISet) -> np.ndarray:
    return centroids(rois)


def _is_nan(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and v != v


def centered_reference(
    reference: Any,
    centroids: Any,
    *,
    width: int = 15,
    fill_value: float = 0.0,
    volumetric: bool = False,
) -> np.ndarray:
    """Patches of the reference centred on each centroid (cellector's ``get_centered_reference``).

    Parameters
    ----------
    reference : array ``(Ly, Lx)`` or ``(Lz, Ly, Lx)``
        An image in memory or a lazy one (computed once).
    centroids : array ``(n, reference.ndim)`` of int
        ``(y, x)`` or ``(z, y, x)`` centres, e.g. :func:`centroids`.
    width : int
        Half size of the patch (>= 1).
    fill_value : float
        Value of the patch outside the image.
    volumetric : bool
        With a ``(Lz, Ly, Lx)`` reference: False cuts each patch from the
        centroid's plane ``z`` (cellector's default), True cuts every plane.

    Returns
    -------
    numpy.ndarray
        ``(n, P, P)`` or, volumetric, ``(n, Lz, P, P)`` float32.

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr.features import centered_reference
    >>> centered_reference(np.arange(16.0).reshape(4, 4), [[0, 0]], width=1)[0]
    array([[0., 0., 0.],
           [0., 0., 1.],
           [0., 4., 5.]], dtype=float32)
    """
    width = check_int(width, "width", min_value=1)
    fill_value = check_number(fill_value, "fill_value") if not _is_nan(fill_value) else np.nan
    ref = _check_image(reference, "reference")
    if ref.ndim not in (2, 3):
        raise ValueError(f"reference must be an image (Ly, Lx) or a volume (Lz, Ly, Lx), got shape {ref.shape}")
    if not isinstance(volumetric, (bool, np.bool_)):
        raise TypeError(f"volumetric must be True or False, got {volumetric!r}")
    if volumetric and ref.ndim != 3:
        raise ValueError(f"volumetric=True needs a (Lz, Ly, Lx) reference, got shape {ref.shape}")
    c = np.asarray(centroids)
    if c.ndim != 2 or c.shape[0] == 0:
        raise ValueError(f"centroids must be an (n, {ref.ndim}) array of integer pixel positions, got shape {c.shape}")
    cents = _check_centroids(c, c.shape[0], ref.ndim)
    if ref.ndim == 2:
        ref = ref[None]
        cents = np.column_stack([np.zeros(len(cents), np.int64), cents])
    elif not volumetric:
        bad = (cents[:, 0] < 0) | (cents[:, 0] >= ref.shape[0])
        if bad.any():
            raise ValueError(f"centroids: plane z={int(cents[bad, 0][0])} is outside the reference's "
                             f"{ref.shape[0]} planes")
    pad = kern.pad_reference(ref, width, fill_value)
    return kern.gather_patches(pad, cents, width, volumetric=bool(volumetric))


# --------------------------------------------------------------------------------------------
# stack measures


def center_surround(masks: Any, *, iterations: int = 7, volumetric: bool | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Centre (``masks > 0``) and surround of each centred mask (cellector's ``center_surround``).

    The surround is ``iterations`` binary dilations of the centre with the
    cross structuring element (4-connected; 6-connected in volumetric
    patches, which dilate along ``z`` too), inside the patch, and it
    includes the centre.

    Parameters
    ----------
    masks : array ``(..., P, P)`` or ``(..., Lz, P, P)``
        Centred masks (:func:`centered_masks`).
    iterations : int
        Dilations (>= 1). scipy, and so cellector, would dilate until
        nothing changes for 0; that is no surround, so it is refused.
    volumetric : bool, optional
        Patches are the last 3 axes (True) or the last 2 (False); default:
        True for a 4-D stack.

    Returns
    -------
    center, surround : numpy.ndarray of bool, shaped like ``masks``

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr.features import center_surround
    >>> m = np.zeros((1, 5, 5), np.float32); m[0, 2, 2] = 1
    >>> center_surround(m, iterations=1)[1][0].astype(int)
    array([[0, 0, 0, 0, 0],
           [0, 0, 1, 0, 0],
           [0, 1, 1, 1, 0],
           [0, 0, 1, 0, 0],
           [0, 0, 0, 0, 0]])
    """
    m = _as_stack(masks, "masks")
    k = _patch_ndim(m, volumetric, "masks")
    iterations = check_int(iterations, "iterations", min_value=1)
    center = m > 0
    return center, kern.surround(center, iterations, k)


def surround_filter(
    masks: Any, references: Any, *, iterations: int = 7, volumetric: bool | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Masks and references with NaN outside each surround (cellector's ``surround_filter``).

    The surround (:func:`center_surround`) includes the centre; values
    inside it are kept as they are.

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr.features import surround_filter
    >>> m = np.zeros((1, 5, 5), np.float32); m[0, 2, 2] = 1
    >>> ms, rs = surround_filter(m, np.ones_like(m), iterations=1)
    >>> int(np.isnan(ms).sum()), float(np.nansum(rs))
    (20, 5.0)
    """
    m = _as_stack(masks, "masks")
    r = _as_stack(references, "references")
    k = _patch_ndim(m, volumetric, "masks")
    _check_pair(m, r, k)
    _, surr = center_surround(m, iterations=iterations, volumetric=k == 3)
    return np.where(surr, m, np.nan), np.where(surr, r, np.nan)


def cross_power_spectrum(
    static_image: Any, moving_image: Any, *, eps: float = 1e6, volumetric: bool = False
) -> np.ndarray:
    """Normalised cross-power spectrum ``R / (eps + |R|)``, ``R = F(static) conj(F(moving))``.

    Over the last two axes (three with ``volumetric``); leading axes
    broadcast. ``eps`` defaults to ``1e6`` as in cellector (whose docstring
    says ``1e-8``): see the module docstring for what that does.

    Returns
    -------
    numpy.ndarray of complex128, the broadcast shape of the inputs

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr.features import cross_power_spectrum
    >>> a = np.random.default_rng(0).random((8, 8))
    >>> bool(np.allclose(np.abs(cross_power_spectrum(a, a, eps=1e-12)), 1))
    True
    """
    a = _as_stack(static_image, "static_image")
    b = _as_stack(moving_image, "moving_image")
    k = _patch_ndim(a, bool(volumetric), "static_image")
    _check_pair(a, b, k)
    eps = check_number(eps, "eps", ge=0)
    return kern.cross_power_spectrum(a, b, eps, tuple(range(-k, 0)))


def phase_correlation(static_image: Any, moving_image: Any, *, eps: float = 1e-8, volumetric: bool = False) -> np.ndarray:
    """Phase correlation map: real part of the inverse FFT of :func:`cross_power_spectrum`.

    Value ``[dy, dx]`` measures the match of ``static_image`` with
    ``moving_image`` shifted by ``(dy, dx)`` (cyclically). ``eps`` defaults to
    ``1e-8`` here, as in cellector.

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr.features import phase_correlation
    >>> a = np.random.default_rng(0).random((16, 16))
    >>> pc = phase_correlation(np.roll(a, (2, 3), axis=(0, 1)), a)
    >>> tuple(int(i) for i in np.unravel_index(np.argmax(pc), pc.shape))
    (2, 3)
    """
    k = 3 if volumetric else 2
    r = cross_power_spectrum(static_image, moving_image, eps=eps, volumetric=volumetric)
    import scipy.fft

    return scipy.fft.ifftn(r, axes=tuple(range(-k, 0))).real


def phase_correlation_zero(
    centered_masks: Any,
    centered_reference: Any,
    *,
    eps: float = 1e6,
    volumetric: bool | None = None,
    precision: str = "single",
) -> np.ndarray:
    """Zero-shift phase correlation of each mask with its reference patch (cellector's ``phase_correlation_zero``).

    ``mean(cross_power_spectrum(masks, reference, eps=eps)).real`` over each
    patch, computed with real FFTs. ``eps`` defaults to ``1e6`` as in
    cellector (whose docstring says ``1e-8``).

    ``precision="single"`` (default, twice as fast) takes the FFTs in
    float32 after removing each patch's mean, whose exact float64 sum is the
    zero-frequency term, and sums the spectrum in float64: about 1e-7 of the
    largest value at ``eps=1e6`` and 1e-5 as ``eps`` goes to 0, better than
    cellector's own single-precision FFTs of float32 patches.
    ``precision="double"``: float64 FFTs.

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr.features import phase_correlation_zero
    >>> a = np.random.default_rng(0).random((2, 9, 9))
    >>> phase_correlation_zero(a, a, eps=0.0).round(6).tolist()
    [1.0, 1.0]
    """
    m = _as_stack(centered_masks, "centered_masks")
    r = _as_stack(centered_reference, "centered_reference")
    k = _patch_ndim(m, volumetric, "centered_masks")
    _check_pair(m, r, k)
    eps = check_number(eps, "eps", ge=0)
    check_choice(precision, "precision", PRECISIONS)
    return kern.phase_correlation_zero(m, r, eps, tuple(range(-k, 0)), precision == "single")


def in_vs_out(
    centered_masks: Any, centered_reference: Any, *, iterations: int = 7, volumetric: bool | None = None
) -> np.ndarray:
    """``inside / (inside + surround)``: reference summed over the footprint and over its surround (cellector's ``in_vs_out``).

    The surround includes the footprint (:func:`center_surround`), so for a
    non-negative reference the value is at most 0.5. A total of 0 gives 0.

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr.features import in_vs_out
    >>> m = np.zeros((1, 5, 5), np.float32); m[0, 2, 2] = 1
    >>> in_vs_out(m, np.ones_like(m), iterations=1).tolist()    # 1 / (1 + 5)
    [0.16666666666666666]
    """
    m = _as_stack(centered_masks, "centered_masks")
    r = _as_stack(centered_reference, "centered_reference")
    k = _patch_ndim(m, volumetric, "centered_masks")
    _check_pair(m, r, k)
    center, surr = center_surround(m, iterations=iterations, volumetric=k == 3)
    return _in_vs_out_from(center, surr, r, k)


def _in_vs_out_from(center: np.ndarray, surr: np.ndarray, refs: np.ndarray, k: int) -> np.ndarray:
    inside, outside = kern.in_out_sums(center, surr, refs, k)
    total = inside + outside
    total[total == 0] = np.inf
    return inside / total


def compute_correlation(centered_masks: Any, centered_references: Any, *, volumetric: bool | None = None) -> np.ndarray:
    """Pearson correlation of each mask with its reference patch over the non-NaN pixels (cellector's ``compute_correlation``).

    Meant for the output of :func:`surround_filter` (NaN outside the
    surround). Population statistics (ddof=0); NaN for a patch with no valid
    pixel, inf or NaN where a patch is constant.

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr.features import compute_correlation
    >>> a = np.random.default_rng(0).random((1, 5, 5))
    >>> compute_correlation(a, 2 * a + 1).round(12).tolist()
    [1.0]
    """
    m = _as_stack(centered_masks, "centered_masks")
    r = _as_stack(centered_references, "centered_references")
    k = _patch_ndim(m, volumetric, "centered_masks")
    _check_pair(m, r, k)
    return kern.masked_correlation(m, r, None, k)


def dot_product(rois: ROISet, reference: Any) -> np.ndarray:
    """``reference[pixels] . weights / ||weights||`` per ROI (cellector's ``dot_product``).

    Uses each ROI's own pixels (volumetric ROIs: their own planes), not the
    centred patch. ``reference`` has the ROIs' frame shape; a lazy one is
    computed once. NaN for a ROI whose weights are all 0.

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> from fluoxr.features import dot_product
    >>> rois = fluoxr.ROISet(roi=[0, 0], y=[0, 1], x=[0, 0], weight=[3.0, 4.0], shape=(2, 2))
    >>> dot_product(rois, np.array([[1.0, 0.0], [2.0, 0.0]])).tolist()    # (3 + 8) / 5
    [2.2]
    """
    rois = as_roiset(rois)
    ref = _reference_array(reference, rois.shape)
    return _dot(rois, ref)


def _dot(rois: ROISet, ref: np.ndarray) -> np.ndarray:
    coords = (rois.z, rois.y, rois.x) if rois.ndim == 3 else (rois.y, rois.x)
    return kern.weighted_dot(rois.roi, ref[coords], rois.weight, len(rois))


def bandpass_filter(image: Any, *, lowcut: float | None = None, highcut: float | None = None,
                    order: float = 1.0) -> np.ndarray:
    """Butterworth band-pass of an image (or each plane of a stack), cellector's ``filters.butterworth_bpf``.

    Cut-offs are in cycles per image along each axis (cellector says
    "pixels"); ``lowcut`` alone is a high-pass, ``highcut`` alone a low-pass.
    The image is zero-padded to ``(2 Ly + 1, 2 Lx + 1)`` for the FFT.

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr.features import bandpass_filter
    >>> img = np.random.default_rng(0).random((32, 32))
    >>> bandpass_filter(img, lowcut=2, highcut=10, order=3).shape
    (32, 32)
    """
    img = _check_image(image, "image")
    if img.ndim < 2:
        raise ValueError(f"image must have at least 2 dims, got shape {img.shape}")
    lowcut, highcut, order = _check_bandpass(lowcut, highcut, order)
    if lowcut is None and highcut is None:
        raise ValueError("bandpass_filter needs lowcut, highcut or both (cycles per image)")
    return kern.butterworth_bandpass(img, lowcut, highcut, order)


def _check_bandpass(lowcut: Any, highcut: Any, order: Any) -> tuple[float | None, float | None, float]:
    lowcut = None if lowcut is None else check_number(lowcut, "lowcut", gt=0)
    highcut = None if highcut is None else check_number(highcut, "highcut", gt=0)
    order = check_number(order, "order", gt=0)
    if lowcut is not None and highcut is not None and lowcut > highcut:
        raise ValueError(f"lowcut must be <= highcut, got lowcut={lowcut} and highcut={highcut}")
    return lowcut, highcut, order


# --------------------------------------------------------------------------------------------
# everything at once


def roi_features(
    rois: ROISet,
    reference: Any,
    *,
    width: int = 15,
    iterations: int = 7,
    centroid_method: str = "weightedmean",
    fill_value: float = 0.0,
    eps: float = 1e6,
    window: str | None = None,
    lowcut: float | None = None,
    highcut: float | None = None,
    order: float = 3.0,
    volumetric: bool | None = None,
    precision: str = "single",
    batch_size: int | None = None,
) -> LazyTable:
    """cellector's four features of every ROI against a reference image, in batches of ROIs, as a lazy table.

    Parameters
    ----------
    rois : ROISet
        Planar (frame ``(Ly, Lx)``) or volumetric (``(Lz, Ly, Lx)``) ROIs.
    reference : array-like, dask array or xarray.DataArray
        Image of the ROIs' frame shape, e.g. the mean of a red channel. A
        lazy one (``video.sel(channel=1).mean("time")``) is checked without
        computing it, then computed exactly once.
    width : int
        Half size of the centred patches (>= 1): patches are ``2 width + 1``
        pixels square.
    iterations : int
        Dilations that make the surround (>= 1).
    centroid_method : {"weightedmean", "median"}
        How patches are centred (truncated to int, as cellector).
    fill_value : float
        Patch value outside the ROI and outside the image.
    eps : float
        Regulariser of the phase correlation (cellector's default ``1e6``).
    window : {"hanning", "hamming", "blackman", "bartlett"}, optional
        Window applied to both patches before the phase correlation
        (cellector's pipeline uses ``"hanning"``); default none.
    lowcut, highcut : float, optional
        Butterworth band-pass (cycles per image, :func:`bandpass_filter`)
        applied to the reference before ``dot_product`` and ``corr_coef``, as
        cellector's pipeline does (12 and 250 there); default none.
    order : float
        Order of that band-pass.
    volumetric : bool, optional
        For volumetric ROIs: per-plane (False) or 3-D (True) patches;
        default: per-plane when every ROI lies in one plane.
    precision : {"single", "double"}
        FFTs of the phase correlation (:func:`phase_correlation_zero`):
        single precision after removing each patch's mean (default, about
        1e-7 relative, twice as fast) or double.
    batch_size : int, optional
        ROIs per batch; default keeps each patch stack near 260,000 pixels
        (272 ROIs at ``width=15``, 39 at ``width=40``).

    Returns
    -------
    fluoxr.LazyTable
        Lazy, whatever the reference (one partition per batch of ROIs, its
        length known); ``.compute()`` gives the DataFrame, one row per ROI
        (index ``roi``), columns :data:`FEATURES`:

        - ``phase_corr``: :func:`phase_correlation_zero` of the centred mask
          and reference patches (windowed when ``window``);
        - ``dot_product``: :func:`dot_product` with the (band-passed) reference;
        - ``corr_coef``: :func:`compute_correlation` of mask and (band-passed)
          reference patches inside the surround (:func:`surround_filter`);
        - ``in_vs_out``: :func:`in_vs_out` with the reference patches.

        ``attrs`` records the parameters. ``roi_features(rois, ref,
        **CELLECTOR_DEFAULTS)`` gives what cellector's ``RoiProcessor`` gives
        with its default parameters.

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> from fluoxr.features import roi_features
    >>> labels = np.zeros((40, 40), int); labels[5:10, 5:10] = 1; labels[25:30, 25:30] = 2
    >>> ref = np.where(labels == 2, 5.0, 1.0)
    >>> df = roi_features(fluoxr.ROISet.from_labels(labels), ref, width=8, iterations=3).compute()
    >>> df.shape, bool(df["in_vs_out"][1] > df["in_vs_out"][0])
    ((2, 4), True)
    """
    rois = as_roiset(rois)
    width = check_int(width, "width", min_value=1)
    iterations = check_int(iterations, "iterations", min_value=1)
    check_choice(centroid_method, "centroid_method", CENTROID_METHODS)
    fill_value = check_number(fill_value, "fill_value") if not _is_nan(fill_value) else np.nan
    eps = check_number(eps, "eps", ge=0)
    lowcut, highcut, order = _check_bandpass(lowcut, highcut, order)
    check_choice(precision, "precision", PRECISIONS)
    if window is not None:
        check_choice(window, "window", WINDOWS)
    vol = _check_volumetric(rois, volumetric)
    p = 2 * width + 1
    planes = rois.shape[0] if vol else 1
    if batch_size is None:
        batch_size = max(1, _BATCH_ELEMENTS // (planes * p * p))
    batch_size = check_int(batch_size, "batch_size", min_value=1)

    data = _reference_data(reference, rois.shape)
    n = len(rois)
    c3 = _centers3(rois, centroids(rois, method=centroid_method))
    z = rois.z if rois.ndim == 3 else np.zeros(rois.roi.size, np.int64)
    params = dict(width=width, iterations=iterations, centroid_method=centroid_method, fill_value=fill_value,
                  eps=eps, window=window, lowcut=lowcut, highcut=highcut, order=order, volumetric=vol,
                  precision=precision)
    # One graph on the user's scheduler: the reference (lazy or not) is one
    # node that every batch shares, so it is computed once; batches run in
    # parallel (threads, or a distributed cluster when a client is active).
    # Explicit keys, from one token of all the inputs: dask's default naming
    # (a token per task) costs more than a small batch, and the same inputs
    # give the same keys (so a save of the table can be resumed).
    name = "roi-features-" + dask.base.tokenize(rois.roi, rois.y, rois.x, z, rois.weight, rois.shape, c3, data,
                                                batch_size, params)
    prep = dask.delayed(_prepare, pure=False)(data, rois.ndim, width, fill_value, lowcut, highcut, order,
                                              dask_key_name=f"{name}-reference")
    dot = dask.delayed(_dot_flat, pure=False)(prep, rois.roi, (z, rois.y, rois.x), rois.weight, n,
                                              dask_key_name=f"{name}-dot")
    ptr = rois.indptr
    parts, lengths = [], []
    for i, start in enumerate(range(0, n, batch_size)):
        stop = min(n, start + batch_size)
        a, b = ptr[start], ptr[stop]
        batch = dask.delayed(_batch, pure=False)(
            prep, rois.roi[a:b] - start, (z[a:b], rois.y[a:b], rois.x[a:b]), rois.weight[a:b],
            c3[start:stop], width, iterations, fill_value, eps, window, vol, precision == "single",
            dask_key_name=(f"{name}-batch", i),
        )
        # one partition of the table per batch of ROIs
        parts.append(dask.delayed(_feature_frame, pure=False)(batch, dot, start, stop, dask_key_name=(name, i)))
        lengths.append(stop - start)
    return LazyTable(parts, _feature_frame(np.empty((0, 3)), np.empty(0), 0, 0), dim="roi", lengths=lengths,
                     attrs=params)


def _feature_frame(batch: np.ndarray, dots: np.ndarray, start: int, stop: int) -> pd.DataFrame:
    """Rows ``start:stop`` of the features table, from one batch's (phase_corr, corr_coef, in_vs_out) and every dot."""
    out = {"phase_corr": batch[:, 0], "dot_product": dots[start:stop], "corr_coef": batch[:, 1],
           "in_vs_out": batch[:, 2]}
    return pd.DataFrame(out, index=pd.RangeIndex(start, stop, name="roi"), columns=list(FEATURES))


def _prepare(ref: Any, ndim: int, width: int, fill_value: float, lowcut: float | None, highcut: float | None,
             order: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ref3 = np.asarray(ref)
    return kern.prepare_reference(ref3 if ndim == 3 else ref3[None], width, fill_value, lowcut, highcut, order)


def _dot_flat(prepared: tuple[np.ndarray, np.ndarray, np.ndarray], roi: np.ndarray, coords: tuple[np.ndarray, ...],
              weight: np.ndarray, n: int) -> np.ndarray:
    return kern.weighted_dot(roi, prepared[2][coords], weight, n)


def _batch(prepared: tuple[np.ndarray, np.ndarray, np.ndarray], *args: Any) -> np.ndarray:
    return kern.feature_batch(prepared[0], prepared[1], *args)


def reference_image(video: Any, *, channel: Any = None) -> xr.DataArray:
    """Lazy mean over time of one channel of a video: the usual reference for :func:`roi_features`.

    Parameters
    ----------
    video : xarray.DataArray
        ``("time", [z], [channel], "y", "x")``.
    channel : optional
        Channel to average (a label of the ``channel`` coordinate); required
        when the video has a ``channel`` dim, refused when it has none.

    Returns
    -------
    xarray.DataArray
        ``("y", "x")`` or ``("z", "y", "x")`` float64, lazy (a tree reduction
        over time, one read of the channel).

    Examples
    --------
    >>> from fluoxr.datasets import calcium_neurons
    >>> from fluoxr.features import reference_image
    >>> video, truth = calcium_neurons(n_frames=20, shape=(32, 32), n_cells=3, red_fraction=0.5)
    >>> reference_image(video, channel=1).dims
    ('y', 'x')
    """
    video = check_video(video)
    if "channel" in video.dims:
        if channel is None:
            labels = video["channel"].values.tolist() if "channel" in video.coords else list(range(video.sizes["channel"]))
            raise ValueError(f"channel is required: the video has a 'channel' dim with {labels}; "
                             "pass e.g. channel=1 for the anatomical channel")
        try:
            video = video.sel(channel=channel)
        except (KeyError, IndexError):
            labels = video["channel"].values.tolist() if "channel" in video.coords else list(range(video.sizes["channel"]))
            raise ValueError(f"channel must be one of {labels}, got {channel!r}") from None
        if "channel" in video.dims:
            raise ValueError(f"channel must be one channel label, got {channel!r}")
    elif channel is not None:
        raise ValueError(f"channel={channel!r} was given, but the video has no 'channel' dim (dims {video.dims})")
    out = video.mean("time", dtype=np.float64)
    return out.drop_vars([c for c in ("channel",) if c in out.coords]).rename("reference")


def roc_auc(scores: Any, labels: Any) -> float:
    """Area under the ROC curve of ``scores`` for separating ``labels`` (Mann-Whitney U / (n1 n0)).

    1 means every positive scores above every negative, 0.5 chance; ties
    count one half. ROIs whose score is NaN are left out.

    Examples
    --------
    >>> from fluoxr.features import roc_auc
    >>> roc_auc([0.1, 0.4, 0.35, 0.8], [False, False, True, True])
    0.75
    """
    s = np.asarray(scores, np.float64).ravel()
    lab = np.asarray(labels).ravel()
    if lab.dtype != bool:
        if not np.all(np.isin(lab, (0, 1))):
            raise ValueError("labels must be boolean (or 0/1)")
        lab = lab.astype(bool)
    if s.shape != lab.shape:
        raise ValueError(f"scores and labels must have the same length, got {s.size} and {lab.size}")
    ok = ~np.isnan(s)
    s, lab = s[ok], lab[ok]
    if lab.all() or not lab.any():
        raise ValueError("labels must hold both classes (some True and some False) among the non-NaN scores")
    return kern.roc_auc(s, lab)
