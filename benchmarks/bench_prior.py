"""Score-prior training benchmark: throughput, peak memory and FLOP efficiency at 64², 128², 256².

    .venv/bin/python benchmarks/bench_prior.py              # the default `prior` network and batch
    .venv/bin/python benchmarks/bench_prior.py --steps 5 --sizes 64 128

Each map size runs in its own subprocess: build the default network (config section `prior`, with
``prior.npix`` set to the size), compile the training step (timed), run a few warm steps (median
time → steps/s and maps/s), and read the process's peak resident memory (VmHWM). The FLOPs of one
score evaluation (one map) and of one training step come from XLA's cost analysis of the compiled
functions; the achieved FLOP/s is compared with the machine's measured peak, the FLOP/s of a large
float32 matmul (2048³, best of 5) in the same process. Random training maps: the cost does not
depend on the values.

Baseline: every size runs twice, with massmap's XLA CPU default (YNNPACK fusions off,
massmap/xla_defaults.py) and with XLA's own (``MASSMAP_XLA_DEFAULTS=0``: YNNPACK on), in the same run;
the last column is the training speed-up of massmap's setting.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _peak_rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def _flops(compiled) -> float:
    cost = compiled.cost_analysis()
    if isinstance(cost, (list, tuple)):
        cost = cost[0]
    return float(cost.get("flops", float("nan")))


def matmul_peak() -> float:
    import jax
    import jax.numpy as jnp

    n = 2048
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), jnp.float32)
    f = jax.jit(lambda a: a @ a)
    f(a).block_until_ready()
    best = float("inf")
    for _ in range(5):
        t = time.perf_counter()
        f(a).block_until_ready()
        best = min(best, time.perf_counter() - t)
    return 2 * n**3 / best


def worker(npix: int, steps: int) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from massmap.config import load_config
    from massmap.pipeline.train_prior import train_spec
    from massmap.prior.augment import make_patch_source
    from massmap.prior.dsm import residual_network, white_mode_variance
    from massmap.prior.training import init_train, train_step

    cfg = load_config([], [f"prior.npix={npix}"])
    pc = cfg.prior
    spec, hyper = train_spec(pc, 1.0, 0.01, 10.0)
    rng = np.random.default_rng(0)
    n_regions = 8
    source = make_patch_source(rng.standard_normal((n_regions, 2 * npix, 2 * npix)).astype(np.float32),
                               np.full((n_regions, 2), 2 * npix), npix)
    mv = white_mode_variance(npix, npix)
    state = init_train(jax.random.PRNGKey(0), spec, hyper, mv)
    jax.block_until_ready(state)
    t = time.perf_counter()
    step = train_step.lower(state, source, mv, hyper, spec).compile()
    compile_s = time.perf_counter() - t
    state, _ = step(state, source, mv, hyper)
    jax.block_until_ready(state)
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        state, info = step(state, source, mv, hyper)
        jax.block_until_ready(info.loss)
        times.append(time.perf_counter() - t)
    step_s = float(np.median(times))
    train_flops = _flops(step)
    # score evaluations by the exported network (spectral norm folded), on a batch of 10 maps (the
    # posterior's default chunk of chains): the wall time of the batch, the FLOPs per map
    net = residual_network(spec.unet._replace(spectral_norm=False))
    params = state.ema_params
    score = jax.jit(lambda p, x, s: net.apply(p, {}, None, x, s, mv)[0])
    x10, s10 = jnp.zeros((10, npix, npix), jnp.float32), jnp.ones((10,), jnp.float32)
    fwd10 = score.lower(params, x10, s10).compile()
    jax.block_until_ready(fwd10(params, x10, s10))
    score_times = []
    for _ in range(max(steps, 3)):
        t = time.perf_counter()
        jax.block_until_ready(fwd10(params, x10, s10))
        score_times.append(time.perf_counter() - t)
    return {"npix": npix, "batch": pc.batch_size, "channels": list(pc.channels),
            "spectral_norm": pc.spectral_norm, "compile_s": compile_s, "step_s": step_s,
            "steps_per_s": 1.0 / step_s, "maps_per_s": pc.batch_size / step_s,
            "train_flops": train_flops, "score_flops": _flops(fwd10) / 10, "score_s": float(np.median(score_times)),
            "n_params": int(sum(np.size(v) for v in jax.tree_util.tree_leaves(params))),
            "peak_rss_mb": _peak_rss_mb(), "matmul_flops_s": matmul_peak()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    ap.add_argument("--steps", type=int, default=5, help="warm training steps timed per size")
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.steps)))
        return
    rows = []
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "MASSMAP_XLA_DEFAULTS")}
    env["JAX_PLATFORMS"] = os.environ.get("JAX_PLATFORMS", "cpu")
    for n in args.sizes:
        for setting, flag in (("XLA's (YNNPACK on)", "0"), ("massmap's (YNNPACK off)", "1")):
            out = subprocess.run([sys.executable, __file__, "--worker", str(n), "--steps", str(args.steps)],
                                 capture_output=True, text=True, cwd=ROOT,
                                 env={**env, "MASSMAP_XLA_DEFAULTS": flag})
            if out.returncode != 0:
                print(out.stderr[-2000:], file=sys.stderr)
                raise SystemExit(f"bench_prior: worker for {n}² failed")
            rows.append({**json.loads(out.stdout.strip().splitlines()[-1]), "setting": setting})
    r0 = rows[0]
    print(f"\nScore-prior training, default network: channels {r0['channels']}, spectral norm "
          f"{r0['spectral_norm']}, batch {r0['batch']}, {r0['n_params']} parameters; "
          f"{os.cpu_count()} CPU core(s), load average {os.getloadavg()[0]:.1f}\n")
    print("| map | XLA CPU setting | compile (s) | steps/s | maps/s | score eval, 10 maps (ms) | peak RSS (MB) "
          "| GFLOP / score eval | GFLOP / train step | achieved GFLOP/s | matmul peak GFLOP/s | % of peak "
          "| speed-up |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    base = {}
    for r in rows:
        achieved = r["train_flops"] / r["step_s"]
        base.setdefault(r["npix"], r["step_s"])
        print(f"| {r['npix']}² | {r['setting']} | {r['compile_s']:.1f} | {r['steps_per_s']:.2f} | "
              f"{r['maps_per_s']:.1f} | {1e3 * r['score_s']:.1f} | {r['peak_rss_mb']:.0f} | "
              f"{r['score_flops'] / 1e9:.3f} | {r['train_flops'] / 1e9:.2f} | {achieved / 1e9:.1f} | "
              f"{r['matmul_flops_s'] / 1e9:.1f} | {100 * achieved / r['matmul_flops_s']:.0f} | "
              f"{base[r['npix']] / r['step_s']:.2f}× |")


if __name__ == "__main__":
    main()
