"""The annealed posterior sampler: independent chains from σ_max to σ_min, draws, restarts, R̂ and ESS.

:func:`sample_posterior` is a pure function of (key, padded shear, prior, settings) → :class:`PosteriorSamples`.
Every chain c (key below) follows one policy (Remy et al. 2022, with the step-size rules of
massmap.infer.annealed):

0. at level σ the data's term is the likelihood of κ_σ named by ``likelihood`` (massmap.infer.likelihood:
   'split', exact below the noise and continuous into the inflated one above it, or 'inflated');
1. start from a zero-mean draw of the σ_max-smoothed Gaussian of the preconditioner's spectrum;
2. annealing: ``steps_per_level`` transitions at each level of the geometric schedule σ_max → σ_min,
   the cached terms re-evaluated at each new σ, the step size adapted downwards only (ADAPT_DOWN);
3. burn-in: ``burn_in`` transitions at σ_min with symmetric adaptation (ADAPT);
4. draws: ``draws_per_chain`` = ⌈n_samples / chains⌉ draws, ``thin`` transitions apart, step size
   frozen (FROZEN), each denoised (``denoise``: 'tweedie', Tweedie's mean; 'draw', a draw of the
   Gaussian-limit p(κ | κ_σ) whose mode variance is the preconditioner's spectrum, with key
   fold_in(chain key, DRAW_KEY + j) for draw j; 'draw_given_data', a draw of the Gaussian-limit
   p(κ | κ_σ, data), the same with the data's information on κ; 'none') and cropped to the unpadded map.

The posterior mean is Rao–Blackwellised: with 'draw' (or 'draw_given_data'), each sample is its
conditional mean m_j = E[κ | κ_σ,j] (Tweedie's; with the data, E[κ | κ_σ,j, d]) plus an independent
zero-mean Gaussian field, so the average of the m_j has
the expectation of the samples' average and a smaller variance — the draws' own spread (per mode
σ² s_k / (s_k + σ²), most of a pixel's posterior variance at the small, noise-dominated scales) adds
Monte-Carlo noise to the samples' average but nothing to the estimate. ``mean_error`` is the
Monte-Carlo standard error of that mean from independent units (batch means: the draws of a chain,
or of an antithetic pair of chains run together; a chain rerun after a failure is its own unit), by
the ratio estimator ε² = U/(U − 1) Σ_u (n_u/N)² (ū_u − m)² over U units of n_u draws (N in all,
ū_u their mean, m the mean): var(ū)/U for equal units; None with fewer than two units.
The standard deviation is the samples' (it includes the draws' spread).

Antithetic pairs (``antithetic``, the default): chains 2i and 2i + 1 share the key fold_in(key, i) and
run with signs +1 and −1 on every Gaussian draw (massmap.infer.annealed): each is an ordinary chain, and
in the Gaussian limit the pair is mirrored about the mode, so the noise of their average cancels there
(where the posterior is near-Gaussian: the large, data-constrained scales). Without it chain c has the
key fold_in(key, c).

Chains run in vmapped chunks of ``chunk`` (memory only: a chain's numbers depend on its chunk size only
through float rounding, as XLA vectorises other batch sizes differently). With several devices
(massmap.parallel) each chunk is padded to a multiple of the device count and its chains are split
over the devices along the chain axis (each device runs the vmapped kernel on its share,
:func:`build_level`; the padding chains are discarded); under jax.distributed the devices of every
process share the chains and every process gets all the samples.
A chain whose draws or cached gradients are non-finite is run again with key fold_in(its key, r)
for restart r ≤ ``max_restarts``, then dropped; if every chain is dropped, :class:`SamplingError`.
Convergence: split-R̂ and ESS (massmap.infer.diagnostics) of three per-draw scalars (map variance,
mean of the central quarter, peak) over the chains kept.

The preconditioner's spectrum (massmap.infer.preconditioner.prior_spectrum) is probed with key
fold_in(key, PROBE_KEY) for a learned prior.
"""
from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from massmap import parallel
from massmap.errors import SamplingError
from massmap.infer.annealed import (ADAPT, ADAPT_DOWN, FROZEN, HMCState, annealed_hmc, conditional_draw,
                                    conditional_draw_given_data, denoise, init_position, initial_log_step_size,
                                    run_level, sigma_schedule)
from massmap.infer.diagnostics import effective_sample_size, split_rhat
from massmap.infer.likelihood import (PaddedShear, log_likelihood_and_grad, mean_weight, split_fraction,
                                      split_log_likelihood_and_grad, split_weight)
from massmap.infer.preconditioner import fourier_precision, prior_spectrum
from massmap.ops.shear import crop_map
from massmap.prior.base import single_map_score

SUMMARIES = ("VARIANCE", "CENTRE_MEAN", "PEAK")  # per-draw scalars whose R̂ and ESS are reported
LIKELIHOODS = ("split", "inflated")  # the annealed likelihood (massmap.infer.likelihood)
DENOISE = ("tweedie", "draw", "draw_given_data", "none")  # the final step of a draw (module docstring)
CONDITIONAL = ("draw", "draw_given_data")  # final steps that draw: their conditional means are kept apart
DRAW_KEY = 1_000_000  # conditional draw j of a chain uses fold_in(chain key, DRAW_KEY + j)


@dataclass(frozen=True)
class SamplerSettings:
    """Everything the annealed sampler's numbers depend on (σ in κ units, steps in whitened units)."""

    n_samples: int
    chains: int
    sigma_max: float
    sigma_min: float
    n_levels: int = 10
    steps_per_level: int = 2
    burn_in: int = 4
    thin: int = 1
    trajectory_length: float = 1.5708
    leapfrog_steps: int | None = None
    max_leapfrog_steps: int = 64
    step_size: float | None = None  # initial whitened step size; None = 1.4 · d^(-1/4)
    target_accept: float = 0.8
    metropolis: bool = True
    max_energy_error: float = 1000.0
    denoise: str = "draw"  # final step: 'draw', 'draw_given_data', 'tweedie' or 'none' (module docstring)
    max_restarts: int = 2
    reduced_shear: bool = False
    antithetic: bool = True  # chains 2i, 2i + 1 as antithetic pairs (module docstring)
    likelihood: str = "split"  # annealed likelihood: 'split' (exact as σ² ≪ σ_i²) or 'inflated' (massmap.infer.likelihood)

    def __post_init__(self):
        if self.n_samples < 1 or self.chains < 1:
            raise ValueError(f"n_samples and chains must be >= 1, got {self.n_samples} and {self.chains}")
        if self.denoise not in DENOISE:
            raise ValueError(f"denoise must be one of {DENOISE}, got {self.denoise!r}")
        if self.likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {self.likelihood!r}")
        if self.likelihood == "split" and self.denoise == "draw_given_data":
            raise ValueError("denoise 'draw_given_data' belongs to the inflated likelihood: with the split one "
                             "the data are already in κ_σ (p(κ | κ_σ, data) = p(κ | κ_σ)); use 'draw'")
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(f"need 0 < sigma_min < sigma_max, got {self.sigma_min:g} and {self.sigma_max:g}")

    @property
    def draws_per_chain(self) -> int:
        return math.ceil(self.n_samples / self.chains)

    @property
    def schedule(self) -> np.ndarray:
        return sigma_schedule(self.sigma_max, self.sigma_min, self.n_levels)

    def kernel(self) -> tuple:
        """The settings the compiled HMC kernel depends on (a hashable key)."""
        return (self.reduced_shear, self.likelihood, self.trajectory_length, self.leapfrog_steps, self.max_leapfrog_steps,
                self.metropolis, self.max_energy_error, self.target_accept)


class ChainBatch(NamedTuple):
    """A chunk of chains run together (leading axis: chain)."""

    draws: np.ndarray  # (B, draws_per_chain, ny, nx), cropped and denoised
    means: np.ndarray  # (B, draws_per_chain, ny, nx), each draw's conditional mean (= draws unless CONDITIONAL)
    ok: np.ndarray  # (B,) every draw and cached gradient finite
    n_evals: np.ndarray  # (B,) score evaluations
    acceptance: np.ndarray  # (B, levels) mean acceptance rate per annealing level
    step_size: np.ndarray  # (B, levels) step size at the end of each level
    leapfrog: np.ndarray  # (B, levels) score evaluations per level
    divergent: np.ndarray  # (B, levels)
    draw_acceptance: np.ndarray  # (B,) mean acceptance while drawing
    draw_divergent: np.ndarray  # (B,)
    draw_step_size: np.ndarray  # (B,) the frozen step size


class SamplerInfo(NamedTuple):
    """Diagnostics of a posterior run: per annealing level (arrays of length n_levels) and overall."""

    sigma: np.ndarray  # the schedule (float64)
    acceptance: np.ndarray  # mean over chains kept
    step_size: np.ndarray
    leapfrog_steps: np.ndarray
    divergent: np.ndarray  # summed over chains kept
    acceptance_draws: float
    step_size_draws: float
    divergent_draws: int
    n_chains: int
    n_chains_used: int
    draws_per_chain: int
    n_failed_runs: int
    n_restarts: int
    n_dropped: int
    n_score_evals: int  # all chains, failed runs included
    rhat: dict  # summary name → split-R̂ (NaN with fewer than 4 draws per chain)
    ess: dict  # summary name → ESS
    sigma_max: float
    sigma_min: float
    prior: str
    preconditioner: str
    split_fraction: np.ndarray  # per level: t of the split likelihood (0 for the inflated one; massmap.infer.likelihood)

    @property
    def rhat_max(self) -> float:
        finite = [v for v in self.rhat.values() if np.isfinite(v)]
        return float(max(finite)) if finite else float("nan")


class PosteriorSamples(NamedTuple):
    """Posterior draws of κ on the unpadded grid, their moments and the run's diagnostics."""

    samples: np.ndarray  # (n, ny, nx) float32
    mean: np.ndarray  # (ny, nx) float32, float64 accumulation; the average of the draws' conditional means
    std: np.ndarray  # (ny, nx) float32, ddof = 1 (0 for a single sample), of the samples
    mean_error: np.ndarray | None  # (ny, nx) float32, Monte-Carlo standard error of ``mean``; None if unknown
    info: SamplerInfo | None  # None when the run was interrupted before it finished

    @property
    def score_evals_per_sample(self) -> float:
        return self.info.n_score_evals / len(self.samples) if self.info is not None else float("nan")


def posterior_moments(samples: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (ddof = 1; 0 for one sample) of draws along ``axis`` (float64).

    The one place posterior moments are computed (sampler, Ctrl-C, HEALPix tiles, summaries).
    """
    samples = np.asarray(samples)
    mean = samples.mean(axis=axis, dtype=np.float64)
    if samples.shape[axis] > 1:
        std = samples.std(axis=axis, ddof=1, dtype=np.float64)
    else:
        std = np.zeros_like(mean)
    return mean, std


def from_samples(samples: np.ndarray, info: SamplerInfo | None = None, mean: np.ndarray | None = None,
                 mean_error: np.ndarray | None = None) -> PosteriorSamples:
    """:class:`PosteriorSamples` of draws (n, ny, nx) with their std (float32).

    ``mean``: the (Rao–Blackwellised) posterior mean, None → the samples' average; ``mean_error``: its
    Monte-Carlo standard error (:func:`mean_and_error`), or None.
    """
    samples = np.asarray(samples, np.float32)
    sample_mean, std = posterior_moments(samples)
    mean = sample_mean if mean is None else mean
    error = None if mean_error is None else np.asarray(mean_error, np.float32)
    return PosteriorSamples(samples, np.asarray(mean, np.float32), std.astype(np.float32), error, info)


def mean_and_error(sums: list[np.ndarray], counts: list[int]) -> tuple[np.ndarray, np.ndarray | None]:
    """The mean of N = Σ n_u draws from the sums (float64 maps) and draw counts n_u of independent units,
    and its Monte-Carlo standard error by the ratio estimator of the module docstring (None for U < 2)."""
    n = np.asarray(counts, np.float64)
    total = float(n.sum())
    mean = np.sum(sums, axis=0) / total
    if len(n) < 2:
        return mean, None
    unit_means = np.stack(sums) / n[:, None, None]
    var = len(n) / (len(n) - 1) * np.sum((n[:, None, None] / total) ** 2 * (unit_means - mean) ** 2, axis=0)
    return mean, np.sqrt(var)


@functools.lru_cache(maxsize=8)
def build_level(kernel: tuple, prior, mesh=None) -> Callable:
    """The jitted, chain-vmapped :func:`~massmap.infer.annealed.run_level` for ``prior`` and the kernel
    settings ``SamplerSettings.kernel()`` (compiled once per shape; priors hash by identity).

    With a device ``mesh`` (massmap.parallel.batch_mesh) the chains are split along the mesh axis by
    ``shard_map``: each device runs the vmapped level on its own chains, with its own leapfrog loop
    lengths and no communication (the program of one device with B/D chains).
    """
    reduced, lik, traj, n_leap, max_leap, metropolis, max_err, target = kernel
    score = single_map_score(prior)

    def level(data, mode_var, keys, signs, states, sigma, n_steps, mode, reinit):
        if lik == "split":
            def logl(k, s):
                return split_log_likelihood_and_grad(k, data, s, reduced)

            def precision(s):
                return fourier_precision(mode_var, jnp.mean(split_weight(data, s)), s)
        else:
            def logl(k, s):
                return log_likelihood_and_grad(k, data, s, reduced)

            def precision(s):
                return fourier_precision(mode_var, mean_weight(data, s), s)
        alg = annealed_hmc(logl, score, precision,
                           trajectory_length=traj, leapfrog_steps=n_leap, max_leapfrog_steps=max_leap,
                           metropolis=metropolis, max_energy_error=max_err, target_accept=target)
        return jax.vmap(lambda k, sg, st: run_level(alg, k, st, sigma, n_steps, mode, reinit, sg))(keys, signs, states)

    if mesh is None:
        return jax.jit(level)
    whole, split = jax.sharding.PartitionSpec(), jax.sharding.PartitionSpec(parallel.AXIS)
    return jax.jit(jax.shard_map(level, mesh=mesh,
                                 in_specs=(whole, whole, split, split, split, whole, whole, whole, whole),
                                 out_specs=(split, split), check_vma=False))  # no collectives inside


@functools.partial(jax.jit, static_argnums=(5, 6))
def _draw(states: HMCState, keys: jax.Array, signs: jnp.ndarray, spectrum: jnp.ndarray, data: PaddedShear,
          how: str, pad: int) -> tuple[jnp.ndarray, jnp.ndarray, jnp.ndarray]:
    """Cropped (denoised) draws of a batch of chains, their conditional means (the draws themselves
    unless ``how`` is in CONDITIONAL) and whether the cached gradients are finite."""
    if how == "draw":
        mean = jax.vmap(denoise)(states)
        kappa = jax.vmap(conditional_draw, in_axes=(0, 0, None, 0))(keys, states, spectrum, signs)
    elif how == "draw_given_data":
        kappa, mean = jax.vmap(conditional_draw_given_data, in_axes=(0, 0, None, None, 0))(keys, states, spectrum,
                                                                                           data, signs)
    else:
        kappa = jax.vmap(denoise)(states) if how == "tweedie" else states.position
        mean = kappa
    fields = jnp.stack([states.likelihood_grad, states.prior_score], axis=1)
    return crop_map(kappa, pad), crop_map(mean, pad), jnp.isfinite(fields).all(axis=(1, 2, 3))


@jax.jit
def _init_positions(keys: jax.Array, signs: jnp.ndarray, mode_var: jnp.ndarray, sigma) -> jnp.ndarray:
    return jax.vmap(lambda k, sg: init_position(k, mode_var, sigma, sg))(keys, signs)


def run_chains(chain_keys: jax.Array, chain_signs: jnp.ndarray, data: PaddedShear, prior, spectrum: jnp.ndarray,
               settings: SamplerSettings, pad: int, on_step: Callable[[], None] | None = None) -> ChainBatch:
    """Run a batch of chains from their keys (B, key) and antithetic signs (B,) through annealing,
    burn-in and draws.

    ``spectrum`` is the preconditioner's per-mode variance on the padded grid; ``on_step()`` is called
    after every level and every draw (progress). With several devices the keys and the chain states are
    split over them along the chain axis (B is padded to a multiple of the device count inside and the
    padding chains dropped); a chain's numbers do not depend on that.
    """
    tick = on_step or (lambda: None)
    sharded = parallel.device_count() > 1
    level = build_level(settings.kernel(), prior, parallel.batch_mesh() if sharded else None)
    schedule = settings.schedule
    fold = jax.vmap(jax.random.fold_in, in_axes=(0, None))
    n_levels, n_draws = len(schedule), settings.draws_per_chain
    n_chains = chain_keys.shape[0]
    signs = jnp.asarray(chain_signs, jnp.float32)
    if sharded:
        chain_keys = jnp.asarray(parallel.pad_batch(chain_keys, parallel.padded_size(n_chains)))
        signs = jnp.asarray(parallel.pad_batch(signs, parallel.padded_size(n_chains)))
    b = chain_keys.shape[0]
    sigma0 = jnp.float32(schedule[0])
    pos = _init_positions(fold(chain_keys, 0), signs, spectrum, sigma0)
    zeros = jnp.zeros_like(pos)
    log_eps0 = initial_log_step_size(int(np.prod(spectrum.shape)), settings.step_size)
    # cached terms are filled by the first level's re-initialisation
    states = HMCState(pos, jnp.zeros(b, jnp.float32), zeros, zeros, jnp.full(b, sigma0),
                      jnp.full(b, log_eps0, jnp.float32))
    if sharded:  # chains split over the devices; the data and the spectrum on every device
        chain_keys, signs, states = parallel.shard_batch((chain_keys, signs, states))
        data, spectrum = parallel.replicate((data, spectrum))
    host = parallel.to_host
    evals = np.zeros(b, np.int64)
    acc, eps, lf, div = (np.zeros((b, n_levels)) for _ in range(4))
    for i, sigma in enumerate(schedule):
        states, info = level(data, spectrum, fold(chain_keys, 1 + i), signs, states, jnp.float32(sigma),
                             settings.steps_per_level, ADAPT_DOWN, True)
        acc[:, i], eps[:, i] = host(info.acceptance_rate), host(info.step_size)
        lf[:, i], div[:, i] = host(info.n_evals), host(info.n_divergent)
        evals += host(info.n_evals)
        tick()
    sigma_min = jnp.float32(schedule[-1])
    if settings.burn_in > 0:
        states, info = level(data, spectrum, fold(chain_keys, 1 + n_levels), signs, states, sigma_min, settings.burn_in,
                             ADAPT, False)
        evals += host(info.n_evals)
    ny, nx = (n - 2 * pad for n in data.g1.shape)
    draws = np.empty((b, n_draws, ny, nx), np.float32)
    means = np.empty_like(draws) if settings.denoise in CONDITIONAL else draws  # otherwise the same maps
    ok = np.ones(b, bool)
    draw_acc, draw_div = np.zeros(b), np.zeros(b)
    for j in range(n_draws):
        states, info = level(data, spectrum, fold(chain_keys, 2 + n_levels + j), signs, states, sigma_min, settings.thin,
                             FROZEN, False)
        evals += host(info.n_evals)
        draw_acc += host(info.acceptance_rate) / n_draws
        draw_div += host(info.n_divergent)
        kappa, mean, finite = _draw(states, fold(chain_keys, DRAW_KEY + j), signs, spectrum, data,
                                    settings.denoise, pad)
        draws[:, j] = host(kappa)
        if means is not draws:
            means[:, j] = host(mean)
        ok &= host(finite)
        tick()
    ok &= np.isfinite(draws).all(axis=(1, 2, 3))
    if means is not draws:
        ok &= np.isfinite(means).all(axis=(1, 2, 3))
    out = ChainBatch(draws, means, ok, evals, acc, eps, lf, div, draw_acc, draw_div, host(jnp.exp(states.log_step_size)))
    return ChainBatch(*(field[:n_chains] for field in out))


def chain_pair(c: int, antithetic: bool) -> int:
    """The antithetic pair of chain c (c itself without antithetic pairs)."""
    return c // 2 if antithetic else c


def chain_sign(c: int, antithetic: bool) -> float:
    """Chain c's antithetic sign: +1 for even c, −1 for odd c (+1 without antithetic pairs)."""
    return -1.0 if antithetic and c % 2 else 1.0


def chain_key(key: jax.Array, c: int, antithetic: bool) -> jax.Array:
    """The key of chain c: fold_in(key, its pair) (module docstring)."""
    return jax.random.fold_in(key, chain_pair(c, antithetic))


def summaries(draws: np.ndarray) -> dict[str, np.ndarray]:
    """Per-draw scalar statistics of (..., ny, nx) maps for R̂ and ESS (see SUMMARIES)."""
    ny, nx = draws.shape[-2:]
    centre = draws[..., ny // 4: ny - ny // 4, nx // 4: nx - nx // 4]
    return {"VARIANCE": draws.var(axis=(-2, -1)), "CENTRE_MEAN": centre.mean(axis=(-2, -1)),
            "PEAK": draws.max(axis=(-2, -1))}


def steps_per_run(settings: SamplerSettings) -> int:
    """``on_step`` calls of one run of a chunk (levels + draws): the unit of a progress bar."""
    return settings.n_levels + settings.draws_per_chain


def sample_posterior(key: jax.Array, data: PaddedShear, prior, settings: SamplerSettings, *, pad: int,
                     chunk: int = 10, reference=None, spectrum: tuple | None = None,
                     on_step: Callable[[], None] | None = None,
                     on_restart: Callable[[int], None] | None = None,
                     on_samples: Callable[[np.ndarray, np.ndarray], None] | None = None) -> PosteriorSamples:
    """Posterior draws of κ for padded shear ``data`` and ``prior`` (see the module docstring).

    ``pad``: the padding of ``data`` (draws are cropped to the unpadded map). ``reference``: a Gaussian
    prior whose spectrum preconditions a learned prior whose score cannot be probed; ``spectrum``: that
    result of :func:`~massmap.infer.preconditioner.prior_spectrum` when the caller has it already. Callbacks:
    ``on_step()`` after each level or draw of a chunk, ``on_restart(n)`` when n chains are re-run,
    ``on_samples(batch, means)`` with each chunk's finished samples (k, ny, nx) and their conditional means,
    in order. Same key → same samples.
    """
    shape = tuple(data.g1.shape)
    schedule = settings.schedule
    spectrum, how = spectrum or prior_spectrum(prior, key, shape, settings.sigma_min, reference)
    chains, chunk = settings.chains, min(chunk, settings.chains)
    n_draws = settings.draws_per_chain
    kept: list[ChainBatch] = []
    kept_summaries: list[dict] = []
    total_evals, restarts, dropped, failures, n_out = 0, 0, 0, 0, 0
    samples = []
    units: dict[tuple, list] = {}  # independent unit → [sum of its draws' conditional means, draws]
    for start in range(0, chains, chunk):
        pending = list(range(start, min(start + chunk, chains)))
        results: dict[int, tuple] = {}
        for attempt in range(settings.max_restarts + 1):
            if not pending:
                break
            if attempt > 0:
                restarts += len(pending)
                if on_restart is not None:
                    on_restart(len(pending))
            # pad the chunk (to a multiple of the device count); extras are discarded
            ids = pending + [pending[0]] * (parallel.padded_size(chunk) - len(pending))
            keys = jnp.stack([jax.random.fold_in(chain_key(key, c, settings.antithetic), attempt) for c in ids])
            signs = np.array([chain_sign(c, settings.antithetic) for c in ids], np.float32)
            out = run_chains(keys, signs, data, prior, spectrum, settings, pad, on_step)
            total_evals += int(out.n_evals[: len(pending)].sum())
            still = []
            for row, c in enumerate(pending):
                if out.ok[row]:
                    results[c] = (attempt, tuple(field[row] for field in out))
                else:
                    failures += 1
                    still.append(c)
            pending = still
        dropped += len(pending)
        batch, batch_means = [], []
        for c in sorted(results):
            attempt, fields = results[c]
            chain = ChainBatch(*fields)
            kept.append(chain._replace(draws=None, means=None))  # per-draw scalars kept; the maps not twice
            kept_summaries.append(summaries(chain.draws))
            take = min(n_draws, settings.n_samples - n_out)
            if take > 0:
                batch.append(chain.draws[:take])
                batch_means.append(chain.means[:take])
                n_out += take
                unit = units.setdefault((chain_pair(c, settings.antithetic), attempt), [0.0, 0])
                unit[0] = unit[0] + chain.means[:take].sum(axis=0, dtype=np.float64)
                unit[1] += take
        if batch:
            samples.append(np.concatenate(batch))
            if on_samples is not None:
                on_samples(samples[-1], np.concatenate(batch_means))
    if not kept:
        raise SamplingError(f"all {chains} posterior chains produced NaN/inf, even after "
                            f"{settings.max_restarts} restarts each; check the prior and posterior.step_size")

    def stack(name):
        return np.stack([getattr(r, name) for r in kept])

    rhat, ess = {}, {}
    for name in SUMMARIES:
        values = np.stack([s[name] for s in kept_summaries])
        rhat[name] = float(split_rhat(values))
        ess[name] = float(effective_sample_size(values))
    info = SamplerInfo(
        sigma=np.asarray(schedule, np.float64), acceptance=stack("acceptance").mean(0),
        step_size=stack("step_size").mean(0), leapfrog_steps=stack("leapfrog").mean(0),
        divergent=stack("divergent").sum(0), acceptance_draws=float(stack("draw_acceptance").mean()),
        step_size_draws=float(stack("draw_step_size").mean()), divergent_draws=int(stack("draw_divergent").sum()),
        n_chains=int(chains), n_chains_used=len(kept), draws_per_chain=int(n_draws), n_failed_runs=int(failures),
        n_restarts=int(restarts), n_dropped=int(dropped), n_score_evals=int(total_evals), rhat=rhat, ess=ess,
        sigma_max=float(settings.sigma_max), sigma_min=float(settings.sigma_min), prior=str(prior.name),
        preconditioner=how, split_fraction=np.array([float(split_fraction(data, s)) if settings.likelihood == "split"
                                                     else 0.0 for s in schedule]))
    mean, error = mean_and_error(*zip(*units.values()))
    return from_samples(np.concatenate(samples), info, mean, error)
