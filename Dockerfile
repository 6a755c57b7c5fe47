# SPDX-License-Identifier: Apache-2.0
# docker build -t flowd .
# docker run --network=host --cap-add=NET_ADMIN --cap-add=BPF --cap-add=PERFMON -v /etc/flowd:/etc/flowd flowd
FROM debian:bookworm-slim AS build
COPY scripts/packages.sh /tmp/packages.sh
RUN bash /tmp/packages.sh install build && rm -rf /var/lib/apt/lists/*
COPY . /src
RUN cmake -S /src -B /build -DCMAKE_BUILD_TYPE=Release -DCMAKE_INSTALL_PREFIX=/usr \
      -DFLOWD_BUILD_TESTS=OFF -DFLOWD_BUILD_BENCH=OFF \
 && cmake --build /build -j"$(nproc)" \
 && DESTDIR=/out cmake --install /build

FROM debian:bookworm-slim
LABEL org.opencontainers.image.title="flowd" \
      org.opencontainers.image.description="Scitags flow and packet marking service (C++)" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY scripts/packages.sh /tmp/packages.sh
RUN bash /tmp/packages.sh install runtime && rm -rf /var/lib/apt/lists/* /tmp/packages.sh
COPY --from=build /out/ /
ENTRYPOINT ["/usr/sbin/flowd"]
CMD ["-c", "/etc/flowd/flowd.cfg"]
