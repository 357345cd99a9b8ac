"""Config section `summarize`: what ``massmap summarize`` measures on a reconstruction (docs/summarize.md).

Scales are in arcmin, thresholds in units of S/N. The noise realisations that give the S/N of the
Kaiser-Squires and Wiener maps (and the noise-only B-mode of the null test) use the root ``seed``.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Optional

from massmap.config.core import ConfigError


def _err(key: str, msg: str) -> ConfigError:
    return ConfigError(f"config key 'summarize.{key}' {msg}")


@dataclass(frozen=True)
class SummarizeConfig:
    # --- signal-to-noise and peaks ---
    smoothing_arcmin: float = 2.0  # Gaussian σ of the KS maps used for S/N, peaks, metrics (0 = none)
    n_noise: int = 100  # noise realisations for the S/N of KS and Wiener maps and the B-mode null test
    noise_method: Literal["gaussian", "rotate"] = "gaussian"  # NOISE_STD × N(0,1), or rotate each pixel's shear
    noise_chunk: int = 25  # realisations processed at once (bounds memory)
    null_signal: bool = True  # B-mode null test against noise + the E→B leakage of Gaussian κ (recorded C_ℓ)
    peak_threshold: float = 3.0  # S/N of a peak (local maximum over its 8 neighbours)
    edge_arcmin: float = 0.0  # no peaks closer than this to the map edge or to pixels without data
    max_peaks: int = 200  # at most this many peaks per method (highest S/N first)
    # --- power spectra ---
    n_ell_bins: int = 10  # log-spaced ℓ bins
    ell_min: Optional[float] = None  # null: the fundamental mode of the map
    ell_max: Optional[float] = None  # null: the Nyquist ℓ of the pixels
    # --- calibration (needs --truth and posterior samples) ---
    credible_levels: tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.68, 0.8, 0.9, 0.95, 0.99)
    zscore_bins: int = 40
    # --- posterior samples against the truth (needs --truth and posterior samples) ---
    sample_peak_bins: tuple[float, ...] = (-2.0, -1.0, 0.0, 1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0)  # S/N bin edges
    sample_pdf_bins: int = 30  # equal-width κ bins of the one-point PDF
    # --- figures ---
    dpi: int = 90

    def __post_init__(self):
        if not self.smoothing_arcmin >= 0:
            raise _err("smoothing_arcmin", f"must be >= 0, got {self.smoothing_arcmin}")
        if self.n_noise < 2:
            raise _err("n_noise", f"must be >= 2 (a standard deviation needs two realisations), got {self.n_noise}")
        for name in ("noise_chunk", "max_peaks", "n_ell_bins", "zscore_bins", "sample_pdf_bins", "dpi"):
            if getattr(self, name) < 1:
                raise _err(name, f"must be >= 1, got {getattr(self, name)}")
        if not self.edge_arcmin >= 0:
            raise _err("edge_arcmin", f"must be >= 0, got {self.edge_arcmin}")
        for name in ("ell_min", "ell_max"):
            v = getattr(self, name)
            if v is not None and not v > 0:
                raise _err(name, f"must be > 0 or null, got {v}")
        if self.ell_min is not None and self.ell_max is not None and not self.ell_min < self.ell_max:
            raise _err("ell_min", f"must be < summarize.ell_max ({self.ell_max}), got {self.ell_min}")
        if not self.credible_levels:
            raise _err("credible_levels", "must hold at least one level")
        bad = [a for a in self.credible_levels if not 0 < a < 1]
        if bad:
            raise _err("credible_levels", f"must lie in (0, 1), got {bad[0]}")
        e = self.sample_peak_bins
        if len(e) < 2 or not all(abs(x) < float("inf") for x in e) or any(b <= a for a, b in zip(e, e[1:])):
            raise _err("sample_peak_bins", f"must be at least two finite, increasing S/N edges, got {list(e)}")
