"""Config section `simulate` (owned by the `simulate` feature)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SimulateConfig:
    pass
