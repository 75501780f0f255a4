"""Statement text as bytes: how both channels decode it, so that equal bytes compare equal.

PostgreSQL writes each backend's messages into the log in the encoding of its
database, and never converts them: a LATIN1 database logs ``café`` as the byte
``0xE9``, which is not UTF-8, and a SQL_ASCII database logs whatever bytes the
client sent.  The audit row holds the same text, which psycopg decodes in the
database's encoding (and, for SQL_ASCII, would leave as bytes).  Both sides are
therefore decoded losslessly and the same way:

* the log readers decode UTF-8 and keep every byte that is not UTF-8 as a lone
  surrogate (Python's ``surrogateescape``: byte ``0xE9`` is ``U+DCE9``), so no
  text is dropped or replaced (:func:`decode_log_bytes`);
* reconcile, once it knows each database's encoding, decodes the original bytes
  of that database's records again in that encoding (:func:`in_database_encoding`):
  the log then says ``café`` exactly as the audit row does;
* a SQL_ASCII database has no encoding to decode in: connections to one decode
  text with the same ``surrogateescape`` rule (:func:`register_sql_ascii`), so its
  rows and its log lines hold the very same characters;
* the parser needs valid text: :func:`parseable` replaces each lone surrogate by
  U+FFFD one for one (character offsets stay), for parsing only.

A NUL byte is different: no PostgreSQL server writes one (the protocol ends a
query string at its first NUL, and the server refuses the rest: "invalid
message format"), so a log record holding one was damaged or edited, and the
readers report it as unreadable (:func:`nul_warning`).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

#: The readers' warning for bytes that are not UTF-8 (kept; not a gap in the log).
NOT_UTF8 = "bytes that are not UTF-8, kept as they are (a database encoding other than UTF8)"

_SURROGATES = re.compile("[\ud800-\udfff]")


def decode_log_bytes(raw: bytes) -> tuple[str, bool]:
    """Text of raw log bytes, every non-UTF-8 byte kept; and whether there were any.

    >>> decode_log_bytes(b"caf\\xc3\\xa9"), decode_log_bytes(b"caf\\xe9")
    (('café', False), ('caf\\udce9', True))
    """
    try:
        return raw.decode("utf-8"), False
    except UnicodeDecodeError:
        return raw.decode("utf-8", "surrogateescape"), True


def original_bytes(text: str) -> bytes:
    """The bytes :func:`decode_log_bytes` read ``text`` from.

    >>> original_bytes("caf\\udce9")
    b'caf\\xe9'
    """
    return text.encode("utf-8", "surrogateescape")


def parseable(text: str) -> str:
    """``text`` for a parser that wants valid UTF-8: lone surrogates become U+FFFD, one
    for one, so character offsets into it are offsets into ``text``.

    >>> parseable("caf\\udce9 x") == "caf\\ufffd x", parseable("abc")
    (True, 'abc')
    """
    if text.isascii():
        return text
    return _SURROGATES.sub("\ufffd", text)


def has_foreign_bytes(text: str) -> bool:
    """Whether ``text`` holds bytes that were not UTF-8 (lone surrogates)."""
    return not text.isascii() and _SURROGATES.search(text) is not None


@cache
def python_codec(pg_encoding: str) -> str | None:
    """Python's codec for a server encoding; None for UTF8, SQL_ASCII and unknown ones.

    >>> python_codec("LATIN1"), python_codec("WIN1251"), python_codec("UTF8")
    ('iso8859-1', 'cp1251', None)
    """
    if pg_encoding.upper() in ("UTF8", "SQL_ASCII", ""):
        return None
    from psycopg._encodings import pg2pyenc  # psycopg's own table of server encodings

    try:
        return str(pg2pyenc(pg_encoding.encode()))
    except Exception:  # MULE_INTERNAL and the like: no Python codec
        return None


def in_database_encoding(text: str, pg_encoding: str) -> str:
    """Log text of a database in ``pg_encoding``, decoded from its original bytes in it.

    >>> in_database_encoding("caf\\udce9", "LATIN1"), in_database_encoding("café", "UTF8")
    ('café', 'café')
    >>> in_database_encoding("é", "LATIN1")  # read as UTF-8 from C3 A9: two LATIN1 characters
    'Ã©'
    """
    codec = python_codec(pg_encoding)
    if codec is None or text.isascii():
        return text
    return original_bytes(text).decode(codec, "surrogateescape")


def nul_warning(text: str) -> str | None:
    """The readers' warning for a record holding a NUL (it is dropped as unreadable)."""
    if "\x00" not in text:
        return None
    return (
        "a NUL byte in the record: no PostgreSQL server writes one, so the file was "
        "damaged or edited here"
    )


def register_sql_ascii(conn: Any) -> None:
    """Make a connection to a SQL_ASCII database decode text like the log readers do.

    psycopg leaves SQL_ASCII text as bytes; reconcile must see the same characters
    in the audit row as in the log line (and install and status must see names).
    Nothing changes for a database in any other encoding.
    """
    if str(conn.info.parameter_status("server_encoding") or "") != "SQL_ASCII":
        return
    from psycopg.adapt import Loader

    class SurrogateTextLoader(Loader):
        def load(self, data: Any) -> str:
            return bytes(data).decode("utf-8", "surrogateescape")

    for name in ("text", "varchar", "bpchar", "name", '"char"'):
        conn.adapters.register_loader(name, SurrogateTextLoader)


def is_sql_ascii(conn: Any) -> bool:
    return str(conn.info.parameter_status("server_encoding") or "") == "SQL_ASCII"


__all__ = [
    "NOT_UTF8",
    "decode_log_bytes",
    "has_foreign_bytes",
    "in_database_encoding",
    "is_sql_ascii",
    "nul_warning",
    "original_bytes",
    "parseable",
    "python_codec",
    "register_sql_ascii",
]
