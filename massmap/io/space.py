"""Room on disk for HDF5 writes, and what to do when HDF5 could not write anyway.

The HDF5 library does not report a full disk reliably: a chunk that could not be written may only
surface as an error when an object is released, and once a file could not be flushed the library
crashes (SIGSEGV) in its exit handler. So massmap's HDF5 writers check the room first
(:func:`ensure_space`, before anything is written), and wrap their writes in :func:`hdf5_writes`, which
reports a failure as one OSError and remembers it, so that the command line can end the process
without HDF5's shutdown (massmap.cli.common).
"""
from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path
from typing import Iterator

from massmap.io.output import errno_of, os_error_reason

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
        raise OSError(errno_of(err) or errno.EIO, os_error_reason(err)) from None


def hdf5_failed() -> bool:
    """Whether an HDF5 write failed in this process (see :func:`hdf5_writes`)."""
    return bool(_hdf5_failures)
