"""Survey-style tiled posterior: wall time of a SLURM job array against the array tasks run at once.

    python benchmarks/bench_tiles.py [--radius 9] [--parallel 1 2]

A wide-field catalog (a spherical cap of ``--radius`` degrees at nside 64, Gaussian prior, 10° tiles) is
reconstructed (i) serially in this process (``reconstruct --geometry healpix --method posterior``) — the
baseline — and (ii) as a tile batch submitted to the local SLURM (``massmap tiles submit``: array +
merge) with at most P array tasks at once, for each P of ``--parallel``. The table gives each wall time
(submission to merged file), the speed-up over the serial run, and whether the merged map is identical
to the serial one. Each array task is its own Python process (import, compilation from the persistent
cache, catalog read): that start-up is the price of the batch, paid once per tile. Needs a running
SLURM (``make slurm``); prints why not and exits 0 otherwise. On the 2-core test machine at most 2
tasks run at once, so P > 2 cannot be faster there.
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def _wait(job: str) -> None:
    while subprocess.run(["squeue", "-h", "-j", job], capture_output=True, text=True).stdout.strip():
        time.sleep(0.5)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--radius", type=float, default=9.0, help="cap radius in degrees (9: 12 tiles)")
    ap.add_argument("--parallel", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--samples", type=int, default=64, help="posterior samples per tile (4 chains)")
    a = ap.parse_args()
    if shutil.which("sbatch") is None or subprocess.run(["sinfo"], capture_output=True).returncode != 0:
        print("bench_tiles: no SLURM here (run `make slurm` as root); skipped")
        return 0
    import healpy as hp

    from massmap.config import load_config
    from massmap.io.healpix import read_healpix_maps
    from massmap.pipeline.reconstruct_healpix import run_reconstruct_healpix
    from massmap.pipeline.submit import submit_tiles
    from massmap.pipeline.tiles import plan_survey
    from test_healpix_tiles import _cap_pixels, _cl, _random_alm
    from conftest import write_table
    from massmap.sphere.harmonic import kappa_to_shear

    from test_tiles_batch import survey_config

    work = Path(tempfile.mkdtemp(prefix="bench-tiles-"))
    nside, lmax = 64, 128
    rng = np.random.default_rng(0)
    g1, g2 = kappa_to_shear(_random_alm(_cl(lmax, 30.0, 80.0), rng), 4 * nside, lmax)
    pix = _cap_pixels(4 * nside, 30.0, 40.0, a.radius)
    ra, dec = hp.pix2ang(4 * nside, pix, lonlat=True)
    n1, n2 = rng.normal(0.0, 0.1, (2, pix.size))
    cat = write_table(work / "cat.fits", {"RA": ra, "DEC": dec, "E1": g1[pix] + n1, "E2": g2[pix] + n2})
    ell = np.geomspace(1.0, 3000.0, 100)
    np.savetxt(work / "cl.txt", np.c_[ell, 1e-5 / (1 + (ell / 30.0) ** 3) * np.exp(-(ell / 80.0) ** 2)])
    config = load_config(overrides=survey_config(work) + [f"posterior.n_samples={a.samples}", "posterior.chains=4",
                                                          "posterior.chunk=4", "posterior.n_levels=6"])
    t0 = time.perf_counter()
    info = run_reconstruct_healpix(config, cat, work / "serial.fits", "posterior", plot=False)
    serial = time.perf_counter() - t0
    _, ref, _ = read_healpix_maps(work / "serial.fits")
    rows = [("serial (one process)", "–", serial, 1.0, "reference")]
    for p in a.parallel:
        run = work / f"run-p{p}"
        plan = plan_survey(config, cat, run)
        t0 = time.perf_counter()
        jobs = submit_tiles(run, plan["n_tiles"], work / f"merged-p{p}.fits", parallel=p, time="00:30:00",
                            mem_per_cpu="1G", templates=ROOT / "configs" / "slurm")
        _wait(jobs["array_job"])
        _wait(jobs["merge_job"])
        wall = time.perf_counter() - t0
        _, got, _ = read_healpix_maps(work / f"merged-p{p}.fits")
        same = all(np.array_equal(ref[k], got[k]) for k in ref)
        rows.append(("SLURM array + merge", str(p), wall, serial / wall, "identical" if same else "DIFFERENT"))
    print(f"\ntiled posterior, {info['n_tiles']} tiles of {info['tile_npix']}² pixels, {a.samples} samples each, "
          f"{pix.size} galaxies; "
          f"local single-node SLURM, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} cores\n")
    print("| run | array tasks at once | wall (s) | speed-up vs serial | merged map vs serial |")
    print("|---|---|---|---|---|")
    for name, p, wall, speed, same in rows:
        print(f"| {name} | {p} | {wall:.1f} | {speed:.2f} | {same} |")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
