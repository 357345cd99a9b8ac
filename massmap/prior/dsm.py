"""Denoising score matching (DSM) for κ: the residual parameterisation and the loss.

Maps are normalised, x = (κ − μ) / τ, with μ, τ the training mean and standard deviation of κ; the
noise level in these units is σ_x = σ / τ (σ in κ units). The network gives the *residual*

    r_θ(x, σ) = b(x, σ) + F_θ(c_in x, log σ) / √(1 + σ²),      c_in = 1 / √(1 + σ²)

(σ meaning σ_x here; the EDM preconditioning of Karras et al. 2022 with σ_data = 1), where the base
term b is

    b(x, σ) = σ · (−(S + σ²)⁻¹ x),

σ times the analytic score of a Gaussian of covariance S (:mod:`massmap.prior.gaussian`), with

* S = I, a white unit-variance Gaussian (plain mode): b = −σ x / (1 + σ²), the EDM skip term; or
* S = the training power spectrum (hybrid mode, as in Remy et al. 2023: the network learns only the
  non-Gaussian correction).

Both are the same computation with a different per-mode variance array ``mode_var`` (ones for S = I),
so a plain and a hybrid network share one compiled function.

The score is s_θ(x, σ) = r_θ(x, σ) / σ ≈ ∇_x log p_σ(x), with p_σ the data density convolved with
N(0, σ²). In κ units ∇_κ log p_σ(κ) = r_θ((κ − μ)/τ, σ/τ) / σ (the 1/τ of the chain rule cancels
against σ_x = σ/τ), which is what :func:`massmap.io.priors.load_prior` returns.

The DSM loss (Vincent 2011) with y = x + σu, u ~ N(0, I):

    L(θ) = E_{x, σ, u} (1/N) ‖u + r_θ(x + σu, σ)‖²,

minimised by r* = σ ∇ log p_σ (Tweedie); it is 1 for a zero score and its minimum is
1 − σ² E‖∇ log p_σ‖²/N. σ is drawn log-uniformly (default) or uniformly on [σ_min, σ_max].
"""
from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp

from massmap.prior.gaussian import gaussian_score
from massmap.prior.unet import ScoreUNet, UNetSpec


def sample_sigma(key: jax.Array, shape: tuple, sigma_min: float, sigma_max: float,
                 distribution: str = "log-uniform") -> jnp.ndarray:
    """Noise levels for a batch: log-uniform or uniform on [sigma_min, sigma_max]."""
    v = jax.random.uniform(key, shape, jnp.float32)
    if distribution == "log-uniform":
        return jnp.exp(jnp.log(sigma_min) + v * (jnp.log(sigma_max) - jnp.log(sigma_min)))
    if distribution == "uniform":
        return sigma_min + v * (sigma_max - sigma_min)
    raise ValueError(f"unknown sigma distribution {distribution!r}")


def base_residual(x: jnp.ndarray, sigma: jnp.ndarray, mode_var: jnp.ndarray) -> jnp.ndarray:
    """b(x, σ) = σ · (−(S + σ²)⁻¹ x) for (B, ny, nx) maps; ``mode_var`` = per-mode variances of S."""
    return sigma[:, None, None] * gaussian_score(x, sigma, mode_var)


def white_mode_variance(ny: int, nx: int) -> jnp.ndarray:
    """Per-mode variances of S = I (unit white noise): the base term of a plain (non-hybrid) prior."""
    return jnp.ones((ny, nx), jnp.float32)


def residual_network(spec: UNetSpec) -> hk.TransformedWithState:
    """Haiku transform of (x, σ, mode_var) ↦ r_θ(x, σ); x (B, ny, nx) normalised maps, σ (B,)."""

    def forward(x, sigma, mode_var):
        c = 1.0 / jnp.sqrt(1.0 + sigma * sigma)
        f = ScoreUNet(spec)(x * c[:, None, None], jnp.log(sigma))
        return base_residual(x, sigma, mode_var) + f * c[:, None, None]

    return hk.transform_with_state(forward)


def dsm_loss(net: hk.TransformedWithState, params, state, clean: jnp.ndarray, sigma: jnp.ndarray,
             noise: jnp.ndarray, mode_var: jnp.ndarray):
    """Mean DSM loss over the batch, with (per-map losses (B,), new network state) as aux."""
    r, state = net.apply(params, state, None, clean + sigma[:, None, None] * noise, sigma, mode_var)
    per_map = jnp.mean((noise + r) ** 2, axis=(-2, -1))
    return jnp.mean(per_map), (per_map, state)
