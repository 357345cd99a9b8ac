"""massmap: weak-lensing shear catalogs to convergence maps with calibrated uncertainties."""
__version__ = "0.1.0"
