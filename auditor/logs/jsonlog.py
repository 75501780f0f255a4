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
from auditor.logs.message import build_record, split_host_port
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


class CnpgReader(JsonlogReader):
    """CloudNativePG's JSON lines (``kubectl logs`` of an instance pod).

    The instance manager writes each csvlog record of the server as ``{"level":
    "info", "ts": ..., "logger": "postgres", "msg": "record", "record": {...}}``
    where ``record`` holds the csvlog columns by name (``log_time``, ``user_name``,
    ``process_id`` as a string, ...).  Lines of the manager's own loggers
    (``instance-manager``, ``wal-archive``, ...) are not server records: they are
    skipped and not counted as log entries.
    """

    fmt = "cnpg"

    def entries(self, buf: bytes, lo: int, hi: int) -> int:
        """Log entries in ``buf[lo:hi]``: the server records only."""
        return buf.count(b'"record":{', lo, hi)

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
            try:  # bytes that are not UTF-8: kept (surrogates), as the jsonlog reader does
                obj = json.loads(line.decode("utf-8", "surrogateescape"))
                warnings.append(NOT_UTF8)
            except ValueError as exc:
                return None, [f"not a CloudNativePG line ({exc.__class__.__name__}: {exc})"]
        if not isinstance(obj, dict):
            return None, ["not a CloudNativePG line (not a JSON object)"]
        rec = obj.get("record")
        if not isinstance(rec, dict):
            return None, warnings  # the instance manager's own lines
        if "error_severity" not in rec:
            return None, [*warnings, "CloudNativePG record without error_severity"]
        if b"\\u0000" in line:  # a NUL escape: no server writes one
            for value in rec.values():
                if isinstance(value, str) and (nul := nul_warning(value)) is not None:
                    return None, [*warnings, nul]
        stamp = str(rec.get("log_time", ""))
        time, issue = self.clock.parse(stamp)
        if issue is not None:
            warnings.append(ReadWarning(loc, issue.message, stamp, issue.cause))
        elif time is None:
            warnings.append("CloudNativePG record without a valid log_time")
        client, port = split_host_port(_str(rec.get("connection_from")))
        record = build_record(
            source=loc,
            severity=str(rec["error_severity"]),
            message=_str(rec.get("message")) or "",
            time=time,
            detail=_str(rec.get("detail")),
            hint=_str(rec.get("hint")),
            context=_str(rec.get("context")),
            statement=_str(rec.get("query")),
            session_id=_str(rec.get("session_id")),
            line_num=_intv(rec.get("session_line_num")),
            vxid=_str(rec.get("virtual_transaction_id")),
            xid=_intv(rec.get("transaction_id")),
            pid=_intv(rec.get("process_id")),
            user=_str(rec.get("user_name")),
            database=_str(rec.get("database_name")),
            application=_str(rec.get("application_name")),
            client=client,
            client_port=port,
            sqlstate=_str(rec.get("sql_state_code")),
            backend_type=_str(rec.get("backend_type")),
            command_tag=_str(rec.get("command_tag")),
        )
        return record, warnings

    def time_at(self, buf: bytes, rs: int) -> tuple[str | None, bool]:
        end = buf.find(b"\n", rs)
        start = buf.find(b'"log_time":"', rs, end if end >= 0 else len(buf))
        if start < 0:
            return None, False
        start += len(b'"log_time":"')
        stop = buf.find(b'"', start, start + 64)
        if stop < 0:
            return None, False
        return buf[start:stop].decode("ascii", "replace"), False
