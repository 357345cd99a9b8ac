"""Flat-sky shear operators: κ → γ (the lensing operator P) and Kaiser-Squires γ → κ (E and B).

Frame: arrays are (..., ny, nx); axis -1 is x (towards West, decreasing RA), axis -2 is y (North).
With ℓ = (ℓx, ℓy) the Fourier duals of (x, y) and D(ℓ) = (ℓx² − ℓy² + 2i ℓx ℓy) / ℓ²,

    γ̂ = D κ̂              (γ = γ1 + i γ2),
    κ̂_E + i κ̂_B = D* γ̂   (Kaiser & Squires 1993; |D| = 1 so this inverts P exactly for ℓ ≠ 0).

The ℓ = 0 mode of κ is unconstrained by shear (mass-sheet degeneracy) and set to zero. All transforms
are periodic on the grid; padding means embedding the data in a larger grid with zeros (no data),
see :func:`pad_map` and :func:`crop_map`.
"""
from __future__ import annotations

import jax.numpy as jnp


def shear_kernel(ny: int, nx: int) -> jnp.ndarray:
    """D(ℓ) on the (ny, nx) FFT grid (complex64); D(0) = 0."""
    ky = jnp.fft.fftfreq(ny)[:, None]
    kx = jnp.fft.fftfreq(nx)[None, :]
    k2 = kx**2 + ky**2
    safe = jnp.where(k2 > 0, k2, 1.0)
    d = ((kx**2 - ky**2) + 2j * kx * ky) / safe
    return jnp.where(k2 > 0, d, 0.0).astype(jnp.complex64)


def kappa_to_shear(kappa: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """The lensing operator P: real κ (..., ny, nx) → (γ1, γ2), periodic."""
    ny, nx = kappa.shape[-2:]
    g = jnp.fft.ifft2(shear_kernel(ny, nx) * jnp.fft.fft2(kappa))
    return g.real, g.imag


def shear_to_kappa(g1: jnp.ndarray, g2: jnp.ndarray) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Kaiser-Squires inversion (periodic): (γ1, γ2) → (κ_E, κ_B). Also Pᵀ restricted to E: see below."""
    ny, nx = g1.shape[-2:]
    k = jnp.fft.ifft2(jnp.conj(shear_kernel(ny, nx)) * jnp.fft.fft2(g1 + 1j * g2))
    return k.real, k.imag


def shear_adjoint(g1: jnp.ndarray, g2: jnp.ndarray) -> jnp.ndarray:
    """Pᵀ: the adjoint of :func:`kappa_to_shear` for the real inner product, (γ1, γ2) → κ.

    Because D is unitary per mode and P maps real fields to real fields, Pᵀγ = Re KS(γ) = κ_E.
    """
    return shear_to_kappa(g1, g2)[0]


def pad_map(x: jnp.ndarray, pad: int) -> jnp.ndarray:
    """Zero-pad the last two axes by ``pad`` pixels on each side."""
    if pad == 0:
        return x
    widths = [(0, 0)] * (x.ndim - 2) + [(pad, pad), (pad, pad)]
    return jnp.pad(x, widths)


def crop_map(x: jnp.ndarray, pad: int) -> jnp.ndarray:
    """Inverse of :func:`pad_map`: drop ``pad`` pixels on each side of the last two axes."""
    if pad == 0:
        return x
    return x[..., pad:-pad, pad:-pad]


def kaiser_squires(g1: jnp.ndarray, g2: jnp.ndarray, pad: int = 0) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Kaiser-Squires (κ_E, κ_B) from binned shear; ``pad`` zero pixels per side reduce edge effects.

    Pixels without data must hold γ = 0 (the mean is removed beforehand when wanted).
    """
    ke, kb = shear_to_kappa(pad_map(g1, pad), pad_map(g2, pad))
    return crop_map(ke, pad), crop_map(kb, pad)
