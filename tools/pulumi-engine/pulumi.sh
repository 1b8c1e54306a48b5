#!/usr/bin/env bash
# `pulumi` for a machine without the Pulumi CLI: builds (once, cached) the toolchain of build.sh and
# runs its CLI with the plugins in that toolchain's own PULUMI_HOME and plugin downloads off.
# The Makefile's preview and up use it only when no `pulumi` is on PATH.
set -euo pipefail
bin="$("$(dirname "${BASH_SOURCE[0]}")/build.sh" | tail -n1)"
export PATH="$bin:$PATH"
export PULUMI_HOME="${PULUMI_HOME:-$(dirname "$bin")/home}"
export PULUMI_SKIP_UPDATE_CHECK=true PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION=true
exec "$bin/pulumi" "$@"
