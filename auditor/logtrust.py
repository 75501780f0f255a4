"""Whether the log vouches for itself: LOG_TAMPERED, restarts and unseen runs.

The log channel is only evidence if nobody wrote into it or cut it.  This
module judges what the readers saw of the log's own sequence:

* per-process line numbers (:mod:`auditor.logs.sequence`): a gap inside a
  file is lines removed, a number that repeats or goes back is a line the
  server did not write; a session that started after the log read begins
  must number its first line 1; where two files meet, a gap is a missing or
  cut file (a LOG_GAP, whose stretch holds the rows it hides);
* records no server process could have written: a session id (``%c`` is the
  process's start time and pid, in hex) whose pid is not the record's, a line
  dated before its session started, a line of a session whose pid another,
  later session already uses;
* the server's own life: each start after a shutdown is a restart (info; low
  after a crash), and a start whose "database system was shut down at" names
  a later shutdown than the last one this log saw means the cluster ran in
  between without this log (``postgres --single``, or another logging setup):
  critical;
* a file whose sessions' numbers do not run on from the file before: a rotated
  file deleted or cut (LOG_GAP, high);
* across incremental runs (``--state``): the numbers each session had where the
  previous run stopped reading (:class:`PriorLines`) go on in what this run reads,
  so lines cut from the part of a file not read yet are found too.

Findings name the session, the file and the line; statement records that no
server could have written are taken out of the pairing (they stand in the
LOG_TAMPERED finding, not in an UNREPORTED_DDL against the session they claim).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from auditor.findings import make_finding
from auditor.logs.sequence import Break, LineTrack
from auditor.logs.times import LogClock
from auditor.model import Finding, FindingClass, LogRecord, MessageKind, Severity, SourceLocation

C = FindingClass

#: %c prints the start time in whole seconds (truncated) and log times are printed a
#: tick late: a session's own line is never more than this before its start.
_START_SLACK = timedelta(seconds=1)

_WAS_SHUT_DOWN = re.compile(
    r"^database system was shut down(?: in recovery)? at (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d \S+)"
)
_INTERRUPTED = re.compile(r"^database system was (?:interrupted|not properly shut down)")
_IS_SHUT_DOWN = re.compile(r"^database system is shut down")


@dataclass(frozen=True)
class TrustGap:
    """A stretch the log lost (a missing or cut file): its rows are not held against it."""

    start: datetime | None
    end: datetime | None
    reason: str
    file: str | None


#: Sessions whose last line number a state file keeps per log format (the most recent
#: ones: an older session that goes on later is then not checked across runs).
MAX_PRIOR_SESSIONS = 50_000


@dataclass(frozen=True)
class PriorLines:
    """Where the previous run (``--state``) left each session's line numbers, per format.

    ``file`` is the last file it read; ``last_time`` the latest time it read there;
    ``key`` the tracker's key (``c``: session ids, ``p``: pids); ``sessions`` the last
    number of each session.
    """

    fmt: str
    file: str
    last_time: datetime | None
    key: str
    sessions: Mapping[str, int]

    def to_json(self) -> dict[str, object]:
        return {
            "file": self.file,
            "last_time": self.last_time.isoformat() if self.last_time else None,
            "key": self.key,
            "sessions": dict(self.sessions),
        }

    @classmethod
    def from_json(cls, fmt: str, data: Mapping[str, object]) -> PriorLines:
        when = data.get("last_time")
        sessions = data.get("sessions")
        if not isinstance(sessions, Mapping):
            raise ValueError(f"lines.{fmt}.sessions is not an object")
        return cls(
            fmt,
            str(data["file"]),
            datetime.fromisoformat(when) if isinstance(when, str) else None,
            str(data["key"]),
            {str(k): int(v) for k, v in sessions.items()},
        )


@dataclass
class Verdict:
    findings: list[Finding] = field(default_factory=list)
    #: Statement records no server process could have written, and records that read
    #: two ways: not paired (nor used as markers).
    forged: set[SourceLocation] = field(default_factory=set)
    gaps: list[TrustGap] = field(default_factory=list)
    #: The records that read two ways (reconcile names them where rows lack a line),
    #: and the ids of their findings.
    ambiguous: list[LogRecord] = field(default_factory=list)
    two_ways: set[str] = field(default_factory=set)
    #: Each format's session line numbers where this run stopped (for the next run).
    lines: dict[str, PriorLines] = field(default_factory=dict)


def session_parts(session_id: str | None) -> tuple[datetime, int] | None:
    """A ``%c`` session id's start time and pid.

    >>> session_parts("6b07a44b.27b8")
    (datetime.datetime(2026, 11, 26, 3, 15, 23, tzinfo=datetime.timezone.utc), 10168)
    >>> session_parts("nonsense") is None
    True
    """
    if not session_id:
        return None
    head, _dot, tail = session_id.partition(".")
    try:
        return datetime.fromtimestamp(int(head, 16), UTC), int(tail, 16)
    except (ValueError, OverflowError, OSError):
        return None


@dataclass
class _Chain:
    """One log's files in read order, stitched (one per format read)."""

    fmt: str
    track: LineTrack
    start: datetime | None
    files: list[tuple[str, datetime | None, datetime | None]]  # name, first, last time


def judge(
    sources: Sequence[object],
    records: Sequence[LogRecord],
    *,
    log_timezone: str | None = None,
    inexact: frozenset[str] = frozenset(),
    prior: Mapping[str, PriorLines] | None = None,
    resumed: frozenset[str] = frozenset(),
) -> Verdict:
    """Everything the log says about itself (``sources``: the readers' SourceStats).

    ``inexact``: files whose times could not all be placed (an unknown zone): their
    records' times are not held against their session ids.  ``prior``: where the
    previous run left each format's sessions (only for formats whose every file this
    run reads goes on from it: see :func:`prior_applies`); ``resumed``: the files this
    run reads from where that run stopped.
    """
    out = Verdict()
    chains = _chains(sources, prior, resumed)
    by_place = {(r.source.file, r.source.offset): r for r in records}
    statements = {
        (r.source.file, r.source.offset)
        for r in records
        if r.kind in (MessageKind.STATEMENT, MessageKind.EXECUTE)
    }
    for chain in chains:
        _sequence(chain, records, by_place, statements, out)
        if (lines := _lines_now(chain)) is not None:
            out.lines[chain.fmt] = lines
    _unnumbered(records, sources, out)
    _impossible(records, chains, inexact, out)
    _two_ways(records, out)
    firsts = [t for st in sources if (t := getattr(st, "first_time", None)) is not None]
    _lifecycle(records, min(firsts, default=None), LogClock(log_timezone), inexact, out)
    return out


def prior_applies(prior: PriorLines, sources: Sequence[object], resumed: frozenset[str]) -> bool:
    """Whether this run's files of ``prior``'s format all go on from the previous run.

    Each must be read from where that run stopped, or begin after the last time it
    read: a file older than that (read again from its start, or one the previous runs
    never named) holds lower numbers of the same sessions, which are no break.
    """
    seen = False
    for st in sources:
        track: LineTrack | None = getattr(st, "sequence", None)
        if track is None or track.fmt != prior.fmt:
            continue
        seen = True
        if track.key != prior.key:
            return False
        if str(getattr(st, "source", "")) in resumed:
            continue
        first = getattr(st, "first_time", None)
        if first is None:
            continue  # nothing read: nothing to compare
        if prior.last_time is None or first < prior.last_time - _START_SLACK:
            return False
    return seen


def _prior_track(prior: PriorLines, label: str) -> LineTrack:
    return LineTrack(prior.fmt, label, prior.key, {k: (n, n, 0) for k, n in prior.sessions.items()})


def _lines_now(chain: _Chain) -> PriorLines | None:
    """The chain's sessions where this run stopped (the most recent, up to a bound)."""
    track = chain.track
    if not track.sessions:
        return None
    names = list(track.sessions)[-MAX_PRIOR_SESSIONS:]
    last = max((t for _n, _f, t in chain.files if t is not None), default=None)
    return PriorLines(
        chain.fmt, track.file, last, track.key, {k: track.sessions[k][1] for k in names}
    )


def _chains(
    sources: Sequence[object],
    prior: Mapping[str, PriorLines] | None = None,
    resumed: frozenset[str] = frozenset(),
) -> list[_Chain]:
    prior = prior or {}
    chains: dict[str, _Chain] = {}
    # In the order the server wrote them (several --log specs are read as given).
    far = datetime.max.replace(tzinfo=UTC)
    for st in sorted(sources, key=lambda st: getattr(st, "first_time", None) or far):
        track: LineTrack | None = getattr(st, "sequence", None)
        name = str(getattr(st, "source", ""))
        first = getattr(st, "first_time", None)
        last = getattr(st, "last_time", None)
        if track is None:
            continue
        chain = chains.get(track.fmt)
        boundary = "file"
        if chain is None:
            before = prior.get(track.fmt)
            if before is None or before.key != track.key:
                chains[track.fmt] = _Chain(track.fmt, track, first, [(name, first, last)])
                continue
            # The previous run's numbers come first: this run's files go on from them
            # (a file read on from where it stopped: a break inside that file).
            label = f"{before.file} (as the previous run read it)"
            chain = chains[track.fmt] = _Chain(
                track.fmt, _prior_track(before, label), None, [(label, None, before.last_time)]
            )
            boundary = "state" if name in resumed else "file"
        chain.track = chain.track.then(track, boundary)
        chain.files.append((name, first, last))
        if chain.start is None:
            chain.start = first
    return list(chains.values())


def _first_records(records: Sequence[LogRecord], key: str) -> dict[tuple[str, str], LogRecord]:
    """The first record read of each session (``key`` ``c``) or process (``p``) per file."""
    out: dict[tuple[str, str], LogRecord] = {}
    for r in records:
        name = r.session_id if key == "c" else str(r.pid) if r.pid is not None else None
        if name:
            seen = out.get((r.source.file, name))
            if seen is None or r.source.offset < seen.source.offset:
                out[(r.source.file, name)] = r
    return out


def _file_times(chain: _Chain, name: str) -> tuple[datetime | None, datetime | None]:
    for n, first, last in chain.files:
        if n == name:
            return first, last
    return None, None


def _sequence(
    chain: _Chain,
    records: Sequence[LogRecord],
    by_place: dict[tuple[str, int], LogRecord],
    statements: set[tuple[str, int]],
    out: Verdict,
) -> None:
    track = chain.track
    meets: dict[tuple[str, str, bool], list[Break]] = {}
    firsts: dict[tuple[str, str], LogRecord] | None = None
    for brk in track.breaks:
        if brk.boundary == "file":  # every process alive there says the same: one finding
            meets.setdefault((brk.prev_file or "", brk.file, brk.kind == "gap"), []).append(brk)
            continue
        if brk.boundary == "state":
            # Where the session's first line read now is: the tracker knows only the
            # window it was in (stderr, jsonlog); its first record read is the place.
            if firsts is None:
                firsts = _first_records(records, track.key)
            rec = firsts.get((brk.file, brk.key))
            exact = rec is not None and rec.line_num == brk.line
            brk = replace(
                brk,
                offset=rec.source.offset if rec else None,
                phys_line=rec.source.line if rec and exact else None,
                time=rec.time if rec else None,
            )
        _break_finding(chain, brk, by_place, statements, out)
    for (prev_file, file, gap), brks in meets.items():
        _meeting_finding(chain, prev_file, file, gap, brks, out)
    if track.dropped:
        out.findings.append(
            make_finding(
                C.LOG_TAMPERED,
                key=("breaks", chain.fmt, track.file),
                reason=(
                    f"{track.dropped} more break(s) of the {chain.fmt} log's line numbers "
                    "were found than are listed one by one."
                ),
                log_file=track.file,
                evidence={"log": None, "audit": [], "dropped": track.dropped},
            )
        )
    if track.key != "c" or chain.start is None:
        return
    # A session that started after the file holding its first line begins has all its
    # lines there (a session whose start is in a missing file is that file's LOG_GAP).
    numbered: dict[tuple[str, int], LogRecord] = {}
    for r in records:
        if r.session_id and r.user and r.line_num is not None:
            numbered.setdefault((r.session_id, r.line_num), r)
    for key, (first, _last, _count) in track.sessions.items():
        rec = numbered.get((key, first)) if first != 1 else None
        parts = session_parts(key) if rec is not None else None
        if rec is None or parts is None:
            continue
        begins, _ = _file_times(chain, rec.source.file)
        if begins is None or parts[0] <= begins + 2 * _START_SLACK:
            continue
        brk = Break(
            rec.source.file,
            key,
            "head",
            None,
            first,
            rec.source.offset,
            rec.source.line,
            rec.time or parts[0],
        )
        _break_finding(chain, brk, by_place, statements, out)


def _unnumbered(records: Sequence[LogRecord], sources: Sequence[object], out: Verdict) -> None:
    """Records the readers parsed but the line-number pass did not see: not written the
    way the server writes them (spaces or another key order in a JSON line, ...)."""
    seen: dict[str, LineTrack] = {}
    for st in sources:
        track: LineTrack | None = getattr(st, "sequence", None)
        if track is not None and track.key == "c":
            seen[str(getattr(st, "source", ""))] = track
    for r in records:
        track = seen.get(r.source.file)
        if track is None or not r.session_id or r.line_num is None:
            continue
        if r.session_id in track.sessions:
            first, last, _ = track.sessions[r.session_id]
            if first <= r.line_num <= last:
                continue
        if r.kind in (MessageKind.STATEMENT, MessageKind.EXECUTE):
            out.forged.add(r.source)
        out.findings.append(
            make_finding(
                C.LOG_TAMPERED,
                key=("unnumbered", r.source.file, r.source.offset),
                reason=(
                    f"{r.source} claims session {r.session_id}, line {r.line_num}, but is not "
                    "written the way the server writes its lines (its session and number are "
                    "not where the server puts them): something else than the server wrote it"
                    + (", and it is not paired with the audit rows." if r.is_ddl else ".")
                ),
                time=r.time,
                database=r.database,
                user=r.user,
                application=r.application,
                session_id=r.session_id,
                statement=r.statement,
                log_file=r.source.file,
                log_line=r.source.line,
                evidence={"log": _view(r), "audit": []},
            )
        )


def _two_ways(records: Sequence[LogRecord], out: Verdict) -> None:
    """Records whose lines read two ways (stderr): one LOG_TAMPERED per session and file.

    A client that sets ``application_name`` (or logs in with a role, or into a database,
    whose name holds the rest of ``log_line_prefix`` and ``LOG:  ``) makes every line of
    its session split at two places: the statement it ran reads as another (a harmless
    ``SELECT 1 --`` before the real text), its markers as statements.  No reading can be
    trusted, so none is used: the records are not paired and vouch for no row (those rows
    are judged without them, and their findings point here).  The server logged them,
    so a line one of whose readings is DDL counts as logged DDL, here.
    """
    groups: dict[tuple[str, str], list[LogRecord]] = {}
    for r in records:
        if r.ambiguous is None:
            continue
        out.forged.add(r.source)
        out.ambiguous.append(r)
        who = r.session_id or (f"pid {r.pid}" if r.pid is not None else "?")
        groups.setdefault((r.source.file, who), []).append(r)
    for (file, who), recs in groups.items():
        recs.sort(key=lambda r: r.source.offset)
        first = recs[0]
        assert first.ambiguous is not None
        ddl = sum(
            1
            for r in recs
            if r.ambiguous is not None
            and (
                r.ambiguous[1]
                or (r.is_ddl and r.kind in (MessageKind.STATEMENT, MessageKind.EXECUTE))
            )
        )
        lines = ", ".join(str(r.source.line) for r in recs[:20]) + (
            f" and {len(recs) - 20} more" if len(recs) > 20 else ""
        )
        reason = (
            f"{len(recs)} record(s) of {'session ' if first.session_id else ''}{who} in {file} "
            f"(line(s) {lines}) read two ways under the log_line_prefix: at line "
            f"{first.source.line}, {first.ambiguous[0]}. A value the client chose "
            "(application_name, or a role or database name) holds the rest of the prefix "
            "and a severity, so nothing in the line says where its prefix ends: someone "
            "shaped it to make the log read otherwise. None of these records is taken for "
            "either reading: they are not paired with audit rows and vouch for no row."
        )
        if ddl:
            reason += f" {ddl} of them read as DDL one way or the other (counted here)."
        out.findings.append(
            finding := make_finding(
                C.LOG_TAMPERED,
                key=("two-ways", file, who, first.source.offset),
                reason=reason,
                time=first.time,
                database=first.database,
                user=first.user,
                application=first.application,
                client=first.client,
                session_id=first.session_id,
                vxid=first.vxid,
                statement=first.statement,
                command_tags=[],
                log_file=file,
                log_line=first.source.line,
                accounts_logged_ddl=ddl,
                evidence={
                    "log": _view(first),
                    "audit": [],
                    "readings": [
                        {"line": r.source.line, "readings": r.ambiguous[0]}
                        for r in recs[:50]
                        if r.ambiguous is not None
                    ],
                },
            )
        )
        out.two_ways.add(finding.id)


def _meeting_finding(
    chain: _Chain, prev_file: str, file: str, gap: bool, brks: list[Break], out: Verdict
) -> None:
    """Where two files of a log meet and the processes' numbers do not run on."""
    unit = "prefixed line" if chain.fmt == "stderr" else "message"
    first, _ = _file_times(chain, file)
    _, last = _file_times(chain, prev_file)
    who = "session" if chain.track.key == "c" else "process"
    sample = ", ".join(f"{b.key} {b.prev} -> {b.line}" for b in brks[:5])
    if gap:
        missing = max(b.line - (b.prev or 0) - 1 for b in brks)
        reason = (
            f"Between {prev_file} and {file} of the {chain.fmt} log, {len(brks)} {who}(s) "
            f"skip {unit}s (up to {missing}: {sample}): what was written between the two "
            "files is missing (a rotated file deleted, the first one cut short, or a file "
            "left out of --log)."
        )
        # reconcile reports the gap as a LOG_GAP of its own, holding the rows in it.
        out.gaps.append(TrustGap(last, first, reason, file))
        return
    else:
        reason = (
            f"{file} of the {chain.fmt} log repeats or goes back on the line numbers of "
            f"{len(brks)} {who}(s) of {prev_file} ({sample}): the same lines read twice, "
            "files given out of order, or lines written by something else than the server."
        )
    out.findings.append(
        make_finding(
            C.LOG_TAMPERED,
            key=("meeting", chain.fmt, prev_file, file, gap),
            reason=reason,
            severity=Severity.HIGH,
            time=first or last,
            log_file=file,
            command_tags=[],
            evidence={
                "log": None,
                "audit": [],
                "sequence": {
                    "format": chain.fmt,
                    "previous_file": prev_file,
                    "breaks": [
                        {"key": b.key, "kind": b.kind, "previous": b.prev, "number": b.line}
                        for b in brks[:50]
                    ],
                },
            },
        )
    )


def _break_finding(
    chain: _Chain,
    brk: Break,
    by_place: dict[tuple[str, int], LogRecord],
    statements: set[tuple[str, int]],
    out: Verdict,
) -> None:
    rec = by_place.get((brk.file, brk.offset)) if brk.offset is not None else None
    unit = "prefixed line" if chain.fmt == "stderr" else "message"
    where = f"{brk.file}:{brk.phys_line}" if brk.phys_line else brk.file
    who = f"session {brk.key}" if chain.track.key == "c" else f"process {brk.key}"
    severity = Severity.CRITICAL
    cls = C.LOG_TAMPERED
    t = brk.time or (rec.time if rec else None)
    if brk.boundary == "state":
        reason = _across_runs(chain, brk, unit, who, where)
        if brk.kind != "gap":
            # Not the server's numbering either way, but a state file may be used with
            # another copy of the log: where the two runs meet, not inside this read.
            severity = Severity.HIGH
    elif brk.kind == "head":
        missing = f"its first {brk.line - 1} {unit}(s)"
        reason = (
            f"The {chain.fmt} log's {who} started after the log read begins, yet its first "
            f"{unit} in it is number {brk.line} ({where}): {missing} were removed from the log."
        )
    elif brk.kind == "gap":
        count = brk.line - (brk.prev or 0) - 1
        reason = (
            f"The {chain.fmt} log's {who} jumps from {unit} number {brk.prev} to "
            f"{brk.line} at {where}: {count} {unit}(s) were removed from the file."
        )
    else:
        again = "again" if brk.kind == "repeat" else f"after number {brk.prev}"
        reason = (
            f"The {chain.fmt} log's {who} has {unit} number {brk.line} {again} at {where}: "
            "the server numbers each process's lines once and in order, so a line was written "
            "into the log by something else than the server (or the same log was read twice)."
        )
        if brk.kind == "back" and brk.offset is not None and (brk.file, brk.offset) in statements:
            out.forged.add(_location(by_place, brk))
    is_statement = rec is not None and rec.kind in (MessageKind.STATEMENT, MessageKind.EXECUTE)
    out.findings.append(
        make_finding(
            cls,
            key=("sequence", chain.fmt, brk.file, brk.key, brk.kind, brk.line, brk.offset),
            reason=reason,
            severity=severity,
            time=t,
            database=rec.database if rec else None,
            user=rec.user if rec else None,
            application=rec.application if rec else None,
            client=rec.client if rec else None,
            session_id=brk.key if chain.track.key == "c" else None,
            vxid=rec.vxid if rec else None,
            command_tags=[],
            statement=rec.statement if is_statement and rec else None,
            log_file=brk.file,
            log_line=brk.phys_line,
            evidence={
                "log": _view(rec) if rec else None,
                "audit": [],
                "sequence": {
                    "format": chain.fmt,
                    "key": brk.key,
                    "kind": brk.kind,
                    "previous": brk.prev,
                    "number": brk.line,
                    "previous_file": brk.prev_file,
                    "offset": brk.offset,
                },
            },
        )
    )


def _across_runs(chain: _Chain, brk: Break, unit: str, who: str, where: str) -> str:
    head = (
        f"The previous run (--state) stopped reading {brk.file} of the {chain.fmt} log with "
        f"{who} at {unit} number {brk.prev}"
    )
    if brk.kind == "gap":
        count = brk.line - (brk.prev or 0) - 1
        return (
            f"{head}; the first of its {unit}s read now is number {brk.line} ({where}): "
            f"{count} {unit}(s) were removed from the file after that run read it and "
            "before this one."
        )
    return (
        f"{head}; the first of its {unit}s read now is number {brk.line} ({where}), which "
        "that run had already read: the same lines read twice (the state file was used "
        "with another copy of the log), or lines written into the log by something else "
        "than the server."
    )


def _location(by_place: dict[tuple[str, int], LogRecord], brk: Break) -> SourceLocation:
    rec = by_place[(brk.file, brk.offset or 0)]
    return rec.source


def _view(rec: LogRecord) -> dict[str, object]:
    view: dict[str, object] = {
        "file": rec.source.file,
        "line": rec.source.line,
        "time": rec.time.isoformat() if rec.time else None,
        "kind": rec.kind.value,
        "message": rec.message,
        "session_id": rec.session_id,
        "line_num": rec.line_num,
        "pid": rec.pid,
        "user": rec.user,
        "database": rec.database,
    }
    return {k: v for k, v in view.items() if v is not None}


def _impossible(
    records: Sequence[LogRecord], chains: Iterable[_Chain], inexact: frozenset[str], out: Verdict
) -> None:
    """Records whose session id no server process could have printed beside them."""
    starts: dict[int, list[datetime]] = {}
    keys = {k for chain in chains if chain.track.key == "c" for k in chain.track.sessions}
    keys.update(r.session_id for r in records if r.session_id)
    for key in keys:
        parts = session_parts(key)
        if parts is not None:
            starts.setdefault(parts[1], []).append(parts[0])
    for times in starts.values():
        times.sort()
    for r in records:
        parts = session_parts(r.session_id)
        if parts is None:
            continue
        start, pid = parts
        why = None
        timed = r.time is not None and r.source.file not in inexact
        if r.pid is not None and r.pid != pid:
            why = f"its session id {r.session_id} belongs to process {pid}, not to {r.pid}"
        elif timed and r.time is not None and r.time < start - _START_SLACK:
            why = (
                f"it is dated {r.time.isoformat()}, before its session {r.session_id} started "
                f"({start.isoformat()})"
            )
        elif (
            timed
            and r.time is not None
            and any(s > start and s + _START_SLACK < r.time for s in starts.get(pid, ()))
        ):
            later = min(s for s in starts[pid] if s > start)
            why = (
                f"process {pid} started another session at {later.isoformat()}, so session "
                f"{r.session_id} had ended before this line's time ({r.time.isoformat()})"
            )
        if why is None:
            continue
        is_statement = r.kind in (MessageKind.STATEMENT, MessageKind.EXECUTE)
        if is_statement:
            out.forged.add(r.source)
        out.findings.append(
            make_finding(
                C.LOG_TAMPERED,
                key=("impossible", r.source.file, r.source.offset),
                reason=(
                    f"No server process could have written {r.source}: {why}. It was written "
                    "into the log by something else than the server"
                    + (" and is not paired with the audit rows." if is_statement else ".")
                ),
                time=r.time,
                database=r.database,
                user=r.user,
                application=r.application,
                client=r.client,
                session_id=r.session_id,
                vxid=r.vxid,
                statement=r.statement if is_statement else None,
                log_file=r.source.file,
                log_line=r.source.line,
                evidence={"log": _view(r), "audit": []},
            )
        )


def _lifecycle(
    records: Sequence[LogRecord],
    begin: datetime | None,
    clock: LogClock,
    inexact: frozenset[str],
    out: Verdict,
) -> None:
    """Restarts (info; low after a crash) and runs this log never saw (critical)."""
    shutdown: LogRecord | None = None
    for r in sorted(
        (r for r in records if r.kind == MessageKind.OTHER and r.time is not None),
        key=lambda r: (r.time or datetime.min, r.source.file, r.source.offset),
    ):
        if _IS_SHUT_DOWN.match(r.message):
            shutdown = r
            continue
        m = _WAS_SHUT_DOWN.match(r.message)
        if m:
            at, _issue = clock.parse(m.group(1))
            last = shutdown.time if shutdown is not None else None
            # ``at`` is whole seconds, truncated, and never later than the "is shut
            # down" line of the same shutdown: a later one is another run's.
            unseen = (
                r.source.file not in inexact
                and at is not None
                and (
                    (last is not None and at > last)
                    or (last is None and begin is not None and at > begin + 2 * _START_SLACK)
                )
            )
            if unseen:
                assert at is not None
                since = (
                    f"the last shutdown it shows ({last.isoformat()})"
                    if last
                    else (f"the log read begins ({begin.isoformat() if begin else '?'})")
                )
                _life(
                    out,
                    r,
                    C.LOG_TAMPERED,
                    Severity.CRITICAL,
                    (
                        f"The server started at {r.time.isoformat() if r.time else '?'} and "
                        f"says it was last shut down at {at.isoformat()}, after {since}: the "
                        "cluster ran in between without writing to this log, as "
                        "postgres --single does (or a start with other log settings). "
                        "Nothing it did there reached either channel: event triggers do not "
                        "fire in single-user mode; compare the catalog."
                    ),
                )
            elif last is not None:  # (the log's first start is no restart)
                when = f"shut down at {at.isoformat()}" if at else "shut down"
                _life(
                    out,
                    r,
                    C.LOG_GAP,
                    Severity.INFO,
                    f"The server restarted: cleanly {when}, started again at "
                    f"{r.time.isoformat() if r.time else '?'}.",
                )
            shutdown = None
            continue
        if _INTERRUPTED.match(r.message):
            _life(
                out,
                r,
                C.LOG_GAP,
                Severity.LOW,
                f"The server restarted after a crash or an immediate shutdown "
                f"({r.message.strip()[:120]!r}): what was in flight was lost.",
            )
            shutdown = None


def _life(out: Verdict, r: LogRecord, cls: FindingClass, sev: Severity, reason: str) -> None:
    out.findings.append(
        make_finding(
            cls,
            key=("lifecycle", r.source.file, r.source.offset),
            reason=reason,
            severity=sev,
            time=r.time,
            log_file=r.source.file,
            log_line=r.source.line,
            command_tags=[],
            evidence={"log": _view(r), "audit": []},
        )
    )
