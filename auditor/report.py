"""The report outputs of reconcile: ``findings.json``, ``findings.csv`` and ``report.html``.

``findings.json`` is the contract (SPEC section 5a) and the source of the two
others: CSV and HTML are rendered from the JSON form of the document, so
``auditor report`` on a saved ``findings.json`` gives byte-identical files to
the reconcile that wrote it.  Rendering never reads the clock (the report shows
``generated_at``), so the same document always gives the same bytes.

Secrets: every free-text value (statements, explanations, application names,
evidence, warnings, notes) passes through :func:`auditor.redact.mask` on its
way into the JSON form, hence into all three files.

Accounting shown in the report (the reconciler makes the numbers add up; the
report shows them and warns when they do not):

- logged DDL = ``matched`` + the sum of the findings' ``accounts_logged_ddl``
  (how many logged DDL statements each finding stands for: 1 for most findings
  built from a statement line, 0 for a LOG_GAP, a live CONFIG_DRIFT or a
  finding built from audit rows alone, N for an auditor install);
- audit rows = ``matched_audit_rows`` + distinct (database, id) of the findings'
  ``audit_event_ids`` (ids are per database).

CSV: RFC 4180 (comma, ``"`` quoting, CRLF line ends), UTF-8 without BOM.  A
cell that a spreadsheet would run as a formula (first character ``=``, ``+``,
``-``, ``@``, TAB or CR, or their full-width forms) gets a leading ``'``, the
OWASP defence: spreadsheets then show it as text.  Programs that need the
exact text read ``findings.json``.  Statements are never cut, so a cell may
exceed spreadsheet limits (Excel shows at most 32,767 characters of a cell).
"""

from __future__ import annotations

import base64
import contextlib
import csv
import hashlib
import io
import json
import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone, tzinfo
from enum import Enum
from importlib import resources
from pathlib import Path
from typing import Any, NoReturn

import jinja2
from markupsafe import Markup, escape

from auditor.errors import ReportError
from auditor.model import (
    DatabaseSummary,
    Finding,
    FindingClass,
    FindingsDocument,
    LogSourceSummary,
    Severity,
    Summary,
)
from auditor.redact import mask
from auditor.terminal import unsafe_pattern

#: The finding fields of findings.json, in the spec's order.
FINDING_FIELDS: tuple[str, ...] = (
    "id",
    "class",
    "severity",
    "time",
    "database",
    "user",
    "application",
    "client",
    "session_id",
    "vxid",
    "command_tags",
    "statement",
    "audit_event_ids",
    "log_file",
    "log_line",
    "explanation",
)
#: Columns of findings.csv.
CSV_FIELDS: tuple[str, ...] = (*FINDING_FIELDS, "allowed")

#: File names written by :func:`write_reports`.
JSON_NAME, CSV_NAME, HTML_NAME = "findings.json", "findings.csv", "report.html"

#: One line per class for the reader of the report (SPEC section 5).
CLASS_MEANING: dict[str, str] = {
    "UNREPORTED_DDL": "Logged DDL with no audit row and no marker: the trigger was bypassed.",
    "AUDIT_ROW_MISSING": "The trigger's marker is in the log and the transaction committed, "
    "but the audit row is gone.",
    "AUDIT_ROW_ALTERED": "The audit row no longer matches the digest in its marker.",
    "UNLOGGED_DDL": "Audit row for a top-level statement with no line in the log: log "
    "suppression, or (low) a statement the log cannot hold (REINDEX on PostgreSQL 17+).",
    "ATTRIBUTION_MISMATCH": "Same statement, but user or database differ between log and trigger.",
    "MARKER_MISSING": "Audit row of a logged statement whose marker is absent although the log "
    "covers its session: the marker was suppressed.",
    "LOG_TAMPERED": "The log's own sequence is broken (line numbers skip or repeat, a line no "
    "server wrote, a file cut or replaced).",
    "SILENT_SCHEMA_CHANGE": "The catalog changed and no channel explains it.",
    "IMPERSONATED_DDL": "DDL run under SET SESSION AUTHORIZATION as another role; both channels "
    "agree.",
    "UNPARSED_STATEMENT": "A logged statement the parser cannot read; never counted as matched.",
    "EVENT_TRIGGER_DDL": "CREATE/ALTER/DROP EVENT TRIGGER, which event triggers never report.",
    "CONFIG_DRIFT": "Something weakened a channel (logging settings, trigger state, protections).",
    "LOG_GAP": "Part of the window is not covered by any log.",
    "UNMONITORED_DATABASE": "DDL logged in a database where the auditor is not installed.",
    "UNAUDITABLE_DDL": "Logged DDL that event triggers never see (roles, databases, "
    "tablespaces, ALTER SYSTEM, ...).",
    "INDIRECT_DDL": "DDL run inside a function, DO or CALL, which log_statement cannot log.",
    "FAILED_DDL": "Logged DDL that raised an error; no audit row expected.",
    "ROLLED_BACK_DDL": "Marker present, transaction aborted; no audit row expected.",
}

_SEVERITIES_HIGH_FIRST = tuple(reversed(Severity))

#: report.html lists at most this many findings of each class (the most severe,
#: then the oldest, first), so that a night with tens of thousands of findings
#: still opens in a browser; findings.json and findings.csv hold every finding.
HTML_PER_CLASS = 1000


# --------------------------------------------------------------------------- JSON


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _jsonable(value: Any) -> Any:
    """Evidence values to JSON types, with every string masked.

    >>> _jsonable({"t": datetime(2024, 5, 1, tzinfo=timezone.utc), "q": ("PASSWORD 'x'",)})
    {'t': '2024-05-01T00:00:00+00:00', 'q': ["PASSWORD '*****'"]}
    """
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return _jsonable(value.value)
    if isinstance(value, str):
        return mask(value)
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(v) for v in value]
    return mask(str(value))


def _masked(value: str | None) -> str | None:
    return None if value is None else mask(value)


def _ordered_counts(counts: Mapping[str, int], order: Sequence[str]) -> dict[str, int]:
    """Known keys in ``order``, then unknown keys sorted: stable output whatever the input order."""
    known = [k for k in order if k in counts]
    return {k: int(counts[k]) for k in [*known, *sorted(set(counts) - set(known))]}


def _finding_to_json(f: Finding) -> dict[str, Any]:
    evidence = dict(f.evidence)
    ev: dict[str, Any] = {
        "log": _jsonable(evidence.pop("log", None)),
        "audit": _jsonable(evidence.pop("audit", None) or []),
    }
    ev.update({str(k): _jsonable(v) for k, v in evidence.items()})
    return {
        "id": f.id,
        "class": f.cls.value,
        "severity": f.severity.value,
        "time": _iso(f.time),
        "database": f.database,
        "user": f.user,
        "application": _masked(f.application),
        "client": f.client,
        "session_id": f.session_id,
        "vxid": f.vxid,
        "command_tags": list(f.command_tags),
        "statement": _masked(f.statement),
        "audit_event_ids": list(f.audit_event_ids),
        "log_file": f.log_file,
        "log_line": f.log_line,
        "explanation": mask(f.explanation),
        "allowed": f.allowed,
        "accounts_logged_ddl": f.accounts_logged_ddl,
        "evidence": ev,
    }


def document_to_json(doc: FindingsDocument) -> dict[str, Any]:
    """The findings.json object of ``doc`` (spec keys in spec order, then the extras).

    Evidence becomes plain JSON (datetimes as ISO strings, tuples as lists), so
    a document loaded back holds the JSON form of its evidence.
    """
    s = doc.summary
    return {
        "auditor_version": doc.auditor_version,
        "generated_at": _iso(doc.generated_at),
        "window": {"since": _iso(doc.since), "until": _iso(doc.until)},
        "sources": {
            "logs": [
                {
                    "path": log.path,
                    "format": log.format,
                    "records": log.records,
                    "ddl_statements": log.ddl_statements,
                    "warnings": [mask(w) for w in log.warnings],
                }
                for log in doc.logs
            ],
            "databases": [
                {"name": d.name, "installed": d.installed, "audit_rows": d.audit_rows}
                for d in doc.databases
            ],
        },
        "summary": {
            "logged_ddl": s.logged_ddl,
            "audit_rows": s.audit_rows,
            "matched": s.matched,
            "by_class": _ordered_counts(s.by_class, [c.value for c in FindingClass]),
            "by_severity": _ordered_counts(
                s.by_severity, [v.value for v in _SEVERITIES_HIGH_FIRST]
            ),
            "matched_audit_rows": s.matched_audit_rows,
        },
        "findings": [_finding_to_json(f) for f in doc.findings],
        "notes": [mask(n) for n in doc.notes],
    }


def _json_bytes(data: Mapping[str, Any]) -> bytes:
    # A lone surrogate (undecodable input bytes) becomes the JSON escape \udcXX,
    # which json.loads turns back into the same character.
    text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
    return text.encode("utf-8", "backslashreplace")


def _write_atomic(path: Path, data: bytes) -> Path:
    """Write via a temporary file and rename, so a reader never sees half a report."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_bytes(data)
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise ReportError(f"{path}: cannot write ({exc.strerror or exc})") from None
    return path


def write_findings_json(doc: FindingsDocument, path: Path) -> Path:
    """Write findings.json (UTF-8, indented, keys in the spec's order)."""
    return _write_atomic(Path(path), _json_bytes(document_to_json(doc)))


class _Loader:
    """Validate a decoded findings.json and build the document; errors name the file and key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: str, problem: str) -> NoReturn:
        raise ReportError(f"{self.path}: not a findings.json document: {where}: {problem}")

    def obj(self, value: Any, where: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            self.fail(where, f"expected an object, got {type(value).__name__}")
        return value

    def key(self, obj: Mapping[str, Any], key: str, where: str) -> Any:
        if key not in obj:
            self.fail(where, f"missing key {key!r}")
        return obj[key]

    def text(self, value: Any, where: str, *, optional: bool = False) -> Any:
        if value is None and optional:
            return None
        if not isinstance(value, str):
            self.fail(where, f"expected a string, got {value!r:.60}")
        return value

    def integer(self, value: Any, where: str, *, optional: bool = False) -> Any:
        if value is None and optional:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(where, f"expected an integer, got {value!r:.60}")
        return value

    def boolean(self, value: Any, where: str) -> bool:
        if not isinstance(value, bool):
            self.fail(where, f"expected true or false, got {value!r:.60}")
        return value

    def array(self, value: Any, where: str) -> list[Any]:
        if not isinstance(value, list):
            self.fail(where, f"expected an array, got {type(value).__name__}")
        return value

    def time(self, value: Any, where: str) -> datetime | None:
        if value is None:
            return None
        text = self.text(value, where)
        try:
            return datetime.fromisoformat(text)
        except ValueError:
            self.fail(where, f"not an ISO-8601 time: {text!r:.60}")

    def counts(self, value: Any, where: str) -> dict[str, int]:
        obj = self.obj(value, where)
        return {k: self.integer(v, f"{where}.{k}") for k, v in obj.items()}

    def log(self, value: Any, where: str) -> LogSourceSummary:
        o = self.obj(value, where)
        return LogSourceSummary(
            path=self.text(self.key(o, "path", where), f"{where}.path"),
            format=self.text(self.key(o, "format", where), f"{where}.format"),
            records=self.integer(self.key(o, "records", where), f"{where}.records"),
            ddl_statements=self.integer(
                self.key(o, "ddl_statements", where), f"{where}.ddl_statements"
            ),
            warnings=tuple(
                self.text(w, f"{where}.warnings[{i}]")
                for i, w in enumerate(self.array(o.get("warnings", []), f"{where}.warnings"))
            ),
        )

    def database(self, value: Any, where: str) -> DatabaseSummary:
        o = self.obj(value, where)
        return DatabaseSummary(
            name=self.text(self.key(o, "name", where), f"{where}.name"),
            installed=self.boolean(self.key(o, "installed", where), f"{where}.installed"),
            audit_rows=self.integer(self.key(o, "audit_rows", where), f"{where}.audit_rows"),
        )

    def finding(self, value: Any, where: str) -> Finding:
        o = self.obj(value, where)
        for name in FINDING_FIELDS:
            self.key(o, name, where)

        def opt(name: str) -> str | None:
            return self.text(o[name], f"{where}.{name}", optional=True)  # type: ignore[no-any-return]

        try:
            cls = FindingClass(o["class"])
        except ValueError:
            self.fail(f"{where}.class", f"unknown finding class {o['class']!r:.60}")
        try:
            severity = Severity(o["severity"])
        except ValueError:
            self.fail(f"{where}.severity", f"unknown severity {o['severity']!r:.60}")
        evidence = self.obj(o.get("evidence", {}), f"{where}.evidence")
        return Finding(
            id=self.text(o["id"], f"{where}.id"),
            cls=cls,
            severity=severity,
            time=self.time(o["time"], f"{where}.time"),
            database=opt("database"),
            user=opt("user"),
            application=opt("application"),
            client=opt("client"),
            session_id=opt("session_id"),
            vxid=opt("vxid"),
            command_tags=tuple(
                self.text(t, f"{where}.command_tags[{i}]")
                for i, t in enumerate(self.array(o["command_tags"], f"{where}.command_tags"))
            ),
            statement=opt("statement"),
            audit_event_ids=tuple(
                self.integer(n, f"{where}.audit_event_ids[{i}]")
                for i, n in enumerate(self.array(o["audit_event_ids"], f"{where}.audit_event_ids"))
            ),
            log_file=opt("log_file"),
            log_line=self.integer(o["log_line"], f"{where}.log_line", optional=True),
            explanation=self.text(o["explanation"], f"{where}.explanation"),
            allowed=self.boolean(o.get("allowed", False), f"{where}.allowed"),
            accounts_logged_ddl=self.integer(
                o.get("accounts_logged_ddl", 0), f"{where}.accounts_logged_ddl"
            ),
            evidence=evidence,
        )

    def document(self, data: Any) -> FindingsDocument:
        top = self.obj(data, "top level")
        window = self.obj(self.key(top, "window", "top level"), "window")
        sources = self.obj(self.key(top, "sources", "top level"), "sources")
        summary = self.obj(self.key(top, "summary", "top level"), "summary")
        generated = self.time(self.key(top, "generated_at", "top level"), "generated_at")
        if generated is None:
            self.fail("generated_at", "must not be null")
        return FindingsDocument(
            auditor_version=self.text(
                self.key(top, "auditor_version", "top level"), "auditor_version"
            ),
            generated_at=generated,
            since=self.time(self.key(window, "since", "window"), "window.since"),
            until=self.time(self.key(window, "until", "window"), "window.until"),
            logs=tuple(
                self.log(v, f"sources.logs[{i}]")
                for i, v in enumerate(
                    self.array(self.key(sources, "logs", "sources"), "sources.logs")
                )
            ),
            databases=tuple(
                self.database(v, f"sources.databases[{i}]")
                for i, v in enumerate(
                    self.array(self.key(sources, "databases", "sources"), "sources.databases")
                )
            ),
            summary=Summary(
                logged_ddl=self.integer(
                    self.key(summary, "logged_ddl", "summary"), "summary.logged_ddl"
                ),
                audit_rows=self.integer(
                    self.key(summary, "audit_rows", "summary"), "summary.audit_rows"
                ),
                matched=self.integer(self.key(summary, "matched", "summary"), "summary.matched"),
                by_class=self.counts(self.key(summary, "by_class", "summary"), "summary.by_class"),
                by_severity=self.counts(
                    self.key(summary, "by_severity", "summary"), "summary.by_severity"
                ),
                matched_audit_rows=self.integer(
                    summary.get("matched_audit_rows"),
                    "summary.matched_audit_rows",
                    optional=True,
                ),
            ),
            findings=tuple(
                self.finding(v, f"findings[{i}]")
                for i, v in enumerate(
                    self.array(self.key(top, "findings", "top level"), "findings")
                )
            ),
            notes=tuple(
                self.text(n, f"notes[{i}]")
                for i, n in enumerate(self.array(top.get("notes", []), "notes"))
            ),
        )


def load_findings_json(path: Path) -> FindingsDocument:
    """Read a findings.json back into the document that wrote it.

    Raises :class:`~auditor.errors.ReportError` with one line naming the file
    (and the line, for JSON syntax errors).
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise ReportError(f"{path}: cannot read findings file ({exc.strerror or exc})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        raise ReportError(f"{path}:{line}: findings file is not UTF-8 text") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ReportError(
            f"{path}:{exc.lineno}: not valid JSON ({exc.msg}, column {exc.colno})"
        ) from None
    return _Loader(path).document(data)


# --------------------------------------------------------------------------- CSV

_FORMULA_START = frozenset("=+-@\t\r\uff1d\uff0b\uff0d\uff20")


def csv_safe(text: str) -> str:
    """Defuse a cell a spreadsheet would evaluate as a formula (OWASP: prefix ``'``).

    >>> csv_safe("=HYPERLINK(\\"http://x\\")")
    '\\'=HYPERLINK("http://x")'
    >>> csv_safe("-- comment")
    "'-- comment"
    >>> csv_safe("CREATE TABLE t ()")
    'CREATE TABLE t ()'
    """
    return "'" + text if text and text[0] in _FORMULA_START else text


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return csv_safe(";".join(str(v) for v in value))
    return csv_safe(str(value))


def _csv_bytes(data: Mapping[str, Any]) -> bytes:
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_FIELDS)
    for finding in data["findings"]:
        writer.writerow([_csv_cell(finding.get(name)) for name in CSV_FIELDS])
    return buf.getvalue().encode("utf-8", "backslashreplace")


def write_findings_csv(doc: FindingsDocument, path: Path) -> Path:
    """Write findings.csv: one row per finding, see the module docstring for the format."""
    return _write_atomic(Path(path), _csv_bytes(document_to_json(doc)))


# --------------------------------------------------------------------------- HTML

_TEMPLATES = resources.files("auditor") / "templates"
_env: jinja2.Environment | None = None

# Characters that render as nothing (or reorder text) and can hide what a statement does,
# and lone surrogates (undecodable log bytes, when a reader used surrogateescape): the
# terminal's definition (auditor.terminal), whitespace that HTML renders as such excepted.
_INVISIBLE = unsafe_pattern("\t\n\r")


def show_invisible(value: Any) -> Markup:
    """Escape for HTML and show invisible or bidi control characters as visible tags.

    >>> str(show_invisible("<b>\u202eevil"))
    '&lt;b&gt;<span class="ctl" title="invisible character">U+202E</span>evil'
    """
    text = "" if value is None else str(value)
    out: list[str] = []
    pos = 0
    for m in _INVISIBLE.finditer(text):
        out.append(str(escape(text[pos : m.start()])))
        out.append(f'<span class="ctl" title="invisible character">U+{ord(m.group()):04X}</span>')
        pos = m.end()
    out.append(str(escape(text[pos:])))
    return Markup("".join(out))


_NONE = Markup('<span class="none">—</span>')


def _show_value(value: Any) -> Markup:
    """A table or list value: a muted dash when absent, else escaped text."""
    return _NONE if value is None or value == "" else show_invisible(value)


def _show_kv(item: Mapping[str, Any]) -> Markup:
    """An evidence value; long or multi-line ones in a ``<pre>``."""
    if item["value"] is None:
        return _NONE
    if item["long"]:
        return Markup("<pre>") + show_invisible(item["value"]) + Markup("</pre>")
    return show_invisible(item["value"])


def _environment() -> jinja2.Environment:
    global _env
    if _env is None:
        _env = jinja2.Environment(
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=True,
        )
        _env.filters["v"] = show_invisible
        _env.filters["val"] = _show_value
        _env.filters["kv"] = _show_kv
    return _env


def _asset(name: str) -> str:
    return (_TEMPLATES / name).read_text(encoding="utf-8")


def _csp_hash(text: str) -> str:
    return "'sha256-" + _b64(hashlib.sha256(text.encode("utf-8")).digest()) + "'"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _parse_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _display_tz(data: Mapping[str, Any]) -> tzinfo | None:
    """One fixed offset for the whole page: the window's, else the first finding's, else UTC."""
    candidates = [data["window"]["since"], data["window"]["until"]]
    candidates += [f["time"] for f in data["findings"]]
    candidates.append(data["generated_at"])
    for value in candidates:
        t = _parse_time(value)
        if t is not None:
            offset = t.utcoffset()
            return timezone(offset) if offset is not None else None
    return UTC


def _local(t: datetime | None, tz: tzinfo | None) -> datetime | None:
    if t is None:
        return None
    if t.tzinfo is not None and tz is not None:
        return t.astimezone(tz)
    return t


def _fmt_time(t: datetime | None, *, seconds: bool = True) -> str:
    """Compact display of a local time.

    >>> _fmt_time(datetime(2024, 5, 1, 3, 4, 5, 678000))
    '2024-05-01 03:04:05.678'
    """
    if t is None:
        return ""
    text = t.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")
    if seconds and t.microsecond:
        text += f".{t.microsecond // 1000:03d}"
    return text


def _tz_label(tz: tzinfo | None) -> str:
    """``UTC`` or ``UTC+02:00``.

    >>> _tz_label(timezone(timedelta(hours=-5, minutes=-30)))
    'UTC-05:30'
    """
    if tz is None:
        return "server local time (no offset recorded)"
    offset = tz.utcoffset(None) or timedelta(0)
    if not offset:
        return "UTC"
    sign = "+" if offset >= timedelta(0) else "-"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def _epoch_ms(t: datetime | None, tz: tzinfo | None) -> str:
    if t is None:
        return ""
    if t.tzinfo is None:
        t = t.replace(tzinfo=tz or UTC)
    return str(round(t.timestamp() * 1000))


def _fmt_value(value: Any) -> str | None:
    """Evidence values as text.

    >>> _fmt_value(["a", 1]), _fmt_value(True), _fmt_value({"b": 1})
    ('a, 1', 'yes', '{"b": 1}')
    """
    if value is None or value == "" or value == []:
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        if all(not isinstance(v, list) for v in value):
            return ", ".join(_fmt_object(v) if isinstance(v, dict) else str(v) for v in value)
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, dict):
        return _fmt_object(value)
    return str(value)


def _fmt_object(obj: Mapping[str, Any]) -> str:
    """An object touched by DDL as ``type identity``, else the mapping as JSON.

    >>> _fmt_object({"type": "table", "identity": "public.t", "in_extension": False})
    'table public.t'
    >>> _fmt_object({"object_type": "index", "object_identity": "public.i", "in_extension": True})
    'index public.i (in extension)'
    """
    identity = obj.get("identity", obj.get("object_identity"))
    if isinstance(identity, str):
        kind = obj.get("type", obj.get("object_type"))
        text = f"{kind} {identity}" if isinstance(kind, str) else identity
        return text + (" (in extension)" if obj.get("in_extension") is True else "")
    return json.dumps(obj, ensure_ascii=False, sort_keys=True)


_LOG_KEYS = (
    "file",
    "line",
    "time",
    "kind",
    "severity",
    "sqlstate",
    "error",
    "message",
    "detail",
    "hint",
    "context",
    "statement",
    "session_id",
    "line_num",
    "vxid",
    "xid",
    "pid",
    "user",
    "database",
    "application",
    "client",
    "command_tag",
    "protocol",
    "prepared_name",
    "parameters",
    "duration_ms",
    "backend_type",
)
_AUDIT_KEYS = (
    "id",
    "event",
    "command_tag",
    "objects",
    "object_type",
    "object_identity",
    "schema",
    "session_user",
    "current_user",
    "user",
    "database",
    "database_in_row",
    "client",
    "client_addr",
    "client_port",
    "application",
    "statement_time",
    "clock_time",
    "time",
    "session_id",
    "vxid",
    "xid",
    "pid",
)


def _ordered_keys(keys: Iterable[str], preferred: Sequence[str]) -> list[str]:
    keys = list(dict.fromkeys(keys))
    first = [k for k in preferred if k in keys]
    return first + [k for k in keys if k not in first]


def _is_long(text: str | None) -> bool:
    return text is not None and (len(text) > 90 or "\n" in text)


def _kv(obj: Mapping[str, Any], preferred: Sequence[str], skip: Mapping[str, Any]) -> list[Any]:
    rows = []
    for key in _ordered_keys(obj, preferred):
        value = obj[key]
        if key in skip and value == skip[key]:
            text: str | None = "(same as the statement above)"
        else:
            text = _fmt_value(value)
        rows.append({"key": key, "value": text, "long": _is_long(text)})
    return rows


def _cell(text: str | None) -> dict[str, Any]:
    return {"value": text, "long": text is not None and len(text) > 40}


def _excerpt(text: str | None, limit: int = 160) -> str:
    """One line of at most ``limit`` characters.

    >>> _excerpt("CREATE  TABLE\\n  t (id int)", 18)
    'CREATE TABLE t (i…'
    """
    if not text:
        return ""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _nice_ceiling(n: int) -> int:
    """Axis maximum: 1, 2, 5 times a power of ten.

    >>> [_nice_ceiling(n) for n in (0, 1, 3, 7, 12, 260)]
    [1, 1, 5, 10, 20, 500]
    """
    if n <= 1:
        return 1
    power = int(10 ** math.floor(math.log10(n)))
    for step in (1, 2, 5, 10):
        if step * power >= n:
            return step * power
    return 10 * power  # pragma: no cover


_BIN_WIDTHS = [
    timedelta(minutes=m) for m in (1, 2, 5, 10, 15, 30, 60, 120, 180, 360, 720, 1440, 2880, 10080)
]


def _chart(
    times: list[tuple[datetime, str]], since: datetime | None, until: datetime | None
) -> Any:
    """Stacked bars of findings per time bin and severity, as SVG geometry (no JS needed)."""
    if not times and (since is None or until is None):
        return None
    points = [t for t, _ in times]
    start = since if since is not None else min(points)
    end = until if until is not None else max(points)
    if points:  # a finding outside the window still belongs on the chart
        start, end = min(start, *points), max(end, *points)
    if end <= start:
        start, end = start - timedelta(minutes=30), end + timedelta(minutes=30)
    span = end - start
    width = next((w for w in _BIN_WIDTHS if span / w <= 48), _BIN_WIDTHS[-1])
    while span / width > 60:  # more than 60 weeks: widen further
        width *= 2
    # Align the first bin on a multiple of the bin width since local midnight.
    midnight = start.replace(hour=0, minute=0, second=0, microsecond=0)
    step = min(width, timedelta(days=1))
    first = midnight + ((start - midnight) // step) * step
    nbins = max(1, math.ceil((end - first) / width))
    counts = [Counter[str]() for _ in range(nbins)]
    for t, sev in times:
        counts[min(nbins - 1, int((t - first) / width))][sev] += 1
    top = _nice_ceiling(max((sum(c.values()) for c in counts), default=0))

    x0, x1, y0, y1 = 46.0, 962.0, 14.0, 176.0
    slot = (x1 - x0) / nbins
    bar = max(1.0, slot * 0.8)
    bars = []
    for i, c in enumerate(counts):
        if not c:
            continue
        lo = first + i * width
        label = f"{_fmt_time(lo, seconds=False)} to {_fmt_time(lo + width, seconds=False)[-5:]}"
        y = y1
        for sev in _SEVERITIES_HIGH_FIRST:  # critical at the bottom, info on top
            n = c.get(sev.value, 0)
            if not n:
                continue
            h = (y1 - y0) * n / top
            y -= h
            bars.append(
                {
                    "x": f"{x0 + i * slot + (slot - bar) / 2:.1f}",
                    "y": f"{y:.1f}",
                    "w": f"{bar:.1f}",
                    "h": f"{h:.1f}",
                    "severity": sev.value,
                    "title": f"{label}: {n} {sev.value}",
                }
            )
    multi_day = nbins * width > timedelta(days=1) or first.date() != end.date()
    every = max(1, math.ceil(nbins / 8))
    ticks = []
    for i in range(0, nbins + 1, every):
        t = first + i * width
        if width >= timedelta(days=1):
            text = t.strftime("%Y-%m-%d")
        elif multi_day:
            text = t.strftime("%m-%d %H:%M")
        else:
            text = t.strftime("%H:%M")
        ticks.append({"x": f"{x0 + i * slot:.1f}", "text": text})
    window_marks = []
    for name, edge in (("since", since), ("until", until)):
        if edge is not None:
            x = x0 + (edge - first) / width * slot
            window_marks.append({"x": f"{x:.1f}", "name": name})
    return {
        "bars": bars,
        "ticks": ticks,
        "top": top,
        "half": top / 2 if top % 2 == 0 else None,
        "x0": x0,
        "x1": x1,
        "y0": y0,
        "y1": y1,
        "ymid": f"{(y0 + y1) / 2:.1f}",
        "bin": _fmt_duration(width),
        "window_marks": window_marks,
        "start": _fmt_time(first, seconds=False),
        "end": _fmt_time(first + nbins * width, seconds=False),
    }


def _fmt_duration(d: timedelta) -> str:
    """
    >>> _fmt_duration(timedelta(minutes=90)), _fmt_duration(timedelta(days=7))
    ('90 min', '7 days')
    """
    minutes = int(d.total_seconds() // 60)
    if minutes % 1440 == 0:
        days = minutes // 1440
        return f"{days} day" + ("s" if days > 1 else "")
    if minutes % 60 == 0 and minutes >= 60:
        return f"{minutes // 60} h"
    return f"{minutes} min"


def _opt_value(value: str | None) -> str:
    """Filter values: ``=name`` for a value, ``~`` for none, so no name can collide."""
    return "~" if value is None else "=" + value


def _view(data: Mapping[str, Any], per_class: int | None = HTML_PER_CLASS) -> dict[str, Any]:
    """Everything the template shows, computed from the JSON form of the document.

    At most ``per_class`` findings of each class are listed (None: all of them).
    """
    tz = _display_tz(data)
    since = _local(_parse_time(data["window"]["since"]), tz)
    until = _local(_parse_time(data["window"]["until"]), tz)
    generated = _local(_parse_time(data["generated_at"]), tz)
    summary = data["summary"]
    findings = data["findings"]
    sev_rank = {s.value: s.rank for s in Severity}

    # Default order: most severe first, then by time, then as the reconciler listed them.
    order = []
    times: list[tuple[datetime, str]] = []
    for index, f in enumerate(findings):
        when = _parse_time(f["time"])
        t = _local(when, tz)
        if t is not None:
            times.append((t.replace(tzinfo=None), f["severity"]))
        epoch = _epoch_ms(when, tz)
        rank = sev_rank[f["severity"]]
        order.append(((-rank, epoch == "", int(epoch or 0), index), index, t, epoch, rank))
    order.sort(key=lambda o: o[0])
    # The HTML lists the first ``per_class`` findings of each class in that order;
    # findings.json and findings.csv hold them all, and every count stays complete.
    taken: Counter[str] = Counter()
    rows = []
    for _, index, t, epoch, rank in order:
        f = findings[index]
        if per_class is not None and taken[f["class"]] >= per_class:
            continue
        taken[f["class"]] += 1
        ev = f.get("evidence") or {}
        log = ev.get("log") if isinstance(ev.get("log"), dict) else None
        audit = [a for a in (ev.get("audit") or []) if isinstance(a, dict)]
        audit_cols = _ordered_keys((k for a in audit for k in a), _AUDIT_KEYS)
        skip = {"statement": f["statement"], "query": f["statement"]}
        rows.append(
            {
                "f": f,
                "index": index,
                "anchor": f"finding-{index + 1}",
                "time": _fmt_time(t),
                "t": epoch,
                "rank": rank,
                "tags": ", ".join(f["command_tags"]),
                "audit_ids": ", ".join(str(i) for i in f["audit_event_ids"]),
                "excerpt": _excerpt(f["statement"]) or _excerpt(f["explanation"]),
                "excerpt_is_statement": bool(f["statement"]),
                "db_value": _opt_value(f["database"]),
                "user_value": _opt_value(f["user"]),
                "meaning": CLASS_MEANING.get(f["class"], ""),
                "log": _kv(log, _LOG_KEYS, skip) if log else None,
                "audit_cols": audit_cols,
                "audit": [
                    [
                        _cell(
                            "(same as the statement above)"
                            if k in skip and a.get(k) == skip[k] and a.get(k)
                            else _fmt_value(a.get(k))
                        )
                        for k in audit_cols
                    ]
                    for a in audit
                ],
                "extra_evidence": _kv(
                    {k: v for k, v in ev.items() if k not in ("log", "audit")}, (), {}
                ),
            }
        )

    counted_class = Counter(f["class"] for f in findings)
    counted_sev = Counter(f["severity"] for f in findings)
    allowed_sev = Counter(f["severity"] for f in findings if f.get("allowed"))
    allowed_class = Counter(f["class"] for f in findings if f.get("allowed"))
    by_class = summary["by_class"]
    by_severity = summary["by_severity"]
    class_worst: dict[str, int] = {}
    for f in findings:
        class_worst[f["class"]] = max(class_worst.get(f["class"], -1), sev_rank[f["severity"]])
    class_order = [c.value for c in FindingClass]
    classes = sorted(
        set(by_class) | set(counted_class),
        key=lambda c: (
            -class_worst.get(c, -1),
            -by_class.get(c, 0),
            class_order.index(c) if c in class_order else 99,
            c,
        ),
    )
    class_rows = [
        {
            "name": c,
            "count": by_class.get(c, 0),
            "listed": counted_class.get(c, 0),
            "allowed": allowed_class.get(c, 0),
            "shown": taken.get(c, 0),
            "worst": next((s.value for s in Severity if s.rank == class_worst.get(c)), None),
            "meaning": CLASS_MEANING.get(c, ""),
        }
        for c in classes
        if by_class.get(c, 0) or counted_class.get(c, 0)
    ]
    quiet_classes = [
        c.value for c in FindingClass if c.value not in {r["name"] for r in class_rows}
    ]
    severity_cards = [
        {
            "name": s.value,
            "count": by_severity.get(s.value, 0),
            "listed": counted_sev.get(s.value, 0),
            "allowed": allowed_sev.get(s.value, 0),
        }
        for s in _SEVERITIES_HIGH_FIRST
    ]

    # Accounting, from the document's numbers (see the module docstring).
    ddl_in_findings = sum(int(f.get("accounts_logged_ddl") or 0) for f in findings)
    rows_in_findings = len({(f["database"], i) for f in findings for i in f["audit_event_ids"]})
    problems = []
    if summary["logged_ddl"] != summary["matched"] + ddl_in_findings:
        problems.append(
            f"logged DDL ({summary['logged_ddl']}) is not matched ({summary['matched']}) "
            f"+ DDL in findings ({ddl_in_findings})"
        )
    matched_rows = summary.get("matched_audit_rows")
    if matched_rows is not None and summary["audit_rows"] != matched_rows + rows_in_findings:
        problems.append(
            f"audit rows ({summary['audit_rows']}) is not matched rows ({matched_rows}) "
            f"+ rows in findings ({rows_in_findings})"
        )
    if sum(by_class.values()) != len(findings) or any(
        by_class.get(c, 0) != n for c, n in counted_class.items()
    ):
        problems.append("the counts by class differ from the findings listed")
    if sum(by_severity.values()) != len(findings) or any(
        by_severity.get(s, 0) != n for s, n in counted_sev.items()
    ):
        problems.append("the counts by severity differ from the findings listed")

    active = [f for f in findings if not f.get("allowed")]
    worst = max((sev_rank[f["severity"]] for f in active), default=None)
    worst_name = next((s.value for s in Severity if s.rank == worst), None)
    active_sev = Counter(f["severity"] for f in active)
    logs = data["sources"]["logs"]
    dbs = data["sources"]["databases"]

    def distinct(key: str) -> list[dict[str, str]]:
        values = sorted({r["f"][key] for r in rows}, key=lambda v: (v is None, v or ""))
        return [{"value": _opt_value(v), "label": "(none)" if v is None else v} for v in values]

    return {
        "data": data,
        "tz": _tz_label(tz),
        "since": _fmt_time(since),
        "until": _fmt_time(until),
        "generated": _fmt_time(generated),
        "rows": rows,
        "total": len(findings),
        "listed": len(rows),
        "per_class": per_class,
        "capped": [
            {"name": r["name"], "shown": r["shown"], "count": r["listed"]}
            for r in class_rows
            if r["shown"] < r["listed"]
        ],
        "allowed_total": sum(1 for f in findings if f.get("allowed")),
        "active_total": len(active),
        "worst": worst_name,
        "headline": [
            {"name": s.value, "count": active_sev[s.value]}
            for s in _SEVERITIES_HIGH_FIRST
            if active_sev[s.value]
        ],
        "severity_cards": severity_cards,
        "class_rows": class_rows,
        "quiet_classes": quiet_classes,
        "accounting": {
            "logged_ddl": summary["logged_ddl"],
            "matched": summary["matched"],
            "ddl_in_findings": ddl_in_findings,
            "audit_rows": summary["audit_rows"],
            "matched_rows": matched_rows,
            "rows_in_findings": rows_in_findings,
            "problems": problems,
        },
        "chart": _chart(
            times,
            since.replace(tzinfo=None) if since else None,
            until.replace(tzinfo=None) if until else None,
        ),
        "untimed": sum(1 for f in findings if f["time"] is None),
        "logs": logs,
        "log_warnings": sum(len(log["warnings"]) for log in logs),
        "dbs": dbs,
        "dbs_uninstalled": sum(1 for d in dbs if not d["installed"]),
        "filter_classes": [c for c in [x.value for x in FindingClass] if c in counted_class]
        + sorted(set(counted_class) - {x.value for x in FindingClass}),
        "filter_severities": [s.value for s in _SEVERITIES_HIGH_FIRST if s.value in counted_sev],
        "filter_databases": distinct("database"),
        "filter_users": distinct("user"),
        "class_meaning": CLASS_MEANING,
    }


def _render(data: Mapping[str, Any], per_class: int | None = None) -> str:
    env = _environment()
    template = env.from_string(_asset("report.html.j2"))
    style, script = _asset("report.css"), _asset("report.js")
    if "</" in script or "</" in style:  # pragma: no cover - guards our own assets
        raise ReportError("report assets must not contain '</'")
    csp = "; ".join(
        (
            "default-src 'none'",
            f"script-src {_csp_hash(script)}",
            f"style-src {_csp_hash(style)}",
            "img-src data:",
            "base-uri 'none'",
            "form-action 'none'",
        )
    )
    return template.render(
        view=_view(data, per_class), style=Markup(style), script=Markup(script), csp=csp
    )


def _html_bytes(data: Mapping[str, Any]) -> bytes:
    # Lone surrogates left in attributes become character references (shown as U+FFFD).
    return _render(data, HTML_PER_CLASS).encode("utf-8", "xmlcharrefreplace")


def render_html(doc: FindingsDocument, *, per_class: int | None = HTML_PER_CLASS) -> str:
    """The self-contained report.html of ``doc`` (no network, no clock, escaped throughout).

    It lists at most ``per_class`` findings of each class (None: every finding),
    and says so; its counts are always the whole document's.
    """
    return _render(document_to_json(doc), per_class)


def write_reports(doc: FindingsDocument, out_dir: Path) -> dict[str, Path]:
    """Write findings.json, findings.csv and report.html into ``out_dir`` (created if needed).

    Returns ``{"json": path, "csv": path, "html": path}``.
    """
    out_dir = Path(out_dir)
    data = document_to_json(doc)
    return {
        "json": _write_atomic(out_dir / JSON_NAME, _json_bytes(data)),
        "csv": _write_atomic(out_dir / CSV_NAME, _csv_bytes(data)),
        "html": _write_atomic(out_dir / HTML_NAME, _html_bytes(data)),
    }


def report_from_json(
    findings_json: Path, *, html: Path | None = None, csv_path: Path | None = None
) -> tuple[FindingsDocument, dict[str, Path]]:
    """``auditor report``: render the HTML and CSV of a saved findings.json.

    Defaults put ``report.html`` and ``findings.csv`` next to the JSON file,
    where reconcile wrote them.
    """
    findings_json = Path(findings_json)
    doc = load_findings_json(findings_json)
    data = document_to_json(doc)
    html = html if html is not None else findings_json.with_name(HTML_NAME)
    csv_path = csv_path if csv_path is not None else findings_json.with_name(CSV_NAME)
    return doc, {
        "html": _write_atomic(Path(html), _html_bytes(data)),
        "csv": _write_atomic(Path(csv_path), _csv_bytes(data)),
    }


def summary_text(doc: FindingsDocument) -> str:
    """One line for a terminal or a mail subject.

    >>> from auditor.model import Summary
    >>> s = Summary(4, 3, 3, {}, {})
    >>> doc = FindingsDocument("0", datetime(2024, 1, 1), None, None, (), (), s, ())
    >>> summary_text(doc)
    'no findings; 4 logged DDL, 3 audit rows, 3 matched'
    """
    counts = Counter(f.severity.value for f in doc.findings if not f.allowed)
    parts = [f"{counts[s.value]} {s.value}" for s in _SEVERITIES_HIGH_FIRST if counts[s.value]]
    allowed = sum(1 for f in doc.findings if f.allowed)
    if doc.findings:
        head = f"{len(doc.findings)} finding" + ("s" if len(doc.findings) != 1 else "")
        detail = ", ".join(parts + ([f"{allowed} allow-listed"] if allowed else []))
        head = f"{head} ({detail})"
    else:
        head = "no findings"
    s = doc.summary
    return f"{head}; {s.logged_ddl} logged DDL, {s.audit_rows} audit rows, {s.matched} matched"
