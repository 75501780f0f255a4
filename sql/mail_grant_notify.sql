-- mail_grant_notify.sql: what `auditor notify` needs when it runs as its own role (--notify-role).
--
-- Read the audit rows and settings, read the events sequence (the scan probe), and
-- keep the delivery record; see mail_config's recipients, sender and server name but
-- not its SMTP columns.  Nothing on the audit tables beyond SELECT.
-- Placeholders: {{schema}}, {{notify_role}} (identifiers).
GRANT USAGE ON SCHEMA {schema} TO {notify_role};
GRANT SELECT ON {schema}.events, {schema}.settings TO {notify_role};
GRANT SELECT ON SEQUENCE {schema}.events_id_seq TO {notify_role};
GRANT SELECT (id, mail_from, mail_to, mail_cc, server_name) ON {schema}.mail_config TO {notify_role};
GRANT SELECT, INSERT, UPDATE ON {schema}.deliveries, {schema}.delivery_events, {schema}.mail_state
    TO {notify_role};
GRANT USAGE ON SEQUENCE {schema}.deliveries_id_seq TO {notify_role};
