#!/usr/bin/env bash
# `make images`: builds tasklane-api:local and tasklane-worker:local (the tags docker-compose.yml
# and k8s/overlays/dev use) with Docker when an engine answers, else with podman on a local
# Node 24 base (scripts/podman-setup.sh). CONTAINER_ENGINE=docker|podman chooses.
set -euo pipefail
cd "$(dirname "$0")/.."

engine=${CONTAINER_ENGINE:-}
if [ -z "$engine" ]; then
  # The docker client alone is not enough: `docker info` needs a running engine.
  if command -v docker >/dev/null && docker info >/dev/null 2>&1; then engine=docker
  elif command -v podman >/dev/null || command -v apt-get >/dev/null; then engine=podman
  else echo "images: neither a Docker engine nor podman; set CONTAINER_ENGINE" >&2; exit 1
  fi
fi

if [ "$engine" = docker ]; then
  docker build -f Dockerfile.api --target api -t tasklane-api:local .
  docker build -f Dockerfile.worker --target worker -t tasklane-worker:local .
  exit 0
fi
[ "$engine" = podman ] || { echo "images: CONTAINER_ENGINE is docker or podman, not $engine" >&2; exit 1; }

base=$(scripts/podman-setup.sh | tail -n1)

# npm inside the build uses this machine's registry, its auth lines and its CA bundle. They
# reach the build as secrets, mounted for one RUN only, so no layer of the image holds them.
secrets=$(mktemp -d)
trap 'rm -rf "$secrets"' EXIT
registry=$(npm config get registry)
cafile=$(npm config get cafile)
{
  echo "registry=$registry"
  # Auth lines (//host/:_authToken=...) from the user's and the global npmrc, if any.
  cat "$HOME/.npmrc" /etc/npmrc 2>/dev/null | grep -E '^//' || true
  if [ -n "$cafile" ] && [ "$cafile" != null ] && [ "$cafile" != undefined ]; then echo "cafile=/run/secrets/npm_ca"; fi
} >"$secrets/npmrc"
if [ -n "$cafile" ] && [ -f "$cafile" ]; then cp "$cafile" "$secrets/npm_ca"; else : >"$secrets/npm_ca"; fi

# runc and explicit limits: crun fails on this kind of machine on cgroups and setrlimit.
# --format docker keeps HEALTHCHECK, which OCI images cannot carry.
build() {
  podman --runtime runc build --pull=never --format docker --network host \
    --ulimit nofile=1024:1024 --ulimit nproc=1024:1024 \
    --secret id=npmrc,src="$secrets/npmrc" --secret id=npm_ca,src="$secrets/npm_ca" \
    --build-arg NODE_IMAGE="$base" "$@" .
}
build -f Dockerfile.api --target api -t tasklane-api:local
build -f Dockerfile.worker --target worker -t tasklane-worker:local
podman images --format '{{.Repository}}:{{.Tag}} {{.Size}}' --filter reference='tasklane-*:local'
