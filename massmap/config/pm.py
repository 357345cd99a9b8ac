"""Config section `simulate.pm`: the particle-mesh simulation and its ray tracing (owned by sim/).

:func:`pm_params_of` turns the section into the :class:`massmap.sim.raytrace.PMParams` the simulation
takes (the simulation itself never sees config).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional

from massmap.config.core import ConfigError

if TYPE_CHECKING:
    from massmap.sim.raytrace import PMParams


@dataclass(frozen=True)
class PMConfig:
    box_size: float = 200.0  # comoving box side, Mpc/h (must cover the field at the farthest source)
    mesh: int = 256  # PM force-mesh cells per side
    n_particles: Optional[int] = None  # particles per side; null = mesh (one particle per cell)
    n_steps: int = 10  # kick-drift-kick steps from a_init to a = 1, uniform in a
    a_init: float = 0.1  # scale factor of the LPT initial conditions
    lpt_order: int = 2  # 1 (Zel'dovich) or 2 (2LPT) initial conditions
    plane_thickness: float = 100.0  # largest lens-plane thickness along the line of sight, Mpc/h
    pgd: bool = True  # potential-gradient-descent sharpening of the lens-plane densities (docs/simulate-pm.md)
    # PGD amplitude α(a): α at the scale factors pgd_alpha_a, linear in a between them, constant beyond the
    # ends (calibrated for cells of ~0.8 Mpc/h by benchmarks/diagnose_lightcone.py --calibrate)
    pgd_alpha_a: tuple[float, ...] = (0.46, 0.55, 0.64, 0.73, 0.82, 0.91, 1.0)
    pgd_alpha_table: tuple[float, ...] = (0.0273, 0.0196, 0.0145, 0.0102, 0.0067, 0.0056, 0.0056)
    pgd_kl: float = 0.075  # PGD high-pass scale, in units of the mesh Nyquist wavenumber π mesh / box_size
    pgd_ks: float = 2.0  # PGD low-pass scale, in units of the mesh Nyquist wavenumber
    # several local devices: false = one whole simulation per device; true = each simulation's particles
    # and meshes split over all of them (x slabs, massmap.sim.sharded): meshes larger than one device
    split_over_devices: bool = False

    def __post_init__(self):
        if self.mesh < 8:
            raise ConfigError(f"config key 'simulate.pm.mesh' must be >= 8, got {self.mesh}")
        if self.n_particles is not None and self.n_particles < 8:
            raise ConfigError(f"config key 'simulate.pm.n_particles' must be >= 8 or null, got {self.n_particles}")
        if not self.box_size > 0:
            raise ConfigError(f"config key 'simulate.pm.box_size' must be > 0, got {self.box_size}")
        if self.n_steps < 1:
            raise ConfigError(f"config key 'simulate.pm.n_steps' must be >= 1, got {self.n_steps}")
        if not 0 < self.a_init < 1:
            raise ConfigError(f"config key 'simulate.pm.a_init' must be in (0, 1), got {self.a_init}")
        if self.lpt_order not in (1, 2):
            raise ConfigError(f"config key 'simulate.pm.lpt_order' must be 1 or 2, got {self.lpt_order}")
        if len(self.pgd_alpha_a) < 1 or len(self.pgd_alpha_a) != len(self.pgd_alpha_table):
            raise ConfigError(f"config key 'simulate.pm.pgd_alpha_table' must have as many entries as "
                              f"simulate.pm.pgd_alpha_a (>= 1), got {len(self.pgd_alpha_table)} and "
                              f"{len(self.pgd_alpha_a)}")
        if not (all(0 < a <= 1 for a in self.pgd_alpha_a)
                and all(a1 < a2 for a1, a2 in zip(self.pgd_alpha_a[:-1], self.pgd_alpha_a[1:]))):
            raise ConfigError(f"config key 'simulate.pm.pgd_alpha_a' must be increasing in (0, 1], "
                              f"got {list(self.pgd_alpha_a)}")
        if not all(x >= 0 for x in self.pgd_alpha_table):
            raise ConfigError(f"config key 'simulate.pm.pgd_alpha_table' must be >= 0, "
                              f"got {list(self.pgd_alpha_table)}")
        for name in ("pgd_kl", "pgd_ks"):
            if not getattr(self, name) >= 0 or (name == "pgd_ks" and not self.pgd_ks > 0):
                raise ConfigError(f"config key 'simulate.pm.{name}' must be {'> 0' if name == 'pgd_ks' else '>= 0'}, "
                                  f"got {getattr(self, name)}")
        if not self.plane_thickness > 0:
            raise ConfigError(f"config key 'simulate.pm.plane_thickness' must be > 0, got {self.plane_thickness}")


def pm_params_of(cfg: PMConfig) -> PMParams:
    """The simulation parameters of the ``simulate.pm`` section (``n_particles: null`` → ``mesh``)."""
    from massmap.sim.raytrace import PMParams  # jax: imported only when a PM run is set up

    return PMParams(box_size=float(cfg.box_size), mesh=int(cfg.mesh), n_particles=int(cfg.n_particles or cfg.mesh),
                    n_steps=int(cfg.n_steps), a_init=float(cfg.a_init), lpt_order=int(cfg.lpt_order),
                    plane_thickness=float(cfg.plane_thickness), pgd=bool(cfg.pgd),
                    pgd_alpha_a=tuple(map(float, cfg.pgd_alpha_a)),
                    pgd_alpha_table=tuple(map(float, cfg.pgd_alpha_table)),
                    pgd_kl=float(cfg.pgd_kl), pgd_ks=float(cfg.pgd_ks),
                    split_over_devices=bool(cfg.split_over_devices))
