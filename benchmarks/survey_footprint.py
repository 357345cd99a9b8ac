"""A survey-like footprint for ``mock.positions``: uniform galaxies with bright-star holes and a gap.

    python benchmarks/survey_footprint.py OUT.fits [--side 70] [--density 60] [--stars 60] [--seed 7]

Real survey masks at arcminute scales are dominated by bright-star masks (circles whose radius grows
with the star's brightness: here N(> r) ∝ r⁻² between 0.7′ and 5′, Poisson-placed) and by gaps between
pointings or CCDs (here one 3′ strip). This writes the positions of a uniform catalog of ``--density``
galaxies per arcmin² over a ``--side``′ square, minus those holes, as a FITS table (RA, DEC in degrees
about RA 150.1°, Dec 2.2°; E1 = E2 = 0: the mock draws its own shapes). ``mock-catalog --set
mock.positions=OUT.fits`` thins it to ``mock.n_gal`` and lays it on the map (massmap.pipeline.mock);
with the defaults 11.8% of the square is masked, and 7.4% of the pixels of a 64² field of 1′ have no
galaxy. Same seed → same file.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from astropy.io import fits

RA0, DEC0 = 150.1, 2.2  # the footprint's centre (degrees); only the offsets from it matter
R_MIN, R_MAX = 0.7, 5.0  # star-mask radii (arcmin)
GAP = (9.0, 12.0)  # x range (arcmin from the centre, West positive) of the strip with no galaxies


def footprint(side: float, density: float, n_stars: int, seed: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Galaxy offsets (x West, y North, arcmin) of the footprint and the fraction of the square masked."""
    rng = np.random.default_rng(seed)
    n = int(density * side**2)
    x = rng.uniform(-side / 2, side / 2, n)
    y = rng.uniform(-side / 2, side / 2, n)
    sx, sy = rng.uniform(-side / 2, side / 2, (2, n_stars))
    radius = np.minimum(R_MIN * (1.0 - rng.random(n_stars)) ** -0.5, R_MAX)  # N(> r) ∝ r⁻²
    keep = np.ones(n, bool)
    for a, b, r in zip(sx, sy, radius):
        keep &= (x - a) ** 2 + (y - b) ** 2 > r**2
    keep &= (x < GAP[0]) | (x > GAP[1])
    return x[keep], y[keep], float(1.0 - keep.mean())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("output")
    ap.add_argument("--side", type=float, default=70.0, help="side of the square (arcmin)")
    ap.add_argument("--density", type=float, default=60.0, help="galaxies per arcmin² before masking")
    ap.add_argument("--stars", type=int, default=60, help="number of bright-star masks")
    ap.add_argument("--seed", type=int, default=7)
    args = ap.parse_args()
    x, y, masked = footprint(args.side, args.density, args.stars, args.seed)
    dec = DEC0 + y / 60.0
    ra = RA0 - x / 60.0 / np.cos(np.radians(DEC0))  # tangent-plane offsets; West is −RA
    zero = np.zeros(x.size, np.float32)
    hdu = fits.BinTableHDU.from_columns([fits.Column(name="RA", format="D", array=ra),
                                         fits.Column(name="DEC", format="D", array=dec),
                                         fits.Column(name="E1", format="E", array=zero),
                                         fits.Column(name="E2", format="E", array=zero)])
    hdu.header["MASKED"] = (round(masked, 4), "fraction of the square masked")
    out = Path(args.output)
    tmp = out.with_name(f".{out.name}.tmp")
    hdu.writeto(tmp, overwrite=True)
    tmp.replace(out)
    print(f"wrote {out}: {x.size} galaxies over {args.side:g}′ × {args.side:g}′, {100 * masked:.1f}% masked "
          f"({args.stars} star masks, one {GAP[1] - GAP[0]:g}′ gap)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
