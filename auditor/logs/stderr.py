"""The stderr format: ``<log_line_prefix><SEVERITY>:  <text>`` lines.

A message is a first line (``LOG:``, ``ERROR:``, ...) followed by the
``DETAIL:``/``HINT:``/``QUERY:``/``CONTEXT:``/``LOCATION:``/``STATEMENT:``
lines of the same message, each with its own prefix.  A newline inside any
text is followed by a TAB (``append_with_tabs()``), so a line that starts with
a TAB continues the line above and cannot be confused with a new line: an
attacker cannot forge log lines through a statement's text.  With
``logging_collector`` the collector writes each message in one piece, so the
lines of one message are adjacent.

The reader never looks at every line in the fast path: the record that holds
a token hit is found by walking back over continuation and secondary lines to
the first line, and forward to the next first line.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from auditor.encoding import NOT_UTF8, nul_warning
from auditor.encoding import decode_log_bytes as decode
from auditor.logs.message import build_record, split_host_port
from auditor.logs.prefilter import Finder, classify_texts, finder
from auditor.logs.prefix import SECONDARY_SEVERITIES, CompiledPrefix, compile_prefix
from auditor.logs.times import LogClock, parse_epoch
from auditor.model import LogRecord, ReadWarning, SourceLocation

TAB = 9
_SECONDARY = frozenset(s.encode() for s in SECONDARY_SEVERITIES)
#: How far back a secondary line may be from its first line (lines), before
#: the reader gives up and treats it as an orphan.
_MAX_BACK = 10_000


#: The postmaster's line for a reloaded ``log_line_prefix``: already written with the
#: new prefix, and its value is that prefix exactly.
PREFIX_CHANGE = b'parameter "log_line_prefix" changed to "'
#: Groups of free-text escapes: among prefixes that all read a line, the one that
#: leaves the least text to them is the line's.
_FREE = ("application", "user", "database", "backend_type", "command_tag", "client_host")


def changed_prefix(line: bytes) -> str | None:
    """The new ``log_line_prefix`` a ``parameter ... changed to`` line announces.

    >>> changed_prefix(b'2026 [1] LOG:  parameter "log_line_prefix" changed to "%t [%p]: "')
    '%t [%p]: '
    >>> changed_prefix(b"LOG:  statement: SELECT 1") is None
    True
    """
    at = line.find(PREFIX_CHANGE)
    if at < 0:
        return None
    end = line.rfind(b'"', at + len(PREFIX_CHANGE))
    if end < 0:
        return None
    return line[at + len(PREFIX_CHANGE) : end].decode("utf-8", "replace")


#: Fields the postmaster's own lines leave empty (it has no session).
_SESSION_FIELDS = (
    "user",
    "database",
    "session_id",
    "application",
    "client_host",
    "client_hostport",
)


def announced_prefix(line: bytes, spaces: int = 2) -> CompiledPrefix | None:
    """The new prefix a reload's ``parameter "log_line_prefix" changed to "..."`` line
    names, if that line is the postmaster's: the new prefix reads it, its message
    starts with that text (not a statement quoting it) and it shows no session
    (a RAISE LOG by a client cannot announce a prefix for everyone's lines).

    >>> announced_prefix(b'2026 [1] LOG:  parameter "log_line_prefix" changed to "%t [%p]: "')
    >>> announced_prefix(
    ...     b'2026-12-03 18:23:06 UTC [7]: LOG:  parameter "log_line_prefix" changed to "%t [%p]: "'
    ... ).text
    '%t [%p]: '
    """
    at = line.find(PREFIX_CHANGE)
    value = changed_prefix(line) if at >= 0 else None
    if value is None:
        return None
    new = compile_prefix(value, spaces)
    m = new.regex.match(line)
    if m is None or m.end() != at:
        return None
    gd = m.groupdict()
    if any(gd.get(g) for g in _SESSION_FIELDS):
        return None
    return new


def _line_start(buf: bytes, pos: int, lo: int) -> int:
    """Start of the line holding ``pos`` (not before ``lo``)."""
    i = buf.rfind(b"\n", lo, pos)
    return lo if i < 0 else i + 1


class StderrReader:
    """Reads records of one stderr log whose prefix (or prefixes) are known.

    A file written across a reload that changed ``log_line_prefix`` holds lines of
    both: each line is read with the prefix that reads it (``others``), and a
    ``parameter "log_line_prefix" changed to "..."`` line that no prefix reads adds
    its value (``learn``), so every record after the change is read.
    """

    fmt = "stderr"

    def __init__(
        self,
        prefix: CompiledPrefix,
        clock: LogClock | None = None,
        others: Sequence[CompiledPrefix] = (),
        *,
        learn: bool = True,
    ) -> None:
        self.prefix = prefix
        self.clock = clock or LogClock()
        self.learn = learn
        self.prefixes: tuple[CompiledPrefix, ...] = ()
        #: Records parsed per prefix (by text), to say which prefix read what.
        self.used: dict[str, int] = {}
        self._set_prefixes((prefix, *(o for o in others if o.text != prefix.text)))

    def _set_prefixes(self, prefixes: tuple[CompiledPrefix, ...]) -> None:
        self.prefixes = prefixes
        firsts = [p.first_bytes for p in prefixes]
        first_bytes = None if any(f is None for f in firsts) else b"".join(firsts)  # type: ignore[arg-type]
        self.finder: Finder = finder("stderr", first_bytes)
        self.time_resolution_us = time_resolution_us(prefixes[0])
        self._resolutions = {p.text: time_resolution_us(p) for p in prefixes}

    def _match(self, buf: bytes, ls: int) -> re.Match[bytes] | None:
        """The prefix match of the line at ``ls`` (the best of the prefixes in use)."""
        m = self.prefix.regex.match(buf, ls)
        if len(self.prefixes) > 1:
            found = [m] if m is not None else []
            found += [x for p in self.prefixes[1:] if (x := p.regex.match(buf, ls)) is not None]
            m = min(found, key=_free_text) if len(found) > 1 else (found[0] if found else None)
        if m is None:
            return self._learned(buf, ls) if self.learn else None
        if self.learn and buf.startswith(PREFIX_CHANGE[:-4], m.end()):
            # A change to a prefix that the prefixes in use also read (%q: the
            # postmaster's line stops early): the lines after it may be the new one's.
            self._announced(buf, ls)
        return m

    def _text_match(self, line: str) -> tuple[re.Match[str] | None, CompiledPrefix]:
        m = self.prefix.text_regex.match(line)
        if len(self.prefixes) == 1:
            return m, self.prefix
        found = [(m, self.prefix)] if m is not None else []
        found += [(x, p) for p in self.prefixes[1:] if (x := p.text_regex.match(line)) is not None]
        if not found:
            return None, self.prefix
        return min(found, key=lambda mp: _free_text(mp[0])) if len(found) > 1 else found[0]

    def _learned(self, buf: bytes, ls: int) -> re.Match[bytes] | None:
        """A line no prefix reads: if it announces a new prefix, read on with it too."""
        new = self._announced(buf, ls)
        return new.regex.match(buf, ls) if new is not None else None

    def _announced(self, buf: bytes, ls: int) -> CompiledPrefix | None:
        """The new prefix the line at ``ls`` announces (now in use), if it reads the line."""
        nl = buf.find(b"\n", ls)
        new = announced_prefix(buf[ls : nl if nl >= 0 else len(buf)], self.prefix.spaces)
        if new is None or any(p.text == new.text for p in self.prefixes):
            return None
        self._set_prefixes((*self.prefixes, new))
        return new

    def begin(self, buf: bytes) -> None:
        """A new window starts (stateless for stderr)."""

    # -- line shapes ---------------------------------------------------------------
    def severity_at(self, buf: bytes, ls: int) -> bytes | None:
        """The severity word of the prefixed line at ``ls``, or None for a foreign line."""
        m = self._match(buf, ls)
        return m["severity"] if m is not None else None

    def is_first_line(self, buf: bytes, ls: int) -> bool:
        """Whether a message starts at ``ls`` (a prefixed line with a first-line severity)."""
        if ls >= len(buf) or buf[ls] == TAB:
            return False
        sev = self.severity_at(buf, ls)
        return sev is not None and sev not in _SECONDARY

    # -- record spans ----------------------------------------------------------------
    def span_at(self, buf: bytes, pos: int, lo: int, final: bool) -> tuple[int, int, bool] | None:
        """The record holding ``pos``: ``(start, end, is_record)``, or None if incomplete.

        ``is_record`` is False for a line that is not a log line (garbage, a
        wrong prefix, an orphan continuation): the span is then that line.
        """
        ls = _line_start(buf, pos, lo)
        steps = 0
        while True:
            if buf[ls] == TAB:
                if ls <= lo:
                    return self._line_span(buf, ls, final, record=False)
                ls = _line_start(buf, ls - 1, lo)
                continue
            sev = self.severity_at(buf, ls)
            if sev is None:
                return self._line_span(buf, ls, final, record=False)
            if sev in _SECONDARY:
                if ls <= lo or steps >= _MAX_BACK:  # an orphan DETAIL/STATEMENT line
                    return self._line_span(buf, ls, final, record=False)
                steps += 1
                ls = _line_start(buf, ls - 1, lo)
                continue
            break
        end = self.record_end(buf, ls, final)
        if end is None:
            return None
        return ls, end, True

    def _line_span(
        self, buf: bytes, ls: int, final: bool, *, record: bool
    ) -> tuple[int, int, bool] | None:
        nl = buf.find(b"\n", ls)
        if nl < 0:
            return (ls, len(buf), record) if final else None
        # A foreign line keeps its TAB continuation lines (a pasted multi-line text).
        e = nl + 1
        while e < len(buf) and buf[e] == TAB:
            nl = buf.find(b"\n", e)
            if nl < 0:
                return (ls, len(buf), record) if final else None
            e = nl + 1
        return ls, e, record

    def record_end(self, buf: bytes, rs: int, final: bool) -> int | None:
        """End of the record starting at ``rs``: the next first line, or None if not in ``buf``."""
        nl = buf.find(b"\n", rs)
        if nl < 0:
            return None
        e = nl + 1
        n = len(buf)
        while True:
            if e >= n:
                return e if final else None
            if buf[e] == TAB:
                nl = buf.find(b"\n", e)
                if nl < 0:
                    return None
                e = nl + 1
                continue
            nl = buf.find(b"\n", e)
            if nl < 0 and not final:
                # The next line is cut by the window's end: it may be this record's
                # CONTEXT or STATEMENT line, whose prefix is not complete yet.
                return None
            sev = self.severity_at(buf, e)
            if sev is not None and sev in _SECONDARY:
                if nl < 0:
                    return None
                e = nl + 1
                continue
            return e

    def cut(self, buf: bytes, lo: int, final: bool) -> int:
        """End of the last complete record in ``buf[lo:]`` (``lo`` if there is none).

        A record is complete once the next message's first line is seen; at the
        end of the input (``final``) everything up to the last newline is.  A
        last line without its newline (a file still being written) is never
        part of a complete record, nor is the message it belongs to.
        """
        n = len(buf)
        if n <= lo:
            return lo
        if final and buf[n - 1] == 10:
            return n
        last_nl = buf.rfind(b"\n", lo, n)
        if last_nl < 0:
            return lo
        if final:
            # An unterminated last line: if it starts a message, what is before it
            # is complete; if it is cut inside its prefix it may be the STATEMENT
            # line of the message before, which is then not complete either.
            ls = last_nl + 1
            sev = self.severity_at(buf, ls) if buf[ls] != TAB else None
            if sev is not None and sev not in _SECONDARY:
                return ls
            ls = _line_start(buf, last_nl, lo)
        else:
            ls = _line_start(buf, last_nl, lo)  # the last complete line
        while True:
            if buf[ls] != TAB:
                sev = self.severity_at(buf, ls)
                if sev is None or sev not in _SECONDARY:
                    return ls  # a first line or a foreign line ends what is before it
            if ls <= lo:
                return lo
            ls = _line_start(buf, ls - 1, lo)

    def parse(
        self, buf: bytes, rs: int, re_: int, loc: SourceLocation
    ) -> tuple[LogRecord | None, list[str | ReadWarning]]:
        """The record in ``buf[rs:re_]`` and warnings about it (messages, located at ``loc``)."""
        warnings: list[str | ReadWarning] = []
        text, bad_bytes = decode(buf[rs:re_])
        if bad_bytes:
            warnings.append(NOT_UTF8)
        if (nul := nul_warning(text)) is not None:
            return None, [*warnings, nul]
        if text.endswith("\n"):
            text = text[:-1]
        first, used = self._text_match(text)
        if first is None:
            warnings.append("line does not start with the log_line_prefix")
            return None, warnings
        texts: dict[str, str] = {}
        if "\n" not in text:  # the common case: one line
            message = text[first.end() :]
        else:
            entries: list[tuple[str, list[str]]] = []
            for line in text.split("\n"):
                if line.startswith("\t") and entries:
                    entries[-1][1].append(line[1:])
                    continue
                m, _ = self._text_match(line)
                if m is None:
                    warnings.append("line does not start with the log_line_prefix")
                    return None, warnings
                entries.append((m["severity"], [line[m.end() :]]))
            message = "\n".join(entries[0][1])
            for sev, parts in entries[1:]:
                part = "\n".join(parts)
                texts[sev] = texts[sev] + "\n" + part if sev in texts else part
        gd = first.groupdict()
        # The ambiguity check reads with the main prefix (a line of another prefix
        # in use is read as that one's).
        alt = used is self.prefix and self.prefix.alt_regex is not None
        if alt:
            gd.update(self._chosen_fields(buf, rs, re_, gd))
        time = None
        if gd.get("time"):
            time, issue = self.clock.parse(gd["time"])
            if issue is not None:
                warnings.append(ReadWarning(loc, issue.message, gd["time"], issue.cause))
        elif gd.get("epoch"):
            time = parse_epoch(gd["epoch"])
        hostport = gd.get("client_hostport")
        if hostport:
            client, port = split_host_port(hostport.strip())
        else:
            client, port = _strip(gd.get("client_host")), None
        record = build_record(
            source=loc,
            severity=first["severity"],
            message=message,
            time=time,
            detail=texts.get("DETAIL"),
            hint=texts.get("HINT"),
            context=texts.get("CONTEXT"),
            statement=texts.get("STATEMENT"),
            session_id=_strip(gd.get("session_id")),
            line_num=_int(gd.get("line_num")),
            vxid=_strip(gd.get("vxid")),
            xid=_int(gd.get("xid")),
            pid=_int(gd.get("pid")),
            user=_strip(gd.get("user")),
            database=_strip(gd.get("database")),
            application=_strip(gd.get("application")),
            client=client,
            client_port=port,
            sqlstate=gd.get("vsqlstate") or _strip(gd.get("sqlstate")),
            backend_type=_strip(gd.get("backend_type")),
            command_tag=_strip(gd.get("command_tag")),
            time_resolution_us=self._resolutions.get(used.text, self.time_resolution_us),
            ambiguous=self._ambiguity(buf, rs, re_) if alt else None,
        )
        self.used[used.text] = self.used.get(used.text, 0) + 1
        return record, warnings

    def _chosen_fields(self, buf: bytes, rs: int, re_: int, gd: dict[str, str]) -> dict[str, str]:
        """The client-chosen fields as the longest split reads them, where it ends at the
        same place as the first (same message, other fields): a role ``alice@example.com``
        in database ``app`` prints ``alice@example.com@app`` under ``%u@%d``, which the
        first split reads as role ``alice`` in database ``example.com@app``.  Role names
        with an at-sign are common (cloud IAM and directory logins); database names
        holding the prefix's text next to them are not.  Empty when nothing differs.
        """
        lits = self.prefix.literals
        if not any(lit in v for g in _CHOSEN_GROUPS if (v := gd.get(g)) for lit in lits):
            return {}
        eol = buf.find(b"\n", rs, re_)
        eol = re_ if eol < 0 else eol
        lazy = self.prefix.regex.match(buf, rs, eol)
        alt = self.prefix.alt_regex.match(buf, rs, eol) if self.prefix.alt_regex else None
        if lazy is None or alt is None or alt.end() != lazy.end():
            return {}
        out: dict[str, str] = {}
        for g in _CHOSEN_GROUPS:
            if g in self.prefix.fields and (b := alt[g]) is not None and b != lazy[g]:
                out[g] = decode(b)[0]
        return out

    def _ambiguity(self, buf: bytes, rs: int, re_: int) -> tuple[str, bool] | None:
        """How the record reads each way, or None when it reads one way.

        Each prefixed line is split at the first place where the prefix can end with a
        severity.  A value a client chose (``application_name``, a role or database
        name: at most 63 bytes) that holds the rest of the prefix and ``LOG:  `` makes
        that split end inside it, and a later one is then the true one; a statement
        whose text holds such text right after the prefix makes a later split possible
        too, which is then false.  The chosen values are the same on every line of a
        record (one message, written at once), and a value holding the prefix's text
        makes every line split two ways: one line of the record that splits one way
        proves the values clean and the first split right for all of them.  A record
        none of whose lines does is reported as such, never taken for one reading
        (nothing in it, nor in the session's other lines, whose application_name a
        ``SET`` may have changed unlogged, tells the two apart).
        """
        said: str | None = None
        ddl = False
        ls = rs
        while ls < re_:
            nl = buf.find(b"\n", ls, re_)
            end = re_ if nl < 0 else nl
            if buf[ls] != TAB and (first := self.prefix.regex.match(buf, ls, end)) is not None:
                other = self.prefix.other_reading(buf, first, end)
                if other is None:
                    return None  # this line reads one way: so do the others
                if said is None:
                    said = _reading(buf, first, other, end)
                    if other["severity"] == b"LOG":
                        text = decode(buf[other.end() : end])[0]
                        lead = _STATEMENT_LEAD.match(text)
                        if lead is not None:
                            ddl = bool(classify_texts((text[lead.end() :], None)).is_ddl)
            ls = end + 1
        return (said, ddl) if said is not None else None

    def time_at(self, buf: bytes, rs: int) -> tuple[str | None, bool]:
        """The raw timestamp text of the line at ``rs`` (and whether it is an epoch)."""
        m = self._match(buf, rs)
        if m is None:
            return None, False
        gd = m.groupdict()
        if gd.get("time"):
            return gd["time"].decode("ascii", "replace"), False
        if gd.get("epoch"):
            return gd["epoch"].decode("ascii", "replace"), True
        return None, False


#: Where a LOG message's statement text starts (``statement: ``, ``execute <name>: ``).
_STATEMENT_LEAD = re.compile(r"(?:duration: \S+ ms {1,2})?(?:statement: |execute [^:]+: )")
#: The groups of the client-chosen fields.
_CHOSEN_GROUPS = ("application", "user", "database")
#: The client-chosen fields of a reading, as reports name them.
_CHOSEN_NAMES = (("application", "application_name"), ("user", "user"), ("database", "database"))


def _reading(buf: bytes, first: re.Match[bytes], other: re.Match[bytes], end: int) -> str:
    """Both readings of one line, for a report (values shown with repr, cut at 200)."""

    def one(m: re.Match[bytes]) -> str:
        gd = m.groupdict()
        fields = ", ".join(
            f"{label} {decode(gd[g])[0]!r}" for g, label in _CHOSEN_NAMES if gd.get(g) is not None
        )
        text = decode(buf[m.end() : end])[0]
        text = text if len(text) <= 200 else text[:200] + "..."
        return f"{fields}, {m['severity'].decode()} {text!r}"

    return f"it reads as {one(first)}, or as {one(other)}"


def _free_text(m: re.Match[bytes] | re.Match[str] | None) -> int:
    """How much of a line a prefix's free-text fields took (less: the better reading)."""
    if m is None:
        return 1 << 30
    gd = m.groupdict()
    return sum(len(gd[g] or "") for g in _FREE if g in gd)


def time_resolution_us(prefix: CompiledPrefix) -> int:
    """How finely the prefix prints a line's time: ``%t`` whole seconds, ``%m``/``%n`` ms.

    The record's time comes from the first ``%m``/``%t`` in the prefix, else ``%n``.

    >>> from auditor.logs.prefix import compile_prefix
    >>> [time_resolution_us(compile_prefix(p)) for p in ("%t [%p] ", "%m [%p] ", "%n ", "%t %m ")]
    [1000000, 1000, 1000, 1000000]
    """
    for escape in prefix._escapes:
        if escape == "t":
            return 1_000_000
        if escape == "m":
            return 1000
    return 1000


def _int(text: str | None) -> int | None:
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        return None


def _strip(text: str | None) -> str | None:
    """Padded fields (``%-10u``) come with spaces; empty values are None."""
    if text is None:
        return None
    return text.strip() or None
