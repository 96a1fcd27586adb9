"""A minimal, read-only Kubernetes API on loopback for Helm's `lookup`.

Helm's `lookup` asks the API server two things: the discovery document of
the group/version (`GET /api/v1`, to map a kind to its resource), then the
object (`GET /api/v1/namespaces/NS/secrets/NAME`). This server answers
exactly that for core/v1 objects it is given, `404 NotFound` (a Status, as
the real API server sends it) for anything else, and records every request
path. Plain HTTP on 127.0.0.1, a free port.

    with ApiServer([secret]) as api:
        config = helm_python.Config(kubeconfig_content=api.kubeconfig())
        ...
        api.requests   # ["/api/v1?timeout=32s", "/api/v1/namespaces/..."]
"""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

# core/v1 kinds this server can serve: kind -> resource (plural).
CORE_V1 = {"Secret": "secrets", "ConfigMap": "configmaps"}


def _status(code, reason, message):
    return {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "reason": reason,
        "message": message,
        "code": code,
    }


class ApiServer:
    """Serves `objects` (core/v1 dicts with kind and metadata.name/namespace)."""

    def __init__(self, objects):
        self.requests = []
        self._objects = {}
        for obj in objects:
            kind = obj.get("kind")
            if kind not in CORE_V1:
                raise ValueError(f"apiserver: cannot serve kind {kind!r}; only {sorted(CORE_V1)}")
            meta = obj.get("metadata") or {}
            key = (CORE_V1[kind], meta.get("namespace", "default"), meta.get("name"))
            self._objects[key] = obj
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def _handler(self):
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's name)
                api.requests.append(self.path)
                code, body = api._answer(urlsplit(self.path).path)
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        return Handler

    def _answer(self, path):
        parts = [p for p in path.split("/") if p]
        if parts == ["api", "v1"]:
            resources = [
                {
                    "name": plural,
                    "singularName": kind.lower(),
                    "namespaced": True,
                    "kind": kind,
                    "verbs": ["get", "list"],
                }
                for kind, plural in CORE_V1.items()
            ]
            return 200, {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": "v1",
                "resources": resources,
            }
        if len(parts) == 6 and parts[:3] == ["api", "v1", "namespaces"]:
            key = (parts[4], parts[3], parts[5])
            if key in self._objects:
                return 200, self._objects[key]
            return 404, _status(404, "NotFound", f'{parts[4]} "{parts[5]}" not found')
        return 404, _status(404, "NotFound", f"the server could not find {path}")

    def kubeconfig(self):
        """A kubeconfig (YAML) that points at this server."""
        host, port = self._server.server_address[:2]
        return json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "local", "cluster": {"server": f"http://{host}:{port}"}}],
                "users": [{"name": "local", "user": {}}],
                "contexts": [{"name": "local", "context": {"cluster": "local", "user": "local"}}],
                "current-context": "local",
            }
        )

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        return False
