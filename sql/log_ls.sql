-- log_ls.sql: the files of the server's log directory, for reading logs over SQL
-- when the server's file system is out of reach (log source "sql:").
-- Needs superuser or pg_monitor.
SELECT name, size, modification
FROM pg_catalog.pg_ls_logdir()
ORDER BY modification, name;
