"""Bad input across every command (docs/reliability.md): the fault-injection matrix, file kind × damage,
and property-based checks (hypothesis) of config values and catalog contents.

Every case runs the real command through click's CliRunner on a damaged copy of a valid seed file and
must give: exit status 2, exactly one line ``massmap: error: ...`` naming the damaged file (and, where
the case says, what is wrong), no traceback, no output or temporary file, and the input untouched.
The count of cases tried and handled per file kind is printed at the end of the run (conftest.py).
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest
import yaml
from astropy.io import fits
from click.testing import CliRunner
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from faults import KINDS, PIX, TALLY, TINY_PRIOR, cases, digest, is_root, leftovers, make_seeds, matches, sets, write_table
from massmap.cli import main
from massmap.config import Config, valid_keys

CASES = cases()


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return make_seeds(tmp_path_factory.mktemp("seeds"))


def error_line(res) -> str:
    """The single line of a clean failure (asserts there is exactly one and no traceback)."""
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert "Traceback" not in res.output, res.output
    assert len(lines) == 1 and lines[0].startswith("massmap: error:"), res.output
    return lines[0]


def test_undamaged_seed_files_are_accepted(seeds, tmp_path):
    """The control of the matrix: each kind's command succeeds on the undamaged seed, so every failure
    below is caused by the damage. (Readers whose command would train or sample are checked directly.)"""
    import jax

    from massmap.config import load_config
    from massmap.io.nz import read_nz_file
    from massmap.io.checkpoints import load_checkpoint
    from massmap.io.priors import load_prior
    from massmap.io.training_data import read_input_maps
    from massmap.pipeline.train_prior import train_spec
    from massmap.prior.dsm import white_mode_variance
    from massmap.prior.training import init_train

    direct = {"prior", "checkpoint", "n(z) table", "training array"}
    for kind in KINDS:
        if kind.name in direct:
            continue
        folder = tmp_path / kind.seed
        folder.mkdir()
        res = CliRunner().invoke(main, kind.argv(seeds[kind.seed], folder, seeds))
        assert res.exit_code == 0, (kind.name, res.output)
        assert (folder / kind.output).exists(), kind.name
    assert load_prior(seeds["prior"]).npix == 16
    cfg = load_config([], TINY_PRIOR)
    spec, hyper = train_spec(cfg.prior, 0.02, 2e-4, 0.2)
    template = init_train(jax.random.PRNGKey(0), spec, hyper, white_mode_variance(16, 16))
    assert int(load_checkpoint(seeds["checkpoint"], template)[0].step) == 0
    assert len(read_nz_file(str(seeds["nz"]))[0]) == 21
    assert len(read_input_maps([seeds["npy"]], PIX)[0]) == 3


@pytest.mark.parametrize("kind, damage, make, needle", CASES, ids=[f"{k.name}: {d}" for k, d, _, _ in CASES])
def test_damaged_input_is_a_one_line_error(kind, damage, make, needle, seeds, tmp_path):
    TALLY[kind.name][0] += 1
    path = tmp_path / kind.filename
    make(path, seeds)
    before = digest(path)
    res = CliRunner().invoke(main, kind.argv(path, tmp_path, seeds))
    if res.exit_code == 0 and damage in kind.tolerant:  # still a valid file of its kind: read as such
        assert (tmp_path / kind.output).exists() and "Traceback" not in res.output
    else:
        assert res.exit_code == 2, res.output
        line = error_line(res)
        assert path.name in line, line  # the message names the damaged file
        assert matches(needle, line), (needle, line)
        assert leftovers(tmp_path, kind.output) == [], "partial output left behind"
    assert digest(path) == before and path.is_dir() == (damage == "directory"), "the input was changed"
    TALLY[kind.name][1] += 1


def test_unreadable_input_is_a_one_line_error(seeds, tmp_path):
    if is_root():
        pytest.skip("running as root: permission bits do not stop root from reading (CAP_DAC_OVERRIDE)")
    path = tmp_path / "cat.fits"
    path.write_bytes(seeds["catalog"].read_bytes())
    path.chmod(0)
    TALLY["catalog"][0] += 1
    res = CliRunner().invoke(main, KINDS[0].argv(path, tmp_path, seeds))
    assert res.exit_code == 2 and "cat.fits" in error_line(res)
    TALLY["catalog"][1] += 1


# ------------------------------------------------------------------ property-based

def _yaml_scalar(value) -> str:
    return yaml.safe_dump(value, default_flow_style=True, width=10**6).replace("\n...\n", "").strip()


CONFIG_VALUES = st.one_of(st.none(), st.booleans(), st.integers(min_value=-2**70, max_value=2**70),
                          st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=12),
                          st.lists(st.one_of(st.integers(-3, 200), st.floats(-1e3, 1e3)), max_size=5),
                          st.dictionaries(st.sampled_from(["a", "npix", "seed"]), st.integers(), max_size=2))


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(key=st.sampled_from(valid_keys(Config)), value=CONFIG_VALUES, via_file=st.booleans())
def test_any_config_value_is_taken_or_refused_in_one_line(key, value, via_file):
    """Any value for any key, from a YAML file or --set: accepted (exit 0), or one line naming the
    key's section, exit 2. Never a traceback."""
    with tempfile.TemporaryDirectory() as d:
        if via_file:
            tree: dict = {}
            node = tree
            *parents, leaf = key.split(".")
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
            f = Path(d) / "c.yaml"
            f.write_text(yaml.safe_dump(tree))
            args = ["config", "--config", str(f), "--get", key]
        else:
            args = ["config", "--set", f"{key}={_yaml_scalar(value)}", "--get", key]
        res = CliRunner().invoke(main, args)
    event(f"exit {res.exit_code}")
    assert res.exit_code in (0, 2), res.output
    if res.exit_code == 2:
        line = error_line(res)
        assert "config" in line and key.split(".")[0] in line, line


def _column(center: float, spread: float):
    wild = st.floats(allow_nan=True, allow_infinity=True, width=64)
    return st.one_of(st.floats(center - spread, center + spread), st.floats(center - spread, center + spread), wild)


@settings(max_examples=100, deadline=None, derandomize=True, database=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), n=st.integers(1, 60), dtype=st.sampled_from([np.float64, np.float32]),
       weights=st.booleans())
def test_any_catalog_contents_reconstruct_or_fail_in_one_line(data, n, dtype, weights):
    """Catalog values anywhere (NaN, inf, |e| > 1, far-away or polar positions, negative weights):
    reconstruct writes a finite κ map, or refuses in one line naming the catalog or a config key."""
    cols = {name: data.draw(arrays(dtype, n, elements=_column(c, w)), label=name)
            for name, c, w in (("RA", 150.0, 0.2), ("DEC", 2.0, 0.2), ("E1", 0.0, 0.5), ("E2", 0.0, 0.5))}
    if weights:
        cols["WEIGHT"] = data.draw(arrays(dtype, n, elements=_column(1.0, 1.0)), label="WEIGHT")
    with tempfile.TemporaryDirectory() as d:
        cat, out = Path(d) / "cat.fits", Path(d) / "out.fits"
        write_table(cat, cols)
        res = CliRunner().invoke(main, ["reconstruct", str(cat), "-o", str(out), "--method", "ks", "--no-plot",
                                        "--quiet", *sets("grid.npix=16", "pad=0")])
        event(f"exit {res.exit_code}")
        if res.exit_code == 0:
            with fits.open(out) as h:
                assert np.all(np.isfinite(h["KAPPA_KS"].data)) and h["MASK"].data.any()
        else:
            assert res.exit_code == 2, res.output
            line = error_line(res)
            assert "cat.fits" in line or "grid." in line, line
            assert leftovers(Path(d), "out.fits") == []
