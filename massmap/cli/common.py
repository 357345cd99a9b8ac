"""Shared pieces of the CLI: the group, config options, and one-line error handling."""
from __future__ import annotations

import functools
import os
import sys
import warnings
from pathlib import Path

import click

from massmap import __version__, interrupts
from massmap.config import load_config
from massmap.errors import EXIT_INPUT, EXIT_RUN_FAILED, ConfigError, InputError, SamplingError
from massmap.io.locks import output_lock
from massmap.io.output import os_error_reason, output_transaction, take_back
from massmap.io.space import hdf5_failed

# Errors raised for bad user input: printed as one line, exit status 2, no traceback.
USER_ERRORS = (ConfigError, InputError, FileNotFoundError)
# Options naming the files or folders a command writes: locked while it runs (massmap.io.locks).
OUTPUT_OPTIONS = ("output", "output_dir", "truth_out")
OPTION_NAMES = {"output": "-o", "output_dir": "-o", "truth_out": "--truth-out"}
_ENTRY_POINT = False  # set by MassmapGroup.main when massmap runs as the process's command line


class MassmapGroup(click.Group):
    """The massmap command group: click's usage errors (a missing argument, an input that is a folder,
    an unknown option) are printed as one line too, ``massmap: error: <message> (see: <command> --help)``,
    exit status 2, like every other bad input."""

    def main(self, args=None, *rest, **kwargs):
        global _ENTRY_POINT
        _ENTRY_POINT = args is None  # the real command line (sys.argv), not a test's CliRunner
        kwargs["standalone_mode"] = False
        try:
            status = super().main(args, *rest, **kwargs)
        except click.UsageError as err:
            hint = f" (see: {err.ctx.command_path} --help)" if err.ctx is not None else ""
            _fail(f"error: {' '.join(err.format_message().split())}{hint}", EXIT_INPUT)
        except click.ClickException as err:
            err.show()
            sys.exit(err.exit_code)
        except click.Abort:
            click.echo("Aborted!", err=True)
            sys.exit(1)
        sys.exit(status if isinstance(status, int) else 0)


@click.group(cls=MassmapGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="massmap")
@click.option("--distributed", is_flag=True,
              help="Run as one of several processes (jax.distributed; automatic in a multi-task SLURM step). "
                   "See docs/cluster.md.")
@click.pass_context
def main(ctx, distributed) -> None:
    """massmap: weak-lensing shear catalogs to convergence (mass) maps."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    # ctx's resources are released when the command ends
    if not sys.warnoptions and not os.environ.get("PYTHONWARNINGS"):
        # numpy's floating-point RuntimeWarnings (NaN in a cast, ...) are not messages for users: massmap
        # reports bad values itself, in one line. PYTHONWARNINGS or -W bring them back.
        ctx.with_resource(warnings.catch_warnings())
        warnings.filterwarnings("ignore", category=RuntimeWarning)
    # SIGTERM behaves like Ctrl-C from here on (massmap.interrupts)
    ctx.with_resource(interrupts.stop_signals_as_interrupts())
    try:
        enable_compilation_cache()
    except KeyboardInterrupt:
        _fail(f"stopped by {interrupts.signal_name()} while starting; nothing was written", interrupts.exit_status())
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
        _fail(f"error: jax.distributed did not start: {_first_line(err)}", EXIT_INPUT)
    if parallel.process_count() > 1 and command not in DISTRIBUTED_COMMANDS:
        _fail(f"error: '{command}' runs in one process (on all its devices); only simulate is split between "
              "processes", EXIT_INPUT)


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


MEMORY_MESSAGE = ("error: not enough memory for this input and configuration (a size such as grid.npix, pad, "
                  "the number of maps or of galaxies is too large for this machine)")


def out_of_device_memory(err: BaseException) -> bool:
    """Whether ``err`` is XLA failing to allocate a buffer (host or accelerator memory): JAX raises it as
    a JaxRuntimeError, not a MemoryError."""
    text = str(err)
    return (type(err).__name__ in ("JaxRuntimeError", "XlaRuntimeError")
            and ("RESOURCE_EXHAUSTED" in text or "Out of memory" in text))


def _fail(message: str, status: int) -> None:
    """Print ``massmap: <message>`` on a line of its own (clearing progress bars left open) and exit."""
    from tqdm import tqdm

    for bar in list(getattr(tqdm, "_instances", ())):  # bars of an interrupted loop were never closed
        try:
            bar.close()
        except Exception:  # a bar that cannot be drawn any more must not hide the message
            pass
    click.echo(f"massmap: {message}", err=True)
    if _ENTRY_POINT and hdf5_failed():
        # HDF5 could not flush a file (a full disk, a quota): its library crashes in its exit handler
        # (SIGSEGV, status 139) on such a file, so the process ends here, after massmap's own cleanup.
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(status)
    sys.exit(status)


def check_outputs_apart(kwargs: dict) -> None:
    """One-line InputError when an output of the command (OUTPUT_OPTIONS) would destroy an input or
    another output: the same path as an input file or as another output, or an output folder that holds
    an input or the current folder (replacing it with --overwrite would delete them)."""
    outputs = {k: Path(v).resolve() for k, v in kwargs.items() if k in OUTPUT_OPTIONS and v}
    inputs = []
    for k, v in kwargs.items():
        if k in OUTPUT_OPTIONS:
            continue
        for item in (v if isinstance(v, (list, tuple)) else [v]):
            if isinstance(item, (str, Path)) and str(item) and os.path.exists(item):
                inputs.append((item, Path(item).resolve()))
    seen: dict[Path, str] = {}
    for k, out in outputs.items():
        shown = kwargs[k]
        if out in seen:
            raise InputError(f"{seen[out]} and {OPTION_NAMES[k]} name the same file '{shown}': give each output "
                             "its own path")
        seen[out] = OPTION_NAMES[k]
        for item, path in inputs:
            if path == out:
                raise InputError(f"output '{shown}' is also an input of this command: write to another path")
        if k == "output_dir" or out.is_dir():
            for item, path in inputs:
                if out in path.parents:
                    raise InputError(f"output folder '{shown}' holds the input '{item}': write to another "
                                     "folder (replacing it would delete the input)")
            here = Path.cwd().resolve()
            if out == here or out in here.parents:
                raise InputError(f"output folder '{shown}' is the current folder or holds it: write to a "
                                 "new folder inside it")


def _writes_shared_outputs() -> bool:
    """False in the processes other than 0 of a jax.distributed run, which lock no shared output."""
    import jax

    return not jax.distributed.is_initialized() or jax.process_index() == 0


def _first_line(err: BaseException) -> str:
    return str(err).splitlines()[0] if str(err) else err.__class__.__name__


def user_errors(f):
    """Run a command as docs/reliability.md promises: one line and an exit status, never a traceback,
    for everything that is not a bug.

    - bad input (InputError, ConfigError, a missing file) and an OSError on a file (disk full,
      permission denied): ``massmap: error: <one line>``, exit status 2;
    - SamplingError (a computation failed numerically on valid input): exit status 3;
    - Ctrl-C or SIGTERM: the pipeline's own message saying what it kept (or that nothing was
      written), exit status 128 + signal (130, 143).

    The outputs named by OUTPUT_OPTIONS are locked for the run (a second process writing them fails
    at once), and the files the command committed are removed again when it fails, unless it was
    stopped with a message saying what it kept.
    """

    @functools.wraps(f)
    def wrapper(*args, **kwargs):
        # under jax.distributed only process 0 writes the shared outputs (the others their own parts)
        outputs = [kwargs[k] for k in OUTPUT_OPTIONS if kwargs.get(k)] if _writes_shared_outputs() else []
        committed: list = []
        try:
            check_outputs_apart(kwargs)
            with output_transaction() as committed, output_lock(outputs), interrupts.unwrapped():
                return f(*args, **kwargs)
        except KeyboardInterrupt as err:
            kept, name = str(err), interrupts.signal_name()
            if not kept:
                take_back(committed)
                kept = "nothing was written"
            _fail(kept if name in kept else f"stopped by {name}: {kept}", interrupts.exit_status())
        except SamplingError as err:
            take_back(committed)
            _fail(f"error: {_first_line(err)}", EXIT_RUN_FAILED)
        except USER_ERRORS as err:
            take_back(committed)
            _fail(f"error: {_first_line(err)}", EXIT_INPUT)
        except OSError as err:  # a file the command could not read or write; InputError covers the usual ones
            take_back(committed)
            where = f"'{err.filename}': " if err.filename else ""
            _fail(f"error: {where}{os_error_reason(err)}", EXIT_INPUT)
        except MemoryError:
            take_back(committed)
            _fail(MEMORY_MESSAGE, EXIT_INPUT)
        except Exception as err:
            take_back(committed)
            if out_of_device_memory(err):
                _fail(MEMORY_MESSAGE, EXIT_INPUT)
            raise

    return wrapper
