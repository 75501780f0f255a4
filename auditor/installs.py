"""The auditor's own install and upgrade in the log, and DDL from before the first install.

Neither is a disagreement of the channels (SPEC section 5), so neither is more
than info:

* **An install or upgrade** drops the auditor's event triggers and creates them
  again, so its own statements leave no audit row.  A transaction (session id and
  vxid) of the log is recognised as one when every statement it logged has the
  shape of a statement ``auditor install`` of this package sends (the packaged
  SQL, rendered for the schema, with only role names and literal values free),
  it holds both ``capture_install.sql`` and ``capture_event_triggers.sql`` (so it
  ends with this package's functions and triggers in place), and an
  ``<schema>.installs`` row of that database was written by the same user while
  it ran.  Each installs row vouches for one transaction.  Anything else (a
  statement that merely looks like the script, one more statement in the same
  transaction, no installs row at that time by that user) stays what it is; an
  uninstall (``auditor uninstall``, ``DROP SCHEMA ... CASCADE``, dropping the
  triggers) is never recognised.  The reader and notify roles an install creates
  (``capture_create_reader.sql``, its own transaction) are recognised the same way
  against the installs row naming them.
* **DDL before the first install** in a database ran when no trigger existed:
  outside the trigger channel's coverage.  "Before" is before the earliest sign of
  the auditor in that database: its first installs row, its first audit row, its
  first marker in the log, its first logged statement that touches the audit
  schema or the auditor's triggers (an uninstall and reinstall therefore never
  makes the DDL between them look older than the auditor).  Only statements that
  the trigger would have seen, that did not fail, and whose transaction (session id
  and vxid: a log without ``%c`` never qualifies) left no marker and no audit row
  are taken; anything else is judged as usual.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from typing import Any

from psycopg import sql

from auditor.findings import make_finding
from auditor.model import Finding, FindingClass, LogRecord, MessageKind, Severity

C = FindingClass

#: How far a role's creation may lie after its log line (the time's resolution aside).
SLACK = timedelta(seconds=2)
#: How long before the install that names them its roles may have been created.
ROLE_LEAD = timedelta(minutes=10)

_IDENT = r'(?:"(?:[^"]|"")+"|[A-Za-z_][A-Za-z0-9_$]*)'
_LIT = r"(?:NULL|true|false|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?|\s?E?'(?:[^']|'')*')"
_I = "\x01I\x01"  # placeholders, replaced by the regexes after re.escape()
_L = "\x01L\x01"
_R = "\x01R\x01"  # the role a capture_create_reader.sql creates (named group)


@dataclass(frozen=True)
class InstallRow:
    """One row of ``<schema>.installs``: who installed which version, when."""

    database: str
    id: int
    installed_at: datetime
    installed_by: str
    package_version: str | None = None
    schema_version: int | None = None
    reader_role: str | None = None
    notify_role: str | None = None

    @classmethod
    def from_json(cls, database: str, row: Mapping[str, Any]) -> InstallRow | None:
        """From ``to_jsonb(installs row)``; None when the row is not usable (altered)."""
        try:
            at = row["installed_at"]
            when = at if isinstance(at, datetime) else datetime.fromisoformat(str(at))
            return cls(
                database,
                int(row["id"]),
                when,
                str(row["installed_by"]),
                _text(row.get("package_version")),
                int(row["schema_version"]) if row.get("schema_version") is not None else None,
                _text(row.get("reader_role")),
                _text(row.get("notify_role")),
            )
        except (KeyError, TypeError, ValueError):
            return None


def _text(v: Any) -> str | None:
    return None if v is None else str(v)


@dataclass(frozen=True)
class AuditedDatabase:
    """What the audit side knows about one database where the auditor is installed."""

    name: str
    installs: tuple[InstallRow, ...] = ()
    first_event: datetime | None = None  # statement time of its lowest audit row id
    first_event_database: str | None = None  # the database that row names


# -- the statements an install sends ----------------------------------------------------


def _pattern(text: str) -> str:
    out = re.escape(text)
    out = out.replace(re.escape(_I), _IDENT).replace(re.escape(_L), _LIT)
    first = True
    while re.escape(_R) in out:
        group = f"(?P<role>{_IDENT})" if first else "(?P=role)"
        out = out.replace(re.escape(_R), group, 1)
        first = False
    return out


@cache
def _shapes(schema: str) -> tuple[tuple[str, re.Pattern[str]], ...]:
    """(name, full-match regex) of every statement ``auditor install`` may log."""
    from auditor import outbox
    from auditor.capture import PROTECTED_TABLES, render

    ident, lit = sql.SQL(_I), sql.SQL(_L)
    literals = {
        name: lit
        for name in (
            "mail_from", "mail_to", "mail_cc", "server_name", "smtp_host", "smtp_port",
            "smtp_security", "smtp_username", "smtp_timeout", "smtp_ca_file", "dns_timeout",
            "subject_template", "text_template", "html_template", "created_plpython",
            "mail_mode", "strict", "package_version", "schema_version", "reader_role",
            "notify_role",
        )
    }  # fmt: skip
    texts: list[tuple[str, str]] = [
        ("capture_install.sql", render("capture_install.sql", schema)),
        ("capture_event_triggers.sql", render("capture_event_triggers.sql", schema)),
        ("catalog_install.sql", render("catalog_install.sql", schema)),
        ("catalog_baseline.sql", render("catalog_baseline.sql", schema)),
        ("mail_prepare.sql", render("mail_prepare.sql", schema)),
        ("mail_install.sql", render("mail_install.sql", schema)),
        ("mail_plpython_trigger.sql", render("mail_plpython_trigger.sql", schema)),
        ("mail_plpython.sql", outbox.plpython_sql(schema)),
        ("mail_record_config.sql", render("mail_record_config.sql", schema, **literals)),
        ("mail_set_password.sql", render("mail_set_password.sql", schema).replace(
            "%(password)s", "$1")),
        ("mail_grant_reader.sql", render("mail_grant_reader.sql", schema, reader_role=ident)),
        ("mail_revoke_role.sql", render("mail_revoke_role.sql", schema, role=ident)),
        ("mail_grant_notify.sql", render("mail_grant_notify.sql", schema, notify_role=ident)),
        ("capture_grant_reader.sql",
         render("capture_grant_reader.sql", schema, reader_role=ident)),
        ("capture_revoke_reader.sql",
         render("capture_revoke_reader.sql", schema, reader_role=ident)),
        ("capture_record_install.sql", render("capture_record_install.sql", schema, **literals)),
        ("revoke owner", sql.SQL("REVOKE UPDATE, DELETE, TRUNCATE ON {} FROM {}").format(
            sql.SQL(", ").join(sql.Identifier(schema, t) for t in PROTECTED_TABLES), ident,
        ).as_string(None)),
        ("drop event trigger", sql.SQL("DROP EVENT TRIGGER IF EXISTS {}").format(ident).as_string(
            None)),
        ("plpython3u", "CREATE EXTENSION IF NOT EXISTS plpython3u"),
        ("plpython3u", "DROP EXTENSION IF EXISTS plpython3u"),
        ("search_path", "SET LOCAL search_path = pg_catalog, pg_temp"),
    ]  # fmt: skip
    return tuple((name, re.compile(_pattern(t.strip()), re.DOTALL)) for name, t in texts)


@cache
def _role_shape() -> re.Pattern[str]:
    from auditor.db import sql_text

    text = (
        sql.SQL(sql_text("capture_create_reader.sql"))
        .format(reader_role=sql.SQL(_R), comment=sql.SQL(_L))
        .as_string(None)
    )
    return re.compile(_pattern(text.strip()), re.DOTALL)


def statement_shape(text: str, schema: str) -> str | None:
    """Which install statement ``text`` is (its template's name), or None.

    >>> statement_shape('DROP EVENT TRIGGER IF EXISTS "auditor_sql_drop"', "auditor")
    'drop event trigger'
    >>> statement_shape("DROP EVENT TRIGGER IF EXISTS x; DROP TABLE t", "auditor") is None
    True
    """
    body = text.strip()
    for name, rx in _shapes(schema):
        if rx.fullmatch(body):
            return name
    return None


def _unquote(ident: str) -> str:
    return ident[1:-1].replace('""', '"') if ident.startswith('"') else ident.lower()


# -- recognising installs ------------------------------------------------------------------


def _statements(records: Iterable[LogRecord]) -> Iterable[LogRecord]:
    return (r for r in records if r.kind in (MessageKind.STATEMENT, MessageKind.EXECUTE))


def _slack(recs: Sequence[LogRecord]) -> timedelta:
    return SLACK + timedelta(microseconds=max(r.time_resolution_us for r in recs))


def _match_row(
    recs: Sequence[LogRecord],
    shapes: Sequence[str | None],
    rows: Sequence[InstallRow],
    used: set[tuple[str, int]],
) -> InstallRow | None:
    """The installs row this transaction wrote: by its user, between the start of its
    capture_install.sql (the row is inserted after it) and the start of its
    capture_event_triggers.sql (logged after the insert), within the log's time
    resolution."""
    users = {r.user for r in recs}
    starts = [r.time for r, s in zip(recs, shapes, strict=True) if s == "capture_install.sql"]
    ends = [r.time for r, s in zip(recs, shapes, strict=True) if s == "capture_event_triggers.sql"]
    if len(users) != 1 or None in starts or None in ends or not starts or not ends:
        return None
    user = users.pop()
    resolution = timedelta(microseconds=max(r.time_resolution_us for r in recs))
    lo = min(t for t in starts if t is not None)
    hi = max(t for t in ends if t is not None) + resolution
    fits = [
        row
        for row in rows
        if (row.database, row.id) not in used
        and row.installed_by == user
        and lo <= row.installed_at <= hi
    ]
    return min(fits, key=lambda row: row.installed_at, default=None)


def _first_time(recs: Sequence[LogRecord]) -> datetime:
    return min(
        (r.time for r in recs if r.time is not None), default=datetime.min.replace(tzinfo=UTC)
    )


def _action(row: InstallRow, rows: Sequence[InstallRow]) -> str:
    before = [r for r in rows if r.id < row.id]
    if not before:
        return "installed"
    prev = max(before, key=lambda r: r.id)
    if (prev.package_version, prev.schema_version) == (row.package_version, row.schema_version):
        return "reinstalled"
    return f"upgraded from {prev.package_version or '?'}"


def _view(rec: LogRecord, statements: int, row: InstallRow | None) -> dict[str, object]:
    return {
        "file": rec.source.file,
        "line": rec.source.line,
        "time": rec.time.isoformat() if rec.time else None,
        "statements": statements,
        "user": rec.user,
        "installs_row": row.id if row else None,
        "installed_at": row.installed_at.isoformat() if row else None,
        "package_version": row.package_version if row else None,
    }


def split_installs(
    records: list[LogRecord],
    databases: Sequence[AuditedDatabase],
    schema: str,
    fired: Iterable[tuple[str, str, str | None]] = (),
    restored: Mapping[str, datetime] | None = None,
    *,
    audit_read: bool = True,
) -> tuple[list[LogRecord], list[Finding]]:
    """Take the auditor's own installs and upgrades (and the roles they created) out of
    the matching, one info finding each; and DDL from before the first install.

    ``restored``: databases whose auditor a restore of a dump created in the window
    (auditor.restore.restored_auditors), with the time its ddl_command_end trigger was
    created: there the install history and rows the dump brought are no sign of an
    auditor, and DDL before that time (but the restore's own statements on the
    auditor, which the matcher judges by their effect) ran with no trigger."""
    rows = {d.name: d.installs for d in databases}
    all_rows = [row for d in databases for row in d.installs]
    groups: dict[tuple[str, str, str], list[LogRecord]] = {}
    by_pid: dict[tuple[str, int], list[list[LogRecord]]] = {}
    for rec in _statements(records):
        if rec.session_id and rec.vxid and not rec.vxid.endswith("/0") and rec.database:
            groups.setdefault((rec.database, rec.session_id, rec.vxid), []).append(rec)
        elif rec.database and rec.pid is not None and (not rec.session_id or not rec.vxid):
            # A prefix without %c or %v (Debian's '%m [%p] %q%u@%d '): an install is a
            # run of its statements in one process, with nothing else of it in between.
            runs = by_pid.setdefault((rec.database, rec.pid), [])
            last = runs[-1][-1] if runs else None
            if (
                last is None
                or statement_shape(rec.statement or "", schema) is None
                or statement_shape(last.statement or "", schema) is None
                or last.user != rec.user
                or last.time is None
                or rec.time is None
                or rec.time - last.time > PID_RUN_GAP
            ):
                runs.append([rec])
            else:
                runs[-1].append(rec)
    pid_runs: set[tuple[str, str, str]] = set()
    for (db, pid), runs in by_pid.items():
        for n, run in enumerate(runs):
            groups[(db, f"pid {pid}", f"run {n}")] = run
            pid_runs.add((db, f"pid {pid}", f"run {n}"))
    by_run: set[int] = set()  # the statements of pid runs taken as installs
    used: set[tuple[str, int]] = set()
    taken: set[tuple[str | None, str | None, str | None]] = set()
    findings: list[Finding] = []
    starts: dict[str, datetime] = {}  # database -> first statement of a recognised install
    for (db, session, vxid), recs in sorted(groups.items(), key=lambda g: _first_time(g[1])):
        shapes = [statement_shape(r.statement or "", schema) for r in recs]
        if None in shapes or not {"capture_install.sql", "capture_event_triggers.sql"} <= set(
            shapes
        ):
            continue
        row = _match_row(recs, shapes, rows.get(db, ()), used)
        if row is None and (audit_read or any(r.time is None for r in recs)):
            continue  # (a time that could not be placed: nothing to bound it by)
        first = recs[0]
        if row is not None:
            used.add((db, row.id))
            reason = (
                f"auditor install ({_action(row, rows[db])} to {row.package_version}) by "
                f"{row.installed_by!r}, recognised against {schema}.installs row {row.id} "
                f"({row.installed_at.isoformat()}): it drops and re-creates the auditor's "
                f"event triggers, so its own {len(recs)} statement(s) are not audited."
            )
            severity = Severity.INFO
        else:
            # No --dsn: the statements are this version's install SQL, word for word but
            # its parameters, in one transaction; no installs row can vouch for them.
            reason = (
                f"auditor install by {first.user!r}, recognised by its {len(recs)} "
                "statement(s) alone (this version's install SQL, in one transaction): the "
                f"audit table was not read (no --dsn), so no {schema}.installs row was "
                "checked; reconcile with --dsn to confirm it. An install drops and re-creates "
                "the auditor's event triggers, so its own statements are not audited."
            )
            severity = Severity.LOW
        if (db, session, vxid) in pid_runs:
            by_run.update(id(r) for r in recs)
        else:
            taken.add((db, session, vxid))
        t0 = min(r.time for r in recs if r.time is not None)
        starts[db] = min(starts.get(db, t0), t0)
        findings.append(
            make_finding(
                C.EVENT_TRIGGER_DDL,
                key=("install", db, session, vxid),
                reason=reason,
                severity=severity,
                time=first.time,
                database=db,
                user=first.user,
                application=first.application,
                client=first.client,
                session_id=session,
                vxid=vxid,
                command_tags=["auditor install"],
                statement=first.statement,
                log_file=first.source.file,
                log_line=first.source.line,
                evidence={"log": _view(first, len(recs), row), "audit": []},
                accounts_logged_ddl=len(recs),
            )
        )
    role_findings, role_recs = _role_creations(records, groups, all_rows)
    findings.extend(role_findings)
    keep: list[LogRecord] = []
    for rec in records:
        key = (rec.database, rec.session_id, rec.vxid)
        if key in taken and rec.kind in (
            MessageKind.STATEMENT,
            MessageKind.EXECUTE,
            MessageKind.ERROR,
        ):
            continue
        if id(rec) in role_recs or id(rec) in by_run:
            continue
        keep.append(rec)
    keep, early = _before_first_install(
        keep, databases, starts, schema, set(fired), dict(restored or {}), audit_read=audit_read
    )
    return keep, findings + early


#: The longest pause between two statements of one install in one process (no %c/%v).
PID_RUN_GAP = timedelta(seconds=60)


def _role_creations(
    records: Sequence[LogRecord],
    groups: Mapping[tuple[str, str, str], list[LogRecord]],
    rows: Sequence[InstallRow],
) -> tuple[list[Finding], set[int]]:
    """``CREATE ROLE r NOLOGIN; COMMENT ON ROLE r ...`` sent by install for a reader or
    notify role that an installs row names, by the same user, shortly before it."""
    findings: list[Finding] = []
    taken: set[int] = set()
    shape = _role_shape()
    for (db, session, vxid), recs in groups.items():
        if len(recs) != 1:
            continue
        rec = recs[0]
        m = shape.fullmatch((rec.statement or "").strip())
        if m is None or rec.time is None:
            continue
        role = _unquote(m.group("role"))
        fits = [
            row
            for row in rows
            if row.installed_by == rec.user
            and role in (row.reader_role, row.notify_role)
            and rec.time - _slack(recs) <= row.installed_at <= rec.time + ROLE_LEAD
        ]
        if not fits:
            continue
        row = min(fits, key=lambda r: r.installed_at)
        taken.add(id(rec))
        findings.append(
            make_finding(
                C.UNAUDITABLE_DDL,
                key=("install role", db, session, vxid),
                reason=(
                    f"auditor install created role {role!r} for database {row.database!r} "
                    f"({row.database}'s installs row {row.id} names it); role DDL is "
                    "cluster-wide, no event trigger fires on it."
                ),
                severity=Severity.INFO,
                time=rec.time,
                database=rec.database,
                user=rec.user,
                application=rec.application,
                client=rec.client,
                session_id=session,
                vxid=vxid,
                command_tags=["CREATE ROLE", "COMMENT"],
                statement=rec.statement,
                log_file=rec.source.file,
                log_line=rec.source.line,
                evidence={"log": _view(rec, 1, row), "audit": []},
                accounts_logged_ddl=1,
            )
        )
    return findings, taken


# -- before the first install ----------------------------------------------------------------


def _touches_auditor(text: str, schema: str) -> bool:
    """The statement names the audit schema, or one of the auditor's event triggers."""
    from auditor.capture import event_trigger_names
    from auditor.classify import classify

    if schema not in text:
        return False
    names = set(event_trigger_names(schema).values())
    for s in classify(text).statements:
        if s.event_trigger is not None and set(s.event_trigger.names) & names:
            return True
        if any(o == schema or o.startswith(schema + ".") for o in s.objects):
            return True
    return False


def _before_first_install(
    records: list[LogRecord],
    databases: Sequence[AuditedDatabase],
    install_starts: Mapping[str, datetime],
    schema: str,
    fired: set[tuple[str, str, str | None]],
    restored: Mapping[str, datetime] | None = None,
    *,
    audit_read: bool = True,
) -> tuple[list[LogRecord], list[Finding]]:
    from auditor.classify import classify

    restored = restored or {}

    # Transactions that left a marker or an audit row ran with a trigger in place (their
    # statement line comes first, their firings after it): never "before".
    fired = fired | {
        (r.database or "", r.session_id, r.vxid)
        for r in records
        if r.kind == MessageKind.MARKER and r.session_id
    }
    boundary: dict[str, datetime] = {}
    first_install: dict[str, InstallRow] = {}
    for d in databases:
        times = [r.installed_at for r in d.installs]
        if d.first_event is not None:
            times.append(d.first_event)
        if d.name in install_starts:
            times.append(install_starts[d.name])
        if d.installs:
            first_install[d.name] = min(d.installs, key=lambda r: r.installed_at)
        if times:
            boundary[d.name] = min(times)
    if not audit_read:  # no --dsn: the installs the log shows are all there is to go by
        for db, t in install_starts.items():
            boundary[db] = min(boundary.get(db, t), t)
    # An auditor a restore created: its copied history is no sign; its triggers' time is.
    boundary.update(restored)
    if not boundary:
        return records, []
    failed = {r.failed_statement for r in records if r.kind == MessageKind.ERROR}
    for rec in records:  # the log's own signs of the auditor move the boundary earlier
        db = rec.database or ""
        if db in restored or db not in boundary or rec.time is None or rec.time >= boundary[db]:
            continue
        if rec.kind == MessageKind.MARKER or (
            rec.kind in (MessageKind.STATEMENT, MessageKind.EXECUTE)
            and _touches_auditor(rec.statement or "", schema)
        ):
            boundary[db] = rec.time
    keep: list[LogRecord] = []
    findings: list[Finding] = []
    for rec in records:
        db = rec.database or ""
        limit = boundary.get(db)
        early = (
            limit is not None
            and rec.time is not None
            and rec.time < limit
            and rec.kind in (MessageKind.STATEMENT, MessageKind.EXECUTE)
            and rec.session_id is not None  # without %c its firings cannot be told
            and (db, rec.session_id, rec.vxid) not in fired
            and rec.source not in failed
        )
        if early and db in restored and re.search(rf"\b{re.escape(schema)}\b", rec.statement or ""):
            early = False  # the restore building the auditor: judged by its effect
        cls = classify(rec.statement or "") if early else None
        if cls is None or not _only_audited_ddl(cls):
            keep.append(rec)
            continue
        row = first_install.get(db)
        if db in restored:
            since = (
                f"a restore of a dump created the auditor there, its ddl_command_end trigger "
                f"at {restored[db].isoformat()} (the install history in {schema}.installs "
                "came with the dump)"
            )
        elif row is not None:
            since = (
                f"its first install ({schema}.installs row {row.id}, "
                f"{row.installed_at.isoformat()} by {row.installed_by!r})"
            )
        else:
            since = "the first sign of it"
        reason = (
            f"It ran before the auditor was installed in database {db!r}: {since}; "
            "no trigger existed yet, so no audit row is expected."
        )
        severity = Severity.INFO
        if not audit_read:
            reason = (
                f"It ran before the first sign of the auditor in database {db!r} that the "
                "logs read show (an install or a marker). The audit table was not read (no "
                f"--dsn), so {schema}.installs could not say whether the auditor was there "
                "already: if it was, no trigger fired for this statement (UNREPORTED_DDL). "
                "Reconcile with --dsn to settle it."
            )
            severity = Severity.LOW
        assert limit is not None
        findings.append(
            make_finding(
                C.UNMONITORED_DATABASE,
                key=("before install", rec.source.file, rec.source.offset),
                reason=reason,
                severity=severity,
                time=rec.time,
                database=rec.database,
                user=rec.user,
                application=rec.application,
                client=rec.client,
                session_id=rec.session_id,
                vxid=rec.vxid,
                command_tags=[s.command_tag for s in cls.statements if s.schema_change],
                statement=rec.statement,
                log_file=rec.source.file,
                log_line=rec.source.line,
                evidence={"log": {"file": rec.source.file, "line": rec.source.line}, "audit": []},
                accounts_logged_ddl=1,
            )
        )
    return keep, findings


def _only_audited_ddl(cls: Any) -> bool:
    """Logged DDL whose every schema change the trigger would have seen, and nothing that
    is judged on its own (settings, event triggers)."""
    changes = [s for s in cls.statements if s.schema_change]
    return (
        cls.is_ddl
        and bool(changes)
        and all(s.fires_ddl_command_end for s in changes)
        and not any(s.settings or s.event_trigger for s in cls.statements)
    )


__all__ = [
    "AuditedDatabase",
    "InstallRow",
    "split_installs",
    "statement_shape",
]
