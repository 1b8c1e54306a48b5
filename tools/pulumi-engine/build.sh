#!/usr/bin/env bash
# Build the real Pulumi toolchain once and cache it under
#   <repo>/build/pulumi-engine/<key>/bin/
# pulumi (the CLI, from the Go module proxy through ./cli), pulumi-language-python
# (+ its -exec shim), pulumi-language-nodejs (the language of the TypeScript consumer test; built after
# the CLI it needs nothing new from the Go cache), pulumi-resource-kubernetes and pulumi-resource-random
# (from the upstream sources in shared/vendor, whose README gives their provenance).
# <key> is the first 16 hex digits of a sha256 over the Go version, this script,
# ./cli's go.mod/go.sum and the vendor archives, so a change never reuses stale binaries.
# Then installs the plugins into a sandboxed PULUMI_HOME (<key>/home) and prints, as
# the last stdout line, the bin directory. Exits non-zero with Go's error if a build
# fails; there is no fallback and nothing is downloaded at run time.
#
# Env: GO (go command), PULUMI_VENDOR_DIR (default <repo>/../shared/vendor),
#      PULUMI_ENGINE_NICE (nice level, default 10).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/../.." && pwd)"
vendor="${PULUMI_VENDOR_DIR:-$repo/../shared/vendor}"

# The versions the Python SDKs in requirements.txt request; the engine matches plugins by them.
CLI_VERSION=v3.274.1
K8S_PLUGIN_VERSION=4.34.2
RANDOM_PLUGIN_VERSION=4.21.4
# What was actually built (the vendor README): stamped honestly into the binaries.
K8S_BUILT_VERSION=4.32.0-dev
RANDOM_BUILT_VERSION=4.21.1-dev

# shellcheck source=../go-toolchain.sh
source "$here/../go-toolchain.sh"
for a in pulumi-language-python pulumi-language-nodejs pulumi-kubernetes-provider pulumi-random-provider; do
  [[ -f "$vendor/$a.tgz" ]] || { echo "pulumi-engine: missing $vendor/$a.tgz (set PULUMI_VENDOR_DIR)" >&2; exit 1; }
done

key="$(
  { printf '%s\n' "$goversion"
    cat "$here/build.sh" "$here/cli/go.mod" "$here/cli/go.sum"
    sha256sum "$vendor"/*.tgz | cut -d' ' -f1
  } | sha256sum | cut -c1-16
)"
out="$repo/build/pulumi-engine/$key"
bin="$out/bin"
home="$out/home"

build() { # name dir target [ldflags]
  local name="$1" dir="$2" target="$3" ldflags="${4:-}" start
  [[ -x "$bin/$name" ]] && return 0
  echo "pulumi-engine: building $name ($goversion); cold, this takes many minutes" >&2
  start=$(date +%s)
  ( cd "$dir" && CGO_ENABLED=0 nice -n "${PULUMI_ENGINE_NICE:-10}" \
      "$GO" build -mod=readonly -trimpath -ldflags="-s -w $ldflags" -o "$bin/.$name.tmp" "$target" ) >&2 \
    || { rc=$?; rm -f "$bin/.$name.tmp"; echo "pulumi-engine: go build of $name failed (exit $rc)" >&2; exit "$rc"; }
  mv -f "$bin/.$name.tmp" "$bin/$name"
  echo "pulumi-engine: $name built in $(( $(date +%s) - start ))s, $(du -h "$bin/$name" | cut -f1)" >&2
}

mkdir -p "$bin"
exec 9>"$out/.lock"
flock 9

if [[ ! -f "$out/.complete" ]]; then
  src="$out/src"
  mkdir -p "$src"
  for a in pulumi-language-python pulumi-language-nodejs pulumi-kubernetes-provider pulumi-random-provider; do
    [[ -d "$src/$a" ]] || { mkdir -p "$src/$a.tmp" && tar xzf "$vendor/$a.tgz" -C "$src/$a.tmp" && mv "$src/$a.tmp" "$src/$a"; }
  done
  sdkver=github.com/pulumi/pulumi/sdk/v3/go/common/version.Version
  build pulumi "$here/cli" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi "-X $sdkver=$CLI_VERSION"
  build pulumi-language-nodejs "$src/pulumi-language-nodejs/pulumi-language-nodejs" . "-X $sdkver=$CLI_VERSION"
  build pulumi-language-python "$src/pulumi-language-python/pulumi-language-python" . "-X $sdkver=$CLI_VERSION"
  install -m 0755 "$src/pulumi-language-python/pulumi-language-python/pulumi-language-python-exec" "$bin/"
  build pulumi-resource-random "$src/pulumi-random-provider/provider" ./cmd/pulumi-resource-random \
    "-X github.com/pulumi/pulumi-random/provider/v4/pkg/version.Version=$RANDOM_BUILT_VERSION"
  build pulumi-resource-kubernetes "$src/pulumi-kubernetes-provider/provider" ./cmd/pulumi-resource-kubernetes \
    "-X github.com/pulumi/pulumi-kubernetes/provider/v4/pkg/version.Version=$K8S_BUILT_VERSION"

  # Plugins go into a PULUMI_HOME of our own: nothing from ~/.pulumi, nothing downloaded.
  export PULUMI_HOME="$home" PULUMI_SKIP_UPDATE_CHECK=true PULUMI_IGNORE_AMBIENT_PLUGINS=true \
    PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
  "$bin/pulumi" plugin install resource kubernetes "$K8S_PLUGIN_VERSION" --file "$bin/pulumi-resource-kubernetes" >&2
  "$bin/pulumi" plugin install resource random "$RANDOM_PLUGIN_VERSION" --file "$bin/pulumi-resource-random" >&2
  touch "$out/.complete"
  echo "pulumi-engine: toolchain ready, $(du -sh "$out" | cut -f1) in $out" >&2
fi
echo "$bin"
