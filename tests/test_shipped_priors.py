"""Which shipped prior the posterior uses: chosen by the map's pixel scale; a null grid.pixel_size_arcmin
takes the prior's scale; no match is a one-line error listing the shipped priors and their scales.

The shipped folder is pointed at a temporary folder of real (untrained, tiny) prior files.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from conftest import write_table
from massmap.config import load_config
from massmap.errors import InputError
from massmap.io.priors import load_prior, shipped_priors, write_prior
from massmap.pipeline import posterior as post
from massmap.pipeline.inputs import load_flat_shear
from massmap.prior.dsm import residual_network
from massmap.prior.unet import UNetSpec


def tiny_prior(path, pixel):
    spec = UNetSpec((4, 8), 1, 8, False, 4.0)
    params, _ = residual_network(spec).init(jax.random.PRNGKey(0), jnp.zeros((1, 8, 8)), jnp.ones((1,)),
                                            jnp.ones((8, 8)))
    write_prior(path, params, spec, pixel_size_arcmin=pixel, npix=8, sigma_min=1e-3, sigma_max=0.1,
                sigma_distribution="log-uniform", kappa_mean=0.0, kappa_std=0.01, cl_table=None, history={}, info={})
    return path


@pytest.fixture
def shipped(tmp_path, monkeypatch):
    folder = tmp_path / "priors"
    folder.mkdir()
    tiny_prior(folder / "default.h5", 1.0)
    tiny_prior(folder / "hst-0.29arcmin.h5", 0.29)
    tiny_prior(folder / "another-1arcmin.h5", 1.0)
    monkeypatch.setattr(post, "SHIPPED_PRIORS", folder)
    monkeypatch.setattr(post, "DEFAULT_PRIOR", folder / "default.h5")
    return folder


def test_choice_by_pixel_scale(shipped):
    assert [(p.name, pix) for p, pix in shipped_priors(shipped)] == [
        ("another-1arcmin.h5", 1.0), ("default.h5", 1.0), ("hst-0.29arcmin.h5", 0.29)]
    assert post.shipped_prior(None).name == "default.h5"
    assert post.shipped_prior(1.0).name == "default.h5"  # the default one first among equal scales
    assert post.shipped_prior(0.29).name == "hst-0.29arcmin.h5"
    pc = load_config([], []).posterior
    assert load_prior(post.shipped_prior(0.29)).pixel_size_arcmin == pytest.approx(0.29)
    assert post.learned_prior(pc, 0.29).pixel_size_arcmin == pytest.approx(0.29)
    assert post.learned_prior(load_config([], ["posterior.prior=gaussian"]).posterior, 0.29) is None
    with pytest.raises(InputError) as err:
        post.learned_prior(pc, 2.0)
    msg = str(err.value)
    assert "\n" not in msg and "2 arcmin" in msg
    for needle in ("default.h5 (1 arcmin)", "hst-0.29arcmin.h5 (0.29 arcmin)", "grid.pixel_size_arcmin"):
        assert needle in msg


def test_no_shipped_prior_means_gaussian(tmp_path, monkeypatch):
    monkeypatch.setattr(post, "SHIPPED_PRIORS", tmp_path / "none")
    monkeypatch.setattr(post, "DEFAULT_PRIOR", tmp_path / "none" / "default.h5")
    assert post.shipped_prior(None) is None and post.learned_prior(load_config([], []).posterior, 1.0) is None
    assert post.prior_pixel_scale(load_config([], []).posterior, ("posterior",)) is None


def test_null_grid_pixel_takes_the_priors_scale(shipped, tmp_path):
    """A catalog binned with grid.pixel_size_arcmin null: the prior's scale for posterior methods, 1′ for
    KS/Wiener and the Gaussian prior, and the given value when set."""
    rng = np.random.default_rng(0)
    n = 2000
    cat = write_table(tmp_path / "cat.fits", {"RA": rng.uniform(-0.1, 0.1, n), "DEC": rng.uniform(-0.1, 0.1, n),
                                               "E1": rng.normal(0, 0.2, n), "E2": rng.normal(0, 0.2, n)})
    hst = str(shipped / "hst-0.29arcmin.h5")

    def scale(sets, methods):
        config = load_config([], sets + ["grid.npix=16", "grid.center=[0,0]"])
        shear, _ = load_flat_shear(cat, config, post.prior_pixel_scale(config.posterior, methods))
        return shear.grid.pixel_size_arcmin

    assert scale([], ("posterior",)) == pytest.approx(1.0)  # the shipped default
    assert scale([f"posterior.prior={hst}"], ("posterior", "map")) == pytest.approx(0.29)
    assert scale([f"posterior.prior={hst}"], ("ks", "wiener")) == pytest.approx(1.0)
    assert scale(["posterior.prior=gaussian"], ("posterior",)) == pytest.approx(1.0)
    assert scale([f"posterior.prior={hst}", "grid.pixel_size_arcmin=0.5"], ("posterior",)) == pytest.approx(0.5)
    with pytest.raises(InputError, match="does not exist"):
        post.prior_pixel_scale(load_config([], ["posterior.prior=nope.h5"]).posterior, ("posterior",))
