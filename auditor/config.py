"""The one configuration object: flag > environment > YAML file > default.

Every option has a dotted name (``dsn``, ``smtp.host``, ``reconcile.fail_on``),
an environment variable derived from it (``AUDITOR_DSN``, ``AUDITOR_SMTP_HOST``)
and a place in the YAML file (``smtp: {host: ...}``).  The CLI passes the flags
the user actually gave; everything else falls through to the environment, the
file and the defaults declared in :data:`OPTIONS`.

The file is ``--config FILE`` (or ``AUDITOR_CONFIG``), else ``./auditor.yaml`` when
present, else ``/etc/auditor/auditor.yaml`` when present.  A file found without
being named holds ``allow:`` rules that hide findings, so one planted in the
directory a job runs in must not be read: a default file is read only when it and
its directory belong to the user running the command or to root and neither is
writable by group or others (sticky directories such as ``/tmp`` excepted for the
directory); otherwise the command stops with the reason.  The file read is always
said (:attr:`Config.source`: the CLI prints it, reports note it).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from auditor.errors import ConfigError

DEFAULT_CONFIG_FILE = Path("auditor.yaml")
#: Where the README says to put the configuration.
SYSTEM_CONFIG_FILE = Path("/etc/auditor/auditor.yaml")


@dataclass(frozen=True)
class Option:
    """One declared option: its type decides how env strings are converted."""

    name: str
    kind: type
    default: Any
    help: str
    secret: bool = False

    @property
    def env(self) -> str:
        """The environment variable that sets this option.

        >>> Option("smtp.host", str, None, "").env
        'AUDITOR_SMTP_HOST'
        """
        return "AUDITOR_" + self.name.upper().replace(".", "_").replace("-", "_")


OPTIONS: tuple[Option, ...] = (
    Option("dsn", str, None, "libpq connection string of the audited server", secret=True),
    Option("databases", list, [], "databases to act on (default: the DSN's database)"),
    Option("all_databases", bool, False, "act on every database that accepts connections"),
    Option("schema", str, "auditor", "schema holding the audit table and triggers"),
    Option("reader_role", str, None, "read-only role for reconcile (created by install)"),
    Option("logs", list, [], "log files, globs, directories, '-' or 'sql:' sources"),
    Option("log_format", str, "auto", "auto, stderr, csvlog or jsonlog"),
    Option("log_line_prefix", str, None, "the server's log_line_prefix (stderr logs)"),
    Option(
        "log_timezone",
        str,
        None,
        "the server's log_timezone (IANA name): places the times the logs print "
        "(default: SHOW log_timezone over dsn)",
    ),
    Option("jobs", int, None, "worker processes for reading logs (default: one per core)"),
    Option("since", str, None, "start of the window (ISO-8601; no offset: in log_timezone)"),
    Option("until", str, None, "end of the window (ISO-8601; no offset: in log_timezone)"),
    Option("state", str, None, "state file for incremental runs"),
    Option("out", str, "auditor-report", "output directory of reconcile"),
    Option("fail_on", str, "high", "lowest severity that makes reconcile exit 1"),
    Option("mail_mode", str, "outbox", "outbox, plpython or none"),
    Option("mail_to", list, [], "recipients of DDL mails and reports"),
    Option("mail_cc", list, [], "copy recipients"),
    Option("report_mail_to", list, [], "recipients of reconcile's report (reconcile --mail-to)"),
    Option("mail_from", str, None, "sender address"),
    Option("strict", bool, False, "reject DDL whose mail cannot be delivered"),
    Option("smtp.host", str, "localhost", "SMTP server"),
    Option("smtp.port", int, 25, "SMTP port"),
    Option("smtp.security", str, "none", "none, starttls or tls"),
    Option("smtp.username", str, None, "SMTP login"),
    Option("smtp.password", str, None, "SMTP password (never printed)", secret=True),
    Option("smtp.timeout", float, 10.0, "SMTP timeout in seconds"),
    Option("mail.subject_template", str, None, "Jinja2 template file for the subject"),
    Option("mail.text_template", str, None, "Jinja2 template file for the text part"),
    Option("mail.html_template", str, None, "Jinja2 template file for the HTML part"),
    Option("smtp.ca_file", str, None, "CA bundle to verify the SMTP server (default: system)"),
    Option("mail.server_name", str, None, "server name in DDL mails (default: reverse DNS)"),
    Option("mail.dns_timeout", float, 1.0, "seconds for a reverse DNS lookup in mails"),
    Option("notify_role", str, None, "role auditor notify runs as (granted by install)"),
    Option("notify.poll_interval", float, 10.0, "seconds between polls when no NOTIFY came"),
    Option("notify.retry_initial", float, 10.0, "first retry delay of a failed mail (s)"),
    Option("notify.retry_max", float, 900.0, "longest retry delay of a failed mail (s)"),
    Option("notify.failing_after", int, 5, "attempts after which a mail is reported failing"),
    Option("notify.batch_size", int, 200, "audit rows or mails handled per transaction"),
    Option("notify.senders", int, 4, "mails sent side by side (SMTP connections per database)"),
    Option("severity", dict, {}, "per-class severity overrides {CLASS: severity}"),
    Option("allow", list, [], "allow-list rules; matching findings are kept but marked allowed"),
)
_BY_NAME = {o.name: o for o in OPTIONS}


def _convert(option: Option, value: Any, origin: str) -> Any:
    """Bring a raw value (YAML scalar, env string, flag) to the option's type."""
    if value is None:
        return None
    try:
        if option.kind is bool:
            if isinstance(value, bool):
                return value
            text = str(value).strip().lower()
            if text in {"1", "true", "yes", "on"}:
                return True
            if text in {"0", "false", "no", "off", ""}:
                return False
            raise ValueError(value)
        if option.kind is list:
            if isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip()]
            if isinstance(value, (list, tuple)):
                return list(value)
            raise ValueError(value)
        if option.kind is dict:
            if isinstance(value, Mapping):
                return dict(value)
            raise ValueError(value)
        return option.kind(value)
    except (TypeError, ValueError):
        raise ConfigError(
            f"{origin}: {option.name} must be a {option.kind.__name__}, got {value!r}"
        ) from None


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested YAML mapping to dotted names, keeping dict-typed options whole."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{str(key).replace('-', '_')}"
        option = _BY_NAME.get(name)
        if isinstance(value, Mapping) and (option is None or option.kind is not dict):
            flat.update(_flatten(value, name + "."))
        else:
            flat[name] = value
    return flat


def _decode(path: Path, raw: bytes) -> str:
    """The file's text; a file that is not UTF-8 is one error naming its line."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        byte = raw[exc.start : exc.start + 1].hex()
        raise ConfigError(
            f"{path}:{line}: not UTF-8 (byte 0x{byte}); save the config file as UTF-8"
        ) from None


def untrusted_reason(path: Path, uid: int | None = None) -> str | None:
    """Why a config file found without being named must not be read, or None.

    Its owner and its directory's must be the user running auditor or root, and
    neither may be writable by group or others (a sticky directory may be).
    """
    uid = os.geteuid() if uid is None else uid
    path = path.resolve()
    for target, is_dir in ((path, False), (path.parent, True)):
        try:
            st = target.stat()
        except OSError as exc:
            return f"cannot check {target} ({exc.strerror})"
        if st.st_uid not in (uid, 0):
            return f"{target} belongs to uid {st.st_uid}, not to you (uid {uid}) or root"
        writable = st.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        if writable and not (is_dir and st.st_mode & stat.S_ISVTX):
            return (
                f"{target} is writable by {'others' if st.st_mode & stat.S_IWOTH else 'its group'}"
            )
    return None


def find_config_file(system_file: Path = SYSTEM_CONFIG_FILE) -> Path | None:
    """The config file to read when none is named: ``./auditor.yaml``, else the system one."""
    for candidate in (DEFAULT_CONFIG_FILE, system_file):
        if not candidate.is_file():
            continue
        why = untrusted_reason(candidate)
        if why is not None:
            raise ConfigError(
                f"{candidate.resolve()}: not read: {why}; a config file found without --config can "
                "hide findings (allow: rules), so it must be yours or root's and writable "
                "by nobody else (or name it with --config)"
            )
        return candidate
    return None


def read_config_file(path: Path) -> dict[str, Any]:
    """Read and validate a YAML config file into dotted option names."""
    try:
        text = _decode(path, path.read_bytes())
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read config file ({exc.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark is not None else str(path)
        raise ConfigError(f"{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    if data is None:
        return {}
    if not isinstance(data, Mapping):
        raise ConfigError(f"{path}: the config file must be a YAML mapping")
    flat = _flatten(data)
    unknown = sorted(set(flat) - set(_BY_NAME))
    if unknown:
        raise ConfigError(f"{path}: unknown option(s): {', '.join(unknown)}")
    return {k: _convert(_BY_NAME[k], v, str(path)) for k, v in flat.items()}


@dataclass(frozen=True)
class Config:
    """Resolved options; read with ``cfg["smtp.host"]`` or ``cfg.get(...)``."""

    values: Mapping[str, Any]
    origins: Mapping[str, str] = field(default_factory=dict)
    #: The YAML file read, if any (said by the CLI and noted in reports).
    source: Path | None = None

    def __getitem__(self, name: str) -> Any:
        if name not in _BY_NAME:
            raise KeyError(name)
        return self.values.get(name, _BY_NAME[name].default)

    def get(self, name: str, default: Any = None) -> Any:
        value = self[name]
        return default if value is None else value

    def origin(self, name: str) -> str:
        """Where a value came from: flag, env, the file's path, or default."""
        return self.origins.get(name, "default")

    def describe(self) -> dict[str, Any]:
        """All values with secrets masked, for ``--verbose`` output and reports."""
        from auditor.redact import MASK, mask_dsn

        out: dict[str, Any] = {}
        for option in OPTIONS:
            value = self[option.name]
            if option.secret and value:
                value = mask_dsn(value) if option.name == "dsn" else MASK
            out[option.name] = value
        return out


def load_config(
    flags: Mapping[str, Any] | None = None,
    *,
    config_file: Path | None = None,
    environ: Mapping[str, str] | None = None,
    search_default: bool = True,
    system_file: Path = SYSTEM_CONFIG_FILE,
) -> Config:
    """Merge flags > environment > YAML file > defaults into one :class:`Config`.

    ``flags`` holds only options the user gave (``None`` means not given).
    ``search_default=False`` ignores ``./auditor.yaml`` and the system file (the demo
    is self-contained).

    >>> cfg = load_config({"smtp.port": 2525}, environ={"AUDITOR_SMTP_HOST": "mx"})
    >>> cfg["smtp.host"], cfg["smtp.port"], cfg["schema"]
    ('mx', 2525, 'auditor')
    >>> cfg.origin("smtp.host"), cfg.origin("smtp.port"), cfg.origin("schema")
    ('env', 'flag', 'default')
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}

    path = config_file
    if path is None and "AUDITOR_CONFIG" in environ:
        path = Path(environ["AUDITOR_CONFIG"])
    if path is None and search_default:
        path = find_config_file(system_file)
    if path is not None:
        if not path.is_file():
            raise ConfigError(f"{path}: config file not found")
        for name, value in read_config_file(path).items():
            values[name], origins[name] = value, str(path)

    for option in OPTIONS:
        if option.env in environ:
            values[option.name] = _convert(option, environ[option.env], option.env)
            origins[option.name] = "env"

    for name, value in (flags or {}).items():
        if name not in _BY_NAME:
            raise ConfigError(f"unknown option {name!r}")
        if value is None or (isinstance(value, (list, tuple)) and not value):
            continue
        values[name] = _convert(_BY_NAME[name], value, f"--{name.replace('_', '-')}")
        origins[name] = "flag"
    if not values.get("dsn"):
        dsn = libpq_dsn(environ)
        if dsn:
            values["dsn"], origins["dsn"] = dsn, "libpq environment"
    return Config(values, origins, path)


#: The libpq variables that say which server to use (PGPASSWORD, PGPASSFILE,
#: PGSSLMODE, ... are read by libpq itself on every connection, as is ~/.pgpass).
LIBPQ_TARGET = {
    "PGSERVICE": "service",
    "PGHOST": "host",
    "PGHOSTADDR": "hostaddr",
    "PGPORT": "port",
    "PGUSER": "user",
    "PGDATABASE": "dbname",
}


def libpq_dsn(environ: Mapping[str, str]) -> str | None:
    """A connection string from PostgreSQL's own variables when no DSN is given, as
    psql would connect; None when none of them is set.

    >>> libpq_dsn({"PGHOST": "db1", "PGPORT": "5433", "PGUSER": "dba"})
    'host=db1 port=5433 user=dba'
    >>> libpq_dsn({"PGSERVICE": "audit"}), libpq_dsn({"HOME": "/root"})
    ('service=audit', None)
    """
    from psycopg import conninfo

    params = {key: environ[var] for var, key in LIBPQ_TARGET.items() if environ.get(var)}
    return conninfo.make_conninfo(**params) if params else None
