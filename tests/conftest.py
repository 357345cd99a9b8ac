"""Shared test helpers: tiny catalogs and grids built in temporary folders."""
from __future__ import annotations

import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from astropy.io import fits  # noqa: E402

COSMOS = Path(__file__).resolve().parents[2] / "shared" / "data" / "cosmos" / "cosmos_hst_shapes.fits"


def write_table(path, columns: dict) -> Path:
    cols = [fits.Column(name=k, format="D", array=np.asarray(v, float)) for k, v in columns.items()]
    fits.HDUList([fits.PrimaryHDU(), fits.BinTableHDU.from_columns(cols)]).writeto(path, overwrite=True)
    return Path(path)


@pytest.fixture
def cosmos_path():
    if not COSMOS.exists():
        pytest.skip(f"COSMOS catalogue not found at {COSMOS} (shared data absent)")
    return COSMOS


def assert_one_line_error(res, needles, out: Path) -> None:
    """A CLI failure as the standards ask: exit 2, one line naming the culprit, no output or sidecar left."""
    assert res.exit_code == 2, res.output
    lines = [line for line in res.output.strip().splitlines() if line]
    assert len(lines) == 1 and lines[0].startswith("massmap: error:"), res.output
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])
    out = Path(out)
    assert not out.exists() and not list(out.parent.glob(f".{out.name}.*"))
    assert not out.with_suffix(".config.yaml").exists()


def assert_config_rejects(*cases: tuple[list[str], str]) -> None:
    """Each case (overrides, key): loading the config with those overrides raises a ConfigError naming key."""
    from massmap.config import ConfigError, load_config

    for overrides, key in cases:
        with pytest.raises(ConfigError, match=key):
            load_config(overrides=overrides)


def pytest_terminal_summary(terminalreporter):
    """Print the fault-injection tally of tests/test_faults.py: cases tried and handled per file kind."""
    try:
        from faults import TALLY
    except ImportError:
        return
    if not TALLY:
        return
    parts = [f"{kind} {handled}/{tried} handled" for kind, (tried, handled) in TALLY.items()]
    tried, handled = (sum(v[i] for v in TALLY.values()) for i in (0, 1))
    terminalreporter.write_line(f"fault cases: {', '.join(parts)}; total {handled}/{tried} handled")
