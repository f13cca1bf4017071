#!/usr/bin/env bash
# launch/mpirun.sh N ARGS... — `gantry train ARGS` on N ranks of this machine (or of the hosts in
# $GANTRY_HOSTFILE). Root-safe (containers, CI) and oversubscription-tolerant on small machines.
# Exit code is gantry's: 75 means "stopped by a signal after a checkpoint", 6 "a rank was lost or
# hung": run again with --resume auto (launch/slurm.sbatch requeues on both).
#
# mpirun runs in the background, so this script can
#   - forward SIGTERM, SIGINT and SIGUSR1 to it (gantry checkpoints at the next step and exits 75);
#   - end an mpirun that outlives its ranks: when every gantry rank on this host has exited but mpirun
#     is still running GANTRY_MPIRUN_GRACE_S (3) seconds later — it waits on a host it cannot reach,
#     where the ranks were lost — it is terminated (TERM, then KILL) and the script exits 6;
#   - report a rank killed by a signal (mpirun exits 128+N; the OOM killer, a node failing) as 6,
#     unless the signal was one this script forwarded.
# GANTRY_MPIRUN (default mpirun) and GANTRY_BUILD_DIR (default ./build) choose the programs.
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
n=${1:?usage: launch/mpirun.sh NRANKS --config FILE [options]}
shift
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
hosts=()
[ -n "${GANTRY_HOSTFILE:-}" ] && hosts=(--hostfile "$GANTRY_HOSTFILE")
gantry="${GANTRY_BUILD_DIR:-$here/build}/gantry"
grace=${GANTRY_MPIRUN_GRACE_S:-3}  # short: the job must end within dist.timeout_s + 10 s

"${GANTRY_MPIRUN:-mpirun}" --oversubscribe --bind-to none "${hosts[@]}" -n "$n" "$gantry" train "$@" &
mpirun_pid=$!
forwarded=0
forward() { forwarded=1; kill -"$1" "$mpirun_pid" 2>/dev/null; }
trap 'forward TERM' TERM
trap 'forward INT' INT
trap 'forward USR1' USR1

# The local ranks are mpirun's children running $gantry (ssh to remote hosts are children too: ignored).
seen_ranks=0 ranks_gone_at=
while kill -0 "$mpirun_pid" 2>/dev/null; do
  if pgrep -P "$mpirun_pid" -f -- "$gantry" > /dev/null; then
    seen_ranks=1 ranks_gone_at=
  elif [ "$seen_ranks" = 1 ]; then
    [ -z "$ranks_gone_at" ] && ranks_gone_at=$SECONDS
    if (( SECONDS - ranks_gone_at >= grace )); then
      echo "gantry: error: launch/mpirun.sh: every rank on this host has exited but mpirun is still running" \
        "${grace} s later (a host it cannot reach?): ending it; a rank was lost or hung; resume with --resume auto" >&2
      kill -TERM "$mpirun_pid" 2>/dev/null
      for _ in 1 2 3 4 5; do kill -0 "$mpirun_pid" 2>/dev/null || break; sleep 1; done
      kill -KILL "$mpirun_pid" 2>/dev/null
      wait "$mpirun_pid" 2>/dev/null
      exit 6  # the ranks' own codes are not visible from here; a lost rank is the likely cause
    fi
  fi
  sleep 0.5 & wait $!  # a trapped signal interrupts this wait, not the loop
done
wait "$mpirun_pid"; code=$?
if (( code > 128 )) && [ "$forwarded" = 0 ]; then
  echo "gantry: error: launch/mpirun.sh: a rank or mpirun was killed by signal $((code - 128));" \
    "a rank was lost or hung; resume with --resume auto" >&2
  exit 6
fi
exit "$code"
