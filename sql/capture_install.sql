-- capture_install.sql: the trigger channel's schema, tables and functions (idempotent).
--
-- Applied by `auditor install` (auditor.capture) inside one transaction, after the
-- auditor's event triggers were dropped and before they are created again
-- (capture_event_triggers.sql), so the install itself is not audited by a half-built
-- copy.  Every statement converges: CREATE ... IF NOT EXISTS for tables (they hold
-- evidence and are never recreated), CREATE OR REPLACE for functions, DROP + CREATE
-- for table triggers.  A second run, or a run over an older version, leaves exactly
-- one current copy.
--
-- Template placeholders (psycopg.sql.SQL.format: a literal brace is written doubled,
-- so comments show them doubled): {{schema}} the schema as an identifier,
-- {{schema_name}} the same as a string literal, {{notify_channel}} the NOTIFY channel
-- literal.
--
-- THE ROW DIGEST (marker `digest=`; must stay in sync with auditor/digest.py)
--   digest    = lower-case hex SHA-256 of the UTF-8 bytes of the canonical text
--   canonical = 'auditor-row-v1' followed by enc(f) for the 21 columns of
--               {{schema}}.events in table order: id, event, command_tag, objects,
--               query, caller_context, statement_time, clock_time, session_user_name,
--               current_user_name, login_user_name, database_name, client_addr,
--               client_port, server_addr, server_port, application_name,
--               backend_pid, session_id, vxid, xid
--   enc(NULL)  = '~'
--   enc(text)  = <number of characters>:<text>          e.g. enc('abc') = '3:abc'
--   integers   : decimal text, then enc()
--   timestamps : UTC, 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"' (always 6 fraction digits),
--                then enc()  -- independent of TimeZone and DateStyle
--   inet       : host(addr) (no prefix length), then enc()
--   objects    : the jsonb's own text output (objects::text), then enc().  jsonb
--                stores a value in one normal form (keys de-duplicated and ordered
--                by length, then bytewise; numbers as numeric) and prints it the
--                same way in every session and version (', ' and ': ' separators,
--                no exponent), so the text is a function of the value alone.
-- The row's xmin is not part of the digest: the marker carries it as `xid=`.

CREATE SCHEMA IF NOT EXISTS {schema};
COMMENT ON SCHEMA {schema} IS
    'auditor: append-only record of every DDL seen by event triggers (managed by auditor install)';

-- The evidence.  One row per event-trigger firing.  Never updated, never deleted.
CREATE TABLE IF NOT EXISTS {schema}.events (
    id                bigserial   PRIMARY KEY,
    event             text        NOT NULL,   -- ddl_command_end, sql_drop, table_rewrite
    command_tag       text        NOT NULL,   -- TG_TAG
    objects           jsonb       NOT NULL,   -- array, one object per collected/dropped object
    query             text,                   -- current_query(): the whole string the client sent
    caller_context    text,                   -- NULL at top level; else who ran the DDL (see below)
    statement_time    timestamptz NOT NULL,   -- statement_timestamp()
    clock_time        timestamptz NOT NULL,   -- clock_timestamp() at the firing
    session_user_name text        NOT NULL,
    current_user_name text        NOT NULL,   -- effective role of the session (SET ROLE honoured)
    login_user_name   text,                   -- the authenticated user (the log's %u)
    database_name     text        NOT NULL,
    client_addr       inet,
    client_port       integer,
    server_addr       inet,
    server_port       integer,
    application_name  text,
    backend_pid       integer     NOT NULL,
    session_id        text        NOT NULL,   -- exactly as the log's %c prints it
    vxid              text,                   -- exactly as the log's %v prints it
    xid               bigint      NOT NULL    -- top-level transaction id (xid8, epoch included)
);
COMMENT ON TABLE {schema}.events IS
    'auditor: one row per event-trigger firing; append-only (see the marker lines in the server log)';
-- BRIN: rows arrive in time order, and a BRIN index costs next to nothing per insert.
CREATE INDEX IF NOT EXISTS events_statement_time_brin ON {schema}.events
    USING brin (statement_time);

-- Install history (append-only): which version, who, when, and the md5 of every
-- function body as installed, so `auditor status` can tell a changed function.
CREATE TABLE IF NOT EXISTS {schema}.installs (
    id              bigserial   PRIMARY KEY,
    installed_at    timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    installed_by    text        NOT NULL DEFAULT pg_catalog."session_user"(),
    package_version text        NOT NULL,
    schema_version  integer     NOT NULL,
    mail_mode       text        NOT NULL,
    reader_role     text,
    functions       jsonb       NOT NULL      -- {{proname: md5(prosrc)}}
);
-- Added in schema version 2 (the mail side): the role auditor notify runs as.
ALTER TABLE {schema}.installs ADD COLUMN IF NOT EXISTS notify_role text;

-- Settings read by the trigger at each firing (one row).  The mail side extends it.
CREATE TABLE IF NOT EXISTS {schema}.settings (
    id             integer PRIMARY KEY CHECK (id = 1),
    mail_mode      text    NOT NULL CHECK (mail_mode IN ('outbox', 'plpython', 'none')),
    strict         boolean NOT NULL DEFAULT false,
    notify_channel text    NOT NULL
);

-- enc() of the digest: '~' for NULL, else '<chars>:<text>'.  Inlinable SQL.
CREATE OR REPLACE FUNCTION {schema}.canon_text(v text)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $auditor$
    SELECT CASE WHEN v IS NULL THEN '~'
                ELSE pg_catalog.char_length(v)::text OPERATOR(pg_catalog.||) ':'
                     OPERATOR(pg_catalog.||) v END
$auditor$;

-- The digest of one row, recomputable from the row alone (see the header).  A plain
-- SQL expression without SET clause, so that the planner inlines it into the trigger
-- function's cached plan (no call, no re-planning); names are schema-qualified.
CREATE OR REPLACE FUNCTION {schema}.row_digest(e {schema}.events)
RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
AS $auditor$
    SELECT pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to(
        'auditor-row-v1'
        || {schema}.canon_text(e.id::text)
        || {schema}.canon_text(e.event)
        || {schema}.canon_text(e.command_tag)
        || {schema}.canon_text(e.objects::text)
        || {schema}.canon_text(e.query)
        || {schema}.canon_text(e.caller_context)
        || {schema}.canon_text(pg_catalog.to_char(e.statement_time AT TIME ZONE 'UTC',
                                                  'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
        || {schema}.canon_text(pg_catalog.to_char(e.clock_time AT TIME ZONE 'UTC',
                                                  'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'))
        || {schema}.canon_text(e.session_user_name)
        || {schema}.canon_text(e.current_user_name)
        || {schema}.canon_text(e.login_user_name)
        || {schema}.canon_text(e.database_name)
        || {schema}.canon_text(pg_catalog.host(e.client_addr))
        || {schema}.canon_text(e.client_port::text)
        || {schema}.canon_text(pg_catalog.host(e.server_addr))
        || {schema}.canon_text(e.server_port::text)
        || {schema}.canon_text(e.application_name)
        || {schema}.canon_text(e.backend_pid::text)
        || {schema}.canon_text(e.session_id)
        || {schema}.canon_text(e.vxid)
        || {schema}.canon_text(e.xid::text),
        'UTF8')), 'hex')
$auditor$;

-- The extension point after each inserted row: queue the mail.  In outbox mode a
-- NOTIFY on {{notify_channel}} whose payload is the row id (delivered at commit, so
-- never for a rolled-back DDL); in 'none' mode nothing.  The mail side may replace
-- this function; the trigger only relies on its signature.  It runs inside
-- record_event() (owner's rights, fixed search_path), so it needs no SET clause
-- of its own; nobody else may execute it.
CREATE OR REPLACE FUNCTION {schema}.after_event(e {schema}.events)
RETURNS void
LANGUAGE plpgsql VOLATILE
AS $auditor$
DECLARE
    s record;
BEGIN
    SELECT st.mail_mode, st.notify_channel INTO s FROM {schema}.settings AS st WHERE st.id = 1;
    IF NOT FOUND THEN
        RAISE EXCEPTION 'auditor: the settings row of schema % is missing, so % is refused (fail closed)',
            {schema_name}, e.command_tag
            USING HINT = 'Run auditor install again to restore it.';
    END IF;
    IF s.mail_mode = 'outbox' THEN
        PERFORM pg_notify(s.notify_channel, e.id::text);
    END IF;
END
$auditor$;

-- THE AUDIT TRIGGER FUNCTION, for ddl_command_end, sql_drop and table_rewrite.
-- One row per firing, also when the firing collected no object (DROP, IF NOT EXISTS
-- no-ops): objects is then [].
-- Fail closed: there is deliberately no EXCEPTION block (it would open a
-- subtransaction per firing, change the row's xmin and, past 64 firings in one
-- transaction, overflow the subxid cache of every snapshot in the cluster); any error
-- here aborts the DDL, with this function named in the error's CONTEXT, and the
-- conditions we can foresee raise their own 'auditor: ...' message.
-- Limit (covered by the log channel, which logs the statement): event triggers that
-- a command drops do not fire for it, so a superuser's DROP SCHEMA <schema> CASCADE or
-- DROP FUNCTION <schema>.record_event() CASCADE removes the audit without a row.
--
-- The SET clauses pin, for the duration of each firing, every setting that decides
-- whether and how the marker reaches the log, so that neither the session (SET,
-- set_config(..., true) earlier in the same query string) nor an event trigger that
-- fires before this one can mute or reshape it (src/backend/utils/error/elog.c):
--   search_path             pg_catalog first: no session object shadows what this calls
--   log_min_error_statement whether the marker carries its STATEMENT line (see below)
--   log_min_messages        fatal or panic would drop the LOG line altogether
--   log_error_verbosity     terse drops the CONTEXT line, the proof that this function
--                           (not a RAISE LOG elsewhere) wrote the marker
--   lc_messages             a translation renames 'LOG', 'CONTEXT' and the PL/pgSQL
--                           context text that reconcile recognises
--   backtrace_functions     would append a BACKTRACE to the marker
-- The function belongs to a superuser, so PGC_SUSET settings apply whoever runs the
-- DDL (fmgr_security_definer switches to the owner before it applies them).  The rest
-- of what shapes a log line (log_line_prefix, log_destination, log_timezone, syslog_*)
-- can only change by a configuration reload, which the log itself records.
CREATE OR REPLACE FUNCTION {schema}.record_event()
RETURNS event_trigger
LANGUAGE plpgsql VOLATILE
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
SET log_min_error_statement = error
SET log_min_messages = warning
SET log_error_verbosity = 'default'  -- quoted: a bare DEFAULT would drop the clause
SET lc_messages = 'C'
SET backtrace_functions = ''
AS $auditor$
DECLARE
    r      {schema}.events;
    v_xmin xid;
    v_key  text;
    v_ctx  text;
    v_act  record;
    v_from bigint;         -- the first id the sequence gave that a row already held
    v_max  bigint;         -- the table's highest id when the sequence was moved past it
    v_seen text := '';     -- the marker's behind= field (empty: the sequence was ahead)
    v_tries integer := 0;
BEGIN
    IF tg_event = 'ddl_command_end' THEN
        SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'object_type', c.object_type,
                   'schema_name', c.schema_name,
                   'object_identity', c.object_identity,
                   'in_extension', c.in_extension,
                   'command_tag', c.command_tag,
                   'classid', c.classid::bigint,
                   'objid', c.objid::bigint,
                   'objsubid', c.objsubid)
                 ORDER BY c.ordinality), '[]'::jsonb)
          INTO r.objects
          FROM pg_event_trigger_ddl_commands() WITH ORDINALITY AS c;
    ELSIF tg_event = 'sql_drop' THEN
        SELECT coalesce(jsonb_agg(jsonb_build_object(
                   'object_type', d.object_type,
                   'schema_name', d.schema_name,
                   'object_name', d.object_name,
                   'object_identity', d.object_identity,
                   'original', d.original,
                   'normal', d.normal,
                   'is_temporary', d.is_temporary,
                   'address_names', to_jsonb(d.address_names),
                   'address_args', to_jsonb(d.address_args),
                   'classid', d.classid::bigint,
                   'objid', d.objid::bigint,
                   'objsubid', d.objsubid)
                 ORDER BY d.ordinality), '[]'::jsonb)
          INTO r.objects
          FROM pg_event_trigger_dropped_objects() WITH ORDINALITY AS d;
    ELSIF tg_event = 'table_rewrite' THEN
        SELECT jsonb_build_array(jsonb_build_object(
                   'object_type', i.type,
                   'schema_name', i.schema,
                   'object_name', i.name,
                   'object_identity', i.identity,
                   'rewrite_reason', pg_event_trigger_table_rewrite_reason(),
                   'classid', 'pg_catalog.pg_class'::regclass::oid::bigint,
                   'objid', pg_event_trigger_table_rewrite_oid()::bigint,
                   'objsubid', 0))
          INTO r.objects
          FROM pg_identify_object('pg_catalog.pg_class'::regclass,
                                  pg_event_trigger_table_rewrite_oid(), 0) AS i;
    ELSE
        RAISE EXCEPTION 'auditor: record_event() fired for unexpected event %', tg_event;
    END IF;

    -- One statement for the session's start (for %c), login user and vxid (%v).
    SELECT a.backend_start, a.usesysid,
           (SELECT l.virtualxid FROM pg_locks AS l
             WHERE l.locktype = 'virtualxid' AND l.pid = pg_backend_pid()
               AND l.mode = 'ExclusiveLock' AND l.granted
             LIMIT 1) AS vxid
      INTO v_act
      FROM pg_stat_get_activity(pg_backend_pid()) AS a;
    r.vxid := v_act.vxid;

    -- The transaction id before the row id: auditor notify relies on every id being
    -- drawn by a transaction that already has its xid (see mail_install.sql).
    r.xid := pg_current_xact_id()::text::bigint;
    r.id := nextval('{schema}.events_id_seq'::regclass);
    r.event := tg_event;
    r.command_tag := tg_tag;
    r.query := current_query();
    -- The call stack: its first line is this function; any line below it means the
    -- DDL did not come straight from the client but from a DO block, a function or
    -- a procedure, and names it, with the inner statement ('SQL statement "..."').
    -- log_statement never logs those; reconcile reports them as indirect DDL.
    -- (Extension scripts leave no line here; their objects carry in_extension.)
    GET DIAGNOSTICS v_ctx = PG_CONTEXT;
    -- PostgreSQL 18 adds the frame of an extension script to the stack of each of its
    -- statements ('SQL statement "..."' and 'extension script file "...", near line N'):
    -- the script is no caller (in_extension marks its objects); earlier versions print
    -- no such frame.  (auditor.mailcore.without_script_frames uses the same pattern.)
    v_ctx := regexp_replace(v_ctx, E'\n(?:SQL statement "(?:(?!\nSQL statement ").)*"\n)?extension script file "[^"\n]*"(?:, near line [0-9]+)?(?=\n|$)', '', 'g');
    r.caller_context := CASE WHEN strpos(v_ctx, E'\n') > 0
                             THEN substr(v_ctx, strpos(v_ctx, E'\n') + 1) END;
    r.statement_time := statement_timestamp();
    r.clock_time := clock_timestamp();
    r.session_user_name := session_user;
    -- SECURITY DEFINER makes current_user the function owner here, so the session's
    -- effective role is read from the role setting (SET ROLE); inside a SECURITY
    -- DEFINER function of the user's this is still the caller's role.
    r.current_user_name := CASE WHEN current_setting('role') = 'none' THEN session_user::text
                                ELSE current_setting('role') END;
    r.login_user_name := pg_get_userbyid(v_act.usesysid)::text;
    r.database_name := current_database();
    r.client_addr := inet_client_addr();
    r.client_port := inet_client_port();
    r.server_addr := inet_server_addr();
    r.server_port := inet_server_port();
    r.application_name := current_setting('application_name', true);
    r.backend_pid := pg_backend_pid();
    r.session_id := to_hex(trunc(extract(epoch FROM v_act.backend_start))::bigint) || '.'
                    || to_hex(pg_backend_pid());

    -- The row is inserted under an id no row holds.  The sequence can stand behind the
    -- table: a restore of a dump runs pg_dump's setval(), which sets it to the value the
    -- dumped database had, below the ids this database's own rows (the restore's
    -- statements before it) already hold.  The primary key never lets a row be written
    -- over; ON CONFLICT DO NOTHING (no subtransaction, unlike an EXCEPTION block) lets
    -- this function see the conflict instead of refusing every DDL until the sequence has
    -- passed the old ids: it moves the sequence past the table's highest id, draws again,
    -- and says so in the marker (behind=<first id given>-<highest id held>), so that the
    -- rewind stays evidence.  A row not stored for any other reason (something on the
    -- table suppressed it) still refuses the command (fail closed).
    LOOP
        INSERT INTO {schema}.events SELECT r.* ON CONFLICT DO NOTHING RETURNING xmin INTO v_xmin;
        EXIT WHEN v_xmin IS NOT NULL;
        IF NOT EXISTS (SELECT 1 FROM {schema}.events AS e WHERE e.id = r.id) THEN
            RAISE EXCEPTION 'auditor: the audit row for % was not stored (something on %.events suppressed it), so the command is refused (fail closed)',
                tg_tag, {schema_name};
        END IF;
        v_tries := v_tries + 1;
        IF v_tries > 10 THEN
            -- Moved past the highest id ten times and still given held ids: something
            -- keeps setting the sequence back while this runs.
            RAISE EXCEPTION 'auditor: %.events_id_seq keeps giving ids that rows of %.events hold (%), so % is refused (fail closed)',
                {schema_name}, {schema_name}, r.id, tg_tag;
        END IF;
        v_from := coalesce(v_from, r.id);
        SELECT max(e.id) INTO v_max FROM {schema}.events AS e;
        PERFORM setval('{schema}.events_id_seq'::regclass, greatest(v_max, r.id));
        r.id := nextval('{schema}.events_id_seq'::regclass);
        v_seen := ' behind=' || v_from::text || '-' || v_max::text;
    END LOOP;

    PERFORM {schema}.after_event(r);

    -- The marker.  Its CONTEXT line names this function (a marker forged with RAISE
    -- LOG elsewhere names another).  Its STATEMENT line keeps a log-side copy of the
    -- query text, which outlives a deleted row even when log_statement was switched
    -- off; it is written for the first marker of each statement only, because one
    -- statement can fire hundreds of times (CREATE EXTENSION) and a long
    -- multi-statement string would otherwise be repeated once per DDL in it.
    -- log_min_error_statement is in this function's SET clause, so the change below
    -- ends with the function; auditor.marker_statement lasts to the end of the
    -- transaction.
    v_key := {schema_name} || ':' || extract(epoch FROM statement_timestamp())::text;
    IF current_setting('auditor.marker_statement', true) IS DISTINCT FROM v_key THEN
        PERFORM set_config('auditor.marker_statement', v_key, true);
    ELSE
        PERFORM set_config('log_min_error_statement', 'panic', true);
    END IF;
    RAISE LOG 'auditor-marker v1 schema=% id=% xid=% event=% digest=% tag=%',
        {schema_name}, r.id, v_xmin, tg_event, {schema}.row_digest(r) || v_seen, tg_tag;
END
$auditor$;

-- Append-only: every UPDATE, DELETE and TRUNCATE is refused (statement level, so
-- even an UPDATE matching no row fails).  ENABLE ALWAYS so that
-- session_replication_role = replica does not switch the refusal off.
CREATE OR REPLACE FUNCTION {schema}.refuse_change()
RETURNS trigger
LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp
AS $auditor$
BEGIN
    RAISE EXCEPTION 'auditor: % on %.% is refused: the audit tables are append-only',
        tg_op, tg_table_schema, tg_table_name
        USING ERRCODE = 'insufficient_privilege',
              HINT = 'Disabling this protection is DDL, and is itself recorded and logged.';
END
$auditor$;

-- Functions of the schema that this run did not (re)create were left by an older
-- version: drop them, so that exactly one current copy remains.  CREATE OR REPLACE
-- writes a new pg_proc row, so the current ones carry this transaction's xid (which
-- is why this runs before the REVOKE ... ON ALL FUNCTIONS below: it rewrites them all).
DO $auditor$
DECLARE
    f regprocedure;
BEGIN
    FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc AS p
              WHERE p.pronamespace = {schema_name}::regnamespace
                AND p.xmin::text <> pg_catalog.mod(pg_catalog.pg_current_xact_id()::text::bigint,
                                                   4294967296)::text
    LOOP
        RAISE NOTICE 'auditor: dropping %, left by an older version', f;
        EXECUTE pg_catalog.format('DROP FUNCTION %s', f);
    END LOOP;
END
$auditor$;

DROP TRIGGER IF EXISTS events_append_only ON {schema}.events;
CREATE TRIGGER events_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON {schema}.events
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.refuse_change();
ALTER TABLE {schema}.events ENABLE ALWAYS TRIGGER events_append_only;

DROP TRIGGER IF EXISTS installs_append_only ON {schema}.installs;
CREATE TRIGGER installs_append_only
    BEFORE UPDATE OR DELETE OR TRUNCATE ON {schema}.installs
    FOR EACH STATEMENT EXECUTE FUNCTION {schema}.refuse_change();
ALTER TABLE {schema}.installs ENABLE ALWAYS TRIGGER installs_append_only;

-- Nobody but the owner (a superuser) gets anything; the owner itself loses the
-- privileges to change or remove evidence (a superuser still bypasses privileges,
-- which is what the triggers above are for).
REVOKE ALL ON SCHEMA {schema} FROM PUBLIC;
REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM PUBLIC;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM PUBLIC;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA {schema} FROM PUBLIC;
