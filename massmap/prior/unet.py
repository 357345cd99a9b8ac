"""A residual UNet for κ patches (Haiku), conditioned on the noise level σ.

Layout (channel-last, NHWC inside; maps in and out are (B, ny, nx)):

    x ─ conv3 ─ [ResBlock × n] ─┬─ avgpool ─ [ResBlock × n] ─┬─ … ─ [ResBlock × n] (lowest level)
                                │                            │              │
    out ─ conv3 ─ [ResBlock × n] ─ concat ─ upsample ─ … ────┴─ concat ─ upsample

with ``len(channels)`` levels and ``len(channels) - 1`` factor-2 downsamplings, so ny and nx must be
multiples of 2^(len(channels) - 1). Every conv is 3×3 (1×1 for the skip of a block that changes the
channel count) with **periodic** padding, so the network is translation-equivariant on the torus
and has no edge effects of its own. A residual block is

    h = conv(silu(x));  h = (1 + γ(σ)) h + β(σ);  h = conv(silu(h));  out = (skip(x) + h) / √2

where (γ, β) is a FiLM modulation computed from the σ embedding: Fourier features
[log σ, sin(2π f_j log σ), cos(2π f_j log σ)], f_j = 2^j / 8, passed through a two-layer SiLU MLP.
σ therefore enters every block, not only as an input channel. The FiLM layers and the output conv are
initialised to zero, so the untrained network outputs 0.

With ``spectral_norm`` every conv kernel is rescaled so that its periodic conv operator has norm ≤
``spectral_norm_bound`` (see :mod:`massmap.prior.spectral_norm`; one per-mode power iteration per
call, the vectors live in Haiku state, ``transform_with_state``). Exported priors fold the
normalisation into the kernels and use ``spectral_norm=False``. Spectral normalisation bounds the
conv operators; the FiLM factors (1 + γ(σ)) depend on σ only, so for a given σ the network's
Lipschitz constant in x is at most the product of the conv bounds, the |1 + γ| and SiLU's 1.1.
"""
from __future__ import annotations

from typing import NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp

from massmap.prior.spectral_norm import estimate_grid, normalised_kernel, periodic_conv, power_iteration


class UNetSpec(NamedTuple):
    """Hashable architecture description (used as a static argument of jitted functions)."""

    channels: tuple[int, ...] = (16, 32, 64)
    blocks_per_level: int = 1
    embed_dim: int = 64
    spectral_norm: bool = True
    spectral_norm_bound: float = 4.0
    n_fourier: int = 8
    residual: str = "edm"  # how the output enters the DSM residual: 'edm' or 'mean-shift' (massmap.prior.dsm)


class PeriodicConv(hk.Module):
    """k×k conv with periodic padding; optional spectral normalisation of its operator."""

    def __init__(self, channels: int, kernel: int = 3, bound: float | None = None,
                 zero_init: bool = False, name: str | None = None):
        super().__init__(name=name)
        self.channels = channels
        self.kernel = kernel
        self.bound = bound
        self.zero_init = zero_init

    def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
        cin = x.shape[-1]
        shape = (self.kernel, self.kernel, cin, self.channels)
        w_init = (hk.initializers.Constant(0.0) if self.zero_init
                  else hk.initializers.VarianceScaling(1.0, "fan_in", "truncated_normal"))
        w = hk.get_parameter("w", shape, x.dtype, init=w_init)
        b = hk.get_parameter("b", (self.channels,), x.dtype, init=jnp.zeros)
        if self.bound is not None:
            ny, nx = estimate_grid(x.shape[1], x.shape[2])
            v = hk.get_state("v", (ny, nx, cin, 2), x.dtype, init=hk.initializers.RandomNormal())
            v, sigma = power_iteration(w, v, 1)
            hk.set_state("v", v)
            w = normalised_kernel(w, sigma, self.bound)
        return periodic_conv(x, w) + b


class ResBlock(hk.Module):
    def __init__(self, channels: int, bound: float | None, name: str | None = None):
        super().__init__(name=name)
        self.channels = channels
        self.bound = bound

    def __call__(self, x: jnp.ndarray, emb: jnp.ndarray) -> jnp.ndarray:
        c = self.channels
        h = PeriodicConv(c, 3, self.bound, name="conv1")(jax.nn.silu(x))
        film = hk.Linear(2 * c, w_init=jnp.zeros, name="film")(emb)  # (B, 2c)
        gamma, beta = film[:, None, None, :c], film[:, None, None, c:]
        h = (1.0 + gamma) * h + beta
        h = PeriodicConv(c, 3, self.bound, name="conv2")(jax.nn.silu(h))
        skip = x if x.shape[-1] == c else PeriodicConv(c, 1, self.bound, name="skip")(x)
        return (skip + h) / jnp.sqrt(2.0).astype(x.dtype)


def sigma_embedding(log_sigma: jnp.ndarray, n_fourier: int) -> jnp.ndarray:
    """Fourier features of log σ: (B,) → (B, 1 + 2 n_fourier)."""
    freqs = 2.0 ** jnp.arange(n_fourier, dtype=log_sigma.dtype) / 8.0
    arg = 2 * jnp.pi * log_sigma[:, None] * freqs[None, :]
    return jnp.concatenate([log_sigma[:, None], jnp.sin(arg), jnp.cos(arg)], axis=-1)


def _avg_pool(x: jnp.ndarray) -> jnp.ndarray:
    b, ny, nx, c = x.shape
    return x.reshape(b, ny // 2, 2, nx // 2, 2, c).mean(axis=(2, 4))


def _upsample(x: jnp.ndarray) -> jnp.ndarray:
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


class ScoreUNet(hk.Module):
    """F(x, log σ): (B, ny, nx), (B,) → (B, ny, nx)."""

    def __init__(self, spec: UNetSpec, name: str | None = "score_unet"):
        super().__init__(name=name)
        self.spec = spec

    def __call__(self, x: jnp.ndarray, log_sigma: jnp.ndarray) -> jnp.ndarray:
        spec = self.spec
        levels = len(spec.channels)
        factor = 2 ** (levels - 1)
        if x.shape[-1] % factor or x.shape[-2] % factor:
            raise ValueError(f"map shape {x.shape[-2:]} must be a multiple of {factor} for this network")
        bound = spec.spectral_norm_bound if spec.spectral_norm else None
        emb = sigma_embedding(log_sigma.astype(x.dtype), spec.n_fourier)
        emb = jax.nn.silu(hk.Linear(spec.embed_dim, name="embed1")(emb))
        emb = jax.nn.silu(hk.Linear(spec.embed_dim, name="embed2")(emb))

        h = PeriodicConv(spec.channels[0], 3, bound, name="conv_in")(x[..., None])
        skips = []
        for level, c in enumerate(spec.channels):
            for i in range(spec.blocks_per_level):
                h = ResBlock(c, bound, name=f"down{level}_{i}")(h, emb)
            if level < levels - 1:
                skips.append(h)
                h = _avg_pool(h)
        for level in reversed(range(levels - 1)):
            h = jnp.concatenate([_upsample(h), skips[level]], axis=-1)
            for i in range(spec.blocks_per_level):
                h = ResBlock(spec.channels[level], bound, name=f"up{level}_{i}")(h, emb)
        out = PeriodicConv(1, 3, bound, zero_init=True, name="conv_out")(jax.nn.silu(h))
        return out[..., 0]
