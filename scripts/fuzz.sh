#!/usr/bin/env bash
# Runs libFuzzer targets built by `make fuzz-build`: bash scripts/fuzz.sh TARGET...
# FUZZ_SECONDS per target (default 60). Seeds: tests/fuzz/corpus/TARGET, plus the real files
# of ../shared when present (FUZZ_BIN_DIR: where the binaries are); the growing corpus stays in build-fuzz/corpus/TARGET, crashes go
# to build-fuzz/artifacts/TARGET/, the log to build-fuzz/logs/TARGET.log. FUZZ_FLAGS: more libFuzzer
# flags (e.g. "-fork=1 -ignore_crashes=1" to go on after a finding).
set -u
seconds=${FUZZ_SECONDS:-60}
bin=${FUZZ_BIN_DIR:-build-fuzz/fuzz}
shared=${PEFTC_SHARED_DIR:-../shared}
status=0

# Extra seed directories from ../shared (each a directory of whole real files).
shared_seeds() {
    local dir=build-fuzz/shared-seeds/$1; shift
    rm -rf "$dir"; mkdir -p "$dir"
    for f in "$@"; do [ -f "$shared/$f" ] && cp "$shared/$f" "$dir/$(echo "$f" | tr / _)"; done
    echo "$dir"
}

for t in "$@"; do
    dict=-dict=tests/fuzz/json.dict extra=() max_len=16384
    case $t in
        tokenizer_json)   max_len=65536
                          extra=("$(shared_seeds "$t" models/stories260K/tokenizer.json)") ;;
        tokenizer_files)  max_len=65536 ;;
        tokenizer_encode) dict= max_len=4096 ;;
        safetensors)      dict= ;;
        dataset)          max_len=8192
                          extra=("$(shared_seeds "$t" data/rotten_tomatoes/mini_validation.jsonl)") ;;
        configs)          extra=("$(shared_seeds "$t" models/stories260K/config.json tokenizers/gpt2/config.json \
                                   tokenizers/distilbert-base-uncased/config.json)") ;;
    esac
    mkdir -p build-fuzz/corpus/$t build-fuzz/artifacts/$t build-fuzz/logs
    echo "== $t (${seconds}s)"
    nice -n 19 "$bin/fuzz_$t" build-fuzz/corpus/$t tests/fuzz/corpus/$t "${extra[@]}" $dict \
        -max_total_time="$seconds" -max_len=$max_len -rss_limit_mb=2048 -timeout=10 \
        -artifact_prefix=build-fuzz/artifacts/$t/ -print_final_stats=1 ${FUZZ_FLAGS:-} >build-fuzz/logs/$t.log 2>&1 || status=1
    grep -E '^#[0-9]+' build-fuzz/logs/$t.log | tail -1
    grep -E 'stat::number_of_executed_units|stat::average_exec_per_sec' build-fuzz/logs/$t.log
    grep -E '^(==[0-9]+==ERROR|SUMMARY)' build-fuzz/logs/$t.log
done
exit $status
