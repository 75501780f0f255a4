"""Rows of ``auditor scan`` output: one dict per record, secrets masked.

The CLI prints these rows as a table, CSV or one JSON array; keeping the
row shape here makes the three formats say the same thing.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from auditor.logs.reader import SourceStats
from auditor.model import LogRecord, MessageKind, SourceLocation
from auditor.redact import mask as _mask_all


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


def source_summary(stats: SourceStats) -> str:
    """One line per source for standard error."""
    parts = [f"format {stats.format}"]
    if stats.prefix is not None:
        parts.append(f"log_line_prefix {stats.prefix!r}")
    if stats.compression:
        parts.append(stats.compression)
    parts.append(f"{stats.records} records")
    parts.append(f"{stats.ddl_statements} DDL statements")
    parts.append(f"{stats.warnings} warnings")
    if stats.first_time and stats.last_time:
        parts.append(f"{stats.first_time.isoformat()} .. {stats.last_time.isoformat()}")
    if stats.truncated:
        parts.append("last record incomplete")
    return f"{stats.source}: " + ", ".join(parts)
