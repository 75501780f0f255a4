"""Statement classification with PostgreSQL's own parser (pglast).

Which statements ``log_statement = 'ddl'`` logs and which ones fire event
triggers is decided by PostgreSQL's C code, not by keywords: a ``BEGIN;
CREATE ...`` string holds DDL, ``SELECT ... INTO`` creates a table, ``GRANT
... ON DATABASE`` is logged but never reaches an event trigger, ``EXPLAIN
ANALYZE CREATE TABLE AS`` creates a table behind the triggers' back.  This
module mirrors, per statement of a query string:

* ``CreateCommandTag()`` and ``GetCommandLogLevel()`` of
  ``src/backend/tcop/utility.c`` (the command tag and the log_statement level),
* the ``event_trigger_ok`` column of ``src/include/tcop/cmdtaglist.h`` and
  the object-type exclusions of ``EventTriggerSupportsObjectType()``
  (whether ``ddl_command_end`` fires), with the PG 16/17 changes,
* what the reconciler needs beyond that: event-trigger DDL and the trigger
  names it touches, settings that weaken a channel (``SET``, ``ALTER SYSTEM``,
  ``ALTER ROLE/DATABASE/FUNCTION ... SET``, ``set_config()``), superuser
  grants, and the object names a statement mentions (for ``timeline``).

See ``../shared/pg-facts.md`` sections 1 and 2 for the facts this follows.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from enum import IntEnum
from functools import lru_cache
from typing import Any

import orjson
from pglast.parser import ParseError, parse_sql_json

from auditor.encoding import parseable
from auditor.weakening import WATCHED_SETTINGS, pg_bool

# -- PostgreSQL tables ---------------------------------------------------------


class LogLevel(IntEnum):
    """``LogStmtLevel``: a statement is logged when its level <= log_statement."""

    DDL = 1
    MOD = 2
    ALL = 3


#: Tags with event_trigger_ok = false in cmdtaglist.h that still change the
#: schema or shared state (the rest of the false ones are DML, utility, etc.).
_TRIGGERLESS_DDL_TAGS = frozenset(
    {
        "ALTER DATABASE", "CREATE DATABASE", "DROP DATABASE",
        "ALTER ROLE", "CREATE ROLE", "DROP ROLE",
        "ALTER TABLESPACE", "CREATE TABLESPACE", "DROP TABLESPACE",
        "CREATE EVENT TRIGGER", "ALTER EVENT TRIGGER", "DROP EVENT TRIGGER",
        "ALTER SYSTEM", "GRANT ROLE", "REVOKE ROLE", "REASSIGN OWNED", "CLUSTER",
    }
)  # fmt: skip

#: Tags whose effect is cluster-wide, whatever database the session was in.
CLUSTER_WIDE_TAGS = frozenset(
    {
        "ALTER SYSTEM", "CREATE ROLE", "ALTER ROLE", "DROP ROLE", "GRANT ROLE", "REVOKE ROLE",
        "CREATE DATABASE", "ALTER DATABASE", "DROP DATABASE", "CREATE TABLESPACE",
        "ALTER TABLESPACE", "DROP TABLESPACE",
    }
)  # fmt: skip

#: Tags that are event_trigger_ok = false for every statement (all versions).
_NEVER_FIRE_TAGS = _TRIGGERLESS_DDL_TAGS | frozenset(
    {
        "ANALYZE", "BEGIN", "CALL", "CHECKPOINT", "CLOSE", "CLOSE CURSOR", "CLOSE CURSOR ALL",
        "COMMIT", "COMMIT PREPARED", "COPY", "COPY FROM", "DEALLOCATE", "DEALLOCATE ALL",
        "DECLARE CURSOR", "DELETE", "DISCARD", "DISCARD ALL", "DISCARD PLANS",
        "DISCARD SEQUENCES", "DISCARD TEMP", "DO", "EXECUTE", "EXPLAIN", "FETCH", "INSERT",
        "LISTEN", "LOAD", "LOCK TABLE", "MERGE", "MOVE", "NOTIFY", "PREPARE",
        "PREPARE TRANSACTION", "RELEASE", "RESET", "ROLLBACK", "ROLLBACK PREPARED",
        "SAVEPOINT", "SELECT", "SELECT FOR KEY SHARE", "SELECT FOR NO KEY UPDATE",
        "SELECT FOR SHARE", "SELECT FOR UPDATE", "SET", "SET CONSTRAINTS", "SHOW",
        "START TRANSACTION", "TRUNCATE TABLE", "UNLISTEN", "UPDATE", "VACUUM", "???",
    }
)  # fmt: skip

#: ``EventTriggerSupportsObjectType()`` returns false for these (GRANT, DROP,
#: RENAME, OWNER, SET SCHEMA, COMMENT, SECURITY LABEL on them skip triggers).
_SHARED_OBJECT_TYPES = frozenset(
    {
        "OBJECT_DATABASE",
        "OBJECT_TABLESPACE",
        "OBJECT_ROLE",
        "OBJECT_PARAMETER_ACL",
        "OBJECT_EVENT_TRIGGER",
    }
)


#: Predefined roles whose grant is as good as superuser (file and program access).
POWERFUL_ROLES = frozenset(
    {"pg_execute_server_program", "pg_write_server_files", "pg_read_server_files"}
)

_OBJECT_WORDS: dict[str, str] = {
    "OBJECT_ACCESS_METHOD": "ACCESS METHOD",
    "OBJECT_AGGREGATE": "AGGREGATE",
    "OBJECT_ATTRIBUTE": "TYPE",
    "OBJECT_CAST": "CAST",
    "OBJECT_COLUMN": "TABLE",
    "OBJECT_COLLATION": "COLLATION",
    "OBJECT_CONVERSION": "CONVERSION",
    "OBJECT_DATABASE": "DATABASE",
    "OBJECT_DOMAIN": "DOMAIN",
    "OBJECT_DOMCONSTRAINT": "DOMAIN",
    "OBJECT_EVENT_TRIGGER": "EVENT TRIGGER",
    "OBJECT_EXTENSION": "EXTENSION",
    "OBJECT_FDW": "FOREIGN DATA WRAPPER",
    "OBJECT_FOREIGN_SERVER": "SERVER",
    "OBJECT_FOREIGN_TABLE": "FOREIGN TABLE",
    "OBJECT_FUNCTION": "FUNCTION",
    "OBJECT_INDEX": "INDEX",
    "OBJECT_LANGUAGE": "LANGUAGE",
    "OBJECT_LARGEOBJECT": "LARGE OBJECT",
    "OBJECT_MATVIEW": "MATERIALIZED VIEW",
    "OBJECT_OPCLASS": "OPERATOR CLASS",
    "OBJECT_OPERATOR": "OPERATOR",
    "OBJECT_OPFAMILY": "OPERATOR FAMILY",
    "OBJECT_POLICY": "POLICY",
    "OBJECT_PROCEDURE": "PROCEDURE",
    "OBJECT_PUBLICATION": "PUBLICATION",
    "OBJECT_ROLE": "ROLE",
    "OBJECT_ROUTINE": "ROUTINE",
    "OBJECT_RULE": "RULE",
    "OBJECT_SCHEMA": "SCHEMA",
    "OBJECT_SEQUENCE": "SEQUENCE",
    "OBJECT_SUBSCRIPTION": "SUBSCRIPTION",
    "OBJECT_STATISTIC_EXT": "STATISTICS",
    "OBJECT_TABCONSTRAINT": "TABLE",
    "OBJECT_TABLE": "TABLE",
    "OBJECT_TABLESPACE": "TABLESPACE",
    "OBJECT_TRANSFORM": "TRANSFORM",
    "OBJECT_TRIGGER": "TRIGGER",
    "OBJECT_TSCONFIGURATION": "TEXT SEARCH CONFIGURATION",
    "OBJECT_TSDICTIONARY": "TEXT SEARCH DICTIONARY",
    "OBJECT_TSPARSER": "TEXT SEARCH PARSER",
    "OBJECT_TSTEMPLATE": "TEXT SEARCH TEMPLATE",
    "OBJECT_TYPE": "TYPE",
    "OBJECT_VIEW": "VIEW",
}

#: Node class -> (command tag, log level) for the statements whose tag and level
#: do not depend on their fields.
NODE_TAGS: dict[str, tuple[str, LogLevel]] = {
    "InsertStmt": ("INSERT", LogLevel.MOD),
    "DeleteStmt": ("DELETE", LogLevel.MOD),
    "UpdateStmt": ("UPDATE", LogLevel.MOD),
    "MergeStmt": ("MERGE", LogLevel.MOD),
    "PLAssignStmt": ("SELECT", LogLevel.ALL),
    "DeclareCursorStmt": ("DECLARE CURSOR", LogLevel.ALL),
    "CreateDomainStmt": ("CREATE DOMAIN", LogLevel.DDL),
    "CreateSchemaStmt": ("CREATE SCHEMA", LogLevel.DDL),
    "CreateStmt": ("CREATE TABLE", LogLevel.DDL),
    "CreateTableSpaceStmt": ("CREATE TABLESPACE", LogLevel.DDL),
    "DropTableSpaceStmt": ("DROP TABLESPACE", LogLevel.DDL),
    "AlterTableSpaceOptionsStmt": ("ALTER TABLESPACE", LogLevel.DDL),
    "CreateExtensionStmt": ("CREATE EXTENSION", LogLevel.DDL),
    "AlterExtensionStmt": ("ALTER EXTENSION", LogLevel.DDL),
    "AlterExtensionContentsStmt": ("ALTER EXTENSION", LogLevel.DDL),
    "CreateFdwStmt": ("CREATE FOREIGN DATA WRAPPER", LogLevel.DDL),
    "AlterFdwStmt": ("ALTER FOREIGN DATA WRAPPER", LogLevel.DDL),
    "CreateForeignServerStmt": ("CREATE SERVER", LogLevel.DDL),
    "AlterForeignServerStmt": ("ALTER SERVER", LogLevel.DDL),
    "CreateUserMappingStmt": ("CREATE USER MAPPING", LogLevel.DDL),
    "AlterUserMappingStmt": ("ALTER USER MAPPING", LogLevel.DDL),
    "DropUserMappingStmt": ("DROP USER MAPPING", LogLevel.DDL),
    "CreateForeignTableStmt": ("CREATE FOREIGN TABLE", LogLevel.DDL),
    "ImportForeignSchemaStmt": ("IMPORT FOREIGN SCHEMA", LogLevel.DDL),
    "TruncateStmt": ("TRUNCATE TABLE", LogLevel.MOD),
    "CommentStmt": ("COMMENT", LogLevel.DDL),
    "SecLabelStmt": ("SECURITY LABEL", LogLevel.DDL),
    "AlterDomainStmt": ("ALTER DOMAIN", LogLevel.DDL),
    "AlterDefaultPrivilegesStmt": ("ALTER DEFAULT PRIVILEGES", LogLevel.DDL),
    "CompositeTypeStmt": ("CREATE TYPE", LogLevel.DDL),
    "CreateEnumStmt": ("CREATE TYPE", LogLevel.DDL),
    "CreateRangeStmt": ("CREATE TYPE", LogLevel.DDL),
    "AlterEnumStmt": ("ALTER TYPE", LogLevel.DDL),
    "ViewStmt": ("CREATE VIEW", LogLevel.DDL),
    "IndexStmt": ("CREATE INDEX", LogLevel.DDL),
    "RuleStmt": ("CREATE RULE", LogLevel.DDL),
    "CreateSeqStmt": ("CREATE SEQUENCE", LogLevel.DDL),
    "AlterSeqStmt": ("ALTER SEQUENCE", LogLevel.DDL),
    "DoStmt": ("DO", LogLevel.ALL),
    "CreatedbStmt": ("CREATE DATABASE", LogLevel.DDL),
    "AlterDatabaseStmt": ("ALTER DATABASE", LogLevel.DDL),
    "AlterDatabaseRefreshCollStmt": ("ALTER DATABASE", LogLevel.DDL),
    "AlterDatabaseSetStmt": ("ALTER DATABASE", LogLevel.DDL),
    "DropdbStmt": ("DROP DATABASE", LogLevel.DDL),
    "NotifyStmt": ("NOTIFY", LogLevel.ALL),
    "ListenStmt": ("LISTEN", LogLevel.ALL),
    "UnlistenStmt": ("UNLISTEN", LogLevel.ALL),
    "LoadStmt": ("LOAD", LogLevel.ALL),
    "CallStmt": ("CALL", LogLevel.ALL),
    "ClusterStmt": ("CLUSTER", LogLevel.DDL),
    "RefreshMatViewStmt": ("REFRESH MATERIALIZED VIEW", LogLevel.DDL),
    "AlterSystemStmt": ("ALTER SYSTEM", LogLevel.DDL),
    "VariableShowStmt": ("SHOW", LogLevel.ALL),
    "CreateTransformStmt": ("CREATE TRANSFORM", LogLevel.DDL),
    "CreateTrigStmt": ("CREATE TRIGGER", LogLevel.DDL),
    "CreateEventTrigStmt": ("CREATE EVENT TRIGGER", LogLevel.DDL),
    "AlterEventTrigStmt": ("ALTER EVENT TRIGGER", LogLevel.DDL),
    "CreatePLangStmt": ("CREATE LANGUAGE", LogLevel.DDL),
    "CreateRoleStmt": ("CREATE ROLE", LogLevel.DDL),
    "AlterRoleStmt": ("ALTER ROLE", LogLevel.DDL),
    "AlterRoleSetStmt": ("ALTER ROLE", LogLevel.DDL),
    "DropRoleStmt": ("DROP ROLE", LogLevel.DDL),
    "DropOwnedStmt": ("DROP OWNED", LogLevel.DDL),
    "ReassignOwnedStmt": ("REASSIGN OWNED", LogLevel.DDL),
    "LockStmt": ("LOCK TABLE", LogLevel.ALL),
    "ConstraintsSetStmt": ("SET CONSTRAINTS", LogLevel.ALL),
    "CheckPointStmt": ("CHECKPOINT", LogLevel.ALL),
    "ReindexStmt": ("REINDEX", LogLevel.ALL),
    "CreateConversionStmt": ("CREATE CONVERSION", LogLevel.DDL),
    "CreateCastStmt": ("CREATE CAST", LogLevel.DDL),
    "CreateOpClassStmt": ("CREATE OPERATOR CLASS", LogLevel.DDL),
    "CreateOpFamilyStmt": ("CREATE OPERATOR FAMILY", LogLevel.DDL),
    "AlterOpFamilyStmt": ("ALTER OPERATOR FAMILY", LogLevel.DDL),
    "AlterOperatorStmt": ("ALTER OPERATOR", LogLevel.DDL),
    "AlterTypeStmt": ("ALTER TYPE", LogLevel.DDL),
    "AlterTSDictionaryStmt": ("ALTER TEXT SEARCH DICTIONARY", LogLevel.DDL),
    "AlterTSConfigurationStmt": ("ALTER TEXT SEARCH CONFIGURATION", LogLevel.DDL),
    "CreatePolicyStmt": ("CREATE POLICY", LogLevel.DDL),
    "AlterPolicyStmt": ("ALTER POLICY", LogLevel.DDL),
    "CreateAmStmt": ("CREATE ACCESS METHOD", LogLevel.DDL),
    "CreatePublicationStmt": ("CREATE PUBLICATION", LogLevel.DDL),
    "AlterPublicationStmt": ("ALTER PUBLICATION", LogLevel.DDL),
    "CreateSubscriptionStmt": ("CREATE SUBSCRIPTION", LogLevel.DDL),
    "AlterSubscriptionStmt": ("ALTER SUBSCRIPTION", LogLevel.DDL),
    "DropSubscriptionStmt": ("DROP SUBSCRIPTION", LogLevel.DDL),
    "AlterCollationStmt": ("ALTER COLLATION", LogLevel.DDL),
    "PrepareStmt": ("PREPARE", LogLevel.ALL),  # level looked through below
    "ExecuteStmt": ("EXECUTE", LogLevel.ALL),  # depends on the prepared statement
    "CreateStatsStmt": ("CREATE STATISTICS", LogLevel.DDL),
    "AlterStatsStmt": ("ALTER STATISTICS", LogLevel.DDL),
    "ExplainStmt": ("EXPLAIN", LogLevel.ALL),  # EXPLAIN ANALYZE looked through below
    "AlterObjectDependsStmt": ("", LogLevel.DDL),
    "AlterObjectSchemaStmt": ("", LogLevel.DDL),
    "AlterOwnerStmt": ("", LogLevel.DDL),
    "RenameStmt": ("", LogLevel.DDL),
    "AlterTableStmt": ("", LogLevel.DDL),
    "AlterTableMoveAllStmt": ("", LogLevel.DDL),
    "GrantStmt": ("", LogLevel.DDL),
    "GrantRoleStmt": ("", LogLevel.DDL),
    "DefineStmt": ("", LogLevel.DDL),
    "AlterFunctionStmt": ("", LogLevel.DDL),
    "CreateFunctionStmt": ("", LogLevel.DDL),
    "CreateTableAsStmt": ("", LogLevel.DDL),
    "DropStmt": ("", LogLevel.DDL),
    "SelectStmt": ("SELECT", LogLevel.ALL),
    "TransactionStmt": ("", LogLevel.ALL),
    "ClosePortalStmt": ("", LogLevel.ALL),
    "FetchStmt": ("", LogLevel.ALL),
    "CopyStmt": ("COPY", LogLevel.ALL),
    "VacuumStmt": ("", LogLevel.ALL),
    "VariableSetStmt": ("", LogLevel.ALL),
    "DiscardStmt": ("", LogLevel.ALL),
    "DeallocateStmt": ("", LogLevel.ALL),
}


# -- results -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SettingChange:
    """A change of a watched setting (``name`` ``ALL`` for RESET ALL).

    ``scope``: session, local (SET LOCAL, set_config(..., true)), role, role in
    database, all roles, database, function, system (ALTER SYSTEM) or server
    reload.  ``kind``: set (``value`` given), reset (RESET, SET ... TO DEFAULT;
    ``value`` None) or unknown (SET ... FROM CURRENT, a set_config() value that
    is not a constant).  :mod:`auditor.weakening` judges it.
    """

    name: str
    value: str | None
    scope: str
    kind: str = "set"


@dataclass(frozen=True, slots=True)
class EventTriggerChange:
    """``CREATE/ALTER/DROP EVENT TRIGGER``; ``action`` e.g. ``disable``, ``enable always``."""

    names: tuple[str, ...]
    action: str


@dataclass(frozen=True, slots=True)
class Rename:
    """An object that gets a new name: ``old`` and ``new`` as name parts (schema first
    when written; unquoted parts lower-cased).  ``schema`` is set for ``ALTER SCHEMA a
    RENAME TO b``, which renames every object in the schema."""

    old: tuple[str, ...]
    new: tuple[str, ...]
    schema: bool = False


@dataclass(frozen=True, slots=True)
class StatementClass:
    """One statement of a query string and what PostgreSQL does with it."""

    text: str
    location: int  # character offset of the statement in the query string
    node: str  # parse node name, e.g. "CreateStmt"
    command_tag: str
    log_level: LogLevel
    fires_ddl_command_end: bool
    may_fire_sql_drop: bool
    may_fire_table_rewrite: bool
    unauditable_reason: str | None  # set for DDL that event triggers never see
    event_trigger: EventTriggerChange | None = None
    settings: tuple[SettingChange, ...] = ()
    grants_superuser: bool = False
    #: Roles the statement makes someone a member of (``GRANT r TO x``, ``CREATE ROLE x
    #: IN ROLE r``, ``ALTER GROUP r ADD USER x``): membership in a superuser is its power.
    granted_roles: tuple[str, ...] = ()
    #: CREATE/ALTER ROLE: the options it sets (parse names: ``superuser``, ``password``,
    #: ``canlogin``, ...; ``rename`` for ALTER ROLE ... RENAME TO): what it can change.
    role_options: tuple[str, ...] = ()
    #: ``CREATE/DROP INDEX CONCURRENTLY``, ``REINDEX ... CONCURRENTLY``, ``ALTER TABLE ...
    #: DETACH PARTITION ... CONCURRENTLY``: the command commits and starts transactions
    #: itself, so its triggers fire under a later vxid than the one its log line shows.
    commits_internally: bool = False
    #: Set (to the parser's error) for a statement the parser cannot read that may be
    #: DDL or change a watched setting (it holds a pre-filter token): never matched.
    unparsed: str | None = None

    @property
    def objects(self) -> tuple[str, ...]:
        """Object names the statement mentions (unquoted ones lower-cased, as parsed).

        Computed on demand (a second parse of the statement's text): the matcher
        rarely needs it and a nightly run classifies up to millions of statements.
        """
        return statement_objects(self.text)

    @property
    def object_names(self) -> tuple[tuple[str, ...], ...]:
        """:attr:`objects` as name parts: ``public."a.b"`` is ``("public", "a.b")``."""
        return statement_object_names(self.text)

    @property
    def renames(self) -> tuple[Rename, ...]:
        """Objects this statement gives a new name (RENAME TO, SET SCHEMA), for ``timeline``."""
        return statement_renames(self.text)

    @property
    def is_ddl(self) -> bool:
        """Logged under ``log_statement = 'ddl'``."""
        return self.log_level == LogLevel.DDL

    @property
    def schema_change(self) -> bool:
        """DDL in the audit sense: DDL-level, or REINDEX (logged only under 'all'), or
        a statement that may be either but cannot be parsed."""
        return self.is_ddl or self.command_tag == "REINDEX" or self.unparsed is not None

    @property
    def runs_code(self) -> bool:
        """Statements whose own execution may run user functions (indirect DDL)."""
        return self.command_tag not in _NEVER_RUNS_CODE


_NEVER_RUNS_CODE = frozenset(
    {"BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE", "START TRANSACTION", "SET", "RESET",
     "SHOW", "LISTEN", "UNLISTEN", "NOTIFY", "CHECKPOINT", "DISCARD ALL", "DISCARD PLANS",
     "DISCARD SEQUENCES", "DISCARD TEMP", "DEALLOCATE", "DEALLOCATE ALL", "PREPARE"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class QueryClassification:
    """A whole query string (what one ``statement:`` line or ``current_query()`` holds)."""

    query: str
    statements: tuple[StatementClass, ...]
    parse_error: str | None = None

    @property
    def is_ddl(self) -> bool:
        """The string is logged under ``log_statement = 'ddl'``."""
        return any(s.is_ddl for s in self.statements)

    @property
    def schema_change(self) -> bool:
        return any(s.schema_change for s in self.statements)

    @property
    def settings(self) -> tuple[SettingChange, ...]:
        return tuple(c for s in self.statements for c in s.settings)

    @property
    def unparsed(self) -> tuple[StatementClass, ...]:
        """Statements the parser cannot read that may matter: never counted as matched."""
        return tuple(s for s in self.statements if s.unparsed is not None)

    @property
    def is_relevant(self) -> bool:
        """Worth keeping from a log: schema changes and changes of watched settings."""
        return self.schema_change or bool(self.settings)

    @property
    def firing_statements(self) -> tuple[StatementClass, ...]:
        """The statements that each fire ``ddl_command_end`` once, in order."""
        return tuple(s for s in self.statements if s.fires_ddl_command_end)

    @property
    def spans_transactions(self) -> bool:
        """Whether running the string can start a new transaction part-way through.

        A statement that commits internally, or a ``COMMIT``/``ROLLBACK`` (and their
        prepared forms) inside a multi-statement string: what follows runs under a
        new virtual transaction id, while the log printed the first one.

        >>> classify("CREATE TABLE a (); COMMIT; CREATE TABLE b ()").spans_transactions
        True
        >>> classify("CREATE INDEX CONCURRENTLY i ON t (a)").spans_transactions
        True
        >>> classify("BEGIN; CREATE TABLE a (); END").spans_transactions
        False
        """
        last = len(self.statements) - 1
        return any(
            s.commits_internally or (s.command_tag in _TRANSACTION_ENDS and i < last)
            for i, s in enumerate(self.statements)
        )


#: Transaction control after which the rest of a query string runs in a new transaction.
_TRANSACTION_ENDS = frozenset(
    {"COMMIT", "ROLLBACK", "COMMIT PREPARED", "ROLLBACK PREPARED", "PREPARE TRANSACTION"}
)


# -- the classifier --------------------------------------------------------------
#
# The parse tree is libpg_query's JSON form (``pglast.parser.parse_sql_json``,
# read with orjson): twenty times faster than building pglast's Python AST,
# which matters when a nightly run classifies a million statements.  In that
# form a node is ``{"NodeName": {...fields}}`` where the field's type is a
# generic Node, and the bare ``{...fields}`` where it has a fixed node type
# (``relation``, ``newowner``, ...); enums are their C names, false and zero
# fields are left out.

Tree = dict[str, Any]


def _unwrap(value: Any) -> tuple[str | None, Any]:
    """``{"Name": {...}}`` -> ("Name", {...}); anything else -> (None, value)."""
    if isinstance(value, dict) and len(value) == 1:
        ((key, body),) = value.items()
        if key[:1].isupper() and isinstance(body, dict):
            return key, body
    return None, value


def _objtype_word(objtype: Any) -> str:
    return _OBJECT_WORDS.get(str(objtype), "???")


def _alter_tag(objtype: Any) -> str:
    word = _objtype_word(objtype)
    return "???" if word == "???" else f"ALTER {word}"


def _names(value: Any) -> str:
    """Dotted name from String nodes, a List, a RangeVar, ObjectWithArgs or TypeName.

    >>> _names([{"String": {"sval": "s"}}, {"String": {"sval": "t"}}])
    's.t'
    """
    return ".".join(_parts(value))


def _parts(value: Any) -> tuple[str, ...]:
    """The name parts of what :func:`_names` joins (a part may itself hold a dot).

    >>> _parts([{"String": {"sval": "public"}}, {"String": {"sval": "a.b"}}])
    ('public', 'a.b')
    """
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    if isinstance(value, list):
        return tuple(p for v in value for p in _parts(v))
    name, body = _unwrap(value)
    if not isinstance(body, dict):
        return ()
    if name == "String":
        sval = str(body.get("sval", ""))
        return (sval,) if sval else ()
    if name == "List":
        return _parts(body.get("items"))
    if "relname" in body:
        parts = (body.get("catalogname"), body.get("schemaname"), body.get("relname"))
        return tuple(str(p) for p in parts if p)
    if "objname" in body:
        return _parts(body.get("objname"))
    if "names" in body:
        return _parts(body.get("names"))
    return ()


def _const_text(value: Any) -> str | None:
    """The text of an A_Const / String argument of SET, as PostgreSQL would store it."""
    name, body = _unwrap(value)
    if name == "String":
        return str(body.get("sval", ""))
    if name != "A_Const" or body.get("isnull"):
        return None
    for key in ("sval", "ival", "fval", "boolval", "bsval"):
        if key in body:
            inner = body[key] or {}
            if key == "boolval":
                return "on" if inner.get("boolval") else "off"
            if key == "ival":
                return str(inner.get("ival", 0))
            return str(inner.get(key, ""))
    return None


def _set_changes(stmt: Any, scope: str) -> tuple[SettingChange, ...]:
    """Watched settings changed by a VariableSetStmt (SET/RESET or in ALTER ... SET)."""
    name, body = _unwrap(stmt)
    if name not in (None, "VariableSetStmt") or not isinstance(body, dict):
        return ()
    kind = body.get("kind", "VAR_SET_VALUE")
    if scope == "session" and body.get("is_local"):
        scope = "local"
    if kind == "VAR_RESET_ALL":
        return (SettingChange("ALL", None, scope, "reset"),)
    setting = str(body.get("name") or "").lower()
    if setting not in WATCHED_SETTINGS:
        return ()
    if kind in ("VAR_RESET", "VAR_SET_DEFAULT"):
        return (SettingChange(setting, None, scope, "reset"),)
    values = [_const_text(a) for a in body.get("args") or ()]
    if kind != "VAR_SET_VALUE" or not values or None in values:
        return (SettingChange(setting, None, scope, "unknown"),)
    return (SettingChange(setting, ", ".join(v for v in values if v is not None), scope),)


def _walk(tree: Any) -> Iterator[tuple[str, Tree]]:
    """Every node below ``tree`` as (node name, fields), depth first; bare RangeVars
    and RoleSpecs (fields of fixed type) are named by their keys."""
    stack = [tree]
    while stack:
        current = stack.pop()
        if isinstance(current, list):
            stack.extend(reversed(current))
            continue
        if not isinstance(current, dict):
            continue
        name, body = _unwrap(current)
        if name is not None:
            yield name, body
        else:
            if "relname" in body:
                yield "RangeVar", body
            elif "roletype" in body:
                yield "RoleSpec", body
        stack.extend(v for v in reversed(list(body.values())) if isinstance(v, (dict, list)))


def _set_config_calls(stmt: Tree, text: str) -> tuple[SettingChange, ...]:
    """``set_config('log_statement', 'none', ...)`` anywhere in a statement."""
    if "set_config" not in text.lower():
        return ()
    found = []
    for name, node in _walk(stmt):
        if name == "FuncCall" and _names(node.get("funcname")).split(".")[-1] == "set_config":
            args = node.get("args") or []
            if len(args) >= 2:
                setting = (_const_text(args[0]) or "").lower()
                if setting in WATCHED_SETTINGS:
                    flag = _const_text(args[2]) if len(args) > 2 else "off"
                    scope = "local" if flag is not None and pg_bool(flag) else "session"
                    value = _const_text(args[1])
                    found.append(
                        SettingChange(
                            setting, value, scope, "set" if value is not None else "unknown"
                        )
                    )
    return tuple(found)


def _objects(stmt: Tree) -> tuple[tuple[str, ...], ...]:
    """Names a statement mentions: relations, dropped/renamed/owned objects, new names.

    Each name is its parts (schema first when written), so ``public."a.b"`` stays
    two parts.
    """
    seen: dict[tuple[str, ...], None] = {}

    def add(*parts: str | None) -> None:
        name = tuple(p for p in parts if p)
        if name:
            seen.setdefault(name, None)

    for name, node in _walk(stmt):
        if name == "RangeVar":
            add(*_parts(node))
        elif name == "DropStmt":
            for obj in node.get("objects") or ():
                add(*_parts(obj))
        elif name in ("RenameStmt", "AlterOwnerStmt", "AlterObjectSchemaStmt", "CommentStmt",
                      "SecLabelStmt"):  # fmt: skip
            add(*_parts(node.get("object")))
            if name == "RenameStmt":
                rel = _parts(node.get("relation")) if node.get("relation") else ()
                if node.get("renameType") in ("OBJECT_COLUMN", "OBJECT_TABCONSTRAINT"):
                    add(*rel, node.get("subname"))
                else:
                    add(*rel[:-1], node.get("newname"))
                    if not node.get("object") and not rel:
                        add(node.get("subname"))  # a database, role, schema or tablespace
        elif name == "CreateFunctionStmt":
            add(*_parts(node.get("funcname")))
        elif name == "ObjectWithArgs":
            add(*_parts(node.get("objname")))
        elif name == "IndexStmt" and node.get("idxname"):
            add(*_parts(node.get("relation"))[:-1], node["idxname"])
        elif name == "CreateSchemaStmt":
            add(node.get("schemaname"))
        elif name in ("CreateEventTrigStmt", "AlterEventTrigStmt", "CreateTrigStmt"):
            add(node.get("trigname"))
        elif name == "CreateRoleStmt":
            add(node.get("role"))
        elif name == "RoleSpec" and node.get("rolename"):
            add(node.get("rolename"))
        elif name in ("CreatedbStmt", "DropdbStmt"):
            add(node.get("dbname"))
        elif name == "CreateExtensionStmt":
            add(node.get("extname"))
        elif name == "DefineStmt":
            add(*_parts(node.get("defnames")))
        elif name == "CompositeTypeStmt":
            add(*_parts(node.get("typevar")))
        elif name == "CreateEnumStmt":
            add(*_parts(node.get("typeName")))
        elif name == "CreateDomainStmt":
            add(*_parts(node.get("domainname")))
        elif name == "CreateSeqStmt":
            add(*_parts(node.get("sequence")))
        elif name in ("AlterDatabaseStmt", "AlterDatabaseSetStmt", "AlterDatabaseRefreshCollStmt"):
            add(node.get("dbname"))
        elif name in ("CreateTableSpaceStmt", "DropTableSpaceStmt", "AlterTableSpaceOptionsStmt"):
            add(node.get("tablespacename"))
        elif name in ("AlterExtensionStmt", "AlterExtensionContentsStmt"):
            add(node.get("extname"))
        elif name in ("AlterDomainStmt", "AlterEnumStmt", "AlterTypeStmt"):
            add(*_parts(node.get("typeName")))
        elif name == "AlterFunctionStmt":
            add(*_parts(node.get("func")))
        elif name in ("CreatePolicyStmt", "AlterPolicyStmt"):
            add(node.get("policy_name"))
        elif name in ("CreatePublicationStmt", "AlterPublicationStmt"):
            add(node.get("pubname"))
        elif name in ("CreateSubscriptionStmt", "AlterSubscriptionStmt", "DropSubscriptionStmt"):
            add(node.get("subname"))
        elif name in ("CreateFdwStmt", "AlterFdwStmt"):
            add(node.get("fdwname"))
        elif name in ("CreateForeignServerStmt", "AlterForeignServerStmt", "CreateUserMappingStmt",
                      "AlterUserMappingStmt", "DropUserMappingStmt"):  # fmt: skip
            add(node.get("servername"))  # a mapping's role is a RoleSpec
        elif name == "CreatePLangStmt":
            add(node.get("plname"))
        elif name == "CreateCastStmt":
            add(*_parts(node.get("sourcetype")))
            add(*_parts(node.get("targettype")))
        elif name == "AlterDefaultPrivilegesStmt":
            for opt in node.get("options") or ():
                body = _unwrap(opt)[1]
                if isinstance(body, dict) and body.get("defname") == "schemas":
                    for schema in _parts(body.get("arg")):
                        add(schema)
        elif name == "GrantStmt":
            # Schemas, databases, types, parameters ... (tables are RangeVars above).
            for obj in node.get("objects") or ():
                add(*_parts(obj))
        elif name == "GrantRoleStmt":
            for granted in node.get("granted_roles") or ():
                add(_unwrap(granted)[1].get("priv_name"))
    return tuple(seen)


@lru_cache(maxsize=4096)
def statement_objects(text: str) -> tuple[str, ...]:
    """Object names one statement's text mentions (see :func:`_objects`), dotted.

    >>> statement_objects("ALTER TABLE s.orders RENAME TO orders_old")
    ('s.orders_old', 's.orders')
    >>> statement_objects("COMMENT ON TABLE auditor.events IS 'x'")
    ('auditor.events',)
    """
    return tuple(dict.fromkeys(".".join(n) for n in statement_object_names(text)))


@lru_cache(maxsize=4096)
def statement_object_names(text: str) -> tuple[tuple[str, ...], ...]:
    """:func:`statement_objects` with each name as its parts (a quoted part may hold a dot).

    >>> statement_object_names('DROP TABLE public."a.b", "X"')
    (('public', 'a.b'), ('X',))
    """
    names: dict[tuple[str, ...], None] = {}
    for stmt in _parse_statements(text):
        for n in _objects(stmt):
            names.setdefault(n, None)
    return tuple(names)


def _parse_statements(text: str) -> list[Tree]:
    """The wrapped statement nodes of a text ([] when it does not parse).

    The text is one statement the classifier read, maybe only with an older
    server's keywords quoted (the words of PostgreSQL 15, which has the fewest).
    """
    try:
        tree, _ = _parse_as_server(parseable(text), 150000)
    except Unreadable:
        return []
    return [raw.get("stmt") or {} for raw in tree.get("stmts", ())]


#: Renames of these leave their table's (or domain's) name alone.
_SUBOBJECT_TYPES = frozenset(
    {
        "OBJECT_COLUMN", "OBJECT_TABCONSTRAINT", "OBJECT_TRIGGER", "OBJECT_POLICY",
        "OBJECT_RULE", "OBJECT_DOMCONSTRAINT", "OBJECT_ATTRIBUTE",
    }
)  # fmt: skip


def _name_parts(node: Any) -> tuple[str, ...]:
    """Name parts of a RangeVar, a list of String nodes or an ObjectWithArgs."""
    if node is None:
        return ()
    if isinstance(node, list):
        return tuple(p for n in node for p in _name_parts(n))
    name, body = _unwrap(node)
    if name == "String":
        return (str(body.get("sval", "")),)
    if name == "List":
        return _name_parts(body.get("items"))
    if isinstance(body, dict) and "relname" in body:
        return tuple(str(p) for p in (body.get("schemaname"), body.get("relname")) if p)
    if isinstance(body, dict) and "objname" in body:
        return _name_parts(body.get("objname"))
    return ()


def _renames(wrapped: Tree) -> tuple[Rename, ...]:
    """``RENAME TO`` and ``SET SCHEMA`` of whole objects (not of columns, constraints...)."""
    name, stmt = _unwrap(wrapped)
    if name == "RenameStmt":
        if stmt.get("renameType") == "OBJECT_SCHEMA":
            return (Rename((str(stmt.get("subname")),), (str(stmt.get("newname")),), schema=True),)
        if stmt.get("renameType") in _SUBOBJECT_TYPES or not stmt.get("newname"):
            return ()
        old = _name_parts(stmt.get("relation") if stmt.get("relation") else stmt.get("object"))
        if not old:
            return ()
        return (Rename(old, (*old[:-1], str(stmt["newname"]))),)
    if name == "AlterObjectSchemaStmt" and stmt.get("newschema"):
        old = _name_parts(stmt.get("relation") if stmt.get("relation") else stmt.get("object"))
        if not old:
            return ()
        return (Rename(old, (str(stmt["newschema"]), old[-1])),)
    return ()


@lru_cache(maxsize=4096)
def statement_renames(text: str) -> tuple[Rename, ...]:
    """Renames in one statement's text.

    >>> statement_renames("ALTER TABLE s.t RENAME TO t2")
    (Rename(old=('s', 't'), new=('s', 't2'), schema=False),)
    >>> statement_renames('ALTER TABLE "T" SET SCHEMA s2')
    (Rename(old=('T',), new=('s2', 'T'), schema=False),)
    >>> statement_renames("ALTER SCHEMA a RENAME TO b")
    (Rename(old=('a',), new=('b',), schema=True),)
    >>> statement_renames("ALTER TABLE t RENAME COLUMN a TO b")
    ()
    """
    return tuple(r for stmt in _parse_statements(text) for r in _renames(stmt))


def _explain_analyze(stmt: Tree) -> bool:
    analyze = False
    for opt in stmt.get("options") or ():
        name, body = _unwrap(opt)
        if name == "DefElem" and body.get("defname") == "analyze":
            arg = body.get("arg")
            if arg is None:
                analyze = True
            else:
                argname, argbody = _unwrap(arg)
                if argname == "Boolean":
                    analyze = bool(argbody.get("boolval"))
                else:
                    analyze = _const_text(arg) not in {"off", "false", "0"}
    return analyze


_TRANSACTION_TAGS = {
    "TRANS_STMT_BEGIN": "BEGIN", "TRANS_STMT_START": "START TRANSACTION",
    "TRANS_STMT_COMMIT": "COMMIT", "TRANS_STMT_ROLLBACK": "ROLLBACK",
    "TRANS_STMT_ROLLBACK_TO": "ROLLBACK", "TRANS_STMT_SAVEPOINT": "SAVEPOINT",
    "TRANS_STMT_RELEASE": "RELEASE", "TRANS_STMT_PREPARE": "PREPARE TRANSACTION",
    "TRANS_STMT_COMMIT_PREPARED": "COMMIT PREPARED",
    "TRANS_STMT_ROLLBACK_PREPARED": "ROLLBACK PREPARED",
}  # fmt: skip


def _tag_and_level(name: str, stmt: Tree, version: int) -> tuple[str, LogLevel]:
    """``CreateCommandTag()`` and ``GetCommandLogLevel()`` for one raw statement."""
    tag, level = NODE_TAGS.get(name, ("???", LogLevel.ALL))
    if tag:
        looks_through = name == "PrepareStmt" or (name == "ExplainStmt" and _explain_analyze(stmt))
        inner_name, inner = _unwrap(stmt.get("query"))
        if looks_through and inner_name is not None:
            # PREPARE and EXPLAIN ANALYZE are logged at the contained statement's level.
            level = _tag_and_level(inner_name, inner, version)[1]
        elif name == "SelectStmt" and stmt.get("intoClause") is not None:
            # Raw tag SELECT, but it executes as CreateTableAsStmt: TG_TAG is SELECT INTO.
            return "SELECT INTO", LogLevel.DDL
        elif name == "CopyStmt" and stmt.get("is_from"):
            level = LogLevel.MOD
        return tag, level
    if name == "TransactionStmt":
        return _TRANSACTION_TAGS.get(str(stmt.get("kind")), "???"), level
    if name == "ClosePortalStmt":
        return ("CLOSE CURSOR" if stmt.get("portalname") else "CLOSE CURSOR ALL"), level
    if name == "FetchStmt":
        return ("MOVE" if stmt.get("ismove") else "FETCH"), level
    if name == "VacuumStmt":
        return ("VACUUM" if stmt.get("is_vacuumcmd") else "ANALYZE"), level
    if name == "VariableSetStmt":
        reset = stmt.get("kind") in ("VAR_RESET", "VAR_RESET_ALL")
        return ("RESET" if reset else "SET"), level
    if name == "DiscardStmt":
        return "DISCARD " + str(stmt.get("target", "DISCARD_ALL")).replace("DISCARD_", ""), level
    if name == "DeallocateStmt":
        isall = stmt.get("isall") or not stmt.get("name")
        return ("DEALLOCATE ALL" if isall else "DEALLOCATE"), level
    if name == "DropStmt":
        word = _objtype_word(stmt.get("removeType"))
        return ("???" if word == "???" else f"DROP {word}"), level
    if name == "RenameStmt":
        objtype = (
            stmt.get("relationType")
            if stmt.get("renameType") == "OBJECT_COLUMN"
            else stmt.get("renameType")
        )
        return _alter_tag(objtype), level
    if name in ("AlterObjectDependsStmt", "AlterObjectSchemaStmt", "AlterOwnerStmt"):
        return _alter_tag(stmt.get("objectType")), level
    if name in ("AlterTableStmt", "AlterTableMoveAllStmt"):
        return _alter_tag(stmt.get("objtype")), level
    if name == "GrantStmt":
        return ("GRANT" if stmt.get("is_grant") else "REVOKE"), level
    if name == "GrantRoleStmt":
        return ("GRANT ROLE" if stmt.get("is_grant") else "REVOKE ROLE"), level
    if name == "DefineStmt":
        return f"CREATE {_objtype_word(stmt.get('kind'))}", level
    if name == "AlterFunctionStmt":
        return _alter_tag(stmt.get("objtype")), level
    if name == "CreateFunctionStmt":
        return ("CREATE PROCEDURE" if stmt.get("is_procedure") else "CREATE FUNCTION"), level
    if name == "CreateTableAsStmt":
        if stmt.get("objtype") == "OBJECT_MATVIEW":
            return "CREATE MATERIALIZED VIEW", level
        return ("SELECT INTO" if stmt.get("is_select_into") else "CREATE TABLE AS"), level
    return "???", level


def _statement_objtype(name: str, stmt: Tree) -> Any:
    """The object type that ``EventTriggerSupportsObjectType()`` is asked about."""
    if name in ("GrantStmt", "CommentStmt", "SecLabelStmt"):
        return stmt.get("objtype")
    if name == "DropStmt":
        return stmt.get("removeType")
    if name == "RenameStmt":
        return stmt.get("renameType")
    if name in ("AlterObjectDependsStmt", "AlterObjectSchemaStmt", "AlterOwnerStmt"):
        return stmt.get("objectType")
    return None


def _unauditable_reason(name: str, stmt: Tree, tag: str, version: int) -> str | None:
    """Why event triggers cannot see this schema change, or None when they can."""
    if name == "ExplainStmt":
        return "EXPLAIN ANALYZE runs the statement without firing event triggers"
    if tag in ("CREATE EVENT TRIGGER", "ALTER EVENT TRIGGER", "DROP EVENT TRIGGER"):
        return "event triggers never fire on event-trigger DDL"
    if tag == "REINDEX":
        return None if version >= 170000 else "REINDEX fires no event trigger before PostgreSQL 17"
    if tag == "ALTER SYSTEM":
        return "ALTER SYSTEM changes the server configuration; event triggers never fire on it"
    if tag in ("GRANT ROLE", "REVOKE ROLE"):
        return "role membership is a shared (cluster-wide) object; event triggers never fire on it"
    if tag.endswith(("ROLE", "DATABASE", "TABLESPACE")) and tag in _TRIGGERLESS_DDL_TAGS:
        return f"{tag} changes a shared (cluster-wide) object; event triggers never fire on it"
    if tag == "REASSIGN OWNED":
        return "REASSIGN OWNED fires no event trigger"
    if tag == "CLUSTER":
        return "CLUSTER rewrites a table without firing event triggers"
    if tag == "PREPARE":
        return "PREPARE of a table-creating query is logged as DDL but creates nothing itself"
    objtype = _statement_objtype(name, stmt)
    if objtype in _SHARED_OBJECT_TYPES:
        return (
            f"{tag} on {_objtype_word(objtype).lower()} objects fires no event trigger "
            "(shared or event-trigger object)"
        )
    return None


def _event_trigger_change(name: str, stmt: Tree, tag: str) -> EventTriggerChange | None:
    if name == "CreateEventTrigStmt":
        return EventTriggerChange((str(stmt.get("trigname")),), "create")
    if name == "AlterEventTrigStmt":
        action = {"D": "disable", "O": "enable", "R": "enable replica", "A": "enable always"}
        return EventTriggerChange(
            (str(stmt.get("trigname")),), action.get(str(stmt.get("tgenabled")), "alter")
        )
    if _statement_objtype(name, stmt) == "OBJECT_EVENT_TRIGGER":
        if name == "DropStmt":
            return EventTriggerChange(tuple(_names(o) for o in stmt.get("objects") or ()), "drop")
        if name == "RenameStmt":
            return EventTriggerChange(
                (_names(stmt.get("object")),), f"rename to {stmt.get('newname')}"
            )
        if name == "AlterOwnerStmt":
            owner = (stmt.get("newowner") or {}).get("rolename") or "?"
            return EventTriggerChange((_names(stmt.get("object")),), f"owner to {owner}")
        return EventTriggerChange((_names(stmt.get("object")),), tag.lower())
    return None


def _role_list(arg: Any) -> list[str]:
    """The role names of a DefElem's list argument (``IN ROLE a, b``)."""
    listname, body = _unwrap(arg)
    out = []
    for item in (body.get("items") or ()) if listname == "List" else ():
        specname, spec = _unwrap(item)
        if specname == "RoleSpec" and spec.get("rolename"):
            out.append(str(spec["rolename"]))
    return out


def _grants_superuser(name: str, stmt: Tree) -> bool:
    if name in ("CreateRoleStmt", "AlterRoleStmt"):
        superuser = False
        for opt in stmt.get("options") or ():
            optname, body = _unwrap(opt)
            if optname != "DefElem":
                continue
            if body.get("defname") == "superuser":
                arg = body.get("arg")
                argname, argbody = _unwrap(arg)
                superuser = arg is None or argname != "Boolean" or bool(argbody.get("boolval"))
            elif body.get("defname") == "addroleto":  # CREATE ROLE x IN ROLE / IN GROUP
                superuser |= bool(POWERFUL_ROLES.intersection(_role_list(body.get("arg"))))
        return superuser
    if name == "GrantRoleStmt" and stmt.get("is_grant"):
        for role in stmt.get("granted_roles") or ():
            rname, body = _unwrap(role)
            if rname == "AccessPriv" and body.get("priv_name") in POWERFUL_ROLES:
                return True
    return False


def _granted_roles(name: str, stmt: Tree) -> tuple[str, ...]:
    if name == "GrantRoleStmt" and stmt.get("is_grant"):
        return tuple(
            str(body["priv_name"])
            for rname, body in map(_unwrap, stmt.get("granted_roles") or ())
            if rname == "AccessPriv" and body.get("priv_name")
        )
    out: list[str] = []
    for optname, body in map(_unwrap, stmt.get("options") or ()):
        if optname != "DefElem":
            continue
        if name == "CreateRoleStmt" and body.get("defname") == "addroleto":
            out.extend(_role_list(body.get("arg")))
        elif name == "AlterRoleStmt" and body.get("defname") == "rolemembers":
            _, role = _unwrap(stmt.get("role"))
            if stmt.get("action") == 1 and isinstance(role, dict) and role.get("rolename"):
                out.append(str(role["rolename"]))
    return tuple(out)


def _role_options(name: str, stmt: Tree) -> tuple[str, ...]:
    if name == "RenameStmt" and stmt.get("renameType") == "OBJECT_ROLE":
        return ("rename",)
    if name not in ("CreateRoleStmt", "AlterRoleStmt"):
        return ()
    return tuple(
        str(body["defname"])
        for optname, body in map(_unwrap, stmt.get("options") or ())
        if optname == "DefElem" and body.get("defname")
    )


def _settings(name: str, stmt: Tree, text: str) -> tuple[SettingChange, ...]:
    if name == "VariableSetStmt":
        return _set_changes({"VariableSetStmt": stmt}, "session")
    if name == "AlterSystemStmt":
        return _set_changes(stmt.get("setstmt"), "system")
    if name == "AlterRoleSetStmt":
        scope = "role" if stmt.get("role") else "all roles"
        if stmt.get("database"):
            scope += " in database"
        return _set_changes(stmt.get("setstmt"), scope)
    if name == "AlterDatabaseSetStmt":
        return _set_changes(stmt.get("setstmt"), "database")
    found: list[SettingChange] = []
    if name in ("AlterFunctionStmt", "CreateFunctionStmt"):
        for opt in [*(stmt.get("actions") or ()), *(stmt.get("options") or ())]:
            optname, body = _unwrap(opt)
            if optname == "DefElem" and body.get("defname") == "set":
                found.extend(_set_changes(body.get("arg"), "function"))
    found.extend(_set_config_calls(stmt, text))
    return tuple(found)


def _commits_internally(name: str, stmt: Tree) -> bool:
    """The CONCURRENTLY forms that commit and start transactions of their own."""
    if name in ("IndexStmt", "DropStmt"):
        return bool(stmt.get("concurrent"))
    if name == "ReindexStmt":
        for param in stmt.get("params") or ():
            pname, body = _unwrap(param)
            if pname == "DefElem" and body.get("defname") == "concurrently":
                arg = body.get("arg")
                return arg is None or _const_text(arg) not in {"off", "false", "0", "no"}
        return False
    if name == "AlterTableStmt":
        for cmd in stmt.get("cmds") or ():
            cname, body = _unwrap(cmd)
            if cname == "AlterTableCmd" and body.get("subtype") == "AT_DetachPartition":
                _, part = _unwrap(body.get("def"))
                if isinstance(part, dict) and part.get("concurrent"):
                    return True
    return False


def classify_statement(
    name: str, stmt: Tree, text: str, location: int, version: int
) -> StatementClass:
    """Classify one parsed statement (node name and fields of the JSON tree)."""
    tag, level = _tag_and_level(name, stmt, version)
    reason = _unauditable_reason(name, stmt, tag, version)
    if tag == "REINDEX" and version >= 170000:
        fires = True
    else:
        fires = tag not in _NEVER_FIRE_TAGS and reason is None and tag != "???"
    drops = fires and (tag.startswith("DROP ") or tag in ("ALTER TABLE", "ALTER FOREIGN TABLE"))
    rewrite_tags = {"ALTER TABLE", "ALTER TYPE"} | (
        {"ALTER MATERIALIZED VIEW"} if version >= 160000 else set()
    )
    schema_change = level == LogLevel.DDL or tag == "REINDEX"
    return StatementClass(
        text=text,
        location=location,
        node=name,
        command_tag=tag,
        log_level=level,
        fires_ddl_command_end=fires,
        may_fire_sql_drop=drops,
        may_fire_table_rewrite=fires and tag in rewrite_tags,
        unauditable_reason=reason if schema_change else None,
        event_trigger=_event_trigger_change(name, stmt, tag),
        settings=_settings(name, stmt, text),
        grants_superuser=_grants_superuser(name, stmt),
        granted_roles=_granted_roles(name, stmt),
        role_options=_role_options(name, stmt),
        commits_internally=_commits_internally(name, stmt),
    )


# -- parsing as the server would ------------------------------------------------------
#
# pglast carries one grammar, PostgreSQL 18's.  A word that grammar reserves
# but an older server does not know as a keyword (``system_user`` from PG 16,
# the SQL/JSON words from PG 16 and 17, ...) is an identifier to that server:
# ``SELECT 1 FROM pg_class system_user`` runs on PG 15 and fails to parse here.
# Such a word is written as the quoted identifier it is to the server (its
# lower-case spelling, which is what an unquoted identifier folds to), which
# means exactly the same to that server's grammar, and parsed again.  What
# still does not parse is split into its statements by the scanner (which
# needs no grammar) and each piece is parsed on its own, so one piece the
# parser cannot read hides nothing else of the string; a piece that still
# does not parse is an ``Unparsed`` statement, never a matched one.

#: Keywords of pglast's grammar (PostgreSQL 18, ``kwlist.h``) that each older major
#: does not have; for PostgreSQL 13 and 14 the PostgreSQL 15 list is used (what they
#: lack beyond it stays unparsed: reported, never matched).
_NEWER_KEYWORDS: dict[int, frozenset[str]] = {
    17: frozenset({"enforced", "objects", "period", "virtual"}),
    16: frozenset(
        {
            "conditional", "empty", "enforced", "error", "json_exists", "json_query",
            "json_scalar", "json_serialize", "json_table", "json_value", "keep",
            "merge_action", "nested", "objects", "omit", "path", "period", "plan", "quotes",
            "source", "string", "target", "unconditional", "virtual",
        }
    ),
    15: frozenset(
        {
            "absent", "conditional", "empty", "enforced", "error", "format", "indent", "json",
            "json_array", "json_arrayagg", "json_exists", "json_object", "json_objectagg",
            "json_query", "json_scalar", "json_serialize", "json_table", "json_value", "keep",
            "keys", "merge_action", "nested", "objects", "omit", "path", "period", "plan",
            "quotes", "scalar", "source", "string", "system_user", "target", "unconditional",
            "virtual",
        }
    ),
}  # fmt: skip

#: Nesting (of the JSON parse tree) beyond orjson's limit is read by the standard
#: library with this recursion limit; deeper trees are unparsed statements.
_DEEP_TREE_LIMIT = 60000


class Unreadable(Exception):
    """The parser cannot read a text (a syntax error, or a tree too deep to load)."""


def newer_keywords(server_version_num: int) -> frozenset[str]:
    """The words pglast's grammar reserves that this server's grammar does not know.

    >>> "system_user" in newer_keywords(150000), newer_keywords(180000)
    (True, frozenset())
    >>> sorted(newer_keywords(170004))
    ['enforced', 'objects', 'period', 'virtual']
    """
    major = server_version_num // 10000
    if major >= 18:
        return frozenset()
    return _NEWER_KEYWORDS[min(max(major, 15), 17)]


def parse_tree(text: str) -> Tree:
    """libpg_query's JSON tree of ``text``; raises :class:`Unreadable`.

    orjson refuses trees nested deeper than 1024 levels (a 600-deep expression
    is more): those are loaded by the standard library with a higher recursion
    limit, in this thread only for as long as it takes.
    """
    try:
        raw = parse_sql_json(text)
    except ParseError as exc:
        raise Unreadable(str(exc)) from None
    try:
        tree: Tree = orjson.loads(raw)
        return tree
    except orjson.JSONDecodeError:
        pass
    import json
    import sys

    old = sys.getrecursionlimit()
    try:
        sys.setrecursionlimit(max(old, _DEEP_TREE_LIMIT))
        deep: Tree = json.loads(raw)
        return deep
    except (RecursionError, ValueError, MemoryError):
        raise Unreadable("the statement is nested too deeply for the parser") from None
    finally:
        sys.setrecursionlimit(old)


def _tokens(text: str) -> list[Any]:
    """The scanner's tokens (character offsets, ``end`` inclusive); raises :class:`Unreadable`."""
    from pglast.parser import scan

    try:
        return list(scan(text))
    except ParseError as exc:
        raise Unreadable(str(exc)) from None


def _for_server(text: str, words: frozenset[str]) -> tuple[str, list[int]] | None:
    """``text`` with each of ``words`` used as a keyword quoted as the identifier it is
    to the server; and the UTF-8 byte offsets (in ``text``) of the quoted words.
    None when there is nothing to quote.

    >>> _for_server("SELECT 1 FROM pg_class System_User LIMIT 1", frozenset({"system_user"}))
    ('SELECT 1 FROM pg_class "system_user" LIMIT 1', [23])
    >>> _for_server("SELECT 'system_user'", frozenset({"system_user"})) is None
    True
    """
    if not words:
        return None
    low = text.lower()
    if not any(w in low for w in words):
        return None
    edits = [
        (tok.start, tok.end + 1)
        for tok in _tokens(text)
        if tok.kind != "NO_KEYWORD" and low[tok.start : tok.end + 1] in words
    ]
    if not edits:
        return None
    out: list[str] = []
    at = 0
    for a, b in edits:
        out += [text[at:a], '"', low[a:b], '"']
        at = b
    out.append(text[at:])
    return "".join(out), [len(text[:a].encode("utf-8")) for a, _ in edits]


def _pieces(text: str) -> list[tuple[int, int]]:
    """Character ranges of the statements of a string, found by the scanner.

    Cut at each ``;`` outside parentheses and ``BEGIN ATOMIC ... END`` bodies; no
    grammar needed, so it splits what the parser cannot read.

    >>> q = "CREATE RULE r AS ON INSERT TO t DO ALSO (SELECT 1; SELECT 2); SELECT 3"
    >>> [q[a:b] for a, b in _pieces(q)]
    ['CREATE RULE r AS ON INSERT TO t DO ALSO (SELECT 1; SELECT 2)', ' SELECT 3']
    """
    out: list[tuple[int, int]] = []
    depth = 0
    atomic = 0
    start = 0
    previous = ""
    for tok in _tokens(text):
        name = tok.name
        if name == "ASCII_40":
            depth += 1
        elif name == "ASCII_41":
            depth = max(0, depth - 1)
        elif name == "ATOMIC" and previous == "BEGIN_P":
            atomic += 1
        elif name == "END_P" and atomic:
            atomic -= 1
        elif name == "ASCII_59" and depth == 0 and not atomic:
            out.append((start, tok.start))
            start = tok.end + 1
        previous = name
    out.append((start, len(text)))
    return [(a, b) for a, b in out if text[a:b].strip()]


_DDL_WORD = re.compile(
    r"\s*(?:/\*.*?\*/\s*|--[^\n]*\n\s*)*"
    r"(CREATE|ALTER|DROP|GRANT|REVOKE|COMMENT|SECURITY\s+LABEL|CLUSTER|REFRESH|IMPORT|"
    r"REASSIGN|REINDEX)\b|\bINTO\b",
    re.IGNORECASE | re.DOTALL,
)


def _unparsed(text: str, location: int, error: str) -> StatementClass:
    """A statement the parser cannot read: conservatively DDL when it may be DDL."""
    from auditor.logs.prefilter import has_token

    m = _DDL_WORD.match(text) or _DDL_WORD.search(text)
    words = text.split()
    first = words[0].upper() if words else "???"
    return StatementClass(
        text=text,
        location=location,
        node="Unparsed",
        command_tag=f"{first} (unparsed)",
        log_level=LogLevel.DDL if m else LogLevel.ALL,
        fires_ddl_command_end=False,
        may_fire_sql_drop=False,
        may_fire_table_rewrite=False,
        unauditable_reason=None,
        unparsed=error if has_token(text) else None,
    )


def _statements(
    tree: Tree, query: str, valid: str, quoted: list[int], version: int
) -> list[StatementClass]:
    """The classified statements of the parsed tree of ``query``.

    ``valid`` is ``query`` as the parser read it (:func:`auditor.encoding.parseable`);
    ``quoted`` the byte offsets where :func:`_for_server` put a word in quotes (two
    bytes more each: the tree's offsets count them).
    """
    data = valid.encode("utf-8")
    ascii_only = query.isascii()  # then byte offsets are character offsets

    def orig(offset: int) -> int:
        return offset - 2 * sum(1 for i, at in enumerate(quoted) if at + 2 * i < offset)

    out = []
    for raw in tree.get("stmts", ()):
        # libpg_query's offsets count bytes of the UTF-8 text.
        first = int(raw.get("stmt_location", 0))
        length = int(raw.get("stmt_len", 0))
        start = orig(first)
        end = orig(first + length) if length else len(data)
        if ascii_only:
            text, location = query[start:end].strip(), start
        else:
            location = len(data[:start].decode("utf-8", "replace"))
            stop = len(data[:end].decode("utf-8", "replace"))
            text = query[location:stop].strip()
        name, body = _unwrap(raw.get("stmt"))
        if name is None:
            continue
        try:
            out.append(classify_statement(name, body, text, location, version))
        except (RecursionError, LookupError, TypeError, ValueError, AttributeError) as exc:
            # A tree shape this module does not know: read it by hand, never matched.
            out.append(_unparsed(text, location, f"cannot classify {name}: {exc!r}"))
    return out


def _parse_as_server(text: str, version: int) -> tuple[Tree, list[int]]:
    """Parse ``text`` with pglast's grammar, or as the server's grammar reads it."""
    try:
        return parse_tree(text), []
    except Unreadable as first:
        try:
            quoted = _for_server(text, newer_keywords(version))
        except Unreadable:
            raise first from None
        if quoted is None:
            raise
        try:
            return parse_tree(quoted[0]), quoted[1]
        except Unreadable:
            raise first from None


@lru_cache(maxsize=8192)
def classify(query: str, *, server_version_num: int = 150000) -> QueryClassification:
    """Split a query string into statements and classify each one.

    Never raises: what the parser cannot read is split by the scanner and each
    piece parsed on its own; a piece that still does not parse is an
    ``Unparsed`` statement (see :attr:`QueryClassification.unparsed`).

    >>> c = classify("BEGIN; CREATE TABLE t (id int); COMMIT")
    >>> [s.command_tag for s in c.statements], c.is_ddl
    (['BEGIN', 'CREATE TABLE', 'COMMIT'], True)
    >>> [s.command_tag for s in c.firing_statements]
    ['CREATE TABLE']
    >>> classify("select * into t2 from t").statements[0].command_tag
    'SELECT INTO'
    >>> classify("GRANT CONNECT ON DATABASE app TO bob").firing_statements
    ()
    >>> classify("ALTER EVENT TRIGGER audit_ddl DISABLE").statements[0].event_trigger
    EventTriggerChange(names=('audit_ddl',), action='disable')
    >>> classify("SET log_statement = 'none'").settings
    (SettingChange(name='log_statement', value='none', scope='session', kind='set'),)
    >>> classify("SELECT 1").is_relevant
    False
    >>> q = "CREATE ROLE x SUPERUSER; SELECT 1 FROM pg_class system_user"
    >>> [s.command_tag for s in classify(q, server_version_num=150000).statements]
    ['CREATE ROLE', 'SELECT']
    >>> [s.command_tag for s in classify(q, server_version_num=160000).statements]
    ['CREATE ROLE', 'SELECT (unparsed)']
    """
    # Bytes of the log that were not UTF-8 are lone surrogates (auditor.encoding): the
    # parser reads U+FFFD in their place, one for one, and the texts keep them.
    valid = parseable(query)
    try:
        tree, quoted = _parse_as_server(valid, server_version_num)
    except Unreadable as exc:
        error = str(exc)
    else:
        return QueryClassification(
            query, tuple(_statements(tree, query, valid, quoted, server_version_num))
        )
    try:
        pieces = _pieces(valid)
    except Unreadable:
        pieces = [(0, len(valid))]
    statements: list[StatementClass] = []
    for a, b in pieces:
        part, original = valid[a:b], query[a:b]
        try:
            tree, quoted = _parse_as_server(part, server_version_num)
        except Unreadable as exc:
            lead = len(original) - len(original.lstrip())
            statements.append(_unparsed(original.strip(), a + lead, str(exc)))
            continue
        for st in _statements(tree, original, part, quoted, server_version_num):
            statements.append(_moved(st, a))
    return QueryClassification(query, tuple(statements), parse_error=error)


def _moved(s: StatementClass, by: int) -> StatementClass:
    from dataclasses import replace

    return replace(s, location=s.location + by)
