"""mycli in batch mode: each step is one ``mycli --csv -e "<statements>"`` session.

mycli is installed in a virtualenv of its own (.venv-mycli, by scripts/bootstrap.sh)
because it pins another sqlglot than the proxy; its path comes in ``MYCLI``.
A session stops at its first error (exit 1, the error on stderr), as mycli does.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
from matrix_common import emit, env

STEPS = [
    ("connect", "SELECT 1 AS one, 'héllo 🐬' AS s"),
    (
        "ddl",
        "CREATE TABLE items (id INT PRIMARY KEY, name VARCHAR(40) NOT NULL, qty INT NOT NULL, "
        "price DECIMAL(10,2) NULL); CREATE TABLE notes (id INT AUTO_INCREMENT PRIMARY KEY, body "
        "VARCHAR(100) NOT NULL)",
    ),
    (
        "crud",
        "INSERT INTO items (id, name, qty, price) VALUES (1, 'apple', 10, 1.50), (2, 'pear', 20, "
        "2.25), (3, 'plum', 30, NULL); INSERT INTO notes (body) VALUES ('first'); "
        "SELECT LAST_INSERT_ID() AS id; UPDATE items SET qty = qty + 1 WHERE id IN (1, 2); "
        "DELETE FROM items WHERE id = 3; SELECT * FROM items ORDER BY id",
    ),
    (
        "tx.savepoint",
        "START TRANSACTION; UPDATE items SET qty = 100 WHERE id = 1; SAVEPOINT sp1; "
        "UPDATE items SET qty = 200 WHERE id = 2; ROLLBACK TO SAVEPOINT sp1; COMMIT; "
        "SELECT id, qty FROM items ORDER BY id",
    ),
    (
        "tx.rollback",
        "BEGIN; DELETE FROM items; ROLLBACK; SELECT COUNT(*) AS n FROM items",
    ),
    ("err.duplicate", "INSERT INTO items (id, name, qty) VALUES (1, 'dup', 1)"),
    ("err.syntax", "SELEC 1"),
    ("final", "SELECT * FROM items ORDER BY id; SELECT * FROM notes ORDER BY id"),
]


def main() -> None:
    e = env()
    mycli = os.environ.get("MYCLI", "mycli")
    for label, sql in STEPS:
        proc = subprocess.run(
            [mycli, "--host", e["host"], "--port", str(e["port"]), "--user", e["user"],
             "--password", e["password"], "--csv", "--execute", sql, e["database"]],
            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
            env={**os.environ, "HOME": e["workdir"]},
        )  # fmt: skip
        emit(label, code=proc.returncode, output=proc.stdout.splitlines(),
             stderr=proc.stderr.splitlines())  # fmt: skip


if __name__ == "__main__":
    main()
