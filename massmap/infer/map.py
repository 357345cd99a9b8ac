"""The MAP κ map: annealed, preconditioned, safeguarded gradient ascent on log L_σ + log p_σ (optax).

At each level σ of the annealing schedule (σ_max → σ_min) the ascent direction is the gradient of the
annealed log-posterior (shear likelihood with noise inflated by σ², plus the prior score) multiplied by
the inverse of the Fourier-diagonal Gaussian-limit curvature h_k(σ) (see infer.annealed), here with the
*largest* data weight so that no mode is over-stepped: on a Gaussian problem a learning rate of 1 is a
damped Newton step. The optimiser state (momentum) carries over between levels. For the Gaussian prior
the MAP equals the posterior mean, i.e. the Wiener filter of the smoothed prior at σ_min.

Safeguard: h_k is only the Gaussian-limit curvature. A learned score can be much stiffer than that
(near σ_min, or wherever the network is poorly trained), and a step sized by h_k then over-shoots and
the ascent diverges. Every step is therefore a *candidate*: the change of log π_σ along it is
estimated as the exact likelihood change plus the trapezoidal line integral of the prior score,
Δ ≈ Δ log L_σ + ½ (s₀ + s₁)·(κ₁ − κ₀) (exact for the Gaussian prior; the same estimate as the
sampler's Metropolis test), and the step is accepted only if it is finite and Δ ≥ −tol, with tol a
float32 rounding allowance of ``REL_TOL`` · (1 + |log L_σ|). A rejected step leaves the position
unchanged, resets the momentum (which can point downhill after a change of curvature) and halves the
step scale, which multiplies the optimiser's updates; so a step after a rejection is a preconditioned
gradient step, an ascent direction, and a small enough one is accepted. The scale only decreases,
across levels too (like the sampler's step size while annealing). The scores of an accepted
candidate are reused by the next step, so a step costs one likelihood-gradient and one score evaluation
either way (plus one per level, where σ changes).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from massmap.errors import SamplingError
from massmap.infer.annealed import sigma_schedule
from massmap.infer.likelihood import PaddedShear, log_likelihood_and_grad, max_weight
from massmap.infer.preconditioner import fourier_apply, inverse_precision, fourier_precision, prior_spectrum
from massmap.ops.shear import crop_map
from massmap.prior.base import single_map_score

REL_TOL = 1e-5  # a step may lower log π_σ by at most this fraction of (1 + |log L_σ|) (float32 rounding)
BACKTRACK = 0.5  # step-scale factor after a rejected step


class MAPState(NamedTuple):
    position: jnp.ndarray  # κ on the padded grid
    opt_state: optax.OptState
    log_likelihood: jnp.ndarray  # log L_σ at position
    likelihood_grad: jnp.ndarray  # ∇ log L_σ at position
    prior_score: jnp.ndarray  # s(position, σ)
    step_scale: jnp.ndarray  # multiplies the optimiser's updates; halved after each rejected step


class MAPInfo(NamedTuple):
    log_likelihood: jnp.ndarray  # log L_σ at the current position
    step_rms: jnp.ndarray  # rms of the preconditioned ascent direction (→ 0 at convergence)
    step_scale: jnp.ndarray  # safeguard's step scale (1 = never backtracked)
    n_rejected: jnp.ndarray  # rejected candidate steps (at this level, in annealed_map)
    finite: jnp.ndarray  # whether log L_σ, its gradient and the score are finite at the position
    stable: jnp.ndarray  # annealed_map: whether the level was run and ended stable (see there)


def build_map(logl_and_grad: Callable, score: Callable, precision: Callable,
              optimizer: optax.GradientTransformation) -> tuple[Callable, Callable]:
    """(init, step) of safeguarded preconditioned ascent.

    ``init(position, sigma, step_scale=1) -> state`` (evaluates the cached terms at ``sigma``);
    ``step(state, sigma) -> (state, info)``, with ``sigma`` the level the cached terms belong to.
    """

    def init(position, sigma, step_scale=1.0, opt_state=None) -> MAPState:
        ll, g = logl_and_grad(position, sigma)
        opt_state = optimizer.init(position) if opt_state is None else opt_state
        return MAPState(position, opt_state, ll, g, score(position, sigma), jnp.asarray(step_scale, jnp.float32))

    def step(state: MAPState, sigma) -> tuple[MAPState, MAPInfo]:
        x0 = state.position
        direction = fourier_apply(state.likelihood_grad + state.prior_score, inverse_precision(precision(sigma)))
        updates, opt_state = optimizer.update(-direction, state.opt_state, x0)
        x1 = optax.apply_updates(x0, jax.tree_util.tree_map(lambda u: state.step_scale * u, updates))
        ll1, g1 = logl_and_grad(x1, sigma)
        s1 = score(x1, sigma)
        gain = (ll1 - state.log_likelihood) + 0.5 * jnp.sum((state.prior_score + s1) * (x1 - x0))
        tol = REL_TOL * (1.0 + jnp.abs(state.log_likelihood))
        accept = jnp.isfinite(gain) & jnp.isfinite(jnp.sum(x1)) & jnp.isfinite(jnp.sum(g1 + s1)) & (gain >= -tol)

        def pick(new, old):
            return jax.tree_util.tree_map(lambda a, b: jnp.where(accept, a, b), new, old)

        new = MAPState(pick(x1, x0), pick(opt_state, optimizer.init(x0)), pick(ll1, state.log_likelihood),
                       pick(g1, state.likelihood_grad), pick(s1, state.prior_score),
                       jnp.where(accept, state.step_scale, BACKTRACK * state.step_scale))
        finite = jnp.isfinite(new.log_likelihood) & jnp.isfinite(jnp.sum(new.likelihood_grad + new.prior_score))
        info = MAPInfo(new.log_likelihood, jnp.sqrt(jnp.mean(direction**2)), new.step_scale,
                       (~accept).astype(jnp.int32), finite, finite)
        return new, info

    return init, step


def annealed_map(logl_and_grad: Callable, score: Callable, precision: Callable, position: jnp.ndarray,
                 schedule: jnp.ndarray, steps_per_level: int, learning_rate: float = 1.0,
                 momentum: float = 0.9) -> tuple[jnp.ndarray, MAPInfo]:
    """Run ``steps_per_level`` ascent steps at every σ of ``schedule``; returns (κ, info at each level's end).

    A level is *stable* when it ends finite and with log L_σ(κ) ≥ log L_σ(0) − tol: with the prior's
    mode at κ = 0 (a Gaussian prior; a κ prior, up to its small skewness) the MAP always explains the
    data at least as well as κ = 0, since log p_σ(κ) ≤ log p_σ(0). A learned score with a stiff,
    wrong-signed component at small σ makes log π_σ unbounded: the safeguarded ascent then accepts ever
    larger steps away from the data. At the first unstable level the ascent returns the previous level's
    κ and skips the remaining levels (``info.stable`` is False from there; the skipped levels repeat the
    first unstable level's other fields). ``info.n_rejected`` counts a level's rejected steps. Pure; jit it whole. Score
    evaluations: at most len(schedule) · (steps_per_level + 1).
    """
    optimizer = optax.sgd(learning_rate, momentum=momentum if momentum > 0 else None, nesterov=momentum > 0)
    init, step = build_map(logl_and_grad, score, precision, optimizer)
    schedule = jnp.asarray(schedule, jnp.float32)

    def run_level(state, sigma):
        state = init(state.position, sigma, state.step_scale, state.opt_state)  # cached terms at the new σ

        def body(_, carry):
            st, rejected = carry
            st, info = step(st, sigma)
            return st, rejected + info.n_rejected

        state, rejected = jax.lax.fori_loop(0, steps_per_level - 1, body, (state, jnp.asarray(0, jnp.int32)))
        state, info = step(state, sigma)
        ll_zero, _ = logl_and_grad(jnp.zeros_like(state.position), sigma)
        stable = info.finite & (info.log_likelihood >= ll_zero - REL_TOL * (1.0 + jnp.abs(ll_zero)))
        return state, info._replace(n_rejected=rejected + info.n_rejected, stable=stable)

    def level(carry, sigma):
        state, last = carry

        def skip(st, _sigma):
            return st, last._replace(stable=jnp.asarray(False))

        new, info = jax.lax.cond(last.stable, run_level, skip, state, sigma)
        new = jax.lax.cond(info.stable, lambda: new, lambda: state)  # unstable: keep the previous level's κ
        return (new, info), info

    zero = jnp.zeros_like(position)  # the cached terms are evaluated by the first level's init
    state0 = MAPState(position, optimizer.init(position), jnp.asarray(0.0, jnp.float32), zero, zero,
                      jnp.asarray(1.0, jnp.float32))
    info0 = MAPInfo(jnp.asarray(0.0, jnp.float32), jnp.asarray(0.0, jnp.float32), jnp.asarray(1.0, jnp.float32),
                    jnp.asarray(0, jnp.int32), jnp.asarray(True), jnp.asarray(True))
    (state, _), infos = jax.lax.scan(level, (state0, info0), schedule)
    return state.position, infos


@dataclass(frozen=True)
class MapSettings:
    """The annealing schedule (as the sampler's) and the optimiser of the MAP ascent."""

    sigma_max: float
    sigma_min: float
    n_levels: int = 10
    steps_per_level: int = 30
    learning_rate: float = 1.0  # on the preconditioned gradient (1 = Newton step in the Gaussian limit)
    momentum: float = 0.9  # Nesterov momentum of optax.sgd
    reduced_shear: bool = False

    @property
    def schedule(self) -> np.ndarray:
        return sigma_schedule(self.sigma_max, self.sigma_min, self.n_levels)


class MapEstimate(NamedTuple):
    """The MAP κ on the unpadded grid and, per annealing level, how the ascent went."""

    kappa: np.ndarray  # (ny, nx) float32
    sigma: np.ndarray  # the schedule (float64)
    step_rms: np.ndarray  # per level
    step_scale: np.ndarray
    n_rejected: np.ndarray
    stable: np.ndarray  # int, 1 = the level ended stable
    sigma_final: float  # σ of the level whose κ is returned
    n_score_evals: int


@functools.lru_cache(maxsize=8)
def _compiled_map(settings: tuple, prior) -> Callable:
    reduced, steps, lr, momentum = settings

    def run_map(data, mode_var, schedule):
        return annealed_map(lambda k, s: log_likelihood_and_grad(k, data, s, reduced), single_map_score(prior),
                            lambda s: fourier_precision(mode_var, max_weight(data, s), s),
                            jnp.zeros_like(mode_var), schedule, steps, lr, momentum)

    return jax.jit(run_map)


def map_estimate(key: jax.Array, data: PaddedShear, prior, settings: MapSettings, *, pad: int,
                 reference=None, spectrum: tuple | None = None) -> MapEstimate:
    """The annealed MAP of κ for padded shear ``data`` and ``prior``, cropped to the unpadded map.

    The preconditioner's spectrum is the sampler's (:func:`~massmap.infer.preconditioner.prior_spectrum`
    with ``key``, unless given as ``spectrum``). :class:`SamplingError` if the first level already fails.
    """
    schedule = settings.schedule
    spectrum, _ = spectrum or prior_spectrum(prior, key, tuple(data.g1.shape), settings.sigma_min, reference)
    run = _compiled_map((settings.reduced_shear, settings.steps_per_level, settings.learning_rate,
                         settings.momentum), prior)
    kappa, info = run(data, spectrum, jnp.asarray(schedule))
    kappa = np.asarray(crop_map(kappa, pad))
    stable = np.asarray(info.stable, bool)
    # the safeguard only accepts finite steps; an unstable first level means the score or the
    # likelihood is non-finite at κ = 0, or the prior drives κ away from the data from the start
    if not np.all(np.isfinite(kappa)) or not stable[0]:
        raise SamplingError(f"the MAP ascent failed at the first annealing level (prior '{prior.name}': NaN/inf "
                            "score or a score that drives kappa away from the data); check the prior")
    n_run = min(len(schedule), int(stable.sum()) + 1)  # levels run: the stable ones and the first unstable
    return MapEstimate(kappa=kappa, sigma=np.asarray(schedule, np.float64),
                       step_rms=np.asarray(info.step_rms, np.float64),
                       step_scale=np.asarray(info.step_scale, np.float64),
                       n_rejected=np.asarray(info.n_rejected, np.int64), stable=stable.astype(np.int64),
                       sigma_final=float(schedule[int(stable.sum()) - 1]),
                       n_score_evals=int(n_run * (settings.steps_per_level + 1)))
