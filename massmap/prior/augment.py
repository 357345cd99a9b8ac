"""Training batches from κ regions: random crops and the 8 flips/rotations of the square.

The training maps are held as one padded array of regions (n, H, W) with each region's valid size
(h_i, w_i) ≥ npix; a batch draws regions with probability ∝ the number of crop positions, a uniform
crop position inside the region, and one of the 8 elements of the dihedral group D4 (identity,
rotations by 90°, 180°, 270°, and the four reflections). κ statistics are isotropic and
parity-invariant, so every transformed patch is an equally valid sample.
"""
from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp


class PatchSource(NamedTuple):
    regions: jnp.ndarray  # (n, H, W) float32, zero beyond each region's valid size
    sizes: jnp.ndarray  # (n, 2) int32 valid (h, w) of each region
    weights: jnp.ndarray  # (n,) float32 sampling probabilities (sum 1)


def make_patch_source(regions, sizes, npix: int) -> PatchSource:
    """Stack regions of valid ``sizes`` (each ≥ npix) with crop-position weights."""
    sizes = jnp.asarray(sizes, jnp.int32)
    n_pos = jnp.prod(sizes - npix + 1, axis=-1).astype(jnp.float32)
    return PatchSource(jnp.asarray(regions, jnp.float32), sizes, n_pos / jnp.sum(n_pos))


def dihedral(patch: jnp.ndarray, code: jnp.ndarray) -> jnp.ndarray:
    """Apply D4 element ``code`` ∈ [0, 8) to a square (n, n) patch: bit 0 transposes, bit 1 flips y,
    bit 2 flips x (the 8 combinations are the 8 distinct elements)."""
    patch = jnp.where(code & 1, patch.T, patch)
    patch = jnp.where(code & 2, patch[::-1, :], patch)
    return jnp.where(code & 4, patch[:, ::-1], patch)


def crop(region: jnp.ndarray, size: jnp.ndarray, u: jnp.ndarray, npix: int) -> jnp.ndarray:
    """The (npix, npix) crop of ``region`` at the position set by u ∈ [0, 1)², uniform over the
    valid (h, w) part of the region."""
    y0 = jnp.minimum((u[0] * (size[0] - npix + 1)).astype(jnp.int32), size[0] - npix)
    x0 = jnp.minimum((u[1] * (size[1] - npix + 1)).astype(jnp.int32), size[1] - npix)
    return jax.lax.dynamic_slice(region, (y0, x0), (npix, npix))


def sample_patches(key: jax.Array, source: PatchSource, npix: int, batch: int,
                   augment: bool = True) -> jnp.ndarray:
    """(batch, npix, npix) random crops, each randomly flipped/rotated when ``augment``.

    One uniform draw per patch and purpose (region, y, x, D4 element) keeps the graph small.
    """
    u = jax.random.uniform(key, (batch, 4), jnp.float32)
    cdf = jnp.cumsum(source.weights)
    idx = jnp.minimum(jnp.searchsorted(cdf, u[:, 0] * cdf[-1], side="right"), cdf.shape[0] - 1)
    patches = jax.vmap(lambda i, v: crop(source.regions[i], source.sizes[i], v, npix))(idx, u[:, 1:3])
    if augment:
        codes = jnp.minimum((u[:, 3] * 8).astype(jnp.int32), 7)
        patches = jax.vmap(dihedral)(patches, codes)
    return patches
