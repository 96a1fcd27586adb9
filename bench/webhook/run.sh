#!/usr/bin/env bash
# The webhook benchmarks (bench/README.md, "Webhook"). Builds the release
# binary and the benchmark programs, then runs bench.py:
#   bench/webhook/run.sh [instructions|load|tail|cpu|latency|streams|memory|startup|scale|all] [--seconds N] [--rounds N]
set -euo pipefail
# setsid: a session, so an autogroup, of its own (see NICE in bench.py).
exec setsid -w python3 "$(dirname "$0")/bench.py" "$@"
