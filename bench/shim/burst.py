#!/usr/bin/env python3
"""One burst trial, run inside a fresh network namespace (`unshare -n`).

Brings up `lo`, starts the benchmark server (with or without the shim,
as the environment says), opens N loopback connections at once, and
prints one JSON line: how many requests were served within the
deadline, how many were not (timed out; of those, how many connect()s
had not even completed), the latency
(p50/max, from each connect() to its answer) of the served ones, and the
namespace's TcpExtListenOverflows counter (zero when the trial starts,
because the namespace is new).

usage: burst.py SERVER N [DEADLINE_SECONDS]
"""

import json
import os
import resource
import selectors
import socket
import subprocess
import sys
import time

PORT = 8080


def listen_overflows():
    out = subprocess.run(
        ["nstat", "-a", "-z", "-s", "TcpExtListenOverflows"],
        check=True, capture_output=True, text=True,
    ).stdout
    for line in out.splitlines():
        fields = line.split()
        if fields and fields[0] == "TcpExtListenOverflows":
            return int(fields[1])
    raise SystemExit(f"nstat printed no TcpExtListenOverflows:\n{out}")


def send_q(port):
    """The listener's backlog as the kernel holds it (ss Send-Q)."""
    out = subprocess.run(
        ["ss", "-Hltn", "sport", "=", f":{port}"],
        check=True, capture_output=True, text=True,
    ).stdout.split()
    return int(out[2]) if len(out) > 2 else None


def burst(n, deadline):
    sel = selectors.DefaultSelector()
    started = {}
    connected = set()
    served = []
    start = time.monotonic()
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        started[s] = time.monotonic()
        err = s.connect_ex(("127.0.0.1", PORT))
        if err not in (0, 115):  # 115: EINPROGRESS
            raise SystemExit(f"connect: {os.strerror(err)}")
        sel.register(s, selectors.EVENT_WRITE)
    end = start + deadline
    while len(served) < n:
        left = end - time.monotonic()
        if left <= 0:
            break
        for key, mask in sel.select(timeout=left):
            s = key.fileobj
            if s not in connected:
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err != 0:
                    raise SystemExit(f"connect failed: {os.strerror(err)}")
                connected.add(s)
                s.send(b"GET\n")
                sel.modify(s, selectors.EVENT_READ)
            else:
                data = s.recv(64)
                if data:
                    served.append(time.monotonic() - started[s])
                sel.unregister(s)
                s.close()
    no_connect = sum(1 for s in started if s not in connected)
    for s in started:
        s.close()
    served.sort()
    return {
        "served": len(served),
        "timed_out": n - len(served),
        "connect_pending": no_connect,
        "p50_ms": round(served[len(served) // 2] * 1000, 1) if served else None,
        "max_ms": round(served[-1] * 1000, 1) if served else None,
    }


def main():
    server, n = sys.argv[1], int(sys.argv[2])
    deadline = float(sys.argv[3]) if len(sys.argv) > 3 else 5.0
    resource.setrlimit(resource.RLIMIT_NOFILE, (n + 1024, n + 1024))
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    proc = subprocess.Popen([server, str(PORT)], stdout=subprocess.PIPE, text=True)
    try:
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit("the server did not start")
        backlog = send_q(PORT)
        before = listen_overflows()
        result = burst(n, deadline)
        result["overflows"] = listen_overflows() - before
        result["backlog"] = backlog
        result["n"] = n
        print(json.dumps(result))
    finally:
        proc.kill()
        proc.wait()


if __name__ == "__main__":
    main()
