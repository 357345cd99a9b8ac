"""The one check every reader makes first: the path names an existing file (not a folder)."""
from __future__ import annotations

from pathlib import Path

from massmap.errors import InputError


def existing_file(path, what: str, error: type[Exception] = InputError) -> Path:
    """``Path(path)`` if it is an existing file, else ``error`` "<what> '<path>' does not exist" or
    "... is a directory, not a file" (one line naming the file)."""
    p = Path(path)
    if not p.exists():
        raise error(f"{what} '{p}' does not exist")
    if p.is_dir():
        raise error(f"{what} '{p}' is a directory, not a file")
    return p
