"""Generate big real server logs for ``bench/scan``: pgbench + DDL + errors.

A throwaway cluster logs stderr, csvlog and jsonlog at once with
``log_statement = 'all'``.  Two pgbench clients run the built-in TPC-B-like
script (simple protocol, then extended and prepared) while one Python client
sends a known number of DDL statements (plain, multi-line, multi-statement,
``SELECT … INTO``, extended protocol, failed DDL) and errors (syntax errors,
division by zero).  The generator counts every DDL statement it sent; the
count is written next to the logs in ``ground-truth.json`` and compared with
what ``auditor scan`` reports.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psycopg

from auditor.cluster import TempCluster

# Each entry: (query template, is_ddl, protocol).  {n} is a sequence number.
DDL_MIX: tuple[tuple[str, bool, str], ...] = (
    ("CREATE TABLE gen_t_{n} (id int, v text)", True, "simple"),
    (
        "ALTER TABLE gen_t_{n}\n  ADD COLUMN created timestamptz\n    DEFAULT now(),\n  ADD COLUMN note text",
        True,
        "simple",
    ),
    ("create index gen_i_{n} on gen_t_{n} (id)", True, "simple"),
    ("BEGIN; CREATE TABLE gen_m_{n} (id int); COMMIT", True, "simple"),
    ("SELECT * INTO gen_si_{n} FROM pgbench_branches", True, "simple"),
    ("COMMENT ON TABLE gen_t_{n} IS 'generated {n}'", True, "simple"),
    ("/* tool */ DROP TABLE gen_si_{n}", True, "simple"),
    ("CREATE TABLE gen_x_{n} (id int)", True, "extended"),
    ("DROP TABLE gen_x_{n}", True, "extended"),
    ("CREATE TABLE pgbench_accounts (id int)", True, "simple"),  # fails: 42P07
    ("DROP TABLE gen_m_{n}, gen_t_{n}", True, "simple"),
    ("CREAT TABLE gen_typo_{n} (id int)", False, "simple"),  # syntax error: no statement line
    ("SELECT 1/0", False, "simple"),  # error, not DDL
    (
        "INSERT INTO pgbench_history (tid, bid, aid, delta, mtime) VALUES (1, 1, 1, 0, now())",
        False,
        "simple",
    ),
)


def _ddl_client(
    dsn: str, stop: threading.Event, counts: dict[str, int], pause: float, client: int = 0
) -> None:
    """Send DDL_MIX rounds until told to stop; count what was sent."""
    n = client * 10_000_000  # distinct object names per client
    with psycopg.connect(dsn, autocommit=True, application_name="gen-ddl") as conn:
        simple = psycopg.ClientCursor(conn)
        while not stop.is_set():
            n += 1
            for template, is_ddl, protocol in DDL_MIX:
                query = template.format(n=n)
                try:
                    if protocol == "simple":
                        simple.execute(query)
                    else:  # binary results force the extended protocol
                        conn.cursor(binary=True).execute(query)  # type: ignore[arg-type]  # extended protocol, unnamed
                except psycopg.Error:
                    counts["errors"] += 1
                counts["statements"] += 1
                counts["ddl"] += int(is_ddl)
            time.sleep(pause)
    counts["rounds"] = n - client * 10_000_000


def generate(
    out: Path,
    size_mb: int,
    *,
    prefix: str,
    pause: float = 0.05,
    log_statement: str = "all",
    ddl_clients: int = 1,
) -> dict[str, Any]:
    """Write postgresql.{log,csv,json} of at least ``size_mb`` MB (stderr) into ``out``.

    ``log_statement = 'ddl'`` with several DDL clients and no pause gives the
    DDL-dense log a reconcile reads (nearly every record is DDL); pgbench still
    runs beside them, its statements unlogged.
    """
    out.mkdir(parents=True, exist_ok=True)
    settings = {"log_rotation_size": 0, "log_rotation_age": 0, "max_connections": 20}
    with TempCluster(
        log_statement=log_statement, log_line_prefix=prefix, settings=settings
    ) as cluster:
        bindir = cluster.bindir
        env = dict(os.environ, PGHOST="127.0.0.1", PGPORT=str(cluster.port), PGUSER="postgres")
        env_quiet = dict(env, PGOPTIONS="-c log_statement=none")
        subprocess.run(
            [str(bindir / "pgbench"), "-i", "-q", "-s", "10", "postgres"],
            env=env_quiet, check=True, capture_output=True,
        )  # fmt: skip
        files = cluster.current_logfiles()
        stderr_file = files["stderr"]
        per_client = [
            {"statements": 0, "ddl": 0, "errors": 0, "rounds": 0} for _ in range(ddl_clients)
        ]
        stop = threading.Event()
        threads = [
            threading.Thread(
                target=_ddl_client, args=(cluster.dsn(), stop, c, pause, k), daemon=True
            )
            for k, c in enumerate(per_client)
        ]
        for t in threads:
            t.start()
        modes = ["simple", "simple", "extended", "prepared"]
        i = 0
        started = time.monotonic()
        while stderr_file.stat().st_size < size_mb * 1_000_000:
            mode = modes[i % len(modes)]
            i += 1
            if log_statement != "all":  # the DDL clients alone fill the log
                time.sleep(5)
                print(
                    f"  {stderr_file.stat().st_size / 1e6:8.0f} MB stderr after "
                    f"{time.monotonic() - started:5.0f} s",
                    flush=True,
                )
                continue
            subprocess.run(
                [str(bindir / "pgbench"), "-n", "-c", "2", "-j", "2", "-T", "20", "-M", mode,
                 "postgres"],
                env=env, check=True, capture_output=True,
            )  # fmt: skip
            print(
                f"  {stderr_file.stat().st_size / 1e6:8.0f} MB stderr after "
                f"{time.monotonic() - started:5.0f} s, {sum(c['ddl'] for c in per_client)} DDL sent",
                flush=True,
            )
        stop.set()
        for t in threads:
            t.join()
        counts = {key: sum(c[key] for c in per_client) for key in per_client[0]}
        cluster.flush_logs()
        for dest, path in cluster.current_logfiles().items():
            name = {
                "stderr": "postgresql.log",
                "csvlog": "postgresql.csv",
                "jsonlog": "postgresql.json",
            }[dest]
            shutil.copyfile(path, out / name)
    truth = {
        "prefix": prefix,
        "log_statement": log_statement,
        "ddl_sent": counts["ddl"],
        **counts,
    }
    (out / "ground-truth.json").write_text(json.dumps(truth, indent=2) + "\n")
    return truth
