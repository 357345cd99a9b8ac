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

How the network output F enters (``UNetSpec.residual``):

* ``'edm'``: F / √(1 + σ²), as above (the same scale for every Fourier mode);
* ``'mean-shift'``: F filtered per Fourier mode by w_k(σ) = σ² / (s_k + σ²). The score is then

      s = −(S + σ²)⁻¹ (x − σ F),

  the score of a Gaussian of covariance S + σ² whose mean σF is learned: the network shifts the
  Wiener estimate, it cannot remove the Gaussian restoring force. If F responds to x with a gain H,
  mode k feels −(1 − σ c H)(s_k + σ²)⁻¹ x_k, restoring for every mode while σ c H < 1. With the
  'edm' scale the same response gives −(s_k + σ²)⁻¹ x_k + c² H x_k / σ, which overturns the weak
  restoring force of the large-scale modes (s_k ≫ σ²) at small σ already for H ≈ σ/(c² s_k): long
  chains at small σ then run away to maps with orders of magnitude too much large-scale power
  (measured on PM maps, docs/priors.md). Where noise dominates (s_k ≪ σ²) both forms agree (w_k → 1).
  With a white S (plain prior) w_k = σ²/(1 + σ²) for every mode.

**Loss weighting across σ** (``TrainSpec.loss_weighting``). The DSM loss of one map at noise σ,
E‖u + r‖²/N, is the squared error of its Tweedie denoiser D = y + σr divided by σ²: it ranges from
≈ 1 at small σ to ≈ 0.01 at σ = 10 (the noise swamps the map and any denoiser is nearly exact in these
units). With the plain average over a batch (``'sigma2'``, the usual λ(σ) = σ² weighting of the score
error) the small-σ maps dominate the gradient, and the network learns next to nothing at the σ of the
shear noise, where the posterior mean is made. ``'wiener'`` divides each map's loss by

    L_W(σ) = (1/N) Σ_k s_k / (s_k + σ²),

the expected DSM loss of the Wiener denoiser of per-mode variances s_k (the training C_ℓ) on any maps
with that spectrum: per mode, u + r_W = (s_k u − σ x)/(s_k + σ²) has variance s_k/(s_k + σ²). The
weighted loss is the network denoiser's mean squared error relative to the Wiener denoiser's, so every
σ counts by how much better than Wiener the network is there. The minimiser at each σ is the same
(the exact score); only the share of the network's capacity each σ gets changes.
"""
from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp

from massmap.prior.gaussian import gaussian_score
from massmap.prior.unet import ScoreUNet, UNetSpec

RESIDUALS = ("edm", "mean-shift")  # how the network output enters the residual (module docstring)
LOSS_WEIGHTINGS = ("sigma2", "wiener")  # per-map weight of the DSM loss across σ (module docstring)


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

    if spec.residual not in RESIDUALS:
        raise ValueError(f"unknown residual form {spec.residual!r} (one of {', '.join(RESIDUALS)})")

    def forward(x, sigma, mode_var):
        c = 1.0 / jnp.sqrt(1.0 + sigma * sigma)
        f = ScoreUNet(spec)(x * c[:, None, None], jnp.log(sigma))
        if spec.residual == "mean-shift":
            f = mean_shift_output(f, sigma, mode_var)
        else:
            f = f * c[:, None, None]
        return base_residual(x, sigma, mode_var) + f

    return hk.transform_with_state(forward)


def mean_shift_output(f: jnp.ndarray, sigma: jnp.ndarray, mode_var: jnp.ndarray) -> jnp.ndarray:
    """F⁻¹[σ² / (s_k + σ²) · F f] for (B, ny, nx) network outputs (the 'mean-shift' residual form)."""
    sig2 = (sigma * sigma)[:, None, None]
    w = sig2 / (mode_var + sig2)
    return jnp.fft.ifft2(jnp.fft.fft2(f) * w).real.astype(f.dtype)


def wiener_dsm_loss(sigma: jnp.ndarray, mode_var: jnp.ndarray) -> jnp.ndarray:
    """L_W(σ) = mean_k s_k/(s_k + σ²) for σ (B,): the expected DSM loss of the Wiener denoiser of
    per-mode variances ``mode_var`` (ny, nx) on maps of that spectrum (module docstring)."""
    sig2 = (sigma * sigma)[:, None, None]
    return jnp.mean(mode_var / (mode_var + sig2), axis=(-2, -1))


def loss_weights(sigma: jnp.ndarray, weighting: str, wiener_var: jnp.ndarray) -> jnp.ndarray:
    """Per-map weights (B,) of the DSM loss: ones ('sigma2') or 1/L_W(σ) ('wiener')."""
    if weighting == "sigma2":
        return jnp.ones_like(sigma)
    if weighting == "wiener":
        return 1.0 / wiener_dsm_loss(sigma, wiener_var)
    raise ValueError(f"unknown loss weighting {weighting!r} (one of {', '.join(LOSS_WEIGHTINGS)})")


def dsm_loss(net: hk.TransformedWithState, params, state, clean: jnp.ndarray, sigma: jnp.ndarray,
             noise: jnp.ndarray, mode_var: jnp.ndarray, weights: jnp.ndarray | None = None):
    """Mean DSM loss over the batch (each map's loss times ``weights``, default 1), with (unweighted
    per-map losses (B,), new network state) as aux."""
    r, state = net.apply(params, state, None, clean + sigma[:, None, None] * noise, sigma, mode_var)
    per_map = jnp.mean((noise + r) ** 2, axis=(-2, -1))
    weighted = per_map if weights is None else per_map * weights
    return jnp.mean(weighted), (per_map, state)
