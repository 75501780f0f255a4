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
from datetime import datetime, timedelta
from typing import Any

from auditor.capture import AuditObjects
from auditor.classify import QueryClassification, StatementClass
from auditor.marker import Marker
from auditor.model import AuditEvent, LogRecord

#: %m is truncated to milliseconds; statement_timestamp() has microseconds.
_SLACK = timedelta(milliseconds=1)
#: Fallback pairing (no %c/%v): how far a row's time may be from its log line.
_PID_SLACK = timedelta(seconds=2)


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
        trigger function's own.
        """
        if (e := self.trusted_event) is not None:
            return bool(e.caller_context)
        ctx = self.marker_record.context if self.marker_record else None
        if ctx is None and self.event is not None:
            return bool(self.event.caller_context)
        return bool(ctx and "\n" in ctx.strip())


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


def group_executions(firings: list[Firing]) -> list[Execution]:
    """Group firings by session, vxid and query; split repeated runs by statement time."""
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
        starts = sorted(runs)
        for f in sorted((f for f in group if not f.trusted_event), key=lambda f: f.id):
            mt = f.time
            i = bisect.bisect_right(starts, mt) - 1 if mt is not None else -1
            if i >= 0:
                runs[starts[i]].firings.append(f)
            else:
                runs.setdefault(
                    mt or datetime.min, Execution(key, mt, query=key[3], database=key[0])
                ).firings.append(f)
        for ex in runs.values():
            ex.firings.sort(key=lambda f: f.id)
            out.append(ex)
    out.sort(key=lambda ex: (ex.time or datetime.min, ex.key[0], ex.firings[0].id))
    return out


def pair(logged: Sequence[Logged], executions: list[Execution]) -> dict[int, Execution]:
    """Logged statement index -> its execution."""
    full: dict[tuple[Any, ...], list[Execution]] = defaultdict(list)
    by_session: dict[tuple[Any, ...], list[Execution]] = defaultdict(list)
    by_pid: dict[tuple[Any, ...], list[Execution]] = defaultdict(list)
    for ex in executions:
        db, session, vxid, query, pid = ex.key
        full[(db, session, vxid, query)].append(ex)
        by_session[(db, session, query)].append(ex)
        by_pid[(db, pid, query)].append(ex)
    pairs: dict[int, Execution] = {}
    for i, lg in enumerate(logged):
        rec = lg.record
        if rec.session_id and rec.vxid and not rec.vxid.endswith("/0"):
            candidates = full.get((rec.database, rec.session_id, rec.vxid, lg.text), [])
            slack = _SLACK
        elif rec.session_id:
            candidates = by_session.get((rec.database, rec.session_id, lg.text), [])
            slack = _SLACK
        else:
            candidates = by_pid.get((rec.database, rec.pid, lg.text), [])
            slack = _PID_SLACK
        best = choose(rec.time, candidates, slack, exact=bool(rec.session_id))
        if best is not None:
            best.paired = True
            pairs[i] = best
    return pairs


def choose(
    t: datetime | None, candidates: list[Execution], slack: timedelta, exact: bool
) -> Execution | None:
    """The unpaired execution that belongs to a log line written at ``t``.

    The line is written when the statement starts: an execution with rows
    started at ``statement_time <= t`` (+ the truncation of ``%m``); one known
    only from its markers was seen at marker time ``>= t``.
    """
    free = [ex for ex in candidates if not ex.paired]
    if not free:
        return None
    if t is None:
        return free[0] if exact else None

    def distance(ex: Execution) -> timedelta | None:
        if ex.time is None:
            return timedelta(0)
        if ex.has_rows:
            return t - ex.time if ex.time <= t + slack else None
        return ex.time - t if ex.time + slack >= t else None

    scored = [(d, ex) for ex in free if (d := distance(ex)) is not None]
    if not scored:
        return None
    d, best = min(scored, key=lambda p: abs(p[0]))
    if exact or abs(d) <= slack + _PID_SLACK:
        return best
    return None


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
