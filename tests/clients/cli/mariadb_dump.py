"""``mariadb-dump`` with default options and with --single-transaction, and the reload.

Fills the tables through the ``mariadb`` client, dumps the database, drops the
tables, pipes the dump back in with ``mariadb`` and reads the data again. The dump
text is compared without its ``--`` comment lines (host, version and date).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
from matrix_common import emit, env

SETUP = """
CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, qty INT NOT NULL, price DECIMAL(10,2) NULL) ENGINE=InnoDB;
CREATE TABLE notes (id INT AUTO_INCREMENT PRIMARY KEY, body VARCHAR(100) NOT NULL) ENGINE=InnoDB;
INSERT INTO items (id, name, qty, price) VALUES (1, 'apple', 10, 1.50), (2, 'pear', 20, 2.25), (3, 'plum', 30, NULL), (4, 'it''s \\\\ "q"', 40, 4.00);
INSERT INTO notes (body) VALUES ('first'), ('héllo 🐬');
"""
CHECK = "SELECT * FROM items ORDER BY id; SELECT * FROM notes ORDER BY id; SHOW TABLES;"


def conn_args() -> list[str]:
    e = env()
    return [
        f"--host={e['host']}",
        f"--port={e['port']}",
        f"--user={e['user']}",
        f"--password={e['password']}",
        "--default-character-set=utf8mb4",
    ]


def mariadb(label: str, sql: str) -> None:
    proc = subprocess.run(
        ["mariadb", *conn_args(), "--batch", env()["database"]],
        input=sql,
        capture_output=True,
        text=True,
        timeout=120,
    )
    emit(
        label,
        code=proc.returncode,
        output=proc.stdout.splitlines(),
        stderr=proc.stderr.splitlines(),
    )


def dump(label: str, *options: str) -> str:
    proc = subprocess.run(
        ["mariadb-dump", *conn_args(), *options, env()["database"]],
        capture_output=True,
        text=True,
        timeout=120,
    )
    body = [line for line in proc.stdout.splitlines() if not line.startswith("--")]
    emit(label, code=proc.returncode, dump=body, stderr=proc.stderr.splitlines())
    return proc.stdout


def main() -> None:
    mariadb("setup", SETUP)
    text = dump("dump.default")
    dump("dump.single_transaction", "--single-transaction")
    dump("dump.no_locks", "--skip-lock-tables")
    mariadb("drop", "DROP TABLE items; DROP TABLE notes;")
    proc = subprocess.run(
        ["mariadb", *conn_args(), "--batch", env()["database"]],
        input=text,
        capture_output=True,
        text=True,
        timeout=120,
    )
    emit("reload", code=proc.returncode, stderr=proc.stderr.splitlines())
    mariadb("after_reload", CHECK)


if __name__ == "__main__":
    main()
