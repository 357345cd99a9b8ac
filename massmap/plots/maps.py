"""PNG figures of maps on their celestial WCS (matplotlib, Agg backend)."""
from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from massmap.geometry import FlatGrid  # noqa: E402
from massmap.io.output import atomic_path  # noqa: E402


def plot_maps(path: str | Path, grid: FlatGrid, maps: dict[str, np.ndarray], title: str = "",
              mask: np.ndarray | None = None, symmetric: bool = True) -> Path:
    """Maps side by side with RA/Dec axes; pixels outside ``mask`` are greyed out."""
    n = len(maps)
    ncol = min(n, 3)
    nrow = int(np.ceil(n / ncol))
    wcs = grid.wcs()
    fig = plt.figure(figsize=(4.6 * ncol, 4.2 * nrow))
    for i, (name, m) in enumerate(maps.items()):
        ax = fig.add_subplot(nrow, ncol, i + 1, projection=wcs)
        data = np.array(m, dtype=float)
        shown = data if mask is None else np.where(mask > 0, data, np.nan)
        finite = shown[np.isfinite(shown)]
        if symmetric and finite.size and not name.upper().endswith(("_STD", "SIGMA", "_ERR")):
            vmax = float(np.percentile(np.abs(finite), 99.5)) or 1.0
            kw = dict(vmin=-vmax, vmax=vmax, cmap="RdBu_r")
        else:
            kw = dict(cmap="viridis")
        im = ax.imshow(shown, origin="lower", interpolation="nearest", **kw)
        ax.set_title(name, fontsize=10)
        ax.coords[0].set_axislabel("RA")
        ax.coords[1].set_axislabel("Dec")
        ax.coords[0].set_major_formatter("d.dd")
        ax.coords[1].set_major_formatter("d.dd")
        fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    if title:
        fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, format="png")
    plt.close(fig)
    return Path(path)
