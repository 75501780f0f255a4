-- mail_status.sql: the mail side of one database for `auditor status`, as one jsonb.
--
-- Counts of delivered, pending and failing mails, the oldest undelivered one, the
-- failing ones with their last error, and audit rows auditor notify has not picked up
-- yet.  Readable by the reader role.  Placeholder: {{schema}}.
SELECT pg_catalog.jsonb_build_object(
    'delivered', (SELECT pg_catalog.count(*) FROM {schema}.deliveries WHERE status = 'delivered'),
    'pending', (SELECT pg_catalog.count(*) FROM {schema}.deliveries WHERE status = 'pending'),
    'failing', (SELECT pg_catalog.count(*) FROM {schema}.deliveries WHERE status = 'failing'),
    'oldest_undelivered', (SELECT pg_catalog.min(created_at) FROM {schema}.deliveries
                            WHERE status <> 'delivered'),
    'failing_mails', (SELECT pg_catalog.jsonb_agg(pg_catalog.jsonb_build_object(
                                 'id', f.id, 'message_id', f.message_id,
                                 'command_tags', f.command_tags, 'attempts', f.attempts,
                                 'last_error', f.last_error, 'last_attempt_at', f.last_attempt_at)
                             ORDER BY f.id)
                        FROM (SELECT * FROM {schema}.deliveries WHERE status = 'failing'
                               ORDER BY id LIMIT 5) AS f),
    'unclaimed', (SELECT pg_catalog.count(*) FROM {schema}.events AS e
                   WHERE e.id > (SELECT m.scanned_to FROM {schema}.mail_state AS m WHERE m.id = 1)
                     AND NOT EXISTS (SELECT 1 FROM {schema}.delivery_events AS d
                                      WHERE d.event_id = e.id)),
    'oldest_unclaimed', (SELECT pg_catalog.min(e.clock_time) FROM {schema}.events AS e
                          WHERE e.id > (SELECT m.scanned_to FROM {schema}.mail_state AS m
                                         WHERE m.id = 1)
                            AND NOT EXISTS (SELECT 1 FROM {schema}.delivery_events AS d
                                             WHERE d.event_id = e.id))
) AS mail;
