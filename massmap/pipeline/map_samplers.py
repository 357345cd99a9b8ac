"""The map samplers of ``massmap simulate``: config → one function per map kind (grf, lognormal, pm).

Each :class:`MapSampler` draws map i from key fold_in(PRNGKey(seed), i) (:func:`map_key`), so any map of
a set can be regenerated alone (:func:`simulate_map`). This is the config edge of the simulations: the
``cosmology``, ``sources`` and ``simulate.pm`` sections become the parameter records the numerics take
(massmap.config.physics, massmap.config.pm), and the numerics' ValueErrors become ConfigErrors naming
the YAML keys (:func:`pm_geometry`).
"""
from __future__ import annotations

import functools
from typing import Any, Callable, NamedTuple

import numpy as np

from massmap.config import ConfigError, to_dict
from massmap.config.physics import cosmology_of, sources_of
from massmap.config.pm import pm_params_of
from massmap.cosmology import Cosmology, SourceRedshifts, source_redshift_weights
from massmap.pipeline.inputs import checked_kappa_cl

N_ELL_TABLE = 128  # log-spaced ℓ nodes of the target C_ℓ table (log-log interpolation error < 0.1%)



class MapSampler(NamedTuple):
    sample: Callable[[Any, Callable | None], np.ndarray]  # (key, step_progress) -> (npix, npix)
    attrs: dict[str, Any]  # kind-specific attributes of the map set
    ell: np.ndarray  # target C_ℓ table
    cl: np.ndarray
    n_steps: int  # inner steps per map shown in a second progress bar (0: none)
    batch: Callable | None = None  # jitted keys (B, 2) -> maps (B, npix, npix), where the kind is vmappable
    uses_all_devices: bool = False  # one map runs over every local device (simulate.pm.split_over_devices)


def target_cl(config) -> tuple[np.ndarray, np.ndarray]:
    """Tabulated Limber C_ℓ^κκ covering the map grid (from below the fundamental to the corner ℓ).

    Memoised per process on the parameters (jax-cosmo's halofit takes ~20 s a call); an n(z) file is
    read again each time, and its table is part of the memo's key.
    """
    sim = config.simulate
    ell, cl = _target_cl(cosmology_of(config.cosmology), sources_of(config.sources), sim.npix,
                         sim.pixel_size_arcmin, sim.nonlinear)
    return ell.copy(), cl.copy()


@functools.lru_cache(maxsize=8)
def _target_cl(cosmology: Cosmology, sources: SourceRedshifts, npix: int, pixel_size_arcmin: float, nonlinear: bool):
    from massmap.ops.spectra import ARCMIN

    theta = pixel_size_arcmin * ARCMIN
    ell = np.geomspace(np.pi / (npix * theta), 1.5 * np.sqrt(2) * np.pi / theta, N_ELL_TABLE)
    return ell, checked_kappa_cl(cosmology, sources, ell, nonlinear=nonlinear)


def default_lognormal_shift(sources: SourceRedshifts) -> float:
    """Hilbert et al. (2011) κ₀(z_s) averaged over the source n(z) (exact for a single z_s)."""
    from massmap.sim.lognormal import hilbert11_shift

    z, w = source_redshift_weights(sources)
    return float(np.sum(w * hilbert11_shift(z)))


def pm_geometry(config) -> None:
    """ConfigError naming the ``simulate.pm`` key unless the PM box, mesh and a_init suit the map and sources."""
    from massmap.sim.raytrace import GeometryError, check_geometry

    sim = config.simulate
    try:
        check_geometry(cosmology_of(config.cosmology), sources_of(config.sources), pm_params_of(sim.pm), sim.npix,
                       sim.pixel_size_arcmin)
    except GeometryError as err:
        key = f"simulate.pm.{err.parameter}"
        raise ConfigError(f"config key '{key}': {err.reason}; {err.remedy.format(key)}") from None


def make_sampler(config) -> MapSampler:
    """The per-map generator for ``config.simulate.kind`` (spectra precomputed outside jit)."""
    import jax

    from massmap.ops.spectra import cl_on_grid, gaussian_random_field, mode_variance

    sim = config.simulate
    n, pix = sim.npix, sim.pixel_size_arcmin
    if sim.kind == "pm":
        from massmap.sim.raytrace import pm_kappa_map

        pm_geometry(config)  # ConfigError before any file
        cosmo, sources, pm = cosmology_of(config.cosmology), sources_of(config.sources), pm_params_of(sim.pm)

        def sample_pm(key, step_progress=None):
            return np.asarray(pm_kappa_map(key, cosmo, sources, pm, n, pix, progress=step_progress), np.float32)

        split = _split_over_devices(sim.pm)
        ell, cl = target_cl(config)
        attrs = {f"pm_{k}": v for k, v in to_dict(sim.pm).items()}  # pm_box_size, pm_mesh, pm_n_steps, ...
        return MapSampler(sample_pm, attrs, ell, cl, sim.pm.n_steps, uses_all_devices=split)

    ell, cl = target_cl(config)
    cl_grid = cl_on_grid(ell, cl, n, n, pix)
    mode_var = mode_variance(cl_grid, pix)
    if sim.kind == "grf":
        def one(key):
            return gaussian_random_field(key, cl_grid, pix)

        attrs = {"pixel_variance": float(mode_var.mean())}
    else:
        from massmap.sim.lognormal import lognormal_spectrum, shifted_lognormal_field

        if sim.lognormal_shift is None:
            shift, origin = default_lognormal_shift(sources_of(config.sources)), "hilbert11"
        else:
            shift, origin = sim.lognormal_shift, "config"
        try:
            spec = lognormal_spectrum(mode_var, shift)
        except ValueError as err:
            raise ConfigError(f"config key 'simulate.lognormal_shift': {err}") from None
        s_g, var_g = spec.gaussian_mode_var, spec.gaussian_variance

        def one(key):
            return shifted_lognormal_field(key, s_g, var_g, shift)

        attrs = {"lognormal_shift": shift, "lognormal_shift_origin": origin,
                 "lognormal_gaussian_variance": var_g, "lognormal_mean_mode_offset": spec.mean_mode_offset,
                 "lognormal_clipped_fraction": spec.clipped_fraction,
                 "pixel_variance": float(mode_var.mean() + shift**2 * np.expm1(spec.mean_mode_offset))}
    fn = jax.jit(one)
    return MapSampler(lambda key, step_progress=None: np.asarray(fn(key)), attrs, ell, cl, 0, jax.jit(jax.vmap(one)))


def _split_over_devices(pm_cfg) -> bool:
    """Whether each PM run is split over the local devices; ConfigError if the mesh or the particle
    count does not split over them (x slabs)."""
    if not pm_cfg.split_over_devices:
        return False
    import jax

    n_dev = jax.local_device_count()
    if n_dev == 1:
        return False
    for key, n, total in (("mesh", pm_cfg.mesh, pm_cfg.mesh),
                          ("n_particles", pm_cfg.n_particles or pm_cfg.mesh, (pm_cfg.n_particles or pm_cfg.mesh) ** 3)):
        if total % n_dev:
            raise ConfigError(f"config key 'simulate.pm.{key}' ({n}) must be a multiple of the {n_dev} local "
                              "devices with simulate.pm.split_over_devices")
    return True


def map_key(seed: int, index: int):
    """The PRNG key of map ``index``: fold_in(PRNGKey(seed), index)."""
    import jax

    return jax.random.fold_in(jax.random.PRNGKey(seed), index)


def simulate_map(config, index: int, sampler: MapSampler | None = None) -> np.ndarray:
    """Map ``index`` of the set ``config`` describes, generated alone (equal to that map in the file)."""
    sampler = sampler or make_sampler(config)
    return sampler.sample(map_key(config.seed, index), None)
