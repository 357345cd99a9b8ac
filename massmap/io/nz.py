"""Source redshift distributions from text files: the n(z) table behind ``sources.nz: file``."""
from __future__ import annotations

import numpy as np

from massmap.errors import InputError
from massmap.io.inputs import read_text_table


def read_nz_file(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Two columns (z, n(z)) from a text file (float64 arrays); one-line InputError naming the file on problems.

    At least 3 rows; z must be >= 0 and increase, n(z) >= 0 with some > 0 (any normalisation).
    """
    data = read_text_table(path, "n(z) file", ("z", "n(z)"), key="sources.nz_file", min_rows=3)
    z, nz = data[:, 0], data[:, 1]
    if np.any(np.diff(z) <= 0) or np.any(nz < 0) or not np.any(nz > 0) or z[0] < 0:
        raise InputError(f"n(z) file '{path}': z must be >= 0 and increase, and n(z) be >= 0 with some > 0")
    return z, nz
