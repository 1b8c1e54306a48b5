#!/usr/bin/env bash
# Regenerate both locks from pyproject.toml, from the `pip freeze` of a clean venv:
#   requirements.txt      the runtime set ([project] dependencies): what deploying and rendering import,
#                         which make venv installs into ./venv with --no-deps. tools/runtime_set.py
#                         leaves out requirements that nothing here imports (kubernetes' own, debugpy);
#   requirements-dev.txt  `-r requirements.txt` plus the `dev` dependency group (tests, linters) and
#                         what the runtime set left out, so that the dev set is the whole closure.
# Versions pinned today stay pinned (they constrain the resolve); UPGRADE=1 resolves afresh.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

python="${PYTHON:-python3}"
venv=build/lock-venv
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

if [[ "${UPGRADE:-0}" == 1 ]]; then
  : >"$work/constraints.txt"
else
  cat requirements.txt requirements-dev.txt 2>/dev/null | grep -E '^[A-Za-z0-9_.-]+==' >"$work/constraints.txt" || true
fi

rm -rf "$venv"
# As make venv makes ./venv: pip alone, so that a requirement on setuptools (pulumi-policy's) is resolved
# and pinned like any other, not met by whatever setuptools Python's ensurepip bundles.
"$python" -m venv --without-pip "$venv"
"$python" -m pip --python "$venv/bin/python" install --quiet --disable-pip-version-check pip
# Not editable: the lock lists what the package needs, never the package itself.
"$venv/bin/pip" install --quiet --no-compile -c "$work/constraints.txt" .
freeze=("$venv/bin/pip" freeze --all --exclude pip --exclude celery-platform)
"${freeze[@]}" >"$work/closure.txt"
"$venv/bin/python" tools/runtime_set.py "$work/closure.txt" >"$work/runtime.txt"
"$venv/bin/pip" install --quiet --no-compile -c "$work/constraints.txt" -c "$work/closure.txt" --group dev
"${freeze[@]}" >"$work/all.txt"

{
  echo "# The runtime set: what deploying and rendering import (pyproject's dependencies), pinned with their closure"
  echo "# less what tools/runtime_set.py leaves out (kubernetes' own requirements, debugpy): make venv installs it into"
  echo "# ./venv with --no-deps (Pulumi, if it makes ./venv itself, resolves those and adds them unpinned). It holds"
  echo "# nothing that only tests need; requirements-dev.txt has that, and pins what was left out. Regenerate: make lock"
  cat "$work/runtime.txt"
  # Strict editable mode: a link tree that mypy can follow; components/ installs as celery_platform.
  echo "-e . --config-settings editable_mode=strict"
} >requirements.txt
{
  echo "# The dev and test set: the runtime set plus pyproject's \`dev\` dependency group, pinned with their"
  echo "# closure, and what the runtime set leaves out. make setup installs it. Regenerate both with: make lock"
  echo "-r requirements.txt"
  grep -vxF -f "$work/runtime.txt" "$work/all.txt"
} >requirements-dev.txt
echo "lock.sh: requirements.txt $(grep -c '==' requirements.txt) pins, requirements-dev.txt $(grep -c '==' requirements-dev.txt) more" >&2
