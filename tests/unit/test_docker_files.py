"""The container files agree with each other and with the project they package."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKER = ROOT / "docker"


def _instruction(dockerfile: str, name: str) -> list[str]:
    """The exec-form (JSON array) argument of the last ``name`` instruction."""
    found = re.findall(rf"^\s*{name}\s+(\[.*\])\s*$", dockerfile, re.MULTILINE | re.IGNORECASE)
    assert found, f"Dockerfile has no exec-form {name}"
    value = json.loads(found[-1])
    assert isinstance(value, list) and all(isinstance(v, str) for v in value)
    return value


def test_compose_file_is_valid_and_names_the_services() -> None:
    compose = shutil.which("docker-compose")
    if compose is None:
        pytest.skip("docker-compose is not installed; cannot validate docker/compose.yaml")
    result = subprocess.run(
        [compose, "-f", str(DOCKER / "compose.yaml"), "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    services = yaml.safe_load(result.stdout)["services"]
    assert {"shard0", "shard1", "xaproxy"} <= set(services)
    proxy = services["xaproxy"]
    assert Path(proxy["build"]["context"]).resolve() == ROOT
    for shard in ("shard0", "shard1"):
        assert proxy["depends_on"][shard]["condition"] == "service_healthy"
        assert services[shard]["image"] == "mariadb:10.11"
        assert "healthcheck" in services[shard]


def test_dockerfile_runs_the_console_script_with_serve() -> None:
    dockerfile = (DOCKER / "Dockerfile").read_text()
    entrypoint = _instruction(dockerfile, "ENTRYPOINT")
    cmd = _instruction(dockerfile, "CMD")
    assert entrypoint == ["xaproxy"]
    assert cmd[:1] == ["serve"]
    assert cmd[1:] == ["-c", "/etc/xaproxy/config.yaml"]

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert entrypoint[0] in scripts

    cli = ROOT / "xaproxy" / "cli.py"
    if cli.exists():
        assert re.search(r"""["']serve["']""", cli.read_text()), "cli.py has no 'serve' command"


def test_compose_mounts_the_config_where_the_image_reads_it() -> None:
    compose = yaml.safe_load((DOCKER / "compose.yaml").read_text())
    volumes = compose["services"]["xaproxy"]["volumes"]
    assert any(v.split(":")[:2] == ["./config.yaml", "/etc/xaproxy/config.yaml"] for v in volumes)


def test_docker_config_loads() -> None:
    raw = yaml.safe_load((DOCKER / "config.yaml").read_text())
    assert raw["listen"] == "0.0.0.0:3307"
    assert {(s["host"], s["port"]) for s in raw["shards"]} == {("shard0", 3306), ("shard1", 3306)}
    try:
        from xaproxy.config import load_config
    except ImportError as exc:
        pytest.skip(f"xaproxy.config.load_config is not importable yet: {exc}")
    config = load_config(DOCKER / "config.yaml")
    assert config is not None
