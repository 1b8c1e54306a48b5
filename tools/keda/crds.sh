#!/usr/bin/env bash
# Fetch KEDA's CRDs (ScaledObject, TriggerAuthentication, ClusterTriggerAuthentication) from the
# github.com/kedacore/keda/v2 module that go.sum pins, through the Go module proxy, WITHOUT building
# keda-backlog: `go mod download -json` fetches that one module's zip (checked against go.sum) and
# nothing is compiled. Copies config/crd/bases/keda.sh_*.yaml to <repo>/build/keda-crds/<key>/, keyed by
# a sha256 over go.mod, go.sum and this script. Prints that directory on the last stdout line. Exits
# non-zero if the download or the copy fails; there is no fallback. `make dev-cluster` uses it.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
GO="${GO:-$(command -v go || echo /usr/local/go/bin/go)}"
crds=(keda.sh_scaledobjects.yaml keda.sh_triggerauthentications.yaml keda.sh_clustertriggerauthentications.yaml)

key="$(cd "$here" && cat go.mod go.sum crds.sh | sha256sum | cut -c1-16)"
outdir="$repo/build/keda-crds/$key"
if [[ -s "$outdir/${crds[0]}" && -s "$outdir/${crds[1]}" && -s "$outdir/${crds[2]}" ]]; then
  echo "$outdir"
  exit 0
fi
version="$(cd "$here" && "$GO" list -mod=readonly -m -f '{{.Version}}' github.com/kedacore/keda/v2 2>/dev/null \
           || sed -n 's/^[[:space:]]*github.com\/kedacore\/keda\/v2 \(v[^ ]*\).*/\1/p' go.mod)"
dir="$(cd "$here" && "$GO" mod download -json "github.com/kedacore/keda/v2@$version" \
       | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
[[ -d "$dir/config/crd/bases" ]] || { echo "crds.sh: no config/crd/bases in ${dir:-the keda module}" >&2; exit 1; }
mkdir -p "$(dirname "$outdir")"
tmp="$outdir.tmp.$$"
rm -rf "$tmp" && mkdir -p "$tmp"
for f in "${crds[@]}"; do cp "$dir/config/crd/bases/$f" "$tmp/"; done
chmod u+w "$tmp"/*.yaml
rm -rf "$outdir" && mv "$tmp" "$outdir"
echo "$outdir"
