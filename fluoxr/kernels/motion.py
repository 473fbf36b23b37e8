"""Motion-correction kernels: whitened phase correlation, subpixel peaks, blocks, shifts.

Pure functions of in-memory arrays (no dask, no xarray), stating suite2p
1.1.0's registration (``suite2p/registration/``) function by function:

=============================  ==============================================================
fluoxr                         suite2p 1.1.0
=============================  ==============================================================
:func:`spatial_taper`          ``utils.spatial_taper`` (sigmoid border mask)
:func:`gaussian_fft`           ``utils.gaussian_fft`` (real part: a zero-phase low-pass)
:func:`reference_fft`          ``utils.ref_smooth_fft`` (conjugate, whitened, smoothed)
:func:`correlation_windows`    ``utils.convolve`` + the ``cc`` window of ``rigid.phasecorr``
:func:`kriging_matrix`         ``utils.mat_upsample`` (``kernelD``, sigL = 0.85)
:func:`peak_subpixel`          the argmax of ``rigid.phasecorr``; ``Kmat`` upsampling of ``nonrigid.phasecorr``
:func:`make_blocks`            ``nonrigid.make_blocks``
:func:`block_smoothing`        ``utils.kernelD2`` (``NRsm``)
:func:`snr`                    ``nonrigid.getSNR``
:func:`prepare`                ``register.compute_filters_and_norm`` (+ ``normalize_reference_image``)
:func:`estimate_shifts`        ``register.compute_shifts`` (rigid, then blocks of the rolled frames)
:func:`pick_initial_reference` ``register.pick_initial_reference``
:func:`compute_reference`      ``register.compute_reference`` (8 refinements)
:func:`bidiphase_estimate`     ``bidiphase.compute``
:func:`bidiphase_shift`        ``bidiphase.shift`` (returns a copy)
:func:`shift_rigid`            ``torch.roll`` of ``shift_frames``, but bilinear and subpixel
:func:`block_field`            ``nonrigid.transform_data``'s ``F.interpolate`` of block shifts
:func:`remap_bilinear`         ``F.grid_sample(mode="bilinear", padding_mode="border")``
=============================  ==============================================================

Where fluoxr departs from suite2p, on purpose:

- the Fourier transforms are real (``rfft2``/``irfft2``): a frame and the
  whitened reference spectrum are Hermitian, so the correlation is the same
  real map for half the work, and only the rows and columns of the
  ``±max_shift`` window are transformed back;
- the rigid peak is subpixel by default (``subpixel=10``): suite2p's rigid step
  takes the whole-pixel argmax and uses its Kriging upsampling for blocks
  only; ``subpixel=1`` gives suite2p's whole-pixel rigid shifts;
- block smoothing weighs blocks by their distance on the block grid
  (``block_smoothing``); suite2p's ``kernelD2`` flattens the grid in the other
  order, which is the same only for square block grids;
- shifts are applied by bilinear interpolation with the border replicated
  (:func:`shift_rigid`, :func:`remap_bilinear`), never by a circular roll.

Everything is float32, like suite2p's torch code. Every function is written
against the array module of its input where that costs nothing
(:func:`fluoxr._backend.array_module`); :func:`remap_bilinear` is a numba
loop on the CPU with :func:`remap_bilinear_xp` beside it for CuPy.

References: ``fluoxr.testing.references`` (``phase_correlation_full``,
``rigid_register``, ``bilinear_remap``), guarded by ``tests/kernels/test_motion_kernels.py``.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

import numpy as np
from numba import njit

from .._backend import array_module

__all__ = [
    "EPS",
    "LPAD",
    "MotionPrep",
    "bidiphase_estimate",
    "bidiphase_shift",
    "block_field",
    "block_smoothing",
    "compute_reference",
    "correlation_windows",
    "estimate_shifts",
    "gaussian_fft",
    "whiten_multiply",
    "kriging_matrix",
    "make_blocks",
    "max_shift_pixels",
    "peak_subpixel",
    "pick_initial_reference",
    "prepare",
    "reference_fft",
    "remap_bilinear",
    "remap_bilinear_xp",
    "shift_rigid",
    "shift_rigid_xp",
    "snr",
    "spatial_taper",
]

#: suite2p's whitening epsilon (``utils.eps``, ``1e-5`` added to the spectrum's modulus).
EPS = 1e-5
#: half-width of the neighbourhood around a peak upsampled by Kriging (suite2p's ``lpad``).
LPAD = 3


def _fft(xp: Any) -> Any:
    if xp is np:
        import scipy.fft

        return scipy.fft
    return xp.fft  # cupy-only


# --------------------------------------------------------------------------------------------
# masks and the reference spectrum


def spatial_taper(slope: float, ly: int, lx: int) -> np.ndarray:
    """A sigmoid mask, 1 inside and falling to 0 over about ``2 * slope`` pixels at the borders.

    suite2p's ``spatial_taper``: ``1 / (1 + exp((|y - centre| - ((ly - 1) / 2 - 2 slope)) / slope))``
    times the same along x.

    Examples
    --------
    >>> m = spatial_taper(3.45, 32, 32)
    >>> m.shape, round(float(m[16, 16]), 3), round(float(m[0, 16]), 3)
    ((32, 32), 0.833, 0.109)
    """
    y = np.abs(np.arange(ly) - (ly - 1) / 2.0)
    x = np.abs(np.arange(lx) - (lx - 1) / 2.0)
    my, mx = (ly - 1) / 2.0 - 2 * slope, (lx - 1) / 2.0 - 2 * slope
    mask_y = 1.0 / (1.0 + np.exp((y - my) / slope))
    mask_x = 1.0 / (1.0 + np.exp((x - mx) / slope))
    return (mask_y[:, None] * mask_x[None, :]).astype(np.float32)


def gaussian_fft(sigma: float, ly: int, lx: int) -> np.ndarray:
    """Real part of the half spectrum (``rfft2``) of a normalised Gaussian of ``sigma`` pixels.

    suite2p centres the Gaussian on the mean coordinate and takes the real
    part of its FFT, which makes a zero-phase low-pass filter (for even sizes
    the half-pixel offset becomes a cosine factor, kept here for equality).
    ``sigma == 0`` is no smoothing.

    Examples
    --------
    >>> g = gaussian_fft(1.15, 16, 16)
    >>> g.shape, round(float(g[0, 0]), 6)
    ((16, 9), 1.0)
    """
    if sigma <= 0:
        return np.ones((ly, lx // 2 + 1), np.float32)
    y = np.arange(ly, dtype=np.float64) - (ly - 1) / 2.0
    x = np.arange(lx, dtype=np.float64) - (lx - 1) / 2.0
    k = np.exp(-(y[:, None] ** 2) / (2 * sigma**2)) * np.exp(-(x[None, :] ** 2) / (2 * sigma**2))
    k /= k.sum()
    import scipy.fft

    return np.real(scipy.fft.rfft2(np.fft.ifftshift(k))).astype(np.float32)


def reference_fft(ref: Any, smooth_sigma: float) -> Any:
    """The conjugate, whitened, Gaussian-smoothed half spectrum of a reference image (complex64).

    Examples
    --------
    >>> r = reference_fft(np.random.default_rng(0).random((16, 12)), 1.15)
    >>> r.shape, r.dtype
    ((16, 7), dtype('complex64'))
    """
    xp = array_module(ref)
    f = xp.conj(_fft(xp).rfft2(xp.asarray(ref, dtype=xp.float32)))
    f /= EPS + xp.abs(f)
    f *= xp.asarray(gaussian_fft(smooth_sigma, ref.shape[-2], ref.shape[-1]))
    return f.astype(xp.complex64)


def max_shift_pixels(max_shift: float, ly: int, lx: int) -> int:
    """suite2p's rigid search half-width: ``min(round(max_shift * min(ly, lx)), min(ly, lx) // 2)``.

    ``max_shift < 1`` is a fraction of the smaller side (suite2p's ``maxregshift``); ``>= 1`` is pixels.

    Examples
    --------
    >>> max_shift_pixels(0.1, 512, 256), max_shift_pixels(7, 512, 256)
    (26, 7)
    """
    m = min(ly, lx)
    pix = max_shift * m if max_shift < 1 else max_shift
    return int(min(round(pix), m // 2))


# --------------------------------------------------------------------------------------------
# phase correlation


def correlation_windows(frames: Any, cf_ref: Any, mask_mul: Any, mask_offset: Any, half: int, *,
                        workers: int = 1) -> Any:
    """Whitened phase correlation of tapered frames with a reference, in the ``±half`` window around zero shift.

    ``frames``: ``(..., ly, lx)``; ``cf_ref``: ``(..., ly, lx // 2 + 1)`` from
    :func:`reference_fft` (broadcast against the frames, e.g. one per block);
    ``mask_mul``, ``mask_offset``: ``(..., ly, lx)``. Returns ``(..., 2 half + 1,
    2 half + 1)`` float32, index ``half`` being zero shift; entry ``[i, j]`` is the
    correlation at displacement ``(i - half, j - half)`` of the frame's content
    relative to the reference (suite2p's ``yoff``/``xoff`` sign). A window wider
    than the frame repeats it (circular correlation).

    Only the window's rows are inverse-transformed along x (``irfft`` after a
    full ``ifft`` along y), which is where the time goes after the forward FFT.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.random((32, 32)).astype(np.float32)
    >>> frame = np.roll(ref, (2, -3), axis=(0, 1))[None]
    >>> cc = correlation_windows(frame, reference_fft(ref, 0), np.ones((32, 32), np.float32),
    ...                          np.zeros((32, 32), np.float32), 5)
    >>> np.unravel_index(int(cc[0].argmax()), cc[0].shape)
    (np.int64(7), np.int64(2))
    """
    xp = array_module(frames)
    fft = _fft(xp)
    ly, lx = frames.shape[-2:]
    data = xp.asarray(frames, dtype=xp.float32) * mask_mul + mask_offset
    kw = {"workers": workers} if xp is np else {}
    f = fft.rfft2(data, **kw)
    del data
    f = whiten_multiply(f, cf_ref)
    rows = xp.asarray(np.arange(-half, half + 1) % ly)
    cols = xp.asarray(np.arange(-half, half + 1) % lx)
    g = fft.ifft(f, axis=-2, **kw)
    del f
    g = g[..., rows, :]
    cc = fft.irfft(g, n=lx, axis=-1, **kw)[..., cols]
    return cc.astype(xp.float32)


@njit(cache=True, nogil=True, fastmath=True)
def _whiten_multiply_loop(f: np.ndarray, cf: np.ndarray) -> None:
    m, k = f.shape
    eps = np.float32(EPS)
    one = np.float32(1.0)
    for i in range(m):
        for j in range(k):
            a = f[i, j].real
            b = f[i, j].imag
            c = cf[j].real
            d = cf[j].imag
            inv = one / (eps + np.sqrt(a * a + b * b))
            f[i, j] = complex((a * c - b * d) * inv, (a * d + b * c) * inv)


def whiten_multiply(f: Any, cf: Any) -> Any:
    """``f / (EPS + |f|) * cf`` (``cf`` broadcast over the leading axes of ``f``), in place when it can be.

    One pass of a numba loop over complex64 spectra on the CPU (NumPy would
    make four: modulus, sum, division, product); array operations elsewhere.

    Examples
    --------
    >>> f = np.array([[3 + 4j, 0j]], np.complex64)
    >>> whiten_multiply(f, np.array([2, 1], np.complex64)).astype(complex).round(4).tolist()
    [[(1.2+1.6j), 0j]]
    """
    xp = array_module(f)
    if xp is np and f.dtype == np.complex64 and f.flags.c_contiguous:
        cf = np.ascontiguousarray(np.broadcast_to(cf, f.shape[-cf.ndim:]), dtype=np.complex64).ravel()
        _whiten_multiply_loop(f.reshape(-1, cf.size), cf)
        return f
    f = f / (EPS + xp.abs(f))
    f *= cf
    return f


def kriging_matrix(subpixel: int, lpad: int = LPAD) -> np.ndarray:
    """suite2p's Kriging upsampling matrix: ``((2 lpad + 1)^2, nup^2)``, ``nup = 2 lpad subpixel + 1``.

    A Gaussian kernel (sigma 0.85 px) between the integer grid ``-lpad..lpad``
    and the grid of step ``1 / subpixel``; ``patch.ravel() @ K`` is the
    correlation interpolated on the fine grid (it equals the patch on the
    integer points, so ``subpixel=1`` gives the identity).

    Examples
    --------
    >>> kriging_matrix(10).shape
    (49, 3721)
    >>> bool(np.allclose(kriging_matrix(1), np.eye(49), atol=1e-5))
    True
    """
    xs = np.arange(-lpad, lpad + 1, dtype=np.float64)
    xs_up = np.arange(-lpad, lpad + 0.001, 1.0 / subpixel)

    def kernel(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        a0, a1 = np.meshgrid(a, a, indexing="ij")
        b0, b1 = np.meshgrid(b, b, indexing="ij")
        d2 = (a0.reshape(-1, 1) - b0.reshape(1, -1)) ** 2 + (a1.reshape(-1, 1) - b1.reshape(1, -1)) ** 2
        return np.exp(-d2 / (2 * 0.85**2))

    return np.linalg.solve(kernel(xs, xs), kernel(xs, xs_up)).astype(np.float32)


def peak_subpixel(cc: Any, lcorr: int, kmat: Any, subpixel: int, lpad: int = LPAD) -> tuple[Any, Any, Any]:
    """The peak of correlation windows padded by ``lpad``: ``(dy, dx, value)``, each ``cc.shape[:-2]``.

    ``cc`` is ``(..., 2 (lcorr + lpad) + 1, same)``; the whole-pixel peak is
    searched in the central ``±lcorr``, then the ``(2 lpad + 1)^2`` patch around
    it is upsampled by ``kmat`` (:func:`kriging_matrix`) and its maximum taken
    (suite2p's ``nonrigid.phasecorr``). With ``subpixel == 1`` the result is the
    whole-pixel argmax and its value (suite2p's ``rigid.phasecorr``).

    Examples
    --------
    >>> cc = np.zeros((1, 17, 17), np.float32); cc[0, 9, 6] = 1
    >>> dy, dx, c = peak_subpixel(cc, 5, kriging_matrix(1), 1)
    >>> float(dy[0]), float(dx[0]), float(c[0])
    (1.0, -2.0, 1.0)
    """
    xp = array_module(cc)
    lead = cc.shape[:-2]
    w = 2 * lcorr + 1
    flat = cc.reshape(-1, cc.shape[-2], cc.shape[-1])
    central = flat[:, lpad:lpad + w, lpad:lpad + w].reshape(flat.shape[0], -1)
    imax = xp.argmax(central, axis=1)
    ym, xm = imax // w, imax % w
    if subpixel == 1:
        value = central[xp.arange(flat.shape[0]), imax]
        dy = (ym - lcorr).astype(xp.float32)
        dx = (xm - lcorr).astype(xp.float32)
        return dy.reshape(lead), dx.reshape(lead), value.reshape(lead)
    k = 2 * lpad + 1
    off = xp.arange(k)
    # patch rows ym .. ym + 2 lpad of the padded window: the peak in its middle
    patch = flat[xp.arange(flat.shape[0])[:, None, None], (ym[:, None] + off)[:, :, None],
                 (xm[:, None] + off)[:, None, :]]
    up = patch.reshape(flat.shape[0], -1) @ kmat
    nup = 2 * lpad * subpixel + 1
    iup = xp.argmax(up, axis=1)
    value = up[xp.arange(flat.shape[0]), iup]
    mid = nup // 2
    dy = ((iup // nup) - mid) / subpixel + ym - lcorr
    dx = ((iup % nup) - mid) / subpixel + xm - lcorr
    return (dy.astype(xp.float32).reshape(lead), dx.astype(xp.float32).reshape(lead),
            value.astype(xp.float32).reshape(lead))


# --------------------------------------------------------------------------------------------
# blocks


class Blocks(NamedTuple):
    """Overlapping registration blocks: starts along y and x, block size, centres, the smoothing matrix."""

    ystart: np.ndarray
    xstart: np.ndarray
    size: tuple[int, int]
    centre_y: np.ndarray  # (ny,) block centres, pixels
    centre_x: np.ndarray  # (nx,)
    smoothing: np.ndarray  # (nb, nb), rows sum to 1


def make_blocks(ly: int, lx: int, block_size: tuple[int, int]) -> Blocks:
    """suite2p's overlapping blocks: ``ceil(1.5 L / size)`` blocks along a side, starts evenly spread.

    A block larger than the frame is the whole side (one block). Blocks are
    ordered row-major: block ``iy * nx + ix``.

    Examples
    --------
    >>> b = make_blocks(512, 512, (128, 128))
    >>> b.ystart.tolist(), b.size, b.centre_y.tolist()[:2]
    ([0, 76, 153, 230, 307, 384], (128, 128), [64.0, 140.0])
    """
    def one(L: int, size: int) -> tuple[int, int]:
        return (L, 1) if size >= L else (size, int(math.ceil(1.5 * L / size)))

    by, ny = one(ly, int(block_size[0]))
    bx, nx = one(lx, int(block_size[1]))
    ystart = np.linspace(0, ly - by, ny).astype(int)
    xstart = np.linspace(0, lx - bx, nx).astype(int)
    # suite2p's transform_data puts each block's shift at int(mean(start, end))
    centre_y = np.floor(ystart + by / 2.0)
    centre_x = np.floor(xstart + bx / 2.0)
    return Blocks(ystart, xstart, (by, bx), centre_y, centre_x, block_smoothing(ny, nx))


def block_smoothing(ny: int, nx: int) -> np.ndarray:
    """Row-normalised ``exp(-d^2)`` between blocks, ``d`` their distance in block-grid steps (suite2p's ``NRsm``).

    Examples
    --------
    >>> s = block_smoothing(2, 3)
    >>> s.shape, bool(np.allclose(s.sum(axis=1), 1))
    ((6, 6), True)
    """
    iy, ix = np.meshgrid(np.arange(ny), np.arange(nx), indexing="ij")
    iy, ix = iy.ravel().astype(np.float64), ix.ravel().astype(np.float64)
    r = np.exp(-((iy[:, None] - iy[None, :]) ** 2 + (ix[:, None] - ix[None, :]) ** 2))
    return (r / r.sum(axis=1, keepdims=True)).astype(np.float32)


def _split_blocks(frames: Any, blocks: Blocks) -> Any:
    """``(n, ly, lx)`` to ``(n, nb, by, bx)``, row-major block order."""
    xp = array_module(frames)
    by, bx = blocks.size
    return xp.stack([frames[..., y0:y0 + by, x0:x0 + bx] for y0 in blocks.ystart for x0 in blocks.xstart],
                    axis=-3)


def snr(cc: Any, lcorr: int, lpad: int = LPAD) -> Any:
    """suite2p's ``getSNR``: the peak of the central ``±lcorr`` over the maximum once ``±lpad`` around it is zeroed.

    ``cc``: ``(m, 2 (lcorr + lpad) + 1, same)``; returns ``(m,)``. (suite2p
    zeroes ``2 lpad`` rows and columns starting ``lpad`` before the peak; kept.)

    Examples
    --------
    >>> cc = np.full((1, 11, 11), 0.1, np.float32); cc[0, 5, 5] = 1.0
    >>> snr(cc, 2, 3).round(3).tolist()
    [10.0]
    """
    xp = array_module(cc)
    w = 2 * lcorr + 1
    m = cc.shape[0]
    central = cc[:, lpad:lpad + w, lpad:lpad + w].reshape(m, -1)
    imax = xp.argmax(central, axis=1)
    ym, xm = imax // w, imax % w
    rows = xp.arange(cc.shape[1])[None, :]
    cols = xp.arange(cc.shape[2])[None, :]
    in_y = (rows >= ym[:, None]) & (rows < ym[:, None] + 2 * lpad)
    in_x = (cols >= xm[:, None]) & (cols < xm[:, None] + 2 * lpad)
    rest = xp.where(in_y[:, :, None] & in_x[:, None, :], 0, cc)
    return central.max(axis=1) / xp.maximum(1e-10, rest.reshape(m, -1).max(axis=1))


# --------------------------------------------------------------------------------------------
# the prepared reference: everything every chunk needs, computed once


class MotionPrep(NamedTuple):
    """The reference and every constant derived from it, passed to each chunk as one small object."""

    reference: np.ndarray  # (ly, lx) float32, as given or computed (before clipping)
    rmin: float  # the reference's 1st and 99th percentiles: frames are clipped to them (suite2p's norm_frames)
    rmax: float
    mask_mul: np.ndarray  # (ly, lx) taper
    mask_offset: np.ndarray  # (ly, lx) mean(reference) * (1 - taper)
    cf_ref: np.ndarray  # (ly, lx // 2 + 1) complex64
    lcorr: int  # rigid search half-width, pixels
    subpixel: int
    kmat: np.ndarray  # Kriging matrix for subpixel
    smooth_sigma_time: float
    bidiphase: int
    # nonrigid (None when rigid only)
    blocks: Blocks | None
    block_mask_mul: np.ndarray | None  # (nb, by, bx)
    block_mask_offset: np.ndarray | None
    block_cf_ref: np.ndarray | None  # (nb, by, bx // 2 + 1)
    lcorr_block: int
    snr_thresh: float
    kmat_block: np.ndarray | None  # suite2p's block Kmat always upsamples by subpixel (>= 1)


def prepare(reference: np.ndarray, *, max_shift: float, smooth_sigma: float, spatial_taper_slope: float,
            subpixel: int, smooth_sigma_time: float, bidiphase: int, nonrigid: bool,
            block_size: tuple[int, int], max_shift_nonrigid: float, snr_thresh: float) -> MotionPrep:
    """Masks, spectra and matrices of a reference image, once (suite2p's ``compute_filters_and_norm``).

    The reference is clipped to its 1st and 99th percentiles before its
    spectrum is taken, and frames are clipped to the same range before they
    are correlated (suite2p's ``norm_frames=True``).

    Examples
    --------
    >>> p = prepare(np.random.default_rng(0).random((64, 64)), max_shift=0.1, smooth_sigma=1.15,
    ...             spatial_taper_slope=3.45, subpixel=10, smooth_sigma_time=0, bidiphase=0, nonrigid=True,
    ...             block_size=(32, 32), max_shift_nonrigid=5, snr_thresh=1.2)
    >>> p.lcorr, p.cf_ref.shape, p.block_cf_ref.shape
    (6, (64, 33), (9, 32, 17))
    """
    ref = np.asarray(reference, dtype=np.float32)
    ly, lx = ref.shape
    rmin, rmax = (float(v) for v in np.percentile(ref, [1, 99]))
    clipped = np.clip(ref, rmin, rmax)
    mask_mul = spatial_taper(spatial_taper_slope, ly, lx)
    mask_offset = (clipped.mean() * (1.0 - mask_mul)).astype(np.float32)
    lcorr = max_shift_pixels(max_shift, ly, lx)
    nr: dict[str, Any] = dict(blocks=None, block_mask_mul=None, block_mask_offset=None, block_cf_ref=None,
                              lcorr_block=0, snr_thresh=float(snr_thresh), kmat_block=None)
    if nonrigid:
        blocks = make_blocks(ly, lx, block_size)
        by, bx = blocks.size
        ref_blocks = _split_blocks(clipped[None], blocks)[0]  # (nb, by, bx)
        taper_blocks = _split_blocks(mask_mul[None], blocks)[0]
        bmul = (spatial_taper(2 * smooth_sigma, by, bx)[None] * taper_blocks).astype(np.float32)
        boff = (ref_blocks.mean(axis=(1, 2))[:, None, None] * (1.0 - bmul)).astype(np.float32)
        nr.update(blocks=blocks, block_mask_mul=bmul, block_mask_offset=boff,
                  block_cf_ref=reference_fft(ref_blocks, smooth_sigma),
                  lcorr_block=int(min(round(max_shift_nonrigid), math.floor(min(by, bx) / 2.0) - LPAD)),
                  kmat_block=kriging_matrix(max(1, subpixel)))
    return MotionPrep(ref, rmin, rmax, mask_mul, mask_offset, reference_fft(clipped, smooth_sigma), lcorr,
                      int(subpixel), kriging_matrix(subpixel), float(smooth_sigma_time), int(bidiphase), **nr)


def _smooth_time(cc: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter1d

    return gaussian_filter1d(cc, sigma, axis=0, mode="reflect")


def time_halo(smooth_sigma_time: float) -> int:
    """Frames of context the temporal smoothing of correlation maps needs (scipy's radius, truncate 4)."""
    return int(4.0 * smooth_sigma_time + 0.5) if smooth_sigma_time > 0 else 0


#: frames correlated at once inside a chunk (suite2p's ``batch_size`` plays the same part)
BATCH = 32


def _clipped(frames: Any, prep: MotionPrep) -> Any:
    """Frames as float32, bidirectional phase corrected, clipped to the reference's 1st-99th percentiles."""
    xp = array_module(frames)
    data = xp.array(frames, dtype=xp.float32)  # a copy: clipped in place below
    if prep.bidiphase:
        data = bidiphase_shift(data, prep.bidiphase)
    return xp.clip(data, prep.rmin, prep.rmax, out=data)


def estimate_shifts(frames: Any, prep: MotionPrep, *, before: int = 0, after: int = 0,
                    workers: int = 1) -> Any:
    """Shifts of a batch of frames against a prepared reference: one row per frame.

    ``frames``: ``(before + n + after, ly, lx)``, the ``before``/``after`` frames
    being context for the temporal smoothing of correlation maps only.
    Returns ``(n, 3 + 2 nb)`` float32: ``dy, dx, corr``, then with blocks the
    ``nb`` block displacements along y, then along x. Block displacements are
    totals, suite2p's ``yoff + yoff1``: the rigid whole-pixel shift (the
    frames are rolled by it first, as suite2p does) plus the block's own.

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> ref = rng.random((64, 64)).astype(np.float32)
    >>> p = prepare(ref, max_shift=0.1, smooth_sigma=1.15, spatial_taper_slope=3.45, subpixel=10,
    ...             smooth_sigma_time=0, bidiphase=0, nonrigid=False, block_size=(32, 32),
    ...             max_shift_nonrigid=5, snr_thresh=1.2)
    >>> estimate_shifts(np.roll(ref, (2, -1), axis=(0, 1))[None], p)[0, :2].round(1).tolist()
    [2.0, -1.0]
    """
    xp = array_module(frames)
    n_all = frames.shape[0]
    n = n_all - before - after
    mm, mo, cf = (xp.asarray(a) for a in (prep.mask_mul, prep.mask_offset, prep.cf_ref))
    pad = LPAD if prep.subpixel > 1 else 0
    # batches of BATCH frames: the spectra (8 bytes a pixel) of a whole chunk are never held at once
    cc = xp.concatenate([correlation_windows(_clipped(frames[k:k + BATCH], prep), cf, mm, mo, prep.lcorr + pad,
                                             workers=workers) for k in range(0, n_all, BATCH)])
    if prep.smooth_sigma_time > 0:
        if xp is not np:
            cc = xp.asarray(_smooth_time(cc.get(), prep.smooth_sigma_time))  # cupy-only
        else:
            cc = _smooth_time(cc, prep.smooth_sigma_time)
    cc = cc[before:before + n]
    dy, dx, cmax = peak_subpixel(cc, prep.lcorr, xp.asarray(prep.kmat), prep.subpixel, lpad=pad)
    cols = [dy, dx, cmax]
    if prep.blocks is not None:
        # blocks are measured on frames rolled by the whole-pixel peak (suite2p's rigid step), not by the
        # rounded subpixel one, so that block displacements equal suite2p's whatever ``subpixel`` is
        iy, ix, _ = peak_subpixel(cc, prep.lcorr, None, 1, lpad=pad)
        iy, ix = iy.astype(xp.int64), ix.astype(xp.int64)
        parts = [_block_shifts(_clipped(frames[before + k:before + min(n, k + BATCH)], prep), iy[k:k + BATCH],
                               ix[k:k + BATCH], prep, workers=workers) for k in range(0, n, BATCH)]
        nb = len(prep.blocks.ystart) * len(prep.blocks.xstart)
        dyb = xp.concatenate([p[0] for p in parts]) if parts else xp.zeros((0, nb), xp.float32)
        dxb = xp.concatenate([p[1] for p in parts]) if parts else xp.zeros((0, nb), xp.float32)
        cols = cols + [dyb[:, j] for j in range(dyb.shape[1])] + [dxb[:, j] for j in range(dxb.shape[1])]
    del cc
    return xp.stack(cols, axis=1).astype(xp.float32)


def _block_shifts(data: Any, iy: Any, ix: Any, prep: MotionPrep, *, workers: int) -> tuple[Any, Any]:
    """Total block displacements ``(n, nb)`` of frames rolled by their whole-pixel rigid shifts."""
    xp = array_module(data)
    blocks = prep.blocks
    assert blocks is not None
    n = data.shape[0]
    rolled = xp.empty_like(data)
    for t in range(n):  # suite2p rolls (circularly) before the block step; the roll is estimation only
        rolled[t] = xp.roll(data[t], (-int(iy[t]), -int(ix[t])), axis=(0, 1))
    yb = _split_blocks(rolled, blocks)  # (n, nb, by, bx)
    del rolled
    lcorr, lpad = prep.lcorr_block, LPAD
    cc = correlation_windows(yb, xp.asarray(prep.block_cf_ref), xp.asarray(prep.block_mask_mul),
                             xp.asarray(prep.block_mask_offset), lcorr + lpad, workers=workers)
    del yb
    nb = cc.shape[1]
    w = cc.shape[-1]
    # SNR: a block whose peak is weak takes its neighbours' maps, smoothed once, then twice (suite2p)
    sm = xp.asarray(blocks.smoothing)
    flat = cc.reshape(n, nb, w * w)
    once = xp.einsum("ab,nbk->nak", sm, flat)
    twice = xp.einsum("ab,nbk->nak", sm, once)
    chosen = flat.copy()
    level = xp.ones((n, nb), dtype=xp.float32)
    for j, c in enumerate((flat, once, twice)):
        weak = level < prep.snr_thresh
        if not bool(weak.any()):
            break
        if j > 0:
            chosen = xp.where(weak[..., None], c, chosen)
        s = snr(c.reshape(n * nb, w, w), lcorr, lpad).reshape(n, nb)
        level = xp.where(weak, s, level)
    dyb, dxb, _ = peak_subpixel(chosen.reshape(n, nb, w, w), lcorr, xp.asarray(prep.kmat_block),
                                max(1, prep.subpixel), lpad=lpad)
    return dyb + iy[:, None].astype(xp.float32), dxb + ix[:, None].astype(xp.float32)


# --------------------------------------------------------------------------------------------
# the reference image


def _bin(frames: np.ndarray, factor: int) -> np.ndarray:
    if factor == 1:
        return frames
    n, ly, lx = frames.shape
    ly2, lx2 = ly // factor, lx // factor
    return frames[:, :ly2 * factor, :lx2 * factor].reshape(n, ly2, factor, lx2, factor).mean(axis=(2, 4))


def pick_initial_reference(frames: np.ndarray, *, n_best: int = 20) -> np.ndarray:
    """The mean of the ``n_best`` frames most correlated with the frame most correlated with its ``n_best``.

    suite2p's ``pick_initial_reference``. The correlation matrix is taken on
    frames binned to at most about 128 pixels a side, in float32 (suite2p
    uses full frames in float64): the matrix costs ``n^2 ly lx`` and only
    its ranking is used.

    Examples
    --------
    >>> f = np.random.default_rng(0).random((30, 16, 16)).astype(np.float32)
    >>> pick_initial_reference(f).shape
    (16, 16)
    """
    n = frames.shape[0]
    factor = max(1, min(frames.shape[1], frames.shape[2]) // 128)
    z = _bin(frames, factor).reshape(n, -1).astype(np.float32)
    z = z - z.mean(axis=1, keepdims=True)
    cc = z @ z.T
    norm = np.sqrt(np.maximum(np.diag(cc), 1e-20))
    cc = cc / np.outer(norm, norm)
    best = -np.sort(-cc, axis=1)[:, 1:n_best].mean(axis=1) if n > 1 else np.zeros(1)
    imax = int(np.argmax(best))
    top = np.argsort(-cc[imax], kind="stable")[:n_best]
    return frames[top].mean(axis=0, dtype=np.float64).astype(np.float32)


def compute_reference(frames: np.ndarray, *, max_shift: float, smooth_sigma: float, spatial_taper_slope: float,
                      bidiphase: int = 0, n_iter: int = 8, batch: int = 50, workers: int = -1) -> np.ndarray:
    """A reference image from a sample of frames, refined ``n_iter`` times (suite2p's ``compute_reference``).

    Start from :func:`pick_initial_reference`; then, each round, register the
    frames (whole-pixel rigid, cumulatively), average the best-correlated
    ``max(2, n (1 + i) / (2 n_iter))`` of them and re-centre the average by
    their mean shift. Float32 throughout. ``workers``: threads of the FFTs
    (default every core: every chunk's task waits for the reference, so
    nothing else runs meanwhile).

    Examples
    --------
    >>> rng = np.random.default_rng(0)
    >>> base = rng.random((40, 40)).astype(np.float32)
    >>> f = np.stack([np.roll(base, (k % 3, -(k % 2)), axis=(0, 1)) for k in range(12)])
    >>> compute_reference(f, max_shift=0.2, smooth_sigma=1.15, spatial_taper_slope=3.45).shape
    (40, 40)
    """
    # the frames stay in their own dtype (uint16: half of float32) and are rolled in place; each batch is
    # made float32 only while it is correlated
    fr = np.array(frames, dtype=frames.dtype if frames.dtype.kind in "iuf" else np.float32)
    if bidiphase:
        fr = bidiphase_shift(fr, bidiphase)
    n, ly, lx = fr.shape
    ref = pick_initial_reference(fr)
    lcorr = max_shift_pixels(max_shift, ly, lx)
    mask_mul = spatial_taper(spatial_taper_slope, ly, lx)
    kmat = kriging_matrix(1)
    for it in range(n_iter):
        mask_offset = (ref.mean() * (1.0 - mask_mul)).astype(np.float32)
        cf = reference_fft(ref, smooth_sigma)
        ymax = np.empty(n, np.int64)
        xmax = np.empty(n, np.int64)
        cmax = np.empty(n, np.float32)
        for k in range(0, n, batch):
            cc = correlation_windows(fr[k:k + batch], cf, mask_mul, mask_offset, lcorr, workers=workers)
            dy, dx, c = peak_subpixel(cc, lcorr, kmat, 1, lpad=0)
            ymax[k:k + batch], xmax[k:k + batch], cmax[k:k + batch] = dy, dx, c
        for t in range(n):
            if ymax[t] or xmax[t]:
                fr[t] = np.roll(fr[t], (-int(ymax[t]), -int(xmax[t])), axis=(0, 1))
        nmax = max(2, int(n * (1.0 + it) / (2 * n_iter)))
        best = np.argsort(-cmax, kind="stable")[:nmax]
        ref = fr[best].mean(axis=0, dtype=np.float64).astype(np.float32)
        ref = np.roll(ref, (int(np.round(ymax[best].mean())), int(np.round(xmax[best].mean()))), axis=(0, 1))
    return ref


# --------------------------------------------------------------------------------------------
# bidirectional scanning


def bidiphase_estimate(frames: np.ndarray) -> int:
    """The x offset of odd lines against even lines of bidirectionally scanned frames (suite2p's ``compute``).

    Phase correlation along x of odd and even lines, averaged over lines and
    frames, peak within ±10 pixels.

    Examples
    --------
    >>> f = np.random.default_rng(0).random((4, 32, 64)).astype(np.float32)
    >>> f[:, 1::2] = np.roll(f[:, ::2], 3, axis=2)  # odd lines: the even ones, 3 px to the right
    >>> bidiphase_estimate(f)  # the shift of odd lines that puts them back (bidiphase_shift's sign)
    -3
    """
    import scipy.fft

    _, ly, lx = frames.shape
    # real transforms in float32: the correlation of two real signals is real, so the half spectra suffice
    total = np.zeros(lx, np.float64)
    for k in range(0, frames.shape[0], BATCH):  # batches: the spectra of every sampled frame are not held
        d1 = scipy.fft.rfft(np.asarray(frames[k:k + BATCH, 1::2, :], np.float32), axis=2)
        d1 /= np.abs(d1) + EPS
        d2 = np.conj(scipy.fft.rfft(np.asarray(frames[k:k + BATCH, ::2, :], np.float32), axis=2))
        d2 /= np.abs(d2) + EPS
        d2 = d2[:, :d1.shape[1], :]
        total += scipy.fft.irfft(d1 * d2, n=lx, axis=2).sum(axis=(0, 1), dtype=np.float64)
    cc = np.fft.fftshift(total / (frames.shape[0] * (ly // 2)))
    lo = max(0, lx // 2 - 10)
    window = cc[lo:lx // 2 + 11]
    return -int(np.argmax(window) - (lx // 2 - lo))


def bidiphase_shift(frames: Any, bidiphase: int) -> Any:
    """Odd lines shifted along x by ``bidiphase`` pixels (a copy; suite2p's ``shift`` works in place).

    Examples
    --------
    >>> f = np.arange(12.0).reshape(1, 2, 6)
    >>> bidiphase_shift(f, 2)[0, 1].tolist()
    [6.0, 7.0, 6.0, 7.0, 8.0, 9.0]
    """
    out = frames.copy()
    if bidiphase > 0:
        out[..., 1::2, bidiphase:] = frames[..., 1::2, :-bidiphase]
    elif bidiphase < 0:
        out[..., 1::2, :bidiphase] = frames[..., 1::2, -bidiphase:]
    return out


# --------------------------------------------------------------------------------------------
# applying shifts


def _axis_weights(xp: Any, length: int, shift: Any) -> tuple[Any, Any, Any]:
    """For sampling ``i + shift`` (clamped to the frame), per frame: lower index, upper index, upper weight."""
    pos = xp.clip(xp.arange(length, dtype=xp.float32)[None, :] + shift[:, None].astype(xp.float32), 0, length - 1)
    lo = xp.floor(pos)
    w = (pos - lo).astype(xp.float32)
    lo = lo.astype(xp.int64)
    hi = xp.minimum(lo + 1, length - 1)
    return lo, hi, w


def shift_rigid(frames: Any, dy: Any, dx: Any) -> Any:
    """Frames moved by ``(-dy, -dx)``: ``out[t, y, x] = frame_t(y + dy_t, x + dx_t)``, bilinear, float32.

    Bilinear because a uniform shift makes it two separable passes of two
    row (column) reads each, far cheaper than a Fourier shift (two FFTs per
    frame), and it neither wraps content around nor rings at the borders;
    whole-pixel shifts copy pixels exactly. Samples outside the frame take
    the nearest border pixel (suite2p's ``padding_mode="border"``). Axes
    between time and y (channels) share their frame's shift. A numba loop on
    the CPU (:func:`shift_rigid_xp`, array operations, elsewhere).

    Examples
    --------
    >>> f = np.arange(16.0).reshape(1, 4, 4)
    >>> shift_rigid(f, np.array([1.0]), np.array([0.5]))[0, 0].tolist()
    [4.5, 5.5, 6.5, 7.0]
    """
    xp = array_module(frames)
    if xp is not np:
        return shift_rigid_xp(frames, dy, dx)
    data = np.ascontiguousarray(frames, dtype=np.float32)
    n, ly, lx = data.shape[0], data.shape[-2], data.shape[-1]
    flat = data.reshape(n, -1, ly, lx)
    out = np.empty(flat.shape, np.float32)
    ylo, yhi, yw = (np.ascontiguousarray(a) for a in _axis_weights(np, ly, np.asarray(dy, np.float32).reshape(n)))
    xlo, xhi, xw = (np.ascontiguousarray(a) for a in _axis_weights(np, lx, np.asarray(dx, np.float32).reshape(n)))
    _shift_rigid_loop(flat, ylo, yhi, yw, xlo, xhi, xw, out)
    return out.reshape(data.shape)


@njit(cache=True, nogil=True)
def _shift_rigid_loop(frames: np.ndarray, ylo: np.ndarray, yhi: np.ndarray, yw: np.ndarray, xlo: np.ndarray,
                      xhi: np.ndarray, xw: np.ndarray, out: np.ndarray) -> None:
    n, nc, ly, lx = frames.shape
    row = np.empty(lx, np.float32)
    for t in range(n):
        for c in range(nc):
            f = frames[t, c]
            for y in range(ly):
                r0 = f[ylo[t, y]]
                r1 = f[yhi[t, y]]
                w = yw[t, y]
                for x in range(lx):
                    row[x] = r0[x] + w * (r1[x] - r0[x])
                for x in range(lx):
                    a = row[xlo[t, x]]
                    out[t, c, y, x] = a + xw[t, x] * (row[xhi[t, x]] - a)


def shift_rigid_xp(frames: Any, dy: Any, dx: Any) -> Any:
    """:func:`shift_rigid` with array operations (row and column gathers), for any array module.

    Examples
    --------
    >>> f = np.arange(16.0).reshape(1, 4, 4)
    >>> shift_rigid_xp(f, np.array([1.0]), np.array([0.5]))[0, 0].tolist()
    [4.5, 5.5, 6.5, 7.0]
    """
    xp = array_module(frames)
    data = xp.asarray(frames, dtype=xp.float32)
    n, ly, lx = data.shape[0], data.shape[-2], data.shape[-1]
    dy = xp.asarray(dy, dtype=xp.float32).reshape(n)
    dx = xp.asarray(dx, dtype=xp.float32).reshape(n)
    extra = data.ndim - 3  # axes between time and y (channels) share the frame's shift
    lo, hi, w = _axis_weights(xp, ly, dy)
    shape_y = (n,) + (1,) * extra + (ly, 1)
    lo, hi, w = lo.reshape(shape_y), hi.reshape(shape_y), w.reshape(shape_y)
    a = xp.take_along_axis(data, xp.broadcast_to(lo, data.shape), -2)
    b = xp.take_along_axis(data, xp.broadcast_to(hi, data.shape), -2)
    data = a + w * (b - a)
    del a, b
    lo, hi, w = _axis_weights(xp, lx, dx)
    shape_x = (n,) + (1,) * extra + (1, lx)
    lo, hi, w = lo.reshape(shape_x), hi.reshape(shape_x), w.reshape(shape_x)
    a = xp.take_along_axis(data, xp.broadcast_to(lo, data.shape), -1)
    b = xp.take_along_axis(data, xp.broadcast_to(hi, data.shape), -1)
    return (a + w * (b - a)).astype(xp.float32)


def _interp_matrix(centres: np.ndarray, length: int) -> np.ndarray:
    """``(length, len(centres))`` linear interpolation weights; constant beyond the first and last centre."""
    m = np.zeros((length, len(centres)), np.float32)
    if len(centres) == 1:
        m[:, 0] = 1
        return m
    pos = np.clip(np.arange(length, dtype=np.float64), centres[0], centres[-1])
    j = np.clip(np.searchsorted(centres, pos, side="right") - 1, 0, len(centres) - 2)
    w = (pos - centres[j]) / (centres[j + 1] - centres[j])
    m[np.arange(length), j] = 1 - w
    m[np.arange(length), j + 1] = w
    return m


def block_field(shifts: Any, centre_y: np.ndarray, centre_x: np.ndarray, ly: int, lx: int) -> Any:
    """Block shifts ``(n, ny, nx)`` interpolated bilinearly to every pixel ``(n, ly, lx)``.

    Linear between block centres, constant beyond the outer centres (suite2p's
    ``F.interpolate(align_corners=True)`` then replicate padding).

    Examples
    --------
    >>> s = np.array([[[0.0, 2.0]]])
    >>> block_field(s, np.array([4.0]), np.array([1.0, 3.0]), 2, 5)[0, 0].tolist()
    [0.0, 0.0, 1.0, 2.0, 2.0]
    """
    xp = array_module(shifts)
    wy = xp.asarray(_interp_matrix(np.asarray(centre_y, np.float64), ly))
    wx = xp.asarray(_interp_matrix(np.asarray(centre_x, np.float64), lx))
    return (wy @ xp.asarray(shifts, dtype=xp.float32) @ wx.T).astype(xp.float32)


@njit(cache=True, nogil=True)
def _remap_frame(frame: np.ndarray, fy: np.ndarray, fx: np.ndarray, out: np.ndarray) -> None:
    ly, lx = frame.shape
    for y in range(ly):
        for x in range(lx):
            py = min(max(y + fy[y, x], 0.0), ly - 1.0)
            px = min(max(x + fx[y, x], 0.0), lx - 1.0)
            y0 = int(py)
            x0 = int(px)
            y1 = min(y0 + 1, ly - 1)
            x1 = min(x0 + 1, lx - 1)
            wy = py - y0
            wx = px - x0
            top = frame[y0, x0] + wx * (frame[y0, x1] - frame[y0, x0])
            bottom = frame[y1, x0] + wx * (frame[y1, x1] - frame[y1, x0])
            out[y, x] = top + wy * (bottom - top)


def remap_bilinear(frames: np.ndarray, fy: np.ndarray, fx: np.ndarray) -> np.ndarray:
    """``out[t, ..., y, x] = frame(y + fy[t, y, x], x + fx[t, y, x])``, bilinear, border replicated, float32.

    ``frames``: ``(n, [c,] ly, lx)``; the fields ``(n, ly, lx)`` are shared by
    the axes between time and y (channels). A numba loop (no temporaries the
    size of a frame per neighbour); :func:`remap_bilinear_xp` is its
    array-module twin for CuPy.

    Examples
    --------
    >>> f = np.arange(16.0).reshape(1, 4, 4)
    >>> remap_bilinear(f, np.full((1, 4, 4), 1.0), np.zeros((1, 4, 4)))[0, 0].tolist()
    [4.0, 5.0, 6.0, 7.0]
    """
    data = np.ascontiguousarray(frames, dtype=np.float32)
    fy = np.ascontiguousarray(fy, dtype=np.float32)
    fx = np.ascontiguousarray(fx, dtype=np.float32)
    out = np.empty(data.shape, np.float32)
    ly, lx = data.shape[-2:]
    flat = data.reshape(data.shape[0], -1, ly, lx)
    flat_out = out.reshape(flat.shape)
    for t in range(flat.shape[0]):
        for c in range(flat.shape[1]):
            _remap_frame(flat[t, c], fy[t], fx[t], flat_out[t, c])
    return out


def remap_bilinear_xp(frames: Any, fy: Any, fx: Any) -> Any:
    """:func:`remap_bilinear` with array operations (gathers), for any array module (CuPy on the GPU).

    Examples
    --------
    >>> f = np.arange(16.0).reshape(1, 4, 4)
    >>> remap_bilinear_xp(f, np.full((1, 4, 4), 1.0), np.zeros((1, 4, 4)))[0, 0].tolist()
    [4.0, 5.0, 6.0, 7.0]
    """
    xp = array_module(frames)
    data = xp.asarray(frames, dtype=xp.float32)
    n, ly, lx = data.shape[0], data.shape[-2], data.shape[-1]
    flat = data.reshape(n, -1, ly * lx)
    py = xp.clip(xp.arange(ly, dtype=xp.float32)[None, :, None] + fy, 0, ly - 1)
    px = xp.clip(xp.arange(lx, dtype=xp.float32)[None, None, :] + fx, 0, lx - 1)
    y0 = xp.floor(py).astype(xp.int64)
    x0 = xp.floor(px).astype(xp.int64)
    wy = (py - y0).reshape(n, 1, -1)
    wx = (px - x0).reshape(n, 1, -1)
    y1 = xp.minimum(y0 + 1, ly - 1)
    x1 = xp.minimum(x0 + 1, lx - 1)

    def at(yy: Any, xx: Any) -> Any:
        idx = (yy * lx + xx).reshape(n, 1, -1)
        return xp.take_along_axis(flat, xp.broadcast_to(idx, flat.shape), axis=-1)

    top = at(y0, x0) + wx * (at(y0, x1) - at(y0, x0))
    bottom = at(y1, x0) + wx * (at(y1, x1) - at(y1, x0))
    return (top + wy * (bottom - top)).reshape(data.shape).astype(xp.float32)
