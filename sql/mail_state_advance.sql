-- mail_state_advance.sql: moves the scan position up to a probe whose rows are all final and claimed.
--
-- Placeholder: {{schema}}.  Parameters: $1 the new scanned_to, $2 whether the probe is used up.
UPDATE {schema}.mail_state
   SET scanned_to = GREATEST(scanned_to, $1),
       probe_id = CASE WHEN $2 THEN NULL ELSE probe_id END,
       probe_xid = CASE WHEN $2 THEN NULL ELSE probe_xid END
 WHERE id = 1;
