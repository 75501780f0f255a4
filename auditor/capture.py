"""The trigger channel: install, remove and check the event triggers; read the audit table.

What runs in the server is in ``sql/capture_*.sql`` (the header of
``capture_install.sql`` documents the table and the row digest).  This module
plans and applies it:

* :func:`install` puts one current copy of the schema, its functions, its
  append-only protections and its ``ENABLE ALWAYS`` event triggers into each
  target database, in one transaction per database, and records the install;
* :func:`uninstall` removes exactly that (RESTRICT: anything foreign that
  depends on it stops the removal);
* :func:`status` checks both channels: per database the triggers, functions and
  protections against what install wrote, and the server settings the log
  channel depends on;
* :func:`read_audit_events` and :func:`xact_status` are what reconcile reads.

The audit trigger's log marker is described in :mod:`auditor.marker`, the row
digest in :mod:`auditor.digest`.  Every NOTIFY on channel ``<schema>_events``
carries the id of one audit row as payload (outbox mail mode, sent at commit).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from functools import cache
from typing import TYPE_CHECKING, Any, overload

import orjson
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from auditor import __version__, capture_bulk, outbox
from auditor.db import connect, describe_dsn, server_settings, sql_text
from auditor.digest import fields_digest, parse_objects_json
from auditor.encoding import is_sql_ascii
from auditor.errors import AuditorError, ConfigError, InstallError
from auditor.model import AuditEvent, AuditObject
from auditor.tamper import AuditorObjects

if TYPE_CHECKING:
    from auditor.catalog import SnapshotStatus

#: Version of the SQL layout written by this package (recorded in ``installs``).
#: 2: the mail side (deliveries, delivery_events, mail_state, mail_config).
#: 3: the audit function pins the settings its marker depends on (log_min_messages,
#:    log_error_verbosity, lc_messages, backtrace_functions).
#:    It also leaves PostgreSQL 18's extension-script frame out of caller_context.
#: 4: the audit function survives a sequence set back by a restore of a dump (pg_dump's
#:    setval): it moves the sequence past the table's highest id, never writes over a
#:    row, and says so in the marker (``behind=``); the catalog snapshot and the mail
#:    claim cope the same way, and install moves the other serials on.
#: 5: the catalog snapshot follows publications, subscriptions, default privileges,
#:    foreign-data wrappers, servers, user mappings, casts and languages, and each row
#:    names the catalogs it follows (``catalog_snapshots.catalogs``).
SCHEMA_VERSION = 5
#: The events the audit trigger function is attached to.
EVENTS = ("ddl_command_end", "sql_drop", "table_rewrite")
#: Tables that are append-only (a statement trigger refuses UPDATE, DELETE, TRUNCATE).
PROTECTED_TABLES = ("events", "installs", "catalog_snapshots")
#: Functions that run with the owner's rights and must keep a fixed search_path.
DEFINER_FUNCTIONS = ("record_event", "catalog_snapshot", *outbox.PLPYTHON_FUNCTIONS)
#: The SQL files whose functions install writes (besides the mail mode's).
INSTALL_FILES = ("capture_install.sql", "catalog_install.sql")
FIXED_SEARCH_PATH = "search_path=pg_catalog, pg_temp"
#: The settings record_event() pins so that no session can mute or reshape its markers.
MARKER_PINS = (
    "log_min_messages=warning",
    "log_error_verbosity=default",
    "lc_messages=C",
    "log_min_error_statement=error",
)
#: Privileges on an append-only table that let a role other than its owner change evidence.
_WRITE_PRIVILEGES = frozenset({"INSERT", "UPDATE", "DELETE", "TRUNCATE", "TRIGGER"})
#: Mail modes this version can install (see auditor.outbox).
MAIL_MODES = outbox.MAIL_MODES
INSTALL_APPLICATION = "auditor install"
READER_ROLE_COMMENT = "auditor: read-only role for reconcile (created by auditor install)"
#: Settings below these levels drop DDL statements or the markers from the log.
LOG_STATEMENT_OK = ("ddl", "mod", "all")
_MARKER_LOST_LEVELS = ("fatal", "panic")

_NAME = re.compile(r"[a-z_][a-z0-9_]{0,39}")
_TRIGGER_TYPE_BEFORE_UPDATE_DELETE_TRUNCATE = 2 | 8 | 16 | 32
_TRIGGER_TYPE_ROW = 1


# -- names and SQL templates ----------------------------------------------------


def check_schema_name(name: str) -> str:
    """The audit schema name, if it is a plain lower-case identifier.

    Plain names keep the marker line parseable and every quoting question moot.

    >>> check_schema_name("auditor")
    'auditor'
    >>> check_schema_name("Audit Log")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    auditor.errors.ConfigError: schema name 'Audit Log' is not allowed: ...
    """
    if not _NAME.fullmatch(name):
        raise ConfigError(
            f"schema name {name!r} is not allowed: use lower-case letters, digits and _ "
            "(at most 40, not starting with a digit)"
        )
    return name


def event_trigger_names(schema: str) -> dict[str, str]:
    """The event trigger of each event, named after the schema.

    >>> event_trigger_names("auditor")["sql_drop"]
    'auditor_sql_drop'
    """
    return {event: f"{schema}_{event}" for event in EVENTS}


def notify_channel(schema: str) -> str:
    """The NOTIFY channel of an install; the payload is one audit row id.

    >>> notify_channel("auditor")
    'auditor_events'
    """
    return f"{schema}_events"


def render(template: str, schema: str, **values: sql.Composable) -> str:
    """A packaged SQL template with the schema (and ``values``) filled in, as text."""
    params: dict[str, sql.Composable] = {
        "schema": sql.Identifier(schema),
        "schema_name": sql.Literal(schema),
        "notify_channel": sql.Literal(notify_channel(schema)),
    }
    for event, name in event_trigger_names(schema).items():
        params[f"{event}_trigger"] = sql.Identifier(name)
    params.update(values)
    return sql.SQL(sql_text(template)).format(**params).as_string(None)


@cache
def expected_functions(schema: str, mail_mode: str | None = "outbox") -> dict[str, str]:
    """``{function name: md5 of its body}`` exactly as this package installs them.

    Read from ``capture_install.sql``, ``catalog_install.sql`` (and the mail mode's SQL) with a real
    PostgreSQL parser (pglast), so it always matches the files; ``status`` compares
    it with ``pg_proc.prosrc``.
    """
    import pglast
    from pglast import ast

    out: dict[str, str] = {}
    statements = [raw for f in INSTALL_FILES for raw in pglast.parse_sql(render(f, schema))]
    for raw in statements:
        if not isinstance(raw.stmt, ast.CreateFunctionStmt):
            continue
        stmt: Any = raw.stmt  # pglast's optional fields are always set for CREATE FUNCTION
        name = stmt.funcname[-1].sval
        body = next(o.arg[0].sval for o in stmt.options if o.defname == "as")
        out[name] = hashlib.md5(body.encode("utf-8")).hexdigest()
    out.update(outbox.expected_mail_functions(schema, mail_mode))
    return out


@cache
def expected_configs(schema: str, mail_mode: str | None = "outbox") -> dict[str, tuple[str, ...]]:
    """``{function name: its SET clauses as pg_proc.proconfig holds them}`` as installed.

    Parsed from the same files as :func:`expected_functions`; ``status`` reports any
    function whose settings differ (a pinned setting removed or a new one attached:
    ``ALTER FUNCTION ... SET/RESET``, or a catalog update of ``proconfig``).

    >>> expected_configs("auditor")["record_event"][:2]
    ('search_path=pg_catalog, pg_temp', 'log_min_error_statement=error')
    """
    import pglast
    from pglast import ast

    texts = [render(f, schema) for f in INSTALL_FILES]
    if mail_mode == "plpython":
        texts.append(outbox.plpython_sql(schema))
    out: dict[str, tuple[str, ...]] = {}
    for text in texts:
        for raw in pglast.parse_sql(text):
            if not isinstance(raw.stmt, ast.CreateFunctionStmt):
                continue
            stmt: Any = raw.stmt
            config = []
            for o in stmt.options:
                if o.defname == "set":
                    values = [str(getattr(a.val, "sval", a.val)) for a in o.arg.args or ()]
                    config.append(f"{o.arg.name}={', '.join(values)}")
            out[stmt.funcname[-1].sval] = tuple(config)
    return out


# -- reports ----------------------------------------------------------------------


def psql_quote(arg: str) -> str:
    r"""A psql meta-command argument, single-quoted (for ``\connect`` in printed scripts).

    >>> print(psql_quote("it's"), psql_quote("a\\b"))
    'it''s' 'a\\b'
    """
    return "'" + arg.replace("\\", "\\\\").replace("'", "''") + "'"


@dataclass(frozen=True)
class Problem:
    """Something that weakens a channel (``weakens``) or deserves a look (warning)."""

    channel: str  # "trigger", "log" or "mail"
    message: str
    weakens: bool = True
    database: str | None = None
    #: A weakening that hides evidence (critical in reconcile), or one that only makes
    #: the cross-check weaker while every statement is still seen (high).
    critical: bool = True
    #: The channel does not work at all: e.g. every DDL of the database is refused
    #: (``auditor status`` says BROKEN).
    breaks: bool = False

    def __str__(self) -> str:
        where = f"{self.database}: " if self.database else ""
        return f"{where}{self.message}"


@dataclass(frozen=True)
class DatabaseInstall:
    """What install did (or, with ``--dry-run``, would do) in one database."""

    name: str
    action: str  # installed, upgraded, reinstalled
    previous_version: str | None
    statements: tuple[str, ...]
    notices: tuple[str, ...] = ()
    #: Statements that carry a secret (the SMTP password): run, never printed.
    secret_statements: int = 0


@dataclass(frozen=True)
class InstallReport:
    server: str
    schema: str
    version: str
    dry_run: bool
    cluster_statements: tuple[str, ...]
    databases: tuple[DatabaseInstall, ...]
    warnings: tuple[Problem, ...]
    created_roles: tuple[str, ...] = ()

    def script(self) -> str:
        """The exact SQL install runs (or would run), database by database."""
        parts: list[str] = []
        if self.cluster_statements:
            parts.append("-- cluster-wide (run once, on the DSN's database)")
            parts.extend(
                s.rstrip() + ("" if s.rstrip().endswith(";") else ";")
                for s in self.cluster_statements
            )
        for db in self.databases:
            parts.append(f"\n-- database {db.name}: {db.action}")
            parts.append(r"\connect " + psql_quote(db.name))
            parts.append("BEGIN;")
            parts.extend(
                s.rstrip() + ("" if s.rstrip().endswith(";") else ";") for s in db.statements
            )
            if db.secret_statements:
                parts.append(
                    "-- install also stores the SMTP password (mail_set_password.sql); "
                    "it is never printed"
                )
            parts.append("COMMIT;")
        return "\n".join(parts) + "\n"


@dataclass(frozen=True)
class DatabaseUninstall:
    name: str
    removed: bool
    events_dropped: int
    statements: tuple[str, ...]


@dataclass(frozen=True)
class UninstallReport:
    server: str
    schema: str
    dry_run: bool
    databases: tuple[DatabaseUninstall, ...]
    cluster_statements: tuple[str, ...]
    dropped_roles: tuple[str, ...] = ()


@dataclass(frozen=True)
class EventTriggerState:
    name: str
    event: str
    enabled: str  # O (origin), R (replica), A (always), D (disabled)

    @property
    def always(self) -> bool:
        return self.enabled == "A"


@dataclass(frozen=True)
class DatabaseStatus:
    """The trigger channel in one database."""

    name: str
    installed: bool
    version: str | None = None
    schema_version: int | None = None
    mail_mode: str | None = None
    audit_rows: int | None = None
    installs: int | None = None
    event_triggers: tuple[EventTriggerState, ...] = ()
    triggers_ok: bool = False
    protections_ok: bool = False
    functions_ok: bool = False
    problems: tuple[Problem, ...] = ()
    error: str | None = None
    mail: outbox.MailStatus | None = None
    #: The catalog channel: how many snapshots, the latest.
    catalog: SnapshotStatus | None = None
    #: The superuser that owns every object of the install (None: several owners, or
    #: one that is not a superuser); what an ``OWNER TO`` restates (auditor.restore).
    owner: str | None = None
    #: The reader and notify roles the latest install names.
    reader_role: str | None = None
    notify_role: str | None = None
    #: The database the audit table's first row names, when it is another one: rows
    #: copied in with a template or by a restore of that database's dump.
    copied_from: str | None = None

    @property
    def weakened(self) -> bool:
        return any(p.weakens for p in self.problems)

    @property
    def broken(self) -> bool:
        return any(p.breaks for p in self.problems)


@dataclass(frozen=True)
class StatusReport:
    """Both channels at a glance; ``exit_code`` is 0 healthy, 1 weakened, 2 unreadable."""

    server: str
    server_version_num: int
    schema: str
    settings: dict[str, str]
    problems: tuple[Problem, ...]
    databases: tuple[DatabaseStatus, ...]
    role_settings: tuple[dict[str, str | None], ...] = ()

    @property
    def weakened(self) -> bool:
        return any(p.weakens for p in self.problems) or any(d.weakened for d in self.databases)

    @property
    def errors(self) -> tuple[str, ...]:
        return tuple(f"{d.name}: {d.error}" for d in self.databases if d.error)

    @property
    def exit_code(self) -> int:
        if self.errors:
            return 2
        return 1 if self.weakened else 0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["weakened"] = self.weakened
        out["exit_code"] = self.exit_code
        for db, raw in zip(self.databases, out["databases"], strict=True):
            raw["weakened"] = db.weakened
            for trig, raw_trig in zip(db.event_triggers, raw["event_triggers"], strict=True):
                raw_trig["always"] = trig.always
        return out


# -- server settings -----------------------------------------------------------


def _prefix_has(prefix: str, escape: str) -> bool:
    """Whether ``log_line_prefix`` contains ``%<escape>`` (not ``%%<escape>``).

    >>> _prefix_has("%m [%p] %c %v ", "c"), _prefix_has("%%c %m", "c")
    (True, False)
    """
    i = 0
    while i < len(prefix) - 1:
        if prefix[i] == "%":
            if prefix[i + 1] == escape:
                return True
            i += 2
            continue
        i += 1
    return False


def assess_settings(
    settings: Mapping[str, str], role_settings: Iterable[Mapping[str, str | None]] = ()
) -> list[Problem]:
    """Server settings that weaken a channel (``weakens``) or deserve a warning.

    >>> [p.message for p in assess_settings({"log_statement": "none",
    ...     "logging_collector": "on", "log_destination": "csvlog", "log_line_prefix": ""})]
    ["log_statement = 'none': DDL statements are not logged (needs ddl, mod or all)"]
    >>> [p.message for p in assess_settings({"log_statement": "ddl", "logging_collector": "on",
    ...     "log_destination": "stderr", "log_line_prefix": "%m [%p] "})]  # doctest: +ELLIPSIS
    ["log_line_prefix = '%m [%p] ' lacks %c and %v and stderr is the only log: ..."]
    """
    problems: list[Problem] = []
    log_statement = settings.get("log_statement", "")
    if log_statement not in LOG_STATEMENT_OK:
        problems.append(
            Problem(
                "log",
                f"log_statement = {log_statement!r}: DDL statements are not logged "
                "(needs ddl, mod or all)",
            )
        )
    if settings.get("logging_collector") == "off":
        problems.append(
            Problem(
                "log",
                "logging_collector = off: the log is not written to files the server "
                "manages (csvlog and jsonlog need it; stderr goes wherever the server's "
                "stderr goes)",
            )
        )
    destinations = {d.strip() for d in settings.get("log_destination", "").split(",") if d.strip()}
    if destinations and not destinations & {"stderr", "csvlog", "jsonlog"}:
        problems.append(
            Problem(
                "log",
                f"log_destination = {settings.get('log_destination')!r}: auditor reads "
                "stderr, csvlog and jsonlog files; the log goes elsewhere",
                weakens=False,
            )
        )
    prefix = settings.get("log_line_prefix", "")
    if "stderr" in destinations and not destinations & {"csvlog", "jsonlog"}:
        missing = [e for e in ("c", "v") if not _prefix_has(prefix, e)]
        if missing:
            escapes = " and ".join("%" + e for e in missing)
            problems.append(
                Problem(
                    "log",
                    f"log_line_prefix = {prefix!r} lacks {escapes} and stderr is the only "
                    "log: statements cannot be paired with audit rows by session and "
                    "transaction (add %c and %v, or csvlog/jsonlog)",
                    critical=False,
                )
            )
    if settings.get("log_min_messages") in _MARKER_LOST_LEVELS:
        problems.append(
            Problem(
                "log",
                f"log_min_messages = {settings['log_min_messages']!r}: the audit trigger's "
                "marker lines (level LOG) are not logged",
            )
        )
    if settings.get("log_error_verbosity") == "terse":
        problems.append(
            Problem(
                "log",
                "log_error_verbosity = 'terse': log lines carry no CONTEXT, so a marker "
                "forged with RAISE LOG cannot be told from the audit trigger's (use default)",
                weakens=False,
            )
        )
    if settings.get("event_triggers") == "off":
        problems.append(
            Problem("trigger", "event_triggers = off: no event trigger fires in this cluster")
        )
    for row in role_settings:
        where = " and ".join(
            part
            for part in (
                f"role {row['role']}" if row.get("role") else "",
                f"database {row['database']}" if row.get("database") else "",
            )
            if part
        )
        name, value = str(row.get("name")), str(row.get("value"))
        if name == "log_statement" and value not in LOG_STATEMENT_OK:
            problems.append(
                Problem("log", f"ALTER ROLE/DATABASE sets log_statement = {value!r} for {where}")
            )
        elif name == "log_min_messages" and value in _MARKER_LOST_LEVELS:
            problems.append(
                Problem("log", f"ALTER ROLE/DATABASE sets log_min_messages = {value!r} for {where}")
            )
        elif name == "event_triggers" and value == "off":
            problems.append(
                Problem("trigger", f"ALTER ROLE/DATABASE sets event_triggers = off for {where}")
            )
    return problems


#: Parameters whose SET or ALTER SYSTEM privilege, held by a non-superuser, weakens a
#: channel: the statement log, the markers, and the event triggers themselves.
CHANNEL_PARAMETERS = frozenset(
    {"log_statement", "log_min_messages", "log_min_error_statement", "log_error_verbosity",
     "lc_messages", "event_triggers", "session_replication_role", "log_destination",
     "logging_collector", "log_directory", "log_filename", "log_line_prefix",
     "log_rotation_age", "log_rotation_size", "log_truncate_on_rotation", "log_file_mode",
     "syslog_facility", "syslog_ident", "syslog_sequence_numbers", "syslog_split_messages",
     "shared_preload_libraries", "session_preload_libraries", "backtrace_functions"}
)  # fmt: skip


def parameter_grants(conn: psycopg.Connection[Any], server_version_num: int) -> list[Problem]:
    """``GRANT SET / ALTER SYSTEM ON PARAMETER`` (PG 15+) of channel settings to non-superusers.

    A role that may ``SET log_statement`` silences the log channel for its session
    without a trace, exactly like a superuser; with ``ALTER SYSTEM`` it rewrites the
    logging configuration of the whole server.
    """
    if server_version_num < 150000:
        return []
    out: list[Problem] = []
    for parameter, grantee, privilege in conn.execute(sql_text("capture_parameter_acl.sql")):
        if str(parameter) not in CHANNEL_PARAMETERS:
            continue
        how = "SET" if privilege == "SET" else "ALTER SYSTEM SET"
        out.append(
            Problem(
                "log" if parameter != "event_triggers" else "trigger",
                f"{grantee} may {how} {parameter} without being a superuser "
                f"(GRANT {privilege} ON PARAMETER {parameter})",
            )
        )
    return out


def _role_settings(conn: psycopg.Connection[Any]) -> list[dict[str, str | None]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return [dict(r) for r in cur.execute(sql_text("role_settings.sql")).fetchall()]


# -- connections and targets -----------------------------------------------------


@dataclass(frozen=True)
class _Session:
    role: str
    superuser: bool
    database: str
    server_version_num: int


def _session(conn: psycopg.Connection[Any]) -> _Session:
    row = conn.execute(sql_text("capture_session.sql")).fetchone()
    if row is None:  # the current role is always in pg_roles
        raise AuditorError("cannot read the current role from pg_roles")
    return _Session(str(row[0]), bool(row[1]), str(row[2]), int(row[3]))


def session_database(conn: psycopg.Connection[Any]) -> str:
    """The connected database's name (as libpq knows it, before any query)."""
    return str(conn.info.dbname)


def set_role(conn: psycopg.Connection[Any], role: str | None, database: str) -> None:
    """``SET ROLE role`` (nothing when None); a refusal is one line naming the database."""
    if not role:
        return
    try:
        conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
    except psycopg.Error as exc:
        raise AuditorError(
            f"database {database!r}: cannot SET ROLE {role}: {_pg_error(exc)} (the login "
            f"role must be a member of {role})"
        ) from None


def _require_superuser(dsn: str, session: _Session, what: str) -> None:
    if not session.superuser:
        raise InstallError(
            f"{describe_dsn(dsn)}: role {session.role!r} is not a superuser; auditor {what} "
            "needs one (only superusers can create and drop event triggers); nothing was changed"
        )


def _targets(
    conn: psycopg.Connection[Any],
    session: _Session,
    databases: Sequence[str],
    all_databases: bool,
) -> list[str]:
    rows = conn.execute(sql_text("databases.sql")).fetchall()
    allow = {str(r[0]): bool(r[1]) for r in rows}
    if all_databases:
        return [name for name, ok in allow.items() if ok]
    if not databases:
        return [session.database]
    out: list[str] = []
    for name in databases:
        if name not in allow:
            raise InstallError(f"database {name!r} does not exist on this server")
        if not allow[name]:
            raise InstallError(f"database {name!r} does not accept connections")
        if name not in out:
            out.append(name)
    return out


def _pg_error(exc: psycopg.Error) -> str:
    """One line from a server error: the primary message, plus its detail if any."""
    diag = getattr(exc, "diag", None)
    primary = diag.message_primary if diag is not None else None
    detail = diag.message_detail if diag is not None else None
    lines = str(exc).strip().splitlines()
    text = primary or (lines[0] if lines else type(exc).__name__)
    if detail:
        text += " (" + " ".join(detail.split()) + ")"
    return text


# -- state of one database ------------------------------------------------------


def _state(conn: psycopg.Connection[Any], schema: str) -> dict[str, Any]:
    row = conn.execute(sql_text("capture_state.sql"), {"schema": schema}).fetchone()
    state = dict(row[0]) if row and row[0] else {}
    for f in state.get("functions") or []:
        f["owner_cannot_set"] = _owner_cannot_set(conn, f)
        if f.get("name") == "record_event" and f.get("owner_superuser") is False:
            row = conn.execute(
                sql_text("capture_owner_rights.sql"), {"role": f.get("owner"), "schema": schema}
            ).fetchone()
            f["owner_lacks"] = list(row[0]) if row and row[0] else []
    return state


def _owner_cannot_set(conn: psycopg.Connection[Any], function: Mapping[str, Any]) -> list[str]:
    """Settings of a function's SET clauses its owner may not set (every call then fails).

    Only a superuser may set them before PostgreSQL 15; from 15 on, ``GRANT SET ON
    PARAMETER`` may let another role (the grant itself is reported on its own).
    """
    wanted = list(function.get("superuser_settings") or [])
    if not wanted or function.get("owner_superuser") is not False:
        return []
    if conn.info.server_version < 150000:
        return wanted
    rows = conn.execute(
        sql_text("capture_owner_settable.sql"),
        {"role": function.get("owner"), "settings": wanted},
    ).fetchall()
    settable = {r[0] for r in rows}
    return [w for w in wanted if w not in settable]


def _install_info(
    conn: psycopg.Connection[Any], schema: str, state: Mapping[str, Any]
) -> dict[str, Any]:
    names = {r["name"] for r in state.get("relations") or []}
    if not {"installs", "settings", "events"} <= names:
        return {}
    row = conn.execute(render("capture_install_info.sql", schema)).fetchone()
    return dict(row[0]) if row and row[0] else {}


def _ours(state: Mapping[str, Any]) -> bool:
    """Whether an existing schema was created by auditor (it has the installs table)."""
    return any(r["name"] == "installs" for r in state.get("relations") or [])


def _foreign_schema(state: Mapping[str, Any]) -> bool:
    """A schema that exists, is not ours and is not empty: install must not touch it."""
    if not state.get("schema_exists") or _ours(state):
        return False
    return bool(state.get("relations") or state.get("functions"))


def _stray_event_triggers(state: Mapping[str, Any], schema: str) -> list[str]:
    """Event triggers running a function of the schema under another name (older versions)."""
    names = set(event_trigger_names(schema).values())
    return [
        t["name"]
        for t in state.get("event_triggers") or []
        if t["function_schema"] == schema and t["name"] not in names
    ]


# -- install ---------------------------------------------------------------------


@dataclass(frozen=True)
class _Plan:
    action: str
    previous_version: str | None
    statements: list[str]
    secrets: tuple[tuple[str, dict[str, Any]], ...] = ()


def _install_plan(
    conn: psycopg.Connection[Any],
    session: _Session,
    schema: str,
    mail: outbox.MailInstall,
    reader_role: str | None,
) -> _Plan:
    """The statements to install into the connected database (and the action it is)."""
    state = _state(conn, schema)
    if _foreign_schema(state):
        raise InstallError(
            f"database {session.database!r}: schema {schema!r} exists and was not created by "
            "auditor; choose another schema (--schema) or move its objects away"
        )
    info = _install_info(conn, schema, state)
    previous = info.get("install") or {}
    previous_version = previous.get("package_version")
    if not state.get("schema_exists") or not previous:
        action = "installed"
    elif previous_version == __version__ and previous.get("schema_version") == SCHEMA_VERSION:
        action = "reinstalled"
    else:
        action = "upgraded"

    stmts: list[str] = ["SET LOCAL search_path = pg_catalog, pg_temp"]
    # Drop the old event triggers first: the rest of the install is then not audited
    # by a half-replaced copy, and renamed triggers of older versions go away.
    drops = [
        sql.SQL("DROP EVENT TRIGGER IF EXISTS {}").format(sql.Identifier(name)).as_string(None)
        for name in [*event_trigger_names(schema).values(), *_stray_event_triggers(state, schema)]
    ]
    stmts.extend(drops)
    mail_plan = outbox.mail_plan(
        conn,
        session.database,
        schema,
        mail,
        reader_role=reader_role,
        previous_notify_role=previous.get("notify_role"),
        disable_audit=drops,
    )
    stmts.extend(mail_plan.before)
    stmts.append(render("capture_install.sql", schema))
    stmts.append(render("catalog_install.sql", schema))
    stmts.extend(mail_plan.after)
    owner = next(
        (r["owner"] for r in state.get("relations") or [] if r["name"] == "events"), session.role
    )
    stmts.append(
        sql.SQL("REVOKE UPDATE, DELETE, TRUNCATE ON {} FROM {}")
        .format(
            sql.SQL(", ").join(sql.Identifier(schema, t) for t in PROTECTED_TABLES),
            sql.Identifier(owner),
        )
        .as_string(None)
    )
    old_reader = previous.get("reader_role")
    if old_reader and old_reader != reader_role:
        stmts.append(
            render("capture_revoke_reader.sql", schema, reader_role=sql.Identifier(old_reader))
        )
    if reader_role:
        stmts.append(
            render("capture_grant_reader.sql", schema, reader_role=sql.Identifier(reader_role))
        )
    stmts.append(
        render(
            "capture_record_install.sql",
            schema,
            mail_mode=sql.Literal(mail.mode),
            strict=sql.Literal(mail.strict),
            package_version=sql.Literal(__version__),
            schema_version=sql.Literal(SCHEMA_VERSION),
            reader_role=sql.Literal(reader_role),
            notify_role=sql.Literal(mail.notify_role),
        )
    )
    stmts.append(render("capture_event_triggers.sql", schema))
    # The catalog channel's baseline: the schema as it is once the install is done.
    stmts.append(render("catalog_baseline.sql", schema))
    return _Plan(action, previous_version, stmts, mail_plan.secrets)


def _reader_role_state(
    conn: psycopg.Connection[Any], role: str, comment: str = READER_ROLE_COMMENT
) -> tuple[bool, bool, int]:
    row = conn.execute(
        sql_text("capture_reader_role.sql"), {"role": role, "comment": comment}
    ).fetchone()
    if row is None:
        return False, False, 0
    return bool(row[0]), bool(row[1]), int(row[2])


def install(
    dsn: str,
    *,
    databases: Sequence[str] = (),
    all_databases: bool = False,
    schema: str = "auditor",
    reader_role: str | None = None,
    mail_mode: str = "outbox",
    dry_run: bool = False,
    mail: outbox.MailInstall | None = None,
) -> InstallReport:
    """Install (or upgrade in place) the trigger channel; one transaction per database.

    Refuses without superuser, before changing anything.  With ``dry_run`` nothing
    is changed and the report's :meth:`InstallReport.script` is the exact SQL.
    ``mail`` (mode, strictness, recipients and SMTP settings, notify role) wins over
    ``mail_mode``.
    """
    check_schema_name(schema)
    if mail is None:
        if mail_mode not in MAIL_MODES:
            raise ConfigError(
                f"mail mode {mail_mode!r} is not available in this version "
                f"(use {' or '.join(MAIL_MODES)})"
            )
        mail = outbox.MailInstall(mode=mail_mode)
    mail.check()
    if reader_role is not None and not reader_role.strip():
        raise ConfigError("the reader role name is empty")
    server = describe_dsn(dsn)
    with connect(dsn, application_name=INSTALL_APPLICATION) as main:
        session = _session(main)
        _require_superuser(dsn, session, "install")
        targets = _targets(main, session, databases, all_databases)
        warnings = tuple(assess_settings(server_settings(main), _role_settings(main))) + tuple(
            parameter_grants(main, session.server_version_num)
        )
        cluster: list[str] = []
        created: list[str] = []
        for role, comment in (
            (reader_role, READER_ROLE_COMMENT),
            (mail.notify_role, outbox.NOTIFY_ROLE_COMMENT),
        ):
            if not role or role in created:
                continue
            exists, _, _ = _reader_role_state(main, role, comment)
            if not exists:
                created.append(role)
                cluster.append(
                    sql.SQL(sql_text("capture_create_reader.sql"))
                    .format(reader_role=sql.Identifier(role), comment=sql.Literal(comment))
                    .as_string(None)
                )
        plans: list[tuple[str, _Plan]] = []
        for name in targets:
            with connect(dsn, dbname=name, application_name=INSTALL_APPLICATION) as conn:
                plans.append((name, _install_plan(conn, session, schema, mail, reader_role)))
        if dry_run:
            return InstallReport(
                server,
                schema,
                __version__,
                True,
                tuple(cluster),
                tuple(
                    DatabaseInstall(
                        n,
                        p.action,
                        p.previous_version,
                        tuple(p.statements),
                        secret_statements=len(p.secrets),
                    )
                    for n, p in plans
                ),
                warnings,
                tuple(created),
            )
        for stmt in cluster:
            try:
                main.execute(stmt)
            except psycopg.Error as exc:
                raise InstallError(f"{server}: creating a role failed: {_pg_error(exc)}") from None

    done: list[DatabaseInstall] = []
    for name, plan in plans:
        notices: list[str] = []

        def keep_notice(diag: psycopg.errors.Diagnostic, notices: list[str] = notices) -> None:
            if (diag.message_primary or "").startswith("auditor:"):
                notices.append(diag.message_primary or "")

        try:
            with connect(dsn, dbname=name, application_name=INSTALL_APPLICATION) as conn:
                conn.add_notice_handler(keep_notice)
                with conn.transaction():
                    for stmt in plan.statements:
                        conn.execute(stmt)
                    for stmt, params in plan.secrets:
                        conn.execute(stmt, params)
        except psycopg.Error as exc:
            finished = ", ".join(d.name for d in done) or "none"
            raise InstallError(
                f"install into database {name!r} failed and was rolled back: {_pg_error(exc)} "
                f"(databases already installed: {finished})"
            ) from None
        done.append(
            DatabaseInstall(
                name,
                plan.action,
                plan.previous_version,
                tuple(plan.statements),
                tuple(notices),
                len(plan.secrets),
            )
        )
    return InstallReport(
        server, schema, __version__, False, tuple(cluster), tuple(done), warnings, tuple(created)
    )


# -- uninstall -------------------------------------------------------------------


def _uninstall_plan(
    conn: psycopg.Connection[Any], session: _Session, schema: str
) -> tuple[bool, int, list[str], list[tuple[str, str]]]:
    """(anything to remove, audit rows that go with it, statements, (role, comment)s)."""
    state = _state(conn, schema)
    strays = _stray_event_triggers(state, schema)
    ours_by_name = [
        t
        for t in state.get("event_triggers") or []
        if t["name"] in event_trigger_names(schema).values()
    ]
    if not state.get("schema_exists"):
        if not strays and not ours_by_name:
            return False, 0, [], []
    elif _foreign_schema(state):
        raise InstallError(
            f"database {session.database!r}: schema {schema!r} was not created by auditor; "
            "nothing was removed"
        )
    info = _install_info(conn, schema, state)
    previous = info.get("install") or {}
    stmts = ["SET LOCAL search_path = pg_catalog, pg_temp"]
    for name in strays:
        stmts.append(
            sql.SQL("DROP EVENT TRIGGER IF EXISTS {}").format(sql.Identifier(name)).as_string(None)
        )
    # Functions of older versions (recorded by their install) that this version does not know.
    current = set(expected_functions(schema, "plpython"))
    live = {f["name"] for f in state.get("functions") or []}
    recorded = set((previous.get("functions") or {}).keys())
    for fname in sorted((recorded & live) - current):
        stmts.append(
            sql.SQL("DROP FUNCTION IF EXISTS {}")
            .format(sql.Identifier(schema, fname))
            .as_string(None)
        )
    if state.get("schema_exists"):
        extra = outbox.uninstall_statements(conn, schema)  # read before the schema goes
        stmts.append(render("capture_uninstall.sql", schema))
        stmts.extend(extra)
    else:
        for name in event_trigger_names(schema).values():
            stmts.append(
                sql.SQL("DROP EVENT TRIGGER IF EXISTS {}")
                .format(sql.Identifier(name))
                .as_string(None)
            )
    roles = [
        (role, comment)
        for role, comment in (
            (previous.get("reader_role"), READER_ROLE_COMMENT),
            (previous.get("notify_role"), outbox.NOTIFY_ROLE_COMMENT),
        )
        if role
    ]
    return True, int(info.get("events") or 0), stmts, roles


def uninstall(
    dsn: str,
    *,
    databases: Sequence[str] = (),
    all_databases: bool = False,
    schema: str = "auditor",
    dry_run: bool = False,
) -> UninstallReport:
    """Remove what :func:`install` created (and the audit rows with it), nothing else."""
    check_schema_name(schema)
    server = describe_dsn(dsn)
    with connect(dsn, application_name=INSTALL_APPLICATION) as main:
        session = _session(main)
        _require_superuser(dsn, session, "uninstall")
        targets = _targets(main, session, databases, all_databases)
    plans: list[tuple[str, bool, int, list[str], list[tuple[str, str]]]] = []
    for name in targets:
        with connect(dsn, dbname=name, application_name=INSTALL_APPLICATION) as conn:
            plans.append((name, *_uninstall_plan(conn, session, schema)))
    results: list[DatabaseUninstall] = []
    readers: dict[str, str] = {}
    for name, present, rows, stmts, roles in plans:
        readers.update(roles)
        if present and not dry_run:
            try:
                with (
                    connect(dsn, dbname=name, application_name=INSTALL_APPLICATION) as conn,
                    conn.transaction(),
                ):
                    for stmt in stmts:
                        conn.execute(stmt)
            except psycopg.Error as exc:
                finished = ", ".join(r.name for r in results if r.removed) or "none"
                raise InstallError(
                    f"uninstall from database {name!r} was refused and rolled back: "
                    f"{_pg_error(exc)} (databases already done: {finished})"
                ) from None
        results.append(DatabaseUninstall(name, present, rows, tuple(stmts)))
    cluster: list[str] = []
    dropped: list[str] = []
    with connect(dsn, application_name=INSTALL_APPLICATION) as main:
        for role, comment in sorted(readers.items()):
            exists, ours, deps = _reader_role_state(main, role, comment)
            # Only a role install created, and only once nothing grants it anything.
            if exists and ours and (deps == 0 or dry_run):
                stmt = sql.SQL("DROP ROLE {}").format(sql.Identifier(role)).as_string(None)
                cluster.append(stmt)
                dropped.append(role)
                if not dry_run:
                    try:
                        main.execute(stmt)
                    except psycopg.Error as exc:
                        raise InstallError(
                            f"{server}: dropping the role {role!r} failed: {_pg_error(exc)}"
                        ) from None
    return UninstallReport(server, schema, dry_run, tuple(results), tuple(cluster), tuple(dropped))


# -- status ----------------------------------------------------------------------

#: A SET of any setting, or set_config(), in a function body.
_SETS_SOMETHING = re.compile(
    r"\bset_config\s*\(|\bSET\s+(?:SESSION\s+|LOCAL\s+)?[A-Za-z_][A-Za-z0-9_.]*\s*(?:=|\bTO\b)",
    re.I,
)


def _foreign_event_triggers(state: Mapping[str, Any], schema: str) -> list[str]:
    """Warnings about event triggers that are not the auditor's, and when they fire.

    Event triggers of one event fire in the order of their names, and every
    ``ddl_command_start`` one fires before the command: a foreign one that fires
    before the auditor's can change the session (settings, application_name)
    before the audit function records it.  The audit function pins what its
    marker depends on, so this is a warning; a SECURITY DEFINER one whose code
    changes settings is the shape the red team used to mute markers.
    """
    ours = event_trigger_names(schema)
    out: list[str] = []
    for t in state.get("event_triggers") or []:
        if t["name"] in ours.values() or t["function_schema"] == schema:
            continue
        what = (
            f"foreign event trigger {t['name']} on {t['event']} runs "
            f"{t['function_schema']}.{t['function']}()"
        )
        mine = ours.get(t["event"])
        if t["event"] == "ddl_command_start":
            when = "it fires before every auditor trigger"
        elif mine is not None and t["name"] < mine:
            when = f"it fires before {mine} (event triggers fire in name order)"
        elif mine is not None:
            when = f"it fires after {mine}"
        else:
            when = "on an event the auditor does not watch"
        source = t.get("function_source") or ""
        # A SET clause of the function itself ends with it; a SET inside its code does not.
        changes = bool(_SETS_SOMETHING.search(source))
        if t.get("security_definer") and changes and "before" in when:
            out.append(
                f"{what} as SECURITY DEFINER and changes settings; {when}, so it can change "
                "the session the audit function records (the marker settings are pinned)"
            )
        else:
            out.append(f"{what}; {when}")
    return out


def _ownership_problems(state: Mapping[str, Any], schema: str) -> list[tuple[str, bool]]:
    """Objects of the install owned by a non-superuser (weakens), or by different roles."""
    out: list[tuple[str, bool]] = []
    owner = state.get("schema_owner") or {}
    if owner and not owner.get("superuser"):
        out.append(
            (
                f"schema {schema} is owned by {owner.get('name')}, not a superuser: that role "
                "can drop or replace everything in it",
                True,
            )
        )
    owners: set[str] = {str(owner["name"])} if owner.get("name") else set()
    for rel in state.get("relations") or []:
        if rel.get("owner"):
            owners.add(str(rel["owner"]))
        if rel.get("owner_superuser") is False:
            out.append(
                (
                    f"{schema}.{rel['name']} is owned by {rel.get('owner')}, not a superuser: "
                    "that role can lift its protections",
                    True,
                )
            )
    for f in state.get("functions") or []:
        if f.get("owner"):
            owners.add(str(f["owner"]))
    if len(owners) > 1:
        out.append(
            (
                f"the objects of schema {schema} have different owners "
                f"({', '.join(sorted(owners))}): ownership was changed (or another superuser "
                "reinstalled)",
                False,
            )
        )
    return out


def install_owner(state: Mapping[str, Any], schema: str) -> str | None:
    """The one superuser that owns the schema, its relations and functions and the
    auditor's event triggers; None when they have several owners or it is no superuser.

    >>> install_owner({"schema_owner": {"name": "postgres", "superuser": True},
    ...     "relations": [{"owner": "postgres", "owner_superuser": True}]}, "auditor")
    'postgres'
    >>> install_owner({"schema_owner": {"name": "postgres", "superuser": True},
    ...     "relations": [{"owner": "app", "owner_superuser": False}]}, "auditor") is None
    True
    """
    schema_owner = state.get("schema_owner") or {}
    owners = {schema_owner.get("name")}
    supers = [bool(schema_owner.get("superuser"))]
    for rel in state.get("relations") or []:
        owners.add(rel.get("owner"))
        supers.append(rel.get("owner_superuser") is True)
    for f in state.get("functions") or []:
        owners.add(f.get("owner"))
        supers.append(f.get("owner_superuser") is True)
    names = set(event_trigger_names(schema).values())
    for t in state.get("event_triggers") or []:
        if t.get("name") in names:
            owners.add(t.get("owner"))  # PostgreSQL allows superusers only
    if len(owners) != 1 or not all(supers):
        return None
    (owner,) = owners
    return str(owner) if owner else None


def _owner_breaks(
    schema: str, fname: str, owner: str, refused: Sequence[str], lacks: Sequence[str] = ()
) -> str:
    """What a SECURITY DEFINER function whose owner cannot run it breaks, and the repair.

    ``refused``: settings of its SET clauses the owner may not set (PostgreSQL applies
    them as the owner, before the body runs); ``lacks``: rights its body needs.

    >>> print(_owner_breaks("auditor", "record_event", "mallory", ["log_min_error_statement"]))
    ... # doctest: +NORMALIZE_WHITESPACE
    PostgreSQL applies its SET clauses as its owner at every call, and mallory may not
    set log_min_error_statement: every firing of the audit triggers fails, so every DDL
    in this database is refused (ERROR: permission denied to set parameter
    "log_min_error_statement"); a superuser repairs it with auditor install (or ALTER
    FUNCTION auditor.record_event() OWNER TO a superuser)
    >>> print(_owner_breaks("auditor", "record_event", "bob", [], ["USAGE on schema auditor"]))
    ... # doctest: +NORMALIZE_WHITESPACE
    it runs with its owner's rights, and bob lacks USAGE on schema auditor: every firing
    of the audit triggers fails, so every DDL in this database is refused (ERROR:
    permission denied for schema auditor); a superuser repairs it with auditor install
    (or ALTER FUNCTION auditor.record_event() OWNER TO a superuser)
    """
    what = {
        "record_event": "every firing of the audit triggers fails, so every DDL in this "
        "database is refused",
        "catalog_snapshot": "no catalog snapshot can be taken",
    }.get(fname, "every call fails")
    if refused:
        why = (
            f"PostgreSQL applies its SET clauses as its owner at every call, and {owner} may "
            f"not set {', '.join(refused)}"
        )
        error = f'permission denied to set parameter "{refused[0]}"'
    else:
        why = f"it runs with its owner's rights, and {owner} lacks {', '.join(lacks)}"
        if lacks[0].startswith("EXECUTE"):
            error = "permission denied for function after_event"
        elif " on " in lacks[0]:
            kind, _, obj = lacks[0].split(" on ", 1)[1].partition(" ")
            error = f"permission denied for {kind} {obj.rsplit('.', 1)[-1]}"
        else:
            error = 'null value in column "session_id"'
    return (
        f"{why}: {what} (ERROR: {error}); a superuser repairs it with auditor install (or "
        f"ALTER FUNCTION {schema}.{fname}() OWNER TO a superuser)"
    )


def _assess_database(
    name: str, schema: str, state: Mapping[str, Any], info: Mapping[str, Any]
) -> DatabaseStatus:
    problems: list[Problem] = []

    def bad(message: str, weakens: bool = True) -> None:
        problems.append(Problem("trigger", message, weakens, name))

    names = event_trigger_names(schema)
    all_triggers = {t["name"]: t for t in state.get("event_triggers") or []}
    states = tuple(
        EventTriggerState(t["name"], t["event"], t["enabled"])
        for n in names.values()
        if (t := all_triggers.get(n)) is not None
    )
    if not state.get("schema_exists"):
        bad(f"auditor is not installed (no schema {schema!r}): DDL here is seen by the log only")
        for orphan in states:
            bad(f"event trigger {orphan.name} exists without its schema", weakens=False)
        return DatabaseStatus(name, False, event_triggers=states, problems=tuple(problems))
    if _foreign_schema(state):
        bad(f"schema {schema!r} exists but was not created by auditor")
        return DatabaseStatus(name, False, problems=tuple(problems))

    # Event triggers: present, on the right event and function, ENABLE ALWAYS, no tag filter.
    n_before = len(problems)
    for event, tname in names.items():
        t = all_triggers.get(tname)
        if t is None:
            bad(f"event trigger {tname} ({event}) is missing")
        elif (
            t["event"] != event or t["function_schema"] != schema or t["function"] != "record_event"
        ):
            bad(
                f"event trigger {tname} runs {t['function_schema']}.{t['function']}() on "
                f"{t['event']}, not {schema}.record_event() on {event}"
            )
        elif t["enabled"] == "D":
            bad(f"event trigger {tname} is disabled")
        elif t["enabled"] != "A":
            mode = {"O": "ENABLE", "R": "ENABLE REPLICA"}.get(t["enabled"], t["enabled"])
            bad(
                f"event trigger {tname} is {mode}, not ENABLE ALWAYS "
                "(session_replication_role can silence it)"
            )
        elif t.get("tags"):
            bad(f"event trigger {tname} only fires for tags {', '.join(t['tags'])}")
    for stray in _stray_event_triggers(state, schema):
        bad(f"event trigger {stray} also runs the audit function (duplicate rows)", weakens=False)
    triggers_ok = len(problems) == n_before
    for message in _foreign_event_triggers(state, schema):
        bad(message, weakens=False)

    # Functions: the bodies install wrote, definer rights, fixed search_path, no PUBLIC.
    n_before = len(problems)
    install_row = info.get("install") or {}
    version = install_row.get("package_version")
    schema_version = install_row.get("schema_version")
    mail_mode = (info.get("settings") or {}).get("mail_mode")
    current = version == __version__ and schema_version == SCHEMA_VERSION
    if current:
        expected = expected_functions(schema, mail_mode)
    else:
        expected = dict(install_row.get("functions") or {})
        if install_row:
            bad(
                f"installed version {version} differs from this auditor's {__version__}; "
                "run auditor install to upgrade",
                weakens=False,
            )
    live: dict[str, list[dict[str, Any]]] = {}
    for f in state.get("functions") or []:
        live.setdefault(f["name"], []).append(f)
    for fname, md5 in sorted(expected.items()):
        found = live.get(fname)
        if not found:
            bad(f"function {schema}.{fname}() is missing")
            continue
        if len(found) > 1:
            bad(f"function {schema}.{fname} has {len(found)} overloads; install wrote one")
        if all(f["md5"] != md5 for f in found):
            bad(f"function {schema}.{fname}() was changed since install (body differs)")
        configs = expected_configs(schema, mail_mode) if current else {}
        for f in found:
            config = list(f.get("config") or [])
            if fname in DEFINER_FUNCTIONS:
                if not f["security_definer"]:
                    bad(f"function {schema}.{fname}() is no longer SECURITY DEFINER")
                if FIXED_SEARCH_PATH not in config:
                    bad(f"function {schema}.{fname}() lost its fixed search_path")
            if fname == "record_event":
                unpinned = [p for p in MARKER_PINS if p not in config]
                if unpinned:
                    bad(
                        f"function {schema}.{fname}() does not pin {', '.join(unpinned)}: a "
                        "session can mute or reshape its markers"
                        + ("" if current else " (an older version: run auditor install)")
                    )
            if fname in configs and sorted(config) != sorted(configs[fname]):
                extra = sorted(set(config) - set(configs[fname]))
                gone = sorted(set(configs[fname]) - set(config))
                bad(
                    f"function {schema}.{fname}() runs with other settings than install gave it"
                    + (f" (added: {'; '.join(extra)})" if extra else "")
                    + (f" (removed: {'; '.join(gone)})" if gone else "")
                )
            if not f["owner_superuser"]:
                who = f"is owned by {f['owner']}, not a superuser"
                refused = list(f.get("owner_cannot_set") or [])
                lacks = list(f.get("owner_lacks") or [])
                if refused or lacks:
                    problems.append(
                        Problem(
                            "trigger",
                            f"function {schema}.{fname}() {who}: BROKEN, "
                            + _owner_breaks(schema, fname, str(f["owner"]), refused, lacks),
                            True,
                            name,
                            breaks=True,
                        )
                    )
                else:
                    runs = (
                        "the audit runs with that role's rights"
                        if fname in DEFINER_FUNCTIONS
                        else "that role can replace what the audit trigger runs"
                    )
                    bad(f"function {schema}.{fname}() {who}: {runs}")
            if f["public_execute"]:
                bad(f"PUBLIC may execute {schema}.{fname}()")
    for fname in sorted(set(live) - set(expected)):
        bad(f"unexpected function {schema}.{fname}() in the audit schema", weakens=False)
    functions_ok = len(problems) == n_before

    # Protections: append-only triggers (ALWAYS, statement level, no WHEN), privileges.
    n_before = len(problems)
    relations = {r["name"]: r for r in state.get("relations") or []}
    for table in ("events", "installs", "settings", "catalog_snapshots", *outbox.MAIL_TABLES):
        if table not in relations:
            bad(f"table {schema}.{table} is missing")
    if state.get("schema_public_privileges"):
        bad(f"PUBLIC has {', '.join(state['schema_public_privileges'])} on schema {schema}")
    for rel in relations.values():
        if rel.get("public_privileges"):
            bad(f"PUBLIC has {', '.join(rel['public_privileges'])} on {schema}.{rel['name']}")
    problems.extend(
        Problem("trigger", message, weakens, name)
        for message, weakens in _ownership_problems(state, schema)
    )
    by_table: dict[str, list[dict[str, Any]]] = {}
    for t in state.get("table_triggers") or []:
        by_table.setdefault(t["table"], []).append(t)
    for table in PROTECTED_TABLES:
        rel = relations.get(table)
        if rel is None:
            continue
        granted = set(rel.get("owner_privileges") or []) & {"UPDATE", "DELETE", "TRUNCATE"}
        if granted:
            bad(f"the owner of {schema}.{table} holds {', '.join(sorted(granted))} again")
        if rel.get("row_security"):
            bad(
                f"row level security is enabled on {schema}.{table} (it can hide rows from readers)"
            )
        if rel.get("persistence") == "u":
            bad(
                f"{schema}.{table} is UNLOGGED: crash recovery empties it and standbys never "
                "see its rows"
            )
        if rel.get("has_triggers") is False:
            bad(
                f"pg_class.relhastriggers is false for {schema}.{table}: no trigger of it runs "
                "(a catalog update), so its protections are off"
            )
        for grant in sorted(rel.get("grants") or []):
            grantee, _, privilege = str(grant).rpartition(":")
            if privilege in _WRITE_PRIVILEGES and grantee != "PUBLIC":
                bad(f"{grantee} holds {privilege} on {schema}.{table}")
        tname = f"{table}_append_only"
        trig = next((t for t in by_table.get(table, []) if t["name"] == tname), None)
        if trig is None:
            bad(f"append-only trigger {tname} on {schema}.{table} is missing")
        elif trig["enabled"] == "D":
            bad(f"append-only trigger {tname} on {schema}.{table} is disabled")
        elif trig["enabled"] != "A":
            bad(f"append-only trigger {tname} on {schema}.{table} is not ENABLE ALWAYS")
        elif (
            trig["type"] & (_TRIGGER_TYPE_BEFORE_UPDATE_DELETE_TRUNCATE | _TRIGGER_TYPE_ROW)
            != _TRIGGER_TYPE_BEFORE_UPDATE_DELETE_TRUNCATE
            or trig["has_when"]
            or trig["function_schema"] != schema
            or trig["function"] != "refuse_change"
        ):
            bad(f"append-only trigger {tname} on {schema}.{table} was redefined")
    mail_trigger = next(
        (t for t in by_table.get("events", []) if t["name"] == outbox.MAIL_TRIGGER), None
    )
    if mail_mode == "plpython":
        where = f"{outbox.MAIL_TRIGGER} on {schema}.events"
        if mail_trigger is None:
            bad(f"mail trigger {where} is missing: DDL is not mailed")
        elif mail_trigger["enabled"] == "D":
            bad(f"mail trigger {where} is disabled: DDL is not mailed")
        elif mail_trigger["enabled"] != "A":
            bad(f"mail trigger {where} is not ENABLE ALWAYS")
        elif (
            not mail_trigger.get("deferred")
            or mail_trigger["function_schema"] != schema
            or mail_trigger["function"] != "mail_on_commit"
        ):
            bad(f"mail trigger {where} was redefined")
    for table, trigs in sorted(by_table.items()):
        for t in trigs:
            if t.get("internal"):
                # Foreign-key triggers of the mail tables; a disabled one is a catalog edit.
                if t["enabled"] == "D":
                    bad(f"internal trigger {t['name']} on {schema}.{table} is disabled", False)
                continue
            if t["name"] == f"{table}_append_only":
                continue
            if t is mail_trigger and mail_mode == "plpython":
                continue
            bad(f"unexpected trigger {t['name']} on {schema}.{table}")
    settings = info.get("settings")
    if relations.get("settings") is not None and not settings:
        bad(
            f"the settings row of {schema}.settings is missing: every DDL is refused until "
            "auditor install restores it",
            weakens=False,
        )
    protections_ok = len(problems) == n_before
    copied_from = info.get("first_event_database")
    if copied_from is not None and copied_from != name:
        bad(
            f"the audit table's first row names database {copied_from!r}: the rows up to "
            f"this database's own were copied in (with its template, or by a restore of a "
            f"dump of {copied_from}) and are {copied_from}'s evidence, with the install "
            "history that came with them; reconcile judges them as copies",
            weakens=False,
        )
    else:
        copied_from = None
    mail_status = info.get("mail")
    if isinstance(mail_status, outbox.MailStatus):
        for message, weakens in outbox.mail_problems(mail_status, mail_mode, datetime.now(tz=UTC)):
            problems.append(Problem("mail", message, weakens, name))
    return DatabaseStatus(
        name,
        True,
        version=version,
        schema_version=schema_version,
        mail_mode=(settings or {}).get("mail_mode"),
        audit_rows=info.get("events"),
        installs=info.get("installs"),
        event_triggers=states,
        triggers_ok=triggers_ok,
        protections_ok=protections_ok,
        functions_ok=functions_ok,
        problems=tuple(problems),
        mail=mail_status if isinstance(mail_status, outbox.MailStatus) else None,
        owner=install_owner(state, schema),
        reader_role=install_row.get("reader_role"),
        notify_role=install_row.get("notify_role"),
        copied_from=copied_from,
    )


def database_status(conn: psycopg.Connection[Any], schema: str = "auditor") -> DatabaseStatus:
    """The trigger channel in the connected database (status and reconcile's CONFIG_DRIFT)."""
    check_schema_name(schema)
    state = _state(conn, schema)
    info = _install_info(conn, schema, state) if _ours(state) else {}
    if info:
        info["mail"] = outbox.read_mail_status(conn, schema)
    status = _assess_database(_session(conn).database, schema, state, info)
    if status.installed:
        from auditor.catalog import snapshot_status

        status = replace(status, catalog=snapshot_status(conn, schema))
    return status


def status(
    dsn: str,
    *,
    databases: Sequence[str] = (),
    all_databases: bool = False,
    schema: str = "auditor",
    role: str | None = None,
    application_name: str = "auditor status",
) -> StatusReport:
    """Check both channels: server settings, and the install in each database.

    Without ``databases`` every database that accepts connections is checked, and
    one without the auditor counts as weakened (its DDL reaches the log only).
    With ``role`` every check runs after ``SET ROLE`` (reconcile's ``--reader-role``).
    """
    check_schema_name(schema)
    server = describe_dsn(dsn)
    with connect(dsn, application_name=application_name) as main:
        set_role(main, role, session_database(main))
        session = _session(main)
        if not databases:
            all_databases = True
        targets = _targets(main, session, databases, all_databases)
        settings = server_settings(main)
        roles = _role_settings(main)
        grants = parameter_grants(main, session.server_version_num)
    problems = tuple(assess_settings(settings, roles)) + tuple(grants)
    results: list[DatabaseStatus] = []
    for name in targets:
        try:
            with connect(dsn, dbname=name, application_name=application_name) as conn:
                set_role(conn, role, name)
                results.append(database_status(conn, schema))
        except AuditorError as exc:
            results.append(DatabaseStatus(name, False, error=str(exc)))
        except psycopg.Error as exc:
            results.append(DatabaseStatus(name, False, error=_pg_error(exc)))
    return StatusReport(
        server,
        session.server_version_num,
        schema,
        dict(settings),
        problems,
        tuple(results),
        tuple(roles),
    )


# -- rendering --------------------------------------------------------------------

_ENABLED = {"A": "ENABLE ALWAYS", "O": "ENABLE", "R": "ENABLE REPLICA", "D": "DISABLED"}
STATUS_SETTINGS = (
    "log_statement",
    "log_destination",
    "log_line_prefix",
    "logging_collector",
    "log_min_messages",
    "event_triggers",
)


def format_status(report: StatusReport) -> str:
    """``auditor status`` as text: settings, then each database, then the verdict."""
    lines = [
        f"server {report.server} (server_version_num {report.server_version_num}), "
        f"schema {report.schema}",
        "log channel settings:",
    ]
    for name in STATUS_SETTINGS:
        if name in report.settings:
            lines.append(f"  {name} = {report.settings[name]!r}")
        elif name == "event_triggers":
            lines.append("  event_triggers: (no such setting before PostgreSQL 17)")
    lines.extend(f"  ! {p.message}" for p in report.problems if p.weakens)
    lines.extend(f"  warning: {p.message}" for p in report.problems if not p.weakens)
    for db in report.databases:
        if db.error:
            lines.append(f"database {db.name}: cannot check: {db.error}")
            continue
        if db.installed:
            lines.append(
                f"database {db.name}: auditor {db.version} (schema version {db.schema_version}), "
                f"{db.audit_rows} audit rows, mail mode {db.mail_mode}"
            )
            trigs = ", ".join(
                f"{t.name} {_ENABLED.get(t.enabled, t.enabled)}" for t in db.event_triggers
            )
            lines.append(f"  event triggers: {trigs or 'none'}")
            lines.append(
                "  triggers {}, functions {}, protections {}".format(
                    *(
                        "intact" if ok else "BROKEN" if broken else "WEAKENED"
                        for ok, broken in (
                            (db.triggers_ok, False),
                            (db.functions_ok, db.broken),
                            (db.protections_ok, False),
                        )
                    )
                )
            )
            lines.append(_catalog_line(db.catalog))
            if db.mail is not None and db.mail_mode != "none":
                m = db.mail
                lines.append(
                    f"  mail: {m.delivered} delivered, {m.pending} pending, {m.failing} failing, "
                    f"{m.unclaimed} audit row(s) not yet picked up by auditor notify"
                )
                for f in m.failing_mails:
                    lines.append(
                        f"    failing {f.message_id} ({', '.join(f.command_tags)}), "
                        f"{f.attempts} attempts: {f.last_error}"
                    )
        else:
            lines.append(f"database {db.name}: not installed")
        lines.extend(f"  ! {p.message}" for p in db.problems if p.weakens)
        lines.extend(f"  warning: {p.message}" for p in db.problems if not p.weakens)
    broken = [d.name for d in report.databases if d.broken]
    if report.errors:
        verdict = "UNKNOWN: some databases could not be checked"
    elif broken:
        verdict = (
            f"BROKEN: the trigger channel refuses every DDL in {', '.join(broken)} "
            "(see the problems marked BROKEN)"
        )
    elif report.weakened:
        count = sum(p.weakens for p in report.problems) + sum(
            p.weakens for d in report.databases for p in d.problems
        )
        verdict = f"WEAKENED: {count} problem(s) weaken a channel"
    else:
        verdict = "OK: both channels intact"
    lines.append(verdict)
    return "\n".join(lines)


def _catalog_line(snap: SnapshotStatus | None) -> str:
    """The catalog channel's line of ``auditor status``: the latest snapshot and its age."""
    from auditor.catalog import format_age

    if snap is None:
        return "  catalog snapshots: none (installed by an older auditor: run auditor install)"
    if not snap.snapshots or snap.latest_at is None:
        return "  catalog snapshots: none yet"
    age = format_age(datetime.now(tz=UTC) - snap.latest_at)
    return (
        f"  catalog snapshots: {snap.snapshots}, latest #{snap.latest_id} ({snap.latest_reason}) "
        f"at {snap.latest_at.isoformat(timespec='seconds')}, {age} ago"
    )


def format_install(report: InstallReport) -> str:
    """One line per database for ``auditor install`` (``--dry-run`` prints the script)."""
    if report.dry_run:
        return report.script()
    lines = [
        f"created role {role} (NOLOGIN; grant it to a login role)" for role in report.created_roles
    ]
    for db in report.databases:
        was = (
            f" (was {db.previous_version})"
            if db.previous_version and db.action == "upgraded"
            else ""
        )
        lines.append(
            f"{db.name}: {db.action} auditor {report.version} in schema {report.schema}{was}"
        )
        lines.extend(f"  {n}" for n in db.notices)
    return "\n".join(lines)


def format_uninstall(report: UninstallReport) -> str:
    lines: list[str] = []
    for db in report.databases:
        if report.dry_run:
            if db.removed:
                lines.append(f"-- database {db.name}")
                lines.append(r"\connect " + psql_quote(db.name))
                lines.extend(
                    ["BEGIN;", *(s.rstrip().rstrip(";") + ";" for s in db.statements), "COMMIT;"]
                )
            else:
                lines.append(f"-- database {db.name}: not installed")
        elif db.removed:
            lines.append(
                f"{db.name}: removed schema {report.schema} and its event triggers "
                f"({db.events_dropped} audit rows dropped with it)"
            )
        else:
            lines.append(f"{db.name}: not installed, nothing to remove")
    if report.dry_run:
        lines.extend(
            f"-- then, once no database grants it anything:\n{stmt};"
            for stmt in report.cluster_statements
        )
    else:
        lines.extend(f"dropped role {role}" for role in report.dropped_roles)
    return "\n".join(lines)


# -- reading the audit table ------------------------------------------------------


#: A JSON number with a fraction or an exponent (or text that looks like one).
_FLOAT_LIKE = re.compile(r"[0-9][.eE][-+0-9]")


def _parse_objects(objects_json: str) -> Any:
    """The ``objects`` jsonb text parsed as :func:`auditor.digest.parse_objects_json` does.

    With orjson (several times faster) unless the text may hold a number with a
    fraction or an exponent, which ``parse_objects_json`` keeps as a Decimal.

    >>> _parse_objects('[{"objid": 1, "x": "a.b"}]'), _parse_objects('[{"x": 1.50}]')
    ([{'objid': 1, 'x': 'a.b'}], [{'x': Decimal('1.50')}])
    """
    if _FLOAT_LIKE.search(objects_json) is None:
        try:
            return orjson.loads(objects_json)
        except orjson.JSONDecodeError:
            pass
    return parse_objects_json(objects_json)


def _opt_int(v: Any) -> int | None:
    """An integer field of an object; anything else (an altered row can hold any JSON) is None.

    >>> _opt_int(5), _opt_int("12"), _opt_int("x"), _opt_int(True), _opt_int(float("inf"))
    (5, 12, None, None, None)
    """
    if type(v) is int:
        return v
    if v is None or isinstance(v, bool):
        return None
    try:
        return int(v)
    except (TypeError, ValueError, OverflowError):
        return None


def _opt_text(v: Any) -> str | None:
    """A text field of an object; another JSON value is kept as its JSON text.

    >>> _opt_text("public.t"), _opt_text(None), _opt_text(5), _opt_text(["a"])
    ('public.t', None, '5', '["a"]')
    """
    if v is None or type(v) is str:
        return v
    try:
        return orjson.dumps(v, default=str).decode()
    except TypeError:
        return str(v)


def _opt_bool(v: Any) -> bool | None:
    return v if type(v) is bool else None


def _texts(v: Any) -> tuple[str, ...]:
    """``address_names`` / ``address_args``: a list of texts, or () for anything else."""
    if not isinstance(v, list):
        return ()
    return tuple(t for t in (_opt_text(x) for x in v) if t is not None)


def _objects(objects_json: str) -> tuple[AuditObject, ...]:
    """The row's objects as the trigger writes them.

    Rows are evidence that an intruder may have rewritten (the digest then says
    so): any JSON at all must parse into something a report can show, never raise.

    >>> _objects('{"not": "a list"}'), _objects('[3, "x", null]')
    ((), ())
    >>> o, = _objects('[{"object_identity": 5, "classid": "x", "address_names": 7}]')
    >>> o.object_identity, o.classid, o.address_names
    ('5', None, ())
    """
    parsed = _parse_objects(objects_json)
    if not isinstance(parsed, list) or not parsed:
        return ()
    out: list[AuditObject] = []
    for o in parsed:
        if not isinstance(o, dict):
            continue
        get = o.get
        out.append(
            AuditObject(
                _opt_text(get("object_type")),
                _opt_text(get("schema_name")),
                _opt_text(get("object_identity")),
                _opt_bool(get("in_extension")),
                _opt_text(get("command_tag")),
                _opt_text(get("object_name")),
                _opt_bool(get("original")),
                _opt_bool(get("normal")),
                _opt_bool(get("is_temporary")),
                _texts(get("address_names")),
                _texts(get("address_args")),
                _opt_int(get("classid")),
                _opt_int(get("objid")),
                _opt_int(get("objsubid")),
                _opt_int(get("rewrite_reason")),
            )
        )
    return tuple(out)


class AuditObjects(Sequence[AuditObject]):
    """A row's objects, parsed from its ``objects`` jsonb text when first asked for.

    Reconcile reads a night's million rows but shows the objects of only the few
    that become findings (and ``auditor timeline`` of the steps it prints):
    parsing them all took a third of the reading time and most of the rows'
    memory.  It is a sequence of :class:`AuditObject` equal to the tuple
    :func:`_objects` parses, and :meth:`in_extension` answers without parsing.

    >>> objs = AuditObjects('[{"object_type": "table", "in_extension": false}]')
    >>> objs.in_extension(), len(objs), objs[0].object_type, objs == tuple(objs)
    (False, 1, 'table', True)
    >>> AuditObjects('[{"in_extension": true}, {"in_extension": null}]').in_extension()
    True
    """

    __slots__ = ("_parsed", "_text")

    def __init__(self, objects_json: str) -> None:
        self._text = objects_json
        self._parsed: tuple[AuditObject, ...] | None = None

    def _objects(self) -> tuple[AuditObject, ...]:
        parsed = self._parsed
        if parsed is None:
            parsed = self._parsed = _objects(self._text)
        return parsed

    def in_extension(self) -> bool:
        """``any(o.in_extension for o in self)``; without parsing when the text shows none.

        jsonb prints a key and its value as ``"key": value`` and escapes every
        ``"`` inside a string, so ``"in_extension": `` in the text is always that
        key; when each occurrence is followed by ``false`` or ``null``, no object
        can have a true value.
        """
        text = self._text
        if self._parsed is None:
            keys = text.count('"in_extension": ')
            if keys == 0 or keys == text.count('"in_extension": false') + text.count(
                '"in_extension": null'
            ):
                return False
        return any(o.in_extension is True for o in self._objects())

    @overload
    def __getitem__(self, index: int) -> AuditObject: ...
    @overload
    def __getitem__(self, index: slice) -> tuple[AuditObject, ...]: ...
    def __getitem__(self, index: int | slice) -> AuditObject | tuple[AuditObject, ...]:
        return self._objects()[index]

    def __len__(self) -> int:
        return len(self._objects())

    def __iter__(self) -> Iterator[AuditObject]:
        return iter(self._objects())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AuditObjects):
            return self._objects() == other._objects()
        if isinstance(other, tuple):
            return self._objects() == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._objects())

    def __repr__(self) -> str:
        return repr(self._objects())


#: Columns of ``capture_read_events.sql`` whose values repeat from row to row
#: (names, addresses, ports, pids, tags): one object each is kept, not one per row.
_SHARED_COLUMNS = (1, 2, 5, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17)
#: Columns that rows of one statement repeat (query, statement time, session, vxid,
#: xid, xmin): shared with the previous row when equal.
_RUN_COLUMNS = (4, 6, 18, 19, 20, 21)


class _Rows:
    """Builds AuditEvents from ``capture_read_events.sql`` tuples, sharing repeated strings.

    A night's million rows repeat a handful of user, database, address,
    application and tag values, and rows of one statement repeat its query,
    session id and vxid: keeping one object per value instead of one per row
    is most of the memory the rows take.
    """

    def __init__(self, schema: str, byte_lengths: bool = False) -> None:
        self.schema = schema
        self.byte_lengths = byte_lengths  # a SQL_ASCII database (auditor.digest)
        self._seen: dict[Any, Any] = {}
        self._last: list[Any] = [None] * 22

    def same(self, value: Any) -> Any:
        seen = self._seen
        got = seen.get(value)
        if got is None:
            if len(seen) > 100_000:
                seen.clear()
            seen[value] = value
            return value
        return got

    def event(self, r: Sequence[Any]) -> AuditEvent:
        row = list(r)
        same = self.same
        for i in _SHARED_COLUMNS:
            v = row[i]
            if v is not None:
                row[i] = same(v)
        last = self._last
        for i in _RUN_COLUMNS:
            v = row[i]
            if v is not None and v == last[i]:
                row[i] = last[i]
        self._last = row
        objects_json = row[3]
        (ident, event, tag, _, query, caller, st, ct, su, cu, lu, db, ca, cp, sa, sp, app, pid,
         sid, vxid, xid, xmin) = row  # fmt: skip
        digest = fields_digest(
            (ident, event, tag, query, caller, st, ct, su, cu, lu, db, ca, cp, sa, sp, app, pid,
             sid, vxid, xid),
            objects_json,
            byte_lengths=self.byte_lengths,
        )  # fmt: skip
        return AuditEvent(
            schema=self.schema,
            id=int(ident),
            event=event,
            command_tag=tag,
            objects=AuditObjects(objects_json),
            query=query,
            statement_time=st,
            clock_time=ct,
            session_user=su,
            current_user=cu,
            login_user=lu,
            database=db,
            client_addr=ca,
            client_port=cp,
            server_addr=sa,
            server_port=sp,
            application_name=app,
            backend_pid=int(pid),
            session_id=sid,
            vxid=vxid,
            xid=int(xid),
            row_xmin=int(xmin),
            digest=digest,
            objects_json=objects_json,
            caller_context=caller,
        )


def _event(schema: str, r: Mapping[str, Any]) -> AuditEvent:
    """One AuditEvent from a ``capture_read_events.sql`` row given as a mapping."""
    return _Rows(schema).event([r[c] for c in _READ_COLUMNS])


#: The columns of ``capture_read_events.sql`` (and of the bulk reader's COPY).
_READ_COLUMNS = capture_bulk.COLUMNS


def read_audit_events(
    conn: psycopg.Connection[Any],
    schema: str = "auditor",
    *,
    since: datetime | None = None,
    until: datetime | None = None,
    after_id: int | None = None,
    batch_size: int = 2000,
    worker: tuple[str, str | None] | None = None,
) -> Iterator[AuditEvent]:
    """The audit rows in id order, each with its xmin and a digest recomputed in Python.

    ``since``/``until`` bound ``statement_time`` (``since <= t < until``);
    ``after_id`` skips ids up to and including it.  All batches come from one
    REPEATABLE READ snapshot when ``conn`` is in autocommit mode (otherwise from the
    caller's transaction).  Ids are assigned at insert but become visible at
    commit, so a row with a lower id can appear after a higher one was read: an
    ``after_id`` watermark is only safe below the oldest transaction still running.

    The rows come in bulk (COPY into columns, :mod:`auditor.capture_bulk`) where
    pyarrow is installed, else one fetched tuple at a time; the AuditEvents are the
    same.  ``worker`` (a DSN of the same database and the role to SET): the COPY,
    parsing and digests run in a worker process reading in this snapshot.
    """
    check_schema_name(schema)
    query = render("capture_read_events.sql", schema)
    params: dict[str, Any] = {
        "after_id": after_id if after_id is not None else 0,
        "since": since,
        "until": until,
        "batch": batch_size,
    }

    def batches() -> Iterator[AuditEvent]:
        builder = _Rows(schema, byte_lengths=is_sql_ascii(conn))
        build = builder.event
        if capture_bulk.usable(conn):
            copy = render("capture_copy_events.sql", schema)
            bulk = True
            if worker is not None and not conn.autocommit:
                pass  # the caller's own transaction: no snapshot of ours to hand over
            elif worker is not None:
                ended = yield from capture_bulk.read_in_worker(
                    conn, copy, params, schema, shared=builder.same, dsn=worker[0], role=worker[1]
                )
                if ended is None:
                    return
                bulk = ended[0] == "copy"
                params["after_id"] = ended[1]
            if bulk:
                after = yield from capture_bulk.read_events(
                    conn, copy, params, schema, shared=builder.same
                )
                if after is None:
                    return
                params["after_id"] = after  # a batch the columns cannot read exactly
        with conn.cursor() as cur:
            cur.execute(query, params)
            names = tuple(d.name for d in cur.description or ())
            if names != _READ_COLUMNS:
                raise AuditorError(f"capture_read_events.sql returns {names}, not {_READ_COLUMNS}")
            while True:
                rows = cur.fetchall()
                for r in rows:
                    yield build(r)
                if len(rows) < batch_size:
                    return
                params["after_id"] = int(rows[-1][0])
                cur.execute(query, params)

    if conn.autocommit:
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
            yield from batches()
    else:
        yield from batches()


def read_auditor_objects(conn: psycopg.Connection[Any], schema: str = "auditor") -> AuditorObjects:
    """The auditor's own objects in the connected database (``capture_objects.sql``)."""
    check_schema_name(schema)
    row = conn.execute(sql_text("capture_objects.sql"), {"schema": schema}).fetchone()
    return AuditorObjects.from_json(schema, dict(row[0]) if row and row[0] else None)


def id_gaps(
    conn: psycopg.Connection[Any], schema: str, low: int, high: int
) -> list[tuple[int, int]]:
    """Runs ``(first, last)`` of ids in ``[low, high]`` that no row holds (capture_id_gaps.sql)."""
    if high <= low + 1:
        return []
    rows = conn.execute(
        render("capture_id_gaps.sql", schema), {"low": int(low), "high": int(high)}
    ).fetchall()
    return [(int(a), int(b)) for a, b in rows]


#: Audit ids per hash of the vouched chain (``capture_vouch.sql``): a changed row is
#: located to within this many ids; the state file keeps one hash per block.
VOUCH_BLOCK = 1000


@dataclass(frozen=True)
class Vouched:
    """What a run vouched for in one database: rows up to ``through`` seen by ``snapshot``.

    ``blocks`` maps ``id // block`` to (rows, SHA-256 hex of the rows' ids, xmins
    and contents); the next run recomputes them for the same rows.
    """

    through: int
    snapshot: str
    blocks: dict[int, tuple[int, str]]
    block: int = VOUCH_BLOCK

    def to_json(self) -> dict[str, Any]:
        return {
            "through": self.through,
            "snapshot": self.snapshot,
            "block": self.block,
            "blocks": {str(b): f"{n}:{h}" for b, (n, h) in sorted(self.blocks.items())},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Vouched:
        blocks = {}
        for b, v in (data.get("blocks") or {}).items():
            n, _, h = str(v).partition(":")
            blocks[int(b)] = (int(n), h)
        return cls(
            int(data["through"]), str(data["snapshot"]), blocks, int(data.get("block", VOUCH_BLOCK))
        )


@dataclass(frozen=True)
class VouchBreach:
    """A block of audit ids whose rows changed after a run vouched for them."""

    first_id: int
    last_id: int
    rows_then: int
    rows_now: int


def vouch(
    conn: psycopg.Connection[Any], schema: str, previous: Vouched | None
) -> tuple[list[VouchBreach], Vouched]:
    """Verify what ``previous`` vouched for, and vouch for every row visible now.

    One REPEATABLE READ transaction: the hashes of the rows ``previous`` saw
    (compared block by block), and of all rows now, with the snapshot they come
    from.  Reads the whole table (``bench/README.md`` has the cost).
    """
    check_schema_name(schema)
    block = previous.block if previous is not None else VOUCH_BLOCK
    params = {
        "block": block,
        "through": previous.through if previous is not None else None,
        "snapshot": previous.snapshot if previous is not None else None,
    }
    with conn.transaction():
        conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        for setting, value in (("TimeZone", "UTC"), ("DateStyle", "ISO, YMD"),
                               ("IntervalStyle", "postgres")):  # fmt: skip
            conn.execute("SELECT pg_catalog.set_config(%s, %s, true)", (setting, value))
        row = conn.execute("SELECT pg_catalog.pg_current_snapshot()::text").fetchone()
        snapshot = str(row[0]) if row else ""
        rows = conn.execute(render("capture_vouch.sql", schema), params).fetchall()
        seen: dict[int, tuple[int, str]] = {}
        now: dict[int, tuple[int, str]] = {}
        through = 0
        mixed: list[int] = []
        for b, seen_rows, all_rows, all_hash, max_id in rows:
            now[int(b)] = (int(all_rows), str(all_hash)[:32])
            seen[int(b)] = (int(seen_rows), str(all_hash)[:32])
            through = max(through, int(max_id))
            if seen_rows != all_rows and previous is not None and int(b) in previous.blocks:
                mixed.append(int(b))
        if mixed:
            empty = hashlib.sha256(b"").hexdigest()[:32]
            for b in mixed:
                seen[b] = (seen[b][0], empty)
            query = render("capture_vouch_seen.sql", schema)
            for b, seen_hash in conn.execute(query, {**params, "blocks": mixed}).fetchall():
                seen[int(b)] = (seen[int(b)][0], str(seen_hash)[:32])
    breaches: list[VouchBreach] = []
    if previous is not None:
        for b, (n, h) in sorted(previous.blocks.items()):
            got = seen.get(b, (0, ""))
            if got != (n, h):
                breaches.append(VouchBreach(b * block, b * block + block - 1, n, got[0]))
    return breaches, Vouched(through, snapshot, now, block)


def xact_status(conn: psycopg.Connection[Any], xids: Iterable[int]) -> dict[int, str | None]:
    """``pg_xact_status`` of the 32-bit xids that markers carry (``capture_xact_status.sql``).

    'committed', 'aborted', 'in progress'; None when the server no longer knows
    (older than its commit log); 'future' for an xid the server has not assigned
    yet, which no real marker can carry.
    """
    wanted = sorted({int(x) for x in xids})
    if not wanted:
        return {}
    query = sql_text("capture_xact_status.sql")

    def ask(batch: list[int]) -> dict[int, str | None]:
        with conn.transaction():  # a savepoint when the caller is inside a transaction
            rows = conn.execute(query, {"xids": batch}).fetchall()
        return {int(r[0]): (str(r[1]) if r[1] is not None else None) for r in rows}

    try:
        return ask(wanted)
    except psycopg.errors.InvalidParameterValue:
        out: dict[int, str | None] = {}
        for xid in wanted:
            try:
                out.update(ask([xid]))
            except psycopg.errors.InvalidParameterValue:
                out[xid] = "future"
        return out


__all__ = [
    "EVENTS",
    "SCHEMA_VERSION",
    "DatabaseInstall",
    "DatabaseStatus",
    "DatabaseUninstall",
    "InstallReport",
    "Problem",
    "StatusReport",
    "UninstallReport",
    "assess_settings",
    "check_schema_name",
    "database_status",
    "event_trigger_names",
    "expected_functions",
    "format_install",
    "format_status",
    "format_uninstall",
    "id_gaps",
    "install",
    "notify_channel",
    "read_audit_events",
    "read_auditor_objects",
    "status",
    "uninstall",
    "vouch",
    "xact_status",
]
