"""``massmap simulate`` over several devices and processes: maps are independent, split by index.

Map i always uses the key fold_in(PRNGKey(seed), i) (massmap.pipeline.map_samplers.map_key), so where it is
made changes nothing but float rounding:

* several local devices (massmap.parallel): GRF and lognormal maps are made in batches of one map per
  device (the sampler's vmapped ``batch`` function, keys split over the devices); PM maps one per
  device, device d making maps d, d + D, ... of a batch (each a whole simulation on that device);
* several processes (jax.distributed, e.g. ``srun -n P``): process p makes the maps i ≡ p (mod P) into
  its own part file ``OUT.rank{p}of{P}.part`` (a map set, written map by map as usual); after a barrier
  process 0 copies them in index order into the map set and renames it into place as a single run does
  (``OUT.part`` → ``OUT``), deletes the rank files, and a second barrier lets the others return.

``resume``: each rank file is continued where it stopped, and the merge restarts from the map set's
``n_done``; an interrupted merge leaves the rank files, so ``--resume`` only finishes copying.
"""
from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import numpy as np

from massmap import interrupts, parallel
from massmap.io.datasets import MapSetWriter, read_maps, read_metadata
from massmap.io.output import InputError


def _keys(seed: int, indices: list[int]):
    from massmap.pipeline.map_samplers import map_key

    return np.stack([np.asarray(map_key(seed, i)) for i in indices])


def generate_maps(sampler, seed: int, indices: Iterable[int],
                  step_progress: Callable | None = None) -> Iterator[tuple[int, np.ndarray]]:
    """(i, map i) for ``indices`` in order, spread over this process's devices (see the module doc).

    Equal to ``sampler.sample(map_key(seed, i))`` map by map up to float rounding (the batched FFTs of
    several maps at once may round differently from one map's).
    """
    import jax

    indices = list(indices)
    n_dev = parallel.device_count(local=True)
    if n_dev == 1 or len(indices) <= 1 or sampler.uses_all_devices:  # one map at a time (maybe on all devices)
        from massmap.pipeline.map_samplers import map_key

        for i in indices:
            yield i, sampler.sample(map_key(seed, i), step_progress)
        return
    mesh = parallel.batch_mesh(local=True)
    for s in range(0, len(indices), n_dev):
        group = indices[s:s + n_dev]
        if sampler.batch is not None:  # vmappable: one map per device, keys split over the devices
            keys = parallel.shard_batch(parallel.pad_batch(_keys(seed, group), n_dev), mesh)
            maps = np.asarray(sampler.batch(keys))
            yield from zip(group, maps[: len(group)])
            continue
        # a whole simulation per device (PM): one thread drives each device, JAX runs them concurrently
        devices = jax.local_devices()

        def one(slot_index):
            slot, i = slot_index
            from massmap.pipeline.map_samplers import map_key

            with jax.default_device(devices[slot]):
                return sampler.sample(map_key(seed, i), None)

        with ThreadPoolExecutor(len(group)) as pool:
            yield from zip(group, pool.map(one, enumerate(group)))


def rank_path(output: str | Path, rank: int, n_ranks: int) -> Path:
    """The part file of process ``rank`` of ``n_ranks``: ``OUT.rank{rank}of{n_ranks}.part``."""
    p = Path(output)
    return p.with_name(f"{p.name}.rank{rank}of{n_ranks}.part")


def rank_files(output: str | Path) -> list[Path]:
    """Every rank part file beside ``output`` (of any process count)."""
    p = Path(output)
    pattern = re.compile(re.escape(p.name) + r"\.rank\d+of\d+\.part$")
    return sorted(q for q in p.parent.iterdir() if pattern.match(q.name)) if p.parent.exists() else []


def _owned(start: int, n_maps: int, rank: int, n_ranks: int) -> list[int]:
    return [i for i in range(start, n_maps) if i % n_ranks == rank]


def _rank_writer(path: Path, owned: list[int], npix: int, attrs: dict, resume: bool) -> tuple[Any, int]:
    """A writer of the rank file and the position in ``owned`` to continue from."""
    if resume and path.exists():
        meta = read_metadata(path)
        first, done = int(meta.get("rank_first_index", -1)), int(meta["n_done"])
        # the file holds first, first + P, ...: usable if ``owned`` continues that sequence
        if owned and first <= owned[0] and (owned[0] - first) % int(meta["rank_count"]) == 0:
            skip = (owned[0] - first) // int(meta["rank_count"])
            if skip <= done <= skip + len(owned):
                writer = MapSetWriter(path, skip + len(owned), npix, attrs, append=True)
                return writer, max(0, done - skip)
    if path.exists():
        path.unlink()
    return MapSetWriter(path, len(owned), npix, {**attrs, "rank_first_index": owned[0] if owned else 0}), 0


def simulate_distributed(config, sampler, output: Path, target: Path, append: bool, attrs: dict, tables: dict,
                         overwrite: bool, resume: bool, progress: bool, finish: Callable[[Path], None]) -> Path:
    """Make this process's maps into its rank file, then (process 0) merge them into ``target`` and move
    it to ``output``; ``finish(output)`` (sidecar, preview) runs on process 0. Returns ``output``.

    Every process makes the same checks on the same files before any file changes (a first barrier),
    so a bad input stops all of them with the same one-line error.
    """
    from tqdm.auto import tqdm

    from massmap.pipeline.simulate import Interrupted, check_resumable

    sim = config.simulate
    rank, n_ranks = parallel.process_index(), parallel.process_count()
    start = int(read_metadata(target)["n_done"]) if append else 0
    found = rank_files(output)
    if found and not (resume or overwrite):
        raise InputError(f"'{found[0]}' holds an interrupted distributed run; pass --resume to continue it or "
                         "--overwrite to start again")
    ours = [rank_path(output, r, n_ranks) for r in range(n_ranks)]
    if resume:
        other = [p for p in found if p not in ours]
        if other:
            raise InputError(f"'{other[0]}' is from a run with another number of processes; resume with that "
                             f"number (this run has {n_ranks}) or start again with --overwrite")
        for p in found:
            check_resumable(p, config)
    parallel.barrier("simulate-checked")  # every process has looked at the files before any changes them
    stale = [] if resume else found
    if rank == 0:
        for p in stale:
            p.unlink()
    parallel.barrier("simulate-cleaned")
    owned = _owned(start, sim.n_maps, rank, n_ranks)
    path = rank_path(output, rank, n_ranks)
    rank_attrs = {**attrs, "rank": rank, "rank_count": n_ranks}
    bar = tqdm(total=len(owned), desc=f"simulate {sim.kind} [process {rank}/{n_ranks}]", unit="map",
               disable=not progress or rank != 0)
    writer, pos = _rank_writer(path, owned, sim.npix, rank_attrs, resume)
    try:
        with writer, bar, interrupts.unwrapped():
            bar.update(pos)
            offset = writer.n_done - pos
            for k, (_, kappa) in enumerate(generate_maps(sampler, config.seed, owned[pos:]), start=pos):
                writer.write_map(offset + k, kappa)
                bar.update(1)
            writer.set_attrs(complete=True)
    except KeyboardInterrupt:
        raise Interrupted(f"interrupted; '{path}' keeps the maps of process {rank}; rerun with --resume "
                          "to continue") from None
    parallel.barrier("simulate-generated")
    if rank == 0:
        _merge(output, target, append, start, n_ranks, sim, attrs, tables)
        finish(output)
    parallel.barrier("simulate-merged")
    return output


def _merge(output: Path, target: Path, append: bool, start: int, n_ranks: int, sim, attrs, tables) -> None:
    """Copy maps start..n_maps−1 from the rank files into ``target`` in index order; rename into place."""
    files = {r: rank_path(output, r, n_ranks) for r in range(n_ranks)}
    firsts = {r: int(read_metadata(f)["rank_first_index"]) for r, f in files.items()}
    if not append and target.exists():  # a stale partial file when overwriting
        target.unlink()
    with MapSetWriter(target, sim.n_maps, sim.npix, attrs, tables, append=append) as writer:
        for i in range(writer.n_done, sim.n_maps):
            r = i % n_ranks
            writer.write_map(i, read_maps(files[r], (i - firsts[r]) // n_ranks)[0])
        writer.set_attrs(complete=True)
    if target != output:
        os.replace(target, output)
    for f in files.values():
        f.unlink()
