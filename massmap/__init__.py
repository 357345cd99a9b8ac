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

from massmap import xla_defaults as _xla_defaults

__version__ = "0.1.0"

# before JAX starts its backend: XLA's YNNPACK CPU fusions off (the score network 3-4x faster; see the module)
_xla_defaults.apply()

# the module that defines them → public names (grouped by topic)
_MODULES = {
    # configuration
    "massmap.config": ("load_config", "Config"),
    # errors
    "massmap.errors": ("InputError", "ConfigError", "SamplingError"),
    # catalogs, grids and binning
    "massmap.io.catalog": ("read_catalog",),
    "massmap.binning": ("ShearCatalog", "BinnedShear", "HealpixShear", "bin_shear", "bin_shear_healpix",
                        "estimate_sigma_e"),
    "massmap.geometry": ("FlatGrid", "grid_from_catalog"),
    "massmap.io.maps": ("read_binned_shear", "read_kappa_image"),
    # linear methods and spectra
    "massmap.ops.shear": ("kaiser_squires", "kappa_to_shear"),
    "massmap.ops.wiener": ("wiener_fourier", "wiener_cg"),
    # cosmology: parameter records, their resolution from config, the Limber C_ℓ
    "massmap.cosmology": ("Cosmology", "SourceRedshifts", "kappa_cl"),
    "massmap.config.physics": ("cosmology_of", "sources_of"),
    "massmap.pipeline.inputs": ("signal_prior",),
    # priors
    "massmap.prior.base": ("Prior",),
    "massmap.prior.gaussian": ("GaussianPrior",),
    "massmap.prior.learned": ("LearnedPrior", "HybridPrior"),
    "massmap.io.priors": ("load_prior",),
    # the posterior
    "massmap.pipeline.posterior": ("resolve_prior", "posterior_maps", "PosteriorRun"),
    "massmap.infer.sampler": ("sample_posterior", "SamplerSettings", "PosteriorSamples", "SamplerInfo"),
    "massmap.infer.map": ("map_estimate", "MapSettings", "MapEstimate"),
    "massmap.infer.likelihood": ("pad_shear",),
    # statistics
    "massmap.ops.spectra": ("power_spectrum",),
    "massmap.summarize.stats": ("find_peaks", "pearson_r", "rmse", "coverage"),
    # the commands (what `massmap COMMAND` runs)
    "massmap.pipeline.simulate": ("run_simulate",),
    "massmap.pipeline.mock": ("run_mock_catalog",),
    "massmap.pipeline.train_prior": ("run_train_prior",),
    "massmap.pipeline.reconstruct": ("compute_maps", "run_reconstruct"),
    "massmap.pipeline.reconstruct_healpix": ("run_reconstruct_healpix",),
    "massmap.pipeline.summarize": ("run_summarize",),
    "massmap.pipeline.tiles": ("plan_survey", "run_survey_tile", "merge_survey"),
}
_EXPORTS = {name: module for module, names in _MODULES.items() for name in names}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'massmap' has no attribute {name!r}")


def __dir__():
    return __all__
