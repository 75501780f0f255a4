"""Text that is safe to print: nothing in the evidence may drive the DBA's terminal.

Log lines and audit rows carry text that other people chose: table names,
role and database names (a failed login's, before any authentication),
application names, statement text.  Printed raw, ``CREATE TABLE "\\x1b[2J..."``
clears the DBA's screen, an OSC sequence retitles the window or writes a
hyperlink, a carriage return overprints the start of a line, and a bidi
override (U+202E) makes ``DROP`` read as something else.  Every command
therefore shows each such character as a visible tag, ``<U+001B>``, the way
the HTML report shows ``U+202E``; the report and this module share one
definition of what is unsafe:

* every C0 control (below U+0020), DEL and every C1 control (U+0080-U+009F):
  escape sequences, carriage return, backspace, bell;
* format characters (Unicode category Cf): zero-width spaces and joiners,
  bidi embeddings, overrides and isolates, the BOM, soft hyphen, tag
  characters (U+E0000 block);
* line and paragraph separators (U+2028, U+2029), lone surrogates (undecodable
  log bytes read with ``surrogateescape``);
* characters that draw nothing although they are letters or marks: Hangul
  fillers, the combining grapheme joiner, variation selectors.

Newline and tab are kept only where a newline is meaningful (multi-line
text such as ``auditor status``); a one-line value shows them as tags too, so
no value can start a line of its own.  JSON output keeps every value exact:
unsafe characters become ``\\uXXXX`` escapes, which any JSON reader decodes.
"""

from __future__ import annotations

import re
from functools import cache

#: Code point ranges shown as tags (see the module docstring); Unicode 15's Cc, Cf,
#: Cs, Zl and Zp, and the invisible letters and marks.
UNSAFE_RANGES: tuple[tuple[int, int], ...] = (
    (0x0000, 0x001F), (0x007F, 0x009F), (0x00AD, 0x00AD), (0x034F, 0x034F),
    (0x0600, 0x0605), (0x061C, 0x061C), (0x06DD, 0x06DD), (0x070F, 0x070F),
    (0x0890, 0x0891), (0x08E2, 0x08E2), (0x115F, 0x1160), (0x17B4, 0x17B5),
    (0x180B, 0x180F), (0x200B, 0x200F), (0x2028, 0x202E), (0x2060, 0x206F),
    (0x3164, 0x3164), (0xD800, 0xDFFF), (0xFE00, 0xFE0F), (0xFEFF, 0xFEFF),
    (0xFFA0, 0xFFA0), (0xFFF9, 0xFFFB), (0x110BD, 0x110BD), (0x110CD, 0x110CD),
    (0x13430, 0x1343F), (0x1BCA0, 0x1BCA3), (0x1D173, 0x1D17A), (0xE0000, 0xE007F),
    (0xE0100, 0xE01EF),
)  # fmt: skip


def _char(cp: int) -> str:
    return f"\\U{cp:08x}"


@cache
def unsafe_pattern(keep: str = "", *, ascii_only: bool = False) -> re.Pattern[str]:
    """One regular expression matching every unsafe character except those in ``keep``.

    ``ascii_only``: the same for text that :meth:`str.isascii` (only the ranges below
    U+0080: a class of a few ranges, which ``re`` searches several times faster).

    >>> bool(unsafe_pattern().search("a\\tb")), bool(unsafe_pattern("\\t").search("a\\tb"))
    (True, False)
    >>> unsafe_pattern("\\n", ascii_only=True).findall("a\\x7f\\nb\\x1b")
    ['\\x7f', '\\x1b']
    """
    parts = []
    for lo, hi in UNSAFE_RANGES:
        if ascii_only:
            if lo > 0x7F:
                continue
            hi = min(hi, 0x7F)
        run_start = None
        for cp in range(lo, hi + 1):
            if chr(cp) in keep:
                if run_start is not None:
                    parts.append((run_start, cp - 1))
                    run_start = None
            elif run_start is None:
                run_start = cp
        if run_start is not None:
            parts.append((run_start, hi))
    body = "".join(_char(a) if a == b else f"{_char(a)}-{_char(b)}" for a, b in parts)
    return re.compile(f"[{body}]")


def _plain(text: str) -> bool:
    """Whether ``text`` certainly holds no unsafe character, tested at C speed: ASCII
    without a control character (below U+0080 the unsafe ranges are C0 and DEL, exactly
    what :meth:`str.isprintable` refuses there).

    >>> _plain("CREATE TABLE t (id int)"), _plain("a\\nb"), _plain("a\\x7f"), _plain("é")
    (True, False, False, False)
    """
    return text.isascii() and text.isprintable()


def tag(char: str) -> str:
    """The visible form of one character.

    >>> tag("\\x1b"), tag("\\U000e0041")
    ('<U+001B>', '<U+E0041>')
    """
    return f"<U+{ord(char):04X}>"


def visible(text: str, keep: str = "") -> str:
    """``text`` with every unsafe character (except those in ``keep``) shown as a tag.

    >>> visible('CREATE TABLE "\\x1b[2J\\u202eevil"')
    'CREATE TABLE "<U+001B>[2J<U+202E>evil"'
    >>> visible("two\\nlines\\tok", keep="\\n\\t")
    'two\\nlines\\tok'
    >>> visible("two\\nlines")
    'two<U+000A>lines'
    """
    if _plain(text):  # the common case: nothing to replace
        return text
    pattern = unsafe_pattern(keep, ascii_only=text.isascii())
    if pattern.search(text) is None:
        return text
    return pattern.sub(lambda m: tag(m.group()), text)


def lines(text: str) -> str:
    """Multi-line text (a status report, a summary): newlines and tabs kept.

    A carriage return is not kept: it would overprint the line it ends.

    >>> lines("ok\\r\\nfake")
    'ok<U+000D>\\nfake'
    """
    return visible(text, keep="\n\t")


_SPACES = re.compile(r"[ \t\n]+")


def one_line(text: str) -> str:
    """A value for one table cell or message line: runs of spaces, tabs and newlines
    collapsed to one space, every other unsafe character shown as a tag (a carriage
    return too: it may be part of a name, and would overprint the line).

    >>> one_line("CREATE TABLE t (\\r\\n  id int\\x0b)\\n")
    'CREATE TABLE t (<U+000D> id int<U+000B>)'
    """
    return visible(_SPACES.sub(" ", text).strip())


def _json_escape(char: str) -> str:
    cp = ord(char)
    if cp < 0x10000:
        return f"\\u{cp:04x}"
    cp -= 0x10000
    return f"\\u{0xD800 + (cp >> 10):04x}\\u{0xDC00 + (cp & 0x3FF):04x}"


def json_text(text: str) -> str:
    """Serialised JSON with every unsafe character written as a ``\\u`` escape.

    Outside strings JSON is plain ASCII, so the result parses to the same value.

    >>> json_text('["\\u202eevil\\x7f"]')
    '["\\\\u202eevil\\\\u007f"]'
    >>> import json; json.loads(json_text(json.dumps("\\U000e0041", ensure_ascii=False)))
    '\\U000e0041'
    """
    if _plain(text):  # orjson's output, unless a value holds DEL or non-ASCII text
        return text
    # Raw newline, tab and CR can only be whitespace between tokens.
    pattern = unsafe_pattern("\n\t\r", ascii_only=text.isascii())
    if pattern.search(text) is None:
        return text
    return pattern.sub(lambda m: _json_escape(m.group()), text)
