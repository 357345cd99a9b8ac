"""massmap: weak-lensing shear catalogs to convergence maps with calibrated uncertainties.

The public Python API, for notebooks and scripts: the functions the command line calls, re-exported
here (documented in docs/api.md). Everything else lives in the subpackages (``massmap.infer``,
``massmap.prior``, ``massmap.ops``, ...). Names are imported on first use, so ``import massmap`` is cheap.

    import massmap as mm
    config = mm.load_config(["configs/demo.yaml"])
    catalog = mm.read_catalog("catalog.fits", config.catalog)
    grid = mm.grid_from_catalog(catalog.ra, catalog.dec, 1.0)
    shear = mm.bin_shear(catalog, grid, mm.estimate_sigma_e(catalog))
    maps, info = mm.compute_maps(shear, config, ("ks", "wiener"))
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name → the module that defines it
_EXPORTS = {
    # configuration
    "load_config": "massmap.config", "Config": "massmap.config",
    # errors
    "InputError": "massmap.errors", "ConfigError": "massmap.errors", "SamplingError": "massmap.errors",
    # catalogs, grids and binning
    "read_catalog": "massmap.io.catalog", "ShearCatalog": "massmap.binning", "BinnedShear": "massmap.binning",
    "HealpixShear": "massmap.binning", "bin_shear": "massmap.binning", "bin_shear_healpix": "massmap.binning",
    "estimate_sigma_e": "massmap.binning", "FlatGrid": "massmap.geometry", "grid_from_catalog": "massmap.geometry",
    "read_binned_shear": "massmap.io.maps", "read_kappa_image": "massmap.io.maps",
    # linear methods and spectra
    "kaiser_squires": "massmap.ops.shear", "kappa_to_shear": "massmap.ops.shear",
    "wiener_fourier": "massmap.ops.wiener", "wiener_cg": "massmap.ops.wiener",
    # cosmology: parameter records, their resolution from config, the Limber C_ℓ
    "Cosmology": "massmap.cosmology", "SourceRedshifts": "massmap.cosmology", "kappa_cl": "massmap.cosmology",
    "cosmology_of": "massmap.config.physics", "sources_of": "massmap.config.physics",
    "compute_maps": "massmap.pipeline.reconstruct", "signal_prior": "massmap.pipeline.inputs",
    # priors
    "Prior": "massmap.prior.base", "GaussianPrior": "massmap.prior.gaussian", "LearnedPrior": "massmap.prior.learned",
    "HybridPrior": "massmap.prior.learned", "load_prior": "massmap.io.priors", "resolve_prior": "massmap.pipeline.posterior",
    # the posterior
    "posterior_maps": "massmap.pipeline.posterior", "PosteriorRun": "massmap.pipeline.posterior",
    "sample_posterior": "massmap.infer.sampler", "SamplerSettings": "massmap.infer.sampler",
    "PosteriorSamples": "massmap.infer.sampler", "SamplerInfo": "massmap.infer.sampler",
    "map_estimate": "massmap.infer.map", "MapSettings": "massmap.infer.map", "MapEstimate": "massmap.infer.map",
    "pad_shear": "massmap.infer.likelihood",
    # statistics
    "power_spectrum": "massmap.ops.spectra", "find_peaks": "massmap.summarize.stats",
    "pearson_r": "massmap.summarize.stats", "rmse": "massmap.summarize.stats", "coverage": "massmap.summarize.stats",
    # the commands (what `massmap COMMAND` runs)
    "run_simulate": "massmap.pipeline.simulate", "run_mock_catalog": "massmap.pipeline.mock",
    "run_train_prior": "massmap.pipeline.train_prior", "run_reconstruct": "massmap.pipeline.reconstruct",
    "run_reconstruct_healpix": "massmap.pipeline.reconstruct_healpix", "run_summarize": "massmap.pipeline.summarize",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'massmap' has no attribute {name!r}")


def __dir__():
    return __all__
