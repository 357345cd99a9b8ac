"""The particle mesh split over devices: particles by index, the density and force meshes in x slabs.

For meshes too large for one device. :func:`sharded_pm_integrator` returns the same
:class:`~massmap.sim.integrate.Integrator` (``init``, ``step``; :class:`PMState`, :class:`PMInfo`) as
:func:`massmap.sim.integrate.pm_integrator`, with the same KDK scheme and growth factors and the PM
operators of massmap.sim.pm (CIC corners and weights, wavevectors, CIC window, Nyquist masks); only
where the arrays live and how they move differs. With D devices on the 1-D mesh
(massmap.parallel.batch_mesh) and an n³ mesh:

* particles (P, 3) are split along the particle axis (P/D per device); from LPT the index runs over
  the lattice in x-major order, so device d starts with the particles of x slab d;
* δ (n, n, n) and the force mesh (n, n, n, 3) are split in D slabs of n/D x-planes;
* painting (CIC) is a ring: a slab's buffer visits every device (D ``ppermute`` steps), each adding
  its own particles' share, and ends on its owner; the readout passes the force slabs round the ring
  the same way. So no device ever holds more than two slabs, and particles may move anywhere;
* the FFTs (``fft``): ``"slab"`` (default) runs ``jnp.fft`` along y and z on each slab, an
  ``all_to_all`` transpose, then along x (k-space split along k_y), and back; ``"xla"`` calls
  ``jnp.fft.rfftn`` on the slab-split mesh and leaves it to XLA's SPMD partitioner, which on CPU
  gathers the whole mesh onto every device first (kept for comparison); ``"jaxdecomp"`` uses
  jaxdecomp's ``pfft3d``/``pifft3d`` where ``import jaxdecomp`` works (not a massmap dependency).

The result equals :func:`~massmap.sim.integrate.pm_integrator`'s up to float rounding: painting,
readout and the FFTs add the same terms in another order. n and the particle count must be
multiples of D.
"""
from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

from massmap import parallel
from massmap.sim.integrate import Integrator, PMInfo, PMState, StepFactors, kdk_step
from massmap.sim.pm import _cic_corners, acceleration_mesh, cic_window, nyquist_mask, rfft_wavevectors

FFTS = ("slab", "xla", "jaxdecomp")
AXIS = parallel.AXIS
X_SLABS = PartitionSpec(AXIS)  # leading axis split: particles, or x planes of a mesh
K_SLABS = PartitionSpec(None, AXIS)  # k-space of the "slab" FFT: split along k_y
JAXDECOMP_Y = "slab_y"  # the second (size-1) axis of the mesh jaxdecomp needs


def has_jaxdecomp() -> bool:
    """Whether the optional jaxdecomp distributed FFT can be imported."""
    try:
        import jaxdecomp  # noqa: F401
    except ImportError:
        return False
    return True


def _ring(n_dev: int):
    """The ring permutation: device j sends to j − 1 (so device d meets slab (d + t) mod D at step t)."""
    return [(j, (j - 1) % n_dev) for j in range(n_dev)]


def _local_corners(cells: jnp.ndarray, n: int, slab_index, slab: int):
    """The CIC corners of ``cells`` (P, 3) falling in x slab ``slab_index``: (index in the flat slab,
    weight); corners elsewhere get index 0 and weight 0. A slab's nodes are a contiguous flat range."""
    size = slab * n * n
    for flat, w in _cic_corners(cells, (n, n, n)):
        local = flat - slab_index * size
        inside = (local >= 0) & (local < size)
        yield jnp.where(inside, local, 0), jnp.where(inside, w, 0.0)


def _paint_ring(cells: jnp.ndarray, n: int, n_dev: int) -> jnp.ndarray:
    """Per-device body: CIC counts (n/D, n, n) of this device's x slab from every device's particles."""
    d = jax.lax.axis_index(AXIS)
    slab = n // n_dev

    def visit(t, buf):  # paint into slab (d + t) mod D, then hand the buffer to device d − 1
        for idx, w in _local_corners(cells, n, (d + t) % n_dev, slab):
            buf = buf.at[idx].add(w.astype(jnp.float32))
        return jax.lax.ppermute(buf, AXIS, _ring(n_dev))

    buf = jax.lax.pcast(jnp.zeros(slab * n * n, jnp.float32), AXIS, to="varying")
    return jax.lax.fori_loop(0, n_dev, visit, buf).reshape(slab, n, n)


def _readout_ring(field: jnp.ndarray, cells: jnp.ndarray, n: int, n_dev: int) -> jnp.ndarray:
    """Per-device body: CIC readout (P/D, C) of the slab-split ``field`` (n/D, n, n, C) at this
    device's particles, the slabs passed round the ring."""
    d = jax.lax.axis_index(AXIS)
    slab = n // n_dev

    def visit(t, carry):  # read from slab (d + t) mod D, then take the next one from device d + 1
        flat_field, out = carry
        for idx, w in _local_corners(cells, n, (d + t) % n_dev, slab):
            out = out + flat_field[idx] * w[:, None]
        return jax.lax.ppermute(flat_field, AXIS, _ring(n_dev)), out

    out = jax.lax.pcast(jnp.zeros((cells.shape[0], field.shape[-1]), jnp.float32), AXIS, to="varying")
    flat_field = field.reshape(slab * n * n, field.shape[-1])
    return jax.lax.fori_loop(0, n_dev, visit, (flat_field, out))[1]


def _rfft3_slab(x: jnp.ndarray) -> jnp.ndarray:
    """Per-device body: rfftn of the x-slab-split mesh, returned split along k_y (transposed layout)."""
    a = jnp.fft.fft(jnp.fft.rfft(x, axis=2), axis=1)
    a = jax.lax.all_to_all(a, AXIS, split_axis=1, concat_axis=0, tiled=True)
    return jnp.fft.fft(a, axis=0)


def _irfft3_slab(a: jnp.ndarray, n: int) -> jnp.ndarray:
    """Per-device body: the inverse of :func:`_rfft3_slab`, back to real x slabs."""
    a = jnp.fft.ifft(a, axis=0)
    a = jax.lax.all_to_all(a, AXIS, split_axis=0, concat_axis=1, tiled=True)
    return jnp.fft.irfft(jnp.fft.ifft(a, axis=1), n=n, axis=2).astype(jnp.float32)


def _force_slab(delta: jnp.ndarray, box_size: float, n_comp: int, mesh: Mesh) -> jnp.ndarray:
    """:func:`massmap.sim.pm.acceleration_mesh` with the slab FFTs (same factors, same order)."""
    n = delta.shape[0]
    fwd = jax.shard_map(_rfft3_slab, mesh=mesh, in_specs=X_SLABS, out_specs=K_SLABS)
    inv = jax.shard_map(partial(_irfft3_slab, n=n), mesh=mesh, in_specs=K_SLABS, out_specs=X_SLABS)
    kvec = rfft_wavevectors(n, box_size)
    masks = nyquist_mask(n)
    k2 = kvec[0] ** 2 + kvec[1] ** 2 + kvec[2] ** 2
    inv_k2 = jnp.where(k2 > 0, 1.0 / jnp.where(k2 > 0, k2, 1.0), 0.0)
    delta_k = fwd(delta)
    if n_comp:
        delta_k = delta_k / cic_window(kvec, box_size / n) ** n_comp
    pot = delta_k * inv_k2 * masks[0] * masks[1] * masks[2]
    return jnp.stack([inv(1j * kvec[i] * pot) for i in range(3)], axis=-1)


def _jaxdecomp_mesh(mesh: Mesh) -> Mesh:
    """The devices of the 1-D mesh as a (D, 1) mesh (one program must use one mesh throughout)."""
    return Mesh(mesh.devices.reshape(-1, 1), (AXIS, JAXDECOMP_Y), axis_types=(AxisType.Auto, AxisType.Auto))


def _force_jaxdecomp(delta: jnp.ndarray, box_size: float, n_comp: int, mesh: Mesh) -> jnp.ndarray:
    """The same force with jaxdecomp's complex pfft3d; fftfreq3d gives (k_x, k_y, k_z) shaped for its
    transposed k-space layout, so every factor is layout-independent; Nyquist planes zeroed as in pm.py.

    jaxdecomp wants a 2-D device mesh: ``mesh`` is :func:`_jaxdecomp_mesh`, x split over its first axis.
    """
    import jaxdecomp

    n = delta.shape[0]
    cell = box_size / n
    delta = jax.lax.with_sharding_constraint(delta, NamedSharding(mesh, PartitionSpec(AXIS, JAXDECOMP_Y)))
    delta_k = jaxdecomp.fft.pfft3d(delta.astype(jnp.complex64))
    kvec = [k.astype(jnp.float32) for k in jaxdecomp.fftfreq3d(delta_k, d=cell)]
    k2 = kvec[0] ** 2 + kvec[1] ** 2 + kvec[2] ** 2
    inv_k2 = jnp.where(k2 > 0, 1.0 / jnp.where(k2 > 0, k2, 1.0), 0.0)
    if n_comp:
        delta_k = delta_k / cic_window(kvec, cell) ** n_comp
    mask = 1.0
    if n % 2 == 0:  # |k_i| = π / cell on the Nyquist planes
        for k in kvec:
            mask = mask * jnp.where(jnp.abs(jnp.abs(k) * cell / jnp.pi - 1.0) < 1e-4, 0.0, 1.0)
    pot = delta_k * inv_k2 * mask
    return jnp.stack([jaxdecomp.fft.pifft3d(1j * k * pot).real.astype(jnp.float32) for k in kvec], axis=-1)


def sharded_accelerations(positions: jnp.ndarray, n: int, box_size: float, n_comp: int, mesh: Mesh,
                          fft: str = "slab") -> tuple[jnp.ndarray, jnp.ndarray]:
    """Per-particle −∇∇⁻²δ (P, 3) and δ (n, n, n), as :func:`massmap.sim.pm.pm_accelerations`, with
    particles and meshes split over ``mesh`` (call inside ``jax.jit``)."""
    n_dev = mesh.size
    n_particles = positions.shape[0]
    split = parallel.batch_sharding(mesh)
    positions = jax.lax.with_sharding_constraint(positions, split)
    paint = jax.shard_map(lambda c: _paint_ring(c, n, n_dev), mesh=mesh, in_specs=X_SLABS, out_specs=X_SLABS)
    cells = positions * (n / box_size)
    delta = paint(cells) * (n**3 / n_particles) - 1.0
    if fft == "slab":
        acc = _force_slab(delta, box_size, n_comp, mesh)
    elif fft == "jaxdecomp":
        acc = _force_jaxdecomp(delta, box_size, n_comp, mesh)
    else:
        acc = acceleration_mesh(delta, box_size, n_comp)
    acc = jax.lax.with_sharding_constraint(acc, split)
    readout = jax.shard_map(lambda f, c: _readout_ring(f, c, n, n_dev), mesh=mesh, in_specs=(X_SLABS, X_SLABS),
                            out_specs=X_SLABS)
    return readout(acc, cells), delta


def sharded_pm_integrator(mesh: int, box_size: float, omega_m: float, n_comp: int = 2,
                          device_mesh: Mesh | None = None, fft: str = "slab", donate: bool = False) -> Integrator:
    """:func:`massmap.sim.integrate.pm_integrator` with particles and meshes split over ``device_mesh``
    (default: every device); see the module docstring for ``fft``.

    ``init(positions, momenta, a)`` splits the particles over the devices itself; ``step(state,
    factors_k)`` → (PMState, PMInfo) with ``info.delta`` split in x slabs. ValueError if ``mesh`` or the
    particle count is not a multiple of the device count, or jaxdecomp is asked for and absent.
    """
    device_mesh = device_mesh or parallel.batch_mesh()
    if fft not in FFTS:
        raise ValueError(f"fft must be one of {FFTS}, got {fft!r}")
    if fft == "jaxdecomp" and not has_jaxdecomp():
        raise ValueError("fft='jaxdecomp' needs the jaxdecomp package (pip install jaxdecomp)")
    if fft == "jaxdecomp":
        device_mesh = _jaxdecomp_mesh(device_mesh)
    n_dev = device_mesh.size
    if mesh % n_dev:
        raise ValueError(f"the mesh ({mesh}) must be a multiple of the {n_dev} devices (x slabs)")
    amp = 1.5 * omega_m
    split, whole = parallel.batch_sharding(device_mesh), parallel.replicated(device_mesh)
    state_sharding = PMState(split, split, split, whole)

    def accelerations(pos):
        g, delta = sharded_accelerations(pos, mesh, box_size, n_comp, device_mesh, fft)
        return amp * g, delta

    @partial(jax.jit, out_shardings=state_sharding)
    def _init(positions, momenta, a):
        acc, _ = accelerations(positions)
        return PMState(positions, momenta, acc, jnp.asarray(a, jnp.float32))

    def init(positions, momenta, a) -> PMState:
        if np.shape(positions)[0] % n_dev:
            raise ValueError(f"{np.shape(positions)[0]} particles do not split over {n_dev} devices")
        return _init(*parallel.shard_batch((positions, momenta), device_mesh), a)

    @partial(jax.jit, donate_argnums=(0,) if donate else (), out_shardings=(state_sharding, PMInfo(whole, split)))
    def step(state: PMState, f: StepFactors):
        return kdk_step(state, f, accelerations, box_size)  # the single-device step, split accelerations

    return Integrator(init, step)
