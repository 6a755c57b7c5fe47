#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# scripts/packages.sh is the one package list: the Dockerfile must use it, every name in it must
# be a Debian package, and the runtime list must cover every shared library flowd links.
set -euo pipefail
src=$1
flowd=$2
fail=0
grep -q 'scripts/packages.sh' "$src/Dockerfile" || { echo "Dockerfile does not use scripts/packages.sh"; fail=1; }
grep -q 'packages.sh install build' "$src/Dockerfile" || { echo "Dockerfile does not install the build list"; fail=1; }
grep -q 'packages.sh install runtime' "$src/Dockerfile" || { echo "Dockerfile does not install the runtime list"; fail=1; }
if grep -nE 'apt-get install[^\n]*[a-z]' "$src/Dockerfile" | grep -v packages.sh; then
  echo "Dockerfile installs packages outside scripts/packages.sh"; fail=1
fi
# One apt-cache call for the whole archive (one per package took minutes on a busy machine).
known=" $(apt-cache pkgnames | tr '\n' ' ') "
for kind in build runtime test image; do
  for p in $(bash "$src/scripts/packages.sh" "$kind"); do
    if [[ "$known" != *" $p "* ]]; then echo "$kind package '$p' is unknown to apt"; fail=1; fi
  done
done
runtime=" $(bash "$src/scripts/packages.sh" runtime | tr '\n' ' ') "
# Every library flowd itself needs (DT_NEEDED) must come from a listed runtime package; what those
# libraries need in turn, apt installs with them.
for lib in $(readelf -d "$flowd" | sed -n 's/.*NEEDED.*\[\(.*\)\]/\1/p'); do
  pkg=$(dpkg -S "/usr/lib/x86_64-linux-gnu/$lib" 2>/dev/null || dpkg -S "/lib/x86_64-linux-gnu/$lib" 2>/dev/null || true)
  pkg=${pkg%%:*}
  case "$pkg" in
    libc6|libgcc-s1|libstdc++6) continue ;;  # part of debian:bookworm-slim
    libasan8|libubsan1) continue ;;          # sanitizer builds only, never shipped
    "") echo "$lib: no Debian package owns it"; fail=1; continue ;;
  esac
  if [[ "$runtime" != *" $pkg "* ]]; then echo "$lib comes from $pkg, which is not in the runtime list"; fail=1; fi
done
[ $fail -eq 0 ] && echo "package lists agree: Dockerfile, apt, and the libraries flowd links"
exit $fail
