"""Two processes with jax.distributed on localhost (coordinator 127.0.0.1, CPU collectives by gloo).

Each test starts two fresh interpreters on a free port, waits a bounded time and kills both if either
fails or hangs; the one-process references run in this process. Posterior chains are split across the
two processes (one device each), and ``massmap --distributed simulate`` splits maps by index.
"""
from __future__ import annotations

import socket
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

import parallel_workers as cases
from massmap.config import load_config
from massmap.io.datasets import read_maps
from massmap.pipeline.simulate import run_simulate
from massmap.pipeline.simulate_parallel import _owned, _rank_writer

TIMEOUT = 300  # seconds for both processes together (start-up, C_ℓ, compilation on 2 shared cores)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_two(argv_of, env_of, timeout: float = TIMEOUT) -> list[str]:
    """Start ``argv_of(i)`` with environment ``env_of(i)`` for i = 0, 1; their outputs. Kills both on failure."""
    procs = []
    try:
        for i in range(2):
            env = cases.worker_env(JAX_PLATFORMS="cpu", MASSMAP_CACHE_DIR="", **env_of(i))
            procs.append(subprocess.Popen(argv_of(i), env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                          text=True))
        deadline = time.monotonic() + timeout
        outputs = []
        for p in procs:
            out, _ = p.communicate(timeout=max(1.0, deadline - time.monotonic()))
            outputs.append(out)
        for i, (p, out) in enumerate(zip(procs, outputs)):
            assert p.returncode == 0, f"process {i} exited {p.returncode}:\n{out[-4000:]}"
        return outputs
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


@pytest.fixture(scope="module")
def one():
    return cases.one_device_references("one-process")


def test_chains_split_across_two_processes_equal_one_process(one, tmp_path):
    out, port = tmp_path / "out.npz", free_port()
    run_two(lambda i: cases.worker_argv(out, "chains"),
            lambda i: {"MASSMAP_TEST_COORDINATOR": f"127.0.0.1:{port}", "MASSMAP_TEST_NPROC": "2",
                       "MASSMAP_TEST_PID": str(i), "MASSMAP_TEST_DEVICES": "1"})
    with np.load(out) as f:
        two = dict(f)
    assert int(two["processes"]) == 2 and int(two["devices"]) == 2
    # 6 chains over the 2 devices of the 2 processes: 3 per device, the program one device runs for a
    # chunk of 3, so every chain's samples are bitwise those of one process (gathered back to process 0)
    ref = one.chains_chunk3()
    np.testing.assert_array_equal(two["chains.samples"], ref["samples"])
    assert int(two["chains.evals"]) == int(ref["evals"])


def test_distributed_simulate_equals_one_process(one, tmp_path):
    port = free_port()
    sets = sum((["--set", s] for s in cases.SIM_SETS), [])
    folder = tmp_path / "two"
    folder.mkdir()
    cli = "from massmap.cli import main; main()"
    outputs = run_two(lambda i: [sys.executable, "-c", cli, "--distributed", "simulate", "-o",
                                 str(folder / "maps.h5"), "--quiet", *sets],
                      lambda i: {"JAX_COORDINATOR_ADDRESS": f"127.0.0.1:{port}", "JAX_NUM_PROCESSES": "2",
                                 "JAX_PROCESS_ID": str(i)})
    two, meta = read_maps(folder / "maps.h5")
    ref, _ = read_maps(run_simulate(load_config([], cases.SIM_SETS), tmp_path / "one.h5", progress=False))
    # process 0 made maps 0, 2, 4 and process 1 maps 1, 3, each with the one-map program of one device:
    # the same arithmetic as one process, so bitwise equal
    np.testing.assert_array_equal(two, ref)
    assert meta["n_done"] == 5 and meta["complete"]
    # the rank part files were merged and removed; what is left is what one process leaves
    assert sorted(p.name for p in folder.iterdir()) == ["maps.config.yaml", "maps.h5", "maps.png"]
    assert "wrote 5 lognormal maps" in outputs[0]


def test_rank_file_resumes_where_it_stopped(tmp_path):
    # process 1 of 2 owns maps 1, 3, 5 of 6; it wrote two of them before stopping
    owned = _owned(0, 6, 1, 2)
    assert owned == [1, 3, 5]
    path = tmp_path / "maps.h5.rank1of2.part"
    writer, pos = _rank_writer(path, owned, 4, {"rank": 1, "rank_count": 2}, resume=False)
    with writer:
        for k in range(2):
            writer.write_map(k, np.full((4, 4), owned[k], np.float32))
    writer, pos = _rank_writer(path, owned, 4, {"rank": 1, "rank_count": 2}, resume=True)
    with writer:
        assert pos == 2 and writer.n_done == 2  # continues with map 5, keeps maps 1 and 3
    # after a partial merge up to map 3, the maps still owned are 3 and 5: the file still serves them
    writer, pos = _rank_writer(path, _owned(3, 6, 1, 2), 4, {"rank": 1, "rank_count": 2}, resume=True)
    with writer:
        assert pos == 1 and writer.n_done == 2  # map 3 is in the file (local 1), map 5 comes next
    with h5py.File(path) as f:
        assert f["kappa"][1, 0, 0] == 3.0 and int(f.attrs["rank_first_index"]) == 1
    # without --resume the rank file starts over
    writer, pos = _rank_writer(path, owned, 4, {"rank": 1, "rank_count": 2}, resume=False)
    with writer:
        assert pos == 0 and writer.n_done == 0
