"""The report outputs: findings.json round trip, findings.csv, report.html, ``auditor report``.

The document below has a finding of every class and every severity, allowed
and not, and hostile text in every field a log or a database can fill.  The
HTML is parsed and checked (counts, rows, escaping); the browser test at the
end opens it in a real headless Chromium with JavaScript on.
"""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, ClassVar

import pytest
from typer.testing import CliRunner

from auditor.cli import app
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
from auditor.report import (
    CSV_FIELDS,
    FINDING_FIELDS,
    document_to_json,
    load_findings_json,
    render_html,
    summary_text,
    write_findings_csv,
    write_findings_json,
    write_reports,
)

ROOT = Path(__file__).resolve().parents[1]
TZ = timezone(timedelta(hours=2))
T0 = datetime(2024, 5, 1, 0, 0, tzinfo=TZ)

SENTINEL = "__auditor_pwned"
HOSTILE = (
    f"CREATE TABLE x (); </script><script>window.{SENTINEL}=1;alert(1)</script>"
    f' <img src=x onerror="window.{SENTINEL}=2;alert(2)"> "\'& done'
)
HOSTILE_USER = "<b>mallory</b>"
HOSTILE_APP = f"<img src=x onerror=window.{SENTINEL}=3>"
FORMULA_APP = '=HYPERLINK("http://evil.example/","click")'
SECRET = "s3cr3t-Hunter2"
PASSWORD_STMT = f"ALTER ROLE app PASSWORD '{SECRET}' VALID UNTIL 'infinity'"
NON_ASCII_DB = "données"
NON_ASCII_STMT = 'CREATE TABLE "données_日本語" ("ünïcødé" text) -- 🦆'
LONG_STMT = "CREATE TABLE wide (" + ", ".join(f"c{i} int" for i in range(20000)) + ")"
COMMENT_STMT = "-- nightly job\nDROP TABLE staging_orders"
BIDI_STMT = "DROP TABLE /* \u202eevil */ t"


def _finding(n: int, cls: FindingClass, severity: Severity, **changes: Any) -> Finding:
    fields: dict[str, Any] = {
        "id": f"F{n:04d}",
        "cls": cls,
        "severity": severity,
        "time": T0 + timedelta(minutes=47 * n),
        "database": "prod",
        "user": "alice",
        "application": "psql",
        "client": "10.0.0.7:51234",
        "session_id": f"6631a2b4.{n:x}",
        "vxid": f"3/{n}",
        "command_tags": ("CREATE TABLE",),
        "statement": f"CREATE TABLE t{n} (id int)",
        "audit_event_ids": (100 + n,),
        "log_file": "/var/log/postgresql/postgresql-2024-05-01.csv",
        "log_line": 1000 + n,
        "explanation": f"{cls.value} explanation {n}",
        "evidence": {
            "log": {
                "file": "/var/log/postgresql/postgresql-2024-05-01.csv",
                "line": 1000 + n,
                "time": (T0 + timedelta(minutes=47 * n)).isoformat(),
                "kind": "statement",
                "message": f"statement: CREATE TABLE t{n} (id int)",
                "session_id": f"6631a2b4.{n:x}",
            },
            "audit": [
                {
                    "id": 100 + n,
                    "event": "ddl_command_end",
                    "command_tag": "CREATE TABLE",
                    "objects": [{"type": "table", "identity": f"public.t{n}"}],
                    "session_user": "alice",
                    "client": "10.0.0.7:51234",
                }
            ],
        },
    }
    fields.update(changes)
    if "accounts_logged_ddl" not in changes:
        fields["accounts_logged_ddl"] = int(
            bool(fields["statement"]) and fields["log_line"] is not None
        )
    return Finding(**fields)


def make_document(findings: tuple[Finding, ...], **changes: Any) -> FindingsDocument:
    """A document whose summary adds up (as the reconciler must make it)."""
    matched, matched_rows = 25, 31
    ddl_in_findings = sum(f.accounts_logged_ddl for f in findings)
    rows = len({(f.database, i) for f in findings for i in f.audit_event_ids})
    fields: dict[str, Any] = {
        "auditor_version": "0.1.0",
        "generated_at": datetime(2024, 5, 2, 7, 0, 3, tzinfo=TZ),
        "since": T0,
        "until": T0 + timedelta(days=1),
        "logs": (
            LogSourceSummary("/var/log/postgresql/postgresql-2024-05-01.csv", "csvlog", 12345, 40),
            LogSourceSummary(
                "/var/log/postgresql/<b>odd</b>.log",
                "stderr",
                99,
                3,
                ("odd.log:77: line matches no log_line_prefix: '</script><script>alert(3)'",),
            ),
        ),
        "databases": (
            DatabaseSummary("prod", True, 40),
            DatabaseSummary(NON_ASCII_DB, False, 0),
        ),
        "summary": Summary(
            logged_ddl=matched + ddl_in_findings,
            audit_rows=matched_rows + rows,
            matched=matched,
            by_class=dict(Counter(f.cls.value for f in findings)),
            by_severity=dict(Counter(f.severity.value for f in findings)),
            matched_audit_rows=matched_rows,
        ),
        "findings": findings,
        "notes": ("Pairing for odd.log used pid and time: its prefix lacks %c <and %v>.",),
    }
    fields.update(changes)
    return FindingsDocument(**fields)


def sample_findings() -> tuple[Finding, ...]:
    severities = list(reversed(Severity))
    out = [
        _finding(i, cls, severities[i % len(severities)], allowed=(i % 4 == 3))
        for i, cls in enumerate(FindingClass)
    ]
    n = len(out)
    out += [
        _finding(
            n,
            FindingClass.UNREPORTED_DDL,
            Severity.CRITICAL,
            statement=HOSTILE,
            user=HOSTILE_USER,
            application=HOSTILE_APP,
            explanation=f"The trigger never saw {HOSTILE}",
            evidence={
                "log": {"file": "pg.csv", "line": 7, "message": "statement: " + HOSTILE},
                "audit": [],
            },
            audit_event_ids=(),
        ),
        _finding(
            n + 1,
            FindingClass.UNAUDITABLE_DDL,
            Severity.HIGH,
            statement=PASSWORD_STMT,
            command_tags=("ALTER ROLE",),
            application=FORMULA_APP,
            audit_event_ids=(),
            evidence={"log": {"message": "statement: " + PASSWORD_STMT}, "audit": []},
        ),
        _finding(
            n + 2,
            FindingClass.INDIRECT_DDL,
            Severity.MEDIUM,
            statement=LONG_STMT,
            log_file=None,
            log_line=None,
            evidence={"log": None, "audit": [{"id": 100 + n + 2, "query": LONG_STMT}]},
        ),
        _finding(
            n + 3,
            FindingClass.UNMONITORED_DATABASE,
            Severity.HIGH,
            database=NON_ASCII_DB,
            statement=NON_ASCII_STMT,
            audit_event_ids=(),
            evidence={},
        ),
        _finding(
            n + 4,
            FindingClass.LOG_GAP,
            Severity.HIGH,
            time=None,
            statement=None,
            log_line=None,
            database=None,
            user=None,
            application=None,
            client=None,
            session_id=None,
            vxid=None,
            command_tags=(),
            audit_event_ids=(),
            explanation="No log file covers 2024-05-01 13:00 to 14:00 (rotation file missing).",
            evidence={},
        ),
        _finding(
            n + 5,
            FindingClass.FAILED_DDL,
            Severity.INFO,
            statement=COMMENT_STMT,
            command_tags=("DROP TABLE",),
            audit_event_ids=(),
            allowed=True,
        ),
        _finding(n + 6, FindingClass.UNLOGGED_DDL, Severity.CRITICAL, statement=BIDI_STMT),
        _finding(
            n + 7,
            FindingClass.ATTRIBUTION_MISMATCH,
            Severity.CRITICAL,
            user="bob",
            audit_event_ids=(300, 301),
            command_tags=("CREATE TABLE", "CREATE INDEX"),
        ),
    ]
    return tuple(out)


@pytest.fixture(scope="module")
def doc() -> FindingsDocument:
    return make_document(sample_findings())


# --------------------------------------------------------------------------- a tiny DOM


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: Node | None) -> None:
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node | str] = []

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def text(self) -> str:
        return "".join(c if isinstance(c, str) else c.text() for c in self.children)

    def iter(self) -> Iterator[Node]:
        yield self
        for child in self.children:
            if isinstance(child, Node):
                yield from child.iter()

    def find_all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list[Node]:
        return [
            n
            for n in self.iter()
            if (tag is None or n.tag == tag)
            and (cls is None or cls in n.classes)
            and all(n.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())
        ]

    def find(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> Node:
        found = self.find_all(tag, cls, **attrs)
        assert found, (tag, cls, attrs)
        return found[0]

    def by_id(self, id_: str) -> Node:
        return self.find(id=id_)


class TreeBuilder(HTMLParser):
    VOID: ClassVar[set[str]] = {
        "meta",
        "link",
        "input",
        "br",
        "img",
        "hr",
        "source",
        "area",
        "base",
        "col",
        "wbr",
    }

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.cur = self.root
        self.doctype = ""

    def handle_decl(self, decl: str) -> None:
        self.doctype = decl

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        node = Node(tag, {k: v or "" for k, v in attrs}, self.cur)
        self.cur.children.append(node)
        if tag not in self.VOID:
            self.cur = node

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.cur.children.append(Node(tag, {k: v or "" for k, v in attrs}, self.cur))

    def handle_endtag(self, tag: str) -> None:
        node: Node | None = self.cur
        while node is not None and node.tag != tag:
            node = node.parent
        assert node is not None and node.parent is not None, f"stray </{tag}>"
        self.cur = node.parent

    def handle_data(self, data: str) -> None:
        self.cur.children.append(data)


def parse(html: str) -> Node:
    builder = TreeBuilder()
    builder.feed(html)
    builder.close()
    assert builder.cur is builder.root, f"unclosed <{builder.cur.tag}>"
    assert builder.doctype.lower() == "doctype html"
    return builder.root


def masked(text: str | None) -> str | None:
    from auditor.redact import mask

    return None if text is None else mask(text)


# --------------------------------------------------------------------------- HTML


def test_html_has_every_finding_as_a_row_with_its_attributes(doc: FindingsDocument) -> None:
    dom = parse(render_html(doc))
    rows = dom.find_all("details", "finding")
    assert len(rows) == len(doc.findings)
    by_id = {r.attrs["data-id"]: r for r in rows}
    assert set(by_id) == {f.id for f in doc.findings}
    for f in doc.findings:
        row = by_id[f.id]
        assert row.attrs["data-class"] == f.cls.value
        assert row.attrs["data-severity"] == f.severity.value
        assert row.attrs["data-allowed"] == ("yes" if f.allowed else "no")
        assert row.attrs["data-database"] == ("~" if f.database is None else "=" + f.database)
        assert row.attrs["data-user"] == ("~" if f.user is None else "=" + f.user)
        assert ("allowed" in row.classes) is f.allowed
        summary = row.find("summary")
        assert summary.find("span", "c-class").text().startswith(f.cls.value)
        assert (summary.find("span", "tag-allowed") if f.allowed else None) is not None or (
            not f.allowed and not summary.find_all("span", "tag-allowed")
        )
        pre = row.find_all("pre", "statement")
        if f.statement is None:
            assert not pre
        elif "\u202e" not in f.statement:
            # The whole statement, as text (the parser undid the escaping), masked.
            assert pre[0].text() == masked(f.statement)
        assert masked(f.explanation) in row.find("p", "explanation").text()
    # Every class and every severity is present, so each filter has its option.
    options = {o.attrs["value"] for o in dom.by_id("f-class").find_all("option")}
    assert options == {""} | {c.value for c in FindingClass}
    options = {o.attrs["value"] for o in dom.by_id("f-severity").find_all("option")}
    assert options == {""} | {s.value for s in Severity}
    users = {o.attrs["value"] for o in dom.by_id("f-user").find_all("option")}
    assert users == {"", "~", "=alice", "=bob", "=" + HOSTILE_USER}


def test_html_lists_at_most_per_class_findings_of_a_class_and_says_so() -> None:
    # 7 UNLOGGED_DDL findings (2 critical, 5 medium), 2 FAILED_DDL; at most 3 per class.
    unlogged = tuple(
        _finding(
            n, FindingClass.UNLOGGED_DDL, Severity.CRITICAL if n in (5, 6) else Severity.MEDIUM
        )
        for n in range(1, 8)
    )
    failed = tuple(_finding(n, FindingClass.FAILED_DDL, Severity.LOW) for n in (8, 9))
    big = make_document(unlogged + failed)
    dom = parse(render_html(big, per_class=3))
    rows = dom.find_all("details", "finding")
    # The most severe first, then the oldest: the two critical ones, then F0001.
    listed = [r.attrs["data-id"] for r in rows]
    assert listed == ["F0005", "F0006", "F0001", "F0008", "F0009"]
    assert dom.by_id("shown-count").text() == "5"
    note = dom.by_id("capped").text()
    assert "Showing 5 of 9 findings" in note and "at most 3 findings of each class" in note
    assert "UNLOGGED_DDL 3 of 7." in note and "FAILED_DDL" not in note
    assert "findings.json and findings.csv" in note
    # Counts stay the whole document's: class table, severity cards, accounting.
    cell = dom.by_id("count-class-UNLOGGED_DDL").find("td", "num")
    assert cell.attrs["data-count"] == "7" and "(3 shown below)" in cell.text()
    assert "shown below" not in dom.by_id("count-class-FAILED_DDL").text()
    assert dom.by_id("count-severity-medium").attrs["data-count"] == "5"
    acc = dom.by_id("accounting")
    assert "ok" in acc.classes and not acc.find_all("p", "problem")
    # Without a limit (or under it) every finding is listed and there is no note.
    dom = parse(render_html(big, per_class=None))
    assert len(dom.find_all("details", "finding")) == 9 and not dom.find_all(id="capped")
    assert parse(render_html(big)).find_all(id="capped") == []


def test_written_html_lists_1000_findings_of_a_class_json_and_csv_all(tmp_path: Path) -> None:
    many = tuple(
        _finding(n, FindingClass.UNREPORTED_DDL, Severity.HIGH, audit_event_ids=())
        for n in range(1, 1003)
    )
    paths = write_reports(make_document(many), tmp_path)
    dom = parse(paths["html"].read_text(encoding="utf-8"))
    assert len(dom.find_all("details", "finding")) == 1000
    assert "Showing 1000 of 1002 findings" in dom.by_id("capped").text()
    assert len(json.loads(paths["json"].read_text(encoding="utf-8"))["findings"]) == 1002
    assert len(paths["csv"].read_text(encoding="utf-8").splitlines()) == 1003
    # auditor report renders the same capped HTML from the saved JSON.
    out = tmp_path / "again.html"
    result = CliRunner().invoke(app, ["report", str(paths["json"]), "--html", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes() == paths["html"].read_bytes()


def test_default_order_puts_the_most_severe_first(doc: FindingsDocument) -> None:
    dom = parse(render_html(doc))
    ranks = [int(r.attrs["data-rank"]) for r in dom.find_all("details", "finding")]
    assert ranks == sorted(ranks, reverse=True)
    assert ranks[0] == Severity.CRITICAL.rank


def test_summary_counts_and_accounting_are_the_documents(doc: FindingsDocument) -> None:
    dom = parse(render_html(doc))
    by_sev = Counter(f.severity.value for f in doc.findings)
    for sev in Severity:
        card = dom.by_id(f"count-severity-{sev.value}")
        assert int(card.attrs["data-count"]) == by_sev[sev.value]
        assert card.find("span", "n").text() == str(by_sev[sev.value])
    by_class = Counter(f.cls.value for f in doc.findings)
    for cls in FindingClass:
        cell = dom.by_id(f"count-class-{cls.value}").find("td", "num")
        assert int(cell.attrs["data-count"]) == by_class[cls.value]
    acc = dom.by_id("accounting")
    values = {n.attrs["data-k"]: n.text() for n in acc.find_all("span") if "data-k" in n.attrs}
    s = doc.summary
    ddl_in_findings = sum(1 for f in doc.findings if f.statement and f.log_line is not None)
    rows_in_findings = len({i for f in doc.findings for i in f.audit_event_ids})
    assert values == {
        "logged_ddl": str(s.logged_ddl),
        "matched": str(s.matched),
        "ddl_in_findings": str(ddl_in_findings),
        "audit_rows": str(s.audit_rows),
        "matched_rows": str(s.matched_audit_rows),
        "rows_in_findings": str(rows_in_findings),
    }
    assert "ok" in acc.classes and not acc.find_all("p", "problem")
    # Critical first in the class table (the worst class on top).
    first = dom.find("table", "classes").find("tbody").find("tr")
    assert first.find("span", "badge").text() == "critical"
    # Headline: active (not allow-listed) findings by severity.
    active = Counter(f.severity.value for f in doc.findings if not f.allowed)
    pills = [p.text() for p in dom.by_id("status").find_all("span", "pill")]
    assert pills == [f"{active[s.value]} {s.value}" for s in reversed(Severity) if active[s.value]]
    assert "banner-critical" in dom.by_id("status").classes


def test_counts_that_do_not_add_up_show_a_warning(doc: FindingsDocument) -> None:
    s = doc.summary
    bad = replace(doc, summary=replace(s, matched=s.matched - 2, audit_rows=s.audit_rows + 1))
    dom = parse(render_html(bad))
    acc = dom.by_id("accounting")
    assert "bad" in acc.classes
    problem = acc.find("p", "problem").text()
    assert "do not add up" in problem
    assert (
        f"logged DDL ({s.logged_ddl})" in problem and f"audit rows ({s.audit_rows + 1})" in problem
    )
    wrong_class = replace(doc, summary=replace(s, by_class={"UNREPORTED_DDL": 1}))
    assert "counts by class differ" in parse(render_html(wrong_class)).by_id("accounting").text()


def test_hostile_text_is_shown_as_text_and_runs_nothing(doc: FindingsDocument) -> None:
    html = render_html(doc)
    dom = parse(html)
    # Exactly one script, ours, pinned by its hash in the CSP; no other way to run code.
    scripts = dom.find_all("script")
    assert len(scripts) == 1 and scripts[0].attrs == {}
    assert SENTINEL not in scripts[0].text()
    csp = dom.find("meta", http_equiv="Content-Security-Policy").attrs["content"]
    assert "default-src 'none'" in csp
    digest = base64.b64encode(hashlib.sha256(scripts[0].text().encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp
    style = dom.find("style").text()
    digest = base64.b64encode(hashlib.sha256(style.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in csp
    for node in dom.iter():
        assert node.tag not in {"img", "iframe", "object", "embed", "base", "form"}, node.tag
        assert not any(k.startswith("on") for k in node.attrs), (node.tag, node.attrs)
        assert "src" not in node.attrs and "style" not in node.attrs, (node.tag, node.attrs)
        href = node.attrs.get("href")
        assert href is None or href.startswith("#") or href == "data:,", href
    # The text survives, as text, in the row, the log view and the notes/warnings.
    row = next(
        r for r in dom.find_all("details", "finding") if r.attrs["data-user"] == "=" + HOSTILE_USER
    )
    assert row.find("pre", "statement").text() == HOSTILE
    assert row.find("span", "c-user").text() == HOSTILE_USER
    assert row.find("span", "c-app").text() == HOSTILE_APP
    assert HOSTILE in row.find("dl", "kv").text()
    assert "</script><script>alert(3)" in dom.by_id("sources").text()
    assert "<and %v>" in dom.by_id("notes").text()
    # And in the raw HTML it is escaped: no tag from the data exists.
    assert "&lt;/script&gt;&lt;script&gt;window." in html
    assert f"<script>window.{SENTINEL}" not in html
    assert "<img" not in html and "<b>mallory" not in html
    assert html.count("</script>") == 1


def test_invisible_characters_are_made_visible(doc: FindingsDocument) -> None:
    html = render_html(doc)
    assert "\u202e" not in html
    row = parse(html).find(
        "details", data_id=next(f.id for f in doc.findings if f.statement == BIDI_STMT)
    )
    marker = row.find("pre", "statement").find("span", "ctl")
    assert marker.text() == "U+202E"


def test_undecodable_log_bytes_survive_every_output(tmp_path: Path) -> None:
    """A reader that decodes with surrogateescape leaves lone surrogates in the text."""
    raw = b"CREATE TABLE caf\xe9 ()"
    statement = raw.decode("utf-8", "surrogateescape")
    finding = _finding(
        1, FindingClass.UNREPORTED_DDL, Severity.CRITICAL, statement=statement, user=statement
    )
    original = make_document((finding,))
    paths = write_reports(original, tmp_path)
    loaded = load_findings_json(paths["json"])
    assert loaded.findings[0].statement == statement
    assert loaded == original
    assert "CREATE TABLE caf\\udce9 ()" in paths["csv"].read_text(encoding="utf-8")
    html = paths["html"].read_text(encoding="utf-8")
    pre = parse(html).find("pre", "statement")
    assert pre.text() == "CREATE TABLE cafU+DCE9 ()"
    assert pre.find("span", "ctl").text() == "U+DCE9"


def test_secrets_are_masked_in_all_three_outputs(doc: FindingsDocument, tmp_path: Path) -> None:
    paths = write_reports(doc, tmp_path)
    for kind, path in paths.items():
        text = path.read_text(encoding="utf-8")
        assert SECRET not in text, kind
        shown = "PASSWORD &#39;*****&#39;" if kind == "html" else "PASSWORD '*****'"
        assert shown in text, kind


def test_long_and_non_ascii_statements_are_whole(doc: FindingsDocument) -> None:
    dom = parse(render_html(doc))
    texts = [p.text() for p in dom.find_all("pre", "statement")]
    assert LONG_STMT in texts and NON_ASCII_STMT in texts
    long_row = dom.find(
        "details", data_id=next(f.id for f in doc.findings if f.statement == LONG_STMT)
    )
    excerpt = long_row.find("span", "c-stmt").text()
    assert len(excerpt) <= 160 and excerpt.endswith("…")
    # The audit row's query is the statement again: said, not repeated.
    assert "(same as the statement above)" in long_row.find("table", "audit-rows").text()
    assert NON_ASCII_DB in dom.by_id("sources").text()


def test_timeline_draws_every_timed_finding_by_severity(doc: FindingsDocument) -> None:
    dom = parse(render_html(doc))
    svg = dom.by_id("timeline").find("svg")
    drawn: Counter[str] = Counter()
    for rect in svg.find_all("rect", "bar"):
        title = rect.find("title").text()
        count, sev = re.search(r": (\d+) (\w+)$", title).groups()  # type: ignore[union-attr]
        assert f"sev-{sev}" in rect.classes
        drawn[sev] += int(count)
    timed = Counter(f.severity.value for f in doc.findings if f.time is not None)
    assert drawn == timed
    assert len(svg.find_all("line", "window")) == 2
    assert "1 finding without a time is not drawn" in dom.by_id("timeline").text()


def test_sources_and_header(doc: FindingsDocument) -> None:
    dom = parse(render_html(doc))
    logs = dom.by_id("sources").find_all("tr", "log-source")
    assert [r.find("code").text() for r in logs] == [log.path for log in doc.logs]
    assert "1 warning" in logs[1].text()
    dbs = dom.by_id("sources").find_all("tr", "db-source")
    assert [("not installed" in r.text()) for r in dbs] == [not d.installed for d in doc.databases]
    assert dom.by_id("window").text() == "2024-05-01 00:00:00 → 2024-05-02 00:00:00"
    assert dom.by_id("generated").text() == "2024-05-02 07:00:03"
    assert dom.by_id("version").text() == "0.1.0"


def test_empty_report_renders(tmp_path: Path) -> None:
    empty = make_document(())
    dom = parse(render_html(empty))
    assert not dom.find_all("details", "finding")
    assert "No findings." in dom.by_id("status").text()
    assert "banner-ok" in dom.by_id("status").classes
    assert dom.by_id("findings").find("p", "empty").text() == "No findings in this window."
    assert "No findings in the window" in dom.by_id("timeline").text()
    assert not dom.find_all("p", "problem")
    # No window either: nothing to draw, still a valid page.
    bare = make_document((), since=None, until=None, logs=(), databases=(), notes=())
    dom = parse(render_html(bare))
    assert "nothing to draw" in dom.by_id("timeline").text()
    assert "No log was read." in dom.by_id("sources").text()
    paths = write_reports(bare, tmp_path)
    assert list(csv.reader(io.StringIO(paths["csv"].read_text()))) == [list(CSV_FIELDS)]


def test_chart_without_a_window_spans_the_findings() -> None:
    findings = sample_findings()
    dom = parse(render_html(make_document(findings, since=None, until=None)))
    svg = dom.by_id("timeline").find("svg")
    assert not svg.find_all("line", "window")
    total = sum(
        int(r.find("title").text().rsplit(": ", 1)[1].split()[0])
        for r in svg.find_all("rect", "bar")
    )
    assert total == sum(1 for f in findings if f.time is not None)
    assert "start of logs" in dom.by_id("window").text()


def test_rendering_is_deterministic(doc: FindingsDocument, tmp_path: Path) -> None:
    a = write_reports(doc, tmp_path / "a")
    b = write_reports(doc, tmp_path / "b")
    for kind in a:
        assert a[kind].read_bytes() == b[kind].read_bytes(), kind
    assert render_html(doc) == render_html(doc)


# --------------------------------------------------------------------------- JSON


def test_json_has_the_spec_keys_in_order(doc: FindingsDocument, tmp_path: Path) -> None:
    path = write_findings_json(doc, tmp_path / "findings.json")
    data = json.loads(path.read_text(encoding="utf-8"))
    assert list(data) == [
        "auditor_version", "generated_at", "window", "sources", "summary", "findings", "notes",
    ]  # fmt: skip
    assert list(data["window"]) == ["since", "until"]
    assert list(data["sources"]["logs"][0]) == [
        "path",
        "format",
        "records",
        "ddl_statements",
        "warnings",
    ]
    assert list(data["sources"]["databases"][0]) == ["name", "installed", "audit_rows"]
    assert list(data["summary"])[:5] == [
        "logged_ddl",
        "audit_rows",
        "matched",
        "by_class",
        "by_severity",
    ]
    for item in data["findings"]:
        assert list(item) == [*FINDING_FIELDS, "allowed", "accounts_logged_ddl", "evidence"]
        assert list(item["evidence"])[:2] == ["log", "audit"]
    first = data["findings"][0]
    assert first["time"] == "2024-05-01T00:00:00+02:00"
    assert data["generated_at"] == "2024-05-02T07:00:03+02:00"
    assert list(data["summary"]["by_severity"]) == [
        s.value for s in reversed(Severity) if s.value in data["summary"]["by_severity"]
    ]


def test_json_round_trips_exactly(tmp_path: Path) -> None:
    # Without secrets, nothing is masked: the loaded document equals the original.
    findings = tuple(f for f in sample_findings() if f.statement != PASSWORD_STMT)
    original = make_document(findings)
    path = write_findings_json(original, tmp_path / "findings.json")
    loaded = load_findings_json(path)
    assert loaded == original
    for a, b in zip(loaded.findings, original.findings, strict=True):
        assert a.time == b.time and (a.time is None or a.time.utcoffset() == b.time.utcoffset())
        assert (
            a.evidence
            == document_to_json(replace(original, findings=(b,)))["findings"][0]["evidence"]
        )
    assert write_findings_json(loaded, tmp_path / "again.json").read_bytes() == path.read_bytes()


def test_json_round_trip_of_masked_document_is_stable(
    doc: FindingsDocument, tmp_path: Path
) -> None:
    path = write_findings_json(doc, tmp_path / "findings.json")
    loaded = load_findings_json(path)
    assert document_to_json(loaded) == json.loads(path.read_text(encoding="utf-8"))
    assert render_html(loaded) == render_html(doc)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        (None, r"^{path}: cannot read findings file \(No such file or directory\)$"),
        (
            '{\n  "auditor_version": "1",\n  "generated_at": ,\n}',
            r"^{path}:3: not valid JSON \(.*column 19\)$",
        ),
        (b'{"a": "\xff"}', r"^{path}:1: findings file is not UTF-8 text$"),
        ("[1, 2]", r"^{path}: not a findings.json document: top level: expected an object"),
        ("DROP", r"^{path}:1: not valid JSON"),
    ],
)
def test_bad_findings_file_is_one_line_naming_it(
    tmp_path: Path, content: str | bytes | None, expected: str
) -> None:
    path = tmp_path / "findings.json"
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8")
    elif isinstance(content, bytes):
        path.write_bytes(content)
    with pytest.raises(ReportError) as err:
        load_findings_json(path)
    message = str(err.value)
    assert "\n" not in message
    assert re.search(expected.format(path=re.escape(str(path))), message), message


@pytest.mark.parametrize(
    ("mutate", "where"),
    [
        (lambda d: d["findings"][1].pop("severity"), "findings[1]: missing key 'severity'"),
        (
            lambda d: d["findings"][0].__setitem__("severity", "urgent"),
            "findings[0].severity: unknown severity 'urgent'",
        ),
        (
            lambda d: d["findings"][0].__setitem__("class", "NOPE"),
            "findings[0].class: unknown finding class",
        ),
        (
            lambda d: d["findings"][2].__setitem__("log_line", "12"),
            "findings[2].log_line: expected an integer",
        ),
        (
            lambda d: d["findings"][0].__setitem__("time", "yesterday"),
            "findings[0].time: not an ISO-8601 time",
        ),
        (lambda d: d["summary"].pop("matched"), "summary: missing key 'matched'"),
        (
            lambda d: d["sources"]["logs"][0].__setitem__("records", None),
            "sources.logs[0].records: expected an integer",
        ),
        (lambda d: d.pop("window"), "top level: missing key 'window'"),
    ],
)
def test_findings_file_with_wrong_content_names_the_key(
    doc: FindingsDocument, tmp_path: Path, mutate: Any, where: str
) -> None:
    data = document_to_json(doc)
    mutate(data)
    path = tmp_path / "findings.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ReportError) as err:
        load_findings_json(path)
    assert str(err.value).startswith(f"{path}: not a findings.json document: {where}"), str(
        err.value
    )


# --------------------------------------------------------------------------- CSV


@pytest.fixture(autouse=True)
def _long_csv_fields() -> Iterator[None]:
    """Our statements are longer than the csv module's default field limit (128 KiB)."""
    old = csv.field_size_limit(10**8)
    yield
    csv.field_size_limit(old)


def test_csv_rows_fields_and_quoting(doc: FindingsDocument, tmp_path: Path) -> None:
    path = write_findings_csv(doc, tmp_path / "findings.csv")
    raw = path.read_bytes()
    assert not raw.startswith(b"\xef\xbb\xbf")  # UTF-8 without BOM
    text = raw.decode("utf-8")
    rows = list(csv.reader(io.StringIO(text, newline="")))
    assert rows[0] == list(CSV_FIELDS)
    assert len(rows) == len(doc.findings) + 1
    # Records end with CRLF; a statement's own newline stays inside its quoted field.
    assert text.count("\r\n") == len(doc.findings) + 1
    by_id = {r[0]: dict(zip(CSV_FIELDS, r, strict=True)) for r in rows[1:]}
    for f in doc.findings:
        row = by_id[f.id]
        assert row["class"] == f.cls.value and row["severity"] == f.severity.value
        assert row["time"] == ("" if f.time is None else f.time.isoformat())
        assert row["command_tags"] == ";".join(f.command_tags)
        assert row["audit_event_ids"] == ";".join(map(str, f.audit_event_ids))
        assert row["log_line"] == ("" if f.log_line is None else str(f.log_line))
        assert row["allowed"] == ("true" if f.allowed else "false")
        statement = masked(f.statement) or ""
        expected = "'" + statement if statement[:1] in ("=", "+", "-", "@") else statement
        assert row["statement"] == expected
    multi = next(f for f in doc.findings if len(f.audit_event_ids) > 1)
    assert by_id[multi.id]["audit_event_ids"] == "300;301"
    assert by_id[multi.id]["command_tags"] == "CREATE TABLE;CREATE INDEX"
    assert LONG_STMT in {r["statement"] for r in by_id.values()}
    assert NON_ASCII_STMT in {r["statement"] for r in by_id.values()}
    assert HOSTILE in {r["statement"] for r in by_id.values()}


def test_csv_cells_never_start_a_formula(doc: FindingsDocument, tmp_path: Path) -> None:
    path = write_findings_csv(doc, tmp_path / "findings.csv")
    rows = list(csv.reader(io.StringIO(path.read_text(encoding="utf-8"), newline="")))
    for row in rows:
        for cell in row:
            assert cell[:1] not in ("=", "+", "-", "@", "\t", "\r"), cell[:40]
    cells = {cell for row in rows for cell in row}
    assert "'" + FORMULA_APP in cells
    assert "'" + COMMENT_STMT in cells


def test_summary_text(doc: FindingsDocument) -> None:
    text = summary_text(doc)
    assert text.startswith(f"{len(doc.findings)} findings (")
    assert "critical" in text and "allow-listed" in text


# --------------------------------------------------------------------------- auditor report


def _write_reconcile_output(doc: FindingsDocument, out: Path) -> dict[str, Path]:
    """What reconcile leaves in --out (it calls write_reports)."""
    return write_reports(doc, out)


def test_auditor_report_reproduces_html_and_csv(doc: FindingsDocument, tmp_path: Path) -> None:
    written = _write_reconcile_output(doc, tmp_path / "run")
    runner = CliRunner()
    other = tmp_path / "elsewhere"
    result = runner.invoke(
        app,
        [
            "report",
            str(written["json"]),
            "--html",
            str(other / "r.html"),
            "--csv",
            str(other / "f.csv"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert (other / "r.html").read_bytes() == written["html"].read_bytes()
    assert (other / "f.csv").read_bytes() == written["csv"].read_bytes()
    assert str(other / "r.html") in result.output
    # Defaults: next to the JSON file.
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copyfile(written["json"], copy / "findings.json")
    result = runner.invoke(app, ["report", str(copy / "findings.json")])
    assert result.exit_code == 0, result.output
    assert (copy / "report.html").read_bytes() == written["html"].read_bytes()
    assert (copy / "findings.csv").read_bytes() == written["csv"].read_bytes()


def test_auditor_report_on_a_bad_file_exits_2_with_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "findings.json"
    bad.write_text('{"auditor_version": "1",\n "findings": [}\n', encoding="utf-8")
    for target in (bad, tmp_path / "missing.json"):
        out = subprocess.run(
            [sys.executable, "-m", "auditor", "report", str(target)], capture_output=True, text=True
        )
        assert out.returncode == 2
        assert out.stderr.count("\n") == 1 and "Traceback" not in out.stderr, out.stderr
        assert out.stderr.startswith(f"auditor: error: {target}")
    assert not (tmp_path / "report.html").exists()


def test_unwritable_output_is_a_report_error(doc: FindingsDocument, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(
        ReportError, match=re.escape(str(blocker / "findings.json")) + ": cannot write"
    ):
        write_reports(doc, blocker)


# --------------------------------------------------------------------------- browser


class Browser:
    """Headless Debian Chromium driven over the DevTools protocol (no chromedriver)."""

    def __init__(self, binary: str, workdir: Path) -> None:
        import websocket  # websocket-client, a test extra

        profile = Path(tempfile.mkdtemp(prefix="chromium-", dir=workdir))
        self.stderr = open(workdir / "chromium.stderr", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                "--no-first-run", "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--disable-default-apps", "--disable-extensions",
                "--hide-scrollbars", f"--user-data-dir={profile}", "--remote-debugging-port=0",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL, stderr=self.stderr, start_new_session=True,
        )  # fmt: skip
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 60
        while not (port_file.exists() and port_file.read_text().strip()):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.close()
                raise AssertionError(
                    f"chromium did not start: {(workdir / 'chromium.stderr').read_text()[-2000:]}"
                )
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=10) as resp:
            targets = json.load(resp)
        page = next(t for t in targets if t["type"] == "page")
        self.ws = websocket.create_connection(
            page["webSocketDebuggerUrl"], timeout=30, suppress_origin=True, max_size=None
        )
        self.next_id = 0
        self.events: list[dict[str, Any]] = []
        self.dialogs: list[str] = []

    def _handle(self, msg: dict[str, Any]) -> None:
        self.events.append(msg)
        if msg["method"] == "Page.javascriptDialogOpening":
            self.dialogs.append(msg["params"].get("message", ""))
            self.next_id += 1
            self.ws.send(
                json.dumps(
                    {
                        "id": self.next_id,
                        "method": "Page.handleJavaScriptDialog",
                        "params": {"accept": True},
                    }
                )
            )

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self.next_id += 1
        mid = self.next_id
        self.ws.send(json.dumps({"id": mid, "method": method, "params": params}))
        while True:
            msg = json.loads(self.ws.recv())
            if msg.get("id") == mid:
                if "error" in msg:
                    raise AssertionError(f"{method}: {msg['error']}")
                return msg.get("result", {})  # type: ignore[no-any-return]
            if "method" in msg:
                self._handle(msg)

    def wait_for(self, method: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        for msg in self.events:
            if msg["method"] == method:
                return msg
        while time.monotonic() < deadline:
            msg = json.loads(self.ws.recv())
            if "method" in msg:
                self._handle(msg)
                if msg["method"] == method:
                    return msg
        raise AssertionError(f"no {method} within {timeout}s")

    def js(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def settle(self) -> None:
        """Let pending events (errors, requests) arrive before checking them."""
        self.call(
            "Runtime.evaluate", expression="new Promise(r => setTimeout(r, 300))", awaitPromise=True
        )

    def open(self, url: str) -> None:
        for domain in ("Page", "Runtime", "Log", "Network"):
            self.call(f"{domain}.enable")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=1400,
            height=1000,
            deviceScaleFactor=1,
            mobile=False,
        )
        self.call("Page.navigate", url=url)
        self.wait_for("Page.loadEventFired")
        self.settle()

    def requests(self) -> list[str]:
        return [
            e["params"]["request"]["url"]
            for e in self.events
            if e["method"] == "Network.requestWillBeSent"
        ]

    def errors(self) -> list[str]:
        out = []
        for e in self.events:
            p = e["params"]
            if e["method"] == "Runtime.exceptionThrown":
                out.append("exception: " + json.dumps(p["exceptionDetails"])[:500])
            elif e["method"] == "Runtime.consoleAPICalled" and p["type"] in ("error", "assert"):
                out.append("console: " + json.dumps(p["args"])[:500])
            elif e["method"] == "Log.entryAdded" and p["entry"]["level"] == "error":
                out.append(f"log ({p['entry'].get('source')}): {p['entry']['text']}"[:500])
        return out

    def click(self, selector: str) -> None:
        """A real mouse click at the element's centre (not element.click())."""
        box = self.js(
            f"(() => {{ const e = document.querySelector({json.dumps(selector)}); e.scrollIntoView({{block: 'center'}});"
            " const r = e.getBoundingClientRect(); return [r.x + r.width / 2, r.y + r.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            self.call(
                "Input.dispatchMouseEvent",
                type=kind,
                x=box[0],
                y=box[1],
                button="left",
                clickCount=1,
            )

    def screenshot(self, path: Path) -> None:
        height = self.js("document.documentElement.scrollHeight")
        self.call(
            "Emulation.setDeviceMetricsOverride",
            width=1400,
            height=min(int(height), 8000),
            deviceScaleFactor=1,
            mobile=False,
        )
        self.js("window.scrollTo(0, 0)")
        data = self.call("Page.captureScreenshot", format="png")["data"]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(base64.b64decode(data))

    def close(self) -> None:
        if getattr(self, "ws", None) is not None:
            self.ws.close()
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.stderr.close()


def _chromium() -> str:
    if os.environ.get("AUDITOR_SKIP_BROWSER") == "1":
        pytest.skip("AUDITOR_SKIP_BROWSER=1")
    for name in (os.environ.get("AUDITOR_CHROMIUM"), "chromium", "chromium-browser"):
        if name and shutil.which(name):
            return shutil.which(name)  # type: ignore[return-value]
    pytest.fail(
        "chromium not found: scripts/bootstrap installs Debian's chromium "
        "(set AUDITOR_SKIP_BROWSER=1 to skip the browser tests explicitly)"
    )


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Browser]:
    b = Browser(_chromium(), tmp_path)
    try:
        yield b
    finally:
        b.close()


VISIBLE_ROWS = "[...document.querySelectorAll('details.finding')].filter(e => e.checkVisibility())"


def _select(b: Browser, select_id: str, value: str) -> None:
    b.js(
        f"(() => {{ const s = document.getElementById({json.dumps(select_id)}); s.value = {json.dumps(value)};"
        " s.dispatchEvent(new Event('change', {bubbles: true})); })()"
    )


def test_report_in_a_real_browser(doc: FindingsDocument, browser: Browser, tmp_path: Path) -> None:
    page = write_reports(doc, tmp_path / "out")["html"]
    url = page.as_uri()
    browser.open(url)
    b = browser

    assert b.js("document.getElementById('controls').hidden") is False  # our script ran
    total = len(doc.findings)
    assert b.js(f"{VISIBLE_ROWS}.length") == total

    # Filter by class: only that class shows; reset brings everything back.
    for cls in (FindingClass.UNREPORTED_DDL, FindingClass.LOG_GAP):
        _select(b, "f-class", cls.value)
        expected = sum(1 for f in doc.findings if f.cls is cls)
        assert b.js(f"{VISIBLE_ROWS}.length") == expected
        assert set(b.js(f"{VISIBLE_ROWS}.map(e => e.dataset.class)")) == {cls.value}
        assert (
            b.js("document.getElementById('shown-count').textContent")
            == f"{expected} of {total} shown"
        )
    b.click("#reset")
    assert b.js(f"{VISIBLE_ROWS}.length") == total

    # Severity, user (a hostile name) and database (none) filters.
    _select(b, "f-severity", "critical")
    assert b.js(f"{VISIBLE_ROWS}.length") == sum(
        1 for f in doc.findings if f.severity is Severity.CRITICAL
    )
    _select(b, "f-user", "=" + HOSTILE_USER)
    assert b.js(f"{VISIBLE_ROWS}.map(e => e.dataset.user)") == ["=" + HOSTILE_USER]
    b.click("#reset")
    _select(b, "f-database", "~")
    assert b.js(f"{VISIBLE_ROWS}.length") == sum(1 for f in doc.findings if f.database is None)
    _select(b, "f-allowed", "no")
    assert b.js(f"{VISIBLE_ROWS}.length") == sum(
        1 for f in doc.findings if f.database is None and not f.allowed
    )
    b.click("#reset")
    # A click on a class in the summary filters the table to it.
    b.click("#count-class-FAILED_DDL a")
    assert b.js("document.getElementById('f-class').value") == "FAILED_DDL"
    assert b.js(f"{VISIBLE_ROWS}.length") == sum(
        1 for f in doc.findings if f.cls is FindingClass.FAILED_DDL
    )
    b.click("#reset")

    # Sort by time, both ways; findings without a time go last.
    for mode, sign in (("time-asc", 1), ("time-desc", -1)):
        _select(b, "f-sort", mode)
        ts = b.js(f"{VISIBLE_ROWS}.map(e => e.dataset.t)")
        timed = [int(t) for t in ts if t]
        assert timed == sorted(timed, key=lambda t: sign * t)
        assert ts[-1] == "" and ts.count("") == sum(1 for f in doc.findings if f.time is None)
    b.click("#reset")

    # Expanding a row (a real click) shows the full statement and both channels.
    hostile_id = next(f.id for f in doc.findings if f.statement == HOSTILE)
    sel = f'details.finding[data-id="{hostile_id}"]'
    assert b.js(f"document.querySelector('{sel} pre.statement').checkVisibility()") is False
    b.click(f"{sel} > summary")
    assert b.js(f"document.querySelector('{sel}').open") is True
    assert b.js(f"document.querySelector('{sel} pre.statement').innerText") == HOSTILE
    assert b.js(f"document.querySelector('{sel} pre.statement').checkVisibility()") is True
    long_id = next(f.id for f in doc.findings if f.statement == LONG_STMT)
    b.click(f'details.finding[data-id="{long_id}"] > summary')
    assert (
        b.js(
            f"document.querySelector('details.finding[data-id=\"{long_id}\"] pre.statement').innerText"
        )
        == LONG_STMT
    )

    # Nothing from the data ran: no sentinel, no dialog, no element but ours.
    assert b.js(f"typeof window.{SENTINEL}") == "undefined"
    assert b.dialogs == []
    assert b.js("document.scripts.length") == 1
    assert b.js("document.images.length") == 0

    b.click(f'details.finding[data-id="{long_id}"] > summary')  # fold the long one again
    b.click('details.finding[data-id="F0000"] > summary')  # show one with both channels
    b.screenshot(ROOT / "test-artifacts" / "report.png")
    b.settle()
    assert b.errors() == []
    assert b.requests() == [url], b.requests()


def test_empty_report_in_a_real_browser(browser: Browser, tmp_path: Path) -> None:
    page = write_reports(make_document(()), tmp_path / "out")["html"]
    browser.open(page.as_uri())
    assert "No findings." in browser.js("document.getElementById('status').innerText")
    browser.screenshot(ROOT / "test-artifacts" / "report-empty.png")
    browser.settle()
    assert browser.errors() == []
    assert browser.requests() == [page.as_uri()]


def test_browser_checks_can_fail(browser: Browser, tmp_path: Path) -> None:
    """Control: the harness does see a script error, a dialog and a request when there are some."""
    page = tmp_path / "control.html"
    page.write_text(
        "<!DOCTYPE html><title>c</title><img src='missing.png'>"
        "<script>alert('x'); throw new Error('boom')</script>",
        encoding="utf-8",
    )
    browser.open(page.as_uri())
    assert browser.dialogs == ["x"]
    assert any("boom" in e for e in browser.errors())
    assert (tmp_path / "missing.png").as_uri() in browser.requests()
    # And the report's own CSP blocks a script that escaping would have let through.
    html = render_html(make_document(())).replace(
        "<main", "<script>window.injected=1</script><main", 1
    )
    page.write_text(html, encoding="utf-8")
    browser.events.clear()
    browser.open(page.as_uri())
    assert browser.js("typeof window.injected") == "undefined"
    assert any("Content Security Policy" in e for e in browser.errors()), browser.errors()
