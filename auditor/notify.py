"""``auditor notify``: the outbox worker that mails every DDL to the DBA team.

The audit trigger only inserts its row and sends ``NOTIFY <schema>_events`` at
commit, so SMTP never makes DDL wait.  The worker, for each database:

1. **claims** new audit rows: in one REPEATABLE READ transaction it reads the
   rows no delivery has claimed yet, groups them into statements
   (:func:`auditor.mailcore.group_statements`) and records one ``deliveries``
   row per statement (status ``pending``, a stable Message-ID) plus one
   ``delivery_events`` row per audit row; an advisory lock keeps two workers
   from claiming at once, and ``mail_state`` remembers how far every row is
   known to be claimed (``sql/mail_install.sql`` explains the probe);
2. **sends** what is due: each mail in its own transaction that locks its
   ``deliveries`` row (``FOR UPDATE SKIP LOCKED``) and marks it delivered; the
   COMMIT goes out through libpq the instant the server's 250 is read, so only a
   crash in the microseconds between the two can make a delivered mail go out
   again (with the same Message-ID).  Without a 250 (refused, connection lost, the
   worker killed while the server was still thinking) nothing is committed and the
   mail is sent again later: at least once, never lost.  Failures are retried with
   exponential back-off and, after ``notify.failing_after`` attempts, reported as
   failing by ``auditor status`` (and still retried);
3. **waits** on ``LISTEN`` (with a poll every ``notify.poll_interval`` seconds as a
   fallback, and when a retry falls due) and reconnects when PostgreSQL goes away.

:func:`deliver_pending` is ``--once`` (cron); :func:`run_worker` the long-running
worker, one thread per database, stopped by a :class:`threading.Event`.
"""

from __future__ import annotations

import logging
import select
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from email.message import Message
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from auditor import mail as mail_config
from auditor.capture import _pg_error, _session, _targets, check_schema_name, notify_channel
from auditor.config import Config
from auditor.db import connect, describe_dsn, sql_text
from auditor.errors import AuditorError, ConfigError, ConnectionFailed
from auditor.mailcore import (
    DeliveryError,
    EventRow,
    MailSettings,
    Renderer,
    SmtpSession,
    Statement,
    build_message,
    group_statements,
)
from auditor.outbox import render
from auditor.redact import mask

log = logging.getLogger("auditor.notify")
log.addHandler(logging.NullHandler())  # the CLI adds its own; a library stays quiet

APPLICATION = "auditor notify"
#: How often ``--all-databases`` looks for newly created databases (seconds).
RESCAN_INTERVAL = 60.0
#: Longest pause between two reconnection attempts (seconds).
RECONNECT_MAX = 10.0
#: How long the loop trusts what it read of a database's mail settings (seconds).
CONFIG_MAX_AGE = 5.0


@dataclass(frozen=True)
class WorkerSettings:
    poll_interval: float = 10.0
    retry_initial: float = 10.0
    retry_max: float = 900.0
    failing_after: int = 5
    batch_size: int = 200
    senders: int = 4

    @classmethod
    def from_config(cls, cfg: Config) -> WorkerSettings:
        out = cls(
            poll_interval=float(cfg["notify.poll_interval"]),
            retry_initial=float(cfg["notify.retry_initial"]),
            retry_max=float(cfg["notify.retry_max"]),
            failing_after=int(cfg["notify.failing_after"]),
            batch_size=int(cfg["notify.batch_size"]),
            senders=int(cfg["notify.senders"]),
        )
        if out.poll_interval <= 0 or out.retry_initial <= 0 or out.retry_max < out.retry_initial:
            raise ConfigError(
                "notify.poll_interval and notify.retry_initial must be positive and "
                "notify.retry_max at least notify.retry_initial"
            )
        if out.failing_after < 1 or out.batch_size < 1 or out.senders < 1:
            raise ConfigError(
                "notify.failing_after, notify.batch_size and notify.senders must be at least 1"
            )
        return out


@dataclass(frozen=True)
class DatabaseReport:
    """What one pass over a database did (``--once``), or why it could not."""

    database: str
    claimed: int = 0
    delivered: int = 0
    failed: int = 0
    undelivered: int = 0
    skipped: str | None = None  # why nothing was done (mail mode none, not installed)
    errors: tuple[str, ...] = ()
    error: str | None = None  # the database could not be reached or read


@dataclass(frozen=True)
class NotifyReport:
    server: str
    databases: tuple[DatabaseReport, ...]

    @property
    def exit_code(self) -> int:
        """2 a database could not be worked on, 1 mail is still undelivered, 0 all sent."""
        if any(d.error for d in self.databases):
            return 2
        return 1 if any(d.undelivered for d in self.databases) else 0


def format_report(report: NotifyReport) -> str:
    lines = []
    for d in report.databases:
        if d.error:
            lines.append(f"{d.database}: cannot deliver: {d.error}")
        elif d.skipped:
            lines.append(f"{d.database}: skipped ({d.skipped})")
        else:
            lines.append(
                f"{d.database}: {d.claimed} new statement(s), {d.delivered} mail(s) delivered, "
                f"{d.failed} failed attempt(s), {d.undelivered} still undelivered"
            )
            lines.extend(f"  {e}" for e in d.errors)
    return mask("\n".join(lines))


# -- one database ------------------------------------------------------------------------


class _Commit:
    """Sends COMMIT with libpq directly, the instant the SMTP server accepted the message."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.sent = False
        self.error: str | None = None

    def send(self) -> None:
        pg = self.conn.pgconn
        try:
            pg.send_query(b"COMMIT")
            while pg.flush() != 0:
                select.select([], [pg.socket], [], 1.0)
            self.sent = True
        except psycopg.Error as exc:
            self.error = _pg_error(exc)

    def finish(self) -> None:
        """Read the COMMIT's result; raise OperationalError when it did not commit."""
        if self.error is not None or not self.sent:
            raise psycopg.OperationalError(self.error or "COMMIT was not sent")
        pg = self.conn.pgconn
        ok = False
        while True:
            while pg.is_busy():
                select.select([pg.socket], [], [], 1.0)
                pg.consume_input()
            result = pg.get_result()
            if result is None:
                break
            ok = result.status == psycopg.pq.ExecStatus.COMMAND_OK
            if not ok:
                self.error = (result.error_message or b"").decode("utf-8", "replace").strip()
        if not ok:
            raise psycopg.OperationalError(self.error or "COMMIT failed")


#: The outcome of a mail the round stopped before sending.
_SKIPPED = "skipped"


@dataclass
class _Lane:
    """One sender: its SMTP session and PostgreSQL connection, kept between rounds."""

    session: SmtpSession
    conn: psycopg.Connection[Any] | None = None


class DatabaseMailer:
    """Claims and sends the mail of one database over one connection."""

    def __init__(
        self,
        dsn: str,
        database: str,
        schema: str,
        cfg: Config,
        worker: WorkerSettings,
        renderer: Renderer,
        templates: Any,
    ) -> None:
        self.dsn = dsn
        self.database = database
        self.schema = schema
        self.cfg = cfg
        self.worker = worker
        self.renderer = renderer
        self.templates = templates
        self.conn: psycopg.Connection[Any] | None = None
        self.fallback_server = _dsn_host(dsn)
        self.server_port: int | None = None
        self.mode: str | None = None
        self.settings: MailSettings | None = None
        self._loaded_at = 0.0
        self.lanes: list[_Lane] = []

    # -- connection --------------------------------------------------------------
    def open(self) -> psycopg.Connection[Any]:
        if self.conn is not None and not self.conn.closed:
            return self.conn
        self.conn = connect(self.dsn, dbname=self.database, application_name=APPLICATION)
        return self.conn

    def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            conn.close()
        self._close_lanes()
        self._loaded_at = 0.0

    def _close_lanes(self) -> None:
        lanes, self.lanes = self.lanes, []
        for lane in lanes:
            lane.session.close()
            if lane.conn is not None:
                lane.conn.close()

    def _cursor(self) -> psycopg.RawCursor[dict[str, Any]]:
        return psycopg.RawCursor(self.open(), row_factory=dict_row)

    def load_config(self, max_age: float = 0.0) -> None:
        """Mail mode, port and (when the configuration has none) the stored recipients.

        Read again when older than ``max_age`` seconds (the loop reads it every few
        seconds, not for every DDL).
        """
        if self.settings is not None and time.monotonic() - self._loaded_at < max_age:
            return
        conn = self.open()
        installed = conn.execute(sql_text("mail_installed.sql"), {"schema": self.schema})
        row = installed.fetchone()
        if not row or not row[0]:
            raise AuditorError(
                f"database {self.database!r}: auditor (with its mail tables) is not installed "
                f"in schema {self.schema!r}; run auditor install"
            )
        stored = self._cursor().execute(render("mail_database_config.sql", self.schema)).fetchone()
        if stored is None:
            raise AuditorError(f"database {self.database!r}: the settings row is missing")
        self.mode = stored["mail_mode"]
        self.server_port = stored["server_port_setting"]
        settings = mail_config.mail_settings(self.cfg, stored=stored, templates=self.templates)
        if self.settings is None or settings.smtp != self.settings.smtp:
            self._close_lanes()
        self.settings = settings
        self._loaded_at = time.monotonic()

    # -- claim ------------------------------------------------------------------
    def claim(self) -> int:
        """Group new audit rows into statements and record a pending mail for each."""
        assert self.settings is not None
        conn = self.open()
        claimed = 0
        schema = self.schema
        batch = self.worker.batch_size
        while True:
            with conn.transaction():
                cur = self._cursor()
                cur.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
                lock = cur.execute(sql_text("mail_claim_lock.sql"), [f"{schema}.notify"])
                if not (lock.fetchone() or {}).get("locked"):
                    return claimed  # another worker is claiming right now
                state = cur.execute(render("mail_state_read.sql", schema)).fetchone()
                if state is None:
                    raise AuditorError(f"database {self.database!r}: mail_state row is missing")
                rows = cur.execute(
                    render("mail_unclaimed_events.sql", schema), [state["scanned_to"], batch]
                ).fetchall()
                truncated = len(rows) >= batch
                top = int(rows[-1]["id"]) if rows else None
                if truncated and top is not None:
                    rows.extend(self._rest_of_queries(cur, rows, top))
                for stmt in group_statements(rows):
                    cur.execute(
                        render("mail_claim.sql", schema),
                        [
                            stmt.first_id,
                            stmt.message_id(self.settings.message_id_domain),
                            stmt.event_ids,
                            stmt.command_tags,
                            "pending",
                            None,
                            0,
                            "outbox",
                        ],
                    )
                    claimed += 1
                probe_id, probe_xid = state["probe_id"], state["probe_xid"]
                if probe_id is not None and int(state["snapshot_xmin"]) >= int(probe_xid):
                    reach = (
                        int(probe_id) if not truncated or top is None else min(int(probe_id), top)
                    )
                    cur.execute(
                        render("mail_state_advance.sql", schema), [reach, reach >= int(probe_id)]
                    )
            if not truncated:
                break
        self._probe()
        return claimed

    def _rest_of_queries(
        self, cur: psycopg.RawCursor[dict[str, Any]], rows: list[dict[str, Any]], top: int
    ) -> list[dict[str, Any]]:
        keys = {(r["session_id"], r["vxid"] or "", r["statement_time"]) for r in rows}
        sessions, vxids, times = (list(x) for x in zip(*sorted(keys), strict=True))
        return cur.execute(
            render("mail_query_events.sql", self.schema), [top, sessions, vxids, times]
        ).fetchall()

    def _probe(self) -> None:
        cur = self._cursor()
        row = cur.execute(render("mail_probe_sequence.sql", self.schema)).fetchone()
        if row is not None and row["probe_id"] is not None:
            cur.execute(render("mail_probe_set.sql", self.schema), [int(row["probe_id"])])

    # -- send ----------------------------------------------------------------------
    def _record_failure(
        self, conn: psycopg.Connection[Any], ids: Sequence[int], error: str
    ) -> None:
        w = self.worker
        psycopg.RawCursor(conn).execute(
            render("mail_record_failure.sql", self.schema),
            [list(ids), error, w.retry_initial, w.retry_max, w.failing_after],
        )

    def send_due(self, *, ignore_schedule: bool = False) -> DatabaseReport:
        """Send every mail that is due (or all undelivered ones), batch by batch.

        Messages are built here; up to ``notify.senders`` lanes (a PostgreSQL and an
        SMTP connection each) send them side by side.  When the SMTP server cannot be
        reached, the round stops and the rest is recorded as a failed attempt too.
        """
        assert self.settings is not None
        settings = self.settings
        delivered = failed = 0
        errors: list[str] = []
        tried: set[int] = set()
        while True:
            cur = self._cursor()
            due = [
                d
                for d in cur.execute(
                    render("mail_due.sql", self.schema), [ignore_schedule, self.worker.batch_size]
                ).fetchall()
                if int(d["id"]) not in tried
            ]
            if not due:
                break
            ids = [int(d["id"]) for d in due]
            tried.update(ids)
            rows: dict[int, list[EventRow]] = {}
            for r in cur.execute(render("mail_delivery_events.sql", self.schema), [ids]):
                rows.setdefault(int(r["delivery_id"]), []).append(EventRow.from_mapping(r))
            jobs: list[tuple[int, str, Message]] = []
            for d in due:
                did = int(d["id"])
                try:
                    if not rows.get(did):
                        raise DeliveryError("its audit rows are missing", permanent=True)
                    msg = build_message(
                        Statement(tuple(rows[did])),
                        settings,
                        self.renderer,
                        message_id=d["message_id"],
                        fallback_server=self.fallback_server,
                        server_port=self.server_port,
                    )
                except DeliveryError as exc:
                    self._record_failure(self.open(), [did], str(exc))
                    failed += 1
                    errors.append(f"{d['message_id']}: {exc}")
                    continue
                jobs.append((did, str(d["message_id"]), msg))
            unreachable: str | None = None
            skipped: list[int] = []
            for (did, message_id, msg), outcome in zip(jobs, self._send_all(jobs), strict=True):
                if outcome is _SKIPPED:
                    skipped.append(did)
                elif outcome is None:
                    continue  # another worker has it
                elif outcome == "delivered":
                    delivered += 1
                    log.info(
                        "%s: delivered %s (%s)",
                        self.database,
                        message_id,
                        msg["X-Auditor-Command-Tag"],
                    )
                else:
                    failed += 1
                    text = outcome.lstrip("!")
                    if outcome.startswith("!"):
                        unreachable = text
                    errors.append(f"{message_id}: {text}")
                    log.warning("%s: not delivered %s: %s", self.database, message_id, text)
            if unreachable is not None:  # the SMTP server cannot be reached: stop this round
                if skipped:
                    self._record_failure(self.open(), skipped, unreachable)
                    failed += len(skipped)
                break
        return DatabaseReport(
            self.database, delivered=delivered, failed=failed, errors=tuple(errors)
        )

    def _lanes_for(self, count: int) -> list[_Lane]:
        assert self.settings is not None
        while len(self.lanes) < count:
            self.lanes.append(_Lane(SmtpSession(self.settings.smtp)))
        return self.lanes[:count]

    def _send_all(self, jobs: Sequence[tuple[int, str, Message]]) -> list[str | None]:
        """Each job's outcome (see _send_one; _SKIPPED when the round stopped first)."""
        results: list[str | None] = [_SKIPPED] * len(jobs)
        if not jobs:
            return results
        lanes = self._lanes_for(max(1, min(self.worker.senders, len(jobs))))
        stop = threading.Event()
        lock = threading.Lock()
        pending = iter(range(len(jobs)))
        failures: list[BaseException] = []

        def run(lane: _Lane) -> None:
            try:
                while not stop.is_set():
                    with lock:
                        i = next(pending, None)
                    if i is None:
                        return
                    did, _, msg = jobs[i]
                    outcome = self._send_one(lane, did, msg)
                    results[i] = outcome
                    if outcome is not None and outcome.startswith("!"):
                        stop.set()
            except BaseException as exc:  # re-raised in the calling thread
                failures.append(exc)
                stop.set()

        if len(lanes) == 1:
            run(lanes[0])
        else:
            threads = [
                threading.Thread(target=run, args=(lane,), name=f"auditor-send-{n}")
                for n, lane in enumerate(lanes)
            ]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        if failures:
            raise failures[0]
        return results

    def _lane_conn(self, lane: _Lane) -> psycopg.Connection[Any]:
        if lane.conn is None or lane.conn.closed:
            lane.conn = connect(self.dsn, dbname=self.database, application_name=APPLICATION)
        return lane.conn

    def _send_one(self, lane: _Lane, did: int, msg: Message) -> str | None:
        """'delivered', None (taken by another worker), or the error ('!…' = server down)."""
        assert self.settings is not None
        conn = self._lane_conn(lane)
        cur = psycopg.RawCursor(conn, row_factory=dict_row)
        conn.execute("BEGIN")
        committed = False
        try:
            taken = cur.execute(render("mail_mark_delivered.sql", self.schema), [did]).fetchone()
            if taken is None:
                conn.execute("ROLLBACK")
                committed = True
                return None
            commit = _Commit(conn)
            try:
                refused = lane.session.send(
                    msg, self.settings.mail_from, self.settings.recipients, on_accepted=commit.send
                )
            except DeliveryError as exc:  # not accepted: nothing was committed
                conn.execute("ROLLBACK")
                committed = True
                self._record_failure(conn, [did], str(exc))
                return ("!" if exc.connection else "") + str(exc)
            committed = True
            try:
                commit.finish()
            except psycopg.OperationalError:
                log.warning(
                    "%s: %s was handed to the SMTP server but its delivery could not be "
                    "recorded (PostgreSQL went away); it will be sent again with the same "
                    "Message-ID",
                    self.database,
                    msg["Message-ID"],
                )
                raise
            if refused:
                note = "refused recipients: " + "; ".join(f"{k}: {v}" for k, v in refused.items())
                cur.execute(render("mail_note.sql", self.schema), [did, note])
            return "delivered"
        finally:
            if not committed and not conn.closed:
                try:
                    conn.execute("ROLLBACK")
                except psycopg.Error:
                    conn.close()

    def next_due(self) -> float | None:
        row = self._cursor().execute(render("mail_next_due.sql", self.schema)).fetchone()
        value = None if row is None else next(iter(row.values()))
        return None if value is None else max(0.0, float(value))

    def cycle(
        self, *, ignore_schedule: bool = False, count: bool = False, config_age: float = 0.0
    ) -> DatabaseReport:
        """Claim new rows and send what is due; one pass (``count``: count what is left).

        The SMTP connections stay open for the next pass (see SmtpSession).
        """
        self.load_config(config_age)
        if self.mode == "none":
            return DatabaseReport(self.database, skipped="mail mode none")
        claimed = self.claim()
        report = self.send_due(ignore_schedule=ignore_schedule)
        undelivered = self._undelivered() if count else 0
        return replace(report, claimed=claimed, undelivered=undelivered)

    def _undelivered(self) -> int:
        row = self._cursor().execute(render("mail_status.sql", self.schema)).fetchone()
        raw = (row or {}).get("mail") or {}
        return int(raw.get("pending") or 0) + int(raw.get("failing") or 0)


def _dsn_host(dsn: str) -> str | None:
    """The server name of a DSN (for mails about DDL that came over the local socket)."""
    where = describe_dsn(dsn)
    host = where.split("@")[-1].rsplit(":", 1)[0]
    return None if host in ("local socket", "") or host.startswith("/") else host


# -- targets and entry points ----------------------------------------------------------


@dataclass(frozen=True)
class _Setup:
    dsn: str
    schema: str
    cfg: Config
    worker: WorkerSettings
    renderer: Renderer
    templates: Any
    databases: tuple[str, ...] = ()
    all_databases: bool = False
    errors: tuple[str, ...] = field(default=())


def _setup(config: Config) -> _Setup:
    dsn = config["dsn"]
    if not dsn:
        raise ConfigError("no server given: use --dsn, AUDITOR_DSN or dsn: in the config file")
    schema = check_schema_name(config["schema"])
    templates = mail_config.templates_from_config(config)
    renderer = mail_config.check_templates(templates)
    mail_config.smtp_settings(config)  # bad SMTP settings fail before anything runs
    for addr in config["mail_to"]:
        mail_config.check_address(addr, "mail_to")
    return _Setup(
        str(dsn),
        schema,
        config,
        WorkerSettings.from_config(config),
        renderer,
        templates,
        tuple(config["databases"]),
        bool(config["all_databases"]),
    )


def _template_databases(conn: psycopg.Connection[Any]) -> set[str]:
    return {str(r[0]) for r in conn.execute(sql_text("databases.sql")).fetchall() if r[2]}


def _list_targets(setup: _Setup) -> list[str]:
    """The databases to serve: the ones named, else (``--all-databases``) every one with auditor."""
    return [name for name, _ in _list_targets_kind(setup)]


def _list_targets_kind(setup: _Setup) -> list[tuple[str, bool]]:
    """(database, is a template) for each database to serve."""
    with connect(setup.dsn, application_name=APPLICATION) as main:
        session = _session(main)
        names = _targets(main, session, setup.databases, setup.all_databases)
        templates = _template_databases(main)
    if not setup.all_databases:
        return [(name, name in templates) for name in names]
    out = []
    for name in names:
        try:
            with connect(setup.dsn, dbname=name, application_name=APPLICATION) as conn:
                row = conn.execute(sql_text("mail_installed.sql"), {"schema": setup.schema})
                found = row.fetchone()
            if found and found[0]:
                out.append((name, name in templates))
        except (ConnectionFailed, psycopg.Error) as exc:
            log.warning("%s: skipped: %s", name, exc)
    return out


def _mailer(setup: _Setup, database: str) -> DatabaseMailer:
    return DatabaseMailer(
        setup.dsn,
        database,
        setup.schema,
        setup.cfg,
        setup.worker,
        setup.renderer,
        setup.templates,
    )


def deliver_pending(config: Config) -> NotifyReport:
    """``auditor notify --once``: claim and send everything undelivered, then return.

    Retries due or not (cron spaces the runs).  A database that cannot be reached
    is reported (exit code 2) and the others are still served.
    """
    setup = _setup(config)
    server = describe_dsn(setup.dsn)
    reports: list[DatabaseReport] = []
    for name in _list_targets(setup):
        mailer = _mailer(setup, name)
        try:
            reports.append(mailer.cycle(ignore_schedule=True, count=True))
        except AuditorError as exc:
            reports.append(DatabaseReport(name, error=str(exc)))
        except psycopg.Error as exc:
            reports.append(DatabaseReport(name, error=_pg_error(exc)))
        finally:
            mailer.close()
    return NotifyReport(server, tuple(reports))


class _DatabaseLoop:
    """The long-running loop of one database (its own thread).

    A template database (template1, which install covers so that new databases
    inherit the auditor) is only visited every poll interval and never held open:
    CREATE DATABASE refuses to copy a template that has other sessions for more
    than five seconds.
    """

    def __init__(self, mailer: DatabaseMailer, stop: threading.Event, *, visit: bool) -> None:
        self.mailer = mailer
        self.stop = stop
        self.visit = visit
        self.thread = threading.Thread(
            target=self.run, name=f"auditor-notify-{mailer.database}", daemon=True
        )

    @contextmanager
    def _listening(self) -> Iterator[psycopg.Connection[Any]]:
        m = self.mailer
        conn = connect(m.dsn, dbname=m.database, application_name=APPLICATION)
        try:
            conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(notify_channel(m.schema))))
            yield conn
        finally:
            conn.close()

    def _visits(self) -> None:
        m = self.mailer
        while not self.stop.is_set():
            try:
                self._log(m.cycle())
            except (ConnectionFailed, psycopg.Error) as exc:
                reason = str(exc) if isinstance(exc, ConnectionFailed) else _pg_error(exc)
                log.warning("%s: %s", m.database, mask(reason))
            except AuditorError as exc:
                log.error("%s: %s", m.database, mask(str(exc)))
            except Exception:  # keep the other databases served; say what happened
                log.exception("%s: unexpected error", m.database)
            finally:
                m.close()
            self.stop.wait(m.worker.poll_interval)

    def run(self) -> None:
        if self.visit:
            self._visits()
            return
        m = self.mailer
        pause = 0.5
        while not self.stop.is_set():
            try:
                with self._listening() as listener:
                    report = m.cycle()
                    if pause > 0.5:
                        log.info("%s: connected again", m.database)
                    pause = 0.5
                    self._log(report)
                    self._serve(listener)
            except (ConnectionFailed, psycopg.OperationalError, psycopg.InterfaceError) as exc:
                reason = str(exc) if isinstance(exc, ConnectionFailed) else _pg_error(exc)
                log.warning(
                    "%s: PostgreSQL connection lost or refused (%s); retrying in %.1f s",
                    m.database,
                    mask(reason),
                    pause,
                )
                m.close()
                self.stop.wait(pause)
                pause = min(pause * 2, RECONNECT_MAX)
            except AuditorError as exc:
                log.error("%s: %s; retrying in %.0f s", m.database, mask(str(exc)), RECONNECT_MAX)
                m.close()
                self.stop.wait(RECONNECT_MAX)
            except Exception:  # keep the other databases served; say what happened
                log.exception("%s: unexpected error; retrying in %.0f s", m.database, RECONNECT_MAX)
                m.close()
                self.stop.wait(RECONNECT_MAX)
        m.close()

    def _serve(self, listener: psycopg.Connection[Any]) -> None:
        m = self.mailer
        poll = m.worker.poll_interval
        last = time.monotonic()
        due = m.next_due()
        due_at = None if due is None else time.monotonic() + due
        while not self.stop.is_set():
            now = time.monotonic()
            wait = min(0.5, max(0.0, last + poll - now))
            if due_at is not None:
                wait = min(wait, max(0.0, due_at - now))
            woken = False
            for _ in listener.notifies(timeout=max(wait, 0.05), stop_after=1):
                woken = True
            if woken:
                for _ in listener.notifies(timeout=0):
                    pass  # the rest of a statement's notifications: one pass serves them all
            now = time.monotonic()
            if woken or now - last >= poll or (due_at is not None and now >= due_at):
                self._log(m.cycle(config_age=CONFIG_MAX_AGE))
                last = time.monotonic()
                due = m.next_due()
                # A mail due now but not sent (another worker holds it): look again in 1 s.
                due_at = None if due is None else last + max(due, 1.0)

    @staticmethod
    def _log(report: DatabaseReport) -> None:
        if report.claimed or report.failed:
            log.info(
                "%s: %d new statement(s), %d delivered, %d failed, %d undelivered",
                report.database,
                report.claimed,
                report.delivered,
                report.failed,
                report.undelivered,
            )


def run_worker(
    config: Config,
    stop: threading.Event,
    *,
    on_ready: Callable[[list[str]], None] | None = None,
) -> None:
    """Serve the configured databases until ``stop`` is set (one thread per database).

    With ``--all-databases`` new databases with auditor are picked up every
    :data:`RESCAN_INTERVAL` seconds.  ``on_ready`` gets the served database names
    once every loop has started (the demo and tests wait for it).
    """
    setup = _setup(config)
    loops: dict[str, _DatabaseLoop] = {}

    def start_new() -> None:
        for name, template in _list_targets_kind(setup):
            if name not in loops:
                loop = _DatabaseLoop(_mailer(setup, name), stop, visit=template)
                loops[name] = loop
                loop.thread.start()
                log.info("%s: serving DDL mail of schema %s", name, setup.schema)

    start_new()
    if not loops:
        raise ConfigError(
            f"no database with auditor's mail tables to serve on {describe_dsn(setup.dsn)}"
        )
    if on_ready is not None:
        on_ready(sorted(loops))
    last_scan = time.monotonic()
    while not stop.wait(0.5):
        if setup.all_databases and time.monotonic() - last_scan >= RESCAN_INTERVAL:
            last_scan = time.monotonic()
            try:
                start_new()
            except (AuditorError, psycopg.Error) as exc:
                log.warning("looking for new databases failed: %s", mask(str(exc)))
    for loop in loops.values():
        loop.thread.join(timeout=30)


__all__ = [
    "DatabaseMailer",
    "DatabaseReport",
    "NotifyReport",
    "WorkerSettings",
    "deliver_pending",
    "format_report",
    "run_worker",
]
