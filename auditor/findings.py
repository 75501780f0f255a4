"""The finding classes: default severities, explanations, policy (overrides, allow-lists).

Every difference reconcile finds becomes a :class:`~auditor.model.Finding`
built here, so that severities, ids and wording are the same everywhere.  A
nightly job is tuned through the YAML config without losing the record:

.. code-block:: yaml

    severity:
      INDIRECT_DDL: low            # class-wide override
    allow:
      - class: INDIRECT_DDL        # every key optional except class
        user: migrator
        database: app
        application: flyway
        statement: '^DO '          # regular expression, searched in the statement
        reason: migrations run DDL from functions

Allowed findings are still written (``allowed: true``, with the reason in the
explanation) but never make ``reconcile`` exit 1.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from auditor.errors import ConfigError
from auditor.model import Finding, FindingClass, Severity

C = FindingClass

DEFAULT_SEVERITY: dict[FindingClass, Severity] = {
    C.UNREPORTED_DDL: Severity.CRITICAL,
    C.AUDIT_ROW_MISSING: Severity.CRITICAL,
    C.AUDIT_ROW_ALTERED: Severity.CRITICAL,
    C.UNLOGGED_DDL: Severity.CRITICAL,
    C.ATTRIBUTION_MISMATCH: Severity.CRITICAL,
    C.MARKER_MISSING: Severity.CRITICAL,
    C.LOG_TAMPERED: Severity.CRITICAL,
    C.SILENT_SCHEMA_CHANGE: Severity.CRITICAL,
    C.IMPERSONATED_DDL: Severity.HIGH,
    C.UNPARSED_STATEMENT: Severity.HIGH,
    C.EVENT_TRIGGER_DDL: Severity.HIGH,
    C.CONFIG_DRIFT: Severity.HIGH,
    C.LOG_GAP: Severity.HIGH,
    C.UNMONITORED_DATABASE: Severity.HIGH,
    C.UNAUDITABLE_DDL: Severity.MEDIUM,
    C.INDIRECT_DDL: Severity.MEDIUM,
    C.FAILED_DDL: Severity.INFO,
    C.ROLLED_BACK_DDL: Severity.INFO,
}

#: One sentence per class for a DBA; reconcile appends the specific reason.
MEANING: dict[FindingClass, str] = {
    C.UNREPORTED_DDL: (
        "The log shows this DDL succeeded, but the audit trigger neither wrote a row nor a "
        "marker: the trigger channel was bypassed (disabled trigger, replica mode, "
        "single-user mode, or the triggers were missing)."
    ),
    C.AUDIT_ROW_MISSING: (
        "The trigger's marker proves an audit row was written by a transaction that "
        "committed, but the row is no longer in the audit table: someone deleted it (or "
        "changed its statement time to move it out of the window read)."
    ),
    C.AUDIT_ROW_ALTERED: (
        "The audit row no longer matches the digest its trigger wrote to the log at the "
        "time: someone changed the row after the fact."
    ),
    C.UNLOGGED_DDL: (
        "The audit trigger recorded this top-level DDL, but the server log has no "
        "statement line for it."
    ),
    C.ATTRIBUTION_MISMATCH: (
        "Both channels saw the same statement but disagree on who ran it or where "
        "(e.g. SET SESSION AUTHORIZATION, or a forged audit row)."
    ),
    C.MARKER_MISSING: (
        "The log shows this statement and its session, and the audit table holds its row, "
        "but the marker the audit trigger writes for every row is not in the log: the "
        "marker was suppressed, so the row cannot be vouched for."
    ),
    C.LOG_TAMPERED: (
        "The log's own sequence is broken: a session's line numbers skip or repeat, a "
        "statement line no server process could have written, or a file was cut or "
        "replaced."
    ),
    C.SILENT_SCHEMA_CHANGE: (
        "The catalog changed (an object was created, altered or dropped) between two "
        "snapshots, and neither the log nor the audit table explains it: both channels "
        "were silenced, or the catalog was edited directly."
    ),
    C.IMPERSONATED_DDL: (
        "The DDL ran under SET SESSION AUTHORIZATION as another role; both channels agree "
        "(the login user is the log's user), and the finding names both roles."
    ),
    C.UNPARSED_STATEMENT: (
        "A logged statement that the parser cannot read for this server's version; it is "
        "never counted as matched, so read it yourself."
    ),
    C.EVENT_TRIGGER_DDL: (
        "Event-trigger DDL is never reported by event triggers; only the log shows it."
    ),
    C.CONFIG_DRIFT: (
        "A setting or object one of the two audit channels depends on was changed "
        "(logging settings, the audit triggers, the audit table's protections), or a "
        "log line was forged to look like the server's or the audit trigger's; at info, "
        "DDL on the auditor's objects only stated again what install left (nothing changed)."
    ),
    C.LOG_GAP: (
        "Part of the window is not covered by readable log; DDL in that stretch cannot "
        "be cross-checked."
    ),
    C.UNMONITORED_DATABASE: (
        "DDL ran in a database where the auditor's triggers are not installed; only the "
        "log recorded it."
    ),
    C.UNAUDITABLE_DDL: (
        "This DDL is invisible to event triggers by design; the log is its only record."
    ),
    C.INDIRECT_DDL: (
        "DDL ran inside a function, DO block, procedure or trigger; log_statement cannot "
        "log it, so the audit row is its only record."
    ),
    C.FAILED_DDL: "The DDL raised an error; nothing was changed and no audit row is expected.",
    C.ROLLED_BACK_DDL: (
        "The trigger's marker shows the DDL ran, but its transaction (or savepoint) rolled "
        "back; nothing was changed and no audit row is expected."
    ),
}


def finding_id(cls: FindingClass, *keys: object) -> str:
    """A stable id from the class and the evidence, so reruns give the same ids.

    >>> a = finding_id(FindingClass.FAILED_DDL, "pg.log", 12)
    >>> a == finding_id(FindingClass.FAILED_DDL, "pg.log", 12) != finding_id(FindingClass.LOG_GAP)
    True
    >>> finding_id(FindingClass.FAILED_DDL, "pg.log", 12)[:2]
    'F-'
    """
    h = hashlib.sha256(str(cls).encode())
    for key in keys:
        h.update(b"\x00" + repr(key).encode())
    return "F-" + h.hexdigest()[:12]


@dataclass(frozen=True)
class AllowRule:
    """One allow-list entry; every given field must match (regexes for text fields)."""

    cls: FindingClass
    user: str | None = None
    database: str | None = None
    application: str | None = None
    statement: re.Pattern[str] | None = None
    reason: str = "allowed by configuration"

    def matches(self, f: Finding) -> bool:
        if f.cls != self.cls:
            return False
        for wanted, actual in (
            (self.user, f.user),
            (self.database, f.database),
            (self.application, f.application),
        ):
            if wanted is not None and actual != wanted:
                return False
        return self.statement is None or bool(self.statement.search(f.statement or ""))


@dataclass(frozen=True)
class Policy:
    """Severity overrides and allow-list rules, from the config."""

    severity: Mapping[FindingClass, Severity]
    allow: tuple[AllowRule, ...] = ()

    @classmethod
    def from_config(cls, severity: Mapping[str, Any], allow: Sequence[Any]) -> Policy:
        """Validate the ``severity`` and ``allow`` config options.

        >>> p = Policy.from_config({"INDIRECT_DDL": "low"}, [{"class": "FAILED_DDL"}])
        >>> p.severity[FindingClass.INDIRECT_DDL], len(p.allow)
        (<Severity.LOW: 'low'>, 1)
        """
        overrides: dict[FindingClass, Severity] = {}
        for name, level in (severity or {}).items():
            overrides[_finding_class(name, "severity")] = _severity(level, f"severity.{name}")
        rules = []
        for i, raw in enumerate(allow or ()):
            where = f"allow[{i}]"
            if not isinstance(raw, Mapping) or "class" not in raw:
                raise ConfigError(f"{where}: each allow rule needs at least a 'class'")
            unknown = set(raw) - {"class", "user", "database", "application", "statement", "reason"}
            if unknown:
                raise ConfigError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
            pattern = None
            if raw.get("statement"):
                try:
                    pattern = re.compile(str(raw["statement"]))
                except re.error as exc:
                    raise ConfigError(
                        f"{where}.statement: bad regular expression ({exc})"
                    ) from None
            rules.append(
                AllowRule(
                    cls=_finding_class(raw["class"], where),
                    user=raw.get("user"),
                    database=raw.get("database"),
                    application=raw.get("application"),
                    statement=pattern,
                    reason=str(raw.get("reason") or "allowed by configuration"),
                )
            )
        return cls(overrides, tuple(rules))

    def apply(self, findings: Iterable[Finding]) -> list[Finding]:
        """Apply overrides (class-wide) and allow-lists; nothing is dropped."""
        out = []
        for f in findings:
            if f.cls in self.severity:
                f = replace(f, severity=self.severity[f.cls])
            for rule in self.allow:
                if rule.matches(f):
                    f = replace(
                        f, allowed=True, explanation=f"{f.explanation} Allowed: {rule.reason}."
                    )
                    break
            out.append(f)
        return out


def _finding_class(name: Any, where: str) -> FindingClass:
    try:
        return FindingClass(str(name).upper())
    except ValueError:
        known = ", ".join(c.value for c in FindingClass)
        raise ConfigError(f"{where}: unknown finding class {name!r} (known: {known})") from None


def _severity(level: Any, where: str) -> Severity:
    try:
        return Severity(str(level).lower())
    except ValueError:
        known = ", ".join(s.value for s in Severity)
        raise ConfigError(f"{where}: unknown severity {level!r} (known: {known})") from None


def parse_severity(level: str, where: str = "--fail-on") -> Severity:
    """Severity from user input.

    >>> parse_severity("HIGH")
    <Severity.HIGH: 'high'>
    """
    return _severity(level, where)


def make_finding(
    cls: FindingClass,
    *,
    key: Sequence[object],
    reason: str = "",
    severity: Severity | None = None,
    time: datetime | None = None,
    database: str | None = None,
    user: str | None = None,
    application: str | None = None,
    client: str | None = None,
    session_id: str | None = None,
    vxid: str | None = None,
    command_tags: Sequence[str] = (),
    statement: str | None = None,
    audit_event_ids: Sequence[int] = (),
    log_file: str | None = None,
    log_line: int | None = None,
    evidence: dict[str, object] | None = None,
    accounts_logged_ddl: int = 0,
) -> Finding:
    """Build a finding with its class's default severity and explanation."""
    from auditor.redact import mask

    explanation = MEANING[cls] + (f" {reason}" if reason else "")
    return Finding(
        id=finding_id(cls, *key),
        cls=cls,
        severity=severity or DEFAULT_SEVERITY[cls],
        time=time,
        database=database,
        user=user,
        application=application,
        client=client,
        session_id=session_id,
        vxid=vxid,
        command_tags=tuple(dict.fromkeys(command_tags)),
        statement=mask(statement) if statement is not None else None,
        audit_event_ids=tuple(sorted(set(audit_event_ids))),
        log_file=log_file,
        log_line=log_line,
        explanation=mask(explanation),
        accounts_logged_ddl=accounts_logged_ddl,
        evidence=evidence or {},
    )


def sort_key(f: Finding) -> tuple[str, str, str]:
    """Deterministic order: time, then class, then id."""
    return (f.time.isoformat() if f.time else "", f.cls.value, f.id)
