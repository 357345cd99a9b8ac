"""The analytic score of a Gaussian (stationary) prior, diagonal in Fourier space.

For κ ~ N(0, S) with S = F⁻¹ diag(s) F (s_k = C_ℓ/ΔΩ, see ops.spectra.mode_variance) smoothed by
white pixel noise of standard deviation σ, p_σ = N(0, S + σ² I) and

    ∇ log p_σ(κ) = −(S + σ² I)⁻¹ κ = −F⁻¹ [ F κ / (s_k + σ²) ].

The ℓ = 0 mode has s_0 = 0 and is handled by the same formula (for σ > 0).

:class:`GaussianPrior` is this score as a :class:`massmap.prior.base.Prior` for a C_ℓ table at a
given pixel scale (with it the posterior mean is the Wiener filter).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import jax.numpy as jnp
import numpy as np

from massmap.ops.spectra import mode_variance_from_cl


def gaussian_score(kappa: jnp.ndarray, sigma: jnp.ndarray | float, mode_var: jnp.ndarray) -> jnp.ndarray:
    """−(S + σ²)⁻¹ κ for maps (..., ny, nx); ``sigma`` broadcasts against the batch axes."""
    sigma = jnp.asarray(sigma, kappa.dtype)
    sig2 = jnp.reshape(sigma, sigma.shape + (1, 1)) ** 2
    denom = mode_var + sig2
    denom = jnp.where(denom > 0, denom, jnp.inf)
    return -jnp.fft.ifft2(jnp.fft.fft2(kappa) / denom).real.astype(kappa.dtype)


@dataclass(frozen=True, eq=False)
class GaussianPrior:
    """The Gaussian prior of a C_ℓ table (ℓ, C_ℓ) on grids of ``pixel_size_arcmin`` pixels.

    ``source`` says where the C_ℓ came from (for headers). Any σ > 0 and any grid work; the per-mode
    variances are computed once per grid shape.
    """

    ell: np.ndarray
    cl: np.ndarray
    pixel_size_arcmin: float
    source: str = ""
    name: str = "gaussian"
    grid_multiple: int = 1
    sigma_min: float | None = None
    sigma_max: float | None = None
    kappa_std: float | None = None
    _cache: dict = field(default_factory=dict, repr=False)

    def mode_variance(self, ny: int, nx: int) -> np.ndarray:
        """s_k = C_ℓ/ΔΩ on an (ny, nx) grid (float32)."""
        if (ny, nx) not in self._cache:
            self._cache[(ny, nx)] = mode_variance_from_cl(self.ell, self.cl, ny, nx, self.pixel_size_arcmin)
        return self._cache[(ny, nx)]

    def score(self, kappa: jnp.ndarray, sigma: jnp.ndarray) -> jnp.ndarray:
        return gaussian_score(kappa, sigma, jnp.asarray(self.mode_variance(*kappa.shape[-2:])))
