"""How long a `postroom` command takes to start and finish, wall clock.

    .venv/bin/python bench/startup.py                 # median of 20 runs per command
    .venv/bin/python bench/startup.py --baseline cab9fc9 --runs 20

Each round runs every command once, in turn (`python -c pass` first, as the floor of
any Python program here), so a noisy neighbour slows every command alike; the figure
is the median over rounds. ``--baseline REV`` adds the same commands run from another
commit's source (``git archive`` into a temporary folder, first on PYTHONPATH), in
the same rounds: before and after side by side. Writes bench/out/startup.json.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT, machine, write_json
from rich.console import Console
from rich.markup import escape
from rich.progress import Progress
from rich.table import Table

#: What users type most, by what each must import: nothing of the database for the
#: first three, SQLAlchemy and the composer for the others.
COMMANDS: dict[str, list[str]] = {
    "--help": ["--help"],
    "--version": ["--version"],
    "config describe mail.host": ["config", "describe", "mail.host"],
    "send": ["send", "--to", "ada@example.org", "--subject", "Hello", "--text", "hi"],
    "outbox list": ["outbox", "list", "--limit", "5"],
    "worker --once (empty)": ["worker", "--once"],
}
TARGETS = {"--help": 0.2, "send": 0.35}


def _timed(argv: list[str], env: dict[str, str], failed: set[str], label: str) -> float:
    started = time.perf_counter()
    done = subprocess.run(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    if done.returncode != 0:  # e.g. a command the baseline does not have yet
        failed.add(label)
    return time.perf_counter() - started


def _baseline_source(revision: str, into: Path) -> Path:
    """``revision``'s src/ folder, unpacked under ``into``."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", revision, "src"], capture_output=True, check=True
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(into)], input=archive, check=True)
    return into / "src"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="rounds (default 20)")
    parser.add_argument("--baseline", help="also run this git revision's code, side by side")
    args = parser.parse_args()
    console = Console()

    with tempfile.TemporaryDirectory(prefix="postroom-startup-") as work:
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
        base_env["POSTROOM_MAIL_TRANSPORT"] = "log"
        variants: dict[str, dict[str, str]] = {"now": {**base_env, "POSTROOM_HOME": f"{work}/now"}}
        if args.baseline:
            source = _baseline_source(args.baseline, Path(work))
            variants[args.baseline] = {
                **base_env,
                "POSTROOM_HOME": f"{work}/before",
                "PYTHONPATH": str(source),
            }
        python = sys.executable
        for env in variants.values():  # create each home's database before timing
            subprocess.run(
                [python, "-m", "postroom", "db", "upgrade"],
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
        times: dict[str, list[float]] = {"python -c pass": []}
        failed: set[str] = set()
        for variant in variants:
            for name in COMMANDS:
                times[f"{name} [{variant}]"] = []
        with Progress(console=console, transient=True) as progress:
            task = progress.add_task("rounds", total=args.runs)
            for _ in range(args.runs):
                times["python -c pass"].append(_timed([python, "-c", "pass"], base_env, failed, ""))
                for name, argv in COMMANDS.items():
                    for variant, env in variants.items():
                        run = [python, "-m", "postroom", *argv]
                        label = f"{name} [{variant}]"
                        times[label].append(_timed(run, env, failed, label))
                progress.advance(task)

    table = Table(title=f"postroom command wall time, median of {args.runs} interleaved rounds")
    for column in ("command", "median s", "min s", "max s", "target"):
        table.add_column(column, justify="left" if column == "command" else "right")
    results = {}
    for label, samples in times.items():
        name = label.split(" [")[0]
        target = TARGETS.get(name) if label.endswith("[now]") else None
        median = statistics.median(samples)
        results[label] = {
            "median": median,
            "min": min(samples),
            "max": max(samples),
            "samples": samples,
            "target": target,
        }
        if label in failed:
            table.add_row(escape(label), "fails", "", "", "")
            continue
        verdict = "" if target is None else f"≤ {target} {'met' if median <= target else 'NOT met'}"
        table.add_row(
            escape(label), f"{median:.3f}", f"{min(samples):.3f}", f"{max(samples):.3f}", verdict
        )
    console.print(table)
    out = ROOT / "bench" / "out"
    out.mkdir(parents=True, exist_ok=True)
    write_json(
        out / "startup.json",
        {"machine": machine(), "runs": args.runs, "baseline": args.baseline, "results": results},
    )
    console.print(f"wrote {out / 'startup.json'}")


if __name__ == "__main__":
    main()
