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

from pglast import ast, parse_sql
from pglast.enums.parsenodes import ObjectType, VariableSetKind
from pglast.parser import ParseError

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
        ObjectType.OBJECT_DATABASE,
        ObjectType.OBJECT_TABLESPACE,
        ObjectType.OBJECT_ROLE,
        ObjectType.OBJECT_PARAMETER_ACL,
        ObjectType.OBJECT_EVENT_TRIGGER,
    }
)

#: Settings whose change weakens one of the two channels.
WATCHED_SETTINGS = frozenset(
    {
        "log_statement", "log_min_error_statement", "log_min_messages", "log_destination",
        "logging_collector", "log_line_prefix", "log_directory", "log_filename",
        "log_rotation_age", "log_rotation_size", "log_truncate_on_rotation", "log_file_mode",
        "session_replication_role", "event_triggers", "lc_messages", "syslog_ident",
        "syslog_facility", "log_error_verbosity",
    }
)  # fmt: skip

#: Predefined roles whose grant is as good as superuser (file and program access).
POWERFUL_ROLES = frozenset(
    {"pg_execute_server_program", "pg_write_server_files", "pg_read_server_files"}
)

_OBJECT_WORDS: dict[ObjectType, str] = {
    ObjectType.OBJECT_ACCESS_METHOD: "ACCESS METHOD",
    ObjectType.OBJECT_AGGREGATE: "AGGREGATE",
    ObjectType.OBJECT_ATTRIBUTE: "TYPE",
    ObjectType.OBJECT_CAST: "CAST",
    ObjectType.OBJECT_COLUMN: "TABLE",
    ObjectType.OBJECT_COLLATION: "COLLATION",
    ObjectType.OBJECT_CONVERSION: "CONVERSION",
    ObjectType.OBJECT_DATABASE: "DATABASE",
    ObjectType.OBJECT_DOMAIN: "DOMAIN",
    ObjectType.OBJECT_DOMCONSTRAINT: "DOMAIN",
    ObjectType.OBJECT_EVENT_TRIGGER: "EVENT TRIGGER",
    ObjectType.OBJECT_EXTENSION: "EXTENSION",
    ObjectType.OBJECT_FDW: "FOREIGN DATA WRAPPER",
    ObjectType.OBJECT_FOREIGN_SERVER: "SERVER",
    ObjectType.OBJECT_FOREIGN_TABLE: "FOREIGN TABLE",
    ObjectType.OBJECT_FUNCTION: "FUNCTION",
    ObjectType.OBJECT_INDEX: "INDEX",
    ObjectType.OBJECT_LANGUAGE: "LANGUAGE",
    ObjectType.OBJECT_LARGEOBJECT: "LARGE OBJECT",
    ObjectType.OBJECT_MATVIEW: "MATERIALIZED VIEW",
    ObjectType.OBJECT_OPCLASS: "OPERATOR CLASS",
    ObjectType.OBJECT_OPERATOR: "OPERATOR",
    ObjectType.OBJECT_OPFAMILY: "OPERATOR FAMILY",
    ObjectType.OBJECT_POLICY: "POLICY",
    ObjectType.OBJECT_PROCEDURE: "PROCEDURE",
    ObjectType.OBJECT_PUBLICATION: "PUBLICATION",
    ObjectType.OBJECT_ROLE: "ROLE",
    ObjectType.OBJECT_ROUTINE: "ROUTINE",
    ObjectType.OBJECT_RULE: "RULE",
    ObjectType.OBJECT_SCHEMA: "SCHEMA",
    ObjectType.OBJECT_SEQUENCE: "SEQUENCE",
    ObjectType.OBJECT_SUBSCRIPTION: "SUBSCRIPTION",
    ObjectType.OBJECT_STATISTIC_EXT: "STATISTICS",
    ObjectType.OBJECT_TABCONSTRAINT: "TABLE",
    ObjectType.OBJECT_TABLE: "TABLE",
    ObjectType.OBJECT_TABLESPACE: "TABLESPACE",
    ObjectType.OBJECT_TRANSFORM: "TRANSFORM",
    ObjectType.OBJECT_TRIGGER: "TRIGGER",
    ObjectType.OBJECT_TSCONFIGURATION: "TEXT SEARCH CONFIGURATION",
    ObjectType.OBJECT_TSDICTIONARY: "TEXT SEARCH DICTIONARY",
    ObjectType.OBJECT_TSPARSER: "TEXT SEARCH PARSER",
    ObjectType.OBJECT_TSTEMPLATE: "TEXT SEARCH TEMPLATE",
    ObjectType.OBJECT_TYPE: "TYPE",
    ObjectType.OBJECT_VIEW: "VIEW",
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
    """A change of a watched setting: ``scope`` is session, local, system, role, database
    or function; ``value`` is None for RESET."""

    name: str
    value: str | None
    scope: str


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
    objects: tuple[str, ...] = ()  # object names mentioned, as written (lower-cased if unquoted)
    #: Objects this statement gives a new name (RENAME TO, SET SCHEMA), for ``timeline``.
    renames: tuple[Rename, ...] = ()

    @property
    def is_ddl(self) -> bool:
        """Logged under ``log_statement = 'ddl'``."""
        return self.log_level == LogLevel.DDL

    @property
    def schema_change(self) -> bool:
        """DDL in the audit sense: DDL-level, or REINDEX (logged only under 'all')."""
        return self.is_ddl or self.command_tag == "REINDEX"

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
    def is_relevant(self) -> bool:
        """Worth keeping from a log: schema changes and changes of watched settings."""
        return self.schema_change or bool(self.settings)

    @property
    def firing_statements(self) -> tuple[StatementClass, ...]:
        """The statements that each fire ``ddl_command_end`` once, in order."""
        return tuple(s for s in self.statements if s.fires_ddl_command_end)


# -- the classifier --------------------------------------------------------------


def _objtype_word(objtype: Any) -> str:
    return _OBJECT_WORDS.get(objtype, "???")


def _alter_tag(objtype: Any) -> str:
    word = _objtype_word(objtype)
    return "???" if word == "???" else f"ALTER {word}"


def _names(node: Any) -> str:
    """Dotted name from a list of String nodes (or a single String/RangeVar)."""
    if node is None:
        return ""
    if isinstance(node, ast.String):
        return str(node.sval)
    if isinstance(node, ast.RangeVar):
        parts = [node.catalogname, node.schemaname, node.relname]
        return ".".join(str(p) for p in parts if p)
    if isinstance(node, ast.ObjectWithArgs):
        return _names(node.objname)
    if isinstance(node, ast.TypeName):
        return _names(node.names)
    if isinstance(node, (tuple, list)):
        return ".".join(_names(n) for n in node if n is not None)
    return ""


def _const_text(node: Any) -> str | None:
    """The text of an A_Const / String argument of SET, as PostgreSQL would store it."""
    if isinstance(node, ast.A_Const):
        val = node.val
        if val is None or getattr(node, "isnull", False):
            return None
        for attr in ("sval", "ival", "fval", "boolval", "bsval"):
            if hasattr(val, attr):
                value = getattr(val, attr)
                if isinstance(value, bool):
                    return "on" if value else "off"
                return str(value)
    if isinstance(node, ast.String):
        return str(node.sval)
    return None


def _set_changes(stmt: Any, scope: str) -> tuple[SettingChange, ...]:
    """Watched settings changed by a VariableSetStmt (SET/RESET or in ALTER ... SET)."""
    if not isinstance(stmt, ast.VariableSetStmt):
        return ()
    name = (stmt.name or "").lower()
    kind = stmt.kind
    if kind == VariableSetKind.VAR_RESET_ALL:
        return (SettingChange("ALL", None, scope),)
    if name not in WATCHED_SETTINGS:
        return ()
    if scope == "session" and stmt.is_local:
        scope = "local"
    if kind in (VariableSetKind.VAR_RESET, VariableSetKind.VAR_SET_DEFAULT):
        return (SettingChange(name, None, scope),)
    values = [_const_text(a) for a in (stmt.args or ())]
    value = ", ".join(v for v in values if v is not None) if values else None
    return (SettingChange(name, value, scope),)


def _walk(node: Any) -> Iterator[Any]:
    """Every AST node below ``node`` (depth first), including itself."""
    stack = [node]
    while stack:
        current = stack.pop()
        if isinstance(current, (tuple, list)):
            stack.extend(reversed(current))
        elif isinstance(current, ast.Node):
            yield current
            for attr in current:
                child = getattr(current, attr, None)
                if isinstance(child, (ast.Node, tuple, list)):
                    stack.append(child)


def _set_config_calls(stmt: Any) -> tuple[SettingChange, ...]:
    """``set_config('log_statement', 'none', ...)`` anywhere in a statement."""
    found = []
    for node in _walk(stmt):
        if isinstance(node, ast.FuncCall) and _names(node.funcname).split(".")[-1] == "set_config":
            args = node.args or ()
            if len(args) >= 2:
                name = (_const_text(args[0]) or "").lower()
                if name in WATCHED_SETTINGS:
                    local = len(args) > 2 and _const_text(args[2]) in {"on", "true", "t"}
                    found.append(
                        SettingChange(name, _const_text(args[1]), "local" if local else "session")
                    )
    return tuple(found)


def _objects(stmt: Any) -> tuple[str, ...]:
    """Names a statement mentions: relations, dropped/renamed/owned objects, new names."""
    seen: dict[str, None] = {}

    def add(name: str | None) -> None:
        if name:
            seen.setdefault(name, None)

    for node in _walk(stmt):
        if isinstance(node, ast.RangeVar):
            add(_names(node))
        elif isinstance(node, ast.DropStmt):
            for obj in node.objects or ():
                add(_names(obj))
        elif isinstance(node, (ast.RenameStmt, ast.AlterOwnerStmt, ast.AlterObjectSchemaStmt)):
            add(_names(getattr(node, "object", None)))
            if isinstance(node, ast.RenameStmt):
                rel = _names(node.relation) if node.relation else ""
                schema = rel.rsplit(".", 1)[0] if "." in rel else ""
                if node.renameType in (ObjectType.OBJECT_COLUMN, ObjectType.OBJECT_TABCONSTRAINT):
                    add(f"{rel}.{node.subname}" if rel else node.subname)
                else:
                    add(f"{schema}.{node.newname}" if schema else node.newname)
        elif isinstance(node, (ast.CreateFunctionStmt,)):
            add(_names(node.funcname))
        elif isinstance(node, ast.ObjectWithArgs):
            add(_names(node.objname))
        elif isinstance(node, ast.IndexStmt) and node.idxname:
            rel = _names(node.relation)
            schema = rel.rsplit(".", 1)[0] if "." in rel else ""
            add(f"{schema}.{node.idxname}" if schema else node.idxname)
        elif isinstance(node, (ast.CreateSchemaStmt,)):
            add(node.schemaname)
        elif isinstance(
            node, (ast.CreateEventTrigStmt, ast.AlterEventTrigStmt, ast.CreateTrigStmt)
        ):
            add(node.trigname)
        elif isinstance(node, ast.CreateRoleStmt):
            add(node.role)
        elif isinstance(node, ast.RoleSpec) and node.rolename:
            add(node.rolename)
        elif isinstance(node, (ast.CreatedbStmt, ast.DropdbStmt)):
            add(node.dbname)
        elif isinstance(node, ast.CreateExtensionStmt):
            add(node.extname)
        elif isinstance(node, (ast.DefineStmt, ast.CompositeTypeStmt, ast.CreateEnumStmt)):
            add(_names(getattr(node, "defnames", None) or getattr(node, "typeName", None)))
        elif isinstance(node, ast.CreateDomainStmt):
            add(_names(node.domainname))
        elif isinstance(node, ast.CreateSeqStmt):
            add(_names(node.sequence))
    return tuple(seen)


#: Renames of these leave their table's (or domain's) name alone.
_SUBOBJECT_TYPES = frozenset(
    {
        ObjectType.OBJECT_COLUMN, ObjectType.OBJECT_TABCONSTRAINT, ObjectType.OBJECT_TRIGGER,
        ObjectType.OBJECT_POLICY, ObjectType.OBJECT_RULE, ObjectType.OBJECT_DOMCONSTRAINT,
        ObjectType.OBJECT_ATTRIBUTE,
    }
)  # fmt: skip


def _name_parts(node: Any) -> tuple[str, ...]:
    """Name parts of a RangeVar, a list of String nodes or an ObjectWithArgs."""
    if isinstance(node, ast.RangeVar):
        return tuple(str(p) for p in (node.schemaname, node.relname) if p)
    if isinstance(node, ast.ObjectWithArgs):
        return _name_parts(node.objname)
    if isinstance(node, ast.String):
        return (str(node.sval),)
    if isinstance(node, (tuple, list)):
        return tuple(str(n.sval) for n in node if isinstance(n, ast.String))
    return ()


def _renames(stmt: Any) -> tuple[Rename, ...]:
    """``RENAME TO`` and ``SET SCHEMA`` of whole objects (not of columns, constraints...).

    >>> _renames(parse_sql("ALTER TABLE s.t RENAME TO t2")[0].stmt)
    (Rename(old=('s', 't'), new=('s', 't2'), schema=False),)
    >>> _renames(parse_sql('ALTER TABLE "T" SET SCHEMA s2')[0].stmt)
    (Rename(old=('T',), new=('s2', 'T'), schema=False),)
    >>> _renames(parse_sql("ALTER SCHEMA a RENAME TO b")[0].stmt)
    (Rename(old=('a',), new=('b',), schema=True),)
    >>> _renames(parse_sql("ALTER TABLE t RENAME COLUMN a TO b")[0].stmt)
    ()
    """
    if isinstance(stmt, ast.RenameStmt):
        if stmt.renameType == ObjectType.OBJECT_SCHEMA:
            return (Rename((str(stmt.subname),), (str(stmt.newname),), schema=True),)
        if stmt.renameType in _SUBOBJECT_TYPES or not stmt.newname:
            return ()
        old = _name_parts(stmt.relation if stmt.relation is not None else stmt.object)
        if not old:
            return ()
        return (Rename(old, (*old[:-1], str(stmt.newname))),)
    if isinstance(stmt, ast.AlterObjectSchemaStmt) and stmt.newschema:
        old = _name_parts(stmt.relation if stmt.relation is not None else stmt.object)
        if not old:
            return ()
        return (Rename(old, (str(stmt.newschema), old[-1])),)
    return ()


def _explain_analyze(stmt: Any) -> bool:
    analyze = False
    for opt in stmt.options or ():
        if isinstance(opt, ast.DefElem) and opt.defname == "analyze":
            analyze = opt.arg is None or _const_text(opt.arg) not in {"off", "false", "0"}
            if isinstance(opt.arg, ast.Boolean):
                analyze = bool(opt.arg.boolval)
    return analyze


def _tag_and_level(stmt: Any, version: int) -> tuple[str, LogLevel]:
    """``CreateCommandTag()`` and ``GetCommandLogLevel()`` for one raw statement."""
    name = type(stmt).__name__
    tag, level = NODE_TAGS.get(name, ("???", LogLevel.ALL))
    if tag:
        looks_through = name == "PrepareStmt" or (name == "ExplainStmt" and _explain_analyze(stmt))
        if looks_through and stmt.query is not None:
            # PREPARE and EXPLAIN ANALYZE are logged at the contained statement's level.
            level = _tag_and_level(stmt.query, version)[1]
        elif name == "SelectStmt" and stmt.intoClause is not None:
            # Raw tag SELECT, but it executes as CreateTableAsStmt: TG_TAG is SELECT INTO.
            return "SELECT INTO", LogLevel.DDL
        elif name == "CopyStmt" and stmt.is_from:
            level = LogLevel.MOD
        return tag, level
    if name == "TransactionStmt":
        kind = str(stmt.kind.name).replace("TRANS_STMT_", "")
        tags = {
            "BEGIN": "BEGIN", "START": "START TRANSACTION", "COMMIT": "COMMIT",
            "ROLLBACK": "ROLLBACK", "ROLLBACK_TO": "ROLLBACK", "SAVEPOINT": "SAVEPOINT",
            "RELEASE": "RELEASE", "PREPARE": "PREPARE TRANSACTION",
            "COMMIT_PREPARED": "COMMIT PREPARED", "ROLLBACK_PREPARED": "ROLLBACK PREPARED",
        }  # fmt: skip
        return tags.get(kind, "???"), level
    if name == "ClosePortalStmt":
        return ("CLOSE CURSOR ALL" if stmt.portalname is None else "CLOSE CURSOR"), level
    if name == "FetchStmt":
        return ("MOVE" if stmt.ismove else "FETCH"), level
    if name == "VacuumStmt":
        return ("VACUUM" if stmt.is_vacuumcmd else "ANALYZE"), level
    if name == "VariableSetStmt":
        reset = stmt.kind in (VariableSetKind.VAR_RESET, VariableSetKind.VAR_RESET_ALL)
        return ("RESET" if reset else "SET"), level
    if name == "DiscardStmt":
        target = str(stmt.target.name).replace("DISCARD_", "")
        return f"DISCARD {target}", level
    if name == "DeallocateStmt":
        isall = getattr(stmt, "isall", False) or stmt.name is None
        return ("DEALLOCATE ALL" if isall else "DEALLOCATE"), level
    if name == "DropStmt":
        word = _objtype_word(stmt.removeType)
        return ("???" if word == "???" else f"DROP {word}"), level
    if name == "RenameStmt":
        objtype = (
            stmt.relationType if stmt.renameType == ObjectType.OBJECT_COLUMN else stmt.renameType
        )
        return _alter_tag(objtype), level
    if name in ("AlterObjectDependsStmt", "AlterObjectSchemaStmt", "AlterOwnerStmt"):
        return _alter_tag(stmt.objectType), level
    if name in ("AlterTableStmt", "AlterTableMoveAllStmt"):
        return _alter_tag(stmt.objtype), level
    if name == "GrantStmt":
        return ("GRANT" if stmt.is_grant else "REVOKE"), level
    if name == "GrantRoleStmt":
        return ("GRANT ROLE" if stmt.is_grant else "REVOKE ROLE"), level
    if name == "DefineStmt":
        return f"CREATE {_objtype_word(stmt.kind)}", level
    if name == "AlterFunctionStmt":
        return _alter_tag(stmt.objtype), level
    if name == "CreateFunctionStmt":
        return ("CREATE PROCEDURE" if stmt.is_procedure else "CREATE FUNCTION"), level
    if name == "CreateTableAsStmt":
        if stmt.objtype == ObjectType.OBJECT_MATVIEW:
            return "CREATE MATERIALIZED VIEW", level
        return ("SELECT INTO" if stmt.is_select_into else "CREATE TABLE AS"), level
    return "???", level


def _statement_objtype(stmt: Any) -> Any:
    """The object type that ``EventTriggerSupportsObjectType()`` is asked about."""
    name = type(stmt).__name__
    if name == "GrantStmt" or name in ("CommentStmt", "SecLabelStmt"):
        return stmt.objtype
    if name == "DropStmt":
        return stmt.removeType
    if name == "RenameStmt":
        return stmt.renameType
    if name in ("AlterObjectDependsStmt", "AlterObjectSchemaStmt", "AlterOwnerStmt"):
        return stmt.objectType
    return None


def _unauditable_reason(stmt: Any, tag: str, version: int) -> str | None:
    """Why event triggers cannot see this schema change, or None when they can."""
    name = type(stmt).__name__
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
    objtype = _statement_objtype(stmt)
    if objtype in _SHARED_OBJECT_TYPES:
        return (
            f"{tag} on {_objtype_word(objtype).lower()} objects fires no event trigger "
            "(shared or event-trigger object)"
        )
    return None


def _event_trigger_change(stmt: Any, tag: str) -> EventTriggerChange | None:
    name = type(stmt).__name__
    if name == "CreateEventTrigStmt":
        return EventTriggerChange((stmt.trigname,), "create")
    if name == "AlterEventTrigStmt":
        action = {"D": "disable", "O": "enable", "R": "enable replica", "A": "enable always"}
        return EventTriggerChange((stmt.trigname,), action.get(str(stmt.tgenabled), "alter"))
    objtype = _statement_objtype(stmt)
    if objtype == ObjectType.OBJECT_EVENT_TRIGGER:
        if name == "DropStmt":
            return EventTriggerChange(tuple(_names(o) for o in stmt.objects or ()), "drop")
        if name == "RenameStmt":
            return EventTriggerChange((_names(stmt.object),), f"rename to {stmt.newname}")
        if name == "AlterOwnerStmt":
            owner = stmt.newowner.rolename if stmt.newowner else "?"
            return EventTriggerChange((_names(stmt.object),), f"owner to {owner}")
        return EventTriggerChange((_names(getattr(stmt, "object", None)),), tag.lower())
    return None


def _grants_superuser(stmt: Any) -> bool:
    name = type(stmt).__name__
    if name in ("CreateRoleStmt", "AlterRoleStmt"):
        for opt in stmt.options or ():
            if isinstance(opt, ast.DefElem) and opt.defname == "superuser":
                return opt.arg is None or bool(getattr(opt.arg, "boolval", True))
    if name == "GrantRoleStmt" and stmt.is_grant:
        return any(
            isinstance(r, ast.AccessPriv) and r.priv_name in POWERFUL_ROLES
            for r in stmt.granted_roles or ()
        )
    return False


def _settings(stmt: Any) -> tuple[SettingChange, ...]:
    name = type(stmt).__name__
    if name == "VariableSetStmt":
        return _set_changes(stmt, "session")
    if name == "AlterSystemStmt":
        return _set_changes(stmt.setstmt, "system")
    if name == "AlterRoleSetStmt":
        return _set_changes(stmt.setstmt, "role")
    if name == "AlterDatabaseSetStmt":
        return _set_changes(stmt.setstmt, "database")
    found: list[SettingChange] = []
    if name in ("AlterFunctionStmt", "CreateFunctionStmt"):
        for opt in (getattr(stmt, "actions", None) or ()) + (getattr(stmt, "options", None) or ()):
            if isinstance(opt, ast.DefElem) and opt.defname == "set":
                found.extend(_set_changes(opt.arg, "function"))
    found.extend(_set_config_calls(stmt))
    return tuple(found)


def classify_statement(stmt: Any, text: str, location: int, version: int) -> StatementClass:
    """Classify one parsed statement (a pglast node) of a query string."""
    tag, level = _tag_and_level(stmt, version)
    reason = _unauditable_reason(stmt, tag, version)
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
        node=type(stmt).__name__,
        command_tag=tag,
        log_level=level,
        fires_ddl_command_end=fires,
        may_fire_sql_drop=drops,
        may_fire_table_rewrite=fires and tag in rewrite_tags,
        unauditable_reason=reason if schema_change else None,
        event_trigger=_event_trigger_change(stmt, tag),
        settings=_settings(stmt),
        grants_superuser=_grants_superuser(stmt),
        objects=_objects(stmt),
        renames=_renames(stmt),
    )


# -- fallback for text pglast cannot parse ----------------------------------------

_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)
_FALLBACK_DDL = re.compile(
    r"^\s*(CREATE|ALTER|DROP|GRANT|REVOKE|COMMENT|SECURITY\s+LABEL|CLUSTER|REFRESH|IMPORT|"
    r"REASSIGN|TRUNCATE|REINDEX)\b|\bINTO\b",
    re.IGNORECASE,
)


def _fallback(query: str, error: str) -> QueryClassification:
    """Conservative keyword classification when the parser rejects the text.

    The server parsed whatever it logged as a statement, so a parse error here
    means a newer grammar or a damaged line: treat anything that may be DDL as
    DDL (a false positive is reported and explained; a false negative is lost).
    """
    text = _COMMENT.sub(" ", query)
    parts = [p for p in text.split(";") if p.strip()] or [text]
    statements = []
    for part in parts:
        m = _FALLBACK_DDL.search(part)
        first = part.split(None, 1)[0].upper() if part.split() else "???"
        tag = f"{first} (unparsed)"
        statements.append(
            StatementClass(
                text=part.strip(),
                location=max(0, query.find(part.strip())),
                node="Unparsed",
                command_tag=tag,
                log_level=LogLevel.DDL if m else LogLevel.ALL,
                fires_ddl_command_end=False,
                may_fire_sql_drop=False,
                may_fire_table_rewrite=False,
                unauditable_reason=None,
            )
        )
    return QueryClassification(query, tuple(statements), parse_error=error)


@lru_cache(maxsize=8192)
def classify(query: str, *, server_version_num: int = 150000) -> QueryClassification:
    """Split a query string into statements and classify each one.

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
    (SettingChange(name='log_statement', value='none', scope='session'),)
    >>> classify("SELECT 1").is_relevant
    False
    """
    try:
        raw = parse_sql(query)
    except ParseError as exc:
        return _fallback(query, str(exc))
    statements = []
    for rs in raw:
        start = rs.stmt_location or 0
        end = start + rs.stmt_len if rs.stmt_len else len(query)
        text = query[start:end].strip()
        statements.append(classify_statement(rs.stmt, text, start, server_version_num))
    return QueryClassification(query, tuple(statements))
