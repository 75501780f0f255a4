"""The ``auditor`` command line: the only module that imports Typer.

Each command turns its options into a :class:`~auditor.config.Config`, calls
one core function and renders the result.  :class:`AuditorGroup` maps every
:class:`~auditor.errors.AuditorError` to a one-line message and exit code 2,
in this one place.
"""

from __future__ import annotations

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


class AuditorGroup(typer.core.TyperGroup):
    """Turns AuditorError into ``auditor: error: ...`` on stderr and exit code 2."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except AuditorError as exc:
            typer.echo(f"auditor: error: {mask(str(exc))}", err=True)
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
    typer.Option("--config", help="YAML config file (default ./auditor.yaml if present)."),
]


def _config(config_file: Path | None, **flags: Any) -> Config:
    """Options given on the command line, over env, over the file, over defaults."""
    return load_config(flags, config_file=config_file)


def _version_callback(value: bool) -> None:
    if value:
        typer.echo(f"auditor {__version__}")
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
    typer.Option("--dsn", help="libpq connection string of the server (or AUDITOR_DSN)."),
]
DatabaseOpt = Annotated[
    list[str] | None,
    typer.Option("--database", "-d", help="Database to act on (repeatable)."),
]
AllDatabasesOpt = Annotated[
    bool,
    typer.Option(
        "--all-databases", help="Every database that accepts connections, template1 included."
    ),
]
SchemaOpt = Annotated[
    str | None, typer.Option("--schema", help="Schema of the audit table (default auditor).")
]
MailToOpt = Annotated[
    list[str] | None,
    typer.Option("--mail-to", help="Recipient of DDL mails (repeatable; or mail_to: in config)."),
]
MailFromOpt = Annotated[str | None, typer.Option("--mail-from", help="Sender address.")]
SmtpHostOpt = Annotated[str | None, typer.Option("--smtp-host", help="SMTP server.")]
SmtpPortOpt = Annotated[int | None, typer.Option("--smtp-port", help="SMTP port.")]
SmtpSecurityOpt = Annotated[
    str | None, typer.Option("--smtp-security", help="none, starttls or tls.")
]
SmtpUserOpt = Annotated[
    str | None,
    typer.Option(
        "--smtp-user",
        help="SMTP login; the password comes from smtp.password or AUDITOR_SMTP_PASSWORD only.",
    ),
]


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
        raise ConfigError("no server given: use --dsn, AUDITOR_DSN or dsn: in the config file")
    return str(dsn)


@app.command()
def install(
    dsn: DsnOpt = None,
    database: DatabaseOpt = None,
    all_databases: AllDatabasesOpt = False,
    schema: SchemaOpt = None,
    reader_role: Annotated[
        str | None,
        typer.Option("--reader-role", help="Create/grant a read-only role for reconcile."),
    ] = None,
    mail_mode: Annotated[
        str | None,
        typer.Option(
            "--mail-mode",
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
        typer.Option("--notify-role", help="Create/grant a role for auditor notify to run as."),
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
        typer.echo(f"auditor: warning: {mask(str(problem))}", err=True)
    typer.echo(capture.format_install(report))


@app.command()
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
    typer.echo(capture.format_uninstall(report))


@app.command()
def status(
    dsn: DsnOpt = None,
    database: DatabaseOpt = None,
    all_databases: AllDatabasesOpt = False,
    schema: SchemaOpt = None,
    output_format: Annotated[
        str, typer.Option("--format", help="text or json.", case_sensitive=False)
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
        typer.echo(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        typer.echo(mask(capture.format_status(report)))
    for error in report.errors:
        typer.echo(f"auditor: error: {mask(error)}", err=True)
    raise typer.Exit(report.exit_code)


@app.command()
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
        typer.echo(notify_mod.format_report(result))
        raise typer.Exit(result.exit_code)

    class _Masked(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            return mask(super().format(record))

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


@app.command()
def reconcile(
    dsn: DsnOpt = None,
    log: Annotated[
        list[str] | None,
        typer.Option(
            "--log",
            help="Log file, directory, glob, '-' (stdin) or 'sql:[PATTERN]'; repeatable.",
        ),
    ] = None,
    log_format: Annotated[
        str | None, typer.Option("--log-format", help="auto (default), stderr, csvlog, jsonlog.")
    ] = None,
    log_line_prefix: Annotated[
        str | None,
        typer.Option("--log-line-prefix", help="The server's log_line_prefix (stderr logs)."),
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Start of the window (ISO-8601).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="End of the window (ISO-8601, exclusive).")
    ] = None,
    state: Annotated[
        Path | None, typer.Option("--state", help="State file for incremental (nightly) runs.")
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Output directory (default ./auditor-report)."),
    ] = None,
    fail_on: Annotated[
        str | None,
        typer.Option("--fail-on", help="Exit 1 on findings at or above: info..critical."),
    ] = None,
    database: DatabaseOpt = None,
    all_databases: AllDatabasesOpt = False,
    schema: SchemaOpt = None,
    reader_role: Annotated[
        str | None, typer.Option("--reader-role", help="Read the audit tables as this role.")
    ] = None,
    mail_to: Annotated[
        list[str] | None,
        typer.Option("--mail-to", help="Mail the summary and report.html here (repeatable)."),
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
    result = run_reconcile(cfg)
    for line in summary_lines(result):
        typer.echo(line)
    if result.mailed:
        typer.echo(f"report mailed to {', '.join(cfg['report_mail_to'])} ({result.mailed})")
    if result.mail_error:
        typer.echo(f"auditor: error: {mask(result.mail_error)}", err=True)
        raise typer.Exit(2)
    raise typer.Exit(result.exit_code)


@app.command()
def report(
    findings_json: Annotated[
        Path, typer.Argument(help="findings.json written by reconcile.", show_default=False)
    ],
    html: Annotated[
        Path | None,
        typer.Option("--html", help="HTML report to write (default: report.html next to it)."),
    ] = None,
    csv: Annotated[
        Path | None,
        typer.Option("--csv", help="CSV to write (default: findings.csv next to it)."),
    ] = None,
) -> None:
    """Render report.html and findings.csv again from a saved findings.json."""
    from auditor.report import report_from_json, summary_text

    doc, written = report_from_json(findings_json, html=html, csv_path=csv)
    typer.echo(summary_text(doc))
    for path in written.values():
        typer.echo(f"wrote {path}")


@app.command()
def timeline(
    dsn: DsnOpt = None,
    log: Annotated[
        list[str] | None,
        typer.Option(
            "--log",
            help="Log file, directory, glob, '-' (stdin) or 'sql:[PATTERN]'; repeatable.",
        ),
    ] = None,
    log_format: Annotated[
        str | None, typer.Option("--log-format", help="auto (default), stderr, csvlog, jsonlog.")
    ] = None,
    log_line_prefix: Annotated[
        str | None,
        typer.Option("--log-line-prefix", help="The server's log_line_prefix (stderr logs)."),
    ] = None,
    object_name: Annotated[
        str | None,
        typer.Option(
            "--object",
            help="NAME (any schema) or SCHEMA.NAME, quoted as in SQL; renames are followed.",
        ),
    ] = None,
    user: Annotated[
        str | None,
        typer.Option("--user", help="Only steps of this role (log user or audit row's users)."),
    ] = None,
    session: Annotated[
        str | None, typer.Option("--session", help="Only steps of this session id (%c).")
    ] = None,
    since: Annotated[
        str | None, typer.Option("--since", help="Start of the window (ISO-8601).")
    ] = None,
    until: Annotated[
        str | None, typer.Option("--until", help="End of the window (ISO-8601, exclusive).")
    ] = None,
    database: DatabaseOpt = None,
    schema: SchemaOpt = None,
    output: Annotated[
        str, typer.Option("--format", help="table (default), csv or json.")
    ] = "table",
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

    output = output.lower()
    if output not in ("table", "csv", "json"):
        raise ConfigError(f"--format must be table, csv or json, not {output!r}")
    cfg = _config(
        config_file,
        dsn=dsn,
        logs=log,
        log_format=log_format,
        log_line_prefix=log_line_prefix,
        since=since,
        until=until,
        databases=database,
        schema=schema,
    )
    story = tl_mod.timeline(
        cfg, object_name=object_name, user=user, session=session, context=not no_context
    )
    if output == "json":
        text = tl_mod.to_json(story)
    elif output == "csv":
        text = tl_mod.to_csv(story)
    else:
        tty = sys.stdout.isatty()
        width = max(shutil.get_terminal_size((100, 24)).columns, 80) if tty else 100
        text = tl_mod.render_table(story, width=width, color=tty)
    _write_stdout(text)
    if output != "table":
        for note in story.notes:
            typer.echo(f"auditor: note: {mask(note)}", err=True)


def _write_stdout(text: str) -> None:
    """Write text whatever its characters (undecodable log bytes come back escaped)."""
    buffer = getattr(sys.stdout, "buffer", None)
    if buffer is None:
        sys.stdout.write(text.encode("utf-8", "backslashreplace").decode("utf-8"))
    else:
        sys.stdout.flush()
        buffer.write(text.encode("utf-8", "backslashreplace"))
    sys.stdout.flush()


@app.command()
def scan(
    log: Annotated[
        list[str] | None,
        typer.Option(
            "--log",
            help="Log file, directory, glob, '-' (stdin) or 'sql:[PATTERN]' (needs --dsn); "
            "repeatable.",
        ),
    ] = None,
    log_format: Annotated[
        str | None,
        typer.Option("--log-format", help="auto (default), stderr, csvlog or jsonlog."),
    ] = None,
    log_line_prefix: Annotated[
        str | None,
        typer.Option("--log-line-prefix", help="The server's log_line_prefix (stderr logs)."),
    ] = None,
    dsn: Annotated[
        str | None,
        typer.Option("--dsn", help="Read log_line_prefix, time zone and 'sql:' logs from here."),
    ] = None,
    all_records: Annotated[
        bool, typer.Option("--all", help="Print every record, not only DDL and audit events.")
    ] = False,
    output: Annotated[
        str, typer.Option("--format", help="table (default), csv or json.")
    ] = "table",
    jobs: Annotated[
        int | None, typer.Option("--jobs", help="Worker processes (default: one per core).")
    ] = None,
    config_file: ConfigOpt = None,
) -> None:
    """Read server logs and print the DDL statements found (every record with --all).

    The detected format and log_line_prefix, per-file counts and every warning
    (file:line) go to standard error; the records go to standard output.
    """
    from auditor.logs.scan import scan as run_scan

    if output not in ("table", "csv", "json"):
        raise ConfigError(f"--format must be table, csv or json, not {output!r}")
    cfg = _config(
        config_file,
        logs=log,
        log_format=log_format,
        log_line_prefix=log_line_prefix,
        dsn=dsn,
        jobs=jobs,
    )
    progress, finish = _progress_bar()
    try:
        stream = run_scan(
            cfg["logs"],
            dsn=cfg["dsn"],
            fmt=cfg["log_format"],
            prefix=cfg["log_line_prefix"],
            all_records=all_records,
            jobs=cfg["jobs"],
            progress=progress,
        )
        _render_scan(stream, output, all_records, progress_done=finish)
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
        console=Console(stderr=True),
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


def _render_scan(stream: Any, output: str, all_records: bool, progress_done: Any) -> None:
    """Print scan results: records on stdout, warnings and summaries on stderr."""
    import csv as csv_mod

    import orjson

    from auditor.logs.render import COLUMNS, record_row, source_summary
    from auditor.model import LogRecord, ReadWarning

    def warn(item: ReadWarning) -> None:
        typer.echo(f"auditor: warning: {mask(str(item))}", err=True)

    streaming = all_records  # --all can be huge: print as records come
    writer = None
    first = True
    if output == "csv":
        writer = csv_mod.DictWriter(sys.stdout, fieldnames=COLUMNS, lineterminator="\n")
        writer.writeheader()
    elif output == "json":
        sys.stdout.write("[")

    def emit(row: dict[str, Any]) -> None:
        nonlocal first
        if output == "csv":
            assert writer is not None
            writer.writerow(row)
        elif output == "json":
            sys.stdout.write(("\n" if first else ",\n") + orjson.dumps(row).decode())
        else:
            sys.stdout.write(_table_line(row) + "\n")
        first = False

    if output == "table":
        sys.stdout.write(_table_line(None) + "\n")
    # Without --all a statement's row shows the error that failed it.  The error
    # comes later in the log (usually right after), so rows wait in a bounded
    # window; an error whose statement has left the window gets its own row.
    pending: deque[LogRecord] = deque()
    waiting: set[Any] = set()
    errors: dict[Any, LogRecord] = {}

    def flush_one() -> None:
        rec = pending.popleft()
        waiting.discard(rec.source)
        emit(record_row(rec, errors.pop(rec.source, None)))

    for item in stream:
        if isinstance(item, ReadWarning):
            warn(item)
        elif streaming:
            emit(record_row(item))
        elif item.failed_statement is not None and item.failed_statement in waiting:
            errors[item.failed_statement] = item
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
    for stats in stream.sources:
        typer.echo(source_summary(stats), err=True)
    server = stream.server
    if (
        server is not None
        and server.lc_messages
        and not server.lc_messages.startswith(("C", "POSIX", "en"))
    ):
        typer.echo(
            f"auditor: warning: lc_messages is {server.lc_messages!r}: translated severity "
            "words and messages are not recognised; set lc_messages = 'C'",
            err=True,
        )
    usable = sum(s.records for s in stream.sources)
    warnings = sum(s.warnings for s in stream.sources)
    if usable == 0 and warnings:
        raise LogInputError("no log record could be read (see the warnings above)")


#: Records that wait for the error that may fail them (scan output without --all).
_ERROR_WINDOW = 2000

_TABLE = (
    ("time", 23), ("session_id", 14), ("vxid", 8), ("user", 10), ("database", 10),
    ("application", 12), ("error", 14),
)  # fmt: skip


def _table_line(row: dict[str, Any] | None) -> str:
    """One fixed-width line (the header when ``row`` is None); text comes last, on one line."""
    if row is None:
        head = [name.upper()[:width].ljust(width) for name, width in _TABLE]
        return "  ".join([*head, "STATEMENT / MESSAGE"])
    cells = []
    for name, width in _TABLE:
        value = row.get(name)
        text = "" if value is None else str(value)
        if name == "time" and text:
            text = text.replace("T", " ")[:23]
        if name == "error":
            text = text.split(":", 1)[0]  # "ERROR 42P07"; the message is in csv/json
            if not text:
                text = "-" if row["kind"] in ("statement", "execute") else row["kind"]
        cells.append(text[:width].ljust(width))
    body = row["statement"] if row["statement"] is not None else row["message"]
    body = " ".join(str(body).split())
    return "  ".join([*cells, body])


@app.command()
def demo(
    out: Annotated[
        Path, typer.Option("--out", help="Directory for the reports, mails and logs.")
    ] = Path("auditor-demo"),
) -> None:
    """Run the whole product on a throwaway cluster and leave the results in --out.

    Self-contained: it reads no auditor.yaml and no AUDITOR_* variables.
    """
    from auditor.demo import run_demo

    result = run_demo(out, echo=lambda line: typer.echo(line))
    typer.echo(result.summary)


def main() -> None:
    """Console-script entry point (``auditor`` and ``python -m auditor``)."""
    app(prog_name="auditor")
    sys.exit(0)
