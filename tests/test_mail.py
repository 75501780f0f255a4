"""E-mail to the DBA team, on real clusters and a real SMTP server (aiosmtpd).

Outbox mode (``auditor notify``), the in-database plpython3u mode and strict mode:
every mail is read back from the ``.eml`` files the SMTP server wrote, and compared
with the audit rows the trigger stored.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql
from psycopg.rows import dict_row
from typer.testing import CliRunner

from auditor import capture, mail, notify, outbox
from auditor.cli import app
from auditor.cluster import TempCluster
from auditor.config import Config, load_config
from auditor.errors import ConfigError, InstallError, MailError
from auditor.smtp_sink import SmtpSink

runner = CliRunner()
TO = "dba-team@example.org"
CC = "security@example.org"
FROM = "auditor@db.example.org"
FAST = {"notify.retry_initial": 0.2, "notify.retry_max": 1.0, "notify.poll_interval": 2.0}


def config(dsn: str, sink: SmtpSink, **flags: Any) -> Config:
    values: dict[str, Any] = {
        "dsn": dsn,
        "mail_to": [TO],
        "mail_cc": [CC],
        "mail_from": FROM,
        "smtp.host": "127.0.0.1",
        "smtp.port": sink.port,
        "smtp.timeout": 5.0,
        **FAST,
    }
    values.update(flags)
    return load_config(values, environ={})


@contextlib.contextmanager
def worker(cfg: Config) -> Iterator[threading.Thread]:
    """auditor notify's long-running loop in a thread, stopped at the end."""
    stop = threading.Event()
    ready = threading.Event()
    failure: list[BaseException] = []

    def run() -> None:
        try:
            notify.run_worker(cfg, stop, on_ready=lambda names: ready.set())
        except BaseException as exc:  # surfaced by the assertion below
            failure.append(exc)
            ready.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    assert ready.wait(30), "the worker did not start"
    assert not failure, failure
    try:
        yield thread
    finally:
        stop.set()
        thread.join(30)


def wait_until(predicate: Any, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def text_part(msg: EmailMessage) -> str:
    part = msg.get_body(("plain",))
    assert part is not None
    return str(part.get_content()).replace("\r\n", "\n")


def html_part(msg: EmailMessage) -> str:
    part = msg.get_body(("html",))
    assert part is not None
    return str(part.get_content())


def rows(conn: psycopg.Connection[Any], query: str, *params: Any) -> list[dict[str, Any]]:
    with conn.cursor(row_factory=dict_row) as cur:
        return list(cur.execute(query, params or None).fetchall())


def deliveries(db: Any) -> list[dict[str, Any]]:
    with db.connect() as conn:
        return rows(conn, "SELECT * FROM auditor.deliveries ORDER BY id")


def assert_exactly_once(sink: SmtpSink, db: Any, expected: int) -> list[EmailMessage]:
    """Every statement mailed once: as many mails as deliveries, all delivered, no repeats."""
    msgs = sink.messages()
    ids = [m["Message-ID"] for m in msgs]
    recorded = deliveries(db)
    assert len(recorded) == expected, [r["command_tags"] for r in recorded]
    assert all(r["status"] == "delivered" for r in recorded), recorded
    assert len(ids) == len(set(ids)), "a mail was sent twice"
    assert sorted(ids) == sorted(r["message_id"] for r in recorded)
    return msgs


# Everything an install could leave in a database, by name (no oids).
SNAPSHOT = """
SELECT jsonb_build_object(
  'namespaces', (SELECT jsonb_agg(n.nspname ORDER BY n.nspname) FROM pg_namespace n),
  'relations', (SELECT jsonb_agg(jsonb_build_array(c.relnamespace::regnamespace::text, c.relname,
                        c.relacl::text) ORDER BY 1, 2)
                  FROM pg_class c WHERE c.relnamespace::regnamespace::text NOT IN
                       ('pg_catalog', 'information_schema', 'pg_toast')),
  'functions', (SELECT jsonb_agg(jsonb_build_array(p.oid::regprocedure::text, md5(p.prosrc))
                        ORDER BY 1)
                  FROM pg_proc p WHERE p.pronamespace::regnamespace::text NOT IN
                       ('pg_catalog', 'information_schema')),
  'triggers', (SELECT jsonb_agg(t.tgname ORDER BY 1) FROM pg_trigger t WHERE NOT t.tgisinternal),
  'event_triggers', (SELECT jsonb_agg(e.evtname ORDER BY 1) FROM pg_event_trigger e),
  'extensions', (SELECT jsonb_agg(x.extname ORDER BY 1) FROM pg_extension x),
  'languages', (SELECT jsonb_agg(l.lanname ORDER BY 1) FROM pg_language l)
)
"""


def snapshot(cluster: TempCluster, dbname: str) -> dict[str, Any]:
    with cluster.connect(dbname) as conn:
        row = conn.execute(SNAPSHOT).fetchone()
    assert row is not None
    return dict(row[0])


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (the client trusts it as its CA file)."""
    d = tmp_path_factory.mktemp("tls")
    cert, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return cert, key


# -- what a mail says ------------------------------------------------------------------


def test_one_ddl_one_mail_with_every_field(db, smtp_sink) -> None:
    role = db.create_role("mail_fields_owner")  # its GRANT is not part of the test
    capture.install(db.dsn())
    query = "CREATE TABLE public.t_fields (id int PRIMARY KEY, note text) -- says <b>&</b>"
    with worker(config(db.dsn(), smtp_sink)):
        with db.connect(application_name="deploy <v2> & co") as conn:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(role)))
            conn.execute(query)
        (msg,) = smtp_sink.wait_for(1)
        time.sleep(0.5)
    assert len(smtp_sink.messages()) == 1
    with db.connect() as conn:
        (row,) = rows(conn, "SELECT * FROM auditor.events ORDER BY id")
    assert row["current_user_name"] == role and row["session_user_name"] == "postgres"
    (delivery,) = deliveries(db)
    assert msg["Subject"] == "CREATE TABLE DDL change on localhost detected"
    assert msg["From"] == FROM and msg["To"] == TO and msg["Cc"] == CC
    assert msg["Message-ID"] == delivery["message_id"] and delivery["status"] == "delivered"
    assert msg["Date"].datetime == row["statement_time"].replace(microsecond=0)
    assert msg["Auto-Submitted"] == "auto-generated"
    assert msg.is_multipart() and msg.get_content_type() == "multipart/alternative"
    port = db.cluster.port
    when = row["statement_time"].strftime("%Y-%m-%d %H:%M:%S.%f UTC")
    text = text_part(msg)
    for line in (
        f"Server:        localhost (127.0.0.1), port {port}",
        f"Database:      {db.name}",
        "Session user:  postgres",
        f"Current user:  {role}",
        f"Client:        localhost (127.0.0.1), port {row['client_port']}",
        "Application:   deploy <v2> & co",
        f"Time:          {when}",
        f"Session:       {row['session_id']} (backend pid {row['backend_pid']}), "
        f"transaction {row['xid']}, vxid {row['vxid']}",
        "  CREATE TABLE  table  public.t_fields",
        "  " + query,
    ):
        assert line in text, (line, text)
    html = html_part(msg)
    assert "deploy &lt;v2&gt; &amp; co" in html and "<v2>" not in html
    assert "-- says &lt;b&gt;&amp;&lt;/b&gt;" in html
    assert f"localhost (127.0.0.1), port {port}" in html and role in html
    assert "public.t_fields" in html


def test_create_extension_is_one_mail(db, smtp_sink) -> None:
    capture.install(db.dsn())
    db.run("CREATE EXTENSION citext")
    report = notify.deliver_pending(config(db.dsn(), smtp_sink))
    assert report.exit_code == 0, notify.format_report(report)
    (msg,) = smtp_sink.messages()
    with db.connect() as conn:
        n = conn.execute("SELECT count(*) FROM auditor.events").fetchone()
    assert n is not None and n[0] > 50  # dozens of firings ...
    assert msg["Subject"] == "CREATE EXTENSION DDL change on localhost detected"  # ... one mail
    assert msg["X-Auditor-Events"] == f"1-{n[0]}"
    text = text_part(msg)
    assert "CREATE EXTENSION  extension  citext" in text
    assert (
        "CREATE FUNCTION  function  public.citextin(pg_catalog.cstring)  (member of the extension)"
        in text
    )
    assert f"({n[0]} trigger firings)" in text


def test_multi_statement_string_gives_one_mail_per_statement(db, smtp_sink) -> None:
    capture.install(db.dsn())
    db.run(
        "CREATE TABLE ms_a (id int); "
        "DROP TABLE ms_a; "
        "CREATE EXTENSION citext; "
        "DO $$ BEGIN CREATE TABLE ms_in_do (id int); CREATE INDEX ON ms_in_do (id); END $$; "
        "COMMENT ON EXTENSION citext IS 'a; b'; "
        "CREATE TABLE ms_b (id int)"
    )
    report = notify.deliver_pending(config(db.dsn(), smtp_sink))
    assert report.exit_code == 0, notify.format_report(report)
    msgs = sorted(
        assert_exactly_once(smtp_sink, db, 6),  # sent side by side: order by first row
        key=lambda m: int(m["X-Auditor-Events"].split("-")[0]),
    )
    subjects = [m["Subject"].split(" DDL change")[0] for m in msgs]
    assert subjects == [
        "CREATE TABLE",
        "DROP TABLE",
        "CREATE EXTENSION",
        "CREATE TABLE",  # the DO block: both of its DDLs in one mail
        "COMMENT",
        "CREATE TABLE",
    ]
    do_text = text_part(msgs[3])
    assert "public.ms_in_do" in do_text and "CREATE INDEX" in do_text
    assert "Run indirectly, by a DO block" in do_text
    assert "dropped  table  public.ms_a" in text_part(msgs[1])
    # every mail carries the whole query string the client sent
    assert all("CREATE TABLE ms_b (id int)" in text_part(m) for m in msgs)


@pytest.mark.parametrize("mode", ["outbox", "plpython"])
def test_password_literals_are_masked_in_mails(db, smtp_sink, mode) -> None:
    if mode == "plpython" and not db.cluster.has_plpython:
        pytest.skip("plpython3u is not installed here")
    role = db.create_role("mail_masked_role")  # before install: its GRANT is not mailed
    cfg = config(db.dsn(), smtp_sink, mail_mode=mode)
    capture.install(db.dsn(), mail=outbox.MailInstall(mode=mode, settings=mail.mail_settings(cfg)))
    db.run(f"CREATE TABLE masked (id int); ALTER ROLE {role} PASSWORD 'hunter2-secret'")
    if mode == "outbox":
        notify.deliver_pending(cfg)
    (msg,) = smtp_sink.messages()
    raw = smtp_sink.paths()[0].read_bytes()
    assert b"hunter2" not in raw
    for part in (text_part(msg), html_part(msg)):
        assert "hunter2" not in part
        assert f"ALTER ROLE {role} PASSWORD &#39;*****&#39;" in part or (
            f"ALTER ROLE {role} PASSWORD '*****'" in part
        )


def test_templates_can_be_overridden(db, smtp_sink, tmp_path) -> None:
    capture.install(db.dsn())
    subject = tmp_path / "subject.j2"
    subject.write_text("[{{ database }}] {{ tag }} by {{ session_user }}")
    text = tmp_path / "text.j2"
    text.write_text("{{ query }} on {{ server }}:{{ port }}\n")
    cfg_file = tmp_path / "auditor.yaml"
    cfg_file.write_text(f"mail:\n  subject_template: {subject}\n  text_template: {text}\n")
    db.run("CREATE TABLE tpl (id int)")
    flags = {
        "dsn": db.dsn(),
        "mail_to": [TO],
        "smtp.host": "127.0.0.1",
        "smtp.port": smtp_sink.port,
    }
    notify.deliver_pending(load_config(flags, config_file=cfg_file, environ={}))
    (msg,) = smtp_sink.messages()
    assert msg["Subject"] == f"[{db.name}] CREATE TABLE by postgres"
    assert text_part(msg) == f"CREATE TABLE tpl (id int) on localhost:{db.cluster.port}\n"
    assert "tpl" in html_part(msg)  # the default HTML template is still used
    broken = tmp_path / "broken.j2"
    broken.write_text("{{ no_such_field }}")
    with pytest.raises(ConfigError, match="no_such_field"):
        notify.deliver_pending(
            load_config({**flags, "mail.html_template": str(broken)}, environ={})
        )


# -- delivery guarantees ---------------------------------------------------------------


def test_smtp_outage_loses_nothing_and_never_blocks_ddl(db, smtp_sink) -> None:
    capture.install(db.dsn())
    with worker(config(db.dsn(), smtp_sink)):
        smtp_sink.stop()
        durations: list[float] = []
        errors: list[BaseException] = []

        def session(n: int) -> None:
            try:
                with db.connect(application_name=f"session-{n}") as conn:
                    for i in range(10):
                        start = time.monotonic()
                        conn.execute(f"CREATE TABLE outage_{n}_{i} (id int)")
                        durations.append(time.monotonic() - start)
            except BaseException as exc:
                errors.append(exc)

        threads = [threading.Thread(target=session, args=(n,)) for n in range(5)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        # All 50 DDLs committed while the SMTP server was down: none waited for it.
        assert not errors and len(durations) == 50
        assert not smtp_sink.running
        wait_until(
            lambda: len(deliveries(db)) == 50 and all(d["attempts"] >= 1 for d in deliveries(db)),
            what="50 failed first attempts",
        )
        assert smtp_sink.messages() == []
        smtp_sink.start()
        smtp_sink.wait_for(50, timeout=60)
        wait_until(lambda: all(d["status"] == "delivered" for d in deliveries(db)))
        time.sleep(1.5)  # more retries would show up as duplicates now
    msgs = assert_exactly_once(smtp_sink, db, 50)
    assert {m["Subject"] for m in msgs} == {"CREATE TABLE DDL change on localhost detected"}
    assert any(d["attempts"] > 1 for d in deliveries(db))


def _notify_process(cfg_dsn: str, sink: SmtpSink, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "AUDITOR_NOTIFY_RETRY_INITIAL": "0.2",
        "AUDITOR_NOTIFY_RETRY_MAX": "1",
        "AUDITOR_NOTIFY_BATCH_SIZE": "25",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "auditor", "notify", "--dsn", cfg_dsn,
         "--smtp-host", "127.0.0.1", "--smtp-port", str(sink.port),
         "--mail-to", TO, "--mail-from", FROM],
        stdout=subprocess.DEVNULL, stderr=log.open("ab"), env=env,
    )  # fmt: skip


def test_worker_killed_mid_batch_loses_nothing_and_repeats_nothing_it_knows(
    db, smtp_sink, tmp_path
) -> None:
    """SIGKILL three times in the middle of a batch, then let it finish.

    Nothing is lost, and nothing the worker recorded as delivered is sent again.
    The one thing no SMTP client can know is whether a server that stored a message
    got to tell it so before the client died (RFC 1047): such a message is sent
    again, byte for byte the same (same Message-ID, same boundary, same Date), at most
    one per sender lane and kill; the receiving side can drop it by its Message-ID.
    The kills here come right after the server stored a message: the worst moment.
    """
    capture.install(db.dsn())
    smtp_sink.delay = 0.01  # a relay that takes its time: kills land mid-conversation
    statements = 120
    with db.connect() as conn:
        for i in range(statements):
            conn.execute(f"CREATE TABLE killed_{i} (id int)")
    log = tmp_path / "notify.log"
    kills = 0
    for target in (20, 55, 90):
        proc = _notify_process(db.dsn(), smtp_sink, log)
        try:
            wait_until(lambda t=target: len(smtp_sink.paths()) >= t, timeout=60, what="mails")
            proc.send_signal(signal.SIGKILL)
            kills += 1
        finally:
            proc.wait(30)
        assert proc.returncode == -signal.SIGKILL
        undelivered = [d for d in deliveries(db) if d["status"] != "delivered"]
        assert undelivered, "the worker was not killed mid-batch"
    proc = _notify_process(db.dsn(), smtp_sink, log)
    try:
        wait_until(
            lambda: (
                len(deliveries(db)) == statements
                and all(d["status"] == "delivered" for d in deliveries(db))
            ),
            timeout=90,
        )
        time.sleep(1.0)
    finally:
        proc.terminate()
        proc.wait(30)
    assert proc.returncode == 0, log.read_text()
    assert kills == 3
    recorded = {d["message_id"] for d in deliveries(db)}
    by_id: dict[str, list[bytes]] = {}
    for path, msg in zip(smtp_sink.paths(), smtp_sink.messages(), strict=True):
        by_id.setdefault(msg["Message-ID"], []).append(path.read_bytes())
    assert set(by_id) == recorded  # nothing lost, nothing foreign
    repeats = {k: v for k, v in by_id.items() if len(v) > 1}
    senders = notify.WorkerSettings().senders
    assert sum(len(v) - 1 for v in repeats.values()) <= kills * senders, repeats.keys()
    for copies in repeats.values():
        assert all(c == copies[0] for c in copies)  # byte for byte the same message


def test_postgres_restart_under_the_worker(smtp_sink) -> None:
    with TempCluster() as c:
        c.execute("CREATE DATABASE restarted")
        dsn = c.dsn("restarted")
        capture.install(dsn)
        with worker(config(dsn, smtp_sink)):
            c.execute("CREATE TABLE before_restart (id int)", dbname="restarted")
            smtp_sink.wait_for(1)
            c.restart()
            c.execute("CREATE TABLE after_restart (id int)", dbname="restarted")
            c.restart()  # and once more, while the worker may be reconnecting
            c.execute("CREATE TABLE after_second_restart (id int)", dbname="restarted")
            smtp_sink.wait_for(3, timeout=60)
            time.sleep(1.0)
        subjects = [
            text_part(m)
            for m in sorted(
                smtp_sink.messages(), key=lambda m: int(m["X-Auditor-Events"].split("-")[0])
            )
        ]
        assert len(subjects) == 3
        for name, body in zip(
            ("before_restart", "after_restart", "after_second_restart"), subjects, strict=True
        ):
            assert f"public.{name}" in body
        with c.connect("restarted") as conn:
            states = conn.execute("SELECT status FROM auditor.deliveries").fetchall()
        assert states == [("delivered",)] * 3


def test_a_long_open_transaction_is_mailed_when_it_commits(db, smtp_sink) -> None:
    """Its row id is drawn early and stays invisible while the worker moves on."""
    capture.install(db.dsn())
    with worker(config(db.dsn(), smtp_sink, **{"notify.poll_interval": 0.2})):
        slow = db.connect(autocommit=False)
        try:
            slow.execute("CREATE TABLE slow_one (id int)")  # the first row id, not committed
            time.sleep(1.5)  # several polls and probes while it is the newest xid
            db.run("CREATE TABLE fast_one (id int)")
            smtp_sink.wait_for(1)
            time.sleep(1.5)  # more polls: the scan position moves past the open transaction
            slow.commit()
        finally:
            slow.close()
        smtp_sink.wait_for(2)
        time.sleep(0.5)
    msgs = assert_exactly_once(smtp_sink, db, 2)
    assert sorted("slow_one" in text_part(m) for m in msgs) == [False, True]


def test_all_databases_never_holds_template1_open(smtp_sink) -> None:
    """New databases are copied from template1, which refuses a copy while in use."""
    with TempCluster() as c:
        capture.install(c.dsn(), all_databases=True)
        cfg = config(c.dsn(), smtp_sink, all_databases=True, **{"notify.poll_interval": 0.5})
        with worker(cfg):
            for i in range(3):
                c.execute(f"CREATE DATABASE born_{i}")  # would fail after 5 s of a held template1
                time.sleep(0.7)
            c.execute("CREATE TABLE in_template (id int)", dbname="template1")
            c.execute("CREATE TABLE in_postgres (id int)")
            msgs = smtp_sink.wait_for(2)
            time.sleep(0.5)
        bodies = sorted(m["X-Auditor-Database"] for m in msgs)
        assert bodies == ["postgres", "template1"]


def test_two_workers_never_send_a_mail_twice(db, smtp_sink) -> None:
    capture.install(db.dsn())
    cfg = config(db.dsn(), smtp_sink)
    with worker(cfg), worker(cfg):
        with db.connect() as conn:
            for i in range(40):
                conn.execute(f"CREATE TABLE twice_{i} (id int)")
        # and a cron --once next to both
        notify.deliver_pending(cfg)
        smtp_sink.wait_for(40)
        time.sleep(1.0)
    assert_exactly_once(smtp_sink, db, 40)


def test_rolled_back_ddl_is_never_mailed(db, smtp_sink) -> None:
    capture.install(db.dsn())
    with db.connect(autocommit=False) as conn:
        conn.execute("CREATE TABLE never_committed (id int)")
        conn.rollback()
        conn.execute("BEGIN")
        conn.execute("SAVEPOINT s")
        conn.execute("CREATE TABLE in_savepoint (id int)")
        conn.execute("ROLLBACK TO SAVEPOINT s")
        conn.execute("CREATE TABLE kept (id int)")
        conn.commit()
    notify.deliver_pending(config(db.dsn(), smtp_sink))
    (msg,) = smtp_sink.messages()
    assert "public.kept" in text_part(msg)
    assert "never_committed" not in text_part(msg) and "in_savepoint" not in text_part(msg)


# -- --once, status and failures --------------------------------------------------------


def test_once_for_cron_and_status(db, smtp_sink) -> None:
    capture.install(db.dsn())
    db.run("CREATE TABLE cron_a (id int)")
    base = ["notify", "--dsn", db.dsn(), "--once", "--smtp-host", "127.0.0.1",
            "--smtp-port", str(smtp_sink.port), "--mail-to", TO]  # fmt: skip
    smtp_sink.stop()
    result = runner.invoke(app, base)
    assert result.exit_code == 1, result.output
    assert "1 still undelivered" in result.output and "Connection refused" in result.output
    status = capture.status(db.dsn(), databases=[db.name])
    assert status.databases[0].mail is not None and status.databases[0].mail.pending == 1
    smtp_sink.start()
    result = runner.invoke(app, base)
    assert result.exit_code == 0, result.output
    assert "1 mail(s) delivered" in result.output and "0 still undelivered" in result.output
    result = runner.invoke(app, ["status", "--dsn", db.dsn(), "--database", db.name])
    assert result.exit_code == 0, result.output
    assert "mail: 1 delivered, 0 pending, 0 failing" in result.output
    result = runner.invoke(
        app,
        [
            "notify",
            "--dsn",
            db.dsn().replace(f"port={db.cluster.port}", "port=1"),
            "--once",
            "--mail-to",
            TO,
        ],
    )
    assert result.exit_code == 2 and result.output.count("\n") == 1, result.output
    assert "cannot connect" in result.output and "Traceback" not in result.output


def test_one_worker_serves_several_databases(db, smtp_sink) -> None:
    other = f"{db.name}_b"
    with db.cluster.connect() as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(other)))
    try:
        for name in (db.name, other):
            capture.install(db.cluster.dsn(name))
            db.cluster.execute(f"CREATE TABLE in_{name} (id int)", dbname=name)
        cfg = config(db.dsn(), smtp_sink, databases=[db.name, other])
        report = notify.deliver_pending(cfg)
        assert [d.database for d in report.databases] == [db.name, other]
        assert report.exit_code == 0
        assert sorted(m["X-Auditor-Database"] for m in smtp_sink.messages()) == [db.name, other]
    finally:
        with db.cluster.connect() as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(other))
            )


def test_a_mail_that_keeps_failing_is_kept_and_reported(db, smtp_sink) -> None:
    capture.install(db.dsn())
    db.run("CREATE TABLE refused_by_relay (id int)")
    smtp_sink.reject = "550 5.7.1 relaying denied for this sender"
    cfg = config(db.dsn(), smtp_sink, **{"notify.failing_after": 2})
    for _ in range(2):
        report = notify.deliver_pending(cfg)
        assert report.exit_code == 1
    (delivery,) = deliveries(db)
    assert delivery["status"] == "failing" and delivery["attempts"] == 2
    assert "550 5.7.1 relaying denied" in delivery["last_error"]
    result = runner.invoke(app, ["status", "--dsn", db.dsn(), "--database", db.name])
    assert result.exit_code == 1, result.output
    assert "1 DDL mail(s) keep failing" in result.output
    assert "550 5.7.1 relaying denied" in result.output
    assert "WEAKENED" in result.output
    smtp_sink.reject = None
    report = notify.deliver_pending(cfg)
    assert report.exit_code == 0
    assert_exactly_once(smtp_sink, db, 1)
    assert capture.status(db.dsn(), databases=[db.name]).exit_code == 0


def test_smtp_login_over_starttls_and_tls_never_shows_the_password(db, tmp_path, tls_cert) -> None:
    cert, key = tls_cert
    capture.install(db.dsn())
    secret = "pw-Zq81-never-shown"
    for security in ("starttls", "tls"):
        db.run(f"CREATE TABLE login_{security} (id int)")
        with SmtpSink(
            tmp_path / security, security=security, certfile=cert, keyfile=key,
            login=("auditor", secret),
        ) as sink:  # fmt: skip
            args = [sys.executable, "-m", "auditor", "notify", "--dsn", db.dsn(), "--once",
                    "--smtp-host", "127.0.0.1", "--smtp-port", str(sink.port),
                    "--smtp-security", security, "--smtp-user", "auditor", "--mail-to", TO]  # fmt: skip
            env = {**os.environ, "AUDITOR_SMTP_CA_FILE": str(cert)}
            wrong = subprocess.run(
                args, env={**env, "AUDITOR_SMTP_PASSWORD": secret + "-wrong"},
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert wrong.returncode == 1, wrong.stdout + wrong.stderr
            assert "535" in wrong.stdout  # authentication failed, said once, no secret
            assert secret not in wrong.stdout + wrong.stderr
            right = subprocess.run(
                args, env={**env, "AUDITOR_SMTP_PASSWORD": secret},
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert right.returncode == 0, right.stdout + right.stderr
            assert secret not in right.stdout + right.stderr
            assert len(sink.messages()) == 1
    for d in deliveries(db):
        assert secret not in (d["last_error"] or "")
    status = runner.invoke(app, ["status", "--dsn", db.dsn(), "--database", db.name])
    assert secret not in status.output


def test_send_report_attaches_the_html(smtp_sink) -> None:
    cfg = load_config(
        {"mail_to": [TO], "smtp.host": "127.0.0.1", "smtp.port": smtp_sink.port}, environ={}
    )
    html = b"<!DOCTYPE html><title>report</title><p>3 findings</p>"
    message_id = mail.send_report(cfg, "auditor: 3 findings on db1", "3 findings\n", html)
    (msg,) = smtp_sink.messages()
    assert msg["Message-ID"] == message_id and msg["Subject"] == "auditor: 3 findings on db1"
    (att,) = list(msg.iter_attachments())
    assert att.get_filename() == "report.html" and att.get_content().encode() == html
    smtp_sink.stop()
    with pytest.raises(MailError, match="Connection refused") as err:
        mail.send_report(cfg, "s", "t", html)
    assert "\n" not in str(err.value)


# -- in-database mode and strict mode ---------------------------------------------------


def plpython_install(db: Any, sink: SmtpSink, *, strict: bool = False, **flags: Any) -> Config:
    if not db.cluster.has_plpython:
        pytest.skip("plpython3u is not installed here")
    cfg = config(db.dsn(), sink, mail_mode="plpython", strict=strict, **flags)
    capture.install(
        db.dsn(),
        mail=outbox.MailInstall(mode="plpython", strict=strict, settings=mail.mail_settings(cfg)),
    )
    return cfg


def test_plpython_mode_mails_from_inside_the_server(db, smtp_sink) -> None:
    plpython_install(db, smtp_sink)
    db.run("CREATE TABLE from_inside (id int)")
    # no worker runs: the server itself mailed it, before the commit returned
    (msg,) = smtp_sink.messages()
    assert msg["Subject"] == "CREATE TABLE DDL change on localhost detected"
    (delivery,) = deliveries(db)
    assert delivery["mode"] == "plpython" and delivery["status"] == "delivered"
    assert msg["Message-ID"] == delivery["message_id"]
    text = text_part(msg)
    assert f"Server:        localhost (127.0.0.1), port {db.cluster.port}" in text
    assert "  CREATE TABLE  table  public.from_inside" in text
    db.run("CREATE EXTENSION citext; CREATE TABLE after_ext (id int)")
    msgs = smtp_sink.messages()
    assert [m["Subject"].split(" DDL")[0] for m in msgs[1:]] == ["CREATE EXTENSION", "CREATE TABLE"]
    with db.connect(autocommit=False) as conn:
        conn.execute("CREATE TABLE rolled_back (id int)")
        conn.rollback()
    assert len(smtp_sink.messages()) == 3
    # the same words as auditor notify would have written
    assert capture.status(db.dsn(), databases=[db.name]).exit_code == 0
    # a worker running next to it sends nothing again
    assert notify.deliver_pending(config(db.dsn(), smtp_sink)).exit_code == 0
    assert len(smtp_sink.messages()) == 3


def test_plpython_mode_mails_the_ddl_of_an_ordinary_role(db, smtp_sink) -> None:
    role = db.create_role("mail_plpy_app")  # before install: its GRANT is not mailed
    plpython_install(db, smtp_sink, strict=True)
    db.run("CREATE TABLE by_app (id int)", role=role)
    (msg,) = smtp_sink.messages()
    text = text_part(msg)
    assert f"Session user:  {role}" in text and "public.by_app" in text
    with db.connect(role) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT auditor.send_mails(1, 1)")  # only the trigger may run it


def test_strict_mode_refuses_ddl_while_smtp_is_down(db, smtp_sink) -> None:
    plpython_install(db, smtp_sink, strict=True)
    with db.connect() as conn:
        before = conn.execute("SELECT count(*) FROM auditor.events").fetchone()
    smtp_sink.stop()
    with pytest.raises(psycopg.Error) as refused:
        db.run("CREATE TABLE refused_while_down (id int)")
    message = refused.value.diag.message_primary or ""
    assert message.startswith(
        "auditor: strict mode: the report of CREATE TABLE could not be mailed"
    )
    assert "Connection refused" in message and "so the command is refused" in message
    with db.connect() as conn:
        # nothing half-recorded: no table, no audit row, no delivery
        assert conn.execute("SELECT to_regclass('public.refused_while_down')").fetchone() == (None,)
        assert conn.execute("SELECT count(*) FROM auditor.events").fetchone() == before
        assert conn.execute("SELECT count(*) FROM auditor.deliveries").fetchone() == (0,)
    smtp_sink.start()
    db.run("CREATE TABLE refused_while_down (id int)")
    (msg,) = smtp_sink.messages()
    assert "public.refused_while_down" in text_part(msg)
    assert_exactly_once(smtp_sink, db, 1)


def test_plpython_without_strict_keeps_a_failed_mail_for_notify(db, smtp_sink) -> None:
    plpython_install(db, smtp_sink)
    smtp_sink.stop()
    warnings: list[str] = []
    with db.connect() as conn:
        conn.add_notice_handler(lambda d: warnings.append(d.message_primary or ""))
        conn.execute("CREATE TABLE while_down (id int)")
    assert any("could not be mailed" in w and "pending" in w for w in warnings), warnings
    (delivery,) = deliveries(db)
    assert delivery["status"] == "pending" and "Connection refused" in delivery["last_error"]
    smtp_sink.start()
    report = notify.deliver_pending(config(db.dsn(), smtp_sink))
    assert report.exit_code == 0, notify.format_report(report)
    (msg,) = assert_exactly_once(smtp_sink, db, 1)
    assert "public.while_down" in text_part(msg)


def test_strict_needs_plpython(db) -> None:
    with pytest.raises(ConfigError, match="--strict needs --mail-mode plpython"):
        capture.install(db.dsn(), mail=outbox.MailInstall(mode="outbox", strict=True))
    result = runner.invoke(app, ["install", "--dsn", db.dsn(), "--strict", "--mail-to", TO])
    assert result.exit_code == 2 and "--strict needs --mail-mode plpython" in result.output
    result = runner.invoke(app, ["install", "--dsn", db.dsn(), "--mail-mode", "plpython"])
    assert result.exit_code == 2 and "no recipients: give --mail-to" in result.output


def test_plpython_install_never_prints_the_password_and_uninstalls_cleanly(
    db, smtp_sink, tmp_path
) -> None:
    if not db.cluster.has_plpython:
        pytest.skip("plpython3u is not installed here")

    def extensions() -> list[Any]:
        with db.connect() as conn:
            return conn.execute("SELECT extname FROM pg_extension ORDER BY 1").fetchall()

    before, before_ext = snapshot(db.cluster, db.name), extensions()
    secret = "smtp-Pw-4711"
    args = ["install", "--dsn", db.dsn(), "--mail-mode", "plpython", "--mail-to", TO,
            "--smtp-host", "127.0.0.1", "--smtp-port", str(smtp_sink.port),
            "--smtp-user", "auditor"]  # fmt: skip
    env = {"AUDITOR_SMTP_PASSWORD": secret}
    dry = runner.invoke(app, [*args, "--dry-run"], env=env)
    assert dry.exit_code == 0, dry.output
    assert secret not in dry.output and "it is never printed" in dry.output
    assert "LANGUAGE plpython3u" in dry.output
    assert snapshot(db.cluster, db.name) == before and extensions() == before_ext
    done = runner.invoke(app, args, env=env)
    assert done.exit_code == 0 and secret not in done.output
    with db.connect() as conn:
        assert conn.execute("SELECT smtp_password FROM auditor.mail_config").fetchone() == (secret,)
        # only superusers can read it: PUBLIC and the reader get nothing on mail_config
        acl = conn.execute(
            "SELECT relacl::text FROM pg_class WHERE oid = 'auditor.mail_config'::regclass"
        ).fetchone()
    assert acl is not None and "=r" not in str(acl[0])
    again = runner.invoke(app, args, env=env)
    assert again.exit_code == 0
    assert capture.status(db.dsn(), databases=[db.name]).exit_code == 0
    removed = runner.invoke(app, ["uninstall", "--dsn", db.dsn()])
    assert removed.exit_code == 0, removed.output
    assert snapshot(db.cluster, db.name) == before
    assert extensions() == before_ext  # plpython3u was created by install, so it went too


def test_status_sees_a_disabled_mail_trigger(db, smtp_sink) -> None:
    plpython_install(db, smtp_sink)
    db.run("ALTER TABLE auditor.events DISABLE TRIGGER events_mail")
    status = capture.status(db.dsn(), databases=[db.name])
    assert status.exit_code == 1
    assert any(
        "events_mail on auditor.events is disabled" in str(p) for p in status.databases[0].problems
    )


@pytest.fixture(scope="module")
def bindir_without_plpython() -> Iterator[Path]:
    """A copy of the server binaries whose share directory lacks plpython3u."""
    real = TempCluster().bindir
    root = Path(tempfile.mkdtemp(prefix="auditor-no-plpython-"))
    try:
        major = real.parent.name
        share = Path(f"/usr/share/postgresql/{major}")
        if not (share / "extension").is_dir() or real.parent.parent.name != "postgresql":
            yield _relocatable_copy_without_plpython(real, root)
            return
        bin_ = root / "lib/postgresql" / major / "bin"
        lib = root / "lib/postgresql" / major / "lib"
        bin_.mkdir(parents=True)
        lib.mkdir(parents=True)
        for name in ("postgres", "initdb", "pg_ctl"):
            shutil.copy2(real / name, bin_ / name)
        for p in (real.parent / "lib").iterdir():
            (lib / p.name).symlink_to(p)
        shutil.copytree(
            share,
            root / "share/postgresql" / major,
            symlinks=True,
            ignore=lambda d, names: [n for n in names if n.startswith("plpython")],
        )
        for d, _, _ in os.walk(root):
            os.chmod(d, 0o755)
        yield bin_
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _relocatable_copy_without_plpython(real: Path, root: Path) -> Path:
    """The same for a relocatable build (PyPI's and npm's: ``bin/ lib/ share/`` under one
    prefix, found from the binary's own path): the three programs copied, every other file
    a symlink, every ``plpython*`` file left out."""
    prefix = real.parent
    if not (prefix / "share").is_dir() or not (prefix / "lib").is_dir():
        pytest.skip(f"{prefix}: neither the Debian layout nor bin/ lib/ share/ under one prefix")
    shutil.copytree(
        prefix,
        root / "pg",
        symlinks=True,
        ignore=lambda d, names: [n for n in names if n.startswith("plpython")],
        copy_function=os.symlink,
    )
    bin_ = root / "pg" / real.name
    for name in ("postgres", "initdb", "pg_ctl"):
        (bin_ / name).unlink()
        shutil.copy2(real / name, bin_ / name)
    for d, _, _ in os.walk(root):
        os.chmod(d, 0o755)
    return bin_


def test_install_says_so_where_plpython_is_missing_and_changes_nothing(
    bindir_without_plpython, tmp_path
) -> None:
    with TempCluster(bindir=bindir_without_plpython) as c:
        assert not c.has_plpython
        c.execute("CREATE DATABASE nopy")
        before = snapshot(c, "nopy")
        result = runner.invoke(
            app, ["install", "--dsn", c.dsn("nopy"), "--mail-mode", "plpython", "--mail-to", TO]
        )
        assert result.exit_code == 2
        assert result.output.count("\n") == 1 and "Traceback" not in result.output
        assert "plpython3u is not available on this server" in result.output
        assert "nothing was changed" in result.output
        assert snapshot(c, "nopy") == before
        with pytest.raises(InstallError):
            capture.install(
                c.dsn("nopy"),
                mail=outbox.MailInstall(
                    mode="plpython",
                    settings=mail.mail_settings(load_config({"mail_to": [TO]}, environ={})),
                ),
            )
        # outbox mode needs nothing of the kind
        capture.install(c.dsn("nopy"))


def test_notify_role_runs_the_worker_without_superuser(db, smtp_sink) -> None:
    role = "mail_notify_role"
    db.roles.append(role)
    login = db.create_role("mail_notify_login")
    capture.install(db.dsn(), mail=outbox.MailInstall(mode="outbox", notify_role=role))
    with db.cluster.connect() as conn:
        conn.execute(sql.SQL("GRANT {} TO {}").format(sql.Identifier(role), sql.Identifier(login)))
    db.run("CREATE TABLE by_notify_role (id int)")
    report = notify.deliver_pending(config(db.dsn(login), smtp_sink))
    assert report.exit_code == 0, notify.format_report(report)
    assert_exactly_once(smtp_sink, db, 1)
    with db.connect(login) as conn, pytest.raises(psycopg.errors.InsufficientPrivilege):
        conn.execute("SELECT smtp_password FROM auditor.mail_config")
    capture.uninstall(db.dsn())
    with db.cluster.connect() as conn:
        assert conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [role]).fetchone() is None
