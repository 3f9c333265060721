#!/usr/bin/env bash
# The fast tests again with the lowest versions pyproject.toml allows for the runtime
# dependencies (Flask>=X means Flask==X here), in a throwaway virtual environment.
# Run from the repository root; the tests import flask_vault and example_app from it.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# "Flask>=3.1" -> "Flask==3.1": only the runtime dependencies, read from pyproject.toml.
"$PYTHON" - >"$work/lowest.txt" <<'PY'
import re, tomllib
for requirement in tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]:
    name, lowest = re.fullmatch(r"\s*([A-Za-z0-9_.\-\[\]]+)\s*>=\s*([0-9][0-9A-Za-z.]*)\s*", requirement).groups()
    print(f"{name}=={lowest}")
PY
echo "lowest versions: $(tr '\n' ' ' <"$work/lowest.txt")"

"$PYTHON" -m venv "$work/venv"
"$work/venv/bin/python" -m pip install --quiet --upgrade pip
"$work/venv/bin/python" -m pip install --quiet -c "$work/lowest.txt" -e '.[dev,docs,example,prometheus]'
"$work/venv/bin/python" -m pip list 2>/dev/null | grep -iE '^(flask|hvac|cachetools|werkzeug) '
"$work/venv/bin/python" -m pytest -q -p no:cacheprovider -m "not slow and not cluster" "$@"
