"""The tile batch on a real SLURM (single node on localhost, started by tests/slurm/setup.sh).

A job array over the 6 tiles of a small wide-field catalog plus the dependent merge job must give the
serial run's map bit for bit; one array task killed while it runs (scancel) leaves only its own part
missing, and resubmitting that index completes the survey without redoing the others.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from massmap.cli import main
from massmap.config import load_config
from massmap.pipeline.reconstruct_healpix import run_reconstruct_healpix

from test_tiles_batch import assert_same_maps, make_survey, survey_config

ROOT = Path(__file__).resolve().parents[1]
TIMEOUT_S = 420  # the whole array on 2 cores: ~6 Python start-ups and compilations, 2 at a time


def _slurm_or_skip() -> None:
    reason = ROOT / ".slurm-unavailable"
    if reason.exists():
        pytest.skip(reason.read_text().strip())
    if shutil.which("sbatch") is None or shutil.which("sinfo") is None:
        pytest.skip("SLURM is not installed (run: sudo bash tests/slurm/setup.sh)")
    res = subprocess.run(["sinfo", "-h", "-o", "%t"], capture_output=True, text=True, timeout=30)
    if res.returncode != 0 or not res.stdout.strip():
        pytest.skip(f"no SLURM controller answers (sinfo: {res.stderr.strip()[:100]}); run tests/slurm/setup.sh")


def _squeue(job: str) -> list[tuple[str, str]]:
    """(array task id, state) of a job's tasks still in the queue."""
    res = subprocess.run(["squeue", "-h", "-r", "-j", job, "-o", "%K %T"], capture_output=True, text=True, timeout=30)
    return [tuple(line.split()) for line in res.stdout.splitlines() if line.strip()]


def _wait_gone(job: str, deadline: float) -> None:
    while _squeue(job):
        assert time.monotonic() < deadline, f"SLURM job {job} did not finish in {TIMEOUT_S} s"
        time.sleep(1.0)


def _submit(args) -> dict:
    res = CliRunner().invoke(main, [str(a) for a in args])
    assert res.exit_code == 0, res.output
    words = res.output.split()
    out = {"array": words[words.index("job") + 1]}
    if "merge" in words:
        out["merge"] = words[-1]
    return out


def test_job_array_and_merge_on_slurm_with_a_killed_task(tmp_path):
    _slurm_or_skip()
    cat = make_survey(tmp_path)
    over = survey_config(tmp_path)
    run_reconstruct_healpix(load_config(overrides=over), cat, tmp_path / "serial.fits", "posterior", plot=False)
    run = tmp_path / "run"
    sets = [a for o in over for a in ("--set", o)]
    assert CliRunner().invoke(main, ["tiles", "plan", str(cat), "-o", str(run), *sets]).exit_code == 0
    deadline = time.monotonic() + TIMEOUT_S
    templates = ROOT / "configs" / "slurm"
    jobs = _submit(["tiles", "submit", run, "-o", tmp_path / "merged.fits", "--parallel", 2, "--no-merge",
                    "--templates", templates, "--time", "00:10:00", "--mem-per-cpu", "1G"])
    # kill task 1 while it runs (SIGTERM, then SIGKILL after KillWait): its part must not appear
    victim = f"{jobs['array']}_1"
    while ("1", "RUNNING") not in _squeue(jobs["array"]):
        assert time.monotonic() < deadline, "array task 1 never ran"
        assert not (run / "tiles" / "tile-00001.h5").exists(), "task 1 finished before it could be killed"
        time.sleep(0.1)
    subprocess.run(["scancel", victim], check=True, timeout=30)
    _wait_gone(jobs["array"], deadline)
    parts = {i: run / "tiles" / f"tile-{i:05d}.h5" for i in range(6)}
    assert not parts[1].exists()
    assert all(parts[i].exists() for i in (0, 2, 3, 4, 5)), sorted(p.name for p in (run / "tiles").iterdir())
    before = {i: parts[i].stat().st_mtime_ns for i in (0, 2, 3, 4, 5)}
    # resubmit only what is missing, with the merge after it
    jobs = _submit(["tiles", "submit", run, "-o", tmp_path / "merged.fits", "--only", "1", "--parallel", 2,
                    "--templates", templates, "--time", "00:10:00", "--mem-per-cpu", "1G"])
    _wait_gone(jobs["array"], deadline)
    _wait_gone(jobs["merge"], deadline)
    assert (tmp_path / "merged.fits").exists(), (run / "slurm" / "merge.log").read_text()[-2000:]
    assert {i: parts[i].stat().st_mtime_ns for i in before} == before  # finished tiles were not redone
    assert_same_maps(tmp_path / "serial.fits", tmp_path / "merged.fits")


def test_multi_node_template_runs_one_command_over_two_processes(tmp_path):
    """configs/slurm/multi-node.sbatch with 2 tasks: jax.distributed starts from the SLURM environment and
    `simulate` splits its maps between the processes; the map set equals a one-process run bit for bit."""
    _slurm_or_skip()
    import numpy as np

    from massmap.io.datasets import read_maps
    from massmap.pipeline.simulate import run_simulate

    over = ["simulate.kind=grf", "simulate.n_maps=4", "simulate.npix=16", "seed=5"]
    run_simulate(load_config(overrides=over), tmp_path / "one.h5", progress=False)
    command = "simulate -o " + str(tmp_path / "two.h5") + " --quiet " + " ".join(f"--set {o}" for o in over)
    res = CliRunner().invoke(main, ["submit", str(ROOT / "configs" / "slurm" / "multi-node.sbatch"),
                                    "--field", "tasks_per_node=2", "--field", f"command={command}",
                                    "--field", "time=00:10:00", "--field", "mem_per_cpu=1G", "--scripts", str(tmp_path)])
    assert res.exit_code == 0, res.output
    job = res.output.split()[-1]
    _wait_gone(job, time.monotonic() + TIMEOUT_S)
    logs = "".join(p.read_text() for p in tmp_path.glob("multi-node-*.log"))
    assert (tmp_path / "two.h5").exists(), logs[-3000:]
    a, _ = read_maps(tmp_path / "one.h5")
    b, _ = read_maps(tmp_path / "two.h5")
    assert np.array_equal(np.asarray(a), np.asarray(b))
