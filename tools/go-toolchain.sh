# shellcheck shell=bash
# Sourced by our Go build scripts (kube-testenv, pulumi-engine, promtool, keda): sets GO, the go command
# (GO from the environment, else go on PATH, else /usr/local/go/bin/go), and goversion; exits with a
# clear message when there is no Go toolchain. Cache keys include goversion, so a new Go rebuilds.
GO="${GO:-}"
if [[ -z "$GO" ]]; then
  if command -v go >/dev/null 2>&1; then GO="$(command -v go)"
  elif [[ -x /usr/local/go/bin/go ]]; then GO=/usr/local/go/bin/go
  else echo "$(basename "$0"): no Go toolchain found (set GO=/path/to/go)" >&2; exit 1
  fi
fi
goversion="$("$GO" env GOVERSION)"

# source_key FILE...: the cache key of a build, the first 16 hex digits of a sha256 over goversion and
# FILE... (paths relative to the sourcing script's $here), each file's name before its content.
source_key() {
  # shellcheck disable=SC2154  # $here is the sourcing script's folder
  ( cd "$here" && {
      printf '%s\n' "$goversion"
      for f in "$@"; do printf '== %s\n' "$f"; cat "$f"; done
    } | sha256sum | cut -c1-16 )
}
