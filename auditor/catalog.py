"""The catalog channel, a third witness: snapshots of the schema and what no channel explains.

A superuser can silence the log and the trigger at once (``SET log_statement =
'none'`` and a disabled event trigger), edit the catalog with DML (``UPDATE
pg_proc SET prosrc ...``) or change the schema in single-user mode.  What persists
is the catalog.  ``auditor install`` stores a first snapshot (the baseline,
``sql/catalog_install.sql`` says what one holds); each reconcile with a connection
takes another, compares it with the previous one (the state file's copy with
``--state``, the more trustworthy one since it lives outside the database; else
the latest in the audit schema), and asks both channels to explain every object
created, changed or dropped in between:

* an audit row of a transaction that committed between the two snapshots (exact:
  ``pg_visible_in_snapshot`` on its xid) naming the object, or an object it belongs
  to (a table's index, column, constraint, trigger, row type; an extension's
  members), by ``classid``/``objid``; or whose xid is the catalog row's ``xmin``
  (GRANT rows carry no object ids);
* a DDL statement in the logs read, in the interval, in that database (any
  database for roles, databases and tablespaces), naming the object or what it
  belongs to (``auditor.classify.statement_object_names``), whatever other finding it
  also is (UNLOGGED/UNREPORTED DDL still explain the change).

What neither explains is a SILENT_SCHEMA_CHANGE naming the object, the fields
that changed (old -> new), the interval and the catalog row's xmin: critical when
the logs read cover the whole interval, high when they do not (the explanation
may be in a log that was not read).  A catalog row of pg_proc, pg_event_trigger
or pg_authid rewritten with the same content (its xmin moved; only DDL writes
those) is reported the same way: a change undone before the next snapshot.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import re
import zlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import orjson
import psycopg
from psycopg import sql

from auditor.db import connect, sql_text
from auditor.findings import make_finding
from auditor.model import Finding, FindingClass, LogRecord, MessageKind, Severity

C = FindingClass

#: The catalogs a snapshot holds, by classid (the catalog's OID).
CATALOGS: dict[int, str] = {
    1259: "pg_class",
    1255: "pg_proc",
    2617: "pg_operator",
    1247: "pg_type",
    2606: "pg_constraint",
    2620: "pg_trigger",
    3466: "pg_event_trigger",
    2615: "pg_namespace",
    3079: "pg_extension",
    3256: "pg_policy",
    2618: "pg_rewrite",
    1260: "pg_authid",
    1261: "pg_auth_members",
    1262: "pg_database",
    1213: "pg_tablespace",
    2964: "pg_db_role_setting",
    6243: "pg_parameter_acl",
    6104: "pg_publication",
    6106: "pg_publication_rel",
    6237: "pg_publication_namespace",
    6100: "pg_subscription",
    826: "pg_default_acl",
    2328: "pg_foreign_data_wrapper",
    1417: "pg_foreign_server",
    1418: "pg_user_mapping",
    2605: "pg_cast",
    2612: "pg_language",
}
#: What a snapshot of an install older than the ``catalogs`` column follows.
FIRST_CATALOGS = frozenset(
    {1259, 1255, 2617, 1247, 2606, 2620, 3466, 2615, 3079, 3256, 2618, 1260, 1261, 1262, 1213}
    | {2964, 6243}
)
#: Shared catalogs: one per cluster, explained by the log alone.
CLUSTER_CATALOGS = frozenset({1260, 1261, 1262, 1213, 2964, 6243})
#: Catalogs whose rows only DDL writes: a new xmin with the same fields is a change undone.
REWRITTEN_ONLY_BY_DDL = frozenset({1255, 3466, 1260})
#: Fields holding a role OID, and ACLs (role names inside): compared through the role map.
OWNER_FIELDS = frozenset({"owner", "role", "member", "grantor"})
#: Statement tags whose role names explain owner and privilege changes of any object.
ROLE_WIDE_TAGS = frozenset(
    {"DROP OWNED", "REASSIGN OWNED", "GRANT", "REVOKE", "ALTER DEFAULT PRIVILEGES"}
)
#: Statement tags whose schema name explains changes of every object in that schema.
SCHEMA_WIDE_TAGS = frozenset({"DROP SCHEMA", "DROP OWNED", "ALTER DEFAULT PRIVILEGES"})
#: Statements that write no catalog a snapshot follows (pg_description, pg_seclabel):
#: they explain no change, or catalog DML of any object could hide behind a COMMENT.
EXPLAINS_NOTHING = frozenset({"COMMENT", "SECURITY LABEL"})
#: pg_proc fields only CREATE [OR REPLACE] of a routine writes (also inside an extension's
#: script): ALTER FUNCTION, GRANT and the like next to ``UPDATE pg_proc SET prosrc`` in one
#: transaction do not explain a new body.
BODY_FIELDS = frozenset({"body", "binary", "sql_body"})
BODY_TAGS = frozenset(
    {"CREATE FUNCTION", "CREATE PROCEDURE", "CREATE AGGREGATE", "CREATE EXTENSION"}
    | {"ALTER EXTENSION"}
)
#: What changes an object's privileges when its owner stays (an owner change rewrites the
#: ACL too: any ALTER ... OWNER TO explains that): a harmless ALTER TABLE next to
#: ``UPDATE pg_class SET relacl`` in one transaction does not explain new privileges.
ACL_TAGS = ROLE_WIDE_TAGS | {"CREATE EXTENSION", "ALTER EXTENSION"}
#: A role's attributes (pg_authid fields) and the CREATE/ALTER ROLE option that sets each
#: (LogEvidence tags ``ROLE OPTION <name>``): ALTER ROLE x CONNECTION LIMIT 5 next to
#: ``UPDATE pg_authid SET rolsuper = true`` does not explain a new superuser.  A rename
#: clears an MD5 password.
ROLE_OPTIONS = {
    "name": ("rename",), "superuser": ("superuser",), "inherit": ("inherit",),
    "create_role": ("createrole",), "create_db": ("createdb",), "login": ("canlogin",),
    "replication": ("isreplication",), "bypass_rls": ("bypassrls",),
    "connection_limit": ("connectionlimit",), "valid_until": ("validUntil",),
    "password": ("password", "rename"),
}  # fmt: skip
#: What makes a new membership (pg_auth_members row).
MEMBERSHIP_TAGS = frozenset(
    {"GRANT ROLE", "CREATE ROLE", "ROLE OPTION rolemembers", "ROLE OPTION addroleto"}
    | {"ROLE OPTION adminmembers"}
)
#: How far apart the log's and the server's clocks and precisions may be.
SLACK = timedelta(seconds=5)
PARTS = ("database", "builtin", "cluster")
STATE_FORMAT = 1

Key = tuple[int, int | str]


# -- snapshots ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CatalogObject:
    """One catalog row of a snapshot (see ``sql/catalog_install.sql``)."""

    classid: int
    key: int | str
    xmin: int
    identity: str
    related: tuple[int, ...]
    fields: Mapping[str, Any]

    @property
    def catalog(self) -> str:
        return CATALOGS.get(self.classid, str(self.classid))

    @property
    def name(self) -> str | None:
        value = self.fields.get("name")
        return str(value) if value is not None else None

    @property
    def oid(self) -> int | None:
        return self.key if isinstance(self.key, int) else None


def parse_objects(text: str | None) -> dict[Key, CatalogObject]:
    """A snapshot part (jsonb text) as ``{(classid, key): object}``.

    >>> objs = parse_objects('[[1259, 16384, 730, "public.t", [], {"name": "t"}]]')
    >>> objs[(1259, 16384)].identity, objs[(1259, 16384)].name
    ('public.t', 't')
    """
    out: dict[Key, CatalogObject] = {}
    for item in orjson.loads(text or "[]"):
        classid, key, xmin, identity, related, fields = item
        key = int(key) if isinstance(key, (int, float)) or str(key).isdigit() else str(key)
        obj = CatalogObject(
            int(classid),
            key,
            int(xmin),
            str(identity or ""),
            tuple(int(r) for r in related or ()),
            fields if isinstance(fields, dict) else {},
        )
        out[(obj.classid, obj.key)] = obj
    return out


@dataclass(frozen=True)
class Snapshot:
    """One stored snapshot of a database (with the cluster's shared objects)."""

    id: int
    database: str
    taken_at: datetime
    server_version_num: int
    xid_snapshot: str
    oldest_xact_start: datetime | None
    reason: str
    digests: Mapping[str, str]
    parts: Mapping[str, str] = field(repr=False)
    #: The catalogs (classids) it follows (``FIRST_CATALOGS`` for older installs' rows).
    catalogs: frozenset[int] = FIRST_CATALOGS

    @property
    def horizon(self) -> datetime:
        """The earliest statement whose transaction this snapshot may not have seen."""
        if self.oldest_xact_start is not None and self.oldest_xact_start < self.taken_at:
            return self.oldest_xact_start
        return self.taken_at

    def objects(self, *parts: str, only: frozenset[int] | None = None) -> dict[Key, CatalogObject]:
        """The parts' objects; with ``only``, of those catalogs alone."""
        out: dict[Key, CatalogObject] = {}
        for part in parts:
            out.update(parse_objects(self.parts.get(part)))
        if only is not None:
            out = {k: v for k, v in out.items() if v.classid in only}
        return out

    def to_state(self, blobs: dict[str, str]) -> dict[str, Any]:
        """The state file's form; the parts go to ``blobs`` (shared by digest, compressed)."""
        for part in PARTS:
            digest = self.digests[part]
            if digest not in blobs:
                packed = zlib.compress(self.parts[part].encode("utf-8"), 6)
                blobs[digest] = base64.b64encode(packed).decode("ascii")
        return {
            "id": self.id,
            "database": self.database,
            "taken_at": self.taken_at.isoformat(),
            "server_version_num": self.server_version_num,
            "xid_snapshot": self.xid_snapshot,
            "oldest_xact_start": (
                self.oldest_xact_start.isoformat() if self.oldest_xact_start else None
            ),
            "reason": self.reason,
            "digests": dict(self.digests),
            "catalogs": sorted(self.catalogs),
        }

    @classmethod
    def from_state(cls, data: Mapping[str, Any], blobs: Mapping[str, str]) -> Snapshot:
        parts = {}
        for part in PARTS:
            digest = data["digests"][part]
            parts[part] = zlib.decompress(base64.b64decode(blobs[digest])).decode("utf-8")
        oldest = data.get("oldest_xact_start")
        return cls(
            int(data["id"]),
            str(data["database"]),
            datetime.fromisoformat(data["taken_at"]),
            int(data["server_version_num"]),
            str(data["xid_snapshot"]),
            datetime.fromisoformat(oldest) if oldest else None,
            str(data.get("reason") or ""),
            dict(data["digests"]),
            parts,
            frozenset(int(c) for c in data["catalogs"]) if data.get("catalogs") else FIRST_CATALOGS,
        )


def _render(template: str, schema: str, **idents: str) -> str:
    """A catalog SQL template with the schema (and column ``idents``) filled in."""
    from auditor.capture import render

    return render(template, schema, **{k: sql.Identifier(v) for k, v in idents.items()})


def _read_snapshot(
    conn: psycopg.Connection[Any], schema: str, *, id: int | None = None, before: int | None = None
) -> Snapshot | None:
    row = conn.execute(
        _render("catalog_read_snapshot.sql", schema), {"id": id, "before": before}
    ).fetchone()
    if row is None:
        return None
    digests = dict(zip(PARTS, (str(row[7]), str(row[8]), str(row[9])), strict=True))
    parts: dict[str, str] = {}
    for part, text in zip(PARTS, row[10:13], strict=True):
        if text is None:
            found = conn.execute(
                _render(
                    "catalog_read_part.sql",
                    schema,
                    objects=f"{part}_objects",
                    digest=f"{part}_digest",
                ),
                {"digest": digests[part]},
            ).fetchone()
            text = found[0] if found else "[]"
        parts[part] = str(text)
    return Snapshot(
        int(row[0]),
        str(row[2]),
        row[1],
        int(row[3]),
        str(row[4]),
        row[5],
        str(row[6]),
        digests,
        parts,
        _followed(row[13]),
    )


def _followed(text: str | None) -> frozenset[int]:
    """A row's ``catalogs`` (jsonb text); a row without them follows the first set.

    >>> sorted(_followed("[826, 1259]")), _followed("null") == FIRST_CATALOGS
    ([826, 1259], True)
    """
    value = orjson.loads(text) if text else None
    return frozenset(int(c) for c in value) if isinstance(value, list) else FIRST_CATALOGS


def take_snapshot(conn: psycopg.Connection[Any], schema: str, reason: str) -> Snapshot:
    """Store a snapshot of the connected database (``<schema>.catalog_snapshot()``) and read it."""
    row = conn.execute(
        sql.SQL("SELECT {}({})").format(
            sql.Identifier(schema, "catalog_snapshot"), sql.Literal(reason)
        )
    ).fetchone()
    snap = _read_snapshot(conn, schema, id=int(row[0])) if row else None
    if snap is None:  # the function returns the id of the row it inserted
        raise psycopg.DataError("the snapshot just taken cannot be read back")
    return snap


def previous_snapshot(conn: psycopg.Connection[Any], schema: str, before: int) -> Snapshot | None:
    """The latest snapshot stored before ``before`` (the baseline, the previous run's)."""
    return _read_snapshot(conn, schema, before=before)


# -- the evidence --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AuditEvidence:
    """One audit row of a transaction that committed between two snapshots."""

    id: int
    xid: int
    row_xmin: int
    command_tag: str
    statement_time: datetime
    objids: tuple[int, ...]
    identities: tuple[str, ...]

    @property
    def xmins(self) -> tuple[int, int]:
        return (self.xid % 2**32, self.row_xmin)


def clock_went_back(before: Snapshot, after: Snapshot) -> bool:
    """Whether the later snapshot carries an earlier time (the server's clock was set back)."""
    return after.taken_at < before.taken_at


def _interval_logs(
    evidence: Iterable[LogEvidence], before: Snapshot, after: Snapshot
) -> list[LogEvidence]:
    """The statements that may belong to the interval: by time, or all read when the clock
    went back (then no time says which side of a snapshot a statement is on)."""
    if clock_went_back(before, after):
        return list(evidence)
    return [e for e in evidence if e.within(before.horizon, after.taken_at)]


def _interval_holes(
    before: Snapshot,
    after: Snapshot,
    spans: Sequence[tuple[datetime, datetime]],
    gaps: Sequence[tuple[datetime | None, datetime | None]],
    notes: list[str],
) -> list[tuple[datetime, datetime]]:
    if clock_went_back(before, after):
        notes.append(
            f"catalog channel: the server's clock went back between snapshot #{before.id} "
            f"({_when(before.taken_at)}) and #{after.id} ({_when(after.taken_at)}): every audit "
            "row of the transactions in between and every statement read were considered, "
            "and only unreadable stretches of the logs count as not covered."
        )
        return [(a or after.taken_at, b or before.taken_at) for a, b in gaps]
    return _holes(before.horizon - SLACK, after.taken_at, spans, gaps)


def interval_events(
    conn: psycopg.Connection[Any], schema: str, before: Snapshot, after: Snapshot
) -> list[AuditEvidence]:
    """The audit rows of the transactions ``after`` sees and ``before`` did not.

    When the server's clock went back between the two, no time bound is trusted.
    """
    out = []
    back = clock_went_back(before, after)
    rows = conn.execute(
        _render("catalog_interval_events.sql", schema),
        {
            "since": "-infinity" if back else before.horizon - timedelta(minutes=1),
            "until": "infinity" if back else after.taken_at + timedelta(minutes=1),
            "before": before.xid_snapshot,
            "after": after.xid_snapshot,
        },
    ).fetchall()
    for r in rows:
        objids: list[int] = []
        identities: list[str] = []
        for objid, identity in orjson.loads(r[5] or "[]"):
            if isinstance(objid, int) and not isinstance(objid, bool):
                objids.append(objid)
            if isinstance(identity, str):
                identities.append(identity)
        out.append(
            AuditEvidence(
                int(r[0]), int(r[1]), int(r[2]), str(r[3]), r[4], tuple(objids), tuple(identities)
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class LogEvidence:
    """One DDL statement of the log, reduced to what can explain a catalog change."""

    time: datetime
    database: str | None
    tags: tuple[str, ...]
    #: The names the statement mentions, as parts (``public."a.b"`` is two).
    names: tuple[tuple[str, ...], ...]
    file: str
    line: int
    #: How finely the log printed the time (``%t`` whole seconds, else milliseconds).
    resolution: timedelta = timedelta(milliseconds=1)

    def to_json(self) -> list[Any]:
        return [
            self.time.isoformat(),
            self.database,
            list(self.tags),
            [list(n) for n in self.names],
            self.file,
            self.line,
            self.resolution // timedelta(microseconds=1),
        ]

    def within(self, start: datetime, end: datetime) -> bool:
        """Whether the statement can belong to a transaction that committed in between.

        Both times come from the server's clock: a statement is logged after its
        ``statement_timestamp()`` (truncated to the log's precision) and before its
        transaction commits.
        """
        return start - self.resolution <= self.time <= end + self.resolution

    @classmethod
    def from_json(cls, data: Sequence[Any]) -> LogEvidence:
        return cls(
            datetime.fromisoformat(data[0]),
            data[1],
            tuple(data[2]),
            tuple(tuple(str(p) for p in n) for n in data[3]),
            str(data[4]),
            int(data[5]),
            timedelta(microseconds=int(data[6])) if len(data) > 6 else timedelta(seconds=1),
        )


def log_evidence(records: Iterable[LogRecord]) -> list[LogEvidence]:
    """The DDL statements among log records.

    A statement that failed changed nothing, so it explains nothing: else a superuser
    covers catalog DML of any object with a failing ``ALTER ... OWNER TO no_such_role``
    naming it.  Kept are only failed strings that commit part-way (a failed CREATE INDEX
    CONCURRENTLY leaves its invalid index behind; a COMMIT inside a string that fails
    later keeps what came before it).
    """
    from auditor.classify import classify, statement_object_names

    out: list[tuple[tuple[str, int], bool, LogEvidence]] = []
    seen: set[tuple[str, int]] = set()
    failed: set[tuple[str, int]] = set()
    for rec in records:
        if rec.failed_statement is not None:
            failed.add((rec.failed_statement.file, rec.failed_statement.offset))
        if rec.kind not in (MessageKind.STATEMENT, MessageKind.EXECUTE) or rec.time is None:
            continue
        text = rec.statement or ""
        if rec.is_ddl is False and not rec.prepare_text:
            continue
        where = (rec.source.file, rec.source.offset)
        if where in seen:
            continue
        seen.add(where)
        texts = [text, *([rec.prepare_text] if rec.prepare_text else [])]
        classified = [classify(t) for t in texts]
        statements = [s for q in classified for s in q.statements if s.schema_change]
        if not statements:
            continue
        names: dict[tuple[str, ...], None] = {}
        if all(s.command_tag in EXPLAINS_NOTHING for s in statements):
            continue
        if any(s.command_tag in EXPLAINS_NOTHING for s in statements):
            for s in statements:
                if s.command_tag not in EXPLAINS_NOTHING:
                    for n in s.object_names:
                        names.setdefault(n, None)
        else:
            for t in texts:
                for n in statement_object_names(t):
                    names.setdefault(n, None)
        spans = any(q.spans_transactions for q in classified)
        out.append(
            (
                where,
                spans,
                LogEvidence(
                    rec.time,
                    rec.database,
                    tuple(
                        dict.fromkeys(
                            [s.command_tag for s in statements]
                            + [f"ROLE OPTION {o}" for s in statements for o in s.role_options]
                        )
                    ),
                    tuple(names),
                    rec.source.file,
                    rec.source.line,
                    timedelta(microseconds=rec.time_resolution_us),
                ),
            )
        )
    return [ev for where, spans, ev in out if spans or where not in failed]


def _merged(spans: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[list[datetime]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1] + timedelta(minutes=1):
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    return [(a, b) for a, b in merged]


def uncovered(
    start: datetime, end: datetime, spans: Iterable[tuple[datetime, datetime]]
) -> list[tuple[datetime, datetime]]:
    """The parts of ``start``..``end`` no span covers (a minute's tolerance between spans).

    >>> from datetime import datetime as d
    >>> uncovered(d(2026, 1, 1, 0), d(2026, 1, 1, 3), [(d(2026, 1, 1, 1), d(2026, 1, 1, 2))])
    [(datetime.datetime(2026, 1, 1, 0, 0), datetime.datetime(2026, 1, 1, 1, 0)), \
(datetime.datetime(2026, 1, 1, 2, 0), datetime.datetime(2026, 1, 1, 3, 0))]
    """
    holes = []
    cursor = start
    for a, b in _merged(spans):
        if b < cursor:
            continue
        if a > cursor + SLACK:
            holes.append((cursor, min(a, end)))
        cursor = max(cursor, b)
        if cursor >= end:
            break
    if cursor + SLACK < end:
        holes.append((cursor, end))
    return [(a, b) for a, b in holes if a < b]


# -- comparing -----------------------------------------------------------------------------


_ACL_ITEM = re.compile(r'("(?:[^"]|"")*"|[^=,{}"]*)=([^/]*)/("(?:[^"]|"")*"|[^,{}"]*)')


def _role_name(text: str) -> str:
    if text.startswith('"') and text.endswith('"'):
        return text[1:-1].replace('""', '"')
    return text


def acl_entries(acl: str | None) -> tuple[tuple[str, str, str], ...]:
    """An aclitem[] text as sorted (grantee, privileges, grantor); '' is PUBLIC.

    >>> acl_entries('{postgres=arwdDxt/postgres,=r/postgres,"A b"=r/postgres}')
    (('', 'r', 'postgres'), ('A b', 'r', 'postgres'), ('postgres', 'arwdDxt', 'postgres'))
    """
    if not acl:
        return ()
    return tuple(
        sorted(
            (_role_name(m.group(1)), m.group(2), _role_name(m.group(3)))
            for m in _ACL_ITEM.finditer(acl)
        )
    )


@dataclass(frozen=True)
class Roles:
    """Role OIDs and names at one snapshot (for ACLs, owners, and explanations)."""

    by_oid: Mapping[int, str]

    @classmethod
    def of(cls, objects: Mapping[Key, CatalogObject]) -> Roles:
        return cls(
            {
                o.key: str(o.name)
                for o in objects.values()
                if o.classid == 1260 and isinstance(o.key, int)
            }
        )

    def name(self, oid: Any) -> str:
        try:
            return self.by_oid.get(int(oid), str(oid))
        except (TypeError, ValueError):
            return str(oid)

    @property
    def by_name(self) -> dict[str, int]:
        return {v: k for k, v in self.by_oid.items()}


def _canonical(fields: Mapping[str, Any], roles: Roles) -> dict[str, Any]:
    """Fields with ACLs as (grantee oid, privileges, grantor oid) sets, so that renaming
    a role does not make every object it was granted something look changed."""
    by_name = roles.by_name
    out: dict[str, Any] = {}
    for k, v in fields.items():
        if k == "acl" and isinstance(v, str):
            out[k] = tuple(
                (by_name.get(g, g) if g else 0, p, by_name.get(r, r)) for g, p, r in acl_entries(v)
            )
        elif k == "columns" and isinstance(v, list):
            out[k] = [
                [*c[:9], tuple(acl_entries(c[9])) if isinstance(c[9], str) else c[9], *c[10:]]
                if isinstance(c, list) and len(c) > 9
                else c
                for c in v
            ]
        else:
            out[k] = v
    return out


COLUMN_FIELDS = (
    "attnum", "name", "type", "typmod", "not_null", "default", "identity", "generated",
    "collation", "acl", "options", "fdw_options", "statistics", "storage", "compression",
    "local", "inherited",
)  # fmt: skip


def _short(value: Any) -> str:
    text = value if isinstance(value, str) else orjson.dumps(value).decode()
    return text if len(text) <= 120 else text[:117] + "..."


def field_changes(
    old: Mapping[str, Any], new: Mapping[str, Any], roles_old: Roles, roles_new: Roles
) -> list[str]:
    """``field: old -> new`` for every field that differs (columns one by one).

    >>> r = Roles({10: "postgres", 20: "mallory"})
    >>> field_changes({"name": "t", "owner": "10"}, {"name": "t2", "owner": "20"}, r, r)
    ["name: 't' -> 't2'", "owner: 'postgres' -> 'mallory'"]
    """
    out = []
    a, b = _canonical(old, roles_old), _canonical(new, roles_new)
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key), b.get(key)
        if va == vb:
            continue
        if key == "columns" and isinstance(va, list) and isinstance(vb, list):
            out.extend(_column_changes(old.get(key) or [], new.get(key) or []))
        elif key in OWNER_FIELDS:
            out.append(
                f"{key}: {roles_old.name(old.get(key))!r} -> {roles_new.name(new.get(key))!r}"
            )
        elif isinstance(va, dict) and isinstance(vb, dict):
            for sub in sorted(set(va) | set(vb)):
                if va.get(sub) != vb.get(sub):
                    out.append(f"{key}.{sub}: {_short(va.get(sub))!r} -> {_short(vb.get(sub))!r}")
        else:
            ra = _short(old.get(key)) if key in old else "(none)"
            rb = _short(new.get(key)) if key in new else "(none)"
            out.append(f"{key}: {ra!r} -> {rb!r}")
    return out


def _column_changes(old: list[Any], new: list[Any]) -> list[str]:
    def by_num(cols: list[Any]) -> dict[Any, list[Any]]:
        return {c[0]: c for c in cols if isinstance(c, list) and c}

    a, b = by_num(old), by_num(new)
    out = []
    for num in sorted(set(a) | set(b), key=str):
        ca, cb = a.get(num), b.get(num)
        if ca == cb:
            continue
        if ca is None or cb is None:
            col = ca or cb or []
            what = "added" if ca is None else "dropped"
            out.append(f"column {col[1] if len(col) > 1 else num}: {what}")
            continue
        diffs = [
            f"{COLUMN_FIELDS[i] if i < len(COLUMN_FIELDS) else i} "
            f"{_short(ca[i] if i < len(ca) else None)!r} -> "
            f"{_short(cb[i] if i < len(cb) else None)!r}"
            for i in range(max(len(ca), len(cb)))
            if (ca[i] if i < len(ca) else None) != (cb[i] if i < len(cb) else None)
        ]
        out.append(f"column {ca[1]}: " + ", ".join(diffs))
    return out


@dataclass(frozen=True)
class Change:
    """One object created, changed, dropped or rewritten between two snapshots."""

    action: str  # created, changed, dropped, rewritten
    key: Key
    old: CatalogObject | None
    new: CatalogObject | None
    changes: tuple[str, ...] = ()

    @property
    def obj(self) -> CatalogObject:
        found = self.new or self.old
        assert found is not None
        return found


def changes_between(
    old: Mapping[Key, CatalogObject], new: Mapping[Key, CatalogObject]
) -> list[Change]:
    """Every difference, with an object dropped and re-created identically under a new OID
    (REINDEX CONCURRENTLY, which neither channel may show before PostgreSQL 17) left out."""
    roles_old, roles_new = Roles.of(old), Roles.of(new)
    out: list[Change] = []
    created = [k for k in new if k not in old]
    dropped = [k for k in old if k not in new]
    twins: dict[tuple[int, str, bytes], list[Key]] = {}
    for k in dropped:
        o = old[k]
        twins.setdefault(
            (o.classid, o.identity, orjson.dumps(o.fields, option=orjson.OPT_SORT_KEYS)), []
        ).append(k)
    for k in created:
        o = new[k]
        sig = (o.classid, o.identity, orjson.dumps(o.fields, option=orjson.OPT_SORT_KEYS))
        if twins.get(sig):
            twins[sig].pop()
            continue
        out.append(Change("created", k, None, o))
    for ks in twins.values():
        out.extend(Change("dropped", k, old[k], None) for k in ks)
    for k, o in old.items():
        n = new.get(k)
        if n is None:
            continue
        if _canonical(o.fields, roles_old) != _canonical(n.fields, roles_new):
            out.append(
                Change(
                    "changed",
                    k,
                    o,
                    n,
                    tuple(field_changes(o.fields, n.fields, roles_old, roles_new)),
                )
            )
        elif o.xmin != n.xmin and o.classid in REWRITTEN_ONLY_BY_DDL:
            out.append(
                Change(
                    "rewritten",
                    k,
                    o,
                    n,
                    (f"catalog row rewritten with the same content (xmin {o.xmin} -> {n.xmin})",),
                )
            )
    return out


# -- explaining ------------------------------------------------------------------------------


@dataclass
class _Index:
    """Both snapshots' objects of one scope, for names and 'belongs to' links."""

    old: Mapping[Key, CatalogObject]
    new: Mapping[Key, CatalogObject]
    roles_old: Roles
    roles_new: Roles
    by_oid: dict[int, list[CatalogObject]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for objs in (self.old, self.new):
            for o in objs.values():
                if o.oid is not None:
                    self.by_oid.setdefault(o.oid, []).append(o)

    def schema_name(self, oid: Any) -> str | None:
        try:
            found = self.by_oid.get(int(oid)) or []
        except (TypeError, ValueError):
            return None
        return next((o.name for o in found if o.classid == 2615), None)

    def closure(self, obj: CatalogObject, depth: int = 4) -> set[int]:
        """The object's OID and the OIDs of what it belongs to, transitively."""
        seen: set[int] = {obj.oid} if obj.oid is not None else set()
        frontier = set(obj.related)
        for _ in range(depth):
            frontier -= seen
            if not frontier:
                break
            seen |= frontier
            nxt: set[int] = set()
            for oid in frontier:
                for o in self.by_oid.get(oid, ()):
                    nxt.update(o.related)
            frontier = nxt
        return seen

    def names(self, obj: CatalogObject) -> set[tuple[str, str | None]]:
        """(name, schema name) of the object and of what it belongs to."""
        out: set[tuple[str, str | None]] = set()
        for oid in self.closure(obj):
            for o in self.by_oid.get(oid, ()):
                if o.name:
                    out.add((o.name, self.schema_name(o.fields.get("schema"))))
        if obj.name:
            out.add((obj.name, self.schema_name(obj.fields.get("schema"))))
        if obj.classid in (1261, 2964, 1418, 826, 2605, 6106, 6237):
            # Objects without a name of their own: memberships, settings, user mappings,
            # default privileges, casts and what publications publish go by the roles,
            # database, server, schema, types, publication and table they join.
            for k in ("role", "member", "database", "server", "schema", "source", "target",
                      "publication", "table"):  # fmt: skip
                v = obj.fields.get(k)
                if v is not None:
                    out.add((self.roles_new.name(v), None))
                    out.add((self.roles_old.name(v), None))
                    for o in self.by_oid.get(int(v), ()):
                        if o.name:
                            out.add((o.name, None))
            if obj.classid == 826:  # ALTER DEFAULT PRIVILEGES ... TO grantee
                out.update((g, None) for g, _, _ in acl_entries(obj.fields.get("acl")) if g)
        return out

    def role_names(self, change: Change) -> set[str]:
        """Roles an owner or privilege difference involves (old and new owner, grantees)."""
        out: set[str] = set()
        for o, roles in ((change.old, self.roles_old), (change.new, self.roles_new)):
            if o is None:
                continue
            owner = o.fields.get("owner")
            if owner is not None:
                out.add(roles.name(owner))
            for g, _, r in acl_entries(o.fields.get("acl")):
                out.update(x for x in (g, r) if x)
        return out


@dataclass(frozen=True)
class Explanation:
    audit_ids: tuple[int, ...] = ()
    log: tuple[LogEvidence, ...] = ()
    #: Written by a transaction with audited DDL of other objects only.
    same_transaction: tuple[int, ...] = ()

    @property
    def explained(self) -> bool:
        return bool(self.audit_ids or self.log)


def _log_matches(
    ev: LogEvidence,
    names: set[tuple[str, str | None]],
    known_schemas: set[str],
    own_schema: str | None,
    roles: set[str],
    privileges_only: bool,
    dropped: bool,
) -> bool:
    """Whether a statement names the object (or what it belongs to).

    A qualified name must agree on the schema when its qualifier is a schema at all
    (``t.col`` of a RENAME COLUMN is a table and a column); role names explain owner
    and privilege changes through DROP/REASSIGN OWNED, GRANT and REVOKE, a schema name
    every object of the schema through DROP SCHEMA and the like.
    """
    plain = {n for n, _ in names}
    tags = set(ev.tags)
    for parts in ev.names:
        if not parts:
            continue
        last = parts[-1]
        if last in plain:
            qualifier = parts[-2] if len(parts) >= 2 else None
            if qualifier is None or qualifier not in known_schemas:
                return True
            if any(n == last and (s is None or s == qualifier) for n, s in names):
                return True
        if len(parts) != 1:
            continue
        if (privileges_only or dropped) and last in roles and tags & ROLE_WIDE_TAGS:
            return True
        if (privileges_only or dropped) and last == own_schema and tags & SCHEMA_WIDE_TAGS:
            return True
    return False


class Evidence:
    """The interval's audit rows and DDL statements, indexed by OID, xid and name."""

    def __init__(self, events: Iterable[AuditEvidence], logs: Iterable[LogEvidence]) -> None:
        self.by_objid: dict[int, list[AuditEvidence]] = {}
        self.by_xmin: dict[int, list[AuditEvidence]] = {}
        self.by_name: dict[str, list[LogEvidence]] = {}
        self.wide: list[LogEvidence] = []  # statements whose role or schema names explain
        self.events: list[AuditEvidence] = []
        for e in events:
            if e.command_tag in EXPLAINS_NOTHING:
                continue
            self.events.append(e)
            for oid in set(e.objids):
                self.by_objid.setdefault(oid, []).append(e)
            for x in set(e.xmins):
                self.by_xmin.setdefault(x, []).append(e)
        for ev in logs:
            for last in {parts[-1] for parts in ev.names if parts}:
                self.by_name.setdefault(last, []).append(ev)
            if set(ev.tags) & (ROLE_WIDE_TAGS | SCHEMA_WIDE_TAGS):
                self.wide.append(ev)

    def naming(self, oids: Iterable[int]) -> list[AuditEvidence]:
        found = {id(e): e for oid in oids for e in self.by_objid.get(oid, ())}
        return list(found.values())

    def statements(self, names: Iterable[str]) -> list[LogEvidence]:
        found = {id(e): e for n in names for e in self.by_name.get(n, ())}
        found.update((id(e), e) for e in self.wide)
        return list(found.values())


def tags_needed(change: Change) -> list[frozenset[str]]:
    """The statements that alone can write what changed, where their tag tells: each set
    needs one explaining statement of its own (a new routine body; privileges of an
    object whose owner stayed; each changed attribute of a role; a new membership).
    Empty: any DDL naming the object explains it.

    >>> c = Change("changed", (1259, 1), None, None, ("acl: '(none)' -> '{=r/a}'",))
    >>> sorted(tags_needed(c)[0])[:2]
    ['ALTER DEFAULT PRIVILEGES', 'ALTER EXTENSION']
    >>> tags_needed(Change("changed", (1259, 1), None, None, ("acl: 1 -> 2", "owner: a -> b")))
    []
    >>> tags_needed(Change("changed", (1260, 9), None, None, ("superuser: False -> True",)))
    [frozenset({'ROLE OPTION superuser'})]
    """
    classid = change.key[0]
    if classid == 1261 and change.action == "created":
        return [MEMBERSHIP_TAGS]
    if change.action != "changed":
        return []
    keys = [c.split(":", 1)[0] for c in change.changes]
    if classid == 1260:
        return [
            frozenset(f"ROLE OPTION {o}" for o in ROLE_OPTIONS[k])
            for k in dict.fromkeys(keys)
            if k in ROLE_OPTIONS
        ]
    if classid == 1255 and BODY_FIELDS.intersection(keys):
        return [BODY_TAGS]
    acl = any(
        k == "acl" or (c.startswith("column ") and " acl " in c)
        for k, c in zip(keys, change.changes, strict=True)
    )
    if acl and "owner" not in keys:
        return [ACL_TAGS]
    return []


def explain(
    change: Change, index: _Index, evidence: Evidence, known_schemas: set[str]
) -> Explanation:
    """What explains one change: audit rows of the interval, then DDL statements of the log."""
    obj = change.obj
    oids = index.closure(obj)
    for o in (change.old, change.new):
        if o is not None:
            oids |= index.closure(o)
    naming = evidence.naming(oids)
    if change.new is not None and change.new.classid in REWRITTEN_ONLY_BY_DDL:
        # Only DDL writes these rows: the last write must be one of those transactions'.
        naming = [e for e in naming if change.new.xmin in e.xmins]
    needs = tags_needed(change)
    need = frozenset().union(*needs) if needs else None
    if need is not None:
        naming = [e for e in naming if e.command_tag in need]
    audit = sorted({e.id for e in naming})
    same: list[int] = []
    acl_or_owner = change.action == "changed" and all(
        c.split(":", 1)[0] in ("acl", "owner") or (c.startswith("column ") and " acl " in c)
        for c in change.changes
    )
    if not audit and change.new is not None and change.action != "dropped":
        for e in evidence.by_xmin.get(change.new.xmin, ()):
            if need is not None and e.command_tag not in need:
                continue
            if (
                (not e.objids and e.command_tag in ("GRANT", "REVOKE"))
                or (acl_or_owner and e.command_tag in ROLE_WIDE_TAGS)
                or obj.identity in e.identities
            ):
                audit.append(e.id)
            else:
                same.append(e.id)
    names = index.names(obj)
    for o in (change.old, change.new):
        if o is not None and o is not obj:
            names |= index.names(o)
    own_schema = index.schema_name(obj.fields.get("schema"))
    roles = index.role_names(change)
    dropped = change.action == "dropped"
    matched = tuple(
        ev
        for ev in evidence.statements({n for n, _ in names})
        if _log_matches(ev, names, known_schemas, own_schema, roles, acl_or_owner, dropped)
        and (need is None or bool(need.intersection(ev.tags)))
    )
    if needs:
        got = {e.command_tag for e in evidence.events if e.id in audit}
        got.update(t for ev in matched for t in ev.tags)
        if not all(n & got for n in needs):
            return Explanation((), (), tuple(sorted(set(same))))
    return Explanation(tuple(sorted(set(audit))), matched, tuple(sorted(set(same))))


# -- the run ----------------------------------------------------------------------------------

#: What a connection needs before it reads (``SET ROLE`` to the reader role).
Prepare = Callable[[psycopg.Connection[Any], str], None]


@dataclass
class Taken:
    """Snapshots taken at the start of a reconcile, before any log is read."""

    snapshots: dict[str, Snapshot] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def take_all(dsn: str, schema: str, databases: Sequence[str], prepare: Prepare) -> Taken:
    """A snapshot of every database where the catalog channel is installed.

    Taken before the logs are read, so that every change a snapshot holds was
    logged (if at all) before the end of what is read.
    """
    taken = Taken()
    with connect(dsn, application_name="auditor reconcile") as main:
        rows = main.execute(sql_text("databases.sql")).fetchall()
    wanted = set(databases)
    for name, allow, _template in rows:
        if not allow or (wanted and name not in wanted):
            continue
        try:
            with connect(dsn, dbname=name, application_name="auditor reconcile") as conn:
                prepare(conn, name)
                found = conn.execute(
                    "SELECT pg_catalog.to_regprocedure(%s)", [f"{schema}.catalog_snapshot(text)"]
                ).fetchone()
                if not found or found[0] is None:
                    continue
                taken.snapshots[name] = take_snapshot(conn, schema, "reconcile")
        except psycopg.Error as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            taken.notes.append(
                f"catalog channel: no snapshot of database {name!r} could be taken ({first})."
            )
    return taken


@dataclass
class Verdict:
    findings: list[Finding] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: What the state file keeps for the next run (see :func:`judge`).
    state: dict[str, Any] = field(default_factory=dict)


def _check_stored_copy(
    conn: psycopg.Connection[Any], schema: str, db: str, prev: Snapshot, notes: list[str]
) -> list[Finding]:
    """The state file's previous snapshot against the audit schema's row of the same id.

    The same id and time with other content means the append-only table was edited (a
    critical CONFIG_DRIFT); another time, or ids that end before it, a database
    re-created or restored from a backup (a note).
    """
    row = conn.execute(_render("catalog_snapshot_digests.sql", schema), {"id": prev.id}).fetchone()
    taken_at, digests, last_id = (row[0], row[1:4], row[4]) if row else (None, (), None)
    if (taken_at is not None and taken_at != prev.taken_at) or (
        taken_at is None and (last_id or 0) < prev.id
    ):
        notes.append(
            f"catalog channel: database {db!r} does not hold the history the state file "
            f"knows (snapshot #{prev.id} of {_when(prev.taken_at)}): re-created or restored? "
            "Compared with the state file's copy."
        )
        return []
    stored = dict(zip(PARTS, digests, strict=False))
    if taken_at is not None and all(stored.get(p) == prev.digests.get(p) for p in PARTS):
        return []
    what = "is gone" if taken_at is None else "no longer matches the state file's copy"
    return [
        make_finding(
            C.CONFIG_DRIFT,
            key=("catalog-snapshot", db, prev.id),
            reason=(
                f"Catalog snapshot #{prev.id} of {_when(prev.taken_at)} in "
                f"{schema}.catalog_snapshots {what}: the append-only snapshot table was "
                "edited. The comparison uses the state file's copy."
            ),
            severity=Severity.CRITICAL,
            database=db,
            evidence={"log": None, "audit": [], "catalog_snapshot": prev.id},
        )
    ]


def _holes(
    start: datetime,
    end: datetime,
    spans: Sequence[tuple[datetime, datetime]],
    gaps: Sequence[tuple[datetime | None, datetime | None]],
) -> list[tuple[datetime, datetime]]:
    holes = uncovered(start, end, spans)
    for a, b in gaps:
        a2, b2 = a or start, b or end
        if a2 <= end and b2 >= start:
            holes.append((max(a2, start), min(b2, end)))
    return sorted(holes)


def _when(t: datetime) -> str:
    return t.isoformat(timespec="seconds")


def _followed_by_both(old: Snapshot, new: Snapshot, notes: list[str]) -> frozenset[int]:
    """The catalogs two snapshots both follow; an upgrade that follows more says so once."""
    added = new.catalogs - old.catalogs
    if added:
        names = ", ".join(sorted(CATALOGS.get(c, str(c)) for c in added))
        notes.append(
            f"catalog channel: snapshot #{new.id} of database {new.database!r} follows "
            f"catalogs that snapshot #{old.id} did not ({names}): they are compared from "
            f"snapshot #{new.id} on."
        )
    return old.catalogs & new.catalogs


def _back_to(
    conn: psycopg.Connection[Any],
    schema: str,
    prev: Snapshot,
    since: datetime | None,
    notes: list[str],
) -> list[Snapshot]:
    """The stored snapshots before ``prev`` back to the last one at or before ``since``.

    Oldest first; empty without ``since`` or when ``prev`` is not later than it.  The
    walk stops at a snapshot copied from another database or taken by another major
    (a baseline the comparison cannot cross).
    """
    if since is None or prev.taken_at <= since:
        return []
    back: list[Snapshot] = []
    at = prev
    while at.taken_at > since:
        older = previous_snapshot(conn, schema, at.id)
        if (
            older is None
            or older.database != prev.database
            or older.server_version_num // 10000 != prev.server_version_num // 10000
        ):
            notes.append(
                f"catalog channel: database {prev.database!r} holds no snapshot at or before "
                f"{_when(since)}: changes are compared from snapshot #{at.id} of "
                f"{_when(at.taken_at)}, the oldest usable one."
            )
            break
        back.append(older)
        at = older
    return back[::-1]


def judge(
    dsn: str,
    schema: str,
    taken: Taken,
    *,
    prepare: Prepare,
    records: Iterable[LogRecord],
    spans: Sequence[tuple[datetime, datetime]],
    gaps: Sequence[tuple[datetime | None, datetime | None]],
    state: Mapping[str, Any] | None,
    since: datetime | None = None,
) -> Verdict:
    """Compare each new snapshot with the previous one and explain every change.

    ``records`` are every log record this run read (and carried), ``spans`` the
    times the logs read cover, ``gaps`` the stretches they do not (LOG_GAP);
    ``state`` what the previous run kept (its snapshots, and its DDL records late
    enough to explain changes after its snapshots).  ``since`` is a window the user
    asked for: when the previous snapshot is later than its start (a re-run over a
    night already reconciled), the stored snapshots back to the last one at or
    before it are compared pair by pair too, so that the report of a window does not
    depend on how often it was reconciled.
    """
    verdict = Verdict(notes=list(taken.notes))
    saved = dict(state or {})
    blobs: dict[str, str] = dict(saved.get("blobs") or {})
    evidence = log_evidence(records)
    try:
        evidence += [LogEvidence.from_json(e) for e in saved.get("log_evidence") or ()]
    except (IndexError, KeyError, TypeError, ValueError) as exc:
        verdict.notes.append(
            f"catalog channel: the state file's log records are damaged ({exc}); only the "
            "logs read now explain changes."
        )
    spans = list(spans)
    if saved.get("log_span"):
        # The previous run's logs, and the stretch from where it stopped reading to the
        # first record read now: the files were read on from its offsets (a file that
        # went missing or shrank meanwhile is a gap, below).
        a, b = (datetime.fromisoformat(t) for t in saved["log_span"])
        spans.append((a, b))
        if spans[:-1]:
            spans.append((b, max(b, min(x for x, _ in spans[:-1]))))
    new_blobs: dict[str, str] = {}
    kept: dict[str, Any] = {}
    cluster_pairs: list[tuple[Snapshot, Snapshot]] | None = None
    for db, new in sorted(taken.snapshots.items()):
        prev: Snapshot | None = None
        from_state = (saved.get("databases") or {}).get(db)
        if from_state:
            try:
                prev = Snapshot.from_state(from_state, blobs)
            except (KeyError, ValueError, TypeError, zlib.error) as exc:
                verdict.notes.append(
                    f"catalog channel: the state file's snapshot of {db!r} is damaged ({exc}); "
                    "compared with the audit schema's copy instead."
                )
        with connect(dsn, dbname=db, application_name="auditor reconcile") as conn:
            prepare(conn, db)
            if prev is None:
                prev = previous_snapshot(conn, schema, new.id)
            else:
                verdict.findings.extend(_check_stored_copy(conn, schema, db, prev, verdict.notes))
            if state is not None:
                kept[db] = new.to_state(new_blobs)
            if prev is None:
                verdict.notes.append(
                    f"catalog channel: first snapshot of database {db!r} (#{new.id}): it is the "
                    "baseline, nothing to compare it with yet."
                )
                continue
            if prev.database != db:
                verdict.notes.append(
                    f"catalog channel: the previous snapshot in database {db!r} was taken in "
                    f"{prev.database!r} (copied with its template): snapshot #{new.id} is the "
                    "baseline."
                )
                continue
            if prev.server_version_num // 10000 != new.server_version_num // 10000:
                verdict.notes.append(
                    f"catalog channel: database {db!r} moved from server version "
                    f"{prev.server_version_num} to {new.server_version_num}: snapshot #{new.id} "
                    "is a new baseline (an upgrade rewrites the catalog)."
                )
                continue
            chain = [*_back_to(conn, schema, prev, since, verdict.notes), prev, new]
            pairs = [
                (s0, s1, interval_events(conn, schema, s0, s1))
                for s0, s1 in itertools.pairwise(chain)
            ]
        if cluster_pairs is None:
            cluster_pairs = [(s0, s1) for s0, s1, _ in pairs]
        for s0, s1, events in pairs:
            both = _followed_by_both(s0, s1, verdict.notes)
            old_objs = s0.objects("database", "builtin", "cluster", only=both)
            new_objs = s1.objects("database", "builtin", "cluster", only=both)
            index = _Index(old_objs, new_objs, Roles.of(old_objs), Roles.of(new_objs))
            changes = changes_between(
                {k: v for k, v in old_objs.items() if v.classid not in CLUSTER_CATALOGS},
                {k: v for k, v in new_objs.items() if v.classid not in CLUSTER_CATALOGS},
            )
            logs = [e for e in _interval_logs(evidence, s0, s1) if e.database in (db, None)]
            holes = _interval_holes(s0, s1, spans, gaps, verdict.notes)
            verdict.findings.extend(
                _judge_changes(changes, index, events, logs, holes, db, s0, s1, again=s1 is not new)
            )
    if cluster_pairs:
        # Shared objects once per cluster (from the first database compared), explained
        # by statements of any database: event triggers never see them.
        if len(cluster_pairs) == 1 and saved.get("cluster"):
            with contextlib.suppress(KeyError, ValueError, TypeError, zlib.error):
                cluster_pairs = [
                    (Snapshot.from_state(saved["cluster"], blobs), cluster_pairs[0][1])
                ]
        for prev, new in cluster_pairs:
            both = prev.catalogs & new.catalogs
            old_objs = prev.objects("cluster", only=both)
            new_objs = new.objects("cluster", only=both)
            index = _Index(old_objs, new_objs, Roles.of(old_objs), Roles.of(new_objs))
            logs = _interval_logs(evidence, prev, new)
            holes = _interval_holes(prev, new, spans, gaps, [])
            verdict.findings.extend(
                _judge_changes(
                    changes_between(old_objs, new_objs),
                    index,
                    [],
                    logs,
                    holes,
                    None,
                    prev,
                    new,
                    again=new is not cluster_pairs[-1][1],
                )
            )
    if taken.snapshots and state is not None:
        first = min(taken.snapshots.items())[1]
        horizon = min(s.horizon for s in taken.snapshots.values()) - SLACK
        later = [e for e in evidence if e.time >= horizon - e.resolution]
        ends = [b for _, b in spans]
        verdict.state = {
            "format": STATE_FORMAT,
            "databases": kept,
            "cluster": first.to_state(new_blobs),
            "blobs": new_blobs,
            "log_evidence": [e.to_json() for e in later],
            "log_span": [horizon.isoformat(), max(ends).isoformat()] if ends else None,
        }
    return verdict


def _describe(change: Change, index: _Index) -> str:
    obj = change.obj
    what = f"{obj.catalog} {obj.identity or obj.key} (OID {obj.key})"
    if change.action == "created":
        return f"{what} was created (xmin {obj.xmin})"
    if change.action == "dropped":
        return f"{what} was dropped (last written by xmin {obj.xmin})"
    assert change.old is not None and change.new is not None
    detail = "; ".join(change.changes) or "fields changed"
    verb = "rewritten" if change.action == "rewritten" else "changed"
    return f"{what} was {verb} ({detail}; xmin {change.old.xmin} -> {change.new.xmin})"


def _groups(changes: Sequence[Change], index: _Index) -> list[list[Change]]:
    """Unexplained changes grouped under the object they belong to (a table and its
    index, constraint and sequence are one finding); the group's head comes first."""
    by_oid = {c.obj.oid: c for c in changes if c.obj.oid is not None}
    head: dict[int, int] = {}

    def find(i: int) -> int:
        while head.get(i, i) != i:
            i = head[i]
        return i

    pos = {id(c): i for i, c in enumerate(changes)}
    for i, c in enumerate(changes):
        for oid in c.obj.related:
            parent = by_oid.get(oid)
            if parent is not None and parent is not c:
                a, b = find(i), find(pos[id(parent)])
                if a != b:
                    head[a] = b
    grouped: dict[int, list[Change]] = {}
    for i, c in enumerate(changes):
        grouped.setdefault(find(i), []).append(c)
    out = []
    for root, members in grouped.items():
        first = changes[root]
        out.append([first, *(m for m in members if m is not first)])
    return out


def _judge_changes(
    changes: Sequence[Change],
    index: _Index,
    events: Sequence[AuditEvidence],
    logs: Sequence[LogEvidence],
    holes: Sequence[tuple[datetime, datetime]],
    database: str | None,
    prev: Snapshot,
    new: Snapshot,
    *,
    again: bool = False,
) -> list[Finding]:
    """``again``: ``new`` is a stored snapshot, not this run's (a ``--since`` window that
    starts before it): the run that took it compared the same interval already."""
    evidence = Evidence(events, logs)
    known_schemas = {
        o.name for o in (*index.old.values(), *index.new.values()) if o.classid == 2615 and o.name
    }
    silent: list[tuple[Change, Explanation]] = []
    for change in changes:
        why = explain(change, index, evidence, known_schemas)
        if not why.explained:
            silent.append((change, why))
    if not silent:
        return []
    why_of = {id(c): w for c, w in silent}
    findings = []
    interval = (
        f"{_when(prev.taken_at)} (snapshot #{prev.id}) and {_when(new.taken_at)} "
        f"(snapshot #{new.id})"
    )
    for group in _groups([c for c, _ in silent], index):
        head = group[0]
        same = sorted({i for c in group for i in why_of[id(c)].same_transaction})
        severity = Severity.CRITICAL
        reasons = [_describe(c, index) + "." for c in group[:20]]
        if len(group) > 20:
            reasons.append(f"... and {len(group) - 20} more dependent object(s).")
        tail: list[str] = []
        if holes:
            severity = Severity.HIGH
            stretch = ", ".join(f"{_when(a)} to {_when(b)}" for a, b in holes[:3])
            tail.append(
                f"The logs read do not cover all of the interval ({stretch} not covered): a "
                "statement in a log that was not read may explain it, so this is not "
                "critical; reconcile again with those logs to settle it."
            )
        elif same:
            severity = Severity.HIGH
            tail.append(
                f"The catalog row was written by the transaction of audit row(s) "
                f"{', '.join(map(str, same[:10]))}, whose DDL named other objects: catalog DML "
                "next to ordinary DDL, or DDL of a kind not followed here."
            )
        if again:
            tail.append(
                f"Snapshot #{new.id} was taken by an earlier {new.reason or 'run'}, which "
                "compared this interval too: it is reported again because the window asked "
                "for starts before it (the same finding id)."
            )
        scope = f"database {database!r}" if database else "the cluster (shared catalogs)"
        explanation = (
            f"In {scope}, between {interval}, no audit row and no logged DDL statement "
            f"explains this: {' '.join(reasons)} {' '.join(tail)}"
        ).strip()
        obj = head.obj
        findings.append(
            make_finding(
                C.SILENT_SCHEMA_CHANGE,
                key=(
                    "catalog",
                    database,
                    obj.classid,
                    obj.key,
                    head.action,
                    head.old.xmin if head.old else None,
                    head.new.xmin if head.new else None,
                    prev.id,
                    new.id,
                ),
                reason=explanation,
                severity=severity,
                time=new.taken_at,
                database=database,
                command_tags=[f"{c.action.upper()} {c.obj.catalog}" for c in group],
                evidence={
                    "log": None,
                    "audit": [],
                    "catalog": {
                        "interval": {
                            "from": prev.taken_at.isoformat(),
                            "to": new.taken_at.isoformat(),
                            "from_snapshot": prev.id,
                            "to_snapshot": new.id,
                        },
                        "objects": [
                            {
                                "action": c.action,
                                "catalog": c.obj.catalog,
                                "oid": c.obj.key,
                                "identity": c.obj.identity,
                                "xmin": {
                                    "old": c.old.xmin if c.old else None,
                                    "new": c.new.xmin if c.new else None,
                                },
                                "changes": list(c.changes),
                            }
                            for c in group[:100]
                        ],
                        "uncovered": [[a.isoformat(), b.isoformat()] for a, b in holes],
                        "same_transaction_audit_rows": same,
                    },
                },
            )
        )
    return findings


# -- status ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SnapshotStatus:
    """The catalog channel in one database, for ``auditor status``."""

    snapshots: int
    latest_id: int | None
    latest_at: datetime | None
    latest_reason: str | None

    def age(self, now: datetime) -> timedelta | None:
        return now - self.latest_at if self.latest_at else None


def snapshot_status(conn: psycopg.Connection[Any], schema: str) -> SnapshotStatus | None:
    """How many snapshots the database holds and the latest one; None without the table."""
    found = conn.execute(
        "SELECT pg_catalog.to_regclass(%s)", [f"{schema}.catalog_snapshots"]
    ).fetchone()
    if not found or found[0] is None:
        return None
    row = conn.execute(_render("catalog_status.sql", schema)).fetchone()
    if row is None:
        return None
    return SnapshotStatus(int(row[0]), row[1], row[2], row[3])


def format_age(delta: timedelta) -> str:
    """A duration for a DBA.

    >>> format_age(timedelta(days=2, hours=3)), format_age(timedelta(minutes=5, seconds=3))
    ('2d 3h', '5m 3s')
    """
    secs = int(delta.total_seconds())
    days, rest = divmod(max(secs, 0), 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m {seconds}s"


__all__ = [
    "CatalogObject",
    "Change",
    "Snapshot",
    "Taken",
    "Verdict",
    "judge",
    "take_all",
    "take_snapshot",
]
