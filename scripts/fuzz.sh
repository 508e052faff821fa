#!/usr/bin/env bash
# A longer libFuzzer campaign over every target in tests/fuzz:
#
#   scripts/fuzz.sh HOURS     (per target; fractions allowed: 0.02 is 72 s)
#
# Builds the targets with clang, AddressSanitizer and UndefinedBehaviorSanitizer
# (-DRTM_FUZZ=ON -DRTM_SANITIZE=ON) in build-fuzz/, then runs them two at a
# time (one per core, RTM_FUZZ_JOBS to change) for HOURS each. Each target
# starts from its corpus in the repository, tests/fuzz/seeds/<target>, and
# works in a directory outside the tree (RTM_FUZZ_WORK, default
# /tmp/rtmd-fuzz-<time>): new inputs, crash artifacts and logs stay there.
# A target that finds a crash is restarted for the time it has left. At the
# end, what a target found is merged back into tests/fuzz/seeds/<target>
# with -merge=1, which adds only the inputs that reach new edges, so the
# corpus in the repository stays small; review and commit it.
#
# Prints per target: runs, executions, coverage (cov = edges, ft = features),
# corpus size, inputs merged into the repository, and the crash artifacts.
# Exits 1 when any target left an artifact.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ $# -ne 1 ] || ! awk -v h="$1" 'BEGIN { exit !(h + 0 > 0) }'; then
  echo "usage: scripts/fuzz.sh HOURS   (per target, e.g. 0.5)" >&2
  exit 2
fi
seconds=$(awk -v h="$1" 'BEGIN { s = int(h * 3600); print (s < 1 ? 1 : s) }')
jobs=${RTM_FUZZ_JOBS:-2}
work=${RTM_FUZZ_WORK:-/tmp/rtmd-fuzz-$(date -u +%Y%m%dT%H%M%SZ)}
mkdir -p "$work"

targets=()
for src in tests/fuzz/fuzz_*.c; do
  targets+=("$(basename "$src" .c)")
done

echo "== building ${targets[*]} in build-fuzz (clang, ASan, UBSan, libFuzzer)"
CC=clang cmake -S . -B build-fuzz -DRTM_FUZZ=ON -DRTM_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build build-fuzz -j"$jobs" --target "${targets[@]}" >/dev/null

export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1:symbolize=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

# Runs one target for $seconds, restarting it after a crash while time is
# left (at most 20 runs), then merges its new inputs into the repository.
run_target() {
  local t=$1 bin=build-fuzz/tests/$1 seeds=tests/fuzz/seeds/$1
  local dir=$work/$1
  mkdir -p "$dir/corpus" "$dir/artifacts" "$seeds"
  local end=$(($(date +%s) + seconds)) runs=0 left
  while left=$((end - $(date +%s))) && [ "$left" -gt 0 ] && [ "$runs" -lt 20 ]; do
    runs=$((runs + 1))
    # New inputs go to the first directory (outside the tree); the seeds
    # in the repository are only read.
    if "$bin" -max_total_time="$left" -rss_limit_mb=2048 -timeout=25 -print_final_stats=1 \
        -artifact_prefix="$dir/artifacts/" "$dir/corpus" "$seeds" >"$dir/run$runs.log" 2>&1; then
      break
    fi
    ls "$dir/artifacts" | grep -q . || break # stopped without a finding (e.g. killed)
  done
  local before after
  before=$(ls "$seeds" | wc -l)
  # -use_counters=0: an input is new when it reaches a new edge, not a new
  # hit count of a known one; that keeps the merged set to a few hundred.
  "$bin" -merge=1 -use_counters=0 -rss_limit_mb=2048 -timeout=25 "$seeds" "$dir/corpus" >"$dir/merge.log" 2>&1 || true
  after=$(ls "$seeds" | wc -l)
  echo "$runs $((after - before))" >"$dir/summary"
}

echo "== fuzzing ${#targets[@]} targets for $seconds s each, $jobs at a time; work directory $work"
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
    wait -n || true
  done
  echo "   $(date -u +%H:%M:%S) start $t"
  run_target "$t" &
done
wait

echo
echo "== results (per target; cov = edges, ft = features)"
printf '%-22s %5s %14s %8s %8s %10s %7s %s\n' target runs executions cov ft corpus merged artifacts
found=0
for t in "${targets[@]}"; do
  dir=$work/$t
  read -r runs merged <"$dir/summary"
  execs=$(cat "$dir"/run*.log | awk '/^stat::number_of_executed_units:/ { s += $2 } END { print s + 0 }')
  last=$(grep -h -E '^#[0-9]+.*cov: ' "$dir"/run*.log | tail -n 1)
  cov=$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$last")
  ft=$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$last")
  corp=$(sed -n 's/.* corp: \([^ ]*\).*/\1/p' <<<"$last")
  artifacts=$(ls "$dir/artifacts" | wc -l)
  [ "$artifacts" -gt 0 ] && found=1
  printf '%-22s %5s %14s %8s %8s %10s %7s %s\n' "$t" "$runs" "$execs" "${cov:--}" "${ft:--}" "${corp:--}" \
    "$merged" "$artifacts"
done
if [ "$found" -ne 0 ]; then
  echo
  echo "== crash artifacts (replay: build-fuzz/tests/<target> <file>; logs in $work/<target>/run*.log)"
  for t in "${targets[@]}"; do
    for a in "$work/$t"/artifacts/*; do
      [ -e "$a" ] && echo "$t: $a"
    done
  done
  exit 1
fi
echo
echo "no crash, leak or timeout; new inputs merged into tests/fuzz/seeds (git status shows them)"
