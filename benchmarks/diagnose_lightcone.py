"""Diagnose the PM lightcone projection (massmap/sim/lightcone.py) with a density field of KNOWN power.

No N-body: a Gaussian random 3-D field with the linear P(k) at a = 1 (``--power linear``) or halofit
(``--power halofit``) is put on the mesh and used, static (growth 1), as the density of every lens
plane, through exactly the plane machinery of ``pm_kappa_map`` (lens_planes, replica_transforms,
project_slab, the transverse deconvolution and upsampling, the bilinear read-out at the rays, the Born
weights). Its κ C_ℓ (massmap.ops.spectra.power_spectrum, averaged over realisations) is compared with
the Limber integral of the same P(k) with the same lensing kernel, written here in numpy:

    C_ℓ = ∫_0^χs dχ W(χ)²/χ² P(ℓ/χ) M(ℓ/χ),   W(χ) = (3/2) Ω_m (H0/c)² (χ/a(χ)) (1 − χ/χs),

where M(k⊥) is the fraction of the ring |k⊥| that the mesh holds (the square |k_x|, |k_y| < k_Nyquist):
the mesh has no power beyond it, so the ratio is only meaningful where M ≈ 1 for the planes that
dominate. The "plane sum" column replaces the integral by the planes' own midpoint sum (Δχ_i at χ_i),
so sim / plane-sum isolates the map making from the χ discretisation.

The field is painted the way the PM paints its particles:
  --paint window : δ(k) W_CIC(k) on the mesh (CIC smoothing, no aliasing: the deconvolution is exact);
  --paint alias  : GRF on a mesh ``--fine`` times finer, convolved with the continuous CIC kernel of
                   the coarse cell and decimated, i.e. a CIC assignment of a continuous field: the coarse
                   modes carry Σ_n W²(k + 2 k_N n) P(k + 2 k_N n), the aliasing a PM density has.

``--snapshots`` instead runs the PM itself (default config unless --mesh/--box given; 256³ takes ~2.5 min
on 2 CPU cores) and prints P(k)/halofit of the lens-plane density (PGD applied as pm_kappa_map does) at
every step output the planes of a ``--z-source`` map use, and every one from a = 0.45 on.
``--calibrate`` fits the PGD amplitude table simulate.pm.pgd_alpha_a / pgd_alpha_table on the same
snapshots: the N-body runs once per ``--seed`` (several seeds are averaged), then at each snapshot α is
scanned on the stored particles (PGD is a few FFTs and a CIC paint) and set where the mean of
log(P_PGD/halofit) over k ∈ [0.3, 1.5] h/Mpc first crosses zero from small α, i.e. on the rising side
of the non-monotonic response (~2 min per snapshot on 2 busy cores at 256³, ~14 min in all per seed).

Usage (each realisation takes seconds at mesh 128, map 128² of 1′):
    .venv/bin/python benchmarks/diagnose_lightcone.py --paint alias --n-real 6
    .venv/bin/python benchmarks/diagnose_lightcone.py --paint window --mesh 64 --box 50 --npix 64
    .venv/bin/python benchmarks/diagnose_lightcone.py --snapshots --mesh 256 --box 200
    .venv/bin/python benchmarks/diagnose_lightcone.py --calibrate --mesh 256 --box 200 --seed 0
Prints ℓ, sim C_ℓ ± error of the mean, Limber, plane-sum, ratios, and the mesh-coverage fraction.
"""
from __future__ import annotations

import argparse
import time

import jax
import jax.numpy as jnp
import numpy as np

from massmap.config.physics import cosmology_of, sources_of
from massmap.config.schema import CosmologyConfig, SourcesConfig
from massmap.cosmology import C_OVER_H0, Cosmology, linear_power, nonlinear_power, scale_factor_at_distance
from massmap.ops.spectra import ARCMIN, power_spectrum
from massmap.sim.lightcone import born_weights, lens_planes, plane_kappa, replica_transforms, source_distances
from massmap.sim.pm import cic_window


def power_table(cosmo: Cosmology, kind: str):
    """log-log interpolator of P(k) at a = 1 (linear or halofit), (Mpc/h)³."""
    k = np.geomspace(1e-4, 200.0, 600)
    p = linear_power(cosmo, k) if kind == "linear" else nonlinear_power(cosmo, k)
    lk, lp = np.log(k), np.log(p)
    return lambda q: np.exp(np.interp(np.log(np.maximum(q, 1e-4)), lk, lp))


def grf_mesh(key, n: int, box: float, pk, paint: str, fine: int) -> jnp.ndarray:
    """Density contrast on the n³ mesh with power P(k) as a CIC-painted field (see module doc)."""
    m = n * (fine if paint == "alias" else 1)
    kf = 2 * np.pi / box
    k1 = np.fft.fftfreq(m, 1.0 / m) * kf
    kr = np.fft.rfftfreq(m, 1.0 / m) * kf
    kvec = (k1[:, None, None], k1[None, :, None], kr[None, None, :])
    kk = np.sqrt(kvec[0] ** 2 + kvec[1] ** 2 + kvec[2] ** 2)
    amp = np.sqrt(pk(kk) * m**3 / box**3) * np.asarray(cic_window(kvec, box / n))
    amp[0, 0, 0] = 0.0
    w = jax.random.normal(key, (m, m, m), jnp.float32)
    d = jnp.fft.irfftn(jnp.fft.rfftn(w) * jnp.asarray(amp, jnp.complex64), s=(m, m, m))
    return d[:: m // n, :: m // n, :: m // n].astype(jnp.float32)


def ring_fraction(k: np.ndarray, k_nyq: float) -> np.ndarray:
    """Fraction of the circle |k⊥| = k inside the square |k_x|, |k_y| < k_nyq."""
    k = np.asarray(k, float)
    with np.errstate(invalid="ignore", divide="ignore"):
        part = 1.0 - 4.0 / np.pi * np.arccos(np.clip(k_nyq / k, -1.0, 1.0))
    return np.where(k <= k_nyq, 1.0, np.where(k >= np.sqrt(2) * k_nyq, 0.0, part))


def limber(cosmo, chi_s: float, ell: np.ndarray, pk, k_nyq: float, chi=None, dchi=None) -> np.ndarray:
    """Limber C_ℓ of the static P(k) for a single source distance (integral, or a sum over given planes)."""
    if chi is None:
        edges = np.linspace(0.0, chi_s, 4001)
        chi, dchi = 0.5 * (edges[1:] + edges[:-1]), np.diff(edges)
    om = cosmo.Omega_c + cosmo.Omega_b
    a = scale_factor_at_distance(cosmo, chi)
    w = 1.5 * om / C_OVER_H0**2 * chi / a * np.clip(1.0 - chi / chi_s, 0.0, None)
    k = ell[:, None] / chi[None, :]
    return np.sum(dchi * w**2 / chi**2 * pk(k) * ring_fraction(k, k_nyq), axis=1)


def plane_snapshots(cosmo: Cosmology, pmc, z_source: float) -> set[int]:
    """Indices of the step outputs that the lens planes of a z_source map use (as pm_kappa_map)."""
    from massmap.sim.raytrace import step_schedule
    src = source_distances(cosmo, sources_of(SourcesConfig(nz="delta", z_source=z_source)))
    planes = lens_planes(cosmo, src.chi_far, pmc.box_size, pmc.plane_thickness, step_schedule(pmc)[1:])
    return set(int(s) for s in planes.snapshot)


def snapshot_power(cosmo: Cosmology, mesh: int, box: float, seeds: list[int], calibrate: bool,
                   z_source: float, fit_k: tuple[float, float] = (0.3, 1.5)):
    """P(k)/halofit of the PM (and PM + PGD) density at each step output the planes use (and a ≥ 0.45).

    With ``calibrate``: at each such snapshot scan the PGD amplitude α on the same particles (the N-body
    runs once per seed) and solve for the α at which the mean of log(P_PGD/halofit) over the fit range
    k ∈ ``fit_k`` (default [0.3, 1.5] h/Mpc; summed over seeds) is zero, taking the first zero crossing
    from small α (the rising, non-saturated side of the response). Prints the resulting table for
    simulate.pm.
    """
    from massmap.config.pm import PMConfig, pm_params_of
    from massmap.sim import pm as pmops
    from massmap.sim.raytrace import pgd_amplitude, pgd_density, pm_snapshots, step_schedule

    pmc = pm_params_of(PMConfig(box_size=box, mesh=mesh))
    a_steps = step_schedule(pmc)
    used = plane_snapshots(cosmo, pmc, z_source) | {k for k in range(pmc.n_steps) if a_steps[k + 1] >= 0.45}
    edges = np.geomspace(2 * np.pi / box * 1.5, np.pi * mesh / box, 16)
    k_nyq = np.pi * mesh / box
    k_l, k_s = pmc.pgd_kl * k_nyq, pmc.pgd_ks * k_nyq
    alphas = np.concatenate([[0.0], np.geomspace(0.003, 0.03, 13)])
    logr = {}  # snapshot -> (n_seeds, n_alpha, n_k) log(P_PGD/halofit)
    kk = None
    for seed in seeds:
        for k, a, state, info in pm_snapshots(jax.random.PRNGKey(seed), cosmo, pmc):
            if k not in used:
                continue
            t0 = time.time()
            scan = alphas if calibrate else np.array([0.0, pgd_amplitude(pmc, a)])
            rows = []
            for alpha in scan:
                d = info.delta if alpha == 0 else pgd_density(info.delta, state.positions, box, float(alpha), k_l, k_s)
                kk, p, _ = pmops.power_spectrum_3d(d, box, edges, n_comp=1)
                rows.append(np.log(np.asarray(p) / nonlinear_power(cosmo, kk, a)))
            logr.setdefault(k, []).append(np.array(rows))
            print(f"seed {seed} a = {a:.2f}  k     " + " ".join(f"{x:5.2f}" for x in kk))
            if not calibrate:
                print("   PM+PGD/halofit " + " ".join(f"{x:5.2f}" for x in np.exp(rows[1])))
            print("   PM/halofit     " + " ".join(f"{x:5.2f}" for x in np.exp(rows[0])) +
                  f"   ({time.time() - t0:.0f} s)", flush=True)
    if not calibrate:
        return
    fit = (kk >= fit_k[0]) & (kk <= fit_k[1])
    table_a, table_alpha = [], []
    print(f"\nfit range k in [{fit_k[0]:g}, {fit_k[1]:g}] h/Mpc ({fit.sum()} bins), seeds {seeds}")
    print("alpha scan: mean log(P_PGD/halofit) over the fit range")
    print("   a    " + " ".join(f"{x:6.4f}" for x in alphas))
    for k in sorted(logr):
        a = float(a_steps[k + 1])
        lr = np.mean(logr[k], axis=0)  # mean over seeds: (n_alpha, n_k)
        m = lr[:, fit].mean(axis=1)
        print(f"  {a:.2f}  " + " ".join(f"{x:+6.3f}" for x in m))
        cross = np.flatnonzero((m[:-1] < 0) & (m[1:] >= 0))
        if len(cross) == 0:
            raise SystemExit(f"a = {a:.2f}: no zero crossing of the mean log ratio in the alpha scan")
        j = cross[0]
        alpha = alphas[j] + (alphas[j + 1] - alphas[j]) * (-m[j]) / (m[j + 1] - m[j])
        table_a.append(round(a, 4))
        table_alpha.append(round(float(alpha), 5))
    print("\npgd_alpha_a:     [" + ", ".join(f"{x:g}" for x in table_a) + "]")
    print("pgd_alpha_table: [" + ", ".join(f"{x:g}" for x in table_alpha) + "]")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mesh", type=int, default=128)
    ap.add_argument("--box", type=float, default=100.0, help="Mpc/h (cell 0.78 Mpc/h = default PM config)")
    ap.add_argument("--npix", type=int, default=128)
    ap.add_argument("--pix", type=float, default=1.0, help="arcmin")
    ap.add_argument("--z-source", type=float, default=1.0)
    ap.add_argument("--thickness", type=float, default=None, help="Mpc/h; default box/2 (as the default config)")
    ap.add_argument("--power", choices=("linear", "halofit"), default="halofit")
    ap.add_argument("--paint", choices=("window", "alias"), default="alias")
    ap.add_argument("--fine", type=int, default=2, help="refinement of the alias paint")
    ap.add_argument("--n-real", type=int, default=4)
    ap.add_argument("--seed", type=int, nargs="+", default=[0], help="one or more (--snapshots/--calibrate)")
    ap.add_argument("--same-box", action="store_true",
                    help="one field for all replicas (as the PM: one box seen through random transforms)")
    ap.add_argument("--snapshots", action="store_true", help="P(k)/halofit of the PM snapshots (see above)")
    ap.add_argument("--calibrate", action="store_true", help="fit the PGD alpha(a) table on the snapshots (see above)")
    ap.add_argument("--fit-k", type=float, nargs=2, default=(0.3, 1.5), metavar=("KMIN", "KMAX"),
                    help="h/Mpc range of the --calibrate fit (default 0.3 1.5: the 0.78 Mpc/h cell of the default)")
    args = ap.parse_args()

    cosmo = cosmology_of(CosmologyConfig())
    if args.snapshots or args.calibrate:
        snapshot_power(cosmo, args.mesh, args.box, args.seed, args.calibrate, args.z_source, tuple(args.fit_k))
        return
    sources = sources_of(SourcesConfig(nz="delta", z_source=args.z_source))
    src = source_distances(cosmo, sources)
    L, n = args.box, args.mesh
    thick = args.thickness or L / 2
    planes = lens_planes(cosmo, src.chi_far, L, thick, np.array([1.0]))
    weights = born_weights(cosmo, planes, src)  # static field: growth 1
    pk = power_table(cosmo, args.power)
    k_nyq = np.pi * n / L
    theta = args.pix * ARCMIN
    t1 = (np.arange(args.npix) - (args.npix - 1) / 2) * theta
    ty = jnp.asarray(np.broadcast_to(t1[:, None], (args.npix,) * 2), jnp.float32)
    tx = jnp.asarray(np.broadcast_to(t1[None, :], (args.npix,) * 2), jnp.float32)
    edges = np.geomspace(2 * np.pi / (args.npix * theta) * 1.01, np.pi / theta, 11)
    print(f"mesh {n}, box {L} Mpc/h (k_Nyq {k_nyq:.2f} h/Mpc), {len(planes.chi)} planes of <= {thick} Mpc/h, "
          f"chi_s {src.chi_far:.0f} Mpc/h, map {args.npix}^2 of {args.pix}', P {args.power}, paint {args.paint}")

    key = jax.random.PRNGKey(args.seed[0])
    cls = []
    for r in range(args.n_real):
        t0 = time.time()
        k_d, k_r = jax.random.split(jax.random.fold_in(key, r))
        reps = replica_transforms(k_r, int(planes.replica.max()) + 1, n)
        kappa = jnp.zeros((args.npix, args.npix), jnp.float32)
        # a fresh independent field per replica unless --same-box; the same field for the planes of one
        # replica (as in the PM)
        for rep in range(int(planes.replica.max()) + 1):
            if rep == 0 or not args.same_box:
                delta = grf_mesh(jax.random.fold_in(k_d, rep), n, L, pk, args.paint, args.fine)
            for i in np.flatnonzero(planes.replica == rep):
                off = rep * L
                kappa = kappa + plane_kappa(delta, L, int(reps.perm[rep]), jnp.asarray(reps.flip[rep]),
                                            jnp.asarray(reps.shift[rep]), planes.chi_lo[i] - off,
                                            planes.chi_hi[i] - off, planes.chi[i], weights[i], ty, tx)
        ell, cl, nmodes = power_spectrum(np.asarray(kappa), args.pix, edges)
        cls.append(cl)
        print(f"  realisation {r}: {time.time() - t0:.1f} s", flush=True)
    cls = np.array(cls)
    mean = cls.mean(0)
    err = cls.std(0, ddof=1) / np.sqrt(len(cls)) if len(cls) > 1 else np.full_like(mean, np.nan)
    lim = limber(cosmo, src.chi_far, ell, pk, k_nyq)
    lim_full = limber(cosmo, src.chi_far, ell, pk, np.inf)
    psum = limber(cosmo, src.chi_far, ell, pk, k_nyq, planes.chi, planes.chi_hi - planes.chi_lo)
    print(f"{'ell':>7} {'modes':>6} {'sim':>10} {'limber':>10} {'sim/limber':>16} {'sim/planesum':>13} "
          f"{'mesh frac':>9}")
    for j in range(len(ell)):
        print(f"{ell[j]:7.0f} {nmodes[j]:6.0f} {mean[j]:10.3e} {lim[j]:10.3e} {mean[j] / lim[j]:8.3f} ± "
              f"{err[j] / lim[j]:5.3f} {mean[j] / psum[j]:13.3f} {lim[j] / lim_full[j]:9.3f}")


if __name__ == "__main__":
    main()
