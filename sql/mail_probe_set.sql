-- mail_probe_set.sql: second half of a probe: an xid drawn after the sequence read.
--
-- Its own statement (autocommit) after mail_probe_sequence.sql: the xid this UPDATE
-- gets is newer than the xid of every transaction that drew an id up to probe_id
-- (record_event() takes its xid before its id).  Once a snapshot's xmin is at or past
-- it, all of those transactions have ended.  (A snapshot's xmax would not do: it is
-- one past the latest *completed* xid, and a running older one may equal it.)
-- Placeholder: {{schema}}.  Parameter: $1 probe_id.
UPDATE {schema}.mail_state
   SET probe_id = $1,
       probe_xid = pg_catalog.pg_current_xact_id()::text::bigint
 WHERE id = 1 AND probe_id IS NULL;
