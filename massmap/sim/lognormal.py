"""Zero-mean shifted-lognormal convergence fields with a prescribed power spectrum on a periodic grid.

A shifted lognormal field with shift λ is κ = λ (exp(g − σ_G²/2) − 1) with g a zero-mean Gaussian
field of variance σ_G². It has ⟨κ⟩ = 0, κ > −λ, and two-point functions related by

    ξ_κ(r) = λ² (exp(ξ_G(r)) − 1)   ⇔   ξ_G(r) = ln(1 + ξ_κ(r) / λ²).

On the periodic pixel grid the correlation function is the inverse DFT of the per-mode variance,
ξ(r) = ifft2(s)(r) with s_k = C_ℓ/ΔΩ (see ops.spectra), so transforming s_κ → ξ_κ → ξ_G → s_G and
drawing g with mode variance s_G gives maps whose covariance on the grid is exactly the target,
provided all s_G ≥ 0 (checked and reported; negative modes are set to zero).

The ℓ = 0 (map-mean) mode. A lognormal field cannot have zero variance of its map mean: the target
has s_κ(0) = Σ_r ξ_κ(r) = 0, so Σ_r ξ_G(r) < 0, i.e. s_G(0) < 0. We draw g with s_G(0) = 0, which adds
the constant c = −s_G(0)/N to ξ_G, and solve ξ_G = ln(1 + e^{−c} ξ_κ/λ²) for that c by fixed-point
iteration. Then every ℓ > 0 mode of κ has exactly the target variance and the map mean has variance
λ²(e^c − 1) (c is ~1e-4 for 2′ pixels at z_s = 1: a map-mean rms ~ 4e-4).

Pure numpy (float64) for the one-time spectrum transform; the sampler is a pure JAX function.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from massmap.ops.fourier import fourier_multiply


def hilbert11_shift(z_source: np.ndarray | float) -> np.ndarray:
    """Lognormal shift λ = κ₀(z_s) of Hilbert, Hartlap & Schneider (2011, A&A 536, A85), eq. (38).

    κ₀(z) = 0.008 z + 0.029 z² − 0.0079 z³ + 0.00065 z⁴, the minimum convergence of the best-fitting
    shifted lognormal to ray-traced Millennium-simulation convergence (fit over 0 < z_s ≲ 3).
    """
    z = np.asarray(z_source, np.float64)
    return 0.008 * z * (1 + 3.625 * z * (1 - 0.272414 * z * (1 - 0.0822785 * z)))


def shifted_lognormal_skewness(variance: float, shift: float) -> float:
    """Skewness of a shifted lognormal with variance σ² and shift λ: (q + 3)√q with q = σ²/λ²."""
    q = variance / shift**2
    return float((q + 3.0) * np.sqrt(q))


class LognormalSpectrum(NamedTuple):
    """The Gaussian field behind a shifted-lognormal map, on the grid."""

    gaussian_mode_var: np.ndarray  # s_G per DFT mode (pixel units), ≥ 0, s_G(0) = 0
    gaussian_variance: float  # σ_G² = ξ_G(0)
    shift: float  # λ
    mean_mode_offset: float  # c: ξ_G gets +c from s_G(0) = 0; map-mean variance λ²(e^c − 1)
    clipped_fraction: float  # Σ|negative s_G| / Σ s_G (0 when the match is exact)


def lognormal_spectrum(mode_var: np.ndarray, shift: float, n_iter: int = 20) -> LognormalSpectrum:
    """Gaussian per-mode variance s_G whose shifted lognormal has per-mode variance ``mode_var`` (ℓ > 0).

    ``mode_var`` is s_κ = C_ℓ/ΔΩ on the FFT grid (ops.spectra.mode_variance). Raises ValueError when
    the shift is too small for the spectrum (1 + ξ_κ/λ² ≤ 0 somewhere).
    """
    s = np.asarray(mode_var, np.float64)
    n = s.size
    xi = np.fft.ifft2(s).real
    lam2 = float(shift) ** 2
    c = 0.0
    for _ in range(n_iter):
        arg = 1.0 + np.exp(-c) * xi / lam2
        if np.min(arg) <= 0:
            raise ValueError(f"lognormal shift {shift:g} is too small for this spectrum: "
                             f"needs λ² > {-xi.min():.3g}")
        s_g = np.fft.fft2(np.log(arg)).real
        c_new = -s_g[0, 0] / n
        done = abs(c_new - c) <= 1e-12 * max(abs(c), 1e-300)
        c = c_new
        if done:
            break
    s_g[0, 0] = 0.0
    negative = abs(float(s_g[s_g < 0].sum()))
    clipped = float(negative / max(s_g[s_g > 0].sum(), 1e-300))
    s_g = np.clip(s_g, 0.0, None)
    return LognormalSpectrum(s_g, float(s_g.mean()), float(shift), float(c), clipped)


def shifted_lognormal_field(key: jax.Array, gaussian_mode_var: jnp.ndarray, gaussian_variance: float,
                            shift: float, batch_shape: tuple = ()) -> jnp.ndarray:
    """Zero-mean shifted-lognormal map(s) κ = λ (exp(g − σ_G²/2) − 1), float32 of batch_shape + grid.

    ``gaussian_mode_var``, ``gaussian_variance`` and ``shift`` come from :func:`lognormal_spectrum`.
    """
    ny, nx = gaussian_mode_var.shape
    white = jax.random.normal(key, batch_shape + (ny, nx), dtype=jnp.float32)
    amp = jnp.sqrt(jnp.asarray(gaussian_mode_var, jnp.float32))
    g = fourier_multiply(white, amp)
    return (shift * jnp.expm1(g - 0.5 * gaussian_variance)).astype(jnp.float32)
