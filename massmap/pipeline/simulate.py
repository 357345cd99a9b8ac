"""``massmap simulate``: write a training set of convergence maps to HDF5 (see docs/simulate.md).

Kinds: ``grf`` (Gaussian, exactly the Limber C_ℓ of the cosmology and n(z) on the grid),
``lognormal`` (zero-mean shifted lognormal with the same C_ℓ, sim/lognormal.py) and ``pm``
(particle-mesh simulation and ray tracing, sim/raytrace.py). Map i uses the key
``jax.random.fold_in(PRNGKey(seed), i)``, so any map can be regenerated alone.

The map samplers (config → one function per kind, the config edge of the numerics) are in
massmap.pipeline.map_samplers.

Files: a run writes ``OUT.part`` and renames it to ``OUT`` when all maps are done, after the
preview and the config sidecar, so an existing ``OUT`` is always complete. An interrupted run (Ctrl-C,
SIGTERM, SIGKILL, a full disk) leaves ``OUT.part`` holding its finished maps, which ``resume=True``
continues; a map is counted (attribute ``n_done``) only after it is flushed to disk. Resuming a
finished ``OUT`` (e.g. with a larger ``simulate.n_maps``) continues a copy of it in ``OUT.part``.

Several devices or processes (massmap.parallel) share the maps by index: massmap.pipeline.simulate_parallel.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from massmap import __version__
from massmap.config import dump_yaml, to_dict
from massmap import interrupts, parallel
from massmap.io.datasets import MapSetWriter, growable, read_maps, read_metadata
from massmap.io.nz import read_nz_file
from massmap.io.output import InputError, atomic_path, provenance, write_config_sidecar, writing
from massmap.io.space import ensure_space
from massmap.pipeline.map_samplers import make_sampler
from massmap.pipeline.simulate_parallel import generate_maps, simulate_distributed
from massmap.plots.training import write_preview

COSMOLOGY_KEYS = ("Omega_c", "Omega_b", "h", "sigma8", "n_s", "w0")
class Interrupted(KeyboardInterrupt):
    """The run was interrupted; the message says what was kept and how to continue."""


def partial_path(output: str | Path) -> Path:
    """Where an unfinished fresh run is written: ``OUT.part`` beside ``OUT``."""
    p = Path(output)
    return p.with_name(p.name + ".part")


def preview_path(output: str | Path) -> Path:
    """The PNG preview beside the output: ``maps.h5`` → ``maps.png``."""
    p = Path(output)
    return p.with_name(p.stem + ".png")


def _source_attrs(sources) -> tuple[dict[str, Any], dict[str, np.ndarray], dict[str, Any]]:
    """Attributes/tables describing n(z) (the ``sources`` section), and the input files to record in provenance."""
    if sources.nz == "delta":
        return {"nz": "delta", "z_source": sources.z_source}, {}, {}
    if sources.nz == "smail":
        return ({"nz": "smail", "smail_a": sources.smail_a, "smail_b": sources.smail_b,
                 "smail_z0": sources.smail_z0}, {}, {})
    z, nz = read_nz_file(sources.nz_file)
    return {"nz": "file", "nz_file": str(sources.nz_file)}, {"nz_z": z, "nz_pdf": nz}, \
        {"nz_file": str(Path(sources.nz_file).resolve())}


def _flat(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, dict):
        out = {}
        for k, v in tree.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: tree}


def _relevant(config_dict: dict) -> dict[str, Any]:
    """The config keys that determine the maps' values (all but simulate.n_maps and unused kinds)."""
    kind = config_dict.get("simulate", {}).get("kind")
    flat = _flat({k: config_dict.get(k) for k in ("seed", "cosmology", "sources", "simulate")})
    drop = {"simulate.n_maps"}
    if kind != "lognormal":
        drop.add("simulate.lognormal_shift")
    return {k: v for k, v in flat.items()
            if k not in drop and not (kind != "pm" and k.startswith("simulate.pm."))}


def check_resumable(path: Path, config) -> int:
    """Raise a one-line InputError unless ``path`` is a map set made with a matching config."""
    meta = read_metadata(path)
    recorded = meta.get("config") or {}
    if not isinstance(recorded, dict) or not all(isinstance(recorded.get(k) or {}, dict)
                                                 for k in ("cosmology", "sources", "simulate")):
        raise InputError(f"cannot resume '{path}': its recorded config is not a massmap config (damaged); "
                         "pass --overwrite to start again")
    if not growable(path, config.simulate.n_maps):
        raise InputError(f"cannot resume '{path}': its kappa dataset cannot grow to {config.simulate.n_maps} maps "
                         "(not written by massmap simulate); pass --overwrite to start again")
    old = _relevant(recorded)
    new = _relevant(to_dict(config))
    for key in new:
        if old.get(key) != new[key]:
            raise InputError(f"cannot resume '{path}': config key '{key}' differs "
                             f"(file: {old.get(key)!r}, now: {new[key]!r})")
    return int(meta["n_done"])


def _plan(output: Path, overwrite: bool, resume: bool, config) -> tuple[Path, bool]:
    """Decide where to write and whether to append: (path written, append)."""
    if overwrite and resume:
        raise InputError("pass either --overwrite or --resume, not both")
    if output.is_dir():
        raise InputError(f"output '{output}' is a directory")
    if not output.parent.exists():
        raise InputError(f"output folder '{output.parent}' does not exist")
    part = partial_path(output)
    if resume:
        if part.exists():  # an interrupted run (fresh, or adding maps to a finished set)
            check_resumable(part, config)
            return part, True
        if output.exists():  # add maps to a finished set: continue a copy, so OUT stays complete
            n_done = check_resumable(output, config)
            if n_done > config.simulate.n_maps:
                raise InputError(f"map set '{output}' already holds {n_done} maps, more than "
                                 f"simulate.n_maps={config.simulate.n_maps}")
            with atomic_path(part, keep=True) as tmp:
                shutil.copyfile(output, tmp)
            return part, True
        return part, False
    if output.exists() and not overwrite:
        raise InputError(f"output '{output}' exists; pass --overwrite to replace it or --resume to continue it")
    if part.exists() and not overwrite:
        raise InputError(f"'{part}' holds an interrupted run; pass --resume to continue it or --overwrite "
                         "to start again")
    return part, False


def run_simulate(config, output: str | Path, overwrite: bool = False, resume: bool = False,
                 progress: bool = True) -> Path:
    """Write ``config.simulate.n_maps`` maps to the HDF5 map set ``output``; returns its path.

    Also writes ``OUT.config.yaml`` (resolved config) and ``OUT.png`` (preview). Raises
    :class:`Interrupted` (a KeyboardInterrupt) after closing the file when interrupted.
    """
    from tqdm.auto import tqdm

    sim = config.simulate
    output = Path(output)
    target, append = _plan(output, overwrite, resume, config)
    sampler = make_sampler(config)  # every input error surfaces here, before any file is made

    src_attrs, tables, inputs = _source_attrs(config.sources)
    prov = provenance(config, "simulate", inputs)
    attrs: dict[str, Any] = {
        "kind": sim.kind, "npix": sim.npix, "pixel_size_arcmin": sim.pixel_size_arcmin,
        "nonlinear": sim.nonlinear, "seed": config.seed, "massmap_version": __version__,
        "key_rule": "jax.random.fold_in(jax.random.PRNGKey(seed), i)",
        "units": "dimensionless convergence; axis -1 = x, axis -2 = y",
        **{k: getattr(config.cosmology, k) for k in COSMOLOGY_KEYS}, **src_attrs, **sampler.attrs,
        "config": dump_yaml(config), "provenance": prov, "date": prov["date"], "complete": False,
    }
    tables = {**tables, "theory_ell": sampler.ell, "theory_cl": sampler.cl}

    def finish(path: Path, first: np.ndarray) -> None:
        write_config_sidecar(path, config)
        write_preview(preview_path(path), first, sim.pixel_size_arcmin, sim.kind,
                      sampler.attrs.get("lognormal_shift"), sampler.attrs.get("pixel_variance"))

    if parallel.process_count() > 1:  # process p makes maps i ≡ p (mod P); process 0 merges them
        return simulate_distributed(config, sampler, output, target, append, attrs, tables, overwrite, resume,
                                    progress, lambda p: finish(p, read_maps(p, slice(0, 64))[0]))
    if not append and target.exists():
        target.unlink()  # a stale partial file when overwriting

    bar = tqdm(total=sim.n_maps, desc=f"simulate {sim.kind}", unit="map", disable=not progress)
    steps = None
    if sampler.n_steps and progress:
        steps = tqdm(total=sampler.n_steps, desc="PM steps", unit="step", leave=False, position=1)

    def step_progress(done: int, total: int) -> None:
        if steps is not None:
            steps.total, steps.n = total, done
            steps.refresh()

    done = [0]  # maps on disk in `target`, for the messages below

    def kept(what: str) -> str:
        return (f"{what} after {done[0]} of {sim.n_maps} maps; '{target}' keeps them; rerun with --resume "
                "to continue")

    try:
        with writing(target):  # room for the maps still to come, or a one-line error before any file
            done[0] = read_metadata(target)["n_done"] if append else 0
            ensure_space(target, (sim.n_maps - done[0]) * sim.npix**2 * 4)
        with writing(target), MapSetWriter(target, sim.n_maps, sim.npix, attrs, tables, append=append) as writer:
            start = done[0] = writer.n_done
            bar.update(start)
            try:
                with interrupts.unwrapped():  # a stop that C code disguised is still a stop
                    for i, kappa in generate_maps(sampler, config.seed, range(start, sim.n_maps), step_progress):
                        writer.write_map(i, kappa)
                        done[0] = writer.n_done
                        bar.update(1)
                        if steps is not None:
                            steps.reset(total=sampler.n_steps)
            finally:
                bar.close()
                if steps is not None:
                    steps.close()
            writer.set_attrs(complete=True)
            first = np.asarray(writer.file["kappa"][: min(sim.n_maps, 64)])
        # the files beside OUT first and OUT last: once OUT exists, everything is written
        finish(output, first)
        with writing(output):
            os.replace(target, output)
    except KeyboardInterrupt:
        if not target.exists():
            raise
        raise Interrupted(kept("interrupted")) from None
    except InputError as err:
        if not target.exists() or done[0] == 0:
            raise
        raise InputError(f"{err}; {kept('stopped')}") from None
    return output
