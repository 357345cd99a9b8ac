"""The sampler's mass matrix: the Gaussian-limit posterior curvature, diagonal in Fourier space.

With s_k the prior's per-mode variance and w̄(σ) the mean data weight (likelihood.mean_weight, or
likelihood.split_weight's mean for the split likelihood), the
curvature of −log π_σ per Fourier mode in the Gaussian limit is

    h_k(σ) = 1 / (s_k + σ²) + w̄(σ)   (k ≠ 0),

exact for a Gaussian prior with uniform noise, no mask and no padding. The k = 0 mode (the grid mean,
which shear cannot measure) is held at 0 (:func:`without_mean_mode`). For a learned prior s_k is its
effective spectrum, measured from the linear response of its score (:func:`probe_mode_variance`);
:func:`prior_spectrum` picks the exact, probed or reference spectrum for a prior.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from massmap.ops.fourier import fourier_multiply as fourier_apply  # noqa: F401  (F⁻¹ diag F x, for annealed and map)

PROBE_KEY = 2**31 - 1  # a run's key k probes a learned prior's spectrum with fold_in(k, PROBE_KEY)


def without_mean_mode(diag: jnp.ndarray) -> jnp.ndarray:
    """A Fourier diagonal with its k = 0 entry set to 0: applied to a map, it leaves the grid mean at 0.

    The shear is blind to a constant κ (the mass-sheet degeneracy): the data say nothing about the mean
    of the padded grid, which the Gaussian prior fixes at 0 (s_0 = 0) and a learned prior trained on
    small patches does not know. Like KS and Wiener, sampler and MAP keep it at 0: the initial draws,
    the momenta and the moves (inverse mass, MAP direction) all go through this.
    """
    return diag.at[0, 0].set(0.0)


def inverse_precision(h: jnp.ndarray) -> jnp.ndarray:
    """1/h_k without the k = 0 mode (an infinite mass there): moves never change the grid mean."""
    return without_mean_mode(1.0 / h)


def fourier_precision(mode_var: jnp.ndarray, weight, sigma) -> jnp.ndarray:
    """Gaussian-limit curvature per Fourier mode: 1/(s_k + σ²) + weight (no data term for k = 0)."""
    sig2 = jnp.asarray(sigma, jnp.float32) ** 2
    data_term = jnp.full(mode_var.shape, weight, jnp.float32).at[0, 0].set(0.0)
    return 1.0 / (mode_var + sig2) + data_term


def probe_mode_variance(score: Callable, key: jax.Array, shape: tuple[int, int], sigma: float,
                        n_probes: int = 4) -> jnp.ndarray:
    """Effective per-mode prior variance of a (batched) score function, for the preconditioner.

    The linear response of the score at κ = 0 to white probes v (central finite differences of size σ)
    gives the curvature c_k = −Re⟨F(Jv) F(v)*⟩ / ⟨|F(v)|²⟩ per mode, averaged over probes and over
    rings of integer |k|; a Gaussian prior has c_k = 1/(s_k + σ²), so s_k = max(1/c_k − σ², 0)
    (s_0 = 0). A ring is *resolved* when its curvature is positive and, with ≥ 2 usable probes, more
    than two standard errors of the per-probe estimates above zero. An unresolved ring (a response
    lost in the network's finite-difference noise, or of the wrong sign — typically the low-|k| modes
    at a small σ, whose response σ²/(s_k + σ²) is tiny) gets the largest variance of the resolved
    rings, never the unbounded 1/c_k: it would remove the prior's curvature from the preconditioner
    (h_k → the data weight alone), and the MAP ascent would over-step those modes wherever the
    smoothed prior is stiff. Probes with a non-finite response are left out; NaN everywhere if all
    fail or no ring is resolved. ``score(κ (B, ny, nx), σ (B,))``; costs 2·n_probes evaluations (one batch).
    """
    ny, nx = shape
    v = jax.random.normal(key, (n_probes, ny, nx), jnp.float32)
    sig = jnp.full((2 * n_probes,), sigma, jnp.float32)
    out = score(jnp.concatenate([sigma * v, -sigma * v]), sig)
    jv = (out[:n_probes] - out[n_probes:]) / (2 * sigma)
    ok = jnp.isfinite(jv).all(axis=(1, 2))  # probes where the score failed are left out
    fv, fj = jnp.fft.fft2(v), jnp.fft.fft2(jnp.where(ok[:, None, None], jv, 0.0))
    num = -(fj * jnp.conj(fv)).real  # (n_probes, ny, nx)
    den = jnp.where(ok[:, None, None], jnp.abs(fv) ** 2, 0.0)
    ky = jnp.fft.fftfreq(ny)[:, None] * ny
    kx = jnp.fft.fftfreq(nx)[None, :] * nx
    ring = jnp.round(jnp.sqrt((kx * max(ny, nx) / nx) ** 2 + (ky * max(ny, nx) / ny) ** 2)).astype(jnp.int32)
    n_rings = int(np.ceil(np.hypot(ny, nx))) + 1

    def ring_sum(a):  # (n_probes, ny, nx) -> (n_probes, n_rings)
        return jax.vmap(lambda x: jax.ops.segment_sum(x.ravel(), ring.ravel(), n_rings))(a)

    num_r, den_r = ring_sum(num), ring_sum(den)
    c_ring = num_r.sum(0) / jnp.maximum(den_r.sum(0), 1e-30)
    n_ok = jnp.sum(ok)
    per_probe = jnp.where(ok[:, None], num_r / jnp.maximum(den_r, 1e-30), 0.0)
    mean_p = per_probe.sum(0) / jnp.maximum(n_ok, 1)
    var_p = jnp.where(ok[:, None], (per_probe - mean_p) ** 2, 0.0).sum(0) / jnp.maximum(n_ok - 1, 1)
    stderr = jnp.where(n_ok >= 2, jnp.sqrt(var_p / jnp.maximum(n_ok, 1)), 0.0)
    present = jax.ops.segment_sum(jnp.ones(ny * nx), ring.ravel(), n_rings) > 0
    resolved = (c_ring > 0) & (c_ring > 2.0 * stderr) & present & jnp.isfinite(c_ring)
    resolved = resolved.at[0].set(False)  # the k = 0 mode is pinned to s_0 = 0 below
    s_ring = jnp.maximum(1.0 / jnp.where(resolved, c_ring, 1.0) - sigma**2, 0.0)
    s_cap = jnp.max(jnp.where(resolved, s_ring, -jnp.inf))
    s_eff = jnp.where(resolved, s_ring, s_cap)[ring].at[0, 0].set(0.0)
    usable = jnp.any(ok) & jnp.any(resolved)
    return jnp.where(usable, s_eff, jnp.nan)  # NaN: the score failed on every probe / resolved no ring


def prior_spectrum(prior, key: jax.Array, shape: tuple[int, int], sigma_min: float,
                   reference=None) -> tuple[jnp.ndarray, str]:
    """The per-mode variance s_k the preconditioner and the initial draws use, and where it came from.

    A Gaussian prior's exact spectrum; else the spectrum probed from the prior's score at σ_min
    (:func:`probe_mode_variance`, key fold_in(``key``, PROBE_KEY)); if the probe fails (a non-finite score near κ = 0), the
    exact spectrum of the Gaussian ``reference`` prior (e.g. the signal C_ℓ), else a ValueError.
    """
    exact = prior.mode_variance(*shape)
    if exact is not None:
        return jnp.asarray(exact, jnp.float32), "gaussian prior C_ell"
    probed = jax.jit(probe_mode_variance, static_argnums=(0, 2))(prior.score, jax.random.fold_in(key, PROBE_KEY),
                                                                tuple(shape), sigma_min)
    if bool(jnp.all(jnp.isfinite(probed))):
        return probed, "probed from the prior's score"
    if reference is None:
        raise ValueError(f"the score of prior '{prior.name}' is non-finite near kappa = 0 and no reference "
                         "spectrum was given")
    return (jnp.asarray(reference.mode_variance(*shape), jnp.float32),
            "gaussian prior C_ell (the prior's score was non-finite near kappa = 0)")
