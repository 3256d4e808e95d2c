#!/usr/bin/env bash
# Builds guest/python/build/guest.wasm with componentize-py. Installs
# componentize-py from PyPI into ./.venv (pinned in requirements.txt) when
# missing or out of date. Needs python3 (>= 3.10) with venv.
set -euo pipefail
cd "$(dirname "$0")"
if [ ! -x .venv/bin/componentize-py ] || [ requirements.txt -nt .venv/.installed ]; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
    touch .venv/.installed
fi
mkdir -p build
.venv/bin/componentize-py -d ../../wit -w http-guest componentize -p src app -o build/guest.wasm
ls -l build/guest.wasm
