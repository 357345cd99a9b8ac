"""PNG figures of training: a simulated map set's preview (simulate) and a prior's loss and denoising
curves (train-prior)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from massmap import __version__  # noqa: E402
from massmap.io.output import atomic_path  # noqa: E402

N_PREVIEW = 4  # maps shown in a map set's preview


def write_preview(path: Path, maps: np.ndarray, pixel_size_arcmin: float, kind: str,
                  shift: float | None = None, variance: float | None = None) -> Path:
    """PNG: the first few maps and the one-point histogram of κ (with the model PDF) over ``maps``."""

    shown = maps[:N_PREVIEW]
    n = len(shown)
    fig, axes = plt.subplots(1, n + 1, figsize=(3.2 * (n + 1), 3.3), constrained_layout=True)
    size = maps.shape[-1] * pixel_size_arcmin
    lim = float(np.percentile(np.abs(shown), 99.5)) or 1.0
    for k, ax in enumerate(axes[:n]):
        im = ax.imshow(shown[k], origin="lower", cmap="inferno", vmin=-lim, vmax=lim,
                       extent=(0, size, 0, size))
        ax.set_title(f"{kind} map {k}")
        ax.set_xlabel("x [arcmin]")
        if k == 0:
            ax.set_ylabel("y [arcmin]")
    fig.colorbar(im, ax=axes[:n], shrink=0.8, label="κ")
    ax = axes[-1]
    values = maps.ravel()
    ax.hist(values, bins=80, density=True, histtype="step", color="k", label=f"{len(maps)} maps")
    x = np.linspace(values.min(), values.max(), 400)
    var = float(variance) if variance else float(values.var())
    mu = 0.0 if variance else float(values.mean())  # model variance: zero-mean maps; else the sample's
    ax.plot(x, np.exp(-0.5 * (x - mu) ** 2 / var) / np.sqrt(2 * np.pi * var), "C0--", label="Gaussian")
    if shift:
        sg2 = np.log1p(var / shift**2)
        y = np.clip(x / shift + 1.0, 1e-300, None)
        pdf = np.exp(-(np.log(y) + 0.5 * sg2) ** 2 / (2 * sg2)) / (y * shift * np.sqrt(2 * np.pi * sg2))
        ax.plot(x, np.where(x > -shift, pdf, 0.0), "C3-", lw=1, label=f"lognormal λ={shift:.3g}")
    ax.set_yscale("log")
    ax.set_ylim(bottom=max(1e-3 / np.sqrt(var), ax.get_ylim()[0]))
    ax.set_xlabel("κ")
    ax.set_ylabel("PDF")
    ax.set_title("one-point PDF")
    ax.legend(fontsize=7)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=110)
    plt.close(fig)
    return path


def write_loss_plot(path: Path, history: dict, sigma: np.ndarray, per_map: np.ndarray, white: np.ndarray,
                    title: str) -> Path:
    """Loss curves (train: per step and running mean; validation: EMA) and validation loss vs σ."""

    steps, loss = history["train_step"], history["train_loss"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    a.plot(steps, loss, color="0.75", lw=0.5, label="train (per step)")
    w = max(1, len(loss) // 50)
    if len(loss) >= w:
        run = np.convolve(loss, np.ones(w) / w, mode="valid")
        a.plot(steps[w - 1:], run, color="C0", label=f"train (running mean, {w} steps)")
    a.plot(history["val_step"], history["val_loss"], "o-", color="C3", ms=3, label="validation (EMA)")
    a.set_yscale("log")
    a.set_xlabel("step")
    a.set_ylabel("DSM loss  E|u + r|² / N")
    a.legend(fontsize=8)
    b.semilogx(sigma, per_map, ".", color="C3", label="network (validation maps)")
    b.semilogx(sigma, white, ".", color="0.6", ms=3, label="analytic base term alone")
    b.axhline(1.0, color="k", lw=0.8, ls=":", label="zero score")
    b.set_xlabel("σ (κ units)")
    b.set_ylabel("DSM loss per map")
    b.legend(fontsize=8)
    fig.suptitle(f"massmap {__version__} train-prior: {title}")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, format="png")
    plt.close(fig)
    return path


def write_denoise_plot(path: Path, noisy: np.ndarray, denoised: np.ndarray, truth: np.ndarray,
                       sigmas: list[float], title: str) -> Path:
    """Rows of (noisy κ + σu, Tweedie-denoised κ + σ² s_θ, truth) with rms errors, one per σ."""

    lim = float(np.percentile(np.abs(truth[0]), 99.5)) or 1.0
    fig, axes = plt.subplots(len(sigmas), 3, figsize=(9, 3 * len(sigmas)), squeeze=False)
    for i, s in enumerate(sigmas):
        err_n = float(np.sqrt(np.mean((noisy[i] - truth[i]) ** 2)))
        err_d = float(np.sqrt(np.mean((denoised[i] - truth[i]) ** 2)))
        for j, (img, name) in enumerate(((noisy[i], f"noisy, σ = {s:.3g} (rms err {err_n:.3g})"),
                                         (denoised[i], f"denoised (rms err {err_d:.3g})"),
                                         (truth[i], "truth"))):
            ax = axes[i, j]
            im = ax.imshow(img, origin="lower", cmap="inferno", vmin=-lim, vmax=lim)
            ax.set_title(name, fontsize=8)
            ax.set_xticks([])
            ax.set_yticks([])
        fig.colorbar(im, ax=axes[i].tolist(), shrink=0.8, label="κ")
    fig.suptitle(f"massmap {__version__} train-prior: Tweedie denoising of a validation patch ({title})", fontsize=9)
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
    plt.close(fig)
    return path
