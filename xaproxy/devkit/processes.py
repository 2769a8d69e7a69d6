"""Run xaproxy (or any loopback service) as a real subprocess, the way users run it.

The tests and the benchmark both need a proxy they can SIGTERM, SIGKILL and
restart independently of their own process, with its log kept for failure
messages; this is the one runner and the one config builder they share.
"""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

import xaproxy
from xaproxy.devkit.localshards import LocalCluster, free_port

# The directory holding the ``xaproxy`` package that is running: the proxy
# subprocess imports the same code (a worktree, a checkout or site-packages).
SOURCE_ROOT = Path(xaproxy.__file__).resolve().parents[1]
PROXY_USER = "app"
PROXY_PASSWORD = "app-secret"


def proxy_config(
    cluster: LocalCluster,
    *,
    schemas: list[dict[str, Any]],
    users: list[dict[str, Any]] | None = None,
    proxy_id: str = "px1",
    listen_port: int | None = None,
    pool_size: int = 32,
    transactions: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """A proxy config dict for ``cluster``'s shards, as the YAML file would hold it.

    ``listen_port=None`` picks a free port; ``transactions=None`` leaves the section
    out so the proxy's defaults apply; ``extra`` keys are added at the top level.
    """
    port = listen_port if listen_port is not None else free_port()
    config: dict[str, Any] = {
        "listen": f"127.0.0.1:{port}",
        "proxy_id": proxy_id,
        # test users run DDL and operator commands: both granted unless a test says otherwise
        "users": [
            {"ddl": True, "admin": True, **user}
            for user in (
                users if users is not None else [{"user": PROXY_USER, "password": PROXY_PASSWORD}]
            )
        ],
        "shards": [
            {
                "name": server.name,
                "host": server.host,
                "port": server.port,
                "user": "root",
                "password": "",
                "pool_size": pool_size,
            }
            for server in cluster.servers
        ],
        "schemas": schemas,
    }
    if transactions is not None:
        config["transactions"] = transactions
    config.update(extra)
    return config


def raise_nofile_limit(wanted: int = 0) -> int:
    """Raises RLIMIT_NOFILE's soft limit to the hard one (or to ``wanted`` if we may).

    Returns the soft limit now in effect. Root may also raise the hard limit.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = max(soft, hard, wanted)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, target))
    except (ValueError, OSError):
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def listen_address(config: Mapping[str, Any]) -> tuple[str, int]:
    """The (host, port) a client connects to for the config's ``listen``."""
    host, _, port = str(config["listen"]).rpartition(":")
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    return host.strip("[]"), int(port)


def python_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment with the running xaproxy importable and unbuffered output."""
    env = dict(os.environ)
    paths = [str(SOURCE_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


class ServiceProcess:
    """A subprocess listening on a loopback port, its output in ``<workdir>/<name>.log``.

    ``new_session`` puts it in its own session so that a Ctrl-C in the terminal
    reaches only the parent, which then stops its services in order; ``nofile``
    raises the child's file-descriptor limit (10k client connections).
    """

    def __init__(
        self,
        name: str,
        cmd: Sequence[str],
        workdir: Path,
        host: str,
        port: int,
        *,
        env: Mapping[str, str] | None = None,
        nofile: int = 0,
        new_session: bool = False,
    ) -> None:
        self.name = name
        self.cmd = list(cmd)
        self.workdir = Path(workdir)
        self.host = host
        self.port = port
        self.env = dict(env) if env is not None else None
        self.nofile = nofile
        self.new_session = new_session
        self.log_path = self.workdir / f"{name}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self._proc.poll() if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _prepare(self) -> None:
        """Hook run before each start (the proxy writes its config file here)."""
        self.workdir.mkdir(parents=True, exist_ok=True)

    def start(self, timeout: float = 30) -> None:
        """Launch the process and wait until its port accepts connections."""
        if self.is_running():
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        self._prepare()
        nofile = self.nofile
        with open(self.log_path, "ab") as log:
            log.write(f"--- starting: {' '.join(self.cmd)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                self.cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=self.env,
                start_new_session=self.new_session,
                preexec_fn=(lambda: raise_nofile_limit(nofile)) if nofile else None,
            )
        self._wait_listening(timeout)

    def _wait_listening(self, timeout: float) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with code {self._proc.returncode} before "
                    f"listening on {self.host}:{self.port}; log tail:\n{self.log_tail()}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), timeout=0.5),
            ):
                return
            time.sleep(0.05)
        self.kill()
        raise TimeoutError(
            f"{self.name} did not listen on {self.host}:{self.port} within "
            f"{timeout}s; log tail:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 15, *, raise_on_hang: bool = True) -> int | None:
        """SIGTERM and wait; returns the exit code. A hang is killed (and reported)."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill()
                if raise_on_hang:
                    raise TimeoutError(
                        f"{self.name} did not exit within {timeout}s of SIGTERM; killed. "
                        f"Log tail:\n{self.log_tail()}"
                    )
        return proc.returncode

    def kill(self) -> int | None:
        """SIGKILL, as a crash would; returns the exit code (-9)."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()
        return proc.returncode

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def children(self) -> list[int]:
        """Pids of the process's children (xaproxy's worker processes)."""
        assert self._proc is not None
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int(stat.read_text().rpartition(")")[2].split()[1]) == self._proc.pid:
                    found.append(int(stat.parent.name))
        return found

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by the process and its live children."""
        user, system = self.cpu_split()
        return user + system

    def cpu_split(self) -> tuple[float, float]:
        """(user, system) CPU seconds used so far by the process and its live children:
        Python work shows as user time, socket I/O as system time."""
        assert self._proc is not None
        user = system = 0
        for pid in (self._proc.pid, *self.children()):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            fields = stat.rpartition(")")[2].split()
            user += int(fields[11])
            system += int(fields[12])
        tick = os.sysconf("SC_CLK_TCK")
        return user / tick, system / tick

    def rss_kib(self) -> int:
        """Resident set size from /proc/<pid>/status (VmRSS), in KiB."""
        assert self._proc is not None
        for line in Path(f"/proc/{self._proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError(f"no VmRSS for {self.name}")

    def __enter__(self) -> ServiceProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


class ProxyProcess(ServiceProcess):
    """``python -m xaproxy serve -c <config>`` with its config and log in ``workdir``."""

    def __init__(
        self,
        config: Mapping[str, Any],
        workdir: Path,
        *,
        name: str = "proxy",
        env: Mapping[str, str] | None = None,
        nofile: int = 0,
        new_session: bool = False,
    ) -> None:
        self.config = dict(config)
        self.config_path = Path(workdir) / f"{name}.yaml"
        self.extra_env = dict(env or {})
        host, port = listen_address(self.config)
        cmd = [sys.executable, "-m", "xaproxy", "serve", "-c", str(self.config_path)]
        super().__init__(name, cmd, workdir, host, port, nofile=nofile, new_session=new_session)

    def write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        return self.config_path

    def _prepare(self) -> None:
        # Written at every start: a test may change ``config`` between restarts.
        self.write_config()
        self.env = python_env(self.extra_env)

    def __enter__(self) -> ProxyProcess:
        self.start()
        return self
