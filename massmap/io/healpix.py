"""HEALPix map files (healpy's FITS format, RING ordering) and their PNG previews.

Layout: an empty primary HDU with massmap's provenance (version, command, date, seed, inputs and the
resolved config as HISTORY cards, as :func:`massmap.io.maps.provenance_header`), then one binary table
``MAPS`` with one column per map (KAPPA_KS, GAMMA1, ...) and the HEALPix keywords PIXTYPE = HEALPIX,
ORDERING = RING, COORDSYS = C, NSIDE, INDXSCHM and OBJECT. A full-sky file (INDXSCHM = IMPLICIT,
OBJECT = FULLSKY) holds 12 nside² rows; a partial one (EXPLICIT, PARTIAL) holds a leading PIXEL column
and the observed pixels only. Both read with ``healpy.read_map(path, field=...)`` (partial files come
back full-size with UNSEEN elsewhere). Optional further binary tables (e.g. ``TILES``, one row per tile
of the tiled posterior) follow the map table.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import healpy as hp

import numpy as np  # noqa: E402
from astropy.io import fits  # noqa: E402

from massmap.io.catalog import open_fits  # noqa: E402
from massmap.io.inputs import reads  # noqa: E402
from massmap.io.maps import provenance_header  # noqa: E402
from massmap.io.output import InputError, atomic_path  # noqa: E402

EXTNAME = "MAPS"


def _format(arr: np.ndarray) -> str:
    kind = arr.dtype.kind
    if kind == "f":
        return "E"
    if kind == "u" and arr.dtype.itemsize == 1:
        return "B"
    return "J" if kind in "iu" and np.abs(arr).max(initial=0) < 2**31 else "K"


def write_healpix_maps(path: str | Path, nside: int, maps: dict[str, np.ndarray], prov: dict[str, Any],
                       observed: np.ndarray | None = None, partial: bool = False,
                       cards: dict[str, tuple[Any, str]] | None = None,
                       tables: dict[str, dict[str, np.ndarray]] | None = None) -> Path:
    """Write RING-ordered full-sky maps (float maps as float32) atomically, optionally as a partial file.

    ``observed`` (bool per pixel) selects the rows of a partial file; ``cards`` are extra table-header
    keywords {KEY: (value, comment)}; ``tables`` are extra binary tables {EXTNAME: {column: values}}
    written after the map table (e.g. TILES).
    """
    npix = hp.nside2npix(nside)
    rows = np.arange(npix)
    if partial:
        if observed is None or not np.any(observed):
            raise InputError("a partial HEALPix file needs at least one observed pixel")
        rows = np.flatnonzero(observed)
    cols = []
    if partial:
        cols.append(fits.Column(name="PIXEL", format="J" if npix < 2**31 else "K", array=rows))
    for name, m in maps.items():
        arr = np.asarray(m)
        if arr.shape != (npix,):
            raise ValueError(f"map {name} has shape {arr.shape}, expected ({npix},) for nside {nside}")
        arr = arr.astype(np.float32) if arr.dtype.kind == "f" else arr
        arr = arr[rows]
        cols.append(fits.Column(name=name, format=_format(arr), array=arr))
    table = fits.BinTableHDU.from_columns(cols, name=EXTNAME)
    h = table.header
    h["PIXTYPE"] = ("HEALPIX", "HEALPIX pixelisation")
    h["ORDERING"] = ("RING", "Pixel ordering scheme, either RING or NESTED")
    h["COORDSYS"] = ("C", "Celestial (equatorial, ICRS)")
    h["NSIDE"] = (nside, "Resolution parameter of HEALPIX")
    if not partial:
        h["FIRSTPIX"] = (0, "First pixel # (0 based)")
        h["LASTPIX"] = (npix - 1, "Last pixel # (0 based)")
    h["INDXSCHM"] = ("EXPLICIT" if partial else "IMPLICIT", "Indexing: IMPLICIT or EXPLICIT")
    h["OBJECT"] = ("PARTIAL" if partial else "FULLSKY", "Sky coverage, either FULLSKY or PARTIAL")
    for key, (value, comment) in (cards or {}).items():
        h[key] = (value, comment)
    extra = []
    for name, columns in (tables or {}).items():
        cols = [fits.Column(name=c, format="D" if np.asarray(v).dtype.kind == "f" else "K", array=np.asarray(v))
                for c, v in columns.items()]
        extra.append(fits.BinTableHDU.from_columns(cols, name=name))
    primary = fits.PrimaryHDU(header=provenance_header(prov))
    primary.header["NEXTEND"] = (1 + len(extra), "extensions (fewer: truncated)")
    with atomic_path(path) as tmp:
        fits.HDUList([primary, table] + extra).writeto(tmp, overwrite=True)
    return Path(path)


@reads("HEALPix map file")
def read_healpix_maps(path: str | Path) -> tuple[int, dict[str, np.ndarray], fits.Header]:
    """(nside, {column: full-size RING map}, table header) of a HEALPix map file; unlisted pixels of a
    partial file are ``healpy.UNSEEN`` (float maps) or 0 (integer maps)."""
    path = str(path)
    with open_fits(path) as hdul:
        hdu = next((h for h in hdul if isinstance(h, fits.BinTableHDU) and "NSIDE" in h.header), None)
        if hdu is None:
            raise InputError(f"'{path}' holds no HEALPix map table (binary table with NSIDE)")
        header = hdu.header.copy()
        nside = int(header["NSIDE"])
        if str(header.get("ORDERING", "RING")).strip() != "RING":
            raise InputError(f"'{path}': only RING-ordered HEALPix maps are supported")
        npix = hp.nside2npix(nside)
        partial = str(header.get("INDXSCHM", "IMPLICIT")).strip() == "EXPLICIT"
        names = [n for n in hdu.columns.names if not (partial and n.upper() == "PIXEL")]
        pix = np.asarray(hdu.data["PIXEL"], np.int64).ravel() if partial else None
        maps = {}
        for name in names:
            v = np.asarray(hdu.data[name]).ravel()
            if partial:
                full = np.full(npix, hp.UNSEEN if v.dtype.kind == "f" else 0, dtype=v.dtype)
                full[pix] = v
                v = full
            if v.size != npix:
                raise InputError(f"'{path}': column {name} has {v.size} values, expected {npix} for NSIDE {nside}")
            maps[name] = v
    return nside, maps, header
