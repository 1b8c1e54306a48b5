#!/usr/bin/env bash
# Fetch the Prometheus Operator CRDs (ServiceMonitor, PrometheusRule, ...) from the
# github.com/prometheus-operator/prometheus-operator module that operator-crds/go.sum pins, through
# the Go module proxy (`go mod download` checks the zip against go.sum), and copy
# example/prometheus-operator-crd/*.yaml to <repo>/build/prometheus-operator-crds/<key>/, keyed by a
# sha256 over operator-crds/go.{mod,sum} and this script. Prints that directory on the last stdout
# line. Exits non-zero if the download or the copy fails; there is no fallback.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"

key="$(cd "$here" && cat operator-crds/go.mod operator-crds/go.sum crds.sh | sha256sum | cut -c1-16)"
outdir="$repo/build/prometheus-operator-crds/$key"
if [[ -s "$outdir/monitoring.coreos.com_prometheusrules.yaml" ]]; then
  echo "$outdir"
  exit 0
fi
dir="$(cd "$here/operator-crds" && "$GO" mod download -json github.com/prometheus-operator/prometheus-operator \
       | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[[ -d "$dir/example/prometheus-operator-crd" ]] || { echo "crds.sh: no CRDs in ${dir:-the module}" >&2; exit 1; }
mkdir -p "$(dirname "$outdir")"
tmp="$outdir.tmp.$$"
rm -rf "$tmp" && mkdir -p "$tmp"
cp "$dir"/example/prometheus-operator-crd/*.yaml "$tmp/"
chmod u+w "$tmp"/*.yaml
rm -rf "$outdir" && mv "$tmp" "$outdir"
echo "$outdir"
