"""massmap's PM against jaxpm 0.1.6 from the same initial field: final density agreement, speed, memory.

Run with the benchmark venv (it has jaxpm and packaging):

    benchmarks/.venv/bin/python benchmarks/bench_pm_jaxpm.py [--mesh 128] [--box 256]

Both codes start from the same linear field δ_L (massmap's `linear_modes`, P_lin from jax-cosmo) with
2LPT at a = 0.1 and evolve to a = 1: massmap with its FastPM KDK (10 steps, the default), jaxpm with
its `make_ode_fn` through jax.experimental.ode.odeint (rtol = atol = 1e-5, as in its examples). Each
code runs in its own subprocess so that peak memory (ru_maxrss) is its own. Printed: the cross-
correlation coefficient r(k) = P_ab / √(P_aa P_bb) of the final CIC density fields, their power ratio,
the time per force evaluation ("step") and per run, and the peak memory. Results also go to
benchmarks/results/bench_pm_jaxpm.json.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def _initial_field(mesh: int, box: float, seed: int):
    import jax
    import jax.numpy as jnp

    from massmap.config.physics import cosmology_of
    from massmap.config.schema import CosmologyConfig
    from massmap.cosmology import linear_power
    from massmap.sim.lpt import linear_modes

    k = np.geomspace(1e-4, 2 * np.pi / box * mesh * 2, 512)
    pk = linear_power(cosmology_of(CosmologyConfig()), k)
    dk = linear_modes(jax.random.PRNGKey(seed), mesh, box, jnp.asarray(k, jnp.float32), jnp.asarray(pk, jnp.float32))
    return dk, jnp.fft.irfftn(dk, s=(mesh,) * 3)


def run_massmap(mesh, box, seed, n_steps, out, n_comp):
    import jax

    from massmap.config.physics import cosmology_of
    from massmap.config.pm import PMConfig, pm_params_of
    from massmap.config.schema import CosmologyConfig
    from massmap.cosmology import growth_factors, hubble_e
    from massmap.sim.integrate import kdk_factors, pm_integrator
    from massmap.sim.lpt import LPTFactors, lpt_initial_conditions
    from massmap.sim.pm import density_contrast
    from massmap.sim.raytrace import FORCE_DECONVOLUTION, step_schedule

    cosmo = cosmology_of(CosmologyConfig())
    pmc = pm_params_of(PMConfig(box_size=box, mesh=mesh, n_steps=n_steps, a_init=0.1))
    dk, _ = _initial_field(mesh, box, seed)
    g = growth_factors(cosmo, 0.1)
    fac = LPTFactors(0.1, float(hubble_e(cosmo, 0.1)), float(g.d1), float(g.f1), float(g.d2), float(g.f2))
    t0 = time.time()
    pos, mom = jax.jit(lpt_initial_conditions, static_argnums=(1, 3))(dk, box, fac, 2)
    a_steps = step_schedule(pmc)
    factors = kdk_factors(cosmo, a_steps)
    integ = pm_integrator(mesh, box, cosmo.Omega_c + cosmo.Omega_b, FORCE_DECONVOLUTION if n_comp < 0 else n_comp)
    state = integ.init(pos, mom, 0.1)
    state, _ = integ.step(state, jax.tree.map(lambda v: v[0], factors))  # compile
    jax.block_until_ready(state)
    t1 = time.time()
    for k in range(1, n_steps):
        state, info = integ.step(state, jax.tree.map(lambda v: v[k], factors))
    jax.block_until_ready(state)
    t2 = time.time()
    delta = density_contrast(state.positions, mesh, box, state.positions.shape[0])
    np.save(out, np.asarray(delta))
    return dict(run_s=t2 - t0, step_s=(t2 - t1) / (n_steps - 1), n_force_evals=n_steps + 1)


def run_jaxpm(mesh, box, seed, n_steps, out, n_comp):
    import jax
    import jax.numpy as jnp
    from jax.experimental.ode import odeint
    from jaxpm.painting import cic_paint
    from jaxpm.pm import lpt, make_ode_fn, pm_forces

    from massmap.config.physics import cosmology_of
    from massmap.config.schema import CosmologyConfig
    from massmap.cosmology import jc_cosmology

    cosmo = jc_cosmology(cosmology_of(CosmologyConfig()))  # flat wCDM, Omega_k = 0, wa = 0
    _, init = _initial_field(mesh, box, seed)
    shape = (mesh,) * 3
    particles = jnp.stack(jnp.meshgrid(*[jnp.arange(mesh, dtype=jnp.float32)] * 3, indexing="ij"),
                          axis=-1).reshape(-1, 3)
    n_evals = [0]

    @jax.jit
    def simulate(init, cosmo):
        dx, p, _ = lpt(cosmo, init, particles, a=0.1, order=2)
        res = odeint(make_ode_fn(shape), [particles + dx, p], jnp.array([0.1, 1.0]), cosmo, rtol=1e-5, atol=1e-5)
        return res[0][-1]

    force = jax.jit(lambda pos: pm_forces(pos, mesh_shape=shape))
    force(particles).block_until_ready()
    t = time.time()
    for _ in range(3):
        force(particles + 0.3).block_until_ready()
    step_s = (time.time() - t) / 3
    t0 = time.time()
    final = simulate(init, cosmo)
    final.block_until_ready()
    run_s = time.time() - t0
    counts = cic_paint(jnp.zeros(shape), final)
    np.save(out, np.asarray(counts / counts.mean() - 1.0))
    n_evals[0] = int(round(run_s / step_s))
    return dict(run_s=run_s, step_s=step_s, n_force_evals=n_evals[0])


def child(args):
    fn = run_massmap if args.code == "massmap" else run_jaxpm
    res = fn(args.mesh, args.box, args.seed, args.n_steps, args.out, args.n_comp)
    res["peak_rss_gb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    print("RESULT " + json.dumps(res))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--mesh", type=int, default=128)
    p.add_argument("--box", type=float, default=256.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--n-steps", type=int, default=10)
    p.add_argument("--n-comp", type=int, default=-1,
                   help="CIC windows divided out of massmap's force (default: massmap's own, 2)")
    p.add_argument("--code", choices=("massmap", "jaxpm"))
    p.add_argument("--out")
    args = p.parse_args()
    if args.code:
        return child(args)
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    tmp = Path(tempfile.mkdtemp())
    res = {}
    for code in ("massmap", "jaxpm"):
        out = tmp / f"{code}.npy"
        proc = subprocess.run([sys.executable, __file__, "--code", code, "--mesh", str(args.mesh), "--box",
                               str(args.box), "--seed", str(args.seed), "--n-steps", str(args.n_steps), "--n-comp",
                               str(args.n_comp), "--out",
                               str(out)], capture_output=True, text=True, env=env)
        line = [x for x in proc.stdout.splitlines() if x.startswith("RESULT ")]
        if proc.returncode or not line:
            sys.exit(f"{code} failed:\n{proc.stderr[-3000:]}")
        res[code] = json.loads(line[0][7:])
        res[code]["delta"] = np.load(out)

    import jax.numpy as jnp

    from massmap.sim.pm import power_spectrum_3d

    a, b = jnp.asarray(res["massmap"]["delta"]), jnp.asarray(res["jaxpm"]["delta"])
    # jaxpm's particles start on the mesh nodes, massmap's half a cell off: read massmap's field at x + Δ/2
    n, L = args.mesh, args.box
    k = [np.fft.fftfreq(n) * 2 * np.pi] * 2 + [np.fft.rfftfreq(n) * 2 * np.pi]
    phase = np.exp(1j * 0.5 * (k[0][:, None, None] + k[1][None, :, None] + k[2][None, None, :]))
    a = jnp.fft.irfftn(jnp.fft.rfftn(a) * phase, s=a.shape)
    k_nyq = np.pi * n / L
    edges = np.geomspace(2 * np.pi / L * 1.5, k_nyq, 13)
    kk, paa, _ = power_spectrum_3d(a, L, edges, n_comp=1)
    _, pbb, _ = power_spectrum_3d(b, L, edges, n_comp=1)
    _, pab, _ = power_spectrum_3d(a, L, edges, other=b, n_comp=1)
    r = pab / np.sqrt(paa * pbb)
    print(f"mesh {n}³ particles on a {n}³ mesh, box {L:g} Mpc/h, a = 0.1 → 1, seed {args.seed}, CPU, "
          f"massmap force deconvolution {args.n_comp if args.n_comp >= 0 else 'default'}")
    print("   k [h/Mpc]   r(k)     P_massmap/P_jaxpm")
    for x, rr, q in zip(kk, r, paa / pbb):
        print(f"   {x:8.3f}   {rr:.4f}   {q:.3f}{'   (k < k_Nyq/2)' if x < k_nyq / 2 else ''}")
    low = kk < k_nyq / 2
    print(f"min r(k) for k < k_Nyq/2: {r[low].min():.4f}")
    print()
    print("| code | force evaluations | time per step [s] | time per run [s] | peak RSS [GB] |")
    print("|---|---|---|---|---|")
    for code in ("massmap", "jaxpm"):
        d = res[code]
        nfe = d["n_force_evals"] if code == "massmap" else f"≈{d['n_force_evals']} (run / step time)"
        print(f"| {code} | {nfe} | {d['step_s']:.2f} | {d['run_s']:.1f} | {d['peak_rss_gb']:.2f} |")
    out = dict(mesh=n, box=L, k=kk.tolist(), r=r.tolist(), power_ratio=(paa / pbb).tolist(),
               min_r_below_half_nyquist=float(r[low].min()),
               **{c: {k2: v for k2, v in res[c].items() if k2 != "delta"} for c in res})
    (ROOT / "benchmarks" / "results").mkdir(parents=True, exist_ok=True)
    tag = "" if args.n_comp < 0 else f"_ncomp{args.n_comp}"
    (ROOT / "benchmarks" / "results" / f"bench_pm_jaxpm{tag}.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
