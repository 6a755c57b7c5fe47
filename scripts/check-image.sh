#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds the container image with podman as a new user would, and runs the image's own flowd.
#   scripts/check-image.sh [TAG]        TAG: default flowd:ci
#   FLOWD_BASE_IMAGE=debian:bookworm-slim (made with scripts/make-base-image.sh when missing)
# Checks: the image keeps the base's /bin, /lib, /sbin -> usr/... links (a whole tree copied onto /
# once replaced /lib and no program started); it holds no compiler, header or -dev package; its
# /usr/sbin/flowd, run under chroot in the exported filesystem with the image's own default
# configuration (registry and ports changed only), turns a line written into the pipe into a
# firefly that a UDP listener on loopback receives, and serves its metrics.
# podman only builds and exports here: `podman run` is never needed (on a cgroup v1/hybrid host crun
# cannot start containers). Needs root, podman, debootstrap (if the base is missing), python3.
set -euo pipefail
cd "$(dirname "$0")/.."
tag=${1:-flowd:ci}
base=${FLOWD_BASE_IMAGE:-debian:bookworm-slim}
t0=$(date +%s)
for tool in podman python3 unshare chroot; do
  command -v "$tool" >/dev/null || { echo "$tool is missing (scripts/packages.sh install image)" >&2; exit 1; }
done
[[ $(id -u) -eq 0 ]] || { echo "check-image.sh needs root (podman storage, chroot)" >&2; exit 1; }

work=$(mktemp -d /var/tmp/flowd-image-check.XXXXXX)
ctr=""
flowd_pid=""
listener=""
cleanup() {
  [[ -z $listener ]] || kill "$listener" 2>/dev/null || true
  if [[ -n $flowd_pid ]] && kill -0 "$flowd_pid" 2>/dev/null; then kill -KILL "$flowd_pid" 2>/dev/null || true; fi
  [[ -z $ctr ]] || podman rm -f "$ctr" >/dev/null 2>&1 || true
  # The mounts live in flowd's own mount namespace and went with it; never cross into a mount.
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT

./scripts/make-base-image.sh "$base"
commit=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
echo "== podman build --isolation=chroot --network=host -t $tag ."
# The build stage is tagged too ($tag-build), so that the images an earlier run left (that stage
# and the image) can be removed by id below instead of piling up untagged; the layers the new ones
# share (the base, the build packages) stay, and so does the cache.
old_ids=$(podman image inspect --format '{{.Id}}' "$tag" "$tag-build" 2>/dev/null || true)
t_build=$(date +%s)
build=(nice podman build --isolation=chroot --network=host --build-arg BASE="$base"
  --build-arg FLOWD_COMMIT="$commit")
{ "${build[@]}" --target build -t "$tag-build" . && "${build[@]}" -t "$tag" .; } >"$work/build.log" 2>&1 ||
  { tail -n 60 "$work/build.log"; echo "podman build failed" >&2; exit 1; }
echo "built in $(($(date +%s) - t_build)) s"
new_ids=" $(podman image inspect --format '{{.Id}}' "$tag" "$tag-build" | tr '\n' ' ') "
for id in $old_ids; do
  [[ $new_ids == *" $id "* ]] || podman rmi "$id" >/dev/null 2>&1 || true
done
grep -iE '^ *(hits|misses):' "$work/build.log" | sed 's/^ */compiler cache (build stage): /' || true

# The image's filesystem, as a container of it would see it (podman create never starts one).
root=$work/root
mkdir "$root"
ctr=$(podman create "$tag")
podman export "$ctr" | tar -C "$root" -x --numeric-owner
podman rm "$ctr" >/dev/null
ctr=""

fail=0
for link in bin lib lib64 sbin; do
  target=$(readlink "$root/$link" || true)
  [[ $target == usr/$link ]] || { echo "/$link is not the base's link to usr/$link (got: $(ls -ld "$root/$link"))"; fail=1; }
done
# (the base's /usr/include and /usr/local/include are empty directories of base-files)
for dir in usr/include usr/local/include usr/lib/gcc usr/libexec/gcc usr/lib/llvm-14; do
  [[ -z $(find "$root/$dir" -mindepth 1 -print -quit 2>/dev/null) ]] ||
    { echo "the image holds files in /$dir (build tools or headers)"; fail=1; }
done
found=$(find "$root/usr" \( -name cc1 -o -name cc1plus -o -name 'gcc*' -o -name 'g++*' -o -name 'clang*' \
  -o -name cmake -o -name ld -o -name 'ld.bfd' -o -name '*.h' -o -name '*.hpp' \) -not -type d -print -quit)
[[ -z $found ]] || { echo "the image holds build tools or headers: ${found#"$root"}"; fail=1; }
dev=$(dpkg-query --admindir="$root/var/lib/dpkg" -W -f '${Package}\n' |
  grep -E -- '-dev$|^(gcc|g\+\+|cpp|clang|llvm|cmake|make|binutils)(-[0-9]+)?$' || true)
[[ -z $dev ]] || { echo "the image has build packages installed: $(tr '\n' ' ' <<<"$dev")"; fail=1; }
for f in usr/sbin/flowd etc/flowd/flowd.cfg usr/share/doc/flowd/LICENSE; do
  [[ -f $root/$f ]] || { echo "the image lacks /$f"; fail=1; }
done
[[ $fail -eq 0 ]] || exit 1
chroot "$root" /bin/sh -c 'exit 0' || { echo "/bin/sh does not start in the image"; exit 1; }
version=$(chroot "$root" /usr/sbin/flowd --version)
echo "image's flowd: $version"

# Two free loopback ports: the firefly listener's and the metrics endpoint's.
read -r firefly_port metrics_port < <(python3 -c '
import socket
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); u.bind(("127.0.0.1", 0))
t = socket.socket(); t.bind(("127.0.0.1", 0))
print(u.getsockname()[1], t.getsockname()[1])')
# The image's default configuration; only the registry (no download from a test) and ports change.
sed -e 's#^flow_map_api = .*#flow_map_api =#' -e "s#^port = 10514#port = $firefly_port#" \
  -e "s#^listen = 127.0.0.1:9000#listen = 127.0.0.1:$metrics_port#" \
  "$root/etc/flowd/flowd.cfg" >"$root/etc/flowd/check.cfg"
if ! grep -q "^port = $firefly_port" "$root/etc/flowd/check.cfg" ||
  ! grep -q "^listen = 127.0.0.1:$metrics_port" "$root/etc/flowd/check.cfg"; then
  echo "the image's flowd.cfg no longer has the firefly port or metrics listen line"; exit 1
fi
pipe=$(sed -n 's#^path = ##p' "$root/etc/flowd/check.cfg")
[[ $pipe == /* ]] || { echo "no pipe path in the image's flowd.cfg"; exit 1; }

python3 - "$firefly_port" "$work/firefly" <<'EOF' &
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.settimeout(60)
data, _ = s.recvfrom(65535)
open(sys.argv[2], "wb").write(data)
EOF
listener=$!

# flowd in its own mount namespace, so /proc, /dev and /run go away with it.
unshare --mount --propagation private -- bash -c '
  set -e
  root=$1
  mount -t proc proc "$root/proc"
  mount -t tmpfs -o mode=0755 tmpfs "$root/dev"
  for d in null zero random urandom; do : >"$root/dev/$d"; mount --bind "/dev/$d" "$root/dev/$d"; done
  mount -t tmpfs -o mode=0755 tmpfs "$root/run"
  mount -t tmpfs -o mode=1777 tmpfs "$root/tmp"
  exec chroot "$root" /usr/sbin/flowd -c /etc/flowd/check.cfg' _ "$root" >"$work/flowd.log" 2>&1 &
flowd_pid=$!

metrics() { python3 -c 'import sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "http://127.0.0.1:$metrics_port/metrics"; }
# flowd's pipe lives in the chroot's /run (a tmpfs of its namespace): reach it through flowd's root.
fifo=/proc/$flowd_pid/root$pipe
# Ready once the FIFO exists and the metrics endpoint answers; a bounded wait.
for _ in $(seq 150); do
  kill -0 "$flowd_pid" 2>/dev/null || { cat "$work/flowd.log"; echo "flowd exited at start" >&2; exit 1; }
  [[ -p $fifo ]] && metrics >/dev/null 2>&1 && break
  sleep 0.2
done
[[ -p $fifo ]] || { cat "$work/flowd.log"; echo "no FIFO at $pipe" >&2; exit 1; }
timeout 10 bash -c 'echo "start tcp 127.0.0.1 2345 127.0.0.1 5777 atlas default" >"$1"' _ "$fifo"
wait "$listener" || { cat "$work/flowd.log"; echo "no firefly reached 127.0.0.1:$firefly_port" >&2; exit 1; }
listener=""
python3 - "$work/firefly" <<'EOF' || { cat "$work/flowd.log"; exit 1; }
import json, sys
raw = open(sys.argv[1], "rb").read().decode()
print("firefly:", raw)
assert raw.startswith("<134>1 "), "not a syslog firefly"
body = json.loads(raw[raw.index("{"):])
fid, ctx = body["flow-id"], body["context"]
assert body["flow-lifecycle"]["state"] == "start", body
assert (fid["src-ip"], fid["src-port"], fid["dst-ip"], fid["dst-port"], fid["protocol"]) == \
    ("127.0.0.1", 2345, "127.0.0.1", 5777, "tcp"), fid
assert (ctx["experiment-id"], ctx["activity-id"]) == (2, 1), ctx
assert ctx["application"].startswith("flowd-cpp v"), ctx
EOF
scrape=$(metrics)
grep -q '^flowd_fireflies_sent_total{destination="flow"} 1$' <<<"$scrape" ||
  { grep fireflies <<<"$scrape"; echo "flowd_fireflies_sent_total{destination=\"flow\"} is not 1" >&2; exit 1; }
grep -q "^flowd_build_info{.*commit=\"$commit\"" <<<"$scrape" ||
  { grep build_info <<<"$scrape"; echo "flowd_build_info does not name commit $commit" >&2; exit 1; }
kill -TERM "$flowd_pid"
rc=0
timeout 15 tail --pid="$flowd_pid" -f /dev/null || { echo "flowd did not stop on SIGTERM" >&2; exit 1; }
wait "$flowd_pid" || rc=$?
flowd_pid=""
[[ $rc -eq 0 ]] || { cat "$work/flowd.log"; echo "flowd exited $rc on SIGTERM" >&2; exit 1; }

size=$(podman image inspect --format '{{.Size}}' "$tag")
echo "image $tag: $(numfmt --to=iec "$size") ($size bytes; base $base:" \
  "$(numfmt --to=iec "$(podman image inspect --format '{{.Size}}' "$base")"))"
echo "container image OK: links kept, no compilers or headers, the image's flowd sent a firefly" \
  "($(($(date +%s) - t0)) s)"
