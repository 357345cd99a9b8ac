"""Convergence maps from the embedded particle-mesh simulation: the `pm` kind of `massmap simulate`.

One call runs a 2LPT + FastPM N-body simulation of a periodic box, cuts lens planes from its outputs
on the past lightcone (box replicated with random symmetries, lightcone.py) and sums them into a Born
κ map. It takes a :class:`massmap.cosmology.Cosmology`, the sources as
:class:`massmap.cosmology.SourceRedshifts`, the simulation settings as :class:`PMParams` (lengths in
Mpc/h) and the map as npix and a pixel size in arcmin. Geometry rules (checked before any work by
:func:`check_geometry`, a :class:`GeometryError` — a ValueError — naming the PMParams field):

* the field must fit in the box at the end of the lightcone: npix · θ_pix · χ_far ≤ L (``box_size``),
  otherwise a ray bundle would see the periodic images of the same structures side by side in one plane;
* the mesh must resolve the map: a mesh cell L/N may be at most 4 pixels wide at χ_far (``mesh``); a
  finer map would only oversample the PM smoothing scale everywhere;
* the simulation must start before the farthest source: a(χ_far) > a_init (``a_init``).

χ_far is the source distance for a single source redshift, or the 99.5% quantile of n(z).
"""
from __future__ import annotations

from functools import partial
from typing import Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from massmap.cosmology import (Cosmology, SourceRedshifts, growth_factors, hubble_e, linear_power,
                               scale_factor_at_distance)
from massmap.ops.spectra import ARCMIN
from massmap.sim.integrate import kdk_factors, pm_integrator
from massmap.sim.lightcone import (SourceDistances, born_weights, lens_planes, plane_kappa, replica_transforms,
                                   source_distances)
from massmap.sim.lpt import LPTFactors, linear_modes, lpt_initial_conditions
from massmap.sim.pm import density_contrast, pgd_displacement

FORCE_DECONVOLUTION = 2  # CIC windows divided out of the PM force (paint and readout), see sim/pm.py
MAX_CELL_IN_PIXELS = 4.0


class PMParams(NamedTuple):
    """What the PM simulation and its ray tracing use (docs/simulate-pm.md; from config: ``pm_params_of``)."""

    box_size: float  # comoving box side, Mpc/h
    mesh: int  # force-mesh cells per side
    n_particles: int  # particles per side
    n_steps: int  # kick-drift-kick steps from a_init to a = 1, uniform in a
    a_init: float  # scale factor of the LPT initial conditions
    lpt_order: int  # 1 (Zel'dovich) or 2 (2LPT)
    plane_thickness: float  # largest lens-plane thickness along the line of sight, Mpc/h
    pgd: bool  # potential-gradient-descent sharpening of the lens-plane densities
    pgd_alpha_a: tuple[float, ...]  # scale factors of the PGD amplitude table (increasing)
    pgd_alpha_table: tuple[float, ...]  # PGD amplitude α at pgd_alpha_a
    pgd_kl: float  # PGD high-pass scale, in units of the mesh Nyquist wavenumber π mesh / box_size
    pgd_ks: float  # PGD low-pass scale, in units of the mesh Nyquist wavenumber
    split_over_devices: bool = False  # one run's particles and meshes split over every local device


class GeometryError(ValueError):
    """The box, mesh or start time cannot serve the map and sources.

    ``parameter`` is the PMParams field to change; ``reason`` says what is wrong (naming no parameter)
    and ``remedy`` what to do, with ``{}`` where the parameter's name goes, so that a caller holding a
    config can name its key instead (:meth:`message`).
    """

    def __init__(self, parameter: str, reason: str, remedy: str):
        self.parameter, self.reason, self.remedy = parameter, reason, remedy
        super().__init__(self.message(parameter))

    def message(self, name: str) -> str:
        """The one-line message with the parameter called ``name``."""
        return f"{name}: {self.reason}; {self.remedy.format(name)}"


def check_geometry(cosmo: Cosmology, sources: SourceRedshifts, pm: PMParams, npix: int,
                   pixel_size_arcmin: float) -> SourceDistances:
    """Validate box, mesh and start time against the map and sources; returns the SourceDistances.

    Raises :class:`GeometryError` naming ``box_size``, ``mesh`` or ``a_init``.
    """
    src = source_distances(cosmo, sources)
    theta = pixel_size_arcmin * ARCMIN
    width = npix * theta * src.chi_far
    if width > pm.box_size:
        raise GeometryError(
            "box_size", f"mesh too small for the field: the map is {width:.0f} Mpc/h wide at the farthest source "
            f"distance ({src.chi_far:.0f} Mpc/h) but the box is {pm.box_size:g} Mpc/h",
            "increase {} or reduce the map size")
    cell = pm.box_size / pm.mesh
    pix = theta * src.chi_far
    if cell > MAX_CELL_IN_PIXELS * pix:
        raise GeometryError(
            "mesh", f"a mesh cell ({cell:.2f} Mpc/h) is wider than {MAX_CELL_IN_PIXELS:g} map pixels at the "
            f"farthest source distance ({pix:.2f} Mpc/h per pixel)", "increase {} or the pixel size")
    a_far = float(scale_factor_at_distance(cosmo, src.chi_far))
    if a_far <= pm.a_init * 1.0001:
        raise GeometryError(
            "a_init", f"the sources reach z = {1 / a_far - 1:.2f}, before the simulation starts at "
            f"a_init = {pm.a_init:g} (z = {1 / pm.a_init - 1:.2f})", "lower {}")
    return src


def step_schedule(pm: PMParams) -> np.ndarray:
    """Scale factors of the step boundaries: n_steps + 1 values uniform in a from a_init to 1."""
    return np.linspace(pm.a_init, 1.0, pm.n_steps + 1)


def initial_conditions(key: jax.Array, cosmo: Cosmology, pm: PMParams):
    """2LPT (or 1LPT) particle positions and momenta at a_init, and the linear modes δ_L(k) at a = 1."""
    n_p = pm.n_particles
    k_tab = np.geomspace(1e-4, 2 * np.pi / pm.box_size * n_p * 2, 512)
    pk_tab = linear_power(cosmo, k_tab)
    g = growth_factors(cosmo, pm.a_init)
    fac = LPTFactors(pm.a_init, float(hubble_e(cosmo, pm.a_init)), float(g.d1), float(g.f1), float(g.d2),
                     float(g.f2))
    delta_k = jax.jit(linear_modes, static_argnums=(1, 2))(key, n_p, pm.box_size, jnp.asarray(k_tab, jnp.float32),
                                                           jnp.asarray(pk_tab, jnp.float32))
    pos, mom = jax.jit(lpt_initial_conditions, static_argnums=(1, 3))(delta_k, pm.box_size, fac, pm.lpt_order)
    return pos, mom, delta_k


def pgd_amplitude(pm: PMParams, a: float) -> float:
    """PGD amplitude α(a): pm.pgd_alpha_table at pm.pgd_alpha_a, linear in a, constant beyond the ends."""
    return float(np.interp(a, pm.pgd_alpha_a, pm.pgd_alpha_table))


@partial(jax.jit, static_argnames=("box_size",))
def pgd_density(delta, positions, box_size: float, alpha, k_l, k_s):
    """CIC density contrast of the particles after the PGD shift (pm.pgd_displacement)."""
    n = delta.shape[0]
    shift = pgd_displacement(delta, positions, box_size, alpha, k_l, k_s)
    return density_contrast(jnp.mod(positions + shift, box_size), n, box_size, positions.shape[0])


def pm_snapshots(key: jax.Array, cosmo: Cosmology, pm: PMParams, donate: bool = False):
    """Run the PM from its LPT initial conditions (key ``key``); yield (k, a, state, info) after step k.

    ``a`` is the scale factor at the end of the step and ``info.delta`` the CIC density contrast there.
    With ``donate`` the step reuses the previous state's buffers: use each state before the next step.
    """
    a_steps = step_schedule(pm)
    pos, mom, _ = initial_conditions(key, cosmo, pm)
    factors = kdk_factors(cosmo, a_steps)
    omega_m = cosmo.Omega_c + cosmo.Omega_b
    if pm.split_over_devices and jax.local_device_count() > 1:  # x slabs over the devices (sim.sharded)
        from massmap import parallel
        from massmap.sim.sharded import sharded_pm_integrator

        integ = sharded_pm_integrator(pm.mesh, pm.box_size, omega_m, FORCE_DECONVOLUTION,
                                      device_mesh=parallel.batch_mesh(local=True), donate=donate)
    else:
        integ = pm_integrator(pm.mesh, pm.box_size, omega_m, FORCE_DECONVOLUTION, donate=donate)
    state = integ.init(pos, mom, a_steps[0])
    for k in range(pm.n_steps):
        state, info = integ.step(state, jax.tree.map(lambda v: v[k], factors))
        yield k, float(a_steps[k + 1]), state, info


def pm_kappa_map(key: jax.Array, cosmo: Cosmology, sources: SourceRedshifts, pm: PMParams, npix: int,
                 pixel_size_arcmin: float, progress: Optional[Callable[[int, int], None]] = None) -> np.ndarray:
    """Born convergence map (npix, npix) float32 of one PM lightcone; ``progress(step, n_steps)`` per step."""
    src = check_geometry(cosmo, sources, pm, npix, pixel_size_arcmin)
    k_ic, k_rep = jax.random.split(key)
    a_steps = step_schedule(pm)
    planes = lens_planes(cosmo, src.chi_far, pm.box_size, pm.plane_thickness, a_steps[1:])
    weights = born_weights(cosmo, planes, src) * planes.growth
    reps = replica_transforms(k_rep, int(planes.replica.max()) + 1, pm.mesh)

    theta = pixel_size_arcmin * ARCMIN
    t1 = (np.arange(npix) - (npix - 1) / 2) * theta
    theta_y = jnp.asarray(np.broadcast_to(t1[:, None], (npix, npix)), jnp.float32)
    theta_x = jnp.asarray(np.broadcast_to(t1[None, :], (npix, npix)), jnp.float32)

    kappa = jnp.zeros((npix, npix), jnp.float32)
    for k, a, state, info in pm_snapshots(k_ic, cosmo, pm, donate=True):
        delta = info.delta
        if pm.pgd and np.any(planes.snapshot == k):
            k_nyq = np.pi * pm.mesh / pm.box_size
            alpha = pgd_amplitude(pm, a)
            delta = pgd_density(delta, state.positions, pm.box_size, alpha, pm.pgd_kl * k_nyq, pm.pgd_ks * k_nyq)
        for i in np.flatnonzero(planes.snapshot == k):
            r = planes.replica[i]
            off = r * pm.box_size
            kappa = kappa + plane_kappa(delta, pm.box_size, int(reps.perm[r]), jnp.asarray(reps.flip[r]),
                                        jnp.asarray(reps.shift[r]), planes.chi_lo[i] - off,
                                        planes.chi_hi[i] - off, planes.chi[i], weights[i], theta_y, theta_x)
        kappa.block_until_ready()
        if progress is not None:
            progress(k + 1, pm.n_steps)
    return np.asarray(kappa, np.float32)
