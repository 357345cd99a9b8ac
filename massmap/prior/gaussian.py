"""The analytic score of a Gaussian (stationary) prior, diagonal in Fourier space.

For κ ~ N(0, S) with S = F⁻¹ diag(s) F (s_k = C_ℓ/ΔΩ, see ops.spectra.mode_variance) smoothed by
white pixel noise of standard deviation σ, p_σ = N(0, S + σ² I) and

    ∇ log p_σ(κ) = −(S + σ² I)⁻¹ κ = −F⁻¹ [ F κ / (s_k + σ²) ].

The ℓ = 0 mode has s_0 = 0 and is handled by the same formula (for σ > 0).
"""
from __future__ import annotations

import jax.numpy as jnp


def gaussian_score(kappa: jnp.ndarray, sigma: jnp.ndarray | float, mode_var: jnp.ndarray) -> jnp.ndarray:
    """−(S + σ²)⁻¹ κ for maps (..., ny, nx); ``sigma`` broadcasts against the batch axes."""
    sigma = jnp.asarray(sigma, kappa.dtype)
    sig2 = jnp.reshape(sigma, sigma.shape + (1, 1)) ** 2
    denom = mode_var + sig2
    denom = jnp.where(denom > 0, denom, jnp.inf)
    return -jnp.fft.ifft2(jnp.fft.fft2(kappa) / denom).real.astype(kappa.dtype)
