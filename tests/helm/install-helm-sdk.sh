#!/usr/bin/env bash
# Installs real Helm engines for the chart tests. Idempotent.
#  - helm-python-sdk (PyPI): Helm's Go library (Helm v4) as a shared object
#    with offline lint and template rendering (tests/helm/chart.py);
#  - helm-sdkpy (PyPI): a second build of Helm's Go library,
#    libhelm_sdkpy.so, loaded with cffi by tests/helm/sdkpy_lint.py. Its
#    wheel declares Python >= 3.12, but its C interface works from any
#    Python 3: the wheel is unpacked, not pip-installed, and cffi is
#    installed into the same directory when the system has none.
#
#   tests/helm/install-helm-sdk.sh            # into target/helm-sdk
#   FORCEBACKLOG_HELM_SDK_DIR=/opt/helm-sdk tests/helm/install-helm-sdk.sh
#
# Needs python3 (>= 3.10) and pip. The cargo tests find the engine in the
# same directory (tests/chart_*.rs).
set -euo pipefail

version=0.2.2
sdkpy_version=0.1.32
cffi_version=2.0.0
root=$(cd "$(dirname "$0")/../.." && pwd)
dest=${FORCEBACKLOG_HELM_SDK_DIR:-$root/target/helm-sdk}

command -v python3 >/dev/null || { echo "install-helm-sdk: python3 not found (Debian package python3)" >&2; exit 1; }

need_pip() {
  python3 -m pip --version >/dev/null 2>&1 || { echo "install-helm-sdk: pip not found (Debian package python3-pip)" >&2; exit 1; }
}

# A wheel is a zip: download and unpack it (no pip install, so no clash
# with an externally managed system Python). $1: requirement; then extra
# pip download arguments, if any.
unpack_wheel() {
  local wheels
  wheels=$(mktemp -d "$work/wheel.XXXXXX")
  PIP_ROOT_USER_ACTION=ignore python3 -m pip download --quiet --disable-pip-version-check \
    --no-deps --only-binary=:all: "${@:2}" --dest "$wheels" "$1"
  python3 -c 'import sys, zipfile; [zipfile.ZipFile(w).extractall(sys.argv[1]) for w in sys.argv[2:]]' "$dest" "$wheels"/*.whl
}

installed() {
  PYTHONPATH=$dest python3 -c '
import sys, importlib.metadata as m, helm_python
sys.exit(0 if m.version("helm-python-sdk") == sys.argv[1] else 1)
' "$version" 2>/dev/null
}

sdkpy_installed() {
  local reported
  reported=$(FORCEBACKLOG_HELM_SDK_DIR=$dest python3 "$root/tests/helm/sdkpy_lint.py" --version 2>/dev/null) || return 1
  [[ $reported == "helm-sdkpy-v$sdkpy_version "* ]]
}

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# 1. helm-python-sdk (a new version starts from an empty directory).
if installed; then
  echo "install-helm-sdk: helm-python-sdk $version already in $dest"
else
  need_pip
  rm -rf "$dest"
  mkdir -p "$dest"
  unpack_wheel "helm-python-sdk==$version"
  installed || { echo "install-helm-sdk: helm-python-sdk $version did not load from $dest" >&2; exit 1; }
fi
PYTHONPATH=$dest python3 -c 'import helm_python as h; print("install-helm-sdk: Helm", h.helm_sdk_version(), "from", h.library_path)'

# 2. cffi for helm-sdkpy: the system's, else into $dest (--target is
# allowed on an externally managed Python).
if PYTHONPATH=$dest python3 -c 'import cffi' 2>/dev/null; then
  echo "install-helm-sdk: cffi $(PYTHONPATH=$dest python3 -c 'import cffi; print(cffi.__version__)') already importable"
else
  need_pip
  PIP_ROOT_USER_ACTION=ignore python3 -m pip install --quiet --disable-pip-version-check \
    --only-binary=:all: --target "$dest" "cffi==$cffi_version"
  PYTHONPATH=$dest python3 -c 'import cffi' || { echo "install-helm-sdk: cffi $cffi_version did not import from $dest" >&2; exit 1; }
fi

# 3. helm-sdkpy: the wheel (pure "py3-none-any", with the Go library
# inside) for Python 3.12, unpacked into $dest/helm_sdkpy.
if sdkpy_installed; then
  echo "install-helm-sdk: helm-sdkpy $sdkpy_version already in $dest"
else
  need_pip
  rm -rf "$dest/helm_sdkpy" "$dest"/helm_sdkpy-*.dist-info
  unpack_wheel "helm-sdkpy==$sdkpy_version" --python-version 3.12
  sdkpy_installed || {
    echo "install-helm-sdk: helm-sdkpy $sdkpy_version did not load from $dest:" >&2
    FORCEBACKLOG_HELM_SDK_DIR=$dest python3 "$root/tests/helm/sdkpy_lint.py" --version >&2 || true
    exit 1
  }
fi
echo "install-helm-sdk: $(FORCEBACKLOG_HELM_SDK_DIR=$dest python3 "$root/tests/helm/sdkpy_lint.py" --version) from $dest/helm_sdkpy"
