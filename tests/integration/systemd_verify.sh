#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# systemd-analyze verify exits 0 even for bad values, so any output at all is a failure.
set -euo pipefail
flowd=$1
units=$2
command -v systemd-analyze >/dev/null || { echo "systemd-analyze not installed (package systemd)"; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for u in flowd.service flowd@.service; do
  # Point ExecStart at the binary just built: verify checks that it is executable.
  sed "s#^ExecStart=[^ ]*#ExecStart=$flowd#" "$units/$u" > "$tmp/$u"
  grep -q '^Type=notify$' "$tmp/$u" || { echo "$u: not Type=notify"; exit 1; }
  grep -q '^ExecReload=/bin/kill -HUP \$MAINPID$' "$tmp/$u" || { echo "$u: ExecReload is not kill -HUP"; exit 1; }
  grep -q '^Restart=on-failure$' "$tmp/$u" || { echo "$u: not Restart=on-failure"; exit 1; }
done
grep -q -- '-c /etc/flowd/flowd-%i.cfg' "$tmp/flowd@.service" || { echo "flowd@.service: wrong config path"; exit 1; }
cd "$tmp"
out=$(SYSTEMD_LOG_LEVEL=warning systemd-analyze verify ./flowd@tags.service ./flowd.service 2>&1) || {
  echo "$out"; exit 1; }
if [ -n "$out" ]; then
  echo "systemd-analyze verify printed warnings:"; echo "$out"; exit 1
fi
echo "flowd.service and flowd@.service verify cleanly"
