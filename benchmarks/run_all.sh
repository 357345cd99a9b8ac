#!/usr/bin/env bash
# Run every benchmarks/bench_*.py in turn with benchmarks/.venv (created/updated first), each printing
# its markdown table. Optional arguments: names of scripts to run instead of all (e.g. bench_reconstruct).
# Exits non-zero if any script failed (the others still run).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
bash benchmarks/setup_venv.sh || { echo "benchmarks: could not set up benchmarks/.venv" >&2; exit 1; }
PY="$ROOT/benchmarks/.venv/bin/python"
if [ "$#" -gt 0 ]; then
    scripts=()
    for name in "$@"; do scripts+=("benchmarks/${name%.py}.py"); done
else
    scripts=(benchmarks/bench_*.py)
fi
failed=()
for script in "${scripts[@]}"; do
    if [ ! -f "$script" ]; then
        echo "benchmarks: no such script '$script'" >&2
        failed+=("$script")
        continue
    fi
    echo
    echo "================ $script ================"
    start=$(date +%s)
    if "$PY" "$script"; then
        echo "---- $script: done in $(( $(date +%s) - start )) s"
    else
        echo "---- $script: FAILED (exit $?) after $(( $(date +%s) - start )) s" >&2
        failed+=("$script")
    fi
done
if [ "${#failed[@]}" -gt 0 ]; then
    echo "benchmarks failed: ${failed[*]}" >&2
    exit 1
fi
