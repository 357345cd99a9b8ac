"""Mock shear catalogs from a κ map: galaxy positions, shear from κ, Gaussian shape noise.

Positions are uniform on the grid (:func:`uniform_positions`) or given (a real survey's footprint,
massmap.pipeline.mock); each galaxy gets the shear of its pixel plus shape noise
(:func:`lensed_ellipticities`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from massmap.ops.shear import kappa_to_shear


def uniform_positions(key: jax.Array, n_galaxies: int, shape: tuple[int, int]):
    """``n_galaxies`` uniform pixel coordinates (x, y) on a (ny, nx) grid (0-based, centres at integers)."""
    ny, nx = shape
    u = jax.random.uniform(key, (2, n_galaxies), minval=-0.5, maxval=0.5)
    return u[0] * nx + (nx - 1) / 2.0, u[1] * ny + (ny - 1) / 2.0


def lensed_ellipticities(key: jax.Array, kappa: jnp.ndarray, x, y, sigma_e: float):
    """(e1, e2) = γ(pixel of (x, y)) + n, with γ from κ by the periodic lensing operator and
    n ~ N(0, sigma_e²) per component."""
    ny, nx = kappa.shape
    g1, g2 = kappa_to_shear(kappa)
    ix = jnp.clip(jnp.floor(jnp.asarray(x) + 0.5).astype(jnp.int32), 0, nx - 1)
    iy = jnp.clip(jnp.floor(jnp.asarray(y) + 0.5).astype(jnp.int32), 0, ny - 1)
    noise = sigma_e * jax.random.normal(key, (2, ix.shape[0]))
    return g1[iy, ix] + noise[0], g2[iy, ix] + noise[1]
