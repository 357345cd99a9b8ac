"""Training checkpoints of the score prior: an HDF5 tree, written atomically, verified on reading.

Layout (format ``massmap.prior_checkpoint``, version 1):

- groups ``params``, ``net_state``, ``ema_params``, ``opt_state``: the leaves of each pytree of the
  :class:`~massmap.prior.training.TrainState` as datasets ``000000``, ``000001``, … in
  ``jax.tree_util`` order, each with its tree path as attribute ``path`` (e.g. ``['score_unet/~/conv_in']['w']``);
- datasets ``step`` (int32) and ``key`` (the raw uint32 PRNG key);
- group ``history``: the loss curves so far (free-length arrays);
- datasets ``config`` (resolved YAML) and ``inputs`` (JSON list of the DATA arguments), as UTF-8
  bytes;
- root attributes: ``format``, ``format_version``, ``step``, ``sha256`` (digest of every dataset's
  name, dtype, shape and bytes).

Reading needs a template state of the same configuration (from ``init_train``): the tree structure
comes from the template, never from the file, and only plain numeric arrays are read (no pickle).
Writing goes to a temporary file that replaces ``OUT.ckpt.h5`` only once complete; the checkpoint
it replaces is kept as ``OUT.ckpt.prev.h5`` (linked there first, so ``OUT.ckpt.h5`` exists at every
instant), and a crash or SIGKILL mid-write never loses the last good one.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

import h5py
import jax
import jax.numpy as jnp
import numpy as np

from massmap.io.inputs import check_file, reason
from massmap.io.output import InputError, atomic_path
from massmap.io.space import ensure_space, hdf5_writes
from massmap.prior.training import TrainState

FORMAT = "massmap.prior_checkpoint"
FORMAT_VERSION = 1
TREES = ("params", "net_state", "ema_params", "opt_state")


def checkpoint_paths(output: str | Path) -> tuple[Path, Path]:
    """(current, previous) checkpoint paths of an output ``PRIOR.h5``."""
    p = Path(output)
    stem = p.name[:-3] if p.name.endswith(".h5") else p.name
    return p.with_name(stem + ".ckpt.h5"), p.with_name(stem + ".ckpt.prev.h5")


def previous_path(path: str | Path) -> Path:
    """``X.ckpt.h5`` → ``X.ckpt.prev.h5``: where the checkpoint replaced by a newer one is kept."""
    p = Path(path)
    return p.with_name(p.stem + ".prev.h5")


def _digest(items: list[tuple[str, np.ndarray]]) -> str:
    h = hashlib.sha256()
    for name, arr in sorted(items, key=lambda t: t[0]):
        arr = np.ascontiguousarray(arr)
        h.update(f"{name}|{arr.dtype.str}|{arr.shape}".encode())
        h.update(arr.tobytes())
    return h.hexdigest()


def _leaves(tree) -> list[tuple[str, np.ndarray]]:
    flat, _ = jax.tree_util.tree_flatten_with_path(tree)
    return [(jax.tree_util.keystr(path), np.asarray(leaf)) for path, leaf in flat]


def save_checkpoint(path: str | Path, state: TrainState, history: dict[str, np.ndarray],
                    config_yaml: str, inputs: list[str]) -> Path:
    """Write ``state`` and the loss ``history`` to ``path`` atomically (previous one → ``.prev``)."""
    path = Path(path)
    previous = previous_path(path)
    items: list[tuple[str, np.ndarray]] = []
    nbytes = sum(np.asarray(leaf).nbytes for tree in TREES for leaf in jax.tree_util.tree_leaves(getattr(state, tree)))
    with atomic_path(path, keep=True) as tmp, hdf5_writes(tmp):  # resumable state: kept when the command fails
        ensure_space(tmp, 2 * nbytes)  # this one and the previous one (HDF5 must not meet a full disk)
        with h5py.File(tmp, "w") as f:
            for tree in TREES:
                g = f.create_group(tree)
                for i, (kp, arr) in enumerate(_leaves(getattr(state, tree))):
                    ds = g.create_dataset(f"{i:06d}", data=arr)
                    ds.attrs["path"] = kp
                    items.append((f"{tree}/{i:06d}", arr))
            for name in ("step", "key"):
                arr = np.asarray(getattr(state, name))
                f.create_dataset(name, data=arr)
                items.append((name, arr))
            g = f.create_group("history")
            for name, arr in history.items():
                arr = np.asarray(arr)
                g.create_dataset(name, data=arr)
                items.append((f"history/{name}", arr))
            f.attrs["format"] = FORMAT
            f.attrs["format_version"] = FORMAT_VERSION
            f.attrs["step"] = int(state.step)
            for name, text in (("config", config_yaml), ("inputs", json.dumps([str(i) for i in inputs]))):
                arr = np.frombuffer(text.encode(), np.uint8)  # text as bytes: covered by the checksum
                f.create_dataset(name, data=arr)
                items.append((name, arr))
            f.attrs["sha256"] = _digest(items)
        if path.exists():  # keep the current one as .prev; `path` exists at every instant (kill-safe)
            _replace_by_copy(path, previous)
    return path


def _replace_by_copy(src: Path, dst: Path) -> None:
    """Atomically make ``dst`` a copy of ``src`` (a hard link where the file system allows it)."""
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.part")
    try:
        try:
            os.link(src, tmp)
        except OSError:
            shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        if tmp.exists():
            tmp.unlink()


def _read_verified(path: Path):
    """(attrs, {dataset name: array}) of an intact checkpoint, else InputError (one line)."""
    if not path.exists():
        raise InputError(f"no checkpoint '{path}' to resume from")
    check_file(path, "checkpoint")
    try:
        with h5py.File(path, "r") as f:
            if f.attrs.get("format") != FORMAT:
                raise InputError(f"'{path}' is not a massmap prior checkpoint")
            attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
            arrays: dict[str, np.ndarray] = {}
            paths: dict[str, str] = {}

            def visit(name, obj):
                if isinstance(obj, h5py.Dataset):
                    arrays[name] = np.asarray(obj[()])
                    if "path" in obj.attrs:
                        paths[name] = str(obj.attrs["path"])

            f.visititems(visit)
    except InputError:
        raise
    except (OSError, KeyError, ValueError, RuntimeError, TypeError, MemoryError) as err:
        raise InputError(f"checkpoint '{path}' is corrupt ({reason(err)})") from None
    if int(attrs.get("format_version", 0)) > FORMAT_VERSION:
        raise InputError(f"checkpoint '{path}' has format version {attrs.get('format_version')}; this "
                         f"massmap reads up to {FORMAT_VERSION}")
    if _digest(list(arrays.items())) != attrs.get("sha256"):
        raise InputError(f"checkpoint '{path}' is corrupt (checksum mismatch)")
    return attrs, arrays, paths


def checkpoint_step(path: str | Path) -> int | None:
    """Step of an intact checkpoint, or None if it is missing or damaged."""
    try:
        attrs, _, _ = _read_verified(Path(path))
    except InputError:
        return None
    return int(attrs["step"])


def load_checkpoint(path: str | Path, template: TrainState) -> tuple[TrainState, dict[str, np.ndarray], dict]:
    """(state, history, {step, config, inputs}) from a checkpoint, checked against ``template``.

    Any damage (unreadable file, checksum, missing or mis-shaped leaf) raises a one-line InputError;
    when a damaged checkpoint has an intact ``.prev`` beside it, the message says so.
    """
    path = Path(path)
    try:
        attrs, arrays, paths = _read_verified(path)
    except InputError as err:
        prev = previous_path(path)
        step = checkpoint_step(prev) if path.exists() else None
        hint = f"; the previous checkpoint '{prev}' (step {step}) is intact: rename it to '{path.name}' " \
               "to resume from it" if step is not None else ""
        raise InputError(f"{err}{hint}") from None
    fields = {}
    for tree in TREES:
        ref = _leaves(getattr(template, tree))
        leaves = []
        for i, (kp, want) in enumerate(ref):
            name = f"{tree}/{i:06d}"
            got = arrays.get(name)
            if got is None or paths.get(name) != kp or got.shape != want.shape or got.dtype != want.dtype:
                raise InputError(f"checkpoint '{path}' does not match this configuration ({tree} {kp})")
            leaves.append(jnp.asarray(got))
        if any(n.startswith(tree + "/") for n in arrays if n not in {f"{tree}/{i:06d}" for i in range(len(ref))}):
            raise InputError(f"checkpoint '{path}' does not match this configuration (extra {tree} entries)")
        fields[tree] = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(getattr(template, tree)), leaves)
    for name in ("step", "key"):
        want = np.asarray(getattr(template, name))
        got = arrays.get(name)
        if got is None or got.shape != want.shape or got.dtype != want.dtype:
            raise InputError(f"checkpoint '{path}' does not match this configuration ({name})")
        fields[name] = jnp.asarray(got)
    history = {n.split("/", 1)[1]: a for n, a in arrays.items() if n.startswith("history/")}
    try:
        info = {"step": int(attrs["step"]), "config": arrays["config"].tobytes().decode(),
                "inputs": json.loads(arrays["inputs"].tobytes().decode())}
    except (KeyError, ValueError, UnicodeDecodeError):
        raise InputError(f"checkpoint '{path}' is corrupt (config or inputs record)") from None
    return TrainState(**fields), history, info
