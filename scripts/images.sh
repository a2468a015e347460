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

# npm inside the build uses this machine's registry settings, its auth lines and its CA bundle.
# They reach the build as secrets, mounted for one RUN only, so no layer of the image holds them.
# npm reads its global npmrc from <prefix of the node running it>/etc/npmrc: with the `node`
# devDependency first on PATH (make, the image check) that is node_modules/node/etc/npmrc, not
# the machine's global npmrc where its cafile lives, and such an npm reaches the registry only
# through NODE_EXTRA_CA_CERTS. So the settings come from the machine's own npm (PATH without
# node_modules/.bin), and the CA bundle is npm's cafile plus NODE_EXTRA_CA_CERTS's file.
host_path=$(tr ':' '\n' <<<"$PATH" | grep -v -E '(^|/)node_modules/\.bin/?$' | paste -sd: -)
host_npm() { PATH=$host_path npm "$@" 2>/dev/null || npm "$@"; }
set_value() { [ -n "$1" ] && [ "$1" != null ] && [ "$1" != undefined ]; }
secrets=$(mktemp -d)
trap 'rm -rf "$secrets"' EXIT
cafile=$(host_npm config get cafile)
: >"$secrets/npm_ca"
# Each file once: here both name the system bundle, and a bundle twice over is twice the secret.
while IFS= read -r ca; do
  if [ -f "$ca" ]; then cat "$ca" >>"$secrets/npm_ca"; fi
done < <(for file in "$cafile" "${NODE_EXTRA_CA_CERTS:-}"; do if set_value "$file"; then readlink -f "$file"; fi; done | sort -u)
{
  for key in registry strict-ssl proxy https-proxy noproxy; do
    value=$(host_npm config get "$key")
    if set_value "$value"; then echo "$key=$value"; fi
  done
  # Scoped registries and auth lines (//host/:_authToken=...) of the user's and the global npmrc.
  for file in "$(host_npm config get userconfig)" "$(host_npm config get globalconfig)"; do
    [ -f "$file" ] && grep -E '^(//|@[^=]*:registry=)' "$file" || true
  done
  # npm trusts exactly its cafile; without one, Node's own CAs plus NODE_EXTRA_CA_CERTS, which
  # the Dockerfiles' install step points at the same bundle.
  if set_value "$cafile"; then echo "cafile=/run/secrets/npm_ca"; fi
} >"$secrets/npmrc"
echo "images: npm in the build: $(grep -c -E '^(registry|strict-ssl|proxy|https-proxy|noproxy|cafile)=' "$secrets/npmrc") settings, a CA bundle of $(grep -c 'BEGIN CERTIFICATE' "$secrets/npm_ca") certificates" >&2

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
