"""Posterior sampling cost: score evaluations and wall time per independent sample, massmap vs jax-lensing.

    python benchmarks/bench_posterior.py [--sizes 128 360] [--chains 8] [--draws 16 8] [--prior PRIOR.h5]

The test problem is the Gaussian limit, where the answer is known in closed form: a Gaussian random
field with the Limber C_ℓ of the default cosmology (jax-cosmo, halofit, sources at z = 1), 1' pixels,
uniform shape noise σ_e = 0.26 with 30 galaxies/arcmin² (σ_n = σ_e/√30 per component and pixel), no
mask and pad = 0, sampled with the analytic Gaussian prior and the default `posterior` settings.
The posterior is then N(Wiener, (S⁻¹ + N⁻¹)⁻¹) diagonal in Fourier space, so every run also reports its
accuracy (with the analytic prior only; ``--prior`` times a learned prior on the same data, where no
exact answer exists): the map-averaged std over the analytic one, the fraction of pixels whose std is within 10%,
and the mean over pixels of z² = ((mean − Wiener)/(std/√ESS))² (1 for a correct sampler; independent chains, posterior.antithetic false).

Cost: "evals/sample" = score (and likelihood-gradient) evaluations spent per returned sample,
annealing included; "evals/ESS" divides the total by the effective sample size (median over pixels,
and the smallest over the summary statistics map variance, central mean and peak). The reference is
jax-lensing (Remy et al. 2022), which spends ~36,000 leapfrog evaluations per posterior sample.

Each size runs in its own subprocess: one warm-up call with the same chunk shape (compiles), then the
timed call; the peak-memory column is the growth of the resident set during the timed call (VmHWM
reset through /proc/self/clear_refs). Run sparingly: about 1 + 6 minutes on 2 CPU cores.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time

import numpy as np
from memory import reset_peak_rss, status_kb  # benchmarks/memory.py

JAX_LENSING_EVALS_PER_SAMPLE = 36_000
PIX = 1.0
SIGMA_E, N_GAL = 0.26, 30.0


def worker(n: int, chains: int, draws: int, prior_path: str | None = None) -> dict:
    import jax
    import jax.numpy as jnp

    import massmap
    from massmap.infer.diagnostics import effective_sample_size
    from massmap.ops.shear import kappa_to_shear, shear_to_kappa
    from massmap.ops.spectra import cl_on_grid, ell_grid, gaussian_random_field

    base = massmap.load_config()
    ell = np.geomspace(1.0, 1.5 * ell_grid(n, n, PIX).max(), 200)
    cl = massmap.kappa_cl(massmap.cosmology_of(base.cosmology), massmap.sources_of(base.sources), ell)
    gaussian = massmap.GaussianPrior(ell, cl, PIX, "jax-cosmo Limber halofit")

    sigma_n = SIGMA_E / np.sqrt(N_GAL * PIX**2)
    kappa = gaussian_random_field(jax.random.PRNGKey(0), cl_on_grid(ell, cl, n, n, PIX), PIX)
    g1, g2 = (np.asarray(a) for a in kappa_to_shear(kappa))
    rng = np.random.default_rng(0)
    g1 = g1 + sigma_n * rng.normal(size=g1.shape)
    g2 = g2 + sigma_n * rng.normal(size=g2.shape)
    shear = massmap.BinnedShear(massmap.FlatGrid(0.0, 0.0, PIX, n, n), g1, g2, np.full((n, n), sigma_n),
                                np.ones((n, n)))
    s = gaussian.mode_variance(n, n).astype(np.float64)
    ke = np.asarray(shear_to_kappa(jnp.asarray(g1), jnp.asarray(g2))[0], np.float64)
    wiener = np.fft.ifft2(np.fft.fft2(ke) * s / (s + sigma_n**2)).real
    std_exact = np.sqrt(np.mean(s * sigma_n**2 / (s + sigma_n**2)))

    def settings(n_samples):
        # independent chains: the mean z² below checks the sampler against its ESS-based error, which
        # antithetic pairs (the default) would make far smaller than std/√ESS
        return massmap.load_config(overrides=[f"posterior.n_samples={n_samples}", f"posterior.chains={chains}",
                                              f"posterior.chunk={chains}", "posterior.antithetic=false"]).posterior

    prior = massmap.load_prior(prior_path) if prior_path else gaussian

    def run(n_samples, seed):
        out = massmap.posterior_maps(shear, settings(n_samples), 0, jax.random.PRNGKey(seed), prior,
                                     reference=gaussian, progress=False)
        return out.posterior

    t0 = time.perf_counter()
    run(chains, 1)
    warm = time.perf_counter() - t0
    rss0 = status_kb("VmRSS")
    ok = reset_peak_rss()
    t0 = time.perf_counter()
    res = run(chains * draws, 2)
    wall = time.perf_counter() - t0
    peak_mb = (status_kb("VmHWM") - rss0) / 1024.0 if ok else None
    samples, d = res.samples, res.info
    ess_pix = np.asarray(effective_sample_size(samples.reshape((chains, draws) + samples.shape[1:])))
    ess_summary = min(d.ess.values())
    total = d.n_score_evals
    z2 = float(np.mean(((res.mean - wiener) / (std_exact / np.sqrt(ess_pix))) ** 2))
    std = res.std
    exact = prior is gaussian  # a learned prior's posterior is not the Gaussian one: no exact answer to compare
    return {
        "n": n, "chains": chains, "draws": draws, "samples": len(samples), "warmup_s": warm, "wall_s": wall,
        "device": jax.devices()[0].device_kind, "peak_mb": peak_mb, "evals_per_sample": res.score_evals_per_sample,
        "total_evals": total,
        "ess_pixel_median": float(np.median(ess_pix)), "ess_summary_min": float(ess_summary),
        "evals_per_ess_pixel": total / float(np.median(ess_pix)), "evals_per_ess_summary": total / ess_summary,
        "wall_per_ess_pixel": wall / float(np.median(ess_pix)),
        "std_ratio": float(np.sqrt(np.mean(std**2)) / std_exact) if exact else float("nan"),
        "frac_std_10pct": float(np.mean(np.abs(std / std_exact - 1) < 0.1)) if exact else float("nan"),
        "mean_z2": z2 if exact else float("nan"),
        "acceptance": d.acceptance_draws, "step_size": d.step_size_draws, "rhat_max": d.rhat_max,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[128, 360])
    ap.add_argument("--chains", type=int, default=8)
    ap.add_argument("--draws", type=int, nargs="+", default=[16, 8], help="draws per chain, one per size")
    ap.add_argument("--prior", default=None, help="a learned prior file (default: the analytic Gaussian prior)")
    ap.add_argument("--worker", type=int, nargs=3, metavar=("N", "CHAINS", "DRAWS"), help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.worker:
        print(json.dumps(worker(*a.worker, a.prior)))
        return 0
    draws = a.draws + [a.draws[-1]] * (len(a.sizes) - len(a.draws))
    rows = []
    for n, dr in zip(a.sizes, draws):
        env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536")
        extra = ["--prior", a.prior] if a.prior else []
        out = subprocess.run([sys.executable, __file__, "--worker", str(n), str(a.chains), str(dr), *extra],
                             capture_output=True, text=True, env=env)
        if out.returncode != 0:
            print(out.stderr[-3000:], file=sys.stderr)
            return 1
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
    what = f"learned prior {a.prior} (no exact answer: accuracy columns n/a)" if a.prior else \
        "Gaussian limit (analytic prior)"
    print(f"\nposterior sampling, {what}; device {rows[0]['device']}, CPU {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores; jax-lensing reference: {JAX_LENSING_EVALS_PER_SAMPLE:,} evals/sample\n")
    print("| map | chains×draws | evals/sample | ESS (pixel median / summary min) | evals/ESS (pixel / summary) "
          "| wall (s) | wall/ESS (s) | warm-up (s) | peak MB | std/exact | pixels within 10% | mean z² | accept |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        peak = f"{r['peak_mb']:.0f}" if r["peak_mb"] is not None else "n/a"
        print(f"| {r['n']}² | {r['chains']}×{r['draws']} | {r['evals_per_sample']:.0f} | "
              f"{r['ess_pixel_median']:.0f} / {r['ess_summary_min']:.0f} | "
              f"{r['evals_per_ess_pixel']:.0f} / {r['evals_per_ess_summary']:.0f} | {r['wall_s']:.1f} | "
              f"{r['wall_per_ess_pixel']:.2f} | {r['warmup_s']:.1f} | {peak} | {r['std_ratio']:.3f} | "
              f"{r['frac_std_10pct']:.2f} | {r['mean_z2']:.2f} | {r['acceptance']:.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
