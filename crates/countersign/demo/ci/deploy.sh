#!/usr/bin/env bash
set -euo pipefail
# Deploys every service whose image changed since the last release.
for service in $(git diff --name-only HEAD~1 -- services | cut -d/ -f2 | sort -u); do
  echo "deploying ${service}"
done
