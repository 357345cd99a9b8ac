"""End-to-end reconstruction: analytic profile, mocks, round trips, provenance and the CLI."""
import jax.numpy as jnp
import numpy as np
import pytest
import yaml
from astropy.io import fits
from click.testing import CliRunner

from massmap.cli import main
from massmap.config import load_config
from massmap.geometry import FlatGrid
from massmap.io.maps import config_from_header, write_maps
from massmap.io.output import provenance
from massmap.io.reconstruction import read_reconstruction
from massmap.ops.shear import kappa_to_shear
from massmap.pipeline.mock import run_mock_catalog
from massmap.pipeline.reconstruct import run_reconstruct

from conftest import write_table


def _gaussian_profile_catalog(path, grid, s_arcmin=4.0, k0=0.3, per_pixel=4, seed=0):
    """Dense noiseless catalog of the analytic shear of a Gaussian κ profile at the grid centre."""
    rng = np.random.default_rng(seed)
    n = grid.ny * grid.nx * per_pixel
    x = rng.uniform(-0.5, grid.nx - 0.5, n)
    y = rng.uniform(-0.5, grid.ny - 0.5, n)
    dx = (x - (grid.nx - 1) / 2) * grid.pixel_size_arcmin
    dy = (y - (grid.ny - 1) / 2) * grid.pixel_size_arcmin
    r2 = dx**2 + dy**2
    kappa = k0 * np.exp(-r2 / (2 * s_arcmin**2))
    kbar = k0 * 2 * s_arcmin**2 / r2 * (1 - np.exp(-r2 / (2 * s_arcmin**2)))
    gt = kbar - kappa
    phi = np.arctan2(dy, dx)
    ra, dec = grid.pixel_to_world(x, y)
    write_table(path, {"RA": ra, "DEC": dec, "E1": -gt * np.cos(2 * phi), "E2": -gt * np.sin(2 * phi)})


def test_analytic_gaussian_profile_reconstructs_positive_kappa(tmp_path):
    grid = FlatGrid(150.0, 2.0, 1.0, 48, 48)
    _gaussian_profile_catalog(tmp_path / "cat.fits", grid)
    cfg = load_config(overrides=["grid.npix=48", "grid.center=[150.0, 2.0]", "pad=32"])
    run_reconstruct(cfg, tmp_path / "cat.fits", tmp_path / "out.fits", method="ks", plot=False)
    with fits.open(tmp_path / "out.fits") as h:
        ke = h["KAPPA_KS"].data
    y, x = np.mgrid[:48, :48] - 23.5
    truth = 0.3 * np.exp(-(x**2 + y**2) / 32.0)
    inner = slice(8, 40)
    r = np.corrcoef(ke[inner, inner].ravel(), truth[inner, inner].ravel())[0, 1]
    assert r > 0.99, r  # issue requirement: noiseless, dense → correlation > 0.99 in the interior
    assert ke[23:25, 23:25].mean() > 0.2  # positive mass → positive κ (sign convention)


@pytest.mark.parametrize("ra0, dec0", [(0.0, 0.0), (0.0, 90.0), (200.0, -90.0)])
def test_mock_catalog_then_reconstruct_recovers_truth(tmp_path, ra0, dec0):
    # RA = 0: the grid straddles the 0/360 wrap; Dec ±90: the κ image and the map centred on a pole
    grid = FlatGrid(ra0, dec0, 2.0, 32, 32)
    rng = np.random.default_rng(0)
    kappa = np.fft.ifft2(np.fft.fft2(rng.normal(size=(32, 32))) * np.exp(-np.fft.fftfreq(32)[:, None] ** 2 * 40
                                                                       - np.fft.fftfreq(32)[None] ** 2 * 40)).real
    kappa = (0.05 * kappa / kappa.std()).astype(np.float32)
    cfg = load_config(overrides=["mock.sigma_e=0", "mock.n_gal=8"])
    write_maps(tmp_path / "truth_in.fits", grid, {"KAPPA": kappa}, provenance(cfg, "test"))
    info = run_mock_catalog(cfg, tmp_path / "truth_in.fits", tmp_path / "mock.fits", tmp_path / "truth.fits")
    assert info["n_galaxies"] > 0
    rec_cfg = load_config(overrides=["grid.npix=32", "grid.pixel_size_arcmin=2", f"grid.center=[{ra0}, {dec0}]",
                                     "pad=0"])
    run_reconstruct(rec_cfg, tmp_path / "mock.fits", tmp_path / "rec.fits", method="ks", plot=False)
    with fits.open(tmp_path / "rec.fits") as h:
        ke, mask = h["KAPPA_KS"].data, h["MASK"].data
    assert mask.all()  # 32 galaxies per pixel on average: every pixel has data
    # Noiseless, every pixel sampled, periodic KS: exact up to the (unconstrained) mean.
    np.testing.assert_allclose(ke, kappa - kappa.mean(), atol=1e-5)


def test_mock_catalog_at_the_positions_of_a_survey_footprint(tmp_path):
    """mock.positions: a 'survey' catalog far from the map (RA 150, Dec 2) with a circular hole of radius
    8′ off its centre and 50 galaxies/arcmin², a 40′ × 40′ square, laid on a 32² map of 1′ pixels at
    RA = Dec = 0: the mock has no galaxy in the hole, thinned to mock.n_gal = 10 per arcmin² of the
    occupied pixels (Poisson: 10 per pixel, ±4% over ~830 pixels, 10% tolerance), nothing off the map,
    and (σ_e = 0) exactly the shear of its pixel."""
    rng = np.random.default_rng(1)
    survey = FlatGrid(150.0, 2.0, 1.0, 40, 40)
    n = 40 * 40 * 50
    x, y = rng.uniform(-0.5, 39.5, n), rng.uniform(-0.5, 39.5, n)
    hole = np.hypot(x - 25.5, y - 19.5) < 8.0  # 6′ right of the centre (19.5, 19.5)
    ra, dec = survey.pixel_to_world(x[~hole], y[~hole])
    write_table(tmp_path / "survey.fits", {"RA": ra, "DEC": dec, "E1": np.zeros(ra.size), "E2": np.zeros(ra.size)})
    grid = FlatGrid(0.0, 0.0, 1.0, 32, 32)
    kappa = (0.05 * rng.normal(size=(32, 32))).astype(np.float32)
    cfg = load_config(overrides=["mock.sigma_e=0", "mock.n_gal=10", f"mock.positions={tmp_path / 'survey.fits'}"])
    write_maps(tmp_path / "k.fits", grid, {"KAPPA": kappa}, provenance(cfg, "test"))
    info = run_mock_catalog(cfg, tmp_path / "k.fits", tmp_path / "mock.fits")
    with fits.open(tmp_path / "mock.fits") as h:
        cat = h[1].data
    mx, my = grid.world_to_pixel(cat["RA"], cat["DEC"])
    assert mx.min() >= -0.5 and mx.max() < 31.5 and my.min() >= -0.5 and my.max() < 31.5
    # the catalog's centre (its mean position: the hole moves it by ≈ 0.9′) lands on the map's centre
    hx, hy = 25.5 - x[~hole].mean() + 15.5, 19.5 - y[~hole].mean() + 15.5
    assert not np.any(np.hypot(mx - hx, my - hy) < 7.8)
    occupied = np.unique(np.round(my).astype(int) * 32 + np.round(mx).astype(int)).size
    assert occupied < 32 * 32 - 150  # the hole (≈ 200 pixels) is empty
    assert info["n_galaxies"] / occupied == pytest.approx(10.0, rel=0.1)
    g1, g2 = (np.asarray(a) for a in kappa_to_shear(jnp.asarray(kappa)))
    ix, iy = np.round(mx).astype(int), np.round(my).astype(int)
    np.testing.assert_allclose(cat["E1"], g1[iy, ix], atol=1e-6)
    np.testing.assert_allclose(cat["E2"], g2[iy, ix], atol=1e-6)
    # a catalog whose every galaxy lies more than the map's half-width from its centre: one-line error
    ring = np.hypot(x - 19.5, y - 19.5) > 23.0  # the map reaches 16√2 ≈ 22.6′ from its centre
    ra, dec = survey.pixel_to_world(x[ring], y[ring])
    write_table(tmp_path / "ring.fits", {"RA": ra, "DEC": dec, "E1": np.zeros(ra.size), "E2": np.zeros(ra.size)})
    bad = CliRunner().invoke(main, ["mock-catalog", str(tmp_path / "k.fits"), "-o", str(tmp_path / "m2.fits"),
                                    "--set", f"mock.positions={tmp_path / 'ring.fits'}"])
    assert bad.exit_code == 2 and "mock.positions" in bad.output and "ring.fits" in bad.output, bad.output
    assert not (tmp_path / "m2.fits").exists()


def test_catalog_centre_across_ra_zero_and_at_a_pole():
    """The footprint's centre is the direction of the mean unit vector: a patch straddling RA = 0 has its
    centre at RA ≈ 0 (not 180), a cap around the north pole at Dec ≈ 90 (a mean of Dec would give the
    cap's mean colatitude off the pole: 89.83° here). Exact for these symmetric patches up to rounding."""
    from massmap.pipeline.mock import catalog_centre

    ra = np.array([359.0, 359.5, 0.5, 1.0])
    dec = np.array([-1.0, 1.0, -1.0, 1.0])
    r0, d0 = catalog_centre(ra, dec)
    assert min(r0, 360 - r0) < 1e-9 and abs(d0) < 1e-9
    phi = np.linspace(0, 360, 72, endpoint=False)
    r0, d0 = catalog_centre(np.repeat(phi, 3), np.tile([89.9, 89.8, 89.75], 72))
    assert d0 == pytest.approx(90.0, abs=1e-9)


def test_binned_shear_output_is_valid_input(tmp_path):
    grid = FlatGrid(150.0, 2.0, 1.0, 32, 32)
    _gaussian_profile_catalog(tmp_path / "cat.fits", grid, per_pixel=2)
    cfg = load_config(overrides=["grid.npix=32", "grid.center=[150, 2]", "pad=8", "noise.sigma_e=0.3",
                                 "wiener.cl_file=" + str(_cl_file(tmp_path))])
    run_reconstruct(cfg, tmp_path / "cat.fits", tmp_path / "a.fits", method="ks,wiener", plot=False)
    run_reconstruct(cfg, tmp_path / "a.fits", tmp_path / "b.fits", method="ks,wiener", plot=False)
    with fits.open(tmp_path / "a.fits") as a, fits.open(tmp_path / "b.fits") as b:
        for name in ("KAPPA_KS", "KAPPA_KS_B", "KAPPA_WIENER", "GAMMA1", "NOISE_STD", "MASK"):
            np.testing.assert_allclose(a[name].data, b[name].data, atol=1e-6, err_msg=name)
        assert a["KAPPA_KS"].header["CTYPE1"] == "RA---TAN" and a["KAPPA_KS"].header["CDELT1"] < 0


def _cl_file(tmp_path):
    ell = np.geomspace(10, 1e5, 50)
    np.savetxt(tmp_path / "cl.txt", np.c_[ell, 1e-9 * (ell / 1000) ** -1.2])
    return tmp_path / "cl.txt"


def test_provenance_and_determinism(tmp_path):
    grid = FlatGrid(150.0, 2.0, 1.0, 16, 16)
    cfg = load_config(overrides=["seed=7", "mock.n_gal=5"])
    write_maps(tmp_path / "k.fits", grid, {"KAPPA": np.zeros((16, 16), np.float32)}, provenance(cfg, "test"))
    run_mock_catalog(cfg, tmp_path / "k.fits", tmp_path / "m1.fits")
    run_mock_catalog(cfg, tmp_path / "k.fits", tmp_path / "m2.fits")
    with fits.open(tmp_path / "m1.fits") as a, fits.open(tmp_path / "m2.fits") as b:
        assert np.array_equal(a[1].data["E1"], b[1].data["E1"])  # same config + seed → same numbers
        hdr = a[0].header
        assert hdr["MMVERS"] and hdr["SEED"] == 7
        assert config_from_header(hdr)["mock"]["n_gal"] == 5.0
    side = yaml.safe_load((tmp_path / "m1.config.yaml").read_text())
    assert side["seed"] == 7


def test_long_config_values_survive_the_header(tmp_path):
    # FITS cards hold 72 characters; long values (paths) must round-trip exactly through HISTORY.
    from massmap.config import to_dict

    long_path = "/data/" + "a" * 80 + "  two  spaces " + "b" * 75 + ".txt"
    cfg = load_config(overrides=[f"wiener.cl_file={long_path}"])
    write_maps(tmp_path / "p.fits", FlatGrid(1.0, 1.0, 1.0, 4, 4), {"KAPPA": np.zeros((4, 4))},
               provenance(cfg, "test"))
    with fits.open(tmp_path / "p.fits") as h:
        assert config_from_header(h[0].header) == to_dict(cfg)


def test_wiener_solvers_agree_in_the_exact_case(tmp_path):
    # Uniform noise, full coverage, pad = 0: CG must reproduce the closed form.
    _uniform_shear_file(tmp_path)
    out = {}
    for solver in ("fourier", "cg"):
        cfg = load_config(overrides=["pad=0", f"wiener.solver={solver}", "wiener.tol=1e-6",
                                     "wiener.cl_file=" + str(_cl_file(tmp_path))])
        info = run_reconstruct(cfg, tmp_path / "shear.fits", tmp_path / f"{solver}.fits", method="wiener",
                               plot=False)
        with fits.open(tmp_path / f"{solver}.fits") as h:
            out[solver] = h["KAPPA_WIENER"].data.copy()
    assert info["wiener_converged"]
    np.testing.assert_allclose(out["cg"], out["fourier"], atol=1e-4 * out["fourier"].std())


def _uniform_shear_file(tmp_path, n=32, sigma=0.05):
    grid = FlatGrid(10.0, -30.0, 2.0, n, n)
    rng = np.random.default_rng(1)
    images = {"GAMMA1": rng.normal(0, sigma, (n, n)), "GAMMA2": rng.normal(0, sigma, (n, n)),
              "NOISE_STD": np.full((n, n), sigma), "MASK": np.ones((n, n), np.uint8)}
    write_maps(tmp_path / "shear.fits", grid, images, provenance(load_config(), "test"))
    return tmp_path / "shear.fits"


def test_posterior_methods_are_written_with_diagnostics(tmp_path):
    shear = _uniform_shear_file(tmp_path)
    cfg = load_config(overrides=["pad=0", "posterior.prior=gaussian", "posterior.n_samples=16",
                                 "posterior.chains=4", "posterior.chunk=4", "wiener.cl_file=" + str(_cl_file(tmp_path))])
    info = run_reconstruct(cfg, shear, tmp_path / "p.fits", method="wiener,posterior,map", plot=False)
    with fits.open(tmp_path / "p.fits") as h:
        assert h["KAPPA_SAMPLES"].data.shape == (16, 32, 32)
        assert h["KAPPA_SAMPLES"].header["CTYPE1"] == "RA---TAN"
        mean, std, wie, kmap = (h[n].data for n in ("KAPPA_MEAN", "KAPPA_STD", "KAPPA_WIENER", "KAPPA_MAP"))
        diag = h["DIAGNOSTICS"]
        assert len(diag.data["SIGMA"]) == cfg.posterior.n_levels and diag.header["PRIOR"] == "gaussian"
    # Gaussian prior, uniform noise, no mask, pad 0: the posterior mean is the Wiener map up to Monte-Carlo
    # error std/sqrt(16) per pixel for independent draws (mean z² ≈ 1; 2 allows for correlated draws; the
    # default antithetic pairs make it much smaller), and the MAP is Wiener.
    z2 = np.mean(((mean - wie) / (std / 4.0)) ** 2)
    assert z2 < 2.0, z2
    np.testing.assert_allclose(kmap, wie, atol=0.01 * wie.std())
    assert info["score_evals_per_sample"] < 1000  # the efficiency target for the Gaussian case
    # the mean's Monte-Carlo error (2 antithetic pairs of chains): written, read back, far below the
    # std/√16 of independent draws in this exact Gaussian limit (the pairs cancel the noise)
    err = read_reconstruction(tmp_path / "p.fits").images["KAPPA_MEAN_ERR"]
    assert err.shape == (32, 32) and np.all(err > 0)
    assert np.sqrt(np.mean(err**2)) < 0.1 * np.sqrt(np.mean(std**2)) / 4
    # one chain is one unit: no error estimate, no extension
    one = load_config(overrides=["pad=0", "posterior.prior=gaussian", "posterior.n_samples=4", "posterior.chains=1",
                                 "wiener.cl_file=" + str(_cl_file(tmp_path))])
    run_reconstruct(one, shear, tmp_path / "one.fits", method="posterior", plot=False)
    with fits.open(tmp_path / "one.fits") as h:
        assert "KAPPA_MEAN" in h and "KAPPA_MEAN_ERR" not in h


def test_interrupted_sampling_keeps_finished_samples(tmp_path, monkeypatch):
    import massmap.pipeline.posterior as post
    from massmap.pipeline.reconstruct import Interrupted

    def interrupted_sampler(*args, on_samples=None, **kwargs):  # Ctrl-C after a first chunk of 3 samples
        on_samples(np.ones((3, 32, 32), np.float32), np.ones((3, 32, 32), np.float32))
        raise KeyboardInterrupt

    monkeypatch.setattr(post, "sample_posterior", interrupted_sampler)
    cfg = load_config(overrides=["pad=0", "posterior.prior=gaussian", "wiener.cl_file=" + str(_cl_file(tmp_path))])
    with pytest.raises(Interrupted, match="3 posterior samples"):
        run_reconstruct(cfg, _uniform_shear_file(tmp_path), tmp_path / "i.fits", method="posterior", plot=False)
    with fits.open(tmp_path / "i.fits") as h:
        assert h["KAPPA_SAMPLES"].data.shape == (3, 32, 32)
        assert any("interrupted" in str(v) for v in h[0].header.values())


def test_healpix_geometry_refuses_posterior(tmp_path):
    from massmap.io.output import InputError
    from massmap.pipeline.inputs import parse_methods
    from massmap.pipeline.reconstruct import METHODS

    with pytest.raises(InputError, match="healpix"):
        parse_methods("posterior", ("ks", "wiener"), where="with --geometry healpix")
    assert parse_methods("map,ks", METHODS) == ("ks", "map")


# ---------------------------------------------------------------- CLI and bad input

def _run(args):
    return CliRunner().invoke(main, [str(a) for a in args])


def _assert_clean_error(res, *needles, outputs=()):
    assert res.exit_code == 2, res.output
    lines = [l for l in res.output.strip().splitlines() if l]
    assert len(lines) == 1 and lines[0].startswith("massmap: error:"), res.output
    assert "Traceback" not in res.output
    for n in needles:
        assert n in lines[0], (n, lines[0])
    for o in outputs:
        assert not o.exists(), o
        assert not list(o.parent.glob(f".{o.name}.*")), "temporary file left behind"


def test_cli_runs_and_reports(tmp_path):
    grid = FlatGrid(150.0, 2.0, 1.0, 32, 32)
    _gaussian_profile_catalog(tmp_path / "cat.fits", grid, per_pixel=1)
    res = _run(["reconstruct", tmp_path / "cat.fits", "-o", tmp_path / "o.fits", "--method", "ks",
                "--set", "grid.npix=32", "--set", "pad=0"])
    assert res.exit_code == 0, res.output
    assert "wrote" in res.output and (tmp_path / "o.png").exists() and (tmp_path / "o.config.yaml").exists()


@pytest.mark.parametrize("case", ["missing", "not_fits", "missing_column", "all_bad", "empty_selection",
                                  "unknown_key", "exists", "bad_value", "bad_cl_file"])
def test_cli_bad_input_gives_one_line_error(tmp_path, case):
    cat = write_table(tmp_path / "cat.fits", {"RA": [1.0, 1.01], "DEC": [0.0, 0.01], "E1": [0.1, 0.0],
                                              "E2": [0.0, 0.1]})
    out = tmp_path / "out.fits"
    args = ["reconstruct", cat, "-o", out, "--method", "ks"]
    needles: tuple = ()
    if case == "missing":
        args[1], needles = tmp_path / "nope.fits", ("nope.fits", "does not exist")
    elif case == "not_fits":
        (tmp_path / "x.fits").write_text("hello")
        args[1], needles = tmp_path / "x.fits", ("x.fits", "not a readable FITS")
    elif case == "missing_column":
        args += ["--set", "catalog.columns.e1=SHAPE1"]
        needles = ("SHAPE1", "available: RA, DEC, E1, E2")
    elif case == "all_bad":
        args[1] = write_table(tmp_path / "bad.fits", {"RA": [1.0], "DEC": [0.0], "E1": [np.nan], "E2": [0.0]})
        needles = ("no usable rows",)
    elif case == "empty_selection":
        args += ["--set", "catalog.select.column=E1", "--set", "catalog.select.min=0.5"]
        needles = ("keeps no rows",)
    elif case == "unknown_key":
        args += ["--set", "grid.npx=3"]
        needles = ("grid.npx", "valid keys", "npix")
    elif case == "exists":
        out.write_text("precious")
        needles = ("exists", "--overwrite")
    elif case == "bad_value":
        args += ["--set", "grid.npix=-4"]
        needles = ("grid.npix",)
    elif case == "bad_cl_file":
        args = ["reconstruct", cat, "-o", out, "--method", "wiener", "--set", f"wiener.cl_file={tmp_path}/no.txt"]
        needles = ("no.txt",)
    res = _run(args)
    _assert_clean_error(res, *needles, outputs=() if case == "exists" else (out,))
    if case == "exists":
        assert out.read_text() == "precious"


def test_weights_matter_only_relative_to_each_other(tmp_path):
    # The shear and its noise per pixel are invariant under a common scale of the weights; weights of
    # 1e-200 (or 1e200) must give the same maps as weights of 1, not 0/0 from underflow (rtol 1e-6:
    # float32 outputs of the same float64 sums).
    grid = FlatGrid(150.0, 2.0, 1.0, 16, 16)
    _gaussian_profile_catalog(tmp_path / "cat.fits", grid, per_pixel=3)
    with fits.open(tmp_path / "cat.fits") as h:
        cols = {c: np.asarray(h[1].data[c], float) for c in h[1].columns.names}
    w = np.random.default_rng(2).uniform(0.5, 2.0, cols["RA"].size)
    cfg = load_config(overrides=["grid.npix=16", "grid.center=[150.0, 2.0]", "pad=4", "noise.sigma_e=0.3",
                                 "wiener.cl_file=" + str(_cl_file(tmp_path))])
    maps = {}
    for scale in (1.0, 1e-200, 1e200):
        write_table(tmp_path / f"w{scale:g}.fits", {**cols, "WEIGHT": w * scale})
        run_reconstruct(cfg, tmp_path / f"w{scale:g}.fits", tmp_path / f"o{scale:g}.fits", method="ks,wiener",
                        plot=False)
        with fits.open(tmp_path / f"o{scale:g}.fits") as h:
            maps[scale] = {n: np.asarray(h[n].data, float) for n in ("KAPPA_KS", "KAPPA_WIENER", "NOISE_STD")}
    for scale in (1e-200, 1e200):
        for name, ref in maps[1.0].items():
            np.testing.assert_allclose(maps[scale][name], ref, rtol=1e-6, atol=1e-9, err_msg=f"{name} ×{scale:g}")


def test_numbers_beyond_float32_are_a_run_failure_not_a_nan_map(tmp_path):
    # a per-pixel noise of 1e-30 overflows the float32 inverse variance: exit 3, one line, no output
    shear = _uniform_shear_file(tmp_path)
    with fits.open(shear, mode="update") as h:
        h["NOISE_STD"].data[...] = 1e-30
    out = tmp_path / "out.fits"
    res = _run(["reconstruct", shear, "-o", out, "--method", "ks,wiener", "--no-plot",
                "--set", "wiener.cl_file=" + str(_cl_file(tmp_path)), "--set", "pad=0"])
    assert res.exit_code == 3, res.output
    assert "Traceback" not in res.output and "KAPPA_WIENER" in res.output.strip().splitlines()[-1]
    assert not out.exists() and not list(tmp_path.glob(".out.fits*"))
    # the same on the sphere: noise.sigma_e = 1e-300 overflows the Wiener system (the CG residual is NaN)
    cat = tmp_path / "cat.fits"
    rng = np.random.default_rng(3)
    write_table(cat, {"RA": 150 + rng.uniform(-2, 2, 500), "DEC": 2 + rng.uniform(-2, 2, 500),
                      "E1": rng.normal(0, 0.2, 500), "E2": rng.normal(0, 0.2, 500)})
    res = _run(["reconstruct", cat, "-o", out, "--method", "ks,wiener", "--no-plot", "--geometry", "healpix",
                "--set", "healpix.nside=16", "--set", "noise.sigma_e=1e-300"])
    assert res.exit_code == 3, res.output
    assert "Traceback" not in res.output and "Wiener" in res.output.strip().splitlines()[-1]
    assert not out.exists() and not list(tmp_path.glob(".out.fits*"))


def test_a_cosmology_without_a_sky_is_a_config_error(tmp_path):
    # finite values that pass each key's check but give no positive spectrum (Omega_c = 50, w0 = +5)
    shear = _uniform_shear_file(tmp_path)
    out = tmp_path / "out.fits"
    res = _run(["reconstruct", shear, "-o", out, "--method", "wiener", "--no-plot",
                "--set", "cosmology.Omega_c=50.0", "--set", "cosmology.w0=5.0"])
    _assert_clean_error(res, "cosmology", outputs=(out,))


def test_cosmos_real_data(tmp_path, cosmos_path):
    # The real COSMOS catalogue in the native frame: the strongest smoothed E-mode peak is positive and
    # sits on the known z ≈ 0.73 cluster at (149.92, 2.52) deg (Massey et al. 2007), and E-mode
    # fluctuations exceed B-mode ones.
    from scipy.ndimage import gaussian_filter

    res = _run(["reconstruct", cosmos_path, "-o", tmp_path / "c.fits", "--config",
                _repo() / "configs" / "cosmos.yaml", "--method", "ks"])
    assert res.exit_code == 0, res.output
    with fits.open(tmp_path / "c.fits") as h:
        e = gaussian_filter(h["KAPPA_KS"].data, 2.0, mode="wrap")
        b = gaussian_filter(h["KAPPA_KS_B"].data, 2.0, mode="wrap")
        from astropy.wcs import WCS

        w = WCS(h["KAPPA_KS"].header)
    iy, ix = np.unravel_index(np.argmax(np.abs(e)), e.shape)
    assert e[iy, ix] > 0
    ra, dec = w.wcs_pix2world([[ix, iy]], 0)[0]
    sep = np.hypot((ra - 149.92) * np.cos(np.deg2rad(2.5)), dec - 2.52) * 60
    assert sep < 3.0, (ra, dec)  # within 3 arcmin (2 pixels of smoothing at 1 arcmin)
    assert e.std() > 1.2 * b.std()


def _repo():
    from pathlib import Path

    return Path(__file__).resolve().parents[1]
