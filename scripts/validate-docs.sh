#!/usr/bin/env bash
# Validates the published contract and the deployment files (see
# scripts/validate/validate.mjs): the AsyncAPI document with the official
# parser, docker-compose.yml against the Compose Specification's JSON Schema,
# deploy/k8s against Kubernetes' schemas. Installs its npm packages (pinned
# by package-lock.json) on first use.
set -euo pipefail
cd "$(dirname "$0")/validate"
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "validate-docs: Node.js and npm are needed (Debian: apt-get install -y nodejs npm)" >&2
  exit 1
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
  npm ci --no-audit --no-fund --loglevel=error
fi
node validate.mjs ../..
