"""Process memory readings shared by the benchmark scripts (Linux /proc)."""
from __future__ import annotations

from pathlib import Path


def status_kb(key: str) -> float:
    """A /proc/self/status value in kB (VmRSS, VmHWM, ...); NaN where absent."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return float(line.split()[1])
    return float("nan")


def reset_peak_rss() -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0); False where the kernel refuses."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False
