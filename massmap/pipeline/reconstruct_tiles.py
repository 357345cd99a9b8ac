"""Posterior κ on wide fields: the flat-sky posterior on gnomonic tiles, mosaicked onto HEALPix.

Used by ``massmap reconstruct --geometry healpix --method posterior|map``. The footprint (observed
HEALPix pixels) is covered by tiles (:mod:`massmap.sphere.tiling`); each tile's galaxies, with shear
rotated into the tile frame, are binned on its TAN grid (:func:`massmap.io.catalog.bin_shear`) and
reconstructed by :func:`massmap.pipeline.posterior.posterior_maps` with the ``posterior`` section and
``pad`` of the config (the same prior, Gaussian or learned, for every tile). Tile results are
reprojected and combined with the tiles' cos² taper weights: KAPPA_MEAN, KAPPA_STD (mixture std),
KAPPA_MAP, and TILE_WEIGHT (the weight sum). Tile t samples with key fold_in(fold_in(PRNGKey(seed), 2), t).
"""
from __future__ import annotations

from typing import Any

import healpy as hp
import jax
import numpy as np
from tqdm.auto import tqdm

from massmap.config import Config, ConfigError
from massmap.io.catalog import ShearCatalog, bin_shear
from massmap.ops.spectra import ell_grid
from massmap.pipeline.posterior import PIXEL_RTOL, network_multiple, posterior_maps, prior_name, resolve_prior
from massmap.pipeline.reconstruct import mode_variance_on, signal_cl
from massmap.sphere.tiling import (mosaic_add, mosaic_average, mosaic_init, mosaic_mixture_std, oversampling,
                                   sample_tile_maps, tile_catalog, tile_centres, tile_footprint, tile_grid,
                                   tile_npix, tile_weights, unit_vectors)

TILE_METHODS = ("posterior", "map")
MIN_TILE_WEIGHT = 0.05  # an observed pixel with less total tile weight is not covered by any tile interior


def tile_pixel_size(config: Config, prior, nside: int) -> float:
    """``healpix.tile_pixel_size_arcmin``, defaulting to the learned prior's pixel scale, else the HEALPix
    pixel size; a ConfigError when it does not match a learned prior."""
    given = config.healpix.tile_pixel_size_arcmin
    if prior is None:
        return float(given) if given is not None else float(np.degrees(hp.nside2resol(nside)) * 60.0)
    pp = float(prior.pixel_size_arcmin)
    if given is not None and abs(pp / given - 1.0) > PIXEL_RTOL:
        raise ConfigError(f"config key 'healpix.tile_pixel_size_arcmin' ({given:g}) must equal the learned prior's "
                          f"pixel scale ({pp:g} arcmin); leave it null or use --prior gaussian")
    return pp


def _tile_row(ra, dec, sub: ShearCatalog, binned, res: dict[str, Any]) -> dict[str, float]:
    diag = res.get("DIAGNOSTICS", {})
    rhat = [v for k, v in diag.items() if k.startswith("RHAT_") and np.isfinite(v)]
    return {"RA": ra, "DEC": dec, "N_GALAXIES": sub.n, "N_PIX_DATA": int(np.count_nonzero(binned.mask)),
            "ACCEPTANCE": float(diag.get("ACCEPTANCE_DRAWS", np.nan)),
            "DIVERGENT": int(diag.get("DIVERGENT_DRAWS", 0)),
            "RHAT_MAX": float(max(rhat)) if rhat else np.nan,
            "N_CHAINS_USED": int(diag.get("N_CHAINS_USED", 0)),
            "SCORE_EVALS": float(res.get("n_score_evals", np.nan))}


def posterior_tiles(cat: ShearCatalog, sigma_e: float, mask: np.ndarray, config: Config,
                    methods: tuple[str, ...], progress: bool = True
                    ) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, np.ndarray]]:
    """Tiled posterior maps on the HEALPix grid of ``mask`` (RING): (maps, run info, per-tile table).

    ``methods`` ⊂ ('posterior', 'map'). Pixels covered by no tile are ``healpy.UNSEEN``.
    """
    hc = config.healpix
    wanted = tuple(m for m in TILE_METHODS if m in methods)
    nside = hp.npix2nside(np.asarray(mask).size)
    prior = resolve_prior(config)
    pix = tile_pixel_size(config, prior, nside)
    n = tile_npix(hc.tile_size_deg, pix, config.pad, network_multiple(prior) or 2)
    if n < 8:
        raise ConfigError(f"config key 'healpix.tile_size_deg' ({hc.tile_size_deg:g}) holds only {n} pixels of "
                          f"{pix:g} arcmin per side; use larger tiles or smaller pixels (at least 8)")
    k = oversampling(nside, pix)
    ras, decs = tile_centres(mask, hc.tile_size_deg, hc.tile_overlap_deg)
    grids = [tile_grid(a, d, n, pix) for a, d in zip(ras, decs)]
    coverage = np.zeros(np.asarray(mask).size)
    for g in grids:
        p, w = tile_weights(g, nside, hc.tile_size_deg, hc.tile_overlap_deg)
        coverage[p] += w
    thin = (np.asarray(mask) > 0) & (coverage < MIN_TILE_WEIGHT)
    if thin.any():
        raise ConfigError(f"config key 'healpix.tile_overlap_deg' ({hc.tile_overlap_deg:g}): {int(thin.sum())} "
                          "observed pixels lie in no tile's interior; increase the overlap")
    names = ("KAPPA_MEAN", "KAPPA_SECOND") if "posterior" in wanted else ()
    names += ("KAPPA_MAP",) if "map" in wanted else ()
    mosaic = mosaic_init(nside, names)
    ny_pad = n + 2 * config.pad
    ell_tab, cl_tab, cl_source = signal_cl(config, float(ell_grid(ny_pad, ny_pad, pix).max()))
    key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 2)  # the named key of posterior sampling
    vectors = unit_vectors(cat.ra, cat.dec)
    rows = []
    bar = tqdm(total=len(grids), desc="posterior tiles", unit="tile", disable=not progress)
    try:
        for t, grid in enumerate(grids):
            sub = tile_catalog(cat, grid, vectors)
            binned = bin_shear(sub, grid, sigma_e)
            if not binned.mask.any():
                bar.update(1)
                continue
            res = posterior_maps(binned.g1, binned.g2, binned.noise_std, binned.mask, pix, config.pad, config,
                                 jax.random.fold_in(key, t), lambda a, b: mode_variance_on(ell_tab, cl_tab, a, b, pix),
                                 prior=prior, methods=wanted, progress=False)
            fp = tile_footprint(grid, nside, hc.tile_size_deg, hc.tile_overlap_deg, k)
            values = {}
            if "posterior" in wanted:
                s = sample_tile_maps(res["KAPPA_SAMPLES"], fp)
                mu = s.mean(axis=0)
                var = s.var(axis=0, ddof=1) if len(s) > 1 else np.zeros_like(mu)
                values.update(KAPPA_MEAN=mu, KAPPA_SECOND=var + mu**2)
            if "map" in wanted:
                values["KAPPA_MAP"] = sample_tile_maps(res["KAPPA_MAP"], fp)
            mosaic_add(mosaic, fp, values)
            rows.append(_tile_row(grid.center_ra, grid.center_dec, sub, binned, res))
            bar.update(1)
    finally:
        bar.close()
    out: dict[str, np.ndarray] = {}
    if "posterior" in wanted:
        out["KAPPA_MEAN"] = mosaic_average(mosaic, "KAPPA_MEAN")
        out["KAPPA_STD"] = mosaic_mixture_std(mosaic, "KAPPA_MEAN", "KAPPA_SECOND")
    if "map" in wanted:
        out["KAPPA_MAP"] = mosaic_average(mosaic, "KAPPA_MAP")
    out["TILE_WEIGHT"] = mosaic.weight.copy()
    table = {name: np.array([r[name] for r in rows]) for name in (rows[0] if rows else ())}
    info = {"n_tiles": len(rows), "tile_npix": n, "tile_pixel_size_arcmin": pix, "tile_oversampling": k,
            "tile_size_deg": hc.tile_size_deg, "tile_overlap_deg": hc.tile_overlap_deg,
            "prior": prior_name(prior), "signal_cl": cl_source}
    if rows and "posterior" in wanted:
        info["tile_acceptance_min"] = float(np.nanmin(table["ACCEPTANCE"]))
        info["tile_rhat_max"] = float(np.nanmax(table["RHAT_MAX"])) if np.isfinite(table["RHAT_MAX"]).any() else np.nan
    return out, info, table
