"""Cases run in fresh interpreters by tests/test_parallel.py and tests/test_distributed.py.

JAX fixes its devices and processes when it starts, so every multi-device or multi-process run is a
subprocess: ``python tests/parallel_workers.py OUT.npz CASE [CASE ...]`` with ``MASSMAP_TEST_DEVICES``
(forced host devices) and, for several processes, ``MASSMAP_TEST_COORDINATOR`` / ``_NPROC`` / ``_PID``.
Each case returns a dict of arrays, saved as ``CASE.name`` in OUT.npz (by process 0 only when there are
several). The same functions run in the pytest process for the one-device references.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

if __name__ == "__main__":
    n_dev = int(os.environ.get("MASSMAP_TEST_DEVICES", "1"))
    os.environ["JAX_PLATFORMS"] = "cpu"
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") +
                               f" --xla_force_host_platform_device_count={n_dev}").strip()
    os.environ.setdefault("MASSMAP_CACHE_DIR", "")
    sys.path.insert(0, str(Path(__file__).resolve().parent))

import jax  # noqa: E402
import numpy as np  # noqa: E402

CHAIN_SETTINGS = dict(n_samples=6, chains=6, sigma_max=0.05, sigma_min=0.002, n_levels=3, steps_per_level=1,
                      burn_in=1)
SIM_SETS = ["simulate.kind=lognormal", "simulate.npix=16", "simulate.n_maps=5", "seed=4"]
ROOT = Path(__file__).resolve().parents[1]


def worker_argv(out, *names: str) -> list[str]:
    """The command line of a fresh interpreter running cases ``names`` into ``out`` (a .npz file)."""
    return [sys.executable, str(Path(__file__).resolve()), str(out), *names]


def worker_env(**extra: str) -> dict[str, str]:
    """The environment of a fresh interpreter started by a test: this one's, with the checkout first on
    PYTHONPATH, ``extra`` added and no XLA_FLAGS (the child sets its own device count)."""
    path = os.pathsep.join([str(ROOT)] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p])
    env = {**os.environ, "PYTHONPATH": path, **extra}
    env.pop("XLA_FLAGS", None)
    return env


def one_device_references(what: str):
    """This module, whose cases the pytest process runs for the one-device references ``what`` names;
    skips the test where that process has several devices."""
    import pytest

    if jax.device_count() != 1:
        pytest.skip(f"the {what} references need a one-device pytest process (XLA_FLAGS is set)")
    return sys.modules[__name__]


def chains(chunk: int = 6) -> dict:
    """Gaussian-prior posterior chains on a 16² field (tests/test_sampler.py's data), 6 chains."""
    from massmap.infer.sampler import SamplerSettings, sample_posterior
    from test_sampler import PRIOR, _data

    data, _ = _data()
    out = sample_posterior(jax.random.PRNGKey(3), data, PRIOR, SamplerSettings(**CHAIN_SETTINGS), pad=0, chunk=chunk)
    return {"samples": out.samples, "evals": np.asarray(out.info.n_score_evals),
            "acceptance": out.info.acceptance}


def chains_chunk2() -> dict:
    return chains(2)


def chains_chunk3() -> dict:
    return chains(3)


def training(steps: int = 3) -> dict:
    """A few data-parallel steps of the score network (batch 8, 16² patches, two UNet levels)."""
    from massmap import parallel
    from massmap.prior.augment import make_patch_source
    from massmap.prior.dsm import white_mode_variance
    from massmap.prior.training import TrainSpec, data_parallel_sharding, init_train, make_hyper, train_step
    from massmap.prior.unet import UNetSpec

    spec = TrainSpec(UNetSpec((8, 16), 1, 16, True, 1.0), 16, 8, "log-uniform")
    hyper = make_hyper(steps=10, learning_rate=3e-3, warmup_steps=2, final_lr_fraction=0.1, weight_decay=1e-4,
                       grad_clip=1.0, ema_decay=0.9, sigma_min=0.01, sigma_max=10.0)
    regions = np.asarray(jax.random.normal(jax.random.PRNGKey(5), (4, 24, 24)))
    source = make_patch_source(regions, np.full((4, 2), 24), 16)
    mode_var = white_mode_variance(16, 16)
    state = init_train(jax.random.PRNGKey(0), spec, hyper, mode_var)
    sharding = data_parallel_sharding(spec.batch_size)
    all_reduce = False
    if sharding is not None:
        state, source, mode_var = parallel.replicate((state, source, mode_var), sharding.mesh)
        hlo = train_step.lower(state, source, mode_var, hyper, spec, sharding).compile().as_text()
        all_reduce = "all-reduce" in hlo
    losses = []
    for _ in range(steps):
        state, info = train_step(state, source, mode_var, hyper, spec, sharding)
        losses.append(float(info.loss))
    flat = np.concatenate([np.ravel(np.asarray(x)) for x in jax.tree.leaves((state.params, state.ema_params))])
    return {"params": flat, "loss": np.asarray(losses), "step": np.asarray(state.step),
            "key": np.asarray(state.key), "devices": np.asarray(parallel.device_count()),
            "all_reduce": np.asarray(all_reduce)}


def simulate(folder: str | None = None) -> dict:
    """``massmap simulate`` of 5 lognormal 16² maps (with several processes: split by index)."""
    from massmap import parallel
    from massmap.config import load_config
    from massmap.io.datasets import read_maps
    from massmap.pipeline.simulate import run_simulate

    folder = folder or os.environ.get("MASSMAP_TEST_FOLDER") or tempfile.mkdtemp()
    out = run_simulate(load_config([], SIM_SETS), Path(folder) / "maps.h5", overwrite=True, progress=False)
    parallel.barrier("read")
    maps, meta = read_maps(out)
    return {"maps": maps, "n_done": np.asarray(meta["n_done"]), "complete": np.asarray(bool(meta["complete"])),
            "files": np.asarray(sorted(p.name for p in Path(folder).iterdir()))}


PM_SPLIT_SETS = ["simulate.kind=pm", "simulate.n_maps=2", "simulate.npix=16", "simulate.nonlinear=false",
                 "sources.z_source=0.5", "simulate.pm.box_size=32", "simulate.pm.mesh=16", "simulate.pm.n_steps=2",
                 "simulate.pm.plane_thickness=32", "simulate.pm.split_over_devices=true", "seed=3"]


def simulate_pm_split(folder: str | None = None) -> dict:
    """``massmap simulate`` of 2 PM maps, each run split over all local devices (one device: whole)."""
    from massmap.config import load_config
    from massmap.io.datasets import read_maps
    from massmap.pipeline.simulate import run_simulate

    folder = folder or os.environ.get("MASSMAP_TEST_FOLDER") or tempfile.mkdtemp()
    out = run_simulate(load_config([], PM_SPLIT_SETS), Path(folder) / "pm-split.h5", overwrite=True, progress=False)
    maps, _ = read_maps(out)
    return {"maps": maps}


def pm(mesh: int = 16, n_steps: int = 3, fft: str = "slab") -> dict:
    """LPT initial conditions and ``n_steps`` KDK steps on a ``mesh``³ mesh, one device or sharded."""
    from massmap import parallel
    from massmap.config.physics import cosmology_of
    from massmap.config.pm import PMConfig, pm_params_of
    from massmap.config.schema import CosmologyConfig
    from massmap.sim.integrate import kdk_factors, pm_integrator
    from massmap.sim.raytrace import FORCE_DECONVOLUTION, initial_conditions, step_schedule
    from massmap.sim.sharded import sharded_pm_integrator

    cosmo = cosmology_of(CosmologyConfig())
    cfg = pm_params_of(PMConfig(box_size=64.0, mesh=mesh, n_steps=n_steps, a_init=0.1))
    pos, mom, _ = initial_conditions(jax.random.PRNGKey(7), cosmo, cfg)
    a_steps = step_schedule(cfg)
    factors = kdk_factors(cosmo, a_steps)
    om = cosmo.Omega_c + cosmo.Omega_b
    if parallel.device_count() > 1:
        integ = sharded_pm_integrator(mesh, cfg.box_size, om, FORCE_DECONVOLUTION, fft=fft)
    else:
        integ = pm_integrator(mesh, cfg.box_size, om, FORCE_DECONVOLUTION)
    state = integ.init(pos, mom, a_steps[0])
    for k in range(n_steps):
        state, info = integ.step(state, jax.tree.map(lambda v: v[k], factors))
    shard_shape = state.positions.addressable_shards[0].data.shape
    mesh_shard = info.delta.addressable_shards[0].data.shape
    return {"positions": np.asarray(state.positions), "momenta": np.asarray(state.momenta),
            "delta": np.asarray(info.delta), "a": np.asarray(state.a),
            "particle_shard": np.asarray(shard_shape), "mesh_shard": np.asarray(mesh_shard)}


def pm_xla() -> dict:
    return pm(fft="xla")


def pm_jaxdecomp() -> dict:
    return pm(fft="jaxdecomp")


CASES = {f.__name__: f for f in (chains, chains_chunk2, chains_chunk3, training, simulate, simulate_pm_split, pm, pm_xla,
                                 pm_jaxdecomp)}


def main(out: str, names: list[str]) -> None:
    from massmap import parallel

    if os.environ.get("MASSMAP_TEST_COORDINATOR"):
        parallel.initialize_distributed(True, os.environ["MASSMAP_TEST_COORDINATOR"],
                                        int(os.environ["MASSMAP_TEST_NPROC"]), int(os.environ["MASSMAP_TEST_PID"]))
    results = {}
    for name in names:
        for key, value in CASES[name]().items():
            results[f"{name}.{key}"] = value
    results["devices"] = np.asarray(jax.device_count())
    results["processes"] = np.asarray(jax.process_count())
    if parallel.is_main_process():
        np.savez(out, **results)
    parallel.barrier("done")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2:])
