"""The Gaussian part of the hybrid prior: the training set's C_ℓ and its per-mode variances.

In hybrid mode (Remy et al. 2023) the score is the analytic score of a Gaussian with the power
spectrum of the training maps plus a learned residual. The C_ℓ is measured on the training patches
(:func:`empirical_cl`, flat-sky estimator of :mod:`massmap.ops.spectra`) and stored in the prior as a
table, so the Gaussian term can be evaluated on any grid (:func:`hybrid_mode_variance`).
"""
from __future__ import annotations

import numpy as np

from massmap.ops.spectra import ell_grid, log_ell_bins, mode_variance, power_spectrum


def empirical_cl(patches: np.ndarray, pixel_size_arcmin: float, n_bins: int = 24) -> tuple[np.ndarray, np.ndarray]:
    """(ℓ, C_ℓ) table of (n, npix, npix) patches (mean-subtracted per patch), positive bins only."""
    patches = np.asarray(patches, np.float64)
    patches = patches - patches.mean(axis=(-2, -1), keepdims=True)
    ny, nx = patches.shape[-2:]
    edges = log_ell_bins(ny, nx, pixel_size_arcmin, min(n_bins, max(2, min(ny, nx) // 2)))
    ell, cl, _ = power_spectrum(patches, pixel_size_arcmin, edges)
    cl = np.mean(cl, axis=0)
    ok = np.isfinite(ell) & np.isfinite(cl) & (cl > 0)
    if ok.sum() < 2:
        raise ValueError("training patches give fewer than two positive C_ell bins")
    return ell[ok], cl[ok]


def hybrid_mode_variance(ell: np.ndarray, cl: np.ndarray, ny: int, nx: int, pixel_size_arcmin: float,
                         kappa_std: float) -> np.ndarray:
    """Per-mode variances s_k (in units of the normalised maps, κ/τ) on an (ny, nx) grid.

    C_ℓ is interpolated log-log and held constant beyond the table; the ℓ = 0 mode takes the value
    at the lowest tabulated ℓ (patches cut from larger fields have a fluctuating mean).
    """
    grid = ell_grid(ny, nx, pixel_size_arcmin)
    safe = np.where(grid > 0, grid, ell.min())
    cl_grid = np.exp(np.interp(np.log(safe), np.log(ell), np.log(cl)))
    return (mode_variance(cl_grid, pixel_size_arcmin) / kappa_std**2).astype(np.float32)
