-- mail_state_read.sql: the scan position, its probe, and this snapshot's xmin (claim transaction).
--
-- Read inside auditor notify's REPEATABLE READ claim transaction, so snapshot_xmin is
-- the xmin of the snapshot the claim sees: every transaction older than it has ended.
-- Placeholder: {{schema}}.
SELECT m.scanned_to, m.probe_id, m.probe_xid,
       pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot())::text::bigint AS snapshot_xmin,
       s.mail_mode
  FROM {schema}.mail_state AS m, {schema}.settings AS s
 WHERE m.id = 1 AND s.id = 1;
