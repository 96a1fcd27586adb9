#!/usr/bin/env bash
# Builds the real control-plane binaries the end-to-end tests run, from
# their published Go modules, into a cache outside the repository:
#
#   kube-apiserver, kube-controller-manager, kubectl   k8s.io/kubernetes (kube/)
#   etcd                                              go.etcd.io/etcd/server/v3 (etcd/)
#   helm                                              helm.sh/helm/v3 (helm/)
#
#   tests/e2e/cluster/build.sh        # prints the directory holding the five binaries
#
# The cache directory is keyed by the pinned versions and a hash of the
# three go.mod/go.sum pairs, so a version bump builds anew and an unchanged
# tree reuses the binaries without calling Go at all. GOMODCACHE and
# GOCACHE (Go's defaults, under $HOME) keep downloads and compiled packages
# for the next build. Binaries are static (CGO_ENABLED=0) and stamped with
# their version: unstamped, Kubernetes reports v0.0.0 and Helm's
# kubeVersion checks fail.
#
# Environment: FORCEBACKLOG_CACHE (default ~/.cache/forcebacklog), GO (the
# go command; default: go on PATH, else /usr/local/go/bin/go).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
die() { echo "cluster/build: $*" >&2; exit 1; }

GO=${GO:-$(command -v go || true)}
if [ -z "$GO" ] && [ -x /usr/local/go/bin/go ]; then GO=/usr/local/go/bin/go; fi
if [ -z "$GO" ] || [ ! -x "$GO" ]; then
  die "the Go toolchain is missing (go on PATH or /usr/local/go/bin/go; Go >= 1.24, https://go.dev/dl or Debian golang)"
fi

version_of() { awk -v m="$1" '$1 == m { print $2; exit } $1 == "require" && $2 == m { print $3; exit }' "$2"; }
kube_version=$(version_of k8s.io/kubernetes "$here/kube/go.mod")
etcd_version=$(version_of go.etcd.io/etcd/server/v3 "$here/etcd/go.mod")
helm_version=$(version_of helm.sh/helm/v3 "$here/helm/go.mod")
if [ -z "$kube_version" ] || [ -z "$etcd_version" ] || [ -z "$helm_version" ]; then
  die "could not read the pinned versions from $here/{kube,etcd,helm}/go.mod"
fi

hash=$(cat "$here"/kube/go.mod "$here"/kube/go.sum "$here"/etcd/go.mod "$here"/etcd/go.sum \
  "$here"/etcd/main.go "$here"/helm/go.mod "$here"/helm/go.sum "$0" | sha256sum | cut -c1-12)
cache=${FORCEBACKLOG_CACHE:-$HOME/.cache/forcebacklog}
out=$cache/cluster/kube-$kube_version-etcd-$etcd_version-helm-$helm_version-$hash
bins=(kube-apiserver kube-controller-manager kubectl etcd helm)

complete() { for b in "${bins[@]}"; do [ -x "$out/$b" ] || return 1; done; }
if complete; then
  echo "$out"
  exit 0
fi

mkdir -p "$out.tmp"
export CGO_ENABLED=0 GOFLAGS=-buildvcs=false GOTOOLCHAIN=local
# Version stamps: k8s.io/component-base/version is what the binaries and
# kubectl report; client-go's copy is what clients send as User-Agent.
minor=${kube_version#v1.}; minor=${minor%%.*}
stamp=""
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  stamp="$stamp -X $p.gitVersion=$kube_version -X $p.gitMajor=1 -X $p.gitMinor=$minor -X $p.gitTreeState=clean"
done
build() { # DIR LDFLAGS PACKAGES...
  local dir=$1 ldflags=$2; shift 2
  local t0=$SECONDS
  (cd "$here/$dir" && "$GO" build -trimpath -ldflags "-s -w $ldflags" -o "$out.tmp/" "$@") \
    || die "go build in $here/$dir failed (see above)"
  echo "cluster/build: $dir built in $((SECONDS - t0)) s" >&2
}
echo "cluster/build: building Kubernetes $kube_version, etcd $etcd_version and Helm $helm_version into $out (a cold build takes 10-30 minutes on 2 cores)" >&2
if [ ! -x "$out.tmp/kube-apiserver" ] || [ ! -x "$out.tmp/kube-controller-manager" ] || [ ! -x "$out.tmp/kubectl" ]; then
  build kube "$stamp" k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl
fi
# The module is named .../etcd, so `go build .` writes a binary named etcd.
[ -x "$out.tmp/etcd" ] || build etcd "" .
helm_stamp="-X helm.sh/helm/v3/internal/version.version=$helm_version -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
[ -x "$out.tmp/helm" ] || build helm "$helm_stamp" helm.sh/helm/v3/cmd/helm
complete_tmp() { for b in "${bins[@]}"; do [ -x "$out.tmp/$b" ] || return 1; done; }
complete_tmp || die "the build did not produce all of ${bins[*]} in $out.tmp"
rm -rf "$out" && mv "$out.tmp" "$out"
echo "$out"
