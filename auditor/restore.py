"""A restore of a dump of an audited database, and statements on the auditor judged by effect.

``pg_dump`` dumps the audit schema with everything else, so restoring a dump
re-issues statements on the auditor's own objects.  Into a database created from
``template1`` (where ``install --all-databases`` put the auditor) most of them fail
(the objects exist: FAILED_DDL) and some succeed without changing anything:
``ALTER TABLE <schema>.events OWNER TO postgres``, ``COMMENT ON ...`` with install's
own text, ``ALTER EVENT TRIGGER <schema>_ddl_command_end ENABLE ALWAYS``, the
ACLs install gives.  Into a database without the auditor the dump creates a copy of
it, rows and install history included.  Then ``SELECT setval(...)`` sets each
sequence of the schema to the dumped database's value.

Text does not tell such a statement from tampering; its effect does.  A statement
**restates the installed state** when the value it sets is the one install gives
(checked against the packaged SQL, parsed with PostgreSQL's parser: comment texts,
function bodies and settings, table columns, triggers, constraints, event triggers,
the grants install makes) and the live auditor is in that state (``auditor status``
finds nothing weakened in that part: :class:`Installed`).  An owner is restated
when it is the superuser that owns every object of the install now.  Anything else
(an owner that is not that superuser, ``DISABLE``, another function body, a
``search_path``, a grant install never makes) is not, and stays tampering.

This module also recognises what a restore leaves besides statements: an auditor a
restore created (:func:`restored_auditors`), the traces of a restore that explain
a sequence set back or forward (:func:`restore_traces`).  Everything here is pure.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import cache
from typing import Any

import orjson
from pglast.parser import ParseError, parse_sql_json

from auditor.model import LogRecord, MessageKind

#: Privileges install never leaves an owner of an auditor table (append-only tables).
_WRITE = frozenset({"update", "delete", "truncate"})
#: pglast's TypeName names for the types install writes, as pg_dump prints them.
_TYPE_ALIASES = {"bigserial": "int8", "serial": "int4", "serial8": "int8", "serial4": "int4",
                 "bigint": "int8", "integer": "int4", "int": "int4", "smallint": "int2",
                 "boolean": "bool", "double precision": "float8"}  # fmt: skip
#: A constraint as install creates it: kind, key columns, referenced table and columns.
Shape = tuple[str, tuple[str, ...], str | None, tuple[str, ...]]


# -- the installed state -------------------------------------------------------------------


@dataclass(frozen=True)
class Installed:
    """The live auditor of one database, as ``auditor status`` saw it.

    ``owner`` is the superuser that owns every object of the install (None when
    they have different owners or one is not a superuser); the ``*_ok`` flags say
    that status found nothing weakened in that part.
    """

    schema: str
    installed: bool = False
    owner: str | None = None
    triggers_ok: bool = False
    functions_ok: bool = False
    protections_ok: bool = False
    mail_mode: str | None = None
    reader_role: str | None = None
    notify_role: str | None = None


# -- what install creates, from the packaged SQL ------------------------------------------


@dataclass(frozen=True)
class Package:
    """What ``auditor install`` creates in a schema, parsed from its SQL files."""

    schema: str
    comments: Mapping[tuple[str, str], str]
    #: table -> its columns (name, base type name, array)
    tables: Mapping[str, tuple[tuple[str, str, bool], ...]]
    serials: frozenset[tuple[str, str]]
    indexes: frozenset[tuple[str, str]]
    #: (table, constraint name) -> (kind, key columns, referenced table, referenced columns)
    constraints: Mapping[tuple[str, str], Shape]
    #: (table, trigger name) -> the CREATE TRIGGER's parse tree (locations removed)
    table_triggers: Mapping[tuple[str, str], str]
    #: function name -> the (md5 of body, settings, SECURITY DEFINER) install may write
    functions: Mapping[str, frozenset[tuple[str, tuple[str, ...], bool]]]
    #: event trigger name -> its event
    event_triggers: Mapping[str, str]
    #: "reader" / "notify" -> (object kind, object, privilege, column or None) install grants
    role_grants: Mapping[str, frozenset[tuple[str, str, str, str | None]]]

    def serial_sequence(self, name: str) -> tuple[str, str] | None:
        """The (table, column) whose serial ``name`` is (PostgreSQL's naming).

        >>> package("auditor").serial_sequence("events_id_seq")
        ('events', 'id')
        >>> package("auditor").serial_sequence("events") is None
        True
        """
        for table, column in self.serials:
            if name == f"{table}_{column}_seq":
                return table, column
        return None


def _tree(text: str) -> list[dict[str, Any]]:
    """The statements of ``text`` as pglast's JSON parse trees (empty when unparsable)."""
    try:
        return [s.get("stmt") or {} for s in orjson.loads(parse_sql_json(text)).get("stmts", ())]
    except ParseError:
        return []


def _strip(node: Any) -> Any:
    """A parse tree without its ``location`` fields (they differ between texts)."""
    if isinstance(node, dict):
        return {k: _strip(v) for k, v in node.items() if k not in ("location", "arg_location")}
    if isinstance(node, list):
        return [_strip(v) for v in node]
    return node


def _names(items: Any) -> tuple[str, ...]:
    """``[{"String": {"sval": "a"}}, ...]`` (or a List of them) as ``("a", ...)``."""
    if isinstance(items, dict) and "List" in items:
        items = items["List"].get("items")
    if isinstance(items, dict) and "String" in items:
        items = [items]
    out = []
    for it in items or ():
        if isinstance(it, dict) and "String" in it:
            out.append(str(it["String"].get("sval", "")))
        else:
            return ()
    return tuple(out)


def _type(tn: Mapping[str, Any]) -> tuple[str, bool]:
    """A TypeName as (base type name, array): ``bigserial`` and ``bigint`` alike ``int8``.

    >>> _type({"names": [{"String": {"sval": "pg_catalog"}}, {"String": {"sval": "int8"}}]})
    ('int8', False)
    >>> _type({"names": [{"String": {"sval": "text"}}], "arrayBounds": [{"Integer": {}}]})
    ('text', True)
    """
    names = _names(tn.get("names"))
    base = names[-1] if names else "?"
    return _TYPE_ALIASES.get(base, base), bool(tn.get("arrayBounds"))


def _config(options: Iterable[Mapping[str, Any]]) -> tuple[str, ...]:
    """The SET clauses of a CREATE FUNCTION as ``pg_proc.proconfig`` holds them."""
    out = []
    for opt in options:
        d = opt.get("DefElem") or {}
        if d.get("defname") != "set":
            continue
        var = (d.get("arg") or {}).get("VariableSetStmt") or {}
        values = []
        for a in var.get("args") or ():
            const = a.get("A_Const") or {}
            value = next(iter(const.values()), None) if const else None
            if isinstance(value, dict):
                value = next(iter(value.values()), None)
            values.append(str(value))
        out.append(f"{var.get('name')}={', '.join(values)}")
    return tuple(sorted(out))


def _function(node: Mapping[str, Any]) -> tuple[str, tuple[str, ...], bool] | None:
    """(md5 of the body, settings, SECURITY DEFINER) of a CreateFunctionStmt."""
    body: str | None = None
    definer = False
    options = node.get("options") or []
    for opt in options:
        d = opt.get("DefElem") or {}
        if d.get("defname") == "as":
            parts = ((d.get("arg") or {}).get("List") or {}).get("items") or []
            if len(parts) != 1:
                return None  # C functions: AS 'file', 'symbol'
            body = str((parts[0].get("String") or {}).get("sval", ""))
        elif d.get("defname") == "security":
            definer = bool(((d.get("arg") or {}).get("Boolean") or {}).get("boolval"))
    if body is None:
        return None
    return hashlib.md5(body.encode("utf-8")).hexdigest(), _config(options), definer


def _constraint_key(
    c: Mapping[str, Any], table: str, column: str | None
) -> tuple[str, Shape] | None:
    """(name, (kind, keys, referenced table, referenced keys)) as PostgreSQL names it."""
    kind = str(c.get("contype", ""))
    keys = _names(c.get("keys")) or _names(c.get("fk_attrs")) or ((column,) if column else ())
    ref = c.get("pktable") or {}
    ref_table = str(ref["relname"]) if ref else None
    ref_keys = _names(c.get("pk_attrs"))
    suffix = {"CONSTR_PRIMARY": "pkey", "CONSTR_UNIQUE": "key", "CONSTR_FOREIGN": "fkey",
              "CONSTR_CHECK": "check"}.get(kind)  # fmt: skip
    if suffix is None:
        return None
    name = c.get("conname") or (
        f"{table}_pkey" if suffix == "pkey" else f"{table}_{'_'.join(keys) or column}_{suffix}"
    )
    return str(name), (kind, keys, ref_table, ref_keys)


@cache
def package(schema: str) -> Package:
    """What install creates in ``schema``, parsed from the packaged SQL (every mail mode).

    >>> p = package("auditor")
    >>> p.comments[("OBJECT_TABLE", "auditor.events")][:8], ("events", "id") in p.serials
    ('auditor:', True)
    >>> p.constraints[("events", "events_pkey")][:2], p.event_triggers["auditor_sql_drop"]
    (('CONSTR_PRIMARY', ('id',)), 'sql_drop')
    >>> sorted(p.role_grants["reader"])[0]
    ('OBJECT_FUNCTION', 'auditor.canon_text', 'execute', None)
    """
    from psycopg import sql

    from auditor import capture, outbox

    texts = [capture.render(f, schema) for f in capture.INSTALL_FILES]
    texts += [capture.render("capture_event_triggers.sql", schema)]
    texts += [outbox.render("mail_install.sql", schema), outbox.render(
        "mail_plpython_trigger.sql", schema), outbox.plpython_sql(schema)]  # fmt: skip
    comments: dict[tuple[str, str], str] = {}
    tables: dict[str, list[tuple[str, str, bool]]] = {}
    serials: set[tuple[str, str]] = set()
    indexes: set[tuple[str, str]] = set()
    constraints: dict[tuple[str, str], Shape] = {}
    triggers: dict[tuple[str, str], str] = {}
    functions: dict[str, set[tuple[str, tuple[str, ...], bool]]] = {}
    events: dict[str, str] = {}
    for text in texts:
        for stmt in _tree(text):
            if "CommentStmt" in stmt:
                n = stmt["CommentStmt"]
                comments[(str(n["objtype"]), ".".join(_names(n.get("object"))))] = str(
                    n.get("comment")
                )
            elif "CreateStmt" in stmt:
                n = stmt["CreateStmt"]
                table = str(n["relation"]["relname"])
                cols = tables.setdefault(table, [])
                for elt in n.get("tableElts") or ():
                    if "ColumnDef" in elt:
                        col = elt["ColumnDef"]
                        base, array = _type(col.get("typeName") or {})
                        cols.append((str(col["colname"]), base, array))
                        first = _names((col.get("typeName") or {}).get("names"))
                        if first and first[-1] in ("bigserial", "serial", "serial8", "serial4"):
                            serials.add((table, str(col["colname"])))
                        for c in col.get("constraints") or ():
                            found = _constraint_key(
                                c.get("Constraint") or {}, table, col["colname"]
                            )
                            if found is not None:
                                constraints[(table, found[0])] = found[1]
                    elif "Constraint" in elt:
                        found = _constraint_key(elt["Constraint"], table, None)
                        if found is not None:
                            constraints[(table, found[0])] = found[1]
            elif "AlterTableStmt" in stmt:
                n = stmt["AlterTableStmt"]
                table = str(n["relation"]["relname"])
                for cmd in n.get("cmds") or ():
                    c = cmd.get("AlterTableCmd") or {}
                    if c.get("subtype") == "AT_AddColumn":
                        col = (c.get("def") or {}).get("ColumnDef") or {}
                        base, array = _type(col.get("typeName") or {})
                        tables.setdefault(table, []).append((str(col["colname"]), base, array))
            elif "IndexStmt" in stmt:
                n = stmt["IndexStmt"]
                indexes.add((str(n["relation"]["relname"]), str(n.get("idxname"))))
            elif "CreateTrigStmt" in stmt:
                n = stmt["CreateTrigStmt"]
                triggers[(str(n["relation"]["relname"]), str(n["trigname"]))] = _canonical_trigger(
                    n
                )
            elif "CreateFunctionStmt" in stmt:
                n = stmt["CreateFunctionStmt"]
                shape = _function(n)
                if shape is not None:
                    functions.setdefault(_names(n.get("funcname"))[-1], set()).add(shape)
            elif "CreateEventTrigStmt" in stmt:
                n = stmt["CreateEventTrigStmt"]
                events[str(n["trigname"])] = str(n["eventname"])
    role = sql.Identifier("auditor_role")
    grants = {
        "reader": _grants(
            [
                capture.render("capture_grant_reader.sql", schema, reader_role=role),
                outbox.render("mail_grant_reader.sql", schema, reader_role=role),
            ]
        ),
        "notify": _grants([outbox.render("mail_grant_notify.sql", schema, notify_role=role)]),
    }
    return Package(
        schema,
        comments,
        {t: tuple(c) for t, c in tables.items()},
        frozenset(serials),
        frozenset(indexes),
        constraints,
        triggers,
        {f: frozenset(s) for f, s in functions.items()},
        events,
        grants,
    )


def _canonical_trigger(node: Mapping[str, Any]) -> str:
    """A CREATE TRIGGER's tree as text, without what two spellings of it may differ in."""
    n = dict(_strip(node))
    n.pop("replace", None)
    n.pop("relation", None)  # compared by name
    return orjson.dumps(n, option=orjson.OPT_SORT_KEYS).decode()


def _grants(texts: Sequence[str]) -> frozenset[tuple[str, str, str, str | None]]:
    out: set[tuple[str, str, str, str | None]] = set()
    for text in texts:
        for stmt in _tree(text):
            n = stmt.get("GrantStmt")
            if n is None or not n.get("is_grant"):
                continue
            for obj in _objects(n):
                for priv, cols in _privileges(n):
                    for col in cols or (None,):
                        out.add((str(n["objtype"]), obj, priv, col))
    return frozenset(out)


def _objects(n: Mapping[str, Any]) -> list[str]:
    """The qualified names a GrantStmt names (functions without their arguments)."""
    out = []
    for o in n.get("objects") or ():
        if "RangeVar" in o:
            rv = o["RangeVar"]
            out.append(f"{rv.get('schemaname', '')}.{rv['relname']}")
        elif "ObjectWithArgs" in o:
            out.append(".".join(_names(o["ObjectWithArgs"].get("objname"))))
        elif "String" in o:
            out.append(str(o["String"].get("sval")))
        else:
            out.append("?")
    return out


def _privileges(n: Mapping[str, Any]) -> list[tuple[str, tuple[str, ...]]]:
    """(privilege, columns) of a GrantStmt; ``[("all", ())]`` for ALL PRIVILEGES."""
    privs = n.get("privileges")
    if not privs:
        return [("all", ())]
    return [
        (str(p["AccessPriv"].get("priv_name") or "all"), _names(p["AccessPriv"].get("cols")))
        for p in privs
        if "AccessPriv" in p
    ]


# -- restated: the judgement of one statement ---------------------------------------------


def restated(text: str, live: Installed) -> str | None:
    """What of the installed state ``text`` (one statement) sets again, or None.

    None means the statement changes the auditor (or is nothing this module can
    judge): it stays tampering.  A phrase means every effect it has is one install
    gives, and the live auditor is in that state.

    >>> live = Installed("auditor", True, "postgres", True, True, True)
    >>> restated("ALTER TABLE auditor.events OWNER TO postgres", live)
    'owner postgres (the superuser that owns the whole install)'
    >>> restated("ALTER TABLE auditor.events OWNER TO mallory", live) is None
    True
    >>> restated("ALTER EVENT TRIGGER auditor_ddl_command_end ENABLE ALWAYS", live)
    'ENABLE ALWAYS, as install leaves it'
    >>> restated("ALTER EVENT TRIGGER auditor_ddl_command_end DISABLE", live) is None
    True
    >>> restated("GRANT SELECT,INSERT,REFERENCES,TRIGGER ON TABLE auditor.events TO postgres", live)
    'privileges its owner has after install'
    >>> restated("GRANT DELETE ON TABLE auditor.events TO postgres", live) is None
    True
    """
    if not live.installed:
        return None
    stmts = _tree(text)
    if len(stmts) != 1:
        return None
    ((kind, node),) = stmts[0].items()
    judge = _JUDGES.get(kind)
    return judge(node, live, package(live.schema)) if judge is not None else None


def _ours(schema_name: Any, live: Installed) -> bool:
    return bool(schema_name == live.schema)


def _owner(spec: Mapping[str, Any] | None, live: Installed) -> str | None:
    """``OWNER TO role``: restated when the role owns the whole install and is a superuser."""
    if not spec or spec.get("roletype") != "ROLESPEC_CSTRING" or live.owner is None:
        return None
    if spec.get("rolename") != live.owner:
        return None
    return f"owner {live.owner} (the superuser that owns the whole install)"


def _alter_owner(n: Mapping[str, Any], live: Installed, pkg: Package) -> str | None:
    kind = n.get("objectType")
    obj = n.get("object")
    if kind == "OBJECT_SCHEMA":
        ok = _names(obj) == (live.schema,) and live.protections_ok
    elif kind in ("OBJECT_FUNCTION", "OBJECT_PROCEDURE"):
        name = _names(((obj or {}).get("ObjectWithArgs") or {}).get("objname"))
        ok = len(name) == 2 and name[0] == live.schema and name[1] in pkg.functions
        ok = ok and live.functions_ok
    elif kind == "OBJECT_EVENT_TRIGGER":
        ok = _names(obj)[:1] != () and _names(obj)[0] in pkg.event_triggers and live.triggers_ok
    else:
        return None
    return _owner(n.get("newowner"), live) if ok else None


def _relation(rv: Mapping[str, Any] | None, live: Installed, pkg: Package) -> str | None:
    """The auditor table or serial sequence a RangeVar names (schema-qualified only)."""
    if not rv or not _ours(rv.get("schemaname"), live):
        return None
    name = str(rv.get("relname"))
    if name in pkg.tables or pkg.serial_sequence(name) is not None:
        return name
    return None


def _nextval_of(expr: Mapping[str, Any] | None) -> str | None:
    """The sequence name of ``nextval('x'::regclass)`` (or ``nextval('x')``)."""
    call = (expr or {}).get("FuncCall") or {}
    if _names(call.get("funcname"))[-1:] != ("nextval",) or len(call.get("args") or ()) != 1:
        return None
    arg = call["args"][0]
    if "TypeCast" in arg:
        if _names(arg["TypeCast"].get("typeName", {}).get("names"))[-1:] != ("regclass",):
            return None
        arg = arg["TypeCast"].get("arg") or {}
    value = ((arg.get("A_Const") or {}).get("sval") or {}).get("sval")
    return str(value) if value is not None else None


def _alter_table(n: Mapping[str, Any], live: Installed, pkg: Package) -> str | None:
    rel = _relation(n.get("relation"), live, pkg)
    if rel is None:
        return None
    said: list[str] = []
    for cmd in n.get("cmds") or ():
        c = cmd.get("AlterTableCmd") or {}
        sub = c.get("subtype")
        if sub == "AT_ChangeOwner":
            found = _owner(c.get("newowner"), live) if live.protections_ok else None
        elif sub == "AT_ColumnDefault":
            column = str(c.get("name"))
            seq = _nextval_of(c.get("def"))
            ok = (rel, column) in pkg.serials and seq == f"{live.schema}.{rel}_{column}_seq"
            found = f"the default of {rel}.{column} install gives (its serial)" if ok else None
        elif sub == "AT_EnableAlwaysTrig":
            ok = (rel, str(c.get("name"))) in pkg.table_triggers and live.protections_ok
            found = "ENABLE ALWAYS of its trigger, as install leaves it" if ok else None
        elif sub == "AT_AddConstraint":
            found = _add_constraint(rel, (c.get("def") or {}).get("Constraint") or {}, live, pkg)
        else:
            found = None
        if found is None:
            return None
        said.append(found)
    return "; ".join(dict.fromkeys(said)) or None


def _add_constraint(table: str, c: Mapping[str, Any], live: Installed, pkg: Package) -> str | None:
    found = _constraint_key(c, table, None)
    if found is None or found[1][0] == "CONSTR_CHECK" or not live.protections_ok:
        return None
    name, shape = found
    want = pkg.constraints.get((table, name))
    ref = (c.get("pktable") or {}).get("schemaname")
    if want != shape or (shape[2] is not None and not _ours(ref, live)):
        return None
    return f"constraint {name}, as install creates it"


def _alter_seq(n: Mapping[str, Any], live: Installed, pkg: Package) -> str | None:
    rv = n.get("sequence") or {}
    serial = (
        pkg.serial_sequence(str(rv.get("relname"))) if _ours(rv.get("schemaname"), live) else None
    )
    options = n.get("options") or []
    if serial is None or len(options) != 1:
        return None
    d = options[0].get("DefElem") or {}
    if d.get("defname") != "owned_by" or _names(d.get("arg")) != (live.schema, *serial):
        return None
    return f"owned by {serial[0]}.{serial[1]}, as its serial is"


def _comment(n: Mapping[str, Any], live: Installed, pkg: Package) -> str | None:
    key = (str(n.get("objtype")), ".".join(_names(n.get("object"))))
    want = pkg.comments.get(key)
    if want is None or n.get("comment") != want:
        return None
    return "the comment install writes"


def _grant(n: Mapping[str, Any], live: Installed, pkg: Package) -> str | None:
    if n.get("targtype") != "ACL_TARGET_OBJECT" or n.get("grant_option"):
        return None
    if not (live.protections_ok and live.functions_ok):
        return None
    kind = str(n.get("objtype"))
    objects = _objects(n)
    for obj in objects:
        local = obj.split(".", 1)[1] if "." in obj else None
        if kind == "OBJECT_SCHEMA":
            if obj != live.schema:
                return None
        elif not obj.startswith(live.schema + ".") or not (
            local in pkg.tables or local in pkg.functions or pkg.serial_sequence(local or "")
        ):
            return None
    grantees = [g.get("RoleSpec") or {} for g in n.get("grantees") or ()]
    privileges = [
        ("execute" if p == "all" and kind == "OBJECT_FUNCTION" else p, cols)
        for p, cols in _privileges(n)
    ]
    roles = {"reader": live.reader_role, "notify": live.notify_role}
    for g in grantees:
        public = g.get("roletype") == "ROLESPEC_PUBLIC"
        name = g.get("rolename") if g.get("roletype") == "ROLESPEC_CSTRING" else None
        if not n.get("is_grant"):
            # Install gives PUBLIC nothing; a superuser's own privileges decide nothing.
            if not (public or (name is not None and name == live.owner)):
                return None
        elif name is not None and name == live.owner:
            if any(p in _WRITE or p == "all" for p, _ in privileges):
                return None
        else:
            given = [pkg.role_grants[k] for k, role in roles.items() if role and role == name]
            wanted = {
                (kind, obj, p, col)
                for obj in objects
                for p, cols in privileges
                for col in cols or (None,)
            }
            if not any(wanted <= g for g in given):
                return None
    if not n.get("is_grant"):
        return "privileges install leaves (PUBLIC gets nothing; a superuser owner needs none)"
    if all(g.get("rolename") == live.owner for g in grantees):
        return "privileges its owner has after install"
    return "privileges install grants"


def _alter_event_trigger(n: Mapping[str, Any], live: Installed, pkg: Package) -> str | None:
    if n.get("trigname") in pkg.event_triggers and n.get("tgenabled") == "A" and live.triggers_ok:
        return "ENABLE ALWAYS, as install leaves it"
    return None


def _create_event_trigger(n: Mapping[str, Any], live: Installed, pkg: Package) -> str | None:
    name = n.get("trigname")
    if (
        name in pkg.event_triggers
        and n.get("eventname") == pkg.event_triggers[str(name)]
        and _names(n.get("funcname")) == (live.schema, "record_event")
        and not n.get("whenclause")
        and live.triggers_ok
        and live.functions_ok
    ):
        return f"the event trigger {name} install creates, on {live.schema}.record_event()"
    return None


def _create_schema(n: Mapping[str, Any], live: Installed, pkg: Package) -> str | None:
    if n.get("schemaname") != live.schema or n.get("schemaElts") or not live.protections_ok:
        return None
    if n.get("authrole") and _owner(n["authrole"], live) is None:
        return None
    return "the schema install creates"


def _create_table(n: Mapping[str, Any], live: Installed, pkg: Package) -> str | None:
    rv = n.get("relation") or {}
    name = str(rv.get("relname"))
    if not _ours(rv.get("schemaname"), live) or name not in pkg.tables:
        return None
    if rv.get("relpersistence", "p") != "p" or n.get("inhRelations") or n.get("partspec"):
        return None
    if n.get("ofTypename") or n.get("options") or not live.protections_ok:
        return None
    columns = []
    for elt in n.get("tableElts") or ():
        if "ColumnDef" in elt:
            col = elt["ColumnDef"]
            columns.append((str(col["colname"]), *_type(col.get("typeName") or {})))
        elif "Constraint" in elt:
            found = _constraint_key(elt["Constraint"], name, None)
            if found is None or (name, found[0]) not in pkg.constraints:
                return None
    if tuple(columns) != pkg.tables[name]:
        return None
    return f"the table {name} install creates (same columns)"


def _create_seq(n: Mapping[str, Any], live: Installed, pkg: Package) -> str | None:
    rv = n.get("sequence") or {}
    if not _ours(rv.get("schemaname"), live) or pkg.serial_sequence(str(rv.get("relname"))) is None:
        return None
    for opt in n.get("options") or ():
        d = opt.get("DefElem") or {}
        value = (d.get("arg") or {}).get("Integer", {}).get("ival", 0 if "arg" in d else None)
        if d.get("defname") == "increment" and value != 1:
            return None
        if d.get("defname") == "cycle" and ((d.get("arg") or {}).get("Boolean") or {}).get(
            "boolval"
        ):
            return None
        if d.get("defname") not in ("start", "increment", "minvalue", "maxvalue", "cache",
                                    "cycle", "as"):  # fmt: skip
            return None
    return "the serial sequence install creates"


def _create_index(n: Mapping[str, Any], live: Installed, pkg: Package) -> str | None:
    rv = n.get("relation") or {}
    key = (str(rv.get("relname")), str(n.get("idxname")))
    if not _ours(rv.get("schemaname"), live) or key not in pkg.indexes or n.get("unique"):
        return None
    return f"the index {key[1]} install creates"


def _create_trigger(n: Mapping[str, Any], live: Installed, pkg: Package) -> str | None:
    rv = n.get("relation") or {}
    key = (str(rv.get("relname")), str(n.get("trigname")))
    if not _ours(rv.get("schemaname"), live) or not live.protections_ok:
        return None
    if pkg.table_triggers.get(key) != _canonical_trigger(n):
        return None
    return f"the trigger {key[1]} install creates"


def _create_function(n: Mapping[str, Any], live: Installed, pkg: Package) -> str | None:
    name = _names(n.get("funcname"))
    if len(name) != 2 or name[0] != live.schema or not live.functions_ok:
        return None
    shape = _function(n)
    if shape is None or shape not in pkg.functions.get(name[1], frozenset()):
        return None
    return f"the function {name[1]} install writes (same body and settings)"


_JUDGES = {
    "AlterOwnerStmt": _alter_owner,
    "AlterTableStmt": _alter_table,
    "AlterSeqStmt": _alter_seq,
    "CommentStmt": _comment,
    "GrantStmt": _grant,
    "AlterEventTrigStmt": _alter_event_trigger,
    "CreateEventTrigStmt": _create_event_trigger,
    "CreateSchemaStmt": _create_schema,
    "CreateStmt": _create_table,
    "CreateSeqStmt": _create_seq,
    "IndexStmt": _create_index,
    "CreateTrigStmt": _create_trigger,
    "CreateFunctionStmt": _create_function,
}


# -- what a restore leaves besides statements ------------------------------------------------


@dataclass(frozen=True)
class RestoredAuditor:
    """An auditor a restore of a dump created in a database that had none.

    The log shows its schema created (``CREATE SCHEMA <schema>`` succeeded, so it did
    not exist) and later its ``ddl_command_end`` trigger; until then no trigger fired
    there.  The install history and audit rows the dump brought are the dumped
    database's, not signs of an auditor here.
    """

    database: str
    schema_created: datetime
    triggers_created: datetime
    session_id: str | None = None


def restored_auditors(
    records: Sequence[LogRecord],
    schema: str,
    *,
    own_rows_before: Mapping[str, datetime] | None = None,
    first_row_database: Mapping[str, str | None] | None = None,
) -> dict[str, RestoredAuditor]:
    """Databases whose auditor a restore created in the window read, and when.

    Only when nothing in the log read shows an auditor there before its schema was
    created (no marker, no statement touching it), and no audit row of the table
    claims that database from before its triggers existed (``own_rows_before``: the
    earliest row read that names the database it is in; ``first_row_database``: the
    database the table's first row names).  A schema dropped and created again is
    therefore never taken for a restore into an empty database.
    """
    from auditor.capture import event_trigger_names

    trigger = event_trigger_names(schema)["ddl_command_end"]
    failed = {r.failed_statement for r in records if r.kind == MessageKind.ERROR}
    schema_at: dict[str, tuple[datetime, LogRecord]] = {}
    trigger_at: dict[str, datetime] = {}
    signs: dict[str, datetime] = {}
    timed = [r for r in records if r.time is not None and r.database is not None]
    for rec in sorted(timed, key=_time_of):
        db = rec.database
        if db is None or rec.time is None:
            continue
        if rec.kind == MessageKind.MARKER:
            signs.setdefault(db, rec.time)
            continue
        if rec.kind not in (MessageKind.STATEMENT, MessageKind.EXECUTE):
            continue
        text = rec.statement or ""
        if schema not in text:
            continue
        ok = rec.source not in failed
        for stmt in _tree(text) if len(text) < 100_000 else ():
            if (
                ok
                and "CreateSchemaStmt" in stmt
                and stmt["CreateSchemaStmt"].get("schemaname") == schema
            ):
                if db not in schema_at and db not in signs:
                    schema_at[db] = (rec.time, rec)
            elif (
                ok
                and "CreateEventTrigStmt" in stmt
                and stmt["CreateEventTrigStmt"].get("trigname") == trigger
            ):
                trigger_at.setdefault(db, rec.time)
        if db not in schema_at:
            signs.setdefault(db, rec.time)
    out: dict[str, RestoredAuditor] = {}
    for db, (t0, rec) in schema_at.items():
        t1 = trigger_at.get(db)
        if t1 is None or t1 < t0:
            continue
        own = (own_rows_before or {}).get(db)
        if own is not None and own < t1:
            continue
        if (first_row_database or {}).get(db) == db:
            continue
        if db in signs and signs[db] < t0:
            continue
        out[db] = RestoredAuditor(db, t0, t1, rec.session_id)
    return out


def _time_of(rec: LogRecord) -> datetime:
    assert rec.time is not None
    return rec.time


@dataclass(frozen=True)
class RestoreTraces:
    """When the log read shows a restore of a dump touching each database's audit table."""

    times: Mapping[str, tuple[datetime, ...]] = field(default_factory=dict)

    def before(self, database: str, t: datetime) -> datetime | None:
        """The first trace in ``database`` at or before ``t``."""
        found = [x for x in self.times.get(database, ()) if x <= t]
        return min(found) if found else None


def restore_traces(records: Iterable[LogRecord], schema: str) -> RestoreTraces:
    """Statements a dump of the audit table holds (its sequence named: ``CREATE SEQUENCE``,
    ``ALTER SEQUENCE ... OWNED BY``), and a ``COPY`` into it that failed, per database.

    They are what explains a sequence set back or forward (pg_dump's ``setval``, which
    ``log_statement = 'ddl'`` does not log) in the same database soon after.
    """
    seq = f"{schema}.events_id_seq"
    out: dict[str, list[datetime]] = {}
    for rec in records:
        if rec.time is None or rec.database is None:
            continue
        if rec.kind in (MessageKind.STATEMENT, MessageKind.EXECUTE):
            if seq in (rec.statement or ""):
                out.setdefault(rec.database, []).append(rec.time)
        elif (
            rec.kind == MessageKind.ERROR
            and (rec.context or "").startswith("COPY events")
            and '"events_pkey"' in rec.message
        ):
            out.setdefault(rec.database, []).append(rec.time)
    return RestoreTraces({db: tuple(sorted(ts)) for db, ts in out.items()})


__all__ = [
    "Installed",
    "Package",
    "RestoreTraces",
    "RestoredAuditor",
    "package",
    "restated",
    "restore_traces",
    "restored_auditors",
]
