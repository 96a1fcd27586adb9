# syntax=docker/dockerfile:1
#
# The forcebacklog image: one static binary (the webhook server, the CLI and
# the embedded LD_PRELOAD shim) on an empty base. The same image serves the
# webhook and is the injected `forcebacklog-install` init container.
#
#   docker build -t forcebacklog:dev .
#   docker buildx build --platform linux/amd64,linux/arm64 \
#     -t ghcr.io/forcebacklog/forcebacklog:0.1.0 --push .
#
# The build stage runs on the target platform (natively, or under QEMU with
# buildx), so the shim, which is built for <arch>-unknown-linux-gnu by
# build.rs, and the musl binary are both native builds; no cross linker.
# Without registry access, docker/build-local.sh builds the same final
# stage from a binary built on the host (docker/Dockerfile.local).

# The toolchain the project is built and tested with.
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-trixie AS build
# Set by buildx/BuildKit from --platform: amd64 or arm64.
ARG TARGETARCH
# musl-tools: musl-gcc, the C compiler for ring's C/assembly parts.
RUN apt-get update \
 && apt-get install -y --no-install-recommends musl-tools \
 && rm -rf /var/lib/apt/lists/*
RUN case "${TARGETARCH:-amd64}" in \
      amd64) arch=x86_64 ;; \
      arm64) arch=aarch64 ;; \
      *) echo "unsupported TARGETARCH ${TARGETARCH}: use amd64 or arm64" >&2; exit 1 ;; \
    esac \
 && echo "$arch" > /tmp/arch \
 && rustup target add "$arch-unknown-linux-musl"
WORKDIR /src
COPY . .
RUN --mount=type=cache,target=/usr/local/cargo/registry \
    --mount=type=cache,target=/src/target,id=forcebacklog-target-${TARGETARCH} \
    arch=$(cat /tmp/arch) \
 && triple="$arch-unknown-linux-musl" \
 && env "CC_${arch}_unknown_linux_musl=musl-gcc" \
        CARGO_PROFILE_RELEASE_STRIP=symbols \
        cargo build --release --locked --target "$triple" \
 && install -D -m 0755 "target/$triple/release/forcebacklog" /out/forcebacklog

# The final stage: nothing but the binary. Keep it identical to
# docker/Dockerfile.local.
FROM scratch
COPY --from=build /out/forcebacklog /forcebacklog
USER 65532:65532
ENTRYPOINT ["/forcebacklog"]
