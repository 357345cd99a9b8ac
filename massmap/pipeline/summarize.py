"""``massmap summarize``: S/N maps, peaks, spectra, null tests, calibration and sample statistics of a reconstruction.

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

import numpy as np

from massmap.config import Config
from massmap.io.maps import config_from_header, write_maps
from massmap.io.output import InputError, provenance, write_config_sidecar, writing
from massmap.io.reconstruction import (METHOD_EXTS, Reconstruction, read_positions, read_reconstruction,
                                       read_truth, recorded_config)
from massmap.pipeline.noise import noise_statistics
from massmap.summarize import samples as sample_stats
from massmap.summarize import stats

# How methods are called in figures (METHOD_EXTS: the extension of each method's κ map, report order).
LABELS = {"ks": "Kaiser-Squires", "wiener": "Wiener", "posterior": "posterior mean", "map": "MAP"}


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
    if m == "posterior" and "KAPPA_MEAN_ERR" in recon.images:  # is n_samples enough for the mean?
        err = np.sqrt(np.mean(np.asarray(recon.images["KAPPA_MEAN_ERR"], np.float64)[inside] ** 2))
        row["mean_mc_error_rms"] = float(err)
        if s.std is not None:
            row["mean_mc_error_over_std"] = float(err / max(np.sqrt(np.mean(s.std[inside] ** 2)), 1e-300))
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
    from massmap.plots import summary as plots
    from massmap.summarize import report

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
        metrics["sample_statistics"] = sample_stats.sample_statistics(
            post.samples, truth_map, post.std, inside, allowed, g.pixel_size_arcmin, edges, sc.sample_peak_bins,
            sc.sample_pdf_bins)
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
        metrics["recon_config"] = config_from_header(recon.header)
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
