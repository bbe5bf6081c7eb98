"""Chart of bench/api.py's latencies; runs in the throwaway virtualenv (matplotlib).

Usage: ``python bench/_plot_api.py RESULTS.json CHART.png``
"""

from __future__ import annotations

import json
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def main() -> None:
    with open(sys.argv[1]) as file:
        results = json.load(file)
    fig, ax = plt.subplots(figsize=(8, 4.2))
    for name, case in results["latency"].items():
        samples = sorted(case["samples_ms"])
        share = [(i + 1) / len(samples) for i in range(len(samples))]
        ax.step(samples, share, where="post", label=name)
    ax.set_xscale("log")
    ax.set_xlabel("POST sent → 250 at the SMTP sink (ms, log scale)")
    ax.set_ylabel("share of messages")
    ax.set_title("Accepted → delivered, idle worker")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(sys.argv[2])


if __name__ == "__main__":
    main()
