"""``massmap simulate``: a training set of convergence maps (HDF5) from the `simulate` config."""
from __future__ import annotations

import click

from massmap.cli.common import config_options, main, resolve_config, user_errors


@main.command("simulate")
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), metavar="MAPS.h5",
              help="Output HDF5 map set (a PNG preview and the resolved config are written beside it).")
@config_options
@click.option("--overwrite", is_flag=True, help="Replace an existing output (or an interrupted run).")
@click.option("--resume", is_flag=True,
              help="Continue an interrupted run, or add maps to a finished set (same config, larger n_maps).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@user_errors
def simulate(output, config_files, overrides, overwrite, resume, quiet):
    """Simulate convergence maps: simulate.kind = grf | lognormal | pm.

    Map i uses the key fold_in(PRNGKey(seed), i). Maps are flushed one at a time; an interrupted
    run keeps its finished maps in MAPS.h5.part and --resume continues it.
    """
    from massmap.pipeline.simulate import run_simulate

    config = resolve_config(config_files, overrides)
    path = run_simulate(config, output, overwrite=overwrite, resume=resume, progress=not quiet)
    click.echo(f"wrote {config.simulate.n_maps} {config.simulate.kind} maps to {path}")
