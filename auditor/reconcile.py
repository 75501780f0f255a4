"""``auditor reconcile``: read both channels, pair them, explain, write the reports.

This module does the I/O around :mod:`auditor.matcher`: it reads the logs
(one ``--log`` spec at a time, so that one missing or unreadable file becomes
a LOG_GAP and a warning instead of stopping the run), reads the audit rows of
every database where the auditor is installed, asks the server for the commit
status of every marker's transaction and for the live health of both channels
(CONFIG_DRIFT), applies the window, the incremental state and the policy
(severity overrides, allow-lists), and writes findings.json, findings.csv and
report.html.

Incremental runs (``--state FILE``): per log file the state keeps its inode,
a hash of its first bytes (decompressed, so a file rotated and compressed
since is recognised and not read twice) and the offset of the last complete
record; per run the end of the window, the audit row ids already judged in
the overlap before it, and the evidence carried over (statements and rows too
close to the end of the window to be judged yet).
"""

from __future__ import annotations

import bisect
import contextlib
import gc
import hashlib
import itertools
import json
import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import TYPE_CHECKING, Any

from auditor import __version__
from auditor.capture import VouchBreach, Vouched
from auditor.config import Config
from auditor.encoding import NOT_UTF8
from auditor.errors import AuditorError, ConfigError, LogInputError, StateError
from auditor.findings import DEFAULT_SEVERITY, Policy, make_finding, parse_severity, sort_key
from auditor.installs import AuditedDatabase, InstallRow, split_installs
from auditor.logs.times import pick_log_timezone, wall_clock_zone
from auditor.logtrust import PriorLines, Verdict
from auditor.matcher import Gap, MatchContext, MatchResult, match
from auditor.model import (
    AuditEvent,
    DatabaseSummary,
    Finding,
    FindingClass,
    FindingsDocument,
    LogRecord,
    LogSourceSummary,
    MessageKind,
    Protocol,
    ReadWarning,
    Severity,
    SourceLocation,
    Summary,
)
from auditor.restore import Installed, restore_traces, restored_auditors
from auditor.tamper import AuditorObjects

if TYPE_CHECKING:
    from auditor.logs.scan import Progress, ServerLogSettings

C = FindingClass

#: Evidence newer than (window end - CARRY) that has no counterpart yet is carried.
CARRY = timedelta(minutes=2)
#: Audit rows of the last OVERLAP before the previous window end are read again.
OVERLAP = timedelta(hours=1)
STATE_FORMAT = "auditor-reconcile-state"
HEAD_BYTES = 4096


# -- time ----------------------------------------------------------------------------


def parse_when(text: str | None, where: str, tz: tzinfo | None = None) -> datetime | None:
    """An ISO-8601 date or time; one without an offset is a wall-clock time of ``tz``
    (the log's zone, when known), else of this machine's zone.

    >>> parse_when("2026-11-25T00:00:00+00:00", "--since").isoformat()
    '2026-11-25T00:00:00+00:00'
    >>> from zoneinfo import ZoneInfo
    >>> parse_when("2026-11-25", "--since", ZoneInfo("America/New_York")).isoformat()
    '2026-11-25T00:00:00-05:00'
    >>> parse_when(None, "--since") is None
    True
    """
    if text is None or str(text).strip() == "":
        return None
    raw = str(text).strip()
    try:
        value = datetime.fromisoformat(raw.replace(" ", "T") if "T" not in raw else raw)
    except ValueError:
        raise ConfigError(
            f"{where}: {raw!r} is not an ISO-8601 time (e.g. 2026-11-25 or 2026-11-25T06:00+01:00)"
        ) from None
    try:
        if value.tzinfo is None:
            value = value.replace(tzinfo=tz) if tz else value.astimezone()
        value.astimezone(UTC)
    except (ValueError, OverflowError):  # 0001-01-01 or 9999-12-31 in a zone
        value = _EARLIEST if value.year < 5000 else _LATEST
    # The first and last days of the calendar stand for "no bound": kept a day inside,
    # so that the window's arithmetic (margins of minutes and hours) stays on it.
    return max(_EARLIEST, min(_LATEST, value))


_EARLIEST = datetime(1, 1, 3, tzinfo=UTC)
_LATEST = datetime(9999, 12, 29, tzinfo=UTC)


def check_state_path(path: Path) -> None:
    """The state file can be written where it is named (checked before anything is read:
    a night's run that fails at its very end has read everything for nothing)."""
    parent = path.parent if str(path.parent) else Path(".")
    if path.exists() and path.is_dir():
        raise ConfigError(f"--state {path}: is a directory; name a file")
    if not parent.is_dir():
        raise ConfigError(f"--state {path}: directory {parent} does not exist; create it first")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(f"--state {path}: directory {parent} is not writable")


def check_window(since: datetime | None, until: datetime | None) -> None:
    """A window that holds nothing is a usage error, not an empty report.

    >>> a, b = parse_when("2026-11-27T00:00Z", "--since"), parse_when("2026-11-26T00:00Z", "")
    >>> check_window(a, b)  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    auditor.errors.ConfigError: --since 2026-11-27T00:00:00+00:00 is not before ...empty
    """
    if since is not None and until is not None and since >= until:
        raise ConfigError(
            f"--since {since.isoformat()} is not before --until {until.isoformat()}: "
            "the window is empty"
        )


# -- state -----------------------------------------------------------------------------


def _record_to_json(rec: LogRecord) -> dict[str, Any]:
    out = {}
    for f in fields(LogRecord):
        v = getattr(rec, f.name)
        if isinstance(v, datetime):
            v = v.isoformat()
        elif isinstance(v, SourceLocation):
            v = asdict(v)
        elif isinstance(v, (MessageKind, Protocol)):
            v = v.value
        elif isinstance(v, tuple):
            v = [list(p) for p in v]
        out[f.name] = v
    return out


def _record_from_json(data: dict[str, Any]) -> LogRecord:
    kw: dict[str, Any] = {}
    for f in fields(LogRecord):
        if f.name not in data:
            continue
        v = data[f.name]
        if f.name in ("source", "failed_statement") and v is not None:
            v = SourceLocation(**v)
        elif f.name == "time" and v is not None:
            v = datetime.fromisoformat(v)
        elif f.name == "kind":
            v = MessageKind(v)
        elif f.name == "protocol" and v is not None:
            v = Protocol(v)
        elif f.name == "parameters":
            v = tuple(tuple(p) for p in v or ())
        kw[f.name] = v
    return LogRecord(**kw)


@dataclass
class State:
    """What an incremental run remembers (JSON file)."""

    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    until: datetime | None = None
    #: database -> {audit row id: statement time (ISO)} of rows judged in the overlap.
    judged: dict[str, dict[str, str]] = field(default_factory=dict)
    carried_records: list[LogRecord] = field(default_factory=list)
    carried_events: list[tuple[str, int]] = field(default_factory=list)
    #: The catalog channel's last snapshots and late DDL records (auditor.catalog.judge).
    catalog: dict[str, Any] = field(default_factory=dict)
    #: database -> what the run vouched for (hashes of its rows, see capture.vouch).
    vouched: dict[str, Vouched] = field(default_factory=dict)
    #: format -> each session's line number where the run stopped reading (logtrust).
    lines: dict[str, PriorLines] = field(default_factory=dict)

    @classmethod
    def load(cls, path: Path) -> State:
        if not path.exists():
            return cls()
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise StateError(f"{path}: cannot read the state file ({exc})") from None
        if not isinstance(data, dict) or data.get("format") != STATE_FORMAT:
            raise StateError(f"{path}: not an auditor reconcile state file")
        try:
            return cls(
                files=dict(data.get("files") or {}),
                until=datetime.fromisoformat(data["until"]) if data.get("until") else None,
                judged={
                    str(k): {str(i): str(t) for i, t in v.items()}
                    for k, v in (data.get("judged") or {}).items()
                },
                carried_records=[_record_from_json(r) for r in data.get("carried_records") or []],
                carried_events=[(str(d), int(i)) for d, i in data.get("carried_events") or []],
                catalog=dict(data.get("catalog") or {}),
                vouched={
                    str(k): Vouched.from_json(v) for k, v in (data.get("vouched") or {}).items()
                },
                lines={
                    str(k): PriorLines.from_json(str(k), v)
                    for k, v in (data.get("lines") or {}).items()
                },
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise StateError(f"{path}: damaged state file ({exc})") from None

    def save(self, path: Path) -> None:
        data = {
            "format": STATE_FORMAT,
            "version": 1,
            "auditor_version": __version__,
            "until": self.until.isoformat() if self.until else None,
            "files": self.files,
            "judged": self.judged,
            "carried_records": [_record_to_json(r) for r in self.carried_records],
            "carried_events": [list(e) for e in self.carried_events],
            "catalog": self.catalog,
            "vouched": {k: v.to_json() for k, v in sorted(self.vouched.items())},
            "lines": {k: v.to_json() for k, v in sorted(self.lines.items())},
        }
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(data, indent=1, sort_keys=True), encoding="utf-8")
        os.replace(tmp, path)


def _head(source: Any, length: int) -> bytes:
    """The first ``length`` decompressed bytes of a log source."""
    stream = source.open(0)
    try:
        out = b""
        while len(out) < length:
            chunk = stream.read(length - len(out))
            if not chunk:
                break
            out += chunk
        return out
    finally:
        stream.close()


# -- log side -----------------------------------------------------------------------------


@dataclass
class LogSide:
    records: list[LogRecord] = field(default_factory=list)
    summaries: list[LogSourceSummary] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    coverage: list[tuple[datetime, datetime]] = field(default_factory=list)
    #: Records read past the window's end (incremental runs keep them for the next run).
    later: list[LogRecord] = field(default_factory=list)
    #: What the report must say about the log times (their zone, records without one).
    notes: list[str] = field(default_factory=list)
    files: dict[str, dict[str, Any]] = field(default_factory=dict)
    usable: int = 0
    session_ids: bool = True
    #: What each file read says about itself (line numbers: auditor.logtrust).
    sources: list[Any] = field(default_factory=list)
    #: Files with times that could not be placed exactly (no time-based tamper check).
    inexact: set[str] = field(default_factory=set)
    #: Files read on from where the previous run (--state) stopped.
    resumed: set[str] = field(default_factory=set)


def _warning_gaps(
    name: str,
    warnings: list[ReadWarning],
    times: list[tuple[int, datetime]],
    before: datetime | None = None,
) -> list[Gap]:
    """Consecutive unreadable lines of one file become one gap.

    Its time span runs from the last readable record before the lines to the
    first one after them (``times``: (offset, time) of the file's records, in
    order), so that only audit rows in that stretch are held against the gap.
    Lines at the head of a file start after ``before``, the last record of the
    file read before it (when there is one): they do not swallow its stretch.
    """
    gaps: list[Gap] = []
    run: list[ReadWarning] = []
    offsets = [o for o, _ in times]

    def flush() -> None:
        if not run:
            return
        first, last = run[0], run[-1]
        lines = (
            f"line {first.source.line}"
            if len(run) == 1
            else f"lines {first.source.line}-{last.source.line} ({len(run)} warnings)"
        )
        i = bisect.bisect_left(offsets, first.source.offset)
        j = bisect.bisect_right(offsets, last.source.offset)
        start = times[i - 1][1] if i > 0 else before
        end = times[j][1] if j < len(times) else None
        gaps.append(
            Gap(
                start,
                end,
                f"{name}: {lines} could not be read: {first.message}.",
                name,
                first.source.line,
            )
        )

    for w in warnings:
        if run and w.source.line - run[-1].source.line > 5:
            flush()
            run = []
        run.append(w)
    flush()
    return gaps


def log_settings(dsn: str | None) -> ServerLogSettings | None:
    """The server's log settings, or None without a server (or when it cannot be asked:
    the audit side reports that)."""
    from auditor.logs.scan import server_log_settings

    if not dsn:
        return None
    with contextlib.suppress(AuditorError):
        return server_log_settings(dsn)
    return None


def read_logs(
    specs: Sequence[str],
    *,
    dsn: str | None,
    fmt: str,
    prefix: str | None,
    state: State | None,
    server: ServerLogSettings | None = None,
    log_timezone: str | None = None,
    progress: Progress | None = None,
) -> LogSide:
    """Read every ``--log`` spec; unreadable ones become gaps, never a stop.

    Times are placed in ``log_timezone`` (chosen by ``pick_log_timezone``);
    ``progress(done, total)`` is told the bytes read (the CLI's progress bar)."""
    from auditor.logs.scan import scan_sources
    from auditor.logs.sources import (
        LogSource,
        Skipped,
        SourceList,
        drop_named_twice,
        open_sources,
    )

    side = LogSide()
    sources: list[LogSource] = []
    skipped: list[Skipped] = []
    for spec in specs:
        try:
            opened = open_sources([spec], dsn=dsn, fmt=fmt, log_timezone=log_timezone)
            sources.extend(opened)
            skipped.extend(opened.skipped)
        except LogInputError as exc:
            side.warnings.append(str(exc))
            side.gaps.append(Gap(None, None, f"{exc}.", spec, None))
            side.summaries.append(LogSourceSummary(spec, "unreadable", 0, 0, (str(exc),)))
    if len(specs) > 1:  # each spec was opened alone: one may name another's files again
        every = SourceList(sources, skipped)
        drop_named_twice(every, log_timezone)
        sources, skipped = list(every), every.skipped
    starts: dict[str, tuple[int, int]] = {}
    known = dict(state.files) if state else {}
    identities: dict[str, dict[str, Any]] = {}
    covered: set[str] = set()
    for src in sources:
        try:
            head = _head(src, HEAD_BYTES) if src.kind != "stdin" else b""
        except OSError as exc:
            head = b""
            side.warnings.append(f"{src.name}: cannot read ({exc})")
        ident = {"name": src.name, "inode": src.inode, "size": src.size}
        identities[src.name] = ident
        matching = [
            (key, old)
            for key, old in known.items()
            if (n := int(old.get("head_len", 0)))
            and hashlib.sha256(head[:n]).hexdigest() == old.get("head")
        ]
        # One log's content under several names (a file, then its rotated and compressed
        # copy): the state keeps an entry per name, and the furthest read is where to go on.
        if not matching:
            continue
        key, old = max(matching, key=lambda kv: int(kv[1].get("offset", 0)))
        n = int(old.get("head_len", 0))
        same_file = old.get("inode") == src.inode and old.get("name") == src.name
        if same_file and (src.size or 0) < int(old.get("offset", 0)) and src.compression is None:
            # The same file (inode, name, first bytes) lost what was read of it: not
            # a rotation (a reused name starts with new lines), a cut (SPEC: LOG_TAMPERED).
            side.gaps.append(
                Gap(
                    None,
                    None,
                    f"{src.name} is shorter than when it was last read "
                    f"({src.size} < {old['offset']} bytes) and starts with the same "
                    f"{n} bytes: it was cut or rewritten in place; it is read again from "
                    "the start.",
                    src.name,
                    None,
                    cls=C.LOG_TAMPERED,
                )
            )
        else:
            starts[src.name] = (int(old["offset"]), int(old.get("line", 1)))
        known.pop(key)
        covered.update(k for k, _ in matching)
    for key, old in known.items():
        if key in covered:
            continue  # an earlier name of content read on under another name now
        name = old.get("name", key)
        if not os.path.exists(name) and int(old.get("size") or 0) > int(old.get("offset") or 0):
            side.gaps.append(
                Gap(
                    None,
                    None,
                    f"{name} disappeared before it was read to its end "
                    f"({int(old['size']) - int(old['offset'])} bytes unread).",
                    name,
                    None,
                )
            )
    side.resumed = {name for name, (offset, _line) in starts.items() if offset > 0}
    if not sources:
        _skipped_files(side, skipped)
        return side
    stream = scan_sources(
        sources,
        fmt=fmt,
        prefix=prefix,
        starts=starts,
        server=server,
        log_timezone=log_timezone,
        progress=progress,
        skipped=skipped,
    )
    warnings_by_file: dict[str, list[ReadWarning]] = {}
    from auditor.pairing import time_span

    untimed = 0
    span_of: dict[str, timedelta] = {}  # how much later than printed a file's lines may be
    res_of: dict[str, int] = {}
    try:
        for item in stream:
            if isinstance(item, ReadWarning):
                warnings_by_file.setdefault(item.source.file, []).append(item)
                continue
            untimed += item.time is None
            side.records.append(item)
            # One precision per prefix: a file read with two (log_line_prefix changed
            # while it was written) may print %m, then %t: the coarsest counts.
            seen_res = res_of.get(item.source.file)
            if seen_res is None or item.time_resolution_us > seen_res:
                res_of[item.source.file] = item.time_resolution_us
                span_of[item.source.file] = time_span(item)
    except LogInputError as exc:
        side.warnings.append(str(exc))
        side.gaps.append(Gap(None, None, f"{exc}.", None, None))
    previous_end: datetime | None = None  # the last record of the file read before
    side.sources = list(stream.sources)
    for st in stream.sources:
        ws = warnings_by_file.get(st.source, [])
        if any(w.cause is not None for w in ws):
            side.inexact.add(st.source)
        side.summaries.append(
            LogSourceSummary(
                st.source, st.format, st.records, st.ddl_statements, tuple(str(w) for w in ws[:50])
            )
        )
        side.warnings.extend(str(w) for w in ws)
        # A time that could not be placed exactly is about records that were read:
        # not a stretch of unreadable log.
        unread = [
            w for w in ws if w.cause is None and w.message != NOT_UTF8
        ]  # NOT_UTF8: read in full
        if unread:
            times = sorted(
                (r.source.offset, r.time)
                for r in side.records
                if r.source.file == st.source and r.time is not None
            )
            side.gaps.extend(_warning_gaps(st.source, unread, times, previous_end))
        if st.last_time is not None:
            previous_end = st.last_time
        if st.records:
            side.usable += 1
        if st.prefix is not None and any("%c" not in p for p in (st.prefixes or (st.prefix,))):
            side.session_ids = False
        first, last = st.first_time, st.last_time
        if first and last:
            # Its last line may have been written up to its precision after its printed time.
            side.coverage.append((first, last + span_of.get(st.source, timedelta(0))))
        found = next((s for s in sources if s.name == st.source), None)
        if found is not None and found.kind != "stdin":
            src = found
            head_len = min(HEAD_BYTES, st.end_offset)
            try:
                head = _head(src, head_len)
            except OSError:
                continue
            side.files[st.source] = {
                **identities.get(st.source, {}),
                "head": hashlib.sha256(head).hexdigest(),
                "head_len": head_len,
                "offset": st.end_offset,
                "line": st.end_line,
                "last_time": last.isoformat() if last else None,
            }
    side.notes.extend(stream.notes)
    _skipped_files(side, stream.skipped)
    if untimed:
        side.notes.append(
            f"{untimed} log record(s) have no time that could be placed (see the warnings): "
            "they are paired by session, transaction and text alone, and no window or "
            "coverage can hold them."
        )
    return side


def _skipped_files(side: LogSide, skipped: Sequence[Any]) -> None:
    """Files left out: one that could not be read is a gap (it may hold the window's
    statements); one that is no server log, or the same log in another format, is a
    note (a PgBouncer log named with --log is also a warning)."""
    for skip in skipped:
        if skip.kind == "error":
            side.warnings.append(skip.reason)
            side.gaps.append(Gap(None, None, f"{skip.reason}.", skip.name, None))
            side.summaries.append(LogSourceSummary(skip.name, "unreadable", 0, 0, (skip.reason,)))
        else:
            if skip.explicit:
                side.warnings.append(skip.reason)
            side.notes.append(f"not read: {skip.reason}")
            side.summaries.append(LogSourceSummary(skip.name, "skipped", 0, 0, (skip.reason,)))


def _coverage_gaps(
    side: LogSide, since: datetime | None, events: Sequence[AuditEvent]
) -> list[Gap]:
    """Stretches with audit rows but no log coverage, and a window start before any log."""
    if not side.coverage:
        if events:
            first = min(e.statement_time for e in events)
            last = max(e.statement_time for e in events)
            return [Gap(first, last, "No readable log covers the window.", None, None)]
        return []
    spans = sorted(side.coverage)
    merged: list[list[datetime]] = []
    for a, b in spans:
        if merged and a <= merged[-1][1] + timedelta(minutes=1):
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    gaps: list[Gap] = []
    if since is not None and merged[0][0] > since + timedelta(minutes=1):
        gaps.append(
            Gap(
                since,
                merged[0][0],
                f"The window starts at {since.isoformat()} but the first log "
                f"record read is from {merged[0][0].isoformat()}.",
                None,
                None,
            )
        )
    # Before the first line: a statement's line is printed after its statement time
    # (a long string is parsed first), so a row a little earlier may still be logged here.
    slack = timedelta(seconds=5)
    before = [e.statement_time for e in events if e.statement_time < merged[0][0] - slack]
    if before and not gaps:
        gaps.append(
            Gap(
                min(before),
                merged[0][0],
                f"Audit rows exist from {min(before).isoformat()}, but the first log record "
                f"read is from {merged[0][0].isoformat()}.",
                None,
                None,
            )
        )
    # After the last line no slack (the spans end at their last line's latest possible
    # time): a row's statement line and its marker are both written after its statement
    # time, so a row later than every line read has nothing in the logs read, not even the
    # marker no session setting mutes. The logs do not reach it (a rotated file missing
    # from --log): a LOG_GAP, never UNLOGGED_DDL.
    after = [e.statement_time for e in events if e.statement_time > merged[-1][1]]
    if after:
        gaps.append(
            Gap(
                merged[-1][1],
                max(after),
                f"The logs read end at {merged[-1][1].isoformat()}, but audit rows exist "
                f"until {max(after).isoformat()} (a log file missing from --log?).",
                None,
                None,
            )
        )
    for (_, end), (start, _) in itertools.pairwise(merged):
        inside = [e for e in events if end < e.statement_time < start]
        if inside:
            gaps.append(
                Gap(
                    end,
                    start,
                    f"No log file covers {end.isoformat()} to {start.isoformat()} "
                    "(a missing rotation file?), yet audit rows exist there.",
                    None,
                    None,
                )
            )
    return gaps


# -- audit side -----------------------------------------------------------------------------


@dataclass
class AuditSide:
    events: list[AuditEvent] = field(default_factory=list)
    databases: list[DatabaseSummary] = field(default_factory=list)
    monitored: frozenset[str] | None = None
    xact_status: dict[tuple[str, int], str | None] = field(default_factory=dict)
    drift: list[Finding] = field(default_factory=list)
    server_version_num: int = 150000
    #: Install history of every database read (auditor.installs recognises installs).
    audited: list[AuditedDatabase] = field(default_factory=list)
    #: Settings record_event() pins in every monitored database (None: not read).
    pinned: frozenset[str] | None = None
    #: Databases whose audit side could not be read -> one line saying why.
    unreadable: dict[str, str] = field(default_factory=dict)
    server: str = ""
    #: Database -> its server encoding (UTF8, LATIN1, SQL_ASCII, ...).
    encodings: dict[str, str] = field(default_factory=dict)
    #: database -> the auditor's own objects (tampering is judged by identity).
    objects: dict[str, AuditorObjects] = field(default_factory=dict)
    #: database -> runs of audit ids between the rows read that no row holds.
    id_gaps: dict[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    #: database -> what this run vouches for (only with a state file).
    vouched: dict[str, Vouched] = field(default_factory=dict)
    #: The live log_statement and its per-role/per-database overrides (database, role,
    #: value): whether the log can hold a statement the trigger saw (REINDEX, PG 17+).
    log_statement: str | None = None
    log_statement_overrides: tuple[tuple[str | None, str | None, str], ...] = ()
    #: database -> the live auditor as status saw it (what a statement restates).
    installed: dict[str, Installed] = field(default_factory=dict)
    #: The server's superuser roles: a grant of one grants superuser.
    superusers: frozenset[str] = frozenset()


def read_audit(
    dsn: str,
    *,
    schema: str,
    databases: Sequence[str],
    all_databases: bool,
    reader_role: str | None,
    since: datetime | None,
    until: datetime | None,
    judged: dict[str, dict[str, str]],
    marker_xids: Mapping[str, set[int]] | Future[Mapping[str, set[int]]],
    vouched: Mapping[str, Vouched] | None = None,
) -> AuditSide:
    """Audit rows, marker statuses and live channel health from a running server.

    ``marker_xids`` may be a future: the rows are read first, while the caller is
    still reading the logs (in another thread), and the markers' transaction
    statuses are asked once the logs are read.  ``vouched`` (incremental runs: what
    the previous run vouched for, per database) makes it verify every row vouched
    for before, whatever its time, and vouch for every row now (capture.vouch).
    """
    import psycopg

    from auditor import capture
    from auditor.db import connect, sql_text, with_dbname

    side = AuditSide()
    report = capture.status(
        dsn,
        databases=databases,
        all_databases=all_databases or not databases,
        schema=schema,
        role=reader_role,
        application_name="auditor reconcile",
    )
    side.server = report.server
    side.server_version_num = report.server_version_num
    side.log_statement = report.settings.get("log_statement")
    side.log_statement_overrides = tuple(
        (r.get("database"), r.get("role"), str(r.get("value")))
        for r in report.role_settings
        if r.get("name") == "log_statement"
    )
    with connect(dsn, application_name="auditor reconcile") as main:
        side.encodings = {
            str(name): str(enc) for name, enc in main.execute(sql_text("database_encodings.sql"))
        }
        side.superusers = frozenset(
            str(r[0]) for r in main.execute(sql_text("superuser_roles.sql"))
        )
    monitored = set()
    for p in report.problems:
        if p.weakens:
            side.drift.append(_drift_finding(p.message, None, p.channel, p.critical))
    for db in report.databases:
        if db.error:
            # Not "not installed": a reader that cannot look cannot tell.
            side.unreadable[db.name] = read_failure(db.name, db.error, schema)
            continue
        if not db.installed:
            side.databases.append(DatabaseSummary(db.name, False, 0))
            continue
        skip = {int(i) for i in judged.get(db.name, {})}
        try:
            with connect(dsn, dbname=db.name, application_name="auditor reconcile") as conn:
                capture.set_role(conn, reader_role, db.name)
                # The COPY, parsing and digests in a worker process: this one's GIL
                # is the log stream's (capture_bulk.read_in_worker).
                worker = (with_dbname(dsn, db.name), reader_role)
                rows = [
                    e if e.database == db.name else _read_from(e, db.name)
                    for e in capture.read_audit_events(
                        conn, schema, since=since, until=until, worker=worker
                    )
                    if e.id not in skip
                ]
                pins = _trigger_pins(conn, schema)
                history = _install_history(conn, db.name, schema)
                before = vouched.get(db.name) if vouched is not None else None
                objects = capture.read_auditor_objects(conn, schema)
                gaps: tuple[tuple[int, int], ...] = ()
                if rows:
                    low = min(rows[0].id, before.through) if before is not None else rows[0].id
                    gaps = tuple(capture.id_gaps(conn, schema, low, max(e.id for e in rows)))
                vouch = capture.vouch(conn, schema, before) if vouched is not None else None
        except psycopg.Error as exc:
            side.unreadable[db.name] = read_failure(db.name, capture._pg_error(exc), schema)
            continue
        monitored.add(db.name)
        side.installed[db.name] = Installed(
            schema,
            True,
            db.owner,
            db.triggers_ok,
            db.functions_ok,
            db.protections_ok,
            db.mail_mode,
            db.reader_role,
            db.notify_role,
        )
        for p in db.problems:
            if p.weakens:
                side.drift.append(_drift_finding(p.message, db.name, p.channel, p.critical))
        side.events.extend(rows)
        side.databases.append(DatabaseSummary(db.name, True, len(rows)))
        side.pinned = pins if side.pinned is None else side.pinned & pins
        side.audited.append(history)
        side.objects[db.name] = objects
        if gaps:
            side.id_gaps[db.name] = gaps
        if vouch is not None:
            breaches, side.vouched[db.name] = vouch
            side.drift.extend(_breach_finding(b, db.name, before) for b in breaches)
    xids_by_db = marker_xids.result() if isinstance(marker_xids, Future) else marker_xids
    for d in side.databases:
        xids = xids_by_db.get(d.name, set())
        if not d.installed or not xids:
            continue
        try:
            with connect(dsn, dbname=d.name, application_name="auditor reconcile") as conn:
                capture.set_role(conn, reader_role, d.name)
                statuses = capture.xact_status(conn, xids)
        except psycopg.Error as exc:
            side.unreadable[d.name] = read_failure(d.name, capture._pg_error(exc), schema)
            continue
        for xid, status in statuses.items():
            side.xact_status[(d.name, xid)] = status
    if side.unreadable:
        # A database read only in part is not judged at all (its rows without their
        # markers' status would read as deleted).
        gone = set(side.unreadable)
        side.events = [e for e in side.events if e.database not in gone]
        side.databases = [d for d in side.databases if d.name not in gone]
        side.drift = [f for f in side.drift if f.database not in gone]
        side.audited = [d for d in side.audited if d.name not in gone]
        monitored -= gone
    side.monitored = frozenset(monitored)
    return side


#: What reconcile reads, as a DBA grants it.
_READER_NEEDS = (
    "reconcile needs USAGE on schema {schema} and SELECT on its tables (auditor install "
    "--reader-role ROLE, then --reader-role ROLE or connect as a member)"
)
_XACT_NEEDS = (
    "reconcile needs EXECUTE on pg_xact_status(xid8), pg_current_snapshot() and "
    "pg_snapshot_xmax(pg_snapshot) (granted to PUBLIC by default) to tell a rolled-back "
    "DDL from a deleted audit row"
)


def read_failure(database: str, error: str, schema: str) -> str:
    """One line for a database whose audit side could not be read, naming what is missing.

    >>> read_failure("app", "permission denied for schema auditor", "auditor")  # doctest: +ELLIPSIS
    'database app: permission denied for schema auditor: reconcile needs USAGE on schema ...'
    >>> read_failure("app", "permission denied for function pg_xact_status", "auditor")[:59]
    'database app: permission denied for function pg_xact_status'
    """
    where = f"database {database}: {error}"
    if "permission denied for database" in error or "not permitted to log in" in error:
        return f"{where}: reconcile needs CONNECT on database {database}"
    if "permission denied for function" in error:
        return f"{where}: {_XACT_NEEDS}"
    if "permission denied" in error:
        return f"{where}: {_READER_NEEDS.format(schema=schema)}"
    return where


def _install_history(conn: Any, database: str, schema: str) -> AuditedDatabase:
    """The database's installs rows and the time of its first audit row."""
    from auditor.capture import render

    row = conn.execute(render("reconcile_installs.sql", schema)).fetchone()
    data = row[0] if row and isinstance(row[0], dict) else {}
    installs = [
        r
        for raw in data.get("installs") or []
        if isinstance(raw, dict) and (r := InstallRow.from_json(database, raw)) is not None
    ]
    first: datetime | None = None
    with contextlib.suppress(TypeError, ValueError):  # an altered row may say 'infinity'
        first = datetime.fromisoformat(str(data.get("first_event")))
    named = data.get("first_event_database")
    return AuditedDatabase(database, tuple(installs), first, str(named) if named else None)


def _trigger_pins(conn: Any, schema: str) -> frozenset[str]:
    """Settings the database's record_event() pins (none when it is missing)."""
    from auditor.db import sql_text
    from auditor.weakening import config_names

    rows = conn.execute(sql_text("reconcile_trigger_config.sql"), {"schema": schema}).fetchall()
    if len(rows) != 1:
        return frozenset()
    return config_names(str(c) for c in rows[0][0] or ())


def _breach_finding(breach: VouchBreach, database: str, before: Vouched | None) -> Finding:
    """A block of audit rows that changed after an earlier run vouched for it."""
    assert before is not None  # a breach is always of something vouched for
    ids = f"{breach.first_id}-{breach.last_id}"
    gone = breach.rows_then - breach.rows_now
    if gone > 0:
        cls, what = C.AUDIT_ROW_MISSING, f"{gone} of its {breach.rows_then} row(s) are gone"
    else:
        cls, what = (
            C.AUDIT_ROW_ALTERED,
            (
                f"its rows were rewritten, removed and put back, or added ({breach.rows_then} "
                f"then, {breach.rows_now} now)"
            ),
        )
    return make_finding(
        cls,
        key=("vouched", database, breach.first_id),
        reason=(
            f"Audit ids {ids}, which an earlier run vouched for (snapshot {before.snapshot}, "
            f"ids up to {before.through}), no longer hash to what that run saw: {what}. "
            "Compare those ids with a backup or with the markers of older logs."
        ),
        severity=Severity.CRITICAL,
        database=database,
        command_tags=["?"],
        evidence={
            "log": None,
            "audit": [],
            "vouched": {
                "ids": [breach.first_id, breach.last_id],
                "rows_then": breach.rows_then,
                "rows_now": breach.rows_now,
            },
        },
    )


def _read_from(event: AuditEvent, database: str) -> AuditEvent:
    """A row whose ``database_name`` names another database: it belongs where it was read.

    The trigger writes ``current_database()``, so only an altered row can differ;
    pairing it with its marker and accounting for it go by the database it is in,
    and its own claim stays in the evidence (``database_in_row``).
    """
    return replace(event, database=database, database_in_row=event.database)


def _drift_finding(
    message: str, database: str | None, channel: str, critical: bool = True
) -> Finding:
    """A live weakening: critical when it hides evidence; high when it only makes the
    cross-check weaker (a prefix without %c/%v: pairing falls back, nothing is hidden)."""
    return make_finding(
        C.CONFIG_DRIFT,
        key=("live", database, message),
        reason=f"Live server state ({channel} channel): {message}",
        severity=Severity.CRITICAL if critical else Severity.HIGH,
        database=database,
        evidence={"log": None, "audit": [], "live": message},
    )


# -- the run -------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReconcileResult:
    document: FindingsDocument
    paths: dict[str, Path]
    exit_code: int
    fail_on: Severity
    mailed: str | None = None  # Message-ID of the report mail, when one was sent
    mail_error: str | None = None  # why the report mail could not be sent
    #: Why the run is incomplete (then exit 2; the reports say so too).
    errors: tuple[str, ...] = ()


def _marker_xids(records: Iterable[LogRecord], schema: str) -> dict[str, set[int]]:
    """The xids whose status the markers need; a forged marker's are never asked."""
    from auditor.marker import parse_marker
    from auditor.matcher import forged_marker

    out: dict[str, set[int]] = {}
    for rec in records:
        if rec.kind == MessageKind.MARKER:
            m = parse_marker(rec.message)
            if m is not None and m.schema == schema and not forged_marker(rec.context, schema):
                out.setdefault(rec.database or "", set()).add(m.xid)
    return out


def _cluster_wide(rec: LogRecord) -> bool:
    from auditor.classify import CLUSTER_WIDE_TAGS, classify

    if rec.kind not in (MessageKind.STATEMENT, MessageKind.EXECUTE) or not rec.statement:
        return False
    return any(s.command_tag in CLUSTER_WIDE_TAGS for s in classify(rec.statement).statements)


def _straddles(rec: LogRecord, since: datetime | None) -> bool:
    """A line printed before ``since`` whose true time, at the log's precision, may be after.

    ``%t`` prints whole seconds (of a clock a tick late): a line printed 06:10:00 was
    written in [06:10:00, 06:10:01.25).  It is read, and judged only if audit rows in
    the window show it belongs there (the matcher leaves it out otherwise).
    """
    from auditor.pairing import time_span

    if since is None or rec.time is None or rec.time >= since:
        return False
    return rec.time + time_span(rec) > since


_TEXT_FIELDS = ("message", "statement", "prepare_text", "detail", "hint", "context")


def in_database_encodings(
    records: list[LogRecord], encodings: Mapping[str, str]
) -> list[LogRecord]:
    """Records of databases whose encoding is not UTF8, decoded from their bytes in it.

    The server writes each backend's lines in its database's encoding; the readers
    kept the bytes (:mod:`auditor.encoding`), so the text reads again exactly as
    the audit row (read in that encoding) holds it.
    """
    from auditor.encoding import in_database_encoding, python_codec

    foreign = {db: enc for db, enc in encodings.items() if python_codec(enc) is not None}
    if not foreign:
        return records
    out = []
    for rec in records:
        enc = foreign.get(rec.database or "")
        if enc is not None:
            changes: dict[str, Any] = {
                name: in_database_encoding(value, enc)
                for name in _TEXT_FIELDS
                if isinstance(value := getattr(rec, name), str) and not value.isascii()
            }
            if changes:
                rec = replace(rec, **changes)
        out.append(rec)
    return out


def _in_window(t: datetime | None, since: datetime | None, until: datetime | None) -> bool:
    if t is None:
        return True
    return (since is None or t >= since) and (until is None or t < until)


@dataclass
class Analysis:
    """Both channels read and paired, before anything is written."""

    document: FindingsDocument
    result: MatchResult
    extra_findings: list[Finding]
    fail_on: Severity
    state: State | None
    state_path: Path | None
    new_files: dict[str, dict[str, Any]]
    events: list[AuditEvent]
    until: datetime
    later: list[LogRecord] = field(default_factory=list)
    catalog_state: dict[str, Any] = field(default_factory=dict)
    #: Why the run is incomplete (exit 2): audit sides that could not be read, or none.
    errors: list[str] = field(default_factory=list)
    vouched: dict[str, Vouched] = field(default_factory=dict)
    #: Each format's session line numbers where this run stopped reading.
    lines: dict[str, PriorLines] = field(default_factory=dict)


def _read_window(
    cfg: Config,
    specs: list[str],
    dsn: str | None,
    since: datetime | None,
    until: datetime | None,
    state: State | None,
    server: ServerLogSettings | None,
    log_timezone: str | None,
    progress: Progress | None = None,
) -> tuple[LogSide, list[LogRecord]]:
    """The logs read, and their records in the window and scope (with carried ones)."""
    logs = read_logs(
        specs,
        dsn=dsn,
        fmt=str(cfg["log_format"]),
        prefix=cfg["log_line_prefix"],
        state=state,
        server=server,
        log_timezone=log_timezone,
        progress=progress,
    )
    if (
        logs.usable == 0
        and logs.summaries
        and all(s.format == "unreadable" for s in logs.summaries)
    ):
        raise LogInputError("nothing usable could be read: " + "; ".join(logs.warnings[:3]))
    if state is not None and until is not None:
        # Read (the offsets move past them) but after the window: the next run's.
        logs.later = [r for r in logs.records if r.time is not None and r.time >= until]
    records = [r for r in logs.records if _in_window(r.time, since, until) or _straddles(r, since)]
    scope = set(cfg["databases"])
    if scope:
        # --database limits the run: log records of other databases are not judged,
        # except statements with a cluster-wide effect (ALTER SYSTEM, roles, ...).
        records = [
            r for r in records if r.database is None or r.database in scope or _cluster_wide(r)
        ]
    if state is not None:
        records = state.carried_records + records
    return logs, records


def _log_trust(
    logs: LogSide,
    since: datetime | None,
    until: datetime | None,
    log_timezone: str | None,
    state: State | None = None,
) -> Verdict:
    """What the log says about itself (auditor.logtrust), kept to the window: a break
    outside it was reported by the run whose window held it.  With a state, each
    session's numbers go on from where the previous run stopped reading."""
    from auditor.logtrust import judge, prior_applies

    resumed = frozenset(logs.resumed)
    prior: dict[str, PriorLines] = {}
    for fmt, lines in (state.lines if state is not None else {}).items():
        if prior_applies(lines, logs.sources, resumed):
            prior[fmt] = lines
        elif any(getattr(st.sequence, "fmt", None) == fmt for st in logs.sources):
            logs.notes.append(
                f"The {fmt} log's line numbers were not checked against where the previous "
                "run (--state) stopped: this run reads files older than that (or a prefix "
                "that numbers other keys)."
            )
    verdict = judge(
        logs.sources,
        logs.records,
        log_timezone=log_timezone,
        inexact=frozenset(logs.inexact),
        prior=prior,
        resumed=resumed,
    )
    # A line that reads two ways is judged where its records are read: a %t line printed
    # in the second --since falls in may be inside the window.
    early = since - timedelta(seconds=1) if since is not None else None
    verdict.findings = [
        f
        for f in verdict.findings
        if _in_window(f.time, early if f.id in verdict.two_ways else since, until)
    ]
    return verdict


@contextlib.contextmanager
def _gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a run builds its evidence.

    A night's million log records and audit rows all live until the reports are
    written, and build almost no reference cycles; the collector would walk them
    again and again as they accumulate (a third of the run time at 100 k statements).
    """
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def analyse(
    cfg: Config,
    *,
    now: datetime | None = None,
    use_state: bool = True,
    progress: Progress | None = None,
    catalog: bool = False,
) -> Analysis:
    """Read logs and audit rows, pair them, apply the policy.

    Nothing is written, except with ``catalog``: then each audited database's catalog
    snapshot is taken (and stored in its audit schema) and compared with the previous one.
    """
    with _gc_paused():
        return _analyse(cfg, now=now, use_state=use_state, progress=progress, catalog=catalog)


def _analyse(
    cfg: Config,
    *,
    now: datetime | None,
    use_state: bool,
    progress: Progress | None = None,
    catalog: bool = False,
) -> Analysis:
    fail_on = parse_severity(str(cfg["fail_on"]))
    policy = Policy.from_config(cfg["severity"], cfg["allow"])
    schema = str(cfg["schema"])
    dsn = cfg["dsn"]
    specs = list(cfg["logs"])
    if not specs and not dsn:
        raise ConfigError("no log given: use --log (file, directory, glob, '-' or 'sql:')")
    # The zone the logs print their times in places them, and a --since/--until
    # without an offset is read in it too (the times a DBA sees in the log).
    server = log_settings(dsn)
    where_notes: list[str] = []
    if not specs:
        from auditor.logs.scan import default_log_specs

        specs, note = default_log_specs(str(dsn), server)
        where_notes.append(note)
    log_timezone, zone_notes = pick_log_timezone(
        cfg["log_timezone"], server.log_timezone if server else None
    )
    wall = wall_clock_zone(log_timezone)
    since = parse_when(cfg["since"], "--since", wall)
    until = parse_when(cfg["until"], "--until", wall)
    check_window(since, until)
    asked_since = since  # a window the user named, not the state's resume point
    state_path = Path(cfg["state"]) if (cfg["state"] and use_state) else None
    if state_path is not None:
        check_state_path(state_path)
    state = State.load(state_path) if state_path else None
    now = now or datetime.now(UTC)
    if state is not None and since is None and state.until is not None:
        since = state.until
    effective_until = until or now
    carry_after = effective_until - CARRY if state is not None else None
    reader_role = cfg["reader_role"]
    from auditor.capture import set_role

    taken = None
    if dsn and catalog:
        # Before any log is read: every change a snapshot holds was logged (if it was)
        # before the end of what is read.
        from auditor.catalog import take_all

        taken = take_all(
            str(dsn),
            schema,
            list(cfg["databases"]),
            lambda conn, db: set_role(conn, reader_role, db),
        )

    # The audit rows are read in a thread while the logs are read: the log scan's
    # parent mostly waits for its worker processes.  The markers' transaction
    # statuses need the log records, so the thread asks for them last.
    xids_wanted: Future[Mapping[str, set[int]]] = Future()
    if dsn:
        from auditor import capture_bulk

        capture_bulk.prepare()  # the log scan may fork its workers while the thread reads
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="auditor-audit") as pool:
        audit_job: Future[AuditSide] | None = None
        if dsn:
            rows_since = since
            if state is not None and state.until is not None:
                rows_since = min(since or state.until, state.until - OVERLAP)
            audit_job = pool.submit(
                read_audit,
                str(dsn),
                schema=schema,
                databases=list(cfg["databases"]),
                all_databases=bool(cfg["all_databases"]),
                reader_role=cfg["reader_role"],
                since=rows_since,
                # An open-ended run stops at its start time: evidence written while it
                # reads does not count (it is next run's), for rows and log lines alike.
                until=effective_until,
                judged=state.judged if state else {},
                marker_xids=xids_wanted,
                vouched=state.vouched if state is not None else None,
            )
        try:
            logs, records = _read_window(
                cfg, specs, dsn, since, effective_until, state, server, log_timezone, progress
            )
            xids_wanted.set_result(_marker_xids(records, schema))
        finally:
            if not xids_wanted.done():  # the logs failed: let the thread end
                xids_wanted.set_result({})
        audit = audit_job.result() if audit_job is not None else AuditSide()
    from auditor import capture

    # Fresh records only: carried ones were decoded by the run that read them.
    carried = {id(r) for r in state.carried_records} if state is not None else set()
    records = [
        *(r for r in records if id(r) in carried),
        *in_database_encodings([r for r in records if id(r) not in carried], audit.encodings),
    ]
    logs.later = in_database_encodings(logs.later, audit.encodings)
    errors = list(audit.unreadable.values())
    if audit.unreadable:
        # Their rows were not read: their log records cannot be judged either
        # (cluster-wide statements do not depend on one database's rows).
        records = [r for r in records if r.database not in audit.unreadable or _cluster_wide(r)]
    if audit_job is not None and not audit.monitored and not audit.unreadable:
        checked = ", ".join(d.name for d in audit.databases) or "none"
        errors.append(
            f"{audit.server}: the auditor is installed in none of the databases checked "
            f"({checked}): there is no trigger channel to reconcile the log against "
            "(install it with auditor install, or point --dsn at the audited server)"
        )
    # Lines that may lie just before the window (printed in whole seconds) only count
    # if audit rows place them inside it: never as an install.  Carried records are
    # always judged: the run before left them to this one.
    carried_at = frozenset(r.source for r in (state.carried_records if state else ()))
    straddlers = frozenset(
        r.source for r in records if _straddles(r, since) and r.source not in carried_at
    )
    # A restore of a dump that created the auditor in a database: its copied history is
    # no sign of an auditor there, and nothing fired before its triggers existed.
    own_rows: dict[str, datetime] = {}
    for e in audit.events:
        if e.database_in_row is None and (
            e.database not in own_rows or e.statement_time < own_rows[e.database]
        ):
            own_rows[e.database] = e.statement_time
    restored = restored_auditors(
        records,
        schema,
        own_rows_before=own_rows,
        first_row_database={d.name: d.first_event_database for d in audit.audited},
    )
    inside, install_findings = split_installs(
        [r for r in records if r.source not in straddlers],
        audit.audited,
        schema,
        fired={(e.database, e.session_id, e.vxid) for e in audit.events},
        restored={db: r.triggers_created for db, r in restored.items()},
        audit_read=bool(dsn),
    )
    records = [r for r in records if r.source in straddlers] + inside
    trust = _log_trust(logs, since, effective_until, log_timezone, state)
    if trust.forged:
        # Lines no server process wrote stand in their LOG_TAMPERED finding: they are
        # not paired with the audit rows of the session they claim.
        records = [r for r in records if r.source not in trust.forged]
    gaps = (
        list(logs.gaps)
        + [Gap(g.start, g.end, g.reason, g.file, None) for g in trust.gaps]
        + _coverage_gaps(logs, since, audit.events)
    )
    ctx = MatchContext(
        schema=schema,
        trigger_names=frozenset(capture.event_trigger_names(schema).values()),
        monitored=audit.monitored,
        server_version_num=audit.server_version_num,
        gaps=tuple(gaps),
        carry_after=carry_after,
        pinned_settings=audit.pinned,
        log_formats=frozenset(s.format for s in logs.summaries if s.format != "unreadable"),
        auditor_objects=audit.objects,
        id_gaps=audit.id_gaps,
        window_start=since,
        window_end=effective_until,
        log_end=max((last for _, last in logs.coverage), default=None),
        straddlers=straddlers,
        log_statement=audit.log_statement,
        log_statement_overrides=audit.log_statement_overrides,
        audit_read=bool(dsn),
        installed=audit.installed,
        restored=restored,
        restore_traces=restore_traces(records, schema),
        ambiguous=tuple(trust.ambiguous),
        superusers=audit.superusers,
    )
    result: MatchResult = match(records, audit.events, audit.xact_status, ctx)
    extra = [*install_findings, *audit.drift, *trust.findings]
    catalog_notes: list[str] = []
    catalog_state: dict[str, Any] = {}
    if taken is not None:
        from auditor.catalog import judge

        verdict = judge(
            str(dsn),
            schema,
            taken,
            prepare=lambda conn, db: set_role(conn, reader_role, db),
            records=itertools.chain(logs.records, state.carried_records if state else ()),
            spans=logs.coverage,
            gaps=[(g.start, g.end) for g in gaps],
            state=state.catalog if state is not None else None,
            since=asked_since,
        )
        extra.extend(verdict.findings)
        catalog_notes, catalog_state = verdict.notes, verdict.state
    findings = policy.apply([*extra, *result.findings])
    findings.sort(key=sort_key)
    logged_ddl = result.logged_ddl + sum(
        f.accounts_logged_ddl for f in [*install_findings, *trust.findings]
    )
    by_class: dict[str, int] = {}
    by_severity: dict[str, int] = {}
    for f in findings:
        by_class[f.cls.value] = by_class.get(f.cls.value, 0) + 1
        by_severity[f.severity.value] = by_severity.get(f.severity.value, 0) + 1
    notes = [f"Incomplete: {e}." for e in errors]
    if cfg.source is not None:  # its allow: and severity: rules shaped this report
        notes.append(f"configuration read from {cfg.source.resolve()}")
    notes.extend([*where_notes, *zone_notes, *logs.notes, *result.notes, *catalog_notes])
    if not dsn:
        notes.append(
            "No --dsn: the audit table was not read, so only what the log alone shows is "
            "reported (no pairing with audit rows, no live checks)."
        )
    if not logs.session_ids and not any("%c" in n for n in notes):
        notes.append(
            "A log's prefix lacks %c: pairing used pid, user, database, time and text (weaker)."
        )
    if result.carried_records or result.carried_events:
        notes.append(
            f"{len(result.carried_records)} log record(s) and {len(result.carried_events)} audit "
            "row(s) near the end of the window were carried to the next run."
        )
    doc = FindingsDocument(
        auditor_version=__version__,
        generated_at=now,
        since=since,
        until=until,
        logs=tuple(logs.summaries),
        databases=tuple(audit.databases),
        summary=Summary(
            logged_ddl=logged_ddl,
            audit_rows=result.audit_rows,
            matched=result.matched,
            by_class=dict(sorted(by_class.items())),
            by_severity={
                s.value: by_severity[s.value] for s in reversed(Severity) if s.value in by_severity
            },
            matched_audit_rows=result.matched_rows,
        ),
        findings=tuple(findings),
        notes=tuple(notes),
    )
    return Analysis(
        doc,
        result,
        extra,
        fail_on,
        state,
        state_path,
        logs.files,
        audit.events,
        effective_until,
        logs.later,
        catalog_state,
        errors,
        audit.vouched,
        trust.lines,
    )


def reconcile(
    cfg: Config, *, now: datetime | None = None, progress: Progress | None = None
) -> ReconcileResult:
    """The whole nightly job: analyse, write the reports, save the state, exit code."""
    from auditor.report import write_reports

    a = analyse(cfg, now=now, progress=progress, catalog=True)
    with _gc_paused():
        paths = write_reports(a.document, Path(str(cfg["out"])))
    if a.state_path is not None and a.state is not None:
        new_state = State(files={**a.state.files, **a.new_files}, until=a.until)
        horizon = a.until - OVERLAP
        carried = set(a.result.carried_events)
        for db, rows in (a.state.judged or {}).items():
            for ident, when in rows.items():
                if datetime.fromisoformat(when) >= horizon - OVERLAP:
                    new_state.judged.setdefault(db, {})[ident] = when
        for e in a.events:
            if e.statement_time >= horizon and (e.database, e.id) not in carried:
                new_state.judged.setdefault(e.database, {})[str(e.id)] = (
                    e.statement_time.isoformat()
                )
        new_state.carried_records = [*a.result.carried_records, *a.later]
        new_state.carried_events = a.result.carried_events
        new_state.catalog = a.catalog_state or a.state.catalog
        # What this run vouched for replaces the previous (it covers it); a database
        # not read this time keeps its previous vouch, to be verified next time.
        new_state.vouched = {**a.state.vouched, **a.vouched}
        # A format not read this time keeps where the previous run left it.
        new_state.lines = {**a.state.lines, **a.lines}
        new_state.save(a.state_path)
    failing = [
        f for f in a.document.findings if not f.allowed and f.severity.rank >= a.fail_on.rank
    ]
    code = 2 if a.errors else (1 if failing else 0)
    result = ReconcileResult(a.document, paths, code, a.fail_on, errors=tuple(a.errors))
    if cfg["report_mail_to"]:
        # The reports are written whatever happens to the mail; a failed mail is
        # reported (exit 2 from the CLI) after the summary, not instead of it.
        try:
            result = replace(result, mailed=mail_report(cfg, result))
        except AuditorError as exc:
            result = replace(result, mail_error=str(exc))
    return result


def mail_report(cfg: Config, result: ReconcileResult) -> str:
    """Send the summary with report.html attached (SMTP settings shared with the worker)."""
    from auditor.mail import send_report
    from auditor.report import summary_text

    doc = result.document
    server = cfg["mail.server_name"] or _server_label(cfg["dsn"])
    worst = (
        "incomplete"
        if result.errors
        else "needs a human"
        if result.exit_code
        else "nothing at or above " + result.fail_on.value
    )
    subject = f"auditor reconcile on {server}: {summary_text(doc).split(';')[0]} ({worst})"
    body = "\n".join(summary_lines(result)) + "\n\nThe full report is attached (report.html).\n"
    return send_report(
        cfg,
        subject,
        body,
        result.paths["html"].read_bytes(),
        recipients=list(cfg["report_mail_to"]),
    )


def _server_label(dsn: Any) -> str:
    from auditor.db import describe_dsn

    if not dsn:
        return "logs only"
    where = describe_dsn(str(dsn))
    return where.split("@", 1)[-1].rsplit("/", 1)[0]


def summary_lines(result: ReconcileResult) -> list[str]:
    """The terminal summary: counts first, then the worst findings."""
    doc = result.document
    s = doc.summary
    lines = [
        f"logged DDL {s.logged_ddl}, audit rows {s.audit_rows}, matched {s.matched} "
        f"statements ({s.matched_audit_rows} rows); {len(doc.findings)} finding(s)",
    ]
    for sev in reversed(Severity):
        n = s.by_severity.get(sev.value, 0)
        if n:
            classes = sorted({f.cls.value for f in doc.findings if f.severity == sev})
            lines.append(f"  {sev.value:<8} {n:>4}  {', '.join(classes)}")
    for note in doc.notes:
        lines.append(f"note: {note}")
    lines.append(f"report: {result.paths.get('html')}")
    worst = [f for f in doc.findings if not f.allowed and f.severity.rank >= result.fail_on.rank]
    if result.errors:
        lines.append(
            f"exit 2: the run is incomplete ({len(result.errors)} error(s)); "
            f"{len(worst)} finding(s) at or above {result.fail_on.value}"
        )
    else:
        lines.append(
            f"exit {result.exit_code}: {len(worst)} finding(s) at or above {result.fail_on.value}"
        )
    return lines


__all__ = ["DEFAULT_SEVERITY", "ReconcileResult", "reconcile", "summary_lines"]
