"""The DIAGNOSTICS table of a reconstruction: sampler and MAP diagnostics as FITS columns and cards.

Columns, one row per annealing level: SIGMA, ACCEPTANCE, STEP_SIZE, LEAPFROG_STEPS, DIVERGENT (the
sampler, averaged or summed over chains kept), SPLIT_FRACTION (the split likelihood's t at the
level, 0 for the inflated one: massmap.infer.likelihood) and MAP_STEP_RMS, MAP_STEP_SCALE, MAP_REJECTED,
MAP_STABLE (the MAP ascent). Header cards: ACCEPTANCE_DRAWS, STEP_SIZE_DRAWS, DIVERGENT_DRAWS,
N_CHAINS, N_CHAINS_USED, DRAWS_PER_CHAIN, N_FAILED_RUNS, N_RESTARTS, N_DROPPED, N_SCORE_EVALS,
RHAT_<stat>, ESS_<stat>, SIGMA_MAX, SIGMA_MIN, PRIOR, PRECONDITIONER, MAP_SIGMA_FINAL,
MAP_SCORE_EVALS; INTERRUPTED and N_SAMPLES_KEPT when Ctrl-C stopped the sampling.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from massmap.infer.map import MapEstimate
from massmap.infer.sampler import PosteriorSamples


def diagnostics_table(posterior: PosteriorSamples | None, estimate: MapEstimate | None,
                      interrupted: bool = False) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """(columns, header cards) of the DIAGNOSTICS extension; empty dicts when there is nothing to record."""
    cols: dict[str, np.ndarray] = {}
    cards: dict[str, Any] = {}
    if posterior is not None and interrupted:
        cards.update(INTERRUPTED=True, N_SAMPLES_KEPT=len(posterior.samples))
    info = posterior.info if posterior is not None else None
    if info is not None:
        cols.update(SIGMA=info.sigma, ACCEPTANCE=info.acceptance, STEP_SIZE=info.step_size,
                    LEAPFROG_STEPS=info.leapfrog_steps, DIVERGENT=info.divergent,
                    SPLIT_FRACTION=info.split_fraction)
        cards.update(ACCEPTANCE_DRAWS=info.acceptance_draws, STEP_SIZE_DRAWS=info.step_size_draws,
                     DIVERGENT_DRAWS=info.divergent_draws, N_CHAINS=info.n_chains, N_CHAINS_USED=info.n_chains_used,
                     DRAWS_PER_CHAIN=info.draws_per_chain, N_FAILED_RUNS=info.n_failed_runs,
                     N_RESTARTS=info.n_restarts, N_DROPPED=info.n_dropped, N_SCORE_EVALS=info.n_score_evals)
        cards.update({f"RHAT_{k}": v for k, v in info.rhat.items()})
        cards.update({f"ESS_{k}": v for k, v in info.ess.items()})
        cards.update(SIGMA_MAX=info.sigma_max, SIGMA_MIN=info.sigma_min, PRIOR=info.prior,
                     PRECONDITIONER=info.preconditioner)
    if estimate is not None:
        cols.update(MAP_STEP_RMS=estimate.step_rms, MAP_STEP_SCALE=estimate.step_scale,
                    MAP_REJECTED=estimate.n_rejected, MAP_STABLE=estimate.stable)
        cols.setdefault("SIGMA", estimate.sigma)
        cards.update(MAP_SIGMA_FINAL=estimate.sigma_final, MAP_SCORE_EVALS=estimate.n_score_evals)
    if cards and not cols:
        cols = {"LEVEL": np.zeros(0, np.int64)}
    return cols, cards
