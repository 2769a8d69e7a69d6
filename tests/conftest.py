"""Shared fixtures: one MariaDB cluster per test run, proxies per test."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[1]
# xaproxy is not necessarily installed into the venv; tests import it from the tree.
if str(PROJECT_ROOT) not in sys.path:
    sys.path.insert(0, str(PROJECT_ROOT))

from xaproxy.devkit.localshards import LocalCluster  # noqa: E402
from xaproxy.devkit.processes import ProxyProcess  # noqa: E402

CLUSTER_SIZE = 3


@pytest.fixture(scope="session")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalCluster]:
    """Three local MariaDB shards (s0, s1, s2), started once per test run."""
    shards = LocalCluster(tmp_path_factory.mktemp("shards"), CLUSTER_SIZE)
    shards.start()
    try:
        yield shards
    finally:
        try:
            shards.stop()
        finally:
            shards.kill()


@pytest.fixture
def proxy_factory(tmp_path: Path) -> Iterator[Callable[..., ProxyProcess]]:
    """Create ProxyProcess objects (not started); all are stopped after the test."""
    created: list[ProxyProcess] = []

    def factory(
        config: dict[str, Any], *, name: str | None = None, env: dict[str, str] | None = None
    ) -> ProxyProcess:
        proxy = ProxyProcess(config, tmp_path, name=name or f"proxy{len(created)}", env=env)
        created.append(proxy)
        return proxy

    yield factory
    errors: list[BaseException] = []
    for proxy in created:
        try:
            proxy.stop()
        except BaseException as exc:
            errors.append(exc)
    if errors:
        raise errors[0]
