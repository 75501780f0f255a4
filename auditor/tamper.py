"""Tampering with the auditor itself, judged by the identity of what DDL touched.

A statement's text does not say which objects it changes: through the session's
search_path, ``CREATE OR REPLACE FUNCTION record_event() ...`` never names the
audit schema, and ``CREATE FUNCTION public.inet_client_addr() ...`` names no
auditor object at all, yet fakes the client address of every later audit row
once the audit function's search_path puts ``public`` first.  So DDL counts as
tampering when what it touched, resolved as follows, is the auditor's:

1. **By identity, from the audit rows.**  Each object of a row carries its
   ``classid``/``objid`` and ``object_identity`` as the server resolved them at
   the time; they are compared with the auditor's live objects
   (:class:`AuditorObjects`: OIDs of its schema, relations, functions, types,
   constraints, triggers, rules, policies and event triggers) and with the
   schema in the identity (an object since dropped and re-created has a new OID
   but the same identity).
2. **By name, for what only the log saw** (no row, or rows that carry no
   identity: GRANT and REVOKE): qualified names by their schema; an unqualified
   name when it is one of the auditor's object names and no other object in the
   database has that name (then the session's search_path can only have found
   the auditor's; otherwise the name is ambiguous and the live checks of
   ``auditor status`` are what remains).
3. **Shadowing.**  The audit function calls built-in functions and reads
   ``pg_locks`` unqualified; with its pinned ``search_path = pg_catalog,
   pg_temp`` nothing can shadow them.  Once that path is changed (live, or by an
   ``ALTER FUNCTION ... SET search_path`` in the window) or removed (the caller's
   path applies), an object created in a schema of that path under a name the
   audit function uses is tampering too.

Everything here is pure: the matcher gives it rows, text and the auditor's objects.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

from auditor.classify import Unreadable, parse_tree
from auditor.model import AuditObject

#: The audit function's search_path as install pins it.
PINNED_PATH = ("pg_catalog", "pg_temp")
#: Schemas that can never shadow pg_catalog (pg_temp is never searched for functions
#: or operators, and pg_catalog is first in the pinned path).
_SAFE_SCHEMAS = frozenset({"pg_catalog", "pg_temp", "pg_toast", "information_schema"})
#: The auditor's functions whose search_path decides what their unqualified names mean.
PATH_FUNCTIONS = frozenset({"record_event", "after_event"})
#: Object types whose name can shadow what the audit function uses unqualified.
_SHADOW_TYPES = frozenset(
    {"function", "aggregate", "procedure", "operator", "table", "view", "materialized view",
     "foreign table", "type", "domain", "sequence"}
)  # fmt: skip
#: Every search_path (the audit function's path is not pinned: the caller's applies).
ANY_SCHEMA = ("*",)


@dataclass(frozen=True)
class AuditorObjects:
    """The auditor's live objects in one database (``sql/capture_objects.sql``)."""

    schema: str
    #: (classid, objid) of every object of the install.
    oids: frozenset[tuple[int, int]] = frozenset()
    #: Unqualified names of those objects.
    names: frozenset[str] = frozenset()
    #: Names of ``names`` that objects outside the schema carry too.
    elsewhere: frozenset[str] = frozenset()
    #: The audit function's search_path; None when it has none pinned (the caller's applies).
    search_path: tuple[str, ...] | None = PINNED_PATH

    @classmethod
    def from_json(cls, schema: str, data: dict[str, Any] | None) -> AuditorObjects:
        """From the jsonb ``capture_objects.sql`` returns.

        >>> o = AuditorObjects.from_json("auditor", {"objects": [[1255, 16390, "record_event"]],
        ...     "elsewhere": None, "search_path": {"config": ["search_path=public, pg_catalog"]}})
        >>> (1255, 16390) in o.oids, sorted(o.names), o.search_path
        (True, ['record_event'], ('public', 'pg_catalog'))
        """
        data = data or {}
        objects = data.get("objects") or []
        function = data.get("search_path")
        path: tuple[str, ...] | None = PINNED_PATH  # no audit function: nothing to shadow
        if function is not None:
            path = None
            for item in function.get("config") or []:
                if isinstance(item, str) and item.startswith("search_path="):
                    path = split_path(item.split("=", 1)[1])
        return cls(
            schema,
            frozenset((int(c), int(o)) for c, o, _ in objects),
            frozenset(str(n) for _, _, n in objects),
            frozenset(str(n) for n in data.get("elsewhere") or []),
            path,
        )


def split_path(value: str) -> tuple[str, ...]:
    """The schemas of a ``search_path`` value, unquoted.

    >>> split_path('public, "$user", pg_catalog')
    ('public', '$user', 'pg_catalog')
    """
    return tuple(p.strip().strip('"') for p in value.split(",") if p.strip())


def shadow_schemas(paths: Iterable[tuple[str, ...] | None]) -> frozenset[str]:
    """Schemas whose objects could stand in for what the audit function uses unqualified.

    ``paths`` are the audit function's search paths (live, and set in the window);
    None (no path pinned) means any schema.

    >>> sorted(shadow_schemas([("pg_catalog", "pg_temp")]))
    []
    >>> sorted(shadow_schemas([("pg_catalog", "pg_temp"), ("public", "pg_catalog")]))
    ['public']
    >>> sorted(shadow_schemas([None]))
    ['*']
    """
    out: set[str] = set()
    for path in paths:
        if path is None:
            return frozenset(ANY_SCHEMA)
        out.update(s for s in path if s not in _SAFE_SCHEMAS)
    return frozenset(out)


@cache
def used_names(schema: str) -> frozenset[str]:
    """Every word of the audit function's (and its helper's) code, lower-cased.

    The functions it calls, the catalog views it reads (``pg_locks``) and the
    types it casts to are all among them; a few variable names and keywords are
    too, which costs nothing (they only matter once its search_path was changed).
    """
    from auditor.capture import render

    text = render("capture_install.sql", schema)
    words: set[str] = set()
    for name in PATH_FUNCTIONS:
        m = re.search(
            r"FUNCTION \"?"
            + re.escape(schema)
            + r"\"?\."
            + name
            + r"\(.*?\$auditor\$(.*?)\$auditor\$",
            text,
            re.S,
        )
        if m is not None:
            body = re.sub(r"'(?:[^']|'')*'", "", re.sub(r"--[^\n]*", "", m.group(1)))
            words.update(w.lower() for w in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", body))
    return frozenset(words)


def _in_schema(identity: str, schema: str) -> bool:
    """Whether an ``object_identity`` names an object of ``schema`` (or the schema).

    >>> [_in_schema(i, "auditor") for i in ("auditor", "auditor.events", "auditor.f(integer)",
    ...  "events_append_only on auditor.events", "public.auditor_x", "public.t",
    ...  "for role postgres in schema auditor on tables", "auditor.events.id")]
    [True, True, True, True, False, False, True, True]
    """
    return (
        identity == schema
        or identity.startswith(schema + ".")
        or f" on {schema}." in identity
        or f" in schema {schema} " in identity + " "
    )


def _local_name(o: AuditObject) -> str | None:
    """The unqualified name of a row's object (function names without their arguments).

    >>> _local_name(AuditObject("function", "public", "public.inet_client_addr()"))
    'inet_client_addr'
    >>> _local_name(AuditObject("operator", "public", "public.||(text,text)"))
    '||'
    """
    ident = o.object_identity or ""
    if o.schema_name and ident.startswith(o.schema_name + "."):
        ident = ident[len(o.schema_name) + 1 :]
    if "(" in ident:
        ident = ident.split("(", 1)[0]
    return ident.strip('"') or o.object_name


def object_target(objects: AuditorObjects, o: AuditObject, shadows: frozenset[str]) -> str | None:
    """What of the auditor a row's object is (or shadows), as a phrase; None when not.

    >>> aud = AuditorObjects("auditor", frozenset({(1255, 42)}), frozenset({"record_event"}))
    >>> object_target(aud, AuditObject("function", "public", "public.record_event()",
    ...     classid=1255, objid=42), frozenset())
    "function public.record_event() (the auditor's, by its OID)"
    >>> object_target(aud, AuditObject("table", "auditor", "auditor.events"), frozenset())
    'table auditor.events'
    >>> object_target(aud, AuditObject("table", "public", "public.events"), frozenset())
    >>> object_target(aud, AuditObject("function", "public", "public.inet_client_addr()"),
    ...     frozenset({"public"}))  # doctest: +ELLIPSIS
    'function public.inet_client_addr(), which shadows ...'
    """
    kind = o.object_type or "object"
    ident = o.object_identity or o.object_name or "?"
    ours = o.schema_name == objects.schema or (
        o.object_identity is not None and _in_schema(o.object_identity, objects.schema)
    )
    if ours:
        return f"{kind} {ident}"
    if o.classid is not None and o.objid is not None and (o.classid, o.objid) in objects.oids:
        return f"{kind} {ident} (the auditor's, by its OID)"
    if shadows and kind.lower() in _SHADOW_TYPES:
        schema = o.schema_name or ""
        name = _local_name(o) or ""
        on_path = schema not in _SAFE_SCHEMAS and ("*" in shadows or schema in shadows)
        if on_path and (kind.lower() == "operator" or name.lower() in used_names(objects.schema)):
            return (
                f"{kind} {ident}, which shadows the built-in {name} that the audit "
                f"function uses, because {objects.schema}.record_event() no longer "
                "runs with search_path = pg_catalog, pg_temp"
            )
    return None


def rows_target(
    objects: AuditorObjects, rows_objects: Iterable[AuditObject], shadows: frozenset[str]
) -> str | None:
    """The first auditor object among a statement's rows' objects, as a phrase."""
    for o in rows_objects:
        found = object_target(objects, o, shadows)
        if found is not None:
            return found
    return None


def identified(rows_objects: Iterable[AuditObject]) -> list[AuditObject]:
    """The objects the server identified (GRANT/REVOKE rows carry no identity)."""
    return [o for o in rows_objects if o.object_identity or o.objid is not None]


def names_target(
    objects: AuditorObjects, names: Sequence[str], shadows: frozenset[str]
) -> str | None:
    """The first auditor object among the names a statement's text mentions.

    >>> aud = AuditorObjects("auditor", names=frozenset({"record_event", "events"}),
    ...                      elsewhere=frozenset({"events"}))
    >>> names_target(aud, ["auditor.events"], frozenset())
    'auditor.events'
    >>> names_target(aud, ["record_event"], frozenset())  # doctest: +ELLIPSIS
    'record_event (unqualified; no other object in the database has that name)'
    >>> names_target(aud, ["events", "public.t"], frozenset()) is None  # ambiguous
    True
    >>> names_target(aud, ["public.inet_client_addr"], frozenset({"public"}))  # doctest: +ELLIPSIS
    'public.inet_client_addr, which shadows ...'
    """
    schema = objects.schema
    for n in names:
        if n == schema or n.startswith(schema + "."):
            return n
        if "." not in n and n in objects.names and n not in objects.elsewhere:
            return f"{n} (unqualified; no other object in the database has that name)"
        if shadows and "." in n:
            where, local = n.rsplit(".", 1)
            where = where.rsplit(".", 1)[-1]
            if (
                where not in _SAFE_SCHEMAS
                and ("*" in shadows or where in shadows)
                and local.lower() in used_names(schema)
            ):
                return (
                    f"{n}, which shadows the built-in {local} that the audit function uses, "
                    f"because {schema}.record_event() no longer runs with search_path = "
                    "pg_catalog, pg_temp"
                )
    return None


#: The path of a function reset by ``ALTER FUNCTION ... RESET search_path / RESET ALL``.
RESET = None


def path_changes(text: str) -> list[tuple[str, tuple[str, ...] | None]]:
    """``(function name, new search_path or None for a reset)`` of ALTER/CREATE FUNCTION.

    Only functions named like the auditor's (:data:`PATH_FUNCTIONS`), qualified or
    not; a CREATE OR REPLACE without a search_path clause counts as a reset.

    >>> path_changes("ALTER FUNCTION auditor.record_event() SET search_path = public, pg_catalog")
    [('auditor.record_event', ('public', 'pg_catalog'))]
    >>> path_changes("ALTER FUNCTION record_event() RESET ALL")
    [('record_event', None)]
    >>> path_changes("ALTER FUNCTION other() SET search_path = public")
    []
    """
    low = text.lower()
    if "function" not in low or not any(f in low for f in PATH_FUNCTIONS):
        return []
    try:
        tree = parse_tree(text)
    except Unreadable:
        return []
    out: list[tuple[str, tuple[str, ...] | None]] = []
    for raw in tree.get("stmts", ()):
        stmt = raw.get("stmt") or {}
        if "AlterFunctionStmt" in stmt:
            node = stmt["AlterFunctionStmt"]
            name = _qualified((node.get("func") or {}).get("objname"))
            options = node.get("actions") or []
            create = False
        elif "CreateFunctionStmt" in stmt:
            node = stmt["CreateFunctionStmt"]
            name = _qualified(node.get("funcname"))
            options = node.get("options") or []
            create = True
        else:
            continue
        if name.rsplit(".", 1)[-1] not in PATH_FUNCTIONS:
            continue
        found = False
        for opt in options:
            d = opt.get("DefElem") or {}
            var = (d.get("arg") or {}).get("VariableSetStmt") if d.get("defname") == "set" else None
            if var is None:
                continue
            if var.get("kind") == "VAR_RESET_ALL" or (
                var.get("name") == "search_path" and var.get("kind") != "VAR_SET_VALUE"
            ):
                out.append((name, RESET))
                found = True
            elif var.get("name") == "search_path":
                values = [
                    str(((a.get("A_Const") or {}).get("sval") or {}).get("sval", ""))
                    for a in var.get("args") or []
                ]
                out.append((name, tuple(values)))
                found = True
        if create and not found:
            out.append((name, RESET))
    return out


def _qualified(parts: Any) -> str:
    return ".".join(
        str((p.get("String") or {}).get("sval", "")) for p in parts or [] if isinstance(p, dict)
    )


__all__ = [
    "AuditorObjects",
    "identified",
    "names_target",
    "object_target",
    "path_changes",
    "rows_target",
    "shadow_schemas",
    "split_path",
    "used_names",
]
