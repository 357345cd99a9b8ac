"""Particle-mesh operators on a periodic cubic mesh: CIC mass assignment, readout and gravity.

Positions given to the CIC functions are in mesh-cell units (a particle at ``x`` in Mpc/h of a box of
side L on an N³ mesh sits at ``x N / L``); mesh node ``i`` is at ``i`` cells. Cloud-in-cell gives each
particle the trilinear weights of the 8 nodes around it, periodically wrapped.

Gravity: for the density contrast δ on the mesh, the PM acceleration field (up to the factor
(3/2) Ω_m applied by the integrator) is

    g(k) = i k / k² · δ(k) · W_CIC(k)^(-n_comp),      W_CIC(k) = Π_i sinc²(k_i Δ / 2),

i.e. −∇∇⁻²δ with the exact (spectral) gradient and inverse Laplacian, the Nyquist planes and k = 0
set to zero. ``n_comp`` = 0, 1 or 2 divides by the CIC window of the painting (and of the readout):
the standard PM compensation that removes the smoothing of the mass assignment on the force.
"""
from __future__ import annotations

import jax.numpy as jnp

_CORNERS = tuple(((c >> 2) & 1, (c >> 1) & 1, c & 1) for c in range(8))


def _cic_corners(positions: jnp.ndarray, shape: tuple[int, ...]):
    """Yield (flat node index (P,), weight (P,)) for the 8 CIC corners of ``positions`` (P, 3).

    One corner at a time keeps the temporaries at O(P) (XLA fuses each into its scatter or gather).
    """
    i0 = jnp.floor(positions)
    d = positions - i0
    i0 = i0.astype(jnp.int32)
    for corner in _CORNERS:
        idx = [(i0[:, ax] + corner[ax]) % shape[ax] for ax in range(3)]
        w = 1.0
        for ax in range(3):
            w = w * (d[:, ax] if corner[ax] else 1.0 - d[:, ax])
        yield (idx[0] * shape[1] + idx[1]) * shape[2] + idx[2], w


def cic_paint(shape: tuple[int, int, int], positions: jnp.ndarray, weights: jnp.ndarray | None = None) -> jnp.ndarray:
    """Periodic CIC mass assignment of particles (P, 3) [cell units] onto a zero mesh of ``shape``."""
    out = jnp.zeros(shape[0] * shape[1] * shape[2], jnp.float32)
    for flat, w in _cic_corners(positions, shape):
        if weights is not None:
            w = w * weights
        out = out.at[flat].add(w.astype(jnp.float32))
    return out.reshape(shape)


def cic_readout(field: jnp.ndarray, positions: jnp.ndarray) -> jnp.ndarray:
    """Trilinear (CIC) interpolation of a periodic mesh (N0, N1, N2[, C]) at positions (P, 3) → (P[, C])."""
    shape = field.shape[:3]
    flat_field = field.reshape((shape[0] * shape[1] * shape[2],) + field.shape[3:])
    out = 0.0
    for flat, w in _cic_corners(positions, shape):
        out = out + flat_field[flat] * (w[:, None] if field.ndim == 4 else w)
    return out


def rfft_wavevectors(n: int, box_size: float) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """Wavevector components (h/Mpc) of an ``rfftn`` of an n³ mesh, shaped to broadcast (n,1,1), (1,n,1), (1,1,n//2+1)."""
    kf = 2 * jnp.pi / box_size
    k = jnp.fft.fftfreq(n, 1.0 / n).astype(jnp.float32) * kf
    kr = jnp.fft.rfftfreq(n, 1.0 / n).astype(jnp.float32) * kf
    return k[:, None, None], k[None, :, None], kr[None, None, :]


def cic_window(kvec, cell: float) -> jnp.ndarray:
    """Fourier transform of the CIC kernel, Π_i sinc²(k_i Δ/2), for the broadcastable components ``kvec``."""
    w = 1.0
    for k in kvec:
        x = k * cell / 2
        w = w * jnp.where(x == 0, 1.0, jnp.sin(x) / jnp.where(x == 0, 1.0, x)) ** 2
    return w


def nyquist_mask(n: int) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """1 off the Nyquist planes, 0 on them (for an even n), for each rfftn axis."""
    m = jnp.ones(n, jnp.float32)
    if n % 2 == 0:
        m = m.at[n // 2].set(0.0)
    mr = jnp.ones(n // 2 + 1, jnp.float32)
    if n % 2 == 0:
        mr = mr.at[-1].set(0.0)
    return m[:, None, None], m[None, :, None], mr[None, None, :]


def density_contrast(positions: jnp.ndarray, n: int, box_size: float, n_particles: int) -> jnp.ndarray:
    """CIC density contrast δ = ρ/ρ̄ − 1 on an n³ mesh from particle positions (P, 3) in Mpc/h."""
    counts = cic_paint((n, n, n), positions * (n / box_size))
    return counts * (n**3 / n_particles) - 1.0


def acceleration_mesh(delta: jnp.ndarray, box_size: float, n_comp: int = 1) -> jnp.ndarray:
    """−∇∇⁻²δ on the mesh, (n, n, n, 3) in Mpc/h, with ``n_comp`` CIC deconvolutions (see module doc)."""
    n = delta.shape[0]
    kvec = rfft_wavevectors(n, box_size)
    masks = nyquist_mask(n)
    k2 = kvec[0] ** 2 + kvec[1] ** 2 + kvec[2] ** 2
    inv_k2 = jnp.where(k2 > 0, 1.0 / jnp.where(k2 > 0, k2, 1.0), 0.0)
    delta_k = jnp.fft.rfftn(delta)
    if n_comp:
        delta_k = delta_k / cic_window(kvec, box_size / n) ** n_comp
    pot = delta_k * inv_k2 * masks[0] * masks[1] * masks[2]
    comps = [jnp.fft.irfftn(1j * kvec[i] * pot, s=delta.shape).astype(jnp.float32) for i in range(3)]
    return jnp.stack(comps, axis=-1)


def pm_accelerations(positions: jnp.ndarray, n: int, box_size: float, n_comp: int = 1):
    """Per-particle −∇∇⁻²δ (P, 3) and the painted δ mesh, from positions (P, 3) in Mpc/h."""
    delta = density_contrast(positions, n, box_size, positions.shape[0])
    acc = acceleration_mesh(delta, box_size, n_comp)
    return cic_readout(acc, positions * (n / box_size)), delta


def power_spectrum_3d(delta: jnp.ndarray, box_size: float, edges, other: jnp.ndarray | None = None,
                      n_comp: int = 0):
    """Binned P(k) (Mpc/h)³ of a mesh δ (or cross with ``other``), dividing by ``n_comp`` CIC windows.

    Returns numpy (mean k per bin, P per bin, modes per bin); the rfft half-plane is weighted so every
    complex mode counts once with its conjugate.
    """
    import numpy as np

    n = delta.shape[0]
    kvec = rfft_wavevectors(n, box_size)
    fa = jnp.fft.rfftn(delta)
    fb = fa if other is None else jnp.fft.rfftn(other)
    p = (fa * jnp.conj(fb)).real
    if n_comp:
        p = p / cic_window(kvec, box_size / n) ** (2 * n_comp)
    p = np.asarray(p, np.float64) * (box_size**3 / n**6)
    kmag = np.asarray(jnp.sqrt(kvec[0] ** 2 + kvec[1] ** 2 + kvec[2] ** 2), np.float64)
    weight = np.full(n // 2 + 1, 2.0)
    weight[0] = 1.0
    if n % 2 == 0:
        weight[-1] = 1.0
    weight = np.broadcast_to(weight[None, None, :], kmag.shape).ravel()
    kflat = kmag.ravel()
    idx = np.digitize(kflat, edges) - 1
    ok = (idx >= 0) & (idx < len(edges) - 1) & (kflat > 0)
    nb = len(edges) - 1
    cnt = np.bincount(idx[ok], weights=weight[ok], minlength=nb)
    psum = np.bincount(idx[ok], weights=(p.ravel() * weight)[ok], minlength=nb)
    ksum = np.bincount(idx[ok], weights=(kflat * weight)[ok], minlength=nb)
    with np.errstate(invalid="ignore", divide="ignore"):
        return ksum / cnt, psum / cnt, cnt


def pgd_displacement(delta: jnp.ndarray, positions: jnp.ndarray, box_size: float, alpha, k_l, k_s) -> jnp.ndarray:
    """Potential-gradient-descent small-scale correction (Dai, Feng & Seljak 2018), (P, 3) in Mpc/h.

    S = α · F⁻¹[ i k/k² · exp(−k_l²/k²) · exp(−(k/k_s)⁴) · δ(k) ] read at the particles: a shift along the
    short-range gravitational acceleration that contracts the halos a PM run leaves too diffuse. The
    high-pass exp(−k_l²/k²) leaves large scales (and so linear growth) untouched.
    """
    n = delta.shape[0]
    kvec = rfft_wavevectors(n, box_size)
    k2 = kvec[0] ** 2 + kvec[1] ** 2 + kvec[2] ** 2
    safe = jnp.where(k2 > 0, k2, 1.0)
    filt = jnp.where(k2 > 0, jnp.exp(-(k_l**2) / safe - (k2 / k_s**2) ** 2) / safe, 0.0)
    masks = nyquist_mask(n)
    pot = jnp.fft.rfftn(delta) * filt * masks[0] * masks[1] * masks[2]
    comps = [jnp.fft.irfftn(1j * kvec[i] * pot, s=delta.shape).astype(jnp.float32) for i in range(3)]
    return alpha * cic_readout(jnp.stack(comps, axis=-1), positions * (n / box_size))
