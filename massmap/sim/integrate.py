"""FastPM kick-drift-kick integration with growth-corrected factors (Feng et al. 2016).

Equations of motion (lengths in Mpc/h, time in 1/H0, p = a² dx/dt):

    dx/da = p / (a³ E),       dp/da = (3/2) Ω_m g(x) / (a² E),      g = −∇∇⁻²δ  (pm.acceleration_mesh).

In linear theory a particle moves as x = q + D1(a) s, so p = G_p(a) s with G_p = a³ E dD1/da and
(3/2) Ω_m g = G_f(a) s with G_f = a² E dG_p/da = (3/2) Ω_m D1. FastPM replaces the integrals of the
time-stepping by the ones that are exact for such a trajectory:

    kick  a0 → a1 with the force at ac:   p += (3/2) Ω_m g(ac) · [G_p(a1) − G_p(a0)] / G_f(ac)
    drift a0 → a1 with the momentum at ac: x += p(ac) · [D1(a1) − D1(a0)] / G_p(ac)

so the linear growth of large scales is exact for any number of steps. One step a_k → a_{k+1} is
kick(a_k → a_h, force at a_k), drift(a_k → a_{k+1}, momentum at a_h), kick(a_h → a_{k+1}, force at
a_{k+1}), with a_h = √(a_k a_{k+1}); the force at a_{k+1} is kept in the state for the next step.

Takes a :class:`massmap.cosmology.Cosmology` (for the step factors), scale factors, and the mesh size,
box side (Mpc/h) and Ω_m as plain numbers.
"""
from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from massmap.cosmology import Cosmology, growth_factors, growth_force_factor, growth_momentum_factor
from massmap.sim.pm import pm_accelerations


class PMState(NamedTuple):
    positions: jnp.ndarray  # (P, 3) Mpc/h in [0, L)
    momenta: jnp.ndarray  # (P, 3) p = a² dx/dt, Mpc/h · H0
    accelerations: jnp.ndarray  # (P, 3) (3/2) Ω_m g at the current a
    a: jnp.ndarray  # scalar scale factor


class PMInfo(NamedTuple):
    a: jnp.ndarray  # scale factor reached by the step
    delta: jnp.ndarray  # (n, n, n) CIC density contrast at the new positions


class StepFactors(NamedTuple):
    """Per-step scalars (arrays of length n_steps, float32) of the growth-corrected KDK scheme."""

    a_next: np.ndarray
    kick1: np.ndarray
    drift: np.ndarray
    kick2: np.ndarray


class Integrator(NamedTuple):
    init: Callable[..., PMState]
    step: Callable[..., tuple[PMState, PMInfo]]


def kdk_factors(cosmo: Cosmology, a_steps: np.ndarray) -> StepFactors:
    """Growth-corrected kick and drift factors for the step boundaries ``a_steps`` (n_steps + 1 values)."""
    a0 = np.asarray(a_steps[:-1], np.float64)
    a1 = np.asarray(a_steps[1:], np.float64)
    ah = np.sqrt(a0 * a1)
    gp = lambda a: growth_momentum_factor(cosmo, a)  # noqa: E731
    gf = lambda a: growth_force_factor(cosmo, a)  # noqa: E731
    d1 = lambda a: growth_factors(cosmo, a).d1  # noqa: E731
    f32 = lambda v: np.asarray(v, np.float32)  # noqa: E731
    return StepFactors(a_next=f32(a1), kick1=f32((gp(ah) - gp(a0)) / gf(a0)),
                       drift=f32((d1(a1) - d1(a0)) / gp(ah)), kick2=f32((gp(a1) - gp(ah)) / gf(a1)))


def pm_integrator(mesh: int, box_size: float, omega_m: float, n_comp: int = 2, donate: bool = False) -> Integrator:
    """Jitted init/step functions for an N-body run on a ``mesh``³ force mesh in a box of ``box_size`` Mpc/h.

    ``init(positions, momenta, a)`` → PMState; ``step(state, factors_k)`` → (PMState, PMInfo) where
    ``factors_k`` is ``StepFactors`` indexed at one step (four scalars). With ``donate`` the step
    reuses the buffers of the state it is given (which must not be used afterwards), saving memory.
    """
    amp = 1.5 * omega_m

    def accelerations(pos):
        g, delta = pm_accelerations(pos, mesh, box_size, n_comp)
        return amp * g, delta

    @jax.jit
    def init(positions, momenta, a):
        acc, _ = accelerations(positions)
        return PMState(positions, momenta, acc, jnp.asarray(a, jnp.float32))

    @partial(jax.jit, donate_argnums=(0,) if donate else ())
    def step(state: PMState, f: StepFactors):
        return kdk_step(state, f, accelerations, box_size)

    return Integrator(init, step)


def kdk_step(state: PMState, f: StepFactors, accelerations, box_size: float) -> tuple[PMState, PMInfo]:
    """One kick-drift-kick step: half kick with the cached accelerations, drift (periodic wrap), new
    accelerations ``accelerations(x) -> (a, δ)``, half kick (shared by the single-device and sharded PM)."""
    p = state.momenta + state.accelerations * f.kick1
    x = jnp.mod(state.positions + p * f.drift, box_size)
    acc, delta = accelerations(x)
    p = p + acc * f.kick2
    new = PMState(x, p, acc, jnp.asarray(f.a_next, jnp.float32))
    return new, PMInfo(new.a, delta)
