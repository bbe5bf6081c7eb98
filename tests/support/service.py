"""``postroom serve`` in a subprocess, as an admin starts it, for tests over real HTTP.

::

    with running_service(tmp_path, env={"POSTROOM_MAIL_ENABLED": "true", ...}) as service:
        token = service.token("app", scope="send")
        httpx.post(service.url + "/api/v1/messages", headers=service.bearer(token), json=...)

The service gets a free port (and, with ``catch=True``, a free port for the capture
server too), its own home, and no ``POSTROOM_*`` variable from the test run. Its
stderr is read on a thread (kept in ``lines``). Leaving the block sends SIGTERM and
checks that the service exits 0.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from tests.support.cli import run_postroom
from tests.support.waiting import wait_until

LOOPBACK = "127.0.0.1"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind((LOOPBACK, 0))
        return int(probe.getsockname()[1])


@dataclass
class Service:
    process: subprocess.Popen[str]
    home: Path
    port: int
    env: dict[str, str]
    capture_port: int | None = None
    lines: list[str] = field(default_factory=list)
    reader: threading.Thread | None = None
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    def first_password(self) -> str:
        found = re.search(r"first login: user root, password (\S+)", self.output)
        assert found, f"no first login printed:\n{self.output}"
        return found.group(1)

    def token(self, name: str, *, scope: str = "admin") -> str:
        """A token made with ``postroom token create`` (once per name)."""
        if name not in self.tokens:
            done = run_postroom(self.home, "token", "create", name, "--scope", scope, env=self.env)
            assert done.code == 0, done.output
            self.tokens[name] = done.stdout.splitlines()[0].strip()
        return self.tokens[name]

    @staticmethod
    def bearer(token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def client(self, token: str | None = None) -> httpx.Client:
        return httpx.Client(
            base_url=self.url, headers=self.bearer(token) if token else {}, timeout=30
        )

    def stop(self) -> int:
        """SIGTERM, then the exit code (the test fails if it hangs for 60 s)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout=60)
        if self.reader is not None:
            self.reader.join(timeout=10)
        if self.process.stderr is not None:
            self.process.stderr.close()
        return code


def _read(stream: object, lines: list[str]) -> None:
    assert hasattr(stream, "readline")
    for line in iter(stream.readline, ""):
        lines.append(line.rstrip("\n"))


def start_service(
    home: Path,
    *args: str,
    env: dict[str, str] | None = None,
    catch: bool = False,
    port: int | None = None,
) -> Service:
    """Start ``postroom serve`` and wait until /healthz answers."""
    port = port or free_port()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("POSTROOM_")}
    extra = {"POSTROOM_HOME": str(home), "POSTROOM_WEB_BIND": f"{LOOPBACK}:{port}"}
    capture_port = None
    if catch:
        capture_port = free_port()
        extra["POSTROOM_CAPTURE_BIND"] = f"{LOOPBACK}:{capture_port}"
    extra.update(env or {})
    environ.update(extra)
    environ.update({"COLUMNS": "200", "NO_COLOR": "1", "PYTHONUNBUFFERED": "1"})
    command = [sys.executable, "-m", "postroom", "serve", *args]
    if catch:
        command.append("--catch")
    process = subprocess.Popen(
        command,
        env=environ,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    service = Service(process, home, port, extra, capture_port)
    service.reader = threading.Thread(
        target=_read, args=(process.stderr, service.lines), daemon=True
    )
    service.reader.start()

    def answers() -> bool:
        if process.poll() is not None:
            raise AssertionError(f"postroom serve exited {process.returncode}:\n{service.output}")
        try:
            return httpx.get(service.url + "/healthz", timeout=2).status_code == 200
        except httpx.TransportError:
            return False

    try:
        wait_until(answers, timeout=60, step=0.05)
    except BaseException:
        process.kill()
        service.stop()
        raise
    return service


@contextmanager
def running_service(
    home: Path,
    *args: str,
    env: dict[str, str] | None = None,
    catch: bool = False,
) -> Iterator[Service]:
    service = start_service(home, *args, env=env, catch=catch)
    try:
        yield service
    finally:
        code = service.stop()
        assert code == 0, f"postroom serve exited {code}:\n{service.output}"
