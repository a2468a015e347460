#!/usr/bin/env bash
# The test suite drives real tools: headless Chromium (dashboard), promtool (rules and metrics),
# kubectl (kustomize). Installs the missing ones from Debian's packages when we may.
set -u
missing=()
command -v chromium >/dev/null || missing+=(chromium)
command -v promtool >/dev/null || missing+=(prometheus)
command -v kubectl >/dev/null || missing+=(kubectl)
command -v redis-server >/dev/null || missing+=(redis-server)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
  echo "installing test tools: ${missing[*]}"
  apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "missing test tools: ${missing[*]} (install them with your package manager)" >&2
  exit 1
fi
