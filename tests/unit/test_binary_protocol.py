"""Unit tests of xaproxy.protocol.binary: COM_STMT_EXECUTE parsing, SQL literals,
and text-to-binary result row conversion. Pure: no server needed."""

from __future__ import annotations

import datetime
import struct
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xaproxy.errors import ProxyError
from xaproxy.protocol.binary import (
    ExecuteRequest,
    LiteralStyle,
    decode_params,
    inline_params,
    make_row_converter,
    parse_execute,
    sql_literal,
    statement_id_of,
    text_row_to_binary,
)
from xaproxy.protocol.constants import ColumnFlag, FieldType

MALFORMED = 1835
UNSIGNED = ColumnFlag.UNSIGNED


# --- helpers: what a client driver would send ----------------------------------


def lenenc(data: bytes) -> bytes:
    n = len(data)
    if n < 0xFB:
        head = bytes((n,))
    elif n < 1 << 16:
        head = b"\xfc" + n.to_bytes(2, "little")
    elif n < 1 << 24:
        head = b"\xfd" + n.to_bytes(3, "little")
    else:
        head = b"\xfe" + n.to_bytes(8, "little")
    return head + data


def execute_payload(
    params: list[tuple[int, bool, bytes | None]],
    statement_id: int = 7,
    bound: bool = True,
    flags: int = 0,
) -> bytes:
    """A COM_STMT_EXECUTE payload (no command byte); None values set the NULL bit."""
    head = struct.pack("<IBI", statement_id, flags, 1)
    if not params:
        return head
    bitmap = bytearray((len(params) + 7) // 8)
    for i, (_, _, value) in enumerate(params):
        if value is None:
            bitmap[i // 8] |= 1 << (i % 8)
    types = b"".join(bytes((t, 0x80 if unsigned else 0)) for t, unsigned, _ in params)
    values = b"".join(v for _, _, v in params if v is not None)
    return head + bytes(bitmap) + (b"\x01" + types if bound else b"\x00") + values


def decode(params: list[tuple[int, bool, bytes | None]], long_data=None) -> list[object]:
    req = parse_execute(execute_payload(params), len(params))
    assert req.param_types is not None
    return decode_params(req, req.param_types, long_data or {})


def assert_malformed(excinfo: pytest.ExceptionInfo[ProxyError]) -> None:
    assert excinfo.value.code == MALFORMED
    assert excinfo.value.sqlstate == "HY000"


# --- statement_id_of / parse_execute -----------------------------------------


def test_statement_id_of_reads_the_first_four_bytes_little_endian():
    assert statement_id_of(b"\x01\x02\x00\x00\x00rest") == 0x0201
    assert statement_id_of(memoryview(b"\xff\xff\xff\xff")) == 0xFFFFFFFF


@pytest.mark.parametrize("payload", [b"", b"\x01", b"\x01\x02\x03"])
def test_statement_id_of_short_payload_is_malformed(payload):
    with pytest.raises(ProxyError) as excinfo:
        statement_id_of(payload)
    assert_malformed(excinfo)


def test_parse_execute_without_params_has_empty_types_and_bitmap():
    req = parse_execute(struct.pack("<IBI", 42, 1, 1), 0)
    assert req.statement_id == 42
    assert req.flags == 1
    assert req.param_types == []
    assert req.null_bitmap == b""
    assert bytes(req.raw_values) == b""


def test_parse_execute_reads_types_unsigned_flag_bitmap_and_values():
    payload = execute_payload(
        [
            (FieldType.LONGLONG, True, b"\x01" * 8),
            (FieldType.VAR_STRING, False, None),
            (FieldType.TINY, False, b"\xff"),
        ],
        statement_id=0x01020304,
        flags=0x08,
    )
    req = parse_execute(payload, 3)
    assert req.statement_id == 0x01020304
    assert req.flags == 0x08
    assert req.param_types == [
        (FieldType.LONGLONG, True),
        (FieldType.VAR_STRING, False),
        (FieldType.TINY, False),
    ]
    assert req.null_bitmap == b"\x02"
    assert bytes(req.raw_values) == b"\x01" * 8 + b"\xff"


def test_parse_execute_new_params_bound_zero_leaves_types_to_the_caller():
    payload = execute_payload(
        [(FieldType.LONG, False, struct.pack("<i", -3)), (FieldType.STRING, False, b"\x02ab")],
        bound=False,
    )
    req = parse_execute(payload, 2)
    assert req.param_types is None
    assert bytes(req.raw_values) == struct.pack("<i", -3) + b"\x02ab"
    remembered = [(int(FieldType.LONG), False), (int(FieldType.STRING), False)]
    assert decode_params(req, remembered, {}) == [-3, b"ab"]


def test_parse_execute_ignores_the_flag_bits_other_than_unsigned():
    payload = struct.pack("<IBI", 1, 0, 1) + b"\x00\x01" + bytes((FieldType.SHORT, 0x7F))
    req = parse_execute(payload + b"\x05\x00", 1)
    assert req.param_types == [(FieldType.SHORT, False)]


@pytest.mark.parametrize(
    "payload,count",
    [
        (b"", 0),
        (b"\x01\x00\x00\x00\x00\x01\x00\x00", 0),  # header one byte short
        (struct.pack("<IBI", 1, 0, 1), 1),  # no bitmap
        (struct.pack("<IBI", 1, 0, 1) + b"\x00", 1),  # no new-params-bound byte
        (struct.pack("<IBI", 1, 0, 1) + b"\x00\x00", 9),  # bitmap of 9 params needs 2 bytes
        (struct.pack("<IBI", 1, 0, 1) + b"\x00\x01\x03", 1),  # half a type
        (struct.pack("<IBI", 1, 0, 1) + b"\x00\x01\x03\x00", 2),  # one of two types
    ],
)
def test_parse_execute_truncated_payload_is_malformed(payload, count):
    with pytest.raises(ProxyError) as excinfo:
        parse_execute(payload, count)
    assert_malformed(excinfo)


# --- decode_params -------------------------------------------------------------


@pytest.mark.parametrize(
    "ftype,unsigned,raw,expected",
    [
        (FieldType.TINY, False, b"\x80", -128),
        (FieldType.TINY, False, b"\xfb", -5),
        (FieldType.TINY, True, b"\xff", 255),
        (FieldType.SHORT, False, struct.pack("<h", -32768), -32768),
        (FieldType.SHORT, True, struct.pack("<H", 65535), 65535),
        (FieldType.YEAR, False, struct.pack("<h", 2024), 2024),
        (FieldType.LONG, False, struct.pack("<i", -2147483648), -2147483648),
        (FieldType.LONG, True, struct.pack("<I", 4294967295), 4294967295),
        (FieldType.INT24, False, struct.pack("<i", -8388608), -8388608),
        (FieldType.LONGLONG, True, b"\xff" * 8, 18446744073709551615),
        (FieldType.LONGLONG, False, b"\xff" * 8, -1),
        (FieldType.LONGLONG, False, struct.pack("<q", -(2**63)), -(2**63)),
        (FieldType.FLOAT, False, struct.pack("<f", 1.5), 1.5),
        (
            FieldType.FLOAT,
            False,
            struct.pack("<f", 0.1),
            struct.unpack("<f", struct.pack("<f", 0.1))[0],
        ),
        (FieldType.DOUBLE, False, struct.pack("<d", 0.1), 0.1),
        (FieldType.DOUBLE, False, struct.pack("<d", -1e308), -1e308),
        (FieldType.DECIMAL, False, lenenc(b"-12.50"), b"-12.50"),
        (
            FieldType.NEWDECIMAL,
            False,
            lenenc(b"12345678901234567890.123456789"),
            b"12345678901234567890.123456789",
        ),
        (FieldType.VARCHAR, False, lenenc("héllo 😀".encode()), "héllo 😀".encode()),
        (FieldType.VAR_STRING, False, lenenc("日本語".encode()), "日本語".encode()),
        (FieldType.STRING, False, lenenc(b""), b""),
        (FieldType.STRING, False, lenenc(b"x" * 300), b"x" * 300),
        (FieldType.TINY_BLOB, False, lenenc(b"\x00\xff"), b"\x00\xff"),
        (FieldType.MEDIUM_BLOB, False, lenenc(b"m"), b"m"),
        (FieldType.LONG_BLOB, False, lenenc(b"l" * 70000), b"l" * 70000),
        (FieldType.BLOB, False, lenenc(bytes(range(256))), bytes(range(256))),
        (FieldType.JSON, False, lenenc(b'{"a": [1, 2]}'), b'{"a": [1, 2]}'),
        (FieldType.ENUM, False, lenenc(b"red"), b"red"),
        (FieldType.SET, False, lenenc(b"a,b"), b"a,b"),
        (FieldType.BIT, False, lenenc(b"\x01\x02"), b"\x01\x02"),
        (FieldType.GEOMETRY, False, lenenc(b"\x00\x00\x00\x00\x01"), b"\x00\x00\x00\x00\x01"),
        (FieldType.NULL, False, b"", None),
        (FieldType.DATE, False, b"\x04\xe8\x07\x02\x1d", datetime.date(2024, 2, 29)),
        (FieldType.DATE, False, b"\x07\xe8\x07\x02\x1d\x17\x3b\x3b", datetime.date(2024, 2, 29)),
        (FieldType.DATETIME, False, b"\x04\xe8\x07\x02\x1d", datetime.datetime(2024, 2, 29)),
        (
            FieldType.DATETIME,
            False,
            b"\x07\xe8\x07\x02\x1d\x17\x3b\x3b",
            datetime.datetime(2024, 2, 29, 23, 59, 59),
        ),
        (
            FieldType.DATETIME,
            False,
            b"\x0b\xe8\x07\x02\x1d\x17\x3b\x3b" + struct.pack("<I", 123456),
            datetime.datetime(2024, 2, 29, 23, 59, 59, 123456),
        ),
        (
            FieldType.TIMESTAMP,
            False,
            b"\x0b\xd0\x07\x01\x01\x00\x00\x00" + struct.pack("<I", 1),
            datetime.datetime(2000, 1, 1, 0, 0, 0, 1),
        ),
        (FieldType.TIME, False, b"\x00", datetime.timedelta(0)),
        (
            FieldType.TIME,
            False,
            b"\x08\x00\x01\x00\x00\x00\x02\x03\x04",
            datetime.timedelta(days=1, hours=2, minutes=3, seconds=4),
        ),
        (
            FieldType.TIME,
            False,
            b"\x0c\x01\x22\x00\x00\x00\x16\x3b\x3b" + struct.pack("<I", 999999),
            -datetime.timedelta(hours=838, minutes=59, seconds=59, microseconds=999999),
        ),
        (
            FieldType.TIME,
            False,
            b"\x08\x01\x00\x00\x00\x00\x00\x00\x01",
            datetime.timedelta(seconds=-1),
        ),
    ],
)
def test_decode_params_round_trips_each_type(ftype, unsigned, raw, expected):
    values = decode([(ftype, unsigned, raw), (FieldType.TINY, False, b"\x2a")])
    assert values == [expected, 42]  # and exactly the value's bytes were consumed
    assert type(values[0]) is type(expected)


@pytest.mark.parametrize(
    "ftype,raw,expected",
    [
        (FieldType.DATE, b"\x00", b"0000-00-00"),
        (FieldType.DATE, b"\x04\xe8\x07\x00\x00", b"2024-00-00"),
        (FieldType.DATETIME, b"\x00", b"0000-00-00 00:00:00"),
        (FieldType.TIMESTAMP, b"\x04\x00\x00\x00\x00", b"0000-00-00 00:00:00"),
        (FieldType.DATETIME, b"\x07\xe8\x07\x01\x00\x01\x02\x03", b"2024-01-00 01:02:03"),
        (
            FieldType.DATETIME,
            b"\x0b\x00\x00\x00\x00\x00\x00\x00" + struct.pack("<I", 5),
            b"0000-00-00 00:00:00.000005",
        ),
    ],
)
def test_decode_params_zero_dates_become_mysql_date_text(ftype, raw, expected):
    assert decode([(ftype, False, raw)]) == [expected]
    # ... which sql_literal quotes as a string the server reads back as the same date.
    assert sql_literal(expected) == b"'" + expected + b"'"


def test_decode_params_null_bitmap_with_more_than_eight_params():
    params: list[tuple[int, bool, bytes | None]] = []
    expected: list[object] = []
    for i in range(11):
        if i in (0, 7, 8, 10):
            params.append((FieldType.LONG, False, None))
            expected.append(None)
        else:
            params.append((FieldType.LONG, False, struct.pack("<i", i * 100)))
            expected.append(i * 100)
    payload = execute_payload(params)
    req = parse_execute(payload, 11)
    assert req.null_bitmap == bytes((0b1000_0001, 0b0000_0101))
    assert decode_params(req, req.param_types or [], {}) == expected


def test_decode_params_null_bit_wins_over_type_and_consumes_nothing():
    values = decode(
        [
            (FieldType.DATETIME, False, None),
            (FieldType.VAR_STRING, False, None),
            (FieldType.SHORT, False, b"\x01\x00"),
        ]
    )
    assert values == [None, None, 1]


def test_decode_params_long_data_16mib_blob_consumes_no_value_bytes():
    blob = bytes(range(256)) * (16 * 1024 * 4)  # 16 MiB
    assert len(blob) == 16 * 1024 * 1024
    params = [
        (FieldType.LONG, False, struct.pack("<i", 1)),
        (FieldType.BLOB, False, b""),  # sent with COM_STMT_SEND_LONG_DATA instead
        (FieldType.VAR_STRING, False, lenenc(b"after")),
    ]
    values = decode(params, long_data={1: blob})
    assert values[0] == 1
    assert values[1] is blob
    assert values[2] == b"after"


def test_decode_params_long_data_takes_precedence_over_null_bit():
    values = decode([(FieldType.BLOB, False, None)], long_data={0: b"long"})
    assert values == [b"long"]


def test_decode_params_reads_from_a_memoryview_of_a_large_string():
    big = b"\xe2\x82\xac" * 100_000  # utf8mb4 text over 64 KiB: 0xFD length prefix
    values = decode([(FieldType.VAR_STRING, False, lenenc(big))])
    assert values == [big]


def test_decode_params_unknown_type_is_malformed():
    with pytest.raises(ProxyError) as excinfo:
        decode([(0x42, False, b"\x00")])
    assert_malformed(excinfo)


@pytest.mark.parametrize("ftype", [FieldType.NEWDATE, FieldType.DATETIME2, FieldType.TIME2])
def test_decode_params_server_internal_types_are_malformed(ftype):
    with pytest.raises(ProxyError) as excinfo:
        decode([(ftype, False, b"\x00")])
    assert_malformed(excinfo)


@pytest.mark.parametrize(
    "ftype,raw",
    [
        (FieldType.DATE, b"\x05\xe8\x07\x02\x1d\x00"),
        (FieldType.DATETIME, b"\x03\xe8\x07\x02"),
        (FieldType.DATETIME, b"\x0b\xe8\x07\x02\x1d\x17\x3b\x3b\x40\x42\x0f\x00"),
        (FieldType.DATETIME, b"\x0b\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x80"),
        (FieldType.TIME, b"\x04\x00\x00\x00\x00"),
        (FieldType.VAR_STRING, b"\xfb"),
        (FieldType.VAR_STRING, b"\xff"),
    ],
)
def test_decode_params_invalid_lengths_are_malformed(ftype, raw):
    with pytest.raises(ProxyError) as excinfo:
        decode([(ftype, False, raw)])
    assert_malformed(excinfo)


def test_decode_params_bitmap_size_must_match_param_count():
    req = ExecuteRequest(1, 0, None, b"\x00", b"")
    with pytest.raises(ProxyError) as excinfo:
        decode_params(req, [(FieldType.TINY, False)] * 9, {})
    assert_malformed(excinfo)


FULL_PARAMS: list[tuple[int, bool, bytes | None]] = [
    (FieldType.TINY, False, b"\x01"),
    (FieldType.LONGLONG, True, b"\xff" * 8),
    (FieldType.DOUBLE, False, struct.pack("<d", 2.5)),
    (FieldType.FLOAT, False, struct.pack("<f", 2.5)),
    (FieldType.VAR_STRING, False, lenenc(b"x" * 300)),
    (FieldType.DATETIME, False, b"\x0b\xe8\x07\x02\x1d\x17\x3b\x3b\x01\x00\x00\x00"),
    (FieldType.TIME, False, b"\x0c\x01\x22\x00\x00\x00\x16\x3b\x3b\x3f\x42\x0f\x00"),
    (FieldType.NEWDECIMAL, False, lenenc(b"1.5")),
    (FieldType.SHORT, False, b"\x01\x00"),
]


def test_every_truncation_of_an_execute_payload_raises_malformed_only():
    payload = execute_payload(FULL_PARAMS)
    count = len(FULL_PARAMS)
    assert len(decode(FULL_PARAMS)) == count
    for cut in range(len(payload)):
        with pytest.raises(ProxyError) as excinfo:
            req = parse_execute(payload[:cut], count)
            decode_params(req, req.param_types or [], {})
        assert_malformed(excinfo)


FIELD_TYPES = [int(t) for t in FieldType]


@settings(max_examples=300, deadline=None)
@given(
    data=st.binary(max_size=80),
    count=st.integers(min_value=0, max_value=12),
    remembered=st.lists(
        st.tuples(st.sampled_from([*FIELD_TYPES, 0x20, 0x80]), st.booleans()),
        min_size=12,
        max_size=12,
    ),
)
def test_random_execute_payloads_raise_nothing_but_proxy_error(data, count, remembered):
    try:
        req = parse_execute(data, count)
        decode_params(req, req.param_types or remembered[:count], {})
    except ProxyError as exc:
        assert exc.code == MALFORMED


@settings(max_examples=300, deadline=None)
@given(
    head=st.lists(st.tuples(st.sampled_from(FIELD_TYPES), st.booleans()), min_size=1, max_size=8),
    values=st.binary(max_size=60),
)
def test_well_formed_headers_with_random_values_raise_nothing_but_proxy_error(head, values):
    count = len(head)
    payload = (
        struct.pack("<IBI", 1, 0, 1)
        + bytes((count + 7) // 8)
        + b"\x01"
        + b"".join(bytes((t, 0x80 if u else 0)) for t, u in head)
        + values
    )
    try:
        req = parse_execute(payload, count)
        decode_params(req, req.param_types or [], {})
    except ProxyError as exc:
        assert exc.code == MALFORMED


# --- sql_literal ---------------------------------------------------------------


@pytest.mark.parametrize(
    "value,expected",
    [
        (None, b"NULL"),
        (True, b"1"),
        (False, b"0"),
        (0, b"0"),
        (-128, b"-128"),
        (18446744073709551615, b"18446744073709551615"),
        (-(2**63), b"-9223372036854775808"),
        (1.5, b"1.5e0"),
        (-0.0, b"-0.0e0"),
        (0.1, b"0.1e0"),
        (1e300, b"1e+300"),
        (1.5e-07, b"1.5e-07"),
        (Decimal("-12.50"), b"-12.50"),
        (Decimal("1E+3"), b"1000"),
        (datetime.date(2024, 2, 29), b"'2024-02-29'"),
        (datetime.date(1, 1, 1), b"'0001-01-01'"),
        (datetime.datetime(2024, 2, 29, 23, 59, 59), b"'2024-02-29 23:59:59'"),
        (datetime.datetime(2024, 2, 29, 1, 2, 3, 4500), b"'2024-02-29 01:02:03.004500'"),
        (datetime.timedelta(0), b"'00:00:00'"),
        (datetime.timedelta(hours=838, minutes=59, seconds=59), b"'838:59:59'"),
        (
            -datetime.timedelta(days=1, hours=2, minutes=3, seconds=4, microseconds=5),
            b"'-26:03:04.000005'",
        ),
        (datetime.timedelta(microseconds=-1), b"'-00:00:00.000001'"),
        (datetime.time(7, 8, 9), b"'07:08:09'"),
        (b"", b"''"),
        (b"plain text", b"'plain text'"),
        ("é", b"'\xc3\xa9'"),
    ],
)
def test_sql_literal_values(value, expected):
    assert sql_literal(value) == expected


@pytest.mark.parametrize("value", [0.1, 1 / 3, 5e-324, 1.7976931348623157e308, -2.5e-10, 1e16])
def test_sql_literal_float_text_parses_back_to_the_same_double(value):
    text = sql_literal(value)
    assert b"e" in text  # an exponent keeps MySQL from reading it as DECIMAL
    assert float(text) == value


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan"), Decimal("NaN")])
def test_sql_literal_non_finite_numbers_are_refused(value):
    with pytest.raises(ProxyError) as excinfo:
        sql_literal(value)
    assert excinfo.value.code == 1367


def test_sql_literal_escapes_like_mysql_with_backslash_escapes():
    value = b"a'b\"c\\d\x00e\nf\rg\x1ah"
    assert sql_literal(value) == b"'a\\'b\\\"c\\\\d\\0e\\nf\\rg\\Zh'"
    assert sql_literal(bytearray(b"it's")) == b"'it\\'s'"
    assert sql_literal(memoryview(b"\\")) == b"'\\\\'"


def test_sql_literal_only_doubles_quotes_without_backslash_escapes():
    value = b"a'b\"c\\d\x00e\nf''"
    assert sql_literal(value, backslash_escapes=False) == b"'a''b\"c\\d\x00e\nf'''''"


def test_sql_literal_keeps_utf8mb4_bytes_unchanged():
    text = "naïve 😀 '".encode()
    assert sql_literal(text) == b"'" + "naïve 😀 \\'".encode() + b"'"


def test_sql_literal_never_splits_gbk_characters_around_a_backslash():
    # 0x95 0x5C is one GBK character whose second byte is a backslash: it is copied,
    # not escaped; the quote that follows is escaped.
    assert sql_literal(b"\x95\x5c'", charset="gbk") == b"'\x95\x5c\\''"
    # 0xBF 0x27 is no character: the lead byte is escaped too, or 0xBF and the
    # backslash before the quote would form a character and end the string.
    assert sql_literal(b"\xbf' OR 1=1 -- ", charset="GBK") == b"'\\\xbf\\' OR 1=1 -- '"
    # Byte-wise escaping is right for utf8mb4 and latin1 (charset None).
    assert sql_literal(b"\xbf'") == b"'\xbf\\''"


@pytest.mark.parametrize("charset", ["big5", "sjis", "cp932", "gb18030"])
def test_sql_literal_multibyte_charsets_copy_whole_characters(charset):
    value = b"\xe0\x5c\xf0\x5c\\"  # two characters ending in 0x5C, then a real backslash
    assert sql_literal(value, charset=charset) == b"'\xe0\x5c\xf0\x5c\\\\'"


def test_sql_literal_gb18030_four_byte_characters_are_copied():
    value = b"\x81\x30\x81\x30\\"
    assert sql_literal(value, charset="gb18030") == b"'\x81\x30\x81\x30\\\\'"


def test_sql_literal_multibyte_charset_without_backslash_escapes_doubles_quotes():
    assert sql_literal(b"\xbf'\x95\\", False, "gbk") == b"'\xbf''\x95\\'"


def test_literal_style_follows_backslash_mode_and_charset():
    assert LiteralStyle().literal(b"'") == b"'\\''"
    assert LiteralStyle(backslash_escapes=False).literal(b"'\\") == b"'''\\'"
    assert LiteralStyle(charset="gbk").literal(b"\x95\\") == b"'\x95\\'"
    assert LiteralStyle().literal(None) == b"NULL"


def test_sql_literal_unknown_python_type_is_a_type_error():
    with pytest.raises(TypeError):
        sql_literal(object())


# --- inline_params -------------------------------------------------------------


def test_inline_params_replaces_each_placeholder_in_order():
    sql = b"SELECT ? + ?, '?' FROM t WHERE a = ? AND b IN (?)"
    offsets = [i for i, c in enumerate(sql) if c == ord("?") and i != 15]
    assert len(offsets) == 4
    literals = [b"1", b"-2.5e0", b"'x\\'y'", b"NULL"]
    assert inline_params(sql, offsets, literals) == (
        b"SELECT 1 + -2.5e0, '?' FROM t WHERE a = 'x\\'y' AND b IN (NULL)"
    )


def test_inline_params_handles_adjacent_and_edge_placeholders():
    assert inline_params(b"??", [0, 1], [b"'a'", b"'b'"]) == b"'a''b'"
    assert inline_params(b"?", [0], [b"NULL"]) == b"NULL"
    assert inline_params(b"SELECT 1", [], []) == b"SELECT 1"


def test_inline_params_keeps_non_ascii_bytes_of_sql_and_literals():
    sql = "SELECT 'é', ?".encode()
    assert (
        inline_params(sql, [len(sql) - 1], [b"'\xff\x00'"])
        == "SELECT 'é', ".encode() + b"'\xff\x00'"
    )


@pytest.mark.parametrize(
    "offsets,literals",
    [([7], []), ([7, 7], [b"1", b"2"]), ([3], [b"1"]), ([99], [b"1"])],
)
def test_inline_params_rejects_offsets_that_do_not_fit(offsets, literals):
    with pytest.raises(ValueError):
        inline_params(b"SELECT ?", offsets, literals)


# --- text_row_to_binary ------------------------------------------------------


def text_row(*values: bytes | None) -> bytes:
    return b"".join(b"\xfb" if v is None else lenenc(v) for v in values)


@pytest.mark.parametrize(
    "ftype,flags,text,binary",
    [
        (FieldType.TINY, 0, b"-128", b"\x80"),
        (FieldType.TINY, UNSIGNED, b"255", b"\xff"),
        (FieldType.SHORT, 0, b"-2", b"\xfe\xff"),
        (FieldType.SHORT, UNSIGNED, b"65535", b"\xff\xff"),
        (FieldType.YEAR, UNSIGNED | ColumnFlag.ZEROFILL, b"2155", b"\x6b\x08"),
        (FieldType.YEAR, UNSIGNED, b"0000", b"\x00\x00"),
        (FieldType.INT24, 0, b"-8388608", b"\x00\x00\x80\xff"),
        (FieldType.INT24, UNSIGNED, b"16777215", b"\xff\xff\xff\x00"),
        (FieldType.LONG, 0, b"-1", b"\xff\xff\xff\xff"),
        (FieldType.LONG, UNSIGNED | ColumnFlag.ZEROFILL, b"00042", b"\x2a\x00\x00\x00"),
        (FieldType.LONGLONG, UNSIGNED, b"18446744073709551615", b"\xff" * 8),
        (FieldType.LONGLONG, 0, b"-9223372036854775808", b"\x00" * 7 + b"\x80"),
        (FieldType.FLOAT, 0, b"1.5", struct.pack("<f", 1.5)),
        (FieldType.FLOAT, 0, b"-3.40282e38", struct.pack("<f", -3.40282e38)),
        (FieldType.DOUBLE, 0, b"0.1", struct.pack("<d", 0.1)),
        (FieldType.DOUBLE, 0, b"1.7976931348623157e308", struct.pack("<d", 1.7976931348623157e308)),
        (FieldType.DATE, 0, b"2024-02-29", b"\x04\xe8\x07\x02\x1d"),
        (FieldType.DATE, 0, b"0000-00-00", b"\x00"),
        (FieldType.DATE, 0, b"2024-00-00", b"\x04\xe8\x07\x00\x00"),
        (FieldType.DATETIME, 0, b"0000-00-00 00:00:00", b"\x00"),
        (FieldType.DATETIME, 0, b"0000-00-00 00:00:00.000000", b"\x00"),
        (FieldType.DATETIME, 0, b"2001-01-01 00:00:00", b"\x04\xd1\x07\x01\x01"),
        (FieldType.DATETIME, 0, b"2001-01-01 00:00:00.000", b"\x04\xd1\x07\x01\x01"),
        (FieldType.DATETIME, 0, b"2024-02-29 23:59:59", b"\x07\xe8\x07\x02\x1d\x17\x3b\x3b"),
        (
            FieldType.DATETIME,
            0,
            b"2024-02-29 23:59:59.123456",
            b"\x0b\xe8\x07\x02\x1d\x17\x3b\x3b" + struct.pack("<I", 123456),
        ),
        (
            FieldType.DATETIME,
            0,
            b"2024-02-29 23:59:59.5",
            b"\x0b\xe8\x07\x02\x1d\x17\x3b\x3b" + struct.pack("<I", 500000),
        ),
        (
            FieldType.TIMESTAMP,
            0,
            b"1000-01-01 00:00:00.000001",
            b"\x0b\xe8\x03\x01\x01\x00\x00\x00\x01\x00\x00\x00",
        ),
        (FieldType.TIME, 0, b"00:00:00", b"\x00"),
        (FieldType.TIME, 0, b"00:00:00.000000", b"\x00"),
        (FieldType.TIME, 0, b"-00:00:01", b"\x08\x01\x00\x00\x00\x00\x00\x00\x01"),
        (FieldType.TIME, 0, b"24:00:00", b"\x08\x00\x01\x00\x00\x00\x00\x00\x00"),
        (FieldType.TIME, 0, b"12:34:56", b"\x08\x00\x00\x00\x00\x00\x0c\x22\x38"),
        (
            FieldType.TIME,
            0,
            b"-838:59:59.999999",
            b"\x0c\x01\x22\x00\x00\x00\x16\x3b\x3b" + struct.pack("<I", 999999),
        ),
        (
            FieldType.TIME,
            0,
            b"-00:00:00.000001",
            b"\x0c\x01\x00\x00\x00\x00\x00\x00\x00\x01\x00\x00\x00",
        ),
        (FieldType.DECIMAL, 0, b"1.50", b"\x041.50"),
        (FieldType.NEWDECIMAL, 0, b"-12345678901234.123456", b"\x16-12345678901234.123456"),
        (FieldType.VAR_STRING, 0, "é😀".encode(), b"\x06" + "é😀".encode()),
        (FieldType.STRING, 0, b"", b"\x00"),
        (FieldType.VARCHAR, 0, b"v", b"\x01v"),
        (
            FieldType.BLOB,
            ColumnFlag.BLOB | ColumnFlag.BINARY,
            b"\x00\xff" * 200,
            b"\xfc\x90\x01" + b"\x00\xff" * 200,
        ),
        (FieldType.TINY_BLOB, 0, b"t", b"\x01t"),
        (FieldType.MEDIUM_BLOB, 0, b"m", b"\x01m"),
        (FieldType.LONG_BLOB, 0, b"l", b"\x01l"),
        (FieldType.JSON, 0, b'{"a": 1}', b'\x08{"a": 1}'),
        (FieldType.ENUM, 0, b"b", b"\x01b"),
        (FieldType.SET, 0, b"x,y", b"\x03x,y"),
        (FieldType.BIT, UNSIGNED, b"\n\xaa", b"\x02\n\xaa"),
        (FieldType.GEOMETRY, 0, b"\x00\x00\x00\x00\x01\x01", b"\x06\x00\x00\x00\x00\x01\x01"),
        (FieldType.NULL, 0, b"x", b"\x01x"),
    ],
)
def test_text_row_to_binary_encodes_each_type(ftype, flags, text, binary):
    assert text_row_to_binary(lenenc(text), [(ftype, flags)]) == b"\x00\x00" + binary


@pytest.mark.parametrize("null_at", [set(), {0}, {5}, {6}, {0, 6, 13}, set(range(14))])
def test_text_row_to_binary_null_bitmap_is_offset_by_two(null_at):
    columns = [(FieldType.TINY, 0)] * 14  # (14 + 7 + 2) // 8 = 2 bitmap bytes
    row = text_row(*[None if i in null_at else b"%d" % i for i in range(14)])
    bitmap = bytearray(2)
    for i in null_at:
        bitmap[(i + 2) // 8] |= 1 << ((i + 2) % 8)
    values = bytes(i for i in range(14) if i not in null_at)
    assert text_row_to_binary(row, columns) == b"\x00" + bytes(bitmap) + values


def test_text_row_to_binary_bitmap_grows_at_seven_columns():
    assert text_row_to_binary(text_row(*[None] * 6), [(FieldType.LONG, 0)] * 6) == b"\x00\xfc"
    assert text_row_to_binary(text_row(*[None] * 7), [(FieldType.LONG, 0)] * 7) == b"\x00\xfc\x01"


def test_text_row_to_binary_mixed_row_exact_bytes():
    columns = [
        (FieldType.LONGLONG, UNSIGNED),
        (FieldType.VAR_STRING, 0),
        (FieldType.DOUBLE, 0),
        (FieldType.DATETIME, 0),
        (FieldType.TIME, 0),
        (FieldType.NEWDECIMAL, 0),
    ]
    row = text_row(b"7", None, b"2.5", b"2020-01-02 03:04:05", None, b"9.99")
    assert text_row_to_binary(row, columns) == (
        b"\x00"
        + bytes((0b0100_1000,))  # columns 1 and 4 -> bits 3 and 6
        + b"\x07\x00\x00\x00\x00\x00\x00\x00"
        + struct.pack("<d", 2.5)
        + b"\x07\xe4\x07\x01\x02\x03\x04\x05"
        + b"\x049.99"
    )


def test_text_row_to_binary_copies_long_strings_with_three_and_eight_byte_lengths():
    medium = b"m" * 70_000
    big = b"b" * (1 << 24)  # 16 MiB: 0xFE length prefix
    columns = [(FieldType.MEDIUM_BLOB, 0), (FieldType.LONG_BLOB, 0)]
    out = text_row_to_binary(text_row(medium, big), columns)
    assert out == b"\x00\x00" + lenenc(medium) + lenenc(big)


# Pairs captured from MariaDB 10.11: the text row of a plain query and the binary
# row the server sends for the same query run as a prepared statement.
MARIADB_COLUMNS = [
    (1, 0),
    (1, 32),
    (8, 32),
    (13, 96),
    (5, 0),
    (246, 0),
    (10, 128),
    (12, 128),
    (12, 128),
    (12, 128),
    (11, 128),
    (11, 128),
    (16, 32),
    (3, 96),
]
MARIADB_ROWS = [
    (
        b"\x04-128\x03255\x1418446744073709551615\x042155\x161.7976931348623157e308"
        b"\x16-12345678901234.123456\n2024-02-29\x132024-02-29 23:59:59"
        b"\x1a2024-02-29 23:59:59.123456\x172024-01-01 00:00:00.000\n-838:59:59"
        b"\x11-838:59:59.999999\x02\n\xaa\x0500042",
        b"\x00\x00\x00\x80\xff\xff\xff\xff\xff\xff\xff\xff\xffk\x08\xff\xff\xff\xff\xff\xff"
        b"\xef\x7f\x16-12345678901234.123456\x04\xe8\x07\x02\x1d\x07\xe8\x07\x02\x1d\x17;;"
        b'\x0b\xe8\x07\x02\x1d\x17;;@\xe2\x01\x00\x04\xe8\x07\x01\x01\x08\x01"\x00\x00\x00'
        b'\x16;;\x0c\x01"\x00\x00\x00\x16;;?B\x0f\x00\x02\n\xaa*\x00\x00\x00',
    ),
    (
        b"\x010\x010\x010\x040000\x010\x080.000000\n0000-00-00\x130000-00-00 00:00:00"
        b"\x1a0000-00-00 00:00:00.000000\x172024-00-00 00:00:00.000\x0800:00:00"
        b"\x0f00:00:00.000000\x02\x00\x00\x0500000",
        b"\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
        b"\x00\x00\x00\x080.000000\x00\x00\x00\x04\xe8\x07\x00\x00\x00\x00\x02\x00\x00\x00"
        b"\x00\x00\x00",
    ),
    (
        b"\xfb\x011\x015\xfb\x030.1\xfb\n2024-01-01\xfb\x1a2024-01-02 03:04:05.000000\xfb"
        b"\xfb\x0f25:00:00.000001\xfb\xfb",
        b"\x00\xa4\xda\x01\x05\x00\x00\x00\x00\x00\x00\x00\x9a\x99\x99\x99\x99\x99\xb9?"
        b"\x04\xe8\x07\x01\x01\x07\xe8\x07\x01\x02\x03\x04\x05\x0c\x00\x01\x00\x00\x00\x01"
        b"\x00\x00\x01\x00\x00\x00",
    ),
    (b"\xfb" * 14, b"\x00\xfc\xff"),
]


@pytest.mark.parametrize("text,binary", MARIADB_ROWS)
def test_text_row_to_binary_matches_rows_captured_from_mariadb(text, binary):
    assert text_row_to_binary(text, MARIADB_COLUMNS) == binary


def test_make_row_converter_is_reusable_and_accepts_memoryviews():
    convert = make_row_converter([(FieldType.LONG, 0), (FieldType.VAR_STRING, 0)])
    assert convert(text_row(b"1", b"a")) == b"\x00\x00\x01\x00\x00\x00\x01a"
    assert convert(memoryview(text_row(None, b"b"))) == b"\x00\x04\x01b"
    assert convert(memoryview(b"xx" + text_row(b"2", None))[2:]) == b"\x00\x08\x02\x00\x00\x00"


@pytest.mark.parametrize(
    "row,columns",
    [
        (b"", [(FieldType.LONG, 0)]),  # missing column
        (text_row(b"1"), [(FieldType.LONG, 0)] * 2),
        (text_row(b"1", b"2"), [(FieldType.LONG, 0)]),  # extra data
        (b"\x05abc", [(FieldType.VAR_STRING, 0)]),  # string shorter than its length
        (b"\xfc\x01", [(FieldType.VAR_STRING, 0)]),  # truncated length
        (b"\xff", [(FieldType.VAR_STRING, 0)]),  # invalid length byte
        (text_row(b"abc"), [(FieldType.LONG, 0)]),
        (text_row(b"256"), [(FieldType.TINY, 0)]),  # out of range for the column
        (text_row(b"-1"), [(FieldType.LONGLONG, UNSIGNED)]),
        (text_row(b"x"), [(FieldType.DOUBLE, 0)]),
        (text_row(b"1e39"), [(FieldType.FLOAT, 0)]),
        (text_row(b"2024-1-1"), [(FieldType.DATE, 0)]),
        (text_row(b"2024-01-01T00:00:00"), [(FieldType.DATETIME, 0)]),
        (text_row(b"12:00"), [(FieldType.TIME, 0)]),
        (text_row(b"999999999999:00:00"), [(FieldType.TIME, 0)]),  # days do not fit u32
    ],
)
def test_text_row_to_binary_bad_rows_are_malformed(row, columns):
    with pytest.raises(ProxyError) as excinfo:
        text_row_to_binary(row, columns)
    assert_malformed(excinfo)


@settings(max_examples=300, deadline=None)
@given(
    columns=st.lists(
        st.tuples(st.sampled_from(FIELD_TYPES), st.sampled_from([0, int(UNSIGNED)])),
        min_size=1,
        max_size=10,
    ),
    row=st.binary(max_size=60),
)
def test_random_text_rows_raise_nothing_but_proxy_error(columns, row):
    try:
        text_row_to_binary(row, columns)
    except ProxyError as exc:
        assert exc.code == MALFORMED


@settings(max_examples=200, deadline=None)
@given(
    columns=st.lists(
        st.tuples(st.sampled_from(FIELD_TYPES), st.sampled_from([0, int(UNSIGNED)])),
        min_size=1,
        max_size=6,
    ),
    data=st.data(),
)
def test_text_rows_of_random_lenenc_values_raise_nothing_but_proxy_error(columns, data):
    values = [
        data.draw(
            st.one_of(
                st.none(),
                st.binary(max_size=30),
                st.from_regex(rb"-?\d{1,4}[-:. ]\d\d[-:. ]\d\d.*", fullmatch=True),
            )
        )
        for _ in columns
    ]
    try:
        text_row_to_binary(text_row(*values), columns)
    except ProxyError as exc:
        assert exc.code == MALFORMED
