"""Which Wiener solver a reconstruction uses (flat or HEALPix), and the warning when CG stops early."""
from __future__ import annotations

import sys

import numpy as np

from massmap.errors import ConfigError, SamplingError


def uniform_noise(noise_std: np.ndarray, mask: np.ndarray) -> bool:
    """Every pixel observed, with one noise level (to 1e-6): the closed-form Wiener filter is exact."""
    if not np.asarray(mask).all():
        return False
    return bool(np.ptp(noise_std) <= 1e-6 * np.max(noise_std))


def use_closed_form(solver: str, exact: bool, closed_form: str, needs: str) -> bool:
    """Whether ``wiener.solver`` (auto, fourier, cg) means the closed form here; ConfigError if it asks
    for the closed form (``closed_form``, which ``needs`` ...) where it is not exact."""
    if solver == "fourier" and not exact:
        raise ConfigError(f"config key 'wiener.solver': 'fourier' ({closed_form}) needs {needs}; use 'auto' or 'cg'")
    return solver == "fourier" or (solver == "auto" and exact)


def warn_unconverged(cg, tol: float) -> None:
    """One warning line on stderr when conjugate gradients stopped before reaching ``wiener.tol``;
    SamplingError (exit 3) when its residual is not a number: the system itself overflowed (a noise or a
    C_ell beyond float32), and the map would be the starting guess."""
    if not np.isfinite(cg.residual):
        raise SamplingError(f"Wiener CG failed at iteration {cg.iterations}: the residual is {cg.residual} (the "
                            "noise, the weights or the signal C_ell are beyond what float32 arithmetic holds)")
    if not cg.converged:
        print(f"massmap: warning: Wiener CG stopped after {cg.iterations} iterations with relative "
              f"residual {cg.residual:.2e} > wiener.tol={tol:g}", file=sys.stderr)
