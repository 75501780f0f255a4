"""Test harness: one real PostgreSQL cluster per session, a fresh database per test.

Nothing here mocks PostgreSQL: the ``cluster`` fixture is an
:class:`auditor.cluster.TempCluster` (``initdb`` into a temp dir, own port and
socket dir, logging to stderr + csvlog + jsonlog), and ``logs`` reads back
what the server really wrote.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from auditor.cluster import TempCluster

_db_counter = itertools.count(1)


@pytest.fixture(scope="session")
def cluster() -> Iterator[TempCluster]:
    """The session's cluster; stopped and removed even when tests fail."""
    with TempCluster() as c:
        yield c


@dataclass
class TestDB:
    """A fresh database in the session cluster, with helpers to act in it."""

    __test__ = False  # not a test class for pytest

    cluster: TempCluster
    name: str
    roles: list[str] = field(default_factory=list)

    def dsn(self, user: str | None = None, **params: str) -> str:
        return self.cluster.dsn(self.name, user, **params)

    def connect(
        self,
        user: str | None = None,
        *,
        application_name: str | None = None,
        autocommit: bool = True,
    ) -> psycopg.Connection[Any]:
        return self.cluster.connect(
            self.name, user, application_name=application_name, autocommit=autocommit
        )

    def run(
        self, query: str, *, role: str | None = None, app: str | None = None
    ) -> list[tuple[Any, ...]]:
        """Run a query string over the simple protocol, as ``role``, with ``application_name``."""
        return self.cluster.execute(query, dbname=self.name, user=role, application_name=app)

    def create_role(self, name: str, *, superuser: bool = False) -> str:
        """A login role that is dropped after the test."""
        with self.cluster.connect() as conn:
            conn.execute(
                sql.SQL("CREATE ROLE {} LOGIN {}").format(
                    sql.Identifier(name), sql.SQL("SUPERUSER" if superuser else "NOSUPERUSER")
                )
            )
            conn.execute(
                sql.SQL("GRANT ALL ON DATABASE {} TO {}").format(
                    sql.Identifier(self.name), sql.Identifier(name)
                )
            )
        with self.connect() as conn:
            conn.execute(sql.SQL("GRANT ALL ON SCHEMA public TO {}").format(sql.Identifier(name)))
        self.roles.append(name)
        return name


@pytest.fixture
def db(cluster: TempCluster, request: pytest.FixtureRequest) -> Iterator[TestDB]:
    """A fresh database for one test, dropped (with its roles) afterwards."""
    base = re.sub(r"[^a-z0-9_]", "_", request.node.name.lower())[:40]
    name = f"t{next(_db_counter)}_{base}"
    with cluster.connect() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    handle = TestDB(cluster, name)
    try:
        yield handle
    finally:
        with cluster.connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            for role in handle.roles:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


@dataclass(frozen=True)
class LogMark:
    """Sizes of every log file at one moment; what comes after is 'new'."""

    sizes: dict[Path, int]


@dataclass
class LogSlice:
    """What the server logged after a mark, per format, parsed minimally.

    ``stderr`` holds whole entries (continuation lines joined with newlines),
    ``csvlog`` rows as dicts keyed by the csvlog column names, ``jsonlog``
    decoded objects.  The product's own readers are tested against these.
    """

    stderr: list[str]
    csvlog: list[dict[str, str]]
    jsonlog: list[dict[str, Any]]


CSV_COLUMNS = (
    "log_time user_name database_name process_id connection_from session_id "
    "session_line_num command_tag session_start_time virtual_transaction_id "
    "transaction_id error_severity sql_state_code message detail hint internal_query "
    "internal_query_pos context query query_pos location application_name "
    "backend_type leader_pid query_id"
).split()


class ClusterLogs:
    """Read back what the session cluster wrote to its three log files."""

    def __init__(self, cluster: TempCluster) -> None:
        self.cluster = cluster

    def mark(self) -> LogMark:
        self.cluster.flush_logs()
        return LogMark({p: p.stat().st_size for p in self.cluster.log_dir.iterdir()})

    def since(self, mark: LogMark) -> LogSlice:
        self.cluster.flush_logs()
        chunks: dict[str, str] = {".log": "", ".csv": "", ".json": ""}
        for path in sorted(self.cluster.log_dir.iterdir(), key=lambda p: p.stat().st_mtime):
            start = mark.sizes.get(path, 0)
            with open(path, "rb") as fh:
                fh.seek(start)
                data = fh.read().decode("utf-8", "replace")
            if path.suffix in chunks:
                chunks[path.suffix] += data
        entries: list[str] = []
        for line in chunks[".log"].splitlines():
            if line.startswith("\t") and entries:
                entries[-1] += "\n" + line[1:]
            elif line:
                entries.append(line)
        rows = [
            dict(zip(CSV_COLUMNS, r, strict=False)) for r in csv.reader(io.StringIO(chunks[".csv"]))
        ]
        objs = [json.loads(line) for line in chunks[".json"].splitlines() if line.strip()]
        return LogSlice(entries, rows, objs)


@pytest.fixture
def logs(cluster: TempCluster) -> ClusterLogs:
    return ClusterLogs(cluster)


@pytest.fixture(scope="module")
def module_logs(cluster: TempCluster) -> ClusterLogs:
    """``logs`` for module-scoped fixtures that play a scenario once for many tests."""
    return ClusterLogs(cluster)


@pytest.fixture
def smtp_sink(tmp_path: Path) -> Iterator[Any]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message as a .eml file."""
    from auditor.smtp_sink import SmtpSink

    with SmtpSink(tmp_path / "mail") as sink:
        yield sink
