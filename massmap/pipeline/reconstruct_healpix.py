"""``massmap reconstruct --geometry healpix``: shear catalog → curved-sky κ maps.

Reads the catalog with the flat path's column mapping, selection and calibration
(:func:`massmap.pipeline.inputs.read_shear_catalog`), bins it on HEALPix pixels (RING), and writes healpy-format
maps: KAPPA_KS, KAPPA_KS_B, KAPPA_WIENER (harmonic space on the sphere), KAPPA_MEAN, KAPPA_STD,
KAPPA_MAP, TILE_WEIGHT (flat-sky posterior on gnomonic tiles, :mod:`massmap.pipeline.reconstruct_tiles`),
GAMMA1, GAMMA2 (native frame), NOISE_STD, MASK, COUNT.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import healpy as hp
import numpy as np
from tqdm.auto import tqdm

from massmap.binning import HealpixShear, bin_shear_healpix
from massmap.config import Config
from massmap.errors import InputError
from massmap.io.healpix import write_healpix_maps
from massmap.plots.healpix import plot_healpix_maps
from massmap.io.maps import is_binned_shear
from massmap.io.output import check_output, provenance, write_config_sidecar
from massmap.pipeline.reconstruct import check_finite
from massmap.pipeline.inputs import parse_methods, read_shear_catalog, signal_cl
from massmap.pipeline.reconstruct_tiles import TILE_METHODS, posterior_tiles
from massmap.pipeline.wiener import uniform_noise, use_closed_form, warn_unconverged
from massmap.sphere.harmonic import kaiser_squires_sphere
from massmap.sphere.wiener import cl_at_multipoles, wiener_cg_sphere, wiener_harmonic


METHODS_HEALPIX = ("ks", "wiener") + TILE_METHODS


def compute_maps_healpix(data: HealpixShear, config: Config, methods: tuple[str, ...],
                         progress: bool = True) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The κ maps of ``methods`` (full-sky RING arrays) and a dict of run information."""
    hc = config.healpix
    lmax = hc.ell_max
    out: dict[str, np.ndarray] = {}
    info: dict[str, Any] = {"lmax": lmax}
    if "ks" in methods:
        out["KAPPA_KS"], out["KAPPA_KS_B"] = kaiser_squires_sphere(data.g1, data.g2, lmax, hc.smoothing_fwhm_arcmin,
                                                                   hc.iterations)
    if "wiener" in methods:
        ell_tab, cl_tab, source = signal_cl(config, float(lmax))
        cl = cl_at_multipoles(ell_tab, cl_tab, lmax)
        info["wiener_cl"] = source
        exact = uniform_noise(data.noise_std, data.mask)
        if use_closed_form(config.wiener.solver, exact, "the harmonic closed form",
                           "every HEALPix pixel observed with uniform noise"):
            var = float(np.mean(data.noise_std**2))
            klm = wiener_harmonic(data.g1, data.g2, var, cl, hc.iterations)
            info["wiener_solver"] = "harmonic closed form"
        else:
            with np.errstate(divide="ignore"):
                ninv = np.where(data.mask > 0, 1.0 / np.maximum(data.noise_std, 1e-30) ** 2, 0.0)
            bar = tqdm(total=config.wiener.max_iter, desc="Wiener CG (sphere)", unit="it", disable=not progress,
                       leave=False)

            def tick(it, res):
                bar.update(1)
                bar.set_postfix(residual=f"{res:.1e}")

            try:
                klm, cg = wiener_cg_sphere(data.g1, data.g2, ninv, cl, tol=config.wiener.tol,
                                           max_iter=config.wiener.max_iter, callback=tick)
            finally:
                bar.close()
            info.update(wiener_solver="conjugate gradients (harmonic space)", wiener_iterations=cg.iterations,
                        wiener_residual=cg.residual, wiener_converged=cg.converged)
            warn_unconverged(cg, config.wiener.tol)
        out["KAPPA_WIENER"] = hp.alm2map(klm, data.nside, lmax=lmax)
    return out, info


def parse_healpix_methods(method: str) -> tuple[str, ...]:
    """``--method`` with --geometry healpix: 'all' is ks,wiener (the tiled posterior is asked for by name)."""
    return ("ks", "wiener") if method == "all" else parse_methods(method, METHODS_HEALPIX,
                                                                  where="with --geometry healpix")


def read_healpix_shear(input_path: str | Path, config: Config):
    """(catalog, σ_e, HealpixShear at healpix.nside, info) of a shear catalog."""
    if is_binned_shear(str(input_path)):
        raise InputError(f"'{input_path}' is a flat binned shear map; --geometry healpix needs a shear catalog")
    cat, sigma_e, info = read_shear_catalog(input_path, config, maps="HEALPix")
    return cat, sigma_e, bin_shear_healpix(cat, config.healpix.nside, sigma_e), info


def run_reconstruct_healpix(config: Config, input_path: str | Path, output: str | Path, method: str = "all",
                            overwrite: bool = False, plot: bool = True, progress: bool = False) -> dict[str, Any]:
    """Read the catalog, compute the requested HEALPix maps, write OUT.fits (+ .config.yaml, .png).

    ``method``: a comma-separated list of ks, wiener, posterior, map; 'all' is ks,wiener (the harmonic
    methods). ``progress``: tqdm bars (Wiener CG iterations, posterior tiles).
    """
    out_path = check_output(output, overwrite)
    methods = parse_healpix_methods(method)
    cat, sigma_e, data, info = read_healpix_shear(input_path, config)
    maps, run_info = compute_maps_healpix(data, config, methods, progress=progress)
    info.update(run_info)
    tables = {}
    if set(TILE_METHODS) & set(methods):
        tile_maps, tile_info, tiles = posterior_tiles(cat, sigma_e, data.mask, config, methods, progress)
        maps.update(tile_maps)
        info.update(tile_info)
        if tiles:
            tables["TILES"] = tiles
    return write_healpix_reconstruction(out_path, config, input_path, data, methods, maps, info, tables, plot)


def write_healpix_reconstruction(out_path: Path, config: Config, input_path: str | Path, data, methods, maps: dict,
                                 info: dict, tables: dict, plot: bool, extra_inputs: dict | None = None) -> dict:
    """Write the HEALPix reconstruction file (+ .config.yaml, .png) with its provenance; returns ``info``."""
    hc = config.healpix
    columns = dict(maps)
    columns.update(GAMMA1=data.g1, GAMMA2=data.g2, NOISE_STD=data.noise_std, MASK=data.mask,
                   COUNT=data.count.astype(np.int32))
    check_finite(columns, data.noise_std, data.mask, observed_only=True)
    inputs = {"input": Path(input_path).name, "methods": ",".join(methods), "geometry": "healpix"}
    inputs.update({k: v for k, v in info.items() if k in ("rows_read", "rows_used", "sigma_e", "wiener_iterations",
                                                           "wiener_residual", "n_tiles", "prior")})
    inputs.update(extra_inputs or {})
    cards = {"LMAX": (info["lmax"], "largest multipole of the transforms"),
             "FWHM": (hc.smoothing_fwhm_arcmin, "[arcmin] Gaussian smoothing of KAPPA_KS(_B)"),
             "SHEARFRM": ("NATIVE", "shear frame: +x West, +y North; Q=-G1, U=G2")}
    if "n_tiles" in info:
        cards.update(NTILES=(info["n_tiles"], "gnomonic tiles of the posterior methods"),
                     TILESIZE=(hc.tile_size_deg, "[deg] tile side"),
                     TILEOVLP=(hc.tile_overlap_deg, "[deg] tile overlap (cos^2 taper width)"),
                     TILEPIX=(info["tile_pixel_size_arcmin"], "[arcmin] tile pixel size"),
                     TILENPIX=(info["tile_npix"], "tile pixels per side (without pad)"))
    write_healpix_maps(out_path, data.nside, columns, provenance(config, "reconstruct --geometry healpix", inputs),
                       observed=data.mask > 0, partial=hc.partial, cards=cards, tables=tables)
    write_config_sidecar(out_path, config)
    if plot:
        shown = {k: v for k, v in maps.items() if k != "TILE_WEIGHT"}
        plot_healpix_maps(out_path.with_suffix(".png"), shown, data.mask,
                          title=f"massmap reconstruct (HEALPix nside {data.nside}): {Path(input_path).name}",
                          view=hc.view)
    info.update(output=str(out_path), maps=list(maps), nside=data.nside, n_observed=data.n_observed,
                f_sky=data.f_sky)
    return info
