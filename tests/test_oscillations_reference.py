"""Plain, slow NumPy/SciPy statements of the oscillation algorithms, used by the other oscillation tests.

- ``ref_detect``: Cellects' ``detect_oscillations_dynamics`` on a whole in-memory
  video (``np.gradient`` of the mean-normalised video, sign, mask, neighbour
  vote by shifted copies of an edge-padded frame, ``scipy.ndimage.label``,
  size filter; ``cellects_like`` replicates ``cc()`` as the peer oracle
  ``/work/shared/peers/oracle/oracle_cellects.py`` states it).
- ``ref_tracks``: cluster tracking written out frame by frame with
  ``scipy.ndimage.label``, ``np.unique`` overlaps, ``scipy.sparse.csgraph``
  and pandas.

The tests in this file check the references themselves on cases worked out by hand.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

EIGHT = np.ones((3, 3), bool)


def ref_sign(v, *, mask=None, period_s=10.0, interval_s=1.0, lag=None, lowmem=False):
    v = np.asarray(v)
    norm = v / v.mean(axis=(-2, -1))[..., None, None]
    if lag is None:
        spacing = max(2, int(period_s / interval_s))
        g = np.gradient(norm, spacing, axis=0)
        if lowmem:
            g = np.round(g, 3).astype(np.float16)
        s = np.sign(g).astype(np.int8)
    else:
        k = max(1, int(round(period_s / interval_s / 4)))
        n = v.shape[0]
        s = np.empty(v.shape, np.int8)
        for t in range(n):
            a, b = max(t - k, 0), min(t + k, n - 1)
            s[t] = np.sign(norm[b] - norm[a])
    if mask is not None:
        s[np.broadcast_to(np.asarray(mask), s.shape) == 0] = 0
    return s


def ref_components_cellects_like(mask, minsize):
    """cc() + size filter, as the peer oracle states it (items ranked by area, stable, reversed)."""
    h, w = mask.shape
    lab, n = ndi.label(mask, structure=EIGHT)
    items = []
    for k in range(n + 1):
        m = lab == k
        area = int(m.sum())
        touch = 0
        if area:
            ys, xs = np.nonzero(m)
            touch = int(ys.min() == 0) + int(xs.min() == 0) + int(ys.max() + 1 == h) + int(xs.max() + 1 == w)
        items.append((area, touch > 2, m))
    order = list(np.argsort([a for a, _, _ in items], kind="stable")[::-1])
    touching = [r for r, i in enumerate(order) if items[i][1]]
    if any(r != 0 for r in touching):
        j = touching[0] if len(touching) == 1 else 1
        order[0], order[j] = order[j], order[0]
    keep = np.zeros(mask.shape, bool)
    for i in order[1:]:
        if items[i][0] >= minsize:
            keep |= items[i][2]
    return keep


def ref_vote(sign2d):
    h, w = sign2d.shape
    s = np.pad(sign2d, 1, mode="edge")
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    pos = sum((s[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] > 0).astype(int) for dy, dx in shifts)
    neg = sum((s[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] < 0).astype(int) for dy, dx in shifts)
    return pos > 4, neg > 4


def ref_stage2(sign, minsize, cellects_like=False):
    out = np.zeros(sign.shape, np.int8)
    for idx in np.ndindex(*sign.shape[:-2]):
        influx, efflux = ref_vote(sign[idx])
        img = np.zeros(sign.shape[-2:], np.int8)
        for mask, val in ((influx, 1), (efflux, 2)):
            if not (influx.any() or efflux.any()):
                continue
            if cellects_like:
                keep = ref_components_cellects_like(mask, minsize)
            else:
                lab, _ = ndi.label(mask, structure=EIGHT)
                sizes = np.bincount(lab.ravel())
                keep = (lab > 0) & (sizes[lab] >= minsize)
            img[keep] = val
        out[idx] = img
    return out


def ref_detect(v, *, mask=None, period_s, interval_s, min_cluster_size, start=0, lag=None, compat=None):
    sign = ref_sign(v, mask=mask, period_s=period_s, interval_s=interval_s, lag=lag,
                    lowmem=compat == "cellects-lowmem")
    out = ref_stage2(sign, min_cluster_size, cellects_like=compat is not None)
    out[:start] = 0
    return out


def ref_tracks(labels, *, interval_s=1.0, start=0, min_overlap=1):
    """The cluster table of ``fluoxr.oscillations.track_clusters``, computed on the whole array."""
    labels = np.asarray(labels)
    n, h, w = labels.shape
    comp_img = np.zeros(labels.shape, np.int64)  # component index + 1
    comps = []  # (t, kind)
    for t in range(n):
        for kind in (1, 2):
            lab, m = ndi.label(labels[t] == kind, structure=EIGHT)
            comp_img[t][lab > 0] = lab[lab > 0] + len(comps)
            comps += [(t, kind)] * m
    edges = []
    for t in range(1, n):
        a, b = comp_img[t - 1].ravel(), comp_img[t].ravel()
        same = (a > 0) & (b > 0) & (labels[t - 1].ravel() == labels[t].ravel())
        pairs, counts = np.unique(np.stack([a[same], b[same]], 1), axis=0, return_counts=True)
        edges += [(p - 1, q - 1) for (p, q), c in zip(pairs, counts) if c >= min_overlap]
    nc = len(comps)
    e = np.array(edges, np.int64).reshape(-1, 2)
    _, cluster_of = connected_components(coo_matrix((np.ones(len(e)), (e[:, 0], e[:, 1])), shape=(nc, nc)),
                                         directed=False)
    # period samples: onsets per pixel
    last = np.full((2, h, w), -1)
    samples = []  # (cluster, period)
    for t in range(start + 1, n):
        cur, prev = labels[t], labels[t - 1]
        for kind in (1, 2):
            k = kind - 1
            onset = (cur == kind) & (prev != kind)
            ok = onset & (last[k] >= 0) & (last[1 - k] > last[k])
            for y, x in zip(*np.nonzero(ok)):
                samples.append((cluster_of[comp_img[t, y, x] - 1], t - last[k, y, x]))
            last[k][onset] = t
    rows = []
    for t in range(n):
        for kind in (1, 2):
            ys, xs = np.nonzero(labels[t] == kind)
            if ys.size:
                ids = cluster_of[comp_img[t, ys, xs] - 1]
                for c in np.unique(ids):
                    sel = ids == c
                    rows.append(dict(c=c, t=t, kind=kind, area=sel.sum(), y=ys[sel].mean(), x=xs[sel].mean(),
                                     first=(ys[sel] * w + xs[sel]).min()))
    frame = pd.DataFrame(rows)
    smp = pd.DataFrame(samples, columns=["c", "p"])
    table = []
    for c, g in frame.groupby("c") if len(frame) else []:
        g = g.sort_values("t")
        p = smp.p[smp.c == c].to_numpy()
        table.append(dict(
            key=(g.t.iloc[0], g["first"].iloc[0]),
            kind="influx" if g.kind.iloc[0] == 1 else "efflux",
            first_frame=g.t.iloc[0], last_frame=g.t.iloc[-1], n_frames=len(g),
            duration_s=len(g) * interval_s, area_max=g.area.max(), area_mean=g.area.mean(),
            y_start=g.y.iloc[0], x_start=g.x.iloc[0], y_end=g.y.iloc[-1], x_end=g.x.iloc[-1],
            y_mean=g.y.mean(), x_mean=g.x.mean(),
            path_px=np.hypot(np.diff(g.y), np.diff(g.x)).sum(),
            displacement_px=np.hypot(g.y.iloc[-1] - g.y.iloc[0], g.x.iloc[-1] - g.x.iloc[0]),
            period_s=np.median(p) * interval_s if p.size else np.nan, period_n=p.size,
            truncated=bool(g.t.iloc[0] <= start or g.t.iloc[-1] >= n - 1),
        ))
    table.sort(key=lambda r: r.pop("key"))
    return pd.DataFrame(table)


# -- the references on cases worked out by hand --------------------------------------------------


def test_ref_vote_counts_replicated_edges():
    sign = np.zeros((4, 5), np.int8)
    sign[:2, :2] = 1
    influx, efflux = ref_vote(sign)
    # border pixels count themselves through replicated neighbours (corner: 8 of 8, edges: 5 of 8),
    # the fourth pixel of the block has only 3 positive neighbours
    assert sorted(zip(*np.nonzero(influx))) == [(0, 0), (0, 1), (1, 0)] and not efflux.any()


def test_ref_components_background_swap():
    # a cluster larger than the background: cc() takes it for the background, and the hole for a cluster
    mask = np.ones((6, 6), bool)
    mask[2:4, 2:4] = False
    keep = ref_components_cellects_like(mask, 1)
    assert np.array_equal(keep, ~mask)
    # two items touching 3 borders: the second largest is dropped, whatever it is
    band = np.zeros((6, 6), bool)
    band[:, :4] = True
    assert np.array_equal(ref_components_cellects_like(band, 1), band)


def test_ref_tracks_split_and_merge():
    labels = np.zeros((4, 6, 9), np.int8)
    labels[0, 1:4, 1:8] = 1         # one patch
    labels[1, 1:4, 1:3] = 1         # splits into two
    labels[1, 1:4, 6:8] = 1
    labels[2, 1:4, 6:8] = 1         # one part ends, the other goes on
    table = ref_tracks(labels)
    assert len(table) == 1
    row = table.iloc[0]
    assert (row.first_frame, row.last_frame, row.area_max) == (0, 2, 21)
