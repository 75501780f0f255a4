-- mail_record_failure.sql: records a failed attempt and when to try again (exponential back-off).
--
-- After $5 attempts a mail is 'failing': still kept and retried (at the longest
-- interval), and reported by auditor status.
-- Placeholder: {{schema}}.  Parameters: $1 delivery ids, $2 error, $3 first delay (s),
-- $4 longest delay (s), $5 attempts before 'failing'.
UPDATE {schema}.deliveries AS d
   SET attempts = d.attempts + 1,
       status = CASE WHEN d.attempts + 1 >= $5 THEN 'failing' ELSE 'pending' END,
       last_error = $2,
       last_attempt_at = pg_catalog.clock_timestamp(),
       next_attempt_at = pg_catalog.clock_timestamp() + pg_catalog.make_interval(
           secs => LEAST($4::float8, $3::float8 * pg_catalog.power(2::float8, d.attempts::float8)))
 WHERE d.id = ANY ($1::bigint[])
   AND d.status <> 'delivered';
