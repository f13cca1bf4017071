#!/bin/sh
# tests/multihost/netns_agent.sh — an rsh agent for Open MPI (--mca plm_rsh_agent) that "logs in" to a
# host simulated by a network namespace: `netns_agent.sh [ssh-style options] HOST COMMAND...`.
# $GANTRY_MH_HOSTS maps host names to namespaces: "hostA=nsA hostB=nsB". The command runs in that
# namespace with its own UTS namespace named HOST (Open MPI 4.1 crashes or hangs when two of its
# hosts report the same name). Like ssh, the remaining words are joined into one shell command line
# (Open MPI hands the orted command over as a string for the remote shell). The environment passes
# through unchanged, so the remote orted sees OMPI_ALLOW_RUN_AS_ROOT and the same PATH.
set -eu
while [ $# -gt 0 ]; do
  case $1 in
    -[1246AaCfgKkMNnqsTtVvXxYy]) shift ;;  # ssh flags without an argument
    -?) shift 2 ;;                          # ssh flags with one (-l user, -p port, -o opt, ...)
    -*) shift ;;
    *) break ;;
  esac
done
host=${1:?usage: netns_agent.sh HOST COMMAND...}
shift
ns=
for pair in ${GANTRY_MH_HOSTS:?GANTRY_MH_HOSTS is not set}; do
  [ "${pair%%=*}" = "$host" ] && ns=${pair#*=}
done
[ -n "$ns" ] || { echo "netns_agent: no namespace for host '$host' in GANTRY_MH_HOSTS" >&2; exit 255; }
# shellcheck disable=SC2016  # $1 and $2 belong to the inner sh
exec ip netns exec "$ns" unshare --uts sh -c 'hostname "$1" && exec sh -c "$2"' sh "$host" "$*"
