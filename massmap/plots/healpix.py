"""PNG figures of HEALPix maps: Mollweide for wide footprints, gnomonic around small ones (healpy)."""
from __future__ import annotations

from pathlib import Path

import healpy as hp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from massmap.io.output import atomic_path  # noqa: E402


def observed_region(mask: np.ndarray) -> tuple[float, float, float]:
    """(RA, Dec, radius) in degrees of a circle around the observed pixels (centre = mean direction)."""
    nside = hp.npix2nside(mask.size)
    vec = np.array(hp.pix2vec(nside, np.flatnonzero(mask)))
    mean = vec.mean(axis=1)
    norm = np.linalg.norm(mean)
    if norm < 1e-6:
        return 0.0, 0.0, 180.0
    centre = mean / norm
    radius = np.degrees(np.arccos(np.clip(centre @ vec, -1.0, 1.0)).max())
    ra, dec = hp.vec2ang(centre, lonlat=True)
    return float(ra[0]) % 360.0, float(dec[0]), float(radius + np.degrees(hp.nside2resol(nside)))


def plot_healpix_maps(path: str | Path, maps: dict[str, np.ndarray], mask: np.ndarray, title: str = "",
                      view: str = "auto") -> Path:
    """A PNG of the maps: Mollweide for wide footprints, gnomonic around the observed region otherwise.

    Unobserved pixels are grey; the colour scale is symmetric (99.5th percentile of |map| where observed).
    """
    ra, dec, radius = observed_region(mask)
    if view == "auto":
        view = "gnomview" if radius < 30.0 else "mollview"
    n = len(maps)
    fig = plt.figure(figsize=(5.0 * n, 5.0 if view == "gnomview" else 4.0))
    for i, (name, m) in enumerate(maps.items()):
        shown = np.where(mask > 0, np.asarray(m, np.float64), hp.UNSEEN)
        vals = shown[mask > 0]
        vmax = float(np.percentile(np.abs(vals), 99.5)) if vals.size else 1.0
        vmax = vmax if vmax > 0 else 1.0
        kw = dict(fig=fig.number, sub=(1, n, i + 1), title=name, min=-vmax, max=vmax, cmap="RdBu_r",
                  notext=True, margins=(0.01, 0.13, 0.01, 0.08 if view == "gnomview" else 0.02))
        if view == "gnomview":
            xsize = 400
            reso = max(2.0 * radius * 60.0 / xsize, 0.1)
            hp.gnomview(shown, rot=(ra, dec), xsize=xsize, reso=reso, **kw)
        else:
            hp.mollview(shown, **kw)
        if view == "mollview":
            hp.graticule(dpar=30, dmer=30, alpha=0.3)
    where = (f"gnomonic view centred on RA {ra:.2f}, Dec {dec:.2f} deg, {2 * radius:.1f} deg across"
             if view == "gnomview" else "Mollweide view, RA increasing to the left")
    fig.text(0.5, 0.01, f"{title}\n{where}" if title else where, ha="center", va="bottom", fontsize=10)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return Path(path)
