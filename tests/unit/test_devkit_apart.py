"""The proxy proper never imports the development tools, and declares what it imports.

xaproxy.devkit needs PyMySQL and a local mariadbd; an installed proxy has neither.
Only cli.py's ``demo`` command may reach devkit, lazily, inside that command.
"""

from __future__ import annotations

import ast
import sys
import tomllib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "xaproxy"
PYPROJECT = PACKAGE.parent / "pyproject.toml"

# Import name -> distribution name, for the third-party modules the proxy imports.
DISTRIBUTIONS = {
    "asyncmy": "asyncmy",
    "uvloop": "uvloop",
    "sqlglot": "sqlglot",
    "yaml": "pyyaml",
    "prometheus_client": "prometheus-client",
}


def _proxy_modules() -> list[Path]:
    return [p for p in PACKAGE.rglob("*.py") if "devkit" not in p.relative_to(PACKAGE).parts]


def _imports(path: Path) -> list[tuple[str, ast.AST, bool]]:
    """(imported module, node, at module level) for every import in ``path``."""
    tree = ast.parse(path.read_text(), str(path))
    package = ".".join(("xaproxy", *path.relative_to(PACKAGE).with_suffix("").parts))
    found = []
    top_level = {id(node) for node in tree.body}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node, id(node) in top_level) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.rsplit(".", node.level)[0]
                name = f"{base}.{node.module}" if node.module else base
            else:
                name = node.module or ""
            found.append((name, node, id(node) in top_level))
    return found


def test_the_proxy_proper_never_imports_devkit_except_the_lazy_demo_command() -> None:
    offenders = []
    for path in _proxy_modules():
        for name, _node, top_level in _imports(path):
            if not name.startswith("xaproxy.devkit"):
                continue
            if path.name == "cli.py" and not top_level:
                continue
            offenders.append(f"{path.relative_to(PACKAGE.parent)}: imports {name}")
    assert offenders == []


def test_every_third_party_module_the_proxy_imports_is_a_declared_runtime_dependency() -> None:
    declared = {
        dep.split(">")[0].split("=")[0].split("[")[0].strip().lower()
        for dep in tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    }
    missing = set()
    for path in _proxy_modules():
        for name, _node, _top in _imports(path):
            top = name.split(".")[0]
            if top in ("xaproxy", "__future__") or top in sys.stdlib_module_names:
                continue
            if DISTRIBUTIONS.get(top, top) not in declared:
                missing.add(f"{top} ({path.relative_to(PACKAGE.parent)})")
    assert missing == set()


def test_runtime_dependencies_hold_nothing_the_proxy_does_not_import() -> None:
    imported = set()
    for path in _proxy_modules():
        imported |= {name.split(".")[0] for name, _node, _top in _imports(path)}
    used = {DISTRIBUTIONS.get(name, name) for name in imported} | {"sqlglotc"}
    declared = {
        dep.split(">")[0].split("=")[0].strip().lower()
        for dep in tomllib.loads(PYPROJECT.read_text())["project"]["dependencies"]
    }
    # sqlglotc is sqlglot's compiled tokenizer, loaded by sqlglot itself.
    assert declared - used == set()
