"""Posterior κ maps from binned shear: annealed-HMC samples (mean, std, samples) and the MAP map.

:func:`posterior_maps` is what ``reconstruct`` calls for the methods 'posterior' and 'map'; it takes
binned shear on the unpadded grid, pads it (config ``pad``), runs the numerics of massmap.infer on the
padded grid in chunks of vmapped chains, checks every chain for NaN/inf (restarting or dropping it),
and returns cropped maps plus diagnostics. :func:`resolve_prior` turns ``posterior.prior`` into a
loaded prior (or None for the analytic Gaussian prior). See docs/posterior.md.
"""
from __future__ import annotations

import dataclasses
import functools
import math
from pathlib import Path
from typing import Any, Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from massmap.config import ConfigError
from massmap.infer.annealed import (ADAPT, ADAPT_DOWN, FROZEN, HMCState, annealed_hmc, denoise, fourier_precision,
                                    init_position, initial_log_step_size, probe_mode_variance, run_level,
                                    sigma_schedule)
from massmap.infer.diagnostics import effective_sample_size, split_rhat
from massmap.infer.likelihood import ShearData, log_likelihood_and_grad, max_weight, mean_weight, shear_data
from massmap.infer.map import annealed_map
from massmap.io.output import InputError
from massmap.ops.shear import crop_map
from massmap.prior.gaussian import gaussian_score

METHODS = ("posterior", "map")
DEFAULT_PRIOR = Path(__file__).resolve().parent.parent / "data" / "priors" / "default.h5"
PIXEL_RTOL = 1e-3  # a learned prior's pixel scale must match the grid's to this relative tolerance
GAUSSIAN_SIGMA_MIN = 1e-3  # default σ_min for the Gaussian prior (κ units)
LEARNED_SIGMA_MIN_FRACTION = 0.1  # default σ_min for a learned prior, in units of its training κ std
GAUSSIAN_CHAINS = 10  # default number of chains for the Gaussian prior (a learned prior: one per sample)
PROBE_KEY = 2**31 - 1  # fold_in(key, PROBE_KEY) probes a learned prior's spectrum; chain c uses fold_in(key, c)


class SamplingError(InputError):
    """Every chain failed numerically (NaN/inf), even after restarts."""


def resolve_prior(config) -> Any:
    """The prior named by ``posterior.prior``: None for the Gaussian prior, else a loaded prior.

    'gaussian' → None; a path → ``load_prior(path)``; null → the shipped default prior when it exists,
    else None (the Gaussian prior).
    """
    pc = getattr(config, "posterior", config)
    if pc.prior == "gaussian":
        return None
    if pc.prior is None:
        if not DEFAULT_PRIOR.exists():
            return None
        path = DEFAULT_PRIOR
    else:
        path = Path(pc.prior)
        if not path.exists():
            raise InputError(f"prior file '{pc.prior}' (posterior.prior) does not exist")
    from massmap.io.priors import load_prior

    prior = load_prior(path)
    meta = getattr(prior, "metadata", None)
    if isinstance(meta, dict):
        meta.setdefault("path", str(path))  # for messages and the PRIOR diagnostic
    return prior


def prior_name(prior) -> str:
    """'gaussian' for None, else the learned prior's path (or name) for headers and messages."""
    if prior is None:
        return "gaussian"
    meta = getattr(prior, "metadata", None) or {}
    return str(getattr(prior, "path", None) or meta.get("path") or meta.get("name") or "learned prior")


def network_multiple(prior) -> int | None:
    """Padded map sides must be multiples of this for a learned prior's network (None: not recorded)."""
    meta = getattr(prior, "metadata", None) or {}
    channels = meta.get("channels") or (meta.get("architecture") or {}).get("channels")
    return 2 ** (len(channels) - 1) if channels is not None else None


def check_prior_grid(prior, ny_pad: int, nx_pad: int, pixel_size_arcmin: float) -> None:
    """InputError unless the learned ``prior`` can be evaluated on the padded grid at this pixel scale."""
    name = prior_name(prior)
    pp = float(prior.pixel_size_arcmin)
    if abs(pp / pixel_size_arcmin - 1.0) > PIXEL_RTOL:
        raise InputError(f"prior '{name}' was trained on {pp:g} arcmin pixels but the map has "
                         f"{pixel_size_arcmin:g} arcmin pixels; set grid.pixel_size_arcmin: {pp:g}")
    factor = network_multiple(prior)
    if factor is not None:
        if ny_pad % factor or nx_pad % factor:
            raise InputError(f"prior '{name}' needs map sides that are multiples of {factor} but the padded "
                             f"grid (map + 2·pad) is {ny_pad}×{nx_pad}; change pad or grid.npix")
    try:
        out = prior.score(jnp.zeros((1, ny_pad, nx_pad), jnp.float32), jnp.full((1,), prior.sigma_max, jnp.float32))
        ok_shape = tuple(out.shape) == (1, ny_pad, nx_pad)
    except Exception as err:  # any failure of the network on this grid is a grid/prior mismatch
        raise InputError(f"prior '{name}' (trained on {prior.npix}² maps) cannot be evaluated on the padded "
                         f"{ny_pad}×{nx_pad} grid: {type(err).__name__}") from None
    if not ok_shape:
        raise InputError(f"prior '{name}' returns maps of shape {tuple(out.shape)[1:]} for the padded "
                         f"{ny_pad}×{nx_pad} grid; change pad or grid.npix to fit its {prior.npix}² maps")


def _sigma_range(pc, prior, mode_var: np.ndarray) -> tuple[float, float]:
    if prior is None:
        hi = pc.sigma_max if pc.sigma_max is not None else 2.0 * float(np.sqrt(np.mean(mode_var)))
        lo = pc.sigma_min if pc.sigma_min is not None else GAUSSIAN_SIGMA_MIN
    else:
        pmin, pmax = float(prior.sigma_min), float(prior.sigma_max)
        if pc.sigma_min is not None and pc.sigma_min < pmin * (1 - 1e-6):
            raise ConfigError(f"config key 'posterior.sigma_min' ({pc.sigma_min:g}) is below the prior's "
                              f"smallest trained noise level {pmin:g}")
        if pc.sigma_max is not None and pc.sigma_max > pmax * (1 + 1e-6):
            raise ConfigError(f"config key 'posterior.sigma_max' ({pc.sigma_max:g}) is above the prior's "
                              f"largest trained noise level {pmax:g}")
        hi = pc.sigma_max if pc.sigma_max is not None else pmax
        # default: stop at 0.1 × the prior's κ std, where the network is still accurate (below it the score
        # error grows like 1/σ, docs/posterior.md); the σ² left is removed by the final Tweedie step
        tau = float((getattr(prior, "metadata", None) or {}).get("kappa_std", 0.0))
        lo = pc.sigma_min if pc.sigma_min is not None else min(max(pmin, LEARNED_SIGMA_MIN_FRACTION * tau), 0.5 * hi)
    if not lo < hi:
        raise ConfigError(f"config key 'posterior.sigma_min' ({lo:g}) must be below posterior.sigma_max ({hi:g})")
    return float(hi), float(lo)


def resolve_chains(pc, prior) -> int:
    """``posterior.chains``, or its default: one draw per chain for a learned prior, else GAUSSIAN_CHAINS.

    With a learned prior a chain mixes slowly at σ_min (docs/posterior.md), so every sample gets its own
    annealing run from σ_max; the Gaussian prior's chains mix fast and share the annealing cost.
    """
    if pc.chains is not None:
        return int(pc.chains)
    return int(pc.n_samples) if prior is not None else min(GAUSSIAN_CHAINS, int(pc.n_samples))


def _validate(g1, g2, noise_std, mask, pad, methods, pc) -> tuple[np.ndarray, ...]:
    if pc.n_samples <= 0:
        raise ConfigError(f"config key 'posterior.n_samples' must be >= 1, got {pc.n_samples}")
    bad = [m for m in methods if m not in METHODS]
    if bad or not methods:
        raise ConfigError(f"unknown posterior method '{bad[0] if bad else ''}'; choose from {', '.join(METHODS)}")
    arrays = [np.asarray(a) for a in (g1, g2, noise_std, mask)]
    names = ("GAMMA1", "GAMMA2", "NOISE_STD", "MASK")
    for name, a in zip(names, arrays):
        if a.ndim != 2:
            raise InputError(f"{name} must be a 2-D map, got shape {a.shape}")
        if a.shape != arrays[0].shape:
            raise InputError(f"{name} has shape {a.shape} but GAMMA1 has {arrays[0].shape}")
    if min(arrays[0].shape) < 2:
        raise InputError(f"the shear map must be at least 2×2 pixels, got {arrays[0].shape}")
    if int(pad) != pad or pad < 0:
        raise ConfigError(f"config key 'pad' must be a non-negative integer, got {pad}")
    return tuple(arrays)


class _ById:
    """Hashable-by-identity handle of a prior object (for the cache of compiled functions)."""

    def __init__(self, obj):
        self.obj = obj

    def __hash__(self):
        return id(self.obj)

    def __eq__(self, other):
        return isinstance(other, _ById) and other.obj is self.obj


def _score_of(prior_ref: _ById | None, mode_var: jnp.ndarray) -> Callable:
    """score(κ (ny, nx), σ scalar) for one map: the Gaussian prior of ``mode_var`` or the learned prior."""
    if prior_ref is None:
        return lambda k, s: gaussian_score(k, s, mode_var)
    prior = prior_ref.obj

    def one_map(k, s):
        return prior.score(k[None], jnp.reshape(jnp.asarray(s, jnp.float32), (1,)))[0]

    return one_map


def _hmc_settings(pc) -> tuple:
    return (pc.reduced_shear, pc.trajectory_length, pc.leapfrog_steps, pc.max_leapfrog_steps, pc.metropolis,
            pc.max_energy_error, pc.target_accept)


@functools.lru_cache(maxsize=8)
def _compiled_level(settings: tuple, prior_ref: _ById | None) -> Callable:
    """The jitted, chain-vmapped :func:`run_level` for these sampler settings (compiled once per shape)."""
    reduced, traj, n_leap, max_leap, metropolis, max_err, target = settings

    def level(data, mode_var, keys, states, sigma, n_steps, mode, reinit):
        alg = annealed_hmc(lambda k, s: log_likelihood_and_grad(k, data, s, reduced), _score_of(prior_ref, mode_var),
                           lambda s: fourier_precision(mode_var, mean_weight(data, s), s),
                           trajectory_length=traj, leapfrog_steps=n_leap, max_leapfrog_steps=max_leap,
                           metropolis=metropolis, max_energy_error=max_err, target_accept=target)
        return jax.vmap(lambda k, st: run_level(alg, k, st, sigma, n_steps, mode, reinit))(keys, states)

    return jax.jit(level)


@functools.partial(jax.jit, static_argnums=(1, 2))
def _draw(states: HMCState, tweedie: bool, pad: int) -> tuple[jnp.ndarray, jnp.ndarray]:
    """Cropped (denoised) draws of a batch of chains and whether their cached gradients are finite."""
    kappa = jax.vmap(denoise)(states) if tweedie else states.position
    fields = jnp.stack([states.likelihood_grad, states.prior_score], axis=1)
    return crop_map(kappa, pad), jnp.isfinite(fields).all(axis=(1, 2, 3))


@jax.jit
def _init_positions(keys: jax.Array, mode_var: jnp.ndarray, sigma) -> jnp.ndarray:
    return jax.vmap(lambda k: init_position(k, mode_var, sigma))(keys)


def _summaries(draws: np.ndarray) -> dict[str, np.ndarray]:
    """Per-draw scalar statistics of (..., ny, nx) maps for R̂ and ESS."""
    ny, nx = draws.shape[-2:]
    centre = draws[..., ny // 4: ny - ny // 4, nx // 4: nx - nx // 4]
    return {"VARIANCE": draws.var(axis=(-2, -1)), "CENTRE_MEAN": centre.mean(axis=(-2, -1)),
            "PEAK": draws.max(axis=(-2, -1))}


class _Sampler:
    """Chunks of vmapped annealed-HMC chains on one padded problem."""

    def __init__(self, data: ShearData, mode_var: jnp.ndarray, prior_ref: _ById | None, pc, schedule: np.ndarray,
                 pad: int):
        self.data, self.mode_var, self.pc, self.pad = data, mode_var, pc, pad
        self.schedule = schedule
        ny, nx = mode_var.shape
        self.log_eps0 = initial_log_step_size(ny * nx, pc.step_size)
        self._level = _compiled_level(_hmc_settings(pc), prior_ref)
        self.n_draws = math.ceil(pc.n_samples / pc.chains)

    def run(self, chain_keys: jax.Array, bar) -> dict[str, np.ndarray]:
        """Run a chunk of chains from their keys (B, key); numpy results per chain."""
        pc, d, mv = self.pc, self.data, self.mode_var
        fold = jax.vmap(jax.random.fold_in, in_axes=(0, None))
        n_levels = len(self.schedule)
        b = chain_keys.shape[0]
        sigma0 = jnp.float32(self.schedule[0])
        pos = _init_positions(fold(chain_keys, 0), mv, sigma0)
        zeros = jnp.zeros_like(pos)
        # cached terms are filled by the first level's re-initialisation
        states = HMCState(pos, jnp.zeros(b, jnp.float32), zeros, zeros, jnp.full(b, sigma0),
                          jnp.full(b, self.log_eps0, jnp.float32))
        evals = np.zeros(b, np.int64)
        acc, eps, lf, div = (np.zeros((b, n_levels)) for _ in range(4))
        for i, sigma in enumerate(self.schedule):
            states, info = self._level(d, mv, fold(chain_keys, 1 + i), states, jnp.float32(sigma),
                                       pc.steps_per_level, ADAPT_DOWN, True)
            acc[:, i], eps[:, i] = np.asarray(info.acceptance_rate), np.asarray(info.step_size)
            lf[:, i], div[:, i] = np.asarray(info.n_evals), np.asarray(info.n_divergent)
            evals += np.asarray(info.n_evals)
            bar.update(1)
        sigma_min = jnp.float32(self.schedule[-1])
        if pc.burn_in > 0:
            states, info = self._level(d, mv, fold(chain_keys, 1 + n_levels), states, sigma_min, pc.burn_in,
                                       ADAPT, False)
            evals += np.asarray(info.n_evals)
        ny, nx = (n - 2 * self.pad for n in d.g1.shape)
        draws = np.empty((b, self.n_draws, ny, nx), np.float32)
        ok = np.ones(b, bool)
        draw_acc, draw_div = np.zeros(b), np.zeros(b)
        for j in range(self.n_draws):
            states, info = self._level(d, mv, fold(chain_keys, 2 + n_levels + j), states, sigma_min, pc.thin,
                                       FROZEN, False)
            evals += np.asarray(info.n_evals)
            draw_acc += np.asarray(info.acceptance_rate) / self.n_draws
            draw_div += np.asarray(info.n_divergent)
            kappa, finite = _draw(states, pc.denoise == "tweedie", self.pad)
            draws[:, j] = np.asarray(kappa)
            ok &= np.asarray(finite)
            bar.update(1)
        ok &= np.isfinite(draws).all(axis=(1, 2, 3))
        return {"draws": draws, "ok": ok, "evals": evals, "acceptance": acc, "step_size": eps,
                "leapfrog": lf, "divergent": div, "draw_acceptance": draw_acc, "draw_divergent": draw_div,
                "draw_step_size": np.asarray(jnp.exp(states.log_step_size))}


def _run_posterior(sampler: _Sampler, pc, key: jax.Array, progress: bool,
                   on_samples: Callable | None) -> tuple[np.ndarray, dict[str, Any], int]:
    chains, chunk = pc.chains, min(pc.chunk, pc.chains)
    n_draws = sampler.n_draws
    n_chunks = math.ceil(chains / chunk)
    per_run = len(sampler.schedule) + n_draws
    kept: list[dict[str, np.ndarray]] = []
    total_evals, restarts, dropped, failures = 0, 0, 0, 0
    n_out = 0
    samples = []
    with tqdm(total=n_chunks * per_run, desc="posterior", unit="step", disable=not progress) as bar:
        for start in range(0, chains, chunk):
            pending = list(range(start, min(start + chunk, chains)))
            results: dict[int, dict[str, np.ndarray]] = {}
            for attempt in range(pc.max_restarts + 1):
                if not pending:
                    break
                if attempt > 0:
                    restarts += len(pending)
                    bar.total += per_run
                ids = pending + [pending[0]] * (chunk - len(pending))  # pad the chunk; extras are discarded
                keys = jnp.stack([jax.random.fold_in(jax.random.fold_in(key, c), attempt) for c in ids])
                out = sampler.run(keys, bar)
                total_evals += int(out["evals"][: len(pending)].sum())
                still = []
                for row, c in enumerate(pending):
                    if out["ok"][row]:
                        results[c] = {k: v[row] for k, v in out.items()}
                    else:
                        failures += 1
                        still.append(c)
                pending = still
            dropped += len(pending)
            batch = []
            for c in sorted(results):
                draws = results[c].pop("draws")
                results[c]["summaries"] = _summaries(draws)  # per-draw scalars; the maps are not kept twice
                kept.append(results[c])
                take = min(n_draws, pc.n_samples - n_out)
                if take > 0:
                    batch.append(draws[:take])
                    n_out += take
            if batch:
                batch_arr = np.concatenate(batch)
                samples.append(batch_arr)
                if on_samples is not None:
                    on_samples(batch_arr)
    if not kept:
        raise SamplingError(f"all {chains} posterior chains produced NaN/inf, even after "
                            f"{pc.max_restarts} restarts each; check the prior and posterior.step_size")
    diag = _diagnostics(kept, sampler.schedule, restarts, dropped, failures, total_evals, chains, n_draws)
    return np.concatenate(samples), diag, total_evals


def _diagnostics(kept, schedule, restarts, dropped, failures, total_evals, chains, n_draws) -> dict[str, Any]:
    def stack(name):
        return np.stack([r[name] for r in kept])

    diag: dict[str, Any] = {
        "SIGMA": np.asarray(schedule, np.float64),
        "ACCEPTANCE": stack("acceptance").mean(0),
        "STEP_SIZE": stack("step_size").mean(0),
        "LEAPFROG_STEPS": stack("leapfrog").mean(0),
        "DIVERGENT": stack("divergent").sum(0),
        "ACCEPTANCE_DRAWS": float(stack("draw_acceptance").mean()),
        "STEP_SIZE_DRAWS": float(stack("draw_step_size").mean()),
        "DIVERGENT_DRAWS": int(stack("draw_divergent").sum()),
        "N_CHAINS": int(chains), "N_CHAINS_USED": len(kept), "DRAWS_PER_CHAIN": int(n_draws),
        "N_FAILED_RUNS": int(failures), "N_RESTARTS": int(restarts), "N_DROPPED": int(dropped),
        "N_SCORE_EVALS": int(total_evals),
    }
    for name in kept[0]["summaries"]:
        values = np.stack([r["summaries"][name] for r in kept])
        diag[f"RHAT_{name}"] = float(split_rhat(values))
        diag[f"ESS_{name}"] = float(effective_sample_size(values))
    return diag


@functools.lru_cache(maxsize=8)
def _compiled_map(settings: tuple, prior_ref: _ById | None) -> Callable:
    """The jitted :func:`annealed_map` for these settings."""
    reduced, steps, lr, momentum = settings

    def run_map(data, mode_var, schedule):
        return annealed_map(lambda k, s: log_likelihood_and_grad(k, data, s, reduced), _score_of(prior_ref, mode_var),
                            lambda s: fourier_precision(mode_var, max_weight(data, s), s),
                            jnp.zeros_like(mode_var), schedule, steps, lr, momentum)

    return jax.jit(run_map)


def posterior_maps(g1, g2, noise_std, mask, pixel_size_arcmin: float, pad: int, config, key: jax.Array,
                   mode_var_fn: Callable[[int, int], np.ndarray], prior=None,
                   methods: Sequence[str] = ("posterior",), progress: bool = True,
                   on_samples: Callable[[np.ndarray], None] | None = None) -> dict[str, Any]:
    """Posterior κ from binned shear (ny, nx): samples, mean, std and/or the MAP map.

    ``noise_std`` is the per-component shear noise per pixel (0/NaN = no data), ``mask`` 1 where there
    is data; ``mode_var_fn(ny_pad, nx_pad)`` gives the Gaussian prior's per-mode variance on the padded
    grid; ``prior`` is a loaded learned prior or None (Gaussian prior). ``config`` is the root Config or
    its ``posterior`` section. ``on_samples(chunk)`` receives finished samples (k, ny, nx) in order.
    Returns KAPPA_MEAN, KAPPA_STD, KAPPA_SAMPLES (n, ny, nx), DIAGNOSTICS and n_score_evals (per sample)
    for 'posterior'; KAPPA_MAP for 'map'. Same key → same samples; chain c uses fold_in(key, c).
    """
    pc = getattr(config, "posterior", config)
    methods = tuple(methods)
    g1, g2, noise_std, mask = _validate(g1, g2, noise_std, mask, pad, methods, pc)
    pad = int(pad)
    data = shear_data(g1, g2, noise_std, mask, pad)
    if not float(jnp.sum(data.mask)) > 0:
        raise InputError("no pixel carries shear data (MASK is 0 or NOISE_STD is 0/NaN everywhere)")
    ny_pad, nx_pad = data.g1.shape
    mode_var = np.asarray(mode_var_fn(ny_pad, nx_pad), np.float32)
    if mode_var.shape != (ny_pad, nx_pad) or not np.all(np.isfinite(mode_var)) or np.any(mode_var < 0):
        raise InputError(f"the prior mode variance must be a finite, non-negative {ny_pad}×{nx_pad} array; "
                         f"got shape {mode_var.shape}")
    if prior is not None:
        check_prior_grid(prior, ny_pad, nx_pad, float(pixel_size_arcmin))
    pc = dataclasses.replace(pc, chains=resolve_chains(pc, prior))
    sigma_max, sigma_min = _sigma_range(pc, prior, mode_var)
    schedule = sigma_schedule(sigma_max, sigma_min, pc.n_levels)
    prior_ref = None if prior is None else _ById(prior)
    mode_var_j, preconditioner = jnp.asarray(mode_var), "gaussian prior C_ell"
    if prior is not None:  # the preconditioner and the initial draws use the learned prior's own spectrum
        probed = jax.jit(probe_mode_variance, static_argnums=(0, 2))(
            prior.score, jax.random.fold_in(key, PROBE_KEY), (ny_pad, nx_pad), sigma_min)
        if bool(jnp.all(jnp.isfinite(probed))):
            mode_var_j, preconditioner = probed, "probed from the prior's score"
        else:
            preconditioner = "gaussian prior C_ell (the prior's score was non-finite near kappa = 0)"
    result: dict[str, Any] = {}

    if "posterior" in methods:
        sampler = _Sampler(data, mode_var_j, prior_ref, pc, schedule, pad)
        samples, diag, total_evals = _run_posterior(sampler, pc, key, progress, on_samples)
        diag["SIGMA_MAX"], diag["SIGMA_MIN"] = sigma_max, sigma_min
        diag["PRIOR"] = prior_name(prior)
        diag["PRECONDITIONER"] = preconditioner
        result["KAPPA_SAMPLES"] = samples
        result["KAPPA_MEAN"] = samples.mean(axis=0, dtype=np.float64).astype(np.float32)
        std = samples.std(axis=0, ddof=1, dtype=np.float64) if len(samples) > 1 else np.zeros_like(samples[0])
        result["KAPPA_STD"] = np.asarray(std, np.float32)
        result["n_score_evals"] = total_evals / len(samples)
        result["DIAGNOSTICS"] = diag

    if "map" in methods:
        run_map = _compiled_map((pc.reduced_shear, pc.map_steps_per_level, pc.map_learning_rate, pc.map_momentum),
                                prior_ref)
        kappa, info = run_map(data, mode_var_j, jnp.asarray(schedule))
        kappa = np.asarray(crop_map(kappa, pad))
        stable = np.asarray(info.stable, bool)
        # the safeguard only accepts finite steps; an unstable first level means the score or the
        # likelihood is non-finite at κ = 0, or the prior drives κ away from the data from the start
        if not np.all(np.isfinite(kappa)) or not stable[0]:
            raise SamplingError(f"the MAP ascent failed at the first annealing level (prior "
                                f"'{prior_name(prior)}': NaN/inf score or "
                                "a score that drives kappa away from the data); check the prior")
        n_run = min(len(schedule), int(stable.sum()) + 1)  # levels run: the stable ones and the first unstable
        result["KAPPA_MAP"] = kappa
        diag = result.setdefault("DIAGNOSTICS", {})
        diag["MAP_STEP_RMS"] = np.asarray(info.step_rms, np.float64)
        diag["MAP_STEP_SCALE"] = np.asarray(info.step_scale, np.float64)
        diag["MAP_REJECTED"] = np.asarray(info.n_rejected, np.int64)
        diag["MAP_STABLE"] = stable.astype(np.int64)
        diag["MAP_SIGMA_FINAL"] = float(schedule[int(stable.sum()) - 1])  # σ of the returned MAP
        diag["MAP_SCORE_EVALS"] = int(n_run * (pc.map_steps_per_level + 1))
        if "SIGMA" not in diag:
            diag["SIGMA"] = np.asarray(schedule, np.float64)
    return result
