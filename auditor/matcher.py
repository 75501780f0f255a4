"""The matcher: pair logged statements with audit rows and explain every difference.

Inputs are evidence from the two channels, already read and windowed:

* log records (statement/execute lines that hold DDL or change a watched
  setting, ERROR records linked to them, the trigger's markers, and
  "parameter ... changed" lines);
* audit rows of every database where the auditor is installed, each with the
  digest recomputed from the row, and the commit status of every marker's xid.

Pairing (which firings belong to which logged statement, and to which
statement of its query string) is :mod:`auditor.pairing`; this module judges
each pair and what is left unpaired, and explains it.  Within one execution the
rows are split per statement of the query string (each statement's own
``ddl_command_end`` row closes its group; rows of extension scripts belong to
their ``CREATE/ALTER EXTENSION``; rows that belong to no top-level statement
came from functions: indirect DDL).

Accounting: every logged DDL record and every audit row ends up matched or in
exactly one finding; :class:`MatchResult` carries the counts that prove it.
"""

from __future__ import annotations

import operator
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from functools import cache
from pathlib import PurePath
from typing import Any, TypedDict

from auditor.classify import SettingChange, StatementClass, classify
from auditor.findings import make_finding
from auditor.marker import Marker, parse_marker
from auditor.model import (
    AuditEvent,
    Finding,
    FindingClass,
    LogRecord,
    MessageKind,
    Severity,
    SourceLocation,
)
from auditor.pairing import Anchors, Execution, Logged, group_executions, pair, split
from auditor.pairing import Firing as Firing  # re-exported: timeline.py imports it from here

C = FindingClass

_WEAKENING_VALUES = {
    "log_statement": {"none"},
    "event_triggers": {"off", "false", "0"},
    "logging_collector": {"off", "false", "0"},
    "log_min_messages": {"fatal", "panic"},
    "log_min_error_statement": {"fatal", "panic"},
    "session_replication_role": {"replica"},
}


@dataclass(frozen=True)
class Gap:
    """A stretch of the window that no readable log covers (from reconcile)."""

    start: datetime | None
    end: datetime | None
    reason: str
    file: str | None = None
    line: int | None = None

    def covers(self, t: datetime | None) -> bool:
        """Whether ``t`` falls in the gap; a gap with no known span covers no time
        (it is reported, but audit rows are not held against it)."""
        if t is None or (self.start is None and self.end is None):
            return False
        return (self.start is None or t >= self.start) and (self.end is None or t <= self.end)


@dataclass(frozen=True)
class MatchContext:
    """What the matcher needs to know about the installation and the window."""

    schema: str = "auditor"
    trigger_names: frozenset[str] = frozenset()
    #: Databases where the auditor is installed; None when unknown (no connection).
    monitored: frozenset[str] | None = None
    server_version_num: int = 150000
    gaps: tuple[Gap, ...] = ()
    #: Unpaired evidence newer than this is carried to the next run, not reported.
    carry_after: datetime | None = None
    #: Log records read only because their time, printed coarser than the window's start
    #: (``%t``: whole seconds), may lie after it; judged only if audit rows show it does.
    straddlers: frozenset[SourceLocation] = frozenset()
    #: The server's live ``log_statement`` (None: unknown), and its per-role and
    #: per-database overrides as (database, role, value): what the log can hold.
    log_statement: str | None = None
    log_statement_overrides: tuple[tuple[str | None, str | None, str], ...] = ()


@dataclass(frozen=True, slots=True)
class Step:
    """One step of the merged story of both channels (for ``auditor timeline``).

    A logged statement with its firings (``finding`` None when they agree), or
    firings no statement line explains, or a finding of its own (a gap, a
    reload) with neither.
    """

    time: datetime | None
    record: LogRecord | None
    firings: tuple[Firing, ...]
    finding: Finding | None


@dataclass
class MatchResult:
    findings: list[Finding]
    steps: list[Step] = field(default_factory=list)
    logged_ddl: int = 0
    audit_rows: int = 0
    matched: int = 0
    matched_rows: int = 0
    carried_records: list[LogRecord] = field(default_factory=list)
    carried_events: list[tuple[str, int]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


# -- evidence summaries for the report ------------------------------------------


def _record_view(rec: LogRecord, error: LogRecord | None = None) -> dict[str, object]:
    view: dict[str, object] = {
        "file": rec.source.file,
        "line": rec.source.line,
        "time": rec.time.isoformat() if rec.time else None,
        "kind": rec.kind.value,
        "severity": rec.severity,
        "message": rec.message,
        "session_id": rec.session_id,
        "vxid": rec.vxid,
        "pid": rec.pid,
        "user": rec.user,
        "database": rec.database,
        "application": rec.application,
        "client": rec.client,
    }
    if rec.protocol is not None:
        view["protocol"] = rec.protocol.value
    if rec.parameters:
        view["parameters"] = ", ".join(f"{k} = {v}" for k, v in rec.parameters)
    if error is not None:
        view["sqlstate"] = error.sqlstate
        view["error"] = error.message
        view["error_line"] = error.source.line
    return {k: v for k, v in view.items() if v is not None}


def _firing_view(f: Firing) -> dict[str, object]:
    view: dict[str, object] = {"id": f.id, "database": f.database, "event": f.event_name}
    view["command_tag"] = f.tag
    if f.event is not None:
        e = f.event
        view.update(
            objects=[
                {
                    "type": o.object_type,
                    "identity": o.object_identity,
                    "in_extension": o.in_extension,
                }
                for o in e.objects
            ],
            session_user=e.session_user,
            current_user=e.current_user,
            login_user=e.login_user,
            client=f"{e.client_addr}:{e.client_port}" if e.client_addr else "local socket",
            application=e.application_name,
            statement_time=e.statement_time.isoformat(),
            clock_time=e.clock_time.isoformat(),
            session_id=e.session_id,
            vxid=e.vxid,
            xid=e.xid,
            row_xmin=e.row_xmin,
        )
        if e.database_in_row is not None:
            view["database_in_row"] = e.database_in_row
    else:
        view["row"] = "absent"
    if f.marker is not None and f.marker_record is not None:
        view["marker"] = f"{f.marker_record.source.file}:{f.marker_record.source.line}"
        view["marker_xid"] = f.marker.xid
        view["xact_status"] = f.status or "unknown"
        if f.event is not None:
            view["digest"] = "matches" if not f.altered else "DIFFERS"
    else:
        view["marker"] = "absent"
    return view


def _short(path: str) -> str:
    return PurePath(path).name


# -- the matcher -------------------------------------------------------------------


class Matcher:
    """Pairs the two channels; :meth:`run` gives findings and the accounting."""

    def __init__(
        self,
        records: Iterable[LogRecord],
        events: Iterable[AuditEvent],
        xact_status: Mapping[tuple[str, int], str | None],
        ctx: MatchContext,
    ) -> None:
        self.ctx = ctx
        self.findings: list[Finding] = []
        self.result = MatchResult(self.findings)
        self._gap_rows: dict[int, list[Firing]] = defaultdict(list)
        self._trigger_change_list: list[tuple[Logged, StatementClass]] | None = None
        self._impersonations: dict[tuple[str, str], _ImpersonationRun] = {}
        statements: list[LogRecord] = []
        errors: list[LogRecord] = []
        markers: list[tuple[LogRecord, Marker]] = []
        self.others: list[LogRecord] = []
        self.forged: list[tuple[LogRecord, Marker]] = []
        # Only the first marker of a statement carries its STATEMENT text; the others
        # inherit it from the previous marker of the same session and transaction.
        last_text: dict[tuple[str | None, str | None, int | None], str] = {}
        for rec in sorted(records, key=_time_key):
            if rec.kind in (MessageKind.STATEMENT, MessageKind.EXECUTE):
                statements.append(rec)
            elif rec.kind == MessageKind.ERROR:
                errors.append(rec)
            elif rec.kind == MessageKind.MARKER:
                m = parse_marker(rec.message)
                if (
                    m is not None
                    and m.schema == ctx.schema
                    and forged_marker(rec.context, m.schema)
                ):
                    self.forged.append((rec, m))
                elif m is not None and m.schema == ctx.schema:
                    key = (rec.session_id, rec.vxid, None if rec.session_id else rec.pid)
                    if rec.statement:
                        last_text[key] = rec.statement
                    elif key in last_text:
                        rec = _with_statement(rec, last_text[key])
                    markers.append((rec, m))
            else:
                self.others.append(rec)
        self.logged = self._logged_statements(statements, errors)
        self.firings = self._firings(list(events), markers, xact_status)
        self.uses_session = any(r.session_id for r in statements) or not statements

    # -- building blocks ---------------------------------------------------------
    def _logged_statements(
        self, statements: list[LogRecord], errors: list[LogRecord]
    ) -> list[Logged]:
        by_loc: dict[SourceLocation, LogRecord] = {}
        for err in errors:
            if err.failed_statement is not None:
                by_loc.setdefault(err.failed_statement, err)
        out = []
        for rec in sorted(statements, key=_time_key):
            text = rec.statement or ""
            cls = classify(text, server_version_num=self.ctx.server_version_num)
            if rec.prepare_text and not cls.is_relevant:
                # Simple-protocol EXECUTE: judge by the prepared statement it runs.
                cls = classify(rec.prepare_text, server_version_num=self.ctx.server_version_num)
            out.append(Logged(rec, text, cls, by_loc.get(rec.source)))
        return out

    def _firings(
        self,
        events: list[AuditEvent],
        markers: list[tuple[LogRecord, Marker]],
        xact_status: Mapping[tuple[str, int], str | None],
    ) -> list[Firing]:
        by_id: dict[tuple[str, int], tuple[LogRecord, Marker]] = {}
        for rec, m in markers:
            by_id.setdefault((rec.database or "", m.id), (rec, m))
        firings = []
        for e in events:
            found = by_id.pop((e.database, e.id), None)
            if found is None:
                firings.append(Firing(e.database, e.id, e, None, None, None))
            else:
                rec, m = found
                status = xact_status.get((e.database, m.xid))
                firings.append(Firing(e.database, e.id, e, m, rec, status))
        for (db, ident), (mrec, mk) in by_id.items():
            firings.append(Firing(db, ident, None, mk, mrec, xact_status.get((db, mk.xid))))
        self.result.audit_rows = len(events)
        return firings

    def _statement_verdicts(
        self, lg: Logged, chunks: list[list[Firing]]
    ) -> tuple[list[tuple[FindingClass, Severity | None, str]], list[Firing]]:
        """One verdict per non-matched DDL statement of a logged record; and its firings."""
        rec = lg.record
        verdicts: list[tuple[FindingClass, Severity | None, str]] = []
        used: list[Firing] = []
        db = rec.database or ""
        unmonitored = self.ctx.monitored is not None and db not in self.ctx.monitored
        k = 0
        for s in lg.cls.statements:
            chunk: list[Firing] = []
            if s.fires_ddl_command_end:
                chunk = chunks[k] if k < len(chunks) else []
                k += 1
                used.extend(chunk)
            if not (s.schema_change or s.settings):
                continue
            where = (
                f"{s.command_tag}" if len(lg.cls.statements) == 1 else f"statement {s.text[:80]!r}"
            )
            drift = self._setting_drift(s.settings)
            if s.event_trigger is not None:
                ours = bool(set(s.event_trigger.names) & self.ctx.trigger_names)
                sev = Severity.CRITICAL if ours else None
                what = "the auditor's own trigger" if ours else "an event trigger"
                verdicts.append(
                    (
                        C.EVENT_TRIGGER_DDL,
                        sev,
                        f"{where} ({s.event_trigger.action} of {what}: "
                        f"{', '.join(s.event_trigger.names)}).",
                    )
                )
            elif drift is not None and s.is_ddl:
                verdicts.append((C.CONFIG_DRIFT, drift[0], f"{where}: {drift[1]}"))
            elif s.is_ddl and self._touches_audit_objects(s):
                verdicts.append(
                    (
                        C.CONFIG_DRIFT,
                        Severity.CRITICAL,
                        f"{where} changes the auditor's own objects in schema {self.ctx.schema!r}.",
                    )
                )
            elif drift is not None:
                verdicts.append((C.CONFIG_DRIFT, drift[0], f"{where}: {drift[1]}"))
            elif s.unauditable_reason:
                high = s.command_tag == "ALTER SYSTEM" or s.grants_superuser
                extra = " It grants superuser-level power." if s.grants_superuser else ""
                verdicts.append(
                    (
                        C.UNAUDITABLE_DDL,
                        Severity.HIGH if high else None,
                        f"{where}: {s.unauditable_reason}.{extra}",
                    )
                )
            elif s.fires_ddl_command_end:
                verdicts.extend(self._eligible_verdict(lg, s, chunk, where, unmonitored))
        return verdicts, used

    def _eligible_verdict(
        self,
        lg: Logged,
        s: StatementClass,
        chunk: list[Firing],
        where: str,
        unmonitored: bool,
    ) -> list[tuple[FindingClass, Severity | None, str]]:
        rows = [f for f in chunk if f.event is not None]
        markers_only = [f for f in chunk if f.event is None]
        if unmonitored and not chunk:
            return [
                (C.UNMONITORED_DATABASE, None, f"{where} ran in database {lg.record.database!r}.")
            ]
        altered = [f for f in rows if f.altered]
        if altered:
            ids = ", ".join(str(f.id) for f in altered)
            return [
                (
                    C.AUDIT_ROW_ALTERED,
                    None,
                    f"{where}: audit row(s) {ids} differ from their markers.",
                )
            ]
        gone = [f for f in markers_only if f.status not in ("aborted", "in progress")]
        if rows and gone:
            # Its other rows survive (e.g. DROP's sql_drop row), so the statement
            # committed: the rows with only a marker were deleted.
            ids = ", ".join(str(f.id) for f in gone)
            return [(C.AUDIT_ROW_MISSING, None, f"{where}: audit row(s) {ids} are gone.")]
        if rows and not any(f.event_name == "ddl_command_end" for f in chunk):
            # Every successful eligible statement fires ddl_command_end once; a statement
            # with only its table_rewrite/sql_drop rows ran with that trigger disabled.
            kinds = "/".join(sorted({f.event_name for f in rows}))
            ids = ", ".join(str(f.id) for f in rows)
            return [
                (
                    C.UNREPORTED_DDL,
                    None,
                    f"{where} left no ddl_command_end firing (row or marker), only {kinds} "
                    f"row(s) {ids}.{self._why_unreported(lg)}",
                )
            ]
        if rows:
            return self._attribution(lg, rows, where)
        if markers_only:
            statuses = {f.status for f in markers_only}
            if statuses <= {"aborted"}:
                return [(C.ROLLED_BACK_DDL, None, f"{where}: its transaction rolled back.")]
            if "in progress" in statuses:
                return [
                    (
                        C.ROLLED_BACK_DDL,
                        Severity.INFO,
                        f"{where}: its transaction was still in progress when reconcile ran.",
                    )
                ]
            unknown = (
                " (the server no longer knows that transaction's status)"
                if None in statuses
                else ""
            )
            ids = ", ".join(str(f.id) for f in markers_only)
            return [(C.AUDIT_ROW_MISSING, None, f"{where}: audit row(s) {ids} are gone{unknown}.")]
        if lg.error is not None:
            return [(C.FAILED_DDL, None, f"{where} failed: {lg.error.message}")]
        if unmonitored:
            return [
                (C.UNMONITORED_DATABASE, None, f"{where} ran in database {lg.record.database!r}.")
            ]
        return [
            (
                C.UNREPORTED_DDL,
                None,
                f"{where} left no audit row and no marker.{self._why_unreported(lg)}",
            )
        ]

    def _attribution(
        self, lg: Logged, rows: list[Firing], where: str
    ) -> list[tuple[FindingClass, Severity | None, str]]:
        """Who ran it, by both channels: agreement, impersonation, or a real disagreement.

        The log's ``%u`` is the authenticated user; the row has that login user and the
        session user, which ``SET SESSION AUTHORIZATION`` changes.  Both channels agree
        when the row's login user is the log's user: a session user different from it
        is IMPERSONATED_DDL (both roles named).  A login user or database the log does
        not show is ATTRIBUTION_MISMATCH.
        """
        rec = lg.record
        impersonated: list[tuple[FindingClass, Severity | None, str]] = []
        for f in rows:
            assert f.event is not None
            e = f.event
            if rec.database and e.database != rec.database:
                return [
                    (
                        C.ATTRIBUTION_MISMATCH,
                        None,
                        f"{where}: the log says database {rec.database!r}, audit row {e.id} "
                        f"is in {e.database!r}.",
                    )
                ]
            if not rec.user:
                continue
            if e.login_user is not None and e.login_user != rec.user:
                return [
                    (
                        C.ATTRIBUTION_MISMATCH,
                        None,
                        f"{where}: the log says user {rec.user!r}, audit row {e.id} says the "
                        f"login user was {e.login_user!r} (session_user {e.session_user!r}).",
                    )
                ]
            if e.session_user != rec.user:
                if e.login_user is None:
                    return [
                        (
                            C.ATTRIBUTION_MISMATCH,
                            None,
                            f"{where}: the log says user {rec.user!r}, audit row {e.id} says "
                            f"session_user {e.session_user!r} and records no login user.",
                        )
                    ]
                if not impersonated:
                    impersonated.append(
                        (
                            C.IMPERSONATED_DDL,
                            None,
                            f"{where}: login user {rec.user!r} ran it as {e.session_user!r} "
                            f"(SET SESSION AUTHORIZATION; audit row {e.id}).",
                        )
                    )
        return impersonated

    def _why_unreported(self, lg: Logged) -> str:
        """Point at the likely cause seen earlier in the same log, if any."""
        t = lg.record.time
        here = _time_key(lg.record)  # %m has milliseconds: same-ms lines keep log order
        for other, s in reversed(self._trigger_changes()):
            if other.record.time is None or t is None or _time_key(other.record) >= here:
                continue
            return (
                f" Earlier, {other.record.user or '?'} ran "
                f"'{s.text[:80]}' ({_short(other.record.source.file)}:"
                f"{other.record.source.line})."
            )
        return ""

    def _trigger_changes(self) -> list[tuple[Logged, StatementClass]]:
        """Logged statements that disable, enable or drop the auditor's triggers, in order,
        each with its first such statement (found once: a run may hold many UNREPORTED)."""
        if self._trigger_change_list is None:
            found = []
            for other in self.logged:
                for s in other.cls.statements:
                    et = s.event_trigger
                    if (
                        et is not None
                        and set(et.names) & self.ctx.trigger_names
                        and et.action in ("disable", "enable", "enable replica", "drop")
                    ):
                        found.append((other, s))
                        break
            self._trigger_change_list = found
        return self._trigger_change_list

    def _touches_audit_objects(self, s: StatementClass) -> bool:
        schema = self.ctx.schema
        if schema not in s.text:  # cheap test first: objects needs a second parse
            return False
        return any(o == schema or o.startswith(schema + ".") for o in s.objects)

    @staticmethod
    def _setting_drift(changes: Sequence[SettingChange]) -> tuple[Severity, str] | None:
        if not changes:
            return None
        worst: tuple[Severity, str] | None = None
        for c in changes:
            value = (c.value or "").strip("'").lower()
            weak = value in _WEAKENING_VALUES.get(c.name, set()) or c.name == "ALL"
            sev = Severity.CRITICAL if weak else Severity.HIGH
            text = (
                f"{c.name} reset to its default ({c.scope})"
                if c.value is None
                else f"{c.name} set to {c.value!r} ({c.scope})"
            )
            text += (
                ": this weakens the channel" if weak else "; not weakening by itself, but review it"
            )
            if worst is None or sev.rank > worst[0].rank:
                worst = (sev, text)
        return worst

    # -- findings ------------------------------------------------------------------------
    def _add(
        self,
        cls: FindingClass,
        *,
        accounts_log: bool | int = False,
        step_record: LogRecord | None = None,
        step_firings: Sequence[Firing] = (),
        **kw: Any,
    ) -> Finding:
        f = make_finding(cls, accounts_logged_ddl=int(accounts_log), **kw)
        self.findings.append(f)
        self.result.steps.append(Step(f.time, step_record, tuple(step_firings), f))
        return f

    def _logged_finding(
        self,
        lg: Logged,
        verdicts: list[tuple[FindingClass, Severity | None, str]],
        firings: list[Firing],
    ) -> None:
        from auditor.findings import DEFAULT_SEVERITY

        def sev(v: tuple[FindingClass, Severity | None, str]) -> Severity:
            return v[1] or DEFAULT_SEVERITY[v[0]]

        worst = max(verdicts, key=lambda v: (sev(v).rank, -list(C).index(v[0])))
        reasons = " ".join(dict.fromkeys(v[2] for v in verdicts))
        rec = lg.record
        tags = [s.command_tag for s in lg.cls.statements if s.schema_change or s.settings]
        self._add(
            worst[0],
            accounts_log=True,
            step_record=rec,
            step_firings=firings,
            key=(_short(rec.source.file), rec.source.offset, rec.source.line),
            reason=reasons,
            severity=sev(worst),
            time=rec.time,
            **_who_both(rec, firings),
            command_tags=tags or [lg.cls.statements[0].command_tag if lg.cls.statements else "???"],
            statement=lg.text,
            audit_event_ids=[f.id for f in firings if f.event is not None],
            log_file=rec.source.file,
            log_line=rec.source.line,
            evidence={
                "log": _record_view(rec, lg.error),
                "audit": [_firing_view(f) for f in firings],
            },
        )

    def _firings_finding(
        self,
        cls: FindingClass,
        firings: list[Firing],
        reason: str,
        severity: Severity | None = None,
    ) -> None:
        first = firings[0]
        e = next((f.event for f in firings if f.event is not None), None)
        rec = first.marker_record
        self._add(
            cls,
            step_firings=firings,
            key=(first.database, tuple(f.id for f in firings)),
            reason=reason,
            severity=severity,
            time=first.time,
            database=first.database,
            user=e.session_user if e else (rec.user if rec else None),
            application=e.application_name if e else (rec.application if rec else None),
            client=(
                f"{e.client_addr}:{e.client_port}"
                if e and e.client_addr
                else (rec.client if rec else None)
            ),
            session_id=e.session_id if e else (rec.session_id if rec else None),
            vxid=e.vxid if e else (rec.vxid if rec else None),
            command_tags=[f.tag for f in firings],
            statement=e.query if e else (rec.statement if rec else None),
            audit_event_ids=[f.id for f in firings if f.event is not None],
            log_file=rec.source.file if rec else None,
            log_line=rec.source.line if rec else None,
            evidence={"log": None, "audit": [_firing_view(f) for f in firings]},
        )

    def _carry(self, t: datetime | None) -> bool:
        return self.ctx.carry_after is not None and t is not None and t > self.ctx.carry_after

    def _gap_for(self, t: datetime | None) -> int | None:
        for i, gap in enumerate(self.ctx.gaps):
            if gap.covers(t):
                return i
        return None

    def _unpaired_execution(self, ex: Execution) -> None:
        """Firings no logged statement explains: indirect, unlogged, deleted, altered..."""
        if any(f.marker_record is None and f.event is None for f in ex.firings):
            return
        if self._carry(ex.time) and any(f.event is None or f.marker is None for f in ex.firings):
            self.result.carried_events.extend((f.database, f.id) for f in ex.firings if f.event)
            self.result.carried_records.extend(
                f.marker_record for f in ex.firings if f.marker_record is not None
            )
            self.result.audit_rows -= sum(1 for f in ex.firings if f.event)
            return
        altered = [f for f in ex.firings if f.altered]
        gone = [f for f in ex.firings if f.event is None]
        rows = [f for f in ex.firings if f.event is not None and not f.altered]
        if altered:
            self._firings_finding(
                C.AUDIT_ROW_ALTERED,
                altered,
                f"Audit row(s) {', '.join(str(f.id) for f in altered)} differ from their markers.",
            )
        if gone:
            aborted = [f for f in gone if f.status == "aborted"]
            committed = [f for f in gone if f.status != "aborted"]
            if aborted:
                self._firings_finding(
                    C.ROLLED_BACK_DDL,
                    aborted,
                    "No statement line in the log: the DDL ran inside a function, DO block or "
                    "procedure, and its transaction rolled back.",
                )
            if committed:
                unknown = any(f.status is None for f in committed)
                self._firings_finding(
                    C.AUDIT_ROW_MISSING,
                    committed,
                    "The markers' transaction "
                    + ("status is no longer known to the server." if unknown else "committed."),
                )
        if not rows:
            return
        query = ex.query or ""
        cls = classify(query, server_version_num=self.ctx.server_version_num)
        chunks, indirect = split(cls.statements, rows)
        top = [f for chunk in chunks for f in chunk]
        if top:
            gap = self._gap_for(ex.time)
            if gap is not None:
                self._gap_rows[gap].extend(top)
            elif (why := self._log_cannot_hold(top)) is not None:
                self._firings_finding(C.UNLOGGED_DDL, top, why, Severity.LOW)
            else:
                with_marker = all(f.marker is not None for f in top)
                reason = (
                    "Logging was suppressed for that session (e.g. SET log_statement = "
                    "'none'): the trigger's markers are in the log, but the statement line "
                    "is not."
                    if with_marker
                    else "Neither the statement line nor the trigger's markers are in the log "
                    "(logging suppressed for that session, or the row was inserted by hand)."
                )
                self._firings_finding(C.UNLOGGED_DDL, top, reason)
        if indirect:
            outer = ", ".join(s.command_tag for s in cls.statements) or "?"
            self._firings_finding(
                C.INDIRECT_DDL,
                indirect,
                f"The client sent {outer}; the DDL ran inside it.",
            )

    def _log_cannot_hold(self, top: list[Firing]) -> str | None:
        """Why the log has no line for these firings by design, or None when it should.

        PostgreSQL 17+ fires event triggers for ``REINDEX``, but ``log_statement``
        logs it only at ``all`` (it is not DDL to ``GetCommandLogLevel()``).  The
        server's live value decides, with its per-role and per-database overrides
        (``ALTER ROLE/DATABASE ... SET``); a session's own ``SET`` is not known.
        """
        if self.ctx.server_version_num < 170000 or any(f.tag != "REINDEX" for f in top):
            return None
        e = next((f.trusted_event for f in top if f.trusted_event is not None), None)
        role = (e.login_user or e.session_user) if e is not None else None
        level = self._log_statement_for(top[0].database, role)
        if level == "all":
            return None
        shown = f"log_statement = {level!r}" if level else "log_statement below 'all'"
        return (
            f"REINDEX fires event triggers on PostgreSQL 17 and later, but {shown} does "
            "not log it (only 'all' does): the log cannot hold this statement, so the audit "
            "row is its only record."
        )

    def _log_statement_for(self, database: str | None, role: str | None) -> str | None:
        """The ``log_statement`` a session of ``role`` in ``database`` starts with."""
        best: tuple[int, str] | None = None
        for db, r, value in self.ctx.log_statement_overrides:
            if (db is not None and db != database) or (r is not None and r != role):
                continue
            rank = (2 if r is not None else 0) + (1 if db is not None else 0)
            if best is None or rank > best[0]:
                best = (rank, value)
        return best[1] if best is not None else self.ctx.log_statement

    def _other_records(self) -> None:
        """CONFIG_DRIFT from "parameter ... changed" lines and from logged SET statements."""
        from auditor.classify import WATCHED_SETTINGS

        for rec in self.others:
            m = _RELOAD_LINE.match(rec.message)
            if not m or m.group(1) not in WATCHED_SETTINGS:
                continue
            change = SettingChange(m.group(1), m.group(2), "server reload")
            sev, text = self._setting_drift([change]) or (Severity.HIGH, "")
            reason = f"The server reloaded its configuration: {text}."
            if rec.context:
                # The server writes this line itself, never from inside a function.
                first = rec.context.strip().split("\n", 1)[0]
                sev = Severity.CRITICAL
                reason = (
                    f"A forged server message: {rec.message!r} was raised by {first!r} in "
                    "a client session (RAISE LOG), not written by the server on a reload; "
                    "someone tried to mislead the reconcile."
                )
            self._record_finding(rec, reason, sev, ["SIGHUP"])

    def _forged_findings(self) -> None:
        """A marker-shaped LOG line that the audit trigger did not write."""
        for rec, m in self.forged:
            first = (rec.context or "").strip().split("\n", 1)[0]
            reason = (
                f"A forged audit marker: the log line claims audit row {m.id} "
                f"({m.tag}, xid {m.xid}) of schema {m.schema!r}, but its CONTEXT is "
                f"{first!r}, not the audit trigger {m.schema}.record_event(); someone "
                "wrote it with RAISE LOG to mislead the reconcile, which ignored it "
                "for pairing."
            )
            self._record_finding(rec, reason, Severity.CRITICAL, [m.tag], rec.statement)

    def _record_finding(
        self,
        rec: LogRecord,
        reason: str,
        severity: Severity,
        tags: list[str],
        statement: str | None = None,
    ) -> None:
        """A CONFIG_DRIFT that one non-statement log record explains on its own."""
        self._add(
            C.CONFIG_DRIFT,
            step_record=rec,
            key=(_short(rec.source.file), rec.source.offset),
            reason=reason,
            severity=severity,
            time=rec.time,
            **_who(rec),
            statement=statement,
            log_file=rec.source.file,
            log_line=rec.source.line,
            command_tags=tags,
            evidence={"log": _record_view(rec), "audit": []},
        )

    def _gap_findings(self) -> None:
        for i, gap in enumerate(self.ctx.gaps):
            rows = self._gap_rows.get(i, [])
            reason = gap.reason
            if rows:
                reason += (
                    f" {len(rows)} audit row(s) in that stretch cannot be checked against the log."
                )
            e = rows[0].event if rows else None
            self._add(
                C.LOG_GAP,
                key=(gap.file and _short(gap.file), gap.line, gap.start, gap.end, gap.reason),
                reason=reason,
                time=gap.start,
                database=e.database if e else None,
                audit_event_ids=[f.id for f in rows],
                log_file=gap.file,
                log_line=gap.line,
                evidence={
                    "log": {
                        "file": gap.file,
                        "line": gap.line,
                        "from": gap.start and gap.start.isoformat(),
                        "to": gap.end and gap.end.isoformat(),
                    },
                    "audit": [_firing_view(f) for f in rows],
                },
            )

    def run(self) -> MatchResult:
        anchors = Anchors(self.logged)
        executions = group_executions(self.firings, anchors)
        pairs = pair(self.logged, executions, anchors)
        left_out = 0
        for i, lg in enumerate(self.logged):
            ex = pairs.get(i)
            firings = ex.firings if ex else []
            ddl = lg.cls.schema_change or (lg.record.is_ddl is True)
            if not ddl and not lg.cls.is_relevant:
                continue  # a non-DDL statement kept by the reader (e.g. --all)
            if ex is None and lg.record.source in self.ctx.straddlers:
                # Printed in the second the window starts in (%t), and no audit row in the
                # window is its: it ran before the window (the previous run's).
                left_out += 1
                continue
            if lg.error is not None and ddl:
                self.result.logged_ddl += 1
                reason = f"It failed: {lg.error.message}"
                kept = [f.id for f in firings if f.event is not None]
                if kept:
                    reason += (
                        ". Except what its string committed before the error (a COMMIT "
                        f"inside it): audit row(s) {', '.join(map(str, kept))} stay."
                    )
                self._logged_finding(lg, [(C.FAILED_DDL, None, reason)], firings)
                continue
            if not ddl:
                # SET of a watched setting, visible only with log_statement = 'mod'/'all'.
                verdicts, _ = self._statement_verdicts(lg, [])
                if verdicts:
                    self._logged_finding(lg, verdicts, [])
                continue
            pending = ex is not None and any(f.status == "in progress" for f in ex.firings)
            if (ex is None or pending) and self._carry(lg.record.time):
                # Too close to the window's end to judge: its rows may not be committed yet.
                self.result.carried_records.append(lg.record)
                if ex is not None:
                    self.result.carried_records.extend(
                        f.marker_record for f in ex.firings if f.marker_record is not None
                    )
                    self.result.carried_events.extend(
                        (f.database, f.id) for f in ex.firings if f.event is not None
                    )
                    self.result.audit_rows -= sum(1 for f in ex.firings if f.event is not None)
                continue
            self.result.logged_ddl += 1
            chunks, indirect = split(lg.cls.statements, firings)
            verdicts, used = self._statement_verdicts(lg, chunks)
            if indirect:
                # Rows of functions the statement ran (e.g. CREATE TABLE AS SELECT f()).
                rows = [f for f in indirect if f.event is not None]
                if rows:
                    outer = lg.cls.statements[0].command_tag if lg.cls.statements else "?"
                    self._firings_finding(C.INDIRECT_DDL, rows, f"The DDL ran inside {outer}.")
            role = _impersonated_role(lg, verdicts, used)
            if role is not None:
                self._impersonation(lg, used, role, verdicts)
                continue
            self._end_impersonation(lg, used)
            if verdicts:
                self._logged_finding(lg, verdicts, used)
            else:
                self.result.matched += 1
                self.result.steps.append(Step(lg.record.time, lg.record, tuple(used), None))
                self.result.matched_rows += sum(1 for f in used if f.event is not None)
        for run in list(self._impersonations.values()):
            self._impersonation_finding(run)
        self._impersonations.clear()
        for ex in executions:
            if not ex.paired:
                self._unpaired_execution(ex)
        self._other_records()
        self._forged_findings()
        self._gap_findings()
        if not self.uses_session:
            self.result.notes.append(
                "The log prefix lacks %c (session id) and %v (virtual transaction id): "
                "statements were paired with audit rows on pid, user, database, time and text, "
                "which is weaker."
            )
        if left_out:
            self.result.notes.append(
                f"{left_out} logged statement(s) printed in the second the window starts in "
                "(the log prints whole seconds) had no audit row in the window: they ran "
                "before it and were left out."
            )
        return self.result

    # -- impersonation: one finding per run of statements as one role -------------------
    def _impersonation(
        self,
        lg: Logged,
        used: list[Firing],
        role: str,
        verdicts: list[tuple[FindingClass, Severity | None, str]],
    ) -> None:
        """Add a statement run as ``role`` to its session's open run (or start one).

        ``SET SESSION AUTHORIZATION`` is one act that every later statement of the
        session inherits (``pg_restore --use-set-session-authorization`` sets it
        once per object owner): one finding per run of consecutive statements of a
        session as one role, standing for all of them, says it once.
        """
        key = _session_key(lg, used)
        login = lg.record.user or ""
        run = self._impersonations.get(key)
        if run is not None and (run.role, run.login) != (role, login):
            self._impersonation_finding(self._impersonations.pop(key))
            run = None
        if run is None:
            run = self._impersonations[key] = _ImpersonationRun(key, login, role)
        run.items.append((lg, used, verdicts[0][2]))

    def _end_impersonation(self, lg: Logged, used: list[Firing]) -> None:
        """A statement of the session whose rows show another identity ends its run."""
        if any(f.trusted_event is not None for f in used):
            run = self._impersonations.pop(_session_key(lg, used), None)
            if run is not None:
                self._impersonation_finding(run)

    def _impersonation_finding(self, run: _ImpersonationRun) -> None:
        first, last = run.items[0][0], run.items[-1][0]
        firings = [f for _, fs, _ in run.items for f in fs]
        n = len(run.items)
        rec = first.record
        if n == 1:
            reason = run.items[0][2]
        else:
            reason = (
                f"{n} statements in a row of session {run.key[1]} ran as {run.role!r}, "
                f"logged in as {run.login!r} (SET SESSION AUTHORIZATION): from "
                f"{first.text[:80]!r} ({_short(rec.source.file)}:{rec.source.line}) to "
                f"{last.text[:80]!r} ({_short(last.record.source.file)}:"
                f"{last.record.source.line})."
            )
        tags = [
            s.command_tag
            for lg, _, _ in run.items
            for s in lg.cls.statements
            if s.schema_change or s.settings
        ]
        f = self._add(
            C.IMPERSONATED_DDL,
            accounts_log=n,
            step_record=rec,
            step_firings=run.items[0][1],
            key=(_short(rec.source.file), rec.source.offset, rec.source.line, run.role),
            reason=reason,
            time=rec.time,
            **_who_both(rec, firings),
            command_tags=tags,
            statement=first.text,
            audit_event_ids=[f.id for f in firings if f.event is not None],
            log_file=rec.source.file,
            log_line=rec.source.line,
            evidence={
                "log": _record_view(rec),
                "audit": [_firing_view(f) for f in firings],
                "impersonated_role": run.role,
                "login_user": run.login,
                "statements": [
                    {"file": lg.record.source.file, "line": lg.record.source.line, "text": lg.text}
                    for lg, _, _ in run.items
                ],
            },
        )
        for lg, fs, _ in run.items[1:]:
            self.result.steps.append(Step(lg.record.time, lg.record, tuple(fs), f))


_RECORD_VALUES = operator.attrgetter(*(f.name for f in fields(LogRecord)))
_STATEMENT_AT = [f.name for f in fields(LogRecord)].index("statement")


def _with_statement(rec: LogRecord, text: str) -> LogRecord:
    """``replace(rec, statement=text)``, without its per-field bookkeeping (markers: 1M a night)."""
    values = list(_RECORD_VALUES(rec))
    values[_STATEMENT_AT] = text
    return LogRecord(*values)


class _Who(TypedDict):
    database: str | None
    user: str | None
    application: str | None
    client: str | None
    session_id: str | None
    vxid: str | None


def _who(rec: LogRecord) -> _Who:
    """The finding fields that say who ran something, as the log saw it."""
    return _Who(
        database=rec.database,
        user=rec.user,
        application=rec.application,
        client=rec.client,
        session_id=rec.session_id,
        vxid=rec.vxid,
    )


@dataclass
class _ImpersonationRun:
    """Consecutive statements of one session run as one role (see ``_impersonation``)."""

    key: tuple[str, str]
    login: str
    role: str
    items: list[tuple[Logged, list[Firing], str]] = field(default_factory=list)


def _impersonated_role(
    lg: Logged, verdicts: list[tuple[FindingClass, Severity | None, str]], used: list[Firing]
) -> str | None:
    """The role a statement ran as, when impersonation is all that is to say about it."""
    if not verdicts or any(v[0] != C.IMPERSONATED_DDL for v in verdicts):
        return None
    roles = {
        e.session_user
        for f in used
        if (e := f.trusted_event) is not None and e.session_user != lg.record.user
    }
    return roles.pop() if len(roles) == 1 else None


def _session_key(lg: Logged, used: list[Firing]) -> tuple[str, str]:
    """The session a logged statement ran in: the log's %c, else its rows' session id."""
    rec = lg.record
    if rec.session_id:
        return (rec.database or "", rec.session_id)
    e = next((f.trusted_event for f in used if f.trusted_event is not None), None)
    if e is not None:
        return (e.database, e.session_id)
    return (rec.database or "", f"pid {rec.pid}")


def _who_both(rec: LogRecord, firings: Sequence[Firing]) -> _Who:
    """Who ran a logged statement: the log's fields, and its rows' where the prefix
    has none (no ``%a``, ``%h`` or ``%c``), so allow-lists and filters still apply."""
    who = _who(rec)
    e = next((f.trusted_event for f in firings if f.trusted_event is not None), None)
    if e is not None:
        if who["application"] is None:
            who["application"] = e.application_name
        if who["client"] is None and e.client_addr:
            who["client"] = e.client_addr
        if who["session_id"] is None:
            who["session_id"] = e.session_id
    return who


def forged_marker(context: str | None, schema: str) -> bool:
    """A marker whose CONTEXT shows it was not raised by ``<schema>.record_event()``.

    The trigger function runs with its own search_path, so PL/pgSQL names it
    schema-qualified in the first CONTEXT line; no other function can carry that
    name, since only the auditor's owner can create functions in its schema.  A
    record without CONTEXT (``log_error_verbosity = terse``) cannot be told apart
    and is trusted.

    >>> forged_marker("PL/pgSQL function auditor.record_event() line 123 at RAISE", "auditor")
    False
    >>> forged_marker("PL/pgSQL function inline_code_block line 1 at RAISE", "auditor")
    True
    >>> forged_marker("PL/pgSQL function evil.record_event() line 123 at RAISE", "auditor")
    True
    >>> forged_marker(None, "auditor")
    False
    """
    return bool(context) and _trigger_context(schema).match(context or "") is None


@cache
def _trigger_context(schema: str) -> re.Pattern[str]:
    name = re.escape(schema)
    return re.compile(
        rf'\s*PL/pgSQL function (?:{name}|"{name}")\.record_event\(\) line \d+ at RAISE\s*(?:\n|$)'
    )


#: The server's own line for a setting a configuration reload changed or removed.
_RELOAD_LINE = re.compile(
    r'^parameter "([^"]+)" (?:changed to "(.*)"|removed from configuration file)'
)


def _time_key(rec: LogRecord) -> tuple[datetime, str, int]:
    return (rec.time or datetime.min, rec.source.file, rec.source.offset)


def match(
    records: Iterable[LogRecord],
    events: Iterable[AuditEvent],
    xact_status: Mapping[tuple[str, int], str | None],
    ctx: MatchContext,
) -> MatchResult:
    """Pair the channels and explain every difference (see the module docstring)."""
    return Matcher(records, events, xact_status, ctx).run()
