#!/usr/bin/env bash
# Runs wasmtime_smoke.py on the given components (default: all four guests).
# Installs wasmtime-py from PyPI into ./.venv when missing.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
if [ ! -x "$here/.venv/bin/python" ] || [ "$here/requirements.txt" -nt "$here/.venv/.installed" ]; then
    python3 -m venv "$here/.venv"
    "$here/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/requirements.txt"
    touch "$here/.venv/.installed"
fi
if [ $# -eq 0 ]; then
    root="$here/../.."
    set -- "$root/target/wasm32-wasip2/release/tarn_guest.wasm" "$here/../js/build/guest.wasm" \
        "$here/../python/build/guest.wasm" "$here/../c/build/guest.wasm"
fi
exec "$here/.venv/bin/python" "$here/wasmtime_smoke.py" "$@"
