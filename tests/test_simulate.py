"""`massmap simulate`: GRF and lognormal map sets, the HDF5 format, reproducibility, resume, CLI errors.

Tiny maps (32², 2′ pixels) and the linear C_ℓ (jax-cosmo halofit costs ~20 s per call) keep this fast.
"""
from __future__ import annotations

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

from massmap.config import load_config
from massmap.config.physics import cosmology_of, sources_of
from massmap.config.schema import SourcesConfig
from massmap.cosmology import kappa_cl
from massmap.io.datasets import read_maps, read_metadata
from massmap.io.output import InputError
from massmap.ops import spectra
from massmap.pipeline import map_samplers as sim_pipeline
from massmap.pipeline import simulate as sim_run
from massmap.pipeline.map_samplers import default_lognormal_shift, make_sampler, simulate_map
from massmap.pipeline.simulate import run_simulate
from massmap.sim.lognormal import hilbert11_shift, lognormal_spectrum, shifted_lognormal_skewness

NPIX, PIX = 32, 2.0
N_STAT = 200  # maps for the statistical tests
N_BINS = 8
CHI2_MAX = 26.12  # χ²_8 quantile at p = 0.999: a false alarm once in 1000 seeds


def _config(*overrides):
    return load_config([], [f"simulate.npix={NPIX}", f"simulate.pixel_size_arcmin={PIX}",
                            "simulate.nonlinear=false", "seed=7", *overrides])


def _binned_expectation(cl_grid):
    """Exact mean and variance of the binned estimator of ops.spectra.power_spectrum for a GRF.

    Each mode's Ĉ_k is C_k·Exp(1) and equals Ĉ_{−k} (real map), or C_k·χ²₁ when k = −k; either way
    Σ_{k'∈b} Cov(Ĉ_k, Ĉ_k') = 2 C_k², so Var(Ĉ_b) = 2 Σ_{k∈b} C_k² / n_b².
    """
    edges = spectra.log_ell_bins(NPIX, NPIX, PIX, N_BINS)
    ell = spectra.ell_grid(NPIX, NPIX, PIX).ravel()
    idx = np.digitize(ell, edges) - 1
    ok = (idx >= 0) & (idx < N_BINS)
    n = np.bincount(idx[ok], minlength=N_BINS)
    mean = np.bincount(idx[ok], cl_grid.ravel()[ok], N_BINS) / n
    var = 2 * np.bincount(idx[ok], cl_grid.ravel()[ok] ** 2, N_BINS) / n**2
    return edges, mean, var


@pytest.fixture(scope="module")
def grf_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("grf") / "grf.h5"
    cfg = _config(f"simulate.n_maps={N_STAT}")
    run_simulate(cfg, out, progress=False)
    return cfg, out


def test_grf_power_matches_limber_cl(grf_set):
    cfg, out = grf_set
    maps, meta = read_maps(out)
    assert maps.shape == (N_STAT, NPIX, NPIX) and maps.dtype == np.float32
    # Target computed independently of the pipeline's ℓ table: jax-cosmo at every distinct |ℓ| of the grid.
    ell_grid = spectra.ell_grid(NPIX, NPIX, PIX)
    uniq, inverse = np.unique(ell_grid.ravel(), return_inverse=True)
    n_u = len(uniq) - 1
    cl_all = kappa_cl(cosmology_of(cfg.cosmology), sources_of(cfg.sources),
                      np.concatenate([uniq[1:], meta["theory_ell"]]), nonlinear=False)
    cl_grid = np.concatenate([[0.0], cl_all[:n_u]])[inverse].reshape(ell_grid.shape)
    edges, mean, var = _binned_expectation(cl_grid)
    _, cl_hat, _ = spectra.power_spectrum(maps, PIX, edges)
    chi2 = np.sum((cl_hat.mean(0) - mean) ** 2 / (var / N_STAT))
    # χ² over 8 bins is χ²_8 distributed for correct maps (checked: mean 7.9, std 4.2 over 60 seeds).
    assert chi2 < CHI2_MAX, chi2
    # The test has power: maps 3% too large in amplitude (6% in power) fail it.
    _, cl_off, _ = spectra.power_spectrum(1.03 * maps, PIX, edges)
    assert np.sum((cl_off.mean(0) - mean) ** 2 / (var / N_STAT)) > CHI2_MAX
    # The stored theory table is jax-cosmo's C_ℓ (float32 ℓ inside jax-cosmo: 1e-4 relative).
    np.testing.assert_allclose(meta["theory_cl"], cl_all[n_u:], rtol=1e-4)


def test_map_set_attributes(grf_set):
    cfg, out = grf_set
    meta = read_metadata(out)
    assert meta["kind"] == "grf" and meta["npix"] == NPIX and meta["pixel_size_arcmin"] == PIX
    assert meta["n_done"] == meta["n_maps"] == N_STAT and meta["complete"] is True
    for name in ("Omega_c", "Omega_b", "h", "sigma8", "n_s", "w0"):
        assert meta[name] == getattr(cfg.cosmology, name)
    assert meta["z_source"] == 1.0 and meta["seed"] == 7 and meta["config"]["simulate"]["npix"] == NPIX
    assert meta["provenance"]["command"] == "simulate" and "massmap_version" in meta
    with h5py.File(out) as f:
        assert f["kappa"].chunks == (1, NPIX, NPIX)
    assert out.with_name("grf.png").stat().st_size > 0
    assert out.with_name("grf.config.yaml").exists()
    assert not out.with_name("grf.h5.part").exists()


def test_lognormal_spectrum_exact_on_grid():
    """ξ_κ = λ²(exp(ξ_G + c) − 1) reproduces the target at every ℓ > 0 mode, to float64 rounding."""
    cl_grid = spectra.cl_on_grid(*sim_pipeline.target_cl(_config()), NPIX, NPIX, PIX)
    s = spectra.mode_variance(cl_grid, PIX)
    for shift in (0.03, 0.01):
        spec = lognormal_spectrum(s, shift)
        assert spec.clipped_fraction == 0.0 and np.all(spec.gaussian_mode_var >= 0)
        xi_g = np.fft.ifft2(spec.gaussian_mode_var).real
        s_kappa = np.fft.fft2(shift**2 * np.expm1(xi_g)).real
        s_kappa_target = s.copy()
        s_kappa_target[0, 0] = s_kappa[0, 0]
        np.testing.assert_allclose(s_kappa, s_kappa_target, rtol=1e-8, atol=1e-12 * s.max())
        # the map-mean mode gets variance λ²(e^c − 1) per pixel mean, as documented
        np.testing.assert_allclose(s_kappa[0, 0] / s.size, shift**2 * np.expm1(spec.mean_mode_offset), rtol=1e-6)
    with pytest.raises(ValueError):
        lognormal_spectrum(s, 1e-4)  # λ² < |min ξ_κ|: no lognormal field has this spectrum


def test_lognormal_maps_power_and_skewness():
    shift = 0.02
    cfg = _config("simulate.kind=lognormal", f"simulate.lognormal_shift={shift}")
    sampler = make_sampler(cfg)
    maps = np.stack([sampler.sample(sim_pipeline.map_key(cfg.seed, i), None) for i in range(N_STAT)])
    assert np.all(maps > -shift)  # a shifted lognormal is bounded below by −λ
    cl_grid = spectra.cl_on_grid(sampler.ell, sampler.cl, NPIX, NPIX, PIX)
    edges, mean, _ = _binned_expectation(cl_grid)
    _, cl_hat, _ = spectra.power_spectrum(maps, PIX, edges)
    ratio = cl_hat.mean(0) / mean
    # Expected ratio is exactly 1 (test above); measured over 8 seeds: |mean ratio − 1| ≤ 1.5%,
    # rms over bins ≤ 2.9% for 200 maps of 32².
    assert abs(ratio.mean() - 1) < 0.03, ratio
    assert np.sqrt(np.mean((ratio - 1) ** 2)) < 0.05, ratio
    x = maps.astype(np.float64).ravel()
    var = sampler.attrs["pixel_variance"]
    np.testing.assert_allclose(x.var(), var, rtol=0.05)  # ~2% seed-to-seed scatter
    skew = np.mean(x**3) / np.mean(x**2) ** 1.5
    expected = shifted_lognormal_skewness(var, shift)  # (q + 3)√q, q = σ²/λ² → 1.04 here
    # Seed-to-seed std of this estimate is 4% (8 seeds); 12% is 3σ. A Gaussian map gives ~0.
    assert expected > 0.9 and abs(skew / expected - 1) < 0.12, (skew, expected)


def test_default_shift_is_hilbert11_averaged_over_nz():
    assert hilbert11_shift(1.0) == pytest.approx(0.008 + 0.029 - 0.0079 + 0.00065, rel=1e-4)
    shift = default_lognormal_shift(sources_of(SourcesConfig(z_source=1.5)))
    assert shift == pytest.approx(float(hilbert11_shift(1.5)))
    # Smail n(z) ∝ z^a exp(−(z/z0)^b): ∫ n κ₀ dz from the closed-form moments ⟨z^k⟩ = z0^k Γ((a+1+k)/b)/Γ((a+1)/b)
    from scipy.special import gamma

    a, b, z0 = 2.0, 1.5, 0.5
    moments = [z0**k * gamma((a + 1 + k) / b) / gamma((a + 1) / b) for k in range(5)]
    expected = 0.008 * moments[1] + 0.029 * moments[2] - 0.0079 * moments[3] + 0.00065 * moments[4]
    got = default_lognormal_shift(sources_of(SourcesConfig(nz="smail", smail_a=a, smail_b=b, smail_z0=z0)))
    assert got == pytest.approx(expected, rel=2e-3)  # jax-cosmo's n(z) normalisation (simpson, 256 nodes)


def test_map_alone_equals_map_in_file(grf_set):
    cfg, out = grf_set
    sampler = make_sampler(cfg)
    for i in (0, 17, N_STAT - 1):
        alone = simulate_map(cfg, i, sampler)
        np.testing.assert_array_equal(alone, read_maps(out, index=i)[0])
    picked, _ = read_maps(out, index=[5, 2])
    np.testing.assert_array_equal(picked, read_maps(out)[0][[5, 2]])


def test_same_seed_same_file_and_resume(tmp_path, grf_set):
    cfg, _ = grf_set
    full = tmp_path / "full.h5"
    run_simulate(_config("simulate.n_maps=6"), full, progress=False)
    again = tmp_path / "again.h5"
    run_simulate(_config("simulate.n_maps=6"), again, progress=False)
    np.testing.assert_array_equal(read_maps(full)[0], read_maps(again)[0])
    assert read_metadata(full)["config"] == read_metadata(again)["config"]
    assert not np.allclose(simulate_map(_config("seed=8"), 0), read_maps(full, index=0)[0])
    # A run stopped after k = 2 maps, then resumed with n = 6, equals the uninterrupted run.
    part = tmp_path / "resumed.h5"
    run_simulate(_config("simulate.n_maps=2"), part, progress=False)
    run_simulate(_config("simulate.n_maps=6"), part, resume=True, progress=False)
    np.testing.assert_array_equal(read_maps(part)[0], read_maps(full)[0])
    assert read_metadata(part)["n_done"] == 6
    # Resuming with another config is a one-line error naming the key.
    with pytest.raises(InputError, match="simulate.pixel_size_arcmin"):
        run_simulate(_config("simulate.n_maps=8", "simulate.pixel_size_arcmin=1.0"), part, resume=True,
                     progress=False)
    with pytest.raises(InputError, match="already holds 6 maps"):
        run_simulate(_config("simulate.n_maps=3"), part, resume=True, progress=False)


def test_resume_of_a_map_set_that_cannot_grow_is_refused_before_anything_is_written(tmp_path):
    # A map set whose kappa dataset is contiguous or has a fixed size (rewritten by another tool) cannot
    # take more maps: --resume says so at once, copies nothing to OUT.part, and leaves OUT as it was.
    for layout in ("contiguous", "fixed size"):
        out = tmp_path / f"{layout.replace(' ', '_')}.h5"
        run_simulate(_config("simulate.n_maps=2"), out, progress=False)
        with h5py.File(out, "r+") as f:
            kappa = f["kappa"][()]
            del f["kappa"]
            if layout == "contiguous":
                f.create_dataset("kappa", data=kappa)
            else:
                f.create_dataset("kappa", data=kappa, chunks=(1, NPIX, NPIX), maxshape=(2, NPIX, NPIX))
        before = out.read_bytes()
        with pytest.raises(InputError, match="cannot grow to 4 maps"):
            run_simulate(_config("simulate.n_maps=4"), out, resume=True, progress=False)
        assert out.read_bytes() == before and not list(tmp_path.glob(f"{out.name}.part*"))


def test_interrupted_run_keeps_finished_maps(tmp_path, monkeypatch):
    out = tmp_path / "cut.h5"
    cfg = _config("simulate.n_maps=5")
    real = sim_pipeline.make_sampler

    def interrupted_after_3(config):
        sampler = real(config)
        calls = []

        def sample(key, step_progress=None):
            if len(calls) == 3:
                raise KeyboardInterrupt
            calls.append(1)
            return sampler.sample(key, step_progress)

        return sampler._replace(sample=sample)

    monkeypatch.setattr(sim_run, "make_sampler", interrupted_after_3)
    with pytest.raises(sim_run.Interrupted, match="after 3 of 5"):
        run_simulate(cfg, out, progress=False)
    part = tmp_path / "cut.h5.part"
    assert not out.exists() and part.exists()
    kept, meta = read_maps(part)
    assert kept.shape == (3, NPIX, NPIX) and meta["n_done"] == 3 and meta["complete"] is False
    with pytest.raises(InputError, match="interrupted run"):
        run_simulate(cfg, out, progress=False)  # neither --resume nor --overwrite
    monkeypatch.setattr(sim_pipeline, "make_sampler", real)
    run_simulate(cfg, out, resume=True, progress=False)
    assert out.exists() and not part.exists()
    maps, meta = read_maps(out)
    assert meta["n_done"] == 5 and meta["complete"] is True
    np.testing.assert_array_equal(maps[:3], kept)
    for i in (0, 4):
        np.testing.assert_array_equal(maps[i], simulate_map(cfg, i))


def test_read_maps_rejects_other_files(tmp_path):
    text = tmp_path / "notes.h5"
    text.write_text("not hdf5\n")
    with pytest.raises(InputError, match="not a massmap map set"):
        read_maps(text)
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["kappa"] = np.zeros((2, 4, 4))
    with pytest.raises(InputError, match="not a massmap map set"):
        read_maps(other)
    with pytest.raises(InputError, match="does not exist"):
        read_maps(tmp_path / "missing.h5")


@pytest.mark.parametrize("args, needle", [
    (["--set", "simulate.kind=voronoi"], "simulate.kind"),
    (["--set", "simulate.npix=-8"], "simulate.npix"),
    (["--set", "simulate.npix=12.5"], "simulate.npix"),
    (["--set", "sources.z_source=0"], "sources.z_source"),
    (["--set", "sources.z_source=-1"], "sources.z_source"),
    (["--overwrite", "--resume"], "not both"),
    (["--set", "sources.nz=file", "--set", "sources.nz_file=no-such-nz.txt"], "no-such-nz.txt"),
])
def test_cli_bad_input(tmp_path, args, needle):
    from massmap.cli import main

    out = tmp_path / "maps.h5"
    result = CliRunner().invoke(main, ["simulate", "-o", str(out), *args])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and needle in lines[0] and "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []  # no partial file


def test_cli_refuses_existing_output(tmp_path):
    from massmap.cli import main

    out = tmp_path / "maps.h5"
    out.write_bytes(b"precious")
    result = CliRunner().invoke(main, ["simulate", "-o", str(out), "--set", "simulate.npix=16"])
    assert result.exit_code == 2 and "exists" in result.output and len(result.output.strip().splitlines()) == 1
    assert out.read_bytes() == b"precious" and sorted(p.name for p in tmp_path.iterdir()) == ["maps.h5"]


def test_cli_writes_map_set(tmp_path):
    from massmap.cli import main

    out = tmp_path / "ln.h5"
    nz_file = tmp_path / "nz.txt"
    table = np.array([[0.2, 0.3], [0.6, 1.0], [1.0, 1.2], [1.4, 0.5], [1.8, 0.1]])
    np.savetxt(nz_file, table)
    result = CliRunner().invoke(main, ["simulate", "-o", str(out), "--quiet", "--set", "simulate.kind=lognormal",
                                       "--set", "simulate.n_maps=3", "--set", f"simulate.npix={NPIX}",
                                       "--set", "simulate.nonlinear=false", "--set", "sources.nz=file",
                                       "--set", f"sources.nz_file={nz_file}"])
    assert result.exit_code == 0, result.output
    maps, meta = read_maps(out)
    assert maps.shape == (3, NPIX, NPIX) and meta["kind"] == "lognormal" and meta["nz"] == "file"
    np.testing.assert_array_equal(np.stack([meta["nz_z"], meta["nz_pdf"]], 1), table)
    # the n(z)-averaged Hilbert shift lies between its values at the ends of the table
    assert hilbert11_shift(0.2) < meta["lognormal_shift"] < hilbert11_shift(1.8)
    assert np.all(maps > -meta["lognormal_shift"])
    assert (tmp_path / "ln.png").exists() and (tmp_path / "ln.config.yaml").exists()


PM_TINY = ["simulate.kind=pm", "simulate.npix=16", "sources.z_source=0.5", "simulate.pm.box_size=32",
           "simulate.pm.mesh=16", "simulate.pm.n_steps=2", "simulate.pm.plane_thickness=32"]


def test_pm_kind_wiring(tmp_path):
    """kind pm runs sim.raytrace.pm_kappa_map per map (its physics is tested with the PM code)."""
    from massmap.cli import main

    out = tmp_path / "pm.h5"
    sets = [a for kv in ["simulate.n_maps=1", "simulate.nonlinear=false", *PM_TINY] for a in ("--set", kv)]
    result = CliRunner().invoke(main, ["simulate", "-o", str(out), *sets])
    assert result.exit_code == 0, result.output
    assert "PM steps" in result.output  # the inner progress bar is fed by pm_kappa_map's callback
    maps, meta = read_maps(out)
    assert maps.shape == (1, 16, 16) and np.all(np.isfinite(maps)) and maps.std() > 0
    assert (meta["kind"], meta["pm_box_size"], meta["pm_mesh"], meta["pm_n_steps"]) == ("pm", 32.0, 16, 2)
    # A geometry the PM code rejects fails before any file is written.
    bad = tmp_path / "bad.h5"
    result = CliRunner().invoke(main, ["simulate", "-o", str(bad), *sets, "--set", "simulate.pm.box_size=4"])
    assert result.exit_code == 2 and "simulate.pm.box_size" in result.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pm.config.yaml", "pm.h5", "pm.png"]
