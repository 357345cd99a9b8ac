"""The MAP κ map: annealed, preconditioned gradient ascent on log L_σ + log p_σ with an optax optimiser.

At each level σ of the annealing schedule (σ_max → σ_min) the ascent direction is the gradient of the
annealed log-posterior (shear likelihood with noise inflated by σ², plus the prior score) multiplied by
the inverse of the Fourier-diagonal Gaussian-limit curvature h_k(σ) (see infer.annealed), here with the
*largest* data weight so that no mode is over-stepped: on a Gaussian problem a learning rate of 1 is a
damped Newton step. The optimiser state (momentum) carries over between levels. For the Gaussian prior
the MAP equals the posterior mean, i.e. the Wiener filter of the smoothed prior at σ_min.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

from massmap.infer.annealed import fourier_apply


class MAPState(NamedTuple):
    position: jnp.ndarray  # κ on the padded grid
    opt_state: optax.OptState


class MAPInfo(NamedTuple):
    log_likelihood: jnp.ndarray  # log L_σ at the new position
    step_rms: jnp.ndarray  # rms of the preconditioned ascent direction (→ 0 at convergence)


def build_map(logl_and_grad: Callable, score: Callable, precision: Callable,
              optimizer: optax.GradientTransformation) -> tuple[Callable, Callable]:
    """(init, step) of preconditioned ascent; ``step(state, sigma) -> (state, info)``."""

    def init(position) -> MAPState:
        return MAPState(position, optimizer.init(position))

    def step(state: MAPState, sigma) -> tuple[MAPState, MAPInfo]:
        ll, g = logl_and_grad(state.position, sigma)
        direction = fourier_apply(g + score(state.position, sigma), 1.0 / precision(sigma))
        updates, opt_state = optimizer.update(-direction, state.opt_state, state.position)
        position = optax.apply_updates(state.position, updates)
        return MAPState(position, opt_state), MAPInfo(ll, jnp.sqrt(jnp.mean(direction**2)))

    return init, step


def annealed_map(logl_and_grad: Callable, score: Callable, precision: Callable, position: jnp.ndarray,
                 schedule: jnp.ndarray, steps_per_level: int, learning_rate: float = 1.0,
                 momentum: float = 0.9) -> tuple[jnp.ndarray, MAPInfo]:
    """Run ``steps_per_level`` ascent steps at every σ of ``schedule``; returns (κ, info at each level's end).

    Pure; jit it whole. Score evaluations: len(schedule) · steps_per_level.
    """
    optimizer = optax.sgd(learning_rate, momentum=momentum if momentum > 0 else None, nesterov=momentum > 0)
    init, step = build_map(logl_and_grad, score, precision, optimizer)

    def level(state, sigma):
        def body(_, carry):
            return step(carry[0], sigma)

        first = step(state, sigma)
        state, info = jax.lax.fori_loop(1, steps_per_level, body, first)
        return state, info

    state, infos = jax.lax.scan(level, init(position), jnp.asarray(schedule, jnp.float32))
    return state.position, infos
