-- mail_created_plpython.sql: whether an earlier install created plpython3u in this database.
--
-- Placeholder: {{schema}}.
SELECT c.created_plpython FROM {schema}.mail_config AS c WHERE c.id = 1;
