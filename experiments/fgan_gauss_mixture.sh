#!/usr/bin/env bash
# f-GAN's 1-D experiment for every divergence, then the table: theta-hat learned by the single-step
# method (this run) next to theta* by quadrature (this code) and the paper's Table 3 where it has one.
#   bash experiments/fgan_gauss_mixture.sh [NRANKS] [extra gantry train options...]
# Runs land in $GANTRY_OUT/<divergence> (default runs/fgan_gauss_mixture); the table is also written
# to $GANTRY_OUT/table.md. E.g. the alternating update for comparison:
#   GANTRY_OUT=runs/fgan_gauss_mixture_alternating bash experiments/fgan_gauss_mixture.sh 2 --fgan.update alternating
set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
n=${1:-2}
shift || true
out=${GANTRY_OUT:-runs/fgan_gauss_mixture}
mkdir -p "$out"
for d in kl reverse_kl pearson neyman hellinger js gan jeffrey; do
  echo "== $d"
  bash "$here/launch/mpirun.sh" "$n" --config "$here/experiments/fgan_gauss_mixture.ini" \
    --run-dir "$out/$d" --resume none --fgan.divergence "$d" "$@" >"$out/$d.log" 2>&1 ||
    { echo "fgan_gauss_mixture: $d failed, see $out/$d.log" >&2; exit 1; }
  grep "^.*eval at step" "$out/$d.log" | tail -1
done
/usr/bin/python3 "$here/experiments/fgan_table.py" "$out" | tee "$out/table.md"
