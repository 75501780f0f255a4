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

import bisect
import operator
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from datetime import UTC, datetime, timedelta
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
from auditor.restore import Installed, RestoredAuditor, RestoreTraces, restated
from auditor.tamper import (
    AuditorObjects,
    identified,
    names_target,
    path_changes,
    rows_target,
    shadow_schemas,
)
from auditor.weakening import RULES, Situation, Verdict, judge, packaged_pins

C = FindingClass

#: Statements whose only effect is to change settings.
_SETTINGS_ONLY_NODES = frozenset(
    {"VariableSetStmt", "AlterSystemStmt", "AlterRoleSetStmt", "AlterDatabaseSetStmt"}
)

# Sorts a record or run without a placed time first; aware, as every placed time is.
_NO_TIME = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True)
class Gap:
    """A stretch of the window that no readable log covers (from reconcile)."""

    start: datetime | None
    end: datetime | None
    reason: str
    file: str | None = None
    line: int | None = None
    #: LOG_GAP, or LOG_TAMPERED for a stretch someone took out (a file cut below what
    #: was read of it, with its first bytes unchanged).
    cls: FindingClass = FindingClass.LOG_GAP

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
    #: The auditor's own objects per database: DDL on them is tampering (auditor.tamper).
    auditor_objects: Mapping[str, AuditorObjects] = field(default_factory=dict)
    #: Per database, runs (first, last) of audit ids between the rows read that no row
    #: of the table holds (reconcile asks the table): each needs a marker, or a reason.
    id_gaps: Mapping[str, tuple[tuple[int, int], ...]] = field(default_factory=dict)
    #: The window: log records before its start or after its end were not read.
    window_start: datetime | None = None
    window_end: datetime | None = None
    #: The time of the last record the log files read hold (of any kind, also the ones
    #: the readers skip); None when unknown.
    log_end: datetime | None = None
    #: Settings ``<schema>.record_event()`` pins in its SET clause (None: as installed by
    #: this package), and the log formats read: what settings changes are judged against.
    pinned_settings: frozenset[str] | None = None
    log_formats: frozenset[str] = frozenset()
    #: False when the audit table was not read (no ``--dsn``): a marker then proves its
    #: trigger fired, not that its row was deleted.
    audit_read: bool = True
    #: The live auditor per database (auditor.restore): what a statement on it restates.
    installed: Mapping[str, Installed] = field(default_factory=dict)
    #: Databases whose auditor a restore of a dump created in the window.
    restored: Mapping[str, RestoredAuditor] = field(default_factory=dict)
    #: Where the log shows a restore of a dump touching an audit table.
    restore_traces: RestoreTraces = field(default_factory=RestoreTraces)
    #: Log records that read two ways (LOG_TAMPERED, auditor.logtrust): not paired;
    #: rows left without a line by them say so.
    ambiguous: tuple[LogRecord, ...] = ()
    #: The server's superuser roles (reconcile asks): membership in one is superuser power.
    superusers: frozenset[str] = frozenset()


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
        #: pgAudit lines of DDL run inside a function, DO, CALL or trigger.
        self.audits: list[LogRecord] = []
        # Only the first marker of a statement carries its STATEMENT text; the others
        # inherit it from the previous marker of the same session and transaction.
        last_text: dict[tuple[str | None, str | None, int | None], str] = {}
        ordered = sorted(records, key=_time_key)
        self.coverage = _Coverage.of(ordered, ctx.log_end)
        self.errors = [r for r in ordered if r.kind == MessageKind.ERROR]
        for rec in ordered:
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
            elif rec.kind == MessageKind.AUDIT:
                if rec.pgaudit is not None and rec.pgaudit.nested and rec.is_ddl:
                    self.audits.append(rec)
            else:
                self.others.append(rec)
        self.logged = self._logged_statements(statements, errors)
        every = list(events)
        # Rows that name another database than the one they are in, and that no marker of
        # this database claims, are copies (a restore of that database's dump, a
        # template): judged as copies, never paired with this database's statements.
        claimed = {(rec.database or "", m.id) for rec, m in markers}
        self.copies = [
            e for e in every if e.database_in_row is not None and (e.database, e.id) not in claimed
        ]
        self._copy_markers = {
            (rec.database or "", m.id): m
            for rec, m in markers
            if rec.database in {e.database_in_row for e in self.copies}
        }
        copied = {id(e) for e in self.copies}
        self.firings = self._firings(
            [e for e in every if id(e) not in copied], markers, xact_status
        )
        self.result.audit_rows = len(every)
        #: A marker without a database (a stderr prefix without %d) cannot be told
        #: apart from another database's: no row's marker is then judged absent.
        self._markers_unattributed = any(rec.database is None for rec, _ in markers)
        self._shadow_cache: dict[str, frozenset[str]] = {}
        self._rewrite_cache: dict[str, frozenset[int]] | None = None
        self._gap_errors: set[int] = set()
        #: Firings (by id()) whose deleted row an AUDIT_ROW_MISSING verdict names.
        self._named_gone: set[int] = set()
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
        self,
        lg: Logged,
        chunks: list[list[Firing]],
        judged: Callable[[list[Firing]], bool] | None = None,
    ) -> tuple[list[tuple[FindingClass, Severity | None, str]], list[Firing]]:
        """One verdict per non-matched DDL statement of a logged record; and its firings.

        ``judged``: only the statements whose firings it accepts are judged (the others
        are left out, their firings too)."""
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
                if judged is not None and not judged(chunk):
                    continue
                used.extend(chunk)
            elif judged is not None:
                continue
            if not (s.schema_change or s.settings):
                continue
            where = (
                f"{s.command_tag}" if len(lg.cls.statements) == 1 else f"statement {s.text[:80]!r}"
            )
            if s.unparsed is not None:
                major = self.ctx.server_version_num // 10000
                verdicts.append(
                    (
                        C.UNPARSED_STATEMENT,
                        None,
                        f"{where}: the parser cannot read it for PostgreSQL {major} "
                        f"({s.unparsed}), so what it did is unknown: it is never counted as "
                        "matched; read the statement.",
                    )
                )
                continue
            drift = self._setting_drift(s.settings)
            if s.event_trigger is not None:
                ours = bool(set(s.event_trigger.names) & self.ctx.trigger_names)
                what = "the auditor's own trigger" if ours else "an event trigger"
                said = f"{where} ({s.event_trigger.action} of {what}: "
                said += f"{', '.join(s.event_trigger.names)})"
                why = self._restated(s, db) if ours else None
                if why is not None:
                    # It cannot weaken the trigger, and status checks the live one.  After a
                    # DISABLE (or DROP) in the window it ends an evasion judged on its own:
                    # the class's default; else it restates (a restore of a dump).
                    earlier = self._earlier_trigger_change(lg, s.event_trigger.names)
                    verdicts.append(
                        (
                            C.EVENT_TRIGGER_DDL,
                            Severity.HIGH if earlier else Severity.MEDIUM,
                            f"{said} sets the installed state: {why}. It weakens nothing"
                            + (
                                f"; it ends {earlier}, which is judged on its own."
                                if earlier
                                else " (a restore of a dump re-issues it); the live trigger "
                                "is as install leaves it."
                            ),
                        )
                    )
                else:
                    sev = Severity.CRITICAL if ours else None
                    verdicts.append((C.EVENT_TRIGGER_DDL, sev, f"{said}."))
            elif s.is_ddl and (touched := self._tampering(s, chunk, db)) is not None:
                why = self._restated(s, db)
                if why is not None:
                    verdicts.extend(self._restated_verdicts(lg, s, chunk, where, touched, why))
                    continue
                verdicts.append(
                    (
                        C.CONFIG_DRIFT,
                        Severity.CRITICAL,
                        f"{where} changes the auditor's own {touched} "
                        f"(schema {self.ctx.schema!r}).",
                    )
                )
            elif drift is not None:
                verdicts.append((C.CONFIG_DRIFT, drift[0], f"{where}: {drift[1]}"))
            elif s.unauditable_reason:
                sev = self._unauditable_severity(s)
                extra = " It grants superuser-level power." if self._grants_superuser(s) else ""
                if sev == Severity.INFO:
                    said = "; ".join(v.text for v in self._setting_verdicts(s.settings))
                    extra += f" Its only effect: {said}."
                verdicts.append(
                    (C.UNAUDITABLE_DDL, sev, f"{where}: {s.unauditable_reason}.{extra}")
                )
            elif s.fires_ddl_command_end:
                eligible = self._eligible_verdict(lg, s, chunk, where, unmonitored)
                verdicts.extend(self._vouch_verdicts(chunk, where, eligible))
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
            self._named_gone.update(id(f) for f in gone)
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
        if markers_only and not self.ctx.audit_read:
            if not any(f.event_name == "ddl_command_end" for f in markers_only):
                kinds = "/".join(sorted({f.event_name for f in markers_only}))
                return [
                    (
                        C.UNREPORTED_DDL,
                        None,
                        f"{where} left no ddl_command_end marker, only {kinds} marker(s) "
                        "(the audit table was not read: no --dsn).",
                    )
                ]
            return []  # both channels are in the log: the statement line and its markers
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
            self._named_gone.update(id(f) for f in markers_only)
            ids = ", ".join(str(f.id) for f in markers_only)
            return [(C.AUDIT_ROW_MISSING, None, f"{where}: audit row(s) {ids} are gone{unknown}.")]
        if lg.error is not None:
            return [(C.FAILED_DDL, None, f"{where} failed: {lg.error.message}")]
        if unmonitored:
            return [
                (C.UNMONITORED_DATABASE, None, f"{where} ran in database {lg.record.database!r}.")
            ]
        if (before := self._before_triggers(lg.record)) is not None:
            return [(C.UNMONITORED_DATABASE, Severity.INFO, f"{where} {before}")]
        return [
            (
                C.UNREPORTED_DDL,
                None,
                f"{where} left no audit row and no marker.{self._why_unreported(lg)}",
            )
        ]

    def _before_triggers(self, rec: LogRecord) -> str | None:
        """Why a statement left no row: it ran before a restore created the auditor's
        triggers in its database (auditor.restore.restored_auditors); else None."""
        r = self.ctx.restored.get(rec.database or "")
        if r is None or rec.time is None or not r.schema_created <= rec.time <= r.triggers_created:
            return None
        return (
            "ran before the auditor's event triggers existed in database "
            f"{r.database!r}: a restore of a dump created the auditor there, its "
            f"ddl_command_end trigger at {r.triggers_created.isoformat()}, so no row is "
            "expected."
        )

    def _restated(self, s: StatementClass, database: str) -> str | None:
        """What of the installed auditor a statement sets again (auditor.restore), or None."""
        live = self.ctx.installed.get(database)
        return restated(s.text, live) if live is not None else None

    def _restated_verdicts(
        self,
        lg: Logged,
        s: StatementClass,
        chunk: list[Firing],
        where: str,
        touched: str,
        why: str,
    ) -> list[tuple[FindingClass, Severity | None, str]]:
        """A statement on the auditor's objects that leaves them as installed: an info
        CONFIG_DRIFT saying so, beside what its rows (or their absence) say."""
        text = (
            f"{where} restated the installed state of the auditor's own {touched}: {why}. "
            "It changes nothing (a restore of a dump re-issues such statements)."
        )
        eligible: list[tuple[FindingClass, Severity | None, str]] = []
        if s.fires_ddl_command_end:
            before = self._before_triggers(lg.record) if not chunk else None
            if before is not None:
                text += f" It {before}"
            else:
                unmonitored = (
                    self.ctx.monitored is not None
                    and (lg.record.database or "") not in self.ctx.monitored
                )
                eligible = self._eligible_verdict(lg, s, chunk, where, unmonitored)
                eligible = self._vouch_verdicts(chunk, where, eligible)
        return [*eligible, (C.CONFIG_DRIFT, Severity.INFO, text)]

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
                            f"{where}: login user {rec.user!r} ran it as session_user "
                            f"{e.session_user!r} (SET SESSION AUTHORIZATION; audit row {e.id}).",
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

    def _earlier_trigger_change(self, lg: Logged, names: Sequence[str]) -> str | None:
        """The latest DISABLE, ENABLE [REPLICA] or DROP of one of ``names`` logged in the
        same database before ``lg``, as a phrase; None when there is none."""
        here = _time_key(lg.record)
        found = None
        for other, st in self._trigger_changes():
            et = st.event_trigger
            if (
                et is not None
                and set(et.names) & set(names)
                and other.record.database == lg.record.database
                and _time_key(other.record) < here
            ):
                found = (
                    f"'{st.text[:80]}' ({_short(other.record.source.file)}:"
                    f"{other.record.source.line})"
                )
        return found

    @property
    def _situation(self) -> Situation:
        pinned = self.ctx.pinned_settings
        return Situation(
            self.ctx.server_version_num,
            packaged_pins(self.ctx.schema) if pinned is None else pinned,
            self.ctx.log_formats,
        )

    def _setting_verdicts(self, changes: Sequence[SettingChange]) -> list[Verdict]:
        situation = self._situation
        return [judge(c, situation) for c in changes]

    def _setting_drift(self, changes: Sequence[SettingChange]) -> tuple[Severity, str] | None:
        """The worst change that weakens a channel (or may), by :mod:`auditor.weakening`;
        None when no change does (the statement is then judged as what it is)."""
        drifts = [v for v in self._setting_verdicts(changes) if v.drift]
        if not drifts:
            return None
        worst = max(drifts, key=lambda v: (v.severity or Severity.HIGH).rank)
        return (worst.severity or Severity.HIGH, worst.text)

    def _unauditable_severity(self, s: StatementClass) -> Severity | None:
        """UNAUDITABLE_DDL severity: high for ALTER SYSTEM and superuser grants (spec),
        info for a statement whose only effect is a watched setting that weakens nothing."""
        if s.settings and s.node in _SETTINGS_ONLY_NODES:
            changes = s.settings
            if all(c.name in RULES or c.name == "ALL" for c in changes):
                return Severity.INFO
        if s.command_tag == "ALTER SYSTEM" or self._grants_superuser(s):
            return Severity.HIGH
        return None

    def _grants_superuser(self, s: StatementClass) -> bool:
        """SUPERUSER, a server-file role, or membership in a role that is a superuser."""
        return s.grants_superuser or bool(self.ctx.superusers.intersection(s.granted_roles))

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
        *,
        accounts: bool = True,
    ) -> None:
        """One finding for a logged record; ``accounts``: it is one of the logged DDL
        statements (a SET line logged under 'mod'/'all' is not)."""
        from auditor.findings import DEFAULT_SEVERITY

        def sev(v: tuple[FindingClass, Severity | None, str]) -> Severity:
            return v[1] or DEFAULT_SEVERITY[v[0]]

        worst = max(verdicts, key=lambda v: (sev(v).rank, -list(C).index(v[0])))
        reasons = " ".join(dict.fromkeys(v[2] for v in verdicts))
        rec = lg.record
        tags = [s.command_tag for s in lg.cls.statements if s.schema_change or s.settings]
        self._add(
            worst[0],
            accounts_log=accounts,
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
        if gone and not self.ctx.audit_read:
            self._markers_alone(ex, gone)
        elif gone:
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
        if cls.unparsed:
            # The client's string cannot be read: only the call stack tells which rows
            # a function ran; the others are the string's own.
            top = [f for f in rows if not f.nested]
            indirect = [f for f in rows if f.nested]
        if top:
            self._unlogged(ex.time, top)
        indirect = self._suspect_indirect(indirect)
        if indirect:
            outer = ", ".join(s.command_tag for s in cls.statements) or "?"
            self._firings_finding(
                C.INDIRECT_DDL,
                indirect,
                f"The client sent {outer}; the DDL ran inside it.",
            )

    def _nested_audit_lines(self) -> None:
        """pgAudit's lines of DDL run inside functions, DO, CALL and triggers.

        Each is the log's record of one firing the trigger should have written: the
        same session, transaction and command tag, in order.  One that finds it is
        matched (its rows stay INDIRECT_DDL, as without pgAudit); one that does not
        is UNREPORTED_DDL: the trigger did not fire (disabled, replica role, another
        database's trigger missing).  Judged only where the auditor is known to be
        installed, and only for DDL event triggers see.
        """
        if not self.audits or self.ctx.monitored is None:
            return
        by_xact: dict[tuple[Any, ...], list[Firing]] = defaultdict(list)
        for f in self.firings:
            e = f.trusted_event
            rec = f.marker_record
            session = e.session_id if e is not None else (rec.session_id if rec else None)
            vxid = e.vxid if e is not None else (rec.vxid if rec else None)
            by_xact[(f.database, session, vxid)].append(f)
        for firings in by_xact.values():
            firings.sort(key=lambda f: f.id)
        for rec in self.audits:
            assert rec.pgaudit is not None
            if rec.database not in self.ctx.monitored:
                continue
            cls = classify(rec.statement or "", server_version_num=self.ctx.server_version_num)
            if not any(
                st.fires_ddl_command_end and st.unauditable_reason is None for st in cls.statements
            ):
                continue
            candidates = by_xact.get((rec.database, rec.session_id, rec.vxid), [])
            tag = rec.pgaudit.command
            found = next(
                (f for f in candidates if f.tag == tag and f.event_name != "sql_drop"), None
            )
            if found is None and tag.startswith("DROP "):
                found = next((f for f in candidates if f.tag == tag), None)
            if found is not None:
                candidates.remove(found)
                self.result.logged_ddl += 1
                self.result.matched += 1
                continue
            if self._carry(rec.time):
                self.result.carried_records.append(rec)
                continue
            self.result.logged_ddl += 1
            where = (rec.command_tag or "a function").upper()
            self._add(
                C.UNREPORTED_DDL,
                accounts_log=True,
                step_record=rec,
                key=(_short(rec.source.file), rec.source.offset, rec.source.line),
                reason=(
                    f"pgAudit logged {tag} {rec.pgaudit.object_name or ''} run inside {where} "
                    "(a statement line never shows DDL inside a function, DO or CALL), but the "
                    "audit trigger wrote no row and no marker for it: the trigger was bypassed."
                ).replace("  ", " "),
                time=rec.time,
                **_who(rec),
                command_tags=[tag],
                statement=rec.statement,
                log_file=rec.source.file,
                log_line=rec.source.line,
                evidence={"log": _record_view(rec), "audit": []},
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

    # -- tampering with the auditor, judged by identity (auditor.tamper) -----------------
    def _auditor(self, database: str) -> AuditorObjects:
        found = self.ctx.auditor_objects.get(database)
        return found if found is not None else AuditorObjects(self.ctx.schema)

    def _shadows(self, database: str) -> frozenset[str]:
        """Schemas whose objects could shadow what the audit function uses unqualified.

        From its live search_path and every ``SET search_path`` (or reset) of it that
        the log shows in this database: pinned to ``pg_catalog, pg_temp`` there are none.
        """
        found = self._shadow_cache.get(database)
        if found is None:
            ident = self._auditor(database)
            paths: list[tuple[str, ...] | None] = [ident.search_path]
            for lg in self.logged:
                if (lg.record.database or "") != database or not _FUNCTION_WORD.search(lg.text):
                    continue
                for s in lg.cls.statements:
                    for name, path in path_changes(s.text):
                        if "." not in name or name.split(".", 1)[0] == ident.schema:
                            paths.append(path)
            found = self._shadow_cache[database] = shadow_schemas(paths)
        return found

    def _tampering(self, s: StatementClass, chunk: Sequence[Firing], database: str) -> str | None:
        """What of the auditor a logged DDL statement changed, or None.

        By the identity of the objects its trusted audit rows name; by the parser's
        names only when no row identifies anything (GRANT/REVOKE rows, or no row).
        """
        ident = self._auditor(database)
        shadows = self._shadows(database)
        rows = [e for f in chunk if (e := f.trusted_event) is not None]
        # Cheap tests first: a night's million rows keep their objects unparsed unless
        # the statement or a row's objects can name the auditor at all.
        if (
            not shadows
            and not _names_pattern(ident).search(s.text)
            and not any(ident.schema in e.objects_json for e in rows)
        ):
            return None
        objects = identified(o for e in rows for o in e.objects)
        if objects:
            return rows_target(ident, objects, shadows)
        return names_target(ident, s.objects, shadows)

    def _rows_tampering(self, rows: Sequence[Firing]) -> str | None:
        """What of the auditor rows no logged statement explains changed (DO, functions)."""
        for f in rows:
            e = f.trusted_event
            shadows = self._shadows(f.database)
            if e is None or (not shadows and self.ctx.schema not in e.objects_json):
                continue
            found = rows_target(self._auditor(f.database), e.objects, shadows)
            if found is not None:
                return found
        return None

    def _unlogged(self, when: datetime | None, top: list[Firing], aside: str = "") -> None:
        """Firings the client's statements caused that no statement line explains:
        inside a log gap they wait for it, else UNLOGGED_DDL with the likeliest reason
        (``aside`` is said beside it)."""
        gap = self._gap_for(when)
        if gap is not None:
            self._gap_rows[gap].extend(top)
        elif (why := self._log_cannot_hold(top)) is not None:
            self._firings_finding(C.UNLOGGED_DDL, top, why + aside, Severity.LOW)
        elif (two := self._read_two_ways(top)) is not None:
            self._firings_finding(
                C.UNLOGGED_DDL,
                top,
                f"Its session's lines are in the log but read two ways ({_short(two.source.file)}"
                f":{two.source.line}, LOG_TAMPERED): the client chose a value of the log prefix "
                "(application_name, role or database name) that holds the prefix's own text, "
                "so no line of it is taken as its statement line or its markers" + aside + ".",
            )
        else:
            reason = (
                "Logging was suppressed for that session (e.g. SET log_statement = "
                "'none'): the trigger's markers are in the log, but the statement line "
                "is not" + aside + "."
                if all(f.marker is not None for f in top)
                else "Neither the statement line nor the trigger's markers are in the log "
                "(logging suppressed for that session, or the row was inserted by hand)."
            )
            self._firings_finding(C.UNLOGGED_DDL, top, reason)

    def _read_two_ways(self, top: Sequence[Firing]) -> LogRecord | None:
        """A record of the firings' session, near their time, that reads two ways."""
        if not self.ctx.ambiguous:
            return None
        for f in top:
            e = f.trusted_event
            if e is None:
                continue
            lo, hi = e.statement_time - _TWO_WAYS_SLACK, e.clock_time + _TWO_WAYS_SLACK
            for r in self.ctx.ambiguous:
                # What the record's chosen fields say is unreliable (it reads two ways);
                # its session id or pid, printed before them, is what ties it.
                same = r.session_id == e.session_id or r.pid == e.backend_pid
                if same and r.time is not None and lo <= r.time <= hi:
                    return r
        return None

    def _markers_alone(self, ex: Execution, firings: list[Firing]) -> None:
        """Judge markers no statement line explains when the audit table was not read.

        Without the table a marker is the trigger's whole testimony: its firing is
        neither deleted nor rolled back as far as anyone can tell, so it is judged as
        its row would be: DDL the client sent with no statement line is UNLOGGED_DDL,
        DDL a DO block or function ran is INDIRECT_DDL.
        """
        nested = [f for f in firings if f.nested]
        top = [f for f in firings if not f.nested]
        unread = " (the audit table was not read: no --dsn)"
        if top:
            self._unlogged(ex.time, top, unread)
        if nested:
            self._firings_finding(
                C.INDIRECT_DDL,
                nested,
                "DDL run inside a DO block, function or procedure, seen by its trigger's "
                "markers" + unread + ".",
            )

    def _suspect_indirect(self, rows: list[Firing]) -> list[Firing]:
        """Report indirect rows that tamper or cannot be vouched for; return the others.

        DDL a DO block or function runs is an ordinary INDIRECT_DDL (medium), unless
        it changes the auditor itself (a critical CONFIG_DRIFT) or its row has no
        marker of its own (MARKER_MISSING).
        """
        if not rows:
            return rows
        touched = self._rows_tampering(rows)
        if touched is not None:
            self._firings_finding(
                C.CONFIG_DRIFT,
                rows,
                f"DDL run inside a DO block, function or procedure changed the auditor's own "
                f"{touched} (schema {self.ctx.schema!r}).",
                Severity.CRITICAL,
            )
            return []
        suspect = [(f, why) for f in rows if (why := self._unvouched(f)) is not None]
        if suspect:
            self._firings_finding(
                C.MARKER_MISSING,
                [f for f, _ in suspect],
                "DDL run inside a DO block, function or procedure: "
                + "; ".join(why for _, why in suspect)
                + ". The row cannot be vouched for.",
            )
            done = {id(f) for f, _ in suspect}
            return [f for f in rows if id(f) not in done]
        return rows

    # -- vouching: every row needs a marker of its own (MARKER_MISSING) -----------------
    def _marker_unknowable(self, e: AuditEvent) -> str | None:
        """Why the log read cannot tell whether a row's marker exists ('late': not yet)."""
        if self._markers_unattributed:
            return "unattributed"
        t = e.clock_time
        if self._gap_for(t) is not None:
            return "gap"
        start = self.ctx.window_start
        if start is not None and t - _ORDER_SLACK < start:
            return "before"  # its marker would be in an earlier window's log
        if self.coverage.session_after(e.session_id, t):
            return None  # the session logged on after the firing: its marker came before
        end = self.ctx.window_end
        if self.coverage.after(t) and (end is None or t + _MARKER_SLACK < end):
            return None
        return "late"

    def _unvouched(self, f: Firing) -> str | None:
        """Why an audit row is not vouched for by a marker of its own, or None.

        Its marker is absent although the log covers that moment, or the marker
        with its id names another inserting transaction (the row was deleted and
        a copy inserted again: "wipe and restore").
        """
        e = f.event
        if e is None or f.altered:
            return None  # no row, or an altered row (AUDIT_ROW_ALTERED says so)
        if f.marker is not None:
            if e.row_xmin != f.marker.xid and e.row_xmin not in self._rewrites(f.database):
                return (
                    f"row {e.id} was inserted by transaction {e.row_xmin}, but its marker "
                    f"says transaction {f.marker.xid} inserted it: the row was removed and "
                    "inserted again"
                )
            return None
        if self._marker_unknowable(e) is not None:
            return None
        return f"row {e.id} has no marker in the log, although the log covers its session then"

    def _rewrites(self, database: str) -> frozenset[int]:
        """Transactions that rewrote the audit table (its table_rewrite rows say so).

        ``ALTER TABLE <schema>.events SET UNLOGGED`` (or a column type change)
        copies every row with the altering transaction as xmin; the DDL itself is
        reported as tampering, and the rows' digests still vouch for their content.
        """
        cache = self._rewrite_cache
        if cache is None:
            found: dict[str, set[int]] = defaultdict(set)
            target = f"{self.ctx.schema}.events"
            for f in self.firings:
                e = f.trusted_event
                if (
                    e is not None
                    and e.event == "table_rewrite"
                    and any(o.object_identity == target for o in e.objects)
                ):
                    found[f.database].update((e.row_xmin, e.xid % 2**32))
            cache = self._rewrite_cache = {k: frozenset(v) for k, v in found.items()}
        return cache.get(database, frozenset())

    def _markers_late(self, firings: Sequence[Firing]) -> bool:
        """Rows whose marker may still be written past what was read (carry them)."""
        return any(
            f.event is not None
            and f.marker is None
            and self._marker_unknowable(f.event) == "late"
            and self._carry(f.event.clock_time)
            for f in firings
        )

    def _vouch_verdicts(
        self,
        chunk: Sequence[Firing],
        where: str,
        verdicts: list[tuple[FindingClass, Severity | None, str]],
    ) -> list[tuple[FindingClass, Severity | None, str]]:
        """``verdicts`` of a logged statement, with MARKER_MISSING for rows no marker vouches for.

        What such a row claims (who ran the DDL) is unproven: an attribution
        mismatch it shows becomes part of the MARKER_MISSING reason, not the class.
        """
        reasons = [why for f in chunk if (why := self._unvouched(f)) is not None]
        if not reasons:
            return verdicts
        # Who ran it, as the row says: an unvouched row's claim is no finding of its own.
        who = (C.ATTRIBUTION_MISMATCH, C.IMPERSONATED_DDL)
        claims = [v[2] for v in verdicts if v[0] in who]
        reason = (
            f"{where}: {'; '.join(reasons)}. The marker was suppressed (or the row put there "
            "by other means), so the row cannot be vouched for."
        )
        if claims:
            reason += " What the row claims is unproven: " + " ".join(claims)
        kept = [v for v in verdicts if v[0] not in who]
        return [*kept, (C.MARKER_MISSING, None, reason)]

    def _id_gaps(self) -> None:
        """Audit ids drawn from the sequence with neither a row nor a marker.

        Legitimate gaps: an error inside the audit function after it drew the id
        (its CONTEXT names the function; the DDL was refused), and the up to 32
        values a sequence pre-logs, lost when the server restarts after a crash
        (the log shows the recovery).  Anything else means a row was removed
        whose marker had been suppressed, or the sequence was advanced by hand.
        """
        marked: dict[str, list[int]] = defaultdict(list)
        rows_by_db: dict[str, list[AuditEvent]] = defaultdict(list)
        for f in self.firings:
            if f.marker is not None:
                marked[f.database].append(f.id)
            if f.event is not None:
                rows_by_db[f.database].append(f.event)
        for db, gaps in sorted(self.ctx.id_gaps.items()):
            rows = sorted(rows_by_db.get(db, []), key=lambda e: e.id)
            ids = [e.id for e in rows]
            with_marker = sorted(marked.get(db, []))
            for lo, hi in _unmarked(gaps, with_marker):
                i = bisect.bisect_left(ids, lo)
                if i == 0 or i >= len(ids):
                    continue  # not between two rows read: nothing to time it by
                before, after = rows[i - 1], rows[i]
                start = min(before.clock_time, after.clock_time)
                end = max(before.clock_time, after.clock_time)
                if any(
                    self._marker_unknowable(replace(after, clock_time=t)) is not None
                    for t in (start, end)
                ):
                    continue  # part of that stretch is not in the log read
                explained = self._explain_gap(db, start, end, hi - lo + 1)
                if explained:
                    continue
                trace = self.ctx.restore_traces.before(db, end)
                where: dict[str, Any] = {
                    "key": (db, "ids", lo, hi),
                    "time": start,
                    "database": db,
                    "command_tags": ["?"],
                    "evidence": {
                        "log": None,
                        "audit": [],
                        "ids": [lo, hi],
                        "between_rows": [before.id, after.id],
                    },
                }
                if trace is not None:
                    self._add(
                        C.CONFIG_DRIFT,
                        reason=(
                            f"Audit id(s) {lo}{'-' + str(hi) if hi != lo else ''} of "
                            f"{self.ctx.schema}.events_id_seq were never drawn: the sequence "
                            f"jumped between rows {before.id} and {after.id} ({start.isoformat()} "
                            f"to {end.isoformat()}) while a restore of a dump touched "
                            f"{self.ctx.schema}.events in database {db!r} (from "
                            f"{trace.isoformat()}): pg_dump's setval() sets the sequence to the "
                            "dumped database's value. A row removed there would still leave its "
                            "marker (AUDIT_ROW_MISSING)."
                        ),
                        severity=Severity.MEDIUM,
                        **where,
                    )
                    continue
                self._add(
                    C.MARKER_MISSING,
                    reason=(
                        f"Audit id(s) {lo}{'-' + str(hi) if hi != lo else ''} of "
                        f"{self.ctx.schema}.events_id_seq were drawn between rows {before.id} "
                        f"and {after.id} ({start.isoformat()} to {end.isoformat()}), but the "
                        "table holds no row and the log no marker for them, and no error of "
                        "the audit function or server restart explains it: rows whose markers "
                        "were suppressed were removed, or the sequence was advanced by hand."
                    ),
                    **where,
                )

    # -- what a restore of a dump leaves (auditor.restore) ------------------------------------
    def _copied_findings(self) -> None:
        """Rows naming another database: copies of its rows, vouched for by its markers.

        A restore of a dump of database S (or a database created from S as template)
        brings S's audit rows along.  A copy keeps S's name, id and content, so S's
        marker for that id (same digest) vouches for it: evidence of DDL in S, not here
        (info).  A copy that differs from S's marker is altered; one that no marker of
        S in the logs read vouches for (S's logs not read, or rows put there by hand)
        is no evidence at all (high).
        """
        groups: dict[tuple[str, str, str], list[AuditEvent]] = defaultdict(list)
        for e in sorted(self.copies, key=lambda e: (e.database, e.id)):
            source = e.database_in_row or "?"
            m = self._copy_markers.get((source, e.id))
            verdict = (
                "vouched"
                if m is not None and m.digest == e.digest
                else ("altered" if m is not None else "unvouched")
            )
            groups[(e.database, source, verdict)].append(e)
        for (db, source, verdict), rows in groups.items():
            firings = [Firing(db, e.id, e, None, None, None) for e in rows]
            ids = _id_ranges([e.id for e in rows])
            if verdict == "vouched":
                cls, sev = C.ATTRIBUTION_MISMATCH, Severity.INFO
                why = (
                    f"Audit row(s) {ids} of database {db!r} name database {source!r}: copies of "
                    f"{source}'s rows (a restore of a dump of {source}, or a database created "
                    f"from it as template), each vouched for by {source}'s marker of the same "
                    f"id and digest. They are evidence of DDL in {source}, not in {db}."
                )
            elif verdict == "altered":
                cls, sev = C.AUDIT_ROW_ALTERED, Severity.CRITICAL
                why = (
                    f"Audit row(s) {ids} of database {db!r} name database {source!r}, but "
                    f"differ from {source}'s markers of the same ids: copies that were changed, "
                    "or rows written to look like copies."
                )
            else:
                cls, sev = C.ATTRIBUTION_MISMATCH, Severity.HIGH
                why = (
                    f"Audit row(s) {ids} of database {db!r} name database {source!r}, and no "
                    f"marker of {source}'s in the logs read vouches for them: copied from a "
                    f"database whose logs were not read (a restore of a dump from another "
                    "server?) or put there by hand. They are no evidence of DDL in "
                    f"{db}; compare them with {source}'s own logs."
                )
            self._firings_finding(cls, firings, why, sev)

    def _sequence_findings(self) -> None:
        """A marker that says the id sequence stood behind the table (``behind=``).

        record_event() found the id it drew already held, moved the sequence past the
        table's highest id and drew again: someone set the sequence back.  pg_dump's
        setval() does (a restore sets it to the dumped database's value), and a
        restore's own statements in that database before it say so (medium); without
        them it is a setval() by hand (high).  No row was written over.
        """
        for f in self.firings:
            m, rec = f.marker, f.marker_record
            if m is None or m.behind is None or rec is None or rec.time is None:
                continue
            first, last = m.behind
            trace = self.ctx.restore_traces.before(f.database, rec.time)
            if trace is not None:
                sev = Severity.MEDIUM
                cause = (
                    f" A restore of a dump touched {self.ctx.schema}.events in database "
                    f"{f.database!r} before it (from {trace.isoformat()}): pg_dump's setval() "
                    "sets the sequence to the dumped database's value."
                )
            else:
                sev = Severity.HIGH
                cause = (
                    " Nothing in the log read explains it: a setval() by hand, or a restore "
                    "whose statements were not read."
                )
            self._add(
                C.CONFIG_DRIFT,
                step_record=rec,
                key=(f.database, "behind", f.id),
                reason=(
                    f"{self.ctx.schema}.events_id_seq had been set back: for audit row {f.id} "
                    f"it gave id {first}, which a row already held, while rows held ids up to "
                    f"{last}; the audit function moved it past {last} and stored the row as "
                    f"{f.id} (no row was written over, the DDL was not refused).{cause}"
                ),
                severity=sev,
                time=rec.time,
                **_who(rec),
                command_tags=[m.tag],
                log_file=rec.source.file,
                log_line=rec.source.line,
                evidence={"log": _record_view(rec), "audit": [], "behind": [first, last]},
            )

    def _explain_gap(self, database: str, start: datetime, end: datetime, size: int) -> bool:
        """Whether errors of the audit function or crash restarts account for ``size`` ids.

        An error explains one id (the one its firing drew, after the row before the
        gap and, give or take the collector, before the row after it), and is used
        up; a crash restart explains what the sequence had logged ahead.
        """
        lo, hi = start - _ORDER_SLACK, end + _MARKER_SLACK
        fn = f"{self.ctx.schema}.record_event()"
        used = self._gap_errors
        errors = [
            i
            for i, r in enumerate(self.errors)
            if i not in used
            and r.time is not None
            and lo <= r.time <= hi
            and (r.database or "") == database
            and fn in (r.context or "")
        ]
        restarts = sum(
            1
            for r in self.others
            if r.time is not None and lo <= r.time <= hi and _RESTART_LINE.search(r.message)
        )
        used.update(errors[:size])
        return size <= len(errors) + restarts * (_SEQ_LOG_VALS + 1)

    def _other_records(self) -> None:
        """CONFIG_DRIFT from the server's "parameter ... changed" lines.

        The line gives the new server-wide value (or, "removed from configuration
        file, reset to default", the built-in one); it is judged like any other
        change (:mod:`auditor.weakening`).  One that weakens nothing is no finding,
        but stays a step of the story (``auditor timeline``).  Written with CONTEXT,
        it came from a client's RAISE, not from the server: forged.
        """
        for rec in self.others:
            m = _RELOAD_LINE.match(rec.message)
            if not m or m.group(1) not in RULES:
                continue
            name = m.group(1)
            value = m.group(2) if m.group(2) is not None else RULES[name].default
            drift = self._setting_drift([SettingChange(name, value, "server reload")])
            if rec.context:
                # The server writes this line itself, never from inside a function.
                first = rec.context.strip().split("\n", 1)[0]
                reason = (
                    f"A forged server message: {rec.message!r} was raised by {first!r} in "
                    "a client session (RAISE LOG), not written by the server on a reload; "
                    "someone tried to mislead the reconcile."
                )
                self._record_finding(rec, reason, Severity.CRITICAL, ["SIGHUP"])
            elif drift is not None:
                sev, text = drift
                reason = f"The server reloaded its configuration: {text}."
                self._record_finding(rec, reason, sev, ["SIGHUP"])
            else:
                self.result.steps.append(Step(rec.time, rec, (), None))

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
                gap.cls,
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
                self._failed(lg, firings)
                continue
            if not ddl:
                # SET of a watched setting, visible only with log_statement = 'mod'/'all'.
                verdicts, _ = self._statement_verdicts(lg, [])
                if verdicts:
                    self._logged_finding(lg, verdicts, [], accounts=False)
                else:  # weakens nothing: no finding, but part of the story
                    self.result.steps.append(Step(lg.record.time, lg.record, (), None))
                continue
            pending = ex is not None and (
                any(f.status == "in progress" for f in ex.firings) or self._markers_late(ex.firings)
            )
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
            used = self._deleted_rows(lg, verdicts, used)
            if indirect and lg.cls.unparsed:
                # Rows that no parsed statement explains may be the unparsed one's.
                used = [*used, *indirect]
                indirect = []
            if indirect:
                # Rows of functions the statement ran (e.g. CREATE TABLE AS SELECT f()).
                rows = self._suspect_indirect([f for f in indirect if f.event is not None])
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
        self._nested_audit_lines()
        for ex in executions:
            if not ex.paired:
                self._unpaired_execution(ex)
        self._other_records()
        self._forged_findings()
        self._copied_findings()
        self._sequence_findings()
        self._id_gaps()
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

    def _failed(self, lg: Logged, firings: list[Firing]) -> None:
        """A logged string that raised an error: FAILED_DDL, unless a COMMIT inside it
        (psql's ``\\;``) made some of its statements stick before the error.

        Those statements are the ones whose firings committed (a row that is there, or a
        marker of a committed transaction): each is judged as if the string had not
        failed (a DISABLE of the audit table's protection stays critical, a row it
        deleted is AUDIT_ROW_MISSING), beside the FAILED_DDL of the rest.
        """
        reason = f"It failed: {lg.error.message if lg.error else '?'}"
        if (why := self._refused_by_pins(lg)) is not None:
            reason += f". {why}"
        kept = [f.id for f in firings if f.event is not None]
        if kept:
            reason += (
                ". Except what its string committed before the error (a COMMIT "
                f"inside it): audit row(s) {', '.join(map(str, kept))} stay."
            )
        failed: list[tuple[FindingClass, Severity | None, str]] = [(C.FAILED_DDL, None, reason)]
        committed = [f for f in firings if f.event is not None or f.status == "committed"]
        if not committed or not self.ctx.audit_read:
            self._logged_finding(lg, failed, firings)
            return
        chunks, _indirect = split(lg.cls.statements, firings)
        stuck = {id(f) for f in committed}
        verdicts, used = self._statement_verdicts(
            lg, chunks, judged=lambda chunk: any(id(f) in stuck for f in chunk)
        )
        verdicts = [*verdicts, *failed]
        used = self._deleted_rows(lg, verdicts, used)
        taken = {id(f) for f in used}
        rest = [f for f in firings if id(f) not in taken and not self._gone(f)]
        self._logged_finding(lg, verdicts, [*used, *rest])

    def _refused_by_pins(self, lg: Logged) -> str | None:
        """Why a DDL failed with "permission denied to set parameter" of a setting the
        audit function pins, when the statement itself sets no such thing: PostgreSQL
        applies a SECURITY DEFINER function's SET clauses as its owner, so an owner that
        is no longer a superuser makes every firing, and so every DDL, fail."""
        m = _PIN_REFUSED.match(lg.error.message if lg.error else "")
        if m is None or m.group(1) not in self._situation.pinned or m.group(1) in lg.text:
            return None
        db = lg.record.database or "?"
        return (
            f"The auditor refused it, not the statement: {self.ctx.schema}.record_event() pins "
            f"{m.group(1)} in its SET clause, which PostgreSQL applies as the function's owner "
            f"at every firing: the function was owned by a role that may not set it (not a "
            f"superuser), so every DDL in database {db!r} failed this way (fail closed). "
            "auditor status says BROKEN while it lasts; the change of owner is judged on its "
            "own (its ALTER in the log, or the catalog channel)"
        )

    def _gone(self, f: Firing) -> bool:
        """A firing whose marker's transaction committed (or whose status the server no
        longer knows) and whose row is not in the table: the row was deleted."""
        return (
            self.ctx.audit_read
            and f.event is None
            and f.marker is not None
            and f.status not in ("aborted", "in progress")
        )

    def _deleted_rows(
        self,
        lg: Logged,
        verdicts: list[tuple[FindingClass, Severity | None, str]],
        used: list[Firing],
    ) -> list[Firing]:
        """Name every row a logged string's firings lost in an AUDIT_ROW_MISSING.

        A statement judged for what it is (it changed the auditor, an event trigger or
        a setting) does not look at its rows: a string that disables the audit table's
        protection, deletes its own row (or another statement's) and enables the
        protection again is a CONFIG_DRIFT whose deleted rows would go unnamed.  When
        the string's finding is another class, its deleted rows get a finding of their
        own (one per string, naming each row), and leave the string's; when it is an
        AUDIT_ROW_MISSING already, it names them all.  Changes ``verdicts`` in place;
        returns the firings that stay with the string's finding.
        """
        gone = [f for f in used if self._gone(f)]
        if not gone:
            return used
        ids = ", ".join(str(f.id) for f in gone)
        said = [v[2] for v in verdicts if v[0] == C.AUDIT_ROW_MISSING]
        others = [v for v in verdicts if v[0] != C.AUDIT_ROW_MISSING]
        if not others:
            missed = [f for f in gone if id(f) not in self._named_gone]
            if missed:
                what = ", ".join(f"{f.id} ({f.tag})" for f in missed)
                verdicts.append((C.AUDIT_ROW_MISSING, None, f"Audit row(s) {what} are gone."))
            return used
        rec = lg.record
        where = f"{_short(rec.source.file)}:{rec.source.line}"
        kinds = ", ".join(f"{f.id} ({f.tag})" for f in gone)
        unknown = any(f.status is None for f in gone)
        self._firings_finding(
            C.AUDIT_ROW_MISSING,
            gone,
            f"Audit row(s) {kinds} of the string logged at {where} are gone: their markers' "
            + (
                "transaction status is no longer known to the server"
                if unknown
                else "transaction committed"
            )
            + ", and the same string is reported for what else it did ("
            + ", ".join(dict.fromkeys(v[0].value for v in others))
            + ")."
            + (" " + " ".join(said) if said else ""),
        )
        verdicts[:] = [
            *others,
            (
                others[0][0],
                others[0][1],
                f"Audit row(s) {ids} it wrote are gone (reported as AUDIT_ROW_MISSING).",
            ),
        ]
        return [f for f in used if not self._gone(f)]

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


#: How far from its firings a line of their session that reads two ways may be (a %t
#: prefix prints whole seconds).
_TWO_WAYS_SLACK = timedelta(seconds=2)
#: The error a function's SET clause gives when its owner may not set the setting.
_PIN_REFUSED = re.compile(r'permission denied to set parameter "([a-z_]+)"$')


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


#: A record logged this long after a firing shows that the log read reaches past its
#: marker, and a firing this long before the window's end has its marker in the window:
#: the audit function writes the marker right after the row, and a backend hands a log
#: line to the collector within microseconds of printing its time.
_MARKER_SLACK = timedelta(milliseconds=200)
#: How far log times of different sessions can be out of order (ids and times race).
_ORDER_SLACK = timedelta(milliseconds=10)
#: Values a sequence WAL-logs ahead of use (SEQ_LOG_VALS in sequence.c): lost by a crash.
_SEQ_LOG_VALS = 32
#: Lines the postmaster writes when it recovers from a crash.
_RESTART_LINE = re.compile(
    r"^(?:database system was interrupted|database system was not properly shut down"
    r"|all server processes terminated; reinitializing|redo starts at"
    r"|server process \(PID \d+\) was terminated by signal)"
)


#: The word FUNCTION in any case (ALTER/CREATE FUNCTION may set a search_path).
_FUNCTION_WORD = re.compile("function", re.I)


@cache
def _names_pattern(ident: AuditorObjects) -> re.Pattern[str]:
    """Any word that names the auditor's schema or one of its objects."""
    words = sorted({ident.schema, *ident.names}, key=len, reverse=True)
    return re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b", re.I)


@dataclass(frozen=True)
class _Coverage:
    """How far the log read reaches, in all and per session."""

    end: datetime | None
    session_end: Mapping[str, datetime]

    @classmethod
    def of(cls, records: Sequence[LogRecord], end: datetime | None = None) -> _Coverage:
        last: dict[str, datetime] = {}
        for r in records:
            if r.time is None:
                continue
            if end is None or r.time > end:
                end = r.time
            if r.session_id and (r.session_id not in last or r.time > last[r.session_id]):
                last[r.session_id] = r.time
        return cls(end, last)

    def after(self, t: datetime) -> bool:
        """Some record was logged well after ``t``."""
        return self.end is not None and self.end > t + _MARKER_SLACK

    def session_after(self, session: str | None, t: datetime) -> bool:
        """The session logged something after ``t``."""
        got = self.session_end.get(session or "")
        return got is not None and got > t


def _id_ranges(ids: Sequence[int]) -> str:
    """Sorted ids as ranges.

    >>> _id_ranges([1, 2, 3, 7, 9, 10])
    '1-3, 7, 9-10'
    """
    out: list[str] = []
    for i in ids:
        if out and out[-1].split("-")[-1] == str(i - 1):
            out[-1] = out[-1].split("-")[0] + f"-{i}"
        else:
            out.append(str(i))
    return ", ".join(out)


def _unmarked(gaps: Iterable[tuple[int, int]], marked: Sequence[int]) -> list[tuple[int, int]]:
    """The runs of the gaps ``(first, last)`` that no marker id (sorted) falls in.

    >>> _unmarked([(3, 9), (20, 20)], [4, 5, 9, 20])
    [(3, 3), (6, 8)]
    """
    out: list[tuple[int, int]] = []
    for first, last in gaps:
        at = first
        for m in marked[bisect.bisect_left(marked, first) : bisect.bisect_right(marked, last)]:
            if m > at:
                out.append((at, m - 1))
            at = m + 1
        if at <= last:
            out.append((at, last))
    return out


#: The server's own line for a setting a configuration reload changed or removed.
_RELOAD_LINE = re.compile(
    r'^parameter "([^"]+)" (?:changed to "(.*)"|removed from configuration file)'
)


def _time_key(rec: LogRecord) -> tuple[datetime, str, int]:
    return (rec.time or _NO_TIME, rec.source.file, rec.source.offset)


def match(
    records: Iterable[LogRecord],
    events: Iterable[AuditEvent],
    xact_status: Mapping[tuple[str, int], str | None],
    ctx: MatchContext,
) -> MatchResult:
    """Pair the channels and explain every difference (see the module docstring)."""
    return Matcher(records, events, xact_status, ctx).run()
