"""Posterior samples against the truth (massmap.summarize.samples): C_ℓ ratios, peak counts, one-point PDF.

Known truths: samples that are copies of the truth agree exactly; samples scaled by 2 have 4× the
power and their peaks at twice the S/N; independent Gaussian fields with the truth's C_ℓ give a ratio
consistent with 1 within the stated sample-variance scatter (and that scatter is the measured one);
hand-built maps give hand-counted peaks and histograms; smoothed samples are caught.
"""
import numpy as np
import pytest

from massmap.ops.spectra import ARCMIN
from massmap.summarize import samples as S
from massmap.summarize import stats

PIX = 2.0  # arcmin
N = 64


def _grf(rng, count, n=N):
    """``count`` independent periodic Gaussian fields with C_ℓ ∝ ℓ^-1.2 (normalisation irrelevant: only
    ratios and S/N are compared)."""
    f = np.fft.fftfreq(n)
    ell = 2 * np.pi * np.hypot(*np.meshgrid(f, f, indexing="ij")) / (PIX * ARCMIN)
    power = np.where(ell > 0, (np.maximum(ell, 1.0) / 1000.0) ** -1.2, 0.0)
    white = rng.normal(size=(count, n, n))
    return np.fft.ifft2(np.fft.fft2(white) * np.sqrt(power)).real


def _mask(n=N):
    m = np.ones((n, n))
    m[10:22, 30:50] = 0  # a rectangular hole and a small one: f_sky = 0.9375
    m[50:54, 5:9] = 0
    return m


EDGES = stats.ell_bin_edges(N, N, PIX, 10)


def _truth_setup(seed, margin):
    """A Gaussian-field truth (seed ``seed``), the holed mask, the region of it at least ``margin`` pixels
    from the map edge and the holes, and a uniform noise σ equal to the truth's standard deviation."""
    truth = _grf(np.random.default_rng(seed), 1)[0]
    mask = _mask()
    return truth, mask, stats.allowed_region(mask, margin), np.full((N, N), truth.std())


def test_copies_of_the_truth_agree_exactly():
    truth, mask, allowed, sigma = _truth_setup(0, 1.0)
    st = S.sample_statistics(np.repeat(truth[None], 5, axis=0), truth, sigma, mask, allowed, PIX, EDGES,
                             np.arange(-3.0, 4.5, 1.0), 20)
    ps, pk, pdf = st["power_spectrum"], st["peak_counts"], st["pdf"]
    # identical maps, identical arithmetic: equal up to float rounding of the mean over 5 copies
    np.testing.assert_allclose(ps["ratio"], 1.0, rtol=1e-12)
    np.testing.assert_allclose(ps["ratio_std"], 0.0, atol=1e-12)
    assert ps["max_abs_deviation"] < 1e-12
    assert pk["truth_total"] > 50  # a rough field: many peaks, so the comparison below is not vacuous
    np.testing.assert_array_equal(pk["samples_mean"], pk["truth"])
    np.testing.assert_array_equal(pk["samples_std"], 0)
    np.testing.assert_allclose(pdf["samples_mean"], pdf["truth"], rtol=1e-12)
    # densities of identical counts: the std over copies is rounding only (≤ 1e-12 of the peak density)
    np.testing.assert_allclose(pdf["samples_std"], 0, atol=1e-12 * pdf["truth"].max())
    assert pdf["samples_below"] == pdf["samples_above"] == 0
    # the density integrates to 1: every pixel with data is inside the bins (they span the truth's range)
    assert np.sum(pdf["truth"] * np.diff(pdf["kappa_edges"])) == pytest.approx(1.0, rel=1e-12)
    assert pdf["n_pixels"] == int(mask.sum())


def test_samples_scaled_by_two_have_four_times_the_power_and_peaks_at_twice_the_snr():
    truth, mask, allowed, sigma = _truth_setup(1, 0.0)
    scaled = np.repeat(2 * truth[None], 3, axis=0)
    edges = np.arange(-3.0, 4.5, 1.0)
    st = S.sample_statistics(scaled, truth, sigma, mask, allowed, PIX, EDGES, edges, 20)
    ps = st["power_spectrum"]
    # C_ℓ is quadratic in the map: exactly 4 (float rounding only)
    np.testing.assert_allclose(ps["ratio"], 4.0, rtol=1e-12)
    assert ps["max_abs_deviation"] == pytest.approx(3.0, rel=1e-12)
    # the same pixels are maxima of 2κ/σ, at twice the S/N: 2κ counted in 2×edges = κ counted in edges
    twice = S.peak_count_statistics(scaled, truth, sigma, allowed, 2 * edges)
    np.testing.assert_array_equal(twice["samples_mean"], st["peak_counts"]["truth"])
    # and in the original bins they differ (the test can fail)
    assert not np.array_equal(st["peak_counts"]["samples_mean"], st["peak_counts"]["truth"])
    # common PDF bins cover the samples' wider range: 2κ's pooled 0.1 / 99.9 percentiles (≈ ±3.1 σ_κ × 2
    # for 3840 pixels) lie well beyond 1.5 × the truth's extremes (≈ ±3.5 σ_κ)
    e = st["pdf"]["kappa_edges"]
    inside = mask > 0
    assert e[0] < 1.5 * truth[inside].min() and e[-1] > 1.5 * truth[inside].max()


def test_independent_gaussian_fields_give_a_ratio_consistent_with_one():
    rng = np.random.default_rng(2)
    mask = _mask()
    fields = _grf(rng, 31)
    truth, samples = fields[0], fields[1:]
    ps = S.spectrum_ratio(samples, truth, PIX, EDGES, mask)
    assert ps["fsky"] == pytest.approx(0.9375) and ps["n_samples"] == 30
    # The stated scatter ratio_error = √(2/(modes f_sky) (1 + 1/n)) is Gaussian band-power variance; it
    # describes the ratio well where a band has ≳ 90 modes (below that the ratio, ∝ 1/C_ℓ(truth), is
    # skewed with a heavy upper tail). 4σ per band in those bands.
    gaussian = ps["modes"] * ps["fsky"] >= 90
    assert gaussian.sum() >= 5
    z = (ps["ratio"] - 1) / ps["ratio_error"]
    assert np.all(np.abs(z[gaussian]) < 4), (z, ps["modes"])
    # the spread over samples is the samples' own band-power scatter, √(2/(modes f_sky)) per sample
    rel = ps["ratio_std"] * ps["cl_truth"] / ps["cl_samples_mean"]
    expect = np.sqrt(2 / (ps["modes"] * ps["fsky"]))
    # std from 30 samples: ±13 % (1σ); 40 % allows 3σ
    np.testing.assert_allclose(rel[gaussian], expect[gaussian], rtol=0.4)
    dev = S.max_ratio_deviation(ps, PIX)
    assert dev["ell_limit"] == pytest.approx(np.pi / (PIX * ARCMIN) / 2)
    assert dev["max_abs_deviation"] < 4 * np.nanmax(ps["ratio_error"][dev["bins_compared"]])


def test_the_stated_ratio_scatter_is_the_measured_one():
    # 100 independent (truth, 20 samples) sets: (ratio − 1) / ratio_error has unit std in the bands with
    # ≥ 90 modes. 100 × 5 values: the std is estimated to ±3 % (and bands are slightly coupled by the mask);
    # ±15 % catches a factor-√2 error (a band-power variance C²/modes instead of 2C²/modes), and leaving
    # out the truth's own variance (the "1 +") would give a std of √(n + 1) ≈ 4.6.
    rng = np.random.default_rng(3)
    mask = _mask()
    z = []
    for _ in range(100):
        x = _grf(rng, 21)
        ps = S.spectrum_ratio(x[1:], x[0], PIX, EDGES, mask)
        good = ps["modes"] * ps["fsky"] >= 90
        z.append(((ps["ratio"] - 1) / ps["ratio_error"])[good])
    z = np.concatenate(z)
    assert z.size >= 500
    assert 0.85 < z.std() < 1.15, z.std()
    assert abs(z.mean()) < 0.15, z.mean()  # the 1/C_ℓ(truth) bias is ≈ √(2/(modes f_sky)) ≤ 0.15 σ here


def test_independent_fields_peaks_and_pdf_are_exchangeable_with_the_truth():
    # The truth is one more draw of the samples' field, so its peak counts and PDF lie within the samples'
    # scatter: |truth − mean| < 5 std √(1 + 1/n) in every bin with ≥ 10 expected entries (measured over
    # 100 such sets: the standardised differences have std 0.9–1.1 and max 4.2 over 2259 bins).
    rng = np.random.default_rng(4)
    mask = _mask()
    allowed = stats.allowed_region(mask, 1.0)
    fields = _grf(rng, 31)
    truth, samples = fields[0], fields[1:]
    sigma = np.full((N, N), fields.std())
    st = S.sample_statistics(samples, truth, sigma, mask, allowed, PIX, EDGES, np.arange(-2.0, 6.5, 1.0), 30)
    k = len(samples)
    pk, pdf = st["peak_counts"], st["pdf"]
    good = pk["samples_mean"] >= 10
    assert good.sum() >= 3
    assert np.all(np.abs(pk["truth"] - pk["samples_mean"])[good] < 5 * pk["samples_std"][good] * np.sqrt(1 + 1 / k))
    counts = pdf["samples_mean"] * pdf["n_pixels"] * np.diff(pdf["kappa_edges"])
    good = counts >= 10
    assert good.sum() >= 15
    diff = np.abs(pdf["truth"] - pdf["samples_mean"])[good]
    assert np.all(diff < 5 * pdf["samples_std"][good] * np.sqrt(1 + 1 / k))

    # Samples smoother than the truth (Gaussian σ = 1 pixel) are caught by all three statistics.
    smooth = stats.gaussian_smooth(samples, 1.0)
    st2 = S.sample_statistics(smooth, truth, sigma, mask, allowed, PIX, EDGES, np.arange(-2.0, 6.5, 1.0), 30)
    ps2 = st2["power_spectrum"]
    # smoothing by σ = 1 pixel multiplies C_ℓ by exp(−(ℓ θ_pix)²): ≈ 0.2 at the last band compared
    # (mean ℓ ≈ 0.4 ℓ_Nyq), so |ratio − 1| ≈ 0.8 there
    assert ps2["max_abs_deviation"] > 0.5
    tot = st2["peak_counts"]["samples"].sum(axis=1)
    assert st2["peak_counts"]["truth_total"] > tot.mean() + 5 * tot.std(ddof=1)  # smoothing removes peaks


def test_peaks_are_maxima_of_map_over_sigma_counted_per_bin():
    # κ = 1 everywhere (no maxima: a maximum is strictly above its 8 neighbours), σ = 0.5 except dips to
    # 0.25 at three pixels and to 0.1 at one: S/N = 4 at three pixels and 10 at one.
    kappa = np.ones((20, 20))
    sigma = np.full((20, 20), 0.5)
    for y, x in [(5, 5), (10, 14), (15, 3)]:
        sigma[y, x] = 0.25
    sigma[2, 17] = 0.1
    allowed = np.ones((20, 20), bool)
    edges = [0.0, 3.0, 5.0, 12.0]
    st = S.peak_count_statistics(kappa[None], kappa, sigma, allowed, edges)
    np.testing.assert_array_equal(st["truth"], [0, 3, 1])
    assert np.isnan(st["samples_std"]).all()  # one sample: no spread
    # a peak outside `allowed` (the mask, or the summary's edge band) is not counted
    allowed[10, 14] = False
    np.testing.assert_array_equal(S.peak_counts(stats.signal_to_noise(kappa, sigma), allowed, edges), [0, 2, 1])
    # and peaks beyond the bin range are not counted either: S/N 10 is above [0, 5]
    np.testing.assert_array_equal(S.peak_counts(stats.signal_to_noise(kappa, sigma), allowed, [0.0, 5.0]), [2])


def test_pdf_counts_pixels_with_data_on_common_bins():
    truth = np.array([[0.0, 0.1, 0.2], [0.3, 0.4, 99.0]])
    mask = np.array([[1, 1, 1], [1, 1, 0]])  # the 99 has no data and must not stretch the bins
    samples = np.array([truth, truth + 0.05])
    st = S.pdf_statistics(samples, truth, mask, 4)
    e = st["kappa_edges"]
    assert e[0] == pytest.approx(0.0) and e[-1] < 0.46  # truth range 0–0.4, samples' 99.9th percentile ≈ 0.45
    width = e[1] - e[0]
    expect_truth = np.histogram([0.0, 0.1, 0.2, 0.3, 0.4], bins=e)[0] / (5 * width)
    np.testing.assert_allclose(st["truth"], expect_truth, rtol=1e-12)
    s1 = np.histogram([0.05, 0.15, 0.25, 0.35, 0.45], bins=e)[0] / (5 * width)
    np.testing.assert_allclose(st["samples_mean"], (expect_truth + s1) / 2, rtol=1e-12)
    np.testing.assert_allclose(st["samples_std"], np.abs(expect_truth - s1) / np.sqrt(2), rtol=1e-12)
    assert st["n_pixels"] == 5 and st["samples_below"] == 0
    assert 0 < st["samples_above"] <= 0.1  # 0.45 lies just above the 99.9th percentile edge: 1 of 10 pixels


def test_max_ratio_deviation_ignores_bands_above_half_nyquist():
    ell_nyq = np.pi / (PIX * ARCMIN)
    ratio = {"ell_edges": np.array([0.1, 0.3, 0.5, 1.0]) * ell_nyq, "ell": np.array([0.2, 0.4, 0.7]) * ell_nyq,
             "ratio": np.array([1.1, np.nan, 9.0])}
    dev = S.max_ratio_deviation(ratio, PIX)
    # the last band reaches past ℓ_Nyq/2 and the second is empty: only the first band counts
    assert dev["bins_compared"].tolist() == [True, False, False]
    assert dev["max_abs_deviation"] == pytest.approx(0.1) and dev["max_deviation_ell"] == pytest.approx(0.2 * ell_nyq)
    none = S.max_ratio_deviation({**ratio, "ell_edges": ratio["ell_edges"] * 10}, PIX)
    assert np.isnan(none["max_abs_deviation"]) and not none["bins_compared"].any()
