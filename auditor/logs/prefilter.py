"""Find the few records worth parsing in a big log, without reading every record.

With ``log_statement = 'all'`` nearly every record is a statement and almost
none is DDL.  Parsing each record in Python would cap the scan at a few MB/s
(pgBadger's rate), so the readers search the raw bytes of a whole window for
*tokens* and parse only the records that hold one.  A record may be skipped
only when it **provably** cannot matter:

* A statement that holds DDL, or is relevant to the audit, contains one of
  :data:`SQL_TOKENS` (ASCII, any case): every DDL statement starts with
  CREATE/ALTER/DROP/GRANT/REVOKE/COMMENT/SECURITY/CLUSTER/REFRESH/IMPORT/
  REASSIGN, ``SELECT ... INTO`` holds INTO, ``EXPLAIN ANALYZE``/``PREPARE``
  wrap one of those, a simple-protocol ``EXECUTE q`` of such a ``PREPARE``
  carries its text in the ``DETAIL:  prepare:`` line of the same record, and
  a change of a watched setting names the setting (``log_...``,
  ``session_replication_role``, ...) or goes through ``set_config``, ``RESET
  ALL`` or a ``U&"..."`` identifier.  SQL keywords are ASCII and can never be
  split by a newline, a JSON escape or CSV quoting, so a byte search finds them
  in every format.
* ``INTO`` is searched everywhere except right after ``insert``/``merge`` at
  the very start of a statement (``statement: INSERT INTO``,
  ``; insert into``), the one place where it provably belongs to INSERT or
  MERGE.
* ERROR/FATAL/PANIC records, audit markers and the server messages reconcile
  needs (``parameter "..." changed``, SIGHUP, start and shutdown) are found by
  their fixed text (:data:`MESSAGE_LITERALS`).

Candidate records are then classified: :func:`quick_classify` asks the
PostgreSQL parser (``pglast``) for the statement node types, which decides
most statements in a few microseconds, and falls back to the full
:func:`auditor.classify.classify` for everything else.

The search runs in one pass with Hyperscan when the ``hyperscan`` package is
installed (the ``fast`` extra) and with the standard library otherwise (the
same tokens, several times slower).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson
from pglast import parser as pg_parser

from auditor.classify import NODE_TAGS, LogLevel, classify

try:  # pragma: no cover - depends on the installed extras
    import hyperscan as _hs
except ImportError:  # pragma: no cover
    _hs = None  # type: ignore[assignment]

#: Case-insensitive tokens; a statement without any of them is neither DDL nor relevant.
SQL_TOKENS: tuple[bytes, ...] = (
    b"create", b"alter", b"drop", b"grant", b"revoke", b"comment", b"security",
    b"cluster", b"refresh", b"import", b"reassign", b"reindex",
    # changes of watched settings (auditor.classify.WATCHED_SETTINGS) and RESET ALL
    b"log_", b"logging_collector", b"replication_role", b"event_trigger",
    b"lc_messages", b"syslog_", b"set_config", b"reset", b"u&",
)  # fmt: skip

#: ``INTO`` right after one of these (any case) is an INSERT's or MERGE's INTO.
INTO_EXCLUSIONS: tuple[bytes, ...] = (
    b": insert ", b":  insert ", b"; insert ", b";insert ",
    b": merge ", b":  merge ", b"; merge ", b";merge ",
)  # fmt: skip

#: Case-sensitive message text that makes a record worth parsing, in any format.
MESSAGE_LITERALS: tuple[bytes, ...] = (
    b"auditor-marker ",
    b'parameter "',
    b"received SIGHUP",
    b"database system is ",
    b"database system was ",
    b"shutdown request",
    b"starting PostgreSQL",
    b"terminating any other active server processes",
    b"configuration file",
)

#: Severities whose records are always parsed (they may belong to a DDL statement).
ERROR_SEVERITIES = ("ERROR", "FATAL", "PANIC")


def _into_patterns() -> list[bytes]:
    """Regexes matching ``into`` unless it directly follows an :data:`INTO_EXCLUSIONS` text.

    Built from the reversed exclusions as a trie: at each depth, "the byte
    before is none of the continuations" is a hit.  Hyperscan has no
    lookbehind, so this is how the exclusion is written for it.

    >>> pats = [re.compile(p, re.I) for p in _into_patterns()]
    >>> hit = lambda s: any(p.search(s) for p in pats)
    >>> hit(b"statement: INSERT INTO t"), hit(b"statement: SELECT 1 INTO t")
    (False, True)
    >>> hit(b"select col_insert into t"), hit(b"x:  insert into t"), hit(b"into t")
    (True, False, True)
    """
    trie: dict[bytes, Any] = {}
    for word in INTO_EXCLUSIONS:
        node = trie
        for ch in reversed(word):
            node = node.setdefault(bytes([ch]), {})
        node[b""] = {}  # terminal: excluded
    out: list[bytes] = []

    def walk(node: dict[bytes, Any], path: bytes) -> None:
        if b"" in node:
            return
        chars = sorted(k for k in node if k)
        cls = b"".join(re.escape(c) for c in chars)
        out.append(b"(?:^|[^" + cls + b"])" + re.escape(path) + b"into")
        for ch in chars:
            walk(node[ch], ch + path)

    walk(trie, b"")
    return out


def severity_literals(fmt: str) -> tuple[bytes, ...]:
    """How an ERROR/FATAL/PANIC record shows in the raw bytes of each format.

    >>> severity_literals("csvlog")[0]
    b',ERROR,'
    """
    if fmt == "stderr":
        return tuple(s.encode() + b":  " for s in ERROR_SEVERITIES)
    if fmt == "csvlog":
        return tuple(b"," + s.encode() + b"," for s in ERROR_SEVERITIES)
    return tuple(b'"error_severity":"' + s.encode() + b'"' for s in ERROR_SEVERITIES)


# -- pattern kinds reported by the finder ------------------------------------------

HIT = 0  #: a token: the record holding this position must be parsed
CONT = 1  #: stderr: a TAB continuation line starts here (counted)
ODD_LINE = 2  #: a line that does not start like a record starts here (checked)
ODD_END = 3  #: jsonlog: a line that does not end with "}" ends here (checked)


@dataclass(frozen=True)
class Structure:
    """The per-format line patterns searched in the same pass as the tokens."""

    patterns: tuple[tuple[bytes, int], ...]  # (regex, kind)


def structure_patterns(fmt: str, first_bytes: bytes | None) -> Structure:
    """Line-shape patterns: continuation lines and lines that cannot start a record."""
    if fmt == "stderr":
        pats: list[tuple[bytes, int]] = [(rb"\n\t", CONT)]
        if first_bytes is not None:
            allowed = b"".join(re.escape(bytes([b])) for b in sorted(set(first_bytes + b"\t")))
            pats.append((rb"\n[^" + allowed + rb"]", ODD_LINE))
        return Structure(tuple(pats))
    if fmt == "csvlog":
        return Structure(((rb'\n[^0-9"]', ODD_LINE),))
    return Structure(((rb"\n[^{]", ODD_LINE), (rb"[^}]\n", ODD_END)))


class Finder:
    """Finds token hits and line-shape events in a window of raw log bytes.

    :meth:`find` returns ``(positions, kinds)``: sorted byte positions (just
    past each match, relative to the buffer) and their kind (:data:`HIT`,
    :data:`CONT`, :data:`ODD_LINE`, :data:`ODD_END`).
    """

    def __init__(self, fmt: str, first_bytes: bytes | None) -> None:
        self.fmt = fmt
        self.structure = structure_patterns(fmt, first_bytes)
        messages = MESSAGE_LITERALS
        if fmt == "jsonlog":  # jsonlog escapes the quotes inside values
            messages = tuple(m.replace(b'"', b'\\"') for m in messages)
        self.literals = severity_literals(fmt) + messages
        self._hs_db: Any = None
        if _hs is not None:
            self._hs_db = self._compile_hyperscan()

    @property
    def engine(self) -> str:
        return "hyperscan" if self._hs_db is not None else "re"

    def _compile_hyperscan(self) -> Any:
        assert _hs is not None
        exprs: list[bytes] = []
        ids: list[int] = []
        flags: list[int] = []
        caseless = _hs.HS_FLAG_CASELESS
        for tok in SQL_TOKENS:
            exprs.append(re.escape(tok))
            ids.append(HIT)
            flags.append(caseless)
        for pat in _into_patterns():
            exprs.append(pat)
            ids.append(HIT)
            flags.append(caseless)
        for lit in self.literals:
            exprs.append(re.escape(lit))
            ids.append(HIT)
            flags.append(0)
        for pat, kind in self.structure.patterns:
            exprs.append(pat)
            ids.append(kind)
            flags.append(0)
        db = _hs.Database(mode=_hs.HS_MODE_BLOCK)
        db.compile(expressions=exprs, ids=ids, elements=len(exprs), flags=flags)
        return db

    def find(self, buf: bytes) -> list[int]:
        """Encoded events ``position << 2 | kind``, sorted by position."""
        if self._hs_db is not None:
            events: list[int] = []
            append = events.append

            def on_match(kind: int, start: int, end: int, flags: int, ctx: object) -> None:
                append(end << 2 | kind)

            self._hs_db.scan(buf, match_event_handler=on_match)
            events.sort()
            return events
        return self._find_re(buf)

    def _find_re(self, buf: bytes) -> list[int]:
        events: list[int] = []
        low = buf.lower()
        for tok in SQL_TOKENS:
            start = low.find(tok)
            while start >= 0:
                end = start + len(tok)
                events.append(end << 2 | HIT)
                start = low.find(tok, end)
        start = low.find(b"into")
        while start >= 0:
            if not any(low.endswith(x, 0, start) for x in INTO_EXCLUSIONS):
                events.append((start + 4) << 2 | HIT)
            start = low.find(b"into", start + 4)
        del low
        for lit in self.literals:
            start = buf.find(lit)
            while start >= 0:
                end = start + len(lit)
                events.append(end << 2 | HIT)
                start = buf.find(lit, end)
        for pat, kind in self.structure.patterns:
            for m in re.finditer(pat, buf):
                events.append(m.end() << 2 | kind)
        events.sort()
        return events


@lru_cache(maxsize=64)
def finder(fmt: str, first_bytes: bytes | None) -> Finder:
    """A compiled :class:`Finder` per format and prefix shape (cached per process)."""
    return Finder(fmt, first_bytes)


def has_token(text: str) -> bool:
    """Whether a statement text holds any token: the byte search on one statement.

    The text is seen as the log shows it, after ``statement: ``.

    >>> has_token("UPDATE t SET a = 1"), has_token("Begin; Create Table t ()")
    (False, True)
    >>> has_token("INSERT INTO t VALUES (1)"), has_token("select 1 into t")
    (False, True)
    """
    low = b"statement: " + text.encode("utf-8", "surrogateescape").lower()
    if any(tok in low for tok in SQL_TOKENS):
        return True
    start = low.find(b"into")
    while start >= 0:
        if not any(low.endswith(x, 0, start) for x in INTO_EXCLUSIONS):
            return True
        start = low.find(b"into", start + 4)
    return False


# -- classification of candidates ---------------------------------------------------

#: Statement nodes whose level needs more than the node type (look-through,
#: settings, REINDEX): left to the full classifier.
_NEEDS_FULL = frozenset(
    {"ExplainStmt", "PrepareStmt", "ExecuteStmt", "VariableSetStmt", "ReindexStmt"}
)
_SETTING_TEXT = re.compile(r"set_config|u&", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Verdict:
    """What the reader needs to know about a statement text."""

    is_ddl: bool
    is_relevant: bool


_NOT_RELEVANT = Verdict(False, False)
_DDL = Verdict(True, True)
#: A DDL keyword as the very first word (no comment before it: comments nest in
#: PostgreSQL, so they are left to the parser).
_DDL_LEAD = re.compile(
    r"\s*(?:create|alter|drop|grant|revoke|comment|security|reassign|refresh|import|cluster)\b",
    re.IGNORECASE,
)


@lru_cache(maxsize=16384)
def quick_classify(query: str) -> Verdict:
    """``classify(query).is_ddl`` / ``.is_relevant``, in microseconds for most statements.

    The node types come from ``pglast``'s JSON parse tree and their log level
    from :mod:`auditor.classify`'s own table, so the answer is the same as the
    full classifier's (a test checks this on a corpus); anything that needs
    more than the node type goes to :func:`auditor.classify.classify`.

    >>> quick_classify("BEGIN; CREATE TABLE t (id int); COMMIT")
    Verdict(is_ddl=True, is_relevant=True)
    >>> quick_classify("SELECT * INTO t2 FROM t"), quick_classify("UPDATE t SET a = 1")
    (Verdict(is_ddl=True, is_relevant=True), Verdict(is_ddl=False, is_relevant=False))
    >>> quick_classify("SET log_statement = 'none'")
    Verdict(is_ddl=False, is_relevant=True)
    """
    if _DDL_LEAD.match(query) and ";" not in query.rstrip().rstrip(";"):
        # One statement that starts with a DDL keyword: every statement node those
        # keywords start is logged at the DDL level (see classify.NODE_TAGS).
        return _DDL
    try:
        tree = orjson.loads(pg_parser.parse_sql_json(query))
    except Exception:  # parse errors: the full classifier has a keyword fallback
        return _full(query)
    needs_full = False
    for raw in tree.get("stmts", ()):
        node = raw.get("stmt") or {}
        if len(node) != 1:
            return _full(query)
        ((name, body),) = node.items()
        if name == "SelectStmt" and isinstance(body, dict) and "intoClause" in body:
            return Verdict(True, True)
        fixed = NODE_TAGS.get(name)
        if fixed is None or name in _NEEDS_FULL:
            needs_full = True
        elif fixed[1] == LogLevel.DDL:
            return Verdict(True, True)
    if needs_full or _SETTING_TEXT.search(query):
        return _full(query)
    return _NOT_RELEVANT


def _full(query: str) -> Verdict:
    c = classify(query)
    return Verdict(c.is_ddl, c.is_relevant)


def classify_texts(texts: Sequence[str | None]) -> Verdict:
    """The verdict for a record: its statement and, for EXECUTE, the prepared text."""
    is_ddl = False
    relevant = False
    for text in texts:
        if not text:
            continue
        v = quick_classify(text)
        is_ddl = is_ddl or v.is_ddl
        relevant = relevant or v.is_relevant
    return Verdict(is_ddl, relevant)
