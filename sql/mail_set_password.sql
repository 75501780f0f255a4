-- mail_set_password.sql: stores the SMTP password for the in-database mode (never printed).
--
-- Executed by `auditor install --mail-mode plpython` with the password as a bound
-- parameter, after mail_record_config.sql.  Placeholder: {{schema}}.  Parameter: %(password)s.
UPDATE {schema}.mail_config SET smtp_password = %(password)s WHERE id = 1;
