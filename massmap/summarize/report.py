"""The HTML report of ``massmap summarize``: one file, inline CSS, figures as relative links to PNGs.

Built from the JSON-ready metrics dict and the figure list of massmap.plots.summary; nothing is
fetched from outside the output folder.
"""
from __future__ import annotations

import html
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from massmap.io.output import atomic_path

CSS = """
body { font-family: system-ui, sans-serif; margin: 2em auto; max-width: 1200px; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 1.6em; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: right; }
th { background: #f2f2f2; } td.k, th.k { text-align: left; }
figure { margin: 1em 0; } figure img { max-width: 100%; border: 1px solid #ddd; }
figcaption { font-size: 0.85em; color: #555; } .pass { color: #1a7f37; } .fail { color: #c62828; }
code { background: #f4f4f4; padding: 0 0.2em; }
"""

METRIC_NAMES = {
    "label": "method", "smoothing_arcmin": "smoothing σ (arcmin)", "kappa_rms": "κ rms (pixels with data)",
    "snr_source": "σ from", "median_sigma": "median σ(κ)", "max_snr": "max S/N", "n_peaks": "peaks ≥ threshold",
    "n_peaks_b": "B-mode peaks ≥ threshold", "b_over_e_rms": "rms(B) / rms(E)", "rmse": "RMSE vs truth",
    "rmse_mean_removed": "RMSE vs truth (means removed)", "pearson_r": "Pearson r vs truth",
    "mean_mc_error_rms": "Monte-Carlo error of the mean (rms)", "mean_mc_error_over_std": "MC error / posterior σ (rms)",
}


def jsonable(x: Any) -> Any:
    """Plain JSON types of nested metrics (arrays → lists, NaN/inf → None, numpy scalars → Python)."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return jsonable(x.tolist())
    if isinstance(x, (np.bool_, bool)):
        return bool(x)
    if isinstance(x, (np.integer, int)):
        return int(x)
    if isinstance(x, (np.floating, float)):
        return float(x) if np.isfinite(x) else None
    if isinstance(x, bytes):
        return x.decode(errors="replace")
    return x if x is None or isinstance(x, str) else str(x)


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, list):
        return ", ".join(_fmt(x) for x in v[:8]) + (" …" if len(v) > 8 else "")
    return str(v)


def _table(header: Iterable[str], rows: Iterable[Iterable[Any]], first_is_key: bool = True) -> str:
    h = "".join(f'<th class="k">{html.escape(str(c))}</th>' if i == 0 and first_is_key
                else f"<th>{html.escape(str(c))}</th>" for i, c in enumerate(header))
    body = []
    for row in rows:
        cells = "".join(f'<td class="k">{html.escape(_fmt(c))}</td>' if i == 0 and first_is_key
                        else f"<td>{html.escape(_fmt(c))}</td>" for i, c in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return f"<table><tr>{h}</tr>{''.join(body)}</table>"


def _methods_table(methods: dict[str, dict]) -> str:
    keys = [k for k in METRIC_NAMES if k != "label" and any(k in row for row in methods.values())]
    header = ["metric"] + [row.get("label", m) for m, row in methods.items()]
    return _table(header, [[METRIC_NAMES[k]] + [row.get(k) for row in methods.values()] for k in keys])


def _columns_table(cols: dict[str, list], limit: int = 15) -> str:
    names = list(cols)
    n = len(cols[names[0]]) if names else 0
    coord = {c for c in names if c.upper() in ("RA", "DEC")}  # degrees: 5 decimals ≈ 0.04 arcsec

    def cell(c, v):
        return f"{v:.5f}" if c in coord and isinstance(v, float) else v

    rows = [[cell(c, cols[c][i]) for c in names] for i in range(min(n, limit))]
    more = f"<p>… {n - limit} more rows in the FITS/JSON outputs.</p>" if n > limit else ""
    return _table(names, rows, first_is_key=False) + more


def _bin(lo: Any, hi: Any) -> str:
    return f"[{_fmt(lo)}, {_fmt(hi)})"


def _counts_table(label: str, edges, d: dict) -> str:
    """Per bin: the truth's value and the samples' mean and std (peak counts or PDF)."""
    return _table([label, "truth", "samples mean", "samples std"],
                  [[_bin(edges[i], edges[i + 1]), d["truth"][i], d["samples_mean"][i], d["samples_std"][i]]
                   for i in range(len(d["truth"]))])


def _sample_statistics_html(st: dict[str, Any]) -> str:
    """Tables of massmap.summarize.samples.sample_statistics: C_ℓ ratio per band, peak counts per S/N bin,
    one-point PDF per κ bin (truth vs the samples' mean ± std)."""
    ps, pk, pdf = st["power_spectrum"], st.get("peak_counts"), st["pdf"]
    e = ps["ell_edges"]
    out = [f"<h2>Posterior samples against the truth ({st['n_samples']} samples)</h2>",
           f"<p>Largest |C_ℓ ratio − 1| in the bands below half the Nyquist ℓ ({_fmt(ps['ell_limit'])}): "
           f"<b>{_fmt(ps['max_abs_deviation'])}</b> at ℓ = {_fmt(ps['max_deviation_ell'])}. Agreement: a ratio "
           "within its expected scatter of 1, and truth counts within the samples' mean ± std.</p>",
           _table(["ℓ band", "mean ℓ", "C_ℓ truth", "mean C_ℓ(samples) / C_ℓ(truth)", "spread over samples",
                   "independent-draw scatter", "compared"],
                  [[_bin(e[i], e[i + 1]), ps["ell"][i], ps["cl_truth"][i], ps["ratio"][i], ps["ratio_std"][i],
                    ps["ratio_error"][i], ps["bins_compared"][i]] for i in range(len(ps["ell"]))])]
    if pk:
        out.append(f"<p>Peak counts of map / σ (σ: {html.escape(str(pk.get('sigma')))}): truth {pk['truth_total']} "
                   f"peaks in the bins, samples {_fmt(pk['samples_total_mean'])} on average.</p>")
        out.append(_counts_table("S/N bin", pk["snr_edges"], pk))
    out.append(f"<p>One-point PDF of κ in the {pdf['n_pixels']} pixels with data (density per unit κ); sample "
               f"pixels outside the bins: {_fmt(pdf['samples_below'])} below, {_fmt(pdf['samples_above'])} above.</p>")
    out.append(_counts_table("κ bin", pdf["kappa_edges"], pdf))
    return "".join(out)


def write_report(path: str | Path, metrics: dict[str, Any], figures: list[dict[str, Any]]) -> Path:
    """Write report.html from JSON-ready metrics and figure entries {'file', 'title', 'caption'}.

    Order: title and provenance table, the figures (in the given order: maps first), then the metric
    tables (methods, null test, calibration, samples against the truth, positions, peaks, diagnostics).
    """
    p = Path(path)
    prov = metrics.get("provenance", {})
    inputs = prov.get("inputs", {})
    parts = [f"<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>massmap summary: {html.escape(str(inputs.get('recon', '')))}</title>"
             f"<style>{CSS}</style></head><body>",
             f"<h1>massmap summary of <code>{html.escape(str(inputs.get('recon', '')))}</code></h1>"]
    rp = metrics.get("recon_provenance", {})
    parts.append(_table(["", ""], [["inputs", ", ".join(f"{k}: {v}" for k, v in inputs.items())],
                                   ["reconstruction made by", f"massmap {rp.get('MMVERS')} {rp.get('MMCMD')}, "
                                                              f"{rp.get('DATE')}, seed {rp.get('SEED')}"],
                                   ["summary made by", f"massmap {prov.get('massmap_version')}, {prov.get('date')}, "
                                                       f"seed {prov.get('seed')}"],
                                   ["grid", "{ny}×{nx} pixels of {pixel_size_arcmin:g} arcmin, centre RA {center_ra:.4f}, "
                                            "Dec {center_dec:.4f}".format(**metrics["grid"])]]))
    for f in figures:  # the figures, maps first, before the tables
        parts.append(f"<h2>{html.escape(f['title'])}</h2><figure><img src=\"{html.escape(f['file'])}\" "
                     f"alt=\"{html.escape(f['title'])}\"><figcaption>{html.escape(f['caption'])}</figcaption></figure>")
    parts.append("<h2>Metrics</h2>" + _methods_table(metrics.get("methods", {})))
    null = metrics.get("b_mode_null_test")
    if null:
        p_emp = null.get("p_value_empirical")
        verdict = "" if p_emp is None else (
            '<span class="pass">consistent with noise</span>' if p_emp >= 0.05 else
            '<span class="fail">B modes above noise (p &lt; 0.05)</span>')
        parts.append("<h2>B-mode null test</h2>" + _table(
            ["χ²", "dof", "p (χ² distribution)", "p (empirical)", "realisations", "compared with", "noise method"],
            [[null.get("chi2"), null.get("dof"), null.get("p_value"), p_emp, len(null.get("chi2_realisations", [])),
              null.get("reference"), null.get("noise_method")]], first_is_key=False) + f"<p>{verdict}</p>")
    calib = metrics.get("calibration")
    if calib:
        rows = [[a, c, e] for a, c, e in zip(calib["levels"], calib["coverage"], calib["binomial_error"])]
        parts.append("<h2>Posterior calibration</h2>"
                     + _table(["credible level α", "coverage", "binomial error"], rows)
                     + f"<p>z-scores: mean {_fmt(calib['zscore_mean'])}, std {_fmt(calib['zscore_std'])} "
                       f"({calib['n_pixels']} pixels).</p>")
    if metrics.get("sample_statistics"):
        parts.append(_sample_statistics_html(metrics["sample_statistics"]))
    if metrics.get("positions"):
        parts.append("<h2>Input positions</h2>" + _columns_table(metrics["positions"], limit=50))
    for m, cols in (metrics.get("peaks") or {}).items():
        if cols and cols.get("RA"):
            label = metrics["methods"].get(m, {}).get("label", m)
            parts.append(f"<h2>Peaks: {html.escape(label)}</h2>" + _columns_table(cols))
    diag = metrics.get("diagnostics")
    if diag:
        scalar = [[k, v[0] if isinstance(v, list) and len(v) == 1 else v] for k, v in diag.items()]
        parts.append("<h2>Sampler diagnostics</h2>" + _table(["quantity", "value"], scalar))
    parts.append("<h2>Files</h2><p>All numbers: <a href=\"metrics.json\">metrics.json</a>; peaks: "
                 "<code>peaks.fits</code>; S/N and σ maps: <code>snr.fits</code>; resolved config: "
                 "<a href=\"metrics.config.yaml\">metrics.config.yaml</a>.</p></body></html>")
    with atomic_path(p) as tmp:
        tmp.write_text("\n".join(parts), encoding="utf-8")
    return p
