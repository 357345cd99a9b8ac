#!/bin/bash
# Install SLURM + munge from Debian packages. Idempotent.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
if command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v munged >/dev/null && command -v sbatch >/dev/null; then
  echo "slurm+munge already installed"; exit 0
fi
apt-get update
apt-get install -y --no-install-recommends slurmctld slurmd slurm-client munge
