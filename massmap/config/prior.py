"""Config section `prior`: the neural score prior for κ and its training (`massmap train-prior`).

σ values are in κ units (the noise added to κ, not to the normalised maps the network sees). The
network, loss and checkpoints are described in docs/priors.md.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from massmap.config.core import ConfigError


def _err(key: str, msg: str) -> ConfigError:
    return ConfigError(f"config key 'prior.{key}' {msg}")


@dataclass(frozen=True)
class PriorConfig:
    # --- training data ---
    npix: int = 64  # training patch side in pixels (random crops of this size)
    pixel_size_arcmin: Optional[float] = None  # target pixel scale; null = the inputs' own scale
    input_pixel_size_arcmin: Optional[float] = None  # pixel scale of .npy inputs (they carry none)
    val_fraction: float = 0.1  # fraction of the maps held out for validation (split by map)
    region_npix: Optional[int] = None  # maps larger than this are cut into regions first; null = 4·npix
    # --- network: residual UNet with periodic padding ---
    channels: tuple[int, ...] = (16, 32, 64)  # feature channels per level; len-1 downsamplings
    blocks_per_level: int = 1  # residual blocks per level (down and up paths)
    embed_dim: int = 64  # width of the σ embedding (Fourier features of log σ → MLP)
    hybrid: bool = False  # score = analytic Gaussian score (empirical C_ℓ) + learned residual
    residual: Optional[Literal["edm", "mean-shift"]] = None  # how the network output enters the residual;
    # null = 'mean-shift' (score −(S + σ²)⁻¹(x − σF), stable at small σ) for a hybrid prior, else 'edm'
    spectral_norm: bool = True  # spectral normalisation of every conv operator (power iteration)
    spectral_norm_bound: float = 4.0  # each conv operator's norm is capped at this value
    # --- denoising score matching ---
    sigma_min: Optional[float] = None  # κ units; null = 0.01 × the training κ standard deviation
    sigma_max: Optional[float] = None  # κ units; null = 10 × the training κ standard deviation
    sigma_distribution: Literal["log-uniform", "uniform"] = "log-uniform"
    loss_weighting: Literal["sigma2", "wiener"] = "sigma2"  # per-map weight of the DSM loss across σ:
    # 'sigma2' the plain DSM loss; 'wiener' each map's loss over the Wiener denoiser's expected loss at its σ
    # --- optimisation ---
    steps: int = 2000
    batch_size: int = 16
    learning_rate: float = 2e-3  # AdamW peak learning rate
    warmup_steps: int = 100  # linear warm-up, then cosine decay to learning_rate × final_lr_fraction
    final_lr_fraction: float = 0.02
    weight_decay: float = 1e-4
    grad_clip: float = 1.0  # global gradient-norm clip
    ema_decay: float = 0.999  # exponential moving average of the parameters (used for the prior)
    # --- bookkeeping ---
    checkpoint_every: int = 200  # steps between checkpoints (also written on Ctrl-C / SIGTERM)
    val_every: int = 100  # steps between validation-loss evaluations
    val_batches: int = 4  # validation batches (of batch_size crops, fixed noise) per evaluation

    def __post_init__(self):
        if not 4 <= self.npix <= 4096:
            raise _err("npix", f"must be in 4..4096, got {self.npix}")
        levels = len(self.channels)
        if levels < 1 or any(c < 1 for c in self.channels):
            raise _err("channels", f"must be a non-empty list of positive integers, got {list(self.channels)}")
        if self.npix % (2 ** (levels - 1)):
            raise _err("npix", f"must be divisible by 2^(len(channels)-1) = {2 ** (levels - 1)}, got {self.npix}")
        for name in ("pixel_size_arcmin", "input_pixel_size_arcmin", "sigma_min", "sigma_max"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise _err(name, f"must be > 0, got {v}")
        if self.sigma_min is not None and self.sigma_max is not None and not self.sigma_min < self.sigma_max:
            raise _err("sigma_min", f"must be < prior.sigma_max ({self.sigma_max}), got {self.sigma_min}")
        if not 0 < self.val_fraction < 1:
            raise _err("val_fraction", f"must be in (0, 1), got {self.val_fraction}")
        if self.region_npix is not None and self.region_npix < self.npix:
            raise _err("region_npix", f"must be >= prior.npix ({self.npix}), got {self.region_npix}")
        for name in ("blocks_per_level", "embed_dim", "steps", "batch_size", "checkpoint_every",
                     "val_every", "val_batches"):
            if getattr(self, name) < 1:
                raise _err(name, f"must be >= 1, got {getattr(self, name)}")
        if self.warmup_steps < 0 or self.warmup_steps >= self.steps:
            raise _err("warmup_steps", f"must be in [0, prior.steps), got {self.warmup_steps}")
        if not self.spectral_norm_bound > 0:
            raise _err("spectral_norm_bound", f"must be > 0, got {self.spectral_norm_bound}")
        for name in ("learning_rate", "grad_clip"):
            if not getattr(self, name) > 0:
                raise _err(name, f"must be > 0, got {getattr(self, name)}")
        if self.weight_decay < 0:
            raise _err("weight_decay", f"must be >= 0, got {self.weight_decay}")
        if not 0 <= self.final_lr_fraction <= 1:
            raise _err("final_lr_fraction", f"must be in [0, 1], got {self.final_lr_fraction}")
        if not 0 <= self.ema_decay < 1:
            raise _err("ema_decay", f"must be in [0, 1), got {self.ema_decay}")


def residual_form(pc: PriorConfig) -> str:
    """The resolved ``prior.residual``: given, else 'mean-shift' for a hybrid prior and 'edm' otherwise."""
    if pc.residual is not None:
        return pc.residual
    return "mean-shift" if pc.hybrid else "edm"


SIGMA_MIN_FRACTION, SIGMA_MAX_FRACTION = 0.01, 10.0  # null prior.sigma_min / sigma_max, × training κ std


def training_sigma_range(pc: PriorConfig, kappa_std: float) -> tuple[float, float]:
    """The resolved (``prior.sigma_min``, ``prior.sigma_max``) in κ units: given, else 0.01 and 10 × the
    training maps' κ standard deviation; ConfigError unless sigma_min < sigma_max."""
    lo = pc.sigma_min if pc.sigma_min is not None else SIGMA_MIN_FRACTION * kappa_std
    hi = pc.sigma_max if pc.sigma_max is not None else SIGMA_MAX_FRACTION * kappa_std
    if not lo < hi:
        raise ConfigError(f"config key 'prior.sigma_min' ({lo:g}) must be < prior.sigma_max ({hi:g})")
    return float(lo), float(hi)
