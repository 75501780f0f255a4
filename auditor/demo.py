"""``auditor demo``: the whole product on a throwaway cluster, in under two minutes.

It needs nothing but PostgreSQL server binaries: it starts a throwaway cluster
(as an unprivileged OS user when run as root) that logs stderr, csvlog and
jsonlog (PG 15+) with ``log_statement = 'ddl'``, installs the auditor in two databases
(``shop`` and ``hr``) and leaves a third one (``scratch``) unmonitored, starts
a local SMTP sink and the mail worker, and plays a scripted working day from
several sessions and roles: ordinary migrations, failures, rollbacks, DDL from
functions, and each evasion of the spec's section 1.  Every step runs with its
own ``application_name`` (``demo-NN-...``), so each finding of the reconcile
that follows names the step that caused it.  The output directory holds the
reports, the captured e-mails, the logs and a README.txt that explains each
finding.  The cluster and the worker are stopped on exit, also on Ctrl-C.
"""

from __future__ import annotations

import contextlib
import shutil
import textwrap
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg

from auditor.cluster import TempCluster, sigterm_as_exit
from auditor.config import load_config
from auditor.errors import AuditorError
from auditor.model import Finding, FindingClass, FindingsDocument

C = FindingClass
MONITORED = ("shop", "hr")
UNMONITORED = "scratch"


@dataclass(frozen=True)
class Step:
    """One scripted step: who runs what, and what reconcile should say about it."""

    key: str
    title: str
    sql: tuple[str, ...]  # statements, each sent on its own (one session for the step)
    database: str = "shop"
    user: str = "alice"
    expect: tuple[FindingClass, ...] = ()  # () = the channels agree: no finding
    why: str = ""
    allowed: bool = False
    may_fail: bool = False
    #: Objects only the catalog channel sees change: its findings name no session,
    #: so they are tied to the step by the object they name.
    silent: tuple[str, ...] = ()

    def owns(self, finding: Finding) -> bool:
        """Whether ``finding`` is this step's: by its session's name, or by its object."""
        if finding.application == self.app:
            return True
        return finding.cls == C.SILENT_SCHEMA_CHANGE and any(
            name in finding.explanation for name in self.silent
        )

    @property
    def app(self) -> str:
        return f"demo-{self.key}"


def steps() -> list[Step]:
    """The scripted day, in order."""
    return [
        Step("01-migration", "alice's morning migration: tables, index, view",
             ("CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL, email text)",
              "CREATE TABLE orders (id serial PRIMARY KEY, customer_id int REFERENCES customers, "
              "placed timestamptz DEFAULT now(), total numeric(10,2))",
              "CREATE INDEX orders_placed ON orders (placed); "
              "CREATE VIEW recent_orders AS "
              "SELECT * FROM orders WHERE placed > now() - interval '1 day'"),
             why="ordinary migration: logged and audited, nothing to report"),
        Step("02-functions", "alice adds a function and grants",
             ("CREATE FUNCTION order_total(o orders) RETURNS numeric "
              "LANGUAGE sql AS 'SELECT o.total'",
              "GRANT SELECT ON orders, customers TO reporting",
              "COMMENT ON TABLE orders IS 'one row per order'"),
             why="ordinary work"),
        Step("03-extension", "bob installs an extension in hr",
             ("CREATE TABLE employees (id int PRIMARY KEY, name text)",
              "CREATE EXTENSION IF NOT EXISTS pg_trgm"),
             database="hr", user="bob",
             why="one statement that fires the trigger dozens of times: one mail, one match"),
        Step("04-failed", "a migration that fails (the table already exists)",
             ("CREATE TABLE customers (id int)",), may_fail=True,
             expect=(C.FAILED_DDL,), why="the log shows the error; no audit row is expected"),
        Step("05-rollback", "a migration rolled back",
             ("BEGIN", "CREATE TABLE invoices (id int)", "ROLLBACK"),
             expect=(C.ROLLED_BACK_DDL,),
             why="the trigger's marker proves it ran; its transaction aborted"),
        Step("06-savepoint", "a rolled-back savepoint inside a committed transaction",
             ("BEGIN", "CREATE TABLE shipments (id int)", "SAVEPOINT s1",
              "CREATE TABLE shipments_tmp (id int)", "ROLLBACK TO SAVEPOINT s1", "COMMIT"),
             expect=(C.ROLLED_BACK_DDL,),
             why="only the DDL inside the savepoint was undone; never a 'deleted row'"),
        Step("07-flyway-do", "the migration tool runs DDL from a DO block (allow-listed)",
             ("DO $$ BEGIN EXECUTE 'CREATE TABLE audit_trail (id int)'; END $$",),
             user="migrator", expect=(C.INDIRECT_DDL,), allowed=True,
             why="log_statement cannot log DDL inside DO; the config allow-lists user migrator"),
        Step("08-function-ddl", "someone creates a table through a function",
             ("CREATE FUNCTION make_backup() RETURNS void LANGUAGE plpgsql AS "
              "$$ BEGIN EXECUTE 'CREATE TABLE orders_backup AS SELECT * FROM orders'; END $$",
              "SELECT make_backup()"),
             expect=(C.INDIRECT_DDL,),
             why="the CREATE FUNCTION matched; the table it created is indirect DDL"),
        Step("09-disable-trigger",
             "mallory disables the audit trigger, creates a table, re-enables it",
             ("ALTER EVENT TRIGGER auditor_ddl_command_end DISABLE",
              "CREATE TABLE mallory_stash (secret text)",
              "ALTER EVENT TRIGGER auditor_ddl_command_end ENABLE ALWAYS"),
             user="mallory", expect=(C.EVENT_TRIGGER_DDL, C.UNREPORTED_DDL, C.EVENT_TRIGGER_DDL),
             why="event triggers never report their own changes; the log does"),
        Step("10-replica-role", "mallory downgrades the trigger, then hides behind replica mode",
             ("ALTER EVENT TRIGGER auditor_ddl_command_end ENABLE",
              "SET session_replication_role = replica",
              "CREATE TABLE mallory_replica (x int)"),
             user="mallory", expect=(C.EVENT_TRIGGER_DDL, C.UNREPORTED_DDL),
             why="ENABLE ALWAYS would have kept the trigger firing in replica mode; she first "
                 "downgraded it to plain ENABLE (left so: the live check reports CONFIG_DRIFT)"),
        Step("11-silence-log", "mallory silences the log for her session",
             ("SET log_statement = 'none'", "CREATE TABLE mallory_quiet (x int)"),
             user="mallory", expect=(C.UNLOGGED_DDL,),
             why="the SET is not logged; the audit row and its marker are"),
        Step("12-delete-row", "mallory deletes an audit row",
             ("CREATE TABLE mallory_tmp (x int)",
              "ALTER TABLE auditor.events DISABLE TRIGGER events_append_only",
              "DELETE FROM auditor.events WHERE command_tag = 'CREATE TABLE' "
              "AND query LIKE '%mallory_tmp%'",
              "ALTER TABLE auditor.events ENABLE ALWAYS TRIGGER events_append_only"),
             user="mallory", expect=(C.AUDIT_ROW_MISSING, C.CONFIG_DRIFT, C.CONFIG_DRIFT),
             why="the marker in the log proves the row existed and was committed"),
        Step("13-alter-row", "mallory rewrites an audit row to blame alice",
             ("CREATE TABLE mallory_blame (x int)",
              "ALTER TABLE auditor.events DISABLE TRIGGER events_append_only",
              "UPDATE auditor.events SET session_user_name = 'alice', login_user_name = 'alice' "
              "WHERE query LIKE '%mallory_blame%'",
              "ALTER TABLE auditor.events ENABLE ALWAYS TRIGGER events_append_only"),
             user="mallory", expect=(C.AUDIT_ROW_ALTERED, C.CONFIG_DRIFT, C.CONFIG_DRIFT),
             why="the row no longer matches the digest its marker wrote at the time"),
        Step("14-unmonitored", "DDL in a database without the auditor",
             ("CREATE TABLE scratch_data (x int)",), database=UNMONITORED, user="bob",
             expect=(C.UNMONITORED_DATABASE,), why="only the log saw it"),
        Step("15-new-role", "mallory creates a superuser",
             ("CREATE ROLE backdoor LOGIN SUPERUSER PASSWORD 'hunter2'",),
             user="mallory", expect=(C.UNAUDITABLE_DDL,),
             why="roles are cluster-wide: event triggers never fire on them (password masked)"),
        Step("16-alter-system", "mallory turns DDL logging off for the whole server",
             ("ALTER SYSTEM SET log_statement = 'none'", "SELECT pg_reload_conf()"),
             user="mallory", expect=(C.CONFIG_DRIFT,),
             why="the ALTER SYSTEM line; the server's 'parameter changed' line after the "
                 "reload is a second CONFIG_DRIFT (not tied to a session)"),
        Step("17-while-dark", "bob's DDL while logging is off",
             ("CREATE TABLE payroll (id int, amount numeric)",),
             database="hr", user="bob", expect=(C.UNLOGGED_DDL,),
             why="the trigger recorded it; the log could not"),
        Step("18-lights-on", "mallory turns logging back on",
             ("ALTER SYSTEM RESET log_statement", "SELECT pg_reload_conf()"),
             user="mallory",
             why="the RESET itself is not logged (logging was off); the reload line that "
                 "follows turns DDL logging back on: it weakens nothing, so it is no "
                 "finding, only a step of the timeline"),
        Step("19-impersonate", "mallory acts as alice",
             ("SET SESSION AUTHORIZATION alice", "CREATE TABLE alice_did_it (x int)"),
             user="mallory", expect=(C.IMPERSONATED_DDL,),
             why="both channels agree that mallory logged in (the log's user, the row's "
                 "login user); the trigger's session user says she ran it as alice"),
        Step("20-own-trigger", "mallory adds an event trigger of her own",
             ("CREATE FUNCTION noop() RETURNS event_trigger LANGUAGE plpgsql AS $$ BEGIN END $$",
              "CREATE EVENT TRIGGER mallory_et ON ddl_command_start EXECUTE FUNCTION noop()"),
             user="mallory", expect=(C.EVENT_TRIGGER_DDL,),
             why="event-trigger DDL only appears in the log"),
        Step("21-forged-marker", "bob writes a fake audit marker into the log",
             ("DO $$ BEGIN RAISE LOG 'auditor-marker v1 schema=auditor id=424242 xid=1000 "
              "event=ddl_command_end digest=% tag=DROP TABLE', repeat('0', 64); END $$",),
             user="bob", expect=(C.CONFIG_DRIFT,),
             why="any role can RAISE LOG; the line's CONTEXT shows it did not come from the "
                 "audit trigger, so it is never paired (it would read as a deleted row)"),
        Step("22-dark-both", "mallory silences both channels at once and creates a table",
             ("SET log_statement = 'none'",
              "ALTER EVENT TRIGGER auditor_ddl_command_end DISABLE",
              "CREATE TABLE mallory_dark (loot text)",
              "ALTER EVENT TRIGGER auditor_ddl_command_end ENABLE"),
             user="mallory", expect=(C.SILENT_SCHEMA_CHANGE,), silent=("public.mallory_dark",),
             why="neither the log nor the trigger saw it (she leaves the trigger as she found "
                 "it, plain ENABLE); the catalog did: a SILENT_SCHEMA_CHANGE names the new "
                 "table and the interval between two snapshots, not a session"),
    ]  # fmt: skip


@dataclass
class DemoResult:
    out: Path
    document: FindingsDocument
    html: Path
    mails: list[Path]
    summary: str
    day: list[Step] = field(default_factory=list)
    #: The reconcile's exit code (1 when the day's evasions were found), which the
    #: summary's last line prints.
    exit_code: int = 0


def _setup_sql() -> list[tuple[str, str]]:
    """(database, statement) run before the day starts (and before the window opens)."""
    return [
        ("postgres", "CREATE ROLE alice LOGIN"),
        ("postgres", "CREATE ROLE bob LOGIN"),
        ("postgres", "CREATE ROLE migrator LOGIN"),
        ("postgres", "CREATE ROLE mallory LOGIN SUPERUSER"),
        ("postgres", "CREATE ROLE reporting NOLOGIN"),
        *[("postgres", f"CREATE DATABASE {db}") for db in (*MONITORED, UNMONITORED)],
        *[
            (db, "GRANT ALL ON SCHEMA public TO alice, bob, migrator")
            for db in (*MONITORED, UNMONITORED)
        ],
        *[
            ("postgres", f"GRANT CREATE ON DATABASE {db} TO alice, bob, migrator")
            for db in (*MONITORED, UNMONITORED)
        ],
    ]  # fmt: skip


def _run_step(cluster: TempCluster, step: Step) -> None:
    with psycopg.connect(
        cluster.dsn(step.database, step.user, application_name=step.app), autocommit=True
    ) as conn:
        cur = psycopg.ClientCursor(conn)  # simple protocol, like psql
        for stmt in step.sql:
            try:
                cur.execute(stmt)
            except psycopg.Error as exc:
                if not step.may_fail:
                    reason = str(exc).strip().splitlines()[0]
                    raise AuditorError(f"demo step {step.key} failed: {reason}") from None


def _wait_for_mails(directory: Path, quiet: float = 2.0, timeout: float = 60.0) -> list[Path]:
    """Wait until the worker has been idle for ``quiet`` seconds (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    last: list[Path] = []
    since_change = time.monotonic()
    while time.monotonic() < deadline:
        mails = sorted(directory.glob("*.eml"))
        if len(mails) != len(last):
            last, since_change = mails, time.monotonic()
        elif mails and time.monotonic() - since_change >= quiet:
            break
        time.sleep(0.2)
    return last


def _and(items: Sequence[str]) -> str:
    """English enumeration.

    >>> _and(["stderr", "csvlog", "jsonlog"]), _and(["stderr", "csvlog"])
    ('stderr, csvlog and jsonlog', 'stderr and csvlog')
    """
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def _readme(
    doc: FindingsDocument, steps: Sequence[Step], html: Path, formats: Sequence[str]
) -> str:
    by_app = {s.app: s for s in steps}
    lines = [
        "auditor demo: what happened and what the auditor found",
        "=" * 56,
        "",
        f"Report: {html.name} (open it in a browser; it works offline).",
        "Also here: findings.json, findings.csv, mails/*.eml (the DBA team's e-mails),",
        f"logs/ (the server's {_and(formats)} files).",
        "",
        f"Counts: {doc.summary.logged_ddl} logged DDL statements, {doc.summary.audit_rows} audit "
        f"rows, {doc.summary.matched} statements matched, {len(doc.findings)} findings.",
        "",
        "The scripted day, step by step:",
        "",
    ]
    for step in steps:
        found = [f for f in doc.findings if step.owns(f)]
        verdict = (
            ", ".join(
                f"{f.cls.value} ({f.severity.value}{', allow-listed' if f.allowed else ''})"
                for f in found
            )
            or "no finding"
        )
        lines.append(f"{step.key}  {step.title}")
        lines.append(f"    found: {verdict}")
        lines.extend(textwrap.wrap(f"why: {step.why}", 88, initial_indent="    ",
                                   subsequent_indent="    "))  # fmt: skip
        lines.append("")
    other = [f for f in doc.findings if not any(s.owns(f) for s in by_app.values())]
    if other:
        lines.append("Findings not tied to one step (live server state, reloads):")
        lines.append("")
        for f in other:
            lines.append(f"  {f.cls.value} ({f.severity.value})")
            lines.extend(textwrap.wrap(f.explanation, 86, initial_indent="    ",
                                       subsequent_indent="    "))  # fmt: skip
        lines.append("")
    lines.append("What each finding class means:")
    lines.append("")
    from auditor.findings import DEFAULT_SEVERITY, MEANING

    for cls in FindingClass:
        lines.append(f"  {cls.value} (default {DEFAULT_SEVERITY[cls].value})")
        lines.extend(textwrap.wrap(MEANING[cls], 86, initial_indent="    ",
                                   subsequent_indent="    "))  # fmt: skip
    return "\n".join(lines) + "\n"


@contextlib.contextmanager
def _mail_worker(cluster: TempCluster, directory: Path) -> Iterator[Any]:
    """A local SMTP sink and the outbox worker serving the monitored databases."""
    from auditor.notify import run_worker
    from auditor.smtp_sink import SmtpSink

    with SmtpSink(directory) as sink:
        cfg = load_config(
            {
                "dsn": cluster.dsn("postgres"),
                "databases": list(MONITORED),
                "smtp.host": "127.0.0.1",
                "smtp.port": sink.port,
                "mail_to": ["dba-team@example.com"],
                "mail_from": "auditor@example.com",
            },
            environ={},
            search_default=False,
        )
        stop = threading.Event()
        ready = threading.Event()
        errors: list[BaseException] = []

        def serve() -> None:
            try:
                run_worker(cfg, stop, on_ready=lambda _names: ready.set())
            except BaseException as exc:  # reported by the main thread
                errors.append(exc)
                ready.set()

        thread = threading.Thread(target=serve, name="auditor-notify", daemon=True)
        thread.start()
        ready.wait(30)
        if errors:
            raise AuditorError(f"the mail worker did not start: {errors[0]}")
        try:
            yield sink
        finally:
            stop.set()
            thread.join(30)


def run_demo(out: Path, echo: Callable[[str], None] = print) -> DemoResult:
    """Play the scripted day and reconcile it; always clean up the cluster and worker."""
    from auditor import capture
    from auditor.reconcile import reconcile, summary_lines

    started = time.monotonic()
    if out.exists():
        for sub in ("mails", "logs"):
            shutil.rmtree(out / sub, ignore_errors=True)
    out.mkdir(parents=True, exist_ok=True)
    day = steps()
    with sigterm_as_exit(), TempCluster() as cluster:
        # jsonlog exists from PostgreSQL 15 on: the cluster logs what its server can write.
        formats = [f.strip() for f in cluster.log_destination.split(",")]
        echo(f"throwaway PostgreSQL {cluster.version_num} on port {cluster.port} "
             f"(logs: {', '.join(formats)}; log_statement = ddl)")  # fmt: skip
        for db, stmt in _setup_sql():
            cluster.execute(stmt, dbname=db, application_name="demo-setup")
        report = capture.install(
            cluster.dsn("postgres"), databases=list(MONITORED), reader_role="auditor_reader"
        )
        echo(f"auditor installed in {', '.join(d.name for d in report.databases)}; "
             f"{UNMONITORED} left unmonitored")  # fmt: skip
        with _mail_worker(cluster, out / "mails") as sink:
            echo(f"SMTP sink on 127.0.0.1:{sink.port}, mail worker running")
            time.sleep(0.05)
            since = datetime.now(UTC)
            for step in day:
                _run_step(cluster, step)
                echo(f"  {step.key}: {step.title}")
            cluster.flush_logs()
            mails = _wait_for_mails(out / "mails")
        until = datetime.now(UTC)
        logs_out = out / "logs"
        logs_out.mkdir(exist_ok=True)
        for path in cluster.log_files():
            shutil.copyfile(path, logs_out / path.name)
        cfg = load_config(
            {
                "dsn": cluster.dsn("postgres"),
                "logs": [str(logs_out)],
                "since": since.isoformat(),
                "until": until.isoformat(),
                "out": str(out),
                "reader_role": "auditor_reader",
                "allow": [
                    {
                        "class": "INDIRECT_DDL",
                        "user": "migrator",
                        "reason": "the migration tool runs DDL in DO blocks",
                    }
                ],
            },
            environ={},
            search_default=False,
        )
        result = reconcile(cfg)
    readme = out / "README.txt"
    text = _readme(result.document, day, result.paths["html"], formats)
    readme.write_text(text, encoding="utf-8")
    elapsed = time.monotonic() - started
    lines = summary_lines(result)
    lines.insert(
        0, f"demo finished in {elapsed:.0f} s; {len(mails)} e-mails captured in {out / 'mails'}"
    )
    lines.append(f"explanations: {readme}")
    return DemoResult(
        out, result.document, result.paths["html"], mails, "\n".join(lines), day, result.exit_code
    )
