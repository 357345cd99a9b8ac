"""Posterior κ on wide fields: the flat-sky posterior on gnomonic tiles, mosaicked onto HEALPix.

Used by ``massmap reconstruct --geometry healpix --method posterior|map``. The footprint (observed
HEALPix pixels) is covered by tiles (:mod:`massmap.sphere.tiling`); each tile's galaxies, with shear
rotated into the tile frame, are binned on its TAN grid (:func:`massmap.binning.bin_shear`) and
reconstructed by :func:`massmap.pipeline.posterior.posterior_maps` with the ``posterior`` section and
``pad`` of the config (the same prior, Gaussian or learned, for every tile). Tile results are
reprojected and combined with the tiles' cos² taper weights: KAPPA_MEAN, KAPPA_STD (mixture std),
KAPPA_MAP, and TILE_WEIGHT (the weight sum). Tile t samples with key fold_in(fold_in(PRNGKey(seed), 2), t).

The work is in three steps, so that a survey can run its tiles as separate jobs
(:mod:`massmap.pipeline.tiles`) and get the same numbers: :func:`plan_tiles` (the tiles, the prior,
the pixel scale; deterministic), :func:`run_tile` (one tile's reprojected values, a pure function of the
plan, the catalog and the index) and :func:`mosaic_tiles` (the weighted sums, in tile order).
"""
from __future__ import annotations

from typing import Any, NamedTuple, Sequence

import healpy as hp
import jax
import numpy as np
from tqdm.auto import tqdm

from massmap.binning import ShearCatalog, bin_shear
from massmap.geometry import FlatGrid
from massmap.config import Config, ConfigError
from massmap.config.healpix import tile_pixel_size
from massmap.infer.sampler import posterior_moments
from massmap.ops.spectra import ell_grid
from massmap.pipeline.inputs import signal_prior
from massmap.pipeline.posterior import PosteriorRun, learned_prior, posterior_key, posterior_maps
from massmap.sphere.tiling import (TileFootprint, mosaic_add, mosaic_average, mosaic_init, mosaic_mixture_std, oversampling,
                                   sample_tile_maps, tile_catalog, tile_centres, tile_footprint, tile_grid,
                                   tile_npix, tile_weights, unit_vectors)

TILE_METHODS = ("posterior", "map")
MIN_TILE_WEIGHT = 0.05  # an observed pixel with less total tile weight is not covered by any tile interior


def _tile_row(ra, dec, sub: ShearCatalog, binned, run: PosteriorRun) -> dict[str, float]:
    info = run.posterior.info if run.posterior is not None else None
    return {"RA": ra, "DEC": dec, "N_GALAXIES": sub.n, "N_PIX_DATA": int(np.count_nonzero(binned.mask)),
            "ACCEPTANCE": info.acceptance_draws if info else np.nan,
            "DIVERGENT": info.divergent_draws if info else 0,
            "RHAT_MAX": info.rhat_max if info else np.nan,
            "N_CHAINS_USED": info.n_chains_used if info else 0,
            "SCORE_EVALS": run.posterior.score_evals_per_sample if info else np.nan}


class TilePlan(NamedTuple):
    """The tiles of a footprint and everything a tile needs besides the catalog."""

    config: Config
    nside: int
    methods: tuple[str, ...]  # ⊂ TILE_METHODS
    grids: list  # FlatGrid per tile, in order
    npix: int  # tile pixels per side, without pad
    pixel_size_arcmin: float
    oversampling: int
    prior: Any
    signal: Any  # GaussianPrior of the signal C_ℓ (the reference spectrum)


class TileResult(NamedTuple):
    """One tile's contribution to the mosaic: HEALPix pixels, their taper weights, reprojected values."""

    index: int
    pixels: np.ndarray  # RING indices, int64
    weight: np.ndarray  # float64
    values: dict  # name → float64 array per pixel (KAPPA_MEAN, KAPPA_SECOND, KAPPA_MAP)
    row: dict  # the tile's line in the TILES table


def plan_tiles(mask: np.ndarray, config: Config, methods: Sequence[str]) -> TilePlan:
    """The tiles covering the observed pixels of ``mask`` (RING), with the prior and the tile pixel scale."""
    hc = config.healpix
    wanted = tuple(m for m in TILE_METHODS if m in methods)
    nside = hp.npix2nside(np.asarray(mask).size)
    learned = learned_prior(config.posterior, hc.tile_pixel_size_arcmin)
    pix = tile_pixel_size(hc, learned.pixel_size_arcmin if learned is not None else None,
                          float(np.degrees(hp.nside2resol(nside)) * 60.0))
    n = tile_npix(hc.tile_size_deg, pix, config.pad, learned.grid_multiple if learned is not None else 2)
    if n < 8:
        raise ConfigError(f"config key 'healpix.tile_size_deg' ({hc.tile_size_deg:g}) holds only {n} pixels of "
                          f"{pix:g} arcmin per side; use larger tiles or smaller pixels (at least 8)")
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
    ny_pad = n + 2 * config.pad
    signal = signal_prior(config, pix, float(ell_grid(ny_pad, ny_pad, pix).max()))
    prior = signal if learned is None else learned
    return TilePlan(config, nside, wanted, grids, n, pix, oversampling(nside, pix), prior, signal)


def run_tile(plan: TilePlan, cat: ShearCatalog, sigma_e: float, index: int,
             vectors: np.ndarray | None = None) -> TileResult | None:
    """The posterior of tile ``index`` reprojected onto its HEALPix pixels; None if no galaxy falls on it.

    ``vectors``: the catalog's unit vectors (unit_vectors(cat.ra, cat.dec)), to reuse over tiles.
    """
    config, hc = plan.config, plan.config.healpix
    grid: FlatGrid = plan.grids[index]
    sub = tile_catalog(cat, grid, unit_vectors(cat.ra, cat.dec) if vectors is None else vectors)
    binned = bin_shear(sub, grid, sigma_e)
    if not binned.mask.any():
        return None
    key = jax.random.fold_in(posterior_key(config.seed), index)
    run = posterior_maps(binned, config.posterior, config.pad, key, plan.prior, reference=plan.signal,
                         methods=plan.methods, progress=False)
    fp = tile_footprint(grid, plan.nside, hc.tile_size_deg, hc.tile_overlap_deg, plan.oversampling)
    values = {}
    if "posterior" in plan.methods:
        # the tile's (Rao–Blackwellised) mean, reprojected (linear: the mean of the reprojected means),
        # and its second moment about it with the samples' spread
        _, sd = posterior_moments(sample_tile_maps(run.posterior.samples, fp))
        mu = sample_tile_maps(run.posterior.mean, fp)
        values.update(KAPPA_MEAN=mu, KAPPA_SECOND=sd**2 + mu**2)
    if "map" in plan.methods:
        values["KAPPA_MAP"] = sample_tile_maps(run.map.kappa, fp)
    values = {k: np.asarray(v, np.float64) for k, v in values.items()}
    return TileResult(int(index), np.asarray(fp.pixels, np.int64), np.asarray(fp.weight, np.float64), values,
                      _tile_row(grid.center_ra, grid.center_dec, sub, binned, run))


def mosaic_tiles(plan: TilePlan, results: Sequence[TileResult | None]
                 ) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, np.ndarray]]:
    """The mosaic of tile results (added in the order given): (maps, run info, per-tile table)."""
    hc = plan.config.healpix
    names = ("KAPPA_MEAN", "KAPPA_SECOND") if "posterior" in plan.methods else ()
    names += ("KAPPA_MAP",) if "map" in plan.methods else ()
    mosaic = mosaic_init(plan.nside, names)
    rows = []
    for res in results:
        if res is None:
            continue
        mosaic_add(mosaic, TileFootprint(res.pixels, res.weight, None, None), res.values)
        rows.append(res.row)
    out: dict[str, np.ndarray] = {}
    if "posterior" in plan.methods:
        out["KAPPA_MEAN"] = mosaic_average(mosaic, "KAPPA_MEAN")
        out["KAPPA_STD"] = mosaic_mixture_std(mosaic, "KAPPA_MEAN", "KAPPA_SECOND")
    if "map" in plan.methods:
        out["KAPPA_MAP"] = mosaic_average(mosaic, "KAPPA_MAP")
    out["TILE_WEIGHT"] = mosaic.weight.copy()
    table = {name: np.array([r[name] for r in rows]) for name in (rows[0] if rows else ())}
    info = {"n_tiles": len(rows), "tile_npix": plan.npix, "tile_pixel_size_arcmin": plan.pixel_size_arcmin,
            "tile_oversampling": plan.oversampling, "tile_size_deg": hc.tile_size_deg,
            "tile_overlap_deg": hc.tile_overlap_deg, "prior": plan.prior.name, "signal_cl": plan.signal.source}
    if rows and "posterior" in plan.methods:
        info["tile_acceptance_min"] = float(np.nanmin(table["ACCEPTANCE"]))
        info["tile_rhat_max"] = float(np.nanmax(table["RHAT_MAX"])) if np.isfinite(table["RHAT_MAX"]).any() else np.nan
    return out, info, table


def posterior_tiles(cat: ShearCatalog, sigma_e: float, mask: np.ndarray, config: Config,
                    methods: tuple[str, ...], progress: bool = True
                    ) -> tuple[dict[str, np.ndarray], dict[str, Any], dict[str, np.ndarray]]:
    """Tiled posterior maps on the HEALPix grid of ``mask`` (RING): (maps, run info, per-tile table).

    ``methods`` ⊂ ('posterior', 'map'). Pixels covered by no tile are ``healpy.UNSEEN``. The tiles run
    one after the other here; :mod:`massmap.pipeline.tiles` runs them as separate jobs.
    """
    plan = plan_tiles(mask, config, methods)
    vectors = unit_vectors(cat.ra, cat.dec)
    results = []
    for t in tqdm(range(len(plan.grids)), desc="posterior tiles", unit="tile", disable=not progress):
        results.append(run_tile(plan, cat, sigma_e, t, vectors))
    return mosaic_tiles(plan, results)
