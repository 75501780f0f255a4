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
from auditor.errors import AuditorError
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
