"""HDF5 sets of convergence maps (training sets written by ``massmap simulate``).

Layout of a map set (format ``massmap.kappa_maps``, version 1):

- dataset ``kappa``: (n_maps, npix, npix) float32, one HDF5 chunk per map, axis -1 = x, axis -2 = y;
- datasets ``theory_ell``, ``theory_cl``: the tabulated target C_ℓ^κκ (Limber, jax-cosmo);
- for ``sources.nz: file``: datasets ``nz_z``, ``nz_pdf`` holding the n(z) table;
- root attributes: ``format``, ``format_version``, ``n_maps``, ``n_done`` and everything the writer
  was given (kind, npix, pixel_size_arcmin, cosmology parameters by name, source redshifts, seed,
  massmap_version, the resolved config as a YAML string, provenance as a YAML string, ...).

Maps are written one at a time: map i is written and flushed before ``n_done`` becomes i + 1, so a
map is counted only once it is on disk. Readers use the first ``n_done`` maps only.
"""
from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from massmap.geometry import FlatGrid
from massmap.io.inputs import check_file, reads
from massmap.io.output import InputError
from massmap.io.space import ensure_space, hdf5_writes

FORMAT = "massmap.kappa_maps"
FORMAT_VERSION = 1


def _h5py():
    import h5py

    return h5py


def _to_attr(value: Any) -> Any:
    if isinstance(value, (dict, list, tuple)):
        return yaml.safe_dump(value, sort_keys=False)
    return value


def _from_attr(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


class MapSetWriter:
    """Create or continue a map set; use as a context manager (closes the file on exit)."""

    def __init__(self, path: str | Path, n_maps: int, npix: int, attrs: dict[str, Any] | None = None,
                 tables: dict[str, np.ndarray] | None = None, append: bool = False):
        self.path = Path(path)
        self.file = None
        with hdf5_writes(self.path):
            self._open(n_maps, npix, attrs, tables, append)
        self.kappa = self.file["kappa"]  # held open: a failed chunk write then surfaces in flush()

    def _open(self, n_maps, npix, attrs, tables, append) -> None:
        h5py = _h5py()
        if append:
            self.file = h5py.File(self.path, "r+")
            kappa = self.file["kappa"]
            if kappa.shape[1:] != (npix, npix):
                self.file.close()
                raise InputError(f"map set '{self.path}' holds {kappa.shape[1]}x{kappa.shape[2]} maps, "
                                 f"not {npix}x{npix}")
            if n_maps < self.n_done:
                done = self.n_done
                self.file.close()
                raise InputError(f"map set '{self.path}' already holds {done} maps, more than "
                                 f"simulate.n_maps={n_maps}")
            kappa.resize(n_maps, axis=0)  # check_resumable made sure it can (growable)
        else:
            self.file = h5py.File(self.path, "w")
            self.file.create_dataset("kappa", shape=(n_maps, npix, npix), maxshape=(None, npix, npix),
                                     chunks=(1, npix, npix), dtype="float32", fillvalue=np.nan)
            self.file.attrs["format"] = FORMAT
            self.file.attrs["format_version"] = FORMAT_VERSION
            self.file.attrs["n_done"] = 0
        for name, table in (tables or {}).items():
            if name in self.file:
                del self.file[name]
            self.file.create_dataset(name, data=np.asarray(table))
        for key, value in (attrs or {}).items():
            if value is not None:
                self.file.attrs[key] = _to_attr(value)
        self.file.attrs["n_maps"] = n_maps
        self.file.flush()

    @property
    def n_done(self) -> int:
        return int(self.file.attrs["n_done"])

    @property
    def n_maps(self) -> int:
        return int(self.file["kappa"].shape[0])

    def write_map(self, index: int, kappa: np.ndarray) -> None:
        """Write map ``index`` (must be the next one) and count it once it is flushed.

        The space for the map is checked first (OSError ENOSPC, nothing written), so that a full disk
        stops the run between maps, with every counted map on disk."""
        if index != self.n_done:
            raise ValueError(f"map {index} written out of order (next is {self.n_done})")
        data = np.asarray(kappa, np.float32)
        ensure_space(self.path, data.nbytes)
        with hdf5_writes(self.path):
            self.kappa[index] = data
            self.file.flush()
            self.file.attrs["n_done"] = index + 1
            self.file.flush()

    def set_attrs(self, **attrs: Any) -> None:
        with hdf5_writes(self.path):
            for key, value in attrs.items():
                if value is not None:
                    self.file.attrs[key] = _to_attr(value)
            self.file.flush()

    def close(self) -> None:
        if self.file:
            self.kappa = None
            with hdf5_writes(self.path):
                self.file.close()
            self.file = None

    def __enter__(self) -> "MapSetWriter":
        return self

    def __exit__(self, *exc) -> None:
        if exc[0] is None:
            self.close()
        else:  # keep the error that stopped the run, not a second one from closing after it
            with contextlib.suppress(OSError):
                self.close()


def _open_map_set(path: str | Path):
    h5py = _h5py()
    p = check_file(path, "map set")
    try:
        f = h5py.File(p, "r")
    except OSError as err:
        with open(p, "rb") as fh:
            is_hdf5 = fh.read(8) == b"\x89HDF\r\n\x1a\n"
        if is_hdf5:  # e.g. locked by a run still writing it
            reason = str(err).splitlines()[0] if str(err) else "unreadable"
            raise InputError(f"map set '{p}' cannot be opened (in use by another process or damaged): "
                             f"{reason}") from None
        raise InputError(f"'{p}' is not a massmap map set (not an HDF5 file)") from None
    try:
        check_layout(f, p)
    except BaseException:
        f.close()
        raise
    return f


def check_layout(f, p: Path) -> None:
    """InputError unless ``f`` is a massmap map set whose ``n_done`` finished maps are all stored."""
    h5py = _h5py()
    fmt = _from_attr(f.attrs.get("format"))
    if fmt != FORMAT or "kappa" not in f or "n_done" not in f.attrs:
        raise InputError(f"'{p}' is not a massmap map set (no '{FORMAT}' kappa dataset)")
    version = _from_attr(f.attrs.get("format_version", 0))
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise InputError(f"map set '{p}' has format version {version!r}; this massmap reads up to "
                         f"{FORMAT_VERSION}")
    kappa = f["kappa"]
    if not isinstance(kappa, h5py.Dataset) or kappa.ndim != 3 or kappa.dtype.kind != "f":
        kind = f"{kappa.dtype} {kappa.shape}" if isinstance(kappa, h5py.Dataset) else "a group"
        raise InputError(f"map set '{p}': dataset 'kappa' must be (n_maps, npix, npix) floats, found {kind}")
    pix = _from_attr(f.attrs.get("pixel_size_arcmin", 1.0))
    if isinstance(pix, bool) or not isinstance(pix, (int, float)):
        raise InputError(f"map set '{p}': attribute pixel_size_arcmin = {pix!r} is not a positive number of arcmin")
    try:  # the maps' grid: positive, finite pixels, less than a flat map's largest side (FlatGrid)
        FlatGrid(0.0, 0.0, float(pix), *kappa.shape[1:])
    except InputError as err:
        raise InputError(f"map set '{p}': attribute pixel_size_arcmin = {pix!r}: {err}") from None
    n_done = _from_attr(f.attrs["n_done"])
    if not isinstance(n_done, int) or not 0 <= n_done <= kappa.shape[0]:
        raise InputError(f"map set '{p}': attribute n_done = {n_done!r} is not a map count within 0..{kappa.shape[0]}")
    if kappa.chunks is not None and n_done:
        per_map = int(np.prod([-(-s // c) for s, c in zip(kappa.shape[1:], kappa.chunks[1:])]))
        rows = -(-n_done // kappa.chunks[0])
        if kappa.id.get_num_chunks() < rows * per_map:
            raise InputError(f"map set '{p}' counts {n_done} finished maps but stores fewer (truncated or damaged)")


def _metadata(f) -> dict[str, Any]:
    meta = {key: _from_attr(value) for key, value in f.attrs.items()}
    for key in ("config", "provenance"):
        if isinstance(meta.get(key), str):
            meta[key] = yaml.safe_load(meta[key])
    for name in f:
        if name != "kappa":
            meta[name] = np.asarray(f[name][()])
    return meta


@reads("map set")
def growable(path: str | Path, n_maps: int) -> bool:
    """Whether the map set's kappa dataset can be resized to ``n_maps`` maps (chunked, unlimited or
    large enough: as massmap simulate writes it)."""
    with _open_map_set(path) as f:
        kappa = f["kappa"]
        return kappa.chunks is not None and (kappa.maxshape[0] is None or kappa.maxshape[0] >= n_maps)


@reads("map set")
def read_metadata(path: str | Path) -> dict[str, Any]:
    """The attributes and small tables of a map set (config and provenance parsed from YAML)."""
    with _open_map_set(path) as f:
        return _metadata(f)


@reads("map set")
def read_maps(path: str | Path, index: int | slice | list[int] | np.ndarray | None = None
              ) -> tuple[np.ndarray, dict[str, Any]]:
    """Maps and metadata of a map set: all finished maps (n_done, npix, npix) when ``index`` is None,
    one map (npix, npix) for an integer, else the selected maps (float32).

    Only the first ``n_done`` maps count (an interrupted run); indices refer to those.
    """
    with _open_map_set(path) as f:
        meta = _metadata(f)
        n_done = int(meta["n_done"])
        kappa = f["kappa"]
        if index is None:
            return np.asarray(kappa[:n_done], np.float32), meta
        if isinstance(index, (int, np.integer)):
            i = int(index)
            if not -n_done <= i < n_done:
                raise InputError(f"map set '{path}' holds {n_done} maps; index {i} is out of range")
            return np.asarray(kappa[i % n_done], np.float32), meta
        if isinstance(index, slice):
            rows = np.arange(n_done)[index]
        else:
            rows = np.asarray(index, int).ravel()
            if rows.size and (rows.min() < -n_done or rows.max() >= n_done):
                raise InputError(f"map set '{path}' holds {n_done} maps; some indices are out of range")
            rows = rows % max(n_done, 1)
        # h5py fancy indexing needs increasing unique indices: read those, then reorder.
        uniq, inverse = np.unique(rows, return_inverse=True)
        data = np.asarray(kappa[uniq.tolist()], np.float32) if uniq.size else \
            np.zeros((0,) + kappa.shape[1:], np.float32)
        return data[inverse], meta
