"""``massmap train-prior``: a neural score prior for κ by denoising score matching."""
from __future__ import annotations

import click

from massmap import interrupts
from massmap.cli.common import config_options, main, resolve_config, user_errors


@main.command("train-prior")
@click.argument("data", nargs=-1, required=True, type=click.Path())
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), metavar="PRIOR.h5",
              help="Output prior (the loss curves PNG and the resolved config are written beside it).")
@config_options
@click.option("--resume", is_flag=True,
              help="Continue from PRIOR.ckpt.h5 (same config and DATA); without one, start at step 0.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output or an earlier run's checkpoint.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@user_errors
def train_prior(data, output, config_files, overrides, resume, overwrite, quiet):
    """Train a score prior on DATA: map sets from `massmap simulate` (.h5), FITS κ images with WCS,
    .npy maps (set prior.input_pixel_size_arcmin), or folders of them.

    Checkpoints are written every prior.checkpoint_every steps and on Ctrl-C/SIGTERM; --resume
    continues bit-for-bit (and starts at step 0 when there is no checkpoint yet). See docs/priors.md.
    """
    from massmap.io.checkpoints import checkpoint_paths, checkpoint_step
    from massmap.pipeline.train_prior import run_train_prior

    config = resolve_config(config_files, overrides)
    if resume and not any(p.exists() for p in checkpoint_paths(output)):
        # e.g. a re-queued job stopped before its first checkpoint: --resume starts it (as simulate does)
        click.echo(f"massmap: no checkpoint '{checkpoint_paths(output)[0]}' yet: starting at step 0", err=True)
        resume = False
    try:
        with interrupts.unwrapped():
            result = run_train_prior(config, data, output, resume=resume, overwrite=overwrite, progress=not quiet)
    except KeyboardInterrupt as err:
        ckpt = checkpoint_paths(output)[0]
        step = checkpoint_step(ckpt) if not str(err) else None
        if step is None:
            raise
        # stopped outside the training loop (reading data, writing the prior): the checkpoint stays
        raise KeyboardInterrupt(f"checkpoint '{ckpt}' (step {step}) is kept; continue with --resume") from None
    m = result.metrics
    click.echo(f"wrote {result.path} (validation DSM loss {m['val_loss']:.4f}; zero score 1, analytic "
               f"base term {m['val_loss_analytic_base']:.4f}) and {result.plot}")
    ratios = ", ".join(f"{d['sigma_from']:.0e}–{d['sigma_to']:.0e}: {d['denoiser_rmse_ratio']:.3f}"
                       for d in m["val_loss_per_sigma_decade"])
    click.echo(f"denoiser RMSE / Wiener denoiser RMSE per σ decade (κ units): {ratios}")
