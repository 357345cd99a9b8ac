"""Posterior κ maps from binned shear: config → :mod:`massmap.infer` → typed results.

:func:`resolve_prior` turns ``posterior.prior`` into a :class:`~massmap.prior.base.Prior`;
:func:`posterior_maps` checks the shear and the prior's grid, pads the shear (config ``pad``), resolves
the section's null keys (massmap.config.posterior), runs the sampler
(:func:`massmap.infer.sampler.sample_posterior`) and/or the MAP (:func:`massmap.infer.map.map_estimate`)
with a tqdm bar, and keeps the samples finished so far on Ctrl-C. See docs/posterior.md.
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable, NamedTuple, Sequence

import jax
import numpy as np
from tqdm import tqdm

from massmap import interrupts
from massmap.binning import BinnedShear
from massmap.config.posterior import PosteriorConfig, map_settings, sampler_settings, sigma_range
from massmap.errors import ConfigError, InputError
from massmap.infer.likelihood import pad_shear
from massmap.infer.map import MapEstimate, map_estimate
from massmap.infer.preconditioner import prior_spectrum
from massmap.infer.sampler import PosteriorSamples, from_samples, sample_posterior, steps_per_run
from massmap.prior.base import PIXEL_RTOL, Prior, check_grid
from massmap.prior.gaussian import GaussianPrior

METHODS = ("posterior", "map")
SHIPPED_PRIORS = Path(__file__).resolve().parent.parent / "data" / "priors"  # *.h5, chosen by pixel scale
DEFAULT_PRIOR = SHIPPED_PRIORS / "default.h5"  # the shipped prior when the pixel scale is not set
POSTERIOR_KEY = 2  # the posterior's named key: fold_in(PRNGKey(seed), POSTERIOR_KEY)


def posterior_key(seed: int) -> jax.Array:
    """The named key of posterior sampling for a config seed (HEALPix tile t: fold_in(it, t))."""
    return jax.random.fold_in(jax.random.PRNGKey(seed), POSTERIOR_KEY)


class PosteriorRun(NamedTuple):
    """What :func:`posterior_maps` returns: the samples and/or the MAP (None where not asked for)."""

    posterior: PosteriorSamples | None
    map: MapEstimate | None
    interrupted: bool = False  # Ctrl-C stopped sampling; ``posterior`` holds the samples finished


def shipped_prior(pixel_size_arcmin: float | None = None) -> Path | None:
    """The shipped prior (massmap/data/priors) for a pixel scale: the one trained at that scale (the
    default one first when several are); for None, ``default.h5``. None when no prior is shipped; an
    InputError listing the shipped priors and their scales when none matches."""
    from massmap.io.priors import shipped_priors

    shipped = shipped_priors(SHIPPED_PRIORS)
    if not shipped:
        return None
    if pixel_size_arcmin is None:
        return DEFAULT_PRIOR if DEFAULT_PRIOR.exists() else shipped[0][0]
    match = [p for p, pix in shipped if abs(pix / float(pixel_size_arcmin) - 1.0) <= PIXEL_RTOL]
    if not match:
        have = ", ".join(f"{p.name} ({pix:g} arcmin)" for p, pix in shipped)
        raise InputError(f"no shipped prior for {float(pixel_size_arcmin):g} arcmin pixels (shipped: {have}); "
                         "set grid.pixel_size_arcmin to one of these, or posterior.prior to a prior file or "
                         "'gaussian'")
    return DEFAULT_PRIOR if DEFAULT_PRIOR in match else match[0]


def prior_path(pc: PosteriorConfig, pixel_size_arcmin: float | None = None) -> Path | None:
    """The file of the learned prior named by ``posterior.prior``, or None for the Gaussian prior:
    'gaussian' → None; a path → that file (InputError if absent); null → the shipped prior for
    ``pixel_size_arcmin`` (:func:`shipped_prior`; the default one for None), None if none is shipped."""
    if pc.prior == "gaussian":
        return None
    if pc.prior is None:
        return shipped_prior(pixel_size_arcmin)
    path = Path(pc.prior)
    if not path.exists():
        raise InputError(f"prior file '{pc.prior}' (posterior.prior) does not exist")
    return path


def learned_prior(pc: PosteriorConfig, pixel_size_arcmin: float | None = None) -> Prior | None:
    """The learned prior of :func:`prior_path` loaded, or None for the Gaussian prior."""
    path = prior_path(pc, pixel_size_arcmin)
    if path is None:
        return None
    from massmap.io.priors import load_prior

    return load_prior(path)


def prior_pixel_scale(pc: PosteriorConfig, methods: Sequence[str]) -> float | None:
    """The pixel scale of the learned prior ``methods`` would use (None: no learned prior): what a null
    ``grid.pixel_size_arcmin`` resolves to (massmap.config.schema.grid_pixel_size)."""
    if not set(methods) & set(METHODS):
        return None
    path = prior_path(pc)
    if path is None:
        return None
    from massmap.io.priors import prior_pixel_size

    return prior_pixel_size(path)


def resolve_prior(pc: PosteriorConfig, gaussian: GaussianPrior, pixel_size_arcmin: float | None = None) -> Prior:
    """The prior of ``posterior.prior`` (:func:`learned_prior`, the shipped one chosen for the map's
    ``pixel_size_arcmin``), with ``gaussian`` (the signal C_ℓ) standing for the Gaussian prior."""
    prior = learned_prior(pc, pixel_size_arcmin)
    return gaussian if prior is None else prior


def _validate(shear: BinnedShear, pad, methods) -> None:
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ConfigError(f"unknown posterior method '{bad[0] if bad else ''}'; choose from {', '.join(METHODS)}")
    arrays = [np.asarray(a) for a in (shear.g1, shear.g2, shear.noise_std, shear.mask)]
    for name, a in zip(("GAMMA1", "GAMMA2", "NOISE_STD", "MASK"), arrays):
        if a.ndim != 2:
            raise InputError(f"{name} must be a 2-D map, got shape {a.shape}")
        if a.shape != arrays[0].shape:
            raise InputError(f"{name} has shape {a.shape} but GAMMA1 has {arrays[0].shape}")
    if min(arrays[0].shape) < 2:
        raise InputError(f"the shear map must be at least 2×2 pixels, got {arrays[0].shape}")
    if int(pad) != pad or pad < 0:
        raise ConfigError(f"config key 'pad' must be a non-negative integer, got {pad}")


def check_prior_grid(prior: Prior, ny_pad: int, nx_pad: int, pixel_size_arcmin: float) -> None:
    """InputError, with what to change in the config, unless ``prior`` fits the padded grid."""
    pp = prior.pixel_size_arcmin
    if pp is not None and abs(float(pp) / pixel_size_arcmin - 1.0) > PIXEL_RTOL:
        hint = f"; set grid.pixel_size_arcmin: {float(pp):g}"
    else:
        hint = "; change pad or grid.npix (the padded grid is map + 2·pad)"
    try:
        check_grid(prior, ny_pad, nx_pad, pixel_size_arcmin)
    except ValueError as err:
        raise InputError(str(err) + hint) from None


def posterior_maps(shear: BinnedShear, pc: PosteriorConfig, pad: int, key: jax.Array, prior: Prior,
                   reference: GaussianPrior | None = None, methods: Sequence[str] = ("posterior",),
                   progress: bool = True,
                   on_samples: Callable[[np.ndarray, np.ndarray], None] | None = None) -> PosteriorRun:
    """Posterior samples (mean, std, diagnostics) and/or the MAP map of binned ``shear``.

    ``reference``: the Gaussian prior of the signal C_ℓ, which preconditions a learned prior whose score
    cannot be probed. ``on_samples(chunk, means)`` receives finished samples (k, ny, nx) and their
    conditional means in order. If Ctrl-C
    stops sampling after some samples finished, they are returned with ``interrupted=True``. Same key →
    same samples; chain c uses fold_in(key, c // 2) with sign ±1 (antithetic pairs; fold_in(key, c) without).
    """
    methods = tuple(methods)
    _validate(shear, pad, methods)
    pad = int(pad)
    data = pad_shear(shear.g1, shear.g2, shear.noise_std, shear.mask, pad)
    if not float(np.sum(np.asarray(data.mask))) > 0:
        raise InputError("no pixel carries shear data (MASK is 0 or NOISE_STD is 0/NaN everywhere)")
    shape = tuple(data.g1.shape)
    check_prior_grid(prior, *shape, float(shear.grid.pixel_size_arcmin))
    # the preconditioner's spectrum, probed for a learned prior at each method's last level (once per level)
    spectra: dict[float, tuple] = {}

    def spectrum_for(method):
        sigma_min = sigma_range(pc, prior, shape, method)[1]
        if sigma_min not in spectra:
            spectra[sigma_min] = prior_spectrum(prior, key, shape, sigma_min, reference)
        return spectra[sigma_min]

    posterior = estimate = None
    if "posterior" in methods:
        settings = sampler_settings(pc, prior, shape)
        n_chunks = -(-settings.chains // min(pc.chunk, settings.chains))
        finished: list[np.ndarray] = []
        mean_sum = 0.0  # of the finished draws' conditional means (float64)

        def keep(batch, means):
            nonlocal mean_sum
            finished.append(batch)
            mean_sum = mean_sum + means.sum(axis=0, dtype=np.float64)
            if on_samples is not None:
                on_samples(batch, means)

        with tqdm(total=n_chunks * steps_per_run(settings), desc="posterior", unit="step",
                  disable=not progress) as bar:
            def restart(n):
                bar.total += steps_per_run(settings)

            try:
                with interrupts.unwrapped():  # a stop that C code disguised is still a stop
                    posterior = sample_posterior(key, data, prior, settings, pad=pad, chunk=pc.chunk,
                                                 spectrum=spectrum_for("posterior"),
                                                 on_step=lambda: bar.update(1), on_restart=restart,
                                                 on_samples=keep)
            except KeyboardInterrupt:
                if not finished:
                    raise
                done = np.concatenate(finished)  # the mean's error needs the pairs: not given
                return PosteriorRun(from_samples(done, None, mean_sum / len(done)), None, interrupted=True)
    if "map" in methods:
        estimate = map_estimate(key, data, prior, map_settings(pc, prior, shape), pad=pad,
                                spectrum=spectrum_for("map"))
    return PosteriorRun(posterior, estimate)
