#!/usr/bin/env bash
# Build tools/kube-testenv once and cache the binary under
#   <repo>/build/kube-testenv/<key>/kube-testenv
# where <key> is the first 16 hex digits of a sha256 over go.sum, go.mod, the
# module's Go sources and the Go version (so a source change never reuses a
# stale binary). Beside it: kwok (sigs.k8s.io/kwok, from ./kwok's go.sum) and
# kwok-stages.yaml, kwok's own "fast" node, heartbeat, pod and volume Stages
# from that module. Prints the absolute kube-testenv path on the last stdout line.
# Exits non-zero with Go's error if the build fails; there is no fallback.
#
# Env: GO (go command, default: go on PATH, else /usr/local/go/bin/go),
#      KUBE_TESTENV_NICE (nice level for the build, default 10).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"

# shellcheck source=../go-toolchain.sh
source "$here/../go-toolchain.sh"

# shellcheck disable=SC2046  # one argument per Go source file
key="$(source_key go.sum go.mod build.sh kwok/go.mod kwok/go.sum $(cd "$here" && LC_ALL=C ls ./*.go))"
outdir="$repo/build/kube-testenv/$key"
bin="$outdir/kube-testenv"

if [[ -x "$bin" && -x "$outdir/kwok" && -s "$outdir/kwok-stages.yaml" ]]; then
  echo "$bin"
  exit 0
fi

mkdir -p "$outdir"
# Serialise concurrent builds of the same key.
exec 9>"$outdir/.lock"
flock 9
if [[ ! -x "$bin" ]]; then
  echo "build.sh: building kube-testenv ($goversion) into $outdir; a cold build takes several minutes" >&2
  start=$(date +%s)
  tmp="$outdir/.kube-testenv.tmp.$$"
  # Stamp the Kubernetes version (what /version reports) from go.mod.
  kver="$(awk '$1 == "k8s.io/kubernetes" { print $2; exit }' "$here/go.mod")"
  kminor="$(echo "$kver" | cut -d. -f2)"
  pkg=k8s.io/component-base/version
  ldflags="-s -w -X $pkg.gitVersion=$kver -X $pkg.gitMajor=1 -X $pkg.gitMinor=$kminor -X $pkg.gitTreeState=clean"
  (
    cd "$here"
    CGO_ENABLED=0 nice -n "${KUBE_TESTENV_NICE:-10}" \
      "$GO" build -mod=readonly -trimpath -ldflags="$ldflags" -o "$tmp" .
  ) >&2 || { rc=$?; rm -f "$tmp"; echo "build.sh: go build failed (exit $rc)" >&2; exit "$rc"; }
  mv -f "$tmp" "$bin"
  echo "build.sh: built in $(( $(date +%s) - start ))s, $(du -h "$bin" | cut -f1)" >&2
fi
if [[ ! -x "$outdir/kwok" || ! -s "$outdir/kwok-stages.yaml" ]]; then
  echo "build.sh: building kwok into $outdir" >&2
  start=$(date +%s)
  (
    cd "$here/kwok"
    CGO_ENABLED=0 nice -n "${KUBE_TESTENV_NICE:-10}" \
      "$GO" build -mod=readonly -trimpath -ldflags="-s -w" -o "$outdir/.kwok.tmp" sigs.k8s.io/kwok/cmd/kwok
  ) >&2 || { rc=$?; rm -f "$outdir/.kwok.tmp"; echo "build.sh: go build of kwok failed (exit $rc)" >&2; exit "$rc"; }
  kwokdir="$(cd "$here/kwok" && "$GO" list -mod=readonly -m -f '{{.Dir}}' sigs.k8s.io/kwok)"
  stages="$kwokdir/kustomize/stage"
  # kwok runs no Stage unless given one; these are its own defaults for a fast cluster.
  for f in node/fast/node-initialize.yaml node/heartbeat-with-lease/node-heartbeat-with-lease.yaml \
           pod/fast/pod-ready.yaml pod/fast/pod-complete.yaml pod/fast/pod-delete.yaml \
           volume/fast/pvc-provision.yaml volume/fast/pv-bind.yaml volume/fast/pvc-delete.yaml volume/fast/pv-delete.yaml; do
    printf -- '---\n'; cat "$stages/$f"
  done > "$outdir/.kwok-stages.tmp"
  mv -f "$outdir/.kwok.tmp" "$outdir/kwok"
  mv -f "$outdir/.kwok-stages.tmp" "$outdir/kwok-stages.yaml"
  echo "build.sh: kwok built in $(( $(date +%s) - start ))s, $(du -h "$outdir/kwok" | cut -f1)" >&2
fi
echo "$bin"
