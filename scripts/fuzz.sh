#!/usr/bin/env bash
# Runs every go test -fuzz target in the module for a given time each
# (default 60s) and prints each target's execution count. The normal test
# command already runs every target's seed corpus; this is the long run.
#
#   ./scripts/fuzz.sh            # 60 s per target
#   ./scripts/fuzz.sh 10s ./drivers/...
set -euo pipefail
cd "$(dirname "$0")/.."
time=${1:-60s}
pkgs=${2:-./...}
status=0
for pkg in $(go list "$pkgs"); do
	for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz' || true); do
		echo "== $pkg $target ($time)"
		log=$(go test -run '^$' -fuzz "^${target}\$" -fuzztime "$time" "$pkg" 2>&1 || true)
		grep -E 'elapsed|panic|--- ' <<<"$log" | tail -2
		if grep -qE '^(FAIL|--- FAIL)' <<<"$log"; then
			echo "!! $pkg $target failed: the failing input is in $pkg/testdata/fuzz/$target"
			status=1
		fi
	done
done
exit $status
