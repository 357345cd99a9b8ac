"""``massmap mock-catalog``: a κ map (FITS image or HDF5 map set) → a mock shear catalog."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import jax
import numpy as np

from massmap.config import Config
from massmap.geometry import FlatGrid
from massmap.io.catalog import write_catalog
from massmap.io.maps import provenance_header, read_kappa_image, write_maps
from massmap.io.output import InputError, check_output, provenance, write_config_sidecar
from massmap.ops.mock import mock_galaxies


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


def run_mock_catalog(config: Config, kappa_path: str | Path, output: str | Path,
                     truth_out: str | Path | None = None, index: int | None = None,
                     overwrite: bool = False) -> dict[str, Any]:
    """Draw the mock catalog of ``config.mock`` from a κ map; write it (and the truth κ) with provenance."""
    out = check_output(output, overwrite)
    truth = check_output(truth_out, overwrite) if truth_out else None
    grid, kappa, extra = load_kappa(kappa_path, config, index)
    key_count, key_gal = jax.random.split(jax.random.fold_in(jax.random.PRNGKey(config.seed), 1))
    area = grid.ny * grid.nx * grid.pixel_size_arcmin**2
    n_gal = int(jax.random.poisson(key_count, config.mock.n_gal * area))
    x, y, e1, e2 = mock_galaxies(key_gal, kappa, n_gal, config.mock.sigma_e)
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
