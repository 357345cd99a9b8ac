"""Config section `prior` (owned by the `prior` feature)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PriorConfig:
    pass
