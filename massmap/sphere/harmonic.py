"""Spin-2 harmonic transforms of shear on the sphere and spherical Kaiser-Squires (E and B modes).

Sign convention (docs/healpix.md). massmap's native shear frame at a galaxy is the local image frame
of a North-up, East-left map: +x towards West, +y towards North, +e1 along x, +e2 along x = y (towards
North-West). healpy's spin-2 fields (Q, U) live in the COSMO basis (e_θ, e_φ) = (South, East): Q > 0 is
elongation North-South and U > 0 along South-East/North-West. Hence, geometrically,

    Q = −γ1,   U = +γ2      (native → healpy),

and with this mapping a convergence with harmonic coefficients κ_ℓm produces the E-mode
E_ℓm = f_ℓ κ_ℓm, f_ℓ = √((ℓ+2)(ℓ−1) / (ℓ(ℓ+1))), in healpy's ``alm2map_spin``/``map2alm_spin`` (tested
against the analytic tangential shear of a positive mass in tests/test_healpix.py). Spherical
Kaiser-Squires inverts this per multipole: κ_E,ℓm = E_ℓm / f_ℓ, κ_B,ℓm = −B_ℓm / f_ℓ. The B sign makes
κ_B agree with the flat-sky κ_B of massmap (κ_E + iκ_B = D*γ̂ in the native frame, which is left-handed
with respect to the (e_θ, e_φ) basis, so the pseudo-scalar B changes sign). Multipoles ℓ < 2 are not
constrained by shear and are zero.

Real-vector packing. The Wiener solver works with real vectors x of length (ℓ_max+1)², holding
a_ℓ0 and √2 (Re, Im) a_ℓm for m > 0, so that the Euclidean dot product of two packed vectors equals the
inner product Σ_all m a_ℓm b*_ℓm of the real fields they describe. ``shear_adjoint`` is then the exact
adjoint of ``kappa_to_shear`` (healpy's ``map2alm_spin`` without iterations is ΔΩ times the adjoint of
``alm2map_spin``).
"""
from __future__ import annotations

import healpy as hp
import numpy as np

ARCMIN = np.pi / 180.0 / 60.0
B_SIGN = -1.0  # κ_B = B_SIGN · B_ℓm / f_ℓ (see module docstring)


def native_to_healpy(g1: np.ndarray, g2: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Native-frame shear (γ1, γ2) → healpy spin-2 components (Q, U) = (−γ1, γ2)."""
    return -np.asarray(g1, np.float64), np.asarray(g2, np.float64)


def healpy_to_native(q: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """healpy spin-2 components (Q, U) → native-frame shear (γ1, γ2) = (−Q, U)."""
    return -np.asarray(q, np.float64), np.asarray(u, np.float64)


def ell_of_alm(lmax: int) -> np.ndarray:
    """ℓ of every coefficient in healpy's a_ℓm layout."""
    return hp.Alm.getlm(lmax)[0]


def ks_factor(lmax: int) -> np.ndarray:
    """f_ℓ = √((ℓ+2)(ℓ−1) / (ℓ(ℓ+1))) for ℓ = 0..lmax (0 for ℓ < 2): E_ℓm = f_ℓ κ_ℓm."""
    ell = np.arange(lmax + 1, dtype=np.float64)
    f = np.zeros(lmax + 1)
    ok = ell >= 2
    f[ok] = np.sqrt((ell[ok] + 2) * (ell[ok] - 1) / (ell[ok] * (ell[ok] + 1)))
    return f


def pixel_solid_angle(nside: int) -> float:
    """ΔΩ = 4π / (12 nside²) in steradians."""
    return 4.0 * np.pi / hp.nside2npix(nside)


def map2alm_spin2(q: np.ndarray, u: np.ndarray, lmax: int, iterations: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(E_ℓm, B_ℓm) of a spin-2 map (Q, U), refined by ``iterations`` Jacobi steps (as healpy's ``iter``)."""
    maps = np.vstack([q, u]).astype(np.float64)
    nside = hp.npix2nside(maps.shape[1])
    alm = np.array(hp.map2alm_spin(maps, 2, lmax=lmax))
    for _ in range(iterations):
        resid = maps - np.array(hp.alm2map_spin(list(alm), nside, 2, lmax))
        alm += np.array(hp.map2alm_spin(resid, 2, lmax=lmax))
    return alm[0], alm[1]


def kappa_to_shear(kappa_lm: np.ndarray, nside: int, lmax: int,
                   kappa_b_lm: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """The lensing operator on the sphere: κ_ℓm (and optionally κ_B,ℓm) → native (γ1, γ2) maps."""
    f = ks_factor(lmax)
    e = hp.almxfl(np.asarray(kappa_lm, np.complex128), f)
    b = np.zeros_like(e) if kappa_b_lm is None else hp.almxfl(np.asarray(kappa_b_lm, np.complex128), B_SIGN * f)
    q, u = hp.alm2map_spin([e, b], nside, 2, lmax)
    return healpy_to_native(q, u)


def shear_to_kappa_alm(g1: np.ndarray, g2: np.ndarray, lmax: int, iterations: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """Spherical Kaiser-Squires in harmonic space: native (γ1, γ2) maps → (κ_E,ℓm, κ_B,ℓm)."""
    e, b = map2alm_spin2(*native_to_healpy(g1, g2), lmax, iterations)
    f = ks_factor(lmax)
    inv = np.zeros_like(f)
    inv[f > 0] = 1.0 / f[f > 0]
    return hp.almxfl(e, inv), hp.almxfl(b, B_SIGN * inv)


def kaiser_squires_sphere(g1: np.ndarray, g2: np.ndarray, lmax: int, fwhm_arcmin: float = 0.0,
                          iterations: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """(κ_E, κ_B) HEALPix maps from native shear maps (0 where there is no data), band-limited to ``lmax``
    and smoothed by a Gaussian of FWHM ``fwhm_arcmin`` (0 = none)."""
    nside = hp.npix2nside(np.asarray(g1).size)
    ke, kb = shear_to_kappa_alm(g1, g2, lmax, iterations)
    if fwhm_arcmin > 0:
        beam = hp.gauss_beam(fwhm_arcmin * ARCMIN, lmax=lmax)
        ke, kb = hp.almxfl(ke, beam), hp.almxfl(kb, beam)
    return hp.alm2map(ke, nside, lmax=lmax), hp.alm2map(kb, nside, lmax=lmax)


def shear_adjoint(g1: np.ndarray, g2: np.ndarray, lmax: int) -> np.ndarray:
    """Pᵀ: the exact adjoint of :func:`kappa_to_shear` (E part), native (γ1, γ2) maps → κ_ℓm.

    Adjoint for the pixel-sum inner product Σ_p (γ1γ1' + γ2γ2') and the real-field a_ℓm inner product.
    """
    nside = hp.npix2nside(np.asarray(g1).size)
    q, u = native_to_healpy(g1, g2)
    e, _ = hp.map2alm_spin(np.vstack([q, u]), 2, lmax=lmax)
    return hp.almxfl(e, ks_factor(lmax) / pixel_solid_angle(nside))


def pack_alm(alm: np.ndarray, lmax: int) -> np.ndarray:
    """Complex a_ℓm (healpy layout) → real vector [a_ℓ0, √2 Re a_ℓm, √2 Im a_ℓm (m > 0)] of length (ℓmax+1)²."""
    alm = np.asarray(alm)
    n0 = lmax + 1
    rest = alm[n0:]
    return np.concatenate([alm[:n0].real, np.sqrt(2.0) * rest.real, np.sqrt(2.0) * rest.imag])


def unpack_alm(x: np.ndarray, lmax: int) -> np.ndarray:
    """Inverse of :func:`pack_alm` (the imaginary parts of m = 0 coefficients are zero)."""
    x = np.asarray(x, np.float64)
    n0 = lmax + 1
    nrest = hp.Alm.getsize(lmax) - n0
    rest = (x[n0:n0 + nrest] + 1j * x[n0 + nrest:]) / np.sqrt(2.0)
    return np.concatenate([x[:n0].astype(np.complex128), rest])
