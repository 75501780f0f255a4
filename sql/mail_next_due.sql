-- mail_next_due.sql: seconds until the next undelivered mail is due (NULL when none is waiting).
--
-- Placeholder: {{schema}}.
SELECT EXTRACT(epoch FROM pg_catalog.min(d.next_attempt_at) - pg_catalog.clock_timestamp())::float8
  FROM {schema}.deliveries AS d
 WHERE d.status <> 'delivered';
