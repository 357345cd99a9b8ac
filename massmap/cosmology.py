"""A thin layer over jax-cosmo: cosmology objects, source n(z) and the convergence C_ℓ as arrays.

jax-cosmo caches background tables on its Cosmology objects; nothing here is meant to be traced by
``jax.jit``. Call these functions outside jitted code and pass the resulting arrays in.
"""
from __future__ import annotations

import warnings

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
    """Two columns (z, n(z)) from a text file; one-line ValueError naming the file on problems."""
    try:
        data = np.loadtxt(path, ndmin=2)
    except OSError:
        raise ValueError(f"n(z) file '{path}' cannot be read") from None
    except ValueError:
        raise ValueError(f"n(z) file '{path}' must hold two numeric columns (z, n(z))") from None
    if data.shape[1] < 2 or data.shape[0] < 3:
        raise ValueError(f"n(z) file '{path}' must hold at least 3 rows of two columns (z, n(z))")
    z, nz = data[:, 0], data[:, 1]
    if np.any(np.diff(z) <= 0) or np.any(nz < 0) or not np.any(nz > 0):
        raise ValueError(f"n(z) file '{path}': z must increase and n(z) be >= 0 with some > 0")
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cl = jc.angular_cl.angular_cl(c, np.asarray(ell, np.float32), [probe], nonlinear_fn=pk)
    return np.asarray(cl[0], np.float64)
