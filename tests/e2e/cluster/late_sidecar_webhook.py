#!/usr/bin/env python3
"""A second mutating admission webhook for the real-API-server e2e test.

It plays another injector (a service mesh, say) that runs AFTER
forcebacklog and adds an app container named `late` to every pod it is
sent, so the API server must re-invoke forcebacklog (reinvocationPolicy:
IfNeeded) for the late container to get the shim.

    late_sidecar_webhook.py PORT CERT KEY IMAGE

Serves HTTPS on 127.0.0.1:PORT (run it in the cluster's network namespace:
tests/e2e/cluster.sh exec python3 ...).
"""
import base64
import http.server
import json
import ssl
import sys


def review_response(review, image):
    request = review["request"]
    pod = request["object"]
    names = [c["name"] for c in pod["spec"].get("containers", [])]
    patch = []
    if "late" not in names:
        patch.append({
            "op": "add",
            "path": "/spec/containers/-",
            "value": {
                "name": "late",
                "image": image,
                "imagePullPolicy": "Never",
                "args": ["8082"],
                # Pod Security "restricted" judges the pod after every
                # mutating webhook: the late container complies too.
                "securityContext": {
                    "allowPrivilegeEscalation": False,
                    "readOnlyRootFilesystem": True,
                    "capabilities": {"drop": ["ALL"]},
                },
            },
        })
    response = {"uid": request["uid"], "allowed": True}
    if patch:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    return {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "response": response}


class Handler(http.server.BaseHTTPRequestHandler):
    image = ""

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        review = json.loads(self.rfile.read(length))
        body = json.dumps(review_response(review, self.image)).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        sys.stderr.write("late-sidecar: " + (fmt % args) + "\n")


def main():
    port, cert, key, image = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    Handler.image = image
    server = http.server.ThreadingHTTPServer(("127.0.0.1", int(port)), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    server.socket = context.wrap_socket(server.socket, server_side=True)
    print("late-sidecar: listening", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
