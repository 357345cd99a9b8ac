"""Curved-sky benchmark: a wide-survey catalog binned on HEALPix and transformed (spherical KS), CPU.

    .venv/bin/python benchmarks/bench_healpix.py                      # 10⁷ galaxies, nside 1024
    .venv/bin/python benchmarks/bench_healpix.py --n-gal 1e6 --nside 256 --fits

The catalog (uniform over a 5000 deg² spherical cap, the size of DES; shape noise 0.26 per component,
plus the shear of a positive Gaussian κ blob at the cap centre) is made in memory; ``--fits`` also
writes it to a temporary FITS file and times :func:`massmap.io.catalog.read_catalog` on it. Steps:

- bin: :func:`massmap.binning.bin_shear_healpix` (calibrated shear, noise, mask, counts);
- KS: :func:`massmap.sphere.harmonic.kaiser_squires_sphere` at ℓ_max = 3 nside − 1 with the
  configured Jacobi iterations (each iteration adds one spin-2 synthesis and one analysis);
- write: the healpy-format file of :func:`massmap.io.healpix.write_healpix_maps` (full sky).

Each step's wall and CPU time (all threads) and its peak resident-memory growth (kernel VmHWM, reset before the step) are
printed as a markdown table, with the process's peak (glibc is told to mmap large blocks, so
freed arrays leave the resident set between steps). A sanity line checks that κ_E at the blob
is positive. Single process; healpy's transforms use the cores the machine gives them.
"""
from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
from memory import reset_peak_rss, status_kb  # benchmarks/memory.py

SIGMA_E = 0.26
AREA_DEG2 = 5000.0


def _return_freed_memory() -> None:
    """Serve large allocations by mmap (glibc), so freed arrays leave the resident set between steps."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD = 1 MiB
    except (OSError, AttributeError):
        pass






def measure(rows: list, name: str, fn, *args, **kwargs):
    """Run ``fn``; append (name, wall s, CPU s, peak RSS growth MiB, absolute peak RSS MiB) to ``rows``."""
    rss0 = status_kb("VmRSS")
    ok = reset_peak_rss()
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn(*args, **kwargs)
    dt, dc = time.perf_counter() - t0, time.process_time() - c0
    hwm = status_kb("VmHWM")
    peak = (hwm - rss0) / 1024.0 if ok else float("nan")
    rows.append((name, dt, dc, peak, hwm / 1024.0))
    return out


def make_catalog(n_gal: int, rng: np.random.Generator):
    """Positions uniform in a cap of AREA_DEG2 around (RA, Dec) = (30, −40); noisy tangential shear."""
    from massmap.binning import ShearCatalog

    ra0, dec0 = 30.0, -40.0
    cos_r = 1.0 - AREA_DEG2 * (np.pi / 180.0) ** 2 / (2.0 * np.pi)  # cap of solid angle 2π(1 − cos r)
    cth = rng.uniform(cos_r, 1.0, n_gal)
    phi = rng.uniform(0.0, 2.0 * np.pi, n_gal)
    th = np.arccos(cth)
    # Offsets in the lens-centred frame (x West, y North), then to RA/Dec on the sphere.
    x, y = np.sin(th) * np.cos(phi), np.sin(th) * np.sin(phi)
    d0, a0 = np.radians(dec0), np.radians(ra0)
    dec = np.arcsin(cth * np.sin(d0) + y * np.cos(d0))
    ra = a0 - np.arctan2(x, cth * np.cos(d0) - y * np.sin(d0))
    s, k0 = np.radians(2.0), 0.05  # a σ = 2° Gaussian κ blob (flat-sky tangential shear, fine for a check)
    t2 = th**2
    with np.errstate(invalid="ignore", divide="ignore"):
        gt = np.where(t2 > 0, k0 * 2 * s**2 / t2 * (1 - np.exp(-t2 / (2 * s**2))), k0) - k0 * np.exp(-t2 / (2 * s**2))
    e1 = -gt * np.cos(2 * phi) + rng.normal(0, SIGMA_E, n_gal)
    e2 = -gt * np.sin(2 * phi) + rng.normal(0, SIGMA_E, n_gal)
    ok = np.hypot(e1, e2) <= 1.0
    n = int(ok.sum())
    cat = ShearCatalog("synthetic", np.mod(np.degrees(ra[ok]), 360.0), np.degrees(dec[ok]), e1[ok], e2[ok],
                       np.ones(n), np.ones((2, n)), n, 0)
    return cat, (ra0, dec0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n-gal", type=float, default=1e7)
    ap.add_argument("--nside", type=int, default=1024)
    ap.add_argument("--iterations", type=int, default=3, help="Jacobi refinement steps of map2alm")
    ap.add_argument("--fits", action="store_true", help="also write the catalog to FITS and time read_catalog")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    _return_freed_memory()

    import healpy as hp

    from massmap.config import load_config
    from massmap.io.catalog import read_catalog
    from massmap.io.healpix import write_healpix_maps
    from massmap.io.output import provenance
    from massmap.binning import bin_shear_healpix
    from massmap.sphere.harmonic import kaiser_squires_sphere

    n_gal, nside = int(args.n_gal), args.nside
    lmax = 3 * nside - 1
    rng = np.random.default_rng(args.seed)
    rows: list = []
    cat, (ra0, dec0) = measure(rows, f"make catalog ({n_gal:.0e} galaxies, in memory)", make_catalog, n_gal, rng)
    config = load_config(overrides=[f"healpix.nside={nside}", f"healpix.iterations={args.iterations}"])
    with tempfile.TemporaryDirectory() as tmp:
        if args.fits:
            from astropy.io import fits

            path = Path(tmp) / "cat.fits"
            cols = [fits.Column(name=k, format="D", array=v) for k, v in
                    (("RA", cat.ra), ("DEC", cat.dec), ("E1", cat.e1), ("E2", cat.e2))]
            fits.BinTableHDU.from_columns(cols).writeto(path)
            cat = measure(rows, "read_catalog (FITS, 4 columns)", read_catalog, path, config.catalog)
        binned = measure(rows, f"bin_shear_healpix (nside {nside})", bin_shear_healpix, cat, nside, SIGMA_E)
        ke, kb = measure(rows, f"kaiser_squires_sphere (lmax {lmax}, iter {args.iterations})", kaiser_squires_sphere,
                         binned.g1, binned.g2, lmax, 0.0, args.iterations)
        maps = {"KAPPA_KS": ke, "KAPPA_KS_B": kb, "GAMMA1": binned.g1, "GAMMA2": binned.g2,
                "NOISE_STD": binned.noise_std, "MASK": binned.mask}
        measure(rows, "write_healpix_maps (6 columns, full sky)", write_healpix_maps, Path(tmp) / "out.fits", nside,
                maps, provenance(config, "bench_healpix"), None, False)
        size_mb = (Path(tmp) / "out.fits").stat().st_size / 2**20

    print(f"\nmachine: {platform.machine()}, {os.cpu_count()} CPUs; healpy {hp.__version__}; numpy {np.__version__}")
    print(f"catalog: {cat.n} galaxies over {AREA_DEG2:g} deg²; nside {nside} ({hp.nside2resol(nside, arcmin=True):.2f}' "
          f"pixels), {binned.n_observed} observed pixels (f_sky {binned.f_sky:.3f}); output {size_mb:.0f} MiB\n")
    print(f"load average at the end: {os.getloadavg()[0]:.1f} (wall times stretch when other jobs share the CPUs)\n")
    print("| step | wall time (s) | CPU time (s) | peak memory growth (MiB) |")
    print("|---|---:|---:|---:|")
    for name, dt, dc, peak, _ in rows:
        print(f"| {name} | {dt:.2f} | {dc:.2f} | {peak:.0f} |")
    print(f"| **total** | {sum(r[1] for r in rows):.2f} | {sum(r[2] for r in rows):.2f} | "
          f"process peak RSS {max(r[4] for r in rows):.0f} |")
    smooth = hp.smoothing(ke, fwhm=np.radians(1.0), lmax=min(lmax, 1024))
    centre = hp.ang2pix(nside, ra0, dec0, lonlat=True)
    print(f"\nsanity: smoothed κ_E at the blob {smooth[centre]:+.4f} (> 0 expected); "
          f"rms of κ_E, κ_B over the footprint {ke[binned.mask > 0].std():.4f}, {kb[binned.mask > 0].std():.4f}")


if __name__ == "__main__":
    main()
