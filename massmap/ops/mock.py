"""Mock shear catalogs from a κ map: uniform galaxy positions, shear from κ, Gaussian shape noise."""
from __future__ import annotations

import jax
import jax.numpy as jnp

from massmap.ops.shear import kappa_to_shear


def mock_galaxies(key: jax.Array, kappa: jnp.ndarray, n_galaxies: int, sigma_e: float):
    """Draw ``n_galaxies`` uniform positions on the (ny, nx) grid and their noisy ellipticities.

    Returns pixel coordinates (x, y) (0-based, pixel centres at integers) and (e1, e2) = γ(pixel) + n,
    with γ from κ by the periodic lensing operator and n ~ N(0, sigma_e²) per component.
    """
    ny, nx = kappa.shape
    kpos, knoise = jax.random.split(key)
    u = jax.random.uniform(kpos, (2, n_galaxies), minval=-0.5, maxval=0.5)
    x = u[0] * nx + (nx - 1) / 2.0
    y = u[1] * ny + (ny - 1) / 2.0
    g1, g2 = kappa_to_shear(kappa)
    ix = jnp.clip(jnp.floor(x + 0.5).astype(jnp.int32), 0, nx - 1)
    iy = jnp.clip(jnp.floor(y + 0.5).astype(jnp.int32), 0, ny - 1)
    noise = sigma_e * jax.random.normal(knoise, (2, n_galaxies))
    return x, y, g1[iy, ix] + noise[0], g2[iy, ix] + noise[1]
