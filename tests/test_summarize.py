"""``massmap summarize``: metrics against hand-computed values, calibration of exact Gaussian posteriors,
peak finding, the B-mode null test, and the command end to end (outputs, report, one-line errors)."""
import json
from html.parser import HTMLParser

import jax
import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner

from massmap.cli import main
from massmap.config import load_config
from massmap.geometry import FlatGrid
from massmap.io.maps import write_maps
from massmap.io.output import provenance
from massmap.ops.shear import kappa_to_shear
from massmap.ops.spectra import ARCMIN, cl_on_grid, gaussian_random_field
from massmap.binning import BinnedShear
from massmap.pipeline.reconstruct import compute_maps, run_reconstruct
from massmap.io.reconstruction import read_reconstruction, recorded_config
from massmap.pipeline.noise import noise_statistics
from massmap.pipeline.summarize import run_summarize
from massmap.summarize import samples as sample_stats
from massmap.summarize import stats

from conftest import write_table

N = 32
PIX = 2.0
GRID = FlatGrid(150.0, 2.0, PIX, N, N)


# ---------------------------------------------------------------- metrics on small arrays

def test_rmse_and_pearson_match_hand_computed_values():
    est = np.array([[1.0, 2.0], [3.0, 10.0]])
    truth = np.array([[1.0, 1.0], [1.0, -5.0]])
    mask = np.array([[1, 1], [1, 0]])  # the last pixel has no data and must be ignored
    # differences inside: 0, 1, 2 → RMSE = sqrt(5/3)
    assert stats.rmse(est, truth, mask) == pytest.approx(np.sqrt(5 / 3), rel=1e-12)
    # means removed: est − 2 = (−1, 0, 1), truth − 1 = 0 → RMSE = sqrt(2/3)
    assert stats.rmse(est, truth, mask, remove_mean=True) == pytest.approx(np.sqrt(2 / 3), rel=1e-12)
    a = np.array([[1.0, 2.0], [3.0, 99.0]])
    b = np.array([[2.0, 4.0], [5.0, -7.0]])
    # inside: a = (1, 2, 3), b = (2, 4, 5): centred (−1, 0, 1), (−5/3, 1/3, 4/3): r = 3 / sqrt(2 · 14/3)
    assert stats.pearson_r(a, b, mask) == pytest.approx(3 / np.sqrt(2 * 14 / 3), rel=1e-12)
    assert stats.pearson_r(a, -a, None) == pytest.approx(-1.0, abs=1e-12)


def _grf(seed, n=64, pix=PIX):
    ell = np.geomspace(1, 1e5, 100)
    cl = cl_on_grid(ell, 1e-9 * (ell / 1000) ** -1.2, n, n, pix)
    return np.asarray(gaussian_random_field(jax.random.PRNGKey(seed), cl, pix), np.float64)


def test_cross_correlation_coefficient_self_and_independent():
    a, b = _grf(1), _grf(2)
    edges = stats.ell_bin_edges(64, 64, PIX, 8)
    _, r_self = stats.cross_correlation_coefficient(a, a, PIX, edges)
    np.testing.assert_allclose(r_self, 1.0, atol=1e-12)  # a map with itself: exactly 1 per bin
    _, r_ind = stats.cross_correlation_coefficient(a, b, PIX, edges)
    _, _, modes = stats.masked_spectrum(a, PIX, edges)
    # Independent fields: r per bin scatters around 0 with σ ≈ 1/sqrt(modes); allow 5σ per bin and
    # require the mode-weighted mean to be within 5σ of its own error.
    assert np.all(np.abs(r_ind) < 5 / np.sqrt(modes)), (r_ind, modes)
    assert abs(np.sum(r_ind * modes) / modes.sum()) < 5 / np.sqrt(modes.sum())
    # and a map against a noisy copy of itself: r = 1/sqrt(1 + N/S) in every bin (N = S here → 0.707)
    _, r_half = stats.cross_correlation_coefficient(a, a + b, PIX, edges)
    big = modes > 200  # bins with enough modes for the ratio of the two spectra to be ≈ 1 (±15 %)
    np.testing.assert_allclose(r_half[big], 1 / np.sqrt(2), atol=0.08)


def test_gaussian_smoothing_of_a_delta_is_the_normalised_gaussian():
    delta = np.zeros((41, 41))
    delta[20, 20] = 1.0
    s = 2.5
    out = stats.gaussian_smooth(delta, s)
    y, x = np.mgrid[:41, :41] - 20
    expect = np.exp(-(x**2 + y**2) / (2 * s**2)) / (2 * np.pi * s**2)
    # The sampled Gaussian sums to 1 up to ~1e-12 for σ ≥ 1 pixel, so the discrete kernel equals the
    # continuous one to that level (and nothing wraps around: 4σ padding).
    np.testing.assert_allclose(out, expect, atol=1e-9)
    assert out.sum() == pytest.approx(1.0, abs=1e-9)


# ---------------------------------------------------------------- calibration

def test_coverage_of_exact_gaussian_posterior_is_nominal_and_overconfidence_is_caught():
    rng = np.random.default_rng(3)
    mu = rng.normal(0, 0.02, (N, N))
    sd = rng.uniform(0.005, 0.02, (N, N))
    truth = mu + sd * rng.normal(size=(N, N))
    n = 200
    samples = mu + sd * rng.normal(size=(n, N, N))
    levels = np.array([0.1, 0.3, 0.5, 0.68, 0.8, 0.9, 0.95, 0.99])
    cov = stats.coverage(samples, truth, levels)
    err = stats.binomial_error(levels, N * N)
    # Independent pixels: the coverage fraction is binomial; 3.5σ plus the 1/(n+1) rank discreteness.
    assert np.all(np.abs(cov - levels) < 3.5 * err + 1 / (n + 1)), (cov, levels)
    z = stats.zscores(truth, mu, sd)
    assert abs(z.mean()) < 4 / np.sqrt(N * N) and abs(z.std() - 1) < 4 / np.sqrt(2 * N * N)
    # A posterior twice too narrow covers far less: at α = 0.68 the coverage is P(|z| < 0.47) = 0.36.
    narrow = mu + 0.5 * sd * rng.normal(size=(n, N, N))
    cov_n = stats.coverage(narrow, truth, [0.68])[0]
    assert abs(cov_n - 0.362) < 0.05 and cov_n < 0.68 - 5 * err[3]


@pytest.mark.parametrize("n", [4, 8, 16])
def test_coverage_is_nominal_with_few_samples(n):
    """Exchangeable truth and samples (the truth is one more draw): coverage = α at every level even for
    n = 4..16 samples, within 4 binomial errors of 40 000 independent pixels. Counting each PIT cell
    by its midpoint (the previous estimator) gives 1.00 at α = 0.95 for n ≤ 18 (a truth below every
    sample was inside the interval), and this test failed with it."""
    rng = np.random.default_rng(n)
    m = 200
    draws = rng.normal(size=(n + 1, m, m))
    levels = np.array([0.5, 0.68, 0.9, 0.95])
    cov = stats.coverage(draws[1:], draws[0], levels)
    err = stats.binomial_error(levels, m * m)
    assert np.all(np.abs(cov - levels) < 4 * err), (n, cov)


# ---------------------------------------------------------------- peaks

def test_peak_finder_recovers_planted_peaks():
    rng = np.random.default_rng(4)
    snr = rng.normal(0, 0.3, (N, N))
    planted = [(8, 9, 9.0), (20, 5, 7.0), (25, 25, 5.0), (10, 24, 4.0), (1, 16, 6.0)]
    y, x = np.mgrid[:N, :N]
    for py, px, amp in planted:
        snr += amp * np.exp(-((x - px) ** 2 + (y - py) ** 2) / (2 * 1.2**2))
    allowed = stats.allowed_region(np.ones((N, N)), 0)
    iy, ix = stats.find_peaks(snr, allowed, threshold=3.0)
    assert list(zip(iy, ix)) == [(p[0], p[1]) for p in sorted(planted, key=lambda p: -p[2])]
    # 2 pixels from the edge: the peak at row 1 is excluded, the others stay
    iy, ix = stats.find_peaks(snr, stats.allowed_region(np.ones((N, N)), 2.0), threshold=3.0)
    assert (1, 16) not in list(zip(iy, ix)) and len(iy) == 4
    # no-data pixels: a peak next to a masked block is excluded with edge_pix = 1.5
    mask = np.ones((N, N))
    mask[8, 10:13] = 0  # one pixel East of the peak at (8, 9)
    iy, _ = stats.find_peaks(snr, stats.allowed_region(mask, 1.5), threshold=3.0)
    assert 8 not in iy.tolist()
    assert len(stats.find_peaks(snr, allowed, threshold=9.5)[0]) == 0


# ---------------------------------------------------------------- noise realisations and the null test

def test_noise_realisations_gaussian_rotation_and_chunking():
    rng = np.random.default_rng(5)
    g1, g2 = rng.normal(0, 0.05, (2, N, N))
    sd = rng.uniform(0.01, 0.05, (N, N))
    mask = np.ones((N, N))
    mask[:4] = 0
    key = jax.random.PRNGKey(0)
    n1, n2 = stats.shear_noise_realisations(key, g1, g2, sd, mask, np.arange(40), "gaussian")
    w = (n1 / sd)[:, mask > 0]
    # standardised noise: mean 0, variance 1 over 40 × 896 draws (tolerances 5σ of the estimators)
    assert abs(w.mean()) < 5 / np.sqrt(w.size) and abs(w.var() - 1) < 5 * np.sqrt(2 / w.size)
    assert np.all(n1[:, mask == 0] == 0) and np.all(n2[:, mask == 0] == 0)
    a1, _ = stats.shear_noise_realisations(key, g1, g2, sd, mask, np.arange(30, 70), "gaussian")
    np.testing.assert_array_equal(a1[:10], n1[30:])  # realisation i depends on i only, not on the chunking
    r1, r2 = stats.shear_noise_realisations(key, g1, g2, sd, mask, np.arange(40), "rotate")
    # rotation keeps every pixel's |γ| and randomises its angle
    np.testing.assert_allclose(np.hypot(r1, r2)[:, mask > 0], np.broadcast_to(np.hypot(g1, g2), r1.shape)[:, mask > 0],
                               rtol=1e-5)
    assert abs(np.mean(r1[:, mask > 0] * g1[mask > 0] + r2[:, mask > 0] * g2[mask > 0])) < 1e-3


def test_null_test_statistics():
    rng = np.random.default_rng(6)
    x = rng.normal(1.0, 0.1, (200, 6))
    ok = stats.null_test(rng.normal(1.0, 0.1, 6), x)
    assert ok["dof"] == 6 and ok["p_value"] > 1e-3  # a draw from the null (fails with probability 1e-3)
    bad = stats.null_test(1.0 + 0.1 * np.array([4.0, 0, 0, 0, 0, 4.0]), x)  # χ² ≈ 32 for 6 dof
    assert bad["p_value"] < 1e-4 and bad["p_value_empirical"] == pytest.approx(1 / 201)


def test_batched_compute_maps_equals_single_runs(tmp_path):
    # summarize runs the reconstruction's own solvers on a batch of noise realisations at once.
    rng = np.random.default_rng(7)
    cfg = load_config(overrides=["pad=4", "wiener.cl_file=" + str(_cl_file(tmp_path)), "wiener.tol=1e-6"])
    mask = np.ones((N, N), np.uint8)
    mask[:6, :6] = 0
    sd = np.where(mask > 0, 0.02, 0.0).astype(np.float32)
    g = (rng.normal(0, 0.02, (3, 2, N, N)) * mask).astype(np.float32)
    batch, _ = compute_maps(BinnedShear(GRID, g[:, 0], g[:, 1], sd, mask), cfg, ("ks", "wiener"))
    for i in range(3):
        one, info = compute_maps(BinnedShear(GRID, g[i, 0], g[i, 1], sd, mask), cfg, ("ks", "wiener"))
        assert info["wiener_solver"] == "conjugate gradients"
        np.testing.assert_allclose(batch["KAPPA_KS"][i], one["KAPPA_KS"], atol=1e-7)
        # both solutions meet |r|/|b| < 1e-6 (joint residual for the batch): equal to ~1e-5 relative
        scale = np.abs(one["KAPPA_WIENER"]).max()
        np.testing.assert_allclose(batch["KAPPA_WIENER"][i], one["KAPPA_WIENER"], atol=2e-4 * scale)


def _cl_file(tmp_path):
    ell = np.geomspace(10, 1e5, 50)
    path = tmp_path / "cl.txt"
    np.savetxt(path, np.c_[ell, 1e-9 * (ell / 1000) ** -1.2])
    return path


def _shear_file(path, g1, g2, sd, mask, cfg):
    images = {"GAMMA1": g1 * mask, "GAMMA2": g2 * mask, "NOISE_STD": sd * mask, "MASK": mask.astype(np.uint8)}
    write_maps(path, GRID, images, provenance(cfg, "test"))
    return path


def test_ks_noise_sigma_and_b_mode_null_test_end_to_end(tmp_path):
    # Pure-noise shear, periodic KS (pad = 0), no mask: KS is unitary on ℓ ≠ 0 modes and drops ℓ = 0,
    # so the per-pixel noise σ of κ_E is σ_γ sqrt(1 − 1/N²·...) = σ_γ sqrt(1 − 1/(ny nx)).
    rng = np.random.default_rng(8)
    sd = 0.03
    cfg = load_config(overrides=["pad=0", "wiener.cl_file=" + str(_cl_file(tmp_path))])
    ones = np.ones((N, N))
    _shear_file(tmp_path / "noise.fits", rng.normal(0, sd, (N, N)), rng.normal(0, sd, (N, N)), sd, ones, cfg)
    run_reconstruct(cfg, tmp_path / "noise.fits", tmp_path / "rec.fits", method="ks", plot=False)
    scfg = load_config(overrides=["seed=3", "summarize.n_noise=30", "summarize.noise_chunk=30",
                                  "summarize.smoothing_arcmin=0"])
    m = run_summarize(scfg, tmp_path / "rec.fits", tmp_path / "s1", progress=False)
    with fits.open(tmp_path / "s1" / "snr.fits") as h:
        sigma = h["SIGMA_KS"].data.astype(float)
    # mean of 1024 per-pixel std estimates from 30 draws: statistical error ≈ 0.4 %, bias ≈ −0.8 %
    assert sigma.mean() == pytest.approx(sd * np.sqrt(1 - 1 / N**2), rel=0.03)
    null = m["b_mode_null_test"]
    assert null["dof"] == 10 and null["p_value"] > 1e-3, null  # pure noise: B consistent with noise
    # same seed → same numbers, however the realisations are chunked
    recon = read_reconstruction(tmp_path / "rec.fits")
    scfg7 = load_config(overrides=["seed=3", "summarize.n_noise=30", "summarize.noise_chunk=10",
                                   "summarize.smoothing_arcmin=0"])
    edges = np.array(m["spectra"]["ell_edges"])
    again = noise_statistics(recon, scfg7, recorded_config(recon), edges, progress=False)
    np.testing.assert_allclose(again["std"]["ks"], sigma, rtol=1e-5)
    redo = stats.null_test(np.array(m["spectra"]["ks_eb"]["cl_b"], float), again["cl_b_signal"])
    np.testing.assert_allclose(redo["chi2_realisations"], null["chi2_realisations"], rtol=1e-4)

    # A pure B-mode signal (the shear of a κ map rotated by 45°: γ → −iγ turns E into B) fails the test.
    kappa = _grf(9, n=N) * 3
    s1, s2 = (np.asarray(a) for a in kappa_to_shear(kappa))
    _shear_file(tmp_path / "b.fits", s2 + rng.normal(0, sd, (N, N)), -s1 + rng.normal(0, sd, (N, N)), sd, ones, cfg)
    run_reconstruct(cfg, tmp_path / "b.fits", tmp_path / "recb.fits", method="ks", plot=False)
    mb = run_summarize(scfg, tmp_path / "recb.fits", tmp_path / "sb", progress=False)
    assert mb["b_mode_null_test"]["p_value"] < 1e-6
    assert mb["b_mode_null_test"]["p_value_empirical"] == pytest.approx(1 / 31)


def test_recorded_config_with_long_values_and_samples_only_file(tmp_path):
    # FITS wraps HISTORY lines longer than 72 characters; the recorded config must still be read.
    long_path = "/a/very/long/folder/name/that/goes/on/and/on/for/more/than/seventy/two/characters/cl.txt"
    cfg = load_config(overrides=["pad=7", f"wiener.cl_file={long_path}"])
    samples = np.random.default_rng(0).normal(size=(5, N, N))
    write_maps(tmp_path / "s.fits", GRID, {"KAPPA_SAMPLES": samples, "MASK": np.ones((N, N), np.uint8)},
               provenance(cfg, "reconstruct"))
    recon = read_reconstruction(tmp_path / "s.fits")
    assert recon.methods == ("posterior",) and not recon.has_shear
    rc = recorded_config(recon)
    assert rc.pad == 7 and rc.wiener.cl_file == long_path


# ---------------------------------------------------------------- the command end to end

@pytest.fixture(scope="module")
def full_case(tmp_path_factory):
    """A reconstruction with every extension (KS, Wiener, posterior, MAP, DIAGNOSTICS), its truth,
    positions, and one summary made through the CLI."""
    d = tmp_path_factory.mktemp("summ")
    rng = np.random.default_rng(10)
    cfg = load_config(overrides=["pad=4", "wiener.cl_file=" + str(_cl_file(d)), "seed=1"])
    truth = _grf(11, n=N)
    g1, g2 = (np.asarray(a) for a in kappa_to_shear(truth))
    sd = 0.004
    mask = np.ones((N, N))
    mask[:6, :6] = 0
    _shear_file(d / "shear.fits", g1 + rng.normal(0, sd, (N, N)), g2 + rng.normal(0, sd, (N, N)), sd, mask, cfg)
    run_reconstruct(cfg, d / "shear.fits", d / "rec.fits", method="ks,wiener", plot=False)
    with fits.open(d / "rec.fits") as h:
        images = {x.name: x.data for x in h[1:] if x.is_image}
    # An exactly calibrated Gaussian "posterior": truth − μ and samples − μ are both N(0, σ²).
    sig = 0.3 * truth.std()
    mu = truth + sig * rng.normal(size=(N, N))
    samples = mu + sig * rng.normal(size=(120, N, N))
    images.update(KAPPA_MEAN=mu, KAPPA_STD=np.full((N, N), sig), KAPPA_SAMPLES=samples, KAPPA_MAP=mu,
                  KAPPA_MEAN_ERR=np.full((N, N), sig / np.sqrt(120)))
    diag = {"RHAT_MEAN": np.array([1.01]), "ESS_MEAN": np.array([110.0])}
    write_maps(d / "full.fits", GRID, images, provenance(cfg, "reconstruct", {"input": "shear.fits"}),
               tables={"DIAGNOSTICS": diag})
    write_maps(d / "truth.fits", GRID, {"KAPPA": truth}, provenance(cfg, "test"))
    hot = np.unravel_index(np.argmax(np.where(mask > 0, truth, -1)), truth.shape)
    cold = np.unravel_index(np.argmin(np.where(mask > 0, truth, 1)), truth.shape)
    ra, dec = GRID.pixel_to_world(np.array([hot[1], cold[1]]), np.array([hot[0], cold[0]]))
    write_table(d / "pos.fits", {"ra": [ra[0], ra[1], 170.0], "Dec": [dec[0], dec[1], 2.0]})
    res = CliRunner().invoke(main, ["summarize", str(d / "full.fits"), "--truth", str(d / "truth.fits"),
                                    "--positions", str(d / "pos.fits"), "-o", str(d / "out"), "--quiet",
                                    "--set", "summarize.n_noise=16", "--set", "summarize.noise_chunk=16",
                                    "--set", "seed=5"])
    return {"dir": d, "out": d / "out", "res": res, "truth": truth, "mask": mask, "hot": hot, "cold": cold}


def test_cli_summary_outputs_and_metrics(full_case):
    res, out = full_case["res"], full_case["out"]
    assert res.exit_code == 0, res.output
    assert "report.html" in res.output and "B-mode null test" in res.output
    assert not list(out.parent.glob(".out.*")), "temporary folder left behind"
    m = json.loads((out / "metrics.json").read_text())
    assert set(m["methods"]) == {"ks", "wiener", "posterior", "map"}
    assert m["provenance"]["seed"] == 5 and m["provenance"]["inputs"]["truth"] == "truth.fits"
    assert m["recon_provenance"]["MMCMD"] == "reconstruct" and m["recon_config"]["pad"] == 4
    truth, mask = full_case["truth"], full_case["mask"]
    post = m["methods"]["posterior"]
    with fits.open(full_case["dir"] / "full.fits") as h:
        mu = h["KAPPA_MEAN"].data.astype(float)
    assert post["rmse"] == pytest.approx(stats.rmse(mu, truth, mask), rel=1e-6)
    assert post["pearson_r"] == pytest.approx(stats.pearson_r(mu, truth, mask), rel=1e-6)
    # shear S/N ≈ 5 per pixel: the Wiener map follows the truth closely
    assert m["methods"]["wiener"]["pearson_r"] > 0.8
    cal = m["calibration"]
    lv, cov, err = (np.array(cal[k]) for k in ("levels", "coverage", "binomial_error"))
    assert np.all(np.abs(cov - lv) < 4 * err + 1 / 121), (cov, lv)  # calibrated by construction
    assert abs(cal["zscore_std"] - 1) < 0.1
    r_ell = np.array(m["spectra"]["posterior"]["r_ell"], float)
    assert np.all(r_ell[np.isfinite(r_ell)] > 0.5)
    pos = m["positions"]
    assert pos["has_data"] == [True, True, False]
    assert pos["p_positive_posterior"][0] == 1.0 and pos["p_positive_posterior"][1] == 0.0  # S/N ≈ 8 there
    assert pos["kappa_posterior"][2] is None  # off the grid: NaN → null
    assert m["diagnostics"]["RHAT_MEAN"] == [1.01]
    # the mean's Monte-Carlo error: σ/√120 everywhere, against the posterior σ (float32 images)
    assert post["mean_mc_error_rms"] == pytest.approx(0.3 * truth.std() / np.sqrt(120), rel=1e-5)
    assert post["mean_mc_error_over_std"] == pytest.approx(1 / np.sqrt(120), rel=1e-5)


def test_posterior_only_reconstruction_gets_its_ks_from_the_shear(full_case, tmp_path):
    # Without KAPPA_KS summarize makes it from GAMMA1/GAMMA2 (FITS stores them big-endian, which JAX
    # refuses unless the reader converts them): the same pad, so the same KS map and metrics as the
    # file that kept its KS map, to float32 rounding.
    with fits.open(full_case["dir"] / "full.fits") as h:
        kept = fits.HDUList([x.copy() for x in h if x.name not in ("KAPPA_KS", "KAPPA_KS_B", "KAPPA_WIENER")])
    kept[0].header["NEXTEND"] = len(kept) - 1
    kept.writeto(tmp_path / "post.fits")
    res = CliRunner().invoke(main, ["summarize", str(tmp_path / "post.fits"), "--truth", str(full_case["dir"] / "truth.fits"),
                                    "-o", str(tmp_path / "out"), "--quiet", "--set", "summarize.n_noise=16",
                                    "--set", "summarize.noise_chunk=16", "--set", "seed=5"])
    assert res.exit_code == 0, res.output
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    ref = json.loads((full_case["out"] / "metrics.json").read_text())
    for key in ("cl_e", "cl_b"):  # the KS E and B band powers of the null test
        assert np.allclose(m["spectra"]["ks_eb"][key], ref["spectra"]["ks_eb"][key], rtol=1e-5, atol=0)
    assert m["b_mode_null_test"]["chi2"] == pytest.approx(ref["b_mode_null_test"]["chi2"], rel=1e-5)
    for key in ("rmse", "pearson_r"):
        assert m["methods"]["posterior"][key] == pytest.approx(ref["methods"]["posterior"][key], rel=1e-6)


@pytest.mark.parametrize("what", ["constant truth", "zero shear"])
def test_maps_without_power_are_summarized(full_case, tmp_path, what):
    # a truth with no power (ratio C_ell / C_ell,truth infinite) or all-zero shear and maps (no power
    # to put on a log axis): the summary is made, and its figures, with the undefined numbers as NaN
    truth = full_case["dir"] / "truth.fits"
    recon = full_case["dir"] / "full.fits"
    if what == "constant truth":
        write_maps(tmp_path / "flat.fits", GRID, {"KAPPA": np.zeros((N, N))}, provenance(load_config(), "test"))
        truth = tmp_path / "flat.fits"
    else:
        with fits.open(recon) as h:
            h = fits.HDUList([x.copy() for x in h])
        for name in ("KAPPA_KS", "KAPPA_KS_B", "KAPPA_WIENER", "GAMMA1", "GAMMA2"):
            h[name].data = np.zeros((N, N), np.float32)
        h.writeto(tmp_path / "zero.fits")
        recon = tmp_path / "zero.fits"
    res = CliRunner().invoke(main, ["summarize", str(recon), "--truth", str(truth), "-o", str(tmp_path / "out"),
                                    "--quiet", "--set", "summarize.n_noise=4", "--set", "summarize.noise_chunk=4"])
    assert res.exit_code == 0, res.output
    pngs = sorted(p.name for p in (tmp_path / "out").glob("*.png"))
    assert "spectra.png" in pngs and "truth_spectra.png" in pngs, pngs
    m = json.loads((tmp_path / "out" / "metrics.json").read_text())
    ks_r, post_r = m["methods"]["ks"]["pearson_r"], m["methods"]["posterior"]["pearson_r"]
    assert ks_r is None or np.isnan(ks_r)  # a map or a truth that does not vary: r is undefined
    assert (post_r is None or np.isnan(post_r)) == (what == "constant truth")


def test_cli_summary_sample_statistics_against_the_truth(full_case):
    out, truth, mask = full_case["out"], full_case["truth"], full_case["mask"]
    m = json.loads((out / "metrics.json").read_text())
    st = m["sample_statistics"]
    with fits.open(full_case["dir"] / "full.fits") as h:
        samples = h["KAPPA_SAMPLES"].data.astype(float)
        sig = h["KAPPA_STD"].data.astype(float)
    pix = read_reconstruction(full_case["dir"] / "full.fits").grid.pixel_size_arcmin  # as the summary read it
    edges = np.array(m["spectra"]["ell_edges"])
    peak_edges = load_config().summarize.sample_peak_bins
    direct = sample_stats.sample_statistics(samples, truth, sig, mask, mask > 0, pix, edges, peak_edges, 30)
    assert st["n_samples"] == 120 and st["peak_counts"]["sigma"] == "posterior std"
    # metrics.json holds exactly the functions' values on the same arrays (JSON keeps 17 digits)
    np.testing.assert_allclose(np.array(st["power_spectrum"]["ratio"], float), direct["power_spectrum"]["ratio"],
                               rtol=1e-12)
    assert st["peak_counts"]["truth"] == direct["peak_counts"]["truth"].tolist()
    np.testing.assert_allclose(st["pdf"]["samples_mean"], direct["pdf"]["samples_mean"], rtol=1e-12)
    # The fixture's samples are truth + white noise of variance 2σ² (μ = truth + σ e₀, sample = μ + σ eᵢ),
    # so their power is C_truth + 2σ² Ω_pix (Ω_pix the pixel solid angle): the ratio is 1 + 2σ² Ω_pix / C_truth.
    # The shared truth × σe₀ cross term, 2 Ĉ(t, σe₀), does not average out over samples: per band its relative
    # scatter is 2 √(C_t σ²Ω_pix / modes) / C_t = √(2 · 2σ²Ω_pix / (C_t · modes · f_sky)). Allow 4 of those plus
    # 2 % (the eᵢ terms, averaged over 120 samples, and the mask's mode coupling); this still fails the top two
    # bands if the samples had the truth's power (expected excess 0.21 and 0.34 there).
    ps = st["power_spectrum"]
    c_t, modes = np.array(ps["cl_truth"], float), np.array(ps["modes"], float)
    c_n = 2 * sig[0, 0] ** 2 * (PIX * ARCMIN) ** 2
    expect = 1 + c_n / c_t
    tol = 4 * np.sqrt(2 * c_n / (c_t * modes * ps["fsky"])) + 0.02
    assert np.all(expect[-2:] - 1 > tol[-2:])  # the check below can tell this excess from none
    assert np.all(np.abs(np.array(ps["ratio"], float) - expect) < tol), (ps["ratio"], expect, tol)
    compared = np.array(ps["bins_compared"])
    assert ps["max_abs_deviation"] == pytest.approx(np.max(np.abs(np.array(ps["ratio"])[compared] - 1)), rel=1e-12)
    assert ps["ell_limit"] == pytest.approx(np.pi / (PIX * ARCMIN) / 2)
    # the figure and the report's table
    assert (out / "sample_statistics.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    text = (out / "report.html").read_text(encoding="utf-8")
    assert "Posterior samples against the truth (120 samples)" in text and "sample_statistics.png" in text


def test_report_shows_figures_before_tables(full_case):
    text = (full_case["out"] / "report.html").read_text(encoding="utf-8")
    first_table_after_header = text.index("<table", text.index("</table>"))
    assert text.index("maps.png") < text.index("snr.png") < first_table_after_header  # maps first
    assert text.rindex("<img") < text.index("<h2>Metrics</h2>") == text.rindex("</figure>") + len("</figure>\n")
    assert text.index("<table") < text.index("<img")  # the provenance table stays at the top


def test_peak_catalog_and_snr_maps_are_consistent(full_case):
    out = full_case["out"]
    with fits.open(out / "peaks.fits") as p, fits.open(out / "snr.fits") as s:
        assert p[0].header["MMCMD"] == "summarize" and p[0].header["SEED"] == 5
        assert {h.name for h in p[1:]} == {"PEAKS_KS", "PEAKS_WIENER", "PEAKS_POSTERIOR", "PEAKS_MAP"}
        t = p["PEAKS_WIENER"].data
        assert len(t) > 0 and np.all(np.diff(t["SNR"]) <= 0) and np.all(t["SNR"] >= 3.0)
        np.testing.assert_allclose(t["SNR"], s["SNR_WIENER"].data[t["Y"], t["X"]], rtol=1e-5)
        ra, dec = GRID.pixel_to_world(t["X"], t["Y"])
        np.testing.assert_allclose(t["RA"], ra, atol=1e-9)
        np.testing.assert_allclose(t["DEC"], dec, atol=1e-9)
        assert "P_POSITIVE" in p["PEAKS_POSTERIOR"].columns.names


class _Refs(HTMLParser):
    def __init__(self):
        super().__init__()
        self.imgs, self.links, self.tags = [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append(tag)
        if tag == "img":
            self.imgs.append(a["src"])
        if tag == "a":
            self.links.append(a["href"])


def test_report_parses_and_every_image_exists(full_case):
    out = full_case["out"]
    parser = _Refs()
    text = (out / "report.html").read_text(encoding="utf-8")
    parser.feed(text)
    parser.close()
    assert len(parser.imgs) >= 6
    for ref in parser.imgs + parser.links:
        f = out / ref
        assert f.exists() and f.stat().st_size > 0, ref
    for ref in parser.imgs:
        assert (out / ref).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", ref
    assert {"calibration.png", "truth_spectra.png", "pixels.png", "spectra.png", "snr.png"} <= set(parser.imgs)
    assert "Wiener" in text and "B-mode null test" in text and "Sampler diagnostics" in text


def test_overwrite_rules(full_case):
    d = full_case["dir"]
    args = ["summarize", str(d / "rec.fits"), "-o", str(d / "out"), "--quiet", "--set", "summarize.n_noise=4",
            "--set", "summarize.dpi=30"]
    res = CliRunner().invoke(main, args)
    _assert_clean_error(res, "--overwrite")
    before = sorted(p.name for p in (d / "out").iterdir())
    res = CliRunner().invoke(main, args + ["--overwrite"])
    assert res.exit_code == 0, res.output
    after = sorted(p.name for p in (d / "out").iterdir())
    assert "calibration.png" in before and "calibration.png" not in after  # replaced, no stale files
    (d / "foreign").mkdir()
    (d / "foreign" / "notes.txt").write_text("mine")
    res = CliRunner().invoke(main, args[:3] + [str(d / "foreign"), "--overwrite", "--quiet"])
    _assert_clean_error(res, "metrics.json")
    assert (d / "foreign" / "notes.txt").read_text() == "mine"


def _assert_clean_error(res, *needles):
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("massmap: error:"), res.output
    for n in needles:
        assert n in lines[0], (n, lines[0])


@pytest.mark.parametrize("case", ["missing", "not_fits", "truth_as_recon", "no_provenance", "truth_grid",
                                  "positions_columns", "not_empty", "bad_key"])
def test_cli_bad_input_gives_one_line_error_and_writes_nothing(full_case, tmp_path, case):
    d = full_case["dir"]
    out = tmp_path / "summary"
    recon = d / "full.fits"
    extra: list = []
    if case == "missing":
        recon, needles = tmp_path / "nope.fits", ("nope.fits", "does not exist")
    elif case == "not_fits":
        recon = tmp_path / "x.fits"
        recon.write_text("hello")
        needles = ("x.fits", "not a readable FITS")
    elif case == "truth_as_recon":
        recon, needles = d / "truth.fits", ("truth.fits", "not a massmap reconstruction")
    elif case == "no_provenance":
        recon = tmp_path / "bare.fits"
        fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros((N, N), np.float32), GRID.wcs().to_header(),
                                                       name="KAPPA_KS")]).writeto(recon)
        needles = ("bare.fits", "not a massmap reconstruction")
    elif case == "truth_grid":
        other = FlatGrid(150.1, 2.0, PIX, N, N)
        write_maps(tmp_path / "t.fits", other, {"KAPPA": np.zeros((N, N))}, provenance(load_config(), "test"))
        extra, needles = ["--truth", tmp_path / "t.fits"], ("t.fits", "another grid")
    elif case == "positions_columns":
        write_table(tmp_path / "p.fits", {"X": [1.0], "Y": [2.0]})
        extra, needles = ["--positions", tmp_path / "p.fits"], ("p.fits", "no RA column")
    elif case == "not_empty":
        out.mkdir()
        (out / "keep.txt").write_text("keep")
        needles = ("not empty", "--overwrite")
    else:
        extra, needles = ["--set", "summarize.n_noise=1"], ("summarize.n_noise",)
    res = CliRunner().invoke(main, ["summarize", str(recon), "-o", str(out), "--quiet"] + [str(e) for e in extra])
    _assert_clean_error(res, *needles)
    assert "Traceback" not in res.output
    if case == "not_empty":
        assert [p.name for p in out.iterdir()] == ["keep.txt"]
    else:
        assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".summary.")], "temporary folder left behind"
