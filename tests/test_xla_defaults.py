"""massmap.xla_defaults: when the YNNPACK-off flag is added, and that a fresh `import massmap` really
compiles the score network's width-changing convolutions without a YNN fusion."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from massmap import xla_defaults

ROOT = Path(__file__).resolve().parents[1]


def test_wanted_rules():
    checked = "0.10.2"
    assert xla_defaults.wanted({}, checked)
    assert xla_defaults.wanted({"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}, checked)
    # the user's own setting of the flag wins, whatever its value
    assert not xla_defaults.wanted({"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_DOT"},
                                   checked)
    assert not xla_defaults.wanted({"MASSMAP_XLA_DEFAULTS": "0"}, checked)
    # a jaxlib series the flag was not checked in: XLA would abort on an unknown flag, so nothing is added
    for version in ("0.9.1", "0.11.0", "1.0.0", "garbage"):
        assert not xla_defaults.wanted({}, version), version


def test_apply_appends_once():
    env = {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    if not xla_defaults.wanted(env):
        pytest.skip("the installed jaxlib is not of a checked series")
    assert xla_defaults.apply(env)
    assert env["XLA_FLAGS"] == "--xla_force_host_platform_device_count=2 " + xla_defaults.FLAG
    assert not xla_defaults.apply(env)  # already there: unchanged
    assert env["XLA_FLAGS"].count(xla_defaults.FLAG) == 1


_PROBE = """
import massmap  # applies the default before JAX starts its backend
import jax, jax.numpy as jnp
from massmap.prior.spectral_norm import periodic_conv
x = jnp.zeros((4, 32, 32, 32)); w = jnp.zeros((3, 3, 32, 16))
print("YNN" if "ynn_fusion" in jax.jit(periodic_conv).lower(x, w).compile().as_text() else "EIGEN")
"""


def _probe(**env) -> str:
    full = {**os.environ, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(ROOT), **env}
    full.pop("XLA_FLAGS", None)
    out = subprocess.run([sys.executable, "-c", _PROBE], capture_output=True, text=True, env=full, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout.strip().splitlines()[-1]


def test_import_massmap_turns_ynn_fusions_off():
    if not xla_defaults.wanted({}):
        pytest.skip("the installed jaxlib is not of a checked series")
    # without the default this jaxlib hands the 32 → 16 channel conv to YNNPACK (6-12x slower, see the
    # module); the check has power only where it does, so the opt-out run is the control
    control = _probe(MASSMAP_XLA_DEFAULTS="0")
    if control != "YNN":
        pytest.skip("this jaxlib does not use YNN fusions for the conv: nothing to turn off")
    assert _probe() == "EIGEN"
