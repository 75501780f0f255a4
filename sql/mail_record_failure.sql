-- mail_record_failure.sql: records a failed attempt and when to try again (exponential back-off).
--
-- After $5 attempts a mail is 'failing': still kept and retried (at the longest
-- interval), and reported by auditor status.  $6 true undoes a 'delivered' that was
-- committed when the end of the message was sent but the server then refused it or
-- never answered (that attempt was already counted).
-- Placeholder: {{schema}}.  Parameters: $1 delivery ids, $2 error, $3 first delay (s),
-- $4 longest delay (s), $5 attempts before 'failing', $6 undo a 'delivered'.
UPDATE {schema}.deliveries AS d
   SET attempts = d.attempts + CASE WHEN $6 THEN 0 ELSE 1 END,
       status = CASE WHEN d.attempts + CASE WHEN $6 THEN 0 ELSE 1 END >= $5
                     THEN 'failing' ELSE 'pending' END,
       last_error = $2,
       last_attempt_at = pg_catalog.clock_timestamp(),
       delivered_at = NULL,
       next_attempt_at = pg_catalog.clock_timestamp() + pg_catalog.make_interval(
           secs => LEAST($4::float8,
                         $3::float8 * pg_catalog.power(2::float8,
                             GREATEST(d.attempts - CASE WHEN $6 THEN 1 ELSE 0 END, 0)::float8)))
 WHERE d.id = ANY ($1::bigint[])
   AND (d.status <> 'delivered' OR $6);
