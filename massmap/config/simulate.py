"""Config section `simulate`: training sets of convergence maps (``massmap simulate``).

The maps use the root sections ``seed``, ``cosmology`` and ``sources`` as well; see docs/simulate.md.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from massmap.config.core import ConfigError
from massmap.config.pm import PMConfig


@dataclass(frozen=True)
class SimulateConfig:
    kind: Literal["grf", "lognormal", "pm"] = "grf"  # Gaussian, shifted lognormal, or particle mesh
    n_maps: int = 100  # maps in the set; map i uses jax.random.fold_in(PRNGKey(seed), i)
    npix: int = 128  # pixels per side (square maps)
    pixel_size_arcmin: float = 2.0
    lognormal_shift: Optional[float] = None  # λ (κ > −λ); null = Hilbert et al. (2011) fit averaged over n(z)
    nonlinear: bool = True  # target C_ℓ from halofit (true) or linear Eisenstein-Hu P(k) (false)
    pm: PMConfig = field(default_factory=PMConfig)

    def __post_init__(self):
        if self.n_maps < 1:
            raise ConfigError(f"config key 'simulate.n_maps' must be a positive integer, got {self.n_maps}")
        if not 4 <= self.npix <= 32768:
            raise ConfigError(f"config key 'simulate.npix' must be an integer in 4..32768, got {self.npix}")
        if not self.pixel_size_arcmin > 0:
            raise ConfigError(
                f"config key 'simulate.pixel_size_arcmin' must be > 0, got {self.pixel_size_arcmin}")
        if self.lognormal_shift is not None and not self.lognormal_shift > 0:
            raise ConfigError(
                f"config key 'simulate.lognormal_shift' must be > 0 (or null), got {self.lognormal_shift}")
