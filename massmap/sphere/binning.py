"""Shear catalogs binned on HEALPix pixels (RING ordering), with the flat-sky estimator and noise.

Per pixel, γ = Σ w (e − c) / Σ w (1 + m) R and the per-component noise variance is
σ_e² Σ w² / (Σ w (1 + m) R)² (geometric mean of the two components' responses), exactly as
:func:`massmap.io.catalog.bin_shear` on the flat grid. Ellipticities stay in the native frame of each
galaxy (local West, North); see :mod:`massmap.sphere.harmonic` for healpy's frame.
"""
from __future__ import annotations

from dataclasses import dataclass

import healpy as hp
import numpy as np

from massmap.io.catalog import ShearCatalog


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

    w = cat.weight
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
