#!/usr/bin/env bash
# Writes a runbook of N assert steps (default 200) to stdout, for timing the
# engine's whole-process overhead: `runbook run` of it, process start included.
set -euo pipefail
n=${1:-200}
printf 'apiVersion: runbook/v1\nname: asserts\ntitle: %s asserts\nsteps:\n' "$n"
for i in $(seq 1 "$n"); do
  printf '  - id: a%d\n    uses: assert\n    with: {that: "${{ 1 + %d > %d }}", message: "arithmetic"}\n' "$i" "$i" "$i"
done
