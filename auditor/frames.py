"""Scan records and findings as pandas DataFrames, for incident responders in notebooks.

Three functions, each a thin layer over what the commands produce:

* :func:`scan_frame` reads logs as ``auditor scan`` does (same arguments: files,
  directories, globs, compressed files, ``sql:``; every record with
  ``all_records``) and returns one row per record;
* :func:`records_frame` turns :class:`~auditor.model.LogRecord` objects you
  already have into the same frame;
* :func:`findings_frame` reads a ``findings.json`` (or takes a
  :class:`~auditor.model.FindingsDocument`) and returns one row per finding.

Times are UTC ``datetime64`` (records whose time could not be placed are
``NaT``), severities an ordered categorical (``info`` < ... < ``critical``, so
``df[df.severity >= "high"]`` works), statements masked as in every other output
(``PASSWORD '...'``).  pandas is an optional dependency: ``pip install
'auditor[frames]'``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from auditor.errors import AuditorError
from auditor.model import Finding, FindingsDocument, LogRecord, Severity

#: Columns of :func:`records_frame`, in order.
RECORD_COLUMNS = (
    "time", "file", "line", "offset", "kind", "severity", "session_id", "vxid", "xid", "pid",
    "user", "database", "application", "client", "sqlstate", "is_ddl", "failed_statement",
    "statement", "message",
)  # fmt: skip
#: Columns of :func:`findings_frame`, in order (findings.json's finding fields).
FINDING_COLUMNS = (
    "id", "class", "severity", "time", "database", "user", "application", "client",
    "session_id", "vxid", "command_tags", "statement", "audit_event_ids", "log_file",
    "log_line", "explanation", "allowed",
)  # fmt: skip


def _frame(pd: Any, rows: list[dict[str, Any]], columns: Sequence[str]) -> Any:
    """The DataFrame of ``rows``, text in Python-backed strings: a log's bytes that are not
    UTF-8 are kept as surrogates (``decode_log_bytes``), which pandas' Arrow-backed
    strings (its default where pyarrow is installed) refuse."""
    try:
        context = pd.option_context("mode.string_storage", "python")
    except (KeyError, ValueError):  # pragma: no cover - a pandas without the option
        return pd.DataFrame(rows, columns=list(columns))
    with context:
        return pd.DataFrame(rows, columns=list(columns))


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise AuditorError(
            "auditor.frames needs pandas: pip install 'auditor[frames]' (or pandas)"
        ) from None
    return pandas


def _severity_type(pd: Any) -> Any:
    return pd.CategoricalDtype([s.value for s in Severity], ordered=True)


def records_frame(records: Iterable[LogRecord]) -> Any:
    """One row per log record (see :data:`RECORD_COLUMNS`)."""
    from auditor.redact import mask

    pd = _pandas()
    rows = [
        {
            "time": r.time,
            "file": r.source.file,
            "line": r.source.line,
            "offset": r.source.offset,
            "kind": r.kind.value,
            "severity": r.severity,
            "session_id": r.session_id,
            "vxid": r.vxid,
            "xid": r.xid,
            "pid": r.pid,
            "user": r.user,
            "database": r.database,
            "application": r.application,
            "client": r.client,
            "sqlstate": r.sqlstate,
            "is_ddl": r.is_ddl,
            "failed_statement": str(r.failed_statement) if r.failed_statement else None,
            "statement": mask(r.statement) if r.statement is not None else None,
            "message": mask(r.message),
        }
        for r in records
    ]
    frame = _frame(pd, rows, RECORD_COLUMNS)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    for name in ("line", "offset", "xid", "pid"):
        frame[name] = frame[name].astype("Int64")
    frame["is_ddl"] = frame["is_ddl"].astype("boolean")
    return frame


def scan_frame(
    logs: str | Sequence[str],
    *,
    all_records: bool = False,
    log_format: str = "auto",
    log_line_prefix: str | None = None,
    log_timezone: str | None = None,
    dsn: str | None = None,
    warnings: list[str] | None = None,
) -> Any:
    """Read logs as ``auditor scan`` does; one row per record.

    Without ``all_records`` only the records that matter to an audit are kept
    (DDL and watched settings, their errors, markers, reloads, starts and stops).
    The warnings (``file:line: ...``) are appended to ``warnings`` when a list is
    given: a frame alone does not show what could not be read.
    """
    from auditor.logs.scan import scan

    specs = [logs] if isinstance(logs, str) else list(logs)
    stream = scan(
        specs,
        dsn=dsn,
        fmt=log_format,
        prefix=log_line_prefix,
        all_records=all_records,
        log_timezone=log_timezone,
    )
    records: list[LogRecord] = []
    for item in stream:
        if isinstance(item, LogRecord):
            records.append(item)
        elif warnings is not None:
            warnings.append(str(item))
    if warnings is not None:
        warnings.extend(f"{s.name}: not read: {s.reason}" for s in stream.skipped)
    return records_frame(records)


def findings_frame(findings: str | Path | FindingsDocument | Iterable[Finding]) -> Any:
    """One row per finding of a ``findings.json`` (a path), a document or findings."""
    from auditor.report import load_findings_json

    pd = _pandas()
    if isinstance(findings, (str, Path)):
        items: Iterable[Finding] = load_findings_json(Path(findings)).findings
    elif isinstance(findings, FindingsDocument):
        items = findings.findings
    else:
        items = findings
    rows = [
        {
            "id": f.id,
            "class": f.cls.value,
            "severity": f.severity.value,
            "time": f.time,
            "database": f.database,
            "user": f.user,
            "application": f.application,
            "client": f.client,
            "session_id": f.session_id,
            "vxid": f.vxid,
            "command_tags": list(f.command_tags),
            "statement": f.statement,
            "audit_event_ids": list(f.audit_event_ids),
            "log_file": f.log_file,
            "log_line": f.log_line,
            "explanation": f.explanation,
            "allowed": f.allowed,
        }
        for f in items
    ]
    frame = _frame(pd, rows, FINDING_COLUMNS)
    frame["time"] = pd.to_datetime(frame["time"], utc=True)
    frame["severity"] = frame["severity"].astype(_severity_type(pd))
    frame["log_line"] = frame["log_line"].astype("Int64")
    frame["allowed"] = frame["allowed"].astype("boolean")
    return frame


__all__ = ["FINDING_COLUMNS", "RECORD_COLUMNS", "findings_frame", "records_frame", "scan_frame"]
