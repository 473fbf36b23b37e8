"""Regions of interest: one flat, vectorised model for suite2p stats, label images, masks and positions.

A :class:`ROISet` holds one row per (ROI, pixel): flat arrays ``roi``, ``y``,
``x`` (and ``z`` for volumes) and ``weight``, sorted by ROI, plus the frame
shape and a per-ROI metadata table. Everything that cellector does with lists
of per-ROI arrays (``flatten_roi_data``, ``cat_planes``, ``split_planes``,
``transpose``, ``broadcastable``) is a plain array operation here.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from ._options import get_options
from ._validate import check_choice, check_int

logger = logging.getLogger(__name__)

__all__ = ["ROISet", "WINDOWS"]

WINDOWS = ("rect", "disc", "pixel")


def _frame_shape(shape: Any, name: str = "shape") -> tuple[int, ...]:
    if not isinstance(shape, (tuple, list)) or len(shape) not in (2, 3):
        raise ValueError(f"{name} must be the frame shape (Ly, Lx) or (Lz, Ly, Lx), got {shape!r}")
    return tuple(check_int(s, f"{name}[{i}]", min_value=1) for i, s in enumerate(shape))


@dataclass(frozen=True, eq=False)
class ROISet:
    """A set of ROIs as flat per-pixel arrays.

    Parameters
    ----------
    roi, y, x : array of int
        ROI index (0..n-1) and pixel coordinates of every (ROI, pixel) entry.
    weight : array of float
        Weight of each entry (suite2p's ``lam``; 1 for plain masks).
    shape : tuple of int
        Frame shape ``(Ly, Lx)``, or ``(Lz, Ly, Lx)`` for volumetric ROIs.
    z : array of int, optional
        Plane of each entry, for volumetric ROIs (``len(shape) == 3``).
    overlap : array of bool, optional
        Per entry, True where the pixel belongs to several ROIs (suite2p's
        ``overlap``); computed from the pixels when not given.
    meta : pandas.DataFrame, optional
        One row per ROI (e.g. ``radius``, ``label``).

    Entries are sorted by ROI on construction; every ROI must have at least
    one pixel and every pixel must lie inside the frame.

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr import ROISet
    >>> labels = np.array([[0, 1, 1], [0, 2, 0]])
    >>> rois = ROISet.from_labels(labels)
    >>> len(rois), rois.npix.tolist()
    (2, [2, 1])
    """

    roi: np.ndarray
    y: np.ndarray
    x: np.ndarray
    weight: np.ndarray
    shape: tuple[int, ...]
    z: np.ndarray | None = None
    overlap: np.ndarray | None = None
    meta: pd.DataFrame = field(default_factory=pd.DataFrame)

    def __post_init__(self) -> None:
        shape = _frame_shape(self.shape)
        roi = np.asarray(self.roi)
        if roi.ndim != 1:
            raise ValueError(f"roi must be a 1-D array of ROI indices, got shape {roi.shape}")
        n_entries = roi.size
        arrays = {"y": self.y, "x": self.x, "weight": self.weight}
        if len(shape) == 3:
            if self.z is None:
                raise ValueError(f"z is required for volumetric ROIs (shape {shape} has 3 dims)")
            arrays["z"] = self.z
        elif self.z is not None:
            raise ValueError(f"z is given but shape {shape} has 2 dims; pass shape=(Lz, Ly, Lx)")
        conv: dict[str, np.ndarray] = {}
        for name, arr in arrays.items():
            a = np.asarray(arr)
            if a.shape != (n_entries,):
                raise ValueError(f"{name} must have one entry per pixel ({n_entries}), got shape {a.shape}")
            conv[name] = a
        for name in ("y", "x", "z"):
            if name in conv:
                a = conv[name]
                if a.size and (a.dtype.kind not in "iu" and not np.all(np.mod(a, 1) == 0)):
                    raise ValueError(f"{name} must hold integer pixel coordinates, got non-integer values")
                conv[name] = a.astype(np.int64)
        if roi.size and roi.dtype.kind not in "iu":
            if not np.all(np.mod(roi, 1) == 0):
                raise ValueError("roi must hold integer ROI indices")
        roi = roi.astype(np.int64)
        w = conv["weight"]
        if w.dtype.kind not in "biuf":
            raise TypeError(f"weight must be numeric, got dtype {w.dtype}")
        w = w.astype(np.float32) if w.dtype != np.float64 else w
        if w.size and not np.all(np.isfinite(w)):
            raise ValueError("weight must be finite (found NaN or inf)")
        if roi.size == 0:
            raise ValueError("rois: a ROISet needs at least one ROI with at least one pixel, got none")
        n = int(roi.max()) + 1
        if roi.size and roi.min() < 0:
            raise ValueError(f"roi indices must be >= 0, got {int(roi.min())}")
        counts = np.bincount(roi, minlength=n)
        if np.any(counts == 0):
            empty = np.flatnonzero(counts == 0)
            raise ValueError(f"rois: ROI(s) {empty[:10].tolist()} have no pixels; every ROI needs at least one")
        coords = [conv.get("z"), conv["y"], conv["x"]] if len(shape) == 3 else [conv["y"], conv["x"]]
        names = ["z", "y", "x"] if len(shape) == 3 else ["y", "x"]
        for name, c, size in zip(names, coords, shape):
            if c.size and (c.min() < 0 or c.max() >= size):
                bad = int(c[(c < 0) | (c >= size)][0])
                raise ValueError(
                    f"rois: {name} coordinate {bad} is outside the frame (shape {shape}); "
                    f"{name} must be in [0, {size - 1}]"
                )
        order = np.argsort(roi, kind="stable")
        sorted_ = bool(np.all(order == np.arange(order.size)))
        take = (lambda a: a) if sorted_ else (lambda a: a[order])
        overlap = self.overlap
        if overlap is not None:
            overlap = np.asarray(overlap, bool)
            if overlap.shape != (n_entries,):
                raise ValueError(f"overlap must have one entry per pixel ({n_entries}), got shape {overlap.shape}")
            overlap = take(overlap)
        meta = self.meta if self.meta is not None else pd.DataFrame()
        if not isinstance(meta, pd.DataFrame):
            meta = pd.DataFrame(meta)
        if len(meta.columns) and len(meta) != n:
            raise ValueError(f"meta must have one row per ROI ({n}), got {len(meta)}")
        meta = meta.reset_index(drop=True) if len(meta.columns) else pd.DataFrame(index=pd.RangeIndex(n))
        object.__setattr__(self, "shape", shape)
        object.__setattr__(self, "roi", take(roi))
        object.__setattr__(self, "y", take(conv["y"]))
        object.__setattr__(self, "x", take(conv["x"]))
        object.__setattr__(self, "z", take(conv["z"]) if "z" in conv else None)
        object.__setattr__(self, "weight", take(w))
        object.__setattr__(self, "meta", meta)
        if overlap is None:
            overlap = self._compute_overlap()
        object.__setattr__(self, "overlap", overlap)
        for a in (self.roi, self.y, self.x, self.weight, self.overlap) + ((self.z,) if self.z is not None else ()):
            a.setflags(write=False)

    # -- basic properties ---------------------------------------------------------------------
    def __len__(self) -> int:
        return int(self.roi[-1]) + 1 if self.roi.size else 0

    def __repr__(self) -> str:
        return f"<ROISet: {len(self)} ROIs, {self.roi.size} pixels, frame shape {self.shape}>"

    @property
    def ndim(self) -> int:
        """2 for planar ROIs, 3 for volumetric ones."""
        return len(self.shape)

    @property
    def npix(self) -> np.ndarray:
        """Number of pixels of each ROI."""
        return np.bincount(self.roi, minlength=len(self))

    @property
    def indptr(self) -> np.ndarray:
        """Start of each ROI's entries in the flat arrays (length ``len(self) + 1``)."""
        return np.concatenate([[0], np.cumsum(self.npix)])

    @property
    def flat_index(self) -> np.ndarray:
        """Raveled pixel index of every entry in the frame (C order)."""
        coords = (self.z, self.y, self.x) if self.ndim == 3 else (self.y, self.x)
        return np.ravel_multi_index(coords, self.shape)

    def _compute_overlap(self) -> np.ndarray:
        counts = np.bincount(self.flat_index, minlength=int(np.prod(self.shape)))
        return counts[self.flat_index] > 1

    def pixels(self, i: int) -> dict[str, np.ndarray]:
        """The entries of ROI ``i``: ``y``, ``x`` (``z``), ``weight``, ``overlap``."""
        i = check_int(i, "i", min_value=-len(self), max_value=len(self) - 1) % max(len(self), 1)
        a, b = self.indptr[i], self.indptr[i + 1]
        out = {"y": self.y[a:b], "x": self.x[a:b], "weight": self.weight[a:b], "overlap": self.overlap[a:b]}
        if self.z is not None:
            out["z"] = self.z[a:b]
        return out

    # -- selection ----------------------------------------------------------------------------
    def __getitem__(self, key: Any) -> "ROISet":
        """Select ROIs by index, slice, integer array or boolean mask; they are renumbered 0..m-1."""
        n = len(self)
        if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
            key = [int(key)]
        if isinstance(key, slice):
            idx = np.arange(n)[key]
        else:
            arr = np.asarray(key)
            if arr.dtype == bool:
                if arr.shape != (n,):
                    raise ValueError(f"a boolean selection must have one entry per ROI ({n}), got shape {arr.shape}")
                idx = np.flatnonzero(arr)
            elif arr.dtype.kind in "iu" or arr.size == 0:
                idx = arr.astype(np.int64).ravel()
                if idx.size and (idx.min() < -n or idx.max() >= n):
                    raise IndexError(f"ROI index out of range for {n} ROIs: {idx[(idx < -n) | (idx >= n)][:5].tolist()}")
                idx = idx % n if n else idx
            else:
                raise TypeError(f"ROIs are selected by int, slice, int array or boolean mask, got {arr.dtype}")
        if idx.size == 0:
            raise ValueError("the selection holds no ROI; a ROISet needs at least one ROI")
        ptr = self.indptr
        entries = np.concatenate([np.arange(ptr[i], ptr[i + 1]) for i in idx])
        new_roi = np.repeat(np.arange(idx.size), self.npix[idx])
        return ROISet(
            roi=new_roi, y=self.y[entries], x=self.x[entries], weight=self.weight[entries], shape=self.shape,
            z=None if self.z is None else self.z[entries], overlap=self.overlap[entries],
            meta=self.meta.iloc[idx].reset_index(drop=True),
        )

    @classmethod
    def concat(cls, sets: Sequence["ROISet"]) -> "ROISet":
        """ROIs of several sets (same frame shape) one after the other."""
        sets = list(sets)
        if not sets:
            raise ValueError("sets must hold at least one ROISet")
        shape = sets[0].shape
        for s in sets:
            if not isinstance(s, ROISet):
                raise TypeError(f"sets must hold ROISets, got {type(s).__name__}")
            if s.shape != shape:
                raise ValueError(f"all ROISets must share one frame shape, got {shape} and {s.shape}")
        offsets = np.cumsum([0] + [len(s) for s in sets])
        return cls(
            roi=np.concatenate([s.roi + o for s, o in zip(sets, offsets)]),
            y=np.concatenate([s.y for s in sets]), x=np.concatenate([s.x for s in sets]),
            weight=np.concatenate([s.weight for s in sets]), shape=shape,
            z=None if sets[0].z is None else np.concatenate([s.z for s in sets]),
            meta=pd.concat([s.meta for s in sets], ignore_index=True),
        )

    # -- conversions --------------------------------------------------------------------------
    def to_sparse(self, *, normalize: bool = False, dtype: Any = np.float32) -> Any:
        """Weights as a ``scipy.sparse.csr_matrix`` of shape ``(n_rois, n_pixels)``.

        Columns are raveled pixel indices of the frame (C order). With
        ``normalize``, each ROI's weights sum to 1 (a weighted mean).

        Examples
        --------
        >>> import numpy as np
        >>> from fluoxr import ROISet
        >>> ROISet.from_labels(np.array([[1, 1], [0, 2]])).to_sparse(normalize=True).toarray()
        array([[0.5, 0.5, 0. , 0. ],
               [0. , 0. , 0. , 1. ]], dtype=float32)
        """
        import scipy.sparse as sp

        w = self.weight.astype(np.float64)
        if normalize:
            sums = np.bincount(self.roi, weights=w, minlength=len(self))
            if np.any(sums == 0):
                bad = np.flatnonzero(sums == 0)[:10].tolist()
                raise ValueError(f"rois: ROI(s) {bad} have weights summing to 0; cannot normalise")
            w = w / sums[self.roi]
        m = sp.csr_matrix((w.astype(dtype), (self.roi, self.flat_index)), shape=(len(self), int(np.prod(self.shape))))
        m.sum_duplicates()
        return m

    def to_masks(self, *, weighted: bool = False) -> np.ndarray:
        """Dense stack ``(n_rois, *shape)``: bool masks, or the weights with ``weighted``."""
        out = np.zeros((len(self),) + self.shape, np.float32 if weighted else bool)
        coords = (self.roi, self.z, self.y, self.x) if self.ndim == 3 else (self.roi, self.y, self.x)
        out[coords] = self.weight if weighted else True
        return out

    def to_label_image(self) -> np.ndarray:
        """Label image (0 = background, ROI i -> i + 1); where ROIs overlap the later ROI wins."""
        out = np.zeros(self.shape, np.int32 if len(self) < 2**31 - 1 else np.int64)
        coords = (self.z, self.y, self.x) if self.ndim == 3 else (self.y, self.x)
        out[coords] = self.roi + 1
        return out

    def centroids(self, *, method: str = "weightedmean") -> np.ndarray:
        """Centroid of each ROI, ``(n_rois, ndim)`` float: ``(y, x)`` or ``(z, y, x)``.

        ``method="weightedmean"`` weights pixels by ``weight`` (plain mean
        when all weights are equal); ``"median"`` takes the median of each
        coordinate.
        """
        check_choice(method, "method", ("weightedmean", "median"))
        coords = (self.z, self.y, self.x) if self.ndim == 3 else (self.y, self.x)
        n = len(self)
        if method == "weightedmean":
            w = self.weight.astype(np.float64)
            sw = np.bincount(self.roi, weights=w, minlength=n)
            if np.any(sw == 0):
                raise ValueError("rois: a ROI has weights summing to 0; use method='median'")
            return np.stack([np.bincount(self.roi, weights=w * c, minlength=n) / sw for c in coords], 1)
        ptr = self.indptr
        out = np.empty((n, len(coords)))
        for j, c in enumerate(coords):
            # sort coordinates within each ROI, then take the middle element(s)
            order = np.lexsort((c, self.roi))
            sc = c[order].astype(np.float64)
            lo = ptr[:-1] + (self.npix - 1) // 2
            hi = ptr[:-1] + self.npix // 2
            out[:, j] = (sc[lo] + sc[hi]) / 2
        return out

    def to_suite2p(self) -> list[dict[str, Any]]:
        """suite2p-like ``stat``: a list of dicts with ``ypix``, ``xpix`` (``zpix``), ``lam``, ``overlap``, ``npix``."""
        out = []
        ptr = self.indptr
        for i in range(len(self)):
            a, b = ptr[i], ptr[i + 1]
            d: dict[str, Any] = {"ypix": self.y[a:b].astype(np.int32), "xpix": self.x[a:b].astype(np.int32),
                                 "lam": self.weight[a:b].astype(np.float32), "overlap": self.overlap[a:b].copy(),
                                 "npix": int(b - a)}
            if self.z is not None:
                d["zpix"] = self.z[a:b].astype(np.int32)
            for col in self.meta.columns:
                d[col] = self.meta[col].iloc[i]
            out.append(d)
        return out

    # -- constructors -------------------------------------------------------------------------
    @classmethod
    def from_suite2p(cls, stat: Sequence[Mapping[str, Any]], shape: Sequence[int]) -> "ROISet":
        """From suite2p's ``stat`` (list of dicts with ``ypix``, ``xpix``, ``lam``; optional ``overlap``, ``radius``).

        ``lam`` defaults to ones; a ``zpix`` entry makes the set volumetric
        (then ``shape`` is ``(Lz, Ly, Lx)``). Per-ROI scalars (``radius``,
        ``med``, ``npix``...) go to ``meta``. Read ``stat.npy`` with
        :func:`fluoxr.read_suite2p_stat`.

        Examples
        --------
        >>> import numpy as np
        >>> from fluoxr import ROISet
        >>> stat = [dict(ypix=np.array([1, 1]), xpix=np.array([2, 3]), lam=np.array([0.5, 1.0]), radius=1.0)]
        >>> ROISet.from_suite2p(stat, (4, 5)).meta["radius"].tolist()
        [1.0]
        """
        shape = _frame_shape(shape)
        if isinstance(stat, np.ndarray):
            stat = list(stat)
        if not isinstance(stat, Sequence) or isinstance(stat, (str, bytes)):
            raise TypeError(f"stat must be a list of dicts (suite2p's stat), got {type(stat).__name__}")
        if len(stat) == 0:
            raise ValueError("stat holds no ROI; a ROISet needs at least one ROI")
        ys, xs, zs, ws, ovs, rois = [], [], [], [], [], []
        meta_rows = []
        has_overlap = all("overlap" in s for s in stat)
        volumetric = len(shape) == 3
        for i, s in enumerate(stat):
            if not isinstance(s, Mapping) or "ypix" not in s or "xpix" not in s:
                raise ValueError(f"stat[{i}] must be a dict with 'ypix' and 'xpix'")
            y = np.asarray(s["ypix"]).ravel()
            x = np.asarray(s["xpix"]).ravel()
            if y.shape != x.shape:
                raise ValueError(f"stat[{i}]: ypix and xpix differ in length ({y.size} vs {x.size})")
            if y.size == 0:
                raise ValueError(f"stat[{i}] is an empty ROI (no pixels)")
            lam = np.asarray(s.get("lam", np.ones(y.size))).ravel()
            if lam.shape != y.shape:
                raise ValueError(f"stat[{i}]: lam has {lam.size} entries for {y.size} pixels")
            if volumetric:
                if "zpix" not in s:
                    raise ValueError(f"stat[{i}] has no 'zpix' but shape {shape} is volumetric")
                zs.append(np.broadcast_to(np.asarray(s["zpix"]).ravel(), y.shape))
            ys.append(y)
            xs.append(x)
            ws.append(lam)
            rois.append(np.full(y.size, i))
            if has_overlap:
                ovs.append(np.asarray(s["overlap"], bool).ravel())
            meta_rows.append({k: v for k, v in s.items()
                              if k not in ("ypix", "xpix", "zpix", "lam", "overlap") and np.ndim(v) == 0})
        return cls(
            roi=np.concatenate(rois), y=np.concatenate(ys), x=np.concatenate(xs), weight=np.concatenate(ws),
            shape=shape, z=np.concatenate(zs) if volumetric else None,
            overlap=np.concatenate(ovs) if has_overlap else None, meta=pd.DataFrame(meta_rows),
        )

    @classmethod
    def from_suite2p_masks(cls, masks: Sequence[Any], shape: Sequence[int]) -> "ROISet":
        """From suite2p's precomputed masks: ``cell_masks`` (``(pixels, weights)`` pairs) or ``neuropil_masks``.

        suite2p's ``create_masks`` returns cell masks as a list of
        ``(flat_pixel_indices, lam_normed)`` tuples and neuropil masks as a
        list of flat index arrays (weight 1 each); either is taken here, as
        the masks suite2p's ``extraction_wrapper`` accepts precomputed. Pixel
        indices are raveled in C order over ``shape = (Ly, Lx)``. The masks are
        used as given: no pixel is marked as an overlap, so :func:`fluoxr.extract`
        keeps every pixel (it rescales each ROI's weights to sum 1, which
        suite2p's ``lam_normed`` already do).

        Parameters
        ----------
        masks : sequence
            One entry per ROI: ``(pixels, weights)`` or ``pixels``.
        shape : (Ly, Lx)
            The frame the indices ravel over.

        Examples
        --------
        >>> import numpy as np
        >>> from fluoxr import ROISet
        >>> cell_masks = [(np.array([1, 2]), np.array([0.25, 0.75])), (np.array([5]), np.array([1.0]))]
        >>> rois = ROISet.from_suite2p_masks(cell_masks, (2, 4))
        >>> rois.npix.tolist(), rois.y.tolist(), rois.x.tolist()
        ([2, 1], [0, 0, 1], [1, 2, 1])
        """
        shape = _frame_shape(shape)
        if len(shape) != 2:
            raise ValueError(f"shape must be the planar frame (Ly, Lx) suite2p's masks ravel over, got {shape}")
        if isinstance(masks, np.ndarray) and masks.dtype != object:
            raise TypeError("masks must be a list with one entry per ROI (suite2p's cell_masks or neuropil_masks), "
                            f"got a {masks.ndim}-D {masks.dtype} array")
        if not isinstance(masks, (Sequence, np.ndarray)) or isinstance(masks, (str, bytes)):
            raise TypeError(f"masks must be a list of suite2p masks, got {type(masks).__name__}")
        if len(masks) == 0:
            raise ValueError("masks holds no ROI; a ROISet needs at least one ROI")
        n_pixels = shape[0] * shape[1]
        flats, weights, rois = [], [], []
        for i, m in enumerate(masks):
            if isinstance(m, tuple) or (isinstance(m, list) and len(m) == 2 and np.ndim(m[0]) == 1):
                if len(m) != 2:
                    raise ValueError(f"masks[{i}] must be (pixels, weights), got {len(m)} items")
                pix, w = np.asarray(m[0]).ravel(), np.asarray(m[1], np.float64).ravel()
                if w.shape != pix.shape:
                    raise ValueError(f"masks[{i}]: {w.size} weights for {pix.size} pixels")
            else:
                pix = np.asarray(m).ravel()
                w = np.ones(pix.size)
            if pix.size == 0:
                raise ValueError(f"masks[{i}] is empty (no pixel); suite2p gives an empty mask to a ROI whose "
                                 "pixels all overlap others: drop it or recompute the masks with allow_overlap")
            if pix.dtype.kind not in "iu" and not np.all(np.mod(pix, 1) == 0):
                raise ValueError(f"masks[{i}]: pixel indices must be integers")
            pix = pix.astype(np.int64)
            if pix.min() < 0 or pix.max() >= n_pixels:
                raise ValueError(f"masks[{i}]: pixel index {int(pix[(pix < 0) | (pix >= n_pixels)][0])} is outside "
                                 f"a {shape} frame ({n_pixels} pixels)")
            flats.append(pix)
            weights.append(w)
            rois.append(np.full(pix.size, i))
        flat = np.concatenate(flats)
        y, x = np.divmod(flat, shape[1])
        return cls(roi=np.concatenate(rois), y=y, x=x, weight=np.concatenate(weights), shape=shape,
                   overlap=np.zeros(flat.size, bool))

    @classmethod
    def from_labels(cls, labels: Any) -> "ROISet":
        """From a label image (2-D or 3-D; 0 is background); ROIs in increasing label order.

        ``meta["label"]`` keeps each ROI's label.
        """
        lab = np.asarray(labels)
        if lab.ndim not in (2, 3):
            raise ValueError(f"labels must be a 2-D (or 3-D) label image, got {lab.ndim} dims (shape {lab.shape})")
        if lab.dtype.kind not in "iub":
            if lab.dtype.kind == "f" and np.all(np.mod(lab, 1) == 0):
                lab = lab.astype(np.int64)
            else:
                raise TypeError(f"labels must hold integer labels, got dtype {lab.dtype}")
        if lab.size and lab.min() < 0:
            raise ValueError("labels must be >= 0 (0 is background)")
        flat = lab.ravel().astype(np.int64)
        idx = np.flatnonzero(flat)
        if idx.size == 0:
            raise ValueError("labels holds no ROI (all pixels are 0)")
        values, roi = np.unique(flat[idx], return_inverse=True)
        coords = np.unravel_index(idx, lab.shape)
        kw: dict[str, Any] = {"z": coords[0]} if lab.ndim == 3 else {}
        return cls(roi=roi, y=coords[-2], x=coords[-1], weight=np.ones(idx.size, np.float32), shape=lab.shape,
                   meta=pd.DataFrame({"label": values}), **kw)

    @classmethod
    def from_masks(cls, masks: Any) -> "ROISet":
        """From a stack of masks ``(n_rois, Ly, Lx)`` (or ``(n_rois, Lz, Ly, Lx)``): bool, or weights (nonzero = in)."""
        m = np.asarray(masks)
        if m.ndim not in (3, 4):
            raise ValueError(f"masks must be a stack (n_rois, Ly, Lx), got {m.ndim} dims (shape {m.shape})")
        if m.shape[0] == 0:
            raise ValueError("masks holds no ROI")
        if m.dtype.kind not in "biuf":
            raise TypeError(f"masks must be boolean or numeric, got dtype {m.dtype}")
        empty = np.flatnonzero(~m.reshape(m.shape[0], -1).any(1))
        if empty.size:
            raise ValueError(f"masks: ROI(s) {empty[:10].tolist()} are empty (no nonzero pixel)")
        coords = np.nonzero(m)
        weight = np.ones(coords[0].size, np.float32) if m.dtype == bool else m[coords]
        kw: dict[str, Any] = {"z": coords[1]} if m.ndim == 4 else {}
        return cls(roi=coords[0], y=coords[-2], x=coords[-1], weight=weight, shape=m.shape[1:], **kw)

    @classmethod
    def from_positions(
        cls,
        positions: Any,
        shape: Sequence[int],
        *,
        size: int = 5,
        window: str | None = None,
    ) -> "ROISet":
        """Windows around point positions, with optimap's window semantics.

        Parameters
        ----------
        positions : array-like ``(n, 2)``
            ``(y, x)`` rows (row, column). optimap's ``extract_traces`` takes
            ``(x, y)`` pairs despite its docstring (it reads ``video[:, c1,
            c0]``): convert optimap coordinates with ``positions[:, ::-1]``.
        shape : (Ly, Lx)
            Frame shape.
        size : int
            Window size in pixels.
        window : {"rect", "disc", "pixel"}, optional
            ``"rect"``: rows ``[y - size//2, y + size//2 + size%2)`` (same for
            columns), clipped at the borders (the window shrinks; an even
            size is shifted one pixel to the top left). ``"disc"``: pixels
            within ``size / 2`` of the position (diameter ``size``).
            ``"pixel"``: the pixel itself (``size`` is ignored; a rect or disc
            of size 0 or 1 is also one pixel). Default: option
            ``trace_window`` (``"rect"``).

        Examples
        --------
        >>> from fluoxr import ROISet
        >>> ROISet.from_positions([(0, 0), (5, 5)], (10, 10), size=4).npix.tolist()
        [4, 16]
        """
        shape = _frame_shape(shape)
        if len(shape) != 2:
            raise ValueError(f"shape must be the frame shape (Ly, Lx) for positions, got {shape}")
        window = get_options()["trace_window"] if window is None else window
        check_choice(window, "window", WINDOWS)
        size = check_int(size, "size", min_value=0)
        pos = np.asarray(positions)
        if pos.ndim == 1 and pos.size == 2:
            pos = pos[None]
        if pos.ndim != 2 or pos.shape[1] != 2 or pos.shape[0] == 0:
            raise ValueError(f"positions must be (n, 2) rows of (y, x) with n >= 1, got shape {pos.shape}")
        if pos.dtype.kind not in "iu":
            if pos.dtype.kind != "f" or not np.all(np.mod(pos, 1) == 0):
                raise ValueError("positions must be integer pixel coordinates (y, x)")
            pos = pos.astype(np.int64)
        outside = (pos[:, 0] < 0) | (pos[:, 0] >= shape[0]) | (pos[:, 1] < 0) | (pos[:, 1] >= shape[1])
        if outside.any():
            i = int(np.flatnonzero(outside)[0])
            raise ValueError(
                f"positions[{i}] = (y={int(pos[i, 0])}, x={int(pos[i, 1])}) is outside the frame (shape {shape}); "
                "positions are (y, x) rows (for optimap's (x, y) pairs use positions[:, ::-1])"
            )
        if window == "pixel" or size <= 1:
            dy = dx = np.zeros(1, np.int64)
        elif window == "rect":
            r = np.arange(-(size // 2), size // 2 + size % 2)
            dy, dx = (a.ravel() for a in np.meshgrid(r, r, indexing="ij"))
        else:
            R = int(np.ceil(size / 2))
            gy, gx = np.mgrid[-R : R + 1, -R : R + 1]
            keep = gy**2 + gx**2 <= (size / 2) ** 2
            dy, dx = gy[keep], gx[keep]
        yy = pos[:, :1] + dy[None]
        xx = pos[:, 1:] + dx[None]
        inside = (yy >= 0) & (yy < shape[0]) & (xx >= 0) & (xx < shape[1])
        roi = np.broadcast_to(np.arange(pos.shape[0])[:, None], yy.shape)[inside]
        meta = pd.DataFrame({"y": pos[:, 0], "x": pos[:, 1], "window": window, "size": size})
        return cls(roi=roi, y=yy[inside], x=xx[inside], weight=np.ones(int(inside.sum()), np.float32),
                   shape=shape, meta=meta)


def as_roiset(rois: Any, name: str = "rois") -> ROISet:
    """Check that ``rois`` is a ROISet (the error names the argument)."""
    if not isinstance(rois, ROISet):
        hint = ""
        if isinstance(rois, (list, tuple)) and rois and isinstance(rois[0], Mapping):
            hint = "; convert suite2p stats with ROISet.from_suite2p(stat, shape)"
        elif isinstance(rois, np.ndarray):
            hint = "; convert with ROISet.from_labels(...) or ROISet.from_masks(...)"
        raise TypeError(f"{name} must be a fluoxr.ROISet, got {type(rois).__name__}{hint}")
    return rois


def check_frame_shape(rois: ROISet, frame_shape: Iterable[int], name: str = "rois") -> None:
    """Raise unless the ROIs were defined on frames of ``frame_shape``."""
    frame_shape = tuple(int(s) for s in frame_shape)
    if rois.shape != frame_shape:
        raise ValueError(f"{name} were defined on frames of shape {rois.shape}, but the frames have shape {frame_shape}")
