"""Domain values shared by the log readers, the capture side and reconcile.

All of them are frozen dataclasses: a record read from a log or a row read
from the audit table is evidence, and evidence is never edited in place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Severity(StrEnum):
    """Finding severities, lowest first; compare with :meth:`rank`."""

    INFO = "info"
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @property
    def rank(self) -> int:
        """Order for ``--fail-on`` comparisons.

        >>> Severity.HIGH.rank > Severity.MEDIUM.rank
        True
        """
        return list(Severity).index(self)


class FindingClass(StrEnum):
    """The finding classes of the spec (section 5)."""

    UNREPORTED_DDL = "UNREPORTED_DDL"
    AUDIT_ROW_MISSING = "AUDIT_ROW_MISSING"
    AUDIT_ROW_ALTERED = "AUDIT_ROW_ALTERED"
    UNLOGGED_DDL = "UNLOGGED_DDL"
    ATTRIBUTION_MISMATCH = "ATTRIBUTION_MISMATCH"
    MARKER_MISSING = "MARKER_MISSING"
    LOG_TAMPERED = "LOG_TAMPERED"
    SILENT_SCHEMA_CHANGE = "SILENT_SCHEMA_CHANGE"
    IMPERSONATED_DDL = "IMPERSONATED_DDL"
    UNPARSED_STATEMENT = "UNPARSED_STATEMENT"
    EVENT_TRIGGER_DDL = "EVENT_TRIGGER_DDL"
    CONFIG_DRIFT = "CONFIG_DRIFT"
    LOG_GAP = "LOG_GAP"
    UNMONITORED_DATABASE = "UNMONITORED_DATABASE"
    UNAUDITABLE_DDL = "UNAUDITABLE_DDL"
    INDIRECT_DDL = "INDIRECT_DDL"
    FAILED_DDL = "FAILED_DDL"
    ROLLED_BACK_DDL = "ROLLED_BACK_DDL"


class MessageKind(StrEnum):
    """What a log record is, for the reconciler."""

    STATEMENT = "statement"  # "statement: ..." (simple protocol, or duration + statement)
    EXECUTE = "execute"  # "execute <unnamed>: ...", "execute P_0: ..." (extended protocol)
    ERROR = "error"  # ERROR / FATAL / PANIC, with the failed statement when logged
    MARKER = "marker"  # a RAISE LOG marker of the audit trigger (see auditor.marker)
    #: A pgAudit line ("AUDIT: SESSION,..."); one of the top-level statement that no
    #: statement line logged is read as a STATEMENT (see auditor.logs.link).
    AUDIT = "audit"
    OTHER = "other"  # anything else (checkpoints, "parameter ... changed", ...)


class Protocol(StrEnum):
    SIMPLE = "simple"
    EXTENDED = "extended"


@dataclass(frozen=True, slots=True)
class SourceLocation:
    """Where a record starts: file (as given), byte offset and 1-based physical line."""

    file: str
    offset: int
    line: int

    def __str__(self) -> str:
        """``file:line``, the form every message uses.

        >>> str(SourceLocation("pg.log", 120, 7))
        'pg.log:7'
        """
        return f"{self.file}:{self.line}"


@dataclass(frozen=True, slots=True)
class PgAudit:
    """The fields of a pgAudit ``AUDIT:`` line (its CSV after ``AUDIT: ``).

    ``nested`` is True for a statement run inside a function, ``DO``, ``CALL`` or
    trigger (the session's current command, ``%i``/csv ``command_tag``/json ``ps``,
    is another one), False for one the client sent, None when the log does not
    say (a stderr prefix without ``%i``).
    """

    audit_type: str  # SESSION or OBJECT
    statement_id: int | None
    substatement_id: int | None
    audit_class: str  # DDL, ROLE, READ, WRITE, FUNCTION, MISC, ...
    command: str  # the statement's command tag, e.g. CREATE TABLE
    object_type: str | None
    object_name: str | None
    nested: bool | None


@dataclass(frozen=True, slots=True)
class LogRecord:
    """One server-log message, the same model for stderr, csvlog and jsonlog.

    ``message`` is the message text as logged (after ``LOG:  ``), with
    continuation lines restored.  For STATEMENT/EXECUTE records ``statement``
    is the query text without its ``statement: `` / ``execute x: `` lead; for
    ERROR records it is the ``STATEMENT:`` text (or csv ``query``), when logged.
    """

    source: SourceLocation
    severity: str
    kind: MessageKind
    message: str
    time: datetime | None = None
    statement: str | None = None
    session_id: str | None = None
    line_num: int | None = None
    vxid: str | None = None
    xid: int | None = None
    pid: int | None = None
    user: str | None = None
    database: str | None = None
    application: str | None = None
    client: str | None = None
    sqlstate: str | None = None
    detail: str | None = None
    hint: str | None = None
    context: str | None = None
    protocol: Protocol | None = None
    prepared_name: str | None = None  # "P_0"; None for <unnamed>
    portal: str | None = None
    parameters: tuple[tuple[str, str | None], ...] = ()  # (("$1", "42"), ("$2", None))
    duration_ms: float | None = None
    backend_type: str | None = None
    command_tag: str | None = None  # %i / csv command_tag / json ps
    client_port: int | None = None  # %r / csv connection_from / json remote_port
    #: ERROR/FATAL records: where the statement record that failed starts (same
    #: session, same text, same vxid when known); None when it was not logged.
    failed_statement: SourceLocation | None = None
    #: Simple-protocol ``EXECUTE name``: the ``DETAIL:  prepare: ...`` text.
    prepare_text: str | None = None
    #: STATEMENT/EXECUTE records: whether the text (or ``prepare_text``) holds a
    #: statement logged under ``log_statement = 'ddl'``; None when not decided.
    is_ddl: bool | None = None
    #: Whether the text is DDL or changes a watched setting (``classify().is_relevant``).
    is_relevant: bool | None = None
    #: How finely ``time`` was printed, in microseconds: 1,000 for ``%m``, ``%n``, csvlog
    #: and jsonlog (milliseconds, truncated), 1,000,000 for ``%t`` (whole seconds).  Every
    #: comparison with the audit table's microsecond times allows this much.
    time_resolution_us: int = 1000
    #: pgAudit records (kind AUDIT, or a STATEMENT read from a top-level AUDIT line).
    pgaudit: PgAudit | None = None
    #: A stderr record one of whose lines reads two ways (a client-chosen prefix field,
    #: ``%a``/``%u``/``%d``, holds the rest of the prefix and a severity): how it reads
    #: each way, and whether the other reading of its first line is a DDL statement.
    #: Such a record is no evidence for either reading (LOG_TAMPERED).
    ambiguous: tuple[str, bool] | None = None


@dataclass(frozen=True, slots=True)
class ReadWarning:
    """Input that could not be read as a record; never raised, always reported."""

    source: SourceLocation
    message: str
    excerpt: str = ""
    #: Set for a warning about records that were still read (a time that could not be
    #: placed exactly): the same for every record with the same problem, so that a file
    #: gives one warning per cause, at its first record, not one per line.
    cause: str | None = None
    #: How many records of the file this warning stands for (``cause`` warnings).
    count: int = 1

    def __str__(self) -> str:
        text = f"{self.source}: {self.message}" + (f": {self.excerpt!r}" if self.excerpt else "")
        if self.count > 1:
            text += f" (and {self.count - 1} more record(s) of this file)"
        return text


@dataclass(frozen=True, slots=True)
class Finding:
    """One difference between the channels, exactly the spec's findings.json item."""

    id: str
    cls: FindingClass
    severity: Severity
    time: datetime | None
    database: str | None
    user: str | None
    application: str | None
    client: str | None
    session_id: str | None
    vxid: str | None
    command_tags: tuple[str, ...]
    statement: str | None
    audit_event_ids: tuple[int, ...]
    log_file: str | None
    log_line: int | None
    explanation: str
    allowed: bool = False
    #: How many logged DDL statements (log records) this finding stands for, so
    #: that logged_ddl = matched + the sum of this over all findings.
    accounts_logged_ddl: int = 0
    #: Both channels' view, for the report's expanded row and the timeline:
    #: {"log": {...record fields...} | None, "audit": [{...row fields...}, ...]}.
    evidence: dict[str, object] = field(default_factory=dict, compare=False, hash=False)


@dataclass(frozen=True, slots=True)
class LogSourceSummary:
    """One log source read by reconcile (findings.json ``sources.logs`` item)."""

    path: str
    format: str
    records: int
    ddl_statements: int
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DatabaseSummary:
    """One database looked at by reconcile (findings.json ``sources.databases`` item)."""

    name: str
    installed: bool
    audit_rows: int


@dataclass(frozen=True, slots=True)
class Summary:
    """Counts that must add up: every logged DDL and audit row is matched or in a finding."""

    logged_ddl: int
    audit_rows: int
    matched: int
    by_class: dict[str, int]
    by_severity: dict[str, int]
    #: Audit rows that paired with a logged statement (a statement may pair with
    #: several rows, so this is not ``matched``); None when not counted.
    matched_audit_rows: int | None = None


@dataclass(frozen=True, slots=True)
class FindingsDocument:
    """Everything a reconcile produced: the content of findings.json.

    ``notes`` carries report-wide caveats (e.g. pairing fell back to pid and
    time because the log prefix lacks ``%c``/``%v``).
    """

    auditor_version: str
    generated_at: datetime
    since: datetime | None
    until: datetime | None
    logs: tuple[LogSourceSummary, ...]
    databases: tuple[DatabaseSummary, ...]
    summary: Summary
    findings: tuple[Finding, ...]
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class AuditObject:
    """One object of an audit row (an element of the ``objects`` JSON array).

    ``ddl_command_end`` rows fill the first five fields (from
    ``pg_event_trigger_ddl_commands()``); ``sql_drop`` rows the drop fields (from
    ``pg_event_trigger_dropped_objects()``, no ``in_extension`` there);
    ``table_rewrite`` rows the table and ``rewrite_reason``.
    """

    object_type: str | None
    schema_name: str | None
    object_identity: str | None
    in_extension: bool | None = None
    command_tag: str | None = None
    object_name: str | None = None
    original: bool | None = None
    normal: bool | None = None
    is_temporary: bool | None = None
    address_names: tuple[str, ...] = ()
    address_args: tuple[str, ...] = ()
    classid: int | None = None
    objid: int | None = None
    objsubid: int | None = None
    rewrite_reason: int | None = None


@dataclass(frozen=True, slots=True)
class AuditEvent:
    """One row of the audit table: one firing of an auditor event trigger.

    ``session_id`` and ``vxid`` are what the log prints for ``%c`` and ``%v``;
    ``xid`` is the top-level transaction id as an xid8 (epoch included; the log's
    ``%x`` is ``xid % 2**32``); ``row_xmin`` is the 32-bit id of the
    (sub)transaction that inserted the row, which the marker carries as ``xid=``.
    ``digest`` is recomputed in Python (:func:`auditor.digest.row_digest`) from
    the row as read, never taken from the database, so it can be compared with the
    marker's.  ``objects_json`` is the stored ``objects`` jsonb text, the digest's
    input.  ``current_user`` is the session's effective role (SET ROLE honoured);
    ``login_user`` the authenticated user the log prints for ``%u``.
    """

    schema: str
    id: int
    event: str
    command_tag: str
    objects: Sequence[AuditObject]  # a tuple, or capture.AuditObjects (parsed on demand)
    query: str | None
    statement_time: datetime
    clock_time: datetime
    session_user: str
    current_user: str
    login_user: str | None
    database: str
    client_addr: str | None
    client_port: int | None
    server_addr: str | None
    server_port: int | None
    application_name: str | None
    backend_pid: int
    session_id: str
    vxid: str | None
    xid: int
    row_xmin: int
    digest: str
    objects_json: str = "[]"
    #: None for a statement the client sent; else the call stack below the audit
    #: trigger (``SQL statement "..."`` and the DO block, function or procedure that
    #: ran it), which ``log_statement`` never logs.
    caller_context: str | None = None
    #: The row's own ``database_name`` when it differs from the database the row was
    #: read from (``database``), which only an altered row can show.
    database_in_row: str | None = None
