"""A thin layer over jax-cosmo: cosmology objects, source n(z) and the convergence C_ℓ as arrays.

jax-cosmo caches background tables on its Cosmology objects; nothing here is meant to be traced by
``jax.jit``. Call these functions outside jitted code and pass the resulting arrays in.
"""
from __future__ import annotations

import functools
import warnings
from typing import NamedTuple

import numpy as np

from massmap.config.schema import CosmologyConfig, SourcesConfig


def _jc():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import jax_cosmo as jc
    return jc


def jc_cosmology(cfg: CosmologyConfig):
    """jax_cosmo.Cosmology for a flat wCDM model (Ω_k = 0, w_a = 0)."""
    jc = _jc()
    return jc.Cosmology(Omega_c=cfg.Omega_c, Omega_b=cfg.Omega_b, h=cfg.h, sigma8=cfg.sigma8,
                        n_s=cfg.n_s, w0=cfg.w0, Omega_k=0.0, wa=0.0)


def read_nz_file(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Two columns (z, n(z)) from a text file; one-line InputError (a ValueError) naming the file."""
    from massmap.errors import InputError
    from massmap.io.inputs import read_text_table

    data = read_text_table(path, "n(z) file", ("z", "n(z)"), key="sources.nz_file", min_rows=3)
    z, nz = data[:, 0], data[:, 1]
    if np.any(np.diff(z) <= 0) or np.any(nz < 0) or not np.any(nz > 0) or z[0] < 0:
        raise InputError(f"n(z) file '{path}': z must be >= 0 and increase, and n(z) be >= 0 with some > 0")
    return z, nz


def redshift_distribution(src: SourcesConfig):
    """The jax-cosmo redshift distribution for the ``sources`` section."""
    jc = _jc()
    if src.nz == "delta":
        return jc.redshift.delta_nz(src.z_source)
    if src.nz == "smail":
        return jc.redshift.smail_nz(src.smail_a, src.smail_b, src.smail_z0)
    z, nz = read_nz_file(src.nz_file)
    return jc.redshift.kde_nz(z, nz, bw=max(float(np.median(np.diff(z))), 1e-3), zmax=float(z[-1]))


def kappa_cl(cosmo: CosmologyConfig, src: SourcesConfig, ell: np.ndarray, nonlinear: bool = True) -> np.ndarray:
    """Limber convergence power C_ℓ^κκ (halofit when ``nonlinear``, else linear Eisenstein-Hu)."""
    jc = _jc()
    c = jc_cosmology(cosmo)
    probe = jc.probes.WeakLensing([redshift_distribution(src)])
    pk = jc.power.nonlinear_matter_power if nonlinear else jc.power.linear_matter_power
    import jax

    # Compiled once per call (about 10x faster than jax-cosmo's eager evaluation); the cosmology is an
    # argument, so jax-cosmo's background cache lives on the traced copy and never leaks.
    limber = jax.jit(lambda cosmology, ells: jc.angular_cl.angular_cl(cosmology, ells, [probe], nonlinear_fn=pk))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cl = limber(c, np.asarray(ell, np.float32))
    return np.asarray(cl[0], np.float64)


def source_redshift_weights(src: SourcesConfig, n_z: int = 512) -> tuple[np.ndarray, np.ndarray]:
    """Quadrature nodes and weights (z_i, w_i), Σ w_i = 1, with Σ w_i f(z_i) ≈ ∫ n(z) f(z) dz.

    A single node for ``nz: delta``; otherwise the normalised jax-cosmo n(z) of
    :func:`redshift_distribution` on a uniform grid up to its ``zmax`` (trapezoid rule).
    """
    if src.nz == "delta":
        return np.array([src.z_source], float), np.array([1.0])
    dist = redshift_distribution(src)
    z = np.linspace(0.0, float(dist.config["zmax"]), n_z)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pz = np.clip(np.asarray(dist(z), np.float64), 0.0, None)
    w = pz * np.gradient(z)
    w[[0, -1]] *= 0.5
    return z, w / w.sum()


# ---------------------------------------------------------------------------------------------
# Background, growth and power tables for the particle-mesh simulation (plain numpy, outside jit).
#
# Units: comoving distances in Mpc/h, wavenumbers in h/Mpc, time in units of 1/H0. Flat wCDM with
# constant w0 and no radiation, exactly as jax-cosmo's background (E², Ω_m(a), growth ODE).
# ---------------------------------------------------------------------------------------------

C_OVER_H0 = 2997.92458  # c / H0 in Mpc/h


class GrowthFactors(NamedTuple):
    """Growth at given scale factors: D1 (D1(1) = 1), f1 = dlnD1/dlna, D2 ≈ −(3/7) D1², f2 = dlnD2/dlna."""

    d1: np.ndarray
    f1: np.ndarray
    d2: np.ndarray
    f2: np.ndarray


def _omegas(cfg: CosmologyConfig) -> tuple[float, float]:
    om = cfg.Omega_c + cfg.Omega_b
    return om, 1.0 - om


def hubble_e(cfg: CosmologyConfig, a) -> np.ndarray:
    """E(a) = H(a)/H0 for flat wCDM: E² = Ω_m a⁻³ + Ω_de a^(−3(1+w0))."""
    om, ode = _omegas(cfg)
    a = np.asarray(a, np.float64)
    return np.sqrt(om * a**-3 + ode * a ** (-3.0 * (1.0 + cfg.w0)))


@functools.lru_cache(maxsize=8)
def _growth_solution(cfg: CosmologyConfig):
    """Solve the first- and second-order growth ODEs in ln a from a = 1e-4 to 1 (dense output).

    In x = ln a, with Ω_m(a) = Ω_m a⁻³/E² and dlnE/dx = −(3/2)[Ω_m(a) + (1+w0) Ω_de(a)]:
        D1'' + (2 + dlnE/dx) D1' − (3/2) Ω_m(a) D1 = 0,
        D2'' + (2 + dlnE/dx) D2' − (3/2) Ω_m(a) D2 = −(3/2) Ω_m(a) D1²,
    started in matter domination at a = 1e-4 with D1 = a, D2 = −(3/7) a². Returns (ln a_min, solution)
    where solution(ln a) → (D1, D1', D2, D2') from the dense DOP853 output, normalised so that
    D1(1) = 1 (D2 by the same factor squared). Primes are d/dln a.
    """
    from scipy.integrate import solve_ivp

    om, ode = _omegas(cfg)

    def rhs(x, y):
        a = np.exp(x)
        e2 = om * a**-3 + ode * a ** (-3.0 * (1.0 + cfg.w0))
        om_a = om * a**-3 / e2
        ode_a = 1.0 - om_a
        dlne = -1.5 * (om_a + (1.0 + cfg.w0) * ode_a)
        d1, d1p, d2, d2p = y
        return [d1p, -(2.0 + dlne) * d1p + 1.5 * om_a * d1,
                d2p, -(2.0 + dlne) * d2p + 1.5 * om_a * (d2 - d1 * d1)]

    x0 = np.log(1e-4)
    a0 = np.exp(x0)
    sol = solve_ivp(rhs, (x0, 0.0), [a0, a0, -3.0 / 7.0 * a0**2, -6.0 / 7.0 * a0**2], method="DOP853",
                    rtol=1e-11, atol=1e-16, dense_output=True)
    norm = sol.y[0, -1]
    scale = np.array([norm, norm, norm**2, norm**2])[:, None]
    return x0, lambda lna: sol.sol(np.atleast_1d(lna)) / scale


def growth_factors(cfg: CosmologyConfig, a) -> GrowthFactors:
    """Linear growth D1 (D1(1) = 1), f1 = dlnD1/dlna, second-order D2 and f2 = dlnD2/dlna at ``a``."""
    x0, solution = _growth_solution(cfg)
    a = np.asarray(a, np.float64)
    lna = np.log(a)
    if np.any(lna < x0 - 1e-12) or np.any(lna > 1e-12):
        raise ValueError("growth_factors: scale factors must lie in [1e-4, 1]")
    d1, d1p, d2, d2p = solution(np.minimum(lna.ravel(), 0.0)).reshape(4, *a.shape)
    return GrowthFactors(d1, d1p / d1, d2, d2p / d2)


def growth_momentum_factor(cfg: CosmologyConfig, a) -> np.ndarray:
    """G_p(a) = a³ E(a) dD1/da = a² E(a) dD1/dlna: the momentum p = a² dx/dt of a linear mode per unit D1-normalised displacement."""
    a = np.asarray(a, np.float64)
    g = growth_factors(cfg, a)
    return a**2 * hubble_e(cfg, a) * g.d1 * g.f1


def growth_force_factor(cfg: CosmologyConfig, a) -> np.ndarray:
    """G_f(a) = a² E(a) dG_p/da = (3/2) Ω_m D1(a), by the growth ODE: the linear force per unit displacement."""
    om, _ = _omegas(cfg)
    return 1.5 * om * growth_factors(cfg, a).d1


def comoving_distance(cfg: CosmologyConfig, a) -> np.ndarray:
    """Radial comoving distance χ(a) = (c/H0) ∫_a^1 da' / (a'² E(a')) in Mpc/h (flat)."""
    a = np.asarray(a, np.float64)
    grid = np.geomspace(min(1e-3, float(np.min(a))), 1.0, 20000)
    integrand = 1.0 / (grid**2 * hubble_e(cfg, grid))
    cum = np.concatenate([[0.0], np.cumsum(0.5 * (integrand[1:] + integrand[:-1]) * np.diff(grid))])
    chi_grid = C_OVER_H0 * (cum[-1] - cum)
    return np.interp(a, grid, chi_grid)


def scale_factor_at_distance(cfg: CosmologyConfig, chi) -> np.ndarray:
    """Inverse of :func:`comoving_distance` (a(χ), χ in Mpc/h)."""
    grid = np.geomspace(1e-3, 1.0, 20000)
    chi_grid = comoving_distance(cfg, grid)
    return np.interp(np.asarray(chi, np.float64), chi_grid[::-1], grid[::-1])


def linear_power(cfg: CosmologyConfig, k, a: float = 1.0) -> np.ndarray:
    """Linear matter P(k) in (Mpc/h)³ (Eisenstein-Hu transfer, σ8-normalised, jax-cosmo) at k in h/Mpc."""
    k = np.asarray(k, np.float64)
    return _linear_power_cached(cfg, tuple(k.ravel()), float(a)).reshape(k.shape).copy()


@functools.lru_cache(maxsize=8)
def _linear_power_cached(cfg: CosmologyConfig, k: tuple, a: float) -> np.ndarray:
    jc = _jc()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pk = jc.power.linear_matter_power(jc_cosmology(cfg), np.asarray(k, np.float64), a=a)
    return np.asarray(pk, np.float64)


def nonlinear_power(cfg: CosmologyConfig, k, a: float = 1.0) -> np.ndarray:
    """Halofit (Takahashi 2012) matter P(k) in (Mpc/h)³ from jax-cosmo at k in h/Mpc."""
    jc = _jc()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        pk = jc.power.nonlinear_matter_power(jc_cosmology(cfg), np.asarray(k, np.float64), a=a)
    return np.asarray(pk, np.float64)
