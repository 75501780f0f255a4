"""Tell a log's format and ``log_line_prefix`` from its content.

The format is read from the content, not the name, by a vote of the first
lines: jsonlog (a JSON object with ``timestamp`` and ``error_severity``),
CloudNativePG (JSON lines with the csvlog fields in ``record``), Cloud SQL
(Cloud Logging entries with a ``textPayload``), csvlog (a CSV row of 22+
columns that starts with a time, quoted or not), syslog (rsyslog/syslog-ng
lines), Heroku logplex, stderr; PgBouncer's log (``TIME PID LOG message``:
no colon after the level) and files that hold no PostgreSQL message at all
are refused with what they are.

For the stderr family (stderr, and the text inside syslog, logplex and Cloud
SQL) the prefix is best taken from the server (``SHOW log_line_prefix``) or
the command line.  Otherwise it is detected from lines taken from the whole
file where needed: a log that starts with a quiet night of checkpoints shows
session lines (``user@db``) only later, so reading continues until enough
session lines are seen.  The candidates are the prefixes of
:data:`~auditor.logs.prefix.COMMON_PREFIXES` and prefixes *inferred* from the
lines (a timestamp is ``%m``/``%t``, ``[1234]`` is ``[%p]``, ``user=x`` is
``user=%u``, ``x@y`` is ``%u@%d``, ...).  The winner reads the most lines;
among those that read as many, the one that leaves the least text to the
free-text fields (``%u``, ``%d``, ``%a``: any characters) wins, so that
``[queryid=...] postgres`` is not taken for a user name.
"""

from __future__ import annotations

import csv
import io
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import orjson

from auditor.logs import envelope
from auditor.logs.prefix import COMMON_PREFIXES, CompiledPrefix, compile_prefix
from auditor.logs.stderr import PREFIX_CHANGE, announced_prefix
from auditor.logs.times import parse_time

_CSV_START = re.compile(rb'"?\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)? [^,\n"]*"?,')
_TIMESTAMP = re.compile(rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d(?:\.\d+)?(?: [A-Za-z0-9+-]+)?")
_SEVERITY_WORDS = (
    rb"DEBUG|LOG|INFO|NOTICE|WARNING|ERROR|FATAL|PANIC|DETAIL|HINT|QUERY|CONTEXT|LOCATION"
    rb"|BACKTRACE|STATEMENT"
)
#: Where a PostgreSQL message starts in a stderr-style line (``LOG:  ``, or ``LOG: ``).
_SEVERITY_AT = re.compile(rb"(?<![A-Za-z])(?:" + _SEVERITY_WORDS + rb"):( {1,2})(?=\S)")
#: PgBouncer: ``2023-12-19 03:06:13.586 CET [10384] LOG C-0x7f3b...: ...``.
_PGBOUNCER = re.compile(
    rb'"?\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}(?: [A-Za-z+-][A-Za-z0-9+-]*)? (?:\[\d+\]|\d+) '
    rb"(?:LOG|WARNING|ERROR|FATAL|NOISE|DEBUG) (?![A-Z]+:)"
)
#: Bytes that show a line comes from a client session (worth reading the file for).
SESSION_MARKS = (
    b"statement: ",
    b"execute ",
    b"duration: ",
    b"connection authorized",
    b"AUDIT: ",
    b"STATEMENT:",
)
#: Session lines wanted before detection stops reading.
ENOUGH_SESSION_LINES = 200
HEAD_BYTES = 65536
#: Lines of the head used for the vote and the prefix.
HEAD_LINES = 400


def _first_lines(head: bytes, count: int) -> list[bytes]:
    lines = head.split(b"\n")
    if len(lines) > 1:
        lines = lines[:-1]  # the last piece may be cut in the middle
    return [ln for ln in lines if ln.strip()][:count]


# -- format ------------------------------------------------------------------------------


@dataclass(frozen=True)
class FormatVote:
    """What the first lines of a file are.

    ``fmt`` is a reader format, or ``pgbouncer`` / ``none`` for files that are not
    PostgreSQL server logs; ``share`` is the fraction of voting lines that agree.
    """

    fmt: str
    share: float
    first_line: bytes = b""


def _line_format(line: bytes) -> str | None:
    first = line.lstrip(b"\xef\xbb\xbf")
    if first.startswith(b"{"):
        try:
            obj = orjson.loads(first)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(obj, dict):
            return None
        if isinstance(obj.get("record"), dict) or ("logger" in obj and "ts" in obj):
            return "cnpg"
        if envelope.is_cloudsql_entry(obj):
            return "cloudsql"
        if "error_severity" in obj or "timestamp" in obj:
            return "jsonlog"
        return None
    if _PGBOUNCER.match(first):
        return "pgbouncer"
    if _CSV_START.match(first):
        try:
            row = next(csv.reader(io.StringIO(first.decode("utf-8", "replace"))))
        except (csv.Error, StopIteration):
            row = []
        if len(row) >= 22:
            return "csvlog"
    if envelope.LOGPLEX_HEADER.match(first):
        return "logplex"
    if envelope.BSD_HEADER.match(first) or envelope.ISO_HEADER.match(first):
        return "syslog"
    if _SEVERITY_AT.search(first[:4096]):
        return "stderr"
    return None


def vote_format(lines: Sequence[bytes], hint: str | None = None) -> FormatVote:
    """The format most of ``lines`` show (``none`` when no line is a server log line).

    >>> vote_format([b'{"timestamp":"2026-11-26 03:15:04.434 UTC","error_severity":"LOG"}']).fmt
    'jsonlog'
    >>> vote_format([b"2026-11-26 03:15:04.434 UTC [9798] LOG:  starting"]).fmt
    'stderr'
    >>> vote_format([b"2018-09-12 16:08:54.776 3394 LOG listening on 127.0.0.1:6432"]).fmt
    'pgbouncer'
    >>> vote_format([b"just text"]).fmt, vote_format([], "csvlog").fmt
    ('none', 'csvlog')
    """
    votes: Counter[str] = Counter()
    first_of: dict[str, bytes] = {}
    for line in lines:
        if line.startswith(b"\t"):
            continue
        fmt = _line_format(line)
        if fmt is None:
            continue
        votes[fmt] += 1
        first_of.setdefault(fmt, line)
    if not votes:
        return FormatVote(
            (hint or "none") if not lines else "none", 0.0, lines[0] if lines else b""
        )
    # An envelope holding stderr-style text also shows severities: the envelope wins.
    best, count = max(votes.items(), key=lambda kv: (kv[1], kv[0] != "stderr"))
    return FormatVote(best, count / sum(votes.values()), first_of[best])


def detect_format(head: bytes, hint: str | None = None) -> str:
    """``stderr``, ``csvlog``, ``jsonlog`` (or an envelope) from the first bytes of a log.

    A head whose lines are no server log at all reads as ``stderr`` here (the
    prefix detection then says why nothing reads it); see :func:`vote_format`.

    >>> detect_format(b'{"timestamp":"2026-11-26 03:15:04.434 UTC","pid":1}\\n')
    'jsonlog'
    >>> detect_format(b"2026-11-26 03:15:04.434 UTC [9798] LOG:  starting\\n")
    'stderr'
    >>> detect_format(b"", "csvlog")
    'csvlog'
    """
    lines = _first_lines(head, 50)
    if not lines:
        return hint or "stderr"
    vote = vote_format(lines, hint)
    if vote.fmt in ("none", "pgbouncer"):
        return "stderr"
    return vote.fmt


def refusal(vote: FormatVote, name: str) -> str | None:
    """Why a file is not read, for files that are not PostgreSQL server logs."""
    if vote.fmt == "pgbouncer":
        return (
            f"{name}: a PgBouncer log ('TIME PID LOG message', no colon after the level), "
            "not a PostgreSQL server log: PgBouncer does not log the statements it "
            "forwards, so there is nothing in it to audit; read the server's own log"
        )
    if vote.fmt == "none":
        excerpt = vote.first_line[:100].decode("utf-8", "replace")
        return (
            f"{name}: not a PostgreSQL server log (no line of its start holds a message "
            f"such as 'LOG:  ...'; first line: {excerpt!r})"
        )
    return None


def first_time(head: bytes, fmt: str, log_timezone: str | None = None) -> datetime | None:
    """The time of the first record, to order rotated files (None if it cannot be placed)."""
    for line in _first_lines(head, 20):
        if fmt in ("jsonlog", "cnpg"):
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                continue
            if fmt == "cnpg" and isinstance(obj, dict) and isinstance(obj.get("record"), dict):
                obj = obj["record"]
                if isinstance(obj.get("log_time"), str):
                    return parse_time(obj["log_time"], log_timezone)
            if isinstance(obj, dict) and isinstance(obj.get("timestamp"), str):
                return parse_time(obj["timestamp"], log_timezone)
            continue
        if fmt in envelope.ENVELOPES:
            piece = envelope.decode_line(fmt, line, datetime.now().year)
            placed = isinstance(piece, envelope.Piece) and piece.time is not None
            if placed and piece.time.tzinfo is not None:  # type: ignore[union-attr]
                return piece.time  # type: ignore[union-attr]
            continue
        m = _TIMESTAMP.search(line[:200])
        if m:
            return parse_time(m.group().decode("ascii", "replace").strip('"'), log_timezone)
    return None


# -- prefix ------------------------------------------------------------------------------


def prefix_score(prefix: CompiledPrefix, lines: Sequence[bytes]) -> int:
    """How many of the (non-continuation) lines the prefix reads."""
    return sum(1 for ln in lines if not ln.startswith(b"\t") and prefix.match(ln) is not None)


#: Groups of free-text escapes (``.*?``): the text they take is what a wrong prefix
#: leaves to them.
_FREE = ("application", "user", "database", "backend_type", "command_tag", "client_host")

#: ``key=value`` names that say which escape the value is (lower case).
_KEYS: dict[str, str] = {}
for _esc, _names in (
    ("u", "user usr u username user_name role"),
    ("d", "db database dbname d database_name"),
    ("a", "app appli application application_name appname"),
    ("h", "client host remote h client_addr clientaddr ip remote_host"),
    ("r", "connection_source connection_from"),
    ("p", "pid process_id"),
    ("c", "session session_id sid sess"),
    ("v", "vxid vtid vtxid virtual_transaction_id"),
    ("x", "xid tid txid xact transaction_id"),
    ("l", "line line_num log_line session_line_num"),
    ("Q", "queryid query_id qid"),
    ("e", "sql_error_code sqlstate sql_state state_code err"),
    ("b", "backend backend_type"),
    ("s", "proc_start_time session_start start"),
    ("m", "time_ms ts time timestamp"),
    ("i", "tag cmd command command_tag ps"),
):
    for _n in _names.split():
        _KEYS[_n] = _esc
_KEYVAL = re.compile(r'(?P<key>[A-Za-z_][A-Za-z0-9_]*)(?P<eq>=| = )(?P<q>"?)')
_TOKENS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("m", re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} [A-Za-z0-9+-]+")),
    ("t", re.compile(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [A-Za-z0-9+-]+")),
    ("n", re.compile(r"\d{10}\.\d{3}(?![\d.])")),
    ("c", re.compile(r"[0-9a-f]{7,8}\.[0-9a-f]{1,8}(?![0-9a-f.])")),
    ("v", re.compile(r"\d+/\d+(?![\d/])")),
    ("r", re.compile(r"(?:\[local\]|[0-9A-Za-z.:_-]*[0-9A-Za-z_-]\(\d+\))")),
    ("ud", re.compile(r"[^\s@:,\[\]()=]*@[^\s@:,\[\]()=]*")),
)
_BRACKET_NUM = re.compile(r"\[(\d+)\]")
_BRACKET_LINE = re.compile(r"\[(\d+)-(\d+)\]")
_BARE_NUM = re.compile(r"(?<![^\s\[(:])\d+(?=[\s\]):]|$)")
_VALUE = re.compile(r"\[[a-z]+\]|[^,\s\]\)|;\"]*")


def templatize(prefix: str) -> str:
    """A ``log_line_prefix`` that could have printed ``prefix`` (the text before the
    severity of one line): the inference step of :func:`detect_prefix`.

    >>> templatize("2021-02-14 01:34:02 CET [30291]: db=t1,user=bob,app=psql,client=[local] ")
    '%t [%p]: db=%d,user=%u,app=%a,client=%h '
    >>> templatize("2022-02-17 14:45:10.440 UTC [691] [queryid=1081270519976314062] postgres@so ")
    '%m [%p] [queryid=%Q] %u@%d '
    >>> templatize("2020-03-11 20:42:47 CET:[local]:postgres@pgbench:[15845]:")
    '%t:%r:%u@%d:[%p]:'
    >>> templatize(" sql_error_code = 00000 ")
    ' sql_error_code = %e '
    >>> templatize("2026-11-26 03:15:04.434 UTC [9798] 6b115aa3.267b 1 3/4 0 bob@db ")
    '%m [%p] %c %l %v %x %u@%d '
    >>> templatize("6b115aa3.267b 12 3/4 0 bob@db app=psql ")
    '%c %l %v %x %u@%d app=%a '
    """
    out: list[str] = []
    used: set[str] = set()
    i, n = 0, len(prefix)
    while i < n:
        m = _KEYVAL.match(prefix, i)
        if m is not None and m["key"].lower() in _KEYS and (i == 0 or not prefix[i - 1].isalnum()):
            esc = _KEYS[m["key"].lower()]
            j = m.end()
            if m["q"]:
                close = prefix.find('"', j)
                value = prefix[j:close] if close >= 0 else prefix[j:]
            else:
                v = _VALUE.match(prefix, j)
                value = v.group() if v else ""
            if esc in ("h", "r"):
                esc = "r" if value.endswith(")") and "(" in value else "h"
            if esc == "m" and value and "." not in value:
                esc = "t"
            out.append(prefix[i:j] + "%" + esc)
            used.add(esc)
            i = j + len(value)
            if m["q"] and i < n and prefix[i] == '"':
                out.append('"')
                i += 1
            continue
        matched = False
        for esc, rx in _TOKENS:
            t = rx.match(prefix, i)
            if t is None or t.end() == i:
                continue
            if esc == "ud" and "@" not in t.group():
                continue
            if esc == "t" and "t" in used:
                esc = "s"
            if esc == "m" and "m" in used:
                esc = "s"
            out.append("%u@%d" if esc == "ud" else "%" + esc)
            used.update(("u", "d") if esc == "ud" else (esc,))
            i = t.end()
            matched = True
            break
        if matched:
            continue
        b = _BRACKET_LINE.match(prefix, i)
        if b is not None:
            out.append("[%l-" + b.group(2) + "]")
            used.add("l")
            i = b.end()
            continue
        b = _BRACKET_NUM.match(prefix, i)
        if b is not None:
            esc = "p" if "p" not in used else ("x" if "x" not in used else "l")
            out.append("[%" + esc + "]")
            used.add(esc)
            i = b.end()
            continue
        b = _BARE_NUM.match(prefix, i)
        if b is not None:
            # The recommended '%c %l %v %x': a number after a session id is its line
            # number, after a vxid the xid; otherwise the pid comes first.
            last = next((o for o in reversed(out) if o.startswith("%") and o != "%%"), "")
            order = {"%c": ("l", "x", "p"), "%v": ("x", "l", "p")}.get(last, ("p", "l", "x"))
            esc = next((e for e in order if e not in used), "")
            if esc:
                out.append("%" + esc)
                used.add(esc)
                i = b.end()
                continue
        out.append("%%" if prefix[i] == "%" else prefix[i])
        i += 1
    return "".join(out)


def _templates(texts: Sequence[str]) -> list[str]:
    """Inferred prefixes for ``texts`` (the prefix part of each line), most common first,
    with ``%q`` versions where session-less lines print a head of the session lines'."""
    counts = Counter(templatize(t) for t in texts)
    top = [t for t, _ in counts.most_common(8)]
    merged = []
    for short in top:
        for full in top:
            if full != short and full.startswith(short) and "%q" not in full:
                merged.append(short + "%q" + full[len(short) :])
    return top + merged


def prefix_texts(lines: Iterable[bytes], spaces: int | None = None) -> tuple[list[str], int]:
    """The text before the severity of each line, and the spacing after it (2 as
    PostgreSQL writes, 1 where every line has a single space)."""
    texts: list[str] = []
    two = one = 0
    for line in lines:
        if line.startswith(b"\t"):
            continue
        m = _SEVERITY_AT.search(line[:4096])
        if m is None:
            continue
        if len(m.group(1)) == 2:
            two += 1
        else:
            one += 1
        texts.append(line[: m.start()].decode("utf-8", "replace"))
    found = 2 if two or not one else 1
    return texts, spaces if spaces is not None else found


@dataclass(frozen=True)
class PrefixChoice:
    """The prefix chosen for a stderr-style log and how (``known`` or ``inferred``)."""

    prefix: CompiledPrefix | None
    how: str = "known"
    read: int = 0
    of: int = 0
    first_unread: bytes | None = None


def choose_prefix(
    lines: Sequence[bytes], candidates: Sequence[str] = COMMON_PREFIXES
) -> PrefixChoice:
    """The prefix that reads the most lines, leaving the least to free-text fields."""
    lines = [ln for ln in lines if ln and not ln.startswith(b"\t")]
    if not lines:
        return PrefixChoice(compile_prefix(candidates[0]), "known")
    texts, spaces = prefix_texts(lines)
    inferred = [t for t in _templates(texts) if t not in candidates]
    best: tuple[int, int, int, CompiledPrefix, str] | None = None
    for index, text in enumerate([*candidates, *inferred]):
        compiled = compile_prefix(text, spaces)
        read = free = 0
        for ln in lines:
            m = compiled.match(ln)
            if m is None:
                continue
            read += 1
            free += _free_text(m)
        if not read:
            continue
        key = (read, -free, -index)
        if best is None or key > best[:3]:
            how = "known" if index < len(candidates) else "inferred"
            best = (read, -free, -index, compiled, how)
    if best is None:
        return PrefixChoice(None, "", 0, len(lines), lines[0])
    unread = next((ln for ln in lines if best[3].match(ln) is None), None)
    return PrefixChoice(best[3], best[4], best[0], len(lines), unread)


def detect_prefix(
    head: bytes, candidates: Sequence[str] = COMMON_PREFIXES
) -> tuple[CompiledPrefix | None, bytes | None]:
    """The prefix that reads the most of the first lines (see :func:`choose_prefix`).

    Returns ``(prefix, None)``, or ``(None, first_line)`` when none reads a line.

    >>> p, _ = detect_prefix(b"2026-11-26 03:15:04.434 UTC [9798] LOG:  starting\\n")
    >>> p.text
    '%m [%p] '
    """
    lines = [ln for ln in _first_lines(head, HEAD_LINES) if not ln.startswith(b"\t")]
    choice = choose_prefix(lines, candidates)
    if choice.prefix is None:
        return None, choice.first_unread
    return choice.prefix, None


# -- reading a sample of a whole file ------------------------------------------------------


@dataclass
class Sample:
    """Lines to decide a file's format and prefix: its head, and session lines from
    anywhere in it when the head has too few (``complete``: the file was read to its end)."""

    head: list[bytes] = field(default_factory=list)
    later: list[bytes] = field(default_factory=list)
    complete: bool = False

    @property
    def lines(self) -> list[bytes]:
        return self.head + self.later


def _session_lines(lines: Iterable[bytes]) -> int:
    return sum(1 for ln in lines if any(mark in ln for mark in SESSION_MARKS))


def take_sample(read: Callable[[int], bytes], *, whole: bool = True) -> Sample:
    """Read the head; with ``whole``, go on through the file (in 1 MB reads, keeping
    only lines that come from sessions) until enough session lines are seen."""
    sample = Sample()
    data = read(HEAD_BYTES)
    if len(data) < HEAD_BYTES:
        sample.complete = True
        sample.head = _first_lines(data + b"\n", HEAD_LINES)
        return sample
    cut = data.rfind(b"\n") + 1
    sample.head = _first_lines(data[:cut] + b"\n", HEAD_LINES)
    seen = _session_lines(sample.head)
    carry = data[cut:]
    if not whole or seen >= ENOUGH_SESSION_LINES:
        return sample
    while seen < ENOUGH_SESSION_LINES:
        chunk = read(1024 * 1024)
        if not chunk:
            sample.complete = True
            if carry.strip():
                sample.later.append(carry)
            break
        buf = carry + chunk
        cut = buf.rfind(b"\n") + 1
        carry = buf[cut:]
        pos = buf.find(PREFIX_CHANGE, 0, cut)
        while pos >= 0:  # a reload that changed the prefix: the new prefix's first line
            ls = buf.rfind(b"\n", 0, pos) + 1
            le = buf.find(b"\n", pos, cut)
            sample.later.append(buf[ls : le if le >= 0 else cut])
            pos = buf.find(PREFIX_CHANGE, le if le >= 0 else cut, cut)
        for mark in SESSION_MARKS:
            pos = buf.find(mark, 0, cut)
            taken = 0
            while pos >= 0 and taken < 20:
                ls = buf.rfind(b"\n", 0, pos) + 1
                le = buf.find(b"\n", pos, cut)
                line = buf[ls : le if le >= 0 else cut]
                if line and not line.startswith(b"\t"):
                    sample.later.append(line)
                    seen += 1
                    taken += 1
                pos = buf.find(mark, le if le >= 0 else cut, cut)
        if len(sample.later) > 4 * ENOUGH_SESSION_LINES:
            break
    return sample


# -- the decision for one file ------------------------------------------------------------

#: Formats whose text is stderr-style (``<prefix><SEVERITY>:  <text>``).
STDERR_FAMILY = ("stderr", *envelope.ENVELOPES)


@dataclass(frozen=True)
class Decision:
    """How one file is read: its format, the prefix of its stderr-style text and how
    that prefix was chosen (``given``: flag, config or server; ``known``: one of the
    common prefixes; ``inferred``: built from the file's own lines), and for syslog
    whether messages carry sequence numbers and which idents are the server's."""

    fmt: str
    prefix: CompiledPrefix | None = None
    how: str = ""
    numbered: bool = True
    idents: tuple[str, ...] = ()
    #: More prefixes the file's lines show (``log_line_prefix`` changed while the
    #: server wrote it): each line is read with the one that reads it.
    others: tuple[CompiledPrefix, ...] = ()
    #: The prefix the server uses now, where the file is read with another.
    server: str | None = None


def _excerpt(line: bytes | None) -> str:
    if not line:
        return "''"
    return repr(line[:160].decode("utf-8", "replace"))


def inner_texts(fmt: str, lines: Sequence[bytes]) -> tuple[list[bytes], bool, tuple[str, ...]]:
    """The stderr-style text of an envelope's lines (first parts and secondary lines),
    whether its messages are numbered, and the idents of the server's lines."""
    if fmt == "stderr":
        return list(lines), True, ()
    year = datetime.now().year
    pieces = [p for p in (envelope.decode_line(fmt, ln, year) for ln in lines)]
    good = [p for p in pieces if isinstance(p, envelope.Piece)]
    by_ident: Counter[str] = Counter()
    pg_like: Counter[str] = Counter()
    for p in good:
        by_ident[p.ident] += 1
        if _SEVERITY_AT.search(p.text[:4096]):
            pg_like[p.ident] += 1
    idents = tuple(sorted(i for i, n in pg_like.items() if n * 5 >= by_ident[i]))
    if fmt == "syslog" and not idents:
        idents = ("postgres",)
    mine = [p for p in good if fmt != "syslog" or p.ident in idents]
    numbered = any(p.part is not None for p in mine) or not any(p.seq is None for p in mine)
    texts = [p.text for p in mine if p.part in (None, 1) or _SEVERITY_AT.match(p.text[:4096])]
    return texts, numbered, idents


def decide(
    name: str,
    sample: Sample,
    *,
    fmt: str = "auto",
    prefix: CompiledPrefix | None = None,
    hint: str | None = None,
    detected: str | None = None,
    start_line: int = 1,
    server: CompiledPrefix | None = None,
) -> Decision:
    """The format and prefix of one file from its :class:`Sample` (LogInputError or
    PrefixMismatch with the reason when it cannot be read).

    A format given with ``--log-format`` that the content clearly contradicts is an
    error: csvlog forced on a stderr file would read nothing and say nothing.

    ``server`` is the prefix the server uses now: unlike a prefix given on the
    command line it is not forced on a file none of whose lines it reads (a file
    rotated before ``log_line_prefix`` was changed); the file is read with its own
    prefix and the decision names the server's.  A file of lines with more than one
    prefix is read with each (:func:`other_prefixes`).
    """
    from auditor.errors import LogInputError, PrefixMismatch

    vote = vote_format(sample.head[:50], hint)
    if fmt == "auto":
        chosen = detected or vote.fmt
        why = refusal(vote, name) if detected is None else None
        if why is not None:
            raise LogInputError(why)
    else:
        chosen = fmt
        if sample.head and vote.fmt not in (fmt, "none") and vote.share >= 0.8:
            raise LogInputError(
                f"{name}:{start_line}: --log-format {fmt} was given, but this is a "
                f"{vote.fmt if vote.fmt != 'pgbouncer' else 'PgBouncer'} log "
                f"(first line: {_excerpt(vote.first_line)}); leave --log-format out "
                "(each file's format is detected) or give the right one"
            )
    if chosen not in STDERR_FAMILY:
        return Decision(chosen)
    inner, numbered, idents = inner_texts(chosen, sample.lines)
    lines = [ln for ln in inner if ln.strip() and not ln.startswith(b"\t")]
    several = chosen == "stderr"  # the envelopes are read with one prefix
    if prefix is None and server is not None and lines:
        if prefix_score(server, lines):
            prefix = server  # the server's prefix reads the file (or part of it)
        else:
            # A file rotated before the prefix was changed: read with its own.
            found = decide(name, sample, fmt=chosen, hint=hint, start_line=start_line)
            return replace(found, server=server.text)
    elif prefix is None and server is not None:
        prefix = server
    if prefix is not None:
        if lines and prefix_score(prefix, lines) == 0:
            _, spaces = prefix_texts(lines)
            if spaces != prefix.spaces:
                spaced = compile_prefix(prefix.text, spaces)
                if prefix_score(spaced, lines):
                    return Decision(chosen, spaced, "given", numbered, idents)
            raise PrefixMismatch(
                f"{name}:{start_line}: log_line_prefix {prefix.text!r} matches no line; "
                f"first line: {_excerpt(lines[0])}"
            )
        others = other_prefixes(prefix, lines) if several else ()
        return Decision(chosen, prefix, "given", numbered, idents, others)
    choice = choose_prefix(lines)
    if choice.prefix is None:
        raise PrefixMismatch(
            f"{name}:{start_line}: no known log_line_prefix reads this {chosen} log; give it "
            f"with --log-line-prefix (first line: {_excerpt(choice.first_unread)})"
        )
    others = other_prefixes(choice.prefix, lines) if several else ()
    return Decision(chosen, choice.prefix, choice.how, numbered, idents, others)


#: Lines another prefix must read (better than the prefixes chosen) to be read with too.
MIN_OTHER_LINES = 3


def _free_text(m: re.Match[bytes]) -> int:
    """Bytes a prefix's match leaves to its free-text fields (less: a better reading)."""
    gd = m.groupdict()
    return sum(len(gd[g] or b"") for g in _FREE if g in gd)


def _best_free(prefixes: Sequence[CompiledPrefix], line: bytes) -> int | None:
    """The least free text any of ``prefixes`` leaves reading ``line`` (None: none reads it)."""
    best: int | None = None
    for p in prefixes:
        m = p.match(line)
        if m is None:
            continue
        free = _free_text(m)
        best = free if best is None else min(best, free)
    return best


def other_prefixes(first: CompiledPrefix, lines: Sequence[bytes]) -> tuple[CompiledPrefix, ...]:
    """More prefixes a file's lines show besides ``first``: ``log_line_prefix`` was
    changed (and the server reloaded) while the file was written.

    The postmaster announces the new prefix exactly (``parameter "log_line_prefix"
    changed to "..."``, already with it).  The lines before a change, or of a file
    whose change line is not in the sample, are taken by detection when a prefix
    reads at least :data:`MIN_OTHER_LINES` lines (and a tenth of the sample) that the
    chosen ones do not read, or read only with more text in their free fields (a
    ``%u@%d`` prefix reads a longer prefix's lines too, with the rest as the name).
    """
    chosen = [first]
    announced = {
        new.text: new for ln in lines if (new := announced_prefix(ln, first.spaces)) is not None
    }
    chosen += [new for text, new in sorted(announced.items()) if text != first.text]
    free = [_best_free(chosen, ln) for ln in lines]
    rest = [ln for ln, f in zip(lines, free, strict=True) if f is None]
    # Only lines the chosen prefixes leave unread, or read with text in their free
    # fields, can be another prefix's.
    open_lines = [ln for ln, f in zip(lines, free, strict=True) if f != 0]
    if not open_lines:
        return tuple(chosen[1:])
    need = max(MIN_OTHER_LINES, len(lines) // 10)
    texts, spaces = prefix_texts(lines)
    # Inferred prefixes only for lines no prefix reads, or across an announced
    # change: a prefix inferred from lines that one reads may take a value (an
    # application name with a space) for its own text.
    candidates = [*COMMON_PREFIXES, *(_templates(texts) if rest or announced else ())]
    for _ in range(3):
        best: tuple[int, CompiledPrefix] | None = None
        known = {p.text for p in chosen}
        for text in candidates:
            if text in known:
                continue
            cand = compile_prefix(text, spaces)
            read = 0
            for ln in open_lines:
                m = cand.match(ln)
                if m is None:
                    continue
                left = _free_text(m)
                theirs = _best_free(chosen, ln)
                if theirs is None or left < theirs:
                    read += 1
            if read >= need and (best is None or read > best[0]):
                best = (read, cand)
        if best is None:
            break
        chosen.append(best[1])
    return tuple(chosen[1:])


__all__ = [
    "STDERR_FAMILY",
    "Decision",
    "FormatVote",
    "PrefixChoice",
    "Sample",
    "choose_prefix",
    "decide",
    "detect_format",
    "detect_prefix",
    "first_time",
    "inner_texts",
    "other_prefixes",
    "prefix_score",
    "refusal",
    "take_sample",
    "templatize",
    "vote_format",
]
