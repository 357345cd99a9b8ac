"""Noise realisations of a reconstruction, through its own solvers: per-pixel noise σ of the KS and
Wiener maps and E/B spectra per realisation (the S/N maps and the B-mode null test of ``summarize``)."""
from __future__ import annotations

import dataclasses
from typing import Any

import jax
import numpy as np
from tqdm import tqdm

from massmap.config import Config
from massmap.io.reconstruction import Reconstruction
from massmap.ops.spectra import ell_grid
from massmap.summarize import stats

NOISE_STREAM = 101  # fold_in tags of the realisation keys (named streams keep draws independent)
SIGNAL_STREAM = 102


def _signal_table(rcfg: Config, ny: int, nx: int, pix: float) -> tuple[np.ndarray, np.ndarray]:
    """The reconstruction's signal C_ℓ table, with the same ℓ range as compute_maps asks for."""
    from massmap.pipeline.inputs import signal_cl

    ell, cl, _ = signal_cl(rcfg, float(ell_grid(ny + 2 * rcfg.pad, nx + 2 * rcfg.pad, pix).max()))
    return np.asarray(ell, np.float64), np.asarray(cl, np.float64)


def _noise_config(rcfg: Config, chunk: int) -> Config:
    """The recorded config with CG's tolerance divided by √chunk: CG runs jointly on a chunk, so each
    member meets wiener.tol."""
    return dataclasses.replace(rcfg, wiener=dataclasses.replace(rcfg.wiener, tol=rcfg.wiener.tol / np.sqrt(chunk)))


def noise_statistics(recon: Reconstruction, config: Config, rcfg: Config, edges: np.ndarray,
                     progress: bool = True) -> dict[str, Any]:
    """Per-pixel noise σ of the (smoothed) KS E/B and Wiener maps, and E/B spectra per realisation.

    Noise-only binned shear (summarize.noise_method) goes through the reconstruction's own solvers
    (massmap.pipeline.reconstruct.compute_maps with the recorded config), summarize.noise_chunk
    realisations at a time. With summarize.null_signal, the shear of a Gaussian κ field with the
    recorded signal C_ℓ is added to each noise realisation for a second set of KS B-mode spectra,
    which then include the E→B leakage of the mask and the map edges.
    """
    from massmap.ops.shear import kaiser_squires
    from massmap.ops.spectra import cl_on_grid
    from massmap.binning import BinnedShear
    from massmap.pipeline.reconstruct import compute_maps

    sc = config.summarize
    g = recon.grid
    pix = g.pixel_size_arcmin
    methods = ("ks", "wiener") if "wiener" in recon.methods else ("ks",)
    sig = sc.smoothing_arcmin / pix
    root = jax.random.PRNGKey(config.seed)
    key, key_signal = jax.random.fold_in(root, NOISE_STREAM), jax.random.fold_in(root, SIGNAL_STREAM)
    im = recon.images
    spec = lambda m: stats.masked_spectrum(m, pix, edges, recon.mask)[1]  # noqa: E731
    sums: dict[str, tuple] = {}
    spectra: dict[str, list] = {"e": [], "b": [], "b_signal": []}
    chunk = min(sc.noise_chunk, sc.n_noise)
    need_table = "wiener" in methods and not rcfg.wiener.cl_file
    table = _signal_table(rcfg, g.ny, g.nx, pix) if (sc.null_signal or need_table) else None
    cl_grid = None
    if sc.null_signal:
        cl_grid = cl_on_grid(*table, g.ny + 2 * rcfg.pad, g.nx + 2 * rcfg.pad, pix)
    bar = tqdm(total=sc.n_noise, desc="noise realisations", unit="map", disable=not progress, leave=False)
    ncfg = _noise_config(rcfg, chunk)
    for start in range(0, sc.n_noise, chunk):
        idx = np.arange(start, min(start + chunk, sc.n_noise))
        n1, n2 = stats.shear_noise_realisations(key, im["GAMMA1"], im["GAMMA2"], im["NOISE_STD"],
                                                recon.mask, idx, sc.noise_method)
        data = BinnedShear(g, n1, n2, np.asarray(im["NOISE_STD"], np.float32), recon.mask.astype(np.uint8))
        out, _ = compute_maps(data, ncfg, methods, cl_table=table if need_table else None)
        maps = {"ks": stats.gaussian_smooth(out["KAPPA_KS"], sig),
                "ks_b": stats.gaussian_smooth(out["KAPPA_KS_B"], sig)}
        if "KAPPA_WIENER" in out:
            maps["wiener"] = np.asarray(out["KAPPA_WIENER"], np.float64)
        for k, v in maps.items():
            s1, s2 = sums.get(k, (0.0, 0.0))
            sums[k] = (s1 + v.sum(axis=0), s2 + (v * v).sum(axis=0))
        spectra["e"].append(spec(out["KAPPA_KS"]))
        spectra["b"].append(spec(out["KAPPA_KS_B"]))
        if cl_grid is not None:
            s1, s2 = stats.signal_shear_realisations(key_signal, cl_grid, pix, rcfg.pad, recon.mask, idx)
            spectra["b_signal"].append(spec(np.asarray(kaiser_squires(n1 + s1, n2 + s2, rcfg.pad)[1])))
        bar.update(len(idx))
    bar.close()
    n = sc.n_noise
    std = {k: np.sqrt(np.maximum(s2 - s1 * s1 / n, 0.0) / (n - 1)) for k, (s1, s2) in sums.items()}
    res = {"std": std, "cl_e": np.concatenate(spectra["e"]), "cl_b": np.concatenate(spectra["b"])}
    if cl_grid is not None:
        res["cl_b_signal"] = np.concatenate(spectra["b_signal"])
    return res
