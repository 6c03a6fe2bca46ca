#!/usr/bin/env bash
# Benchmarks lookup.update_ssltrust's Plan and Apply over 1,000, 2,500 and
# 5,000 Lookup Service registrations that all trust the old certificate,
# and measures peak memory two ways:
#
#   in-process  the lab (vmdir directory, Lookup Service SOAP server) runs in
#               the benchmark process: /usr/bin/time's maximum resident set is
#               the lab's and the step's together.
#   lab-process the lab runs in a child process (-lookup.lab-process): the
#               benchmark's own metrics (base-MiB, peak-MiB: heap in use
#               before and at most above it while the step runs; rss-MiB: the
#               process's VmHWM) are the step's alone. /usr/bin/time's figure
#               then covers the larger of the two processes, the lab's.
#
# Usage: bench/lookup-update.sh [benchtime, default 3x]
set -euo pipefail
cd "$(dirname "$0")/.."
benchtime=${1:-3x}
bin=$(mktemp -d)/lookup.test
trap 'rm -rf "$(dirname "$bin")"' EXIT
go test -c -o "$bin" ./steps/lookup
for mode in in-process lab-process; do
  args=()
  [ "$mode" = lab-process ] && args=(-lookup.lab-process)
  echo "== $mode (load average:$(uptime | sed 's/.*average://'))"
  /usr/bin/time -v "$bin" -test.run '^$' -test.bench 'Update(Plan|Apply)' -test.benchtime "$benchtime" \
    -test.benchmem "${args[@]}" 2>&1 | grep -E '^Benchmark|Maximum resident|Elapsed \(wall'
done
