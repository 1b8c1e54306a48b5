#!/usr/bin/env bash
# Write the job's kubeconfig (from an environment secret, passed in KUBECONFIG_CONTENT) to a
# private file under RUNNER_TEMP and point KUBECONFIG at it for the following steps.
# Usage: write-kubeconfig.sh SECRET_NAME   (the name only serves the error message)
set -euo pipefail
secret_name="${1:?usage: write-kubeconfig.sh SECRET_NAME}"
if [[ -z "${KUBECONFIG_CONTENT:-}" ]]; then
  echo "::error::secret ${secret_name} is empty or not set in the '${ENVIRONMENT_NAME:-?}' environment (README: Adopting the pipeline)"
  exit 1
fi
umask 077
printf '%s\n' "${KUBECONFIG_CONTENT}" >"${RUNNER_TEMP}/kubeconfig"
echo "KUBECONFIG=${RUNNER_TEMP}/kubeconfig" >>"${GITHUB_ENV}"
