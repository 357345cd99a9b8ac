"""Foundation benchmarks: Kaiser-Squires, Wiener and catalog binning, massmap vs lenspack.

Run with the benchmark venv (``bash benchmarks/setup_venv.sh`` creates it; ``make bench`` runs all):

    benchmarks/.venv/bin/python benchmarks/bench_reconstruct.py

Every case runs in its own subprocess, twice: a timing pass (one cold call, whose trace/compile time is
read from JAX's compile events, then the median of several warm calls) and a memory pass (a warm-up
call, then the peak resident-memory growth of one call, measured by resetting the kernel's VmHWM
high-water mark; glibc's mmap threshold is fixed so freed arrays leave the resident set). Inputs exist
before the measured call, so the memory column counts outputs + temporaries only. Both tools start
from numpy float32 inputs and end with numpy outputs.

The outputs of the two tools are compared in the same run: KS maps (same array frame, see
CONVENTION below) and binned shear maps + per-pixel counts on the same pixel edges.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from memory import reset_peak_rss, status_kb  # benchmarks/memory.py

ROOT = Path(__file__).resolve().parents[1]
PIX_ARCMIN = 1.0  # pixel size of every grid
SIGMA_E = 0.26  # per-component shape noise
NBAR = 15.0  # galaxies per pixel (15 arcmin⁻² at 1' pixels)
N_GAL = 1_000_000  # galaxies in the binning benchmark
BIN_NPIX = 256
CENTER = (150.0, 2.0)  # deg; COSMOS-like field centre
MASK_FRACTION = 0.10

CONVENTION = """\
Convention mapping (lenspack 1.0.0 ↔ massmap): ks93(g1, g2) reads arrays as (row, column) = (y, x)
with k1 = fftfreq(ncol) along x and k2 = fftfreq(nrow) along y, and returns
κE^ = [(k1²−k2²) g1^ + 2 k1 k2 g2^]/k², κB^ = [(k1²−k2²) g2^ − 2 k1 k2 g1^]/k², ℓ = 0 set to zero.
That is massmap's κE + iκB = ifft(D* fft(γ1 + iγ2)) in the same array frame: on identical (ny, nx)
arrays the maps agree with no sign change or transpose, except on the Nyquist row/column of even
grids, where ℓ = ±½ alias and the two codes resolve the kernel's sign ambiguity differently (massmap
keeps P and KS exact inverses; lenspack takes the real part of each filtered component). On the sky,
massmap's frame has x towards West (decreasing RA). Binning with lenspack's bin2d(x=RA, y=Dec) gives the
mirrored frame (x towards East): there the same shear reads (e1, −e2), and ks93 returns κE mirrored in
x and −κB mirrored in x (checked numerically to 2e-7). The benchmark bins with
x, y = FlatGrid.world_to_pixel(RA, Dec), so both tools see one frame."""


# --------------------------------------------------------------------------------------------
# Process-level measurement helpers
# --------------------------------------------------------------------------------------------





class CompileClock:
    """Sums JAX's trace + lowering + XLA compile durations reported while it is active."""

    EVENTS = ("/jax/core/compile/jaxpr_trace_duration", "/jax/core/compile/jaxpr_to_mlir_module_duration",
              "/jax/core/compile/backend_compile_duration")

    def __init__(self):
        import jax

        self.total = 0.0
        self.active = False
        jax.monitoring.register_event_duration_secs_listener(self._listen)

    def _listen(self, name, duration, **_):
        if self.active and name in self.EVENTS:
            self.total += duration

    def __enter__(self):
        self.total, self.active = 0.0, True
        return self

    def __exit__(self, *exc):
        self.active = False


# --------------------------------------------------------------------------------------------
# Inputs (deterministic, generated outside every measured call)
# --------------------------------------------------------------------------------------------

def random_shear(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    g = rng.normal(0.0, 0.05, size=(2, n, n)).astype(np.float32)
    return g[0], g[1]


def mode_var_grid(n: int, cl_path: str) -> np.ndarray:
    from massmap.ops.spectra import cl_on_grid, mode_variance

    tab = np.load(cl_path)
    return mode_variance(cl_on_grid(tab[0], tab[1], n, n, PIX_ARCMIN), PIX_ARCMIN).astype(np.float32)


def signal_shear(n: int, cl_path: str, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free shear of a Gaussian κ field with the benchmark's C_ℓ."""
    import jax

    from massmap.ops.shear import kappa_to_shear
    from massmap.ops.spectra import cl_on_grid, gaussian_random_field

    tab = np.load(cl_path)
    kappa = gaussian_random_field(jax.random.PRNGKey(seed), cl_on_grid(tab[0], tab[1], n, n, PIX_ARCMIN),
                                  PIX_ARCMIN)
    g1, g2 = kappa_to_shear(kappa)
    return np.asarray(g1, np.float32), np.asarray(g2, np.float32)


def wiener_uniform_inputs(n: int, cl_path: str):
    g1, g2 = signal_shear(n, cl_path)
    sigma = SIGMA_E / math.sqrt(NBAR)
    rng = np.random.default_rng(2)
    g1 = (g1 + sigma * rng.standard_normal((n, n))).astype(np.float32)
    g2 = (g2 + sigma * rng.standard_normal((n, n))).astype(np.float32)
    return g1, g2, mode_var_grid(n, cl_path), float(sigma**2)


def wiener_masked_inputs(n: int, cl_path: str):
    """10% of pixels masked at random; per-pixel noise σ_e²/N with N ~ Poisson(NBAR)."""
    g1, g2 = signal_shear(n, cl_path)
    rng = np.random.default_rng(3)
    counts = rng.poisson(NBAR, size=(n, n))
    mask = (rng.random((n, n)) >= MASK_FRACTION) & (counts > 0)
    var = np.where(mask, SIGMA_E**2 / np.maximum(counts, 1), np.inf)
    sigma = np.sqrt(np.where(mask, var, 0.0))
    g1 = np.where(mask, g1 + sigma * rng.standard_normal((n, n)), 0.0).astype(np.float32)
    g2 = np.where(mask, g2 + sigma * rng.standard_normal((n, n)), 0.0).astype(np.float32)
    ninv = np.where(mask, 1.0 / var, 0.0).astype(np.float32)
    return g1, g2, ninv, mode_var_grid(n, cl_path), float(1.0 - mask.mean())


def synthetic_catalog(n_gal: int = N_GAL, npix: int = BIN_NPIX, seed: int = 4):
    """A ShearCatalog of ``n_gal`` galaxies spread uniformly over an npix² grid of 1' pixels."""
    from massmap.geometry import FlatGrid
    from massmap.binning import ShearCatalog

    grid = FlatGrid(CENTER[0], CENTER[1], PIX_ARCMIN, npix, npix)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.5, npix - 0.5, n_gal)
    y = rng.uniform(-0.5, npix - 0.5, n_gal)
    ra, dec = grid.pixel_to_world(x, y)
    e1 = 0.02 * np.sin(2 * np.pi * x / npix) + SIGMA_E * rng.standard_normal(n_gal)
    e2 = 0.02 * np.cos(2 * np.pi * y / npix) + SIGMA_E * rng.standard_normal(n_gal)
    while np.any(bad := np.hypot(e1, e2) > 1.0):  # redraw the shape noise of the rare |e| > 1
        e1[bad] = SIGMA_E * rng.standard_normal(int(bad.sum()))
        e2[bad] = SIGMA_E * rng.standard_normal(int(bad.sum()))
    w = rng.uniform(0.2, 1.0, n_gal)
    cat = ShearCatalog("synthetic", ra, dec, e1, e2, w, np.ones((2, ra.size)), ra.size, 0)
    return cat, grid


def lenspack_binning(cat, grid, project: bool = True, xy=None):
    from lenspack.utils import bin2d

    x, y = grid.world_to_pixel(cat.ra, cat.dec) if project else xy
    extent = (-0.5, grid.nx - 0.5, -0.5, grid.ny - 0.5)
    return bin2d(x, y, npix=(grid.nx, grid.ny), v=(cat.e1, cat.e2), w=cat.weight, extent=extent)


# --------------------------------------------------------------------------------------------
# Cases: name → builder(n, cl_path) returning (call, info); call() runs the measured work once
# --------------------------------------------------------------------------------------------

def case_ks_massmap(n, cl_path, jit=False):
    import jax
    import jax.numpy as jnp

    from massmap.ops.shear import kaiser_squires

    g1, g2 = random_shear(n)
    fn = jax.jit(kaiser_squires, static_argnums=2) if jit else kaiser_squires

    def call():
        ke, kb = fn(jnp.asarray(g1), jnp.asarray(g2), 0)
        return np.asarray(ke), np.asarray(kb)

    return call, {}


def case_ks_lenspack(n, cl_path):
    from lenspack.image.inversion import ks93

    g1, g2 = random_shear(n)
    return (lambda: ks93(g1, g2)), {}


def case_wiener_fourier(n, cl_path, jit=False):
    import jax
    import jax.numpy as jnp

    from massmap.ops.wiener import wiener_fourier

    g1, g2, s, var = wiener_uniform_inputs(n, cl_path)
    s = jnp.asarray(s)
    fn = jax.jit(wiener_fourier) if jit else wiener_fourier

    def call():
        return np.asarray(fn(jnp.asarray(g1), jnp.asarray(g2), s, var))

    return call, {}


def case_wiener_cg(n, cl_path):
    from massmap.ops.wiener import wiener_cg

    g1, g2, ninv, s, masked = wiener_masked_inputs(n, cl_path)
    info: dict = {"masked_fraction": masked}

    def call():
        kappa, cg = wiener_cg(g1, g2, ninv, s, tol=1e-5, max_iter=1000)
        info.update(iterations=cg.iterations, residual=cg.residual, converged=cg.converged)
        return np.asarray(kappa)

    return call, info


def case_bin_massmap(n, cl_path):
    from massmap.binning import bin_shear

    cat, grid = synthetic_catalog(npix=n)
    return (lambda: bin_shear(cat, grid, SIGMA_E)), {"n_gal": cat.n}


def case_bin_lenspack(n, cl_path):
    cat, grid = synthetic_catalog(npix=n)
    return (lambda: lenspack_binning(cat, grid)), {"n_gal": cat.n}


def case_bin_lenspack_only(n, cl_path):
    cat, grid = synthetic_catalog(npix=n)
    xy = grid.world_to_pixel(cat.ra, cat.dec)
    return (lambda: lenspack_binning(cat, grid, project=False, xy=xy)), {"n_gal": cat.n}


def case_tan_projection(n, cl_path):
    cat, grid = synthetic_catalog(npix=n)
    return (lambda: grid.world_to_pixel(cat.ra, cat.dec)), {"n_gal": cat.n}


CASES = {
    "ks_massmap": case_ks_massmap,
    "ks_massmap_jit": lambda n, c: case_ks_massmap(n, c, jit=True),
    "ks_lenspack": case_ks_lenspack,
    "wiener_fourier": case_wiener_fourier,
    "wiener_fourier_jit": lambda n, c: case_wiener_fourier(n, c, jit=True),
    "wiener_cg": case_wiener_cg,
    "bin_massmap": case_bin_massmap,
    "bin_lenspack": case_bin_lenspack,
    "bin_lenspack_only": case_bin_lenspack_only,
    "tan_projection": case_tan_projection,
}
USES_JAX = {"ks_massmap", "ks_massmap_jit", "wiener_fourier", "wiener_fourier_jit", "wiener_cg"}


def worker(case: str, n: int, cl_path: str, mode: str) -> dict:
    """Run one case in this (fresh) process and return its measurements."""
    clock = CompileClock() if case in USES_JAX else None
    call, info = CASES[case](n, cl_path)
    out: dict = {"case": case, "n": n}
    if mode == "memory":
        call()  # warm-up: compile, caches, FFT plans
        ok = reset_peak_rss()
        rss0 = status_kb("VmRSS")
        call()  # its outputs were resident at return, so the high-water mark includes them
        out["peak_mb"] = (status_kb("VmHWM") - rss0) / 1024.0 if ok else None
        return out
    t0 = time.perf_counter()
    if clock is not None:
        with clock:
            call()
        out["first_compile_s"] = clock.total
    else:
        call()
    out["first_s"] = time.perf_counter() - t0
    t0 = time.perf_counter()
    call()
    est = time.perf_counter() - t0
    reps = int(min(15, max(3, math.ceil(2.0 / max(est, 1e-6)))))
    times, compile_s = [], []
    for _ in range(reps):
        t0 = time.perf_counter()
        if clock is not None:
            with clock:
                call()
            compile_s.append(clock.total)
        else:
            call()
        times.append(time.perf_counter() - t0)
    out.update(median_s=float(np.median(times)), min_s=float(np.min(times)), repeats=reps)
    if clock is not None:
        out["steady_compile_s"] = float(np.median(compile_s))
    out.update(info)
    return out


def run_worker(case: str, n: int, cl_path: str, mode: str, timeout: float = 600.0) -> dict:
    env = dict(os.environ)
    if mode == "memory":
        env["MALLOC_MMAP_THRESHOLD_"] = "65536"  # fixed threshold: large frees go back to the OS
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", case, "--n", str(n), "--cl", cl_path,
           "--mode", mode]
    res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout, cwd=ROOT)
    if res.returncode != 0:
        raise RuntimeError(f"worker {case} n={n} ({mode}) failed:\n{res.stderr[-3000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


# --------------------------------------------------------------------------------------------
# Agreement checks (in the parent process)
# --------------------------------------------------------------------------------------------

def _drop_nyquist(a: np.ndarray) -> np.ndarray:
    """Zero the Nyquist row and column (even sizes) of a real map's Fourier transform."""
    f = np.fft.fft2(np.asarray(a, np.float64))
    ny, nx = f.shape
    if ny % 2 == 0:
        f[ny // 2, :] = 0
    if nx % 2 == 0:
        f[:, nx // 2] = 0
    return np.fft.ifft2(f).real


def check_ks(n: int) -> dict:
    """KS maps of both tools on the same float32 input.

    On even grids the spin-2 kernel is ambiguous on the Nyquist row/column (ℓ = −½ and +½ alias, and
    2ℓxℓy changes sign between them): massmap applies D* to γ1 + iγ2 and keeps the real/imaginary
    parts; lenspack filters γ1 and γ2 separately and keeps each real part. So on white-noise shear
    the maps differ there and only there; on shear without Nyquist power they must agree to float32.
    """
    import jax.numpy as jnp
    from lenspack.image.inversion import ks93

    from massmap.ops.shear import kaiser_squires

    def both(g1, g2):
        g1, g2 = g1.astype(np.float32), g2.astype(np.float32)
        ours = [np.asarray(a, np.float64) for a in kaiser_squires(jnp.asarray(g1), jnp.asarray(g2), 0)]
        return ours, ks93(g1, g2)

    def rel(a, b):
        return float(np.max(np.abs(a - b)) / np.max(np.abs(b)))

    g1, g2 = random_shear(n)
    (ke, kb), (le, lb) = both(_drop_nyquist(g1), _drop_nyquist(g2))
    smooth = max(rel(ke, le), rel(kb, lb))
    (ke, kb), (le, lb) = both(g1, g2)
    white = max(rel(ke, le), rel(kb, lb))
    white_off_nyq = max(float(np.max(np.abs(_drop_nyquist(ke - le))) / np.max(np.abs(le))),
                        float(np.max(np.abs(_drop_nyquist(kb - lb))) / np.max(np.abs(lb))))
    # float32 FFTs of n² points round at ~1e-7 · log2(n²); 1e-5 of the map's peak is float32 level
    return {"n": n, "rel_max_diff_no_nyquist_input": smooth, "rel_max_diff_white_input": white,
            "rel_max_diff_white_input_off_nyquist": white_off_nyq,
            "ok": bool(smooth < 1e-5 and white_off_nyq < 1e-5)}


def check_binning() -> dict:
    from lenspack.utils import bin2d

    from massmap.binning import bin_shear

    cat, grid = synthetic_catalog()
    ours = bin_shear(cat, grid, SIGMA_E)
    x, y = grid.world_to_pixel(cat.ra, cat.dec)
    extent = (-0.5, grid.nx - 0.5, -0.5, grid.ny - 0.5)
    l1, l2 = bin2d(x, y, npix=(grid.nx, grid.ny), v=(cat.e1, cat.e2), w=cat.weight, extent=extent)
    counts = bin2d(x, y, npix=(grid.nx, grid.ny), extent=extent)
    d = max(float(np.max(np.abs(ours.g1 - l1))), float(np.max(np.abs(ours.g2 - l2))))
    n_count_diff = int(np.sum(counts.astype(np.int64) != ours.count))
    # massmap stores float32 maps: |γ| ≲ 1 so 1e-6 absolute is float32 rounding
    return {"max_abs_dgamma": d, "pixels_with_count_mismatch": n_count_diff, "n_gal": cat.n,
            "ok": bool(d < 1e-6 and n_count_diff == 0)}


# --------------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------------

def machine_line() -> str:
    import jax

    import lenspack

    cpu = "unknown CPU"
    try:
        cpu = re.search(r"model name\s*:\s*(.+)", Path("/proc/cpuinfo").read_text()).group(1).strip()
    except (OSError, AttributeError):
        pass
    mem_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    load = os.getloadavg()[0]
    return (f"{cpu}, {os.cpu_count()} cores, {mem_gb:.0f} GiB RAM, 1-min load average {load:.1f} at start; Python {platform.python_version()}, "
            f"numpy {np.__version__}, jax {jax.__version__} (CPU), lenspack {getattr(lenspack, '__version__', '1.0.0')}")


def fmt_ms(s) -> str:
    if s is None:
        return "—"
    ms = 1e3 * s
    return f"{ms:.0f}" if ms >= 100 else f"{ms:.1f}" if ms >= 1 else f"{ms:.2f}"


def fmt_mb(m) -> str:
    if m is None:
        return "—"
    return "< 0.1" if m < 0.05 else f"{m:.0f}" if m >= 10 else f"{m:.1f}"


def table(results: dict) -> str:
    def get(case, n):
        return results.get((case, n), {})

    head = ("| benchmark | grid | massmap median [ms] | massmap 1st call [ms] (compile) | lenspack median [ms] "
            "| lenspack ÷ massmap | massmap peak ΔRSS [MB] | lenspack peak ΔRSS [MB] | notes |")
    rows = [head, "|" + "---|" * 9]

    def row(label, n, ours, theirs=None, notes=""):
        a, b = get(ours, n), (get(theirs, n) if theirs else {})
        first = (f"{fmt_ms(a.get('first_s'))} ({fmt_ms(a.get('first_compile_s'))})"
                 if "first_compile_s" in a else fmt_ms(a.get("first_s")))
        ratio = (f"{b['median_s'] / a['median_s']:.2f}×" if theirs and "median_s" in a and "median_s" in b
                 else "—")
        rows.append(f"| {label} | {n}² | {fmt_ms(a.get('median_s'))} | {first} | "
                    f"{fmt_ms(b.get('median_s')) if theirs else 'n/a'} | {ratio} | {fmt_mb(a.get('peak_mb'))} | "
                    f"{fmt_mb(b.get('peak_mb')) if theirs else 'n/a'} | {notes} |")

    for n in SIZES:
        row("KS `kaiser_squires(pad=0)` vs `ks93`", n, "ks_massmap", "ks_lenspack", "massmap eager API")
        row("KS `jax.jit(kaiser_squires)` vs `ks93`", n, "ks_massmap_jit", "ks_lenspack", "jitted once")
    for n in SIZES:
        row("Wiener closed form `wiener_fourier`", n, "wiener_fourier", None, "eager API; no lenspack counterpart")
        row("Wiener closed form, `jax.jit`", n, "wiener_fourier_jit", None, "jitted once")
    for n in SIZES:
        a = get("wiener_cg", n)
        notes = (f"{a.get('iterations')} PCG iterations to relative residual {a.get('residual', float('nan')):.1e}, "
                 f"{100 * a.get('masked_fraction', float('nan')):.1f}% masked; "
                 f"{fmt_ms(a.get('steady_compile_s'))} ms of every warm call is re-trace + XLA compile")
        row("Wiener PCG `wiener_cg` (mask + varying noise)", n, "wiener_cg", None, notes)
    only = get("bin_lenspack_only", BIN_NPIX)
    proj = get("tan_projection", BIN_NPIX)
    notes = (f"{get('bin_massmap', BIN_NPIX).get('n_gal', N_GAL):,} galaxies, same TAN projection "
             f"(FlatGrid.world_to_pixel, {fmt_ms(proj.get('median_s'))} ms) in both; "
             f"bin2d alone {fmt_ms(only.get('median_s'))} ms")
    row("Binning: `bin_shear` vs projection + `bin2d`", BIN_NPIX, "bin_massmap", "bin_lenspack", notes)
    return "\n".join(rows)


SIZES = (256, 1024)
PLAN = ([("ks_massmap", n) for n in SIZES] + [("ks_massmap_jit", n) for n in SIZES]
        + [("ks_lenspack", n) for n in SIZES] + [("wiener_fourier", n) for n in SIZES]
        + [("wiener_fourier_jit", n) for n in SIZES] + [("wiener_cg", n) for n in SIZES]
        + [(c, BIN_NPIX) for c in ("bin_massmap", "bin_lenspack", "bin_lenspack_only", "tan_projection")])


def benchmark_cl(path: str) -> None:
    """Signal C_ℓ (jax-cosmo Limber halofit, default massmap cosmology and n(z)) saved as a 2×k table."""
    from massmap.config import load_config
    from massmap.config.physics import cosmology_of, sources_of
    from massmap.cosmology import kappa_cl

    cfg = load_config()
    ell_max = 2 * np.pi * 0.5 * math.sqrt(2) / (PIX_ARCMIN * np.pi / 180 / 60)  # corner of the FFT grid
    ell = np.geomspace(1.0, 1.5 * ell_max, 48)  # log-log interpolated onto the grids
    np.save(path, np.vstack([ell, kappa_cl(cosmology_of(cfg.cosmology), sources_of(cfg.sources), ell)]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--worker", choices=sorted(CASES), help=argparse.SUPPRESS)
    ap.add_argument("--n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--cl", help=argparse.SUPPRESS)
    ap.add_argument("--mode", choices=("time", "memory"), default="time", help=argparse.SUPPRESS)
    ap.add_argument("--json", default=str(ROOT / ".bench" / "bench_reconstruct.json"),
                    help="where to write the raw measurements (default: .bench/bench_reconstruct.json)")
    ap.add_argument("--render", metavar="JSON", help="print the report of saved measurements; run nothing")
    args = ap.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.n, args.cl, args.mode)))
        return 0

    if args.render:
        saved = json.loads(Path(args.render).read_text())
        results = {(r["case"], r["n"]): r for r in saved["results"]}
        print(report(saved["meta"], results, saved["checks"]))
        return 0

    t_start = time.perf_counter()
    meta = {"machine": machine_line()}
    print("# massmap foundation benchmarks: KS, Wiener, catalog binning (vs lenspack)\n", flush=True)
    results: dict = {}
    with tempfile.TemporaryDirectory() as tmp:
        cl_path = str(Path(tmp) / "cl.npy")
        benchmark_cl(cl_path)
        for case, n in PLAN:
            t0 = time.perf_counter()
            r = run_worker(case, n, cl_path, "time")
            r.update(run_worker(case, n, cl_path, "memory"))
            results[(case, n)] = r
            print(f"  {case:>20s} {n:5d}²: median {fmt_ms(r['median_s'])} ms, first {fmt_ms(r['first_s'])} ms, "
                  f"peak ΔRSS {fmt_mb(r.get('peak_mb'))} MB  [{time.perf_counter() - t0:.0f} s]",
                  file=sys.stderr, flush=True)
    checks = {"ks": [check_ks(n) for n in SIZES], "binning": check_binning()}
    meta.update(load_end=os.getloadavg()[0], wall_s=time.perf_counter() - t_start)
    print(report(meta, results, checks))

    out = Path(args.json)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "checks": checks, "results": list(results.values())}, indent=1))
    ok = all(c["ok"] for c in checks["ks"]) and checks["binning"]["ok"]
    return 0 if ok else 1


def report(meta: dict, results: dict, checks: dict) -> str:
    """The markdown report: machine, table, agreement checks, conventions, notes."""
    lines = [f"Machine: {meta['machine']}", "", table(results), "", "Agreement (same inputs, same run):"]
    for c in checks["ks"]:
        lines.append(f"- KS {c['n']}²: max|Δκ|/max|κ| (E and B) = {c['rel_max_diff_no_nyquist_input']:.1e} on "
                     f"shear without Nyquist modes; on white-noise shear {c['rel_max_diff_white_input']:.1e}, of "
                     f"which {c['rel_max_diff_white_input_off_nyquist']:.1e} off the Nyquist row/column "
                     f"→ {'OK' if c['ok'] else 'MISMATCH'} (float32 level: < 1e-5)")
    b = checks["binning"]
    lines.append(f"- Binning {b['n_gal']:,} galaxies on {BIN_NPIX}²: max|Δγ| = {b['max_abs_dgamma']:.1e}, "
                 f"pixels whose count differs: {b['pixels_with_count_mismatch']} → {'OK' if b['ok'] else 'MISMATCH'}")
    lines += ["", CONVENTION, ""]
    lines.append(f"Notes: medians of 3–15 warm calls; '1st call' is a fresh process's first call, with JAX "
                 f"trace + compile time in parentheses. Peak ΔRSS = growth of the resident set during one warm "
                 f"call (outputs + temporaries). XLA may use both cores; numpy's FFT uses one. "
                 f"1-min load average at the end {meta['load_end']:.1f}. Total wall time {meta['wall_s']:.0f} s.")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
