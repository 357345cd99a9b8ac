"""Fourier-diagonal operators on periodic flat maps.

A stationary operator on an (ny, nx) periodic grid is diagonal in Fourier space: A x = F⁻¹ diag(a) F x
with numpy's unnormalised ``fft2`` convention (docs/conventions.md). For a real map and a real diagonal
that is even in k (a function of |k|, as every spectrum here is) the result is real.
"""
from __future__ import annotations

import jax.numpy as jnp


def fourier_multiply(x: jnp.ndarray, diag: jnp.ndarray) -> jnp.ndarray:
    """F⁻¹ diag F x for real maps (..., ny, nx); the real part, in the dtype of ``x``."""
    return jnp.fft.ifft2(jnp.fft.fft2(x) * diag).real.astype(x.dtype)
