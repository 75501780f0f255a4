-- mail_grant_reader.sql: lets the read-only reconcile role see the delivery record too (status).
--
-- Read only, and never mail_config (it may hold the SMTP password).
-- Placeholders: {{schema}}, {{reader_role}} (identifiers).
GRANT SELECT ON {schema}.deliveries, {schema}.delivery_events, {schema}.mail_state TO {reader_role};
