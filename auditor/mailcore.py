"""The mail core: statement grouping, message building and SMTP, shared by both mail modes.

It runs in two places.  ``auditor notify`` imports it; ``auditor install
--mail-mode plpython`` embeds its source, with :mod:`auditor.redact`'s, into the
plpython3u function ``<schema>.send_mails()`` (``sql/mail_plpython.sql``), where
the package is not installed.  So it imports only the standard library and Jinja2,
and both modes group, word, mask and send a mail the same way.

Rows come as mappings with the columns of ``sql/mail_event_columns.sql`` (times
as UTC text, ``objects`` as JSON text, addresses as ``host()`` text), which is
what both psycopg and PL/Python return for that select list.

THE GROUPING RULE (one mail per statement):

1. Rows belong to the same query string when ``session_id``, ``vxid``,
   ``statement_time`` and ``query`` agree.  All of them come from one
   transaction, so they become visible together.
2. A query string holding one statement (:func:`count_statements`) is one
   statement, whatever fired: ``CREATE EXTENSION`` and its ~90 firings, a DROP
   (``sql_drop`` + ``ddl_command_end``), a ``DO`` block running five DDLs.
3. A multi-statement string is split, in id order, after each statement's own
   ``ddl_command_end`` (``caller_context`` NULL and no ``in_extension`` object;
   once ``in_extension`` rows were seen, only a ``CREATE/ALTER EXTENSION`` row
   closes), and before a direct row that follows rows run by a DO block,
   function or procedure (``caller_context`` set).  Rows left after the last
   boundary are one more statement.
   Known limits: two consecutive ``DO``/``SELECT f()`` statements of one string
   share a mail; a DROP inside an extension script of a multi-statement string
   splits that extension's mail.  Nothing is ever left out of a mail.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import smtplib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from email import charset as email_charset
from email.header import Header
from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.policy import compat32
from email.utils import format_datetime
from typing import Any, cast

import jinja2
import jinja2.sandbox


def _mask_function() -> Callable[[str], str]:
    """auditor.redact.mask, or the copy the plpython loader put into this module."""
    embedded = globals().get("_EMBEDDED_MASK")
    if embedded is not None:
        return cast("Callable[[str], str]", embedded)
    from auditor.redact import mask

    return mask


mask = _mask_function()

#: At most this many objects are listed in a mail (CREATE EXTENSION postgis has thousands).
MAX_OBJECTS = 200
#: Security modes of the SMTP connection.
SECURITY_MODES = ("none", "starttls", "tls")
EXTENSION_TAGS = ("CREATE EXTENSION", "ALTER EXTENSION")


#: PostgreSQL 18 adds the frame of an extension script to the call stack of every
#: statement the script runs: ``SQL statement "<its statement>"`` and ``extension script
#: file "<file>", near line N``.  The script is no caller of its own statements (their
#: objects carry ``in_extension``), and earlier versions print no such frame.  The audit
#: trigger leaves it out of ``caller_context`` (sql/capture_install.sql, same pattern);
#: this removes it from rows written before that.
_SCRIPT_FRAME = re.compile(
    r'(?:^|\n)(?:SQL statement "(?:(?!\nSQL statement ").)*"\n)?'
    r'extension script file "[^"\n]*"(?:, near line [0-9]+)?(?=\n|$)',
    re.DOTALL,
)


def without_script_frames(context: str | None) -> str | None:
    """A call stack without PostgreSQL 18's extension-script frames (None when empty).

    >>> without_script_frames('SQL statement "CREATE CAST (a AS b)"\\n'
    ...                       'extension script file "citext--1.4.sql", near line 83') is None
    True
    >>> print(without_script_frames('SQL statement "CREATE TYPE t"\\nextension script file '
    ...     '"h--1.4.sql", near line 9\\nSQL statement "CREATE EXTENSION h"\\n'
    ...     'PL/pgSQL function mk() line 1 at SQL statement'))
    SQL statement "CREATE EXTENSION h"
    PL/pgSQL function mk() line 1 at SQL statement
    >>> print(without_script_frames('SQL statement "CREATE TABLE t"\\nPL/pgSQL function '
    ...     'inline_code_block line 3 at SQL statement\\nSQL statement "DO $$ ... $$"\\n'
    ...     'extension script file "x--1.0.sql", near line 7'))
    SQL statement "CREATE TABLE t"
    PL/pgSQL function inline_code_block line 3 at SQL statement
    """
    if not context:
        return None
    if "extension script file" not in context:
        return context
    return _SCRIPT_FRAME.sub("", context).lstrip("\n") or None


class DeliveryError(Exception):
    """A message could not be built or handed to the SMTP server (one line, no secrets).

    ``permanent`` marks what retrying will not cure by itself (a 5xx reply, a template
    error, a refused login); such messages are still kept and retried.
    """

    def __init__(self, message: str, *, permanent: bool = False, connection: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent
        #: The SMTP server could not be reached or the connection broke: the next
        #: messages would fail the same way.
        self.connection = connection


# -- SQL text ------------------------------------------------------------------------

_DOLLAR = re.compile(r"\$([A-Za-z_\x80-\uffff][A-Za-z0-9_\x80-\uffff]*)?\$")
_IDENT_CHAR = re.compile(r"[A-Za-z0-9_$\x80-\uffff]")


def count_statements(query: str) -> int:
    """How many statements a query string holds (semicolons outside quotes and comments).

    Knows '...' (with '' and E'\\''), "...", $tag$...$tag$, -- and nested /* */
    comments.  A ``BEGIN ATOMIC`` body counts its inner statements too, which only
    makes the grouping fall back to splitting (rule 3), never merge.

    >>> count_statements("CREATE TABLE a(); CREATE TABLE b()")
    2
    >>> count_statements("CREATE FUNCTION f() RETURNS int AS $$ SELECT 1; $$ LANGUAGE sql;")
    1
    >>> count_statements("COMMENT ON TABLE t IS 'a;b'; -- c;d\\n")
    1
    >>> count_statements("/* x; /* y; */ z; */ DROP TABLE t ;; ")
    1
    >>> count_statements("SELECT E'it\\\\'s;' ; SELECT 2")
    2
    """
    n = 0
    content = False
    i = 0
    length = len(query)
    while i < length:
        c = query[i]
        if c in " \t\r\n\f\v":
            i += 1
        elif c == "-" and query.startswith("--", i):
            end = query.find("\n", i)
            i = length if end < 0 else end + 1
        elif c == "/" and query.startswith("/*", i):
            depth, i = 1, i + 2
            while i < length and depth:
                if query.startswith("/*", i):
                    depth, i = depth + 1, i + 2
                elif query.startswith("*/", i):
                    depth, i = depth - 1, i + 2
                else:
                    i += 1
        elif c == "'":
            prefix_e = i > 0 and query[i - 1] in "Ee"
            backslash = prefix_e and (i < 2 or not _IDENT_CHAR.match(query[i - 2]))
            i += 1
            while i < length:
                if backslash and query[i] == "\\":
                    i += 2
                elif query[i] == "'":
                    if query.startswith("''", i):
                        i += 2
                    else:
                        i += 1
                        break
                else:
                    i += 1
            content = True
        elif c == '"':
            end = i + 1
            while True:
                end = query.find('"', end)
                if end < 0 or not query.startswith('""', end):
                    break
                end += 2
            i = length if end < 0 else end + 1
            content = True
        elif c == "$" and (i == 0 or not _IDENT_CHAR.match(query[i - 1])):
            m = _DOLLAR.match(query, i)
            if m:
                end = query.find(m.group(0), m.end())
                i = length if end < 0 else end + len(m.group(0))
            else:
                i += 1
            content = True
        elif c == ";":
            if content:
                n += 1
            content = False
            i += 1
        else:
            content = True
            i += 1
    return n + (1 if content else 0)


# -- rows and statements -------------------------------------------------------------


def _parse_time(value: Any) -> datetime:
    """A UTC timestamp from the text the SQL writes (or a datetime already).

    >>> _parse_time("2026-11-26T05:31:00.168281Z").isoformat()
    '2026-11-26T05:31:00.168281+00:00'
    """
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    text = str(value)
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    return datetime.fromisoformat(text)


def _opt_int(value: Any) -> int | None:
    return None if value is None else int(value)


@dataclass(frozen=True)
class EventRow:
    """One audit row, as the mail side reads it."""

    id: int
    event: str
    command_tag: str
    objects: tuple[Mapping[str, Any], ...]
    query: str | None
    caller_context: str | None
    statement_time: datetime
    clock_time: datetime
    session_user: str
    current_user: str
    login_user: str | None
    database: str
    client_addr: str | None
    client_port: int | None
    server_addr: str | None
    server_port: int | None
    application_name: str | None
    backend_pid: int
    session_id: str
    vxid: str | None
    xid: int

    @classmethod
    def from_mapping(cls, r: Mapping[str, Any]) -> EventRow:
        raw = r["objects"]
        parsed = json.loads(raw) if isinstance(raw, (str, bytes)) else raw
        objects = tuple(o for o in (parsed or []) if isinstance(o, dict))
        return cls(
            id=int(r["id"]),
            event=str(r["event"]),
            command_tag=str(r["command_tag"]),
            objects=objects,
            query=r["query"],
            caller_context=without_script_frames(r["caller_context"]),
            statement_time=_parse_time(r["statement_time"]),
            clock_time=_parse_time(r["clock_time"]),
            session_user=str(r["session_user_name"]),
            current_user=str(r["current_user_name"]),
            login_user=r["login_user_name"],
            database=str(r["database_name"]),
            client_addr=r["client_addr"],
            client_port=_opt_int(r["client_port"]),
            server_addr=r["server_addr"],
            server_port=_opt_int(r["server_port"]),
            application_name=r["application_name"],
            backend_pid=int(r["backend_pid"]),
            session_id=str(r["session_id"]),
            vxid=r["vxid"],
            xid=int(r["xid"]),
        )

    @property
    def in_extension(self) -> bool:
        return any(o.get("in_extension") is True for o in self.objects)

    @property
    def direct(self) -> bool:
        """Sent by the client itself (not from a DO block, function or procedure)."""
        return self.caller_context is None

    @property
    def query_key(self) -> tuple[str, str, datetime, str]:
        return (self.session_id, self.vxid or "", self.statement_time, self.query or "")


@dataclass(frozen=True)
class Statement:
    """The rows of one statement: what one mail reports."""

    rows: tuple[EventRow, ...]

    @property
    def first(self) -> EventRow:
        return self.rows[0]

    @property
    def first_id(self) -> int:
        return self.rows[0].id

    @property
    def last_id(self) -> int:
        return self.rows[-1].id

    @property
    def event_ids(self) -> list[int]:
        return [r.id for r in self.rows]

    @property
    def tag(self) -> str:
        """The statement's own command tag: its closing row's, else its first row's."""
        for r in reversed(self.rows):
            if r.event == "ddl_command_end" and r.direct and not r.in_extension:
                return r.command_tag
        return self.rows[0].command_tag

    @property
    def command_tags(self) -> list[str]:
        out: list[str] = []
        for r in self.rows:
            if r.command_tag not in out:
                out.append(r.command_tag)
        return out

    def message_id(self, domain: str) -> str:
        """Stable per statement: the same rows always give the same Message-ID.

        >>> row = {"id": 7, "event": "ddl_command_end", "command_tag": "CREATE TABLE",
        ...        "objects": "[]", "query": "CREATE TABLE t()", "caller_context": None,
        ...        "statement_time": "2026-11-26T05:31:00.168281Z",
        ...        "clock_time": "2026-11-26T05:31:00.170000Z", "session_user_name": "u",
        ...        "current_user_name": "u", "login_user_name": "u", "database_name": "db",
        ...        "client_addr": None, "client_port": None, "server_addr": None,
        ...        "server_port": None, "application_name": "psql", "backend_pid": 42,
        ...        "session_id": "6745f3a4.2a", "vxid": "3/13", "xid": 750}
        >>> s = Statement((EventRow.from_mapping(row),))
        >>> s.message_id("example.org") == s.message_id("example.org")
        True
        >>> s.message_id("example.org")
        '<auditor.db.7.835e63c2a792e099158c@example.org>'
        """
        f = self.first
        key = "\0".join(
            (f.database, f.session_id, f.vxid or "", f.statement_time.isoformat(), str(f.id))
        )
        digest = hashlib.sha256(key.encode("utf-8")).hexdigest()[:20]
        safe_db = re.sub(r"[^A-Za-z0-9_-]", "_", f.database)[:40] or "db"
        return f"<auditor.{safe_db}.{f.id}.{digest}@{domain}>"


def _closes(row: EventRow, seen_extension: bool) -> bool:
    if row.event != "ddl_command_end" or not row.direct or row.in_extension:
        return False
    return not seen_extension or row.command_tag in EXTENSION_TAGS


def group_statements(rows: Iterable[Mapping[str, Any] | EventRow]) -> list[Statement]:
    """Split audit rows into statements (the module docstring states the rule), by first id."""
    by_query: dict[tuple[str, str, datetime, str], list[EventRow]] = {}
    for raw in rows:
        row = raw if isinstance(raw, EventRow) else EventRow.from_mapping(raw)
        by_query.setdefault(row.query_key, []).append(row)
    out: list[Statement] = []
    for group in by_query.values():
        group.sort(key=lambda r: r.id)
        if count_statements(group[0].query or "") <= 1:
            out.append(Statement(tuple(group)))
            continue
        current: list[EventRow] = []
        seen_extension = False
        for row in group:
            after_indirect = current and not current[-1].direct and not current[-1].in_extension
            if after_indirect and row.direct and not row.in_extension:
                out.append(Statement(tuple(current)))
                current, seen_extension = [], False
            current.append(row)
            seen_extension = seen_extension or row.in_extension
            if _closes(row, seen_extension):
                out.append(Statement(tuple(current)))
                current, seen_extension = [], False
        if current:
            out.append(Statement(tuple(current)))
    out.sort(key=lambda s: s.first_id)
    return out


# -- reverse DNS ---------------------------------------------------------------------

_DNS_LOCK = threading.Lock()
_DNS_CACHE: dict[str, tuple[float, str | None]] = {}
DNS_TTL = 300.0
DNS_NEGATIVE_TTL = 60.0


def reverse_dns(addr: str | None, timeout: float) -> str | None:
    """The name of an address, or None when it does not resolve within ``timeout`` seconds.

    The lookup runs in a daemon thread so a slow resolver costs at most ``timeout``;
    answers (also failures) are cached for a few minutes.
    """
    if not addr or timeout <= 0:
        return None
    now = time.monotonic()
    with _DNS_LOCK:
        hit = _DNS_CACHE.get(addr)
    if hit is not None and hit[0] > now:
        return hit[1]
    answer: list[str | None] = []

    def lookup() -> None:
        try:
            answer.append(socket.gethostbyaddr(addr)[0])
        except (OSError, UnicodeError):
            answer.append(None)

    worker = threading.Thread(target=lookup, name="auditor-reverse-dns", daemon=True)
    worker.start()
    worker.join(timeout)
    name = answer[0] if answer else None
    if name == addr:
        name = None
    with _DNS_LOCK:
        _DNS_CACHE[addr] = (now + (DNS_TTL if name else DNS_NEGATIVE_TTL), name)
    return name


def host_display(addr: str | None, name: str | None, *, none: str = "local socket") -> str:
    """``name (addr)`` when the address resolves, else the address.

    >>> host_display("10.0.0.5", "db1.example.org"), host_display("10.0.0.5", None)
    ('db1.example.org (10.0.0.5)', '10.0.0.5')
    >>> host_display(None, None)
    'local socket'
    """
    if not addr:
        return none
    return f"{name} ({addr})" if name else addr


# -- settings and rendering ------------------------------------------------------------


@dataclass(frozen=True)
class SmtpSettings:
    host: str = "localhost"
    port: int = 25
    security: str = "none"
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 10.0
    ca_file: str | None = None

    def describe(self) -> str:
        """Where mail goes, for messages (never the password).

        >>> SmtpSettings("mx", 587, "starttls", "dba", "hunter2").describe()
        'SMTP server mx:587 (starttls, login dba)'
        """
        login = f", login {self.username}" if self.username else ""
        return f"SMTP server {self.host}:{self.port} ({self.security}{login})"


@dataclass(frozen=True)
class Templates:
    """Jinja2 template sources: subject, text part, HTML part (autoescaped)."""

    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class MailSettings:
    """Everything needed to word and send DDL mails."""

    mail_from: str
    mail_to: tuple[str, ...]
    templates: Templates
    mail_cc: tuple[str, ...] = ()
    server_name: str | None = None
    dns_timeout: float = 1.0
    smtp: SmtpSettings = SmtpSettings()

    @property
    def recipients(self) -> list[str]:
        out: list[str] = []
        for addr in (*self.mail_to, *self.mail_cc):
            if addr not in out:
                out.append(addr)
        return out

    @property
    def message_id_domain(self) -> str:
        """The sender's domain (Message-IDs are then unique to this sender).

        >>> MailSettings("dba-alerts@Example.org", (), Templates("", "", "")).message_id_domain
        'example.org'
        """
        domain = self.mail_from.rpartition("@")[2].strip(" >").lower()
        return domain if re.fullmatch(r"[a-z0-9.-]+", domain or "") else "auditor.invalid"


class Renderer:
    """Compiled templates (a sandboxed Jinja2 environment; HTML autoescaped)."""

    def __init__(self, templates: Templates) -> None:
        text_env = jinja2.sandbox.SandboxedEnvironment(
            autoescape=False, undefined=jinja2.StrictUndefined, keep_trailing_newline=True
        )
        html_env = jinja2.sandbox.SandboxedEnvironment(
            autoescape=True, undefined=jinja2.StrictUndefined, keep_trailing_newline=True
        )
        try:
            self.subject = text_env.from_string(templates.subject)
            self.text = text_env.from_string(templates.text)
            self.html = html_env.from_string(templates.html)
        except jinja2.TemplateSyntaxError as exc:
            raise DeliveryError(
                f"mail template error at line {exc.lineno}: {exc.message}", permanent=True
            ) from None

    def render(self, context: Mapping[str, Any]) -> tuple[str, str, str]:
        try:
            subject = self.subject.render(context)
            text = self.text.render(context)
            html = self.html.render(context)
        except jinja2.TemplateError as exc:
            raise DeliveryError(f"mail template error: {exc}", permanent=True) from None
        return " ".join(subject.split()), text, html


_ACTIONS = {"sql_drop": "dropped", "table_rewrite": "rewritten"}


def objects_of(stmt: Statement) -> list[dict[str, Any]]:
    """The objects a statement touched, once each, in firing order."""
    out: list[dict[str, Any]] = []
    seen: set[tuple[str, str, str]] = set()
    for row in stmt.rows:
        for o in row.objects:
            action = _ACTIONS.get(row.event) or str(o.get("command_tag") or row.command_tag)
            identity = str(o.get("object_identity") or o.get("object_name") or "")
            otype = str(o.get("object_type") or "")
            key = (action, otype, identity)
            if key in seen:
                continue
            seen.add(key)
            out.append(
                {
                    "action": action,
                    "object_type": otype,
                    "identity": identity,
                    "schema": o.get("schema_name"),
                    "in_extension": o.get("in_extension") is True,
                }
            )
    return out


def _utc_text(t: datetime) -> str:
    return t.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M:%S.%f UTC")


def mail_context(
    stmt: Statement,
    settings: MailSettings,
    *,
    message_id: str,
    fallback_server: str | None = None,
    server_port: int | None = None,
    resolve: Callable[[str | None], str | None] | None = None,
) -> dict[str, Any]:
    """The values templates see (every text from the database masked)."""
    f = stmt.first
    if resolve is None:

        def resolve(addr: str | None) -> str | None:
            return reverse_dns(addr, settings.dns_timeout)

    server_host = resolve(f.server_addr)
    client_host = resolve(f.client_addr)
    server = settings.server_name or server_host or f.server_addr or fallback_server or "localhost"
    objects = objects_of(stmt)
    callers = [r.caller_context for r in stmt.rows if r.caller_context]
    port = f.server_port if f.server_port is not None else server_port
    client = host_display(f.client_addr, client_host)
    if f.client_port is not None and f.client_addr:
        client += f", port {f.client_port}"
    return {
        "tag": stmt.tag,
        "command_tags": stmt.command_tags,
        "server": server,
        "server_host": server_host,
        "server_addr": f.server_addr,
        "server_display": host_display(f.server_addr, server_host, none=server + " (local socket)"),
        "port": port,
        "database": f.database,
        "session_user": f.session_user,
        "current_user": f.current_user,
        "login_user": f.login_user,
        "client": client,
        "client_host": client_host,
        "client_addr": f.client_addr,
        "client_port": f.client_port,
        "application": mask(f.application_name) if f.application_name else None,
        "time": _utc_text(f.statement_time),
        "statement_time": f.statement_time,
        "backend_pid": f.backend_pid,
        "session_id": f.session_id,
        "vxid": f.vxid,
        "xid": f.xid,
        "first_event_id": stmt.first_id,
        "last_event_id": stmt.last_id,
        "event_count": len(stmt.rows),
        "objects": objects[:MAX_OBJECTS],
        "object_count": len(objects),
        "objects_omitted": max(0, len(objects) - MAX_OBJECTS),
        "query": mask(f.query or ""),
        "indirect": bool(callers),
        "caller_context": mask(callers[0]) if callers else None,
        "message_id": message_id,
    }


_UTF8_QP = email_charset.Charset("utf-8")
_UTF8_QP.body_encoding = email_charset.QP
_WIRE = compat32.clone(linesep="\r\n", max_line_length=998)  # no folding of short headers


def _header(value: str) -> str | Header:
    """ASCII as is; anything else as an RFC 2047 encoded word (never a raw newline)."""
    value = " ".join(value.split())
    return value if value.isascii() else Header(value, "utf-8")


def build_message(
    stmt: Statement,
    settings: MailSettings,
    renderer: Renderer,
    *,
    message_id: str,
    fallback_server: str | None = None,
    server_port: int | None = None,
    resolve: Callable[[str | None], str | None] | None = None,
) -> Message:
    """The mail of one statement: text and HTML parts, stable Message-ID and boundary.

    Built with the ``email.mime`` classes (four times faster than EmailMessage, and
    the worker builds one per DDL); bodies are UTF-8 quoted-printable.
    """
    context = mail_context(
        stmt,
        settings,
        message_id=message_id,
        fallback_server=fallback_server,
        server_port=server_port,
        resolve=resolve,
    )
    subject, text, html = renderer.render(context)
    # A boundary derived from the Message-ID: a resent message is byte for byte the same.
    boundary = "auditor-" + hashlib.sha256(message_id.encode()).hexdigest()[:32]
    msg = MIMEMultipart("alternative", boundary=boundary)
    msg["Subject"] = _header(subject)  # type: ignore[assignment]
    msg["From"] = settings.mail_from
    msg["To"] = ", ".join(settings.mail_to)
    if settings.mail_cc:
        msg["Cc"] = ", ".join(settings.mail_cc)
    msg["Date"] = format_datetime(stmt.first.statement_time)
    msg["Message-ID"] = message_id
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auditor-Database"] = _header(stmt.first.database)  # type: ignore[assignment]
    msg["X-Auditor-Events"] = f"{stmt.first_id}-{stmt.last_id}"
    msg["X-Auditor-Command-Tag"] = stmt.tag
    msg.attach(MIMEText(text, "plain", _UTF8_QP))  # type: ignore[arg-type]
    msg.attach(MIMEText(html, "html", _UTF8_QP))  # type: ignore[arg-type]
    return msg


def message_bytes(msg: Message) -> bytes:
    """The wire form (CRLF line ends)."""
    return msg.as_bytes(policy=_WIRE)


# -- SMTP ------------------------------------------------------------------------------


def _scrub(text: str, secret: str | None) -> str:
    text = " ".join(str(text).split())
    if secret:
        text = text.replace(secret, "*****")
    return mask(text)


def _reply_text(resp: bytes | str) -> str:
    return resp.decode("utf-8", "replace") if isinstance(resp, bytes) else str(resp)


class SmtpSession:
    """One SMTP connection, opened on first use and reused for the next messages.

    A connection that sat idle is checked with NOOP before it is used again (servers
    close idle connections), and opened anew when that fails.
    """

    #: Seconds of idleness after which a kept connection is checked before use.
    IDLE_CHECK = 5.0

    def __init__(self, settings: SmtpSettings) -> None:
        if settings.security not in SECURITY_MODES:
            raise DeliveryError(
                f"smtp security {settings.security!r} is not one of {', '.join(SECURITY_MODES)}",
                permanent=True,
            )
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None
        self._used_at = 0.0

    def __enter__(self) -> SmtpSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _fail(self, what: str, exc: BaseException) -> DeliveryError:
        self._drop()
        s = self.settings
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        if isinstance(exc, smtplib.SMTPResponseException):
            reason = f"{exc.smtp_code} {_reply_text(exc.smtp_error)}"
        elif isinstance(exc, (TimeoutError, socket.timeout)):
            reason = f"no answer within {s.timeout:g} s"
        elif not reason:
            reason = type(exc).__name__
        permanent = isinstance(exc, smtplib.SMTPAuthenticationError)
        return DeliveryError(
            f"{s.describe()}: {what}: {_scrub(reason, s.password)}",
            permanent=permanent,
            connection=not permanent,
        )

    def connect(self) -> smtplib.SMTP:
        if self._smtp is not None:
            if time.monotonic() - self._used_at < self.IDLE_CHECK:
                return self._smtp
            try:
                code, _ = self._smtp.noop()
                if code == 250:
                    self._used_at = time.monotonic()
                    return self._smtp
            except (OSError, smtplib.SMTPException):
                pass
            self._drop()
        s = self.settings
        local = socket.gethostname() or "localhost"  # getfqdn() may wait on DNS
        smtp: smtplib.SMTP | None = None
        try:
            if s.security == "tls":
                context = ssl.create_default_context(cafile=s.ca_file)
                smtp = smtplib.SMTP_SSL(
                    s.host, s.port, local_hostname=local, timeout=s.timeout, context=context
                )
            else:
                smtp = smtplib.SMTP(s.host, s.port, local_hostname=local, timeout=s.timeout)
                if s.security == "starttls":
                    smtp.ehlo()
                    if not smtp.has_extn("starttls"):
                        raise smtplib.SMTPNotSupportedError("the server does not offer STARTTLS")
                    smtp.starttls(context=ssl.create_default_context(cafile=s.ca_file))
                    smtp.ehlo()
            if s.username:
                smtp.login(s.username, s.password or "")
        except (OSError, smtplib.SMTPException, ssl.SSLError, ValueError) as exc:
            self._smtp = smtp
            raise self._fail("cannot connect", exc) from None
        self._smtp = smtp
        self._used_at = time.monotonic()
        return smtp

    def send(
        self,
        msg: Message,
        sender: str,
        recipients: Sequence[str],
        *,
        on_accepted: Callable[[], None] | None = None,
    ) -> dict[str, str]:
        """Send one message; returns the recipients the server refused (others got it).

        ``on_accepted`` runs the moment the server's 250 to the end of the message is
        read, before anything else: the worker commits its delivery record there, so
        that only a crash in the microseconds between that reply and the COMMIT can
        make it send a delivered message again (with the same Message-ID).  Without a
        250 nothing is recorded and the message is sent again later: a server that
        keeps a message whose client vanished before reading the reply (RFC 1047)
        then gets it twice, never zero times.
        """
        smtp = self.connect()
        data = message_bytes(msg)
        stage = "MAIL FROM"
        try:
            smtp.ehlo_or_helo_if_needed()
            options: list[str] = []
            if smtp.does_esmtp and smtp.has_extn("size"):
                options.append(f"size={len(data)}")
            code, resp = smtp.mail(sender, options)
            if code != 250:
                raise smtplib.SMTPSenderRefused(code, resp, sender)
            stage = "RCPT TO"
            refused: dict[str, str] = {}
            for rcpt in recipients:
                code, resp = smtp.rcpt(rcpt)
                if code not in (250, 251):
                    refused[rcpt] = f"{code} {_reply_text(resp)}"
            if len(refused) == len(recipients):
                smtp.rset()
                raise DeliveryError(
                    f"{self.settings.describe()}: every recipient was refused: "
                    + "; ".join(f"{k}: {v}" for k, v in refused.items())
                )
            stage = "DATA"
            code, resp = smtp.docmd("DATA")
            if code != 354:
                raise smtplib.SMTPDataError(code, resp)
            body = re.sub(rb"(?m)^\.", b"..", data)
            if not body.endswith(b"\r\n"):
                body += b"\r\n"
            smtp.send(body + b".\r\n")
            stage = "end of data"
            code, resp = smtp.getreply()
            if code != 250:
                raise smtplib.SMTPDataError(code, resp)
            if on_accepted is not None:
                on_accepted()
            self._used_at = time.monotonic()
            return refused
        except DeliveryError:
            raise
        except (OSError, smtplib.SMTPException, ValueError) as exc:
            if isinstance(exc, smtplib.SMTPResponseException):
                # The server answered; the connection can carry the next message.
                try:
                    smtp.rset()
                except (OSError, smtplib.SMTPException):
                    self._drop()
                s = self.settings
                raise DeliveryError(
                    f"{s.describe()}: {stage} refused: {exc.smtp_code} "
                    f"{_scrub(_reply_text(exc.smtp_error), s.password)}",
                    permanent=500 <= exc.smtp_code < 600,
                ) from None
            raise self._fail(f"{stage} failed", exc) from None

    def _drop(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is not None:
            with contextlib.suppress(OSError):
                smtp.close()

    def close(self) -> None:
        smtp, self._smtp = self._smtp, None
        if smtp is None:
            return
        try:
            smtp.quit()
        except (OSError, smtplib.SMTPException):
            with contextlib.suppress(OSError):
                smtp.close()


# -- the in-database mode (called by sql/mail_plpython.sql) --------------------------------


def settings_from_row(row: Mapping[str, Any]) -> MailSettings:
    """MailSettings from the ``mail_config`` row (the plpython mode's configuration)."""
    smtp = SmtpSettings(
        host=row["smtp_host"] or "localhost",
        port=int(row["smtp_port"] or 25),
        security=row["smtp_security"] or "none",
        username=row["smtp_username"],
        password=row["smtp_password"],
        timeout=float(row["smtp_timeout"] or 10.0),
        ca_file=row["smtp_ca_file"],
    )
    return MailSettings(
        mail_from=row["mail_from"],
        mail_to=tuple(row["mail_to"] or ()),
        mail_cc=tuple(row["mail_cc"] or ()),
        server_name=row["server_name"],
        dns_timeout=float(row["dns_timeout"] if row["dns_timeout"] is not None else 1.0),
        smtp=smtp,
        templates=Templates(row["subject_template"], row["text_template"], row["html_template"]),
    )


def plpython_send(
    plpy: Any, sd: dict[str, Any], first_id: int, xid: int, queries: Mapping[str, str]
) -> str | None:
    """Mail the statements of the committing transaction (plpython3u, at commit).

    Called by the deferred trigger ``events_mail`` for the transaction's first
    unmailed row.  In strict mode the first failure is returned as the refusal
    message, and the trigger raises it, which aborts the commit: the DDL is refused
    and nothing of it stays recorded.  Otherwise a failed mail is recorded as pending
    (``auditor notify`` retries it), the client gets a WARNING, and None is returned.
    """
    config = plpy.execute(queries["config"])
    if not config or config[0]["mail_mode"] != "plpython":
        return None
    row = config[0]
    strict = bool(row["strict"])
    plans = sd.setdefault("plans", {})
    if "events" not in plans:
        plans["events"] = plpy.prepare(queries["events"], ["bigint", "bigint"])
        plans["claim"] = plpy.prepare(
            queries["claim"],
            ["bigint", "text", "bigint[]", "text[]", "text", "text", "integer", "text"],
        )
    rows = list(plpy.execute(plans["events"], [first_id, xid]))
    statements = group_statements(rows)
    if not statements:
        return None
    settings = settings_from_row(row)
    renderer: Renderer | None = None
    setup_error: DeliveryError | None = None
    try:
        t = settings.templates
        key = hashlib.sha256("\0".join((t.subject, t.text, t.html)).encode("utf-8")).hexdigest()
        renderer = sd.get("renderer")
        if renderer is None or sd.get("renderer_key") != key:
            renderer = Renderer(t)
            sd["renderer"], sd["renderer_key"] = renderer, key
        if not settings.mail_to:
            raise DeliveryError("no recipients are configured (auditor install --mail-to)")
    except DeliveryError as exc:
        setup_error = exc
    fallback = socket.gethostname()
    port = int(row["server_port_setting"])
    with SmtpSession(settings.smtp) as session:
        for stmt in statements:
            message_id = stmt.message_id(settings.message_id_domain)
            error: str | None = None
            try:
                if setup_error is not None or renderer is None:
                    raise setup_error or DeliveryError("no renderer")
                msg = build_message(
                    stmt,
                    settings,
                    renderer,
                    message_id=message_id,
                    fallback_server=fallback,
                    server_port=port,
                )
                refused = session.send(msg, settings.mail_from, settings.recipients)
                if refused:
                    error = "refused recipients: " + "; ".join(
                        f"{k}: {v}" for k, v in refused.items()
                    )
                status = "delivered"
            except DeliveryError as exc:
                if strict:
                    return (
                        f"auditor: strict mode: the report of {stmt.tag} could not be mailed "
                        f"({exc}), so the command is refused"
                    )
                status, error = "pending", str(exc)
                plpy.warning(
                    f"auditor: the report of {stmt.tag} could not be mailed ({exc}); "
                    "it is kept as pending for auditor notify"
                )
            plpy.execute(
                plans["claim"],
                [
                    stmt.first_id,
                    message_id,
                    stmt.event_ids,
                    stmt.command_tags,
                    status,
                    error,
                    1,
                    "plpython",
                ],
            )
    return None
