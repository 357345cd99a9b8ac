"""The shear likelihood of a κ map: γ = Pκ + n with diagonal per-pixel noise, on a zero-padded grid.

κ lives on the padded (periodic) grid of shape (ny + 2·pad, nx + 2·pad); the binned shear is known only
inside the unpadded region and only where the mask is set, exactly as for Kaiser-Squires and Wiener
(ops.shear.pad_map / crop_map). With w_i = 1/σ_i² per pixel and shear component (0 without data),

    log L(κ) = −½ Σ_i w_i [(γ1_i − (Pκ)1_i)² + (γ2_i − (Pκ)2_i)²],
    ∇ log L  = Pᵀ W (γ − Pκ)

(constants dropped). With ``reduced_shear`` the model is g = Pκ / (1 − κ) (the denominator is floored
at ``REDUCED_SHEAR_FLOOR`` so the model stays finite) and the gradient comes from autodiff.

Annealing (Remy et al. 2022): at noise level σ the sampler targets κ_σ = κ + σ z, whose shear is
Pκ_σ − σPz + n; since P is unitary on ℓ ≠ 0, the likelihood of κ_σ has the noise variance inflated to
σ_i² + σ² in every data pixel, ``w_i(σ) = 1 / (σ_i² + σ²)``. σ = 0 is the plain likelihood.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from massmap.ops.shear import kappa_to_shear, pad_map, shear_adjoint

REDUCED_SHEAR_FLOOR = 0.05  # minimum of 1 − κ in the reduced-shear model


class PaddedShear(NamedTuple):
    """Binned shear on the padded grid (all (ny_pad, nx_pad) float32)."""

    g1: jnp.ndarray  # 0 where there is no data
    g2: jnp.ndarray
    noise_var: jnp.ndarray  # per-component noise variance σ_i²; 1 where there is no data (unused there)
    mask: jnp.ndarray  # 1 = data, 0 = no data (masked, empty or padding)


def pad_shear(g1, g2, noise_std, mask, pad: int) -> PaddedShear:
    """Pad binned shear (ny, nx) into :class:`PaddedShear` (the likelihood's data on the padded grid).

    A pixel carries data where ``mask`` is set and ``noise_std`` and both shears are finite, with
    ``noise_std > 0``; everything else (and the padding) carries no information.
    """
    g1, g2, noise_std, mask = (np.asarray(a, np.float64) for a in (g1, g2, noise_std, mask))
    with np.errstate(invalid="ignore"):
        valid = (mask > 0) & np.isfinite(noise_std) & (noise_std > 0) & np.isfinite(g1) & np.isfinite(g2)
    var = np.where(valid, noise_std, 1.0) ** 2
    arrays = (np.where(valid, g1, 0.0), np.where(valid, g2, 0.0), var, valid.astype(float))
    padded = [pad_map(jnp.asarray(a, jnp.float32), pad) for a in arrays]
    noise_var = jnp.where(padded[3] > 0, padded[2], 1.0)
    return PaddedShear(padded[0], padded[1], noise_var, padded[3])


def data_weight(data: PaddedShear, sigma=0.0) -> jnp.ndarray:
    """Inverse noise variance per pixel and component at annealing level σ: mask / (σ_i² + σ²)."""
    return data.mask / (data.noise_var + jnp.asarray(sigma, jnp.float32) ** 2)


def predicted_shear(kappa: jnp.ndarray, reduced_shear: bool = False) -> tuple[jnp.ndarray, jnp.ndarray]:
    """The model shear of κ (..., ny, nx): Pκ, or Pκ / (1 − κ) for the reduced shear."""
    s1, s2 = kappa_to_shear(kappa)
    if reduced_shear:
        denom = jnp.maximum(1.0 - kappa, REDUCED_SHEAR_FLOOR)
        s1, s2 = s1 / denom, s2 / denom
    return s1, s2


def log_likelihood(kappa: jnp.ndarray, data: PaddedShear, sigma=0.0, reduced_shear: bool = False) -> jnp.ndarray:
    """log L_σ(κ) (up to a κ-independent constant) for one map (ny, nx); a scalar."""
    s1, s2 = predicted_shear(kappa, reduced_shear)
    w = data_weight(data, sigma)
    return -0.5 * jnp.sum(w * ((data.g1 - s1) ** 2 + (data.g2 - s2) ** 2))


def log_likelihood_and_grad(kappa: jnp.ndarray, data: PaddedShear, sigma=0.0,
                            reduced_shear: bool = False) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(log L_σ(κ), ∇_κ log L_σ(κ)) for one map; the linear case uses ∇ = Pᵀ W (γ − Pκ) directly."""
    if reduced_shear:
        return jax.value_and_grad(log_likelihood)(kappa, data, sigma, True)
    s1, s2 = kappa_to_shear(kappa)
    w = data_weight(data, sigma)
    r1, r2 = data.g1 - s1, data.g2 - s2
    ll = -0.5 * jnp.sum(w * (r1**2 + r2**2))
    return ll, shear_adjoint(w * r1, w * r2)


def mean_weight(data: PaddedShear, sigma=0.0) -> jnp.ndarray:
    """Mean of the per-pixel weight over the padded grid: the Fourier-diagonal part of Pᵀ W P."""
    return jnp.mean(data_weight(data, sigma))


def max_weight(data: PaddedShear, sigma=0.0) -> jnp.ndarray:
    """Largest per-pixel weight: an upper bound on the curvature Pᵀ W P contributes to any mode."""
    return jnp.max(data_weight(data, sigma))
