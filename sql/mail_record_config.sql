-- mail_record_config.sql: the mail configuration this install was given (one row; no password).
--
-- Recipients, sender and server name serve auditor notify as defaults and the
-- in-database mode as its configuration; SMTP settings and templates are stored in
-- plpython mode only.  The SMTP password is never part of a printed script: install
-- stores it with a separate, parameterised UPDATE.
-- Placeholders: {{schema}} (identifier); the rest are literals.
INSERT INTO {schema}.mail_config AS c
       (id, mail_from, mail_to, mail_cc, server_name, smtp_host, smtp_port, smtp_security,
        smtp_username, smtp_password, smtp_timeout, smtp_ca_file, dns_timeout,
        subject_template, text_template, html_template, created_plpython)
VALUES (1, {mail_from}, {mail_to}, {mail_cc}, {server_name}, {smtp_host}, {smtp_port},
        {smtp_security}, {smtp_username}, NULL, {smtp_timeout}, {smtp_ca_file}, {dns_timeout},
        {subject_template}, {text_template}, {html_template}, {created_plpython})
ON CONFLICT (id) DO UPDATE
    SET mail_from = EXCLUDED.mail_from, mail_to = EXCLUDED.mail_to, mail_cc = EXCLUDED.mail_cc,
        server_name = EXCLUDED.server_name, smtp_host = EXCLUDED.smtp_host,
        smtp_port = EXCLUDED.smtp_port, smtp_security = EXCLUDED.smtp_security,
        smtp_username = EXCLUDED.smtp_username, smtp_password = NULL,
        smtp_timeout = EXCLUDED.smtp_timeout, smtp_ca_file = EXCLUDED.smtp_ca_file,
        dns_timeout = EXCLUDED.dns_timeout, subject_template = EXCLUDED.subject_template,
        text_template = EXCLUDED.text_template, html_template = EXCLUDED.html_template,
        created_plpython = EXCLUDED.created_plpython;
