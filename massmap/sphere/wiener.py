"""Wiener filtering of shear into κ on the sphere: the harmonic closed form and conjugate gradients.

Model: γ = Pκ + n with κ_ℓm ~ N(0, C_ℓ), P the spherical lensing operator (κ_ℓm → native shear maps,
:func:`massmap.sphere.harmonic.kappa_to_shear`) and n white per pixel and component with variance σ_p²
(N⁻¹ = 0 where there is no data). The Wiener (posterior-mean) map solves

    (C⁻¹ + Pᵀ N⁻¹ P) κ = Pᵀ N⁻¹ γ.

Full sky with uniform σ²: Pᵀ P = f_ℓ² / ΔΩ per multipole, so the solution is diagonal in ℓ,

    κ_ℓm = C_ℓ f_ℓ² / (C_ℓ f_ℓ² + N_ℓ) · κ^KS_ℓm,   N_ℓ = σ² ΔΩ (ΔΩ the pixel solid angle),

i.e. C_ℓ / (C_ℓ + N_ℓ / f_ℓ²) applied to the Kaiser-Squires map (f_ℓ → 1 for ℓ ≫ 1).

Otherwise conjugate gradients (:func:`massmap.ops.wiener.cg_init`/``cg_step``) on the whitened
system (I + C^½ Pᵀ N⁻¹ P C^½) x = C^½ Pᵀ N⁻¹ γ, κ = C^½ x, over real packed a_ℓm vectors
(:func:`massmap.sphere.harmonic.pack_alm`), preconditioned by its ℓ-diagonal part
1 + C_ℓ f_ℓ² ⟨N⁻¹⟩ / ΔΩ. The transforms are healpy's (CPU, not traced by JAX), so the loop runs in Python.
"""
from __future__ import annotations

from typing import Callable, NamedTuple

import healpy as hp
import jax.numpy as jnp
import numpy as np

from massmap.ops.wiener import CGInfo, CGState, cg_init, cg_step
from massmap.sphere.harmonic import (ell_of_alm, kappa_to_shear, ks_factor, pack_alm, pixel_solid_angle,
                                     shear_adjoint, shear_to_kappa_alm, unpack_alm)


def cl_at_multipoles(ell_tab: np.ndarray, cl_tab: np.ndarray, lmax: int) -> np.ndarray:
    """C_ℓ at ℓ = 0..lmax from a table (log-log interpolation, end values held outside); 0 for ℓ < 2."""
    ell_tab = np.asarray(ell_tab, np.float64)
    cl_tab = np.asarray(cl_tab, np.float64)
    keep = (ell_tab > 0) & (cl_tab > 0)
    order = np.argsort(ell_tab[keep])
    lt, ct = ell_tab[keep][order], cl_tab[keep][order]
    if lt.size < 2:
        raise ValueError("C_ell table needs at least two rows with ell > 0 and C_ell > 0")
    ell = np.arange(lmax + 1, dtype=np.float64)
    out = np.zeros(lmax + 1)
    out[2:] = np.exp(np.interp(np.log(ell[2:]), np.log(lt), np.log(ct)))
    return out


def wiener_filter_ell(cl: np.ndarray, noise_var: float, nside: int) -> np.ndarray:
    """The closed-form filter W_ℓ = C_ℓ f_ℓ² / (C_ℓ f_ℓ² + σ² ΔΩ) applied to κ^KS (full sky, uniform noise)."""
    cl = np.asarray(cl, np.float64)
    f2 = ks_factor(cl.size - 1) ** 2
    nl = noise_var * pixel_solid_angle(nside)
    denom = cl * f2 + nl
    return np.where(denom > 0, cl * f2 / np.where(denom > 0, denom, 1.0), 0.0)


def wiener_harmonic(g1: np.ndarray, g2: np.ndarray, noise_var: float, cl: np.ndarray,
                    iterations: int = 3) -> np.ndarray:
    """Closed-form Wiener κ_ℓm for full-sky data with uniform per-component noise variance ``noise_var``."""
    lmax = cl.size - 1
    ke, _ = shear_to_kappa_alm(g1, g2, lmax, iterations)
    return hp.almxfl(ke, wiener_filter_ell(cl, noise_var, hp.npix2nside(np.asarray(g1).size)))


class SphereWienerSystem(NamedTuple):
    """The whitened linear system of the Wiener filter on packed a_ℓm vectors."""

    apply_a: Callable  # x → (I + C^½ Pᵀ N⁻¹ P C^½) x
    apply_minv: Callable  # preconditioner (ℓ-diagonal)
    b: jnp.ndarray  # C^½ Pᵀ N⁻¹ γ
    sqrt_c: np.ndarray  # per packed coefficient
    lmax: int


def wiener_system(g1: np.ndarray, g2: np.ndarray, inv_noise_var: np.ndarray, cl: np.ndarray) -> SphereWienerSystem:
    """Build the whitened Wiener system for native shear maps, N⁻¹ per pixel (0 = no data) and C_ℓ (ℓ ≤ lmax)."""
    cl = np.asarray(cl, np.float64)
    lmax = cl.size - 1
    nside = hp.npix2nside(np.asarray(g1).size)
    ninv = np.asarray(inv_noise_var, np.float64)
    ell = ell_of_alm(lmax)
    ell_packed = np.concatenate([ell[: lmax + 1], ell[lmax + 1:], ell[lmax + 1:]])
    sqrt_c = np.sqrt(cl[ell_packed])
    f2 = ks_factor(lmax)[ell_packed] ** 2
    precond = 1.0 + cl[ell_packed] * f2 * ninv.mean() / pixel_solid_angle(nside)

    def apply_a(x):
        k = unpack_alm(sqrt_c * np.asarray(x, np.float64), lmax)
        s1, s2 = kappa_to_shear(k, nside, lmax)
        back = pack_alm(shear_adjoint(ninv * s1, ninv * s2, lmax), lmax)
        return jnp.asarray(np.asarray(x, np.float64) + sqrt_c * back, jnp.float32)

    def apply_minv(r):
        return jnp.asarray(np.asarray(r, np.float64) / precond, jnp.float32)

    b = sqrt_c * pack_alm(shear_adjoint(ninv * np.asarray(g1, np.float64), ninv * np.asarray(g2, np.float64), lmax), lmax)
    return SphereWienerSystem(apply_a, apply_minv, jnp.asarray(b, jnp.float32), sqrt_c, lmax)


def wiener_cg_sphere(g1: np.ndarray, g2: np.ndarray, inv_noise_var: np.ndarray, cl: np.ndarray, tol: float = 1e-5,
                     max_iter: int = 1000, callback: Callable[[int, float], None] | None = None
                     ) -> tuple[np.ndarray, CGInfo]:
    """Wiener κ_ℓm for a mask and per-pixel noise by preconditioned CG; returns (κ_ℓm, info).

    ``callback(iteration, relative_residual)`` is called after every step (e.g. a progress bar). The
    residual is |b − A x| / |b| of the whitened system; CG stops below ``tol`` or after ``max_iter`` steps.
    """
    system = wiener_system(g1, g2, inv_noise_var, cl)
    bnorm = float(jnp.linalg.norm(system.b))
    bnorm = bnorm if bnorm > 0 else 1.0
    state: CGState = cg_init(system.apply_a, system.apply_minv, system.b)
    res = float(jnp.linalg.norm(state.r)) / bnorm
    while res >= tol and int(state.iteration) < max_iter:
        state = cg_step(system.apply_a, system.apply_minv, state)
        res = float(jnp.linalg.norm(state.r)) / bnorm
        if callback is not None:
            callback(int(state.iteration), res)
    kappa_lm = unpack_alm(system.sqrt_c * np.asarray(state.x, np.float64), system.lmax)
    return kappa_lm, CGInfo(int(state.iteration), res, res < tol)
