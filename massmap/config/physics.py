"""From the ``cosmology`` and ``sources`` config sections to the parameter records the numerics take.

:func:`cosmology_of` gives a :class:`massmap.cosmology.Cosmology` and :func:`sources_of` a
:class:`massmap.cosmology.SourceRedshifts`, reading the n(z) table of ``sources.nz: file`` here, at the
config edge (``massmap.io.nz``; a one-line InputError naming the file). The PM section has its
counterpart beside it: ``massmap.config.pm.pm_params_of``.
"""
from __future__ import annotations

from massmap.config.schema import CosmologyConfig, SourcesConfig
from massmap.cosmology import Cosmology, SourceRedshifts


def cosmology_of(cfg: CosmologyConfig) -> Cosmology:
    """The flat wCDM parameters of the ``cosmology`` section."""
    return Cosmology(Omega_c=float(cfg.Omega_c), Omega_b=float(cfg.Omega_b), h=float(cfg.h),
                     sigma8=float(cfg.sigma8), n_s=float(cfg.n_s), w0=float(cfg.w0))


def sources_of(cfg: SourcesConfig) -> SourceRedshifts:
    """The source redshifts of the ``sources`` section; ``nz: file`` reads the table from ``nz_file``."""
    z = nz = ()
    kind = cfg.nz
    if cfg.nz == "file":
        from massmap.io.nz import read_nz_file

        z_arr, nz_arr = read_nz_file(cfg.nz_file)
        z, nz, kind = tuple(map(float, z_arr)), tuple(map(float, nz_arr)), "tabulated"
    return SourceRedshifts(kind=kind, z_source=float(cfg.z_source), smail_a=float(cfg.smail_a),
                           smail_b=float(cfg.smail_b), smail_z0=float(cfg.smail_z0), z=z, nz=nz)
