#!/usr/bin/env bash
# Tries the scale-out set-up on one machine: a 3-member replica set, delegated
# workers with their own caches and the demo App (scripts/scale_out.py).
#   bash scripts/scale_out.sh [--workers N] [demo options]
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="$(bash "$here/scripts/setup.sh" | tail -n 1)"
export FIFTYONE_DATABASE_VALIDATION=false FIFTYONE_DO_NOT_TRACK=true
exec "$py" "$here/scripts/scale_out.py" "$@"
