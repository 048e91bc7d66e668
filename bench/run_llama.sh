#!/usr/bin/env bash
# TinyLlama-1.1B-shaped benchmarks (issues 3, 4, 6), back to back, one process per case: peftc LoRA (fp32 base)
# and QLoRA (nf4 + double quant, bf16 compute, paged 8-bit AdamW, checkpointing) training, the same LoRA step
# in PyTorch (fp32 as installed, fp32 with OpenBLAS's SkylakeX kernels, bf16 autocast), then greedy generation
# with the KV cache (fp32 and 4-bit); a table with ratios at the end. The random model (~4.4 GB) and its 4-bit
# copy are written once under /tmp by `bench_llama prepare` and reused.
#   BUILD=build bash bench/run_llama.sh   (BENCH_STEPS: timed steps per training case, default 3;
#                                          BENCH_KEPT_BLOCKS: the kept-blocks QLoRA case's count, default 8;
#                                          BENCH_PYTHON: the python with torch, default /usr/bin/python3;
#                                          BENCH_QUIET: on a shared machine, seconds to wait before each case
#                                          for the CPUs to fall idle (< 10 % busy over 5 s), default 0)
# Needs $BUILD/bench/bench_llama (make BUILD=... $BUILD/bench/bench_llama). PyTorch missing is not an error.
set -u
BUILD=${BUILD:-build}
STEPS=${BENCH_STEPS:-3}
PY=${BENCH_PYTHON:-/usr/bin/python3}   # Debian's python3-torch lives there
QUIET=${BENCH_QUIET:-0}
HERE=$(cd "$(dirname "$0")" && pwd)
BENCH="$BUILD/bench/bench_llama"
THREADS=${OMP_NUM_THREADS:-$(nproc)}
LOG=$(mktemp -d /tmp/peftc-bench-llama-log.XXXXXX)
trap 'rm -rf "$LOG"' EXIT

has_avx512() { grep -q ' avx512f' /proc/cpuinfo 2>/dev/null; }
load1() { cut -d' ' -f1 /proc/loadavg; }
cpu_ticks() { awk '/^cpu / { print $2 + $3 + $4 + $7 + $8 + $9, $2 + $3 + $4 + $5 + $6 + $7 + $8 + $9 }' /proc/stat; }
busy_percent() {   # share of the CPUs busy over the next 5 s
  local b1 t1 b2 t2
  read -r b1 t1 < <(cpu_ticks); sleep 5; read -r b2 t2 < <(cpu_ticks)
  echo $(( 100 * (b2 - b1) / (t2 - t1 > 0 ? t2 - t1 : 1) ))
}
wait_quiet() {     # up to $QUIET seconds
  local waited=0
  while [ "$waited" -lt "$QUIET" ] && [ "$(busy_percent)" -ge 10 ]; do waited=$((waited + 5)); done
}
# Also the SkylakeX (AVX-512) OpenBLAS kernels when the CPU has them and the environment pins others.
want_skx() { has_avx512 && [ "${OPENBLAS_CORETYPE:-}" != SkylakeX ]; }

if [ ! -x "$BENCH" ]; then
  echo "$BENCH not found: make BUILD=$BUILD $BENCH" >&2
  exit 2
fi

echo "== machine"
echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "cpu:     $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) CPUs, $(free -g | awk '/^Mem:/ {print $2}') GB RAM"
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (1/5/15 min; other work on the machine skews the figures)"
echo "env:     OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE:-(unset)} OMP_NUM_THREADS=${OMP_NUM_THREADS:-(unset)}"
echo "threads: $THREADS for every case; $STEPS timed steps per training case after 1 warm-up"
echo "quiet:   up to $QUIET s of waiting before each case for the CPUs to fall idle"
echo
echo "== prepare"
"$BENCH" prepare || exit 1

# run_case NAME CMD...: runs one case, shows its output, keeps its "result" line in $LOG/NAME, the 1-minute
# load average at its start in $LOG/NAME.load, and in $LOG/NAME.others the share of the machine's CPU time
# that went to other processes while it ran (all CPU time spent minus the case's own user + system time).
run_case() {
  local name=$1; shift
  wait_quiet
  load1 > "$LOG/$name.load"
  echo
  echo "== $name (load $(cat "$LOG/$name.load")): $*"
  local b1 t1 b2 t2
  read -r b1 t1 < <(cpu_ticks)
  /usr/bin/time -f '%U %S' -o "$LOG/$name.time" "$@" 2>&1 | tee "$LOG/$name.out"
  local rc=${PIPESTATUS[0]}
  read -r b2 t2 < <(cpu_ticks)
  awk -v busy=$((b2 - b1)) -v total=$((t2 - t1)) -v hz="$(getconf CLK_TCK)" '
    { own = $1 + $2 } END { o = total > 0 ? 100 * (busy / hz - own) / (total / hz) : 0; printf "%.0f%%\n", o < 0 ? 0 : o }' \
    "$LOG/$name.time" > "$LOG/$name.others"
  grep '^result ' "$LOG/$name.out" | tail -1 > "$LOG/$name" || true
  return "$rc"
}

torch_case() {   # torch_case NAME MODE [ENV...]
  local name=$1 mode=$2; shift 2
  if [ -x "$PY" ]; then
    run_case "$name" env BENCH_THREADS="$THREADS" "$@" "$PY" "$HERE/torch_llama_lora.py" "$mode" "$STEPS" ||
      echo "$name failed (above); continuing"
  else
    echo; echo "== $name: $PY not found: skipped"
  fi
}

status=0
run_case peftc-lora "$BENCH" lora "$STEPS" || status=1
want_skx && { run_case peftc-lora-skx env OPENBLAS_CORETYPE=SkylakeX "$BENCH" lora "$STEPS" || status=1; }
run_case peftc-qlora "$BENCH" qlora "$STEPS" || status=1
want_skx && { run_case peftc-qlora-skx env OPENBLAS_CORETYPE=SkylakeX "$BENCH" qlora "$STEPS" || status=1; }
# QLoRA with 8 of the 22 blocks keeping their MLP's gate/up outputs (gradient_checkpointing_kept_blocks: 8), as
# much as 1.2 GB allows: 11 MiB a block
KEPT=${BENCH_KEPT_BLOCKS:-8}
if want_skx; then
  run_case peftc-qlora-kept env OPENBLAS_CORETYPE=SkylakeX "$BENCH" --kept-blocks "$KEPT" qlora "$STEPS" || status=1
else
  run_case peftc-qlora-kept "$BENCH" --kept-blocks "$KEPT" qlora "$STEPS" || status=1
fi
# QLoRA with the Trainer's bf16: true (TrainingArguments(bf16=True), as PyTorch's bf16 autocast row runs its
# lm_head): the fp32 lm_head packed in bf16 too; with the OpenBLAS kernels of the reference row
if want_skx; then
  run_case peftc-qlora-bf16 env OPENBLAS_CORETYPE=SkylakeX "$BENCH" --bf16 qlora "$STEPS" || status=1
else
  run_case peftc-qlora-bf16 "$BENCH" --bf16 qlora "$STEPS" || status=1
fi
torch_case torch-fp32 fp32
want_skx && torch_case torch-fp32-skx fp32 OPENBLAS_CORETYPE=SkylakeX
torch_case torch-bf16 bf16
run_case peftc-generate-fp32 "$BENCH" generate fp32 || status=1
run_case peftc-generate-nf4 "$BENCH" generate nf4 || status=1

# The tables: per case tokens/s over all timed steps, s/step, tokens/s of the fastest step (other work on the
# machine disturbs it less), peak RSS, the load at the case's start, the CPU share other processes took while
# it ran (a case with more than a few % is disturbed: rerun it), and peftc's tokens/s over the case's
# (mean, and fastest step in parentheses). peftc's figures are those of its rows with the environment's
# OpenBLAS kernels (peftc-lora, peftc-qlora).
describe() {
  case $1 in
    peftc-lora) echo "peftc LoRA fp32 (OpenBLAS ${OPENBLAS_CORETYPE:-default})" ;;
    peftc-lora-skx) echo "peftc LoRA fp32 (OpenBLAS SkylakeX)" ;;
    peftc-qlora) echo "peftc QLoRA nf4+dq bf16 (OpenBLAS ${OPENBLAS_CORETYPE:-default})" ;;
    peftc-qlora-skx) echo "peftc QLoRA nf4+dq bf16 (OpenBLAS SkylakeX)" ;;
    peftc-qlora-kept) if want_skx; then echo "peftc QLoRA, $KEPT blocks keep MLP (SkylakeX)"; else echo "peftc QLoRA, $KEPT blocks keep MLP"; fi ;;
    peftc-qlora-bf16) echo "peftc QLoRA nf4+dq bf16, bf16: true (lm_head)" ;;
    torch-fp32) echo "PyTorch fp32 as installed" ;;
    torch-fp32-skx) echo "PyTorch fp32 tuned (OpenBLAS SkylakeX)" ;;
    torch-bf16) echo "PyTorch bf16 autocast" ;;
    peftc-generate-fp32) echo "peftc generate, fp32" ;;
    peftc-generate-nf4) echo "peftc generate, nf4+dq bf16" ;;
  esac
}
field() { [ -s "$LOG/$1" ] && awk -v k="$2" '{ for (i = 1; i < NF; i++) if ($i == k) print $(i + 1) }' "$LOG/$1"; }
ratio() {   # ratio PEFTC_CASE CASE: mean (fastest)
  awk -v a="$(field "$1" tokens/s)" -v b="$(field "$2" tokens/s)" \
      -v c="$(field "$1" fastest_step_tokens/s)" -v d="$(field "$2" fastest_step_tokens/s)" \
      'BEGIN { if (a > 0 && b > 0 && c > 0 && d > 0) printf "%.2fx (%.2fx)", a / b, c / d; else print "-" }'
}
row() { printf '| %-44s | %8s | %7s | %13s | %11s | %5s | %6s | %21s | %21s |\n' "$@"; }
why_missing() {
  if [ ! -e "$LOG/$1.out" ]; then echo "not run"
  elif grep -q 'PyTorch not installed' "$LOG/$1.out"; then echo "skipped: no torch"
  else echo "no result"; fi
}

# The reference rows: the kernels the `peftc` program itself runs with (on an AVX-512 CPU it restarts with
# OpenBLAS's SkylakeX core type, README "Architecture").
lora_ref=peftc-lora qlora_ref=peftc-qlora
[ -s "$LOG/peftc-lora-skx" ] && lora_ref=peftc-lora-skx
[ -s "$LOG/peftc-qlora-skx" ] && qlora_ref=peftc-qlora-skx

echo
echo "== TinyLlama-1.1B shape, LoRA r16 alpha 32 on q/k/v_proj, batch 1 x 256, $STEPS steps, $THREADS threads"
echo "load:    $(cut -d' ' -f1-3 /proc/loadavg) (at the end)"
row case tokens/s s/step "fastest tok/s" "peak RSS MB" load others "LoRA ÷ case (fastest)" "QLoRA ÷ case (fastest)"
echo "|----------------------------------------------|---------:|--------:|--------------:|------------:|------:|-------:|----------------------:|----------------------:|"
for name in peftc-lora peftc-lora-skx peftc-qlora peftc-qlora-skx peftc-qlora-kept peftc-qlora-bf16 torch-fp32 torch-fp32-skx torch-bf16; do
  case $name in *-skx) [ -e "$LOG/$name.out" ] || continue ;; esac
  if [ -s "$LOG/$name" ]; then
    row "$(describe "$name")" "$(field "$name" tokens/s)" "$(field "$name" s/step)" \
        "$(field "$name" fastest_step_tokens/s)" "$(field "$name" peak_rss_MB)" "$(cat "$LOG/$name.load")" \
        "$(cat "$LOG/$name.others")" "$(ratio "$lora_ref" "$name")" "$(ratio "$qlora_ref" "$name")"
  else
    row "$(describe "$name")" - - - - - - - "$(why_missing "$name")"
  fi
done

echo
echo "== greedy generation, 16-token prompt + 128 new tokens, KV cache, $THREADS threads"
row2() { printf '| %-44s | %8s | %8s | %13s | %11s | %5s | %6s |\n' "$@"; }
row2 case tokens/s s/token "fastest tok/s" "peak RSS MB" load others
echo "|----------------------------------------------|---------:|---------:|--------------:|------------:|------:|-------:|"
for name in peftc-generate-fp32 peftc-generate-nf4; do
  if [ -s "$LOG/$name" ]; then
    row2 "$(describe "$name")" "$(field "$name" tokens/s)" "$(field "$name" s/step)" \
         "$(field "$name" fastest_step_tokens/s)" "$(field "$name" peak_rss_MB)" "$(cat "$LOG/$name.load")" \
         "$(cat "$LOG/$name.others")"
  else
    row2 "$(describe "$name")" - - - - - "$(why_missing "$name")"
  fi
done

# The targets of issues 4 and 6, checked against this run (benchmarks, never tests).
echo
echo "references: LoRA = the $lora_ref row, QLoRA = the $qlora_ref row"
q_rss=$(field "$qlora_ref" peak_rss_MB) q_tps=$(field "$qlora_ref" tokens/s) l_tps=$(field "$lora_ref" tokens/s)
# check LABEL X Y le|ge: whether X <= Y (or >= Y); "not measured" when either figure is missing.
check() { awk -v label="$1" -v x="${2:-0}" -v y="${3:-0}" -v op="$4" 'BEGIN {
  verdict = (x <= 0 || y <= 0) ? "not measured" : ((op == "le" ? x <= y : x >= y) ? "met" : "NOT met")
  printf "%-66s %s\n", label, verdict }'; }
check "issue 4: QLoRA peak RSS ${q_rss:-?} MB <= 1200 MB" "$q_rss" 1200 le
check "issue 4: QLoRA ${q_tps:-?} tok/s >= fp32 LoRA ${l_tps:-?} tok/s" "$q_tps" "$l_tps" ge
b_tps=$(field torch-bf16 tokens/s)
check "issue 6: QLoRA ${q_tps:-?} tok/s >= 1.5 x PyTorch bf16 autocast ${b_tps:-?} tok/s" "$q_tps" \
      "$(awk -v b="${b_tps:-0}" 'BEGIN { print 1.5 * b }')" ge
check "issue 6: QLoRA ${q_tps:-?} tok/s >= 105 tok/s" "$q_tps" 105 ge
qk_tps=$(field peftc-qlora-kept tokens/s) qk_rss=$(field peftc-qlora-kept peak_rss_MB)
check "issue 6: QLoRA kept $KEPT ${qk_tps:-?} tok/s >= 1.5 x PyTorch bf16 autocast" "$qk_tps" \
      "$(awk -v b="${b_tps:-0}" 'BEGIN { print 1.5 * b }')" ge
check "issue 6: QLoRA kept $KEPT ${qk_tps:-?} tok/s >= 105 tok/s" "$qk_tps" 105 ge
check "issue 6: QLoRA kept $KEPT peak RSS ${qk_rss:-?} MB <= 1200 MB" "$qk_rss" 1200 le
qb_tps=$(field peftc-qlora-bf16 tokens/s) qb_rss=$(field peftc-qlora-bf16 peak_rss_MB)
check "issue 6: QLoRA bf16: true ${qb_tps:-?} tok/s >= 1.5 x PyTorch bf16 autocast" "$qb_tps" \
      "$(awk -v b="${b_tps:-0}" 'BEGIN { print 1.5 * b }')" ge
check "issue 6: QLoRA bf16: true ${qb_tps:-?} tok/s >= 105 tok/s" "$qb_tps" 105 ge
check "issue 6: QLoRA bf16: true peak RSS ${qb_rss:-?} MB <= 1200 MB" "$qb_rss" 1200 le
exit $status
