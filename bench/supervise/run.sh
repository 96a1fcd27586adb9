#!/usr/bin/env bash
# The supervisor benchmark: a static musl build of the shim benchmark's
# server (listen(fd, 20), ~1,000 requests/s) under a burst of N connects,
# without and with `forcebacklog run --method supervise` (user notification
# and ptrace, forced with FORCEBACKLOG_SUPERVISE_VIA), and the cost of one
# trapped listen() with each. See bench/README.md ("Supervisor").
#
# usage: bench/supervise/run.sh [N ...]   (default: 1000)
# env:   FORCEBACKLOG=path   the forcebacklog binary (default: a release build)
# Needs root (unshare -n), musl-gcc, python3, iproute2 (ip, ss, nstat).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000)

need() {
  command -v "$1" >/dev/null || { echo "bench: $1 is missing: install the Debian package $2" >&2; exit 1; }
}
need musl-gcc musl-tools
need python3 python3
need unshare util-linux
need ss iproute2
need nstat iproute2
[ "$(id -u)" = 0 ] || { echo "bench: run as root (each trial needs its own network namespace)" >&2; exit 1; }

bin=${FORCEBACKLOG:-}
if [ -z "$bin" ]; then
  (cd "$root" && cargo build --quiet --release)
  bin=${CARGO_TARGET_DIR:-$root/target}/release/forcebacklog
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
musl-gcc -static -O2 -o "$work/slow_server" "$root/bench/shim/slow_server.c"
musl-gcc -static -O2 -o "$work/listen_cost" "$here/listen_cost.c"
for via in notify ptrace; do
  printf '#!/bin/sh\nFORCEBACKLOG_SUPERVISE_VIA=%s exec "%s" run --backlog 4096 --method supervise -- "%s" "$@"\n' \
    "$via" "$bin" "$work/slow_server" >"$work/supervised-$via"
  chmod +x "$work/supervised-$via"
done

echo "server: static musl, listen(fd, 20), one thread, 1 ms per request; deadline 5 s"
printf '%-6s %-11s %8s %10s %10s %9s %9s %10s\n' N method backlog served timed-out p50-ms max-ms overflows
for n in "${sizes[@]}"; do
  for variant in none notify ptrace; do
    server=$work/slow_server
    [ "$variant" = none ] || server=$work/supervised-$variant
    unshare -n python3 "$root/bench/shim/burst.py" "$server" "$n" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
print("%-6d %-11s %8s %10s %10d %9s %9s %10d" % (r["n"], sys.argv[1], r["backlog"],
      "%d/%d" % (r["served"], r["n"]), r["timed_out"], r["p50_ms"], r["max_ms"], r["overflows"]))
' "$variant"
  done
done

echo
echo "one listen() (10,000 calls on one socket; getpid is never trapped):"
for _ in 1 2 3; do
  printf 'untrapped:  '; "$work/listen_cost" 10000
  printf 'notify:     '; FORCEBACKLOG_SUPERVISE_VIA=notify "$bin" run --backlog 300 --method supervise -- "$work/listen_cost" 10000
  printf 'ptrace:     '; FORCEBACKLOG_SUPERVISE_VIA=ptrace "$bin" run --backlog 300 --method supervise -- "$work/listen_cost" 10000
done
