"""``massmap mock-catalog``: a κ map (FITS image or HDF5 map set) → a mock shear catalog.

Galaxy positions are uniform on the map (``mock.n_gal`` per arcmin²), or those of a real catalog
(``mock.positions``): its galaxies' offsets from its own centre, laid on the map about the map's centre
(the same gnomonic projection and pixel scale; the centre is the direction of the galaxies' mean unit
vector), so the mock has the survey's holes, edges and density variations; those off the map are
dropped, and the rest kept each with one probability, min(1, ``mock.n_gal`` × the area of the pixels
they occupy / their number): at most ``mock.n_gal`` per arcmin² on average, the catalog's own density
pattern kept. (For a catalog of a few galaxies per pixel or fewer, the occupied pixels undercount its
area and the density comes out lower.) The catalog must be a shear catalog (RA, Dec, e1, e2 columns as
``catalog.columns``); its shapes are not used.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np

from massmap.config import Config
from massmap.geometry import FlatGrid
from massmap.io.catalog import read_catalog, write_catalog
from massmap.io.maps import provenance_header, read_kappa_image, write_maps
from massmap.io.output import InputError, check_output, provenance, write_config_sidecar
from massmap.ops.mock import lensed_ellipticities, uniform_positions


def load_kappa(path: str | Path, config: Config, index: int | None) -> tuple[FlatGrid, np.ndarray, dict]:
    """A κ map and its grid: a FITS image with WCS, or map ``index`` of an HDF5 map set."""
    p = Path(path)
    if p.suffix.lower() in (".h5", ".hdf5"):
        if index is None:
            raise InputError(f"'{p}' is an HDF5 map set: choose a map with --index")
        from massmap.io.datasets import read_maps

        maps, meta = read_maps(p, index=index)
        kappa = np.asarray(maps, np.float32)
        if not np.all(np.isfinite(kappa)):
            raise InputError(f"map {index} of map set '{p}' holds NaN or inf values")
        if not (isinstance(meta.get("pixel_size_arcmin"), (int, float)) and meta["pixel_size_arcmin"] > 0):
            raise InputError(f"map set '{p}' has no valid 'pixel_size_arcmin' attribute")
        center = config.grid.center if config.grid.center is not None else (0.0, 0.0)
        grid = FlatGrid(float(center[0]) % 360.0, float(center[1]), float(meta["pixel_size_arcmin"]),
                        kappa.shape[0], kappa.shape[1])
        return grid, kappa, {"index": index}
    if index is not None:
        raise InputError(f"--index applies to HDF5 map sets, not to '{p.name}'")
    grid, kappa = read_kappa_image(p)
    return grid, kappa, {}


def catalog_centre(ra: np.ndarray, dec: np.ndarray) -> tuple[float, float]:
    """(RA, Dec) in degrees of the direction of the mean unit vector of positions (any RA, the poles)."""
    import healpy as hp

    from massmap.sphere.tiling import unit_vectors

    ra0, dec0 = hp.vec2ang(unit_vectors(ra, dec).sum(axis=0), lonlat=True)
    return float(ra0[0]) % 360.0, float(dec0[0])


def footprint_positions(path: str | Path, config: Config, grid: FlatGrid, key: jax.Array) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (x, y) on ``grid`` of the galaxies of catalog ``path`` (``mock.positions``; its
    columns as ``catalog.columns``), moved from the catalog's centre to the map's (module docstring)."""
    cat = read_catalog(path, config.catalog)
    ra0, dec0 = catalog_centre(cat.ra, cat.dec)
    centre = FlatGrid(ra0, dec0, grid.pixel_size_arcmin, grid.ny, grid.nx)
    x, y = centre.world_to_pixel(cat.ra, cat.dec)
    on = (x >= -0.5) & (x < grid.nx - 0.5) & (y >= -0.5) & (y < grid.ny - 0.5)
    if not on.any():
        raise InputError(f"mock.positions: no galaxy of '{path}' falls on the {grid.ny}×{grid.nx} map")
    x, y = x[on], y[on]
    occupied = np.unique(np.round(y).astype(np.int64) * grid.nx + np.round(x).astype(np.int64)).size
    fraction = min(1.0, config.mock.n_gal * occupied * grid.pixel_size_arcmin**2 / x.size)
    keep = np.asarray(jax.random.uniform(key, (x.size,))) < fraction
    return x[keep], y[keep]


def run_mock_catalog(config: Config, kappa_path: str | Path, output: str | Path,
                     truth_out: str | Path | None = None, index: int | None = None,
                     overwrite: bool = False) -> dict[str, Any]:
    """Draw the mock catalog of ``config.mock`` from a κ map; write it (and the truth κ) with provenance."""
    out = check_output(output, overwrite)
    truth = check_output(truth_out, overwrite) if truth_out else None
    grid, kappa, extra = load_kappa(kappa_path, config, index)
    key_count, key_gal = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(config.seed), 1))
    key_pos, key_noise = jax.random.split(key_gal)
    if config.mock.positions is None:
        area = grid.ny * grid.nx * grid.pixel_size_arcmin**2
        n_gal = int(jax.random.poisson(key_count, config.mock.n_gal * area))
        x, y = uniform_positions(key_pos, n_gal, kappa.shape)
    else:
        x, y = footprint_positions(config.mock.positions, config, grid, key_count)
        n_gal = int(x.size)
        extra = {**extra, "positions": Path(config.mock.positions).name}
    e1, e2 = lensed_ellipticities(key_noise, kappa, x, y, config.mock.sigma_e)
    ra, dec = grid.pixel_to_world(np.asarray(x, np.float64), np.asarray(y, np.float64))
    inputs = {"kappa": Path(kappa_path).name, "n_galaxies": n_gal, **extra}
    prov = provenance(config, "mock-catalog", inputs)
    cols = {"RA": ra, "DEC": dec, "E1": np.asarray(e1, np.float32), "E2": np.asarray(e2, np.float32),
            "WEIGHT": np.ones(n_gal, np.float32)}
    if truth is not None:
        write_maps(truth, grid, {"KAPPA": kappa}, prov)
    write_config_sidecar(out, config)
    write_catalog(out, cols, provenance_header(prov))  # last: once the catalog exists, everything is written
    return {"output": str(out), "truth": str(truth) if truth else None, "n_galaxies": n_gal, "grid": grid}
