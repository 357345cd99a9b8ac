"""``massmap tiles``: a wide-field posterior as a batch of tiles (plan, run by index, merge, submit)."""
from __future__ import annotations

import click

from massmap.cli.common import config_options, main, resolve_config, user_errors


@main.group("tiles")
def tiles() -> None:
    """The tiled HEALPix posterior as work items: one job per tile, then a merge (docs/cluster.md)."""


@tiles.command("plan")
@click.argument("catalog", metavar="CAT.fits", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "run_dir", required=True, type=click.Path(file_okay=False), metavar="RUN",
              help="Folder of the batch (plan.json, tiles/, slurm/).")
@click.option("--method", default="posterior", show_default=True, help="posterior, map or posterior,map.")
@click.option("--overwrite", is_flag=True, help="Replace an existing plan (its parts become foreign).")
@config_options
@user_errors
def plan(catalog, run_dir, method, overwrite, config_files, overrides):
    """Write RUN/plan.json: the tiles of the posterior of CAT.fits under the config."""
    from massmap.pipeline.tiles import plan_survey

    info = plan_survey(resolve_config(config_files, overrides), catalog, run_dir, method=method, overwrite=overwrite)
    click.echo(f"plan {info['plan_id']}: {info['n_tiles']} tiles ({','.join(info['methods'])}) in {info['plan']}")


@tiles.command("run")
@click.argument("run_dir", metavar="RUN", type=click.Path(file_okay=False))
@click.option("--task-index", type=int, default=None,
              help="The tile to run (default: $SLURM_ARRAY_TASK_ID).")
@click.option("--quiet", is_flag=True, help="Print nothing on success.")
@user_errors
def run(run_dir, task_index, quiet):
    """Run one tile of a batch; a tile whose part exists is skipped."""
    from massmap.pipeline.tiles import run_survey_tile

    info = run_survey_tile(run_dir, task_index)
    if not quiet:
        what = "already done" if info["skipped"] else ("no galaxies" if info.get("empty") else "done")
        click.echo(f"tile {info['index']}: {what} ({info['part']})")


@tiles.command("status")
@click.argument("run_dir", metavar="RUN", type=click.Path(file_okay=False))
@user_errors
def status(run_dir):
    """How many tiles are done, running and missing."""
    from massmap.pipeline.tiles import survey_status

    s = survey_status(run_dir)
    click.echo(f"{len(s['done'])} done, {len(s['running'])} running, {len(s['missing'])} missing"
               + (f": {','.join(map(str, s['missing'][:20]))}" if s["missing"] else ""))


@tiles.command("merge")
@click.argument("run_dir", metavar="RUN", type=click.Path(file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The survey map (FITS).")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.option("--no-plot", is_flag=True, help="Skip the PNG preview.")
@user_errors
def merge(run_dir, output, overwrite, no_plot):
    """Assemble the HEALPix survey map from every part (refuses missing or foreign parts)."""
    from massmap.pipeline.tiles import merge_survey

    info = merge_survey(run_dir, output, overwrite=overwrite, plot=not no_plot)
    click.echo(f"wrote {info['output']} ({', '.join(info['maps'])}) from {info['n_tiles']} tiles")


@tiles.command("submit")
@click.argument("run_dir", metavar="RUN", type=click.Path(file_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The survey map the merge job writes.")
@click.option("--only", default=None, metavar="I,J,...", help="Submit only these tiles (default: all; done ones are skipped anyway).")
@click.option("--parallel", type=int, default=64, show_default=True, help="Array tasks running at once.")
@click.option("--cpus", type=int, default=1, show_default=True, help="CPUs per task.")
@click.option("--mem-per-cpu", default="2G", show_default=True)
@click.option("--time", "time_limit", default="04:00:00", show_default=True, help="Time limit per task.")
@click.option("--sbatch", "extra", multiple=True, metavar="OPTION",
              help="Extra #SBATCH line, e.g. --sbatch=--partition=gpu (repeatable).")
@click.option("--no-merge", is_flag=True, help="Submit the array only.")
@click.option("--overwrite", is_flag=True, help="Let the merge job replace an existing output.")
@click.option("--templates", type=click.Path(file_okay=False), default=None,
              help="Folder of tiles-array.sbatch and tiles-merge.sbatch (default: configs/slurm of this clone).")
@user_errors
def submit(run_dir, output, only, parallel, cpus, mem_per_cpu, time_limit, extra, no_merge, overwrite, templates):
    """Submit the batch to SLURM: a job array over the tiles and a merge job after it."""
    from massmap.errors import InputError
    from massmap.pipeline.submit import submit_tiles
    from massmap.pipeline.tiles import read_plan

    plan = read_plan(run_dir)
    try:
        indices = None if only is None else [int(v) for v in only.split(",") if v.strip()]
    except ValueError:
        raise InputError(f"--only '{only}' must be a comma-separated list of tile indices") from None
    info = submit_tiles(run_dir, plan["n_tiles"], output, only=indices, parallel=parallel, cpus=cpus,
                        mem_per_cpu=mem_per_cpu, time=time_limit, extra=extra, overwrite=overwrite,
                        merge=not no_merge, templates=templates)
    click.echo(f"submitted array job {info['array_job']} ({plan['n_tiles'] if indices is None else len(indices)} tasks)"
               + (f" and merge job {info['merge_job']}" if "merge_job" in info else ""))

