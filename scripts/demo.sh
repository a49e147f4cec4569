#!/usr/bin/env bash
# The demo command: sets everything up (scripts/setup.sh), then launches the App.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="$(bash "$here/scripts/setup.sh" | tail -n 1)"
export FIFTYONE_DATABASE_VALIDATION=false FIFTYONE_DO_NOT_TRACK=true
exec "$py" "$here/scripts/demo.py" "$@"
