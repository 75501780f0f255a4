"""The mail side of the audit schema: what install adds, and what status reads.

``auditor install`` (:mod:`auditor.capture`) asks :func:`mail_plan` for the
statements of the chosen mail mode: the delivery record (``deliveries``,
``delivery_events``, ``mail_state``, ``mail_config``; ``sql/mail_install.sql``),
and in ``plpython`` mode the in-database sender (``sql/mail_plpython*.sql``) with
the source of :mod:`auditor.mailcore` and :mod:`auditor.redact` embedded.
``auditor status`` reads :func:`read_mail_status`.  The worker is
:mod:`auditor.notify`.
"""

from __future__ import annotations

import hashlib
import inspect
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

import psycopg
from psycopg import sql

from auditor import mailcore, redact
from auditor.db import sql_text
from auditor.errors import ConfigError, InstallError
from auditor.mailcore import MailSettings

#: Mail modes install knows; ``outbox`` is the default.
MAIL_MODES = ("outbox", "plpython", "none")
#: Tables of the mail side (dropped by uninstall, checked by status).
MAIL_TABLES = ("deliveries", "delivery_events", "mail_state", "mail_config")
#: Functions of the plpython mode (SECURITY DEFINER, fixed search_path).
PLPYTHON_FUNCTIONS = ("send_mails", "mail_on_commit")
#: The deferred trigger of the plpython mode on the events table.
MAIL_TRIGGER = "events_mail"
NOTIFY_ROLE_COMMENT = "auditor: role for auditor notify (created by auditor install)"


def _columns() -> str:
    lines = sql_text("mail_event_columns.sql").splitlines()
    return "\n".join(line for line in lines if not line.startswith("--"))


def render(template: str, schema: str, **values: sql.Composable) -> str:
    """A packaged mail SQL template with the schema, columns and ``values`` filled in."""
    params: dict[str, sql.Composable] = {
        "schema": sql.Identifier(schema),
        "schema_name": sql.Literal(schema),
        "columns": sql.SQL(_columns()),
    }
    params.update(values)
    return sql.SQL(sql_text(template)).format(**params).as_string(None)


def plpython_queries(schema: str) -> dict[str, str]:
    """The queries the in-database sender runs (embedded into its body)."""
    return {
        "config": render("mail_config_read.sql", schema),
        "events": render("mail_xact_events.sql", schema),
        "claim": render("mail_claim.sql", schema),
    }


@cache
def plpython_sql(schema: str) -> str:
    """``mail_plpython.sql`` with the mail core's source embedded (deterministic per version)."""
    return render(
        "mail_plpython.sql",
        schema,
        redact_source=sql.SQL(repr(inspect.getsource(redact))),
        core_source=sql.SQL(repr(inspect.getsource(mailcore))),
        queries=sql.SQL(repr(plpython_queries(schema))),
    )


def expected_mail_functions(schema: str, mail_mode: str | None) -> dict[str, str]:
    """``{name: md5 of body}`` of the mail functions install writes in ``mail_mode``."""
    if mail_mode != "plpython":
        return {}
    import pglast
    from pglast import ast

    out: dict[str, str] = {}
    for raw in pglast.parse_sql(plpython_sql(schema)):
        if not isinstance(raw.stmt, ast.CreateFunctionStmt):
            continue
        stmt: Any = raw.stmt
        name = stmt.funcname[-1].sval
        body = next(o.arg[0].sval for o in stmt.options if o.defname == "as")
        out[name] = hashlib.md5(body.encode("utf-8")).hexdigest()
    return out


# -- install ------------------------------------------------------------------------------


@dataclass(frozen=True)
class MailInstall:
    """The mail part of an install: mode, strictness, settings to store, notify role."""

    mode: str = "outbox"
    strict: bool = False
    #: Recipients etc. (every mode); SMTP settings and templates are stored in plpython mode.
    settings: MailSettings | None = None
    notify_role: str | None = None

    def check(self) -> MailInstall:
        if self.mode not in MAIL_MODES:
            raise ConfigError(f"mail mode {self.mode!r} is not one of {', '.join(MAIL_MODES)}")
        if self.strict and self.mode != "plpython":
            raise ConfigError(
                "--strict needs --mail-mode plpython: only a mail sent from inside the "
                "transaction can refuse the DDL when it cannot be delivered (outbox mode "
                "never makes DDL wait on SMTP)"
            )
        if self.mode == "plpython" and (self.settings is None or not self.settings.mail_to):
            raise ConfigError("--mail-mode plpython needs recipients: give --mail-to")
        if self.notify_role is not None and not self.notify_role.strip():
            raise ConfigError("the notify role name is empty")
        return self


@dataclass(frozen=True)
class MailPlan:
    """Statements around capture_install.sql, and the ones with a secret (never printed)."""

    before: tuple[str, ...]
    after: tuple[str, ...]
    secrets: tuple[tuple[str, dict[str, Any]], ...] = ()
    created_plpython: bool = False


def _scalar(conn: psycopg.Connection[Any], query: str, params: Any = None) -> Any:
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None


def _plpython_state(conn: psycopg.Connection[Any]) -> tuple[bool, bool]:
    row = conn.execute(sql_text("mail_plpython_state.sql")).fetchone()
    return (bool(row[0]), bool(row[1])) if row else (False, False)


def check_plpython(
    conn: psycopg.Connection[Any], database: str, disable_audit: Sequence[str]
) -> None:
    """Refuse plpython mode, before anything changes, where the server cannot run it.

    Checks that plpython3u is available and that the server's Python has what the
    sender needs (Jinja2), in a transaction that is rolled back.  ``disable_audit``
    drops the auditor's event triggers inside it, so creating the language there is
    not audited.
    """
    available, installed = _plpython_state(conn)
    if not available:
        major = _scalar(conn, "SELECT current_setting('server_version_num')::int / 10000")
        raise InstallError(
            f"database {database!r}: plpython3u is not available on this server, so "
            f"--mail-mode plpython cannot be installed (install the server package that "
            f"provides it, on Debian postgresql-plpython3-{major}, or use --mail-mode "
            "outbox); nothing was changed"
        )
    try:
        with conn.transaction(force_rollback=True):
            if not installed:
                for stmt in disable_audit:
                    conn.execute(stmt)
                conn.execute("CREATE EXTENSION IF NOT EXISTS plpython3u")
            conn.execute(sql_text("mail_plpython_probe.sql"))
    except psycopg.Error as exc:
        diag = exc.diag
        reason = diag.message_primary or str(exc).strip().splitlines()[0]
        raise InstallError(
            f"database {database!r}: the in-database mail mode cannot run here: {reason}; "
            "nothing was changed"
        ) from None


def _created_plpython(conn: psycopg.Connection[Any], schema: str) -> bool:
    """Whether an earlier install created plpython3u here (recorded in mail_config)."""
    params = {"schema": schema, "table": "mail_config"}
    if not _scalar(conn, sql_text("mail_table_exists.sql"), params):
        return False
    return bool(_scalar(conn, render("mail_created_plpython.sql", schema)))


def mail_plan(
    conn: psycopg.Connection[Any],
    database: str,
    schema: str,
    mail: MailInstall,
    *,
    reader_role: str | None,
    previous_notify_role: str | None,
    disable_audit: Sequence[str],
) -> MailPlan:
    """The mail side's statements for one database (see :class:`MailPlan`)."""
    mail.check()
    installed = _plpython_state(conn)[1]
    created = _created_plpython(conn, schema)
    before: list[str] = [render("mail_prepare.sql", schema)]
    after: list[str] = [render("mail_install.sql", schema)]
    if mail.mode == "plpython":
        check_plpython(conn, database, disable_audit)
        if not installed:
            before.insert(0, "CREATE EXTENSION IF NOT EXISTS plpython3u")
            created = True
        before.append(plpython_sql(schema))
        after.append(render("mail_plpython_trigger.sql", schema))
    elif created and installed:
        others = _scalar(conn, sql_text("mail_plpython_users.sql"), {"schema": schema})
        if not others:
            after.append("DROP EXTENSION IF EXISTS plpython3u")
            created = False
    s = mail.settings
    plpy = mail.mode == "plpython" and s is not None

    def lit(value: Any) -> sql.Composable:
        return sql.Literal(value)

    after.append(
        render(
            "mail_record_config.sql",
            schema,
            mail_from=lit(s.mail_from if s else None),
            mail_to=lit(list(s.mail_to) if s else []),
            mail_cc=lit(list(s.mail_cc) if s else []),
            server_name=lit(s.server_name if s else None),
            smtp_host=lit(s.smtp.host if plpy and s else None),
            smtp_port=lit(s.smtp.port if plpy and s else None),
            smtp_security=lit(s.smtp.security if plpy and s else None),
            smtp_username=lit(s.smtp.username if plpy and s else None),
            smtp_timeout=lit(s.smtp.timeout if plpy and s else None),
            smtp_ca_file=lit(s.smtp.ca_file if plpy and s else None),
            dns_timeout=lit(s.dns_timeout if plpy and s else None),
            subject_template=lit(s.templates.subject if plpy and s else None),
            text_template=lit(s.templates.text if plpy and s else None),
            html_template=lit(s.templates.html if plpy and s else None),
            created_plpython=lit(created),
        )
    )
    secrets: list[tuple[str, dict[str, Any]]] = []
    if plpy and s is not None and s.smtp.password:
        secrets.append((render("mail_set_password.sql", schema), {"password": s.smtp.password}))
    if reader_role:
        after.append(
            render("mail_grant_reader.sql", schema, reader_role=sql.Identifier(reader_role))
        )
    if previous_notify_role and previous_notify_role != mail.notify_role:
        after.append(
            render("mail_revoke_role.sql", schema, role=sql.Identifier(previous_notify_role))
        )
    if mail.notify_role:
        after.append(
            render("mail_grant_notify.sql", schema, notify_role=sql.Identifier(mail.notify_role))
        )
    return MailPlan(tuple(before), tuple(after), tuple(secrets), created)


def uninstall_statements(conn: psycopg.Connection[Any], schema: str) -> list[str]:
    """After the schema is gone: drop plpython3u if install created it and nothing else uses it."""
    if not _created_plpython(conn, schema):
        return []
    if not _plpython_state(conn)[1]:
        return []
    if _scalar(conn, sql_text("mail_plpython_users.sql"), {"schema": schema}):
        return []
    return ["DROP EXTENSION IF EXISTS plpython3u"]


# -- status ----------------------------------------------------------------------------


@dataclass(frozen=True)
class FailingMail:
    id: int
    message_id: str
    command_tags: tuple[str, ...]
    attempts: int
    last_error: str | None
    last_attempt_at: str | None


@dataclass(frozen=True)
class MailStatus:
    """The delivery record of one database (``auditor status``)."""

    delivered: int = 0
    pending: int = 0
    failing: int = 0
    unclaimed: int = 0
    oldest_undelivered: str | None = None
    oldest_unclaimed: str | None = None
    failing_mails: tuple[FailingMail, ...] = field(default=())


def read_mail_status(conn: psycopg.Connection[Any], schema: str) -> MailStatus | None:
    """Counts of the delivery record, or None when the mail tables are not there."""
    installed = _scalar(conn, sql_text("mail_installed.sql"), {"schema": schema})
    if not installed:
        return None
    raw = _scalar(conn, render("mail_status.sql", schema)) or {}
    failing = tuple(
        FailingMail(
            int(f["id"]),
            str(f["message_id"]),
            tuple(f.get("command_tags") or ()),
            int(f["attempts"]),
            f.get("last_error"),
            f.get("last_attempt_at"),
        )
        for f in raw.get("failing_mails") or []
    )
    return MailStatus(
        delivered=int(raw.get("delivered") or 0),
        pending=int(raw.get("pending") or 0),
        failing=int(raw.get("failing") or 0),
        unclaimed=int(raw.get("unclaimed") or 0),
        oldest_undelivered=raw.get("oldest_undelivered"),
        oldest_unclaimed=raw.get("oldest_unclaimed"),
        failing_mails=failing,
    )


def _age(ts: str | None, now: datetime) -> float | None:
    if not ts:
        return None
    try:
        return (now - datetime.fromisoformat(ts)).total_seconds()
    except ValueError:
        return None


#: Undelivered mail older than this is worth a warning in status (is auditor notify running?).
STALE_SECONDS = 3600.0


def mail_problems(status: MailStatus, mode: str | None, now: datetime) -> list[tuple[str, bool]]:
    """``(message, weakens)`` for status: failing mails weaken the mail channel."""
    out: list[tuple[str, bool]] = []
    if mode == "none":
        return out
    if status.failing:
        last = status.failing_mails[-1] if status.failing_mails else None
        detail = (
            f" (last error, after {last.attempts} attempts: {redact.mask(last.last_error or '')})"
            if last
            else ""
        )
        out.append((f"{status.failing} DDL mail(s) keep failing, not delivered{detail}", True))
    stale = [
        age
        for age in (_age(status.oldest_undelivered, now), _age(status.oldest_unclaimed, now))
        if age is not None and age > STALE_SECONDS
    ]
    if stale:
        out.append(
            (
                f"DDL mails have waited {int(max(stale) // 60)} min: is auditor notify running?",
                False,
            )
        )
    return out
