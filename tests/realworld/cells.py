"""The matrix's dimensions: log line prefixes, log time zones, formats, majors.

Every value here is one that real servers run with (the README's prefix,
Debian's, pgBadger's, RDS's), so a false alarm found in a cell is one a DBA
would see.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: name -> log_line_prefix
PREFIXES: dict[str, str] = {
    "readme": "%m [%p] %q%c %l %v %x %u@%d app=%a client=%h ",
    "debian": "%m [%p] %q%u@%d ",
    "pgbadger": "%t [%p]: user=%u,db=%d,app=%a,client=%h ",
    "rds": "%t:%r:%u@%d:[%p]:",
}

#: log_timezone values: west of UTC with DST, east of UTC, UTC.
ZONES: tuple[str, ...] = ("America/New_York", "Asia/Kolkata", "UTC")

FORMATS: tuple[str, ...] = ("stderr", "csvlog", "jsonlog")
#: file suffix TempCluster's collector gives each format.
SUFFIX = {"stderr": ".log", "csvlog": ".csv", "jsonlog": ".json"}

MAJORS: tuple[int, ...] = (13, 14, 15, 16, 17, 18)

DEBIAN_BIN = Path("/usr/lib/postgresql/15/bin")
CACHE = Path(os.environ.get("AUDITOR_PG_CACHE", "/var/cache/auditor/pg"))


def server_bindir(major: int) -> Path:
    """Where the server binaries of ``major`` are: Debian's 15, else scripts/get-postgres's."""
    return DEBIAN_BIN if major == 15 else CACHE / str(major) / "bin"


def client_bindir(major: int) -> Path:
    """psql, pg_dump, pg_restore, pgbench of the server's major (13 has none: Debian's 15).

    >>> client_bindir(13) == DEBIAN_BIN, client_bindir(15) == DEBIAN_BIN
    (True, True)
    """
    own = server_bindir(major)
    return own if (own / "pg_dump").is_file() else DEBIAN_BIN


def formats_for(major: int) -> tuple[str, ...]:
    """jsonlog exists from PostgreSQL 15 on.

    >>> formats_for(14), formats_for(15)
    (('stderr', 'csvlog'), ('stderr', 'csvlog', 'jsonlog'))
    """
    return FORMATS if major >= 15 else FORMATS[:2]


def available(major: int) -> bool:
    """Whether the binaries of ``major`` are on this machine (scripts/get-postgres)."""
    return (server_bindir(major) / "postgres").is_file()


@dataclass(frozen=True, order=True)
class Group:
    """What one cluster runs with: every format of one (major, prefix, zone)."""

    major: int
    prefix: str  # a key of PREFIXES
    zone: str

    @property
    def log_line_prefix(self) -> str:
        return PREFIXES[self.prefix]

    def cells(self) -> list[Cell]:
        return [Cell(self, fmt) for fmt in formats_for(self.major)]

    def __str__(self) -> str:
        return f"PG{self.major} {self.prefix} {self.zone}"


@dataclass(frozen=True, order=True)
class Cell:
    """One reconcile: a group's cluster, read in one format."""

    group: Group
    fmt: str

    @property
    def has_session_ids(self) -> bool:
        """Whether this log carries %c and %v (csvlog and jsonlog always do).

        >>> Cell(Group(15, "debian", "UTC"), "stderr").has_session_ids
        False
        >>> Cell(Group(15, "debian", "UTC"), "csvlog").has_session_ids
        True
        """
        if self.fmt != "stderr":
            return True
        p = self.group.log_line_prefix
        return "%c" in p and "%v" in p

    def __str__(self) -> str:
        return f"{self.group} {self.fmt}"
