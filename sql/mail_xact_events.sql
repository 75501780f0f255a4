-- mail_xact_events.sql: the unmailed audit rows of the committing transaction (in-database mode).
--
-- Run by <schema>.send_mails() from the deferred trigger events_mail, for the
-- transaction's first unmailed row: the rows from there on with the same top-level
-- xid are this transaction's (the primary key bounds the scan).
-- Placeholders: {{schema}}, {{columns}}.  Parameters: $1 first row id, $2 xid.
SELECT {columns}
  FROM {schema}.events AS e
 WHERE e.id >= $1
   AND e.xid = $2
   AND NOT EXISTS (SELECT 1 FROM {schema}.delivery_events AS d WHERE d.event_id = e.id)
 ORDER BY e.id
