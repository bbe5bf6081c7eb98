"""Helpers shared by the benchmarks: tools, child processes, sampling, machine facts.

Nothing here is postroom-specific; ``delivery.py`` is the benchmark itself.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
SINK = "/usr/sbin/smtp-sink"
SOURCE = "/usr/sbin/smtp-source"
POLICY_RC = Path("/usr/sbin/policy-rc.d")


# -- child processes -------------------------------------------------------------------


class Processes:
    """Starts children in their own process groups and ends every one still alive on
    exit (TERM, then KILL), so the benchmark never leaves a sink or worker behind."""

    def __init__(self) -> None:
        self._children: list[subprocess.Popen[bytes]] = []

    def start(self, args: Sequence[str], **kwargs: Any) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen(list(args), start_new_session=True, **kwargs)
        self._children.append(proc)
        return proc

    def run(self, args: Sequence[str], *, timeout: float, **kwargs: Any) -> tuple[int, float]:
        """Run to the end; returns (exit status, wall seconds). Ends it after ``timeout``."""
        started = time.perf_counter()
        proc = self.start(args, **kwargs)
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop(proc)
            raise
        return code, time.perf_counter() - started

    @staticmethod
    def stop(proc: subprocess.Popen[bytes], grace: float = 5.0) -> None:
        if proc.poll() is not None:
            return
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=grace)
                return
            except subprocess.TimeoutExpired:
                continue

    def close(self) -> None:
        for proc in reversed(self._children):
            self.stop(proc)
        self._children.clear()

    def __enter__(self) -> Processes:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def terminate_on_sigterm() -> None:
    """Turn SIGTERM into KeyboardInterrupt so that every ``with`` block cleans up."""

    def handler(signum: int, _frame: object) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, handler)


# -- tools -----------------------------------------------------------------------------


def apt_install(packages: Sequence[str], log: Callable[[str], None]) -> None:
    """``apt-get install`` without starting any daemon the packages bring (policy-rc.d
    answers 101, 'action not allowed', while it runs) and without debconf questions."""
    if os.geteuid() != 0:
        sys.exit(f"{' '.join(packages)} missing: run as root or install it first")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if "postfix" in packages:  # no configuration: the postfix daemon stays unconfigured
        subprocess.run(
            ["debconf-set-selections"],
            input=b"postfix postfix/main_mailer_type select No configuration\n",
            check=False,
        )
    ours = not POLICY_RC.exists()
    if ours:
        POLICY_RC.write_text("#!/bin/sh\nexit 101\n")
        POLICY_RC.chmod(0o755)
    try:
        log(f"apt-get update and install {' '.join(packages)} ...")
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True)
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    finally:
        if ours:
            POLICY_RC.unlink(missing_ok=True)


def postfix_running() -> bool:
    return (
        subprocess.run(["/usr/sbin/postfix", "status"], capture_output=True, check=False).returncode
        == 0
    )


def ensure_postfix_tools(log: Callable[[str], None]) -> None:
    """smtp-sink and smtp-source (package postfix), with the postfix daemon not left
    running by the install."""
    if Path(SINK).exists() and Path(SOURCE).exists():
        return
    apt_install(["postfix"], log)
    if postfix_running():  # started by the install despite policy-rc.d: not ours to keep
        subprocess.run(["/usr/sbin/postfix", "stop"], capture_output=True, check=False)
        log("stopped the postfix daemon the install started")


def ensure_valgrind(log: Callable[[str], None]) -> str:
    found = shutil.which("valgrind")
    if found:
        return found
    apt_install(["valgrind"], log)
    return shutil.which("valgrind") or sys.exit("valgrind did not install")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.recv(100)  # the greeting
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@dataclass(frozen=True)
class Pinning:
    """Which CPUs the sink and smtp-source run on (``taskset -c``); empty: anywhere.

    On a small machine smtp-source runs at half speed when it shares a core with the
    sink (-s 4: ~15,000 msg/s on the sink's core, ~31,000 on the other one), and the
    scheduler decides which happens, so unpinned runs scatter between the two. Pinned
    apart, the C client's figure is its best. The Python senders (postroom's worker,
    django-post-office) are left unpinned: their threads may use every core, the sink's
    included, which is what they would do in production.
    """

    sink: str = ""
    source: str = ""

    @classmethod
    def choose(cls, enabled: bool) -> Pinning:
        cpus = sorted(os.sched_getaffinity(0))
        if not enabled or len(cpus) < 2 or not shutil.which("taskset"):
            return cls()
        return cls(sink=str(cpus[0]), source=",".join(str(c) for c in cpus[1:]))

    def sink_prefix(self) -> list[str]:
        return ["taskset", "-c", self.sink] if self.sink else []

    def source_prefix(self) -> list[str]:
        return ["taskset", "-c", self.source] if self.source else []


def start_sink(
    processes: Processes, log_file: IO[bytes], pinning: Pinning
) -> tuple[int, subprocess.Popen[bytes]]:
    """smtp-sink on 127.0.0.1 and a free port: quiet (no -c counters, no -v, no dumps),
    IPv4 only, up to 256 sessions at once, a backlog of 1000."""
    port = free_port()
    user = ["-u", "nobody"] if os.geteuid() == 0 else []
    proc = processes.start(
        [*pinning.sink_prefix(), SINK, "-4", *user, f"127.0.0.1:{port}", "1000"],
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    wait_for_port(port)
    return port, proc


# -- the throwaway virtualenv ----------------------------------------------------------


def tools_venv(log: Callable[[str], None], *, fresh: bool = False) -> Path:
    """A virtualenv under /tmp with bench/requirements.lock (django-post-office and
    matplotlib), installed with hashes checked. Kept between runs while the lock is
    unchanged; ``fresh`` builds it anew. Returns its python."""
    lock = BENCH / "requirements.lock"
    digest = hashlib.sha256(lock.read_bytes()).hexdigest()[:12]
    venv = Path(f"/tmp/postroom-bench-venv-{digest}")
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    if fresh and venv.exists():
        shutil.rmtree(venv)
    if stamp.exists():
        return python
    shutil.rmtree(venv, ignore_errors=True)
    base = getattr(sys, "_base_executable", sys.executable)
    log(f"creating {venv} from {lock.relative_to(ROOT)} ...")
    uv = shutil.which("uv")
    if uv:
        subprocess.run([uv, "venv", "-q", "--python", base, str(venv)], check=True)
        install = [uv, "pip", "install", "-q", "--python", str(python)]
    else:
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
        install = [str(python), "-m", "pip", "install", "-q", "--no-deps"]
    subprocess.run([*install, "--require-hashes", "-r", str(lock)], check=True)
    stamp.write_text(digest)
    return python


# -- sampling a run --------------------------------------------------------------------


def rss_kib(pid: int) -> int | None:
    """Resident set size of ``pid`` and its child processes in KiB (the worker with
    ``--processes`` forks them), or None once ``pid`` is gone."""
    own = _own_rss_kib(pid)
    if own is None:
        return None
    return own + sum(_own_rss_kib(child) or 0 for child in _children(pid))


def _children(pid: int) -> list[int]:
    found: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return found
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/children") as children:
                found += [int(child) for child in children.read().split()]
        except OSError:
            continue
    return found


def _own_rss_kib(pid: int) -> int | None:
    """Resident set size of ``pid`` alone in KiB, or None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


@dataclass
class Sample:
    t: float  # seconds since the process started
    delivered: int
    rss_kib: int | None


@dataclass
class Sampler:
    """Polls a SQLite database read-only (``count_sql``) and a process's RSS."""

    db: Path
    count_sql: str
    pid: int
    started: float
    interval: float = 0.1
    on_sample: Callable[[Sample], None] | None = None
    samples: list[Sample] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> Sampler:
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def count(self) -> int | None:
        try:
            with contextlib.closing(
                sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=0.05)
            ) as connection:
                return int(connection.execute(self.count_sql).fetchone()[0])
        except sqlite3.Error:  # busy, or the table is not there yet
            return None

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            delivered = self.count()
            if delivered is None:
                continue
            sample = Sample(time.perf_counter() - self.started, delivered, rss_kib(self.pid))
            self.samples.append(sample)
            if self.on_sample is not None:
                self.on_sample(sample)


def steady_rate(samples: Sequence[Sample], total: int) -> float | None:
    """Messages per second between 10 % and 90 % delivered (start-up and tail left out)."""

    def reached(fraction: float) -> float | None:
        return next((s.t for s in samples if s.delivered >= fraction * total), None)

    low, high = reached(0.1), reached(0.9)
    if low is None or high is None or high <= low:
        return None
    return 0.8 * total / (high - low)


# -- callgrind -------------------------------------------------------------------------


def callgrind_total(stderr_text: str) -> int:
    """Instructions executed, from callgrind's closing 'Collected : N' line."""
    found = re.findall(r"Collected\s*:\s*(\d+)", stderr_text)
    if not found:
        raise RuntimeError("callgrind printed no 'Collected' line:\n" + stderr_text[-2000:])
    return int(found[-1])


# -- machine ---------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    postfix = subprocess.run(
        ["dpkg-query", "-W", "-f=${Version}", "postfix"], capture_output=True, text=True
    ).stdout
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(ROOT), "status", "--porcelain", "src"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "kernel": platform.release(),
        "postfix": postfix or "unknown",
        "postroom_commit": commit + ("+uncommitted src changes" if dirty else ""),
        "loadavg_at_start": os.getloadavg(),
    }


def write_json(path: Path, data: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "__dict__"):
        return {k: v for k, v in vars(value).items() if not k.startswith("_")}
    raise TypeError(type(value))
