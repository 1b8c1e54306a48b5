# shellcheck shell=bash
# Sourced by our Go build scripts (kube-testenv, pulumi-engine, promtool): sets GO, the go command
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
