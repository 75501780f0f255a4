"""Compile a ``log_line_prefix`` into the regex that reads it back.

PostgreSQL writes every physical line of a stderr message (the ``LOG:`` line
and each ``DETAIL:``/``STATEMENT:`` line after it) as ``<prefix><SEVERITY>:
<text>``.  The prefix is the server's ``log_line_prefix`` expanded by
``log_status_format()`` in ``src/backend/utils/error/elog.c``; this module
turns the format string into a bytes regex with one named group per field,
following that function escape by escape:

* every escape (``%a %u %d %r %h %b %p %P %t %m %n %i %e %c %l %s %v %x %Q %L``
  and ``%%``); unknown escapes print nothing, as in the server,
* padding (``%-10u``, ``%5p``): the value is space-padded left or right,
* ``%q``: processes without a session (postmaster, checkpointer, ...) stop
  the prefix there, so everything after it is optional.

The regex ends with the severity word and the two spaces after it, so the
non-greedy text fields (``%u``, ``%d``, ``%a``: any characters, even spaces)
are anchored on what follows them.

>>> p = compile_prefix("%m [%p] ")
>>> m = p.match(b"2026-11-26 03:15:21.505 UTC [10088] LOG:  statement: SELECT 1")
>>> m["time"], m["pid"], m["severity"], m.end()
(b'2026-11-26 03:15:21.505 UTC', b'10088', b'LOG', 42)
>>> p.match(b"\\tcontinued text") is None
True
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

#: Words ``error_severity()`` prints for a message's first line.
PRIMARY_SEVERITIES = ("DEBUG", "LOG", "INFO", "NOTICE", "WARNING", "ERROR", "FATAL", "PANIC")
#: Words of the extra lines of the same message (``send_message_to_server_log()``).
SECONDARY_SEVERITIES = ("DETAIL", "HINT", "QUERY", "CONTEXT", "LOCATION", "BACKTRACE", "STATEMENT")


def _severity_re(spaces: int) -> bytes:
    """The severity word and what follows it: PostgreSQL writes two spaces; some
    exports collapse them to one (``spaces=1``, chosen per file by detection)."""
    return (
        rb"(?P<severity>"
        + b"|".join(s.encode() for s in PRIMARY_SEVERITIES + SECONDARY_SEVERITIES)
        + rb"):"
        + b" " * spaces
        # log_error_verbosity = verbose adds the SQLSTATE after the severity of the
        # first line; every SQLSTATE holds a digit, which keeps "NOTICE:  HELLO: x" text.
        + rb"(?:(?P<vsqlstate>(?=[0-9A-Z]{0,4}[0-9])[0-9A-Z]{5}): )?"
    )


_SEVERITY_RE = _severity_re(2)

_TZ = rb"[A-Za-z0-9+-]+"
_DATE_TIME = rb"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d"
_ANY = rb".*?"

# escape -> (group name, regex of the value, bytes a non-empty value can start with;
# None = anything, b"" = the value may be empty so look at what follows).
_ESCAPES: dict[str, tuple[str, bytes, bytes | None]] = {
    "a": ("application", _ANY, None),
    "u": ("user", _ANY, None),
    "d": ("database", _ANY, None),
    # Empty for processes without a client connection (postmaster, checkpointer, ...).
    "r": ("client_hostport", rb"(?:\[local\]|[^\s()]+\(\d+\)|[^\s()]+)?", None),
    "h": ("client_host", rb"(?:\[local\]|\S*?)", None),
    "L": ("local_address", rb"\S*?", None),
    "b": ("backend_type", _ANY, None),
    "p": ("pid", rb"\d+", b"0123456789"),
    "P": ("leader_pid", rb"\d*", b""),
    "t": ("time", _DATE_TIME + rb" " + _TZ, b"0123456789"),
    "m": ("time", _DATE_TIME + rb"\.\d{3} " + _TZ, b"0123456789"),
    "n": ("epoch", rb"\d+\.\d{3}", b"0123456789"),
    "i": ("command_tag", _ANY, None),
    "e": ("sqlstate", rb"[0-9A-Z]{5}", b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    "c": ("session_id", rb"[0-9a-f]+\.[0-9a-f]+", b"0123456789abcdef"),
    "l": ("line_num", rb"\d+", b"0123456789"),
    "s": ("session_start", _DATE_TIME + rb" " + _TZ, b"0123456789"),
    "v": ("vxid", rb"(?:\d+/\d+)?", b""),
    "x": ("xid", rb"\d+", b"0123456789"),
    "Q": ("query_id", rb"-?\d+", b"-0123456789"),
}

_SEVERITY_FIRST = b"".join(sorted({s[:1].encode() for s in PRIMARY_SEVERITIES}))

#: Any severity word with its colon (where a line could also end its prefix).
_SEVERITY_WORD = re.compile(
    b"(?:" + b"|".join(s.encode() for s in PRIMARY_SEVERITIES + SECONDARY_SEVERITIES) + b"): "
)
#: The fields whose value a client chooses, as the longest value the server can print:
#: ``%a`` is cut to NAMEDATALEN-1 bytes of printable ASCII (``check_application_name()``
#: replaces anything else by ``?``, or from PostgreSQL 16 by ``\xNN``), ``%u`` and
#: ``%d`` to NAMEDATALEN-1 bytes (the startup packet's names are truncated so; a quoted
#: identifier may hold spaces and any byte but NUL).  Greedy: with the lazy regex they
#: find whether a line can be split at another severity (:attr:`CompiledPrefix.alt_regex`).
_CHOSEN: dict[str, bytes] = {
    "a": rb"[\x20-\x7e]{0,63}",
    "u": rb"[^\n]{0,63}",
    "d": rb"[^\n]{0,63}",
}


@dataclass(frozen=True)
class CompiledPrefix:
    """A ``log_line_prefix`` compiled for reading.

    ``regex`` matches ``<prefix><SEVERITY>:  [SQLSTATE: ]`` at the start of a
    physical line; ``fields`` names the groups it fills; ``first_bytes`` is the
    set of bytes a prefixed line can start with (``None`` when any byte can),
    used to spot garbage lines without matching every line.
    """

    text: str
    regex: re.Pattern[bytes]
    fields: frozenset[str]
    first_bytes: bytes | None
    has_q: bool = False
    #: Spaces after ``SEVERITY:`` (2 as PostgreSQL writes; 1 in files whose spaces
    #: were collapsed by whatever exported them).
    spaces: int = 2
    _escapes: tuple[str, ...] = field(default=(), repr=False)
    #: The same regex for decoded text (fields come out as str, no per-field decoding).
    text_regex: re.Pattern[str] = field(default=re.compile(""), repr=False)
    #: The regex with the client-chosen fields (``%a``, ``%u``, ``%d``) greedy and as
    #: long as the server prints them: where it ends elsewhere than :attr:`regex`, a
    #: value holds the rest of the prefix and a severity, and the line reads two ways
    #: (None when the prefix has no such field).
    alt_regex: re.Pattern[bytes] | None = field(default=None, repr=False)
    #: The prefix's literal texts (stripped, non-empty): a chosen field's value holding
    #: one may have been split short (see ``StderrReader``).
    literals: tuple[str, ...] = field(default=(), repr=False)

    def match(self, line: bytes, pos: int = 0) -> re.Match[bytes] | None:
        """The prefix and severity at ``pos`` of ``line`` (a buffer may hold many lines)."""
        return self.regex.match(line, pos)

    def other_reading(
        self, line: bytes, first: re.Match[bytes], endpos: int | None = None
    ) -> re.Match[bytes] | None:
        """Another way to split ``line`` into prefix and message than ``first`` (the lazy
        match), or None when the line reads one way only.

        A client that sets ``application_name`` (or connects with a role or database
        name) holding the rest of the prefix and ``LOG:  `` makes the lazy match end
        inside that value; a statement holding such text right after the prefix makes
        the greedy one end inside the statement.  Either way the line is ambiguous.

        >>> p = compile_prefix("%m [%p] app=%a client=%h ")
        >>> head = b"2026-11-26 03:15:21.505 UTC [7] app="
        >>> plain = p.match(head + b"psql: worker 3 client=[local] LOG:  statement: x")
        >>> p.other_reading(head + b"psql: worker 3 client=[local] LOG:  statement: x", plain)
        >>> forged = head + b"x client=h LOG:  statement: SELECT 1 -- client=[local] LOG:  y"
        >>> p.other_reading(forged, p.match(forged))["application"]
        b'x client=h LOG:  statement: SELECT 1 --'
        """
        if self.alt_regex is None:
            return None
        end = len(line) if endpos is None else endpos
        # The other split ends after the first, within what the chosen fields and the
        # prefix's text can hold: without a severity word there, there is none.
        reach = min(end, first.end() + 64 * len(self._escapes) + 2 * len(self.text) + 16)
        if _SEVERITY_WORD.search(line, first.end(), reach) is None:
            return None
        other = self.alt_regex.match(line, first.start(), end)
        if other is None or other.end() == first.end():
            return None
        return other

    @property
    def has_session_id(self) -> bool:
        return "session_id" in self.fields

    @property
    def has_vxid(self) -> bool:
        return "vxid" in self.fields

    @property
    def has_time(self) -> bool:
        return "time" in self.fields or "epoch" in self.fields


def _parse(prefix: str) -> list[tuple[str, str, int]]:
    """Split a prefix into ("lit", text, 0) and ("esc", letter, padding) items.

    >>> _parse("%m [%-5p] %%%q")
    [('esc', 'm', 0), ('lit', ' [', 0), ('esc', 'p', -5), ('lit', '] %', 0), ('esc', 'q', 0)]
    """
    items: list[tuple[str, str, int]] = []
    lit: list[str] = []
    i, n = 0, len(prefix)
    while i < n:
        ch = prefix[i]
        if ch != "%":
            lit.append(ch)
            i += 1
            continue
        i += 1
        if i >= n:
            break  # a trailing "%" prints nothing
        if prefix[i] == "%":
            lit.append("%")
            i += 1
            continue
        padding = 0
        if prefix[i] <= "9":  # the server's quick check for "-" and digits
            sign = 1
            if prefix[i] == "-":
                sign = -1
                i += 1
            digits = ""
            while i < n and prefix[i].isdigit():
                digits += prefix[i]
                i += 1
            if i >= n:
                break  # "%-" or "%10" at the end: the server stops there
            padding = sign * int(digits or "0")
        if lit:
            items.append(("lit", "".join(lit), 0))
            lit = []
        items.append(("esc", prefix[i], padding))
        i += 1
    if lit:
        items.append(("lit", "".join(lit), 0))
    return items


def compile_prefix(prefix: str, spaces: int = 2) -> CompiledPrefix:
    """Compile ``log_line_prefix`` (as ``SHOW log_line_prefix`` prints it).

    ``spaces`` is how many spaces follow ``SEVERITY:`` (see :attr:`CompiledPrefix.spaces`).

    >>> p = compile_prefix("%t:%r:%u@%d:[%p]: ")
    >>> m = p.match(b"2026-11-26 03:15:21 UTC:127.0.0.1(5432):bob@app:[42]: ERROR:  boom")
    >>> m["client_hostport"], m["user"], m["database"], m["pid"], m["severity"]
    (b'127.0.0.1(5432)', b'bob', b'app', b'42', b'ERROR')
    >>> q = compile_prefix("%m %q%-10u|")
    >>> q.match(b"2026-11-26 03:15:21.505 UTC bob       |LOG:  x")["user"]
    b'bob'
    >>> q.match(b"2026-11-26 03:15:21.505 UTC LOG:  checkpoint starting")["severity"]
    b'LOG'
    """
    items = _parse(prefix)
    body, seen, escapes, q_index = _body(items, {})
    severity = _SEVERITY_RE if spaces == 2 else _severity_re(spaces)
    regex = re.compile(body + severity)
    alt = None
    if any(e in _CHOSEN for e in escapes):
        alt = re.compile(_body(items, _CHOSEN)[0] + severity)
    return CompiledPrefix(
        text=prefix,
        regex=regex,
        text_regex=re.compile((body + severity).decode(), re.ASCII),
        alt_regex=alt,
        literals=tuple(dict.fromkeys(v.strip() for k, v, _ in items if k == "lit" and v.strip())),
        spaces=spaces,
        fields=frozenset(seen),
        first_bytes=_first_bytes(items),
        has_q=q_index is not None,
        _escapes=tuple(escapes),
    )


def _body(
    items: list[tuple[str, str, int]], override: dict[str, bytes]
) -> tuple[bytes, set[str], list[str], int | None]:
    """The prefix's regex (without the severity), the groups it fills, its escapes and
    where ``%q`` is; ``override`` replaces the value regex of some escapes."""
    parts: list[bytes] = []
    seen: set[str] = set()
    escapes: list[str] = []
    q_index: int | None = None
    for kind, value, padding in items:
        if kind == "lit":
            # Escaped as text, then encoded: the same pattern serves str and bytes.
            parts.append(re.escape(value).encode())
            continue
        if value == "q":
            if q_index is None:
                q_index = len(parts)
            continue
        spec = _ESCAPES.get(value)
        if spec is None:
            continue  # unknown escape: the server prints nothing
        escapes.append(value)
        name, rx, _first = spec
        rx = override.get(value, rx)
        if name in seen:
            group = b"(?:" + rx + b")"
        else:
            group = b"(?P<" + name.encode() + b">" + rx + b")"
            seen.add(name)
        if padding > 0:
            group = b" *" + group
        elif padding < 0:
            group = group + b" *"
        parts.append(group)
    if q_index is not None:
        head, tail = parts[:q_index], parts[q_index:]
        body = b"".join(head) + (b"(?:" + b"".join(tail) + b")?" if tail else b"")
    else:
        body = b"".join(parts)
    return body, seen, escapes, q_index


def _first_bytes(items: list[tuple[str, str, int]]) -> bytes | None:
    """Bytes a prefixed line can start with, or None when any byte can.

    >>> _first_bytes(_parse("%m [%p] "))
    b'0123456789'
    >>> _first_bytes(_parse("[%p] ")), _first_bytes(_parse("%u@%d ")) is None
    (b'[', True)
    >>> sorted(set(_first_bytes(_parse("%q%v %c ")).decode()))[:5]
    [' ', '0', '1', '2', '3']
    """
    acc = b""
    for kind, value, padding in items:
        if kind == "lit":
            return acc + value.encode()[:1]
        if value == "q":
            # Session-less processes stop here: the severity may come next.
            acc += _SEVERITY_FIRST
            continue
        spec = _ESCAPES.get(value)
        if spec is None:
            continue
        first = spec[2]
        if padding:
            acc += b" "  # a short or empty value is padded with spaces
        if first is None:
            return None
        if first == b"":
            acc += b"0123456789"
            continue  # the value may be empty: the next item may come first
        return acc + first
    return acc + _SEVERITY_FIRST


#: Prefixes tried, in order, when none is given and no server is asked.
COMMON_PREFIXES = (
    "%m [%p] ",  # PostgreSQL 10+ default
    "%m [%p] %q%c %l %v %x %u@%d app=%a client=%h ",  # what auditor recommends
    "%m [%p] %q%u@%d ",  # Debian/Ubuntu default
    "%t [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ",  # pgBadger's recommendation
    "%t [%p]: [%l-1] ",
    "%t [%p]: user=%u,db=%d,app=%a,client=%h ",
    "%m [%p]: [%l-1] user=%u,db=%d,app=%a,client=%h ",
    "%t:%r:%u@%d:[%p]:",  # Amazon RDS and Aurora
    "%t:%r:%u@%d:[%p]: ",
    "%t-%c-",  # Azure Database for PostgreSQL
    "[%p]: [%l-1] db=%d,user=%u ",  # Google Cloud SQL's textPayload (time: the entry's)
    "%m %u@%d %p %r ",
    "< %m > ",
    "%t ",
    "%m ",
    "",  # PostgreSQL 9.x default
)


def session_line_regex(prefix: str, *, joint: bool = False) -> tuple[bytes, str] | None:
    """The part of a prefix that numbers a process's lines: a regex, from a line's start,
    with groups ``key`` (``%c``, else ``%p``) and ``line`` (``%l``); and which escape
    the key is.  None when the prefix has no ``%l`` or neither ``%c`` nor ``%p``.

    ``joint``: one group ``pair`` instead, the key, one space and the line (what a
    regex's ``findall`` returns fastest); None when the prefix does not print them so.

    Lines of processes without a session stop at ``%q``; the regex reads the
    session lines, whose prefix is whole.

    >>> rx, key = session_line_regex("%m [%p] %q%c %l %v ")
    >>> m = re.match(rx, b"2026-11-26 03:15:21.505 UTC [42] 6b07a44b.2a 7 3/1 LOG:  x")
    >>> m["key"], m["line"], key
    (b'6b07a44b.2a', b'7', 'c')
    >>> rx, key = session_line_regex("%m [%p] %q%c %l %v ", joint=True)
    >>> re.match(rx, b"2026-11-26 03:15:21.505 UTC [42] 6b07a44b.2a 7 3/1 LOG:  x")["pair"]
    b'6b07a44b.2a 7'
    >>> session_line_regex("%m [%p] ") is None
    True
    """
    items = _parse(prefix)
    escapes = [v for k, v, _ in items if k == "esc"]
    if "l" not in escapes:
        return None
    key = "c" if "c" in escapes else "p" if "p" in escapes else None
    if key is None:
        return None
    if joint:
        found = session_line_regex(prefix)
        pair = f"%{key} %l"
        if found is None or pair not in prefix or prefix.count(f"%{key}") != 1:
            return None
        rx = found[0]
        keyrx = rx[rx.index(b"(?P<key>") + 8 : rx.index(b")\\ (?P<line>")]
        start = rx.index(b"(?P<key>")
        end = rx.index(b")", rx.index(b"(?P<line>")) + 1
        linerx = rx[rx.index(b"(?P<line>") + 9 : end - 1]
        return rx[:start] + b"(?P<pair>" + keyrx + b" " + linerx + b")" + rx[end:], key
    parts: list[bytes] = []
    need = {key, "l"}
    for kind, value, padding in items:
        if not need:
            break
        if kind == "lit":
            parts.append(re.escape(value).encode())
            continue
        spec = _ESCAPES.get(value)
        if spec is None or value == "q":
            continue
        rx = spec[1]
        if value in need:
            group = b"(?P<" + (b"key" if value == key else b"line") + b">" + rx + b")"
            need.discard(value)
        else:
            group = b"(?:" + rx + b")"
        if padding > 0:
            group = b" *" + group
        elif padding < 0:
            group = group + b" *"
        parts.append(group)
    return b"".join(parts), key
