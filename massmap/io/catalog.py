"""Shear catalogs: FITS binary tables → calibrated, selected ellipticities (:class:`massmap.binning.ShearCatalog`).

Column lookup is case-insensitive and knows the usual survey spellings. Rows with NaN/inf values or
|e| > 1 are dropped and counted. Calibration follows the usual estimator
γ_pixel = Σ w (e − c) / Σ w (1 + m) R, with constant or per-object m, c and (metacalibration) R.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from astropy.io import fits

from massmap.config.schema import CatalogConfig
from massmap.binning import ShearCatalog
from massmap.io.fits_files import open_fits  # noqa: F401  (re-exported: readers import it from here)
from massmap.io.inputs import reads
from massmap.io.output import InputError

# Usual spellings tried (case-insensitively) when a column is not named in the config.
COLUMN_ALIASES: dict[str, tuple[str, ...]] = {
    "ra": ("RA", "ALPHA_J2000", "ALPHAWIN_J2000", "RA_DEG", "RAJ2000", "X_WORLD", "RA_GAL"),
    "dec": ("DEC", "DELTA_J2000", "DELTAWIN_J2000", "DEC_DEG", "DEJ2000", "Y_WORLD", "DEC_GAL"),
    "e1": ("E1", "E_1", "G1", "GAMMA1", "SHEAR1", "E1_CAL", "MCAL_E1"),
    "e2": ("E2", "E_2", "G2", "GAMMA2", "SHEAR2", "E2_CAL", "MCAL_E2"),
    "weight": ("WEIGHT", "WEIGHTS", "W", "LENSFIT_WEIGHT", "SHAPE_WEIGHT"),
}


def _find_table_hdu(hdul: fits.HDUList, path: str) -> fits.BinTableHDU:
    for hdu in hdul:
        if isinstance(hdu, (fits.BinTableHDU, fits.TableHDU)):
            return hdu
    raise InputError(f"'{path}' holds no FITS table (expected a binary-table shear catalog)")


def _lookup(names: list[str], wanted: str | None, role: str, path: str, required: bool = True) -> str | None:
    """Find a column case-insensitively: the configured name, else the usual aliases of ``role``. Two
    columns whose names differ only in case (E1 and e1) are ambiguous unless one matches exactly."""

    def match(target: str) -> str | None:
        found = [n for n in names if n.upper() == target.upper()]
        if target in found or len(found) == 1:
            return target if target in found else found[0]
        if found:
            raise InputError(f"catalog '{path}': columns {', '.join(repr(n) for n in found)} differ only in case; "
                             f"name the {role} column exactly (catalog.columns.{role})")
        return None

    if wanted is not None:
        name = match(wanted)
        if name is not None:
            return name
        raise InputError(f"catalog '{path}' has no column '{wanted}' (catalog.columns.{role}); "
                         f"available: {', '.join(names)}")
    for alias in COLUMN_ALIASES.get(role, ()):
        name = match(alias)
        if name is not None:
            return name
    if required:
        raise InputError(f"catalog '{path}' has no {role} column (tried {', '.join(COLUMN_ALIASES[role])}; "
                         f"set catalog.columns.{role}); available: {', '.join(names)}")
    return None


@reads("shear catalog")
def read_catalog(path: str | Path, cfg: CatalogConfig) -> ShearCatalog:
    """Read, select, clean and calibrate a FITS shear catalog."""
    path = str(path)
    with open_fits(path) as hdul:
        hdu = _find_table_hdu(hdul, path)
        data = hdu.data
        names = list(hdu.columns.names) if hdu.columns is not None else []
        if data is None or len(data) == 0:
            raise InputError(f"catalog '{path}' has no rows")
        cols = cfg.columns

        def column(role, wanted, required=True):
            name = _lookup(names, wanted, role, path, required)
            if name is None:
                return None
            values = np.asarray(data[name])
            if values.ndim != 1 or not np.issubdtype(values.dtype, np.number):
                raise InputError(f"catalog '{path}': column '{name}' must be a numeric scalar column")
            if np.iscomplexobj(values):  # its imaginary part would be dropped without a word
                raise InputError(f"catalog '{path}': column '{name}' holds complex numbers, not real ones")
            return values.astype(np.float64)

        ra = column("ra", cols.ra)
        dec = column("dec", cols.dec)
        e1 = column("e1", cols.e1)
        e2 = column("e2", cols.e2)
        w = column("weight", cols.weight, required=False)
        m = column("m", cols.m) if cols.m else None
        c1 = column("c1", cols.c1) if cols.c1 else None
        c2 = column("c2", cols.c2) if cols.c2 else None
        r11 = column("r11", cols.r11) if cols.r11 else None
        r22 = column("r22", cols.r22) if cols.r22 else None
        sel = None
        if cfg.select.column is not None:
            sel = column("select", cfg.select.column)
    n_read = ra.size
    notes: list[str] = []

    keep = np.ones(n_read, bool)
    if sel is not None:
        lo = -np.inf if cfg.select.min is None else cfg.select.min
        hi = np.inf if cfg.select.max is None else cfg.select.max
        keep &= (sel >= lo) & (sel < hi)
        if not keep.any():
            raise InputError(f"catalog '{path}': selection {lo} <= {cfg.select.column} < {hi} keeps no rows")
        notes.append(f"selected {int(keep.sum())} of {n_read} rows by {cfg.select.column}")

    w = np.ones(n_read) if w is None else w
    m = np.full(n_read, cfg.m) if m is None else m
    c1 = np.full(n_read, cfg.c1) if c1 is None else c1
    c2 = np.full(n_read, cfg.c2) if c2 is None else c2
    r11 = np.ones(n_read) if r11 is None else r11
    r22 = np.ones(n_read) if r22 is None else r22

    stack = np.vstack([ra, dec, e1, e2, w, m, c1, c2, r11, r22])
    finite = np.all(np.isfinite(stack), axis=0)
    good = finite & (np.hypot(e1, e2) <= 1.0) & (w >= 0) & (dec >= -90) & (dec <= 90)
    n_bad = int((keep & ~good).sum())
    keep &= good
    if n_bad:
        notes.append(f"dropped {n_bad} rows with NaN/inf values, |e| > 1, negative weight or bad Dec")
    if not keep.any():
        raise InputError(f"catalog '{path}': no usable rows left after cleaning ({n_bad} dropped)")

    s1 = -1.0 if cfg.flip_e1 else 1.0
    s2 = -1.0 if cfg.flip_e2 else 1.0
    e1c = s1 * (e1[keep] - c1[keep])
    e2c = s2 * (e2[keep] - c2[keep])
    resp = np.vstack([(1.0 + m[keep]) * r11[keep], (1.0 + m[keep]) * r22[keep]])
    wk = w[keep]
    if not np.sum(wk) > 0:
        raise InputError(f"catalog '{path}': all weights are zero")
    if cfg.subtract_mean:
        g1m = np.sum(wk * e1c) / np.sum(wk * resp[0])
        g2m = np.sum(wk * e2c) / np.sum(wk * resp[1])
        e1c = e1c - g1m * resp[0]
        e2c = e2c - g2m * resp[1]
        notes.append(f"subtracted mean shear ({g1m:+.2e}, {g2m:+.2e})")
    return ShearCatalog(path, np.mod(ra[keep], 360.0), dec[keep], e1c, e2c, wk, resp,
                        n_read, n_bad, notes)


def write_catalog(path: str | Path, columns: dict[str, np.ndarray], header: fits.Header) -> Path:
    """Write a FITS binary-table catalog (atomically) with a provenance primary header."""
    from massmap.io.output import atomic_path

    cols = [fits.Column(name=k, format="D" if np.asarray(v).dtype == np.float64 else "E", array=np.asarray(v))
            for k, v in columns.items()]
    hdul = fits.HDUList([fits.PrimaryHDU(header=header), fits.BinTableHDU.from_columns(cols, name="CATALOG")])
    hdul[0].header["NEXTEND"] = (1, "extensions (fewer: truncated)")
    with atomic_path(path) as tmp:
        hdul.writeto(tmp, overwrite=True)
    return Path(path)
