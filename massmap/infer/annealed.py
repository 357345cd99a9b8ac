"""Annealed Hamiltonian Monte Carlo for κ with a score prior (after Remy et al. 2022), preconditioned.

Target at noise level σ (one chain, κ on the padded grid):

    log π_σ(κ) = log L_σ(κ) + log p_σ(κ),

with L_σ the shear likelihood of κ_σ (infer.likelihood: split or inflated) and p_σ the prior
smoothed by Gaussian noise σ, known only through its score s(κ, σ) = ∇ log p_σ(κ). A chain starts from
the σ_max-smoothed Gaussian prior and runs a few HMC transitions at each level of a geometric schedule
σ_max → σ_min; at σ_min it keeps drawing, and every draw is denoised with Tweedie's formula
E[κ | κ_σ] = κ_σ + σ² s(κ_σ, σ), or replaced by a draw of the Gaussian-limit p(κ | κ_σ) (that mean plus
a field of per-mode variance σ² s_k/(s_k + σ²): the spread of κ that Tweedie's mean leaves out), or by
a draw of the Gaussian-limit p(κ | κ_σ, data), which also takes in what the data say about κ given κ_σ.

Preconditioning: the mass matrix is diagonal in Fourier space, M = F⁻¹ diag(h) F with the
Gaussian-limit curvature of −log π_σ per mode,

    h_k(σ) = 1 / (s_k + σ²) + w̄(σ)  (k ≠ 0; the k = 0 mode, the grid mean, is held at 0:
    :func:`without_mean_mode`),

s_k the Gaussian prior's mode variance (for a learned prior, the effective one measured from its
score by :func:`probe_mode_variance`) and w̄ the mean data weight (likelihood.mean_weight). For the
Gaussian prior with uniform noise and no mask (pad = 0) M is the exact Hessian: in whitened units the
target is a unit Gaussian and a trajectory of length π/2 gives an independent draw. Step sizes are in
these whitened units and adapted per chain towards a target acceptance rate (frozen while drawing).
After a level change the chain is out of equilibrium and falls towards the new mode, which biases the
leapfrog energy error low and the acceptance rate high; so while annealing the step size may only
decrease (a low acceptance rate is a reliable signal, a high one is not), and the symmetric adaptation
runs in the burn-in at σ_min, where the chain is in equilibrium.

Metropolis correction: the prior's log-density is not available for a learned score, so the energy
change uses the line integral of the score along the leapfrog path by the trapezoidal rule,
Δ log p ≈ Σ_j ½ (s_j + s_{j+1}) · (κ_{j+1} − κ_j). The likelihood term is exact. For the Gaussian prior
the score is linear in κ, the trapezoidal rule is exact, and so is the correction; for a learned score
it is accurate to O(ε³) per leapfrog step provided the network is (close to) a gradient field. With
``metropolis=False`` every non-divergent proposal is accepted (unadjusted HMC; the energy error still
drives the step-size adaptation). Non-finite or divergent proposals are always rejected.

Antithetic coupling: every Gaussian draw of a chain (its initial position, the momenta, the final
conditional draw) is multiplied by its ``sign`` (±1), the uniform draws (trajectory jitter, Metropolis
test) are not. Two chains with the same key and opposite signs are then mirror images about the mode in
the Gaussian limit — the leapfrog map is linear and the energy error even about the mode, so they make
the same accept decisions — and their average has no Monte-Carlo noise there (Frigessi, Gåsemyr &
Rue 2000) once the mirrored start (mirrored about 0, not about the mode) is forgotten; each chain
alone is an ordinary chain of the same target.

API (blackjax style): :func:`annealed_hmc` returns ``SamplingAlgorithm(init, step)`` for one chain;
:func:`run_level` runs several transitions at one level (vmap it over chains); :func:`denoise` and
:func:`conditional_draw` or :func:`conditional_draw_given_data` (the final step). The
mass matrix (the Fourier-diagonal precision, probing a learned prior's spectrum) is in
:mod:`massmap.infer.preconditioner`; the driver over levels, chains and restarts in
:mod:`massmap.infer.sampler`.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from massmap.infer.likelihood import PaddedShear, data_weight
from massmap.infer.preconditioner import fourier_apply, inverse_precision, without_mean_mode
from massmap.ops.shear import kappa_to_shear
from massmap.ops.wiener import wiener_cg_solve

ADAPT_RATE = 0.5  # log step size += ADAPT_RATE · (acceptance − target) after each adapted transition
FROZEN, ADAPT, ADAPT_DOWN = 0, 1, 2  # step-size modes: keep, adapt both ways, adapt downwards only


class HMCState(NamedTuple):
    position: jnp.ndarray  # κ_σ on the padded grid (ny, nx)
    log_likelihood: jnp.ndarray  # log L_σ at position
    likelihood_grad: jnp.ndarray  # ∇ log L_σ at position
    prior_score: jnp.ndarray  # s(position, σ)
    sigma: jnp.ndarray  # the level the cached terms belong to
    log_step_size: jnp.ndarray  # whitened leapfrog step size (log)


class HMCInfo(NamedTuple):
    acceptance_rate: jnp.ndarray  # min(1, exp(−ΔH)), 0 for divergent proposals
    is_accepted: jnp.ndarray
    is_divergent: jnp.ndarray  # non-finite, or energy error > max_energy_error
    energy_error: jnp.ndarray  # ΔH of the proposal
    num_leapfrog: jnp.ndarray  # leapfrog steps = gradient and score evaluations
    step_size: jnp.ndarray  # step size used


class LevelInfo(NamedTuple):
    acceptance_rate: jnp.ndarray  # mean over the level's transitions
    n_divergent: jnp.ndarray
    n_evals: jnp.ndarray  # score evaluations spent at this level
    step_size: jnp.ndarray  # at the end of the level


class SamplingAlgorithm(NamedTuple):
    init: Callable  # (position, sigma, log_step_size) -> HMCState
    step: Callable  # (key, state, mode) -> (HMCState, HMCInfo); mode: FROZEN, ADAPT or ADAPT_DOWN


def sigma_schedule(sigma_max: float, sigma_min: float, n_levels: int) -> np.ndarray:
    """Geometric noise levels from σ_max down to σ_min (float32, length n_levels ≥ 1)."""
    if n_levels == 1:
        return np.array([sigma_min], np.float32)
    return np.geomspace(sigma_max, sigma_min, n_levels).astype(np.float32)


def init_position(key: jax.Array, mode_var: jnp.ndarray, sigma, sign=1.0) -> jnp.ndarray:
    """A draw of the σ-smoothed Gaussian prior N(0, S + σ²) on the grid of ``mode_var``, with zero mean
    (times the antithetic ``sign``)."""
    white = jax.random.normal(key, mode_var.shape, jnp.float32) * sign
    return fourier_apply(white, without_mean_mode(jnp.sqrt(mode_var + jnp.asarray(sigma, jnp.float32) ** 2)))


def leapfrog(x, p, ll, g, s, step_size, n_steps, sigma, logl_and_grad: Callable, score: Callable,
             inv_mass: Callable):
    """``n_steps`` leapfrog steps of ∇ log π = g + s; also integrates the prior score along the path.

    Returns (x, p, ll, g, s, Δ log p_prior by the trapezoidal rule, steps taken). Stops early once a
    non-finite value appears (the proposal is then rejected anyway).
    """

    def cond(c):
        return (c[0] < n_steps) & jnp.isfinite(c[6])

    def body(c):
        i, x, p, ll, g, s, dlp = c
        p = p + 0.5 * step_size * (g + s)
        x_new = x + step_size * inv_mass(p)
        ll_new, g_new = logl_and_grad(x_new, sigma)
        s_new = score(x_new, sigma)
        dlp = dlp + 0.5 * jnp.sum((s + s_new) * (x_new - x))
        p = p + 0.5 * step_size * (g_new + s_new)
        return i + 1, x_new, p, ll_new, g_new, s_new, dlp

    init = (jnp.asarray(0, jnp.int32), x, p, ll, g, s, jnp.asarray(0.0, jnp.float32))
    i, x, p, ll, g, s, dlp = jax.lax.while_loop(cond, body, init)
    return x, p, ll, g, s, dlp, i


def annealed_hmc(logl_and_grad: Callable, score: Callable, precision: Callable, *,
                 trajectory_length: float = 1.5708, leapfrog_steps: int | None = None,
                 max_leapfrog_steps: int = 64, metropolis: bool = True, max_energy_error: float = 1000.0,
                 target_accept: float = 0.8) -> SamplingAlgorithm:
    """One-chain HMC at a given annealing level, Fourier-preconditioned (see the module docstring).

    ``logl_and_grad(κ, σ) -> (log L_σ, ∇ log L_σ)``, ``score(κ, σ) -> ∇ log p_σ`` and
    ``precision(σ) -> h_k`` (the Fourier-diagonal mass) act on one (ny, nx) map. ``step(key, state,
    mode, sign=1)`` adapts the step size per ``mode`` (FROZEN, ADAPT or ADAPT_DOWN; a traced integer);
    ``sign`` multiplies the momentum draw (antithetic coupling, module docstring).
    """

    def init(position, sigma, log_step_size) -> HMCState:
        sigma = jnp.asarray(sigma, jnp.float32)
        ll, g = logl_and_grad(position, sigma)
        return HMCState(position, ll, g, score(position, sigma), sigma,
                        jnp.asarray(log_step_size, jnp.float32))

    def step(key, state: HMCState, mode, sign=1.0) -> tuple[HMCState, HMCInfo]:
        k_mom, k_jit, k_acc = jax.random.split(key, 3)
        h = precision(state.sigma)
        eps = jnp.exp(state.log_step_size)
        jitter = jax.random.uniform(k_jit, (), jnp.float32, 0.75, 1.25)
        if leapfrog_steps is None:
            n = jnp.clip(jnp.ceil(trajectory_length * jitter / eps), 1, max_leapfrog_steps).astype(jnp.int32)
            eps_used = eps
        else:
            n = jnp.asarray(leapfrog_steps, jnp.int32)
            eps_used = eps * jitter
        # no momentum in the k = 0 mode and an infinite mass there: the grid's mean κ stays at 0
        white = jax.random.normal(k_mom, state.position.shape, jnp.float32) * sign
        p0 = fourier_apply(white, without_mean_mode(jnp.sqrt(h)))
        h_inv = inverse_precision(h)

        def inv_mass(p):
            return fourier_apply(p, h_inv)

        kin0 = 0.5 * jnp.sum(p0 * inv_mass(p0))
        x1, p1, ll1, g1, s1, dlp, taken = leapfrog(state.position, p0, state.log_likelihood, state.likelihood_grad,
                                                   state.prior_score, eps_used, n, state.sigma, logl_and_grad,
                                                   score, inv_mass)
        kin1 = 0.5 * jnp.sum(p1 * inv_mass(p1))
        delta_h = (kin1 - kin0) - (ll1 - state.log_likelihood) - dlp
        finite = jnp.isfinite(delta_h) & jnp.isfinite(jnp.sum(x1)) & jnp.isfinite(jnp.sum(g1 + s1))
        divergent = ~finite | (delta_h > max_energy_error)
        acc_prob = jnp.where(divergent, 0.0, jnp.exp(jnp.minimum(0.0, -jnp.where(finite, delta_h, 0.0))))
        if metropolis:
            accept = jax.random.uniform(k_acc, (), jnp.float32) < acc_prob
        else:
            accept = ~divergent

        def pick(new, old):
            return jnp.where(accept, new, old)

        delta = ADAPT_RATE * (acc_prob - target_accept)
        delta = jnp.where(mode == ADAPT_DOWN, jnp.minimum(delta, 0.0), jnp.where(mode == ADAPT, delta, 0.0))
        log_eps = state.log_step_size + delta
        new = HMCState(pick(x1, state.position), pick(ll1, state.log_likelihood), pick(g1, state.likelihood_grad),
                       pick(s1, state.prior_score), state.sigma, log_eps)
        return new, HMCInfo(acc_prob, accept, divergent, delta_h, taken, eps_used)

    return SamplingAlgorithm(init, step)


def run_level(algorithm: SamplingAlgorithm, key: jax.Array, state: HMCState, sigma, n_steps, mode,
              reinit, sign=1.0) -> tuple[HMCState, LevelInfo]:
    """``n_steps`` transitions of one chain at level σ (re-evaluating the cached terms if ``reinit``);
    ``sign``: the chain's antithetic sign (module docstring).

    ``n_steps``, ``mode`` (step-size mode) and ``reinit`` may be traced scalars shared by all chains, so one
    compiled function serves the annealing levels and the draws.
    """
    state = jax.lax.cond(reinit, lambda st: algorithm.init(st.position, sigma, st.log_step_size),
                         lambda st: st, state)
    zero = jnp.asarray(0.0, jnp.float32)
    izero = jnp.asarray(0, jnp.int32)

    def body(i, carry):
        st, acc, div, evals = carry
        # the first transition after a level change is the furthest from equilibrium: no adaptation
        mode_i = jnp.where(reinit & (i == 0), FROZEN, mode)
        st, info = algorithm.step(jax.random.fold_in(key, i), st, mode_i, sign)
        return st, acc + info.acceptance_rate, div + info.is_divergent.astype(jnp.int32), evals + info.num_leapfrog

    state, acc, div, evals = jax.lax.fori_loop(0, n_steps, body, (state, zero, izero, izero))
    evals = evals + jnp.where(reinit, 1, 0).astype(jnp.int32)
    return state, LevelInfo(acc / jnp.maximum(n_steps, 1), div, evals, jnp.exp(state.log_step_size))


def denoise(state: HMCState) -> jnp.ndarray:
    """Tweedie's formula E[κ | κ_σ] = κ_σ + σ² s(κ_σ, σ), from the cached score (no new evaluation).

    The score's mean is left out, so the grid's mean κ stays at 0 (see :func:`without_mean_mode`).
    """
    score = state.prior_score - jnp.mean(state.prior_score)
    return state.position + state.sigma**2 * score


def conditional_draw(key: jax.Array, state: HMCState, mode_var: jnp.ndarray, sign=1.0) -> jnp.ndarray:
    """A draw of the Gaussian-limit p(κ | κ_σ): Tweedie's mean (:func:`denoise`) plus a field whose
    per-mode variance is the conditional variance σ² s_k / (s_k + σ²), with s_k the prior's (effective)
    mode variance ``mode_var`` (the k = 0 mode, the grid mean, stays at 0); its white noise times the
    antithetic ``sign``.

    For a Gaussian prior κ ~ N(0, S) and κ_σ = κ + σu, p(κ | κ_σ) = N(S (S + σ²)⁻¹ κ_σ, σ² S (S + σ²)⁻¹)
    exactly; the mean is Tweedie's formula. Where σ² is not small against s_k (the small scales when
    σ_min is a sizeable fraction of the prior's κ rms) Tweedie's mean alone lacks that variance.
    """
    spread = jnp.sqrt(conditional_variance(state, mode_var))
    white = jax.random.normal(key, state.position.shape, jnp.float32) * sign
    return denoise(state) + fourier_apply(white, spread)


def conditional_variance(state: HMCState, mode_var: jnp.ndarray) -> jnp.ndarray:
    """Per-mode variance σ² s_k/(s_k + σ²) of the Gaussian-limit p(κ | κ_σ) at the state's σ (0 at k = 0)."""
    sig2 = state.sigma**2
    return without_mean_mode(sig2 * mode_var / (mode_var + sig2))


FINAL_CG_TOL, FINAL_CG_MAX_ITER = 1e-5, 200  # the Wiener solves of conditional_draw_given_data


def conditional_draw_given_data(key: jax.Array, state: HMCState, mode_var: jnp.ndarray, data: PaddedShear,
                                sign=1.0) -> tuple[jnp.ndarray, jnp.ndarray]:
    """(draw, mean) of the Gaussian-limit p(κ | κ_σ, data): :func:`conditional_draw` with the data.

    The data depend on κ alone, so p(κ | κ_σ, d) ∝ p(κ | κ_σ) L(d | κ). With p(κ | κ_σ) ≈ N(m, C) (m
    Tweedie's mean, C_k = σ² s_k/(s_k + σ²), as in :func:`conditional_draw`) and the linear shear model
    d = Pκ + n, n ~ N(0, N), this is Gaussian with precision C⁻¹ + Pᵀ N⁻¹ P: its mean is
    m + 𝒲(d − Pm), with 𝒲 the Wiener filter of prior covariance C (massmap.ops.wiener, preconditioned CG;
    C is small against the noise, so it takes a few iterations), and a draw adds
    e = δ − 𝒲(Pδ + n), δ ~ N(0, C), n ~ N(0, N) (perturbation sampling: Cov e = (C⁻¹ + Pᵀ N⁻¹ P)⁻¹),
    with δ and n times the antithetic ``sign``. For a Gaussian prior, κ_σ ~ p(κ_σ | d) followed by this
    draw is an exact posterior sample at any σ; :func:`conditional_draw` leaves out a relative error of
    order σ²/σ_i² in each mode's mean and variance. (The chains draw κ_σ from the annealing
    approximation, the likelihood L_σ of noise σ_i² + σ², exact as σ → 0: in a Gaussian test with
    σ² = σ_i² the samples have 0.945 × the exact posterior variance with the data, 2.5 × without;
    with σ² = 0.03 σ_i², 0.994 × and 1.05 × by the analytic prediction of that test.) The reduced-shear
    model is linearised here (the chains use it in full). The k = 0 mode stays at 0.
    """
    cond_var = conditional_variance(state, mode_var)
    ninv = data_weight(data)  # σ = 0: the noise of the data themselves
    k_kappa, k_n1, k_n2 = jax.random.split(key, 3)

    def wiener(r1, r2):
        return wiener_cg_solve(r1, r2, ninv, cond_var, FINAL_CG_TOL, FINAL_CG_MAX_ITER)[0]

    m = denoise(state)
    s1, s2 = kappa_to_shear(m)
    mean = m + wiener(data.g1 - s1, data.g2 - s2)
    shape = state.position.shape
    delta = fourier_apply(jax.random.normal(k_kappa, shape, jnp.float32) * sign, jnp.sqrt(cond_var))
    noise_std = jnp.sqrt(data.noise_var) * data.mask
    p1, p2 = kappa_to_shear(delta)
    n1 = jax.random.normal(k_n1, shape, jnp.float32) * sign * noise_std
    n2 = jax.random.normal(k_n2, shape, jnp.float32) * sign * noise_std
    return mean + delta - wiener(p1 + n1, p2 + n2), mean


def initial_log_step_size(n_pixels: int, step_size: float | None = None) -> float:
    """log of the initial whitened step size: given, or 1.4 · d^(-1/4).

    For a whitened Gaussian in d dimensions the leapfrog energy error is ≈ N(μ, 2μ) with μ = d ε⁴/32
    and the mean acceptance 2Φ(−√(μ/2)); 1.4 · d^(-1/4) gives ≈ 0.8.
    """
    eps = step_size if step_size is not None else min(1.0, 1.4 * n_pixels ** -0.25)
    return float(np.log(eps))
