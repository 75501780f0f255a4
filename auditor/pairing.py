"""Pairing: which audit-trigger firings belong to which logged statement.

The matcher (:mod:`auditor.matcher`) judges and explains; this module holds the
data's path before that: the firings of the trigger channel (a row, its marker,
or both), grouped into executions of one query string in one session
(:func:`executions`), each execution paired with the log record of the same
statement (:func:`pair`), and an execution's firings split per statement of
the query string (:func:`split`).

Pairing follows the spec (section 5): a logged statement and the audit rows of
one execution belong together when session id (``%c``), virtual transaction id
(``%v``) and query text (``current_query()``) agree; when the log lacks
``%c``/``%v`` the key falls back to pid and text, with time proximity.
"""

from __future__ import annotations

import bisect
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from auditor.capture import AuditObjects
from auditor.classify import QueryClassification, StatementClass
from auditor.mailcore import without_script_frames
from auditor.marker import Marker
from auditor.model import AuditEvent, LogRecord

#: How long before its "duration: ... statement:" line (written at the end) a statement
#: may have started beyond its logged duration, and, when no firing time is known, how
#: long before its log line.
_PID_SLACK = timedelta(seconds=2)

# Sorts a record or run without a placed time first; aware, as every placed time is.
_NO_TIME = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class Firing:
    """One firing of an audit trigger: its row, its marker, or both."""

    database: str
    id: int
    event: AuditEvent | None
    marker: Marker | None
    marker_record: LogRecord | None
    status: str | None  # commit status of the marker's xid (None: unknown/not asked)
    #: The row, unless its marker shows it was changed: then the log's side is
    #: trusted.  An altered row's session, vxid, query, time or tag may be exactly
    #: what the intruder changed, so pairing and timing use its marker's log record.
    trusted_event: AuditEvent | None = field(init=False)

    def __post_init__(self) -> None:
        altered = (
            self.event is not None
            and self.marker is not None
            and self.event.digest != self.marker.digest
        )
        object.__setattr__(self, "trusted_event", None if altered else self.event)

    @property
    def time(self) -> datetime | None:
        if (e := self.trusted_event) is not None:
            return e.statement_time
        return self.marker_record.time if self.marker_record else None

    @property
    def tag(self) -> str:
        if (e := self.trusted_event) is not None:
            return e.command_tag
        if self.marker is not None:
            return self.marker.tag
        return self.event.command_tag if self.event is not None else "???"

    @property
    def event_name(self) -> str:
        if (e := self.trusted_event) is not None:
            return e.event
        if self.marker is not None:
            return self.marker.event
        return self.event.event if self.event is not None else "?"

    @property
    def altered(self) -> bool:
        return self.event is not None and self.trusted_event is None

    @property
    def in_extension(self) -> bool:
        if self.event is None:
            return False
        objects = self.event.objects
        if isinstance(objects, AuditObjects):  # answers without parsing the objects
            return objects.in_extension()
        return any(o.in_extension for o in objects)

    @property
    def nested(self) -> bool:
        """Fired for DDL run by a DO block, function or procedure, not by the client.

        The row's ``caller_context`` is the call stack below the trigger (NULL when
        the client sent the statement); a marker's CONTEXT has a line more than the
        trigger function's own.  PostgreSQL 18's frame of an extension script is no
        caller (:func:`auditor.mailcore.without_script_frames`).
        """
        if (e := self.trusted_event) is not None:
            return without_script_frames(e.caller_context) is not None
        ctx = self.marker_record.context if self.marker_record else None
        if ctx is None and self.event is not None:
            return without_script_frames(self.event.caller_context) is not None
        _, _, below = (ctx or "").strip().partition("\n")
        return without_script_frames(below) is not None


@dataclass(slots=True)
class Execution:
    """The firings of one execution of one query string in one session."""

    key: tuple[Any, ...]
    time: datetime | None
    firings: list[Firing] = field(default_factory=list)
    query: str | None = None
    database: str = ""
    paired: bool = False

    @property
    def has_rows(self) -> bool:
        """Timed by its rows' statement time (else by its markers' log time)."""
        return any(f.trusted_event is not None for f in self.firings)

    @property
    def vxid(self) -> str | None:
        return self.key[2] if len(self.key) > 2 else None

    @property
    def first_id(self) -> int:
        return min(f.id for f in self.firings)

    @property
    def first_clock(self) -> datetime | None:
        """When the trigger first fired (``clock_timestamp()`` of the earliest row)."""
        times = [e.clock_time for f in self.firings if (e := f.trusted_event) is not None]
        return min(times) if times else None

    @property
    def login_user(self) -> str | None:
        return next(
            (e.login_user for f in self.firings if (e := f.trusted_event) and e.login_user), None
        )

    @property
    def first_marker(self) -> LogRecord | None:
        """The first marker line of the execution in the log (None: none was read)."""
        recs = [f.marker_record for f in self.firings if f.marker_record is not None]
        return min(recs, key=_order) if recs else None


@dataclass(frozen=True, slots=True)
class Logged:
    record: LogRecord
    text: str
    cls: QueryClassification
    error: LogRecord | None


def exec_key(f: Firing) -> tuple[Any, ...]:
    if (e := f.trusted_event) is not None:
        return (e.database, e.session_id, e.vxid, e.query or "", e.backend_pid)
    rec = f.marker_record
    assert rec is not None
    return (f.database, rec.session_id, rec.vxid, rec.statement or "", rec.pid)


def group_executions(firings: list[Firing], anchors: Anchors | None = None) -> list[Execution]:
    """Group firings by session, vxid and query into executions of the query string.

    The rows of one execution share ``statement_timestamp()`` (microseconds).  A firing
    known only from its marker (its row deleted, or rolled back) joins the execution
    whose statement its backend logged last before the marker (``anchors``), else the
    one that started last before the marker's time; markers after the same statement
    line make one execution.
    """
    groups: dict[tuple[Any, ...], list[Firing]] = defaultdict(list)
    for f in firings:
        groups[exec_key(f)].append(f)
    out: list[Execution] = []
    for key, group in groups.items():
        with_rows = sorted((f for f in group if f.trusted_event), key=lambda f: f.id)
        runs: dict[datetime, Execution] = {}
        for f in with_rows:
            assert f.event is not None
            t = f.event.statement_time
            if t not in runs:
                runs[t] = Execution(key, t, query=key[3], database=key[0])
            runs[t].firings.append(f)
        loose = sorted((f for f in group if not f.trusted_event), key=lambda f: f.id)
        execs = list(runs.values())
        if loose:
            by_anchor: dict[int, Execution] = {}
            if anchors is not None:
                for ex in execs:
                    a = anchors.last_before(ex.first_marker)
                    if a is not None and a >= 0:
                        by_anchor.setdefault(a, ex)
            starts = sorted(runs)
            by_time: dict[datetime, Execution] = {}
            for f in loose:
                a = anchors.last_before(f.marker_record) if anchors is not None else None
                if a is not None and a >= 0:
                    found = by_anchor.get(a)
                    if found is None:
                        found = by_anchor[a] = Execution(key, f.time, query=key[3], database=key[0])
                        execs.append(found)
                    found.firings.append(f)
                    continue
                mt = f.time
                i = bisect.bisect_right(starts, mt) - 1 if mt is not None else -1
                if i >= 0:
                    runs[starts[i]].firings.append(f)
                    continue
                alone = by_time.get(mt or _NO_TIME)
                if alone is None:
                    alone = by_time[mt or _NO_TIME] = Execution(
                        key, mt, query=key[3], database=key[0]
                    )
                    execs.append(alone)
                alone.firings.append(f)
        for ex in execs:
            ex.firings.sort(key=lambda f: f.id)
            out.append(ex)
    out.sort(key=lambda ex: (ex.time or _NO_TIME, ex.key[0], ex.firings[0].id))
    return out


def pair(
    logged: Sequence[Logged], executions: list[Execution], anchors: Anchors | None = None
) -> dict[int, Execution]:
    """Logged statement index -> its execution (the firings of every transaction it ran).

    Candidates come from the keys of the spec: same database and query text, and
    the same session id, or the same pid when the log has no session id.

    * **Certain**: the log's vxid is the execution's.  Time only breaks ties
      between executions of the same text in one transaction; it never rejects.
    * **Evidence otherwise** (no ``%v``, no ``%c``, or a statement that commits
      internally and fired under a later vxid): the execution must fit the log
      line in time, at the precision the log printed it (``statement_timestamp()``
      <= the line's time <= the first firing's ``clock_timestamp()``), and, when
      its markers are in the log, the line must be the last statement its backend
      logged before them (a backend logs a statement, then runs it).  In the
      fallback the login user must agree too.  Among several such candidates the
      pairing keeps the order of each backend's lines and of its rows' ids, and
      then the closest times.

    A statement whose string spans transactions (``COMMIT`` inside it, or a
    command that commits internally) takes every execution that fits it.
    """
    exact: dict[tuple[Any, ...], list[Execution]] = defaultdict(list)
    by_session: dict[tuple[Any, ...], list[Execution]] = defaultdict(list)
    by_pid: dict[tuple[Any, ...], list[Execution]] = defaultdict(list)
    for ex in executions:
        db, session, vxid, query, pid = ex.key
        exact[(db, session, vxid, query)].append(ex)
        by_session[(db, session, query)].append(ex)
        by_pid[(db, pid, query)].append(ex)
    if anchors is None:
        anchors = Anchors(logged)
    taken: dict[int, list[Execution]] = {}
    # 1. Session, vxid and text agree: certain.
    certain: dict[tuple[Any, ...], list[tuple[int, Execution, float]]] = defaultdict(list)
    for i, lg in enumerate(logged):
        rec = lg.record
        if not _pairable(lg):
            continue
        if rec.session_id and _vxid_known(rec.vxid):
            key = (rec.database, rec.session_id, rec.vxid, lg.text)
            for ex in exact.get(key, ()):
                certain[key].append((i, ex, _distance(rec, ex)))
    for group in certain.values():
        for i, ex, _ in _order_preserving(group):
            _take(taken, i, ex)
    # 2. The rest, by the evidence of time and order, per backend.
    streams: dict[tuple[Any, ...], list[tuple[int, Execution, float]]] = defaultdict(list)
    fits: dict[int, list[Execution]] = defaultdict(list)
    for i, lg in enumerate(logged):
        rec = lg.record
        if not _pairable(lg):
            continue
        if rec.session_id:
            pool = by_session.get((rec.database, rec.session_id, lg.text), ())
            stream: tuple[Any, ...] = (rec.database, "c", rec.session_id)
        else:
            pool = by_pid.get((rec.database, rec.pid, lg.text), ())
            stream = (rec.database, "p", rec.pid)
        for ex in pool:
            if ex.paired:
                continue
            cost = _fits(i, lg, ex, anchors)
            if cost is not None:
                fits[i].append(ex)
                if i not in taken:
                    streams[stream].append((i, ex, cost))
    for cands in streams.values():
        for i, ex, _ in _order_preserving(cands):
            if not ex.paired:  # a log may mix prefixes: one execution, two streams
                _take(taken, i, ex)
    # 3. A string that spans transactions also takes the executions of its later ones.
    for i, exs in taken.items():
        if logged[i].cls.spans_transactions:
            for ex in fits.get(i, ()):
                if not ex.paired and _same_statement(exs[0], ex):
                    _take(taken, i, ex)
    return {i: _merged(exs) for i, exs in taken.items()}


def _pairable(lg: Logged) -> bool:
    """Statements that fire event triggers themselves can have firings of their own.

    The rest (a logged ``SET``, or ``SELECT f()`` under ``log_statement = 'all'``)
    still mark where their backend was (:class:`Anchors`); DDL that functions
    they call ran is left to the unpaired side: indirect DDL.
    """
    return lg.cls.schema_change or lg.record.is_ddl is True


def _take(taken: dict[int, list[Execution]], i: int, ex: Execution) -> None:
    ex.paired = True
    taken.setdefault(i, []).append(ex)


def _merged(exs: list[Execution]) -> Execution:
    if len(exs) == 1:
        return exs[0]
    first = exs[0]
    firings = sorted((f for ex in exs for f in ex.firings), key=lambda f: f.id)
    return Execution(first.key, first.time, firings, first.query, first.database, True)


def _same_statement(a: Execution, b: Execution) -> bool:
    """Two executions of one query string: rows share statement_timestamp()."""
    if a.has_rows and b.has_rows:
        return a.time == b.time
    return True  # markers only: the anchor already tied it to the same log line


def _vxid_known(vxid: str | None) -> bool:
    """A vxid the log printed for a live transaction (``N/0``: none assigned yet).

    >>> _vxid_known("3/117"), _vxid_known("3/0"), _vxid_known(None)
    (True, False, False)
    """
    return bool(vxid) and not str(vxid).endswith("/0")


def _later_vxid(vxid: str | None, than: str | None) -> bool:
    """The same backend's vxid for a later local transaction.

    >>> _later_vxid("3/20", "3/17"), _later_vxid("3/17", "3/17"), _later_vxid("4/20", "3/17")
    (True, False, False)
    """
    if not vxid or not than:
        return False
    b1, _, l1 = vxid.partition("/")
    b2, _, l2 = than.partition("/")
    return b1 == b2 and l1.isdigit() and l2.isdigit() and int(l1) > int(l2)


def _distance(rec: LogRecord, ex: Execution) -> float:
    """Seconds between a log line and an execution, for ties."""
    if rec.time is None or ex.time is None:
        return 0.0
    return abs((ex.time - rec.time).total_seconds())


#: Clock readings of the log line and of the trigger come from the same clock; this
#: much is allowed for rounding when comparing them.
_CLOCK_SLACK = timedelta(microseconds=1)
#: ``%t`` prints ``time(NULL)`` (PostgreSQL 13 and 14), which on Linux reads the kernel's
#: coarse clock: a tick (1-10 ms) behind the clock ``statement_timestamp()`` and ``%m``
#: read on a quiet machine, but more on a loaded VM: the real-world matrix (PG 14, RDS's
#: prefix, load 5 on 2 shared cores) printed 19:03:54 for statements whose
#: statement_timestamp() was 19:03:55.022-.029, a lag of at least 29 ms.
_COARSE_CLOCK_LAG = timedelta(milliseconds=250)


def time_span(rec: LogRecord) -> timedelta:
    """How much later than its printed time a line may really have been written.

    >>> from auditor.model import MessageKind, SourceLocation
    >>> at = SourceLocation("pg.log", 0, 1)
    >>> time_span(LogRecord(at, "LOG", MessageKind.OTHER, "", time_resolution_us=1000))
    datetime.timedelta(microseconds=1000)
    >>> time_span(LogRecord(at, "LOG", MessageKind.OTHER, "", time_resolution_us=1_000_000))
    datetime.timedelta(seconds=1, microseconds=250000)
    """
    res = timedelta(microseconds=rec.time_resolution_us)
    return res + _COARSE_CLOCK_LAG if rec.time_resolution_us >= 1_000_000 else res


def _fits(i: int, lg: Logged, ex: Execution, anchors: Anchors) -> float | None:
    """How far (seconds) the execution is from the log line, or None if it cannot be its."""
    rec = lg.record
    if (
        rec.session_id
        and _vxid_known(rec.vxid)
        and ex.vxid
        and ex.vxid != rec.vxid
        and not (lg.cls.spans_transactions and _later_vxid(ex.vxid, rec.vxid))
    ):
        # Another transaction of the session: only a string that spans transactions
        # runs part of itself under a later vxid.
        return None
    if not rec.session_id and rec.user and ex.login_user and ex.login_user != rec.user:
        return None
    if lg.error is not None and ex.has_rows and not lg.cls.spans_transactions:
        return None  # a statement that failed as a whole left no committed row
    marker = ex.first_marker
    if marker is not None:
        anchor = anchors.last_before(marker)
        if anchor is not None and anchor != i:
            return None
    t = rec.time
    if t is None:
        return 0.0 if rec.session_id or marker is not None else None
    res = time_span(rec)
    if ex.has_rows:
        st = ex.time
        assert st is not None
        if rec.duration_ms is not None:
            # "duration: ... statement: ..." is written when the statement ends.
            began = t - timedelta(milliseconds=rec.duration_ms)
            if not began - res - _PID_SLACK <= st <= t + res:
                return None
            return abs((st - began).total_seconds())
        if st > t + res + _CLOCK_SLACK:
            return None  # the statement started after its log line was written
        clock = ex.first_clock
        if clock is not None and clock + _CLOCK_SLACK < t:
            return None  # the trigger fired before the log line was written
        if clock is None and t - st > _PID_SLACK:
            return None
        return abs((t - st).total_seconds())
    mt = ex.time
    if mt is None:
        return 0.0
    if mt + _CLOCK_SLACK < t:
        return None  # a marker written before the statement's line
    return (mt - t).total_seconds()


class Anchors:
    """Where each backend's statement lines are, to place a marker after its statement."""

    def __init__(self, logged: Sequence[Logged]) -> None:
        self._lines: dict[tuple[Any, ...], tuple[list[tuple[Any, ...]], list[int]]] = {}
        for i, lg in enumerate(logged):
            key = self._stream(lg.record)
            if key is None:
                continue
            keys, idx = self._lines.setdefault(key, ([], []))
            keys.append(_order(lg.record))
            idx.append(i)

    @staticmethod
    def _stream(rec: LogRecord) -> tuple[Any, ...] | None:
        if rec.session_id:
            return ("c", rec.session_id)
        if rec.pid is not None:
            return ("p", rec.pid)
        return None

    def last_before(self, marker: LogRecord | None) -> int | None:
        """The statement the marker's backend logged last before the marker (its index in
        the logged statements; -1: none before it; None: that backend logged none)."""
        if marker is None:
            return None
        key = self._stream(marker)
        if key is None or key not in self._lines:
            return None
        keys, idx = self._lines[key]
        k = bisect.bisect_left(keys, _order(marker)) - 1
        return idx[k] if k >= 0 else -1


def _order(rec: LogRecord) -> tuple[Any, ...]:
    """Where a record is in the log: time, then file and offset (same-time lines)."""
    return (rec.time or _NO_TIME, rec.source.file, rec.source.offset)


def _order_preserving(
    cands: list[tuple[int, Execution, float]],
) -> list[tuple[int, Execution, float]]:
    """A largest set of (log line, execution) pairs in the same order on both sides.

    One backend logs its statements in the order it runs them, and its rows'
    ids grow in that order: of all one-to-one pairings that keep both orders,
    the one with the most pairs, then the least total time distance, wins.  A
    weighted longest increasing subsequence (Fenwick tree), O(n log n).

    >>> ex = [Execution((), None, [Firing("db", k, None, None, None, None)]) for k in (1, 2)]
    >>> [(i, e.first_id) for i, e, _ in _order_preserving([(0, ex[1], 0.1), (0, ex[0], 0.0),
    ...                                                     (1, ex[1], 0.0)])]
    [(0, 1), (1, 2)]
    """
    if not cands:
        return []
    ranks = {j: r for r, j in enumerate(sorted({ex.first_id for _, ex, _ in cands}), 1)}
    size = len(ranks)
    tree: list[tuple[int, float, int]] = [(0, 0.0, -1)] * (size + 1)
    back = [-1] * len(cands)
    score: list[tuple[int, float, int]] = [(0, 0.0, -1)] * len(cands)
    order = sorted(range(len(cands)), key=lambda k: (cands[k][0], -cands[k][1].first_id))
    for k in order:
        _, ex, cost = cands[k]
        r = ranks[ex.first_id]
        best: tuple[int, float, int] = (0, 0.0, -1)
        x = r - 1
        while x > 0:
            if tree[x] > best:
                best = tree[x]
            x -= x & -x
        mine = (best[0] + 1, best[1] - cost, k)
        back[k], score[k] = best[2], mine
        x = r
        while x <= size:
            if mine > tree[x]:
                tree[x] = mine
            x += x & -x
    k = max(range(len(cands)), key=lambda n: (score[n][0], score[n][1], -n))
    chosen: list[tuple[int, Execution, float]] = []
    while k >= 0:
        chosen.append(cands[k])
        k = back[k]
    chosen.reverse()
    return chosen


def split(
    statements: Sequence[StatementClass], firings: list[Firing]
) -> tuple[list[list[Firing]], list[Firing]]:
    """Assign firings to the firing statements in order; the rest are indirect."""
    eligible = [s for s in statements if s.fires_ddl_command_end]
    chunks: list[list[Firing]] = [[] for _ in eligible]
    indirect: list[Firing] = []
    pending: list[Firing] = []  # sql_drop / table_rewrite waiting for their statement
    k = 0
    for f in firings:
        if f.event_name != "ddl_command_end":
            pending.append(f)
            continue
        if f.in_extension:
            ext = next(
                (j for j in range(k, len(eligible)) if "EXTENSION" in eligible[j].command_tag),
                None,
            )
            if ext is not None:
                chunks[ext].extend([*pending, f])
                pending = []
                continue
        if k < len(eligible) and f.tag == eligible[k].command_tag and not f.nested:
            chunks[k].extend([*pending, f])
            pending = []
            k += 1
        else:
            indirect.extend([*pending, f])
            pending = []
    if pending:
        # sql_drop/table_rewrite without a closing ddl_command_end: the statement failed
        # or its end firing was lost; keep them with the next expected statement.
        if k < len(eligible):
            chunks[k].extend(pending)
        else:
            indirect.extend(pending)
    return chunks, indirect
