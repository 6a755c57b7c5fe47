#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the .deb with CPack (prefix /usr) and checks what it holds: the binary in /usr/sbin, the
# configuration as a conffile in /etc/flowd, both systemd units; then runs the packaged binary.
# RelWithDebInfo (-O2 -g, stripped by CPack), as Debian builds its packages: with ccache the objects
# of the README's build are reused, whatever the directory.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-deb}
cmake -S . -B "$build" -DCMAKE_INSTALL_PREFIX=/usr -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFLOWD_BUILD_TESTS=OFF \
  -DFLOWD_BUILD_BENCH=OFF >/dev/null
cmake --build "$build" -j"$(nproc)"
(cd "$build" && cpack -G DEB >/dev/null)
deb=$(ls "$build"/flowd_*.deb | head -n1)
contents=$(dpkg-deb -c "$deb")
for f in ./usr/sbin/flowd ./etc/flowd/flowd.cfg ./lib/systemd/system/flowd.service ./lib/systemd/system/flowd@.service ./lib/systemd/system/flowd-marker@.service; do
  grep -q " $f\$" <<<"$contents" || { echo "$deb lacks $f"; echo "$contents"; exit 1; }
done
dpkg-deb -f "$deb" Depends | grep -q libspdlog || { echo "$deb: Depends lacks the shared libraries"; exit 1; }
dpkg-deb -e "$deb" "$build/control"
grep -qx /etc/flowd/flowd.cfg "$build/control/conffiles" || { echo "flowd.cfg is not a conffile"; exit 1; }
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
dpkg-deb -x "$deb" "$root"
"$root/usr/sbin/flowd" --version
if readelf -S "$root/usr/sbin/flowd" | grep -q '\.debug_info'; then echo "the packaged flowd is not stripped"; exit 1; fi
grep -q "ExecStart=/usr/sbin/flowd -c /etc/flowd/flowd-%i.cfg" "$root/lib/systemd/system/flowd@.service"
sed "s#^path = .*#path = $root/np#; s#^work_dir = .*#work_dir = $root/cache#" "$root/etc/flowd/flowd.cfg" > "$root/check.cfg"
"$root/usr/sbin/flowd" --check-config -c "$root/check.cfg"
echo "$deb: contents, conffile, dependencies and packaged binary OK"
