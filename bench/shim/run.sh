#!/usr/bin/env bash
# The shim benchmark: what libforcebacklog.so changes for a server with a
# hard-coded listen(fd, 20) under a connection burst, and what loading it
# costs. See bench/README.md ("Shim").
#
# usage: bench/shim/run.sh [N ...]     (default: 1000 3000)
#        bench/shim/run.sh --exec-only  (only the exec cost)
# env:   FORCEBACKLOG_SHIM=path   use this libforcebacklog.so instead of
#                                 extracting the one in target/
#        BENCH_BACKLOG=4096       BACKLOG for the "with shim" trials
#        BENCH_EXECS=1000         /bin/true runs with and without the shim,
#                                 in 10 alternating batches each
# Needs root (unshare -n), gcc, python3, iproute2 (ip, ss, nstat).
# Takes about a minute: each trial is bounded by a 5 s deadline.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
sizes=("$@")
[ ${#sizes[@]} -gt 0 ] || sizes=(1000 3000)
[ "${sizes[0]}" != --exec-only ] || sizes=()
backlog=${BENCH_BACKLOG:-4096}
execs=${BENCH_EXECS:-1000}

need() {
  command -v "$1" >/dev/null || { echo "bench: $1 is missing: install the Debian package $2" >&2; exit 1; }
}
need gcc gcc
need python3 python3
need unshare util-linux
need ip iproute2
need ss iproute2
need nstat iproute2
[ "$(id -u)" = 0 ] || { echo "bench: run as root (each trial needs its own network namespace)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -O2 -o "$work/slow_server" "$here/slow_server.c"
gcc -O2 -o "$work/exec_cost" "$here/exec_cost.c"

shim=${FORCEBACKLOG_SHIM:-}
if [ -z "$shim" ]; then
  (cd "$root" && cargo run --quiet -- install-shim "$work" >/dev/null)
  shim=$work/libforcebacklog.so
fi
echo "shim: $shim ($(stat -c %s "$shim") bytes)"
echo "server: listen(fd, 20), one thread, 1 ms per request; deadline 5 s; BACKLOG=$backlog with the shim"
echo

trial() { # trial N with|without
  if [ "$2" = with ]; then
    env LD_PRELOAD="$shim" BACKLOG="$backlog" unshare -n python3 "$here/burst.py" "$work/slow_server" "$1"
  else
    env -u LD_PRELOAD -u BACKLOG unshare -n python3 "$here/burst.py" "$work/slow_server" "$1"
  fi
}

[ ${#sizes[@]} -eq 0 ] || printf '%-6s %-8s %8s %10s %10s %11s %9s %9s %10s\n' \
  N shim backlog served timed-out no-connect p50-ms max-ms overflows
for n in "${sizes[@]+"${sizes[@]}"}"; do
  for variant in without with; do
    trial "$n" "$variant" | python3 -c '
import json, sys
r = json.loads(sys.stdin.read())
print("%-6d %-8s %8s %10s %10d %11d %9s %9s %10d" % (r["n"], sys.argv[1], r["backlog"],
      "%d/%d" % (r["served"], r["n"]), r["timed_out"], r["connect_pending"],
      r["p50_ms"], r["max_ms"], r["overflows"]))
' "$variant"
  done
done

echo
# Baseline for the cost of LD_PRELOAD itself: the smallest library gcc makes.
echo 'int forcebacklog_bench_empty;' >"$work/empty.c"
gcc -shared -nostdlib -o "$work/libempty.so" "$work/empty.c"
pairs=10
batch=$(( (execs + pairs - 1) / pairs ))
echo "exec cost: /bin/true $execs times without LD_PRELOAD, with the shim, with an empty library ($(stat -c %s "$work/libempty.so") bytes);"
echo "$pairs alternating batches of $batch; mean microseconds per run; ratio = median with / median without (median of per-batch ratios)"
samples=$work/exec-samples
for _ in $(seq "$pairs"); do
  echo "without $(env -u LD_PRELOAD "$work/exec_cost" "$batch" /bin/true)"
  echo "shim $(env LD_PRELOAD="$shim" BACKLOG="$backlog" "$work/exec_cost" "$batch" /bin/true)"
  echo "empty $(env LD_PRELOAD="$work/libempty.so" "$work/exec_cost" "$batch" /bin/true)"
done >"$samples"
python3 - "$samples" <<'PY'
import statistics, sys
runs = {"without": [], "shim": [], "empty": []}
for line in open(sys.argv[1]):
    variant, wall, cpu = line.split()
    runs[variant].append((float(wall), float(cpu)))
for i, what in ((0, "wall"), (1, "cpu ")):
    base = [r[i] for r in runs["without"]]
    row = f"{what}: without {statistics.median(base):6.1f}"
    for variant in ("shim", "empty"):
        xs = [r[i] for r in runs[variant]]
        pairs = statistics.median(y / x for x, y in zip(base, xs))
        ratio = statistics.median(xs) / statistics.median(base)
        row += f" | {variant} {statistics.median(xs):6.1f} ratio {ratio:.3f} ({pairs:.3f})"
    print(row)
PY
