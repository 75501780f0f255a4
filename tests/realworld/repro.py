"""Reproduce one false alarm in isolation: a few statements, one cell, the findings.

    PYTHONPATH=tests .venv/bin/python -m realworld.repro --prefix debian --zone UTC \\
        --format stderr --sql 'DROP TABLE no_such' --sql 'DROP TABLE no_such'

Starts a cluster with the cell's log setup, installs the auditor in every
database, runs each ``--sql`` over the simple protocol in one session (errors
are kept, like psql without ON_ERROR_STOP) in database ``repro``, reconciles
that format alone and prints each finding: class, severity, statement and
explanation.  ``--major`` picks the server (scripts/get-postgres).
"""

from __future__ import annotations

import argparse
import tempfile
from collections.abc import Sequence
from pathlib import Path

import psycopg

from auditor import capture
from auditor.cluster import TempCluster
from auditor.config import load_config
from auditor.reconcile import reconcile
from realworld.cells import PREFIXES, SUFFIX, server_bindir
from realworld.matrix import whole_second


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m realworld.repro", description=__doc__.split("\n")[0]
    )
    ap.add_argument("--major", type=int, default=15)
    ap.add_argument("--prefix", default="readme", help=f"one of {', '.join(PREFIXES)}, or a prefix")
    ap.add_argument("--zone", default="UTC")
    ap.add_argument("--format", default="stderr", choices=sorted(SUFFIX))
    ap.add_argument("--user", default=None, help="run the statements as this role (created)")
    ap.add_argument("--sql", action="append", default=[], help="a statement (repeatable)")
    args = ap.parse_args(argv)
    prefix = PREFIXES.get(args.prefix, args.prefix)
    with TempCluster(
        bindir=server_bindir(args.major),
        log_line_prefix=prefix,
        settings={"log_timezone": args.zone, "timezone": args.zone},
    ) as cluster:
        cluster.execute("CREATE DATABASE repro")
        if args.user:
            cluster.execute(f'CREATE ROLE "{args.user}" LOGIN')
            cluster.execute(f'GRANT ALL ON SCHEMA public TO "{args.user}"', dbname="repro")
        capture.install(cluster.dsn("postgres"), all_databases=True)
        since = whole_second()
        with psycopg.connect(
            cluster.dsn("repro", args.user, application_name="repro"), autocommit=True
        ) as conn:
            cur = psycopg.ClientCursor(conn)
            for stmt in args.sql:
                try:
                    cur.execute(stmt)
                    print(f"ok     {stmt}")
                except psycopg.Error as exc:
                    print(f"ERROR  {stmt}: {str(exc).strip().splitlines()[0]}")
        cluster.flush_logs()
        until = whole_second()
        with tempfile.TemporaryDirectory() as out:
            cfg = load_config(
                {
                    "dsn": cluster.dsn("postgres"),
                    "logs": [str(cluster.log_dir / f"*{SUFFIX[args.format]}")],
                    "since": since.isoformat(),
                    "until": until.isoformat(),
                    "out": str(Path(out)),
                },
                environ={},
                search_default=False,
            )
            doc = reconcile(cfg).document
        s = doc.summary
        print(f"logged_ddl={s.logged_ddl} audit_rows={s.audit_rows} matched={s.matched}")
        for note in doc.notes:
            print(f"note: {note}")
        for f in doc.findings:
            print(
                f"{f.cls.value}/{f.severity.value}  {(f.statement or '')[:120]!r}\n    {f.explanation}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
