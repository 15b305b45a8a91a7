#!/usr/bin/env bash
# Paired comparison of two commits of the worker on this machine, the same
# day, the same harness: builds `simworker` at each commit (in a temporary
# git worktree) and `simbench` from the working tree, then runs
# `simbench -compare`: the two builds and the pass-through worker in turn,
# PAIRS times (default 5), each on a fresh database and fresh streams, with
# 100,000 valid commands published at once and 5,000 then offered at
# 1,000/s; it prints each run and the medians of the ratios to the first.
#
#   scripts/compare.sh 97ab62e HEAD          # or any two commits, branches or tags
#   PAIRS=7 COMMANDS=50000 scripts/compare.sh main my-branch
#
# The machine is shared and its speed varies within minutes: judge by the
# median of the ratios of paired runs, never by one rate.
set -euo pipefail
cd "$(dirname "$0")/.."
[ $# -eq 2 ] || { echo "usage: scripts/compare.sh COMMIT_A COMMIT_B   (PAIRS, COMMANDS, PACED in the environment)" >&2; exit 2; }
work=$(mktemp -d)
trap 'for w in "$work"/src-*; do git worktree remove --force "$w" >/dev/null 2>&1 || true; done; rm -rf "$work"' EXIT
subjects=()
n=0
for commit in "$1" "$2"; do
  n=$((n + 1))
  sha=$(git rev-parse --short "$commit")
  echo "building simworker at $commit ($sha)" >&2
  git worktree add --detach "$work/src-$n" "$sha" >/dev/null
  (cd "$work/src-$n" && go build -o "$work/simworker-$n" ./cmd/simworker)
  subjects+=("$commit=$work/simworker-$n")
done
./scripts/ensure-postgres.sh
go build -o "$work/simbench" ./cmd/simbench
"$work/simbench" -compare "${subjects[0]},${subjects[1]},passthrough" -pairs "${PAIRS:-5}" \
  -compare-commands "${COMMANDS:-100000}" -paced "${PACED:-5000}"
