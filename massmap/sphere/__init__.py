"""Curved-sky (HEALPix) mass maps: shear binning, spin-2 Kaiser-Squires and Wiener filtering on the sphere.

Maps are HEALPix RING-ordered float64 arrays of 12 nside² pixels; harmonic coefficients use healpy's
a_ℓm layout (m ≥ 0, index ``healpy.Alm.getidx``). Shear maps are in massmap's native frame (see
:mod:`massmap.sphere.harmonic` for the mapping to healpy's spin-2 convention).
"""
