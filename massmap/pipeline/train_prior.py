"""``massmap train-prior``: train a score prior for κ by denoising score matching (docs/priors.md).

Files beside ``PRIOR.h5``: ``PRIOR.config.yaml`` (resolved config), ``PRIOR.loss.png`` (training and
validation loss curves, validation loss against σ) and, while training, ``PRIOR.ckpt.h5`` (+ the
previous one, ``PRIOR.ckpt.prev.h5``), written every ``prior.checkpoint_every`` steps and on
Ctrl-C/SIGTERM and removed once the prior is written. ``resume=True`` continues from the checkpoint
and gives the same parameters as an uninterrupted run.
"""
from __future__ import annotations

import contextlib
import signal
import threading
import time
from pathlib import Path
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import yaml

from massmap import interrupts, parallel
from massmap.config import ConfigError, dump_yaml, to_dict
from massmap.config.prior import residual_form, training_sigma_range
from massmap.io.checkpoints import checkpoint_paths, load_checkpoint, save_checkpoint
from massmap.io.output import InputError, check_output, provenance, write_config_sidecar, writing
from massmap.io.space import ensure_space, hdf5_writes
from massmap.io.priors import write_prior
from massmap.io.training_data import load_training_data, stack_regions
from massmap.plots.training import write_denoise_plot, write_loss_plot
from massmap.prior.augment import make_patch_source, sample_patches
from massmap.prior.dsm import base_residual, loss_weights, white_mode_variance
from massmap.prior.hybrid import empirical_cl, hybrid_mode_variance
from massmap.prior.training import (Hyper, TrainSpec, data_parallel_sharding, fold_spectral_norm, init_train,
                                    make_hyper, residual_apply, train_step, validation_loss)
from massmap.prior.spectral_norm import fold_grid_norm
from massmap.prior.unet import UNetSpec

MAX_CL_PATCHES = 2048  # patches used to measure the training C_ℓ of a hybrid prior


class TrainingInterrupted(KeyboardInterrupt):
    """Training stopped by Ctrl-C or SIGTERM after writing a checkpoint; the message says where."""


class TrainPriorResult(NamedTuple):
    path: Path
    plot: Path  # loss curves
    denoise_plot: Path  # noisy / denoised / truth on a validation patch
    metrics: dict


def _beside(output: str | Path, suffix: str) -> Path:
    p = Path(output)
    return p.with_name((p.name[:-3] if p.name.endswith(".h5") else p.name) + suffix)


def loss_plot_path(output: str | Path) -> Path:
    """``PRIOR.h5`` → ``PRIOR.loss.png``."""
    return _beside(output, ".loss.png")


def denoise_plot_path(output: str | Path) -> Path:
    """``PRIOR.h5`` → ``PRIOR.denoise.png``."""
    return _beside(output, ".denoise.png")


def train_spec(pc, kappa_std: float, sigma_min: float, sigma_max: float) -> tuple[TrainSpec, Hyper]:
    """The static training description and the optimisation settings (σ in normalised units)."""
    unet = UNetSpec(tuple(pc.channels), pc.blocks_per_level, pc.embed_dim, pc.spectral_norm,
                    float(pc.spectral_norm_bound), residual=residual_form(pc))
    hyper = make_hyper(steps=pc.steps, learning_rate=pc.learning_rate, warmup_steps=pc.warmup_steps,
                       final_lr_fraction=pc.final_lr_fraction, weight_decay=pc.weight_decay,
                       grad_clip=pc.grad_clip, ema_decay=pc.ema_decay, sigma_min=sigma_min / kappa_std,
                       sigma_max=sigma_max / kappa_std)
    return TrainSpec(unet, pc.npix, pc.batch_size, pc.sigma_distribution, pc.loss_weighting), hyper


@contextlib.contextmanager
def _stop_requests():
    """Turn the first SIGINT/SIGTERM into a stop request (a second SIGINT interrupts at once)."""
    request: dict[str, str | None] = {"signal": None}
    if threading.current_thread() is not threading.main_thread():
        yield request
        return

    def handler(signum, frame):
        interrupts.note(signum)  # the CLI exits with 128 + this signal
        if request["signal"] is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        request["signal"] = signal.Signals(signum).name

    old = {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield request
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def _config_diff(a: dict, b: dict, prefix: str = "") -> str | None:
    for k in sorted(set(a) | set(b)):
        va, vb = a.get(k), b.get(k)
        if isinstance(va, dict) and isinstance(vb, dict):
            d = _config_diff(va, vb, f"{prefix}{k}.")
            if d:
                return d
        elif va != vb:
            return f"{prefix}{k}"
    return None


def _sigma_decades(sigma: np.ndarray, losses: np.ndarray, base: np.ndarray, wiener: np.ndarray) -> list[dict]:
    """Per decade of σ (κ units): validation loss of the network and of the analytic base term alone, and
    the RMSE (κ units) of the network's Tweedie denoiser against the Wiener denoiser of the training C_ℓ.

    The denoiser error is D − κ = σ(u + r) (y = κ + σu, D = y + σ r), so a map's squared error per pixel
    is σ² × its DSM loss: the RMSE over a decade is √mean(σ² loss), for the network and for the Wiener
    residual r_W = −σ(S + σ²)⁻¹ y alike.
    """
    dec = np.floor(np.log10(sigma) + 1e-9).astype(int)
    out = []
    for d in np.unique(dec):
        sel = dec == d
        rmse = float(np.sqrt(np.mean(sigma[sel] ** 2 * losses[sel])))
        rmse_w = float(np.sqrt(np.mean(sigma[sel] ** 2 * wiener[sel])))
        out.append({"sigma_from": float(10.0**d), "sigma_to": float(10.0 ** (d + 1)), "n": int(sel.sum()),
                    "val_loss": float(losses[sel].mean()), "val_loss_analytic_base": float(base[sel].mean()),
                    "denoiser_rmse": rmse, "wiener_denoiser_rmse": rmse_w, "denoiser_rmse_ratio": rmse / rmse_w})
    return out


def run_train_prior(config, data_paths, output, resume: bool = False, overwrite: bool = False,
                    progress: bool = True, on_step: Callable[[int, float], None] | None = None
                    ) -> TrainPriorResult:
    """Train the score prior of config section `prior` on ``data_paths`` and write ``output``.

    ``on_step(step, loss)`` is called after every step (step = steps done so far). With several devices
    each step is data parallel (the batch split over them, :func:`massmap.prior.training.train_step`).
    """
    pc = config.prior
    if parallel.process_count() > 1:
        raise ConfigError("train-prior runs in one process (on all of its devices); start it without "
                          "srun -n N / --distributed (MASSMAP_DISTRIBUTED=0 under a multi-task SLURM step)")
    output = check_output(output, overwrite)
    ckpt, prev_ckpt = checkpoint_paths(output)
    if not resume and (ckpt.exists() or prev_ckpt.exists()) and not overwrite:
        raise InputError(f"checkpoint '{ckpt if ckpt.exists() else prev_ckpt}' exists from an earlier run; "
                         "pass --resume to continue it or --overwrite to start over")
    stale = [p for p in (ckpt, prev_ckpt) if not resume and p.exists()]  # --overwrite: start over
    data_args = [str(p) for p in data_paths]
    root = jax.random.PRNGKey(config.seed)
    data = load_training_data(data_args, pc.npix, jax.random.fold_in(root, 1), pc.val_fraction,
                              pc.pixel_size_arcmin, pc.input_pixel_size_arcmin, pc.region_npix)

    # normalisation from the training pixels
    n_pix = sum(r.data.size for r in data.train)
    mean = sum(float(r.data.sum(dtype=np.float64)) for r in data.train) / n_pix
    var = sum(float(((r.data - mean) ** 2).sum(dtype=np.float64)) for r in data.train) / n_pix
    std = float(np.sqrt(var))
    if not std > 0:
        raise InputError(f"training maps ({data.files[0]}, ...) are constant: nothing to learn")
    sigma_min, sigma_max = training_sigma_range(pc, std)
    spec, hyper = train_spec(pc, std, sigma_min, sigma_max)

    train_arr, train_sizes = stack_regions(data.train)
    val_arr, val_sizes = stack_regions(data.val)
    source = make_patch_source((train_arr - mean) / std, train_sizes, pc.npix)
    val_source = make_patch_source((val_arr - mean) / std, val_sizes, pc.npix)

    # the training C_ℓ: the Gaussian term of a hybrid prior, and the Wiener denoiser the metrics compare with
    tiles = [r.data[y:y + pc.npix, x:x + pc.npix] for r in data.train
             for y in range(0, r.data.shape[0] - pc.npix + 1, pc.npix)
             for x in range(0, r.data.shape[1] - pc.npix + 1, pc.npix)][:MAX_CL_PATCHES]
    train_cl = empirical_cl(np.stack(tiles), data.pixel_size_arcmin)
    wiener_var = jnp.asarray(hybrid_mode_variance(*train_cl, pc.npix, pc.npix, data.pixel_size_arcmin, std))
    cl_table, mode_var = None, white_mode_variance(pc.npix, pc.npix)
    if pc.hybrid:
        cl_table, mode_var = train_cl, wiener_var

    # fixed validation set: crops, log-spaced σ over the range, noise
    k_val = jax.random.fold_in(root, 3)
    n_val = pc.val_batches * pc.batch_size
    val_clean = sample_patches(jax.random.fold_in(k_val, 0), val_source, pc.npix, n_val)
    val_sigma = jnp.asarray(np.geomspace(sigma_min / std, sigma_max / std, n_val), jnp.float32)
    val_noise = jax.random.normal(jax.random.fold_in(k_val, 1), val_clean.shape, jnp.float32)

    # the validation curve is the training objective: per-map losses with the same σ weights
    val_weights = np.asarray(loss_weights(val_sigma, pc.loss_weighting, wiener_var))

    def val_losses(params, net_state, sp) -> np.ndarray:
        out = [validation_loss(params, net_state, val_clean[i:i + pc.batch_size], val_sigma[i:i + pc.batch_size],
                               val_noise[i:i + pc.batch_size], mode_var, sp)
               for i in range(0, n_val, pc.batch_size)]
        return np.concatenate([np.asarray(o) for o in out])

    export_spec = spec._replace(unet=spec.unet._replace(spectral_norm=False))

    def exported(st):
        """EMA parameters with the spectral normalisation folded in: the function the prior file holds."""
        if not spec.unet.spectral_norm:
            return st.ema_params
        return fold_spectral_norm(st.ema_params, st.net_state, spec.unet.spectral_norm_bound)

    config_yaml = dump_yaml(config)
    for p in stale:
        p.unlink()
    state = init_train(jax.random.fold_in(root, 2), spec, hyper, mode_var)
    history = {"train_loss": np.zeros(0, np.float32), "val_step": np.zeros(0, np.int64),
               "val_loss": np.zeros(0, np.float32)}
    if resume:
        state, history, info = load_checkpoint(ckpt, state)
        saved = yaml.safe_load(info["config"]) or {}
        now = to_dict(config)
        diff = _config_diff({"seed": saved.get("seed"), "prior": saved.get("prior")},
                            {"seed": now["seed"], "prior": now["prior"]})
        if diff:
            raise InputError(f"checkpoint '{ckpt}' was written with a different config (key '{diff}'); "
                             "resume with the same config or start over with --overwrite")
        if info["inputs"] != data_args:
            raise InputError(f"checkpoint '{ckpt}' was written for other training data ({info['inputs'][:3]}); "
                             "resume with the same DATA arguments")
        history = {k: np.asarray(history.get(k, np.zeros(0))) for k in ("train_loss", "val_step", "val_loss")}

    sharding = data_parallel_sharding(pc.batch_size)
    if sharding is not None:  # parameters, optimiser state and data on every device; the batch split
        state, source, mode_var, wiener_var = parallel.replicate((state, source, mode_var, wiener_var), sharding.mesh)
    step = int(state.step)
    losses = list(history["train_loss"][:step])
    val_steps, val_vals = list(history["val_step"]), list(history["val_loss"])

    def current_history() -> dict[str, np.ndarray]:
        return {"train_loss": np.asarray(losses, np.float32), "val_step": np.asarray(val_steps, np.int64),
                "val_loss": np.asarray(val_vals, np.float32)}

    def checkpoint():
        save_checkpoint(ckpt, state, current_history(), config_yaml, data_args)
    from tqdm.auto import tqdm

    bar = tqdm(total=pc.steps, initial=step, disable=not progress, unit="step", desc="train-prior",
               dynamic_ncols=True)
    t_last, s_last = time.perf_counter(), step
    with _stop_requests() as stop, bar:
        while step < pc.steps:
            state, info = train_step(state, source, mode_var, hyper, spec, sharding, wiener_var)
            step += 1
            loss = float(info.loss)
            if not np.isfinite(loss):
                raise InputError(f"training diverged at step {step} (loss {loss}); lower prior.learning_rate "
                                 "or prior.grad_clip")
            losses.append(loss)
            if step % pc.val_every == 0 or step == pc.steps:
                val_steps.append(step)
                val_vals.append(float((val_losses(exported(state), {}, export_spec) * val_weights).mean()))
            if on_step is not None:
                on_step(step, loss)
            if stop["signal"] is not None:
                checkpoint()
                raise TrainingInterrupted(f"interrupted ({stop['signal']}) at step {step}/{pc.steps}; checkpoint "
                                          f"written to {ckpt}; continue with --resume")
            if step % pc.checkpoint_every == 0 and step < pc.steps:
                checkpoint()
            bar.update(1)
            now = time.perf_counter()
            if now - t_last > 0.5 or step == pc.steps:
                bar.set_postfix(loss=f"{np.mean(losses[-50:]):.4f}", steps_s=f"{(step - s_last) / (now - t_last):.2f}",
                                val=f"{val_vals[-1]:.4f}" if val_vals else "-")
                t_last, s_last = now, step

    params = exported(state)
    per_map = val_losses(params, {}, export_spec)
    val_noisy = val_clean + val_sigma[:, None, None] * val_noise
    white = np.asarray(jnp.mean((val_noise + base_residual(val_noisy, val_sigma, mode_var)) ** 2, axis=(-2, -1)))
    wiener = white if pc.hybrid else np.asarray(  # a hybrid's base term is this Wiener denoiser
        jnp.mean((val_noise + base_residual(val_noisy, val_sigma, wiener_var)) ** 2, axis=(-2, -1)))
    sig_k = np.asarray(val_sigma) * std
    metrics = {
        "val_loss": float(per_map.mean()),
        "val_loss_zero_score": 1.0,
        "val_loss_analytic_base": float(white.mean()),
        "val_loss_wiener": float(wiener.mean()),
        "val_loss_per_sigma_decade": _sigma_decades(sig_k, per_map, white, wiener),
        "train_loss_last100": float(np.mean(losses[-100:])),
        "n_val_patches": n_val,
    }
    if spec.unet.spectral_norm:  # exact operator norms of the exported convs, on the estimate grids
        metrics["conv_operator_norms"] = {
            m: fold_grid_norm(np.asarray(params[m]["w"]))
            for m, st in state.net_state.items() if "v" in st}
    training = {
        "data": data_args, "files": data.files, "n_input_maps": len(data.labels),
        "rebin_factors": sorted(set(data.rebin_factors)), "split_unit": data.split_unit,
        "n_train_regions": len(data.train), "n_val_regions": len(data.val),
        "train_regions": [r.describe(data.labels) for r in data.train],
        "val_regions": [r.describe(data.labels) for r in data.val],
        "steps": pc.steps, "batch_size": pc.batch_size, "seed": config.seed,
        "sigma_distribution": pc.sigma_distribution, "loss_weighting": pc.loss_weighting,
        "augmentation": "random crops inside regions + the 8 flips/rotations (D4)",
    }
    arch = {"kind": "residual UNet, periodic padding, FiLM σ-conditioning",
            "spectral_norm_trained": pc.spectral_norm, "parameterisation": "score = r/sigma (massmap.prior.dsm)",
            "n_params": int(sum(np.size(v) for v in jax.tree_util.tree_leaves(params)))}
    prov = provenance(config, "train-prior", {"data": data_args})
    hist_out = {"train_step": np.arange(1, len(losses) + 1), **current_history()}
    # the files beside the prior first and the prior last: once PRIOR.h5 exists, everything is written
    write_config_sidecar(output, config)
    plot = write_loss_plot(loss_plot_path(output), hist_out, sig_k, per_map, white, output.name)
    # Tweedie denoising of one validation patch at σ = 0.3, 1, 3 τ: y + σ² s = y + σ r (normalised units)
    demo_sigma = jnp.asarray([0.3, 1.0, 3.0], jnp.float32)
    truth = jnp.repeat(val_clean[:1], 3, axis=0)
    noisy = truth + demo_sigma[:, None, None] * jax.random.normal(jax.random.fold_in(k_val, 2), truth.shape)
    denoised = noisy + demo_sigma[:, None, None] * residual_apply(params, noisy, demo_sigma, mode_var, export_spec)
    write_denoise_plot(denoise_plot_path(output), *(np.asarray(a) * std + mean for a in (noisy, denoised, truth)),
                       list(np.asarray(demo_sigma) * std), output.name)
    with writing(output), hdf5_writes(output):  # HDF5 must not meet a full disk: check the room first
        ensure_space(output, 2 * sum(np.asarray(v).nbytes for v in jax.tree_util.tree_leaves(params)))
        write_prior(output, params, export_spec.unet, pixel_size_arcmin=data.pixel_size_arcmin, npix=pc.npix,
                    sigma_min=sigma_min, sigma_max=sigma_max, sigma_distribution=pc.sigma_distribution,
                    kappa_mean=mean, kappa_std=std, cl_table=cl_table, history=hist_out,
                    info={"architecture": arch, "provenance": prov, "training": training, "metrics": metrics})
    for p in (ckpt, prev_ckpt):
        if p.exists():
            p.unlink()
    return TrainPriorResult(output, plot, denoise_plot_path(output), metrics)
