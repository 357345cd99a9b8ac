"""Disk, permissions and concurrency (docs/reliability.md): a full disk, a read-only output folder, an
output path that is a folder, and two processes writing one output. Each gives one line and exit 2,
leaves no partial file and never touches the inputs; two writers never mix their files.

The full disk is a real 64 KiB tmpfs mounted for the test (skipped, with the reason, where mounting is
not allowed, as on most CI runners); the read-only folder is a read-only tmpfs when running as root
(root ignores permission bits) and a chmod 555 folder otherwise.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
import time

import yaml
from pathlib import Path

import numpy as np
import pytest
from astropy.io import fits
from click.testing import CliRunner

from cli_process import Run, cli_env
from faults import digest, is_root, sets, write_table
from massmap.cli import main

GRID = sets("grid.npix=32", "grid.pixel_size_arcmin=1", "pad=0")


@contextlib.contextmanager
def small_filesystem(size: str = "64k", options: str = ""):
    """A real, tiny tmpfs (the test is skipped, with mount's own message, where it cannot be made)."""
    folder = Path(tempfile.mkdtemp(prefix="massmap-tmpfs-"))
    opts = f"size={size}" + (f",{options}" if options else "")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(folder)], capture_output=True, text=True)
    if done.returncode != 0:
        folder.rmdir()
        pytest.skip(f"cannot mount a small tmpfs here: {(done.stderr or done.stdout).strip() or done.returncode}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)
        folder.rmdir()


def remount(folder: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(folder)], check=True, capture_output=True)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return cli_env(tmp_path_factory.mktemp("jax-cache"))


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(4)
    n = 2000
    cat = write_table(folder / "cat.fits", {"RA": 150 + rng.uniform(-0.25, 0.25, n),
                                            "DEC": 2 + rng.uniform(-0.25, 0.25, n),
                                            "E1": rng.normal(0, 0.25, n), "E2": rng.normal(0, 0.25, n)})
    ell = np.geomspace(10, 1e5, 40)
    np.savetxt(folder / "cl.txt", np.c_[ell, 1e-9 * (ell / 1000.0) ** -2.0])
    recon = folder / "recon.fits"
    res = CliRunner().invoke(main, ["reconstruct", str(cat), "-o", str(recon), "--method", "ks,wiener", "--no-plot",
                                    *GRID, *sets(f"wiener.cl_file={folder / 'cl.txt'}")])
    assert res.exit_code == 0, res.output
    return {"catalog": cat, "cl": folder / "cl.txt", "recon": recon}


def one_line_error(res, *needles) -> str:
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert res.exit_code == 2, res.output
    assert "Traceback" not in res.output and len(lines) == 1 and lines[0].startswith("massmap: error:"), res.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    return lines[0]


def commands(inputs, out: Path) -> dict[str, list[str]]:
    """A command per kind of output, writing under ``out`` (a folder)."""
    return {
        "reconstruct": ["reconstruct", str(inputs["catalog"]), "-o", str(out / "r.fits"), "--method", "ks,wiener",
                        *GRID, *sets(f"wiener.cl_file={inputs['cl']}")],
        "summarize": ["summarize", str(inputs["recon"]), "-o", str(out / "summary"), "--quiet",
                      *sets("summarize.n_noise=8", "summarize.noise_chunk=4")],
        "mock-catalog": ["mock-catalog", str(inputs["recon"]), "-o", str(out / "mock.fits"), "--truth-out",
                         str(out / "truth.fits"), *sets("mock.n_gal=200")],
        "simulate": ["simulate", "-o", str(out / "maps.h5"), "--quiet",
                     *sets("simulate.npix=16", "simulate.n_maps=200", "simulate.nonlinear=false")],
    }


# ------------------------------------------------------------------ disk full

@pytest.mark.parametrize("command", ["reconstruct", "summarize", "mock-catalog"])
def test_full_disk_is_a_one_line_error_and_leaves_nothing(command, inputs):
    before = {k: digest(p) for k, p in inputs.items()}
    with small_filesystem("64k") as disk:
        res = CliRunner().invoke(main, commands(inputs, disk)[command])
        one_line_error(res, "No space left on device", str(disk))
        assert sorted(p.name for p in disk.iterdir()) == []  # no output, temporary file, sidecar or lock
    assert {k: digest(p) for k, p in inputs.items()} == before  # inputs untouched


def test_full_disk_before_simulate_starts_writes_nothing(inputs):
    """The room for the whole map set is checked before the first map: one line, no file."""
    with small_filesystem("64k") as disk:
        one_line_error(CliRunner().invoke(main, commands(inputs, disk)["simulate"]), "No space left on device",
                       "maps.h5.part")
        assert list(disk.iterdir()) == []


def test_disk_filled_during_simulate_keeps_a_resumable_part(tmp_path):
    """Another writer fills the disk while simulate runs (a thread of this test writes a filler file once
    the map set has grown): the run stops between two maps with one line, every counted map on disk;
    with the space freed, the same command with --resume finishes the set, equal to an uninterrupted run."""
    import threading

    from massmap.config import load_config
    from massmap.io.datasets import read_maps
    from massmap.pipeline.map_samplers import simulate_map

    n = 3000
    args = ["simulate", "--quiet", *sets("simulate.npix=16", f"simulate.n_maps={n}", "simulate.nonlinear=false")]
    with small_filesystem("8m") as disk:
        part, filler = disk / "maps.h5.part", disk / "filler"

        def fill_when_growing():
            for _ in range(3000):
                if part.exists() and part.stat().st_size > 600_000:
                    st = os.statvfs(disk)
                    with contextlib.suppress(OSError), open(filler, "wb") as fh:
                        fh.write(b"\0" * max(0, st.f_bavail * st.f_frsize - 512 * 1024))
                    return
                time.sleep(0.002)

        thread = threading.Thread(target=fill_when_growing)
        thread.start()
        res = CliRunner().invoke(main, args + ["-o", str(disk / "maps.h5")])
        thread.join()
        one_line_error(res, "No space left on device", "--resume", "maps.h5.part")
        assert not (disk / "maps.h5").exists() and filler.exists()
        kept, meta = read_maps(part)  # what was counted is on disk, nothing else
        assert 0 < meta["n_done"] < n and np.all(np.isfinite(kept)), meta["n_done"]
        filler.unlink()
        res = CliRunner().invoke(main, args + ["-o", str(disk / "maps.h5"), "--resume"])
        assert res.exit_code == 0, res.output
        maps, meta = read_maps(disk / "maps.h5")
        assert meta["complete"] and meta["n_done"] == n and not part.exists()
        np.testing.assert_array_equal(maps[: len(kept)], kept)
        cfg = load_config([], ["simulate.npix=16", f"simulate.n_maps={n}", "simulate.nonlinear=false"])
        for i in (0, len(kept) - 1, len(kept), n - 1):  # each map as generated alone: bit for bit
            np.testing.assert_array_equal(maps[i], simulate_map(cfg, i))


def test_full_disk_at_a_training_checkpoint():
    """A training checkpoint (HDF5) on a full disk: one InputError naming it, nothing left on the disk
    (HDF5 itself never meets the full disk: the room is checked first, see massmap.io.output)."""
    import jax

    from faults import TINY_PRIOR
    from massmap.config import load_config
    from massmap.io.checkpoints import save_checkpoint
    from massmap.io.output import InputError
    from massmap.pipeline.train_prior import train_spec
    from massmap.prior.dsm import white_mode_variance
    from massmap.prior.training import init_train

    spec, hyper = train_spec(load_config([], TINY_PRIOR).prior, 0.02, 2e-4, 0.2)
    state = init_train(jax.random.PRNGKey(0), spec, hyper, white_mode_variance(16, 16))
    with small_filesystem("64k") as disk:
        with pytest.raises(InputError, match="cannot write .*p.ckpt.h5.*No space left on device") as err:
            save_checkpoint(disk / "p.ckpt.h5", state, {"train_loss": np.zeros(3)}, "seed: 0\n", ["maps.h5"])
        assert "\n" not in str(err.value) and list(disk.iterdir()) == []


# ------------------------------------------------------------------ read-only folder, output is a folder

@contextlib.contextmanager
def read_only_folder():
    if is_root():  # root writes through permission bits: a read-only file system stops it
        with small_filesystem("64k", "ro") as folder:
            yield folder, "Read-only file system"
    else:
        folder = Path(tempfile.mkdtemp(prefix="massmap-ro-"))
        folder.chmod(0o555)
        try:
            yield folder, "Permission denied"
        finally:
            folder.chmod(0o755)
            shutil.rmtree(folder)


@pytest.mark.parametrize("command", ["reconstruct", "summarize", "mock-catalog", "simulate"])
def test_read_only_output_folder_is_a_one_line_error(command, inputs):
    before = {k: digest(p) for k, p in inputs.items()}
    with read_only_folder() as (folder, reason):
        res = CliRunner().invoke(main, commands(inputs, folder)[command])
        one_line_error(res, reason, str(folder))
        assert list(folder.iterdir()) == []
    assert {k: digest(p) for k, p in inputs.items()} == before


@pytest.mark.parametrize("command", ["reconstruct", "mock-catalog", "simulate", "train-prior", "summarize"])
def test_output_path_that_is_a_folder_is_a_one_line_error(command, inputs, tmp_path):
    target = tmp_path / "target"
    if command == "summarize":  # summarize writes a folder: there, a file in the way is the mistake
        target.write_bytes(b"precious")
    else:
        target.mkdir()
        (target / "keep.txt").write_text("precious")
    args = {"reconstruct": ["reconstruct", str(inputs["catalog"]), "-o", str(target)],
            "mock-catalog": ["mock-catalog", str(inputs["recon"]), "-o", str(target)],
            "simulate": ["simulate", "-o", str(target), "--overwrite"],
            "train-prior": ["train-prior", str(inputs["recon"]), "-o", str(target), "--overwrite"],
            "summarize": ["summarize", str(inputs["recon"]), "-o", str(target), "--overwrite"]}[command]
    one_line_error(CliRunner().invoke(main, args), "target")
    if command == "summarize":
        assert target.read_bytes() == b"precious"
    else:
        assert [p.name for p in target.iterdir()] == ["keep.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["target"]


# ------------------------------------------------------------------ two writers

def test_an_output_being_written_is_refused(inputs, tmp_path):
    """The lock is a real flock: a second writer (here CliRunner while this process holds the lock,
    a second open file description) fails at once, naming the output and the holder."""
    from massmap.io.locks import output_lock

    import fcntl

    from massmap.io.locks import lock_path

    out = tmp_path / "r.fits"
    with output_lock([out]):
        res = CliRunner().invoke(main, commands(inputs, tmp_path)["reconstruct"])
    line = one_line_error(res, "being written by another massmap process", "r.fits")
    assert f"(pid {os.getpid()})" in line and not out.exists()
    # a holder that has not written its pid yet (the moment after it took the lock)
    fd = os.open(lock_path(out), os.O_RDWR | os.O_CREAT)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        res = CliRunner().invoke(main, commands(inputs, tmp_path)["reconstruct"])
    finally:
        os.close(fd)
    one_line_error(res, "being written by another massmap process")
    assert not out.exists()
    assert CliRunner().invoke(main, commands(inputs, tmp_path)["reconstruct"]).exit_code == 0  # lock released


def test_second_simulate_on_the_same_output_fails_and_the_first_finishes(env, tmp_path):
    from massmap.io.datasets import read_maps
    from massmap.io.locks import lock_path

    out = tmp_path / "maps.h5"
    args = ["simulate", "-o", out, *sets("simulate.npix=16", "simulate.n_maps=3000", "simulate.nonlinear=false")]
    first = Run(args + ["--quiet"], env)
    first.wait_for(lambda r: lock_path(out).exists())
    # the second writer is this test process (already started, so it reaches the lock at once); even
    # --overwrite does not take an output another process is writing
    second = CliRunner().invoke(main, [str(a) for a in args] + ["--quiet", "--overwrite"])
    assert first.proc.poll() is None, "the first run ended before the second one tried"
    one_line_error(second, "another massmap process", "maps.h5")
    assert first.finish() == 0, first.stderr
    maps, meta = read_maps(out)
    assert meta["complete"] and maps.shape == (3000, 16, 16) and np.all(np.isfinite(maps))


def recorded_methods(path: Path) -> tuple[set, str]:
    """The map extensions of a reconstruction and the methods its provenance records."""
    with fits.open(path) as h:
        names = {x.name for x in h[1:]}
        methods = next(h[0].header[k.replace("KEY", "VAL")] for k in h[0].header if k.startswith("INKEY")
                       and h[0].header[k] == "methods")
    return names, methods


def test_two_writers_of_one_output_never_mix(env, inputs, tmp_path):
    """Two reconstructions of one output with different methods, started at the same instant with
    --overwrite: each either finishes or refuses in one line, and the file, its config sidecar and its
    preview all come from one run, never from both."""
    out = tmp_path / "r.fits"
    runs = {m: Run(["reconstruct", inputs["catalog"], "-o", out, "--method", m, "--overwrite", "--quiet", *GRID,
                    *sets(f"wiener.cl_file={inputs['cl']}")], env) for m in ("ks", "ks,wiener")}
    status = {m: r.finish() for m, r in runs.items()}
    assert set(status.values()) <= {0, 2} and 0 in status.values(), {m: r.stderr for m, r in runs.items()}
    for m, r in runs.items():
        assert "Traceback" not in r.stderr
        if status[m] == 2:
            assert "another massmap process" in r.last_line(), r.stderr
    names, methods = recorded_methods(out)
    expected = {"ks": {"KAPPA_KS", "KAPPA_KS_B"}, "ks,wiener": {"KAPPA_KS", "KAPPA_KS_B", "KAPPA_WIENER"}}[methods]
    assert names == expected | {"GAMMA1", "GAMMA2", "NOISE_STD", "MASK"}
    assert status[methods] == 0  # the file is the work of a run that finished
    sidecar = yaml.safe_load(out.with_name("r.config.yaml").read_text())
    assert sidecar["wiener"]["cl_file"] == str(inputs["cl"])  # the sidecar is a complete config
    assert sorted(p.name for p in tmp_path.iterdir()) == ["r.config.yaml", "r.fits", "r.png"]


# ------------------------------------------------------------------ outputs that would destroy inputs

def test_output_folder_holding_an_input_is_refused(inputs, tmp_path, monkeypatch):
    # summarize replaces its folder on --overwrite: a folder holding the reconstruction, or the current
    # folder, would be deleted with it. Each case: one line, exit 2, the input and the folder untouched.
    folder = tmp_path / "s"
    folder.mkdir()
    recon = folder / "recon.fits"
    shutil.copyfile(inputs["recon"], recon)
    (folder / "metrics.json").write_text("{}")  # an earlier summary's file: the folder looks like one
    before = digest(recon)
    small = sets("summarize.n_noise=4", "summarize.noise_chunk=4")
    for out in (folder, tmp_path):
        res = CliRunner().invoke(main, ["summarize", str(recon), "-o", str(out), "--overwrite", "--quiet", *small])
        one_line_error(res, "holds the input", str(recon))
    monkeypatch.chdir(folder / "..")
    res = CliRunner().invoke(main, ["summarize", str(inputs["recon"]), "-o", ".", "--overwrite", "--quiet", *small])
    one_line_error(res, "current folder")
    res = CliRunner().invoke(main, ["summarize", str(inputs["recon"]), "-o", "/", "--overwrite", "--quiet", *small])
    one_line_error(res, "'/'")
    assert digest(recon) == before and sorted(p.name for p in folder.iterdir()) == ["metrics.json", "recon.fits"]


def test_output_that_is_an_input_or_another_output_is_refused(inputs, tmp_path):
    cat = tmp_path / "cat.fits"
    shutil.copyfile(inputs["catalog"], cat)
    before = digest(cat)
    res = CliRunner().invoke(main, ["reconstruct", str(cat), "-o", str(cat), "--overwrite", "--method", "ks",
                                    "--no-plot", *GRID])
    one_line_error(res, "also an input")
    # mock-catalog's catalog and truth map at one path: the truth would silently replace the catalog
    same = tmp_path / "mock.fits"
    res = CliRunner().invoke(main, ["mock-catalog", str(inputs["recon"]), "-o", str(same), "--truth-out", str(same),
                                    *sets("mock.n_gal=200")])
    one_line_error(res, "same file", "--truth-out")
    assert digest(cat) == before and not same.exists()
