"""The real DDL workload of ``bench/reconcile``: many sessions, every finding class planted.

:func:`make_plan` lays out sessions of ordinary DDL (CREATE/ALTER/INDEX/COMMENT/
GRANT, a multi-line two-statement string, DROPs that fire ``sql_drop``, some
sessions over the extended protocol, an extension-sized burst) with a few
percent of planted trouble: failed DDL, rolled-back DDL (markers, no rows), DDL
inside DO blocks (indirect rows), DDL with ``log_statement`` off in the session
(unlogged), DDL while the auditor's trigger is disabled (unreported), DDL in a
database without the auditor (unmonitored), and audit rows later deleted or
altered.  :func:`run_plan` sends it to a real server; :class:`Expected` is what
reconcile must find.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg

#: Planted per 10,000 logged DDL statements, per class.
PLANTED_PER_10K = 50
SESSION_CYCLES = 6  # ordinary cycles per session (8 statements each)
EXT_BURSTS_PER_10K = 4
UNREPORTED_PER_WINDOW = 10


@dataclass
class Action:
    sql: str
    kind: str  # ordinary, failed, rolledback, indirect, unlogged, deleted, altered, ...
    logged_ddl: int  # statements log_statement = 'ddl' logs for it
    extended: bool = False  # sent over the extended protocol


@dataclass
class Session:
    name: str
    database: str  # "main" or "plain"
    app: str
    actions: list[Action] = field(default_factory=list)
    exclusive: bool = False  # run alone (it disables the auditor's trigger)


@dataclass
class Expected:
    logged_ddl: int = 0
    by_class: dict[str, int] = field(default_factory=dict)

    def add(self, cls: str, n: int = 1) -> None:
        self.by_class[cls] = self.by_class.get(cls, 0) + n


def _cycle(s: int, k: int, extended: bool) -> list[Action]:
    t = f"rb_{s}_{k}"
    return [
        Action(f"CREATE TABLE {t} (id int, v text)", "ordinary", 1, extended),
        Action(f"ALTER TABLE {t} ADD COLUMN w int", "ordinary", 1, extended),
        Action(f"CREATE INDEX {t}_v ON {t} (v)", "ordinary", 1, extended),
        Action(
            f"COMMENT ON TABLE {t} IS 'bench table {k} of session {s}'", "ordinary", 1, extended
        ),
        Action(f"GRANT SELECT ON {t} TO PUBLIC", "ordinary", 1, extended),
        Action(
            f"CREATE TABLE {t}_m (id serial PRIMARY KEY, v text);\nCREATE INDEX ON {t}_m (v)",
            "ordinary",
            1,
        ),
        Action(f"DROP TABLE {t}_m", "ordinary", 1, extended),
        Action(f"DROP TABLE {t}", "ordinary", 1, extended),
    ]


def make_plan(target: int, *, seed: int = 5) -> tuple[list[Session], Expected]:
    """Sessions whose logged DDL adds up to exactly ``target`` statements."""
    rng = random.Random(seed)
    planted = max(1, target * PLANTED_PER_10K // 10_000)
    windows = max(1, planted // UNREPORTED_PER_WINDOW)
    exp = Expected()
    sessions: list[Session] = []
    n = 0

    def new(db: str = "main", app: str | None = None) -> Session:
        nonlocal n
        n += 1
        sess = Session(f"s{n}", db, app or f"app{n % 7}")
        sessions.append(sess)
        return sess

    # Planted statements go into ordinary sessions, so they are put aside first.
    planted_actions: list[Action] = []
    for i in range(planted):
        planted_actions.append(
            Action(f"BEGIN; CREATE TABLE rb_rb_{i} (id int); ROLLBACK", "rolledback", 1)
        )
        exp.add("ROLLED_BACK_DDL")
        planted_actions.append(
            Action(f"DO $$ BEGIN CREATE TABLE rb_do_{i} (id int); END $$", "indirect", 0)
        )
        exp.add("INDIRECT_DDL")
        planted_actions.append(Action(f"CREATE TABLE rb_del_{i} (id int)", "deleted", 1))
        exp.add("AUDIT_ROW_MISSING")
        planted_actions.append(Action(f"CREATE TABLE rb_alt_{i} (id int)", "altered", 1))
        exp.add("AUDIT_ROW_ALTERED")
        planted_actions.append(Action(f"CREATE TABLE rb_unl_{i} (id int)", "unlogged", 0))
        exp.add("UNLOGGED_DDL")
    exp.add("FAILED_DDL", planted)
    exp.add("UNMONITORED_DATABASE", planted)
    exp.add("UNREPORTED_DDL", windows * UNREPORTED_PER_WINDOW)
    exp.add("EVENT_TRIGGER_DDL", 2 * windows)
    exp.add("CONFIG_DRIFT", 1)  # the tampering statement itself

    fixed = (
        sum(a.logged_ddl for a in planted_actions)
        + planted  # failed
        + planted  # unmonitored
        + windows * (UNREPORTED_PER_WINDOW + 2)
        + 1  # tamper
    )
    bursts = max(1, target * EXT_BURSTS_PER_10K // 10_000)
    fixed += 2 * bursts
    ordinary = target - fixed
    cycles, rest = divmod(ordinary, 8)
    # Ordinary sessions.
    ordinary_sessions: list[Session] = []
    left = cycles
    while left > 0:
        sess = new()
        extended = len(sessions) % 5 == 0
        for _ in range(min(SESSION_CYCLES, left)):
            k = len(sess.actions)
            sess.actions.extend(_cycle(len(sessions), k, extended))
        left -= SESSION_CYCLES
        ordinary_sessions.append(sess)
    tail = new()
    for j in range(rest):
        tail.actions.append(Action(f"CREATE TABLE rb_tail_{j} (id int)", "ordinary", 1))
    # Spread the planted actions over the ordinary sessions.
    for a in planted_actions:
        sess = rng.choice(ordinary_sessions)
        pos = rng.randrange(len(sess.actions) + 1)
        if a.kind == "unlogged":
            sess.actions[pos:pos] = [
                Action("SET log_statement = 'none'", "setting", 0),
                a,
                Action("RESET log_statement", "setting", 0),
            ]
        else:
            sess.actions.insert(pos, a)
    # Failed DDL: a duplicate CREATE right after an ordinary one, in the same session.
    for _ in range(planted):
        sess = rng.choice(ordinary_sessions)
        firsts = [
            j
            for j, a in enumerate(sess.actions)
            if a.kind == "ordinary" and a.sql.startswith("CREATE TABLE rb_")
        ]
        j = rng.choice(firsts)
        dup = sess.actions[j].sql.split(" (", 1)[0] + " (dup int)"
        sess.actions.insert(j + 1, Action(dup, "failed", 1))
    # Unmonitored: sessions in the database without the auditor.
    per = 10
    for start in range(0, planted, per):
        sess = new("plain", "elsewhere")
        for i in range(start, min(planted, start + per)):
            sess.actions.append(Action(f"CREATE TABLE rb_unm_{i} (id int)", "unmonitored", 1))
    # Extension bursts, one session (the extension exists once per database).
    sess = new(app="migrations")
    for _ in range(bursts):
        sess.actions.append(Action("CREATE EXTENSION pg_trgm", "ordinary", 1))
        sess.actions.append(Action("DROP EXTENSION pg_trgm", "ordinary", 1))
    # Unreported: the auditor's trigger disabled for a while, alone on the server.
    for w in range(windows):
        sess = new(app="maintenance")
        sess.exclusive = True
        sess.actions.append(Action("ALTER EVENT TRIGGER {trigger} DISABLE", "event_trigger", 1))
        for i in range(UNREPORTED_PER_WINDOW):
            sess.actions.append(Action(f"CREATE TABLE rb_unr_{w}_{i} (id int)", "unreported", 1))
        sess.actions.append(
            Action("ALTER EVENT TRIGGER {trigger} ENABLE ALWAYS", "event_trigger", 1)
        )
    exp.logged_ddl = target
    total = sum(a.logged_ddl for s in sessions for a in s.actions) + 1  # + tamper
    assert total == target, (total, target)
    return sessions, exp


def run_plan(
    sessions: list[Session],
    dsn_for: Callable[[str, str], str],
    trigger: str,
    *,
    threads: int = 4,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Run the sessions on the server: the shared ones on ``threads`` connections at a time."""
    shared = [s for s in sessions if not s.exclusive]
    alone = [s for s in sessions if s.exclusive]
    lock = threading.Lock()
    queue = list(reversed(shared))
    errors: list[BaseException] = []
    done = [0]

    def play(sess: Session) -> None:
        with psycopg.connect(dsn_for(sess.database, sess.app), autocommit=True) as conn:
            simple = psycopg.ClientCursor(conn)
            for a in sess.actions:
                sql = a.sql.replace("{trigger}", trigger)
                try:
                    if a.extended:
                        conn.execute(sql)  # type: ignore[arg-type]
                    else:
                        simple.execute(sql)
                except psycopg.Error:
                    if a.kind != "failed":
                        raise
                    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                        conn.rollback()
        with lock:
            done[0] += 1
            if progress is not None:
                progress(done[0])

    def worker() -> None:
        while True:
            with lock:
                if not queue or errors:
                    return
                sess = queue.pop()
            try:
                play(sess)
            except BaseException as exc:  # reported by the caller
                with lock:
                    errors.append(exc)
                return

    pool = [threading.Thread(target=worker) for _ in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    if errors:
        raise errors[0]
    for sess in alone:
        play(sess)
