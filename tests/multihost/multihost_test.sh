#!/usr/bin/env bash
# tests/multihost/multihost_test.sh GANTRY_BIN SOURCE_DIR — gantry train on two hosts.
#
# The two hosts are network namespaces joined by a veth pair (10.77.0.1/24, 10.77.0.2/24), each process
# tree in its own UTS namespace with its own host name. mpirun runs in host A (through launch/mpirun.sh)
# and starts host B's orted through tests/multihost/netns_agent.sh, an rsh agent that enters B's
# namespace. Open MPI is held to the veth subnet (btl tcp,self; oob and btl_tcp_if_include) and yields
# when idle (four busy-polling ranks on two cores ran 4x slower). The filesystem is shared, so the run
# directory is the shared storage a real cluster would have.
#
# Checks (each prints PASS or FAIL with its values; exit 1 if any failed):
#   1. 2 hosts x 2 ranks equal 4 ranks on one host bit for bit: network archives (manifest checksums),
#      RNG and buffers, Adam state (loaded and compared tensor by tensor); metrics.jsonl complete.
#   2. kill -9 of host B's ranks ends the job; --resume auto completes it equal to the uninterrupted run.
#   3. SIGSTOP of host B's ranks ends the job with exit 6 within dist.timeout_s + 10 s (launch/mpirun.sh's
#      grace included), naming ranks 2 and 3.
#   4. host B's veth link taken down: the same.
# Exit 77 (CTest: skipped) with "SKIP: <reason>" where this machine may not create namespaces.
# Only addresses inside the namespaces created here are used; everything is torn down on exit.
set -euo pipefail

gantry=$(readlink -f "${1:?usage: multihost_test.sh GANTRY_BIN SOURCE_DIR}")
src=$(readlink -f "${2:?usage: multihost_test.sh GANTRY_BIN SOURCE_DIR}")
here=$src/tests/multihost
agent=$here/netns_agent.sh
t_script=$SECONDS

steps=${MH_STEPS:-300}         # per run; a 2000-image slice, global batch 32
ckpt_every=50
log_every=10
timeout_s=5                    # dist.timeout_s of the fault runs
grace_s=${MH_GRACE_S:-3}       # launch/mpirun.sh's default grace, inside the contract's timeout_s + 10 s
fashion=/usr/share/datasets/fashion-mnist
checks=${MH_CHECKS:-equal sigstop linkdown}  # a subset, to rerun one scenario

# ---- skip where namespaces cannot be made -------------------------------------------------------
skip() { echo "SKIP: $*"; exit 77; }
[ "$(id -u)" = 0 ] || skip "needs root for ip netns (CI runs as root)"
command -v ip >/dev/null || skip "ip (iproute2) not installed"
command -v unshare >/dev/null || skip "unshare (util-linux) not installed"
[ -e "$fashion/train-images-idx3-ubyte.gz" ] || skip "Fashion-MNIST not at $fashion (dataset-fashion-mnist)"

id=$$
ns_a=gantry-mh-a-$id ns_b=gantry-mh-b-$id
host_a=mh-a-$id host_b=mh-b-$id
veth_a=gmha$id veth_b=gmhb$id
work=$(mktemp -d "${TMPDIR:-/tmp}/gantry-mh.XXXXXX")

kill_ns_procs() {  # every process left in a namespace, stopped ones included
  local pids
  pids=$(ip netns pids "$1" 2>/dev/null || true)
  [ -z "$pids" ] && return 0
  # shellcheck disable=SC2086
  kill -9 $pids 2>/dev/null || true
  for _ in $(seq 50); do [ -z "$(ip netns pids "$1" 2>/dev/null || true)" ] && return 0; sleep 0.1; done
}
cleanup() {
  local rc=$?
  for ns in "$ns_a" "$ns_b"; do
    kill_ns_procs "$ns"
    ip netns del "$ns" 2>/dev/null || true
  done
  ip link del "$veth_a" 2>/dev/null || true
  if [ "${MH_KEEP:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

if ! err=$(ip netns add "$ns_a" 2>&1); then skip "ip netns add not permitted here: $err"; fi
ip netns add "$ns_b"
ip link add "$veth_a" type veth peer name "$veth_b"
ip link set "$veth_a" netns "$ns_a"
ip link set "$veth_b" netns "$ns_b"
ip -n "$ns_a" addr add 10.77.0.1/24 dev "$veth_a"
ip -n "$ns_b" addr add 10.77.0.2/24 dev "$veth_b"
for ns in "$ns_a" "$ns_b"; do ip -n "$ns" link set lo up; done
ip -n "$ns_a" link set "$veth_a" up
ip -n "$ns_b" link set "$veth_b" up
if ! err=$(ip netns exec "$ns_a" unshare --uts true 2>&1); then skip "unshare --uts not permitted here: $err"; fi
echo "hosts: $host_a ($ns_a, 10.77.0.1) and $host_b ($ns_b, 10.77.0.2); work dir $work"

# ---- how to run things on a host ----------------------------------------------------------------
# shellcheck disable=SC2016  # $0 and $@ belong to the inner sh
on_a() { ip netns exec "$ns_a" unshare --uts sh -c 'hostname "$0" && exec "$@"' "$host_a" "$@"; }

export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 OMP_NUM_THREADS=1
export OMPI_MCA_mpi_yield_when_idle=1 GANTRY_BUILD_DIR=${gantry%/*}
# launch/mpirun.sh ends an mpirun that outlives its local ranks (it waits on a host it cannot reach)
# this long after they have gone.
export GANTRY_MPIRUN_GRACE_S=$grace_s
[ "${gantry##*/}" = gantry ] || { echo "FAIL: launch/mpirun.sh runs \$GANTRY_BUILD_DIR/gantry; got $gantry"; exit 1; }
printf '%s slots=2\n%s slots=2\n' "$host_a" "$host_b" >"$work/hostfile"
# shellcheck disable=SC2054  # btl list, not array elements
two_hosts=(env GANTRY_HOSTFILE="$work/hostfile" GANTRY_MH_HOSTS="$host_a=$ns_a $host_b=$ns_b"
  OMPI_MCA_plm_rsh_agent="$agent" OMPI_MCA_btl=tcp,self
  OMPI_MCA_btl_tcp_if_include=10.77.0.0/24 OMPI_MCA_oob_tcp_if_include=10.77.0.0/24)

# gantry train options of a run: RUN STEPS [extra options...] -> the array train_opts
train_opts=()
set_train_opts() {
  local run=$1 n=$2
  shift 2
  train_opts=(--config "$src/experiments/vae_fashion_mnist.ini" --data.path "$work/fm-train"
    --data.eval_path "$work/fm-t10k" --run-dir "$work/run-$run" --train.steps "$n"
    --train.batch_size 32 --train.threads 1 --train.log_every "$log_every" --train.checkpoint_every "$ckpt_every"
    --train.sample_every "$n" --train.eval_every "$n" --train.eval_batches 2 "$@")
}
# 4 ranks on host A alone (shared memory), or 2 ranks on each host; both through launch/mpirun.sh.
one_host() { set_train_opts "$@"; on_a "$src/launch/mpirun.sh" 4 "${train_opts[@]}"; }
two_host() { set_train_opts "$@"; on_a "${two_hosts[@]}" "$src/launch/mpirun.sh" 4 "${train_opts[@]}"; }

fails=0
pass() { echo "PASS: $*"; }
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }
check() {  # NAME CONDITION-COMMAND... ; the name carries the values
  local name=$1
  shift
  if "$@"; then pass "$name"; else fail "$name"; fi
}

latest() {  # newest complete checkpoint step of a run, or -1
  local f=$work/run-$1/checkpoints/LATEST
  [ -s "$f" ] || { echo -1; return; }
  local d
  d=$(cat "$f")
  echo $((10#${d#step-}))
}
final_dir() { echo "$work/run-$1/checkpoints/step-$(printf %08d "$2")"; }
# "file checksum" for every archive of a checkpoint but the optimizers (keyed by tensor address).
checksums() {
  /usr/bin/python3 - "$1/manifest.json" <<'EOF'
import json, sys
m = json.load(open(sys.argv[1]))
for name, info in sorted(m["files"].items()):
    if not name.endswith(".optim.pt"):
        print(name, info["checksum"])
EOF
}
# Optimizer archives key Adam's state by tensor address, which differs from run to run, so their bytes
# (and checksums) differ; compare the state itself: for each parameter, in the order the archive's
# param group lists them, its step, exp_avg and exp_avg_sq exactly.
same_optimizer_state() {  # DIR_A DIR_B -> prints a summary, fails on any difference
  # The Python whose torch matches the build: it reads the archives this build wrote.
  "${GANTRY_TORCH_PYTHON:-/usr/bin/python3}" "$here/compare_optim.py" "$1" "$2"
}
metrics_complete() {  # RUN: training records at log_every, 10..steps, each once, in order
  /usr/bin/python3 - "$work/run-$1/metrics.jsonl" "$log_every" "$steps" <<'EOF'
import json, sys
path, every, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
got = [json.loads(l)["step"] for l in open(path) if l.strip() and "eval_loss" not in l]
want = list(range(every, steps + 1, every))
print(f"{len(got)} records, steps {got[:1]}..{got[-1:]}, want {len(want)} ({every}..{steps})")
sys.exit(0 if got == want else 1)
EOF
}
gantry_pids() {  # NS: gantry rank processes in a namespace
  local p
  for p in $(ip netns pids "$1" 2>/dev/null || true); do
    [ "$(cat /proc/"$p"/comm 2>/dev/null)" = gantry ] && echo "$p"
  done
  return 0
}
describe_ns() {  # NS: what is left in a namespace, one "pid comm state" per process
  local p out=""
  for p in $(ip netns pids "$1" 2>/dev/null || true); do
    out+="$p:$(cat /proc/"$p"/comm 2>/dev/null):$(awk '{print $3}' /proc/"$p"/stat 2>/dev/null) "
  done
  echo "${out:-nothing}"
}
wait_for_checkpoint() {  # RUN PID SECONDS
  local end=$((SECONDS + $3))
  while [ $SECONDS -lt $end ]; do
    [ "$(latest "$1")" -gt 0 ] && return 0
    kill -0 "$2" 2>/dev/null || return 1
    sleep 0.1
  done
  return 1
}
# Waits for PID up to SECONDS; sets job_rc (exit code, or -1 still running) and job_took (seconds).
wait_job() {
  local pid=$1 limit=$2 t0=$3
  job_rc=-1
  while kill -0 "$pid" 2>/dev/null; do
    if [ "$(elapsed "$t0")" -ge "$limit" ]; then break; fi
    sleep 0.1
  done
  if ! kill -0 "$pid" 2>/dev/null; then
    job_rc=0
    wait "$pid" || job_rc=$?
  fi
  job_took=$(seconds_since "$t0")
}
now_ms() { date +%s%3N; }
elapsed() { echo $((($(now_ms) - $1) / 1000)); }
seconds_since() { awk -v a="$1" -v b="$(now_ms)" 'BEGIN { printf "%.1f", (b - a) / 1000 }'; }
after_fault() {  # NAME: what is left on each host; none of host A's gantry ranks may survive the job
  local left_a
  left_a=$(gantry_pids "$ns_a" | tr '\n' ' ')
  check "$1: no gantry rank left on host A (left: ${left_a:-none})" test -z "$left_a"
  echo "info: $1: left on host A: $(describe_ns "$ns_a")"
  echo "info: $1: left on host B: $(describe_ns "$ns_b") (killed now)"
  kill_ns_procs "$ns_a"
  kill_ns_procs "$ns_b"
}

# ---- data: a 2000-image slice and 500 held-out images -----------------------------------------------
on_a "$gantry" data convert --quiet --format idx --limit 2000 --images "$fashion/train-images-idx3-ubyte.gz" \
  --labels "$fashion/train-labels-idx1-ubyte.gz" --out "$work/fm-train"
on_a "$gantry" data convert --quiet --format idx --limit 500 --images "$fashion/t10k-images-idx3-ubyte.gz" \
  --labels "$fashion/t10k-labels-idx1-ubyte.gz" --out "$work/fm-t10k"

# ---- 1 and 2 (MH_CHECKS "equal"): a clean run and a killed one ----------------------------------------
equal_and_resume() {
  # ---- 1. two hosts equal one host, bit for bit -------------------------------------------------------
  t=$(now_ms)
  rc=0
  one_host ref "$steps" >"$work/ref.out" 2>&1 || rc=$?
  echo "info: 4 ranks on one host: exit $rc in $(seconds_since "$t") s"
  [ $rc = 0 ] || { tail -n 20 "$work/ref.out"; fail "reference run (4 ranks, one host) exit $rc"; return 0; }
  t=$(now_ms)
  rc=0
  two_host mh "$steps" >"$work/mh.out" 2>&1 || rc=$?
  echo "info: 2 hosts x 2 ranks: exit $rc in $(seconds_since "$t") s"
  [ $rc = 0 ] || { tail -n 20 "$work/mh.out"; fail "2 hosts x 2 ranks exit $rc"; return 0; }

  ref_dir=$(final_dir ref "$steps") mh_dir=$(final_dir mh "$steps")
  if [ -f "$ref_dir/manifest.json" ] && [ -f "$mh_dir/manifest.json" ]; then
    a=$(checksums "$ref_dir") b=$(checksums "$mh_dir")
    check "2x2 archives equal 4x1 at step $steps ($(echo "$b" | tr '\n' ' '))" test "$a" = "$b"
    [ "$a" = "$b" ] || diff <(echo "$a") <(echo "$b") || true
    if out=$(same_optimizer_state "$ref_dir" "$mh_dir" 2>&1); then pass "2x2 Adam state equals 4x1: $out"
    else fail "2x2 Adam state equals 4x1: $out"; fi
  else
    fail "final checkpoints at step $steps: ref $(latest ref), 2x2 $(latest mh)"
  fi
  for run in ref mh; do
    if out=$(metrics_complete $run 2>&1); then pass "metrics.jsonl of $run complete: $out"
    else fail "metrics.jsonl of $run complete: $out"; fi
  done

  # ---- 2. kill -9 of host B's ranks; --resume auto completes the run -----------------------------------
  two_host kill "$steps" >"$work/kill.out" 2>&1 &
  job=$!
  if wait_for_checkpoint kill $job 120; then
    at=$(latest kill)
    victims=$(gantry_pids "$ns_b" | tr '\n' ' ')
    on_host_a=$(gantry_pids "$ns_a" | tr '\n' ' ')
    check "two ranks on each host (host A: $on_host_a, host B: $victims)" \
      test "$(echo "$on_host_a" | wc -w)" = 2 -a "$(echo "$victims" | wc -w)" = 2
    t=$(now_ms)
    # shellcheck disable=SC2086
    [ -z "$victims" ] || kill -9 $victims
    wait_job $job 60 "$t"
    echo "info: kill -9 of host B's ranks ($victims) after checkpoint $at: exit $job_rc after $job_took s"
    check "kill -9: the job ends, non-zero, within 60 s (exit $job_rc, $job_took s)" \
      test "$job_rc" != -1 -a "$job_rc" != 0
    check "kill -9: stopped before the end (checkpoint $(latest kill) < $steps)" test "$(latest kill)" -lt "$steps"
    after_fault "kill -9"
    kill -9 "$job" 2>/dev/null || true; wait "$job" 2>/dev/null || true
    t=$(now_ms)
    rc=0
    two_host kill "$steps" --resume auto >"$work/kill-resume.out" 2>&1 || rc=$?
    resumed=$(grep -o "resumed from [^ ]* at step [0-9]*" "$work/kill-resume.out" | head -n 1 || true)
    echo "info: --resume auto: exit $rc in $(seconds_since "$t") s, ${resumed:-no resume line}"
    check "--resume auto completes the job (exit $rc, ${resumed:-not resumed})" test $rc = 0 -a -n "$resumed"
    kill_dir=$(final_dir kill "$steps")
    if [ -f "$kill_dir/manifest.json" ]; then
      a=$(checksums "$mh_dir") b=$(checksums "$kill_dir")
      check "resumed run's archives equal the uninterrupted 2x2 run's" test "$a" = "$b"
      if out=$(same_optimizer_state "$mh_dir" "$kill_dir" 2>&1); then pass "resumed run's Adam state equal: $out"
      else fail "resumed run's Adam state equal: $out"; fi
      if out=$(metrics_complete kill 2>&1); then pass "metrics.jsonl of the resumed run complete: $out"
      else fail "metrics.jsonl of the resumed run complete: $out"; fi
    else
      fail "resumed run has no checkpoint at step $steps (latest $(latest kill))"
      tail -n 20 "$work/kill-resume.out"
    fi
  else
    fail "kill -9: no checkpoint within 120 s"
    tail -n 20 "$work/kill.out"
  fi
  kill_ns_procs "$ns_a"
  kill_ns_procs "$ns_b"
}

# ---- 3 and 4. a hung host and a lost link end the job with exit 6 ----------------------------------
# A run long enough not to finish by itself; the fault comes after its first checkpoint.
hung_job() {  # NAME FAULT-COMMAND...
  local name=$1
  shift
  local bound=$((timeout_s + 10))  # the contract: the launcher's grace included
  two_host "$name" 100000 --dist.timeout_s $timeout_s >"$work/$name.out" 2>&1 &
  local job=$!
  if ! wait_for_checkpoint "$name" $job 120; then
    fail "$name: no checkpoint within 120 s"
    tail -n 20 "$work/$name.out"
    kill_ns_procs "$ns_a"
    kill_ns_procs "$ns_b"
    return 0
  fi
  local t
  t=$(now_ms)
  "$@"
  wait_job $job $((bound + 30)) "$t"
  echo "info: $name: exit $job_rc after $job_took s (bound: dist.timeout_s $timeout_s + 10 = $bound s, launcher grace $grace_s s inside it)"
  check "$name: exit 6 (got $job_rc)" test "$job_rc" = 6
  check "$name: ends within $bound s (took $job_took s)" \
    awk -v t="$job_took" -v b="$bound" -v rc="$job_rc" 'BEGIN { exit !(rc != -1 && t <= b) }'
  # The first abort line names exactly host B's ranks as not answering (the watchdog probes every rank:
  # a stopped or cut-off rank does not answer, even one that had announced the collective before the
  # fault). A live rank that was merely behind is named with the last collective it started (seen on
  # a loaded machine: "1 (last started #173)"); that is not a fault and is not counted here.
  local line named
  line=$(grep -o -m 1 "gantry: error: dist: [^;]* never arrived[^;]*" "$work/$name.out" | head -n 1 || true)
  named=$(echo "$line" | grep -oE '[0-9]+ \(no answer' | grep -oE '^[0-9]+' | sort -n | tr '\n' ' ' || true)
  echo "info: $name: ${line:-no abort line}"
  check "$name: the abort line names ranks 2 and 3 as not answering (named: ${named:-none})" test "$named" = "2 3 "
  [ -n "$line" ] || { echo "---- last lines of $name's output:"; tail -n 15 "$work/$name.out"; }
  after_fault "$name"
  kill -9 "$job" 2>/dev/null || true; wait "$job" 2>/dev/null || true
  return 0
}
stop_host_b() {
  victims=$(gantry_pids "$ns_b" | tr '\n' ' ')
  echo "info: SIGSTOP to host B's ranks: ${victims:-none found}"
  # shellcheck disable=SC2086
  [ -z "$victims" ] || kill -STOP $victims
}
link_down() {  # host B's link, as when its cable or switch port fails: A sees no carrier, B gets nothing
  echo "info: ip link set $veth_b down in $ns_b"
  ip -n "$ns_b" link set "$veth_b" down
}
wanted() { [[ " $checks " == *" $1 "* ]]; }
wanted equal && equal_and_resume
wanted sigstop && hung_job sigstop stop_host_b
wanted linkdown && hung_job linkdown link_down

echo "total: $((SECONDS - t_script)) s, $fails check(s) failed"
[ $fails = 0 ] || exit 1
