# syntax=docker/dockerfile:1
# The metacontroller image: a release build of the binary on a distroless base, running as
# the unprivileged `nonroot` user (65532). The binary sits where upstream's image has it,
# /usr/bin/metacontroller, so manifests that set `command` keep working.
#
#   docker build -t metacontroller:0.1.0 .

FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target \
    cargo build --release --locked -p metacontroller \
    && install -D -m 0755 target/release/metacontroller /out/metacontroller

# glibc and libgcc only, no shell or package manager; `nonroot` runs as 65532:65532.
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /out/metacontroller /usr/bin/metacontroller
USER 65532:65532
# 9999: /metrics   8081: /healthz and /readyz
EXPOSE 9999 8081
ENTRYPOINT ["/usr/bin/metacontroller"]
