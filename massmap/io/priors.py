"""Score-prior files (``PRIOR.h5``, from ``massmap train-prior``) and their loader.

Layout (format ``massmap.score_prior``, version 1):

- group ``params``: the network weights (EMA of the training parameters, spectral normalisation
  folded into the kernels), nested as Haiku module path / parameter name;
- datasets ``cl_ell``, ``cl`` (hybrid priors only): the training C_ℓ table of the Gaussian term;
- group ``history``: loss curves (``train_step``, ``train_loss``, ``val_step``, ``val_loss``);
- root attributes: ``format``, ``format_version``, ``pixel_size_arcmin``, ``npix`` (training patch
  side), ``sigma_min``, ``sigma_max`` (κ units), ``sigma_distribution``, ``kappa_mean``,
  ``kappa_std`` (normalisation), ``hybrid``;
- group ``meta``: JSON string datasets ``architecture``, ``provenance`` (version, command, date,
  seed, resolved config), ``training`` (data files, rebinning, the train/validation split, steps) and
  ``metrics`` (validation losses, per σ decade).

:func:`load_prior` reads the parameters into a :class:`massmap.prior.learned.LearnedPrior` (or
``HybridPrior``), whose ``score(kappa, sigma)`` is the learned ∇_κ log p_σ(κ) in κ units; the network
itself is assembled in :mod:`massmap.prior.learned`, this module only reads and writes files.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import h5py
import jax.numpy as jnp
import numpy as np

from massmap.io.inputs import check_file, reason
from massmap.io.output import InputError, atomic_path
from massmap.prior.dsm import RESIDUALS
from massmap.prior.learned import HybridPrior, LearnedPrior, parameter_template
from massmap.prior.unet import UNetSpec

FORMAT = "massmap.score_prior"
FORMAT_VERSION = 1
JSON_ATTRS = ("architecture", "provenance", "training", "metrics")
MAX_NPIX = 4096  # a training patch side beyond this is a damaged attribute, not a prior


def spec_to_dict(spec: UNetSpec) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in spec._asdict().items()}


def write_prior(path: str | Path, params, spec: UNetSpec, *, pixel_size_arcmin: float, npix: int,
                sigma_min: float, sigma_max: float, sigma_distribution: str, kappa_mean: float,
                kappa_std: float, cl_table: tuple[np.ndarray, np.ndarray] | None,
                history: dict[str, np.ndarray], info: dict[str, Any]) -> Path:
    """Write a prior file atomically. ``params`` must be for ``spec`` with spectral_norm=False.

    ``info`` holds the JSON-able dicts ``architecture`` (extra notes), ``provenance``, ``training``
    and ``metrics``.
    """
    path = Path(path)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            g = f.create_group("params")
            for module, leaves in params.items():
                for name, arr in leaves.items():
                    g.create_dataset(f"{module}/{name}", data=np.asarray(arr, np.float32))
            if cl_table is not None:
                f.create_dataset("cl_ell", data=np.asarray(cl_table[0], np.float64))
                f.create_dataset("cl", data=np.asarray(cl_table[1], np.float64))
            h = f.create_group("history")
            for name, arr in history.items():
                h.create_dataset(name, data=np.asarray(arr))
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["pixel_size_arcmin"] = float(pixel_size_arcmin)
            f.attrs["npix"] = int(npix)
            f.attrs["sigma_min"] = float(sigma_min)
            f.attrs["sigma_max"] = float(sigma_max)
            f.attrs["sigma_distribution"] = sigma_distribution
            f.attrs["kappa_mean"] = float(kappa_mean)
            f.attrs["kappa_std"] = float(kappa_std)
            f.attrs["hybrid"] = cl_table is not None
            arch = dict(info.get("architecture", {}))
            arch.update(spec_to_dict(spec))
            m = f.create_group("meta")  # JSON texts as string datasets (no 64 kB attribute limit)
            m.create_dataset("architecture", data=json.dumps(arch))
            for key in ("provenance", "training", "metrics"):
                m.create_dataset(key, data=json.dumps(info.get(key, {}), default=_json_default))
    return path


def _json_default(obj):
    if isinstance(obj, (np.generic,)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")


def _read(path: Path):
    check_file(path, "prior")  # exists, is a regular file (a pipe would block h5py), can be read
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT or "params" not in f:
                raise InputError(f"'{path}' is not a massmap prior (made by massmap train-prior)")
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
            params: dict[str, dict[str, np.ndarray]] = {}

            def visit(name, obj):
                if isinstance(obj, h5py.Dataset):
                    module, leaf = name.rsplit("/", 1)
                    params.setdefault(module, {})[leaf] = np.asarray(obj[()], np.float32)

            f["params"].visititems(visit)
            tables = {n: np.asarray(f[n][()]) for n in ("cl_ell", "cl") if n in f}
            texts = {n: f["meta"][n][()] for n in JSON_ATTRS if "meta" in f and n in f["meta"]}
            attrs.update({n: (t.decode() if isinstance(t, bytes) else str(t)) for n, t in texts.items()})
            history = {n: np.asarray(f["history"][n][()]) for n in f["history"]} if "history" in f else {}
    except InputError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError, TypeError, MemoryError) as err:
        raise InputError(f"'{path}' is not a readable massmap prior ({reason(err)})") from None
    return attrs, params, tables, history


def prior_pixel_size(path: str | Path) -> float:
    """The training pixel scale (arcmin) recorded in a prior file, reading only its attributes."""
    path = check_file(path, "prior")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise InputError(f"'{path}' is not a massmap prior (made by massmap train-prior)")
            pix = float(f.attrs["pixel_size_arcmin"])
    except InputError:
        raise
    except (OSError, KeyError, ValueError, TypeError) as err:
        raise InputError(f"'{path}' is not a readable massmap prior ({reason(err)})") from None
    if not (np.isfinite(pix) and pix > 0):
        raise InputError(f"'{path}' is not a valid massmap prior (pixel_size_arcmin {pix:g})")
    return pix


def shipped_priors(folder: str | Path) -> list[tuple[Path, float]]:
    """The prior files (``*.h5``) in ``folder`` with their pixel scales, sorted by name."""
    folder = Path(folder)
    return [(p, prior_pixel_size(p)) for p in sorted(folder.glob("*.h5"))] if folder.is_dir() else []


def load_prior(path: str | Path) -> LearnedPrior:
    """Read a prior written by ``massmap train-prior`` into a :class:`~massmap.prior.learned.LearnedPrior`
    (or :class:`~massmap.prior.learned.HybridPrior`); InputError (one line) for any other file."""
    path = Path(path)
    attrs, params, tables, history = _read(path)
    if int(attrs.get("format_version", 0)) > FORMAT_VERSION:
        raise InputError(f"prior '{path}' has format version {attrs['format_version']}; this massmap "
                         f"reads up to {FORMAT_VERSION}")
    try:
        meta = {k: (json.loads(attrs[k]) if k in JSON_ATTRS else
                    (v.item() if isinstance(v, np.generic) else v)) for k, v in attrs.items()}
        arch = meta["architecture"]
        spec = UNetSpec(channels=tuple(int(c) for c in arch["channels"]),
                        blocks_per_level=int(arch["blocks_per_level"]), embed_dim=int(arch["embed_dim"]),
                        spectral_norm=False, spectral_norm_bound=float(arch["spectral_norm_bound"]),
                        n_fourier=int(arch["n_fourier"]), residual=str(arch.get("residual", "edm")))
        pix, npix = float(meta["pixel_size_arcmin"]), int(meta["npix"])
        mean, std = float(meta["kappa_mean"]), float(meta["kappa_std"])
        smin, smax = float(meta["sigma_min"]), float(meta["sigma_max"])
        hybrid = bool(meta["hybrid"])
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"'{path}' is not a valid massmap prior (bad attribute: {err})") from None
    if not (np.all(np.isfinite([pix, mean, std, smin, smax])) and pix > 0 and std > 0 and 0 < smin < smax
            and 1 <= npix <= MAX_NPIX and 1 <= len(spec.channels) <= 8 and 1 <= spec.blocks_per_level <= 16
            and all(1 <= c <= 4096 for c in spec.channels) and spec.residual in RESIDUALS):
        raise InputError(f"'{path}' is not a valid massmap prior (attributes out of range: npix {npix}, pixel "
                         f"{pix:g}, kappa_std {std:g}, sigma {smin:g}..{smax:g}, channels {list(spec.channels)}, "
                         f"residual {spec.residual!r})")
    if hybrid and set(tables) != {"cl_ell", "cl"}:
        raise InputError(f"'{path}' is not a valid massmap prior (hybrid prior without its C_ell table)")
    template = parameter_template(spec, npix)
    for module, leaves in template.items():
        for name, arr in leaves.items():
            got = params.get(module, {}).get(name)
            if got is None or got.shape != arr.shape or not np.all(np.isfinite(got)):
                raise InputError(f"'{path}' is not a valid massmap prior (parameter {module}/{name} "
                                 "missing, mis-shaped or not finite)")
    params = {m: {n: jnp.asarray(params[m][n]) for n in template[m]} for m in template}
    meta["history"] = history
    meta["path"] = str(path)
    common = dict(spec=spec, params=params, pixel_size_arcmin=pix, npix=npix, sigma_min=smin, sigma_max=smax,
                  kappa_mean=mean, kappa_std=std, name=str(path), metadata=meta)
    if hybrid:
        meta["cl_ell"], meta["cl"] = tables["cl_ell"], tables["cl"]
        return HybridPrior(**common, cl_ell=tables["cl_ell"], cl=tables["cl"])
    return LearnedPrior(**common)
