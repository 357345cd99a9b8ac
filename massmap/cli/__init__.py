"""The ``massmap`` command line: a thin click layer over the ``run_*`` functions in massmap.pipeline.

Each subcommand lives in its own module here and is registered on :data:`main` below. Errors that
come from the user's input (config, files, columns) print one line and exit with status 2.
"""
from __future__ import annotations

from massmap.cli.common import main
from massmap.cli import config_cmd as _config_cmd  # noqa: F401  (registers commands)
from massmap.cli import reconstruct as _reconstruct  # noqa: F401
from massmap.cli import simulate as _simulate  # noqa: F401
from massmap.cli import summarize as _summarize  # noqa: F401
from massmap.cli import submit as _submit  # noqa: F401
from massmap.cli import tiles as _tiles  # noqa: F401
from massmap.cli import train_prior as _train_prior  # noqa: F401

__all__ = ["main"]
