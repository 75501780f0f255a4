-- mail_config_read.sql: what the in-database mode needs at each commit: mode, strictness, SMTP, templates.
--
-- Run by <schema>.send_mails() (owner's rights: mail_config holds the SMTP password
-- and is readable by superusers only).  Placeholder: {{schema}}.
SELECT s.mail_mode, s.strict, pg_catalog.current_setting('port') AS server_port_setting,
       c.mail_from, c.mail_to, c.mail_cc, c.server_name, c.smtp_host, c.smtp_port,
       c.smtp_security, c.smtp_username, c.smtp_password, c.smtp_timeout, c.smtp_ca_file,
       c.dns_timeout, c.subject_template, c.text_template, c.html_template
  FROM {schema}.settings AS s
  LEFT JOIN {schema}.mail_config AS c ON c.id = 1
 WHERE s.id = 1
