"""``auditor timeline``: the story of one object, user or session across both channels.

During an incident the question is not "what differs tonight" but "what
happened to ``payroll.salaries`` (or to what ``mallory`` did, or in session
``6b07a44b.27b8``), step by step, and where do the channels disagree".  This
module takes the merged story that :func:`auditor.reconcile.analyse` builds
(one step per logged statement, per group of audit rows no statement explains,
per gap or reload) and keeps the steps of the object, user or session, in
order, each with what the log said (``file:line``), what the trigger recorded
(row ids, objects) and the finding class when the two disagree.

**Object names.**  ``--object`` takes a qualified name as PostgreSQL reads one
(:func:`parse_object_name`): unquoted parts are folded to lower case,
double-quoted parts keep their case, dots and spaces (``"Payroll"."a.b"``).
Names are shown as ``quote_ident()`` writes them (:func:`quote_ident`), and the
names in statements are compared part by part, so ``public."a.b"`` is neither
``b`` nor ``a.b``.  A bare name (``salaries``) matches that name in any schema;
``schema.name`` only in that schema.  A step belongs to the object when the name
appears

* in the object identities of its audit rows (``sql_drop`` rows too), where
  the table part of a column (``s.t.col``), of a constraint, trigger, rule or
  policy (``con on s.t``) and of a column default (``for s.t.col``) counts;
  arrays of the row type (``s.t[]``) count; function arguments do not;
* in the statement text the log holds (or, for rows with no log line, in the
  audit row's query and in the ``SQL statement "..."`` lines of its
  ``caller_context``: the DDL a DO block or function ran).  A name written
  without a schema there may be in any schema on the search path, so it also
  matches ``schema.name`` (the audit row, when there is one, tells which).
  Only statements whose text contains one of the object's names are parsed,
  so a name written with ``U&"..."`` escapes is not recognised.

**Renames.**  The object keeps its history across ``RENAME TO`` and ``SET
SCHEMA`` (and ``ALTER SCHEMA ... RENAME``) in both directions: when a step
renames X to Y and the object is known as X at that step, it is also known as
Y from that step on, until a later step drops Y or renames it again; when the
object is known as Y at that step, it was X before it, back to the last step
that dropped an X or renamed something to X.  An ``ALTER SCHEMA a RENAME TO
b`` moves every ``a.name`` the object is known as to ``b.name``, and belongs to
the story when a step names the object under the name it taught.  This is
repeated until nothing new is learnt, so
``--object`` with the newest name shows the steps under every older name and
the oldest name shows every later one.  The name given on the command line
itself is matched at every step (two objects that bore the same name one
after the other are both shown).

**Context.**  When a filter is given, steps that weakened a channel
(``EVENT_TRIGGER_DDL``, ``CONFIG_DRIFT``, ``LOG_GAP``) up to the object's last
step are shown too, marked as context, because they explain the disagreements
of the object's own steps (an ``ALTER EVENT TRIGGER ... DISABLE`` before an
``UNREPORTED_DDL``); when a step's audit row was deleted or altered, context
after the last step is shown too (the tampering came later).  Event-trigger
DDL counts only in the databases of the matched steps, a session-level ``SET``
only in their sessions.

**What is not known.**  Each step is told by whichever channel saw it, and says
what it cannot know (``TimelineStep.unknown``).  Audit rows in a stretch no log
read covers (their ``LOG_GAP``) are steps of their own, told by the trigger alone:
the statement line and the markers (hence the rows' digests) are unknown.
Without ``--dsn`` the audit table is not read: a marker proves the trigger fired,
not that its row was deleted, so the rows are "not read", a step no finding
judges is "unchecked", and a finding that judged only the rows gives way to
what the log alone shows (a ``SET log_statement`` in the same string, a missing
``ddl_command_end`` marker).

Filters combine with AND: ``--user`` matches the log's user or the audit
row's session_user, current_user or login user; ``--session`` the session id
(``%c``) of either channel.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any

from auditor.classify import classify
from auditor.config import Config
from auditor.errors import AuditorError, ConfigError
from auditor.findings import MEANING
from auditor.matcher import Firing, Step
from auditor.model import AuditEvent, Finding, FindingClass, LogRecord, MessageKind, Severity
from auditor.redact import mask
from auditor.terminal import json_text, lines, visible

C = FindingClass

Name = tuple[str, ...]

#: Classes of steps that weaken a channel: shown as context of a filtered story.
CONTEXT_CLASSES = frozenset({C.EVENT_TRIGGER_DDL, C.CONFIG_DRIFT, C.LOG_GAP})

#: Classes that mean the audit table was tampered with after the step.
TAMPERED_CLASSES = frozenset({C.AUDIT_ROW_MISSING, C.AUDIT_ROW_ALTERED})

#: One short phrase per class, for the one-line "what happened".
PHRASE: dict[FindingClass, str] = {
    C.UNREPORTED_DDL: "logged; the audit trigger missed it",
    C.AUDIT_ROW_MISSING: "audit row deleted (its marker is in the log)",
    C.AUDIT_ROW_ALTERED: "audit row altered after the fact",
    C.UNLOGGED_DDL: "audited; the log has no statement line",
    C.ATTRIBUTION_MISMATCH: "the channels disagree on who or where",
    C.IMPERSONATED_DDL: "run as another role (SET SESSION AUTHORIZATION)",
    C.MARKER_MISSING: "audited and logged, but its marker is missing",
    C.LOG_TAMPERED: "the log's own sequence is broken",
    C.SILENT_SCHEMA_CHANGE: "the catalog changed; no channel explains it",
    C.UNPARSED_STATEMENT: "logged; the parser cannot read it",
    C.EVENT_TRIGGER_DDL: "event-trigger DDL, only the log sees it",
    C.CONFIG_DRIFT: "a channel was weakened",
    C.LOG_GAP: "no readable log",
    C.UNMONITORED_DATABASE: "database without the auditor",
    C.UNAUDITABLE_DDL: "invisible to event triggers, only the log sees it",
    C.INDIRECT_DDL: "ran inside DO/function, only the trigger sees it",
    C.FAILED_DDL: "failed",
    C.ROLLED_BACK_DDL: "rolled back",
}
AGREE = "both channels agree"

#: Classes that judge the audit rows themselves: without the audit table they say
#: nothing (a marker proves the trigger fired, not that its row is gone).
ROW_CLASSES = frozenset(
    {
        C.UNREPORTED_DDL, C.AUDIT_ROW_MISSING, C.AUDIT_ROW_ALTERED, C.UNLOGGED_DDL,
        C.MARKER_MISSING, C.UNMONITORED_DATABASE, C.INDIRECT_DDL, C.ROLLED_BACK_DDL,
    }
)  # fmt: skip

#: What a step cannot tell when no log read covers its audit rows.
NOT_IN_LOG = (
    "the statement line (no log read covers this time)",
    "the trigger's markers (so the rows' digests are not verified)",
)
#: What a step cannot tell when the audit table was not read.
NOT_READ = ("the audit rows (the audit table was not read: no --dsn)",)


# -- names ---------------------------------------------------------------------


#: PostgreSQL's NAMEDATALEN - 1: longer identifiers are truncated (to whole characters).
MAX_IDENTIFIER_BYTES = 63


def _ident_start(ch: str) -> bool:
    """scan.l's ``ident_start``: ASCII letters, underscore, any non-ASCII character."""
    return ch == "_" or ("a" <= ch.lower() <= "z" and ch.isascii()) or ord(ch) >= 0x80


def _ident_cont(ch: str) -> bool:
    return _ident_start(ch) or (ch.isdigit() and ch.isascii()) or ch == "$"


def _truncate(part: str) -> str:
    """Cut an identifier to 63 bytes of UTF-8 at a character boundary, as the server does.

    >>> len(_truncate("é" * 40).encode())
    62
    """
    data = part.encode("utf-8", "surrogatepass")
    if len(data) <= MAX_IDENTIFIER_BYTES:
        return part
    return data[:MAX_IDENTIFIER_BYTES].decode("utf-8", "ignore")


def _downcase(part: str) -> str:
    """PostgreSQL folds unquoted names: ASCII letters only, in a UTF-8 database.

    >>> _downcase("CaféÉ")
    'caféÉ'
    """
    return "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in part)


def _unicode_escapes(body: str, escape: str, where: str) -> str:
    r"""Decode the ``\XXXX`` and ``\+XXXXXX`` escapes of a ``U&"..."`` identifier.

    >>> _unicode_escapes(r"d\0061t\+000061\\", "\\", "x")
    'data\\'
    """
    out: list[str] = []
    i, n = 0, len(body)
    while i < n:
        ch = body[i]
        if ch != escape:
            out.append(ch)
            i += 1
            continue
        if body[i + 1 : i + 2] == escape:
            out.append(escape)
            i += 2
            continue
        width = 6 if body[i + 1 : i + 2] == "+" else 4
        start = i + 2 if width == 6 else i + 1
        digits = body[start : start + width]
        if len(digits) != width or any(c not in "0123456789abcdefABCDEF" for c in digits):
            raise ConfigError(f"--object {where}: invalid Unicode escape")
        cp = int(digits, 16)
        if cp == 0 or cp > 0x10FFFF or 0xD800 <= cp <= 0xDFFF:
            raise ConfigError(f"--object {where}: invalid Unicode escape value")
        out.append(chr(cp))
        i = start + width
    return "".join(out)


def parse_object_name(text: str) -> Name:
    """A ``--object`` value read as PostgreSQL reads a qualified name: ``name`` or
    ``schema.name``, parts separated by dots (spaces around them allowed).

    An unquoted part follows the identifier rules (letters, digits, ``_`` and ``$``,
    not starting with a digit or ``$``) and is folded to lower case (ASCII letters
    only, as in a UTF-8 database); a double-quoted part keeps its case, its dots and
    its spaces (``""`` is one quote); ``U&"..."`` parts take Unicode escapes (with
    ``UESCAPE 'c'``).  Parts longer than 63 bytes are truncated, as the server
    truncates them.

    >>> parse_object_name('Payroll.Salaries')
    ('payroll', 'salaries')
    >>> parse_object_name('"Payroll"."a""b"')
    ('Payroll', 'a"b')
    >>> parse_object_name('"a.b"'), parse_object_name('public . "x y"')
    (('a.b',), ('public', 'x y'))
    >>> parse_object_name(r'U&"d\\0061ta"'), parse_object_name('U&"d!0061ta"' + " UESCAPE '!'")
    (('data',), ('data',))
    """
    where = repr(text)
    parts: list[str] = []
    i, n = 0, len(text)

    def skip_space(k: int) -> int:
        while k < n and text[k] in " \t\r\n\f":
            k += 1
        return k

    while True:
        i = skip_space(i)
        if i >= n:
            raise ConfigError(f"--object {where}: empty name part")
        unicode = text[i : i + 3].lower() == 'u&"'
        if text[i] == '"' or unicode:
            j = i + (3 if unicode else 1)
            buf = []
            while True:
                k = text.find('"', j)
                if k < 0:
                    raise ConfigError(f"--object {where}: unterminated double quote")
                buf.append(text[j:k])
                if text[k + 1 : k + 2] == '"':
                    buf.append('"')
                    j = k + 2
                    continue
                i = k + 1
                break
            part = "".join(buf)
            if not part:
                raise ConfigError(f"--object {where}: zero-length quoted name")
            if unicode:
                escape = "\\"
                m = re.compile(r"\s*UESCAPE\s*'([^'\s0-9a-fA-F+\"])'", re.I).match(text, i)
                if m is not None:
                    escape, i = m.group(1), m.end()
                part = _unicode_escapes(part, escape, where)
        elif _ident_start(text[i]):
            j = i + 1
            while j < n and _ident_cont(text[j]):
                j += 1
            part, i = _downcase(text[i:j]), j
        else:
            raise ConfigError(
                f'--object {where}: {text[i]!r} cannot start a name (quote it: "...")'
            )
        parts.append(_truncate(part))
        i = skip_space(i)
        if i >= n:
            break
        if text[i] != ".":
            raise ConfigError(
                f"--object {where}: unexpected {text[i]!r} after {quote_ident(part)} "
                '(a name with spaces or other signs is written "in double quotes")'
            )
        i += 1
    if not 1 <= len(parts) <= 2:
        raise ConfigError(f"--object {where}: give NAME or SCHEMA.NAME")
    return tuple(parts)


def _quoted_keywords() -> frozenset[str]:
    """Keywords ``quote_ident()`` quotes: every category but the unreserved."""
    from pglast import keywords

    return frozenset(
        keywords.RESERVED_KEYWORDS | keywords.COL_NAME_KEYWORDS | keywords.TYPE_FUNC_NAME_KEYWORDS
    )


_QUOTED_KEYWORDS = _quoted_keywords()
_PLAIN_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]*")


def quote_ident(part: str) -> str:
    """One name part as PostgreSQL's ``quote_ident()`` writes it.

    Left bare only when it is lower-case ASCII letters, digits and ``_`` (not
    starting with a digit) and not a keyword other than an unreserved one (the
    keyword list is pglast's grammar, which may know a few keywords an older
    server does not: quoting those as well still names the same object).

    >>> quote_ident("ledger"), quote_ident("Ledger"), quote_ident("a.b"), quote_ident('a"b')
    ('ledger', '"Ledger"', '"a.b"', '"a""b"')
    >>> quote_ident("select"), quote_ident("name"), quote_ident("café"), quote_ident("a$")
    ('"select"', 'name', '"café"', '"a$"')
    """
    if _PLAIN_IDENTIFIER.fullmatch(part) and part not in _QUOTED_KEYWORDS:
        return part
    return '"' + part.replace('"', '""') + '"'


def show_name(name: Name) -> str:
    """A name as PostgreSQL prints it (``quote_ident`` of each part, joined by dots).

    >>> show_name(("public", "Ledger")), show_name(("t",)), show_name(("public", "a.b"))
    ('public."Ledger"', 't', 'public."a.b"')
    """
    return ".".join(quote_ident(p) for p in name)


_ID_TOKEN = re.compile(r'"(?:[^"]|"")*"|[^\s."()\[\],]+|[.()\[\],]|\s+')
#: Words of object identities that are structure, not names (reserved, so a real
#: object of that name is always quoted).
_STRUCTURE = frozenset({"on", "for", "of", "in", "using", "as", "from", "to"})


def identity_names(identity: str) -> list[Name]:
    """The names in an ``object_identity`` (quoted as PostgreSQL quotes identifiers).

    >>> identity_names('public."Ledger"')
    [('public', 'Ledger')]
    >>> identity_names("accounts_pkey on s2.ledger")
    [('accounts_pkey',), ('s2', 'ledger'), ('s2', 'accounts_pkey')]
    >>> identity_names("for s2.ledger.id"), identity_names("s2.ledger[]")
    ([('s2', 'ledger', 'id')], [('s2', 'ledger')])
    >>> identity_names("public.f(integer,public.other)")
    [('public', 'f')]
    """
    names: list[list[str]] = []
    words: list[str | None] = []  # the structure word before each name
    depth = 0
    after_dot = False
    word: str | None = None
    for m in _ID_TOKEN.finditer(identity):
        tok = m.group()
        if tok == "(":
            depth += 1
        elif tok == ")":
            depth = max(0, depth - 1)
        if depth or tok in "()[],":
            after_dot = False
            continue
        if tok == ".":
            after_dot = bool(names)
            continue
        if tok.isspace():
            after_dot = False
            continue
        if tok.startswith('"'):
            part = tok[1:-1].replace('""', '"')
        elif tok in _STRUCTURE:
            word, after_dot = tok, False
            continue
        else:
            part = tok
        if after_dot:
            names[-1].append(part)
        else:
            names.append([part])
            words.append(word)
            word = None
        after_dot = False
    out = [tuple(n) for n in names]
    # "name on schema.table": the constraint/trigger/rule/policy lives in that schema.
    if len(out) >= 2 and len(out[0]) == 1 and words[1] == "on" and len(out[1]) >= 2:
        out.append((out[1][0], out[0][0]))
    return out


def name_matches(pattern: Name, name: Name) -> bool:
    """Whether ``name`` (from an identity or a statement) is the object ``pattern``.

    >>> name_matches(("t",), ("s2", "t")), name_matches(("t",), ("s2", "t", "col"))
    (True, True)
    >>> name_matches(("public", "t"), ("s2", "t")), name_matches(("s2", "t"), ("t",))
    (False, True)
    >>> name_matches(("ledger",), ("ledger_pkey",))
    False
    """
    if not name:
        return False
    if len(pattern) == 1:
        return (name[1] if len(name) >= 2 else name[0]) == pattern[0]
    if len(name) == 1:  # written without a schema: could be any schema on the search path
        return name[0] == pattern[-1]
    return name[0] == pattern[0] and name[1] == pattern[1]


# -- the step model ---------------------------------------------------------------


@dataclass(frozen=True)
class LogView:
    """What the log says about a step (statement line, reload line or gap)."""

    file: str | None
    line: int | None
    time: datetime | None
    user: str | None
    database: str | None
    application: str | None
    client: str | None
    session_id: str | None
    vxid: str | None
    statement: str | None  # masked
    error: str | None = None

    @property
    def where(self) -> str:
        """``file:line`` with the file's base name (the full path is in CSV and JSON)."""
        if not self.file:
            return ""
        name = PurePath(self.file).name
        return f"{name}:{self.line}" if self.line is not None else name


@dataclass(frozen=True)
class RowView:
    """What the trigger recorded in one firing: its row, its marker, or both."""

    database: str
    id: int
    event: str
    command_tag: str
    objects: tuple[str, ...]
    status: str  # "row", "row altered", "row gone", "not read" (no --dsn)
    marker: str | None  # file:line of the marker in the log
    xact_status: str | None
    session_user: str | None
    current_user: str | None
    session_id: str | None
    time: datetime | None
    query: str | None  # masked; only when it differs from the log's statement
    caller: str | None  # the DO block / function that ran it (caller_context)


@dataclass(frozen=True)
class TimelineStep:
    """One step of the story, as both channels saw it."""

    n: int
    time: datetime | None
    channels: tuple[str, ...]  # subset of ("log", "marker", "audit")
    log: LogView | None
    rows: tuple[RowView, ...]
    finding: Finding | None
    summary: str
    names: tuple[str, ...]  # object names the step mentions
    context: bool = False
    #: What this step cannot tell, e.g. the audit rows when the audit table was not
    #: read, or the statement line when no log covers the rows' time.
    unknown: tuple[str, ...] = ()

    @property
    def audit_text(self) -> str:
        """Short audit view: row ids and their state, or 'no row'."""
        if not self.rows:
            return "no row" if self.log is not None and self.log.statement else ""
        gone = [r.id for r in self.rows if r.status == "row gone"]
        unread = [r.id for r in self.rows if r.status == "not read"]
        altered = [r.id for r in self.rows if r.status == "row altered"]
        present = [r.id for r in self.rows if r.status == "row"]
        parts = []
        if present:
            parts.append("#" + _id_ranges(present))
            events = {r.event for r in self.rows if r.status == "row"}
            if "ddl_command_end" not in events:
                parts[-1] += " " + "/".join(sorted(events))
        if altered:
            parts.append("#" + _id_ranges(altered) + " altered")
        if gone:
            parts.append("#" + _id_ranges(gone) + " gone")
        if unread:
            parts.append("#" + _id_ranges(unread) + " not read")
        return ", ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        """The step as one JSON object (also the source of the CSV row)."""
        f = self.finding
        log = self.log
        return {
            "step": self.n,
            "time": _iso(self.time),
            "channels": list(self.channels),
            "context": self.context,
            "summary": self.summary,
            "not_known": list(self.unknown),
            "names": list(self.names),
            "log": None
            if log is None
            else {
                "file": log.file,
                "line": log.line,
                "time": _iso(log.time),
                "user": log.user,
                "database": log.database,
                "application": log.application,
                "client": log.client,
                "session_id": log.session_id,
                "vxid": log.vxid,
                "statement": log.statement,
                "error": log.error,
            },
            "audit": [
                {
                    "database": r.database,
                    "id": r.id,
                    "event": r.event,
                    "command_tag": r.command_tag,
                    "objects": list(r.objects),
                    "status": r.status,
                    "marker": r.marker,
                    "xact_status": r.xact_status,
                    "session_user": r.session_user,
                    "current_user": r.current_user,
                    "session_id": r.session_id,
                    "statement_time": _iso(r.time),
                    "query": r.query,
                    "caller": r.caller,
                }
                for r in self.rows
            ],
            "audit_note": (self.audit_text or None) if not self.rows else None,
            "finding": None
            if f is None
            else {
                "id": f.id,
                "class": f.cls.value,
                "severity": f.severity.value,
                "allowed": f.allowed,
                "explanation": f.explanation,
            },
        }


@dataclass(frozen=True)
class Alias:
    """A name the object bore over a range of steps (indexes into the sorted story)."""

    name: Name
    first: int | None  # None: from the start of the window
    last: int | None  # None: to the end
    via: int | None = None  # the rename step that taught us this name

    def covers(self, i: int) -> bool:
        return (self.first is None or i >= self.first) and (self.last is None or i <= self.last)


@dataclass(frozen=True)
class Timeline:
    """The ordered story and what was asked for."""

    steps: tuple[TimelineStep, ...]
    object_name: str | None = None
    user: str | None = None
    session: str | None = None
    #: Every name the object was followed under, e.g. ``accounts (steps 1-4)``.
    names: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()

    def title(self) -> str:
        what = []
        if self.object_name:
            what.append(f"object {self.object_name}")
        if self.user:
            what.append(f"user {self.user}")
        if self.session:
            what.append(f"session {self.session}")
        head = "Timeline of " + ", ".join(what) if what else "Timeline"
        return f"{head}: {len(self.steps)} step(s)"


# -- building --------------------------------------------------------------------------


@dataclass
class _Item:
    """One step while the timeline is assembled."""

    time: datetime | None
    record: LogRecord | None
    firings: tuple[Firing, ...]
    finding: Finding | None
    names: list[Name] = field(default_factory=list)
    renames: list[tuple[Name, Name, bool]] = field(default_factory=list)
    drops: list[Name] = field(default_factory=list)
    users: set[str] = field(default_factory=set)
    sessions: set[str] = field(default_factory=set)
    databases: set[str] = field(default_factory=set)
    #: For context steps: "any", or the session/database it is limited to.
    scope: tuple[str, str | None] = ("any", None)
    live: bool = False
    texts: list[str] = field(default_factory=list)  # SQL the step holds (log and rows)
    identities: list[Name] = field(default_factory=list)  # from the rows' objects
    tags: list[str] = field(default_factory=list)  # the logged statement's DDL tags
    changed: bool = True  # False when it failed or rolled back (renamed nothing)
    parsed: bool = False
    #: Audit rows of a stretch no log covers (their LOG_GAP finding): an object's
    #: step told by the trigger alone, never context.
    gap_rows: bool = False
    #: What this step cannot tell (the audit table was not read, no log covers it).
    unknown: tuple[str, ...] = ()

    def sort_key(self) -> tuple[int, datetime, str, int, int]:
        """Log order first: the step's log line, else its first marker's, else the
        row's statement time; the log's times have milliseconds, so ties within one
        millisecond are broken by the position in the log file, which is write order."""
        rec = self.record
        if rec is None:
            marks = [f.marker_record for f in self.firings if f.marker_record is not None]
            rec = (
                min(marks, key=lambda r: (r.time or _EPOCH, r.source.file, r.source.offset))
                if marks
                else None
            )
        t = rec.time if rec is not None else None
        if t is None:
            rows = [f.event.statement_time for f in self.firings if f.event is not None]
            t = min(rows) if rows else self.time
        if t is None:
            bucket = 2 if self.live else 0
            t = _EPOCH
        else:
            bucket = 1
            t = t.replace(microsecond=t.microsecond // 1000 * 1000)
        f = self.finding
        return (
            bucket,
            t,
            rec.source.file if rec else (f.log_file or "" if f else ""),
            rec.source.offset if rec else (f.log_line or 0 if f else 0),
            min((f.id for f in self.firings), default=0),
        )


_EPOCH = datetime.min.replace(tzinfo=UTC)
_SQL_STATEMENT = re.compile(
    r'SQL statement "(.*?)"(?=\n(?:PL/|SQL |[A-Za-z]+ function|extension)|\Z)', re.DOTALL
)


def _gather(item: _Item) -> None:
    """What a step says without parsing SQL: users, sessions, identities, its texts."""
    # A statement that failed or rolled back renamed and dropped nothing.
    f0 = item.finding
    item.changed = f0 is None or f0.cls not in (C.FAILED_DDL, C.ROLLED_BACK_DDL)
    texts = item.texts
    rec = item.record
    if rec is not None:
        if rec.kind in (MessageKind.STATEMENT, MessageKind.EXECUTE) and rec.statement:
            texts.append(rec.statement)
        _add(item.users, rec.user)
        _add(item.sessions, rec.session_id)
        _add(item.databases, rec.database)
    if rec is None and f0 is not None:
        if f0.statement and not item.firings:
            texts.append(f0.statement)
        _add(item.users, f0.user)
        _add(item.sessions, f0.session_id)
        _add(item.databases, f0.database)
    for f in item.firings:
        e = f.event
        _add(item.databases, f.database)
        if e is not None:
            for o in e.objects:
                if o.object_identity:
                    found = identity_names(o.object_identity)
                    item.identities.extend(found)
                    if (
                        item.changed
                        and found
                        and f.event_name == "sql_drop"
                        and f.tag.startswith("DROP ")
                        and o.original is not False
                    ):
                        item.drops.append(found[0])  # "trg on s.t" drops trg, not s.t
            if e.query and e.query not in texts:
                texts.append(e.query)
            for m in _SQL_STATEMENT.finditer(e.caller_context or ""):
                texts.append(m.group(1))
            for u in (e.session_user, e.current_user, e.login_user):
                _add(item.users, u)
            _add(item.sessions, e.session_id)
        mrec = f.marker_record
        if mrec is not None:
            _add(item.users, mrec.user)
            _add(item.sessions, mrec.session_id)
            if e is None and mrec.statement and mrec.statement not in texts:
                texts.append(mrec.statement)
            if e is None:
                for m in _SQL_STATEMENT.finditer(mrec.context or ""):
                    texts.append(m.group(1))
    item.texts = list(dict.fromkeys(texts))
    item.names = list(item.identities)
    if f0 is not None and f0.cls in CONTEXT_CLASSES:
        item.scope = _context_scope(item)


def _parse(item: _Item) -> None:
    """Names, renames and drops from the step's SQL (PostgreSQL's parser; done once)."""
    if item.parsed:
        return
    item.parsed = True
    identities = item.identities
    written: list[Name] = []
    renames: list[tuple[Name, Name, bool]] = []
    rec = item.record
    for text in item.texts:
        for s in classify(text).statements:
            names = list(s.object_names)
            written.extend(names)
            if rec is not None and text == rec.statement and (s.schema_change or s.settings):
                item.tags.append(s.command_tag)
            if not item.changed:
                continue
            renames.extend((r.old, r.new, r.schema) for r in s.renames)
            if s.command_tag.startswith("DROP "):
                item.drops.extend(names)
    # A name the statement writes without a schema is the one the audit row names,
    # when the step has a row naming it.
    resolved: list[Name] = []
    for n in written:
        schemas = [i[0] for i in identities if len(n) == 1 and len(i) >= 2 and i[1] == n[0]]
        if schemas:
            resolved.extend((sch, n[0]) for sch in dict.fromkeys(schemas))
        else:
            resolved.append(n)
    item.names = resolved + identities
    # Qualify renames written without a schema from the audit row (RENAME stays in
    # its schema, so the new identity names the schema of both).
    for old, new, schema in renames:
        if not schema and len(new) == 1:
            for ident in identities:
                if len(ident) >= 2 and ident[1] == new[0]:
                    new = (ident[0], new[0])
                    old = old if len(old) == 2 else (ident[0], old[-1])
                    break
        item.renames.append((old, new, schema))


def _needles(names: Iterable[Name]) -> set[str]:
    """Lower-cased strings one of these names must appear as in SQL text that names it.

    >>> sorted(_needles([("s", 'a"b')]))
    ['a""b', 'a"b', 's']
    """
    out = set()
    for name in names:
        for part in name:
            out.add(part.lower())
            out.add(part.replace('"', '""').lower())
    return out


def _parse_mentioning(items: Sequence[_Item], needles: set[str]) -> None:
    """Parse the steps whose SQL text may name one of ``needles`` (a substring test).

    A text that does not contain a name's characters cannot name it (unless written
    with ``U&"..."`` escapes), so the rest of a busy night is never parsed.
    """
    for it in items:
        if not it.parsed and any(n in t.lower() for t in it.texts for n in needles):
            _parse(it)


def _context_scope(item: _Item) -> tuple[str, str | None]:
    f = item.finding
    assert f is not None
    if f.cls == C.EVENT_TRIGGER_DDL:
        return ("database", f.database)
    rec = item.record
    if f.cls == C.CONFIG_DRIFT and rec is not None and rec.statement:
        scopes = {c.scope for c in classify(rec.statement).settings}
        if scopes and scopes <= {"session", "local"}:
            return ("session", rec.session_id)
    return ("any", None)


def _add(bag: set[str], value: str | None) -> None:
    if value:
        bag.add(value)


def _follow(items: Sequence[_Item], start: Name) -> list[Alias]:
    """Every name the object bore, by following renames forward and backward."""
    aliases: dict[tuple[Name, int | None, int | None], Alias] = {}
    first = Alias(start, None, None)
    aliases[(start, None, None)] = first

    def end_of(name: Name, i: int) -> int | None:
        for j in range(i + 1, len(items)):
            it = items[j]
            if any(name_matches(name, d) for d in it.drops) or any(
                not sch and name_matches(name, old) for old, _, sch in it.renames
            ):
                return j
        return None

    def start_of(name: Name, i: int) -> int | None:
        for j in range(i - 1, -1, -1):
            it = items[j]
            if any(name_matches(name, d) for d in it.drops):
                return j + 1
            if any(not sch and name_matches(name, new) for _, new, sch in it.renames):
                return j
        return None

    changed = True
    while changed:
        changed = False
        for i, it in enumerate(items):
            for old, new, schema in it.renames:
                for a in list(aliases.values()):
                    if not a.covers(i):
                        continue
                    learnt: list[Alias] = []
                    if schema:
                        if len(a.name) == 2 and a.name[0] == old[0]:
                            n = (new[0], a.name[1])
                            learnt.append(Alias(n, i, end_of(n, i), i))
                        if len(a.name) == 2 and a.name[0] == new[0]:
                            o = (old[0], a.name[1])
                            learnt.append(Alias(o, start_of(o, i), i, i))
                    else:
                        if old == new:
                            continue
                        if name_matches(a.name, old):
                            learnt.append(Alias(new, i, end_of(new, i), i))
                        if name_matches(a.name, new):
                            learnt.append(Alias(old, start_of(old, i), i, i))
                    for b in learnt:
                        key = (b.name, b.first, b.last)
                        if key not in aliases:
                            aliases[key] = b
                            changed = True
    return list(aliases.values())


def _named(item: _Item, i: int, a: Alias) -> bool:
    return a.covers(i) and any(name_matches(a.name, n) for n in item.names)


def _object_steps(items: Sequence[_Item], aliases: Sequence[Alias]) -> set[int]:
    """Indexes of the steps that name the object under one of its names.

    A rename step belongs too when the name it taught is borne by another step
    (an ``ALTER SCHEMA ... RENAME`` names no table, yet moved this one).
    """
    found = {i for i, it in enumerate(items) if any(_named(it, i, a) for a in aliases)}
    for a in aliases:
        if (
            a.via is not None
            and a.via not in found
            and any(j != a.via and _named(it, j, a) for j, it in enumerate(items))
        ):
            found.add(a.via)
    return found


def _items(
    steps: Iterable[Step], extra: Iterable[Finding], final: dict[str, Finding]
) -> list[_Item]:
    items = []
    for s in steps:
        f = final.get(s.finding.id, s.finding) if s.finding is not None else None
        it = _Item(s.time, s.record, s.firings, f)
        if f is not None and f.cls == C.LOG_GAP and s.firings:
            it.gap_rows = True
            it.unknown = NOT_IN_LOG
        items.append(it)
    for f in extra:
        f = final.get(f.id, f)
        items.append(_Item(f.time, None, (), f, live=f.time is None and not f.log_file))
    return items


#: What the log alone says of a logged statement and the firings seen for it.
LogJudge = Callable[[LogRecord, Sequence[Firing]], Finding | None]


def _marker_key(rec: LogRecord) -> tuple[Any, ...]:
    """Which logged statement a marker belongs to: the markers carry its text."""
    return (rec.database, rec.session_id or rec.pid, rec.vxid, rec.statement)


def _unread(items: list[_Item], rejudge: LogJudge | None) -> list[_Item]:
    """The story when the audit table was not read: "could not read" is not "deleted".

    A firing known only from its marker proved the trigger fired; whether its row
    still exists is unknown.  Markers of a logged statement that the matcher left
    apart (its rows would have tied them) join that statement's step: one step per
    statement.  Then a finding that judged only the rows goes; a statement keeps
    what its log text alone says (``rejudge``).
    """

    def markers(it: _Item) -> list[Firing]:
        return [f for f in it.firings if f.event is None and f.marker_record is not None]

    hosts: dict[tuple[Any, ...], _Item] = {}
    for it in items:
        rec = it.record
        if rec is not None and rec.kind in (MessageKind.STATEMENT, MessageKind.EXECUTE):
            hosts.setdefault(_marker_key(rec), it)
    kept: list[_Item] = []
    for it in items:
        marks = markers(it)
        f = it.finding
        alone = it.record is None and marks and len(marks) == len(it.firings)
        if alone and (f is None or f.cls in ROW_CLASSES):
            assert marks[0].marker_record is not None
            host = hosts.get(_marker_key(marks[0].marker_record))
            if host is not None:
                host.firings = (*host.firings, *it.firings)
                continue
        kept.append(it)
    for it in kept:
        if not markers(it):
            continue
        it.unknown = NOT_READ
        f = it.finding
        if f is not None and f.cls in ROW_CLASSES:
            rec = it.record
            it.finding = rejudge(rec, it.firings) if rec is not None and rejudge else None
    return kept


def assemble(
    steps: Iterable[Step],
    extra: Iterable[Finding] = (),
    final: Iterable[Finding] = (),
    *,
    object_name: str | None = None,
    user: str | None = None,
    session: str | None = None,
    context: bool = True,
    notes: Sequence[str] = (),
    audit_read: bool = True,
    rejudge: LogJudge | None = None,
) -> Timeline:
    """Filter and order the merged story of an analysis (see the module docstring).

    ``final`` holds the findings after the policy (severity overrides,
    allow-lists); steps carry the matcher's findings, replaced by id.  With
    ``audit_read`` false (no connection) the audit rows are unknown, never gone:
    ``rejudge`` gives what the log alone says of a statement whose markers the
    matcher could not pair with rows.
    """
    pattern = parse_object_name(object_name) if object_name else None
    items = _items(steps, extra, {f.id: f for f in final})
    if not audit_read:
        items = _unread(items, rejudge)
    for it in items:
        _gather(it)
    items.sort(key=_Item.sort_key)
    aliases: list[Alias] = []
    if pattern is not None:
        # Learn the object's names: parse what may mention a known name, follow the
        # renames found, and again with the names learnt, until nothing new.
        needles: set[str] = set()
        aliases = [Alias(pattern, None, None)]
        while True:
            more = _needles(a.name for a in aliases)
            if more <= needles:
                break
            needles |= more
            _parse_mentioning(items, needles)
            aliases = _follow(items, pattern)
    filtered = pattern is not None or bool(user) or bool(session)
    of_object = _object_steps(items, aliases) if pattern else set()
    chosen: list[int] = []
    for i, it in enumerate(items):
        if pattern is not None and i not in of_object:
            continue
        if user and user not in it.users:
            continue
        if session and session not in it.sessions:
            continue
        chosen.append(i)
    ctx: set[int] = set()
    if filtered and context and chosen:
        chosen_set = set(chosen)
        last = items[chosen[-1]].sort_key()
        # A deleted or altered row was tampered with after the fact: look to the end.
        after = any(
            (f := items[i].finding) is not None and f.cls in TAMPERED_CLASSES for i in chosen
        )
        dbs = {d for i in chosen for d in items[i].databases}
        sessions = {s for i in chosen for s in items[i].sessions}
        for i, it in enumerate(items):
            f = it.finding
            if i in chosen_set or f is None or f.cls not in CONTEXT_CLASSES or it.gap_rows:
                continue
            if it.sort_key() > last and not it.live and not after:
                continue
            if it.sort_key()[0] == 0:  # a gap with no time: said in the notes
                continue
            kind, value = it.scope
            if kind == "database" and value is not None and value not in dbs:
                continue
            if kind == "session" and value is not None and value not in sessions:
                continue
            ctx.add(i)
    keep = sorted(set(chosen) | ctx)
    out_notes = list(notes)
    if filtered:
        for it in items:
            f = it.finding
            if f is not None and f.cls == C.LOG_GAP and it.sort_key()[0] == 0:
                out_notes.append(f"log gap with no time (not placed in the story): {_reason(f)}")
    out = tuple(_step(n, items[i], i in ctx, aliases) for n, i in enumerate(keep, 1))
    numbers = {i: n for n, i in enumerate(keep, 1)}
    names = tuple(_alias_text(a, items, numbers) for a in aliases)
    return Timeline(
        steps=out,
        object_name=show_name(pattern) if pattern else None,
        user=user,
        session=session,
        names=names,
        notes=tuple(dict.fromkeys(out_notes)),
    )


def _alias_text(a: Alias, items: Sequence[_Item], numbers: dict[int, int]) -> str:
    """``ledger (steps 3-9)``: a name and the steps it was borne in."""

    def at(i: int) -> str:
        return f"step {numbers[i]}" if i in numbers else _when(items[i])

    if a.first is None and a.last is None:
        return show_name(a.name)
    if a.first is None:
        assert a.last is not None
        return f"{show_name(a.name)} (until {at(a.last)})"
    if a.last is None:
        return f"{show_name(a.name)} (from {at(a.first)})"
    return f"{show_name(a.name)} ({at(a.first)} to {at(a.last)})"


def _when(item: _Item) -> str:
    t = item.sort_key()[1]
    return t.isoformat(timespec="milliseconds") if t != _EPOCH else "?"


def timeline(
    cfg: Config,
    *,
    object_name: str | None = None,
    user: str | None = None,
    session: str | None = None,
    context: bool = True,
    now: datetime | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Timeline:
    """Read both channels (as reconcile does, without its state) and tell one story.

    ``progress(done, total)`` is told the log bytes read (the CLI's progress bar)."""
    from auditor.reconcile import analyse

    if object_name is not None:
        parse_object_name(object_name)  # a bad name fails before the logs are read
    a = analyse(cfg, now=now, use_state=False, progress=progress)
    if a.errors:
        # A story without one database's rows would tell their DDL as unreported.
        more = f" (and {len(a.errors) - 1} more)" if len(a.errors) > 1 else ""
        raise AuditorError(a.errors[0] + more)
    return assemble(
        [*a.result.steps, *gap_steps(a.document.findings, a.events)],
        a.extra_findings,
        a.document.findings,
        object_name=object_name,
        user=user,
        session=session,
        context=context,
        notes=a.document.notes,
        audit_read=bool(cfg["dsn"]),
        rejudge=_log_judge(cfg),
    )


def gap_steps(findings: Iterable[Finding], events: Iterable[AuditEvent]) -> list[Step]:
    """The audit rows of each LOG_GAP as steps of their own, one per statement.

    The matcher puts rows that no log covers into their gap's finding; for the
    story they are the object's steps, told by the trigger alone.
    """
    by_id = {(e.database, e.id): e for e in events}
    out: list[Step] = []
    for f in findings:
        if f.cls != C.LOG_GAP or not f.audit_event_ids:
            continue
        views = f.evidence.get("audit")
        groups: dict[tuple[Any, ...], list[Firing]] = {}
        for view in views if isinstance(views, list) else ():
            e = by_id.get((view.get("database"), view.get("id")))
            if e is None:
                continue
            key = (e.database, e.session_id, e.vxid, e.query, e.statement_time)
            groups.setdefault(key, []).append(Firing(e.database, e.id, e, None, None, None))
        for firings in groups.values():
            firings.sort(key=lambda fi: fi.id)
            out.append(Step(firings[0].time, None, tuple(firings), f))
    return out


def _log_judge(cfg: Config) -> LogJudge:
    """What the log alone says of a logged statement, its audit rows aside.

    Each DDL or setting statement of the record's text is judged on its own by the
    matcher with no trigger evidence, and verdicts about the trigger's rows are
    dropped (without the audit table they are unknown), so a ``SET log_statement``
    or event-trigger DDL in the same string stays what it is.  The markers alone
    still tell one thing: an eligible statement whose ``ddl_command_end`` marker is
    missing while the auditor's other markers are there (a ``table_rewrite`` with
    the end trigger disabled) was not reported.  The policy applies as in reconcile.
    """
    from auditor import capture
    from auditor.findings import Policy, make_finding
    from auditor.matcher import MatchContext, match

    schema = str(cfg["schema"])
    ctx = MatchContext(
        schema=schema, trigger_names=frozenset(capture.event_trigger_names(schema).values())
    )
    policy = Policy.from_config(cfg["severity"], cfg["allow"])

    def judge(rec: LogRecord, firings: Sequence[Firing]) -> Finding | None:
        found: list[Finding] = []
        statements = classify(rec.statement or "").statements
        for s in statements:
            if not (s.schema_change or s.settings):
                continue
            part = replace(rec, statement=s.text, is_ddl=None, is_relevant=None)
            found.extend(f for f in match([part], [], {}, ctx).findings if f.cls not in ROW_CLASSES)
        eligible = sum(1 for s in statements if s.fires_ddl_command_end)
        ends = sum(1 for f in firings if f.event_name == "ddl_command_end" and not f.nested)
        if ends < eligible:
            others = sorted({f.event_name for f in firings})
            ids = ", ".join(str(f.id) for f in firings)
            found.append(
                make_finding(
                    C.UNREPORTED_DDL,
                    key=(PurePath(rec.source.file).name, rec.source.offset, rec.source.line),
                    reason=f"Its markers show no ddl_command_end firing, only "
                    f"{'/'.join(others)} marker(s) {ids} (the audit table was not read).",
                    time=rec.time,
                    database=rec.database,
                    user=rec.user,
                    application=rec.application,
                    client=rec.client,
                    session_id=rec.session_id,
                    vxid=rec.vxid,
                    command_tags=[s.command_tag for s in statements if s.fires_ddl_command_end],
                    statement=rec.statement,
                    log_file=rec.source.file,
                    log_line=rec.source.line,
                    accounts_logged_ddl=1,
                )
            )
        kept = policy.apply(found)
        return max(kept, key=lambda f: f.severity.rank) if kept else None

    return judge


# -- one step's views -----------------------------------------------------------------


def _step(n: int, it: _Item, context: bool, aliases: Sequence[Alias] = ()) -> TimelineStep:
    if _shows_sql_names(it):
        _parse(it)
    rec = it.record
    f = it.finding
    log: LogView | None = None
    if rec is not None:
        error = _log_error(f)
        text = rec.statement if rec.kind in (MessageKind.STATEMENT, MessageKind.EXECUTE) else None
        log = LogView(
            rec.source.file,
            rec.source.line,
            rec.time,
            rec.user,
            rec.database,
            rec.application,
            rec.client,
            rec.session_id,
            rec.vxid,
            mask(text if text is not None else rec.message),
            error,
        )
    elif f is not None and not it.firings and (f.log_file or f.statement):
        log = LogView(
            f.log_file,
            f.log_line,
            f.time,
            f.user,
            f.database,
            f.application,
            f.client,
            f.session_id,
            f.vxid,
            f.statement,
        )
    logged = rec.statement if rec is not None else None
    rows = tuple(_row_view(fi, logged, unread=bool(it.unknown == NOT_READ)) for fi in it.firings)
    channels = []
    if log is not None and (rec is not None or f is None or f.cls != C.LOG_GAP):
        channels.append("log")
    if any(fi.marker_record is not None for fi in it.firings):
        channels.append("marker")
    if any(fi.event is not None for fi in it.firings):
        channels.append("audit")
    rows_t = [fi.event.statement_time for fi in it.firings if fi.event is not None]
    t = rec.time if rec is not None and rec.time else (min(rows_t) if rows_t else it.time)
    shown = _display_names(it, aliases)
    return TimelineStep(
        n=n,
        time=t,
        channels=tuple(channels),
        log=log,
        rows=rows,
        finding=f,
        summary=_summary(it, shown),
        names=tuple(shown),
        context=context,
        unknown=it.unknown,
    )


def _shows_sql_names(it: _Item) -> bool:
    """Whether the one-line summary needs the parsed SQL: no audit row names the
    objects, or the step may rename something.  (Parsing every step of a busy night
    would cost more than pairing it did.)"""
    if not it.identities:
        return True
    return any("rename" in t.lower() or "schema" in t.lower() for t in it.texts)


def _log_error(f: Finding | None) -> str | None:
    """The error that failed the statement, from the finding's log evidence."""
    view = f.evidence.get("log") if f is not None else None
    err = view.get("error") if isinstance(view, dict) else None
    return str(err) if err else None


def _row_view(f: Firing, logged: str | None, unread: bool = False) -> RowView:
    e = f.event
    if e is None:
        status = "not read" if unread else "row gone"
    else:
        status = "row altered" if f.altered else "row"
    marker = None
    if f.marker_record is not None:
        src = f.marker_record.source
        marker = f"{src.file}:{src.line}"
    query = e.query if e is not None else (f.marker_record.statement if f.marker_record else None)
    caller = None
    if e is not None and e.caller_context:
        caller = mask(e.caller_context.strip().splitlines()[-1])
    return RowView(
        database=f.database,
        id=f.id,
        event=f.event_name,
        command_tag=f.tag,
        objects=tuple(o.object_identity for o in e.objects if o.object_identity) if e else (),
        status=status,
        marker=marker,
        xact_status=f.status,
        session_user=e.session_user if e else (f.marker_record.user if f.marker_record else None),
        current_user=e.current_user if e else None,
        session_id=e.session_id if e else (f.marker_record.session_id if f.marker_record else None),
        time=f.time,
        query=mask(query) if query and query != logged else None,
        caller=caller,
    )


def _display_names(it: _Item, aliases: Sequence[Alias] = ()) -> list[str]:
    """The step's objects for people: audit identities, else the statement's names;
    the followed object first."""
    found: dict[str, Name | None] = {}
    for f in it.firings:
        if f.event is None:
            continue
        for o in f.event.objects:
            ident = o.object_identity
            if not ident or ident.startswith("pg_toast.") or o.object_type in _NOISE_TYPES:
                continue
            names = identity_names(ident)
            found.setdefault(ident, names[0] if names else None)
    if not found:
        for n in it.names:
            found.setdefault(show_name(n), n)

    def followed(name: Name | None) -> bool:
        return name is not None and any(
            len(name) <= 2 and name_matches(a.name, name) for a in aliases
        )

    return sorted(found, key=lambda k: not followed(found[k]))


#: Objects every CREATE/DROP TABLE also touches; they crowd the one-line summary.
_NOISE_TYPES = frozenset({"type", "toast table", "default value"})


def _summary(it: _Item, names: Sequence[str]) -> str:
    rec = it.record
    f = it.finding
    who = rec.user if rec is not None and rec.user else None
    if who is None:
        e = next((fi.event for fi in it.firings if fi.event is not None), None)
        mrec = next((fi.marker_record for fi in it.firings if fi.marker_record), None)
        who = e.session_user if e else (f.user if f else (mrec.user if mrec else None))
    tags = list(it.tags)
    if not tags:
        tags = list(dict.fromkeys(fi.tag for fi in it.firings if not fi.in_extension))
    if not tags and f is not None:
        tags = list(f.command_tags)
    what = " ".join(
        x
        for x in (
            ", ".join(dict.fromkeys(tags)),
            _short_list(names),
        )
        if x
    )
    renames = "; ".join(
        f"{show_name(old)} -> {show_name(new)}" for old, new, _ in dict.fromkeys(it.renames)
    )
    if renames:
        what += f" ({renames})"
    if it.gap_rows:
        verdict = "audited; no log read covers this time (statement line and markers unknown)"
    elif it.unknown == NOT_READ:
        verdict = "the trigger fired (marker in the log); audit row not read (no --dsn)"
        if f is not None:
            verdict = f"{PHRASE.get(f.cls, f.cls.value)}; {verdict}"
    elif f is None:
        verdict = AGREE
    elif f.cls in (C.LOG_GAP, C.CONFIG_DRIFT) and not tags:
        verdict = f"{PHRASE[f.cls]}: {_reason(f)}"
    elif f.cls == C.FAILED_DDL:
        msg = _log_error(f)
        verdict = f"failed: {msg}" if msg else "failed"
    else:
        verdict = PHRASE.get(f.cls, f.cls.value)
    head = f"{who}: " if who else ""
    return mask(f"{head}{what}: {verdict}" if what else f"{head}{verdict}")


def _short_list(names: Sequence[str], limit: int = 2) -> str:
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f" (+{len(names) - limit})"


def _reason(f: Finding) -> str:
    """The specific part of a finding's explanation (after the class's meaning)."""
    meaning = MEANING[f.cls]
    text = f.explanation
    return text[len(meaning) :].strip() if text.startswith(meaning) else text


def _id_ranges(ids: Sequence[int]) -> str:
    """Compact id list.

    >>> _id_ranges([1, 2, 3, 7, 9, 10])
    '1-3,7,9-10'
    """
    ids = sorted(set(ids))
    out: list[str] = []
    start = prev = ids[0]
    for i in ids[1:]:
        if i == prev + 1:
            prev = i
            continue
        out.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = i
    out.append(str(start) if start == prev else f"{start}-{prev}")
    return ",".join(out)


def _iso(t: datetime | None) -> str | None:
    return t.isoformat() if t is not None else None


# -- renderers -----------------------------------------------------------------------


def to_json(tl: Timeline) -> str:
    """One JSON array of step objects."""
    text = json.dumps([s.to_dict() for s in tl.steps], indent=2, ensure_ascii=True)
    return json_text(text) + "\n"  # ensure_ascii leaves DEL raw


CSV_FIELDS = (
    "step", "time", "channels", "context", "class", "severity", "allowed", "finding_id",
    "summary", "log_file", "log_line", "user", "database", "application", "client",
    "session_id", "vxid", "statement", "error", "audit_ids", "audit_events", "command_tags",
    "objects", "audit_status", "markers", "names", "not_known",
)  # fmt: skip


def csv_row(step: TimelineStep) -> dict[str, str]:
    """A step as one CSV row (lists joined with ';', formula-like cells defused, control
    characters other than newline and tab shown as ``<U+XXXX>``: CSV is read in
    terminals and spreadsheets; ``--format json`` keeps every value exact)."""
    from auditor.report import csv_safe

    log = step.log
    f = step.finding
    values: dict[str, Any] = {
        "step": step.n,
        "time": _iso(step.time),
        "channels": ";".join(step.channels),
        "context": "true" if step.context else "false",
        "class": f.cls.value if f else "",
        "severity": f.severity.value if f else "",
        "allowed": ("true" if f.allowed else "false") if f else "",
        "finding_id": f.id if f else "",
        "summary": step.summary,
        "log_file": log.file if log else None,
        "log_line": log.line if log else None,
        "user": log.user if log else _first(r.session_user for r in step.rows),
        "database": log.database if log else _first(r.database for r in step.rows),
        "application": log.application if log else None,
        "client": log.client if log else None,
        "session_id": log.session_id if log else _first(r.session_id for r in step.rows),
        "vxid": log.vxid if log else None,
        "statement": log.statement if log else _first(r.query for r in step.rows),
        "error": log.error if log else None,
        "audit_ids": ";".join(str(r.id) for r in step.rows),
        "audit_events": ";".join(r.event for r in step.rows),
        "command_tags": ";".join(dict.fromkeys(r.command_tag for r in step.rows)),
        "objects": ";".join(dict.fromkeys(o for r in step.rows for o in r.objects)),
        "audit_status": step.audit_text,
        "markers": ";".join(r.marker for r in step.rows if r.marker),
        "names": ";".join(step.names),
        "not_known": ";".join(step.unknown),
    }
    return {k: "" if v is None else csv_safe(lines(str(v))) for k, v in values.items()}


def _first(values: Iterable[str | None]) -> str | None:
    return next((v for v in values if v), None)


def to_csv(tl: Timeline) -> str:
    """One row per step, header first."""
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=CSV_FIELDS, lineterminator="\r\n")
    writer.writeheader()
    for step in tl.steps:
        writer.writerow(csv_row(step))
    return buf.getvalue()


SEVERITY_STYLE = {
    Severity.CRITICAL: "bold white on red",
    Severity.HIGH: "bold red",
    Severity.MEDIUM: "yellow",
    Severity.LOW: "cyan",
    Severity.INFO: "dim",
}


def render_table(tl: Timeline, *, width: int | None = None, color: bool = False) -> str:
    """The story as a rich table for a terminal (readable at 100 columns).

    Times are UTC; log locations are line numbers, with a legend of files when
    the story spans several; the class is coloured by severity when ``color``.
    """
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(
        width=width or 100,
        record=True,
        file=io.StringIO(),
        force_terminal=color,
        color_system="standard" if color else None,
        highlight=False,
    )
    files: dict[str, int] = {}
    for s in tl.steps:
        if s.log is not None and s.log.file:
            files.setdefault(s.log.file, len(files) + 1)
        for r in s.rows:
            if r.marker:
                files.setdefault(r.marker.rpartition(":")[0], len(files) + 1)

    def where(file: str | None, line: int | None) -> str:
        if not file:
            return ""
        if len(files) <= 1:
            return f"line {line}" if line is not None else "whole file"
        return f"{files[file]}:{line}" if line is not None else f"file {files[file]}"

    dates = {s.time.astimezone(UTC).date() for s in tl.steps if s.time is not None}
    title = tl.title()
    if len(dates) == 1:
        title += f" on {next(iter(dates)).isoformat()}"
    table = Table(
        title=visible(title),
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        title_justify="left",
        title_style="bold",
    )
    table.add_column("#", justify="right", no_wrap=True)
    table.add_column("time (UTC)", no_wrap=True)
    table.add_column("log / audit", no_wrap=True, max_width=16, overflow="ellipsis")
    table.add_column("class", no_wrap=True)
    table.add_column("what happened", ratio=1, overflow="fold")
    for s in tl.steps:
        t = s.time.astimezone(UTC) if s.time is not None else None
        when = "" if t is None else t.strftime("%H:%M:%S.%f")[:12]
        if t is not None and len(dates) > 1:
            when = t.strftime("%m-%d ") + when
        ev = Text()
        if s.log is not None and s.log.file:
            ev.append(where(s.log.file, s.log.line))
        else:
            marker = _first(r.marker for r in s.rows)
            if marker:
                path, _, line = marker.rpartition(":")
                ev.append("marker " + where(path, int(line)).removeprefix("line "), "dim")
            else:
                ev.append("no log line", "dim")
        audit = s.audit_text
        if audit:
            ev.append("\n" + audit, "bold" if "gone" in audit or "altered" in audit else "")
        f = s.finding
        if f is None and s.unknown:
            cls = Text("unchecked", "yellow")
        elif f is None:
            cls = Text("ok", "green")
        else:
            cls = Text(f.cls.value, SEVERITY_STYLE[f.severity])
            cls.append(f"\n{f.severity.value}" + (" allowed" if f.allowed else ""), "dim")
        if s.context:
            cls.append("\ncontext", "dim italic")
        if f is not None and s.unknown and f.cls != C.LOG_GAP:
            cls.append("\npartly unchecked", "dim")
        what = Text(visible(s.summary))
        stmt = s.log.statement if s.log is not None else _first(r.query for r in s.rows)
        if stmt:
            what.append("\n" + _excerpt(visible(stmt)), "dim")
        caller = _first(r.caller for r in s.rows)
        if caller:
            what.append("\n" + _excerpt("via " + visible(caller)), "dim")
        table.add_row(str(s.n), when, ev, cls, what)
    console.print(table)
    if len(files) > 1:
        for path, n in files.items():
            console.print(Text(f"log file {n}: {visible(path)}", "dim"))
    elif files:
        console.print(Text(f"log file: {visible(next(iter(files)))}", "dim"))
    if len(tl.names) > 1:
        console.print(Text("names followed: " + "; ".join(visible(n) for n in tl.names), "dim"))
    for note in tl.notes:
        console.print(Text(f"note: {visible(note)}", "dim"))
    return console.export_text(styles=color)


def _excerpt(text: str, limit: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
