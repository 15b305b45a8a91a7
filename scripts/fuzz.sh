#!/usr/bin/env bash
# Runs every fuzz target of the module for FUZZTIME each (default 60s): the
# packages are those whose tests declare a func FuzzXxx, the targets what
# `go test -list` finds there.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime=${FUZZTIME:-60s}
dirs=$(grep -rl --include='*_test.go' '^func Fuzz' . | xargs -n1 dirname | sort -u)
for dir in $dirs; do
  for target in $(go test -list '^Fuzz' "$dir" | grep '^Fuzz'); do
    echo "fuzz $dir $target ($fuzztime)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$fuzztime" "$dir"
  done
done
