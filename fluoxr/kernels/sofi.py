"""SOFI image kernels: masks, 1-D filters, bleaching blocks, Fourier interpolation, deconvolution, ldrc.

Pure NumPy/SciPy functions of in-memory arrays (the Fourier interpolation's
also of CuPy arrays, for the GPU), each matching pysofi 0.1.1's
function of the same name except where pysofi has a bug; the docstring then
says what differs. The lazy versions are in :mod:`fluoxr.sofi`.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np

from .._backend import array_module, to_xp

__all__ = [
    "gauss2d_mask",
    "gauss1d_mask",
    "filter1d_same",
    "filter_shift",
    "filter_halo",
    "correlate_same_block",
    "med_smooth",
    "cut_frames",
    "block_bounds",
    "interp_size",
    "finterp_operators",
    "finterp_operator",
    "interpolate_with",
    "interpolate_real",
    "interpolate_frames",
    "fourier_interp_array",
    "zero_pad",
    "psf2otf",
    "otf2psf",
    "corelucy",
    "richardson_lucy",
    "deconvsk",
    "resize_mask",
    "ldrc",
]

_EPS = np.finfo(np.float64).eps


# --------------------------------------------------------------------------------------------
# masks (MATLAB fspecial('gaussian'))


def _mask_shape(shape: object) -> tuple[int, int]:
    """``shape`` as two ints >= 1, or an error naming ``shape`` (a wrong length was silently unpacked or failed)."""
    if isinstance(shape, (str, bytes)) or not hasattr(shape, "__len__") or len(shape) != 2:
        raise ValueError(f"shape must be two integers (rows, columns), got {shape!r}")
    out = []
    for v in shape:
        if isinstance(v, (bool, np.bool_)) or not isinstance(v, numbers.Real):
            raise TypeError(f"shape must hold integers, got {shape!r}")
        if not math.isfinite(float(v)) or float(v) != int(v) or int(v) < 1:
            raise ValueError(f"shape must hold integers >= 1, got {shape!r}")
        out.append(int(v))
    return out[0], out[1]


def _mask_sigma(sigma: object) -> float:
    if isinstance(sigma, (bool, np.bool_)) or not isinstance(sigma, numbers.Real):
        raise TypeError(f"sigma must be a number, got {sigma!r} of type {type(sigma).__name__}")
    if not (math.isfinite(float(sigma)) and float(sigma) > 0):
        raise ValueError(f"sigma must be a finite number > 0 (the Gaussian's standard deviation), got {sigma!r}")
    return float(sigma)


def gauss2d_mask(shape: Sequence[int] = (3, 3), sigma: float = 0.5) -> np.ndarray:
    """2-D Gaussian mask, as MATLAB's ``fspecial('gaussian', shape, sigma)`` (pysofi ``masks.gauss2d_mask``).

    Values below ``eps * max`` are set to 0, then the mask is normalised to sum 1.

    Examples
    --------
    >>> from fluoxr.kernels.sofi import gauss2d_mask
    >>> m = gauss2d_mask((3, 3), 0.5)
    >>> round(float(m.sum()), 12), m.argmax()
    (1.0, np.int64(4))
    """
    rows, cols = _mask_shape(shape)
    sigma = _mask_sigma(sigma)
    mdim, ndim = (rows - 1) / 2, (cols - 1) / 2
    y, x = np.ogrid[-mdim : mdim + 1, -ndim : ndim + 1]
    h = np.exp(-(x * x + y * y) / (2.0 * sigma * sigma))
    h[h < np.finfo(h.dtype).eps * h.max()] = 0
    s = h.sum()
    if s != 0:
        h /= s
    return h


def gauss1d_mask(shape: Sequence[int] = (1, 3), sigma: float = 0.5) -> np.ndarray:
    """1-D Gaussian mask: the first row of :func:`gauss2d_mask` (pysofi ``masks.gauss1d_mask``).

    ``shape`` is ``(1, n)`` for ``n`` taps, as pysofi's.

    Examples
    --------
    >>> from fluoxr.kernels.sofi import gauss1d_mask
    >>> gauss1d_mask((1, 3), 0.5).round(4).tolist()
    [0.1065, 0.787, 0.1065]
    """
    return gauss2d_mask(shape, sigma)[0]


# --------------------------------------------------------------------------------------------
# temporal noise filter (pysofi filtering.filter1d_same / noise_filter1d)


def filter_shift(n: int, n_taps: int) -> int:
    """Offset of the kept part of the full convolution in :func:`filter1d_same`.

    pysofi keeps ``full[c - floor(n/2) : c + ceil(n/2)]`` with ``c = (n + L - 1) // 2``,
    so output ``t`` is ``full[t + s]`` with ``s = c - n // 2``.
    """
    return (n + n_taps - 1) // 2 - n // 2


def filter_halo(n: int, n_taps: int) -> int:
    """Frames needed on each side of a chunk by the noise filter: ``max(s, L - 1 - s)``."""
    s = filter_shift(n, n_taps)
    return max(s, n_taps - 1 - s)


def filter1d_same(series: np.ndarray, noise_filter: np.ndarray) -> np.ndarray:
    """Convolve a series with a filter and keep the centred part of the series' length.

    pysofi's ``filtering.filter1d_same`` (which NumPy 2 broke with ``np.int``);
    when the filter and the series both have even lengths the result is
    shifted left by one sample compared to MATLAB's ``conv(..., 'same')``, as
    in pysofi.

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr.kernels.sofi import filter1d_same
    >>> filter1d_same(np.array([0.0, 0, 1, 0, 0]), np.array([1.0, 2, 3])).tolist()
    [0.0, 1.0, 2.0, 3.0, 0.0]
    """
    series = np.asarray(series, dtype=np.float64)
    h = np.asarray(noise_filter, dtype=np.float64).ravel()
    full = np.convolve(series, h, "full")
    s = filter_shift(series.size, h.size)
    return full[s : s + series.size]


def correlate_same_block(block: np.ndarray, h: np.ndarray, shift: int, axis: int = 0) -> np.ndarray:
    """``out[t] = sum_k h[k] * block[t + shift - k]`` along ``axis`` (zeros outside the block).

    The chunk kernel of the lazy noise filter: with a halo of
    :func:`filter_halo` frames around the chunk (zeros beyond the recording),
    the interior equals :func:`filter1d_same` of the whole series.
    """
    x = np.moveaxis(np.asarray(block, dtype=np.float64), axis, 0)
    h = np.asarray(h, dtype=np.float64).ravel()
    n, L = x.shape[0], h.size
    pad = L + abs(shift)
    xp = np.zeros((n + 2 * pad,) + x.shape[1:])
    xp[pad : pad + n] = x
    out = np.zeros_like(x)
    for k in range(L):
        off = pad + shift - k
        out += h[k] * xp[off : off + n]
    return np.moveaxis(out, 0, axis)


# --------------------------------------------------------------------------------------------
# bleaching blocks (pysofi filtering.med_smooth, reconstruction.cut_frames)


def med_smooth(signal: np.ndarray, kernel_size: int = 251) -> np.ndarray:
    """Median filter with mirror ('symmetric') extension at both ends (pysofi ``filtering.med_smooth``).

    Equals pysofi's result whenever the signal is at least ``kernel_size``
    long. pysofi pads with at most ``len(signal)`` mirrored samples and then
    crops ``kernel_size`` samples from each end, so a shorter signal comes back
    empty or misaligned; here the mirror extension is repeated as needed.
    ``kernel_size`` must be odd (as ``scipy.signal.medfilt`` requires).

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr.kernels.sofi import med_smooth
    >>> med_smooth(np.array([1.0, 9, 2, 3, 4]), 3).tolist()
    [1.0, 2.0, 3.0, 3.0, 4.0]
    """
    from scipy import ndimage

    signal = np.asarray(signal, dtype=np.float64)
    return ndimage.median_filter(signal, size=int(kernel_size), mode="reflect")


def cut_frames(signal: np.ndarray, fbc: float = 0.04) -> tuple[np.ndarray, np.ndarray]:
    """Frames that cut a bleaching curve into blocks of equal signal decrease (pysofi ``cut_frames``).

    With ``n = ceil(1 / fbc)`` blocks, the lower intensity bound of block ``i``
    is ``max - (max - min) * i * fbc``; scanning from the frame of maximum
    signal, a cut is made at the first frame below each bound in turn. Frames
    before the maximum belong to the first block.

    Returns ``(bounds, frames)``: the ``n + 1`` intensity bounds (the maximum
    first) and the block edges ``[0, cut_1, ..., len(signal)]``.

    Differences from pysofi: pysofi truncates every bound with ``int()``; so
    does this function when the signal holds whole numbers (the total signal
    of integer frames, and its running median, always do), which gives
    pysofi's cuts, but it keeps the exact bounds for a fractional signal,
    where truncation would misplace or drop cuts (a normalised recording with
    a total signal below 1 would get no blocks at all). At most ``n - 1`` cuts
    are made (pysofi indexes past its list of bounds and raises
    ``IndexError`` if the signal ever falls below the last one). If the signal
    does not fall below every bound, fewer cuts are returned (pysofi's
    ``moments_all_blocks`` then raises ``IndexError``).

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr.kernels.sofi import cut_frames
    >>> bounds, frames = cut_frames(np.arange(100.0, 0, -1), 0.2)
    >>> bounds.tolist(), frames.tolist()
    ([100.0, 80.0, 60.0, 40.0, 20.0, 1.0], [0, 21, 41, 61, 81, 100])
    """
    signal = np.asarray(signal, dtype=np.float64).ravel()
    n_blocks = math.ceil(1 / fbc)
    hi, lo = float(np.max(signal)), float(np.min(signal))
    diff = hi - lo
    bounds = np.array([hi] + [hi - diff * i * fbc for i in range(1, n_blocks + 1)])
    if np.all(signal == np.round(signal)):
        bounds = np.trunc(bounds)
    cuts: list[int] = []
    i = 0
    t = int(np.argmax(signal))
    while t < signal.size and i < n_blocks - 1:
        if signal[t] < bounds[i + 1]:
            cuts.append(t)
            i += 1
        t += 1
    return bounds, np.array([0] + cuts + [signal.size], dtype=np.int64)


# a fall smaller than this many noise stds of the smoothed signal is taken as noise (a flat
# recording of 400-10000 frames reaches 5.5-8: measured on Poisson series, kernels 21-251)
_NOISE_FALL = 10.0


def block_bounds(signal: np.ndarray, fbc: float = 0.04, smooth_kernel: int = 251) -> np.ndarray:
    """Block edges for bleaching correction: :func:`med_smooth` then :func:`cut_frames`.

    Always ``ceil(1 / fbc) + 1`` edges: when fewer cuts are found the missing
    trailing blocks are empty (edges equal to ``len(signal)``).

    :func:`cut_frames` places its bounds at fractions of the smoothed
    signal's own fall, whatever its size: on a recording that does not bleach
    the fall is noise, and every wiggle crosses a bound, which gave
    ``ceil(1 / fbc)`` blocks of a frame or two bunched where the noise dips.
    So the fall of the smoothed signal from its maximum is compared with the
    noise of the smoothed signal, ``sigma_s = 1.2533 * sigma / sqrt(smooth_kernel)``
    (``sigma`` the frame-to-frame noise of the signal, from the median absolute
    deviation of its differences, which a smooth trend does not move; 1.2533
    for a median in place of a mean). Where every block would fall by less
    than ``sigma_s`` (``fbc * fall < sigma_s``), or the whole fall is within
    the range noise alone reaches (``fall < 10 * sigma_s``; a flat recording
    of a few thousand frames reaches about 8), a UserWarning names ``fbc``
    and the fall seen and one block spans the recording (edges ``[0, n, ...,
    n]``). A recording whose fall stands out of the noise is cut exactly as
    before (and as pysofi cuts it).

    Examples
    --------
    >>> import warnings
    >>> import numpy as np
    >>> from fluoxr.kernels.sofi import block_bounds
    >>> block_bounds(np.linspace(100, 50, 40), 0.25, 3).tolist()
    [0, 10, 20, 30, 40]
    >>> with warnings.catch_warnings(record=True):
    ...     block_bounds(100 + np.sin(np.arange(40.0)), 0.25, 3).tolist()
    [0, 40, 40, 40, 40]
    """
    n_blocks = math.ceil(1 / fbc)
    smooth = med_smooth(signal, smooth_kernel)
    out = np.full(n_blocks + 1, smooth.size, dtype=np.int64)
    out[0] = 0
    if smooth.size and np.all(np.isfinite(smooth)):
        t_max = int(np.argmax(smooth))
        top = float(smooth[t_max])
        fall = top - float(smooth[t_max:].min())
        d = np.diff(np.asarray(signal, dtype=np.float64).ravel())
        sigma = 1.4826 * float(np.median(np.abs(d - np.median(d)))) / math.sqrt(2) if d.size else 0.0
        noise = 1.2533 * sigma / math.sqrt(smooth_kernel)
        if fall <= 0 or fall < noise * max(_NOISE_FALL, 1 / fbc):
            rel = f" ({fall / abs(top):.2%} of its maximum)" if top else ""
            warnings.warn(
                f"the median-smoothed total signal falls by {fall:.4g}{rel}, within its noise ({noise:.3g}): "
                f"cutting it into blocks that each fall by fbc={fbc:g} of that would cut noise, so one block "
                "spans the recording (no bleaching correction)",
                UserWarning, stacklevel=2,
            )
            return out
    _, frames = cut_frames(smooth, fbc)
    out[: frames.size - 1] = frames[:-1]
    return out


# --------------------------------------------------------------------------------------------
# Fourier interpolation (pysofi finterp)


def interp_size(n: int, factor: int) -> int:
    """Pixels along an axis after interpolation by ``factor``: ``(n - 1) * factor + 1``."""
    return (int(n) - 1) * int(factor) + 1


def _ift_matrix(n2: int, factor: int) -> np.ndarray:
    """pysofi's ``_calc_ift_matrix`` for a spectrum of ``n2`` points (complex power, principal branch)."""
    b = np.zeros(n2)
    b[1] = 1
    base = np.fft.fft(b)
    conj = np.conj(base).reshape(1, n2)
    ift = np.ones(((n2 - 1) * factor + 1, 1)) @ conj
    p = np.arange(0, n2 - 1 + 1e-10, 1 / factor).reshape(-1, 1) @ np.ones((1, n2))
    return np.power(ift, p) / n2


def _ft_matrix(n2: int) -> np.ndarray:
    b = np.zeros(n2)
    b[1] = 1
    base = np.fft.fft(b)
    return np.power(base, np.arange(n2).reshape(n2, 1) * np.ones((n2, n2)))


def finterp_operators(h: int, w: int, factor: int) -> tuple[np.ndarray, np.ndarray]:
    """Left and right complex operators ``A`` ``(h', h)`` and ``B`` ``(w, w')`` with ``interp = |A @ im @ B|``.

    pysofi mirrors the frame to ``(2h, 2w)``, applies the DFT matrices and the
    interpolating inverse DFT matrices, takes the modulus and crops to
    ``(h', w') = ((h-1)f+1, (w-1)f+1)``. All those steps before the modulus are
    linear, so they fold into one matrix per axis (the mirror included); a
    frame then costs two small matrix products instead of four large ones.
    """
    hn, wn = interp_size(h, factor), interp_size(w, factor)
    fx = _ft_matrix(2 * h)
    ifx = _ift_matrix(2 * h, factor)[:hn]
    A = ifx @ fx                                 # (hn, 2h)
    A = A[:, :h] + A[:, h:][:, ::-1]             # fold the mirror extension
    fy = _ft_matrix(2 * w).T
    ify = _ift_matrix(2 * w, factor).T[:, :wn]
    B = fy @ ify                                 # (2w, wn)
    B = B[:w] + B[w:][::-1]
    return np.ascontiguousarray(A), np.ascontiguousarray(B)


def finterp_operator(h: int, w: int, factor: int, which: int, xp_name: str = "numpy") -> Any:
    """Operator ``A`` (``which=0``) or ``B`` (``which=1``) of :func:`finterp_operators`, as an array of ``xp_name``.

    One graph task makes it, and copies it to the device once for CuPy.
    """
    return to_xp(finterp_operators(h, w, factor)[which], xp_name)


def interpolate_with(frames: Any, A: Any, B: Any, *, batch: int = 16) -> Any:
    """``|A @ frame @ B|`` for every frame (last two axes) of ``frames``, float64, in the frames' array module.

    ``A`` and ``B`` are the operators of :func:`finterp_operators` as arrays
    of that module. Frames are processed ``batch`` at a time to bound the
    complex temporaries.

    Examples
    --------
    >>> import numpy as np
    >>> A, B = finterp_operators(2, 2, 2)
    >>> interpolate_with(np.ones((1, 2, 2)), A, B).round(6).tolist()
    [[[1.0, 1.0, 1.0], [1.0, 1.0, 1.0], [1.0, 1.0, 1.0]]]
    """
    xp = array_module(frames)
    lead = tuple(frames.shape[:-2])
    h, w = frames.shape[-2:]
    flat = frames.reshape((-1, h, w))
    out = xp.empty((flat.shape[0], A.shape[0], B.shape[1]))
    for i in range(0, flat.shape[0], batch):
        chunk = flat[i : i + batch].astype(xp.float64, copy=False)
        out[i : i + batch] = xp.abs(A @ chunk @ B)
    return out.reshape(lead + tuple(out.shape[1:]))


def _real_parts(A: np.ndarray, B: np.ndarray) -> tuple[int, np.ndarray, np.ndarray, np.ndarray]:
    """The factor and the real matrices :func:`interpolate_real` multiplies by, from ``A`` and ``B``.

    Only the rows of ``A`` (columns of ``B``) at fractional positions are
    kept, phase by phase (all rows ``k, k + f, ...`` for ``k = 1``, then
    ``k = 2``, ...), so that each phase is one slice of the products:
    ``left`` is ``[Re; Im]`` of those rows, ``right`` is ``[Re, Im]`` of those
    columns and ``right_sum`` is ``Re + Im`` of them.
    """
    (hn, h), (w, wn) = A.shape, B.shape
    f = (hn - 1) // (h - 1) if h > 1 else (wn - 1) // (w - 1) if w > 1 else 1
    rows = np.array([r for k in range(1, f) for r in range(k, hn, f)], dtype=np.intp)
    cols = np.array([c for k in range(1, f) for c in range(k, wn, f)], dtype=np.intp)
    left = np.ascontiguousarray(np.concatenate([A.real[rows], A.imag[rows]]))      # (2 nr, h)
    Br, Bi = B.real[:, cols], B.imag[:, cols]
    right = np.ascontiguousarray(np.concatenate([Br, Bi], axis=1))                   # (w, 2 nc)
    return f, left, right, np.ascontiguousarray(Br + Bi)


# pysofi's operators are real to rounding (the mirrored frame is symmetric about a half pixel, so its
# interpolation at any fraction of a pixel is real; |imaginary| / |real| is below 1e-13 for every size
# and factor tried, tests/kernels/test_sofi_kernels.py): below this ratio the imaginary parts are dropped
_REAL_OPERATORS = 1e-12

# sample types the numba loops of the fast route take as they are (the others are converted to float64)
_NATIVE = (np.dtype(np.uint16), np.dtype(np.float32), np.dtype(np.float64))


def _modulus_into(out: np.ndarray, re: np.ndarray, im: np.ndarray) -> None:
    """``out[...] = sqrt(re**2 + im**2)``, with ``re``/``im`` ``(rows, frames, cols)`` and ``out`` ``(frames, rows, cols)``.

    ``np.hypot`` (what ``np.abs`` of a complex array uses) is four times
    slower and guards against overflow above 1e154, which pixel values never
    reach; the two agree to a few units in the last place.
    """
    tmp = np.multiply(re, re)
    tmp += np.square(im)
    np.sqrt(tmp.transpose(1, 0, 2), out=out)


def _interpolate_batch_complex(X: np.ndarray, o: np.ndarray, f: int, left: np.ndarray, right: np.ndarray,
                               right_sum: np.ndarray) -> None:
    """Complex operators: real and imaginary parts apart, the complex-by-complex block by three products."""
    h, m, w = X.shape
    nr, nc = left.shape[0] // 2, right.shape[1] // 2
    hi, wi = h - 1, w - 1
    G = (left @ X.reshape(h, m * w)).reshape(2, nr, m, w)      # A's fractional rows @ frame
    P = (X.reshape(h * m, w) @ right).reshape(h, m, 2, nc)     # frame @ B's fractional columns
    Gr, Gi = G[0].reshape(nr * m, w), G[1].reshape(nr * m, w)
    t1 = (Gr @ right[:, :nc]).reshape(nr, m, nc)
    t2 = (Gi @ right[:, nc:]).reshape(nr, m, nc)
    t3 = ((Gr + Gi) @ right_sum).reshape(nr, m, nc)
    for k in range(1, f):
        rs = slice((k - 1) * hi, k * hi)
        _modulus_into(o[:, k::f, ::f], G[0, rs], G[1, rs])
    for col in range(1, f):
        cs = slice((col - 1) * wi, col * wi)
        _modulus_into(o[:, ::f, col::f], P[:, :, 0, cs], P[:, :, 1, cs])
        for k in range(1, f):
            rs = slice((k - 1) * hi, k * hi)
            a, b = t1[rs, :, cs], t2[rs, :, cs]
            re = a - b
            im = t3[rs, :, cs] - a
            im -= b
            _modulus_into(o[:, k::f, col::f], re, im)


class _CentroPlan(NamedTuple):
    """The half-size real operators of :func:`interpolate_real`'s fast route (see :mod:`fluoxr.kernels.finterp`)."""

    f: int
    S: np.ndarray    # (ceil(nr/2), ceil(h/2)): first half of the fractional rows, on the row sums
    D: np.ndarray    # (ceil(nr/2), h//2): the same rows, on the row differences
    Sc: np.ndarray   # (ceil(w/2), ceil(nc/2)): first half of the fractional columns, on the column sums
    Dc: np.ndarray   # (w//2, ceil(nc/2)): the same columns, on the column differences
    nr: int          # fractional rows


def _centro_plan(A: np.ndarray, B: np.ndarray) -> _CentroPlan | None:
    """Half-size operators of ``A``'s fractional rows and ``B``'s fractional columns, or None where ``A`` or
    ``B`` is not real and centro-symmetric (to :data:`_REAL_OPERATORS`), as pysofi's always are.

    With ``x`` a column of the frame, ``u[j] = x[j] + x[h-1-j]`` and
    ``v[j] = x[j] - x[h-1-j]``, the first half of the fractional rows is
    ``S u + D v`` and the second half, mirrored, ``S u - D v``, where ``S``
    and ``D`` are the even and odd halves of the first half of those rows.
    The same holds for the columns of ``B``.
    """
    (hn, h), (w, wn) = A.shape, B.shape
    f = (hn - 1) // (h - 1) if h > 1 else (wn - 1) // (w - 1) if w > 1 else 1
    if interp_size(h, f) != hn or interp_size(w, f) != wn:
        return None
    Ar = A[[i for i in range(hn) if i % f]]             # fractional rows, in position order
    Bc = B[:, [c for c in range(wn) if c % f]]          # fractional columns
    for op in (Ar, Bc):
        scale = np.abs(op.real).max(initial=0.0)
        if (np.abs(op.imag).max(initial=0.0) > _REAL_OPERATORS * scale
                or np.abs(op.real - op.real[::-1, ::-1]).max(initial=0.0) > _REAL_OPERATORS * scale):
            return None
    Ar, Bc = Ar.real, Bc.real
    nr, nc = Ar.shape[0], Bc.shape[1]
    hv, wv = h // 2, w // 2
    top = Ar[: (nr + 1) // 2]
    S = np.empty((top.shape[0], (h + 1) // 2))
    S[:, :hv] = (top[:, :hv] + top[:, ::-1][:, :hv]) / 2
    S[:, hv:] = top[:, hv : hv + h % 2]                 # the middle column of an odd width, unpaired
    D = (top[:, :hv] - top[:, ::-1][:, :hv]) / 2
    left = Bc[:, : (nc + 1) // 2]
    Sc = np.empty(((w + 1) // 2, left.shape[1]))
    Sc[:wv] = (left[:wv] + left[::-1][:wv]) / 2
    Sc[wv:] = left[wv : wv + w % 2]
    Dc = (left[:wv] - left[::-1][:wv]) / 2
    return _CentroPlan(f, S, np.ascontiguousarray(D), Sc, np.ascontiguousarray(Dc), nr)


def _auto_batch(h: int, w: int, nr: int) -> int:
    """Frames per batch: as many as keep a batch's folded rows, products and output in a core's L2 cache, at
    least one (measured per frame, one thread: 64 x 64 frames 54 us in batches of 1-2, 63 us in batches of 16;
    256 x 256 frames 1.9 ms one at a time, 4.9 ms in batches of 16)."""
    per_frame = (h + nr) * w * 8 * 3   # the folded rows, their products and the output, float64
    return max(1, 2**19 // per_frame)


def interpolate_real(frames: np.ndarray, A: np.ndarray, B: np.ndarray, *, batch: int | None = None) -> np.ndarray:
    """``|A @ frame @ B|`` for every real frame (last two axes) of ``frames``, by real matrix products (float64).

    The CPU kernel of :func:`fluoxr.fourier_interpolate`; the same values as
    :func:`interpolate_with` and pysofi (to rounding,
    ``tests/kernels/test_sofi_kernels.py``, ``tests/sofi/test_pysofi_peer.py``)
    at a twentieth of its arithmetic:

    * the rows of ``A`` at integer positions (every ``f``-th) are the
      identity, as are those columns of ``B``: the original pixels are kept
      (their modulus), and only the fractional rows and columns are computed;
    * pysofi's operators are real to rounding (the mirrored frame is
      symmetric about a half pixel, so its interpolation at any fraction of
      a pixel is real) and centro-symmetric (reflecting the frame reflects
      its interpolation): their imaginary parts, below 1e-13 of the real
      parts, are dropped, and each product is done as two of half the size,
      on the sums and differences of mirrored rows (then columns), which
      give the two mirrored halves of the result
      (:mod:`fluoxr.kernels.finterp`). Operators that are not real and
      centro-symmetric to 1e-12 (none made by :func:`finterp_operators`)
      take the general route: real and imaginary parts apart, three real
      products for the complex-by-complex block.

    A frame holding a NaN or an infinity is NaN everywhere, as with the
    matrix products of pysofi (and of :func:`interpolate_with`): such frames
    are computed that way.

    Each batch of frames (``batch``, default chosen from the frame size) is
    four real GEMMs, all batches in one numba call that releases the GIL
    (:func:`fluoxr.kernels.finterp.interpolate_batches`), with one BLAS
    thread when dask runs the kernel on a worker thread
    (:func:`fluoxr._blas.single_blas_thread`).

    Examples
    --------
    >>> import numpy as np
    >>> A, B = finterp_operators(3, 2, 2)
    >>> im = np.array([[0.0, 1.0], [1.0, 2.0], [3.0, 4.0]])
    >>> np.allclose(interpolate_real(im, A, B), interpolate_with(im, A, B))
    True
    """
    from .._blas import single_blas_thread

    frames = np.asarray(frames)
    if frames.dtype.kind not in "biuf":
        raise TypeError(f"frames must hold real numbers, got dtype {frames.dtype}")
    if frames.dtype not in _NATIVE:   # the numba loops are compiled for these sample types only
        frames = frames.astype(np.float64)
    lead = tuple(frames.shape[:-2])
    h, w = frames.shape[-2:]
    hn, wn = A.shape[0], B.shape[1]
    plan = _centro_plan(A, B)
    if plan is None:
        f, left, right, right_sum = _real_parts(A, B)
    else:
        f = plan.f
    nr = hn - h
    batch = _auto_batch(h, w, nr) if batch is None else batch
    flat = frames.reshape((-1, h, w))
    out = np.empty((flat.shape[0], hn, wn))
    with single_blas_thread():
        if f == 1:
            np.abs(flat, out=out)
        elif plan is not None:
            from .finterp import interpolate_batches

            interpolate_batches(np.ascontiguousarray(flat), plan.S, plan.D, plan.Sc, plan.Dc, plan.nr, f, batch, out)
        else:
            for i in range(0, flat.shape[0], batch):
                m = min(batch, flat.shape[0] - i)
                o, block = out[i : i + m], flat[i : i + m]
                X = np.empty((h, m, w))                           # frames side by side: rows y, then frame, x
                X[...] = block.transpose(1, 0, 2)
                np.abs(block, out=o[:, ::f, ::f])
                _interpolate_batch_complex(X, o, f, left, right, right_sum)
    if frames.dtype.kind == "f":
        bad = ~np.isfinite(flat).all(axis=(1, 2))
        if bad.any():
            # the matrix form spreads a NaN (or inf) to its whole frame, as pysofi and the GPU kernel do
            out[bad] = interpolate_with(flat[bad], A, B)
    return out.reshape(lead + tuple(out.shape[1:]))


def interpolate_frames(frames: np.ndarray, factor: int, *, operators: tuple[np.ndarray, np.ndarray] | None = None,
                       batch: int | None = None) -> np.ndarray:
    """Fourier-interpolate every frame (last two axes) of ``frames`` by ``factor`` (float64).

    Same result as pysofi's ``finterp.interpolate_image`` per frame (to
    rounding), by :func:`interpolate_real`, ``batch`` frames at a time.
    """
    frames = np.asarray(frames)
    h, w = frames.shape[-2:]
    A, B = operators if operators is not None else finterp_operators(h, w, factor)
    return interpolate_real(frames, A, B, batch=batch)


def fourier_interp_array(im: np.ndarray, interp_num_lst: Sequence[int]) -> list[np.ndarray]:
    """pysofi ``finterp.fourier_interp_array``: one interpolated image per factor."""
    return [interpolate_frames(np.asarray(im), int(f)) for f in interp_num_lst]


# --------------------------------------------------------------------------------------------
# shrinking-kernel deconvolution (pysofi deconvsk)


def zero_pad(image: np.ndarray, shape: Sequence[int], position: str = "center") -> np.ndarray:
    """Zero-pad an image to ``shape``, centred or in the top-left ``'corner'`` (pysofi ``zero_pad``).

    pysofi calls ``np.alltrue``, which NumPy 2 removed.
    """
    shape = np.asarray(shape, dtype=int)
    imshape = np.asarray(image.shape, dtype=int)
    if np.all(imshape == shape):
        return image
    if np.any(shape <= 0):
        raise ValueError(f"shape must be positive, got {tuple(shape)}")
    dshape = shape - imshape
    if np.any(dshape < 0):
        raise ValueError(f"shape {tuple(shape)} is smaller than the image {tuple(imshape)}")
    out = np.zeros(tuple(shape), dtype=image.dtype)
    if position == "center":
        if np.any(dshape % 2 != 0):
            raise ValueError(f"shape {tuple(shape)} and the image {tuple(imshape)} differ in parity; "
                             "cannot centre the image")
        off = dshape // 2
    else:
        off = np.zeros_like(dshape)
    out[tuple(slice(o, o + s) for o, s in zip(off, imshape))] = image
    return out


def psf2otf(psf: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Optical transfer function of a PSF, as MATLAB ``psf2otf`` (pysofi ``psf2otf``).

    The PSF is zero-padded to ``shape``, circularly shifted so that its centre
    is at ``[0, 0]``, and Fourier transformed; the imaginary part is dropped
    when it is within round-off. An all-zero PSF gives zeros of ``shape``
    (pysofi returns zeros of the PSF's own shape).
    """
    psf = np.asarray(psf)
    if np.all(psf == 0):
        return np.zeros(tuple(shape))
    inshape = psf.shape
    psf = zero_pad(psf, shape, position="corner")
    for axis, size in enumerate(inshape):
        psf = np.roll(psf, -int(size / 2), axis=axis)
    otf = np.fft.fft2(psf)
    n_ops = np.sum(psf.size * np.log2(psf.shape))
    return np.real_if_close(otf, tol=n_ops)


def otf2psf(otf: np.ndarray, shape: Sequence[int]) -> np.ndarray:
    """Point-spread function of an OTF, cropped to ``shape``, as MATLAB ``otf2psf`` (pysofi ``otf2psf``)."""
    otf = np.asarray(otf)
    if np.all(otf == 0):
        return np.zeros(tuple(shape))
    psf = np.fft.ifft2(otf)
    n_ops = np.sum(otf.size * np.log2(otf.shape))
    psf = np.real(np.real_if_close(psf, tol=n_ops))
    for axis, size in enumerate(shape):
        psf = np.roll(psf, int(size / 2), axis=axis)
    return psf[0 : shape[0], 0 : shape[1]]


def _ensure_positive(data: np.ndarray) -> np.ndarray:
    data = np.array(data, dtype=np.float64)
    data[data <= 0] = _EPS
    return data


def corelucy(image: np.ndarray, h: np.ndarray) -> np.ndarray:
    """Richardson-Lucy core: ``fft(image / max(reblurred, eps))`` (pysofi ``corelucy``)."""
    reblur = np.real(np.fft.ifftn(h * np.fft.fftn(image)))
    reblur = _ensure_positive(reblur)
    return np.fft.fftn(image / reblur)


def richardson_lucy(image: np.ndarray, psf: np.ndarray, iterations: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Blind Richardson-Lucy deconvolution (MATLAB ``deconvblind`` without damping or weights).

    pysofi's ``deconvsk.richardson_lucy`` (which NumPy 2 broke with
    ``np.float``). Returns ``(psf, image)``: the restored PSF and the
    deblurred image.
    """
    image = _ensure_positive(image)
    psf = _ensure_positive(psf)
    psf /= psf.sum()
    size_i, size_p = image.shape, psf.shape
    J = image
    P = psf
    fw = np.fft.fftn(np.ones(size_i))
    for _ in range(int(iterations)):
        Y = np.maximum(J, 0)
        Bp = np.maximum(P, 0)
        Bp = Bp / Bp.sum()
        H = psf2otf(Bp, size_i)
        CC = corelucy(Y, H)
        J_prev = J
        scale = np.real(np.fft.ifftn(np.conj(H) * fw)) + np.sqrt(np.finfo(H.dtype).eps)
        J = np.maximum(image * np.real(np.fft.ifftn(np.conj(H) * CC)) / scale, 0)
        Hj = np.fft.fftn(J_prev)
        scale = otf2psf(np.conj(Hj) * fw, size_p) + np.sqrt(np.finfo(Hj.dtype).eps)
        P = np.maximum(Bp * otf2psf(np.conj(Hj) * CC, size_p) / scale, 0)
        P = P / P.sum()
    return P, J


def deconvsk(est_psf: np.ndarray, input_im: np.ndarray, deconv_lambda: float = 1.5,
             deconv_iter: int = 20) -> np.ndarray:
    """Shrinking-kernel deconvolution (pysofi ``deconvsk.deconvsk``).

    The image is mirror-extended to twice its size, then deconvolved by one
    Richardson-Lucy iteration with each PSF of the series
    ``(psf / max(psf)) ** (lambda ** i / (lambda - 1))``, ``i = 1 .. deconv_iter``,
    and cropped back.
    """
    input_im = np.asarray(input_im, dtype=np.float64)
    h, w = input_im.shape
    im = np.block([[input_im, np.fliplr(input_im)], [np.flipud(input_im), np.rot90(input_im, 2)]])
    psf0 = np.asarray(est_psf, dtype=np.float64)
    psf0 = psf0 / np.max(psf0)
    for i in range(int(deconv_iter)):
        alpha = deconv_lambda ** (i + 1) / (deconv_lambda - 1)
        _, im = richardson_lucy(im, psf0**alpha, 1)
    return im[:h, :w]


# --------------------------------------------------------------------------------------------
# local dynamic range compression (pysofi ldrc)


def resize_mask(mask: np.ndarray, order: int) -> np.ndarray:
    """pysofi's mask resizing in ``ldrc``: cubic ``griddata`` onto a grid ``order`` times finer."""
    from scipy.interpolate import griddata

    h, w = mask.shape
    hn, wn = (h - 1) * order + 1, (w - 1) * order + 1
    py, px = np.meshgrid(np.arange(0, hn, order), np.arange(0, wn, order), indexing="ij")
    pts = np.column_stack([py.ravel(), px.ravel()])
    gy, gx = np.mgrid[0 : hn - 1 : complex(hn), 0 : wn - 1 : complex(wn)]
    return griddata(pts, mask.reshape(-1, 1), (gy, gx), method="cubic").reshape(gy.shape)


def _window_extreme(a: np.ndarray, wy: int, wx: int, fn) -> np.ndarray:
    from numpy.lib.stride_tricks import sliding_window_view

    r = fn(sliding_window_view(a, wy, axis=0), axis=-1)
    return fn(sliding_window_view(r, wx, axis=1), axis=-1)


def _full_box_sum(a: np.ndarray, wy: int, wx: int) -> np.ndarray:
    """``out[p] = sum of a[i, j]`` over window origins ``(i, j)`` whose window covers ``p``."""
    h, w = a.shape[0] + wy - 1, a.shape[1] + wx - 1
    c = np.zeros((h + 1, w + 1))
    c[1 : a.shape[0] + 1, 1 : a.shape[1] + 1] = a
    c = c.cumsum(0).cumsum(1)
    yy, xx = np.arange(h), np.arange(w)
    y0, y1 = np.clip(yy - wy + 1, 0, None), np.clip(yy + 1, None, a.shape[0])
    x0, x1 = np.clip(xx - wx + 1, 0, None), np.clip(xx + 1, None, a.shape[1])
    return (c[y1][:, x1] - c[y0][:, x1] - c[y1][:, x0] + c[y0][:, x0])


def ldrc(mask_im: np.ndarray, input_im: np.ndarray, order: int = 1,
         window_size: Sequence[int] = (25, 25)) -> np.ndarray:
    """Local dynamic range compression (pysofi ``ldrc.ldrc``).

    Every window of ``window_size`` in ``input_im`` is min-max normalised and
    scaled by the maximum of ``mask_im`` in the same window; each pixel is
    the average over the windows that cover it. A mask of another shape is
    first resized ``order`` times finer with cubic ``griddata`` (as pysofi).

    Differences from pysofi: a flat window (max = min) contributes 0 instead of
    NaN (pysofi divides 0 by 0 and the NaN spreads over the window); the sums
    over windows are computed with running sums in O(pixels) rather than by
    looping over windows (equal to rounding).

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr.kernels.sofi import ldrc
    >>> out = ldrc(np.ones((5, 8)), np.arange(40.0).reshape(5, 8), 1, (5, 5))
    >>> out.shape, float(out.max()) <= 1.0
    ((5, 8), True)
    """
    mask_im = np.asarray(mask_im, dtype=np.float64)
    input_im = np.asarray(input_im, dtype=np.float64)
    wy, wx = (int(v) for v in window_size)
    if mask_im.shape != input_im.shape:
        mask = resize_mask(mask_im, int(order))
        if mask.shape != input_im.shape:
            raise ValueError(f"mask of shape {mask_im.shape} resized by order={order} has shape {mask.shape}, "
                             f"not the image's {input_im.shape}")
    else:
        mask = mask_im
    lo = _window_extreme(input_im, wy, wx, np.min)
    hi = _window_extreme(input_im, wy, wx, np.max)
    mmax = _window_extreme(mask, wy, wx, np.max)
    rng = hi - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(rng > 0, mmax / rng, 0.0)
    b = a * lo
    count = _full_box_sum(np.ones_like(a), wy, wx)
    return (input_im * _full_box_sum(a, wy, wx) - _full_box_sum(b, wy, wx)) / count
