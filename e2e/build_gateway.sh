#!/usr/bin/env bash
# Build Hummingbot Gateway from the shared source tarball + patch into a cache directory.
# Usage: build_gateway.sh <tarball> <patch> <cache_dir>; prints the built gateway directory.
# The build is keyed by the tarball's and the patch's checksums: a warm cache is reused as is.
set -euo pipefail
TARBALL=$(realpath "$1") PATCH=$(realpath "$2") CACHE=$3
KEY=$(cat "$TARBALL" "$PATCH" | sha256sum | cut -c1-16)
DEST=$CACHE/gateway-$KEY
if [ -f "$DEST/.built" ]; then echo "$DEST"; exit 0; fi
mkdir -p "$CACHE/tools" "$CACHE/pnpm-store"
# pnpm from npm into the cache (never a global install on the machine).
if [ ! -x "$CACHE/tools/node_modules/.bin/pnpm" ]; then
    npm install --silent --no-audit --no-fund --prefix "$CACHE/tools" pnpm@10 >&2
fi
PNPM=$CACHE/tools/node_modules/.bin/pnpm
rm -rf "$DEST.tmp" && mkdir -p "$DEST.tmp"
tar xzf "$TARBALL" -C "$DEST.tmp"
cd "$DEST.tmp/gateway"
patch -p1 --quiet < "$PATCH"
# husky's prepare hook wants a git repository; there is none in a tarball.
HUSKY=0 "$PNPM" install --frozen-lockfile --store-dir "$CACHE/pnpm-store" --reporter=silent >&2
"$PNPM" build >&2
# Dev mode listens on 0.0.0.0 (hard-coded in src/app.ts): tests bind loopback only.
grep -q "host: '0.0.0.0'" dist/app.js
sed -i "s/host: '0.0.0.0'/host: '127.0.0.1'/" dist/app.js
# Gateway's default configuration, kept as a template: each run copies it into its own root.
bash gateway-setup.sh --with-defaults < /dev/null > /dev/null
mv conf conf.template
cd / && rm -rf "$DEST" && mv "$DEST.tmp/gateway" "$DEST" && rm -rf "$DEST.tmp"
touch "$DEST/.built"
echo "$DEST"
