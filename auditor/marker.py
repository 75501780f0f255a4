"""The marker: one ``RAISE LOG`` line per trigger firing.

The audit trigger writes, for every row it inserts, one server-log message::

    auditor-marker v1 schema=auditor id=42 xid=751 event=ddl_command_end
        digest=<64 hex> tag=CREATE TABLE      (one line in the log)

* ``schema`` is the audit schema (several installs may share a log),
* ``id`` is the audit row's id, ``xid`` the id of the (sub)transaction that
  inserted it (the row's ``xmin``, so a rolled-back savepoint is told apart
  from a deleted row), ``event`` the event trigger event,
* ``digest`` the SHA-256 of the row's canonical text,
* ``behind=<first>-<last>`` only when the id sequence stood behind the table (a
  restore of a dump sets it back with pg_dump's ``setval()``): it gave ``first``,
  which a row held, while rows held ids up to ``last``; the function moved it past
  ``last`` and the row got the next id (schema version 4), and
* ``tag`` the command tag, last because it contains spaces.

The digest (normative text: the header of ``sql/capture_install.sql``; Python:
:mod:`auditor.digest`; SQL: ``<schema>.row_digest(row)``) is the lower-case hex
SHA-256 of the UTF-8 bytes of ``'auditor-row-v1'`` followed by ``enc(v)`` for each
of the 21 columns of the events table in table order (id, event, command_tag,
objects, query, caller_context, statement_time, clock_time, session_user_name,
current_user_name, login_user_name, database_name, client_addr, client_port,
server_addr, server_port, application_name, backend_pid, session_id, vxid, xid),
where ``enc(NULL) = '~'`` and ``enc(text) = '<characters>:<text>'``; integers
are decimal, timestamps UTC ``YYYY-MM-DDTHH:MI:SS.ffffffZ``, addresses
``host()`` text and ``objects`` its jsonb text (``objects::text``).  Nothing
depends on session settings, so anyone can recompute it from the row alone.

In the log the marker is a ``LOG`` message whose CONTEXT names
``<schema>.record_event()`` (a marker forged with ``RAISE LOG`` elsewhere names
another function; for DDL run by a DO block or function the CONTEXT also shows
that caller).  The first marker of each statement also carries the STATEMENT
(the query text), the others not, so one statement that fires a hundred times
does not repeat its text a hundred times.

The marker reaches the log even if the transaction later rolls back, because
the log is written at once and is not transactional.  Reconcile compares
marker and row: marker + aborted xid = rolled back; marker + committed xid +
no row = row deleted; digest differs = row altered.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MARKER_LEAD = "auditor-marker "
MARKER_VERSION = "v1"

_MARKER = re.compile(
    r"auditor-marker v1 schema=(?P<schema>\S+) id=(?P<id>\d+) xid=(?P<xid>\d+) "
    r"event=(?P<event>[a-z_]+) digest=(?P<digest>[0-9a-f]{64})"
    r"(?: behind=(?P<first>\d+)-(?P<last>\d+))? tag=(?P<tag>.+)$"
)


@dataclass(frozen=True, slots=True)
class Marker:
    schema: str
    id: int
    xid: int
    event: str
    digest: str
    tag: str
    #: (first id the sequence gave, highest id rows held) when it stood behind the table.
    behind: tuple[int, int] | None = None


def parse_marker(message: str) -> Marker | None:
    """The marker in a log message, or None when the message is not one.

    >>> m = parse_marker("auditor-marker v1 schema=auditor id=42 xid=751 "
    ...                  "event=ddl_command_end digest=" + "ab" * 32 + " tag=CREATE TABLE")
    >>> (m.id, m.xid, m.event, m.tag)
    (42, 751, 'ddl_command_end', 'CREATE TABLE')
    >>> parse_marker("statement: CREATE TABLE t()") is None
    True
    >>> parse_marker("auditor-marker v1 schema=auditor id=41 xid=9 event=ddl_command_end "
    ...              "digest=" + "ab" * 32 + " behind=19-40 tag=ALTER TABLE").behind
    (19, 40)
    """
    if not message.startswith(MARKER_LEAD):
        return None
    m = _MARKER.match(message.strip())
    if m is None:
        return None
    schema, ident, xid, event, digest, first, last, tag = m.groups()
    same = _SAME.setdefault
    if len(_SAME) > 10_000:
        _SAME.clear()
    return Marker(
        same(schema, schema),
        int(ident),
        int(xid),
        same(event, event),
        digest,
        same(tag, tag),
        (int(first), int(last)) if first is not None else None,
    )


#: One object per schema, event and tag text: a night holds a million markers
#: and a few dozen distinct values.
_SAME: dict[str, str] = {}
