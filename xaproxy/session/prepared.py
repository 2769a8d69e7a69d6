"""Server-side prepared statements as the proxy keeps them.

The client's statement lives here; a shard connection prepares its own copy the
first time it runs it (shards/statements.py), so any pooled connection, or any
shard the parameters route to, can run it. Executes the proxy cannot forward to one
shard's statement inline the parameters as literals and run the statement as text.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..analysis import Kind
from ..analysis.parse import Parsed
from ..config import TableConfig
from ..protocol.binary import sql_literal
from ..routing.keycolumn import KeyColumn
from ..routing.plan import Plan


@dataclass(slots=True)
class PreparedStatement:
    id: int
    sql: str
    kind: Kind
    offsets: list[int]  # character offsets of the `?` markers
    limit_params: frozenset[int] = frozenset()  # which markers are a LIMIT's count or offset
    route: Plan | None = None
    database_at_prepare: str | None = None
    columns: list[bytes] = field(default_factory=list)
    param_types: list[tuple[int, bool]] | None = None  # remembered for new-params-bound = 0
    raw_types: bytes = b""  # the same, as the client sent them (2 bytes a parameter)
    native: bool = False  # its executes may go to a shard's own prepared statement
    long_data: dict[int, bytes] = field(default_factory=dict)
    long_data_too_large: bool = False  # more than max_allowed_packet was sent: EXECUTE fails
    template: Parsed | None = None  # parsed once, with :pN for the N-th `?`, routed per execute
    # `WHERE key = ?` templates (routing/key_templates.py): the table and the parameter,
    # and the plan made for each shard, valid while the planner's metadata is `key_metadata`
    key_param: tuple[TableConfig, KeyColumn, int] | None = None
    key_plans: dict[str, Plan] = field(default_factory=dict)
    key_metadata: object = None
    _pieces: list[bytes] | None = None

    def template_text(self) -> str:
        """The statement with each `?` numbered, so its parse can bind the execute's values."""
        parts, start = [], 0
        for index, offset in enumerate(self.offsets):
            parts.append(self.sql[start:offset])
            parts.append(f":p{index}")
            start = offset + 1
        parts.append(self.sql[start:])
        return "".join(parts)

    def inline(self, values: list[object], backslash_escapes: bool, charset: str) -> str:
        """The statement's text with each `?` replaced by its value as an SQL literal."""
        if self._pieces is None:
            pieces, start = [], 0
            for offset in self.offsets:
                pieces.append(self.sql[start:offset].encode("utf-8", "surrogateescape"))
                start = offset + 1
            pieces.append(self.sql[start:].encode("utf-8", "surrogateescape"))
            self._pieces = pieces
        parts = [self._pieces[0]]
        for value, piece in zip(values, self._pieces[1:], strict=True):
            parts.append(sql_literal(value, backslash_escapes, charset))
            parts.append(piece)
        return b"".join(parts).decode("utf-8", "surrogateescape")
