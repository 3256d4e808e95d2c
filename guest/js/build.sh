#!/usr/bin/env bash
# Builds guest/js/build/guest.wasm. Installs componentize-js from the npm
# registry into ./node_modules (exact versions from package-lock.json) when
# missing or out of date. Needs node >= 20 and npm.
set -euo pipefail
cd "$(dirname "$0")"
stamp=node_modules/.package-lock.json
if [ ! -d node_modules/@bytecodealliance/componentize-js ] || [ package-lock.json -nt "$stamp" ]; then
    npm ci --no-audit --no-fund
fi
node build.mjs
