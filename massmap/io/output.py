"""Safe output files: provenance records, refusing to overwrite, atomic write-then-rename, one-line
errors for unwritable outputs, one writer per output, and taking back a failed command's outputs.

What is promised (docs/reliability.md):

- an output path either does not exist or holds a complete file: every file is written under a
  temporary name beside it (``.NAME.<random>.part``, from mkstemp) and renamed onto its path only once
  complete;
- an OSError while writing (disk full, permission denied, read-only file system) becomes one
  InputError naming the output, and the temporary file is removed;
- while a command runs, it holds an advisory lock on each of its outputs (massmap.io.locks);
- HDF5 writers check the room they need first (massmap.io.space);
- the command line records the files committed inside :func:`output_transaction` and removes them
  again when the command fails, so a failed command leaves no new output behind (state that a later
  ``--resume`` needs, such as training checkpoints, is committed with ``keep=True`` and stays).
"""
from __future__ import annotations

import contextlib
import contextvars
import datetime as _dt
import errno
import os
import re
import tempfile
from pathlib import Path
from typing import Any, Iterable, Iterator

from massmap import __version__
from massmap.config.core import dump_yaml, to_dict


from massmap.errors import InputError  # noqa: E402  (re-exported: massmap.io.output.InputError)


def check_output(path: str | Path, overwrite: bool) -> Path:
    """Refuse to replace an existing file unless ``overwrite``; make sure the folder exists."""
    p = Path(path)
    if p.is_dir():
        raise InputError(f"output '{p}' is a directory")
    if p.exists() and not overwrite:
        raise InputError(f"output '{p}' exists; pass --overwrite to replace it")
    if not p.parent.exists():
        raise InputError(f"output folder '{p.parent}' does not exist")
    if not p.parent.is_dir():
        raise InputError(f"output folder '{p.parent}' is not a folder")
    return p


def os_error_reason(err: BaseException) -> str:
    """The short reason of an OSError ('No space left on device'), also for h5py's and astropy's long
    messages (h5py reports failed writes as RuntimeError too)."""
    if isinstance(err, OSError) and err.strerror:
        return err.strerror
    code = errno_of(err)
    if code is not None:
        return os.strerror(code)
    text = str(err)
    return (text.splitlines()[0] if text else type(err).__name__)[:160]


def errno_of(err: BaseException) -> int | None:
    if isinstance(err, OSError) and err.errno:
        return err.errno
    text = str(err)
    found = re.search(r"errno = (\d+)", text)
    if found:
        return int(found.group(1))
    if "Not enough space on disk" in text:  # astropy checks the free space itself before writing
        return errno.ENOSPC
    return None


@contextlib.contextmanager
def writing(path: str | Path) -> Iterator[None]:
    """Turn an OSError inside the block into one InputError: ``cannot write 'PATH': reason``."""
    try:
        yield
    except OSError as err:
        raise InputError(f"cannot write '{path}': {os_error_reason(err)}") from None


_committed: contextvars.ContextVar[list | None] = contextvars.ContextVar("massmap_committed", default=None)


@contextlib.contextmanager
def output_transaction() -> Iterator[list[Path]]:
    """Collect, in order, the paths :func:`atomic_path` commits inside the block (for :func:`take_back`)."""
    committed: list[Path] = []
    token = _committed.set(committed)
    try:
        yield committed
    finally:
        _committed.reset(token)


def take_back(paths: Iterable[Path]) -> None:
    """Remove committed outputs again (newest first); missing ones are skipped."""
    for p in reversed(list(paths)):
        with contextlib.suppress(OSError):
            if p.is_file() or p.is_symlink():
                p.unlink()


@contextlib.contextmanager
def atomic_path(path: str | Path, keep: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds.

    An OSError (disk full, permissions) becomes one InputError naming ``path``; the temporary file is
    removed in every case. Inside :func:`output_transaction` the committed path is recorded, unless
    ``keep`` (state that must survive a failed command, e.g. a training checkpoint).
    """
    p = Path(path)
    with writing(p):
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part", dir=p.parent)
        os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    tmp_path = Path(tmp)
    try:
        with writing(p):
            os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give outputs the usual permissions
            yield tmp_path
            os.replace(tmp_path, p)
        committed = _committed.get()
        if committed is not None and not keep:
            committed.append(p)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def provenance(config: Any, command: str, inputs: dict[str, Any] | None = None) -> dict[str, Any]:
    """What every output records: version, command, UTC date, seed, inputs and the resolved config."""
    return {
        "massmap_version": __version__,
        "command": command,
        "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seed": getattr(config, "seed", None),
        "inputs": dict(inputs or {}),
        "config": to_dict(config),
    }


def config_sidecar_path(output: str | Path) -> Path:
    """Where the resolved config of an output is written: ``OUT.fits`` → ``OUT.config.yaml``."""
    p = Path(output)
    return p.with_name(p.stem + ".config.yaml")


def write_config_sidecar(output: str | Path, config: Any, overwrite: bool = True) -> Path:
    """Write the resolved config next to an output (atomically)."""
    side = config_sidecar_path(output)
    with atomic_path(side) as tmp:
        tmp.write_text(f"# massmap {__version__}: resolved config of {Path(output).name}\n" + dump_yaml(config))
    return side
