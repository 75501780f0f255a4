"""The ``auditor`` command line: the only module that imports Typer.

Each command turns its options into a :class:`~auditor.config.Config`, calls
one core function and renders the result.  :class:`AuditorGroup` maps every
:class:`~auditor.errors.AuditorError` to a one-line message and exit code 2,
in this one place.
"""

from __future__ import annotations

import os
import sys
from collections import deque
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core

from auditor import __version__
from auditor.config import Config, load_config
from auditor.errors import AuditorError, ConfigError, LogInputError
from auditor.redact import mask
from auditor.terminal import json_text, lines, visible


def _say(text: str, *, err: bool = False) -> None:
    """Print multi-line text for people: secrets masked, control characters shown
    as ``<U+XXXX>`` (newlines and tabs kept).  Every command's text goes through
    here or :func:`_line`, so nothing from a log or a catalog drives the terminal."""
    typer.echo(lines(mask(text)), err=err)


def _line(text: str, *, err: bool = False) -> None:
    """Print one line: like :func:`_say`, and a newline inside shows as a tag too."""
    typer.echo(visible(mask(text)), err=err)


def _color() -> bool:
    """Colour only on a terminal, and never when ``NO_COLOR`` is set (no-color.org)."""
    return sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _type_word(param: Any) -> str:
    """``TEXT``, ``INTEGER``, ``NUMBER`` or ``PATH`` for an option's value."""
    bare = getattr(param, "bare_type", None)
    name = str(bare() if callable(bare) else getattr(param.type, "name", "text")).lower()
    for key, word in (("int", "INTEGER"), ("float", "NUMBER"), ("path", "PATH")):
        if key in name:
            return word
    return "TEXT"


def _dba_metavars(params: list[Any]) -> list[Any]:
    """Help shows what a DBA types: ``TEXT``, ``INTEGER``, ``FILE``, the choices;
    never Python's ``<list[str]>``, and nothing after a flag."""
    for param in params:
        if getattr(param, "param_type_name", "") != "option" or param.metavar is not None:
            continue
        param.metavar = "" if getattr(param, "is_flag", False) else _type_word(param)
    return params


class AuditorCommand(typer.core.TyperCommand):
    """A command whose help names value types as a DBA reads them."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _dba_metavars(list(super().get_params(ctx)))


class AuditorGroup(typer.core.TyperGroup):
    """Turns AuditorError into ``auditor: error: ...`` on stderr and exit code 2."""

    def get_params(self, ctx: Any) -> list[Any]:
        return _dba_metavars(list(super().get_params(ctx)))

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except AuditorError as exc:
            _line(f"auditor: error: {exc}", err=True)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            typer.echo("auditor: interrupted", err=True)
            raise typer.Exit(130) from None


app = typer.Typer(
    cls=AuditorGroup,
    name="auditor",
    help=(
        "Forensic auditor for PostgreSQL schema changes: event triggers and the "
        "server log record every DDL; reconcile explains every difference."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_show_locals=False,  # locals may hold passwords
    context_settings={"help_option_names": ["-h", "--help"]},
)

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        metavar="FILE",
        help="YAML config file (default: ./auditor.yaml, else /etc/auditor/auditor.yaml, "
        "when present and writable only by you or root).",
    ),
]


def _config(config_file: Path | None, **flags: Any) -> Config:
    """Options given on the command line, over env, over the file, over defaults; the
    file read (if any) is said on standard error, so nobody runs on a file unawares."""
    cfg = load_config(flags, config_file=config_file)
    if cfg.source is not None:
        _line(f"auditor: config {cfg.source.resolve()}", err=True)
    return cfg


def _version_callback(value: bool) -> None:
    if value:
        from auditor import capture_bulk
        from auditor.logs.columnar import describe

        typer.echo(f"auditor {__version__}")
        typer.echo(describe())
        typer.echo(capture_bulk.describe())
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version_callback, is_eager=True, help="Show the version."
        ),
    ] = False,
) -> None:
    """Forensic auditor for PostgreSQL schema changes."""


DsnOpt = Annotated[
    str | None,
    typer.Option(
        "--dsn", metavar="DSN", help="libpq connection string of the server (or AUDITOR_DSN)."
    ),
]
DatabaseOpt = Annotated[
    list[str] | None,
    typer.Option("--database", "-d", metavar="NAME", help="Database to act on (repeatable)."),
]
AllDatabasesOpt = Annotated[
    bool,
    typer.Option(
        "--all-databases", help="Every database that accepts connections, template1 included."
    ),
]
SchemaOpt = Annotated[
    str | None,
    typer.Option("--schema", metavar="NAME", help="Schema of the audit table (default auditor)."),
]
MailToOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--mail-to",
        metavar="ADDR",
        help="Recipient of DDL mails (repeatable; or mail_to: in config).",
    ),
]
MailFromOpt = Annotated[
    str | None, typer.Option("--mail-from", metavar="ADDR", help="Sender address.")
]
SmtpHostOpt = Annotated[
    str | None, typer.Option("--smtp-host", metavar="HOST", help="SMTP server.")
]
SmtpPortOpt = Annotated[int | None, typer.Option("--smtp-port", metavar="PORT", help="SMTP port.")]
SmtpSecurityOpt = Annotated[
    str | None,
    typer.Option(
        "--smtp-security", metavar="[none|starttls|tls]", help="Transport security (default none)."
    ),
]
SmtpUserOpt = Annotated[
    str | None,
    typer.Option(
        "--smtp-user",
        metavar="NAME",
        help="SMTP login; the password comes from smtp.password or AUDITOR_SMTP_PASSWORD only.",
    ),
]
LogOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--log",
        metavar="PATH",
        help="Log file, directory, glob, '-' (stdin) or 'sql:[PATTERN]' (needs --dsn); "
        "repeatable.  Default with a server: its log directory.",
    ),
]
LogFormatOpt = Annotated[
    str | None,
    typer.Option(
        "--log-format",
        metavar="[auto|stderr|csvlog|jsonlog|syslog|logplex|cloudsql|cnpg]",
        help="Log format (default auto: detected per file, which is what you want for a "
        "directory holding several).",
    ),
]
LogPrefixOpt = Annotated[
    str | None,
    typer.Option(
        "--log-line-prefix",
        metavar="FMT",
        help="The server's log_line_prefix (stderr logs; default: detected, or asked over --dsn).",
    ),
]
LogTimezoneOpt = Annotated[
    str | None,
    typer.Option(
        "--log-timezone",
        metavar="ZONE",
        help="The server's log_timezone (IANA name, e.g. America/New_York): places the times "
        "the logs print (default: SHOW log_timezone over --dsn).",
    ),
]
SinceOpt = Annotated[
    str | None,
    typer.Option(
        "--since",
        metavar="TIME",
        help="Start of the window (ISO-8601; without an offset: in log_timezone when known, "
        "else this machine's zone).",
    ),
]
UntilOpt = Annotated[
    str | None,
    typer.Option(
        "--until",
        metavar="TIME",
        help="End of the window (ISO-8601, exclusive; same zone rule as --since).",
    ),
]
TableFormatOpt = Annotated[
    str,
    typer.Option("--format", metavar="[table|csv|json]", help="Output format."),
]


def _output_format(value: str) -> str:
    output = value.lower()
    if output not in ("table", "csv", "json"):
        raise ConfigError(f"--format must be table, csv or json, not {value!r}")
    return output


def _smtp_flags(
    host: str | None, port: int | None, security: str | None, user: str | None
) -> dict[str, Any]:
    return {
        "smtp.host": host,
        "smtp.port": port,
        "smtp.security": security,
        "smtp.username": user,
    }


def _dsn(cfg: Config) -> str:
    dsn = cfg["dsn"]
    if not dsn:
        raise ConfigError(
            "no server given: use --dsn, AUDITOR_DSN, dsn: in the config file, or libpq's "
            "PGHOST/PGPORT/PGUSER/PGDATABASE or PGSERVICE"
        )
    return str(dsn)


@app.command(cls=AuditorCommand)
def install(
    dsn: DsnOpt = None,
    database: DatabaseOpt = None,
    all_databases: AllDatabasesOpt = False,
    schema: SchemaOpt = None,
    reader_role: Annotated[
        str | None,
        typer.Option(
            "--reader-role", metavar="ROLE", help="Create/grant a read-only role for reconcile."
        ),
    ] = None,
    mail_mode: Annotated[
        str | None,
        typer.Option(
            "--mail-mode",
            metavar="[outbox|plpython|none]",
            help="outbox (default: NOTIFY, auditor notify mails), plpython (the server "
            "mails from inside the transaction) or none.",
        ),
    ] = None,
    mail_to: MailToOpt = None,
    mail_from: MailFromOpt = None,
    strict: Annotated[
        bool,
        typer.Option("--strict", help="plpython mode: refuse DDL whose mail cannot be delivered."),
    ] = False,
    notify_role: Annotated[
        str | None,
        typer.Option(
            "--notify-role",
            metavar="ROLE",
            help="Create/grant a role for auditor notify to run as.",
        ),
    ] = None,
    smtp_host: SmtpHostOpt = None,
    smtp_port: SmtpPortOpt = None,
    smtp_security: SmtpSecurityOpt = None,
    smtp_user: SmtpUserOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the exact SQL; change nothing.")
    ] = False,
    config_file: ConfigOpt = None,
) -> None:
    """Install the audit schema and ENABLE ALWAYS event triggers (idempotent, upgrades in place)."""
    from auditor import capture, mail, outbox

    cfg = _config(
        config_file,
        dsn=dsn,
        databases=database,
        all_databases=all_databases or None,
        schema=schema,
        reader_role=reader_role,
        mail_mode=mail_mode,
        mail_to=mail_to,
        mail_from=mail_from,
        strict=strict or None,
        notify_role=notify_role,
        **_smtp_flags(smtp_host, smtp_port, smtp_security, smtp_user),
    )
    mode = str(cfg["mail_mode"])
    settings = None
    if mode == "plpython" or (mode == "outbox" and cfg["mail_to"]):
        settings = mail.mail_settings(cfg, require_recipients=mode == "plpython")
    mail_install = outbox.MailInstall(
        mode=mode, strict=bool(cfg["strict"]), settings=settings, notify_role=cfg["notify_role"]
    )
    report = capture.install(
        _dsn(cfg),
        databases=cfg["databases"],
        all_databases=cfg["all_databases"],
        schema=cfg["schema"],
        reader_role=cfg["reader_role"],
        dry_run=dry_run,
        mail=mail_install,
    )
    for problem in report.warnings:
        _line(f"auditor: warning: {problem}", err=True)
    _say(capture.format_install(report))


@app.command(cls=AuditorCommand)
def uninstall(
    dsn: DsnOpt = None,
    database: DatabaseOpt = None,
    all_databases: AllDatabasesOpt = False,
    schema: SchemaOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print the exact SQL; change nothing.")
    ] = False,
    config_file: ConfigOpt = None,
) -> None:
    """Remove everything install created (audit rows included), and nothing else."""
    from auditor import capture

    cfg = _config(
        config_file,
        dsn=dsn,
        databases=database,
        all_databases=all_databases or None,
        schema=schema,
    )
    report = capture.uninstall(
        _dsn(cfg),
        databases=cfg["databases"],
        all_databases=cfg["all_databases"],
        schema=cfg["schema"],
        dry_run=dry_run,
    )
    _say(capture.format_uninstall(report))


@app.command(cls=AuditorCommand)
def status(
    dsn: DsnOpt = None,
    database: DatabaseOpt = None,
    all_databases: AllDatabasesOpt = False,
    schema: SchemaOpt = None,
    output_format: Annotated[
        str, typer.Option("--format", metavar="[text|json]", help="Output format.")
    ] = "text",
    config_file: ConfigOpt = None,
) -> None:
    """Check both channels; exit 1 if one is weakened, 2 if the server cannot be checked."""
    import json

    from auditor import capture

    if output_format.lower() not in ("text", "json"):
        raise ConfigError(f"--format must be text or json, got {output_format!r}")
    cfg = _config(
        config_file,
        dsn=dsn,
        databases=database,
        all_databases=all_databases or None,
        schema=schema,
    )
    report = capture.status(
        _dsn(cfg),
        databases=cfg["databases"],
        all_databases=cfg["all_databases"],
        schema=cfg["schema"],
    )
    if output_format.lower() == "json":
        typer.echo(json_text(json.dumps(report.to_dict(), indent=2, default=str)))
    else:
        _say(capture.format_status(report))
    for error in report.errors:
        _line(f"auditor: error: {error}", err=True)
    raise typer.Exit(report.exit_code)


@app.command(cls=AuditorCommand)
def notify(
    dsn: DsnOpt = None,
    database: DatabaseOpt = None,
    all_databases: AllDatabasesOpt = False,
    schema: SchemaOpt = None,
    once: Annotated[
        bool, typer.Option("--once", help="Send what is pending, then exit (for cron).")
    ] = False,
    smtp_host: SmtpHostOpt = None,
    smtp_port: SmtpPortOpt = None,
    smtp_security: SmtpSecurityOpt = None,
    smtp_user: SmtpUserOpt = None,
    mail_to: MailToOpt = None,
    mail_from: MailFromOpt = None,
    config_file: ConfigOpt = None,
) -> None:
    """Mail every DDL to the DBA team: LISTEN for audit rows, one mail per statement.

    Runs until stopped (SIGTERM, Ctrl-C); with --once it sends what is pending and
    exits 0 (all delivered), 1 (mail still undelivered) or 2 (a database unreachable).
    """
    import logging
    import signal
    import threading

    from auditor import notify as notify_mod

    cfg = _config(
        config_file,
        dsn=dsn,
        databases=database,
        all_databases=all_databases or None,
        schema=schema,
        mail_to=mail_to,
        mail_from=mail_from,
        **_smtp_flags(smtp_host, smtp_port, smtp_security, smtp_user),
    )
    _dsn(cfg)
    if once:
        result = notify_mod.deliver_pending(cfg)
        _say(notify_mod.format_report(result))
        raise typer.Exit(result.exit_code)

    class _Masked(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return visible(mask(super().format(record)))

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Masked("%(asctime)s auditor notify: %(message)s"))
    logger = logging.getLogger("auditor.notify")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    stop = threading.Event()

    def _stop(signum: int, frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, _stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        notify_mod.run_worker(cfg, stop)
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
        logger.removeHandler(handler)


@app.command(cls=AuditorCommand)
def reconcile(
    dsn: DsnOpt = None,
    log: LogOpt = None,
    log_format: LogFormatOpt = None,
    log_line_prefix: LogPrefixOpt = None,
    log_timezone: LogTimezoneOpt = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    state: Annotated[
        Path | None,
        typer.Option("--state", metavar="FILE", help="State file for incremental (nightly) runs."),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", metavar="DIR", help="Output directory (default ./auditor-report)."),
    ] = None,
    fail_on: Annotated[
        str | None,
        typer.Option(
            "--fail-on",
            metavar="[info|low|medium|high|critical]",
            help="Exit 1 on findings at or above this severity (default high).",
        ),
    ] = None,
    database: DatabaseOpt = None,
    all_databases: AllDatabasesOpt = False,
    schema: SchemaOpt = None,
    reader_role: Annotated[
        str | None,
        typer.Option("--reader-role", metavar="ROLE", help="Read the audit tables as this role."),
    ] = None,
    mail_to: Annotated[
        list[str] | None,
        typer.Option(
            "--mail-to",
            metavar="ADDR",
            help="Mail the summary and report.html here (repeatable).",
        ),
    ] = None,
    config_file: ConfigOpt = None,
) -> None:
    """Pair the server log with the audit table and explain every difference.

    Writes findings.json, findings.csv and report.html into --out and prints a
    summary.  Exit 0: nothing at or above --fail-on (default high); 1: findings
    that need a human; 2: input that could not be read.
    """
    from auditor.reconcile import reconcile as run_reconcile
    from auditor.reconcile import summary_lines

    cfg = _config(
        config_file,
        dsn=dsn,
        logs=log,
        log_format=log_format,
        log_line_prefix=log_line_prefix,
        log_timezone=log_timezone,
        since=since,
        until=until,
        state=str(state) if state else None,
        out=str(out) if out else None,
        fail_on=fail_on,
        databases=database,
        all_databases=all_databases or None,
        schema=schema,
        reader_role=reader_role,
        report_mail_to=mail_to,
    )
    progress, finish = _progress_bar()
    try:
        result = run_reconcile(cfg, progress=progress)
    finally:
        finish()
    for line in summary_lines(result):
        _line(line)
    for error in result.errors:
        _line(f"auditor: error: {error}", err=True)
    if result.mailed:
        _line(f"report mailed to {', '.join(cfg['report_mail_to'])} ({result.mailed})")
    if result.mail_error:
        _line(f"auditor: error: {result.mail_error}", err=True)
        raise typer.Exit(2)
    raise typer.Exit(result.exit_code)


@app.command(cls=AuditorCommand)
def report(
    findings_json: Annotated[
        Path,
        typer.Argument(
            metavar="FINDINGS_JSON", help="findings.json written by reconcile.", show_default=False
        ),
    ],
    html: Annotated[
        Path | None,
        typer.Option(
            "--html", metavar="FILE", help="HTML report to write (default: report.html next to it)."
        ),
    ] = None,
    csv: Annotated[
        Path | None,
        typer.Option(
            "--csv", metavar="FILE", help="CSV to write (default: findings.csv next to it)."
        ),
    ] = None,
) -> None:
    """Render report.html and findings.csv again from a saved findings.json."""
    from auditor.report import report_from_json, summary_text

    doc, written = report_from_json(findings_json, html=html, csv_path=csv)
    _line(summary_text(doc))
    for path in written.values():
        _line(f"wrote {path}")


@app.command(cls=AuditorCommand)
def timeline(
    dsn: DsnOpt = None,
    log: LogOpt = None,
    log_format: LogFormatOpt = None,
    log_line_prefix: LogPrefixOpt = None,
    log_timezone: LogTimezoneOpt = None,
    object_name: Annotated[
        str | None,
        typer.Option(
            "--object",
            metavar="NAME",
            help="NAME (any schema) or SCHEMA.NAME, written as in SQL (unquoted parts fold "
            'to lower case, "Quoted.Parts" keep case and dots); renames are followed.',
        ),
    ] = None,
    user: Annotated[
        str | None,
        typer.Option(
            "--user",
            metavar="ROLE",
            help="Only steps of this role (log user or audit row's users).",
        ),
    ] = None,
    session: Annotated[
        str | None,
        typer.Option("--session", metavar="ID", help="Only steps of this session id (%c)."),
    ] = None,
    since: SinceOpt = None,
    until: UntilOpt = None,
    database: DatabaseOpt = None,
    schema: SchemaOpt = None,
    output: TableFormatOpt = "table",
    no_context: Annotated[
        bool,
        typer.Option(
            "--no-context",
            help="Leave out the steps that weakened a channel (trigger disabled, gaps, ...) "
            "when they do not match the filters themselves.",
        ),
    ] = False,
    config_file: ConfigOpt = None,
) -> None:
    """The story of an object, user or session: both channels, step by step, in order.

    Each step shows the log's record (file:line), the trigger's rows (ids,
    objects) and the finding class where they disagree.  Filters combine with
    AND; without any, every step of the window is shown.
    """
    import shutil

    from auditor import timeline as tl_mod

    output = _output_format(output)
    cfg = _config(
        config_file,
        dsn=dsn,
        logs=log,
        log_format=log_format,
        log_line_prefix=log_line_prefix,
        log_timezone=log_timezone,
        since=since,
        until=until,
        databases=database,
        schema=schema,
    )
    progress, finish = _progress_bar()
    try:
        story = tl_mod.timeline(
            cfg,
            object_name=object_name,
            user=user,
            session=session,
            context=not no_context,
            progress=progress,
        )
    finally:
        finish()
    if output == "json":
        text = tl_mod.to_json(story)
    elif output == "csv":
        text = tl_mod.to_csv(story)
    else:
        tty = sys.stdout.isatty()
        width = max(shutil.get_terminal_size((100, 24)).columns, 80) if tty else 100
        text = tl_mod.render_table(story, width=width, color=_color())
    _write_stdout(text)
    if output != "table":
        for note in story.notes:
            _line(f"auditor: note: {note}", err=True)


def _write_stdout(text: str) -> None:
    """Write text whatever its characters (undecodable log bytes come back escaped)."""
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        sys.stdout.write(text.encode("utf-8", "backslashreplace").decode("utf-8"))
    else:
        sys.stdout.flush()
        buffer.write(text.encode("utf-8", "backslashreplace"))
    sys.stdout.flush()


@app.command(cls=AuditorCommand)
def scan(
    log: LogOpt = None,
    log_format: LogFormatOpt = None,
    log_line_prefix: LogPrefixOpt = None,
    log_timezone: LogTimezoneOpt = None,
    dsn: Annotated[
        str | None,
        typer.Option(
            "--dsn",
            metavar="DSN",
            help="Read log_line_prefix, time zone and 'sql:' logs from here.",
        ),
    ] = None,
    all_records: Annotated[
        bool,
        typer.Option(
            "--all",
            help="Print every record (markers, errors, server messages), not only statements.",
        ),
    ] = False,
    output: TableFormatOpt = "table",
    since: Annotated[
        str | None,
        typer.Option(
            "--since",
            metavar="TIME",
            help="Only records at or after this time (ISO-8601; without an offset: in "
            "log_timezone when known, else this machine's zone).",
        ),
    ] = None,
    until: Annotated[
        str | None,
        typer.Option("--until", metavar="TIME", help="Only records before this time (ISO-8601)."),
    ] = None,
    user: Annotated[
        list[str] | None,
        typer.Option("--user", metavar="ROLE", help="Only records of this user (repeatable)."),
    ] = None,
    database: Annotated[
        list[str] | None,
        typer.Option(
            "--database", "-d", metavar="NAME", help="Only records of this database (repeatable)."
        ),
    ] = None,
    application: Annotated[
        list[str] | None,
        typer.Option(
            "--application",
            metavar="NAME",
            help="Only records of this application_name (repeatable).",
        ),
    ] = None,
    jobs: Annotated[
        int | None,
        typer.Option(
            "--jobs", metavar="N", help="Worker processes, 1 or more (default: one per core)."
        ),
    ] = None,
    config_file: ConfigOpt = None,
) -> None:
    """Read server logs and print the statements found, one row each (every record with --all).

    Each row shows where it is (file:line), time, session, vxid, user,
    database, application, the error that failed it and the text.  The
    detected format and log_line_prefix, per-file counts and every warning
    (file:line) go to standard error; the records go to standard output.
    """
    from auditor.logs.render import RecordFilter
    from auditor.logs.scan import scan as run_scan

    output = _output_format(output)
    cfg = _config(
        config_file,
        logs=log,
        log_format=log_format,
        log_line_prefix=log_line_prefix,
        dsn=dsn,
        jobs=jobs,
        log_timezone=log_timezone,
    )
    if cfg["jobs"] is not None and int(cfg["jobs"]) < 1:
        raise ConfigError(
            f"jobs must be 1 or more (--jobs, AUDITOR_JOBS or jobs: in the config), "
            f"got {cfg['jobs']}"
        )
    specs = list(cfg["logs"])
    if not specs and cfg["dsn"]:
        from auditor.logs.scan import default_log_specs

        specs, where = default_log_specs(str(cfg["dsn"]), None)
        _line(f"auditor: note: {where}", err=True)
    progress, finish = _progress_bar()
    try:
        stream = run_scan(
            specs,
            dsn=cfg["dsn"],
            fmt=cfg["log_format"],
            prefix=cfg["log_line_prefix"],
            all_records=all_records,
            jobs=cfg["jobs"],
            progress=progress,
            log_timezone=cfg["log_timezone"],
        )
        selection = RecordFilter()
        if since or until or user or database or application:
            from auditor.logs.times import wall_clock_zone
            from auditor.reconcile import check_window, parse_when

            # Nothing is read yet; the zone the times are placed in is known.
            wall = wall_clock_zone(stream.log_timezone)
            window = parse_when(since, "--since", wall), parse_when(until, "--until", wall)
            check_window(*window)
            selection = RecordFilter(
                since=window[0],
                until=window[1],
                users=frozenset(user or ()),
                databases=frozenset(database or ()),
                applications=frozenset(application or ()),
            )
        _render_scan(stream, output, all_records, selection, progress_done=finish)
    finally:
        finish()


def _progress_bar() -> tuple[Any, Any]:
    """A byte progress bar on standard error when it is a terminal (else no-ops)."""
    if not sys.stderr.isatty():
        return None, lambda: None
    from rich.console import Console
    from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn

    bar = Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=Console(stderr=True, no_color=bool(os.environ.get("NO_COLOR")) or None),
        transient=True,
    )
    task = bar.add_task("reading logs", total=None)
    started = [False]

    def update(done: int, total: int) -> None:
        if not started[0]:
            bar.start()
            started[0] = True
        bar.update(task, completed=done, total=total or None)

    def finish() -> None:
        if started[0]:
            bar.stop()
            started[0] = False

    return update, finish


def _render_scan(
    stream: Any, output: str, all_records: bool, selection: Any, progress_done: Any
) -> None:
    """Print scan results: records on stdout, warnings and summaries on stderr."""
    import csv as csv_mod

    from auditor.logs.render import (
        COLUMNS,
        csv_cells,
        json_row,
        record_row,
        source_summary,
        table_header,
        table_line,
    )
    from auditor.model import LogRecord, ReadWarning

    parsed: dict[str, int] = {}
    shown: dict[str, int] = {}
    # Log bytes that are not UTF-8 are kept as lone surrogates (auditor.encoding).
    reconfigure = getattr(sys.stdout, "reconfigure", None)
    if reconfigure is not None:
        reconfigure(errors="backslashreplace")
    writer = None
    first = True
    if output == "csv":
        writer = csv_mod.DictWriter(sys.stdout, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
    elif output == "json":
        sys.stdout.write("[")
    else:
        sys.stdout.write(table_header() + "\n")

    def emit(rec: LogRecord, error: LogRecord | None = None) -> None:
        nonlocal first
        shown[rec.source.file] = shown.get(rec.source.file, 0) + 1
        if output == "table":
            sys.stdout.write(table_line(rec, error) + "\n")
        elif output == "csv":
            assert writer is not None
            writer.writerow(csv_cells(record_row(rec, error), COLUMNS))
        else:
            sys.stdout.write(("\n" if first else ",\n") + json_row(record_row(rec, error)))
        first = False

    # Without --all a statement's row shows the error that failed it.  The error
    # comes later in the log (usually right after), so rows wait in a bounded
    # window; an error whose statement has left the window gets its own row, and
    # the error of a statement the filters left out is left out too.
    pending: deque[LogRecord] = deque()
    waiting: set[Any] = set()
    dropped: deque[Any] = deque()
    dropped_set: set[Any] = set()
    errors: dict[Any, LogRecord] = {}

    def flush_one() -> None:
        rec = pending.popleft()
        waiting.discard(rec.source)
        emit(rec, errors.pop(rec.source, None))

    for item in stream:
        if isinstance(item, ReadWarning):
            _line(f"auditor: warning: {item}", err=True)
            continue
        parsed[item.source.file] = parsed.get(item.source.file, 0) + 1
        if all_records:  # --all can be huge: print as records come
            if selection.matches(item):
                emit(item)
        elif item.failed_statement is not None and item.failed_statement in waiting:
            errors[item.failed_statement] = item
        elif _not_a_row(item, dropped_set):
            continue
        elif not selection.matches(item):
            dropped.append(item.source)
            dropped_set.add(item.source)
            if len(dropped) > _ERROR_WINDOW:
                dropped_set.discard(dropped.popleft())
        else:
            pending.append(item)
            waiting.add(item.source)
            if len(pending) > _ERROR_WINDOW:
                flush_one()
    while pending:
        flush_one()
    if output == "json":
        sys.stdout.write("\n]\n" if not first else "]\n")
    sys.stdout.flush()
    progress_done()
    if stream.log_timezone:
        _line(f"auditor: log times placed in log_timezone {stream.log_timezone}", err=True)
    else:
        _line(
            "auditor: no log_timezone known (--log-timezone, --dsn): a zone abbreviation is "
            "placed only when the tz database gives it one UTC offset",
            err=True,
        )
    for note in stream.notes:
        _line(f"auditor: note: {note}", err=True)
    for stats in stream.sources:  # last: one line per file (scripts read the last line)
        _line(
            source_summary(stats, parsed.get(stats.source, 0), shown.get(stats.source, 0)),
            err=True,
        )
    server = stream.server
    if (
        server is not None
        and server.lc_messages
        and not server.lc_messages.startswith(("C", "POSIX", "en"))
    ):
        _line(
            f"auditor: warning: lc_messages is {server.lc_messages!r}: translated severity "
            "words and messages are not recognised; set lc_messages = 'C'",
            err=True,
        )
    failed = False
    for skip in stream.skipped:
        if skip.kind == "error" or (skip.kind == "refused" and skip.explicit):
            _line(f"auditor: error: {skip.reason}", err=True)
            failed = True
        else:
            _line(f"auditor: note: skipped {skip.reason}", err=True)
    usable = sum(s.records for s in stream.sources)
    warnings = sum(s.warnings for s in stream.sources)
    if usable == 0 and warnings:
        raise LogInputError("no log record could be read (see the warnings above)")
    if failed or any(s.damaged for s in stream.sources):
        raise typer.Exit(2)  # what could not be read was said above, with file and line


def _not_a_row(rec: Any, dropped: set[Any]) -> bool:
    """Without --all: markers and server messages, and the errors of statements the
    filters left out, are not rows."""
    if rec.failed_statement is not None:
        return rec.failed_statement in dropped
    from auditor.logs.render import one_row_per_statement

    return not one_row_per_statement(rec)


#: Records that wait for the error that may fail them (scan output without --all).
_ERROR_WINDOW = 2000


@app.command(cls=AuditorCommand)
def demo(
    out: Annotated[
        Path,
        typer.Option("--out", metavar="DIR", help="Directory for the reports, mails and logs."),
    ] = Path("auditor-demo"),
) -> None:
    """Run the whole product on a throwaway cluster and leave the results in --out.

    Self-contained: it reads no auditor.yaml and no AUDITOR_* variables.  Exits as
    the reconcile inside it does (1: the scripted evasions were found, as they
    should be; 2: it could not run).
    """
    from auditor.demo import run_demo

    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out}: exists and is not a directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"--out {out}: cannot create it ({exc.strerror or exc})") from None
    if not os.access(out, os.W_OK | os.X_OK):
        raise ConfigError(f"--out {out}: not writable")
    result = run_demo(out, echo=lambda line: _line(line))
    _say(result.summary)
    raise typer.Exit(result.exit_code)


def main() -> None:
    """Console-script entry point (``auditor`` and ``python -m auditor``)."""
    app(prog_name="auditor")
    sys.exit(0)
