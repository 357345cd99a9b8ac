"""Config section `healpix`: curved-sky maps (``massmap reconstruct --geometry healpix``).

The Wiener filter on the sphere uses the root sections ``wiener`` (C_ℓ file, solver, tolerance),
``cosmology`` and ``sources`` as well. The posterior methods ('posterior', 'map') reconstruct gnomonic
tiles with the flat-sky posterior (sections ``posterior``, ``pad``) and mosaic them; see docs/healpix.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from massmap.config.core import ConfigError

MAX_NSIDE = 8192
MAX_TILE_DEG = 60.0  # gnomonic tiles wider than this are far from flat


@dataclass(frozen=True)
class HealpixConfig:
    nside: int = 256  # HEALPix resolution (a power of two); RING ordering throughout
    lmax: Optional[int] = None  # largest multipole of the transforms; null = 3 nside − 1
    smoothing_fwhm_arcmin: float = 0.0  # Gaussian smoothing (FWHM, arcmin) of the Kaiser-Squires maps; 0 = none
    iterations: int = 3  # Jacobi refinement steps of the map → a_ℓm analysis (healpy's `iter`)
    partial: bool = False  # write only the observed pixels (explicit-index HEALPix file)
    view: Literal["auto", "mollview", "gnomview"] = "auto"  # PNG projection; auto: gnomview for small footprints
    # --- methods 'posterior' and 'map': flat-sky posterior on gnomonic tiles, mosaicked onto HEALPix ---
    tile_size_deg: float = 10.0  # side of the square gnomonic tiles
    tile_overlap_deg: float = 2.0  # overlap of neighbouring tiles = width of the cos² taper of the weights
    tile_pixel_size_arcmin: Optional[float] = None  # null: the learned prior's; Gaussian prior: HEALPix pixel size

    def __post_init__(self):
        n = self.nside
        if not (isinstance(n, int) and 1 <= n <= MAX_NSIDE and n & (n - 1) == 0):
            raise ConfigError(f"config key 'healpix.nside' must be a power of two between 1 and {MAX_NSIDE}, got {n}")
        if self.lmax is not None and not 2 <= self.lmax <= 4 * n:
            raise ConfigError(f"config key 'healpix.lmax' must be between 2 and 4 nside = {4 * n} (or null for "
                              f"3 nside - 1), got {self.lmax}")
        if not self.smoothing_fwhm_arcmin >= 0:
            raise ConfigError(f"config key 'healpix.smoothing_fwhm_arcmin' must be >= 0, got {self.smoothing_fwhm_arcmin}")
        if self.iterations < 0:
            raise ConfigError(f"config key 'healpix.iterations' must be >= 0, got {self.iterations}")
        if not 0 < self.tile_size_deg <= MAX_TILE_DEG:
            raise ConfigError(f"config key 'healpix.tile_size_deg' must be in (0, {MAX_TILE_DEG:g}], "
                              f"got {self.tile_size_deg}")
        if not 0 < self.tile_overlap_deg < self.tile_size_deg:
            raise ConfigError(f"config key 'healpix.tile_overlap_deg' must be > 0 and smaller than "
                              f"healpix.tile_size_deg ({self.tile_size_deg:g}), got {self.tile_overlap_deg}")
        if self.tile_pixel_size_arcmin is not None and not self.tile_pixel_size_arcmin > 0:
            raise ConfigError(f"config key 'healpix.tile_pixel_size_arcmin' must be > 0 or null, "
                              f"got {self.tile_pixel_size_arcmin}")

    @property
    def ell_max(self) -> int:
        """The resolved ℓ_max (3 nside − 1 when ``lmax`` is null)."""
        return 3 * self.nside - 1 if self.lmax is None else self.lmax


def tile_pixel_size(hc: HealpixConfig, prior_pixel_arcmin: float | None, healpix_pixel_arcmin: float) -> float:
    """The resolved ``healpix.tile_pixel_size_arcmin``: a learned prior's pixel scale (which a given value
    must match to 0.1%), else the given value, else the HEALPix pixel size (√ of a pixel's area)."""
    given = hc.tile_pixel_size_arcmin
    if prior_pixel_arcmin is None:
        return float(given) if given is not None else float(healpix_pixel_arcmin)
    pp = float(prior_pixel_arcmin)
    if given is not None and abs(pp / given - 1.0) > 1e-3:
        raise ConfigError(f"config key 'healpix.tile_pixel_size_arcmin' ({given:g}) must equal the learned prior's "
                          f"pixel scale ({pp:g} arcmin); leave it null or use --prior gaussian")
    return pp
