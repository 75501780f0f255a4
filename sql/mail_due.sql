-- mail_due.sql: undelivered mails whose next attempt is due (all of them with --once), oldest first.
--
-- Placeholder: {{schema}}.  Parameters: $1 ignore the back-off schedule, $2 batch size.
SELECT d.id, d.message_id, d.attempts
  FROM {schema}.deliveries AS d
 WHERE d.status <> 'delivered'
   AND ($1 OR d.next_attempt_at <= pg_catalog.clock_timestamp())
 ORDER BY d.id
 LIMIT $2;
