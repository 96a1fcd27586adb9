#!/usr/bin/env python3
"""Webhook benchmarks: CPU per review against a bare baseline, latency at a
fixed rate, one HTTP/2 connection with 64 streams, memory, start-up time,
and time per review as the pod grows.

Run from anywhere (see bench/README.md, "Webhook"):

    bench/webhook/run.sh [instructions|load|tail|cpu|latency|streams|memory|startup|scale|all]

Everything is on loopback. The server under test is pinned to CPU 0
(`taskset -c 0`), the load generator (h2load, from nghttp2-client) to CPU 1.
Each step is bounded in time (a few seconds per measurement) and prints its
figures next to the target. Server CPU is utime+stime of the whole process
from /proc/PID/stat; the load generator's from wait4().
"""

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
# Where cargo puts the builds: CARGO_TARGET_DIR when set (shared by the
# repository and bench/webhook then), else each project's own target/.
TARGET = os.environ.get("CARGO_TARGET_DIR")
ROOT_TARGET = TARGET or os.path.join(ROOT, "target")
HERE_TARGET = TARGET or os.path.join(HERE, "target")
FIXTURE = os.path.join(HERE, "fixtures", "pod-create-3c.json")
CLK_TCK = os.sysconf("SC_CLK_TCK")
SERVER_CPU = "0"
CLIENT_CPU = "1"
# The machine is shared (builds run next to the benchmark): the measured
# processes run at the highest CFS priority, so a compiler on the same CPU
# yields to them at once instead of taking its time slice. With autogroup
# scheduling (Linux's default for desktop and VM kernels) nice only ranks
# processes within their session's group, so run.sh starts this script in
# a session of its own (setsid) and claim_priority() gives that group -20.
NICE = ["nice", "-n", "-20"]


def die(message):
    print(f"bench: {message}", file=sys.stderr)
    sys.exit(1)


def need(tool, package):
    if shutil.which(tool) is None:
        die(f"{tool} not found: install the Debian package {package}")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid):
    """utime + stime of a process (all threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # fields[0] is the state (field 3); utime and stime are fields 14 and 15.
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def proc_status(pid, key):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1])  # kB
    return None


class Work:
    """Binaries, certificate and fixtures in a private directory, so a
    concurrent `cargo build` cannot swap the binary under a measurement."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="forcebacklog-bench-")
        self.ca = os.path.join(self.dir, "ca.pem")
        self.cert = os.path.join(self.dir, "cert.pem")
        self.key = os.path.join(self.dir, "key.pem")
        ca_key = os.path.join(self.dir, "ca.key")
        csr = os.path.join(self.dir, "leaf.csr")
        ext = os.path.join(self.dir, "leaf.ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        for argv in (
            ["req", "-x509", *ec, "-keyout", ca_key, "-out", self.ca, "-days", "1", "-subj", "/CN=bench CA"],
            ["req", *ec, "-keyout", self.key, "-out", csr, "-subj", "/CN=localhost"],
            ["x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", ca_key, "-CAcreateserial",
             "-out", self.cert, "-days", "1", "-extfile", ext],
        ):
            subprocess.run(["openssl", *argv], check=True, capture_output=True)
        self.server = os.path.join(self.dir, "forcebacklog")
        shutil.copy2(os.path.join(ROOT_TARGET, "release", "forcebacklog"), self.server)
        # The image ships a static musl build (Dockerfile): measured too when built.
        musl = os.path.join(ROOT_TARGET, "x86_64-unknown-linux-musl", "release", "forcebacklog")
        self.server_musl = None
        if os.path.exists(musl):
            self.server_musl = os.path.join(self.dir, "forcebacklog-musl")
            shutil.copy2(musl, self.server_musl)
        self.baseline = os.path.join(self.dir, "baseline")
        shutil.copy2(os.path.join(HERE_TARGET, "release", "baseline"), self.baseline)
        self.baseline_mimalloc = os.path.join(self.dir, "baseline_mimalloc")
        shutil.copy2(os.path.join(HERE_TARGET, "release", "baseline_mimalloc"), self.baseline_mimalloc)
        self.scale = os.path.join(HERE_TARGET, "release", "scale")
        self.loadgen = os.path.join(HERE_TARGET, "release", "loadgen")
        # The same pod without the forcebacklog annotation (the common case
        # in a cluster: most pods pass through untouched).
        with open(FIXTURE) as f:
            review = json.load(f)
        del review["request"]["object"]["metadata"]["annotations"]["forcebacklog/value"]
        self.unannotated = os.path.join(self.dir, "unannotated.json")
        with open(self.unannotated, "w") as f:
            json.dump(review, f, separators=(",", ":"))
        self.processes = []

    def close(self):
        for p in self.processes:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


def listening(port):
    """True when something listens on 127.0.0.1:port (read from
    /proc/net/tcp, so the server under test sees no connection)."""
    want = f"0100007F:{port:04X}"
    with open("/proc/net/tcp") as f:
        return any(line.split()[1] == want and line.split()[3] == "0A" for line in list(f)[1:])


class Server:
    """A server under test. `wrap` runs it under another program
    (valgrind); it is then ready when its port listens, without a probe
    request that would count as work."""

    def __init__(self, work, kind, wrap=None):
        self.kind = kind
        self.wrap = wrap
        self.port = free_port()
        self.admin = None
        if kind in ("forcebacklog", "forcebacklog-musl"):
            self.admin = free_port()
            binary = work.server if kind == "forcebacklog" else work.server_musl
            argv = [binary, "serve", "--tls-cert", work.cert, "--tls-key", work.key,
                    "--addr", f"127.0.0.1:{self.port}", "--admin-addr", f"127.0.0.1:{self.admin}",
                    "--log-level", "warn"]
        else:
            program, stack = kind.split(":", 1)
            binary = work.baseline_mimalloc if program == "baseline+mimalloc" else work.baseline
            argv = [binary, "--stack", stack, f"127.0.0.1:{self.port}", work.cert, work.key,
                    work.response]
        self.started = time.monotonic()
        self.process = subprocess.Popen(NICE + ["taskset", "-c", SERVER_CPU] + (wrap or []) + argv,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        work.processes.append(self.process)
        self.pid = self.process.pid  # nice and taskset exec the server: same pid
        self.wait_ready()

    def wait_ready(self, limit=60.0):
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                die(f"{self.kind} exited: {self.process.stderr.read().decode(errors='replace')}")
            if self.ready():
                return time.monotonic() - self.started
            time.sleep(0.0005)
        die(f"{self.kind} not ready within {limit} s")

    def ready(self):
        if self.wrap:
            return listening(self.port)
        if self.admin is None:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return True
            except OSError:
                return False
        try:
            with socket.create_connection(("127.0.0.1", self.admin), timeout=0.2) as s:
                s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                return s.recv(64).startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def url(self, path="/mutate"):
        return f"https://127.0.0.1:{self.port}{path}"


class H2load:
    def __init__(self, out, cpu, wall):
        self.out = out
        self.cpu = cpu
        self.wall = wall
        m = re.search(r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed",
                      out, re.M)
        if not m:
            die(f"cannot read h2load's output:\n{out}")
        self.done = int(m.group(3))
        self.failed = int(m.group(5))
        m = re.search(r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", out, re.M)
        self.ok = int(m.group(1)) if m else 0
        m = re.search(r"^finished in ([\d.]+)s, ([\d.]+) req/s", out, re.M)
        self.rps = float(m.group(2)) if m else 0.0
        if self.ok != self.done or self.failed:
            die(f"not every request got a 2xx answer:\n{out}")


def h2load(url, body, args, log=None):
    """Runs h2load on the client CPU; returns its figures and its CPU time."""
    argv = [*NICE, "taskset", "-c", CLIENT_CPU, "h2load", *args, "-d", body,
            "-H", "content-type: application/json", url]
    if log:
        if os.path.exists(log):
            os.unlink(log)  # h2load appends to an existing log
        argv[7:7] = ["--log-file", log]
    started = time.monotonic()
    p = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out = p.stdout.read().decode(errors="replace")
    _, status, usage = os.wait4(p.pid, 0)
    wall = time.monotonic() - started
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        die(f"h2load failed ({p.returncode}): {' '.join(argv)}\n{out}")
    return H2load(out, usage.ru_utime + usage.ru_stime, wall)


def under_load(server, body, args):
    """Server CPU per request (us), req/s, h2load's result, server CPU share."""
    h2load(server.url(), body, ["-n", "3000", *args[2:]])  # warm-up, same shape
    before = cpu_seconds(server.pid)
    t = time.monotonic()
    r = h2load(server.url(), body, args)
    wall = time.monotonic() - t
    used = cpu_seconds(server.pid) - before
    return used / r.done * 1e6, r, used / wall


def percentiles(log):
    with open(log) as f:
        lat = sorted(int(line.split("\t")[2]) for line in f if line.strip())
    if not lat:
        die("h2load logged no requests")

    def at(q):
        return lat[min(len(lat) - 1, int(q * len(lat)))] / 1000.0

    return len(lat), at(0.5), at(0.99), at(0.999), lat[-1] / 1000.0


def busy_processes(interval=0.5):
    """Other processes using a CPU now: the figures are only as good as the quiet."""
    def sample():
        ticks = {}
        for pid in os.listdir("/proc"):
            if pid.isdigit():
                try:
                    with open(f"/proc/{pid}/stat") as f:
                        head, rest = f.read().rsplit(")", 1)
                    fields = rest.split()
                    ticks[pid] = (head.split("(", 1)[1], int(fields[11]) + int(fields[12]))
                except (OSError, IndexError, ValueError):
                    pass
        return ticks
    a = sample()
    time.sleep(interval)
    b = sample()
    busy = [(name, (t - a[pid][1]) / CLK_TCK / interval) for pid, (name, t) in b.items()
            if pid in a and pid != str(os.getpid())]
    return sorted((x for x in busy if x[1] > 0.1), key=lambda x: -x[1])


def claim_priority():
    """Nice -20 for this session's autogroup (every process started here)."""
    try:
        with open("/proc/self/autogroup", "w") as f:
            f.write("-20")
    except OSError as e:
        print(f"note: cannot raise the priority of this session's autogroup ({e}); "
              "figures may suffer from other processes on the machine")


def machine_note(when):
    load = os.getloadavg()
    busy = ", ".join(f"{name} {share * 100:.0f}%" for name, share in busy_processes()) or "none"
    print(f"[{when}] load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; other busy processes: {busy}")


def verdict(ok):
    return "ok" if ok else "MISSED"


# --- the benchmarks ---------------------------------------------------------

PROTOCOLS = {
    # HTTP/1.1: 16 keep-alive connections, one request at a time on each.
    "HTTP/1.1": ["--h1", "-c", "16", "-m", "1"],
    # HTTP/2: 4 connections, 16 concurrent streams each.
    "HTTP/2": ["-c", "4", "-m", "16"],
}


def capture_response(work, server):
    """What the webhook answers for the fixture: the baselines send it back."""
    import ssl
    ctx = ssl.create_default_context(cafile=work.ca)
    with open(FIXTURE, "rb") as f:
        body = f.read()
    request = urllib.request.Request(server.url(), data=body, method="POST",
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, context=ctx, timeout=5) as r:
        answer = r.read()
    reply = json.loads(answer)["response"]
    if "patch" not in reply:
        die(f"the fixture was not injected: {reply}")
    work.response = os.path.join(work.dir, "response.json")
    with open(work.response, "wb") as f:
        f.write(answer)
    return len(body), len(answer)


def bench_cpu(work, seconds, rounds):
    print(f"== CPU per review: server utime+stime / requests, keep-alive load, {seconds} s per run, "
          f"median of {rounds} rounds (alternating servers)")
    server = Server(work, "forcebacklog")
    size_in, size_out = capture_response(work, server)
    print(f"   review {size_in} bytes (3-container Pod CREATE, annotated), answer {size_out} bytes")
    servers = [Server(work, "baseline:hyper"), Server(work, "baseline+mimalloc:hyper"),
               Server(work, "baseline:hyper-nagle"), Server(work, "baseline:axum-server"),
               Server(work, "baseline+mimalloc:hyper-review"), server]
    cases = [(s, FIXTURE, s.kind) for s in servers]
    cases.append((server, work.unannotated, "forcebacklog (pod not annotated)"))
    if work.server_musl:
        cases.append((Server(work, "forcebacklog-musl"), FIXTURE, "forcebacklog (musl build)"))
    else:
        print("   (no musl build: target/x86_64-unknown-linux-musl/release/forcebacklog is missing)")
    results = {}
    for proto, args in PROTOCOLS.items():
        load = ["-D", str(seconds), *args]
        samples = {name: [] for _, _, name in cases}
        for _ in range(rounds):
            for s, body, name in cases:
                us, r, share = under_load(s, body, load)
                samples[name].append((us, r.rps, share))
        print(f"\n   {proto} (h2load {' '.join(args)})")
        print(f"   {'server':<42} {'us/review':>10} {'req/s':>9} {'server CPU':>11} {'vs hyper':>9} "
              f"{'vs hyper+mi':>12} {'vs axum-server':>15}")
        med = {n: (statistics.median(x[0] for x in v), statistics.median(x[1] for x in v),
                   statistics.median(x[2] for x in v)) for n, v in samples.items()}
        base_h = med["baseline:hyper"][0]
        base_m = med["baseline+mimalloc:hyper"][0]
        base_a = med["baseline:axum-server"][0]
        for name, (us, rps, share) in med.items():
            print(f"   {name:<42} {us:>10.1f} {rps:>9.0f} {share * 100:>10.0f}% {us / base_h:>8.2f}x "
                  f"{us / base_m:>11.2f}x {us / base_a:>14.2f}x")
        ours = med["forcebacklog"][0]
        print(f"   target: forcebacklog <= 2x baseline: {ours / base_h:.2f}x hyper ({verdict(ours / base_h <= 2)}), "
              f"{ours / base_m:.2f}x hyper+mimalloc ({verdict(ours / base_m <= 2)}), "
              f"{ours / base_a:.2f}x axum-server ({verdict(ours / base_a <= 2)})")
        results[proto] = (ours, base_h, base_m, base_a, med["forcebacklog"][1])
    return server, results


def bench_latency(work, seconds, rate, server=None):
    print(f"\n== Latency at a fixed {rate} req/s for {seconds} s (open loop: bench/webhook loadgen; "
          f"latency from the request's tick to the response's last byte)")
    server = server or Server(work, "forcebacklog")
    out = {}
    for proto, name in (("h1", "HTTP/1.1"), ("h2", "HTTP/2")):
        figures = None
        for run_seconds in (2, seconds):  # a warm-up run, then the measurement
            p = subprocess.run([*NICE, "taskset", "-c", CLIENT_CPU, work.loadgen, server.url(), FIXTURE, work.ca,
                                proto, str(rate), str(run_seconds)], capture_output=True, text=True)
            if p.returncode != 0:
                die(f"loadgen failed: {p.stderr}")
            figures = dict(kv.split("=", 1) for kv in p.stdout.split())
        if figures["errors"] != "0" or figures["timeouts"] != "0":
            die(f"loadgen saw failures: {p.stdout}")
        p99 = float(figures["p99"])
        print(f"   {name:<9} {figures['rate']:>5} req/s  n={figures['ok']}  p50 {figures['p50']} ms  "
              f"p90 {figures['p90']} ms  p99 {figures['p99']} ms  p99.9 {figures['p999']} ms  "
              f"max {figures['max']} ms   target p99 < 1 ms: {verdict(p99 < 1.0)}")
        out[name] = figures
    return server, out


def nodelay_seen(server):
    """True when strace sees the server set TCP_NODELAY on an accepted socket."""
    if shutil.which("strace") is None:
        return None
    trace = subprocess.Popen(["strace", "-f", "-e", "trace=setsockopt", "-p", str(server.pid)],
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(0.5)
    try:
        socket.create_connection(("127.0.0.1", server.port), timeout=1).close()
        time.sleep(0.3)
    finally:
        trace.send_signal(signal.SIGINT)
        err = trace.communicate(timeout=5)[1].decode(errors="replace")
    return "TCP_NODELAY, [1]" in err


def bench_streams(work, seconds, server=None):
    print(f"\n== One HTTP/2 connection x 64 concurrent streams, {seconds} s (h2load -c 1 -m 64)")
    server = server or Server(work, "forcebacklog")
    seen = nodelay_seen(server)
    if seen is None:
        print("   TCP_NODELAY: strace not installed (Debian package strace); not checked here")
    else:
        print(f"   TCP_NODELAY on the accepted socket (strace setsockopt): {'set' if seen else 'NOT SET'}")
    log = os.path.join(work.dir, "streams.tsv")
    args = ["-c", "1", "-m", "64"]
    h2load(server.url(), FIXTURE, ["-n", "3000", *args])
    before = cpu_seconds(server.pid)
    t = time.monotonic()
    r = h2load(server.url(), FIXTURE, ["-D", str(seconds), *args], log=log)
    wall = time.monotonic() - t
    share = (cpu_seconds(server.pid) - before) / wall
    n, p50, p99, p999, worst = percentiles(log)
    print(f"   {r.rps:.0f} req/s  p50 {p50:.3f} ms  p99 {p99:.3f} ms  p99.9 {p999:.3f} ms  max {worst:.3f} ms")
    print(f"   server CPU {share * 100:.0f}% of its core, load generator {r.cpu / r.wall * 100:.0f}% of its core")
    print(f"   target p99 < 5 ms: {verdict(p99 < 5.0)}; CPU-bound (a core near 100%, no stalls): "
          f"{verdict(max(share, r.cpu / r.wall) > 0.85)}")
    return server, (r.rps, p50, p99, worst, share, seen)


def bench_memory(work, seconds, server=None):
    print(f"\n== Peak RSS under load (VmHWM), {seconds} s each of 64 HTTP/1.1 connections and "
          f"8 HTTP/2 connections x 64 streams")
    server = server or Server(work, "forcebacklog")
    h2load(server.url(), FIXTURE, ["-D", str(seconds), "--h1", "-c", "64", "-m", "1"])
    h2load(server.url(), FIXTURE, ["-D", str(seconds), "-c", "8", "-m", "64"])
    hwm = proc_status(server.pid, "VmHWM") / 1024
    rss = proc_status(server.pid, "VmRSS") / 1024
    print(f"   VmHWM {hwm:.1f} MiB (now VmRSS {rss:.1f} MiB)   target < 20 MiB: {verdict(hwm < 20)}")
    return server, hwm


def bench_startup(work, runs):
    print(f"\n== Process start to /readyz = 200, {runs} starts (polled every 0.5 ms)")
    times = []
    for _ in range(runs):
        s = Server(work, "forcebacklog")
        times.append(time.monotonic() - s.started)
        s.process.send_signal(signal.SIGTERM)
        s.process.wait(timeout=25)
    times.sort()
    med, worst = statistics.median(times) * 1000, times[-1] * 1000
    print(f"   median {med:.1f} ms, max {worst:.1f} ms   target < 50 ms: {verdict(worst < 50)}")
    return med, worst


def bench_scale(work, seconds):
    print("\n== Time per review as the pod grows (in process, review::handle, pinned to CPU 0)")
    p = subprocess.run([*NICE, "taskset", "-c", SERVER_CPU, work.scale, FIXTURE, str(seconds)],
                       capture_output=True, text=True)
    if p.returncode != 0:
        die(f"scale failed: {p.stderr}")
    for line in p.stdout.splitlines():
        print("   " + line)


def p99_at(work, server, rate, seconds):
    """loadgen's figures for HTTP/1.1 at a fixed rate (after a 2 s warm-up)."""
    loadgen_run(work, server, rate, 2)
    return loadgen_run(work, server, rate, seconds)


def bench_load(work, seconds, rounds):
    """CPU per injected review (h2load --h1 -c 16) and p99 at 1,000 req/s
    (loadgen, HTTP/1.1), forcebacklog against the bare server, the two
    alternating in each round; medians of the rounds."""
    print(f"== Under load: CPU per injected review (h2load --h1 -c 16 -m 1, {seconds} s) and latency at "
          f"1,000 req/s (loadgen HTTP/1.1, 10 s); servers on CPU {SERVER_CPU}, clients on CPU {CLIENT_CPU}; "
          f"median of {rounds} rounds")
    server = Server(work, "forcebacklog")
    capture_response(work, server)
    bare = Server(work, "baseline+mimalloc:hyper")
    rows = {"bare axum+rustls (mimalloc)": (bare, []), "forcebacklog": (server, [])}
    for i in range(rounds):
        machine_note(f"round {i + 1}")
        for name, (s, samples) in rows.items():
            us, r, share = under_load(s, FIXTURE, ["-D", str(seconds), "--h1", "-c", "16", "-m", "1"])
            f = p99_at(work, s, 1000, 10)
            samples.append((us, float(f["p50"]), float(f["p99"]), float(f["p999"])))
            print(f"   round {i + 1} {name:<28} {us:>6.1f} us/review  p50 {f['p50']}  p99 {f['p99']}  "
                  f"p99.9 {f['p999']} ms", flush=True)
    med = {name: tuple(statistics.median(x[k] for x in samples) for k in range(4))
           for name, (_, samples) in rows.items()}
    print(f"   {'server':<28} {'us/review':>10} {'p50 ms':>8} {'p99 ms':>8} {'p99.9 ms':>9}")
    for name, (us, p50, p99, p999) in med.items():
        print(f"   {name:<28} {us:>10.1f} {p50:>8.3f} {p99:>8.3f} {p999:>9.3f}")
    cpu = med["forcebacklog"][0] / med["bare axum+rustls (mimalloc)"][0]
    tail = med["forcebacklog"][2] / med["bare axum+rustls (mimalloc)"][2]
    print(f"   CPU {cpu:.2f}x the bare server (target <= 1.5x: {verdict(cpu <= 1.5)}), "
          f"p99 {tail:.2f}x (target <= 1.3x: {verdict(tail <= 1.3)})")
    return med


def proc_counters(pid):
    """Threads, context switches (voluntary, involuntary) over all threads,
    and minor page faults of a process, from /proc."""
    threads = os.listdir(f"/proc/{pid}/task")
    vol = invol = 0
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                for line in f:
                    if line.startswith("voluntary_ctxt_switches:"):
                        vol += int(line.split()[1])
                    elif line.startswith("nonvoluntary_ctxt_switches:"):
                        invol += int(line.split()[1])
        except FileNotFoundError:
            pass
    with open(f"/proc/{pid}/stat") as f:
        minflt = int(f.read().rsplit(")", 1)[1].split()[7])
    return len(threads), vol, invol, minflt


def loadgen_run(work, server, rate, seconds):
    """loadgen's figures for one HTTP/1.1 run at a fixed rate; failures end the benchmark."""
    p = subprocess.run([*NICE, "taskset", "-c", CLIENT_CPU, work.loadgen, server.url(), FIXTURE, work.ca,
                        "h1", str(rate), str(seconds)], capture_output=True, text=True)
    if p.returncode != 0:
        die(f"loadgen failed: {p.stderr}")
    figures = dict(kv.split("=", 1) for kv in p.stdout.split())
    if figures["errors"] != "0" or figures["timeouts"] != "0":
        die(f"loadgen saw failures: {p.stdout}")
    return figures


def syscall_mix(work, server, rate, seconds):
    """System calls per request while loadgen runs, from `strace -c -f -p`
    (which slows the server: only the counts are used)."""
    out = os.path.join(work.dir, f"strace-{server.pid}.txt")
    tracer = subprocess.Popen(["strace", "-c", "-f", "-o", out, "-p", str(server.pid)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    figures = loadgen_run(work, server, rate, seconds)
    tracer.send_signal(signal.SIGINT)
    tracer.wait(timeout=30)
    calls = {}
    with open(out) as f:
        for line in f:
            cols = line.split()
            if len(cols) >= 5 and cols[0][0].isdigit() and cols[-1] != "total":
                calls[cols[-1]] = int(cols[3])
    n = int(figures["ok"])
    return {name: c / n for name, c in sorted(calls.items(), key=lambda kv: -kv[1])}


def bench_tail(work, seconds):
    """Where the p99 at 1,000 req/s comes from: per request, the servers'
    context switches, page faults and system calls; their threads; and the
    p99 again with mimalloc's purging off (MIMALLOC_PURGE_DELAY=-1)."""
    need("strace", "strace")
    rate = 1000
    print(f"== Tail at {rate} req/s (loadgen HTTP/1.1, {seconds} s after a 2 s warm-up); "
          f"servers on CPU {SERVER_CPU}, loadgen on CPU {CLIENT_CPU}")
    kinds = (("bare axum+rustls (mimalloc)", "baseline+mimalloc:hyper"), ("forcebacklog", "forcebacklog"))
    first = Server(work, "forcebacklog")
    capture_response(work, first)  # the bare server's fixed answer
    first.process.terminate()
    first.process.wait(timeout=30)
    for purge in ("default", "-1"):
        if purge != "default":
            os.environ["MIMALLOC_PURGE_DELAY"] = purge
        for name, kind in kinds:
            server = Server(work, kind)
            loadgen_run(work, server, rate, 2)
            t0, v0, i0, f0 = proc_counters(server.pid)
            fig = loadgen_run(work, server, rate, seconds)
            t1, v1, i1, f1 = proc_counters(server.pid)
            n = int(fig["ok"])
            print(f"   {name:<28} purge {purge:<7} threads {t1:>2}  p50 {fig['p50']}  p99 {fig['p99']}  "
                  f"p99.9 {fig['p999']} ms  per request: {(v1 - v0) / n:.2f} voluntary + "
                  f"{(i1 - i0) / n:.3f} involuntary switches, {(f1 - f0) / n:.3f} page faults", flush=True)
            if purge == "default":
                mix = syscall_mix(work, server, rate, 3)
                print("      system calls per request: " +
                      ", ".join(f"{k} {v:.2f}" for k, v in list(mix.items())[:8]), flush=True)
            server.process.terminate()
            server.process.wait(timeout=30)
    os.environ.pop("MIMALLOC_PURGE_DELAY", None)


def callgrind_total(path):
    """The instructions (Ir) a callgrind run counted, all threads."""
    with open(path) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                return int(line.split()[1])
    die(f"no totals in {path}")


def instructions_run(work, kind, body, n, out):
    """User-space instructions of one server process (start, one TLS
    connection with n HTTP/1.1 keep-alive requests, SIGTERM)."""
    valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--quiet"]
    server = Server(work, kind, wrap=valgrind)
    h2load(server.url(), body, ["--h1", "-c", "1", "-n", str(n)])
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=120)
    except subprocess.TimeoutExpired:
        die(f"{kind} under callgrind did not exit within 120 s of SIGTERM")
    return callgrind_total(out)


def bench_instructions(work, small, large, keep):
    print(f"== User-space instructions per review under callgrind: "
          f"(Ir at N={large} - Ir at N={small}) / {large - small}, "
          f"one HTTP/1.1 keep-alive connection (h2load --h1 -c 1 -n N)")
    # The bare servers answer what forcebacklog answers.
    server = Server(work, "forcebacklog")
    size_in, size_out = capture_response(work, server)
    server.process.send_signal(signal.SIGTERM)
    server.process.wait(timeout=25)
    print(f"   review {size_in} bytes (3-container Pod CREATE), answer {size_out} bytes")
    cases = [("baseline:hyper", FIXTURE, "bare axum+rustls (glibc malloc)"),
             ("baseline+mimalloc:hyper", FIXTURE, "bare axum+rustls (mimalloc)"),
             ("baseline+mimalloc:hyper-review", FIXTURE, "bare + review::handle, injected"),
             ("baseline+mimalloc:hyper-review", work.unannotated, "bare + review::handle, unannotated"),
             ("forcebacklog", FIXTURE, "forcebacklog, injected review"),
             ("forcebacklog", work.unannotated, "forcebacklog, unannotated pod")]
    per = {}
    for kind, body, name in cases:
        counts = []
        for n in (small, large):
            tag = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
            out = os.path.join(keep or work.dir, f"callgrind.{tag}.{n}")
            counts.append(instructions_run(work, kind, body, n, out))
        per[name] = (counts[1] - counts[0]) / (large - small)
        print(f"   {name:<34} {per[name] / 1000:>8.1f}k instructions/review "
              f"(N={small}: {counts[0]}, N={large}: {counts[1]})", flush=True)
    bare = per["bare axum+rustls (mimalloc)"]
    injected = per["forcebacklog, injected review"] / bare
    untouched = per["forcebacklog, unannotated pod"] / bare
    print(f"   vs the bare server with mimalloc: injected {injected:.2f}x "
          f"(target <= 2.0x: {verdict(injected <= 2.0)}), "
          f"unannotated {untouched:.2f}x (target <= 1.5x: {verdict(untouched <= 1.5)})")
    if keep:
        print(f"   profiles in {keep} (callgrind_annotate FILE)")
    return per


def build(musl):
    need("cargo", "cargo (rustup)")
    for cwd in (ROOT, HERE):
        p = subprocess.run(["cargo", "build", "--release", "--quiet"], cwd=cwd)
        if p.returncode != 0:
            die(f"cargo build --release failed in {cwd}")
    if not musl:
        return
    # The image's build: static musl (needs musl-gcc for ring, Debian musl-tools).
    targets = subprocess.run(["rustup", "target", "list", "--installed"], capture_output=True, text=True)
    if shutil.which("musl-gcc") and "x86_64-unknown-linux-musl" in targets.stdout:
        env = dict(os.environ, CC_x86_64_unknown_linux_musl="musl-gcc")
        p = subprocess.run(["cargo", "build", "--release", "--quiet", "--target", "x86_64-unknown-linux-musl"],
                           cwd=ROOT, env=env)
        if p.returncode != 0:
            die("cargo build --release --target x86_64-unknown-linux-musl failed")
    else:
        print("note: no musl-gcc (Debian musl-tools) or no x86_64-unknown-linux-musl target: "
              "the musl build is not measured")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("what", nargs="?", default="all",
                        choices=["instructions", "load", "tail", "cpu", "latency", "streams", "memory", "startup",
                                 "scale", "all"])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each load run")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of the CPU comparison")
    parser.add_argument("--no-build", action="store_true", help="use the binaries as built")
    parser.add_argument("--keep", metavar="DIR",
                        help="instructions: keep the callgrind profiles in DIR")
    a = parser.parse_args()
    if not 1 <= a.seconds <= 60 or not 1 <= a.rounds <= 9:
        die("--seconds must be in 1..60 and --rounds in 1..9")
    need("h2load", "nghttp2-client")
    need("taskset", "util-linux")
    need("openssl", "openssl")
    if (os.cpu_count() or 1) < 2:
        die("needs 2 CPUs: the server on CPU 0, the load generator on CPU 1")
    if not a.no_build:
        # Only the CPU comparison measures the musl build.
        build(musl=a.what in ("cpu", "all"))
    seconds = int(a.seconds)
    claim_priority()
    machine_note("before")
    work = Work()
    started = time.monotonic()
    try:
        server = None
        if a.what == "instructions":
            need("valgrind", "valgrind")
            if a.keep:
                os.makedirs(a.keep, exist_ok=True)
            bench_instructions(work, 100, 1100, a.keep and os.path.abspath(a.keep))
        if a.what == "load":
            bench_load(work, seconds, a.rounds)
        if a.what == "tail":
            bench_tail(work, max(seconds, 10))
        if a.what in ("cpu", "all"):
            server, _ = bench_cpu(work, seconds, a.rounds)
        if a.what in ("latency", "all"):
            machine_note("latency")
            server, _ = bench_latency(work, max(seconds, 10), 1000, server)
        if a.what in ("streams", "all"):
            machine_note("streams")
            server, _ = bench_streams(work, seconds, server)
        if a.what in ("memory", "all"):
            machine_note("memory")
            _, _ = bench_memory(work, seconds, server)
        if a.what in ("startup", "all"):
            bench_startup(work, 20)
        if a.what in ("scale", "all"):
            machine_note("scale")
            bench_scale(work, 0.5)
    finally:
        work.close()
    machine_note("after")
    print(f"(done in {time.monotonic() - started:.0f} s)")


if __name__ == "__main__":
    main()
