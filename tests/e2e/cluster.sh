#!/usr/bin/env bash
# A real Kubernetes control plane on this machine, with forcebacklog
# installed by `helm install` and called by the real kube-apiserver.
#
#   tests/e2e/cluster.sh up               # start (idempotent); last line: KUBECONFIG=<path>
#   tests/e2e/cluster.sh down             # stop everything `up` started, remove its state
#   tests/e2e/cluster.sh webhook stop|start   # stop or start the webhook server only
#   tests/e2e/cluster.sh exec CMD ARGS... # run CMD in the cluster's network namespace
#
# What runs: etcd, kube-apiserver and kube-controller-manager, built from
# their Go modules by tests/e2e/cluster/build.sh (cached outside the
# repository). There is no kubelet and no scheduler: pods are admitted and
# stored, and stay Pending. The webhook itself is the one exception: `up`
# reads the chart's Deployment and Secret back from the API server and runs
# that pod template's container from the project's image on Docker, the
# way a kubelet would.
#
# Networking. The API server calls the webhook through the chart's own
# MutatingWebhookConfiguration: `service: forcebacklog/forcebacklog:443`,
# which it resolves to the Service's ClusterIP. With no kube-proxy, the
# control plane runs inside a network namespace of its own (owned by a
# Docker "sandbox" container, so the webhook container can join it), where
# the whole service range is a local address on `lo` and a forwarder
# listening on ClusterIP:443 plays kube-proxy's part (-> the container's
# 8443). The host reaches the API server on 127.0.0.1:$FORCEBACKLOG_CLUSTER_PORT
# through a Unix socket bridge. Nothing touches the host's own network
# configuration; all traffic stays on loopback or in that namespace.
#
# Needs root, Docker (daemon running), Go (for the first build), socat,
# openssl, curl, util-linux (nsenter), iproute2, and the project's build
# tools (docker/build-local.sh). Environment:
#   FORCEBACKLOG_CLUSTER_DIR   state directory (default /tmp/forcebacklog-cluster)
#   FORCEBACKLOG_CLUSTER_PORT  host port of the API server (default 16443)
#   FORCEBACKLOG_CACHE         binary cache (default ~/.cache/forcebacklog)
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
state=${FORCEBACKLOG_CLUSTER_DIR:-/tmp/forcebacklog-cluster}
host_port=${FORCEBACKLOG_CLUSTER_PORT:-16443}
# The release as README.md installs it.
release=forcebacklog
release_ns=forcebacklog
service_cidr=10.96.0.0/16
sandbox=forcebacklog-cluster-net
webhook_container=forcebacklog-cluster-webhook

die() { echo "cluster: $*" >&2; exit 1; }
say() { echo "cluster: $*" >&2; }

# Proxies would capture the API server's webhook calls (they honour
# HTTPS_PROXY) and kubectl's and helm's requests.
unset HTTPS_PROXY https_proxy HTTP_PROXY http_proxy ALL_PROXY all_proxy NO_PROXY no_proxy

require() {
  local missing=()
  [ "$(id -u)" = 0 ] || missing+=("root (network namespaces, Docker)")
  local tool package
  for pair in docker:docker.io socat:socat openssl:openssl curl:curl nsenter:util-linux ip:iproute2 gcc:gcc; do
    tool=${pair%%:*}; package=${pair#*:}
    command -v "$tool" >/dev/null || missing+=("$tool (Debian package $package)")
  done
  if command -v docker >/dev/null && ! docker info >/dev/null 2>&1; then
    missing+=("a running Docker daemon (start dockerd)")
  fi
  [ ${#missing[@]} = 0 ] || die "missing: ${missing[*]}"
}

sandbox_pid() { docker inspect -f '{{.State.Pid}}' "$sandbox" 2>/dev/null || true; }
in_netns() { nsenter --net="/proc/$(sandbox_pid)/ns/net" "$@"; }

# Starts a background process that outlives this script; its PID goes to
# $state/pids/NAME and its output to $state/logs/NAME.log.
start_bg() { # NAME CMD ARGS...
  local name=$1; shift
  setsid "$@" >"$state/logs/$name.log" 2>&1 < /dev/null &
  echo $! >"$state/pids/$name"
}
alive() { local f=$state/pids/$1; [ -f "$f" ] && kill -0 "$(cat "$f")" 2>/dev/null; }
stop_bg() {
  local f=$state/pids/$1
  if [ -f "$f" ]; then
    local pid; pid=$(cat "$f")
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    rm -f "$f"
  fi
}
wait_for() { # SECONDS WHAT CMD ARGS...
  local seconds=$1 what=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || return 1
    sleep 0.2
  done
  say "$what is up"
}
log_tail() { tail -n 30 "$state/logs/$1.log" >&2 || true; }

pki() {
  local d=$state/pki
  [ -f "$d/admin.crt" ] && return 0
  mkdir -p "$d"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=forcebacklog-cluster-ca" \
    -keyout "$d/ca.key" -out "$d/ca.crt" 2>/dev/null
  cat >"$d/apiserver.ext" <<EOF
subjectAltName=IP:127.0.0.1,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
extendedKeyUsage=serverAuth
EOF
  openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" \
    -keyout "$d/apiserver.key" -out "$d/apiserver.csr" 2>/dev/null
  openssl x509 -req -in "$d/apiserver.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 30 -extfile "$d/apiserver.ext" -out "$d/apiserver.crt" 2>/dev/null
  # The admin user: system:masters, like kubeadm's admin.conf.
  printf 'extendedKeyUsage=clientAuth\n' >"$d/client.ext"
  openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=forcebacklog-admin" \
    -keyout "$d/admin.key" -out "$d/admin.csr" 2>/dev/null
  openssl x509 -req -in "$d/admin.csr" -CA "$d/ca.crt" -CAkey "$d/ca.key" -CAcreateserial \
    -days 30 -extfile "$d/client.ext" -out "$d/admin.crt" 2>/dev/null
  openssl genrsa -out "$d/sa.key" 2048 2>/dev/null
  openssl rsa -in "$d/sa.key" -pubout -out "$d/sa.pub" 2>/dev/null
}

kubeconfig() { # FILE SERVER
  cat >"$1" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: forcebacklog
    cluster:
      server: $2
      certificate-authority: $state/pki/ca.crt
users:
  - name: admin
    user:
      client-certificate: $state/pki/admin.crt
      client-key: $state/pki/admin.key
contexts:
  - name: forcebacklog
    context: {cluster: forcebacklog, user: admin}
current-context: forcebacklog
EOF
}

# The namespace that holds the control plane: a static pause process in a
# container with no network, so that the webhook container can join it.
start_sandbox() {
  if [ "$(docker inspect -f '{{.State.Running}}' "$sandbox" 2>/dev/null)" = true ]; then
    return 0
  fi
  docker rm -f "$sandbox" >/dev/null 2>&1 || true
  local image=forcebacklog-cluster/pause:local
  if ! docker image inspect "$image" >/dev/null 2>&1; then
    local ctx; ctx=$(mktemp -d)
    gcc -O2 -static -o "$ctx/pause" "$root/tests/e2e/fixtures/pause.c" \
      || die "building the static pause program failed (gcc -static needs libc6-dev)"
    printf 'FROM scratch\nCOPY pause /pause\nENTRYPOINT ["/pause"]\n' >"$ctx/Dockerfile"
    docker build --quiet -t "$image" "$ctx" >/dev/null
    rm -rf "$ctx"
  fi
  docker run -d --name "$sandbox" --network none --pull never "$image" >/dev/null
  # Every address of the service range is local in the namespace.
  in_netns ip addr add "${service_cidr%/*}" dev lo 2>/dev/null || true
  in_netns ip route add local "$service_cidr" dev lo 2>/dev/null || true
}

start_control_plane() {
  local bin=$1 ns
  ns=/proc/$(sandbox_pid)/ns/net
  [ -e "$ns" ] || die "the sandbox container $sandbox has no network namespace"
  mkdir -p "$state/etcd"
  if ! alive etcd; then
    start_bg etcd nsenter --net="$ns" "$bin/etcd" --name forcebacklog \
      --data-dir "$state/etcd" \
      --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
      --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
      --initial-cluster forcebacklog=http://127.0.0.1:2380 \
      --unsafe-no-fsync --log-level warn
  fi
  wait_for 60 etcd in_netns curl -sf http://127.0.0.1:2379/health || { log_tail etcd; die "etcd did not start"; }

  if ! alive kube-apiserver; then
    # The flags of controller-runtime's envtest, plus the service account
    # signing key, RBAC, and the admission plugins a real cluster runs
    # (PodSecurity is on by default).
    start_bg kube-apiserver nsenter --net="$ns" "$bin/kube-apiserver" \
      --etcd-servers http://127.0.0.1:2379 \
      --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port 6443 \
      --endpoint-reconciler-type none \
      --service-cluster-ip-range "$service_cidr" \
      --cert-dir "$state/pki" \
      --tls-cert-file "$state/pki/apiserver.crt" --tls-private-key-file "$state/pki/apiserver.key" \
      --client-ca-file "$state/pki/ca.crt" \
      --service-account-issuer https://kubernetes.default.svc \
      --service-account-key-file "$state/pki/sa.pub" \
      --service-account-signing-key-file "$state/pki/sa.key" \
      --authorization-mode RBAC \
      --allow-privileged=true \
      --enable-admission-plugins NamespaceLifecycle,LimitRanger,ServiceAccount,DefaultTolerationSeconds,MutatingAdmissionWebhook,ValidatingAdmissionWebhook,ResourceQuota,PodSecurity
  fi
  kubeconfig "$state/kubeconfig.inner" https://127.0.0.1:6443
  wait_for 120 kube-apiserver in_netns curl -sf --cacert "$state/pki/ca.crt" \
    --cert "$state/pki/admin.crt" --key "$state/pki/admin.key" https://127.0.0.1:6443/readyz \
    || { log_tail kube-apiserver; die "kube-apiserver did not become ready"; }

  if ! alive kube-controller-manager; then
    start_bg kube-controller-manager nsenter --net="$ns" "$bin/kube-controller-manager" \
      --kubeconfig "$state/kubeconfig.inner" \
      --authentication-skip-lookup \
      --bind-address 127.0.0.1 --secure-port 10257 \
      --service-account-private-key-file "$state/pki/sa.key" \
      --root-ca-file "$state/pki/ca.crt" \
      --use-service-account-credentials=false \
      --controllers '*'
  fi
}

# The host side: 127.0.0.1:$host_port -> Unix socket -> 127.0.0.1:6443 in the namespace.
start_api_bridge() {
  local ns; ns=/proc/$(sandbox_pid)/ns/net
  if ! alive bridge-inner; then
    rm -f "$state/apiserver.sock"
    start_bg bridge-inner nsenter --net="$ns" socat \
      "UNIX-LISTEN:$state/apiserver.sock,fork,mode=600" TCP:127.0.0.1:6443
  fi
  if ! alive bridge-outer; then
    start_bg bridge-outer socat \
      "TCP-LISTEN:$host_port,bind=127.0.0.1,reuseaddr,fork" "UNIX-CONNECT:$state/apiserver.sock"
  fi
  kubeconfig "$state/kubeconfig" "https://127.0.0.1:$host_port"
  wait_for 30 "the API server bridge (127.0.0.1:$host_port)" "$bin/kubectl" \
    --kubeconfig "$state/kubeconfig" get --raw /readyz \
    || { log_tail bridge-outer; log_tail bridge-inner; die "the API server is not reachable on 127.0.0.1:$host_port"; }
}

# The project's image, tagged as the chart's default image, so that the
# chart is installed with no --set.
build_image() {
  local app; app=$(awk -F'"' '/^appVersion:/ { print $2 }' "$root/charts/forcebacklog/Chart.yaml")
  image=ghcr.io/forcebacklog/forcebacklog:$app
  local built; built=$(bash "$root/docker/build-local.sh" "forcebacklog-cluster:local" | tail -n 1)
  docker tag "forcebacklog-cluster:local" "$image"
  say "image $image (${built#* } bytes)"
}

helm_install() {
  if "$bin/helm" --kubeconfig "$state/kubeconfig" status "$release" -n "$release_ns" >/dev/null 2>&1; then
    # Installed by an earlier `up`: bring it to this tree's chart (the
    # generated certificate is kept).
    # --reset-values: without values flags Helm 3 reuses the last ones,
    # which a test may have changed.
    "$bin/helm" --kubeconfig "$state/kubeconfig" upgrade "$release" "$root/charts/forcebacklog" \
      --namespace "$release_ns" --reset-values >"$state/logs/helm-upgrade.log" 2>&1 \
      || { cat "$state/logs/helm-upgrade.log" >&2; die "helm upgrade failed"; }
    return 0
  fi
  # The README's command.
  "$bin/helm" --kubeconfig "$state/kubeconfig" install "$release" "$root/charts/forcebacklog" \
    --namespace "$release_ns" --create-namespace >"$state/logs/helm-install.log" 2>&1 \
    || { cat "$state/logs/helm-install.log" >&2; die "helm install failed"; }
  say "helm install $release: $(head -n 1 "$state/logs/helm-install.log")"
}

k() { "$bin/kubectl" --kubeconfig "$state/kubeconfig" "$@"; }

# Runs the chart's webhook container the way a kubelet would: image, args,
# user, read-only root, no capabilities, no privilege escalation, the TLS
# Secret mounted where the pod template mounts it; in the control plane's
# network namespace, with a forwarder on the Service's ClusterIP:port.
start_webhook() {
  local deploy="deploy/$release"
  local c='.spec.template.spec.containers[0]'
  local image secret mount user signature
  image=$(k -n "$release_ns" get "$deploy" -o jsonpath="{$c.image}")
  mapfile -t args < <(k -n "$release_ns" get "$deploy" -o jsonpath="{range $c.args[*]}{@}{\"\n\"}{end}")
  # Restarted when the image or the pod template's arguments changed.
  signature=$( { docker image inspect -f '{{.Id}}' "$image" 2>/dev/null; printf '%s\n' "${args[@]}"; } | sha256sum | cut -c1-16)
  if [ "$(docker inspect -f '{{.State.Running}} {{index .Config.Labels "signature"}}' "$webhook_container" 2>/dev/null)" != "true $signature" ]; then
    docker rm -f "$webhook_container" >/dev/null 2>&1 || true
    secret=$(k -n "$release_ns" get "$deploy" -o jsonpath='{.spec.template.spec.volumes[?(@.name=="tls")].secret.secretName}')
    mount=$(k -n "$release_ns" get "$deploy" -o jsonpath="{$c.volumeMounts[?(@.name==\"tls\")].mountPath}")
    user=$(k -n "$release_ns" get "$deploy" -o jsonpath="{$c.securityContext.runAsUser}")
    { [ -n "$image" ] && [ -n "$secret" ] && [ -n "$mount" ]; } || die "could not read the webhook's pod template from deploy/$release"
    local tls=$state/webhook-tls
    rm -rf "$tls"; mkdir -p "$tls"
    for key in tls.crt tls.key ca.crt; do
      k -n "$release_ns" get secret "$secret" -o jsonpath="{.data.${key//./\\.}}" | base64 -d >"$tls/$key"
    done
    # The Secret volume's defaultMode 0440 with the pod's fsGroup.
    chown -R "0:${user:-65532}" "$tls"; chmod 0750 "$tls"; chmod 0440 "$tls"/*
    docker run -d --name "$webhook_container" --label "signature=$signature" \
      --network "container:$sandbox" --pull never \
      --user "${user:-65532}:${user:-65532}" --read-only --cap-drop ALL \
      --security-opt no-new-privileges -v "$tls:$mount:ro" "$image" "${args[@]}" >/dev/null
  fi
  local ip port target
  ip=$(k -n "$release_ns" get svc "$release" -o jsonpath='{.spec.clusterIP}')
  port=$(k -n "$release_ns" get svc "$release" -o jsonpath='{.spec.ports[?(@.name=="https")].port}')
  target=$(k -n "$release_ns" get deploy "$release" \
    -o jsonpath='{.spec.template.spec.containers[0].ports[?(@.name=="https")].containerPort}')
  if ! alive service-proxy; then
    start_bg service-proxy nsenter --net="/proc/$(sandbox_pid)/ns/net" socat \
      "TCP-LISTEN:$port,bind=$ip,reuseaddr,fork" "TCP:127.0.0.1:$target"
  fi
  wait_for 60 "the webhook (service $ip:$port -> :$target)" in_netns curl -sf http://127.0.0.1:8080/readyz \
    || { docker logs "$webhook_container" 2>&1 | tail -20 >&2; die "the webhook did not become ready"; }
}

stop_webhook() {
  docker rm -f "$webhook_container" >/dev/null 2>&1 || true
}

up() {
  require
  mkdir -p "$state/logs" "$state/pids"
  bin=$(bash "$root/tests/e2e/cluster/build.sh") || die "building the control-plane binaries failed"
  echo "$bin" >"$state/bin"
  pki
  start_sandbox
  start_control_plane "$bin"
  start_api_bridge
  # The namespaces of a fresh cluster (the service account controller makes
  # each namespace's `default` ServiceAccount, which pods need).
  wait_for 60 "kube-controller-manager" k -n default get serviceaccount default \
    || { log_tail kube-controller-manager; die "kube-controller-manager did not create the default ServiceAccount"; }
  build_image
  helm_install
  start_webhook
  echo "KUBECONFIG=$state/kubeconfig"
}

down() {
  for name in service-proxy bridge-outer bridge-inner kube-controller-manager kube-apiserver etcd; do
    stop_bg "$name"
  done
  docker rm -f "$webhook_container" "$sandbox" >/dev/null 2>&1 || true
  rm -rf "$state"
  say "down"
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  webhook)
    bin=$(cat "$state/bin" 2>/dev/null) || die "the cluster is not up (tests/e2e/cluster.sh up)"
    case "${2:-}" in
      stop) stop_webhook ;;
      start) start_webhook ;;
      *) die "usage: $0 webhook stop|start" ;;
    esac ;;
  exec) shift; exec nsenter --net="/proc/$(sandbox_pid)/ns/net" "$@" ;;
  *) die "usage: $0 up | down | webhook stop|start | exec CMD ARGS..." ;;
esac
