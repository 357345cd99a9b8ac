#!/bin/bash
# The test suite's SLURM: install the Debian packages (root only) and start a single-node cluster.
# Never fails the build: prints why SLURM is unavailable instead, and the SLURM tests then skip with
# that reason (tests/test_slurm.py reads it from .slurm-unavailable).
here="$(cd "$(dirname "$0")" && pwd)"
reason_file="$here/../../.slurm-unavailable"
rm -f "$reason_file"
fail() { echo "SLURM unavailable: $1" | tee "$reason_file" >&2; exit 0; }
[ "$(id -u)" = 0 ] || fail "not root (installing and starting slurmctld/slurmd needs root)"
command -v apt-get >/dev/null || command -v sbatch >/dev/null || fail "no apt-get to install SLURM with"
log=$(mktemp)
bash "$here/install_slurm.sh" >"$log" 2>&1 || fail "package install failed: $(tail -1 "$log")"
bash "$here/start_slurm.sh" >"$log" 2>&1 || fail "cluster did not start: $(tail -3 "$log" | tr '\n' ' ')"
tail -1 "$log"
rm -f "$log"
