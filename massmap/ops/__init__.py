"""Pure JAX physics on flat-sky grids (no I/O)."""
