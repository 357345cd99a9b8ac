"""Throughput against device count: posterior chains, prior training and the particle mesh.

    .venv/bin/python benchmarks/bench_scale.py                 # 1, 2, 4 devices
    .venv/bin/python benchmarks/bench_scale.py --devices 1 2 --repeats 2

Every device count runs in its own subprocess (JAX fixes its devices at start-up) on forced CPU host
devices (JAX_PLATFORMS=cpu, XLA_FLAGS=--xla_force_host_platform_device_count=N): they share the same
cores, so no speed-up is expected from them; what the table shows is the cost of the partitioning
(collectives, padding) and the memory per device. The single-device row, measured in the same run,
is the baseline of every ratio.

Measured (compile excluded: one warm-up call first, then the median of ``--repeats`` timed calls):

* chains: :func:`massmap.infer.sampler.sample_posterior`, Gaussian prior, 32² field, 8 chains of one
  draw each in one chunk (split over the devices) → samples/s;
* training: :func:`massmap.prior.training.train_step`, batch 16 of 32² patches, channels (16, 32),
  data parallel over the devices → steps/s;
* PM: one KDK step on a 32³ mesh (one device: sim.integrate.pm_integrator; several: sim.sharded) →
  steps/s;
* largest PM mesh within ``--cap-gib`` per device: from XLA's buffer assignment of one compiled step
  (``compiled.memory_analysis()``: arguments + outputs + temporaries, per device, no donation), for
  meshes 64³ … 512³ in steps of 32 — compiled, not run (a 512³ step would take minutes on 2 cores).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MESHES = tuple(range(64, 513, 32))


def _timed(fn, repeats: int) -> float:
    fn()  # compile and warm up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench_chains(repeats: int) -> float:
    import jax
    import numpy as np

    from massmap.infer.likelihood import pad_shear
    from massmap.infer.sampler import SamplerSettings, sample_posterior
    from massmap.ops.shear import kappa_to_shear
    from massmap.ops.spectra import cl_on_grid, gaussian_random_field
    from massmap.prior.gaussian import GaussianPrior

    n, pix = 32, 1.0
    ell = np.geomspace(10, 1e5, 200)
    cl = 1e-9 * (ell / 1000.0) ** -1.2
    kappa = gaussian_random_field(jax.random.PRNGKey(0), cl_on_grid(ell, cl, n, n, pix), pix)
    g1, g2 = (np.asarray(a) + 0.01 * np.random.default_rng(0).normal(size=(n, n)) for a in kappa_to_shear(kappa))
    data = pad_shear(g1, g2, np.full((n, n), 0.01), np.ones((n, n)), 0)
    prior = GaussianPrior(ell, cl, pix)
    settings = SamplerSettings(n_samples=8, chains=8, sigma_max=0.05, sigma_min=0.002, n_levels=5,
                               steps_per_level=2, burn_in=2)
    dt = _timed(lambda: sample_posterior(jax.random.PRNGKey(1), data, prior, settings, pad=0, chunk=8), repeats)
    return settings.n_samples / dt


def bench_training(repeats: int) -> float:
    import jax
    import numpy as np

    from massmap import parallel
    from massmap.prior.augment import make_patch_source
    from massmap.prior.dsm import white_mode_variance
    from massmap.prior.training import TrainSpec, data_parallel_sharding, init_train, make_hyper, train_step
    from massmap.prior.unet import UNetSpec

    spec = TrainSpec(UNetSpec((16, 32), 1, 32, True, 1.0), 32, 16, "log-uniform")
    hyper = make_hyper(steps=1000, learning_rate=1e-3, warmup_steps=10, final_lr_fraction=0.1, weight_decay=1e-4,
                       grad_clip=1.0, ema_decay=0.99, sigma_min=0.01, sigma_max=10.0)
    source = make_patch_source(np.asarray(jax.random.normal(jax.random.PRNGKey(5), (8, 64, 64))),
                               np.full((8, 2), 64), 32)
    mode_var = white_mode_variance(32, 32)
    state = init_train(jax.random.PRNGKey(0), spec, hyper, mode_var)
    sharding = data_parallel_sharding(spec.batch_size)
    if sharding is not None:
        state, source, mode_var = parallel.replicate((state, source, mode_var), sharding.mesh)
    box = {"state": state}
    n_steps = 3

    def run():
        st = box["state"]
        for _ in range(n_steps):
            st, info = train_step(st, source, mode_var, hyper, spec, sharding)
        info.loss.block_until_ready()
        box["state"] = st

    return n_steps / _timed(run, repeats)


def _pm(mesh: int):
    from massmap import parallel
    from massmap.sim.integrate import pm_integrator
    from massmap.sim.sharded import sharded_pm_integrator

    if parallel.device_count() > 1:
        return sharded_pm_integrator(mesh, 4.0 * mesh, 0.31, 2)
    return pm_integrator(mesh, 4.0 * mesh, 0.31, 2)


def bench_pm(repeats: int, mesh: int = 32) -> float:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from massmap.sim.integrate import StepFactors

    integ = _pm(mesh)
    pos = jax.random.uniform(jax.random.PRNGKey(0), (mesh**3, 3), maxval=4.0 * mesh)
    state = integ.init(pos, jnp.zeros_like(pos), 0.1)
    f = StepFactors(*(np.float32(0.01) for _ in range(4)))
    return 1.0 / _timed(lambda: integ.step(state, f)[0].positions.block_until_ready(), repeats)


def pm_step_bytes(mesh: int) -> int:
    """Per-device bytes of one compiled PM step (arguments + outputs + temporaries), compiled only."""
    import jax
    import jax.numpy as jnp
    import numpy as np

    from massmap import parallel
    from massmap.sim.integrate import PMState, StepFactors

    integ = _pm(mesh)
    split = parallel.batch_sharding() if parallel.device_count() > 1 else None
    whole = parallel.replicated() if parallel.device_count() > 1 else None
    vec = jax.ShapeDtypeStruct((mesh**3, 3), jnp.float32, sharding=split)
    state = PMState(vec, vec, vec, jax.ShapeDtypeStruct((), jnp.float32, sharding=whole))
    f = StepFactors(*(np.float32(0.01) for _ in range(4)))
    m = integ.step.lower(state, f).compile().memory_analysis()
    return int(m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes)


def largest_pm_mesh(cap_bytes: int, n_dev: int) -> tuple[int, float]:
    """The largest mesh of MESHES (a multiple of the device count) whose step fits ``cap_bytes``."""
    best, used = 0, float("nan")
    for mesh in MESHES:
        if mesh % n_dev:
            continue
        b = pm_step_bytes(mesh)
        if b > cap_bytes:
            break
        best, used = mesh, b / 2**30
    return best, used


def worker(args) -> dict:
    import jax

    n_dev = jax.device_count()
    out = {"devices": n_dev, "platform": jax.devices()[0].platform}
    out["chains_samples_s"] = bench_chains(args.repeats)
    out["train_steps_s"] = bench_training(args.repeats)
    out["pm_steps_s"] = bench_pm(args.repeats)
    out["pm_largest_mesh"], out["pm_largest_gib"] = largest_pm_mesh(int(args.cap_gib * 2**30), n_dev)
    return out


def run_one(n_dev: int, args) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "JAX_PLATFORMS": "cpu", "XLA_FLAGS": f"--xla_force_host_platform_device_count={n_dev}"}
    cmd = [sys.executable, __file__, "--worker", "--repeats", str(args.repeats), "--cap-gib", str(args.cap_gib)]
    res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=args.timeout)
    if res.returncode != 0:
        raise RuntimeError(f"{n_dev} devices failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def table(rows: list[dict], cap_gib: float) -> str:
    base = rows[0]
    lines = ["| devices | chains (samples/s) | training (steps/s) | PM 32³ (steps/s) | "
             f"largest PM mesh ≤ {cap_gib:g} GiB/device |",
             "|---|---|---|---|---|"]
    for r in rows:
        def cell(key):
            return f"{r[key]:.2f} ({r[key] / base[key]:.2f}×)"
        lines.append(f"| {r['devices']} ({r['platform']}) | {cell('chains_samples_s')} | {cell('train_steps_s')} | "
                     f"{cell('pm_steps_s')} | {r['pm_largest_mesh']}³ ({r['pm_largest_gib']:.2f} GiB) |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cap-gib", type=float, default=1.0)
    ap.add_argument("--timeout", type=float, default=1800)
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    rows = [run_one(n, args) for n in sorted(set(args.devices))]
    out = ROOT / ".bench" / "bench_scale.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(rows, indent=1))
    print(table(rows, args.cap_gib))
    print(f"\n(ratios against the {rows[0]['devices']}-device row of this run; raw numbers in {out})")


if __name__ == "__main__":
    main()
