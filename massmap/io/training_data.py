"""κ maps for training the score prior: reading, rebinning, cutting into regions, train/val split.

Accepted inputs (each DATA argument is a file or a directory of such files):

* HDF5 map sets from ``massmap simulate`` (``.h5``/``.hdf5``; read with :func:`massmap.io.datasets.read_maps`,
  pixel scale from the set's ``pixel_size_arcmin`` attribute);
* FITS κ images with a celestial WCS (``.fits``, ``.fit``, ``.fits.gz``; pixel scale from the WCS);
* NumPy arrays (``.npy``, one (ny, nx) map or a stack (n, ny, nx)); they carry no pixel scale, so the
  config key ``prior.input_pixel_size_arcmin`` must give it.

Every map is block-averaged by the integer factor that takes its pixel scale to the target scale
(``prior.pixel_size_arcmin``, default: the common scale of the inputs) and is then cut into
non-overlapping square-ish *regions* of at most ``region_npix`` pixels per side (each ≥ npix; the
training crops are drawn inside regions). The train/validation split is by input map, so no
validation pixel was seen in training; with a single input map it falls back to its regions.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np

from massmap.io.inputs import check_file, reason
from massmap.io.output import InputError

H5_SUFFIXES = (".h5", ".hdf5")
FITS_SUFFIXES = (".fits", ".fit", ".fits.gz", ".fit.gz")
NPY_SUFFIXES = (".npy",)


@dataclass(frozen=True)
class InputMap:
    label: str  # "file" or "file[i]"
    data: np.ndarray  # (ny, nx) float32
    pixel_size_arcmin: float


@dataclass(frozen=True)
class Region:
    map_index: int  # index into the input maps
    y0: int
    x0: int
    data: np.ndarray  # (h, w) float32, at the target pixel scale

    def describe(self, labels: list[str]) -> str:
        h, w = self.data.shape
        return f"{labels[self.map_index]} y{self.y0}:{self.y0 + h} x{self.x0}:{self.x0 + w}"


@dataclass(frozen=True)
class TrainingData:
    train: list[Region]
    val: list[Region]
    labels: list[str]  # one per input map (after the files are expanded)
    pixel_size_arcmin: float
    rebin_factors: list[int]  # one per input map
    files: list[str]
    split_unit: str  # "map" or "region"


def _suffix(path: Path) -> str:
    name = path.name.lower()
    for s in H5_SUFFIXES + FITS_SUFFIXES + NPY_SUFFIXES:
        if name.endswith(s):
            return s
    return path.suffix.lower()


def _expand(paths) -> list[Path]:
    files: list[Path] = []
    known = H5_SUFFIXES + FITS_SUFFIXES + NPY_SUFFIXES
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise InputError(f"training data '{p}' does not exist")
        if p.is_dir():
            found = sorted(q for q in p.iterdir() if q.is_file() and _suffix(q) in known)
            if not found:
                raise InputError(f"training data folder '{p}' holds no κ maps (.h5, .fits, .npy)")
            files.extend(found)
        elif _suffix(p) in known:
            files.append(p)
        else:
            raise InputError(f"training data '{p}': unsupported file type (expected .h5, .fits or .npy)")
    if not files:
        raise InputError("no training data given")
    return files


def _stack(arr: np.ndarray, path: Path) -> np.ndarray:
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or arr.shape[1] < 1 or arr.shape[2] < 1:
        raise InputError(f"'{path}': expected a (ny, nx) map or an (n, ny, nx) stack, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise InputError(f"'{path}' holds no maps")
    return arr


def read_input_maps(paths, input_pixel_size_arcmin: float | None = None) -> tuple[list[InputMap], list[str]]:
    """All maps of all inputs with their native pixel scale; NaN/inf maps are rejected by name."""
    from massmap.io.datasets import read_maps
    from massmap.io.maps import read_kappa_image

    files = _expand(paths)
    maps: list[InputMap] = []
    for path in files:
        kind = _suffix(path)
        if kind in H5_SUFFIXES:
            arr, meta = read_maps(path)
            pix = meta.get("pixel_size_arcmin")
            if pix is None:
                raise InputError(f"map set '{path}' has no 'pixel_size_arcmin' attribute")
            arr = _stack(np.asarray(arr, np.float32), path)
        elif kind in FITS_SUFFIXES:
            grid, img = read_kappa_image(path)
            pix, arr = grid.pixel_size_arcmin, img[None]
        else:
            if input_pixel_size_arcmin is None:
                raise InputError(f"'{path}' carries no pixel scale: set prior.input_pixel_size_arcmin")
            check_file(path, "training array")
            try:
                arr = np.load(path, allow_pickle=False, mmap_mode="r")
                if arr.dtype.kind not in "iuf":
                    raise ValueError(f"dtype {arr.dtype} is not numeric")
                arr = np.asarray(arr, np.float32)
            except (ValueError, OSError, EOFError, MemoryError) as err:
                raise InputError(f"'{path}' is not a readable .npy array of maps ({reason(err)})") from None
            pix = input_pixel_size_arcmin
            arr = _stack(arr, path)
        for i, m in enumerate(arr):
            label = f"{path}[{i}]" if arr.shape[0] > 1 or kind in H5_SUFFIXES else str(path)
            if not np.all(np.isfinite(m)):
                raise InputError(f"training map {label} holds NaN or inf values")
            maps.append(InputMap(label, np.asarray(m, np.float32), float(pix)))
    if not maps:
        raise InputError("the training data hold no maps")
    return maps, [str(f) for f in files]


def rebin(kappa: np.ndarray, factor: int) -> np.ndarray:
    """Block-average by an integer ``factor`` (trailing rows/columns that do not fill a block are
    dropped): the mean κ over each factor × factor block."""
    if factor == 1:
        return kappa
    ny, nx = (kappa.shape[0] // factor) * factor, (kappa.shape[1] // factor) * factor
    k = kappa[:ny, :nx].reshape(ny // factor, factor, nx // factor, factor)
    return k.mean(axis=(1, 3), dtype=np.float64).astype(np.float32)


def rebin_factor(native: float, target: float, label: str) -> int:
    ratio = target / native
    factor = int(round(ratio))
    if factor < 1 or abs(ratio - factor) > 1e-6 * ratio:
        raise InputError(f"training map {label}: pixel scale {native:g} arcmin cannot be block-averaged to "
                         f"{target:g} arcmin (ratio {ratio:.4g} is not a whole number)")
    return factor


def cut_regions(kappa: np.ndarray, region_npix: int, npix: int) -> list[tuple[int, int, np.ndarray]]:
    """Split a map into a grid of non-overlapping regions with sides ≥ npix and ≈ ≤ region_npix.

    Along each axis of length n the map is divided into k = min(⌈n / region_npix⌉, ⌊n / npix⌋)
    near-equal pieces, so no piece is shorter than npix (an axis shorter than 2·npix gives one piece).
    """
    def edges(n):
        k = max(1, min(-(-n // region_npix), n // npix))
        return np.linspace(0, n, k + 1).astype(int)

    ey, ex = edges(kappa.shape[0]), edges(kappa.shape[1])
    return [(int(y0), int(x0), kappa[y0:y1, x0:x1])
            for y0, y1 in zip(ey[:-1], ey[1:]) for x0, x1 in zip(ex[:-1], ex[1:])]


def load_training_data(paths, npix: int, key: jax.Array, val_fraction: float,
                       pixel_size_arcmin: float | None = None, input_pixel_size_arcmin: float | None = None,
                       region_npix: int | None = None) -> TrainingData:
    """Read, rebin, cut and split the training maps (see the module docstring)."""
    maps, files = read_input_maps(paths, input_pixel_size_arcmin)
    if pixel_size_arcmin is None:
        scales = sorted({round(m.pixel_size_arcmin, 9) for m in maps})
        if len(scales) > 1:
            first = next(m for m in maps if round(m.pixel_size_arcmin, 9) == scales[0])
            other = next(m for m in maps if round(m.pixel_size_arcmin, 9) == scales[-1])
            raise InputError(f"training maps have different pixel scales ({first.label}: {scales[0]:g} arcmin, "
                             f"{other.label}: {scales[-1]:g} arcmin); set prior.pixel_size_arcmin to a "
                             "common multiple")
        pixel_size_arcmin = scales[0]
    region_npix = region_npix or 4 * npix
    factors, regions = [], []
    for i, m in enumerate(maps):
        f = rebin_factor(m.pixel_size_arcmin, pixel_size_arcmin, m.label)
        factors.append(f)
        k = rebin(m.data, f)
        if min(k.shape) < npix:
            at = f" after rebinning by {f}" if f > 1 else ""
            raise InputError(f"training map {m.label} is {k.shape[0]}x{k.shape[1]} pixels{at}, smaller than "
                             f"the patch size prior.npix={npix}")
        regions.extend(Region(i, y0, x0, r) for y0, x0, r in cut_regions(k, region_npix, npix))

    if len(maps) >= 2:
        unit, n_units = "map", len(maps)
        unit_of = [r.map_index for r in regions]
    else:
        unit, n_units = "region", len(regions)
        unit_of = list(range(len(regions)))
    if n_units < 2:
        raise InputError(f"training data ({files[0]}) give a single {npix}x{npix}-or-larger map: need at "
                         "least two maps (or one large enough for two regions) to hold some out for validation")
    n_val = min(n_units - 1, max(1, int(round(val_fraction * n_units))))
    order = np.asarray(jax.random.permutation(key, n_units))
    val_units = set(order[:n_val].tolist())
    train = [r for r, u in zip(regions, unit_of) if u not in val_units]
    val = [r for r, u in zip(regions, unit_of) if u in val_units]
    return TrainingData(train, val, [m.label for m in maps], float(pixel_size_arcmin), factors, files, unit)


def stack_regions(regions: list[Region]) -> tuple[np.ndarray, np.ndarray]:
    """Zero-padded (n, H, W) array of the regions and their valid (h, w) sizes."""
    hmax = max(r.data.shape[0] for r in regions)
    wmax = max(r.data.shape[1] for r in regions)
    out = np.zeros((len(regions), hmax, wmax), np.float32)
    sizes = np.zeros((len(regions), 2), np.int32)
    for i, r in enumerate(regions):
        h, w = r.data.shape
        out[i, :h, :w] = r.data
        sizes[i] = (h, w)
    return out, sizes
