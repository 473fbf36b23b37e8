"""SOFI steps that work frame by frame or image by image, lazily.

Fourier interpolation of videos or images (pysofi ``finterp``), the temporal
noise filter of a series of images (pysofi ``noise_filter1d``, with its halo
declared by :func:`fluoxr.kernels.sofi.filter_halo`), shrinking-kernel
deconvolution (``deconvsk``) and local dynamic range compression (``ldrc``)
of SOFI images, the Gaussian masks, and the width of spots (:func:`psf_width`).
Everything is re-exported by :mod:`fluoxr.sofi` (and :mod:`fluoxr.sofi_image`);
the kernels are in :mod:`fluoxr.kernels.sofi`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

import dask
import dask.array as da
import numpy as np
import xarray as xr

from .. import _backend
from .._options import get_options
from .._validate import check_int, check_number
from .._video import check_whole_frames, frames_per_chunk
from ..device import host
from ..drivers import TemporalFilter, apply_temporal
from ..kernels import sofi as ks

__all__ = ["fourier_interpolate", "noise_filter", "deconvsk", "ldrc", "gauss1d_mask", "gauss2d_mask",
           "noise_filter_halo", "psf_width"]

gauss1d_mask = ks.gauss1d_mask
gauss2d_mask = ks.gauss2d_mask
noise_filter_halo = ks.filter_halo


def _as_images(obj: Any, name: str, *, videos: bool = False) -> xr.DataArray:
    """A DataArray whose last two dims are ``y`` and ``x``.

    A 2-D array becomes ``("y", "x")``; with ``videos``, a 3- to 5-D array is
    wrapped as a video (:func:`fluoxr.as_video`).
    """
    if isinstance(obj, xr.DataArray):
        if obj.ndim < 2 or obj.dims[-2:] != ("y", "x"):
            raise ValueError(f"{name} must have 'y' and 'x' as its last two dims, got dims {obj.dims}")
        return obj
    if isinstance(obj, (np.ndarray, da.Array)) or hasattr(obj, "__array__"):
        arr = obj if isinstance(obj, da.Array) or _backend.dispatch_for(obj).device else np.asarray(obj)
        if arr.dtype.kind not in "biuf":
            raise TypeError(f"{name} must hold real numbers, got dtype {arr.dtype}")
        if videos and 3 <= arr.ndim <= 5:
            from .._video import as_video

            return as_video(arr, name=name)
        if arr.ndim != 2:
            raise ValueError(f"{name} must be a 2-D image" + (" or a video" if videos else "")
                             + f" (or a DataArray with dims (..., 'y', 'x')), got shape {arr.shape}")
        return xr.DataArray(arr, dims=("y", "x"))
    raise TypeError(f"{name} must be an image array or a DataArray, got {type(obj).__name__}")


def _frac_coord(obj: xr.DataArray, dim: str, factor: int) -> np.ndarray:
    n = obj.sizes[dim]
    src = obj[dim].values.astype(np.float64) if dim in obj.coords else np.arange(n, dtype=np.float64)
    return np.interp(np.arange(ks.interp_size(n, factor)) / factor, np.arange(n), src)


def fourier_interpolate(obj: Any, factor: int = 2) -> xr.DataArray:
    """Fourier interpolation of each frame (pysofi ``fourier_interp_array`` / ``interpolate_image``).

    Each ``(h, w)`` frame becomes ``((h - 1) f + 1, (w - 1) f + 1)``: it is
    mirrored to ``(2h, 2w)`` (no ringing at the edges), transformed, and
    resampled ``f`` times finer by the inverse transform; the modulus is
    kept, as in pysofi. A video stays lazy and is interpolated chunk by chunk
    (chunks are split so that the float64 output chunks stay near twice the
    chunk size option); the interpolation operators are computed once per
    graph.
    Coordinates ``y``, ``x`` become fractional (``0, 1/f, ...``).

    ``moments(fourier_interpolate(video, f), n)`` is pysofi's
    ``moment_im_with_finterp``, except that pysofi subtracts the interpolated
    mean image (which, because of the modulus, is not exactly the mean of
    the interpolated frames) and truncates the moments to int64; fluoxr gives
    the exact central moments of the interpolated frames.

    Parameters
    ----------
    obj : xarray.DataArray or 2-D array
        A video ``("time", ..., "y", "x")`` with whole frames in every chunk,
        or images ``(..., "y", "x")``.
    factor : int
        Interpolation factor ``f`` (>= 1).

    Returns
    -------
    xarray.DataArray
        float64, same dims.

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> out = fluoxr.fourier_interpolate(np.array([[0.0, 1.0], [1.0, 2.0], [3.0, 4.0]]), 2)
    >>> out.shape, out.y.values.tolist()
    ((5, 3), [0.0, 0.5, 1.0, 1.5, 2.0])
    >>> np.round(out.values[:, 1], 4).tolist()
    [0.5, 0.8006, 1.5, 2.5327, 3.5]
    """
    factor = check_int(factor, "factor", min_value=1)
    images = _as_images(obj, "obj", videos=True)
    h, w = images.sizes["y"], images.sizes["x"]
    hn, wn = ks.interp_size(h, factor), ks.interp_size(w, factor)
    data = images.data
    K = _backend.dispatch_for(data)
    if isinstance(data, da.Array):
        check_whole_frames(images, "obj")
        lead = data.ndim - 2
        # split chunks along the first axis so that a float64 output chunk stays near twice the chunk option:
        # the output is f**2 times larger per frame and float64, and the reductions that follow pay per
        # chunk (measured on 8000 x 64 x 64, f = 2, 2 threads: cumulants of the interpolated frames at
        # 138 MB/s of input with 32 MB output chunks, 113 with 16 MB, 120 with 128 MB)
        if lead:
            per_lead = int(np.prod(data.shape[1:lead], dtype=np.int64)) * hn * wn * 8
            n = frames_per_chunk(per_lead, data.shape[0], 2 * get_options()["chunk_mb"])
            if max(data.chunks[0]) > n:
                data = data.rechunk({0: n})
        # the operators are made once per graph (and copied to the device once)
        op = partial(K.finterp_operator, xp_name=K.xp_name)
        opmeta = _backend.meta_like(data, 2, np.complex128)
        A = da.from_delayed(dask.delayed(op, pure=True)(h, w, factor, 0), shape=(hn, h), dtype=np.complex128,
                            meta=opmeta)
        B = da.from_delayed(dask.delayed(op, pure=True)(h, w, factor, 1), shape=(w, wn), dtype=np.complex128,
                            meta=opmeta)
        ind = "".join(chr(ord("a") + i) for i in range(lead))
        out = da.blockwise(K.interpolate_frames, ind + "YX", data, ind + "yx", A, "Yy", B, "xX", concatenate=True,
                           dtype=np.float64, meta=_backend.meta_like(data, data.ndim, np.float64),
                           name="fluoxr-sofi-finterp")
    else:
        out = K.interpolate_frames(data, *(K.finterp_operator(h, w, factor, i, K.xp_name) for i in (0, 1)))
    coords = {k: v.variable for k, v in images.coords.items() if not ({"y", "x"} & set(v.dims))}
    coords["y"] = _frac_coord(images, "y", factor)
    coords["x"] = _frac_coord(images, "x", factor)
    attrs = dict(images.attrs)
    if "pixel_size" in attrs:
        attrs["pixel_size"] = attrs["pixel_size"] / factor
    attrs["finterp_factor"] = factor
    return xr.DataArray(out, dims=images.dims, coords=coords, attrs=attrs, name=images.name)


def _check_filter(noise_filter: Any, name: str = "noise_filter") -> np.ndarray:
    """The 1-D kernel (default pysofi's ``gauss1d_mask((1, 21), 2)``); errors name ``name``, the caller's argument."""
    if noise_filter is None:
        return ks.gauss1d_mask((1, 21), 2)
    if isinstance(noise_filter, (str, bytes, bool, np.bool_)):
        raise TypeError(f"{name} must be a 1-D array of filter taps, got {noise_filter!r}")
    try:
        h = np.asarray(noise_filter, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} must be a 1-D array of filter taps, got {noise_filter!r}") from None
    if h.ndim == 2 and 1 in h.shape:
        h = h.ravel()
    if h.ndim != 1 or h.size < 1 or not np.all(np.isfinite(h)):
        raise ValueError(f"{name} must be a finite 1-D kernel, got shape {h.shape}")
    return h


def _check_window_size(window_size: Any, h: int, w: int, name: str = "window_size") -> tuple[int, int]:
    """An ldrc window of two ints in ``1 .. (h, w)``; errors name ``name``, the caller's argument."""
    if isinstance(window_size, (str, bytes)) or not hasattr(window_size, "__len__") or len(window_size) != 2:
        raise ValueError(f"{name} must be two integers (rows, columns), got {window_size!r}")
    window = (check_int(window_size[0], name, min_value=1), check_int(window_size[1], name, min_value=1))
    if window[0] > h or window[1] > w:
        raise ValueError(f"{name} {window} is larger than the images ({h}, {w})")
    return window


def _noise_filter_chunk(window: np.ndarray, *, before: int, after: int, h: np.ndarray, shift: int, n: int,
                        along: int) -> np.ndarray:
    """The filtered frames of one chunk, from the chunk with its halo (zeros beyond the series' ends)."""
    out = ks.correlate_same_block(window, h, shift, along)
    return out[(slice(None),) * along + (slice(before, out.shape[along] - after),)]


# pysofi's filter1d_same along a dim: a symmetric halo of filter_halo(n, taps) samples, zeros beyond the ends
NOISE_FILTER = TemporalFilter(_noise_filter_chunk, halo=lambda h, shift, n, **_: (ks.filter_halo(n, h.size),) * 2,
                              edge="zeros", name="fluoxr-noise-filter")


def noise_filter(stack: xr.DataArray, noise_filter: Any = None, *, dim: str = "time") -> xr.DataArray:
    """Filter a series of images pixel by pixel along ``dim`` (pysofi ``noise_filter1d``, ``filter1d_same``).

    Each pixel's series is convolved with ``noise_filter`` (zeros beyond the
    ends) and the centred part of the series' length is kept (pysofi's
    ``filter1d_same``, which NumPy 2 broke with ``np.int``). Lazy: chunks
    along ``dim`` get a halo of :func:`noise_filter_halo` samples and the
    result does not depend on the chunking.

    Parameters
    ----------
    stack : xarray.DataArray
        Images along ``dim`` (a video, or a series of SOFI images).
    noise_filter : array-like, optional
        1-D kernel; default ``gauss1d_mask((1, 21), 2)`` as pysofi.
    dim : str
        Dim to filter along.

    Returns
    -------
    xarray.DataArray
        float64, same dims and coordinates.

    Examples
    --------
    >>> import numpy as np, xarray as xr, fluoxr
    >>> s = xr.DataArray(np.r_[np.zeros(5), 1.0, np.zeros(5)][:, None, None], dims=("time", "y", "x"))
    >>> out = fluoxr.noise_filter(s, [0.25, 0.5, 0.25])
    >>> out[4:7, 0, 0].values.tolist()
    [0.25, 0.5, 0.25]
    """
    if not isinstance(stack, xr.DataArray):
        raise TypeError(f"stack must be an xarray.DataArray with a {dim!r} dim, got {type(stack).__name__}")
    if dim not in stack.dims:
        raise ValueError(f"dim {dim!r} is not a dim of stack (dims {stack.dims})")
    stack = host(stack, "fluoxr.noise_filter")
    if stack.dtype.kind not in "biuf":
        raise TypeError(f"stack must hold real numbers, got dtype {stack.dtype}")
    h = _check_filter(noise_filter)
    axis = stack.get_axis_num(dim)
    n = stack.sizes[dim]
    shift = ks.filter_shift(n, h.size)
    data = stack.data
    if isinstance(data, da.Array):
        out = apply_temporal(data, NOISE_FILTER, axis=axis, dtype=np.float64,
                             meta=np.empty((0,) * data.ndim, np.float64), h=h, shift=shift, n=n, along=axis)
    else:
        out = ks.correlate_same_block(np.asarray(data), h, shift, axis)
    attrs = dict(stack.attrs)
    attrs["noise_filter_taps"] = int(h.size)
    return xr.DataArray(out, dims=stack.dims, coords=stack.coords, attrs=attrs, name=stack.name)


def _image_first(fluoxr_call: str, pysofi_call: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Refuse a second positional argument with a TypeError that shows fluoxr's call and pysofi's order.

    pysofi's ``ldrc(mask_im, input_im, ...)`` and ``deconvsk(est_psf, input_im, ...)`` put the image
    second; fluoxr puts it first and takes everything else by keyword, so a call ported from pysofi
    fails here instead of running with the two swapped.
    """
    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(func)
        def checked(*args: Any, **kwargs: Any) -> Any:
            if len(args) > 1:
                raise TypeError(f"{func.__name__}() takes the image(s) as its only positional argument and every "
                                f"other argument by keyword: {fluoxr_call}; got {len(args)} positional arguments. "
                                f"pysofi's order, {pysofi_call}, puts the image second: name the arguments")
            return func(*args, **kwargs)
        return checked
    return decorate


def _deconvsk_stack(images: np.ndarray, psf: np.ndarray, deconv_lambda: float, deconv_iter: int) -> np.ndarray:
    flat = images.reshape((-1,) + images.shape[-2:])
    out = np.empty(flat.shape)
    for i, im in enumerate(flat):
        out[i] = ks.deconvsk(psf, im, deconv_lambda, deconv_iter)
    return out.reshape(images.shape)


def _per_image(func: Any, images: xr.DataArray, *args: Any, **kwargs: Any) -> xr.DataArray:
    """Apply ``func(block, ...)`` to whole images; lazily (one image per chunk) for dask data."""
    data = images.data
    if isinstance(data, da.Array):
        lead = data.ndim - 2
        data = data.rechunk((1,) * lead + (-1, -1))
        out = data.map_blocks(func, *args, dtype=np.float64, meta=np.empty((0,) * data.ndim, np.float64),
                              **kwargs)
    else:
        out = func(np.asarray(data), *args, **kwargs)
    return xr.DataArray(out, dims=images.dims, coords=images.coords, attrs=dict(images.attrs), name=images.name)


@_image_first("deconvsk(images, psf=psf, deconv_lambda=1.5, deconv_iter=20)",
              "deconvsk(est_psf, input_im, deconv_lambda, deconv_iter)")
def deconvsk(images: Any, *, psf: Any = None, deconv_lambda: float = 1.5, deconv_iter: int = 20) -> xr.DataArray:
    """Shrinking-kernel deconvolution of each image (pysofi ``deconvsk``).

    The image comes first and every other argument is keyword-only: pysofi's
    ``deconvsk(est_psf, input_im, ...)`` takes the PSF first, and a call in
    that order raises a TypeError that says so instead of running with the
    two swapped.

    One Richardson-Lucy iteration with each PSF of the shrinking series
    ``(psf / max psf) ** (lambda ** i / (lambda - 1))``, ``i = 1..deconv_iter``,
    on the image mirrored to twice its size (pysofi's ``richardson_lucy``,
    ``corelucy``, ``psf2otf``, ``otf2psf``, ``zero_pad`` are in
    :mod:`fluoxr.kernels.sofi`; pysofi's own calls ``np.float`` and
    ``np.alltrue``, which NumPy 2 removed). Lazy for dask-backed images,
    one image per task.

    Parameters
    ----------
    images : xarray.DataArray or 2-D array
        Image(s) ``(..., "y", "x")``.
    psf : array-like, optional
        PSF estimate; default ``gauss2d_mask((51, 51), 2)`` (pysofi's default).
        The mirrored image (twice the image size) must be at least as large.
    deconv_lambda : float
        Exponent step, > 1 (pysofi recommends 1 to 2).
    deconv_iter : int
        Number of PSFs in the series (>= 1).

    Returns
    -------
    xarray.DataArray
        float64, same dims.

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> img = np.zeros((32, 32)); img[16, 16] = 1
    >>> blurred = np.fft.ifft2(np.fft.fft2(img) * np.fft.fft2(np.fft.ifftshift(fluoxr.gauss2d_mask((32, 32), 2)))).real
    >>> out = fluoxr.deconvsk(blurred, psf=fluoxr.gauss2d_mask((15, 15), 2), deconv_iter=5)
    >>> bool(out.values[16, 16] > blurred[16, 16])
    True
    >>> fluoxr.deconvsk(fluoxr.gauss2d_mask((15, 15), 2), blurred)
    Traceback (most recent call last):
    ...
    TypeError: deconvsk() takes the image(s) as its only positional argument and every other argument by keyword: deconvsk(images, psf=psf, deconv_lambda=1.5, deconv_iter=20); got 2 positional arguments. pysofi's order, deconvsk(est_psf, input_im, deconv_lambda, deconv_iter), puts the image second: name the arguments
    """
    images = host(_as_images(images, "images"), "fluoxr.deconvsk")
    psf = ks.gauss2d_mask((51, 51), 2) if psf is None else np.asarray(psf, dtype=np.float64)
    if psf.ndim != 2 or not np.all(np.isfinite(psf)) or not np.max(psf) > 0:
        raise ValueError(f"psf must be a finite 2-D array with a positive maximum, got shape {psf.shape}")
    deconv_lambda = check_number(deconv_lambda, "deconv_lambda", gt=1)
    deconv_iter = check_int(deconv_iter, "deconv_iter", min_value=1)
    h, w = images.sizes["y"], images.sizes["x"]
    if psf.shape[0] > 2 * h or psf.shape[1] > 2 * w:
        raise ValueError(f"psf of shape {psf.shape} is larger than the mirrored image ({2 * h}, {2 * w}); "
                         "use a smaller psf")
    out = _per_image(_deconvsk_stack, images, psf, deconv_lambda, deconv_iter)
    out.attrs.update(deconv_lambda=deconv_lambda, deconv_iter=deconv_iter)
    return out


def _ldrc_stack(images: np.ndarray, masks: np.ndarray, order: int, window: tuple[int, int]) -> np.ndarray:
    flat = images.reshape((-1,) + images.shape[-2:])
    mflat = masks.reshape((-1,) + masks.shape[-2:])
    out = np.empty(flat.shape)
    for i, im in enumerate(flat):
        out[i] = ks.ldrc(mflat[i if mflat.shape[0] > 1 else 0], im, order, window)
    return out.reshape(images.shape)


@_image_first("ldrc(images, mask=mask, order=1, window_size=(25, 25))",
              "ldrc(mask_im, input_im, order, window_size)")
def ldrc(images: Any, *, mask: Any, order: int = 1, window_size: Sequence[int] = (25, 25)) -> xr.DataArray:
    """Local dynamic range compression of SOFI images against a reference (pysofi ``ldrc``).

    The images come first and every other argument is keyword-only
    (``mask`` is required): pysofi's ``ldrc(mask_im, input_im, ...)`` takes
    the mask first, and a call in that order raises a TypeError that says
    so instead of running with the two swapped.

    Every ``window_size`` window of the image is min-max normalised and
    scaled by the maximum of ``mask`` in that window; pixels average the
    windows covering them (see :func:`fluoxr.kernels.sofi.ldrc` for the
    differences from pysofi: a flat window gives 0, not NaN).

    Parameters
    ----------
    images : xarray.DataArray or 2-D array
        High-order SOFI image(s) ``(..., "y", "x")``.
    mask : xarray.DataArray or 2-D array
        Reference image (mean image or order-2 SOFI image): one for all
        images, or one per image with the same leading dims. A mask of
        another size is resized ``order`` times finer with cubic
        ``griddata``, as pysofi (for a mean image taken before Fourier
        interpolation by ``order``).
    order : int
        Resizing factor for a smaller mask.
    window_size : (int, int)
        Window ``(rows, columns)``, each at most the image size.

    Returns
    -------
    xarray.DataArray
        float64, same dims as ``images``.

    Examples
    --------
    >>> import numpy as np, fluoxr
    >>> out = fluoxr.ldrc(np.arange(40.0).reshape(5, 8), mask=np.ones((5, 8)), window_size=(5, 5))
    >>> out.shape
    (5, 8)
    """
    images = host(_as_images(images, "images"), "fluoxr.ldrc")
    mask = host(_as_images(mask, "mask"), "fluoxr.ldrc")
    order = check_int(order, "order", min_value=1)
    h, w = images.sizes["y"], images.sizes["x"]
    window = _check_window_size(window_size, h, w)
    lead = images.dims[:-2]
    if mask.ndim > 2 and mask.dims[:-2] != lead:
        raise ValueError(f"mask must be one image or have the images' leading dims {lead}, got dims {mask.dims}")
    mh, mw = mask.sizes["y"], mask.sizes["x"]
    if (mh, mw) != (h, w) and (ks.interp_size(mh, order), ks.interp_size(mw, order)) != (h, w):
        raise ValueError(f"mask of shape ({mh}, {mw}) matches neither the images ({h}, {w}) nor, resized by "
                         f"order={order}, ({ks.interp_size(mh, order)}, {ks.interp_size(mw, order)})")
    mdata = mask.data
    data = images.data
    if isinstance(data, da.Array) or isinstance(mdata, da.Array):
        data = da.asarray(data).rechunk((1,) * len(lead) + (-1, -1))
        mdata = da.asarray(mdata)
        if mask.ndim > 2:
            mdata = mdata.rechunk((1,) * len(lead) + (-1, -1))
            out = da.map_blocks(_ldrc_stack, data, mdata, order=order, window=window, dtype=np.float64,
                                meta=np.empty((0,) * data.ndim, np.float64))
        else:
            mdata = mdata.rechunk(-1)
            ind = "".join(chr(ord("a") + i) for i in range(len(lead)))
            out = da.blockwise(_ldrc_stack, ind + "yx", data, ind + "yx", mdata, "mn", concatenate=True,
                               order=order, window=window, dtype=np.float64,
                               meta=np.empty((0,) * data.ndim, np.float64))
    else:
        out = _ldrc_stack(np.asarray(data), np.asarray(mdata), order, window)
    attrs = dict(images.attrs)
    attrs["ldrc_window"] = list(window)
    return xr.DataArray(out, dims=images.dims, coords=images.coords, attrs=attrs, name=images.name)


# --------------------------------------------------------------------------------------------
# checking resolution


def _fit_width(sub: np.ndarray, yy: np.ndarray, xx: np.ndarray, y0: float, x0: float) -> float:
    from scipy.optimize import curve_fit

    def gauss(c: tuple, a: float, yc: float, xc: float, s: float, off: float) -> np.ndarray:
        return a * np.exp(-((c[0] - yc) ** 2 + (c[1] - xc) ** 2) / (2 * s * s)) + off

    p0 = [float(sub.max() - np.median(sub)), y0, x0, 1.0, float(np.median(sub))]
    try:
        p, _ = curve_fit(gauss, (yy.ravel(), xx.ravel()), sub.ravel(), p0=p0, maxfev=5000)
    except (RuntimeError, ValueError):
        return float("nan")
    return float(abs(p[3]))


def psf_width(image: Any, positions: Any, *, radius_px: int = 5) -> np.ndarray:
    """Width (Gaussian standard deviation) of the spot at each position of an image.

    A 2-D Gaussian with offset is fitted in a ``(2 r + 1)^2`` window around
    each position. SOFI images of order ``n`` of a Gaussian PSF of width
    ``sigma`` have spots of width ``sigma / sqrt(n)``; the sign of each spot
    (odd and some even cumulants are negative) is taken from its centre.
    Eager: a lazy image is computed.

    Parameters
    ----------
    image : xarray.DataArray or 2-D array
        Image ``("y", "x")``; with a DataArray, positions and widths are in
        its coordinate units (pixels of the recording for an interpolated
        image), else in pixels.
    positions : array-like
        ``(n, 2)`` spot centres ``(y, x)``.
    radius_px : int
        Half-size of the fitting window, in pixels of ``image``.

    Returns
    -------
    numpy.ndarray
        ``(n,)`` widths; NaN where the fit fails or the window leaves the image.

    Examples
    --------
    >>> import numpy as np
    >>> from fluoxr.sofi import psf_width
    >>> yy, xx = np.mgrid[0:21, 0:21]
    >>> img = np.exp(-((yy - 10.3) ** 2 + (xx - 9.6) ** 2) / (2 * 1.7**2))
    >>> np.round(psf_width(img, [(10.3, 9.6)]), 3).tolist()
    [1.7]
    """
    r = check_int(radius_px, "radius_px", min_value=1)
    if isinstance(image, xr.DataArray):
        if image.dims != ("y", "x"):
            raise ValueError(f"image must have dims ('y', 'x'), got {image.dims}")
        ycoord = image.y.values.astype(np.float64) if "y" in image.coords else np.arange(image.sizes["y"], dtype=float)
        xcoord = image.x.values.astype(np.float64) if "x" in image.coords else np.arange(image.sizes["x"], dtype=float)
        img = np.asarray(image.values, dtype=np.float64)
    else:
        img = np.asarray(image, dtype=np.float64)
        if img.ndim != 2:
            raise ValueError(f"image must be 2-D, got shape {img.shape}")
        ycoord, xcoord = np.arange(img.shape[0], dtype=float), np.arange(img.shape[1], dtype=float)
    pos = np.asarray(positions, dtype=np.float64).reshape(-1, 2)
    scale = np.array([ycoord[1] - ycoord[0] if len(ycoord) > 1 else 1.0, xcoord[1] - xcoord[0] if len(xcoord) > 1 else 1.0])
    out = np.full(len(pos), np.nan)
    for i, (y0, x0) in enumerate(pos):
        fy = np.interp(y0, ycoord, np.arange(len(ycoord)))
        fx = np.interp(x0, xcoord, np.arange(len(xcoord)))
        yi, xi = int(round(fy)), int(round(fx))
        if yi - r < 0 or xi - r < 0 or yi + r >= img.shape[0] or xi + r >= img.shape[1]:
            continue
        sub = img[yi - r : yi + r + 1, xi - r : xi + r + 1]
        sub = sub * (np.sign(sub[r, r]) or 1.0)
        yy, xx = np.mgrid[yi - r : yi + r + 1, xi - r : xi + r + 1].astype(np.float64)
        out[i] = _fit_width(sub, yy, xx, fy, fx) * float(np.sqrt(abs(scale[0] * scale[1])))
    return out
