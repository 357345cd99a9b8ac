"""Statistics of posterior samples against a truth map: band powers, peak counts, one-point PDF.

Pure numpy functions of arrays; no files. Samples are (n, ny, nx) κ maps (dimensionless convergence),
the truth is one (ny, nx) map on the same grid, masks are (ny, nx) with 1 where there is shear data.
A posterior whose samples are draws of the same kind of field as the truth gives, per statistic, a
truth value that looks like one more sample:

* band powers: C_ℓ(sample) / C_ℓ(truth) averaged over samples ≈ 1 in every band, within the spread;
* peak counts: local maxima of map / σ (σ the posterior standard deviation, the σ of the posterior
  S/N map) per S/N bin: the truth's count within the samples' mean ± std;
* one-point PDF: the histogram of κ in the pixels with data: the truth's within the samples' mean ± std.

Spectra use the masked pseudo-C_ℓ estimator of the summary (massmap.summarize.stats.masked_spectrum:
C_ℓ of ``map · mask`` / f_sky), so the truth and the samples are measured identically and the mask's mode
coupling cancels in the ratio.
"""
from __future__ import annotations

import numpy as np

from massmap.ops.spectra import ARCMIN
from massmap.summarize.stats import find_peaks, masked_spectrum, signal_to_noise


def _mean_std(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (ddof = 1) over axis 0; the std is NaN for a single sample."""
    x = np.asarray(x, np.float64)
    std = x.std(axis=0, ddof=1) if len(x) > 1 else np.full(x.shape[1:], np.nan)
    return x.mean(axis=0), std


# ------------------------------------------------------------------ band powers

def spectrum_ratio(samples: np.ndarray, truth: np.ndarray, pixel_size_arcmin: float, edges: np.ndarray,
                   mask: np.ndarray | None = None) -> dict:
    """Band powers of every sample and of the truth, and their ratio per band.

    Returns a dict of per-band arrays (n_bins,):
      ``ell`` (mean ℓ of the DFT modes in the band), ``modes`` (their number, ±k both counted),
      ``cl_truth``, ``cl_samples_mean``, ``cl_samples_std`` (over samples, ddof = 1), in sr (κ is
      dimensionless);
      ``ratio`` = mean over samples of C_ℓ(sample) / C_ℓ(truth) (= cl_samples_mean / cl_truth);
      ``ratio_std`` = the spread over samples, std of C_ℓ(sample) / C_ℓ(truth);
      ``ratio_error`` = √(2 / (modes · f_sky) · (1 + 1/n)): the scatter of ``ratio`` around 1 expected
      when the truth and the n samples are independent Gaussian fields with the same C_ℓ (each band power
      has relative variance 2 / (modes · f_sky), the truth's once, the samples' mean's 1/n of it).
      Samples that share the truth's data-constrained modes scatter less.
    and ``fsky`` = mean(mask), ``n_samples``. Empty bins (no modes) give NaN.
    """
    s = np.asarray(samples, np.float64)
    ell, cs, modes = masked_spectrum(s, pixel_size_arcmin, edges, mask)
    _, ct, _ = masked_spectrum(np.asarray(truth, np.float64), pixel_size_arcmin, edges, mask)
    fsky = 1.0 if mask is None else float((np.asarray(mask) > 0).mean())
    n = len(s)
    mean, std = _mean_std(cs)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio, ratio_std = mean / ct, std / ct
        err = np.sqrt(2.0 / (modes * fsky) * (1.0 + 1.0 / n))
    return {"ell": ell, "ell_edges": np.asarray(edges, np.float64), "modes": modes, "fsky": fsky, "n_samples": n,
            "cl_truth": ct, "cl_samples_mean": mean, "cl_samples_std": std,
            "ratio": ratio, "ratio_std": ratio_std, "ratio_error": err}


def max_ratio_deviation(ratio: dict, pixel_size_arcmin: float) -> dict:
    """The largest |ratio − 1| over the bands that lie entirely below half the Nyquist ℓ.

    ℓ_Nyquist = π / θ_pix (θ_pix in radians). Half of it keeps the bands the pixel window and the
    aliasing near Nyquist barely touch. Returns ``ell_limit`` (= ℓ_Nyquist / 2), ``bins_compared``
    (bool per band: upper edge ≤ ell_limit and a finite ratio), ``max_abs_deviation`` (NaN when no band
    qualifies) and ``max_deviation_ell`` (the ℓ of that band).
    """
    limit = np.pi / (pixel_size_arcmin * ARCMIN) / 2
    edges = np.asarray(ratio["ell_edges"], np.float64)
    r = np.asarray(ratio["ratio"], np.float64)
    use = (edges[1:] <= limit * (1 + 1e-9)) & np.isfinite(r)
    if not use.any():
        return {"ell_limit": limit, "bins_compared": use, "max_abs_deviation": float("nan"),
                "max_deviation_ell": float("nan")}
    dev = np.where(use, np.abs(r - 1.0), -np.inf)
    i = int(np.argmax(dev))
    return {"ell_limit": limit, "bins_compared": use, "max_abs_deviation": float(dev[i]),
            "max_deviation_ell": float(ratio["ell"][i])}


# ------------------------------------------------------------------ peak counts

def peak_counts(snr: np.ndarray, allowed: np.ndarray, edges) -> np.ndarray:
    """Number of local maxima of an S/N map (strictly above all 8 neighbours, inside ``allowed``) per
    S/N bin [e_i, e_{i+1}) (the last bin closed); peaks outside [e_0, e_last] are not counted."""
    iy, ix = find_peaks(snr, allowed, -np.inf)
    return np.histogram(np.asarray(snr, np.float64)[iy, ix], bins=np.asarray(edges, np.float64))[0]


def peak_count_statistics(samples: np.ndarray, truth: np.ndarray, sigma: np.ndarray, allowed: np.ndarray,
                          edges) -> dict:
    """Peak counts of truth / σ and of each sample / σ in the S/N bins ``edges``.

    σ is the posterior standard deviation map (the σ of the posterior S/N map); pixels where σ is 0 or
    not finite have S/N 0. Returns ``snr_edges``, ``truth`` (counts, n_bins), ``samples_mean`` and
    ``samples_std`` (over samples, ddof = 1), ``samples`` (n, n_bins) and the totals ``truth_total``,
    ``samples_total_mean`` (peaks inside the bin range).
    """
    edges = np.asarray(edges, np.float64)
    t = peak_counts(signal_to_noise(truth, sigma), allowed, edges)
    s = np.array([peak_counts(signal_to_noise(x, sigma), allowed, edges) for x in np.asarray(samples)])
    mean, std = _mean_std(s)
    return {"snr_edges": edges, "truth": t, "samples_mean": mean, "samples_std": std, "samples": s,
            "truth_total": int(t.sum()), "samples_total_mean": float(s.sum(axis=1).mean())}


# ------------------------------------------------------------------ one-point PDF

def pdf_edges(samples: np.ndarray, truth: np.ndarray, mask: np.ndarray, n_bins: int) -> np.ndarray:
    """Common κ bin edges: ``n_bins`` equal bins over the truth's range in the pixels with data, widened
    to the samples' pooled 0.1 and 99.9 percentiles (so a few extreme sample pixels do not stretch
    the bins, while samples broader or shifted than the truth stay visible)."""
    inside = np.asarray(mask) > 0
    t = np.asarray(truth, np.float64)[inside]
    s = np.asarray(samples, np.float64)[:, inside]
    lo, hi = float(t.min()), float(t.max())
    if s.size:
        plo, phi = np.percentile(s, [0.1, 99.9])
        lo, hi = min(lo, float(plo)), max(hi, float(phi))
    if not hi > lo:
        half = max(abs(lo), 1e-12)
        lo, hi = lo - half, hi + half
    return np.linspace(lo, hi, int(n_bins) + 1)


def pdf_statistics(samples: np.ndarray, truth: np.ndarray, mask: np.ndarray, n_bins: int) -> dict:
    """One-point PDF of κ in the pixels with data, for the truth and each sample, on common bins.

    The density per bin is count / (N_pix · Δκ) with N_pix the number of pixels with data, so it
    integrates to the fraction of pixels inside the bin range. Returns ``kappa_edges``, ``truth``,
    ``samples_mean``, ``samples_std`` (over samples, ddof = 1) per bin, ``n_pixels``, and the fraction
    of sample pixels below / above the range (``samples_below``, ``samples_above``, averaged over samples).
    """
    inside = np.asarray(mask) > 0
    edges = pdf_edges(samples, truth, mask, n_bins)
    npix = int(inside.sum())
    width = np.diff(edges)

    def density(values):
        return np.histogram(values, bins=edges)[0] / (npix * width)

    t = density(np.asarray(truth, np.float64)[inside])
    s_in = np.asarray(samples, np.float64)[:, inside]
    d = np.array([density(v) for v in s_in])
    mean, std = _mean_std(d)
    return {"kappa_edges": edges, "truth": t, "samples_mean": mean, "samples_std": std, "n_pixels": npix,
            "samples_below": float(np.mean(s_in < edges[0])), "samples_above": float(np.mean(s_in > edges[-1]))}


# ------------------------------------------------------------------ all together

def sample_statistics(samples: np.ndarray, truth: np.ndarray, sigma: np.ndarray | None, mask: np.ndarray,
                      allowed: np.ndarray, pixel_size_arcmin: float, edges: np.ndarray, peak_edges,
                      pdf_bins: int) -> dict:
    """The ``sample_statistics`` entry of metrics.json: ``power_spectrum`` (spectrum_ratio with the
    max_ratio_deviation keys), ``peak_counts`` (None without a σ map) and ``pdf``, plus ``n_samples``.

    ``edges`` are the summary's ℓ bin edges, ``peak_edges`` the S/N bin edges, ``allowed`` the pixels
    where peaks may lie (the mask minus the summary's edge band).
    """
    ps = spectrum_ratio(samples, truth, pixel_size_arcmin, edges, mask)
    ps.update(max_ratio_deviation(ps, pixel_size_arcmin))
    peaks = None
    if sigma is not None:
        peaks = peak_count_statistics(samples, truth, sigma, allowed, peak_edges)
        peaks["sigma"] = "posterior std"
    return {"n_samples": int(len(samples)), "power_spectrum": ps, "peak_counts": peaks,
            "pdf": pdf_statistics(samples, truth, mask, pdf_bins)}
