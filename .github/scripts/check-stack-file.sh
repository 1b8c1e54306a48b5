#!/usr/bin/env bash
# Refuse early, with the fix, when Pulumi.<stack>.yaml lacks what `pulumi stack init` and
# `pulumi config set --secret` write locally. CI cannot create them: a runner would invent a new
# salt that does not match the state, or stop on the missing required secret much later.
# Usage: check-stack-file.sh STACK   (from the repository root; reads PULUMI_CONFIG_PASSPHRASE)
set -euo pipefail
stack="${1:?usage: check-stack-file.sh STACK}"
file="Pulumi.${stack}.yaml"
if [[ ! -f "${file}" ]]; then
  echo "::error file=${file}::${file} is missing: run 'pulumi stack init ${stack}' and commit the file"
  exit 1
fi

problems=0
if grep -q '^encryptionsalt:' "${file}"; then
  if [[ -z "${PULUMI_CONFIG_PASSPHRASE:-}" ]]; then
    echo "::error::secret PULUMI_CONFIG_PASSPHRASE is empty or not set in the '${ENVIRONMENT_NAME:-?}' environment; ${file} is encrypted with a passphrase"
    problems=1
  fi
elif ! grep -q '^secretsprovider:' "${file}" && [[ "${PULUMI_BACKEND_URL:-}" != https://* ]]; then
  # Pulumi Cloud (an https:// backend) encrypts without a salt in the file; a self-managed one does not.
  echo "::error file=${file}::${file} has no encryptionsalt: run 'pulumi stack init ${stack}' locally with this stack's PULUMI_CONFIG_PASSPHRASE and commit ${file} (README: Adopting the pipeline)"
  problems=1
fi
# databaseUrl is required and secret: its encrypted value (`secure: v1:...`) is committed.
if ! awk '/^  celery-platform:databaseUrl:$/ { getline; if ($1 == "secure:") found = 1 } END { exit !found }' "${file}"; then
  echo "::error file=${file}::${file} has no encrypted celery-platform:databaseUrl: run 'pulumi config set --secret databaseUrl ... --stack ${stack}' and commit ${file}"
  problems=1
fi
exit "${problems}"
