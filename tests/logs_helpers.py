"""Shared helpers of the log-reader tests: fixtures on disk and reading them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from auditor.logs.scan import scan
from auditor.model import LogRecord, ReadWarning

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
FIXTURE_NAMES = sorted(
    p.name for p in FIXTURES.iterdir() if p.is_dir() and (p / "sent.json").exists()
)
EXT = {"stderr": "log", "csvlog": "csv", "jsonlog": "json"}

#: Fields that every format carries, compared as they are.
COMMON_FIELDS = (
    "severity", "kind", "message", "statement", "detail", "hint", "context",
    "protocol", "prepared_name", "portal", "parameters", "duration_ms", "is_ddl",
    "is_relevant", "prepare_text",
)  # fmt: skip
#: Fields stderr has only when its prefix prints them: (field, escapes that print it).
PREFIX_FIELDS = (
    ("pid", ("%p",)), ("session_id", ("%c",)), ("vxid", ("%v",)), ("xid", ("%x",)), ("user", ("%u",)),
    ("database", ("%d",)), ("application", ("%a",)), ("client", ("%h", "%r")),
    ("client_port", ("%r",)), ("sqlstate", ("%e",)),
)  # fmt: skip


def meta(name: str) -> dict[str, Any]:
    return json.loads((FIXTURES / name / "sent.json").read_text())


def files(name: str, fmt: str) -> list[str]:
    return sorted(str(p) for p in (FIXTURES / name).glob(f"postgresql*.{EXT[fmt]}"))


def read(
    specs: list[str], *, all_records: bool = False, jobs: int = 1, **kw: Any
) -> tuple[list[LogRecord], list[ReadWarning], Any]:
    stream = scan(specs, all_records=all_records, jobs=jobs, **kw)
    items = list(stream)
    records = [i for i in items if isinstance(i, LogRecord)]
    warnings = [i for i in items if isinstance(i, ReadWarning)]
    return records, warnings, stream.sources


def read_fixture(
    name: str, fmt: str, *, all_records: bool = False, prefix: bool = True, **kw: Any
) -> tuple[list[LogRecord], list[ReadWarning], Any]:
    m = meta(name)
    p = m["log_line_prefix"] if (prefix and fmt == "stderr") else None
    kw.setdefault("log_timezone", m["settings"].get("log_timezone"))
    return read(files(name, fmt), all_records=all_records, prefix=p, fmt=fmt, **kw)


def identity(rec: LogRecord) -> tuple[Any, ...]:
    """A record without where it was read from (to compare sources of the same log)."""
    return (
        rec.time, rec.severity, rec.kind, rec.message, rec.statement, rec.session_id,
        rec.vxid, rec.pid, rec.user, rec.database, rec.application, rec.detail,
        rec.parameters, rec.is_ddl, rec.failed_statement is not None,
    )  # fmt: skip


def printed(prefix: str, escapes: tuple[str, ...], session: bool) -> bool:
    """Whether a stderr line of a session (or not) shows one of ``escapes``."""
    for esc in escapes:
        at = prefix.find(esc)
        if at < 0:
            continue
        q = prefix.find("%q")
        if session or q < 0 or at < q:
            return True
    return False
