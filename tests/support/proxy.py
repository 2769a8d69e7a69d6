"""Run xaproxy as a real subprocess, the way users run it.

Integration and crash tests need a proxy they can SIGTERM, SIGKILL and restart
independently of the test process, with its log kept for failure messages.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any

import yaml

from xaproxy.localshards import LocalCluster, free_port

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def make_config(
    cluster: LocalCluster,
    *,
    schemas: list[dict[str, Any]],
    users: list[dict[str, Any]] | None = None,
    proxy_id: str = "px1",
    listen_port: int | None = None,
    transactions: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    """Build a proxy config dict for ``cluster``'s shards.

    ``transactions=None`` leaves the section out so the proxy's defaults apply;
    ``extra`` keys are added at the top level.
    """
    config: dict[str, Any] = {
        "listen": f"127.0.0.1:{listen_port if listen_port is not None else free_port()}",
        "proxy_id": proxy_id,
        "users": users if users is not None else [{"user": "app", "password": "app-secret"}],
        "shards": [
            {
                "name": server.name,
                "host": server.host,
                "port": server.port,
                "user": "root",
                "password": "",
                "pool_size": 32,
            }
            for server in cluster.servers
        ],
        "schemas": schemas,
    }
    if transactions is not None:
        config["transactions"] = transactions
    config.update(extra)
    return config


def _listen_address(config: Mapping[str, Any]) -> tuple[str, int]:
    host, _, port = str(config["listen"]).rpartition(":")
    if host in ("", "0.0.0.0", "::", "[::]"):
        host = "127.0.0.1"
    return host.strip("[]"), int(port)


class ProxyProcess:
    """``python -m xaproxy serve -c <config>`` with its config and log in ``workdir``."""

    def __init__(
        self,
        config: Mapping[str, Any],
        workdir: Path,
        *,
        name: str = "proxy",
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.config = dict(config)
        self.workdir = Path(workdir)
        self.name = name
        self.extra_env = dict(env or {})
        self.host, self.port = _listen_address(self.config)
        self.config_path = self.workdir / f"{name}.yaml"
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

    def write_config(self) -> Path:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.config_path.write_text(yaml.safe_dump(self.config, sort_keys=False))
        return self.config_path

    def _env(self) -> dict[str, str]:
        # The project is not necessarily installed into the venv; make it importable.
        env = dict(os.environ)
        paths = [str(PROJECT_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env["PYTHONUNBUFFERED"] = "1"
        env.update(self.extra_env)
        return env

    def start(self, timeout: float = 30) -> None:
        """Launch the proxy and wait until its listen port accepts connections."""
        if self.is_running():
            raise RuntimeError(f"proxy {self.name} is already running (pid {self.pid})")
        self.write_config()
        cmd = [sys.executable, "-m", "xaproxy", "serve", "-c", str(self.config_path)]
        with open(self.log_path, "ab") as log:
            log.write(f"--- starting: {' '.join(cmd)}\n".encode())
            log.flush()
            self._proc = subprocess.Popen(
                cmd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                cwd=self.workdir,
                env=self._env(),
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(
                    f"proxy {self.name} exited with code {self._proc.returncode} before "
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
            f"proxy {self.name} did not listen on {self.host}:{self.port} within "
            f"{timeout}s; log tail:\n{self.log_tail()}"
        )

    def stop(self, timeout: float = 15) -> int | None:
        """SIGTERM and wait; returns the exit code. A hang is killed and reported."""
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
                raise TimeoutError(
                    f"proxy {self.name} did not exit within {timeout}s of SIGTERM; killed. "
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

    def __enter__(self) -> ProxyProcess:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
