"""PNG figures of ``massmap summarize``: maps on WCS axes with peaks, spectra, null test, calibration.

Each function writes one PNG (matplotlib, Agg) atomically and returns its file name; the caller builds
the report from the returned (file, title, caption) entries.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import stats as sps  # noqa: E402

from massmap.geometry import FlatGrid  # noqa: E402
from massmap.io.output import atomic_path  # noqa: E402

COLORS = {"ks": "C0", "wiener": "C1", "posterior": "C2", "map": "C3", "truth": "k"}
LABELS = {"ks": "Kaiser-Squires", "wiener": "Wiener", "posterior": "posterior mean", "map": "MAP", "truth": "truth"}
LABEL_COLORS = {**{LABELS[m]: c for m, c in COLORS.items()}, "posterior samples": "C6"}


def _save(fig, path: Path, dpi: int) -> str:
    """Lay the figure out, write it atomically as PNG, close it; returns the file name."""
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=dpi, format="png")
    plt.close(fig)
    return path.name


def _map_axes(fig, grid: FlatGrid, nrow: int, ncol: int, i: int):
    ax = fig.add_subplot(nrow, ncol, i + 1, projection=grid.wcs())
    ax.coords[0].set_axislabel("RA")
    ax.coords[1].set_axislabel("Dec")
    ax.coords[0].set_major_formatter("d.dd")
    ax.coords[1].set_major_formatter("d.dd")
    ax.coords[0].set_ticks(number=4)
    return ax


MAX_POSITION_LABELS = 30  # input positions named on the maps (all are marked)


def _log_ell_axis(ax, ell) -> None:
    """A log ℓ axis over the bands ``ell`` (set here: a curve with no finite value, such as the power
    ratio against a truth with no power, leaves matplotlib without limits to log-scale)."""
    ell = np.asarray(ell, float)
    ell = ell[np.isfinite(ell) & (ell > 0)]
    if ell.size:
        ax.set_xscale("log")
        ax.set_xlim(ell.min() / 1.15, ell.max() * 1.15)
    ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())


def _log_y(ax) -> None:
    """A log y axis when a plotted line or histogram has a positive finite value; else linear (a map
    with no power at all, such as zero shear or a constant truth, has nothing to show on a log axis,
    and matplotlib fails on it). Reference lines (axhline) do not count."""
    values = [np.asarray(line.get_ydata(), float) for line in ax.get_lines()
              if not line.get_transform().contains_branch_seperately(ax.transAxes)[0]]
    values += [np.asarray(p.get_height(), float) for p in ax.patches if hasattr(p, "get_height")]
    values += [np.asarray(p.get_path().vertices[:, 1], float) for p in ax.patches if not hasattr(p, "get_height")]
    if any(np.any(np.isfinite(v) & (v > 0)) for v in values if v.size):
        ax.set_yscale("log")


def plot_map_panels(path: Path, grid: FlatGrid, panels: list[tuple[str, np.ndarray]], mask: np.ndarray,
                    markers: dict[str, tuple[np.ndarray, np.ndarray]] | None = None,
                    positions: dict | None = None, symmetric: bool = True, vmax: float | None = None,
                    cbar_label: str = "", title: str = "", dpi: int = 90) -> str:
    """Maps side by side on RA/Dec axes; no-data pixels grey; peaks (circles) and positions (crosses)."""
    n = len(panels)
    ncol = min(n, 3)
    nrow = int(np.ceil(n / ncol))
    fig = plt.figure(figsize=(4.8 * ncol, 4.3 * nrow))
    cmap = plt.get_cmap("RdBu_r" if symmetric else "viridis").with_extremes(bad="0.8")
    for i, (name, m) in enumerate(panels):
        ax = _map_axes(fig, grid, nrow, ncol, i)
        shown = np.where(mask > 0, np.asarray(m, float), np.nan)
        finite = np.abs(shown[np.isfinite(shown)])
        if symmetric:
            v = vmax if vmax is not None else (float(np.percentile(finite, 99.5)) if finite.size else 1.0) or 1.0
            kw = dict(vmin=-v, vmax=v)
        else:
            kw = {}
        im = ax.imshow(shown, origin="lower", interpolation="nearest", cmap=cmap, **kw)
        if markers and name in markers and len(markers[name][0]):
            ix, iy = markers[name]
            ax.scatter(ix, iy, s=60, facecolors="none", edgecolors="k", linewidths=1.2, label="peaks")
        if positions is not None and len(positions["x"]):
            ax.scatter(positions["x"], positions["y"], marker="x", s=50, c="m", linewidths=1.5)
            # names for the first MAX_POSITION_LABELS only: thousands of labels hide the map and take minutes
            for x, y, t in list(zip(positions["x"], positions["y"], positions["name"]))[:MAX_POSITION_LABELS]:
                ax.annotate(str(t), (x, y), xytext=(4, 4), textcoords="offset points", color="m", fontsize=8)
        ax.set_xlim(-0.5, grid.nx - 0.5)
        ax.set_ylim(-0.5, grid.ny - 0.5)
        ax.set_title(name, fontsize=10)
        cb = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
        cb.set_label(cbar_label)
    if title:
        fig.suptitle(title, fontsize=11)
    return _save(fig, path, dpi)


def plot_spectra(path: Path, spectra: dict, null: dict | None, dpi: int = 90) -> str:
    """E-mode spectra of every map (errors: Gaussian band-power errors), B-mode vs noise, the χ² test."""
    ell = np.asarray(spectra["ell"], float)
    npan = 3 if null is not None else (2 if "ks_eb" in spectra else 1)
    fig, axes = plt.subplots(1, npan, figsize=(5.2 * npan, 4.2))
    axes = np.atleast_1d(axes)
    ax = axes[0]
    eb = spectra.get("ks_eb")
    if eb is not None:
        ax.errorbar(ell, eb["cl_e"], yerr=eb["cl_e_err"], fmt="o-", color=COLORS["ks"], ms=3, label="KS E (raw)")
        if "cl_e_noise" in eb:
            ax.plot(ell, eb["cl_e_noise"], ":", color=COLORS["ks"], label="KS noise E")
            deb = np.asarray(eb["cl_e_debiased"], float)
            ax.plot(ell, np.where(deb > 0, deb, np.nan), "s--", color=COLORS["ks"], ms=3, mfc="none",
                    label="KS E − noise")
    for m in ("wiener", "posterior", "map"):
        if m in spectra:
            e = spectra[m]
            ax.plot(ell, e["cl"], "o-", color=COLORS[m], ms=3, label=LABELS[m])
            if "cl_samples" in e:
                lo = np.asarray(e["cl_samples"]) - np.asarray(e["cl_samples_std"])
                hi = np.asarray(e["cl_samples"]) + np.asarray(e["cl_samples_std"])
                ax.fill_between(ell, np.maximum(lo, 1e-30), hi, color=COLORS[m], alpha=0.25, label="posterior samples ±1σ")
    if "truth" in spectra:
        ax.plot(ell, spectra["truth"]["cl"], "-", color="k", lw=2, label="truth")
    ax.set(xlabel=r"$\ell$", ylabel=r"$C_\ell^{\kappa\kappa}$", title="E mode / κ maps")
    _log_y(ax)
    ax.legend(fontsize=7)
    _log_ell_axis(ax, ell)
    if eb is not None:
        ax = axes[1]
        ax.plot(ell, eb["cl_b"], "o-", color="C4", ms=3, label="KS B (data)")
        if "cl_b_noise" in eb:
            mu, sd = np.asarray(eb["cl_b_noise"]), np.asarray(eb["cl_b_noise_std"])
            ax.fill_between(ell, np.maximum(mu - sd, 1e-30), mu + sd, color="0.6", alpha=0.5, label="noise B ±1σ")
            ax.plot(ell, mu, "-", color="0.4")
        if "cl_b_null" in eb:
            mu, sd = np.asarray(eb["cl_b_null"]), np.asarray(eb["cl_b_null_std"])
            ax.fill_between(ell, np.maximum(mu - sd, 1e-30), mu + sd, color="C1", alpha=0.3,
                            label="noise + leakage B ±1σ")
        ax.set(xlabel=r"$\ell$", ylabel=r"$C_\ell^{BB}$", title="B mode (null test)")
        _log_y(ax)
        ax.legend(fontsize=7)
        _log_ell_axis(ax, ell)
    if null is not None:
        ax = axes[2]
        chi = np.asarray(null["chi2_realisations"], float)
        if chi.size and np.isfinite(null["chi2"]):
            ax.hist(chi, bins=min(30, max(5, chi.size // 4)), color="0.6", label=null.get("reference", "realisations"))
            ax.axvline(null["chi2"], color="C4", lw=2, label=f"data χ² = {null['chi2']:.1f}")
        ax.set(xlabel=r"$\chi^2_B$", ylabel="count",
               title=f"B-mode χ²/dof = {null['chi2']:.1f}/{null['dof']}, p = {null['p_value_empirical']:.3f}")
        ax.legend(fontsize=7)
    return _save(fig, path, dpi)


def plot_truth_spectra(path: Path, spectra: dict, dpi: int = 90) -> str:
    """Cross-correlation coefficient r(ℓ) with the truth and the power-spectrum ratio, per method."""
    ell = np.asarray(spectra["ell"], float)
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10.4, 4.2))
    for m in ("ks", "wiener", "posterior", "map"):
        if m in spectra and "r_ell" in spectra[m]:
            a1.plot(ell, spectra[m]["r_ell"], "o-", ms=3, color=COLORS[m], label=LABELS[m])
            a2.plot(ell, spectra[m]["ratio"], "o-", ms=3, color=COLORS[m], label=LABELS[m])
            if "ratio_samples" in spectra[m]:
                a2.plot(ell, spectra[m]["ratio_samples"], "s--", ms=3, mfc="none", color=COLORS[m],
                        label="posterior samples")
    a1.axhline(1, color="k", lw=0.8)
    a1.axhline(0, color="k", lw=0.5, ls=":")
    a1.set(xlabel=r"$\ell$", ylabel=r"$r(\ell)$", title="cross-correlation with truth", ylim=(-0.2, 1.05))
    a2.axhline(1, color="k", lw=0.8)
    a2.set(xlabel=r"$\ell$", ylabel=r"$C_\ell / C_\ell^{\rm truth}$", title="power-spectrum ratio")
    _log_y(a2)
    for a in (a1, a2):
        a.legend(fontsize=7)
        _log_ell_axis(a, ell)
    return _save(fig, path, dpi)


def plot_calibration(path: Path, calib: dict, z: np.ndarray, nbins: int, dpi: int = 90) -> str:
    """Coverage vs credible level (diagonal = calibrated) and the z-score histogram vs N(0, 1)."""
    lv, cov, err = (np.asarray(calib[k], float) for k in ("levels", "coverage", "binomial_error"))
    fig, (a1, a2) = plt.subplots(1, 2, figsize=(10.4, 4.3))
    a1.plot([0, 1], [0, 1], "k-", lw=0.8)
    a1.fill_between(lv, lv - 2 * err, lv + 2 * err, color="0.7", alpha=0.6, label="±2σ binomial (independent pixels)")
    a1.plot(lv, cov, "o-", color=COLORS["posterior"], label="posterior samples")
    a1.set(xlabel=r"credible level $\alpha$", ylabel="fraction of truth pixels inside", xlim=(0, 1), ylim=(0, 1),
           title=f"coverage ({calib['n_pixels']} pixels)")
    a1.legend(fontsize=8)
    z = np.asarray(z, float)
    z = z[np.isfinite(z)]  # none where the samples do not vary (σ = 0)
    lim = max(4.0, float(np.percentile(np.abs(z), 99.5))) if z.size else 4.0
    if z.size:
        a2.hist(z, bins=nbins, range=(-lim, lim), density=True, color=COLORS["posterior"], alpha=0.6,
                label="z-scores")
    xs = np.linspace(-lim, lim, 300)
    a2.plot(xs, sps.norm.pdf(xs), "k-", label="N(0, 1)")
    a2.set(xlabel=r"$z = (\kappa_{\rm true} - \bar\kappa) / \sigma$", ylabel="density",
           title=f"z-scores: mean {np.mean(z):+.2f}, std {np.std(z):.2f}" if z.size else "z-scores: none (σ = 0)")
    a2.legend(fontsize=8)
    return _save(fig, path, dpi)


def plot_sample_statistics(path: Path, st: dict, dpi: int = 90) -> str:
    """Posterior samples against the truth (massmap.summarize.samples.sample_statistics): the C_ℓ ratio
    with the samples' spread and the independent-draw sample variance, peak counts per S/N bin (truth vs
    samples' mean ± std) and the one-point κ PDF (truth vs samples' mean ± std)."""
    ps, pk, pdf = st["power_spectrum"], st.get("peak_counts"), st["pdf"]
    fig, (a1, a2, a3) = plt.subplots(1, 3, figsize=(15.6, 4.2))
    c = COLORS["posterior"]

    def arr(x):
        return np.asarray([np.nan if v is None else v for v in x], float)

    ell, ratio, spread, err = (arr(ps[k]) for k in ("ell", "ratio", "ratio_std", "ratio_error"))
    a1.fill_between(ell, 1 - err, 1 + err, color="0.8", label="±1σ if the truth were one more independent draw")
    a1.fill_between(ell, ratio - spread, ratio + spread, color=c, alpha=0.3, label="spread over samples (±1σ)")
    a1.plot(ell, ratio, "o-", color=c, ms=3, label=f"mean of {st['n_samples']} samples")
    a1.axhline(1, color="k", lw=0.8)
    a1.axvline(ps["ell_limit"], color="0.4", ls="--", lw=0.8, label="half Nyquist ℓ")
    dev = ps.get("max_abs_deviation")
    a1.set(xlabel=r"$\ell$", ylabel=r"$C_\ell^{\rm sample} / C_\ell^{\rm truth}$",
           title="power spectrum" + (f": max |ratio − 1| = {dev:.2f} below ℓ_Nyq/2"
                                    if dev is not None and np.isfinite(dev) else ""))
    a1.legend(fontsize=7)
    _log_ell_axis(a1, ell)
    if pk is not None:
        e = arr(pk["snr_edges"])
        mid = 0.5 * (e[1:] + e[:-1])
        a2.stairs(arr(pk["truth"]), e, color="k", lw=1.5, label="truth")
        a2.errorbar(mid, arr(pk["samples_mean"]), yerr=np.nan_to_num(arr(pk["samples_std"])), fmt="o", color=c,
                    ms=4, capsize=3, label="samples: mean ± std")
        a2.set(xlabel="S/N = κ / σ_posterior", ylabel="peaks per bin", title="peak counts")
        a2.legend(fontsize=7)
    else:
        a2.set_axis_off()
        a2.text(0.5, 0.5, "no posterior σ: no peak counts", ha="center", transform=a2.transAxes)
    e = arr(pdf["kappa_edges"])
    mid = 0.5 * (e[1:] + e[:-1])
    mean, sd = arr(pdf["samples_mean"]), np.nan_to_num(arr(pdf["samples_std"]))
    a3.fill_between(mid, np.maximum(mean - sd, 0), mean + sd, color=c, alpha=0.3, step="mid",
                    label="samples: mean ± std")
    a3.stairs(arr(pdf["truth"]), e, color="k", lw=1.5, label="truth")
    a3.plot(mid, mean, drawstyle="steps-mid", color=c, lw=1)
    positive = np.concatenate([arr(pdf["truth"]), mean])
    positive = positive[positive > 0]
    if positive.size:
        a3.set_yscale("log")
        a3.set_ylim(0.5 * positive.min(), 2 * positive.max())
    a3.set(xlabel="κ", ylabel="density", title=f"one-point PDF ({pdf['n_pixels']} pixels with data)")
    a3.legend(fontsize=7)
    return _save(fig, path, dpi)


def plot_pixel_histograms(path: Path, pixels: list[tuple[str, int, int]], samples: np.ndarray,
                          truth: np.ndarray | None, one_point: dict[str, np.ndarray], dpi: int = 90) -> str:
    """Posterior samples at selected pixels (truth marked), and the one-point PDF of every map."""
    n = len(pixels) + 1
    ncol = min(n, 4)
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(3.6 * ncol, 3.0 * nrow), squeeze=False)
    axes = axes.ravel()
    for ax, (name, iy, ix) in zip(axes, pixels):
        v = samples[:, iy, ix]
        ax.hist(v, bins=min(30, max(5, v.size // 4)), color=COLORS["posterior"], alpha=0.7)
        ax.axvline(v.mean(), color=COLORS["posterior"], lw=1.5, label="mean")
        ax.axvline(0, color="0.5", lw=0.8, ls=":")
        if truth is not None:
            ax.axvline(truth[iy, ix], color="k", lw=1.5, label="truth")
        ax.set_title(f"{name} (x={ix}, y={iy})\nP(κ>0) = {np.mean(v > 0):.2f}", fontsize=8)
        ax.set_xlabel("κ", fontsize=8)
        ax.legend(fontsize=6)
    ax = axes[len(pixels)]
    finite = np.concatenate([np.ravel(v) for v in one_point.values()])
    lo, hi = np.percentile(finite, [0.1, 99.9]) if finite.size else (-1, 1)
    for name, v in one_point.items():
        ax.hist(np.ravel(v), bins=40, range=(lo, hi), density=True, histtype="step", lw=1.5,
                color=LABEL_COLORS.get(name), label=name)
    ax.set(xlabel="κ", title="one-point PDF (pixels with data)")
    _log_y(ax)
    ax.title.set_fontsize(8)
    ax.legend(fontsize=6)
    for ax in axes[n:]:
        ax.set_visible(False)
    return _save(fig, path, dpi)


def summary_figures(folder: Path, grid: FlatGrid, recon, sums: dict, peaks: dict, spectra: dict, metrics: dict,
                    truth: np.ndarray | None, pos: dict | None, calib: dict | None, threshold: float = 3.0,
                    zscore_bins: int = 40, dpi: int = 90) -> list[dict[str, Any]]:
    """All figures of a summary; returns [{'file', 'title', 'caption'}] in report order."""
    mask = recon.mask
    figs: list[dict[str, Any]] = []
    marks = {LABELS[m]: (p["X"], p["Y"]) for m, p in peaks.items()}
    panels = [(LABELS[m], s.kappa) for m, s in sums.items()]
    if "ks" in sums and sums["ks"].extra.get("kappa_b") is not None:
        panels.append(("Kaiser-Squires B mode", sums["ks"].extra["kappa_b"]))
    if truth is not None:
        panels.append(("truth", truth))
    smooth = metrics["methods"].get("ks", {}).get("smoothing_arcmin")
    note = f" Kaiser-Squires maps smoothed with a Gaussian of σ = {smooth:g} arcmin." if smooth else ""
    figs.append({"file": plot_map_panels(folder / "maps.png", grid, panels, mask, marks, pos, cbar_label="κ",
                                         dpi=dpi),
                 "title": "κ maps", "caption": "Convergence maps on the sky; grey: no data; circles: S/N peaks; "
                                               "crosses: input positions." + note})
    snr_panels = [(LABELS[m], s.snr) for m, s in sums.items() if s.std is not None]
    if snr_panels:
        v = max(threshold + 1.0, max(float(np.percentile(np.abs(p[mask > 0]), 99.5)) for _, p in snr_panels))
        figs.append({"file": plot_map_panels(folder / "snr.png", grid, snr_panels, mask, marks, pos, vmax=v,
                                             cbar_label="S/N", dpi=dpi),
                     "title": "Signal-to-noise maps",
                     "caption": "κ / σ with σ from noise realisations (KS, Wiener) or the posterior standard deviation; "
                                "circles: peaks above the threshold."})
        std_panels = [(LABELS[m], s.std) for m, s in sums.items() if s.std is not None]
        figs.append({"file": plot_map_panels(folder / "sigma.png", grid, std_panels, mask, symmetric=False,
                                             cbar_label="σ(κ)", dpi=dpi),
                     "title": "Noise / posterior standard deviation", "caption": "Per-pixel σ used for the S/N maps."})
    figs.append({"file": plot_spectra(folder / "spectra.png", spectra, metrics.get("b_mode_null_test"), dpi=dpi),
                 "title": "Power spectra and B-mode null test",
                 "caption": "Pseudo-C_ℓ of map × mask divided by f_sky. Errors: Gaussian band-power errors "
                            "C_ℓ √(2/(modes·f_sky)); noise bands from the noise realisations."})
    if truth is not None:
        figs.append({"file": plot_truth_spectra(folder / "truth_spectra.png", spectra, dpi=dpi),
                     "title": "Comparison with the truth",
                     "caption": "Cross-correlation coefficient r(ℓ) = C_xt/√(C_xx C_tt) and C_ℓ / C_ℓ(truth)."})
    post = sums.get("posterior")
    if calib is not None:
        from massmap.summarize.stats import zscores

        z = zscores(truth, post.kappa, post.std, mask)
        figs.append({"file": plot_calibration(folder / "calibration.png", calib, z,
                                              zscore_bins, dpi=dpi),
                     "title": "Posterior calibration",
                     "caption": "Fraction of truth pixels inside the central α credible interval of the samples, "
                                "and z = (truth − mean)/std; a calibrated posterior follows the diagonal and N(0, 1)."})
    if metrics.get("sample_statistics"):
        figs.append({"file": plot_sample_statistics(folder / "sample_statistics.png", metrics["sample_statistics"],
                                                    dpi=dpi),
                     "title": "Posterior samples against the truth",
                     "caption": "Statistics of every posterior sample against the same statistic of the truth. Left: "
                                "C_ℓ(sample)/C_ℓ(truth) (masked pseudo-C_ℓ), mean and spread over samples; grey: "
                                "the scatter expected if the truth were one more independent draw. Middle: local "
                                "maxima of map/σ (σ: posterior std) per S/N bin. Right: histogram of κ in the "
                                "pixels with data. Agreement means a ratio consistent with 1 (up to half the "
                                "Nyquist ℓ, dashed) and truth counts and densities within the samples' mean ± std "
                                "— the truth looks like one more sample; power or peaks missing at some scale, or "
                                "a PDF too narrow or too skewed, show where the posterior samples differ."})
    if post is not None and post.samples is not None:
        pixels: list[tuple[str, int, int]] = []
        if pos is not None:
            pixels += [(str(nm), int(y), int(x)) for nm, y, x, ok in zip(pos["name"], pos["iy"], pos["ix"],
                                                                          pos["inside"]) if ok][:4]
        if "posterior" in peaks:
            pixels += [(f"peak {i + 1}", int(y), int(x)) for i, (y, x) in
                       enumerate(zip(peaks["posterior"]["Y"], peaks["posterior"]["X"]))][: 6 - len(pixels)]
        if len(pixels) < 2:
            inside_idx = np.flatnonzero(mask.ravel() > 0)
            for label, fn in (("max mean", np.argmax), ("min mean", np.argmin)):
                iy, ix = np.unravel_index(inside_idx[fn(post.kappa.ravel()[inside_idx])], mask.shape)
                pixels.append((label, int(iy), int(ix)))
        one = {LABELS[m]: s.kappa[mask > 0] for m, s in sums.items()}
        one["posterior samples"] = post.samples[:, mask > 0]
        if truth is not None:
            one["truth"] = truth[mask > 0]
        figs.append({"file": plot_pixel_histograms(folder / "pixels.png", pixels, post.samples, truth, one, dpi=dpi),
                     "title": "Posterior pixel histograms",
                     "caption": "Posterior samples at selected pixels (input positions, posterior peaks), and the "
                                "one-point distribution of every map's pixels with data."})
    return figs
