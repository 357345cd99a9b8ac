"""FITS images with a 2-D celestial WCS: massmap's map files (κ, binned shear, noise, mask).

Layout of every massmap map file: an empty primary HDU holding provenance (massmap version, command,
date, seed, inputs, and the full resolved config as HISTORY cards; NEXTEND = the number of extensions, so
that a file cut at an extension boundary is recognised as truncated), then one image extension per map
(EXTNAME = KAPPA_KS, GAMMA1, ...), each with the same 2-D celestial WCS (cubes keep the 2-D WCS on
their last two axes), then optional binary tables (e.g. DIAGNOSTICS).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import yaml
from astropy.io import fits
from astropy.wcs import WCS

from massmap.geometry import FlatGrid, grid_from_wcs
from massmap.io.catalog import open_fits
from massmap.io.inputs import reads
from massmap.io.output import InputError, atomic_path


def provenance_header(prov: dict[str, Any]) -> fits.Header:
    """Primary header cards for a provenance dict (see massmap.io.output.provenance)."""
    h = fits.Header()
    h["ORIGIN"] = "massmap"
    h["MMVERS"] = (prov["massmap_version"], "massmap version")
    h["MMCMD"] = (prov["command"], "massmap command")
    h["DATE"] = (prov["date"], "UTC time of writing")
    if prov.get("seed") is not None:
        h["SEED"] = (int(prov["seed"]), "PRNG seed")
    for i, (k, v) in enumerate(prov.get("inputs", {}).items()):
        h[f"INKEY{i}"] = (str(k)[:68], "input name")
        h[f"INVAL{i}"] = (str(v)[:68], "input value")
    h.add_comment("Resolved massmap config (YAML) in HISTORY cards below;")
    h.add_comment(f"a card starting with '{_CONTINUE}' continues the previous line.")
    for line in yaml.safe_dump(prov["config"], sort_keys=False, width=1000).splitlines():
        for i, piece in enumerate(_split_card_text(line)):
            h.add_history(piece if i == 0 else _CONTINUE + piece)
    return h


_CONTINUE = "+ "  # marks a HISTORY card that continues the previous YAML line (YAML lines never start so)
_CARD_TEXT = 70  # characters per HISTORY card, below FITS's 72 so that astropy never splits a card


def _split_card_text(line: str) -> list[str]:
    """Split a long line into pieces of at most _CARD_TEXT characters, none ending in a space
    (FITS drops trailing blanks), so that joining the pieces restores the line exactly."""
    pieces = []
    while len(line) > _CARD_TEXT:
        cut = _CARD_TEXT
        while cut > 1 and line[cut - 1] == " ":
            cut -= 1
        pieces.append(line[:cut])
        line = line[cut:]
    pieces.append(line)
    return pieces


def config_from_header(header: fits.Header) -> dict:
    """The resolved config recorded in a massmap file's primary header (InputError if unreadable)."""
    lines: list[str] = []
    for card in (str(v) for v in header.get("HISTORY", [])):
        if card.startswith(_CONTINUE) and lines:
            lines[-1] += card[len(_CONTINUE):]
        else:
            lines.append(card)
    try:
        cfg = yaml.safe_load("\n".join(lines))
    except yaml.YAMLError:
        raise InputError("the recorded config (HISTORY cards) is not readable YAML") from None
    if cfg is None:
        return {}
    if not isinstance(cfg, dict):
        raise InputError("the recorded config (HISTORY cards) is not a mapping of keys")
    return cfg


def _table_header(scalars: dict[str, Any]) -> fits.Header:
    """Scalar diagnostics as header cards (long names as HIERARCH; NaN/inf, not allowed in FITS, as text)."""
    h = fits.Header()
    for key, value in scalars.items():
        if isinstance(value, (float, np.floating)) and not np.isfinite(value):
            value = str(float(value))
        elif isinstance(value, np.generic):
            value = value.item()
        name = key.upper()
        h[name if len(name) <= 8 and " " not in name else f"HIERARCH {name}"] = value
    return h


def write_maps(path: str | Path, grid: FlatGrid, images: dict[str, np.ndarray], prov: dict[str, Any],
               tables: dict[str, dict[str, np.ndarray]] | None = None,
               table_scalars: dict[str, dict[str, Any]] | None = None) -> Path:
    """Write images (2-D (ny, nx) or 3-D (n, ny, nx)) and tables to ``path`` atomically.

    ``tables`` maps an extension name to equal-length columns; ``table_scalars`` adds scalar values
    to that table's header.
    """
    wcs_header = grid.wcs().to_header()
    hdus = [fits.PrimaryHDU(header=provenance_header(prov))]
    for name, arr in images.items():
        data = np.asarray(arr)
        data = data.astype(np.float32) if data.dtype.kind == "f" else data
        hdu = fits.ImageHDU(data=data, header=wcs_header.copy(), name=name)
        hdus.append(hdu)
    for name, cols in (tables or {}).items():
        columns = []
        for cname, values in cols.items():
            v = np.asarray(values)
            fmt = "D" if v.dtype.kind == "f" else ("K" if v.dtype.kind in "iu" else f"{max(1, v.dtype.itemsize)}A")
            columns.append(fits.Column(name=cname, format=fmt, array=v))
        hdu = fits.BinTableHDU.from_columns(columns, name=name)
        hdu.header.extend(_table_header((table_scalars or {}).get(name, {})))
        hdus.append(hdu)
    hdus[0].header["NEXTEND"] = (len(hdus) - 1, "extensions (fewer: truncated)")
    with atomic_path(path) as tmp:
        fits.HDUList(hdus).writeto(tmp, overwrite=True)
    return Path(path)


@reads("FITS file")
def image_hdu_names(path: str | Path) -> list[str]:
    with open_fits(path) as hdul:
        return [h.name for h in hdul if h.is_image and h.data is not None]


@reads("FITS file")
def is_binned_shear(path: str | Path) -> bool:
    """True for a FITS file with GAMMA1 and GAMMA2 image extensions."""
    with open_fits(path) as hdul:
        names = {h.name for h in hdul}
    return {"GAMMA1", "GAMMA2"} <= names


@reads("binned shear map")
def read_binned_shear(path: str | Path):
    """Read GAMMA1, GAMMA2, NOISE_STD (0 or NaN = no data) and optional MASK (1 = data).

    Returns (grid, g1, g2, noise_std, mask) with masked pixels zeroed.
    """
    path = str(path)
    with open_fits(path) as hdul:
        names = {h.name for h in hdul}
        for need in ("GAMMA1", "GAMMA2", "NOISE_STD"):
            if need not in names:
                raise InputError(f"binned shear file '{path}' has no '{need}' image extension "
                                 f"(found: {', '.join(sorted(n for n in names if n != 'PRIMARY'))})")
        for name in ("GAMMA1", "GAMMA2", "NOISE_STD", "MASK"):
            hdu = hdul[name] if name in names else None
            if hdu is not None and (not hdu.is_image or hdu.data is None or hdu.data.dtype.kind not in "biuf"):
                raise InputError(f"binned shear file '{path}': extension {name} is not a numeric image")
        g1 = np.asarray(hdul["GAMMA1"].data, np.float64)
        g2 = np.asarray(hdul["GAMMA2"].data, np.float64)
        noise = np.asarray(hdul["NOISE_STD"].data, np.float64)
        mask = np.asarray(hdul["MASK"].data) if "MASK" in names else None
        if g1.ndim != 2 or g1.shape != g2.shape or g1.shape != noise.shape:
            raise InputError(f"binned shear file '{path}': GAMMA1, GAMMA2, NOISE_STD must be 2-D images of one shape")
        grid = grid_from_wcs(WCS(hdul["GAMMA1"].header), g1.shape)
    good = np.isfinite(noise) & (noise > 0) & np.isfinite(g1) & np.isfinite(g2)
    if mask is not None:
        if mask.shape != g1.shape:
            raise InputError(f"binned shear file '{path}': MASK has shape {mask.shape}, expected {g1.shape}")
        good &= mask.astype(bool)
    if not good.any():
        raise InputError(f"binned shear file '{path}' has no pixel with data")
    g1 = np.where(good, g1, 0.0).astype(np.float32)
    g2 = np.where(good, g2, 0.0).astype(np.float32)
    noise = np.where(good, noise, 0.0).astype(np.float32)
    return grid, g1, g2, noise, good.astype(np.uint8)


@reads("κ map")
def read_kappa_image(path: str | Path, extname: str | None = None) -> tuple[FlatGrid, np.ndarray]:
    """A 2-D κ image with celestial WCS: the named extension, else KAPPA, else the first 2-D image."""
    path = str(path)
    with open_fits(path) as hdul:
        hdu = None
        if extname is not None:
            if extname not in hdul:
                raise InputError(f"'{path}' has no image extension '{extname}'")
            hdu = hdul[extname]
        else:
            for cand in ("KAPPA", "KAPPA_TRUE"):
                if cand in hdul:
                    hdu = hdul[cand]
                    break
            if hdu is None:
                hdu = next((h for h in hdul if h.is_image and h.data is not None and h.data.ndim == 2), None)
        if hdu is None or not hdu.is_image or hdu.data is None or hdu.data.ndim != 2 \
                or hdu.data.dtype.kind not in "iuf":
            raise InputError(f"'{path}' holds no 2-D numeric image (expected a κ map with a celestial WCS)")
        data = np.asarray(hdu.data, np.float32)
        wcs = WCS(hdu.header)
    if not wcs.has_celestial:
        raise InputError(f"'{path}': the image has no celestial WCS (RA---TAN/DEC--TAN expected)")
    if not np.all(np.isfinite(data)):
        raise InputError(f"'{path}': the κ image holds NaN or inf values")
    return grid_from_wcs(wcs, data.shape), data
