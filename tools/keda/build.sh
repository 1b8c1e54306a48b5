#!/usr/bin/env bash
# Build keda-backlog (main.go: KEDA's own redis scaler and scalingModifiers code, from
# github.com/kedacore/keda/v2) once and cache it, with KEDA's CRDs from the same module, under
#   <repo>/build/keda/<key>/bin/keda-backlog
#   <repo>/build/keda/<key>/crds/keda.sh_{scaledobjects,triggerauthentications,clustertriggerauthentications}.yaml
# where <key> is the first 16 hex digits of a sha256 over go.sum, go.mod, main.go, this script and the
# Go version (a change never reuses a stale build). Prints the absolute <repo>/build/keda/<key> directory
# on the last stdout line. Exits non-zero with Go's error if the build fails; there is no fallback.
# pkg/scalers links every scaler's SDK (AWS, Azure, GCP, Kafka, ...): a cold build takes many minutes.
#
# Env: GO (go command, default: go on PATH, else /usr/local/go/bin/go),
#      KEDA_NICE (nice level for the build, default 10).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

# shellcheck source=../go-toolchain.sh
source "$here/../go-toolchain.sh"

key="$(source_key go.sum go.mod main.go build.sh)"
outdir="$repo/build/keda/$key"
bin="$outdir/bin/keda-backlog"
crds=(keda.sh_scaledobjects.yaml keda.sh_triggerauthentications.yaml keda.sh_clustertriggerauthentications.yaml)

complete() {
  [[ -x "$bin" ]] || return 1
  local f
  for f in "${crds[@]}"; do [[ -s "$outdir/crds/$f" ]] || return 1; done
}

if complete; then
  echo "$outdir"
  exit 0
fi

mkdir -p "$outdir/bin" "$outdir/crds"
# Serialise concurrent builds of the same key.
exec 9>"$outdir/.lock"
flock 9
if [[ ! -x "$bin" ]]; then
  echo "build.sh: building keda-backlog ($goversion) into $outdir; a cold build takes many minutes" >&2
  start=$(date +%s)
  tmp="$outdir/bin/.keda-backlog.tmp.$$"
  (
    cd "$here"
    CGO_ENABLED=0 nice -n "${KEDA_NICE:-10}" \
      "$GO" build -mod=readonly -trimpath -ldflags="-s -w" -o "$tmp" .
  ) >&2 || { rc=$?; rm -f "$tmp"; echo "build.sh: go build failed (exit $rc)" >&2; exit "$rc"; }
  mv -f "$tmp" "$bin"
  echo "build.sh: built in $(( $(date +%s) - start ))s, $(du -h "$bin" | cut -f1)" >&2
fi
if ! complete; then
  # The CRDs of the very module version that the binary links, so the two never disagree.
  kedadir="$(cd "$here" && "$GO" list -mod=readonly -m -f '{{.Dir}}' github.com/kedacore/keda/v2)"
  [[ -d "$kedadir/config/crd/bases" ]] || { echo "build.sh: no config/crd/bases in the keda module ($kedadir)" >&2; exit 1; }
  for f in "${crds[@]}"; do
    cp "$kedadir/config/crd/bases/$f" "$outdir/crds/.$f.tmp"
    chmod 0644 "$outdir/crds/.$f.tmp"  # the module cache is read-only
    mv -f "$outdir/crds/.$f.tmp" "$outdir/crds/$f"
  done
fi
echo "$outdir"
