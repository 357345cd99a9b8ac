"""The pieces of the annealed sampler in massmap.infer, each tested alone (no massmap.pipeline).

Targets are Gaussian, where everything is known: leapfrog's energy error (second order in the step size,
reversible), the step-size adaptation (reaches its target acceptance rate), the annealing schedule
(geometric), the driver's restart of chains that produce NaN, and its failure when all do.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from massmap.errors import SamplingError
from massmap.infer.annealed import ADAPT, annealed_hmc, leapfrog, run_level, sigma_schedule
from massmap.infer.likelihood import log_likelihood_and_grad, mean_weight, pad_shear
from massmap.infer.preconditioner import fourier_precision, prior_spectrum
from massmap.infer.sampler import SamplerSettings, mean_and_error, sample_posterior
from massmap.ops.shear import kappa_to_shear
from massmap.ops.spectra import cl_on_grid, gaussian_random_field
from massmap.prior.gaussian import GaussianPrior

PIX, N = 1.0, 16
ELL = np.geomspace(10, 1e5, 200)
CL = 1e-9 * (ELL / 1000.0) ** -1.2
PRIOR = GaussianPrior(ELL, CL, PIX)


def _data(seed=0, noise=0.01):
    kappa = gaussian_random_field(jax.random.PRNGKey(seed), cl_on_grid(ELL, CL, N, N, PIX), PIX)
    g1, g2 = (np.asarray(a) for a in kappa_to_shear(kappa))
    rng = np.random.default_rng(seed)
    g1, g2 = g1 + noise * rng.normal(size=g1.shape), g2 + noise * rng.normal(size=g2.shape)
    return pad_shear(g1, g2, np.full((N, N), noise), np.ones((N, N)), 0), np.asarray(kappa)


def _energy_error(eps, n_steps):
    """|ΔH| of one leapfrog trajectory on −log π = ½ xᵀ x (unit mass): the exact Hamiltonian is conserved."""
    x0 = jax.random.normal(jax.random.PRNGKey(1), (N, N))
    p0 = jax.random.normal(jax.random.PRNGKey(2), (N, N))

    def logl_and_grad(x, sigma):
        return -0.5 * jnp.sum(x * x), -x

    def zero(x, sigma):
        return jnp.zeros_like(x)

    ll0, g0 = logl_and_grad(x0, 0.0)
    x1, p1, ll1, g1, s1, dlp, taken = leapfrog(x0, p0, ll0, g0, zero(x0, 0.0), eps, n_steps, 0.0, logl_and_grad,
                                               zero, lambda p: p)
    h0 = -ll0 + 0.5 * jnp.sum(p0 * p0)
    h1 = -ll1 + 0.5 * jnp.sum(p1 * p1)
    return float(jnp.abs(h1 - h0)), int(taken), (x0, p0, x1, p1, logl_and_grad, zero)


def test_leapfrog_energy_error_is_second_order_and_reversible():
    # a fixed integration time T = 1: the global energy error of leapfrog on a harmonic oscillator is
    # O(ε²); halving ε must divide it by ≈ 4 (between 3 and 5: the ε⁴ term and float32 rounding)
    e1, n1, _ = _energy_error(0.2, 5)
    e2, n2, _ = _energy_error(0.1, 10)
    assert (n1, n2) == (5, 10)
    assert e1 < 0.05 * N * N * 0.2**2  # small against the kinetic energy scale
    assert 3.0 < e1 / e2 < 5.0, (e1, e2)
    # reversibility: integrating back from (x1, −p1) returns to x0 (float32 rounding, 1e-5 of |x| ~ 1)
    _, _, (x0, p0, x1, p1, lg, zero) = _energy_error(0.1, 10)
    ll1, g1 = lg(x1, 0.0)
    xb, pb, *_ = leapfrog(x1, -p1, ll1, g1, zero(x1, 0.0), 0.1, 10, 0.0, lg, zero, lambda p: p)
    np.testing.assert_allclose(np.asarray(xb), np.asarray(x0), atol=1e-5)


def test_step_size_adaptation_reaches_its_target():
    # preconditioned HMC on the Gaussian posterior of a 16² problem with the adaptation on: starting from a
    # step size 4× too large, the mean acceptance over the last 100 of 200 transitions approaches the target
    # (±0.1: the acceptance of single transitions is noisy, a binomial-like spread ~0.3/√100 plus the
    # adaptation's own jitter)
    data, _ = _data()
    mode_var = jnp.asarray(PRIOR.mode_variance(N, N))
    sigma = 1e-3
    alg = annealed_hmc(lambda k, s: log_likelihood_and_grad(k, data, s), lambda k, s: PRIOR.score(k[None], s[None])[0],
                       lambda s: fourier_precision(mode_var, mean_weight(data, s), s), target_accept=0.7)
    state = alg.init(jnp.zeros((N, N)), sigma, np.log(4.0))
    state, _ = jax.jit(lambda st: run_level(alg, jax.random.PRNGKey(0), st, sigma, 100, ADAPT, False))(state)
    state, info = jax.jit(lambda st: run_level(alg, jax.random.PRNGKey(1), st, sigma, 100, ADAPT, False))(state)
    assert abs(float(info.acceptance_rate) - 0.7) < 0.1, float(info.acceptance_rate)
    assert float(info.step_size) < 4.0  # it came down from the start


def test_sigma_schedule_is_geometric():
    s = sigma_schedule(0.1, 1e-3, 5)
    assert s.dtype == np.float32 and len(s) == 5
    np.testing.assert_allclose([s[0], s[-1]], [0.1, 1e-3], rtol=1e-6)
    np.testing.assert_allclose(s[1:] / s[:-1], np.full(4, 10 ** -0.5), rtol=1e-5)  # constant ratio
    assert sigma_schedule(0.1, 1e-3, 1).tolist() == [pytest.approx(1e-3)]  # one level: σ_min alone
    settings = SamplerSettings(n_samples=4, chains=2, sigma_max=0.1, sigma_min=1e-3, n_levels=5)
    np.testing.assert_array_equal(settings.schedule, s)
    assert settings.draws_per_chain == 2
    with pytest.raises(ValueError, match="sigma_min"):
        SamplerSettings(n_samples=4, chains=2, sigma_max=1e-3, sigma_min=0.1)


class PoisonedPrior:
    """The Gaussian prior, but its score is NaN where σ < ``below`` and κ[0, 0] > ``above``: some chains
    reach that region (they are restarted with new keys), and with ``above`` = −∞ all of them do."""

    name, pixel_size_arcmin, grid_multiple, sigma_min, sigma_max, kappa_std = "poisoned", PIX, 1, None, None, None

    def __init__(self, below, above):
        self.below, self.above = below, above

    def mode_variance(self, ny, nx):
        return None  # a 'learned' prior: the sampler probes it (and falls back to the reference)

    def score(self, kappa, sigma):
        out = PRIOR.score(kappa, sigma)
        bad = (sigma < self.below) & (kappa[:, 0, 0] > self.above)
        return jnp.where(bad[:, None, None], jnp.nan, out)


def test_driver_restarts_nan_chains_and_fails_when_all_fail():
    data, truth = _data(seed=3)
    settings = SamplerSettings(n_samples=8, chains=8, sigma_max=0.05, sigma_min=2e-3, n_levels=4, burn_in=1,
                               max_restarts=3)
    # the posterior of κ[0, 0] is centred near its true value: about half of the chains cross it
    poisoned = PoisonedPrior(below=0.01, above=float(truth[0, 0]))
    # the probe of the score near κ = 0 sees NaN (κ[0,0] > 0 in half the probes): the reference spectrum is used
    _, how = prior_spectrum(poisoned, jax.random.PRNGKey(0), (N, N), 2e-3, reference=PRIOR)
    assert how.startswith("gaussian prior C_ell (")
    res = sample_posterior(jax.random.PRNGKey(0), data, poisoned, settings, pad=0, chunk=8, reference=PRIOR)
    info = res.info
    assert info.n_failed_runs > 0 and info.n_restarts > 0  # detected and re-run
    assert np.all(np.isfinite(res.samples)) and len(res.samples) == info.n_chains_used
    assert info.n_chains_used == 8 - info.n_dropped
    with pytest.raises(SamplingError, match="all 8 posterior chains"):
        sample_posterior(jax.random.PRNGKey(0), data, PoisonedPrior(below=1.0, above=-np.inf), settings, pad=0,
                         chunk=8, reference=PRIOR)


@pytest.mark.parametrize("denoise", ["draw", "tweedie"])
def test_final_conditional_draw_restores_the_prior_variance(denoise):
    """Prior only (no data), Gaussian prior S, σ_min² = the median mode variance: the chains draw κ_σ from
    N(0, S + σ²); a conditional draw (mean S/(S+σ²) κ_σ, variance σ²S/(S+σ²)) has variance S exactly,
    Tweedie's mean alone S²/(S+σ²) (half of S where s_k = σ²). Per-mode variance / S averaged over the
    modes above and below the median: 64 draws × ~127 modes per half, standard error ≈ 2–3% (draws of a
    chain are correlated a little), so the 8% tolerance passes 'draw' and fails 'tweedie' by > 6 errors."""
    zero = np.zeros((N, N))
    data = pad_shear(zero, zero, np.full((N, N), 0.01), np.zeros((N, N)), 0)  # mask 0: no data
    s = np.asarray(PRIOR.mode_variance(N, N), np.float64)
    sigma = float(np.sqrt(np.median(s[s > 0])))
    settings = SamplerSettings(n_samples=64, chains=8, sigma_max=4 * float(np.sqrt(s.max())), sigma_min=sigma,
                               n_levels=6, burn_in=4, denoise=denoise)
    res = sample_posterior(jax.random.PRNGKey(5), data, PRIOR, settings, pad=0, chunk=8)
    power = np.mean(np.abs(np.fft.fft2(res.samples)) ** 2, axis=0) / (N * N)  # per-mode variance, S's units
    ratio = power[s > 0] / s[s > 0]
    high, low = s[s > 0] <= sigma**2, s[s > 0] > sigma**2  # small scales (σ² ≥ s_k), large scales
    expected = {"draw": (1.0, 1.0), "tweedie": tuple(np.mean((s[s > 0] / (s[s > 0] + sigma**2))[m])
                                                     for m in (high, low))}[denoise]
    np.testing.assert_allclose([ratio[high].mean(), ratio[low].mean()], expected, rtol=0.08)
    if denoise == "tweedie":
        assert ratio[high].mean() < 0.7  # the deficit that 'draw' removes
    assert res.samples.mean(axis=(1, 2)) == pytest.approx(0.0, abs=1e-6)  # the grid mean stays at 0


def _pipeline_prediction(s, n, sigma2, denoise):
    """Per-mode (mean filter on the periodic KS map, variance) of the samples that the annealed sampler
    gives for a Gaussian prior S = s, uniform noise n per mode and no mask, stopped at σ² = sigma2.

    The chains target p_σ(κ_σ) L_σ(κ_σ), L_σ the annealed likelihood (noise n + σ²): κ_σ | d ~ N(μ d, v)
    with μ = (s + σ²)/(s + n + 2σ²), v = μ (n + σ²). Then p(κ | κ_σ) = N(a κ_σ, c), a = s/(s + σ²),
    c = aσ²; with the data the final draw has variance (1/c + 1/n)⁻¹ and mean (aκ_σ/c + d/n)(1/c + 1/n)⁻¹;
    without them, variance c and mean aκ_σ. (L_σ is the usual annealing approximation of p(d | κ_σ),
    exact as σ → 0; the exact posterior is the Wiener filter s/(s + n) with variance sn/(s + n).)"""
    ok = s > 0
    s = np.where(ok, s, 1.0)
    mu = (s + sigma2) / (s + n + 2 * sigma2)
    v, a = mu * (n + sigma2), s / (s + sigma2)
    c = a * sigma2
    if denoise == "draw_given_data":
        post = 1.0 / (1.0 / c + 1.0 / n)
        gain = post * a / c
        mean, var = gain * mu + post / n, post + gain**2 * v
    else:
        mean, var = a * mu, c + a**2 * v
    return np.where(ok, mean, 0.0), np.where(ok, var, 0.0)


@pytest.mark.parametrize("denoise", ["draw_given_data", "draw"])
def test_final_draw_with_and_without_the_data_in_the_gaussian_limit(denoise):
    """Gaussian prior, uniform noise, no mask, pad 0, chains stopped at σ_min² = the noise variance n per
    mode (a large σ_min, where the two final steps differ most): the samples' mean and per-mode variance
    are the analytic prediction of :func:`_pipeline_prediction`. The mean of antithetic pairs has no
    Monte-Carlo noise in the Gaussian limit (float32: ≲ 0.01 posterior σ); the mode-averaged variance of
    64 draws from 8 chains over 255 modes has ~2% error (5% tolerance). Against the exact posterior, the
    draw given the data has 0.945 × its variance, the data-blind draw 2.5 ×: the test tells them apart."""
    from massmap.ops.shear import shear_to_kappa

    noise = 0.01
    data, _ = _data(seed=6, noise=noise)
    s = np.asarray(PRIOR.mode_variance(N, N), np.float64)
    # the prediction is the inflated likelihood's (the split one at this σ_min: tests/test_split_likelihood.py)
    settings = SamplerSettings(n_samples=64, chains=8, sigma_max=0.3, sigma_min=noise, n_levels=6, burn_in=4,
                               denoise=denoise, likelihood="inflated")
    res = sample_posterior(jax.random.PRNGKey(7), data, PRIOR, settings, pad=0, chunk=8)
    gain, var = _pipeline_prediction(s, noise**2, noise**2, denoise)
    kappa_e = np.fft.fft2(np.asarray(shear_to_kappa(data.g1, data.g2)[0], np.float64))
    predicted_mean = np.fft.ifft2(kappa_e * gain).real
    exact_var = s * noise**2 / (s + noise**2)
    post_sd = float(np.sqrt(np.mean(exact_var[s > 0])))
    assert np.sqrt(np.mean((res.mean - predicted_mean) ** 2)) < 0.01 * post_sd
    dev = np.fft.fft2(res.samples - res.samples.mean(axis=0))
    measured = np.mean(np.abs(dev) ** 2, axis=0)[s > 0] / (N * N) * 64 / 63
    assert np.mean(measured / var[s > 0]) == pytest.approx(1.0, rel=0.05)
    to_exact = np.mean(var[s > 0] / exact_var[s > 0])
    assert to_exact == pytest.approx(0.945 if denoise == "draw_given_data" else 2.52, rel=0.01)


def test_posterior_mean_averages_the_conditional_means():
    """With 'draw' the mean is Rao–Blackwellised: the average of the draws' conditional means, which are
    the 'tweedie' samples of the same chains (the final draw does not move a chain), not the average of
    the draws. Float32 rounding of two different reductions: 1e-6 of the map rms. Independent chains
    (in an antithetic pair the draws' own noise cancels in the average anyway)."""
    data, _ = _data(seed=4)
    common = dict(n_samples=8, chains=4, sigma_max=0.05, sigma_min=2e-3, n_levels=4, burn_in=1, antithetic=False)
    runs = {how: sample_posterior(jax.random.PRNGKey(2), data, PRIOR, SamplerSettings(denoise=how, **common),
                                  pad=0, chunk=4) for how in ("draw", "tweedie")}
    draw, tweedie = runs["draw"], runs["tweedie"]
    rms = float(np.sqrt(np.mean(tweedie.mean ** 2)))
    np.testing.assert_allclose(draw.mean, tweedie.samples.mean(axis=0), atol=1e-6 * rms)
    # power of the check: the draws differ from their conditional means by the draw's spread, per pixel
    # √(mean_k σ² s_k / (s_k + σ²)) (8 draws × 256 pixels: ~3% error; 15% tolerance), and so does their
    # average by that spread / √8
    s = np.asarray(PRIOR.mode_variance(N, N), np.float64)
    spread = np.sqrt(np.mean(np.where(s > 0, 2e-3**2 * s / (s + 2e-3**2), 0.0)))
    assert np.sqrt(np.mean((draw.samples - tweedie.samples) ** 2)) == pytest.approx(spread, rel=0.15)
    assert np.sqrt(np.mean((draw.mean - draw.samples.mean(axis=0)) ** 2)) > 0.2 * spread


def test_mean_error_of_unequal_units_is_unbiased():
    """The ratio estimator of the mean's Monte-Carlo variance over units of unequal sizes (a pair, a
    lone chain, a partial chain): for i.i.d. N(0, 1) draws the mean of N draws has variance 1/N; over
    4000 repetitions (64 pixels each) the estimate averages to it within 5% (the estimator's relative
    spread with 6 units is ~0.6, so the standard error of the average is < 1%; the ratio estimator's
    own O(1/U) bias is a few %). For equal units it is var(unit means)/U exactly."""
    rng = np.random.default_rng(0)
    sizes = np.array([2, 2, 2, 1, 2, 1])
    est = []
    for _ in range(4000):
        draws = [rng.normal(size=(k, 8, 8)) for k in sizes]
        mean, err = mean_and_error([d.sum(axis=0) for d in draws], list(sizes))
        est.append(np.mean(err**2))
    assert np.mean(est) == pytest.approx(1 / sizes.sum(), rel=0.05)
    units = rng.normal(size=(5, 4, 4))
    mean, err = mean_and_error([2 * u for u in units], [2] * 5)
    np.testing.assert_allclose(mean, units.mean(axis=0))
    np.testing.assert_allclose(err**2, units.var(axis=0, ddof=1) / 5)
    assert mean_and_error([units[0]], [1])[1] is None  # one unit: no estimate
