#!/usr/bin/env bash
# End to end on a real Kubernetes cluster (kind): build and load the image,
# `helm install` the chart, opt in one Deployment by annotation and one
# namespace by label, and read the listen queues with `ss` in the pods'
# network namespaces. Tears the cluster down at the end.
#
#   tests/e2e/kind.sh
#
# Needs kind, kubectl, helm and docker. Without kind it prints
# "kind not found, skipped" and exits 0.
#
# Environment:
#   KIND_CLUSTER=name      cluster name (default forcebacklog-e2e)
#   KEEP_CLUSTER=1         keep the cluster afterwards (and reuse one that exists)
#   IMAGE_BUILD=local      build with docker/build-local.sh instead of the
#                          root Dockerfile (no base image pull)
#   APP_IMAGE_GLIBC, APP_IMAGE_MUSL
#                          the apps (default python:3.12-slim and
#                          python:3.12-alpine: `python3 -m http.server`
#                          listens with a hard-coded backlog of 5)
set -euo pipefail

if ! command -v kind >/dev/null 2>&1; then
  echo "kind not found, skipped (install kind, kubectl, helm and docker to run this test)"
  exit 0
fi
for tool in kubectl helm docker; do
  command -v "$tool" >/dev/null 2>&1 || { echo "kind.sh: $tool not found" >&2; exit 1; }
done

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
cluster=${KIND_CLUSTER:-forcebacklog-e2e}
image_repo=ghcr.io/forcebacklog/forcebacklog
image_tag=e2e
image=$image_repo:$image_tag
app_glibc=${APP_IMAGE_GLIBC:-python:3.12-slim}
app_musl=${APP_IMAGE_MUSL:-python:3.12-alpine}
release_ns=forcebacklog
annotated_backlog=1024
default_backlog=512
app_backlog=5
start=$(date +%s)

log() { printf '\n==> [%ss] %s\n' "$(($(date +%s) - start))" "$*"; }
fail() { echo "kind.sh: FAILED: $*" >&2; exit 1; }

teardown() {
  local code=$?
  if [ "$code" -ne 0 ]; then
    echo "kind.sh: diagnostics" >&2
    kubectl get pods -A -o wide >&2 || true
    kubectl -n "$release_ns" logs -l app.kubernetes.io/name=forcebacklog --tail=50 >&2 || true
  fi
  if [ "${KEEP_CLUSTER:-0}" != 1 ]; then
    log "deleting cluster $cluster"
    kind delete cluster --name "$cluster" || true
  fi
  exit "$code"
}

log "cluster $cluster"
if kind get clusters 2>/dev/null | grep -qx "$cluster"; then
  [ "${KEEP_CLUSTER:-0}" = 1 ] || fail "cluster $cluster exists; delete it or set KEEP_CLUSTER=1"
else
  kind create cluster --name "$cluster" --config deploy/kind/cluster.yaml --wait 180s
fi
trap teardown EXIT
kubectl config use-context "kind-$cluster" >/dev/null

log "image $image"
if [ "${IMAGE_BUILD:-docker}" = local ]; then
  docker/build-local.sh "$image"
else
  docker build -t "$image" .
fi
docker pull -q "$app_glibc"
docker pull -q "$app_musl"
kind load docker-image --name "$cluster" "$image" "$app_glibc" "$app_musl"

log "helm install"
helm upgrade --install forcebacklog charts/forcebacklog \
  --namespace "$release_ns" --create-namespace \
  --set image.repository="$image_repo" --set image.tag="$image_tag" \
  --set initContainer.imagePullPolicy=IfNotPresent \
  --set defaultBacklog="$default_backlog" \
  --wait --timeout 180s
kubectl -n "$release_ns" rollout status deploy/forcebacklog --timeout=120s
ready=$(kubectl -n "$release_ns" get deploy/forcebacklog -o jsonpath='{.status.readyReplicas}')
[ "$ready" = 2 ] || fail "expected 2 ready webhook replicas, got $ready"

log "upgrade keeps the generated certificate"
cert_before=$(kubectl -n "$release_ns" get secret forcebacklog-tls -o jsonpath='{.data.tls\.crt}')
helm upgrade forcebacklog charts/forcebacklog --namespace "$release_ns" --reuse-values --wait --timeout 180s
cert_after=$(kubectl -n "$release_ns" get secret forcebacklog-tls -o jsonpath='{.data.tls\.crt}')
[ -n "$cert_before" ] || fail "the chart created no certificate"
[ "$cert_before" = "$cert_after" ] || fail "helm upgrade rotated the certificate"
ca_bundle=$(kubectl get mutatingwebhookconfiguration forcebacklog -o jsonpath='{.webhooks[0].clientConfig.caBundle}')
ca_secret=$(kubectl -n "$release_ns" get secret forcebacklog-tls -o jsonpath='{.data.ca\.crt}')
[ "$ca_bundle" = "$ca_secret" ] || fail "the webhook's caBundle is not the Secret's CA"

# deployment NAMESPACE NAME IMAGE ANNOTATIONS_JSON: a python http.server
# Deployment with the pod-template annotations given.
deployment() {
  cat <<EOF
apiVersion: apps/v1
kind: Deployment
metadata:
  name: $2
  namespace: $1
spec:
  replicas: 1
  selector:
    matchLabels: {app: $2}
  template:
    metadata:
      labels: {app: $2}
      annotations: $4
    spec:
      containers:
        - name: web
          image: $3
          imagePullPolicy: IfNotPresent
          command: ["python3", "-m", "http.server", "8080"]
          ports: [{containerPort: 8080}]
EOF
}

log "workloads"
kubectl create namespace fb-annotated
kubectl create namespace fb-labelled
kubectl label namespace fb-labelled forcebacklog/inject=enabled
deployment fb-annotated annotated-glibc "$app_glibc" "{forcebacklog/value: \"$annotated_backlog\"}" | kubectl apply -f -
deployment fb-annotated annotated-musl "$app_musl" "{forcebacklog/value: \"$annotated_backlog\"}" | kubectl apply -f -
deployment fb-annotated control "$app_glibc" "{}" | kubectl apply -f -
deployment fb-labelled labelled-musl "$app_musl" "{}" | kubectl apply -f -
deployment fb-labelled opted-out "$app_glibc" "{forcebacklog/inject: \"false\"}" | kubectl apply -f -

log "the validating webhook rejects an invalid value at apply time"
if out=$(deployment fb-annotated invalid "$app_glibc" "{forcebacklog/value: \"70000\"}" | kubectl apply -f - 2>&1); then
  fail "a Deployment with forcebacklog/value=70000 was accepted: $out"
fi
echo "$out" | grep -q 'forcebacklog/value' || fail "the rejection does not name the key: $out"
echo "rejected: $out"

for d in fb-annotated/annotated-glibc fb-annotated/annotated-musl fb-annotated/control \
         fb-labelled/labelled-musl fb-labelled/opted-out; do
  kubectl -n "${d%/*}" rollout status "deploy/${d#*/}" --timeout=180s
done

# send_q NAMESPACE APP: the Send-Q of the pod's listener on 8080, read with
# ss in the pod's network namespace from the node (nsenter + crictl).
send_q() {
  local pod node cid pid
  pod=$(kubectl -n "$1" get pod -l "app=$2" -o jsonpath='{.items[0].metadata.name}')
  node=$(kubectl -n "$1" get pod "$pod" -o jsonpath='{.spec.nodeName}')
  cid=$(kubectl -n "$1" get pod "$pod" -o jsonpath='{.status.containerStatuses[0].containerID}')
  pid=$(docker exec "$node" crictl inspect --output go-template --template '{{.info.pid}}' "${cid#*://}")
  docker exec "$node" nsenter -t "$pid" -n ss -Hltn 'sport = :8080' | awk '$1 == "LISTEN" { print $3; exit }'
}

status_of() {
  kubectl -n "$1" get pod -l "app=$2" -o jsonpath='{.items[0].metadata.annotations.forcebacklog/status}'
}

log "listen queues"
check() { # NAMESPACE APP EXPECTED_SEND_Q EXPECTED_STATUS
  local got status
  got=$(send_q "$1" "$2")
  status=$(status_of "$1" "$2")
  echo "$1/$2: Send-Q $got, forcebacklog/status '${status}'"
  [ "$got" = "$3" ] || fail "$1/$2: Send-Q $got, expected $3"
  [ "$status" = "$4" ] || fail "$1/$2: status '$status', expected '$4'"
}
check fb-annotated annotated-glibc "$annotated_backlog" injected
check fb-annotated annotated-musl "$annotated_backlog" injected
check fb-annotated control "$app_backlog" ""
check fb-labelled labelled-musl "$default_backlog" injected
check fb-labelled opted-out "$app_backlog" ""

log "passed"
