"""Config section `posterior` (owned by the `posterior` feature)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PosteriorConfig:
    pass
