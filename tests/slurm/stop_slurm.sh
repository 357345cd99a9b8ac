#!/bin/bash
# Stop slurmd, slurmctld and munged started by start_slurm.sh. Idempotent.
# Usage: stop_slurm.sh [--keep-munge]
# NB: PID 1 here is not an init that reaps promptly, so dead daemons linger as
# zombies; `kill -0` succeeds on zombies, hence the /proc state check.
RUNDIR=/run/slurm
alive() { # PID NAME
  [ -r /proc/$1/stat ] && [ "$(awk '{print $3}' /proc/$1/stat)" != Z ] &&
  [ "$(cat /proc/$1/comm 2>/dev/null)" = "$2" ]
}
stop() { # PIDFILE NAME
  [ -s "$1" ] || return 0
  local pid; pid=$(cat "$1")
  if alive "$pid" "$2"; then
    kill "$pid"
    for i in $(seq 1 20); do alive "$pid" "$2" || break; sleep 0.5; done
    alive "$pid" "$2" && kill -9 "$pid"
    echo "stopped $2 ($pid)"
  fi
  rm -f "$1"
}
stop $RUNDIR/slurmd.pid slurmd
stop $RUNDIR/slurmctld.pid slurmctld
[ "${1:-}" = "--keep-munge" ] || stop /run/munge/munged.pid munged
exit 0
