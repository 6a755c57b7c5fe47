# SPDX-License-Identifier: Apache-2.0
# docker build -t flowd .          (or: podman build -t flowd .)
# docker run -d --network=host -v /run/flowd:/run/flowd flowd
# The README's "Container image" section has the flags for the ebpf backend and your own flowd.cfg.
# BASE: any Debian 12 image; scripts/make-base-image.sh makes debian:bookworm-slim with debootstrap
# where no image registry is reachable.
ARG BASE=debian:bookworm-slim

FROM ${BASE} AS build
COPY scripts/packages.sh /tmp/packages.sh
RUN bash /tmp/packages.sh install build && rm -rf /var/lib/apt/lists/*
COPY . /src
# The commit the flowd_build_info metric names (the context has no .git): --build-arg FLOWD_COMMIT=$(git rev-parse --short=12 HEAD)
ARG FLOWD_COMMIT=unknown
# Only the daemon. The compiler cache outlives the image build (BuildKit's and buildah's cache mount),
# so a rebuild after a change compiles only what changed.
ENV CCACHE_DIR=/root/.ccache CCACHE_MAXSIZE=1G
RUN --mount=type=cache,target=/root/.ccache,id=flowd-ccache \
    cmake -S /src -B /build -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
      -DFLOWD_BUILD_TESTS=OFF -DFLOWD_BUILD_BENCH=OFF \
      -DCMAKE_C_COMPILER_LAUNCHER=ccache -DCMAKE_CXX_COMPILER_LAUNCHER=ccache >/dev/null \
 && FLOWD_COMMIT=${FLOWD_COMMIT} cmake --build /build -j"$(nproc)" --target flowd \
 && DESTDIR=/out cmake --install /build \
 && strip --strip-unneeded /out/usr/sbin/flowd \
 && { ccache --show-stats | grep -iE '^ *(hits|misses)' || true; }

# The image: the base, flowd's shared libraries, flowd and its configuration. Only named files come
# from the build stage (a whole tree copied onto / would replace the base's /lib -> usr/lib link).
FROM ${BASE}
LABEL org.opencontainers.image.title="flowd" \
      org.opencontainers.image.description="Scitags flow and packet marking service (C++)" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY scripts/packages.sh /tmp/packages.sh
RUN bash /tmp/packages.sh install runtime && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin \
      /var/log/apt /var/log/dpkg.log /tmp/packages.sh
COPY --from=build /out/usr/sbin/flowd /usr/sbin/flowd
COPY --from=build /out/usr/share/doc/flowd/ /usr/share/doc/flowd/
COPY etc/flowd-container.cfg /etc/flowd/flowd.cfg
RUN mkdir -p /run/flowd /var/cache/flowd && /usr/sbin/flowd --check-config -c /etc/flowd/flowd.cfg
ENTRYPOINT ["/usr/sbin/flowd"]
CMD ["-c", "/etc/flowd/flowd.cfg"]
