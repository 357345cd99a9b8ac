"""Flat-sky power spectra: the ℓ grid, C_ℓ on the grid, Gaussian random fields, binned estimators.

Conventions (docs/conventions.md): a map of N = ny·nx pixels of solid angle ΔΩ (sr) has the discrete
Fourier transform κ̂_k = Σ_x κ_x e^{−2πi k·x/N} (numpy's ``fft2``, no normalisation). Multipole
ℓ = 2π |k| / θ_pix with θ_pix the pixel size in radians. The flat-sky C_ℓ satisfies
⟨|κ̂_k|²⟩ = N C_ℓ / ΔΩ, so the estimator is Ĉ_ℓ = ΔΩ |κ̂_k|² / N, averaged over the modes in a bin.
No pixel window is applied: C_ℓ here is the power of the pixel values themselves.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from massmap.ops.fourier import fourier_multiply

ARCMIN = np.pi / 180.0 / 60.0  # radians per arcmin


def pixel_area_sr(pixel_size_arcmin: float) -> float:
    """Solid angle ΔΩ of one square pixel, in steradians."""
    return float((pixel_size_arcmin * ARCMIN) ** 2)


def ell_grid(ny: int, nx: int, pixel_size_arcmin: float) -> np.ndarray:
    """|ℓ| of every mode of an (ny, nx) FFT grid (float64 numpy array)."""
    theta = pixel_size_arcmin * ARCMIN
    ky = np.fft.fftfreq(ny)[:, None]
    kx = np.fft.fftfreq(nx)[None, :]
    return 2 * np.pi * np.sqrt(kx**2 + ky**2) / theta


def cl_on_grid(ell: np.ndarray, cl: np.ndarray, ny: int, nx: int, pixel_size_arcmin: float) -> np.ndarray:
    """Interpolate a tabulated C_ℓ (log-log, positive values) onto the FFT grid; 0 at ℓ = 0.

    Outside the table, the end values are held constant (in log), which keeps C_ℓ positive.
    """
    ell = np.asarray(ell, float)
    cl = np.asarray(cl, float)
    order = np.argsort(ell)
    ell, cl = ell[order], cl[order]
    keep = (ell > 0) & (cl > 0)
    if keep.sum() < 2:
        raise ValueError("C_ell table needs at least two rows with ell > 0 and C_ell > 0")
    ell, cl = ell[keep], cl[keep]
    grid = ell_grid(ny, nx, pixel_size_arcmin)
    out = np.zeros_like(grid)
    nz = grid > 0
    out[nz] = np.exp(np.interp(np.log(grid[nz]), np.log(ell), np.log(cl)))
    return out


def mode_variance(cl_grid: np.ndarray | jnp.ndarray, pixel_size_arcmin: float):
    """Per-DFT-mode signal variance s_k = C_ℓ / ΔΩ (pixel units): Cov(κ) = F⁻¹ diag(s) F."""
    return cl_grid / pixel_area_sr(pixel_size_arcmin)


def mode_variance_from_cl(ell: np.ndarray, cl: np.ndarray, ny: int, nx: int, pixel_size_arcmin: float) -> np.ndarray:
    """Per-mode variance s_k = C_ℓ/ΔΩ on an (ny, nx) grid from a tabulated C_ℓ (float32; 0 at ℓ = 0)."""
    return mode_variance(cl_on_grid(ell, cl, ny, nx, pixel_size_arcmin), pixel_size_arcmin).astype(np.float32)


def gaussian_random_field(key: jax.Array, cl_grid: jnp.ndarray, pixel_size_arcmin: float,
                          batch_shape: tuple = ()) -> jnp.ndarray:
    """Zero-mean real Gaussian random field(s) with power ``cl_grid`` (as from :func:`cl_on_grid`).

    Returns float32 maps of shape batch_shape + cl_grid.shape.
    """
    ny, nx = cl_grid.shape
    white = jax.random.normal(key, batch_shape + (ny, nx), dtype=jnp.float32)
    amp = jnp.sqrt(jnp.asarray(mode_variance(cl_grid, pixel_size_arcmin), jnp.float32))
    return fourier_multiply(white, amp)


def log_ell_bins(ny: int, nx: int, pixel_size_arcmin: float, n_bins: int = 12) -> np.ndarray:
    """Log-spaced ℓ bin edges from the fundamental mode to the grid's Nyquist ℓ."""
    theta = pixel_size_arcmin * ARCMIN
    lmin = 2 * np.pi / (max(ny, nx) * theta)
    lmax = np.pi / theta
    return np.geomspace(lmin, lmax * (1 + 1e-9), n_bins + 1)


def power_spectrum(maps: np.ndarray, pixel_size_arcmin: float, ell_edges: np.ndarray,
                   other: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Binned flat-sky (cross-)power spectrum of map(s) (..., ny, nx).

    Returns (mean ℓ of the modes in each bin, C_ℓ per bin with shape (..., n_bins), number of modes
    per bin). Empty bins give NaN.
    """
    maps = np.asarray(maps, np.float64)
    ny, nx = maps.shape[-2:]
    area = pixel_area_sr(pixel_size_arcmin)
    fa = np.fft.fft2(maps)
    fb = fa if other is None else np.fft.fft2(np.asarray(other, np.float64))
    p2 = (fa * np.conj(fb)).real * area / (ny * nx)
    ell = ell_grid(ny, nx, pixel_size_arcmin)
    idx = np.digitize(ell.ravel(), ell_edges) - 1
    n_bins = len(ell_edges) - 1
    ok = (idx >= 0) & (idx < n_bins)
    counts = np.bincount(idx[ok], minlength=n_bins).astype(float)
    flat = p2.reshape(p2.shape[:-2] + (-1,))[..., ok]
    sums = np.apply_along_axis(lambda v: np.bincount(idx[ok], weights=v, minlength=n_bins), -1, flat)
    ell_sum = np.bincount(idx[ok], weights=ell.ravel()[ok], minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ell_sum / counts, sums / counts, counts
