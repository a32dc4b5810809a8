#!/usr/bin/env bash
# Builds a minimal Debian bookworm image with python3 + venv, offline from any container registry:
# debootstrap fetches Debian packages, `docker import` turns the tree into an image.
# Usage: scripts/build-base-image.sh [IMAGE_NAME]   (default: modeldeck/base:bookworm-py311)
set -euo pipefail
name="${1:-modeldeck/base:bookworm-py311}"
if docker image inspect "$name" >/dev/null 2>&1; then
  echo "base image $name already present"
  exit 0
fi
command -v debootstrap >/dev/null || { echo "debootstrap missing: apt-get install -y debootstrap" >&2; exit 1; }
mirror="${DEBIAN_MIRROR:-$(grep -rhoE '^deb(\s+\[[^]]*\])?\s+\S+' /etc/apt/sources.list /etc/apt/sources.list.d/*.list 2>/dev/null | awk '{print $NF}' | grep -v security | head -1 || true)}"
if [ -z "$mirror" ] && [ -f /etc/apt/sources.list.d/debian.sources ]; then
  mirror=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources)
fi
mirror="${mirror:-http://deb.debian.org/debian}"
root=$(mktemp -d /tmp/modeldeck-base.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "debootstrap bookworm from $mirror into $root"
debootstrap --variant=minbase --include=python3,python3-venv bookworm "$root" "$mirror" >/tmp/modeldeck-debootstrap.log 2>&1 \
  || { tail -20 /tmp/modeldeck-debootstrap.log >&2; exit 1; }
# Slim it: package caches, lists, docs and locales are not needed to serve a model.
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* \
       "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root"/usr/share/locale/* "$root"/usr/share/info/*
tar -C "$root" -c . | docker import \
  --change 'ENV LANG=C.UTF-8 PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'CMD ["python3"]' - "$name" >/dev/null
echo "built $name ($(docker image inspect -f '{{.Size}}' "$name") bytes)"
