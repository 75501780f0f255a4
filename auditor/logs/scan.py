"""Scan log sources on every core: what ``auditor scan`` (and reconcile) call.

Work is split into tasks: one per compressed or rotated file, and
record-aligned pieces of big plain files.  A stderr piece starts at a line
that begins a message; a jsonlog piece at a line start; a csvlog piece at a
line that starts like a row, and the piece before it checks, by quote
parity, that this was a real row boundary (if it was not, the rest of the
file is read again in one go: the result is exact, unlike pgBadger's ``-j``).
Pieces run in worker processes and return only the records they parsed;
the parent puts them back in file order and links each ERROR to its
statement across pieces and rotated files (:class:`~auditor.logs.link.Linker`).
"""

from __future__ import annotations

import copyreg
import dataclasses
import multiprocessing
import operator
import os
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from auditor.errors import LogInputError
from auditor.logs.csvlog import ROW_START
from auditor.logs.detect import Decision
from auditor.logs.link import Linker
from auditor.logs.prefix import CompiledPrefix
from auditor.logs.reader import ALL_FORMATS, FORMATS, SourceRead, SourceStats
from auditor.logs.sources import LogSource, Skipped, open_sources
from auditor.logs.stderr import PREFIX_CHANGE, StderrReader, announced_prefix
from auditor.logs.times import pick_log_timezone
from auditor.model import LogRecord, ReadWarning, SourceLocation

#: Size of a piece of a big plain file (bytes): small enough to balance two
#: workers and bound their memory, big enough that per-task costs vanish.
PIECE = 64 * 1024 * 1024
#: Pieces are smaller with ``all_records``: every record is returned to the parent.
PIECE_ALL = 8 * 1024 * 1024

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ServerLogSettings:
    """What the server says about its logs (read with ``--dsn``)."""

    log_line_prefix: str | None = None
    log_destination: str | None = None
    log_timezone: str | None = None
    lc_messages: str | None = None
    logging_collector: str | None = None
    log_directory: str | None = None
    #: Shown to superusers and pg_read_all_settings only.
    data_directory: str | None = None


def server_log_settings(dsn: str) -> ServerLogSettings:
    """``log_line_prefix`` and friends from a live server (one ConnectionFailed if unreachable)."""
    from auditor.db import connect, server_settings

    with connect(dsn, application_name="auditor-scan") as conn:
        s = server_settings(conn)
    return ServerLogSettings(
        log_line_prefix=s.get("log_line_prefix"),
        log_destination=s.get("log_destination"),
        log_timezone=s.get("log_timezone"),
        lc_messages=s.get("lc_messages"),
        logging_collector=s.get("logging_collector"),
        log_directory=s.get("log_directory"),
        data_directory=s.get("data_directory"),
    )


def _local(dsn: str) -> bool:
    """Whether a DSN reaches a server on this machine (a socket or a loopback address)."""
    from psycopg import conninfo

    try:
        params = conninfo.conninfo_to_dict(dsn)
    except Exception:
        return False
    hosts = str(params.get("host") or params.get("hostaddr") or "").split(",")
    return all(
        h == "" or h.startswith("/") or h in ("localhost", "127.0.0.1", "::1") for h in hosts
    )


def default_log_specs(dsn: str, server: ServerLogSettings | None) -> tuple[list[str], str]:
    """Where to read the server's logs when no ``--log`` is given, and a note saying so.

    The server's own log directory (``log_directory``, under ``data_directory`` when
    relative): as files when the server is on this machine and the directory can
    be read here, else over SQL (``sql:``, which needs pg_monitor or superuser).
    Without ``logging_collector`` the logs are wherever the server's standard error
    goes, which only the DBA knows: that is an error.
    """
    from auditor.db import describe_dsn

    where = describe_dsn(dsn)
    if server is None:
        server = server_log_settings(dsn)
    if (server.logging_collector or "").lower() not in ("on", "true", "1"):
        raise LogInputError(
            f"no --log given and {where} has logging_collector = "
            f"{server.logging_collector or 'unknown'}: its log goes to the server's standard "
            "error (a journal, a file of the service manager); give it with --log"
        )
    directory = server.log_directory or "log"
    if server.data_directory and not os.path.isabs(directory):
        directory = os.path.join(server.data_directory, directory)
    if _local(dsn) and os.path.isabs(directory) and os.access(directory, os.R_OK | os.X_OK):
        return [directory], f"no --log given: reading the server's log directory {directory}"
    why = "not on this machine" if not _local(dsn) else f"{directory} cannot be read here"
    return ["sql:"], (
        f"no --log given: reading the server's log directory over SQL (sql:; the server is {why})"
    )


@dataclass(frozen=True)
class _Task:
    source: LogSource
    fmt: str
    prefix: str | None
    all_records: bool
    start: int
    end: int | None  # None: to the end of the source
    last: bool
    tz_name: str | None
    start_line: int = 1
    decision: Decision | None = None
    server_prefix: str | None = None


@dataclass
class _TaskResult:
    items: list[LogRecord | ReadWarning]
    stats: SourceStats


def _run_task(task: _Task) -> _TaskResult:
    read = SourceRead(
        task.source,
        fmt=task.fmt,
        prefix=task.prefix,
        all_records=task.all_records,
        start_offset=task.start,
        start_line=task.start_line,
        end_offset=task.end,
        log_timezone=task.tz_name,
        final=task.last,
        link=False,
        decision=task.decision,
        server_prefix=task.server_prefix,
    )
    items = list(read)
    assert read.stats is not None
    return _TaskResult(items, read.stats)


def _split_points(
    source: LogSource,
    fmt: str,
    prefix: CompiledPrefix | None,
    piece: int,
    others: tuple[CompiledPrefix, ...] = (),
) -> list[int]:
    """Record-aligned offsets that cut a plain file into pieces of about ``piece`` bytes."""
    size = source.size or 0
    points = [0]
    if size < 2 * piece:
        return points
    assert source.path is not None
    reader = StderrReader(prefix, others=others) if (fmt == "stderr" and prefix) else None
    with open(source.path, "rb") as fh:
        target = piece
        while target < size - piece // 2:
            fh.seek(target)
            block = fh.read(1024 * 1024)
            found = _first_boundary(block, fmt, reader)
            if found is None:
                target += piece
                continue
            point = target + found
            if point > points[-1]:
                points.append(point)
            target = point + piece
    return points


def _with_announced(source: LogSource, decision: Decision) -> Decision:
    """``decision`` with every prefix a ``log_line_prefix`` change line of the file
    announces (one pass of a byte search over a plain file, before it is split)."""
    assert source.path is not None and decision.prefix is not None
    known = {decision.prefix.text, *(p.text for p in decision.others)}
    found: list[CompiledPrefix] = []
    keep = len(PREFIX_CHANGE) + 4096
    with open(source.path, "rb") as fh:
        tail = b""
        while chunk := fh.read(8 * 1024 * 1024):
            buf = tail + chunk
            pos = buf.find(PREFIX_CHANGE)
            while pos >= 0:
                le = buf.find(b"\n", pos)
                if le < 0:
                    break
                ls = buf.rfind(b"\n", 0, pos) + 1
                new = announced_prefix(buf[ls:le], decision.prefix.spaces)
                if new is not None and new.text not in known:
                    known.add(new.text)
                    found.append(new)
                pos = buf.find(PREFIX_CHANGE, le)
            tail = buf[-keep:]
    if not found:
        return decision
    return dataclasses.replace(decision, others=(*decision.others, *found))


def _first_boundary(block: bytes, fmt: str, reader: StderrReader | None) -> int | None:
    nl = block.find(b"\n")
    while 0 <= nl < len(block) - 1:
        ls = nl + 1
        if fmt == "jsonlog":
            return ls
        if fmt == "csvlog" and ROW_START.match(block, ls):
            return ls
        if reader is not None and reader.is_first_line(block, ls):
            return ls
        nl = block.find(b"\n", ls)
    return None


def _shift(item: LogRecord | ReadWarning, lines: int) -> LogRecord | ReadWarning:
    """Move an item's line number by ``lines`` (pieces count lines from 1).

    The item was just unpickled from a worker and nobody else holds it yet, so
    its frozen ``source`` is set in place: ``dataclasses.replace`` on every
    record of every piece would cost more than reading them.
    """
    if lines:
        loc = item.source
        object.__setattr__(item, "source", SourceLocation(loc.file, loc.offset, loc.line + lines))
    return item


def _merge_cause(causes: dict[str, ReadWarning], item: ReadWarning) -> int:
    """Add a piece's warning for ``item.cause`` to the file's; 1 if the file had one."""
    assert item.cause is not None
    known = causes.get(item.cause)
    if known is None:
        causes[item.cause] = item
        return 0
    causes[item.cause] = dataclasses.replace(known, count=known.count + item.count)
    return 1


_FIELDS = tuple(f.name for f in dataclasses.fields(LogRecord))
_GET_FIELDS = operator.attrgetter(*_FIELDS)


def _reduce_record(rec: LogRecord) -> tuple[type[LogRecord], tuple[Any, ...]]:
    """Pickle a record as its constructor arguments (faster than the slots default)."""
    return LogRecord, _GET_FIELDS(rec)


copyreg.pickle(LogRecord, _reduce_record)


def _merge_stats(parts: list[SourceStats], start_offset: int, start_line: int) -> SourceStats:
    first, last = parts[0], parts[-1]
    sequence = first.sequence
    shift = first.lines
    for p in parts[1:]:
        if sequence is not None and p.sequence is not None:
            sequence = sequence.then(p.sequence.shifted(shift), "piece")
        shift += p.lines
    return dataclasses.replace(
        last,
        start_offset=start_offset,
        end_line=start_line + sum(p.lines for p in parts),
        lines=sum(p.lines for p in parts),
        records=sum(p.records for p in parts),
        ddl_statements=sum(p.ddl_statements for p in parts),
        warnings=sum(p.warnings for p in parts),
        first_time=next((p.first_time for p in parts if p.first_time), None),
        last_time=next((p.last_time for p in reversed(parts) if p.last_time), None),
        truncated=last.truncated,
        damaged=any(p.damaged for p in parts),
        foreign_lines=sum(p.foreign_lines for p in parts),
        prefix=first.prefix,
        format=first.format,
        sequence=sequence,
        prefixes=tuple(dict.fromkeys(t for p in parts for t in p.prefixes)),
    )


class ScanStream:
    """Records and warnings of every source, in order; ``sources`` once exhausted."""

    def __init__(self, it: Iterator[LogRecord | ReadWarning], owner: _Scan) -> None:
        self._it = it
        self._owner = owner

    def __iter__(self) -> ScanStream:
        return self

    def __next__(self) -> LogRecord | ReadWarning:
        return next(self._it)

    @property
    def sources(self) -> list[SourceStats]:
        return self._owner.stats

    @property
    def server(self) -> ServerLogSettings | None:
        return self._owner.server

    @property
    def log_timezone(self) -> str | None:
        """The zone the times were placed in (None: abbreviations alone)."""
        return self._owner.tz_name

    @property
    def notes(self) -> list[str]:
        """What the reader of the output must know about the times (which zone, why)."""
        return self._owner.notes

    @property
    def skipped(self) -> list[Skipped]:
        """Files not read, and why (a directory's PgBouncer log, a file that failed)."""
        return self._owner.skipped


@dataclass
class _Scan:
    sources: list[LogSource]
    fmt: str
    prefix: str | None
    all_records: bool
    jobs: int
    tz_name: str | None
    progress: Progress | None
    server: ServerLogSettings | None = None
    starts: Mapping[str, tuple[int, int]] = field(default_factory=dict)
    stats: list[SourceStats] = field(default_factory=list)
    #: The server's ``log_line_prefix`` now (no prefix given): tried first, not forced.
    server_prefix: str | None = None
    notes: list[str] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def resolve(self, source: LogSource, start: int = 0, line: int = 1) -> Decision:
        """Format and prefix of a source, decided on a sample of it (the whole file
        where the head is not enough)."""
        probe = SourceRead(
            source,
            fmt=self.fmt,
            prefix=self.prefix,
            link=False,
            start_offset=start,
            start_line=line,
            server_prefix=self.server_prefix,
        )
        return probe.decide()

    def tasks(self) -> list[list[_Task]]:
        out: list[list[_Task]] = []
        piece = PIECE_ALL if self.all_records else PIECE
        failed: list[LogInputError] = []
        for source in self.sources:
            if source.kind == "stdin":
                out.append(
                    [
                        _Task(
                            source,
                            self.fmt,
                            self.prefix,
                            self.all_records,
                            0,
                            None,
                            True,
                            self.tz_name,
                            server_prefix=self.server_prefix,
                        )
                    ]
                )
                continue
            offset, line = self.starts.get(source.name, (0, 1))
            try:
                decision = self.resolve(source, offset, line)
            except (LogInputError, OSError) as exc:
                # One file that cannot be read (another prefix, unreadable) stops
                # nothing else: it is reported, the others are read.
                reason = _reason(source.name, exc)
                failed.append(exc if isinstance(exc, LogInputError) else LogInputError(reason))
                self.skipped.append(Skipped(source.name, reason, "error", source.explicit))
                continue
            fmt, prefix = decision.fmt, decision.prefix
            ptext = prefix.text if prefix is not None else None
            if offset:  # an incremental run resumes here, in one piece
                task = _Task(
                    source,
                    fmt,
                    ptext,
                    self.all_records,
                    offset,
                    None,
                    True,
                    self.tz_name,
                    line,
                    decision,
                )
                out.append([task])
                continue
            points = [0]
            if source.seekable and self.jobs > 1 and fmt in FORMATS:
                if fmt == "stderr" and prefix is not None and (source.size or 0) >= 2 * piece:
                    # Each piece is read on its own: every prefix announced anywhere
                    # in the file must be known to all of them.
                    decision = _with_announced(source, decision)
                points = _split_points(source, fmt, prefix, piece, decision.others)
            group = []
            for i, start in enumerate(points):
                end = points[i + 1] if i + 1 < len(points) else None
                group.append(
                    _Task(
                        source,
                        fmt,
                        ptext,
                        self.all_records,
                        start,
                        end,
                        end is None,
                        self.tz_name,
                        decision=decision,
                    )
                )
            out.append(group)
        if failed and not out and not any(s.kind != "error" for s in self.skipped):
            raise failed[0]  # nothing could be read: the one reason is the error
        return out

    def run(self) -> Iterator[LogRecord | ReadWarning]:
        groups = self.tasks()
        total = sum(s.size or 0 for s in self.sources)
        done = 0
        linker = Linker(all_records=self.all_records)
        flat = [t for g in groups for t in g]
        pool: ProcessPoolExecutor | None = None
        if self.jobs > 1 and sum(1 for t in flat if t.source.kind == "file") > 1:
            pool = ProcessPoolExecutor(
                max_workers=self.jobs, mp_context=multiprocessing.get_context("fork")
            )
        try:
            futures: dict[int, Future[_TaskResult]] = {}
            ahead = max(2, self.jobs * 2)
            order = [(gi, ti) for gi, g in enumerate(groups) for ti in range(len(g))]
            submitted = 0

            def submit_more(upto: int) -> None:
                nonlocal submitted
                while pool is not None and submitted < min(upto, len(order)):
                    if submitted < index:  # a piece of a file that failed: not needed
                        submitted += 1
                        continue
                    gi, ti = order[submitted]
                    task = groups[gi][ti]
                    if task.source.kind == "file":
                        futures[submitted] = pool.submit(_run_task, task)
                    submitted += 1

            index = 0
            for group in groups:
                parts: list[SourceStats] = []
                causes: dict[str, ReadWarning] = {}
                dupes = 0
                expected = group[0].start
                redo_from: int | None = None
                failed = False
                ti = 0
                for ti, task in enumerate(group):
                    submit_more(index + ahead)
                    fut = futures.pop(index, None)
                    index += 1
                    if redo_from is not None:
                        if fut is not None:
                            fut.cancel()
                        continue
                    try:
                        result = fut.result() if fut is not None else _run_task(task)
                    except (LogInputError, OSError) as exc:
                        self.skipped.append(
                            Skipped(
                                task.source.name,
                                _reason(task.source.name, exc),
                                "error",
                                task.source.explicit,
                            )
                        )
                        redo_from = None
                        failed = True
                        break
                    if result.stats.start_offset != expected and fut is not None:
                        # The previous piece did not end where this one starts (a
                        # csv split inside a quoted field): read the rest in one go.
                        redo_from = expected
                        continue
                    line_shift = sum(p.lines for p in parts)
                    for item in result.items:
                        item = _shift(item, line_shift)
                        if isinstance(item, ReadWarning) and item.cause is not None:
                            dupes += _merge_cause(causes, item)
                            continue
                        out = linker.feed(item)
                        if out is not None:
                            yield out
                    parts.append(result.stats)
                    expected = result.stats.end_offset
                    done += (
                        (result.stats.end_offset - result.stats.start_offset)
                        if task.source.compression is None
                        else 0
                    )
                    if self.progress is not None:
                        self.progress(min(done, total), total)
                    if (
                        task.end is not None
                        and result.stats.end_offset != task.end
                        and ti + 1 < len(group)
                    ):
                        redo_from = result.stats.end_offset
                if failed:
                    for _ in range(ti + 1, len(group)):  # the rest of that file
                        fut = futures.pop(index, None)
                        index += 1
                        if fut is not None:
                            fut.cancel()
                    continue
                if redo_from is not None:
                    tail = _Task(
                        group[0].source,
                        group[0].fmt,
                        group[0].prefix,
                        self.all_records,
                        redo_from,
                        None,
                        True,
                        self.tz_name,
                        decision=group[0].decision,
                    )
                    result = _run_task(tail)
                    line_shift = sum(p.lines for p in parts)
                    for item in result.items:
                        item = _shift(item, line_shift)
                        if isinstance(item, ReadWarning) and item.cause is not None:
                            dupes += _merge_cause(causes, item)
                            continue
                        out = linker.feed(item)
                        if out is not None:
                            yield out
                    parts.append(result.stats)
                # One warning per file and cause, even when pieces read the file.
                yield from causes.values()
                merged = _merge_stats(parts, group[0].start, group[0].start_line)
                self.stats.append(dataclasses.replace(merged, warnings=merged.warnings - dupes))
                note = prefix_note(merged, group[0].decision, self.server_prefix)
                if note is not None:
                    self.notes.append(note)
                if group[0].source.compression is not None or group[0].source.kind != "file":
                    done += group[0].source.size or 0
                    if self.progress is not None:
                        self.progress(min(done, total), total)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)


def prefix_note(
    stats: SourceStats, decision: Decision | None, server_prefix: str | None
) -> str | None:
    """What a DBA must know when a file was not read with the server's one prefix:
    ``log_line_prefix`` was changed while it was written, or before (an older file)."""
    used = stats.prefixes or ((stats.prefix,) if stats.prefix else ())
    now = server_prefix or (decision.server if decision is not None else None)
    if len(used) > 1:
        texts = " and ".join(repr(p) for p in used)
        tail = f"; the server now uses {now!r}" if now else ""
        return (
            f"{stats.source}: read with log_line_prefix {texts} (its lines show each: "
            f"log_line_prefix was changed while it was written){tail}"
        )
    if used and now and used[0] != now:
        return (
            f"{stats.source}: read with log_line_prefix {used[0]!r}, the server now uses "
            f"{now!r} (the file was written before log_line_prefix was changed)"
        )
    return None


def _reason(name: str, exc: BaseException) -> str:
    """One line for a source that could not be read, naming it."""
    text = str(exc)
    if isinstance(exc, OSError):
        text = f"{name}: cannot read ({exc.strerror or exc})"
    return text if name in text else f"{name}: {text}"


def scan(
    specs: Sequence[str],
    *,
    dsn: str | None = None,
    fmt: str = "auto",
    prefix: str | None = None,
    all_records: bool = False,
    jobs: int | None = None,
    progress: Progress | None = None,
    stdin: Any = None,
    starts: Mapping[str, tuple[int, int]] | None = None,
    log_timezone: str | None = None,
) -> ScanStream:
    """Read every log source: the audit-relevant records (all with ``all_records``).

    ``dsn`` (optional) reads ``log_line_prefix``, ``log_timezone`` and the log
    directory (for ``sql:`` sources) from the server; an explicit ``prefix``
    or ``log_timezone`` wins (a bad ``log_timezone`` is a ConfigError).  ``jobs``
    worker processes (default: the number of cores, at most 2 tasks per core in
    flight) share the pieces.  ``starts`` maps a source's
    name to the ``(end_offset, end_line)`` of a previous run's
    :class:`~auditor.logs.reader.SourceStats`: reading resumes there (check
    ``inode`` and ``head_hash`` first: a rotated file starts again at 0).
    """
    if fmt not in ("auto", *ALL_FORMATS):
        raise LogInputError(f"unknown log format {fmt!r} (use {', '.join(('auto', *ALL_FORMATS))})")
    server = server_log_settings(dsn) if dsn else None
    zone, notes = pick_log_timezone(log_timezone, server.log_timezone if server else None)
    sources = open_sources(specs, dsn=dsn, fmt=fmt, stdin=stdin, log_timezone=zone)
    return scan_sources(
        sources,
        fmt=fmt,
        prefix=prefix,
        all_records=all_records,
        jobs=jobs,
        progress=progress,
        starts=starts,
        server=server,
        log_timezone=zone,
        notes=notes,
        skipped=sources.skipped,
    )


def scan_sources(
    sources: Sequence[LogSource],
    *,
    fmt: str = "auto",
    prefix: str | None = None,
    all_records: bool = False,
    jobs: int | None = None,
    progress: Progress | None = None,
    starts: Mapping[str, tuple[int, int]] | None = None,
    server: ServerLogSettings | None = None,
    log_timezone: str | None = None,
    notes: Sequence[str] = (),
    skipped: Sequence[Skipped] = (),
) -> ScanStream:
    """:func:`scan` for sources already opened (reconcile opens them one spec at a time,
    so that one missing file does not stop the others).

    ``log_timezone`` is the zone chosen by :func:`~auditor.logs.times.pick_log_timezone`
    (``notes`` its explanations); the server's is not looked at here.
    """
    server_prefix = server.log_line_prefix if (prefix is None and server is not None) else None
    workers = jobs if jobs is not None else min(2, os.cpu_count() or 1)
    state = _Scan(
        sources=list(sources),
        fmt=fmt,
        prefix=prefix,
        all_records=all_records,
        jobs=max(1, workers),
        tz_name=log_timezone,
        progress=progress,
        server=server,
        starts=dict(starts or {}),
        notes=list(notes),
        skipped=list(skipped),
        server_prefix=server_prefix,
    )
    return ScanStream(state.run(), state)
