"""Statistics of κ maps: smoothing, S/N from noise realisations, peaks, spectra, null tests, calibration.

Pure functions of arrays (numpy, and JAX for random draws); no files. Maps are (..., ny, nx); a mask is
(ny, nx) with 1 where there is shear data. Conventions for spectra follow massmap.ops.spectra: the
spectrum of a masked map is the pseudo-C_ℓ of ``map · mask`` divided by f_sky = mean(mask), with no
mode-coupling deconvolution (every map and every noise realisation is treated the same way, so ratios,
cross-correlations and null tests compare like with like).
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from scipy import ndimage, stats

from massmap.ops.spectra import ARCMIN, power_spectrum


# ------------------------------------------------------------------ smoothing and pixel metrics

def gaussian_smooth(maps: np.ndarray, sigma_pix: float) -> np.ndarray:
    """Gaussian smoothing (σ in pixels) of the last two axes; zeros outside the map (no wrap-around).

    Implemented in Fourier space on a grid padded by 4σ on each side, so the kernel is the exact
    sampled Gaussian transform and the sum of the map is preserved away from the edges.
    """
    maps = np.asarray(maps, np.float64)
    if sigma_pix <= 0:
        return maps.copy()
    pad = int(np.ceil(4 * sigma_pix))
    ny, nx = maps.shape[-2:]
    widths = [(0, 0)] * (maps.ndim - 2) + [(pad, pad), (pad, pad)]
    padded = np.pad(maps, widths)
    ky = np.fft.fftfreq(ny + 2 * pad)[:, None]
    kx = np.fft.rfftfreq(nx + 2 * pad)[None, :]
    kernel = np.exp(-2 * np.pi**2 * sigma_pix**2 * (kx**2 + ky**2))
    out = np.fft.irfft2(np.fft.rfft2(padded) * kernel, s=padded.shape[-2:])
    return out[..., pad:pad + ny, pad:pad + nx]


def _inside(mask: np.ndarray | None, shape: tuple[int, ...]) -> np.ndarray:
    if mask is None:
        return np.ones(shape[-2:], bool)
    return np.asarray(mask) > 0


def rmse(estimate: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None,
         remove_mean: bool = False) -> float:
    """Root-mean-square of (estimate − truth) over the mask; ``remove_mean`` first subtracts each map's
    mean over the mask (the κ mean is not constrained by shear: the mass-sheet degeneracy)."""
    inside = _inside(mask, np.shape(truth))
    a = np.asarray(estimate, np.float64)[inside]
    b = np.asarray(truth, np.float64)[inside]
    if remove_mean:
        a, b = a - a.mean(), b - b.mean()
    return float(np.sqrt(np.mean((a - b) ** 2)))


def pearson_r(estimate: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Pearson correlation coefficient of the pixel values inside the mask."""
    inside = _inside(mask, np.shape(truth))
    a = np.asarray(estimate, np.float64)[inside]
    b = np.asarray(truth, np.float64)[inside]
    a, b = a - a.mean(), b - b.mean()
    den = np.sqrt(np.sum(a * a) * np.sum(b * b))
    return float(np.sum(a * b) / den) if den > 0 else float("nan")


# ------------------------------------------------------------------ spectra

def ell_bin_edges(ny: int, nx: int, pixel_size_arcmin: float, n_bins: int,
                  ell_min: float | None = None, ell_max: float | None = None) -> np.ndarray:
    """Log-spaced ℓ bin edges; defaults: the fundamental mode 2π/(L) to the Nyquist ℓ π/θ_pix.

    The default edges are widened by 10⁻⁹ (relative) so that the fundamental and the Nyquist modes fall
    inside the first and last bins whatever the rounding of ℓ on the DFT grid.
    """
    theta = pixel_size_arcmin * ARCMIN
    lo = ell_min if ell_min is not None else 2 * np.pi / (max(ny, nx) * theta) * (1 - 1e-9)
    hi = ell_max if ell_max is not None else np.pi / theta * (1 + 1e-9)
    return np.geomspace(lo, hi, n_bins + 1)


def masked_spectrum(maps: np.ndarray, pixel_size_arcmin: float, edges: np.ndarray,
                    mask: np.ndarray | None = None, other: np.ndarray | None = None):
    """(ℓ, C_ℓ, modes): the binned (cross-)spectrum of ``maps · mask`` divided by f_sky = mean(mask).

    ``modes`` is the number of DFT modes per bin (both ±k counted); C_ℓ has shape (..., n_bins).
    """
    m = np.ones(np.shape(maps)[-2:]) if mask is None else (np.asarray(mask) > 0).astype(np.float64)
    fsky = float(m.mean())
    a = np.asarray(maps, np.float64) * m
    b = None if other is None else np.asarray(other, np.float64) * m
    ell, cl, modes = power_spectrum(a, pixel_size_arcmin, edges, other=b)
    return ell, cl / fsky, modes


def knox_error(cl: np.ndarray, modes: np.ndarray, fsky: float = 1.0) -> np.ndarray:
    """Gaussian (sample + noise variance) error of a band power: C_ℓ √(2 / (modes · f_sky)).

    A real field's M grid modes in a bin hold M/2 independent complex amplitudes, each an
    exponential variate, so Var(Ĉ) = 2 C² / M; a mask keeps roughly a fraction f_sky of them.
    """
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.abs(cl) * np.sqrt(2.0 / (np.asarray(modes, float) * fsky))


def cross_correlation_coefficient(a: np.ndarray, b: np.ndarray, pixel_size_arcmin: float,
                                  edges: np.ndarray, mask: np.ndarray | None = None):
    """(ℓ, r(ℓ)) with r = C_ab / √(C_aa C_bb) per bin (1 for a map with itself, ≈ 0 if independent)."""
    ell, cab, _ = masked_spectrum(a, pixel_size_arcmin, edges, mask, other=b)
    _, caa, _ = masked_spectrum(a, pixel_size_arcmin, edges, mask)
    _, cbb, _ = masked_spectrum(b, pixel_size_arcmin, edges, mask)
    with np.errstate(divide="ignore", invalid="ignore"):
        return ell, cab / np.sqrt(caa * cbb)


def spectra_summary(maps: dict[str, np.ndarray], pixel_size_arcmin: float, edges: np.ndarray, mask: np.ndarray,
                    ks_maps: tuple | None = None, noise: dict | None = None, samples: np.ndarray | None = None,
                    truth: np.ndarray | None = None) -> dict:
    """Binned spectra of every map (with Gaussian errors), KS E/B with the noise realisations' spectra,
    the posterior samples' spectra ('posterior' entry), and r(ℓ) and C_ℓ ratios against a truth map.

    ``noise`` holds per-realisation spectra: cl_e, cl_b (noise only) and optionally cl_b_signal
    (noise + Gaussian-signal leakage), each (n, n_bins).
    """
    fsky = float((np.asarray(mask) > 0).mean())

    def spec(m, other=None):
        return masked_spectrum(m, pixel_size_arcmin, edges, mask, other)[1]

    ell, _, modes = masked_spectrum(np.asarray(mask, float), pixel_size_arcmin, edges, mask)
    out: dict = {"ell": ell, "ell_edges": edges, "modes": modes, "fsky": fsky}
    if ks_maps is not None:
        ce, cb = spec(ks_maps[0]), spec(ks_maps[1])
        ks = {"cl_e": ce, "cl_e_err": knox_error(ce, modes, fsky), "cl_b": cb}
        if noise is not None:
            ks.update(cl_e_noise=noise["cl_e"].mean(0), cl_e_debiased=ce - noise["cl_e"].mean(0),
                      cl_b_noise=noise["cl_b"].mean(0), cl_b_noise_std=noise["cl_b"].std(0, ddof=1))
            if "cl_b_signal" in noise:
                ks.update(cl_b_null=noise["cl_b_signal"].mean(0), cl_b_null_std=noise["cl_b_signal"].std(0, ddof=1))
        out["ks_eb"] = ks
    ct = spec(truth) if truth is not None else None
    for m, kappa in maps.items():
        cl = spec(kappa)
        entry = {"cl": cl, "cl_err": knox_error(cl, modes, fsky)}
        if m == "posterior" and samples is not None:
            cs = spec(samples)
            entry.update(cl_samples=cs.mean(0), cl_samples_std=cs.std(0, ddof=1) if len(cs) > 1 else 0 * cl)
        if ct is not None:
            entry["r_ell"] = cross_correlation_coefficient(kappa, truth, pixel_size_arcmin, edges, mask)[1]
            entry["ratio"] = cl / ct
            if "cl_samples" in entry:
                entry["ratio_samples"] = entry["cl_samples"] / ct
        out[m] = entry
    if ct is not None:
        out["truth"] = {"cl": ct}
    return out


# ------------------------------------------------------------------ noise realisations and S/N

def shear_noise_realisations(key: jax.Array, g1, g2, noise_std, mask, indices, method: str = "gaussian"):
    """Noise-only binned shear (len(indices), ny, nx) × 2; realisation i uses fold_in(key, i).

    'gaussian': γ_c = NOISE_STD · N(0, 1) per component (the noise model of the reconstruction).
    'rotate': each pixel's measured shear γ1 + iγ2 multiplied by e^{iψ}, ψ uniform in [0, 2π): the
    binned analogue of rotating galaxy shapes. It keeps each pixel's |γ|, which includes the signal,
    so the noise power is overestimated by ⟨|γ_signal|²⟩/2 per component (small only where the
    per-pixel noise dominates the signal).
    Pixels outside the mask stay 0. Results do not depend on how the indices are chunked.
    """
    if method not in ("gaussian", "rotate"):
        raise ValueError(f"unknown noise method {method!r}")
    n1, n2 = _shear_noise(key, jnp.asarray(g1, jnp.float32), jnp.asarray(g2, jnp.float32),
                          jnp.asarray(noise_std, jnp.float32), jnp.asarray(mask) > 0,
                          jnp.asarray(indices, jnp.uint32), method)
    return np.asarray(n1), np.asarray(n2)


@functools.partial(jax.jit, static_argnames="method")
def _shear_noise(key, g1, g2, sd, inside, indices, method):
    def draw(i):
        k = jax.random.fold_in(key, i)
        if method == "gaussian":
            z = jax.random.normal(k, (2,) + g1.shape, jnp.float32)
            return jnp.where(inside, sd * z[0], 0.0), jnp.where(inside, sd * z[1], 0.0)
        psi = jax.random.uniform(k, g1.shape, jnp.float32, 0.0, 2 * jnp.pi)
        c, s = jnp.cos(psi), jnp.sin(psi)
        return jnp.where(inside, g1 * c - g2 * s, 0.0), jnp.where(inside, g1 * s + g2 * c, 0.0)

    return jax.vmap(draw)(indices)


def signal_shear_realisations(key: jax.Array, cl_grid, pixel_size_arcmin: float, pad: int, mask, indices):
    """Shear of Gaussian κ fields with power ``cl_grid`` on the padded (ny + 2 pad, nx + 2 pad) grid,
    cropped to the map and set to 0 outside the mask: realisation i uses fold_in(key, i).

    Their Kaiser-Squires B mode is the E→B leakage that the mask and the map edges cause.
    """
    s1, s2 = _signal_shear(key, jnp.asarray(cl_grid, jnp.float32), float(pixel_size_arcmin), int(pad),
                           jnp.asarray(mask) > 0, jnp.asarray(indices, jnp.uint32))
    return np.asarray(s1), np.asarray(s2)


@functools.partial(jax.jit, static_argnames=("pixel_size_arcmin", "pad"))
def _signal_shear(key, cl, pixel_size_arcmin, pad, inside, indices):
    from massmap.ops.shear import crop_map, kappa_to_shear
    from massmap.ops.spectra import gaussian_random_field

    def draw(i):
        kappa = gaussian_random_field(jax.random.fold_in(key, i), cl, pixel_size_arcmin)
        g1, g2 = kappa_to_shear(kappa)
        return jnp.where(inside, crop_map(g1, pad), 0.0), jnp.where(inside, crop_map(g2, pad), 0.0)

    return jax.vmap(draw)(indices)


def noise_std_map(noise_maps: np.ndarray) -> np.ndarray:
    """Per-pixel standard deviation (ddof = 1) over realisations (n, ny, nx)."""
    return np.asarray(noise_maps, np.float64).std(axis=0, ddof=1)


def signal_to_noise(kappa: np.ndarray, std: np.ndarray) -> np.ndarray:
    """κ / σ, with 0 where σ is 0 or not finite."""
    std = np.asarray(std, np.float64)
    ok = np.isfinite(std) & (std > 0)
    return np.where(ok, np.asarray(kappa, np.float64) / np.where(ok, std, 1.0), 0.0)


# ------------------------------------------------------------------ peaks

def allowed_region(mask: np.ndarray, edge_pix: float = 0.0) -> np.ndarray:
    """Pixels with data that lie at least ``edge_pix`` pixels from the map edge and from no-data pixels."""
    inside = np.asarray(mask) > 0
    if edge_pix <= 0:
        return inside
    dist = ndimage.distance_transform_edt(np.pad(inside, 1))[1:-1, 1:-1]
    return inside & (dist > edge_pix)


def find_peaks(snr: np.ndarray, allowed: np.ndarray, threshold: float, max_peaks: int | None = None):
    """Local maxima of an S/N map: strictly above all 8 neighbours, S/N ≥ threshold, inside ``allowed``.

    Neighbours beyond the map edge count as −∞. Returns (iy, ix) integer arrays sorted by decreasing S/N.
    """
    s = np.asarray(snr, np.float64)
    padded = np.pad(s, 1, constant_values=-np.inf)
    ny, nx = s.shape
    is_max = np.ones_like(s, bool)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            if dy or dx:
                is_max &= s > padded[1 + dy:1 + dy + ny, 1 + dx:1 + dx + nx]
    is_max &= (s >= threshold) & np.asarray(allowed, bool) & np.isfinite(s)
    iy, ix = np.nonzero(is_max)
    order = np.argsort(-s[iy, ix], kind="stable")
    if max_peaks is not None:
        order = order[:max_peaks]
    return iy[order], ix[order]


# ------------------------------------------------------------------ B-mode null test

def _chi2(d: np.ndarray, x: np.ndarray) -> float:
    """χ² of d against the realisations x (n, nb): Hartlap-corrected inverse covariance when n > nb + 2."""
    n, nb = x.shape
    mu = x.mean(axis=0)
    r = d - mu
    if n > nb + 2:
        cov = np.cov(x, rowvar=False, ddof=1).reshape(nb, nb)
        inv = np.linalg.pinv(cov) * (n - nb - 2) / (n - 1)
        return float(r @ inv @ r)
    var = x.var(axis=0, ddof=1)
    return float(np.sum(r * r / var))


def null_test(data: np.ndarray, realisations: np.ndarray) -> dict:
    """χ² of a band-power vector against noise-only realisations (n, n_bins), with two p-values.

    p_value: the χ² distribution with n_bins dof (Gaussian band powers; Hartlap et al. 2007 factor on
    the inverse sample covariance when there are enough realisations, else the diagonal).
    p_value_empirical: (1 + #{χ²_i ≥ χ²}) / (n + 1), with χ²_i of each realisation against the others
    (leave-one-out) — free of the Gaussian assumption, resolution 1/(n + 1).
    Bins that are not finite or have zero variance in the realisations are dropped.
    """
    d = np.asarray(data, np.float64)
    x = np.asarray(realisations, np.float64)
    use = np.isfinite(d) & np.all(np.isfinite(x), axis=0) & (x.var(axis=0, ddof=1) > 0)
    d, x = d[use], x[:, use]
    n, nb = x.shape
    if nb == 0 or n < 3:
        return {"chi2": float("nan"), "dof": int(nb), "p_value": float("nan"),
                "p_value_empirical": float("nan"), "chi2_realisations": [], "bins_used": use.tolist()}
    chi2 = _chi2(d, x)
    loo = np.array([_chi2(x[i], np.delete(x, i, axis=0)) for i in range(n)])
    return {"chi2": chi2, "dof": int(nb), "p_value": float(stats.chi2.sf(chi2, nb)),
            "p_value_empirical": float((1 + np.sum(loo >= chi2)) / (n + 1)),
            "chi2_realisations": loo.tolist(), "bins_used": use.tolist()}


# ------------------------------------------------------------------ posterior calibration

def pit_values(samples: np.ndarray, truth: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """Probability integral transform of the truth under the samples, per pixel inside the mask.

    u = (r + ½) / (n + 1) with r = #{samples < truth} + ½ #{samples = truth}: for exchangeable draws
    r is uniform on {0..n}, so u is uniform up to the 1/(n+1) discreteness.
    """
    s = np.asarray(samples, np.float64)
    t = np.asarray(truth, np.float64)
    inside = _inside(mask, t.shape)
    below = np.sum(s < t, axis=0) + 0.5 * np.sum(s == t, axis=0)
    return ((below + 0.5) / (s.shape[0] + 1))[inside]


def coverage(samples: np.ndarray, truth: np.ndarray, levels, mask: np.ndarray | None = None) -> np.ndarray:
    """Fraction of truth pixels inside the central α-credible interval of the samples, for each α.

    With n samples the truth's rank r = #{samples < truth} (ties counted half) places it in the PIT cell
    [r, r + 1]/(n + 1); for exchangeable draws the randomised PIT u = (r + v)/(n + 1), v ~ U(0, 1), is
    exactly uniform. A pixel counts with the fraction of its cell inside [½ − α/2, ½ + α/2], the
    expectation over v (deterministic, and = α on average for a calibrated posterior at any n; counting
    whole cells by their midpoint would put a truth below all 16 samples inside the 95% interval).
    A calibrated posterior gives coverage α within the binomial error √(α(1−α)/N) for N independent
    pixels (correlated pixels scatter more).
    """
    u = pit_values(samples, truth, mask)  # the centres of the PIT cells, of width 1/(n + 1)
    n1 = np.shape(samples)[0] + 1
    lo, hi = u - 0.5 / n1, u + 0.5 / n1
    out = []
    for a in np.asarray(levels, np.float64):
        overlap = np.clip(np.minimum(hi, 0.5 + a / 2) - np.maximum(lo, 0.5 - a / 2), 0.0, None)
        out.append(float(np.mean(overlap * n1)))
    return np.array(out)


def binomial_error(levels, n: int) -> np.ndarray:
    """√(α(1 − α)/n): the standard error of a coverage fraction over n independent pixels."""
    a = np.asarray(levels, np.float64)
    return np.sqrt(a * (1 - a) / max(int(n), 1))


def zscores(truth: np.ndarray, mean: np.ndarray, std: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
    """(truth − mean) / std inside the mask, where std > 0."""
    t = np.asarray(truth, np.float64)
    inside = _inside(mask, t.shape) & (np.asarray(std) > 0)
    return ((t - np.asarray(mean, np.float64)) / np.where(inside, std, 1.0))[inside]


def detection_probability(samples_at: np.ndarray) -> np.ndarray:
    """P(κ > 0) from posterior samples (n, k) at k positions."""
    return np.mean(np.asarray(samples_at) > 0, axis=0)
