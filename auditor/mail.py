"""Mail settings from the configuration, the mail templates, and the nightly report mail.

The wording and sending of DDL mails is :mod:`auditor.mailcore` (shared with the
in-database mode); this module turns a :class:`~auditor.config.Config` into its
settings (addresses checked, templates compiled once), and sends reconcile's
report with :func:`send_report`.  Every failure is a one-line
:class:`~auditor.errors.MailError` or :class:`~auditor.errors.ConfigError`, never
with the SMTP password in it.
"""

from __future__ import annotations

import socket
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from email.errors import HeaderParseError
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from importlib import resources
from pathlib import Path
from typing import Any

from auditor.config import Config
from auditor.errors import ConfigError, MailError
from auditor.mailcore import (
    SECURITY_MODES,
    DeliveryError,
    EventRow,
    MailSettings,
    Renderer,
    SmtpSession,
    SmtpSettings,
    Statement,
    Templates,
    build_message,
)

#: The packaged default templates (``auditor/templates/``), by part.
TEMPLATE_FILES = {
    "subject": "mail_subject.txt.j2",
    "text": "mail_text.txt.j2",
    "html": "mail_html.html.j2",
}
_TEMPLATE_OPTIONS = {
    "subject": "mail.subject_template",
    "text": "mail.text_template",
    "html": "mail.html_template",
}


def default_templates() -> Templates:
    """The templates shipped with the package."""
    base = resources.files("auditor") / "templates"
    parts = {k: (base / v).read_text(encoding="utf-8") for k, v in TEMPLATE_FILES.items()}
    return Templates(parts["subject"], parts["text"], parts["html"])


def templates_from_config(cfg: Config) -> Templates:
    """Default templates, each replaced by the file its ``mail.*_template`` option names."""
    defaults = default_templates()
    parts = {"subject": defaults.subject, "text": defaults.text, "html": defaults.html}
    for part, option in _TEMPLATE_OPTIONS.items():
        path = cfg[option]
        if not path:
            continue
        try:
            parts[part] = Path(path).read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read the {part} template ({exc.strerror})") from None
        except UnicodeDecodeError:
            raise ConfigError(f"{path}: the {part} template is not UTF-8 text") from None
    templates = Templates(parts["subject"], parts["text"], parts["html"])
    check_templates(templates)
    return templates


def _sample_statement() -> Statement:
    row = {
        "id": 1,
        "event": "ddl_command_end",
        "command_tag": "CREATE TABLE",
        "objects": '[{"object_type": "table", "object_identity": "public.t", '
        '"schema_name": "public", "in_extension": false, "command_tag": "CREATE TABLE"}]',
        "query": "CREATE TABLE t (id int)",
        "caller_context": None,
        "statement_time": "2026-01-01T00:00:00.000000Z",
        "clock_time": "2026-01-01T00:00:00.000100Z",
        "session_user_name": "dba",
        "current_user_name": "dba",
        "login_user_name": "dba",
        "database_name": "app",
        "client_addr": "192.0.2.10",
        "client_port": 50000,
        "server_addr": "192.0.2.1",
        "server_port": 5432,
        "application_name": "psql",
        "backend_pid": 4242,
        "session_id": "6745f3a4.1092",
        "vxid": "3/7",
        "xid": 750,
    }
    return Statement((EventRow.from_mapping(row),))


def check_templates(templates: Templates) -> Renderer:
    """Compile the templates and render a sample statement: errors surface at start-up."""
    try:
        renderer = Renderer(templates)
        sample = _sample_statement()
        settings = MailSettings("auditor@example.org", ("dba@example.org",), templates)
        build_message(
            sample,
            settings,
            renderer,
            message_id=sample.message_id("example.org"),
            resolve=lambda addr: None,
        )
    except DeliveryError as exc:
        raise ConfigError(f"mail templates: {exc}") from None
    return renderer


def check_address(addr: str, option: str) -> str:
    """An e-mail address as given, if it parses as one.

    >>> check_address("dba@example.org", "mail_to")
    'dba@example.org'
    >>> check_address("not an address", "mail_to")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    auditor.errors.ConfigError: mail_to: 'not an address' is not an e-mail address
    """
    text = addr.strip()
    try:
        parsed = Address(addr_spec=text)
    except (HeaderParseError, ValueError, IndexError):
        parsed = None
    if parsed is None or not parsed.username or not parsed.domain:
        raise ConfigError(f"{option}: {addr!r} is not an e-mail address")
    return text


def default_sender() -> str:
    """``auditor@<this host>`` when no sender is configured."""
    return f"auditor@{socket.gethostname() or 'localhost'}"


def smtp_settings(cfg: Config) -> SmtpSettings:
    security = str(cfg["smtp.security"]).lower()
    if security not in SECURITY_MODES:
        raise ConfigError(
            f"smtp.security must be one of {', '.join(SECURITY_MODES)}, got {security!r}"
        )
    port = int(cfg["smtp.port"])
    if not 0 < port < 65536:
        raise ConfigError(f"smtp.port {port} is not a TCP port")
    return SmtpSettings(
        host=str(cfg["smtp.host"]),
        port=port,
        security=security,
        username=cfg["smtp.username"] or None,
        password=cfg["smtp.password"] or None,
        timeout=float(cfg["smtp.timeout"]),
        ca_file=cfg["smtp.ca_file"] or None,
    )


def mail_settings(
    cfg: Config,
    *,
    stored: Mapping[str, Any] | None = None,
    templates: Templates | None = None,
    require_recipients: bool = True,
) -> MailSettings:
    """The mail settings: the configuration first, then what install stored (``stored``).

    ``stored`` is a database's ``mail_config`` row (recipients, sender, server name),
    the worker's fallback when its own configuration names no recipients.
    """
    stored = stored or {}
    to = list(cfg["mail_to"]) or list(stored.get("mail_to") or [])
    cc = list(cfg["mail_cc"]) or list(stored.get("mail_cc") or [])
    sender = cfg["mail_from"] or stored.get("mail_from") or default_sender()
    if require_recipients and not to:
        raise ConfigError(
            "no recipients: give --mail-to (or mail_to: in the config file, AUDITOR_MAIL_TO)"
        )
    return MailSettings(
        mail_from=check_address(str(sender), "mail_from"),
        mail_to=tuple(check_address(a, "mail_to") for a in to),
        mail_cc=tuple(check_address(a, "mail_cc") for a in cc),
        server_name=cfg["mail.server_name"] or stored.get("server_name") or None,
        dns_timeout=float(cfg["mail.dns_timeout"]),
        smtp=smtp_settings(cfg),
        templates=templates or templates_from_config(cfg),
    )


def send_report(
    config: Config,
    subject: str,
    text: str,
    html_attachment: bytes,
    filename: str = "report.html",
    *,
    recipients: Sequence[str] = (),
) -> str:
    """Mail a report (text body, HTML file attached) through the configured SMTP server.

    Recipients are ``recipients`` or else ``mail_to``/``mail_cc``.  Returns the
    Message-ID; raises :class:`MailError` (one line, password masked) when the server
    does not take the message.
    """
    settings = mail_settings(config, templates=Templates("", "", ""), require_recipients=False)
    to = [check_address(a, "mail_to") for a in recipients] or list(settings.mail_to)
    if not to:
        raise ConfigError(
            "no recipients for the report: give --mail-to (or mail_to: in the config file)"
        )
    msg = EmailMessage()
    message_id = make_msgid("auditor-report", domain=settings.message_id_domain)
    try:
        msg["Subject"] = " ".join(subject.split())
        msg["From"] = settings.mail_from
        msg["To"] = ", ".join(to)
        if settings.mail_cc and not recipients:
            msg["Cc"] = ", ".join(settings.mail_cc)
        msg["Date"] = format_datetime(datetime.now(UTC))
        msg["Message-ID"] = message_id
        msg["Auto-Submitted"] = "auto-generated"
        msg.set_content(text)
        msg.add_attachment(html_attachment, maintype="text", subtype="html", filename=filename)
    except (ValueError, TypeError) as exc:
        raise MailError(f"cannot build the report mail: {exc}") from None
    rcpts = [*to, *(settings.mail_cc if not recipients else ())]
    try:
        with SmtpSession(settings.smtp) as session:
            refused = session.send(msg, settings.mail_from, rcpts)
    except DeliveryError as exc:
        raise MailError(f"the report was not mailed: {exc}") from None
    if refused:
        raise MailError(
            "the report was mailed, but the server refused "
            + "; ".join(f"{k} ({v})" for k, v in refused.items())
        )
    return message_id


__all__ = [
    "TEMPLATE_FILES",
    "check_address",
    "check_templates",
    "default_sender",
    "default_templates",
    "mail_settings",
    "send_report",
    "smtp_settings",
    "templates_from_config",
]
