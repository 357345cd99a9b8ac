"""The shear likelihood of a κ map: γ = Pκ + n with diagonal per-pixel noise, on a zero-padded grid.

κ lives on the padded (periodic) grid of shape (ny + 2·pad, nx + 2·pad); the binned shear is known only
inside the unpadded region and only where the mask is set, exactly as for Kaiser-Squires and Wiener
(ops.shear.pad_map / crop_map). With w_i = 1/σ_i² per pixel and shear component (0 without data),

    log L(κ) = −½ Σ_i w_i [(γ1_i − (Pκ)1_i)² + (γ2_i − (Pκ)2_i)²],
    ∇ log L  = Pᵀ W (γ − Pκ)

(constants dropped). With ``reduced_shear`` the model is g = Pκ / (1 − κ) (the denominator is floored
at ``REDUCED_SHEAR_FLOOR`` so the model stays finite) and the gradient comes from autodiff.

Annealing, inflated (Remy et al. 2022): at noise level σ the sampler targets κ_σ = κ + σ z, whose
shear is Pκ_σ − σPz + n; since P is unitary on ℓ ≠ 0, the likelihood of κ_σ has the noise variance
inflated to σ_i² + σ² in every data pixel, ``w_i(σ) = 1 / (σ_i² + σ²)``. σ = 0 is the plain likelihood.
This treats z as independent of κ_σ, which it is not: in the Gaussian limit (prior S per mode, noise n
per mode, torus) the chains' κ_σ then has mean (S + σ²)/(S + n + 2σ²) · d instead of the exact
p(κ_σ | d)'s S/(S + n) · d, and the posterior mean that follows, S/(S + n + 2σ²) · d, is shrunk by
2σ²/(S + n) too much in the noise-dominated modes (6% with σ² = 3% of n).

Annealing, split (exact as σ² ≪ every σ_i²): the data noise can be split as n = σ R P z' + n', z' white
and independent of n' ~ N(0, N − σ² Q), Q = R P Pᵀ Rᵀ (R: the pixels with data; Q ≤ 1, so N − σ² Q is a
covariance whenever σ² ≤ min σ_i²). With κ_σ = κ + σ z' the data are d = R P κ_σ + n': κ → κ_σ → d is a
Markov chain, so p(d | κ_σ) = N(d; RPκ_σ, N − σ²Q) exactly, for any prior, and p(κ | κ_σ, d) = p(κ | κ_σ):
Tweedie's mean of a draw of p(κ_σ | d) is an unbiased draw of E[κ | d]. In the Gaussian limit the chain
at σ then gives the exact posterior (per mode, mean S/(S + n) d and, with the conditional draw, variance
Sn/(S + n)). That holds only below the noise; an annealing path must also reach σ ≫ σ_i, and one that
jumps from the inflated to the exact covariance moves the chains' mode abruptly (it breaks the mirror
symmetry of antithetic pairs, massmap.infer.annealed). So the levels use the family

    Σ_σ = N + (1 − t) σ² − t σ² Q,   t(ρ) = 1 / (1 + (ρ/ρ0)²),   ρ = σ² max_i w_i,  ρ0 = SPLIT_SCALE,

the inflated likelihood as t → 0 (σ ≫ σ_i) and the exact p(d | κ_σ) as t → 1 (σ ≪ σ_i; at ρ = 0.03,
the end point of the shipped prior's chains at 30 galaxies/arcmin², t = 0.99). Its E-mode noise is
σ_i² + (1 − 2t)σ² > 0 since tρ ≤ ρ0/2. The inverse is summed as a Neumann series in X = tσ² W'Q,
W' = mask/(σ_i² + (1 − t)σ²), ‖X‖ ≤ tρ ≤ ρ0/2:

    Σ_σ⁻¹ ≈ W' + c W'QW' + c² W'QW'QW',   c = tσ²,

exact to relative O((tρ)³) (≤ 0.4%, 3e-5 at ρ = 0.03); the likelihood is the Gaussian of that inverse
covariance and its gradient exact for it (three more pairs of shear transforms, no score evaluation).
With the reduced shear the same Gaussian is used for g(κ_σ) (no longer exact: the model is not linear).
The preconditioner's data term is the mean E-mode weight mask / (σ_i² + (1 − 2t)σ²).
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





SPLIT_SCALE = 0.3  # ρ0 of the split fraction t(ρ) = 1/(1 + (ρ/ρ0)²) (module docstring)


def split_fraction(data: PaddedShear, sigma) -> jnp.ndarray:
    """t(ρ) = 1/(1 + (ρ/ρ0)²), ρ = σ² max_i w_i: the share of the level's σ² taken out of the data noise."""
    rho = jnp.asarray(sigma, jnp.float32) ** 2 * jnp.max(data_weight(data))
    return 1.0 / (1.0 + (rho / SPLIT_SCALE) ** 2)


def _split_quadratic(r1, r2, w, c):
    """rᵀ M r and M r for M = W + c WQW + c² WQWQW, Q = P Pᵀ (module docstring); W holds the mask."""
    u1, u2 = w * r1, w * r2
    v = shear_adjoint(u1, u2)  # Pᵀ W r
    p1, p2 = kappa_to_shear(v)
    wp1, wp2 = w * p1, w * p2  # W Q W r
    q1, q2 = kappa_to_shear(shear_adjoint(wp1, wp2))  # Q W Q W r, before the last W
    quad = jnp.sum(u1 * r1 + u2 * r2) + c * jnp.sum(v * v) + c**2 * jnp.sum(wp1 * p1 + wp2 * p2)
    return quad, (u1 + c * wp1 + c**2 * w * q1, u2 + c * wp2 + c**2 * w * q2)


def _split_terms(data: PaddedShear, sigma):
    """(W', tσ²): the weights mask/(σ_i² + (1 − t)σ²) and the share tσ² taken out through Q."""
    sig2 = jnp.asarray(sigma, jnp.float32) ** 2
    t = split_fraction(data, sigma)
    return data.mask / (data.noise_var + (1.0 - t) * sig2), t * sig2


def split_log_likelihood(kappa: jnp.ndarray, data: PaddedShear, sigma, reduced_shear: bool = False) -> jnp.ndarray:
    """log L_σ(κ_σ) of the split noise model (module docstring), up to a constant; a scalar."""
    s1, s2 = predicted_shear(kappa, reduced_shear)
    quad, _ = _split_quadratic(data.g1 - s1, data.g2 - s2, *_split_terms(data, sigma))
    return -0.5 * quad


def split_log_likelihood_and_grad(kappa: jnp.ndarray, data: PaddedShear, sigma,
                                  reduced_shear: bool = False) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(log L_σ(κ_σ), its gradient) of the split noise model; the linear case as Pᵀ M r directly."""
    if reduced_shear:
        return jax.value_and_grad(split_log_likelihood)(kappa, data, sigma, True)
    s1, s2 = kappa_to_shear(kappa)
    quad, (m1, m2) = _split_quadratic(data.g1 - s1, data.g2 - s2, *_split_terms(data, sigma))
    return -0.5 * quad, shear_adjoint(m1, m2)


def split_weight(data: PaddedShear, sigma) -> jnp.ndarray:
    """The split likelihood's per-pixel E-mode weight mask / (σ_i² + (1 − 2t)σ²): its Fourier-diagonal
    curvature (the preconditioner's data term, like :func:`data_weight`'s)."""
    sig2 = jnp.asarray(sigma, jnp.float32) ** 2
    return data.mask / (data.noise_var + (1.0 - 2.0 * split_fraction(data, sigma)) * sig2)
