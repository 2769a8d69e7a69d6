"""The scenario through the ``mariadb`` command-line client, as a script piped into it.

The whole scenario is one session (``mariadb --batch --force -vvv < script``), so
transactions span statements as they do for an application. -vvv echoes each
statement before its output; errors go to stderr as ``ERROR <code> (<state>) at
line <n>: <message>`` and are matched to their statement by line number. Also a
stored procedure created with ``DELIMITER`` and called, vertical output (\\G), and a
``LOAD DATA LOCAL INFILE`` of a file the script writes.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "python"))
from matrix_common import emit, env, scenario

SEPARATOR = "--------------"
EXTRA = [
    ("cli.vertical", "SELECT id, name FROM items WHERE id = 1\\G"),
    ("cli.delimiter", "DELIMITER //"),
    (
        "cli.create_procedure",
        "CREATE PROCEDURE bump(IN which INT)\nBEGIN\n  UPDATE items SET qty = qty + 1 WHERE id = which;\n"
        "  SELECT id, qty FROM items WHERE id = which;\nEND //",
    ),
    ("cli.delimiter_back", "DELIMITER ;"),
    ("cli.call", "CALL bump(2);"),
    ("cli.after_call", "SELECT id, qty FROM items WHERE id = 2;"),
    ("cli.cast_warning", "SELECT CAST('12abc' AS SIGNED) AS n;"),
    ("cli.show_warnings", "SHOW WARNINGS;"),
]
# LOAD DATA LOCAL INFILE (--local-infile): new rows, a duplicate key (skipped, warned)
LOAD_FILE = "cli_items.tsv"
LOAD_ROWS = "40\tload a\t4\t4.40\n1\tduplicate\t0\t\\N\n41\tload b\tx\t\\N\n42\tload c\n"


def load_steps(workdir: str) -> list[tuple[str, str]]:
    path = Path(workdir) / LOAD_FILE
    path.write_text(LOAD_ROWS)
    return [
        ("cli.load_data", f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE items;"),
        ("cli.load_warnings", "SHOW WARNINGS;"),
        (
            "cli.after_load",
            "SELECT id, name, qty, price FROM items WHERE id >= 40 OR id = 1 ORDER BY id;",
        ),
    ]


def literal(value: int | str) -> str:
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def statements() -> list[tuple[str, str]]:
    out = []
    for label, sql, params in scenario("?"):
        if params:
            values = iter(params)
            sql = re.sub(r"\?", lambda _, v=values: literal(next(v)), sql)
        out.append((label, sql + ";"))
    return out + EXTRA


def main() -> None:
    e = env()
    steps = statements() + load_steps(e["workdir"])
    lines: list[int] = []  # first line of each statement in the script
    text = ""
    for _, sql in steps:
        lines.append(text.count("\n") + 1)
        text += sql + "\n"
    proc = subprocess.run(
        [
            "mariadb",
            f"--host={e['host']}",
            f"--port={e['port']}",
            f"--user={e['user']}",
            f"--password={e['password']}",
            "--default-character-set=utf8mb4",
            "--local-infile=1",
            "--batch",
            "--force",
            "-vvv",
            e["database"],
        ],
        input=text,
        capture_output=True,
        text=True,
        timeout=120,
    )
    # stdout: SEP, query, SEP, output ... per statement (client commands echo nothing).
    parts = proc.stdout.split(SEPARATOR + "\n")
    outputs: dict[str, str] = {}
    for i in range(1, len(parts) - 1, 2):
        query = parts[i].rstrip("\n")
        output = re.sub(r" \(\d+\.\d+ sec\)", "", parts[i + 1]).strip("\n")
        outputs.setdefault(query, output)
        outputs[query + "#" + str(i)] = output
    errors: dict[int, list[str]] = {}
    for line in proc.stderr.splitlines():
        m = re.match(r"ERROR (\d+) \((\w+)\) at line (\d+): (.*)", line)
        if m:
            at = int(m.group(3))
            index = max(i for i, first in enumerate(lines) if first <= at)
            errors.setdefault(index, []).append(f"ERROR {m.group(1)} ({m.group(2)}): {m.group(4)}")
    seen: dict[str, int] = {}
    for index, (label, sql) in enumerate(steps):
        query = sql.rstrip(";").removesuffix("\\G").removesuffix(" //")
        record: dict[str, object] = {}
        occurrences = [k for k in outputs if k.startswith(query + "#")]
        n = seen.get(query, 0)
        if n < len(occurrences):
            record["output"] = outputs[occurrences[n]].splitlines()
        seen[query] = n + 1
        if index in errors:
            record["errors"] = errors[index]
        emit(label, **record)
    emit(
        "cli.exit",
        code=proc.returncode,
        stray_stderr=[line for line in proc.stderr.splitlines() if not line.startswith("ERROR ")],
    )


if __name__ == "__main__":
    main()
