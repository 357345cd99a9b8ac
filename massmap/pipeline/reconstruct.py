"""``massmap reconstruct``: shear catalog or binned shear map → Kaiser-Squires / Wiener / posterior κ maps."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import jax.numpy as jnp
import numpy as np

from massmap.binning import BinnedShear
from massmap.config import Config
from massmap.errors import SamplingError
from massmap.io.diagnostics import diagnostics_table
from massmap.io.maps import write_maps
from massmap.io.output import check_output, provenance, write_config_sidecar
from massmap.plots.maps import plot_maps
from massmap.ops.shear import crop_map, kaiser_squires, pad_map
from massmap.ops.spectra import ell_grid
from massmap.ops.wiener import wiener_cg, wiener_fourier
from massmap.pipeline.inputs import load_flat_shear, parse_methods, signal_prior
from massmap.pipeline.posterior import (PosteriorRun, posterior_key, posterior_maps, prior_pixel_scale,
                                       resolve_prior)
from massmap.pipeline.wiener import uniform_noise, use_closed_form, warn_unconverged

METHODS = ("ks", "wiener", "posterior", "map")
class Interrupted(KeyboardInterrupt):
    """Ctrl-C during posterior sampling; the output was written with the samples finished so far."""


def compute_maps(shear: BinnedShear, config: Config, methods: tuple[str, ...], progress: bool = False,
                 cl_table: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[dict, dict]:
    """The κ maps of ``methods`` on the shear's grid, and a dict of run information.

    The signal C_ℓ of Wiener and the Gaussian prior is computed once, unless the caller passes it as
    ``cl_table`` = (ℓ, C_ℓ) (e.g. for many noise realisations). Posterior methods add KAPPA_MEAN,
    KAPPA_STD, KAPPA_MEAN_ERR (the mean's Monte-Carlo standard error, when known), KAPPA_SAMPLES, KAPPA_MAP, and
    info["posterior"] (a :class:`PosteriorRun`); if sampling was
    interrupted (Ctrl-C) after some samples finished, the maps are made from those and
    info["interrupted"] holds their number.
    """
    pad = config.pad
    pix = shear.grid.pixel_size_arcmin
    out: dict[str, np.ndarray] = {}
    info: dict[str, Any] = {}
    ny, nx = shear.grid.ny + 2 * pad, shear.grid.nx + 2 * pad
    if {"wiener", "posterior", "map"} & set(methods):
        signal = signal_prior(config, pix, float(ell_grid(ny, nx, pix).max()), cl_table)
        info["signal_cl"] = signal.source
    wanted = tuple(m for m in ("posterior", "map") if m in methods)
    if wanted:
        prior = resolve_prior(config.posterior, signal, pix)
        run = posterior_maps(shear, config.posterior, pad, posterior_key(config.seed), prior, reference=signal,
                             methods=wanted, progress=progress)
        info["posterior"] = run
        if run.posterior is not None:
            out.update(KAPPA_MEAN=run.posterior.mean, KAPPA_STD=run.posterior.std)
            if run.posterior.mean_error is not None:  # two independent units at least
                out["KAPPA_MEAN_ERR"] = run.posterior.mean_error
            out["KAPPA_SAMPLES"] = run.posterior.samples
            if run.posterior.info is not None:
                info["score_evals_per_sample"] = run.posterior.score_evals_per_sample
        if run.interrupted:
            info["interrupted"] = len(run.posterior.samples)
        if run.map is not None:
            out["KAPPA_MAP"] = run.map.kappa
    if "ks" in methods:
        ke, kb = kaiser_squires(jnp.asarray(shear.g1), jnp.asarray(shear.g2), pad)
        out["KAPPA_KS"], out["KAPPA_KS_B"] = np.asarray(ke), np.asarray(kb)
    if "wiener" in methods:
        s = signal.mode_variance(ny, nx)
        info["wiener_cl"] = info["signal_cl"]
        exact = pad == 0 and uniform_noise(shear.noise_std, shear.mask)
        if use_closed_form(config.wiener.solver, exact, "the Fourier closed form", "uniform noise, no mask and pad=0"):
            var = float(np.mean(shear.noise_std.astype(np.float64) ** 2))
            out["KAPPA_WIENER"] = np.asarray(wiener_fourier(jnp.asarray(shear.g1), jnp.asarray(shear.g2), s, var))
            info["wiener_solver"] = "fourier (closed form)"
        else:
            with np.errstate(divide="ignore"):
                ninv = np.where(shear.mask > 0, 1.0 / shear.noise_std.astype(np.float64) ** 2, 0.0)
            kappa, cg = wiener_cg(pad_map(jnp.asarray(shear.g1), pad), pad_map(jnp.asarray(shear.g2), pad),
                                  pad_map(jnp.asarray(ninv, jnp.float32), pad), s,
                                  tol=config.wiener.tol, max_iter=config.wiener.max_iter)
            out["KAPPA_WIENER"] = np.asarray(crop_map(kappa, pad))
            info.update(wiener_solver="conjugate gradients", wiener_iterations=cg.iterations,
                        wiener_residual=cg.residual, wiener_converged=cg.converged)
            warn_unconverged(cg, config.wiener.tol)
    return out, info


def check_finite(images: dict[str, np.ndarray], noise_std: np.ndarray, mask: np.ndarray,
                 observed_only: bool = False) -> None:
    """SamplingError (exit 3, nothing written) when a map holds NaN or inf (in the observed pixels only
    with ``observed_only``: HEALPix maps), or the noise is 0 where there is data: valid-looking input
    whose numbers leave the range of float32 arithmetic (a noise of 1e-30 per pixel, noise.sigma_e of
    1e-300, C_ell of 1e308)."""
    seen = mask > 0

    def finite(a) -> bool:
        a = np.asarray(a)
        return a.dtype.kind != "f" or bool(np.all(np.isfinite(a[..., seen] if observed_only else a)))

    bad = [k for k, a in images.items() if not finite(a)]
    if not np.all(noise_std[seen] > 0) and "NOISE_STD" not in bad:
        bad.append("NOISE_STD")  # zero noise where there is data: an infinite weight (float32 underflow)
    if bad:
        noise = noise_std[seen]
        raise SamplingError(f"{', '.join(bad)} came out with NaN, inf or zero noise: the input's numbers are beyond "
                            f"what float32 arithmetic holds (NOISE_STD from {noise.min():.3g} to "
                            f"{noise.max():.3g} per pixel; check the noise, the weights and the signal C_ell)")


def run_reconstruct(config: Config, input_path: str | Path, output: str | Path, method: str = "all",
                    overwrite: bool = False, plot: bool = True, progress: bool = False) -> dict[str, Any]:
    """Read the input, compute the requested maps, write OUT.fits (+ .config.yaml, .png).

    Raises :class:`Interrupted` after writing the output if Ctrl-C stopped posterior sampling early.
    """
    out_path = check_output(output, overwrite)
    methods = parse_methods(method, METHODS)
    shear, info = load_flat_shear(input_path, config, prior_pixel_scale(config.posterior, methods))
    maps, run_info = compute_maps(shear, config, methods, progress=progress)
    info.update(run_info)
    images = dict(maps)
    images.update(GAMMA1=shear.g1, GAMMA2=shear.g2, NOISE_STD=shear.noise_std, MASK=shear.mask)
    check_finite(images, shear.noise_std, shear.mask)
    inputs = {"input": Path(input_path).name, "methods": ",".join(methods)}
    inputs.update({k: v for k, v in info.items() if k in ("rows_read", "rows_used", "sigma_e", "wiener_iterations",
                                                           "wiener_residual", "score_evals_per_sample")})
    if "interrupted" in info:
        inputs["incomplete"] = f"interrupted: {info['interrupted']} of {config.posterior.n_samples} samples"
    tables, scalars = {}, {}
    run: PosteriorRun | None = info.get("posterior")
    if run is not None:
        cols, cards = diagnostics_table(run.posterior, run.map, run.interrupted)
        if cols:
            tables["DIAGNOSTICS"], scalars["DIAGNOSTICS"] = cols, cards
    write_maps(out_path, shear.grid, images, provenance(config, "reconstruct", inputs), tables, scalars)
    write_config_sidecar(out_path, config)
    if plot:
        shown = {k: v for k, v in maps.items() if v.ndim == 2}
        plot_maps(out_path.with_suffix(".png"), shear.grid, shown,
                  title=f"massmap reconstruct: {Path(input_path).name}", mask=None)
    info["output"] = str(out_path)
    info["maps"] = list(maps)
    info["grid"] = shear.grid
    if "interrupted" in info:
        raise Interrupted(f"interrupted: wrote {out_path} with the {info['interrupted']} posterior samples "
                          f"finished (of {config.posterior.n_samples} asked for)")
    return info
