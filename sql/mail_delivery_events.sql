-- mail_delivery_events.sql: the audit rows of some deliveries, to word their mails again.
--
-- Placeholders: {{schema}}, {{columns}}.  Parameter: $1 delivery ids.
SELECT d.delivery_id, {columns}
  FROM {schema}.delivery_events AS d
  JOIN {schema}.events AS e ON e.id = d.event_id
 WHERE d.delivery_id = ANY ($1::bigint[])
 ORDER BY e.id;
