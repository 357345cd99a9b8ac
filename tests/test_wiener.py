"""Wiener filter: closed form against a dense float64 solve, and CG against both."""
import jax
import jax.numpy as jnp
import numpy as np

from massmap.ops.shear import kappa_to_shear
from massmap.ops.spectra import cl_on_grid, gaussian_random_field, mode_variance
from massmap.ops.wiener import wiener_cg, wiener_fourier

N, PIX = 16, 2.0
ELL = np.geomspace(10, 1e5, 64)
CL = 1e-9 * (ELL / 1000.0) ** -1.2


def _dense_operators(n):
    """Dense float64 matrices of P (2n² × n²) and S (n² × n²) from the same definitions."""
    s_k = mode_variance(cl_on_grid(ELL, CL, n, n, PIX), PIX)
    eye = np.eye(n * n).reshape(n * n, n, n)
    F = np.fft.fft2(eye).reshape(n * n, n * n)  # rows: basis vectors → their DFT
    S = np.real(np.fft.ifft2((np.fft.fft2(eye) * s_k)).reshape(n * n, n * n)).T
    ky = np.fft.fftfreq(n)[:, None]
    kx = np.fft.fftfreq(n)[None, :]
    k2 = kx**2 + ky**2
    k2s = np.where(k2 > 0, k2, 1)
    D = np.where(k2 > 0, ((kx**2 - ky**2) + 2j * kx * ky) / k2s, 0)
    g = np.fft.ifft2(np.fft.fft2(eye) * D)
    P = np.vstack([g.real.reshape(n * n, n * n).T, g.imag.reshape(n * n, n * n).T])
    del F
    return P, S, s_k


def _data(noise_std, key=0):
    s_k = mode_variance(cl_on_grid(ELL, CL, N, N, PIX), PIX)
    kappa = gaussian_random_field(jax.random.PRNGKey(key), jnp.asarray(cl_on_grid(ELL, CL, N, N, PIX)), PIX)
    g1, g2 = kappa_to_shear(kappa)
    n1, n2 = jax.random.normal(jax.random.PRNGKey(key + 100), (2, N, N))
    return np.asarray(g1 + noise_std * n1), np.asarray(g2 + noise_std * n2), s_k


def _dense_wiener(g1, g2, ninv):
    P, S, _ = _dense_operators(N)
    Ninv = np.diag(np.concatenate([ninv.ravel(), ninv.ravel()]))
    # (S⁻¹ + PᵀN⁻¹P) κ = PᵀN⁻¹γ, written as (I + S PᵀN⁻¹P) κ = S PᵀN⁻¹γ (S is singular at ℓ = 0).
    A = np.eye(N * N) + S @ P.T @ Ninv @ P
    b = S @ P.T @ Ninv @ np.concatenate([g1.ravel(), g2.ravel()])
    return np.linalg.solve(A, b).reshape(N, N)


def test_fourier_wiener_equals_dense_solution():
    sigma = 0.05
    g1, g2, s_k = _data(sigma)
    dense = _dense_wiener(g1.astype(float), g2.astype(float), np.full((N, N), 1 / sigma**2))
    fourier = np.asarray(wiener_fourier(jnp.asarray(g1), jnp.asarray(g2), jnp.asarray(s_k, jnp.float32), sigma**2))
    # float32 FFTs against a float64 dense solve: 1e-4 of the map's rms is the requirement.
    np.testing.assert_allclose(fourier, dense, atol=1e-4 * np.std(dense))


def test_cg_without_mask_reproduces_closed_form():
    sigma = 0.05
    g1, g2, s_k = _data(sigma, key=3)
    fourier = np.asarray(wiener_fourier(jnp.asarray(g1), jnp.asarray(g2), jnp.asarray(s_k, jnp.float32), sigma**2))
    kappa, info = wiener_cg(g1, g2, np.full((N, N), 1 / sigma**2, np.float32), s_k, tol=1e-6, max_iter=500)
    assert info.converged and info.iterations > 0
    # CG stops at relative residual 1e-6 in float32; the solution error is within a few 1e-5 of rms.
    np.testing.assert_allclose(np.asarray(kappa), fourier, atol=1e-4 * np.std(fourier))


def test_cg_with_mask_and_varying_noise_matches_dense_solution():
    rng = np.random.default_rng(0)
    noise_std = rng.uniform(0.03, 0.1, (N, N))
    mask = np.ones((N, N), bool)
    mask[4:8, 3:11] = False
    g1, g2, s_k = _data(0.05, key=5)
    ninv = np.where(mask, 1 / noise_std**2, 0.0)
    g1, g2 = np.where(mask, g1, 0), np.where(mask, g2, 0)
    dense = _dense_wiener(g1.astype(float), g2.astype(float), ninv)
    kappa, info = wiener_cg(g1, g2, ninv.astype(np.float32), s_k, tol=1e-6, max_iter=1000)
    assert info.converged, info
    # Same tolerance reasoning as above; the masked problem is worse conditioned, so 1e-3 of rms.
    np.testing.assert_allclose(np.asarray(kappa), dense, atol=1e-3 * np.std(dense))
