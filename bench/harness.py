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
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from xaproxy.devkit.localshards import HOST, LocalCluster, LocalMariaDB, free_port
from xaproxy.devkit.processes import (
    ProxyProcess,
    ServiceProcess,
    proxy_config,
)

PROXY_ID = "bench"


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
        self.services: list[ServiceProcess] = []
        self.spider: LocalMariaDB | None = None  # the Spider head (bench/spider.py), on demand
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
        return proxy_config(
            self.cluster,
            schemas=schemas,
            proxy_id=PROXY_ID,
            pool_size=self.pool_size,
            transactions={"mode": mode},
            workers=self.workers if workers is None else workers,
            max_connections=max_connections,
        )

    def _workdir(self, name: str) -> Path:
        self._counter += 1
        path = self.tmp / f"{self._counter:02d}-{name}"
        path.mkdir(parents=True)
        return path

    def start_proxy(
        self, name: str, schemas: list[dict[str, Any]], *, nofile: int = 0, **options: Any
    ) -> ServiceProcess:
        """``python -m xaproxy serve -c <cfg>`` for ``schemas``, started and listening."""
        service = ProxyProcess(
            self.proxy_config(schemas, **options),
            self._workdir(name),
            name=name,
            nofile=nofile,
            new_session=True,
        )
        self.services.append(service)
        service.start()
        return service

    def start_haproxy(self, backend: LocalMariaDB) -> ServiceProcess:
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
        service = ServiceProcess(
            "haproxy",
            [haproxy, "-f", str(config_path), "-db"],
            workdir,
            HOST,
            port,
            new_session=True,
        )
        self.services.append(service)
        service.start()
        return service

    def stop_service(self, service: ServiceProcess, notes: list[str] | None = None) -> int | None:
        """Stops a target; with ``notes``, reports a bad exit and warnings in its log."""
        code = service.stop(20, raise_on_hang=False)
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
    def profile(self, service: ServiceProcess | None, label: str, seconds: float) -> Iterator[None]:
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
                "--native",
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
                service.stop(20, raise_on_hang=False)
            except BaseException:
                service.kill()
        self.services.clear()
        if self.spider is not None:
            try:
                self.spider.stop()
            except BaseException:
                self.spider.kill()
        try:
            self.cluster.stop()
        except BaseException:
            pass
        finally:
            self.cluster.kill()
        if not self.keep_tmp:
            shutil.rmtree(self.tmp, ignore_errors=True)
