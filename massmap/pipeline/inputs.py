"""What every reconstruction reads: shear catalogs (calibrated, σ_e resolved), binned shear maps, the
signal C_ℓ (a file or jax-cosmo Limber), and the method list — one copy for flat and HEALPix maps."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from massmap.binning import BinnedShear, ShearCatalog, bin_shear, estimate_sigma_e
from massmap.config import Config, ConfigError
from massmap.config.physics import cosmology_of, sources_of
from massmap.config.schema import grid_pixel_size
from massmap.cosmology import Cosmology, SourceRedshifts, kappa_cl
from massmap.errors import InputError
from massmap.geometry import grid_from_catalog
from massmap.io.catalog import read_catalog
from massmap.io.inputs import read_text_table
from massmap.io.maps import is_binned_shear, read_binned_shear
from massmap.prior.gaussian import GaussianPrior


def read_shear_catalog(path: str | Path, config: Config, maps: str = "map") -> tuple[ShearCatalog, float, dict[str, Any]]:
    """Read, select and calibrate a FITS shear catalog; σ_e is ``noise.sigma_e`` or estimated from it.

    Returns (catalog, σ_e, info with row counts and notes). One-line InputError naming the file when no
    galaxy has a usable calibrated weight or σ_e cannot be estimated.
    """
    path = str(path)
    cat = read_catalog(path, config.catalog)
    if not np.any((cat.weight * cat.response[0] > 0) & (cat.weight * cat.response[1] > 0)):
        raise InputError(f"catalog '{path}': no {maps} pixel has data (every galaxy has zero calibrated weight "
                         "w (1 + m) R)")
    sigma_e = config.noise.sigma_e
    if sigma_e is None:
        try:
            sigma_e = estimate_sigma_e(cat)
        except ValueError as err:
            raise InputError(f"catalog '{path}': {err}; set noise.sigma_e") from None
    info = {"input_kind": "catalog", "rows_read": cat.n_read, "rows_used": cat.n, "rows_dropped": cat.n_dropped,
            "sigma_e": float(sigma_e), "notes": cat.notes}
    return cat, float(sigma_e), info


def load_flat_shear(path: str | Path, config: Config,
                    prior_pixel_size_arcmin: float | None = None) -> tuple[BinnedShear, dict[str, Any]]:
    """A FITS shear catalog binned on the configured grid, or a binned shear map read as it is.

    ``prior_pixel_size_arcmin``: the learned prior's pixel scale, which a null ``grid.pixel_size_arcmin``
    takes (massmap.config.schema.grid_pixel_size)."""
    path = str(path)
    if is_binned_shear(path):
        grid, g1, g2, noise, mask = read_binned_shear(path)
        return BinnedShear(grid, g1, g2, noise, mask), {"input_kind": "binned shear map"}
    cat, sigma_e, info = read_shear_catalog(path, config)
    gc = config.grid
    try:
        grid = grid_from_catalog(cat.ra, cat.dec, grid_pixel_size(gc, prior_pixel_size_arcmin), gc.center, gc.npix)
    except ValueError as err:
        raise InputError(f"catalog '{path}': {err}; set grid.npix and grid.center, or use --geometry healpix") from None
    binned = bin_shear(cat, grid, sigma_e)
    if not binned.mask.any():
        raise InputError(f"catalog '{path}': no galaxy falls on the map grid (check grid.center and grid.npix)")
    info.update(rows_used=cat.n - binned.n_outside, rows_outside_grid=binned.n_outside)
    return binned, info


def read_cl_file(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Two columns (ℓ, C_ℓ) from a text file (one-line InputError naming the file for a damaged one)."""
    data = read_text_table(path, "C_ell file", ("ell", "C_ell"), key="wiener.cl_file")
    ell, cl = data[:, 0], data[:, 1]
    if np.sum((ell > 0) & (cl > 0)) < 2:
        raise InputError(f"C_ell file '{path}' needs finite values and at least two rows with ell > 0, C_ell > 0")
    return ell, cl


def checked_kappa_cl(cosmology: Cosmology, sources: SourceRedshifts, ell: np.ndarray,
                     nonlinear: bool = True) -> np.ndarray:
    """:func:`massmap.cosmology.kappa_cl`, or a ConfigError when the configured cosmology gives no finite,
    positive spectrum (e.g. Omega_c = 50, w0 = 5: values no model of the sky has)."""
    cl = kappa_cl(cosmology, sources, ell, nonlinear=nonlinear)
    if not np.all(np.isfinite(cl)) or not np.any(cl > 0):
        raise ConfigError("config sections 'cosmology'/'sources' give a non-finite or zero convergence C_ell "
                          "(check their values)")
    return cl


def signal_cl(config: Config, ell_max: float) -> tuple[np.ndarray, np.ndarray, str]:
    """The signal C_ℓ table of Wiener and the Gaussian prior: ``wiener.cl_file`` or jax-cosmo Limber."""
    if config.wiener.cl_file:
        ell, cl = read_cl_file(config.wiener.cl_file)
        return ell, cl, f"file {config.wiener.cl_file}"
    ell = np.geomspace(1.0, max(ell_max * 1.5, 100.0), 64)
    cl = checked_kappa_cl(cosmology_of(config.cosmology), sources_of(config.sources), ell)
    return ell, cl, "jax-cosmo Limber halofit"


def signal_prior(config: Config, pixel_size_arcmin: float, ell_max: float,
                 cl_table: tuple[np.ndarray, np.ndarray] | None = None) -> GaussianPrior:
    """The Gaussian prior of the signal C_ℓ (:func:`signal_cl`, or ``cl_table`` = (ℓ, C_ℓ) if given)."""
    if cl_table is None:
        ell, cl, source = signal_cl(config, ell_max)
    else:
        (ell, cl), source = cl_table, "table given by the caller"
    return GaussianPrior(np.asarray(ell), np.asarray(cl), float(pixel_size_arcmin), source)


def parse_methods(method: str, allowed: tuple[str, ...], where: str = "",
                  known: tuple[str, ...] = ("ks", "wiener", "posterior", "map")) -> tuple[str, ...]:
    """'all' or a comma-separated list of ``allowed`` methods, in canonical order."""
    if method == "all":
        return allowed
    parts = tuple(m.strip() for m in method.split(",") if m.strip())
    if "all" in parts:
        raise InputError(f"method '{method}': 'all' stands alone (it means {', '.join(allowed)})")
    bad = [m for m in parts if m not in allowed]
    if bad or not parts:
        culprit = bad[0] if bad else method
        extra = f" {where}" if where and culprit in known else ""
        raise InputError(f"unknown method '{culprit}'{extra}; choose from {', '.join(allowed)} or all")
    return tuple(m for m in allowed if m in parts)
