"""Config section `posterior`: posterior κ samples by annealed HMC with a score prior, and the MAP.

σ values are in κ units (the Gaussian noise added to κ that defines the smoothed prior p_σ). Step sizes
and trajectory lengths are in whitened units: the sampler is preconditioned by the Gaussian-limit
posterior curvature, so on a Gaussian problem every direction has unit scale. See docs/posterior.md.

What a null key means is resolved here, once, for a given prior and padded grid
(:func:`sampler_settings`, :func:`map_settings`):

- ``chains``: a learned prior: ``n_samples`` (one draw per chain, each its own annealing run — such a
  chain mixes slowly at σ_min); the Gaussian prior: min(GAUSSIAN_CHAINS, n_samples), sharing the
  annealing cost (its chains mix fast);
- ``sigma_max``: a learned prior: its largest trained σ; the Gaussian prior: 2 × its κ rms per pixel
  on the padded grid;
- ``sigma_min``: a learned prior: max(its smallest trained σ, LEARNED_SIGMA_MIN_FRACTION × its
  training κ std τ), at most sigma_max / 2; the Gaussian prior: GAUSSIAN_SIGMA_MIN. Why 0.5 τ: where a
  mode's prior variance s_k ≫ σ², denoising score matching hardly constrains the score (the network's
  term moves the denoiser by O(σ³/s_k)), yet the chains equilibrate at σ_min under that score in every
  mode; the shipped PM prior stopped at 0.1 τ gave samples with 1.7× the truth's C_ℓ at ℓ ≈ 4600 and a
  worse posterior mean than stopped at 0.5 τ, where the final conditional draw (``denoise: draw``)
  supplies the spread of κ given κ_σ (docs/posterior.md, "Where the annealing stops");
- ``annealed_likelihood``: a learned prior: 'split' (exact below the noise; its σ_min = 0.5 τ is 3–5% of
  the noise variance at 30 galaxies/arcmin², where the inflated likelihood shrinks the mean by twice
  that); the Gaussian prior, or ``denoise: draw_given_data``: 'inflated' (at GAUSSIAN_SIGMA_MIN the two
  agree to 2σ_min²/σ_i², ~0.1%, and the split one costs about 1.9× per leapfrog step when the score is
  an FFT; the data-aware final draw belongs to the inflated construction);
- ``map_sigma_min`` (the MAP's last level): a learned prior: max(its smallest trained σ,
  MAP_SIGMA_MIN_FRACTION × τ), at most sigma_max / 2 (the MAP is a mode: stopping at 0.5 τ gives the
  smoother mode of p_σ, on 8 PM fields r 0.027 lower on average, up to 0.08); the Gaussian prior:
  GAUSSIAN_SIGMA_MIN.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

import numpy as np

from massmap.config.core import ConfigError

GAUSSIAN_SIGMA_MIN = 1e-3  # default σ_min for the Gaussian prior (κ units)
LEARNED_SIGMA_MIN_FRACTION = 0.5  # default σ_min of the sampler for a learned prior, × its training κ std
MAP_SIGMA_MIN_FRACTION = 0.1  # default last level of the MAP for a learned prior, × its training κ std
GAUSSIAN_CHAINS = 10  # default number of chains for the Gaussian prior (a learned prior: one per sample)


def _err(key: str, msg: str) -> ConfigError:
    return ConfigError(f"config key 'posterior.{key}' {msg}")


@dataclass(frozen=True)
class PosteriorConfig:
    # --- prior ---
    prior: Optional[str] = None  # 'gaussian', a prior file, or null = massmap/data/priors/default.h5 if shipped
    # --- what to draw ---
    n_samples: int = 100  # posterior samples returned
    chains: Optional[int] = None  # independent chains, each giving ceil(n_samples / chains) draws; null: one
    # draw per chain (chains = n_samples) for a learned prior, 10 for the Gaussian prior
    chunk: int = 10  # chains run at once (vmapped); bounds memory
    antithetic: bool = True  # chains in antithetic pairs (mirrored Gaussian draws): a less noisy mean
    # --- annealing schedule: geometric from sigma_max down to sigma_min ---
    sigma_max: Optional[float] = None  # null: the learned prior's sigma_max; Gaussian prior: 2 × prior κ rms
    sigma_min: Optional[float] = None  # null: learned prior: max(its sigma_min, 0.5 × its kappa std); Gaussian: 1e-3
    n_levels: int = 10  # noise levels in the schedule (including sigma_max and sigma_min)
    steps_per_level: int = 2  # HMC transitions per level (step size adapted during these)
    burn_in: int = 4  # extra adapted transitions at sigma_min before the first draw
    thin: int = 1  # transitions at sigma_min between successive draws of a chain (step size frozen)
    # --- HMC ---
    leapfrog_steps: Optional[int] = None  # fixed leapfrog steps; null = trajectory_length / step size
    trajectory_length: float = 1.5708  # whitened integration time (π/2: independent draws of a Gaussian)
    max_leapfrog_steps: int = 64  # cap on the automatic number of leapfrog steps
    step_size: Optional[float] = None  # initial whitened step size; null = 1.5 · d^(-1/4), d = pixels
    target_accept: float = 0.8  # the per-chain step size is adapted towards this acceptance rate
    metropolis: bool = True  # accept/reject (exact for the Gaussian prior; see docs/posterior.md)
    max_energy_error: float = 1000.0  # a transition with a larger energy error is divergent: rejected
    denoise: Literal["tweedie", "draw", "draw_given_data", "none"] = "draw"  # final step: tweedie = κ + σ_min² ·
    # score(κ, σ_min); draw = that plus a draw of the Gaussian-limit spread of κ given κ_σ; draw_given_data =
    # a draw of the Gaussian-limit κ given κ_σ and the data (see docs/posterior.md); none = κ_σ
    max_restarts: int = 2  # a chain that produced NaN/inf is restarted (new key) at most this often
    # --- likelihood ---
    reduced_shear: bool = False  # model the reduced shear g = γ / (1 − κ) instead of γ
    annealed_likelihood: Optional[Literal["split", "inflated"]] = None  # the data's term at level σ: split =
    # the exact p(d | κ_σ) below the noise, continuous into the inflated one above it; inflated = noise
    # σ_i² + σ² at every level (Remy et al. 2022); null: split for a learned prior, inflated for the Gaussian
    # prior or with denoise: draw_given_data (see docs/posterior.md)
    # --- MAP (method 'map'): annealed preconditioned gradient ascent with optax ---
    map_sigma_min: Optional[float] = None  # the MAP's last level; null: learned prior: max(its sigma_min,
    # 0.1 × its kappa std); Gaussian: 1e-3 (its first level is sigma_max, its levels n_levels)
    map_steps_per_level: int = 30
    map_learning_rate: float = 1.0  # on the preconditioned gradient (1 = Newton step in the Gaussian limit)
    map_momentum: float = 0.9  # Nesterov momentum of optax.sgd

    def __post_init__(self):
        if self.chains is not None and self.chains < 1:
            raise _err("chains", f"must be >= 1 or null, got {self.chains}")
        for name in ("n_samples", "chunk", "n_levels", "steps_per_level", "thin",
                     "max_leapfrog_steps", "map_steps_per_level"):
            if getattr(self, name) < 1:
                raise _err(name, f"must be >= 1, got {getattr(self, name)}")
        for name in ("burn_in", "max_restarts"):
            if getattr(self, name) < 0:
                raise _err(name, f"must be >= 0, got {getattr(self, name)}")
        if self.leapfrog_steps is not None and self.leapfrog_steps < 1:
            raise _err("leapfrog_steps", f"must be >= 1 or null, got {self.leapfrog_steps}")
        for name in ("sigma_max", "sigma_min", "map_sigma_min", "step_size"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise _err(name, f"must be > 0 or null, got {v}")
        for name in ("sigma_min", "map_sigma_min"):
            v = getattr(self, name)
            if v is not None and self.sigma_max is not None and not v < self.sigma_max:
                raise _err(name, f"must be < posterior.sigma_max ({self.sigma_max}), got {v}")
        if self.denoise == "draw_given_data" and self.annealed_likelihood == "split":
            raise _err("denoise", "'draw_given_data' needs posterior.annealed_likelihood: inflated (with the "
                       "split likelihood the data are already in κ_σ: use 'draw')")
        if not self.trajectory_length > 0:
            raise _err("trajectory_length", f"must be > 0, got {self.trajectory_length}")
        if not 0 < self.target_accept < 1:
            raise _err("target_accept", f"must be in (0, 1), got {self.target_accept}")
        if not self.max_energy_error > 0:
            raise _err("max_energy_error", f"must be > 0, got {self.max_energy_error}")
        if not self.map_learning_rate > 0:
            raise _err("map_learning_rate", f"must be > 0, got {self.map_learning_rate}")
        if not 0 <= self.map_momentum < 1:
            raise _err("map_momentum", f"must be in [0, 1), got {self.map_momentum}")


def resolve_chains(pc: PosteriorConfig, prior) -> int:
    """``posterior.chains``, or its default for ``prior`` (see the module docstring)."""
    if pc.chains is not None:
        return int(pc.chains)
    gaussian = prior.mode_variance(2, 2) is not None
    return min(GAUSSIAN_CHAINS, int(pc.n_samples)) if gaussian else int(pc.n_samples)


def sigma_range(pc: PosteriorConfig, prior, grid_shape: tuple[int, int],
                method: str = "posterior") -> tuple[float, float]:
    """(σ_max, σ_min) of the annealing schedule of ``method`` ('posterior': the sampler, ``sigma_min``;
    'map': ``map_sigma_min``) for ``prior`` on the padded grid (module docstring)."""
    key = "sigma_min" if method == "posterior" else "map_sigma_min"
    given = getattr(pc, key)
    exact = prior.mode_variance(*grid_shape)
    if exact is not None:
        hi = pc.sigma_max if pc.sigma_max is not None else 2.0 * float(np.sqrt(np.mean(exact)))
        lo = given if given is not None else GAUSSIAN_SIGMA_MIN
    else:
        pmin, pmax = float(prior.sigma_min), float(prior.sigma_max)
        if given is not None and given < pmin * (1 - 1e-6):
            raise ConfigError(f"config key 'posterior.{key}' ({given:g}) is below the prior's "
                              f"smallest trained noise level {pmin:g}")
        if pc.sigma_max is not None and pc.sigma_max > pmax * (1 + 1e-6):
            raise ConfigError(f"config key 'posterior.sigma_max' ({pc.sigma_max:g}) is above the prior's "
                              f"largest trained noise level {pmax:g}")
        hi = pc.sigma_max if pc.sigma_max is not None else pmax
        tau = float(prior.kappa_std or 0.0)
        fraction = LEARNED_SIGMA_MIN_FRACTION if method == "posterior" else MAP_SIGMA_MIN_FRACTION
        lo = given if given is not None else min(max(pmin, fraction * tau), 0.5 * hi)
    if not lo < hi:
        raise ConfigError(f"config key 'posterior.{key}' ({lo:g}) must be below posterior.sigma_max ({hi:g})")
    return float(hi), float(lo)


def sampler_settings(pc: PosteriorConfig, prior, grid_shape: tuple[int, int]):
    """The section as :class:`massmap.infer.sampler.SamplerSettings` for ``prior`` on the padded grid."""
    from massmap.infer.sampler import SamplerSettings

    sigma_max, sigma_min = sigma_range(pc, prior, grid_shape)
    return SamplerSettings(
        n_samples=pc.n_samples, chains=resolve_chains(pc, prior), sigma_max=sigma_max, sigma_min=sigma_min,
        n_levels=pc.n_levels, steps_per_level=pc.steps_per_level, burn_in=pc.burn_in, thin=pc.thin,
        trajectory_length=pc.trajectory_length, leapfrog_steps=pc.leapfrog_steps,
        max_leapfrog_steps=pc.max_leapfrog_steps, step_size=pc.step_size, target_accept=pc.target_accept,
        metropolis=pc.metropolis, max_energy_error=pc.max_energy_error, denoise=pc.denoise,
        max_restarts=pc.max_restarts, reduced_shear=pc.reduced_shear, antithetic=pc.antithetic,
        likelihood=resolve_likelihood(pc, prior))


def resolve_likelihood(pc: PosteriorConfig, prior) -> str:
    """``posterior.annealed_likelihood``, or its default for ``prior`` (module docstring)."""
    if pc.annealed_likelihood is not None:
        return pc.annealed_likelihood
    gaussian = prior.mode_variance(2, 2) is not None
    return "inflated" if gaussian or pc.denoise == "draw_given_data" else "split"


def map_settings(pc: PosteriorConfig, prior, grid_shape: tuple[int, int]):
    """The section's MAP keys as :class:`massmap.infer.map.MapSettings` (σ_max … map_sigma_min)."""
    from massmap.infer.map import MapSettings

    sigma_max, sigma_min = sigma_range(pc, prior, grid_shape, "map")
    return MapSettings(sigma_max=sigma_max, sigma_min=sigma_min, n_levels=pc.n_levels,
                       steps_per_level=pc.map_steps_per_level, learning_rate=pc.map_learning_rate,
                       momentum=pc.map_momentum, reduced_shear=pc.reduced_shear)
