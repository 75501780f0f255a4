-- mail_unclaimed_events.sql: audit rows no delivery has claimed yet, oldest first (auditor notify).
--
-- Rows at or below mail_state.scanned_to are known to be claimed (or never to become
-- visible), so the anti-join only looks above it.  Placeholders: {{schema}}, {{columns}}.
-- Parameters ($n, psycopg.RawCursor): $1 scanned_to, $2 batch size.
SELECT {columns}
  FROM {schema}.events AS e
 WHERE e.id > $1
   AND NOT EXISTS (SELECT 1 FROM {schema}.delivery_events AS d WHERE d.event_id = e.id)
 ORDER BY e.id
 LIMIT $2;
