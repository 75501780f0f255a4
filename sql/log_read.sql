-- log_read.sql: one chunk of a server log file, read through pg_read_binary_file()
-- (log source "sql:"). The path is relative to the data directory unless
-- log_directory is absolute. Needs superuser or pg_read_server_files.
SELECT pg_catalog.pg_read_binary_file(
    pg_catalog.current_setting('log_directory') || '/' || %(name)s,
    %(offset)s, %(length)s, true);
