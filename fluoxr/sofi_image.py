"""SOFI steps that work frame by frame or image by image, lazily: now :mod:`fluoxr.sofi.image`.

Kept so that ``import fluoxr.sofi_image`` goes on working; it re-exports the
public names of :mod:`fluoxr.sofi.image`.
"""

from __future__ import annotations

from .sofi.image import deconvsk, fourier_interpolate, gauss1d_mask, gauss2d_mask, ldrc, noise_filter
from .sofi.image import noise_filter_halo

__all__ = ["fourier_interpolate", "noise_filter", "deconvsk", "ldrc", "gauss1d_mask", "gauss2d_mask",
           "noise_filter_halo"]
