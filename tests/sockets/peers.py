#!/usr/bin/env python3
"""Listeners and clients for the `forcebacklog sockets` tests, run inside
the test's network namespace. Prints `ready` once everything is set up,
then holds its sockets open until stdin closes.

  peers.py listen ADDRESS BACKLOG PORT...   bind ADDRESS:PORT for each PORT
                                            and listen(BACKLOG); never accept
  peers.py burst ADDRESS PORT N             N non-blocking connects at once,
                                            then 1.5 s for the handshakes
                                            (and the dropped ones) to happen
  peers.py scrape URL                       print the body of GET URL
"""

import resource
import socket
import sys
import time
import urllib.request


def family(address):
    return socket.AF_INET6 if ":" in address else socket.AF_INET


def hold(sockets):
    print("ready", flush=True)
    sys.stdin.read()
    for s in sockets:
        s.close()


def more_files(n):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < n + 64:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, n + 64), hard))


def listen(address, backlog, ports):
    more_files(len(ports))
    sockets = []
    for port in ports:
        s = socket.socket(family(address), socket.SOCK_STREAM)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((address, port))
        s.listen(backlog)
        sockets.append(s)
    hold(sockets)


def burst(address, port, n):
    more_files(n)
    sockets = []
    for _ in range(n):
        s = socket.socket(family(address), socket.SOCK_STREAM)
        s.setblocking(False)
        s.connect_ex((address, port))
        sockets.append(s)
    time.sleep(1.5)
    hold(sockets)


def main(argv):
    if argv[1] == "listen":
        listen(argv[2], int(argv[3]), [int(p) for p in argv[4:]])
    elif argv[1] == "burst":
        burst(argv[2], int(argv[3]), int(argv[4]))
    elif argv[1] == "scrape":
        with urllib.request.urlopen(argv[2], timeout=10) as response:
            sys.stdout.write(response.read().decode())
    else:
        raise SystemExit(f"unknown mode {argv[1]}")


if __name__ == "__main__":
    main(sys.argv)
