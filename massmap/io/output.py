"""Safe output files: provenance records, refusing to overwrite, atomic write-then-rename."""
from __future__ import annotations

import contextlib
import datetime as _dt
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from massmap import __version__
from massmap.config.core import dump_yaml, to_dict


from massmap.errors import InputError  # noqa: E402  (re-exported: massmap.io.output.InputError)


def check_output(path: str | Path, overwrite: bool) -> Path:
    """Refuse to replace an existing file unless ``overwrite``; make sure the folder exists."""
    p = Path(path)
    if p.exists() and not overwrite:
        raise InputError(f"output '{p}' exists; pass --overwrite to replace it")
    if p.exists() and p.is_dir():
        raise InputError(f"output '{p}' is a directory")
    if not p.parent.exists():
        raise InputError(f"output folder '{p.parent}' does not exist")
    return p


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` only if the block succeeds."""
    p = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".part", dir=p.parent)
    os.close(fd)
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600 files; give outputs the usual permissions
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, p)
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
