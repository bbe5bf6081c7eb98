"""Charts of bench/delivery.py's results; runs in the throwaway virtualenv (matplotlib).

Usage: ``python bench/_plot.py RESULTS.json DELIVERY.png MEMORY.png``
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

COLOURS = {
    "--concurrency 1": "#9ecae1",
    "--concurrency 2": "#4292c6",
    "--concurrency 4": "#08519c",
    "--processes 2 --concurrency 1": "#74c476",
    "--processes 2 --concurrency 2": "#238b45",
}


def _series(run: dict) -> tuple[list[float], list[int]]:
    t = [0.0] + [s["t"] for s in run["samples"]] + [run["seconds"]]
    n = [0] + [s["delivered"] for s in run["samples"]] + [run["delivered"]]
    return t, n


def delivery_chart(results: dict, path: str) -> None:
    """Left: every sender on one time axis. Right: the same, zoomed on postroom's runs."""
    total = results["messages"]
    django = results.get("django")
    source = results["smtp_source"]["best_rate"]
    longest = max(run["seconds"] for run in results["postroom_runs"])
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2), dpi=110, width_ratios=(3, 2))
    for ax, zoomed in zip(axes, (False, True), strict=True):
        for run in results["postroom_runs"]:
            best = run["setup"] == results["best_setup"]
            ax.plot(
                *_series(run),
                color=COLOURS.get(run["setup"], "#2171b5"),
                linewidth=2.4 if best else 1.4,
                label=f"postroom worker {run['setup']}: {run['rate']:,.0f} msg/s",
            )
        if django:
            ax.plot(
                *_series(django),
                color="#d95f02",
                linewidth=2.2,
                label=f"django-post-office send_queued_mail: {django['rate']:,.0f} msg/s",
            )
        ax.plot(
            [0, total / source],
            [0, total],
            color="#333333",
            linestyle="--",
            linewidth=1.3,
            label=f"smtp-source -s 4 -d (C client), best run: {source:,.0f} msg/s",
        )
        ax.set_ylim(0, total * 1.04)
        if zoomed:
            ax.set_xlim(0, longest * 1.05)
            ax.set_title("zoomed on postroom's runs", fontsize=10)
        else:
            ax.set_xlim(0, None)
            ax.set_title("all senders", fontsize=10)
            ax.set_ylabel("messages delivered and recorded as sent")
            ax.legend(loc="lower right", fontsize=8.5)
        ax.set_xlabel("seconds since the sending process started")
        ax.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
        ax.grid(alpha=0.3)
    fig.suptitle(
        f"Delivering {total:,} queued messages to Postfix smtp-sink on loopback "
        f"({results['machine']['nproc']} cores; rates are end to end, process start to exit)"
    )
    fig.tight_layout()
    fig.savefig(path)


def memory_chart(results: dict, path: str) -> None:
    big = results.get("big")
    if not big:
        return
    samples = [s for s in big["samples"] if s["rss_kib"]]
    fig, ax = plt.subplots(figsize=(9, 4.5), dpi=120)
    ax.plot(
        [s["t"] for s in samples],
        [s["rss_kib"] / 1024 for s in samples],
        color="#08519c",
        linewidth=2,
        label="RSS of the worker processes (MiB)",
    )
    ax.set_ylim(0, max(s["rss_kib"] for s in samples) / 1024 * 1.3)
    ax.set_xlabel("seconds since the worker started")
    ax.set_ylabel("resident memory, MiB")
    other = ax.twinx()
    other.plot(
        [s["t"] for s in samples],
        [big["messages"] - s["delivered"] for s in samples],
        color="#999999",
        linestyle="--",
        label="messages still queued",
    )
    other.set_ylabel("messages still queued")
    other.set_ylim(0, big["messages"] * 1.05)
    other.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    ax.set_title(f"postroom worker draining {big['messages']:,} queued messages ({big['setup']})")
    lines = ax.get_legend_handles_labels()
    more = other.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], loc="lower left", fontsize=9)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    with open(sys.argv[1]) as file:
        results = json.load(file)
    delivery_chart(results, sys.argv[2])
    memory_chart(results, sys.argv[3])


if __name__ == "__main__":
    main()
