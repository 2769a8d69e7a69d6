"""NOW(), UUID(), RAND() ... of an INSERT that several shards run, evaluated once.

One server evaluates each occurrence once for its row (NOW() once per statement). Every
shard of a broadcast INSERT, or of one whose rows split over shards, would evaluate its
own: the copies would differ. So the session first runs plan.OnceEvaluated's SELECT of
those occurrences (one evaluation each, in the session's time zone and settings), then
the INSERT with each occurrence replaced by its value as a literal of its type
(row_literals.py), planned and run as the client's statement.

Known limit: a DATETIME value written into a TIMESTAMP column is read in the session's
time zone, so in the repeated hour when a daylight-saving zone turns its clocks back
NOW() could land an hour apart from the instant one server would store.
"""

from __future__ import annotations

from ..protocol import wire
from ..protocol.binary import LiteralStyle
from ..routing.plan import OnceEvaluated
from . import steps
from .row_literals import literal_writer
from .state import SessionState


async def run(s: SessionState, root: OnceEvaluated, more: bool, runner: steps.Runner) -> None:
    held = await steps.run_held(s, root.select, runner)
    coldefs, rows = steps.result_set(held, s.deprecate_eof)
    style = LiteralStyle(not s.no_backslash_escapes, s.client_charset)
    values = [
        b"NULL"
        if value is None
        else literal_writer(c, wire.column_name(c), "", style, "an INSERT's NOW()/UUID()/RAND()")(
            value
        )
        for c, value in zip(coldefs, rows[0], strict=True)
    ]
    parts = [root.pieces[0]]
    for value, piece in zip(values, root.pieces[1:], strict=True):
        parts += [value.decode("utf-8", "surrogateescape"), piece]
    await runner(s, "".join(parts), more)
