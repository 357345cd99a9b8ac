"""Reading a massmap reconstruction (the FITS file ``reconstruct`` writes) and what is compared with it:
a truth κ map on the same grid and a table of sky positions. One-line InputError for anything else."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.wcs import WCS

from massmap.config import Config, ConfigError, load_config
from massmap.geometry import FlatGrid, grid_from_wcs
from massmap.io.catalog import COLUMN_ALIASES, open_fits
from massmap.io.inputs import reads
from massmap.io.maps import config_from_header, read_kappa_image
from massmap.io.output import InputError

# Extension holding each method's κ map, in report order.
METHOD_EXTS = {"ks": "KAPPA_KS", "wiener": "KAPPA_WIENER", "posterior": "KAPPA_MEAN", "map": "KAPPA_MAP"}


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


def native(a: np.ndarray) -> np.ndarray:
    """``a`` in the machine's byte order: FITS stores big-endian numbers, which JAX does not take."""
    return a.astype(a.dtype.newbyteorder("=")) if a.dtype.byteorder not in ("=", "|") else a


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
        images, tables, wcs_hdr, kappa_headers = {}, {}, None, {}
        for h in hdul[1:]:
            if h.is_image and h.data is not None:
                images[h.name] = native(np.asarray(h.data))
                if h.name.startswith("KAPPA") and "CTYPE1" in h.header:
                    kappa_headers[h.name] = h.header.copy()
                if wcs_hdr is None and h.name.startswith("KAPPA"):
                    wcs_hdr, shape = h.header, h.data.shape[-2:]
            elif isinstance(h, fits.BinTableHDU) and h.data is not None:
                tables[h.name] = {c: native(np.asarray(h.data[c])) for c in h.columns.names}
    if wcs_hdr is None:
        raise InputError(f"'{path}' holds no κ image with a celestial WCS")
    grid = grid_from_wcs(WCS(wcs_hdr), shape)
    for k, hdr in kappa_headers.items():  # every κ map on the one grid: metrics compare pixel by pixel
        other = grid_from_wcs(WCS(hdr), shape)
        if not np.allclose([other.center_ra, other.center_dec, other.pixel_size_arcmin],
                           [grid.center_ra, grid.center_dec, grid.pixel_size_arcmin], rtol=1e-9, atol=1e-9):
            raise InputError(f"'{path}': extension {k} has another WCS than the first κ map (not one grid)")
    for k, a in images.items():
        if a.shape[-2:] != shape or a.ndim not in (2, 3) or (a.ndim == 3 and k != "KAPPA_SAMPLES"):
            raise InputError(f"'{path}': extension {k} has shape {a.shape}, expected {shape} "
                             f"(or (n, {shape[0]}, {shape[1]}) for KAPPA_SAMPLES)")
        if a.dtype.kind == "f" and not np.all(np.isfinite(a)):
            raise InputError(f"'{path}': extension {k} holds NaN or inf values")
        if k == "NOISE_STD" and np.any(a < 0):
            raise InputError(f"'{path}': extension NOISE_STD holds negative noise values")
        if a.size == 0:
            raise InputError(f"'{path}': extension {k} holds no {'sample' if k == 'KAPPA_SAMPLES' else 'pixel'}")
    mask = (images["MASK"] > 0) if "MASK" in images else np.ones(shape, bool)
    if not mask.any():
        raise InputError(f"'{path}': MASK has no pixel with data")
    return Reconstruction(path, grid, header, images, tables, methods, mask)


def recorded_config(recon: Reconstruction) -> Config:
    """The config the reconstruction was made with (pad, Wiener settings, cosmology)."""
    try:
        return load_config(base=config_from_header(recon.header))
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
