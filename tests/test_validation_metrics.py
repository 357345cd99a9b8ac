"""The calibration slope of benchmarks/validate_posterior.py against cases with a known answer.

Σ⟨m, κ⟩/Σ⟨m, m⟩ per ℓ band is 1/c for m = cκ (exactly), and for the Wiener filter of a Gaussian field
in white noise it is 1 in expectation (the posterior mean is its own regression), while the raw noisy
map, m = κ + n, has S/(S + N) per band.
"""
from __future__ import annotations

import sys
from pathlib import Path

import jax
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from validate_posterior import band_cross_power  # noqa: E402

from massmap.ops.spectra import cl_on_grid, ell_grid, gaussian_random_field, log_ell_bins, mode_variance  # noqa: E402

N, PIX = 64, 1.0
EDGES = log_ell_bins(N, N, PIX, 6)


def slope(m, truth, mask):
    return band_cross_power(m, truth, mask, EDGES, PIX) / band_cross_power(m, m, mask, EDGES, PIX)


def test_slope_of_a_scaled_map_is_exact():
    truth = np.random.default_rng(0).standard_normal((N, N))
    mask = np.ones((N, N), bool)
    mask[:10, :7] = False  # a hole: the same mask enters both sums, so the ratio stays exact
    np.testing.assert_allclose(slope(0.8 * truth, truth, mask), 1 / 0.8, rtol=1e-12)


def test_wiener_map_is_calibrated_and_the_noisy_map_is_not():
    rng = np.random.default_rng(1)
    table = np.geomspace(10.0, 1e5, 200)
    cl_grid = cl_on_grid(table, 1e-9 * (np.maximum(table, 100.0) / 1000.0) ** -1.2, N, N, PIX)
    s = np.asarray(mode_variance(cl_grid, PIX), np.float64)
    noise = float(np.median(s))
    mask = np.ones((N, N), bool)
    sums = {k: 0.0 for k in ("wt", "ww", "nt", "nn")}
    for i in range(40):  # 40 fields: each band's slope then has a few per cent of scatter
        truth = np.asarray(gaussian_random_field(jax.random.PRNGKey(i), cl_grid, PIX), np.float64)
        data = truth + np.sqrt(noise) * rng.standard_normal((N, N))
        wiener = np.fft.ifft2(np.fft.fft2(data) * s / (s + noise)).real
        for m, a in ((wiener, "w"), (data, "n")):
            sums[a + "t"] = sums[a + "t"] + band_cross_power(m, truth, mask, EDGES, PIX)
            sums[a * 2] = sums[a * 2] + band_cross_power(m, m, mask, EDGES, PIX)
    band = np.digitize(ell_grid(N, N, PIX), EDGES) - 1
    expected_raw = np.array([np.mean(s[band == j] / (s[band == j] + noise)) for j in range(len(EDGES) - 1)])
    ok = np.array([np.sum(band == j) >= 40 for j in range(len(EDGES) - 1)])  # bands of few modes scatter more
    # 40 fields × ≥ 40 modes: the ratio's relative error is ≲ 1/√(1600 · S/N) — 8% is > 3σ everywhere
    np.testing.assert_allclose((sums["wt"] / sums["ww"])[ok], 1.0, rtol=0.08)
    np.testing.assert_allclose((sums["nt"] / sums["nn"])[ok], expected_raw[ok], rtol=0.08)
    # the check has power: the raw map's slopes are far from 1 where the noise is comparable to the signal
    assert np.max(np.abs(expected_raw[ok] - 1)) > 0.3
