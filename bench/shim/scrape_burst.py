#!/usr/bin/env python3
"""One burst trial with its listen queue scraped over time, run inside a
fresh network namespace (`unshare -n`).

Brings up `lo`, starts `forcebacklog sockets --serve` (the metrics
sidecar's command) and the benchmark server (with the shim when
SHIM is given: only the server gets LD_PRELOAD), then scrapes
/metrics every INTERVAL seconds while burst.py's burst of N connections
runs, and a little after. Prints one JSON object: the trial's result
(as burst.py prints it) and the samples, each
{"t": seconds since the burst started, "backlog", "queue", "overflows"}
read from forcebacklog_listen_backlog / forcebacklog_listen_queue for
the server's port and forcebacklog_listen_overflows_total.

usage: scrape_burst.py FORCEBACKLOG SERVER N [SHIM BACKLOG]
"""

import json
import os
import resource
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import burst as trial  # noqa: E402  (the same burst as the table's)

METRICS = "127.0.0.1:9464"
INTERVAL = 0.02
TAIL = 0.5


def scrape():
    """backlog, queue (of the server's port) and overflows from /metrics."""
    text = urllib.request.urlopen(f"http://{METRICS}/metrics", timeout=2).read().decode()
    found = {}
    port = f'port="{trial.PORT}"'
    for line in text.splitlines():
        if line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        if name.startswith("forcebacklog_listen_backlog{") and port in name:
            found["backlog"] = int(float(value))
        elif name.startswith("forcebacklog_listen_queue{") and port in name:
            found["queue"] = int(float(value))
        elif name == "forcebacklog_listen_overflows_total":
            found["overflows"] = int(float(value))
    return found


def wait_for(check, what):
    for _ in range(200):
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"{what} did not start")


def main():
    forcebacklog, server, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    env = dict(os.environ)
    env.pop("LD_PRELOAD", None)
    env.pop("BACKLOG", None)
    server_env = dict(env)
    if len(sys.argv) > 5:
        server_env.update(LD_PRELOAD=sys.argv[4], BACKLOG=sys.argv[5])
    resource.setrlimit(resource.RLIMIT_NOFILE, (n + 1024, n + 1024))
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    exporter = subprocess.Popen([forcebacklog, "sockets", "--serve", METRICS], env=env)
    proc = subprocess.Popen([server, str(trial.PORT)], stdout=subprocess.PIPE, text=True,
                            env=server_env)
    samples = []
    stop = threading.Event()
    start = [0.0]

    def scraper():
        while not stop.is_set():
            t = time.monotonic() - start[0]
            sample = scrape()
            if "queue" in sample:
                sample["t"] = round(t, 4)
                samples.append(sample)
            time.sleep(INTERVAL)

    try:
        if proc.stdout.readline().strip() != "ready":
            raise SystemExit("the server did not start")
        wait_for(lambda: "queue" in scrape(), "forcebacklog sockets --serve")
        thread = threading.Thread(target=scraper, daemon=True)
        start[0] = time.monotonic()
        thread.start()
        result = trial.burst(n, 5.0)
        time.sleep(TAIL)
        stop.set()
        thread.join()
        result["n"] = n
        print(json.dumps({"result": result, "samples": samples}))
    finally:
        for p in (proc, exporter):
            p.kill()
            p.wait()


if __name__ == "__main__":
    main()
