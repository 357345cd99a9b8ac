"""Gaussian initial conditions and Lagrangian perturbation theory (1LPT, 2LPT) displacements.

The linear density δ_L (normalised to a = 1, D1(1) = 1) is drawn on the particle lattice of n³ cells of
side Δ = L/n: white noise w_x of unit variance, δ_L(k) = w(k) √(P_lin(k)/Δ³) (numpy ``fftn``
convention, so that ⟨|δ_k|²⟩ = n³ P(k)/Δ³ and P̂ = Δ³ |δ_k|² / n³).

With ∇²φ1 = δ_L and ∇²φ2 = Σ_{i>j} [φ1,ii φ1,jj − (φ1,ij)²] (Scoccimarro 1998), particles start at

    x = q + D1 s1 + D2 s2,     s1 = −∇φ1,   s2 = ∇φ2,   D2 ≈ −(3/7) D1²,
    p = a² dx/dt = a² E(a) [f1 D1 s1 + f2 D2 s2]          (time in 1/H0, lengths in Mpc/h).
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class LPTFactors(NamedTuple):
    """Growth at a_init (plain floats, from :func:`massmap.cosmology.growth_factors` and hubble_e)."""

    a: float
    e: float  # E(a) = H/H0
    d1: float
    f1: float
    d2: float
    f2: float


def _fftfreq3(n: int, box_size: float):
    kf = 2 * jnp.pi / box_size
    k = jnp.fft.fftfreq(n, 1.0 / n).astype(jnp.float32) * kf
    kr = jnp.fft.rfftfreq(n, 1.0 / n).astype(jnp.float32) * kf
    return k[:, None, None], k[None, :, None], kr[None, None, :]


def linear_modes(key: jax.Array, n: int, box_size: float, k_table: jnp.ndarray, pk_table: jnp.ndarray) -> jnp.ndarray:
    """rfftn of a Gaussian linear δ_L at a = 1 on an n³ grid, with P(k) interpolated log-log from the table."""
    white = jax.random.normal(key, (n, n, n), jnp.float32)
    kvec = _fftfreq3(n, box_size)
    kmag = jnp.sqrt(kvec[0] ** 2 + kvec[1] ** 2 + kvec[2] ** 2)
    logk = jnp.log(jnp.where(kmag > 0, kmag, 1.0))
    pk = jnp.exp(jnp.interp(logk, jnp.log(k_table), jnp.log(pk_table)))
    pk = jnp.where(kmag > 0, pk, 0.0)
    cell = box_size / n
    return jnp.fft.rfftn(white) * jnp.sqrt(pk / cell**3).astype(jnp.float32)


def lpt_displacements(delta_k: jnp.ndarray, box_size: float, order: int = 2):
    """Displacement fields s1 and s2 (each (n, n, n, 3), Mpc/h) of the modes ``delta_k`` (rfftn of δ_L).

    ``s2`` is zero when ``order`` is 1. The Nyquist planes are kept (they are real for an even n).
    """
    n = delta_k.shape[0]
    shape = (n, n, n)
    kvec = _fftfreq3(n, box_size)
    k2 = kvec[0] ** 2 + kvec[1] ** 2 + kvec[2] ** 2
    inv_k2 = jnp.where(k2 > 0, 1.0 / jnp.where(k2 > 0, k2, 1.0), 0.0)
    phi1 = -delta_k * inv_k2  # ∇²φ1 = δ
    s1 = jnp.stack([jnp.fft.irfftn(-1j * kvec[i] * phi1, s=shape) for i in range(3)], axis=-1)
    if order == 1:
        return s1, jnp.zeros_like(s1)

    def hess(i, j):
        return jnp.fft.irfftn(-kvec[i] * kvec[j] * phi1, s=shape)

    p00, p11, p22 = hess(0, 0), hess(1, 1), hess(2, 2)
    src = p00 * p11 + p00 * p22 + p11 * p22
    for i, j in ((0, 1), (0, 2), (1, 2)):
        src = src - hess(i, j) ** 2
    phi2 = -jnp.fft.rfftn(src) * inv_k2  # ∇²φ2 = src
    s2 = jnp.stack([jnp.fft.irfftn(1j * kvec[i] * phi2, s=shape) for i in range(3)], axis=-1)
    return s1, s2


def lattice(n: int, box_size: float) -> jnp.ndarray:
    """Unperturbed particle positions q (n³, 3) at the cell centres (i + 1/2) L/n, in Mpc/h.

    Half a cell off the mesh nodes, CIC assignment of a slightly displaced lattice is linear in the
    displacement (a central difference); on the nodes it would switch between forward and backward
    differences with the sign of the displacement, adding grid-scale noise to all k.
    """
    i = (jnp.arange(n, dtype=jnp.float32) + 0.5) * (box_size / n)
    return jnp.stack(jnp.meshgrid(i, i, i, indexing="ij"), axis=-1).reshape(-1, 3)


def lpt_initial_conditions(delta_k: jnp.ndarray, box_size: float, growth: LPTFactors, order: int = 2):
    """Positions (P, 3) in [0, L) Mpc/h and momenta p = a² dx/dt (P, 3) at ``growth.a`` (1LPT or 2LPT)."""
    n = delta_k.shape[0]
    s1, s2 = lpt_displacements(delta_k, box_size, order)
    s1 = s1.reshape(-1, 3)
    s2 = s2.reshape(-1, 3)
    g = growth
    pos = lattice(n, box_size) + g.d1 * s1 + g.d2 * s2
    mom = (g.a**2 * g.e) * (g.f1 * g.d1 * s1 + g.f2 * g.d2 * s2)
    return jnp.mod(pos, box_size).astype(jnp.float32), mom.astype(jnp.float32)
