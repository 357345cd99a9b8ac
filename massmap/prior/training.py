"""Training the score network: an (init, step) pair over a :class:`TrainState`, pure and jitted.

One step draws a batch of augmented patches (:mod:`massmap.prior.augment`), noise levels and noise
from the state's PRNG key, evaluates the DSM loss (:mod:`massmap.prior.dsm`), and applies
gradient-norm clipping and AdamW with a linear warm-up + cosine decay learning rate (optax). An
exponential moving average (EMA) of the parameters is kept, with the usual warm-up of the decay,
min(decay, (1 + t) / (10 + t)). The state holds everything needed to continue bit-identically
(parameters, spectral-norm vectors, EMA, optimiser state, step, key), so a run resumed from a
checkpoint reproduces an uninterrupted one.

All σ values here are in the units of the normalised maps (σ_x = σ_κ / τ).
"""
from __future__ import annotations

import functools
import warnings
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from massmap.prior.augment import PatchSource, sample_patches
from massmap.prior.dsm import dsm_loss, loss_weights, residual_network, sample_sigma
from massmap.prior.spectral_norm import fold_grid_norm
from massmap.prior.unet import UNetSpec


class TrainSpec(NamedTuple):
    """Static (hashable) description of a training run: what changes the compiled step."""

    unet: UNetSpec
    npix: int
    batch_size: int
    sigma_distribution: str
    loss_weighting: str = "sigma2"  # per-map weight across σ (massmap.prior.dsm.loss_weights)


class Hyper(NamedTuple):
    """Optimisation settings, passed to the step as traced scalars (changing them does not recompile)."""

    steps: float
    learning_rate: float
    warmup_steps: float
    final_lr_fraction: float
    weight_decay: float
    grad_clip: float
    ema_decay: float
    sigma_min: float  # normalised units
    sigma_max: float


class TrainState(NamedTuple):
    params: Any
    net_state: Any  # spectral-norm power-iteration vectors
    ema_params: Any
    opt_state: Any
    step: jnp.ndarray  # int32 scalar: steps done
    key: jax.Array  # raw uint32 PRNG key


class TrainInfo(NamedTuple):
    loss: jnp.ndarray
    grad_norm: jnp.ndarray
    learning_rate: jnp.ndarray


def make_hyper(**values) -> Hyper:
    return Hyper(**{k: jnp.asarray(v, jnp.float32) for k, v in values.items()})


def learning_rate(hyper: Hyper, count) -> jnp.ndarray:
    """Linear warm-up from 0 to the peak over ``warmup_steps``, then cosine decay to
    peak × final_lr_fraction at ``steps`` (``count`` = updates done)."""
    t = jnp.asarray(count, jnp.float32)
    peak, end = hyper.learning_rate, hyper.learning_rate * hyper.final_lr_fraction
    warm = peak * t / jnp.maximum(hyper.warmup_steps, 1.0)
    frac = jnp.clip((t - hyper.warmup_steps) / jnp.maximum(hyper.steps - hyper.warmup_steps, 1.0), 0.0, 1.0)
    cos = end + (peak - end) * 0.5 * (1.0 + jnp.cos(jnp.pi * frac))
    return jnp.where(t < hyper.warmup_steps, warm, cos)


def optimizer(hyper: Hyper) -> optax.GradientTransformation:
    """Global-norm clipping then AdamW, acting on all parameters raveled into one vector (the same
    arithmetic as leaf by leaf, and a much smaller graph to compile)."""
    return optax.flatten(optax.chain(
        optax.clip_by_global_norm(hyper.grad_clip),
        optax.adamw(lambda count: learning_rate(hyper, count), weight_decay=hyper.weight_decay)))


@functools.partial(jax.jit, static_argnames=("spec",))
def init_train(key: jax.Array, spec: TrainSpec, hyper: Hyper, mode_var: jnp.ndarray) -> TrainState:
    """Initial parameters (from a fold of ``key``) and optimiser state; the rest of ``key`` drives
    the batches, noise levels and noise of every step.

    The initialisers draw from an XLA RngBitGenerator key (``unsafe_rbg``) seeded by bits of
    ``fold_in(key, 0)``: with threefry keys, the ~60 initialiser draws would cost ~20 s of compile
    time on CPU. It is deterministic for a given key on a given backend; statistical quality of
    split keys is irrelevant for initial weights.
    """
    net = residual_network(spec.unet)
    x = jnp.zeros((1, spec.npix, spec.npix), jnp.float32)
    init_key = jax.random.wrap_key_data(jax.random.bits(jax.random.fold_in(key, 0), (4,), jnp.uint32),
                                        impl="unsafe_rbg")
    params, net_state = net.init(init_key, x, jnp.ones((1,), jnp.float32), mode_var)
    opt_state = optimizer(hyper).init(params)
    return TrainState(params, net_state, params, opt_state, jnp.zeros((), jnp.int32),
                      jax.random.fold_in(key, 1))


@functools.partial(jax.jit, static_argnames=("spec", "batch_sharding"))
def train_step(state: TrainState, source: PatchSource, mode_var: jnp.ndarray, hyper: Hyper,
               spec: TrainSpec, batch_sharding=None, wiener_var: jnp.ndarray | None = None
               ) -> tuple[TrainState, TrainInfo]:
    """One optimisation step (pure; the batch is drawn from ``source`` with the state's key).

    ``mode_var``: per-mode variances of the analytic base term (ones for a plain prior).
    ``wiener_var``: per-mode variances of the training C_ℓ, for ``spec.loss_weighting == 'wiener'``
    (None: ``mode_var``, which is that for a hybrid prior).
    ``batch_sharding`` (data parallel, massmap.parallel.batch_sharding): the batch's patches, noise
    levels and noise are split over the devices along the batch axis, with the state replicated on
    them (:func:`massmap.parallel.replicate`); the loss is a batch mean, so XLA sums the per-device
    gradients (an all-reduce) and every device applies the same update. The batch itself is the same
    draw as on one device (partitionable threefry), so the numbers differ from one device's only by
    the order of the float sums.
    """
    net = residual_network(spec.unet)
    key, k_batch, k_sigma, k_noise = jax.random.split(state.key, 4)
    clean = sample_patches(k_batch, source, spec.npix, spec.batch_size)
    sigma = sample_sigma(k_sigma, (spec.batch_size,), hyper.sigma_min, hyper.sigma_max, spec.sigma_distribution)
    noise = jax.random.normal(k_noise, clean.shape, jnp.float32)
    if batch_sharding is not None:
        clean, sigma, noise = jax.lax.with_sharding_constraint((clean, sigma, noise), batch_sharding)
    weights = loss_weights(sigma, spec.loss_weighting, mode_var if wiener_var is None else wiener_var)
    (loss, (_, net_state)), grads = jax.value_and_grad(dsm_loss, argnums=1, has_aux=True)(
        net, state.params, state.net_state, clean, sigma, noise, mode_var, weights)
    updates, opt_state = optimizer(hyper).update(grads, state.opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    t = state.step.astype(jnp.float32)
    decay = jnp.minimum(hyper.ema_decay, (1.0 + t) / (10.0 + t))
    flat_ema, unravel = ravel_pytree(state.ema_params)
    ema = unravel(decay * flat_ema + (1.0 - decay) * ravel_pytree(params)[0])
    info = TrainInfo(loss, optax.global_norm(grads), learning_rate(hyper, state.step))
    return TrainState(params, net_state, ema, opt_state, state.step + 1, key), info


def data_parallel_sharding(batch_size: int):
    """The batch-axis sharding over this process's devices for data-parallel :func:`train_step`, or None
    with one device, or (with a warning) when ``batch_size`` is not a multiple of the device count."""
    from massmap import parallel

    n = parallel.device_count(local=True)
    if n == 1:
        return None
    if batch_size % n:
        warnings.warn(f"prior.batch_size={batch_size} is not a multiple of the {n} devices: training runs on "
                      "one device", stacklevel=2)
        return None
    return parallel.batch_sharding(parallel.batch_mesh(local=True))


@functools.partial(jax.jit, static_argnames=("spec",))
def validation_loss(params, net_state, clean: jnp.ndarray, sigma: jnp.ndarray, noise: jnp.ndarray,
                    mode_var: jnp.ndarray, spec: TrainSpec) -> jnp.ndarray:
    """Per-map DSM losses (B,) on fixed clean maps, noise levels and noise (no state update)."""
    _, (per_map, _) = dsm_loss(residual_network(spec.unet), params, net_state, clean, sigma, noise, mode_var)
    return per_map


@functools.partial(jax.jit, static_argnames=("spec",))
def residual_apply(params, x: jnp.ndarray, sigma: jnp.ndarray, mode_var: jnp.ndarray, spec: TrainSpec) -> jnp.ndarray:
    """r_θ(x, σ) of the exported network (no spectral-norm state), for (B, ny, nx) normalised maps."""
    return residual_network(spec.unet).apply(params, {}, None, x, sigma, mode_var)[0]


def fold_spectral_norm(params, net_state, bound: float):
    """Parameters with the spectral normalisation folded into each conv kernel (for export).

    Uses the exact operator norm on the FOLD_GRID grid (per-mode SVD, see
    :mod:`massmap.prior.spectral_norm`), which bounds the norm on every grid whose sides divide it,
    training grids included. The result is for the network with ``spectral_norm=False``.
    """
    out = {m: dict(p) for m, p in params.items()}
    for module, st in net_state.items():
        if "v" not in st:
            continue
        w = np.asarray(params[module]["w"])
        sigma = fold_grid_norm(w)
        out[module]["w"] = jnp.asarray(w / max(1.0, sigma / bound), jnp.float32)
    return out
