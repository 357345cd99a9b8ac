"""Validate the embedded PM simulation against halofit: 3-D matter P(k) and the κ C_ℓ of Born maps.

Usage (from the repository root; pyccl is optional and only used when importable, e.g. from
benchmarks/.venv):

    python benchmarks/validate_pm.py pk                      # P(k)/halofit at every lens-plane snapshot, ± PGD
    python benchmarks/validate_pm.py maps --first 0 --count 3  # κ maps of seeds 0..2 → benchmarks/results/pm_maps/
    python benchmarks/validate_pm.py cl                      # average C_ℓ of all stored maps vs Limber halofit

Maps are made with the DEFAULT simulate.pm config, z_s = 1 (sources.z_source default), 256² pixels of 1′ (a
4.3° field). Each command stays well under 10 minutes on 2 cores; run `maps` in chunks. Figures go to
docs/figures/, numbers to benchmarks/results/.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import jax
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from massmap.config.physics import cosmology_of, sources_of  # noqa: E402
from massmap.config.pm import PMConfig, pm_params_of  # noqa: E402
from massmap.config.schema import CosmologyConfig, SourcesConfig  # noqa: E402
from massmap.cosmology import Cosmology, kappa_cl, nonlinear_power  # noqa: E402
from massmap.ops.spectra import power_spectrum  # noqa: E402
from massmap.sim import pm as pmops  # noqa: E402
from massmap.sim.lightcone import lens_planes, source_distances  # noqa: E402
from massmap.sim.raytrace import pgd_amplitude, pgd_density, pm_kappa_map, pm_snapshots, step_schedule  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
MAPDIR = RESULTS / "pm_maps"
FIGS = ROOT / "docs" / "figures"
NPIX, PIX = 256, 1.0
ELL_EDGES = np.geomspace(80, 5000, 15)


def defaults():
    """The default cosmology, sources and PM parameters (as `massmap simulate` resolves them)."""
    return cosmology_of(CosmologyConfig()), sources_of(SourcesConfig()), pm_params_of(PMConfig())


def cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


PK_TABLE_K = (0.5, 1.09, 1.46, 1.97)  # h/Mpc: the columns of the summary table (nearest k bin)


def run_pk(args):
    """P(k)/halofit of the PM density, without and with PGD, at every step output a z_s map's planes use."""
    cosmo, src, pmc = defaults()
    a_steps = step_schedule(pmc)
    chi_far = source_distances(cosmo, src).chi_far
    used = set(int(i) for i in lens_planes(cosmo, chi_far, pmc.box_size, pmc.plane_thickness, a_steps[1:]).snapshot)
    L, n = pmc.box_size, pmc.mesh
    edges = np.geomspace(2 * np.pi / L * 1.5, np.pi * n / L, 16)
    k_nyq = np.pi * n / L
    out = {}
    for k, a, state, info in pm_snapshots(jax.random.PRNGKey(args.seed), cosmo, pmc):
        if k in used:
            alpha = pgd_amplitude(pmc, a)
            d_pgd = pgd_density(info.delta, state.positions, L, alpha, pmc.pgd_kl * k_nyq, pmc.pgd_ks * k_nyq)
            kk, p_pm, _ = pmops.power_spectrum_3d(info.delta, L, edges, n_comp=1)
            _, p_pgd, _ = pmops.power_spectrum_3d(d_pgd, L, edges, n_comp=1)
            hf = nonlinear_power(cosmo, kk, a)
            out[f"{a:.2f}"] = dict(alpha=alpha, k=np.asarray(kk).tolist(), pm=(p_pm / hf).tolist(),
                                   pgd=(p_pgd / hf).tolist())
            print(f"a = {a:.2f} (alpha {alpha:.4f})   k [h/Mpc]   P_PM/halofit   P_PM+PGD/halofit")
            for x, r1, r2 in zip(kk, p_pm / hf, p_pgd / hf):
                print(f"           {x:8.3f}   {r1:12.3f}   {r2:12.3f}", flush=True)
    kk = np.asarray(next(iter(out.values()))["k"])
    cols = [int(np.argmin(np.abs(np.log(kk / q)))) for q in PK_TABLE_K]
    lines = ["| a | α | " + " | ".join(f"k = {kk[j]:.2f}" for j in cols) + " |",
             "|---|---|" + "---|" * len(cols)]
    for a, d in out.items():
        lines.append(f"| {a} | {d['alpha']:.4f} | " + " | ".join(f"{d['pgd'][j]:.2f} ({d['pm'][j]:.2f})" for j in cols)
                     + " |")
    table = "\n".join(lines)
    print(f"\nP_PM+PGD/halofit (P_PM/halofit), seed {args.seed}\n{table}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pm_pk.json").write_text(json.dumps(out, indent=1))
    (RESULTS / "pm_pk_table.md").write_text(table + "\n")
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for i, (a, d) in enumerate(out.items()):
        col = plt.cm.viridis(i / max(len(out) - 1, 1))
        ax.semilogx(d["k"], d["pm"], "--", color=col, lw=0.8)
        ax.semilogx(d["k"], d["pgd"], "-", color=col, label=f"a = {a}")
    ax.plot([], [], "k--", lw=0.8, label="PM without PGD")
    ax.axhline(1, color="k", lw=0.8)
    ax.axhspan(0.9, 1.1, color="0.9")
    ax.axvline(k_nyq / 2, color="0.5", ls=":", label="k_Nyq / 2")
    ax.set_xlabel("k [h/Mpc]")
    ax.set_ylabel("P(k) / halofit")
    ax.set_ylim(0.3, 1.6)
    ax.set_title(f"PM {pmc.mesh}³ in {pmc.box_size:g} Mpc/h, {pmc.n_steps} steps, seed {args.seed}")
    ax.legend(fontsize=7, ncol=2)
    FIGS.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(FIGS / "pm_pk_ratio.png", dpi=120)
    print("wrote", FIGS / "pm_pk_ratio.png", "and", RESULTS / "pm_pk_table.md")


def run_maps(args):
    cosmo, src, pmc = defaults()
    MAPDIR.mkdir(parents=True, exist_ok=True)
    for seed in range(args.first, args.first + args.count):
        t0, c0 = time.time(), cpu_seconds()
        kappa = pm_kappa_map(jax.random.PRNGKey(seed), cosmo, src, pmc, NPIX, PIX)
        wall, cpu = time.time() - t0, cpu_seconds() - c0
        np.save(MAPDIR / f"kappa_seed{seed:03d}.npy", kappa)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
        timing = dict(wall_s=wall, cpu_s=cpu, peak_rss_gb=peak)
        if jax.default_backend() != "cpu":
            timing["device"] = jax.devices()[0].device_kind
        (MAPDIR / f"kappa_seed{seed:03d}.json").write_text(json.dumps(timing))
        print(f"seed {seed}: {wall:.1f} s wall, {cpu:.1f} s CPU, peak RSS {peak:.2f} GB, "
              f"mean {kappa.mean():.2e}, std {kappa.std():.4f}", flush=True)


def ccl_cl(cosmo: Cosmology, z_source: float, ell: np.ndarray):
    try:
        import pyccl as ccl
    except ImportError:
        return None
    c = ccl.Cosmology(Omega_c=cosmo.Omega_c, Omega_b=cosmo.Omega_b, h=cosmo.h, sigma8=cosmo.sigma8, n_s=cosmo.n_s,
                      w0=cosmo.w0, transfer_function="eisenstein_hu", matter_power_spectrum="halofit")
    z = np.linspace(0.0, 2 * z_source, 4001)
    nz = np.exp(-0.5 * ((z - z_source) / 0.005) ** 2)  # a narrow Gaussian stands in for a single source plane
    tracer = ccl.WeakLensingTracer(c, dndz=(z, nz))
    return ccl.angular_cl(c, tracer, tracer, ell)


def run_cl(args):
    cosmo, src, _ = defaults()
    files = sorted(MAPDIR.glob("kappa_seed*.npy"))
    if not files:
        sys.exit("no maps: run `validate_pm.py maps` first")
    maps = np.stack([np.load(f) for f in files])
    timing = [json.loads(f.with_suffix(".json").read_text()) for f in files]
    ell, cl, _ = power_spectrum(maps, PIX, ELL_EDGES)
    cl_mean, cl_err = cl.mean(0), cl.std(0, ddof=1) / np.sqrt(len(maps))
    jc_nl = kappa_cl(cosmo, src, ell)
    jc_lin = kappa_cl(cosmo, src, ell, nonlinear=False)
    ccl = ccl_cl(cosmo, src.z_source, ell)
    print(f"{len(maps)} maps (seeds {files[0].stem[-3:]}..{files[-1].stem[-3:]}), {NPIX}² × {PIX}′, z_s = {src.z_source}")
    by_device = {}
    for t in timing:  # maps made on a GPU (benchmarks/gpu_check.sh) record their device
        by_device.setdefault(t.get("device", "CPU (2 cores)"), []).append(t)
    for device, ts in by_device.items():
        print(f"{device}: {len(ts)} maps, wall per map: median {np.median([t['wall_s'] for t in ts]):.1f} s "
              f"(first map includes compilation); CPU per map: median {np.median([t['cpu_s'] for t in ts]):.1f} s; "
              f"peak RSS {max(t['peak_rss_gb'] for t in ts):.2f} GB")
    print("   ell    C_pm/halofit(jc)  ± err   C_pm/halofit(ccl)   halofit ccl/jc")
    rows = []
    for i, l in enumerate(ell):
        r_ccl = cl_mean[i] / ccl[i] if ccl is not None else float("nan")
        ccl_jc = ccl[i] / jc_nl[i] if ccl is not None else float("nan")
        rows.append(dict(ell=float(l), ratio_jc=float(cl_mean[i] / jc_nl[i]), err=float(cl_err[i] / jc_nl[i]),
                         ratio_ccl=float(r_ccl), ccl_over_jc=float(ccl_jc)))
        print(f"{l:7.0f}   {cl_mean[i] / jc_nl[i]:8.3f}       {cl_err[i] / jc_nl[i]:.3f}     {r_ccl:8.3f}"
              f"          {ccl_jc:.3f}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "pm_cl.json").write_text(json.dumps(dict(n_maps=len(maps), rows=rows, timing=timing), indent=1))

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(6.4, 6.4), sharex=True, gridspec_kw=dict(height_ratios=(2, 1)))
    ax1.errorbar(ell, ell * (ell + 1) * cl_mean / (2 * np.pi), ell * (ell + 1) * cl_err / (2 * np.pi), fmt="o",
                 label=f"PM Born maps (mean of {len(maps)})")
    ax1.loglog(ell, ell * (ell + 1) * jc_nl / (2 * np.pi), label="Limber halofit (jax-cosmo)")
    ax1.loglog(ell, ell * (ell + 1) * jc_lin / (2 * np.pi), ":", label="Limber linear (jax-cosmo)")
    if ccl is not None:
        ax1.loglog(ell, ell * (ell + 1) * ccl / (2 * np.pi), "--", label="Limber halofit (pyccl)")
    ax1.set_ylabel("ℓ(ℓ+1) C_ℓ / 2π")
    ax1.legend(fontsize=8)
    ax2.errorbar(ell, cl_mean / jc_nl, cl_err / jc_nl, fmt="o", label="/ jax-cosmo")
    if ccl is not None:
        ax2.plot(ell, cl_mean / ccl, "s", mfc="none", label="/ pyccl")
    ax2.axhspan(0.85, 1.15, color="0.9")
    ax2.axhline(1, color="k", lw=0.8)
    for x in (100, 1000):
        ax2.axvline(x, color="0.6", ls=":")
    ax2.set_xscale("log")
    ax2.set_ylim(0.3, 1.5)
    ax2.set_xlabel("ℓ")
    ax2.set_ylabel("ratio")
    ax2.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(FIGS / "pm_cl_ratio.png", dpi=120)

    fig, axes = plt.subplots(1, 4, figsize=(14, 3.6), layout="constrained",
                             gridspec_kw=dict(width_ratios=(1, 1, 1, 1.25)))
    extent = (0, NPIX * PIX / 60, 0, NPIX * PIX / 60)
    vmax = np.percentile(np.abs(maps[:3]), 99.5)
    for ax, m, f in zip(axes[:3], maps[:3], files[:3]):
        im = ax.imshow(m, origin="lower", extent=extent, cmap="inferno", vmin=-0.4 * vmax, vmax=vmax)
        ax.set_title(f"κ, {f.stem[-7:]}")
        ax.set_xlabel("deg")
    fig.colorbar(im, ax=axes[2], fraction=0.046, label="κ")
    bins = np.linspace(-0.06, 0.15, 85)
    axes[3].hist(maps.ravel(), bins=bins, density=True, histtype="step", label="PM maps")
    sig = maps.std()
    x = 0.5 * (bins[1:] + bins[:-1])
    axes[3].plot(x, np.exp(-0.5 * (x / sig) ** 2) / np.sqrt(2 * np.pi) / sig, "--", label="Gaussian, same σ")
    axes[3].set_yscale("log")
    axes[3].set_ylim(1e-2, None)
    axes[3].set_xlabel("κ (1′ pixels)")
    axes[3].legend(fontsize=8)
    axes[3].set_title(f"one-point PDF, {len(maps)} maps")
    fig.savefig(FIGS / "pm_kappa_maps.png", dpi=110)
    print("wrote", FIGS / "pm_cl_ratio.png", FIGS / "pm_kappa_maps.png", RESULTS / "pm_cl.json")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pk")
    a.add_argument("--seed", type=int, default=0)
    b = sub.add_parser("maps")
    b.add_argument("--first", type=int, default=0)
    b.add_argument("--count", type=int, default=3)
    sub.add_parser("cl")
    args = p.parse_args()
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    {"pk": run_pk, "maps": run_maps, "cl": run_cl}[args.cmd](args)


if __name__ == "__main__":
    main()
