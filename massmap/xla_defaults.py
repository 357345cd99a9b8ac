"""The XLA CPU setting massmap applies before JAX starts its backend: YNNPACK fusions off.

XLA's CPU backend in jaxlib 0.10 hands convolutions, dots and element-wise fusions to the YNNPACK
library ("ynn fusions", an experimental path that is on by default). For the score network's small
3×3 convolutions that path is 6–12× slower than XLA's own Eigen kernels whenever the input and output
channel counts differ (every conv that changes the width, and the decoder's convs of concatenated
skips): on 2 CPU cores, a 3×3 conv of 16 maps of 64² from 32 to 16 channels takes 67 ms with YNNPACK
and 6.6–9.7 ms without; one from 16 to 16 channels, which YNNPACK does not take, 4.4 ms either way.
Without it (``benchmarks/bench_prior.py``, both settings in one run, docs/benchmarks.md):

* a training step of the default network: 1.79 → 2.42 steps/s at 64², 0.43 → 0.89 at 128²;
* one score evaluation of 10 maps: 135 → 37 ms at 64², 589 → 174 ms at 128²; the shipped prior on
  the posterior's working shape (10 chains of 96²): 282 → 80 ms;
* a large float32 matmul, FFTs and element-wise fusions are as fast or faster.

So :func:`apply` adds ``--xla_cpu_experimental_ynn_fusion_type=`` (an empty list of fusion kinds)
to ``XLA_FLAGS``. ``import massmap`` calls it; it has an effect only if JAX has not yet started its
backend in this process (the first computation or device query does that), and subprocesses inherit
it. It does nothing when

* ``XLA_FLAGS`` already sets that flag (the user's choice wins), or ``MASSMAP_XLA_DEFAULTS=0``;
* the installed jaxlib is not of a release series in which the flag was checked to exist
  (:data:`CHECKED_SERIES`): XLA aborts the process on a flag it does not know, so an untested jaxlib
  runs with XLA's own defaults.

The flag changes which kernels compute the same sums, so results differ from a run without it at
the level of float32 rounding; with the same settings, the same config and seed give the same numbers.
"""
from __future__ import annotations

import os

FLAG = "--xla_cpu_experimental_ynn_fusion_type="
CHECKED_SERIES = ((0, 10),)  # jaxlib (major, minor) series known to have the flag


def _series(version: str) -> tuple[int, int] | None:
    try:
        major, minor = version.split(".")[:2]
        return int(major), int(minor)
    except ValueError:
        return None


def wanted(environ=None, jaxlib_version: str | None = None) -> bool:
    """Whether :func:`apply` would add the flag to ``environ`` (default: ``os.environ``) for the
    given jaxlib version (default: the installed one)."""
    env = os.environ if environ is None else environ
    if env.get("MASSMAP_XLA_DEFAULTS", "1").strip() == "0":
        return False
    if FLAG.rstrip("=") in env.get("XLA_FLAGS", ""):
        return False
    if jaxlib_version is None:
        try:  # jaxlib's own version module: ~3 ms, where importlib.metadata takes ~50 ms at every import
            from jaxlib.version import __version__ as jaxlib_version
        except ImportError:
            return False
    return _series(jaxlib_version) in CHECKED_SERIES


def apply(environ=None) -> bool:
    """Add the flag to ``XLA_FLAGS`` where :func:`wanted`; returns whether it did."""
    env = os.environ if environ is None else environ
    if not wanted(env):
        return False
    env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") + " " + FLAG).strip()
    return True
