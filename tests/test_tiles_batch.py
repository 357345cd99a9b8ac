"""A wide-field posterior as a batch of tiles (massmap tiles plan/run/merge), without a scheduler.

Known truth: the serial ``reconstruct --geometry healpix --method posterior`` of the same catalog and
config; the batch must reproduce it bit for bit (same per-tile keys, float64 parts, tile-order sums).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import healpy as hp
import numpy as np
import pytest
from click.testing import CliRunner

from massmap.cli import main
from massmap.config import load_config
from massmap.io.healpix import read_healpix_maps
from massmap.io.locks import lock_path, output_lock
from massmap.pipeline.reconstruct_healpix import run_reconstruct_healpix
from massmap.sphere.harmonic import kappa_to_shear

from conftest import assert_one_line_error, write_table
from test_healpix_tiles import _cap_pixels, _cl, _random_alm

NSIDE = 64


def survey_config(folder: Path, seed: int = 3) -> list[str]:
    """A 6° cap at nside 64 in 10° tiles: 6 tiles of 12² pixels (55′), Gaussian prior, 4 samples each."""
    return [f"healpix.nside={NSIDE}", "noise.sigma_e=0.1", f"wiener.cl_file={folder / 'cl.txt'}",
            "posterior.prior=gaussian", "posterior.n_samples=4", "posterior.chains=2", "posterior.chunk=2",
            "posterior.n_levels=3", "pad=8", "healpix.tile_size_deg=10", "healpix.tile_overlap_deg=3", f"seed={seed}"]


def make_survey(folder: Path) -> Path:
    """A small wide-field catalog (2157 galaxies on a 6° cap, σ_e = 0.1) and its signal C_ℓ file."""
    lmax = 2 * NSIDE
    rng = np.random.default_rng(0)
    alm = _random_alm(_cl(lmax, 30.0, 80.0), rng)
    g1, g2 = kappa_to_shear(alm, 4 * NSIDE, lmax)
    pix = _cap_pixels(4 * NSIDE, 30.0, 40.0, 6.0)
    ra, dec = hp.pix2ang(4 * NSIDE, pix, lonlat=True)
    n1, n2 = rng.normal(0.0, 0.1, (2, pix.size))
    ell = np.geomspace(1.0, 3000.0, 100)
    np.savetxt(folder / "cl.txt", np.c_[ell, 1e-5 / (1 + (ell / 30.0) ** 3) * np.exp(-(ell / 80.0) ** 2)])
    return write_table(folder / "cat.fits", {"RA": ra, "DEC": dec, "E1": g1[pix] + n1, "E2": g2[pix] + n2})


@pytest.fixture(scope="module")
def survey(tmp_path_factory):
    folder = tmp_path_factory.mktemp("survey")
    cat = make_survey(folder)
    info = run_reconstruct_healpix(load_config(overrides=survey_config(folder)), cat, folder / "serial.fits",
                                   "posterior", plot=False)
    assert info["n_tiles"] == 6  # the geometry this module is written for
    return folder, cat


def _cli(args, env=None):
    return CliRunner().invoke(main, [str(a) for a in args], env=env)


def _set(over):
    return [a for o in over for a in ("--set", o)]


def assert_same_maps(a: Path, b: Path) -> None:
    _, ma, _ = read_healpix_maps(a)
    _, mb, _ = read_healpix_maps(b)
    assert set(ma) == set(mb)
    for k in ma:
        assert np.array_equal(ma[k], mb[k]), k  # bit-identical: same computation, same summation order


def test_batch_equals_serial_run_and_reruns_only_what_is_missing(survey, tmp_path):
    folder, cat = survey
    run = tmp_path / "run"
    res = _cli(["tiles", "plan", cat, "-o", run, *_set(survey_config(folder))])
    assert res.exit_code == 0, res.output
    plan = json.loads((run / "plan.json").read_text())
    assert plan["n_tiles"] == 6 and plan["seed"] == 3 and len(plan["catalog_sha256"]) == 64
    for i in range(6):
        res = _cli(["tiles", "run", run, "--task-index", i])
        assert res.exit_code == 0 and "done" in res.output, res.output
    # the index from the environment, as a SLURM array task sees it; a finished part is not redone
    mtime = (run / "tiles" / "tile-00002.h5").stat().st_mtime_ns
    res = _cli(["tiles", "run", run], env={"SLURM_ARRAY_TASK_ID": "2"})
    assert res.exit_code == 0 and "already done" in res.output, res.output
    assert (run / "tiles" / "tile-00002.h5").stat().st_mtime_ns == mtime
    assert "6 done, 0 running, 0 missing" in _cli(["tiles", "status", run]).output
    res = _cli(["tiles", "merge", run, "-o", tmp_path / "merged.fits", "--no-plot"])
    assert res.exit_code == 0, res.output
    assert_same_maps(folder / "serial.fits", tmp_path / "merged.fits")
    parts = json.loads((tmp_path / "merged.parts.json").read_text())
    assert parts["plan_id"] == plan["plan_id"] and len(parts["parts"]) == 6  # provenance of every part
    assert all(p["massmap_version"] and p["host"] for p in parts["parts"])
    # a damaged part is redone by the next run of its index, and the merge is unchanged
    (run / "tiles" / "tile-00004.h5").write_bytes(b"truncated")
    assert "done" in _cli(["tiles", "run", run, "--task-index", 4]).output
    res = _cli(["tiles", "merge", run, "-o", tmp_path / "merged2.fits", "--no-plot"])
    assert res.exit_code == 0, res.output
    assert_same_maps(folder / "serial.fits", tmp_path / "merged2.fits")


def test_bad_batch_input_gives_one_line_errors(survey, tmp_path):
    folder, cat = survey
    run, other = tmp_path / "run", tmp_path / "other"
    assert _cli(["tiles", "plan", cat, "-o", run, *_set(survey_config(folder))]).exit_code == 0
    assert _cli(["tiles", "plan", cat, "-o", other, *_set(survey_config(folder, seed=4))]).exit_code == 0
    out = tmp_path / "out.fits"
    # task index out of range, or none given
    assert_one_line_error(_cli(["tiles", "run", run, "--task-index", 6]), ("task index 6", "6 tiles"), out)
    assert_one_line_error(_cli(["tiles", "run", run], env={"SLURM_ARRAY_TASK_ID": None}), ("SLURM_ARRAY_TASK_ID",), out)
    # a plan is not replaced without --overwrite
    assert_one_line_error(_cli(["tiles", "plan", cat, "-o", run, *_set(survey_config(folder))]),
                          ("plan.json", "--overwrite"), out)
    # merge with missing parts names them; nothing is written
    assert _cli(["tiles", "run", run, "--task-index", 0]).exit_code == 0
    assert_one_line_error(_cli(["tiles", "merge", run, "-o", out]), ("5 of 6 parts missing", "tiles 1, 2, 3, 4, 5"), out)
    # a part of another plan (other seed) is foreign
    assert _cli(["tiles", "run", other, "--task-index", 1]).exit_code == 0
    for i in range(2, 6):
        assert _cli(["tiles", "run", run, "--task-index", i]).exit_code == 0
    os.replace(other / "tiles" / "tile-00001.h5", run / "tiles" / "tile-00001.h5")
    assert_one_line_error(_cli(["tiles", "merge", run, "-o", out]), ("tile-00001.h5", "another plan"), out)
    # not a plan folder
    assert_one_line_error(_cli(["tiles", "merge", tmp_path, "-o", out]), ("no tile plan",), out)


def test_two_runs_of_one_tile_cannot_both_write(survey, tmp_path):
    folder, cat = survey
    run = tmp_path / "run"
    assert _cli(["tiles", "plan", cat, "-o", run, *_set(survey_config(folder))]).exit_code == 0
    out = run / "tiles" / "tile-00003.h5"
    lock = lock_path(out)
    # a live holder (this process holds the part's flock, as a running task would): the second run fails,
    # naming the holder's pid, writes nothing, and status counts the tile as running
    with output_lock([out]):
        second = _cli(["tiles", "run", run, "--task-index", 3])
        assert "0 done, 1 running, 5 missing" in _cli(["tiles", "status", run]).output
    # checked once the holder let go, so that its own lock file is not counted as the second run's leftover
    assert_one_line_error(second, ("tile-00003.h5", "being written by another massmap process", str(os.getpid())), out)
    # a dead holder (a finished process, as after SIGKILL) leaves its lock file behind but no lock: taken over
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    lock.write_text(f"{dead.pid}\n")
    assert "0 done, 0 running, 6 missing" in _cli(["tiles", "status", run]).output
    res = _cli(["tiles", "run", run, "--task-index", 3])
    assert res.exit_code == 0 and out.exists() and not lock.exists(), res.output
