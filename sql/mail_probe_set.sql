-- mail_probe_set.sql: second half of a probe: the next xid of a snapshot taken after the sequence read.
--
-- Its own statement (autocommit), so its snapshot is newer than the sequence read:
-- every transaction that drew an id up to probe_id had its xid already, below xmax.
-- Placeholder: {{schema}}.  Parameter: $1 probe_id.
UPDATE {schema}.mail_state
   SET probe_id = $1,
       probe_xmax = pg_catalog.pg_snapshot_xmax(pg_catalog.pg_current_snapshot())::text::bigint
 WHERE id = 1 AND probe_id IS NULL;
