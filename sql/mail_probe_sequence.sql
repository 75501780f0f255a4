-- mail_probe_sequence.sql: the highest audit row id handed out so far (first half of a probe).
--
-- Sequences are not transactional: this sees every nextval() already done, committed
-- or not.  The serial's default CACHE 1 matters (a cached range would be handed out
-- later).  Placeholder: {{schema}}.
SELECT CASE WHEN s.is_called THEN s.last_value ELSE s.last_value - 1 END AS probe_id
  FROM {schema}.events_id_seq AS s;
