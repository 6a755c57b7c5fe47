#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Makes a local stand-in for debian:bookworm-slim where no image registry is reachable, from the
# Debian archive alone: debootstrap --variant=minbase, trimmed like the official slim image (no
# documentation, manual pages or translations; no apt caches), then `podman import`.
#   scripts/make-base-image.sh [IMAGE]          IMAGE: default debian:bookworm-slim
#   DEBIAN_MIRROR=http://... DEBIAN_SECURITY_MIRROR=http://... scripts/make-base-image.sh
# Does nothing when IMAGE already exists (FLOWD_REBUILD_BASE=1 makes it again). Needs root, podman and
# debootstrap.
set -euo pipefail
image=${1:-debian:bookworm-slim}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
security=${DEBIAN_SECURITY_MIRROR:-${mirror}-security}
if podman image exists "$image" && [[ ${FLOWD_REBUILD_BASE:-0} != 1 ]]; then
  echo "base image $image exists"
  exit 0
fi
for tool in podman debootstrap; do
  command -v "$tool" >/dev/null || { echo "$tool is missing (apt-get install $tool)" >&2; exit 1; }
done
root=$(mktemp -d /var/tmp/flowd-base.XXXXXX)
trap 'rm -rf --one-file-system "$root"' EXIT
# What the official slim image leaves out, set before debootstrap unpacks anything but the first
# packages (dpkg reads dpkg.cfg.d from the target root).
mkdir -p "$root/etc/dpkg/dpkg.cfg.d" "$root/etc/apt/apt.conf.d"
cat >"$root/etc/dpkg/dpkg.cfg.d/docker" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
EOF
cat >"$root/etc/apt/apt.conf.d/docker-clean" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
EOF
echo 'Acquire::Languages "none";' >"$root/etc/apt/apt.conf.d/docker-no-languages"
echo "debootstrap --variant=minbase bookworm from $mirror"
debootstrap --variant=minbase bookworm "$root" "$mirror" >"$root.log" 2>&1 ||
  { tail -n 30 "$root.log" >&2; rm -f "$root.log"; exit 1; }
rm -f "$root.log"
# debootstrap unpacked its first packages before dpkg read the excludes: remove what they left.
find "$root/usr/share/doc" -mindepth 1 -not -name copyright -not -type d -delete
find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
rm -rf "$root"/usr/share/man/* "$root"/usr/share/info/* "$root"/var/cache/apt/*.bin \
  "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/* "$root"/var/log/*.log
find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 -not -name locale.alias -exec rm -rf {} +
# The official image's sources: the release, its updates and the security archive.
rm -f "$root/etc/apt/sources.list"
cat >"$root/etc/apt/sources.list.d/debian.sources" <<EOF
Types: deb
URIs: $mirror
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: $security
Suites: bookworm-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
EOF
tar -C "$root" --numeric-owner -c . |
  podman import --change 'CMD ["bash"]' --message "debootstrap --variant=minbase bookworm" - "$image" >/dev/null
echo "base image $image: $(podman image inspect --format '{{.Size}}' "$image" | numfmt --to=iec) (debootstrap)"
