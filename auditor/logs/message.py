"""What a server message says: one interpretation for stderr, csvlog and jsonlog.

Each reader extracts the same raw fields (severity, message text, DETAIL,
STATEMENT/query, prefix or column fields); :func:`build_record` turns them
into a :class:`~auditor.model.LogRecord`, deciding the message kind
(statement, execute, error, marker, other), the protocol, the prepared
statement and portal names, bind parameters and the ``duration:`` lead.
"""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime

from auditor.logs.prefilter import classify_texts
from auditor.marker import MARKER_LEAD
from auditor.model import LogRecord, MessageKind, PgAudit, Protocol, SourceLocation

ERROR_SEVERITIES = frozenset({"ERROR", "FATAL", "PANIC"})
_CLASSIFIED = frozenset(
    {MessageKind.STATEMENT, MessageKind.EXECUTE, MessageKind.ERROR, MessageKind.AUDIT}
)
_AUDIT_LEAD = "AUDIT: "

_DURATION = re.compile(r"duration: (?P<ms>\d+(?:\.\d+)?) ms {1,2}(?=\S)")
_EXECUTE = re.compile(r"execute (?P<fetch>fetch from )?(?P<name>.+?): ")
_PARAM = re.compile(r"\$(?P<n>\d+) = (?:(?P<null>NULL)|'(?P<val>(?:[^']|'')*)')(?:, |$)")

#: Server messages that reconcile needs (CONFIG_DRIFT, LOG_GAP), by their start.
NOTABLE_MESSAGES = (
    'parameter "',
    "received SIGHUP, reloading configuration files",
    "database system is ready to accept",
    "database system is shut down",
    "database system was ",
    "received fast shutdown request",
    "received smart shutdown request",
    "received immediate shutdown request",
    "starting PostgreSQL",
    "terminating any other active server processes",
    "configuration file",
)


def is_notable(message: str) -> bool:
    """Whether an OTHER message is one reconcile uses.

    >>> is_notable('parameter "log_statement" changed to "none"'), is_notable("checkpoint starting")
    (True, False)
    """
    return message.startswith(NOTABLE_MESSAGES)


def parse_parameters(detail: str) -> tuple[tuple[str, str | None], ...]:
    """Bind values from ``parameters: $1 = '42', $2 = NULL``.

    >>> parse_parameters("parameters: $1 = '42', $2 = NULL, $3 = 'it''s'")
    (('$1', '42'), ('$2', None), ('$3', "it's"))
    """
    if not detail.startswith("parameters: "):
        return ()
    out: list[tuple[str, str | None]] = []
    pos = len("parameters: ")
    while pos < len(detail):
        m = _PARAM.match(detail, pos)
        if m is None:
            break
        value = None if m["null"] else m["val"].replace("''", "'")
        out.append(("$" + m["n"], value))
        pos = m.end()
    return tuple(out)


def _int(text: str | None) -> int | None:
    if text is None or text == "":
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _none(text: str | None) -> str | None:
    """Empty and ``[unknown]`` (what %u/%d/%a print for nothing) are None."""
    if text is None or text == "" or text == "[unknown]":
        return None
    return text


def split_host_port(text: str | None) -> tuple[str | None, int | None]:
    """``host(port)`` (``%r``) or ``host:port`` (csv ``connection_from``).

    >>> split_host_port("127.0.0.1(5432)"), split_host_port("::1:5432"), split_host_port("[local]")
    (('127.0.0.1', 5432), ('::1', 5432), ('[local]', None))
    """
    if not text:
        return None, None
    if text.endswith(")") and "(" in text:
        host, _, port = text[:-1].rpartition("(")
        return host, _int(port)
    if text != "[local]" and ":" in text:
        host, _, port = text.rpartition(":")
        if port.isdigit():
            return host, int(port)
    return text, None


def parse_pgaudit(text: str, command_tag: str | None) -> tuple[PgAudit, str] | None:
    """A pgAudit line's fields and statement text (``text`` after ``AUDIT: ``).

    >>> a, stmt = parse_pgaudit('SESSION,1,2,DDL,CREATE TABLE,TABLE,public.t3,'
    ...                         '"CREATE TABLE t3 (""a,b"" int)",<not logged>', "DO")
    >>> a.command, a.object_name, a.nested, stmt
    ('CREATE TABLE', 'public.t3', True, 'CREATE TABLE t3 ("a,b" int)')
    >>> parse_pgaudit("not,enough", None) is None
    True
    """
    try:
        row = next(csv.reader(io.StringIO(text, newline=""), strict=True))
    except (csv.Error, StopIteration):
        return None
    if len(row) < 8 or row[0] not in ("SESSION", "OBJECT"):
        return None
    nested = None if not command_tag else command_tag != row[4]
    audit = PgAudit(
        row[0], _int(row[1]), _int(row[2]), row[3], row[4], row[5] or None, row[6] or None, nested
    )
    return audit, row[7]


def build_record(
    *,
    source: SourceLocation,
    severity: str,
    message: str,
    time: datetime | None = None,
    detail: str | None = None,
    hint: str | None = None,
    context: str | None = None,
    statement: str | None = None,
    session_id: str | None = None,
    line_num: int | None = None,
    vxid: str | None = None,
    xid: int | None = None,
    pid: int | None = None,
    user: str | None = None,
    database: str | None = None,
    application: str | None = None,
    client: str | None = None,
    client_port: int | None = None,
    sqlstate: str | None = None,
    backend_type: str | None = None,
    command_tag: str | None = None,
    classify: bool = True,
    time_resolution_us: int = 1000,
    ambiguous: tuple[str, bool] | None = None,
) -> LogRecord:
    """Interpret the message and build the record (same rules for every format).

    With ``classify`` the statement text of STATEMENT, EXECUTE and ERROR
    records is classified (``is_ddl``, ``is_relevant``).
    """
    kind = MessageKind.OTHER
    protocol: Protocol | None = None
    prepared_name: str | None = None
    portal: str | None = None
    duration: float | None = None
    parameters: tuple[tuple[str, str | None], ...] = ()
    prepare_text: str | None = None
    pgaudit: PgAudit | None = None
    text = message
    m = _DURATION.match(text)
    if m:
        duration = float(m["ms"])
        text = text[m.end() :]
    if severity in ERROR_SEVERITIES:
        kind = MessageKind.ERROR
    elif text.startswith(MARKER_LEAD):
        kind = MessageKind.MARKER
    elif severity == "LOG" and text.startswith(_AUDIT_LEAD):
        parsed = parse_pgaudit(text[len(_AUDIT_LEAD) :], _none(command_tag))
        if parsed is not None:
            kind = MessageKind.AUDIT
            pgaudit, statement = parsed
    elif severity == "LOG" and text.startswith("statement: "):
        kind = MessageKind.STATEMENT
        protocol = Protocol.SIMPLE
        statement = text[len("statement: ") :]
        if detail and detail.startswith("prepare: "):
            prepare_text = detail[len("prepare: ") :]
    elif severity == "LOG" and text.startswith("execute "):
        e = _EXECUTE.match(text)
        if e:
            kind = MessageKind.EXECUTE
            protocol = Protocol.EXTENDED
            name, _, port = e["name"].partition("/")
            prepared_name = None if name == "<unnamed>" else name
            portal = port or None
            statement = text[e.end() :]
            if detail:
                parameters = parse_parameters(detail)
    if sqlstate == "00000":
        sqlstate = None
    is_ddl: bool | None = None
    is_relevant: bool | None = None
    if classify and (statement or prepare_text) and kind in _CLASSIFIED:
        verdict = classify_texts((statement, prepare_text))
        is_ddl, is_relevant = verdict.is_ddl, verdict.is_relevant
    session_id = _shared(_none(session_id))
    if statement and kind == MessageKind.MARKER:
        # The first marker of a statement repeats the text of its statement record.
        last = _LAST_STATEMENT.get(session_id)
        if last == statement:
            statement = last
    elif statement and kind in (MessageKind.STATEMENT, MessageKind.EXECUTE):
        if len(_LAST_STATEMENT) > 10_000:
            _LAST_STATEMENT.clear()
        _LAST_STATEMENT[session_id] = statement
    return LogRecord(
        source=source,
        severity=_shared(severity) or severity,
        kind=kind,
        message=message,
        time=time,
        statement=statement,
        session_id=session_id,
        line_num=line_num,
        vxid=_shared(_none(vxid)),
        xid=xid,
        pid=pid,
        user=_shared(_none(user)),
        database=_shared(_none(database)),
        application=_shared(_none(application)),
        client=_shared(_none(client)),
        sqlstate=_shared(_none(sqlstate)),
        detail=detail or None,
        hint=hint or None,
        context=_shared(context),
        protocol=protocol,
        prepared_name=prepared_name,
        portal=portal,
        parameters=parameters,
        duration_ms=duration,
        backend_type=_shared(_none(backend_type)),
        command_tag=_shared(_none(command_tag)),
        client_port=client_port,
        prepare_text=prepare_text,
        is_ddl=is_ddl,
        is_relevant=is_relevant,
        time_resolution_us=time_resolution_us,
        pgaudit=pgaudit,
        ambiguous=ambiguous,
    )


#: One object per distinct value of the fields that repeat from record to record
#: (user, database, session, context...): a night's log holds millions of records
#: and a few hundred distinct values, and reconcile keeps every record it reads.
_SHARED: dict[str, str] = {}
#: Session id -> text of its last statement record (markers repeat it).
_LAST_STATEMENT: dict[str | None, str] = {}


def _shared(value: str | None) -> str | None:
    """``value`` ("" as None), as the one object kept for equal values.

    >>> _shared("") is None, _shared("ab" * 3) is _shared("".join(["ab"] * 3))
    (True, True)
    """
    if not value:
        return None
    got = _SHARED.get(value)
    if got is None:
        if len(_SHARED) >= 50_000:
            _SHARED.clear()
        _SHARED[value] = value
        return value
    return got


def decode(raw: bytes) -> tuple[str, bool]:
    """UTF-8 text of raw log bytes, and whether invalid bytes had to be replaced."""
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode("utf-8", "replace"), True
