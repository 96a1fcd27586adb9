#!/usr/bin/env bash
# Installs a real Helm engine for the chart tests: the PyPI package
# helm-python-sdk, which ships Helm's Go library (Helm v4) as a shared
# object with offline lint and template rendering. Idempotent.
#
#   tests/helm/install-helm-sdk.sh            # into target/helm-sdk
#   FORCEBACKLOG_HELM_SDK_DIR=/opt/helm-sdk tests/helm/install-helm-sdk.sh
#
# Needs python3 (>= 3.10) and pip. The cargo tests find the engine in the
# same directory (tests/chart_*.rs).
set -euo pipefail

version=0.2.2
root=$(cd "$(dirname "$0")/../.." && pwd)
dest=${FORCEBACKLOG_HELM_SDK_DIR:-$root/target/helm-sdk}

command -v python3 >/dev/null || { echo "install-helm-sdk: python3 not found (Debian package python3)" >&2; exit 1; }

installed() {
  PYTHONPATH=$dest python3 -c '
import sys, importlib.metadata as m, helm_python
sys.exit(0 if m.version("helm-python-sdk") == sys.argv[1] else 1)
' "$version" 2>/dev/null
}

if installed; then
  echo "install-helm-sdk: helm-python-sdk $version already in $dest"
  exit 0
fi

python3 -m pip --version >/dev/null 2>&1 || { echo "install-helm-sdk: pip not found (Debian package python3-pip)" >&2; exit 1; }
# A wheel is a zip: download and unpack it (no pip install, so no clash
# with an externally managed system Python).
wheels=$(mktemp -d)
trap 'rm -rf "$wheels"' EXIT
PIP_ROOT_USER_ACTION=ignore python3 -m pip download --quiet --disable-pip-version-check \
  --no-deps --only-binary=:all: --dest "$wheels" "helm-python-sdk==$version"
rm -rf "$dest"
mkdir -p "$dest"
python3 -c 'import sys, zipfile; [zipfile.ZipFile(w).extractall(sys.argv[1]) for w in sys.argv[2:]]' "$dest" "$wheels"/*.whl
installed || { echo "install-helm-sdk: helm-python-sdk $version did not load from $dest" >&2; exit 1; }
PYTHONPATH=$dest python3 -c 'import helm_python as h; print("install-helm-sdk: Helm", h.helm_sdk_version(), "from", h.library_path)'
