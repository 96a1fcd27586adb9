#!/usr/bin/env python3
"""Lint and render the forcebacklog Helm chart with Helm's own engine.

The engine is the helm-python-sdk package (Helm's Go library, no helm
binary, no cluster), installed by tests/helm/install-helm-sdk.sh into
target/helm-sdk (or $FORCEBACKLOG_HELM_SDK_DIR).

    chart.py lint   CHART [VALUES_JSON]   strict lint; exit 1 on any finding
    chart.py render CHART [VALUES_JSON]   print {template: manifest} as JSON
    chart.py schema CHART [VALUES_JSON]   validate values only; exit 1 if invalid
    chart.py schema-many CHART LIST_JSON  validate each values object of the list;
                                          print a JSON list of null (valid) or the error
    chart.py render-cluster CHART VALUES_JSON OBJECTS_JSON
        render as an upgrade (an install when OBJECTS_JSON is []) where
        `lookup` reads the core/v1 objects OBJECTS_JSON from a minimal API
        server on loopback (tests/helm/apiserver.py); print
        {"manifests": {template: manifest}, "requests": [path, ...]}

Release name `forcebacklog`, namespace `forcebacklog` unless the values JSON
has the keys `__name` / `__namespace` (removed before use). Exit 2 when the
engine is missing.
"""

import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SDK = os.environ.get("FORCEBACKLOG_HELM_SDK_DIR", str(ROOT / "target" / "helm-sdk"))
sys.path.insert(0, SDK)

# The lowest Kubernetes version the chart supports (Chart.yaml kubeVersion).
KUBE_VERSION = "v1.23.0"


def main(argv):
    commands = {
        "lint": (3, 4),
        "render": (3, 4),
        "schema": (3, 4),
        "schema-many": (4,),
        "render-cluster": (5,),
    }
    if len(argv) < 2 or len(argv) not in commands.get(argv[1], ()):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        import helm_python
    except ImportError as err:
        print(
            f"chart.py: the Helm engine is not installed in {SDK} ({err}); "
            "run tests/helm/install-helm-sdk.sh (PyPI package helm-python-sdk)",
            file=sys.stderr,
        )
        return 2
    command, chart = argv[1], argv[2]
    if command == "schema-many":
        loaded = helm_python.Chart.load(chart)
        verdicts = []
        for values in json.loads(argv[3]):
            try:
                loaded.validate_schema(values)
                verdicts.append(None)
            except (helm_python.HelmError, ValueError) as err:
                verdicts.append(str(err))
        json.dump(verdicts, sys.stdout)
        return 0
    values = json.loads(argv[3]) if len(argv) >= 4 else {}
    name = values.pop("__name", "forcebacklog")
    namespace = values.pop("__namespace", "forcebacklog")

    if command == "lint":
        report = helm_python.lint(
            chart, values, strict=True, namespace=namespace, kube_version=KUBE_VERSION
        )
        # Severity 1 is informational (e.g. "icon is recommended").
        findings = [m for m in report["messages"] if m["severity"] >= 2]
        for m in report["messages"]:
            print(f"lint: severity={m['severity']} {m['path']}: {m['error']}")
        for err in report["errors"]:
            print(f"lint error: {err}")
        return 1 if findings or report["errors"] else 0

    loaded = helm_python.Chart.load(chart)
    try:
        loaded.validate_schema(values)
        if command == "schema":
            print("schema: ok")
            return 0
        if command == "render-cluster":
            rendered = render_cluster(helm_python, loaded, values, name, namespace, argv[4])
        else:
            rendered = loaded.render(values, name=name, namespace=namespace, is_install=True)
    except (helm_python.HelmError, ValueError) as err:
        print(f"{command}: {err}", file=sys.stderr)
        return 1
    json.dump(rendered, sys.stdout, indent=1, sort_keys=True)
    return 0


def render_cluster(helm_python, chart, values, name, namespace, objects_json):
    """Helm's cluster-aware render (`lookup` live) against ApiServer."""
    from apiserver import ApiServer

    objects = json.loads(objects_json)
    with ApiServer(objects) as api:
        config = helm_python.Config(kubeconfig_content=api.kubeconfig(), namespace=namespace)
        try:
            manifests = config.render(
                chart,
                values,
                name=name,
                namespace=namespace,
                is_install=not objects,
                is_upgrade=bool(objects),
            )
        finally:
            config.close()
        return {"manifests": manifests, "requests": list(api.requests)}


if __name__ == "__main__":
    sys.exit(main(sys.argv))
