"""``massmap summarize``: S/N maps, peaks, spectra, null tests and calibration of a reconstruction.

Reads a massmap reconstruction (FITS: KAPPA_KS / KAPPA_KS_B / KAPPA_WIENER / KAPPA_MEAN / KAPPA_STD /
KAPPA_SAMPLES / KAPPA_MAP with GAMMA1, GAMMA2, NOISE_STD, MASK and an optional DIAGNOSTICS table),
optionally a truth κ map on the same grid and a table of sky positions, and writes into one folder:
metrics.json, report.html, PNG figures, peaks.fits, snr.fits (and positions.fits). The folder is built
under a temporary sibling name and renamed when complete. See docs/summarize.md.
"""
from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import numpy as np
from astropy.io import fits
from astropy.wcs import WCS
from tqdm import tqdm

from massmap.config import Config, ConfigError, load_config
from massmap.geometry import FlatGrid, grid_from_wcs
from massmap.io.catalog import COLUMN_ALIASES, open_fits
from massmap.io.inputs import reads
from massmap.io.maps import config_from_header, read_kappa_image, write_maps
from massmap.io.output import InputError, provenance, write_config_sidecar, writing
from massmap.ops.spectra import ell_grid
from massmap.summarize import stats

# Extension holding each method's κ map, in report order, and how methods are called in figures.
METHOD_EXTS = {"ks": "KAPPA_KS", "wiener": "KAPPA_WIENER", "posterior": "KAPPA_MEAN", "map": "KAPPA_MAP"}
LABELS = {"ks": "Kaiser-Squires", "wiener": "Wiener", "posterior": "posterior mean", "map": "MAP"}
NOISE_STREAM = 101  # fold_in tags of the realisation keys (named streams keep draws independent)
SIGNAL_STREAM = 102


@dataclass
class Reconstruction:
    """The content of a massmap reconstruction file."""

    path: str
    grid: FlatGrid
    header: fits.Header
    images: dict[str, np.ndarray]
    tables: dict[str, dict[str, np.ndarray]]
    methods: tuple[str, ...]
    mask: np.ndarray

    @property
    def has_shear(self) -> bool:
        return all(k in self.images for k in ("GAMMA1", "GAMMA2", "NOISE_STD"))


@dataclass
class MethodSummary:
    name: str
    kappa: np.ndarray  # the map summarised (KS: smoothed)
    std: np.ndarray | None = None  # its per-pixel uncertainty
    snr_source: str = ""
    samples: np.ndarray | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @functools.cached_property
    def snr(self) -> np.ndarray | None:
        return None if self.std is None else stats.signal_to_noise(self.kappa, self.std)


# ------------------------------------------------------------------ inputs

@reads("reconstruction")
def read_reconstruction(path: str | Path) -> Reconstruction:
    """Read a reconstruction; one-line InputError if it is not one."""
    path = str(path)
    with open_fits(path) as hdul:
        header = hdul[0].header.copy()
        names = [h.name for h in hdul]
        methods = tuple(m for m, ext in METHOD_EXTS.items() if ext in names)
        if "KAPPA_MEAN" not in names and "KAPPA_SAMPLES" in names:
            methods = tuple(m for m in METHOD_EXTS if m in methods or m == "posterior")
        if not methods or header.get("ORIGIN") != "massmap" or "MMVERS" not in header:
            raise InputError(f"'{path}' is not a massmap reconstruction (needs massmap provenance and one of "
                             f"{', '.join(METHOD_EXTS.values())}, KAPPA_SAMPLES; found: "
                             f"{', '.join(n for n in names if n != 'PRIMARY') or 'no extensions'})")
        images, tables, wcs_hdr = {}, {}, None
        for h in hdul[1:]:
            if h.is_image and h.data is not None:
                images[h.name] = np.asarray(h.data)
                if wcs_hdr is None and h.name.startswith("KAPPA"):
                    wcs_hdr, shape = h.header, h.data.shape[-2:]
            elif isinstance(h, fits.BinTableHDU) and h.data is not None:
                tables[h.name] = {c: np.asarray(h.data[c]) for c in h.columns.names}
    if wcs_hdr is None:
        raise InputError(f"'{path}' holds no κ image with a celestial WCS")
    grid = grid_from_wcs(WCS(wcs_hdr), shape)
    for k, a in images.items():
        if a.shape[-2:] != shape or a.ndim not in (2, 3) or (a.ndim == 3 and k != "KAPPA_SAMPLES"):
            raise InputError(f"'{path}': extension {k} has shape {a.shape}, expected {shape} "
                             f"(or (n, {shape[0]}, {shape[1]}) for KAPPA_SAMPLES)")
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise InputError(f"'{path}': extension {k} holds NaN or inf values")
    mask = (images["MASK"] > 0) if "MASK" in images else np.ones(shape, bool)
    if not mask.any():
        raise InputError(f"'{path}': MASK has no pixel with data")
    return Reconstruction(path, grid, header, images, tables, methods, mask)


def recorded_config_dict(header: fits.Header) -> dict:
    """The resolved config in a massmap primary header's HISTORY cards."""
    return config_from_header(header)


def recorded_config(recon: Reconstruction) -> Config:
    """The config the reconstruction was made with (pad, Wiener settings, cosmology)."""
    try:
        return load_config(base=recorded_config_dict(recon.header))
    except InputError as err:
        raise InputError(f"'{recon.path}': {err}") from None
    except ConfigError as err:
        raise InputError(f"'{recon.path}': its recorded config is not valid here ({err})") from None


def same_grid(a: FlatGrid, b: FlatGrid) -> bool:
    """Same shape and pixel size, and b's pixel centres at a's (to 10⁻³ pixel)."""
    if a.shape != b.shape or not np.isclose(a.pixel_size_arcmin, b.pixel_size_arcmin, rtol=1e-6):
        return False
    x = np.array([0.0, a.nx - 1.0, 0.0, a.nx - 1.0])
    y = np.array([0.0, 0.0, a.ny - 1.0, a.ny - 1.0])
    bx, by = b.world_to_pixel(*a.pixel_to_world(x, y))
    return bool(np.all(np.abs(bx - x) < 1e-3) and np.all(np.abs(by - y) < 1e-3))


def read_truth(path: str | Path, recon: Reconstruction) -> np.ndarray:
    grid, kappa = read_kappa_image(path)
    if not same_grid(recon.grid, grid):
        def d(g):
            return f"{g.ny}x{g.nx} at {g.pixel_size_arcmin:g} arcmin, centre ({g.center_ra:.5f}, {g.center_dec:.5f})"
        raise InputError(f"truth map '{path}' is on another grid ({d(grid)}) than '{recon.path}' ({d(recon.grid)})")
    return np.asarray(kappa, np.float64)


@reads("positions file")
def read_positions(path: str | Path, grid: FlatGrid) -> dict[str, np.ndarray]:
    """RA/Dec (and NAME/ID when present) of a FITS table; nearest pixel and whether it is on the grid."""
    path = str(path)
    with open_fits(path) as hdul:
        hdu = next((h for h in hdul if isinstance(h, (fits.BinTableHDU, fits.TableHDU))), None)
        if hdu is None or hdu.data is None or len(hdu.data) == 0:
            raise InputError(f"positions file '{path}' holds no table rows (expected a FITS table with RA, DEC)")
        cols = {c.upper(): c for c in hdu.columns.names}

        def find(role, aliases):
            for a in aliases:
                if a.upper() in cols:
                    return cols[a.upper()]
            if role is None:
                return None
            raise InputError(f"positions file '{path}' has no {role} column (tried {', '.join(aliases)}); "
                             f"available: {', '.join(hdu.columns.names)}")

        ra_col, dec_col = find("RA", COLUMN_ALIASES["ra"]), find("Dec", COLUMN_ALIASES["dec"])
        for c in (ra_col, dec_col):
            if np.asarray(hdu.data[c]).dtype.kind not in "iuf" or np.asarray(hdu.data[c]).ndim != 1:
                raise InputError(f"positions file '{path}': column '{c}' must be a numeric scalar column")
        ra = np.asarray(hdu.data[ra_col], np.float64)
        dec = np.asarray(hdu.data[dec_col], np.float64)
        name_col = find(None, ("NAME", "ID", "OBJECT", "CLUSTER"))
        names = ([str(v).strip() for v in hdu.data[name_col]] if name_col
                 else [f"#{i}" for i in range(len(ra))])
    if not (np.all(np.isfinite(ra)) and np.all(np.isfinite(dec)) and np.all(np.abs(dec) <= 90)):
        raise InputError(f"positions file '{path}': RA/Dec must be finite with |Dec| <= 90")
    x, y = grid.world_to_pixel(ra, dec)
    ix, iy = np.floor(x + 0.5).astype(int), np.floor(y + 0.5).astype(int)
    inside = (ix >= 0) & (ix < grid.nx) & (iy >= 0) & (iy < grid.ny)
    return {"name": np.array(names), "ra": ra, "dec": dec, "x": x, "y": y,
            "ix": np.clip(ix, 0, grid.nx - 1), "iy": np.clip(iy, 0, grid.ny - 1), "inside": inside}


# ------------------------------------------------------------------ noise realisations

def _signal_table(rcfg: Config, ny: int, nx: int, pix: float) -> tuple[np.ndarray, np.ndarray]:
    """The reconstruction's signal C_ℓ table, with the same ℓ range as compute_maps asks for."""
    from massmap.pipeline.reconstruct import signal_cl

    ell, cl, _ = signal_cl(rcfg, float(ell_grid(ny + 2 * rcfg.pad, nx + 2 * rcfg.pad, pix).max()))
    return np.asarray(ell, np.float64), np.asarray(cl, np.float64)


def _noise_config(rcfg: Config, chunk: int) -> Config:
    """The recorded config with CG's tolerance divided by √chunk: CG runs jointly on a chunk, so each
    member meets wiener.tol."""
    return dataclasses.replace(rcfg, wiener=dataclasses.replace(rcfg.wiener, tol=rcfg.wiener.tol / np.sqrt(chunk)))


def noise_statistics(recon: Reconstruction, config: Config, rcfg: Config, edges: np.ndarray,
                     progress: bool = True) -> dict[str, Any]:
    """Per-pixel noise σ of the (smoothed) KS E/B and Wiener maps, and E/B spectra per realisation.

    Noise-only binned shear (summarize.noise_method) goes through the reconstruction's own solvers
    (massmap.pipeline.reconstruct.compute_maps with the recorded config), summarize.noise_chunk
    realisations at a time. With summarize.null_signal, the shear of a Gaussian κ field with the
    recorded signal C_ℓ is added to each noise realisation for a second set of KS B-mode spectra,
    which then include the E→B leakage of the mask and the map edges.
    """
    from massmap.ops.shear import kaiser_squires
    from massmap.ops.spectra import cl_on_grid
    from massmap.pipeline.reconstruct import ShearData, compute_maps

    sc = config.summarize
    g = recon.grid
    pix = g.pixel_size_arcmin
    methods = ("ks", "wiener") if "wiener" in recon.methods else ("ks",)
    sig = sc.smoothing_arcmin / pix
    root = jax.random.PRNGKey(config.seed)
    key, key_signal = jax.random.fold_in(root, NOISE_STREAM), jax.random.fold_in(root, SIGNAL_STREAM)
    im = recon.images
    spec = lambda m: stats.masked_spectrum(m, pix, edges, recon.mask)[1]  # noqa: E731
    sums: dict[str, tuple] = {}
    spectra: dict[str, list] = {"e": [], "b": [], "b_signal": []}
    chunk = min(sc.noise_chunk, sc.n_noise)
    need_table = "wiener" in methods and not rcfg.wiener.cl_file
    table = _signal_table(rcfg, g.ny, g.nx, pix) if (sc.null_signal or need_table) else None
    cl_grid = None
    if sc.null_signal:
        cl_grid = cl_on_grid(*table, g.ny + 2 * rcfg.pad, g.nx + 2 * rcfg.pad, pix)
    bar = tqdm(total=sc.n_noise, desc="noise realisations", unit="map", disable=not progress, leave=False)
    ncfg = _noise_config(rcfg, chunk)
    for start in range(0, sc.n_noise, chunk):
        idx = np.arange(start, min(start + chunk, sc.n_noise))
        n1, n2 = stats.shear_noise_realisations(key, im["GAMMA1"], im["GAMMA2"], im["NOISE_STD"],
                                                recon.mask, idx, sc.noise_method)
        data = ShearData(g, n1, n2, np.asarray(im["NOISE_STD"], np.float32), recon.mask.astype(np.uint8))
        out, _ = compute_maps(data, ncfg, methods, cl_table=table if need_table else None)
        maps = {"ks": stats.gaussian_smooth(out["KAPPA_KS"], sig),
                "ks_b": stats.gaussian_smooth(out["KAPPA_KS_B"], sig)}
        if "KAPPA_WIENER" in out:
            maps["wiener"] = np.asarray(out["KAPPA_WIENER"], np.float64)
        for k, v in maps.items():
            s1, s2 = sums.get(k, (0.0, 0.0))
            sums[k] = (s1 + v.sum(axis=0), s2 + (v * v).sum(axis=0))
        spectra["e"].append(spec(out["KAPPA_KS"]))
        spectra["b"].append(spec(out["KAPPA_KS_B"]))
        if cl_grid is not None:
            s1, s2 = stats.signal_shear_realisations(key_signal, cl_grid, pix, rcfg.pad, recon.mask, idx)
            spectra["b_signal"].append(spec(np.asarray(kaiser_squires(n1 + s1, n2 + s2, rcfg.pad)[1])))
        bar.update(len(idx))
    bar.close()
    n = sc.n_noise
    std = {k: np.sqrt(np.maximum(s2 - s1 * s1 / n, 0.0) / (n - 1)) for k, (s1, s2) in sums.items()}
    res = {"std": std, "cl_e": np.concatenate(spectra["e"]), "cl_b": np.concatenate(spectra["b"])}
    if cl_grid is not None:
        res["cl_b_signal"] = np.concatenate(spectra["b_signal"])
    return res


# ------------------------------------------------------------------ the summary

def _method_summaries(recon: Reconstruction, config: Config, noise: dict | None) -> dict[str, MethodSummary]:
    im = recon.images
    sig = config.summarize.smoothing_arcmin / recon.grid.pixel_size_arcmin
    out: dict[str, MethodSummary] = {}
    samples = im.get("KAPPA_SAMPLES")
    post_std = im.get("KAPPA_STD")
    if post_std is None and samples is not None and len(samples) > 1:
        post_std = samples.std(axis=0, ddof=1, dtype=np.float64)
    for m in recon.methods:
        if m == "ks":
            s = MethodSummary(m, stats.gaussian_smooth(im["KAPPA_KS"], sig))
            s.extra["kappa_b"] = stats.gaussian_smooth(im["KAPPA_KS_B"], sig) if "KAPPA_KS_B" in im else None
            if noise is not None:
                s.std, s.snr_source = noise["std"]["ks"], f"{config.summarize.n_noise} noise realisations"
                s.extra["std_b"] = noise["std"]["ks_b"]
        elif m == "wiener":
            s = MethodSummary(m, np.asarray(im["KAPPA_WIENER"], np.float64))
            if noise is not None:
                s.std, s.snr_source = noise["std"]["wiener"], f"{config.summarize.n_noise} noise realisations"
        elif m == "posterior":
            mean = im["KAPPA_MEAN"] if "KAPPA_MEAN" in im else samples.mean(axis=0, dtype=np.float64)
            s = MethodSummary(m, np.asarray(mean, np.float64), post_std, "posterior std", samples)
        else:
            s = MethodSummary(m, np.asarray(im["KAPPA_MAP"], np.float64), post_std,
                              "posterior std" if post_std is not None else "")
        out[m] = s
    return out


def _method_metrics(recon: Reconstruction, s: MethodSummary, config: Config, allowed: np.ndarray, truth,
                    peaks: dict, snr_images: dict) -> dict[str, Any]:
    """The metrics row of one method; adds its peak table and S/N and σ images to ``peaks``/``snr_images``."""
    sc, inside, m = config.summarize, recon.mask, s.name
    k_in = s.kappa[inside]
    row: dict[str, Any] = {"label": LABELS[m], "kappa_rms": float(k_in.std()), "snr_source": s.snr_source or None}
    if m == "ks":
        row["smoothing_arcmin"] = sc.smoothing_arcmin
        if s.extra.get("kappa_b") is not None:
            row["b_over_e_rms"] = float(s.extra["kappa_b"][inside].std() / max(k_in.std(), 1e-300))
    if s.std is not None:
        snr_images[f"SNR_{m.upper()}"], snr_images[f"SIGMA_{m.upper()}"] = s.snr, s.std
        peaks[m] = _peaks(recon, s, config, allowed)
        row.update(n_peaks=len(peaks[m]["RA"]), max_snr=float(s.snr[allowed].max()) if allowed.any() else None,
                   median_sigma=float(np.median(s.std[inside])))
        if m == "ks" and "std_b" in s.extra and s.extra.get("kappa_b") is not None:
            snr_b = stats.signal_to_noise(s.extra["kappa_b"], s.extra["std_b"])
            snr_images["SNR_KS_B"] = snr_b
            row["n_peaks_b"] = len(stats.find_peaks(snr_b, allowed, sc.peak_threshold, sc.max_peaks)[0])
    if truth is not None:
        row.update(rmse=stats.rmse(s.kappa, truth, inside),
                   rmse_mean_removed=stats.rmse(s.kappa, truth, inside, remove_mean=True),
                   pearson_r=stats.pearson_r(s.kappa, truth, inside))
    return row


def _peaks(recon: Reconstruction, s: MethodSummary, config: Config, allowed: np.ndarray) -> dict[str, np.ndarray]:
    sc = config.summarize
    iy, ix = stats.find_peaks(s.snr, allowed, sc.peak_threshold, sc.max_peaks)
    ra, dec = recon.grid.pixel_to_world(ix, iy)
    cols = {"RA": ra, "DEC": dec, "KAPPA": s.kappa[iy, ix], "SNR": s.snr[iy, ix],
            "X": ix.astype(np.int64), "Y": iy.astype(np.int64)}
    if s.samples is not None:
        cols["P_POSITIVE"] = stats.detection_probability(s.samples[:, iy, ix])
    return cols


def check_output_dir(output_dir: str | Path, overwrite: bool) -> Path:
    """Refuse a non-empty folder without ``overwrite``, and never replace a folder that is not a summary."""
    out = Path(output_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"output '{out}' exists and is not a folder")
    if not out.resolve().parent.exists():
        raise InputError(f"the folder holding output '{out}' does not exist")
    if out.is_dir() and any(out.iterdir()):
        if not overwrite:
            raise InputError(f"output folder '{out}' is not empty; pass --overwrite to replace it")
        if not (out / "metrics.json").exists():
            raise InputError(f"output folder '{out}' is not empty and holds no massmap summary (metrics.json); "
                             "refusing to replace it")
    return out


@contextlib.contextmanager
def atomic_dir(out: Path):
    """Yield a temporary sibling folder; on success it replaces ``out``, otherwise it is removed."""
    target = out.resolve()
    with writing(out):  # a read-only or full file system: one line naming the output folder
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".part", dir=target.parent))
    old = None
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        with writing(out):
            os.chmod(tmp, 0o777 & ~umask)
            if target.exists():
                old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
                os.replace(target, old)
            os.replace(tmp, target)
    finally:
        for p in (tmp, old):
            if p is not None and p.exists():
                shutil.rmtree(p)


def run_summarize(config: Config, recon_path: str | Path, output_dir: str | Path, truth: str | Path | None = None,
                  positions: str | Path | None = None, overwrite: bool = False, progress: bool = True) -> dict:
    """Summarize a reconstruction into ``output_dir`` (see the module docstring); returns the metrics."""
    from massmap.summarize import plots, report

    out = check_output_dir(output_dir, overwrite)
    recon = read_reconstruction(recon_path)
    truth_map = read_truth(truth, recon) if truth is not None else None
    pos = read_positions(positions, recon.grid) if positions is not None else None
    sc = config.summarize
    g = recon.grid
    if ("ks" in recon.methods or "wiener" in recon.methods) and not recon.has_shear:
        raise InputError(f"'{recon.path}' has no GAMMA1/GAMMA2/NOISE_STD extensions: the S/N of its KS and "
                         "Wiener maps needs the binned shear")
    rcfg = recorded_config(recon) if recon.has_shear else None
    edges = stats.ell_bin_edges(g.ny, g.nx, g.pixel_size_arcmin, sc.n_ell_bins, sc.ell_min, sc.ell_max)
    ks_maps = None
    if "KAPPA_KS" in recon.images and "KAPPA_KS_B" in recon.images:
        ks_maps = (recon.images["KAPPA_KS"], recon.images["KAPPA_KS_B"])
    elif recon.has_shear:
        from massmap.ops.shear import kaiser_squires

        ke, kb = kaiser_squires(recon.images["GAMMA1"], recon.images["GAMMA2"], rcfg.pad)
        ks_maps = (np.asarray(ke), np.asarray(kb))
    noise = noise_statistics(recon, config, rcfg, edges, progress) if recon.has_shear else None
    sums = _method_summaries(recon, config, noise)
    allowed = stats.allowed_region(recon.mask, sc.edge_arcmin / g.pixel_size_arcmin)
    inside = recon.mask
    metrics: dict[str, Any] = {"methods": {}, "grid": dataclasses.asdict(g)}
    peaks, snr_images = {}, {}
    for m, s in sums.items():
        metrics["methods"][m] = _method_metrics(recon, s, config, allowed, truth_map, peaks, snr_images)

    unsmoothed = {m: recon.images[METHOD_EXTS[m]] if m in ("ks", "wiener", "map") else s.kappa
                  for m, s in sums.items()}
    spectra = stats.spectra_summary(unsmoothed, g.pixel_size_arcmin, edges, recon.mask, ks_maps=ks_maps,
                                    noise=noise, samples=sums["posterior"].samples if "posterior" in sums else None,
                                    truth=truth_map)
    metrics["spectra"] = spectra
    if noise is not None:
        reference = noise.get("cl_b_signal", noise["cl_b"])
        metrics["b_mode_null_test"] = stats.null_test(spectra["ks_eb"]["cl_b"], reference)
        ref = "noise + Gaussian-signal leakage" if sc.null_signal else "noise only"
        metrics["b_mode_null_test"].update(noise_method=sc.noise_method, reference=ref)
    post = sums.get("posterior")
    calib = None
    if truth_map is not None and post is not None and post.samples is not None:
        cov = stats.coverage(post.samples, truth_map, sc.credible_levels, inside)
        z = stats.zscores(truth_map, post.kappa, post.std, inside)
        calib = {"levels": list(sc.credible_levels), "coverage": cov,
                 "binomial_error": stats.binomial_error(sc.credible_levels, int(inside.sum())),
                 "zscore_mean": float(z.mean()), "zscore_std": float(z.std()), "n_pixels": int(inside.sum())}
        metrics["calibration"] = calib
    if pos is not None:
        metrics["positions"] = _position_values(pos, sums, inside)
    metrics["peaks"] = peaks
    metrics["diagnostics"] = recon.tables.get("DIAGNOSTICS")

    inputs = {"recon": Path(recon_path).name}
    if truth is not None:
        inputs["truth"] = Path(truth).name
    if positions is not None:
        inputs["positions"] = Path(positions).name
    prov = provenance(config, "summarize", inputs)
    metrics["provenance"] = prov
    metrics["recon_provenance"] = {k: recon.header.get(k) for k in ("MMVERS", "MMCMD", "DATE", "SEED")}
    try:
        metrics["recon_config"] = recorded_config_dict(recon.header)
    except InputError:
        metrics["recon_config"] = None

    with atomic_dir(out) as tmp:
        if peaks:
            write_maps(tmp / "peaks.fits", g, {}, prov, {f"PEAKS_{m.upper()}": p for m, p in peaks.items()})
        if snr_images:
            smoothed = {"KAPPA_KS_SMOOTHED": sums["ks"].kappa} if "ks" in sums else {}
            write_maps(tmp / "snr.fits", g, {**snr_images, **smoothed, "MASK": recon.mask.astype(np.uint8)}, prov)
        if pos is not None:
            write_maps(tmp / "positions.fits", g, {}, prov, {"POSITIONS": _position_table(metrics["positions"])})
        figures = plots.summary_figures(tmp, g, recon, sums, peaks, spectra, metrics, truth_map, pos, calib,
                                        threshold=sc.peak_threshold, zscore_bins=sc.zscore_bins, dpi=sc.dpi)
        (tmp / "metrics.json").write_text(json.dumps(report.jsonable(metrics), indent=1))
        write_config_sidecar(tmp / "metrics.json", config)
        report.write_report(tmp / "report.html", report.jsonable(metrics), figures)
    metrics["output_dir"] = str(out)
    metrics["figures"] = figures
    return metrics


def _position_values(pos: dict, sums: dict[str, MethodSummary], inside: np.ndarray) -> dict[str, Any]:
    iy, ix = pos["iy"], pos["ix"]
    on = pos["inside"] & inside[iy, ix]
    res: dict[str, Any] = {"name": pos["name"], "ra": pos["ra"], "dec": pos["dec"], "has_data": on}
    nan = np.full(len(iy), np.nan)
    for m, s in sums.items():
        res[f"kappa_{m}"] = np.where(on, s.kappa[iy, ix], nan)
        if s.std is not None:
            res[f"snr_{m}"] = np.where(on, s.snr[iy, ix], nan)
        if s.samples is not None:
            res[f"std_{m}"] = np.where(on, s.std[iy, ix], nan)
            res[f"p_positive_{m}"] = np.where(on, stats.detection_probability(s.samples[:, iy, ix]), nan)
    return res


def _position_table(values: dict[str, Any]) -> dict[str, np.ndarray]:
    cols = {}
    for k, v in values.items():
        v = np.asarray(v)
        cols[k.upper()] = v.astype("S") if v.dtype.kind == "U" else (v.astype(np.int64) if v.dtype == bool else v)
    return cols
