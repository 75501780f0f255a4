-- mail_mark_delivered.sql: takes one undelivered mail for sending and marks it delivered.
--
-- Runs in the transaction the worker commits the moment the SMTP server accepts the
-- message (and rolls back otherwise); the row lock is held meanwhile, and a mail that
-- another worker holds is skipped (no row returned).
-- Placeholder: {{schema}}.  Parameter: $1 delivery id.
UPDATE {schema}.deliveries AS d
   SET status = 'delivered', attempts = d.attempts + 1, last_error = NULL,
       last_attempt_at = pg_catalog.clock_timestamp(), delivered_at = pg_catalog.clock_timestamp()
 WHERE d.id = (SELECT x.id FROM {schema}.deliveries AS x
                WHERE x.id = $1 AND x.status <> 'delivered'
                  FOR UPDATE SKIP LOCKED)
RETURNING d.id;
