"""The ``auditor`` command line: the only module that imports Typer.

Each command turns its options into a :class:`~auditor.config.Config`, calls
one core function and renders the result.  :class:`AuditorGroup` maps every
:class:`~auditor.errors.AuditorError` to a one-line message and exit code 2,
in this one place.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer
import typer.core

from auditor import __version__
from auditor.config import Config, load_config
from auditor.errors import AuditorError, ConfigError
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


@app.command()
def demo(
    out: Annotated[
        Path, typer.Option("--out", help="Directory for the reports, mails and logs.")
    ] = Path("auditor-demo"),
    config_file: ConfigOpt = None,
) -> None:
    """Run the whole product on a throwaway cluster and leave the results in --out."""
    from auditor.demo import run_demo

    _config(config_file)
    result = run_demo(out, echo=lambda line: typer.echo(line))
    typer.echo(result.summary)


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


def main() -> None:
    """Console-script entry point (``auditor`` and ``python -m auditor``)."""
    app(prog_name="auditor")
    sys.exit(0)
