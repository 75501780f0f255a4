-- mail_database_config.sql: what auditor notify reads about one database: mode, port, stored recipients.
--
-- Only the mail_config columns the notify role may read (never the SMTP password).
-- Placeholder: {{schema}}.
SELECT s.mail_mode, pg_catalog.current_setting('port')::integer AS server_port_setting,
       c.mail_from, c.mail_to, c.mail_cc, c.server_name
  FROM {schema}.settings AS s
  LEFT JOIN {schema}.mail_config AS c ON c.id = 1
 WHERE s.id = 1;
