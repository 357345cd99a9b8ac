"""Gnomonic (TAN) tiles of a HEALPix footprint: flat-sky reconstructions of wide fields, mosaicked back.

A wide footprint is covered by square gnomonic tiles (side L = ``size_deg``, neighbours overlapping by
o = ``overlap_deg``); every tile is an ordinary flat grid (:class:`massmap.geometry.FlatGrid`, astropy
WCS), reconstructed by the flat-sky code, and the tile κ maps are reprojected onto HEALPix pixels.

*Tile centres* (:func:`tile_centres`). Rings of constant Dec, spaced by at most s = L − o, span the
footprint's Dec range; a ring's centres are spaced by at most s along the parallel at the ring band's
edge nearest the equator (360°/n apart, so rings close around RA = 0/360), phased on the footprint's
mean RA; within s/2 of a pole one tile sits on the pole. Each footprint point is thus within s/2 of a
tile centre along both tile axes, up to the O(θ²) curvature of parallels in the tangent plane (the
overlap margin absorbs it). Tiles whose central s × s square (plus o/4) holds no observed pixel are
dropped.

*Shear rotation* (:func:`local_west_angle`, :func:`rotate_spin2`). Catalog shear is in the native frame
of each galaxy: +e1 along local West, +e2 along local North-West (docs/conventions.md). In a tile, the
pixel axes (+x West, +y North at the tile centre) differ from the local frame away from the centre:
meridians converge. Let ψ be the angle, counted from the tile's +x axis towards +y, of the projected
local West direction, i.e. the projected local North direction minus 90°. A shape at angle β in the
local frame lies at β + ψ in the tile frame, so the shear in the tile frame is γ' = γ e^{2iψ}. ψ comes
from the WCS by a finite difference along the meridian; in closed form (meridians are straight lines
through the projected pole, tangent-plane coordinates (x, y) in radians, +x West, tile centre Dec δ₀)

    ψ = atan2(x sin δ₀, cos δ₀ − y sin δ₀),

zero on the central meridian, on the equator of an equatorial tile, and at the centre. The projection
is not conformal, so the projected local West is not exactly perpendicular to the projected North;
the difference (and that to parallel transport from the tile centre) is O(θ²), below the flat-sky
error of the tile itself. Responses (1 + m) R rotate with the shear: the diagonal of the rotated
response tensor is kept, R'₁₁ = R₁₁ cos²2ψ + R₂₂ sin²2ψ (exact when R₁₁ = R₂₂).

*Weights and mosaic* (:func:`taper_weight`, :func:`tile_footprint`, :class:`Mosaic`). A tile weighs
a HEALPix pixel by t(x) t(y), with x, y its tangent-plane offsets (degrees) and t(u) = 1 for
|u| ≤ L/2 − o, cos²(π/2 (|u| − L/2 + o)/o) out to the tile edge |u| = L/2, 0 beyond: a smooth
partition of unity across the overlap of two aligned neighbours, and zero weight where flat
reconstructions suffer most (the tile edge). The mosaic is Σ_t w_t κ_t / Σ_t w_t. The tile map is
sampled at the centres of the HEALPix pixel's sub-pixels at nside·k (k, a power of two, makes them no
larger than a tile pixel) by cubic-spline interpolation and averaged: the HEALPix value is the pixel
average of the tile map (for k = 1, tile pixels as large as the HEALPix pixels, the value at the
centre: the binned tile data already carry a pixel window of that size, which is not applied twice).

*Posterior std*. Each tile gives the mean μ_t and variance σ_t² of its samples after reprojection
(so σ_t refers to HEALPix pixel averages). The mosaic is the weighted mixture of the tile posteriors:
mean μ = Σ w_t μ_t / W and, by the law of total variance, σ² = Σ w_t (σ_t² + μ_t²) / W − μ², i.e. the
weighted mean of the tile variances plus the weighted scatter of the tile means (tile disagreement
in an overlap counts as uncertainty). Samples are not mosaicked: pairing independent tile chains
would give a map whose pixel variance (Σ w_t² σ_t² / W²) is not that of the mixture.
"""
from __future__ import annotations

from typing import NamedTuple

import healpy as hp
import numpy as np
from scipy import ndimage

from massmap.geometry import FlatGrid, circular_mean_deg
from massmap.binning import ShearCatalog

FD_STEP_DEG = 1e-4  # Dec step of the finite difference giving the projected local North


def tile_npix(size_deg: float, pixel_size_arcmin: float, pad: int = 0, multiple: int = 2) -> int:
    """Pixels per tile side: the smallest even n ≥ L/pixel with (n + 2 pad) a multiple of ``multiple``."""
    n = max(4, int(np.ceil(size_deg * 60.0 / pixel_size_arcmin - 1e-9)))
    n += n % 2
    while (n + 2 * pad) % multiple:
        n += 2
    return n


def tile_grid(ra: float, dec: float, npix: int, pixel_size_arcmin: float) -> FlatGrid:
    """The square TAN grid of a tile centred on (RA, Dec) in degrees (North up, East left)."""
    return FlatGrid(float(ra) % 360.0, float(dec), float(pixel_size_arcmin), int(npix), int(npix))


def plane_coords(grid: FlatGrid, ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Tangent-plane offsets (x, y) in degrees from the tile centre, +x West, +y North (TAN intermediate
    world coordinates: (180/π) times the gnomonic standard coordinates). Only for points < 90° away."""
    x, y = grid.world_to_pixel(ra, dec)
    scale = grid.pixel_size_arcmin / 60.0
    return (x - (grid.nx - 1) / 2.0) * scale, (y - (grid.ny - 1) / 2.0) * scale


def unit_vectors(ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """(n, 3) unit vectors of (RA, Dec) in degrees."""
    return np.atleast_2d(hp.ang2vec(np.asarray(ra, np.float64), np.asarray(dec, np.float64), lonlat=True))


def angular_radius(half_width_deg: float) -> float:
    """Angular distance (radians) from the centre of a tile's corner at half-width ``half_width_deg``."""
    return float(np.arctan(np.sqrt(2.0) * np.radians(half_width_deg)))


def tile_centres(mask: np.ndarray, size_deg: float, overlap_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """(RA, Dec) in degrees of the tile centres covering the observed pixels of a HEALPix RING ``mask``."""
    mask = np.asarray(mask)
    nside = hp.npix2nside(mask.size)
    obs = np.flatnonzero(mask)
    if obs.size == 0:
        raise ValueError("the HEALPix mask has no observed pixel")
    ra_p, dec_p = hp.pix2ang(nside, obs, lonlat=True)
    step = size_deg - overlap_deg
    half = step / 2.0
    lo, hi = float(dec_p.min()), float(dec_p.max())
    ra0 = circular_mean_deg(ra_p)
    cand: list[tuple[float, float]] = []
    if hi > 90.0 - half:
        cand.append((0.0, 90.0))
        hi = 90.0 - half
    if lo < -90.0 + half:
        cand.append((0.0, -90.0))
        lo = -90.0 + half
    if hi >= lo:
        n_ring = max(1, int(np.ceil((hi - lo) / step - 1e-9)))
        spacing = (hi - lo) / n_ring
        for j in range(n_ring):
            dec_j = lo + (j + 0.5) * spacing
            e1, e2 = dec_j - spacing / 2.0, dec_j + spacing / 2.0
            dec_eq = 0.0 if e1 <= 0.0 <= e2 else min(abs(e1), abs(e2))
            n_ra = max(1, int(np.ceil(360.0 * np.cos(np.radians(dec_eq)) / step - 1e-9)))
            cand += [((ra0 + 360.0 * k / n_ra) % 360.0, dec_j) for k in range(n_ra)]
    # keep the tiles whose central (s + o/2)² square holds an observed pixel
    keep_half = half + overlap_deg / 4.0
    obs_mask = np.zeros(mask.size, bool)
    obs_mask[obs] = True
    kept = []
    for ra_c, dec_c in cand:
        near = hp.query_disc(nside, unit_vectors(ra_c, dec_c)[0], angular_radius(keep_half), inclusive=True)
        near = near[obs_mask[near]]
        if near.size == 0:
            continue
        x, y = plane_coords(tile_grid(ra_c, dec_c, 2, 60.0), *hp.pix2ang(nside, near, lonlat=True))
        if np.any((np.abs(x) <= keep_half) & (np.abs(y) <= keep_half)):
            kept.append((ra_c, dec_c))
    arr = np.array(kept, np.float64).reshape(-1, 2)
    return arr[:, 0], arr[:, 1]


def local_west_angle(grid: FlatGrid, ra: np.ndarray, dec: np.ndarray) -> np.ndarray:
    """ψ (radians): angle of the projected local West at (RA, Dec), from the tile's +x towards +y.

    The projected local North is the WCS image of a small Dec step; West is 90° clockwise from it
    (module docstring: closed form atan2(x sin δ₀, cos δ₀ − y sin δ₀)).
    """
    ra = np.asarray(ra, np.float64)
    dec = np.asarray(dec, np.float64)
    h = np.where(dec + FD_STEP_DEG > 90.0, -FD_STEP_DEG, FD_STEP_DEG)
    x0, y0 = grid.world_to_pixel(ra, dec)
    x1, y1 = grid.world_to_pixel(ra, dec + h)
    sign = np.sign(h)
    north = np.arctan2(sign * (y1 - y0), sign * (x1 - x0))
    return np.mod(north - 0.5 * np.pi + np.pi, 2.0 * np.pi) - np.pi  # in [−π, π)


def rotate_spin2(e1: np.ndarray, e2: np.ndarray, psi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """γ' = γ e^{2iψ}: a spin-2 field expressed in a frame whose x axis is at −ψ from the old one."""
    c, s = np.cos(2.0 * psi), np.sin(2.0 * psi)
    return c * e1 - s * e2, s * e1 + c * e2


def rotate_response(r1: np.ndarray, r2: np.ndarray, psi: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Diagonal of the per-component response diag(R₁₁, R₂₂) rotated by 2ψ."""
    c2, s2 = np.cos(2.0 * psi) ** 2, np.sin(2.0 * psi) ** 2
    return c2 * r1 + s2 * r2, s2 * r1 + c2 * r2


def tile_catalog(cat: ShearCatalog, grid: FlatGrid, vectors: np.ndarray | None = None) -> ShearCatalog:
    """The galaxies of ``cat`` on the tile grid, with shear and responses rotated into the tile frame.

    ``vectors``: the catalog's unit vectors (:func:`unit_vectors`), to skip recomputing them per tile.
    """
    vec = unit_vectors(cat.ra, cat.dec) if vectors is None else vectors
    half = grid.nx * grid.pixel_size_arcmin / 120.0
    near = np.flatnonzero(vec @ unit_vectors(grid.center_ra, grid.center_dec)[0]
                          > np.cos(angular_radius(half) + 1e-6))
    x, y = grid.world_to_pixel(cat.ra[near], cat.dec[near])
    inside = (x >= -0.5) & (x < grid.nx - 0.5) & (y >= -0.5) & (y < grid.ny - 0.5)
    sel = near[inside]
    ra, dec = cat.ra[sel], cat.dec[sel]
    psi = local_west_angle(grid, ra, dec)
    e1, e2 = rotate_spin2(cat.e1[sel], cat.e2[sel], psi)
    r1, r2 = rotate_response(cat.response[0, sel], cat.response[1, sel], psi)
    return ShearCatalog(cat.path, ra, dec, e1, e2, cat.weight[sel], np.vstack([r1, r2]), int(sel.size), 0)


def taper_weight(x_deg: np.ndarray, y_deg: np.ndarray, size_deg: float, overlap_deg: float) -> np.ndarray:
    """t(x) t(y): 1 in the tile core, cos² down to 0 over the last ``overlap_deg`` before the edge."""
    edge = size_deg / 2.0

    def t(u):
        r = np.clip((np.abs(u) - (edge - overlap_deg)) / overlap_deg, 0.0, 1.0)
        return np.where(r < 1.0, np.cos(0.5 * np.pi * r) ** 2, 0.0)  # exactly 0 from the edge on

    return t(np.asarray(x_deg, np.float64)) * t(np.asarray(y_deg, np.float64))


def oversampling(nside: int, pixel_size_arcmin: float) -> int:
    """Smallest power of two k such that HEALPix sub-pixels at nside·k are no larger than a tile pixel."""
    res = np.degrees(hp.nside2resol(nside)) * 60.0
    k = 1
    while res / k > pixel_size_arcmin * (1 + 1e-9) and nside * k < 2**28:
        k *= 2
    return k


class TileFootprint(NamedTuple):
    """The HEALPix pixels a tile contributes to, their weights and where to sample the tile map."""

    pixels: np.ndarray  # RING indices (n,)
    weight: np.ndarray  # taper weight at the pixel centre (n,)
    x: np.ndarray  # 0-based tile pixel coordinates of the k² sub-pixel centres (n, k²)
    y: np.ndarray


def tile_weights(grid: FlatGrid, nside: int, size_deg: float, overlap_deg: float) -> tuple[np.ndarray, np.ndarray]:
    """(RING pixels, taper weights) of the HEALPix pixels whose centres have positive weight in a tile."""
    centre = unit_vectors(grid.center_ra, grid.center_dec)[0]
    cand = hp.query_disc(nside, centre, angular_radius(size_deg / 2.0), inclusive=True)
    x, y = plane_coords(grid, *hp.pix2ang(nside, cand, lonlat=True))
    w = taper_weight(x, y, size_deg, overlap_deg)
    keep = w > 0
    return cand[keep], w[keep]


def tile_footprint(grid: FlatGrid, nside: int, size_deg: float, overlap_deg: float,
                   oversample: int = 1) -> TileFootprint:
    """The HEALPix pixels (RING, ``nside``) with positive weight in a tile and their sub-pixel samples."""
    pix, w = tile_weights(grid, nside, size_deg, overlap_deg)
    k2 = oversample * oversample
    if oversample > 1:
        kids = (hp.ring2nest(nside, pix)[:, None] * k2 + np.arange(k2)[None, :]).ravel()
        sx, sy = grid.world_to_pixel(*hp.pix2ang(nside * oversample, kids, nest=True, lonlat=True))
    else:
        sx, sy = grid.world_to_pixel(*hp.pix2ang(nside, pix, lonlat=True))
    return TileFootprint(pix, w, np.reshape(sx, (pix.size, k2)), np.reshape(sy, (pix.size, k2)))


def sample_tile_maps(maps: np.ndarray, fp: TileFootprint) -> np.ndarray:
    """Tile maps (..., ny, nx) at the footprint's HEALPix pixels: (..., n).

    Cubic-spline interpolation (``scipy.ndimage.map_coordinates``, order 3, edge values held beyond the
    grid) at the k² sub-pixel centres, averaged over them (a plain point value when k = 1).
    """
    maps = np.asarray(maps, np.float64)
    ny, nx = maps.shape[-2:]
    flat = maps.reshape(-1, ny, nx)
    coords = np.stack([fp.y.ravel(), fp.x.ravel()])
    out = np.stack([ndimage.map_coordinates(m, coords, order=3, mode="nearest") for m in flat])
    return out.reshape(maps.shape[:-2] + fp.x.shape).mean(axis=-1)


class Mosaic(NamedTuple):
    """Running weighted sums over tiles on a full HEALPix map (float64)."""

    weight: np.ndarray  # W = Σ_t w_t
    sums: dict  # name → Σ_t w_t v_t


def mosaic_init(nside: int, names: tuple[str, ...]) -> Mosaic:
    npix = hp.nside2npix(nside)
    return Mosaic(np.zeros(npix), {n: np.zeros(npix) for n in names})


def mosaic_add(mosaic: Mosaic, fp: TileFootprint, values: dict[str, np.ndarray]) -> Mosaic:
    """Add one tile's reprojected values (one per footprint pixel) with its weights (arrays updated in place)."""
    mosaic.weight[fp.pixels] += fp.weight
    for name, v in values.items():
        mosaic.sums[name][fp.pixels] += fp.weight * np.asarray(v, np.float64)
    return mosaic


def mosaic_average(mosaic: Mosaic, name: str, missing: float = hp.UNSEEN) -> np.ndarray:
    """Σ w v / Σ w, and ``missing`` where no tile covers the pixel."""
    covered = mosaic.weight > 0
    out = np.full(mosaic.weight.shape, missing, np.float64)
    out[covered] = mosaic.sums[name][covered] / mosaic.weight[covered]
    return out


def mosaic_mixture_std(mosaic: Mosaic, mean: str, second_moment: str, missing: float = hp.UNSEEN) -> np.ndarray:
    """√(Σ w (σ_t² + μ_t²) / W − μ²): the std of the weighted mixture of tile posteriors."""
    covered = mosaic.weight > 0
    mu = mosaic.sums[mean][covered] / mosaic.weight[covered]
    var = mosaic.sums[second_moment][covered] / mosaic.weight[covered] - mu**2
    out = np.full(mosaic.weight.shape, missing, np.float64)
    out[covered] = np.sqrt(np.maximum(var, 0.0))
    return out
