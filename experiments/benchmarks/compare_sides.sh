# Sourced by the C++-vs-Python step benchmarks (dcgan_cpp_vs_python.sh, cyclegan_step_vs_python.sh).
#   set_sides CPP113 CPP2 SCRIPT.py   sides: C++ 1.13 (build/), Python 1.13 (Debian's python3-torch, the same
#                                LibTorch), Python 2.x (the PyPI wheel's venv in build-pypi/) and C++ 2.x
#                                (build-pypi/) where those exist; prints the machine line
#   sides=("NAME|COMMAND" ...)   (or by hand) each side's command prints one line "...: X ms/step ..." for the
#                                given args; the first is the baseline, the second runs on the same LibTorch
#   check() { sed ...; }         the part of a line (e.g. the losses) that the first two sides must print alike
#   compare_sides LABEL THREADS ARGS...
# runs every side ROUNDS times (default 5), alternating within each round, with OMP_NUM_THREADS=THREADS,
# exits 1 when the first two sides' check strings differ, and prints one row: per side the median and best
# ms/step and their ratio to the baseline's.
set_sides() {
  local py2=${GANTRY_PYPI_PYTHON:-$here/build-pypi/venv/bin/python}
  sides=("C++ 1.13|$1" "Python 1.13|/usr/bin/python3 $3")
  [[ -x $py2 ]] && sides+=("Python $("$py2" -c 'import torch; print(torch.__version__.split("+")[0])')|$py2 $3")
  [[ -x $2 ]] && sides+=("C++ 2.x|$2")
  echo "machine: $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u '+%F %T UTC')"
}

median() { printf '%s\n' "$@" | sort -g | sed -n "$(( ($# + 1) / 2 ))p"; }
best() { printf '%s\n' "$@" | sort -g | head -n 1; }

compare_sides() {
  local label=$1 threads=$2 rounds=${ROUNDS:-5} r s line c0 m b row
  shift 2
  local -A t=()
  for ((r = 1; r <= rounds; r++)); do
    for s in "${!sides[@]}"; do
      line=$(OMP_NUM_THREADS=$threads ${sides[$s]#*|} "$@")
      echo "$line" >&2
      t[$s]+=" $(sed -E 's/.*: ([0-9.]+) ms.*/\1/' <<<"$line")"
      [[ $s == 0 ]] && c0=$(check <<<"$line")
      if [[ $s == 1 && $(check <<<"$line") != "$c0" ]]; then
        echo "$(basename "$0"): ${sides[0]%%|*} and ${sides[1]%%|*} differ ($c0 vs $(check <<<"$line"))" >&2
        exit 1
      fi
    done
  done
  row="=> $label (ms/step, median / best of $rounds):"
  for s in "${!sides[@]}"; do
    m=$(median ${t[$s]})
    b=$(best ${t[$s]})
    row+=$(awk -v n="${sides[$s]%%|*}" -v m="$m" -v b="$b" -v cm="$(median ${t[0]})" -v cb="$(best ${t[0]})" \
      'BEGIN { printf " %s %.1f / %.1f (x%.2f / x%.2f of %s);", n, m, b, m / cm, b / cb, "C++ 1.13" }')
  done
  echo "$row"
}
