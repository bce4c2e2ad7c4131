"""A private PostgreSQL server for the tests that must see or break the database itself.

The shared server on 127.0.0.1:5432 is never stopped, reconfigured or read behind its back; a test
that needs the server's own log, or an outage (stop, kill, freeze), starts one of these: a fresh
cluster (initdb, trust authentication) on a free port, run as the `postgres` system user (the
server refuses to run as root), logging to a file the test reads.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path


def postgres_bindir() -> Path | None:
    """Where the server binaries are (Debian: /usr/lib/postgresql/<major>/bin), or None."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), reverse=True)
    if candidates:
        return Path(candidates[0]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivatePostgres:
    """One throwaway PostgreSQL cluster: `start()`, then `url(database)`; `close()` removes it."""

    def __init__(self, *settings: str) -> None:
        bindir = postgres_bindir()
        if bindir is None:
            raise RuntimeError("the PostgreSQL server binaries are not installed")
        self.bindir = bindir
        self.port = _free_port()
        # Owned by the postgres user, which runs the server.
        self.root = Path(tempfile.mkdtemp(prefix="dpm_async_pg_"))
        shutil.chown(self.root, "postgres", "postgres")
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.settings = settings
        self._as_postgres([str(bindir / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust",
                           "--no-sync", "-E", "UTF8", "--locale=C"])

    def _as_postgres(self, command: list[str]) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["runuser", "-u", "postgres", "--", *command], check=True, capture_output=True,
                              text=True, cwd=self.root)

    def start(self) -> None:
        options = " ".join(
            [f"-p {self.port}", "-c listen_addresses=127.0.0.1", f"-c unix_socket_directories={self.root}",
             "-c fsync=off", *(f"-c {setting}" for setting in self.settings)]
        )
        self._as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-l", str(self.log), "-w",
                           "-o", options, "start"])

    def stop(self) -> None:
        self._as_postgres([str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])

    @property
    def pid(self) -> int:
        return int((self.data / "postmaster.pid").read_text().split()[0])

    def signal(self, signum: int) -> None:
        """SIGSTOP freezes the postmaster (connections queue, nothing answers); SIGCONT thaws it."""
        os.kill(self.pid, signum)

    def kill(self) -> None:
        """The server dies at once (SIGKILL of the postmaster and its backends)."""
        pid = self.pid
        subprocess.run(["pkill", "-KILL", "-P", str(pid)], check=False)
        os.kill(pid, signal.SIGKILL)

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def create_database(self, name: str) -> str:
        self._as_postgres([str(self.bindir / "createdb"), "-h", "127.0.0.1", "-p", str(self.port), "-U",
                           "postgres", name])
        return self.url(name)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def close(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                try:
                    self.signal(signal.SIGCONT)
                except ProcessLookupError:
                    pass
                self.stop()
        except (subprocess.CalledProcessError, FileNotFoundError, ProcessLookupError):
            pass
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
