"""Devices and processes: one 1-D device mesh, batch-axis sharding, and jax.distributed start-up.

Every stage that uses several devices goes through this module, and all of it rests on JAX's own
runtime (XLA SPMD partitioning of jitted functions, ``jax.distributed`` for several processes):

* :func:`batch_mesh` is a 1-D mesh (axis ``"batch"``) over all devices (of every process), or over this
  process's devices (``local=True``); its axis type is Auto, so XLA propagates the shardings.
* :func:`shard_batch` places arrays with their leading (batch / chain / particle) axis split over the
  mesh, :func:`replicate` places a copy on every device, :func:`to_host` brings any array back as
  numpy (gathering the other processes' shards when there are several). :func:`padded_size` rounds a
  batch up to a multiple of the device count (the caller pads with throw-away rows and drops them).
* :func:`initialize_distributed` calls ``jax.distributed.initialize()`` when asked (``--distributed``,
  ``MASSMAP_DISTRIBUTED=1``) or when running as one of several SLURM tasks (``SLURM_NTASKS`` > 1), and
  does nothing otherwise. It must run before JAX touches a device.

The device count is read from JAX, never configured: on a GPU node it is the node's GPUs, on CPU one
device unless ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (for testing; forced host devices
share the same cores). With one device and one process every helper is the identity on the numbers.
"""
from __future__ import annotations

import functools
import os
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

AXIS = "batch"  # the one mesh axis: chains, training examples, maps, particles or mesh slabs


def device_count(local: bool = False) -> int:
    """Devices of all processes (or of this one with ``local``), as JAX sees them."""
    return jax.local_device_count() if local else jax.device_count()


def process_index() -> int:
    return jax.process_index()


def process_count() -> int:
    return jax.process_count()


def is_main_process() -> bool:
    """True in process 0 (the one that writes shared outputs); always True without jax.distributed."""
    return jax.process_index() == 0


def _env_flag(name: str) -> bool | None:
    value = os.environ.get(name, "").strip().lower()
    if value in ("1", "true", "yes", "on"):
        return True
    if value in ("0", "false", "no", "off"):
        return False
    return None


def wants_distributed(enabled: bool | None = None) -> bool:
    """Whether :func:`initialize_distributed` would start jax.distributed: ``enabled`` if given, else
    ``MASSMAP_DISTRIBUTED`` (1/0) if set, else whether SLURM runs this as one of several tasks."""
    if enabled is not None:
        return bool(enabled)
    env = _env_flag("MASSMAP_DISTRIBUTED")
    if env is not None:
        return env
    try:
        return int(os.environ.get("SLURM_NTASKS", "1")) > 1
    except ValueError:
        return False


def initialize_distributed(enabled: bool | None = None, coordinator_address: str | None = None,
                           num_processes: int | None = None, process_id: int | None = None) -> bool:
    """Start jax.distributed when :func:`wants_distributed` says so; returns whether it is running.

    Idempotent. Without explicit arguments JAX finds the coordinator, the number of processes and this
    process's id itself under SLURM (and Open MPI); elsewhere set ``JAX_COORDINATOR_ADDRESS``
    (host:port of process 0), ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` in every process.
    """
    if jax.distributed.is_initialized():
        return True
    if not wants_distributed(enabled):
        return False
    env = os.environ
    if num_processes is None and env.get("JAX_NUM_PROCESSES"):
        num_processes = int(env["JAX_NUM_PROCESSES"])
    if process_id is None and env.get("JAX_PROCESS_ID"):
        process_id = int(env["JAX_PROCESS_ID"])
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id)
    return True


@functools.lru_cache(maxsize=4)
def _mesh(devices: tuple) -> Mesh:
    return jax.make_mesh((len(devices),), (AXIS,), axis_types=(AxisType.Auto,), devices=devices)


def batch_mesh(local: bool = False) -> Mesh:
    """The 1-D device mesh (axis ``"batch"``) over all devices, or this process's devices."""
    return _mesh(tuple(jax.local_devices() if local else jax.devices()))


def batch_sharding(mesh: Mesh | None = None) -> NamedSharding:
    """Leading axis split over the mesh, the other axes whole."""
    return NamedSharding(mesh or batch_mesh(), PartitionSpec(AXIS))


def replicated(mesh: Mesh | None = None) -> NamedSharding:
    """A whole copy on every device of the mesh."""
    return NamedSharding(mesh or batch_mesh(), PartitionSpec())


def padded_size(n: int, mesh: Mesh | None = None) -> int:
    """``n`` rounded up to a multiple of the mesh's device count (≥ the device count)."""
    d = (mesh or batch_mesh()).size
    return max(1, -(-int(n) // d)) * d


def pad_batch(x, size: int):
    """``x`` with its leading axis padded to ``size`` by repeating its first row (rows to discard)."""
    x = np.asarray(x)
    extra = size - x.shape[0]
    if extra < 0:
        raise ValueError(f"batch of {x.shape[0]} is larger than {size}")
    return x if extra == 0 else np.concatenate([x, np.repeat(x[:1], extra, axis=0)])


def _place(tree: Any, sharding: NamedSharding) -> Any:
    if jax.process_count() == 1 or sharding.is_fully_addressable:
        return jax.device_put(tree, sharding)

    def one(leaf):
        # several processes: every process holds the same whole value and gives its own shards
        if isinstance(leaf, jax.Array) and not leaf.is_fully_addressable:
            return jax.device_put(leaf, sharding)
        host = np.asarray(leaf)
        return jax.make_array_from_callback(host.shape, sharding, lambda idx: host[idx])

    return jax.tree.map(one, tree)


def shard_batch(tree: Any, mesh: Mesh | None = None) -> Any:
    """Every array leaf of ``tree`` with its leading axis split over ``mesh`` (default: all devices).

    The leading axis must be a multiple of the device count (see :func:`padded_size`). With several
    processes each must pass the same whole values (as the same program computes them everywhere).
    """
    return _place(tree, batch_sharding(mesh))


def replicate(tree: Any, mesh: Mesh | None = None) -> Any:
    """Every array leaf of ``tree`` copied to every device of ``mesh`` (default: all devices)."""
    return _place(tree, replicated(mesh))


def to_host(x) -> np.ndarray:
    """A (possibly sharded) array as numpy; with several processes the other processes' shards are
    gathered (a collective: every process must call it for the same array)."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        from jax.experimental import multihost_utils

        if x.sharding.is_fully_replicated:
            return np.asarray(x.addressable_data(0))
        return np.asarray(multihost_utils.process_allgather(x, tiled=True))
    return np.asarray(x)


def barrier(name: str) -> None:
    """Wait until every process reaches the barrier ``name`` (nothing to do with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
