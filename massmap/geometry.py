"""The flat-sky map grid: a gnomonic (TAN) projection with RA increasing to the left (CDELT1 < 0).

Pixel (x, y) = (column, row), 0-based, pixel centres at integers. x grows towards West (decreasing RA),
y towards North: the native shear frame of massmap (docs/conventions.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from astropy.wcs import WCS
from astropy.wcs.utils import proj_plane_pixel_scales

from massmap.errors import InputError

MAX_NPIX = 32768  # pixels per side of one flat map at most (as config grid.npix allows)
MAX_SIDE_DEG = 90.0  # a flat map's side at most (a TAN map of 90° reaches 45° from its centre)


@dataclass(frozen=True)
class FlatGrid:
    center_ra: float  # deg
    center_dec: float  # deg
    pixel_size_arcmin: float
    ny: int
    nx: int

    def __post_init__(self):
        pix = self.pixel_size_arcmin
        if isinstance(pix, bool) or not (np.isfinite(pix) and pix > 0):
            raise InputError(f"pixel size must be a positive number of arcmin, got {pix!r}")
        side = max(self.ny, self.nx) * pix / 60.0
        if side >= MAX_SIDE_DEG:  # the gnomonic projection diverges at 90° from the centre
            raise InputError(f"a map of {max(self.ny, self.nx)} pixels of {pix:g} arcmin spans {side:.3g}°: a flat "
                             f"(TAN) map must span less than {MAX_SIDE_DEG:g}° (use HEALPix for larger areas)")

    @property
    def shape(self) -> tuple[int, int]:
        return (self.ny, self.nx)

    def wcs(self) -> WCS:
        """The 2-D celestial WCS of the grid (RA---TAN, DEC--TAN, CDELT1 < 0)."""
        w = WCS(naxis=2)
        w.wcs.ctype = ["RA---TAN", "DEC--TAN"]
        w.wcs.cunit = ["deg", "deg"]
        w.wcs.crval = [self.center_ra % 360.0, self.center_dec]
        w.wcs.crpix = [(self.nx + 1) / 2.0, (self.ny + 1) / 2.0]
        d = self.pixel_size_arcmin / 60.0
        w.wcs.cdelt = [-d, d]
        w.wcs.radesys = "ICRS"
        w.wcs.set()
        return w

    def world_to_pixel(self, ra: np.ndarray, dec: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """0-based pixel coordinates (x, y) of sky positions in degrees."""
        x, y = self.wcs().wcs_world2pix(np.asarray(ra, float), np.asarray(dec, float), 0)
        return x, y

    def pixel_to_world(self, x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(RA, Dec) in degrees, RA in [0, 360), of 0-based pixel coordinates."""
        ra, dec = self.wcs().wcs_pix2world(np.asarray(x, float), np.asarray(y, float), 0)
        return np.mod(ra, 360.0), dec


def grid_from_wcs(wcs: WCS, shape: tuple[int, int]) -> FlatGrid:
    """The FlatGrid of an image with a celestial TAN WCS with square pixels (one-line error otherwise)."""
    cel = wcs.celestial
    if cel.naxis != 2 or not cel.wcs.ctype[0].startswith("RA") or "TAN" not in cel.wcs.ctype[0]:
        raise InputError(f"WCS must be a 2-D celestial RA---TAN/DEC--TAN projection, got {list(cel.wcs.ctype)}")
    if cel.sip is not None or getattr(wcs, "sip", None) is not None:
        raise InputError("WCS has SIP distortion terms: massmap maps are undistorted TAN grids (resample the "
                         "image onto one first)")
    scales = np.abs(proj_plane_pixel_scales(cel)) * 60.0  # deg → arcmin
    if not np.isclose(scales[0], scales[1], rtol=1e-6):
        raise InputError(f"pixels must be square, got {scales[0]:.6g} x {scales[1]:.6g} arcmin")
    ny, nx = shape
    if np.allclose(cel.wcs.crpix, [(nx + 1) / 2.0, (ny + 1) / 2.0], atol=1e-9, rtol=0):
        ra, dec = [cel.wcs.crval[0]], [cel.wcs.crval[1]]  # exact, and defined on a pole (RA is not there)
    else:
        ra, dec = cel.wcs_pix2world([(nx - 1) / 2.0], [(ny - 1) / 2.0], 0)
    grid = FlatGrid(float(ra[0]) % 360.0, float(dec[0]), float(scales[0]), ny, nx)
    # The image frame must be the native one (x towards decreasing RA, y North): a diagonal pixel
    # matrix with CD1_1 < 0 < CD2_2 and the default LONPOLE (180°; 0° centred on the North pole). Read
    # from the matrix, not by mapping pixels to the sky and back, which is ill-conditioned at a pole
    # and for tiny pixels.
    m = cel.pixel_scale_matrix
    diagonal = abs(m[0, 1]) + abs(m[1, 0]) <= 1e-6 * (abs(m[0, 0]) + abs(m[1, 1]))
    pole = 0.0 if cel.wcs.crval[1] >= 90.0 else 180.0  # WCS's default LONPOLE for TAN (Calabretta & Greisen)
    if not (diagonal and m[0, 0] < 0 < m[1, 1] and np.isclose(cel.wcs.lonpole % 360.0, pole)):
        raise InputError("image WCS must be North-up, East-left (CDELT1 < 0, no rotation)")
    return grid


def circular_mean_deg(angles: np.ndarray) -> float:
    """Mean direction of angles in degrees, in [0, 360) (fields across RA = 0/360 work)."""
    a = np.deg2rad(angles)
    return float(np.rad2deg(np.arctan2(np.mean(np.sin(a)), np.mean(np.cos(a)))) % 360.0)


def grid_from_catalog(ra: np.ndarray, dec: np.ndarray, pixel_size_arcmin: float,
                      center: tuple[float, float] | None = None, npix: int | None = None) -> FlatGrid:
    """A square grid of ``pixel_size_arcmin`` pixels, with the centre and size derived from the galaxies
    where not given.

    ``center`` None: the middle of the catalog's RA/Dec extent (RA taken relative to its circular mean,
    so fields across RA = 0/360 work); ``npix`` None: just covers every galaxy (an even number).
    """
    if center is not None:
        ra0, dec0 = float(center[0]) % 360.0, float(center[1])
    else:
        mean = circular_mean_deg(ra)
        dra = (np.asarray(ra) - mean + 180.0) % 360.0 - 180.0
        ra0 = (mean + 0.5 * (dra.min() + dra.max())) % 360.0
        dec0 = 0.5 * (float(np.min(dec)) + float(np.max(dec)))
    if npix is not None:
        return FlatGrid(ra0, dec0, pixel_size_arcmin, npix, npix)
    probe = FlatGrid(ra0, dec0, pixel_size_arcmin, 1, 1)
    x, y = probe.world_to_pixel(ra, dec)
    half = float(np.max(np.abs(np.concatenate([x, y]))))
    far = np.degrees(np.arccos(np.clip(np.sin(np.radians(dec)) * np.sin(np.radians(dec0)) + np.cos(np.radians(dec))
                                       * np.cos(np.radians(dec0)) * np.cos(np.radians(np.asarray(ra) - ra0)), -1, 1)))
    if not np.isfinite(half) or 2 * half + 1.0 > MAX_NPIX or float(np.max(far)) >= 80.0:
        raise ValueError(f"the galaxies reach {float(np.max(far)):.1f} deg from the centre: too wide for one flat "
                         f"grid of {pixel_size_arcmin:g} arcmin pixels (at most {MAX_NPIX} pixels per side, 80 deg "
                         "from the centre)")
    npix = int(np.ceil(2 * half + 1.0))
    npix += npix % 2  # even sizes keep the centre on a pixel corner, as in FFT-friendly grids
    return FlatGrid(ra0, dec0, pixel_size_arcmin, npix, npix)
