-- capture_copy_events.sql: the rows of capture_read_events.sql as one COPY stream, in id order.
--
-- Used by auditor.capture_bulk (COPY into Arrow columns instead of one fetched tuple
-- per row).  Same rows, columns and bounds as capture_read_events.sql, without the
-- LIMIT (one statement, one snapshot, streamed), in COPY's text format (one line per
-- row, tab-separated, \N for NULL, backslash escapes; measured: Arrow reads it in about
-- half the CPU of the csv format, whose doubled quotes in every objects text cost).
-- The two timestamps are written as auditor.digest writes them (UTC, microseconds,
-- 'Z'), followed by the era ('AD' or 'BC'), whatever the session's TimeZone and
-- DateStyle: the reader digests that text and parses the same text into the row's
-- datetimes, and hands anything else (BC, years before 1000 or after 9999, infinity)
-- to the row reader.
-- Placeholder: {schema}.  Parameters: %(after_id)s, %(since)s, %(until)s.
COPY (
SELECT e.id, e.event, e.command_tag, e.objects::text AS objects_json, e.query, e.caller_context,
       pg_catalog.to_char(e.statement_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"AD')
           AS statement_time,
       pg_catalog.to_char(e.clock_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"AD')
           AS clock_time,
       e.session_user_name, e.current_user_name,
       e.login_user_name, e.database_name, pg_catalog.host(e.client_addr) AS client_addr,
       e.client_port, pg_catalog.host(e.server_addr) AS server_addr, e.server_port,
       e.application_name, e.backend_pid, e.session_id, e.vxid, e.xid,
       e.xmin::text::bigint AS row_xmin
  FROM {schema}.events AS e
 WHERE e.id > %(after_id)s
   AND (%(since)s::timestamptz IS NULL OR e.statement_time >= %(since)s::timestamptz)
   AND (%(until)s::timestamptz IS NULL OR e.statement_time < %(until)s::timestamptz)
 ORDER BY e.id
) TO STDOUT;
