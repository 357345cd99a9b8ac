"""Shear operators: Kaiser-Squires against exact inverses and the analytic shear of a Gaussian κ."""
import jax
import jax.numpy as jnp
import numpy as np

from massmap.ops.shear import kaiser_squires, kappa_to_shear, shear_adjoint, shear_to_kappa


def test_ks_inverts_lensing_operator_on_zero_mean_periodic_fields():
    kappa = jax.random.normal(jax.random.PRNGKey(0), (32, 48))
    kappa = kappa - kappa.mean()
    g1, g2 = kappa_to_shear(kappa)
    ke, kb = shear_to_kappa(g1, g2)
    # float32 FFT round trip: errors ~1e-6 of the field's rms.
    np.testing.assert_allclose(ke, kappa, atol=1e-5)
    np.testing.assert_allclose(kb, 0.0, atol=1e-5)


def test_pure_b_mode_goes_to_kappa_b():
    # A B-mode field is the shear of i·κ_B: γ = D (i κ̂_B).
    kb_true = jax.random.normal(jax.random.PRNGKey(1), (32, 32))
    kb_true = kb_true - kb_true.mean()
    from massmap.ops.shear import shear_kernel

    g = jnp.fft.ifft2(shear_kernel(32, 32) * jnp.fft.fft2(1j * kb_true))
    ke, kb = shear_to_kappa(g.real, g.imag)
    np.testing.assert_allclose(kb, kb_true, atol=1e-5)
    np.testing.assert_allclose(ke, 0.0, atol=1e-5)


def test_adjoint_identity():
    # <P k, g> = <k, Pᵀ g> for random real fields (float32: rtol 1e-4).
    k = jax.random.normal(jax.random.PRNGKey(2), (16, 24))
    g1, g2 = jax.random.normal(jax.random.PRNGKey(3), (2, 16, 24))
    p1, p2 = kappa_to_shear(k)
    lhs = jnp.sum(p1 * g1 + p2 * g2)
    rhs = jnp.sum(k * shear_adjoint(g1, g2))
    np.testing.assert_allclose(lhs, rhs, rtol=1e-4)


def test_gaussian_profile_tangential_shear_sign_and_amplitude():
    # Analytic: κ = κ0 exp(−r²/2s²), κ̄(<r) = κ0 (2s²/r²)(1 − exp(−r²/2s²)), γ_t = κ̄ − κ, and in the
    # native frame γ1 = −γ_t cos 2φ, γ2 = −γ_t sin 2φ. The periodic operator on a large grid must agree.
    n, s, k0 = 128, 4.0, 0.2
    y, x = np.mgrid[:n, :n] - n / 2
    r2 = x**2 + y**2
    kappa = k0 * np.exp(-r2 / (2 * s**2))
    g1, g2 = (np.asarray(a) for a in kappa_to_shear(jnp.asarray(kappa - kappa.mean())))
    phi = np.arctan2(y, x)
    with np.errstate(invalid="ignore", divide="ignore"):
        kbar = np.where(r2 > 0, k0 * 2 * s**2 / r2 * (1 - np.exp(-r2 / (2 * s**2))), k0)
    gt = kbar - kappa
    ring = (r2 > 9) & (r2 < 20**2)
    # Periodic images and the removed mean perturb γ at the 1e-3 level of its 0.05 peak.
    np.testing.assert_allclose(g1[ring], -gt[ring] * np.cos(2 * phi[ring]), atol=2e-3)
    np.testing.assert_allclose(g2[ring], -gt[ring] * np.sin(2 * phi[ring]), atol=2e-3)


def test_padding_reduces_edge_leakage():
    # A field with data only in the middle: padded KS of its shear reproduces κ better at the edges.
    n = 32
    kappa = np.zeros((n, n), np.float32)
    kappa[12:20, 12:20] = 0.1
    g1, g2 = kappa_to_shear(jnp.asarray(kappa, jnp.float32))
    ke0, _ = kaiser_squires(g1, g2, pad=0)
    np.testing.assert_allclose(ke0, kappa - kappa.mean(), atol=1e-5)  # periodic: exact up to the mean
    ke16, kb16 = kaiser_squires(g1, g2, pad=16)
    assert ke16.shape == (n, n) and kb16.shape == (n, n)
