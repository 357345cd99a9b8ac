"""Config section `simulate.pm`: the particle-mesh simulation and its ray tracing (owned by sim/)."""
from __future__ import annotations

from dataclasses import dataclass

from massmap.config.core import ConfigError


@dataclass(frozen=True)
class PMConfig:
    box_size: float = 200.0  # comoving box side, Mpc/h
    mesh: int = 64  # PM cells per side
    n_steps: int = 10  # kick-drift-kick steps from a_init to a = 1
    a_init: float = 0.1  # scale factor of the 2LPT initial conditions

    def __post_init__(self):
        if self.mesh < 8:
            raise ConfigError(f"config key 'simulate.pm.mesh' must be >= 8, got {self.mesh}")
        if not self.box_size > 0:
            raise ConfigError(f"config key 'simulate.pm.box_size' must be > 0, got {self.box_size}")
        if self.n_steps < 1:
            raise ConfigError(f"config key 'simulate.pm.n_steps' must be >= 1, got {self.n_steps}")
        if not 0 < self.a_init < 1:
            raise ConfigError(f"config key 'simulate.pm.a_init' must be in (0, 1), got {self.a_init}")
