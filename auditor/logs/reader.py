"""Read one log source in bounded windows: records, warnings and statistics.

The bytes of a source are read in windows of :data:`WINDOW` bytes.  Each
window starts at a record boundary and is cut after its last complete
record; the rest is carried into the next window, so memory stays bounded by
the window plus the longest record, whatever the file size.

Per window, in the fast path, one pass of :class:`~auditor.logs.prefilter.Finder`
finds the token hits and the odd line shapes, only the records holding a hit
are parsed, and line numbers come from counting newlines between them.  With
``all_records`` every record is parsed.

:func:`read_source` is the entry point; its result is an iterator of
:class:`~auditor.model.LogRecord` and :class:`~auditor.model.ReadWarning`
whose :attr:`SourceRead.stats` holds a :class:`SourceStats` once it is
exhausted: what incremental runs (``reconcile --state``) store per file.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Protocol

from auditor.errors import LogInputError, PrefixMismatch
from auditor.logs.csvlog import CsvlogReader
from auditor.logs.detect import detect_format, detect_prefix, prefix_score
from auditor.logs.jsonlog import JsonlogReader
from auditor.logs.link import Linker
from auditor.logs.prefilter import CONT, HIT, ODD_END, ODD_LINE, Finder
from auditor.logs.prefix import COMMON_PREFIXES, CompiledPrefix, compile_prefix
from auditor.logs.sources import LogSource
from auditor.logs.stderr import StderrReader
from auditor.logs.times import LogClock, parse_epoch
from auditor.model import LogRecord, MessageKind, ReadWarning, SourceLocation

WINDOW = 16 * 1024 * 1024
#: Warnings yielded per source before they are only counted.
MAX_WARNINGS = 1000
FORMATS = ("stderr", "csvlog", "jsonlog")


class FormatReader(Protocol):
    fmt: str
    finder: Finder

    def begin(self, buf: bytes) -> None: ...
    def span_at(
        self, buf: bytes, pos: int, lo: int, final: bool
    ) -> tuple[int, int, bool] | None: ...
    def cut(self, buf: bytes, lo: int, final: bool) -> int: ...
    def parse(
        self, buf: bytes, rs: int, re_: int, loc: SourceLocation
    ) -> tuple[LogRecord | None, list[str | ReadWarning]]: ...
    def time_at(self, buf: bytes, rs: int) -> tuple[str | None, bool]: ...


@dataclass(frozen=True)
class SourceStats:
    """What was read from one source; the per-file state of an incremental run.

    ``end_offset`` is just past the last complete record (an unterminated
    last line is not consumed: rerun from there when the file has grown);
    ``end_line`` is the line number at that offset.  Offsets count
    decompressed bytes.  ``records`` counts log entries: messages for csvlog
    and jsonlog, prefixed lines for stderr (PostgreSQL's own ``%l`` unit).
    """

    source: str
    format: str
    prefix: str | None
    compression: str | None
    inode: int | None
    size: int | None
    head_hash: str | None
    start_offset: int
    end_offset: int
    end_line: int
    lines: int
    records: int
    ddl_statements: int
    warnings: int
    first_time: datetime | None
    last_time: datetime | None
    truncated: bool
    engine: str


@dataclass
class _Acc:
    lines: int = 0
    records: int = 0
    ddl: int = 0
    warnings: int = 0
    first_time: datetime | None = None
    last_time: datetime | None = None
    truncated: bool = False


@dataclass
class _Window:
    """Everything one window produced."""

    items: list[LogRecord | ReadWarning] = field(default_factory=list)
    consumed: int = 0
    lines: int = 0
    records: int = 0
    ddl: int = 0
    first_time_raw: tuple[str | None, bool] = (None, False)
    last_time_raw: tuple[str | None, bool] = (None, False)


def make_reader(fmt: str, prefix: CompiledPrefix | None, clock: LogClock) -> FormatReader:
    if fmt == "stderr":
        if prefix is None:
            raise LogInputError("stderr logs need a log_line_prefix")
        return StderrReader(prefix, clock)
    if fmt == "csvlog":
        return CsvlogReader(clock)
    if fmt == "jsonlog":
        return JsonlogReader(clock)
    raise LogInputError(f"unknown log format {fmt!r} (use stderr, csvlog, jsonlog or auto)")


def scan_window(
    reader: FormatReader,
    buf: bytes,
    *,
    name: str,
    base_offset: int,
    base_line: int,
    final: bool,
    all_records: bool,
) -> _Window:
    """Read the complete records of ``buf`` (which starts at a record boundary)."""
    out = _Window()
    reader.begin(buf)
    items: list[tuple[int, LogRecord | ReadWarning]] = []
    state = [0, base_line]  # position and line number of the last located point

    def locate(pos: int) -> SourceLocation:
        if pos >= state[0]:
            state[1] += buf.count(b"\n", state[0], pos)
        else:
            state[1] -= buf.count(b"\n", pos, state[0])
        state[0] = pos
        return SourceLocation(name, base_offset + pos, state[1])

    def handle(rs: int, re_: int, ok: bool) -> None:
        loc = locate(rs)
        if not ok:
            excerpt = buf[rs : min(re_, rs + 120)].split(b"\n", 1)[0]
            items.append(
                (rs, ReadWarning(loc, _foreign_message(reader), excerpt.decode("utf-8", "replace")))
            )
            return
        record, warnings = reader.parse(buf, rs, re_, loc)
        for w in warnings:
            items.append((rs, w if isinstance(w, ReadWarning) else ReadWarning(loc, w)))
        if record is not None:
            items.append((rs, record))

    odd_lines = 0  # lines that are not records (stderr garbage; csv quoted lines)
    conts = 0
    if all_records:
        spans: list[tuple[int, int, bool]] = []
        pos = 0
        while pos < len(buf):
            span = reader.span_at(buf, pos, pos, final)
            if span is None:
                break
            spans.append(span)
            pos = span[1]
        if reader.fmt == "csvlog":
            if final and spans and spans[-1][1] == len(buf) and buf[-1:] != b"\n":
                spans.pop()  # an unterminated last record: not complete, not consumed
        else:  # the stateless readers know which records a truncated last line spoils
            limit = reader.cut(buf, 0, final)
            spans = [sp for sp in spans if sp[1] <= limit]
        hi = spans[-1][1] if spans else 0
        for rs, re_, ok in spans:
            handle(rs, re_, ok)
            if reader.fmt == "stderr":
                conts += buf.count(b"\n\t", rs, re_)  # continuation lines of the span
            elif reader.fmt == "csvlog" and ok:
                conts += buf.count(b"\n", rs, re_ - 1)
            if not ok:
                odd_lines += buf.count(b"\n", rs, re_) or 1
    else:
        events = reader.finder.find(buf)
        cursor = 0
        stop: int | None = None
        seen_odd: set[int] = set()
        odd_events: list[tuple[int, int]] = []  # (line start, 1 if not a record line)
        # The line shapes are checked after a newline: check the very first line here.
        head = reader.span_at(buf, 0, 0, final) if buf else None
        if head is not None and not head[2]:
            handle(head[0], head[1], False)
            odd_events.append((0, 1))
            seen_odd.add(0)
            cursor = head[1]
        for ev in events:
            pos, kind = ev >> 2, ev & 3
            if kind == HIT:
                at = pos - 1
                if at < cursor:
                    continue
                span = reader.span_at(buf, at, cursor, final)
                if span is None:
                    stop = at
                    break
                rs, re_, ok = span
                handle(rs, re_, ok)
                if not ok:
                    odd_events.append((rs, 1))
                    seen_odd.add(rs)
                cursor = re_
            elif kind == CONT:
                odd_events.append((pos - 1, 0))
            elif kind == ODD_LINE:
                ls = pos - 1
                if ls in seen_odd:
                    continue
                verdict = _odd_line(reader, buf, ls, cursor, final)
                if verdict is None:
                    continue
                seen_odd.add(ls)
                if verdict == "inside":
                    odd_events.append((ls, 1))
                    continue
                span = reader.span_at(buf, ls, ls, final) if verdict == "foreign" else None
                if span is None:
                    continue
                rs, re_, _ok = span
                handle(rs, re_, False)
                odd_events.append((rs, 1))
                cursor = max(cursor, re_)
            elif kind == ODD_END:
                le = pos - 1  # the newline
                ls = buf.rfind(b"\n", 0, le) + 1
                if ls in seen_odd or ls < cursor:
                    continue
                seen_odd.add(ls)
                handle(ls, le + 1, False)
                odd_events.append((ls, 1))
                cursor = max(cursor, le + 1)
        hi = reader.cut(buf, cursor, final)
        if stop is not None and stop < hi:
            # A record could not be completed but the cut says it is: cannot
            # happen with a consistent reader; stay safe and stop before it.
            hi = max(cursor, reader.cut(buf[:stop], cursor, False))
        for pos, weight in odd_events:
            if pos < hi:
                if weight:
                    odd_lines += 1
                else:
                    conts += 1
    out.items = [item for pos, item in items if pos < hi]
    out.consumed = hi
    locate(hi)  # the newlines up to each record are counted once, and on to the cut
    out.lines = state[1] - base_line
    if final and hi == len(buf) and hi and buf[hi - 1] != 10:
        out.lines += 1
    out.records = max(0, out.lines - conts - odd_lines)
    out.ddl = sum(
        1
        for item in out.items
        if isinstance(item, LogRecord)
        and item.is_ddl
        and item.kind in (MessageKind.STATEMENT, MessageKind.EXECUTE)
    )
    if hi > 0:
        out.first_time_raw = reader.time_at(buf, 0)
        out.last_time_raw = _last_time(reader, buf, hi)
    return out


def _foreign_message(reader: FormatReader) -> str:
    if isinstance(reader, StderrReader):
        return f"not a log line for log_line_prefix {reader.prefix.text!r}"
    if isinstance(reader, CsvlogReader):
        return "not a csvlog row"
    return "not a jsonlog line"


def _odd_line(reader: FormatReader, buf: bytes, ls: int, cursor: int, final: bool) -> str | None:
    """What an odd line start is: "foreign" (garbage), "inside" (a quoted csv line) or None."""
    if isinstance(reader, StderrReader):
        if ls < cursor:
            return None
        return "foreign" if reader.severity_at(buf, ls) is None else None
    if isinstance(reader, CsvlogReader):
        if ls < cursor:
            return "inside"
        if ls > 0 and reader.parity(buf, ls - 1):
            return "inside"
        return "foreign"
    if ls < cursor:
        return None
    return "foreign"


def _last_time(reader: FormatReader, buf: bytes, hi: int) -> tuple[str | None, bool]:
    end = hi - 1
    for _ in range(1000):
        i = buf.rfind(b"\n", 0, end)
        ls = i + 1
        if ls < hi and buf[ls : ls + 1] != b"\t":
            raw = reader.time_at(buf, ls)
            if raw[0] is not None:
                return raw
        if i < 0:
            break
        end = i
    return None, False


def _time(raw: tuple[str | None, bool], clock: LogClock) -> datetime | None:
    text, epoch = raw
    if text is None:
        return None
    return parse_epoch(text) if epoch else clock.instant(text)


class SourceRead:
    """Iterator over one source's records and warnings; ``stats`` once exhausted."""

    def __init__(
        self,
        source: LogSource,
        *,
        fmt: str = "auto",
        prefix: str | CompiledPrefix | None = None,
        all_records: bool = False,
        start_offset: int = 0,
        start_line: int = 1,
        end_offset: int | None = None,
        log_timezone: str | None = None,
        window: int = WINDOW,
        final: bool = True,
        link: bool = True,
    ) -> None:
        self.source = source
        self.fmt = fmt
        self.prefix: CompiledPrefix | None = (
            compile_prefix(prefix) if isinstance(prefix, str) else prefix
        )
        self.all_records = all_records
        self.start_offset = start_offset
        self.start_line = start_line
        self.end_offset = end_offset
        self.clock = LogClock(log_timezone)
        self.window = window
        self.final = final
        self.stats: SourceStats | None = None
        self._it: Iterator[LogRecord | ReadWarning] = self._run()
        if link:
            self._it = Linker(all_records=all_records).run(self._it)

    def __iter__(self) -> SourceRead:
        return self

    def __next__(self) -> LogRecord | ReadWarning:
        return next(self._it)

    def resolve(self, head: bytes) -> FormatReader:
        """Decide format and prefix from the first bytes (unless given); build the reader."""
        if self.fmt == "auto":
            self.fmt = detect_format(head, self.source.hint)
        if self.fmt == "stderr":
            if self.prefix is None:
                found, first = detect_prefix(head, COMMON_PREFIXES)
                if found is None:
                    raise PrefixMismatch(
                        f"{self.source.name}:1: no known log_line_prefix reads this stderr log; "
                        f"give it with --log-line-prefix (first line: {_excerpt(first)})"
                    )
                self.prefix = found
            else:
                _check_prefix(self.source.name, self.prefix, head, self.start_line)
        return make_reader(self.fmt, self.prefix, self.clock)

    def _run(self) -> Iterator[LogRecord | ReadWarning]:
        acc = _Acc()
        stream = self.source.open(self.start_offset)
        offset = self.start_offset
        line = self.start_line
        carry = b""
        reader: FormatReader | None = None
        warned = 0
        limit = self.end_offset
        # Times that could not be placed exactly: one warning per cause, at its first
        # record, with the count (a file in an unknown zone would warn on every line).
        causes: dict[str, tuple[ReadWarning, int]] = {}
        try:
            eof = False
            while not eof:
                want = self.window
                if limit is not None:
                    want = min(want, limit - offset - len(carry))
                data = stream.read(want) if want > 0 else b""
                if not data:
                    eof = True
                    buf = carry
                    if not buf:
                        break
                else:
                    buf = carry + data if carry else data
                final = eof and self.final
                if reader is None:
                    reader = self.resolve(buf[:65536])
                if eof and not self.final and reader.fmt != "csvlog":
                    # A piece of a split file ends here, at a message boundary (for
                    # csvlog only presumed: the scan checks it and reads again if not).
                    final = True
                win = scan_window(
                    reader,
                    buf,
                    name=self.source.name,
                    base_offset=offset,
                    base_line=line,
                    final=final,
                    all_records=self.all_records,
                )
                for item in win.items:
                    if isinstance(item, ReadWarning) and item.cause is not None:
                        first, seen = causes.get(item.cause, (item, 0))
                        causes[item.cause] = (first, seen + 1)
                        acc.warnings += not seen
                        continue
                    if isinstance(item, ReadWarning):
                        acc.warnings += 1
                        warned += 1
                        if warned > MAX_WARNINGS:
                            continue
                    yield item
                acc.lines += win.lines
                acc.records += win.records
                acc.ddl += win.ddl
                if win.consumed:
                    t0 = _time(win.first_time_raw, self.clock)
                    if acc.first_time is None and t0 is not None:
                        acc.first_time = t0
                    t1 = _time(win.last_time_raw, self.clock)
                    if t1 is not None:
                        acc.last_time = t1
                offset += win.consumed
                line += win.lines
                carry = buf[win.consumed :]
                if eof and carry and self.final:
                    acc.truncated = True
                    acc.warnings += 1
                    loc = SourceLocation(self.source.name, offset, line)
                    excerpt = carry[:120].split(b"\n", 1)[0].decode("utf-8", "replace")
                    yield ReadWarning(
                        loc,
                        "incomplete last record not read (file still being written?)",
                        excerpt,
                    )
            for first, count in causes.values():
                yield replace(first, count=count)
            if warned > MAX_WARNINGS:
                yield ReadWarning(
                    SourceLocation(self.source.name, offset, line),
                    f"{warned - MAX_WARNINGS} more warnings not shown",
                )
        finally:
            stream.close()
        self.stats = SourceStats(
            source=self.source.name,
            format=self.fmt,
            prefix=self.prefix.text if (self.prefix is not None and self.fmt == "stderr") else None,
            compression=self.source.compression,
            inode=self.source.inode,
            size=self.source.size,
            head_hash=self.source.head_hash,
            start_offset=self.start_offset,
            end_offset=offset,
            end_line=line,
            lines=acc.lines,
            records=acc.records,
            ddl_statements=acc.ddl,
            warnings=acc.warnings,
            first_time=acc.first_time,
            last_time=acc.last_time,
            truncated=acc.truncated,
            engine=reader.finder.engine if reader is not None else "",
        )


def _excerpt(line: bytes | None) -> str:
    if not line:
        return "''"
    return repr(line[:160].decode("utf-8", "replace"))


def _check_prefix(name: str, prefix: CompiledPrefix, head: bytes, start_line: int) -> None:
    """One clear error when the given prefix reads none of the first lines."""
    lines = head.split(b"\n")
    if len(lines) > 1:
        lines = lines[:-1]
    numbered = [(i, ln) for i, ln in enumerate(lines) if ln.strip() and not ln.startswith(b"\t")]
    sample = [ln for _, ln in numbered[:200]]
    if sample and prefix_score(prefix, sample) == 0:
        i, first = numbered[0]
        raise PrefixMismatch(
            f"{name}:{start_line + i}: log_line_prefix {prefix.text!r} matches no line; "
            f"first line: {_excerpt(first)}"
        )


def read_source(
    source: LogSource,
    *,
    fmt: str = "auto",
    prefix: str | CompiledPrefix | None = None,
    all_records: bool = False,
    start_offset: int = 0,
    start_line: int = 1,
    log_timezone: str | None = None,
) -> SourceRead:
    """Read one source: records (only the audit-relevant ones unless ``all_records``)
    and warnings, in file order; ``.stats`` after iteration.

    ERROR records are *not* linked to their statement here (that needs every
    source in order): pass the items through :class:`auditor.logs.link.Linker`,
    or use :func:`auditor.logs.scan.scan` which does both.
    """
    if fmt not in ("auto", *FORMATS):
        raise LogInputError(f"unknown log format {fmt!r} (use auto, stderr, csvlog or jsonlog)")
    return SourceRead(
        source,
        fmt=fmt,
        prefix=prefix,
        all_records=all_records,
        start_offset=start_offset,
        start_line=start_line,
        log_timezone=log_timezone,
    )
