"""Time and memory of ``auditor reconcile`` for 10 k, 100 k and 1 M logged DDL statements.

End to end, on a real throwaway cluster with the auditor installed:

1. **Real workload** (the 10 k size): :mod:`reconcile_workload` sends 10,000
   logged DDL statements from ~200 sessions (4 at a time) through the server,
   with every finding class planted at ~0.5 % each; then the audit rows of the
   planted "deleted" and "altered" statements are deleted and altered (trigger
   disabled, as an intruder would).  The server writes stderr, csvlog and jsonlog.
2. **Format check**: the real csvlog is read back into rows and written again in
   all three formats by :mod:`reconcile_logfmt`; the result must equal the
   server's three files byte for byte (per session).
3. **Synthetic sizes**: 10 k (once, to compare with the real run), 100 k and
   1 M are the real run's log records and audit rows cloned 1, 10 and 100
   times with fresh identifiers (pids, session ids, audit row ids, object names,
   times shifted so clones follow each other, transaction ids replaced by real
   committed/aborted ones burnt on the server so ``pg_xact_status`` answers as
   for real markers), markers' digests recomputed with :mod:`auditor.digest`
   from the cloned rows (before the planted alteration), rows loaded with COPY
   into a database of their own, log files written in all three formats (one
   file per 100 k statements, as after rotations).
4. **Measure**: ``auditor reconcile`` (``analyse`` + ``write_reports``, in a
   child process) on each input, with the time of each phase, the peak RSS of
   the process and of its log-scan workers, the counts, the accounting check and
   the planted-vs-found check (PASS/FAIL).

Usage (from the repository root):

    bench/reconcile [--sizes 10k,100k,1m] [--formats jsonlog] [--real 10000]

Generated logs go to ``bench/data/reconcile/`` (gitignored), reports to
``bench/out/reconcile/``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from reconcile_logfmt import IX, Row, parse_csv, roundtrip, write_all  # noqa: E402
from reconcile_workload import make_plan, run_plan  # noqa: E402

from auditor import capture  # noqa: E402
from auditor.cluster import TempCluster  # noqa: E402
from auditor.digest import canonical_text, digest_text  # noqa: E402

DATA = HERE / "data" / "reconcile"
OUT = HERE / "out" / "reconcile"
REAL_DB = "rbench"
PLAIN_DB = "rbplain"
SCHEMA = "auditor"
CLONES_PER_FILE = 10
SIZES = {"10k": 1, "100k": 10, "1m": 100}
_MARKER = re.compile(
    r"^auditor-marker v1 schema=(\S+) id=(\d+) xid=(\d+) event=([a-z_]+) digest=([0-9a-f]{64}) tag=(.*)$",
    re.S,
)
ROW_COLUMNS = (
    "id", "event", "command_tag", "objects_json", "query", "caller_context", "statement_time",
    "clock_time", "session_user_name", "current_user_name", "login_user_name", "database_name",
    "client_addr", "client_port", "server_addr", "server_port", "application_name",
    "backend_pid", "session_id", "vxid", "xid",
)  # fmt: skip


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def load() -> str:
    return open("/proc/loadavg").read().split(" ", 3)[:3].__str__()


# -- the real run ---------------------------------------------------------------------


def read_rows(dsn: str) -> dict[int, dict[str, Any]]:
    """Every audit row, as reconcile reads it (objects as jsonb text, addresses as host())."""
    query = capture.render("capture_read_events.sql", SCHEMA)
    with psycopg.connect(dsn, autocommit=True) as conn:
        cur = conn.cursor(row_factory=psycopg.rows.dict_row)
        rows = cur.execute(
            query, {"after_id": 0, "since": None, "until": None, "batch": 10_000_000}
        ).fetchall()
    return {int(r["id"]): dict(r) for r in rows}


@dataclass
class Real:
    """What the real run left: its log records, its rows before and after tampering."""

    rows: list[Row]  # csvlog rows of the workload window, in file order
    before: dict[int, dict[str, Any]]
    after: dict[int, dict[str, Any]]
    statuses: dict[int, str]  # xid -> committed/aborted
    t0: datetime
    t1: datetime
    logged_ddl: int
    expected: dict[str, int]
    log_dir: Path
    roundtrip: list[Any] = field(default_factory=list)


def real_run(cluster: TempCluster, target: int) -> Real:
    sessions, expected = make_plan(target)
    trigger = capture.event_trigger_names(SCHEMA)["ddl_command_end"]
    time.sleep(1.1)
    t0 = datetime.now(UTC).replace(microsecond=0)
    log(f"real workload: {target} logged DDL in {len(sessions)} sessions ...")
    started = time.monotonic()
    run_plan(
        sessions,
        lambda db, app: cluster.dsn(REAL_DB if db == "main" else PLAIN_DB, application_name=app),
        trigger,
    )
    log(f"  workload took {time.monotonic() - started:.1f} s")
    cluster.flush_logs()
    before = read_rows(cluster.dsn(REAL_DB))
    # The intruder: delete and alter the rows of the planted statements.
    victims = {
        kind: sorted(
            i
            for i, r in before.items()
            if re.match(rf"CREATE TABLE rb_{kind}_\d+ ", r["query"] or "")
        )
        for kind in ("del", "alt")
    }
    with psycopg.connect(cluster.dsn(REAL_DB, application_name="cleaner"), autocommit=True) as conn:
        psycopg.ClientCursor(conn).execute(
            f"ALTER TABLE {SCHEMA}.events DISABLE TRIGGER events_append_only;"
            f"DELETE FROM {SCHEMA}.events WHERE id IN ({','.join(map(str, victims['del']))});"
            f"UPDATE {SCHEMA}.events SET session_user_name = 'nobody' "
            f"WHERE id IN ({','.join(map(str, victims['alt']))});"
            f"ALTER TABLE {SCHEMA}.events ENABLE ALWAYS TRIGGER events_append_only"
        )
    time.sleep(0.2)
    cluster.flush_logs()
    t1 = datetime.now(UTC)
    after = read_rows(cluster.dsn(REAL_DB))
    # The server's log files, as they are now.
    log_dir = DATA / "real"
    shutil.rmtree(log_dir, ignore_errors=True)
    log_dir.mkdir(parents=True)
    for p in cluster.log_dir.iterdir():
        shutil.copyfile(p, log_dir / p.name)
    csv_data = b"".join(p.read_bytes() for p in sorted(log_dir.glob("*.csv")))
    json_data = b"".join(p.read_bytes() for p in sorted(log_dir.glob("*.json")))
    err_data = b"".join(p.read_bytes() for p in sorted(log_dir.glob("*.log")))
    checks = roundtrip(csv_data, json_data, err_data)
    t0s = t0.strftime("%Y-%m-%d %H:%M:%S")
    t1s = t1.strftime("%Y-%m-%d %H:%M:%S.999")
    rows = [r for r in parse_csv(csv_data) if t0s <= (r[0] or "") <= t1s]
    xids = set()
    for r in rows:
        if r[IX["transaction_id"]] not in (None, "0"):
            xids.add(int(r[IX["transaction_id"]] or 0))
        m = _MARKER.match(r[IX["message"]] or "")
        if m:
            xids.add(int(m.group(3)))
    for r in (*before.values(), *after.values()):
        xids.add(int(r["xid"]))
    with psycopg.connect(cluster.dsn(REAL_DB), autocommit=True) as conn:
        statuses = {
            int(x): str(s)
            for x, s in conn.execute(
                "SELECT x, pg_xact_status(x::text::xid8) FROM unnest(%s::bigint[]) AS x",
                [sorted(xids)],
            )
        }
    return Real(rows, before, after, statuses, t0, t1, target, expected.by_class, log_dir, checks)


# -- cloning -------------------------------------------------------------------------------


def burn_xids(cluster: TempCluster, committed: int, aborted: int) -> tuple[list[int], list[int]]:
    """Real transaction ids for the clones' markers: committed ones and aborted ones."""
    out: dict[str, list[int]] = {}
    with cluster.connect("postgres") as conn:
        for status, count, end in (
            ("committed", committed, "COMMIT"),
            ("aborted", aborted, "ROLLBACK"),
        ):
            lo = int(conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0])
            done = 0
            while done < count:
                n = min(200_000, count - done)
                conn.execute(
                    "DO $$ BEGIN FOR i IN 1.." + str(n) + " LOOP "
                    "PERFORM pg_current_xact_id(); " + end + "; END LOOP; END $$"
                )
                done += n
            hi = int(conn.execute("SELECT pg_current_xact_id()::text::bigint").fetchone()[0])
            got = [
                int(r[0])
                for r in conn.execute(
                    "SELECT x FROM generate_series(%s::bigint, %s::bigint) AS x "
                    "WHERE pg_xact_status(x::text::xid8) = %s",
                    [lo + 1, hi - 1, status],
                )
            ]
            if len(got) < count:
                raise RuntimeError(f"burnt {len(got)} {status} xids, wanted {count}")
            out[status] = got[:count]
    return out["committed"], out["aborted"]


def _copy_text(v: Any) -> str:
    if v is None:
        return "\\N"
    if isinstance(v, datetime):
        return v.isoformat()
    s = str(v)
    if "\\" in s or "\t" in s or "\n" in s or "\r" in s:
        s = s.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    return s


class Cloner:
    """Clone ``c`` of the real run: fresh identifiers, shifted times, recomputed digests."""

    def __init__(self, real: Real, db: str, committed: list[int], aborted: list[int]) -> None:
        self.real = real
        self.db = db
        self.span = int((real.t1 - real.t0).total_seconds()) + 2
        # Clones follow each other without a hole in the ids (a hole with neither a row
        # nor a marker is a finding: MARKER_MISSING).
        ids = {*real.before, *real.after}
        ids.update(int(m.group(2)) for r in real.rows if (m := _MARKER.match(r[13] or "")))
        self.first_id = min(ids)
        self.stride = max(ids) - self.first_id + 1
        self.x_committed = sorted(x for x, s in real.statuses.items() if s != "aborted")
        self.x_aborted = sorted(x for x, s in real.statuses.items() if s == "aborted")
        self.pool_c, self.pool_a = committed, aborted
        self.next_pid = 10_000
        self._time_cache: dict[tuple[int, str], str] = {}

    @property
    def xids_per_clone(self) -> tuple[int, int]:
        return len(self.x_committed), len(self.x_aborted)

    def clone(self, c: int, copy_xid: int) -> tuple[list[Row], list[str]]:
        """The log rows and the COPY lines of clone ``c``.

        ``copy_xid`` is the transaction that will COPY the rows in: it becomes each
        stored row's xmin, so the markers of stored rows carry it (as the audit
        trigger's carry the inserting transaction's); markers without a row keep a
        burnt xid of the right status.
        """
        real = self.real
        shift = (c + 1) * self.span
        delta = timedelta(seconds=shift)
        nc, na = self.xids_per_clone
        xmap = {x: self.pool_c[c * nc + i] for i, x in enumerate(self.x_committed)}
        xmap.update({x: self.pool_a[c * na + i] for i, x in enumerate(self.x_aborted)})
        xmap[0] = 0
        pids: dict[str, str] = {}
        sessions: dict[str, str] = {}
        name = f"rb{c}_"

        def pid_of(pid: str) -> str:
            if pid not in pids:
                pids[pid] = str(self.next_pid)
                self.next_pid += 1
            return pids[pid]

        def session_of(sid: str, pid: str) -> str:
            if sid not in sessions:
                epoch = int(sid.split(".")[0], 16) + shift
                sessions[sid] = f"{epoch:x}.{int(pid_of(pid)):x}"
            return sessions[sid]

        def shift_time(text: str) -> str:
            # "2026-11-26 05:47:55.005 UTC" or "2026-11-26 05:47:55 UTC": whole seconds move
            head = text[:19]
            key = (shift, head)
            got = self._time_cache.get(key)
            if got is None:
                got = (datetime.strptime(head, "%Y-%m-%d %H:%M:%S") + delta).strftime(
                    "%Y-%m-%d %H:%M:%S"
                )
                self._time_cache[key] = got
            return got + text[19:]

        def remap(version: dict[str, Any]) -> dict[str, Any]:
            r = dict(version)
            r["id"] = int(version["id"]) + c * self.stride
            for k in ("query", "caller_context", "objects_json"):
                if r[k] is not None:
                    r[k] = r[k].replace("rb_", name)
            r["statement_time"] = r["statement_time"] + delta
            r["clock_time"] = r["clock_time"] + delta
            r["database_name"] = self.db
            r["backend_pid"] = int(pid_of(str(version["backend_pid"])))
            r["session_id"] = session_of(version["session_id"], str(version["backend_pid"]))
            r["xid"] = xmap[int(version["xid"])]
            return r

        # Rows first: their digests (of the row as inserted, before any tampering)
        # go into the markers; the rows stored are the ones left after tampering.
        digests: dict[int, str] = {}
        copy_lines: list[str] = []
        for ident in sorted(set(real.before) | set(real.after)):
            first = remap(real.before.get(ident) or real.after[ident])
            fields = [first[k] for k in ROW_COLUMNS if k != "objects_json"]
            digests[ident] = digest_text(canonical_text(fields, first["objects_json"]))
            if ident in real.after:
                stored = remap(real.after[ident])
                copy_lines.append("\t".join(_copy_text(stored[k]) for k in ROW_COLUMNS) + "\n")
        out: list[Row] = []
        for src in real.rows:
            r = list(src)
            r[0] = shift_time(r[0] or "")
            pid = r[3] or ""
            r[5] = session_of(r[5] or "", pid)
            r[3] = pid_of(pid)
            if r[8]:
                r[8] = shift_time(r[8])
            if r[2] == REAL_DB:
                r[2] = self.db
            if r[10] not in (None, "0"):
                r[10] = str(xmap[int(r[10] or 0)])
            msg = r[13] or ""
            m = _MARKER.match(msg)
            if m:
                ident = int(m.group(2))
                digest = digests.get(ident) or digest_text(f"{c}:{m.group(5)}")
                xid = copy_xid if ident in real.after else xmap[int(m.group(3))]
                r[13] = (
                    f"auditor-marker v1 schema={m.group(1)} id={ident + c * self.stride} "
                    f"xid={xid} event={m.group(4)} digest={digest} "
                    f"tag={m.group(6)}"
                )
            elif "rb_" in msg:
                r[13] = msg.replace("rb_", name)
            for ix in (18, 19):
                if r[ix] and "rb_" in r[ix]:
                    r[ix] = r[ix].replace("rb_", name)
            out.append(r)
        return out, copy_lines


def synthesize(cluster: TempCluster, cloner: Cloner, clones: int, out_dir: Path) -> dict[str, Any]:
    """Log files and audit rows of ``clones`` clones; rows COPYed into ``cloner.db``."""
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    cluster.execute(f"DROP DATABASE IF EXISTS {cloner.db} WITH (FORCE)")
    cluster.execute(f"CREATE DATABASE {cloner.db}")
    capture.install(cluster.dsn(cloner.db), databases=[cloner.db])
    rows_total = 0
    records = 0
    columns = ", ".join(k if k != "objects_json" else "objects" for k in ROW_COLUMNS)
    with psycopg.connect(cluster.dsn(cloner.db), autocommit=True) as conn:
        for first in range(0, clones, CLONES_PER_FILE):
            # One file per CLONES_PER_FILE clones, named like the server's rotated files.
            # One transaction per file: its xid is the xmin of every row it COPYs in.
            conn.execute("BEGIN")
            copy_xid = int(
                conn.execute("SELECT pg_current_xact_id()::text::bigint % 4294967296").fetchone()[0]
            )
            batches = [
                cloner.clone(c, copy_xid)
                for c in range(first, min(clones, first + CLONES_PER_FILE))
            ]
            head = batches[0][0][0][0] or ""
            base = (
                out_dir
                / f"postgresql-{head[:19].replace('-', '').replace(':', '').replace(' ', '-')}"
            )
            with contextlib.ExitStack() as stack:
                fhs = [
                    stack.enter_context(open(f"{base}.{ext}", "w", encoding="utf-8", newline=""))
                    for ext in ("csv", "json", "log")
                ]
                for recs, lines in batches:
                    records += write_all(recs, *fhs)
                    with (
                        conn.cursor() as cur,
                        cur.copy(f"COPY {SCHEMA}.events ({columns}) FROM STDIN") as cp,
                    ):
                        cp.write("".join(lines))
                    rows_total += len(lines)
            conn.execute("COMMIT")
            del batches
        conn.execute(
            f"SELECT setval('{SCHEMA}.events_id_seq', (SELECT max(id) FROM {SCHEMA}.events))"
        )
        conn.execute(f"VACUUM ANALYZE {SCHEMA}.events")
    first = cloner.real.t0 + timedelta(seconds=cloner.span)
    last = cloner.real.t0 + timedelta(seconds=(clones + 1) * cloner.span)
    return {"records": records, "rows": rows_total, "since": first, "until": last}


# -- measuring -----------------------------------------------------------------------------


def measure_child(args: argparse.Namespace) -> None:
    """In a fresh process: reconcile with a timer around each phase; JSON on stdout."""
    from auditor import reconcile as rc
    from auditor import report
    from auditor.config import load_config

    spent: dict[str, float] = defaultdict(float)

    def timed(name: str, fn: Any) -> Any:
        def wrapper(*a: Any, **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                spent[name] += time.perf_counter() - t

        return wrapper

    rc.read_logs = timed("logs", rc.read_logs)  # type: ignore[assignment]
    rc.read_audit = timed("audit", rc.read_audit)  # type: ignore[assignment]
    rc.match = timed("match", rc.match)  # type: ignore[assignment]
    report.write_reports = timed("report", report.write_reports)  # type: ignore[assignment]
    cfg = load_config(
        {
            "dsn": args.dsn,
            "logs": args.logs,
            "since": args.since,
            "until": args.until,
            "databases": args.databases.split(","),
            "out": args.out,
        },
        environ={},
    )
    t = time.perf_counter()
    result = rc.reconcile(cfg)
    total = time.perf_counter() - t
    doc = result.document
    s = doc.summary
    rows_in_findings = {(f.database, i) for f in doc.findings for i in f.audit_event_ids}
    accounts = sum(f.accounts_logged_ddl for f in doc.findings)
    out = {
        "total": total,
        "phases": dict(spent),
        "maxrss_self_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
        "maxrss_workers_kb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss,
        "logged_ddl": s.logged_ddl,
        "audit_rows": s.audit_rows,
        "matched": s.matched,
        "matched_rows": s.matched_audit_rows,
        "findings": len(doc.findings),
        "by_class": s.by_class,
        "accounts_ok": s.logged_ddl == s.matched + accounts
        and s.audit_rows == (s.matched_audit_rows or 0) + len(rows_in_findings),
        "report_bytes": {k: Path(p).stat().st_size for k, p in result.paths.items()},
        "log_bytes": sum(Path(p).stat().st_size for spec in args.logs for p in _expand(spec)),
    }
    print(json.dumps(out))


def _expand(spec: str) -> Iterator[str]:
    import glob

    if os.path.isdir(spec):
        yield from (str(p) for p in Path(spec).iterdir() if p.suffix == ".json")
    else:
        yield from glob.glob(spec)


def measure(
    cluster: TempCluster, logs: list[str], db: str, since: datetime, until: datetime, out: Path
) -> dict[str, Any]:
    cmd = [
        sys.executable,
        str(Path(__file__).resolve()),
        "_measure",
        "--dsn", cluster.dsn(db),
        "--since", since.isoformat(),
        "--until", until.isoformat(),
        "--databases", f"{db},{PLAIN_DB}",
        "--out", str(out),
        *[x for spec in logs for x in ("--log", spec)],
    ]  # fmt: skip
    t = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.monotonic() - t
    if proc.returncode != 0:
        raise RuntimeError(f"measure failed: {proc.stderr[-3000:]}")
    data: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    data["process_wall"] = wall
    return data


def verdict(data: dict[str, Any], expected: dict[str, int], clones: int, logged: int) -> str:
    want = {k: v * clones for k, v in expected.items()}
    ok = data["by_class"] == want and data["accounts_ok"] and data["logged_ddl"] == logged * clones
    if ok:
        return "PASS"
    return f"FAIL (found {data['by_class']}, planted {want}, logged {data['logged_ddl']})"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    sub = ap.add_subparsers(dest="cmd")
    m = sub.add_parser("_measure")
    m.add_argument("--dsn")
    m.add_argument("--log", dest="logs", action="append")
    m.add_argument("--since")
    m.add_argument("--until")
    m.add_argument("--databases")
    m.add_argument("--out")
    ap.add_argument("--sizes", default="10k,100k,1m")
    ap.add_argument("--formats", default="jsonlog", help="log formats to reconcile (comma list)")
    ap.add_argument("--real", type=int, default=10_000, help="logged DDL of the real run")
    ap.add_argument("--json", type=Path, default=OUT / "results.json")
    ap.add_argument(
        "--hold",
        action="store_true",
        help="do not measure: keep the cluster and the inputs until SIGTERM (for profiling); "
        "their description goes to bench/out/reconcile/hold.json",
    )
    args = ap.parse_args()
    if args.cmd == "_measure":
        measure_child(args)
        return 0
    sizes = [s.strip().lower() for s in args.sizes.split(",") if s.strip()]
    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    pattern = {"jsonlog": "*.json", "csvlog": "*.csv", "stderr": "*.log"}
    results: list[dict[str, Any]] = []
    held: list[dict[str, Any]] = []
    log(f"load before: {load()}")
    with TempCluster(settings={"max_connections": 50}) as cluster:
        cluster.execute(f"CREATE DATABASE {REAL_DB}")
        cluster.execute(f"CREATE DATABASE {PLAIN_DB}")
        capture.install(cluster.dsn(REAL_DB), databases=[REAL_DB])
        real = real_run(cluster, args.real)
        for rt in real.roundtrip:
            log(
                f"format check {rt.fmt}: {rt.sessions} sessions, {rt.records} records: "
                + (
                    "identical to the server's file"
                    if rt.identical
                    else "DIFFERENT\n" + rt.first_difference
                )
            )
        if not all(rt.identical for rt in real.roundtrip):
            return 1
        nrows = len(real.after)
        log(
            f"real run: {len(real.rows)} log records, {nrows} audit rows "
            f"({nrows / real.logged_ddl:.2f} per logged DDL)"
        )
        if args.hold:
            held.append(
                {
                    "size": "10k real",
                    "dsn": cluster.dsn(REAL_DB),
                    "databases": f"{REAL_DB},{PLAIN_DB}",
                    "since": real.t0.isoformat(),
                    "until": real.t1.isoformat(),
                    "logs": {f: str(real.log_dir / pattern[f]) for f in pattern},
                }
            )
        for fmt in [] if args.hold else formats:
            data = measure(
                cluster,
                [str(real.log_dir / pattern[fmt])],
                REAL_DB,
                real.t0,
                real.t1,
                OUT / f"real-{fmt}",
            )
            data.update(size="10k real", format=fmt, clones=1)
            data["check"] = verdict(data, real.expected, 1, real.logged_ddl)
            log(json.dumps(data))
            results.append(data)
        max_clones = max(SIZES[s] for s in sizes)
        cloner = Cloner(real, "", [], [])
        nc, na = cloner.xids_per_clone
        t = time.monotonic()
        committed, aborted = burn_xids(cluster, nc * max_clones, na * max_clones)
        log(
            f"burnt {len(committed)} committed and {len(aborted)} aborted xids in {time.monotonic() - t:.0f} s"
        )
        for size in sizes:
            clones = SIZES[size]
            db = f"rb_{size}"
            cloner = Cloner(real, db, committed, aborted)
            t = time.monotonic()
            info = synthesize(cluster, cloner, clones, DATA / size)
            log(
                f"synthetic {size}: {info['records']} log records, {info['rows']} rows, "
                f"written in {time.monotonic() - t:.0f} s"
            )
            if args.hold:
                held.append(
                    {
                        "size": size,
                        "dsn": cluster.dsn(db),
                        "databases": f"{db},{PLAIN_DB}",
                        "since": info["since"].isoformat(),
                        "until": info["until"].isoformat(),
                        "logs": {f: str(DATA / size / pattern[f]) for f in pattern},
                    }
                )
                continue
            for fmt in formats:
                log(f"reconcile {size} {fmt} (load {load()}) ...")
                data = measure(
                    cluster,
                    [str(DATA / size / pattern[fmt])],
                    db,
                    info["since"],
                    info["until"],
                    OUT / f"{size}-{fmt}",
                )
                data.update(size=size, format=fmt, clones=clones)
                data["check"] = verdict(data, real.expected, clones, real.logged_ddl)
                log(json.dumps(data))
                results.append(data)
            cluster.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        if args.hold:
            OUT.mkdir(parents=True, exist_ok=True)
            (OUT / "hold.json").write_text(json.dumps(held, indent=1))
            log(f"holding the cluster: {OUT / 'hold.json'}; stop with SIGTERM")
            import signal

            signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
            while True:
                time.sleep(3600)
    log(f"load after: {load()}")
    keys = ("logged_ddl", "audit_rows", "matched", "matched_rows", "findings", "by_class")
    for fmt in formats:
        a = next((r for r in results if r["size"] == "10k real" and r["format"] == fmt), None)
        b = next((r for r in results if r["size"] == "10k" and r["format"] == fmt), None)
        if a and b:
            same = all(a[k] == b[k] for k in keys)
            log(
                f"shape check {fmt}: the synthetic 10k reconciles "
                + ("exactly like the real run (same counts per class)" if same else "DIFFERENTLY")
            )
            if not same:
                b["check"] = "FAIL (differs from the real run)"
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1))
    print()
    print(table(results))
    failed = [f"{r['size']} {r['format']}" for r in results if r["check"] != "PASS"]
    print()
    print(
        f"FAIL: {', '.join(failed)}"
        if failed
        else f"PASS: all {len(results)} inputs reconciled exactly (planted findings, accounting)"
    )
    return 1 if failed else 0


def table(results: list[dict[str, Any]]) -> str:
    """Markdown table; ``logs`` and ``audit`` overlap (the rows are read in a thread)."""
    head = (
        "| input | format | logged DDL | audit rows | log MB | findings | logs s | audit s (∥) "
        "| match s | report s | total s | peak RSS MB (+ workers) | check |\n"
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
    )
    lines = [head]
    for r in results:
        p = r["phases"]
        check = r["check"] if len(r["check"]) < 40 else r["check"][:37] + "..."
        lines.append(
            f"| {r['size']} | {r['format']} | {r['logged_ddl']:,} | {r['audit_rows']:,} "
            f"| {r['log_bytes'] / 1e6:,.0f} | {r['findings']:,} | {p.get('logs', 0):.1f} "
            f"| {p.get('audit', 0):.1f} | {p.get('match', 0):.1f} | {p.get('report', 0):.1f} "
            f"| {r['process_wall']:.1f} | {r['maxrss_self_kb'] / 1024:,.0f} "
            f"(+ {r['maxrss_workers_kb'] / 1024:,.0f}) | {check} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
