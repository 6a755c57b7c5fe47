#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The one list of Debian 12 packages flowd needs. The Dockerfile sources this file too, and
# tests/unit/packaging_test checks both agree.
#   scripts/packages.sh build    -> packages to build flowd
#   scripts/packages.sh runtime  -> shared libraries flowd links at run time
#   scripts/packages.sh test     -> tools the test suite drives (exporters, decoders, promtool, ...)
#   scripts/packages.sh image    -> what scripts/check-image.sh needs to build and check the container image
#   scripts/packages.sh install [build|runtime|test|image ...]   -> apt-get install them (default: build test)

FLOWD_BUILD_PACKAGES="cmake make g++ clang llvm pkg-config bpftool libbpf-dev libelf-dev zlib1g-dev \
libmnl-dev libspdlog-dev libfmt-dev prometheus-cpp-dev libinih-dev libsystemd-dev \
nlohmann-json3-dev libcurl4-openssl-dev libcli11-dev libpcap-dev libsimdjson-dev libcpp-httplib-dev librdkafka-dev \
libgtest-dev libgmock-dev libbenchmark-dev libclang-rt-14-dev ccache"

FLOWD_RUNTIME_PACKAGES="libspdlog1.10 libfmt9 libprometheus-cpp-pull1.0 libprometheus-cpp-core1.0 \
libcivetweb1 libcpp-httplib0.11 libinih1 libsystemd0 libcurl4 libbpf1 libelf1 zlib1g libpcap0.8 libmnl0 libsimdjson14 librdkafka1 ca-certificates"

FLOWD_TEST_PACKAGES="prometheus curl python3 iproute2 systemd libseccomp-dev tshark tcpdump iperf3 softflowd \
nfdump pmacct netcat-openbsd iputils-ping procps util-linux coturn python3-jsonschema nftables python3-psutil gdb clang-format kcat"

# podman builds the image (chroot isolation: no container runtime is started); debootstrap makes the
# base image where no image registry is reachable; python3 listens for the firefly.
FLOWD_IMAGE_PACKAGES="podman debootstrap debian-archive-keyring python3 util-linux coreutils tar"

flowd_packages() {
  local kind
  for kind in "$@"; do
    case "$kind" in
      build) echo "$FLOWD_BUILD_PACKAGES" ;;
      runtime) echo "$FLOWD_RUNTIME_PACKAGES" ;;
      test) echo "$FLOWD_TEST_PACKAGES" ;;
      image) echo "$FLOWD_IMAGE_PACKAGES" ;;
      *) echo "unknown package set: $kind" >&2; return 2 ;;
    esac
  done
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -euo pipefail
  cmd=${1:-install}
  shift || true
  case "$cmd" in
    build|runtime|test|image) flowd_packages "$cmd" "$@" | tr -s ' \n' '\n' | sed '/^$/d' ;;
    install)
      sets=("$@"); [[ ${#sets[@]} -gt 0 ]] || sets=(build test)
      pkgs=$(flowd_packages "${sets[@]}")
      export DEBIAN_FRONTEND=noninteractive
      as_root=()
      if [[ $(id -u) -ne 0 ]]; then
        command -v sudo >/dev/null || { echo "installing packages needs root (or sudo)" >&2; exit 1; }
        as_root=(sudo DEBIAN_FRONTEND=noninteractive)
      fi
      missing=()
      for p in $pkgs; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p"); done
      if [[ ${#missing[@]} -gt 0 ]]; then
        # tshark asks whether non-root users may capture; answer before installing.
        echo "wireshark-common wireshark-common/install-setuid boolean false" | "${as_root[@]}" debconf-set-selections
        "${as_root[@]}" apt-get update -qq
        "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"
      fi ;;
    *) echo "usage: $0 [install [build|runtime|test|image ...]|build|runtime|test|image]" >&2; exit 2 ;;
  esac
fi
