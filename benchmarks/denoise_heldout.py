"""Held-out denoising benchmark of score priors: Tweedie's denoiser against the Wiener denoiser.

For a prior with score s_θ(κ, σ) ≈ ∇ log p_σ(κ), Tweedie's formula D(y) = y + σ² s_θ(y, σ) is the
posterior mean of κ given y = κ + σu, u ~ N(0, I): the best a prior can do on a denoising problem, and
what the posterior sampler's mean is built from (docs/posterior.md). Its RMSE against that of the
Wiener denoiser of the prior's own training C_ℓ, y → μ + F⁻¹[S/(S + σ²) F(y − μ)] (the posterior mean
of a Gaussian prior with the same two-point function), is the cheapest honest measure of what a network
learned beyond the power spectrum (issue 13; ratio < 1: it learned something). Unlike the validation
loss that ``train-prior`` records, the maps here are held out from training altogether (another seed of
the simulator) and the same noise draws are used for every prior, so priors trained with other batch
sizes or validation sets are compared like for like.

``--torus-draws N`` gives, for every prior and without sampling, the Pearson r of that prior's exact
posterior mean for shear data on the torus (below) over N noise draws shared by the priors, with each
prior's paired difference from the first: how candidate priors rank where the posterior mean is known;
``--grf-fields M`` adds the same on M Gaussian fields of the halofit C_ℓ, where the Wiener filter of
that C_ℓ is the exact posterior mean (how much a PM-trained prior costs out of distribution).

With ``--posterior-samples N`` it also runs the posterior sampler (default settings, N samples) on each
map as shear data on the torus: κ periodic, pad 0, uniform noise σ_n per component, no mask. There P is
unitary on ℓ ≠ 0, so the data are equivalent to the KS map κ_E = κ + white noise σ_n and the exact
posterior mean under the prior is its own Tweedie denoiser D(κ_E) at σ_n: the table shows how close
the sampler's mean comes to the bound its prior sets, next to the Wiener filter of the same C_ℓ
(tests/test_posterior.py checks the same identity on one Gaussian field). ``--pad P`` reconstructs the
same shear on a grid padded by P pixels, as ``reconstruct`` does, next to the Wiener filter of that
padded model: what the padding costs each method.

Besides the RMSE, the table gives each denoiser's calibration slope Σ⟨D, κ⟩ / Σ⟨D, D⟩ (over maps and
pixels, mean-subtracted): E[κ | y] has slope 1 for every estimator input, so a slope above 1 means a
denoiser that shrinks too much, below 1 too little. The same slope per ℓ band (Fourier sums over the
band and the maps, ``--band-sigma``, default the shear noise σ_n) shows at which scales a prior shrinks
too much or too little: the posterior benchmark measures the posterior mean's slopes per band
(docs/posterior.md), and this separates what the prior does from what the sampler does.

Usage (8 held-out PM fields of 64² at 1′, ~2 min to simulate on 2 CPU cores):
    massmap simulate -o build/heldout/maps.h5 --config configs/heldout-pm-1arcmin.yaml
    .venv/bin/python benchmarks/denoise_heldout.py build/heldout/maps.h5 massmap/data/priors/default.h5 [PRIOR.h5 ...]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import massmap
from massmap.io.datasets import read_maps, read_metadata
from massmap.io.priors import load_prior
from massmap.ops.fourier import fourier_multiply

DEFAULT_SIGMAS = (1e-3, 2.15e-3, 4.64e-3, 1e-2, 2.15e-2, 4.64e-2, 1e-1)  # κ units; 0.047 ≈ 30 gal/arcmin²


def wiener_denoise(prior, y: np.ndarray, sigma: float) -> np.ndarray:
    """The Wiener denoiser of the prior's training C_ℓ (its hybrid base term S, in units of τ²)."""
    s = prior.network_mode_variance(*y.shape[-2:])
    x = jnp.asarray((y - prior.kappa_mean) / prior.kappa_std, jnp.float32)
    filt = s / (s + (sigma / prior.kappa_std) ** 2)
    return np.asarray(fourier_multiply(x, filt), np.float64) * prior.kappa_std + prior.kappa_mean


def tweedie_denoise(prior, y: np.ndarray, sigma: float, batch: int = 16) -> np.ndarray:
    out = [np.asarray(prior.denoise(jnp.asarray(y[i:i + batch], jnp.float32),
                                    jnp.full((len(y[i:i + batch]),), sigma, jnp.float32)))
           for i in range(0, len(y), batch)]
    return np.concatenate(out).astype(np.float64)


def slope(estimate: np.ndarray, truth: np.ndarray) -> float:
    e = estimate - estimate.mean(axis=(-2, -1), keepdims=True)
    t = truth - truth.mean(axis=(-2, -1), keepdims=True)
    return float(np.sum(e * t) / np.sum(e * e))


def band_slopes(estimate: np.ndarray, truth: np.ndarray, ell_edges: np.ndarray,
                pixel_size_arcmin: float) -> tuple[np.ndarray, np.ndarray]:
    """(mean ℓ per band, Σ_maps ⟨D, κ⟩ / Σ_maps ⟨D, D⟩ per band); maps mean-subtracted, cross-spectra
    summed over the maps."""
    from massmap.ops.spectra import power_spectrum

    e = estimate - estimate.mean(axis=(-2, -1), keepdims=True)
    t = truth - truth.mean(axis=(-2, -1), keepdims=True)
    ell, cross, _ = power_spectrum(e, pixel_size_arcmin, ell_edges, other=t)
    auto = power_spectrum(e, pixel_size_arcmin, ell_edges)[1]
    return ell, cross.sum(axis=0) / auto.sum(axis=0)


def band_table(maps: np.ndarray, priors: dict, sigma: float, pixel_size_arcmin: float, n_bins: int = 10,
               seed: int = 0) -> dict:
    """Per-band slopes of each prior's Tweedie denoiser and of its Wiener denoiser at one σ."""
    from massmap.ops.spectra import log_ell_bins

    edges = log_ell_bins(*maps.shape[-2:], pixel_size_arcmin, n_bins)
    y = maps + sigma * np.random.default_rng(seed + 1).standard_normal(maps.shape)
    out = {"sigma": float(sigma), "ell_edges": edges, "priors": {}}
    for name, prior in priors.items():
        d, w = tweedie_denoise(prior, y, sigma), wiener_denoise(prior, y, sigma)
        out["ell"], tweedie = band_slopes(d, maps, edges, pixel_size_arcmin)
        out["priors"][name] = {"tweedie": tweedie, "wiener": band_slopes(w, maps, edges, pixel_size_arcmin)[1]}
    return out


def print_band_table(bt: dict, names: list[str]) -> None:
    print(f"\ncalibration slope per ℓ band at σ = {bt['sigma']:.4g} (Σ⟨D, κ⟩/Σ⟨D, D⟩ over maps; 1: calibrated)")
    print("| denoiser | " + " | ".join(f"{e:.0f}" for e in bt["ell"]) + " |")
    print("|---|" + "---|" * len(bt["ell"]))
    for n in names:
        for kind in ("tweedie", "wiener"):
            print(f"| {n} {kind} | " + " | ".join(f"{v:.2f}" for v in bt["priors"][n][kind]) + " |")


def rmse(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.sqrt(np.mean((a - b) ** 2)))


def compare(maps: np.ndarray, priors: dict, sigmas, seed: int = 0) -> list[dict]:
    """One row per σ: the Wiener denoiser's RMSE (of the first prior's C_ℓ) and, per prior, its
    Tweedie RMSE, RMSE ratio to its own Wiener denoiser and both slopes. The noise is the same for all."""
    rng = np.random.default_rng(seed)
    rows = []
    for sigma in sigmas:
        y = maps + sigma * rng.standard_normal(maps.shape)
        row = {"sigma": float(sigma), "priors": {}}
        for name, prior in priors.items():
            d, w = tweedie_denoise(prior, y, sigma), wiener_denoise(prior, y, sigma)
            row.setdefault("wiener_rmse", rmse(w, maps))
            row["priors"][name] = {"rmse": rmse(d, maps), "ratio": rmse(d, maps) / rmse(w, maps),
                                   "slope": slope(d, maps), "wiener_slope": slope(w, maps)}
        rows.append(row)
    return rows


def pearson(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.corrcoef(a.ravel(), b.ravel())[0, 1])


def posterior_on_torus(maps: np.ndarray, prior, n_samples: int, sigma_n: float, seed: int = 0,
                       pad: int = 0, overrides: tuple[str, ...] = ()) -> list[dict]:
    """Per map: RMSE and r to the truth of the Wiener filter, the exact posterior mean D(κ_E) and the
    sampler's mean, for shear data on the torus (module docstring); and the systematic rms difference
    sampler − exact, √(rms² − mean ε²) with ε the mean's Monte-Carlo error. With ``pad`` > 0 the same
    periodic shear is reconstructed on a grid padded by ``pad`` pixels, as ``reconstruct`` does (and
    ``validate_posterior``'s mock catalogs, whose shear is periodic on the field): D(κ_E) is then no
    longer the exact posterior mean of that model, only a reference. Each row keeps the maps (``_maps``)
    for the per-band slopes."""
    from massmap.config import load_config
    from massmap.config.posterior import sampler_settings
    from massmap.infer.likelihood import pad_shear
    from massmap.infer.sampler import sample_posterior
    from massmap.ops.shear import kappa_to_shear, shear_to_kappa

    rng = np.random.default_rng(seed)
    settings = sampler_settings(load_config(overrides=[f"posterior.n_samples={n_samples}", *overrides]).posterior, prior,
                                tuple(m + 2 * pad for m in maps.shape[1:]))
    out = []
    for i, truth in enumerate(maps):
        truth = truth - truth.mean()
        n = truth.shape
        g1, g2 = (np.asarray(a, np.float64) + sigma_n * rng.standard_normal(n)
                  for a in kappa_to_shear(jnp.asarray(truth, jnp.float32)))
        kappa_e = np.asarray(shear_to_kappa(jnp.asarray(g1, jnp.float32), jnp.asarray(g2, jnp.float32))[0], np.float64)
        exact = tweedie_denoise(prior, kappa_e[None], sigma_n)[0]
        exact -= exact.mean()
        wiener = wiener_denoise(prior, kappa_e, sigma_n)
        wiener -= wiener.mean()
        maps_i = {"truth": truth, "wiener": wiener, "exact": exact}
        if pad > 0:
            maps_i["wiener_padded"] = padded_wiener(prior, g1, g2, sigma_n, pad)
        res = sample_posterior(jax.random.PRNGKey(seed + i), pad_shear(g1, g2, np.full(n, sigma_n), np.ones(n), pad),
                               prior, settings, pad=pad)
        mean = np.asarray(res.mean, np.float64) - float(res.mean.mean())
        eps2 = float(np.mean(res.mean_error.astype(np.float64) ** 2)) if res.mean_error is not None else 0.0
        row = {"map": i, "systematic": float(np.sqrt(max(rmse(mean, exact) ** 2 - eps2, 0.0))),
               "wiener_to_exact": rmse(wiener, exact), "mc_error": float(np.sqrt(eps2)),
               "_maps": {**maps_i, "sampler": mean}}
        for name, m in row["_maps"].items():
            if name != "truth":
                row[name] = {"rmse": rmse(m, truth), "r": pearson(m, truth)}
        out.append(row)
        padded = f" (padded {row['wiener_padded']['r']:.3f})" if pad > 0 else ""
        print(f"  map {i}: r Wiener {row['wiener']['r']:.3f}{padded}, exact mean {row['exact']['r']:.3f}, sampler "
              f"{row['sampler']['r']:.3f}; systematic sampler − exact {row['systematic']:.5f} "
              f"(Wiener − exact {row['wiener_to_exact']:.5f})", flush=True)
    return out


def exact_torus_means(maps: np.ndarray, priors: dict, sigma_n: float, draws: int, seed: int = 0) -> dict:
    """Pearson r of the exact posterior mean on the torus, per prior, over ``draws`` noise draws shared
    by all priors (no sampling). On the torus with uniform noise the KS map is κ_E = κ + n, n white of
    σ_n per pixel without its ℓ = 0 mode (module docstring), and the exact posterior mean under a prior
    is its Tweedie denoiser D(κ_E) at σ_n: one score evaluation per map. Returns the mean r per prior, of
    the Wiener filter of the first prior's C_ℓ, and each prior's paired difference from the first with
    its standard error over maps × draws."""
    truth = maps - maps.mean(axis=(-2, -1), keepdims=True)
    rng = np.random.default_rng(seed + 2)
    names = list(priors)
    r = {n: [] for n in names}
    r_wiener = []
    for _ in range(draws):
        noise = sigma_n * rng.standard_normal(truth.shape)
        kappa_e = truth + noise - noise.mean(axis=(-2, -1), keepdims=True)
        for n in names:
            d = tweedie_denoise(priors[n], kappa_e, sigma_n)
            r[n] += [pearson(a - a.mean(), t) for a, t in zip(d, truth)]
        w = wiener_denoise(priors[names[0]], kappa_e, sigma_n)
        r_wiener += [pearson(a - a.mean(), t) for a, t in zip(w, truth)]
    first = np.array(r[names[0]])
    out = {"sigma_n": float(sigma_n), "draws": draws, "wiener_r": float(np.mean(r_wiener)), "priors": {}}
    for n in names:
        d = np.array(r[n]) - first
        out["priors"][n] = {"r": float(np.mean(r[n])), "minus_first": float(d.mean()),
                            "minus_first_error": float(d.std(ddof=1) / np.sqrt(d.size)) if d.size > 1 else 0.0}
    return out


def gaussian_fields(n: int, npix: int, pixel_size_arcmin: float, seed: int) -> tuple[np.ndarray, object]:
    """``n`` Gaussian fields of the jax-cosmo halofit C_ℓ of the default config (sources at z = 1, as the
    training maps) and that C_ℓ's Gaussian prior: out-of-distribution truth for a PM-trained prior."""
    from massmap.config import load_config
    from massmap.ops.spectra import cl_on_grid, gaussian_random_field

    signal = massmap.signal_prior(load_config([], ["sources.z_source=1.0"]), pixel_size_arcmin, ell_max=2e4)
    clg = cl_on_grid(signal.ell, signal.cl, npix, npix, pixel_size_arcmin)
    maps = gaussian_random_field(jax.random.PRNGKey(seed + 3), jnp.asarray(clg), pixel_size_arcmin, (n,))
    return np.asarray(maps, np.float64), signal


def halofit_wiener_r(maps: np.ndarray, signal, sigma_n: float, draws: int, seed: int) -> float:
    """Mean r of the Wiener filter of the halofit C_ℓ (the exact posterior mean on Gaussian fields of that
    C_ℓ) on the torus, with the noise draws of :func:`exact_torus_means`."""
    truth = maps - maps.mean(axis=(-2, -1), keepdims=True)
    s = signal.mode_variance(*maps.shape[-2:])
    rng = np.random.default_rng(seed + 2)
    r = []
    for _ in range(draws):
        noise = sigma_n * rng.standard_normal(truth.shape)
        kappa_e = jnp.asarray(truth + noise - noise.mean(axis=(-2, -1), keepdims=True), jnp.float32)
        w = np.asarray(fourier_multiply(kappa_e, s / (s + sigma_n ** 2)), np.float64)
        r += [pearson(a - a.mean(), t) for a, t in zip(w, truth)]
    return float(np.mean(r))


def print_exact_torus(res: dict, names: list[str]) -> None:
    print(f"\nexact posterior mean on the torus (σ_n {res['sigma_n']:.4f}, {res['draws']} noise draws shared by the "
          f"priors): Wiener filter of {names[0]}'s C_ℓ r {res['wiener_r']:.4f}")
    print("| prior | r | r − first prior's (paired ± s.e.) |")
    print("|---|---|---|")
    for n in names:
        p = res["priors"][n]
        print(f"| {n} | {p['r']:.4f} | {p['minus_first']:+.4f} ± {p['minus_first_error']:.4f} |")


def padded_wiener(prior, g1: np.ndarray, g2: np.ndarray, sigma_n: float, pad: int) -> np.ndarray:
    """The Wiener filter of the prior's training C_ℓ for the model the sampler uses with ``pad``: κ on the
    padded grid, data only inside the field (conjugate gradients, massmap.ops.wiener); cropped, mean 0."""
    from massmap.ops.shear import pad_map
    from massmap.ops.wiener import wiener_cg

    n = g1.shape[0] + 2 * pad, g1.shape[1] + 2 * pad
    s = prior.network_mode_variance(*n) * prior.kappa_std ** 2

    def padded(a):
        return pad_map(jnp.asarray(a, jnp.float32), pad)

    k, info = wiener_cg(padded(g1), padded(g2), padded(np.full(g1.shape, sigma_n ** -2)), s)
    if not info.converged:
        print(f"  warning: padded Wiener CG stopped at relative residual {info.residual:.2e} "
              f"after {info.iterations} iterations", flush=True)
    k = np.asarray(k, np.float64)[pad:-pad, pad:-pad]
    return k - k.mean()


def print_posterior_table(rows: list[dict]) -> None:
    kinds = [k for k in ("wiener", "wiener_padded", "exact", "sampler") if k in rows[0]]
    heads = {"wiener": "Wiener (torus)", "wiener_padded": "Wiener (padded grid)", "exact": "exact posterior mean (torus)",
             "sampler": "sampler mean"}
    print("| map | " + " | ".join(f"{heads[k]} RMSE / r" for k in kinds) + " | systematic (sampler − exact) / (Wiener − exact) |")
    print("|---|" + "---|" * (len(kinds) + 1))
    for r in rows + [{"map": "mean", **{k: {m: np.mean([x[k][m] for x in rows]) for m in ("rmse", "r")}
                                           for k in kinds},
                      "systematic": np.mean([x["systematic"] for x in rows]),
                      "wiener_to_exact": np.mean([x["wiener_to_exact"] for x in rows])}]:
        cells = [f"{r[k]['rmse']:.5f} / {r[k]['r']:.3f}" for k in kinds]
        print(f"| {r['map']} | " + " | ".join(cells) + f" | {r['systematic']:.5f} / {r['wiener_to_exact']:.5f} |")


def posterior_band_slopes(rows: list[dict], pixel_size_arcmin: float, n_bins: int = 10) -> dict:
    """Per-band calibration slopes over the maps of the Wiener filter, D(κ_E) and the sampler's mean."""
    from massmap.ops.spectra import log_ell_bins

    truth = np.array([r["_maps"]["truth"] for r in rows])
    edges = log_ell_bins(*truth.shape[-2:], pixel_size_arcmin, n_bins)
    out = {"ell_edges": edges}
    kinds = [k for k in ("wiener", "wiener_padded", "exact", "sampler") if k in rows[0]["_maps"]]
    for k in kinds:
        out["ell"], out[k] = band_slopes(np.array([r["_maps"][k] for r in rows]), truth, edges, pixel_size_arcmin)
    print("| map | " + " | ".join(f"{e:.0f}" for e in out["ell"]) + " |")
    print("|---|" + "---|" * len(out["ell"]))
    for k in kinds:
        print(f"| {k} | " + " | ".join(f"{v:.2f}" for v in out[k]) + " |")
    return out


def print_table(rows: list[dict], names: list[str]) -> None:
    head = "| σ (κ) | Wiener RMSE | " + " | ".join(f"{n}: RMSE / Wiener, slope" for n in names) + " |"
    print(head)
    print("|" + "---|" * (2 + len(names)))
    for r in rows:
        cells = [f"{p['ratio']:.3f}, {p['slope']:.3f}" for p in (r["priors"][n] for n in names)]
        print(f"| {r['sigma']:.3g} | {r['wiener_rmse']:.5f} | " + " | ".join(cells) + " |")
    means = [np.mean([r["priors"][n]["ratio"] for r in rows]) for n in names]
    print("| mean ratio | | " + " | ".join(f"{m:.3f}" for m in means) + " |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("maps", type=Path, help="held-out map set (.h5 from massmap simulate)")
    ap.add_argument("priors", type=Path, nargs="+", help="prior files (massmap train-prior)")
    ap.add_argument("--sigma", type=float, nargs="+", default=list(DEFAULT_SIGMAS), help="noise levels (κ units)")
    ap.add_argument("--seed", type=int, default=0, help="seed of the noise draws")
    ap.add_argument("--torus-draws", type=int, default=0,
                    help="r of each prior's exact posterior mean on the torus over this many shared noise draws (0: no)")
    ap.add_argument("--grf-fields", type=int, default=0,
                    help="with --torus-draws: also on this many Gaussian fields of the halofit C_ℓ (out of distribution)")
    ap.add_argument("--posterior-samples", type=int, default=0,
                    help="also run the sampler with this many samples on the torus (first prior; 0: no)")
    ap.add_argument("--shear-noise", type=float, default=0.26 / np.sqrt(30.0),
                    help="σ_n per shear component and pixel for --posterior-samples (default: σ_e 0.26, 30/arcmin², 1′)")
    ap.add_argument("--pad", type=int, default=0,
                    help="padding of the reconstruction grid for --posterior-samples (default 0: the torus)")
    ap.add_argument("--band-sigma", type=float, default=None,
                    help="σ (κ units) of the per-band slope table (default: --shear-noise)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="config override for --posterior-samples (e.g. posterior.annealed_likelihood=inflated)")
    ap.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    args = ap.parse_args(argv)
    maps = np.asarray(read_maps(args.maps)[0], np.float64)
    names = [str(p) for p in args.priors]
    priors = {str(p): load_prior(p) for p in args.priors}
    print(f"{len(maps)} held-out maps of {maps.shape[1]}x{maps.shape[2]} from {args.maps}; noise seed {args.seed}")
    rows = compare(maps, priors, args.sigma, args.seed)
    print_table(rows, names)
    pixel = float(next(iter(priors.values())).pixel_size_arcmin)
    band_sigma = args.shear_noise if args.band_sigma is None else args.band_sigma
    bands = band_table(maps, priors, band_sigma, pixel, seed=args.seed)
    print_band_table(bands, names)
    result = {"maps": str(args.maps), "maps_metadata": read_metadata(args.maps), "seed": args.seed, "rows": rows,
              "bands": bands, "massmap": massmap.__version__, "jax": jax.__version__}
    if args.torus_draws > 0:
        result["exact_torus"] = exact_torus_means(maps, priors, args.shear_noise, args.torus_draws, args.seed)
        print_exact_torus(result["exact_torus"], names)
        if args.grf_fields > 0:
            pixel0 = float(next(iter(priors.values())).pixel_size_arcmin)
            grf, signal = gaussian_fields(args.grf_fields, maps.shape[-1], pixel0, args.seed)
            res = exact_torus_means(grf, priors, args.shear_noise, args.torus_draws, args.seed)
            res["halofit_wiener_r"] = halofit_wiener_r(grf, signal, args.shear_noise, args.torus_draws, args.seed)
            result["exact_torus_gaussian_fields"] = res
            print(f"\non {args.grf_fields} Gaussian fields of the halofit C_ℓ (out of distribution; there the Wiener "
                  f"filter of the halofit C_ℓ is the exact posterior mean): its r {res['halofit_wiener_r']:.4f}")
            print_exact_torus(res, names)
    if args.posterior_samples > 0:
        print(f"\nposterior on the torus: {names[0]}, {args.posterior_samples} samples, σ_n {args.shear_noise:.4f}, "
              f"pad {args.pad}")
        post = posterior_on_torus(maps, priors[names[0]], args.posterior_samples, args.shear_noise, args.seed, args.pad,
                                  tuple(args.overrides))
        print_posterior_table(post)
        print("\ncalibration slope per ℓ band over the maps (Σ⟨m, κ⟩/Σ⟨m, m⟩; 1: calibrated)")
        post_bands = posterior_band_slopes(post, pixel)
        for r in post:
            r.pop("_maps")
        result.update(posterior=post, posterior_bands=post_bands, posterior_samples=args.posterior_samples,
                      shear_noise=args.shear_noise, pad=args.pad)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_name(args.out.name + ".tmp")
        tmp.write_text(json.dumps(result, indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
        tmp.replace(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
