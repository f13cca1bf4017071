#!/usr/bin/env bash
# launch/mpirun.sh N ARGS... — `gantry train ARGS` on N ranks of this machine (or of the hosts in
# $GANTRY_HOSTFILE). Root-safe (containers, CI) and oversubscription-tolerant on small machines.
# Exit code is gantry's: 75 means "stopped by a signal after a checkpoint, run again to resume".
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
n=${1:?usage: launch/mpirun.sh NRANKS --config FILE [options]}
shift
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
hosts=()
[ -n "${GANTRY_HOSTFILE:-}" ] && hosts=(--hostfile "$GANTRY_HOSTFILE")
exec mpirun --oversubscribe --bind-to none "${hosts[@]}" -n "$n" \
  "${GANTRY_BUILD_DIR:-$here/build}/gantry" train "$@"
