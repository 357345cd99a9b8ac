"""Shared pieces of the CLI: the group, config options, and one-line error handling."""
from __future__ import annotations

import functools
import os
import sys

import click

from massmap import __version__
from massmap.config import load_config
from massmap.errors import EXIT_INPUT, EXIT_INTERRUPTED, EXIT_RUN_FAILED, ConfigError, InputError, SamplingError

# Errors raised for bad user input: printed as one line, exit status 2, no traceback.
USER_ERRORS = (ConfigError, InputError, FileNotFoundError)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="massmap")
@click.option("--distributed", is_flag=True,
              help="Run as one of several processes (jax.distributed; automatic in a multi-task SLURM step). "
                   "See docs/cluster.md.")
@click.pass_context
def main(ctx, distributed) -> None:
    """massmap: weak-lensing shear catalogs to convergence (mass) maps."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    enable_compilation_cache()
    start_processes(distributed, ctx.invoked_subcommand)


DISTRIBUTED_COMMANDS = ("simulate", "config")  # the commands that share their work between processes


def start_processes(flag: bool, command: str | None) -> None:
    """jax.distributed when asked or under several SLURM tasks (massmap.parallel); one line and exit 2 if
    it cannot start, or for a command that runs in one process only."""
    from massmap import parallel

    try:
        if not parallel.initialize_distributed(True if flag else None):
            return
    except Exception as err:  # noqa: BLE001 (coordinator unreachable, bad JAX_* variables, ...)
        click.echo(f"massmap: error: jax.distributed did not start: {str(err).splitlines()[0]}", err=True)
        sys.exit(EXIT_INPUT)
    if parallel.process_count() > 1 and command not in DISTRIBUTED_COMMANDS:
        click.echo(f"massmap: error: '{command}' runs in one process (on all its devices); only simulate is "
                   "split between processes", err=True)
        sys.exit(EXIT_INPUT)


def enable_compilation_cache() -> None:
    """Keep compiled JAX programs between runs (MASSMAP_CACHE_DIR, default ~/.cache/massmap/jax).

    Only compiled XLA programs are cached, keyed by JAX on the program and its shapes: results are
    unaffected. Set MASSMAP_CACHE_DIR to an empty string to switch it off.
    """
    folder = os.environ.get("MASSMAP_CACHE_DIR", os.path.join(os.path.expanduser("~"), ".cache", "massmap", "jax"))
    if not folder:
        return
    import jax

    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


def config_options(f):
    """``--config FILE`` (repeatable, later wins) and ``--set key=value`` (repeatable)."""
    f = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                     help="Override one config key, e.g. --set grid.npix=64 (repeatable).")(f)
    f = click.option("--config", "config_files", multiple=True, type=click.Path(dir_okay=False),
                     metavar="FILE", help="YAML config file (repeatable; later files win).")(f)
    return f


def resolve_config(config_files, overrides):
    return load_config(config_files, overrides)


def user_errors(f):
    """Turn user-input errors into ``massmap: error: <one line>`` and exit status 2, numerical failures
    (SamplingError) into one line and exit status 3 (massmap.errors)."""

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        try:
            return f(*args, **kwargs)
        except USER_ERRORS as err:
            msg = str(err).splitlines()[0] if str(err) else err.__class__.__name__
            click.echo(f"massmap: error: {msg}", err=True)
            sys.exit(EXIT_INPUT)
        except SamplingError as err:
            click.echo(f"massmap: error: {str(err).splitlines()[0] if str(err) else 'sampling failed'}", err=True)
            sys.exit(EXIT_RUN_FAILED)
        except KeyboardInterrupt as err:
            click.echo(f"massmap: {err}" if str(err) else "massmap: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)

    return wrapper
