#!/usr/bin/env bash
# bench_speed.py of a baseline commit and of this checkout, alternately, in one
# run on the same datasets (these machines are noisy: compare within a run).
#
#   bash bench/compare_speed.sh BASE_REF [ROUNDS] [SIZES...]
#   bash bench/compare_speed.sh fe16422 2 100000
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
base="${1:?baseline git ref}"; rounds="${2:-2}"; shift 2 || true
sizes=("${@:-100000}")
py="$(bash "$here/scripts/setup.sh" | tail -n 1)"
export FIFTYONE_DATABASE_VALIDATION=false FIFTYONE_DO_NOT_TRACK=true
tmp="$(mktemp -d)"; trap 'rm -rf "$tmp"' EXIT
git -C "$here" archive "$base" | tar -x -C "$tmp"
for r in $(seq "$rounds"); do
  for which in "$tmp" "$here"; do
    label="$([ "$which" = "$here" ] && echo "this checkout" || echo "baseline $base")"
    echo "== round $r: $label"
    "$py" "$which/bench/bench_speed.py" --sizes "${sizes[@]}" | grep -E '^\| [0-9]'
  done
done
