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

from auditor.errors import LogInputError
from auditor.logs.columnar import WindowReader, window_reader
from auditor.logs.csvlog import CsvlogReader
from auditor.logs.detect import HEAD_BYTES, Decision, Sample, decide, take_sample
from auditor.logs.envelope import ENVELOPES
from auditor.logs.jsonlog import CnpgReader, JsonlogReader
from auditor.logs.link import Linker
from auditor.logs.prefilter import CONT, HIT, ODD_END, ODD_LINE, Finder
from auditor.logs.prefix import CompiledPrefix, compile_prefix
from auditor.logs.sequence import LineTrack, LineTracker
from auditor.logs.sources import Damaged, LogSource, RawStream, peek
from auditor.logs.stderr import StderrReader
from auditor.logs.times import LogClock, parse_epoch
from auditor.model import LogRecord, MessageKind, ReadWarning, SourceLocation

WINDOW = 16 * 1024 * 1024
#: Warnings yielded per source before they are only counted.
MAX_WARNINGS = 1000
#: Formats read in windows by :func:`scan_window` (and split into pieces).
FORMATS = ("stderr", "csvlog", "jsonlog", "cnpg")
#: Every format ``--log-format`` takes.
ALL_FORMATS = (*FORMATS, *ENVELOPES)


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
    #: How the prefix was chosen: ``given``, ``known`` (a common prefix) or ``inferred``.
    prefix_how: str = ""
    #: Lines of other programs skipped (a syslog file holds every daemon's lines).
    foreign_lines: int = 0
    #: The compressed data is cut short or corrupt: what follows the damage is lost.
    damaged: bool = False
    #: Every record's per-process line number, checked (None: not tracked).
    sequence: LineTrack | None = None
    #: Every prefix the file was read with, ``prefix`` first (more than one: the
    #: server's ``log_line_prefix`` was changed while it wrote the file).
    prefixes: tuple[str, ...] = ()


@dataclass
class _Acc:
    lines: int = 0
    records: int = 0
    ddl: int = 0
    warnings: int = 0
    first_time: datetime | None = None
    last_time: datetime | None = None
    truncated: bool = False
    foreign: int = 0
    damaged: bool = False


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


def make_reader(
    fmt: str,
    prefix: CompiledPrefix | None,
    clock: LogClock,
    others: tuple[CompiledPrefix, ...] = (),
) -> FormatReader:
    if fmt == "stderr":
        if prefix is None:
            raise LogInputError("stderr logs need a log_line_prefix")
        return StderrReader(prefix, clock, others)
    if fmt == "csvlog":
        return CsvlogReader(clock)
    if fmt == "jsonlog":
        return JsonlogReader(clock)
    if fmt == "cnpg":
        return CnpgReader(clock)
    raise LogInputError(f"unknown log format {fmt!r} (use {', '.join(('auto', *ALL_FORMATS))})")


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
                while cursor <= at:
                    # A broken csv row that the reader resynchronises after ends
                    # before the hit: the hit's own record comes next.
                    span = reader.span_at(buf, at, cursor, final)
                    if span is None:
                        stop = at
                        break
                    rs, re_, ok = span
                    handle(rs, re_, ok)
                    if not ok:
                        odd_events.append((rs, 1))
                        seen_odd.add(rs)
                    cursor = max(re_, cursor + 1)
                if stop is not None:
                    break
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
                if isinstance(reader, CsvlogReader):
                    # The line may belong to a row that a cut row before it put out of
                    # step: the reader looks back from the last record for it.
                    while cursor <= ls:
                        span = reader.span_at(buf, ls, cursor, final)
                        if span is None:
                            break
                        rs, re_, ok = span
                        handle(rs, re_, ok)
                        if not ok:
                            odd_events.append((rs, 1))
                        cursor = max(re_, cursor + 1)
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
    entries = getattr(reader, "entries", None)
    out.records = entries(buf, 0, hi) if entries else max(0, out.lines - conts - odd_lines)
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


def _prefixes_used(reader: FormatReader | None) -> tuple[str, ...]:
    """The prefixes a stderr reader read records with (all it knows if it parsed none)."""
    if not isinstance(reader, StderrReader):
        return ()
    texts = tuple(p.text for p in reader.prefixes)
    if len(texts) > 1 and reader.used:
        texts = tuple(t for t in texts if t in reader.used)
    return texts


def _foreign_message(reader: FormatReader) -> str:
    if isinstance(reader, StderrReader):
        if len(reader.prefixes) > 1:
            texts = " nor ".join(repr(p.text) for p in reader.prefixes)
            return f"not a log line for log_line_prefix {texts}"
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


def sample_source(source: LogSource, start_offset: int = 0) -> Sample:
    """Lines to decide a file's format and prefix from (the whole file where needed)."""
    if source.kind == "stdin":
        return take_sample(_Head(peek(source, HEAD_BYTES)).read, whole=False)
    try:
        stream = source.open(start_offset)
    except Damaged:
        return Sample()
    try:
        return take_sample(_Guard(stream).read)
    finally:
        stream.close()


class _Head:
    """A byte string read like a stream (a sample from bytes already read)."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def read(self, size: int) -> bytes:
        out, self.data = self.data[:size], self.data[size:]
        return out


class _Guard:
    """A stream that ends where its compressed data is damaged (detection reads what it can)."""

    def __init__(self, stream: RawStream) -> None:
        self.stream = stream

    def read(self, size: int) -> bytes:
        try:
            return self.stream.read(size)
        except Damaged:
            return b""


class _Warnings:
    """Warnings as a file gives them: one per cause for times that could not be placed
    exactly (with the count), at most :data:`MAX_WARNINGS` others."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.causes: dict[str, tuple[ReadWarning, int]] = {}
        self.shown = 0
        self.count = 0

    def take(self, item: ReadWarning) -> ReadWarning | None:
        """The warning to yield now (None: counted, or yielded at the end)."""
        if item.cause is not None:
            first, seen = self.causes.get(item.cause, (item, 0))
            self.causes[item.cause] = (first, seen + 1)
            self.count += not seen
            return None
        self.count += 1
        self.shown += 1
        return item if self.shown <= MAX_WARNINGS else None

    def end(self, loc: SourceLocation) -> Iterator[ReadWarning]:
        for first, seen in self.causes.values():
            yield replace(first, count=seen)
        if self.shown > MAX_WARNINGS:
            yield ReadWarning(loc, f"{self.shown - MAX_WARNINGS} more warnings not shown")


def _damage_warning(acc: _Acc, damage: Damaged, loc: SourceLocation) -> ReadWarning:
    """The warning for damaged compressed data.  Bytes after the end of the data lose
    nothing (a note about records read, not a gap); data cut short or corrupt loses
    the rest of the file."""
    if damage.trailing:
        return ReadWarning(loc, damage.reason, cause="trailing-bytes")
    acc.truncated = acc.damaged = True
    return ReadWarning(loc, damage.reason)


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
        decision: Decision | None = None,
        server_prefix: str | None = None,
    ) -> None:
        self.source = source
        #: The server's prefix now: tried first, not forced on a file it does not read.
        self.server_prefix = compile_prefix(server_prefix) if server_prefix else None
        self.fmt = fmt
        self.prefix: CompiledPrefix | None = (
            compile_prefix(prefix) if isinstance(prefix, str) else prefix
        )
        self.all_records = all_records
        self.start_offset = start_offset
        self.start_line = start_line
        self.end_offset = end_offset
        self.log_timezone = log_timezone
        self.clock = LogClock(log_timezone)
        self.window = window
        self.final = final
        self.decision = decision
        self.others: tuple[CompiledPrefix, ...] = ()
        if decision is not None:
            self.fmt, self.prefix, self.others = decision.fmt, decision.prefix, decision.others
        self.stats: SourceStats | None = None
        self._it: Iterator[LogRecord | ReadWarning] = self._run()
        if link:
            self._it = Linker(all_records=all_records).run(self._it)

    def __iter__(self) -> SourceRead:
        return self

    def __next__(self) -> LogRecord | ReadWarning:
        return next(self._it)

    def decide(self, sample: Sample | None = None) -> Decision:
        """Format and prefix (unless given), from a sample of the file (read here if
        none is passed: the head, and the rest of the file where needed)."""
        if self.decision is None:
            if sample is None:
                sample = sample_source(self.source, self.start_offset)
            self.decision = decide(
                self.source.name,
                sample,
                fmt=self.fmt,
                prefix=self.prefix,
                hint=self.source.hint,
                detected=self.source.detected if self.fmt == "auto" else None,
                start_line=self.start_line,
                server=self.server_prefix,
            )
        self.fmt = self.decision.fmt
        self.prefix = self.decision.prefix
        self.others = self.decision.others
        return self.decision

    def resolve(self, head: bytes) -> FormatReader:
        """Decide format and prefix from the first bytes (unless decided); build the reader."""
        self.decide(take_sample(_Head(head).read, whole=False))
        return make_reader(self.fmt, self.prefix, self.clock, self.others)

    def _run(self) -> Iterator[LogRecord | ReadWarning]:
        if self.decision is None and (
            self.source.kind != "stdin" or self.source.compression is None
        ):
            self.decide()  # (a compressed pipe cannot be peeked into: its first window)
        if self.decision is not None and self.fmt in ENVELOPES:
            yield from self._run_envelope()
            return
        acc = _Acc()
        warn = _Warnings(self.source.name)
        offset = self.start_offset
        line = self.start_line
        carry = b""
        reader: FormatReader | None = None
        columnar: WindowReader | None = None
        limit = self.end_offset
        damage: Damaged | None = None
        tracker: LineTracker | None = None

        def when(buf: bytes, pos: int) -> datetime | None:
            assert reader is not None
            return _time(reader.time_at(buf, pos), self.clock)

        try:
            stream: RawStream | None = self.source.open(self.start_offset)
        except Damaged as exc:
            stream, damage = None, exc
        try:
            eof = stream is None
            while not eof:
                want = self.window
                if limit is not None:
                    want = min(want, limit - offset - len(carry))
                try:
                    data = stream.read(want) if (want > 0 and stream is not None) else b""
                except Damaged as exc:
                    damage, data = exc, b""
                if not data:
                    eof = True
                    buf = carry
                    if not buf:
                        break
                else:
                    buf = carry + data if carry else data
                final = eof and self.final
                if reader is None:
                    if self.decision is None:  # compressed stdin: on its first window
                        self.decide(take_sample(_Head(buf[:HEAD_BYTES]).read, whole=False))
                    if self.fmt in ENVELOPES:
                        raise LogInputError(
                            f"{self.source.name}: {self.fmt} logs cannot be read from "
                            "standard input; give the file"
                        )
                    reader = make_reader(self.fmt, self.prefix, self.clock, self.others)
                    columnar = window_reader(reader)
                if eof and not self.final and reader.fmt != "csvlog":
                    # A piece of a split file ends here, at a message boundary (for
                    # csvlog only presumed: the scan checks it and reads again if not).
                    final = True
                args = {
                    "name": self.source.name,
                    "base_offset": offset,
                    "base_line": line,
                    "final": final,
                    "all_records": self.all_records,
                }
                # The columnar reader where it reads this window exactly, else the rows.
                win = columnar(reader, buf, **args) if columnar is not None else None
                if win is None:
                    win = scan_window(reader, buf, **args)  # type: ignore[arg-type]
                if tracker is None:
                    tracker = LineTracker(reader.fmt, self.source.name, self.prefix)
                tracker.feed(buf, win.consumed, offset, line, when)
                for item in win.items:
                    if isinstance(item, ReadWarning):
                        shown = warn.take(item)
                        if shown is not None:
                            yield shown
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
                    warn.count += 1
                    loc = SourceLocation(self.source.name, offset, line)
                    excerpt = carry[:120].split(b"\n", 1)[0].decode("utf-8", "replace")
                    yield ReadWarning(
                        loc,
                        "incomplete last record not read (file still being written?)",
                        excerpt,
                    )
            if damage is not None:
                warn.count += 1
                yield _damage_warning(acc, damage, SourceLocation(self.source.name, offset, line))
            yield from warn.end(SourceLocation(self.source.name, offset, line))
        finally:
            if stream is not None:
                stream.close()
        self.stats = self._stats(
            acc,
            offset,
            line,
            warn.count,
            reader.finder.engine if reader else "",
            tracker.track if tracker is not None and tracker.enabled else None,
            _prefixes_used(reader),
        )

    def _stats(
        self,
        acc: _Acc,
        offset: int,
        line: int,
        warnings: int,
        engine: str,
        sequence: LineTrack | None = None,
        prefixes: tuple[str, ...] = (),
    ) -> SourceStats:
        stderr_like = self.fmt in ("stderr", *ENVELOPES)
        return SourceStats(
            source=self.source.name,
            format=self.fmt,
            prefix=(prefixes[0] if prefixes else self.prefix.text)
            if (self.prefix is not None and stderr_like)
            else None,
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
            warnings=warnings,
            first_time=acc.first_time,
            last_time=acc.last_time,
            truncated=acc.truncated,
            engine=engine,
            prefix_how=self.decision.how if (self.decision is not None and stderr_like) else "",
            foreign_lines=acc.foreign,
            damaged=acc.damaged,
            sequence=sequence,
            prefixes=prefixes,
        )

    def _run_envelope(self) -> Iterator[LogRecord | ReadWarning]:
        from auditor.logs.envelope import read_envelope

        assert self.decision is not None and self.prefix is not None
        acc = _Acc()
        warn = _Warnings(self.source.name)
        end = [self.start_offset, self.start_line]
        for item in read_envelope(self, self.decision, acc, end):
            if isinstance(item, ReadWarning):
                shown = warn.take(item)
                if shown is not None:
                    yield shown
                continue
            yield item
        yield from warn.end(SourceLocation(self.source.name, end[0], end[1]))
        self.stats = self._stats(acc, end[0], end[1], warn.count, "envelope")


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
    if fmt not in ("auto", *ALL_FORMATS):
        raise LogInputError(f"unknown log format {fmt!r} (use {', '.join(('auto', *ALL_FORMATS))})")
    return SourceRead(
        source,
        fmt=fmt,
        prefix=prefix,
        all_records=all_records,
        start_offset=start_offset,
        start_line=start_line,
        log_timezone=log_timezone,
    )
