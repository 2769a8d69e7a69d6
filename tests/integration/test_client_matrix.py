"""The client matrix: each client's script sees through the proxy what it sees on one MariaDB.

Every client script (tests/clients/) runs twice per schema layout: against a plain
MariaDB server started for this module ("direct"), and through a proxy in front of
the test cluster, on an unsharded schema (all tables on s0) and on a sharded one
(``items`` split by ``id MOD 3`` over s0, s1, s2; everything else on s0). Both runs
use a database of the same name, so error messages match too. The transcripts must
be equal step by step, except for the entries of EXPECTED_DIFFERENCES: each is a
known defect of the proxy with what it does; an entry whose difference is gone
fails the test, so the table only ever shrinks.

All runs are started at once on a small thread pool when the module starts (the
scripts are independent: a database per client and layout), and each test waits
for its own pair.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.clientmatrix import (
    ClientScript,
    Endpoint,
    ScriptError,
    Transcript,
    compare,
    explain,
    run_script,
)
from xaproxy.devkit.localshards import LocalCluster, LocalMariaDB
from xaproxy.devkit.processes import PROXY_PASSWORD, PROXY_USER, ProxyProcess, proxy_config

ROOT = Path(__file__).resolve().parents[2]
CLIENTS_DIR = ROOT / "tests" / "clients"
PYTHON_DIR = CLIENTS_DIR / "python"
NODE_DIR = CLIENTS_DIR / "node"
JAVA_JAR = Path("/usr/share/java/mariadb-java-client.jar")
# mycli pins another sqlglot than the proxy, so it lives in a virtualenv of its own.
MYCLI = ROOT / ".venv-mycli" / "bin" / "mycli"
PARALLEL_RUNS = 4
SCHEMAS = ("unsharded", "sharded")


@dataclass(frozen=True)
class Client:
    """One entry of the matrix: its script, what it needs, which tables it shards."""

    script: ClientScript
    needs: tuple[str, ...] = ()  # executables that must be on PATH
    sharded_tables: tuple[str, ...] = ("items",)
    check: Callable[[], str | None] | None = None  # returns why the runtime is missing


def _python(name: str, *args: str, tables: tuple[str, ...] = ("items",)) -> Client:
    script = ClientScript(name, (sys.executable, str(PYTHON_DIR / args[0]), *args[1:]), PYTHON_DIR)
    return Client(script, sharded_tables=tables)


def _node_check() -> str | None:
    if not (NODE_DIR / "node_modules").is_dir():
        return f"{NODE_DIR}/node_modules is missing: run `npm ci` there (scripts/bootstrap.sh does)"
    return None


def _node(name: str, file: str) -> Client:
    script = ClientScript(name, ("node", str(NODE_DIR / file)), NODE_DIR)
    return Client(script, needs=("node",), check=_node_check)


def _java_check() -> str | None:
    if not JAVA_JAR.exists():
        return f"{JAVA_JAR} is missing: apt-get install libmariadb-java (scripts/bootstrap.sh does)"
    return None


def _java(name: str, mode: str) -> Client:
    source = CLIENTS_DIR / "java" / "ConnectorJ.java"
    script = ClientScript(
        name, ("java", "-cp", str(JAVA_JAR), str(source), mode), CLIENTS_DIR / "java"
    )
    return Client(script, needs=("java",), check=_java_check)


def _php(name: str, mode: str) -> Client:
    php_dir = CLIENTS_DIR / "php"
    return Client(
        ClientScript(name, ("php", str(php_dir / "client.php"), mode), php_dir),
        needs=("php",),
        check=_php_check,
    )


def _php_check() -> str | None:
    if shutil.which("php") is None:
        return None
    modules = subprocess.run(["php", "-m"], capture_output=True, text=True).stdout.split()
    missing = [m for m in ("PDO", "pdo_mysql", "mysqli") if m not in modules]
    return f"php lacks {missing}: apt-get install php-mysql" if missing else None


def _perl_check() -> str | None:
    if shutil.which("perl") is None:
        return None
    rc = subprocess.run(["perl", "-MDBD::MariaDB", "-e", "1"], capture_output=True).returncode
    return "DBD::MariaDB is missing: apt-get install libdbd-mariadb-perl" if rc else None


def _mycli_check() -> str | None:
    if not MYCLI.exists():
        return f"{MYCLI} is missing: scripts/bootstrap.sh installs mycli in .venv-mycli"
    return None


def _cli(name: str, file: str, needs: tuple[str, ...]) -> Client:
    cli_dir = CLIENTS_DIR / "cli"
    return Client(ClientScript(name, (sys.executable, str(cli_dir / file)), cli_dir), needs=needs)


CLIENTS: dict[str, Client] = {
    c.script.name: c
    for c in [
        _python("pymysql", "dbapi_client.py", "pymysql"),
        _python("mysqlclient", "dbapi_client.py", "mysqldb"),
        _python("connector_pure", "dbapi_client.py", "connector_pure"),
        _python("connector_cext", "dbapi_client.py", "connector_cext"),
        _python("aiomysql", "async_client.py", "aiomysql"),
        _python("asyncmy", "async_client.py", "asyncmy"),
        _python("sqlalchemy", "sqlalchemy_client.py", "mysql+pymysql"),
        _python("sqlalchemy_mysqldb", "sqlalchemy_client.py", "mariadb+mysqldb"),
        _python("django", "django_client.py", tables=("matrixapp_item",)),
        _php("php_pdo_native", "pdo_native"),
        _php("php_pdo_emulated", "pdo_emulated"),
        _php("php_mysqli", "mysqli"),
        Client(
            ClientScript(
                "perl_dbd_mariadb",
                ("perl", str(CLIENTS_DIR / "perl" / "client.pl")),
                CLIENTS_DIR / "perl",
            ),
            needs=("perl",),
            check=_perl_check,
        ),
        _node("node_mysql", "mysql_client.js"),
        _node("node_mysql2", "mysql2_client.js"),
        _node("knex", "knex_client.js"),
        _node("sequelize", "sequelize_client.js"),
        _java("connectorj_default", "default"),
        _java("connectorj_serverprep", "serverprep"),
        _java("connectorj_clientprep", "clientprep"),
        _cli("mariadb_cli", "mariadb_cli.py", ("mariadb",)),
        _cli("mariadb_dump", "mariadb_dump.py", ("mariadb", "mariadb-dump")),
        Client(
            ClientScript(
                "mycli",
                (sys.executable, str(CLIENTS_DIR / "cli" / "mycli_client.py")),
                CLIENTS_DIR / "cli",
                env={"MYCLI": str(MYCLI)},
            ),
            check=_mycli_check,
        ),
    ]
}

# Known defects of the proxy, each with what it does differently. An entry maps a step
# label pattern (fnmatch; a trailing "+" also accepts every later step) to the defect.
# Each entry must still differ: the day a defect is fixed its test turns red until the
# entry is removed.
PROCEDURE_IN_SHARDED_SCHEMA = (
    "CREATE PROCEDURE whose body updates the sharded table is refused with 1235 (it would "
    "run on one shard, over that shard's rows only); the CALL then answers 1305 "
    "'PROCEDURE ... does not exist'"
)
SHARDED_DUMP_ORDER = (
    "mariadb-dump reads a sharded table without ORDER BY and the proxy concatenates the "
    "shards: rows come shard by shard (3, 1, 4, 2), not in primary key order (same data)"
)

SCENARIO_CLIENTS = (
    "pymysql", "mysqlclient", "connector_pure", "connector_cext", "aiomysql", "asyncmy",
    "sqlalchemy", "sqlalchemy_mysqldb", "php_pdo_native", "php_pdo_emulated", "php_mysqli",
    "perl_dbd_mariadb", "node_mysql", "node_mysql2", "mariadb_cli",
)  # fmt: skip
SCENARIO_BOTH: dict[str, str] = {}
SCENARIO_SHARDED = {}

EXPECTED_DIFFERENCES: dict[tuple[str, str], dict[str, str]] = {
    **{(c, "*"): dict(SCENARIO_BOTH) for c in SCENARIO_CLIENTS},
    **{(c, "sharded"): dict(SCENARIO_SHARDED) for c in SCENARIO_CLIENTS},
}


def _add(client: str, schema: str, entries: dict[str, str]) -> None:
    EXPECTED_DIFFERENCES.setdefault((client, schema), {}).update(entries)


_add("mariadb_cli", "sharded", {
    "cli.create_procedure": PROCEDURE_IN_SHARDED_SCHEMA,
    "cli.call": PROCEDURE_IN_SHARDED_SCHEMA,
    "cli.after_call": PROCEDURE_IN_SHARDED_SCHEMA,
    "cli.load_warnings": "LOAD DATA LOCAL into a sharded table: SHOW WARNINGS lists the "
    "file's warnings (conversions, short rows) before the duplicate key's; MariaDB lists "
    "them in row order (the same warnings, the same count)",
})  # fmt: skip
_add("mariadb_dump", "sharded", {
    "dump.default": SHARDED_DUMP_ORDER,
    "reload": "the dump's multi-row INSERT of the sharded table under its LOCK TABLES ... "
    "WRITE is refused (1235 'a write over several shards while LOCK TABLES is held'): XA "
    "cannot run under table locks; the reload goes on (exit 1)",
    "after_reload": "so the sharded table is empty after the reload (notes is complete)",
    "dump.single_transaction": SHARDED_DUMP_ORDER,
    "dump.no_locks": SHARDED_DUMP_ORDER,
})  # fmt: skip


def expected_for(client: str, schema: str) -> dict[str, str]:
    """The known differences of one (client, layout): its own entries and those of "*"."""
    return {
        **EXPECTED_DIFFERENCES.get((client, "*"), {}),
        **EXPECTED_DIFFERENCES.get((client, schema), {}),
    }


def _database(client: str, schema: str) -> str:
    return f"{'s' if schema == 'sharded' else 'u'}_{client}"


CASES = [
    pytest.param(name, schema, id=f"{name}-{schema}")
    for name, client in CLIENTS.items()
    for schema in SCHEMAS
    if schema == "unsharded" or client.script.sharded
]


def _missing_runtime(client: Client) -> str | None:
    for exe in client.needs:
        if shutil.which(exe) is None:
            return f"`{exe}` is not installed: run scripts/bootstrap.sh (it installs it)"
    return client.check() if client.check else None


class Matrix:
    """The direct server, the proxy, and the runs: started together, awaited per test."""

    def __init__(self, direct: LocalMariaDB, proxy: ProxyProcess, workdir: Path) -> None:
        self.direct = direct
        self.proxy = proxy
        self.workdir = workdir
        self.pool = ThreadPoolExecutor(max_workers=PARALLEL_RUNS)
        self.runs: dict[tuple[str, str], tuple[Future[Transcript], Future[Transcript]]] = {}

    def submit(self, client: str, schema: str) -> None:
        if (client, schema) in self.runs:
            return
        script = CLIENTS[client].script
        database = _database(client, schema)
        direct = Endpoint(self.direct.host, self.direct.port, PROXY_USER, PROXY_PASSWORD, database)
        proxied = Endpoint(self.proxy.host, self.proxy.port, PROXY_USER, PROXY_PASSWORD, database)
        base = self.workdir / f"{client}-{schema}"
        self.runs[client, schema] = (
            self.pool.submit(run_script, script, direct, schema, base / "direct"),
            self.pool.submit(run_script, script, proxied, schema, base / "proxied"),
        )

    def result(self, client: str, schema: str) -> tuple[Transcript, Transcript]:
        self.submit(client, schema)
        direct, proxied = self.runs[client, schema]
        return direct.result(), proxied.result()


def _selected_cases(request: pytest.FixtureRequest) -> list[tuple[str, str]]:
    """The (client, schema) pairs of this module that pytest will run, to start them all early."""
    cases = []
    for item in request.session.items:
        callspec = getattr(item, "callspec", None)
        if item.module is sys.modules[__name__] and callspec is not None:
            client, schema = callspec.params.get("client"), callspec.params.get("schema")
            if client in CLIENTS and _missing_runtime(CLIENTS[client]) is None:
                cases.append((client, schema))
    return cases


@pytest.fixture(scope="module")
def matrix(
    cluster: LocalCluster, tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[Matrix]:
    """A plain MariaDB, a proxy over the cluster, a database per (client, layout) on both."""
    workdir = tmp_path_factory.mktemp("client-matrix")
    direct = LocalMariaDB("matrix-direct", cluster.basedir)
    direct.start()
    schemas = []
    setup = [
        f"CREATE USER IF NOT EXISTS {PROXY_USER}@'%' IDENTIFIED BY '{PROXY_PASSWORD}'",
        f"GRANT ALL ON *.* TO {PROXY_USER}@'%'",
    ]
    shard_setup = []
    for name, client in CLIENTS.items():
        for schema in SCHEMAS:
            database = _database(name, schema)
            # Django's test runner makes and drops test_<database>: a schema of the map too
            for listed in (database, f"test_{database}") if name == "django" else (database,):
                entry: dict = {"name": listed, "default_shard": "s0"}
                if schema == "sharded":
                    entry["tables"] = [
                        {"name": t, "shard_key": "id", "algorithm": "mod"}
                        for t in client.sharded_tables
                    ]
                schemas.append(entry)
            if name == "django":
                shard_setup.append(f"DROP DATABASE IF EXISTS test_{database}")
                setup.append(f"DROP DATABASE IF EXISTS test_{database}")
            for sql in (f"DROP DATABASE IF EXISTS {database}", f"CREATE DATABASE {database}"):
                setup.append(sql)
                shard_setup.append(sql)
    direct.execute(";".join(setup))
    for server in cluster.servers:
        server.execute(";".join(shard_setup))
    proxy = ProxyProcess(proxy_config(cluster, schemas=schemas), workdir, name="matrix-proxy")
    proxy.start()
    runs = Matrix(direct, proxy, workdir)
    try:
        for client, schema in _selected_cases(request):
            runs.submit(client, schema)
        yield runs
    finally:
        runs.pool.shutdown(wait=True, cancel_futures=True)
        code = proxy.stop()
        try:
            for server in cluster.servers:
                server.execute(";".join(s for s in shard_setup if s.startswith("DROP")))
        finally:
            direct.stop()
    assert code == 0, f"proxy exited with {code}; log tail:\n{proxy.log_tail()}"


@pytest.mark.parametrize(("client", "schema"), CASES)
def test_client_sees_through_the_proxy_what_it_sees_on_mariadb(
    matrix: Matrix, client: str, schema: str
) -> None:
    missing = _missing_runtime(CLIENTS[client])
    if missing is not None:
        pytest.fail(f"{client}: {missing}")
    direct, proxied = matrix.result(client, schema)
    if direct.returncode != 0:
        raise ScriptError(
            f"the {client} script failed against MariaDB itself:\n{direct.describe()}"
        )
    broken = [s["step"] for s in direct.steps if "error" in s and s["error"] is None]
    if broken:
        raise ScriptError(
            f"the {client} script hit errors of its own (no server error code) against MariaDB "
            f"itself at {broken}:\n{direct.describe()}"
        )
    comparison = compare(direct.steps, proxied.steps, expected_for(client, schema))
    assert comparison.ok, explain(f"{client} ({schema})", comparison, direct, proxied)


# --- the comparison itself (no servers needed) ---------------------------------------------


def _steps(*pairs: tuple[str, object]) -> list[dict]:
    return [{"step": label, "rows": value} for label, value in pairs]


def test_a_differing_step_fails_with_a_diff_naming_it() -> None:
    result = compare(_steps(("a", 1), ("b", 2)), _steps(("a", 1), ("b", 3)))
    assert not result.ok
    assert result.unexpected_labels == ["b"]
    assert "step #1 'b'" in result.unexpected[0] and '- "rows": 2' in result.unexpected[0]


def test_an_expected_difference_that_no_longer_occurs_fails() -> None:
    result = compare(_steps(("a", 1)), _steps(("a", 1)), {"a": "known defect"})
    assert not result.ok and result.expected_missing == {"a": "known defect"}


def test_a_cascading_entry_accepts_every_later_step_but_must_itself_differ() -> None:
    direct = _steps(("connect", 1), ("x", 2), ("y", 3))
    assert compare(direct, _steps(("connect", 0)), {"connect+": "cannot connect"}).ok
    proxied = _steps(("connect", 1), ("x", 0), ("y", 3))
    later_only = compare(direct, proxied, {"connect+": "cannot connect"})
    assert later_only.unexpected_labels == ["x"]
    assert later_only.expected_missing == {"connect+": "cannot connect"}


def test_restore_steps_and_unstable_entries_may_differ_without_failing() -> None:
    direct = _steps(("g.restore", 1), ("u", 1))
    assert compare(direct, _steps(("g.restore", 2), ("u", 2)), unstable={"u": "pool"}).ok
    assert compare(direct, direct, unstable={"u": "pool"}).ok
