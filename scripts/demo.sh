#!/usr/bin/env bash
# pkgr's offline demo: build a local channel from packages this repo generates,
# index it with `pkgr index`, create an environment from it with `pkgr create`,
# and run a program from the new environment. Needs no network.
#
#   bash scripts/demo.sh [WORKDIR]     (default: a fresh temp directory)
set -euo pipefail
cd "$(dirname "$0")/.."
work="${1:-$(mktemp -d "${TMPDIR:-/tmp}/pkgr-demo.XXXXXX")}"
echo "== building pkgr (the first build compiles every dependency: a few minutes on 2 cores)" >&2
cargo build -p pkgr-cli -p pkgr-test-support
# Where cargo put the binaries (CARGO_TARGET_DIR or a config may move them).
target_dir="$(cargo metadata --format-version 1 --no-deps | sed -n 's/.*"target_directory":"\([^"]*\)".*/\1/p')"
pkgr="$target_dir/debug/pkgr"

"$target_dir/debug/pkgr-demo-channel" "$work/channel"
"$pkgr" index "$work/channel"
"$pkgr" create --yes --cache-dir "$work/cache" -p "$work/env" -c "$work/channel" hello
echo
"$pkgr" list -p "$work/env"
echo
echo "\$ $work/env/bin/hello"
"$work/env/bin/hello"
echo
echo "\$ pkgr run -p $work/env hello"
"$pkgr" run --cache-dir "$work/cache" -p "$work/env" hello
