#!/usr/bin/env bash
# GPU check of the JAX paths: posterior cost with a learned prior, posterior quality on held-out fields,
# and PM κ maps for the C_ℓ validation, on one CUDA machine where massmap and its dependencies import
# (jax with CUDA). Every part has its own time limit, so one failure does not stop the others.
#
#     bash benchmarks/gpu_check.sh OUTDIR [PART ...]
#
# PARTS (default: all, in this order):
#   bench       benchmarks/bench_posterior.py with the shipped learned prior, 128² and 360² (time/sample)
#   quality     benchmarks/validate_posterior.py with each prior in $PRIORS (default: the shipped one) and
#               the reconstruct overrides in $QUALITY_SET (e.g. "posterior.thin=3"); $QUALITY_SAMPLES
#               samples (64) from $QUALITY_CHAINS chains (default: massmap's, one draw per chain for a learned prior)
#               on $QUALITY_NPIX² fields (128) with padding $QUALITY_PAD (32)
#   pm          benchmarks/validate_pm.py maps for seeds $PM_FIRST.. (until its time limit); the maps are
#               packed into OUTDIR/pm_maps_*.npz (run `validate_pm.py cl` where pyccl is installed)
#   train       simulate configs/prior-default.yaml's training maps and train a prior with it and the
#               overrides in $TRAIN_SET (e.g. "prior.hybrid=true prior.npix=64") → OUTDIR/prior/
# Every part's output is appended to OUTDIR/log.txt; the GPU numbers in docs/ were made with this script.
set -u
OUTDIR=${1:?usage: gpu_check.sh OUTDIR [PART ...]}
shift
PARTS=${*:-bench quality pm}
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
mkdir -p "$OUTDIR"
export PYTHONUNBUFFERED=1 MPLBACKEND=Agg JAX_PLATFORMS=${JAX_PLATFORMS:-cuda}
PRIORS=${PRIORS:-massmap/data/priors/default.h5}
QUALITY_FIELDS=${QUALITY_FIELDS:-4}
PM_FIRST=${PM_FIRST:-11}

LOG="$OUTDIR/log.txt"
MASSMAP=(python3 -c "from massmap.cli import main; main()")

part() {  # part NAME LIMIT_S command...: run with a time limit, append to OUTDIR/log.txt
    local name=$1 limit=$2 start rc
    shift 2
    echo "=== $name (limit ${limit} s)" | tee -a "$LOG"
    start=$(date +%s)
    timeout "$limit" "$@" 2>&1 | tr '\r' '\n' | grep -v -E '^[^|]*: +[0-9]+%\|' >>"$LOG"
    rc=${PIPESTATUS[0]}
    echo "=== $name: exit $rc after $(($(date +%s) - start)) s" | tee -a "$LOG"
}

{
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
    python3 -c "import jax; print('jax', jax.__version__, jax.devices())"
} 2>&1 | tee -a "$LOG"

for p in $PARTS; do
    case $p in
    bench)
        part bench_posterior "${BENCH_LIMIT:-100}" python3 benchmarks/bench_posterior.py \
            --prior massmap/data/priors/default.h5 --sizes 128 360 --chains 8 --draws 8 4 ;;
    quality)
        qsets=()
        for kv in ${QUALITY_SET:-}; do qsets+=(--set "$kv"); done
        for prior in $PRIORS; do
            name=quality_$(basename "$prior" .h5)
            part "$name" "${QUALITY_LIMIT:-110}" python3 benchmarks/validate_posterior.py --prior "$prior" \
                --fields "$QUALITY_FIELDS" --n-samples "${QUALITY_SAMPLES:-64}" ${QUALITY_CHAINS:+--chains "$QUALITY_CHAINS"} \
                --npix "${QUALITY_NPIX:-128}" --pad "${QUALITY_PAD:-32}" --out "/tmp/massmap_quality/$name" "${qsets[@]}"
        done ;;
    pm)
        part pm_maps "${PM_LIMIT:-100}" python3 benchmarks/validate_pm.py maps --first "$PM_FIRST" --count 200
        python3 - "$OUTDIR" "$PM_FIRST" <<'EOF'
import json, sys
from pathlib import Path
import numpy as np
out, first = Path(sys.argv[1]), int(sys.argv[2])
files = sorted(f for f in Path("benchmarks/results/pm_maps").glob("kappa_seed*.npy") if int(f.stem[-3:]) >= first)
for k in range(0, len(files), 40):
    chunk = files[k:k + 40]
    np.savez_compressed(out / f"pm_maps_{k // 40}.npz", **{f.stem: np.load(f) for f in chunk},
                        **{f.stem + "_timing": np.array(json.dumps(json.loads(f.with_suffix(".json").read_text())))
                           for f in chunk})
print(f"packed {len(files)} PM maps")
EOF
        ;;
    train)
        mkdir -p /tmp/massmap_train "$OUTDIR/prior"
        part train_maps "${TRAIN_MAPS_LIMIT:-60}" "${MASSMAP[@]}" simulate -o /tmp/massmap_train/maps.h5 \
            --config configs/prior-default.yaml --overwrite --quiet
        sets=()
        for kv in ${TRAIN_SET:-}; do sets+=(--set "$kv"); done
        part train_prior "${TRAIN_LIMIT:-150}" "${MASSMAP[@]}" train-prior /tmp/massmap_train/maps.h5 \
            -o /tmp/massmap_train/prior_gpu.h5 --config configs/prior-default.yaml "${sets[@]}" --overwrite
        cp /tmp/massmap_train/prior_gpu.* "$OUTDIR/prior/" 2>/dev/null ;;
    *) echo "unknown part '$p'" | tee -a "$LOG" ;;
    esac
done
