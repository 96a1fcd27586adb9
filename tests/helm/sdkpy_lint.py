#!/usr/bin/env python3
"""Lint the forcebacklog Helm chart with a second Helm engine: the Go
library libhelm_sdkpy.so from the PyPI package helm-sdkpy, loaded directly
with cffi (the package's own Python wrapper needs Python >= 3.12; the C
interface below works from any Python 3 with cffi).

The engine is installed by tests/helm/install-helm-sdk.sh into
target/helm-sdk (or $FORCEBACKLOG_HELM_SDK_DIR), next to helm-python-sdk.

    sdkpy_lint.py [CHART]     lint CHART (default charts/forcebacklog)
    sdkpy_lint.py --version   print the library's version and its Helm

The library's lint takes only a chart path: it lints with the chart's own
values.yaml (checked against values.schema.json), and has no values or
--strict parameters. Strictness is applied here, as `helm lint --strict`
does: any warning or error fails. The library passes each message's
severity and path; most messages lose their text (the Go error serialises
to `{}`).

Exit 0 when the chart lints clean, 1 on any finding, 2 when the engine is
missing or does not load.
"""

import json
import os
import platform
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SDK = Path(os.environ.get("FORCEBACKLOG_HELM_SDK_DIR", str(ROOT / "target" / "helm-sdk")))
sys.path.insert(0, str(SDK))

# The part of the library's C interface (libhelm_sdkpy.h) used here.
CDEF = """
typedef unsigned long long helm_sdkpy_handle;
int helm_sdkpy_config_create(const char *namespace, const char *kubeconfig,
    const char *kubecontext, const char *options_json, helm_sdkpy_handle *handle_out);
void helm_sdkpy_config_destroy(helm_sdkpy_handle handle);
int helm_sdkpy_lint(helm_sdkpy_handle handle, const char *chart_path, char **result_json);
const char *helm_sdkpy_last_error(void);
void helm_sdkpy_free(void *ptr);
const char *helm_sdkpy_version_string(void);
"""

# Helm's lint severities (pkg/chart/.../lint/support).
SEVERITY = {0: "UNKNOWN", 1: "INFO", 2: "WARNING", 3: "ERROR"}

INSTALL = "run tests/helm/install-helm-sdk.sh (PyPI packages helm-sdkpy and cffi)"


class EngineMissing(Exception):
    """The library or cffi is not installed or does not load."""


def library_path():
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    return SDK / "helm_sdkpy" / "_lib" / f"linux-{arch}" / "libhelm_sdkpy.so"


def load():
    try:
        from cffi import FFI
    except ImportError as err:
        raise EngineMissing(f"cffi is not importable ({err})") from err
    path = library_path()
    if not path.is_file():
        raise EngineMissing(f"{path} does not exist")
    ffi = FFI()
    ffi.cdef(CDEF)
    try:
        return ffi, ffi.dlopen(str(path))
    except OSError as err:
        raise EngineMissing(f"{path} does not load: {err}") from err


def helm_version(path):
    """The Helm module the library was built with (its Go build info)."""
    found = re.search(rb"\thelm\.sh/helm/(v\d+)\t(v[0-9][^\t\s]*)", path.read_bytes())
    return f"helm.sh/helm/{found[1].decode()} {found[2].decode()}" if found else "unknown"


def last_error(ffi, lib):
    ptr = lib.helm_sdkpy_last_error()
    # The message belongs to the library: copy it, never free it.
    return ffi.string(ptr).decode("utf-8", "replace") if ptr != ffi.NULL else "no message"


def lint(ffi, lib, chart):
    """Runs the library's lint on CHART: the decoded result object."""
    handle = ffi.new("helm_sdkpy_handle *")
    # No kubeconfig: lint never talks to a cluster.
    if lib.helm_sdkpy_config_create(b"forcebacklog", ffi.NULL, ffi.NULL, b"{}", handle) != 0:
        raise RuntimeError(f"config_create failed: {last_error(ffi, lib)}")
    try:
        out = ffi.new("char **")
        if lib.helm_sdkpy_lint(handle[0], str(chart).encode(), out) != 0:
            raise RuntimeError(f"lint of {chart} failed: {last_error(ffi, lib)}")
        try:
            return json.loads(ffi.string(out[0]).decode("utf-8"))
        finally:
            lib.helm_sdkpy_free(out[0])
    finally:
        lib.helm_sdkpy_config_destroy(handle[0])


def describe(err):
    if err in ({}, None, ""):
        return "(no text from the library)"
    return err if isinstance(err, str) else json.dumps(err)


def main(argv):
    if len(argv) > 2 or (len(argv) == 2 and argv[1] in ("-h", "--help")):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        ffi, lib = load()
    except EngineMissing as err:
        print(f"sdkpy_lint.py: the helm-sdkpy engine is missing: {err}; {INSTALL}", file=sys.stderr)
        return 2
    version = ffi.string(lib.helm_sdkpy_version_string()).decode()
    if argv[1:] == ["--version"]:
        print(f"{version} {helm_version(library_path())}")
        return 0
    chart = Path(argv[1]) if len(argv) == 2 else ROOT / "charts" / "forcebacklog"
    print(f"engine: {version} ({helm_version(library_path())}) from {library_path()}")
    try:
        report = lint(ffi, lib, chart.resolve())
    except RuntimeError as err:
        print(f"lint error: {err}")
        return 1
    messages = report.get("Messages") or []
    errors = report.get("Errors") or []
    for m in messages:
        severity = SEVERITY.get(m.get("Severity"), str(m.get("Severity")))
        print(f"lint: [{severity}] {m.get('Path') or '(chart)'}: {describe(m.get('Err'))}")
    # Strict, as `helm lint --strict`: warnings fail too; INFO does not.
    findings = [m for m in messages if m.get("Severity", 0) >= 2]
    linted = report.get("TotalChartsLinted")
    print(
        f"linted {linted} chart(s): {len(messages)} message(s), "
        f"{len(findings)} warning(s)/error(s), {len(errors)} error(s)"
    )
    if linted != 1:
        print(f"lint error: expected 1 chart linted in {chart}, got {linted}")
        return 1
    return 1 if findings or errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
