#!/usr/bin/env bash
# The whole test suite: formatting, vet, staticcheck, and every test with the
# race detector. Needs only Go; staticcheck comes from go.mod's tool line.
# Broker tests also run against a real Mosquitto when the binary is present
# (outside CI they skip loudly without it; under CI=true they fail).
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go'))
if [ -n "$unformatted" ]; then
	echo "gofmt would change:"; echo "$unformatted"; exit 1
fi
echo "== go vet"
go vet ./...
echo "== staticcheck"
go tool staticcheck ./...
echo "== go test -race"
go test -race -timeout 20m "$@" ./...
