-- mail_event_columns.sql: the select list of an audit row as the mail side reads it.
--
-- Inserted as {{columns}} into the mail_*events.sql queries (alias e = {{schema}}.events).
-- Times are UTC text and addresses host() text, so that psycopg (auditor notify) and
-- PL/Python (the in-database mode) hand auditor.mailcore.EventRow the same values.
e.id, e.event, e.command_tag, e.objects::text AS objects, e.query, e.caller_context,
pg_catalog.to_char(e.statement_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS statement_time,
pg_catalog.to_char(e.clock_time AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') AS clock_time,
e.session_user_name, e.current_user_name, e.login_user_name, e.database_name,
pg_catalog.host(e.client_addr) AS client_addr, e.client_port,
pg_catalog.host(e.server_addr) AS server_addr, e.server_port, e.application_name,
e.backend_pid, e.session_id, e.vxid, e.xid
