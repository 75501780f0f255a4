"""The csvlog format: one CSV row per message, newlines kept raw inside quoted fields.

Columns (``src/backend/utils/error/csvlog.c``): 23 up to PostgreSQL 12,
``backend_type`` added in 13 (24), ``leader_pid`` and ``query_id`` in 14 (26).

Where a record ends is decided by quote parity: a newline is a record
boundary exactly when the number of ``"`` bytes since the window's start (a
boundary) is even, because quotes only appear as field delimiters or doubled
inside quoted fields.  The reader keeps a running parity so each byte is
counted about once.  When the parity is broken (a truncated row followed by
more rows, a garbage line with a stray quote) the reader resynchronises on
the next line that starts like a csvlog row and reports what it skipped.
"""

from __future__ import annotations

import csv
import io
import re

from auditor.encoding import NOT_UTF8, nul_warning
from auditor.encoding import decode_log_bytes as decode
from auditor.logs.message import build_record, split_host_port
from auditor.logs.prefilter import Finder, finder
from auditor.logs.times import LogClock
from auditor.model import LogRecord, ReadWarning, SourceLocation

#: What the first bytes of a csvlog row look like (log_time then a comma).
ROW_START = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? [A-Za-z0-9+-]+,")
_COLUMN_COUNTS = (23, 24, 26)
#: How far back (bytes) the window's cut may be from its end before the parity
#: is declared broken and the reader resynchronises.
_RESYNC_AFTER = 4 * 1024 * 1024


def _line_start(buf: bytes, pos: int, lo: int) -> int:
    i = buf.rfind(b"\n", lo, pos)
    return lo if i < 0 else i + 1


class CsvlogReader:
    """Reads csvlog records; keeps the quote parity of the current window."""

    fmt = "csvlog"

    def __init__(self, clock: LogClock | None = None) -> None:
        self.clock = clock or LogClock()
        self.finder: Finder = finder("csvlog", None)
        self.pc = 0  # parity known up to here ...
        self.par = 0  # ... : number of quotes in [base, pc) mod 2
        self.base = 0  # the last resynchronisation point (a boundary)
        self.resyncs: list[tuple[int, int]] = []  # spans skipped to resynchronise

    def begin(self, buf: bytes) -> None:
        self.pc = 0
        self.par = 0
        self.base = 0
        self.resyncs = []

    def parity(self, buf: bytes, n: int) -> int:
        """Parity of quotes in ``[base, n)``; a newline at ``n`` is a boundary iff it is 0."""
        if n >= self.pc:
            self.par ^= buf.count(b'"', self.pc, n) & 1
            self.pc = n
            return self.par
        if n < self.base:
            return 0
        return self.par ^ (buf.count(b'"', n, self.pc) & 1)

    def _reset(self, at: int) -> None:
        self.base = self.pc = at
        self.par = 0

    def boundary_before(self, buf: bytes, pos: int, lo: int) -> int:
        """Start of the record holding ``pos`` (``lo`` is a known boundary)."""
        lo = max(lo, self.base)
        ls = _line_start(buf, pos, lo)
        while ls > lo and self.parity(buf, ls - 1):
            ls = _line_start(buf, ls - 1, lo)
        return ls

    def span_at(self, buf: bytes, pos: int, lo: int, final: bool) -> tuple[int, int, bool] | None:
        """``(start, end, is_record)`` of the record holding ``pos``, or None if incomplete."""
        rs = self.boundary_before(buf, pos, lo)
        if not ROW_START.match(buf, rs):
            # A line that does not start like a row, at a boundary: garbage.
            nl = buf.find(b"\n", rs)
            if nl < 0:
                return (rs, len(buf), False) if final else None
            self._reset(nl + 1)
            return rs, nl + 1, False
        e = buf.find(b"\n", max(pos, rs))
        resync: int | None = None
        while e >= 0 and self.parity(buf, e):
            if resync is None and ROW_START.match(buf, e + 1):
                resync = e + 1
            e = buf.find(b"\n", e + 1)
        if e >= 0:
            if resync is None or self._row_ok(buf, rs, e + 1):
                return rs, e + 1, True
        elif not final and len(buf) - rs < _RESYNC_AFTER:
            return None
        if resync is not None:
            # The row never closes its quotes but a new row starts: skip the broken part.
            self._reset(resync)
            self.resyncs.append((rs, resync))
            return rs, resync, False
        if final:
            return rs, len(buf), False
        return None

    def _row_ok(self, buf: bytes, rs: int, re_: int) -> bool:
        try:
            row = next(csv.reader(io.StringIO(buf[rs:re_].decode("utf-8", "replace"), newline="")))
        except (csv.Error, StopIteration):
            return False
        return len(row) in _COLUMN_COUNTS

    def cut(self, buf: bytes, lo: int, final: bool) -> int:
        """End of the last complete record in ``buf[lo:]``."""
        n = len(buf)
        lo = max(lo, self.base)
        if n <= lo:
            return lo
        e = buf.rfind(b"\n", lo, n)
        par = self.parity(buf, e) if e >= lo else 0
        while e >= lo:
            if not par:
                return e + 1
            if n - e > _RESYNC_AFTER:
                break
            prev = buf.rfind(b"\n", lo, e)
            if prev >= lo:
                par ^= buf.count(b'"', prev, e) & 1
            e = prev
        if e < lo and n - lo <= _RESYNC_AFTER and not final:
            return lo
        # Broken parity: resynchronise on the first row start after ``lo``.
        m = ROW_START.search(buf, lo + 1)
        while m is not None and m.start() > 0 and buf[m.start() - 1] != 10:
            m = ROW_START.search(buf, m.start() + 1)
        if m is None or m.start() <= lo:
            return lo
        self.resyncs.append((lo, m.start()))
        self._reset(m.start())
        return self.cut(buf, m.start(), final)

    def parse(
        self, buf: bytes, rs: int, re_: int, loc: SourceLocation
    ) -> tuple[LogRecord | None, list[str | ReadWarning]]:
        warnings: list[str | ReadWarning] = []
        text, bad = decode(buf[rs:re_])
        if bad:
            warnings.append(NOT_UTF8)
        if (nul := nul_warning(text)) is not None:
            return None, [*warnings, nul]
        try:
            row = next(csv.reader(io.StringIO(text, newline="")))
        except (csv.Error, StopIteration) as exc:
            warnings.append(f"not a csvlog row ({exc})")
            return None, warnings
        if len(row) not in _COLUMN_COUNTS:
            warnings.append(f"csvlog row with {len(row)} columns (expected 23, 24 or 26)")
            if len(row) < 23:
                return None, warnings
        time, issue = self.clock.parse(row[0])
        if issue is not None:  # a time not placed exactly: the row is still read
            warnings.append(ReadWarning(loc, issue.message, row[0], issue.cause))
        elif time is None:
            warnings.append("csvlog row without a valid log_time")
            return None, warnings
        client, port = split_host_port(row[4])
        record = build_record(
            source=loc,
            severity=row[11],
            message=row[13],
            time=time,
            detail=row[14],
            hint=row[15],
            context=row[18],
            statement=row[19] or None,
            session_id=row[5],
            line_num=_int(row[6]),
            vxid=row[9],
            xid=_int(row[10]),
            pid=_int(row[3]),
            user=row[1],
            database=row[2],
            application=row[22],
            client=client,
            client_port=port,
            sqlstate=row[12],
            backend_type=row[23] if len(row) > 23 else None,
            command_tag=row[7],
        )
        return record, warnings

    def time_at(self, buf: bytes, rs: int) -> tuple[str | None, bool]:
        m = ROW_START.match(buf, rs)
        if m is None:
            return None, False
        return buf[rs : m.end() - 1].decode("ascii", "replace"), False


def _int(text: str | None) -> int | None:
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        return None
