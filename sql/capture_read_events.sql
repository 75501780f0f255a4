-- capture_read_events.sql: one batch of audit rows, in id order, with each row's xmin.
--
-- Used by auditor.capture.read_audit_events (keyset pagination inside one
-- REPEATABLE READ snapshot).  inet columns are read as host() text, objects as
-- the jsonb text, so the digest can be recomputed in Python from exactly what is
-- stored (auditor.digest).  Placeholder: {{schema}}.  Parameters: %(after_id)s,
-- %(since)s, %(until)s (bounds on statement_time, NULL = open), %(batch)s.
SELECT e.id, e.event, e.command_tag, e.objects::text AS objects_json, e.query, e.caller_context,
       e.statement_time, e.clock_time, e.session_user_name, e.current_user_name,
       e.login_user_name, e.database_name, pg_catalog.host(e.client_addr) AS client_addr,
       e.client_port, pg_catalog.host(e.server_addr) AS server_addr, e.server_port,
       e.application_name, e.backend_pid, e.session_id, e.vxid, e.xid,
       e.xmin::text::bigint AS row_xmin
  FROM {schema}.events AS e
 WHERE e.id > %(after_id)s
   AND (%(since)s::timestamptz IS NULL OR e.statement_time >= %(since)s::timestamptz)
   AND (%(until)s::timestamptz IS NULL OR e.statement_time < %(until)s::timestamptz)
 ORDER BY e.id
 LIMIT %(batch)s;
