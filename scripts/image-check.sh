#!/usr/bin/env bash
# CI's image check: builds both images with podman (scripts/images.sh, which prepares podman
# and the local Node 24 base), validates docker-compose.yml with podman-compose, then runs the
# images against the local Postgres and Redis (scripts/image-check.ts). Lines start with
# "image check:"; the exit code is non-zero when anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH=$PWD/node_modules/.bin:$PATH

started=$(date +%s)
if ! CONTAINER_ENGINE=podman scripts/images.sh; then
  echo "image check: FAIL building the images (output above)"
  echo "image check: FAILED"
  exit 1
fi
echo "image check: both images built in $(($(date +%s) - started)) s"

status=0
# A real Compose implementation loads docker-compose.yml. Debian's podman-compose (1.0.3) has no
# `config` and its --dry-run still creates volumes and networks, so Debian's docker-compose
# (1.29.2) validates it: merge keys, interpolation, depends_on conditions, deploy, tmpfs. It
# predates the Compose Specification's top-level `name`, the one line left out for it; the
# whole file, `name` included, stays checked against the spec's schema by make test.
# scripts/podman-setup.sh installs it.
if command -v docker-compose >/dev/null; then
  if out=$(grep -v '^name:' docker-compose.yml | docker-compose --project-directory . -f - config 2>&1) &&
    grep -q 'image: tasklane-worker:local' <<<"$out" && grep -q 'replicas: 2' <<<"$out"; then
    echo "image check: ok   docker-compose $(docker-compose version --short) loads docker-compose.yml"
  else
    echo "$out" | tail -n 20
    echo "image check: FAIL docker-compose rejects docker-compose.yml"
    status=1
  fi
else
  echo "image check: skip docker-compose is not installed; the compose file is checked against the spec's schema only"
fi

node scripts/image-check.ts || status=1
echo "image check: took $(($(date +%s) - started)) s in all"
exit "$status"
