"""The audit row digest, recomputed in Python from the row alone.

The trigger writes ``digest=`` into its marker line at insert time; reconcile
recomputes the digest of the row it reads and compares.  The SQL side
(``row_digest()`` in ``sql/capture_install.sql``, whose header is the normative
description) and this module must produce the same text for the same row.
Reconcile uses this module, not the SQL function, so that replacing the function
in the database cannot hide an altered row.

The canonical text is ``'auditor-row-v1'`` followed by ``enc(field)`` for the 21
columns of the events table in table order, where ``enc(None) = '~'`` and
``enc(text) = '<number of characters>:<text>'``; integers are decimal,
timestamps UTC ``YYYY-MM-DDTHH:MM:SS.ffffffZ``, addresses ``host()`` text, and
``objects`` is the jsonb's own text output (``objects::text``: jsonb keeps one
normal form of a value, keys ordered by length then bytes, and prints it the same
way in every session).  The digest is the lower-case hex SHA-256 of its UTF-8
bytes.  Session settings (TimeZone, DateStyle, extra_float_digits) play no part.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from auditor.model import AuditEvent

ROW_DIGEST_PREFIX = "auditor-row-v1"


def enc(value: str | None) -> str:
    """One field of the canonical text: ``~`` for NULL, else ``<chars>:<text>``.

    >>> enc("abc"), enc(""), enc(None), enc("é")
    ('3:abc', '0:', '~', '1:é')
    """
    return "~" if value is None else f"{len(value)}:{value}"


def parse_objects_json(text: str) -> Any:
    """Parse the stored ``objects`` jsonb text, keeping numbers exact.

    >>> parse_objects_json('[{"objid": 16384, "x": 1.50}]')
    [{'objid': 16384, 'x': Decimal('1.50')}]
    """
    return json.loads(text, parse_float=Decimal)


def utc_text(ts: datetime) -> str:
    """A timestamp as the digest writes it: UTC, microseconds, ``Z``.

    >>> from datetime import timedelta, timezone
    >>> utc_text(datetime(2026, 1, 2, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=2))))
    '2026-01-02T02:05:06.000007Z'
    """
    if ts.tzinfo is None:
        raise ValueError("audit timestamps are timestamptz; a naive datetime cannot be digested")
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _utc_fast(ts: datetime) -> str:
    """:func:`utc_text` without ``strftime`` (a nightly run digests a million rows).

    >>> from datetime import timedelta, timezone
    >>> t = datetime(2026, 1, 2, 4, 5, 6, 7, tzinfo=timezone(timedelta(hours=2)))
    >>> _utc_fast(t) == utc_text(t), _utc_fast(t.astimezone(UTC)) == utc_text(t)
    (True, True)
    >>> _utc_fast(t.replace(microsecond=0)) == utc_text(t.replace(microsecond=0))
    True
    """
    offset = ts.utcoffset()
    if offset is None:
        raise ValueError("audit timestamps are timestamptz; a naive datetime cannot be digested")
    if offset:
        ts = ts.astimezone(UTC)
    if ts.year < 1000:  # strftime's %Y does not pad such years: keep its text
        return utc_text(ts)
    return ts.isoformat(timespec="microseconds")[:-6] + "Z"  # "+00:00" -> "Z"


def _field(value: str | int | datetime | None) -> str:
    if value is None:
        return "~"
    if isinstance(value, str):
        return f"{len(value)}:{value}"
    if isinstance(value, datetime):
        text = _utc_fast(value)
        return f"{len(text)}:{text}"
    text = str(value)
    return f"{len(text)}:{text}"


def canonical_text(fields: Iterable[str | int | datetime | None], objects_json: str) -> str:
    """The canonical text from the 21 column values, ``objects`` given as its jsonb text.

    ``fields`` are the columns in table order with ``objects`` left out (it is
    inserted at its place, fourth, from ``objects_json`` as read with ``::text``).

    >>> canonical_text([1, "sql_drop", "DROP TABLE"] + [None] * 17, "[]")
    'auditor-row-v11:18:sql_drop10:DROP TABLE2:[]~~~~~~~~~~~~~~~~~'
    """
    values = list(fields)
    if len(values) != 20:
        raise ValueError(f"expected 20 column values besides objects, got {len(values)}")
    head = "".join(_field(v) for v in values[:3])
    tail = "".join(_field(v) for v in values[3:])
    return ROW_DIGEST_PREFIX + head + enc(objects_json) + tail


def event_fields(event: AuditEvent) -> list[str | int | datetime | None]:
    """The column values of an audit row in table order, without ``objects``."""
    return [
        event.id,
        event.event,
        event.command_tag,
        event.query,
        event.caller_context,
        event.statement_time,
        event.clock_time,
        event.session_user,
        event.current_user,
        event.login_user,
        event.database if event.database_in_row is None else event.database_in_row,
        event.client_addr,
        event.client_port,
        event.server_addr,
        event.server_port,
        event.application_name,
        event.backend_pid,
        event.session_id,
        event.vxid,
        event.xid,
    ]


def digest_text(canonical: str) -> str:
    """SHA-256 hex of the canonical text's UTF-8 bytes.

    >>> digest_text("auditor-row-v1")[:16]
    'ce64a1f5a0badd1f'
    """
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def row_digest(event: AuditEvent) -> str:
    """The digest of an audit row as read, to compare with its marker's ``digest=``."""
    return digest_text(canonical_text(event_fields(event), event.objects_json))


def fields_digest(
    fields: Sequence[str | int | datetime | None], objects_json: str, *, byte_lengths: bool = False
) -> str:
    """:func:`row_digest` from the 20 column values (table order, ``objects`` left out).

    The reader digests rows before it builds their :class:`AuditEvent`; the text
    is :func:`canonical_text`'s, built in one join.  ``byte_lengths``: the row is
    from a SQL_ASCII database, where ``char_length()`` counts bytes and the text is
    digested as the bytes it holds (read with ``surrogateescape``, see
    :mod:`auditor.encoding`).

    >>> fields_digest([1, "sql_drop", "DROP TABLE"] + [None] * 17, "[]") == digest_text(
    ...     canonical_text([1, "sql_drop", "DROP TABLE"] + [None] * 17, "[]"))
    True
    >>> ascii_row = [1, "ddl_command_end", "CREATE TABLE", "café"] + [None] * 16
    >>> fields_digest(ascii_row, "[]") == fields_digest(ascii_row, "[]", byte_lengths=True)
    False
    """
    if len(fields) != 20:
        raise ValueError(f"expected 20 column values besides objects, got {len(fields)}")
    if byte_lengths:
        return _bytes_digest(fields, objects_json)
    parts = [ROW_DIGEST_PREFIX]
    add = parts.append
    for i, v in enumerate(fields):
        if i == 3:
            add(f"{len(objects_json)}:{objects_json}")
        if type(v) is str:
            add(f"{len(v)}:{v}")
        elif v is None:
            add("~")
        else:
            add(_field(v))
    text = "".join(parts)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _bytes_digest(fields: Sequence[str | int | datetime | None], objects_json: str) -> str:
    """:func:`fields_digest` for a SQL_ASCII database: lengths and content in bytes."""
    parts = [ROW_DIGEST_PREFIX.encode()]
    add = parts.append

    def text(v: str) -> None:
        raw = v.encode("utf-8", "surrogateescape")
        add(f"{len(raw)}:".encode())
        add(raw)

    for i, v in enumerate(fields):
        if i == 3:
            text(objects_json)
        if isinstance(v, str):
            text(v)
        elif v is None:
            add(b"~")
        else:
            add(_field(v).encode())
    return hashlib.sha256(b"".join(parts)).hexdigest()
