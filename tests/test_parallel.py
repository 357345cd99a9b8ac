"""Several devices (massmap.parallel): four forced host devices in one subprocess, against one device.

JAX fixes its device count when it starts, so the 4-device numbers come from one fresh interpreter
(tests/parallel_workers.py, XLA_FLAGS=--xla_force_host_platform_device_count=4) running every case;
the one-device references run the same functions in this process. Forced host devices share the
same CPU cores: these tests check numbers and placement, never speed.
"""
from __future__ import annotations

import subprocess
from pathlib import Path

import jax
import numpy as np
import pytest

import parallel_workers as cases
from massmap import parallel
from massmap.sim.sharded import has_jaxdecomp


def run_workers(names, out: Path, devices: int = 4, timeout: float = 300, env: dict | None = None) -> dict:
    """Run cases ``names`` in a fresh interpreter with ``devices`` forced host devices; their arrays."""
    full = cases.worker_env(MASSMAP_TEST_DEVICES=str(devices), **(env or {}))
    res = subprocess.run(cases.worker_argv(out, *names), env=full, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0, res.stderr[-4000:]
    with np.load(out) as f:
        return dict(f)


@pytest.fixture(scope="module")
def four(tmp_path_factory):
    folder = tmp_path_factory.mktemp("four")
    out = run_workers(["chains", "training", "simulate", "simulate_pm_split", "pm", "pm_xla"], folder / "out.npz",
                      env={"MASSMAP_TEST_FOLDER": str(folder)})
    assert int(out["devices"]) == 4 and int(out["processes"]) == 1
    return out


@pytest.fixture(scope="module")
def one():
    return cases.one_device_references("one-device")


def test_chains_split_over_devices_give_the_same_samples(four, one):
    # 6 chains on 4 devices: the chunk is padded to 8 and each device runs 2 chains. Every operation of a
    # chain is then the one a single device runs for a chunk of 2 chains, so the samples are bitwise equal
    ref2 = one.chains_chunk2()
    np.testing.assert_array_equal(four["chains.samples"], ref2["samples"])
    assert int(four["chains.evals"]) == int(ref2["evals"])  # the padding chains are not counted
    # against one device running all 6 at once: XLA's CPU code for a batch of 6 vectorises the FFTs and
    # sums differently from a batch of 2, so equal only to float32 rounding (measured 1.5e-8 on |κ| ≤ 0.1;
    # an HMC accept decision would flip only for a uniform draw within ~1e-7 of its threshold)
    ref6 = one.chains(6)
    np.testing.assert_allclose(four["chains.samples"], ref6["samples"], rtol=0, atol=1e-6)
    np.testing.assert_allclose(four["chains.acceptance"], ref6["acceptance"], rtol=1e-5, atol=1e-6)


def test_training_data_parallel_matches_one_device(four, one):
    ref = one.training()
    assert int(ref["devices"]) == 1 and int(four["training.devices"]) == 4
    # the compiled 4-device step sums the gradients across devices: the batch really is split
    assert bool(four["training.all_reduce"])
    # same global batch (the same partitionable-threefry draws), so after 3 AdamW steps the parameters
    # (and EMA) differ only by the order of the float32 gradient sums: measured 7.5e-8 on |θ| ≤ 0.8;
    # Adam's normalisation can amplify a relative rounding error of a near-zero gradient up to ~lr · 1e-3
    np.testing.assert_allclose(four["training.params"], ref["params"], rtol=0, atol=1e-5)
    np.testing.assert_allclose(four["training.loss"], ref["loss"], rtol=1e-5)
    assert int(four["training.step"]) == int(ref["step"]) == 3
    np.testing.assert_array_equal(four["training.key"], ref["key"])  # the PRNG stream is not split


def test_simulate_batched_over_devices_equals_one_device(four, one, tmp_path):
    ref = one.simulate(str(tmp_path))
    # lognormal maps made four at a time (one per device, the vmapped sampler) against one by one: the
    # same per-map arithmetic; bitwise here, allowed float32 rounding of a batched FFT (1e-6 relative)
    scale = np.abs(ref["maps"]).max()
    np.testing.assert_allclose(four["simulate.maps"], ref["maps"], rtol=0, atol=1e-6 * scale)
    assert int(four["simulate.n_done"]) == 5 and bool(four["simulate.complete"])


def test_simulate_pm_split_over_devices_equals_one_device(four, one, tmp_path):
    ref = one.simulate_pm_split(str(tmp_path))
    # each PM map run over 4 devices (x slabs) against one device: the sharded PM's float32 rounding
    # (≤ 2e-5 relative in positions, test below) carried into the Born κ; 1e-3 of the map's max |κ|
    scale = np.abs(ref["maps"]).max()
    assert scale > 0
    np.testing.assert_allclose(four["simulate_pm_split.maps"], ref["maps"], rtol=0, atol=1e-3 * scale)


@pytest.mark.parametrize("fft", ["pm", "pm_xla"])
def test_sharded_pm_equals_single_device(four, one, fft):
    ref = one.pm()
    # really split: 16³ particles as 4 × 1024, δ as 4 slabs of 4 x-planes
    assert tuple(four[f"{fft}.particle_shard"]) == (1024, 3) and tuple(four[f"{fft}.mesh_shard"]) == (4, 16, 16)
    # 3 KDK steps from 2LPT in a 64 Mpc/h box: the ring painting, readout and distributed FFTs add the same
    # terms in another order, float32 rounding (~1e-7 relative, a few ulp of 64 = 8e-6) grown over 3 steps;
    # measured ≤ 2e-5 for positions (Mpc/h, compared periodically), momenta (|p| ≤ 11) and δ (|δ| ≤ 30)
    dx = (four[f"{fft}.positions"] - ref["positions"] + 32.0) % 64.0 - 32.0
    assert np.abs(dx).max() < 1e-4
    np.testing.assert_allclose(four[f"{fft}.momenta"], ref["momenta"], rtol=0, atol=1e-4)
    np.testing.assert_allclose(four[f"{fft}.delta"], ref["delta"], rtol=0, atol=1e-4)
    assert float(four[f"{fft}.a"]) == float(ref["a"])


@pytest.mark.skipif(not has_jaxdecomp(), reason="jaxdecomp is not installed (optional; not a massmap dependency)")
def test_sharded_pm_jaxdecomp_equals_single_device(one, tmp_path):
    ref = one.pm()
    out = run_workers(["pm_jaxdecomp"], tmp_path / "out.npz")
    dx = (out["pm_jaxdecomp.positions"] - ref["positions"] + 32.0) % 64.0 - 32.0
    assert np.abs(dx).max() < 1e-4  # as above: float32 rounding of another summation order
    np.testing.assert_allclose(out["pm_jaxdecomp.delta"], ref["delta"], rtol=0, atol=1e-4)


def test_sharded_pm_rejects_meshes_that_do_not_split():
    from massmap.sim.sharded import sharded_pm_integrator

    mesh = parallel.batch_mesh()
    with pytest.raises(ValueError, match="fft must be one of"):
        sharded_pm_integrator(16, 64.0, 0.3, device_mesh=mesh, fft="fftw")
    if not has_jaxdecomp():
        with pytest.raises(ValueError, match="jaxdecomp"):
            sharded_pm_integrator(16, 64.0, 0.3, device_mesh=mesh, fft="jaxdecomp")


def test_padding_and_placement_helpers():
    mesh = parallel.batch_mesh()
    d = mesh.size
    assert parallel.padded_size(1) == d and parallel.padded_size(d + 1) == 2 * d and parallel.padded_size(0) == d
    x = np.arange(6.0).reshape(3, 2)
    padded = parallel.pad_batch(x, 5)
    np.testing.assert_array_equal(padded, [[0, 1], [2, 3], [4, 5], [0, 1], [0, 1]])  # first row repeated
    with pytest.raises(ValueError):
        parallel.pad_batch(x, 2)
    placed = parallel.shard_batch(parallel.pad_batch(x, parallel.padded_size(3)))
    assert placed.sharding.spec == jax.sharding.PartitionSpec(parallel.AXIS)
    np.testing.assert_array_equal(parallel.to_host(placed)[:3], x)  # placement never changes the numbers
    assert parallel.replicate(x).sharding.is_fully_replicated


def test_initialize_distributed_only_when_asked(monkeypatch):
    for name in ("SLURM_NTASKS", "MASSMAP_DISTRIBUTED"):
        monkeypatch.delenv(name, raising=False)
    assert not parallel.wants_distributed()  # a plain run
    monkeypatch.setenv("SLURM_NTASKS", "1")
    assert not parallel.wants_distributed()  # one SLURM task
    monkeypatch.setenv("SLURM_NTASKS", "4")
    assert parallel.wants_distributed()  # one of several SLURM tasks
    monkeypatch.setenv("MASSMAP_DISTRIBUTED", "0")
    assert not parallel.wants_distributed()  # switched off explicitly
    assert parallel.wants_distributed(True) and not parallel.wants_distributed(False)
    monkeypatch.delenv("SLURM_NTASKS")
    monkeypatch.delenv("MASSMAP_DISTRIBUTED")
    assert parallel.initialize_distributed() is False  # nothing asked: nothing started
    assert parallel.process_count() == 1 and parallel.process_index() == 0 and parallel.is_main_process()
