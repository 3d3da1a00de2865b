#!/bin/bash
# Host-only unit tests (FFI plumbing, ABI layout against the kernel headers, parsers, allocators) under Deno AND
# Bun; fails if either fails.
set -uo pipefail
cd "$(dirname "$(readlink -f "$0")")/.."
DENO=node_modules/deno/deno BUN=node_modules/bun/bin/bun.exe
export DENO_NO_UPDATE_CHECK=1 NO_COLOR=1
rc=0
echo "=== unit tests: deno"
$DENO test -A --no-check tests/unit/ 2>&1 | tee /tmp/vfio-ts-unit-deno.log || rc=1
echo "=== unit tests: bun"
$BUN test --timeout 120000 tests/unit/ 2>&1 | tee /tmp/vfio-ts-unit-bun.log || rc=1
d=$(grep -E '^(ok|FAILED) \|' /tmp/vfio-ts-unit-deno.log | tail -1)
b=$(grep -E '^ *[0-9]+ (pass|fail)$' /tmp/vfio-ts-unit-bun.log | tr -s ' ' | tr '\n' ' ')
echo "unit summary: deno: ${d:-no summary} | bun: ${b:-no summary}"
exit $rc
