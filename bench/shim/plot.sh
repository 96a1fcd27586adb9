#!/usr/bin/env bash
# The shim under a burst, as a picture: the same server and burst as
# run.sh (listen(fd, 20), 1 ms per request, N connections at once), each
# trial in a fresh network namespace with `forcebacklog sockets --serve`
# running next to the server and scraped every 20 ms. Writes the scraped
# samples to bench/shim/plot-data/{without,with}.json and renders
# docs/shim-burst.png from them. See bench/README.md ("Shim").
#
# usage: bench/shim/plot.sh [N]        (default: 1000)
# env:   FORCEBACKLOG_BIN=path  the forcebacklog binary (default: cargo build)
#        BENCH_BACKLOG=4096     BACKLOG for the "with shim" trial
# Needs root (unshare -n), gcc, python3 with matplotlib (pip install
# matplotlib), iproute2.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
n=${1:-1000}
backlog=${BENCH_BACKLOG:-4096}

need() {
  command -v "$1" >/dev/null || { echo "plot: $1 is missing: install the Debian package $2" >&2; exit 1; }
}
need gcc gcc
need python3 python3
need unshare util-linux
need ip iproute2
need nstat iproute2
python3 -c 'import matplotlib' 2>/dev/null || { echo "plot: matplotlib is missing: pip install matplotlib" >&2; exit 1; }
[ "$(id -u)" = 0 ] || { echo "plot: run as root (each trial needs its own network namespace)" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
gcc -O2 -o "$work/slow_server" "$here/slow_server.c"
bin=${FORCEBACKLOG_BIN:-}
if [ -z "$bin" ]; then
  (cd "$root" && cargo build --quiet --bin forcebacklog)
  bin=$(cd "$root" && cargo metadata --format-version 1 --no-deps \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')/debug/forcebacklog
fi
"$bin" install-shim "$work" >/dev/null

data=$here/plot-data
mkdir -p "$data"
unshare -n python3 "$here/scrape_burst.py" "$bin" "$work/slow_server" "$n" >"$data/without.json"
unshare -n python3 "$here/scrape_burst.py" "$bin" "$work/slow_server" "$n" \
  "$work/libforcebacklog.so" "$backlog" >"$data/with.json"
python3 "$here/plot.py" "$data/without.json" "$data/with.json" "$root/docs/shim-burst.png"
for v in without with; do
  python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
r, s = d["result"], d["samples"]
print("%-8s served %d/%d  backlog %d  max queue %d  overflows %d  (%d samples)" % (
    sys.argv[2], r["served"], r["n"], s[-1]["backlog"], max(x["queue"] for x in s),
    s[-1]["overflows"], len(s)))
' "$data/$v.json" "$v"
done
echo "plot: wrote docs/shim-burst.png"
