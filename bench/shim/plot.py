#!/usr/bin/env python3
"""Renders the scraped burst trials (scrape_burst.py's JSON, without and
with the shim) as one PNG: the listener's backlog and accept-queue length,
and the namespace's listen overflows, over time.

usage: plot.py WITHOUT.json WITH.json OUT.png
Needs matplotlib (pip install matplotlib).
"""

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def load(path):
    with open(path) as f:
        return json.load(f)


def main():
    without, with_shim, out = load(sys.argv[1]), load(sys.argv[2]), sys.argv[3]
    fig, axes = plt.subplots(2, 2, figsize=(11, 6.5), sharex="col")
    for col, (trial, title) in enumerate(
        ((without, "without the shim: listen(fd, 20)"),
         (with_shim, "with the shim: BACKLOG=4096"))
    ):
        s, r = trial["samples"], trial["result"]
        t = [x["t"] for x in s]
        top, bottom = axes[0][col], axes[1][col]
        top.plot(t, [x["queue"] for x in s], label="accept queue (QUEUE)", color="tab:blue")
        top.plot(t, [x["backlog"] for x in s], label="backlog", color="tab:gray",
                 linestyle="--")
        top.set_yscale("symlog", linthresh=25)
        top.set_ylim(0, 6000)
        top.set_title(f"{title}\n{r['served']}/{r['n']} served within 5 s")
        top.set_ylabel("connections")
        top.legend(loc="upper right", fontsize=8)
        bottom.plot(t, [x["overflows"] for x in s], color="tab:red")
        bottom.set_ylabel("ListenOverflows (total)")
        bottom.set_xlabel("seconds since the burst of %d connections" % r["n"])
        for ax in (top, bottom):
            ax.grid(True, alpha=0.3)
    top_max = max(x["overflows"] for trial in (without, with_shim) for x in trial["samples"])
    for ax in axes[1]:
        ax.set_ylim(-0.02 * max(top_max, 1), max(top_max, 1) * 1.05)
    fig.suptitle("forcebacklog sockets --serve, scraped every 20 ms during a burst "
                 "(server: 1 thread, 1 ms per request)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=90)


if __name__ == "__main__":
    main()
