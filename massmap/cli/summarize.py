"""``massmap summarize``: S/N maps, peaks, spectra, null tests and calibration of a reconstruction."""
from __future__ import annotations

import click

from massmap.cli.common import config_options, main, resolve_config, user_errors


@main.command("summarize")
@click.argument("recon_path", metavar="RECON.fits", type=click.Path())
@click.option("--truth", type=click.Path(), help="Truth κ map (FITS) on the same grid.")
@click.option("--positions", type=click.Path(),
              help="FITS table of sky positions (RA/DEC columns, optional NAME) to report κ and S/N at.")
@click.option("-o", "--output", "output_dir", required=True, type=click.Path(), metavar="DIR",
              help="Output folder (report.html, metrics.json, figures, peaks.fits, snr.fits).")
@click.option("--overwrite", is_flag=True, help="Replace an existing summary folder.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
@config_options
@user_errors
def summarize(recon_path, truth, positions, output_dir, overwrite, quiet, config_files, overrides):
    """Summarize a reconstruction: S/N maps, peaks, E/B spectra and null test, truth and calibration metrics."""
    from massmap.pipeline.summarize import run_summarize

    config = resolve_config(config_files, overrides)
    m = run_summarize(config, recon_path, output_dir, truth=truth, positions=positions, overwrite=overwrite,
                      progress=not quiet)
    for name, row in m["methods"].items():
        extra = ""
        if "n_peaks" in row:
            extra += f", {row['n_peaks']} peaks with S/N >= {config.summarize.peak_threshold:g}"
        if "pearson_r" in row:
            extra += f", r = {row['pearson_r']:.3f}, RMSE = {row['rmse']:.4f}"
        click.echo(f"{row['label']}: rms {row['kappa_rms']:.4f}{extra}")
    null = m.get("b_mode_null_test")
    if null:
        click.echo(f"B-mode null test: chi2 = {null['chi2']:.1f} for {null['dof']} bins, "
                   f"p = {null['p_value']:.3f} (empirical {null['p_value_empirical']:.3f})")
    cal = m.get("calibration")
    if cal:
        i = min(range(len(cal["levels"])), key=lambda j: abs(cal["levels"][j] - 0.68))
        click.echo(f"coverage at {cal['levels'][i]:g}: {cal['coverage'][i]:.3f}; "
                   f"z-score std {cal['zscore_std']:.2f}")
    click.echo(f"wrote {m['output_dir']}/report.html")
