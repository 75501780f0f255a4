"""The workloads: DDL that nobody here wrote, run the way its own tools run it.

Each workload runs its steps against a cluster that has the auditor installed in
every database (``--all-databases``, so databases created later inherit it from
``template1``) and records what ran (command, application name, exit code,
seconds) so that a finding can be traced to the step, file and tool that caused it.
Every step sets its own ``application_name``; :class:`Workload` says which names
are its own and which high findings it really calls for (it uses ``SET SESSION
AUTHORIZATION``, it creates event triggers).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from auditor.cluster import TempCluster

HERE = Path(__file__).resolve().parent
REGRESS_DIR = HERE / "regress"
DJANGO_DIR = HERE / "djangoapp"

#: The vendored regression files in the order of PostgreSQL 15's parallel_schedule.
REGRESS_FILES: tuple[str, ...] = (
    "test_setup", "enum",
    "create_operator", "create_procedure", "create_table", "create_type",
    "create_index", "create_view",
    "create_aggregate", "create_function_sql", "create_cast", "constraints", "triggers",
    "inherit", "typed_table", "drop_if_exists", "updatable_views", "create_am",
    "select_into", "namespace",
    "privileges", "matview", "replica_identity", "rowsecurity", "object_address",
    "identity", "generated",
    "create_table_like", "alter_generic", "create_role",
    "rules",
    "publication",
    "foreign_key", "cluster", "dependency", "foreign_data",
    "domain", "truncate", "alter_table", "sequence",
    "indexing", "reloptions",
    "event_trigger",
)  # fmt: skip


@dataclass(frozen=True)
class StepRun:
    """One command a workload ran."""

    workload: str
    app: str
    command: str
    returncode: int
    started: datetime
    ended: datetime
    output: Path | None = None

    @property
    def seconds(self) -> float:
        return (self.ended - self.started).total_seconds()


@dataclass
class Context:
    """What a workload runs against: the cluster, the client tools, a scratch directory."""

    cluster: TempCluster
    clients: Path  # psql, pg_dump, pg_restore, pgbench of the server's major
    work: Path
    debian_psql: Path = Path("/usr/lib/postgresql/15/bin/psql")
    runs: list[StepRun] = field(default_factory=list)

    def env(self, app: str, user: str | None = None, **extra: str) -> dict[str, str]:
        """libpq environment for a client tool: TCP to the cluster, as ``user``."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        env.update(
            PGHOST="127.0.0.1",
            PGPORT=str(self.cluster.port),
            PGUSER=user or self.cluster.superuser,
            PGAPPNAME=app,
            LC_ALL="C.UTF-8",
        )
        env.update(extra)
        return env

    def run(
        self,
        workload: str,
        app: str,
        args: Sequence[str],
        *,
        user: str | None = None,
        stdin: Path | None = None,
        stdout: Path | None = None,
        env: dict[str, str] | None = None,
        timeout: float = 600,
    ) -> StepRun:
        """Run one client command; its output goes to a file under ``work`` (or ``stdout``)."""
        out = stdout or self.work / "out" / f"{app.replace('/', '_')}.out"
        out.parent.mkdir(parents=True, exist_ok=True)
        started = datetime.now(UTC)
        with (
            open(stdin, "rb") if stdin else open(os.devnull, "rb") as fin,
            open(out, "wb") as fout,
        ):
            proc = subprocess.run(
                list(args),
                stdin=fin,
                stdout=fout,
                stderr=subprocess.STDOUT if stdout is None else None,
                env=env or self.env(app, user),
                timeout=timeout,
                cwd=str(self.work),
                check=False,
            )
        step = StepRun(workload, app, " ".join(args), proc.returncode, started,
                       datetime.now(UTC), out)  # fmt: skip
        self.runs.append(step)
        return step

    def sql(self, workload: str, app: str, query: str, *, db: str = "postgres") -> None:
        """One statement over the simple protocol, like ``psql -c``; errors are kept."""
        started = datetime.now(UTC)
        rc = 0
        try:
            self.cluster.execute(query, dbname=db, application_name=app)
        except Exception:
            rc = 1
        self.runs.append(StepRun(workload, app, query, rc, started, datetime.now(UTC)))


@dataclass(frozen=True)
class Workload:
    """A named workload: its steps and what it legitimately causes."""

    name: str
    #: application_name prefixes its steps use (findings are traced by them).
    apps: tuple[str, ...]
    run: Callable[[Context], None]
    #: Runs ``SET SESSION AUTHORIZATION``: IMPERSONATED_DDL is called for.
    uses_session_authorization: bool = False
    #: Creates, alters or drops event triggers: EVENT_TRIGGER_DDL is called for.
    creates_event_triggers: bool = False
    #: Short description for the report.
    what: str = ""

    def owns(self, application: str | None) -> bool:
        return bool(application) and any(
            application == a or application.startswith(a) for a in self.apps
        )


# -- PostgreSQL's regression SQL ---------------------------------------------------


def _regress_uses(needle: str, files: Sequence[str]) -> bool:
    return any(
        needle in (REGRESS_DIR / "sql" / f"{name}.sql").read_text(encoding="utf-8").upper()
        for name in files
    )


def run_regress(ctx: Context, files: Sequence[str] = REGRESS_FILES) -> None:
    """Like ``pg_regress``: a database ``regression`` and one ``psql -X -a -q`` per file.

    pg_regress creates the database from template0; here it comes from template1
    (the auditor is installed there, as on a monitored server) and gets the same
    ``ALTER DATABASE ... SET`` lines.  The variables the files read with
    ``\\getenv`` point at the vendored directory, which has no data files and no
    ``regress.so``: the COPY and C-function statements fail, as errors are part of
    pg_regress's expected output anyway.
    """
    wl = "regress"
    ctx.sql(wl, "pg_regress", 'CREATE DATABASE "regression"')
    ctx.sql(
        wl,
        "pg_regress",
        "ALTER DATABASE \"regression\" SET lc_messages TO 'C';"
        "ALTER DATABASE \"regression\" SET lc_monetary TO 'C';"
        "ALTER DATABASE \"regression\" SET lc_numeric TO 'C';"
        "ALTER DATABASE \"regression\" SET lc_time TO 'C';"
        "ALTER DATABASE \"regression\" SET bytea_output TO 'hex';"
        "ALTER DATABASE \"regression\" SET timezone_abbreviations TO 'Default';",
    )
    for name in files:
        app = f"pg_regress/{name}"
        env = ctx.env(
            app,
            PGTZ="PST8PDT",
            PGDATESTYLE="Postgres, MDY",
            PG_ABS_SRCDIR=str(REGRESS_DIR),
            PG_ABS_BUILDDIR=str(ctx.work),
            PG_LIBDIR=str(ctx.work / "lib"),
            PG_DLSUFFIX=".so",
        )
        ctx.run(
            wl,
            app,
            [str(ctx.debian_psql), "-X", "-a", "-q", "-d", "regression",
             "-v", "HIDE_TABLEAM=on", "-v", "HIDE_TOAST_COMPRESSION=on"],
            stdin=REGRESS_DIR / "sql" / f"{name}.sql",
            env=env,
        )  # fmt: skip


REGRESS = Workload(
    "regress",
    ("pg_regress",),
    run_regress,
    uses_session_authorization=_regress_uses("SESSION AUTHORIZATION", REGRESS_FILES),
    creates_event_triggers=_regress_uses("EVENT TRIGGER", REGRESS_FILES),
    what=f"{len(REGRESS_FILES)} files of PostgreSQL 15's src/test/regress/sql, psql -X -a -q",
)


# -- pgbench, pg_dump, pg_restore --------------------------------------------------

APP_OWNER = "app_owner"


def run_pgbench(ctx: Context) -> None:
    """``pgbench -i --foreign-keys`` into ``bench``, owned by an application role."""
    wl = "pgbench"
    ctx.sql(wl, "pgbench-setup", f"CREATE ROLE {APP_OWNER} LOGIN")
    ctx.sql(wl, "pgbench-setup", f"CREATE DATABASE bench OWNER {APP_OWNER}")
    ctx.run(
        wl,
        "pgbench-init",
        [str(ctx.clients / "pgbench"), "-i", "-s", "1", "--foreign-keys", "-q", "bench"],
        user=APP_OWNER,
    )
    # A little more of what applications own: a view, a function, a sequence, a comment.
    ctx.sql(
        wl,
        "pgbench-extra",
        "CREATE VIEW branch_totals AS SELECT bid, sum(abalance) FROM pgbench_accounts GROUP BY bid;"
        "CREATE SEQUENCE invoice_no; COMMENT ON TABLE pgbench_history IS 'teller history';"
        f"ALTER VIEW branch_totals OWNER TO {APP_OWNER}; ALTER SEQUENCE invoice_no OWNER TO "
        f"{APP_OWNER}",
        db="bench",
    )


PGBENCH = Workload(
    "pgbench",
    ("pgbench-",),
    run_pgbench,
    what="pgbench -i -s 1 --foreign-keys as an application role, plus a view and a sequence",
)


def run_dump_restore(ctx: Context) -> None:
    """Dump ``bench`` (auditor schema and all, as pg_dump does) and restore it four ways."""
    wl = "dump"
    plain = ctx.work / "bench.sql"
    custom = ctx.work / "bench.dump"
    ctx.run(wl, "pg_dump-plain", [str(ctx.clients / "pg_dump"), "-Fp", "bench"], stdout=plain)
    ctx.run(wl, "pg_dump-custom", [str(ctx.clients / "pg_dump"), "-Fc", "-f", str(custom), "bench"])
    psql = ctx.clients / "psql" if (ctx.clients / "psql").is_file() else ctx.debian_psql
    targets = {
        "restore_plain": ("psql-restore", [str(psql), "-X", "-q", "-d", "restore_plain",
                                           "-f", str(plain)]),
        "restore_custom": ("pg_restore-plain", [str(ctx.clients / "pg_restore"),
                                                "-d", "restore_custom", str(custom)]),
        "restore_ssa": ("pg_restore-ssa", [str(ctx.clients / "pg_restore"),
                                           "--use-set-session-authorization",
                                           "-d", "restore_ssa", str(custom)]),
        "restore_jobs": ("pg_restore-jobs2", [str(ctx.clients / "pg_restore"), "--jobs", "2",
                                              "-d", "restore_jobs", str(custom)]),
    }  # fmt: skip
    for db, (app, args) in targets.items():
        ctx.sql(wl, "dump-setup", f"CREATE DATABASE {db}")
        ctx.run(wl, app, args)


DUMP_RESTORE = Workload(
    "dump",
    ("pg_dump-", "psql-restore", "pg_restore-", "dump-setup"),
    run_dump_restore,
    uses_session_authorization=True,
    # The dump of an audited database holds the auditor's own event triggers.
    creates_event_triggers=True,
    what="pg_dump bench | psql; pg_dump -Fc + pg_restore plain, "
    "--use-set-session-authorization, --jobs 2 (targets created from template1)",
)


# -- Django -------------------------------------------------------------------------


def run_django(ctx: Context) -> None:
    """``manage.py migrate`` of contrib apps and a small app (AddIndexConcurrently), then
    the app back to zero and forward again."""
    wl = "django"
    ctx.sql(wl, "django-setup", "CREATE DATABASE django_site")
    env = ctx.env("django-migrate")
    env.update(
        PYTHONPATH=str(DJANGO_DIR),
        DJANGO_SETTINGS_MODULE="site_settings",
        MATRIX_DB_PORT=str(ctx.cluster.port),
        MATRIX_DB_NAME="django_site",
    )
    manage = [sys.executable, "-m", "django"]
    for app, args in (
        ("django-migrate", ["migrate", "--no-input"]),
        ("django-migrate-zero", ["migrate", "shop", "zero", "--no-input"]),
        ("django-migrate-again", ["migrate", "--no-input"]),
    ):
        ctx.run(wl, app, [*manage, *args], env={**env, "MATRIX_DB_APP": app})


DJANGO = Workload(
    "django",
    ("django-",),
    run_django,
    what="Django migrate of auth, contenttypes, sessions, admin and an app with "
    "AddIndexConcurrently; back to zero and forward again",
)


def django_available() -> str | None:
    """Why the Django workload cannot run here, or None."""
    try:
        import django
    except ImportError:
        return "Django is not installed (pip install -e '.[test]')"
    if django.VERSION < (4, 2):
        return f"Django {django.get_version()} is too old"
    return None


ALL: tuple[Workload, ...] = (REGRESS, PGBENCH, DUMP_RESTORE, DJANGO)


def for_major(major: int) -> tuple[tuple[Workload, ...], dict[str, str]]:
    """The workloads that can run against ``major`` and why the others cannot."""
    skipped: dict[str, str] = {}
    chosen = []
    for wl in ALL:
        if wl is DJANGO:
            why = django_available()
            if why is None and major < 14:
                import django

                if django.VERSION >= (5, 2):
                    why = f"Django {django.get_version()} supports PostgreSQL 14 and later"
            if why:
                skipped[wl.name] = why
                continue
        chosen.append(wl)
    return tuple(chosen), skipped
