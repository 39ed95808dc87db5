#!/bin/sh
# Run every libFuzzer target in BUILD/fuzz for SECONDS each, starting
# from its checked-in seeds in tests/fuzz/corpus/<target>/.  New inputs
# go to a scratch corpus (BUILD/fuzz-work/<target>), never into the
# repository; a crash, leak or timeout leaves its input in
# BUILD/fuzz-artifacts/ and makes this script fail.  Add such an input
# to the target's corpus directory as a regression file once fixed.
#   tests/fuzz/run.sh BUILD SECONDS [TARGET...]
set -eu

build=$1
seconds=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
work="$build/fuzz-work"
art="$build/fuzz-artifacts"
mkdir -p "$work" "$art"

targets="$*"
[ -n "$targets" ] || targets=$(cd "$build/fuzz" && ls fuzz_* | sed 's/^fuzz_//')

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
failed=""
for t in $targets; do
	seeds="$here/corpus/$t"
	mkdir -p "$work/$t"
	log="$work/$t.log"
	if "$build/fuzz/fuzz_$t" -max_total_time="$seconds" -timeout=10 \
	    -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
	    -artifact_prefix="$art/${t}-" "$work/$t" "$seeds" >"$log" 2>&1; then
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
		echo "fuzz $t: ok, ${runs:-?} executions in ${seconds}s"
	else
		echo "fuzz $t: FAILED (log $log, inputs in $art/)"
		tail -n 40 "$log"
		failed="$failed $t"
	fi
done
[ -z "$failed" ] || { echo "fuzz: failures:$failed"; exit 1; }
