"""Learned score priors: a trained residual UNet (massmap.prior.dsm) as a :class:`~massmap.prior.base.Prior`.

In κ units the score of the network is ∇_κ log p_σ(κ) = r_θ((κ − μ)/τ, σ/τ) / σ, with μ, τ the
training mean and standard deviation of κ (massmap.prior.dsm). The residual's base term is the
analytic score of a Gaussian of per-mode variance S: white (S = I) for a :class:`LearnedPrior`, the
training C_ℓ (in units of τ²) for a :class:`HybridPrior` (Remy et al. 2023: the network learns the
non-Gaussian correction only). The network is periodic and fully convolutional, so maps larger than
the training patches work, at the training pixel scale, with sides that are multiples of
``grid_multiple`` = 2^(levels − 1). Parameters are read and written by :mod:`massmap.io.priors`.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from massmap.prior.dsm import residual_network, white_mode_variance
from massmap.prior.hybrid import hybrid_mode_variance
from massmap.prior.unet import UNetSpec


@dataclass(frozen=True, eq=False)
class LearnedPrior:
    """A trained score network; ``score`` is pure and jittable (parameters are constants of it).

    ``metadata`` holds what the prior file records (architecture, provenance, training, metrics,
    history). Equality and hashing are by identity (compiled sampler functions are cached per prior).
    """

    spec: UNetSpec
    params: Any
    pixel_size_arcmin: float
    npix: int  # training patch side
    sigma_min: float
    sigma_max: float
    kappa_mean: float
    kappa_std: float
    name: str = "learned prior"
    metadata: dict = field(default_factory=dict, repr=False)
    _cache: dict = field(default_factory=dict, repr=False)

    @property
    def grid_multiple(self) -> int:
        return 2 ** (len(self.spec.channels) - 1)

    def mode_variance(self, ny: int, nx: int) -> None:
        return None  # not Gaussian: the sampler measures its effective spectrum from the score

    def network_mode_variance(self, ny: int, nx: int) -> jnp.ndarray:
        """Per-mode variances S of the residual's Gaussian base term (normalised units): white."""
        return white_mode_variance(ny, nx)

    def apply(self, params, kappa: jnp.ndarray, sigma: jnp.ndarray) -> jnp.ndarray:
        """The score for explicit ``params`` (for training-time evaluation and tests)."""
        if "net" not in self._cache:
            self._cache["net"] = residual_network(self.spec)
        kappa = jnp.asarray(kappa, jnp.float32)
        sigma = jnp.asarray(sigma, jnp.float32)
        x = (kappa - self.kappa_mean) / self.kappa_std
        r, _ = self._cache["net"].apply(params, {}, None, x, sigma / self.kappa_std,
                                        self.network_mode_variance(*kappa.shape[-2:]))
        return r / sigma[:, None, None]

    def score(self, kappa: jnp.ndarray, sigma: jnp.ndarray) -> jnp.ndarray:
        """∇_κ log p_σ(κ) for κ (B, ny, nx) and σ (B,) in κ units."""
        return self.apply(self.params, kappa, sigma)

    def denoise(self, kappa: jnp.ndarray, sigma: jnp.ndarray) -> jnp.ndarray:
        """Tweedie's posterior mean E[κ | κ + σu] = κ + σ² ∇ log p_σ(κ)."""
        return kappa + (sigma**2)[:, None, None] * self.score(kappa, sigma)


@dataclass(frozen=True, eq=False)
class HybridPrior(LearnedPrior):
    """A learned prior whose base term is the Gaussian of the training C_ℓ table (``cl_ell``, ``cl``)."""

    cl_ell: np.ndarray = None
    cl: np.ndarray = None

    def network_mode_variance(self, ny: int, nx: int) -> jnp.ndarray:
        key = ("mode_var", ny, nx)
        if key not in self._cache:
            self._cache[key] = hybrid_mode_variance(self.cl_ell, self.cl, ny, nx, self.pixel_size_arcmin,
                                                    self.kappa_std)
        return jnp.asarray(self._cache[key])


def parameter_template(spec: UNetSpec, npix: int):
    """Shapes and dtypes of the network parameters for ``spec`` (nested module → name → ShapeDtypeStruct)."""
    net = residual_network(spec)
    x = jnp.zeros((1, npix, npix), jnp.float32)
    mv = jnp.ones((npix, npix), jnp.float32)
    params, _ = jax.eval_shape(lambda: net.init(jax.random.PRNGKey(0), x, jnp.ones((1,), jnp.float32), mv))
    return params
