"""Session-state changes in OK packets: passed on to a client that tracks them, cut
for any other, added by the proxy in MariaDB's framing."""

from __future__ import annotations

from xaproxy.protocol import wire
from xaproxy.protocol.constants import Status

CHANGED = Status.SESSION_STATE_CHANGED
TIME_ZONE = b"\x00\x11\ttime_zone\x06+01:00"  # system variable time_zone = +01:00
MESSAGE = wire.lenenc_bytes(b"Rows matched: 1  Changed: 0  Warnings: 0")


def _shard_ok(info: bytes, status: int) -> wire.OkInfo:
    return wire.parse_ok(wire.ok_packet(status, 1, 0, 0, info))


def test_a_shards_state_changes_reach_a_tracking_client_as_they_are() -> None:
    ok = _shard_ok(b"\x00" + wire.lenenc_bytes(TIME_ZONE), Status.AUTOCOMMIT | CHANGED)
    packet = wire.ok_reply(Status.AUTOCOMMIT, ok, session_track=True)
    assert packet == wire.ok_packet(Status.AUTOCOMMIT | CHANGED, 1, 0, 0, ok.info)
    assert wire.ok_state(wire.parse_ok(packet)) == TIME_ZONE


def test_a_client_that_does_not_track_gets_the_message_alone() -> None:
    ok = _shard_ok(MESSAGE + wire.lenenc_bytes(TIME_ZONE), CHANGED)
    assert wire.ok_reply(Status.AUTOCOMMIT, ok, session_track=False) == wire.ok_packet(
        Status.AUTOCOMMIT, 1, 0, 0, MESSAGE
    )
    empty = _shard_ok(b"\x00" + wire.lenenc_bytes(TIME_ZONE), CHANGED)
    assert wire.ok_reply(0, empty, session_track=False) == wire.ok_packet(0, 1, 0, 0)


def test_the_proxys_own_changes_come_with_an_always_present_message() -> None:
    state = wire.schema_state("shop")
    assert state == b"\x01\x05\x04shop"
    packet = wire.ok_packet(Status.AUTOCOMMIT, state=state)
    assert packet == bytes.fromhex("00000002400000000701050473686f70")  # as MariaDB sends it


def test_the_end_of_a_result_carries_the_changes_where_the_framing_has_room() -> None:
    tracked = wire.end_of_rows_tracked(Status.AUTOCOMMIT, 0, True, True, True, TIME_ZONE)
    assert wire.ok_state(wire.parse_ok(tracked)) == TIME_ZONE
    old_eof = wire.end_of_rows_tracked(Status.AUTOCOMMIT, 0, False, True, True, TIME_ZONE)
    assert old_eof == wire.eof_packet(Status.AUTOCOMMIT | CHANGED)
    untracked = wire.end_of_rows_tracked(Status.AUTOCOMMIT | CHANGED, 0, True, False, True, b"")
    assert untracked == wire.end_of_rows(Status.AUTOCOMMIT, 0, True)
