"""Kills at any time (docs/reliability.md): each long command, run as a real subprocess, is sent SIGTERM
or SIGKILL at points of its run found by watching its progress bar or its files (never by sleeping).

Afterwards the output either does not exist or is complete; a SIGTERM ends with status 143 and one
last line on stderr saying what was kept; the state kept is what ``--resume`` (simulate, train-prior)
or a plain rerun (reconstruct, summarize) continues from; and the continued run gives the same bits as
an uninterrupted one: every map, parameter, posterior sample and metric is compared exactly, because
each is a deterministic function of (seed, index) on one machine.

Runs are tiny (16² maps, a 4/8-channel network, a Gaussian prior); the compile cache is shared by the
subprocesses so that only the first run of each program compiles it.
"""
from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
from astropy.io import fits

from cli_process import Run, cli_env, run
from faults import TINY_PRIOR, sets, write_table

N_MAPS = 3000  # simulate: ~1 ms a map, so the run lasts long enough to be hit at chosen fractions
SIM = sets("simulate.npix=16", f"simulate.n_maps={N_MAPS}", "simulate.nonlinear=false",
           "simulate.pixel_size_arcmin=2", "seed=3")
PRIOR = sets(*[s for s in TINY_PRIOR if not s.startswith(("prior.steps", "prior.checkpoint_every", "prior.val_every"))],
             "prior.steps=200", "prior.checkpoint_every=20", "prior.val_every=100")
N_SAMPLES, N_LEVELS = 8, 12  # posterior: one chain per chunk, so that samples are kept chain by chain


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return cli_env(tmp_path_factory.mktemp("jax-cache"))


def reference_run(tmp_path_factory, env, folder: str, name: str, argv) -> Path:
    """The uninterrupted run a stopped one is compared with: ``argv(out)`` run to completion, where ``out``
    is ``name`` in a fresh temporary folder named after ``folder``. Returns ``out``."""
    out = tmp_path_factory.mktemp(folder) / name
    r = run(argv(out), env)
    assert r.proc.returncode == 0, r.stderr
    return out


def stop(r: Run, how: str) -> int:
    """Send the signal(s) of ``how`` and wait: SIGTERM, SIGKILL, or SIGTERM then SIGKILL 50 ms later
    (a scheduler's grace period, shortened)."""
    if how == "SIGKILL":
        r.send(signal.SIGKILL)
    else:
        r.send(signal.SIGTERM)
        if how == "SIGTERM+SIGKILL":
            time.sleep(0.05)
            if r.proc.poll() is None:
                r.send(signal.SIGKILL)
    return r.finish()


def assert_stopped(r: Run, status: int, how: str, *kept: str) -> None:
    """SIGTERM: status 143 and a last stderr line from massmap saying what was kept; SIGKILL: -9."""
    assert "Traceback" not in r.stderr, r.stderr
    if how == "SIGKILL" or (how == "SIGTERM+SIGKILL" and status == -signal.SIGKILL):
        assert status == -signal.SIGKILL, (status, r.stderr[-800:])
        return
    assert status == 143, (status, r.stderr[-800:])
    line = r.last_line()
    assert line.startswith("massmap:") and "SIGTERM" in line, line
    for word in kept:
        assert word in line, (word, line)


def no_partial_output(folder, name: str, killed: bool) -> None:
    """No temporary file of the output; after SIGKILL (no cleanup possible) only hidden temporary files
    and the lock file may remain, never under the output's own name."""
    hidden = sorted(p.name for p in folder.iterdir() if p.name.startswith(f".{name}."))
    if not killed:
        assert hidden == [], hidden


# ------------------------------------------------------------------ simulate

@pytest.fixture(scope="module")
def sim_reference(tmp_path_factory, env):
    out = reference_run(tmp_path_factory, env, "sim-ref", "maps.h5",
                        lambda out: ["simulate", "-o", out, "--quiet", *SIM])
    with h5py.File(out, "r") as f:
        return np.asarray(f["kappa"][()])


@pytest.mark.parametrize("how, at", [("SIGTERM", "start"), ("SIGTERM", 0.3), ("SIGKILL", 0.6),
                                     ("SIGTERM+SIGKILL", 0.85)])
def test_simulate_stopped_then_resumed_equals_uninterrupted(how, at, env, sim_reference, tmp_path):
    from massmap.io.datasets import read_maps, read_metadata
    from massmap.io.locks import lock_path
    from massmap.pipeline.simulate import partial_path

    out, part = tmp_path / "maps.h5", partial_path(tmp_path / "maps.h5")
    r = Run(["simulate", "-o", out, *SIM], env)
    if at == "start":  # the command holds its output lock: it is reading config / building the sampler
        r.wait_for(lambda r: lock_path(out).exists())
    else:
        r.wait_for(lambda r: r.progress("simulate grf") >= at * N_MAPS)
    status = stop(r, how)
    assert_stopped(r, status, how, *(() if at == "start" else ("--resume", str(part))))
    assert not out.exists()  # OUT appears only complete, by the final rename
    if part.exists():
        n_done = read_metadata(part)["n_done"]  # the kept state opens and counts only finished maps
        assert 0 <= n_done < N_MAPS and (at == "start" or n_done > 0)
    no_partial_output(tmp_path, "maps.h5", killed=status < 0)
    # `--resume` on whatever was kept (the same command line a re-queued job would run)
    resumed = run(["simulate", "-o", out, "--resume", "--quiet", *SIM], env)
    assert resumed.proc.returncode == 0, resumed.stderr
    maps, meta = read_maps(out)
    assert meta["complete"] and meta["n_done"] == N_MAPS and not part.exists()
    np.testing.assert_array_equal(maps, sim_reference)  # bit for bit: map i depends only on (seed, i)


# ------------------------------------------------------------------ train-prior

@pytest.fixture(scope="module")
def training_set(tmp_path_factory):
    from massmap.io.datasets import MapSetWriter

    path = tmp_path_factory.mktemp("train") / "maps.h5"
    rng = np.random.default_rng(5)
    with MapSetWriter(path, 12, 16, attrs={"pixel_size_arcmin": 2.0, "kind": "grf"}) as w:
        for i in range(12):
            w.write_map(i, 0.02 * rng.normal(size=(16, 16)))
    return path


@pytest.fixture(scope="module")
def prior_reference(tmp_path_factory, env, training_set):
    return reference_run(tmp_path_factory, env, "prior-ref", "p.h5",
                         lambda out: ["train-prior", training_set, "-o", out, "--quiet", *PRIOR])


def prior_arrays(path) -> dict[str, np.ndarray]:
    """Every weight and loss-history array of a prior file."""
    out = {}
    with h5py.File(path, "r") as f:
        for group in ("params", "history"):
            f[group].visititems(lambda n, o: out.__setitem__(f"{group}/{n}", o[()]) if isinstance(o, h5py.Dataset)
                                else None)
    return out


@pytest.mark.parametrize("how, at", [("SIGTERM", "start"), ("SIGTERM", "checkpoint"), ("SIGKILL", "second checkpoint")])
def test_train_prior_stopped_then_resumed_equals_uninterrupted(how, at, env, training_set, prior_reference, tmp_path):
    from massmap.io.checkpoints import checkpoint_paths, checkpoint_step
    from massmap.io.locks import lock_path

    out = tmp_path / "p.h5"
    ckpt, prev = checkpoint_paths(out)
    r = Run(["train-prior", training_set, "-o", out, "--quiet", *PRIOR], env)
    r.wait_for({"start": lambda r: lock_path(out).exists(), "checkpoint": lambda r: ckpt.exists(),
                "second checkpoint": lambda r: prev.exists()}[at])
    status = stop(r, how)
    assert_stopped(r, status, how, *(("checkpoint", "--resume") if at == "checkpoint" else ()))
    assert not out.exists()
    if at != "start":
        assert checkpoint_step(ckpt) is not None  # intact (checksummed) and resumable
    no_partial_output(tmp_path, "p.h5", killed=status < 0)
    resumed = run(["train-prior", training_set, "-o", out, "--resume", "--quiet", *PRIOR], env)
    assert resumed.proc.returncode == 0, resumed.stderr
    ref, got = prior_arrays(prior_reference), prior_arrays(out)
    assert ref.keys() == got.keys()
    for name in ref:  # bit for bit: the checkpoint holds the whole training state, PRNG key included
        np.testing.assert_array_equal(got[name], ref[name], err_msg=name)
    assert not ckpt.exists() and not prev.exists()


# ------------------------------------------------------------------ reconstruct --method posterior

@pytest.fixture(scope="module")
def shear_catalog(tmp_path_factory):
    folder = tmp_path_factory.mktemp("recon-in")
    rng = np.random.default_rng(2)
    n = 600
    write_table(folder / "cat.fits", {"RA": 150 + rng.uniform(-0.12, 0.12, n), "DEC": 2 + rng.uniform(-0.12, 0.12, n),
                                      "E1": rng.normal(0, 0.25, n), "E2": rng.normal(0, 0.25, n)})
    ell = np.geomspace(10, 1e5, 40)
    np.savetxt(folder / "cl.txt", np.c_[ell, 1e-9 * (ell / 1000.0) ** -2.0])
    return folder / "cat.fits", folder / "cl.txt"


def recon_args(cat, cl, out):
    return ["reconstruct", cat, "-o", out, "--method", "posterior", "--prior", "gaussian", "--n-samples",
            str(N_SAMPLES), "--chains", str(N_SAMPLES), "--no-plot",
            *sets("posterior.chunk=1", f"posterior.n_levels={N_LEVELS}", "posterior.steps_per_level=4",
                  "grid.npix=16", "grid.pixel_size_arcmin=2", "pad=4", f"wiener.cl_file={cl}")]


@pytest.fixture(scope="module")
def recon_reference(tmp_path_factory, env, shear_catalog):
    out = reference_run(tmp_path_factory, env, "recon-ref", "r.fits",
                        lambda out: recon_args(*shear_catalog, out) + ["--quiet"])
    with fits.open(out) as h:
        return np.array(h["KAPPA_SAMPLES"].data)


@pytest.mark.parametrize("how", ["SIGTERM", "SIGKILL"])
def test_reconstruct_posterior_keeps_finished_samples(how, env, shear_catalog, recon_reference, tmp_path):
    from massmap.pipeline.summarize import read_reconstruction

    out = tmp_path / "r.fits"
    per_chain = N_LEVELS + 1  # progress steps of one chain: its annealing levels and its one draw
    r = Run(recon_args(*shear_catalog, out), env)
    r.wait_for(lambda r: r.progress("posterior") > 2 * per_chain)  # two chains finished, the third running
    status = stop(r, how)
    assert_stopped(r, status, how, *(("wrote", str(out), "samples") if how == "SIGTERM" else ()))
    if how == "SIGTERM":  # the finished samples are written, marked incomplete, as a valid reconstruction
        recon = read_reconstruction(out)
        kept = recon.images["KAPPA_SAMPLES"]
        assert 2 <= len(kept) < N_SAMPLES
        assert any("interrupted" in str(v) for v in recon.header.values())
        np.testing.assert_array_equal(kept, recon_reference[: len(kept)])  # chain c depends only on its own key
    else:
        assert not out.exists()
        no_partial_output(tmp_path, "r.fits", killed=True)
        again = run(recon_args(*shear_catalog, out) + ["--quiet"], env)  # a rerun needs no --overwrite
        assert again.proc.returncode == 0, again.stderr
        with fits.open(out) as h:
            np.testing.assert_array_equal(h["KAPPA_SAMPLES"].data, recon_reference)


# ------------------------------------------------------------------ summarize

@pytest.fixture(scope="module")
def reconstruction(tmp_path_factory, shear_catalog):
    from massmap.config import load_config
    from massmap.pipeline.reconstruct import run_reconstruct

    cat, cl = shear_catalog
    out = tmp_path_factory.mktemp("sum-in") / "recon.fits"
    cfg = load_config([], ["grid.npix=16", "grid.pixel_size_arcmin=2", "pad=4", f"wiener.cl_file={cl}"])
    run_reconstruct(cfg, cat, out, method="ks,wiener", plot=False)
    return out


SUMMARY = sets("summarize.n_noise=240", "summarize.noise_chunk=4")


def metrics(folder):
    m = json.loads((folder / "metrics.json").read_text())
    m.pop("provenance")  # holds the date of the run
    return m


@pytest.fixture(scope="module")
def summary_reference(tmp_path_factory, env, reconstruction):
    return metrics(reference_run(tmp_path_factory, env, "sum-ref", "summary",
                                 lambda out: ["summarize", reconstruction, "-o", out, "--quiet", *SUMMARY]))


@pytest.mark.parametrize("how, at", [("SIGTERM", 60), ("SIGKILL", 120)])
def test_summarize_stopped_leaves_nothing_and_reruns_equal(how, at, env, reconstruction, summary_reference, tmp_path):
    out = tmp_path / "summary"
    r = Run(["summarize", reconstruction, "-o", out, *SUMMARY], env)
    r.wait_for(lambda r: r.progress("noise realisations") >= at)
    status = stop(r, how)
    assert_stopped(r, status, how, "nothing was written")
    assert not out.exists()
    left = [p.name for p in tmp_path.iterdir() if p.name.startswith(".summary")]
    assert left == [] if how == "SIGTERM" else left in ([], [".summary.lock"])
    if how == "SIGTERM":
        return  # the rerun below, once, shows that what a kill leaves does not stand in the way
    again = run(["summarize", reconstruction, "-o", out, "--quiet", *SUMMARY], env)  # no --overwrite needed
    assert again.proc.returncode == 0, again.stderr
    assert metrics(out) == summary_reference  # noise realisations are keyed by (seed, index): same numbers
