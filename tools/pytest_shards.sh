#!/usr/bin/env bash
# Run one pytest selection as N shards side by side (one per core), e.g.
#   tools/pytest_shards.sh 2 .venv/bin/python -m pytest -q -m vm_scenarios tests/simulator/test_vm_runtime.py
# Shard K of N keeps every N-th collected test from the K-th (SOTTO_TEST_SHARD=K/N,
# tests/simulator/conftest.py). Each shard's output is printed whole after all
# have ended, and the exit status is non-zero if any shard failed. Only for tests
# that cannot disturb each other (their own ports and directories, virtual time).
set -u
if [ $# -lt 2 ] || ! [ "$1" -ge 1 ] 2>/dev/null; then
  echo "usage: tools/pytest_shards.sh N COMMAND [ARG...]  (N: how many shards, >= 1)" >&2
  exit 2
fi
n=$1
shift
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
pids=()
for k in $(seq 1 "$n"); do
  SOTTO_TEST_SHARD="$k/$n" "$@" > "$logs/$k.log" 2>&1 &
  pids+=($!)
done
status=0
for k in $(seq 1 "$n"); do
  wait "${pids[$((k - 1))]}" || status=1
  echo "shard $k/$n:"
  cat "$logs/$k.log"
done
exit $status
