"""Connections and packaged SQL.

Every connection the tool opens goes through :func:`connect`, so that an
unreachable server is one :class:`~auditor.errors.ConnectionFailed` naming the
server (never the password), and every SQL text comes from a ``.sql`` file of
the package through :func:`sql_text`.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from typing import Any

import psycopg
from psycopg import conninfo

from auditor.encoding import register_sql_ascii
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
        register_sql_ascii(conn)  # a SQL_ASCII database's text as str, as the log reads it
        return conn
    except psycopg.Error as exc:
        # libpq's last line is the server's reason; split on newlines only, since
        # splitlines() would also cut at a carriage return inside a quoted name.
        text = str(exc).strip()
        reason = text.split("\n")[-1].strip() if text else type(exc).__name__
        raise ConnectionFailed(f"cannot connect to {describe_dsn(dsn)}: {reason}") from None


def server_settings(conn: psycopg.Connection[Any]) -> dict[str, str]:
    """The log-related settings of the connected server (``server_settings.sql``)."""
    rows = conn.execute(sql_text("server_settings.sql")).fetchall()
    return {str(r[0]): str(r[1]) for r in rows}
