"""``massmap submit``: a massmap job template of configs/slurm/ rendered and submitted to SLURM."""
from __future__ import annotations

import click

from massmap.cli.common import main, user_errors


@main.command("submit")
@click.argument("template", metavar="TEMPLATE.sbatch", type=click.Path(dir_okay=False))
@click.option("--field", "fields", multiple=True, metavar="NAME=VALUE",
              help="A template field, e.g. --field nodes=2 --field command='simulate -o maps.h5' (repeatable).")
@click.option("--sbatch", "extra", multiple=True, metavar="OPTION", help="Extra #SBATCH line (repeatable).")
@click.option("--scripts", default=".", show_default=True, type=click.Path(file_okay=False),
              help="Folder for the rendered script and the job log.")
@click.option("--dry-run", is_flag=True, help="Render the script only.")
@user_errors
def submit_job(template, fields, extra, scripts, dry_run):
    """Submit a massmap job template of configs/slurm/ (multi-node.sbatch, multi-gpu.sbatch) to SLURM."""
    from massmap.errors import InputError
    from massmap.pipeline.submit import submit_job as submit

    values = {}
    for f in fields:
        name, sep, value = f.partition("=")
        if not sep or not name.strip():
            raise InputError(f"--field '{f}' must be NAME=VALUE")
        values[name.strip().lower()] = value
    info = submit(template, values, scripts, extra=extra, dry_run=dry_run)
    click.echo(f"wrote {info['script']}" + (f"; submitted job {info['job']}" if "job" in info else ""))
