"""Catalog reading, calibration, selection, binning and the grid (WCS, RA wrap-around)."""
import numpy as np
import pytest

from massmap.config import load_config
from massmap.geometry import FlatGrid, grid_from_catalog
from massmap.binning import bin_shear, estimate_sigma_e
from massmap.io.catalog import read_catalog
from massmap.io.output import InputError

from conftest import write_table


def _cat(tmp_path, n=2000, seed=0, **extra):
    rng = np.random.default_rng(seed)
    cols = {"ALPHA_J2000": rng.uniform(10, 10.5, n), "delta_j2000": rng.uniform(-5, -4.5, n),
            "e_1": rng.normal(0, 0.2, n), "e_2": rng.normal(0, 0.2, n), "weight": rng.uniform(0.5, 2, n)}
    cols.update(extra)
    return write_table(tmp_path / "cat.fits", cols), cols


def test_survey_column_names_are_recognised_case_insensitively(tmp_path):
    path, cols = _cat(tmp_path)
    cat = read_catalog(path, load_config().catalog)
    np.testing.assert_allclose(cat.e1, cols["e_1"])
    np.testing.assert_allclose(cat.weight, cols["weight"])


def test_missing_column_lists_available(tmp_path):
    path, _ = _cat(tmp_path)
    cfg = load_config(overrides=["catalog.columns.e1=G1X"]).catalog
    with pytest.raises(InputError, match="no column 'G1X'.*available: ALPHA_J2000"):
        read_catalog(path, cfg)


def test_flips_and_calibration(tmp_path):
    n = 500
    rng = np.random.default_rng(1)
    path, cols = _cat(tmp_path, n=n, M=rng.uniform(-0.1, 0.1, n), R11=rng.uniform(0.6, 0.8, n),
                      R22=rng.uniform(0.6, 0.8, n))
    cfg = load_config(overrides=["catalog.flip_e2=true", "catalog.columns.m=m", "catalog.columns.r11=R11",
                                 "catalog.columns.r22=R22", "catalog.c1=0.01"]).catalog
    cat = read_catalog(path, cfg)
    np.testing.assert_allclose(cat.e1, cols["e_1"] - 0.01)
    np.testing.assert_allclose(cat.e2, -cols["e_2"])
    np.testing.assert_allclose(cat.response[0], (1 + cols["M"]) * cols["R11"])


def test_calibrated_binning_recovers_constant_shear(tmp_path):
    # e = (1+m) R γ + c + small noise  →  Σw(e−c) / Σw(1+m)R = γ per pixel (noise-free: exactly).
    n = 4000
    rng = np.random.default_rng(2)
    m = rng.uniform(-0.1, 0.1, n)
    r = rng.uniform(0.6, 0.9, n)
    g = (0.03, -0.02)
    cols = {"RA": rng.uniform(0, 0.2, n), "DEC": rng.uniform(0, 0.2, n),
            "E1": (1 + m) * r * g[0] + 0.005, "E2": (1 + m) * r * g[1] - 0.002, "M": m, "R11": r, "R22": r}
    path = write_table(tmp_path / "c.fits", cols)
    cfg = load_config(overrides=["catalog.columns.m=M", "catalog.columns.r11=R11", "catalog.columns.r22=R22",
                                 "catalog.c1=0.005", "catalog.c2=-0.002", "grid.pixel_size_arcmin=2"])
    cat = read_catalog(path, cfg.catalog)
    grid = grid_from_catalog(cat.ra, cat.dec, cfg.grid.pixel_size_arcmin, cfg.grid.center, cfg.grid.npix)
    b = bin_shear(cat, grid, 0.3)
    on = b.mask > 0
    np.testing.assert_allclose(b.g1[on], g[0], atol=1e-6)
    np.testing.assert_allclose(b.g2[on], g[1], atol=1e-6)


def test_noise_per_pixel_and_sigma_e_estimate(tmp_path):
    n = 20000
    rng = np.random.default_rng(3)
    cols = {"RA": rng.uniform(0, 0.1, n), "DEC": rng.uniform(0, 0.1, n),
            "E1": rng.normal(0, 0.25, n), "E2": rng.normal(0, 0.25, n)}
    path = write_table(tmp_path / "c.fits", cols)
    cfg = load_config(overrides=["grid.pixel_size_arcmin=1"])
    cat = read_catalog(path, cfg.catalog)
    sig = estimate_sigma_e(cat)
    assert abs(sig - 0.25) < 0.005  # 20000 draws: relative error ~ 1/sqrt(2n) = 0.5%
    grid = grid_from_catalog(cat.ra, cat.dec, cfg.grid.pixel_size_arcmin, cfg.grid.center, cfg.grid.npix)
    b = bin_shear(cat, grid, sig)
    on = b.count > 0
    np.testing.assert_allclose(b.noise_std[on], sig / np.sqrt(b.count[on]), rtol=1e-5)
    assert np.all(b.noise_std[~on] == 0) and np.all(b.mask[~on] == 0)


def test_bad_rows_are_dropped_and_counted(tmp_path):
    e1 = np.array([0.1, np.nan, 1.5, 0.0, 0.2])
    cols = {"RA": [1, 1, 1, 1, np.inf], "DEC": [0, 0, 0, 0, 0], "E1": e1, "E2": [0, 0, 0, 0.1, 0]}
    path = write_table(tmp_path / "c.fits", cols)
    cat = read_catalog(path, load_config().catalog)
    assert cat.n == 2 and cat.n_dropped == 3
    cols = {"RA": [1, 1], "DEC": [0, 0], "E1": [np.nan, 2.0], "E2": [0, 0]}
    path = write_table(tmp_path / "bad.fits", cols)
    with pytest.raises(InputError, match="no usable rows"):
        read_catalog(path, load_config().catalog)


def test_selection_by_column_range(tmp_path):
    path, cols = _cat(tmp_path, Z=np.linspace(0, 2, 2000))
    cat = read_catalog(path, load_config(overrides=["catalog.select.column=z", "catalog.select.min=0.5",
                                                    "catalog.select.max=1.0"]).catalog)
    assert cat.n == int(np.sum((cols["Z"] >= 0.5) & (cols["Z"] < 1.0)))
    with pytest.raises(InputError, match="keeps no rows"):
        read_catalog(path, load_config(overrides=["catalog.select.column=z", "catalog.select.min=5"]).catalog)


def test_ra_wraparound_grid_is_centred_on_zero(tmp_path):
    rng = np.random.default_rng(4)
    ra = np.mod(rng.uniform(-0.3, 0.3, 3000), 360.0)
    dec = rng.uniform(-0.3, 0.3, 3000)
    grid = grid_from_catalog(ra, dec, 1.0)
    assert min(grid.center_ra, 360 - grid.center_ra) < 0.01
    assert grid.nx <= 38  # 0.6 deg at 1 arcmin: 36 pixels + rounding, not a 360-degree-wide map
    x, y = grid.world_to_pixel(ra, dec)
    assert x.min() >= -0.5 and x.max() <= grid.nx - 0.5


def test_wcs_frame_is_east_left():
    grid = FlatGrid(150.0, 2.0, 1.0, 10, 10)
    assert grid.wcs().wcs.cdelt[0] < 0
    x1, _ = grid.world_to_pixel([150.0], [2.0])
    x2, _ = grid.world_to_pixel([149.9], [2.0])  # West of centre: larger x
    assert x2[0] > x1[0]
