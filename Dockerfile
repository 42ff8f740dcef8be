# hashroll: a static-enough release binary on a distroless, non-root runtime.
# Build: docker build -t ghcr.io/hashroll/hashroll:0.1.0 .
FROM rust:1.95-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
COPY hack/versions.env ./hack/versions.env
RUN cargo build --release --locked --bin hashroll

FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/hashroll /usr/local/bin/hashroll
USER 65532:65532
EXPOSE 9443 9090
ENTRYPOINT ["/usr/local/bin/hashroll"]
CMD ["run"]
