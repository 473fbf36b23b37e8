"""Kernels of the ROI-versus-reference features: stacks of centred patches in, numbers per patch out.

Everything works on a batch of ROIs at once: a stack of patches has the
batch first and the patch last (``(n, P, P)`` for planar ROIs, ``(n, Lz, P,
P)`` for volumetric ones, ``P = 2 * width + 1``). No Python loop runs per
ROI. The stack kernels (``scatter_patches``, ``gather_patches``,
``surround``, ``in_out_sums``, ``masked_correlation``,
``phase_correlation_zero``) serve the public functions one by one;
``feature_batch`` does all of them for a batch in one compiled pass per ROI
plus one batched FFT, and the tests check that it equals their composition.
The semantics are those of ``cellector.utils`` (see :mod:`fluoxr.features`
for the list and the quirks kept); the tests compare every kernel with a
slow NumPy statement (``tests/kernels/test_features_kernels.py``).
"""

from __future__ import annotations

import numpy as np
import scipy.fft
from numba import njit

__all__ = [
    "bandpass_gain",
    "butterworth_bandpass",
    "feature_batch",
    "cross_power_spectrum",
    "gather_patches",
    "in_out_sums",
    "masked_correlation",
    "pad_reference",
    "phase_correlation_zero",
    "prepare_reference",
    "roc_auc",
    "scatter_patches",
    "surround",
    "weighted_dot",
    "window_2d",
]


# --------------------------------------------------------------------------------------------
# building the stacks


def scatter_patches(
    roi: np.ndarray,
    coords: tuple[np.ndarray, ...],
    weight: np.ndarray,
    centers: np.ndarray,
    n: int,
    width: int,
    fill_value: float,
    planes: int | None = None,
    z: np.ndarray | None = None,
) -> np.ndarray:
    """Masks centred on each ROI's centre: ``(n, P, P)``, or ``(n, planes, P, P)`` when ``z`` is given.

    ``roi`` holds the batch-local ROI index (0..n-1) of each pixel, ``coords``
    its ``(y, x)``, ``centers`` the integer ``(yc, xc)`` of each ROI. A pixel
    lands at ``(y - yc + width, x - xc + width)``; pixels farther than
    ``width`` from the centre are dropped; everything else is ``fill_value``.
    With ``z``, a pixel lands in its own plane (cellector's volumetric masks).
    Float32, like cellector.
    """
    p = 2 * width + 1
    y, x = coords
    cy = y - centers[roi, 0] + width
    cx = x - centers[roi, 1] + width
    ok = (cy >= 0) & (cy < p) & (cx >= 0) & (cx < p)
    if z is None:
        out = np.full((n, p, p), fill_value, np.float32)
        out[roi[ok], cy[ok], cx[ok]] = weight[ok]
    else:
        out = np.full((n, int(planes), p, p), fill_value, np.float32)
        out[roi[ok], z[ok], cy[ok], cx[ok]] = weight[ok]
    return out


def pad_reference(reference: np.ndarray, width: int, fill_value: float) -> np.ndarray:
    """``(Lz, Ly + 2w, Lx + 2w)`` float32 copy of a ``(Lz, Ly, Lx)`` reference, padded with ``fill_value``.

    Padding once lets :func:`gather_patches` cut every patch with one fancy
    index and no per-ROI bounds check.
    """
    ref = np.asarray(reference, dtype=np.float32)
    return np.pad(ref, ((0, 0), (width, width), (width, width)), constant_values=np.float32(fill_value))


@njit(cache=True, nogil=True)
def _gather(padded: np.ndarray, centers: np.ndarray, p: int, volumetric: bool, out: np.ndarray) -> None:  # pragma: no cover
    lz, hy, hx = padded.shape
    for i in range(centers.shape[0]):
        z0 = 0 if volumetric else centers[i, 0]
        nz = lz if volumetric else 1
        x0 = centers[i, 2]
        inside = x0 >= 0 and x0 + p <= hx
        for dz in range(nz):
            for r in range(p):
                # an index outside the padded image is clipped into the
                # padding, which holds the fill value
                yy = min(max(centers[i, 1] + r, 0), hy - 1)
                if inside:
                    for c in range(p):
                        out[i, dz, r, c] = padded[z0 + dz, yy, x0 + c]
                else:
                    for c in range(p):
                        out[i, dz, r, c] = padded[z0 + dz, yy, min(max(x0 + c, 0), hx - 1)]


def gather_patches(padded: np.ndarray, centers: np.ndarray, width: int, *, volumetric: bool) -> np.ndarray:
    """Patches of a padded reference (:func:`pad_reference`) centred on each ``(zc, yc, xc)``.

    Planar: ``(n, P, P)`` from plane ``zc`` of each ROI. Volumetric: ``(n,
    Lz, P, P)``, every plane. Centres may lie anywhere: an index that falls
    outside the padded image is clipped into the padding, which holds the
    fill value, so such patches read the fill value as cellector's do.
    """
    p = 2 * width + 1
    c = np.ascontiguousarray(centers, dtype=np.int64)
    nz = padded.shape[0] if volumetric else 1
    out = np.empty((c.shape[0], nz, p, p), padded.dtype)
    _gather(np.ascontiguousarray(padded), c, p, bool(volumetric), out)
    return out if volumetric else out[:, 0]


def window_2d(shape: tuple[int, int], kind: str = "hanning") -> np.ndarray:
    """Outer product of NumPy's 1-D window ``kind`` over the last two axes (cellector's ``filters.window``).

    Examples
    --------
    >>> from fluoxr.kernels.features import window_2d
    >>> window_2d((3, 3), "bartlett").tolist()
    [[0.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 0.0]]
    """
    fn = {"hanning": np.hanning, "hamming": np.hamming, "blackman": np.blackman, "bartlett": np.bartlett}[kind]
    return np.outer(fn(shape[0]), fn(shape[1]))


# --------------------------------------------------------------------------------------------
# centre and surround


@njit(cache=True, nogil=True)
def _dilate_patch(center: np.ndarray, iterations: int, d: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    # City-block distance to the centre inside one (nz, ny, nx) patch, one
    # axis at a time (L1 distance is separable: a forward and a backward sweep
    # per axis is exact). ``iterations`` dilations with the cross structuring
    # element reach exactly the pixels within L1 distance ``iterations``; the
    # patch edge is a wall (scipy's border_value=0), which cannot shorten an
    # L1 path in a box. ``d`` is int32 scratch of the patch's shape.
    nz, ny, nx = center.shape
    big = nz + ny + nx + iterations + 1
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                d[z, y, x] = 0 if center[z, y, x] else big
            for x in range(1, nx):
                d[z, y, x] = min(d[z, y, x], d[z, y, x - 1] + 1)
            for x in range(nx - 2, -1, -1):
                d[z, y, x] = min(d[z, y, x], d[z, y, x + 1] + 1)
    # the other axes with x innermost, so that the sweeps vectorise
    for z in range(nz):
        for y in range(1, ny):
            for x in range(nx):
                d[z, y, x] = min(d[z, y, x], d[z, y - 1, x] + 1)
        for y in range(ny - 2, -1, -1):
            for x in range(nx):
                d[z, y, x] = min(d[z, y, x], d[z, y + 1, x] + 1)
    for z in range(1, nz):
        for y in range(ny):
            for x in range(nx):
                d[z, y, x] = min(d[z, y, x], d[z - 1, y, x] + 1)
    for z in range(nz - 2, -1, -1):
        for y in range(ny):
            for x in range(nx):
                d[z, y, x] = min(d[z, y, x], d[z + 1, y, x] + 1)
    for z in range(nz):
        for y in range(ny):
            for x in range(nx):
                out[z, y, x] = d[z, y, x] <= iterations


@njit(cache=True, nogil=True)
def _surround_stack(center: np.ndarray, iterations: int, out: np.ndarray) -> None:  # pragma: no cover - numba
    d = np.empty(center.shape[1:], np.int32)
    for i in range(center.shape[0]):
        _dilate_patch(center[i], iterations, d, out[i])


def surround(center: np.ndarray, iterations: int, ndim: int = 2) -> np.ndarray:
    """``iterations`` binary dilations of each patch with the cross (4- or 6-connected) element.

    The last ``ndim`` (2 or 3) axes form the patch, leading axes are the
    batch; the patch edge is background, as in
    ``scipy.ndimage.binary_dilation(center, cross, iterations)`` applied to
    each patch alone. The result contains the centre.

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr.kernels.features import surround
    >>> centre = np.zeros((5, 5), bool)
    >>> centre[2, 2] = True
    >>> surround(centre, 1).astype(int).tolist()
    [[0, 0, 0, 0, 0], [0, 0, 1, 0, 0], [0, 1, 1, 1, 0], [0, 0, 1, 0, 0], [0, 0, 0, 0, 0]]
    """
    c = np.asarray(center, dtype=bool)
    patch = c.shape[c.ndim - ndim:]
    c4 = c.reshape((-1,) + (1,) * (3 - ndim) + patch)
    out = np.empty(c4.shape, bool)
    if c4.size:
        _surround_stack(np.ascontiguousarray(c4), int(iterations), out)
    return out.reshape(c.shape)


@njit(cache=True, nogil=True)
def _in_out_sums(center: np.ndarray, surr: np.ndarray, ref: np.ndarray, inside: np.ndarray,
                 outside: np.ndarray) -> None:  # pragma: no cover - numba
    n, k = ref.shape
    for i in range(n):
        a = 0.0
        b = 0.0
        for j in range(k):
            r = np.float64(ref[i, j])
            # literal products (0 * NaN is NaN), as cellector's ``center * reference``
            a += (1.0 if center[i, j] else 0.0) * r
            b += (1.0 if surr[i, j] else 0.0) * r
        inside[i] = a
        outside[i] = b


def in_out_sums(center: np.ndarray, surr: np.ndarray, reference: np.ndarray, ndim: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """Sums of the reference over the centre and over the surround of each patch (float64)."""
    lead = reference.shape[: reference.ndim - ndim]
    k = int(np.prod(reference.shape[reference.ndim - ndim:]))
    ref = np.ascontiguousarray(reference).reshape(-1, k)
    c = np.ascontiguousarray(np.broadcast_to(center, reference.shape)).reshape(-1, k)
    s = np.ascontiguousarray(np.broadcast_to(surr, reference.shape)).reshape(-1, k)
    inside = np.empty(ref.shape[0])
    outside = np.empty(ref.shape[0])
    _in_out_sums(c, s, ref, inside, outside)
    return inside.reshape(lead), outside.reshape(lead)


@njit(cache=True, nogil=True, error_model="numpy")
def _masked_correlation(m: np.ndarray, r: np.ndarray, keep: np.ndarray, out: np.ndarray) -> None:  # pragma: no cover
    n, k = m.shape
    for i in range(n):
        nm = 0
        nr = 0
        sm = 0.0
        sr = 0.0
        for j in range(k):
            if keep[i, j]:
                a = np.float64(m[i, j])
                b = np.float64(r[i, j])
                if not np.isnan(a):
                    nm += 1
                    sm += a
                if not np.isnan(b):
                    nr += 1
                    sr += b
        if nm == 0 or nr == 0:
            out[i] = np.nan
            continue
        um = sm / nm
        ur = sr / nr
        vm = 0.0
        vr = 0.0
        cov = 0.0
        for j in range(k):
            if keep[i, j]:
                a = np.float64(m[i, j]) - um
                b = np.float64(r[i, j]) - ur
                if not np.isnan(a):
                    vm += a * a
                if not np.isnan(b):
                    vr += b * b
                if not (np.isnan(a) or np.isnan(b)):
                    cov += a * b
        # ddof=0; the covariance is divided by the count of the masks' valid
        # pixels, as cellector's nansum(...) / N with N from the masks
        out[i] = cov / nm / np.sqrt(vr / nr) / np.sqrt(vm / nm)


def masked_correlation(masks: np.ndarray, references: np.ndarray, keep: np.ndarray | None = None,
                       ndim: int = 2) -> np.ndarray:
    """Pearson correlation of each mask with its reference over the pixels kept and not NaN.

    cellector's ``compute_correlation`` on arrays that are NaN outside
    ``keep``: means and (population, ddof=0) standard deviations of each
    array over its own non-NaN pixels, covariance summed over the pixels
    where both are valid and divided by the mask's count. NaN where a patch
    has no valid pixel; inf or NaN where a standard deviation is 0.
    """
    shape = np.broadcast_shapes(masks.shape, references.shape)
    lead = shape[: len(shape) - ndim]
    k = int(np.prod(shape[len(shape) - ndim:]))
    m = np.ascontiguousarray(np.broadcast_to(masks, shape)).reshape(-1, k)
    r = np.ascontiguousarray(np.broadcast_to(references, shape)).reshape(-1, k)
    kp = (np.ones(m.shape, bool) if keep is None
          else np.ascontiguousarray(np.broadcast_to(keep, shape)).reshape(-1, k))
    out = np.empty(m.shape[0])
    with np.errstate(divide="ignore", invalid="ignore"):
        _masked_correlation(m, r, kp, out)
    return out.reshape(lead)


# --------------------------------------------------------------------------------------------
# Fourier measures


def cross_power_spectrum(static: np.ndarray, moving: np.ndarray, eps: float, axes: tuple[int, ...]) -> np.ndarray:
    """``R = F(static) conj(F(moving))``, then ``R / (eps + |R|)`` (complex128, full spectrum)."""
    r = scipy.fft.fftn(np.asarray(static, np.float64), axes=axes) * np.conj(
        scipy.fft.fftn(np.asarray(moving, np.float64), axes=axes))
    with np.errstate(divide="ignore", invalid="ignore"):
        r /= eps + np.abs(r)
    return r


@njit(cache=True, nogil=True, error_model="numpy")
def _spectrum_sum(fa: np.ndarray, fb: np.ndarray, dca: np.ndarray, dcb: np.ndarray, eps: float, w: np.ndarray,
                  out: np.ndarray) -> None:  # pragma: no cover
    # sum over a half spectrum of w * Re(R) / (eps + |R|), R = fa * conj(fb),
    # in one pass and without the temporaries of the NumPy expression; the
    # zero-frequency terms come from dca, dcb (exact sums in float64)
    m, r, c = fa.shape
    for i in range(m):
        re = dca[i] * dcb[i]
        acc = w[0] * re / (eps + abs(re))
        for j in range(r):
            for k in range(c):
                if j == 0 and k == 0:
                    continue
                a = fa[i, j, k]
                b = fb[i, j, k]
                ar = np.float64(a.real)
                ai = np.float64(a.imag)
                br = np.float64(b.real)
                bi = np.float64(b.imag)
                re = ar * br + ai * bi
                im = ai * br - ar * bi
                acc += w[k] * re / (eps + np.sqrt(re * re + im * im))
        out[i] = acc


@njit(cache=True, nogil=True)
def _centre_single(x: np.ndarray, win: np.ndarray, out: np.ndarray, sums: np.ndarray) -> None:  # pragma: no cover
    # each row times the window (one weight per element of a row), minus its
    # mean taken in float64, as float32; the row sums kept in float64
    n, k = x.shape
    for i in range(n):
        s = 0.0
        for j in range(k):
            s += np.float64(x[i, j]) * win[j]
        sums[i] = s
        mean = s / k
        for j in range(k):
            out[i, j] = np.float32(np.float64(x[i, j]) * win[j] - mean)


def _spectrum(x: np.ndarray, k: int, single: bool, window: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Half spectrum over the last ``k`` axes of ``x * window`` and its exact zero-frequency term (the sum).

    ``window`` covers the last two axes (and repeats over a third).
    """
    axes = tuple(range(-k, 0))
    if not single:
        xw = np.asarray(x, np.float64) if window is None else x * window
        f = scipy.fft.rfftn(xw, axes=axes)
        return f, f[(...,) + (0,) * k].real
    # Single precision loses the small Fourier terms of a patch with a large
    # mean (its rounding scales with the patch's energy); without the mean
    # it scales with the fluctuations only. The mean itself is the exact
    # zero-frequency term, in float64.
    patch = x.shape[x.ndim - k:]
    size = int(np.prod(patch))
    flat = np.ascontiguousarray(x).reshape(-1, size)
    win = np.ascontiguousarray(np.broadcast_to(1.0 if window is None else window, patch),
                               dtype=np.float64).reshape(-1)
    centred = np.empty(flat.shape, np.float32)
    sums = np.empty(flat.shape[0])
    _centre_single(flat, win, centred, sums)
    lead = x.shape[: x.ndim - k]
    return scipy.fft.rfftn(centred.reshape(x.shape), axes=axes), sums.reshape(lead)


def phase_correlation_zero(static: np.ndarray, moving: np.ndarray, eps: float, axes: tuple[int, ...],
                           single: bool = False, window: np.ndarray | None = None) -> np.ndarray:
    """Zero-shift value of the phase correlation: ``Re(sum R / (eps + |R|)) / size`` over ``axes``.

    ``axes`` are the last ``len(axes)`` axes. Equal to
    ``mean(cross_power_spectrum(...)).real`` but from real FFTs: for real
    inputs ``R(-k) = conj(R(k))``, so the real part of the sum over the full
    spectrum is the sum over the half spectrum with the columns that have a
    mirror image counted twice. The sum is accumulated in float64; with
    ``single`` the FFTs are single precision, taken after removing each
    patch's mean, whose exact float64 sum is the zero-frequency term
    (relative error about 1e-7 of the largest value at ``eps=1e6``; see
    ``tests/kernels/test_features_kernels.py``). ``window`` (over the last two
    axes) multiplies both inputs first.
    """
    a = np.asarray(static)
    b = np.asarray(moving)
    shape = np.broadcast_shapes(a.shape, b.shape)
    k = len(axes)
    patch = shape[len(shape) - k:]
    lead = shape[: len(shape) - k]
    fa, dca = _spectrum(a, k, single, window)
    fb, dcb = _spectrum(b, k, single, window)
    spec = fa.shape[fa.ndim - k:]
    fa = np.broadcast_to(fa, lead + spec)
    fb = np.broadcast_to(fb, lead + spec)
    return _zero_shift(fa, fb, np.broadcast_to(dca, lead), np.broadcast_to(dcb, lead), eps, patch)


def _zero_shift(fa: np.ndarray, fb: np.ndarray, dca: np.ndarray, dcb: np.ndarray, eps: float,
                patch: tuple[int, ...]) -> np.ndarray:
    """The spectrum sum of :func:`phase_correlation_zero` from half spectra (``(..., *spec)``) and exact DC terms."""
    k = len(patch)
    lead = dca.shape
    nlast = patch[-1]
    w = np.full(nlast // 2 + 1, 2.0)
    w[0] = 1.0
    if nlast % 2 == 0:
        w[-1] = 1.0
    spec = fa.shape[fa.ndim - k:]
    fa3 = np.ascontiguousarray(fa).reshape(-1, int(np.prod(spec[:-1])), spec[-1])
    fb3 = np.ascontiguousarray(fb).reshape(fa3.shape)
    dca = np.ascontiguousarray(dca, dtype=np.float64).reshape(-1)
    dcb = np.ascontiguousarray(dcb, dtype=np.float64).reshape(-1)
    out = np.empty(fa3.shape[0])
    _spectrum_sum(fa3, fb3, dca, dcb, float(eps), w, out)
    return out.reshape(lead) / int(np.prod(patch))


# --------------------------------------------------------------------------------------------
# full-image steps


def weighted_dot(roi: np.ndarray, values: np.ndarray, weight: np.ndarray, n: int) -> np.ndarray:
    """``sum(values * weight) / ||weight||_2`` per ROI (cellector's ``dot_product``), float64."""
    w = weight.astype(np.float64)
    num = np.bincount(roi, weights=values.astype(np.float64) * w, minlength=n)
    norm = np.sqrt(np.bincount(roi, weights=w * w, minlength=n))
    with np.errstate(divide="ignore", invalid="ignore"):
        return num / norm


def bandpass_gain(ny: int, nx: int, lowcut: float | None, highcut: float | None, order: float,
                  half: bool = False) -> np.ndarray:
    """Butterworth gain on the unshifted ``(2 ny + 1, 2 nx + 1)`` DFT grid, frequencies in cycles per image.

    With ``half``, only the columns of a real FFT (``nx + 1``).
    """
    fy = np.fft.fftfreq(2 * ny + 1, 1 / ny)
    fx = np.fft.fftfreq(2 * nx + 1, 1 / nx)
    if half:
        fx = fx[: nx + 1]
    freq = np.sqrt(fy[:, None] ** 2 + fx[None, :] ** 2)
    gain = np.ones_like(freq)
    if lowcut is not None:
        gain *= 1 - 1 / (1 + (freq / lowcut) ** (2 * order))
    if highcut is not None:
        gain *= 1 / (1 + (freq / highcut) ** (2 * order))
    return gain


def butterworth_bandpass(image: np.ndarray, lowcut: float | None, highcut: float | None, order: float) -> np.ndarray:
    """cellector's ``filters.butterworth_bpf`` over the last two axes (float64).

    The image is zero-padded to ``(2 ny + 1, 2 nx + 1)``, multiplied in the
    Fourier domain by the Butterworth gain and cropped back. cellector shifts
    the spectrum and the gain with ``fftshift`` and back; the shifts cancel,
    and the gain is symmetric, so a real FFT gives the same real part.
    """
    img = np.asarray(image, np.float64)
    ny, nx = img.shape[-2:]
    s = (2 * ny + 1, 2 * nx + 1)
    gain = bandpass_gain(ny, nx, lowcut, highcut, order, half=True)
    spec = scipy.fft.rfft2(img, s=s, axes=(-2, -1))
    spec *= gain
    return scipy.fft.irfft2(spec, s=s, axes=(-2, -1))[..., :ny, :nx]


def prepare_reference(
    reference: np.ndarray, width: int, fill_value: float, lowcut: float | None, highcut: float | None, order: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Padded reference, padded band-passed reference and the image for the dot product, all ``(Lz, ...)``.

    Without a band-pass the three are the same arrays (no copy).
    """
    ref = np.asarray(reference)
    pad = pad_reference(ref, width, fill_value)
    if lowcut is None and highcut is None:
        return pad, pad, ref
    filtered = butterworth_bandpass(ref, lowcut, highcut, order)
    return pad, pad_reference(filtered, width, fill_value), filtered


@njit(cache=True, nogil=True, error_model="numpy")
def _batch_pass(pad: np.ndarray, fpad: np.ndarray, filtered: bool, clean_filtered: bool, ptr: np.ndarray,
                y: np.ndarray, x: np.ndarray,
                z: np.ndarray, w: np.ndarray, centers: np.ndarray, width: int, iterations: int, fill: float,
                volumetric: bool, win: np.ndarray, single: bool, fft_m: np.ndarray, fft_r: np.ndarray,
                dc_m: np.ndarray, dc_r: np.ndarray, inout: np.ndarray, corr: np.ndarray) -> None:  # pragma: no cover
    # One pass per ROI over its patch with the semantics of the stack
    # functions (scatter_patches, gather_patches, surround, in_out_sums,
    # masked_correlation); only the (windowed, and for single precision
    # mean-free) FFT inputs are written out. The surround lies inside the
    # centre's bounding box grown by ``iterations``, so the dilation and the
    # sums run on that box, not on the whole patch.
    lz, hy, hx = pad.shape
    p = 2 * width + 1
    nz = lz if volumetric else 1
    k = nz * p * p
    m = np.empty((nz, p, p), np.float32)
    r = np.empty((nz, p, p), np.float32)
    c = np.zeros((nz, p, p), np.bool_)
    s = np.zeros((nz, p, p), np.bool_)
    d = np.empty((nz, p, p), np.int32)
    mf, rf = m.reshape(k), r.reshape(k)
    whole = fill > 0  # a positive fill value makes every filled pixel centre
    for i in range(centers.shape[0]):
        yc, xc = centers[i, 1], centers[i, 2]
        z0 = 0 if volumetric else centers[i, 0]
        mf[:] = fill
        za, ya, xa, zb, yb, xb = nz, p, p, -1, -1, -1
        for e in range(ptr[i], ptr[i + 1]):
            cy = y[e] - yc + width
            cx = x[e] - xc + width
            if cy >= 0 and cy < p and cx >= 0 and cx < p:
                cz = z[e] if volumetric else 0
                m[cz, cy, cx] = w[e]
                if w[e] > 0:
                    za, zb = min(za, cz), max(zb, cz)
                    ya, yb = min(ya, cy), max(yb, cy)
                    xa, xb = min(xa, cx), max(xb, cx)
        if whole:
            za, ya, xa, zb, yb, xb = 0, 0, 0, nz - 1, p - 1, p - 1
        inside = xc >= 0 and xc + p <= hx
        for dz in range(nz):
            for a in range(p):
                # outside the padded image: clipped into the padding (fill value)
                row = pad[z0 + dz, min(max(yc + a, 0), hy - 1)]
                if inside:
                    for b in range(p):
                        r[dz, a, b] = row[xc + b]
                else:
                    for b in range(p):
                        r[dz, a, b] = row[min(max(xc + b, 0), hx - 1)]
        # sums of the FFT inputs (windowed) and of the plain reference patch
        s1 = 0.0
        s2 = 0.0
        s3 = 0.0
        for j in range(k):
            s1 += np.float64(mf[j]) * win[j]
            s2 += np.float64(rf[j]) * win[j]
            s3 += np.float64(rf[j])
        # no NaN anywhere: the statistics need no NaN tests
        clean = fill == fill and np.isfinite(s3) and clean_filtered
        ins = 0.0
        tot = 0.0
        nm = 0
        nr = 0
        sm = 0.0
        sr = 0.0
        vm = 0.0
        vr = 0.0
        cov = 0.0
        if zb >= 0:
            # the surround's box
            za = max(za - iterations, 0) if volumetric else 0
            zb = min(zb + iterations, nz - 1) if volumetric else 0
            ya, yb = max(ya - iterations, 0), min(yb + iterations, p - 1)
            xa, xb = max(xa - iterations, 0), min(xb + iterations, p - 1)
            cb = c[za : zb + 1, ya : yb + 1, xa : xb + 1]
            sb = s[za : zb + 1, ya : yb + 1, xa : xb + 1]
            for dz in range(za, zb + 1):
                for a in range(ya, yb + 1):
                    for b in range(xa, xb + 1):
                        c[dz, a, b] = m[dz, a, b] > 0
            _dilate_patch(cb, iterations, d, sb)
            for dz in range(za, zb + 1):
                for a in range(ya, yb + 1):
                    yy = min(max(yc + a, 0), hy - 1)
                    for b in range(xa, xb + 1):
                        if s[dz, a, b]:
                            rv = np.float64(r[dz, a, b])
                            tot += rv
                            if c[dz, a, b]:
                                ins += rv
                            av = np.float64(m[dz, a, b])
                            bv = np.float64(fpad[z0 + dz, yy, min(max(xc + b, 0), hx - 1)]) if filtered else rv
                            if clean:
                                nm += 1
                                sm += av
                                sr += bv
                            else:
                                if not np.isnan(av):
                                    nm += 1
                                    sm += av
                                if not np.isnan(bv):
                                    nr += 1
                                    sr += bv
            if clean:
                nr = nm
            if nm > 0 and nr > 0 and clean:
                um = sm / nm
                ur = sr / nr
                for dz in range(za, zb + 1):
                    for a in range(ya, yb + 1):
                        yy = min(max(yc + a, 0), hy - 1)
                        for b in range(xa, xb + 1):
                            if s[dz, a, b]:
                                av = np.float64(m[dz, a, b]) - um
                                bv = (np.float64(fpad[z0 + dz, yy, min(max(xc + b, 0), hx - 1)]) if filtered
                                      else np.float64(r[dz, a, b])) - ur
                                vm += av * av
                                vr += bv * bv
                                cov += av * bv
            elif nm > 0 and nr > 0:
                um = sm / nm
                ur = sr / nr
                for dz in range(za, zb + 1):
                    for a in range(ya, yb + 1):
                        yy = min(max(yc + a, 0), hy - 1)
                        for b in range(xa, xb + 1):
                            if s[dz, a, b]:
                                av = np.float64(m[dz, a, b]) - um
                                bv = (np.float64(fpad[z0 + dz, yy, min(max(xc + b, 0), hx - 1)]) if filtered
                                      else np.float64(r[dz, a, b])) - ur
                                if not np.isnan(av):
                                    vm += av * av
                                if not np.isnan(bv):
                                    vr += bv * bv
                                if not (np.isnan(av) or np.isnan(bv)):
                                    cov += av * bv
            # leave the scratch clean for the next ROI
            for dz in range(za, zb + 1):
                for a in range(ya, yb + 1):
                    for b in range(xa, xb + 1):
                        c[dz, a, b] = False
                        s[dz, a, b] = False
        # in_vs_out from literal products (cellector's ``center * reference``):
        # a NaN or inf anywhere in the reference patch (then s3 is not
        # finite: float32 values cannot overflow a float64 sum) makes them NaN
        tot += ins
        if not np.isfinite(s3):
            inout[i] = np.nan
        else:
            inout[i] = 0.0 if tot == 0 else ins / tot
        corr[i] = np.nan if nm == 0 or nr == 0 else cov / nm / np.sqrt(vr / nr) / np.sqrt(vm / nm)
        dc_m[i] = s1
        dc_r[i] = s2
        u1 = s1 / k if single else 0.0
        u2 = s2 / k if single else 0.0
        for j in range(k):
            fft_m[i, j] = np.float64(mf[j]) * win[j] - u1
            fft_r[i, j] = np.float64(rf[j]) * win[j] - u2


def feature_batch(
    pad: np.ndarray,
    fpad: np.ndarray,
    roi: np.ndarray,
    coords: tuple[np.ndarray, ...],
    weight: np.ndarray,
    centers: np.ndarray,
    width: int,
    iterations: int,
    fill_value: float,
    eps: float,
    window: str | None,
    volumetric: bool,
    single: bool = True,
) -> np.ndarray:
    """``(n, 3)`` phase_corr, corr_coef, in_vs_out of a batch of ROIs (pixels sorted by ``roi``, 0..n-1).

    ``coords`` is ``(z, y, x)`` of every pixel, ``centers`` the integer
    ``(zc, yc, xc)`` of every ROI, ``pad``/``fpad`` the padded reference and
    band-passed reference (:func:`prepare_reference`). The same numbers as
    the stack functions composed (``tests/test_features.py`` checks it), in
    one compiled pass per ROI plus the batched FFTs.
    """
    n = len(centers)
    z, y, x = coords
    p = 2 * width + 1
    nz = pad.shape[0] if volumetric else 1
    k = nz * p * p
    ptr = np.zeros(n + 1, np.int64)
    np.cumsum(np.bincount(roi, minlength=n), out=ptr[1:])
    win = np.ascontiguousarray(np.broadcast_to(1.0 if window is None else window_2d((p, p), window), (nz, p, p)),
                               dtype=np.float64).reshape(k)
    dtype = np.float32 if single else np.float64
    fft_m = np.empty((n, k), dtype)
    fft_r = np.empty((n, k), dtype)
    dc_m = np.empty(n)
    dc_r = np.empty(n)
    inout = np.empty(n)
    corr = np.empty(n)
    out = np.empty((n, 3))
    filtered = fpad is not pad
    # a NaN anywhere in the reference spreads over the whole band-passed image
    clean_filtered = not filtered or bool(np.isfinite(fpad).all())
    _batch_pass(pad, fpad, filtered, clean_filtered, ptr, y, x, z, weight, np.ascontiguousarray(centers, np.int64), width,
                iterations, float(fill_value), bool(volumetric), win, bool(single), fft_m, fft_r, dc_m, dc_r,
                inout, corr)
    out[:, 1] = corr
    out[:, 2] = inout
    shape = (n, nz, p, p) if volumetric else (n, p, p)
    axes = tuple(range(-(3 if volumetric else 2), 0))
    out[:, 0] = _zero_shift(scipy.fft.rfftn(fft_m.reshape(shape), axes=axes),
                            scipy.fft.rfftn(fft_r.reshape(shape), axes=axes), dc_m, dc_r, eps, shape[1:])
    return out


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve from the Mann-Whitney U statistic (ties count one half).

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr.kernels.features import roc_auc
    >>> roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
    0.75
    """
    from scipy.stats import rankdata

    s = np.asarray(scores, np.float64)
    lab = np.asarray(labels, bool)
    ranks = rankdata(s)
    n1 = int(lab.sum())
    n0 = lab.size - n1
    u = ranks[lab].sum() - n1 * (n1 + 1) / 2
    return float(u / (n1 * n0))
