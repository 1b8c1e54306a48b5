#!/usr/bin/env bash
# Lint the GitHub Actions workflows with a pinned actionlint.
#
# actionlint is installed with `go install` into build/bin (GOBIN) and reused when the binary there
# already reports the pinned version, so repeated runs stay offline. Any finding, or any failure to
# install, exits non-zero: a missing linter must never look like a clean lint.
# actionlint runs shellcheck on `run:` scripts when shellcheck is on PATH.
set -euo pipefail

ACTIONLINT_VERSION="${ACTIONLINT_VERSION:-1.7.12}"

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin_dir="${repo_root}/build/bin"
actionlint="${bin_dir}/actionlint"

installed_version() {
  # `actionlint -version` prints the version on its first line (e.g. "1.7.12" or "v1.7.12").
  "${actionlint}" -version 2>/dev/null | head -n 1 | sed 's/^v//' || true
}

if [[ ! -x "${actionlint}" || "$(installed_version)" != "${ACTIONLINT_VERSION}" ]]; then
  if ! command -v go >/dev/null 2>&1; then
    echo "actionlint.sh: 'go' not found on PATH; cannot install actionlint v${ACTIONLINT_VERSION}" >&2
    exit 2
  fi
  echo "actionlint.sh: installing actionlint v${ACTIONLINT_VERSION} into ${bin_dir}" >&2
  mkdir -p "${bin_dir}"
  if ! GOBIN="${bin_dir}" go install \
       "github.com/rhysd/actionlint/cmd/actionlint@v${ACTIONLINT_VERSION}"; then
    echo "actionlint.sh: 'go install' of actionlint v${ACTIONLINT_VERSION} failed" >&2
    exit 2
  fi
  got="$(installed_version)"
  if [[ "${got}" != "${ACTIONLINT_VERSION}" ]]; then
    echo "actionlint.sh: installed actionlint reports version '${got}', expected '${ACTIONLINT_VERSION}'" >&2
    exit 2
  fi
fi

cd "${repo_root}"
shopt -s nullglob
workflows=(.github/workflows/*.yml .github/workflows/*.yaml)
if (( ${#workflows[@]} == 0 )); then
  echo "actionlint.sh: no workflow files under .github/workflows" >&2
  exit 1
fi

if ! command -v shellcheck >/dev/null 2>&1; then
  echo "actionlint.sh: note: shellcheck not on PATH; run: scripts are not shellchecked" >&2
fi

"${actionlint}" -no-color "${workflows[@]}"
echo "actionlint.sh: ${#workflows[@]} workflow file(s) clean (actionlint v${ACTIONLINT_VERSION})" >&2
