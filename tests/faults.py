"""Fault injection for the test suite: a valid seed file of every kind massmap reads, the ways a hostile
world damages files (generic byte damage and per-kind layout damage; the text kinds' layout damages are
the table tests/text_damages.yaml), the command that reads each kind, and the tally of cases tried and
handled that conftest.py prints at the end of the run.

A case is (kind, damage): the damaged file is written into a fresh folder and the kind's command runs
on it through click's CliRunner; test_faults.py asserts the promise of docs/reliability.md (exit 2, one
line naming the file, no traceback, no output, the input untouched).
"""
from __future__ import annotations

import functools
import gzip
import hashlib
import os
import shutil
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import h5py
import numpy as np
from astropy.io import fits

NPIX, PIX = 16, 2.0  # seed maps: 16² pixels of 2 arcmin
# train-prior settings of the checkpoint and .npy cases: a tiny network (nothing is trained)
TINY_PRIOR = ["prior.npix=16", "prior.channels=[4,8]", "prior.batch_size=4", "prior.steps=4",
              "prior.warmup_steps=1", "prior.checkpoint_every=2", "prior.val_every=2", "prior.val_batches=1"]

# kind -> [tried, handled]; filled by test_faults.py, printed by conftest.pytest_terminal_summary
TALLY: dict[str, list[int]] = defaultdict(lambda: [0, 0])


def sets(*overrides: str) -> list[str]:
    return [a for o in overrides for a in ("--set", o)]


def digest(path: Path) -> str | None:
    """What a file holds, to check that a command left its input untouched (None: absent or folder)."""
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.is_file() else None


# ------------------------------------------------------------------ valid seed files

def write_table(path: Path, columns: dict, hdu_cls=fits.BinTableHDU) -> Path:
    cols = []
    for name, values in columns.items():
        v = np.asarray(values)
        fmt = {"f": "D", "i": "K", "c": "M", "U": f"{max(1, v.dtype.itemsize // 4)}A", "S": f"{max(1, v.dtype.itemsize)}A"}
        cols.append(fits.Column(name=name, format=fmt[v.dtype.kind] if v.ndim == 1 else f"{v.shape[1]}D", array=v))
    fits.HDUList([fits.PrimaryHDU(), hdu_cls.from_columns(cols)]).writeto(path, overwrite=True)
    return path


def make_seeds(folder: Path) -> dict[str, Path]:
    """Valid files of every kind (tiny), built with massmap's own writers where it has them."""
    import jax

    from massmap.config import load_config
    from massmap.geometry import FlatGrid
    from massmap.io.checkpoints import save_checkpoint
    from massmap.io.datasets import MapSetWriter
    from massmap.io.maps import write_maps
    from massmap.io.output import provenance
    from massmap.io.priors import write_prior
    from massmap.pipeline.reconstruct import run_reconstruct
    from massmap.pipeline.train_prior import train_spec
    from massmap.prior.dsm import residual_network, white_mode_variance
    from massmap.prior.training import init_train

    rng = np.random.default_rng(0)
    s: dict[str, Path] = {}
    grid = FlatGrid(150.0, 2.0, PIX, NPIX, NPIX)
    n = 400
    x, y = rng.uniform(-0.5, NPIX - 0.5, (2, n))
    ra, dec = grid.pixel_to_world(x, y)
    s["catalog"] = write_table(folder / "catalog.fits", {"RA": ra, "DEC": dec, "E1": rng.normal(0, 0.2, n),
                                                        "E2": rng.normal(0, 0.2, n)})
    ell = np.geomspace(10, 1e5, 40)
    np.savetxt(folder / "cl.txt", np.c_[ell, 1e-9 * (ell / 1000.0) ** -2.0], header="ell C_ell")
    s["cl"] = folder / "cl.txt"
    z = np.linspace(0.0, 2.0, 21)
    np.savetxt(folder / "nz.txt", np.c_[z, z**2 * np.exp(-z / 0.4)], header="z n(z)")
    s["nz"] = folder / "nz.txt"
    (folder / "config.yaml").write_text("grid:\n  npix: 16\n  pixel_size_arcmin: 2.0\npad: 0\n")
    s["config"] = folder / "config.yaml"
    cfg = load_config([], ["grid.npix=16", f"grid.pixel_size_arcmin={PIX}", "grid.center=[150, 2]", "pad=0",
                           f"wiener.cl_file={s['cl']}"])
    run_reconstruct(cfg, s["catalog"], folder / "recon.fits", method="ks,wiener", plot=False)
    s["recon"] = folder / "recon.fits"
    with fits.open(s["recon"]) as h:  # the binned shear alone: what `reconstruct` reads as a shear map
        shear = fits.HDUList([h[0].copy()] + [h[n].copy() for n in ("GAMMA1", "GAMMA2", "NOISE_STD", "MASK")])
        shear[0].header["NEXTEND"] = 4
        shear.writeto(folder / "shear.fits")
    s["shear"] = folder / "shear.fits"
    kappa = (0.02 * rng.normal(size=(NPIX, NPIX))).astype(np.float32)
    write_maps(folder / "kappa.fits", grid, {"KAPPA": kappa}, provenance(cfg, "test"))
    s["kappa"] = folder / "kappa.fits"
    with MapSetWriter(folder / "maps.h5", 4, NPIX, attrs={"pixel_size_arcmin": PIX, "kind": "grf"}) as w:
        for i in range(4):
            w.write_map(i, 0.02 * rng.normal(size=(NPIX, NPIX)))
    s["maps"] = folder / "maps.h5"
    np.save(folder / "maps.npy", (0.02 * rng.normal(size=(3, NPIX, NPIX))).astype(np.float32))
    s["npy"] = folder / "maps.npy"
    write_table(folder / "positions.fits", {"RA": [150.0, 150.1], "DEC": [2.0, 2.05], "NAME": np.array(["a", "b"])})
    s["positions"] = folder / "positions.fits"
    # a score prior and a training checkpoint of the TINY_PRIOR network (untrained weights)
    pcfg = load_config([], TINY_PRIOR)
    spec, hyper = train_spec(pcfg.prior, 0.02, 2e-4, 0.2)
    mode_var = white_mode_variance(NPIX, NPIX)
    state = init_train(jax.random.PRNGKey(0), spec, hyper, mode_var)
    save_checkpoint(folder / "p.ckpt.h5", state, {"train_loss": np.zeros(0)}, "seed: 0\n", [str(s["maps"])])
    s["checkpoint"] = folder / "p.ckpt.h5"
    unet = spec.unet._replace(spectral_norm=False)
    params, _ = residual_network(unet).init(jax.random.PRNGKey(1), np.zeros((1, NPIX, NPIX), np.float32),
                                            np.ones(1, np.float32), mode_var)
    write_prior(folder / "prior.h5", params, unet, pixel_size_arcmin=PIX, npix=NPIX, sigma_min=2e-4,
                sigma_max=0.2, sigma_distribution="log_uniform", kappa_mean=0.0, kappa_std=0.02, cl_table=None,
                history={}, info={"provenance": {}, "training": {}, "metrics": {}})
    s["prior"] = folder / "prior.h5"
    return s


# ------------------------------------------------------------------ damage

def _bytes(seeds, key):
    return seeds[key].read_bytes()


def _random_bytes(n: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


def generic_damage(kind: "Kind") -> dict[str, Callable]:
    """Byte-level damage every kind must survive: (path, seeds) -> writes the damaged file at path."""
    other = {"fits": "maps", "hdf5": "catalog", "text": "catalog", "npy": "catalog"}[kind.container]

    def truncate(fraction):
        def make(path, seeds):
            raw = _bytes(seeds, kind.seed)
            cut = max(1, min(len(raw) - 1, int(len(raw) * fraction))) if fraction < 1 else len(raw) - 1
            path.write_bytes(raw[:cut])
        return make

    def garbled_start(path, seeds):
        raw = bytearray(_bytes(seeds, kind.seed))
        raw[:64] = _random_bytes(64, 3)
        path.write_bytes(bytes(raw))

    return {
        "missing": lambda path, seeds: None,
        "empty": lambda path, seeds: path.write_bytes(b""),
        "directory": lambda path, seeds: path.mkdir(),
        "truncated 1 byte": truncate(0.0),
        "truncated 10%": truncate(0.1),
        "truncated 50%": truncate(0.5),
        "truncated 90%": truncate(0.9),
        "truncated last byte": truncate(1.0),
        "wrong kind of file": lambda path, seeds: path.write_bytes(_bytes(seeds, other)),
        "random bytes": lambda path, seeds: path.write_bytes(_random_bytes(4096, 1)),
        "garbled header": garbled_start,
        # opening a pipe for reading blocks until a writer comes: a reader that does not refuse it hangs
        "named pipe": lambda path, seeds: os.mkfifo(path),
    }


def _fits_edit(seed_key, edit):
    """Damage that rewrites a seed FITS file with astropy: ``edit(hdulist)`` changes it in place."""
    def make(path, seeds):
        with fits.open(seeds[seed_key]) as h:
            h = fits.HDUList([hdu.copy() for hdu in h])
        edit(h)
        if "NEXTEND" in h[0].header:  # as a tool rewriting the file would: the layout is what is wrong
            h[0].header["NEXTEND"] = len(h) - 1
        h.writeto(path, output_verify="ignore")
    return make


def _fits_card(seed_key, hdu_index, card, value):
    """Overwrite one header card's value in the raw bytes (what astropy itself refuses to write)."""
    def make(path, seeds):
        raw = bytearray(seeds[seed_key].read_bytes())
        with fits.open(seeds[seed_key]) as h:
            info = h.fileinfo(hdu_index)
        at = raw.index(card.ljust(8).encode() + b"=", info["hdrLoc"], info["datLoc"])
        raw[at:at + 80] = f"{card.ljust(8)}= {value:>20}".ljust(80).encode()
        path.write_bytes(bytes(raw))
    return make


def _set_image(name, data=None, header=None, drop=False, table=False):
    def edit(h):
        i = h.index_of(name)
        if drop:
            del h[i]
        elif table:
            h[i] = fits.BinTableHDU.from_columns([fits.Column(name="X", format="D", array=np.zeros(3))], name=name)
        else:
            old = h[i]
            h[i] = fits.ImageHDU(data if data is not None else old.data, header=header or old.header, name=name)
    return edit


def _nan_image(name):
    def edit(h):
        d = np.array(h[name].data, np.float32)
        d[:] = np.nan
        h[name].data = d
    return edit


def _h5_edit(seed_key, edit):
    def make(path, seeds):
        shutil.copyfile(seeds[seed_key], path)
        with h5py.File(path, "r+") as f:
            edit(f)
    return make


def _replace_dataset(f, name, data, **kw):
    del f[name]
    f.create_dataset(name, data=data, **kw)


def _text(content: str):
    return lambda path, seeds: path.write_text(content)


@functools.cache
def _text_damage_table() -> dict:
    import yaml

    return yaml.safe_load(Path(__file__).with_name("text_damages.yaml").read_text(encoding="utf-8"))


def _text_damages(seed: str) -> dict[str, tuple[Callable, str | None]]:
    """The layout damages of a text kind, from tests/text_damages.yaml: each writes its text as the file."""
    return {damage: (_text(content), needle) for damage, (content, needle) in _text_damage_table()[seed].items()}


def _catalog(columns, hdu_cls=fits.BinTableHDU):
    return lambda path, seeds: write_table(path, columns, hdu_cls)


def _seed_catalog_with(**changes):
    def make(path, seeds):
        with fits.open(seeds["catalog"]) as h:
            cols = {c: np.array(h[1].data[c]) for c in h[1].columns.names}
        for k, v in changes.items():
            if v is None:
                cols.pop(k)
            else:
                cols[k] = v(cols[k]) if callable(v) else v
        write_table(path, cols)
    return make


def _npy(array):
    return lambda path, seeds: np.save(path, array, allow_pickle=False)


def _other_architecture_checkpoint(path, seeds):
    import jax

    from massmap.config import load_config
    from massmap.io.checkpoints import save_checkpoint
    from massmap.pipeline.train_prior import train_spec
    from massmap.prior.dsm import white_mode_variance
    from massmap.prior.training import init_train

    cfg = load_config([], TINY_PRIOR + ["prior.channels=[4,4]"])
    spec, hyper = train_spec(cfg.prior, 0.02, 2e-4, 0.2)
    state = init_train(jax.random.PRNGKey(0), spec, hyper, white_mode_variance(NPIX, NPIX))
    save_checkpoint(path, state, {"train_loss": np.zeros(0)}, "seed: 0\n", [str(seeds["maps"])])


def flip_largest_param_bytes(path: Path) -> None:
    """Invert, in place, the stored bytes of the largest array in the file's ``params`` group (a prior or
    a checkpoint): the file still opens, but that array's checksum no longer matches."""
    with h5py.File(path, "r") as f:
        ds = max((f["params"][n] for n in f["params"]), key=lambda d: d.size)
        offset, nbytes = ds.id.get_offset(), ds.id.get_storage_size()
    raw = bytearray(path.read_bytes())
    raw[offset:offset + nbytes] = bytes(b ^ 0xFF for b in raw[offset:offset + nbytes])
    path.write_bytes(bytes(raw))


def _flip_checkpoint_bytes(path, seeds):
    shutil.copyfile(seeds["checkpoint"], path)
    flip_largest_param_bytes(path)


def _prior_param(edit):
    def change(f):
        ds = max((d for d in _datasets(f["params"])), key=lambda d: d.size)
        name, data = ds.name, np.array(ds[()])
        del f[name]
        f.create_dataset(name, data=edit(data))
    return change


def _datasets(group):
    out = []
    group.visititems(lambda n, o: out.append(o) if isinstance(o, h5py.Dataset) else None)
    return out


def _nan_like(a):
    a = np.array(a, np.float32)
    a[...] = np.nan
    return a


# ------------------------------------------------------------------ kinds

@dataclass(frozen=True)
class Kind:
    """A kind of file massmap reads, the command that reads it, and its layout damages."""

    name: str
    seed: str  # key of the valid seed file
    filename: str  # name of the damaged file in the case folder
    container: str  # fits | hdf5 | text | npy: selects the 'wrong kind of file'
    argv: Callable[[Path, Path, dict], list[str]]  # (damaged file, case folder, seeds) -> CLI arguments
    output: str  # what the command would write, in the case folder (must not exist afterwards)
    layout: dict[str, tuple[Callable, str | None]]  # damage -> (make(path, seeds), word expected in message)
    # damages after which the file may still be a valid file of its kind, so that reading it is right:
    # text carries no length (a cut at a line boundary is a shorter valid table), an empty YAML file is
    # the empty config. For these, success (with a complete output) is handled too.
    tolerant: frozenset = frozenset()
    not_applicable: frozenset = frozenset()  # generic damages that do not apply to this kind (say why)


def _reconstruct(cat, folder, *more):
    return ["reconstruct", str(cat), "-o", str(folder / "out.fits"), "--no-plot", "--quiet",
            *sets("grid.npix=16", f"grid.pixel_size_arcmin={PIX}", "pad=0"), *more]


def _summarize(recon, folder, *more):
    return ["summarize", str(recon), "-o", str(folder / "summary"), "--quiet",
            *sets("summarize.n_noise=4", "summarize.noise_chunk=4"), *more]


def _simple_wcs_header():
    from massmap.geometry import FlatGrid

    return FlatGrid(150.0, 2.0, PIX, NPIX, NPIX).wcs().to_header()


TEXT_TRUNCATIONS = frozenset({"truncated 10%", "truncated 50%", "truncated 90%", "truncated last byte"})

KINDS: list[Kind] = [
    Kind("catalog", "catalog", "cat.fits", "fits",
         lambda p, d, s: _reconstruct(p, d, "--method", "ks"), "out.fits", {
             "image instead of table": (_fits_edit("kappa", lambda h: None), "table"),
             "no E1 column": (_seed_catalog_with(E1=None), "e1"),
             "text E1 column": (_seed_catalog_with(E1=lambda v: np.array([f"{x:.3f}" for x in v])), "numeric"),
             "vector E1 column": (_seed_catalog_with(E1=lambda v: np.c_[v, v]), "numeric"),
             "complex E1 column": (_seed_catalog_with(E1=lambda v: v + 0.1j), "complex"),
             "cut gzip stream": (lambda path, seeds: path.write_bytes(gzip.compress(_bytes(seeds, "catalog"))[:-200]),
                                 "compressed"),
             "no rows": (_catalog({"RA": np.zeros(0), "DEC": np.zeros(0), "E1": np.zeros(0), "E2": np.zeros(0)}),
                         "no rows"),
             "all E1 NaN": (_seed_catalog_with(E1=lambda v: np.full_like(v, np.nan)), "no usable rows"),
             "all RA inf": (_seed_catalog_with(RA=lambda v: np.full_like(v, np.inf)), "no usable rows"),
             "whole-sky positions": (_seed_catalog_with(RA=lambda v: np.linspace(0, 359, v.size),
                                                        DEC=lambda v: np.linspace(-89, 89, v.size)), "grid.npix"),
             "absurd NAXIS2": (_fits_card("catalog", 1, "NAXIS2", 10**12), "truncated|data size"),
             "corrupt TFORM": (_fits_card("catalog", 1, "TFORM1", "'QQ'"), None),
         }),
    Kind("binned shear map", "shear", "shear.fits", "fits",
         lambda p, d, s: _reconstruct(p, d, "--method", "ks"), "out.fits", {
             "GAMMA1 as table": (_fits_edit("shear", _set_image("GAMMA1", table=True)), "GAMMA1"),
             "no NOISE_STD": (_fits_edit("shear", _set_image("NOISE_STD", drop=True)), "NOISE_STD"),
             "GAMMA2 of other shape": (_fits_edit("shear", _set_image("GAMMA2", data=np.zeros((8, 8), np.float32))),
                                       "shape"),
             "3-D GAMMA1": (_fits_edit("shear", _set_image("GAMMA1", data=np.zeros((2, NPIX, NPIX), np.float32))),
                            "2-D"),
             "all NOISE_STD NaN": (_fits_edit("shear", _nan_image("NOISE_STD")), "no pixel"),
             "bad WCS projection": (_fits_card("shear", 1, "CTYPE1", "'RA---XYZ'"), None),
             "no WCS": (_fits_edit("shear", lambda h: [h[n].header.remove("CTYPE1") for n in range(1, 5)]), "WCS"),
             "absurd NAXIS1": (_fits_card("shear", 1, "NAXIS1", 10**9), "truncated"),
         }),
    Kind("reconstruction", "recon", "recon.fits", "fits",
         lambda p, d, s: _summarize(p, d), "summary", {
             "no κ extension": (_fits_edit("recon", lambda h: [h.pop(h.index_of(n)) for n in
                                                               ("KAPPA_KS", "KAPPA_KS_B", "KAPPA_WIENER")]),
                                "not a massmap reconstruction"),
             "no provenance": (_fits_edit("recon", lambda h: h[0].header.remove("MMVERS")),
                               "not a massmap reconstruction"),
             "NaN in KAPPA_KS": (_fits_edit("recon", _nan_image("KAPPA_KS")), "NaN"),
             "KAPPA_WIENER of other shape": (_fits_edit("recon", _set_image("KAPPA_WIENER",
                                                                            data=np.zeros((8, 8), np.float32))),
                                             "shape"),
             "garbled recorded config": (_fits_edit("recon", lambda h: h[0].header.add_history("{[: unbalanced")),
                                         "config"),
             "empty MASK": (_fits_edit("recon", lambda h: setattr(h["MASK"], "data", np.zeros((NPIX, NPIX),
                                                                                            np.uint8))), "MASK"),
             "absurd NAXIS2": (_fits_card("recon", 2, "NAXIS2", 10**9), "truncated"),
             "negative NOISE_STD": (_fits_edit("recon", lambda h: setattr(h["NOISE_STD"], "data",
                                                                           -np.abs(h["NOISE_STD"].data))), "NOISE_STD"),
             "KAPPA_WIENER on another grid": (_fits_edit("recon", lambda h: h["KAPPA_WIENER"].header.set(
                 "CRVAL1", h["KAPPA_WIENER"].header["CRVAL1"] + 0.5)), "another WCS"),
             # wcslib refuses these inside read_reconstruction, past open_fits: only its @reads turns them
             # into one line (without it, exit 1 and a traceback)
             "bad WCS projection": (_fits_card("recon", 1, "CTYPE1", "'RA---XYZ'"), "damaged"),
             "singular WCS": (_fits_card("recon", 1, "CDELT1", 0), "damaged"),
         }),
    Kind("κ map", "kappa", "kappa.fits", "fits",
         lambda p, d, s: ["mock-catalog", str(p), "-o", str(d / "mock.fits")], "mock.fits", {
             "table instead of image": (_catalog({"KAPPA": np.zeros(4)}), "image"),
             "3-D image": (_fits_edit("kappa", _set_image("KAPPA", data=np.zeros((2, NPIX, NPIX), np.float32))),
                           "2-D"),
             "NaN pixels": (_fits_edit("kappa", _nan_image("KAPPA")), "NaN"),
             "no WCS": (_fits_edit("kappa", lambda h: h["KAPPA"].header.remove("CTYPE1")), "WCS"),
             "non-square pixels": (_fits_edit("kappa", lambda h: h["KAPPA"].header.set("CDELT2", 0.05)), "square"),
             "absurd NAXIS1": (_fits_card("kappa", 1, "NAXIS1", 10**9), "truncated"),
             "SIP distortion": (_fits_edit("kappa", lambda h: h["KAPPA"].header.update(
                 {"CTYPE1": "RA---TAN-SIP", "CTYPE2": "DEC--TAN-SIP", "A_ORDER": 2, "B_ORDER": 2, "A_2_0": 1e-5,
                  "B_0_2": 1e-5})), "SIP"),
             "rotated 90°": (_fits_edit("kappa", lambda h: h["KAPPA"].header.update(
                 {"PC1_1": 0.0, "PC1_2": 1.0, "PC2_1": -1.0, "PC2_2": 0.0})), "North-up"),
         }),
    Kind("map set", "maps", "maps.h5", "hdf5",
         lambda p, d, s: ["mock-catalog", str(p), "--index", "0", "-o", str(d / "mock.fits")], "mock.fits", {
             "plain HDF5 without format": (_h5_edit("maps", lambda f: f.attrs.__delitem__("format")),
                                           "not a massmap map set"),
             "no kappa dataset": (_h5_edit("maps", lambda f: f.__delitem__("kappa")), "not a massmap map set"),
             "kappa is 2-D": (_h5_edit("maps", lambda f: _replace_dataset(f, "kappa", np.zeros((4, NPIX)))),
                              "kappa"),
             "kappa is text": (_h5_edit("maps", lambda f: _replace_dataset(f, "kappa", np.full((4, 2, 2), b"x"))),
                               "kappa"),
             "n_done beyond the maps": (_h5_edit("maps", lambda f: f.attrs.__setitem__("n_done", 10**9)), "n_done"),
             "n_done counts unstored maps": (_h5_edit("maps", lambda f: (f["kappa"].resize(10**6, axis=0),
                                                                         f.attrs.__setitem__("n_done", 10**6))),
                                             "stores fewer"),
             "NaN map": (_h5_edit("maps", lambda f: f["kappa"].__setitem__(0, np.nan)), "NaN"),
             "future format version": (_h5_edit("maps", lambda f: f.attrs.__setitem__("format_version", 99)),
                                       "version"),
             "garbled provenance YAML": (_h5_edit("maps", lambda f: f.attrs.__setitem__("provenance", "{[: x")),
                                         None),
             "no pixel size": (_h5_edit("maps", lambda f: f.attrs.__delitem__("pixel_size_arcmin")), "pixel_size"),
             "infinite pixel size": (_h5_edit("maps", lambda f: f.attrs.__setitem__("pixel_size_arcmin", np.inf)),
                                     "pixel_size_arcmin"),
             "pixel size true": (_h5_edit("maps", lambda f: f.attrs.__setitem__("pixel_size_arcmin", True)),
                                 "pixel_size_arcmin"),
             "pixels wider than the sky": (_h5_edit("maps", lambda f: f.attrs.__setitem__("pixel_size_arcmin", 1e6)),
                                           "90°"),
         }),
    Kind("prior", "prior", "prior.h5", "hdf5",
         lambda p, d, s: ["reconstruct", str(s["shear"]), "-o", str(d / "out.fits"), "--method", "posterior",
                          "--prior", str(p), "--n-samples", "2", "--no-plot", "--quiet",
                          *sets("pad=0", f"wiener.cl_file={s['cl']}")], "out.fits", {
             "map set instead": (lambda path, seeds: shutil.copyfile(seeds["maps"], path), "not a massmap prior"),
             "no params": (_h5_edit("prior", lambda f: f.__delitem__("params")), "not a massmap prior"),
             "mis-shaped parameter": (_h5_edit("prior", _prior_param(lambda a: a[..., :1])), "parameter"),
             "NaN parameter": (_h5_edit("prior", _prior_param(_nan_like)), "parameter"),
             "absurd npix": (_h5_edit("prior", lambda f: f.attrs.__setitem__("npix", 10**9)), "npix"),
             "sigma range reversed": (_h5_edit("prior", lambda f: f.attrs.__setitem__("sigma_min", 1.0)), "sigma"),
             "future format version": (_h5_edit("prior", lambda f: f.attrs.__setitem__("format_version", 99)),
                                       "version"),
             "garbled architecture JSON": (_h5_edit("prior", lambda f: _replace_dataset(f, "meta/architecture",
                                                                                         "{not json")), None),
         }),
    Kind("checkpoint", "checkpoint", "p.ckpt.h5", "hdf5",
         lambda p, d, s: ["train-prior", str(s["maps"]), "-o", str(d / "p.h5"), "--resume", "--quiet",
                          *sets(*TINY_PRIOR)], "p.h5", {
             "flipped bytes": (_flip_checkpoint_bytes, "checksum"),
             "other architecture": (_other_architecture_checkpoint, "does not match"),
             "not a checkpoint": (lambda path, seeds: shutil.copyfile(seeds["prior"], path), "not a massmap prior "
                                                                                               "checkpoint"),
         }, not_applicable=frozenset({"missing"})),  # --resume without a checkpoint starts at step 0 (test_kills)
    Kind("C_ell table", "cl", "cl.txt", "text",
         lambda p, d, s: _reconstruct(s["catalog"], d, "--method", "wiener", *sets(f"wiener.cl_file={p}")),
         "out.fits", _text_damages("cl"), TEXT_TRUNCATIONS),
    Kind("n(z) table", "nz", "nz.txt", "text",
         lambda p, d, s: ["simulate", "-o", str(d / "maps.h5"), "--quiet",
                          *sets("sources.nz=file", f"sources.nz_file={p}", "simulate.npix=16", "simulate.n_maps=1",
                                "simulate.nonlinear=false")], "maps.h5", _text_damages("nz"), TEXT_TRUNCATIONS),
    Kind("YAML config", "config", "config.yaml", "text",
         lambda p, d, s: ["reconstruct", str(s["catalog"]), "-o", str(d / "out.fits"), "--method", "ks", "--no-plot",
                          "--quiet", "--config", str(p)], "out.fits", {
             **_text_damages("config"),
             "binary": (lambda path, seeds: path.write_bytes(b"\xff\xfe\x00grid"), "UTF-8"),
         }, TEXT_TRUNCATIONS | {"empty"}),
    Kind("positions table", "positions", "positions.fits", "fits",
         lambda p, d, s: _summarize(s["recon"], d, "--positions", str(p)), "summary", {
             "no RA column": (_catalog({"X": [1.0], "DEC": [2.0]}), "RA"),
             "text RA column": (_catalog({"RA": np.array(["150.0"]), "DEC": [2.0]}), "numeric"),
             "NaN Dec": (_catalog({"RA": [150.0], "DEC": [np.nan]}), "finite"),
             "no rows": (_catalog({"RA": np.zeros(0), "DEC": np.zeros(0)}), "no table rows"),
             "image instead of table": (_fits_edit("kappa", lambda h: None), "table"),
         }),
    Kind("training array", "npy", "maps.npy", "npy",
         lambda p, d, s: ["train-prior", str(p), "-o", str(d / "p.h5"), "--quiet",
                          *sets(*TINY_PRIOR, f"prior.input_pixel_size_arcmin={PIX}")], "p.h5", {
             "text array": (_npy(np.array(["a", "b"])), "not numeric"),
             "1-D array": (_npy(np.zeros(16, np.float32)), "shape"),
             "NaN map": (_npy(np.full((2, NPIX, NPIX), np.nan, np.float32)), "NaN"),
             "pickled object array": (lambda path, seeds: np.save(path, np.array([{"a": 1}], dtype=object)),
                                      "readable"),
             "absurd shape in header": (lambda path, seeds: path.write_bytes(
                 _bytes(seeds, "npy").replace(b"(3, 16, 16)", b"(9999999, 9999, 9999)")), "readable"),
         }),
]


def matches(needle: str | None, line: str) -> bool:
    """Whether the message holds the needle ('a|b': either), case-insensitively."""
    return needle is None or any(n.lower() in line.lower() for n in needle.split("|"))


def cases() -> list[tuple[Kind, str, Callable, str | None]]:
    """Every (kind, damage) pair: the generic damages and the kind's own layout damages."""
    out = []
    for kind in KINDS:
        for damage, make in generic_damage(kind).items():
            if damage not in kind.not_applicable:
                out.append((kind, damage, make, None))
        for damage, (make, needle) in kind.layout.items():
            out.append((kind, damage, make, needle))
    return out


def leftovers(folder: Path, output: str) -> list[str]:
    """Files a failed command must not leave: the output, its temporary files, sidecar and preview."""
    stem = output.rsplit(".", 1)[0]
    names = {output, f"{stem}.config.yaml", f"{stem}.png", f"{output}.part", f"{stem}.loss.png"}
    return sorted(p.name for p in folder.iterdir()
                  if p.name in names or p.name.startswith(f".{output}.") or p.name.startswith(f".{stem}."))


def is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0
