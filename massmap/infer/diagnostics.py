"""MCMC convergence diagnostics over chains: split-R̂ and the effective sample size (ESS).

Input arrays are (chains, draws, ...) with any trailing axes (e.g. pixels); statistics are computed
per trailing element. Conventions follow Gelman et al., BDA3 §11.4-11.5, and Vehtari et al. (2021)
without rank normalisation: each chain is split in halves (the first draw is dropped when the number
of draws is odd), so 2·chains half-chains of n draws enter the formulas

    W = mean within-half-chain variance,  B/n = variance of the half-chain means,
    var⁺ = (n − 1)/n · W + B/n,  R̂ = √(var⁺ / W),
    ρ_t = 1 − (W − mean autocovariance at lag t) / var⁺,
    τ = −1 + 2 Σ_k P_k,  P_k = ρ_2k + ρ_2k+1 (Geyer's initial positive, monotone sequence),
    ESS = 2·chains·n / τ.

With fewer than 4 draws per chain both are undefined and NaN is returned.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def _split_chains(x) -> jnp.ndarray | None:
    """The 2·chains half-chains of draws (chains, draws, ...) as float32, or None with < 4 draws."""
    x = jnp.asarray(x, jnp.float32)
    n = x.shape[1]
    if n < 4:
        return None
    half = n // 2
    x = x[:, n - 2 * half:]
    return jnp.concatenate([x[:, :half], x[:, half:]], axis=0)


@jax.jit
def split_rhat(x) -> jnp.ndarray:
    """Split-R̂ of draws (chains, draws, ...); ≈ 1 for converged chains."""
    xs = _split_chains(x)
    if xs is None:
        return jnp.full(jnp.shape(x)[2:], jnp.nan)
    n = xs.shape[1]
    w = jnp.mean(jnp.var(xs, axis=1, ddof=1), axis=0)
    b_over_n = jnp.var(jnp.mean(xs, axis=1), axis=0, ddof=1)
    var_plus = (n - 1) / n * w + b_over_n
    return jnp.sqrt(var_plus / w)


def _autocovariance(xc: jnp.ndarray) -> jnp.ndarray:
    """Biased autocovariance along axis 1 of centred series, lags 0..n−1 (FFT, zero-padded)."""
    n = xc.shape[1]
    f = jnp.fft.rfft(xc, n=2 * n, axis=1)
    return jnp.fft.irfft(f * jnp.conj(f), n=2 * n, axis=1)[:, :n] / n


@jax.jit
def effective_sample_size(x) -> jnp.ndarray:
    """Multi-chain ESS of draws (chains, draws, ...) with Geyer's initial monotone sequence."""
    xs = _split_chains(x)
    if xs is None:
        return jnp.full(jnp.shape(x)[2:], jnp.nan)
    m, n = xs.shape[:2]
    means = jnp.mean(xs, axis=1, keepdims=True)
    acov = _autocovariance(xs - means)
    w = jnp.mean(acov[:, 0] * n / (n - 1), axis=0)
    var_plus = w * (n - 1) / n + jnp.var(means[:, 0], axis=0, ddof=1)
    rho = 1.0 - (w - jnp.mean(acov, axis=0)) / var_plus
    rho = rho.at[0].set(1.0)
    n_pairs = n // 2
    pairs = rho[0:2 * n_pairs:2] + rho[1:2 * n_pairs:2]
    positive = jnp.cumprod(pairs > 0, axis=0).astype(bool)
    monotone = jax.lax.associative_scan(jnp.minimum, pairs, axis=0)
    tau = -1.0 + 2.0 * jnp.sum(jnp.where(positive, monotone, 0.0), axis=0)
    tau = jnp.maximum(tau, 1.0 / jnp.log10(m * n))
    return m * n / tau
