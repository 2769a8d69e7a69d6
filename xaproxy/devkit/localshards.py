"""Local MariaDB servers for the demo and the tests.

The proxy's interesting behaviour (cross-shard XA, crash recovery) only shows
against real servers, so the demo and the integration tests start throwaway
``mariadbd`` processes on loopback ports.  Initializing a datadir is the slow
part, so one template per base directory is made once and copied per server.
Durability settings stay at MariaDB's defaults because the crash tests kill
servers with SIGKILL and expect committed and prepared work to survive.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import hashlib
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import TracebackType
from typing import Any

import pymysql
from pymysql.constants import CLIENT

MARIADBD_CANDIDATES = ("/usr/sbin/mariadbd", "/usr/sbin/mysqld", "/usr/bin/mariadbd")
INSTALL_DB_CANDIDATES = ("/usr/bin/mariadb-install-db", "/usr/bin/mysql_install_db")
TEMPLATE_DIRNAME = "_template"
HOST = "127.0.0.1"

# Options shared by template initialization and every server start, so the
# redo log size in the copied template always matches what the server expects.
COMMON_OPTIONS = (
    "--innodb-buffer-pool-size=64M",
    "--innodb-log-file-size=16M",
    "--character-set-server=utf8mb4",
    "--collation-server=utf8mb4_general_ci",
    "--skip-name-resolve",
)

# Hostname-based grant rows (e.g. root@<hostname>) are ignored under
# --skip-name-resolve and only produce warnings in every error log.
_TEMPLATE_SQL = """\
DELETE FROM mysql.global_priv WHERE Host NOT IN ('localhost', '127.0.0.1', '::1');
DELETE FROM mysql.proxies_priv WHERE Host NOT IN ('localhost', '127.0.0.1', '::1');
"""

# Python-level locks per template directory; the file lock covers other processes.
_template_locks: dict[Path, threading.Lock] = {}
_template_locks_guard = threading.Lock()

_live: set[LocalMariaDB] = set()
_live_guard = threading.Lock()


class LocalMariaDBError(RuntimeError):
    """A local server could not be initialized, started or stopped."""


def free_port() -> int:
    """Ask the kernel for a currently unused loopback port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _find_binary(candidates: Sequence[str], names: Sequence[str]) -> str:
    for path in candidates:
        if os.access(path, os.X_OK):
            return path
    for name in names:
        found = shutil.which(name)
        if found:
            return found
    raise LocalMariaDBError(f"none of {', '.join(names)} found; install mariadb-server")


def _user_options() -> list[str]:
    # mariadbd refuses to run as root unless told to explicitly.
    return ["--user=root"] if os.geteuid() == 0 else []


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:])


def _template_lock(template: Path) -> threading.Lock:
    with _template_locks_guard:
        return _template_locks.setdefault(template, threading.Lock())


def ensure_template(basedir: Path) -> Path:
    """Return ``basedir/_template``, an initialized datadir, creating it once.

    Safe to call concurrently from threads and processes: the template is built
    in a scratch directory and renamed into place under a lock.
    """
    basedir = Path(basedir).resolve()
    template = basedir / TEMPLATE_DIRNAME
    if (template / "mysql").is_dir():
        return template
    basedir.mkdir(parents=True, exist_ok=True)
    with _template_lock(template), open(basedir / "_template.lock", "w") as lock_file:
        fcntl.flock(lock_file, fcntl.LOCK_EX)
        if (template / "mysql").is_dir():
            return template
        scratch = Path(tempfile.mkdtemp(prefix="_template.", dir=basedir))
        datadir = scratch / "data"
        extra = scratch / "init.sql"
        extra.write_text(_TEMPLATE_SQL)
        log = scratch / "install.log"
        cmd = [
            _find_binary(INSTALL_DB_CANDIDATES, ("mariadb-install-db", "mysql_install_db")),
            "--no-defaults",
            f"--datadir={datadir}",
            "--auth-root-authentication-method=normal",
            "--skip-test-db",
            # Not the shared /tmp: concurrent bootstraps there can lose their temp tables.
            f"--tmpdir={scratch}",
            f"--extra-file={extra}",
            *_user_options(),
            *COMMON_OPTIONS,
        ]
        with open(log, "wb") as out:
            rc = subprocess.call(cmd, stdout=out, stderr=subprocess.STDOUT, cwd=scratch)
        if rc != 0:
            raise LocalMariaDBError(
                f"mariadb-install-db failed (exit {rc}); tail of {log}:\n{_tail(log)}"
            )
        datadir.rename(template)
        shutil.rmtree(scratch, ignore_errors=True)
    return template


class LocalMariaDB:
    """One mariadbd on a loopback port with everything under ``basedir/name``."""

    def __init__(
        self,
        name: str,
        basedir: Path,
        port: int | None = None,
        *,
        options: Sequence[str] = (),
    ) -> None:
        self.name = name
        self.basedir = Path(basedir).resolve()
        self.dir = self.basedir / name
        self.datadir = self.dir / "data"
        self.pid_file = self.dir / "mariadbd.pid"
        self.error_log = self.dir / "error.log"
        self.stdout_log = self.dir / "mariadbd.out"
        self.socket = self._socket_path()
        self.host = HOST
        self.port = port if port is not None else free_port()
        self.options = list(options)
        self._proc: subprocess.Popen[bytes] | None = None

    def __repr__(self) -> str:
        state = "running" if self.is_running() else "stopped"
        return f"<LocalMariaDB {self.name} {self.host}:{self.port} {state}>"

    def _socket_path(self) -> Path:
        # AF_UNIX paths are limited to ~107 bytes; deep work dirs fall back to /tmp.
        path = self.dir / "mariadbd.sock"
        if len(str(path)) < 100:
            return path
        digest = hashlib.sha1(str(path).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"xaproxy-{digest}.sock"

    @property
    def pid(self) -> int | None:
        """Process id of the running server, None when it is not running."""
        return self._proc.pid if self.is_running() and self._proc else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def command(self) -> list[str]:
        """The full mariadbd command line, useful when debugging a failed start."""
        return [
            _find_binary(MARIADBD_CANDIDATES, ("mariadbd", "mysqld")),
            "--no-defaults",
            *_user_options(),
            f"--datadir={self.datadir}",
            f"--port={self.port}",
            f"--bind-address={self.host}",
            f"--socket={self.socket}",
            f"--pid-file={self.pid_file}",
            f"--tmpdir={self.dir}",
            f"--log-error={self.error_log}",
            "--max-connections=1000",
            "--max-allowed-packet=256M",
            *COMMON_OPTIONS,
            *self.options,
        ]

    def start(self, timeout: float = 60) -> None:
        """Start the server (initializing the datadir first if needed) and wait for logins."""
        if self.is_running():
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.datadir.is_dir() or not any(self.datadir.iterdir()):
            template = ensure_template(self.basedir)
            if self.datadir.exists():
                self.datadir.rmdir()
            shutil.copytree(template, self.datadir, symlinks=True)
        self._reap_stale()
        self._check_port_free()
        with open(self.stdout_log, "ab") as out:
            self._proc = subprocess.Popen(
                self.command(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.dir,
                start_new_session=True,
            )
        with _live_guard:
            _live.add(self)
        try:
            self._wait_ready(timeout)
        except BaseException:
            self._force_kill()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last_error: Exception | None = None
        while time.monotonic() < deadline:
            assert self._proc is not None
            if self._proc.poll() is not None:
                raise LocalMariaDBError(
                    f"mariadbd {self.name} exited with code {self._proc.returncode} during "
                    f"startup; tail of {self.error_log}:\n{self._log_tail()}"
                )
            try:
                datadir = self._served_datadir()
            except pymysql.MySQLError as exc:
                last_error = exc
                time.sleep(0.1)
                continue
            # Another server already on the port would also accept the login.
            if datadir != self.datadir:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    self._proc.wait(3)  # let ours log its bind error for the message
                raise LocalMariaDBError(
                    f"port {self.port} is served by another MariaDB (datadir {datadir}), "
                    f"not by {self.name}; tail of {self.error_log}:\n{self._log_tail()}"
                )
            return
        raise LocalMariaDBError(
            f"mariadbd {self.name} did not accept logins on {self.host}:{self.port} within "
            f"{timeout}s (last error: {last_error}); tail of {self.error_log}:\n{self._log_tail()}"
        )

    def _check_port_free(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.host, self.port))
            except OSError as exc:
                raise LocalMariaDBError(
                    f"cannot start {self.name}: {self.host}:{self.port} is in use ({exc})"
                )

    def _served_datadir(self) -> Path:
        conn = self.connect(connect_timeout=2)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT @@datadir")
                (value,) = cur.fetchone()
        finally:
            conn.close()
        return Path(value).resolve()

    def _log_tail(self) -> str:
        tail = _tail(self.error_log)
        extra = _tail(self.stdout_log, 10) if self.stdout_log.exists() else ""
        return f"{tail}\n{extra}".rstrip() if extra.strip() else tail

    def _reap_stale(self) -> None:
        """Kill a server left on this datadir by an earlier, crashed run."""
        try:
            stale = int(self.pid_file.read_text().strip())
            cmdline = Path(f"/proc/{stale}/cmdline").read_bytes().decode(errors="replace")
        except (OSError, ValueError):
            return
        if f"--datadir={self.datadir}" not in cmdline.split("\0"):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(stale, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{stale}").exists() and time.monotonic() < deadline:
            time.sleep(0.05)

    def stop(self, timeout: float = 30) -> None:
        """Shut down cleanly with SIGTERM; SIGKILL and raise if it hangs."""
        proc = self._proc
        if proc is None or proc.poll() is not None:
            self._forget()
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self._force_kill()
            raise LocalMariaDBError(
                f"mariadbd {self.name} did not shut down within {timeout}s; killed it. "
                f"Tail of {self.error_log}:\n{self._log_tail()}"
            )
        self._forget()

    def kill(self) -> None:
        """SIGKILL the server, as a crash would, and wait until it is gone."""
        self._force_kill()

    def _force_kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
        self._forget()

    def _forget(self) -> None:
        with _live_guard:
            _live.discard(self)

    def restart(self, timeout: float = 60) -> None:
        """Start again on the same port and datadir; InnoDB crash recovery runs if needed."""
        if self.is_running():
            self.stop()
        self.start(timeout)

    def connect(self, database: str | None = None, **kwargs: Any) -> pymysql.Connection:
        """A PyMySQL connection as root over TCP, autocommit on unless overridden."""
        params: dict[str, Any] = {
            "host": self.host,
            "port": self.port,
            "user": "root",
            "password": "",
            "database": database,
            "autocommit": True,
            "connect_timeout": 10,
        }
        params.update(kwargs)
        return pymysql.connect(**params)

    def execute(self, sql: str, database: str | None = None) -> list[tuple]:
        """Run one or more ``;``-separated statements on a fresh connection.

        Returns the rows of the last statement that produced a result set, so
        setup scripts and a final SELECT can go in one call.
        """
        conn = self.connect(database, client_flag=CLIENT.MULTI_STATEMENTS)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                rows: list[tuple] = list(cur.fetchall()) if cur.description else []
                while cur.nextset():
                    if cur.description:
                        rows = list(cur.fetchall())
                return rows
        finally:
            conn.close()


class LocalCluster:
    """A set of LocalMariaDB shards named s0, s1, ... under one base directory."""

    def __init__(self, basedir: Path, count: int, base_port: int | None = None) -> None:
        self.basedir = Path(basedir).resolve()
        self.servers: list[LocalMariaDB] = [
            LocalMariaDB(f"s{i}", self.basedir, None if base_port is None else base_port + i)
            for i in range(count)
        ]

    def __getitem__(self, name: str) -> LocalMariaDB:
        for server in self.servers:
            if server.name == name:
                return server
        raise KeyError(name)

    def start(self, timeout: float = 60) -> None:
        """Start all servers in parallel; if one fails, stop the others and raise."""
        ensure_template(self.basedir)
        try:
            self._each(lambda s: s.start(timeout))
        except BaseException:
            self.kill()
            raise

    def stop(self, timeout: float = 30) -> None:
        self._each(lambda s: s.stop(timeout))

    def kill(self) -> None:
        for server in self.servers:
            server.kill()

    def _each(self, action: Callable[[LocalMariaDB], None]) -> None:
        with ThreadPoolExecutor(max_workers=max(1, len(self.servers))) as pool:
            futures = [pool.submit(action, server) for server in self.servers]
        errors = [e for f in futures if (e := f.exception()) is not None]
        if errors:
            raise errors[0]

    def __enter__(self) -> LocalCluster:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.stop()
        finally:
            self.kill()


@atexit.register
def _stop_all_servers() -> None:
    """Never let a test run or demo leave mariadbd processes behind."""
    with _live_guard:
        servers = list(_live)
    for server in servers:
        proc = server._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
    for server in servers:
        proc = server._proc
        if proc is None:
            continue
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            server._force_kill()
        server._forget()
