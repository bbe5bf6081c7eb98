"""Chart of bench/enqueue.py: msg/s against outbox rows; runs in the tools virtualenv.

Usage: ``python bench/_plot_enqueue.py RESULTS.json CHART.png``
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
    slices = results["slices"]
    rows = [s["outbox_rows"] for s in slices]
    fig, ax = plt.subplots(figsize=(8, 4.2))
    ax.plot(
        rows,
        [s["floor_rate"] for s in slices],
        marker="o",
        color="#999999",
        label="floor: sqlite3 executemany, same rows and schema",
    )
    ax.plot(
        rows,
        [s["send_many_rate"] for s in slices],
        marker="o",
        color="#08519c",
        label="Postroom.send_many (composing included)",
    )
    ax.axhline(
        results["targets"]["send_many_rate"],
        color="#d95f02",
        linestyle="--",
        linewidth=1,
        label="target",
    )
    ax.set_ylim(0, None)
    ax.set_xlabel("outbox rows at the end of the slice")
    ax.set_ylabel("messages committed per second")
    ax.xaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    ax.yaxis.set_major_formatter(matplotlib.ticker.StrMethodFormatter("{x:,.0f}"))
    ax.set_title(
        f"send_many of {results['batch']:,} × {results['message_bytes']:,} bytes as the "
        f"outbox grows (SQLite WAL, synchronous=FULL)",
        fontsize=10,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    fig.tight_layout()
    fig.savefig(sys.argv[2])


if __name__ == "__main__":
    main()
