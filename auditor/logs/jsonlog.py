"""The jsonlog format (PostgreSQL 15+): one JSON object per line.

Keys follow ``src/backend/utils/error/jsonlog.c``; keys whose value is null
or empty are left out (a LOG line has no ``state_code``), numbers are not
quoted.  Newlines inside values are escaped, so a line is always a record.
"""

from __future__ import annotations

import json
from typing import Any

import orjson

from auditor.encoding import NOT_UTF8, nul_warning
from auditor.logs.message import build_record
from auditor.logs.prefilter import Finder, finder
from auditor.logs.times import LogClock
from auditor.model import LogRecord, ReadWarning, SourceLocation


def _line_start(buf: bytes, pos: int, lo: int) -> int:
    i = buf.rfind(b"\n", lo, pos)
    return lo if i < 0 else i + 1


class JsonlogReader:
    """Reads jsonlog records (stateless: every line is one record)."""

    fmt = "jsonlog"

    def __init__(self, clock: LogClock | None = None) -> None:
        self.clock = clock or LogClock()
        self.finder: Finder = finder("jsonlog", None)

    def begin(self, buf: bytes) -> None:
        """A new window starts (nothing to reset)."""

    def span_at(self, buf: bytes, pos: int, lo: int, final: bool) -> tuple[int, int, bool] | None:
        ls = _line_start(buf, pos, lo)
        nl = buf.find(b"\n", ls)
        if nl < 0:
            return (ls, len(buf), True) if final else None
        return ls, nl + 1, True

    def cut(self, buf: bytes, lo: int, final: bool) -> int:
        n = len(buf)
        if final and n > lo and buf[n - 1] == 10:
            return n
        i = buf.rfind(b"\n", lo, n)
        return lo if i < 0 else i + 1

    def parse(
        self, buf: bytes, rs: int, re_: int, loc: SourceLocation
    ) -> tuple[LogRecord | None, list[str | ReadWarning]]:
        warnings: list[str | ReadWarning] = []
        line = buf[rs:re_].rstrip(b"\r\n")
        if not line.strip():
            return None, ["empty line"]
        obj: Any
        try:
            obj = orjson.loads(line)
        except orjson.JSONDecodeError:
            try:  # orjson refuses bytes that are not UTF-8: keep them (surrogates), retry
                obj = json.loads(line.decode("utf-8", "surrogateescape"))
                warnings.append(NOT_UTF8)
            except ValueError as exc:
                return None, [f"not a jsonlog line ({exc.__class__.__name__}: {exc})"]
        if not isinstance(obj, dict) or "error_severity" not in obj:
            return None, ["not a jsonlog record (no error_severity)"]
        if b"\\u0000" in line:  # a NUL escape: no server writes one (nor a raw NUL)
            for value in obj.values():
                if isinstance(value, str) and (nul := nul_warning(value)) is not None:
                    return None, [*warnings, nul]
        stamp = str(obj.get("timestamp", ""))
        time, issue = self.clock.parse(stamp)
        if issue is not None:
            warnings.append(ReadWarning(loc, issue.message, stamp, issue.cause))
        elif time is None:
            warnings.append("jsonlog record without a valid timestamp")
        host = obj.get("remote_host")
        port = obj.get("remote_port")
        record = build_record(
            source=loc,
            severity=str(obj["error_severity"]),
            message=_str(obj.get("message")) or "",
            time=time,
            detail=_str(obj.get("detail")),
            hint=_str(obj.get("hint")),
            context=_str(obj.get("context")),
            statement=_str(obj.get("statement")),
            session_id=_str(obj.get("session_id")),
            line_num=_intv(obj.get("line_num")),
            vxid=_str(obj.get("vxid")),
            xid=_intv(obj.get("txid")),
            pid=_intv(obj.get("pid")),
            user=_str(obj.get("user")),
            database=_str(obj.get("dbname")),
            application=_str(obj.get("application_name")),
            client=_str(host),
            client_port=_intv(port),
            sqlstate=_str(obj.get("state_code")),
            backend_type=_str(obj.get("backend_type")),
            command_tag=_str(obj.get("ps")),
        )
        return record, warnings

    def time_at(self, buf: bytes, rs: int) -> tuple[str | None, bool]:
        start = buf.find(b'"timestamp":"', rs, rs + 64)
        if start < 0:
            return None, False
        start += len(b'"timestamp":"')
        end = buf.find(b'"', start, start + 64)
        if end < 0:
            return None, False
        return buf[start:end].decode("ascii", "replace"), False


def _str(value: object) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _intv(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.lstrip("-").isdigit():
        return int(value)
    return None
