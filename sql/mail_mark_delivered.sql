-- mail_mark_delivered.sql: records a mail as delivered (committed as the SMTP server takes it).
--
-- Placeholder: {{schema}}.  Parameters: $1 delivery id, $2 note (refused recipients) or NULL.
UPDATE {schema}.deliveries
   SET status = 'delivered', attempts = attempts + 1, last_error = $2,
       last_attempt_at = pg_catalog.clock_timestamp(), delivered_at = pg_catalog.clock_timestamp()
 WHERE id = $1;
