"""Chart of bench/events.py; runs in the throwaway virtualenv (matplotlib).

Usage: ``python bench/_plot_events.py RESULTS.json CHART.png``
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

KINDS = {"emit": "emit(comment.created)", "send_many": "send_many, same messages"}


def main() -> None:
    with open(sys.argv[1]) as file:
        cases = json.load(file)["cases"]
    fig, (latency, rate) = plt.subplots(1, 2, figsize=(9, 4))
    positions = range(len(cases))
    for offset, (kind, label) in zip((-0.2, 0.2), KINDS.items(), strict=True):
        xs = [p + offset for p in positions]
        p50 = [c[kind]["p50_ms"] for c in cases]
        p99 = [c[kind]["p99_ms"] - c[kind]["p50_ms"] for c in cases]
        latency.bar(xs, p50, 0.4, yerr=[[0] * len(cases), p99], capsize=3, label=label)
        rate.bar(xs, [c[kind]["messages_per_s"] for c in cases], 0.4, label=label)
    for ax in (latency, rate):
        ax.set_xticks(list(positions), [f"{c['fanout']} recipient(s)" for c in cases])
        ax.grid(alpha=0.3, axis="y", which="both")
    latency.set_yscale("log")
    latency.set_ylabel("ms per call: p50, whisker to p99 (log scale)")
    rate.set_ylabel("messages committed per second")
    latency.legend(fontsize=8, loc="upper left")
    fig.suptitle("Event fan-out vs send_many of the same messages (SQLite, one process)")
    fig.tight_layout()
    fig.savefig(sys.argv[2])


if __name__ == "__main__":
    main()
