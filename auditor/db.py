"""Connections and packaged SQL.

Every connection the tool opens goes through :func:`connect`, so that an
unreachable server is one :class:`~auditor.errors.ConnectionFailed` naming the
server (never the password), and every SQL text comes from a ``.sql`` file of
the package through :func:`sql_text`.
"""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

import psycopg
from psycopg import conninfo
from psycopg.abc import Buffer
from psycopg.adapt import Loader

from auditor.errors import AuditorError, ConnectionFailed


@cache
def sql_text(name: str) -> str:
    """The text of a packaged SQL file, e.g. ``sql_text("server_settings.sql")``."""
    try:
        return (resources.files("auditor.sql") / name).read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError):
        raise AuditorError(f"packaged SQL file {name!r} is missing; reinstall auditor") from None


def describe_dsn(dsn: str) -> str:
    """Where a DSN points, for messages: ``user@host:port/dbname``, no secrets.

    >>> describe_dsn("host=db1 port=5433 user=dba password=x dbname=prod")
    'dba@db1:5433/prod'
    >>> describe_dsn("postgresql://u:pw@h/d")
    'u@h:5432/d'
    """
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "<unparsable DSN>"
    host = str(params.get("host") or params.get("hostaddr") or "local socket")
    port = str(params.get("port") or "5432")
    user = str(params.get("user") or "")
    dbname = str(params.get("dbname") or user or "")
    return f"{user + '@' if user else ''}{host}:{port}/{dbname}"


def with_dbname(dsn: str, dbname: str) -> str:
    """The same DSN pointing at another database.

    >>> conninfo.conninfo_to_dict(with_dbname("host=h dbname=a user=u", "b"))["dbname"]
    'b'
    """
    return conninfo.make_conninfo(dsn, dbname=dbname)


def connect(
    dsn: str,
    *,
    dbname: str | None = None,
    application_name: str = "auditor",
    autocommit: bool = True,
    connect_timeout: int = 10,
) -> psycopg.Connection[Any]:
    """Open a connection or raise :class:`ConnectionFailed` naming the server."""
    if dbname is not None:
        dsn = with_dbname(dsn, dbname)
    try:
        conn = psycopg.connect(
            dsn,
            autocommit=autocommit,
            application_name=application_name,
            connect_timeout=connect_timeout,
        )
        _adapt_encoding(conn)
        return conn
    except psycopg.Error as exc:
        # libpq's last line is the server's reason; split on newlines only, since
        # splitlines() would also cut at a carriage return inside a quoted name.
        text = str(exc).strip()
        reason = text.split("\n")[-1].strip() if text else type(exc).__name__
        raise ConnectionFailed(f"cannot connect to {describe_dsn(dsn)}: {reason}") from None


#: Text-like types whose values reach Python through the text loader.
_TEXT_TYPES: tuple[str | int, ...] = (
    "text",
    "varchar",
    "bpchar",
    "name",
    705,
    0,
)  # 705 unknown, 0 any other


class VisibleTextLoader(Loader):
    """Text from a ``SQL_ASCII`` database: UTF-8 where it is, invalid bytes shown as ``\\xNN``.

    A ``SQL_ASCII`` database stores whatever bytes clients sent and converts
    nothing, so psycopg would hand out ``bytes``.  Names, settings and messages
    are read as text instead, and a byte that is not UTF-8 stays visible.
    """

    def load(self, data: Buffer) -> str:
        return bytes(data).decode("utf-8", "backslashreplace")


class RawTextLoader(Loader):
    """Text as the bytes the server holds (for digests, which count bytes in SQL_ASCII)."""

    def load(self, data: Buffer) -> bytes:
        return bytes(data)


def _json_from_bytes(data: bytes | bytearray | memoryview | str) -> Any:
    text = data if isinstance(data, str) else bytes(data).decode("utf-8", "replace")
    return json.loads(text)


def is_sql_ascii(conn: psycopg.Connection[Any]) -> bool:
    """Whether the connected database has no encoding (``SQL_ASCII``: bytes as stored)."""
    return conn.info.parameter_status("server_encoding") == "SQL_ASCII"


def _adapt_encoding(conn: psycopg.Connection[Any]) -> None:
    """Read every database as text, whatever its encoding.

    A database in a real encoding is read in UTF-8 (the server converts, and the
    digest, defined on UTF-8, is recomputed from the same characters).  A
    ``SQL_ASCII`` one converts nothing: the connection stays in ``SQL_ASCII`` (so
    no conversion can fail on bytes that are not UTF-8) and text is decoded here
    (:class:`VisibleTextLoader`).
    """
    from psycopg.types.json import set_json_loads

    if is_sql_ascii(conn):
        if conn.info.parameter_status("client_encoding") != "SQL_ASCII":
            _set(conn, "SET client_encoding TO 'SQL_ASCII'")
        for name in _TEXT_TYPES:
            conn.adapters.register_loader(name, VisibleTextLoader)
        set_json_loads(_json_from_bytes, conn)
    elif conn.info.parameter_status("client_encoding") != "UTF8":
        _set(conn, "SET client_encoding TO 'UTF8'")


def _set(conn: psycopg.Connection[Any], statement: str) -> None:
    """A session SET that leaves no transaction open behind it."""
    conn.execute(statement)
    if not conn.autocommit:
        conn.commit()


def server_settings(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """The log-related settings of the connected server (``server_settings.sql``)."""
    rows = conn.execute(sql_text("server_settings.sql")).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}
