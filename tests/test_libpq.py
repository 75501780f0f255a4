"""libpq's conventions when --dsn is absent, and the server's own logs when --log is.

A DBA who has ``PGHOST``/``PGPORT``/``PGUSER``/``PGDATABASE`` set, a service in
``pg_service.conf`` or a password in ``~/.pgpass`` connects with psql without a
connection string; auditor does the same.  Connected without ``--log``, it reads
the server's log directory: as files when the server is on this machine, else
over SQL.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

from auditor import capture
from auditor.cluster import TempCluster
from auditor.config import load_config

#: Variables of the test machine that must not leak into these runs.
_SCRUB = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGUSER", "PGDATABASE", "PGSERVICE", "PGPASSFILE",
          "PGSERVICEFILE", "PGPASSWORD", "AUDITOR_DSN", "AUDITOR_CONFIG")  # fmt: skip


def _run(cmd: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    return subprocess.run(
        [sys.executable, "-m", "auditor", *cmd],
        capture_output=True,
        text=True,
        env={**base, **env},
        cwd=cwd,
        timeout=600,
    )


def _pg_env(cluster: TempCluster) -> dict[str, str]:
    return {"PGHOST": "127.0.0.1", "PGPORT": str(cluster.port), "PGUSER": cluster.superuser}


def test_pg_variables_stand_for_the_dsn(cluster: TempCluster, tmp_path: Path) -> None:
    cfg = load_config({}, environ={**_pg_env(cluster), "PGDATABASE": "postgres"})
    assert cfg["dsn"] == f"host=127.0.0.1 port={cluster.port} user=postgres dbname=postgres"
    assert cfg.origin("dsn") == "libpq environment"
    given = load_config({"dsn": "host=elsewhere"}, environ=_pg_env(cluster))
    assert given["dsn"] == "host=elsewhere"
    out = _run(["status"], _pg_env(cluster), tmp_path)
    assert out.returncode in (0, 1), out.stderr  # connected: a report, not "no server given"
    assert f"127.0.0.1:{cluster.port}" in out.stdout


def test_a_service_file_and_a_password_file(cluster: TempCluster, tmp_path: Path) -> None:
    role, password = f"pw_{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    hba = cluster.data_dir / "pg_hba.conf"
    old = hba.read_text()
    cluster.execute(  # PostgreSQL 13 hashes with md5 by default, which scram cannot use
        f"SET password_encryption = 'scram-sha-256'; "
        f"CREATE ROLE {role} LOGIN SUPERUSER PASSWORD '{password}'"
    )
    try:
        hba.write_text(f"host all {role} 127.0.0.1/32 scram-sha-256\n" + old)
        cluster.execute("SELECT pg_reload_conf()")
        (tmp_path / "pg_service.conf").write_text(
            f"[audit]\nhost=127.0.0.1\nport={cluster.port}\nuser={role}\ndbname=postgres\n"
        )
        passfile = tmp_path / "pgpass"
        passfile.write_text(f"127.0.0.1:{cluster.port}:*:{role}:{password}\n")
        passfile.chmod(0o600)
        env = {"PGSERVICEFILE": str(tmp_path / "pg_service.conf"), "PGSERVICE": "audit"}
        refused = _run(["status"], env, tmp_path)
        assert refused.returncode == 2 and "password" in refused.stderr  # no password yet
        out = _run(["status"], {**env, "PGPASSFILE": str(passfile)}, tmp_path)
        assert out.returncode in (0, 1), out.stderr
        assert out.stdout.startswith("server service audit ")
    finally:
        hba.write_text(old)
        cluster.execute("SELECT pg_reload_conf()")
        cluster.execute(f"DROP ROLE {role}")


def test_connected_without_log_reads_the_servers_log_directory(
    db: Any, logs: Any, tmp_path: Path
) -> None:
    db.run("CREATE TABLE read_from_the_log_dir (id int)", app="no-log-given")
    logs.mark()
    out = _run(
        ["scan", "--format", "json"], {**_pg_env(db.cluster), "PGDATABASE": db.name}, tmp_path
    )
    assert out.returncode == 0, out.stderr
    assert (
        f"auditor: note: no --log given: reading the server's log directory {db.cluster.log_dir}\n"
        in out.stderr
    )
    rows = [r for r in json.loads(out.stdout) if r["application"] == "no-log-given"]
    assert [r["statement"] for r in rows] == ["CREATE TABLE read_from_the_log_dir (id int)"]
    report = tmp_path / "report"
    capture.install(db.cluster.dsn(db.name), databases=[db.name])
    rec = _run(["reconcile", "--dsn", db.cluster.dsn(db.name), "--out", str(report)], {}, tmp_path)
    assert rec.returncode in (0, 1), rec.stderr
    doc = json.loads((report / "findings.json").read_text())
    assert (
        doc["notes"][0]
        == f"no --log given: reading the server's log directory {db.cluster.log_dir}"
    )
    assert {Path(s["path"]).parent for s in doc["sources"]["logs"]} == {db.cluster.log_dir}


def test_a_server_elsewhere_is_read_over_sql(db: Any, logs: Any, tmp_path: Path) -> None:
    db.run("CREATE TABLE read_over_sql (id int)", app="over-sql")
    logs.mark()
    # A host name that is not this machine's (hostaddr reaches the test server).
    dsn = db.cluster.dsn(db.name, host="db.example.org", hostaddr="127.0.0.1")
    out = _run(["scan", "--dsn", dsn, "--format", "json"], {}, tmp_path)
    assert out.returncode == 0, out.stderr
    assert (
        "auditor: note: no --log given: reading the server's log directory over SQL (sql:; "
        "the server is not on this machine)\n"
    ) in out.stderr
    rows = [r for r in json.loads(out.stdout) if r["application"] == "over-sql"]
    assert rows and all(r["file"].startswith("sql:") for r in rows)


def test_an_sql_pattern_that_matches_nothing(cluster: TempCluster, tmp_path: Path) -> None:
    out = _run(["scan", "--dsn", cluster.dsn(), "--log", "sql:nomatch*"], {}, tmp_path)
    assert out.returncode == 2
    names = sorted(p.name for p in cluster.log_dir.iterdir())
    assert out.stderr == (
        "auditor: error: sql:nomatch*: no file of the server's log directory matches "
        f"'nomatch*' ({len(names)} file(s) there, e.g. {names[0]!r})\n"
    )


def test_without_a_logging_collector_the_log_must_be_named(tmp_path: Path) -> None:
    with TempCluster(settings={"logging_collector": "off"}) as cluster:
        out = _run(["scan", "--dsn", cluster.dsn()], {}, tmp_path)
    assert out.returncode == 2
    assert out.stderr == (
        f"auditor: error: no --log given and postgres@127.0.0.1:{cluster.port}/postgres has "
        "logging_collector = off: its log goes to the server's standard error (a journal, a "
        "file of the service manager); give it with --log\n"
    )


def test_no_server_and_no_log(tmp_path: Path) -> None:
    out = _run(["reconcile"], {}, tmp_path)
    assert out.returncode == 2
    assert out.stderr == (
        "auditor: error: no log given: use --log (file, directory, glob, '-' or 'sql:')\n"
    )
