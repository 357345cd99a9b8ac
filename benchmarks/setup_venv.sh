#!/usr/bin/env bash
# Create or update benchmarks/.venv: massmap (editable, with the pinned versions of requirements.lock)
# plus the peer packages of benchmarks/requirements.txt. Idempotent; safe to run concurrently (flock).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/benchmarks/.venv"
PYTHON="${PYTHON:-python3}"
cd "$ROOT"
exec 9<"$ROOT/benchmarks"   # lock the folder itself: no stray lock file
flock 9
if [ ! -x "$VENV/bin/python" ]; then
    "$PYTHON" -m venv "$VENV"
    "$VENV/bin/python" -m pip install -q --upgrade pip
fi
STAMP="$VENV/.installed"
if [ -f "$STAMP" ] && [ "$STAMP" -nt requirements.lock ] && [ "$STAMP" -nt pyproject.toml ] \
        && [ "$STAMP" -nt benchmarks/requirements.txt ]; then
    exit 0
fi
"$VENV/bin/python" -m pip install -q -c requirements.lock -e ".[test]"  # bench_tiles reuses the test catalogs
"$VENV/bin/python" -m pip install -q -c requirements.lock -r benchmarks/requirements.txt
touch "$STAMP"
