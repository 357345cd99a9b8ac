"""Galaxies onto pixels: calibrated shear catalogs binned on a flat TAN grid or on HEALPix pixels.

Per pixel, with weights w, calibrated ellipticity numerators e − c and responses (1 + m) R,

    γ = Σ w (e − c) / Σ w (1 + m) R,     var per component = σ_e² Σ w² / (Σ w (1 + m) R)²

(the geometric mean of the two components' responses in the variance). Flat maps follow the grid's
pixel centres (round to nearest); HEALPix maps are RING ordered, ellipticities in each galaxy's native
frame (local West, North; see massmap.sphere.harmonic for healpy's). Numerics only: reading FITS
tables is massmap.io.catalog.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import healpy as hp
import numpy as np

from massmap.geometry import FlatGrid


@dataclass
class ShearCatalog:
    """Calibrated galaxies of one catalog (after selection and cleaning)."""

    path: str
    ra: np.ndarray
    dec: np.ndarray
    e1: np.ndarray  # e − c, after flips (numerator terms)
    e2: np.ndarray
    weight: np.ndarray
    response: np.ndarray  # (1 + m) R per object, per component: shape (2, n)
    n_read: int
    n_dropped: int
    notes: list[str] = field(default_factory=list)

    @property
    def n(self) -> int:
        return int(self.ra.size)


def estimate_sigma_e(cat: ShearCatalog) -> float:
    """Per-component shape noise σ_e² = ½ Σ w² (e1² + e2²) / Σ w² of the calibrated ellipticities.

    ValueError when it cannot be estimated (no weight, zero response, or a non-positive result).
    """
    w2 = cat.weight**2
    with np.errstate(divide="ignore", invalid="ignore"):
        e1 = cat.e1 / cat.response[0]
        e2 = cat.e2 / cat.response[1]
        sigma_e = float(np.sqrt(0.5 * np.sum(w2 * (e1**2 + e2**2)) / np.sum(w2)))
    if not (np.isfinite(sigma_e) and sigma_e > 0):
        raise ValueError(f"the shape noise cannot be estimated from the catalog (sigma_e = {sigma_e})")
    return sigma_e


@dataclass
class BinnedShear:
    """Shear binned on a flat TAN grid (the unpadded map); NOISE_STD is the per-component σ per pixel,
    0 where MASK is 0. The likelihood pads it (:func:`massmap.infer.likelihood.pad_shear`)."""

    grid: FlatGrid
    g1: np.ndarray  # (ny, nx) float32, 0 without data
    g2: np.ndarray
    noise_std: np.ndarray
    mask: np.ndarray  # uint8, 1 = data
    count: np.ndarray | None = None  # galaxies per pixel (None for a binned map read from a file)
    n_outside: int = 0  # galaxies that fell outside the grid


def pixel_relative_weights(pixel: np.ndarray, weight: np.ndarray, size: int) -> np.ndarray:
    """Each galaxy's weight over the largest weight in its pixel (0 in a pixel of zero weights).

    The shear and its variance per pixel do not change when the pixel's weights are scaled together;
    scaled so, Σ w² and (Σ w)² neither underflow nor overflow (weights of 1e-200 or 1e200 in a catalog
    would otherwise give 0/0 noise)."""
    top = np.zeros(size)
    np.maximum.at(top, pixel, weight)
    scale = top[pixel]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(scale > 0, weight / scale, 0.0)


def bin_shear(cat: ShearCatalog, grid: FlatGrid, sigma_e: float) -> BinnedShear:
    """Weighted shear per pixel and its noise: var = σ_e² Σ w² / (Σ w (1+m) R)² (weights relative to
    the largest in each pixel: :func:`pixel_relative_weights`)."""
    x, y = grid.world_to_pixel(cat.ra, cat.dec)
    with np.errstate(invalid="ignore"):  # NaN positions (behind the tangent plane) are dropped below
        ix = np.floor(x + 0.5).astype(np.int64)
        iy = np.floor(y + 0.5).astype(np.int64)
    inside = (ix >= 0) & (ix < grid.nx) & (iy >= 0) & (iy < grid.ny) & np.isfinite(x) & np.isfinite(y)
    n_out = int((~inside).sum())
    idx = iy[inside] * grid.nx + ix[inside]
    size = grid.ny * grid.nx

    def acc(v):
        return np.bincount(idx, weights=v[inside], minlength=size).reshape(grid.shape)

    w = np.zeros_like(cat.weight, dtype=np.float64)
    w[inside] = pixel_relative_weights(idx, cat.weight[inside], size)
    sw1 = acc(w * cat.response[0])
    sw2 = acc(w * cat.response[1])
    sw2w = acc(w**2)
    num1 = acc(w * cat.e1)
    num2 = acc(w * cat.e2)
    count = np.bincount(idx, minlength=size).reshape(grid.shape)
    mask = (sw1 > 0) & (sw2 > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        g1 = np.where(mask, num1 / sw1, 0.0)
        g2 = np.where(mask, num2 / sw2, 0.0)
        denom = np.sqrt(sw1 * sw2)
        noise = np.where(mask, sigma_e * np.sqrt(sw2w) / denom, 0.0)
    return BinnedShear(grid, g1.astype(np.float32), g2.astype(np.float32), noise.astype(np.float32),
                       mask.astype(np.uint8), count.astype(np.int32), n_out)


@dataclass
class HealpixShear:
    """Binned shear on a full HEALPix map; NOISE_STD and the shear are 0 where MASK is 0."""

    nside: int
    g1: np.ndarray  # (12 nside²,) float64, native frame
    g2: np.ndarray
    noise_std: np.ndarray  # per-component σ per pixel
    mask: np.ndarray  # uint8, 1 = data
    count: np.ndarray  # galaxies per pixel (int64)

    @property
    def n_observed(self) -> int:
        return int(np.count_nonzero(self.mask))

    @property
    def f_sky(self) -> float:
        return self.n_observed / self.mask.size


def galaxy_pixels(ra: np.ndarray, dec: np.ndarray, nside: int) -> np.ndarray:
    """RING pixel index of each (RA, Dec) in degrees."""
    return hp.ang2pix(nside, np.asarray(ra, np.float64), np.asarray(dec, np.float64), lonlat=True)


def bin_shear_healpix(cat: ShearCatalog, nside: int, sigma_e: float) -> HealpixShear:
    """Weighted, calibrated shear and its noise per HEALPix pixel (RING)."""
    pix = galaxy_pixels(cat.ra, cat.dec, nside)
    npix = hp.nside2npix(nside)

    def acc(v):
        return np.bincount(pix, weights=v, minlength=npix)

    w = pixel_relative_weights(pix, cat.weight, npix)
    sw1 = acc(w * cat.response[0])
    sw2 = acc(w * cat.response[1])
    sww = acc(w * w)
    num1 = acc(w * cat.e1)
    num2 = acc(w * cat.e2)
    count = np.bincount(pix, minlength=npix)
    mask = (sw1 > 0) & (sw2 > 0)
    g1 = np.zeros(npix)
    g2 = np.zeros(npix)
    noise = np.zeros(npix)
    g1[mask] = num1[mask] / sw1[mask]
    g2[mask] = num2[mask] / sw2[mask]
    noise[mask] = sigma_e * np.sqrt(sww[mask] / (sw1[mask] * sw2[mask]))
    return HealpixShear(nside, g1, g2, noise, mask.astype(np.uint8), count)
