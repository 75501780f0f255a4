"""Pair ERROR records with the statement that failed, and decide what to keep.

The readers yield records in file order.  An ERROR comes after the
``statement:``/``execute`` record it belongs to, so it is linked backwards:
the error's ``failed_statement`` is the :class:`~auditor.model.SourceLocation`
of the most recent statement record of the same session (``%c``, or the pid
when the log has no session id) whose text equals the error's ``STATEMENT:``
text (when logged) and whose vxid equals the error's (when both are known; a
string that spans transactions fails under a later vxid of the same backend).
Records stay frozen: the linker builds the ERROR record anew with the link.

It also decides, when only the audit-relevant records are wanted, which
ones to keep: statements that hold DDL or change a watched setting, errors
of those statements (or whose own text holds DDL), markers, and the server
messages reconcile uses (``parameter ... changed``, SIGHUP, start, shutdown).

pgAudit's ``AUDIT:`` lines come after the statement line of the same statement
(pgAudit logs once it ran).  One of a statement the client sent (its command is
the session's current one) whose statement line is in the log says nothing new
and is kept only with ``all_records``; one whose statement line is not there
(``log_statement`` below ``ddl``, or silenced for the session) *is* the log's
record of that statement and becomes a STATEMENT record, once per query string,
so the matcher pairs it like any statement line.  Lines of DDL run inside a
function, ``DO``, ``CALL`` or trigger stay AUDIT records: the log's only view of
that DDL, which ``log_statement`` never shows.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Iterable, Iterator

from auditor.logs.message import is_notable
from auditor.logs.prefilter import classify_texts
from auditor.model import LogRecord, MessageKind, ReadWarning

_MAX_SESSIONS = 200_000


def with_verdict(rec: LogRecord) -> LogRecord:
    """The record with ``is_ddl``/``is_relevant`` of its statement (and prepared) text."""
    verdict = classify_texts((rec.statement, rec.prepare_text))
    return dataclasses.replace(rec, is_ddl=verdict.is_ddl, is_relevant=verdict.is_relevant)


def _later_part(vxid: str, stmt: LogRecord) -> bool:
    """An error in a later transaction of the same string: after a COMMIT inside it, or
    in a command that commits internally (CREATE INDEX CONCURRENTLY ...): the error's
    vxid is a later one of the same backend than the one the statement was logged with."""
    from auditor.classify import classify

    mine, _, lxid = vxid.partition("/")
    theirs, _, their_lxid = (stmt.vxid or "").partition("/")
    if mine != theirs or not lxid.isdigit() or not their_lxid.isdigit():
        return False
    if int(their_lxid) == 0 or int(lxid) <= int(their_lxid):
        return False
    return classify(stmt.statement or "").spans_transactions


def _key(rec: LogRecord) -> tuple[str, object] | None:
    if rec.session_id:
        return ("c", rec.session_id)
    if rec.pid is not None:
        return ("p", rec.pid)
    return None


class Linker:
    """Streams records through, linking errors and filtering (see module doc).

    ``kept_statement`` remembers, per session, the last statement record and
    whether it was kept, so an error is kept exactly when its statement is.
    """

    def __init__(self, *, all_records: bool) -> None:
        self.all_records = all_records
        self._last: OrderedDict[tuple[str, object], tuple[LogRecord, bool]] = OrderedDict()
        #: (session, vxid, text) of the pgAudit statements already read as statements.
        self._audited: OrderedDict[tuple[object, ...], None] = OrderedDict()

    def feed(self, item: LogRecord | ReadWarning) -> LogRecord | ReadWarning | None:
        """The item to yield (possibly rebuilt with its link), or None to drop it."""
        if isinstance(item, ReadWarning):
            return item
        rec = item
        kind = rec.kind
        if kind in (MessageKind.STATEMENT, MessageKind.EXECUTE):
            if rec.is_ddl is None or rec.is_relevant is None:
                rec = with_verdict(rec)
            relevant = bool(rec.is_relevant)
            key = _key(rec)
            if key is not None:
                self._last[key] = (rec, relevant)
                self._last.move_to_end(key)
                if len(self._last) > _MAX_SESSIONS:
                    self._last.popitem(last=False)
            # A record that reads two ways is kept whatever its first reading says: the
            # other may be DDL (auditor.logtrust reports it).
            keep = relevant or self.all_records or rec.ambiguous is not None
            return rec if keep else None
        if kind == MessageKind.ERROR:
            key = _key(rec)
            linked: tuple[LogRecord, bool] | None = None
            if key is not None and key in self._last:
                stmt, kept = self._last[key]
                same_text = rec.statement is None or rec.statement == stmt.statement
                same_xact = (
                    rec.vxid is None
                    or stmt.vxid is None
                    or rec.vxid == stmt.vxid
                    or _later_part(rec.vxid, stmt)
                )
                if same_text and same_xact:
                    linked = (stmt, kept)
            if rec.statement and rec.is_relevant is None:
                rec = with_verdict(rec)
            own_ddl = bool(rec.is_ddl)
            own_relevant = bool(rec.is_relevant)
            if linked is not None:
                rec = dataclasses.replace(
                    rec,
                    failed_statement=linked[0].source,
                    is_ddl=own_ddl or bool(linked[0].is_ddl),
                    is_relevant=own_relevant or linked[1],
                )
            keep = self.all_records or bool(linked and linked[1]) or own_relevant
            return rec if keep or rec.ambiguous is not None else None
        if kind == MessageKind.MARKER:
            return rec
        if kind == MessageKind.AUDIT:
            return self._audit(rec)
        keep = self.all_records or is_notable(rec.message) or rec.ambiguous is not None
        return rec if keep else None

    def _audit(self, rec: LogRecord) -> LogRecord | None:
        """A pgAudit line: redundant, the log's statement record, or DDL inside a function."""
        if rec.is_relevant is None:
            rec = with_verdict(rec)
        audit = rec.pgaudit
        key = _key(rec)
        last = self._last.get(key) if key is not None else None
        logged = (
            last is not None
            and last[0].statement == rec.statement
            and (rec.vxid is None or last[0].vxid is None or last[0].vxid == rec.vxid)
        )
        if logged:  # the statement line said it all
            return rec if self.all_records else None
        if audit is not None and audit.nested is False:
            ident = (rec.session_id, rec.pid, rec.vxid, rec.statement)
            if ident in self._audited:  # a multi-statement string: one record for it
                return rec if self.all_records else None
            self._audited[ident] = None
            if len(self._audited) > _MAX_SESSIONS:
                self._audited.popitem(last=False)
            stmt = dataclasses.replace(rec, kind=MessageKind.STATEMENT)
            if key is not None:
                self._last[key] = (stmt, bool(stmt.is_relevant))
            return stmt
        return rec if (self.all_records or rec.is_relevant) else None

    def run(self, items: Iterable[LogRecord | ReadWarning]) -> Iterator[LogRecord | ReadWarning]:
        for item in items:
            out = self.feed(item)
            if out is not None:
                yield out
