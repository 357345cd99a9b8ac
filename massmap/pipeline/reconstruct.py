"""``massmap reconstruct``: shear catalog or binned shear map → Kaiser-Squires / Wiener κ maps."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from massmap.config import Config, ConfigError
from massmap.cosmology import kappa_cl
from massmap.geometry import FlatGrid, grid_from_catalog
from massmap.io.catalog import bin_shear, estimate_sigma_e, read_catalog
from massmap.io.inputs import read_text_table
from massmap.io.maps import is_binned_shear, read_binned_shear, write_maps
from massmap.io.output import InputError, check_output, provenance, write_config_sidecar
from massmap.io.plots import plot_maps
from massmap.ops.shear import crop_map, kaiser_squires, pad_map
from massmap.ops.spectra import ell_grid, mode_variance
from massmap.ops.wiener import wiener_cg, wiener_fourier

METHODS = ("ks", "wiener", "posterior", "map")


class Interrupted(KeyboardInterrupt):
    """Ctrl-C during posterior sampling; the output was written with the samples finished so far."""


@dataclass
class ShearData:
    """Binned shear on a grid, whatever the input was."""

    grid: FlatGrid
    g1: np.ndarray
    g2: np.ndarray
    noise_std: np.ndarray  # per component, 0 = no data
    mask: np.ndarray  # 1 = data
    info: dict[str, Any] = field(default_factory=dict)


def load_shear(path: str | Path, config: Config) -> ShearData:
    """Read a FITS shear catalog (binned on the configured grid) or a binned shear map."""
    path = str(path)
    if is_binned_shear(path):
        grid, g1, g2, noise, mask = read_binned_shear(path)
        return ShearData(grid, g1, g2, noise, mask, {"input_kind": "binned shear map"})
    cat = read_catalog(path, config.catalog)
    grid = grid_from_catalog(cat.ra, cat.dec, config.grid)
    sigma_e = config.noise.sigma_e if config.noise.sigma_e is not None else estimate_sigma_e(cat)
    binned = bin_shear(cat, grid, sigma_e)
    if not binned.mask.any():
        raise InputError(f"catalog '{path}': no galaxy falls on the map grid (check grid.center and grid.npix)")
    info = {"input_kind": "catalog", "rows_read": cat.n_read, "rows_used": cat.n - binned.n_outside,
            "rows_dropped": cat.n_dropped, "rows_outside_grid": binned.n_outside, "sigma_e": sigma_e,
            "notes": cat.notes}
    return ShearData(grid, binned.g1, binned.g2, binned.noise_std, binned.mask, info)


def read_cl_file(path: str) -> tuple[np.ndarray, np.ndarray]:
    """Two columns (ℓ, C_ℓ) from a text file."""
    data = read_text_table(path, "C_ell file", ("ell", "C_ell"), key="wiener.cl_file")
    ell, cl = data[:, 0], data[:, 1]
    if np.sum((ell > 0) & (cl > 0)) < 2:
        raise InputError(f"C_ell file '{path}' needs finite values and at least two rows with ell > 0, C_ell > 0")
    return ell, cl


def signal_cl(config: Config, ell_max: float) -> tuple[np.ndarray, np.ndarray, str]:
    """The signal C_ℓ table used by Wiener (and the Gaussian prior): file or jax-cosmo Limber."""
    if config.wiener.cl_file:
        ell, cl = read_cl_file(config.wiener.cl_file)
        return ell, cl, f"file {config.wiener.cl_file}"
    ell = np.geomspace(1.0, max(ell_max * 1.5, 100.0), 64)
    return ell, kappa_cl(config.cosmology, config.sources, ell), "jax-cosmo Limber halofit"


def mode_variance_on(ell_tab: np.ndarray, cl_tab: np.ndarray, ny: int, nx: int, pix: float) -> np.ndarray:
    """Per-mode signal variance s_k = C_ℓ/ΔΩ on an (ny, nx) grid from a C_ℓ table (log-log interp)."""
    from massmap.ops.spectra import cl_on_grid

    return mode_variance(cl_on_grid(ell_tab, cl_tab, ny, nx, pix), pix).astype(np.float32)


def is_uniform(data: ShearData) -> bool:
    """Uniform noise and no mask: the Fourier-space Wiener solution is exact (with pad = 0)."""
    if not data.mask.all():
        return False
    n = data.noise_std
    return bool(np.ptp(n) <= 1e-6 * np.max(n))


def compute_maps(data: ShearData, config: Config, methods: tuple[str, ...], progress: bool = False,
                 cl_table: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[dict, dict]:
    """The κ maps of ``methods`` on the data's grid, and a dict of run information.

    The signal C_ℓ of Wiener and the Gaussian prior is computed once (:func:`signal_cl`), unless the
    caller passes it as ``cl_table`` = (ℓ, C_ℓ) (e.g. for many noise realisations). Posterior methods add KAPPA_MEAN, KAPPA_STD, KAPPA_SAMPLES, KAPPA_MAP and info["diagnostics"]. If
    sampling is interrupted (Ctrl-C) after some samples finished, those are kept, the maps are made from
    them and info["interrupted"] says so.
    """
    pad = config.pad
    pix = data.grid.pixel_size_arcmin
    out: dict[str, np.ndarray] = {}
    info: dict[str, Any] = {}
    ny, nx = data.grid.ny + 2 * pad, data.grid.nx + 2 * pad
    if {"wiener", "posterior", "map"} & set(methods):
        if cl_table is None:
            ell_tab, cl_tab, info["signal_cl"] = signal_cl(config, float(ell_grid(ny, nx, pix).max()))
        else:
            (ell_tab, cl_tab), info["signal_cl"] = cl_table, "table given by the caller"
    if {"posterior", "map"} & set(methods):
        out_post, info_post = posterior_from_data(data, config, methods, progress, (ell_tab, cl_tab))
        out.update(out_post)
        info.update(info_post)
    if "ks" in methods:
        ke, kb = kaiser_squires(jnp.asarray(data.g1), jnp.asarray(data.g2), pad)
        out["KAPPA_KS"], out["KAPPA_KS_B"] = np.asarray(ke), np.asarray(kb)
    if "wiener" in methods:
        s = mode_variance_on(ell_tab, cl_tab, ny, nx, pix)
        info["wiener_cl"] = info["signal_cl"]
        solver = config.wiener.solver
        exact = pad == 0 and is_uniform(data)
        if solver == "fourier" and not exact:
            raise ConfigError("config key 'wiener.solver': 'fourier' needs uniform noise, no mask and pad=0; "
                              "use 'auto' or 'cg'")
        if solver == "fourier" or (solver == "auto" and exact):
            var = float(np.mean(data.noise_std.astype(np.float64) ** 2))
            out["KAPPA_WIENER"] = np.asarray(wiener_fourier(jnp.asarray(data.g1), jnp.asarray(data.g2), s, var))
            info["wiener_solver"] = "fourier (closed form)"
        else:
            with np.errstate(divide="ignore"):
                ninv = np.where(data.mask > 0, 1.0 / data.noise_std.astype(np.float64) ** 2, 0.0)
            kappa, cg = wiener_cg(pad_map(jnp.asarray(data.g1), pad), pad_map(jnp.asarray(data.g2), pad),
                                  pad_map(jnp.asarray(ninv, jnp.float32), pad), s,
                                  tol=config.wiener.tol, max_iter=config.wiener.max_iter)
            out["KAPPA_WIENER"] = np.asarray(crop_map(kappa, pad))
            info.update(wiener_solver="conjugate gradients", wiener_iterations=cg.iterations,
                        wiener_residual=cg.residual, wiener_converged=cg.converged)
            if not cg.converged:
                print(f"massmap: warning: Wiener CG stopped after {cg.iterations} iterations with relative "
                      f"residual {cg.residual:.2e} > wiener.tol={config.wiener.tol:g}", file=sys.stderr)
    return out, info


def posterior_from_data(data: ShearData, config: Config, methods: tuple[str, ...], progress: bool,
                        cl_table: tuple[np.ndarray, np.ndarray]):
    """Posterior samples/mean/std and MAP map with the configured prior (massmap.pipeline.posterior).

    ``cl_table`` = (ℓ, C_ℓ) defines the Gaussian prior (and the preconditioner's fallback spectrum).
    """
    from massmap.pipeline.posterior import posterior_maps, resolve_prior

    pix = data.grid.pixel_size_arcmin
    ell_tab, cl_tab = cl_table
    prior = resolve_prior(config)
    key = jax.random.fold_in(jax.random.PRNGKey(config.seed), 2)  # the named key of posterior sampling
    finished: list[np.ndarray] = []
    wanted = tuple(m for m in ("posterior", "map") if m in methods)
    info: dict[str, Any] = {}
    try:
        res = posterior_maps(data.g1, data.g2, data.noise_std, data.mask, pix, config.pad, config, key,
                             lambda a, b: mode_variance_on(ell_tab, cl_tab, a, b, pix), prior=prior,
                             methods=wanted, progress=progress, on_samples=finished.append)
    except KeyboardInterrupt:
        if not finished:
            raise
        samples = np.concatenate(finished)
        res = {"KAPPA_SAMPLES": samples, "KAPPA_MEAN": samples.mean(0),
               "KAPPA_STD": samples.std(0, ddof=1) if len(samples) > 1 else np.zeros_like(samples[0]),
               "DIAGNOSTICS": {"INTERRUPTED": True, "N_SAMPLES_KEPT": len(samples)}}
        info["interrupted"] = len(samples)
    out = {k: np.asarray(res[k], np.float32) for k in ("KAPPA_MEAN", "KAPPA_STD", "KAPPA_SAMPLES", "KAPPA_MAP")
           if k in res}
    info["diagnostics"] = res.get("DIAGNOSTICS", {})
    if "n_score_evals" in res:
        info["score_evals_per_sample"] = float(res["n_score_evals"])
    return out, info


def diagnostics_table(diag: dict[str, Any]) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Split sampler diagnostics into per-level columns (equal length) and header scalars."""
    arrays = {k: np.asarray(v) for k, v in diag.items() if isinstance(v, np.ndarray) and np.ndim(v) == 1}
    n = max((len(v) for v in arrays.values()), default=0)
    cols = {k: v for k, v in arrays.items() if len(v) == n}
    scalars = {k: v for k, v in diag.items() if k not in cols and np.ndim(v) == 0}
    return cols, scalars


def parse_methods(method: str, allowed: tuple[str, ...] = METHODS, where: str = "") -> tuple[str, ...]:
    """'all' or a comma-separated list of ``allowed`` methods, in canonical order."""
    if method == "all":
        return allowed
    parts = tuple(m.strip() for m in method.split(",") if m.strip())
    bad = [m for m in parts if m not in allowed]
    if bad or not parts:
        culprit = bad[0] if bad else method
        extra = f" {where}" if where and culprit in METHODS else ""
        raise InputError(f"unknown method '{culprit}'{extra}; choose from {', '.join(allowed)} or all")
    return tuple(m for m in allowed if m in parts)


def run_reconstruct(config: Config, input_path: str | Path, output: str | Path, method: str = "all",
                    overwrite: bool = False, plot: bool = True, progress: bool = False) -> dict[str, Any]:
    """Read the input, compute the requested maps, write OUT.fits (+ .config.yaml, .png).

    Raises :class:`Interrupted` after writing the output if Ctrl-C stopped posterior sampling early.
    """
    out_path = check_output(output, overwrite)
    methods = parse_methods(method)
    data = load_shear(input_path, config)
    maps, info = compute_maps(data, config, methods, progress=progress)
    info.update(data.info)
    images = dict(maps)
    images.update(GAMMA1=data.g1, GAMMA2=data.g2, NOISE_STD=data.noise_std, MASK=data.mask)
    inputs = {"input": Path(input_path).name, "methods": ",".join(methods)}
    inputs.update({k: v for k, v in info.items() if k in ("rows_read", "rows_used", "sigma_e", "wiener_iterations",
                                                           "wiener_residual", "score_evals_per_sample")})
    if "interrupted" in info:
        inputs["incomplete"] = f"interrupted: {info['interrupted']} of {config.posterior.n_samples} samples"
    tables, scalars = {}, {}
    if info.get("diagnostics"):
        cols, sc = diagnostics_table(info["diagnostics"])
        if not cols:
            cols = {"LEVEL": np.zeros(0, np.int64)}
        tables["DIAGNOSTICS"], scalars["DIAGNOSTICS"] = cols, sc
    write_maps(out_path, data.grid, images, provenance(config, "reconstruct", inputs), tables, scalars)
    write_config_sidecar(out_path, config)
    if plot:
        shown = {k: v for k, v in maps.items() if v.ndim == 2}
        plot_maps(out_path.with_suffix(".png"), data.grid, shown,
                  title=f"massmap reconstruct: {Path(input_path).name}", mask=None)
    info["output"] = str(out_path)
    info["maps"] = list(maps)
    info["grid"] = data.grid
    if "interrupted" in info:
        raise Interrupted(f"interrupted: wrote {out_path} with the {info['interrupted']} posterior samples "
                          f"finished (of {config.posterior.n_samples} asked for)")
    return info
