"""Which changes of a watched setting weaken which channel, at which scope.

A change of a logging or trigger setting is ``CONFIG_DRIFT`` only when, by
PostgreSQL's semantics, it really takes something away from one of the two
channels.  :data:`RULES` is the table, one :class:`SettingRule` per watched
setting; :func:`judge` applies it to one :class:`~auditor.classify.SettingChange`
(a setting, a value or RESET, and the scope the statement gives it).

**What a weakening value takes away** (:class:`Loss`), and where it bites:

* *statement lines*, the log's ``statement:`` lines: in the session, the
  transaction, new sessions of a role or database, server-wide; never from a
  function's SET clause (log_statement is decided for the whole query string
  before it runs, and nothing run inside a function is logged anyway);
* *markers*, the audit trigger's ``RAISE LOG`` lines: at any scope, unless
  ``<schema>.record_event()`` pins the setting in its own SET clause (a
  function's SET clause wins while it runs);
* *marker trust*, the CONTEXT lines that tell a marker forged with ``RAISE
  LOG`` in a client's DO block or function from the trigger's: at any scope
  (the forger's own session or function);
* *event triggers*, firings of the audit triggers: at any scope (DDL run inside
  a function fires them under the function's settings);
* *log files*, where and how the server writes its files: server-wide only.

**The table.**  PostgreSQL's GUC context decides where a setting can be set at
all: *superuser* settings at every scope, *sighup* and *postmaster* ones only
in postgresql.conf or with ALTER SYSTEM (anywhere else the server refuses the
statement, so it changes nothing).  Setting, context: weakening values (what
is lost), severity.

* log_statement, superuser: ``none`` (statement lines; ``ddl``, ``mod`` and
  ``all`` all log DDL), critical.
* log_min_messages, superuser: ``fatal``, ``panic`` (statement lines and
  markers; LOG ranks above ERROR for the server log, so ``error`` and
  ``warning`` keep LOG lines), critical.
* log_min_error_statement, superuser: ``fatal``, ``panic`` (markers lose their
  STATEMENT copy of the query; a failed DDL still links to its statement by
  session and vxid), high.
* lc_messages, superuser: anything but ``C``, ``POSIX``, ``C.*``, ``en*``
  (statement lines and markers: translated lines cannot be parsed), critical.
* log_error_verbosity, superuser: ``terse`` when stderr is among the formats
  read (marker trust: stderr lines lose their CONTEXT; csvlog and jsonlog keep
  it whatever the verbosity), high.
* session_replication_role, superuser: ``replica`` (event triggers that are
  not ENABLE ALWAYS), critical.
* event_triggers, superuser, PostgreSQL 17+: off (every event trigger),
  critical.
* logging_collector, postmaster: off (log files: after a restart the log goes
  to the postmaster's standard error), critical.
* log_destination, sighup: none of the formats this run read (log files),
  critical.
* log_truncate_on_rotation, sighup: on (log files: a rotation reusing a file
  name overwrites the old log), high.
* log_line_prefix, sighup: without ``%c`` or ``%v`` when stderr is the only
  format read (log files: pairing falls back to pid and time), high.
* log_file_mode, sighup: group- or other-writable (log files can be edited),
  high.
* log_directory, log_filename, log_rotation_age, log_rotation_size,
  syslog_ident, syslog_facility, sighup: none.  The files move (``--log`` must
  follow them; a stretch no log covers is a LOG_GAP); rotation loses lines only
  with log_truncate_on_rotation.

**RESET.** A session ``RESET`` (or ``SET ... TO DEFAULT``, ``RESET ALL``)
returns to the session's start value (postgresql.conf, then database and role
settings): not weakening by itself; whatever set that value is judged where it
is set.  ``ALTER ROLE/DATABASE/FUNCTION ... RESET`` removes an override, which
falls back to the same values: not weakening.  ``ALTER SYSTEM RESET x`` falls
back to postgresql.conf or to the built-in default, which the log does not
show: when the default weakens (log_statement ``none``, logging_collector
``off``, log_destination ``stderr`` when stderr is not read) it *may* weaken
(high); the server's own reload line (``parameter "x" removed from
configuration file, reset to default``) and the live check then say which.

Severity of a weakening change: the rule's; a change that may weaken (a RESET
to a weakening default, a value the statement does not show: ``SET ... FROM
CURRENT``, a computed ``set_config()`` argument) is high.  Everything else is
not CONFIG_DRIFT: the statement is judged as what it is (an ``ALTER FUNCTION
... SET`` is ordinary audited DDL; an ``ALTER SYSTEM``, ``ALTER ROLE/DATABASE
... SET`` whose only effect is such a change is info).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import TYPE_CHECKING

from auditor.model import Severity

if TYPE_CHECKING:
    from auditor.classify import SettingChange


class Loss(StrEnum):
    """What a weakening value takes away (see the module docstring)."""

    STATEMENT_LINES = "statement lines"
    MARKERS = "markers"
    MARKER_TRUST = "marker trust"
    EVENT_TRIGGERS = "event triggers"
    LOG_FILES = "log files"


class Effect(StrEnum):
    """What one change does to the channels."""

    WEAKENS = "weakens"
    MAY_WEAKEN = "may weaken"
    HARMLESS = "harmless"
    NO_EFFECT = "no effect"


#: Scopes a SettingChange can have (``auditor.classify`` names them).
SESSION_SCOPES = frozenset({"session", "local"})
NEW_SESSION_SCOPES = frozenset(
    {"role", "role in database", "all roles", "all roles in database", "database"}
)
FUNCTION_SCOPE = "function"
SERVER_SCOPES = frozenset({"system", "server reload"})

_WHERE = {
    "session": "for the rest of that session",
    "local": "for the rest of that transaction",
    "role": "for that role's new sessions",
    "role in database": "for that role's new sessions in that database",
    "all roles": "for every new session",
    "all roles in database": "for every new session in that database",
    "database": "for new sessions in that database",
    "function": "while that function runs",
    "system": "server-wide once the configuration is reloaded",
    "server reload": "server-wide from this reload on",
}


@dataclass(frozen=True)
class Situation:
    """What the verdict depends on beyond the statement.

    ``pinned``: settings ``<schema>.record_event()`` fixes in its SET clause (read
    from the live server; without one, what this package installs).
    ``formats``: log formats this run read (empty: unknown).
    """

    server_version_num: int = 150000
    pinned: frozenset[str] = frozenset()
    formats: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Verdict:
    effect: Effect
    severity: Severity | None
    text: str

    @property
    def drift(self) -> bool:
        """A CONFIG_DRIFT: the change weakens a channel, or may."""
        return self.effect in (Effect.WEAKENS, Effect.MAY_WEAKEN)


@dataclass(frozen=True)
class SettingRule:
    """One row of the table: when a value of ``name`` weakens, and what it takes away."""

    name: str
    context: str  # PostgreSQL's GUC context: superuser, sighup, postmaster
    weak: Callable[[str, Situation], bool]
    weak_values: str  # the weakening values, for messages and the README
    loss: frozenset[Loss]
    effect: str  # what a weakening value does, one clause
    default: str  # the built-in default (boot value)
    severity: Severity = Severity.CRITICAL
    since: int = 0  # server_version_num the setting exists from


# -- value parsing as PostgreSQL does it ----------------------------------------------


def pg_bool(value: str) -> bool | None:
    """A boolean setting's value as ``parse_bool()`` reads it (None: not a boolean).

    >>> [pg_bool(v) for v in ("off", "OF", "f", "no", "0", "on", "yes", "t", "o", "x")]
    [False, False, False, False, False, True, True, True, None, None]
    """
    v = value.strip().lower()
    if not v:
        return None
    if v in ("1", "0"):
        return v == "1"
    if "true".startswith(v) or "yes".startswith(v):
        return True
    if "false".startswith(v) or (len(v) >= 2 and "off".startswith(v)) or "no".startswith(v):
        return False
    if v == "on":
        return True
    return None


def pg_int(value: str) -> int | None:
    """An integer setting's value as ``strtol(value, NULL, 0)`` reads it: ``0640`` is octal.

    >>> pg_int("0640"), pg_int("416"), pg_int("0x1a0"), pg_int("x")
    (416, 416, 416, None)
    """
    v = value.strip().lower()
    try:
        if v.startswith(("0x", "-0x")):
            return int(v, 16)
        if len(v) > 1 and v.startswith("0"):
            return int(v, 8)
        return int(v, 10)
    except ValueError:
        return None


def _norm(value: str) -> str:
    return value.strip().strip("'").strip().lower()


def _prefix_has(prefix: str, escape: str) -> bool:
    """``%<escape>`` in a log_line_prefix (not ``%%<escape>``).

    >>> _prefix_has("%m %c", "c"), _prefix_has("%%c", "c")
    (True, False)
    """
    i = 0
    while i < len(prefix) - 1:
        if prefix[i] == "%":
            if prefix[i + 1] == escape:
                return True
            i += 2
            continue
        i += 1
    return False


_READ_FORMATS = frozenset({"stderr", "csvlog", "jsonlog"})


def _destinations_weak(value: str, s: Situation) -> bool:
    dests = {d.strip().lower() for d in value.replace("'", "").split(",") if d.strip()}
    read = s.formats & _READ_FORMATS or _READ_FORMATS
    return not dests & read


def _prefix_weak(value: str, s: Situation) -> bool:
    if s.formats and s.formats != {"stderr"}:
        return False  # csvlog and jsonlog carry session id and vxid in their own fields
    return not (_prefix_has(value, "c") and _prefix_has(value, "v"))


def _terse_weak(value: str, s: Situation) -> bool:
    # Only the stderr writer drops CONTEXT for terse; csvlog and jsonlog always keep it.
    return _norm(value) == "terse" and (not s.formats or "stderr" in s.formats)


def _messages_weak(value: str, s: Situation) -> bool:
    v = _norm(value)
    return bool(v) and not (v in ("c", "posix") or v.startswith(("c.", "en")))


def _mode_weak(value: str, s: Situation) -> bool:
    mode = pg_int(_norm(value))
    return mode is not None and 0 <= mode <= 0o777 and bool(mode & 0o022)


def _one_of(*values: str) -> Callable[[str, Situation], bool]:
    wanted = frozenset(values)
    return lambda value, s: _norm(value) in wanted


def _bool_is(flag: bool) -> Callable[[str, Situation], bool]:
    return lambda value, s: pg_bool(_norm(value)) is flag


def _never(value: str, s: Situation) -> bool:
    return False


L = Loss
RULES: dict[str, SettingRule] = {
    r.name: r
    for r in (
        SettingRule(
            "log_statement", "superuser", _one_of("none"), "'none'",
            frozenset({L.STATEMENT_LINES}), "DDL statements are not logged", "none",
        ),
        SettingRule(
            "log_min_messages", "superuser", _one_of("fatal", "panic"), "'fatal' or 'panic'",
            frozenset({L.STATEMENT_LINES, L.MARKERS}),
            "LOG lines (statement lines, audit markers) are not written", "warning",
        ),
        SettingRule(
            "log_min_error_statement", "superuser", _one_of("fatal", "panic"),
            "'fatal' or 'panic'", frozenset({L.MARKERS}),
            "audit markers lose their STATEMENT copy of the query", "error", Severity.HIGH,
        ),
        SettingRule(
            "lc_messages", "superuser", _messages_weak, "anything but C, POSIX or en*",
            frozenset({L.STATEMENT_LINES, L.MARKERS}),
            "log lines are translated and cannot be parsed", "",
        ),
        SettingRule(
            "log_error_verbosity", "superuser", _terse_weak, "'terse' (stderr read)",
            frozenset({L.MARKER_TRUST}),
            "stderr lines carry no CONTEXT, so a marker forged with RAISE LOG cannot be told "
            "from the audit trigger's", "default", Severity.HIGH,
        ),
        SettingRule(
            "session_replication_role", "superuser", _one_of("replica"), "'replica'",
            frozenset({L.EVENT_TRIGGERS}),
            "event triggers that are not ENABLE ALWAYS do not fire", "origin",
        ),
        SettingRule(
            "event_triggers", "superuser", _bool_is(False), "off",
            frozenset({L.EVENT_TRIGGERS}), "no event trigger fires", "on", since=170000,
        ),
        SettingRule(
            "logging_collector", "postmaster", _bool_is(False), "off",
            frozenset({L.LOG_FILES}),
            "after a restart the log goes to the postmaster's standard error, not to "
            "files the server manages", "off",
        ),
        SettingRule(
            "log_destination", "sighup", _destinations_weak, "none of the formats read",
            frozenset({L.LOG_FILES}), "the server stops writing the log formats read",
            "stderr",
        ),
        SettingRule(
            "log_truncate_on_rotation", "sighup", _bool_is(True), "on",
            frozenset({L.LOG_FILES}),
            "a rotation that reuses a file name overwrites the old log", "off", Severity.HIGH,
        ),
        SettingRule(
            "log_line_prefix", "sighup", _prefix_weak, "without %c or %v (stderr only)",
            frozenset({L.LOG_FILES}),
            "stderr lines lose the session id or vxid that pair them with audit rows",
            "%m [%p] ", Severity.HIGH,
        ),
        SettingRule(
            "log_file_mode", "sighup", _mode_weak, "group- or other-writable",
            frozenset({L.LOG_FILES}), "other users can edit the log files", "0600",
            Severity.HIGH,
        ),
        *(
            SettingRule(name, "sighup", _never, "none", frozenset(), "", default)
            for name, default in (
                ("log_directory", "log"),
                ("log_filename", "postgresql-%Y-%m-%d_%H%M%S.log"),
                ("log_rotation_age", "1440"),
                ("log_rotation_size", "10240"),
                ("syslog_ident", "postgres"),
                ("syslog_facility", "local0"),
            )
        ),
    )
}  # fmt: skip

#: Settings whose change the reconcile judges (the statements that change them are kept).
WATCHED_SETTINGS = frozenset(RULES)


def _bites(loss: Loss, scope: str, s: Situation, rule: SettingRule) -> bool:
    """Whether a weakening value of ``rule`` takes ``loss`` away at ``scope``."""
    if loss == Loss.LOG_FILES:
        return scope in SERVER_SCOPES
    if loss == Loss.STATEMENT_LINES:
        return scope != FUNCTION_SCOPE
    if loss == Loss.MARKERS:
        return rule.name not in s.pinned
    return True  # marker trust, event triggers: the forger's or the DDL's own settings


def _refused(rule: SettingRule, scope: str) -> bool:
    return rule.context != "superuser" and scope not in SERVER_SCOPES


def judge(change: SettingChange, situation: Situation) -> Verdict:
    """What one change of a watched setting does (see the module docstring).

    >>> from auditor.classify import SettingChange as C
    >>> s = Situation()
    >>> judge(C("log_statement", "none", "session"), s).effect
    <Effect.WEAKENS: 'weakens'>
    >>> [judge(C("log_statement", v, "session"), s).effect.value for v in ("mod", "all")]
    ['harmless', 'harmless']
    >>> judge(C("log_statement", "none", "function"), s).effect
    <Effect.NO_EFFECT: 'no effect'>
    >>> judge(C("ALL", None, "function", "reset"), s).effect
    <Effect.HARMLESS: 'harmless'>
    >>> judge(C("log_statement", None, "system", "reset"), s).effect
    <Effect.MAY_WEAKEN: 'may weaken'>
    >>> judge(C("log_min_messages", "error", "session"), s).effect
    <Effect.HARMLESS: 'harmless'>
    >>> judge(C("log_destination", "syslog", "session"), s).effect
    <Effect.NO_EFFECT: 'no effect'>
    >>> judge(C("event_triggers", "off", "session"), Situation(170000)).severity
    <Severity.CRITICAL: 'critical'>
    >>> judge(C("event_triggers", "off", "session"), Situation(160000)).effect
    <Effect.NO_EFFECT: 'no effect'>
    """
    name, scope = change.name, change.scope
    where = _WHERE.get(scope, scope)
    if name == "ALL":
        return _reset_all(scope, situation)
    rule = RULES.get(name)
    if rule is None:
        return Verdict(Effect.HARMLESS, None, f"{name} is not a setting the channels depend on")
    said = _said(change)
    if rule.since and situation.server_version_num < rule.since:
        return Verdict(
            Effect.NO_EFFECT,
            None,
            f"{said}: there is no such setting before PostgreSQL {rule.since // 10000} "
            "(the server refuses it)",
        )
    if _refused(rule, scope):
        return Verdict(
            Effect.NO_EFFECT,
            None,
            f"{said}: {name} can only be set in postgresql.conf or with ALTER SYSTEM "
            "(the server refuses it here)",
        )
    if change.kind == "reset":
        if scope != "system":
            return Verdict(
                Effect.HARMLESS,
                None,
                f"{said}: it returns to the value postgresql.conf, the database or the role "
                "gives; not weakening by itself",
            )
        if rule.weak(rule.default, situation) and _any_bites(rule, scope, situation):
            return Verdict(
                Effect.MAY_WEAKEN,
                Severity.HIGH,
                f"{said}: it falls back to postgresql.conf or to the built-in default "
                f"{rule.default!r}, where {rule.effect} (the reload line and the live check "
                "say which)",
            )
        return Verdict(Effect.HARMLESS, None, f"{said}: its default does not weaken")
    if change.kind == "unknown" or change.value is None:
        if _any_bites(rule, scope, situation):
            return Verdict(
                Effect.MAY_WEAKEN,
                Severity.HIGH,
                f"{said}: the statement does not show the value; {rule.weak_values} would "
                f"mean {rule.effect} {where}",
            )
        return Verdict(Effect.NO_EFFECT, None, f"{said}: no value of it weakens at this scope")
    if not rule.weak(change.value, situation):
        return Verdict(Effect.HARMLESS, None, f"{said}: does not weaken either channel")
    losses = sorted(loss.value for loss in rule.loss if _bites(loss, scope, situation, rule))
    if not losses:
        why = []
        if Loss.STATEMENT_LINES in rule.loss:
            why.append(
                "nothing inside a function is logged, and its caller's line is written first"
            )
        if Loss.MARKERS in rule.loss:
            why.append("the audit trigger function pins its own value")
        return Verdict(Effect.NO_EFFECT, None, f"{said}: no effect here ({'; '.join(why)})")
    return Verdict(
        Effect.WEAKENS,
        rule.severity,
        f"{said}: {rule.effect} {where}; this weakens the channel ({', '.join(losses)})",
    )


def _any_bites(rule: SettingRule, scope: str, situation: Situation) -> bool:
    return any(_bites(loss, scope, situation, rule) for loss in rule.loss)


def _said(change: SettingChange) -> str:
    if change.name == "ALL":
        return f"RESET ALL ({change.scope})"
    if change.kind == "reset":
        return f"{change.name} reset ({change.scope})"
    if change.kind == "unknown" or change.value is None:
        return f"{change.name} set to a value the statement does not show ({change.scope})"
    return f"{change.name} set to {change.value!r} ({change.scope})"


def _reset_all(scope: str, situation: Situation) -> Verdict:
    if scope != "system":
        return Verdict(
            Effect.HARMLESS,
            None,
            f"RESET ALL ({scope}): settings return to the values postgresql.conf, the "
            "database or the role give; not weakening by itself",
        )
    weak = sorted(
        r.name
        for r in RULES.values()
        if (not r.since or situation.server_version_num >= r.since)
        and r.weak(r.default, situation)
        and _any_bites(r, scope, situation)
    )
    if not weak:
        return Verdict(Effect.HARMLESS, None, "RESET ALL (system): no default weakens")
    return Verdict(
        Effect.MAY_WEAKEN,
        Severity.HIGH,
        "ALTER SYSTEM RESET ALL: every setting ALTER SYSTEM made falls back to "
        "postgresql.conf or its built-in default, and the defaults of "
        f"{', '.join(weak)} weaken (the reload lines and the live check say what changed)",
    )


@cache
def packaged_pins(schema: str = "auditor") -> frozenset[str]:
    """Settings ``<schema>.record_event()`` pins in its SET clause, as this package installs it.

    Used when reconcile has no live server to read the function's ``proconfig`` from.

    >>> "search_path" in packaged_pins()
    True
    """
    import orjson
    from pglast.parser import parse_sql_json

    from auditor.capture import render

    tree = orjson.loads(parse_sql_json(render("capture_install.sql", schema)))
    for raw in tree.get("stmts", ()):
        body = (raw.get("stmt") or {}).get("CreateFunctionStmt")
        if not body:
            continue
        names = [n.get("String", {}).get("sval") for n in body.get("funcname") or ()]
        if names[-1:] != ["record_event"]:
            continue
        return config_names(
            str(opt["DefElem"]["arg"]["VariableSetStmt"].get("name", ""))
            for opt in body.get("options") or ()
            if opt.get("DefElem", {}).get("defname") == "set"
        )
    return frozenset()


def config_names(entries: Iterable[str]) -> frozenset[str]:
    """Setting names of ``proconfig`` entries (``name=value``) or of bare names.

    >>> sorted(config_names(["search_path=pg_catalog, pg_temp", "log_min_messages=warning"]))
    ['log_min_messages', 'search_path']
    """
    return frozenset(e.split("=", 1)[0].strip().lower() for e in entries if e)


__all__ = [
    "RULES",
    "WATCHED_SETTINGS",
    "Effect",
    "Loss",
    "SettingRule",
    "Situation",
    "Verdict",
    "config_names",
    "judge",
    "packaged_pins",
    "pg_bool",
    "pg_int",
]
