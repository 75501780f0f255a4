-- mail_claim.sql: records one statement's mail and claims its audit rows, in one statement.
--
-- delivery_events.event_id is the primary key, so an audit row can be claimed by one
-- delivery only.  Used by auditor notify (status 'pending') and by the in-database
-- mode (status 'delivered', or 'pending' when the send failed outside strict mode).
-- Placeholder: {{schema}}.  Parameters: $1 first event id, $2 Message-ID, $3 event ids,
-- $4 command tags, $5 status, $6 last error, $7 attempts, $8 mode (outbox|plpython).
-- The id is past the table's highest one even when the sequence is not: a restore of a
-- dump sets it to the dumped database's value (pg_dump's setval), which can be behind
-- the deliveries this database already has (auditor install moves it on again).
WITH d AS (
    INSERT INTO {schema}.deliveries
           (id, first_event_id, message_id, event_ids, command_tags, status, last_error,
            attempts, mode, last_attempt_at, delivered_at)
    VALUES (GREATEST(pg_catalog.nextval('{schema}.deliveries_id_seq'::pg_catalog.regclass),
                     (SELECT COALESCE(pg_catalog.max(x.id), 0) OPERATOR(pg_catalog.+) 1
                        FROM {schema}.deliveries AS x)),
            $1, $2, $3, $4, $5, $6, $7, $8,
            CASE WHEN $7 > 0 THEN pg_catalog.clock_timestamp() END,
            CASE WHEN $5 = 'delivered' THEN pg_catalog.clock_timestamp() END)
    RETURNING id
)
INSERT INTO {schema}.delivery_events (event_id, delivery_id)
SELECT x.event_id, d.id FROM d, unnest($3::bigint[]) AS x(event_id)
