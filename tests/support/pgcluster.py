"""A private PostgreSQL cluster for tests that stop or break the database: initdb into
a temporary folder, a free loopback port, started and stopped with pg_ctl. The shared
server on 5432 is never touched."""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.support.pg import REQUIRE_ENV
from tests.support.service import free_port


def _bin_dir() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))
    if found:
        return Path(found[-1]).parent
    pg_ctl = shutil.which("pg_ctl")
    return Path(pg_ctl).parent if pg_ctl else None


@dataclass
class Cluster:
    bin: Path
    data: Path
    port: int
    as_user: list[str]

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def _pg_ctl(self, *args: str) -> None:
        command = [*self.as_user, str(self.bin / "pg_ctl"), "-D", str(self.data), *args]
        subprocess.run(command, check=True, capture_output=True, timeout=60)

    def start(self) -> None:
        options = f"-p {self.port} -k {self.data} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._pg_ctl("-o", options, "-l", str(self.data / "log"), "-w", "start")

    def stop(self, mode: str = "immediate") -> None:
        self._pg_ctl("-m", mode, "-w", "stop")


@contextmanager
def private_cluster() -> Iterator[Cluster]:
    """A cluster in a fresh folder under /tmp (pytest's own folders are root's alone,
    and the server runs as postgres), removed afterwards."""
    binaries = _bin_dir()
    if binaries is None:
        reason = "PostgreSQL's server programs (initdb, pg_ctl) are not installed"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{reason} ({REQUIRE_ENV}=1)")
        pytest.skip(reason)
    folder = Path(tempfile.mkdtemp(prefix="postroom-pg-"))
    data = folder / "pgdata"
    data.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: run it as postgres
        owner = pwd.getpwnam("postgres")
        os.chown(folder, owner.pw_uid, owner.pw_gid)
        os.chown(data, owner.pw_uid, owner.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    subprocess.run(
        [*as_user, str(binaries / "initdb"), "-D", str(data), "-U", "postgres",
         "--auth=trust", "--no-sync"],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    cluster = Cluster(binaries, data, free_port(), as_user)
    try:
        cluster.start()
        yield cluster
    finally:
        with contextlib.suppress(subprocess.CalledProcessError):
            cluster.stop()  # unless already stopped
        shutil.rmtree(folder, ignore_errors=True)
