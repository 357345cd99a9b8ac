"""The one configuration schema of massmap: every section and key, with defaults.

Sections used by several commands (grid, catalog, noise, cosmology, sources) live here; sections
owned by one command live beside this file (simulate.py, prior.py, posterior.py, summarize.py) and
are composed into :class:`Config` below.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from massmap.config.core import ConfigError
from massmap.config.healpix import HealpixConfig
from massmap.config.posterior import PosteriorConfig
from massmap.config.prior import PriorConfig
from massmap.config.simulate import SimulateConfig
from massmap.config.summarize import SummarizeConfig


MAX_NPIX = 32768  # pixels per side of a flat map at most (4 GiB per float32 map): larger is a typo (= geometry.MAX_NPIX)


@dataclass(frozen=True)
class GridConfig:
    """Flat-sky map grid: gnomonic (TAN) projection about ``center``."""

    center: Optional[tuple[float, float]] = None  # (RA, Dec) in deg; null = centre of the catalog
    pixel_size_arcmin: Optional[float] = None  # null: the learned prior's scale, else DEFAULT_PIXEL_SIZE_ARCMIN
    npix: Optional[int] = None  # pixels per side; null = just covers the catalog's extent

    def __post_init__(self):
        if self.pixel_size_arcmin is not None and not self.pixel_size_arcmin > 0:
            raise ConfigError(f"config key 'grid.pixel_size_arcmin' must be > 0, got {self.pixel_size_arcmin}")
        if self.npix is not None and not 0 < self.npix <= MAX_NPIX:
            raise ConfigError(f"config key 'grid.npix' must be a positive integer <= {MAX_NPIX}, got {self.npix}")
        if self.center is not None and not -90 <= self.center[1] <= 90:
            raise ConfigError(f"config key 'grid.center': Dec must be within [-90, 90], got {self.center[1]}")


DEFAULT_PIXEL_SIZE_ARCMIN = 1.0  # a null grid.pixel_size_arcmin without a learned prior


def grid_pixel_size(gc: GridConfig, prior_pixel_size_arcmin: float | None = None) -> float:
    """The resolved ``grid.pixel_size_arcmin``: given, else the learned prior's pixel scale (the run's
    posterior prior), else DEFAULT_PIXEL_SIZE_ARCMIN."""
    if gc.pixel_size_arcmin is not None:
        return float(gc.pixel_size_arcmin)
    if prior_pixel_size_arcmin is not None:
        return float(prior_pixel_size_arcmin)
    return DEFAULT_PIXEL_SIZE_ARCMIN


@dataclass(frozen=True)
class ColumnsConfig:
    """Catalog column names (matched case-insensitively; null = try the usual survey names)."""

    ra: Optional[str] = None
    dec: Optional[str] = None
    e1: Optional[str] = None
    e2: Optional[str] = None
    weight: Optional[str] = None  # null: use a column named like WEIGHT when present, else 1
    m: Optional[str] = None  # per-object multiplicative bias column
    c1: Optional[str] = None  # per-object additive bias columns
    c2: Optional[str] = None
    r11: Optional[str] = None  # metacalibration response columns
    r22: Optional[str] = None


@dataclass(frozen=True)
class SelectConfig:
    """Keep rows with ``min <= column < max`` (e.g. a tomographic bin); null column = keep all."""

    column: Optional[str] = None
    min: Optional[float] = None
    max: Optional[float] = None


@dataclass(frozen=True)
class CatalogConfig:
    columns: ColumnsConfig = field(default_factory=ColumnsConfig)
    flip_e1: bool = False
    flip_e2: bool = False
    m: float = 0.0  # constant multiplicative bias: e_true = (e - c) / (1 + m)
    c1: float = 0.0
    c2: float = 0.0
    subtract_mean: bool = False  # subtract the weighted mean shear after calibration
    select: SelectConfig = field(default_factory=SelectConfig)


@dataclass(frozen=True)
class NoiseConfig:
    sigma_e: Optional[float] = None  # per-component shape noise; null = estimated from the catalog

    def __post_init__(self):
        if self.sigma_e is not None and not self.sigma_e > 0:
            raise ConfigError(f"config key 'noise.sigma_e' must be > 0, got {self.sigma_e}")


@dataclass(frozen=True)
class WienerConfig:
    cl_file: Optional[str] = None  # two columns (ell, C_ell); null = C_ell from `cosmology` and `sources`
    solver: Literal["auto", "fourier", "cg"] = "auto"  # auto: closed form when exact, else CG
    tol: float = 1e-5  # CG stops when |r| / |b| < tol
    max_iter: int = 1000

    def __post_init__(self):
        if not self.tol > 0:
            raise ConfigError(f"config key 'wiener.tol' must be > 0, got {self.tol}")
        if self.max_iter <= 0:
            raise ConfigError(f"config key 'wiener.max_iter' must be > 0, got {self.max_iter}")


@dataclass(frozen=True)
class CosmologyConfig:
    """Flat wCDM parameters (defaults: Planck 2015, as jax_cosmo.Planck15)."""

    Omega_c: float = 0.2589
    Omega_b: float = 0.0486
    h: float = 0.6774
    sigma8: float = 0.8159
    n_s: float = 0.9667
    w0: float = -1.0

    def __post_init__(self):
        for name in ("Omega_c", "Omega_b", "h", "sigma8", "n_s"):
            if not getattr(self, name) > 0:
                raise ConfigError(f"config key 'cosmology.{name}' must be > 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class SourcesConfig:
    """Source redshift distribution: one redshift, a Smail n(z), or a two-column file (z, n(z))."""

    nz: Literal["delta", "smail", "file"] = "delta"
    z_source: float = 1.0  # for nz: delta
    smail_a: float = 2.0  # n(z) ∝ z^a exp(-(z/z0)^b)
    smail_b: float = 1.5
    smail_z0: float = 0.5
    nz_file: Optional[str] = None

    def __post_init__(self):
        if not self.z_source > 0:
            raise ConfigError(f"config key 'sources.z_source' must be > 0, got {self.z_source}")
        if self.nz == "file" and not self.nz_file:
            raise ConfigError("config key 'sources.nz_file' must be set when sources.nz is 'file'")


@dataclass(frozen=True)
class MockConfig:
    """Mock shear catalogs drawn from a κ map."""

    n_gal: float = 30.0  # galaxies per arcmin² (with positions: at most, over the pixels they occupy)
    sigma_e: float = 0.26  # per-component shape noise (0 = noiseless)
    positions: Optional[str] = None  # a shear catalog whose galaxy positions (footprint) the mock takes;
    # null: uniform positions

    def __post_init__(self):
        if not self.n_gal > 0:
            raise ConfigError(f"config key 'mock.n_gal' must be > 0, got {self.n_gal}")
        if self.sigma_e < 0:
            raise ConfigError(f"config key 'mock.sigma_e' must be >= 0, got {self.sigma_e}")


@dataclass(frozen=True)
class ExperimentConfig:
    """What `make experiment CONFIG=...` reconstructs (see the Makefile and docs/tutorial.md)."""

    catalog: Optional[str] = None  # a real shear catalog; null = a mock catalog of simulated map `index`
    index: int = 0  # the simulated map that the mock catalog (and the truth) comes from

    def __post_init__(self):
        if self.index < 0:
            raise ConfigError(f"config key 'experiment.index' must be >= 0, got {self.index}")


SEED_MAX = 2**32 - 1


@dataclass(frozen=True)
class Config:
    seed: int = 0
    pad: int = 32  # zero padding in pixels on each side of the map (0 = periodic)
    grid: GridConfig = field(default_factory=GridConfig)
    catalog: CatalogConfig = field(default_factory=CatalogConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    wiener: WienerConfig = field(default_factory=WienerConfig)
    cosmology: CosmologyConfig = field(default_factory=CosmologyConfig)
    sources: SourcesConfig = field(default_factory=SourcesConfig)
    mock: MockConfig = field(default_factory=MockConfig)
    simulate: SimulateConfig = field(default_factory=SimulateConfig)
    prior: PriorConfig = field(default_factory=PriorConfig)
    posterior: PosteriorConfig = field(default_factory=PosteriorConfig)
    summarize: SummarizeConfig = field(default_factory=SummarizeConfig)
    experiment: ExperimentConfig = field(default_factory=ExperimentConfig)
    healpix: HealpixConfig = field(default_factory=HealpixConfig)

    def __post_init__(self):
        if not 0 <= self.seed <= SEED_MAX:
            # JAX keys hold 32 bits: PRNGKey(2**32 + s) is PRNGKey(s), so larger seeds would repeat
            raise ConfigError(f"config key 'seed' must be an integer from 0 to {SEED_MAX} (a JAX key holds 32 "
                              f"bits), got {self.seed}")
        if self.pad < 0:
            raise ConfigError(f"config key 'pad' must be >= 0, got {self.pad}")
