"""The settings table (auditor.weakening) agrees with what a real server does.

The first test is the table itself, statement by statement (classify, then
judge).  The others perform the change on the session cluster and check the
behaviour the table relies on: what is logged, what fires, what a marker looks
like, and what the server refuses.
"""

from __future__ import annotations

import subprocess

import psycopg
import pytest

from auditor import capture
from auditor.classify import SettingChange, classify
from auditor.model import Severity
from auditor.weakening import RULES, Effect, Situation, judge, packaged_pins

W, MAY, OK, NONE = Effect.WEAKENS, Effect.MAY_WEAKEN, Effect.HARMLESS, Effect.NO_EFFECT
CRIT, HIGH = Severity.CRITICAL, Severity.HIGH

PINNED = packaged_pins()  # what this package's record_event() pins
STDERR_ONLY = Situation(pinned=PINNED, formats=frozenset({"stderr"}))
CSV_ONLY = Situation(pinned=PINNED, formats=frozenset({"csvlog"}))
PG17 = Situation(170000, PINNED)
PG15 = Situation(150000, PINNED)

# statement -> (effect, severity when it is a drift); Situation PG15 unless given.
TABLE: list[tuple[str, Effect, Severity | None, Situation]] = [
    ("SET log_statement = 'none'", W, CRIT, PG15),
    ("SET LOCAL log_statement = none", W, CRIT, PG15),
    ("SET log_statement = 'mod'", OK, None, PG15),
    ("SET log_statement = 'all'", OK, None, PG15),
    ("RESET log_statement", OK, None, PG15),
    ("SET log_statement TO DEFAULT", OK, None, PG15),
    ("RESET ALL", OK, None, PG15),
    ("SELECT set_config('log_statement', 'none', false)", W, CRIT, PG15),
    ("SELECT set_config('log_statement', current_setting('x'), true)", MAY, HIGH, PG15),
    ("SET log_min_messages = fatal", W, CRIT, PG15),
    ("SET log_min_messages = 'PANIC'", W, CRIT, PG15),
    ("SET log_min_messages = error", OK, None, PG15),
    ("SET log_min_messages = warning", OK, None, PG15),
    ("SET log_min_messages = log", OK, None, PG15),
    ("ALTER FUNCTION f() SET log_statement = 'none'", NONE, None, PG15),
    ("ALTER FUNCTION f() SET log_statement FROM CURRENT", NONE, None, PG15),
    ("CREATE FUNCTION f() RETURNS int LANGUAGE sql SET log_statement = 'all' AS 'SELECT 1'", OK,
     None, PG15),
    ("ALTER FUNCTION f() RESET ALL", OK, None, PG15),
    ("ALTER FUNCTION f() RESET session_replication_role", OK, None, PG15),
    ("ALTER PROCEDURE p() SET session_replication_role = replica", W, CRIT, PG15),
    ("ALTER FUNCTION f() SET session_replication_role FROM CURRENT", MAY, HIGH, PG15),
    ("ALTER FUNCTION f() SET log_error_verbosity = terse", W, HIGH, PG15),
    ("ALTER FUNCTION f() SET log_min_messages = fatal", W, CRIT, Situation(pinned=frozenset())),
    ("ALTER FUNCTION f() SET log_min_messages = fatal", NONE, None,
     Situation(pinned=frozenset({"log_min_messages"}))),
    ("ALTER ROLE bob SET log_statement = 'none'", W, CRIT, PG15),
    ("ALTER USER bob IN DATABASE app SET log_statement = 'none'", W, CRIT, PG15),
    ("ALTER ROLE ALL SET log_min_messages = panic", W, CRIT, PG15),
    ("ALTER DATABASE app SET session_replication_role = replica", W, CRIT, PG15),
    ("ALTER ROLE bob SET log_statement = 'ddl'", OK, None, PG15),
    ("ALTER ROLE bob RESET ALL", OK, None, PG15),
    ("ALTER DATABASE app RESET log_statement", OK, None, PG15),
    ("ALTER SYSTEM SET log_statement = 'none'", W, CRIT, PG15),
    ("ALTER SYSTEM SET log_statement = 'all'", OK, None, PG15),
    ("ALTER SYSTEM RESET log_statement", MAY, HIGH, PG15),
    ("ALTER SYSTEM SET log_statement TO DEFAULT", MAY, HIGH, PG15),
    ("ALTER SYSTEM RESET log_min_messages", OK, None, PG15),
    ("ALTER SYSTEM RESET ALL", MAY, HIGH, PG15),
    ("ALTER SYSTEM SET logging_collector = off", W, CRIT, PG15),
    ("ALTER SYSTEM SET logging_collector = on", OK, None, PG15),
    ("SET logging_collector = off", NONE, None, PG15),
    ("ALTER SYSTEM SET log_destination = 'syslog'", W, CRIT, PG15),
    ("ALTER SYSTEM SET log_destination = 'stderr,csvlog'", OK, None, PG15),
    ("ALTER SYSTEM SET log_destination = 'stderr'", W, CRIT, CSV_ONLY),
    ("ALTER SYSTEM RESET log_destination", MAY, HIGH, CSV_ONLY),
    ("ALTER SYSTEM RESET log_destination", OK, None, STDERR_ONLY),
    ("ALTER ROLE bob SET log_destination = 'syslog'", NONE, None, PG15),
    ("ALTER SYSTEM SET log_truncate_on_rotation = on", W, HIGH, PG15),
    ("ALTER SYSTEM SET log_truncate_on_rotation = off", OK, None, PG15),
    ("ALTER SYSTEM SET log_line_prefix = '%m [%p] '", W, HIGH, STDERR_ONLY),
    ("ALTER SYSTEM SET log_line_prefix = '%m [%p] '", OK, None, CSV_ONLY),
    ("ALTER SYSTEM SET log_line_prefix = '%m %c %v '", OK, None, STDERR_ONLY),
    ("ALTER SYSTEM SET log_file_mode = '0666'", W, HIGH, PG15),
    ("ALTER SYSTEM SET log_file_mode = 0600", OK, None, PG15),
    ("ALTER SYSTEM SET log_file_mode = '0640'", OK, None, PG15),
    ("ALTER SYSTEM SET log_directory = '/tmp'", OK, None, PG15),
    ("ALTER SYSTEM SET log_rotation_age = '1min'", OK, None, PG15),
    ("SET lc_messages = 'de_DE.UTF-8'", W, CRIT, PG15),
    ("SET lc_messages = 'C'", OK, None, PG15),
    ("SET lc_messages = 'C.UTF-8'", OK, None, PG15),
    ("SET lc_messages = 'en_US.UTF-8'", OK, None, PG15),
    ("SET log_error_verbosity = terse", W, HIGH, PG15),
    ("SET log_error_verbosity = terse", W, HIGH, STDERR_ONLY),
    ("SET log_error_verbosity = terse", OK, None, CSV_ONLY),
    ("SET log_error_verbosity = verbose", OK, None, PG15),
    ("SET session_replication_role = replica", W, CRIT, PG15),
    ("SET session_replication_role = local", OK, None, PG15),
    ("SET session_replication_role = origin", OK, None, PG15),
    ("SET event_triggers = off", W, CRIT, PG17),
    ("SET event_triggers = 'of'", W, CRIT, PG17),
    ("SET event_triggers = on", OK, None, PG17),
    ("SET event_triggers = off", NONE, None, PG15),
    ("SET log_min_error_statement = panic", NONE, None, PG15),  # record_event pins it
    ("SET log_min_error_statement = panic", W, HIGH, Situation(pinned=frozenset())),
]  # fmt: skip


@pytest.mark.parametrize(("query", "effect", "severity", "situation"), TABLE)
def test_the_table(query: str, effect: Effect, severity: Severity | None, situation: Situation):
    (change,) = classify(query, server_version_num=situation.server_version_num).settings
    verdict = judge(change, situation)
    assert (verdict.effect, verdict.severity) == (effect, severity), (query, verdict.text)
    assert verdict.drift == (effect in (W, MAY))


def test_server_reload_lines_are_judged_like_alter_system() -> None:
    def reload(name: str, value: str) -> Effect:
        return judge(SettingChange(name, value, "server reload"), PG15).effect

    assert reload("log_statement", "none") == W
    assert reload("log_statement", "ddl") == OK
    # "removed from configuration file, reset to default": the built-in default.
    assert reload("log_statement", RULES["log_statement"].default) == W
    assert reload("log_min_messages", RULES["log_min_messages"].default) == OK


def test_scopes_of_alter_role() -> None:
    scopes = [
        classify(q).settings[0].scope
        for q in (
            "ALTER ROLE bob SET log_statement = 'none'",
            "ALTER ROLE bob IN DATABASE app SET log_statement = 'none'",
            "ALTER ROLE ALL SET log_statement = 'none'",
            "ALTER ROLE ALL IN DATABASE app RESET ALL",
        )
    ]
    assert scopes == ["role", "role in database", "all roles", "all roles in database"]


# -- what the server does -------------------------------------------------------------


def _statement_lines(got, app: str) -> list[str]:
    return [
        r["message"]
        for r in got.csvlog
        if r["application_name"] == app and r["message"].startswith("statement: ")
    ]


def _session(db, app: str, *queries: str) -> None:
    with db.connect(application_name=app) as conn:
        cur = psycopg.ClientCursor(conn)
        for q in queries:
            cur.execute(q)


def test_log_min_messages_error_keeps_statement_lines_fatal_hides_them(db, logs) -> None:
    mark = logs.mark()
    _session(db, "lmm-error", "SET log_min_messages = error", "CREATE TABLE lmm1 (id int)")
    _session(db, "lmm-fatal", "SET log_min_messages = fatal", "CREATE TABLE lmm2 (id int)")
    got = logs.since(mark)
    assert _statement_lines(got, "lmm-error") == ["statement: CREATE TABLE lmm1 (id int)"]
    assert _statement_lines(got, "lmm-fatal") == []
    for value, effect in (("error", OK), ("fatal", W)):
        (change,) = classify(f"SET log_min_messages = {value}").settings
        assert judge(change, PG15).effect == effect


def test_function_scope_log_statement_hides_nothing_and_reset_restores(db, logs) -> None:
    db.run(
        "CREATE FUNCTION quiet() RETURNS int LANGUAGE sql SET log_statement = 'none' AS 'SELECT 1'"
    )
    mark = logs.mark()
    _session(
        db,
        "fn-scope",
        "CREATE TABLE fs1 AS SELECT quiet() AS v",  # the caller's line is written first
        "SELECT quiet()",
        "CREATE TABLE fs2 (id int)",  # the function's setting ended with it
        "SET log_statement = 'none'",
        "RESET log_statement",  # back to the server's value
        "CREATE TABLE fs3 (id int)",
    )
    got = logs.since(mark)
    assert _statement_lines(got, "fn-scope") == [
        "statement: CREATE TABLE fs1 AS SELECT quiet() AS v",
        "statement: CREATE TABLE fs2 (id int)",
        "statement: CREATE TABLE fs3 (id int)",
    ]
    fn = classify("ALTER FUNCTION quiet() SET log_statement = 'none'").settings[0]
    assert judge(fn, PG15).effect == NONE
    assert judge(classify("RESET log_statement").settings[0], PG15).effect == OK


@pytest.mark.parametrize(
    "query",
    [
        "SET log_destination = 'syslog'",
        "ALTER ROLE {role} SET log_truncate_on_rotation = on",
        "ALTER DATABASE {db} SET logging_collector = off",
        "CREATE FUNCTION sighup_fn() RETURNS int LANGUAGE sql SET log_line_prefix = '' "
        "AS 'SELECT 1'",
    ],
)
def test_server_wide_settings_are_refused_elsewhere(db, query: str) -> None:
    role = db.create_role("wk_refused")
    text = query.format(role=role, db=db.name)
    with pytest.raises(psycopg.Error, match="cannot be changed"):
        db.run(text)
    (change,) = classify(text).settings
    assert judge(change, PG15).effect == NONE


EVENT_LOG = """
CREATE TABLE fired (tag text);
CREATE FUNCTION rec() RETURNS event_trigger LANGUAGE plpgsql AS $$
BEGIN INSERT INTO fired VALUES (tg_tag); END $$;
CREATE EVENT TRIGGER wk_rec ON ddl_command_end EXECUTE FUNCTION rec();
"""


def test_function_scope_replica_silences_triggers_not_enabled_always(db) -> None:
    db.run(EVENT_LOG)
    db.run(
        "CREATE FUNCTION in_replica() RETURNS void LANGUAGE plpgsql "
        "SET session_replication_role = replica "
        "AS $$ BEGIN CREATE TABLE made_in_replica (id int); END $$"
    )
    db.run("SELECT in_replica()")
    db.run("CREATE TABLE made_after (id int)")  # the setting ended with the function
    assert db.run("SELECT tag FROM fired") == [("CREATE FUNCTION",), ("CREATE TABLE",)]
    db.run("ALTER EVENT TRIGGER wk_rec ENABLE ALWAYS; DELETE FROM fired")
    db.run("DROP TABLE made_in_replica; SELECT in_replica()")
    assert ("CREATE TABLE",) in db.run("SELECT tag FROM fired")
    query = "ALTER FUNCTION in_replica() SET session_replication_role = replica"
    (change,) = classify(query).settings
    assert judge(change, PG15).effect == W


def test_function_scope_terse_drops_the_context_in_stderr_only(db, logs) -> None:
    db.run(
        "CREATE FUNCTION says() RETURNS void LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE LOG 'wk-said-plain'; END $$;"
        "CREATE FUNCTION says_terse() RETURNS void LANGUAGE plpgsql "
        "SET log_error_verbosity = terse AS $$ BEGIN RAISE LOG 'wk-said-terse'; END $$"
    )
    mark = logs.mark()
    db.run("SELECT says(); SELECT says_terse()")
    got = logs.since(mark)
    # stderr: a CONTEXT line follows the plain one only.
    plain = next(i for i, e in enumerate(got.stderr) if e.endswith("LOG:  wk-said-plain"))
    terse = next(i for i, e in enumerate(got.stderr) if e.endswith("LOG:  wk-said-terse"))
    assert "CONTEXT:  PL/pgSQL function says()" in got.stderr[plain + 1]
    assert "CONTEXT:" not in got.stderr[terse + 1]
    # csvlog and jsonlog keep it whatever the verbosity.
    context = {r["message"]: r["context"] for r in got.csvlog if r["message"].startswith("wk-")}
    assert "says_terse()" in context["wk-said-terse"]
    if got.jsonlog:
        (obj,) = [o for o in got.jsonlog if o.get("message") == "wk-said-terse"]
        assert "says_terse()" in obj["context"]
    (change,) = classify("ALTER FUNCTION says_terse() SET log_error_verbosity = terse").settings
    assert judge(change, STDERR_ONLY).effect == W
    assert judge(change, CSV_ONLY).effect == OK


def test_event_triggers_off(db, cluster) -> None:
    if cluster.major < 17:
        with pytest.raises(psycopg.Error, match="unrecognized configuration parameter"):
            db.run("SET event_triggers = off")
        (change,) = classify("SET event_triggers = off").settings
        assert judge(change, Situation(cluster.version_num)).effect == NONE
        return
    db.run(EVENT_LOG)
    db.run("ALTER EVENT TRIGGER wk_rec ENABLE ALWAYS")
    db.run("SET event_triggers = off; CREATE TABLE et_off (id int)")
    assert db.run("SELECT tag FROM fired") == []
    (change,) = classify("SET event_triggers = off").settings
    assert judge(change, Situation(cluster.version_num)).effect == W


def test_markers_under_a_functions_log_min_messages_follow_the_pins(db, logs, cluster) -> None:
    """The table says a function's log_min_messages = fatal hides the markers of DDL it
    runs unless record_event() pins the setting; the live function decides."""
    capture.install(db.dsn())
    (config,) = db.run(
        "SELECT coalesce(proconfig, '{}') FROM pg_proc WHERE oid = 'auditor.record_event()'"
        "::regprocedure"
    )[0]
    pins = frozenset(c.split("=", 1)[0] for c in config)
    db.run(
        "CREATE FUNCTION hush() RETURNS void LANGUAGE plpgsql SET log_min_messages = fatal "
        "AS $$ BEGIN CREATE TABLE hushed (id int); END $$"
    )
    mark = logs.mark()
    db.run("SELECT hush()")
    got = logs.since(mark)
    markers = [r for r in got.csvlog if r["message"].startswith("auditor-marker ")]
    (change,) = classify("ALTER FUNCTION hush() SET log_min_messages = fatal").settings
    verdict = judge(change, Situation(cluster.version_num, pins))
    assert (verdict.effect == W) == (markers == []), (pins, verdict.text)


def _has_locale(name: str) -> bool:
    out = subprocess.run(["locale", "-a"], capture_output=True, text=True).stdout
    return name.lower().replace("-", "") in out.lower().replace("-", "").split()


def test_translated_messages_are_not_statement_lines(db, logs, cluster) -> None:
    if not _has_locale("de_DE.utf8"):
        pytest.skip("the de_DE.UTF-8 locale is not installed (scripts/bootstrap generates it)")
    mark = logs.mark()
    _session(db, "wk-de", "SET lc_messages = 'de_DE.UTF-8'", "CREATE TABLE übersetzt (id int)")
    got = logs.since(mark)
    lines = [r["message"] for r in got.csvlog if r["application_name"] == "wk-de"]
    assert any("übersetzt" in m for m in lines)
    if any(m.startswith("statement: ") for m in lines):
        pytest.skip("this server build has no message translations (no NLS): nothing changes")
    # The product's reader finds no statement in the translated line.
    from auditor.logs.scan import scan_sources
    from auditor.logs.sources import open_sources

    csvs = [str(p) for p in cluster.log_dir.iterdir() if p.suffix == ".csv"]
    found = [
        r
        for r in scan_sources(
            open_sources(csvs, dsn=None, fmt="csvlog"),
            fmt="csvlog",
            prefix=None,
            starts={},
            server=None,
        )
        if getattr(r, "application", None) == "wk-de"
    ]
    assert not [r for r in found if r.statement and "übersetzt" in r.statement], found
    (change,) = classify("SET lc_messages = 'de_DE.UTF-8'").settings
    assert judge(change, PG15).effect == W
