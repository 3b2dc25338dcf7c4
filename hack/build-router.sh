#!/usr/bin/env bash
# Builds the Go router (serving-image/router-go) into $MODELDEPLOY_CACHE/bin/mdroute (static, stripped).
# Cached by a hash of the Go sources (and the Go version): it rebuilds only when they change.
# Prints the binary's path on stdout; progress goes to stderr.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$ROOT/serving-image/router-go"
CACHE="${MODELDEPLOY_CACHE:-$HOME/.cache/modeldeploy}"
BIN="$CACHE/bin"
OUT="$BIN/mdroute"
STAMP="$BIN/.mdroute.srchash"
GO_MIN_MINOR=24

say() { printf '\033[1m[build-router]\033[0m %s\n' "$*" >&2; }
die() { printf '\033[31m[build-router] error:\033[0m %s\n' "$*" >&2; exit 1; }

command -v go >/dev/null || die "Go is not installed (need go >= 1.$GO_MIN_MINOR)."
go_minor=$(go env GOVERSION | sed -E 's/^go1\.([0-9]+).*/\1/')
[ "$go_minor" -ge "$GO_MIN_MINOR" ] || die "Go $(go env GOVERSION) is too old: need go >= 1.$GO_MIN_MINOR."
mkdir -p "$BIN"

# Hash of every non-test Go source, go.mod/go.sum and the toolchain version.
hash=$(
  cd "$SRC"
  { go env GOVERSION; find . -type f \( -name '*.go' -o -name 'go.mod' -o -name 'go.sum' \) ! -name '*_test.go' | LC_ALL=C sort | xargs sha256sum; } | sha256sum | cut -d' ' -f1
)
if [ -x "$OUT" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "$hash" ] && [ "${FORCE:-0}" != 1 ]; then
  say "mdroute is up to date (${hash:0:12})"
  echo "$OUT"
  exit 0
fi
say "building mdroute from serving-image/router-go (${hash:0:12}) ..."
start=$SECONDS
tmp="$OUT.tmp.$$"
if ! (cd "$SRC" && CGO_ENABLED=0 go build -trimpath -ldflags='-s -w' -o "$tmp" .) >&2; then
  rm -f "$tmp"
  die "go build failed"
fi
mv -f "$tmp" "$OUT"
echo "$hash" >"$STAMP"
say "built $OUT in $((SECONDS - start))s"
echo "$OUT"
