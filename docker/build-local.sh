#!/usr/bin/env bash
# Builds the forcebacklog image without pulling anything: a static (musl)
# binary from the host toolchain, then docker/Dockerfile.local, the same
# FROM-scratch final stage as the root Dockerfile.
#
#   docker/build-local.sh [TAG]        # default TAG: forcebacklog:local
#
# Needs: cargo with the <arch>-unknown-linux-musl target (rustup target add
# x86_64-unknown-linux-musl), musl-gcc (Debian package musl-tools) for
# ring's C code, and docker (Debian package docker.io) with a running
# daemon. The binary is built in target/image (FORCEBACKLOG_IMAGE_TARGET_DIR)
# so it never waits for, nor invalidates, the development build.
# Prints the image size on the last line.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
tag=${1:-forcebacklog:local}
target_dir=${FORCEBACKLOG_IMAGE_TARGET_DIR:-$root/target/image}

die() { echo "build-local: $*" >&2; exit 1; }

case "$(uname -m)" in
  x86_64 | amd64) arch=x86_64 ;;
  aarch64 | arm64) arch=aarch64 ;;
  *) die "unsupported machine $(uname -m): x86_64 and aarch64 only" ;;
esac
triple=$arch-unknown-linux-musl

command -v cargo >/dev/null || die "cargo not found (install Rust with rustup)"
command -v musl-gcc >/dev/null || die "musl-gcc not found (Debian package musl-tools)"
command -v docker >/dev/null || die "docker not found (Debian package docker.io)"
if command -v rustup >/dev/null && ! rustup target list --installed | grep -qx "$triple"; then
  die "the Rust target $triple is missing: rustup target add $triple"
fi

cd "$root"
echo "build-local: cargo build --release --target $triple (target dir $target_dir)" >&2
env "CC_${arch}_unknown_linux_musl=musl-gcc" CARGO_PROFILE_RELEASE_STRIP=symbols \
  cargo build --release --locked --target "$triple" --target-dir "$target_dir" --bin forcebacklog >&2
bin=$target_dir/$triple/release/forcebacklog

# FROM scratch has no loader: the binary must not ask for one.
if command -v readelf >/dev/null && readelf -lW "$bin" | grep -q 'program interpreter'; then
  die "$bin is dynamically linked; the image needs a static binary"
fi

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
cp "$bin" "$context/forcebacklog"
cp "$root/docker/Dockerfile.local" "$context/Dockerfile"
docker build --quiet -t "$tag" "$context" >&2
size=$(docker image inspect --format '{{.Size}}' "$tag")
echo "build-local: built $tag, $size bytes" >&2
echo "$tag $size"
