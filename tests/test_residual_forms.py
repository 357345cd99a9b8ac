"""How the network output enters the DSM residual (massmap.prior.dsm): 'edm' and 'mean-shift'.

Exact algebra (no training): with the same parameters the two forms differ only by the per-mode
filter w_k = σ²/(s_k + σ²) against the EDM scale c = 1/√(1 + σ²), and the mean-shift score is
−(S + σ²)⁻¹(x − σF). The stability property the form was chosen for is shown on a network whose
output is a linear response F = H·(c x): the Jacobian of the score in every Fourier mode stays negative
(restoring) for H < 1/(σc), while the EDM form with the same response overturns the large-scale
modes at small σ. Prior files without the attribute load as 'edm' (files made before the option).
"""
from __future__ import annotations

import h5py
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from massmap.config import load_config
from massmap.config.core import ConfigError
from massmap.config.prior import residual_form
from massmap.io.output import InputError
from massmap.io.priors import load_prior, write_prior
from massmap.prior.dsm import base_residual, mean_shift_output, residual_network
from massmap.prior.gaussian import gaussian_score
from massmap.prior.unet import UNetSpec

N = 16


def red_spectrum(n=N):
    """Per-mode variances falling as k⁻³ (normalised units): s_k ≫ σ² at low k for the σ used here."""
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(n) * n, np.fft.fftfreq(n) * n, indexing="ij"))
    s = 50.0 * np.maximum(k, 1.0) ** -3.0
    return jnp.asarray(s / s.mean(), jnp.float32)


def perturbed(params, key, scale=0.05):
    """Parameters with every leaf nudged (the zero-initialised output conv would make F ≡ 0)."""
    leaves, tree = jax.tree_util.tree_flatten(params)
    keys = jax.random.split(key, len(leaves))
    return jax.tree_util.tree_unflatten(tree, [x + scale * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])


def test_forms_differ_by_the_mean_shift_filter():
    """F[r_ms − b] = w_k / c · F[r_edm − b] to float32 rounding (relative 1e-5 of the largest coefficient)."""
    spec = UNetSpec((4, 8), 1, 8, False, 4.0)
    edm, ms = residual_network(spec), residual_network(spec._replace(residual="mean-shift"))
    x = jax.random.normal(jax.random.PRNGKey(0), (3, N, N))
    sigma = jnp.array([0.05, 0.5, 3.0], jnp.float32)
    mv = red_spectrum()
    params, state = edm.init(jax.random.PRNGKey(1), x, sigma, mv)
    params = perturbed(params, jax.random.PRNGKey(2))
    b = base_residual(x, sigma, mv)
    f_edm = edm.apply(params, state, None, x, sigma, mv)[0] - b
    f_ms = ms.apply(params, state, None, x, sigma, mv)[0] - b
    assert float(jnp.abs(f_edm).max()) > 1e-3  # the network output is not trivially zero
    c = 1.0 / jnp.sqrt(1.0 + sigma**2)
    w = sigma[:, None, None] ** 2 / (mv + sigma[:, None, None] ** 2)
    expect = jnp.fft.fft2(f_edm) * (w / c[:, None, None])
    got = jnp.fft.fft2(f_ms)
    assert float(jnp.abs(got - expect).max()) < 1e-5 * float(jnp.abs(expect).max())


def test_mean_shift_score_is_a_shifted_gaussian_score():
    """r/σ = −(S + σ²)⁻¹(x − σF) for any output F (here random maps), to float32 rounding."""
    x, f = jax.random.normal(jax.random.PRNGKey(3), (2, 2, N, N))
    sigma = jnp.array([0.1, 2.0], jnp.float32)
    mv = red_spectrum()
    r = base_residual(x, sigma, mv) + mean_shift_output(f, sigma, mv)
    expect = gaussian_score(x - sigma[:, None, None] * f, sigma, mv)
    assert float(jnp.abs(r / sigma[:, None, None] - expect).max()) < 1e-5 * float(jnp.abs(expect).max())


@pytest.mark.parametrize("sigma", [0.02, 0.1, 0.5])
def test_linear_response_stays_restoring_only_with_mean_shift(sigma):
    """A network answering F = H·(c x) (H = 0.5: a modest gain): the score's Jacobian per Fourier mode.

    mean-shift: −(1 − σcH)/(s_k + σ²) < 0 in every mode (restoring; exact, so to rounding);
    edm: −1/(s_k + σ²) + c²H/σ, positive (the mode runs away) wherever s_k + σ² > σ/(c²H), i.e. in the
    large-scale modes of the red spectrum at these σ. The check has power: the edm form fails it.
    """
    h, mv = 0.5, red_spectrum()
    c = 1.0 / np.sqrt(1.0 + sigma**2)
    sig = jnp.full((1,), sigma, jnp.float32)
    def score(x, form):
        f = h * c * x
        out = mean_shift_output(f, sig, mv) if form == "mean-shift" else f * c
        return (base_residual(x, sig, mv) + out) / sigma

    for form, restoring in (("mean-shift", True), ("edm", False)):
        # the score is linear in x here: its Fourier diagonal is the response to a delta map
        delta = jnp.zeros((1, N, N)).at[0, 0, 0].set(1.0)
        diag = jnp.fft.fft2(score(delta, form)[0]).real
        assert bool(jnp.all(diag < 0)) == restoring, (form, float(diag.max()))
    expect = -(1.0 - sigma * c * h) / (mv + sigma**2)
    diag = jnp.fft.fft2(score(jnp.zeros((1, N, N)).at[0, 0, 0].set(1.0), "mean-shift")[0]).real
    assert float(jnp.abs(diag - expect).max()) < 1e-4 * float(jnp.abs(expect).max())


def test_config_default_and_unknown_form():
    assert residual_form(load_config([], ["prior.hybrid=true"]).prior) == "mean-shift"
    assert residual_form(load_config([], []).prior) == "edm"
    assert residual_form(load_config([], ["prior.hybrid=true", "prior.residual=edm"]).prior) == "edm"
    with pytest.raises(ConfigError, match="prior.residual"):
        load_config([], ["prior.residual=whitened"])


def _write(path, residual):
    spec = UNetSpec((4, 8), 1, 8, False, 4.0, residual=residual or "edm")
    net = residual_network(spec)
    x = jnp.zeros((1, N, N))
    params, _ = net.init(jax.random.PRNGKey(0), x, jnp.ones((1,)), jnp.ones((N, N)))
    params = perturbed(params, jax.random.PRNGKey(5))
    write_prior(path, params, spec, pixel_size_arcmin=1.0, npix=N, sigma_min=1e-3, sigma_max=0.1,
                sigma_distribution="log-uniform", kappa_mean=0.0, kappa_std=0.01, cl_table=None,
                history={}, info={})
    if residual is None:  # a file written before the option existed: no 'residual' in its architecture
        with h5py.File(path, "r+") as f:
            import json
            arch = json.loads(f["meta"]["architecture"][()])
            del arch["residual"]
            del f["meta"]["architecture"]
            f["meta"].create_dataset("architecture", data=json.dumps(arch))
    return params


def test_prior_files_record_the_form(tmp_path):
    """A written form is read back; files without it are 'edm'; an unknown one is a one-line error."""
    _write(tmp_path / "ms.h5", "mean-shift")
    assert load_prior(tmp_path / "ms.h5").spec.residual == "mean-shift"
    _write(tmp_path / "old.h5", None)
    old, ms = load_prior(tmp_path / "old.h5"), load_prior(tmp_path / "ms.h5")
    assert old.spec.residual == "edm"
    kappa = 0.01 * jax.random.normal(jax.random.PRNGKey(7), (1, N, N))
    sigma = jnp.full((1,), 0.01)
    assert not np.allclose(old.score(kappa, sigma), ms.score(kappa, sigma))  # the form is used
    with h5py.File(tmp_path / "ms.h5", "r+") as f:
        import json
        arch = json.loads(f["meta"]["architecture"][()])
        arch["residual"] = "whitened"
        del f["meta"]["architecture"]
        f["meta"].create_dataset("architecture", data=json.dumps(arch))
    with pytest.raises(InputError, match="residual 'whitened'"):
        load_prior(tmp_path / "ms.h5")
