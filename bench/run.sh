#!/usr/bin/env bash
# make bench: GEMM GFLOP/s and DistilBERT-base LoRA training tokens/s of peftc, then the same training
# step in PyTorch (as installed, tuned, bf16 autocast), back to back, with a table of ratios.
# Every case runs in its own process. PyTorch missing is not an error: its rows say "skipped".
#   BUILD=build bash bench/run.sh   (BENCH_STEPS: timed steps per training case, default 10;
#                                    BENCH_PYTHON: the python with torch, default /usr/bin/python3)
set -u
BUILD=${BUILD:-build}
STEPS=${BENCH_STEPS:-10}
PY=${BENCH_PYTHON:-/usr/bin/python3}   # Debian's python3-torch lives there
HERE=$(cd "$(dirname "$0")" && pwd)
THREADS=${OMP_NUM_THREADS:-$(nproc)}
LOG=$(mktemp -d /tmp/peftc-bench-log.XXXXXX)
trap 'rm -rf "$LOG"' EXIT

has_avx512() { grep -q ' avx512f' /proc/cpuinfo 2>/dev/null; }

echo "== machine"
echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "cpu:     $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs"
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min; other work on the machine skews the figures)"
echo "env:     OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)} OMP_NUM_THREADS=${OMP_NUM_THREADS:-(unset)}"
echo "threads: $THREADS for every case"

# run_case NAME CMD...: runs one case, shows its output, keeps its "result" line in $LOG/NAME.
run_case() {
  local name=$1; shift
  echo
  echo "== $name: $*"
  "$@" 2>&1 | tee "$LOG/$name.out"
  local rc=${PIPESTATUS[0]}
  grep '^result ' "$LOG/$name.out" | tail -1 > "$LOG/$name" || true
  return "$rc"
}

status=0
run_case gemm "$BUILD/bench/bench_gemm" || status=1
if has_avx512 && [ "${OPENBLAS_CORETYPE:-}" != SkylakeX ]; then
  run_case gemm-skx env OPENBLAS_CORETYPE=SkylakeX "$BUILD/bench/bench_gemm" || status=1
fi
run_case peftc "$BUILD/bench/bench_train" "$STEPS" || status=1
if has_avx512 && [ "${OPENBLAS_CORETYPE:-}" != SkylakeX ]; then
  run_case peftc-skx env OPENBLAS_CORETYPE=SkylakeX "$BUILD/bench/bench_train" "$STEPS" || status=1
fi
# bf16 with the OpenBLAS kernels `peftc` itself would restart with (the LoRA and attention products)
if has_avx512 && [ "${OPENBLAS_CORETYPE:-}" != SkylakeX ]; then
  run_case peftc-bf16 env OPENBLAS_CORETYPE=SkylakeX "$BUILD/bench/bench_train" --bf16 "$STEPS" || status=1
else
  run_case peftc-bf16 "$BUILD/bench/bench_train" --bf16 "$STEPS" || status=1
fi
for mode in installed tuned bf16; do
  if [ -x "$PY" ]; then
    run_case "torch-$mode" env BENCH_THREADS="$THREADS" "$PY" "$HERE/torch_distilbert_lora.py" "$mode" "$STEPS" ||
      echo "torch-$mode failed (above); continuing"
  else
    echo; echo "== torch-$mode: $PY not found: skipped"
  fi
done

# The table: per case tokens/s over all timed steps, ms/step, tokens/s of the fastest step (other work on
# the machine disturbs it less), peak RSS, and peftc's tokens/s over the case's (mean and fastest step).
echo
echo "== DistilBERT-base LoRA r8 q_lin,v_lin, batch 16 x 64, $STEPS steps, $THREADS threads"
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (at the end)"
# The reference peftc row: the kernels `peftc` itself runs with (the CLI restarts with OpenBLAS's SkylakeX
# core type on an AVX-512 CPU), and the bf16 row.
ref=peftc
[ -s "$LOG/peftc-skx" ] && ref=peftc-skx
peftc_tps=0 peftc_best=0 bf16_tps=0
[ -s "$LOG/$ref" ] && read -r _ _ _ peftc_tps _ _ _ _ _ peftc_best < "$LOG/$ref"
[ -s "$LOG/peftc-bf16" ] && read -r _ _ _ bf16_tps _ < "$LOG/peftc-bf16"
echo "ratios: peftc fp32 = the $ref row; bf16 = the peftc-bf16 row"
ratio() { awk -v a="${1:-0}" -v b="${2:-0}" 'BEGIN { if (a > 0 && b > 0) printf "%.2fx", a / b; else print "-" }'; }
row() { printf '| %-42s | %8s | %7s | %12s | %11s | %10s | %12s | %9s |\n' "$@"; }
row case tokens/s ms/step "fastest tok/s" "peak RSS MB" "peftc/case" "(fastest)" "bf16/case"
echo "|--------------------------------------------|---------:|--------:|--------------:|------------:|-----------:|-------------:|----------:|"
describe() {
  case $1 in
    peftc) echo "peftc (OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-default})" ;;
    peftc-skx) echo "peftc (OPENBLAS_CORETYPE=SkylakeX)" ;;
    peftc-bf16) echo "peftc bf16: true (frozen weights in bf16; OpenBLAS as peftc runs it)" ;;
    torch-installed) echo "PyTorch as installed" ;;
    torch-tuned) echo "PyTorch tuned (OpenBLAS SkylakeX kernels)" ;;
    torch-bf16) echo "PyTorch bf16 autocast" ;;
  esac
}
for name in peftc peftc-skx peftc-bf16 torch-installed torch-tuned torch-bf16; do
  [ "$name" = peftc-skx ] && [ ! -e "$LOG/peftc-skx.out" ] && continue
  if [ -s "$LOG/$name" ]; then
    read -r _ _ _ tps _ ms _ rss _ best < "$LOG/$name"
    row "$(describe "$name")" "$tps" "$ms" "$best" "$rss" "$(ratio "$peftc_tps" "$tps")" "$(ratio "$peftc_best" "$best")" \
        "$(ratio "$bf16_tps" "$tps")"
  else
    why="no result"
    grep -q 'PyTorch not installed' "$LOG/$name.out" 2>/dev/null && why="skipped: no torch"
    row "$(describe "$name")" - - - - - "$why" -
  fi
done
exit $status
