"""Posterior quality with a learned prior on held-out simulated fields, against Wiener and Kaiser-Squires.

    python benchmarks/validate_posterior.py [--prior PRIOR.h5|gaussian] [--fields 4] [--n-samples 64]
                                            [--chains C] [--seed 1000] [--npix N] [--pad P]
                                            [--fields-config CONFIG | --fields-from MAPS.h5 | --kind grf]
                                            [--positions FOOTPRINT.fits]
                                            [--out benchmarks/results/posterior] [--set KEY=VALUE ...] [--reuse]

Runs the user-facing pipeline, in one process, on ``--fields`` held-out fields: by default drawn from
the demo's distribution (configs/demo.yaml: PM ray-traced κ, 64² pixels of 1′, 30 galaxies/arcmin²,
σ_e = 0.26, pad 16; ``--kind lognormal`` or ``--kind grf`` for shifted-lognormal or Gaussian fields of
the halofit C_ℓ, ``--npix``/``--pad`` change the size), or simulated from ``--fields-config`` (e.g. configs/heldout-pm-1arcmin.yaml: PM ray-traced
fields of a seed never used for training), or read from ``--fields-from MAPS.h5``; always with a
simulation seed different from the one that made the prior's training maps:

    massmap simulate → mock-catalog --index i → reconstruct --method all --prior P → summarize --truth

and collects from each summary (metrics.json) the RMSE and Pearson r against the truth inside the mask
for every method, and the posterior's per-pixel coverage of the 68% and 95% credible intervals. With ``--positions`` the mock
galaxies lie on a survey footprint (benchmarks/survey_footprint.py: star masks and a gap) and the same
metrics are also measured in its holes, where the maps are inferred without data. The
samples' statistics are compared with the truth's over all fields: band powers (field-average
C_ℓ(samples)/C_ℓ(truth) per band, with its spread), peak counts per S/N bin of truth/σ against
sample/σ, and the one-point κ PDF on common bins (OUT/sample_statistics.png); and per band the
calibration slope Σ⟨m, κ⟩/Σ⟨m, m⟩ of the posterior mean and of the Wiener map (1 for E[κ | data]). Prints markdown tables
and writes ``OUT/validate_posterior.json``. The issue-13 targets: posterior mean r ≥ r_Wiener + 0.05
and RMSE ≤ 0.95 RMSE_Wiener on average and better than Wiener on every field; sample C_ℓ within 10%
up to half the Nyquist ℓ; coverage within 3 points of nominal; ≤ 400 score evaluations per sample.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONFIG = ROOT / "configs" / "demo.yaml"
METHODS = ("ks", "wiener", "posterior", "map")


def massmap(*args: str) -> None:
    """Run one massmap command in this process (the JIT caches carry over between fields)."""
    from massmap.cli import main

    try:
        main.main(args=list(args), standalone_mode=False)
    except SystemExit as exc:  # user_errors exits 2 with a one-line message
        if exc.code:
            raise RuntimeError(f"massmap {' '.join(args)} exited with {exc.code}") from None


def relative_to_root(path: str) -> str:
    """A path inside the repository as repository-relative (the JSON does not name this machine's paths)."""
    try:
        return str(Path(path).resolve().relative_to(ROOT))
    except ValueError:  # outside the repository, or 'gaussian'
        return path


def coverage_at(cal: dict, level: float) -> float:
    levels = np.asarray(cal["levels"])
    i = int(np.argmin(np.abs(levels - level)))
    return float(cal["coverage"][i]) if abs(levels[i] - level) < 1e-6 else float("nan")


def size_overrides(npix: int | None, pad: int | None) -> list[str]:
    """--set options for another field size / padding than the demo's (every stage sees the same)."""
    sets = [f"simulate.npix={npix}", f"grid.npix={npix}"] if npix else []
    sets += [f"pad={pad}"] if pad is not None else []
    return [a for kv in sets for a in ("--set", kv)]


def run_field(out: Path, maps: Path, index: int, seed: int, prior: str, n_samples: int, chains: int,
              overrides: list[str], size: list[str], reused_wall: float | None = None,
              positions: str | None = None) -> dict:
    """One field: mock catalog (at the galaxy positions of catalog ``positions`` when given: a survey
    footprint), reconstruct, summarize, and its row of metrics. With ``reused_wall`` (the reconstruct
    time recorded by an earlier run, NaN if unknown) the field's files already in ``out`` are read again
    instead."""
    d = out / f"field{index:02d}"
    d.mkdir(parents=True, exist_ok=True)
    common = ["--config", str(CONFIG), "--set", f"seed={seed + index}", "--overwrite", *size]
    if reused_wall is None:
        footprint = ["--set", f"mock.positions={positions}"] if positions else []
        massmap("mock-catalog", str(maps), "--index", str(index), "-o", str(d / "catalog.fits"),
                "--truth-out", str(d / "truth.fits"), *common, *footprint)
        t0 = time.perf_counter()
        massmap("reconstruct", str(d / "catalog.fits"), "-o", str(d / "recon.fits"), "--method", "all",
                "--prior", prior, "--n-samples", str(n_samples), *(["--chains", str(chains)] if chains else []),
                "--quiet", "--no-plot", *common, "--set", f"posterior.chunk={min(chains or n_samples, 64)}",
                *[a for kv in overrides for a in ("--set", kv)])
        wall = time.perf_counter() - t0
        massmap("summarize", str(d / "recon.fits"), "--truth", str(d / "truth.fits"), "-o", str(d / "summary"),
                "--quiet", *common)
    else:
        wall = reused_wall
    m = json.loads((d / "summary" / "metrics.json").read_text())
    row = {"field": index, "reconstruct_wall_s": wall}
    for k in METHODS:
        if k in m["methods"]:
            row[f"{k}_rmse"] = m["methods"][k]["rmse"]
            row[f"{k}_r"] = m["methods"][k]["pearson_r"]
    cal = m.get("calibration") or {}
    if cal:
        row["cov68"], row["cov95"] = coverage_at(cal, 0.68), coverage_at(cal, 0.95)
        row["zscore_std"] = cal.get("zscore_std")
    from astropy.io import fits

    with fits.open(d / "recon.fits") as hdul:
        diag = dict(hdul["DIAGNOSTICS"].header)
        std, mask = np.asarray(hdul["KAPPA_STD"].data, float), np.asarray(hdul["MASK"].data) > 0
        mean = np.asarray(hdul["KAPPA_MEAN"].data, float)
        names = [h.name for h in hdul]
        err = np.asarray(hdul["KAPPA_MEAN_ERR"].data, float) if "KAPPA_MEAN_ERR" in names else None
    # the n-draw mean carries Monte Carlo noise of variance ε² per pixel on top of the exact posterior
    # mean's error: E|m_n − κ|² = |m − κ|² + Σ ε², so √(RMSE² − mean(ε²)) estimates the RMSE of the
    # exact posterior mean. ε = KAPPA_MEAN_ERR (the sampler's batch-means estimate over independent units:
    # chains or antithetic pairs); outputs without it: ε² = std²/n (independent samples averaged)
    if "posterior_rmse" in row:
        mc = float(np.mean(err[mask] ** 2)) if err is not None else float(np.mean(std[mask] ** 2)) / n_samples
        row["posterior_rmse_exact_mean"] = float(np.sqrt(max(row["posterior_rmse"] ** 2 - mc, 0.0)))
        # the same noise inflates the mean map's variance but not its covariance with the truth:
        # r_exact = r · sd(m_n) / √(sd(m_n)² − mc)
        var_mean = float(np.var(mean[mask]))
        row["posterior_r_exact_mean"] = (row["posterior_r"] * float(np.sqrt(var_mean / (var_mean - mc)))
                                         if var_mean > mc else float("nan"))
    if "KAPPA_SAMPLES" in names and not mask.all():
        row.update(hole_metrics(d, ~mask))
    row["evals_per_sample"] = diag["N_SCORE_EVALS"] / n_samples
    # FITS headers hold NaN as the string 'nan' (too few draws per chain for R-hat/ESS)
    with np.errstate(all="ignore"):
        row["rhat_max"] = float(np.nanmax([float(v) for k, v in diag.items() if k.startswith("RHAT_")] + [np.nan]))
        row["ess_min"] = float(np.nanmin([float(v) for k, v in diag.items() if k.startswith("ESS_")] + [np.nan]))
    return row


def hole_metrics(d: Path, holes: np.ndarray) -> dict:
    """RMSE, r and the samples' coverage in the masked pixels (no galaxy: what the maps infer there).

    summarize measures inside the mask only; in the holes Wiener's estimate is the prior's conditional
    mean given the data around, and the posterior's is the learned prior's."""
    from astropy.io import fits

    from massmap.summarize.stats import coverage, pearson_r, rmse

    truth = np.asarray(fits.getdata(d / "truth.fits"), float)
    row = {"masked_fraction": float(holes.mean())}
    with fits.open(d / "recon.fits") as hdul:
        for k, hdu in (("wiener", "KAPPA_WIENER"), ("posterior", "KAPPA_MEAN")):
            est = np.asarray(hdul[hdu].data, float)
            row[f"{k}_rmse_holes"], row[f"{k}_r_holes"] = rmse(est, truth, holes), pearson_r(est, truth, holes)
        row["cov68_holes"], row["cov95_holes"] = (float(c) for c in
                                                  coverage(np.asarray(hdul["KAPPA_SAMPLES"].data), truth,
                                                           [0.68, 0.95], holes))
    return row


PDF_EDGES = np.linspace(-0.06, 0.14, 21)  # common κ bins of the one-point PDF over fields (1′ maps)


def band_cross_power(a: np.ndarray, b: np.ndarray, mask: np.ndarray, ell_edges: np.ndarray,
                     pixel_size_arcmin: float) -> np.ndarray:
    """The binned cross-spectrum (massmap.ops.spectra.power_spectrum) of the maps zeroed outside
    ``mask`` and mean-subtracted inside it; not divided by f_sky, so sums over fields of one shape weigh
    every mode alike (only ratios of these band powers are used)."""
    from massmap.ops.spectra import power_spectrum

    def prepared(x):
        return np.where(mask, x - x[mask].mean(), 0.0)

    return power_spectrum(prepared(a), pixel_size_arcmin, ell_edges, other=prepared(b))[1]


def sample_statistics_over_fields(out: Path, n_fields: int) -> dict:
    """Band-power ratios, peak counts and one-point PDFs of the samples against the truth, per field and
    over the fields (from each field's metrics.json; the PDF recomputed on common bins ``PDF_EDGES``),
    and the calibration slope of the posterior mean m and of the Wiener map per band,
    Σ_fields ⟨m, κ⟩ / Σ_fields ⟨m, m⟩ (E[κ | data] regressed on itself has slope 1: above 1 the map is
    shrunk more than the data warrant, below 1 less)."""
    from astropy.io import fits

    ratios, peaks_t, peaks_s, pdf_t, pdf_s, cl_t, cl_s = [], [], [], [], [], [], []
    cross: dict[str, np.ndarray] = {}  # band sums ⟨m, κ⟩ and ⟨m, m⟩ over fields, per map
    ps = pk = None
    for i in range(n_fields):
        d = out / f"field{i:02d}"
        m = json.loads((d / "summary" / "metrics.json").read_text())["sample_statistics"]
        ps, pk = m["power_spectrum"], m["peak_counts"]
        ratios.append(np.asarray(ps["ratio"], float))
        cl_t.append(np.asarray(ps["cl_truth"], float))
        cl_s.append(np.asarray(ps["cl_samples_mean"], float))
        peaks_t.append(np.asarray(pk["truth"], float))
        peaks_s.append(np.asarray(pk["samples_mean"], float))
        with fits.open(d / "recon.fits") as h, fits.open(d / "truth.fits") as t:
            samples, mask = np.asarray(h["KAPPA_SAMPLES"].data, float), np.asarray(h["MASK"].data) > 0
            truth = np.asarray(t["KAPPA"].data, float)
            maps = {k: np.asarray(h[e].data, float) for k, e in (("posterior", "KAPPA_MEAN"), ("wiener", "KAPPA_WIENER"))}
            pixel = abs(float(h["KAPPA_MEAN"].header["CDELT1"])) * 60.0
        for k, est in maps.items():
            for pair, other in (("mt", truth), ("mm", est)):
                c = band_cross_power(est, other, mask, np.asarray(ps["ell_edges"], float), pixel)
                cross[f"{k}_{pair}"] = cross.get(f"{k}_{pair}", 0.0) + c
        width = np.diff(PDF_EDGES)
        pdf_t.append(np.histogram(truth[mask], PDF_EDGES)[0] / (mask.sum() * width))
        pdf_s.append(np.mean([np.histogram(x[mask], PDF_EDGES)[0] for x in samples], axis=0) / (mask.sum() * width))
    ratios = np.array(ratios)
    ell, edges = np.asarray(ps["ell"]), np.asarray(ps["ell_edges"])
    half_nyquist = float(ps["ell_limit"])  # half the Nyquist ℓ of the fields' pixels (summarize)
    compared = edges[1:] <= half_nyquist * (1 + 1e-9)
    mean_ratio = ratios.mean(0)
    spread = ratios.std(0, ddof=1) / np.sqrt(len(ratios)) if len(ratios) > 1 else np.full(len(ell), np.nan)
    pt, pst = np.array(peaks_t), np.array(peaks_s)
    return {"ell": ell, "ell_limit": half_nyquist, "cl_ratio_per_field": ratios, "cl_ratio_mean": mean_ratio,
            "cl_ratio_sem": spread, "cl_bins_compared": compared,
            "cl_ratio_of_means": np.mean(cl_s, 0) / np.mean(cl_t, 0),
            "mean_calibration_posterior": cross["posterior_mt"] / cross["posterior_mm"],
            "mean_calibration_wiener": cross["wiener_mt"] / cross["wiener_mm"],
            "cl_max_abs_deviation": float(np.nanmax(np.abs(mean_ratio[compared] - 1.0))) if compared.any() else None,
            "snr_edges": np.asarray(pk["snr_edges"]), "peaks_truth_mean": pt.mean(0), "peaks_truth_std": pt.std(0, ddof=1),
            "peaks_samples_mean": pst.mean(0), "peaks_samples_std": pst.std(0, ddof=1),
            "kappa_edges": PDF_EDGES, "pdf_truth_mean": np.mean(pdf_t, 0), "pdf_truth_std": np.std(pdf_t, 0, ddof=1),
            "pdf_samples_mean": np.mean(pdf_s, 0), "pdf_samples_std": np.std(pdf_s, 0, ddof=1)}


def print_sample_statistics(st: dict) -> None:
    print(f"\nsamples' band powers / truth's, field average ± s.e. (bands up to half Nyquist, ℓ ≤ {st['ell_limit']:.0f}, "
          f"marked *): max |ratio − 1| = {st['cl_max_abs_deviation']:.3f}")
    print("| ℓ | " + " | ".join(f"{e:.0f}{'*' if c else ''}" for e, c in zip(st["ell"], st["cl_bins_compared"])) + " |")
    print("|---" * (len(st["ell"]) + 1) + "|")
    print("| ratio | " + " | ".join(f"{m:.2f} ± {e:.2f}" for m, e in zip(st["cl_ratio_mean"], st["cl_ratio_sem"])) + " |")
    print("| ratio of field-average C_ℓ | " + " | ".join(f"{m:.2f}" for m in st["cl_ratio_of_means"]) + " |")
    print("\ncalibration slope of the map per band, Σ⟨m, κ⟩/Σ⟨m, m⟩ over fields (1: as shrunk as the data warrant; "
          "> 1: shrunk too much)")
    print("| ℓ | " + " | ".join(f"{e:.0f}" for e in st["ell"]) + " |")
    print("|---" * (len(st["ell"]) + 1) + "|")
    for who, label in (("posterior", "posterior mean"), ("wiener", "Wiener")):
        print(f"| {label} | " + " | ".join(f"{v:.2f}" for v in st[f"mean_calibration_{who}"]) + " |")
    e, k = st["snr_edges"], st["kappa_edges"]
    _truth_samples_table("peaks per field per S/N bin (truth/σ vs sample/σ; mean ± std over fields)", "S/N",
                         [f"{a:g}–{b:g}" for a, b in zip(e[:-1], e[1:])], st, "peaks", ".1f")
    _truth_samples_table("one-point PDF of κ in the pixels with data (density; mean ± std over fields)", "κ",
                         [f"{0.5 * (a + b):.3f}" for a, b in zip(k[:-1], k[1:])], st, "pdf", ".2f")


def _truth_samples_table(title: str, axis: str, bins: list[str], st: dict, stat: str, fmt: str) -> None:
    """A markdown table of ``st[stat_truth_mean/std]`` and ``st[stat_samples_mean/std]`` per bin."""
    print(f"\n{title}")
    print(f"| {axis} | " + " | ".join(bins) + " |")
    print("|---" * (len(bins) + 1) + "|")
    for who in ("truth", "samples"):
        cells = (f"{m:{fmt}} ± {s:{fmt}}" for m, s in zip(st[f"{stat}_{who}_mean"], st[f"{stat}_{who}_std"]))
        print(f"| {who} | " + " | ".join(cells) + " |")


def plot_sample_statistics(st: dict, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 4, figsize=(18, 4))
    for r in st["cl_ratio_per_field"]:
        ax[0].semilogx(st["ell"], r, color="0.8", lw=0.8)
    ax[0].errorbar(st["ell"], st["cl_ratio_mean"], st["cl_ratio_sem"], color="C0", marker="o", label="field average")
    ax[0].axhline(1, color="k", lw=0.8)
    ax[0].axhspan(0.9, 1.1, color="C2", alpha=0.15, label="±10%")
    ax[0].axvline(st["ell_limit"], color="k", ls=":", lw=0.8)
    ax[0].set(xlabel="ℓ", ylabel="C_ℓ(samples) / C_ℓ(truth)", ylim=(0, 3))
    ax[0].legend(fontsize=8)
    e = st["snr_edges"]
    c = 0.5 * (e[:-1] + e[1:])
    ax[1].errorbar(c - 0.08, st["peaks_truth_mean"], st["peaks_truth_std"], marker="s", ls="", label="truth / σ")
    ax[1].errorbar(c + 0.08, st["peaks_samples_mean"], st["peaks_samples_std"], marker="o", ls="", label="samples / σ")
    ax[1].set(xlabel="S/N", ylabel="peaks per field", yscale="symlog")
    ax[1].legend(fontsize=8)
    k = st["kappa_edges"]
    kc = 0.5 * (k[:-1] + k[1:])
    ax[2].errorbar(kc, st["pdf_truth_mean"], st["pdf_truth_std"], marker="s", ls="-", label="truth")
    ax[2].errorbar(kc, st["pdf_samples_mean"], st["pdf_samples_std"], marker="o", ls="--", label="samples")
    ax[2].set(xlabel="κ", ylabel="density", yscale="log")
    ax[2].legend(fontsize=8)
    for who, label in (("posterior", "posterior mean"), ("wiener", "Wiener")):
        ax[3].semilogx(st["ell"], st[f"mean_calibration_{who}"], marker="o", label=label)
    ax[3].axhline(1, color="k", lw=0.8)
    ax[3].set(xlabel="ℓ", ylabel="Σ⟨m, κ⟩ / Σ⟨m, m⟩ (1: calibrated)", ylim=(0, 2))
    ax[3].legend(fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prior", default=str(ROOT / "massmap" / "data" / "priors" / "default.h5"))
    ap.add_argument("--fields", type=int, default=4)
    ap.add_argument("--n-samples", type=int, default=64)
    ap.add_argument("--chains", type=int, default=None,
                    help="chains (default: massmap's, one draw per chain for a learned prior)")
    ap.add_argument("--seed", type=int, default=1000, help="simulation seed of the held-out fields")
    ap.add_argument("--npix", type=int, default=None, help="field side in pixels (default: the demo's)")
    ap.add_argument("--pad", type=int, default=None, help="padding in pixels (default: the demo's)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "posterior"))
    ap.add_argument("--fields-from", default=None, metavar="MAPS.h5",
                    help="held-out truth maps from this map set (e.g. PM maps of another seed) instead of "
                         "simulating the demo's lognormal fields; their side must be --npix (default 64)")
    ap.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="extra config override for reconstruct (e.g. posterior.thin=3); repeatable")
    ap.add_argument("--fields-config", default=None, metavar="CONFIG",
                    help="simulate the held-out fields with this config (its simulate section and seed; "
                         "e.g. configs/heldout-pm-1arcmin.yaml); --seed then seeds only the mock catalogs")
    ap.add_argument("--reuse", action="store_true",
                    help="read the fields of an earlier run in --out again (same options) and recompute the "
                         "tables, without simulating or sampling")
    ap.add_argument("--positions", default=None, metavar="CATALOG",
                    help="mock catalogs at this catalog's galaxy positions (mock.positions: a survey footprint, "
                         "e.g. from benchmarks/survey_footprint.py); metrics in the holes are added")
    ap.add_argument("--kind", default=None, choices=("pm", "lognormal", "grf"),
                    help="kind of the simulated demo-like fields (default: the demo's, pm)")
    args = ap.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    maps = Path(args.fields_from) if args.fields_from else out / "fields.h5"
    size = size_overrides(args.npix, args.pad)
    reused = None
    if args.reuse:  # the fields of an earlier run in OUT: recompute the tables only
        earlier = json.loads((out / "validate_posterior.json").read_text()).get("rows", [])
        reused = {r["field"]: r.get("reconstruct_wall_s", float("nan")) for r in earlier}
        reused.update({i: float("nan") for i in range(args.fields) if i not in reused})
    elif args.fields_config:
        massmap("simulate", "-o", str(maps), "--config", str(args.fields_config), "--set",
                f"simulate.n_maps={args.fields}", "--quiet", "--resume")  # reused when already complete
    elif not args.fields_from:
        kind = ["--set", f"simulate.kind={args.kind}"] if args.kind else []
        massmap("simulate", "-o", str(maps), "--config", str(CONFIG), "--set", f"seed={args.seed}",
                "--set", f"simulate.n_maps={args.fields}", "--overwrite", "--quiet", *kind, *size)
    rows = []
    for i in range(args.fields):
        rows.append(run_field(out, maps, i, args.seed, args.prior, args.n_samples, args.chains, args.overrides,
                              size, None if reused is None else reused[i], args.positions))
        print(json.dumps(rows[-1]), flush=True)

    import jax

    cols = [c for c in ("ks_rmse", "wiener_rmse", "posterior_rmse", "posterior_rmse_exact_mean", "map_rmse", "ks_r", "wiener_r", "posterior_r",
                        "posterior_r_exact_mean",
                        "map_r", "cov68", "cov95", "masked_fraction", "wiener_rmse_holes", "posterior_rmse_holes",
                        "wiener_r_holes", "posterior_r_holes", "cov68_holes", "cov95_holes",
                        "rhat_max", "ess_min", "evals_per_sample",
                        "reconstruct_wall_s") if c in rows[0]]
    print(f"\nprior {relative_to_root(args.prior)} {' '.join(args.overrides)}; {args.fields} held-out fields ({args.npix or 'demo'} pixels a side, pad {args.pad if args.pad is not None else 'demo'}, seed {args.seed}), {args.n_samples} samples from "
          f"{args.chains or 'default'} chains; {jax.devices()[0].device_kind}, {platform.processor() or platform.machine()}\n")
    print("| field | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for r in rows:
        print(f"| {r['field']} | " + " | ".join(f"{r.get(c, float('nan')):.4g}" for c in cols) + " |")
    summary = {}
    for c in cols:
        v = np.array([r.get(c, np.nan) for r in rows], float)
        summary[c] = (float(np.nanmean(v)), float(np.nanstd(v, ddof=1) / np.sqrt(len(v))) if len(v) > 1 else 0.0)
    print("| mean ± s.e. | " + " | ".join(f"{m:.4g} ± {e:.2g}" for m, e in summary.values()) + " |")
    if "posterior_r" in rows[0]:
        better = [r["posterior_r"] > r["wiener_r"] and r["posterior_rmse"] < r["wiener_rmse"] for r in rows]
        print(f"\nposterior mean beats Wiener (higher r and lower RMSE) on {sum(better)} of {len(rows)} fields")
        exact = [r["posterior_rmse_exact_mean"] < r["wiener_rmse"] for r in rows]
        ratio = np.mean([r["posterior_rmse_exact_mean"] / r["wiener_rmse"] for r in rows])
        print(f"exact posterior mean (Monte Carlo noise of the {args.n_samples}-sample mean removed): RMSE below "
              f"Wiener's on {sum(exact)} of {len(rows)} fields, mean ratio {ratio:.3f}; "
              f"r − r_Wiener = {np.mean([r['posterior_r'] - r['wiener_r'] for r in rows]):+.3f} (raw), "
              f"{np.mean([r['posterior_r_exact_mean'] - r['wiener_r'] for r in rows]):+.3f} (exact mean, higher "
              f"on {sum(r['posterior_r_exact_mean'] > r['wiener_r'] for r in rows)} of {len(rows)} fields)")
    stats = sample_statistics_over_fields(out, args.fields) if "posterior_r" in rows[0] else {}
    if stats:
        print_sample_statistics(stats)
        plot_sample_statistics(stats, out / "sample_statistics.png", f"{args.fields} fields, prior {Path(args.prior).name}")
    (out / "validate_posterior.json").write_text(json.dumps(
        dict(prior=relative_to_root(args.prior), overrides=args.overrides, fields=args.fields, npix=args.npix, pad=args.pad, seed=args.seed, n_samples=args.n_samples, chains=args.chains,
             fields_config=args.fields_config, fields_from=args.fields_from, kind=args.kind,
             positions=args.positions,
             device=jax.devices()[0].device_kind, rows=rows, summary=summary, sample_statistics=stats),
        indent=1, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
