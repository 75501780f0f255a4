-- mail_plpython_state.sql: whether plpython3u can be created on this server, and is in this database.
SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_available_extensions WHERE name = 'plpython3u') AS available,
       EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname = 'plpython3u') AS installed;
