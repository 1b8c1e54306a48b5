#!/usr/bin/env bash
# Build Prometheus's promtool once and cache it under
#   <repo>/build/promtool/<key>/promtool
# where <key> is the first 16 hex digits of a sha256 over go.sum, go.mod, tools.go, this script and the
# Go version (a change never reuses a stale binary). Prints the absolute promtool path on the last
# stdout line. Exits non-zero with Go's error if the build fails; there is no fallback.
# The Prometheus Operator CRDs come from crds.sh beside this script.
#
# Env: GO (go command, default: go on PATH, else /usr/local/go/bin/go),
#      PROMTOOL_NICE (nice level for the build, default 10).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

# shellcheck source=../go-toolchain.sh
source "$here/../go-toolchain.sh"

key="$(source_key go.sum go.mod tools.go build.sh)"
outdir="$repo/build/promtool/$key"
bin="$outdir/promtool"

if [[ -x "$bin" ]]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$outdir"
# Serialise concurrent builds of the same key.
exec 9>"$outdir/.lock"
flock 9
if [[ ! -x "$bin" ]]; then
  echo "build.sh: building promtool ($goversion) into $outdir; a cold build takes several minutes" >&2
  start=$(date +%s)
  tmp="$outdir/.promtool.tmp.$$"
  (
    cd "$here"
    CGO_ENABLED=0 nice -n "${PROMTOOL_NICE:-10}" \
      "$GO" build -mod=readonly -trimpath -ldflags="-s -w" -o "$tmp" github.com/prometheus/prometheus/cmd/promtool
  ) >&2 || { rc=$?; rm -f "$tmp"; echo "build.sh: go build failed (exit $rc)" >&2; exit "$rc"; }
  mv -f "$tmp" "$bin"
  echo "build.sh: built in $(( $(date +%s) - start ))s, $(du -h "$bin" | cut -f1)" >&2
fi
echo "$bin"
