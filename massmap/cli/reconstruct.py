"""``massmap reconstruct`` and ``massmap mock-catalog``."""
from __future__ import annotations

import click

from massmap.cli.common import config_options, main, resolve_config, user_errors


@main.command()
@click.argument("input_path", metavar="INPUT", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Output FITS file.")
@click.option("--method", default="ks,wiener", show_default=True,
              help="ks, wiener, posterior, map, or all (comma-separated lists work too; with --geometry healpix, "
                   "all = ks,wiener and the tiled posterior is asked for by name). map: the end point of an annealed "
                   "gradient ascent on the posterior (one map, no uncertainty); with the Gaussian prior it is the "
                   "Wiener map; with a learned prior it is a mode of a density known only through its score, not an "
                   "estimate with known errors: with the shipped prior about as good as Wiener on held-out PM "
                   "fields (RMSE 1.4% lower on average, worse on 3 of 8) and erratic in its end point, and a prior "
                   "trained on other maps may give a spiky MAP. Prefer the posterior mean (docs/posterior.md).")
@click.option("--prior", default=None, metavar="PRIOR.h5|gaussian",
              help="Prior of the posterior methods (= --set posterior.prior=...); default: the shipped prior.")
@click.option("--n-samples", type=int, default=None, help="Posterior samples (= --set posterior.n_samples=N).")
@click.option("--chains", type=int, default=None, help="Independent chains (= --set posterior.chains=C).")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@click.option("--overwrite", is_flag=True, help="Replace an existing output.")
@click.option("--no-plot", is_flag=True, help="Skip the PNG preview.")
@click.option("--geometry", type=click.Choice(["flat", "healpix"]), default="flat", show_default=True,
              help="flat: TAN grid (grid.*); healpix: curved-sky HEALPix maps (healpix.*, catalogs only).")
@config_options
@user_errors
def reconstruct(input_path, output, method, prior, n_samples, chains, quiet, overwrite, no_plot, geometry,
                config_files, overrides):
    """Mass maps from a FITS shear catalog (or a binned shear map)."""
    from massmap.pipeline.reconstruct import run_reconstruct

    shortcuts = [f"posterior.{k}={v}" for k, v in (("prior", prior), ("n_samples", n_samples), ("chains", chains))
                 if v is not None]
    config = resolve_config(config_files, tuple(overrides) + tuple(shortcuts))
    if geometry == "healpix":
        _reconstruct_healpix(config, input_path, output, method, overwrite, no_plot, not quiet)
        return
    info = run_reconstruct(config, input_path, output, method=method, overwrite=overwrite, plot=not no_plot,
                           progress=not quiet)
    g = info["grid"]
    if info.get("input_kind") == "catalog":
        click.echo(f"read {info['rows_read']} rows, used {info['rows_used']} "
                   f"(dropped {info['rows_dropped']}, outside grid {info['rows_outside_grid']}); "
                   f"sigma_e = {info['sigma_e']:.3f}")
        for note in info.get("notes", []):
            click.echo(f"  {note}")
    click.echo(f"grid {g.ny}x{g.nx} at {g.pixel_size_arcmin:g} arcmin, centre RA {g.center_ra:.4f} Dec {g.center_dec:.4f}")
    _echo_wiener(info)
    run = info.get("posterior")
    if run is not None and run.posterior is not None and run.posterior.info is not None:
        d = run.posterior.info
        rhat = d.rhat_max
        click.echo(f"posterior: prior {d.prior}, {d.n_chains_used} chains, "
                   f"{run.posterior.score_evals_per_sample:.0f} score evaluations per sample"
                   + (f", max split-Rhat {rhat:.3f}" if rhat == rhat else "")
                   + (f"; {d.n_dropped} chains dropped after NaNs" if d.n_dropped else ""))
    click.echo(f"wrote {info['output']} ({', '.join(info['maps'])})")


def _reconstruct_healpix(config, input_path, output, method, overwrite, no_plot, progress):
    from massmap.pipeline.reconstruct_healpix import run_reconstruct_healpix

    info = run_reconstruct_healpix(config, input_path, output, method=method, overwrite=overwrite, plot=not no_plot,
                                   progress=progress)
    click.echo(f"read {info['rows_read']} rows, used {info['rows_used']} (dropped {info['rows_dropped']}); "
               f"sigma_e = {info['sigma_e']:.3f}")
    for note in info.get("notes", []):
        click.echo(f"  {note}")
    click.echo(f"HEALPix nside {info['nside']}, lmax {info['lmax']}: {info['n_observed']} observed pixels "
               f"(f_sky = {info['f_sky']:.4f})")
    _echo_wiener(info)
    if "n_tiles" in info:
        click.echo(f"posterior tiles: prior {info['prior']}, {info['n_tiles']} tiles of {info['tile_npix']}^2 pixels "
                   f"at {info['tile_pixel_size_arcmin']:g} arcmin")
    click.echo(f"wrote {info['output']} ({', '.join(info['maps'])})")


@main.command("mock-catalog")
@click.argument("kappa_path", metavar="KAPPA", type=click.Path(dir_okay=False))
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="Output catalog (FITS).")
@click.option("--truth-out", type=click.Path(dir_okay=False), help="Also write the truth κ map (FITS).")
@click.option("--index", type=int, default=None, help="Map index in an HDF5 map set.")
@click.option("--overwrite", is_flag=True, help="Replace existing outputs.")
@config_options
@user_errors
def mock_catalog(kappa_path, output, truth_out, index, overwrite, config_files, overrides):
    """A mock shear catalog (RA, DEC, E1, E2, WEIGHT) drawn from a κ map."""
    from massmap.pipeline.mock import run_mock_catalog

    config = resolve_config(config_files, overrides)
    info = run_mock_catalog(config, kappa_path, output, truth_out=truth_out, index=index, overwrite=overwrite)
    click.echo(f"wrote {info['output']} ({info['n_galaxies']} galaxies)"
               + (f" and {info['truth']}" if info["truth"] else ""))


def _echo_wiener(info: dict) -> None:
    if "wiener_solver" in info:
        extra = ""
        if "wiener_iterations" in info:
            extra = f": {info['wiener_iterations']} iterations, residual {info['wiener_residual']:.1e}"
        click.echo(f"Wiener ({info['wiener_cl']}) by {info['wiener_solver']}{extra}")
