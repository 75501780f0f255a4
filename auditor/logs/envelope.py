"""Logs that real deployments wrap around PostgreSQL's own text: syslog, Heroku, Cloud SQL.

PostgreSQL writes the same stderr-style text (``<log_line_prefix><SEVERITY>:  <text>``)
to every destination, but three common envelopes cut it up:

* **syslog** (``log_destination = 'syslog'``, written by rsyslog or syslog-ng):
  each line is ``<time> <host> <ident>[<pid>]: [<seq>-<part>] <text>``.
  ``write_syslog()`` in ``src/backend/utils/error/elog.c`` numbers every message
  (``syslog_sequence_numbers``) and, with ``syslog_split_messages``, sends each
  physical line of it (the ``DETAIL:``/``STATEMENT:`` lines, each TAB
  continuation line) and each 900-byte piece of a longer line as a part of its
  own; rsyslog writes control characters as ``#ooo`` (a TAB is ``#011``).  Parts
  of one message may be interleaved with other processes' lines;
* **Heroku logplex** (``heroku logs``, log drains): ``<ISO time> app[postgres.<pid>]:
  [<DB colour>] [<seq>-<part>] <text>``, the same numbering;
* **Google Cloud SQL** exported from Cloud Logging: one JSON object per line whose
  ``textPayload`` is one line of the server's text (its prefix has no time: the
  entry's ``timestamp`` is it).

:func:`decode_line` turns one physical line of any of them into a :class:`Piece`:
whose output it is, its numbering and the PostgreSQL text.  :class:`Assembler`
puts the pieces of each message back together, in file order, as the stderr
reader's input; :func:`read_envelope` is the reader (records, warnings and
statistics, like :class:`~auditor.logs.reader.SourceRead` for the other formats).
CloudNativePG's JSON lines are complete csvlog records and are read by
:class:`~auditor.logs.jsonlog.CnpgReader` instead.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any

import orjson

from auditor.logs.sources import Damaged
from auditor.model import LogRecord, MessageKind, ReadWarning, SourceLocation

if TYPE_CHECKING:
    from auditor.logs.detect import Decision
    from auditor.logs.prefix import CompiledPrefix
    from auditor.logs.reader import SourceRead

#: The formats read through :class:`Assembler` (their inner text is stderr-style).
ENVELOPES = ("syslog", "logplex", "cloudsql")
#: ``PG_SYSLOG_LIMIT`` in elog.c: the longest part ``write_syslog()`` sends.
SYSLOG_LIMIT = 900

_MONTHS = {
    m.encode(): i + 1
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
    )
}
_ISO = rb"(?P<iso>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:?\d\d))"
#: rsyslog's and syslog-ng's default file format (RFC 3164 time: no year, no zone).
BSD_HEADER = re.compile(
    rb"(?P<mon>Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) (?P<day>[ \d]\d) "
    rb"(?P<hms>\d\d:\d\d:\d\d) (?P<host>\S+) (?P<ident>[^\s\[\]:]+)\[(?P<pid>\d+)\]: ?"
)
#: rsyslog's RSYSLOG_FileFormat and syslog-ng's ts-format(iso): an RFC 3339 time.
ISO_HEADER = re.compile(_ISO + rb" (?P<host>\S+) (?P<ident>[^\s\[\]:]+)\[(?P<pid>\d+)\]: ?")
#: Heroku: ``app[postgres.4882]:`` (heroku logs) or ``<host> app[postgres.4882]`` (drains).
LOGPLEX_HEADER = re.compile(
    _ISO + rb" (?:(?P<host>\S+) )?(?:app|heroku)\[(?P<ident>[\w-]+)\.(?P<pid>\d+)\]:? "
    rb"(?:\[(?P<addon>[A-Z0-9_]+)\] )?"
)
_SEQ = re.compile(rb"\[(?P<seq>\d+)(?:-(?P<part>\d+))?\] ?")
#: rsyslog's escape of a control character (``#011`` for TAB, ``#015`` for CR).
_ESCAPE = re.compile(rb"#(0[0-3][0-7])")


@dataclass(frozen=True, slots=True)
class Piece:
    """One physical line of an envelope, decoded.

    ``stream`` says whose output it is (host and pid), ``seq``/``part`` the
    numbering ``write_syslog()`` gave it (None when the log has none), ``text`` the
    PostgreSQL text it carries and ``time`` the envelope's own time (``year_known``
    False for a syslog time, which has no year).
    """

    stream: tuple[str, int | None]
    seq: int | None
    part: int | None
    text: bytes
    time: datetime | None
    time_text: str
    ident: str = ""
    year_known: bool = True


def unescape(text: bytes) -> bytes:
    r"""rsyslog's ``#ooo`` escapes of control characters, except newlines (``#012``),
    which :class:`Assembler` splits only where PostgreSQL itself put one.

    >>> unescape(b"#011FROM t #015x #012y")
    b'\tFROM t \rx #012y'
    """
    if b"#0" not in text:
        return text

    def one(m: re.Match[bytes]) -> bytes:
        value = int(m.group(1), 8)
        return m.group(0) if value == 10 else bytes([value])

    return _ESCAPE.sub(one, text)


def _iso_time(raw: bytes) -> datetime | None:
    """An RFC 3339 time (nanoseconds are cut to microseconds).

    >>> _iso_time(b"2020-05-02T13:00:20.382318123Z").isoformat()
    '2020-05-02T13:00:20.382318+00:00'
    """
    text = raw.decode("ascii", "replace").replace("Z", "+00:00")
    if "." in text:  # Cloud Logging prints nanoseconds; Python takes microseconds
        head, _, rest = text.partition(".")
        digits = rest[: len(rest) - len(rest.lstrip("0123456789"))]
        zone = rest[len(digits) :]
        text = f"{head}.{(digits + '000000')[:6]}{zone}"
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        return None
    return value if value.tzinfo is not None else None


def bsd_time(m: re.Match[bytes], year: int) -> datetime | None:
    """The wall time of a syslog header in ``year`` (naive: no zone is written)."""
    try:
        h, mi, s = (int(x) for x in m["hms"].split(b":"))
        return datetime(year, _MONTHS[m["mon"]], int(m["day"]), h, mi, s)
    except (ValueError, KeyError):
        return None


def _numbering(text: bytes) -> tuple[int | None, int | None, bytes]:
    m = _SEQ.match(text)
    if m is None:
        return None, None, text
    part = int(m["part"]) if m["part"] is not None else None
    return int(m["seq"]), part, text[m.end() :]


def decode_line(fmt: str, line: bytes, year: int) -> Piece | None:
    """One physical line of an envelope (without its newline); None: not that envelope.

    ``year`` places a syslog time (which has none); the piece says so.

    >>> p = decode_line("syslog", b"Feb 11 13:15:40 pc postgres[10819]: [7-2] #011FROM t", 2026)
    >>> p.stream, p.seq, p.part, p.text, p.time.isoformat()
    (('pc', 10819), 7, 2, b'\\tFROM t', '2026-02-11T13:15:40')
    >>> q = decode_line("logplex", b"2019-03-14T00:22:56+00:00 app[postgres.48]: [GREEN] "
    ...                 b"[15-1]  sql_error_code = 00000 LOG:  x", 0)
    >>> q.stream, q.seq, q.part, q.text
    (('', 48), 15, 1, b' sql_error_code = 00000 LOG:  x')
    """
    line = line.rstrip(b"\r")
    if fmt == "cloudsql":
        return _cloudsql(line)
    if fmt == "logplex":
        m = LOGPLEX_HEADER.match(line)
        if m is None:
            return None
        seq, part, text = _numbering(line[m.end() :])
        return Piece(
            ((m["host"] or b"").decode("utf-8", "replace"), int(m["pid"])),
            seq,
            part,
            text,
            _iso_time(m["iso"]),
            m["iso"].decode("ascii", "replace"),
            m["ident"].decode("utf-8", "replace"),
        )
    m = BSD_HEADER.match(line)
    iso = None
    if m is None:
        m = iso = ISO_HEADER.match(line)
        if m is None:
            return None
    ident = m["ident"].decode("utf-8", "replace")
    seq, part, text = _numbering(line[m.end() :])
    if iso is not None:
        time, text_time, year_known = _iso_time(m["iso"]), m["iso"].decode(), True
    else:
        time = bsd_time(m, year)
        text_time = b" ".join((m["mon"], m["day"].strip(), m["hms"])).decode()
        year_known = False
    return Piece(
        (m["host"].decode("utf-8", "replace"), int(m["pid"])),
        seq,
        part,
        unescape(text),
        time,
        text_time,
        ident,
        year_known,
    )


_CLOUD_PID = re.compile(rb"\[(\d+)\]")


def _cloudsql(line: bytes) -> Piece | None:
    if not line.startswith(b"{"):
        return None
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(obj, dict):
        return None
    payload = obj.get("textPayload")
    if not isinstance(payload, str):
        return None
    stamp = obj.get("timestamp")
    time = _iso_time(stamp.encode()) if isinstance(stamp, str) else None
    text = payload.encode("utf-8", "surrogateescape")
    m = _CLOUD_PID.match(text)
    database = ""
    resource = obj.get("resource")
    if isinstance(resource, dict) and isinstance(resource.get("labels"), dict):
        database = str(resource["labels"].get("database_id", ""))
    return Piece(
        (database, int(m.group(1)) if m else None),
        None,
        None,
        text,
        time,
        stamp if isinstance(stamp, str) else "",
    )


def is_cloudsql_entry(obj: object) -> bool:
    """A Cloud Logging entry of a Cloud SQL for PostgreSQL instance.

    >>> is_cloudsql_entry({"textPayload": "x", "resource": {"type": "cloudsql_database"}})
    True
    """
    if not isinstance(obj, dict) or not isinstance(obj.get("textPayload"), str):
        return False
    name = str(obj.get("logName", ""))
    resource = obj.get("resource")
    kind = resource.get("type") if isinstance(resource, dict) else None
    return "cloudsql" in name or kind == "cloudsql_database" or "postgres" in name


def utc(value: datetime | None) -> datetime | None:
    """An aware time in UTC (None stays None)."""
    return value.astimezone(UTC) if value is not None and value.tzinfo is not None else value


# -- putting messages back together ------------------------------------------------------


@dataclass
class _Message:
    """A message being assembled from its pieces (physical stderr-style lines)."""

    start: SourceLocation
    order: int
    seq: int | None
    part: int | None
    lines: list[bytes]
    last_len: int
    time: datetime | None
    time_text: str
    year_known: bool
    touched: int
    pid: int | None = None


def _word_after(text: bytes) -> int:
    """Length of the leading whitespace byte and the word after it."""
    j = 1
    while j < len(text) and not text[j : j + 1].isspace():
        j += 1
    return j


def length_split(prev_len: int, text: bytes) -> bool:
    """Whether a part continues the line of the part before (cut at 900 bytes) rather
    than starting the next physical line of the message.

    ``write_syslog()`` cuts a line longer than 900 bytes at its last space before
    byte 900 (the next part starts with that space), or at byte 900 when there is
    none; a newline always ends a part.  So a part is a cut only when the word it
    starts with could not have fitted in the part before.

    >>> length_split(880, b" averyveryverylongword and more")
    True
    >>> length_split(12, b"\\tFROM t"), length_split(899, b"xyz")
    (False, True)
    """
    if text[:1].isspace():
        return prev_len + _word_after(text) >= SYSLOG_LIMIT
    return prev_len >= SYSLOG_LIMIT - 3  # a cut inside a word (or a multibyte letter)


class Assembler:
    """Pieces in, complete messages out (in the order their first pieces came).

    With numbered messages (``syslog_sequence_numbers``, the default) a piece with
    the sequence number of the open message of its process and the next part
    number continues it; otherwise a piece continues the open message when it is a
    TAB continuation or a secondary line (``DETAIL:``, ``STATEMENT:``...).  A
    continuation that is not a new physical line (see :func:`length_split`) is
    glued to the line before.  A message is complete when its process starts the
    next one, at the end of the input, or when its process has been silent for
    :data:`STALE` pieces.
    """

    STALE = 2000

    def __init__(self, prefix: CompiledPrefix, numbered: bool) -> None:
        self.prefix = prefix
        self.numbered = numbered
        self.open: dict[tuple[str, int | None], _Message] = {}
        self.ready: list[tuple[int, _Message]] = []
        self.counter = 0
        self.last: tuple[str, int | None] | None = None

    def _secondary(self, text: bytes) -> bool:
        from auditor.logs.prefix import SECONDARY_SEVERITIES

        m = self.prefix.match(text)
        return m is not None and m["severity"].decode() in SECONDARY_SEVERITIES

    def _continues(self, piece: Piece, msg: _Message | None) -> bool:
        seq, part = piece.seq, piece.part
        if not self.numbered and seq is not None and part is None:
            seq, part = None, seq  # "[3]": the part number of an unnumbered message
        if self.numbered and seq is not None:
            return msg is not None and seq == msg.seq and part is not None and part > 1
        if part is not None:
            return part > 1
        return piece.text.startswith(b"\t") or self._secondary(piece.text)

    def newlines(self, text: bytes) -> bytes:
        r"""rsyslog's ``#012`` as a newline where PostgreSQL wrote one: before a TAB
        (``#011``, a continuation line) or a secondary line with the prefix (a whole
        message in one part: ``syslog_split_messages = off``).  Anywhere else it is
        text, so a statement cannot forge a line by holding ``#012``.
        """
        if b"#012" not in text:
            return text
        parts = text.split(b"#012")
        out = [parts[0]]
        for part in parts[1:]:  # (#011 is a TAB already: see unescape)
            newline = part.startswith(b"\t") or self._secondary(part)
            out.append((b"\n" if newline else b"#012") + part)
        return b"".join(out)

    def feed(self, piece: Piece, loc: SourceLocation) -> str | None:
        """Take one piece; a warning text when it continues a message that is not here."""
        if b"#012" in piece.text:
            piece = replace(piece, text=self.newlines(piece.text))
        self.counter += 1
        key = piece.stream
        if key[1] is None and self.last is not None:
            key = self.last  # a Cloud SQL continuation line carries no pid: the line before's
        self.last = key
        msg = self.open.get(key)
        if self._continues(piece, msg):
            if msg is None:
                return "part of a message whose start is not in this file (or was cut)"
            text = piece.text
            cut = length_split(msg.last_len, text)
            if (text.startswith(b"\t") and not cut) or self._secondary(text):
                msg.lines.append(text)
            elif cut:
                msg.lines[-1] += text
            else:  # a new physical line whose TAB the envelope dropped
                msg.lines.append(b"\t" + text)
            msg.last_len = len(text)
            msg.part = piece.part
            msg.touched = self.counter
            return None
        if msg is not None:
            self._complete(key)
        self.open[key] = _Message(
            loc,
            self.counter,
            piece.seq,
            piece.part,
            [piece.text],
            len(piece.text),
            piece.time,
            piece.time_text,
            piece.year_known,
            self.counter,
            piece.stream[1],
        )
        if self.counter % 500 == 0:
            for k, m in list(self.open.items()):
                if m.touched < self.counter - self.STALE:
                    self._complete(k)
        return None

    def _complete(self, key: tuple[str, int | None]) -> None:
        msg = self.open.pop(key)
        heapq.heappush(self.ready, (msg.order, msg))

    def take(self, *, end: bool = False) -> list[_Message]:
        """Complete messages that no open message comes before (all of them at the end)."""
        if end:
            for key in list(self.open):
                self._complete(key)
        oldest = min((m.order for m in self.open.values()), default=None)
        out = []
        while self.ready and (oldest is None or self.ready[0][0] < oldest):
            out.append(heapq.heappop(self.ready)[1])
        return out


@cache
def _worth_patterns() -> tuple[re.Pattern[bytes], re.Pattern[bytes]]:
    from auditor.logs.prefilter import ERROR_SEVERITIES, MESSAGE_LITERALS, SQL_TOKENS

    tokens = re.compile(b"|".join(re.escape(t.lower()) for t in SQL_TOKENS))  # on lower()
    literals = [re.escape(m) for m in MESSAGE_LITERALS]
    literals += [re.escape(sev.encode() + b":") for sev in ERROR_SEVERITIES]
    return tokens, re.compile(b"|".join(literals))


def _worth_parsing(text: bytes) -> bool:
    """Whether a message may matter without ``--all`` (the byte pre-filter's tokens)."""
    from auditor.logs.prefilter import INTO_EXCLUSIONS

    tokens, literals = _worth_patterns()
    low = text.lower()
    if tokens.search(low) or literals.search(text):
        return True
    start = low.find(b"into")
    while start >= 0:  # INTO that is not INSERT's or MERGE's (SELECT ... INTO)
        if not any(low.endswith(x, 0, start) for x in INTO_EXCLUSIONS):
            return True
        start = low.find(b"into", start + 4)
    return False


def read_envelope(
    read: SourceRead, decision: Decision, acc: Any, end: list[int]
) -> Iterator[LogRecord | ReadWarning]:
    """Read one envelope file: records and warnings in file order.

    ``acc`` (the reader's counters) and ``end`` (``[offset, line]`` just past the
    last complete line) are updated as it goes; the caller builds the statistics.
    """
    from auditor.logs.reader import _damage_warning
    from auditor.logs.stderr import StderrReader
    from auditor.logs.times import parse_epoch, wall_clock_zone

    source, fmt = read.source, decision.fmt
    assert read.prefix is not None
    prefix = read.prefix
    parser = StderrReader(prefix, read.clock)
    assembler = Assembler(prefix, decision.numbered)
    idents = set(decision.idents)
    mtime = datetime.fromtimestamp(source.mtime, UTC) if source.mtime else datetime.now(UTC)
    zone = wall_clock_zone(read.log_timezone) if read.log_timezone else None
    told_year = False
    timed = prefix.has_time
    offset, line = read.start_offset, read.start_line

    def envelope_time(msg: _Message) -> datetime | None:
        when = msg.time
        if when is not None and when.tzinfo is None:
            when = when.replace(tzinfo=zone) if zone is not None else when.astimezone()
        return when

    def inner_time(msg: _Message) -> datetime | None:
        m = prefix.match(msg.lines[0])
        if m is None:
            return None
        gd = m.groupdict()
        if gd.get("time"):
            return read.clock.instant(gd["time"].decode("ascii", "replace"))
        if gd.get("epoch"):
            return parse_epoch(gd["epoch"].decode("ascii", "replace"))
        return None

    def emit(msg: _Message) -> Iterator[LogRecord | ReadWarning]:
        nonlocal told_year
        acc.records += 1
        text = b"\n".join(msg.lines) + b"\n"
        record: LogRecord | None = None
        if read.all_records or _worth_parsing(text):
            record, warnings = parser.parse(text, 0, len(text), msg.start)
            for w in warnings:
                yield w if isinstance(w, ReadWarning) else ReadWarning(msg.start, w)
        when = record.time if record is not None else (inner_time(msg) if timed else None)
        if when is None and msg.time is not None:
            when = envelope_time(msg)
            if record is not None:
                record = replace(record, time=when, time_resolution_us=1_000_000)
            if not msg.year_known and not told_year:
                told_year = True
                where = read.log_timezone or "this machine's time zone"
                yield ReadWarning(
                    msg.start,
                    f"syslog times have no year and no zone: placed in {mtime.year} (the "
                    f"file's modification year) and in {where}; put %m in log_line_prefix "
                    "for exact times",
                    msg.time_text,
                    cause="syslog-time",
                )
        if when is not None:
            if acc.first_time is None:
                acc.first_time = when
            acc.last_time = when
        if record is None:
            return
        if record.pid is None and msg.pid is not None:  # the envelope says whose it is
            record = replace(record, pid=msg.pid)
        if record.is_ddl and record.kind in (MessageKind.STATEMENT, MessageKind.EXECUTE):
            acc.ddl += 1
        yield record

    try:
        stream: Any = source.open(read.start_offset)
    except Damaged as exc:
        yield _damage_warning(acc, exc, SourceLocation(source.name, offset, line))
        return
    carry = b""
    damage: Damaged | None = None
    try:
        while True:
            try:
                data = stream.read(1024 * 1024)
            except Damaged as exc:
                damage, data = exc, b""
            if not data:
                break
            buf = carry + data if carry else data
            cut = buf.rfind(b"\n") + 1
            carry = buf[cut:]
            pos = 0
            while pos < cut:
                nl = buf.index(b"\n", pos)
                raw = buf[pos:nl]
                loc = SourceLocation(source.name, offset + pos, line)
                line += 1
                pos = nl + 1
                acc.lines += 1
                if not raw.strip():
                    continue
                year = mtime.year
                piece = decode_line(fmt, raw, year)
                late = isinstance(piece, Piece) and not piece.year_known and piece.time is not None
                if late and piece.time.month > mtime.month:  # type: ignore[union-attr]
                    # December's lines read in January: last year's.
                    piece = replace(piece, time=piece.time.replace(year=year - 1))  # type: ignore
                if piece is None:
                    yield ReadWarning(
                        loc, f"not a {fmt} line", raw[:120].decode("utf-8", "replace")
                    )
                    continue
                if idents and piece.ident not in idents:
                    acc.foreign += 1
                    continue
                problem = assembler.feed(piece, loc)
                if problem is not None:
                    yield ReadWarning(loc, problem, raw[:120].decode("utf-8", "replace"))
                for msg in assembler.take():
                    yield from emit(msg)
            offset += cut
            end[0], end[1] = offset, line
        for msg in assembler.take(end=True):
            yield from emit(msg)
        if carry.strip() and read.final:
            acc.truncated = True
            yield ReadWarning(
                SourceLocation(source.name, offset, line),
                "incomplete last record not read (file still being written?)",
                carry[:120].split(b"\n", 1)[0].decode("utf-8", "replace"),
            )
        if damage is not None:
            yield _damage_warning(acc, damage, SourceLocation(source.name, offset, line))
    finally:
        stream.close()
    end[0], end[1] = offset, line
