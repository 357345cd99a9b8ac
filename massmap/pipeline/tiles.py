"""A wide-field posterior as a batch of work items: plan the tiles, run each alone, merge the mosaic.

The tiled HEALPix posterior (:mod:`massmap.pipeline.reconstruct_tiles`) split for job arrays::

    massmap tiles plan CAT.fits -o RUN/ --config C.yaml   # RUN/plan.json: config, catalog hash, tiles
    massmap tiles run RUN/ --task-index I                  # RUN/tiles/tile-0000I.h5 (default: $SLURM_ARRAY_TASK_ID)
    massmap tiles merge RUN/ -o OUT.fits                   # the same file as the serial reconstruct

Guarantees:

- *Same numbers.* Tile I runs exactly the computation of the serial run (same plan, key
  fold_in(posterior key, I)); its reprojected values are stored in float64 and the merge adds them in
  tile order, so the mosaic equals ``reconstruct --geometry healpix --method posterior`` bit for bit.
- *Only what is missing.* A task whose part exists and belongs to the plan returns at once; parts are
  written atomically (temporary name, then rename), so a killed task leaves no part.
- *One writer per item.* A task holds the output lock of its part (massmap.io.locks: a flock on
  ``.tile-0000I.h5.lock``) while it runs; a second task on the same item fails with a one-line error
  naming the holder's pid. The lock dies with its process, so a killed job leaves nothing to clean up.
- *No foreign parts.* Every part records the plan id (a hash of the resolved config, the catalog's
  content and the tile list); the merge refuses missing, foreign or damaged parts, naming them.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import socket
import time
from pathlib import Path
from typing import Any

import numpy as np

from massmap import __version__
from massmap.config import Config, load_config, to_dict
from massmap.errors import ConfigError, InputError
from massmap.io.locks import is_locked, output_lock
from massmap.io.output import atomic_path, check_output
from massmap.pipeline.reconstruct_healpix import (compute_maps_healpix, parse_healpix_methods, read_healpix_shear,
                                                  write_healpix_reconstruction)
from massmap.pipeline.reconstruct_tiles import TILE_METHODS, TileResult, mosaic_tiles, plan_tiles, run_tile

PLAN_FORMAT, PART_FORMAT, FORMAT_VERSION = "massmap.tile_plan", "massmap.tile_part", 1
TASK_ENV = "SLURM_ARRAY_TASK_ID"


def _sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def part_path(run_dir: str | Path, index: int) -> Path:
    return Path(run_dir) / "tiles" / f"tile-{index:05d}.h5"


def plan_survey(config: Config, catalog: str | Path, run_dir: str | Path, method: str = "posterior",
                overwrite: bool = False) -> dict[str, Any]:
    """Write ``RUN/plan.json``: the work items (tiles) of the tiled posterior of ``catalog``."""
    run_dir = Path(run_dir)
    plan_file = run_dir / "plan.json"
    if plan_file.exists() and not overwrite:
        raise InputError(f"plan '{plan_file}' exists; pass --overwrite to replace it (its parts are then foreign)")
    methods = parse_healpix_methods(method)
    if not set(TILE_METHODS) & set(methods):
        raise InputError(f"--method {method}: a tile batch needs posterior and/or map")
    catalog = Path(catalog).resolve()
    _, _, data, _ = read_healpix_shear(catalog, config)
    plan = plan_tiles(data.mask, config, methods)
    tiles = [[g.center_ra, g.center_dec] for g in plan.grids]
    body = {"config": to_dict(config), "catalog": str(catalog), "catalog_sha256": _sha256(catalog),
            "methods": list(methods), "tiles": tiles}
    plan_id = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]
    record = {"format": PLAN_FORMAT, "format_version": FORMAT_VERSION, "plan_id": plan_id,
              "massmap_version": __version__, "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
              "seed": config.seed, "n_tiles": len(tiles), **body}
    if not run_dir.exists():
        if not run_dir.parent.exists():
            raise InputError(f"output folder '{run_dir.parent}' does not exist")
        run_dir.mkdir()
    (run_dir / "tiles").mkdir(exist_ok=True)
    with atomic_path(plan_file) as tmp:
        tmp.write_text(json.dumps(record, indent=1))
    return {"plan": str(plan_file), "plan_id": plan_id, "n_tiles": len(tiles), "methods": methods}


def read_plan(run_dir: str | Path) -> dict[str, Any]:
    """The plan of a tile batch; one-line InputError if it is missing or not one."""
    plan_file = Path(run_dir) / "plan.json"
    if not plan_file.exists():
        raise InputError(f"'{run_dir}' holds no tile plan (plan.json); run 'massmap tiles plan' first")
    try:
        plan = json.loads(plan_file.read_text())
        ok = plan.get("format") == PLAN_FORMAT and isinstance(plan.get("tiles"), list)
    except (ValueError, UnicodeDecodeError, AttributeError):
        ok = False
    if not ok:
        raise InputError(f"'{plan_file}' is not a massmap tile plan")
    return plan


def task_index(index: int | None, n_tiles: int) -> int:
    """``index``, else $SLURM_ARRAY_TASK_ID; InputError when neither is set or it is out of range."""
    if index is None:
        value = os.environ.get(TASK_ENV)
        if value is None:
            raise InputError(f"no task index: pass --task-index or run as a SLURM array task (${TASK_ENV})")
        try:
            index = int(value)
        except ValueError:
            raise InputError(f"${TASK_ENV} is '{value}', not an integer") from None
    if not 0 <= index < n_tiles:
        raise InputError(f"task index {index} is out of range: the plan has {n_tiles} tiles (0 to {n_tiles - 1})")
    return int(index)


def _setup(plan: dict):
    """The config, catalog and tile plan of a plan record (InputError if the catalog changed)."""
    try:
        config = load_config(base=plan["config"])
    except ConfigError as err:
        raise InputError(f"the tile plan's config is not valid here ({err})") from None
    catalog = plan["catalog"]
    if not Path(catalog).exists():
        raise InputError(f"catalog '{catalog}' of the tile plan does not exist")
    if _sha256(catalog) != plan["catalog_sha256"]:
        raise InputError(f"catalog '{catalog}' changed since the tile plan was made; make a new plan")
    cat, sigma_e, data, info = read_healpix_shear(catalog, config)
    tplan = plan_tiles(data.mask, config, plan["methods"])
    if np.asarray([[g.center_ra, g.center_dec] for g in tplan.grids]).tolist() != plan["tiles"]:
        raise InputError("the tiles of the plan do not match its catalog and config; make a new plan")
    return config, cat, sigma_e, data, info, tplan


def read_part(path: Path, plan_id: str, index: int) -> tuple[TileResult | None, dict]:
    """A part file: (tile result or None for an empty tile, its provenance). InputError if not valid."""
    import h5py

    try:
        with h5py.File(path, "r") as f:
            a = dict(f.attrs)
            if a.get("format") != PART_FORMAT:
                raise InputError(f"'{path}' is not a massmap tile part")
            if a.get("plan_id") != plan_id or int(a.get("index", -1)) != index:
                raise InputError(f"part '{path}' belongs to another plan or tile (plan {a.get('plan_id')}, "
                                 f"tile {a.get('index')}; expected plan {plan_id}, tile {index})")
            prov = json.loads(a["provenance"])
            if bool(a["empty"]):
                return None, prov
            values = {k: np.asarray(f["values"][k][()], np.float64) for k in f["values"]}
            res = TileResult(index, np.asarray(f["pixels"][()], np.int64), np.asarray(f["weight"][()], np.float64),
                             values, json.loads(a["row"]))
    except InputError:
        raise
    except (OSError, KeyError, ValueError) as err:
        raise InputError(f"part '{path}' is damaged ({str(err).splitlines()[0][:80]})") from None
    return res, prov


def _write_part(path: Path, plan_id: str, index: int, res: TileResult | None, seconds: float) -> None:
    import h5py

    prov = {"massmap_version": __version__, "host": socket.gethostname(), "pid": os.getpid(), "seconds": seconds,
            "date": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "slurm_job": os.environ.get("SLURM_JOB_ID"), "slurm_array_task": os.environ.get(TASK_ENV)}
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            f.attrs.update(format=PART_FORMAT, format_version=FORMAT_VERSION, plan_id=plan_id, index=index,
                           empty=res is None, provenance=json.dumps(prov))
            if res is not None:
                f.attrs["row"] = json.dumps({k: (float(v) if isinstance(v, (float, np.floating)) else int(v))
                                             for k, v in res.row.items()})
                f.create_dataset("pixels", data=res.pixels)
                f.create_dataset("weight", data=res.weight)
                g = f.create_group("values")
                for k, v in res.values.items():
                    g.create_dataset(k, data=v)


def run_survey_tile(run_dir: str | Path, index: int | None = None) -> dict[str, Any]:
    """Run one work item of a tile batch (skipped when its part already exists and is valid)."""
    plan = read_plan(run_dir)
    index = task_index(index, plan["n_tiles"])
    path = part_path(run_dir, index)
    if _valid_part(path, plan["plan_id"], index):
        return {"index": index, "part": str(path), "skipped": True}
    with output_lock([path]):  # one writer per part (massmap.io.locks); released when the process dies
        if _valid_part(path, plan["plan_id"], index):  # written by a run that held the lock before us
            return {"index": index, "part": str(path), "skipped": True}
        t0 = time.perf_counter()
        config, cat, sigma_e, _, _, tplan = _setup(plan)
        res = run_tile(tplan, cat, sigma_e, index)
        _write_part(path, plan["plan_id"], index, res, time.perf_counter() - t0)
    return {"index": index, "part": str(path), "skipped": False, "empty": res is None}


def _valid_part(path: Path, plan_id: str, index: int) -> bool:
    """Whether ``path`` is a readable part of this plan's tile (a damaged or foreign one is redone)."""
    if not path.exists():
        return False
    try:
        read_part(path, plan_id, index)
    except InputError:
        return False
    return True


def survey_status(run_dir: str | Path) -> dict[str, list[int]]:
    """Which tiles are done (valid part), running (its lock is held), or missing."""
    plan = read_plan(run_dir)
    done, running, missing = [], [], []
    for i in range(plan["n_tiles"]):
        path = part_path(run_dir, i)
        if _valid_part(path, plan["plan_id"], i):
            done.append(i)
        else:
            (running if is_locked(path) else missing).append(i)
    return {"done": done, "running": running, "missing": missing}


def merge_survey(run_dir: str | Path, output: str | Path, overwrite: bool = False, plot: bool = True,
                 progress: bool = False) -> dict[str, Any]:
    """Assemble the survey map from every part of a tile batch (InputError naming missing/foreign parts)."""
    plan = read_plan(run_dir)
    out_path = check_output(output, overwrite)
    n = plan["n_tiles"]
    expected = {part_path(run_dir, i).name for i in range(n)}
    strays = sorted(p.name for p in (Path(run_dir) / "tiles").glob("tile-*.h5") if p.name not in expected)
    if strays:
        raise InputError(f"'{run_dir}/tiles' holds parts that are not in the plan: {', '.join(strays[:5])}")
    missing = [i for i in range(n) if not part_path(run_dir, i).exists()]
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" ..." if len(missing) > 10 else "")
        raise InputError(f"tile batch '{run_dir}' is incomplete: {len(missing)} of {n} parts missing (tiles {shown}); "
                         "run them with 'massmap tiles run' (a rerun does only what is missing)")
    results, provs = [], []
    for i in range(n):
        res, prov = read_part(part_path(run_dir, i), plan["plan_id"], i)
        results.append(res)
        provs.append(prov)
    config, cat, sigma_e, data, info, tplan = _setup(plan)
    methods = tuple(plan["methods"])
    maps, run_info = compute_maps_healpix(data, config, methods, progress=progress)
    info.update(run_info)
    tile_maps, tile_info, table = mosaic_tiles(tplan, results)
    maps.update(tile_maps)
    info.update(tile_info)
    tables = {"TILES": table} if table else {}
    out = write_healpix_reconstruction(out_path, config, plan["catalog"], data, methods, maps, info, tables, plot,
                                       extra_inputs={"tile_plan": plan["plan_id"], "tile_parts": n})
    parts_file = out_path.with_name(out_path.stem + ".parts.json")
    with atomic_path(parts_file) as tmp:
        tmp.write_text(json.dumps({"plan_id": plan["plan_id"], "parts": provs}, indent=1))
    out["parts"] = str(parts_file)
    return out
