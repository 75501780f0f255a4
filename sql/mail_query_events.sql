-- mail_query_events.sql: the unclaimed rest of some query strings' rows, above an id.
--
-- A batch of mail_unclaimed_events.sql can cut a query string's rows in two; this
-- fetches the rest, so that grouping always sees every row of a query string (they
-- all come from one transaction, so they are all visible, or none).
-- Placeholders: {{schema}}, {{columns}}.  Parameters: $1 the batch's last id,
-- $2 session ids, $3 vxids ('' for none), $4 statement times (parallel text arrays).
SELECT {columns}
  FROM {schema}.events AS e
 WHERE e.id > $1
   AND (e.session_id, coalesce(e.vxid, ''), e.statement_time) IN (
        SELECT k.s, k.v, k.t::timestamptz FROM unnest($2::text[], $3::text[], $4::text[]) AS k(s, v, t))
   AND NOT EXISTS (SELECT 1 FROM {schema}.delivery_events AS d WHERE d.event_id = e.id)
 ORDER BY e.id;
