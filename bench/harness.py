"""Everything the benchmark starts, and the guarantee that it is all stopped again.

One ``Harness`` owns a temporary directory, the three local MariaDB shards
(``LocalCluster``: s0, s1, s2) and every haproxy / xaproxy subprocess started
for a target. ``close()`` stops them in reverse order and removes the
directory; ``python -m bench`` calls it on success, on errors and on Ctrl-C or
SIGTERM.
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import yaml

from xaproxy.localshards import LocalCluster, LocalMariaDB, free_port

PROJECT_ROOT = Path(__file__).resolve().parents[1]
PROXY_USER = "app"
PROXY_PASSWORD = "app-secret"
PROXY_ID = "bench"
HOST = "127.0.0.1"


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


def _child_limits(nofile: int) -> None:
    """preexec_fn of targets: enough file descriptors for 10k client connections."""
    raise_nofile_limit(nofile)


class Service:
    """A target process (haproxy or xaproxy) listening on a loopback port."""

    def __init__(
        self,
        name: str,
        cmd: Sequence[str],
        workdir: Path,
        port: int,
        *,
        env: dict[str, str] | None = None,
        nofile: int = 0,
    ) -> None:
        self.name = name
        self.cmd = list(cmd)
        self.workdir = workdir
        self.host = HOST
        self.port = port
        self.env = env
        self.nofile = nofile
        self.log_path = workdir / f"{name}.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 30) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        nofile = self.nofile
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                self.cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=self.env,
                # Its own session: a Ctrl-C in the terminal reaches only the harness,
                # which then stops the targets in order.
                start_new_session=True,
                preexec_fn=(lambda: _child_limits(nofile)) if nofile else None,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited with code {self._proc.returncode} before listening "
                    f"on {self.host}:{self.port}; log tail:\n{self.log_tail()}"
                )
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), timeout=0.5),
            ):
                return
            time.sleep(0.05)
        self.kill()
        raise TimeoutError(
            f"{self.name} did not listen on {self.host}:{self.port} within {timeout}s; "
            f"log tail:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 20) -> int | None:
        """SIGTERM, wait, SIGKILL if it hangs; returns the exit code."""
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
        return proc.returncode

    def kill(self) -> None:
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait()

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.log_text().splitlines()[-lines:])

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by the process and its live children."""
        assert self._proc is not None
        ticks = 0
        for pid in (self._proc.pid, *self.children()):
            try:
                stat = Path(f"/proc/{pid}/stat").read_text()
            except OSError:
                continue
            fields = stat.rpartition(")")[2].split()
            ticks += int(fields[11]) + int(fields[12])
        return ticks / os.sysconf("SC_CLK_TCK")

    def children(self) -> list[int]:
        """Pids of the process's children (xaproxy's worker processes)."""
        assert self._proc is not None
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int(stat.read_text().rpartition(")")[2].split()[1]) == self._proc.pid:
                    found.append(int(stat.parent.name))
        return found

    def rss_kib(self) -> int:
        """Resident set size from /proc/<pid>/status (VmRSS), in KiB."""
        assert self._proc is not None
        for line in Path(f"/proc/{self._proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise RuntimeError(f"no VmRSS for {self.name}")


class Harness:
    """The shards, the targets and the temporary directory of one benchmark run."""

    def __init__(
        self,
        *,
        pool_size: int = 64,
        workers: int = 1,
        keep_tmp: bool = False,
        profile_dir: Path | None = None,
    ) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="xaproxy-bench-"))
        self.cluster = LocalCluster(self.tmp / "shards", 3)
        self.pool_size = pool_size
        self.workers = workers
        self.keep_tmp = keep_tmp
        self.profile_dir = profile_dir
        self.services: list[Service] = []
        self._counter = 0

    # --- shards ---------------------------------------------------------------------

    @property
    def direct(self) -> LocalMariaDB:
        """The MariaDB that the 'direct' and 'haproxy' targets (and unsharded xaproxy) use."""
        return self.cluster.servers[0]

    def shard(self, name: str) -> LocalMariaDB:
        return self.cluster[name]

    def start(self) -> None:
        self.cluster.start()

    def mariadb_version(self) -> str:
        return str(self.direct.execute("SELECT VERSION()")[0][0])

    # --- targets --------------------------------------------------------------------

    def proxy_config(
        self,
        schemas: list[dict[str, Any]],
        *,
        mode: str = "xa",
        max_connections: int = 10000,
        workers: int | None = None,
    ) -> dict[str, Any]:
        return {
            "listen": f"{HOST}:{free_port()}",
            "proxy_id": PROXY_ID,
            "workers": self.workers if workers is None else workers,
            "max_connections": max_connections,
            "users": [{"user": PROXY_USER, "password": PROXY_PASSWORD}],
            "shards": [
                {
                    "name": server.name,
                    "host": server.host,
                    "port": server.port,
                    "user": "root",
                    "password": "",
                    "pool_size": self.pool_size,
                }
                for server in self.cluster.servers
            ],
            "schemas": schemas,
            "transactions": {"mode": mode},
        }

    def _workdir(self, name: str) -> Path:
        self._counter += 1
        path = self.tmp / f"{self._counter:02d}-{name}"
        path.mkdir(parents=True)
        return path

    def start_proxy(
        self, name: str, schemas: list[dict[str, Any]], *, nofile: int = 0, **options: Any
    ) -> Service:
        """``python -m xaproxy serve -c <cfg>`` for ``schemas``, started and listening."""
        config = self.proxy_config(schemas, **options)
        workdir = self._workdir(name)
        config_path = workdir / f"{name}.yaml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(
            [str(PROJECT_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        )
        env["PYTHONUNBUFFERED"] = "1"
        port = int(config["listen"].rpartition(":")[2])
        service = Service(
            name,
            [sys.executable, "-m", "xaproxy", "serve", "-c", str(config_path)],
            workdir,
            port,
            env=env,
            nofile=nofile,
        )
        self.services.append(service)
        service.start()
        return service

    def start_haproxy(self, backend: LocalMariaDB) -> Service:
        """haproxy in TCP mode in front of ``backend``: the cost of one extra hop."""
        haproxy = shutil.which("haproxy") or "/usr/sbin/haproxy"
        workdir = self._workdir("haproxy")
        port = free_port()
        config_path = workdir / "haproxy.cfg"
        config_path.write_text(
            "global\n"
            "    maxconn 8000\n"
            "defaults\n"
            "    mode tcp\n"
            "    timeout connect 10s\n"
            "    timeout client 1h\n"
            "    timeout server 1h\n"
            "listen mariadb\n"
            f"    bind {HOST}:{port}\n"
            "    maxconn 8000\n"
            f"    server s0 {backend.host}:{backend.port}\n"
        )
        service = Service("haproxy", [haproxy, "-f", str(config_path), "-db"], workdir, port)
        self.services.append(service)
        service.start()
        return service

    def stop_service(self, service: Service, notes: list[str] | None = None) -> int | None:
        """Stops a target; with ``notes``, reports a bad exit and warnings in its log."""
        code = service.stop()
        with contextlib.suppress(ValueError):
            self.services.remove(service)
        if notes is not None:
            if code != 0:
                notes.append(
                    f"{service.name}: exited with code {code}; log tail: {service.log_tail(5)}"
                )
            problems = [
                line.strip()
                for line in service.log_text().splitlines()
                if " ERROR " in line or " WARNING " in line or "Traceback" in line
            ]
            if problems:
                notes.append(
                    f"{service.name} log: {len(problems)} warning/error lines, "
                    f"first: `{problems[0][:300]}`"
                )
        return code

    @contextlib.contextmanager
    def profile(self, service: Service | None, label: str, seconds: float) -> Iterator[None]:
        """With ``--profile DIR``: py-spy samples ``service`` for ``seconds`` (raw format)."""
        pyspy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if (
            self.profile_dir is None
            or service is None
            or service.pid is None
            or not os.access(pyspy, os.X_OK)
        ):
            yield
            return
        self.profile_dir.mkdir(parents=True, exist_ok=True)
        out = self.profile_dir / f"{label}.txt"
        proc = subprocess.Popen(
            [
                pyspy,
                "record",
                "-p",
                str(service.pid),
                "--subprocesses",
                "-d",
                str(max(1, int(seconds))),
                "-f",
                "raw",
                "-o",
                str(out),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            yield
        finally:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    # --- teardown -------------------------------------------------------------------

    def close(self) -> None:
        """Stops every target and shard and removes the temporary directory."""
        for service in reversed(self.services):
            try:
                service.stop()
            except BaseException:
                service.kill()
        self.services.clear()
        try:
            self.cluster.stop()
        except BaseException:
            pass
        finally:
            self.cluster.kill()
        if not self.keep_tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
