"""Cellects' cluster flux study (``ClusterFluxStudy.update_flux`` as Cellects' MotionAnalysis drove it), as kernels.

Pure NumPy/SciPy functions of in-memory frames; the lazy, chunked driver is
:func:`fluoxr.oscillations.track_clusters` with ``compat="cellects"``. Every
rule below is Cellects' (read from its source), restated without OpenCV:

- :func:`cellects_cc` is Cellects' ``cc()``: the 8-connected components of a
  binary frame numbered as OpenCV numbers them (in the raster order of their
  first 2 x 2 block, rows taken in pairs), the background included as item 0,
  ranked by area (largest first, equal areas: the later OpenCV label first,
  i.e. a *stable* argsort reversed -- Cellects' own unstable argsort leaves
  that order to the NumPy build), then Cellects' "background swap" when an
  item touching more than two image borders is not ranked first. The item
  ranked ``i`` gets the value ``i``.
- :func:`reduce_quadrants` and :func:`minimal_distance` are Cellects'
  ``reduce_image_size_for_speed`` and ``get_minimal_distance_between_2_shapes``:
  the sub-image is narrowed to the quadrants (overlapping by one row/column)
  that hold both a 1 and a 2, and the minimal distance from a 2 to a 1 is
  taken there only (so it is not the true minimal distance). Where Cellects'
  loop never ends (exactly two *diagonal* quadrants qualify) the unchanged
  sub-image is used.
- :func:`update_flux` is ``ClusterFluxStudy.update_flux`` for one kind;
  :func:`flux_frames` runs Cellects' frame loop (efflux then influx, one
  shared ``period_tracking``, the contour image marked in place by archived
  clusters) over consecutive frames, carrying a small :class:`FluxState`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

__all__ = [
    "ROW_FIELDS", "FluxState", "KindState", "contours_from_mask", "cellects_cc", "reduce_quadrants",
    "minimal_distance", "update_flux", "flux_frames", "initial_state",
]

#: Cellects' ``clusters_final_data`` columns, in its order (columns 4 and 5 are x then y).
ROW_FIELDS = ("mean_pixel_period", "archive_frame", "size", "edge_distance", "centroid_x", "centroid_y")



class KindState(NamedTuple):
    """One ``ClusterFluxStudy`` (one kind): its ``clusters_id`` image, ``pixels_data`` records and name counter."""

    clusters_id: np.ndarray  # (y, x) uint32, 0 = no cluster
    records: np.ndarray      # (4, n) uint32: period, cluster name, y, x of every pixel that left a live cluster
    total: int               # names given so far (``cluster_total_number``)


class FluxState(NamedTuple):
    """What Cellects' loop carries from frame to frame: the shared period tracking and one study per kind."""

    period: np.ndarray       # (y, x) uint32, shared by both kinds
    efflux: KindState
    influx: KindState


def initial_state(shape: tuple[int, int]) -> FluxState:
    """The state before the first frame (all zero, no records)."""
    def kind() -> KindState:
        return KindState(np.zeros(shape, np.uint32), np.empty((4, 0), np.uint32), 0)
    return FluxState(np.zeros(shape, np.uint32), kind(), kind())


def _erode_cross(img: np.ndarray) -> np.ndarray:
    """Binary erosion by the 3 x 3 cross, pixels outside the image counted as set (OpenCV's default border)."""
    out = img.copy()
    out[1:] &= img[:-1]
    out[:-1] &= img[1:]
    out[:, 1:] &= img[:, :-1]
    out[:, :-1] &= img[:, 1:]
    return out


def _dilate_cross(img: np.ndarray) -> np.ndarray:
    """Binary dilation by the 3 x 3 cross, pixels outside the image counted as unset."""
    out = img.copy()
    out[1:] |= img[:-1]
    out[:-1] |= img[1:]
    out[:, 1:] |= img[:, :-1]
    out[:, :-1] |= img[:, 1:]
    return out


def contours_from_mask(mask: np.ndarray) -> np.ndarray:
    """Cellects' contour of a specimen mask: ``mask - erode(mask, cross)``, uint8, 1 on the inner border.

    Examples
    --------
    >>> import numpy as np
    >>> mask = np.zeros((4, 5), bool); mask[:3, 1:4] = True   # touches the top edge: no contour there
    >>> contours_from_mask(mask).tolist()
    [[0, 1, 0, 1, 0], [0, 1, 0, 1, 0], [0, 1, 1, 1, 0], [0, 0, 0, 0, 0]]
    """
    binary = np.asarray(mask) > 0
    return (binary & ~_erode_cross(binary)).astype(np.uint8)


def _components(binary: np.ndarray) -> tuple[np.ndarray, int]:
    from scipy import ndimage

    lab, n = ndimage.label(binary, structure=np.ones((3, 3), bool))
    return lab, int(n)


def _opencv_numbers(lab: np.ndarray, n: int) -> np.ndarray:
    """``num[c]``: OpenCV's label of component ``c`` of ``lab`` (raster order of each component's first 2 x 2 block).

    Two pixels of one 2 x 2 block are always 8-connected, so every block
    belongs to at most one component and the keys below are distinct.
    """
    from scipy import ndimage

    num = np.zeros(n + 1, np.int64)
    if n == 0:
        return num
    ny, nx = lab.shape
    blocks = (np.arange(ny)[:, None] // 2) * ((nx + 1) // 2) + np.arange(nx)[None, :] // 2
    key = np.asarray(ndimage.minimum(blocks, labels=lab, index=np.arange(1, n + 1)), np.int64)
    num[1 + np.argsort(key, kind="stable")] = np.arange(1, n + 1)
    return num


def cellects_cc(binary: np.ndarray) -> np.ndarray:
    """Cellects' ``cc()`` relabelling of a binary frame (stable ties): uint32, the item ranked ``i`` valued ``i``.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.array([[1, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]], np.uint8)
    >>> cellects_cc(img).tolist()        # the larger component is ranked first, after the background
    [[2, 0, 0, 0], [0, 0, 1, 1], [0, 0, 1, 1]]
    """
    from scipy import ndimage

    binary = np.asarray(binary) > 0
    ny, nx = binary.shape
    lab, n = _components(binary)
    num = _opencv_numbers(lab, n)
    # OpenCV's stats per label (its label 0: every unset pixel): area, and which borders the bounding box meets
    area = np.zeros(n + 1, np.int64)
    area[num] = np.bincount(lab.ravel(), minlength=n + 1)
    sides = np.zeros(n + 1, np.int64)
    if n:
        box = np.array([(s[0].start, s[0].stop, s[1].start, s[1].stop) for s in ndimage.find_objects(lab)])
        sides[num[1:]] = (box[:, 0] == 0).astype(np.int64) + (box[:, 1] == ny) + (box[:, 2] == 0) + (box[:, 3] == nx)
    if area[0]:
        unset_rows = np.nonzero((~binary).any(axis=1))[0]
        unset_cols = np.nonzero((~binary).any(axis=0))[0]
        sides[0] = (int(unset_rows[0] == 0) + int(unset_rows[-1] == ny - 1) + int(unset_cols[0] == 0)
                    + int(unset_cols[-1] == nx - 1))
    # an empty background's stats never meet a border in OpenCV (INT_MAX sentinels): it keeps sides 0
    order = np.argsort(area, kind="stable")[::-1].copy()
    touching = np.nonzero(sides[order] > 2)[0]
    if np.any(touching != 0):
        other = touching[0] if touching.size == 1 else 1
        order[0], order[other] = order[other], order[0]
    value = np.empty(n + 1, np.uint32)
    value[order] = np.arange(n + 1, dtype=np.uint32)
    return value[num][lab]


def reduce_quadrants(image: np.ndarray) -> tuple[np.ndarray, bool]:
    """Cellects' ``reduce_image_size_for_speed``: the sub-image its loop ends on, and whether it stalled there.

    The image is cut into four quadrants overlapping by one row and one
    column; the quadrants holding both a 1 and a 2 are kept: one (or three
    or four: the first of them) becomes the next image, two adjacent ones
    are glued together (their shared row/column then appears twice). The
    loop goes on while one or two quadrants qualify and the image it last
    cut was larger than 3 x 3. Two *diagonal* quadrants leave the image
    unchanged, where Cellects loops forever: returned with ``stalled=True``.

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((8, 8), np.uint8); img[1, 1] = 1; img[2, 2] = 2
    >>> sub, stalled = reduce_quadrants(img)
    >>> sub.shape, stalled
    ((2, 2), False)
    """
    sub = image
    ny, nx = sub.shape
    n_good = 1
    while n_good in (1, 2) and ny > 3 and nx > 3:
        ny, nx = sub.shape
        hy, hx = ny // 2, nx // 2
        quads = (sub[: hy + 1, : hx + 1], sub[: hy + 1, hx:], sub[hy:, : hx + 1], sub[hy:, hx:])
        good = [i for i, q in enumerate(quads) if (q == 2).any() and (q == 1).any()]
        n_good = len(good)
        if n_good == 0:
            break
        if n_good == 2:
            axis = {(0, 1): 1, (0, 2): 0, (1, 3): 0, (2, 3): 1}.get((good[0], good[1]))
            if axis is None:
                return sub, True
            sub = np.concatenate((quads[good[0]], quads[good[1]]), axis=axis)
        else:
            sub = quads[good[0]]
    return sub, False


def minimal_distance(image: np.ndarray) -> float:
    """Cellects' ``get_minimal_distance_between_2_shapes(image)``: from the 2s to the nearest 1, in the reduced image.

    ``inf`` when the reduced image holds no 1 (as Cellects' KD-tree query
    gives), NaN when it holds no 2 (where Cellects raises).

    Examples
    --------
    >>> import numpy as np
    >>> img = np.zeros((6, 6), np.uint8); img[0, :] = 1; img[3, 2] = 2
    >>> minimal_distance(img)
    3.0
    """
    from scipy.spatial import cKDTree

    sub, _ = reduce_quadrants(image)
    ones = np.argwhere(sub == 1)
    twos = np.argwhere(sub == 2)
    if twos.shape[0] == 0:
        return float("nan")
    if ones.shape[0] == 0:
        return float("inf")
    dist, _ = cKDTree(ones).query(twos, 1)
    return float(np.min(dist))


def _find(parent: dict[int, int], x: int) -> int:
    while parent.get(x, x) != x:
        x = parent[x]
    return x


def _archive(t: int, contours: np.ndarray, records: np.ndarray) -> np.ndarray:
    """Cellects' row of one archived cluster from its pixel records; marks ``contours`` in place as Cellects does."""
    ny, nx = contours.shape
    ys, xs = records[2].astype(np.int64), records[3].astype(np.int64)
    size = records.shape[1]
    mean_period = np.mean(records[0])
    # work in the cluster's bounding box plus a one-pixel margin (the cross reaches one pixel)
    y0, y1 = max(int(ys.min()) - 1, 0), min(int(ys.max()) + 2, ny)
    x0, x1 = max(int(xs.min()) - 1, 0), min(int(xs.max()) + 2, nx)
    img = np.zeros((y1 - y0, x1 - x0), bool)
    img[ys - y0, xs - x0] = True
    # the centroid of the component OpenCV numbers 1 (the one whose first 2 x 2 block comes first), only
    lab, n = _components(img)
    py, px = np.nonzero(lab)
    gy, gx = py + y0, px + x0
    key = (gy // 2) * ((nx + 1) // 2) + gx // 2
    first = lab[py[np.argmin(key)], px[np.argmin(key)]]
    sel = lab[py, px] == first
    cy = gy[sel].sum() / sel.sum()
    cx = gx[sel].sum() / sel.sum()
    window = contours[y0:y1, x0:x1]
    if np.any(_dilate_cross(img) & (window > 0)):
        dist = 1.0
    else:
        if size > 200:
            # the cluster's border: erosion in the whole image, where outside pixels count as set
            # (a cluster pixel lies on the window's edge only on the image's edge, thanks to the margin, so
            # eroding the window with outside pixels set is eroding the image as OpenCV does)
            window[img & ~_erode_cross(img)] = 2
        else:
            window[img] = 2
        dist = minimal_distance(contours)
    return np.array([mean_period, t, size, dist, cx, cy], np.float32)


def update_flux(t: int, contours: np.ndarray, flux: np.ndarray, period: np.ndarray, state: KindState
                ) -> tuple[KindState, np.ndarray]:
    """One ``ClusterFluxStudy.update_flux`` call: the new state of that kind and the rows it archives.

    ``flux`` is :func:`cellects_cc`'s relabelled frame of one kind;
    ``period`` (shared by both kinds) and ``contours`` are changed in place,
    as Cellects changes them. Rows are ``(n, 6)`` float32 in
    :data:`ROW_FIELDS` order, archived clusters by increasing name.

    Cellects walks the frame's components one by one over the whole image;
    here the same walk runs on the names only: a component overlapping
    earlier clusters takes the smallest of their (current) names and renames
    the others to it, one without any takes a new name; every pixel and
    record then gets its final name at once.
    """
    cid, records, total = state
    fg = flux > 0
    lost = (cid > 0) & ~fg
    ly, lx = np.nonzero(lost)
    new_records = np.array((period[lost], cid[lost], ly, lx), dtype=np.uint32)
    records = np.concatenate((records, new_records), axis=1)
    period[lost] = 0
    values = np.nonzero(np.bincount(flux.ravel()))[0]      # np.unique(flux), without sorting the frame
    walked = values[1:]  # Cellects iterates np.unique(current_flux)[1:]: all values but the smallest present
    in_walk = flux > values[0]
    # old names under each walked component, in component order: (component, name) pairs as one sorted key
    both = in_walk & (cid > 0)
    base = np.int64(total) + 1
    keys = np.unique(flux[both].astype(np.int64) * base + cid[both])
    pair_comp, pair_name = keys // base, keys % base
    starts = np.searchsorted(pair_comp, walked)
    stops = np.searchsorted(pair_comp, walked, side="right")
    parent: dict[int, int] = {}
    comp_name = np.zeros(walked.size, np.int64)
    for i in range(walked.size):
        if starts[i] == stops[i]:
            total += 1
            comp_name[i] = total
            continue
        roots = {_find(parent, int(o)) for o in pair_name[starts[i]:stops[i]]}
        name = min(roots)
        for r in roots:
            if r != name:
                parent[r] = name
        comp_name[i] = name

    def final(names: np.ndarray) -> np.ndarray:
        """Names after this frame's merges (only names that were merged into another change)."""
        if not parent or names.size == 0:
            return names
        merged = np.isin(names, np.fromiter(parent, np.int64, len(parent)), kind="table")
        if not merged.any():
            return names
        uniq, inv = np.unique(names[merged], return_inverse=True)
        out = names.copy()
        out[merged] = np.array([_find(parent, int(u)) for u in uniq], names.dtype)[inv.ravel()]
        return out

    new_cid = np.zeros_like(cid)
    alive_names = [np.zeros(0, np.uint32)]
    if walked.size:
        lut = np.zeros(int(values[-1]) + 1, np.uint32)
        lut[walked] = final(comp_name).astype(np.uint32)
        new_cid[in_walk] = lut[flux[in_walk]]
        alive_names.append(lut[walked])
    if values[0] > 0:
        # the smallest value is not walked (Cellects' [1:]), yet its pixels are in the flux: they keep their
        # (renamed) clusters
        skipped = (flux == values[0]) & (cid > 0)
        new_cid[skipped] = final(cid[skipped])
        alive_names.append(new_cid[skipped])
    records[1] = final(records[1])
    period[in_walk] += np.uint32(1)
    alive = np.isin(records[1], np.concatenate(alive_names))
    dead = records[:, ~alive]
    rows = np.zeros((0, 6), np.float32)
    if dead.shape[1]:
        order = np.argsort(dead[1], kind="stable")
        dead = dead[:, order]
        names, first = np.unique(dead[1], return_index=True)
        bounds = list(first) + [dead.shape[1]]
        rows = np.stack([_archive(t, contours, dead[:, bounds[i]:bounds[i + 1]]) for i in range(names.size)])
    return KindState(new_cid, records[:, alive], total), rows


def flux_frames(labels: np.ndarray, contours: np.ndarray, state: FluxState, *, t0: int = 0,
                start: int = 0) -> tuple[FluxState, np.ndarray, np.ndarray]:
    """Cellects' frame loop over ``labels`` (frames ``t0, t0 + 1, ...``) from ``state``.

    ``contours`` is ``(y, x)`` (the same contour every frame) or one per
    frame of ``labels``; a fresh copy is marked in each frame. Frames
    before ``start`` and frames without any cluster are skipped (as in
    Cellects). Returns the new state (the input is not changed), the
    archived rows ``(n, 6)`` float32 and their kinds ``(n,)`` int8
    (1 influx, 2 efflux), efflux before influx in every frame.

    Examples
    --------
    >>> import numpy as np
    >>> labels = np.zeros((4, 6, 6), np.int8)
    >>> labels[1:3, 2:4, 2:4] = 1           # an influx cluster in frames 1 and 2
    >>> labels[3, 0, 0] = 2                 # frame 3 has a cluster, so it is not skipped
    >>> contours = contours_from_mask(np.pad(np.ones((4, 4)), 1))
    >>> state, rows, kinds = flux_frames(labels, contours, initial_state((6, 6)))
    >>> rows.tolist(), kinds.tolist()       # 2 frames per pixel, archived at frame 3, 4 records, touching
    ([[2.0, 3.0, 4.0, 1.0, 2.5, 2.5]], [1])
    """
    labels = np.asarray(labels)
    period = state.period.copy()
    kinds_state = {2: KindState(state.efflux.clusters_id.copy(), state.efflux.records.copy(), state.efflux.total),
                   1: KindState(state.influx.clusters_id.copy(), state.influx.records.copy(), state.influx.total)}
    rows, kinds = [], []
    for i in range(labels.shape[0]):
        t = t0 + i
        if t < start:
            continue
        frame = labels[i]
        influx, efflux = frame == 1, frame == 2
        if not (influx.any() or efflux.any()):
            continue
        c = np.array(contours if contours.ndim == 2 else contours[i], np.uint8)
        for kind, binary in ((2, efflux), (1, influx)):
            kinds_state[kind], new_rows = update_flux(t, c, cellects_cc(binary), period, kinds_state[kind])
            rows.append(new_rows)
            kinds += [kind] * new_rows.shape[0]
    new_state = FluxState(period, kinds_state[2], kinds_state[1])
    table = np.concatenate(rows) if rows else np.zeros((0, 6), np.float32)
    return new_state, table, np.asarray(kinds, np.int8)
