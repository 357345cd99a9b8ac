"""Wiener filtering of shear into κ: the closed form in Fourier space and preconditioned CG.

Model: γ = Pκ + n, κ ~ N(0, S), n ~ N(0, N) diagonal per pixel and per shear component (N⁻¹ = 0 where
there is no data). The Wiener (posterior-mean) map solves

    (S⁻¹ + Pᵀ N⁻¹ P) κ = Pᵀ N⁻¹ γ.

With uniform noise σ² per component and no mask, P is unitary on ℓ ≠ 0 modes and the solution is
diagonal in Fourier space: κ̂ = s_k / (s_k + σ²) · κ̂_E, with κ_E the periodic Kaiser-Squires map and
s_k = C_ℓ/ΔΩ (see ops.spectra.mode_variance); its posterior variance per mode is (1/s_k + 1/σ²)⁻¹.

In general we solve the whitened system (I + S^½ Pᵀ N⁻¹ P S^½) x = S^½ Pᵀ N⁻¹ γ, κ = S^½ x, which is
symmetric positive definite even where s_k = 0 (ℓ = 0), with conjugate gradients preconditioned by its
Fourier-diagonal part 1 + s_k ⟨N⁻¹⟩.
"""
from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

from massmap.ops.fourier import fourier_multiply
from massmap.ops.shear import kappa_to_shear, shear_adjoint, shear_to_kappa


def wiener_fourier(g1: jnp.ndarray, g2: jnp.ndarray, mode_var: jnp.ndarray, noise_var: float) -> jnp.ndarray:
    """Closed-form Wiener map for uniform per-component noise variance and no mask (periodic)."""
    ke, _ = shear_to_kappa(g1, g2)
    filt = mode_var / (mode_var + noise_var)
    return fourier_multiply(ke, filt)


def wiener_fourier_variance(mode_var: jnp.ndarray, noise_var: float) -> jnp.ndarray:
    """Per-mode posterior variance (1/s + 1/σ²)⁻¹ = sσ²/(s + σ²) of the closed-form Wiener problem."""
    return mode_var * noise_var / (mode_var + noise_var)


class CGState(NamedTuple):
    x: jnp.ndarray  # current solution
    r: jnp.ndarray  # residual b − A x
    z: jnp.ndarray  # preconditioned residual M⁻¹ r
    p: jnp.ndarray  # search direction
    rz: jnp.ndarray  # ⟨r, z⟩
    iteration: jnp.ndarray


class CGInfo(NamedTuple):
    iterations: int
    residual: float  # |b − A x| / |b| at exit
    converged: bool


def cg_init(apply_a: Callable, apply_minv: Callable, b: jnp.ndarray, x0: jnp.ndarray | None = None) -> CGState:
    """Preconditioned conjugate gradients: the state before the first step."""
    x = jnp.zeros_like(b) if x0 is None else x0
    r = b - apply_a(x)
    z = apply_minv(r)
    return CGState(x, r, z, z, jnp.vdot(r, z).real, jnp.asarray(0))


def cg_step(apply_a: Callable, apply_minv: Callable, state: CGState) -> CGState:
    """One PCG iteration (Hestenes-Stiefel with preconditioner)."""
    ap = apply_a(state.p)
    alpha = state.rz / jnp.vdot(state.p, ap).real
    x = state.x + alpha * state.p
    r = state.r - alpha * ap
    z = apply_minv(r)
    rz = jnp.vdot(r, z).real
    p = z + (rz / state.rz) * state.p
    return CGState(x, r, z, p, rz, state.iteration + 1)


def cg_run(apply_a: Callable, apply_minv: Callable, b: jnp.ndarray, tol: float, max_iter: int,
           x0: jnp.ndarray | None = None) -> CGState:
    """Iterate :func:`cg_step` until |r|/|b| < tol or ``max_iter`` steps (pure; jit it whole)."""
    bnorm = jnp.linalg.norm(b)
    bnorm = jnp.where(bnorm > 0, bnorm, 1.0)

    def cond(s):
        return (jnp.linalg.norm(s.r) / bnorm >= tol) & (s.iteration < max_iter)

    return jax.lax.while_loop(cond, lambda s: cg_step(apply_a, apply_minv, s), cg_init(apply_a, apply_minv, b, x0))


@partial(jax.jit, static_argnames=("tol", "max_iter"))
def wiener_cg_solve(g1, g2, ninv, mode_var, tol, max_iter):
    """(κ, iterations, relative residual) of the whitened Wiener system (module docstring); pure and
    jittable (vmap it over maps). ``ninv`` = N⁻¹ per pixel (0 = no data), ``mode_var`` the prior's s_k."""
    sqrt_s = jnp.sqrt(mode_var)

    def apply_a(x):
        s1, s2 = kappa_to_shear(fourier_multiply(x, sqrt_s))
        return x + fourier_multiply(shear_adjoint(ninv * s1, ninv * s2), sqrt_s)

    precond = 1.0 + mode_var * jnp.mean(ninv)

    def apply_minv(r):
        return fourier_multiply(r, 1.0 / precond)

    b = fourier_multiply(shear_adjoint(ninv * g1, ninv * g2), sqrt_s)
    state = cg_run(apply_a, apply_minv, b, tol, max_iter)
    bnorm = jnp.maximum(jnp.linalg.norm(b), jnp.finfo(jnp.float32).tiny)
    return fourier_multiply(state.x, sqrt_s), state.iteration, jnp.linalg.norm(state.r) / bnorm


def wiener_cg(g1: jnp.ndarray, g2: jnp.ndarray, inv_noise_var: jnp.ndarray, mode_var: jnp.ndarray,
              tol: float = 1e-5, max_iter: int = 1000) -> tuple[jnp.ndarray, CGInfo]:
    """Wiener map for a mask and per-pixel noise (``inv_noise_var`` = N⁻¹ per pixel, 0 = no data).

    All arrays are on the (periodic, possibly padded) solution grid; returns (κ, info), where the
    info's residual is the relative residual |b − A x|/|b| of the whitened system.
    """
    f32 = partial(jnp.asarray, dtype=jnp.float32)
    kappa, iters, res = wiener_cg_solve(f32(g1), f32(g2), f32(inv_noise_var), f32(mode_var),
                                         tol=float(tol), max_iter=int(max_iter))
    res = float(res)
    return kappa.astype(jnp.float32), CGInfo(int(iters), res, res < tol)
