#!/usr/bin/env bash
# The test command: sets everything up (scripts/setup.sh), then runs the suite.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh -k scoring`.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
py="$(bash "$here/scripts/setup.sh" | tail -n 1)"
export FIFTYONE_DATABASE_VALIDATION=false FIFTYONE_DO_NOT_TRACK=true
cd "$here"
exec "$py" -m pytest -p no:cacheprovider -W ignore::DeprecationWarning "$@" tests
