"""A real PostgreSQL server for the warehouse tests, started (and stopped) by the tests themselves.

Fixtures (this module is listed in ``pytest_plugins`` of the root conftest):

- ``postgres_server`` (session): ``initdb`` into a temporary folder, then ``postgres`` on 127.0.0.1 and a free
  port, as a child process of the test run (fsync off). ``.dsn(dbname)``, ``.create_database()``,
  ``.restart(mode)`` (fast or immediate shutdown, same port and data), ``.pid`` (the postmaster),
  ``.wait_ready()``. Under pytest-xdist every worker starts its own server.
- ``postgres_dsn`` (function): a DSN for a fresh database ``t_<uuid>`` on that server, dropped afterwards.

PostgreSQL refuses to run as root: when the tests run as root, ``initdb`` and ``postgres`` run as the
``postgres`` OS user (the one the distribution's package creates) and the folder is handed to it. When no
binaries are found the fixture fails and names ``make postgres`` (which installs them).
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal

import pytest

SUPERUSER = "lakeforge"
OS_USER = "postgres"  # who runs the server when the tests run as root
START_TIMEOUT = 60.0


def find_bindir() -> Path | None:
    """The folder with ``initdb``/``postgres``/``pg_ctl``: ``pg_config --bindir``, PATH, or the newest
    ``/usr/lib/postgresql/<major>/bin`` (Debian/Ubuntu keep them off PATH)."""
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, timeout=10).stdout
            candidates.append(Path(out.strip()))
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).resolve().parent)

    def major(path: str) -> tuple[int, ...]:
        found = re.search(r"/postgresql/([0-9.]+)/", path)
        return tuple(int(p) for p in found.group(1).split(".") if p) if found else ()

    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=major, reverse=True)]
    for folder in candidates:
        if all((folder / tool).is_file() for tool in ("initdb", "postgres")):
            return folder
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclasses.dataclass
class PostgresServer:
    """A PostgreSQL server this test process started and owns."""

    bindir: Path
    root: Path  # the temporary folder: data/, sock/, server.log
    port: int
    host: str = "127.0.0.1"
    user: str = SUPERUSER
    process: subprocess.Popen[bytes] | None = None

    @property
    def data(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "sock"

    @property
    def log_path(self) -> Path:
        return self.root / "server.log"

    @property
    def pid(self) -> int:
        """The postmaster's process id."""
        assert self.process is not None, "the server is not running"
        return self.process.pid

    def dsn(self, dbname: str = "postgres", **extra: Any) -> str:
        params = {"host": self.host, "port": self.port, "user": self.user, "dbname": dbname, "sslmode": "disable",
                  **extra}
        return " ".join(f"{k}={v}" for k, v in params.items())

    def connect(self, dbname: str = "postgres", *, autocommit: bool = True, **kwargs: Any) -> Any:
        import psycopg

        kwargs.setdefault("application_name", "lakeforge-tests")
        kwargs.setdefault("connect_timeout", 5)
        return psycopg.connect(self.dsn(dbname), autocommit=autocommit, **kwargs)

    def create_database(self) -> str:
        """A fresh database; returns its DSN."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        with self.connect() as con:
            con.execute(f"CREATE DATABASE {name}")
        return self.dsn(name)

    def drop_database(self, dsn: str) -> None:
        name = dict(part.split("=", 1) for part in dsn.split())["dbname"]
        with contextlib.suppress(Exception), self.connect() as con:
            con.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")

    # -- life cycle -----------------------------------------------------------------------------------------
    def _as_owner(self) -> dict[str, Any]:
        """Popen arguments that run a binary as the server's OS user (root may not run PostgreSQL)."""
        if os.geteuid() != 0:
            return {}
        entry = pwd.getpwnam(OS_USER)
        return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": [],
                "env": {**os.environ, "HOME": entry.pw_dir, "USER": OS_USER, "LOGNAME": OS_USER}}

    def initdb(self) -> None:
        if os.geteuid() == 0:
            entry = pwd.getpwnam(OS_USER)
            for path in (self.root, self.socket_dir):
                path.mkdir(exist_ok=True)
                os.chown(path, entry.pw_uid, entry.pw_gid)
        else:
            self.socket_dir.mkdir(exist_ok=True)
        result = subprocess.run(
            [str(self.bindir / "initdb"), "-D", str(self.data), "-U", self.user, "-A", "trust", "-E", "UTF8",
             "--locale=C", "--no-sync"],
            capture_output=True, text=True, timeout=120, cwd=self.root, **self._as_owner())
        if result.returncode != 0:
            raise RuntimeError(f"initdb failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")

    def start(self) -> None:
        assert self.process is None or self.process.poll() is not None, "already running"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [str(self.bindir / "postgres"), "-D", str(self.data), "-h", self.host, "-p", str(self.port),
                 "-k", str(self.socket_dir), "-F", "-c", "max_connections=60", "-c", "shared_buffers=32MB",
                 "-c", "restart_after_crash=on", "-c", "log_min_messages=warning"],
                # in the test run's process group: a Ctrl-C of the run reaches it too (SIGINT: fast shutdown)
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, cwd=self.root,
                **self._as_owner())
        if os.geteuid() == 0:
            os.chown(self.log_path, pwd.getpwnam(OS_USER).pw_uid, -1)
        self.wait_ready()

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        """Until the server accepts connections (after a start, a restart or crash recovery)."""
        import psycopg

        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise RuntimeError(f"postgres exited with {self.process.returncode}:\n{self.log_tail()}")
            try:
                with self.connect(connect_timeout=2) as con:
                    con.execute("SELECT 1")
                return
            except psycopg.Error as exc:
                last = exc
                time.sleep(0.1)
        raise RuntimeError(f"postgres did not accept connections within {timeout:.0f} s ({last}):\n"
                           f"{self.log_tail()}")

    def stop(self, mode: Literal["smart", "fast", "immediate"] = "fast", timeout: float = 30.0) -> None:
        """Shut the server down the way ``pg_ctl stop -m <mode>`` does (the signal to the postmaster)."""
        process = self.process
        if process is None or process.poll() is not None:
            return
        sig = {"smart": signal.SIGTERM, "fast": signal.SIGINT, "immediate": signal.SIGQUIT}[mode]
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:  # its backends exit when they notice the postmaster is gone
            with contextlib.suppress(ProcessLookupError):
                os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def restart(self, mode: Literal["fast", "immediate"] = "fast") -> None:
        """``pg_ctl restart -m <mode>``: stop (sessions are terminated), start again on the same port."""
        self.stop(mode)
        self.start()

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no server log)"


@contextlib.contextmanager
def running_server() -> Iterator[PostgresServer]:
    bindir = find_bindir()
    if bindir is None:
        pytest.fail("no PostgreSQL server binaries (initdb, postgres) found on PATH, via pg_config or in "
                    "/usr/lib/postgresql/*/bin: run `make postgres` (installs them with apt)", pytrace=False)
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(OS_USER)
        except KeyError:
            pytest.fail(f"PostgreSQL refuses to run as root and there is no OS user {OS_USER!r} to run it as: "
                        "run `make postgres` (the postgresql package creates it) or the tests as another user",
                        pytrace=False)
    root = Path(tempfile.mkdtemp(prefix="lf-pg-"))  # short: the socket path must fit in 107 bytes
    server: PostgresServer | None = None
    try:
        for attempt in range(3):  # another process may take the free port before the server binds it
            server = PostgresServer(bindir=bindir, root=root, port=_free_port())
            if attempt == 0:
                server.initdb()
            try:
                server.start()
                break
            except RuntimeError:
                server.stop("immediate")
                if attempt == 2 or "could not bind" not in server.log_tail():
                    raise
        assert server is not None
        yield server
    finally:
        if server is not None:
            server.stop("fast")
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    with running_server() as server:
        yield server


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> Iterator[str]:
    postgres_server.wait_ready()  # a test before may have restarted or crashed it
    dsn = postgres_server.create_database()
    yield dsn
    postgres_server.drop_database(dsn)
