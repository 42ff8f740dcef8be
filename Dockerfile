# hashroll: the release binary on a distroless-like, non-root runtime made of Debian's
# packages. Build: docker build --build-arg REVISION="$(git rev-parse HEAD)" -t ghcr.io/hashroll/hashroll:0.1.0 .
# Without a registry, `make image` builds the same image from this file's final stage (its
# USER, EXPOSE, LABEL, ENTRYPOINT and CMD lines are read by hack/build-image.sh, its base
# is the same hack/image-rootfs.sh) and writes it as an OCI archive.
FROM debian:bookworm-slim AS rootfs
COPY hack/image-rootfs.sh /image-rootfs.sh
RUN apt-get update && /image-rootfs.sh /rootfs && rm -rf /var/lib/apt/lists/*

FROM rust:1.95-bookworm AS build
WORKDIR /src
# every workspace member and declared target, or cargo cannot load the workspace
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY harness ./harness
COPY benches ./benches
COPY hack/versions.env ./hack/versions.env
RUN cargo build --release --locked --bin hashroll

FROM scratch
ARG VERSION=0.1.0
ARG REVISION=unknown
COPY --from=rootfs /rootfs/ /
COPY --from=build /src/target/release/hashroll /usr/local/bin/hashroll
USER 65532:65532
EXPOSE 9443 9090
LABEL org.opencontainers.image.title="hashroll" \
      org.opencontainers.image.version="$VERSION" \
      org.opencontainers.image.revision="$REVISION" \
      org.opencontainers.image.source="https://github.com/hashroll/hashroll" \
      org.opencontainers.image.licenses="Apache-2.0"
ENTRYPOINT ["/usr/local/bin/hashroll"]
CMD ["run"]
