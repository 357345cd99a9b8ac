"""Reading files a hostile world hands us: every failure becomes one InputError that names the file.

Each file kind has one validating reader (FITS: :func:`massmap.io.catalog.open_fits`; map sets:
``massmap.io.datasets``; priors, checkpoints, text tables: :func:`read_text_table`; YAML configs:
``massmap.config.core.load_yaml``). They check the container and its layout and say what is wrong.
:func:`reads` is the net under them: a reader decorated with it turns anything a damaged file can
still make the parsing libraries raise (astropy, h5py, numpy, PyYAML) into
``<what> '<path>' is damaged or not a <what> (<reason>)``, and prefixes the path to an InputError
raised without it, so no message about a file leaves without the file's name.
"""
from __future__ import annotations

import contextlib
import functools
import inspect
import warnings
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from massmap.errors import ConfigError, InputError

# What parsing libraries raise on damaged content (h5py: OSError, KeyError, ValueError, TypeError,
# RuntimeError; astropy: OSError, ValueError, TypeError, KeyError, IndexError, VerifyError (ValueError
# or Exception subclasses); numpy: ValueError, MemoryError; PyYAML: YAMLError).
PARSE_ERRORS: tuple[type[BaseException], ...] = (OSError, ValueError, TypeError, KeyError, IndexError,
                                                 AttributeError, EOFError, RuntimeError, MemoryError,
                                                 UnicodeError, OverflowError)


def reason(err: BaseException, limit: int = 100) -> str:
    """One short line describing an exception."""
    text = str(err).splitlines()[0].strip() if str(err).strip() else ""
    if isinstance(err, MemoryError):
        text = "it declares sizes too large to hold in memory"
    return f"{type(err).__name__}: {text[:limit]}" if text else type(err).__name__


def _extra_errors() -> tuple[type[BaseException], ...]:
    extra: list[type[BaseException]] = []
    with contextlib.suppress(ImportError):
        import yaml

        extra.append(yaml.YAMLError)
    with contextlib.suppress(ImportError):
        from astropy.io.fits.verify import VerifyError

        extra.append(VerifyError)
    return tuple(extra)


@contextlib.contextmanager
def reading(path: str | Path, what: str) -> Iterator[None]:
    """The guard of :func:`reads` as a context manager (warnings of the parsers are silenced)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    except ConfigError:
        raise
    except InputError as err:
        if str(path) in str(err):
            raise
        raise InputError(f"{what} '{path}': {err}") from None
    except PARSE_ERRORS + _extra_errors() as err:
        raise InputError(f"{what} '{path}' is damaged or not a {what} ({reason(err)})") from None


def reads(what: str, arg: str = "path") -> Callable:
    """Decorate a reader whose argument ``arg`` (default: ``path``) is the file read: see the module
    docstring. ``what`` names the kind of file in messages ('shear catalog', 'map set', ...)."""

    def wrap(fn):
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def reader(*args, **kwargs):
            path = sig.bind_partial(*args, **kwargs).arguments.get(arg, "?")
            with reading(path, what):
                return fn(*args, **kwargs)

        return reader

    return wrap


def check_file(path: str | Path, what: str, key: str | None = None, error: type[Exception] = InputError) -> Path:
    """``path`` as a Path if it is an existing, readable regular file; else a one-line ``error``
    (``key`` names the config key that gave the path, e.g. 'wiener.cl_file')."""
    p = Path(path)
    via = f" ({key})" if key else ""
    if not p.exists():
        raise error(f"{what} '{p}'{via} does not exist")
    if p.is_dir():
        raise error(f"{what} '{p}'{via} is a directory, not a file")
    if not p.is_file():  # opening a pipe blocks until a writer comes; a device may never end
        raise error(f"{what} '{p}'{via} is not a regular file (a pipe, socket or device)")
    try:
        with open(p, "rb"):
            pass
    except OSError as err:
        raise error(f"{what} '{p}'{via} cannot be read ({err.strerror or reason(err)})") from None
    return p


def read_text_table(path: str | Path, what: str, columns: tuple[str, ...], key: str | None = None,
                    min_rows: int = 2) -> np.ndarray:
    """A numeric text table (whitespace-separated, '#' comments) with at least ``len(columns)``
    columns and ``min_rows`` rows, all finite: the first ``len(columns)`` columns, (n, k) float64.

    Used for C_ℓ (ell, C_ell) and n(z) (z, n(z)) files; binary or ragged content, too few rows or
    columns, NaN or inf are one-line InputErrors naming the file (and ``key``).
    """
    p = check_file(path, what, key)
    via = f" ({key})" if key else ""
    names = ", ".join(columns)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy warns on an empty file; the checks below say it
            data = np.loadtxt(p, ndmin=2, dtype=np.float64)
    except UnicodeError:
        raise InputError(f"{what} '{p}'{via} is not a text file (binary content); expected {len(columns)} "
                         f"numeric columns ({names})") from None
    except (ValueError, OSError, MemoryError) as err:
        raise InputError(f"{what} '{p}'{via} must hold {len(columns)} numeric columns ({names}): "
                         f"{reason(err, 60)}") from None
    if data.shape[0] < min_rows or data.shape[1] < len(columns):
        raise InputError(f"{what} '{p}'{via} must hold at least {min_rows} rows of {len(columns)} columns "
                         f"({names}); found {data.shape[0]} rows of {data.shape[1] if data.size else 0}")
    data = data[:, : len(columns)]
    if not np.all(np.isfinite(data)):
        row = int(np.argmax(~np.all(np.isfinite(data), axis=1)))
        raise InputError(f"{what} '{p}'{via} holds NaN or inf (first in data row {row + 1})")
    return data
