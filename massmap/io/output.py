"""Safe output files: provenance records, refusing to overwrite, atomic write-then-rename, one-line
errors for unwritable outputs, one writer per output, and taking back a failed command's outputs.

What is promised (docs/reliability.md):

- an output path either does not exist or holds a complete file: every file is written under a
  temporary name beside it (``.NAME.XXXX.part``) and renamed onto its path only once complete;
- an OSError while writing (disk full, permission denied, read-only file system) becomes one
  InputError naming the output, and the temporary file is removed;
- while a command runs, it holds an advisory lock on each of its outputs (``.NAME.lock`` beside it):
  a second massmap process asked to write the same output fails at once instead of mixing files;
- the command line records the files committed inside :func:`output_transaction` and removes them
  again when the command fails, so a failed command leaves no new output behind (state that a later
  ``--resume`` needs, such as training checkpoints, is committed with ``keep=True`` and stays).
"""
from __future__ import annotations

import contextlib
import contextvars
import datetime as _dt
import errno
import fcntl
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
    code = _errno_of(err)
    if code is not None:
        return os.strerror(code)
    text = str(err)
    return (text.splitlines()[0] if text else type(err).__name__)[:160]


def _errno_of(err: BaseException) -> int | None:
    if isinstance(err, OSError) and err.errno:
        return err.errno
    text = str(err)
    found = re.search(r"errno = (\d+)", text)
    if found:
        return int(found.group(1))
    if "Not enough space on disk" in text:  # astropy checks the free space itself before writing
        return errno.ENOSPC
    return None


SPACE_MARGIN = 1 << 20  # bytes kept free beyond what a write needs (HDF5 metadata, sidecars)
_hdf5_failures: list[str] = []


def ensure_space(path: str | Path, nbytes: int) -> None:
    """WriteRefused (an OSError: EROFS, EACCES, ENOSPC) unless the folder of ``path`` is writable and its
    file system has ``nbytes`` + SPACE_MARGIN available.

    Called before HDF5 writes: HDF5 must not meet a full disk (see :func:`hdf5_writes`).
    """
    folder = Path(path).parent
    try:
        st = os.statvfs(folder)
    except OSError:
        return
    if st.f_flag & os.ST_RDONLY:
        raise WriteRefused(errno.EROFS, os.strerror(errno.EROFS))
    if not os.access(folder, os.W_OK):
        raise WriteRefused(errno.EACCES, os.strerror(errno.EACCES))
    free = st.f_bavail * st.f_frsize
    if free < nbytes + SPACE_MARGIN:
        raise WriteRefused(errno.ENOSPC, f"No space left on device (needs {_size(nbytes + SPACE_MARGIN)}, "
                                         f"{_size(free)} free)")


class WriteRefused(OSError):
    """Raised by :func:`ensure_space` before anything is written (full disk, read-only, no permission)."""


def _size(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"


@contextlib.contextmanager
def hdf5_writes(path: str | Path) -> Iterator[None]:
    """HDF5 writes inside the block: a failure (reported by h5py as OSError or RuntimeError) becomes an
    OSError with the errno of the cause, and is remembered, because once HDF5 could not flush a file
    its library may crash when Python exits (the CLI then ends the process without HDF5's shutdown,
    see :func:`hdf5_failed`)."""
    try:
        yield
    except WriteRefused:
        raise
    except (OSError, RuntimeError) as err:
        _hdf5_failures.append(str(path))
        raise OSError(_errno_of(err) or errno.EIO, os_error_reason(err)) from None


def hdf5_failed() -> bool:
    """Whether an HDF5 write failed in this process (see :func:`hdf5_writes`)."""
    return bool(_hdf5_failures)


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


def lock_path(output: str | Path) -> Path:
    """The advisory lock file of an output: ``DIR/NAME`` → ``DIR/.NAME.lock``."""
    p = Path(output)
    return p.with_name(f".{p.name}.lock")


def _lock_one(output: Path) -> int | None:
    """An exclusive flock on the output's lock file (its descriptor), None where locking is not possible
    (no folder, read-only folder, no locks on this file system): the command then reports the real
    problem when it writes. InputError if another process holds it."""
    lock = lock_path(output)
    if not lock.parent.is_dir():
        return None
    for _ in range(20):  # retried only if the lock file was replaced between open and flock
        try:
            fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as err:
            holder = ""
            with contextlib.suppress(OSError, ValueError):
                holder = f" (pid {int(os.pread(fd, 32, 0).split()[0])})"
            os.close(fd)
            if err.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                raise InputError(f"output '{output}' is being written by another massmap process{holder}; "
                                 "wait for it to finish or choose another output") from None
            return None
        try:
            same = os.fstat(fd).st_ino == os.stat(lock).st_ino
        except OSError:
            same = False
        if same:
            with contextlib.suppress(OSError):  # the pid is informative only (a full disk may refuse it)
                os.ftruncate(fd, 0)
                os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)
    return None


@contextlib.contextmanager
def output_lock(outputs: Iterable[str | Path]) -> Iterator[None]:
    """Hold an exclusive advisory lock on each output for the block (see the module docstring).

    The lock file is removed while still held, so the next writer starts from a fresh one; a lock
    file left by a killed process (SIGKILL) is harmless: its lock died with the process.
    """
    held: list[tuple[Path, int]] = []
    try:
        for out in sorted({Path(o) for o in outputs if o}, key=str):
            fd = _lock_one(out)
            if fd is not None:
                held.append((lock_path(out), fd))
        yield
    finally:
        for lock, fd in reversed(held):
            with contextlib.suppress(OSError):
                os.unlink(lock)
            os.close(fd)


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
