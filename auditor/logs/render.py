"""Rows of ``auditor scan`` output: one dict per record, secrets masked.

The CLI prints these rows as a table, CSV or one JSON array; keeping the
row shape here makes the three formats say the same thing.  The table is for
a terminal: fixed-width columns, a cut value ends in ``…`` (never a silent
cut; CSV and JSON hold every value whole), and every control character of
the log's text is shown as ``<U+XXXX>`` (see :mod:`auditor.terminal`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any

from rich.cells import cell_len, set_cell_size

from auditor.logs.reader import SourceStats
from auditor.model import LogRecord, MessageKind, SourceLocation
from auditor.redact import mask as _mask_all
from auditor.terminal import json_text, lines, one_line


def mask(text: str) -> str:
    """:func:`auditor.redact.mask`, skipped when no rule can apply (most statements).

    >>> mask("ALTER ROLE a PASSWORD 'x'"), mask("SELECT 1")
    ("ALTER ROLE a PASSWORD '*****'", 'SELECT 1')
    """
    if "://" in text or "assword" in text or "ASSWORD" in text or "password" in text.lower():
        return _mask_all(text)
    return text


COLUMNS = (
    "time", "kind", "severity", "session_id", "vxid", "xid", "pid", "user", "database",
    "application", "client", "protocol", "prepared_name", "is_ddl", "error", "sqlstate",
    "failed_statement", "file", "line", "offset", "statement", "message",
)  # fmt: skip


def error_index(records: Iterable[LogRecord]) -> dict[SourceLocation, LogRecord]:
    """Statement location -> the ERROR record linked to it."""
    return {r.failed_statement: r for r in records if r.failed_statement is not None}


def record_row(rec: LogRecord, error: LogRecord | None = None) -> dict[str, Any]:
    """The printable fields of a record; ``error`` is the ERROR linked to a statement."""
    err = None
    if rec.kind == MessageKind.ERROR:
        err = f"{rec.severity} {rec.sqlstate or ''}".strip()
    elif error is not None:
        err = f"{error.severity} {error.sqlstate or ''}".strip() + f": {mask(error.message)}"
    statement = rec.statement
    return {
        "time": rec.time.isoformat() if rec.time else None,
        "kind": rec.kind.value,
        "severity": rec.severity,
        "session_id": rec.session_id,
        "vxid": rec.vxid,
        "xid": rec.xid,
        "pid": rec.pid,
        "user": rec.user,
        "database": rec.database,
        "application": rec.application,
        "client": rec.client if rec.client_port is None else f"{rec.client}:{rec.client_port}",
        "protocol": rec.protocol.value if rec.protocol else None,
        "prepared_name": rec.prepared_name,
        "is_ddl": rec.is_ddl,
        "error": err,
        "sqlstate": rec.sqlstate,
        "failed_statement": str(rec.failed_statement) if rec.failed_statement else None,
        "file": rec.source.file,
        "line": rec.source.line,
        "offset": rec.source.offset,
        "statement": mask(statement) if statement is not None else None,
        "message": mask(rec.message),
    }


def source_summary(stats: SourceStats, parsed: int | None = None, shown: int | None = None) -> str:
    """One line per source for standard error.

    ``stats.records`` counts the log's entries (messages; prefixed lines for
    stderr, PostgreSQL's ``%l`` unit); ``parsed`` the records actually read from
    them (only those that can hold DDL or matter to an audit, unless ``--all``),
    ``shown`` the rows printed after the filters.
    """
    parts = [f"format {stats.format}"]
    if stats.prefix is not None:
        how = " (inferred from the file: check it, or give --log-line-prefix)"
        texts = " and ".join(repr(p) for p in stats.prefixes) if len(stats.prefixes) > 1 else ""
        parts.append(
            f"log_line_prefix {texts or repr(stats.prefix)}"
            + (how if stats.prefix_how == "inferred" else "")
        )
    if stats.compression:
        parts.append(stats.compression)
    parts.append(f"{stats.records} log entries")
    if parsed is not None:
        parts.append(f"{parsed} records read")
    parts.append(f"{stats.ddl_statements} DDL statements")
    if shown is not None:
        parts.append(f"{shown} shown")
    parts.append(f"{stats.warnings} warnings")
    if stats.first_time and stats.last_time:
        parts.append(f"{stats.first_time.isoformat()} .. {stats.last_time.isoformat()}")
    if stats.damaged:
        parts.append("compressed data damaged: the rest of the file is not read")
    elif stats.truncated:
        parts.append("last record incomplete")
    if stats.foreign_lines:
        parts.append(f"{stats.foreign_lines} lines of other programs skipped")
    return f"{stats.source}: " + ", ".join(parts)


# -- what scan shows ---------------------------------------------------------------------


@dataclass(frozen=True)
class RecordFilter:
    """``scan``'s ``--since/--until/--user/--database/--application``: AND of all given.

    A record without a time never passes a time bound (it cannot be placed).
    """

    since: datetime | None = None
    until: datetime | None = None
    users: frozenset[str] = frozenset()
    databases: frozenset[str] = frozenset()
    applications: frozenset[str] = frozenset()

    def __bool__(self) -> bool:
        return bool(self.since or self.until or self.users or self.databases or self.applications)

    def matches(self, rec: LogRecord) -> bool:
        if self.since is not None or self.until is not None:
            t = rec.time
            if t is None:
                return False
            if t.tzinfo is None:  # a reader that could not place it: UTC, as reconcile reads it
                t = t.replace(tzinfo=UTC)
            if self.since is not None and t < self.since:
                return False
            if self.until is not None and t >= self.until:
                return False
        if self.users and rec.user not in self.users:
            return False
        if self.databases and rec.database not in self.databases:
            return False
        return not self.applications or rec.application in self.applications


def one_row_per_statement(rec: LogRecord) -> bool:
    """Whether a record is a row of ``scan`` without ``--all``: a statement line, or
    an error that carries the text of a statement no line logged (a syntax error).
    Markers, linked errors and server messages are shown with ``--all``; so are pgAudit
    lines of a statement the log shows anyway, while pgAudit's DDL inside functions
    and DO (which no statement line shows) are rows."""
    if rec.kind in (MessageKind.STATEMENT, MessageKind.EXECUTE):
        return True
    if rec.kind == MessageKind.AUDIT:
        return bool(rec.is_ddl) and rec.pgaudit is not None and rec.pgaudit.nested is not False
    return rec.kind == MessageKind.ERROR and rec.failed_statement is None and bool(rec.statement)


def fit(text: str, width: int, *, keep_end: bool = False) -> str:
    """``text`` in exactly ``width`` terminal cells: padded, or cut with ``…``.

    >>> fit("postgres", 10), fit("application_name", 8), fit("x.log:12345", 8, keep_end=True)
    ('postgres  ', 'applica…', '…g:12345')
    """
    if cell_len(text) <= width:
        return set_cell_size(text, width)
    if keep_end:
        tail = text
        while cell_len(tail) > width - 1:
            tail = tail[1:]
        return set_cell_size("…" + tail, width)
    return set_cell_size(text, width - 1) + "…"


def table_time(t: datetime | None, resolution_us: int = 1000) -> str:
    """A record's time as the log printed it: to its precision, with its UTC offset.

    >>> from datetime import timezone, timedelta
    >>> table_time(datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=timezone.utc))
    '2026-01-02 03:04:05.678+00'
    >>> ist = timezone(timedelta(hours=5, minutes=30))
    >>> table_time(datetime(2026, 1, 2, 3, 4, 5, tzinfo=ist), 10**6)
    '2026-01-02 03:04:05+05:30'
    """
    if t is None:
        return ""
    text = t.strftime("%Y-%m-%d %H:%M:%S")
    if resolution_us < 1000:
        text += f".{t.microsecond:06d}"
    elif resolution_us < 1_000_000:
        text += f".{t.microsecond // 1000:03d}"
    off = t.utcoffset()
    if off is not None:
        minutes = int(off.total_seconds()) // 60
        sign = "-" if minutes < 0 else "+"
        h, m = divmod(abs(minutes), 60)
        text += f"{sign}{h:02d}" + (f":{m:02d}" if m else "")
    return text


#: The table's columns: (header, width); the statement or message comes last, whole.
TABLE = (
    ("TIME", 26), ("FILE:LINE", 24), ("SESSION_ID", 14), ("VXID", 9), ("USER", 12),
    ("DATABASE", 12), ("APPLICATION", 14), ("ERROR", 11),
)  # fmt: skip


def table_header() -> str:
    return "  ".join([*(fit(name, width) for name, width in TABLE), "STATEMENT / MESSAGE"])


def table_line(rec: LogRecord, error: LogRecord | None = None) -> str:
    """One record as one terminal line (its statement or message last, on one line)."""
    if rec.kind == MessageKind.ERROR:
        state = f"{rec.severity} {rec.sqlstate or ''}".strip()
    elif error is not None:
        state = f"{error.severity} {error.sqlstate or ''}".strip()
    elif rec.kind in (MessageKind.STATEMENT, MessageKind.EXECUTE):
        state = "-"
    else:
        state = rec.kind.value
    where = f"{PurePath(rec.source.file).name}:{rec.source.line}"
    values = (
        table_time(rec.time, rec.time_resolution_us),
        where,
        rec.session_id,
        rec.vxid,
        rec.user,
        rec.database,
        rec.application,
        state,
    )
    cells = [
        fit(one_line(v or ""), width, keep_end=name == "FILE:LINE")
        for (name, width), v in zip(TABLE, values, strict=True)
    ]
    body = rec.statement if rec.statement is not None else rec.message
    return "  ".join([*cells, one_line(mask(body))]).rstrip()


def csv_cells(row: dict[str, Any], fields: Sequence[str]) -> dict[str, str]:
    """A row for ``--format csv``: formula-like cells defused (as in findings.csv),
    control characters shown as tags (newlines and tabs kept: CSV quotes them)."""
    from auditor.report import csv_safe

    out = {}
    for name in fields:
        value = row.get(name)
        if value is None:
            out[name] = ""
        else:
            out[name] = csv_safe(lines(str(value)))
    return out


def json_row(row: dict[str, Any]) -> str:
    """A row for ``--format json``: exact values, unsafe characters as ``\\u`` escapes."""
    import json

    import orjson

    try:
        return json_text(orjson.dumps(row).decode())
    except TypeError:  # lone surrogates (bytes that were not UTF-8): json escapes them
        return json_text(json.dumps(row, ensure_ascii=False))


__all__ = [
    "COLUMNS",
    "RecordFilter",
    "csv_cells",
    "fit",
    "json_row",
    "one_row_per_statement",
    "record_row",
    "source_summary",
    "table_header",
    "table_line",
    "table_time",
]
