"""``auditor timeline`` on a real cluster: the story of one object across both channels.

The scenario of issue 6 is really played (create, alter, rename, DDL from a
DO block, trigger disabled and the table altered behind its back, trigger
re-enabled, drop), next to an unrelated table whose steps must stay out; the
timeline is then read from the cluster's real logs and audit table, through
the library and through the command line in all three formats.
"""

from __future__ import annotations

import csv
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import psycopg
import psycopg.sql
import pytest
from typer.testing import CliRunner

from auditor import capture
from auditor.cli import app
from auditor.config import load_config
from auditor.errors import ConfigError
from auditor.model import FindingClass
from auditor.reconcile import analyse
from auditor.timeline import (
    NOT_IN_LOG,
    NOT_READ,
    Timeline,
    TimelineStep,
    render_table,
    timeline,
)
from tests.conftest import TestDB

C = FindingClass
runner = CliRunner()

TRIGGER = "auditor_ddl_command_end"


@dataclass
class Played:
    """What the scenario did, to compare the timeline with."""

    db: TestDB
    t0: datetime
    session: str  # the session that disabled the trigger and altered behind its back
    mallory: str

    def flags(self, **extra: Any) -> dict[str, Any]:
        self.db.cluster.flush_logs()
        flags: dict[str, Any] = {
            "dsn": self.db.dsn(),
            "logs": [str(self.db.cluster.log_dir)],
            "since": self.t0.isoformat(),
            "databases": [self.db.name],
        }
        flags.update(extra)
        return flags

    def timeline(self, **kw: Any) -> Timeline:
        return timeline(load_config(self.flags(), environ={}), **kw)

    def cli(self, *args: str) -> Any:
        self.db.cluster.flush_logs()
        argv = [
            "timeline",
            "--dsn",
            self.db.dsn(),
            "--log",
            str(self.db.cluster.log_dir),
            "--since",
            self.t0.isoformat(),
            "--database",
            self.db.name,
            *args,
        ]
        return runner.invoke(app, argv, env={"COLUMNS": "100"})


def session_id(conn: psycopg.Connection[Any]) -> str:
    row = conn.execute(
        "SELECT to_hex(trunc(extract(epoch FROM backend_start))::bigint) || '.' || to_hex(pid) "
        "FROM pg_stat_activity WHERE pid = pg_backend_pid()"
    ).fetchone()
    assert row is not None
    return str(row[0])


@pytest.fixture
def played(db: TestDB) -> Iterator[Played]:
    """The issue's scenario, with an unrelated table interleaved and one evil session."""
    capture.install(db.dsn(), databases=[db.name])
    mallory = db.create_role("mallory", superuser=True)
    time.sleep(0.01)
    t0 = datetime.now(UTC)
    db.run("CREATE TABLE accounts (id serial PRIMARY KEY, owner text)", app="dev")
    db.run("CREATE TABLE unrelated (id int)", app="dev")
    db.run("ALTER TABLE accounts ADD COLUMN balance numeric", app="dev")
    db.run("ALTER TABLE accounts RENAME TO ledger", app="dev")
    db.run("ALTER TABLE unrelated ADD COLUMN note text", app="dev")
    db.run(
        "DO $$ BEGIN EXECUTE 'ALTER TABLE ledger ADD COLUMN memo text'; END $$",
        role=mallory,
        app="evil",
    )
    db.run(f"ALTER ROLE {mallory} PASSWORD 'hunter2-secret'", app="dev")
    try:
        with db.connect(mallory, application_name="evil") as conn:
            sid = session_id(conn)
            cur = psycopg.ClientCursor(conn)  # simple protocol, like psql
            cur.execute(f"ALTER EVENT TRIGGER {TRIGGER} DISABLE")
            cur.execute("ALTER TABLE ledger ADD COLUMN hidden int")
            cur.execute("ALTER TABLE ledger ALTER COLUMN memo TYPE varchar(200)")  # rewrites
            cur.execute("ALTER TABLE unrelated ADD COLUMN sneaky int")
            cur.execute(f"ALTER EVENT TRIGGER {TRIGGER} ENABLE ALWAYS")
    except BaseException:
        # The database is dropped after the test, but never leave a trigger off.
        db.run(f"ALTER EVENT TRIGGER {TRIGGER} ENABLE ALWAYS", app="cleanup")
        raise
    db.run("CREATE TABLE later (id int)", app="dev")
    db.run("DROP TABLE ledger", app="dev")
    db.run("DROP TABLE unrelated", app="dev")
    yield Played(db, t0, sid, mallory)


def statements(steps: tuple[TimelineStep, ...]) -> list[str | None]:
    return [s.log.statement if s.log else None for s in steps]


def classes(steps: tuple[TimelineStep, ...]) -> list[str | None]:
    return [s.finding.cls.value if s.finding else None for s in steps]


#: The object's story: (statement in the log or None, finding class or None).
STORY = [
    ("CREATE TABLE accounts (id serial PRIMARY KEY, owner text)", None),
    ("ALTER TABLE accounts ADD COLUMN balance numeric", None),
    ("ALTER TABLE accounts RENAME TO ledger", None),
    (None, C.INDIRECT_DDL),  # the DO block: audit row only
    (f"ALTER EVENT TRIGGER {TRIGGER} DISABLE", C.EVENT_TRIGGER_DDL),
    ("ALTER TABLE ledger ADD COLUMN hidden int", C.UNREPORTED_DDL),
    ("ALTER TABLE ledger ALTER COLUMN memo TYPE varchar(200)", C.UNREPORTED_DDL),
    (f"ALTER EVENT TRIGGER {TRIGGER} ENABLE ALWAYS", C.EVENT_TRIGGER_DDL),
    ("DROP TABLE ledger", None),
]


def assert_story(steps: tuple[TimelineStep, ...]) -> None:
    assert list(zip(statements(steps), classes(steps), strict=True)) == [
        (text, cls.value if cls else None) for text, cls in STORY
    ]
    assert [s.n for s in steps] == list(range(1, len(steps) + 1))
    times = [s.time for s in steps]
    assert all(t is not None for t in times)
    assert times == sorted(times)  # type: ignore[type-var]


def test_object_story_follows_the_rename_in_order_with_the_classes(played: Played) -> None:
    tl = played.timeline(object_name="ledger")
    assert_story(tl.steps)
    steps = tl.steps
    # Matched steps: the log record and the trigger's rows, no finding.
    create = steps[0]
    assert create.channels == ("log", "marker", "audit") and create.finding is None
    assert create.log is not None and create.log.line and create.log.file
    assert create.log.user == "postgres" and create.log.application == "dev"
    assert "public.accounts" in create.rows[0].objects and create.rows[0].status == "row"
    assert create.rows[0].marker is not None
    # Before the rename the object was called accounts: those steps only mention it.
    assert "ledger" not in (steps[1].log.statement if steps[1].log else "")
    assert steps[2].rows[0].objects == ("public.ledger",)
    assert "public.accounts -> public.ledger" in steps[2].summary
    # The DO block: no statement line (DO is not logged under 'ddl'), the row has it.
    do = steps[3]
    assert do.log is None and do.finding is not None
    assert do.rows[0].objects == ("public.ledger",) and do.rows[0].session_user == "mallory"
    assert do.rows[0].query is not None and do.rows[0].query.startswith("DO $$")
    assert do.rows[0].caller is not None and "EXECUTE" in do.rows[0].caller
    # The trigger was off: the plain ALTER left no row at all; the rewriting one left
    # only its table_rewrite row (the other event triggers still fired).
    hidden, rewrite = steps[5], steps[6]
    assert hidden.rows == () and hidden.audit_text == "no row"
    assert [r.event for r in rewrite.rows] == ["table_rewrite"]
    assert rewrite.finding is not None and rewrite.finding.audit_event_ids == (rewrite.rows[0].id,)
    # Disabling the auditor's own trigger is critical, and context for this story.
    disable = steps[4]
    assert disable.finding is not None and disable.finding.severity.value == "critical"
    assert disable.context and not hidden.context
    assert hidden.log is not None and hidden.log.session_id == played.session
    # The drop pairs with its sql_drop and ddl_command_end rows again.
    drop = steps[-1]
    assert drop.finding is None
    assert {r.event for r in drop.rows} == {"sql_drop", "ddl_command_end"}
    assert "public.ledger" in {o for r in drop.rows for o in r.objects}
    # The unrelated table never shows, not even in the session that hid the ALTERs.
    everything = json.dumps([s.to_dict() for s in steps])
    assert "unrelated" not in everything and "later" not in everything
    # The names the object was followed under.
    assert tl.names[0] == "ledger"
    assert any(n.startswith("public.accounts (until step 3)") for n in tl.names)


def test_the_old_name_and_the_qualified_name_tell_the_same_story(played: Played) -> None:
    by_old = played.timeline(object_name="accounts")
    by_qualified = played.timeline(object_name="PUBLIC.Ledger")  # unquoted: folded
    assert_story(by_old.steps)
    assert_story(by_qualified.steps)
    assert by_qualified.object_name == "public.ledger"
    # A table of the same name in another schema: only the step with no audit row to
    # say which schema its unqualified "ledger" meant could be it (and its context).
    elsewhere = played.timeline(object_name="other_schema.ledger")
    assert [(s.log.statement if s.log else None, s.context) for s in elsewhere.steps] == [
        (f"ALTER EVENT TRIGGER {TRIGGER} DISABLE", True),
        ("ALTER TABLE ledger ADD COLUMN hidden int", False),
    ]


def test_unrelated_object_has_its_own_story(played: Played) -> None:
    tl = played.timeline(object_name="unrelated")
    assert statements(tl.steps) == [
        "CREATE TABLE unrelated (id int)",
        "ALTER TABLE unrelated ADD COLUMN note text",
        f"ALTER EVENT TRIGGER {TRIGGER} DISABLE",
        "ALTER TABLE unrelated ADD COLUMN sneaky int",
        f"ALTER EVENT TRIGGER {TRIGGER} ENABLE ALWAYS",
        "DROP TABLE unrelated",
    ]
    assert classes(tl.steps)[3] == "UNREPORTED_DDL"
    without = played.timeline(object_name="unrelated", context=False)
    assert [s for s in statements(without.steps) if s and "EVENT TRIGGER" in s] == []


def test_user_filter(played: Played) -> None:
    tl = played.timeline(object_name="ledger", user="mallory")
    # Filters combine with AND: mallory's steps on the table; the DISABLE does not
    # name the table, it is shown as context (it explains what follows), and the
    # ENABLE after the table's last step is not.
    assert [(s.log.statement if s.log else None, s.context) for s in tl.steps] == [
        (None, False),  # the DO block: mallory per the audit row
        (f"ALTER EVENT TRIGGER {TRIGGER} DISABLE", True),
        ("ALTER TABLE ledger ADD COLUMN hidden int", False),
        ("ALTER TABLE ledger ALTER COLUMN memo TYPE varchar(200)", False),
    ]
    assert all(
        "mallory" in {r.session_user for r in s.rows} | {s.log and s.log.user} for s in tl.steps
    )
    everyone = played.timeline(user="mallory")
    assert "ALTER TABLE unrelated ADD COLUMN sneaky int" in statements(everyone.steps)
    assert played.timeline(user="nobody").steps == ()


def test_session_filter(played: Played) -> None:
    tl = played.timeline(session=played.session)
    assert statements(tl.steps) == [
        f"ALTER EVENT TRIGGER {TRIGGER} DISABLE",
        "ALTER TABLE ledger ADD COLUMN hidden int",
        "ALTER TABLE ledger ALTER COLUMN memo TYPE varchar(200)",
        "ALTER TABLE unrelated ADD COLUMN sneaky int",
        f"ALTER EVENT TRIGGER {TRIGGER} ENABLE ALWAYS",
    ]
    assert {s.log.session_id for s in tl.steps if s.log} == {played.session}
    both = played.timeline(session=played.session, object_name="unrelated")
    assert [(s.log.statement if s.log else None, s.context) for s in both.steps] == [
        (f"ALTER EVENT TRIGGER {TRIGGER} DISABLE", True),
        ("ALTER TABLE unrelated ADD COLUMN sneaky int", False),
    ]
    bare = played.timeline(session=played.session, object_name="unrelated", context=False)
    assert statements(bare.steps) == ["ALTER TABLE unrelated ADD COLUMN sneaky int"]


def test_reconcile_reports_an_alter_that_only_left_a_rewrite_row(played: Played) -> None:
    """Matcher fix: a statement with table_rewrite rows but no ddl_command_end firing."""
    a = analyse(load_config(played.flags(), environ={}), use_state=False)
    (f,) = [
        f
        for f in a.document.findings
        if f.statement == "ALTER TABLE ledger ALTER COLUMN memo TYPE varchar(200)"
    ]
    assert f.cls == C.UNREPORTED_DDL
    assert len(f.audit_event_ids) == 1
    assert "table_rewrite" in f.explanation and "DISABLE" in f.explanation


def test_cli_json(played: Played) -> None:
    result = played.cli("--object", "ledger", "--format", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert isinstance(data, list) and len(data) == len(STORY)
    assert [(d["log"] or {}).get("statement") for d in data] == [t for t, _ in STORY]
    assert [(d["finding"] or {}).get("class") for d in data] == [
        c.value if c else None for _, c in STORY
    ]
    do = data[3]
    assert do["log"] is None and do["audit"][0]["objects"] == ["public.ledger"]
    assert data[5]["audit"] == [] and data[5]["audit_note"] == "no row"
    assert data[0]["log"]["file"].endswith((".json", ".csv", ".log"))
    assert isinstance(data[0]["log"]["line"], int)
    assert datetime.fromisoformat(data[0]["time"]) >= played.t0
    assert all(d["finding"]["severity"] for d in data if d["finding"])


def test_cli_csv(played: Played) -> None:
    result = played.cli("--object", "ledger", "--format", "csv", "--user", "mallory")
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [r["statement"] for r in rows] == [
        "DO $$ BEGIN EXECUTE 'ALTER TABLE ledger ADD COLUMN memo text'; END $$",
        f"ALTER EVENT TRIGGER {TRIGGER} DISABLE",
        "ALTER TABLE ledger ADD COLUMN hidden int",
        "ALTER TABLE ledger ALTER COLUMN memo TYPE varchar(200)",
    ]
    assert [r["class"] for r in rows] == [
        "INDIRECT_DDL",
        "EVENT_TRIGGER_DDL",
        "UNREPORTED_DDL",
        "UNREPORTED_DDL",
    ]
    assert [r["context"] for r in rows] == ["false", "true", "false", "false"]
    assert rows[0]["log_file"] == "" and rows[0]["audit_ids"] and rows[0]["objects"]
    assert rows[2]["audit_status"] == "no row" and rows[2]["session_id"] == played.session
    assert rows[3]["audit_events"] == "table_rewrite"
    assert all(r["user"] == "mallory" for r in rows)


def test_cli_table_is_readable_at_100_columns(played: Played) -> None:
    result = played.cli("--object", "ledger")
    assert result.exit_code == 0, result.output
    out = result.stdout
    lines = out.splitlines()
    assert max(len(line) for line in lines) <= 100
    assert "\x1b[" not in out  # not a terminal: no colour codes
    assert lines[0].startswith("Timeline of object ledger: 9 step(s)")
    order = [
        "CREATE TABLE accounts",
        "RENAME TO ledger",
        "INDIRECT_DDL",
        "DISABLE",
        "UNREPORTED_DDL",
        "ADD COLUMN hidden",
        "UNREPORTED_DDL",
        "ENABLE ALWAYS",
        "DROP TABLE ledger",
    ]
    pos = 0
    for needle in order:
        pos = out.index(needle, pos) + len(needle)
    assert "unrelated" not in out
    assert "names followed: ledger; public.accounts (until step 3)" in " ".join(out.split())


def test_colour_marks_severity(played: Played) -> None:
    text = render_table(played.timeline(object_name="ledger"), width=100, color=True)
    assert "\x1b[" in text
    plain = render_table(played.timeline(object_name="ledger"), width=100, color=False)
    assert "\x1b[" not in plain and "UNREPORTED_DDL" in plain


def test_secrets_are_masked_in_every_format(played: Played) -> None:
    for fmt in ("table", "csv", "json"):
        result = played.cli("--format", fmt)
        assert result.exit_code == 0, result.output
        assert "hunter2-secret" not in result.output
        assert "ALTER ROLE mallory PASSWORD '*****'" in " ".join(result.stdout.split())


def test_bad_options_are_one_line_errors(played: Played) -> None:
    for args, needle in (
        (("--object", "a.b.c"), "give NAME or SCHEMA.NAME"),
        (("--object", '"open'), "unterminated double quote"),
        (("--format", "xml"), "--format must be table, csv or json"),
        (("--since", "yesterday"), "not an ISO-8601 time"),
    ):
        result = played.cli(*args)
        assert result.exit_code == 2, (args, result.output)
        assert needle in result.output and "Traceback" not in result.output
    missing = runner.invoke(
        app,
        ["timeline", "--dsn", played.db.dsn(), "--log", "/nonexistent/pg.log"],
    )
    assert missing.exit_code == 2 and "/nonexistent/pg.log" in missing.output


def test_renames_are_followed_both_ways_and_a_reused_name_is_another_object(
    db: TestDB,
) -> None:
    capture.install(db.dsn(), databases=[db.name])
    time.sleep(0.01)
    t0 = datetime.now(UTC)
    for query in (
        "CREATE SCHEMA app",
        "CREATE TABLE app.t (id int)",  # 2
        "ALTER TABLE app.t RENAME TO t2",  # 3
        "CREATE TABLE app.t (other int)",  # 4: a new table under the old name
        "ALTER TABLE app.t2 RENAME TO t3",  # 5
        "ALTER TABLE app.t ADD COLUMN more int",  # 6: the new one
        "ALTER SCHEMA app RENAME TO app9",  # 7
        'ALTER TABLE app9.t3 RENAME TO "T4"',  # 8
        "COMMENT ON TABLE app9.\"T4\" IS 'renamed'",  # 9
        'CREATE INDEX t4_id ON app9."T4" (id)',  # 10
        'DROP TABLE app9."T4"',  # 11
        'CREATE TABLE app9."T4" (x int)',  # 12: reuses the last name after the drop
    ):
        db.run(query, app="renames")
    played = Played(db, t0, "", "")

    def story(name: str) -> list[str | None]:
        return statements(played.timeline(object_name=name).steps)

    first_table = [
        "CREATE TABLE app.t (id int)",
        "ALTER TABLE app.t RENAME TO t2",
        "ALTER TABLE app.t2 RENAME TO t3",
        "ALTER SCHEMA app RENAME TO app9",
        'ALTER TABLE app9.t3 RENAME TO "T4"',
        "COMMENT ON TABLE app9.\"T4\" IS 'renamed'",
        'CREATE INDEX t4_id ON app9."T4" (id)',
        'DROP TABLE app9."T4"',
    ]
    # From the middle name, the newest name (quoted, case kept) or the index's table:
    # the whole life of the first table, not the second app.t nor the later "T4".
    assert story("app.t2") == first_table
    assert story('app9."T4"') == [*first_table, 'CREATE TABLE app9."T4" (x int)']
    assert story("t3") == first_table
    # The schema rename moves the names forward: app.t3 becomes app9.t3.
    assert story("app9.t3") == first_table
    # The first name itself: both tables that bore it, and the first one's later names.
    assert story("app.t") == [
        "CREATE TABLE app.t (id int)",
        "ALTER TABLE app.t RENAME TO t2",
        "CREATE TABLE app.t (other int)",
        "ALTER TABLE app.t2 RENAME TO t3",
        "ALTER TABLE app.t ADD COLUMN more int",
        "ALTER SCHEMA app RENAME TO app9",
        'ALTER TABLE app9.t3 RENAME TO "T4"',
        "COMMENT ON TABLE app9.\"T4\" IS 'renamed'",
        'CREATE INDEX t4_id ON app9."T4" (id)',
        'DROP TABLE app9."T4"',
    ]
    # Unquoted T4 is t4: another name (only the index named t4_id mentions nothing).
    assert story("app9.T4") == []


def test_reconcile_reports_a_deleted_row_whose_sibling_row_survives(db: TestDB) -> None:
    """Matcher fix: DROP TABLE writes a sql_drop and a ddl_command_end row; deleting
    only the ddl_command_end row must not leave the statement 'matched'."""
    capture.install(db.dsn(), databases=[db.name])
    db.run("CREATE TABLE victim (id int)", app="dev")
    time.sleep(0.01)
    t0 = datetime.now(UTC)
    db.run("DROP TABLE victim", app="dev")
    rows = db.run("SELECT id, event FROM auditor.events WHERE command_tag = 'DROP TABLE'")
    end = [i for i, event in rows if event == "ddl_command_end"]
    assert len(rows) == 2 and len(end) == 1
    db.run(
        "ALTER TABLE auditor.events DISABLE TRIGGER events_append_only;"
        f"DELETE FROM auditor.events WHERE id = {end[0]};"
        "ALTER TABLE auditor.events ENABLE ALWAYS TRIGGER events_append_only",
        app="cleaner",
    )
    played = Played(db, t0, "", "")
    a = analyse(load_config(played.flags(), environ={}), use_state=False)
    (f,) = [f for f in a.document.findings if f.statement == "DROP TABLE victim"]
    assert f.cls == C.AUDIT_ROW_MISSING
    assert str(end[0]) in f.explanation
    # The tampering came after the object's last step; it is shown as context.
    step, tampering = played.timeline(object_name="victim").steps
    assert step.finding is not None and step.finding.cls == C.AUDIT_ROW_MISSING
    assert tampering.context and tampering.finding is not None
    assert tampering.finding.cls == C.CONFIG_DRIFT and tampering.log is not None
    assert tampering.log.application == "cleaner"
    assert {(r.event, r.status) for r in step.rows} == {
        ("sql_drop", "row"),
        ("ddl_command_end", "row gone"),
    }
    assert "gone" in step.audit_text


# -- names as PostgreSQL writes them ---------------------------------------------------

#: Names whose quoting is the same on every supported server.
TRICKY = [
    "a.b", 'x"y', "Upper", "Upper Case", "select", "user", "order", "name", "my table",
    "café", "ÉCOLE", "日本", "a$b", "_x", "1abc", "int", "between", "left", "tab\there",
    "e\u0301", "merge", "ledger", " lead", "trail ", "a..b", '"',
]  # fmt: skip
#: Keywords of newer grammars than some servers': quote_ident() leaves them bare there.
NEWER_KEYWORDS = ["system_user", "json_table", "json_scalar", "merge_action"]


def test_names_are_quoted_as_the_server_quotes_them(cluster: Any) -> None:
    from auditor.timeline import parse_object_name, quote_ident, show_name

    with cluster.connect() as conn:
        for name in TRICKY:
            row = conn.execute(
                "SELECT quote_ident(%s::text), format('%%I', %s::text)", (name, name)
            ).fetchone()
            assert row is not None
            assert quote_ident(name) == row[0] == row[1], name
        for name in TRICKY + NEWER_KEYWORDS:
            # Whatever we write names the same object for the server, and for us.
            two = show_name(("public", name))
            row = conn.execute("SELECT parse_ident(%s::text)", (two,)).fetchone()
            assert row is not None and row[0] == ["public", name], name
            assert parse_object_name(two) == ("public", name)


def test_object_argument_is_read_as_the_server_reads_a_name(cluster: Any) -> None:
    from auditor.timeline import parse_object_name

    inputs = [
        "Payroll.Salaries", '"Payroll"."a""b"', ' public . "x y" ', "ÉCOLE.Té", "a$1",
        '"a.b"', "b", "a.b", '"x.y"', "T4", '"T4"', "caFÉ",
    ]  # fmt: skip
    with cluster.connect() as conn:
        for text in inputs:
            row = conn.execute("SELECT parse_ident(%s::text)", (text,)).fetchone()
            assert row is not None
            assert list(parse_object_name(text)) == row[0], text
        # Unquoted and quoted names longer than 63 bytes are cut as the server cuts them.
        long_name = "Very" + "long" * 20 + "é"
        for written in (long_name, '"' + long_name + '"'):
            # The name as a DBA types it: unquoted (folded, cut) or quoted (cut).
            conn.execute(psycopg.sql.SQL("CREATE TEMP TABLE " + written + " (id int)"))
            (stored,) = conn.execute(
                "SELECT relname FROM pg_class WHERE relpersistence = 't' AND relname LIKE %s",
                ("%long%",),
            ).fetchone() or (None,)
            assert parse_object_name(written) == (stored,)
            conn.execute(psycopg.sql.SQL("DROP TABLE " + written))
    for bad, needle in (
        ("a b", "unexpected 'b'"),
        ("1abc", "cannot start a name"),
        ('""', "zero-length"),
        ("a.", "empty name part"),
        ('U&"\\zzzz"', "invalid Unicode escape"),
    ):
        with pytest.raises(ConfigError, match=needle):
            parse_object_name(bad)
    assert parse_object_name('U&"d\\0061t\\+000061"') == ("data",)


def test_object_names_with_dots_quotes_and_case_are_told_apart(db: TestDB) -> None:
    """``--object b`` and ``--object a.b`` must not match ``public."a.b"``; quoted
    names find their object with and without a connection."""
    capture.install(db.dsn(), databases=[db.name])
    time.sleep(0.01)
    t0 = datetime.now(UTC)
    for query in (
        "CREATE SCHEMA a",
        "CREATE TABLE a.b (id int)",
        'CREATE TABLE "a.b" (id int)',
        "CREATE TABLE b (id int)",
        'CREATE TABLE "x.y" (id int)',
        'CREATE TABLE "Upper Case" (id int)',
        'CREATE TABLE "select" (id int)',
        'ALTER TABLE "a.b" ADD COLUMN c int',
        'DROP TABLE "a.b"',
    ):
        db.run(query, app="names")
    played = Played(db, t0, "", "")
    quoted_ab = [
        'CREATE TABLE "a.b" (id int)',
        'ALTER TABLE "a.b" ADD COLUMN c int',
        'DROP TABLE "a.b"',
    ]
    for flags in ({}, {"dsn": None}):

        def story(name: str, flags: dict[str, Any] = flags) -> Timeline:
            return timeline(load_config(played.flags(**flags), environ={}), object_name=name)

        assert statements(story('"a.b"').steps) == quoted_ab
        assert statements(story('public."a.b"').steps) == quoted_ab
        assert statements(story("b").steps) == [
            "CREATE TABLE a.b (id int)",
            "CREATE TABLE b (id int)",
        ]
        # Without the audit rows an unqualified "b" may be in any schema of the
        # search path, a.b too: shown rather than missed.
        maybe_b = ["CREATE TABLE b (id int)"] if flags else []
        assert statements(story("a.b").steps) == ["CREATE TABLE a.b (id int)", *maybe_b]
        assert statements(story('"x.y"').steps) == ['CREATE TABLE "x.y" (id int)']
        assert statements(story("x.y").steps) == []
        assert statements(story('"Upper Case"').steps) == ['CREATE TABLE "Upper Case" (id int)']
        assert statements(story('"select"').steps) == ['CREATE TABLE "select" (id int)']
        # Names are shown as the server quotes them (its own object identities with a
        # connection, quote_ident() of the parsed statement without).
        with db.connect() as conn:
            for name in ("a.b", "Upper Case", "select"):
                row = conn.execute("SELECT format('%%I', %s::text)", (name,)).fetchone()
                assert row is not None
                shown = story('"' + name + '"').steps[0].names
                assert shown[0] in (row[0], "public." + row[0]), (name, shown)
        assert story('"a.b"').object_name == '"a.b"'


# -- what the timeline cannot know -----------------------------------------------------


def test_without_dsn_rows_are_not_read_never_deleted(played: Played) -> None:
    tl = timeline(load_config(played.flags(dsn=None), environ={}), object_name="ledger")
    found = [s.finding.cls for s in tl.steps if s.finding]
    assert C.AUDIT_ROW_MISSING not in found
    assert all(r.status == "not read" for s in tl.steps for r in s.rows)
    assert any("No --dsn" in n for n in tl.notes)
    # The same story, told from the log: what the markers prove stays, and so does
    # every evasion the log shows on its own.
    assert [
        (text, cls) for text, cls in zip(statements(tl.steps), classes(tl.steps), strict=True)
    ] == [
        ("CREATE TABLE accounts (id serial PRIMARY KEY, owner text)", None),
        ("ALTER TABLE accounts ADD COLUMN balance numeric", None),
        ("ALTER TABLE accounts RENAME TO ledger", None),
        (None, None),  # the DO block: its marker names the ALTER it ran
        (f"ALTER EVENT TRIGGER {TRIGGER} DISABLE", "EVENT_TRIGGER_DDL"),
        ("ALTER TABLE ledger ADD COLUMN hidden int", "UNREPORTED_DDL"),
        # Only a table_rewrite marker: the ddl_command_end trigger did not fire.
        ("ALTER TABLE ledger ALTER COLUMN memo TYPE varchar(200)", "UNREPORTED_DDL"),
        (f"ALTER EVENT TRIGGER {TRIGGER} ENABLE ALWAYS", "EVENT_TRIGGER_DDL"),
        ("DROP TABLE ledger", None),
    ]
    create, do, drop = tl.steps[0], tl.steps[3], tl.steps[-1]
    assert create.unknown == NOT_READ and create.channels == ("log", "marker")
    assert "not read" in create.audit_text and "not read" in create.summary
    assert do.rows and do.rows[0].marker is not None and "ALTER TABLE" in do.summary
    # One step per statement: the DROP's two markers are on its one step.
    assert {r.event for r in drop.rows} == {"sql_drop", "ddl_command_end"}
    # The table says so: "unchecked", never "ok" or "gone".
    text = render_table(tl, width=100)
    assert "unchecked" in text and " gone" not in text and "AUDIT_ROW_MISSING" not in text
    data = json.loads(played.cli("--object", "ledger", "--format", "json").stdout)
    assert all(d["not_known"] == [] for d in data)  # with --dsn everything was read


def test_without_dsn_a_setting_in_the_same_string_stays_a_finding(db: TestDB) -> None:
    """``SET log_statement = 'none'; CREATE TABLE ...`` in one string: the log line has
    both; without the audit table the CREATE is unchecked, the SET stays critical."""
    capture.install(db.dsn(), databases=[db.name])
    time.sleep(0.01)
    t0 = datetime.now(UTC)
    db.run("SET log_statement = 'none'; CREATE TABLE quiet (id int)", app="quiet")
    played = Played(db, t0, "", "")
    for flags in ({}, {"dsn": None}):
        (step,) = timeline(
            load_config(played.flags(**flags), environ={}), object_name="quiet"
        ).steps
        assert step.finding is not None, flags
        assert step.finding.cls == C.CONFIG_DRIFT and step.finding.severity.value == "critical"
        assert "log_statement" in step.finding.explanation
    assert step.unknown == NOT_READ


def test_audit_rows_no_log_covers_are_steps_of_their_own(db: TestDB) -> None:
    """A log that ends before the object's later DDL: those steps are told from the
    audit rows (LOG_GAP), with what is unknown; never "0 step(s)"."""
    capture.install(db.dsn(), databases=[db.name])
    time.sleep(0.01)
    t0 = datetime.now(UTC)
    db.run("CREATE TABLE covered (id int)", app="gap")
    db.cluster.flush_logs()
    first = db.cluster.current_logfiles()
    db.cluster.rotate_logs()
    # Reconcile gives a log 5 s of slack past its last record before rows count as
    # not covered (see reconcile._coverage_gaps); the later DDL is past that.
    time.sleep(5.5)
    db.run("ALTER TABLE covered ADD COLUMN later int", app="gap")
    db.run("DROP TABLE covered", app="gap")
    db.cluster.flush_logs()
    for fmt in ("stderr", "csvlog", "jsonlog"):
        if fmt not in first:
            continue
        flags = {**Played(db, t0, "", "").flags(), "logs": [str(first[fmt])]}
        tl = timeline(load_config(flags, environ={}), object_name="covered")
        own = [s for s in tl.steps if not s.context]
        assert [s.log.statement if s.log else None for s in own] == [
            "CREATE TABLE covered (id int)",
            None,
            None,
        ], fmt
        assert own[0].finding is None and own[0].unknown == ()
        alter, drop = own[1], own[2]
        for step in (alter, drop):
            assert step.channels == ("audit",) and step.unknown == NOT_IN_LOG
            assert step.finding is not None and step.finding.cls == C.LOG_GAP
            assert all(r.status == "row" and r.marker is None for r in step.rows)
            assert "no log read covers" in step.summary
        assert alter.rows[0].query == "ALTER TABLE covered ADD COLUMN later int"
        assert {r.event for r in drop.rows} == {"sql_drop", "ddl_command_end"}
        # The gap itself is the context of the story.
        assert any(s.context and s.finding and s.finding.cls == C.LOG_GAP for s in tl.steps)
        text = render_table(tl, width=100)
        assert "0 step(s)" not in text and "LOG_GAP" in text
