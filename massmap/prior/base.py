"""The prior of the posterior sampler: one small protocol for analytic and learned score priors.

A prior of κ maps is known to the sampler only through the score of its Gaussian-smoothed versions,

    s(κ, σ) = ∇_κ log p_σ(κ),   p_σ = p ∗ N(0, σ² I)   (σ in κ units),

evaluated on batches: ``score(kappa (B, ny, nx), sigma (B,)) -> (B, ny, nx)``. Besides the score a
prior says on which grids it can be evaluated and what the sampler's defaults should know:

- ``name``: how headers and messages name it ('gaussian', a file path);
- ``pixel_size_arcmin``: the pixel scale it was trained on (None: any scale, e.g. an analytic prior
  built for the grid at hand);
- ``grid_multiple``: padded map sides must be multiples of this (a UNet's down-sampling factor; 1);
- ``sigma_min``, ``sigma_max``: the σ range it was trained for (None: any σ > 0);
- ``kappa_std``: the standard deviation of its training κ (None if not known);
- ``mode_variance(ny, nx)``: the exact per-Fourier-mode variance s_k of a Gaussian prior on an
  (ny, nx) grid, or None when the prior is not Gaussian (the sampler then probes its score).

Implementations: :class:`massmap.prior.gaussian.GaussianPrior` (analytic, from a C_ℓ table) and
:class:`massmap.prior.learned.LearnedPrior` / :class:`~massmap.prior.learned.HybridPrior`
(a trained network; the hybrid adds it to the analytic score of the training C_ℓ).
:func:`check_grid` tells whether a prior can be evaluated on a grid.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import jax.numpy as jnp
import numpy as np

PIXEL_RTOL = 1e-3  # a prior's pixel scale must match the grid's to this relative tolerance


@runtime_checkable
class Prior(Protocol):
    """What the sampler needs of a prior (see the module docstring)."""

    name: str
    pixel_size_arcmin: float | None
    grid_multiple: int
    sigma_min: float | None
    sigma_max: float | None
    kappa_std: float | None

    def score(self, kappa: jnp.ndarray, sigma: jnp.ndarray) -> jnp.ndarray:
        """∇_κ log p_σ(κ) for maps (B, ny, nx) and noise levels (B,)."""
        ...

    def mode_variance(self, ny: int, nx: int) -> np.ndarray | None:
        """Exact per-mode variances on an (ny, nx) grid for a Gaussian prior, else None."""
        ...


def single_map_score(prior: Prior):
    """``score(κ (ny, nx), σ scalar)`` of one map from the prior's batched score (what the kernels call)."""
    def one_map(kappa, sigma):
        return prior.score(kappa[None], jnp.reshape(jnp.asarray(sigma, jnp.float32), (1,)))[0]

    return one_map


def is_gaussian(prior: Prior) -> bool:
    """Whether the prior is exactly Gaussian (its score is linear, its spectrum known)."""
    return prior.mode_variance(2, 2) is not None


def check_grid(prior: Prior, ny: int, nx: int, pixel_size_arcmin: float) -> None:
    """ValueError (one line) unless ``prior`` can be evaluated on an (ny, nx) grid of this pixel scale.

    Checks the pixel scale, the grid multiple, and that the score runs and returns maps of the grid's
    shape (a network with fixed-size layers fails on other grids).
    """
    pp = prior.pixel_size_arcmin
    if pp is not None and abs(float(pp) / pixel_size_arcmin - 1.0) > PIXEL_RTOL:
        raise ValueError(f"prior '{prior.name}' was trained on {float(pp):g} arcmin pixels but the map has "
                         f"{pixel_size_arcmin:g} arcmin pixels")
    m = int(prior.grid_multiple)
    if ny % m or nx % m:
        raise ValueError(f"prior '{prior.name}' needs map sides that are multiples of {m} but the padded "
                         f"grid is {ny}×{nx}")
    sigma = prior.sigma_max if prior.sigma_max is not None else 1.0
    try:
        out = prior.score(jnp.zeros((1, ny, nx), jnp.float32), jnp.full((1,), sigma, jnp.float32))
        shape = tuple(out.shape)
    except Exception as err:  # any failure of the score on this grid is a grid/prior mismatch
        raise ValueError(f"prior '{prior.name}' cannot be evaluated on the padded {ny}×{nx} grid: "
                         f"{type(err).__name__}") from None
    if shape != (1, ny, nx):
        raise ValueError(f"prior '{prior.name}' returns maps of shape {shape[1:]} for the padded {ny}×{nx} grid")
