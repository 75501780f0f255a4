"""Masking of secrets before anything is printed, written or mailed.

Audit outputs travel far (mail, HTML reports, tickets), so DSN passwords and
the password literals of ``CREATE/ALTER ROLE ... PASSWORD '...'`` and of
``OPTIONS (password '...')`` are replaced by ``*****`` everywhere.
"""

from __future__ import annotations

import re

MASK = "*****"

# key=value DSN: password=secret or password='se cret'
_KV_PASSWORD = re.compile(r"(\bpassword\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", re.IGNORECASE)
# URI DSN: postgresql://user:secret@host
_URI_PASSWORD = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/@\s]*:)([^@\s]*)(@)", re.IGNORECASE)
# SQL: PASSWORD 'literal', ENCRYPTED PASSWORD E'literal', password $$x$$ ...
_SQL_PASSWORD = re.compile(
    r"(\bPASSWORD\s+)([EeUu]&?)?('(?:[^']|'')*'|\$([A-Za-z_]*)\$.*?\$\4\$)",
    re.IGNORECASE | re.DOTALL,
)
# FDW options: OPTIONS (user 'x', password 'y')
_OPTION_PASSWORD = re.compile(r"(\bpassword\s+)('(?:[^']|'')*')", re.IGNORECASE)


def mask_dsn(dsn: str) -> str:
    """Hide the password of a libpq DSN in either syntax.

    >>> mask_dsn("host=db1 user=dba password=s3cret dbname=prod")
    'host=db1 user=dba password=***** dbname=prod'
    >>> mask_dsn("postgresql://dba:s3cret@db1:5432/prod")
    'postgresql://dba:*****@db1:5432/prod'
    >>> mask_dsn("host=/tmp port=5432")
    'host=/tmp port=5432'
    """
    dsn = _KV_PASSWORD.sub(lambda m: m.group(1) + MASK, dsn)
    return _URI_PASSWORD.sub(lambda m: m.group(1) + MASK + m.group(3), dsn)


def mask_sql(text: str) -> str:
    """Hide password literals in SQL text (role DDL, user mappings).

    >>> mask_sql("ALTER ROLE app PASSWORD 'hunter2' VALID UNTIL 'infinity'")
    "ALTER ROLE app PASSWORD '*****' VALID UNTIL 'infinity'"
    >>> mask_sql("create user x with encrypted password E'a''b'")
    "create user x with encrypted password '*****'"
    >>> mask_sql("CREATE USER MAPPING FOR u SERVER s OPTIONS (user 'u', password 'p')")
    "CREATE USER MAPPING FOR u SERVER s OPTIONS (user 'u', password '*****')"
    >>> mask_sql("SELECT 1")
    'SELECT 1'
    """
    text = _SQL_PASSWORD.sub(lambda m: m.group(1) + "'" + MASK + "'", text)
    return _OPTION_PASSWORD.sub(lambda m: m.group(1) + "'" + MASK + "'", text)


def mask(text: str) -> str:
    """Apply every masking rule; the safe default for any free text.

    >>> mask("connect postgresql://u:pw@h/db then ALTER USER u PASSWORD 'x'")
    "connect postgresql://u:*****@h/db then ALTER USER u PASSWORD '*****'"
    """
    return mask_sql(mask_dsn(text))
