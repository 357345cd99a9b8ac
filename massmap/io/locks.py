"""One writer per output: an exclusive advisory lock (flock) on ``.NAME.lock`` beside each output, held
while a command runs. A second massmap process asked to write the same output fails at once with a
one-line InputError naming the output and the process holding it, instead of mixing its files with
the first one's. Where locking is impossible (no folder, a read-only folder, a file system without
locks) the command runs without it and reports the real problem when it writes.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path
from typing import Iterable, Iterator

from massmap.errors import InputError


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
            with contextlib.suppress(OSError, ValueError):  # the holder may not have written its pid yet
                pid = os.pread(fd, 32, 0).split()
                holder = f" (pid {int(pid[0])})" if pid else ""
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


def is_locked(output: str | Path) -> bool:
    """Whether another process holds the output's lock now (a lock file left by a dead one is not held)."""
    try:
        fd = os.open(lock_path(output), os.O_RDWR)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as err:
        return err.errno in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK)
    finally:
        os.close(fd)  # closing releases a lock taken here
    return False


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
