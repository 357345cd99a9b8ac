"""The Python API: ``import massmap`` exports what the CLI runs, and the notebook-style example in
docs/examples/quickstart.py runs end to end with physically right answers."""
from __future__ import annotations

import runpy
from pathlib import Path

import numpy as np

import massmap

EXAMPLE = Path(__file__).resolve().parent.parent / "docs" / "examples" / "quickstart.py"


def test_every_exported_name_resolves_and_is_the_cli_function():
    for name in massmap.__all__:
        assert getattr(massmap, name) is not None, name
    from massmap.pipeline import reconstruct, simulate, summarize

    # the CLI's functions, not copies
    assert massmap.run_reconstruct is reconstruct.run_reconstruct
    assert massmap.run_simulate is simulate.run_simulate
    assert massmap.run_summarize is summarize.run_summarize


def test_quickstart_example_runs_and_its_maps_are_right(capsys):
    g = runpy.run_path(str(EXAMPLE), run_name="__main__")
    truth, maps, post = g["truth"], g["maps"], g["post"]
    assert truth.shape == maps["KAPPA_WIENER"].shape == post.mean.shape == (32, 32)
    # Wiener beats unsmoothed KS on a noisy 1′ field (r 0.52 vs 0.35 here; the margin is large)
    assert massmap.pearson_r(maps["KAPPA_WIENER"], truth) > massmap.pearson_r(maps["KAPPA_KS"], truth) + 0.05
    # with the Gaussian prior the posterior mean is the Wiener map: rms of the difference in units of
    # std/√16 near 1 for independent chains (below 2: draws within a chain are correlated, 4 chains × 4
    # draws); the default antithetic pairs bring it far below 1
    z = (post.mean - maps["KAPPA_WIENER"]) / (post.std / np.sqrt(len(post.samples)))
    assert np.sqrt(np.mean(z**2)) < 2.0
    out = capsys.readouterr().out
    assert "score evaluations each" in out and "Pearson r" in out
