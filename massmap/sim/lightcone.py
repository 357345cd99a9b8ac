"""Lens planes on the past lightcone of a periodic PM box, and the Born convergence.

Geometry (flat sky, observer at the origin, line of sight along the replica's third axis). The box of
side L is replicated along the line of sight: replica r covers comoving distances [rL, (r+1)L) and is
the simulation box seen through its own random transform (one of the 48 symmetries of the cube — an
axis permutation and flips — and a random periodic shift by a whole number of mesh cells), drawn from
the key, so that structures do not repeat along a ray. Each replica's range is cut into equal lens
planes no thicker than ``max_thickness``; a plane [χ_lo, χ_hi) never straddles two replicas.

A plane takes the CIC density contrast δ of the step output (snapshot) nearest to it in χ, scaled by
the linear growth D1(a_plane)/D1(a_snapshot), and integrates it along the line of sight over its slab:
Σ(u, v) = ∫ δ dχ (Mpc/h), summed over mesh cells with their exact overlap with the slab. Transversally
the CIC window is divided out in Fourier space, the plane is upsampled ×2 by zero padding and read at
the ray positions χ θ by bilinear interpolation whose window is divided out too. The Born convergence
is then

    κ(θ) = (3/2) Ω_m (H0/c)² Σ_i (χ_i / a_i) q(χ_i) Σ_i(χ_i θ),
    q(χ) = ∫_{χ_s > χ} n(χ_s) (1 − χ/χ_s) dχ_s          (= 1 − χ/χ_s for a single source distance),

which is the sum Σ_i Δχ_i (χ_i/a_i)(1 − χ_i/χ_s) δ_i(χ_i θ) with per-plane lensing efficiency q.

Takes a :class:`massmap.cosmology.Cosmology` and :class:`massmap.cosmology.SourceRedshifts`; distances
in Mpc/h, angles in radians.
"""
from __future__ import annotations

import itertools
from functools import partial
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from massmap.cosmology import (C_OVER_H0, Cosmology, SourceRedshifts, comoving_distance, growth_factors,
                               redshift_distribution, scale_factor_at_distance)
from massmap.sim.pm import cic_window

PERMUTATIONS = tuple(itertools.permutations(range(3)))  # the 6 axis orders; with 8 flips: 48 symmetries
UPSAMPLE = 2  # plane upsampling before bilinear interpolation at the rays


class LensPlanes(NamedTuple):
    """Lens planes (numpy arrays of length n_planes)."""

    chi_lo: np.ndarray  # Mpc/h
    chi_hi: np.ndarray
    chi: np.ndarray  # centre
    a: np.ndarray  # scale factor at the centre
    replica: np.ndarray  # int: which box replica along the line of sight
    snapshot: np.ndarray  # int: index of the step output whose density the plane uses
    growth: np.ndarray  # D1(a) / D1(a_snapshot)


class Replicas(NamedTuple):
    """Random transforms of the box replicas (numpy arrays, first axis = replica)."""

    perm: np.ndarray  # (R,) int in [0, 6): index into PERMUTATIONS
    flip: np.ndarray  # (R, 3) bool, per replica axis
    shift: np.ndarray  # (R, 3) int, mesh cells, per replica axis


class SourceDistances(NamedTuple):
    """Source n(χ) as discrete distances and weights summing to 1; ``chi_far`` ends the lightcone."""

    chi: np.ndarray
    weight: np.ndarray
    chi_far: float


def source_distances(cosmo: Cosmology, sources: SourceRedshifts, quantile: float = 0.995,
                     n_grid: int = 2000) -> SourceDistances:
    """Discretise the source redshift distribution; ``chi_far`` is the distance of its ``quantile``.

    For a smooth n(z) the sources beyond ``chi_far`` keep their weight in q(χ), but the lightcone (and
    so their lensing by matter beyond ``chi_far``) stops there.
    """
    if sources.kind == "delta":
        chi_s = float(comoving_distance(cosmo, 1.0 / (1.0 + sources.z_source)))
        return SourceDistances(np.array([chi_s]), np.array([1.0]), chi_s)
    nz = redshift_distribution(sources)
    zmax = float(nz.zmax)
    edges = np.linspace(0.0, zmax, n_grid + 1)
    z = 0.5 * (edges[1:] + edges[:-1])
    w = np.clip(np.asarray(nz(z), np.float64), 0.0, None) * np.diff(edges)
    w = w / w.sum()
    chi = comoving_distance(cosmo, 1.0 / (1.0 + z))
    cum = np.cumsum(w)
    chi_far = float(chi[min(np.searchsorted(cum, quantile), len(chi) - 1)])
    return SourceDistances(chi, w, chi_far)


def lensing_efficiency(chi: np.ndarray, src: SourceDistances) -> np.ndarray:
    """q(χ) = Σ_s w_s (1 − χ/χ_s) over sources behind χ (numpy)."""
    chi = np.asarray(chi, np.float64)[..., None]
    return np.sum(src.weight * np.clip(1.0 - chi / src.chi, 0.0, None), axis=-1)


def lens_planes(cosmo: Cosmology, chi_far: float, box_size: float, max_thickness: float,
                a_snapshots: np.ndarray) -> LensPlanes:
    """Planes from the observer to ``chi_far``, each inside one replica, served by the nearest snapshot."""
    lo, hi, rep = [], [], []
    r = 0
    while r * box_size < chi_far:
        start, stop = r * box_size, min((r + 1) * box_size, chi_far)
        m = int(np.ceil((stop - start) / max_thickness - 1e-9))
        e = np.linspace(start, stop, m + 1)
        lo.extend(e[:-1])
        hi.extend(e[1:])
        rep.extend([r] * m)
        r += 1
    lo, hi = np.array(lo), np.array(hi)
    chi = 0.5 * (lo + hi)
    a = scale_factor_at_distance(cosmo, chi)
    chi_snap = comoving_distance(cosmo, np.asarray(a_snapshots, np.float64))
    snap = np.argmin(np.abs(chi[:, None] - chi_snap[None, :]), axis=1)
    growth = growth_factors(cosmo, a).d1 / growth_factors(cosmo, np.asarray(a_snapshots)[snap]).d1
    return LensPlanes(lo, hi, chi, a, np.array(rep, int), snap, growth)


def born_weights(cosmo: Cosmology, planes: LensPlanes, src: SourceDistances) -> np.ndarray:
    """(3/2) Ω_m (H0/c)² (χ_i/a_i) q(χ_i) per plane (h/Mpc; multiply by Σ_i in Mpc/h)."""
    om = cosmo.Omega_c + cosmo.Omega_b
    return 1.5 * om / C_OVER_H0**2 * planes.chi / planes.a * lensing_efficiency(planes.chi, src)


def replica_transforms(key: jax.Array, n_replicas: int, mesh: int) -> Replicas:
    """Draw a cube symmetry and a whole-cell periodic shift for every replica."""
    k1, k2, k3 = jax.random.split(key, 3)
    perm = np.asarray(jax.random.randint(k1, (n_replicas,), 0, len(PERMUTATIONS)))
    flip = np.asarray(jax.random.bernoulli(k2, 0.5, (n_replicas, 3)))
    shift = np.asarray(jax.random.randint(k3, (n_replicas, 3), 0, mesh))
    return Replicas(perm, flip, shift)


def _slab_weights(n: int, cell: float, lo, hi) -> jnp.ndarray:
    """Length (Mpc/h) of the overlap of each node's cell [jΔ − Δ/2, jΔ + Δ/2) with [lo, hi), periodic."""
    box = n * cell
    c = jnp.arange(n, dtype=jnp.float32) * cell
    total = 0.0
    for img in (-box, 0.0, box):
        total = total + jnp.clip(jnp.minimum(c + cell / 2 + img, hi) - jnp.maximum(c - cell / 2 + img, lo), 0.0)
    return total


def project_slab(delta: jnp.ndarray, box_size: float, perm, flip, shift, lo, hi) -> jnp.ndarray:
    """Σ(j_u, j_v) = ∫ δ dχ over replica-frame depth [lo, hi) (Mpc/h, within [0, L]) on the replica grid.

    A box node b along replica axis m sits at replica node j = (±b + shift_m) mod n (− when flipped).
    """
    n = delta.shape[0]
    cell = box_size / n
    d = jax.lax.switch(perm, [partial(jnp.transpose, axes=p) for p in PERMUTATIONS], delta)
    b = jnp.arange(n)
    j_of_b = [(jnp.where(flip[m], -b, b) + shift[m]) % n for m in range(3)]
    w_los = _slab_weights(n, cell, lo, hi)[j_of_b[2]]
    proj = jnp.tensordot(d, w_los, axes=([2], [0]))  # indexed by box nodes (b_u, b_v)
    j = jnp.arange(n)
    b_of_j = [jnp.where(flip[m], -(j - shift[m]), j - shift[m]) % n for m in range(2)]
    return proj[b_of_j[0][:, None], b_of_j[1][None, :]]


def _upsample_deconvolved(plane: jnp.ndarray, cell: float) -> jnp.ndarray:
    """Divide out the CIC window (paint) and the bilinear window of the ×UPSAMPLE grid; zero-pad the FFT."""
    n = plane.shape[0]
    m = n * UPSAMPLE
    k = jnp.fft.fftfreq(n, cell / (2 * jnp.pi)).astype(jnp.float32)
    kvec = (k[:, None], k[None, :])
    win = cic_window(kvec, cell) * cic_window(kvec, cell / UPSAMPLE)
    f = jnp.fft.fft2(plane) / win
    if n % 2 == 0:  # drop the Nyquist row/column (their sign is ambiguous once padded)
        f = f.at[n // 2, :].set(0.0).at[:, n // 2].set(0.0)
    h = n // 2
    big = jnp.zeros((m, m), f.dtype)
    big = big.at[:h, :h].set(f[:h, :h]).at[:h, -h:].set(f[:h, -h:])
    big = big.at[-h:, :h].set(f[-h:, :h]).at[-h:, -h:].set(f[-h:, -h:])
    return jnp.fft.ifft2(big).real * (UPSAMPLE**2)


def bilinear_periodic(grid: jnp.ndarray, u: jnp.ndarray, v: jnp.ndarray) -> jnp.ndarray:
    """Bilinear interpolation of a periodic 2-D grid at (u, v) in node units (axis 0, axis 1)."""
    n0, n1 = grid.shape
    u0, v0 = jnp.floor(u), jnp.floor(v)
    du, dv = u - u0, v - v0
    i0, j0 = u0.astype(jnp.int32) % n0, v0.astype(jnp.int32) % n1
    i1, j1 = (i0 + 1) % n0, (j0 + 1) % n1
    return ((1 - du) * (1 - dv) * grid[i0, j0] + du * (1 - dv) * grid[i1, j0]
            + (1 - du) * dv * grid[i0, j1] + du * dv * grid[i1, j1])


@partial(jax.jit, static_argnames=("box_size",))
def plane_kappa(delta, box_size: float, perm, flip, shift, lo, hi, chi, weight, theta_y, theta_x):
    """weight · Σ(χ θ) of one lens plane at the rays (θ_y, θ_x) in radians (arrays of the map shape).

    ``lo``/``hi`` are the slab limits in the replica frame (χ − replica·L); ``weight`` includes the
    Born prefactor and the growth rescaling.
    """
    n = delta.shape[0]
    cell = box_size / n
    plane = project_slab(delta, box_size, perm, flip, shift, lo, hi)
    fine = _upsample_deconvolved(plane, cell)
    fcell = cell / UPSAMPLE
    u = (chi * theta_y + box_size / 2) / fcell
    v = (chi * theta_x + box_size / 2) / fcell
    return weight * bilinear_periodic(fine, u, v)
