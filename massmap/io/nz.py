"""Source redshift distributions from text files: the n(z) table behind ``sources.nz: file``."""
from __future__ import annotations

import numpy as np

from massmap.errors import InputError


def read_nz_file(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Two columns (z, n(z)) from a text file (float64 arrays); one-line InputError naming the file on problems.

    At least 3 rows; z must increase and n(z) be >= 0 with some > 0 (any normalisation).
    """
    try:
        data = np.loadtxt(path, ndmin=2)
    except OSError:
        raise InputError(f"n(z) file '{path}' cannot be read") from None
    except ValueError:
        raise InputError(f"n(z) file '{path}' must hold two numeric columns (z, n(z))") from None
    if data.shape[1] < 2 or data.shape[0] < 3:
        raise InputError(f"n(z) file '{path}' must hold at least 3 rows of two columns (z, n(z))")
    z, nz = data[:, 0], data[:, 1]
    if np.any(np.diff(z) <= 0) or np.any(nz < 0) or not np.any(nz > 0):
        raise InputError(f"n(z) file '{path}': z must increase and n(z) be >= 0 with some > 0")
    return z, nz
