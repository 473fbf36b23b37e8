"""Plain NumPy references, written once, and how to call fluoxr on the same input.

Each function below states one algorithm the slow, obvious way (loops,
``np.pad``, ``scipy.ndimage.label``) on a whole in-memory array. The tests
import them from here (``tests/kernels/``, ``tests/sofi/``,
``tests/test_oscillations.py``, ...), the benchmarks read them too
(``benchmarks/sofi.py --agreement``), so that a reference is never written
twice and two tests can never check against two different statements of the
same thing.

:data:`COMPARISONS` pairs a reference with the fluoxr call that must agree
with it (the numbagg habit): ``tests/test_references.py`` runs every pair on
its tiny example, over several chunkings for lazy operations
(:func:`fluoxr.testing.assert_chunk_invariant`), and
``tests/test_distributed.py`` runs the lazy ones on process workers.

Examples
--------
>>> import numpy as np
>>> from fluoxr.testing.references import COMPARISONS, central_moments
>>> central_moments(np.array([[0.0], [2.0]]), [2]).ravel().tolist()
[1.0]
>>> c = COMPARISONS["moments"]
>>> x = c.example()
>>> got, ref = c.fluoxr(x), c.reference(x)
>>> c.check(got, ref)
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from scipy import ndimage as ndi
from scipy import signal as sps
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

__all__ = [
    "COMPARISONS",
    "EIGHT",
    "Comparison",
    "central_moments",
    "central_sums",
    "components_cellects_like",
    "cross_products",
    "cumulants_from_moments",
    "cut_frames",
    "detect_oscillations",
    "filter1d_same",
    "fourier_interpolate",
    "gradient_sign",
    "lag_moment",
    "lag_product_sum",
    "ldrc",
    "bilinear_remap",
    "phase_correlation_map",
    "rigid_whole_pixel_shifts",
    "maximin",
    "med_smooth",
    "neighbour_vote",
    "oscillation_labels",
    "pair_comoment_sums",
    "track_clusters",
]

# 8-connectivity, as Cellects and fluoxr label clusters
EIGHT = np.ones((3, 3), bool)


# ------------------------------------------------------------------------------------------ moments


def central_moments(x: np.ndarray, orders: Iterable[int]) -> np.ndarray:
    """Two-pass float64 central moments ``mean((x - mean)^n)`` along axis 0, stacked by order."""
    x = np.asarray(x, np.float64)
    d = x - x.mean(0)
    return np.stack([np.mean(d**n, axis=0) for n in orders])


def central_sums(x: np.ndarray, max_order: int) -> tuple[np.ndarray, np.ndarray]:
    """The mean and the sums of ``(x - mean)^k`` for k = 2..max_order (the kernels' moment state)."""
    x = np.asarray(x, dtype=np.float64)
    mean = x.mean(axis=0)
    d = x - mean
    return mean, np.stack([np.sum(d**k, axis=0) for k in range(2, max_order + 1)])


def cumulants_from_moments(m: Mapping[int, np.ndarray]) -> dict[int, np.ndarray]:
    """Cumulants by the recursion ``k_n = m_n - sum_i C(n-1, i) k_{n-i} m_i`` over moments keyed by order."""
    k: dict[int, np.ndarray] = {}
    for n in sorted(m):
        k[n] = m[n] - sum(math.comb(n - 1, i) * k[n - i] * m[i] for i in range(1, n))
    return k


def lag_product_sum(x: np.ndarray, mean: np.ndarray, lags: Sequence[int], subset: Sequence[int]) -> np.ndarray:
    """``sum_t prod_{j in subset} (x[t + lags[j]] - mean)`` over the frames every lag reaches."""
    x = np.asarray(x, np.float64)
    n = x.shape[0] - max(lags)
    out = np.zeros(x.shape[1:])
    for t in range(n):
        prod = np.ones(x.shape[1:])
        for j in subset:
            prod = prod * (x[t + lags[j]] - mean)
        out += prod
    return out


def lag_moment(x: np.ndarray, lags: Sequence[int], subset: Sequence[int]) -> np.ndarray:
    """pysofi's moment with time lags: :func:`lag_product_sum` over the number of frames summed."""
    x = np.asarray(x, np.float64)
    return lag_product_sum(x, x.mean(0), lags, subset) / (x.shape[0] - max(lags))


def pair_comoment_sums(x: np.ndarray, pairs: Sequence[Sequence[int]]) -> np.ndarray:
    """Per pixel, ``sum_t d[t, y+dy1, x+dx1] * d[t, y+dy2, x+dx2]`` for each ``(dy1, dx1, dy2, dx2)``; 0 off the frame."""
    x = np.asarray(x, np.float64)
    d = x - x.mean(0)
    t, H, W = x.shape
    out = np.zeros((len(pairs), H, W))
    for q, (dy1, dx1, dy2, dx2) in enumerate(pairs):
        for y in range(H):
            for xx in range(W):
                if 0 <= y + dy1 < H and 0 <= y + dy2 < H and 0 <= xx + dx1 < W and 0 <= xx + dx2 < W:
                    out[q, y, xx] = np.sum(d[:, y + dy1, xx + dx1] * d[:, y + dy2, xx + dx2])
    return out


def cross_products(x: np.ndarray, r: int) -> dict[tuple[int, int], np.ndarray]:
    """pysofi's ``calc_xc_im`` written out: mean product of frames shifted by ``+-(dy, dx)``, cropped by ``r``."""
    from ..sofi.xc import _xc_shifts

    x = np.asarray(x, np.float64)
    mean = x.mean(0)
    H, W = mean.shape
    out = {}
    for dy, dx in _xc_shifts(r):
        acc = np.zeros((H - 2 * r, W - 2 * r))
        for t in range(x.shape[0]):
            im = x[t] - mean
            acc += im[r + dy : H - r + dy, r + dx : W - r + dx] * im[r - dy : H - r - dy, r - dx : W - r - dx]
        out[(dy, dx)] = acc / x.shape[0]
    return out


# ------------------------------------------------------------------------------------- SOFI images


def filter1d_same(x: np.ndarray, h: np.ndarray) -> np.ndarray:
    """pysofi's slicing of the full convolution, written out."""
    full = np.convolve(x, h, "full")
    c = len(full) // 2
    return full[int(c - np.floor(len(x) / 2)) : int(c + np.ceil(len(x) / 2))]


def med_smooth(sig: np.ndarray, k: int) -> np.ndarray:
    """pysofi's med_smooth, written out (valid for len(sig) >= k)."""
    pad = np.append(np.append(sig[0:k][::-1], sig), sig[-k:][::-1])
    return sps.medfilt(pad, k)[k:-k]


def cut_frames(signal: np.ndarray, fbc: float) -> list[int]:
    """pysofi's loop, but stopping before it would index past its bounds."""
    hi, lo = np.max(signal), np.min(signal)
    n = math.ceil(1 / fbc)
    bounds = [int(hi - (hi - lo) * i * fbc) for i in range(1, n + 1)]
    t, i, out = int(np.argmax(signal)), 0, []
    while t < len(signal) and i < n - 1:
        if signal[t] < bounds[i]:
            out.append(t)
            i += 1
        t += 1
    return [0] + out + [len(signal)]


def fourier_interpolate(im: np.ndarray, f: int) -> np.ndarray:
    """pysofi's matrix algorithm, written out: mirror, DFT matrices, interpolating inverse, modulus, crop."""
    h, w = im.shape
    ext = np.block([[im, np.fliplr(im)], [np.flipud(im), np.rot90(im, 2)]])

    def base(n):
        b = np.zeros(n)
        b[1] = 1
        return np.fft.fft(b)

    def ft(n):
        return np.power(base(n), np.arange(n).reshape(n, 1) * np.ones((n, n)))

    def ift(n):
        ift = np.ones(((n - 1) * f + 1, 1)) @ np.conj(base(n)).reshape(1, n)
        p = np.arange(0, n - 1 + 1e-10, 1 / f).reshape(-1, 1) @ np.ones((1, n))
        return np.power(ift, p) / n

    out = np.abs(ift(2 * h) @ (ft(2 * h) @ ext @ ft(2 * w).T) @ ift(2 * w).T)
    return out[: (h - 1) * f + 1, : (w - 1) * f + 1]


def colour_map(values: np.ndarray, cmap: str, low: float, high: float) -> np.ndarray:
    """matplotlib's own colours: ``cmap(Normalize(low, high, clip=True)(values), bytes=True)``, RGB, NaN black."""
    import matplotlib

    v = np.asarray(values, dtype=np.float64)
    rgba = matplotlib.colormaps[cmap](matplotlib.colors.Normalize(low, high, clip=True)(v), bytes=True)
    rgb = np.array(rgba[..., :3])
    rgb[np.isnan(v)] = 0
    return rgb


def bilinear_remap(frames: np.ndarray, fy: Any, fx: Any) -> np.ndarray:
    """``out[t, y, x] = frame_t(y + fy, x + fx)`` by ``scipy.ndimage.map_coordinates(order=1, mode="nearest")``.

    ``fy``, ``fx``: one number per frame, or a field ``(t, y, x)`` per frame.
    The reference of fluoxr's rigid and nonrigid resampling.
    """
    frames = np.asarray(frames, np.float64)
    t, ly, lx = frames.shape
    yy, xx = np.mgrid[:ly, :lx].astype(np.float64)
    out = np.empty_like(frames)
    for i in range(t):
        a = np.asarray(fy[i], np.float64)
        b = np.asarray(fx[i], np.float64)
        # clamp the coordinates first: map_coordinates' "nearest" would do the same, said outright
        cy = np.clip(yy + a, 0, ly - 1)
        cx = np.clip(xx + b, 0, lx - 1)
        out[i] = ndi.map_coordinates(frames[i], [cy, cx], order=1, mode="nearest")
    return out


def _suite2p_taper(slope: float, ly: int, lx: int) -> np.ndarray:
    y = np.abs(np.arange(ly) - (ly - 1) / 2)
    x = np.abs(np.arange(lx) - (lx - 1) / 2)
    return np.outer(1 / (1 + np.exp((y - ((ly - 1) / 2 - 2 * slope)) / slope)),
                    1 / (1 + np.exp((x - ((lx - 1) / 2 - 2 * slope)) / slope)))


def phase_correlation_map(frame: np.ndarray, ref: np.ndarray, *, smooth_sigma: float = 1.15,
                          taper: float = 3.45, clip: bool = True) -> np.ndarray:
    """suite2p's rigid phase correlation of one frame, the whole circular map, with complex FFTs in float64.

    The frame is clipped to the reference's 1st-99th percentiles, tapered to
    the clipped reference's mean at the borders; both spectra are whitened
    (``/ (1e-5 + |F|)``); the reference's is multiplied by the real part of
    the FFT of a normalised Gaussian centred on the mean coordinate. Entry
    ``[i, j]`` is the correlation at displacement ``(i, j)`` (modulo the size).
    """
    frame = np.asarray(frame, np.float64)
    ref = np.asarray(ref, np.float64)
    ly, lx = ref.shape
    if clip:
        lo, hi = np.percentile(ref.astype(np.float32), [1, 99])
        ref = np.clip(ref, lo, hi)
        frame = np.clip(frame, lo, hi)
    mask = _suite2p_taper(taper, ly, lx)
    data = frame * mask + ref.mean() * (1 - mask)
    fr = np.fft.fft2(data)
    fr /= 1e-5 + np.abs(fr)
    rf = np.conj(np.fft.fft2(ref))
    rf /= 1e-5 + np.abs(rf)
    if smooth_sigma > 0:
        y = np.arange(ly) - (ly - 1) / 2
        x = np.arange(lx) - (lx - 1) / 2
        g = np.exp(-y[:, None] ** 2 / (2 * smooth_sigma**2)) * np.exp(-x[None, :] ** 2 / (2 * smooth_sigma**2))
        rf *= np.real(np.fft.fft2(np.fft.ifftshift(g / g.sum())))
    return np.real(np.fft.ifft2(fr * rf))


def rigid_whole_pixel_shifts(frames: np.ndarray, ref: np.ndarray, max_shift_px: int, **kwargs: Any) -> np.ndarray:
    """``(t, 2)``: the whole-pixel peak of :func:`phase_correlation_map` within ``±max_shift_px`` (suite2p's yoff/xoff)."""
    out = np.zeros((len(frames), 2))
    d = np.arange(-max_shift_px, max_shift_px + 1)
    for i, f in enumerate(frames):
        cc = phase_correlation_map(f, ref, **kwargs)
        win = cc[np.ix_(d % cc.shape[0], d % cc.shape[1])]
        iy, ix = np.unravel_index(np.argmax(win), win.shape)
        out[i] = d[iy], d[ix]
    return out


def ldrc(mask: np.ndarray, im: np.ndarray, window: Sequence[int]) -> np.ndarray:
    """pysofi's window loop, with a flat window contributing 0."""
    wy, wx = window
    h, w = im.shape
    acc, cnt = np.zeros((h, w)), np.zeros((h, w))
    for i in range(h - wy + 1):
        for j in range(w - wx + 1):
            win = im[i : i + wy, j : j + wx]
            rng = win.max() - win.min()
            norm = (win - win.min()) / rng if rng > 0 else np.zeros_like(win)
            acc[i : i + wy, j : j + wx] += norm * mask[i : i + wy, j : j + wx].max()
            cnt[i : i + wy, j : j + wx] += 1
    return acc / cnt


# ------------------------------------------------------------------------------------------ traces


def maximin(F: np.ndarray, window_s: float, sig: float, fs: float) -> np.ndarray:
    """suite2p's torch maximin restated (oracle_suite2p.py): edge padding at every stage."""
    from numpy.lib.stride_tricks import sliding_window_view as swv

    win = int(window_s * fs)
    win += 1 if win % 2 == 0 else 0
    g = int(np.round(sig * 3))
    k = np.exp(-np.arange(-g, g + 1) ** 2 / (2 * sig**2))
    k /= k.sum()
    out = np.empty(F.shape)
    for i, f in enumerate(np.asarray(F, np.float64)):
        f = np.convolve(np.pad(f, g, mode="edge"), k[::-1], mode="valid")
        f = swv(np.pad(f, win // 2, mode="edge"), win).min(1)
        out[i] = swv(np.pad(f, win // 2, mode="edge"), win).max(1)
    return out


# ------------------------------------------------------------------------------------ oscillations
# Cellects' ``detect_oscillations_dynamics`` on a whole in-memory video: ``np.gradient`` of the
# mean-normalised video, sign, mask, neighbour vote by shifted copies of an edge-padded frame,
# ``scipy.ndimage.label``, size filter; ``cellects_like`` replicates Cellects' ``cc()`` (compared with
# Cellects itself in tests/test_oscillations.py when it is importable).


def gradient_sign(v: np.ndarray, *, mask: np.ndarray | None = None, period_s: float = 10.0,
                  interval_s: float = 1.0, lag: str | None = None, lowmem: bool = False) -> np.ndarray:
    """Sign (int8) of the temporal gradient of the mean-normalised frames (``lag``: a difference over +-k frames)."""
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


def components_cellects_like(mask: np.ndarray, minsize: int) -> np.ndarray:
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


def neighbour_vote(sign2d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(more than 4 of the 8 edge-replicated neighbours > 0, more than 4 < 0)."""
    h, w = sign2d.shape
    s = np.pad(sign2d, 1, mode="edge")
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    pos = sum((s[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] > 0).astype(int) for dy, dx in shifts)
    neg = sum((s[1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w] < 0).astype(int) for dy, dx in shifts)
    return pos > 4, neg > 4


def oscillation_labels(sign: np.ndarray, minsize: int, cellects_like: bool = False) -> np.ndarray:
    """Stage 2 of the detection: vote, then keep influx (1) / efflux (2) clusters of at least ``minsize`` pixels."""
    out = np.zeros(sign.shape, np.int8)
    for idx in np.ndindex(*sign.shape[:-2]):
        influx, efflux = neighbour_vote(sign[idx])
        img = np.zeros(sign.shape[-2:], np.int8)
        for mask, val in ((influx, 1), (efflux, 2)):
            if not (influx.any() or efflux.any()):
                continue
            if cellects_like:
                keep = components_cellects_like(mask, minsize)
            else:
                lab, _ = ndi.label(mask, structure=EIGHT)
                sizes = np.bincount(lab.ravel())
                keep = (lab > 0) & (sizes[lab] >= minsize)
            img[keep] = val
        out[idx] = img
    return out


def detect_oscillations(v: np.ndarray, *, mask: np.ndarray | None = None, period_s: float, interval_s: float,
                        min_cluster_size: int, start: int = 0, lag: str | None = None,
                        compat: str | None = None) -> np.ndarray:
    """``fluoxr.oscillations.detect`` on a whole in-memory video."""
    sign = gradient_sign(v, mask=mask, period_s=period_s, interval_s=interval_s, lag=lag,
                         lowmem=compat == "cellects-lowmem")
    out = oscillation_labels(sign, min_cluster_size, cellects_like=compat is not None)
    out[:start] = 0
    return out


def track_clusters(labels: np.ndarray, *, interval_s: float = 1.0, start: int = 0,
                   min_overlap: int = 1) -> pd.DataFrame:
    """The cluster table of ``fluoxr.oscillations.track_clusters``, computed on the whole array.

    Written out frame by frame with ``scipy.ndimage.label``, ``np.unique``
    overlaps, ``scipy.sparse.csgraph`` and pandas.
    """
    labels = np.asarray(labels)
    n, h, w = labels.shape
    comp_img = np.zeros(labels.shape, np.int64)  # component index + 1
    comps: list[tuple[int, int]] = []  # (t, kind)
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


# -------------------------------------------------------------------------------------- the registry


@dataclass(frozen=True)
class Comparison:
    """One fluoxr function and its NumPy reference on the same input.

    Parameters
    ----------
    reference
        The plain NumPy statement, called on the example as a NumPy array.
    fluoxr
        The fluoxr call on the example itself (a NumPy array for a kernel,
        a lazy DataArray for a lazy operation).
    example
        A tiny deterministic input.
    lazy
        Whether ``fluoxr`` is a lazy operation (then it is also run over
        several chunkings and on distributed workers).
    halo
        Frames of context the lazy operation needs (for the chunkings).
    rtol, atol
        Tolerances; ``atol`` is relative to the largest ``|reference|``, so
        that values near 0 (odd moments of symmetric data) compare on the
        result's own scale.
    """

    reference: Callable[[np.ndarray], Any]
    fluoxr: Callable[[Any], Any]
    example: Callable[[], Any]
    lazy: bool = False
    halo: int | None = None
    rtol: float = 1e-9
    atol: float = 0.0

    def check(self, got: Any, expected: Any) -> None:
        """Assert that ``got`` (a fluoxr result, computed if lazy) equals ``expected`` (the reference's)."""
        got = got.compute() if hasattr(got, "compute") else got
        got, expected = np.asarray(got), np.asarray(expected)
        assert got.shape == expected.shape, f"shapes differ: {got.shape} != {expected.shape}"
        scale = float(np.abs(expected).max()) if expected.size else 0.0
        np.testing.assert_allclose(got, expected, rtol=self.rtol, atol=self.atol * scale)


def _video(shape: tuple[int, ...], *, scale: float = 3000.0, dtype: Any = np.uint16, chunks: int = 5,
           seed: int = 0) -> Any:
    from . import tiny_video

    return tiny_video(shape, dtype=dtype, scale=scale, chunks=chunks, seed=seed)


def _values(x: Any) -> np.ndarray:
    return np.asarray(x.values if hasattr(x, "values") else x)


def _traces() -> Any:
    import xarray as xr

    rng = np.random.default_rng(1234)
    n, t, fps = 3, 120, 10.0
    x = 100 + np.cumsum(rng.standard_normal((n, t)), 1) + 20 * (rng.random((n, t)) < 0.05)
    return xr.DataArray(x.astype(np.float32), dims=("roi", "time"),
                        coords={"roi": np.arange(n), "time": xr.Variable("time", np.arange(t) / fps, {"units": "s"})},
                        attrs={"fps": fps}).chunk({"time": 17})


def _wavy() -> Any:
    from . import wavy_video

    return wavy_video(chunks=6)


_LAGS = [0, 1, 3, 4]
_OSC = dict(period_s=18.0, interval_s=2.0, min_cluster_size=4, start=2)


def _lag_moments_reference(x: Any) -> np.ndarray:
    from ..kernels.moments import lag_subsets

    return np.stack([lag_moment(_values(x), _LAGS, s) for s in lag_subsets(len(_LAGS))])


def _cross_reference(x: Any) -> np.ndarray:
    from ..sofi.xc import _xc_shifts

    ref = cross_products(_values(x), 1)
    return np.stack([ref[s] for s in _xc_shifts(1)])


def _cross_fluoxr(v: Any) -> Any:
    from ..sofi.xc import _xc_shifts

    import fluoxr

    xc = fluoxr.cross_cumulants(v, 1)
    # the reference lists the shifts in _xc_shifts' order: select them by (dy, dx), not by position
    order = [int(np.flatnonzero((xc.dy.values == dy) & (xc.dx.values == dx))[0]) for dy, dx in _xc_shifts(1)]
    return xc.isel(shift=order)


def _cumulants_reference(x: Any) -> np.ndarray:
    m = central_moments(_values(x), range(1, 7))
    k = cumulants_from_moments({n: m[n - 1] for n in range(1, 7)})
    return np.stack([k[n] for n in range(2, 7)])


def _neighbour_vote_kernel(sign: np.ndarray) -> np.ndarray:
    from ..kernels.oscillations import neighbour_vote as kernel

    vote = np.empty(sign.shape, np.int8)
    kernel(sign, vote)
    return vote


def _neighbour_vote_reference(sign: np.ndarray) -> np.ndarray:
    influx, efflux = neighbour_vote(sign)
    return np.where(influx, 1, np.where(efflux, 2, 0)).astype(np.int8)


def _central_sums_kernel(x: np.ndarray) -> np.ndarray:
    from ..kernels.moments import central_sums as kernel

    mean, sums = kernel(x, 6)
    return np.concatenate([mean[None], sums])


def _central_sums_reference(x: np.ndarray) -> np.ndarray:
    mean, sums = central_sums(x, 6)
    return np.concatenate([mean[None], sums])


def _detect(v: Any) -> Any:
    from .. import oscillations

    return oscillations.detect(v, **_OSC)


# motion correction: six frames of 20 x 24, shifts that cross the border and are whole and fractional
_SHIFTS = (np.array([0.0, 1.0, -2.5, 0.3, 30.0, -0.75]), np.array([0.0, 0.5, 1.25, -3.0, -0.2, 40.0]))


def _motion_frames() -> np.ndarray:
    return np.random.default_rng(21).random((6, 20, 24)).astype(np.float32) * 100


def _fields(shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    t, ly, lx = shape
    yy, xx = np.mgrid[:ly, :lx]
    fy = np.stack([np.sin(yy / 5 + k) * 2 + xx / 10 for k in range(t)]).astype(np.float32)
    fx = np.stack([np.cos(xx / 7 - k) * 1.5 - yy / 9 for k in range(t)]).astype(np.float32)
    return fy, fx


def _phasecorr_reference(f: np.ndarray) -> np.ndarray:
    d = np.arange(-4, 5)
    return np.stack([phase_correlation_map(fr, f[0], clip=False)[np.ix_(d % 20, d % 24)] for fr in f])


def _phasecorr_kernel(f: np.ndarray) -> np.ndarray:
    import importlib

    k = importlib.import_module("fluoxr.kernels.motion")
    mask = k.spatial_taper(3.45, 20, 24)
    offset = (f[0].astype(np.float64).mean() * (1 - mask)).astype(np.float32)
    return k.correlation_windows(f, k.reference_fft(f[0], 1.15), mask, offset, 4)


def _motion_video() -> Any:
    from . import moving_video

    return moving_video(n_frames=9, shape=(40, 48), max_shift=3.0, seed=4, chunks=4)[0]


def _rigid_shifts(v: Any) -> Any:
    import dask.array as da

    import fluoxr

    m = fluoxr.estimate_motion(v, reference=v[0], subpixel=1, bidiphase=0, max_shift=5)
    return da.stack([m.dy.data, m.dx.data], axis=1)


def _lazy(name: str) -> Callable[..., Any]:
    # resolved at call time: importing this module must not import the lazy layer
    def call(v: Any, *args: Any, **kwargs: Any) -> Any:
        import fluoxr

        return getattr(fluoxr, name)(v, *args, **kwargs)

    return call


def _colour_map_fluoxr(x: np.ndarray) -> np.ndarray:
    from ..io import export

    return export.colour_map(x, export._lookup_table("pink"), 0.1, 0.9)


def _kernel(module: str, name: str) -> Callable[..., Any]:
    def call(*args: Any, **kwargs: Any) -> Any:
        import importlib

        return getattr(importlib.import_module(f"fluoxr.kernels.{module}"), name)(*args, **kwargs)

    return call


# name -> (fluoxr function, its reference, a tiny input); read by tests/test_references.py,
# tests/test_distributed.py and benchmarks/sofi.py
COMPARISONS: dict[str, Comparison] = {
    "central sums (kernel)": Comparison(
        _central_sums_reference, _central_sums_kernel,
        lambda: (np.random.default_rng(0).random((37, 110)) * 100).astype(np.uint16), rtol=1e-9, atol=1e-9),
    "moments": Comparison(
        lambda x: central_moments(_values(x), range(2, 7)),
        lambda v: _lazy("moments")(v, 6).sel(order=slice(2, None)),
        lambda: _video((23, 5, 6)), lazy=True, rtol=1e-9, atol=1e-10),
    "cumulants": Comparison(
        _cumulants_reference, lambda v: _lazy("cumulants")(v, 6).sel(order=slice(2, None)),
        lambda: _video((23, 5, 6)), lazy=True, rtol=1e-8, atol=1e-8),
    "lag moments": Comparison(
        _lag_moments_reference, lambda v: _lazy("lag_moments")(v, _LAGS),
        lambda: _video((26, 3, 4), dtype=np.float64, scale=50.0), lazy=True, halo=max(_LAGS), rtol=1e-10,
        atol=1e-12),
    "cross cumulants": Comparison(
        _cross_reference, _cross_fluoxr, lambda: _video((21, 7, 8), scale=500.0), lazy=True, rtol=1e-9,
        atol=1e-9),
    "pair comoments (kernel)": Comparison(
        lambda x: pair_comoment_sums(x, [(0, 0, 0, 0), (-1, -1, 1, 1), (0, -2, 0, 2)]),
        lambda x: _kernel("moments", "pair_comoment_state")(
            x, np.array([(0, 0, 0, 0), (-1, -1, 1, 1), (0, -2, 0, 2)]))[2],
        lambda: np.random.default_rng(8).integers(0, 1000, (30, 6, 7)).astype(np.uint16), rtol=1e-10,
        atol=1e-12),
    "median smoothing (kernel)": Comparison(
        lambda s: med_smooth(s, 21), lambda s: _kernel("sofi", "med_smooth")(s, 21),
        lambda: np.random.default_rng(1).random(60), rtol=0.0),
    "filter1d_same (kernel)": Comparison(
        lambda x: filter1d_same(x, np.arange(1.0, 6.0)),
        lambda x: _kernel("sofi", "filter1d_same")(x, np.arange(1.0, 6.0)),
        lambda: np.random.default_rng(2).random(17), rtol=1e-7),
    "fourier interpolation (kernel)": Comparison(
        lambda im: fourier_interpolate(im, 2), lambda im: _kernel("sofi", "interpolate_frames")(im, 2),
        lambda: np.random.default_rng(14).random((5, 7)) * 100, rtol=1e-9, atol=1e-11),
    "fourier interpolation": Comparison(
        lambda x: np.stack([fourier_interpolate(f, 2) for f in _values(x).astype(np.float64)]),
        lambda v: _lazy("fourier_interpolate")(v, 2), lambda: _video((9, 5, 6)), lazy=True, rtol=1e-9,
        atol=1e-11),
    "colour map (kernel)": Comparison(
        lambda x: colour_map(x, "pink", 0.1, 0.9),
        _colour_map_fluoxr,
        lambda: np.r_[np.random.default_rng(9).random(1020), 0.1, 0.9, -1.0, 2.0, np.nan].reshape(41, 25),
        rtol=0.0),
    "ldrc (kernel)": Comparison(
        lambda im: ldrc(np.linspace(0, 1, im.size).reshape(im.shape), im, (3, 3)),
        lambda im: _kernel("sofi", "ldrc")(np.linspace(0, 1, im.size).reshape(im.shape), im, 1, (3, 3)),
        lambda: np.random.default_rng(6).random((7, 9)) ** 4 * 1e6, rtol=1e-9, atol=1e-15),
    "maximin (kernel)": Comparison(
        lambda f: maximin(f, 1.3, 2.0, 10.0),
        lambda f: _kernel("temporal", "maximin")(f, 2.0, _kernel("temporal", "maximin_window")(1.3, 10.0)),
        lambda: _traces().values, rtol=2e-6),
    "baseline": Comparison(
        lambda t: maximin(_values(t), 1.3, 2.0, 10.0),
        lambda t: _lazy("baseline")(t, window_s=1.3, sigma_frames=2.0),
        _traces, lazy=True, halo=18, rtol=2e-6),  # halo: kernels.temporal.maximin_halo(2.0, 13)
    "neighbour vote (kernel)": Comparison(
        _neighbour_vote_reference, _neighbour_vote_kernel,
        lambda: np.random.default_rng(3).integers(-1, 2, (9, 11)).astype(np.int8), rtol=0.0),
    "phase correlation window (kernel)": Comparison(
        _phasecorr_reference, _phasecorr_kernel, _motion_frames, rtol=0.0, atol=2e-5),
    "rigid bilinear shift (kernel)": Comparison(
        lambda f: bilinear_remap(f, _SHIFTS[0], _SHIFTS[1]),
        lambda f: _kernel("motion", "shift_rigid")(f, _SHIFTS[0], _SHIFTS[1]),
        _motion_frames, rtol=0.0, atol=1e-6),
    "bilinear remap (kernel)": Comparison(
        lambda f: bilinear_remap(f, *_fields(f.shape)),
        lambda f: _kernel("motion", "remap_bilinear")(f, *_fields(f.shape)),
        _motion_frames, rtol=0.0, atol=1e-6),
    "registered video (given shifts)": Comparison(
        lambda v: bilinear_remap(_values(v), _SHIFTS[0], _SHIFTS[1]),
        lambda v: _lazy("apply_motion")(v, {"dy": _SHIFTS[0], "dx": _SHIFTS[1]}),
        lambda: _video((6, 20, 24), dtype=np.float32, chunks=4), lazy=True, rtol=0.0, atol=1e-6),
    "rigid whole-pixel shifts": Comparison(
        lambda v: rigid_whole_pixel_shifts(_values(v), _values(v)[0], 5),
        _rigid_shifts, lambda: _motion_video(), lazy=True, rtol=0.0),
    "oscillation detection": Comparison(
        lambda v: detect_oscillations(_values(v), **_OSC),
        _detect, _wavy, lazy=True, rtol=0.0,
        halo=1),  # oscillations.detection_halo(period_s=18.0, interval_s=2.0)
}
