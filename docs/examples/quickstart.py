# %% [markdown]
# # massmap from Python: a mock field → Kaiser-Squires, Wiener and posterior maps
#
# The same functions the command line calls, on a small Gaussian field (32² pixels of 1′) so that it runs
# in under a minute on a laptop. `tests/test_api.py` executes this file. Run it as a script, or paste
# the cells into a notebook.

# %%
import os
import tempfile

import jax
import numpy as np

import massmap as mm

work = tempfile.mkdtemp(prefix="massmap-quickstart-")
config = mm.load_config(overrides=["seed=1", "simulate.kind=grf", "simulate.n_maps=1", "simulate.npix=32",
                                   "simulate.pixel_size_arcmin=1.0",
                                   "grid.npix=32", "grid.center=[150.0, 2.0]", "pad=16", "mock.n_gal=30"])

# %% [markdown]
# A training-set file with one Gaussian κ map (the Limber C_ℓ of the configured cosmology), and a mock
# shear catalog drawn from it (30 galaxies/arcmin², σ_e = 0.26): what `massmap simulate` and
# `massmap mock-catalog` write.

# %%
mm.run_simulate(config, os.path.join(work, "maps.h5"))
mock = mm.run_mock_catalog(config, os.path.join(work, "maps.h5"), os.path.join(work, "catalog.fits"),
                           truth_out=os.path.join(work, "truth.fits"), index=0)
_, truth = mm.read_kappa_image(os.path.join(work, "truth.fits"))
print(f"{mock['n_galaxies']} galaxies; truth κ rms {truth.std():.4f}")

# %% [markdown]
# Read the catalog (column names, calibration and cleaning from `config.catalog`), put a grid on it and
# bin the shear: a `BinnedShear` holds γ₁, γ₂, the per-pixel noise and the mask on a TAN grid.

# %%
catalog = mm.read_catalog(os.path.join(work, "catalog.fits"), config.catalog)
sigma_e = mm.estimate_sigma_e(catalog)
grid = mm.grid_from_catalog(catalog.ra, catalog.dec, 1.0, center=(150.0, 2.0), npix=32)
shear = mm.bin_shear(catalog, grid, sigma_e)
print(f"σ_e = {sigma_e:.3f}; {int(shear.mask.sum())} of {shear.mask.size} pixels have galaxies")

# %% [markdown]
# Kaiser-Squires and Wiener maps, exactly as `massmap reconstruct --method ks,wiener` makes them.

# %%
maps, info = mm.compute_maps(shear, config, ("ks", "wiener"))
for name in ("KAPPA_KS", "KAPPA_WIENER"):
    print(f"{name}: Pearson r with the truth {mm.pearson_r(maps[name], truth):.3f}")

# %% [markdown]
# Posterior samples with the Gaussian prior of the signal C_ℓ (then the posterior mean is the Wiener map,
# up to Monte-Carlo error). A learned prior is `mm.load_prior("prior.h5")` instead.

# %%
signal = mm.signal_prior(config, grid.pixel_size_arcmin, ell_max=2e4)
settings = mm.load_config(overrides=["posterior.n_samples=16", "posterior.chains=4", "posterior.chunk=4"]).posterior
run = mm.posterior_maps(shear, settings, config.pad, jax.random.PRNGKey(0), signal, reference=signal, progress=False)
post = run.posterior
print(f"{len(post.samples)} samples, {post.score_evals_per_sample:.0f} score evaluations each, "
      f"max split-R̂ {post.info.rhat_max:.2f}")
print(f"posterior mean: r = {mm.pearson_r(post.mean, truth):.3f}; "
      f"68% coverage of the truth {float(mm.coverage(post.samples, truth, [0.68])[0]):.2f}")
z = (post.mean - maps["KAPPA_WIENER"]) / (post.std / np.sqrt(len(post.samples)))
print(f"posterior mean − Wiener in units of std/√n: rms {np.sqrt(np.mean(z**2)):.2f} "
      "(about 1 for independent chains; antithetic pairs, the default, make it smaller)")
