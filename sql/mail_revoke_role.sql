-- mail_revoke_role.sql: takes the audit schema's rights away from a former notify role.
--
-- Used when a re-install names another notify role (or none) than the previous one.
-- Placeholders: {{schema}}, {{role}} (identifiers).
REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {role};
REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {role};
REVOKE ALL (id, mail_from, mail_to, mail_cc, server_name) ON {schema}.mail_config FROM {role};
REVOKE ALL ON SCHEMA {schema} FROM {role};
