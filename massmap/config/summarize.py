"""Config section `summarize` (owned by the `summarize` feature)."""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SummarizeConfig:
    pass
